"""When a long-lived checker looks for the other key type again (issue 15).

A server may hold an ECDSA and an RSA certificate; senders get either. A monitor with
``recheck_other_key_type=N`` makes the second (other-key-type) handshake on the first check
of an endpoint, when the leaf or the TLSA records changed, and at least every Nth check;
one-shot checks (and every checker made without the option) make it on every check.

Each test checks a domain of the session's world (its DNS, validated from its anchor) whose
MX address is served, on a port of the test's own, by an SMTP server the test controls: it
starts with an ECDSA chain and later gains an RSA one. What users see is the verdict and
the endpoints reported, and the connections the server receives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives import serialization

from dane_monitor import settings
from dane_monitor import tlsa as T
from dane_monitor.check import Checker
from dane_monitor.lookup.answer import Answer
from dane_monitor.report import DomainResult
from dane_monitor.world import World
from dane_monitor.world.pki import Chain
from dane_monitor.world.smtp import SMTPServer

N = 3


class Served:
    """The test's SMTP server for one world address; ``serve()`` swaps its chains (stop, then
    start again on the same address and port)."""

    def __init__(self, address: str, chains: list[Chain]) -> None:
        self.server = SMTPServer(address, chains=chains)
        self.connections = 0  # over every server started here

    async def serve(self, chains: list[Chain]) -> None:
        old = self.server
        await old.stop()
        self.connections += old.connections
        self.server = SMTPServer(old.host, old.port, chains=chains)
        await self.server.start()

    @property
    def total_connections(self) -> int:
        return self.connections + self.server.connections


@asynccontextmanager
async def served(address: str, chains: list[Chain]) -> AsyncIterator[Served]:
    s = Served(address, chains)
    await s.server.start()
    try:
        yield s
    finally:
        await s.server.stop()


def checker_for(world: World, anchor: Any, port: int, **kw: Any) -> Checker:
    host, dns_port = world.dns_address
    return settings.make_checker(
        resolver=f"{host}:{dns_port}",
        trust_anchor=anchor,
        connect_port=port,
        step_timeout=5,
        **kw,
    )


def der(chain: Chain) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in chain.certs]


def key_types(result: DomainResult) -> list[str | None]:
    return [ep.key_type for h in result.hosts for ep in h.endpoints]


def the_host(world: World, scenario: str) -> tuple[str, str, Chain]:
    """The scenario's MX host name, its address, and the ECDSA chain the world serves there."""
    host = world.domains[scenario].hosts[0]
    endpoint = host.endpoints[0]
    return host.name.rstrip("."), endpoint.address, endpoint.chains[0]


async def test_a_server_that_gains_an_rsa_certificate_is_noticed_within_n_checks(
    dane_world: World, dane_trust_anchor
) -> None:
    name, address, ecdsa = the_host(dane_world, "good-ee")
    rsa = dane_world.pki("rsa").issue([name])  # no TLSA record matches it
    domain = dane_world.domains["good-ee"].name
    async with served(address, [ecdsa]) as s:
        checker = checker_for(dane_world, dane_trust_anchor, s.server.port,
                              recheck_other_key_type=N)  # fmt: skip
        first = await checker.check_domain(domain)
        assert (first.verdict.value, key_types(first)) == ("valid", ["ecdsa"])
        assert s.total_connections == 2  # first sight: both key types

        await s.serve([ecdsa, rsa])
        seen = []
        for _ in range(N):
            result = await checker.check_domain(domain)
            seen.append((result.verdict.value, key_types(result)))
    # Noticed at the Nth check after the change at the latest (here exactly then: the
    # checks before it had nothing that could show the change, so they reused the outcome
    # of the first one and connected once each).
    assert seen[-1] == ("failed", ["ecdsa", "rsa"]), seen
    assert seen[:-1] == [("valid", ["ecdsa"])] * (N - 1), seen
    assert s.total_connections == 2 + (N - 1) + 2
    assert "RSA" in result.headline, result.headline


async def test_a_dual_certificate_server_keeps_both_endpoints_between_second_handshakes(
    dane_world: World, dane_trust_anchor
) -> None:
    name, address, ecdsa = the_host(dane_world, "good-ee")
    rsa = dane_world.pki("rsa").issue([name])
    domain = dane_world.domains["good-ee"].name
    async with served(address, [ecdsa, rsa]) as s:
        checker = checker_for(dane_world, dane_trust_anchor, s.server.port,
                              recheck_other_key_type=N, transcripts=False)  # fmt: skip
        results = [await checker.check_domain(domain) for _ in range(2 * N)]
    # The RSA endpoint and its verdict are reported on every check, not only on those that
    # made the second handshake (no flapping metrics); its chain is judged each time.
    for result in results:
        assert (result.verdict.value, key_types(result)) == ("failed", ["ecdsa", "rsa"])
        rsa_ep = result.hosts[0].endpoints[1]
        assert rsa_ep.authenticated is False and rsa_ep.chain_der == der(rsa)
    # Second handshakes on checks 1 and N+1 only.
    assert s.total_connections == 2 * N + 2


