"""The plugin's settings: command-line and ini options, resolved into one :class:`DaneConfig`.

Every setting exists twice, as ``--dane-NAME`` on the command line and as ``dane_NAME`` in
``[tool.pytest.ini_options]`` (or ``pytest.ini``/``tox.ini``/``setup.cfg``); the command line
wins. The targets (``--dane-host``/``--dane-domain``) are one setting: naming any target on
the command line replaces every target of the ini file, so ``pytest --dane-host other.de``
checks just that host in a project whose ini file lists its own.

Only the standard library and pytest are imported here: the plugin must cost nothing in a
run that checks no targets.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

DEFAULT_TIMEOUT = 10.0
# The expiry windows of dane-monitor check (days): a DNSSEC signature on the path that
# expires within the warning window is a warning, within the critical window an error; a
# certificate that expires within its window is a warning.
DEFAULT_RRSIG_WARNING_DAYS = 3.0
DEFAULT_RRSIG_CRITICAL_DAYS = 1.0
DEFAULT_CERT_WARNING_DAYS = 14.0

# (name, help). The command-line option is --dane-<name with - for _>, the ini name dane_<name>.
_HELP = {
    "hosts": "MX host to check (repeatable): every address, port and key type it serves",
    "domains": "mail domain to check (repeatable): walks its MX set, every host as --dane-host",
    "ports": "logical SMTP port (repeatable; default 25): TLSA at _PORT._tcp; 465 is implicit TLS",
    "resolver": "resolver ADDR[:PORT] to query (default: the first nameserver of /etc/resolv.conf)",
    "trust_anchor": "DS/DNSKEY lines in zone-file format replacing the IANA root anchors "
    "(an ini value is relative to the ini file)",
    "validation": "local: validate DNSSEC here from the trust anchors (default); resolver: "
    "trust the resolver's AD bit",
    "timeout": f"seconds for each SMTP/TLS step and at most for each DNS try "
    f"(default {DEFAULT_TIMEOUT:g})",
    "connect_port": "connect to this TCP port instead of the logical port, keeping the "
    "_PORT._tcp TLSA names (tests against a local world)",
    "ehlo_name": "the name to send in EHLO (default: this host's fully qualified name); some "
    "MX hosts reject names that do not resolve",
    "rrsig_warning_days": "days: a DNSSEC signature on the path to the TLSA RRset that expires "
    f"within them makes rrsig-expiry warn (default {DEFAULT_RRSIG_WARNING_DAYS:g})",
    "rrsig_critical_days": "days: a signature that expires within them makes rrsig-expiry fail "
    f"even without --dane-strict (default {DEFAULT_RRSIG_CRITICAL_DAYS:g}; at most the warning "
    "days)",
    "cert_warning_days": "days: a served certificate that expires within them makes cert-expiry "
    f"warn (default {DEFAULT_CERT_WARNING_DAYS:g})",
    "strict": "fail the warning checks (rollover, stale records, expiring signatures and "
    "certificates, other warnings) instead of passing them with a DaneWarning, and fail the "
    "checks that could not be evaluated instead of skipping them",
}


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dane", "DANE for SMTP checks (pytest-dane)")
    group.addoption("--dane-host", action="append", metavar="HOST", help=_HELP["hosts"])
    group.addoption("--dane-domain", action="append", metavar="DOMAIN", help=_HELP["domains"])
    group.addoption("--dane-port", action="append", metavar="PORT", help=_HELP["ports"])
    group.addoption("--dane-resolver", metavar="ADDR[:PORT]", help=_HELP["resolver"])
    group.addoption("--dane-trust-anchor", metavar="FILE", help=_HELP["trust_anchor"])
    group.addoption("--dane-validation", choices=("local", "resolver"), help=_HELP["validation"])
    group.addoption("--dane-timeout", metavar="SECONDS", help=_HELP["timeout"])
    group.addoption("--dane-connect-port", metavar="PORT", help=_HELP["connect_port"])
    group.addoption("--dane-ehlo-name", metavar="NAME", help=_HELP["ehlo_name"])
    for name in _DAYS:
        option = f"--dane-{name.replace('_', '-')}"
        group.addoption(option, metavar="DAYS", help=_HELP[name])
    group.addoption("--dane-strict", action="store_true", default=None, help=_HELP["strict"])
    parser.addini("dane_hosts", _HELP["hosts"], type="linelist", default=[])
    parser.addini("dane_domains", _HELP["domains"], type="linelist", default=[])
    parser.addini("dane_ports", _HELP["ports"], type="linelist", default=[])
    parser.addini("dane_resolver", _HELP["resolver"], default="")
    parser.addini("dane_trust_anchor", _HELP["trust_anchor"], default="")
    parser.addini("dane_validation", _HELP["validation"], default="")
    parser.addini("dane_timeout", _HELP["timeout"], default="")
    parser.addini("dane_connect_port", _HELP["connect_port"], default="")
    parser.addini("dane_ehlo_name", _HELP["ehlo_name"], default="")
    for name in _DAYS:
        parser.addini(f"dane_{name}", _HELP[name], default="")
    parser.addini("dane_strict", _HELP["strict"], type="bool", default=False)


_DAYS = ("rrsig_warning_days", "rrsig_critical_days", "cert_warning_days")


@dataclass(frozen=True)
class DaneConfig:
    """The resolved settings of a run (fixture ``dane_config``)."""

    hosts: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    ports: tuple[int, ...] = (25,)
    resolver: str | None = None  # None: the system's resolver
    trust_anchor: Path | None = None  # None: the IANA root anchors
    validation: Literal["local", "resolver"] = "local"
    timeout: float = DEFAULT_TIMEOUT
    connect_port: int | None = None
    ehlo_name: str | None = None  # None: this host's name
    strict: bool = False
    rrsig_warning_days: float = DEFAULT_RRSIG_WARNING_DAYS
    rrsig_critical_days: float = DEFAULT_RRSIG_CRITICAL_DAYS
    cert_warning_days: float = DEFAULT_CERT_WARNING_DAYS

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """``(kind, name)`` in the order given: ``("host", …)`` first, then ``("domain", …)``."""
        return tuple(("host", h) for h in self.hosts) + tuple(("domain", d) for d in self.domains)

    def make_checker(self):
        """A fresh :class:`dane_monitor.check.Checker` with these settings.

        A ``Checker`` belongs to the event loop it first waits on; make one per loop.
        """
        from dane_monitor.check import Checker, Options
        from dane_monitor.cli import step_timeouts
        from dane_monitor.lookup import make_validator

        validator = make_validator(
            self.resolver,
            trust_anchor=self.trust_anchor,
            mode=self.validation,
            timeout=min(self.timeout, 2.0),
        )
        options = Options(
            ports=self.ports,
            connect_port=self.connect_port,
            ehlo_name=self.ehlo_name,
            timeouts=step_timeouts(self.timeout),
            rrsig_warn_days=self.rrsig_warning_days,
            rrsig_error_days=self.rrsig_critical_days,
            cert_warn_days=self.cert_warning_days,
        )
        return Checker(validator, options)

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> DaneConfig:
        """Resolve command line over ini file.

        :raises pytest.UsageError: a value that cannot be used, naming the option.
        """
        opt = config.getoption
        ini = config.getini
        if opt("dane_host") or opt("dane_domain"):
            hosts, domains = opt("dane_host") or [], opt("dane_domain") or []
        else:
            hosts, domains = ini("dane_hosts"), ini("dane_domains")
        ini_dir = config.inipath.parent if config.inipath else config.rootpath

        def pick(name: str) -> tuple[str | None, str]:
            value = opt(f"dane_{name}")
            if value is not None:
                return str(value), f"--dane-{name.replace('_', '-')}"
            value = ini(f"dane_{name}")
            return (str(value).strip() or None), f"dane_{name}"

        ports_raw, where = (opt("dane_port"), "--dane-port")
        if not ports_raw:
            ports_raw, where = ini("dane_ports"), "dane_ports"
        ports = tuple(dict.fromkeys(_port(p, where) for p in ports_raw or ["25"]))

        resolver, where = pick("resolver")
        if resolver is not None:
            _check_resolver(resolver, where)

        anchor_text, where = pick("trust_anchor")
        anchor = None
        if anchor_text is not None:
            anchor = Path(anchor_text).expanduser()
            if where.startswith("dane_") and not anchor.is_absolute():
                anchor = ini_dir / anchor
            if not anchor.is_file():
                raise pytest.UsageError(f"{where}: no such file: {anchor}")

        validation, where = pick("validation")
        validation = validation or "local"
        if validation not in ("local", "resolver"):
            raise pytest.UsageError(f"{where}: {validation!r} is not local or resolver")

        timeout_text, where = pick("timeout")
        timeout = DEFAULT_TIMEOUT
        if timeout_text is not None:
            try:
                timeout = float(timeout_text)
            except ValueError:
                timeout = -1.0
            if not timeout > 0:
                raise pytest.UsageError(f"{where}: {timeout_text!r} is not a positive number")

        connect_text, where = pick("connect_port")
        connect_port = _port(connect_text, where) if connect_text is not None else None

        ehlo_name, where = pick("ehlo_name")
        if ehlo_name is not None and (
            not ehlo_name.isascii() or any(c.isspace() or not c.isprintable() for c in ehlo_name)
        ):
            raise pytest.UsageError(f"{where}: {ehlo_name!r} cannot be sent in EHLO")

        days: dict[str, float] = {}
        where_days: dict[str, str] = {}
        for name, default in zip(
            _DAYS,
            (DEFAULT_RRSIG_WARNING_DAYS, DEFAULT_RRSIG_CRITICAL_DAYS, DEFAULT_CERT_WARNING_DAYS),
            strict=True,
        ):
            text, where_days[name] = pick(name)
            days[name] = default if text is None else _days(text, where_days[name])
        critical, warning = days["rrsig_critical_days"], days["rrsig_warning_days"]
        if critical > warning:
            given = opt("dane_rrsig_warning_days") or ini("dane_rrsig_warning_days").strip()
            than = (
                f"{where_days['rrsig_warning_days']} ({warning:g})"
                if given
                else f"the rrsig warning days ({warning:g}, the default)"
            )
            raise pytest.UsageError(
                f"{where_days['rrsig_critical_days']} ({critical:g}) is more than {than}: a "
                "signature can only be critical within the warning window"
            )

        strict = opt("dane_strict")
        if strict is None:
            strict = ini("dane_strict")

        return cls(
            hosts=tuple(_name(h, "host") for h in hosts),
            domains=tuple(_name(d, "domain") for d in domains),
            ports=ports,
            resolver=resolver,
            trust_anchor=anchor,
            validation=validation,  # type: ignore[arg-type]
            timeout=timeout,
            connect_port=connect_port,
            ehlo_name=ehlo_name,
            strict=bool(strict),
            **days,
        )


def _name(text: str, what: str) -> str:
    name = text.strip()
    if not name or " " in name:
        raise pytest.UsageError(f"--dane-{what}/dane_{what}s: {text!r} is not a domain name")
    return name


def _port(text: object, where: str) -> int:
    try:
        port = int(str(text).strip())
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise pytest.UsageError(f"{where}: {text!r} is not a port number (1-65535)")
    return port


def _days(text: str, where: str) -> float:
    try:
        days = float(text.strip())
    except ValueError:
        days = -1.0
    if not (math.isfinite(days) and days > 0):
        raise pytest.UsageError(f"{where}: {text!r} is not a positive number of days")
    return days


def _check_resolver(text: str, where: str) -> None:
    """The checks of ``Server.parse`` without importing the DNS layer: ``ADDR``,
    ``ADDR:PORT`` or ``[V6]:PORT``, the address a literal IP."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise pytest.UsageError(f"{where}: {text!r} is not an IP address[:port]") from None
    _port(port, where)
