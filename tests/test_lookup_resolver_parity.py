"""Resolver mode reaches local mode's verdicts, reasons and expiry watch, behind a real Unbound.

Beyond the catalogue (tests/test_lookup_resolver.py): every fault the world can put in a
zone, signature expiry that comes from the chain above the answer rather than from the
answer itself, and ``healthy()``, which tells "the domain's servers fail" from "our resolver
is broken" when a lookup is indeterminate.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest
from dnsutil import served

from dane_monitor.lookup.anchors import TrustAnchors, parse
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import ResolverValidator, Validator
from dane_monitor.world.dnsserver import DNSServer
from dane_monitor.world.unbound import Unbound
from dane_monitor.world.zones import DAY, NSEC3, Fault, Hierarchy, SignedHierarchy

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")
TLSA = "3 1 1 " + "0f" * 32

# (zone label, fault, name in the zone or None for the whole zone, rdtype, NSEC3 zone?)
FAULTS = (
    ("not-yet-valid", Fault.NOT_YET_VALID_RRSIG, None, None, False),
    ("missing-rrsig", Fault.MISSING_RRSIG, "_25._tcp.mail", "TLSA", False),
    ("expired-tlsa", Fault.EXPIRED_RRSIG, "_25._tcp.mail", "TLSA", False),
    ("bad-dnskey-sig", Fault.BAD_SIGNATURE, "@", "DNSKEY", False),
    ("missing-denial", Fault.MISSING_DENIAL, "_25._tcp.mail", None, False),
    ("wrong-denial", Fault.WRONG_DENIAL, "_25._tcp.mail", None, False),
    ("wrong-denial3", Fault.WRONG_DENIAL, "_25._tcp.mail", None, True),
    ("servfail", Fault.SERVFAIL, "_25._tcp.mail", None, False),
    ("unsigned", Fault.UNSIGNED_DELEGATION, None, None, False),
)


def _faulty() -> tuple[SignedHierarchy, list[str]]:
    h = Hierarchy(".")
    h.zone("example.")
    zones = []
    for label, fault, name, rdtype, nsec3 in FAULTS:
        z = h.zone(f"{label}.example.", **({"denial": NSEC3()} if nsec3 else {}))
        z.add("mail", "A", "127.0.0.25")
        if fault not in (Fault.MISSING_DENIAL, Fault.WRONG_DENIAL):
            z.add("_25._tcp.mail", "TLSA", TLSA)
        z.fault(fault, name, rdtype)
        zones.append(z.origin.to_text())
    return h.sign(), zones


@pytest.fixture(scope="module")
def faulty() -> Iterator[tuple[DNSServer, SignedHierarchy, Unbound, list[str]]]:
    signed, zones = _faulty()
    with served(signed) as server:
        names = [z.to_text() for z in signed.zones]
        with Unbound(("127.0.0.1", server.port), signed.trust_anchor(), zones=names) as u:
            yield server, signed, u, zones


def both(server: DNSServer, signed: SignedHierarchy, unbound: Unbound, questions):
    async def run() -> list[tuple[str, str, Answer, Answer]]:
        anchors = parse(signed.trust_anchor())
        local = Validator(StubClient(Server("127.0.0.1", server.port), timeout=2), anchors)
        remote = ResolverValidator(StubClient(Server(*unbound.address), timeout=5), anchors)
        return [
            (name, rdtype, await local.lookup(name, rdtype), await remote.lookup(name, rdtype))
            for name, rdtype in questions
        ]

    return asyncio.run(run())


def test_every_fault_gets_the_same_verdict_and_reason_in_both_modes(faulty):
    server, signed, unbound, zones = faulty
    asks = (("mail.", "A"), ("_25._tcp.mail.", "TLSA"), ("mail.", "TXT"), ("nx.", "A"))
    questions = [(f"{prefix}{zone}", rdtype) for zone in zones for prefix, rdtype in asks]
    rows = both(server, signed, unbound, questions)
    for name, rdtype, ours, theirs in rows:
        seen = (theirs.status, theirs.kind, theirs.expiration, theirs.signer)
        assert seen == (ours.status, ours.kind, ours.expiration, ours.signer), (name, rdtype)
        if ours.status in (Status.BOGUS, Status.INDETERMINATE):
            assert theirs.reason == ours.reason, (name, rdtype, str(theirs))
    tlsa = {name.split(".")[3]: theirs for name, rdtype, _, theirs in rows if rdtype == "TLSA"}
    assert {label: (a.status.value, a.reason) for label, a in tlsa.items()} == {
        "not-yet-valid": ("bogus", "signature-not-yet-valid"),
        "missing-rrsig": ("bogus", "missing-rrsig"),
        "expired-tlsa": ("bogus", "signature-expired"),
        "bad-dnskey-sig": ("bogus", "bad-signature"),
        "missing-denial": ("bogus", "missing-denial"),
        "wrong-denial": ("bogus", "bad-denial"),
        "wrong-denial3": ("bogus", "missing-denial"),
        # The domain's servers fail, with CD too: indeterminate, as in local mode.
        "servfail": ("indeterminate", "servfail"),
        "unsigned": ("insecure", "resolver-no-ad"),
    }
    assert "with CD too" in tlsa["servfail"].detail


def test_the_expiry_watch_reaches_the_signatures_above_the_answer():
    """The TLD re-signs every 3 days, the domain every 14: the TLSA record's own RRSIG
    expires late, and the earliest expiry on the path is the TLD's (its DNSKEY RRSIG and
    its RRSIG over the domain's DS), which resolver mode must ask for, as local mode does.
    Then the anchor's DNSKEY RRSIG (2 days) comes first once the root re-signs sooner."""
    for root_days, expected_zone in ((10, "example."), (2, ".")):
        h = Hierarchy(".", sig_lifetime=root_days * DAY)
        h.zone("example.", sig_lifetime=3 * DAY)
        z = h.zone("dom.example.", sig_lifetime=14 * DAY)
        z.add("_25._tcp.mail", "TLSA", TLSA)
        z.add("mail", "A", "127.0.0.25")
        signed = h.sign()
        with served(signed) as server:
            zones = [z.to_text() for z in signed.zones]
            with Unbound(("127.0.0.1", server.port), signed.trust_anchor(), zones=zones) as u:
                questions = [
                    ("_25._tcp.mail.dom.example.", "TLSA"),
                    ("mail.dom.example.", "TXT"),  # NODATA
                    ("nx.dom.example.", "A"),  # NXDOMAIN
                ]
                rows = both(server, signed, u, questions)
        expected = signed.zone(expected_zone).earliest_expiration
        assert expected < signed.zone("dom.example.").earliest_expiration
        for name, rdtype, ours, theirs in rows:
            assert theirs.secure, (name, str(theirs))
            assert theirs.expiration == ours.expiration == expected, (root_days, name, rdtype)
            assert str(theirs.signer) == str(ours.signer) == "dom.example."


