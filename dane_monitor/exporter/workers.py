"""Background checks in worker processes: the exporter uses every core.

The serving process keeps HTTP, ``/metrics``, the landing page and ``/probe``; it starts
``workers`` processes (``python -m dane_monitor.exporter.workers``) and gives each a part of
the background targets, split by a stable hash of the target name (CRC-32 modulo the number
of workers), so a target stays in the same worker from cycle to cycle and that worker's DNS
cache and the checker's memory of each endpoint stay warm. Each worker runs a
:class:`~.scheduler.Scheduler` of its own (``concurrency`` divided among the workers) and
sends back every outcome: the rendered lines /metrics serves and the slimmed result the
landing page shows. The serving process keeps them in :attr:`WorkerPool.outcomes`, as
:class:`~.scheduler.Scheduler` does in-process, and counts checks, failures, durations and
cycles from them; the workers report what only they see (checks in flight, overdue targets,
their DNS caches) once a second.

The channel is the worker's stdin (orders) and stdout (reports): frames of a 4-byte
big-endian length and a pickle. A worker leaves when told to, when its stdin closes (the
serving process died: no orphans) or on SIGTERM; it ignores SIGINT (a Ctrl-C reaches the
whole process group; the serving process stops the workers). A worker that exits otherwise
is logged, counted (``dane_exporter_worker_restarts_total``) and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import signal
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from dane_monitor.exporter.config import Config
from dane_monitor.exporter.metrics import Outcome, Stats
from dane_monitor.exporter.scheduler import Ledger, Runner, Scheduler

log = logging.getLogger("dane_monitor.exporter")

_LEN = struct.Struct(">I")
REPORT_EVERY = 1.0  # seconds between a worker's reports of what it is doing
BATCH_EVERY = 0.02  # seconds a worker gathers outcomes before sending them
STOP_GRACE = 10.0  # seconds a worker has to stop before it is killed
MAX_BACKOFF = 30.0  # seconds at most between restarts of a worker that keeps dying
GC_THRESHOLD = 20_000  # gc.set_threshold's first value in a worker (Python's default: 700)
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding dane_monitor/


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_of(name: str, workers: int) -> int:
    """The worker (from 0) that checks target ``name``: the same in every process and run."""
    return zlib.crc32(name.encode()) % workers


def share(concurrency: int, workers: int) -> int:
    """Each worker's part of the total ``concurrency`` (at least 1)."""
    return max(1, -(-concurrency // workers))


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream."""
    try:
        head = await reader.readexactly(_LEN.size)
        return pickle.loads(await reader.readexactly(_LEN.unpack(head)[0]))
    except asyncio.IncompleteReadError:
        return None


# -- the serving process's side -----------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    generation: int = 0  # of the last orders sent
    stopping: bool = False
    in_flight: list[Any] = field(default_factory=list)  # entered Stats.checking() trackers
    overdue: int = 0
    cache: tuple[int, int, int] = (0, 0, 0)

    def send(self, message: Any) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        proc.stdin.write(_frame(message))


class WorkerPool(Ledger):
    """Background checks in ``count`` worker processes; the same attributes as
    :class:`~.scheduler.Scheduler` (``outcomes``, ``targets``, :meth:`apply`, :meth:`lag`,
    :meth:`close`), so /metrics and the landing page read either.

    :param count: worker processes (at least 1); change it before :meth:`apply` to resize.
    :param log_setup: (format, level) of the workers' logs, as :func:`.logs.setup` takes
        them; by default read from the ``dane_monitor`` logger.
    """

    def __init__(self, stats: Stats, count: int, *, log_setup: tuple[str, str] | None = None):
        super().__init__(stats)
        self.count = count
        self._log_setup = log_setup or _log_setup()
        self._workers: list[_Worker] = []
        self._owner: dict[str, int] = {}  # target → its worker
        self._since: dict[str, int] = {}  # target → generation that last changed or moved it
        self._generation = 0
        self._config: Config | None = None
        self._closing = False
        self._wake = asyncio.Event()  # set when closing: a worker waiting to restart stops
        self._retiring: list[_Worker] = []  # workers told to stop, not gone yet
        self._cache_base = (0, 0)  # hits and misses of workers that are gone
        registry = stats.registry
        self._restarts = Counter(
            "dane_exporter_worker_restarts",
            "Worker processes that exited unexpectedly and were started again",
            registry=registry,
        )
        running = Gauge(
            "dane_exporter_workers", "Worker processes running background checks",
            registry=registry,
        )  # fmt: skip
        running.set_function(self.running)
        self._worker_targets = Gauge(
            "dane_exporter_worker_targets",
            "Background targets each worker process checks, as the worker reports them",
            ("worker",),
            registry=registry,
        )

    def running(self) -> int:
        return sum(1 for w in self._workers if w.proc is not None and w.proc.returncode is None)

    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        return [
            w.proc.pid for w in self._workers if w.proc is not None and w.proc.returncode is None
        ]

    def apply(self, config: Config, runner: Runner | None = None) -> None:
        """Give every worker its part of ``config``'s background targets: a target that
        moves to another worker (the number of workers changed) or leaves the configuration
        stops in its old worker; a changed one restarts and loses its result."""
        self._generation += 1
        generation = self._generation
        count = max(1, self.count)
        wanted = {t.name: t for t in config.scheduled_targets()}
        old = self.targets
        forget = {n for n in old if n not in wanted or wanted[n] != old[n]}
        owner = {name: worker_of(name, count) for name in wanted}
        for name in wanted:
            if name not in old or name in forget or self._owner.get(name) != owner[name]:
                self._since[name] = generation
        self._since = {n: g for n, g in self._since.items() if n in wanted}
        self._owner = owner
        self._concurrency = config.concurrency
        self._config = config
        self._configure(wanted, forget)
        while len(self._workers) > count:  # fewer workers: the last ones stop
            worker = self._workers.pop()
            self._retiring.append(worker)
            worker.stopping = True
            self._release(worker)
            worker.send(("stop",))
        for worker in self._workers:
            self._send_orders(worker)
        while len(self._workers) < count:
            worker = _Worker(len(self._workers))
            self._workers.append(worker)
            worker.task = asyncio.create_task(self._run(worker), name=f"worker {worker.index}")

    def _orders(self, index: int) -> tuple[Any, ...]:
        config = self._config
        assert config is not None
        mine = tuple(t for t in config.scheduled_targets() if self._owner[t.name] == index)
        count = max(1, self.count)
        # The worker's settings with its own targets only (not the whole list again).
        part = replace(config, targets=mine, concurrency=share(config.concurrency, count))
        return ("config", self._generation, part, mine)

    def _send_orders(self, worker: _Worker) -> None:
        worker.generation = self._generation
        worker.send(self._orders(worker.index))

    def overdue(self) -> int:
        return sum(w.overdue for w in self._workers)

    def cache_stats(self) -> tuple[int, int, int]:
        """(entries, hits, misses) of the workers' DNS caches, as last reported."""
        entries, hits, misses = 0, *self._cache_base
        for w in self._workers:
            entries, hits, misses = entries + w.cache[0], hits + w.cache[1], misses + w.cache[2]
        return entries, hits, misses

    async def close(self) -> None:
        """Stop every worker: told to stop, then killed after :data:`STOP_GRACE` seconds."""
        self._closing = True
        self._wake.set()
        workers = self._workers + self._retiring
        self._workers, self._retiring = [], []
        for worker in workers:
            worker.stopping = True
            worker.send(("stop",))
        tasks = [w.task for w in workers if w.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        for worker in workers:
            proc = worker.proc
            if proc is not None and proc.returncode is None:
                log.warning("worker did not stop; killing it", extra={"worker": worker.index})
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().close()

    # -- one worker's life ---------------------------------------------------------------------

    async def _run(self, worker: _Worker) -> None:
        backoff = 0.5
        while not (self._closing or worker.stopping):
            started = time.monotonic()
            try:
                proc = await _spawn()
            except OSError as exc:
                log.error("cannot start a worker", extra={"worker": worker.index,
                                                          "error": str(exc)})  # fmt: skip
            else:
                worker.proc = proc
                log.info("worker started", extra={"worker": worker.index, "pid": proc.pid})
                try:
                    await self._serve(worker, proc)
                finally:
                    await self._reap(worker, proc)
                if self._closing or worker.stopping:
                    if worker in self._retiring:
                        self._retiring.remove(worker)
                    return
                code = proc.returncode
                how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
                self._restarts.inc()
                log.error(
                    "worker exited; starting it again",
                    extra={"worker": worker.index, "pid": proc.pid, "exit": how},
                )
            if time.monotonic() - started > 60:
                backoff = 0.5
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            backoff = min(MAX_BACKOFF, backoff * 2)

    async def _serve(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        worker.send(("hello", worker.index, self._log_setup))
        if self._config is not None:
            self._send_orders(worker)
        while True:
            batch = await _read(proc.stdout)
            if batch is None:
                return
            for message in batch:
                if message[0] == "outcome":
                    self._received(worker, message[1], message[2])
                elif message[0] == "state" and not worker.stopping:
                    _, in_flight, worker.overdue, worker.cache, targets = message
                    self._set_in_flight(worker, in_flight)
                    self._worker_targets.labels(str(worker.index)).set(targets)

    def _received(self, worker: _Worker, generation: int, outcome: Outcome) -> None:
        name = outcome.target
        if self._owner.get(name) != worker.index or worker.stopping:
            return  # moved to another worker, or no longer configured
        if generation < self._since.get(name, 0):
            return  # checked with settings the target no longer has
        self.record(outcome, worker=worker.index)

    def _set_in_flight(self, worker: _Worker, count: int) -> None:
        assert self.stats is not None
        while len(worker.in_flight) < count:
            tracker = self.stats.checking()
            tracker.__enter__()
            worker.in_flight.append(tracker)
        while len(worker.in_flight) > count:
            worker.in_flight.pop().__exit__(None, None, None)

    def _release(self, worker: _Worker) -> None:
        self._set_in_flight(worker, 0)
        worker.overdue = 0
        with contextlib.suppress(KeyError):
            self._worker_targets.remove(str(worker.index))

    async def _reap(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(STOP_GRACE):
                await proc.wait()
        except TimeoutError:
            log.warning("worker did not stop; killing it", extra={"worker": worker.index})
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._release(worker)
        hits, misses = self._cache_base
        self._cache_base = (hits + worker.cache[1], misses + worker.cache[2])
        worker.cache = (0, 0, 0)
        worker.proc = None


async def _spawn() -> asyncio.subprocess.Process:
    env = dict(os.environ)
    # The worker imports this very package, wherever the serving process found it.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dane_monitor.exporter.workers",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=False,
    )


def _log_setup() -> tuple[str, str]:
    from dane_monitor.exporter.logs import JSONFormatter

    logger = logging.getLogger("dane_monitor")
    fmt = "logfmt"
    for handler in logger.handlers:
        if getattr(handler, "_dane_exporter", False):
            fmt = "json" if isinstance(handler.formatter, JSONFormatter) else "logfmt"
    level = logging.getLevelName(logger.getEffectiveLevel()).lower()
    return fmt, level if level in ("debug", "info", "warning", "error") else "warning"


# -- the worker process -------------------------------------------------------------------------


class _Tag(logging.Filter):
    """Adds ``worker=N`` to every line a worker logs."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


class _Reporter:
    """A worker's reports, sent in batches: whatever finished within :data:`BATCH_EVERY`."""

    def __init__(self, writer: asyncio.WriteTransport) -> None:
        self.writer = writer
        self.generation = 0
        self._batch: list[Any] = []

    def outcome(self, outcome: Outcome) -> None:
        self.put(("outcome", self.generation, outcome))

    def put(self, message: Any) -> None:
        if not self._batch:  # one write (and one wake-up of the serving process) per batch
            asyncio.get_running_loop().call_later(BATCH_EVERY, self.flush)
        self._batch.append(message)

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch and not self.writer.is_closing():
            self.writer.write(_frame(batch))


async def _worker(orders_fd: int, reports_fd: int) -> int:
    from dane_monitor.exporter import logs

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(orders_fd, "rb", 0)
    )
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(reports_fd, "wb", 0))
    reporter = _Reporter(writer)
    scheduler = Scheduler(None, sink=reporter.outcome)
    runner: Runner | None = None
    stop = asyncio.Event()
    wake = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def report() -> None:
        last = None
        while True:
            cache = runner.cache_stats() if runner is not None else (0, 0, 0)
            busy, overdue = scheduler.in_flight, scheduler.overdue()
            state = ("state", busy, overdue, cache, len(scheduler.targets))
            if state != last:
                reporter.put(state)
                last = state
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that comes as the event is set (then this loop outlived its worker's orders).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPORT_EVERY):
                    await wake.wait()
            wake.clear()

    async def obey() -> None:
        nonlocal runner
        while True:
            message = await _read(reader)
            if message is None or message[0] == "stop":
                return
            if message[0] == "hello":
                _, index, (fmt, level) = message
                handler = logs.setup(fmt, level)
                handler.addFilter(_Tag(index))
                continue
            _, generation, config, targets = message
            if runner is None or not runner.same_settings(config):
                runner = Runner(config)
            reporter.generation = generation
            scheduler.apply(config, runner, targets)
            wake.set()  # report the new targets now

    reporting = asyncio.create_task(report())
    orders = asyncio.create_task(obey())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait((orders, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # However the checks end, the worker is gone STOP_GRACE seconds after its orders.
        loop.call_later(STOP_GRACE, os._exit, 0)
        for task in (reporting, orders, stopped):
            task.cancel()
        await asyncio.gather(reporting, orders, stopped, return_exceptions=True)
        await scheduler.close()
        reporter.flush()
        writer.close()
    failed = orders.exception() if orders.done() and not orders.cancelled() else None
    if failed is not None:
        raise failed  # a bad order is a bug: its traceback, and the worker starts again
    return 0


def main() -> int:
    """A worker process: orders on stdin, reports on stdout (see the module's docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A check allocates and frees thousands of objects, and the DNS cache and checkers hold
    # a few hundred thousand: at the default threshold (700) the collector ran about ten
    # times a second, scanning them, 7% of a worker's CPU (0.16 ms a check); collecting when
    # 20,000 more objects live than at the last collection, under 2% (0.04 ms).
    gc.set_threshold(GC_THRESHOLD, 10, 10)
    # The channel gets its own descriptors; fd 0 and 1 become /dev/null and stderr, so a
    # stray print cannot corrupt the reports.
    orders_fd, reports_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return asyncio.run(_worker(orders_fd, reports_fd))


if __name__ == "__main__":
    sys.exit(main())
