"""Every DNSSEC algorithm the checker must support, validated by us and by delv alike.

RFC 8624's list: RSASHA1 (5), RSASHA1-NSEC3-SHA1 (7), RSASHA256 (8), RSASHA512 (10),
ECDSAP256SHA256 (13), ECDSAP384SHA384 (14), ED25519 (15), ED448 (16). An algorithm or a DS
digest we do not implement makes the zone insecure, not bogus (RFC 4035 §5.2, RFC 6840 §5.2).
"""

from __future__ import annotations

import asyncio
import shutil

import dns.dnssec
import pytest
from dnsutil import served
from test_world_delv import NXDOMAIN, VALID, run_delv, verdict

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Kind, Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator
from dane_monitor.world.zones import NSEC, NSEC3, Hierarchy

Algorithm = dns.dnssec.Algorithm
ALGORITHMS = [
    Algorithm.RSASHA1, Algorithm.RSASHA1NSEC3SHA1, Algorithm.RSASHA256, Algorithm.RSASHA512,
    Algorithm.ECDSAP256SHA256, Algorithm.ECDSAP384SHA384, Algorithm.ED25519, Algorithm.ED448,
]  # fmt: skip
TLSA = "3 1 1 " + "0f" * 32


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    h = Hierarchy(".")
    h.zone("example.")
    for alg in ALGORITHMS:
        # RSASHA1-NSEC3-SHA1 exists to signal NSEC3; the others get NSEC.
        denial = NSEC3() if alg == Algorithm.RSASHA1NSEC3SHA1 else NSEC
        z = h.zone(f"alg{int(alg)}.example.", algorithm=alg, denial=denial)
        z.add("_25._tcp.mail", "TLSA", TLSA)
        z.add("mail", "A", "127.0.0.25")
    signed = h.sign()
    anchor = tmp_path_factory.mktemp("alg") / "anchor.conf"
    anchor.write_text(signed.bind_trust_anchors())
    with served(signed) as server:
        yield server, anchor, signed


def ours(server, anchor_text: str, name: str, rdtype: str):
    async def run():
        client = StubClient(Server("127.0.0.1", server.port), timeout=2)
        return await Validator(client, parse(anchor_text)).lookup(name, rdtype)

    return asyncio.run(run())


@pytest.mark.parametrize("alg", ALGORITHMS, ids=[a.name for a in ALGORITHMS])
def test_each_algorithm_validates(world, alg):
    server, anchor, signed = world
    for name, rdtype, expected in [
        (f"_25._tcp.mail.alg{int(alg)}.example.", "TLSA", (Status.SECURE, Kind.POSITIVE)),
        (f"nothere.alg{int(alg)}.example.", "A", (Status.SECURE, Kind.NXDOMAIN)),
    ]:
        answer = ours(server, signed.trust_anchor(), name, rdtype)
        assert (answer.status, answer.kind) == expected, str(answer)
        if shutil.which("delv"):
            want = VALID if expected[1] == Kind.POSITIVE else NXDOMAIN
            out = run_delv(server.port, anchor, name, rdtype)
            assert verdict(out) == want, out


def _anchor_with(text: str, algorithm: int | None = None, digest: int | None = None) -> str:
    owner, ttl, cls, rtype, tag, alg, dig, data = text.split()
    return " ".join([owner, ttl, cls, rtype, tag, str(algorithm or alg), str(digest or dig), data])


@pytest.mark.parametrize(
    ("algorithm", "digest"), [(253, None), (None, 3), (None, 200)], ids=["alg253", "gost", "d200"]
)
def test_an_anchor_we_cannot_use_makes_the_tree_insecure_not_bogus(world, algorithm, digest):
    server, _, signed = world
    anchor = _anchor_with(signed.trust_anchor().strip(), algorithm, digest)
    answer = ours(server, anchor, "_25._tcp.mail.alg13.example.", "TLSA")
    assert answer.status == Status.INSECURE
    assert answer.reason == "unsupported-algorithm"