# -- healthy() -----------------------------------------------------------------------------


def _validators(
    server: Server, anchors: TrustAnchors, timeout: float = 2.0
) -> tuple[Validator, ResolverValidator]:
    return (
        Validator(StubClient(server, timeout=timeout, tries=1), anchors),
        ResolverValidator(StubClient(server, timeout=timeout, tries=1), anchors),
    )


def test_healthy_when_the_resolver_validates_the_anchor_and_not_after_it_stops(faulty):
    """A working Unbound is healthy in both modes; the verdict is reused for a while, and
    asked afresh (max_age=0) once Unbound is gone it is not."""
    server, signed, _, _ = faulty
    anchors = parse(signed.trust_anchor())
    zones = [z.to_text() for z in signed.zones]
    with Unbound(("127.0.0.1", server.port), signed.trust_anchor(), zones=zones) as u:
        local, remote = _validators(Server(*u.address), anchors)

        async def ask() -> tuple[bool, bool]:
            return tuple(await asyncio.gather(local.healthy(), remote.healthy()))  # type: ignore[return-value]

        assert asyncio.run(ask()) == (True, True)
    # Unbound has stopped: the cached verdict stands, a fresh probe fails in both modes.
    assert asyncio.run(ask()) == (True, True)

    async def fresh() -> tuple[bool, bool]:
        probes = local.healthy(max_age=0), remote.healthy(max_age=0)
        return tuple(await asyncio.gather(*probes))  # type: ignore[return-value]

    assert asyncio.run(fresh()) == (False, False)


