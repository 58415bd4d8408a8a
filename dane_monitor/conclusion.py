"""Evidence → the report every consumer reads: judgement, findings, and the result model.

Pure: :func:`conclude` calls :func:`dane_monitor.judge.judge` (verdicts and sender actions)
and :mod:`dane_monitor.findings` (what to tell the operator), and writes both into the
:mod:`dane_monitor.report` model once; nothing else sets a verdict.

What depends only on a certificate or a chain (its description, the records to publish for
it) and on an RRset (its records as text) is remembered for the last few thousand seen: a
monitor concludes on the same chains and answers every cycle, and these are pure functions
of their input. Every call still returns fresh objects.
"""

from __future__ import annotations

import functools
from typing import Any

# Before dnspython, which decides its optional features when first imported (_compat).
import dane_monitor._compat  # noqa: F401  # isort: skip
import dns.rdatatype
from cryptography import x509

from dane_monitor import evidence as ev
from dane_monitor import findings as F
from dane_monitor import nameservers as NS
from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor import tlsrpt_record as TLSRPT
from dane_monitor._memo import ByIdentity
from dane_monitor.judge import HostJudgement, judge
from dane_monitor.lookup.answer import Answer
from dane_monitor.profiles import PROFILES, Prediction, predict_domain, predict_full
from dane_monitor.report import (
    DNSInfo,
    DomainResult,
    EndpointResult,
    HostResult,
    TLSAMatchInfo,
)
from dane_monitor.settings import Thresholds

#: How many certificates, chains and RRsets the memos below keep.
_MEMO = 2048


@functools.lru_cache(maxsize=_MEMO)
def _name_text(name: Any) -> str:
    return policy.text(name)


@functools.lru_cache(maxsize=64)
def _rrtype_text(qtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))


# RRsets are not hashable, and the validator's cache hands out the same RRset object for as
# long as it holds an answer: printed once per object (dane_monitor._memo).
_rrset_texts: ByIdentity[tuple[str, ...]] = ByIdentity(_MEMO)


def _records_text(rrset: Any) -> list[str]:
    return list(_rrset_texts(rrset, lambda r: tuple(x.to_text() for x in r)))


# The validator hands out the same Answer object for as long as it holds it, and nothing
# changes an Answer once made: its DNSInfo is made once and shared by the reports of every
# check that sees it. Nothing changes a DNSInfo after it is made either.
_dns_infos: ByIdentity[DNSInfo] = ByIdentity(_MEMO)


def dns_info(answer: Answer) -> DNSInfo:
    return _dns_infos(answer, _dns_info)


def _dns_info(answer: Answer) -> DNSInfo:
    t = _name_text
    return DNSInfo(
        name=t(answer.qname),
        rrtype=_rrtype_text(answer.qtype),
        status=answer.status.value,
        kind=answer.kind.value,
        reason=answer.reason,
        detail=answer.detail,
        ttl=answer.ttl,
        rrsig_expiration=answer.expiration,
        records=_records_text(answer.rrset) if answer.rrset is not None else [],
        cnames=[
            (t(c.owner), t(c.target), c.status.value, t(c.dname) if c.dname else None)
            for c in answer.cnames
        ],
    )


def conclude(d: ev.Domain, thresholds: Thresholds | None = None) -> DomainResult:
    th = thresholds or Thresholds()
    j = judge(d)
    result = DomainResult(
        d.target,
        mx_only=d.mx_only,
        mx_mode="host" if d.mx_only else "mx",
        validation=d.validation,
        started=d.started,
        duration=d.duration,
        verdict=j.verdict,
        headline=j.headline,
        case=j.case,
    )
    result.findings = F.domain_findings(d, j)
    if d.nameservers is not None:  # every authoritative server asked (issue 16)
        result.findings += NS.findings(d, th)
        result.nameservers = NS.to_dict(d.nameservers)
    if d.mx is not None:
        result.mx_dns = dns_info(d.mx)
        mode = F.mx_plan(d.mx, d.target).mode
        result.mx_mode = mode if mode in ("null", "implicit") else "mx"
        if d.tlsrpt is not None:  # RFC 8460 §3 policy: findings only, never the verdict
            result.tlsrpt = TLSRPT.to_dict(d.tlsrpt)
            result.findings += TLSRPT.findings(d, mail=mode in ("mx", "implicit"))
    result.hosts = [_host(d, hj, th) for hj in j.hosts]
    by_profile: dict[str, list[Prediction]] = {name: [] for name in PROFILES}
    for hr, hj in zip(result.hosts, j.hosts, strict=True):  # issue 16: sender profiles
        memo: dict = {}  # endpoints judged once for profiles with the same TLS knobs
        for name, profile in PROFILES.items():
            whole, each = predict_full(profile, hj, d.mx, memo)
            hr.profiles[name] = whole.to_dict()
            by_profile[name].append(whole)
            for er, p in zip(hr.endpoints, each, strict=True):
                if p is not None:
                    er.profiles[name] = p.to_dict()
    for name, profile in PROFILES.items():  # the domain's: its hosts', or its MX row's
        prediction = predict_domain(profile, j, d.mx, by_profile[name])
        if prediction is not None:
            result.profiles[name] = prediction.to_dict()
    result.sender_action = j.action
    times = [d.mx.expiration] if d.mx is not None else []
    times += [h.rrsig_expiration for h in result.hosts]
    present = [x for x in times if x is not None]
    result.rrsig_expiration = min(present) if present else None
    return result


