"""A throwaway DNSSEC world for one mail domain, declared in a line (fixture ``dane_scenario``).

    sc = dane_scenario(hosts=["mx1", "mx2"], tlsa=[Record(2, 1, 1, "intermediate")])
    result = sc.check()                      # the DomainResult of sc.name
    sc.hosts[0].name, sc.hosts[0].endpoints[0].address, sc.smtp_port
    sc.pytest_args()                         # --dane-* options for a pytest run against it
    sc.dns_args()                            # --resolver/--trust-anchor for dane-monitor

The world is the one ``dane-monitor world`` serves (:mod:`dane_monitor.world`): a private
signed root and ``example.`` TLD, the domain delegated from it with a DS, one STARTTLS
server per MX address (127.0.2.x, all on ``smtp_port``), certificates from a throwaway CA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dane_monitor.check import Checker
    from dane_monitor.report import DomainResult
    from dane_monitor.world import Chain, Domain, MXHost, Record, Scenario, World


def build_scenario(
    scenario: Scenario | str | None = None,
    *,
    name: str = "mail",
    hosts: Sequence[Any] = ("mx1",),
    tlsa: Sequence[Any] | None = None,
    certs: Sequence[Any] | None = None,
    summary: str = "declared with dane_scenario",
    **fields: Any,
) -> Scenario:
    """A :class:`~dane_monitor.world.Scenario` from a few words.

    :param scenario: a ready Scenario, or the name of one in the catalogue (``"good-ee"``);
        the other arguments are then ignored.
    :param hosts: ``Host`` objects, or MX host names (``"mx1"``, relative to the domain) that
        get the ``tlsa`` records and one server presenting ``certs``.
    :param tlsa: for hosts given by name: ``Record`` objects or RDATA text (``"3 1 1 ab…"``);
        default one DANE-EE ``3 1 1`` record for the served key; ``[]`` publishes none.
    :param certs: for hosts given by name: ``Cert`` objects or key types (``"ecdsa"``,
        ``"rsa"``); several make the server present one chain per key type.
    :param fields: any other ``Scenario`` field (``signed``, ``denial``, ``faults``, ``mx``…).
    """
    from dane_monitor.world import Cert, Host, Record, Scenario, Server, by_name
    from dane_monitor.world.pki import check_key_type

    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, str):
        return by_name(scenario)
    records = (Record(),) if tlsa is None else tuple(_record(r, Record) for r in tlsa)
    served = (
        (Cert(),)
        if not certs
        else tuple(Cert(check_key_type(c)) if isinstance(c, str) else c for c in certs)
    )
    built = []
    for i, host in enumerate(hosts):
        if isinstance(host, str):
            servers = (Server(certs=served),)
            host = Host(host, servers=servers, tlsa=records, preference=10 * (i + 1))
        built.append(host)
    return Scenario(name, summary, hosts=tuple(built), **fields)


def _record(value: Any, record_type: type[Record]) -> Record:
    if isinstance(value, str):
        return record_type(rdata=value)
    return value


@dataclass
class DaneScenario:
    """One started world holding one mail domain, and what is needed to check it."""

    world: World
    domain: Domain
    trust_anchor: Path
    _run: Callable[..., Any]

    @property
    def name(self) -> str:
        """The mail domain, fully qualified (``mail.example.``)."""
        return self.domain.name

    @property
    def hosts(self) -> list[MXHost]:
        """The MX hosts: ``.name``, ``.tlsa_name``, ``.tlsa_rdatas``, ``.endpoints`` (each
        with ``.address`` and ``.chains``)."""
        return self.domain.hosts

    @property
    def resolver(self) -> str:
        host, port = self.world.dns_address
        return f"{host}:{port}"

    @property
    def smtp_port(self) -> int:
        assert self.world.smtp_port is not None
        return self.world.smtp_port

    def checker(self) -> Checker:
        """A new checker bound to this world (for ``await checker.check_domain(sc.name)`` in
        an async test)."""
        return self._config().make_checker()

    def _config(self):
        from pytest_dane.config import DaneConfig

        return DaneConfig(
            resolver=self.resolver,
            trust_anchor=self.trust_anchor,
            connect_port=self.smtp_port,
            timeout=5.0,
        )

    def check(self) -> DomainResult:
        """Check the mail domain as ``dane-monitor check`` would."""
        checker = self.checker()
        return self._run(checker.check_domain(self.name))

    def check_host(self, host: int | str = 0) -> DomainResult:
        """Check one MX host on its own (``--mx``): by index or by name (``"mx1"``)."""
        checker = self.checker()
        return self._run(checker.check_host(self.host(host).name))

    def host(self, host: int | str = 0) -> MXHost:
        if isinstance(host, int):
            return self.hosts[host]
        want = host.rstrip(".")
        for h in self.hosts:
            if h.name.rstrip(".") == want or h.name.startswith(want + "."):
                return h
        raise KeyError(f"{self.name} has no MX host {host!r}")

    def issue(self, host: int | str = 0, key_type: str = "ecdsa") -> Chain:
        """A new certificate chain for an MX host from the same CA as the served one (what a
        renewal brings): ``chain.write(directory)`` gives the PEM files."""
        return self.world.pki(key_type).issue([self.host(host).name])

    def dns_args(self) -> list[str]:
        """``--resolver`` and ``--trust-anchor`` for ``dane-monitor`` commands."""
        return ["--resolver", self.resolver, "--trust-anchor", str(self.trust_anchor)]

    def pytest_args(self, *, domain: bool = True) -> list[str]:
        """The ``--dane-*`` options that point a pytest run at this world (the domain, or with
        ``domain=False`` each MX host)."""
        if domain:
            targets = ["--dane-domain", self.name]
        else:
            targets = [arg for h in self.hosts for arg in ("--dane-host", h.name)]
        return [
            *targets,
            "--dane-resolver", self.resolver,
            "--dane-trust-anchor", str(self.trust_anchor),
            "--dane-connect-port", str(self.smtp_port),
        ]  # fmt: skip
