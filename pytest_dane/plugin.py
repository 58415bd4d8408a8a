"""pytest plugin: DANE checks as test items, fixtures and a local DNSSEC + STARTTLS world.

Documentation: ``docs/pytest.md``. Everything heavy is imported lazily, inside hooks and
fixtures, and only when used: a run that names no ``--dane-host``/``--dane-domain`` target
and uses no fixture pays for the options and nothing else.

Checks as items (:mod:`pytest_dane.items`): with targets configured, the check runs once per
session and every rule at every endpoint becomes an item under the virtual ``dane`` node,
e.g. ``dane::tlsa-match[mx1.example.de|192.0.2.1|25|ecdsa]``.

Fixtures for one's own tests:

- ``dane_config`` (session): the resolved :class:`~pytest_dane.config.DaneConfig`.
- ``dane_checker`` (function): a ``Checker`` with those settings, for async tests
  (``await dane_checker.check_domain("example.de")``).
- ``dane_check`` (function): the same, synchronous: ``dane_check("example.de")`` or
  ``dane_check(host="mx1.example.de")`` returns the ``DomainResult``.
- ``dane_scenario`` (function): ``dane_scenario(hosts=[...], tlsa=[...])`` starts a world
  with one mail domain and returns a :class:`~pytest_dane.scenario.DaneScenario` (its
  names, a checker bound to it, ``check()``); stopped after the test.

The local world (the machinery lives in :mod:`dane_monitor.world`):

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

from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest

from pytest_dane.config import DaneConfig, addoption

if TYPE_CHECKING:
    from dane_monitor.background import BackgroundLoop
    from dane_monitor.check import Checker
    from dane_monitor.report import DomainResult
    from dane_monitor.world import PKI, Scenario, SMTPServer, World
    from pytest_dane.items import TargetResult
    from pytest_dane.scenario import DaneScenario

_CONFIG = pytest.StashKey[DaneConfig]()
_RESULTS = pytest.StashKey["list[TargetResult]"]()


# -- options and the checks as items ----------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dane: a DANE check item of pytest-dane (--dane-host/--dane-domain)"
    )


def dane_config_of(config: pytest.Config) -> DaneConfig:
    """The run's settings, resolved on first use.

    :raises pytest.UsageError: an option value that cannot be used.
    """
    if _CONFIG not in config.stash:
        config.stash[_CONFIG] = DaneConfig.from_pytest(config)
    return config.stash[_CONFIG]


def pytest_sessionstart(session: pytest.Session) -> None:
    dane_config_of(session.config)  # a bad option value stops the run before anything runs


def _results(config: pytest.Config) -> list[TargetResult]:
    """The one check of the run: from the xdist controller when there is one, else made here."""
    if _RESULTS not in config.stash:
        from pytest_dane import items

        workerinput = getattr(config, "workerinput", None) or {}
        if items.WORKERINPUT_KEY in workerinput:
            config.stash[_RESULTS] = items.decode(workerinput[items.WORKERINPUT_KEY])
        else:
            config.stash[_RESULTS] = items.run_checks(dane_config_of(config))
    return config.stash[_RESULTS]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: check once, before the first worker starts, and hand every worker
    the same result, so that all of them collect the same items."""
    if dane_config_of(node.config).targets:
        from pytest_dane import items

        node.workerinput[items.WORKERINPUT_KEY] = items.encode(_results(node.config))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """The ``dane`` node is collected as a child of the session, ahead of the test files.

    Collected there, not added to the item list afterwards, its items are counted as
    collected (the header says "collected 11 items", not "collected 0 items" before running
    eleven), and ``-k``, ``-m``, ``--deselect`` and ``--collect-only`` see them as any other.
    """
    report = yield
    if isinstance(collector, pytest.Session) and report.passed:
        cfg = dane_config_of(collector.config)
        if cfg.targets:
            from pytest_dane.items import DaneCollector

            dane = DaneCollector.from_parent(
                collector,
                name="dane",
                nodeid="dane",
                # Where reports place the items ("SKIPPED [4] dane:1: not checked: …"); no
                # such file.
                path=collector.path / "dane",
                results=_results(collector.config),
                strict=cfg.strict,
                profiles=cfg.profiles,
            )
            report.result.insert(0, dane)
    return report


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    cfg = dane_config_of(config)
    if not cfg.targets:
        return None
    targets = ", ".join(name for _, name in cfg.targets)
    resolver = cfg.resolver or "system resolver"
    anchor = cfg.trust_anchor or "IANA root anchors"
    via = f", connecting to port {cfg.connect_port}" if cfg.connect_port else ""
    return [
        f"dane: {targets} on port {', '.join(map(str, cfg.ports))}{via}",
        f"dane: {cfg.validation} validation via {resolver} from {anchor}; "
        f"timeout {cfg.timeout:g}s; warnings {'fail' if cfg.strict else 'pass'}",
        f"dane: expiry warnings for signatures within {cfg.rrsig_warning_days:g} days (failure "
        f"within {cfg.rrsig_critical_days:g}), certificates within {cfg.cert_warning_days:g}",
    ]


