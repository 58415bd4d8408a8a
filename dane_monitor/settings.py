"""One parser per rule for the values a user gives: ports, durations, days, resolver
addresses, names, expiry thresholds.

The command line (``dane_monitor.cli``), the exporter's configuration file
(``dane_monitor.exporter.config``) and the pytest plugin all take the same values; each
rule lives here once, so a value means the same thing, and is refused with the same
sentence, wherever it is given::

    parse_port("25")            # 25
    parse_duration("1m30s")     # 90.0
    parse_duration("0")         # ValueError: a duration must be more than 0 seconds, not '0'
    Thresholds(rrsig_warning_days=1, rrsig_critical_days=3)   # ValueError: critical > warning

Every parser takes what a user typed (a string) or what YAML gave (a number), returns the
value in its unit, and raises :class:`ValueError` with a one-line message that says what was
expected. Only the standard library is imported at module level: the pytest plugin imports
this module in every test run.

The parsed values become a checker in one place, :func:`make_checker` (with
:func:`probe_timeouts`, the one policy that turns a timeout into the probe's step deadlines,
and :func:`make_validator`): the CLI, the exporter's scheduler and the pytest plugin all call
it::

    checker = make_checker(resolver="127.0.0.1:5353", ports=(25,), step_timeout=10.0)
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path

    from dane_monitor.check import Checker
    from dane_monitor.lookup import ResolverValidator, Validator
    from dane_monitor.probe import Timeouts

__all__ = [
    "DEFAULT_CERT_WARNING_DAYS",
    "DEFAULT_DNS_TIMEOUT",
    "DEFAULT_RRSIG_CRITICAL_DAYS",
    "DEFAULT_RRSIG_WARNING_DAYS",
    "DEFAULT_STEP_TIMEOUT",
    "STEP_SHARES",
    "Thresholds",
    "arg_type",
    "make_checker",
    "make_validator",
    "parse_address",
    "parse_count",
    "parse_days",
    "parse_domain_name",
    "parse_duration",
    "parse_ehlo_name",
    "parse_port",
    "parse_ports",
    "parse_resolver",
    "parse_rrtype",
    "parse_validation",
    "probe_timeouts",
    "thresholds_from_args",
]

DEFAULT_RRSIG_WARNING_DAYS = 3.0
DEFAULT_RRSIG_CRITICAL_DAYS = 1.0
DEFAULT_CERT_WARNING_DAYS = 14.0
#: Seconds for each SMTP/TLS step: ``check --timeout``, the plugin's ``dane_timeout``.
DEFAULT_STEP_TIMEOUT = 10.0
#: Seconds for each DNS try: ``--dns-timeout``, the exporter's ``dns: timeout``.
DEFAULT_DNS_TIMEOUT = 2.0

# How a whole check's deadline D (the exporter's target timeout) is shared among the SMTP
# steps of one probe. The greeting gets the most: Postfix's postscreen holds the final "220 "
# back for up to 6 s (postscreen_greet_wait) and must not look like a broken server with the
# exporter's default D of 30 s. A probe as a whole gets 0.6 D; the check's own deadline caps
# the rest, so a slow endpoint still leaves room for DNS and the host's other addresses.
STEP_SHARES = {"connect": 0.1, "banner": 0.3, "command": 0.1, "tls": 0.15, "total": 0.6}

_NUMBER = re.compile(r"^[+-]?(\d+(?:\.\d*)?|\.\d+)$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")
_MS = re.compile(r"^(\d+(?:\.\d+)?)ms$")


def _days(days: float) -> str:
    return f"{days:g} day" if days == 1 else f"{days:g} days"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else repr(str(value))


def _number(value: Any, expected: str) -> float | None:
    """``value`` as a float when it is a number or a number's text, else ``None``.

    :raises ValueError: a boolean (YAML's ``yes``), ``expected, not a boolean``.
    """
    if isinstance(value, bool):
        raise ValueError(f"{expected}, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value.strip())
    return None


def parse_port(value: Any) -> int:
    """A TCP port, 1 to 65535, from ``25``, ``"25"`` or ``" 25 "``."""
    if isinstance(value, bool):
        raise ValueError(f"a port is a number from 1 to 65535, not {value!r}")
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        port = int(value.strip())
    else:
        raise ValueError(f"a port is a number from 1 to 65535, not {_shown(value)}")
    if not 0 < port < 65536:
        raise ValueError(f"a port is a number from 1 to 65535, not {_shown(value)}")
    return port


def parse_ports(values: Iterable[Any] | None, default: tuple[int, ...] = (25,)) -> tuple[int, ...]:
    """Ports in the order given, each once; ``default`` when none is given."""
    ports = [parse_port(v) for v in values or ()]
    return tuple(dict.fromkeys(ports)) if ports else default


def parse_count(value: Any) -> int:
    """A whole number of at least 1 (``concurrency``, ``--copies``), from ``3`` or ``"3"``."""
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"a whole number of at least 1, not {_shown(value)}")
    return value


def parse_duration(value: Any, *, zero: bool = False) -> float:
    """Seconds, more than zero (or zero too, with ``zero``) and finite, from a number
    (``30``, ``"1.5"``) or a Prometheus-style duration (``90s``, ``5m``, ``1h30m``,
    ``500ms``)."""
    expected = "a duration in seconds (or like 30s, 5m, 1h)"
    number = _number(value, expected)
    if number is not None:
        seconds = number
    elif isinstance(value, str) and (m := _MS.match(value.strip())):
        seconds = float(m.group(1)) / 1000
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())) and any(m.groups()):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    else:
        raise ValueError(f"{expected}, not {_shown(value)}")
    if not math.isfinite(seconds):
        raise ValueError(f"{expected}, not {_shown(value)}")
    if seconds < 0 or (seconds == 0 and not zero):
        at_least = "0 seconds or more" if zero else "more than 0 seconds"
        raise ValueError(f"a duration must be {at_least}, not {_shown(value)}")
    return seconds


def parse_days(value: Any) -> float:
    """A number of days, zero or more and finite (``14``, ``"2.5"``): an expiry window.
    Zero turns the warning off (only what has already expired is reported)."""
    expected = "a number of days, 0 or more"
    days = _number(value, expected)
    if days is None:
        raise ValueError(f"{expected}, not {_shown(value)}")
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"{expected}, not {_shown(value)}")
    return days


def _split_address(value: Any, expected: str) -> tuple[str, str | None]:
    """``(address, port text or None)``; :raises ValueError: ``expected, not VALUE``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{expected}, not {_shown(value)}")
    text = value.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{expected}, not {value!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{expected}, not {value!r}") from None
    return str(address), port_text


def parse_address(value: Any, default_port: int | None) -> tuple[str, int | None]:
    """``(address, port)`` from ``192.0.2.1``, ``192.0.2.1:25``, ``2001:db8::1`` or
    ``[2001:db8::1]:25``; ``default_port`` when none is given. Names are refused: an
    address is what a name resolves to."""
    expected = "an IP address with an optional port (192.0.2.1, 192.0.2.1:25, ::1, [::1]:25)"
    host, port_text = _split_address(value, expected)
    if port_text is None:
        return host, default_port
    try:
        return host, parse_port(port_text)
    except ValueError as exc:
        raise ValueError(f"bad port in {value!r}: {exc}") from None


def parse_resolver(value: Any) -> tuple[str, int]:
    """``(address, port)`` of a resolver from ``127.0.0.1``, ``127.0.0.1:5353``, ``::1`` or
    ``[::1]:5353`` (port 53 by default). A resolver is named by its IP address: finding it
    by name would need a resolver."""
    expected = (
        "a resolver is an IP address with an optional port "
        "(127.0.0.1, 127.0.0.1:5353, ::1, [::1]:5353)"
    )
    host, port_text = _split_address(value, expected)
    if port_text is None:
        return host, 53
    try:
        return host, parse_port(port_text)
    except ValueError as exc:
        raise ValueError(f"bad port in resolver {value!r}: {exc}") from None


def parse_ehlo_name(value: Any) -> str:
    """The name to send in EHLO: printable ASCII without spaces (RFC 5321 §4.1.1.1)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a host name to send in EHLO, not {_shown(value)}")
    text = value.strip()
    if not text.isascii() or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"{value!r} cannot be sent in EHLO (printable ASCII, no spaces)")
    if len(text) > 255:
        raise ValueError(f"an EHLO name of at most 255 characters, not {len(text)}")
    return text


def parse_domain_name(value: Any) -> str:
    """A domain or host name as given, stripped (a trailing dot is kept); U-labels allowed.

    Refuses what no mail domain or MX host can be: empty labels, labels longer than 63 or
    names longer than 253 octets, whitespace, control characters and ``* / \\ "``.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a domain or host name such as example.de, not {_shown(value)}")
    text = value.strip()
    bad = next((c for c in text if c.isspace() or not c.isprintable() or c in '*/\\"'), None)
    if bad is not None:
        raise ValueError(f"not a domain or host name: {value!r} (it contains {bad!r})")
    bare = text[:-1] if text.endswith(".") else text
    if not bare:
        raise ValueError(f"a domain or host name such as example.de, not the root {value!r}")
    try:
        ascii_name = bare if bare.isascii() else bare.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a domain or host name: {value!r} ({exc})") from None
    labels = ascii_name.split(".")
    if any(not label for label in labels):
        raise ValueError(
            f"not a domain or host name: {value!r} (an empty label: two dots in a row?)"
        )
    if any(len(label) > 63 for label in labels):
        raise ValueError(f"not a domain or host name: {value!r} (a label is longer than 63 octets)")
    if len(ascii_name) > 253:
        raise ValueError(f"not a domain or host name: {value!r} (longer than 253 octets)")
    return text


def parse_rrtype(value: Any) -> str:
    """A DNS record type by name (``tlsa``, ``AAAA``) or number (``TYPE52``), as its
    canonical name (``TLSA``)."""
    import dns.rdatatype

    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"a DNS record type (A, AAAA, MX, TLSA, DS, DNSKEY, …), not {_shown(value)}"
        )
    try:
        return dns.rdatatype.to_text(dns.rdatatype.from_text(value.strip()))
    except Exception:
        raise ValueError(
            f"a DNS record type (A, AAAA, MX, TLSA, DS, DNSKEY, …), not {value!r}"
        ) from None


