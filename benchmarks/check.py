"""Full domain checks per second, p50/p99 latency and peak memory against a large local world.

    python3 benchmarks/check.py [--copies 8] [--concurrency 50] [--rounds 2]

The world runs in a separate process (`dane-monitor world --copies N`): N copies of every
scenario of the catalogue that answers promptly (the hang / huge-line / close-after-ehlo /
hang-after-ehlo scenarios are left out: they measure our timeouts, not our speed). A full
check is what `dane-monitor check DOMAIN` does: MX, A/AAAA, TLSA, validated from the world's
anchor, a STARTTLS probe of every address (both key types where served) and TLSA matching.

Round 1 uses a fresh checker (cold DNS cache: every DS/DNSKEY fetched and verified);
later rounds reuse it (warm DNS cache; probes are never cached). CPU a check is this
process's (the checker's) CPU time over the round divided by the domains checked.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dane_monitor.check import Checker, Options
from dane_monitor.lookup import make_validator
from dane_monitor.settings import probe_timeouts

SLOW = {"hang", "huge-line", "close-after-ehlo", "hang-after-ehlo"}


def start_world(copies: int, anchor_dir: Path):
    from dane_monitor.world import CATALOGUE

    cmd = [
        sys.executable,
        "-m",
        "dane_monitor",
        "world",
        "--anchor-dir",
        str(anchor_dir),
        "--copies",
        str(copies),
    ]
    for sc in CATALOGUE:
        if sc.name not in SLOW:
            cmd += ["--scenario", sc.name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    dns = smtp = None
    domains: dict[str, int] = {}
    for line in proc.stdout:
        if m := re.match(r"DNS server\s+(\S+) port (\d+)", line):
            dns = f"{m.group(1)}:{m.group(2)}"
        elif m := re.match(r"SMTP servers\s+port (\d+)", line):
            smtp = int(m.group(1))
        elif m := re.match(r"(\S+\.)\s+\S+\s+(\S+\.|-)(\s+(\S+))?$", line.rstrip()):
            domains[m.group(1)] = domains.get(m.group(1), 0) + (1 if m.group(4) else 0)
        elif line.startswith("Ctrl-C"):
            break
    assert dns and smtp, "the world did not start"
    return proc, dns, smtp, domains


async def run_round(checker: Checker, domains: list[str], concurrency: int):
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(domain: str) -> None:
        async with limit:
            t = time.perf_counter()
            await checker.check_domain(domain)
            latencies.append(time.perf_counter() - t)

    t = time.perf_counter()
    await asyncio.gather(*(one(d) for d in domains))
    return time.perf_counter() - t, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, dns, smtp, domains = start_world(args.copies, Path(tmp))
        try:
            endpoints = sum(domains.values())
            print(
                f"world: {len(domains)} domains, {endpoints} MX endpoints (separate process); "
                f"concurrency {args.concurrency}"
            )
            validator = make_validator(dns, trust_anchor=Path(tmp) / "trust-anchor.ds")
            options = Options(
                connect_port=smtp, timeouts=probe_timeouts(5.0), concurrency=args.concurrency
            )
            checker = Checker(validator, options)
            for i in range(args.rounds):
                cpu = time.process_time()
                elapsed, lat = asyncio.run(run_round(checker, list(domains), args.concurrency))
                cpu = (time.process_time() - cpu) / len(domains)
                label = "cold DNS" if i == 0 else "warm DNS"
                print(
                    f"  round {i + 1} ({label}): {len(domains) / elapsed:6.1f} domain checks/s, "
                    f"p50 {pct(lat, 0.5) * 1000:6.0f} ms, p99 {pct(lat, 0.99) * 1000:6.0f} ms, "
                    f"{elapsed:.1f} s in all, {cpu * 1000:.2f} ms of CPU a check"
                )
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  peak memory of the checking process: {peak:.0f} MiB")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
