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
from dataclasses import dataclass, replace

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
DNAME = dns.rdatatype.DNAME
SOA = dns.rdatatype.SOA
NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3

# RFC 8624 §3.1: what a validator implements; others make a zone insecure (RFC 4035 §5.2).
SUPPORTED_ALGORITHMS = frozenset({5, 7, 8, 10, 13, 14, 15, 16})
SUPPORTED_DIGESTS = frozenset({1, 2, 4})
MAX_CNAMES = 8
ERROR_CACHE_SECONDS = 5.0
ZONE_FLAG = 0x0100

# Work caps against KeyTrap-style answers (CVE-2023-50387, CVE-2023-50868). The figures
# follow PowerDNS Recursor's 2024 defaults (max-dnskeys 2, max-ds-per-zone 8,
# max-nsec3s-per-record 10, max-signature-validations-per-query 30), rounded up where an
# honest zone in an algorithm or KSK rollover needs more: no zone needs more than two keys
# with one tag, two or three signatures per RRset, or three NSEC3 records per proof.
MAX_KEYS_PER_TAG = 2  # DNSKEYs tried for one RRSIG (or DS) with the same algorithm and tag
MAX_DS = 8  # DS records of one zone considered
MAX_VERIFICATIONS_PER_RRSET = 4  # signature checks spent on one RRset
MAX_VERIFICATIONS_PER_LOOKUP = 32  # per lookup (a CNAME chain included); key fetches apart
MAX_VERIFICATIONS_PER_KEYS = 16  # per DS + DNSKEY fetch of one zone
MAX_DENIAL_RRSETS = 10  # NSEC/NSEC3 RRsets in one negative answer
# Questions that name no single RRset: validating them means nothing (RFC 6840 §5.9 for ANY).
UNVALIDATABLE = frozenset({dns.rdatatype.ANY, RRSIG, dns.rdatatype.OPT})
# Records that only a real owner proves: one synthesised from a wildcard proves nothing
# about other names (RFC 4035 §5.3.4, §5.4; CVE-2017-15105), and wildcard DS, DNSKEY or
# DNAME records mean nothing (RFC 4592 §4.6, RFC 6672 §2.4).
NO_EXPANSION = frozenset({NSEC, NSEC3, DS, DNSKEY, SOA, DNAME})


class _OverBudget(Exception):
    """Validation would need more work than any honest zone needs."""


class _Budget:
    """What one lookup may still spend. Running out says something about the whole lookup
    (a CNAME chain, say), not about the name where it happened, so answers reached with an
    exhausted budget are not cached for other lookups."""

    def __init__(self, verifications: int) -> None:
        self.left = verifications
        self.exhausted = False

    def spend(self, what: Callable[[], str]) -> None:
        if self.left <= 0:
            self.exhausted = True
            raise _OverBudget(f"more signature checks than any honest zone needs ({what()})")
        self.left -= 1


@dataclass
class ZoneKeys:
    zone: dns.name.Name
    status: Status
    keys: list = None  # type: ignore[assignment]
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    expires_at: float = 0.0  # monotonic time after which to look again
    _by_tag: dict | None = None

    def with_tag(self, algorithm: int, tag: int) -> list:
        """The keys an RRSIG with this algorithm and key tag may be from (tags computed once)."""
        if self._by_tag is None:
            self._by_tag = {}
            # In a fixed order: the RRset's order is not signed and servers rotate it, and
            # with more keys per tag than we try, the verdict must not flap with it.
            for k in sorted(self.keys or (), key=lambda k: (k.flags, k.key)):
                self._by_tag.setdefault((k.algorithm, dns.dnssec.key_id(k)), []).append(k)
        return self._by_tag.get((algorithm, tag), [])


