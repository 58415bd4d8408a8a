"""The plugin's settings: command-line and ini options, resolved into one :class:`DaneConfig`.

Every setting exists twice, as ``--dane-NAME`` on the command line and as ``dane_NAME`` in
``[tool.pytest.ini_options]`` (or ``pytest.ini``/``tox.ini``/``setup.cfg``); the command line
wins. The targets (``--dane-host``/``--dane-domain``) are one setting: naming any target on
the command line replaces every target of the ini file, so ``pytest --dane-host other.de``
checks just that host in a project whose ini file lists its own.

Each value is parsed by :mod:`dane_monitor.settings`, as ``dane-monitor check`` and the
exporter parse it, and refused with the same sentence, prefixed with the option's name.
Only pytest and :mod:`dane_monitor.settings` (standard library only) are imported here: the
plugin must cost nothing in a run that checks no targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import pytest

from dane_monitor import settings
from dane_monitor.settings import (
    DEFAULT_CERT_WARNING_DAYS,
    DEFAULT_RRSIG_CRITICAL_DAYS,
    DEFAULT_RRSIG_WARNING_DAYS,
    Thresholds,
)

if TYPE_CHECKING:
    from dane_monitor.check import Checker

DEFAULT_TIMEOUT = settings.DEFAULT_STEP_TIMEOUT
_T = TypeVar("_T")

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
    "profile": "sender profile (repeatable): an item per MX host fails when senders of this "
    "profile fare worse than RFC 7672 senders there (they defer, or DANE is off for them): "
    + ", ".join(settings.PROFILE_NAMES),
    "nameservers": "ask every authoritative server of the zones on the path directly, as "
    "dane-monitor check does (default true; false or --dane-no-nameservers: do not): an item "
    "nameservers[target|zone] per zone whose servers answer us",
    "nameserver_port": "the port the authoritative servers are asked on (default 53; a local "
    "world's DNS port)",
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
    group.addoption("--dane-profile", action="append", metavar="NAME", help=_HELP["profile"])
    group.addoption(
        "--dane-no-nameservers",
        dest="dane_nameservers",
        action="store_false",
        default=None,
        help="do not ask the authoritative servers directly (ini: dane_nameservers = false)",
    )
    group.addoption("--dane-nameserver-port", metavar="PORT", help=_HELP["nameserver_port"])
    group.addoption("--dane-strict", action="store_true", default=None, help=_HELP["strict"])
    for name, alias in _LISTS.items():
        # Both spellings: the option's (dane_host, as --dane-host) and the plural one.
        parser.addini(f"dane_{name}", _HELP[name], type="linelist", default=[])
        parser.addini(alias, f"the same as dane_{name}", type="linelist", default=[])
    parser.addini("dane_resolver", _HELP["resolver"], default="")
    parser.addini("dane_trust_anchor", _HELP["trust_anchor"], default="")
    parser.addini("dane_validation", _HELP["validation"], default="")
    parser.addini("dane_timeout", _HELP["timeout"], default="")
    parser.addini("dane_connect_port", _HELP["connect_port"], default="")
    parser.addini("dane_ehlo_name", _HELP["ehlo_name"], default="")
    for name in _DAYS:
        parser.addini(f"dane_{name}", _HELP[name], default="")
    parser.addini("dane_strict", _HELP["strict"], type="bool", default=False)
    parser.addini("dane_nameservers", _HELP["nameservers"], type="bool", default=True)
    parser.addini("dane_nameserver_port", _HELP["nameserver_port"], default="")
    parser.addini("dane_profile", _HELP["profile"], type="linelist", default=[])


_DAYS = ("rrsig_warning_days", "rrsig_critical_days", "cert_warning_days")

#: The list settings: ini name (as the repeatable option, ``--dane-host``) → its other
#: accepted spelling. Giving both in one ini file is an error.
_LISTS = {"hosts": "dane_host", "domains": "dane_domain", "ports": "dane_port"}


def ini_names() -> list[str]:
    """Every ini name the plugin knows (``dane_hosts`` and its alias ``dane_host``, …)."""
    return sorted({f"dane_{name}" for name in _HELP} | set(_LISTS.values()))


def check_ini_names(config: pytest.Config) -> None:
    """An unknown ``dane_*`` key in the ini file is an error naming the key meant.

    pytest only warns about an unknown key, at the end of the run: a misspelt
    ``dane_domian`` would silently check nothing.

    :raises pytest.UsageError: ``dane_domian: unknown ini option; did you mean dane_domain?``
    """
    import difflib

    known = ini_names()
    where = f" in {config.inipath}" if config.inipath else ""
    for key in sorted(_ini_keys(config)):
        if not key.startswith("dane_") or key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"the options are: {', '.join(known)}"
        raise pytest.UsageError(f"{key}{where}: not a pytest-dane ini option; {hint}")


def _ini_keys(config: pytest.Config) -> list[str]:
    """The keys of the ini file (pytest 9 keeps them in ``_inicfg``; ``inicfg`` is its
    deprecated view there, and the only one in pytest 8)."""
    keys = getattr(config, "_inicfg", None)
    if keys is None:
        keys = config.inicfg
    return list(keys)


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
    profiles: tuple[str, ...] = ()  # sender profiles required (dane_monitor.profiles)
    # Nameserver consistency (issue 16): every authoritative server asked, at this port.
    nameservers: bool = True
    nameserver_port: int | None = None  # None: 53

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """``(kind, name)`` in the order given: ``("host", …)`` first, then ``("domain", …)``."""
        return tuple(("host", h) for h in self.hosts) + tuple(("domain", d) for d in self.domains)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.rrsig_warning_days, self.rrsig_critical_days, self.cert_warning_days)

    def make_checker(self) -> Checker:
        """A fresh :class:`dane_monitor.check.Checker` with these settings
        (:func:`dane_monitor.settings.make_checker`): ``timeout`` for each SMTP/TLS step and
        at most for each DNS try.

        A ``Checker`` belongs to the event loop it first waits on; make one per loop.
        """
        return settings.make_checker(
            resolver=self.resolver,
            trust_anchor=self.trust_anchor,
            validation=self.validation,
            dns_timeout=min(self.timeout, settings.DEFAULT_DNS_TIMEOUT),
            ports=self.ports,
            connect_port=self.connect_port,
            ehlo_name=self.ehlo_name,
            step_timeout=self.timeout,
            thresholds=self.thresholds,
            nameservers=self.nameservers,
            nameserver_port=self.nameserver_port,
        )

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> DaneConfig:
        """Resolve command line over ini file.

        :raises pytest.UsageError: a value that cannot be used, naming the option.
        """
        check_ini_names(config)
        opt = config.getoption
        ini = config.getini
        if opt("dane_host") or opt("dane_domain"):
            hosts, domains = opt("dane_host") or [], opt("dane_domain") or []
            where_hosts, where_domains = "--dane-host", "--dane-domain"
        else:
            hosts, where_hosts = _ini_list(config, "hosts")
            domains, where_domains = _ini_list(config, "domains")
        ini_dir = config.inipath.parent if config.inipath else config.rootpath

        def pick(name: str) -> tuple[str | None, str]:
            value = opt(f"dane_{name}")
            if value is not None:
                return str(value), f"--dane-{name.replace('_', '-')}"
            value = ini(f"dane_{name}")
            return (str(value).strip() or None), f"dane_{name}"

        def parsed(name: str, parse: Callable[[str], _T]) -> tuple[_T | None, str]:
            text, where = pick(name)
            return (None if text is None else _parse(parse, text, where)), where

        ports_raw, where = (opt("dane_port"), "--dane-port")
        if not ports_raw:
            ports_raw, where = _ini_list(config, "ports")
        ports = tuple(dict.fromkeys(_parse(settings.parse_port, p, where) for p in ports_raw))

        resolver_text, where = pick("resolver")
        if resolver_text is not None:
            _parse(settings.parse_resolver, resolver_text, where)

        anchor_text, where = pick("trust_anchor")
        anchor = None
        if anchor_text is not None:
            anchor = Path(anchor_text).expanduser()
            if where.startswith("dane_") and not anchor.is_absolute():
                anchor = ini_dir / anchor
            if not anchor.is_file():
                raise pytest.UsageError(f"{where}: no such file: {anchor}")

        validation, _ = parsed("validation", settings.parse_validation)
        timeout, _ = parsed("timeout", settings.parse_duration)
        connect_port, _ = parsed("connect_port", settings.parse_port)
        ehlo_name, _ = parsed("ehlo_name", settings.parse_ehlo_name)

        days: dict[str, float] = {}
        where_days: dict[str, str] = {}
        for name in _DAYS:
            value, where_days[name] = parsed(name, settings.parse_days)
            if value is not None:
                days[name] = value
        try:
            thresholds = Thresholds(**days)
        except ValueError as exc:  # the critical window is longer than the warning window
            where = "/".join(where_days[n] for n in _DAYS[:2] if n in days)
            raise pytest.UsageError(f"{where}: {exc}") from None

        strict = opt("dane_strict")
        if strict is None:
            strict = ini("dane_strict")
        nameservers = opt("dane_nameservers")
        if nameservers is None:
            nameservers = ini("dane_nameservers")
        nameserver_port, _ = parsed("nameserver_port", settings.parse_port)

        profiles_raw, where = opt("dane_profile"), "--dane-profile"
        if not profiles_raw:
            profiles_raw, where = ini("dane_profile"), "dane_profile"
        profiles = tuple(
            dict.fromkeys(_parse(settings.parse_profile, p, where) for p in profiles_raw)
        )

        return cls(
            hosts=tuple(_parse(settings.parse_domain_name, h, where_hosts) for h in hosts),
            domains=tuple(_parse(settings.parse_domain_name, d, where_domains) for d in domains),
            ports=ports or (25,),
            resolver=resolver_text.strip() if resolver_text is not None else None,
            trust_anchor=anchor,
            validation=validation or "local",
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            connect_port=connect_port,
            ehlo_name=ehlo_name,
            strict=bool(strict),
            rrsig_warning_days=thresholds.rrsig_warning_days,
            rrsig_critical_days=thresholds.rrsig_critical_days,
            cert_warning_days=thresholds.cert_warning_days,
            profiles=profiles,
            nameservers=bool(nameservers),
            nameserver_port=nameserver_port,
        )


def _ini_list(config: pytest.Config, name: str) -> tuple[list[str], str]:
    """The ini list ``dane_<name>`` or its alias (``dane_hosts`` or ``dane_host``), and the
    name it was given under.

    :raises pytest.UsageError: both are given.
    """
    plural, alias = f"dane_{name}", _LISTS[name]
    values, other = config.getini(plural), config.getini(alias)
    if values and other:
        raise pytest.UsageError(f"{plural} and {alias} are the same list: give one of them")
    return (other, alias) if other else (values, plural)


def _parse(parse: Callable[[str], _T], text: str, where: str) -> _T:
    """``parse(text)``, its ValueError a usage error that names the option."""
    try:
        return parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
