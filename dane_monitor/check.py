"""The DANE check's sequencing: lookups and probes in RFC 7672 order → evidence → report.

``await Checker(validator).check_domain("example.de")`` gives the verdict a DANE-enforcing
sender reaches, per MX host, per address, per port and per key type, with findings that
tell the operator what to fix. This module is the only part of the check that does I/O
(through :mod:`.lookup` and :mod:`.probe`); what to look up next comes from
:mod:`.policy`, and the verdicts and findings from the pure :func:`conclusion.conclude`
over the :mod:`.evidence` gathered here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

# Before dnspython, which decides its optional features when first imported (_compat).
import dane_monitor._compat  # noqa: F401  # isort: skip
import dns.exception
import dns.name
import dns.rdatatype

from dane_monitor import evidence as ev
from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor.conclusion import conclude
from dane_monitor.findings import mx_plan
from dane_monitor.judge import HostJudgement, judge_host
from dane_monitor.lookup.answer import Answer, Status
from dane_monitor.lookup.validator import ResolverValidator, Validator
from dane_monitor.probe import (
    ClientContexts,
    KeyTypeRequest,
    ProbeResult,
    Timeouts,
    other_key_type,
    probe,
    record_other_key_type,
)
from dane_monitor.report import DomainResult
from dane_monitor.settings import Thresholds

DAY = 86400
T_ = TypeVar("T_")


@dataclass
class Options:
    ports: Sequence[int] = (25,)
    # Connect here instead of the logical port (tests; the TLSA name keeps the logical port).
    connect_port: int | None = None
    ehlo_name: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Bound on probes in flight across every check that shares this Checker (per event loop).
    concurrency: int = 50
    # Expiry windows in days (settings.Thresholds validates them: critical <= warning).
    rrsig_warn_days: float = 3.0
    rrsig_error_days: float = 1.0
    cert_warn_days: float = 14.0
    # False: one handshake per endpoint, never a second one for the other key type.
    both_key_types: bool = True
    # The second key type's handshake is made on the first check of an endpoint, when its
    # leaf or its TLSA RRset changed, and otherwise on every Nth check (see Checker): 1 is
    # every check (one-shot checks, and every caller that does not ask for less).
    recheck_other_key_type: int = 1
    # Keep each probe's SMTP transcript (--debug, /probe?debug=true); False saves the work.
    transcripts: bool = True
    # Nameserver consistency (issue 16): ask every authoritative server of the zones on the
    # path directly (dane_monitor.nameservers), at this port (53; the test world's differs),
    # each query within nameserver_timeout seconds.
    nameservers: bool = False
    nameserver_port: int = 53
    nameserver_timeout: float = 2.0
    # Reuse what a zone's servers answered for this long (0: ask them on every check; the
    # exporter keeps it for nameservers.max_age), for at most this many zones.
    nameserver_max_age: float = 0.0
    nameserver_zones: int = 4096

    @property
    def thresholds(self) -> Thresholds:
        return _thresholds(self.rrsig_warn_days, self.rrsig_error_days, self.cert_warn_days)


async def within(
    check: Coroutine[Any, Any, DomainResult],
    target: str,
    *,
    mx_only: bool = False,
    deadline: float | None = None,
) -> DomainResult:
    """A check of ``target`` cut after ``deadline`` seconds (None: only the probe's and the
    lookups' own timeouts bound it): a cut check is :func:`timed_out`'s result (``check
    --deadline``, one target or many)."""
    started, t0 = time.time(), time.monotonic()
    if deadline is None:
        return await check
    timeout = asyncio.timeout(deadline)
    try:
        async with timeout:
            return await check
    except TimeoutError:
        if not timeout.expired():
            raise
    result = timed_out(target, mx_only, deadline, started)
    result.duration = time.monotonic() - t0
    return result


def timed_out(target: str, mx_only: bool, deadline: float, started: float) -> DomainResult:
    """The result of a check cut by its deadline: UNKNOWN, with the finding the exporter
    uses for its own deadline."""
    from dane_monitor.report import Finding, Severity, Verdict

    result = DomainResult(
        target,
        mx_only=mx_only,
        mx_mode="host" if mx_only else "mx",
        started=started,
        verdict=Verdict.ERROR,
    )
    message = f"check did not finish within {deadline:g} s"
    finding = (
        Finding("check-timeout", Severity.ERROR, message, mx=target)
        if mx_only
        else Finding("check-timeout", Severity.ERROR, message, domain=target)
    )
    result.findings.append(finding)
    return result


# Every check asks for its thresholds; validating the same three numbers each time cost 3%
# of conclude. Thresholds is frozen, so one instance per triple serves every check.
_thresholds = functools.lru_cache(maxsize=64)(Thresholds)


@dataclass(frozen=True)
class Preflight:
    """Would deploying ``chain`` on an MX host break DANE? (``dane-monitor preflight``)"""

    host: HostJudgement  # the host's DNS as senders see it (no endpoints probed)
    owner: str | None  # the TLSA owner name that decides, None when DANE does not apply
    match: T.MatchResult | None  # None when DANE does not apply or DNS cannot tell


#: The most endpoints whose second-key-type outcome a Checker remembers (least recently
#: checked forgotten first; a forgotten endpoint is probed as on first sight).
MAX_KEY_TYPE_MEMORY = 100_000


@dataclass
class _OtherKeyType:
    """What the last second handshake at one endpoint found, and what it depended on."""

    leaf: bytes  # SHA-256 of the leaf the first handshake got then
    tlsa: object  # the TLSA RRset then (_tlsa_fingerprint)
    other: KeyTypeRequest  # the key type the second handshake offered
    outcome: str  # "served" or "not-served" (errors are never remembered)
    second: ProbeResult | None  # the chain of that type, when served
    reuses_left: int  # checks that may still reuse this before the next second handshake
    checked: int = 1  # checks since that handshake (for the transcript)


class Checker:
    """Checks domains and MX hosts; one instance can serve many concurrent checks, from one
    event loop after another (not from threads at once: the validator's caches are not
    locked), and shares the validator's caches between them (and an exporter's cycles).

    **Second key type.** A server may hold an ECDSA and an RSA certificate; senders get one
    or the other, so an endpoint is probed twice: an ordinary handshake, then one offering
    only the other key type. With ``Options.recheck_other_key_type = N`` > 1 (a monitor that
    checks the same endpoints every cycle), the second handshake is made only when it can
    change the answer:

    - on the first check of an endpoint (address, port, SNI) by this Checker — a one-shot
      ``dane-monitor check`` therefore always makes it;
    - when the first handshake's leaf certificate differs from the one seen at the last
      second handshake (a renewal or key change, which usually touches both certificates);
    - when the host's TLSA RRset (or its DNSSEC status) differs from the one then (the
      answer for a chain depends on the records);
    - when the last second handshake ended in an error rather than a clear "served" or
      "not served" (errors are never reused);
    - and otherwise on every Nth check of the endpoint (counting the checks whose first
      handshake succeeds): a server that gains (or loses) a certificate of the other type
      without any of the above changing is seen within N checks of the change, at most N
      intervals later (N = 4, as suggested for the exporter, at its 5-minute default
      interval: 20 minutes).

    In between, the endpoint's result reuses the last second handshake's outcome (and its
    chain, judged afresh against the current records), so verdicts and metrics do not flap.
    The price: for up to N - 1 checks a change to the other certificate alone (a new RSA
    certificate, the ECDSA one and the records untouched) is not yet seen. Why a count and
    not only the changes: adding an RSA certificate to a server changes nothing a single
    ordinary handshake can see. Why not every check: it is a second SMTP + TLS dialogue,
    about a quarter (one certificate: the restricted handshake fails at once) to two fifths
    (two certificates) of a warm check's CPU.
    """

    def __init__(
        self,
        validator: Validator | ResolverValidator,
        options: Options | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.validator = validator
        self.options = options or Options()
        self.clock = clock
        # An asyncio.Semaphore belongs to the loop it first waits in: one per loop.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._slots = weakref.WeakKeyDictionary()
        every = self.options.recheck_other_key_type
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"recheck_other_key_type must be a whole number ≥ 1, not {every!r}")
        # One TLS client context per key type for every probe of this checker.
        self.contexts = ClientContexts()
        self._other: OrderedDict[tuple[str, int, str, bool], _OtherKeyType] = OrderedDict()
        self._ns_cache: Any = None  # nameservers.SurveyCache, made when first needed

    @property
    def mode(self) -> str:
        return "resolver" if isinstance(self.validator, ResolverValidator) else "local"

    def _probe_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.options.concurrency)
        return slots

    async def _lookup(self, name: str, rdtype: str) -> Answer:
        # The same few names every cycle: parsed once (a Name is immutable), the type as its
        # number; the validators accept both.
        return await self.validator.lookup(_dns_name(name), _RDTYPES[rdtype])

    def _cached(self, name: str, rdtype: str) -> Answer | None:
        """:meth:`_lookup`'s answer when the validator has it without asking anyone (two
        tasks fewer per host when both address lookups are cached), else None."""
        cached = getattr(self.validator, "cached", None)
        return cached(_dns_name(name), _RDTYPES[rdtype]) if cached is not None else None

    # -- the public checks --------------------------------------------------------------------

    async def check_domain(self, domain: str, *, transcripts: bool | None = None) -> DomainResult:
        """``transcripts``: keep the SMTP transcripts for this check (default: the
        checker's ``Options.transcripts``)."""
        evidence = await self.domain_evidence(domain, transcripts=transcripts)
        return conclude(evidence, self.options.thresholds)

    async def check_host(self, host: str, *, transcripts: bool | None = None) -> DomainResult:
        """One MX host on its own (``--mx``): no MX lookup, the host as a sender would reach it."""
        evidence = await self.domain_evidence(host, mx_only=True, transcripts=transcripts)
        return conclude(evidence, self.options.thresholds)

    async def check_within(
        self, target: str, *, mx_only: bool = False, deadline: float | None = None
    ) -> DomainResult:
        """:meth:`check_domain` (or :meth:`check_host`) cut after ``deadline`` seconds: see
        :func:`within`."""
        check = self.check_host(target) if mx_only else self.check_domain(target)
        return await within(check, target, mx_only=mx_only, deadline=deadline)

    # -- evidence -----------------------------------------------------------------------------

    async def domain_evidence(
        self, target: str, *, mx_only: bool = False, transcripts: bool | None = None
    ) -> ev.Domain:
        started, t0 = self.clock(), time.monotonic()
        warnings: tuple[tuple[str, str], ...] = ()
        if isinstance(self.validator, ResolverValidator):
            warnings = tuple(self.validator.warnings())

        try:
            name = _idna(target)
        except ValueError as exc:
            return ev.Domain(target, mx_only, self.mode, started, self.clock(),
                             bad_name=str(exc), resolver_warnings=warnings)  # fmt: skip
        mx: Answer | None = None
        tlsrpt: Answer | None = None
        if mx_only:
            targets: tuple[tuple[str, int | None], ...] = ((name, None),)
        else:
            # The TLS-RPT policy (RFC 8460 §3) beside the MX RRset: one more lookup, at once
            # (no tasks when the validator holds both: a warm monitor's every cycle).
            held, tlsrpt = self._cached(name, "MX"), self._cached_tlsrpt(name)
            if held is None or tlsrpt is None:
                found, tlsrpt = await asyncio.gather(self._lookup(name, "MX"), self._tlsrpt(name))
            else:
                found = held
            mx = found
            targets = mx_plan(found, name).hosts  # policy.mx_plan, once per MX RRset
        ports = self.options.ports
        hosts = await _gather(
            *(
                self.host_evidence(h, pref, port, transcripts=transcripts)
                for h, pref in targets
                for port in ports
            )
        )
        draft = ev.Domain(name, mx_only, self.mode, started, started, mx=mx, hosts=tuple(hosts))
        unsure = draft.indeterminate() or (
            tlsrpt is not None and tlsrpt.status == Status.INDETERMINATE
        )
        resolver_ok = await self._resolver_ok() if unsure else None
        surveyed = await self._nameservers(draft) if self.options.nameservers else None
        # Judged at the moment the evidence is complete (expiry windows).
        return ev.Domain(name, mx_only, self.mode, started, self.clock(),
                         duration=time.monotonic() - t0, mx=mx, hosts=draft.hosts,
                         resolver_ok=resolver_ok, resolver_warnings=warnings,
                         nameservers=surveyed, tlsrpt=tlsrpt)  # fmt: skip

    async def _nameservers(self, draft: ev.Domain) -> ev.NameServerSurvey:
        """Every authoritative server of the zones on the path, asked directly: each query
        within the per-query timeout, one UDP try and one TCP try at most."""
        from dane_monitor import nameservers

        o = self.options
        if o.nameserver_max_age > 0 and self._ns_cache is None:
            self._ns_cache = nameservers.SurveyCache(o.nameserver_max_age, o.nameserver_zones)
        surveyed = await nameservers.survey(self.validator.lookup, draft,
                                            port=o.nameserver_port, timeout=o.nameserver_timeout,
                                            deadline=4 * o.nameserver_timeout,
                                            cache=self._ns_cache)  # fmt: skip
        other = nameservers.other_mx_hosts(draft, surveyed)
        readdressed: dict[tuple[str, int], tuple[ev.Host, list[str]]] = {}
        for h, address in nameservers.other_addresses(draft, surveyed):
            readdressed.setdefault((h.name, h.port), (h, []))[1].append(address)
        if not other and not readdressed:
            return surveyed
        # A server serves an MX RRset naming other hosts, or an MX host's addresses other
        # than the check's: what would senders that got those do? Those hosts through the
        # same validated path and probes as the check's own, those addresses probed as their
        # host's, within the survey's deadline or one probe's budget, whichever is shorter
        # (what does not finish leaves the findings warnings: hosts_note says why).
        limit = min(o.timeouts.budget, 4 * o.nameserver_timeout)
        jobs = [self.host_evidence(name, pref, port, transcripts=False)
                for name, pref in other for port in o.ports]  # fmt: skip
        probes = [self._readdressed(h, addresses) for h, addresses in readdressed.values()]
        try:
            found = await asyncio.wait_for(_gather(*jobs, *probes), limit)
        except TimeoutError:
            note = f"other hosts and addresses were not looked up within {limit:g}s"
            return dataclasses.replace(surveyed, hosts_note=note)
        return dataclasses.replace(surveyed, hosts=tuple(found[: len(jobs)]),
                                   readdressed=tuple(found[len(jobs) :]))  # fmt: skip

    async def _readdressed(self, host: ev.Host, addresses: list[str]) -> ev.Host:
        """``host`` with its endpoints probed at ``addresses`` instead (the same SNI and
        TLSA RRset as its own probes)."""
        decided = host.tlsa[-1]
        sni = decided.base.rstrip(".")
        endpoints = await self._probe(addresses, host.port, sni, _tlsa_fingerprint(decided), False)
        return dataclasses.replace(host, endpoints=endpoints)

    async def _tlsrpt(self, domain: str) -> Answer | None:
        """``_smtp._tls.<domain>`` TXT, validated like every lookup; None when it cannot be
        asked (a name too long for the prefix): it never fails the check."""
        try:
            return await self._lookup(f"_smtp._tls.{domain}", "TXT")
        except (dns.exception.DNSException, ValueError):
            return None

    def _cached_tlsrpt(self, domain: str) -> Answer | None:
        try:
            return self._cached(f"_smtp._tls.{domain}", "TXT")
        except (dns.exception.DNSException, ValueError):
            return None

    async def _resolver_ok(self) -> bool | None:
        """Does our resolver validate a known-good name? Tells the domain's failures from
        ours (None: this validator cannot tell)."""
        healthy = getattr(self.validator, "healthy", None)
        if healthy is None:
            return None
        try:
            return bool(await healthy())
        except Exception:
            return False

    async def host_evidence(
        self,
        name: str,
        preference: int | None,
        port: int,
        *,
        probe_endpoints: bool = True,
        transcripts: bool | None = None,
    ) -> ev.Host:
        cached_a, cached_aaaa = self._cached(name, "A"), self._cached(name, "AAAA")
        if cached_a is not None and cached_aaaa is not None:
            a, aaaa = cached_a, cached_aaaa
        else:  # something to ask: both at once
            a, aaaa = await asyncio.gather(self._lookup(name, "A"), self._lookup(name, "AAAA"))
        addresses = _addresses(a, aaaa)
        if policy.address_failures(a, aaaa) or not addresses:
            return ev.Host(name, port, preference, a, aaaa)
        bases = policy.tlsa_bases(name, a, aaaa)
        lookups: list[ev.TLSALookup] = []
        while (next_base := policy.next_base(bases, [t.answer for t in lookups])) is not None:
            owner = policy.tlsa_owner(port, next_base)
            lookups.append(ev.TLSALookup(next_base, owner, await self._lookup(owner, "TLSA")))
        if not probe_endpoints:
            return ev.Host(name, port, preference, a, aaaa, bases=bases, tlsa=tuple(lookups))
        # SNI: the TLSA base domain that decided (RFC 7672 §8.1), else the host name.
        sni = (lookups[-1].base if lookups else name).rstrip(".")
        tlsa = _tlsa_fingerprint(lookups[-1]) if lookups else None
        if transcripts is None:
            transcripts = self.options.transcripts
        endpoints = await self._probe(addresses, port, sni, tlsa, transcripts)
        return ev.Host(name, port, preference, a, aaaa, bases=bases, tlsa=tuple(lookups),
                       endpoints=endpoints)  # fmt: skip

    async def _probe(
        self, addresses: list[str], port: int, sni: str, tlsa: object, transcripts: bool
    ) -> tuple[ev.Endpoint, ...]:
        opts = self.options
        connect = opts.connect_port or port
        ehlo_name = opts.ehlo_name or None  # None: the probe's default
        tls = port == 465
        slots = self._probe_slots()

        async def one(address: str) -> list[ProbeResult]:
            async with slots:
                first = await probe(address, connect, sni=sni, ehlo_name=ehlo_name,
                                    implicit_tls=tls, timeouts=opts.timeouts,
                                    transcript=transcripts, contexts=self.contexts)  # fmt: skip
                if not opts.both_key_types or not first.tls_established:
                    return [first]
                key = (address, connect, sni, tls)
                reused = self._reuse_other(key, first, tlsa)
                if reused is not None:
                    return reused
                second = await probe(address, connect, sni=sni, ehlo_name=ehlo_name,
                                     implicit_tls=tls, timeouts=opts.timeouts,
                                     key_type=other_key_type(first), transcript=transcripts,
                                     contexts=self.contexts)  # fmt: skip
                results = record_other_key_type(first, second)
                self._remember_other(key, first, second, tlsa)
                return results

        results = await _gather(*(one(a) for a in addresses))
        return tuple(
            ev.Endpoint(address, port, p)
            for address, probes in zip(addresses, results, strict=True)
            for p in probes
        )

    # -- the second key type ------------------------------------------------------------------

    def _reuse_other(
        self, key: tuple[str, int, str, bool], first: ProbeResult, tlsa: object
    ) -> list[ProbeResult] | None:
        """The results of this check when the last second handshake at ``key`` still holds
        (see the class docstring), else None: make one."""
        memo = self._other.get(key)
        if memo is None:
            return None
        if (
            memo.reuses_left < 1
            or memo.tlsa != tlsa
            or memo.other != other_key_type(first)
            or memo.leaf != _leaf_digest(first)
        ):
            del self._other[key]
            return None
        memo.reuses_left -= 1
        memo.checked += 1
        self._other.move_to_end(key)
        first.other_key_types[memo.other] = memo.outcome
        if first.transcript:
            first.transcript.append(
                f"* {memo.other}-only handshake: not repeated ({memo.outcome} "
                f"{memo.checked - 1} check(s) ago; the leaf and the TLSA records are "
                f"unchanged; again within {memo.reuses_left + 1} check(s))"
            )
        if memo.second is None:
            return [first]
        return [first, dataclasses.replace(memo.second, transcript=[])]

    def _remember_other(
        self, key: tuple[str, int, str, bool], first: ProbeResult, second: ProbeResult, tlsa: object
    ) -> None:
        every = self.options.recheck_other_key_type
        outcome = first.other_key_types.get(second.key_type_requested)
        if every <= 1 or outcome not in ("served", "not-served"):
            self._other.pop(key, None)
            return
        kept = None
        if outcome == "served":  # the chain is judged again each check; the dialogue is not
            kept = dataclasses.replace(second, transcript=[])
        self._other[key] = _OtherKeyType(
            _leaf_digest(first), tlsa, second.key_type_requested, outcome, kept, every - 1
        )
        self._other.move_to_end(key)
        while len(self._other) > MAX_KEY_TYPE_MEMORY:
            self._other.popitem(last=False)

    # -- preflight ----------------------------------------------------------------------------

    async def preflight(self, host: str, chain: Sequence[bytes], port: int = 25) -> Preflight:
        """The host's TLSA policy, as ``check`` follows it, applied to a chain not yet
        deployed: the same base domains (CNAME expansion, RFC 7672 §2.2.3) and names."""
        name = policy.idna(host)
        evidence = await self.host_evidence(name, None, port, probe_endpoints=False)
        resolver_ok = None
        if any(a.status == Status.INDETERMINATE for a in evidence.lookups):
            resolver_ok = await self._resolver_ok()
        hj = judge_host(evidence, resolver_ok)
        if not hj.dane_applies or hj.tlsa is None:
            return Preflight(hj, hj.tlsa.owner if hj.tlsa else None, None)
        names = policy.reference_names(name, hj.base)
        match = T.authenticate(list(hj.records), list(chain), names)
        return Preflight(hj, hj.tlsa.owner, match)


# The same targets come back every cycle; a name that is refused raises each time.
_idna = functools.lru_cache(maxsize=4096)(policy.idna)
_dns_name = functools.lru_cache(maxsize=8192)(dns.name.from_text)
_RDTYPES = {t: dns.rdatatype.RdataType.make(t) for t in ("MX", "A", "AAAA", "TLSA", "TXT")}


_ADDRESSES = 4096
_addresses_memo: dict[tuple[Any, ...], tuple[Any, Any, tuple[str, ...]]] = {}


def _addresses(a: Answer, aaaa: Answer) -> list[str]:
    """:func:`policy.addresses`, remembered per pair of address RRsets (the validator hands
    out the same RRset objects while it holds the answers; they are kept here, so an id
    stays theirs, and never changed)."""
    key = (id(a.rrset), a.kind, id(aaaa.rrset), aaaa.kind)
    hit = _addresses_memo.get(key)
    if hit is not None and hit[0] is a.rrset and hit[1] is aaaa.rrset:
        return list(hit[2])
    found = policy.addresses(a, aaaa)
    if len(_addresses_memo) >= _ADDRESSES:
        _addresses_memo.clear()
    _addresses_memo[key] = (a.rrset, aaaa.rrset, tuple(found))
    return found


async def _gather(*aws: Coroutine[Any, Any, T_]) -> list[T_]:
    """:func:`asyncio.gather`, without a task when there is one thing to wait for (most
    domains have one MX host, most hosts one address: a task each is measurable CPU)."""
    if len(aws) == 1:
        return [await aws[0]]
    return await asyncio.gather(*aws)


def _leaf_digest(p: ProbeResult) -> bytes:
    return hashlib.sha256(p.chain[0]).digest() if p.chain else b""


def _tlsa_fingerprint(lookup: ev.TLSALookup) -> object:
    """What of the deciding TLSA lookup can change a chain's verdict: where it is, its
    DNSSEC status and kind, and the records (as a set: order carries no meaning)."""
    a = lookup.answer
    records = frozenset(
        (r.usage, r.selector, r.mtype, bytes(r.cert)) for r in a.rrset
    ) if a.rrset is not None else None  # fmt: skip
    return (lookup.owner, a.status, a.kind, records)
