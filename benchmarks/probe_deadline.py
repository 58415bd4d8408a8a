"""How late past a step's deadline a probe of a hanging server ends.

    python3 benchmarks/probe_deadline.py [--runs 20] [--deadline 0.4]

A server that accepts and never greets (the world's HANG_AFTER_CONNECT) is probed with a
banner deadline of ``--deadline`` seconds and every other deadline far away; prints the
median and worst overshoot (elapsed minus the deadline). tests/test_probe.py asserts only
the order (this step's deadline stops the probe, not a later one); this is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from dane_monitor.probe import Timeouts, probe
from dane_monitor.world.smtp import Behaviour, SMTPServer


async def overshoots(runs: int, deadline: float) -> list[float]:
    timeouts = Timeouts(connect=30, banner=deadline, command=30, tls=30, quit=1, total=120)
    out = []
    async with SMTPServer("127.0.4.1", behaviours={Behaviour.HANG_AFTER_CONNECT}) as server:
        for _ in range(runs):
            result = await probe(server.host, server.port, sni="mail.example", timeouts=timeouts)
            assert result.error == "banner-timeout", result.error
            out.append(result.elapsed - deadline)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=0.4)
    args = parser.parse_args()
    late = asyncio.run(overshoots(args.runs, args.deadline))
    print(
        f"banner deadline {args.deadline:g} s, {args.runs} probes: overshoot median "
        f"{statistics.median(late) * 1000:.1f} ms, worst {max(late) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
