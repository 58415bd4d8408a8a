"""One Checker serves checks from several event loops (issue 12): `asyncio.run` twice with
the same checker (benchmarks/check.py's rounds, an exporter's restarts, a pytest fixture per
test). An asyncio primitive bound to the first loop would make the second round raise "is
bound to a different event loop". (Loops side by side in threads are not supported: the
validator's caches and in-flight lookups are shared without locks.)"""

from __future__ import annotations

import asyncio

from dane_monitor.check import Checker, Options
from dane_monitor.lookup import make_validator
from dane_monitor.probe import Timeouts
from dane_monitor.world import World


def checker(world: World, anchor, concurrency: int = 1) -> Checker:
    host, port = world.dns_address
    validator = make_validator(f"{host}:{port}", trust_anchor=str(anchor))
    step = Timeouts(connect=5, banner=5, command=5, tls=5, quit=2, total=20)
    # concurrency 1: the probe semaphore is contended, so it binds to its loop.
    options = Options(connect_port=world.smtp_port, timeouts=step, concurrency=concurrency)
    return Checker(validator, options)


def test_one_checker_in_consecutive_event_loops(dane_world: World, tmp_path):
    c = checker(dane_world, dane_world.write_trust_anchor(tmp_path / "ta.ds"))
    names = [dane_world.domains[n].name for n in ("good-ee", "two-mx-one-broken", "good-ta")]
    for _ in range(3):

        async def round_() -> list[str]:
            done = await asyncio.gather(*(c.check_domain(n) for n in names))
            return [r.verdict.value for r in done]

        assert asyncio.run(round_()) == ["valid", "failed", "valid"]
