"""The DANE check: RFC 7672 policy over the DNS layer, the probe and TLSA matching.

``await Checker(validator).check_domain("example.de")`` gives the verdict a DANE-enforcing
sender reaches, per MX host, per address, per port and per key type, with findings that
tell the operator what to fix. Only :mod:`.lookup` and :mod:`.probe` do I/O; this module
sequences them (RFC 7672 §2.2) and judges the results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype
from cryptography import x509

from dane_monitor import tlsa as T
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.validator import ResolverValidator, Validator
from dane_monitor.probe import ProbeResult, Timeouts, probe_all
from dane_monitor.report import (
    DNSInfo,
    DomainResult,
    EndpointResult,
    Finding,
    HostResult,
    SenderAction,
    Severity,
    TLSAMatchInfo,
    Verdict,
    worst_action,
    worst_verdict,
)

DAY = 86400


@dataclass
class Options:
    ports: Sequence[int] = (25,)
    # Connect here instead of the logical port (tests; the TLSA name keeps the logical port).
    connect_port: int | None = None
    ehlo_name: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Bound on probes in flight across every check that shares this Checker.
    concurrency: int = 50
    rrsig_warn_days: float = 3.0
    rrsig_error_days: float = 1.0
    cert_warn_days: float = 14.0
    tlsa_ttl_info: int = DAY
    both_key_types: bool = True


def _text(name: dns.name.Name | str) -> str:
    return name.to_text() if isinstance(name, dns.name.Name) else name


def _info(answer: Answer) -> DNSInfo:
    return DNSInfo(
        name=_text(answer.qname),
        rrtype=dns.rdatatype.to_text(answer.qtype),
        status=answer.status.value,
        kind=answer.kind.value,
        reason=answer.reason,
        detail=answer.detail,
        ttl=answer.ttl,
        rrsig_expiration=answer.expiration,
        records=[r.to_text() for r in answer.rrset] if answer.rrset is not None else [],
        cnames=[
            (_text(c.owner), _text(c.target), c.status.value, _text(c.dname) if c.dname else None)
            for c in answer.cnames
        ],
    )


def _earliest(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _idna(name: str) -> str:
    """A name as the DNS wants it: IDNA A-labels, fully qualified."""
    name = name.strip()
    if not name:
        raise ValueError("empty name")
    try:
        text = dns.name.from_unicode(name.rstrip(".") + ".").to_text()
    except Exception as exc:
        raise ValueError(f"not a valid domain name: {name!r} ({exc})") from exc
    return text


class Checker:
    """Checks domains and MX hosts; one instance can serve many concurrent checks and shares
    the validator's caches between them (and between an exporter's cycles)."""

    def __init__(self, validator: Validator | ResolverValidator, options: Options | None = None):
        self.validator = validator
        self.options = options or Options()
        self._probe_slots = asyncio.Semaphore(self.options.concurrency)

    @property
    def mode(self) -> str:
        return "resolver" if isinstance(self.validator, ResolverValidator) else "local"

    async def _lookup(self, name: str, rdtype: str) -> Answer:
        return await self.validator.lookup(name, rdtype)

    # -- domain -------------------------------------------------------------------------------

    def _start(self, target: str, *, mx_only: bool) -> tuple[DomainResult, str | None]:
        """The result a check fills in, and the target as a DNS name (None: not a name)."""
        kind = {"mx_only": True, "mx_mode": "host"} if mx_only else {}
        try:
            name = _idna(target)
        except ValueError as exc:
            result = DomainResult(target, validation=self.mode, started=time.time(), **kind)
            where = {"mx": target} if mx_only else {"domain": target}
            result.findings.append(Finding("bad-name", Severity.ERROR, str(exc), **where))
            return result, None
        result = DomainResult(name, validation=self.mode, started=time.time(), **kind)
        self._resolver_warnings(result)
        return result, name

    async def check_domain(self, domain: str) -> DomainResult:
        t0 = time.monotonic()
        result, name = self._start(domain, mx_only=False)
        if name is None:
            return result
        mx = await self._lookup(name, "MX")
        result.mx_dns = _info(mx)
        hosts: list[tuple[str, int | None]] = []
        if mx.status in (Status.BOGUS, Status.INDETERMINATE):
            result.findings.append(self._dns_failure(mx, name, what="the MX RRset"))
            result.verdict = Verdict.BOGUS if mx.status == Status.BOGUS else Verdict.ERROR
        elif mx.kind == Kind.NXDOMAIN:
            result.findings.append(
                Finding(
                    "domain-not-found",
                    Severity.ERROR,
                    f"{name} does not exist (NXDOMAIN): mail to it bounces",
                    domain=name,
                )
            )
            result.verdict = Verdict.ERROR
        elif mx.kind == Kind.POSITIVE and mx.rrset is not None and _is_null_mx(mx):
            result.mx_mode = "null"
            result.findings.append(
                Finding(
                    "null-mx",
                    Severity.INFO,
                    f"{name} publishes a null MX (RFC 7505): it takes "
                    "no mail, so DANE does not apply",
                    domain=name,
                )
            )
            result.verdict = Verdict.NO_MAIL
        elif mx.kind == Kind.POSITIVE and mx.rrset is not None:
            records = sorted(mx.rrset, key=lambda r: (r.preference, r.exchange.to_text()))
            for r in records:
                if r.exchange == dns.name.root:
                    continue  # a "." among other MX records is ignored by senders
                hosts.append((r.exchange.to_text(), r.preference))
            if len(hosts) < len(records):
                result.findings.append(
                    Finding(
                        "mx-null-mixed",
                        Severity.WARNING,
                        'a null MX (".") stands beside other MX records: remove it',
                        domain=name,
                    )
                )
        else:
            result.mx_mode = "implicit"
            result.findings.append(
                Finding(
                    "implicit-mx",
                    Severity.INFO,
                    f"{name} has no MX records: senders use the domain itself (RFC 5321 §5.1), "
                    "and its own TLSA records at _25._tcp",
                    domain=name,
                )
            )
            hosts.append((name, None))

        if mx.status == Status.INSECURE and hosts:
            result.findings.append(
                Finding(
                    "mx-insecure",
                    Severity.WARNING,
                    f"the MX RRset of {name} is not DNSSEC-signed: by RFC 7672 §2.2.1 DANE does "
                    "not apply; senders that enforce a secure host TLSA anyway (Postfix's "
                    "default since 3.6) still do, and the host results below are theirs",
                    domain=name,
                )
            )

        if hosts:
            checks = [
                self._check_host(host, pref, port, result)
                for host, pref in hosts
                for port in self.options.ports
            ]
            result.hosts = list(await asyncio.gather(*checks))
            result.verdict = worst_verdict(h.verdict for h in result.hosts)
            if mx.status == Status.INSECURE and all(
                h.verdict in (Verdict.VALID, Verdict.NO_DANE, Verdict.INSECURE)
                for h in result.hosts
            ):
                result.verdict = worst_verdict([result.verdict, Verdict.INSECURE])
        result.rrsig_expiration = _earliest(
            mx.expiration, *(h.rrsig_expiration for h in result.hosts)
        )
        result.duration = time.monotonic() - t0
        return result

    async def check_host(self, host: str) -> DomainResult:
        """One MX host on its own (``--mx``): no MX lookup, the host as a sender would reach it."""
        t0 = time.monotonic()
        result, name = self._start(host, mx_only=True)
        if name is None:
            return result
        result.hosts = list(
            await asyncio.gather(
                *(self._check_host(name, None, port, result) for port in self.options.ports)
            )
        )
        result.verdict = worst_verdict(h.verdict for h in result.hosts)
        result.rrsig_expiration = _earliest(*(h.rrsig_expiration for h in result.hosts))
        result.duration = time.monotonic() - t0
        return result

    def _resolver_warnings(self, result: DomainResult) -> None:
        if isinstance(self.validator, ResolverValidator):
            for code, message in self.validator.warnings():
                result.findings.append(Finding(code, Severity.WARNING, message))

    # -- host ---------------------------------------------------------------------------------

    async def _check_host(
        self,
        name: str,
        preference: int | None,
        port: int,
        domain: DomainResult,
    ) -> HostResult:
        host = HostResult(name, port, preference)
        where = {"domain": None if domain.mx_only else domain.domain, "mx": name, "port": port}

        a, aaaa = await asyncio.gather(self._lookup(name, "A"), self._lookup(name, "AAAA"))
        host.dns += [_info(a), _info(aaaa)]
        usable = [x for x in (a, aaaa) if x.kind == Kind.POSITIVE and x.rrset is not None]
        host.addresses = [r.to_text() for x in usable for r in x.rrset]  # type: ignore[union-attr]
        expiration = _earliest(*(x.expiration for x in usable))

        failures = [x for x in (a, aaaa) if x.status in (Status.BOGUS, Status.INDETERMINATE)]
        if failures and not any(x.status == Status.SECURE for x in usable):
            for x in failures:
                host.findings.append(self._dns_failure(x, **where, what=f"the address of {name}"))
            host.verdict = (
                Verdict.BOGUS if any(x.status == Status.BOGUS for x in failures) else Verdict.ERROR
            )
            host.sender_action = SenderAction.DEFER
            host.rrsig_expiration = expiration
            return host
        if not host.addresses:
            host.findings.append(
                Finding(
                    "mx-no-address",
                    Severity.ERROR,
                    f"{name} has no A or AAAA record: senders cannot reach it; fix the MX "
                    "record or add the address",
                    **where,
                )
            )
            host.verdict = Verdict.ERROR
            return host

        addresses_secure = any(x.status == Status.SECURE for x in usable)
        base = self._base_domain(name, usable)
        host.base_domain = base
        label = f"_{port}._tcp.{base}"
        host.tlsa_name = label
        if not addresses_secure:
            host.rrsig_expiration = expiration
            message = (
                f"the address records of {name} are not DNSSEC-signed: senders do not look "
                "for TLSA records (RFC 7672 §2.2.3), so DANE does not apply"
            )
            return await self._without_dane(host, base, "address-insecure", message, where)

        answer = await self._lookup(label, "TLSA")
        host.dns.append(_info(answer))
        host.rrsig_expiration = _earliest(expiration, answer.expiration)
        self._expiry_findings(host, where)

        if answer.status == Status.BOGUS:
            host.findings.append(self._dns_failure(answer, **where, what="the TLSA RRset"))
            host.verdict, host.sender_action = Verdict.BOGUS, SenderAction.DEFER
            return host
        if answer.status == Status.INDETERMINATE:
            host.findings.append(self._dns_failure(answer, **where, what="the TLSA RRset"))
            # A SERVFAIL on a signed name is an outage (senders defer); a timeout may be ours.
            servfail = answer.reason == "servfail"
            host.verdict = Verdict.FAILED if servfail else Verdict.ERROR
            host.sender_action = SenderAction.DEFER
            return host
        if answer.status == Status.INSECURE:
            if answer.reason == "nsec3-opt-out":
                message = (
                    f"the absence of a TLSA record at {label} is not proven: the name lies in "
                    "an NSEC3 opt-out span, which may hide an unsigned delegation (RFC 5155 "
                    "§9.2), so validators treat it as unsigned; publish the TLSA record, or "
                    "sign without opt-out"
                )
            else:
                message = (
                    f"{label} is not DNSSEC-signed ({answer.reason or 'insecure'}): senders "
                    "ignore it; sign the zone and publish the DS"
                )
            return await self._without_dane(host, base, "tlsa-insecure", message, where)
        if answer.kind != Kind.POSITIVE or answer.rrset is None:
            message = (
                f"no TLSA record at {label} (proven by DNSSEC): senders deliver without "
                "authentication; publish one, e.g. the record suggested below"
            )
            return await self._without_dane(
                host, base, "no-tlsa", message, where, verdict=Verdict.NO_DANE
            )

        # A secure TLSA RRset: DANE applies (RFC 7672 §2.2).
        host.dane_applies = True
        host.tlsa_ttl = answer.ttl
        records = [T.TLSARecord.from_rdata(r) for r in answer.rrset]
        host.tlsa_records = [r.to_text() for r in records]
        usable_records = [r for r in records if r.usable]
        host.tlsa_usable = len(usable_records)
        self._record_findings(host, records, label, where)
        await self._probe_host(host, base)
        self._judge_host(host, records, usable_records, where)
        return host

    async def _without_dane(
        self,
        host: HostResult,
        base: str,
        code: str,
        message: str,
        where,
        verdict: Verdict = Verdict.INSECURE,
    ) -> HostResult:
        """DANE does not apply: senders deliver opportunistically. Probe all the same, so the
        report shows what TLS there is and which record to publish."""
        host.findings.append(Finding(code, Severity.WARNING, message, **where))
        await self._probe_host(host, base)
        for ep in host.endpoints:
            ep.sender_action, ep.verdict = SenderAction.DELIVER_OPPORTUNISTIC, verdict
        host.verdict, host.sender_action = verdict, SenderAction.DELIVER_OPPORTUNISTIC
        return host

    def _base_domain(self, name: str, usable: list[Answer]) -> str:
        """RFC 7672 §2.2.3: the expanded name if the whole CNAME chain is secure, else the
        original name (a first insecure CNAME means no DANE, handled by the caller)."""
        for answer in usable:
            if answer.status == Status.SECURE and answer.cnames:
                if all(step.status == Status.SECURE for step in answer.cnames):
                    return _text(answer.cnames[-1].target)
                return name
        return name

    # -- probing and judging -------------------------------------------------------------------

    async def _probe_host(self, host: HostResult, base: str) -> None:
        port = self.options.connect_port or host.port
        sni = base.rstrip(".")
        implicit = host.port == 465

        async def one(address: str) -> list[ProbeResult]:
            async with self._probe_slots:
                kwargs = {"sni": sni, "implicit_tls": implicit, "timeouts": self.options.timeouts}
                if self.options.ehlo_name:
                    kwargs["ehlo_name"] = self.options.ehlo_name
                if not self.options.both_key_types:
                    from dane_monitor.probe import probe

                    return [await probe(address, port, **kwargs)]
                return await probe_all(address, port, **kwargs)

        results = await asyncio.gather(*(one(a) for a in host.addresses))
        for address, probes in zip(host.addresses, results, strict=True):
            for p in probes:
                host.endpoints.append(self._endpoint(address, host.port, p))
        if not any(ep.chain for ep in host.endpoints):
            return
        self._suggest(host)

    def _endpoint(self, address: str, port: int, p: ProbeResult) -> EndpointResult:
        ep = EndpointResult(address, port, p.leaf_key_type)
        ep.connected = p.connected
        ep.starttls_offered = p.starttls_offered
        ep.tls_version, ep.cipher = p.tls_version, p.cipher
        ep.probe_error, ep.probe_detail = p.error, p.detail
        ep.transcript = list(p.transcript)
        ep.chain_der = list(p.chain)
        for der in p.chain:
            ep.chain.append(_describe(der))
        if p.chain:
            ep.leaf_spki_sha256 = ep.chain[0].get("spki_sha256")
            ep.leaf_not_after = ep.chain[0].get("not_after")
        return ep

    def _judge_host(self, host: HostResult, records, usable_records, where) -> None:
        names = [host.base_domain or host.name, host.name]
        hits_by_record: dict[str, int] = {r.to_text(): 0 for r in usable_records}
        for ep in host.endpoints:
            at = {**where, "address": ep.address}
            if ep.probe_error is not None:
                self._probe_failure(host, ep, at, dane=bool(usable_records))
                continue
            if not usable_records:
                ep.sender_action = SenderAction.DELIVER_UNAUTHENTICATED_TLS
                ep.verdict = Verdict.NO_DANE
                continue
            match = T.authenticate(records, ep.chain_der, names)
            used = [hit.record for hit in match.hits]
            if match.authenticated and match.match is not None:
                used.append(match.match.record)  # a 2 x 0 anchor carried in DNS is no "hit"
            for record in {r.to_text() for r in used}:
                hits_by_record[record] = hits_by_record.get(record, 0) + 1
            ep.authenticated = match.authenticated
            if match.authenticated and match.match is not None:
                ep.match = TLSAMatchInfo(
                    match.match.record.to_text(),
                    match.match.depth,
                    _subject(match.match.certificate),
                )
                ep.sender_action, ep.verdict = SenderAction.DELIVER_AUTHENTICATED, Verdict.VALID
                self._cert_expiry(host, ep, match, at)
            else:
                ep.match_failure, ep.match_detail = match.failure, match.detail
                ep.sender_action, ep.verdict = SenderAction.DEFER, Verdict.FAILED
                host.findings.append(self._mismatch(host, ep, match, at))
        if not usable_records:
            host.findings.append(
                Finding(
                    "tlsa-no-usable",
                    Severity.WARNING,
                    f"{host.tlsa_name} has TLSA records but none usable for SMTP: senders insist "
                    "on TLS but cannot authenticate; publish a 3 1 1 or 2 1 1 record",
                    **where,
                )
            )
        host.verdict = worst_verdict((ep.verdict for ep in host.endpoints), Verdict.ERROR)
        host.sender_action = worst_action(
            ep.sender_action for ep in host.endpoints if ep.sender_action
        )
        if usable_records and any(ep.chain for ep in host.endpoints):
            self._rollover_findings(host, usable_records, hits_by_record, where)
            self._disagreement(host, where)

    def _probe_failure(self, host: HostResult, ep: EndpointResult, at, *, dane: bool) -> None:
        code = ep.probe_error or "probe-failed"
        if code in ("connect-refused", "connect-timeout", "connect-failed"):
            finding = "connect-failed"
            ep.verdict = Verdict.ERROR
            message = f"cannot connect to {ep.address} port {ep.port}: {ep.probe_detail}"
        elif code in ("starttls-missing", "starttls-refused", "tls-failed"):
            finding = code
            ep.verdict = Verdict.FAILED
            what = {
                "starttls-missing": "does not offer STARTTLS",
                "starttls-refused": "refuses STARTTLS",
                "tls-failed": "fails the TLS handshake",
            }[code]
            message = (
                f"{ep.address} {what} ({ep.probe_detail}); with a TLSA record "
                "published, DANE senders defer: fix TLS on this server"
            )
        else:
            finding = "smtp-error"
            ep.verdict = Verdict.ERROR
            message = f"{ep.address}: {code}: {ep.probe_detail}"
        ep.sender_action = SenderAction.DEFER
        host.findings.append(Finding(finding, Severity.ERROR, message, **at))

    def _mismatch(self, host: HostResult, ep: EndpointResult, match, at) -> Finding:
        code = match.failure or "tlsa-mismatch"
        served = ep.leaf_spki_sha256 or "?"
        fix = ""
        # The fix comes from this endpoint's own chain: on a dual-key server the RSA
        # endpoint needs the RSA key's record, whatever the ECDSA endpoint serves.
        own = T.suggest_records(ep.chain_der, usages=[3])
        if own:
            fix = f"; publish {host.tlsa_name} IN TLSA {own[0]}"
        message = (
            f"{ep.address} ({ep.key_type or '?'} key) does not authenticate: {match.detail} "
            f"Published: {', '.join(host.tlsa_records)}; served leaf SPKI SHA-256 {served}{fix}"
        )
        return Finding(code, Severity.ERROR, message, **at)

    def _record_findings(self, host: HostResult, records, label: str, where) -> None:
        pkix = [r for r in records if r.unusable_reason == "pkix-usage"]
        other = [r for r in records if r.unusable_reason not in (None, "pkix-usage")]
        if pkix:
            host.findings.append(
                Finding(
                    "tlsa-usage-pkix",
                    Severity.WARNING,
                    f"{label} has PKIX-TA/PKIX-EE (usage 0/1) records, which SMTP senders ignore "
                    "(RFC 7672 §3.1.3): use DANE-EE (3) or DANE-TA (2)",
                    record=", ".join(r.to_text() for r in pkix),
                    **where,
                )
            )
        for r in other:
            host.findings.append(
                Finding(
                    "tlsa-unusable",
                    Severity.WARNING,
                    f"{label}: record unusable ({r.unusable_reason}); senders ignore it",
                    record=r.to_text(),
                    **where,
                )
            )
        if host.tlsa_ttl is not None and host.tlsa_ttl > self.options.tlsa_ttl_info:
            host.findings.append(
                Finding(
                    "tlsa-ttl-long",
                    Severity.INFO,
                    f"{label} has a TTL of {host.tlsa_ttl}s: every key rollover must wait two "
                    "TTLs between publishing the new record and switching keys",
                    **where,
                )
            )

    def _rollover_findings(self, host: HostResult, usable, hits: dict[str, int], where) -> None:
        if not any(ep.authenticated for ep in host.endpoints):
            return  # the mismatch findings say it all
        stale = [r for r in usable if hits.get(r.to_text(), 0) == 0]
        for r in stale:
            host.findings.append(
                Finding(
                    "tlsa-stale-record",
                    Severity.INFO,
                    f"{host.tlsa_name} {r.to_text()[:60]}… matches nothing any endpoint serves: "
                    "the next key's pre-published record (keep it) or a stale one (remove it)",
                    record=r.to_text(),
                    **where,
                )
            )
        ta = any(r.usage == 2 for r in usable if hits.get(r.to_text()))
        if not stale and not ta and all(ep.authenticated for ep in host.endpoints if ep.chain):
            host.findings.append(
                Finding(
                    "tlsa-no-rollover",
                    Severity.INFO,
                    f"every record at {host.tlsa_name} matches the current key: publish the next "
                    "key's record (3 1 1) or a 2 1 1 for the issuing CA at least two TTLs before "
                    "the next certificate renewal (RFC 7671 §8)",
                    **where,
                )
            )

    def _disagreement(self, host: HostResult, where) -> None:
        by_type: dict[str | None, set[str]] = {}
        for ep in host.endpoints:
            if ep.leaf_spki_sha256:
                by_type.setdefault(ep.key_type, set()).add(ep.leaf_spki_sha256)
        mixed = {k: v for k, v in by_type.items() if len(v) > 1}
        auth = {ep.authenticated for ep in host.endpoints if ep.chain}
        if mixed or len(auth) > 1:
            detail = "; ".join(
                f"{ep.address} {ep.key_type}: {'ok' if ep.authenticated else 'FAILS'}"
                for ep in host.endpoints
                if ep.chain
            )
            host.findings.append(
                Finding(
                    "endpoints-disagree",
                    Severity.WARNING,
                    f"the endpoints of {host.name} present different keys or results ({detail}): "
                    "a sender's outcome depends on which address or key type it gets",
                    **where,
                )
            )

    def _cert_expiry(self, host: HostResult, ep: EndpointResult, match, at) -> None:
        if ep.leaf_not_after is None:
            return
        left = ep.leaf_not_after - time.time()
        if left < self.options.cert_warn_days * DAY:
            when = "expired" if left < 0 else f"expires in {left / DAY:.1f} days"
            ee = match.match is not None and match.match.record.usage == 3
            note = (
                " DANE-EE ignores dates, so DANE senders still deliver; other senders may not."
                if ee
                else ""
            )
            host.findings.append(
                Finding(
                    "cert-expiring",
                    Severity.WARNING,
                    f"the certificate at {ep.address} {when}.{note} Renew it, and publish the new "
                    "key's TLSA record first",
                    **at,
                )
            )

    def _expiry_findings(self, host: HostResult, where) -> None:
        if host.rrsig_expiration is None:
            return
        left = host.rrsig_expiration - time.time()
        if left < self.options.rrsig_warn_days * DAY:
            severity = (
                Severity.ERROR if left < self.options.rrsig_error_days * DAY else (Severity.WARNING)
            )
            host.findings.append(
                Finding(
                    "rrsig-expiring",
                    severity,
                    f"a DNSSEC signature on the path to {host.tlsa_name} expires in "
                    f"{left / 3600:.1f} hours: when it does, the answer turns bogus and senders "
                    "defer; check the signer",
                    **where,
                )
            )

    def _suggest(self, host: HostResult) -> None:
        for ep in host.endpoints:
            if ep.chain_der:
                host.suggested_records = T.suggest_records(ep.chain_der)
                return

    def _dns_failure(self, answer: Answer, domain=None, mx=None, port=None, *, what: str):
        if answer.status == Status.BOGUS:
            return Finding(
                "dnssec-bogus",
                Severity.ERROR,
                f"{what} ({_text(answer.qname)}) fails DNSSEC validation: {answer.reason}: "
                f"{answer.detail}. DANE senders defer mail",
                domain=domain,
                mx=mx,
                port=port,
            )
        return Finding(
            "dns-error",
            Severity.ERROR,
            f"{what} ({_text(answer.qname)}) could not be resolved: {answer.reason}: "
            f"{answer.detail}",
            domain=domain,
            mx=mx,
            port=port,
        )


def _is_null_mx(answer: Answer) -> bool:
    rrset = answer.rrset
    return rrset is not None and len(rrset) == 1 and rrset[0].exchange == dns.name.root


def _subject(cert: x509.Certificate | None) -> str:
    if cert is None:
        return ""
    try:
        return cert.subject.rfc4514_string()
    except Exception:
        return "?"


def _describe(der: bytes) -> dict:
    out: dict = {"spki_sha256": None}
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
        out["spki_sha256"] = T.association_data(cert, 1, 1).hex()
    except Exception:
        out["spki_sha256"] = None
    try:
        out["not_after"] = int(cert.not_valid_after_utc.timestamp())
    except Exception:
        out["not_after"] = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        out["dns_names"] = san.value.get_values_for_type(x509.DNSName)
    except Exception:
        out["dns_names"] = []
    return out
