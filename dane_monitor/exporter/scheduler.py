"""Background checking: every target on its own interval, with jitter, a bound on checks in
flight, and one validator (one DNS cache) shared by every check of every cycle.

:class:`Runner` runs one check under a deadline and never raises: a check that times out
or crashes becomes an :class:`~.metrics.Outcome` with ``success=False`` and a reason.
:class:`Scheduler` keeps one task per target and the latest outcome of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable

from dane_monitor import settings
from dane_monitor.check import Checker
from dane_monitor.exporter.config import Config, Target
from dane_monitor.exporter.metrics import (
    Outcome,
    Stats,
    failure_reason,
    lean_result,
    render_chunks,
    samples,
)
from dane_monitor.findings import finding
from dane_monitor.report import DomainResult, Severity, Verdict

log = logging.getLogger("dane_monitor.exporter")

# Every 4th check: a server that gains a second certificate is seen within 20 minutes at the
# default 5-minute interval; a changed leaf or TLSA RRset is seen at the next check.
RECHECK_KEY_TYPE = 4


class Runner:
    """Runs checks for the exporter; one per configuration's DNS and SMTP settings.

    A target's timeout bounds its whole check; :func:`dane_monitor.settings.probe_timeouts`
    shares it among the steps of each probe.

    :raises ValueError, TrustAnchorError: from :func:`settings.make_validator` on bad DNS
        settings.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        d = config.dns
        self.validator = settings.make_validator(
            d.resolver, trust_anchor=d.trust_anchor, validation=d.validation, timeout=d.timeout
        )
        self._checkers: OrderedDict[tuple[tuple[int, ...], float], Checker] = OrderedDict()

    def same_settings(self, config: Config) -> bool:
        """Whether ``config`` would make an identical runner (so its caches can be kept)."""
        keys = ("dns", "ehlo_name", "connect_port", "concurrency", "thresholds", "metrics",
                "nameservers")  # fmt: skip
        return all(getattr(self.config, k) == getattr(config, k) for k in keys)

    def checker(self, ports: tuple[int, ...], timeout: float) -> Checker:
        key = (ports, round(timeout, 3))
        checker = self._checkers.get(key)
        if checker is None:
            checker = self._checkers[key] = settings.make_checker(
                self.validator,
                ports=ports,
                connect_port=self.config.connect_port,
                ehlo_name=self.config.ehlo_name,
                check_timeout=timeout,
                thresholds=self.config.thresholds,
                concurrency=self.config.concurrency,
                # A long-lived checker: the other key type's handshake only when it can
                # change the answer, at least every RECHECK_KEY_TYPE-th check of an endpoint.
                recheck_other_key_type=RECHECK_KEY_TYPE,
                transcripts=False,
                nameservers=self.config.nameservers.enabled,
                nameserver_port=self.config.nameservers.port,
                # Each zone's servers asked at most once per max_age however many targets
                # share the zone, and again as soon as the validated records there change.
                nameserver_max_age=self.config.nameservers.max_age,
                # Room for every zone the targets' paths cross (about three a domain: its
                # own, its MX hosts', a parent's DS), else a large fleet asks every check.
                nameserver_zones=max(4096, 4 * len(self.config.targets)),
                dns_timeout=self.config.dns.timeout,
            )
            while len(self._checkers) > 64:  # /probe may ask for many port/timeout pairs
                self._checkers.popitem(last=False)
        else:
            self._checkers.move_to_end(key)
        return checker

    def cache_stats(self) -> tuple[int, int, int]:
        cache = self.validator.client.cache
        return len(cache._entries), cache.hits, cache.misses

    async def run(
        self,
        name: str,
        kind: str,
        ports: tuple[int, ...],
        timeout: float,
        *,
        slim: bool = True,
        transcripts: bool = False,
        left: float | None = None,
    ) -> Outcome:
        """Check ``name`` (a domain, or an MX host with ``kind="mx"``) within ``timeout``.

        ``slim`` (background checks) keeps only what /metrics and the landing page show: the
        rendered lines and the result without certificates, transcripts or samples.
        ``transcripts`` keeps the SMTP dialogue (/probe?debug=true). ``left``: the time
        actually left when less than ``timeout`` (a /probe that waited for a slot); the
        checker, and what it remembers between checks, stays the one for ``timeout``.
        """
        checker = self.checker(ports, timeout)
        budget = timeout if left is None else min(left, timeout)
        started = time.time()
        t0 = time.monotonic()
        failure: str | None
        try:
            async with asyncio.timeout(budget):
                if kind == "mx":
                    result = await checker.check_host(name, transcripts=transcripts)
                else:
                    result = await checker.check_domain(name, transcripts=transcripts)
            failure = failure_reason(result)
        except TimeoutError:
            result = _failed(name, kind, started, "check-timeout",
                             f"the check did not finish within {budget:g}s")  # fmt: skip
            failure = "timeout"
        except Exception as exc:  # a bug in the checker must not stop the exporter
            log.exception("check of %s crashed", name)
            result = _failed(name, kind, started, "check-crashed",
                             f"the check crashed: {type(exc).__name__}")  # fmt: skip
            failure = "exception"
        duration = time.monotonic() - t0
        result.duration = duration
        finished = time.time()
        success = failure is None
        profile = self.config.metrics.profile if slim else "full"  # /probe: always full
        points = samples(name, result, success=success, finished=finished, duration=duration,
                         profile=profile)  # fmt: skip
        chunks = render_chunks(points)
        if slim:  # kept for /metrics: the rendered lines suffice
            _slim(result)
            result = lean_result(result) if profile == "lean" else result
            points = []
        return Outcome(
            target=name,
            kind=kind,
            result=result,
            success=success,
            failure=failure,
            finished=finished,
            duration=duration,
            samples=tuple(points),
            chunks=chunks,
        )


