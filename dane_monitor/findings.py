"""Finding rules: evidence and judgement → findings, and the catalogue of finding codes.

Pure. :data:`CATALOGUE` is the single source of every code the checker (and the exporter)
can emit: its severities, the pytest rule that owns it and a one-line meaning. The checker
emits only catalogued codes, ``docs/json.md`` prints the catalogue and
``tests/test_findings_catalogue.py`` keeps the two and the tests in step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509

from dane_monitor import evidence as ev
from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor.judge import HostJudgement, Judgement
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.report import Finding, Severity
from dane_monitor.settings import Thresholds

DAY = 86400
E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741


@dataclass(frozen=True)
class Code:
    code: str
    severities: tuple[Severity, ...]
    rule: str | None  # the pytest item that owns it (None: informational, no item)
    meaning: str


CATALOGUE: dict[str, Code] = {c.code: c for c in (
    Code("bad-name", (E,), "dnssec", "the target is not a valid domain name"),
    Code("domain-not-found", (E,), "dnssec", "the domain does not exist (NXDOMAIN)"),
    Code("dnssec-bogus", (E,), "dnssec", "a lookup on the path fails DNSSEC validation; the "
         "message names the reason"),
    Code("dns-error", (E,), "dnssec", "a lookup on the path fails (SERVFAIL, timeout) while "
         "our resolver answers a known-good name: the domain's servers fail, senders defer"),
    Code("resolver-failed", (E,), "dnssec", "a lookup failed and our resolver fails a "
         "known-good name too (or could not be asked): nothing decided"),
    Code("null-mx", (I,), None, "the domain takes no mail (RFC 7505)"),
    Code("mx-null-mixed", (W,), "warnings", 'a null MX (".") beside other MX records'),
    Code("implicit-mx", (I,), None, "no MX: the domain itself is the mail host"),
    Code("mx-insecure", (W,), "dnssec", "the MX RRset is unsigned: DANE only for senders "
         "that enforce a secure host TLSA anyway"),
    Code("mx-no-address", (E,), "dnssec", "an MX host has no A/AAAA record"),
    Code("address-insecure", (W,), "dnssec", "an MX host's addresses are unsigned and no "
         "secure CNAME leads to them: no TLSA lookup"),
    Code("tlsa-insecure", (W,), "dnssec", "the TLSA RRset is unsigned (or its absence "
         "unproven)"),
    Code("no-tlsa", (W,), "tlsa-usable", "no TLSA record (proven)"),
    Code("tlsa-no-usable", (W,), "tlsa-usable", "TLSA records, none usable for SMTP"),
    Code("tlsa-usage-pkix", (W,), "warnings", "usage 0/1 records (ignored by SMTP senders)"),
    Code("tlsa-unusable", (W,), "warnings", "a malformed or unknown-parameter record"),
    Code("tlsa-ttl-long", (I,), None, "the TLSA TTL exceeds a day: rollovers wait two TTLs"),
    Code("tlsa-mismatch", (E,), "tlsa-match", "no usable record matches the presented chain"),
    Code("ta-name-mismatch", (E,), "tlsa-match", "DANE-TA matched, but the leaf's names do "
         "not"),
    Code("ta-chain-invalid", (E,), "tlsa-match", "DANE-TA matched, but the chain to it does "
         "not verify"),
    Code("cert-unparsable", (E,), "tlsa-match", "the leaf certificate cannot be parsed"),
    Code("connect-failed", (E, W), "starttls", "no TCP connection (refused, timeout): error "
         "where DANE applies, warning where it does not"),
    Code("starttls-missing", (E, W), "starttls", "STARTTLS not offered"),
    Code("starttls-refused", (E, W), "starttls", "STARTTLS refused"),
    Code("tls-failed", (E, W), "starttls", "the TLS handshake fails"),
    Code("smtp-error", (E, W), "starttls", "the SMTP dialogue fails (hang, garbage, overlong "
         "line, reset, hang-up)"),
    Code("address-unreachable-here", (I,), "starttls", "our host has no route to this address "
         "(e.g. IPv6): not checked from here"),
    Code("tlsa-stale-record", (I,), "stale-records", "a usable record matches nothing served "
         "(next key, or stale)"),
    Code("tlsa-no-rollover", (I,), "rollover", "every record matches the current key only "
         "(RFC 7671 §8)"),
    Code("endpoints-disagree", (W,), "warnings", "endpoints of one host present different keys "
         "or results"),
    Code("cert-expiring", (W,), "cert-expiry", "the leaf expires within the warning window (or "
         "has expired)"),
    Code("rrsig-expiring", (W, E), "rrsig-expiry", "a signature on the path expires within the "
         "warning / critical window"),
    Code("resolver-not-loopback", (W,), "warnings", "resolver mode with a resolver not on this "
         "host"),
    Code("ns-rrset-differs", (E, W), "nameservers", "an authoritative server serves an RRset "
         "the check used (TLSA, MX, A, AAAA, DNSKEY) differently: error when its TLSA RRset "
         "fails the server's certificate, no host of its MX RRset takes mail, or an MX "
         "host's A/AAAA RRset gives addresses that fail (senders whose resolver asks it defer "
         "or bounce)"),
    Code("ns-serial-lag", (W,), "nameservers", "an authoritative server's SOA serial is behind "
         "the others' (a stale copy)"),
    Code("ns-rrsig-bogus", (E,), "nameservers", "an authoritative server serves signatures "
         "that fail against the zone's keys where the other servers' verify"),
    Code("ns-rrsig-expiring", (W, E), "nameservers", "an authoritative server's signatures "
         "expire within the warning / critical window, well before the other servers'"),
    Code("ns-unreachable", (W,), "nameservers", "a listed name server does not answer (timeout, "
         "refused, no address) while another does"),
    Code("ns-lame", (W,), "nameservers", "a listed name server answers REFUSED or without "
         "authority (lame delegation)"),
    Code("tlsrpt-missing", (I,), None, "no TLS-RPT policy record at _smtp._tls.<domain> "
         "(RFC 8460): senders have nowhere to report failed TLS sessions"),
    Code("tlsrpt-invalid", (W,), None, "the TLS-RPT policy record breaks RFC 8460 §3 (syntax, "
         "rua not mailto:/https:, several v=TLSRPTv1 records): senders send no reports"),
    Code("tlsrpt-unreadable", (W,), None, "the _smtp._tls TXT lookup fails (bogus, SERVFAIL) "
         "while our resolver answers: validating senders read no TLS-RPT policy"),
    Code("check-timeout", (E,), None, "the check did not finish within its deadline (the "
         "exporter's target timeout, check --deadline)"),
    Code("check-crashed", (E,), None, "(exporter, check --from) the check raised an unexpected "
         "error; the exporter logs it, check --from prints it on stderr"),
)}  # fmt: skip

# Probe error codes (dane_monitor.probe) → the finding code that reports them.
PROBE_FINDING = {
    "connect-refused": "connect-failed",
    "connect-timeout": "connect-failed",
    "connect-failed": "connect-failed",
    "starttls-missing": "starttls-missing",
    "starttls-refused": "starttls-refused",
    "tls-failed": "tls-failed",
    "no-route": "address-unreachable-here",
}


# A TLSA TTL above this slows every rollover enough to say so (two TTLs per step).
TLSA_TTL_INFO = DAY


@dataclass(frozen=True)
class Place:
    """Where a finding is: the fields of :class:`Finding` that locate it (None: not set)."""

    domain: str | None = None
    mx: str | None = None
    address: str | None = None
    port: int | None = None

    def at(self, address: str) -> Place:
        return replace(self, address=address)


NOWHERE = Place()


def finding(
    code: str,
    severity: Severity,
    message: str,
    *,
    where: Place = NOWHERE,
    record: str | None = None,
) -> Finding:
    entry = CATALOGUE[code]  # KeyError: an uncatalogued code is a bug
    if severity not in entry.severities:
        raise ValueError(f"{code} is never {severity}")
    return Finding(
        code,
        severity,
        message,
        domain=where.domain,
        mx=where.mx,
        address=where.address,
        port=where.port,
        record=record,
    )


def _name(answer: Answer) -> str:
    return policy.text(answer.qname)


# -- memos: pure functions of a certificate or an RRset, asked again every monitoring cycle --

_MEMO = 2048
_plans: dict[tuple[int, Status, Kind, str], tuple[Any, policy.MXPlan]] = {}


def mx_plan(mx: Answer, target: str) -> policy.MXPlan:
    """:func:`policy.mx_plan`, remembered per MX RRset (the validator's cache hands out the
    same RRset object while it holds the answer; it is kept here so its id stays its own)."""
    key = (id(mx.rrset), mx.status, mx.kind, target)
    hit = _plans.get(key)
    if hit is not None and hit[0] is mx.rrset:
        return hit[1]
    plan = policy.mx_plan(mx, target)
    if len(_plans) >= _MEMO:
        _plans.clear()
    _plans[key] = (mx.rrset, plan)
    return plan


@functools.lru_cache(maxsize=_MEMO)
def _spki_sha256(der: bytes) -> str:
    return T.spki_sha256(der)


def dns_failure(
    answer: Answer, what: str, resolver_ok: bool | None, where: Place = NOWHERE
) -> Finding:
    if answer.status == Status.BOGUS:
        return finding(
            "dnssec-bogus",
            E,
            f"{what} ({_name(answer)}) fails DNSSEC validation: {answer.reason}: "
            f"{answer.detail}. DANE senders defer mail",
            where=where,
        )
    if resolver_ok:
        return finding(
            "dns-error",
            E,
            f"{what} ({_name(answer)}) cannot be resolved ({answer.reason}: {answer.detail}) "
            "while our resolver answers a known-good name: the domain's name servers fail, "
            "and DANE senders defer mail",
            where=where,
        )
    why = (
        "our resolver fails a known-good name too"
        if resolver_ok is False
        else "our resolver's health could not be checked"
    )
    return finding(
        "resolver-failed",
        E,
        f"{what} ({_name(answer)}) could not be resolved ({answer.reason}: {answer.detail}) "
        f"and {why}: nothing can be decided from here; fix the resolver",
        where=where,
    )


def domain_findings(d: ev.Domain, j: Judgement) -> list[Finding]:
    out = [finding(code, W, message) for code, message in d.resolver_warnings]
    target = d.target
    if d.bad_name is not None:
        where = Place(mx=target) if d.mx_only else Place(domain=target)
        return [*out, finding("bad-name", E, d.bad_name, where=where)]
    if d.mx is None:
        return out
    mx = d.mx
    plan = mx_plan(mx, target)
    if plan.mode == "failed":
        out.append(dns_failure(mx, "the MX RRset", d.resolver_ok, Place(domain=target)))
    elif plan.mode == "nxdomain":
        out.append(finding("domain-not-found", E,
                           f"{target} does not exist (NXDOMAIN): mail to it bounces",
                           where=Place(domain=target)))  # fmt: skip
    elif plan.mode == "null":
        out.append(finding("null-mx", I, f"{target} publishes a null MX (RFC 7505): it takes "
                           "no mail, so DANE does not apply",
                           where=Place(domain=target)))  # fmt: skip
    elif plan.mode == "implicit":
        out.append(finding("implicit-mx", I, f"{target} has no MX records: senders use the "
                           "domain itself (RFC 5321 §5.1), and its own TLSA records at _25._tcp",
                           where=Place(domain=target)))  # fmt: skip
    if plan.null_mixed:
        out.append(finding("mx-null-mixed", W, 'a null MX (".") stands beside other MX '
                           "records: remove it", where=Place(domain=target)))  # fmt: skip
    if mx.status == Status.INSECURE and plan.hosts:
        out.append(
            finding(
                "mx-insecure",
                W,
                f"the MX RRset of {target} is not DNSSEC-signed: by RFC 7672 §2.2.1 DANE does "
                "not apply; senders that enforce a secure host TLSA anyway (Postfix's default "
                "since 3.6) still do, and the host results below are theirs",
                where=Place(domain=target),
            )
        )
    return out


def host_findings(d: ev.Domain, hj: HostJudgement, th: Thresholds) -> list[Finding]:
    host = hj.host
    name = host.name
    where = Place(domain=None if d.mx_only else d.target, mx=name, port=host.port)
    case = hj.case
    out: list[Finding] = []
    if case in ("address-bogus", "address-dns-failure", "address-unknown"):
        for x in policy.address_failures(host.a, host.aaaa):
            out.append(dns_failure(x, f"the address of {name}", d.resolver_ok, where))
        return out
    if case == "no-address":
        return [finding("mx-no-address", E, f"{name} has no A or AAAA record: senders cannot "
                        "reach it; fix the MX record or add the address", where=where)]  # fmt: skip
    label = policy.tlsa_owner(host.port, hj.base) if hj.base else None
    if case == "address-insecure":
        out.append(finding("address-insecure", W, f"the address records of {name} are not "
                           "DNSSEC-signed (and no secure CNAME leads to them): senders do not "
                           "look for TLSA records (RFC 7672 §2.2.3), so DANE does not apply",
                           where=where))  # fmt: skip
    elif case in ("tlsa-bogus", "tlsa-dns-failure", "tlsa-unknown"):
        assert hj.tlsa is not None
        out.append(dns_failure(hj.tlsa.answer, "the TLSA RRset", d.resolver_ok, where))
    elif case == "tlsa-insecure":
        assert hj.tlsa is not None
        answer = hj.tlsa.answer
        if answer.reason == "nsec3-opt-out":
            message = (
                f"the absence of a TLSA record at {label} is not proven: the name lies in an "
                "NSEC3 opt-out span, which may hide an unsigned delegation (RFC 5155 §9.2), so "
                "validators treat it as unsigned; publish the TLSA record, or sign without "
                "opt-out"
            )
        else:
            message = (
                f"{label} is not DNSSEC-signed ({answer.reason or 'insecure'}): senders ignore "
                "it; sign the zone and publish the DS"
            )
        out.append(finding("tlsa-insecure", W, message, where=where))
    elif case == "no-tlsa":
        looked = ", ".join(t.owner for t in host.tlsa)
        out.append(finding("no-tlsa", W, f"no TLSA record at {looked} (proven by DNSSEC): "
                           "senders deliver without authentication; publish one, e.g. the "
                           "record suggested below", where=where))  # fmt: skip
    out += _rrsig_findings(d, hj, th, where, label)
    if hj.dane_applies:
        out += _record_findings(hj, th, label, where)
    out += _endpoint_findings(hj, th, label, where, d.now)
    if hj.dane_applies and any(e.endpoint.probe.chain for e in hj.endpoints):
        out += _rollover_findings(hj, label, where)
        out += _disagreement(hj, where)
    return out


def rrsig_expiration(hj: HostJudgement) -> int | None:
    """The earliest signature expiry a sender's validation of this host depends on."""
    host = hj.host
    answers = policy.usable_addresses(host.a, host.aaaa)
    answers += [t.answer for t in host.tlsa]
    times = [a.expiration for a in answers if a.expiration is not None]
    return min(times) if times else None