def parse_validation(value: Any) -> Literal["local", "resolver"]:
    """How DNSSEC is validated: ``local`` (here, from the trust anchors) or ``resolver``
    (trust the resolver's AD bit)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text == "local":
        return "local"
    if text == "resolver":
        return "resolver"
    raise ValueError(f"the validation is local or resolver, not {_shown(value)}")


#: The sender profiles (dane_monitor.profiles.PROFILES, in its order; a test keeps them equal):
#: here so that the pytest plugin's options parse without importing the checker.
PROFILE_NAMES = ("rfc7672", "postfix", "postfix-insecure-mx-may", "rsa-sender", "exim-gnutls",
                 "sha1-refusing")  # fmt: skip


def parse_profile(value: Any) -> str:
    """A sender profile's name (dane_monitor.profiles), e.g. ``exim-gnutls``."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text in PROFILE_NAMES:
        return str(text)
    raise ValueError(f"the sender profiles are {', '.join(PROFILE_NAMES)}, not {_shown(value)}")


@dataclass(frozen=True)
class Thresholds:
    """The expiry windows of a check, in days.

    A DNSSEC signature on the path that expires within ``rrsig_warning_days`` is a warning,
    within ``rrsig_critical_days`` an error (CRITICAL); a leaf certificate that expires within
    ``cert_warning_days`` is a warning.

    :raises ValueError: a negative or non-finite window, or critical > warning.
    """

    rrsig_warning_days: float = DEFAULT_RRSIG_WARNING_DAYS
    rrsig_critical_days: float = DEFAULT_RRSIG_CRITICAL_DAYS
    cert_warning_days: float = DEFAULT_CERT_WARNING_DAYS

    def __post_init__(self) -> None:
        for name in ("rrsig_warning_days", "rrsig_critical_days", "cert_warning_days"):
            object.__setattr__(self, name, parse_days(getattr(self, name)))
        if self.rrsig_critical_days > self.rrsig_warning_days:
            raise ValueError(
                f"the critical window for signature expiry ({_days(self.rrsig_critical_days)}) "
                f"must be at most the warning window ({_days(self.rrsig_warning_days)})"
            )

    def options(self) -> dict[str, float]:
        """The :class:`dane_monitor.check.Options` fields these thresholds set."""
        return {
            "rrsig_warn_days": self.rrsig_warning_days,
            "rrsig_error_days": self.rrsig_critical_days,
            "cert_warn_days": self.cert_warning_days,
        }


