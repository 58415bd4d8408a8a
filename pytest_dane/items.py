"""The DANE checks of ``--dane-host``/``--dane-domain`` as pytest items.

How the item list is known (and why xdist sees the same one in every worker): the ids
name the endpoint (MX host, address, key type), and those are only known once DNS has been
asked and the servers have been probed. So the check runs once, before the items are
made, and every item judges one rule on its result:

- without xdist, at collection time, once per session (all targets concurrently);
- with xdist, in the controller (``pytest_configure_node``, before the first worker starts),
  and its result travels to every worker with the worker's input. Each worker builds the
  items from the same result, so collection is identical by construction, and the servers
  see one check per run, not one per worker. (Checking in each worker could disagree —
  a timeout in one, a second key type in the other — and xdist refuses a run whose workers
  collected different items.)

Rules, one item each (the id lists the place, then the rule):

- ``check``: per target, only when the check itself did not complete (it raised, or the
  target is not a name): fails with the reason;
- ``dnssec``: the MX RRset (per domain) and the A/AAAA and TLSA lookups (per MX host and
  port) are DNSSEC-secure;
- ``tlsa-usable``: a secure TLSA RRset with at least one record SMTP senders use;
- ``starttls``: per address and port, the server offers STARTTLS and completes TLS;
- ``tlsa-match``: per address, port and key type served, a usable record authenticates the
  presented chain (a host without any address gets one ``starttls`` and one ``tlsa-match``
  item for the host, which fail);
- warnings — ``rrsig-expiry``, ``cert-expiry``, ``rollover``, ``stale-records`` and
  ``warnings`` (every other warning finding): they pass and emit a :class:`DaneWarning`
  (shown in pytest's warnings summary) unless ``--dane-strict`` makes them fail. An
  ``rrsig-expiring`` of severity error (under a day left) fails regardless, and ``warnings``
  fails on any error finding no other rule owns.

An item passes only when its rule is proven. Every rule names the evidence it needs
(:func:`_gaps` and the judges): an item whose evidence is absent never passes.

- When the evidence is absent because an earlier step failed on the server's side (the TLSA
  RRset is bogus, so nothing was probed; a host has no address), ``dnssec``,
  ``tlsa-usable``, ``starttls`` and ``tlsa-match`` fail, saying why, so that ``-k
  tlsa-match`` alone can never turn a broken domain green.
- The warning rules, and ``starttls``/``tlsa-match`` of an address this host cannot reach
  (probe error ``no-route``), are *not checked* instead: skipped with the reason ("not
  checked: no certificate was seen from mx1.example.de 192.0.2.1:25 (banner-timeout)"), or
  failed as not checked under ``--dane-strict``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, NoReturn

import pytest

from dane_monitor import tlsa as T
from dane_monitor.findings import CATALOGUE
from dane_monitor.report import (
    ACTION_SENTENCE,
    DNSInfo,
    DomainResult,
    EndpointResult,
    Finding,
    HostResult,
    SenderAction,
    Severity,
)
from pytest_dane.config import DaneConfig
from pytest_dane.errors import DaneCheckFailed, DaneWarning

WORKERINPUT_KEY = "dane_results"

#: Between the parts of an item's place:
#: ``tlsa-match[example.de|mx1.example.de|192.0.2.1|25|ecdsa]``.
ID_SEPARATOR = "|"


# The finding codes each rule owns come from the catalogue (dane_monitor.findings); the
# ``warnings`` rule takes every other warning.
def _owned_by(rule: str) -> frozenset[str]:
    return frozenset(c.code for c in CATALOGUE.values() if c.rule == rule)


_DNSSEC = _owned_by("dnssec")
_TLSA = _owned_by("tlsa-usable")
_STARTTLS = _owned_by("starttls")
_MATCH = _owned_by("tlsa-match")
_NAMESERVERS = _owned_by("nameservers")
_WARNING_RULES = {r: _owned_by(r) for r in ("rrsig-expiry", "cert-expiry", "rollover",
                                            "stale-records")}  # fmt: skip
_OWNED = _DNSSEC | _TLSA | _STARTTLS | _MATCH | _NAMESERVERS | set().union(*_WARNING_RULES.values())
# Probe errors that are about this host, not the server (our host has no route to that
# address family): the endpoint was not checked, and that is not the server's fault.
_OUR_SIDE = {"no-route"}


# -- running the check once -------------------------------------------------------------------


@dataclass
class TargetResult:
    kind: str  # host | domain
    name: str  # as given
    result: DomainResult | None
    error: str | None = None  # the check itself raised (a bug, or a setting it cannot use)


def run_checks(cfg: DaneConfig) -> list[TargetResult]:
    """Check every target of ``cfg`` concurrently with one shared checker."""

    async def run() -> list[TargetResult]:
        try:
            checker = cfg.make_checker()
        except Exception as exc:
            message = f"cannot set up the checker: {type(exc).__name__}: {exc}"
            return [TargetResult(kind, name, None, message) for kind, name in cfg.targets]

        async def one(kind: str, name: str) -> TargetResult:
            try:
                if kind == "host":
                    return TargetResult(kind, name, await checker.check_host(name))
                return TargetResult(kind, name, await checker.check_domain(name))
            except Exception as exc:
                return TargetResult(kind, name, None, f"{type(exc).__name__}: {exc}")

        return list(await asyncio.gather(*(one(k, n) for k, n in cfg.targets)))

    return asyncio.run(run())


def encode(results: list[TargetResult]) -> str:
    """For xdist's worker input (execnet carries plain strings)."""
    return base64.b64encode(pickle.dumps(results)).decode("ascii")