def _rrsig_findings(
    d: ev.Domain, hj: HostJudgement, th: Thresholds, where: Place, label: str | None
) -> list[Finding]:
    if hj.tlsa is None:
        return []
    # The MX RRset is on every host's path: when its signature lapses, the domain is bogus.
    times = [rrsig_expiration(hj)]
    if d.mx is not None and d.mx.status == Status.SECURE:
        times.append(d.mx.expiration)
    present = [t for t in times if t is not None]
    if not present:
        return []
    expiration = min(present)
    left = expiration - d.now
    if left >= th.rrsig_warning_days * DAY:
        return []
    severity = E if left < th.rrsig_critical_days * DAY else W
    return [
        finding(
            "rrsig-expiring",
            severity,
            f"a DNSSEC signature on the path to {label} expires in {left / 3600:.1f} hours: "
            "when it does, the answer turns bogus and senders defer; check the signer",
            where=where,
        )
    ]


def _record_findings(
    hj: HostJudgement, th: Thresholds, label: str | None, where: Place
) -> list[Finding]:
    out: list[Finding] = []
    records = hj.records
    pkix = [r for r in records if r.unusable_reason == "pkix-usage"]
    other = [r for r in records if r.unusable_reason not in (None, "pkix-usage")]
    if pkix:
        out.append(finding("tlsa-usage-pkix", W, f"{label} has PKIX-TA/PKIX-EE (usage 0/1) "
                           "records, which SMTP senders ignore (RFC 7672 §3.1.3): use DANE-EE "
                           "(3) or DANE-TA (2)", record=", ".join(r.to_text() for r in pkix),
                           where=where))  # fmt: skip
    for r in other:
        out.append(finding("tlsa-unusable", W, f"{label}: record unusable "
                           f"({r.unusable_reason}); senders ignore it", record=r.to_text(),
                           where=where))  # fmt: skip
    if not hj.usable:
        out.append(finding("tlsa-no-usable", W, f"{label} has TLSA records but none usable for "
                           "SMTP: senders insist on TLS but cannot authenticate; publish a "
                           "3 1 1 or 2 1 1 record", where=where))  # fmt: skip
    ttl = hj.tlsa.answer.ttl if hj.tlsa is not None else None
    if ttl is not None and ttl > TLSA_TTL_INFO:
        out.append(finding("tlsa-ttl-long", I, f"{label} has a TTL of {ttl}s: every key "
                           "rollover must wait two TTLs between publishing the new record and "
                           "switching keys", where=where))  # fmt: skip
    return out


