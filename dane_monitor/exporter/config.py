"""The exporter's configuration file: YAML, checked strictly, errors that name the line.

    config = load("dane-exporter.yml")      # raises ConfigError("file:12: ...")

Every key is known (a misspelt key is an error with a suggestion, not silently ignored),
durations are seconds or Prometheus-style strings (``90s``, ``5m``, ``1h30m``), and a
target is ``domain: NAME`` or ``mx: HOST`` with optional ``ports``, ``interval`` and
``timeout``. The full example lives in ``docs/exporter.md``. Values follow the same rules
as on the command line: each is parsed by :mod:`dane_monitor.settings`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dane_monitor import settings
from dane_monitor.exporter.shard import Shard, parse_shard
from dane_monitor.settings import Thresholds, parse_duration

__all__ = [
    "Config",
    "ConfigError",
    "DNSSettings",
    "MetricsSettings",
    "ProbeSettings",
    "TLSRPTSettings",
    "Target",
    "Thresholds",
    "load",
    "parse",
    "parse_duration",
    "parse_listen",
]

DEFAULT_LISTEN = "127.0.0.1:9925"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Target:
    name: str  # as configured, without a trailing dot: the ``target`` label
    kind: Literal["domain", "mx"]
    ports: tuple[int, ...] = (25,)
    interval: float = 300.0
    timeout: float = 30.0
    line: int = field(default=0, compare=False)


PROBE_PORTS = (25, 465, 587)


@dataclass(frozen=True)
class ProbeSettings:
    """Who and what ``/probe`` may check: deny by default.

    /probe makes the exporter connect where a client says and (with ``debug=true``) shows
    what it read back, so an open /probe is a port scanner and an SSRF into the exporter's
    network. Without ``allow`` or ``allow_any`` only configured targets may be probed, and
    only on ``allowed_ports`` (or the ports configured for that target).
    """

    allow: tuple[str, ...] = ()  # fnmatch patterns a /probe target may match
    allow_any: bool = False  # blackbox-exporter style: any name (still only allowed_ports)
    timeout: float = 30.0  # when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds
    timeout_margin: float = 0.5  # finish this long before Prometheus gives up
    default_ports: tuple[int, ...] = (25,)
    allowed_ports: tuple[int, ...] = PROBE_PORTS

    def allows(self, target: str) -> bool:
        """Whether the patterns (or ``allow_any``) let ``target`` be probed."""
        if self.allow_any:
            return True
        name = target.rstrip(".").lower()
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allow)


@dataclass(frozen=True)
class DNSSettings:
    resolver: str | None = None  # None: /etc/resolv.conf
    trust_anchor: str | None = None
    validation: Literal["local", "resolver"] = "local"
    timeout: float = 2.0


@dataclass(frozen=True)
class NameServerSettings:
    """Nameserver consistency (``nameservers:``): every background check also asks each
    authoritative server of the zones on its path directly (dane_monitor.nameservers), so a
    stale or broken secondary shows as ``ns-*`` findings. ``port``: tests only (53).

    ``max_age``: how long what a zone's servers answered is reused (default an hour).
    Reuse stops at once when the check's validated records in that zone change (they are
    part of the cache key: a rollover or a re-signing is asked about at the next check),
    and the ``ns-*`` findings are judged again on every check against the chain the server
    serves now (a deployment is seen at once). What waits up to ``max_age`` is a change at
    one server that the validated path does not show (a secondary that falls behind or
    goes silent later). Asking every cycle costs about four times a check's CPU where each
    domain is its own zone (benchmarks/exporter.py workers --nameservers on)."""

    enabled: bool = True
    port: int | None = None
    max_age: float = 3600.0


@dataclass(frozen=True)
class MetricsSettings:
    """What ``/metrics`` shows of each target (``metrics: {profile: lean}``).

    ``full`` (default): every series of docs/exporter.md. ``lean``: at most 10 series for a
    healthy target, the detail only for MX hosts with a problem; every alert in grafana/
    still fires (:func:`dane_monitor.exporter.metrics.lean_samples`).
    """

    profile: Literal["full", "lean"] = "full"


@dataclass(frozen=True)
class TLSRPTSettings:
    """TLS-RPT reports (RFC 8460) posted to ``/tlsrpt`` (``tlsrpt: {enabled: true}``): off
    unless enabled. ``max_body``: bytes of one report as posted (gzip or JSON; a gzip may
    inflate to 10 MiB at most). ``maildir``: a Maildir whose new/ and cur/ are read for
    mailed reports at every ``scan_interval``. ``remembered``: report-ids kept to count a
    report once."""

    enabled: bool = False
    max_body: int = 1 << 20
    maildir: str | None = None
    scan_interval: float = 300.0
    remembered: int = 10_000


@dataclass(frozen=True)
class Config:
    targets: tuple[Target, ...] = ()
    listen: str = DEFAULT_LISTEN
    web_config: str | None = None
    dns: DNSSettings = DNSSettings()
    concurrency: int = 20
    ehlo_name: str | None = None
    connect_port: int | None = None
    jitter: float = 0.1
    probe: ProbeSettings = ProbeSettings()
    # Expiry windows in days: rrsig-expiring (warning, then error) and cert-expiring.
    thresholds: Thresholds = field(default_factory=Thresholds)
    # This exporter's part of ``targets`` (Prometheus's hashmod of the name); None: all.
    shard: Shard | None = None
    metrics: MetricsSettings = MetricsSettings()
    nameservers: NameServerSettings = NameServerSettings()
    tlsrpt: TLSRPTSettings = TLSRPTSettings()
    # Worker processes running the background checks; 0: in the serving process; None
    # (unset): ``serve`` starts one per core (dane_monitor.exporter.workers).
    workers: int | None = None
    path: str = "<config>"

    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def scheduled_targets(self) -> tuple[Target, ...]:
        """The targets this exporter checks in the background: its shard of ``targets``
        (all of them without ``shard``). The others stay configured targets for /probe."""
        shard = self.shard
        if shard is None:
            return self.targets
        return tuple(t for t in self.targets if shard.holds(t.name))

    def probe_refusal(self, target: str, ports: tuple[int, ...]) -> str | None:
        """Why ``/probe`` must not check ``target`` on ``ports``, or None when it may.

        A configured target may always be probed, on the allowed ports or its own; any other
        name only when ``probe.allow`` matches it or ``probe.allow_any`` is set.
        """
        name = target.rstrip(".").lower()
        own = next((t for t in self.targets if t.name.lower() == name), None)
        if own is None and not self.probe.allows(name):
            return f"target {target!r} is neither a configured target nor matched by probe.allow"
        permitted = set(self.probe.allowed_ports) | set(own.ports if own else ())
        outside = [p for p in ports if p not in permitted]
        if outside:
            listed = ", ".join(map(str, sorted(permitted)))
            return f"port {outside[0]} is not in probe.allowed_ports ({listed})"
        return None


def parse_listen(text: str) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT``; port 0 listens on any free port."""
    host, sep, port_text = text.rpartition(":")
    try:
        if not sep:
            raise ValueError
        port = 0 if port_text.strip() == "0" else settings.parse_port(port_text)
    except ValueError:
        raise ValueError(f"listen address must be HOST:PORT, not {text!r}") from None
    return host.strip("[]") or "0.0.0.0", port