def decode(data: str) -> list[TargetResult]:
    # Written by this run's own controller process a moment ago: trusted input.
    return pickle.loads(base64.b64decode(data))


# -- the rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    target: str
    mx: str | None = None
    port: int | None = None
    address: str | None = None
    key_type: str | None = None
    zone: str | None = None  # a zone whose authoritative servers were asked (nameservers)

    def id(self) -> str:
        parts = [self.target.rstrip(".")]
        if self.zone is not None:
            parts.append(self.zone.rstrip(".") or ".")
        if self.mx is not None and self.mx.rstrip(".") != parts[0]:
            parts.append(self.mx.rstrip("."))
        if self.address is not None:
            parts.append(_id_address(self.address))
        if self.port is not None:
            parts.append(str(self.port))
        if self.key_type is not None:
            parts.append(self.key_type)
        # "|", not pytest's "-": host names contain "-" (good-ee.example|mx1.good-ee.example|25).
        return ID_SEPARATOR.join(parts)


def _id_address(address: str) -> str:
    # "::" separates node names in a pytest node id: write IPv6 addresses in full.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return ip.exploded if ip.version == 6 else str(ip)


@dataclass(frozen=True)
class Rule:
    name: str
    place: Place
    target_index: int
    host_index: int | None = None
    endpoint_indexes: tuple[int, ...] = ()

    @property
    def item_name(self) -> str:
        return f"{self.name}[{self.place.id()}]"


def rules(index: int, tr: TargetResult, profiles: tuple[str, ...] = ()) -> Iterator[Rule]:
    """The rules of one target, in a fixed order derived from the result alone (and the
    sender profiles required: an item ``sender-NAME`` per host each)."""
    if tr.result is None or (tr.result.mx_only and not tr.result.hosts):
        # The check raised, or the host is not a name: there is nothing else to judge.
        yield Rule("check", Place(tr.name), index)
        return
    result = tr.result
    target = result.domain
    if not result.mx_only:
        yield Rule("dnssec", Place(target), index)
    for hi, host in enumerate(result.hosts):
        at = Place(target, host.name, host.port)
        yield Rule("dnssec", at, index, hi)
        yield Rule("tlsa-usable", at, index, hi)
        if not host.addresses:
            # Nothing to probe: one item each for the host, so that -k starttls or -k
            # tlsa-match still select this host (and fail it) instead of leaving it out.
            yield Rule("starttls", at, index, hi)
            yield Rule("tlsa-match", at, index, hi)
        for address in host.addresses:
            eps = tuple(i for i, ep in enumerate(host.endpoints) if ep.address == address)
            here = Place(target, host.name, host.port, address)
            yield Rule("starttls", here, index, hi, eps)
            key_types = [host.endpoints[i].key_type for i in eps] or [None]
            for key_type in dict.fromkeys(key_types):
                same = tuple(i for i in eps if host.endpoints[i].key_type == key_type)
                place = Place(target, host.name, host.port, address, key_type)
                yield Rule("tlsa-match", place, index, hi, same)
        for name in _WARNING_RULES:
            yield Rule(name, at, index, hi)
        yield Rule("warnings", at, index, hi)
        for profile in profiles:
            yield Rule(f"{SENDER_PREFIX}{profile}", at, index, hi)
    if not result.hosts and result.profiles:
        # No MX host judged (a bogus MX RRset): the whole target's prediction per profile
        # (with hosts, each host's item says it).
        for profile in profiles:
            yield Rule(f"{SENDER_PREFIX}{profile}", Place(target), index)
    for zone in _compared_zones(result):
        yield Rule("nameservers", Place(target, zone=zone), index)
    yield Rule("warnings", Place(target), index)


