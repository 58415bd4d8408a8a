"""Slow readers of a large ``/metrics`` against a real exporter: each holds a piece of the
body, never a copy of it, so memory grows by little per reader (issue 14)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from test_exporter_client import request
from test_exporter_http import HANG_GUARD, until

from dane_monitor.exporter.app import Exporter
from dane_monitor.exporter.config import Config, DNSSettings, Target

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from exporter import outcome, rss_mib  # the benchmark's well-run domain, as kept

TARGETS = 3000  # 82 series each: a /metrics body of about 28 MB
READERS = 16


def fill(exporter: Exporter, count: int) -> None:
    for i in range(count):
        kept = outcome(i, "full", broken=False)
        exporter.scheduler.outcomes[kept.target] = kept
        exporter.scheduler.targets[kept.target] = Target(kept.target, "domain")


def stuck_reader(port: int, gzip: bool) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    extra = "Accept-Encoding: gzip\r\n" if gzip else ""
    sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: h\r\n{extra}\r\n".encode())
    return sock  # and never reads


async def test_slow_readers_of_a_large_metrics_cost_little_memory():
    config = Config(listen="127.0.0.1:0", dns=DNSSettings(resolver="127.0.0.1:53"))
    exporter = Exporter(config)
    await exporter.start()
    socks: list[socket.socket] = []
    try:
        fill(exporter, TARGETS)
        whole = await request(exporter.url + "metrics", timeout=HANG_GUARD)  # warms the heap
        size = len(whole.body)
        assert size > 20e6 and f'target="domain-{TARGETS - 1:05d}.example"' in whole.text
        del whole
        before = rss_mib()
        port = exporter.server.port
        # Plain: a gzip body (about 1.3 MB) fits in the kernel's socket buffers and never stalls.
        socks = [stuck_reader(port, gzip=False) for i in range(READERS)]
        await until(lambda: exporter.server.stalled == READERS, "every reader stalled")
        grown = rss_mib() - before
        # A copy of the body per reader would be 16 times 28 MB; a piece each is well under 1 MiB.
        assert grown < READERS * 2, f"RSS grew {grown:.0f} MiB for {READERS} slow readers"
        # Well-behaved clients are still served meanwhile.
        assert (await request(exporter.url + "-/healthy", timeout=HANG_GUARD)).status == 200
        reply = await request(
            exporter.url + "metrics", headers={"Accept-Encoding": "gzip"}, timeout=HANG_GUARD
        )
        assert reply.status == 200
        assert f'target="domain-{TARGETS - 1:05d}.example"' in reply.text
    finally:
        for sock in socks:
            sock.close()
        await exporter.close()