def _failed(name: str, kind: str, started: float, code: str, message: str) -> DomainResult:
    result = DomainResult(name, mx_only=kind == "mx", started=started, verdict=Verdict.ERROR)
    result.findings.append(finding(code, Severity.ERROR, message))
    return result


def _slim(result: DomainResult) -> None:
    """Drop what a kept result never shows again (certificates, transcripts): bounded memory."""
    for host in result.hosts:
        for ep in host.endpoints:
            ep.chain_der = []
            ep.chain = []
            ep.transcript = []
            ep.profiles = {}  # per-endpoint sender profiles: /probe shows them, /metrics not


class Ledger:
    """The latest outcome of each background target and what follows from them: the check
    and cycle counts, the lag, the watchdog's warning. :class:`Scheduler` runs the checks in
    this process; :class:`~.workers.WorkerPool` receives them from worker processes.
    """

    WATCH_EVERY = 5.0  # seconds between the watchdog's looks
    WARN_EVERY = 60.0  # a warning at most this often while behind

    def __init__(self, stats: Stats | None) -> None:
        self.stats = stats
        self.outcomes: dict[str, Outcome] = {}
        self.targets: dict[str, Target] = {}
        self.on_outcome: Callable[[Outcome], None] | None = None
        self._concurrency = 1
        self._pass_started = time.monotonic()
        self._pass_pending: set[str] = set()
        self._added: dict[str, float] = {}  # when a target without a result was configured
        self._watchdog: asyncio.Task[None] | None = None

    def apply(self, config: Config, runner: Runner) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None

    def _configure(self, wanted: dict[str, Target], forget: set[str]) -> None:
        """Targets are now ``wanted``; the results of ``forget`` (removed or changed) go."""
        for name in forget:
            self.outcomes.pop(name, None)
        self.targets = wanted
        now = time.time()
        self._added = {n: self._added.get(n, now) for n in wanted}
        if self._watchdog is None and self.stats is not None:
            self._watchdog = asyncio.create_task(self._watch(), name="scheduler watchdog")
        self._pass_pending = {n for n in self._pass_pending if n in wanted} | {
            n for n in wanted if n not in self.outcomes
        }
        if not self._pass_pending:
            self._new_pass()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.targets.values():
            out[t.kind] = out.get(t.kind, 0) + 1
        return out

    def overdue(self) -> int:
        """Targets whose check is due and has waited for a slot past its allowance."""
        return 0

    def lag(self) -> tuple[int, float]:
        """(targets overdue, age in seconds of the oldest result) now.

        A target is overdue when its next check became due and has waited for a slot longer
        than a tenth of its interval (at least 1 s: a short wait for a slot is normal).
        """
        wall = time.time()
        oldest = wall
        for name in self.targets:
            outcome = self.outcomes.get(name)
            oldest = min(oldest, outcome.finished if outcome else self._added.get(name, wall))
        return self.overdue(), max(0.0, wall - oldest)

    def record(self, outcome: Outcome, **fields: object) -> None:
        """Keep ``outcome`` as its target's latest, count it, log it."""
        name = outcome.target
        self.outcomes[name] = outcome
        if self.stats is not None:
            self.stats.check_done(outcome)
        self._progress(name)
        if log.isEnabledFor(logging.DEBUG):  # its fields are built only when shown
            result = outcome.result
            log.debug(
                "checked",
                extra={
                    "target": name,
                    "verdict": result.verdict.value,
                    "success": outcome.success,
                    "reason": outcome.failure or "",
                    "duration": round(outcome.duration, 3),
                    **fields,
                },
            )
        if outcome.failure in ("timeout", "exception"):
            log.warning("check failed", extra={"target": name, "reason": outcome.failure})
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def _watch(self) -> None:
        behind_since: float | None = None
        warned = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.WATCH_EVERY)
            overdue, oldest = self.lag()
            now = loop.time()
            if overdue and now - warned >= self.WARN_EVERY:
                behind_since = behind_since or now
                warned = now
                log.warning(
                    "checks are falling behind their interval; raise concurrency, lengthen "
                    "intervals or shard the targets",
                    extra={
                        "overdue": overdue,
                        "targets": len(self.targets),
                        "oldest_result_age": round(oldest, 1),
                        "concurrency": self._concurrency,
                    },
                )
            elif not overdue and behind_since is not None:
                log.info("checks caught up", extra={"behind_for": round(now - behind_since, 1)})
                behind_since, warned = None, 0.0

    def _new_pass(self) -> None:
        self._pass_started = time.monotonic()
        self._pass_pending = set(self.targets)

    def _progress(self, name: str) -> None:
        self._pass_pending.discard(name)
        if not self._pass_pending and self.targets:
            if self.stats is not None:
                self.stats.cycle_done(time.monotonic() - self._pass_started)
            self._new_pass()


