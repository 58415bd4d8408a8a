"""Stacks started at the same time never share a resolver (issue 13).

Each xdist worker starts its stacks' Unbound on port 53 of the first free 127.0.153.x. When
two workers found the same address free at once, the loser's Unbound could not bind and
exited, but it was still starting when its readiness probe asked the address, and the
winner answered: the loser's tests then resolved through the winner's Unbound, validating
another world with other keys whose TLSA records sit at another port, and posttls-finger
reported "untrusted issuer" for every DANE endpoint (43 failures in one CI run).
"""

from __future__ import annotations

import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dane_monitor.world import World, by_name
from dane_monitor.world.unbound import Unbound, identity_of, start_on_port_53


def test_unbounds_started_at_once_each_get_their_own_address(interop_ready, tmp_path: Path):
    # Unbound that takes a second to start, as on a loaded machine: every starter finds
    # the same first address free, and all but one lose the race for it
    slow = tmp_path / "slow-unbound"
    unbound = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
    slow.write_text(f'#!/bin/sh\nsleep 1\nexec {unbound} "$@"\n')
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    worlds = [World([by_name("good-ee")], smtp_network="127.0.11.0/24") for _ in range(4)]
    started: list[Unbound] = []
    with worlds[0].running(), worlds[1].running(), worlds[2].running(), worlds[3].running():

        def start(world: World) -> Unbound:
            return start_on_port_53(
                lambda address: world.unbound(host=address, port=53, binary=str(slow)),
                timeout=30,
            )

        try:
            with ThreadPoolExecutor(len(worlds)) as pool:
                started = list(pool.map(start, worlds))
            assert len({u.host for u in started}) == len(worlds), [u.host for u in started]
            for u in started:
                assert u.process is not None and u.process.poll() is None
                assert identity_of(u.host, 53, timeout=5) == u.identity
        finally:
            for u in started:
                u.stop()