# -- reading YAML with marks -----------------------------------------------------------------


class _Reader:
    """Walks PyYAML's node graph so that every error can name its line."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.loader = yaml.SafeLoader(text)
        try:
            self.root = self.loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            problem = exc.problem or str(exc)
            raise ConfigError(f"{path}:{line}: not valid YAML: {problem}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None

    def error(self, node: yaml.Node | None, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ConfigError(f"{self.path}:{line}: {message}")

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, "expected a single value here, not a list or mapping")
        return self.loader.construct_object(node)

    def mapping(
        self, node: yaml.Node | None, known: tuple[str, ...], where: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """key → (key node, value node); unknown or repeated keys are errors."""
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{where} must be a mapping (key: value lines)")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                raise self.error(key_node, f"keys in {where} are names, not {key!r}")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(
                    key_node, f"unknown key {key!r} in {where}{hint}; known: {', '.join(known)}"
                )
            if key in out:
                raise self.error(key_node, f"{key!r} appears twice in {where}")
            out[key] = (key_node, value_node)
        return out

    def value(self, entry: tuple[yaml.Node, yaml.Node], key: str, convert: Callable[[Any], Any]):
        _, node = entry
        raw = self.scalar(node)
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            raise self.error(node, f"{key}: {exc}") from None

    def sequence(self, node: yaml.Node, key: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and node.value == "":
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{key} must be a list")
        return list(node.value)


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"a fraction from 0 up to (not including) 1, not {value!r}")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"true or false, not {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a non-empty string, not {value!r}")
    return value.strip()


def _target_name(value: Any) -> str:
    """A target as configured, without a trailing dot (the ``target`` label)."""
    if not isinstance(value, str):
        raise ValueError(f"a domain or host name, not {value!r}")
    return settings.parse_domain_name(value).rstrip(".")


_TOP = ("listen", "web_config", "dns", "concurrency", "ehlo_name", "connect_port", "jitter",
        "defaults", "targets", "probe", "thresholds", "shard", "metrics", "workers",
        "nameservers", "tlsrpt")  # fmt: skip
_TLSRPT = ("enabled", "max_body", "maildir", "scan_interval", "remembered")
_METRICS = ("profile",)
_THRESHOLDS = ("rrsig_warning", "rrsig_critical", "cert_warning")
_DNS = ("resolver", "trust_anchor", "validation", "timeout")
_DEFAULTS = ("ports", "interval", "timeout")
_TARGET = ("domain", "mx", "ports", "interval", "timeout")
_PROBE = ("allow", "allow_any", "timeout", "timeout_margin", "ports", "allowed_ports")


def parse(text: str, path: str = "<config>") -> Config:
    """The configuration in ``text``.

    :raises ConfigError: with ``path:line: what is wrong``.
    """
    r = _Reader(text, path)
    top = r.mapping(r.root, _TOP, "the configuration")
    kwargs: dict[str, Any] = {"path": path}

    if "listen" in top:
        kwargs["listen"] = r.value(top["listen"], "listen", _listen)
    if "web_config" in top:
        kwargs["web_config"] = _relative(r.value(top["web_config"], "web_config", _text), path)
    if "concurrency" in top:
        kwargs["concurrency"] = r.value(top["concurrency"], "concurrency", settings.parse_count)
    if "ehlo_name" in top:
        kwargs["ehlo_name"] = r.value(top["ehlo_name"], "ehlo_name", settings.parse_ehlo_name)
    if "connect_port" in top:
        kwargs["connect_port"] = r.value(top["connect_port"], "connect_port", settings.parse_port)
    if "jitter" in top:
        kwargs["jitter"] = r.value(top["jitter"], "jitter", _fraction)
    if "shard" in top:
        kwargs["shard"] = r.value(top["shard"], "shard", parse_shard)
    if "workers" in top:
        kwargs["workers"] = r.value(top["workers"], "workers", parse_workers)

    dns_map = r.mapping(top["dns"][1], _DNS, "dns") if "dns" in top else {}
    dns_kwargs: dict[str, Any] = {}
    if "resolver" in dns_map:
        dns_kwargs["resolver"] = r.value(dns_map["resolver"], "resolver", _resolver)
    if "trust_anchor" in dns_map:
        anchor = _relative(r.value(dns_map["trust_anchor"], "trust_anchor", _text), path)
        if not Path(anchor).is_file():
            raise r.error(dns_map["trust_anchor"][1], f"trust_anchor: no such file: {anchor}")
        dns_kwargs["trust_anchor"] = anchor
    if "validation" in dns_map:
        dns_kwargs["validation"] = r.value(
            dns_map["validation"], "validation", settings.parse_validation
        )
    if "timeout" in dns_map:
        dns_kwargs["timeout"] = r.value(dns_map["timeout"], "timeout", parse_duration)
    kwargs["dns"] = DNSSettings(**dns_kwargs)

    defaults = r.mapping(top["defaults"][1], _DEFAULTS, "defaults") if "defaults" in top else {}
    base = _check_values(r, defaults, {})

    targets: list[Target] = []
    seen: dict[str, int] = {}
    for node in r.sequence(top["targets"][1], "targets") if "targets" in top else []:
        target = _target(r, node, base)
        if target.name.lower() in seen:
            raise r.error(
                node,
                f"target {target.name!r} is listed twice "
                f"(first on line {seen[target.name.lower()]})",
            )
        seen[target.name.lower()] = target.line
        targets.append(target)
    kwargs["targets"] = tuple(targets)

    probe = r.mapping(top["probe"][1], _PROBE, "probe") if "probe" in top else {}
    probe_kwargs: dict[str, Any] = {}
    if "allow" in probe:
        patterns = []
        for item in r.sequence(probe["allow"][1], "allow"):
            pattern = r.value((item, item), "allow", _text)
            patterns.append(pattern.rstrip(".").lower())
        probe_kwargs["allow"] = tuple(patterns)
    if "timeout" in probe:
        probe_kwargs["timeout"] = r.value(probe["timeout"], "timeout", parse_duration)
    if "timeout_margin" in probe:
        probe_kwargs["timeout_margin"] = r.value(
            probe["timeout_margin"], "timeout_margin", lambda v: parse_duration(v, zero=True)
        )
    if "allow_any" in probe:
        probe_kwargs["allow_any"] = r.value(probe["allow_any"], "allow_any", _flag)
    if "ports" in probe:
        probe_kwargs["default_ports"] = _ports(r, probe["ports"][1])
    if "allowed_ports" in probe:
        probe_kwargs["allowed_ports"] = _ports(r, probe["allowed_ports"][1])
    kwargs["probe"] = ProbeSettings(**probe_kwargs)
    refused = set(kwargs["probe"].default_ports) - set(kwargs["probe"].allowed_ports)
    if refused:
        node = probe["ports"][1] if "ports" in probe else probe["allowed_ports"][1]
        raise r.error(
            node,
            f"probe.ports: port {min(refused)} is not in probe.allowed_ports "
            f"({', '.join(map(str, kwargs['probe'].allowed_ports))})",
        )

    if "thresholds" in top:
        node = top["thresholds"][1]
        entries = r.mapping(node, _THRESHOLDS, "thresholds")
        days = {
            f"{key}_days": r.value(entries[key], key, settings.parse_days)
            for key in _THRESHOLDS
            if key in entries
        }
        try:
            kwargs["thresholds"] = Thresholds(**days)
        except ValueError as exc:
            raise r.error(node, f"thresholds: {exc}") from None
    if "metrics" in top:
        entries = r.mapping(top["metrics"][1], _METRICS, "metrics")
        if "profile" in entries:
            profile = r.value(entries["profile"], "profile", _profile)
            kwargs["metrics"] = MetricsSettings(profile=profile)
    if "nameservers" in top:
        entries = r.mapping(top["nameservers"][1], ("enabled", "port", "max_age"), "nameservers")
        ns: dict[str, Any] = {}
        if "enabled" in entries:
            ns["enabled"] = r.value(entries["enabled"], "enabled", _flag)
        if "port" in entries:
            ns["port"] = r.value(entries["port"], "port", settings.parse_port)
        if "max_age" in entries:
            ns["max_age"] = r.value(entries["max_age"], "max_age", parse_duration)
        kwargs["nameservers"] = NameServerSettings(**ns)
    if "tlsrpt" in top:
        kwargs["tlsrpt"] = _tlsrpt(r, top["tlsrpt"][1], path)
    return Config(**kwargs)


def _tlsrpt(r: _Reader, node: yaml.Node, path: str) -> TLSRPTSettings:
    from dane_monitor.tlsrpt import parse_size

    entries = r.mapping(node, _TLSRPT, "tlsrpt")
    values: dict[str, Any] = {}
    if "enabled" in entries:
        values["enabled"] = r.value(entries["enabled"], "enabled", _flag)
    if "max_body" in entries:
        values["max_body"] = r.value(entries["max_body"], "max_body", parse_size)
    if "maildir" in entries:
        values["maildir"] = _relative(r.value(entries["maildir"], "maildir", _text), path)
    if "scan_interval" in entries:
        values["scan_interval"] = r.value(entries["scan_interval"], "scan_interval",
                                          parse_duration)  # fmt: skip
    if "remembered" in entries:
        values["remembered"] = r.value(entries["remembered"], "remembered", settings.parse_count)
    return TLSRPTSettings(**values)


def parse_workers(value: Any) -> int:
    """A number of worker processes: a whole number from 0 (in-process) to 256."""
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 256:
        raise ValueError(f"a whole number from 0 to 256, not {value!r}")
    return value


def _profile(value: Any) -> str:
    if value not in ("full", "lean"):
        raise ValueError(f"must be full or lean, not {value!r}")
    return value


def load(path: str | Path) -> Config:
    """Read and check the configuration file at ``path``.

    :raises ConfigError: an unreadable file, bad YAML or a bad setting, with the line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from None
    return parse(text, str(path))