async def test_a_renewed_leaf_makes_the_next_check_look_for_the_other_key_type(
    dane_world: World, dane_trust_anchor
) -> None:
    # good-ta: a DANE-TA record for the world's ECDSA intermediate, so a renewed ECDSA leaf
    # from the same CA still authenticates; the RSA chain (another CA) does not.
    name, address, ecdsa = the_host(dane_world, "good-ta")
    renewed = dane_world.pki("ecdsa").issue([name])
    rsa = dane_world.pki("rsa").issue([name])
    domain = dane_world.domains["good-ta"].name
    async with served(address, [ecdsa]) as s:
        checker = checker_for(dane_world, dane_trust_anchor, s.server.port,
                              recheck_other_key_type=100)  # fmt: skip
        first = await checker.check_domain(domain)
        assert (first.verdict.value, key_types(first)) == ("valid", ["ecdsa"])
        unchanged = await checker.check_domain(domain)
        assert key_types(unchanged) == ["ecdsa"] and s.total_connections == 3

        await s.serve([renewed, rsa])  # renewal day: a new leaf, and an RSA one beside it
        result = await checker.check_domain(domain)
    assert (result.verdict.value, key_types(result)) == ("failed", ["ecdsa", "rsa"])
    assert [ep.authenticated for ep in result.hosts[0].endpoints] == [True, False]


class TLSAOverride:
    """The checker's validator, with the records of one TLSA RRset replaced from the moment
    the test says so (as a zone edit would be seen once the old RRset's TTL runs out)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.owner: str | None = None
        self.rdatas: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def lookup(self, name: Any, rdtype: Any, **kw: Any) -> Answer:
        answer = await self.real.lookup(name, rdtype, **kw)
        wanted = self.owner is not None and _same(str(name), self.owner)
        if not wanted or answer.rrset is None:
            return answer
        assert answer.qtype == dns.rdatatype.TLSA
        rrset = dns.rrset.from_text_list(answer.rrset.name, answer.rrset.ttl, "IN", "TLSA",
                                         self.rdatas)  # fmt: skip
        return dataclasses.replace(answer, rrset=rrset)


def _same(a: str, b: str) -> bool:
    return a.rstrip(".").lower() == b.rstrip(".").lower()


async def test_a_tlsa_change_makes_the_next_check_look_for_the_other_key_type(
    dane_world: World, dane_trust_anchor
) -> None:
    # The operator publishes the RSA key's record and deploys the RSA certificate at once:
    # the next check reports the RSA endpoint, authenticated, whatever the count.
    name, address, ecdsa = the_host(dane_world, "good-ee")
    rsa = dane_world.pki("rsa").issue([name])
    host = dane_world.domains["good-ee"].hosts[0]
    domain = dane_world.domains["good-ee"].name
    async with served(address, [ecdsa]) as s:
        checker = checker_for(dane_world, dane_trust_anchor, s.server.port,
                              recheck_other_key_type=100)  # fmt: skip
        override = TLSAOverride(checker.validator)
        checker.validator = override  # type: ignore[assignment]  # a test double around it
        first = await checker.check_domain(domain)
        assert (first.verdict.value, key_types(first)) == ("valid", ["ecdsa"])

        await s.serve([ecdsa, rsa])
        override.owner = host.tlsa_name
        override.rdatas = [*host.tlsa_rdatas, T.rdata_text(rsa.leaf, 3, 1, 1)]
        result = await checker.check_domain(domain)
    assert (result.verdict.value, key_types(result)) == ("valid", ["ecdsa", "rsa"])
    assert all(ep.authenticated for ep in result.hosts[0].endpoints)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda w, a, p: checker_for(w, a, p), id="make_checker-default"),
        pytest.param(lambda w, a, p: checker_for(w, a, p, recheck_other_key_type=1), id="N=1"),
    ],
)
async def test_one_shot_checks_make_the_second_handshake_every_time(
    dane_world: World, dane_trust_anchor, make: Callable[..., Checker]
) -> None:
    # What `dane-monitor check`, preflight, the pytest plugin and any caller that does not
    # ask for less get: both key types on every check.
    _, address, ecdsa = the_host(dane_world, "good-ee")
    domain = dane_world.domains["good-ee"].name
    async with served(address, [ecdsa]) as s:
        checker = make(dane_world, dane_trust_anchor, s.server.port)
        for _ in range(3):
            result = await checker.check_domain(domain)
            assert result.hosts[0].endpoints[0].verdict.value == "valid"
        assert s.total_connections == 6


def test_recheck_other_key_type_must_be_a_positive_whole_number(
    dane_world: World, dane_trust_anchor
) -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="recheck_other_key_type"):
            checker_for(dane_world, dane_trust_anchor, 25, recheck_other_key_type=bad)