def _compared_zones(result: DomainResult) -> list[str]:
    """The zones of the nameserver survey that at least one server answered with authority:
    those the ns-* findings judge. A zone nobody answers us directly (outbound DNS blocked)
    gets no item, as ``check`` says nothing of it."""
    if result.nameservers is None:
        return []
    return [
        z["zone"]
        for z in result.nameservers["zones"]
        if any(s["state"] == "ok" for s in z["servers"])
    ]


STRICT_NOTE = "(fails because of --dane-strict / dane_strict)"


def judge(rule: Rule, tr: TargetResult, strict: bool) -> None:
    """Raise :class:`DaneCheckFailed` when the rule does not hold; warn when it holds with
    warnings (fail in strict mode); skip when it could not be checked (fail in strict
    mode)."""
    if tr.result is None:
        raise DaneCheckFailed(f"the check of {tr.kind} {tr.name} did not complete: {tr.error}")
    result = tr.result
    host = result.hosts[rule.host_index] if rule.host_index is not None else None
    if rule.name.startswith(SENDER_PREFIX):
        judgement = _judge_sender(rule, result, host)
    else:
        judgement = _JUDGES[rule.name](rule, result, host)
    if judgement is None:
        return
    if judgement.kind == "fail":
        raise DaneCheckFailed(judgement.text)
    if judgement.kind == "not-checked":
        if strict:
            note = "a rule that could not be evaluated is not passed"
            raise DaneCheckFailed(f"{judgement.text}\n{STRICT_NOTE}: {note}")
        _skip(judgement.text)
    if strict:
        raise DaneCheckFailed(f"{judgement.text}\n{STRICT_NOTE}")
    # Reported at the item (pytest's summary names it), not at this line of the plugin.
    warnings.warn_explicit(DaneWarning(judgement.text), DaneWarning, "dane", 0)


def _skip(reason: str) -> NoReturn:
    # Reported at the item ("SKIPPED [4] dane:1: not checked: …"), not at this line of the
    # plugin; the keyword is pytest's own (skip marks use it), hence the fallback.
    try:
        exc = pytest.skip.Exception(reason, _use_item_location=True)  # type: ignore[call-arg]
    except TypeError:
        pytest.skip(reason)
    raise exc


@dataclass(frozen=True)
class Judgement:
    """Why a rule does not simply hold. ``fail``: it does not hold; ``warn``: it holds, with a
    warning; ``not-checked``: the evidence it needs is absent (the text says which)."""

    kind: Literal["fail", "warn", "not-checked"]
    text: str


def _not_checked(reasons: list[str]) -> Judgement:
    # One line: it is the skip reason of pytest's short summary and of JUnit XML.
    return Judgement("not-checked", "not checked: " + "; ".join(reasons))


def _findings(result: DomainResult, host: HostResult | None, codes=None, endpoint=None):
    pool = host.findings if host is not None else result.findings
    out = [f for f in pool if codes is None or f.code in codes]
    if endpoint is not None:
        out = [f for f in out if f.address in (None, endpoint)]
    return out


# -- evidence: what a rule needs, and why it is absent ---------------------------------------


def _tlsa_lookup(host: HostResult) -> DNSInfo | None:
    return host.tlsa_dns


def _where(host: HostResult, address: str, key_type: str | None = None) -> str:
    at = f"[{address}]" if ":" in address else address
    key = f" ({key_type} key)" if key_type else ""
    return f"{host.name.rstrip('.')} {at}:{host.port}{key}"


def _no_address(host: HostResult) -> str:
    bad = list(dict.fromkeys(f.code for f in host.findings if f.code in _DNSSEC))
    name = host.name.rstrip(".")
    if bad and "mx-no-address" not in bad:
        return f"no address of {name} could be resolved ({', '.join(bad)})"
    return f"{name} has no address to connect to" + (f" ({', '.join(bad)})" if bad else "")