@dataclass
class _Verified:
    ok: bool
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    sig: object | None = None
    rank: int = 0


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
        """Look up and validate; CNAMEs and DNAMEs are followed (up to 8 steps) unless CNAME
        is asked for."""
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        refused = _unvalidatable(qname, qtype)
        if refused is not None:
            return refused
        budget = _Budget(MAX_VERIFICATIONS_PER_LOOKUP)
        steps: list[CNAMEStep] = []
        expiration: int | None = None
        current = qname
        seen = {qname}
        while True:
            ans = await self._single(current, qtype, deadline, budget=budget)
            expiration = earliest(expiration, ans.expiration)
            target = _cname_target(ans)
            if target is None or qtype == CNAME:
                break
            steps.append(CNAMEStep(current, target, ans.status, ans.dname))
            if target in seen or len(steps) > MAX_CNAMES:
                return Answer(
                    qname,
                    qtype,
                    Status.INDETERMINATE,
                    Kind.ERROR,
                    reason=A.CNAME_LOOP,
                    detail=f"CNAME/DNAME chain from {qname} loops or exceeds {MAX_CNAMES} steps",
                    cnames=steps,
                )
            seen.add(target)
            current = target
        status = worst(ans.status, *(s.status for s in steps))
        reason, detail = ans.reason, ans.detail
        if reason is None and status != ans.status:
            bad = next(s for s in steps if s.status == status)
            what = "DNAME" if bad.dname is not None else "CNAME"
            reason, detail = "cname-" + status.value, f"{what} at {bad.owner} is {status}"
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
            dname=ans.dname if qtype == CNAME else None,
        )

    # -- one question, no CNAME following ------------------------------------------------------

    async def _single(
        self,
        qname: dns.name.Name,
        qtype: int,
        deadline: float | None,
        *,
        walk: bool = True,
        budget: _Budget | None = None,
    ) -> Answer:
        key = (qname, qtype, walk)
        hit = self._answers.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        budget = budget or _Budget(MAX_VERIFICATIONS_PER_LOOKUP)
        try:
            answer = await self._single_uncached(qname, qtype, deadline, walk, budget)
        except _OverBudget as exc:
            answer = _bogus(qname, qtype, A.VALIDATION_BUDGET, str(exc))
        if budget.exhausted:
            return answer
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
        self, qname: dns.name.Name, qtype: int, deadline: float | None, walk: bool, budget: _Budget
    ) -> Answer:
        reply = await self.client.query(qname, qtype, deadline=deadline)
        error = _reply_error(qname, qtype, reply)
        msg = reply.response
        if error is not None:
            # YXDOMAIN (RFC 6672 §2.2): a DNAME would make the name too long; the DNAME
            # itself is data to validate.
            if msg is None or msg.rcode() != dns.rcode.YXDOMAIN:
                return error
            dname = _covering_dname(msg.answer, qname)
            if dname is None:
                return error
            return await self._dname(qname, qtype, msg, dname, deadline, walk, budget)
        assert msg is not None
        rrset = _find(msg.answer, qname, qtype)
        if rrset is not None:
            return await self._positive(qname, qtype, msg, rrset, deadline, walk, budget)
        dname = _covering_dname(msg.answer, qname)
        if dname is not None:
            ans = await self._dname(qname, qtype, msg, dname, deadline, walk, budget)
        elif qtype != CNAME and (alias := _find(msg.answer, qname, CNAME)) is not None:
            ans = await self._positive(qname, qtype, msg, alias, deadline, walk, budget)
        else:
            return await self._negative(qname, qtype, msg, deadline, walk, budget)
        if qtype == DS and ans.kind == Kind.POSITIVE:
            # An alias is no zone cut (CNAME excludes NS; names below a DNAME do not exist
            # in its zone): a validated alias proves that there is no DS here.
            detail = f"{qname} is an alias, not a delegation"
            return replace(ans, kind=Kind.NODATA, rrset=None, detail=detail, dname=None)
        return ans

    def _check_signer(
        self, qname: dns.name.Name, qtype: int, signer: dns.name.Name, rdtype: int
    ) -> Answer | None:
        """RFC 4035 §5.3.1: the signer is the apex of the zone holding the data. It must lie
        inside the trust anchor that covers the name (else a rewritten signer field would
        lead us to a name with no anchor, 'insecure'), and no zone cut we know of may lie
        between the signer and the name (a parent's signature over a child's data)."""
        anchor = self.anchors.closest(_data_zone_name(qname, qtype))
        if anchor is not None and not signer.is_subdomain(anchor.zone):
            return _bogus(
                qname,
                qtype,
                A.BAD_SIGNER,
                f"signer {signer} lies above the trust anchor {anchor.zone} of {qname}",
            )
        # The names between the owner and the signer, owner first (DS and the parent-side NSEC
        # at a cut belong to the parent); one dictionary probe each.
        zone = qname.parent() if rdtype in (DS, NSEC) and qname != signer else qname
        while zone != signer and len(zone) > len(signer):
            keys = self._keys.get(zone)
            if (
                keys is not None
                and keys.status in (Status.SECURE, Status.INSECURE)
                and keys.reason != A.NO_TRUST_ANCHOR
            ):
                return _bogus(
                    qname,
                    qtype,
                    A.BAD_SIGNER,
                    f"{qname} lies in the zone {zone}, but its RRSIG names {signer}",
                )
            zone = zone.parent()
        return None

    async def _positive(
        self, qname, qtype, msg, rrset, deadline, walk: bool, budget: _Budget
    ) -> Answer:
        sigs = _sigs(msg.answer, rrset.name, rrset.rdtype)
        kind = Kind.POSITIVE
        if not sigs:
            return await self._unsigned(qname, qtype, kind, rrset, deadline, walk, budget)
        signers = {s.signer for s in sigs}
        signer = max((s for s in signers if rrset.name.is_subdomain(s)), key=len, default=None)
        # A DS question is answered by the parent: nothing the child signs can answer it.
        if signer is None or (DS in (qtype, rrset.rdtype) and signer == rrset.name):
            return _bogus(qname, qtype, A.BAD_SIGNER, f"signer {signers} cannot sign {rrset.name}")
        wrong = self._check_signer(rrset.name, qtype, signer, rrset.rdtype)
        if wrong is not None:
            return wrong
        keys = await self._zone_keys(signer, deadline)
        if keys.status != Status.SECURE:
            return self._from_keys(qname, qtype, keys, kind, rrset)
        v = self._verify(rrset, sigs, keys, budget)
        if not v.ok:
            return _bogus(qname, qtype, v.reason, v.detail, signer=signer)
        expiration = earliest(v.expiration, keys.expiration)
        sig = v.sig
        # RFC 4035 §5.3.3: never trust a TTL above the one the signer signed.
        ttl = min(rrset.ttl, sig.original_ttl)  # type: ignore[attr-defined]
        if sig.labels < _label_count(rrset.name):  # type: ignore[attr-defined]
            # Expanded from a wildcard: prove the name itself does not exist.
            source = dns.name.Name((b"*", *rrset.name.labels[-(sig.labels + 1) :]))  # type: ignore[attr-defined]
            proof, w_exp = self._wildcard_proof(msg, rrset.name, source, keys, budget)
            expiration = earliest(expiration, w_exp)
            if proof.result == Denied.OPT_OUT or proof.too_many_iterations:
                # The expansion may hide an unsigned delegation: insecure, as BIND says.
                return Answer(
                    qname,
                    qtype,
                    Status.INSECURE,
                    kind,
                    rrset=rrset,
                    reason=A.NSEC3_ITERATIONS if proof.too_many_iterations else A.OPT_OUT_WILDCARD,
                    detail=f"wildcard answer from {source}: {proof.why}",
                    ttl=ttl,
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
            ttl=ttl,
            signer=signer,
        )

    async def _dname(
        self, qname, qtype, msg, dname: dns.rrset.RRset, deadline, walk: bool, budget: _Budget
    ) -> Answer:
        """RFC 6672: ``qname`` lies below a DNAME owner. The DNAME is validated and the CNAME
        is synthesised from it here."""
        if len(dname) != 1:
            return _bogus(qname, qtype, A.BAD_DNAME, f"{len(dname)} DNAME records at {dname.name}")
        anchor = self.anchors.closest(qname)
        if anchor is not None and not dname.name.is_subdomain(anchor.zone):
            # The anchored zone exists; a DNAME above it would have occluded it.
            return _bogus(
                qname,
                qtype,
                A.BAD_DNAME,
                f"a DNAME at {dname.name}, above the trust anchor {anchor.zone}, cannot "
                f"redirect {qname}",
            )
        ans = await self._positive(dname.name, DNAME, msg, dname, deadline, walk, budget)
        # The DNAME's answer, told about qname.
        ans = replace(ans, qname=qname, qtype=qtype, rrset=None)
        if ans.status not in (Status.SECURE, Status.INSECURE):
            return replace(ans, detail=f"DNAME at {dname.name}: {ans.detail}")
        try:
            target = qname.relativize(dname.name).concatenate(dname[0].target)
        except dns.name.NameTooLong:
            # YXDOMAIN: the name cannot exist, as good as an NXDOMAIN from the DNAME's zone.
            detail = f"the DNAME at {dname.name} makes {qname} too long (YXDOMAIN)"
            return replace(ans, kind=Kind.NXDOMAIN, detail=detail)
        # The CNAME the server synthesised is unsigned and means nothing: ours, from the
        # validated DNAME, is followed instead (RFC 6672 §3.4; BIND and Unbound do the same),
        # so a server that sends a wrong one is no reason to call the name bogus.
        cname = dns.rrset.from_text(qname, dname.ttl, "IN", "CNAME", target.to_text())
        return replace(ans, kind=Kind.POSITIVE, rrset=cname, dname=dname.name)

    async def _negative(self, qname, qtype, msg, deadline, walk: bool, budget: _Budget) -> Answer:
        rcode = msg.rcode()
        kind = Kind.NXDOMAIN if rcode == dns.rcode.NXDOMAIN else Kind.NODATA
        soa = next((r for r in msg.authority if r.rdtype == SOA), None)
        denial = [r for r in msg.authority if r.rdtype in (NSEC, NSEC3)]
        sigs = _sig_index(msg.authority)  # one pass: a flood must not cost n² comparisons
        signed = [r for r in [soa, *denial] if r is not None and (r.name, r.rdtype) in sigs]
        if not signed:
            return await self._unsigned(qname, qtype, kind, None, deadline, walk, budget)
        if len(denial) > MAX_DENIAL_RRSETS:
            raise _OverBudget(f"{len(denial)} NSEC/NSEC3 RRsets in one denial")
        zone = soa.name if soa is not None else sigs[(signed[0].name, signed[0].rdtype)][0].signer
        if not qname.is_subdomain(zone) or (qtype == DS and zone == qname):
            return _bogus(qname, qtype, A.BAD_SIGNER, f"denial from {zone} cannot cover {qname}")
        wrong = self._check_signer(qname, qtype, zone, SOA)
        if wrong is not None:
            return wrong
        keys = await self._zone_keys(zone, deadline)
        if keys.status != Status.SECURE:
            return self._from_keys(qname, qtype, keys, kind, None)
        expiration = keys.expiration
        if soa is not None:
            v = self._verify(soa, sigs.get((soa.name, SOA), []), keys, budget)
            if not v.ok:
                return _bogus(qname, qtype, v.reason, f"SOA: {v.detail}", signer=zone)
            expiration = earliest(expiration, v.expiration)
        proven: list[dns.rrset.RRset] = []
        failures: list[_Verified] = []
        for r in denial:
            v = self._verify(r, sigs.get((r.name, r.rdtype), []), keys, budget)
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
        # Too many NSEC3 iterations (RFC 9276 §3.2), or an opt-out span over the next closer
        # name (RFC 5155 §9.2; for a DS: the delegation is unsigned or absent): nothing is
        # proven securely, so the zone counts as unsigned here.
        unproven = (
            A.NSEC3_ITERATIONS
            if proof.too_many_iterations
            else A.NSEC3_OPT_OUT
            if proof.result == Denied.OPT_OUT
            else None
        )
        if unproven is not None:
            return Answer(
                qname,
                qtype,
                Status.INSECURE,
                kind,
                reason=unproven,
                detail=proof.why,
                expiration=expiration,
                signer=zone,
                insecure_delegation=qtype == DS,
            )
        insecure_delegation = proof.result == Denied.INSECURE_DELEGATION
        if insecure_delegation and qtype == DS:
            # A proven absence of DS at a cut: the answer is secure, the child is unsigned.
            proof = Proof(Denied.NODATA, proof.why)
        consistent = (proof.result == Denied.NXDOMAIN and kind == Kind.NXDOMAIN) or (
            proof.result == Denied.NODATA and kind == Kind.NODATA
        )
        if not consistent:
            if failures:
                f = max(failures, key=lambda f: f.rank)
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

    async def _unsigned(
        self, qname, qtype, kind, rrset, deadline, walk: bool, budget: _Budget
    ) -> Answer:
        """Data without signatures: fine below an insecure delegation, bogus anywhere else."""
        where = "answer" if rrset is not None else "negative answer"
        if walk:
            zone = await self._enclosing(qname, deadline, budget)
            if zone.status == Status.SECURE:
                return _bogus(
                    qname,
                    qtype,
                    A.MISSING_RRSIG,
                    f"unsigned {where} inside the signed zone {zone.zone}",
                )
            return self._from_keys(qname, qtype, zone, kind, rrset)
        return _bogus(qname, qtype, A.MISSING_RRSIG, f"unsigned {where} below a signed zone")

    def _wildcard_proof(
        self, msg, qname, source, keys: ZoneKeys, budget: _Budget
    ) -> tuple[Proof, int | None]:
        if not source.parent().is_subdomain(keys.zone):
            return Proof(Denied.NONE, f"wildcard {source} lies outside {keys.zone}"), None
        proven, expiration = [], None
        denial = [r for r in msg.authority if r.rdtype in (NSEC, NSEC3)]
        if len(denial) > MAX_DENIAL_RRSETS:
            raise _OverBudget(f"{len(denial)} NSEC/NSEC3 RRsets beside a wildcard answer")
        sigs = _sig_index(msg.authority)
        for r in denial:
            v = self._verify(r, sigs.get((r.name, r.rdtype), []), keys, budget)
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

    def _from_keys(self, qname, qtype, keys: ZoneKeys, kind: Kind, rrset) -> Answer:
        """An answer inherits the state of the zone it came from when that zone is not
        secure. Under a trust anchor nothing is insecure for want of an anchor: that only
        happens when a signer field points above the anchor, which is an attack."""
        owner = _data_zone_name(qname, qtype)
        if keys.reason == A.NO_TRUST_ANCHOR and self.anchors.closest(owner) is not None:
            return _bogus(qname, qtype, A.BAD_SIGNER, f"{keys.detail}, but {qname} has one")
        return _from_keys(qname, qtype, keys, kind, rrset)

    # -- zones ---------------------------------------------------------------------------------

    async def _zone_keys(self, zone: dns.name.Name, deadline: float | None) -> ZoneKeys:
        """The validated DNSKEYs of ``zone`` (or why there are none), cached for their TTL."""
        cached = self._keys.get(zone)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached
        # Shared by every caller, and not cancelled with any one of them (see StubClient).
        task = self._pending.get(zone)
        if task is not None and task is asyncio.current_task():
            # Validating these keys would need themselves (an alias or signature from the
            # zone in its own DS answer): waiting for our own task would never end.
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                A.BAD_SIGNER,
                f"the keys of {zone} would vouch for themselves",
            )
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_cache_keys(zone, deadline))
            self._pending[zone] = task
            task.add_done_callback(lambda _, zone=zone: self._pending.pop(zone, None))
        return await asyncio.shield(task)

    async def _fetch_and_cache_keys(self, zone: dns.name.Name, deadline: float | None) -> ZoneKeys:
        try:
            keys = await self._fetch_keys(zone, deadline, _Budget(MAX_VERIFICATIONS_PER_KEYS))
        except _OverBudget as exc:
            keys = ZoneKeys(zone, Status.BOGUS, [], A.VALIDATION_BUDGET, str(exc), None, _soon(60))
        if keys.status in (Status.SECURE, Status.INSECURE, Status.BOGUS):
            self._keys[zone] = keys
        return keys

    async def _fetch_keys(
        self, zone: dns.name.Name, deadline: float | None, budget: _Budget
    ) -> ZoneKeys:
        # A trust anchor takes precedence over whatever its parent says (RFC 4035 §5).
        anchor = self.anchors.anchors.get(zone)
        if anchor is not None:
            return await self._dnskeys(
                zone, anchor.ds, anchor.dnskeys, None, deadline, anchor, budget
            )
        if self.anchors.closest(zone) is None:
            return ZoneKeys(
                zone,
                Status.INSECURE,
                [],
                A.NO_TRUST_ANCHOR,
                f"no trust anchor above {zone}",
                expires_at=float("inf"),
            )
        ds = await self._single(zone, DS, deadline, budget=budget)
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
        if ds.kind != Kind.POSITIVE or ds.rrset is None or ds.rrset.rdtype != DS:
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                A.BAD_SIGNER,
                f"{zone} signs data but its parent proves it has no DS and is no delegation",
                expires_at=_soon(60),
            )
        return await self._dnskeys(zone, list(ds.rrset), [], ds, deadline, None, budget)

    async def _dnskeys(
        self,
        zone,
        ds_list,
        anchor_keys,
        ds_answer: Answer | None,
        deadline,
        anchor: Anchor | None,
        budget: _Budget,
    ) -> ZoneKeys:
        usable_ds = [
            d
            for d in ds_list
            if d.algorithm in SUPPORTED_ALGORITHMS and d.digest_type in SUPPORTED_DIGESTS
        ]
        if any(d.digest_type != 1 for d in usable_ds):
            usable_ds = [d for d in usable_ds if d.digest_type != 1]  # RFC 4509 §3
        usable_ds.sort(key=lambda d: (d.key_tag, d.algorithm, d.digest_type, d.digest))
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
        if len(usable_ds) > MAX_DS:
            raise _OverBudget(f"{len(usable_ds)} DS records for {zone}")
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
        candidates = ZoneKeys(
            zone,
            Status.SECURE,
            [k for k in rrset if k.protocol == 3 and k.flags & ZONE_FLAG],
        )
        trusted = [k for k in candidates.keys if k in usable_keys]
        crowded = False
        for d in usable_ds:
            tagged = candidates.with_tag(d.algorithm, d.key_tag)
            crowded = crowded or len(tagged) > MAX_KEYS_PER_TAG
            for key in tagged[:MAX_KEYS_PER_TAG]:
                if key not in trusted and _ds_matches(zone, key, d):
                    trusted.append(key)
                    break
        if not trusted and crowded:
            raise _OverBudget(f"more than {MAX_KEYS_PER_TAG} DNSKEYs of {zone} share a DS's tag")
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
        v = self._verify(rrset, sigs, ZoneKeys(zone, Status.SECURE, trusted), budget)
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

    async def _enclosing(
        self, name: dns.name.Name, deadline: float | None, budget: _Budget
    ) -> ZoneKeys:
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
            ds = await self._single(child, DS, deadline, walk=False, budget=budget)
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

    def _verify(
        self, rrset: dns.rrset.RRset, sigs: list, keys: ZoneKeys, budget: _Budget
    ) -> _Verified:
        """Is ``rrset`` signed by one of ``keys``? Says why not, most telling reason first.

        Spends at most MAX_VERIFICATIONS_PER_RRSET signature checks (and the lookup's
        budget); an RRset that needs more is bogus with ``validation-budget``."""
        now = self.now()

        def what() -> str:  # text only when something fails: names are costly to format
            return f"RRSIG over {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"

        owner_labels = _label_count(rrset.name)
        reasons: list[tuple[int, str, str]] = []
        spent = 0
        # A fixed order, as for keys (with_tag): RRSIG order is the server's to rotate.
        for sig in sorted(sigs, key=lambda s: (s.key_tag, s.algorithm, s.signature)):
            if sig.signer != keys.zone:
                reasons.append((1, A.BAD_SIGNER, f"RRSIG signer {sig.signer} is not {keys.zone}"))
                continue
            if sig.algorithm not in SUPPORTED_ALGORITHMS:
                reasons.append((2, A.UNSUPPORTED_ALGORITHM, f"algorithm {sig.algorithm}"))
                continue
            label_error = _labels_error(sig, owner_labels, keys.zone, rrset.rdtype)
            if label_error is not None:
                reasons.append((4, A.BAD_RRSIG_LABELS, f"{what()}: {label_error}"))
                continue
            if now > sig.expiration:
                reasons.append(
                    (5, A.SIGNATURE_EXPIRED, f"{what()} expired {_when(sig.expiration)}")
                )
                continue
            if now < sig.inception:
                reasons.append(
                    (
                        5,
                        A.SIGNATURE_NOT_YET_VALID,
                        f"{what()} valid only from {_when(sig.inception)}",
                    )
                )
                continue
            candidates = keys.with_tag(sig.algorithm, sig.key_tag)
            if not candidates:
                reasons.append(
                    (3, A.NO_MATCHING_KEY, f"no DNSKEY of {keys.zone} with tag {sig.key_tag}")
                )
                continue
            if len(candidates) > MAX_KEYS_PER_TAG:
                reasons.append(
                    (
                        6,
                        A.VALIDATION_BUDGET,
                        f"{what()}: {len(candidates)} DNSKEYs share the tag {sig.key_tag}",
                    )
                )
            for key in candidates[:MAX_KEYS_PER_TAG]:
                if spent >= MAX_VERIFICATIONS_PER_RRSET:
                    raise _OverBudget(f"{what()}: {len(sigs)} signatures, {spent} checked")
                spent += 1
                budget.spend(what)
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
                    reasons.append((4, A.BAD_SIGNATURE, f"{what()}: {exc}"))
                    continue
                except Exception as exc:  # malformed keys or signatures from the wire
                    reasons.append((4, A.BAD_SIGNATURE, f"unusable RRSIG or key: {exc}"))
                    continue
                return _Verified(True, expiration=sig.expiration, sig=sig)
        if not reasons:
            return _Verified(False, A.MISSING_RRSIG, f"no RRSIG over {rrset.name}")
        rank, reason, detail = max(reasons)
        return _Verified(False, reason, detail, rank=rank)


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
        refused = _unvalidatable(qname, qtype)
        if refused is not None:
            return refused
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
            dname = _covering_dname(msg.answer, current)
            steps.append(CNAMEStep(current, alias[0].target, status, dname.name if dname else None))
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


