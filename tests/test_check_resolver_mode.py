"""The same zone gets the same verdict in both validation modes, and resolver mode keeps the
expiry watch (issue 12), end to end through ``check`` and the exporter's metrics.

Before: a bogus zone was CRITICAL in local mode and UNKNOWN in resolver mode, a bogus TLSA
RRset ``bogus`` in one and ``failed`` in the other, and resolver mode had no signature
expiry at all, so the expiry alerts could never fire for an exporter in resolver mode.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from dane_monitor.check import Checker, Options
from dane_monitor.exporter.metrics import samples
from dane_monitor.lookup import make_validator
from dane_monitor.probe import Timeouts
from dane_monitor.world import World

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")

SCENARIOS = ("good-ee", "bogus-expired", "bogus-signature", "bogus-ds", "tlsa-mismatch",
             "no-tlsa", "insecure-with-tlsa")  # fmt: skip


@pytest.fixture(scope="module")
def both_modes(dane_world: World, tmp_path_factory):
    anchor = dane_world.write_trust_anchor(tmp_path_factory.mktemp("ta") / "anchor.ds")
    step = Timeouts(connect=5, banner=5, command=5, tls=5, quit=2, total=20)
    options = Options(connect_port=dane_world.smtp_port, timeouts=step)
    names = [dane_world.domains[n].name for n in SCENARIOS]
    host, port = dane_world.dns_address
    with dane_world.unbound() as unbound:
        uhost, uport = unbound.address

        async def run(mode: str, resolver: str):
            validator = make_validator(resolver, trust_anchor=str(anchor), mode=mode)
            checker = Checker(validator, options)
            return await asyncio.gather(*(checker.check_domain(n) for n in names))

        local = asyncio.run(run("local", f"{host}:{port}"))
        resolver = asyncio.run(run("resolver", f"{uhost}:{uport}"))
    return dict(zip(SCENARIOS, zip(local, resolver, strict=True), strict=True))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_verdict_decision_and_reason_in_both_modes(both_modes, scenario):
    local, resolver = both_modes[scenario]
    assert (resolver.validation, local.validation) == ("resolver", "local")
    assert resolver.verdict == local.verdict
    assert resolver.case == local.case
    assert [(h.case, h.verdict, h.sender_action) for h in resolver.hosts] == [
        (h.case, h.verdict, h.sender_action) for h in local.hosts
    ]

    def codes(result):
        return sorted(f.code for f in result.all_findings() if f.code != "resolver-not-loopback")

    assert codes(resolver) == codes(local)
    if local.verdict == "bogus":
        reasons = {d.reason for h in local.hosts for d in h.dns if d.status == "bogus"}
        reasons |= {local.mx_dns.reason} if local.mx_dns and local.mx_dns.reason else set()
        r_reasons = {d.reason for h in resolver.hosts for d in h.dns if d.status == "bogus"}
        r_reasons |= (
            {resolver.mx_dns.reason} if resolver.mx_dns and resolver.mx_dns.reason else set()
        )
        assert r_reasons == reasons


def test_resolver_mode_keeps_the_expiry_watch(both_modes):
    local, resolver = both_modes["good-ee"]
    assert local.rrsig_expiration is not None
    assert resolver.rrsig_expiration == local.rrsig_expiration
    (host,) = resolver.hosts
    assert host.rrsig_expiration == local.hosts[0].rrsig_expiration
    points = samples(resolver.domain, resolver, success=True, finished=0.0, duration=0.0)
    expiry = [v for name, _, v in points if name == "dane_rrsig_expiry_timestamp_seconds"]
    assert expiry == [float(local.rrsig_expiration)]