def _from_here(host: HostResult, address: str) -> bool:
    """False when this host could not reach the address at all (no route: not the server's
    fault). Such an address is judged by its own starttls/tlsa-match items (not checked);
    the host's other rules judge the addresses this host can reach."""
    eps = [ep for ep in host.endpoints if ep.address == address]
    return not eps or any(ep.probe_error not in _OUR_SIDE for ep in eps)


def _unseen(host: HostResult) -> list[str]:
    """Why the certificate of an address (or of the whole host) was never seen; empty when
    every address of the host this host can reach presented one."""
    if not host.addresses:
        return [_no_address(host)]
    reachable = [a for a in host.addresses if _from_here(host, a)]
    if not reachable:
        listed = ", ".join(host.addresses)
        return [f"no address of {host.name.rstrip('.')} is reachable from this host ({listed})"]
    out: list[str] = []
    for address in reachable:
        eps = [ep for ep in host.endpoints if ep.address == address]
        if not eps:
            out.append(f"{_where(host, address)} was not probed ({_why_not_probed(host)})")
        for ep in eps:
            if not ep.chain:
                why = ep.probe_error or "no TLS handshake"
                out.append(f"no certificate was seen from {_where(host, address)} ({why})")
    return out


def _no_dane(host: HostResult) -> str | None:
    """Why no usable TLSA record applies to the host (None: one does)."""
    if host.dane_applies and host.tlsa_usable > 0:
        return None
    codes = [f.code for f in host.findings if f.code in _DNSSEC | _TLSA]
    why = f" ({', '.join(dict.fromkeys(codes))})" if codes else ""
    return f"no usable TLSA record applies to {host.name.rstrip('.')} port {host.port}{why}"


def _unauthenticated(host: HostResult) -> list[str]:
    return [
        f"the chain from {_where(host, ep.address, ep.key_type)} does not authenticate "
        "(see tlsa-match)"
        for ep in host.endpoints
        if ep.chain and not ep.authenticated and _from_here(host, ep.address)
    ]


def _gaps(host: HostResult, *, dane: bool, authenticated: bool) -> list[str]:
    """What a host-level rule cannot see. Every rule needs a certificate from every address;
    ``dane``: a usable TLSA record must apply; ``authenticated``: every chain must
    authenticate (the checker judges certificate dates and rollover readiness only then)."""
    if not host.addresses:
        return [_no_address(host)]
    if dane and (why := _no_dane(host)) is not None:
        return [why]
    gaps = _unseen(host)
    if authenticated:
        gaps += _unauthenticated(host)
    return gaps


def _unowned_errors(pool: list[Finding]) -> list[Finding]:
    """Error findings no rule judges (a code added to the checker, or a crash it reported):
    the ``warnings`` rule fails on them rather than letting them pass unseen."""
    return [f for f in pool if f.severity == Severity.ERROR and f.code not in _OWNED]


# -- the judges --------------------------------------------------------------------------------


