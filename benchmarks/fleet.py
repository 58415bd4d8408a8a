"""`dane-monitor check --from FILE` against a large local world: wall time, checks per second
and peak memory of the whole command, beside the bare checker on the same targets.

    python3 benchmarks/fleet.py [--copies 25] [--runs 3] [--concurrency 50] [--nameservers]

The world runs in a separate process (`dane-monitor world --copies N`, as
`benchmarks/check.py` starts it: without the scenarios that stall until a timeout); 25
copies are 1,000 domains. Each run is a fresh `dane-monitor check --from FILE --json`
process (cold DNS cache, as a user's run is), its stdout thrown away; the figures are the
process's wall time (start-up, reading the file, every check, the summary), the time its
summary gives for the checks alone, and its peak RSS. The peer, in the same runs:
`benchmarks/check.py`'s round (one Checker, an asyncio.Semaphore, `asyncio.gather` of
every check, results dropped) in a fresh process, so the difference is what the fleet
engine, the JSON Lines and the CLI cost. Nameserver consistency is off unless
`--nameservers` (the peer has none either way).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from check import start_world

PEER = """
import asyncio, resource, sys, time
sys.path.insert(0, {bench!r})
from check import run_round
from dane_monitor import settings
domains = open({targets!r}).read().split()
checker = settings.make_checker(resolver={dns!r}, trust_anchor={anchor!r},
                                connect_port={smtp}, concurrency={concurrency},
                                transcripts=False)
elapsed, _ = asyncio.run(run_round(checker, domains, {concurrency}))
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def timed(cmd: list[str]) -> tuple[float, int, str, str]:
    """Wall seconds, peak RSS (KiB), stdout and stderr of ``cmd``, measured by GNU time."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss = int(p.stderr.strip().splitlines()[-1])
    return wall, rss, p.stdout, p.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=25)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--nameservers", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        proc, dns, smtp, domains = start_world(args.copies, Path(tmp))
        try:
            targets = Path(tmp) / "targets.txt"
            targets.write_text("".join(f"{d}\n" for d in domains))
            anchor = str(Path(tmp) / "trust-anchor.ds")
            world = ["--resolver", dns, "--trust-anchor", anchor, "--connect-port", str(smtp)]
            if args.nameservers:
                world += ["--nameserver-port", dns.rsplit(":", 1)[1]]
            else:
                world.append("--no-nameservers")
            fleet_cmd = [sys.executable, "-m", "dane_monitor", "check", "--from", str(targets),
                         "--json", "--concurrency", str(args.concurrency), *world]  # fmt: skip
            peer = PEER.format(bench=str(Path(__file__).parent), targets=str(targets), dns=dns,
                               anchor=anchor, smtp=smtp, concurrency=args.concurrency)  # fmt: skip
            n = len(domains)
            print(f"world: {n} domains (separate process); concurrency {args.concurrency}; "
                  f"nameservers {'on' if args.nameservers else 'off'}")  # fmt: skip
            ours: list[tuple[float, int]] = []
            engine: list[float] = []
            theirs: list[tuple[float, int]] = []
            for i in range(args.runs):
                wall, rss, out, err = timed(fleet_cmd)
                assert len(out.splitlines()) == n, "a target without its line"
                ours.append((wall, rss))
                m = re.search(r"checked in ([\d.]+)s", err)
                assert m, err
                engine.append(float(m.group(1)))
                _, rss_peer, out, _ = timed([sys.executable, "-c", peer])
                elapsed, _ = out.split()
                theirs.append((float(elapsed), rss_peer))
                print(f"  run {i + 1}: check --from {wall:.1f} s ({n / wall:.1f}/s; the checks "
                      f"alone {engine[-1]:.1f} s), {rss / 1024:.0f} MiB; "
                      f"bare checker {float(elapsed):.1f} s "
                      f"({n / float(elapsed):.1f}/s), {rss_peer / 1024:.0f} MiB")  # fmt: skip
            wall = statistics.median(w for w, _ in ours)
            peer_wall = statistics.median(w for w, _ in theirs)
            print(f"median: check --from {wall:.1f} s, {n / wall:.1f} checks/s (the checks "
                  f"alone {statistics.median(engine):.1f} s), "
                  f"{statistics.median(r for _, r in ours) / 1024:.0f} MiB peak; "
                  f"bare checker {peer_wall:.1f} s, {n / peer_wall:.1f} checks/s, "
                  f"{statistics.median(r for _, r in theirs) / 1024:.0f} MiB peak")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
