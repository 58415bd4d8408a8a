"""Our validator and BIND's delv look at the same world with the same anchor and must agree.

The world and the table of expected verdicts are those of ``test_world_delv.py`` (which
proves the world with delv alone); here every row is asked of both, and the two answers,
mapped onto one vocabulary, must be equal — name by name. For bogus rows we also check that
our machine-readable reason says what delv's message says.
"""

from __future__ import annotations

import asyncio
import shutil

import dns.rdatatype
import pytest
from test_world_delv import (
    BOGUS,
    CASES,
    NODATA,
    NXDOMAIN,
    SERVFAIL,
    UNSIGNED,
    UNSIGNED_NX,
    VALID,
    run_delv,
    verdict,
)
from test_world_delv import world as delv_world  # noqa: F401 - a fixture, used by name

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
pytestmark = [
    pytest.mark.delv,
    pytest.mark.skipif(shutil.which("delv") is None, reason="BIND's delv is not installed"),
]

# The reason we give where delv names the fault (the row's name decides).
REASONS = {
    "_25._tcp.mail.expired.example.": "signature-expired",
    "_25._tcp.mail.notyet.example.": "signature-not-yet-valid",
    "_25._tcp.mail.badsig.example.": "bad-signature",
    "_25._tcp.mail.nosig.example.": "missing-rrsig",
    "mail.expired-zone.example.": "signature-expired",
    "nothere.expired-zone.example.": "signature-expired",
    "mail.badkeysig.example.": "bad-signature",
    "mail.dsmismatch.example.": "no-matching-ds",
    "_25._tcp.mail.dsmismatch.example.": "no-matching-ds",
    "nothere.nodenial.example.": "missing-denial",
    "nothere.nodenial3.example.": "missing-denial",
    "nothere.wrongdenial.example.": "bad-denial",
    "nothere.wrongdenial3.example.": "bad-denial",
    "_25._tcp.mail.servfail.example.": "servfail",
}


# Where we differ from delv on purpose: (name, type) -> (our verdict, the rule that decides).
DISAGREE = {
    ("nothere.optout.example.", "A"): (
        UNSIGNED_NX,
        "RFC 5155 §9.2: the NSEC3 covering the next closer name is opt-out, so the span may "
        "hide an unsigned delegation above the name and the NXDOMAIN is not proven; BIND 9.18 "
        "calls it secure, Unbound (test_unbound_sides_with_us_where_delv_differs) insecure",
    ),
    ("unsigned.optout.example.", "DS"): (
        "unsigned-nodata",
        "RFC 5155 §8.6/§9.2: no NSEC3 matches the name, only an opt-out span covers it, so the "
        "absence of a DS is not proven securely (the child is insecure either way); BIND 9.18 "
        "calls the NODATA secure, Unbound insecure",
    ),
}


def ours(answer: Answer) -> str:
    if answer.status == Status.SECURE:
        return {Kind.POSITIVE: VALID, Kind.NXDOMAIN: NXDOMAIN, Kind.NODATA: NODATA}[answer.kind]
    if answer.status == Status.INSECURE:
        return {Kind.POSITIVE: UNSIGNED, Kind.NXDOMAIN: UNSIGNED_NX}.get(
            answer.kind, "unsigned-nodata"
        )
    if answer.status == Status.BOGUS:
        return BOGUS
    return SERVFAIL if answer.reason == "servfail" else f"indeterminate:{answer.reason}"


@pytest.fixture(scope="module")
def world(delv_world):  # noqa: F811 - pytest fixture injection
    """test_world_delv's served world, plus its anchor in our format."""
    server, anchor = delv_world
    return server, anchor, parse(server.signed.trust_anchor())


def lookup(server, anchors, name: str, rdtype: str) -> Answer:
    async def run() -> Answer:
        client = StubClient(Server("127.0.0.1", server.port), timeout=2, tries=2)
        return await Validator(client, anchors).lookup(name, rdtype)

    return asyncio.run(run())


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_validator_agrees_with_delv(world, case):
    name, rdtype, expected, *_ = case
    server, bind_anchor, anchors = world
    delv = verdict(run_delv(server.port, bind_anchor, name, rdtype))
    answer = lookup(server, anchors, name, rdtype)
    mine = DISAGREE.get((name, rdtype), (expected,))[0]
    assert (ours(answer), delv) == (mine, expected), str(answer)
    if name in REASONS and expected in (BOGUS, SERVFAIL):
        assert answer.reason == REASONS[name], str(answer)
    if expected in (VALID, UNSIGNED):
        assert answer.rrset is not None
        assert answer.rrset.rdtype == dns.rdatatype.from_text(rdtype)


def test_secure_answers_carry_the_earliest_expiration_and_ttl(world):
    server, _, anchors = world
    answer = lookup(server, anchors, "_25._tcp.mail.good-nsec.example.", "TLSA")
    assert answer.secure
    assert answer.expiration is not None
    assert answer.ttl and answer.ttl > 0


def test_a_foreign_anchor_makes_everything_bogus(world):
    from dane_monitor.world.zones import Hierarchy

    server, _, _ = world
    other = parse(Hierarchy(".").trust_anchor())
    answer = lookup(server, other, "mail.good-nsec.example.", "A")
    assert answer.status == Status.BOGUS
    assert answer.reason == "no-matching-ds"


@pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")
def test_unbound_sides_with_us_where_delv_differs(world):
    """The disagreements with delv are decided by the RFC; Unbound reads it as we do."""
    from dane_monitor.lookup.validator import ResolverValidator
    from dane_monitor.world.unbound import Unbound

    server = world[0]
    zones = [z.to_text() for z in server.signed.zones]
    with Unbound(("127.0.0.1", server.port), server.signed.trust_anchor(), zones=zones) as u:
        for (name, rdtype), (verdict_, _why) in DISAGREE.items():

            async def ask(name=name, rdtype=rdtype) -> Answer:
                client = StubClient(Server(*u.address), timeout=5, tries=2)
                return await ResolverValidator(client).lookup(name, rdtype)

            theirs = asyncio.run(ask())
            assert ours(theirs) == verdict_, str(theirs)
