"""Resolver mode never calls a zone with expired signatures valid, whatever the resolver.

Issue 13: in resolver mode a zone whose signatures had expired came out ``valid``. Resolver
mode trusts the AD bit, and a validating resolver may set it on an expired signature: Unbound
forgives clock skew of up to a tenth of the signature's validity, at most
``val-sig-skew-max`` (a day by default), so a signature that expired less than that ago is
secure to Unbound and expired to every sender whose validator forgives less (ours, BIND's).
The world's expired signatures lay exactly one day in the past, on the edge of Unbound's
allowance. The checker now holds the RRSIGs that come back with DO (and those of the DS and
DNSKEY chain, which it reads for the expiry watch anyway) against its own clock: AD over a
signature that has expired is ``bogus`` with ``signature-expired``, as in local mode.

The resolver here is the worst case: it sets AD on every answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator

import dns.flags
import dns.message
import pytest

from dane_monitor.check import Checker, Options
from dane_monitor.lookup import make_validator
from dane_monitor.probe import Timeouts
from dane_monitor.world import World, by_name
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.dnsserver import DNSServer, Responder
from dane_monitor.world.zones import Fault


@contextlib.contextmanager
def lying_resolver(world: World) -> Iterator[tuple[str, int]]:
    with BackgroundLoop(name="ad-liar") as loop:
        server = DNSServer(responder=SaysADToEverything(world))
        loop.run(server.start())
        try:
            yield server.address
        finally:
            loop.run(server.stop())


class SaysADToEverything:
    """A resolver that vouches for every answer of the world (AD set), as a validating
    resolver with a generous clock-skew allowance does for recently expired signatures."""

    def __init__(self, world: World) -> None:
        self.inner = Responder(world.signed)

    def handle_wire(self, wire: bytes, *, udp: bool = True) -> bytes | None:
        out = self.inner.handle_wire(wire, udp=udp)
        if out is None:
            return None
        msg = dns.message.from_wire(out)
        msg.flags |= dns.flags.AD
        msg.flags &= ~dns.flags.AA
        return msg.to_wire()


@pytest.fixture(scope="module")
def liar(dane_world: World) -> Iterator[tuple[str, int]]:
    with lying_resolver(dane_world) as address:
        yield address


def check(dane_world: World, resolver: tuple[str, int], anchor: str, scenario: str):
    step = Timeouts(connect=5, banner=5, command=5, tls=5, quit=2, total=20)
    options = Options(connect_port=dane_world.smtp_port, timeouts=step)
    host, port = resolver
    validator = make_validator(f"{host}:{port}", trust_anchor=anchor, mode="resolver")
    return asyncio.run(Checker(validator, options).check_domain(dane_world.domains[scenario].name))


def test_ad_over_expired_signatures_is_bogus_not_valid(dane_world: World, liar, tmp_path):
    anchor = str(dane_world.write_trust_anchor(tmp_path / "anchor.ds"))
    result = check(dane_world, liar, anchor, "bogus-expired")
    assert result.verdict == "bogus", result.verdict
    assert result.mx_dns is not None
    assert (result.mx_dns.status, result.mx_dns.reason) == ("bogus", "signature-expired")
    assert "dnssec-bogus" in {f.code for f in result.all_findings()}


def test_the_same_resolver_still_makes_a_good_zone_valid(dane_world: World, liar, tmp_path):
    anchor = str(dane_world.write_trust_anchor(tmp_path / "anchor.ds"))
    assert check(dane_world, liar, anchor, "good-ee").verdict == "valid"


def test_ad_over_not_yet_valid_signatures_is_bogus_not_valid(tmp_path):
    """The other side of the skew allowance: signatures whose inception lies ahead."""
    early = dataclasses.replace(
        by_name("bogus-expired"),
        name="bogus-not-yet-valid",
        faults=((Fault.NOT_YET_VALID_RRSIG, None, None),),
    )
    world = World([early], smtp_network="127.0.13.0/24")
    anchor = str(world.write_trust_anchor(tmp_path / "anchor.ds"))
    with world.running(), lying_resolver(world) as resolver:
        result = check(world, resolver, anchor, "bogus-not-yet-valid")
    assert result.verdict == "bogus", result.verdict
    assert result.mx_dns is not None
    assert (result.mx_dns.status, result.mx_dns.reason) == ("bogus", "signature-not-yet-valid")
