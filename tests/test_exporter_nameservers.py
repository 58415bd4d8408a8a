"""Nameserver consistency in the exporter (issue 16): background checks ask every
authoritative server, so a stale or broken secondary reaches /metrics as ``ns-*`` findings,
in both metric profiles, and ``nameservers: {enabled: false}`` turns it off."""

from __future__ import annotations

import pytest
from test_exporter_app import config_text, value
from test_exporter_client import request
from test_exporter_http import until

from dane_monitor.exporter.app import Exporter
from dane_monitor.exporter.config import NameServerSettings, parse
from dane_monitor.world import World, by_name

SCENARIOS = ("secondaries-agree", "stale-secondary-tlsa", "secondary-sigs-expire-soon")
HANG_GUARD = 60.0


@pytest.fixture(scope="module")
def world():
    w = World([by_name(n) for n in SCENARIOS], ns_network="127.0.58.0/24")
    with w.running():
        yield w


@pytest.fixture
async def exporter(world, tmp_path):
    started: list[Exporter] = []

    async def make(extra: str) -> Exporter:
        anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
        targets = [f"domain: {n}.example" for n in SCENARIOS]
        path = tmp_path / f"dane-{len(started)}.yml"
        path.write_text(config_text(world, anchor, targets) + extra)
        e = Exporter.from_file(path)
        await e.start()
        started.append(e)
        return e

    yield make
    for e in started:
        await e.close()


@pytest.mark.parametrize("profile", ["full", "lean"])
async def test_a_stale_secondary_reaches_metrics(world, exporter, profile):
    port = world.dns_address[1]
    e = await exporter(f"nameservers: {{port: {port}}}\nmetrics: {{profile: {profile}}}\n")
    names = {f"{n}.example" for n in SCENARIOS}
    await until(lambda: names <= set(e.scheduler.outcomes), "every target checked")
    text = (await request(e.url + "metrics", timeout=HANG_GUARD)).text
    stale = {"target": "stale-secondary-tlsa.example"}
    assert value(text, "dane_findings", code="ns-rrset-differs", severity="error", **stale) == 1
    assert value(text, "dane_findings", code="ns-serial-lag", severity="warning", **stale) == 1
    soon = {"target": "secondary-sigs-expire-soon.example"}
    assert value(text, "dane_findings", code="ns-rrsig-expiring", severity="error", **soon) == 1
    agree = [
        line
        for line in text.splitlines()
        if 'target="secondaries-agree.example"' in line and 'code="ns-' in line
    ]
    assert agree == []
    # The RFC 7672 verdict stays the validated path's: the primary serves the right TLSA.
    assert value(text, "dane_verdict", verdict="valid", **stale) == 1


async def test_nameservers_can_be_turned_off(world, exporter):
    port = world.dns_address[1]
    e = await exporter(f"nameservers: {{enabled: false, port: {port}}}\n")
    names = {f"{n}.example" for n in SCENARIOS}
    await until(lambda: names <= set(e.scheduler.outcomes), "every target checked")
    text = (await request(e.url + "metrics", timeout=HANG_GUARD)).text
    assert 'code="ns-' not in text


def test_the_nameservers_key():
    assert parse("").nameservers == NameServerSettings(enabled=True, port=None)
    assert parse("nameservers: {enabled: false}").nameservers.enabled is False
    assert parse("nameservers: {port: 5353}").nameservers.port == 5353
    with pytest.raises(ValueError, match="true or false"):
        parse("nameservers: {enabled: sometimes}")
    with pytest.raises(ValueError, match="did you mean 'enabled'"):
        parse("nameservers: {enable: true}")
