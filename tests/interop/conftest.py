"""Fixtures of the interop suite: the catalogue world served by real Postfix instances,
resolved through a real validating Unbound on port 53, and probed by posttls-finger.

The suite needs root (mount namespaces, port 53) and Postfix, Unbound and util-linux's
``unshare``. Without them its tests are skipped, unless DANE_REQUIRE_TOOLS=1 (as CI sets
it), when they fail instead.

Two stacks, one per value of the ``stack`` fixture's parameter:

- ``postfix``: every MX endpoint of the world is a Postfix instance (its own config
  directory, on the world's address and port, with the world's chains) in place of the
  world's own asyncio SMTP server;
- ``world``: the world's own SMTP servers (the reference the rest of the suite uses).

Both resolve through an Unbound validating from the world's anchor. Each xdist worker
builds its own stacks, on its own loopback addresses (port 53 cannot be shared).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mta import POSTFIX_BEHAVIOURS, FingerRunner, Postfix, missing_tools

from dane_monitor.world import CATALOGUE, Scenario, World
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.unbound import Unbound, start_on_port_53

REQUIRE = os.environ.get("DANE_REQUIRE_TOOLS") == "1"


def postfix_can_serve(sc: Scenario) -> bool:
    return all(s.behaviours <= POSTFIX_BEHAVIOURS for h in sc.hosts for s in h.servers)


#: Every catalogue scenario whose servers Postfix can stand in for (all but the hostile
#: servers: hang, huge-line, close-after-ehlo, tls-failure).
SCENARIOS = tuple(sc for sc in CATALOGUE if postfix_can_serve(sc))


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the interop suite needs root (mount namespaces, port 53)"
    missing = missing_tools()
    if missing:
        return f"missing for the interop suite: {', '.join(missing)}"
    return None


@pytest.fixture(scope="session")
def interop_ready() -> None:
    reason = _unavailable()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def start_unbound(world: World) -> Unbound:
    """An Unbound for ``world`` on port 53 of the first free 127.0.153.x: xdist workers and
    concurrent runs each need their own address (resolv.conf cannot name a port)."""
    return start_on_port_53(lambda address: world.unbound(host=address, port=53))


@dataclass
class Stack:
    kind: str  # "postfix" | "world"
    world: World
    loop: BackgroundLoop
    unbound: Unbound
    finger: FingerRunner
    anchor: Path
    postfix: dict[str, Postfix] = field(default_factory=dict)  # by endpoint address

    @property
    def port(self) -> int:
        assert self.world.smtp_port is not None
        return self.world.smtp_port

    def check_args(self, mode: str) -> list[str]:
        """``dane-monitor check`` options for ``mode`` (local | resolver) against this stack."""
        common = ["--connect-port", str(self.port), "--timeout", "5"]
        if mode == "local":
            host, port = self.world.dns_address
            return ["--resolver", f"{host}:{port}", "--trust-anchor", str(self.anchor), *common]
        host, port = self.unbound.address
        # the anchor too: a SERVFAIL is re-asked with CD and validated in-process from it
        return [
            "--resolver", f"{host}:{port}", "--validation", "resolver",
            "--trust-anchor", str(self.anchor), *common,
        ]  # fmt: skip


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    from dane_monitor.cli import main

    capsys.readouterr()
    code = main(["check", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="session", params=["postfix", "world"])
def stack(
    request: pytest.FixtureRequest, interop_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    kind = request.param
    world = World(SCENARIOS, tlsa_on_smtp_port=True, smtp_network="127.0.3.0/24")
    anchor = world.write_trust_anchor(tmp_path_factory.mktemp(f"interop-{kind}") / "anchor.ds")
    with BackgroundLoop(name=f"interop-{kind}") as loop:
        loop.run(world.start())
        postfix: dict[str, Postfix] = {}
        unbound = finger = None
        try:
            if kind == "postfix":
                for _, host, ep in world.endpoints():
                    assert ep.server is not None
                    port = ep.server.port
                    loop.run(ep.server.stop())  # Postfix takes over its address and port
                    ep.server = None
                    pf = Postfix(ep.address, port, ep.chains, host.name, ep.behaviours)
                    postfix[ep.address] = pf
                    pf.launch()
                for pf in postfix.values():
                    pf.wait_ready()
            unbound = start_unbound(world)
            finger = FingerRunner(unbound.host)
            yield Stack(kind, world, loop, unbound, finger, anchor, postfix)
        finally:
            if finger is not None:
                finger.close()
            if unbound is not None:
                unbound.stop()
            for pf in postfix.values():
                pf.terminate()
            for pf in postfix.values():
                pf.stop()
            loop.run(world.stop())
