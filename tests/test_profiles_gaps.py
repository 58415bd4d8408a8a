"""Sender profiles (issue 16) where our validator and the profile's see different things, and
the domain-level prediction, each held to what a real validator (BIND's named) does.

- A bogus answer below a zone signed only with algorithms a profile's validator refuses:
  that validator treats the zone as unsigned (RFC 4035 §5.2, RFC 6840 §5.2; RFC 8624 still
  requires RSASHA1, distributions that disable SHA-1 refuse it) and never checks the
  signature that fails for us, so its sender delivers without DANE where RFC 7672 senders
  defer. named with ``disable-algorithms`` answers such names without AD, the default named
  SERVFAILs.
- A zone whose DS denial has more NSEC3 iterations than ours (50) and no more than the common
  limit (150): the denial is proven again with that limit, so the profiles behind BIND and
  Unbound are predicted: unsigned as for us when the denial holds, bogus (defer) when it does
  not, where named agrees.
- The domain-level ``profiles`` (JSON), e.g. a bogus MX RRset: every profile defers, except
  one whose validator sees the MX RRset as unsigned (it goes on to hosts we never looked up:
  unknown); and in the nagios output's long text.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from worldtools import REFUSE_SHA1, check_domain, dig, flags, named_resolver, status, tool

from dane_monitor import profiles
from dane_monitor.cli import main
from dane_monitor.report import DomainResult
from dane_monitor.world import Scenario, World
from dane_monitor.world.zones import NSEC3, Fault

NAMES = tuple(profiles.PROFILES)
OPP, DEFER, UNKNOWN = "deliver-opportunistic", "defer", "unknown"
RSASHA1 = 5
EXPIRED = Fault.EXPIRED_RRSIG


def every(action: str, **others: str) -> dict[str, str]:
    out = dict.fromkeys(NAMES, action)
    out.update({k.replace("_", "-"): v for k, v in others.items()})
    return out


SHA1 = (
    Scenario("sha1-bogus-tlsa", "RSASHA1 zone, the TLSA RRSIG expired", algorithm=RSASHA1,
             faults=((EXPIRED, "_25._tcp.mx1", "TLSA"),)),
    Scenario("sha1-bogus-a", "RSASHA1 zone, the A RRSIG expired", algorithm=RSASHA1,
             faults=((EXPIRED, "mx1", "A"),)),
    Scenario("sha1-bogus-mx", "RSASHA1 zone, the MX RRSIG expired", algorithm=RSASHA1,
             faults=((EXPIRED, "@", "MX"),)),
    Scenario("sha1-ds-mismatch", "RSASHA1 zone whose DS matches no key", algorithm=RSASHA1,
             faults=((Fault.DS_MISMATCH, None, None),)),
    Scenario("ecdsa-bogus-tlsa", "ECDSA zone, the TLSA RRSIG expired",
             faults=((EXPIRED, "_25._tcp.mx1", "TLSA"),)),
)  # fmt: skip
ITER = (
    Scenario("iter-ds-denied", "signed, no DS: the TLD's denial has 100 NSEC3 iterations",
             insecure_delegation=True),
    Scenario("iter-ds-wrong", "as iter-ds-denied, but the TLD's denial proves nothing",
             insecure_delegation=True),
)  # fmt: skip

#: scenario -> (our verdict, the host's prediction per profile or None without a host, the
#: domain's prediction per profile)
EXPECTED: dict[str, tuple[str, dict[str, str] | None, dict[str, str]]] = {
    "sha1-bogus-tlsa": ("bogus", every(DEFER, sha1_refusing=OPP), every(DEFER, sha1_refusing=OPP)),
    "sha1-bogus-a": ("bogus", every(DEFER, sha1_refusing=OPP), every(DEFER, sha1_refusing=OPP)),
    "sha1-bogus-mx": ("bogus", None, every(DEFER, sha1_refusing=UNKNOWN)),
    "sha1-ds-mismatch": ("bogus", None, every(DEFER, sha1_refusing=UNKNOWN)),
    "ecdsa-bogus-tlsa": ("bogus", every(DEFER), every(DEFER)),
    # rfc7672 uses our limit (50): unsigned for it as for us
    "iter-ds-denied": ("insecure", every(OPP), every(OPP)),
    "iter-ds-wrong": ("insecure", every(DEFER, rfc7672=OPP), every(DEFER, rfc7672=OPP)),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World((*SHA1, *ITER), smtp_network="127.0.64.0/24")
    tld = w.hierarchy["example."]
    tld.denial = NSEC3(iterations=100)  # between our limit (50) and BIND's/Unbound's (150)
    tld.fault(Fault.WRONG_DENIAL, "iter-ds-wrong", "DS")
    w.signed = w.hierarchy.sign()
    w.anchor_path = w.write_trust_anchor(tmp_path_factory.mktemp("gaps16") / "anchor.ds")
    with w.running():
        yield w


def check(world: World, name: str) -> DomainResult:
    return check_domain(world, world.anchor_path, name)


def actions(p: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: v["action"] for name, v in p.items()}


@pytest.mark.parametrize("name", EXPECTED)
def test_each_profile_predicts_what_its_validator_does(world, name):
    verdict, host, domain = EXPECTED[name]
    result = check(world, name)
    assert result.verdict.value == verdict
    if host is None:
        assert result.hosts == []
    else:
        (h,) = result.hosts
        assert actions(h.profiles) == host, h.profiles
    assert actions(result.profiles) == domain, result.profiles
    # the headline and the RFC 7672 profile stay our verdict's
    assert result.profiles["rfc7672"]["action"] == result.sender_action.value


def test_the_reasons_cite_the_rule(world):
    (h,) = check(world, "sha1-bogus-a").hosts
    why = h.profiles["sha1-refusing"]["reason"]
    assert "RFC 4035 §5.2" in why and "refused algorithm(s) 5" in why
    assert "signature-expired" in why  # what fails for us, and it never checks
    (h,) = check(world, "sha1-bogus-tlsa").hosts  # its addresses are unsigned for it first
    assert "addresses are insecure" in h.profiles["sha1-refusing"]["reason"]
    (h,) = check(world, "iter-ds-wrong").hosts
    why = h.profiles["postfix"]["reason"]
    assert "100 iterations" in why and "bogus" in why
    (h,) = check(world, "iter-ds-denied").hosts
    assert "still unsigned" in h.profiles["postfix"]["reason"]


def _seen_by(resolver: tuple[str, int], name: str, rdtype: str) -> str:
    out = dig(*resolver, name, rdtype, "+dnssec")
    if status(out) != "NOERROR":
        return str(status(out))
    return "secure" if "ad" in flags(out) else "insecure"


def test_named_sees_what_the_profiles_predict(world):
    """named as a validating resolver: refusing SHA-1, the bogus names of the RSASHA1 zones
    are unsigned (answered, no AD) where the default named SERVFAILs; with its NSEC3 limit
    (150) the 100-iteration DS denial makes the zone unsigned when it holds and bogus when
    it does not, as the postfix-like profiles say."""
    tool("named")
    anchors = world.hierarchy.bind_trust_anchors()
    d = {n: world.domains[n].name for n in EXPECTED}
    questions = {
        "sha1-bogus-tlsa": (f"_25._tcp.mx1.{d['sha1-bogus-tlsa']}", "TLSA"),
        "sha1-bogus-a": (f"mx1.{d['sha1-bogus-a']}", "A"),
        "sha1-bogus-mx": (d["sha1-bogus-mx"], "MX"),
        "sha1-ds-mismatch": (d["sha1-ds-mismatch"], "MX"),
        "ecdsa-bogus-tlsa": (f"_25._tcp.mx1.{d['ecdsa-bogus-tlsa']}", "TLSA"),
        "iter-ds-denied": (d["iter-ds-denied"], "MX"),
        "iter-ds-wrong": (d["iter-ds-wrong"], "MX"),
    }
    with named_resolver(world.dns_address, anchors, REFUSE_SHA1) as refusing:
        by_refusing = {n: _seen_by(refusing, *q) for n, q in questions.items()}
    with named_resolver(world.dns_address, anchors) as default:
        by_default = {n: _seen_by(default, *q) for n, q in questions.items()}
    assert by_refusing == {
        "sha1-bogus-tlsa": "insecure", "sha1-bogus-a": "insecure", "sha1-bogus-mx": "insecure",
        "sha1-ds-mismatch": "insecure", "ecdsa-bogus-tlsa": "SERVFAIL",
        "iter-ds-denied": "insecure", "iter-ds-wrong": "SERVFAIL",
    }  # fmt: skip
    assert by_default == {
        "sha1-bogus-tlsa": "SERVFAIL", "sha1-bogus-a": "SERVFAIL", "sha1-bogus-mx": "SERVFAIL",
        "sha1-ds-mismatch": "SERVFAIL", "ecdsa-bogus-tlsa": "SERVFAIL",
        "iter-ds-denied": "insecure", "iter-ds-wrong": "SERVFAIL",
    }  # fmt: skip


def _cli(world: World, name: str, capsys, *extra: str) -> tuple[int, str]:
    host, port = world.dns_address
    code = main(["check", *extra, world.domains[name].name, "--resolver", f"{host}:{port}",
                 "--trust-anchor", str(world.anchor_path), "--connect-port",
                 str(world.smtp_port), "--timeout", "5", "--no-nameservers"])  # fmt: skip
    return code, capsys.readouterr().out


def test_json_has_the_domain_s_profiles(world, capsys):
    code, out = _cli(world, "sha1-bogus-mx", capsys, "--json")
    data = json.loads(out)
    assert code == 2 and data["hosts"] == []
    assert actions(data["profiles"]) == every(DEFER, sha1_refusing=UNKNOWN)
    assert "hosts we could not look up" in data["profiles"]["sha1-refusing"]["reason"]


def test_nagios_keeps_one_status_line_and_lists_the_senders_that_differ(world, capsys):
    code, out = _cli(world, "sha1-bogus-tlsa", capsys, "--format", "nagios")
    lines = out.splitlines()
    assert code == 2 and lines[0].startswith("DANE CRITICAL - ")
    assert "|" in lines[0] and not any("|" in ln for ln in lines[1:])
    senders = [ln for ln in lines[1:] if ln.startswith("SENDERS ")]
    assert senders == [
        f"SENDERS sha1-refusing: {OPP} (RFC 7672 senders: {DEFER}): "
        + check(world, "sha1-bogus-tlsa").profiles["sha1-refusing"]["reason"]
    ]
    # where every profile does as RFC 7672 senders, nothing is added
    _, out = _cli(world, "ecdsa-bogus-tlsa", capsys, "--format", "nagios")
    assert not [ln for ln in out.splitlines() if ln.startswith("SENDERS ")]


def test_bogus_answers_record_the_zones_validated_above_the_failure(world):
    """The evidence behind the prediction: a bogus TLSA answer of the RSASHA1 zone lists the
    algorithms from the anchor down to that zone (ECDSA above, RSASHA1 last); a DS mismatch
    lists the failing zone's DS algorithms last."""
    import dns.name

    from dane_monitor.settings import make_validator

    host, port = world.dns_address
    v = make_validator(f"{host}:{port}", trust_anchor=world.anchor_path)

    async def look(name: str, rdtype: str):
        return await v.lookup(dns.name.from_text(name), rdtype)

    tlsa = asyncio.run(look(f"_25._tcp.mx1.{world.domains['sha1-bogus-tlsa'].name}", "TLSA"))
    assert tlsa.status.value == "bogus" and tlsa.chain_algorithms[-1] == {RSASHA1}
    assert all(a == {13} for a in tlsa.chain_algorithms[:-1])
    mx = asyncio.run(look(world.domains["sha1-ds-mismatch"].name, "MX"))
    assert mx.status.value == "bogus" and mx.chain_algorithms[-1] == {RSASHA1}
    ecdsa = asyncio.run(look(f"_25._tcp.mx1.{world.domains['ecdsa-bogus-tlsa'].name}", "TLSA"))
    assert ecdsa.status.value == "bogus" and all(a == {13} for a in ecdsa.chain_algorithms)