def _target(r: _Reader, node: yaml.Node, base: dict[str, Any]) -> Target:
    entry = r.mapping(node, _TARGET, "a target")
    kinds = [k for k in ("domain", "mx") if k in entry]
    if len(kinds) != 1:
        raise r.error(node, "a target is either 'domain: NAME' or 'mx: HOST' (exactly one)")
    kind = kinds[0]
    values = _check_values(r, entry, base)
    name = r.value(entry[kind], kind, _target_name)
    return Target(name=name, kind=kind, line=node.start_mark.line + 1, **values)


def _check_values(
    r: _Reader, entry: dict[str, tuple[yaml.Node, yaml.Node]], base: dict[str, Any]
) -> dict[str, Any]:
    """``base`` with the ``ports``, ``interval`` and ``timeout`` of ``entry`` (the
    ``defaults``, or a target) on top."""
    values = dict(base)
    if "ports" in entry:
        values["ports"] = _ports(r, entry["ports"][1])
    for key in ("interval", "timeout"):
        if key in entry:
            values[key] = r.value(entry[key], key, parse_duration)
    return values


def _ports(r: _Reader, node: yaml.Node) -> tuple[int, ...]:
    port = settings.parse_port
    if isinstance(node, yaml.ScalarNode):
        ports = [r.value((node, node), "ports", port)]
    else:
        ports = [r.value((item, item), "ports", port) for item in r.sequence(node, "ports")]
    if not ports:
        raise r.error(node, "ports: give at least one port")
    return tuple(dict.fromkeys(ports))


def _listen(value: Any) -> str:
    parse_listen(_text(value))
    return value.strip()


def _resolver(value: Any) -> str:
    text = _text(value)
    settings.parse_resolver(text)
    return text


def _relative(name: str, config_path: str) -> str:
    """Files named in the configuration are relative to the configuration file."""
    p = Path(name).expanduser()
    if p.is_absolute() or config_path.startswith("<"):
        return str(p)
    return str(Path(config_path).resolve().parent / p)