def _endpoint_findings(
    hj: HostJudgement, th: Thresholds, label: str | None, where: Place, now: float
) -> list[Finding]:
    out: list[Finding] = []
    tls_mandatory = hj.dane_applies
    for e in hj.endpoints:
        p = e.endpoint.probe
        at = where.at(e.endpoint.address)
        if p.error is not None:
            out.append(_probe_failure(e.endpoint, tls_mandatory, at))
        elif e.case == "mismatch" and e.match is not None:
            out.append(_mismatch(hj, e.endpoint, e.match, label, at))
        elif e.case == "authenticated" and e.match is not None:
            out += _cert_expiry(e.endpoint, e.match, th, now, at)
    return out


def _probe_failure(e: ev.Endpoint, tls_mandatory: bool, at: Place) -> Finding:
    p = e.probe
    code = PROBE_FINDING.get(p.error or "", "smtp-error")
    detail = p.detail or ""
    if code == "address-unreachable-here":
        return finding(code, I, f"{e.address} port {e.port} is not reachable from here "
                       f"({detail}): this host has no route to it; check it from a host that "
                       "has one", where=at)  # fmt: skip
    severity = E if tls_mandatory else W
    what = {
        "connect-failed": f"does not accept a connection on port {e.port}",
        "starttls-missing": "does not offer STARTTLS",
        "starttls-refused": "refuses STARTTLS",
        "tls-failed": "fails the TLS handshake",
        "smtp-error": f"breaks the SMTP dialogue ({p.error})",
    }[code]
    if tls_mandatory:
        consequence = "with a TLSA record published, DANE senders defer: fix this server"
    else:
        consequence = "no DANE applies here, but senders cannot deliver over TLS either"
    hint = ""
    if p.error == "connect-timeout":
        hint = " (if this host cannot reach port 25 anywhere, its provider may block outbound SMTP)"
    return finding(code, severity, f"{e.address} {what}: {detail}; {consequence}{hint}", where=at)


