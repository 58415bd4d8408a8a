"""In-process DNSSEC validation (RFC 4033-4035, 5155, 6840) on top of the stub client.

Two validators with one interface, ``await v.lookup(name, rdtype) -> Answer``:

- :class:`Validator` (local mode) chases DS and DNSKEY from the trust anchor down to the
  zone that signed each answer, verifies every RRSIG itself, and checks NSEC/NSEC3 proofs.
  It learns where zones begin from the signer names of signatures, and falls back to a
  top-down walk of DS queries to prove that unsigned data lies below an insecure
  delegation (else the unsigned data is bogus).
- :class:`ResolverValidator` (resolver mode) trusts the AD bit of the configured resolver;
  a SERVFAIL is asked again with CD and validated by a :class:`Validator`, and the RRSIGs
  that come back with DO give the same expiry watch as local mode.

Both have ``healthy()``: does our resolver answer and validate the trust anchor's DNSKEY RRset?
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.RRSIG import RRSIG as RRSIGData

from dane_monitor.lookup import answer as A
from dane_monitor.lookup.anchors import Anchor, TrustAnchors
from dane_monitor.lookup.answer import Answer, CNAMEStep, Kind, Status, earliest, worst
from dane_monitor.lookup.denial import (
    RESOLVER_NSEC3_ITERATIONS,
    Denied,
    Proof,
    nsec3_proof,
    nsec_proof,
    wildcard_nsec3_proof,
    wildcard_nsec_ok,
)
from dane_monitor.lookup.stub import Cache, Reply, StubClient

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
# How long a health verdict (our resolver answers and validates a known-good name) is reused.
HEALTH_SECONDS = 30.0
# Bounds on the expiry watch of resolver mode: signer zones followed per answer, and zones
# walked from one signer up to its trust anchor.
MAX_SIGNER_ZONES = 8
MAX_CHAIN_DEPTH = 16
MAX_CHAINS = 100_000  # zones whose chain is kept
MAX_READ = 100_000  # resolver-mode answers remembered by the reply they were read from
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
    keys: list[Any] = field(default_factory=list)  # DNSKEY rdatas
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    expires_at: float = 0.0  # monotonic time after which to look again
    _by_tag: dict | None = None
    # Secure keys: each zone's trusted-key algorithms from the anchor down to this one (bogus
    # keys: down to the failing zone's DS algorithms; see Answer.chain_algorithms).
    chain_algorithms: tuple[frozenset[int], ...] = ()
    # Insecure for NSEC3 iterations (its DS denial): see Answer.nsec3_iterations and
    # Answer.nsec3_resolver_status (here: this zone's status for such a validator).
    nsec3_iterations: int | None = None
    nsec3_resolver_status: Status | None = None

    def with_tag(self, algorithm: int, tag: int) -> list:
        """The keys an RRSIG with this algorithm and key tag may be from (tags computed once)."""
        if self._by_tag is None:
            self._by_tag = {}
            # In a fixed order: the RRset's order is not signed and servers rotate it, and
            # with more keys per tag than we try, the verdict must not flap with it.
            for k in sorted(self.keys, key=lambda k: (k.flags, k.key)):
                self._by_tag.setdefault((k.algorithm, dns.dnssec.key_id(k)), []).append(k)
        return self._by_tag.get((algorithm, tag), [])


@dataclass
class _Verified:
    ok: bool
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    sig: RRSIGData | None = None  # the signature that verified, when ok
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
        # Whole lookups (CNAMEs followed) made only of cached answers, by the question as
        # asked: (name, or id of the Name object, rdtype) -> (the Name or str asked,
        # answer, monotonic expiry: the earliest of its parts', generation of _answers).
        self._lookups: dict[tuple[Any, Any], tuple[Any, Answer, float, int]] = {}
        self._generation = 0  # bumped whenever _answers drops an entry before its time
        self.max_answers = max_answers
        self.verifications = 0
        self._health = _Health()

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
        hit = self.cached(name, rdtype)
        if hit is not None:
            return hit
        memo = (name if isinstance(name, str) else id(name), rdtype)
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        refused = _unvalidatable(qname, qtype)
        if refused is not None:
            return refused
        budget = _Budget(MAX_VERIFICATIONS_PER_LOOKUP)
        generation = self._generation
        parts: list[tuple[tuple[dns.name.Name, int, bool], Answer]] = []
        steps: list[CNAMEStep] = []
        expiration: int | None = None
        current = qname
        seen = {qname}
        while True:
            ans = await self._single(current, qtype, deadline, budget=budget)
            parts.append(((current, qtype, True), ans))
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
        answer = Answer(
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
            # every zone that vouched for a step: one a validator refuses makes it insecure
            chain_algorithms=tuple(z for _, a in parts for z in a.chain_algorithms),
            nsec3_iterations=ans.nsec3_iterations,
            nsec3_resolver_status=ans.nsec3_resolver_status,
        )
        self._remember(memo, name, answer, parts, generation)
        return answer

    def cached(
        self, name: dns.name.Name | str, rdtype: dns.rdatatype.RdataType | str | int
    ) -> Answer | None:
        """What :meth:`lookup` would answer now without asking anyone, or None when it would
        have to ask (or validate) something. A monitor asks the same questions every cycle:
        while every answer a lookup was made of is still cached as it was, the lookup is
        what it was (the same object; answers are never changed once made)."""
        hit = self._lookups.get((name if isinstance(name, str) else id(name), rdtype))
        if (
            hit is not None
            and (hit[0] is name or isinstance(name, str))
            and hit[3] == self._generation
            and hit[2] > time.monotonic()
        ):
            return hit[1]
        return None

    def _remember(
        self,
        memo: tuple[Any, Any],
        name: Any,
        answer: Answer,
        parts: list[tuple[tuple[dns.name.Name, int, bool], Answer]],
        generation: int,
    ) -> None:
        """Keep a lookup while each answer it was made of stays in the cache: until the
        earliest of their expiries, and only if none was dropped meanwhile (an answer not
        cached, one over the budget, is never remembered)."""
        if generation != self._generation:
            return
        until = math.inf
        for key, used in parts:
            cached = self._answers.get(key)
            if cached is None or cached[0] is not used:
                return
            until = min(until, cached[1])
        if len(self._lookups) >= self.max_answers:
            self._lookups.clear()
        self._lookups[memo] = (name, answer, until, generation)

    async def healthy(self, *, max_age: float = HEALTH_SECONDS) -> bool:
        """Does our resolver answer, and does the trust anchor's own DNSKEY RRset validate
        here, now? Reused for ``max_age`` seconds; tells "the domain's servers fail" from
        "our resolver is broken" when a lookup is indeterminate. Asks afresh (no cache)."""
        return await self._health.get(self._probe_health, max_age)

    async def _probe_health(self) -> bool:
        client = _fresh_client(self.client, checking_disabled=True)
        fresh = Validator(client, self.anchors, now=self.now)
        answer = await fresh.lookup(_anchor_zone(self.anchors), DNSKEY)
        return answer.status == Status.SECURE

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
        now = time.monotonic()
        replaced = self._answers.get(key)
        if replaced is not None and replaced[1] > now:
            self._generation += 1  # a concurrent lookup's answer, still live, is replaced
            self._lookups.clear()  # none is valid any more: let their answers go
        self._answers[key] = (answer, now + self._cache_seconds(answer))
        if len(self._answers) > self.max_answers:
            self._generation += 1
            self._lookups.clear()
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
            return _bogus(qname, qtype, v.reason, v.detail, signer=signer, keys=keys)
        expiration = earliest(v.expiration, keys.expiration)
        sig = v.sig
        assert sig is not None  # _verify sets it whenever ok
        # RFC 4035 §5.3.3: never trust a TTL above the one the signer signed.
        ttl = min(rrset.ttl, sig.original_ttl)
        if sig.labels < _label_count(rrset.name):
            # Expanded from a wildcard: prove the name itself does not exist.
            source = dns.name.Name((b"*", *rrset.name.labels[-(sig.labels + 1) :]))
            proof, w_exp, wider = self._wildcard_proof(msg, rrset.name, source, keys, budget)
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
                    chain_algorithms=keys.chain_algorithms if wider is not None else (),
                    nsec3_iterations=proof.iterations,
                    nsec3_resolver_status=wider,
                )
            if proof.result != Denied.NXDOMAIN:
                return _bogus(
                    qname,
                    qtype,
                    A.BAD_DENIAL,
                    f"wildcard answer from {source}: {proof.why}",
                    signer=signer,
                    keys=keys,
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
            chain_algorithms=keys.chain_algorithms,
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
                return _bogus(qname, qtype, v.reason, f"SOA: {v.detail}", signer=zone, keys=keys)
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
                keys=keys,
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
            wider = None
            if proof.too_many_iterations and (proof.iterations or 0) <= RESOLVER_NSEC3_ITERATIONS:
                # What validators with the common, higher limit prove here (sender profiles).
                wide = nsec3_proof(qname, qtype, nsec3, zone, RESOLVER_NSEC3_ITERATIONS)
                wider = _denial_status(wide, kind, qtype)
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
                chain_algorithms=keys.chain_algorithms if wider is not None else (),
                nsec3_iterations=proof.iterations,
                nsec3_resolver_status=wider,
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
                return _bogus(qname, qtype, f.reason, f"denial: {f.detail}", signer=zone, keys=keys)
            return _bogus(
                qname,
                qtype,
                A.BAD_DENIAL,
                f"{kind.value} not proven: {proof.why}",
                signer=zone,
                keys=keys,
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
            chain_algorithms=keys.chain_algorithms,
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
                    keys=zone,
                )
            return self._from_keys(qname, qtype, zone, kind, rrset)
        return _bogus(qname, qtype, A.MISSING_RRSIG, f"unsigned {where} below a signed zone")

    def _wildcard_proof(
        self, msg, qname, source, keys: ZoneKeys, budget: _Budget
    ) -> tuple[Proof, int | None, Status | None]:
        """The proof that ``qname`` does not exist beside an answer expanded from ``source``,
        its signatures' earliest expiration, and, when the proof has more NSEC3 iterations
        than ours and at most RESOLVER_NSEC3_ITERATIONS, the answer's status for a validator
        with that limit (sender profiles; None otherwise)."""
        if not source.parent().is_subdomain(keys.zone):
            return Proof(Denied.NONE, f"wildcard {source} lies outside {keys.zone}"), None, None
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
            proof = wildcard_nsec3_proof(qname, source, nsec3, keys.zone)
            wider = None
            if proof.too_many_iterations and (proof.iterations or 0) <= RESOLVER_NSEC3_ITERATIONS:
                # What validators with the common, higher limit prove here (sender profiles).
                wide = wildcard_nsec3_proof(
                    qname, source, nsec3, keys.zone, RESOLVER_NSEC3_ITERATIONS
                )
                wider = (
                    Status.SECURE
                    if wide.result == Denied.NXDOMAIN
                    else Status.INSECURE
                    if wide.result == Denied.OPT_OUT
                    else Status.BOGUS
                )
            return proof, expiration, wider
        nsec = [r for r in proven if r.rdtype == NSEC]
        if wildcard_nsec_ok(qname, source, nsec, keys.zone):
            return Proof(Denied.NXDOMAIN, f"NSEC covers {qname}"), expiration, None
        return Proof(Denied.NONE, f"no NSEC proves that {qname} does not exist"), expiration, None

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

            def forget(_: object) -> None:
                self._pending.pop(zone, None)

            task.add_done_callback(forget)
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
        # Should this zone's keys fail: the zones validated down to its DS (sender profiles:
        # a validator that refuses these algorithms never looks at the keys, RFC 4035 §5.2).
        above = ds_answer.chain_algorithms if ds_answer is not None else ()
        failing = (
            *above,
            frozenset(d.algorithm for d in usable_ds) | frozenset(k.algorithm for k in usable_keys),
        )
        reply = await self.client.query(zone, DNSKEY, deadline=deadline)
        error = _reply_error(zone, DNSKEY, reply)
        if error is not None:
            return _keys_from_answer(zone, error)
        msg = reply.response
        assert msg is not None  # _reply_error answers every reply without a response
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
                chain_algorithms=failing,
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
                chain_algorithms=failing,
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
                chain_algorithms=failing,
            )
        v = self._verify(rrset, sigs, ZoneKeys(zone, Status.SECURE, trusted), budget)
        if not v.ok:
            return ZoneKeys(
                zone,
                Status.BOGUS,
                [],
                v.reason,
                f"DNSKEY: {v.detail}",
                parent_exp,
                _soon(60),
                chain_algorithms=failing,
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
            chain_algorithms=(*above, frozenset(k.algorithm for k in trusted)),
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


class _Health:
    """One cached verdict of a health probe, shared by concurrent callers (per event loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.value: bool | None = None
        self.until = 0.0
        self._task: asyncio.Future[bool] | None = None

    async def get(self, probe: Callable[[], Awaitable[bool]], max_age: float) -> bool:
        if self.value is not None and self.clock() < self.until and max_age > 0:
            return self.value
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._task = asyncio.ensure_future(probe())
        value = await asyncio.shield(task)
        self.value, self.until = value, self.clock() + max(max_age, 0.0)
        return value


def _anchor_zone(anchors: TrustAnchors) -> dns.name.Name:
    """The known-good name of a health probe: the shallowest trust anchor (the root's)."""
    return min(anchors.anchors, key=lambda z: (len(z), z))


def _fresh_client(client: StubClient, *, checking_disabled: bool) -> StubClient:
    """A client to the same resolver with an empty cache: a health probe must ask now."""
    return StubClient(
        client.server,
        timeout=client.timeout,
        tries=client.tries,
        checking_disabled=checking_disabled,
        payload=client.payload,
        cache=Cache(),
    )


@dataclass
class _Read:
    """A resolver-mode answer and what it was read from (:meth:`ResolverValidator._remember`)."""

    reply: Reply
    answer: Answer
    chains_generation: int
    chains_until: float  # monotonic
    wall_until: float  # the validator's clock (POSIX seconds)


@dataclass
class _Chain:
    """What the expiry watch learned about one zone: the earliest RRSIG expiration over its
    DNSKEY RRset, its DS RRset and its parent's chain up to the trust anchor."""

    expiration: int | None
    expires_at: float  # monotonic time after which to ask again


def _sig_expiration(sigs: list, now: float) -> int | None:
    """When an RRset signed by ``sigs`` (one signer) stops validating: the latest expiration
    among its signatures valid now (any one of them authenticates it), else the earliest."""
    valid = [s.expiration for s in sigs if s.inception <= now <= s.expiration]
    if valid:
        return max(valid)
    return min((s.expiration for s in sigs), default=None)


def _signed_rrsets(
    section,
) -> Iterator[tuple[dns.rrset.RRset, dns.name.Name, list]]:
    """(rrset, signer, sigs) for every signed RRset of a section: the signer is the deepest
    RRSIG signer at or above the owner, and only its signatures count."""
    index = _sig_index(section)
    for rrset in section:
        if rrset.rdtype == RRSIG:
            continue
        sigs = [
            s
            for s in index.get((rrset.name, rrset.rdtype), [])
            if rrset.name.is_subdomain(s.signer)
        ]
        if not sigs:
            continue
        signer = max((s.signer for s in sigs), key=len)
        yield rrset, signer, [s for s in sigs if s.signer == signer]


def _outside_validity(msg: dns.message.Message, now: float) -> tuple[str, str] | None:
    """(reason, detail) for the first signed RRset of a reply with no signature valid at
    ``now`` (expired, or not yet valid), else None."""
    for section in (msg.answer, msg.authority):
        for rrset, _, sigs in _signed_rrsets(section):
            if any(s.inception <= now <= s.expiration for s in sigs):
                continue
            what = f"the RRSIG over {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
            if all(s.inception > now for s in sigs):
                since = min(s.inception for s in sigs)
                return A.SIGNATURE_NOT_YET_VALID, f"{what} is valid only from {_when(since)}"
            return A.SIGNATURE_EXPIRED, f"{what} expired {_when(max(s.expiration for s in sigs))}"
    return None


def _validated_rrset(
    reply: Reply, zone: dns.name.Name, rdtype: int
) -> tuple[dns.rrset.RRset, dns.name.Name, list] | None:
    """The signed ``zone``/``rdtype`` RRset of a reply the resolver validated (AD)."""
    msg = reply.response
    if msg is None or msg.rcode() != dns.rcode.NOERROR or not msg.flags & dns.flags.AD:
        return None
    for found in _signed_rrsets(msg.answer):
        if (found[0].name, found[0].rdtype) == (zone, rdtype):
            return found
    return None


class ResolverValidator:
    """Resolver mode: the AD bit of the configured resolver decides (no CD sent).

    Two things local mode knows come on top of the AD bit, so that a zone gets the same
    verdict and the same expiry watch in both modes:

    - a SERVFAIL is ambiguous (bogus data, or servers that fail): the question is asked
      again with CD and what comes back is validated here, by a :class:`Validator` with the
      same trust anchors local mode uses, so bogus data is ``bogus`` with local mode's reason;
    - the RRSIGs that come back with DO, and those over the DS and DNSKEY RRsets of the
      signer zones up to the trust anchor, give ``expiration`` and ``signer``.

    :param client: the stub client to the resolver (its CD flag is cleared).
    :param anchors: what a SERVFAIL is validated from, and where the expiry watch stops;
        the IANA root KSKs by default.
    :param now: the clock signatures are checked against (POSIX seconds).
    """

    def __init__(
        self,
        client: StubClient,
        anchors: TrustAnchors | None = None,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.client.checking_disabled = False
        self.anchors = anchors if anchors is not None else TrustAnchors.root()
        self.now = now
        # The same resolver asked with CD (one cache: its key holds the CD flag), and local
        # validation over it: the judge of SERVFAILs.
        self.cd_client = StubClient(
            client.server,
            timeout=client.timeout,
            tries=client.tries,
            checking_disabled=True,
            payload=client.payload,
            cache=client.cache,
        )
        self.local = Validator(self.cd_client, self.anchors, now=now)
        self._chains: dict[dns.name.Name, _Chain] = {}
        self._chains_generation = 0  # bumped whenever a chain leaves before its time
        # Answers by question, with the reply object they were read from (the stub's cache
        # hands out the same one while it holds it; a new reply replaces the entry).
        self._read: dict[tuple[dns.name.Name, int], _Read] = {}
        self._health = _Health()

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

    async def healthy(self, *, max_age: float = HEALTH_SECONDS) -> bool:
        """Does the resolver answer and validate a known-good name (the trust anchor's
        DNSKEY RRset, with AD, which must validate from our anchors too) now? Reused for
        ``max_age`` seconds; tells "the domain's servers fail" from "our resolver is
        broken" when a lookup is indeterminate."""
        return await self._health.get(self._probe_health, max_age)

    async def _probe_health(self) -> bool:
        """AD on the anchor zone's DNSKEY RRset, and (since SERVFAILs are validated here)
        that RRset validating from our anchors too, each asked afresh."""
        zone = _anchor_zone(self.anchors)
        reply = await _fresh_client(self.client, checking_disabled=False).query(zone, DNSKEY)
        msg = reply.response
        if (
            msg is None
            or msg.rcode() != dns.rcode.NOERROR
            or not msg.flags & dns.flags.AD
            or _find(msg.answer, zone, DNSKEY) is None
        ):
            return False
        client = _fresh_client(self.client, checking_disabled=True)
        ours = await Validator(client, self.anchors, now=self.now).lookup(zone, DNSKEY)
        return ours.status == Status.SECURE

    async def lookup(self, name, rdtype, *, deadline: float | None = None) -> Answer:
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        refused = _unvalidatable(qname, qtype)
        if refused is not None:
            return refused
        reply = await self.client.query(qname, qtype, deadline=deadline)
        remembered = self._remembered(reply, qname, qtype)
        if remembered is not None:
            return remembered
        error = _reply_error(qname, qtype, reply)
        if error is not None:
            if error.reason == A.SERVFAIL:
                return await self._servfail(qname, qtype, error, deadline)
            return error
        msg = reply.response
        assert msg is not None  # _reply_error answers every reply without a response
        generation = self._chains_generation
        chains_until = math.inf
        read_at = self.now()  # before any date in the reply is compared with the clock
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
        expiration = signer = None
        detail = ""
        if status == Status.SECURE:
            expiration, signer, chains_until = await self._expiry(
                msg, kind, rrset, current, deadline
            )
            # AD over a signature outside its validity: a resolver that forgives clock skew
            # (Unbound: up to a day either way) vouches for it, senders whose validator
            # forgives less defer. Never valid: bogus, as in local mode (issue 13).
            now = self.now()
            stale = _outside_validity(msg, now)
            if stale is None and expiration is not None and expiration < now:
                stale = (
                    A.SIGNATURE_EXPIRED,
                    f"a signature on the path expired {_when(expiration)}",
                )
            if stale is not None:
                status, reason = Status.BOGUS, stale[0]
                detail = f"the resolver set AD, but {stale[1]}"
        answer = Answer(
            qname,
            qtype,
            status,
            kind,
            rrset=rrset,
            reason=reason,
            detail=detail,
            ttl=ttl,
            cnames=steps,
            expiration=expiration,
            signer=signer,
        )
        self._remember(reply, qtype, answer, generation, chains_until, expiration, read_at)
        return answer

    def cached(
        self, name: dns.name.Name | str, rdtype: dns.rdatatype.RdataType | str | int
    ) -> Answer | None:
        """What :meth:`lookup` would answer now from the stub's cache without working
        anything out again, or None (it would ask the resolver, or read the reply anew)."""
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        reply = self.client.cache.get((qname, qtype, self.client.checking_disabled))
        if reply is None:
            return None
        answer = self._remembered(reply, qname, qtype)
        if answer is not None:
            self.client.cache.hits += 1  # as the lookup's query would have counted it
        return answer

    def _remembered(self, reply: Reply, qname: dns.name.Name, qtype: int) -> Answer | None:
        read = self._read.get((qname, qtype))
        if (
            read is not None
            and read.reply is reply
            and read.chains_generation == self._chains_generation
            and time.monotonic() < read.chains_until
            and self.now() < read.wall_until
            and read.answer.qname.labels == qname.labels  # the name as asked, case too
        ):
            return read.answer
        return None

    def _remember(
        self,
        reply: Reply,
        qtype: int,
        answer: Answer,
        generation: int,
        chains_until: float,
        expiration: int | None,
        now: float,
    ) -> None:
        """Keep an answer read from ``reply`` for as long as reading it again gives the same:
        the stub keeps the reply, the DS/DNSKEY chains it used stay cached as they were,
        and the clock crosses no signature's inception or expiration in the reply, nor the
        answer's earliest expiration (every date the reading compares with now)."""
        if generation != self._chains_generation:
            return
        msg = reply.response
        assert msg is not None
        dates = [
            d
            for section in (msg.answer, msg.authority)
            for rrset in section
            if rrset.rdtype == RRSIG
            for sig in rrset
            for d in (sig.inception, sig.expiration)
            if d >= now
        ]
        if expiration is not None:
            dates.append(expiration)
        if len(self._read) >= MAX_READ:
            self._read.clear()
        self._read[(answer.qname, qtype)] = _Read(
            reply, answer, generation, chains_until, min(dates, default=math.inf)
        )

    # -- a SERVFAIL, asked again with CD -----------------------------------------------------

    async def _servfail(
        self, qname: dns.name.Name, qtype: int, error: Answer, deadline: float | None
    ) -> Answer:
        """Bogus data (a validating resolver hides it behind SERVFAIL) or servers that fail?
        With CD the resolver hands the data over; local validation says which, and why."""
        ours = await self.local.lookup(qname, qtype, deadline=deadline)
        if ours.status == Status.BOGUS:
            mismatch = await self._anchor_mismatch(qname, deadline)
            if mismatch is not None:
                return replace(error, detail=f"{error.detail}; with CD: {mismatch}")
            return ours
        if ours.status == Status.INDETERMINATE:
            why = (
                ours.reason
                if ours.detail in ("", error.detail)
                else f"{ours.reason}: {ours.detail}"
            )
            return replace(error, detail=f"{error.detail}, and with CD too ({why})")
        # The data validates here, yet the resolver refuses it: a sender behind this
        # resolver defers all the same, so the answer stays a failure, with what we saw.
        return replace(
            error,
            detail=f"{error.detail}; with CD the answer validates here as {ours.status} "
            f"{ours.kind}: the resolver fails where this validator does not",
        )

    async def _anchor_mismatch(self, qname: dns.name.Name, deadline: float | None) -> str | None:
        """Why a bogus verdict is ours rather than the domain's: our anchor fits none of the
        anchor zone's keys, which the resolver validates with an anchor of its own (it
        answers the rest). Typically --trust-anchor is missing or stale; healthy() is False
        then too. None when the anchor zone's keys validate here."""
        anchor = self.anchors.closest(qname)
        if anchor is None:
            return None
        keys = await self.local.lookup(anchor.zone, DNSKEY, deadline=deadline)
        if keys.status != Status.BOGUS or keys.reason != A.NO_MATCHING_DS:
            return None
        return (
            f"{keys.detail}, though the resolver validates {anchor.zone} with an anchor of "
            "its own: give dane-monitor the resolver's trust anchor (--trust-anchor)"
        )

    # -- the expiry watch ----------------------------------------------------------------------

    async def _expiry(
        self,
        msg: dns.message.Message,
        kind: Kind,
        rrset: dns.rrset.RRset | None,
        owner: dns.name.Name,
        deadline: float | None,
    ) -> tuple[int | None, dns.name.Name | None, float]:
        """The earliest RRSIG expiration over the answer's RRsets and the DS/DNSKEY chain of
        their signer zones, the signer of the final answer, and until when (monotonic) the
        chains it used stay cached."""
        now = self.now()
        expiration: int | None = None
        zones: dict[dns.name.Name, None] = {}
        signer: dns.name.Name | None = None
        # The answer section (the data, the CNAMEs and DNAMEs before it); the denial of a
        # NODATA/NXDOMAIN, or the NSEC/NSEC3 proof beside a wildcard expansion.
        negative = kind != Kind.POSITIVE
        authority = [
            r
            for r in msg.authority
            if r.rdtype in (NSEC, NSEC3, RRSIG) or (negative and r.rdtype == SOA)
        ]
        for section in (msg.answer, authority):
            for signed, zone, sigs in _signed_rrsets(section):
                expiration = earliest(expiration, _sig_expiration(sigs, now))
                zones.setdefault(zone)
                final = rrset is not None and (signed.name, signed.rdtype) == (
                    rrset.name,
                    rrset.rdtype,
                )
                if final or (negative and signed.rdtype == SOA and owner.is_subdomain(signed.name)):
                    signer = zone
        if negative and signer is None and zones:
            signer = max((z for z in zones if owner.is_subdomain(z)), key=len, default=None)
        chains = await asyncio.gather(
            *(self._chain(z, deadline, MAX_CHAIN_DEPTH) for z in list(zones)[:MAX_SIGNER_ZONES])
        )
        until = min((c.expires_at for c in chains), default=math.inf)
        return earliest(expiration, *(c.expiration for c in chains)), signer, until

    async def _chain(self, zone: dns.name.Name, deadline: float | None, depth: int) -> _Chain:
        """The earliest RRSIG expiration over the DNSKEY RRset of ``zone``, its DS RRset and
        its parent's chain up to the trust anchor (the DS RRSIG's signer is the parent).
        Asked of the resolver without CD, since AD is what resolver mode trusts; kept for
        the RRsets' TTL, never past that expiration, shared by every lookup."""
        cached = self._chains.get(zone)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached
        if self.anchors.closest(zone) is None:  # above our anchors: not on the path
            return _Chain(None, float("inf"))
        now = self.now()
        asks = [DNSKEY] if zone in self.anchors.anchors or zone == dns.name.root else [DNSKEY, DS]
        replies = await asyncio.gather(
            *(self.client.query(zone, rdtype, deadline=deadline) for rdtype in asks)
        )
        expiration: int | None = None
        until = float("inf")
        complete = True
        parent: dns.name.Name | None = None
        for reply, rdtype in zip(replies, asks, strict=True):
            found = _validated_rrset(reply, zone, rdtype)
            if found is None:
                complete = False
                continue
            rrset, signer, sigs = found
            expiration = earliest(expiration, _sig_expiration(sigs, now))
            until = min(until, time.monotonic() + rrset.ttl)
            if rdtype == DS and signer != zone and zone.is_subdomain(signer):
                parent = signer
        if DS in asks and parent is None:
            complete = False
        if parent is not None and depth > 1:
            above = await self._chain(parent, deadline, depth - 1)
            expiration = earliest(expiration, above.expiration)
            until = min(until, above.expires_at)
        if expiration is not None:
            until = min(until, time.monotonic() + expiration - now)
        chain = _Chain(expiration, until if complete else 0.0)
        if chain.expires_at > time.monotonic():
            replaced = self._chains.get(zone)
            if replaced is not None and replaced.expires_at > time.monotonic():
                self._chains_generation += 1  # a racing lookup's chain, still live
                self._read.clear()  # none is valid any more: let their replies go
            if len(self._chains) >= MAX_CHAINS:
                self._chains_generation += 1
                self._read.clear()
                self._chains = {
                    k: v for k, v in self._chains.items() if v.expires_at > time.monotonic()
                }
                while len(self._chains) >= MAX_CHAINS:
                    del self._chains[next(iter(self._chains))]
            self._chains[zone] = chain
        return chain


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


def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


def _labels_error(sig, owner_labels: int, zone: dns.name.Name, rdtype: int) -> str | None:
    """RFC 4035 §5.3.1's rules on the Labels field, and what a wildcard may prove."""
    if sig.labels > owner_labels:
        return f"Labels {sig.labels} exceeds the owner's {owner_labels} labels"
    if sig.labels < owner_labels:
        if rdtype in NO_EXPANSION:
            return (
                f"synthesised from a wildcard (Labels {sig.labels} < {owner_labels}): "
                f"a {_type_text(rdtype)} record proves nothing for another name"
            )
        if sig.labels < _label_count(zone):
            return f"the wildcard source (Labels {sig.labels}) lies above the zone {zone}"
    return None


def _unvalidatable(qname: dns.name.Name, qtype: int) -> Answer | None:
    rdtype = dns.rdatatype.RdataType.make(qtype)
    if qtype in UNVALIDATABLE or dns.rdatatype.is_metatype(rdtype):
        return Answer(
            qname,
            qtype,
            Status.INDETERMINATE,
            Kind.ERROR,
            reason=A.UNSUPPORTED_QTYPE,
            detail=f"{dns.rdatatype.to_text(rdtype)} names no single RRset, so it cannot be "
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


def _sigs(section, name: dns.name.Name, covered: int) -> list[RRSIGData]:
    out: list[RRSIGData] = []
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


def _bogus(qname, qtype, reason, detail, signer=None, keys: ZoneKeys | None = None) -> Answer:
    """A bogus answer; ``keys``: the zone's validated keys (or the failing zone's keys),
    whose algorithm chain the sender profiles read."""
    return Answer(
        qname,
        qtype,
        Status.BOGUS,
        Kind.ERROR,
        reason=reason,
        detail=detail,
        signer=signer,
        chain_algorithms=keys.chain_algorithms if keys is not None else (),
    )


def _denial_status(proof: Proof, kind: Kind, qtype: int) -> Status:
    """What _negative concludes from a denial ``proof`` of a ``kind`` answer (for a
    validator whose NSEC3 iteration limit the proof was made with)."""
    if proof.too_many_iterations or proof.result == Denied.OPT_OUT:
        return Status.INSECURE
    result = proof.result
    if result == Denied.INSECURE_DELEGATION and qtype == DS:
        result = Denied.NODATA
    proven = (result == Denied.NXDOMAIN and kind == Kind.NXDOMAIN) or (
        result == Denied.NODATA and kind == Kind.NODATA
    )
    return Status.SECURE if proven else Status.BOGUS


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
            chain_algorithms=keys.chain_algorithms if keys.nsec3_resolver_status else (),
            nsec3_iterations=keys.nsec3_iterations,
            nsec3_resolver_status=keys.nsec3_resolver_status,
        )
    return Answer(
        qname,
        qtype,
        keys.status,
        Kind.ERROR,
        reason=keys.reason,
        detail=keys.detail,
        signer=keys.zone,
        chain_algorithms=keys.chain_algorithms if keys.status == Status.BOGUS else (),
    )


def _keys_from_answer(zone: dns.name.Name, ans: Answer) -> ZoneKeys:
    """The keys of ``zone`` when its DS answer ``ans`` is not secure: its status, and what
    the sender profiles need (a bogus DS: the zones validated above it; a DS denial insecure
    for its NSEC3 iterations: what a validator with the common limit makes of the zone)."""
    wider = ans.nsec3_resolver_status
    if wider == Status.SECURE:  # the DS is proven absent: the zone is unsigned for it
        wider = Status.INSECURE
    return ZoneKeys(
        zone,
        ans.status,
        [],
        ans.reason,
        ans.detail,
        ans.expiration,
        _soon(60),
        chain_algorithms=(
            ans.chain_algorithms
            if ans.status == Status.BOGUS or ans.nsec3_resolver_status is not None
            else ()
        ),
        nsec3_iterations=ans.nsec3_iterations,
        nsec3_resolver_status=wider,
    )


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
