"""Resolver mode and resolver-check against a real validating resolver: Unbound.

Unbound validates the catalogue world from the world's anchor; our resolver mode trusts its
AD bit and must reach the same verdict as our own local validation. A validating resolver
hides bogus data behind SERVFAIL; resolver mode asks again with CD and validates what comes
back, so a bogus zone is ``bogus`` with local mode's reason in both modes. With DO it reads
the RRSIGs of the answer and of the DS/DNSKEY chain, so the expiry watch is the same too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys

import pytest

from dane_monitor.lookup import make_validator
from dane_monitor.lookup.answer import Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import ResolverValidator
from dane_monitor.world import CATALOGUE, World

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")


@pytest.fixture(scope="module")
def unbound(dane_world: World):
    with dane_world.unbound() as u:
        yield u


def names(world: World) -> list[tuple[str, str]]:
    out = []
    for domain in world.domains.values():
        out.append((domain.name, "MX"))
        for host in domain.hosts:
            out += [(host.mx_name, "A"), (host.mx_name, "AAAA"), (host.tlsa_name, "TLSA")]
    return out


def test_resolver_mode_agrees_with_local_validation(dane_world: World, unbound, dane_trust_anchor):
    """Every name of the catalogue, every type the checker asks: the same status, kind,
    reason (bogus ones included), earliest signature expiry and signer in both modes."""

    async def run():
        local = make_validator(Server(*dane_world.dns_address), trust_anchor=dane_trust_anchor)
        remote = make_validator(
            Server(*unbound.address), trust_anchor=dane_trust_anchor, mode="resolver", timeout=5
        )
        rows = []
        for name, rdtype in names(dane_world):
            rows.append(
                (name, rdtype, await local.lookup(name, rdtype), await remote.lookup(name, rdtype))
            )
        return rows

    rows = asyncio.run(run())
    assert len(rows) > 60
    for name, rdtype, ours, theirs in rows:
        assert (theirs.status, theirs.kind) == (ours.status, ours.kind), (name, rdtype, theirs)
        if ours.rrset is not None:
            assert {r.to_text() for r in theirs.rrset} == {r.to_text() for r in ours.rrset}
        if ours.status == Status.BOGUS:
            assert (theirs.reason, theirs.signer) == (ours.reason, ours.signer), (name, rdtype)
        if ours.status == Status.SECURE:
            assert theirs.expiration is not None, (name, rdtype)
            assert (theirs.expiration, theirs.signer) == (ours.expiration, ours.signer), name
    # Every bogus scenario of the catalogue was among them, with local mode's reason.
    bogus = {
        name.split(".")[-3]: ours.reason
        for name, _, ours, _ in rows
        if ours.status == Status.BOGUS and name.startswith("_25._tcp.")
    }
    expected = {s.name for s in CATALOGUE if s.expect.verdict == "bogus"}
    assert set(bogus) == expected
    assert bogus == {
        "bogus-expired": "signature-expired",
        "bogus-signature": "bad-signature",
        "bogus-ds": "no-matching-ds",
        "keytrap": "validation-budget",
    }


def test_resolver_mode_warns_when_the_resolver_is_not_on_loopback():
    # No packet is sent: the warning comes from the configuration alone.
    assert ResolverValidator(StubClient(Server("127.0.0.53"))).warnings() == []
    (warning,) = ResolverValidator(StubClient(Server("192.0.2.53"))).warnings()
    assert warning[0] == "resolver-not-loopback"
    assert "192.0.2.53" in warning[1]


def resolver_check(resolver: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dane_monitor", "resolver-check", "--resolver", resolver,
         "--signed-name", "mx1.good-ee.example.", "--bogus-name", "mx1.bogus-expired.example.",
         "--timeout", "1", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_resolver_check_passes_a_validating_resolver(unbound):
    p = resolver_check(f"{unbound.host}:{unbound.port}", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(p.stdout)
    assert report["fit_for_dane"] is True
    assert {c["code"]: c["ok"] for c in report["checks"]} == {
        "answers": True, "edns-do": True, "validates": True, "rejects-bogus": True,
        "tcp": True, "loopback": True,
    }  # fmt: skip


def test_resolver_check_fails_a_server_that_does_not_validate(dane_world: World):
    host, port = dane_world.dns_address  # authoritative only: never sets AD, serves bogus data
    p = resolver_check(f"{host}:{port}")
    assert p.returncode == 2, p.stdout
    assert "NOT fit for DANE (CRITICAL)" in p.stdout
    assert "FAIL  validates" in p.stdout
    assert "FAIL  rejects-bogus" in p.stdout


def test_resolver_check_unknown_when_nothing_answers():
    p = resolver_check("127.0.0.1:9")
    assert p.returncode == 3, p.stdout
    assert "not reachable (UNKNOWN)" in p.stdout


def test_resolver_check_rejects_a_resolver_given_by_name():
    p = resolver_check("dns.example")
    assert p.returncode == 3
    assert "--resolver" in p.stderr and "'dns.example'" in p.stderr
    assert "Traceback" not in p.stderr


def test_resolver_check_passes_a_validating_resolver_for_a_nodata_name(unbound):
    """The signed name has no TXT record: the answer is a secure NODATA, whose RRSIGs come
    in the authority section. The resolver is as fit as for any other type."""
    p = resolver_check(f"{unbound.host}:{unbound.port}", "--type", "TXT", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(p.stdout)
    assert all(c["ok"] for c in report["checks"]), report["checks"]
    assert report["fit_for_dane"] is True


def test_resolver_check_says_a_resolver_that_answers_is_reachable(dane_world: World):
    """An Unbound whose trust anchor is not the world's answers SERVFAIL to everything: it
    is not fit for DANE (CRITICAL), and certainly not "not reachable" (UNKNOWN)."""
    from dane_monitor.world.unbound import Unbound
    from dane_monitor.world.zones import Hierarchy

    zones = [z.to_text() for z in dane_world.hierarchy.zones]
    foreign = Hierarchy(".").trust_anchor()
    with Unbound(dane_world.dns_address, foreign, zones=zones) as broken:
        p = resolver_check(f"{broken.host}:{broken.port}")
        j = resolver_check(f"{broken.host}:{broken.port}", "--json")
    assert p.returncode == 2, p.stdout
    assert "NOT fit for DANE (CRITICAL)" in p.stdout
    assert "not reachable" not in p.stdout
    assert "FAIL  answers" in p.stdout and "SERVFAIL" in p.stdout
    assert json.loads(j.stdout)["reachable"] is True


def test_lookup_in_resolver_mode_names_the_bogus_reason_and_the_expiry(
    dane_world: World, unbound, dane_trust_anchor
):
    """What a user sees: `lookup --validation resolver` says why a TLSA RRset is bogus
    (exit 2, not 3) and when the signatures of a good one expire."""

    def lookup(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dane_monitor", "lookup", name, "TLSA", "--json",
             "--validation", "resolver",
             "--resolver", f"{unbound.host}:{unbound.port}",
             "--trust-anchor", str(dane_trust_anchor)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    bad = lookup("_25._tcp.mx1.bogus-signature.example.")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert (json.loads(bad.stdout)["status"], json.loads(bad.stdout)["reason"]) == (
        "bogus",
        "bad-signature",
    )
    good = lookup("_25._tcp.mx1.good-ee.example.")
    assert good.returncode == 0, good.stdout + good.stderr
    answer = json.loads(good.stdout)
    assert answer["rrsig_expiration"] is not None
    assert answer["signer"] == "good-ee.example."
