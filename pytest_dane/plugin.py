"""pytest plugin: fixtures that serve the local DNSSEC + STARTTLS world.

The machinery lives in :mod:`dane_monitor.world`; this module only gives it pytest scopes.
Everything is imported lazily, inside the fixtures, so a test run that uses none of them
pays nothing for the plugin being installed.

Fixtures:

- ``dane_world`` (session): the whole scenario catalogue, served from a background thread.
- ``dane_world_factory`` (session): ``factory(scenarios)`` builds and serves another world;
  every world it started is stopped at the end of the session.
- ``dane_trust_anchor`` (session): path of ``dane_world``'s trust anchor (DS lines, zone-file
  format, as Unbound's ``trust-anchor-file``).
- ``dane_pki`` (session): a trustme-based CA with an intermediate, ``dane_pki.issue([...])``.
- ``dane_smtp_server`` (function): ``factory(chains=..., behaviours=..., host=...)`` starts a
  STARTTLS SMTP server; it is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dane_monitor.world import PKI, Scenario, SMTPServer, World
    from dane_monitor.world.background import BackgroundLoop


@pytest.fixture(scope="session")
def _dane_loop() -> Iterator[BackgroundLoop]:
    from dane_monitor.world.background import BackgroundLoop

    with BackgroundLoop() as loop:
        yield loop


@pytest.fixture(scope="session")
def dane_world_factory(_dane_loop: BackgroundLoop) -> Iterator[Callable[..., World]]:
    from dane_monitor.world import World

    started: list[World] = []

    def factory(scenarios: Iterable[Scenario], **kwargs: Any) -> World:
        world = World(scenarios, **kwargs)
        _dane_loop.run(world.start())
        started.append(world)
        return world

    yield factory
    for world in started:
        _dane_loop.run(world.stop())


@pytest.fixture(scope="session")
def dane_world(dane_world_factory: Callable[..., World]) -> World:
    from dane_monitor.world import CATALOGUE

    return dane_world_factory(CATALOGUE)


@pytest.fixture(scope="session")
def dane_trust_anchor(dane_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dane_world.write_trust_anchor(tmp_path_factory.mktemp("dane") / "trust-anchor.ds")


@pytest.fixture(scope="session")
def dane_pki() -> PKI:
    from dane_monitor.world import PKI

    return PKI()


@pytest.fixture
def dane_smtp_server(_dane_loop: BackgroundLoop) -> Iterator[Callable[..., SMTPServer]]:
    from dane_monitor.world import SMTPServer

    started: list[SMTPServer] = []

    def factory(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> SMTPServer:
        server = SMTPServer(host, port, **kwargs)
        _dane_loop.run(server.start())
        started.append(server)
        return server

    yield factory
    for server in started:
        _dane_loop.run(server.stop())
