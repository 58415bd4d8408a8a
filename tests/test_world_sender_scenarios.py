"""SENDER_SCENARIOS (issue 16): zones signed with RSASHA1 (5) and RSASHA1-NSEC3-SHA1 (7), NSEC3
with 150 and 500 iterations, and a DANE-TA ``2 0 0`` root the server does or does not send.

What independent validators say about them, on this machine (Debian 12):
- delv (BIND 9.18) and Unbound 1.17.1, default configuration: the SHA-1 zones are secure;
  NSEC3 with 150 iterations is secure, with 500 insecure (both cap at 150 for every key
  size; Unbound's ``val-nsec3-keysize-iterations: "1024 150 2048 150 4096 150"``).
- named (BIND 9.18) as a validating resolver with ``disable-algorithms "." { RSASHA1;
  NSEC3RSASHA1; };`` (the policy of distributions that refuse SHA-1): the SHA-1 zones are
  insecure (answers without AD), an ECDSA zone stays secure.
- our checker (the Expect of each scenario): SHA-1 zones secure; NSEC3 iterations above 50
  insecure, so the 150-iteration zone's denial is insecure for us and secure for BIND/Unbound.
- OpenSSL's DANE (``s_client -dane_tlsa_rrdata``) takes the full root of ``2 0 0`` whether or
  not the server sends it (RFC 7671 §5.2.2).
"""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from worldtools import (
    REFUSE_SHA1,
    answer,
    check_reaches_expectation,
    delv,
    delv_verdict,
    dig,
    flags,
    named_resolver,
    named_version,
    status,
    tool,
)

from dane_monitor.world import CATALOGUE, SENDER_SCENARIOS, World, by_name

SHA1 = ("rsasha1", "rsasha1-nsec3")
ITER = {"nsec3-iter-150": 150, "nsec3-iter-500": 500}
DNS_SCENARIOS = (*SHA1, *ITER, "control")


@pytest.fixture(scope="module")
def world():
    control = by_name("nsec3")  # ECDSA, NSEC3 without iterations, mx2 without TLSA
    w = World([*SENDER_SCENARIOS, dataclasses.replace(control, name="control")])
    with w.running():
        yield w


@pytest.fixture(scope="module")
def anchor(world, tmp_path_factory) -> Path:
    return world.write_trust_anchor(tmp_path_factory.mktemp("snd16") / "anchor.ds")


@pytest.fixture(scope="module")
def bind_anchor(world, tmp_path_factory) -> Path:
    return world.write_bind_trust_anchor(tmp_path_factory.mktemp("snd16") / "anchor.bind")


def tlsa_names(name: str) -> tuple[str, str]:
    """mx1's TLSA name (a positive answer) and mx2's (a denial, proven by NSEC/NSEC3)."""
    return f"_25._tcp.mx1.{name}.example.", f"_25._tcp.mx2.{name}.example."


def test_the_zones_are_signed_as_named(world):
    port = world.dns_port
    for name, alg in (("rsasha1", 5), ("rsasha1-nsec3", 7)):
        keys = answer(dig("127.0.0.1", port, f"{name}.example.", "DNSKEY", "+dnssec"), "DNSKEY")
        assert keys and {int(k.split()[2]) for k in keys} == {alg}
        sigs = answer(dig("127.0.0.1", port, tlsa_names(name)[0], "TLSA", "+dnssec"), "RRSIG")
        assert sigs and {int(s.split()[1]) for s in sigs} == {alg}
    for name, iterations in ITER.items():
        (param,) = answer(dig("127.0.0.1", port, f"{name}.example.", "NSEC3PARAM"), "NSEC3PARAM")
        assert int(param.split()[2]) == iterations
        denial = dig("127.0.0.1", port, tlsa_names(name)[1], "TLSA", "+dnssec")
        nsec3 = re.findall(r"\sNSEC3\s+1 0 (\d+) ", denial)
        assert nsec3 and {int(i) for i in nsec3} == {iterations}


EXPECTED_DEFAULT = {  # delv 9.18 and Unbound 1.17, default configuration: (mx1 TLSA, mx2 denial)
    "rsasha1": ("secure", "secure"),
    "rsasha1-nsec3": ("secure", "secure"),
    "nsec3-iter-150": ("secure", "secure"),
    "nsec3-iter-500": ("secure", "insecure"),
    "control": ("secure", "secure"),
}


@pytest.mark.parametrize("name", DNS_SCENARIOS)
def test_delv(world, bind_anchor, name):
    got = tuple(
        delv_verdict(delv("127.0.0.1", world.dns_port, bind_anchor, ".", q, "TLSA"))
        for q in tlsa_names(name)
    )
    assert got == EXPECTED_DEFAULT[name]


def ad_verdict(out: str) -> str:
    if status(out) == "SERVFAIL":
        return "bogus"
    return "secure" if "ad" in flags(out) else "insecure"


def test_unbound(world):
    tool("unbound")
    with world.unbound() as unbound:
        got = {
            name: tuple(
                ad_verdict(dig(*unbound.address, q, "TLSA", "+dnssec")) for q in tlsa_names(name)
            )
            for name in DNS_SCENARIOS
        }
    assert got == EXPECTED_DEFAULT