def thresholds_from_args(args: argparse.Namespace, base: Thresholds | None = None) -> Thresholds:
    """``base`` (a configuration's, or the defaults) with the command line's
    ``--rrsig-warning``, ``--rrsig-critical`` and ``--cert-warning`` (days) on top.

    :raises ValueError: critical longer than warning.
    """
    values = dataclasses.asdict(base or Thresholds())
    for flag in ("rrsig_warning", "rrsig_critical", "cert_warning"):
        given = getattr(args, flag, None)
        if given is not None:
            values[f"{flag}_days"] = given
    return Thresholds(**values)


def arg_type(parse: Callable[[Any], Any], name: str) -> Callable[[str], Any]:
    """An argparse ``type`` from one of these parsers: its ValueError message becomes
    argparse's ("argument --timeout: a duration must be more than 0 seconds, not '0'")."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


# -- from settings to a checker ---------------------------------------------------------------


def probe_timeouts(step: float | None = None, *, check: float | None = None) -> Timeouts:
    """The probe's step deadlines (:class:`dane_monitor.probe.Timeouts`) from the timeouts a
    user gives; the one policy of the CLI, the exporter and the pytest plugin.

    ``step`` (``check --timeout``, ``tlsa --timeout``, the plugin's ``dane_timeout``) bounds
    each SMTP/TLS step (connect, greeting, each command, the handshake); the whole probe gets
    four times it, the polite QUIT at most 5 s. ``check`` (the exporter's target timeout)
    bounds the whole check: each step gets at most its share of it (:data:`STEP_SHARES`,
    never under 50 ms), the probe 0.6 of it, so that a hanging server is judged (senders
    defer) before the check's deadline. Given both, each step gets the smaller.

    :raises ValueError: neither given, or one that is not a duration.
    """
    from dane_monitor.probe import Timeouts

    if step is None and check is None:
        raise ValueError("probe_timeouts needs a step timeout, a check timeout or both")
    limits: dict[str, float] = {}
    if step is not None:
        step = parse_duration(step)
        limits = {"connect": step, "banner": step, "command": step, "tls": step}
        limits |= {"quit": min(5.0, step), "total": 4 * step}
    if check is not None:
        check = parse_duration(check)
        shares = {name: max(0.05, check * share) for name, share in STEP_SHARES.items()}
        shares["quit"] = max(0.05, min(5.0, check * 0.05))
        limits = {k: min(v, limits.get(k, v)) for k, v in shares.items()}
    return Timeouts(**limits)


def make_validator(
    resolver: str | None = None,
    *,
    trust_anchor: str | Path | None = None,
    validation: str = "local",
    timeout: float = DEFAULT_DNS_TIMEOUT,
) -> Validator | ResolverValidator:
    """The DNSSEC validator these settings describe: ``resolver`` as :func:`parse_resolver`
    reads it (``None``: the first nameserver of /etc/resolv.conf), ``trust_anchor`` a
    DS/DNSKEY file (``None``: the IANA root anchors), ``timeout`` seconds per DNS try.

    :raises ValueError: a bad resolver, validation mode or timeout.
    :raises dane_monitor.lookup.TrustAnchorError: (a ValueError) an unusable trust anchor.
    """
    from dane_monitor import lookup

    server = lookup.Server(*parse_resolver(resolver)) if resolver is not None else None
    return lookup.make_validator(
        server,
        trust_anchor=trust_anchor,
        mode=parse_validation(validation),
        timeout=parse_duration(timeout),
    )


def make_checker(
    validator: Validator | ResolverValidator | None = None,
    *,
    resolver: str | None = None,
    trust_anchor: str | Path | None = None,
    validation: str = "local",
    dns_timeout: float = DEFAULT_DNS_TIMEOUT,
    ports: Iterable[Any] | None = None,
    connect_port: int | None = None,
    ehlo_name: str | None = None,
    step_timeout: float | None = None,
    check_timeout: float | None = None,
    thresholds: Thresholds | None = None,
    concurrency: int | None = None,
    both_key_types: bool = True,
    recheck_other_key_type: int = 1,
    transcripts: bool = True,
    nameservers: bool = False,
    nameserver_port: int | None = None,
    nameserver_max_age: float = 0.0,
    nameserver_zones: int = 4096,
) -> Checker:
    """The one place a :class:`dane_monitor.check.Checker` is made from settings.

    ``validator`` shares one validator (and its DNS cache) between checkers, as the
    exporter does; without it one is made from ``resolver``, ``trust_anchor``,
    ``validation`` and ``dns_timeout`` (:func:`make_validator`). The probe's deadlines come
    from ``step_timeout`` and ``check_timeout`` (:func:`probe_timeouts`;
    :data:`DEFAULT_STEP_TIMEOUT` per step when neither is given). A checker belongs to the
    event loop it first waits on: make one per loop.

    ``recheck_other_key_type``: N > 1 lets a long-lived checker skip the second key type's
    handshake when it cannot change the answer, making it at least every Nth check of an
    endpoint (:class:`dane_monitor.check.Checker` says when); 1 (the default) makes it on
    every check. ``transcripts``: keep each probe's SMTP transcript (the default; a
    background monitor that never shows them passes False, and a check can still ask for
    them with ``check_domain(..., transcripts=True)``). ``nameservers``: also ask every
    authoritative server of the zones on the path directly (:mod:`dane_monitor.nameservers`),
    at ``nameserver_port`` (53 by default), each query within ``dns_timeout``, reusing a
    zone's answers for ``nameserver_max_age`` seconds (0: every check asks again), for at
    most ``nameserver_zones`` zones.

    :raises ValueError: a value the parsers here refuse (the message says which).
    """
    from dane_monitor.check import Checker, Options

    if validator is None:
        validator = make_validator(
            resolver, trust_anchor=trust_anchor, validation=validation, timeout=dns_timeout
        )
    if step_timeout is None and check_timeout is None:
        step_timeout = DEFAULT_STEP_TIMEOUT
    th = thresholds or Thresholds()
    options = Options(
        ports=parse_ports(ports),
        connect_port=None if connect_port is None else parse_port(connect_port),
        ehlo_name=None if ehlo_name is None else parse_ehlo_name(ehlo_name),
        timeouts=probe_timeouts(step_timeout, check=check_timeout),
        both_key_types=both_key_types,
        recheck_other_key_type=recheck_other_key_type,
        transcripts=bool(transcripts),
        nameservers=bool(nameservers),
        nameserver_port=53 if nameserver_port is None else parse_port(nameserver_port),
        nameserver_timeout=dns_timeout,
        nameserver_max_age=nameserver_max_age,
        nameserver_zones=nameserver_zones,
        rrsig_warn_days=th.rrsig_warning_days,
        rrsig_error_days=th.rrsig_critical_days,
        cert_warn_days=th.cert_warning_days,
    )
    if concurrency is not None:
        options = dataclasses.replace(options, concurrency=concurrency)
    return Checker(validator, options)
