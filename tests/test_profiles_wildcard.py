"""Sender profiles (issue 16) at a wildcard TLSA answer whose NSEC3 proof that no closer name
exists (RFC 5155 §8.8, RFC 4035 §5.3.4) has more iterations than our limit (50, RFC 9276)
and no more than BIND's and Unbound's (150).

Our validator calls such an answer insecure (so the headline and the rfc7672 profile say DANE
is off), and proves it again with 150 iterations (``Answer.nsec3_resolver_status``): the
profiles behind BIND/Unbound find the TLSA RRset secure, so their senders match the
endpoints against it (authenticated, or defer on a mismatch), unless their validator refuses
the zone's algorithm. Held to named with its default limit.
"""

from __future__ import annotations

import asyncio

import dns.name
import pytest
from worldtools import REFUSE_SHA1, check_domain, dig, flags, named_resolver, status, tool

from dane_monitor import profiles, settings, tlsa
from dane_monitor.report import DomainResult
from dane_monitor.world import Host, Scenario, World
from dane_monitor.world.zones import NSEC3

NAMES = tuple(profiles.PROFILES)
AUTH, OPP, DEFER = "deliver-authenticated", "deliver-opportunistic", "defer"
WRONG = "3 1 1 " + "00" * 32


def every(action: str, **others: str) -> dict[str, str]:
    out = dict.fromkeys(NAMES, action)
    out.update({k.replace("_", "-"): v for k, v in others.items()})
    return out


SCENARIOS = (
    Scenario("wild-iter", "DANE-EE at *._tcp.mx1, NSEC3 with 150 iterations",
             denial=NSEC3(iterations=150), hosts=(Host("mx1", tlsa=()),)),
    Scenario("wild-iter-mismatch", "a wrong DANE-EE at *._tcp.mx1, NSEC3 with 150 iterations",
             denial=NSEC3(iterations=150), hosts=(Host("mx1", tlsa=()),)),
    Scenario("wild-iter-sha1", "as wild-iter, signed with RSASHA1-NSEC3-SHA1 (algorithm 7)",
             algorithm=7, denial=NSEC3(iterations=150), hosts=(Host("mx1", tlsa=()),)),
    Scenario("wild-iter-500", "as wild-iter, with 500 iterations (above every limit)",
             denial=NSEC3(iterations=500), hosts=(Host("mx1", tlsa=()),)),
)  # fmt: skip

#: scenario -> the host's prediction per profile (the headline stays RFC 7672's: insecure)
EXPECTED: dict[str, dict[str, str]] = {
    "wild-iter": every(AUTH, rfc7672=OPP),
    "wild-iter-mismatch": every(DEFER, rfc7672=OPP),
    "wild-iter-sha1": every(AUTH, rfc7672=OPP, sha1_refusing=OPP),
    # above 150: insecure for every validator here (RFC 9276 §3.2, as BIND and Unbound)
    "wild-iter-500": every(OPP),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(SCENARIOS, smtp_network="127.0.65.0/24")
    for sc in SCENARIOS:
        host = w.domains[sc.name].hosts[0]
        leaf = host.endpoints[0].chains[0].leaf
        assert host.zone is not None
        data = WRONG if sc.name.endswith("mismatch") else tlsa.rdata_text(leaf, 3, 1, 1)
        host.zone.add(f"*._tcp.{host.name}", "TLSA", data)
    w.signed = w.hierarchy.sign()
    w.anchor_path = w.write_trust_anchor(tmp_path_factory.mktemp("wild16") / "anchor.ds")
    with w.running():
        yield w


def check(world: World, name: str) -> DomainResult:
    return check_domain(world, world.anchor_path, name)


def lookup(world: World, name: str, rdtype: str):
    host, port = world.dns_address
    v = settings.make_validator(f"{host}:{port}", trust_anchor=world.anchor_path)
    return asyncio.run(v.lookup(dns.name.from_text(name), rdtype))


@pytest.mark.parametrize("name", EXPECTED)
def test_each_profile_predicts_the_wildcard_tlsa(world, name):
    result = check(world, name)
    (h,) = result.hosts
    # ours is unchanged: the wildcard answer is insecure, DANE is off (RFC 9276)
    assert result.verdict.value == "insecure" and h.case == "tlsa-insecure"
    assert {k: v["action"] for k, v in h.profiles.items()} == EXPECTED[name], h.profiles
    assert result.profiles["rfc7672"]["action"] == result.sender_action.value == OPP
    # each endpoint the sender reaches says the same as the host
    for er in h.endpoints:
        for pname, p in er.profiles.items():
            assert p["action"] == h.profiles[pname]["action"]


def test_the_reasons_say_why(world):
    (h,) = check(world, "wild-iter").hosts
    why = h.profiles["postfix"]["reason"]
    assert "DANE-EE record matches" in why or "authenticated" in why, why
    assert "150 iterations" in why and "no-closer-match proof holds" in why
    (h,) = check(world, "wild-iter-sha1").hosts
    assert "refused algorithm(s) 7" in h.profiles["sha1-refusing"]["reason"]
    (h,) = check(world, "wild-iter-500").hosts
    assert h.profiles["postfix"]["reason"] == "as RFC 7672 (tlsa-insecure)"


def test_the_validator_records_the_wider_proof_and_keeps_its_own_status(world):
    for name, wider in (("wild-iter", "secure"), ("wild-iter-mismatch", "secure"),
                        ("wild-iter-500", None)):  # fmt: skip
        a = lookup(world, f"_25._tcp.mx1.{world.domains[name].name}", "TLSA")
        assert (a.status.value, a.reason) == ("insecure", "nsec3-iterations")
        assert a.rrset is not None and len(a.rrset) == 1
        got = a.nsec3_resolver_status.value if a.nsec3_resolver_status else None
        assert got == wider
        assert bool(a.chain_algorithms) == (wider is not None)
    a = lookup(world, f"_25._tcp.mx1.{world.domains['wild-iter-sha1'].name}", "TLSA")
    assert a.chain_algorithms[-1] == {7}


def _seen_by(resolver: tuple[str, int], name: str) -> str:
    out = dig(*resolver, name, "TLSA", "+dnssec")
    if status(out) != "NOERROR":
        return str(status(out))
    return "secure" if "ad" in flags(out) else "insecure"


def test_named_sees_what_the_profiles_predict(world):
    """named (NSEC3 limit 150) validates the wildcard TLSA answers with 150 iterations (AD),
    not the one with 500; refusing SHA-1 it finds the algorithm-7 zone unsigned."""
    tool("named")
    anchors = world.hierarchy.bind_trust_anchors()
    q = {n: f"_25._tcp.mx1.{world.domains[n].name}" for n in EXPECTED}
    with named_resolver(world.dns_address, anchors) as default:
        by_default = {n: _seen_by(default, name) for n, name in q.items()}
    with named_resolver(world.dns_address, anchors, REFUSE_SHA1) as refusing:
        sha1 = _seen_by(refusing, q["wild-iter-sha1"])
    assert by_default == {
        "wild-iter": "secure", "wild-iter-mismatch": "secure", "wild-iter-sha1": "secure",
        "wild-iter-500": "insecure",
    }  # fmt: skip
    assert sha1 == "insecure"
