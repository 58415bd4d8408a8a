"""What nameserver consistency (issue 16) costs a check: extra DNS queries and time, cold and
warm, against the same check without it.

    python3 benchmarks/nameservers.py [--rounds 7] [--scenario stale-secondary-tlsa]

The world (in this process, on loopback) serves the scenario's zone from its primary and the
scenario's secondaries. For each mode (off: ``--no-nameservers``; on: the default) and each
round: a cold check (a fresh checker: empty DNS cache, every DS/DNSKEY fetched and verified)
then a warm one (the same checker again). Queries are the messages every DNS server of the
world received during the check (validated lookups through the stub and direct queries to
each authoritative server alike); times are the check's wall time. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from dane_monitor import settings
from dane_monitor.world import World, by_name


def queries(world: World) -> int:
    servers = [world.dns, *world.ns_servers.values()]
    return sum(s.query_count for s in servers if s is not None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--scenario", default="stale-secondary-tlsa")
    args = ap.parse_args()
    scenario = by_name(args.scenario)
    world = World([scenario])
    with world.running(), tempfile.TemporaryDirectory(prefix="nsbench-") as tmp:
        anchor = world.write_trust_anchor(Path(tmp) / "anchor.ds")
        host, port = world.dns_address
        domain = f"{scenario.name}.example"
        rows: dict[tuple[str, str], list[tuple[int, float, int]]] = {}

        async def one_round(on: bool) -> None:
            checker = settings.make_checker(
                resolver=f"{host}:{port}", trust_anchor=anchor, connect_port=world.smtp_port,
                nameservers=on, nameserver_port=port, transcripts=False,
            )  # fmt: skip
            for phase in ("cold", "warm"):
                before = queries(world)
                t0 = time.perf_counter()
                result = await checker.check_domain(domain)
                wall = time.perf_counter() - t0
                ns = result.nameservers["queries"] if result.nameservers else 0
                key = ("on" if on else "off", phase)
                rows.setdefault(key, []).append((queries(world) - before, wall, ns))

        for _ in range(args.rounds):
            for on in (False, True):
                asyncio.run(one_round(on))

    print(f"scenario {scenario.name}, {args.rounds} rounds, medians")
    print(f"{'mode':5} {'phase':5} {'queries':>8} {'direct':>7} {'wall ms':>8}")
    for (mode, phase), got in sorted(rows.items()):
        q = statistics.median(g[0] for g in got)
        wall = statistics.median(g[1] for g in got) * 1000
        direct = statistics.median(g[2] for g in got)
        print(f"{mode:5} {phase:5} {q:8.0f} {direct:7.0f} {wall:8.1f}")


if __name__ == "__main__":
    main()