def _mismatch(
    hj: HostJudgement, e: ev.Endpoint, match: T.MatchResult, label: str | None, at: Place
) -> Finding:
    code = match.failure or "tlsa-mismatch"
    if code not in CATALOGUE:
        code = "tlsa-mismatch"
    chain = e.probe.chain
    served = T.spki_sha256(chain[0]) if chain else None
    fix = ""
    # The fix comes from this endpoint's own chain: on a dual-key server the RSA endpoint
    # needs the RSA key's record, whatever the ECDSA endpoint serves.
    own = T.suggest_records(chain, usages=[3])
    if own:
        fix = f"; publish {label} IN TLSA {own[0]}"
    published = ", ".join(r.to_text() for r in hj.records)
    key = e.probe.leaf_key_type or "?"
    return finding(code, E, f"{e.address} ({key} key) does not authenticate: {match.detail} "
                   f"Published: {published}; served leaf SPKI SHA-256 {served or '?'}{fix}",
                   where=at)  # fmt: skip


def _cert_expiry(
    e: ev.Endpoint, match: T.MatchResult, th: Thresholds, now: float, at: Place
) -> list[Finding]:
    not_after = leaf_not_after(e.probe.chain)
    if not_after is None:
        return []
    left = not_after - now
    if left >= th.cert_warning_days * DAY:
        return []
    when = "expired" if left < 0 else f"expires in {left / DAY:.1f} days"
    ee = match.match is not None and match.match.record.usage == 3
    note = (
        " DANE-EE ignores dates, so DANE senders still deliver; other senders may not."
        if ee
        else ""
    )
    return [finding("cert-expiring", W, f"the certificate at {e.address} {when}.{note} Renew "
                    "it, and publish the new key's TLSA record first", where=at)]  # fmt: skip