class Scheduler(Ledger):
    """One task per target; ``outcomes`` holds the latest outcome of each configured target.

    When checks cannot keep up (too many targets for ``concurrency`` and their intervals), a
    target still has at most one check waiting: its checks never overlap or queue up, so
    memory stays one task and one result per target. Waiting checks take free slots in the
    order they became due (the semaphore wakes waiters first come, first served), so every
    interval stretches alike and no target starves. :meth:`lag` says how far behind it is;
    a watchdog logs a warning while targets are overdue, and when they have caught up.

    With ``sink`` (in a worker process, :mod:`.workers`), each outcome goes to ``sink`` only:
    nothing is kept, counted or logged here, and there is no watchdog (the serving process
    does all that).
    """

    def __init__(
        self,
        stats: Stats | None,
        *,
        rng: random.Random | None = None,
        sink: Callable[[Outcome], None] | None = None,
    ) -> None:
        super().__init__(stats)
        self.runner: Runner | None = None
        self.in_flight = 0
        self._sink = sink
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(1)
        self._jitter = 0.0
        self._rng = rng or random.Random()
        self._due: dict[str, float] = {}  # loop time a waiting check became due, by target

    def apply(
        self, config: Config, runner: Runner, targets: tuple[Target, ...] | None = None
    ) -> None:
        """Make the running tasks match ``config`` (or ``targets`` with its settings):
        removed targets stop and lose their results at once, new ones start, changed ones
        restart."""
        restart_all = runner is not self.runner or config.jitter != self._jitter
        if restart_all:
            self.runner = runner
            self._slots = asyncio.Semaphore(config.concurrency)
            self._concurrency = config.concurrency
            self._jitter = config.jitter
        wanted = {t.name: t for t in (config.scheduled_targets() if targets is None else targets)}
        forget = set()
        for name in list(self._tasks):
            old = self.targets.get(name)
            if name not in wanted or wanted[name] != old or restart_all:
                self._tasks.pop(name).cancel()
            if name not in wanted or wanted[name] != old:
                forget.add(name)
        self._due = {n: due for n, due in self._due.items() if n in wanted}
        self._configure(wanted, forget)
        for name, target in wanted.items():
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(self._loop(target), name=f"check {name}")

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().close()

    def overdue(self) -> int:
        now = time.monotonic()  # the event loop's clock
        overdue = 0
        for name, due in list(self._due.items()):
            target = self.targets.get(name)
            if target is not None and now - due > max(1.0, 0.1 * target.interval):
                overdue += 1
        return overdue

    async def _loop(self, target: Target) -> None:
        runner = self.runner
        assert runner is not None
        slots = self._slots
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            self._due[target.name] = due
            try:
                await slots.acquire()
            finally:
                if self._due.get(target.name) == due:  # not a restarted target's entry
                    del self._due[target.name]
            started = loop.time()
            self.in_flight += 1
            try:
                with self.stats.checking() if self.stats is not None else contextlib.nullcontext():
                    outcome = await runner.run(
                        target.name, target.kind, target.ports, target.timeout
                    )
            finally:
                self.in_flight -= 1
                slots.release()
            if self.targets.get(target.name) != target:
                return  # reconfigured while checking
            if self._sink is not None:
                self._sink(outcome)
            else:
                self.record(outcome)
            spread = 1 + self._rng.uniform(-self._jitter, self._jitter)
            due = started + target.interval * spread
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = min(due, loop.time())
