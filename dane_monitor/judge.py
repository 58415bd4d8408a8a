"""The decision table: evidence → verdict and sender action, per endpoint, host and domain.

Pure: :func:`judge` reads a :class:`dane_monitor.evidence.Domain` and nothing else, and every
outcome comes from one row of :data:`TABLE`. The CLI (text, JSON, nagios, exit code), the
exporter's metrics and alerts and the pytest items all read what this module decided;
``docs/json.md`` prints the table and ``tests/test_decision_table.py`` holds every consumer
to it.

Whose fault it is decides between "senders defer" (exit 2, pages someone) and "could not
decide" (exit 3): what the domain's servers do (hang, garbage, reset, SERVFAIL from its
zones, bad signatures) is the domain's; what our side cannot do (our resolver fails a
known-good name too, our host has no route to that address family, bad usage) is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dane_monitor import evidence as ev
from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.report import (
    ACTION_SENTENCE,
    SenderAction,
    Verdict,
    worst_action,
    worst_verdict,
)

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3

# Probe errors that say our host cannot reach the address (no route, no such family here).
OUR_SIDE_PROBE_ERRORS = frozenset({"no-route"})


@dataclass(frozen=True)
class Row:
    case: str
    level: str  # domain | host | endpoint
    evidence: str  # what was seen
    verdict: Verdict
    action: SenderAction | None  # None: we cannot tell what senders do
    pytest: str  # the pytest items' outcome for this case

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]


EXIT = {
    Verdict.VALID: OK,
    Verdict.NO_MAIL: OK,
    Verdict.NO_DANE: WARNING,
    Verdict.INSECURE: WARNING,
    Verdict.FAILED: CRITICAL,
    Verdict.BOGUS: CRITICAL,
    Verdict.ERROR: UNKNOWN,
}

_V, _A = Verdict, SenderAction
TABLE: dict[str, Row] = {r.case: r for r in (
    # -- domain ------------------------------------------------------------------------------
    Row("bad-name", "domain", "the target is not a domain name", _V.ERROR, None,
        "dnssec fails"),
    Row("mx-bogus", "domain", "the MX RRset fails DNSSEC validation", _V.BOGUS, _A.DEFER,
        "dnssec fails; later rules fail as not checked"),
    Row("mx-dns-failure", "domain", "the MX lookup fails (SERVFAIL, timeout) while our "
        "resolver answers a known-good name", _V.FAILED, _A.DEFER,
        "dnssec fails; later rules fail as not checked"),
    Row("mx-unknown", "domain", "the MX lookup fails and our resolver fails a known-good "
        "name too (or cannot be asked)", _V.ERROR, None, "dnssec fails"),
    Row("domain-not-found", "domain", "the domain does not exist (NXDOMAIN)", _V.ERROR, None,
        "dnssec fails"),
    Row("null-mx", "domain", "a null MX (RFC 7505)", _V.NO_MAIL, None, "no host items"),
    Row("hosts", "domain", "MX hosts (or the implicit MX): the worst host verdict; an unsigned "
        "MX RRset caps valid/no-dane at insecure", _V.VALID, None, "per host"),
    # -- host ---------------------------------------------------------------------------------
    Row("address-bogus", "host", "the A/AAAA lookups fail validation, none is secure",
        _V.BOGUS, _A.DEFER, "dnssec fails"),
    Row("address-dns-failure", "host", "the A/AAAA lookups fail (SERVFAIL, timeout), none is "
        "secure, our resolver is healthy", _V.FAILED, _A.DEFER, "dnssec fails"),
    Row("address-unknown", "host", "the A/AAAA lookups fail and so does our resolver",
        _V.ERROR, None, "dnssec fails"),
    Row("no-address", "host", "the MX host has no A or AAAA record", _V.FAILED, _A.DEFER,
        "dnssec fails"),
    Row("address-insecure", "host", "the address records are unsigned and no secure CNAME "
        "leads to them: no TLSA lookup (RFC 7672 §2.2.3)", _V.INSECURE,
        _A.DELIVER_OPPORTUNISTIC, "dnssec fails"),
    Row("tlsa-bogus", "host", "the TLSA RRset fails validation", _V.BOGUS, _A.DEFER,
        "dnssec fails"),
    Row("tlsa-dns-failure", "host", "the TLSA lookup fails (SERVFAIL, timeout) while our "
        "resolver is healthy", _V.FAILED, _A.DEFER, "dnssec fails"),
    Row("tlsa-unknown", "host", "the TLSA lookup fails and so does our resolver", _V.ERROR,
        None, "dnssec fails"),
    Row("tlsa-insecure", "host", "the TLSA RRset is unsigned (or its absence unproven: NSEC3 "
        "opt-out)", _V.INSECURE, _A.DELIVER_OPPORTUNISTIC, "dnssec fails"),
    Row("no-tlsa", "host", "no TLSA record, proven by DNSSEC", _V.NO_DANE,
        _A.DELIVER_OPPORTUNISTIC, "tlsa-usable fails"),
    Row("dane", "host", "a secure TLSA RRset: the worst of the endpoints a sender can be "
        "judged at (unreachable-here endpoints count only when no other was judged)",
        _V.VALID, None, "per endpoint"),
    # -- endpoint (DANE applies: a secure TLSA RRset) ----------------------------------------
    Row("authenticated", "endpoint", "a usable TLSA record authenticates the presented chain",
        _V.VALID, _A.DELIVER_AUTHENTICATED, "tlsa-match passes"),
    Row("mismatch", "endpoint", "TLS works, no usable record authenticates the chain",
        _V.FAILED, _A.DEFER, "tlsa-match fails"),
    Row("server-failure", "endpoint", "the server refuses or drops the connection, hangs, "
        "sends garbage, lacks or refuses STARTTLS, or fails the handshake", _V.FAILED,
        _A.DEFER, "starttls fails"),
    Row("unreachable-here", "endpoint", "our host has no route to the address (e.g. IPv6 "
        "from a host without IPv6): reported, not alarmed", _V.ERROR, None,
        "starttls skipped"),
    Row("tls-unauthenticated", "endpoint", "the TLSA RRset has no usable record; TLS works",
        _V.NO_DANE, _A.DELIVER_UNAUTHENTICATED_TLS, "tlsa-usable fails"),
    # -- endpoint (DANE does not apply) -------------------------------------------------------
    Row("opportunistic", "endpoint", "no DANE for this host: senders use TLS if offered",
        _V.INSECURE, _A.DELIVER_OPPORTUNISTIC, "as the host"),
)}  # fmt: skip


@dataclass(frozen=True)
class EndpointJudgement:
    endpoint: ev.Endpoint
    case: str
    verdict: Verdict
    action: SenderAction | None
    match: T.MatchResult | None = None


@dataclass(frozen=True)
class HostJudgement:
    host: ev.Host
    case: str
    verdict: Verdict
    action: SenderAction | None
    endpoints: tuple[EndpointJudgement, ...] = ()
    base: str | None = None  # the TLSA base domain senders use
    tlsa: ev.TLSALookup | None = None  # the TLSA lookup that decided
    records: tuple[T.TLSARecord, ...] = ()
    # Who defers when only some endpoints fail, and what still works:
    # ("that negotiate RSA", "the ECDSA chain authenticates"); None when all or none fail.
    impact: tuple[str, str] | None = None

    @property
    def dane_applies(self) -> bool:
        return self.case == "dane"

    @property
    def usable(self) -> list[T.TLSARecord]:
        return [r for r in self.records if r.usable]


@dataclass(frozen=True)
class Judgement:
    case: str
    verdict: Verdict
    hosts: tuple[HostJudgement, ...] = ()
    headline: str = ""  # what senders do, naming who is hurt

    @property
    def action(self) -> SenderAction | None:
        if not self.hosts:
            return TABLE[self.case].action
        return worst_action(h.action for h in self.hosts if h.action)


def _failure_case(answers: list[Answer], prefix: str, resolver_ok: bool | None) -> str:
    if any(a.status == Status.BOGUS for a in answers):
        return f"{prefix}-bogus"
    return f"{prefix}-dns-failure" if resolver_ok else f"{prefix}-unknown"


def judge(domain: ev.Domain) -> Judgement:
    if domain.bad_name is not None:
        return _domain("bad-name")
    hosts = tuple(judge_host(h, domain.resolver_ok) for h in domain.hosts)
    if domain.mx is not None:
        # findings imports this module; its memo per MX RRset is policy.mx_plan remembered.
        from dane_monitor.findings import mx_plan

        plan = mx_plan(domain.mx, domain.target)
        if plan.mode == "failed":
            return _domain(_failure_case([domain.mx], "mx", domain.resolver_ok))
        if plan.mode == "nxdomain":
            return _domain("domain-not-found")
        if plan.mode == "null":
            return _domain("null-mx")
    verdict = worst_verdict(h.verdict for h in hosts) if hosts else Verdict.ERROR
    if (
        domain.mx is not None
        and domain.mx.status == Status.INSECURE
        and hosts
        and all(h.verdict in (Verdict.VALID, Verdict.NO_DANE, Verdict.INSECURE) for h in hosts)
    ):
        verdict = worst_verdict([verdict, Verdict.INSECURE])
    return Judgement("hosts", verdict, hosts, _headline(hosts))


def _domain(case: str) -> Judgement:
    row = TABLE[case]
    headline = ACTION_SENTENCE[row.action] if row.action is not None else ""
    return Judgement(case, row.verdict, (), headline)


def judge_host(host: ev.Host, resolver_ok: bool | None) -> HostJudgement:
    failures = policy.address_failures(host.a, host.aaaa)
    if failures:
        return _host(host, _failure_case(failures, "address", resolver_ok))
    if not any(x.rrset for x in policy.usable_addresses(host.a, host.aaaa)):
        return _host(host, "no-address")  # policy.addresses() is empty
    if not host.bases or not host.tlsa:
        return _host(host, "address-insecure", opportunistic=True)
    decided = host.tlsa[-1]
    answer = decided.answer
    if answer.status in (Status.BOGUS, Status.INDETERMINATE):
        case = _failure_case([answer], "tlsa", resolver_ok)
        return _host(host, case, tlsa=decided)
    if answer.status == Status.INSECURE:
        return _host(host, "tlsa-insecure", opportunistic=True, tlsa=decided)
    if answer.kind != Kind.POSITIVE or answer.rrset is None:
        return _host(host, "no-tlsa", opportunistic=True, tlsa=decided)

    records = _tlsa_records(answer.rrset)
    usable = [r for r in records if r.usable]
    names = policy.reference_names(host.name, decided.base)
    eps = tuple(_judge_endpoint(e, records, usable, names) for e in host.endpoints)
    judged = [e for e in eps if e.case != "unreachable-here"] or list(eps)
    verdict = worst_verdict((e.verdict for e in judged), Verdict.ERROR)
    action = worst_action(e.action for e in judged if e.action)
    return HostJudgement(
        host, "dane", verdict, action, eps, decided.base, decided, records, _impact(eps)
    )


# TLSA RRsets as records, by their exact contents: the same RRset comes back every
# monitoring cycle, and a record works out its usability (and parses Full(0) data) once.
_RECORDS = 2048
_records: dict[tuple[tuple[int, int, int, bytes], ...], tuple[T.TLSARecord, ...]] = {}


def _tlsa_records(rrset: Any) -> tuple[T.TLSARecord, ...]:
    """``TLSARecord.from_rdata`` of each record of ``rrset``, in order."""
    key = tuple((int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert)) for r in rrset)
    records = _records.get(key)
    if records is None:
        records = tuple(T.TLSARecord(*fields) for fields in key)
        if len(_records) >= _RECORDS:
            _records.clear()
        _records[key] = records
    return records


def _host(
    host: ev.Host, case: str, *, opportunistic: bool = False, tlsa: ev.TLSALookup | None = None
) -> HostJudgement:
    row = TABLE[case]
    eps: tuple[EndpointJudgement, ...] = ()
    if opportunistic:
        # DANE does not apply: every endpoint gets the host's outcome, whatever its TLS does.
        eps = tuple(EndpointJudgement(e, "opportunistic", row.verdict, row.action)
                    for e in host.endpoints)  # fmt: skip
    base = tlsa.base if tlsa is not None else (host.bases[0] if host.bases else None)
    return HostJudgement(host, case, row.verdict, row.action, eps, base, tlsa)


def _judge_endpoint(
    e: ev.Endpoint, records, usable: list[T.TLSARecord], names: list[str]
) -> EndpointJudgement:
    p = e.probe
    if p.error in OUR_SIDE_PROBE_ERRORS:
        case, match = "unreachable-here", None
    elif p.error is not None:
        case, match = "server-failure", None
    elif not usable:
        case, match = "tls-unauthenticated", None
    else:
        match = T.authenticate(list(records), p.chain, names)
        case = "authenticated" if match.authenticated and match.match is not None else "mismatch"
    row = TABLE[case]
    return EndpointJudgement(e, case, row.verdict, row.action, match)


def _family(address: str) -> str:
    return "IPv6" if ":" in address else "IPv4"


def _impact(eps: tuple[EndpointJudgement, ...]) -> tuple[str, str] | None:
    """Who defers when some endpoints of a host authenticate and others do not."""
    bad = [e for e in eps if e.action == SenderAction.DEFER]
    good = [e for e in eps if e.action == SenderAction.DELIVER_AUTHENTICATED]
    if not bad or not good:
        return None
    key = lambda e: e.endpoint.probe.leaf_key_type  # noqa: E731
    bad_keys = {key(e) for e in bad}
    good_keys = {key(e) for e in good}
    if None not in bad_keys and not bad_keys & good_keys:
        names = " or ".join(sorted(k.upper() for k in bad_keys if k))
        ok = " and ".join(sorted(k.upper() for k in good_keys if k))
        return f"that negotiate {names}", f"the {ok} chain authenticates"
    fam = lambda e: _family(e.endpoint.address)  # noqa: E731
    bad_fam, good_fam = {fam(e) for e in bad}, {fam(e) for e in good}
    if not bad_fam & good_fam:
        return f"that reach it over {' and '.join(sorted(bad_fam))}", (
            f"{' and '.join(sorted(good_fam))} authenticates"
        )
    addrs = sorted({e.endpoint.address for e in bad})
    return f"that reach {', '.join(addrs)}", "its other addresses authenticate"


def _headline(hosts: tuple[HostJudgement, ...]) -> str:
    action = worst_action(h.action for h in hosts if h.action)
    if action is None:
        return ""
    if action != SenderAction.DEFER:
        return ACTION_SENTENCE[action]
    deferring = [h for h in hosts if h.action == SenderAction.DEFER]
    partial = [h for h in deferring if h.impact]
    if not partial:
        sentence = ACTION_SENTENCE[action]
        if len(hosts) > 1 and len(deferring) < len(hosts):
            sentence += " (at least one MX endpoint)"
        return sentence
    parts = []
    for h in deferring:
        where = h.host.name.rstrip(".")
        if h.impact:
            who, works = h.impact
            parts.append(f"DANE senders {who} DEFER mail at {where} ({works})")
        else:
            parts.append(f"DANE senders DEFER mail at {where}")
    return "; ".join(parts)


def exit_code(verdict: Verdict, severities) -> int:
    """Monitoring-plugin state: the verdict's row, raised by error or warning findings
    (an ``rrsig-expiring`` error makes a valid domain CRITICAL)."""
    code = EXIT[verdict]
    if code in (CRITICAL, UNKNOWN):
        return code
    severities = set(severities)
    if "error" in severities:
        return CRITICAL
    if code == OK and "warning" in severities:
        return WARNING
    return code


# -- the table as documentation (docs/json.md prints it; a test keeps the two equal) --------

_ALERT_ROWS = {"mismatch": ("DANETLSAMismatch",), "server-failure": ("DANESTARTTLSMissing*",)}


def alerts(row: Row) -> tuple[str, ...]:
    """The shipped alerts (grafana/prometheus/dane-alerts.yml) a row makes fire."""
    out: list[str] = []
    if row.verdict == Verdict.BOGUS and row.level == "domain":
        out.append("DANEDNSSECBogus")
    if row.action == SenderAction.DEFER:
        out.append("DANESendersDefer")
    out += _ALERT_ROWS.get(row.case, ())
    if row.verdict == Verdict.ERROR and row.level != "endpoint":
        out.append("DANECheckFailing")
    return tuple(out)


def metrics(row: Row) -> str:
    """The series a row sets (besides dane_findings)."""
    if row.case in ("hosts", "dane"):
        return "those of its worst part"
    if row.level == "domain":
        out = f'dane_verdict{{verdict="{row.verdict}"}}'
        if row.action is not None:
            out += f', dane_sender_action{{mx="",action="{row.action}"}}'
    elif row.level == "host":
        out = f'dane_mx_verdict{{verdict="{row.verdict}"}}'
        if row.action is not None:
            out += f', dane_sender_action{{action="{row.action}"}}'
    else:
        out = {
            "authenticated": "dane_tlsa_match 1",
            "mismatch": "dane_tlsa_match 0",
            "server-failure": "dane_starttls_offered 0 when STARTTLS is missing",
            "tls-unauthenticated": 'dane_tlsa_records{usable="true"} 0',
        }.get(row.case, "-")
    if row.verdict == Verdict.ERROR and row.level != "endpoint":
        out += ", dane_check_success 0"
    return out


def table_markdown() -> str:
    head = (
        "| case | level | evidence | verdict | sender action | exit | metrics | alerts | pytest |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in TABLE.values():
        verdict = "as the host" if r.case == "opportunistic" else f"`{r.verdict}`"
        if r.case in ("hosts", "dane"):
            verdict = "worst of its parts"
        action = f"`{r.action}`" if r.action else "-"
        exit_code = "-" if r.case in ("hosts", "dane", "opportunistic") else str(r.exit_code)
        if r.case == "unreachable-here":
            exit_code = "3 when no other endpoint of the host was judged"
        fire = ", ".join(alerts(r)) or "-"
        rows.append(f"| `{r.case}` | {r.level} | {r.evidence} | {verdict} | {action} | "
                    f"{exit_code} | {metrics(r)} | {fire} | {r.pytest} |")  # fmt: skip
    return head + "\n".join(rows) + "\n"