def test_unbound_with_a_lower_nsec3_limit(world):
    """``world.unbound(options=...)``: an Unbound whose RFC 9276 limit is 50 iterations (our
    validator's) calls the 150-iteration denial insecure, as the real senders behind it
    find (tests/interop/test_real_senders.py, the -iter50 senders)."""
    tool("unbound")
    limit = 'val-nsec3-keysize-iterations: "1024 50 2048 50 4096 50"'
    with world.unbound(options=(limit,)) as unbound:
        got = {
            name: tuple(
                ad_verdict(dig(*unbound.address, q, "TLSA", "+dnssec")) for q in tlsa_names(name)
            )
            for name in ITER
        }
    assert got == {
        "nsec3-iter-150": ("secure", "insecure"),
        "nsec3-iter-500": ("secure", "insecure"),
    }


def test_named_that_refuses_sha1_calls_the_sha1_zones_insecure(world):
    anchors = world.hierarchy.bind_trust_anchors()
    assert named_version().startswith("BIND 9.")
    with named_resolver(world.dns_address, anchors, REFUSE_SHA1) as refusing:
        got = {
            name: tuple(ad_verdict(dig(*refusing, q, "TLSA", "+dnssec")) for q in tlsa_names(name))
            for name in DNS_SCENARIOS
        }
        # the records themselves still arrive: DANE is silently off, not failing
        out = dig(*refusing, tlsa_names("rsasha1")[0], "TLSA")
        assert status(out) == "NOERROR" and answer(out, "TLSA")
    assert got == {
        "rsasha1": ("insecure", "insecure"),
        "rsasha1-nsec3": ("insecure", "insecure"),
        "nsec3-iter-150": ("secure", "secure"),
        "nsec3-iter-500": ("secure", "insecure"),
        "control": ("secure", "secure"),
    }
    # the same named without the policy: secure, so the policy (not the zone) decides
    with named_resolver(world.dns_address, anchors) as default:
        for name in SHA1:
            assert ad_verdict(dig(*default, tlsa_names(name)[0], "TLSA", "+dnssec")) == "secure"


@pytest.mark.parametrize("scenario", SENDER_SCENARIOS, ids=[s.name for s in SENDER_SCENARIOS])
def test_todays_checker(world, anchor, capsys, scenario):
    check_reaches_expectation(world, scenario, anchor, capsys)


# -- a full trust anchor the server does not send -------------------------------------------


def served_chain(world: World, name: str) -> list[bytes]:
    """The certificates (DER) the server sends after STARTTLS, as openssl s_client shows."""
    ep = world.domains[name].hosts[0].endpoints[0]
    server = world.domains[name].hosts[0].name.rstrip(".")
    cmd = [tool("openssl"), "s_client", "-connect", f"{ep.address}:{world.smtp_port}",
           "-starttls", "smtp", "-showcerts", "-servername", server]  # fmt: skip
    out = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=30).stdout
    pems = re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", out, re.S)
    return [base64.b64decode("".join(p.split())) for p in pems]


def openssl_dane(world: World, name: str) -> str:
    """OpenSSL's own DANE verification of the server against the scenario's TLSA RRset."""
    host = world.domains[name].hosts[0]
    ep = host.endpoints[0]
    cmd = [tool("openssl"), "s_client", "-connect", f"{ep.address}:{world.smtp_port}",
           "-starttls", "smtp", "-dane_tlsa_domain", host.name.rstrip("."),
           "-verify_return_error"]  # fmt: skip
    for rd in host.tlsa_rdatas:
        cmd += ["-dane_tlsa_rrdata", rd]
    p = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


@pytest.mark.parametrize(("name", "sent"), [("ta-root-not-sent", False), ("ta-root-sent", True)])
def test_a_full_root_ta_sent_or_not(world, name, sent):
    host = world.domains[name].hosts[0]
    (record,) = host.tlsa_rdatas
    usage, selector, mtype, data = record.split(None, 3)
    assert (usage, selector, mtype) == ("2", "0", "0")
    root = bytes.fromhex("".join(data.split()))
    chain = world.domains[name].hosts[0].endpoints[0].chains[0]
    assert chain.root is not None and chain.root.public_bytes(Encoding.DER) == root
    served = served_chain(world, name)
    assert len(served) == (3 if sent else 2)
    assert (root in served) is sent
    out = openssl_dane(world, name)
    assert "Verification: OK" in out and "Verified peername" in out, out
    assert re.search(r"DANE TLSA 2 0 0 \.\.\.\w+ matched TA certificate at depth 2", out), out


def test_ta_root_not_sent_is_ta_root_full():
    """The catalogue's ta-root-full is the same situation; SENDER_SCENARIOS names it for the
    sender profiles and adds its contrast (ta-root-sent)."""
    a, b = by_name("ta-root-full"), by_name("ta-root-not-sent")
    assert a.hosts == b.hosts and a.expect.verdict == b.expect.verdict == "valid"
    assert {s.name for s in SENDER_SCENARIOS}.isdisjoint(s.name for s in CATALOGUE)