def test_not_healthy_when_the_resolver_cannot_validate_its_anchor(faulty):
    """An Unbound whose own trust anchor is wrong SERVFAILs every name. A lookup in
    resolver mode is indeterminate (servfail), though with CD the data validates here, and
    healthy() is False: our resolver is broken, which is no fault of the domain."""
    server, signed, _, _ = faulty
    anchors = parse(signed.trust_anchor())
    zones = [z.to_text() for z in signed.zones]
    foreign = Hierarchy(".").trust_anchor()
    with Unbound(("127.0.0.1", server.port), foreign, zones=zones) as broken:
        local, remote = _validators(Server(*broken.address), anchors)

        async def ask() -> tuple[Answer, bool, bool]:
            answer = await remote.lookup("mail.missing-rrsig.example.", "A")
            return answer, await remote.healthy(), await local.healthy()

        answer, remote_ok, local_ok = asyncio.run(ask())
    assert (answer.status, answer.kind, answer.reason) == (
        Status.INDETERMINATE,
        Kind.ERROR,
        "servfail",
    )
    assert "validates here as secure" in answer.detail
    assert remote_ok is False
    # Local mode asks with CD and validates itself: this resolver still serves it well.
    assert local_ok is True


def test_not_healthy_when_the_resolver_servfails_everything():
    from test_lookup_stub import FakeDNS

    def servfail(q: dns.message.Message, raw: bytes) -> list[bytes]:
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.SERVFAIL)
        return [r.to_wire()]

    async def run() -> tuple[bool, bool]:
        async with FakeDNS(servfail, servfail) as fake:
            local, remote = _validators(fake.server, TrustAnchors.root())
            return await local.healthy(), await remote.healthy()

    assert asyncio.run(run()) == (False, False)


def test_not_healthy_when_nothing_listens():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port is closed again: queries get ICMP port unreachable (or time out).
    local, remote = _validators(Server("127.0.0.1", port), TrustAnchors.root(), timeout=1.0)

    async def run() -> tuple[bool, bool]:
        return tuple(await asyncio.gather(local.healthy(), remote.healthy()))  # type: ignore[return-value]

    assert asyncio.run(run()) == (False, False)


def test_anchors_that_disagree_with_the_resolver_are_our_fault_not_the_domain(faulty):
    """Resolver mode without the resolver's anchor (here: the IANA root's, for a resolver
    anchored at the world's root): a bogus TLSA RRset cannot be told from our own
    misconfiguration, so it is indeterminate, not bogus, and healthy() is False (UNKNOWN)."""
    _, _, unbound, _ = faulty
    remote = ResolverValidator(StubClient(Server(*unbound.address), timeout=2), None)

    async def run() -> tuple[Answer, Answer, bool]:
        bad = await remote.lookup("_25._tcp.mail.expired-tlsa.example.", "TLSA")
        good = await remote.lookup("mail.expired-tlsa.example.", "A")
        return bad, good, await remote.healthy()

    bad, good, healthy = asyncio.run(run())
    assert (bad.status, bad.reason) == (Status.INDETERMINATE, "servfail"), str(bad)
    assert "--trust-anchor" in bad.detail
    assert good.secure  # the AD bit still decides what the resolver validates
    assert healthy is False
