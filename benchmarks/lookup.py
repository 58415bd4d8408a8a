"""Validated DNS lookups per second against the local world, cold and warm cache.

    python3 benchmarks/lookup.py [--rounds 3] [--concurrency 50] [--exclude keytrap]

The world (the whole scenario catalogue) runs in a separate process (`dane-monitor world`),
so the figures are the validator's, not the server's GIL share. For every domain one "full
check" is MX, then A and TLSA for each MX host (CNAMEs followed), all validated locally
from the world's trust anchor.

- cold: a fresh stub cache and validator per domain, so every DS/DNSKEY up to the root is
  fetched and verified again (the cost of checking one domain on its own);
- warm: one cache and validator for all domains, timed on a second pass (everything
  cached: what repeated exporter cycles cost while TTLs last).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dane_monitor.lookup.anchors import TrustAnchors
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator


def start_world(anchor_dir: Path) -> tuple[subprocess.Popen[str], Server, list[list[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", "world", "--anchor-dir", str(anchor_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    server, domains = None, {}
    for line in proc.stdout:
        m = re.match(r"DNS server\s+(\S+) port (\d+)", line)
        if m:
            server = Server(m.group(1), int(m.group(2)))
        m = re.match(r"(\S+\.)\s+\S+\s+(\S+\.|-)(\s|$)", line)
        if m:
            hosts = domains.setdefault(m.group(1), [])
            if m.group(2) != "-" and m.group(2) not in hosts:
                hosts.append(m.group(2))
        if line.startswith("Ctrl-C"):
            break
    assert server is not None
    return proc, server, [[d, *h] for d, h in domains.items()]


async def full_check(v: Validator, domain: list[str]) -> int:
    name, *hosts = domain
    lookups = 1
    await v.lookup(name, "MX")
    for host in hosts:
        await asyncio.gather(v.lookup(host, "A"), v.lookup(f"_25._tcp.{host}", "TLSA"))
        lookups += 2
    return lookups


async def run(server: Server, anchors: TrustAnchors, domains, concurrency: int, mode: str):
    limit = asyncio.Semaphore(concurrency)
    shared = Validator(StubClient(server, timeout=2), anchors)
    verifications = []

    async def one(domain) -> int:
        async with limit:
            v = Validator(StubClient(server, timeout=2), anchors) if mode == "cold" else shared
            before = v.verifications
            n = await full_check(v, domain)
            if mode == "cold":
                verifications.append(v.verifications - before)
            return n

    t = time.perf_counter()
    total = sum(await asyncio.gather(*(one(d) for d in domains)))
    elapsed = time.perf_counter() - t
    if mode != "cold":
        t = time.perf_counter()
        total = sum(await asyncio.gather(*(one(d) for d in domains)))  # now warm
        elapsed = time.perf_counter() - t
    return total, elapsed, verifications


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--exclude",
        action="append",
        default=None,
        help="skip the domains of this scenario (default: keytrap, an attack zone that "
        "measures the work caps, not normal validation: benchmarks/keytrap.py)",
    )
    args = parser.parse_args()
    exclude = tuple(f"{name}." for name in (args.exclude or ["keytrap"]))
    with tempfile.TemporaryDirectory() as tmp:
        proc, server, domains = start_world(Path(tmp))
        domains = [d for d in domains if not d[0].startswith(exclude)]
        try:
            anchors = TrustAnchors.from_file(Path(tmp) / "trust-anchor.ds")
            print(f"world: {len(domains)} domains, DNS at {server}; {args.rounds} rounds")
            for mode in ("cold", "warm"):
                rates, verifs = [], []
                for _ in range(args.rounds):
                    total, elapsed, v = asyncio.run(
                        run(server, anchors, domains, args.concurrency, mode)
                    )
                    rates.append(total / elapsed)
                    verifs += v
                line = f"  {mode:5} {statistics.median(rates):8.0f} validated lookups/s"
                if verifs:
                    line += (
                        f"   signature verifications per full check (MX+A+TLSA, from the "
                        f"root): median {statistics.median(verifs):.0f}, max {max(verifs)}"
                    )
                print(line)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