def _judge_check(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement:
    bad = [f for f in result.findings if f.severity == Severity.ERROR] or result.findings
    return _fail([f"{result.domain} could not be checked"], bad)


def _judge_dnssec(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement | None:
    if host is None:  # the domain's MX RRset
        mx = result.mx_dns
        bad = _findings(result, None, _DNSSEC)
        if mx is not None and mx.status == "secure" and not bad:
            return None
        if mx is not None and mx.status in ("bogus", "indeterminate"):
            state = f"fails DNSSEC validation ({mx.status}): DANE senders defer mail"
        elif mx is not None and mx.kind == "nxdomain":
            state = "does not exist (NXDOMAIN): mail to it bounces"
        elif mx is None:
            state = "was not looked up"
        else:
            state = "is not DNSSEC-secure: DANE does not apply"
        lines = [f"the MX RRset of {result.domain} {state}"]
        if mx is not None:
            lines += ["", "lookups:", *_dns_table([mx])]
        return _fail(lines, bad)
    lookups = list(host.dns)
    bad = [f for f in host.findings if f.code in _DNSSEC]
    # Where a secure TLSA RRset decided (the decision table's "dane" row), insecure address
    # records reached through a secure first CNAME are RFC 7672 §2.2.3's business as usual.
    insecure = [] if host.case == "dane" else [
        d for d in lookups if d.status != "secure" and d.kind == "positive"]  # fmt: skip
    failing = [d for d in lookups if d.status in ("bogus", "indeterminate")]
    tlsa = _tlsa_lookup(host)
    proven = tlsa is not None and tlsa.status == "secure"
    if proven and not bad and not insecure and not failing and host.addresses:
        return None
    defer = host.sender_action == SenderAction.DEFER or any(
        f.severity == Severity.ERROR for f in bad
    )
    if not host.addresses and not failing:
        head = f"{_no_address(host)}: senders cannot reach it"
    else:
        head = f"the DNS path to {host.tlsa_name or host.name} is not DNSSEC-secure: " + (
            "DANE senders defer mail" if defer else "DANE does not apply"
        )
    lines = [head]
    if tlsa is None and host.addresses:
        lines.append(f"the TLSA RRset at _{host.port}._tcp.{host.name} was not looked up")
    lines += ["", "lookups:", *_dns_table(lookups)]
    return _fail(lines, bad)


def _judge_tlsa_usable(
    rule: Rule, result: DomainResult, host: HostResult | None
) -> Judgement | None:
    assert host is not None
    if host.dane_applies and host.tlsa_usable > 0:
        return None
    tlsa = _tlsa_lookup(host)
    if tlsa is None:
        state = "was not looked up (an earlier DNS step failed, see dnssec)"
    else:
        state = f"is {tlsa.status} {tlsa.kind}" + (f" ({tlsa.reason})" if tlsa.reason else "")
    owner = host.tlsa_name or f"_{host.port}._tcp.{host.name}"
    lines = [
        f"no usable TLSA record: the TLSA RRset at {owner} {state}",
        "expected: a DNSSEC-secure TLSA RRset with a DANE-EE (3) or DANE-TA (2) record",
    ]
    for record in host.tlsa_records:
        lines.append(f"          {record}")
    lines += _fix(host, None)
    return _fail(lines, _findings(result, host, _TLSA | _DNSSEC))


def _unreachable_from_here(eps: list[EndpointResult], host: HostResult) -> Judgement | None:
    ours = [ep for ep in eps if ep.probe_error in _OUR_SIDE]
    if not ours:
        return None
    return _not_checked(
        [
            f"{_where(host, ep.address)} is not reachable from this host ({ep.probe_error}"
            + (f": {ep.probe_detail}" if ep.probe_detail else "")
            + ")"
            for ep in ours[:1]
        ]
    )


def _judge_starttls(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement | None:
    assert host is not None
    address = rule.place.address
    if address is None:  # the host has no address
        return _fail([f"{_no_address(host)}: there is no server to offer STARTTLS"], [])
    eps = [host.endpoints[i] for i in rule.endpoint_indexes]
    if eps and all(ep.probe_error is None and ep.starttls_offered for ep in eps):
        return None
    if not eps:
        return _fail([f"{address} port {host.port} was not probed: {_why_not_probed(host)}"], [])
    if (ours := _unreachable_from_here(eps, host)) is not None:
        return ours
    lines: list[str] = []
    for ep in eps:
        if ep.probe_error is None and ep.starttls_offered:
            continue
        found = ep.probe_error or ("no STARTTLS" if not ep.starttls_offered else "?")
        lines.append(f"{address} port {host.port}: {found}: {ep.probe_detail}".rstrip(": "))
        lines.append("expected: the server offers STARTTLS and completes the TLS handshake")
        if ep.transcript:
            lines.append("SMTP dialogue (last lines):")
            lines += [f"    {line}" for line in ep.transcript[-8:]]
        break
    return _fail(lines, _findings(result, host, _STARTTLS, address))


def _judge_tlsa_match(
    rule: Rule, result: DomainResult, host: HostResult | None
) -> Judgement | None:
    assert host is not None
    address, key = rule.place.address, rule.place.key_type
    if address is None:  # the host has no address
        return _fail([f"{_no_address(host)}: there is no server to authenticate"], [])
    eps = [host.endpoints[i] for i in rule.endpoint_indexes]
    if eps and all(ep.authenticated for ep in eps):
        return None
    if not eps:
        return _fail(
            [
                f"{address} port {host.port} cannot be authenticated: it was not probed: "
                f"{_why_not_probed(host)}"
            ],
            [],
        )
    if (ours := _unreachable_from_here(eps, host)) is not None:
        return ours
    ep = next(ep for ep in eps if not ep.authenticated)
    what = f"{address} port {host.port}" + (f" ({key} key)" if key else "")
    if not host.dane_applies or host.tlsa_usable == 0:
        head = f"{what} cannot be authenticated: no usable TLSA record at {host.tlsa_name}"
    elif ep.probe_error is not None:
        head = f"{what} cannot be authenticated: the probe failed: {ep.probe_error}"
    else:
        head = f"{what} does not authenticate: {ep.match_failure}"
    lines = [head]
    if ep.match_detail:
        lines.append(f"    {ep.match_detail}")
    if ep.sender_action is not None:
        lines.append(f"sender: {ACTION_SENTENCE[ep.sender_action]}")
    lines += ["", *_side_by_side(host, ep)]
    lines += _fix(host, ep)
    return _fail(lines, [])  # the finding would repeat the above


# What each warning rule needs before it can pass (None: always evaluable).
def _rrsig_gaps(result: DomainResult, host: HostResult) -> list[str]:
    # The checker judges signature expiry once it has validated the path down to the TLSA
    # RRset; a bogus or unanswered TLSA RRset leaves the earliest expiry on the path unknown.
    tlsa = _tlsa_lookup(host)
    if tlsa is None:
        if not host.addresses:
            return [_no_address(host)]
        bad = [f.code for f in host.findings if f.code in _DNSSEC]
        why = f" ({', '.join(dict.fromkeys(bad))})" if bad else ""
        name = host.name.rstrip(".")
        return [f"the DNS path to {name} was not validated down to its TLSA RRset{why}"]
    if tlsa.status in ("bogus", "indeterminate"):
        return [f"the TLSA RRset at {tlsa.name} could not be validated ({_state(tlsa)})"]
    if host.rrsig_expiration is None:
        how = (
            "the resolver's answers carried no signatures (resolver validation)"
            if result.validation == "resolver"
            else "no signed RRset was read"
        )
        return [f"no DNSSEC signature expiry is known on the path to {tlsa.name}: {how}"]
    return []


def _state(d: DNSInfo) -> str:
    if d.kind == "nxdomain" and d.status in ("secure", "insecure"):
        return "NXDOMAIN"
    return d.status + (f": {d.reason}" if d.reason else "")


def _stale_gaps(result: DomainResult, host: HostResult) -> list[str]:
    gaps = _gaps(host, dane=True, authenticated=False)
    if not gaps and not any(ep.authenticated for ep in host.endpoints):
        # The checker tells stale records from current ones by the keys that authenticate.
        gaps = ["no endpoint authenticates (see tlsa-match)"]
    return gaps


def _host_warning_gaps(result: DomainResult, host: HostResult) -> list[str]:
    # Every other warning rule needs the host checked to the end: TLSA read, servers seen.
    tlsa = _tlsa_lookup(host)
    if tlsa is None or tlsa.status in ("bogus", "indeterminate"):
        return _rrsig_gaps(result, host)  # says why the TLSA RRset was not read
    return _unseen(host)


def _domain_warning_gaps(result: DomainResult) -> list[str]:
    if result.mx_only:
        return []
    mx = result.mx_dns
    if mx is None:
        return [f"the MX RRset of {result.domain} was not looked up"]
    if mx.status in ("bogus", "indeterminate") or mx.kind in ("nxdomain", "error"):
        return [f"the MX RRset of {result.domain} could not be read ({_state(mx)})"]
    return []


_GAPS: dict[str, Callable[[DomainResult, HostResult], list[str]]] = {
    "rrsig-expiry": _rrsig_gaps,
    "cert-expiry": lambda result, host: _gaps(host, dane=True, authenticated=True),
    "rollover": lambda result, host: _gaps(host, dane=True, authenticated=True),
    "stale-records": _stale_gaps,
    "warnings": _host_warning_gaps,
}


def unchecked(result: DomainResult, code: str) -> list[str]:
    """Why ``result`` cannot tell whether finding ``code`` applies (empty: the rule that owns
    it had all its evidence at every host). For ``assert_no_findings``."""
    rule = next((name for name, codes in _WARNING_RULES.items() if code in codes), None)
    if rule is None:
        return []
    if not result.hosts and result.mx_mode != "null":
        return [f"no MX host of {result.domain} was checked"]
    return [gap for host in result.hosts for gap in _GAPS[rule](result, host)]


def _warning_judge(name: str):
    codes = _WARNING_RULES.get(name)

    def judge(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement | None:
        pool = host.findings if host is not None else result.findings
        if codes is not None:
            found = [f for f in pool if f.code in codes]
        else:
            found = [f for f in pool if f.severity == Severity.WARNING and f.code not in _OWNED]
            errors = _unowned_errors(pool)
            if errors:
                text = "\n".join(_finding_lines(errors))
                return Judgement("fail", f"{name}: errors no other rule judges\n{text}")
        if found:
            text = "\n".join(_finding_lines(found))
            if any(f.severity == Severity.ERROR for f in found):
                return Judgement("fail", f"{name}: an error, not just a warning\n{text}")
            return Judgement("warn", f"{name} ({rule.place.id()}):\n{text}")
        gaps = _GAPS[name](result, host) if host is not None else _domain_warning_gaps(result)
        return _not_checked(gaps) if gaps else None

    return judge


def _judge_nameservers(
    rule: Rule, result: DomainResult, host: HostResult | None
) -> Judgement | None:
    """``nameservers[target|zone]``: every authoritative server of the zone asked directly
    serves what the check used, up to date and validly signed. Errors (a server whose TLSA
    RRset fails the served certificate, bad signatures, signatures about to expire) fail it;
    warnings (a lagging serial, another RRset, a lame or silent server) pass with a warning."""
    found = [f for f in result.findings if f.code in _NAMESERVERS and f.zone == rule.place.zone]
    if not found:
        return None
    text = "\n".join(_finding_lines(found))
    if any(f.severity == Severity.ERROR for f in found):
        return Judgement("fail", f"name servers of {rule.place.zone} disagree\n{text}")
    return Judgement("warn", f"nameservers ({rule.place.id()}):\n{text}")


_JUDGES = {
    "check": _judge_check,
    "nameservers": _judge_nameservers,
    "dnssec": _judge_dnssec,
    "tlsa-usable": _judge_tlsa_usable,
    "starttls": _judge_starttls,
    "tlsa-match": _judge_tlsa_match,
    **{name: _warning_judge(name) for name in (*_WARNING_RULES, "warnings")},
}


SENDER_PREFIX = "sender-"
# Better first (dane_monitor.profiles): a profile fails its item when it fares worse here.
_SENDER_RANK = {
    "deliver-authenticated": 0,
    "deliver-unauthenticated-tls": 1,
    "deliver-opportunistic": 2,
    "unknown": 3,
    "defer": 4,
}


def _judge_sender(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement | None:
    """``sender-NAME``: senders of the profile fare no worse here than RFC 7672 senders (at
    an MX host, or with the whole target when no host was judged)."""
    name = rule.name.removeprefix(SENDER_PREFIX)
    where = result if host is None else host
    got = where.profiles.get(name)
    if got is None:
        what = result.domain if host is None else host.name
        return _not_checked([f"no {name} prediction for {what} (see the dnssec item)"])
    ours = where.sender_action.value if where.sender_action is not None else "unknown"
    action, reason = got["action"], got["reason"]
    if action == "unknown":
        return _not_checked([f"what {name} senders do cannot be told: {reason}"])
    if _SENDER_RANK[action] <= _SENDER_RANK.get(ours, 3):
        return None
    what = "DEFER mail here" if action == "defer" else f"{action} (RFC 7672 senders: {ours})"
    lines = [f"{name} senders {what}: {reason}"]
    return _fail(lines, [])


# -- message parts -------------------------------------------------------------------------


def _fail(lines: list[str], findings: list[Finding]) -> Judgement:
    if findings:
        lines = [*lines, "", "findings:", *_finding_lines(findings)]
    return Judgement("fail", "\n".join(lines))


def _finding_lines(findings: list[Finding]) -> list[str]:
    out = []
    for f in findings:
        where = " ".join(str(x) for x in (f.mx, f.address and f"{f.address}:{f.port}") if x)
        out.append(f"  {f.severity.value.upper():7} {f.code:18} {where}".rstrip())
        out.append(f"          {f.message}")
    return out


def _dns_table(lookups) -> list[str]:
    out = []
    for d in lookups:
        why = f" {d.reason}" if d.reason else ""
        out.append(f"  {d.name} {d.rrtype}: {d.status} {d.kind}{why}")
        if d.detail:
            out.append(f"      {d.detail}")
    return out


def _why_not_probed(host: HostResult) -> str:
    dns_fail = [f for f in host.findings if f.code in _DNSSEC]
    if dns_fail:
        return f"{dns_fail[0].code}: DANE senders stop at the DNS step ({host.verdict.value})"
    return f"no result for this address ({host.verdict.value})"


def _short(data: str, width: int = 64) -> str:
    return data if len(data) <= width else f"{data[: width - 16]}…({len(data) // 2} bytes)"


def _served(ep: EndpointResult, host: HostResult) -> list[str]:
    """What the presented chain would need, in the selector/matching type of every published
    usable record (and 1 1), from the code behind ``dane-monitor tlsa``."""
    kinds = {(1, 1)}
    for record in host.tlsa_records:
        fields = record.split()
        if len(fields) >= 3 and fields[1] in ("0", "1") and fields[2] in ("0", "1", "2"):
            kinds.add((int(fields[1]), int(fields[2])))
    out: list[str] = []
    for selector, mtype in sorted(kinds, key=lambda k: (k != (1, 1), k)):
        try:
            out += T.suggest_records(ep.chain_der, selector=selector, mtype=mtype)
        except Exception:  # a chain the tlsa module cannot read: say what we have
            continue
    return out


def _side_by_side(host: HostResult, ep: EndpointResult) -> list[str]:
    if host.tlsa_records:
        lines = [f"published at {host.tlsa_name} (TTL {host.tlsa_ttl}):"]
    else:
        lines = [f"published at {host.tlsa_name}: nothing"]
    for record in host.tlsa_records:
        usage, _, data = record.rpartition(" ")
        lines.append(f"    {usage} {_short(data)}")
    if not ep.chain:
        lines.append(f"served by {ep.address}: no certificate (no TLS handshake)")
        return lines
    leaf = ep.chain[0]
    names = ", ".join(leaf.get("dns_names") or []) or leaf.get("subject", "?")
    key = ep.key_type or "?"
    lines.append(f"served by {ep.address} ({key} key, {ep.tls_version}; leaf {names}):")
    served = _served(ep, host)
    for record in served:
        usage, _, data = record.rpartition(" ")
        what = "leaf key" if record.startswith("3 ") else "issuing CA"
        lines.append(f"    {usage} {_short(data)}  ({what})")
    if not served and ep.leaf_spki_sha256:
        lines.append(f"    3 1 1 {ep.leaf_spki_sha256}  (leaf key)")
    return lines


def _fix(host: HostResult, ep: EndpointResult | None) -> list[str]:
    suggestions = _served(ep, host)[:2] if ep is not None and ep.chain_der else []
    suggestions = [s for s in suggestions if s.startswith(("3 1 1 ", "2 1 1 "))]
    if not suggestions:
        suggestions = host.suggested_records[:2]
    if not suggestions or host.tlsa_name is None:
        return []
    others = ep is not None and any(e.authenticated for e in host.endpoints if e is not ep)
    keep = " (beside the records that authenticate the other endpoints)" if others else ""
    lines = ["", f"fix: publish{keep}", f"    {host.tlsa_name} IN TLSA {suggestions[0]}"]
    if len(suggestions) > 1:
        lines += ["  or, to survive renewals by the same CA (DANE-TA):",
                  f"    {host.tlsa_name} IN TLSA {suggestions[1]}"]  # fmt: skip
    lines.append("  and wait two TTLs before changing keys (RFC 7671 §8)")
    return lines


# -- the nodes ------------------------------------------------------------------------------


class DaneItem(pytest.Item):
    """One rule at one place. ``repr_failure`` prints the judgement, not a traceback."""

    def __init__(self, *, rule: Rule, target: TargetResult, strict: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rule = rule
        self.target = target
        self.strict = strict
        self.add_marker(pytest.mark.dane)

    def runtest(self) -> None:
        judge(self.rule, self.target, self.strict)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, DaneCheckFailed | DaneWarning):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        # A line (0) is needed for a skip reported at the item: "dane:1" in the summary.
        return self.path, 0, f"dane {self.rule.item_name}"


class DaneCollector(pytest.Collector):
    """The virtual ``dane`` node holding every check item."""

    def __init__(
        self,
        *,
        results: list[TargetResult],
        strict: bool,
        profiles: tuple[str, ...] = (),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.results = results
        self.strict = strict
        self.profiles = profiles

    def collect(self):
        seen: set[str] = set()
        for index, tr in enumerate(self.results):
            for rule in rules(index, tr, self.profiles):
                if rule.item_name in seen:  # the same target given twice
                    continue
                seen.add(rule.item_name)
                yield DaneItem.from_parent(
                    self, name=rule.item_name, rule=rule, target=tr, strict=self.strict
                )