def test_the_wider_proof_is_recorded_on_the_answers_below_the_denial(world):
    import dns.name

    from dane_monitor.settings import make_validator

    host, port = world.dns_address
    v = make_validator(f"{host}:{port}", trust_anchor=world.anchor_path)

    async def look(name: str, rdtype: str):
        return await v.lookup(dns.name.from_text(name), rdtype)

    for name, wider in (("iter-ds-denied", "insecure"), ("iter-ds-wrong", "bogus")):
        a = asyncio.run(look(f"mx1.{world.domains[name].name}", "A"))
        assert (a.status.value, a.reason, a.nsec3_iterations) == (
            "insecure",
            "nsec3-iterations",
            100,
        )
        assert a.nsec3_resolver_status is not None and a.nsec3_resolver_status.value == wider


def test_the_exporter_has_the_whole_target_s_profiles(world):
    """A bogus MX RRset judges no host: the target's own predictions are series with mx=""
    and port="" (as its dane_sender_action); full has all six, lean too (senders defer: the
    target needs detail). A target with hosts has only its hosts' series."""
    from dane_monitor.exporter.metrics import samples

    def series(name: str, kind: str) -> dict[tuple[str, str, str], str]:
        result = check(world, name)
        got = samples(name, result, success=True, finished=0.0, duration=0.0, profile=kind)
        points = [(lb, v) for n, lb, v in got if n == "dane_sender_profile_action"]
        assert all(v == 1.0 for _, v in points)
        return {(lb[1], lb[2], lb[3]): lb[4] for lb, _ in points}

    domain = {("", "", k): v for k, v in every(DEFER, sha1_refusing=UNKNOWN).items()}
    assert series("sha1-bogus-mx", "full") == domain
    assert series("sha1-bogus-mx", "lean") == domain
    full = series("ecdsa-bogus-tlsa", "full")
    assert len(full) == len(NAMES) and all(mx and port for mx, port, _ in full)


