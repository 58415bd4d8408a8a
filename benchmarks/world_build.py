"""Time to build (keys, signed zones, certificates) and start a local world.

    python3 benchmarks/world_build.py [--domains 20] [--repeat 5]

Builds a world of N domains drawn from the scenario catalogue (cycling through it, each
domain its own delegated, signed zone), starts its DNS and SMTP servers, and stops it.
Prints the median and worst of each phase over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import statistics
import time

from dane_monitor.world import CATALOGUE, World


def scenarios(n: int) -> list:
    out = []
    for i, sc in zip(range(n), itertools.cycle(CATALOGUE), strict=False):
        out.append(dataclasses.replace(sc, name=f"c{i}-{sc.name}"))
    return out


async def once(n: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    world = World(scenarios(n))
    t1 = time.perf_counter()
    await world.start()
    t2 = time.perf_counter()
    endpoints = sum(1 for _ in world.endpoints())
    await world.stop()
    return t1 - t0, t2 - t1, endpoints


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    builds, starts = [], []
    for _ in range(args.repeat):
        b, s, endpoints = asyncio.run(once(args.domains))
        builds.append(b)
        starts.append(s)
    total = [b + s for b, s in zip(builds, starts, strict=True)]
    print(f"world of {args.domains} domains, {endpoints} SMTP endpoints, {args.repeat} runs")
    for label, xs in (("build", builds), ("start", starts), ("build+start", total)):
        print(
            f"  {label:12} median {statistics.median(xs) * 1000:7.1f} ms   "
            f"max {max(xs) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
