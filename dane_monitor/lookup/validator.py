"""In-process DNSSEC validation (RFC 4033-4035, 5155, 6840) on top of the stub client.

Two validators with one interface, ``await v.lookup(name, rdtype) -> Answer``:

- :class:`Validator` (local mode) chases DS and DNSKEY from the trust anchor down to the
  zone that signed each answer, verifies every RRSIG itself, and checks NSEC/NSEC3 proofs.
  It learns where zones begin from the signer names of signatures, and falls back to a
  top-down walk of DS queries to prove that unsigned data lies below an insecure
  delegation (else the unsigned data is bogus).
- :class:`ResolverValidator` (resolver mode) trusts the AD bit of the configured resolver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.rrset

from dane_monitor.lookup import answer as A
from dane_monitor.lookup.anchors import Anchor, TrustAnchors
from dane_monitor.lookup.answer import Answer, CNAMEStep, Kind, Status, earliest, worst
from dane_monitor.lookup.denial import (
    Denied,
    Proof,
    nsec3_proof,
    nsec_proof,
    wildcard_nsec3_proof,
    wildcard_nsec_ok,
)
from dane_monitor.lookup.stub import Reply, StubClient

RRSIG = dns.rdatatype.RRSIG
DS = dns.rdatatype.DS
DNSKEY = dns.rdatatype.DNSKEY
CNAME = dns.rdatatype.CNAME
SOA = dns.rdatatype.SOA
NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3

# RFC 8624 §3.1: what a validator implements; others make a zone insecure (RFC 4035 §5.2).
SUPPORTED_ALGORITHMS = frozenset({5, 7, 8, 10, 13, 14, 15, 16})
SUPPORTED_DIGESTS = frozenset({1, 2, 4})
MAX_CNAMES = 8
ERROR_CACHE_SECONDS = 5.0
ZONE_FLAG = 0x0100


@dataclass
class ZoneKeys:
    zone: dns.name.Name
    status: Status
    keys: list = None  # type: ignore[assignment]
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    expires_at: float = 0.0  # monotonic time after which to look again


@dataclass
class _Verified:
    ok: bool
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    sig: object | None = None


class Validator:
    """Local validation from trust anchors. One instance per run: it caches zone keys.

    :param client: the stub client (with CD set, so bogus data reaches us to be diagnosed).
    :param anchors: trust anchors; the IANA root KSKs by default.
    :param now: the clock signatures are checked against (POSIX seconds).
    """

    def __init__(
        self,
        client: StubClient,
        anchors: TrustAnchors | None = None,
        *,
        now: Callable[[], float] = time.time,
        max_answers: int = 100_000,
    ) -> None:
        self.client = client
        self.anchors = anchors if anchors is not None else TrustAnchors.root()
        self.now = now
        self._keys: dict[dns.name.Name, ZoneKeys] = {}
        self._pending: dict[dns.name.Name, asyncio.Future[ZoneKeys]] = {}
        self._answers: dict[tuple[dns.name.Name, int, bool], tuple[Answer, float]] = {}
        self.max_answers = max_answers
        self.verifications = 0

    # -- public ------------------------------------------------------------------------------

    async def lookup(
        self,
        name: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType | str | int,
        *,
        deadline: float | None = None,
    ) -> Answer:
        """Look up and validate; CNAMEs are followed (up to 8) unless CNAME is asked for."""
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        steps: list[CNAMEStep] = []
        expiration: int | None = None
        current = qname
        seen = {qname}
        while True:
            ans = await self._single(current, qtype, deadline)
            expiration = earliest(expiration, ans.expiration)
            target = _cname_target(ans)
            if target is None or qtype == CNAME:
                break
            steps.append(CNAMEStep(current, target, ans.status))
            if target in seen or len(steps) > MAX_CNAMES:
                return Answer(
                    qname,
                    qtype,
                    Status.INDETERMINATE,
                    Kind.ERROR,
                    reason=A.CNAME_LOOP,
                    detail=f"CNAME chain from {qname} loops or exceeds {MAX_CNAMES} steps",
                    cnames=steps,
                )
            seen.add(target)
            current = target
        status = worst(ans.status, *(s.status for s in steps))
        reason, detail = ans.reason, ans.detail
        if reason is None and status != ans.status:
            bad = next(s for s in steps if s.status == status)
            reason, detail = "cname-" + status.value, f"CNAME at {bad.owner} is {status}"
        return Answer(
            qname,
            qtype,
            status,
            ans.kind,
            rrset=ans.rrset,
            reason=reason,
            detail=detail,
            expiration=expiration,
            ttl=ans.ttl,
            cnames=steps,
            signer=ans.signer,
        )

    # -- one question, no CNAME following ------------------------------------------------------

    async def _single(
        self, qname: dns.name.Name, qtype: int, deadline: float | None, *, walk: bool = True
    ) -> Answer:
        key = (qname, qtype, walk)
        hit = self._answers.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        answer = await self._single_uncached(qname, qtype, deadline, walk)
        self._answers[key] = (answer, time.monotonic() + self._cache_seconds(answer))
        if len(self._answers) > self.max_answers:
            now = time.monotonic()
            self._answers = {k: v for k, v in self._answers.items() if v[1] > now}
            while len(self._answers) > self.max_answers:
                del self._answers[next(iter(self._answers))]
        return answer

    def _cache_seconds(self, answer: Answer) -> float:
        """Validated answers are reused for their TTL, never past a signature's expiry;
        failures only briefly, so that a fixed zone is seen on the next cycle."""
        if answer.status in (Status.BOGUS, Status.INDETERMINATE) or answer.ttl is None:
            return ERROR_CACHE_SECONDS
        seconds = float(answer.ttl)
        if answer.expiration is not None:
            seconds = min(seconds, answer.expiration - self.now())
        return max(seconds, 0.0)

    async def _single_uncached(
        self, qname: dns.name.Name, qtype: int, deadline: float | None, walk: bool
    ) -> Answer:
        reply = await self.client.query(qname, qtype, deadline=deadline)
        error = _reply_error(qname, qtype, reply)
        if error is not None:
            return error
        msg = reply.response
        assert msg is not None
        rrset = _find(msg.answer, qname, qtype)
        if rrset is None and qtype != CNAME:
            rrset = _find(msg.answer, qname, CNAME)
        if rrset is not None:
            return await self._positive(qname, qtype, msg, rrset, deadline, walk)
        return await self._negative(qname, qtype, msg, deadline, walk)

    async def _positive(self, qname, qtype, msg, rrset, deadline, walk: bool) -> Answer:
        sigs = _sigs(msg.answer, rrset.name, rrset.rdtype)
        kind = Kind.POSITIVE
        if not sigs:
            return await self._unsigned(qname, qtype, kind, rrset, deadline, walk)
        signers = {s.signer for s in sigs}
        signer = max((s for s in signers if qname.is_subdomain(s)), key=len, default=None)
        if signer is None or (qtype == DS and signer == qname):
            return _bogus(qname, qtype, A.BAD_SIGNER, f"signer {signers} cannot sign {qname}")
        keys = await self._zone_keys(signer, deadline)
        if keys.status != Status.SECURE:
            return _from_keys(qname, qtype, keys, kind, rrset)
        v = self._verify(rrset, sigs, keys)
        if not v.ok:
            return _bogus(qname, qtype, v.reason, v.detail, signer=signer)
        expiration = earliest(v.expiration, keys.expiration)
        sig = v.sig
        owner_labels = len(rrset.name) - 1 - (rrset.name.labels[0] == b"*")
        if sig.labels < owner_labels:  # type: ignore[attr-defined]
            # Expanded from a wildcard: prove the name itself does not exist.
            source = dns.name.Name((b"*", *rrset.name.labels[-(sig.labels + 1) :]))  # type: ignore[attr-defined]
            proof, w_exp = self._wildcard_proof(msg, qname, source, keys)
            expiration = earliest(expiration, w_exp)
            if proof.result == Denied.OPT_OUT or proof.too_many_iterations:
                # The expansion may hide an unsigned delegation: insecure, as BIND says.
                return Answer(
                    qname,
                    qtype,
                    Status.INSECURE,
                    kind,
                    rrset=rrset,
                    reason=A.OPT_OUT_WILDCARD,
                    detail=f"wildcard answer from {source}: {proof.why}",
                    ttl=rrset.ttl,
                    signer=signer,
                )
            if proof.result != Denied.NXDOMAIN:
                return _bogus(
                    qname,
                    qtype,
                    A.BAD_DENIAL,
                    f"wildcard answer from {source}: {proof.why}",
                    signer=signer,
                )
        return Answer(
            qname,
            qtype,
            Status.SECURE,
            kind,
            rrset=rrset,
            expiration=expiration,
            ttl=rrset.ttl,
            signer=signer,
        )

    async def _negative(self, qname, qtype, msg, deadline, walk: bool) -> Answer:
        rcode = msg.rcode()
        kind = Kind.NXDOMAIN if rcode == dns.rcode.NXDOMAIN else Kind.NODATA
        soa = next((r for r in msg.authority if r.rdtype == SOA), None)
        denial = [r for r in msg.authority if r.rdtype in (NSEC, NSEC3)]
        signed = [
            r for r in [soa, *denial] if r is not None and _sigs(msg.authority, r.name, r.rdtype)
        ]
        if not signed:
            return await self._unsigned(qname, qtype, kind, None, deadline, walk)
        zone = (
            soa.name
            if soa is not None
            else _sigs(msg.authority, signed[0].name, signed[0].rdtype)[0].signer
        )
        if not qname.is_subdomain(zone) or (qtype == DS and zone == qname):
            return _bogus(qname, qtype, A.BAD_SIGNER, f"denial from {zone} cannot cover {qname}")
        keys = await self._zone_keys(zone, deadline)
        if keys.status != Status.SECURE:
            return _from_keys(qname, qtype, keys, kind, None)
        expiration = keys.expiration
        if soa is not None:
            v = self._verify(soa, _sigs(msg.authority, soa.name, SOA), keys)
            if not v.ok:
                return _bogus(qname, qtype, v.reason, f"SOA: {v.detail}", signer=zone)
            expiration = earliest(expiration, v.expiration)
        proven: list[dns.rrset.RRset] = []
        failures: list[_Verified] = []
        for r in denial:
            v = self._verify(r, _sigs(msg.authority, r.name, r.rdtype), keys)
            if v.ok:
                proven.append(r)
                expiration = earliest(expiration, v.expiration)
            else:
                failures.append(v)
        if not denial:
            return _bogus(
                qname,
                qtype,
                A.MISSING_DENIAL,
                "no NSEC/NSEC3 in a signed zone's negative answer",
                signer=zone,
            )
        nsec3 = [r for r in proven if r.rdtype == NSEC3]
        nsec = [r for r in proven if r.rdtype == NSEC]
        proof = (
            nsec3_proof(qname, qtype, nsec3, zone)
            if nsec3
            else nsec_proof(qname, qtype, nsec, zone)
        )
        if proof.too_many_iterations:
            return Answer(
                qname,
                qtype,
                Status.INSECURE,
                kind,
                reason=A.NSEC3_ITERATIONS,
                detail=proof.why,
                expiration=expiration,
                signer=zone,
            )
        insecure_delegation = proof.result in (Denied.INSECURE_DELEGATION, Denied.OPT_OUT)
        if insecure_delegation and qtype == DS:
            # A proven absence of DS at a cut: the answer is secure, the child is unsigned.
            proof = Proof(Denied.NODATA, proof.why)
        consistent = (proof.result == Denied.NXDOMAIN and kind == Kind.NXDOMAIN) or (
            proof.result == Denied.NODATA and kind == Kind.NODATA
        )
        if not consistent:
            if failures:
                f = failures[0]
                return _bogus(qname, qtype, f.reason, f"denial: {f.detail}", signer=zone)
            return _bogus(
                qname, qtype, A.BAD_DENIAL, f"{kind.value} not proven: {proof.why}", signer=zone
            )
        ttl = min((r.ttl for r in msg.authority), default=None)
        if soa is not None and len(soa):
            ttl = min(soa.ttl, soa[0].minimum)
        return Answer(
            qname,
            qtype,
            Status.SECURE,
            kind,
            expiration=expiration,
            ttl=ttl,
            signer=zone,
            detail=proof.why,
            insecure_delegation=insecure_delegation,
        )

    async def _unsigned(self, qname, qtype, kind, rrset, deadline, walk: bool) -> Answer:
        """Data without signatures: fine below an insecure delegation, bogus anywhere else."""
        where = "answer" if rrset is not None else "negative answer"
        if walk:
            zone = await self._enclosing(qname, deadline)
            if zone.status == Status.SECURE:
                return _bogus(
                    qname,
                    qtype,
                    A.MISSING_RRSIG,
                    f"unsigned {where} inside the signed zone {zone.zone}",
                )
            return _from_keys(qname, qtype, zone, kind, rrset)
        return _bogus(qname, qtype, A.MISSING_RRSIG, f"unsigned {where} below a signed zone")

    def _wildcard_proof(self, msg, qname, source, keys: ZoneKeys) -> tuple[Proof, int | None]:
        proven, expiration = [], None
        for r in msg.authority:
            if r.rdtype in (NSEC, NSEC3):
                v = self._verify(r, _sigs(msg.authority, r.name, r.rdtype), keys)
                if v.ok:
                    proven.append(r)
                    expiration = earliest(expiration, v.expiration)
        nsec3 = [r for r in proven if r.rdtype == NSEC3]
        if nsec3:
            return wildcard_nsec3_proof(qname, source, nsec3, keys.zone), expiration
        nsec = [r for r in proven if r.rdtype == NSEC]
        if wildcard_nsec_ok(qname, source, nsec, keys.zone):
            return Proof(Denied.NXDOMAIN, f"NSEC covers {qname}"), expiration
        return Proof(Denied.NONE, f"no NSEC proves that {qname} does not exist"), expiration

    # -- zones ---------------------------------------------------------------------------------

    async def _zone_keys(self, zone: dns.name.Name, deadline: float | None) -> ZoneKeys:
        """The validated DNSKEYs of ``zone`` (or why there are none), cached for their TTL."""
        cached = self._keys.get(zone)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached
        # Shared by every caller, and not cancelled with any one of them (see StubClient).
        task = self._pending.get(zone)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_cache_keys(zone, deadline))
            self._pending[zone] = task
            task.add_done_callback(lambda _, zone=zone: self._pending.pop(zone, None))
        return await asyncio.shield(task)

    async def _fetch_and_cache_keys(self, zone: dns.name.Name, deadline: float | None) -> ZoneKeys:
        keys = await self._fetch_keys(zone, deadline)
        if keys.status in (Status.SECURE, Status.INSECURE, Status.BOGUS):
            self._keys[zone] = keys
        return keys

    async def _fetch_keys(self, zone: dns.name.Name, deadline: float | None) -> ZoneKeys:
        anchor = self.anchors.anchors.get(zone)
        if anchor is not None:
            return await self._dnskeys(zone, anchor.ds, anchor.dnskeys, None, deadline, anchor)
        if self.anchors.closest(zone) is None:
            return ZoneKeys(
                zone,
                Status.INSECURE,
                [],
                A.NO_TRUST_ANCHOR,
                f"no trust anchor above {zone}",
                expires_at=float("inf"),
            )
        ds = await self._single(zone, DS, deadline)
        if ds.status != Status.SECURE:
            return _keys_from_answer(zone, ds)
        if ds.insecure_delegation:
            return ZoneKeys(
                zone,
                Status.INSECURE,
                [],
                A.INSECURE_DELEGATION,
                ds.detail,
                ds.expiration,
                _soon(ds.ttl),
            )
        if ds.kind != Kind.POSITIVE or ds.rrset is None:
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                A.BAD_SIGNER,
                f"{zone} signs data but its parent proves it has no DS and is no delegation",
                expires_at=_soon(60),
            )
        return await self._dnskeys(zone, list(ds.rrset), [], ds, deadline, None)

    async def _dnskeys(
        self, zone, ds_list, anchor_keys, ds_answer: Answer | None, deadline, anchor: Anchor | None
    ) -> ZoneKeys:
        usable_ds = [
            d
            for d in ds_list
            if d.algorithm in SUPPORTED_ALGORITHMS and d.digest_type in SUPPORTED_DIGESTS
        ]
        if any(d.digest_type != 1 for d in usable_ds):
            usable_ds = [d for d in usable_ds if d.digest_type != 1]  # RFC 4509 §3
        usable_keys = [k for k in anchor_keys if k.algorithm in SUPPORTED_ALGORITHMS]
        parent_exp = ds_answer.expiration if ds_answer is not None else None
        if not usable_ds and not usable_keys:
            return ZoneKeys(
                zone,
                Status.INSECURE,
                [],
                A.UNSUPPORTED_ALGORITHM,
                f"no DS/anchor of {zone} uses an algorithm and digest we support",
                parent_exp,
                _soon(ds_answer.ttl if ds_answer else 3600),
            )
        reply = await self.client.query(zone, DNSKEY, deadline=deadline)
        error = _reply_error(zone, DNSKEY, reply)
        if error is not None:
            return _keys_from_answer(zone, error)
        msg = reply.response
        rrset = _find(msg.answer, zone, DNSKEY)
        if rrset is None and anchor is not None:
            # The trust anchor's own keys missing says nothing about the domain checked: the
            # resolver does not serve DNSSEC (or filters), so no verdict can be reached.
            return ZoneKeys(
                zone,
                Status.INDETERMINATE,
                [],
                A.ANCHOR_UNAVAILABLE,
                f"the resolver returned no DNSKEY RRset for the trust anchor {zone} "
                f"({dns.rcode.to_text(msg.rcode())}): is it DNSSEC-aware? "
                "(dane-monitor resolver-check tells)",
            )
        if rrset is None:
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                A.NO_DNSKEY,
                f"{zone} has no DNSKEY RRset",
                parent_exp,
                _soon(60),
            )
        trusted = []
        for key in rrset:
            if key.protocol != 3 or not key.flags & ZONE_FLAG:
                continue
            if key in usable_keys:
                trusted.append(key)
                continue
            tag = dns.dnssec.key_id(key)
            for d in usable_ds:
                if d.key_tag == tag and d.algorithm == key.algorithm and _ds_matches(zone, key, d):
                    trusted.append(key)
                    break
        if not trusted:
            what = "trust anchor" if anchor is not None else "DS"
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                A.NO_MATCHING_DS,
                f"no DNSKEY of {zone} matches its {what}",
                parent_exp,
                _soon(60),
            )
        sigs = _sigs(msg.answer, zone, DNSKEY)
        if not sigs:
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                A.MISSING_RRSIG,
                f"the DNSKEY RRset of {zone} is not signed",
                parent_exp,
                _soon(60),
            )
        v = self._verify(rrset, sigs, ZoneKeys(zone, Status.SECURE, trusted))
        if not v.ok:
            return ZoneKeys(
                zone, Status.BOGUS, [], v.reason, f"DNSKEY: {v.detail}", parent_exp, _soon(60)
            )
        ttl = min(rrset.ttl, ds_answer.ttl if ds_answer and ds_answer.ttl else rrset.ttl)
        return ZoneKeys(
            zone,
            Status.SECURE,
            list(rrset),
            None,
            "",
            earliest(parent_exp, v.expiration),
            _soon(ttl),
        )

    async def _enclosing(self, name: dns.name.Name, deadline: float | None) -> ZoneKeys:
        """Top-down from the closest trust anchor: the status of the zone holding ``name``,
        stopping at the first insecure delegation (an unsigned answer's only excuse)."""
        anchor = self.anchors.closest(name)
        if anchor is None:
            return ZoneKeys(
                name, Status.INSECURE, [], A.NO_TRUST_ANCHOR, f"no trust anchor above {name}"
            )
        current = await self._zone_keys(anchor.zone, deadline)
        depth = len(anchor.zone)
        while current.status == Status.SECURE and depth < len(name):
            depth += 1
            child = dns.name.Name(name.labels[-depth:])
            ds = await self._single(child, DS, deadline, walk=False)
            if ds.status != Status.SECURE:
                return _keys_from_answer(child, ds)
            if ds.insecure_delegation:
                return ZoneKeys(child, Status.INSECURE, [], A.INSECURE_DELEGATION, ds.detail)
            if ds.kind == Kind.POSITIVE:
                current = await self._zone_keys(child, deadline)
            elif ds.kind == Kind.NXDOMAIN:
                break
        return current

    # -- signatures ------------------------------------------------------------------------------

    def _verify(self, rrset: dns.rrset.RRset, sigs: list, keys: ZoneKeys) -> _Verified:
        """Is ``rrset`` signed by one of ``keys``? Says why not, most telling reason first."""
        now = self.now()
        reasons: list[tuple[int, str, str]] = []
        for sig in sigs:
            if sig.signer != keys.zone:
                reasons.append((1, A.BAD_SIGNER, f"RRSIG signer {sig.signer} is not {keys.zone}"))
                continue
            if sig.algorithm not in SUPPORTED_ALGORITHMS:
                reasons.append((2, A.UNSUPPORTED_ALGORITHM, f"algorithm {sig.algorithm}"))
                continue
            if now > sig.expiration:
                reasons.append(
                    (
                        5,
                        A.SIGNATURE_EXPIRED,
                        f"RRSIG over {rrset.name} "
                        f"{dns.rdatatype.to_text(rrset.rdtype)} expired "
                        f"{_when(sig.expiration)}",
                    )
                )
                continue
            if now < sig.inception:
                reasons.append(
                    (
                        5,
                        A.SIGNATURE_NOT_YET_VALID,
                        f"RRSIG over {rrset.name} "
                        f"{dns.rdatatype.to_text(rrset.rdtype)} valid only from "
                        f"{_when(sig.inception)}",
                    )
                )
                continue
            candidates = [
                k
                for k in keys.keys
                if k.algorithm == sig.algorithm and dns.dnssec.key_id(k) == sig.key_tag
            ]
            if not candidates:
                reasons.append(
                    (3, A.NO_MATCHING_KEY, f"no DNSKEY of {keys.zone} with tag {sig.key_tag}")
                )
                continue
            for key in candidates:
                self.verifications += 1
                try:
                    dns.dnssec.validate_rrsig(
                        rrset,
                        sig,
                        {keys.zone: dns.rdataset.from_rdata_list(rrset.ttl, [key])},
                        now=now,
                        policy=dns.dnssec.allow_all_policy,
                    )
                except (dns.dnssec.ValidationFailure, dns.dnssec.UnsupportedAlgorithm) as exc:
                    reasons.append(
                        (
                            4,
                            A.BAD_SIGNATURE,
                            f"RRSIG over {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: {exc}",
                        )
                    )
                    continue
                except Exception as exc:  # malformed keys or signatures from the wire
                    reasons.append((4, A.BAD_SIGNATURE, f"unusable RRSIG or key: {exc}"))
                    continue
                return _Verified(True, expiration=sig.expiration, sig=sig)
        if not reasons:
            return _Verified(False, A.MISSING_RRSIG, f"no RRSIG over {rrset.name}")
        _, reason, detail = max(reasons)
        return _Verified(False, reason, detail)


class ResolverValidator:
    """Resolver mode: the AD bit of the configured resolver decides (no CD sent)."""

    def __init__(self, client: StubClient) -> None:
        self.client = client
        self.client.checking_disabled = False

    def warnings(self) -> list[tuple[str, str]]:
        """(code, message) pairs the checker reports as warning findings."""
        if self.client.server.is_loopback:
            return []
        return [
            (
                "resolver-not-loopback",
                f"resolver mode trusts the AD bit from {self.client.server}, which is not on "
                "loopback: an attacker on the path can forge it. Use a validating resolver on "
                "this host, or local validation.",
            )
        ]

    async def lookup(self, name, rdtype, *, deadline: float | None = None) -> Answer:
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        reply = await self.client.query(qname, qtype, deadline=deadline)
        error = _reply_error(qname, qtype, reply)
        if error is not None:
            return error
        msg = reply.response
        status = Status.SECURE if msg.flags & dns.flags.AD else Status.INSECURE
        reason = None if status == Status.SECURE else A.RESOLVER_SAYS_INSECURE
        steps: list[CNAMEStep] = []
        current = qname
        rrset = None
        for _ in range(MAX_CNAMES + 1):
            rrset = _find(msg.answer, current, qtype)
            if rrset is not None or qtype == CNAME:
                break
            alias = _find(msg.answer, current, CNAME)
            if alias is None:
                break
            steps.append(CNAMEStep(current, alias[0].target, status))
            current = alias[0].target
        if rrset is not None:
            kind = Kind.POSITIVE
        else:
            kind = Kind.NXDOMAIN if msg.rcode() == dns.rcode.NXDOMAIN else Kind.NODATA
        ttl = rrset.ttl if rrset is not None else None
        return Answer(qname, qtype, status, kind, rrset=rrset, reason=reason, ttl=ttl, cnames=steps)


# -- helpers ------------------------------------------------------------------------------------


def _find(section, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == 1:
            return rrset
    return None


def _sigs(section, name: dns.name.Name, covered: int) -> list:
    out = []
    for rrset in section:
        if rrset.name == name and rrset.rdtype == RRSIG:
            out.extend(sig for sig in rrset if sig.type_covered == covered)
    return out


def _cname_target(ans: Answer) -> dns.name.Name | None:
    if (
        ans.rrset is not None
        and ans.rrset.rdtype == CNAME
        and ans.qtype != CNAME
        and len(ans.rrset)
    ):
        return ans.rrset[0].target
    return None


def _reply_error(qname, qtype, reply: Reply) -> Answer | None:
    if reply.response is None:
        return Answer(
            qname, qtype, Status.INDETERMINATE, Kind.ERROR, reason=reply.error, detail=reply.detail
        )
    rcode = reply.response.rcode()
    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    reason = {dns.rcode.SERVFAIL: A.SERVFAIL, dns.rcode.REFUSED: A.REFUSED}.get(rcode, A.RCODE)
    return Answer(
        qname,
        qtype,
        Status.INDETERMINATE,
        Kind.ERROR,
        reason=reason,
        detail=f"{dns.rcode.to_text(rcode)} for {qname} {dns.rdatatype.to_text(qtype)}",
    )


def _bogus(qname, qtype, reason, detail, signer=None) -> Answer:
    return Answer(
        qname, qtype, Status.BOGUS, Kind.ERROR, reason=reason, detail=detail, signer=signer
    )


def _from_keys(qname, qtype, keys: ZoneKeys, kind: Kind, rrset) -> Answer:
    """An answer inherits the state of the zone it came from when that zone is not secure."""
    if keys.status == Status.INSECURE:
        return Answer(
            qname,
            qtype,
            Status.INSECURE,
            kind,
            rrset=rrset,
            reason=keys.reason,
            detail=keys.detail,
            ttl=rrset.ttl if rrset is not None else None,
        )
    return Answer(
        qname,
        qtype,
        keys.status,
        Kind.ERROR,
        reason=keys.reason,
        detail=keys.detail,
        signer=keys.zone,
    )


def _keys_from_answer(zone: dns.name.Name, ans: Answer) -> ZoneKeys:
    return ZoneKeys(zone, ans.status, [], ans.reason, ans.detail, ans.expiration, _soon(60))


def _ds_matches(zone, key, ds) -> bool:
    try:
        return (
            dns.dnssec.make_ds(zone, key, ds.digest_type, policy=dns.dnssec.allow_all_policy) == ds
        )
    except Exception:
        return False


def _soon(ttl: float | None) -> float:
    return time.monotonic() + (ttl if ttl else 0)


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