def leaf_not_after(chain: list[bytes]) -> int | None:
    if not chain:
        return None
    return _not_after(bytes(chain[0]))


@functools.lru_cache(maxsize=_MEMO)
def _not_after(der: bytes) -> int | None:
    try:
        cert = x509.load_der_x509_certificate(der)
        return int(cert.not_valid_after_utc.timestamp())
    except Exception:
        return None


def _rollover_findings(hj: HostJudgement, label: str | None, where: Place) -> list[Finding]:
    """Stale records, and whether anything published lets the next key through (RFC 7671
    §8.1). What counts: a usable ``3 x x`` that matches nothing served (a pre-published next
    key; it may be a stale one: no digest tells), or a ``2 x x`` for a CA in the served chain
    when no ``3 x x`` matches the current key (a DANE-TA deployment: renewals from that CA
    pass). What does not: a record for the current key under another selector or matching
    type (the same key: digest agility, RFC 7671 §9, wants them all); a ``2 x x`` for a CA
    that issued nothing the server sends; and a ``2 x x`` of the issuer beside the current
    key's ``3 x x``, which holds only if the next certificate comes from that CA: unknown here
    (``rollover plan --next-cert`` knows)."""
    eps = hj.endpoints
    if not any(e.case == "authenticated" for e in eps):
        return []  # the mismatch findings say it all
    # Keyed on the records themselves (frozen: equal exactly when their texts are), as
    # printing each one every check cost a monitor measurable CPU.
    hits: dict[T.TLSARecord, int] = {}
    for e in eps:
        m = e.match
        if m is None:
            continue
        used = {h.record for h in m.hits}
        if m.authenticated and m.match is not None:
            used.add(m.match.record)  # a 2 x 0 anchor carried in DNS is no "hit"
        for record in used:
            hits[record] = hits.get(record, 0) + 1
    usable = hj.usable
    out = []
    stale = [r for r in usable if hits.get(r, 0) == 0]
    for r in stale:
        what = ("the next key's pre-published record (keep it) or a stale one (remove it)"
                if r.usage == 3 else "a DANE-TA record for a CA that issued nothing the server "
                "sends: the next CA's (keep it) or a stale one (remove it)")  # fmt: skip
        out.append(finding("tlsa-stale-record", I, f"{label} {r.to_text()[:60]}… matches "
                           f"nothing any endpoint serves: {what}", record=r.to_text(),
                           where=where))  # fmt: skip
    chained = [e for e in eps if e.endpoint.probe.chain]
    if not all(e.case == "authenticated" for e in chained):
        return out
    if any(r.usage == 3 for r in stale):
        return out  # a next key's record (or a stale one: no digest tells)
    ta = [r for r in usable if r.usage == 2 and hits.get(r)]
    current_ee = [r for r in usable if r.usage == 3 and hits.get(r)]
    if ta and not current_ee:
        return out  # DANE-TA: a renewal from that CA passes
    if ta:
        out.append(finding("tlsa-no-rollover", I, f"the records at {label} match the current "
                           f"key and the CA that issued it ({ta[0].short}): the CA record lets "
                           "the next key through only if the next certificate comes from that "
                           "same CA (issuing intermediates change), which is unknown here: "
                           "publish the next key's 3 1 1 at least two TTLs before the renewal, "
                           "or check it with 'dane-monitor rollover plan --next-cert FILE' "
                           "(RFC 7671 §8.1)", where=where))  # fmt: skip
        return out
    foreign = [r for r in stale if r.usage == 2]
    aside = (f" ({', '.join(r.short for r in foreign)}: a CA that issued nothing the server "
             "sends, which lets the next key through only if the next certificate comes from "
             "it)") if foreign else ""  # fmt: skip
    out.append(finding("tlsa-no-rollover", I, f"every record at {label} matches the "
                       f"current key{aside}: publish the next key's record (3 1 1) or a 2 1 1 "
                       "for the issuing CA at least two TTLs before the next certificate "
                       "renewal (RFC 7671 §8)", where=where))  # fmt: skip
    return out


