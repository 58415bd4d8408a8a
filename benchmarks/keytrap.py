"""KeyTrap (issue 11 item 8): what the world's ``keytrap`` zone costs one validated lookup, and
how long the exporter's ``/-/healthy`` takes while probes of that zone run.

    python3 benchmarks/keytrap.py [--runs 5] [--probers 2] [--duration 10]

The world (the ``keytrap`` and ``good-ee`` scenarios) is served by its own process
(``dane-monitor world``), so that neither its CPU nor its share of a GIL is counted here.

``lookups``: every run builds a fresh validator (cold caches) and times, wall and CPU, the TLSA
lookup of ``keytrap`` (the KeyTrap lookup), its MX and AAAA lookups (the AAAA is a NODATA that
carries the NSEC3 flood), and the same TLSA lookup in ``good-ee`` for comparison. Figures are
medians over the runs, with the validator's verification count where it keeps one.

``health``: the exporter runs as its own process (``dane-monitor serve``: its event loop is
the one measured, not this script's), ``--probers`` threads each run ``/probe?target=
keytrap.example`` back to back for ``--duration`` seconds, and this thread asks ``/-/healthy``
every 20 ms over a fresh connection; latency percentiles, first idle (no probes), then under
probes of the domain (which the exporter's validator answers from its cache after the first),
then under probes of ever new MX host names below it (``kind=mx``: NXDOMAIN proofs carrying
the NSEC3 flood, nothing cached for the name).

To measure a validator from before the caps (commit e31ecc2 or older), export that commit's
tree and put this one's ``dane_monitor/world/`` in it, then run with
``PYTHONPATH=<that tree>``; the exporter process inherits the path.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator

LOOKUPS = [
    ("_25._tcp.mx1.keytrap.example.", "TLSA"),
    ("keytrap.example.", "MX"),
    ("mx1.keytrap.example.", "AAAA"),
    ("a.b.c.d.e.f.g.h.nothere.keytrap.example.", "A"),
    ("_25._tcp.mx1.good-ee.example.", "TLSA"),
]


class WorldProcess:
    """``dane-monitor world --scenario keytrap --scenario good-ee`` as a child process."""

    def __init__(self, tmp: Path) -> None:
        cmd = [sys.executable, "-m", "dane_monitor", "world", "--anchor-dir", str(tmp)]
        cmd += ["--scenario", "keytrap", "--scenario", "good-ee"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        dns = smtp = None
        for line in self.proc.stdout:
            if m := re.match(r"DNS server\s+(\S+) port (\d+)", line):
                dns = (m.group(1), int(m.group(2)))
            if m := re.match(r"SMTP servers\s+port (\d+)", line):
                smtp = int(m.group(1))
            if line.startswith(("Ctrl-C", "Stopping")):
                break
        if dns is None or smtp is None:
            raise SystemExit("the world did not start")
        self.dns_address, self.smtp_port = dns, smtp
        self.anchor = tmp / "trust-anchor.ds"
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


async def _lookups(world: WorldProcess, runs: int) -> None:
    anchors = parse(world.anchor.read_text())
    print(f"validator: {sys.modules[Validator.__module__].__file__}")
    print(f"{'lookup':44} {'status':26} {'wall s':>8} {'cpu s':>8} {'verifications':>13}")
    for name, rdtype in LOOKUPS:
        walls, cpus, counts, status = [], [], [], ""
        for _ in range(runs):
            client = StubClient(Server(*world.dns_address), timeout=60, tries=2)
            validator = Validator(client, anchors)
            c0, t0 = time.process_time(), time.perf_counter()
            answer = await validator.lookup(name, rdtype)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            counts.append(getattr(validator, "verifications", -1))
            status = f"{answer.status.value} {answer.reason or ''}".strip()
        print(
            f"{name + ' ' + rdtype:44} {status:26} {statistics.median(walls):8.3f} "
            f"{statistics.median(cpus):8.3f} {int(statistics.median(counts)):13d}"
        )


def _get(url: str, timeout: float = 120.0) -> tuple[int, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        reply = conn.getresponse()
        return reply.status, reply.read().decode()
    finally:
        conn.close()


def _percentiles(label: str, values: list[float]) -> None:
    if not values:
        print(f"{label:28} no samples")
        return
    values = sorted(values)

    def p(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    print(
        f"{label:28} n={len(values):5d}  p50 {p(0.5):7.1f} ms  p90 {p(0.9):7.1f} ms  "
        f"p99 {p(0.99):7.1f} ms  max {values[-1] * 1000:7.1f} ms"
    )


def _health_samples(url: str, seconds: float) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        status, _ = _get(url + "-/healthy")
        assert status == 200
        out.append(time.perf_counter() - t)
        time.sleep(0.02)
    return out


def _health(world: WorldProcess, tmp: Path, probers: int, duration: float) -> None:
    anchor = world.anchor
    host, port = world.dns_address
    config = tmp / "dane.yml"
    config.write_text(
        "listen: 127.0.0.1:0\n"
        f"dns: {{resolver: '{host}:{port}', trust_anchor: '{anchor}'}}\n"
        f"connect_port: {world.smtp_port}\n"
        "probe: {allow: ['*.example']}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            if m := re.search(r"msg=listening url=(\S+)", line):
                url = m.group(1)
                break
        if url is None:
            raise SystemExit("the exporter did not start")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        _percentiles("/-/healthy, idle", _health_samples(url, 3))
        stop = threading.Event()
        probes: list[tuple[float, str]] = []

        counter = iter(range(10**9))

        def prober(fresh: bool) -> None:
            # fresh: a new MX host name under keytrap.example each time (NXDOMAIN, with the
            # NSEC3 flood), so that no cached answer for the name helps
            while not stop.is_set():
                target = f"mx-{next(counter)}.keytrap.example" if fresh else "keytrap.example"
                path = f"probe?target={target}" + ("&kind=mx" if fresh else "")
                t = time.perf_counter()
                _, text = _get(url + path)
                found = re.search(r'dane_verdict\{target="[^"]+",verdict="(\w+)"\} 1', text)
                probes.append((time.perf_counter() - t, found.group(1) if found else "none"))

        for fresh in (False, True):
            stop.clear()
            probes.clear()
            threads = [threading.Thread(target=prober, args=(fresh,)) for _ in range(probers)]
            for t in threads:
                t.start()
            time.sleep(0.2)  # the probes are under way
            samples = _health_samples(url, duration)
            stop.set()
            for t in threads:
                t.join()
            _percentiles(f"/-/healthy, {probers} probing", samples)
            durations = [d for d, _ in probes]
            what = "fresh MX names" if fresh else "keytrap.example"
            print(
                f"  probes of {what}: {len(probes)} done, median "
                f"{statistics.median(durations):.3f} s, max {max(durations):.3f} s, "
                f"verdicts {sorted({v for _, v in probes})}"
            )
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="cold lookups per name (median)")
    ap.add_argument("--probers", type=int, default=2, help="threads probing keytrap at once")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of health sampling")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="keytrap-bench-"))
    world = WorldProcess(tmp)
    try:
        asyncio.run(_lookups(world, args.runs))
        _health(world, tmp, args.probers, args.duration)
    finally:
        world.stop()


if __name__ == "__main__":
    main()
