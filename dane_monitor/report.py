"""The result model of a check: Domain → MX host → Endpoint, each with findings.

Pure data with ``to_dict()`` for the JSON output (schema: ``docs/json.md``). Verdict names,
sender actions and finding codes are public interface: add freely, rename never.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    VALID = "valid"  # every endpoint a DANE sender may use authenticates
    FAILED = "failed"  # the domain's servers make DANE senders defer (mismatch, hang, SERVFAIL)
    BOGUS = "bogus"  # DNSSEC validation fails: senders defer
    NO_DANE = "no-dane"  # secure, but no usable TLSA: no authentication
    INSECURE = "insecure"  # not signed: DANE cannot apply
    NO_MAIL = "no-mail"  # null MX (RFC 7505)
    ERROR = "error"  # could not decide from here: our resolver, no route, bad name


# Worst wins. Known outages (bogus, failed) rank above "could not decide", which ranks
# above the states where mail flows without DANE's protection.
_VERDICT_RANK = {
    Verdict.VALID: 0,
    Verdict.NO_MAIL: 0,
    Verdict.NO_DANE: 1,
    Verdict.INSECURE: 2,
    Verdict.ERROR: 3,
    Verdict.FAILED: 4,
    Verdict.BOGUS: 5,
}


def worst_verdict(verdicts, default: Verdict = Verdict.VALID) -> Verdict:
    return max(verdicts, key=_VERDICT_RANK.__getitem__, default=default)


class SenderAction(StrEnum):
    """What a DANE-enforcing sender (RFC 7672) does with an endpoint."""

    DELIVER_AUTHENTICATED = "deliver-authenticated"
    DELIVER_UNAUTHENTICATED_TLS = "deliver-unauthenticated-tls"  # TLS mandatory, no usable TLSA
    DELIVER_OPPORTUNISTIC = "deliver-opportunistic"  # no DANE: TLS if offered, else plaintext
    DEFER = "defer"  # the sender will not deliver here: mail queues


_ACTION_RANK = {
    SenderAction.DELIVER_AUTHENTICATED: 0,
    SenderAction.DELIVER_UNAUTHENTICATED_TLS: 1,
    SenderAction.DELIVER_OPPORTUNISTIC: 2,
    SenderAction.DEFER: 3,
}


def worst_action(actions) -> SenderAction | None:
    return max(actions, key=_ACTION_RANK.__getitem__, default=None)


ACTION_SENTENCE = {
    SenderAction.DELIVER_AUTHENTICATED: "DANE senders deliver here, authenticated",
    SenderAction.DELIVER_UNAUTHENTICATED_TLS: "DANE senders deliver over TLS, unauthenticated",
    SenderAction.DELIVER_OPPORTUNISTIC: "senders deliver without DANE (opportunistic TLS)",
    SenderAction.DEFER: "DANE senders DEFER mail here",
}


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass
class Finding:
    code: str
    severity: Severity
    message: str  # one line: what is wrong and what to do
    domain: str | None = None
    mx: str | None = None
    address: str | None = None
    port: int | None = None
    record: str | None = None
    # The zone whose authoritative servers the finding compares (the ns-* codes), e.g.
    # "example.de.": its pytest item is nameservers[target|zone].
    zone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "severity": self.severity.value}
        for key in ("domain", "mx", "address", "port", "record", "zone"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["message"] = self.message
        return out


@dataclass
class DNSInfo:
    """The DNSSEC facts of one lookup, as reported."""

    name: str
    rrtype: str
    status: str  # secure | insecure | bogus | indeterminate
    kind: str  # positive | nxdomain | nodata | error
    reason: str | None = None
    detail: str = ""
    ttl: int | None = None
    rrsig_expiration: int | None = None
    records: list[str] = field(default_factory=list)
    # (owner, target, status, DNAME owner when the step was synthesised from a DNAME)
    cnames: list[tuple[str, str, str, str | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.rrtype,
            "status": self.status,
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail or None,
            "ttl": self.ttl,
            "rrsig_expiration": self.rrsig_expiration,
            "records": self.records,
            "cnames": [
                {"owner": o, "target": t, "status": s, "dname": d} for o, t, s, d in self.cnames
            ],
        }


@dataclass
class TLSAMatchInfo:
    record: str
    depth: int | None
    certificate: str  # subject of the matched certificate


@dataclass
class EndpointResult:
    """One (address, port, key type) a sender may reach."""

    address: str
    port: int
    key_type: str | None  # leaf key type presented: "ecdsa", "rsa", …
    sender_action: SenderAction | None = None
    verdict: Verdict = Verdict.ERROR
    connected: bool = False
    starttls_offered: bool | None = None
    tls_version: str | None = None
    cipher: str | None = None
    probe_error: str | None = None
    probe_detail: str = ""
    chain: list[dict[str, Any]] = field(default_factory=list)  # subject, issuer, spki_sha256…
    authenticated: bool | None = None
    match: TLSAMatchInfo | None = None
    match_failure: str | None = None
    match_detail: str = ""
    leaf_spki_sha256: str | None = None
    leaf_not_after: int | None = None
    transcript: list[str] = field(default_factory=list)
    chain_der: list[bytes] = field(default_factory=list, repr=False)  # as presented, leaf first
    case: str | None = None  # the decision-table row (dane_monitor.judge.TABLE)
    # Sender profiles that get this endpoint's chain (dane_monitor.profiles): name ->
    # {"action", "reason"}.
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self, debug: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "port": self.port,
            "key_type": self.key_type,
            "verdict": self.verdict.value,
            "sender_action": self.sender_action.value if self.sender_action else None,
            "decision": self.case,
            "connected": self.connected,
            "starttls_offered": self.starttls_offered,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "probe_error": self.probe_error,
            "probe_detail": self.probe_detail or None,
            "authenticated": self.authenticated,
            "match": None
            if self.match is None
            else {
                "record": self.match.record,
                "depth": self.match.depth,
                "certificate": self.match.certificate,
            },
            "match_failure": self.match_failure,
            "match_detail": self.match_detail or None,
            "leaf_spki_sha256": self.leaf_spki_sha256,
            "leaf_not_after": self.leaf_not_after,
            "chain": self.chain,
            "profiles": self.profiles,
        }
        if debug:
            out["transcript"] = self.transcript
        return out


@dataclass
class HostResult:
    name: str  # as the MX record (or the domain, for implicit MX) names it
    port: int
    preference: int | None = None
    base_domain: str | None = None  # the TLSA base domain after CNAME expansion
    tlsa_name: str | None = None
    addresses: list[str] = field(default_factory=list)
    dns: list[DNSInfo] = field(default_factory=list)
    tlsa_records: list[str] = field(default_factory=list)
    tlsa_usable: int = 0
    tlsa_ttl: int | None = None
    dane_applies: bool = False
    endpoints: list[EndpointResult] = field(default_factory=list)
    verdict: Verdict = Verdict.ERROR
    sender_action: SenderAction | None = None
    rrsig_expiration: int | None = None
    findings: list[Finding] = field(default_factory=list)
    suggested_records: list[str] = field(default_factory=list)
    case: str | None = None  # the decision-table row (dane_monitor.judge.TABLE)
    impact: str | None = None  # who defers when only some endpoints fail
    # Sender profiles (dane_monitor.profiles): name -> {"action", "reason"}; empty when the
    # check did not predict them.
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def tlsa_dns(self) -> DNSInfo | None:
        """The TLSA lookup that decided: the last one made (RFC 7672 §2.2.3 looks at the
        original name after a secure denial at the expanded one)."""
        return next((d for d in reversed(self.dns) if d.rrtype == "TLSA"), None)

    def to_dict(self, debug: bool = False) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "preference": self.preference,
            "verdict": self.verdict.value,
            "sender_action": self.sender_action.value if self.sender_action else None,
            "decision": self.case,
            "impact": self.impact,
            "base_domain": self.base_domain,
            "tlsa_name": self.tlsa_name,
            "addresses": self.addresses,
            "dane_applies": self.dane_applies,
            "tlsa_records": self.tlsa_records,
            "tlsa_usable": self.tlsa_usable,
            "tlsa_ttl": self.tlsa_ttl,
            "rrsig_expiration": self.rrsig_expiration,
            "suggested_records": self.suggested_records,
            "dns": [d.to_dict() for d in self.dns],
            "endpoints": [e.to_dict(debug) for e in self.endpoints],
            "findings": [f.to_dict() for f in self.findings],
            "profiles": self.profiles,
        }


SCHEMA_VERSION = 1


@dataclass
class DomainResult:
    """The outcome for a mail domain (or, with ``mx_only``, for one MX host)."""

    domain: str
    mx_only: bool = False
    mx_mode: str = "mx"  # mx | implicit | null | host
    mx_dns: DNSInfo | None = None
    hosts: list[HostResult] = field(default_factory=list)
    verdict: Verdict = Verdict.ERROR
    findings: list[Finding] = field(default_factory=list)
    started: float = 0.0
    duration: float = 0.0
    validation: str = "local"
    rrsig_expiration: int | None = None
    headline: str = ""  # what senders do, naming who is hurt (dane_monitor.judge)
    # The worst sender action over the hosts, or the domain's own (a bogus MX RRset: defer).
    sender_action: SenderAction | None = None
    case: str | None = None  # the decision-table row (dane_monitor.judge.TABLE)
    # Sender profiles for the whole target (dane_monitor.profiles.predict_domain): name ->
    # {"action", "reason"}; empty where no sender action applies (null MX, no such domain).
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)
    # Every authoritative server of the zones on the path, asked directly (None: not asked;
    # dane_monitor.nameservers.to_dict).
    nameservers: dict[str, Any] | None = None
    # The TLS-RPT policy record (dane_monitor.tlsrpt_record.to_dict; None: not looked up,
    # as in --mx host mode).
    tlsrpt: dict[str, Any] | None = None

    def all_findings(self) -> list[Finding]:
        out = list(self.findings)
        for host in self.hosts:
            out += host.findings
        return out

    def to_dict(self, debug: bool = False) -> dict[str, Any]:
        findings = self.all_findings()
        out = {
            "schema": SCHEMA_VERSION,
            "target": self.domain,
            "kind": "mx-host" if self.mx_only else "domain",
            "verdict": self.verdict.value,
            "headline": self.headline or None,
            "sender_action": self.sender_action.value if self.sender_action else None,
            "profiles": self.profiles,
            "decision": self.case,
            "mx_mode": self.mx_mode,
            "validation": self.validation,
            "checked_at": self.started,
            "duration_seconds": round(self.duration, 4),
            "rrsig_expiration": self.rrsig_expiration,
            "mx": self.mx_dns.to_dict() if self.mx_dns else None,
            "hosts": [h.to_dict(debug) for h in self.hosts],
            "findings": [f.to_dict() for f in findings],
            "summary": {
                sev.value: sum(1 for f in findings if f.severity == sev) for sev in Severity
            },
        }
        if self.nameservers is not None:
            out["nameservers"] = self.nameservers
        if self.tlsrpt is not None:
            out["tlsrpt"] = self.tlsrpt
        return out