# -- fixtures for one's own tests ---------------------------------------------------------------


@pytest.fixture(scope="session")
def dane_config(request: pytest.FixtureRequest) -> DaneConfig:
    """The resolved ``--dane-*``/``dane_*`` settings."""
    return dane_config_of(request.config)


@pytest.fixture
def dane_checker(dane_config: DaneConfig) -> Checker:
    """A checker bound to the configured resolver, trust anchor, ports and timeouts; new for
    each test, since a checker belongs to the event loop of its test."""
    return dane_config.make_checker()


@pytest.fixture
def dane_check(dane_config: DaneConfig, _dane_loop: BackgroundLoop) -> Callable[..., DomainResult]:
    """``dane_check("example.de")`` or ``dane_check(host="mx1.example.de")``: the check's
    ``DomainResult``, from synchronous code."""
    checker: Checker | None = None

    def check(domain: str | None = None, *, host: str | None = None) -> DomainResult:
        nonlocal checker
        if (domain is None) == (host is None):
            raise TypeError('dane_check("example.de") or dane_check(host="mx1.example.de")')
        if checker is None:
            checker = dane_config.make_checker()
        if host is not None:
            return _dane_loop.run(checker.check_host(host), timeout=None)
        return _dane_loop.run(checker.check_domain(domain), timeout=None)  # type: ignore[arg-type]

    return check


@pytest.fixture
def dane_scenario(
    _dane_loop: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., DaneScenario]]:
    """``dane_scenario(hosts=["mx1"], tlsa=[Record(3, 1, 1, "leaf")])``: a started world with
    one mail domain (see :func:`pytest_dane.scenario.build_scenario` for the arguments); the
    worlds a test started are stopped after it."""
    from dane_monitor.world import World
    from pytest_dane.scenario import DaneScenario, build_scenario

    servers = _Servers(_dane_loop)

    def factory(scenario: Scenario | str | None = None, **kwargs: Any) -> DaneScenario:
        built = build_scenario(scenario, **kwargs)
        world = servers.start(World([built]))
        anchor = world.write_trust_anchor(tmp_path_factory.mktemp("dane") / "trust-anchor.ds")
        return DaneScenario(
            world, world.domains[built.name], anchor, lambda c: _dane_loop.run(c, timeout=None)
        )

    yield factory
    servers.stop_all()


# -- the local world ----------------------------------------------------------------------------


class _Serving(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> Any: ...


_S = TypeVar("_S", bound=_Serving)


class _Servers:
    """What a fixture's factory started on the background loop (worlds, SMTP servers), to
    stop at the fixture's teardown, in the order they were started."""

    def __init__(self, loop: BackgroundLoop) -> None:
        self.loop = loop
        self.started: list[_Serving] = []

    def start(self, server: _S) -> _S:
        self.loop.run(server.start())
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            self.loop.run(server.stop())


@pytest.fixture(scope="session")
def _dane_loop() -> Iterator[BackgroundLoop]:
    from dane_monitor.background import BackgroundLoop

    with BackgroundLoop() as loop:
        yield loop


@pytest.fixture(scope="session")
def dane_world_factory(_dane_loop: BackgroundLoop) -> Iterator[Callable[..., World]]:
    from dane_monitor.world import World

    servers = _Servers(_dane_loop)

    def factory(scenarios: Iterable[Scenario], **kwargs: Any) -> World:
        return servers.start(World(scenarios, **kwargs))

    yield factory
    servers.stop_all()


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

    servers = _Servers(_dane_loop)

    def factory(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> SMTPServer:
        return servers.start(SMTPServer(host, port, **kwargs))

    yield factory
    servers.stop_all()
