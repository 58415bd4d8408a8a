"""Resolver mode and resolver-check against a real validating resolver: Unbound.

Unbound validates the catalogue world from the world's anchor; our resolver mode trusts its
AD bit and must reach the same security state as our own local validation, except that a
validating resolver hides bogus data behind SERVFAIL (indeterminate for us: still "defer").
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import ResolverValidator, Validator
from dane_monitor.world import World

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
            out += [(host.mx_name, "A"), (host.tlsa_name, "TLSA")]
    return out


def test_resolver_mode_agrees_with_local_validation(dane_world: World, unbound):
    async def run():
        local = Validator(
            StubClient(Server(*dane_world.dns_address), timeout=2),
            parse(dane_world.trust_anchor()),
        )
        remote = ResolverValidator(StubClient(Server(*unbound.address), timeout=5))
        rows = []
        for name, rdtype in names(dane_world):
            rows.append(
                (name, rdtype, await local.lookup(name, rdtype), await remote.lookup(name, rdtype))
            )
        return rows

    rows = asyncio.run(run())
    assert len(rows) > 60
    for name, rdtype, ours, theirs in rows:
        if ours.status == Status.BOGUS:
            assert (theirs.status, theirs.reason) == (Status.INDETERMINATE, "servfail"), name
        else:
            assert (theirs.status, theirs.kind) == (ours.status, ours.kind), (name, rdtype)
            if ours.rrset is not None:
                assert {r.to_text() for r in theirs.rrset} == {r.to_text() for r in ours.rrset}


def test_resolver_mode_warns_when_the_resolver_is_not_on_loopback():
    # No packet is sent: the warning comes from the configuration alone.
    assert ResolverValidator(StubClient(Server("127.0.0.53"))).warnings() == []
    (warning,) = ResolverValidator(StubClient(Server("192.0.2.53"))).warnings()
    assert warning[0] == "resolver-not-loopback"
    assert "192.0.2.53" in warning[1]


def resolver_check(resolver: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dane-monitor", "resolver-check", "--resolver", resolver,
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
    assert "bad --resolver" in p.stderr
