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
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dane_monitor import evidence as ev
from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor.conclusion import conclude
from dane_monitor.judge import HostJudgement, judge_host
from dane_monitor.lookup.answer import Answer, Status
from dane_monitor.lookup.validator import ResolverValidator, Validator
from dane_monitor.probe import ProbeResult, Timeouts, probe, probe_all
from dane_monitor.report import DomainResult
from dane_monitor.settings import Thresholds

DAY = 86400


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
    both_key_types: bool = True

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.rrsig_warn_days, self.rrsig_error_days, self.cert_warn_days)


@dataclass(frozen=True)
class Preflight:
    """Would deploying ``chain`` on an MX host break DANE? (``dane-monitor preflight``)"""

    host: HostJudgement  # the host's DNS as senders see it (no endpoints probed)
    owner: str | None  # the TLSA owner name that decides, None when DANE does not apply
    match: T.MatchResult | None  # None when DANE does not apply or DNS cannot tell


class Checker:
    """Checks domains and MX hosts; one instance can serve many concurrent checks, from one
    event loop after another (not from threads at once: the validator's caches are not
    locked), and shares the validator's caches between them (and an exporter's cycles)."""

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
        return await self.validator.lookup(name, rdtype)

    # -- the public checks --------------------------------------------------------------------

    async def check_domain(self, domain: str) -> DomainResult:
        return conclude(await self.domain_evidence(domain), self.options.thresholds)

    async def check_host(self, host: str) -> DomainResult:
        """One MX host on its own (``--mx``): no MX lookup, the host as a sender would reach it."""
        return conclude(await self.domain_evidence(host, mx_only=True), self.options.thresholds)

    # -- evidence -----------------------------------------------------------------------------

    async def domain_evidence(self, target: str, *, mx_only: bool = False) -> ev.Domain:
        started, t0 = self.clock(), time.monotonic()
        warnings: tuple[tuple[str, str], ...] = ()
        if isinstance(self.validator, ResolverValidator):
            warnings = tuple(self.validator.warnings())

        def evidence(
            name: str,
            *,
            bad_name: str | None = None,
            mx: Answer | None = None,
            hosts: tuple[ev.Host, ...] = (),
        ) -> ev.Domain:
            return ev.Domain(name, mx_only, self.mode, started, self.clock(), bad_name=bad_name,
                             mx=mx, hosts=hosts, resolver_warnings=warnings)  # fmt: skip

        try:
            name = policy.idna(target)
        except ValueError as exc:
            return evidence(target, bad_name=str(exc))
        mx: Answer | None = None
        if mx_only:
            targets: tuple[tuple[str, int | None], ...] = ((name, None),)
        else:
            mx = await self._lookup(name, "MX")
            targets = policy.mx_plan(mx, name).hosts
        ports = self.options.ports
        hosts = await asyncio.gather(
            *(self.host_evidence(h, pref, port) for h, pref in targets for port in ports)
        )
        domain = evidence(name, mx=mx, hosts=tuple(hosts))
        resolver_ok = await self._resolver_ok() if domain.indeterminate() else None
        # Judged at the moment the evidence is complete (expiry windows).
        return _replace(domain, resolver_ok=resolver_ok, now=self.clock(),
                        duration=time.monotonic() - t0)  # fmt: skip

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
        self, name: str, preference: int | None, port: int, *, probe_endpoints: bool = True
    ) -> ev.Host:
        a, aaaa = await asyncio.gather(self._lookup(name, "A"), self._lookup(name, "AAAA"))
        host = ev.Host(name, port, preference, a, aaaa)
        if policy.address_failures(a, aaaa) or not policy.addresses(a, aaaa):
            return host
        bases = policy.tlsa_bases(name, a, aaaa)
        lookups: list[ev.TLSALookup] = []
        while (next_base := policy.next_base(bases, [t.answer for t in lookups])) is not None:
            owner = policy.tlsa_owner(port, next_base)
            lookups.append(ev.TLSALookup(next_base, owner, await self._lookup(owner, "TLSA")))
        host = _replace(host, bases=bases, tlsa=tuple(lookups))
        if not probe_endpoints:
            return host
        # SNI: the TLSA base domain that decided (RFC 7672 §8.1), else the host name.
        sni = (lookups[-1].base if lookups else name).rstrip(".")
        endpoints = await self._probe(policy.addresses(a, aaaa), port, sni)
        return _replace(host, endpoints=endpoints)

    async def _probe(self, addresses: list[str], port: int, sni: str) -> tuple[ev.Endpoint, ...]:
        opts = self.options
        connect = opts.connect_port or port
        ehlo_name = opts.ehlo_name or None  # None: the probe's default
        tls = port == 465
        slots = self._probe_slots()

        async def one(address: str) -> list[ProbeResult]:
            async with slots:
                if not opts.both_key_types:
                    return [await probe(address, connect, sni=sni, ehlo_name=ehlo_name,
                                        implicit_tls=tls, timeouts=opts.timeouts)]  # fmt: skip
                return await probe_all(address, connect, sni=sni, ehlo_name=ehlo_name,
                                       implicit_tls=tls, timeouts=opts.timeouts)  # fmt: skip

        results = await asyncio.gather(*(one(a) for a in addresses))
        return tuple(
            ev.Endpoint(address, port, p)
            for address, probes in zip(addresses, results, strict=True)
            for p in probes
        )

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


_replace = dataclasses.replace
