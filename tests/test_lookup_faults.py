"""Faults delv cannot be asked about usefully: a name that never answers."""

from __future__ import annotations

import asyncio
import time

from dnsutil import served

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Kind, Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator
from dane_monitor.world.zones import Fault, Hierarchy


def test_a_name_that_never_answers_is_indeterminate_within_the_deadline():
    h = Hierarchy(".")
    h.zone("example.")
    z = h.zone("silent.example.")
    z.add("mail", "A", "127.0.0.25")
    z.add("_25._tcp.mail", "TLSA", "3 1 1 " + "0f" * 32)
    z.fault(Fault.NO_ANSWER, "_25._tcp.mail")
    signed = h.sign()

    async def run(port: int):
        # retries alone would go on for 100 tries of 0.4 s: the 1 s deadline must be what ends it
        v = Validator(StubClient(Server("127.0.0.1", port), timeout=0.4, tries=100), parse(
            signed.trust_anchor()))  # fmt: skip
        started = time.monotonic()
        tlsa = await v.lookup("_25._tcp.mail.silent.example.", "TLSA",
                              deadline=time.monotonic() + 1.0)  # fmt: skip
        took = time.monotonic() - started
        address = await v.lookup("mail.silent.example.", "A")
        return tlsa, took, address

    with served(signed) as server:
        tlsa, took, address = asyncio.run(run(server.port))
    assert (tlsa.status, tlsa.kind) == (Status.INDETERMINATE, Kind.ERROR)
    assert tlsa.reason in ("timeout", "deadline")
    assert 1.0 <= took < 20  # stopped by the deadline, long before the retries run out
    assert address.status == Status.SECURE  # the rest of the zone still answers


def test_a_resolver_without_dnssec_gives_no_verdict_rather_than_bogus():
    """A filtering resolver that answers NXDOMAIN even for the root: the trust anchor's keys
    cannot be had, which says nothing about the domain (so indeterminate, not bogus)."""
    import dns.message
    import dns.rcode
    from test_lookup_stub import FakeDNS

    def nxdomain(q, raw):
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.NXDOMAIN)
        return [r.to_wire()]

    async def run():
        async with FakeDNS(nxdomain) as fake:
            # the fake answers at once; the timeout only has to outlast a loaded machine
            validator = Validator(StubClient(fake.server, timeout=10, tries=1))
            return await validator.lookup("example.de.", "MX")

    answer = asyncio.run(run())
    assert (answer.status, answer.reason) == (Status.INDETERMINATE, "anchor-unavailable")
    assert "resolver-check" in answer.detail
