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
    if profile == "full":  # per server: the stale copy's older serial, the early signatures
        zone = {"zone": "stale-secondary-tlsa.example"}
        serials = per_server(text, "dane_nameserver_soa_serial", **stale, **zone)
        assert len(serials) == 3 and len(set(serials.values())) == 2, serials
        oldest = min(serials, key=lambda k: serials[k])
        assert oldest[0] == "ns2.stale-secondary-tlsa.example", serials
        expiry = per_server(
            text, "dane_nameserver_rrsig_expiry_timestamp_seconds",
            zone="secondary-sigs-expire-soon.example", **soon,
        )  # fmt: skip
        early = min(expiry, key=lambda k: expiry[k])
        assert early[0] == "ns2.secondary-sigs-expire-soon.example"
        assert max(expiry.values()) - expiry[early] > 86400
        states = per_server(text, "dane_nameserver_state", **stale, **zone)
        assert len(states) == 3
    else:  # lean: only servers that do not answer as they should (none here)
        assert per_server(text, "dane_nameserver_soa_serial") == {}


def per_server(text: str, name: str, **labels: str) -> dict[tuple[str, str], float]:
    from test_exporter_app import samples

    return {
        (lab["nameserver"], lab["address"]): v
        for n, lab, v in samples(text)
        if n == name and all(lab.get(k) == x for k, x in labels.items())
    }


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
    assert parse("").nameservers.max_age == 3600.0  # an hour; the records in the key
    assert parse("nameservers: {max_age: 5m}").nameservers.max_age == 300.0
    with pytest.raises(ValueError, match="max_age"):
        parse("nameservers: {max_age: 0}")
    with pytest.raises(ValueError, match="true or false"):
        parse("nameservers: {enabled: sometimes}")
    with pytest.raises(ValueError, match="did you mean 'enabled'"):
        parse("nameservers: {enable: true}")


async def test_a_zone_is_asked_once_per_cycle_however_many_checks(world, tmp_path):
    """With nameserver_max_age (the exporter: its shortest interval), a second check within
    that time reuses what each zone's servers answered: no query sent, the same findings;
    without it (the CLI), every check asks again."""
    from dane_monitor import settings

    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = world.dns_address

    async def twice(max_age: float) -> list[tuple[int, set[str]]]:
        checker = settings.make_checker(
            resolver=f"{host}:{port}", trust_anchor=anchor, connect_port=world.smtp_port,
            dns_timeout=1, nameservers=True, nameserver_port=port, nameserver_max_age=max_age,
        )  # fmt: skip
        out = []
        for _ in range(2):
            evidence = await checker.domain_evidence("stale-secondary-tlsa.example")
            assert evidence.nameservers is not None
            result = await checker.check_domain("stale-secondary-tlsa.example")
            codes = {f.code for f in result.all_findings() if f.code.startswith("ns-")}
            out.append((evidence.nameservers.queries, codes))
        return out

    cached = await twice(600)
    assert cached[0][0] > 0 and cached[1][0] == 0
    assert cached[0][1] == cached[1][1] == {"ns-rrset-differs", "ns-serial-lag"}
    fresh = await twice(0)
    assert fresh[0][0] > 0 and fresh[1][0] > 0


def test_the_survey_cache_has_room_for_every_zone_of_the_targets():
    """An hour's reuse is worth nothing if the cache drops zones before their targets come
    round again: room for four zones a target (its own, its MX hosts', a parent's DS)."""
    from dane_monitor.exporter.scheduler import Runner

    text = "dns: {resolver: '127.0.0.1:53'}\ntargets:\n" + "".join(
        f"  - domain: d{i}.example\n" for i in range(2000)
    )
    checker = Runner(parse(text)).checker((25,), 10.0)
    assert checker.options.nameserver_zones == 8000
    assert checker.options.nameserver_max_age == 3600.0