pytest_plugins = ["pytester"]
INNER = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark",
         "-o", "asyncio_default_fixture_loop_scope=function")  # fmt: skip


def test_pytest_has_the_whole_target_s_sender_items(world, pytester):
    """``--dane-profile``: a bogus MX RRset has a sender-NAME item for the domain; postfix
    senders defer as RFC 7672's (passes), what sha1-refusing senders do cannot be told
    (skipped: they go on to MX hosts we could not look up)."""
    host, port = world.dns_address
    domain = world.domains["sha1-bogus-mx"].name.rstrip(".")
    result = pytester.runpytest(
        *INNER, "--dane-resolver", f"{host}:{port}", f"--dane-trust-anchor={world.anchor_path}",
        "--dane-connect-port", str(world.smtp_port), "--dane-timeout", "5",
        "--dane-domain", domain, "--dane-profile", "postfix", "--dane-profile", "sha1-refusing",
        "-rA",
    )  # fmt: skip
    out = result.stdout.str()
    # dnssec fails (bogus MX), warnings cannot be checked, and the two sender items:
    result.assert_outcomes(failed=1, passed=1, skipped=2)
    assert f"PASSED dane::sender-postfix[{domain}]" in out, out
    assert "what sha1-refusing senders do cannot be told" in out
    assert "MX hosts we could not look up" in out
    collected = pytester.runpytest(*INNER, "--dane-domain", domain, "--dane-profile",
                                   "sha1-refusing", "--collect-only", "-q",
                                   "--dane-resolver", f"{host}:{port}",
                                   f"--dane-trust-anchor={world.anchor_path}")  # fmt: skip
    assert f"sender-sha1-refusing[{domain}]" in collected.stdout.str()