def _disagreement(hj: HostJudgement, where: Place) -> list[Finding]:
    by_type: dict[str | None, set[str]] = {}
    chained = [e for e in hj.endpoints if e.endpoint.probe.chain]
    for e in chained:
        spki = _spki_sha256(bytes(e.endpoint.probe.chain[0]))
        if spki:
            by_type.setdefault(e.endpoint.probe.leaf_key_type, set()).add(spki)
    mixed = any(len(v) > 1 for v in by_type.values())
    auth = {e.case == "authenticated" for e in chained}
    if not mixed and len(auth) <= 1:
        return []
    detail = "; ".join(
        f"{e.endpoint.address} {e.endpoint.probe.leaf_key_type}: "
        f"{'ok' if e.case == 'authenticated' else 'FAILS'}"
        for e in chained
    )
    return [finding("endpoints-disagree", W, f"the endpoints of {hj.host.name} present "
                    f"different keys or results ({detail}): a sender's outcome depends on "
                    "which address or key type it gets", where=where)]  # fmt: skip


def catalogue_markdown() -> str:
    """The finding codes as docs/json.md prints them (a test keeps the two equal)."""
    lines = ["| code | severity | pytest rule | meaning |", "|---|---|---|---|"]
    for c in CATALOGUE.values():
        severities = " / ".join(s.value for s in c.severities)
        lines.append(f"| `{c.code}` | {severities} | {c.rule or '-'} | {c.meaning} |")
    return "\n".join(lines) + "\n"
