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

- ``dnssec``: the MX RRset (per domain) and the A/AAAA and TLSA lookups (per MX host and
  port) are DNSSEC-secure;
- ``tlsa-usable``: a secure TLSA RRset with at least one record SMTP senders use;
- ``starttls``: per address and port, the server offers STARTTLS and completes TLS;
- ``tlsa-match``: per address, port and key type served, a usable record authenticates the
  presented chain;
- warnings — ``rrsig-expiry``, ``cert-expiry``, ``rollover``, ``stale-records`` and
  ``warnings`` (every other warning finding): they pass and emit a :class:`DaneWarning`
  (shown in pytest's warnings summary) unless ``--dane-strict`` makes them fail. An
  ``rrsig-expiring`` of severity error (under a day left) fails regardless.

An item passes only when its rule is proven: when an earlier step failed (the TLSA RRset is
bogus, so nothing was probed), the later rules fail too, saying why, so that ``-k
tlsa-match`` alone can never turn a broken domain green.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dane_monitor import tlsa as T
from dane_monitor.report import (
    ACTION_SENTENCE,
    DomainResult,
    EndpointResult,
    Finding,
    HostResult,
    Severity,
)
from pytest_dane.config import DaneConfig
from pytest_dane.errors import DaneCheckFailed, DaneWarning

WORKERINPUT_KEY = "dane_results"

# The finding codes each rule owns; the ``warnings`` rule takes every other warning.
_DNSSEC = {"dnssec-bogus", "dns-error", "domain-not-found", "bad-name", "mx-insecure",
           "mx-no-address", "address-insecure", "tlsa-insecure"}  # fmt: skip
_TLSA = {"no-tlsa", "tlsa-no-usable"}
_STARTTLS = {"starttls-missing", "starttls-refused", "tls-failed", "connect-failed", "smtp-error"}
_MATCH = {"tlsa-mismatch", "ta-name-mismatch", "ta-chain-invalid", "cert-unparsable"}
_WARNING_RULES = {
    "rrsig-expiry": {"rrsig-expiring"},
    "cert-expiry": {"cert-expiring"},
    "rollover": {"tlsa-no-rollover"},
    "stale-records": {"tlsa-stale-record"},
}
_OWNED = _DNSSEC | _TLSA | _STARTTLS | _MATCH | set().union(*_WARNING_RULES.values())


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

    def id(self) -> str:
        parts = [self.target.rstrip(".")]
        if self.mx is not None and self.mx.rstrip(".") != parts[0]:
            parts.append(self.mx.rstrip("."))
        if self.address is not None:
            parts.append(_id_address(self.address))
        if self.port is not None:
            parts.append(str(self.port))
        if self.key_type is not None:
            parts.append(self.key_type)
        return "-".join(parts)


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


def rules(index: int, tr: TargetResult) -> Iterator[Rule]:
    """The rules of one target, in a fixed order derived from the result alone."""
    if tr.result is None:
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
    yield Rule("warnings", Place(target), index)


def judge(rule: Rule, tr: TargetResult, strict: bool) -> None:
    """Raise :class:`DaneCheckFailed` when the rule does not hold; warn when it holds with
    warnings (fail in strict mode)."""
    if tr.result is None:
        raise DaneCheckFailed(f"the check of {tr.kind} {tr.name} did not complete: {tr.error}")
    result = tr.result
    host = result.hosts[rule.host_index] if rule.host_index is not None else None
    text = _JUDGES[rule.name](rule, result, host)
    if text is None:
        return
    failure, warning = text
    if failure:
        raise DaneCheckFailed(failure)
    if warning:
        if strict:
            raise DaneCheckFailed(warning + "\n(fails because of --dane-strict / dane_strict)")
        # Reported at the item (pytest's summary names it), not at this line of the plugin.
        warnings.warn_explicit(DaneWarning(warning), DaneWarning, "dane", 0)


# Each judge returns None (holds), ("failure", None) or (None, "warning").
Judgement = tuple[str | None, str | None] | None


def _findings(result: DomainResult, host: HostResult | None, codes=None, endpoint=None):
    pool = host.findings if host is not None else result.findings
    out = [f for f in pool if codes is None or f.code in codes]
    if endpoint is not None:
        out = [f for f in out if f.address in (None, endpoint)]
    return out


def _judge_dnssec(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement:
    if host is None:  # the domain's MX RRset
        mx = result.mx_dns
        bad = _findings(result, None, _DNSSEC)
        if mx is not None and mx.status == "secure" and not bad:
            return None
        if mx is not None and mx.status in ("bogus", "indeterminate"):
            state = f"fails DNSSEC validation ({mx.status}): DANE senders defer mail"
        else:
            state = "is not DNSSEC-secure: DANE does not apply"
        lines = [f"the MX RRset of {result.domain} {state}"]
        if mx is not None:
            lines += ["", "lookups:", *_dns_table([mx])]
        return _fail(lines, bad)
    lookups = [d for d in host.dns]
    bad = [f for f in host.findings if f.code in _DNSSEC]
    insecure = [d for d in lookups if d.status != "secure" and d.kind == "positive"]
    if not bad and not insecure and host.addresses:
        return None
    lines = [
        f"the DNS path to {host.tlsa_name or host.name} is not DNSSEC-secure: "
        + (
            "DANE senders defer mail"
            if host.verdict.value in ("bogus", "failed", "error")
            else "DANE does not apply"
        ),
        "",
        "lookups:",
        *_dns_table(lookups),
    ]
    return _fail(lines, bad)


def _judge_tlsa_usable(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement:
    assert host is not None
    if host.dane_applies and host.tlsa_usable > 0:
        return None
    tlsa = next((d for d in host.dns if d.rrtype == "TLSA"), None)
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


def _judge_starttls(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement:
    assert host is not None
    address = rule.place.address
    eps = [host.endpoints[i] for i in rule.endpoint_indexes]
    if eps and all(ep.probe_error is None and ep.starttls_offered for ep in eps):
        return None
    if not eps:
        return _fail(
            [
                f"{address} port {host.port} was not probed: {_why_not_probed(host)}",
            ],
            [],
        )
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


def _judge_tlsa_match(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement:
    assert host is not None
    address, key = rule.place.address, rule.place.key_type
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


def _warning_judge(name: str):
    codes = _WARNING_RULES.get(name)

    def judge(rule: Rule, result: DomainResult, host: HostResult | None) -> Judgement:
        pool = host.findings if host is not None else result.findings
        if codes is not None:
            found = [f for f in pool if f.code in codes]
        else:
            found = [f for f in pool if f.severity == Severity.WARNING and f.code not in _OWNED]
        if not found:
            return None
        text = "\n".join(_finding_lines(found))
        if any(f.severity == Severity.ERROR for f in found):
            return (f"{name}: an error, not just a warning\n{text}", None)
        return (None, f"{name} ({rule.place.id()}):\n{text}")

    return judge


_JUDGES = {
    "dnssec": _judge_dnssec,
    "tlsa-usable": _judge_tlsa_usable,
    "starttls": _judge_starttls,
    "tlsa-match": _judge_tlsa_match,
    **{name: _warning_judge(name) for name in (*_WARNING_RULES, "warnings")},
}


# -- message parts -------------------------------------------------------------------------


def _fail(lines: list[str], findings: list[Finding]) -> Judgement:
    if findings:
        lines = [*lines, "", "findings:", *_finding_lines(findings)]
    return ("\n".join(lines), None)


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
        return self.path, None, f"dane {self.rule.item_name}"


class DaneCollector(pytest.Collector):
    """The virtual ``dane`` node holding every check item."""

    def __init__(self, *, results: list[TargetResult], strict: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.results = results
        self.strict = strict

    def collect(self):
        seen: set[str] = set()
        for index, tr in enumerate(self.results):
            for rule in rules(index, tr):
                if rule.item_name in seen:  # the same target given twice
                    continue
                seen.add(rule.item_name)
                yield DaneItem.from_parent(
                    self, name=rule.item_name, rule=rule, target=tr, strict=self.strict
                )