def _host(d: ev.Domain, hj: HostJudgement, th: Thresholds) -> HostResult:
    h = hj.host
    out = HostResult(h.name, h.port, h.preference)
    out.case = hj.case
    out.base_domain = hj.base
    out.tlsa_name = policy.tlsa_owner(h.port, hj.base) if hj.base else None
    out.addresses = policy.addresses(h.a, h.aaaa)
    out.dns = [dns_info(h.a), dns_info(h.aaaa), *(dns_info(t.answer) for t in h.tlsa)]
    out.dane_applies = hj.dane_applies
    if hj.records:
        out.tlsa_records = [r.to_text() for r in hj.records]
        out.tlsa_usable = len(hj.usable)
        out.tlsa_ttl = hj.tlsa.answer.ttl if hj.tlsa is not None else None
    out.verdict, out.sender_action = hj.verdict, hj.action
    out.impact = hj.impact[0] if hj.impact else None
    out.rrsig_expiration = F.rrsig_expiration(hj)
    out.findings = F.host_findings(d, hj, th)
    for e in hj.endpoints:
        out.endpoints.append(_endpoint(e))
    out.suggested_records = _suggestion(hj)
    return out


def _endpoint(e) -> EndpointResult:
    p = e.endpoint.probe
    out = EndpointResult(e.endpoint.address, e.endpoint.port, p.leaf_key_type)
    out.case = e.case
    out.verdict, out.sender_action = e.verdict, e.action
    out.connected = p.connected
    out.starttls_offered = p.starttls_offered
    out.tls_version, out.cipher = p.tls_version, p.cipher
    out.probe_error, out.probe_detail = p.error, p.detail or ""
    out.transcript = list(p.transcript)
    out.chain_der = list(p.chain)
    out.chain = [describe(der) for der in p.chain]
    if p.chain:
        out.leaf_spki_sha256 = out.chain[0].get("spki_sha256")
        out.leaf_not_after = out.chain[0].get("not_after")
    m = e.match
    if m is not None:
        out.authenticated = m.authenticated
        if m.authenticated and m.match is not None:
            out.match = TLSAMatchInfo(m.match.record.to_text(), m.match.depth,
                                      _subject(m.match.certificate))  # fmt: skip
        else:
            out.match_failure, out.match_detail = m.failure, m.detail
    elif e.case == "server-failure":
        out.authenticated = False
    return out


def _suggestion(hj: HostJudgement) -> list[str]:
    """Records to publish: for the first endpoint that fails when there is one (on a
    dual-key server, the failing key's record, not the one already published)."""
    eps = [e for e in hj.endpoints if e.endpoint.probe.chain]
    failing = [e for e in eps if e.case == "mismatch"]
    for e in failing or eps:
        return list(_suggested(tuple(e.endpoint.probe.chain)))
    return []


@functools.lru_cache(maxsize=_MEMO)
def _suggested(chain: tuple[bytes, ...]) -> tuple[str, ...]:
    return tuple(T.suggest_records(chain))


# Certificates come from the chain memo (one object per DER): each subject printed once.
_subjects: ByIdentity[str] = ByIdentity(_MEMO)


def _subject(cert: x509.Certificate | None) -> str:
    if cert is None:
        return ""
    return _subjects(cert, _subject_text)


def _subject_text(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except Exception:
        return "?"


def describe(der: bytes) -> dict[str, Any]:
    """What a report shows of one certificate (and the metrics' digest), never raising."""
    out = dict(_described(bytes(der)))
    if "dns_names" in out:
        out["dns_names"] = list(out["dns_names"])
    return out


@functools.lru_cache(maxsize=_MEMO)
def _described(der: bytes) -> tuple[tuple[str, Any], ...]:
    out = _describe(der)
    if "dns_names" in out:
        out["dns_names"] = tuple(out["dns_names"])
    return tuple(out.items())


def _describe(der: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"spki_sha256": None}
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as exc:
        return {"error": f"unparsable certificate: {exc}"}
    out["subject"] = _subject(cert)
    try:
        out["issuer"] = cert.issuer.rfc4514_string()
    except Exception:
        out["issuer"] = "?"
    try:
        out["spki_sha256"] = T.spki_sha256(der)
    except Exception:
        out["spki_sha256"] = None
    try:
        out["not_after"] = int(cert.not_valid_after_utc.timestamp())
    except Exception:
        out["not_after"] = None
    out["dns_names"] = T.certificate_names(cert)[0]
    return out