def _covering_dname(section, qname: dns.name.Name) -> dns.rrset.RRset | None:
    """The DNAME that redirects ``qname``: the deepest one owned by a proper ancestor."""
    found = None
    for rrset in section:
        if (
            rrset.rdtype == DNAME
            and rrset.rdclass == 1
            and len(rrset)
            and qname.is_subdomain(rrset.name)
            and qname != rrset.name
            and (found is None or len(rrset.name) > len(found.name))
        ):
            found = rrset
    return found


def _data_zone_name(qname: dns.name.Name, qtype: int) -> dns.name.Name:
    """A name whose zone holds the data: a DS RRset lives on the parent side of its cut."""
    return qname.parent() if qtype == DS and qname != dns.name.root else qname


def _label_count(name: dns.name.Name) -> int:
    """The RRSIG Labels value of an unexpanded owner: no root label, no leading '*'."""
    return len(name) - 1 - (len(name) > 1 and name.labels[0] == b"*")


def _labels_error(sig, owner_labels: int, zone: dns.name.Name, rdtype: int) -> str | None:
    """RFC 4035 §5.3.1's rules on the Labels field, and what a wildcard may prove."""
    if sig.labels > owner_labels:
        return f"Labels {sig.labels} exceeds the owner's {owner_labels} labels"
    if sig.labels < owner_labels:
        if rdtype in NO_EXPANSION:
            return (
                f"synthesised from a wildcard (Labels {sig.labels} < {owner_labels}): "
                f"a {dns.rdatatype.to_text(rdtype)} record proves nothing for another name"
            )
        if sig.labels < _label_count(zone):
            return f"the wildcard source (Labels {sig.labels}) lies above the zone {zone}"
    return None


def _unvalidatable(qname: dns.name.Name, qtype: int) -> Answer | None:
    if qtype in UNVALIDATABLE or dns.rdatatype.is_metatype(qtype):
        return Answer(
            qname,
            qtype,
            Status.INDETERMINATE,
            Kind.ERROR,
            reason=A.UNSUPPORTED_QTYPE,
            detail=f"{dns.rdatatype.to_text(qtype)} names no single RRset, so it cannot be "
            "validated: ask for each type on its own",
        )
    return None


def _sig_index(section) -> dict[tuple[dns.name.Name, int], list]:
    """The RRSIGs of a section by (owner, type covered), in one pass."""
    index: dict[tuple[dns.name.Name, int], list] = {}
    for rrset in section:
        if rrset.rdtype == RRSIG:
            for sig in rrset:
                index.setdefault((rrset.name, sig.type_covered), []).append(sig)
    return index


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
