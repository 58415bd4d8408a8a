"""Misbehaving HTTP clients, for the exporter's load tests (tests/test_exporter_load.py) and
its load benchmark (``benchmarks/exporter.py lockout|authflood``).

- :class:`Holders` keeps connections open from many loopback addresses, either ``idle``
  (connect, send nothing) or ``slowloris`` (a byte of a never-ending request head now and
  then), and reconnects whenever the server closes one, as a real attacker would.
- :class:`Flood` runs clients that send requests with a wrong password as fast as they are
  answered, each from its own loopback address.
- :func:`timed` makes one request and returns its status and latency.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from test_exporter_client import Reply, request  # the tests' strict client


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the clients; one that does not end within 30 s is a bug to see, not a hang."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=30)
    if pending:
        stack = next(iter(pending)).get_stack()
        raise RuntimeError(f"{len(pending)} client tasks did not stop; one is at {stack}")


def sources(count: int, first: int = 10) -> list[str]:
    """``count`` loopback addresses, 127.0.<first>.1 onwards (127/8 is all loopback on Linux)."""
    return [f"127.0.{first + i // 250}.{i % 250 + 1}" for i in range(count)]


class Holders:
    """``count`` connections kept open to ``host:port``, spread over ``addresses``."""

    def __init__(
        self,
        host: str,
        port: int,
        count: int,
        addresses: list[str],
        *,
        mode: str = "idle",
        drip: float = 2.0,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        assert mode in ("idle", "slowloris")
        self.host, self.port, self.count = host, port, count
        self.addresses, self.mode, self.drip, self.ssl = addresses, mode, drip, ssl
        self.open = 0  # connected now
        self.connects = 0  # connections made
        self.refused = 0  # attempts that failed (or got a 503 at once)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Holders:
        self._tasks = [
            asyncio.create_task(self._hold(self.addresses[i % len(self.addresses)]))
            for i in range(self.count)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await _stop(self._tasks)

    async def _hold(self, source: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self.host, self.port, local_addr=(source, 0), ssl=self.ssl,
                        server_hostname=self.host if self.ssl else None,
                    ),
                    30,
                )  # fmt: skip
            except (OSError, TimeoutError, _ssl.SSLError):
                self.refused += 1
                await asyncio.sleep(0.2)
                continue
            self.open += 1
            self.connects += 1
            try:
                if self.mode == "idle":
                    answer = await reader.read(100)  # until the server answers or closes
                else:
                    answer = b""
                    head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 100_000
                    for i in range(len(head)):
                        writer.write(head[i : i + 1])
                        await writer.drain()
                        try:
                            answer = await asyncio.wait_for(reader.read(100), self.drip)
                            break  # an answer (408, 431) or the end: the server cut it
                        except TimeoutError:
                            continue
                if answer.startswith(b"HTTP/1.1 503"):
                    self.refused += 1
            except (OSError, _ssl.SSLError):
                pass
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(0.05)


class Flood:
    """``clients`` clients, each from its own address, sending ``path`` with a wrong
    password, ``rate`` requests a second in all (each client waits for its answer first);
    ``statuses`` counts the answers."""

    def __init__(
        self, url: str, clients: int, addresses: list[str], *, cafile: str | None = None,
        path: str = "metrics", rate: float = 12.0,
    ) -> None:  # fmt: skip
        self.url, self.clients, self.addresses = url, clients, addresses
        self.path, self.pause = path, clients / rate
        self.context = _ssl.create_default_context(cafile=cafile) if cafile else None
        self.statuses: Counter[int | str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Flood:
        self._tasks = [
            asyncio.create_task(self._run(self.addresses[i % len(self.addresses)], i))
            for i in range(self.clients)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await _stop(self._tasks)

    async def _run(self, source: str, i: int) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.pause * i / self.clients)  # spread the clients' starts
        while True:
            started = loop.time()
            try:
                reply = await request(
                    self.url + self.path, auth=("prometheus", f"wrong-{i}"),
                    context=self.context, timeout=30, source=source,
                )  # fmt: skip
                self.statuses[reply.status] += 1
            except (OSError, TimeoutError, _ssl.SSLError) as exc:
                self.statuses[type(exc).__name__] += 1
            await asyncio.sleep(max(0.0, started + self.pause - loop.time()))


async def timed(url: str, **kwargs) -> tuple[Reply, float]:
    """One request, and how long its answer took (seconds)."""
    t = time.perf_counter()
    reply = await request(url, **kwargs)
    return reply, time.perf_counter() - t


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
