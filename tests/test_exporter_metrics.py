"""The exporter's metrics for every scenario of the catalogue, checked against the local world.

Each scenario is checked once through the exporter's Runner (the code /metrics and /probe
use), rendered to the Prometheus text format and parsed back: the values are what
Prometheus would store. A table names the distinctive series of each scenario; every
scenario also gets the generic checks (one verdict set, success matches the verdict, label
values bounded, digests only on dane_cert_info).
"""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dane_monitor.exporter.app import _render
from dane_monitor.exporter.config import Config, DNSSettings
from dane_monitor.exporter.metrics import FAMILIES, VERDICTS, families, render_text
from dane_monitor.exporter.scheduler import Runner
from dane_monitor.world import CATALOGUE, World

Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def canonical(samples: list[Sample]) -> list[tuple]:
    return sorted((n, tuple(sorted(labels.items())), v) for n, labels, v in samples)


def pick(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = pick(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0][2]


def world_config(world: World, anchor) -> Config:
    host, port = world.dns_address
    return Config(
        dns=DNSSettings(resolver=f"{host}:{port}", trust_anchor=str(anchor)),
        connect_port=world.smtp_port,
    )


@pytest.fixture(scope="module")
def scraped(dane_world: World, dane_trust_anchor) -> dict[str, list[Sample]]:
    """Scenario name → the samples its check renders."""
    runner = Runner(world_config(dane_world, dane_trust_anchor))

    async def run_all():
        names = [d.name.rstrip(".") for d in dane_world.domains.values()]
        outcomes = await asyncio.gather(
            *(runner.run(n, "domain", (25,), 10.0, slim=False) for n in names)
        )
        out = {}
        for o in outcomes:
            fast = parse(render_text([o]).decode())  # /metrics: lines rendered once per check
            # ... equal to prometheus_client's own rendering (/probe)
            assert canonical(fast) == canonical(parse(_render(families([o])).decode()))
            out[o.target.split(".")[0]] = fast
        return out

    return asyncio.run(run_all())


def target(scenario: str) -> str:
    return f"{scenario}.example"


# scenario → [(metric, labels, value)]; labels match as a subset, every match must equal value.
TABLE: dict[str, list[tuple[str, dict[str, str], float]]] = {
    "good-ee": [
        ("dane_tlsa_match", {"key_type": "ecdsa"}, 1),
        ("dane_sender_action", {"action": "deliver-authenticated"}, 1),
        ("dane_sender_action", {"action": "defer"}, 0),
        ("dane_starttls_offered", {}, 1),
        ("dane_tlsa_records", {"usable": "true"}, 1),
        ("dane_tlsa_records", {"usable": "false"}, 0),
        ("dane_tlsa_ttl_seconds", {}, 300),
        ("dane_dnssec_secure", {"rrtype": "TLSA", "status": "secure"}, 1),
        ("dane_cert_info", {"key_type": "ecdsa"}, 1),
    ],
    "good-ta": [("dane_tlsa_match", {}, 1)],
    "tlsa-mismatch": [
        ("dane_tlsa_match", {"key_type": "ecdsa"}, 0),
        ("dane_verdict", {"verdict": "failed"}, 1),
        ("dane_mx_verdict", {"verdict": "failed"}, 1),
        ("dane_sender_action", {"action": "defer"}, 1),
        ("dane_findings", {"code": "tlsa-mismatch", "severity": "error"}, 1),
        ("dane_starttls_offered", {}, 1),
    ],
    "ta-name-mismatch": [("dane_tlsa_match", {}, 0)],
    "digest-agility": [("dane_tlsa_match", {}, 0)],
    "dual-key-both": [
        ("dane_tlsa_match", {"key_type": "ecdsa"}, 1),
        ("dane_tlsa_match", {"key_type": "rsa"}, 1),
    ],
    "dual-key-ecdsa-only": [
        ("dane_tlsa_match", {"key_type": "ecdsa"}, 1),
        ("dane_tlsa_match", {"key_type": "rsa"}, 0),
    ],
    "rollover": [
        ("dane_tlsa_match", {}, 1),
        ("dane_tlsa_records", {"usable": "true"}, 2),
        ("dane_findings", {"code": "tlsa-stale-record", "severity": "info"}, 1),
    ],
    "bogus-expired": [
        ("dane_verdict", {"verdict": "bogus"}, 1),
        ("dane_check_success", {}, 1),
    ],
    "bogus-signature": [("dane_verdict", {"verdict": "bogus"}, 1)],
    "bogus-ds": [("dane_verdict", {"verdict": "bogus"}, 1)],
    "no-starttls": [
        ("dane_starttls_offered", {}, 0),
        ("dane_verdict", {"verdict": "failed"}, 1),
        ("dane_sender_action", {"action": "defer"}, 1),
        ("dane_findings", {"code": "starttls-missing"}, 1),
    ],
    "no-tlsa": [
        ("dane_verdict", {"verdict": "no-dane"}, 1),
        ("dane_tlsa_records", {}, 0),
        ("dane_sender_action", {"action": "deliver-opportunistic"}, 1),
    ],
    "unusable-only": [
        ("dane_tlsa_records", {"usable": "true"}, 0),
        ("dane_sender_action", {"action": "deliver-unauthenticated-tls"}, 1),
    ],
    "insecure-with-tlsa": [
        ("dane_verdict", {"verdict": "insecure"}, 1),
        ("dane_dnssec_secure", {"rrtype": "MX", "status": "insecure"}, 1),
    ],
    "null-mx": [("dane_verdict", {"verdict": "no-mail"}, 1)],
    # A server that hangs or breaks the dialogue is the domain's failure: a verdict (decided),
    # and senders defer.
    "hang": [
        ("dane_check_success", {}, 1),
        ("dane_verdict", {"verdict": "failed"}, 1),
        ("dane_sender_action", {"action": "defer"}, 1),
        ("dane_findings", {"code": "smtp-error", "severity": "error"}, 1),
    ],
    "huge-line": [("dane_check_success", {}, 1), ("dane_verdict", {"verdict": "failed"}, 1)],
    "close-after-ehlo": [
        ("dane_check_success", {}, 1),
        ("dane_verdict", {"verdict": "failed"}, 1),
    ],
    "tls-failure": [("dane_findings", {"code": "tls-failed"}, 1)],
    "ee-expired-cert": [
        ("dane_tlsa_match", {}, 1),
        ("dane_findings", {"code": "cert-expiring", "severity": "warning"}, 1),
    ],
    "two-mx-one-broken": [("dane_verdict", {"verdict": "failed"}, 1)],
    "insecure-mx-tlsa-mismatch": [("dane_tlsa_match", {}, 0)],
}

# Families that must be absent for a scenario (no usable TLSA applies, or nothing to probe).
ABSENT: dict[str, set[str]] = {
    "no-starttls": {"dane_tlsa_match", "dane_cert_info"},
    "no-tlsa": {"dane_tlsa_match", "dane_tlsa_ttl_seconds"},
    "unusable-only": {"dane_tlsa_match"},
    "insecure-with-tlsa": {"dane_tlsa_match", "dane_tlsa_records"},
    "null-mx": {"dane_tlsa_match", "dane_sender_action", "dane_mx_verdict"},
    "bogus-expired": {"dane_tlsa_match", "dane_starttls_offered"},
    "hang": {"dane_tlsa_match", "dane_starttls_offered"},
}


@pytest.mark.parametrize("scenario", sorted(TABLE), ids=sorted(TABLE))
def test_distinctive_series_of_each_scenario(scraped, scenario):
    samples = scraped[scenario]
    for name, labels, expected in TABLE[scenario]:
        found = pick(samples, name, target=target(scenario), **labels)
        assert found, (name, labels, [s for s in samples if s[0] == name])
        assert {s[2] for s in found} == {expected}, (name, labels, found)
    present = {s[0] for s in samples}
    assert not ABSENT.get(scenario, set()) & present


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[sc.name for sc in CATALOGUE])
def test_every_scenario_has_one_verdict_and_bounded_labels(scraped, scenario):
    samples = scraped[scenario.name.split(".")[0]]
    t = target(scenario.name)
    verdicts = {s[1]["verdict"]: s[2] for s in pick(samples, "dane_verdict", target=t)}
    assert set(verdicts) == set(VERDICTS)
    assert [v for v, x in verdicts.items() if x == 1] == [scenario.expect.verdict]
    success = value(samples, "dane_check_success", target=t)
    assert success == (0 if scenario.expect.verdict == "error" else 1)
    assert value(samples, "dane_last_check_timestamp_seconds", target=t) > 1.7e9
    assert 0 < value(samples, "dane_check_duration_seconds", target=t) < 10
    for code in scenario.expect.findings:
        assert sum(s[2] for s in pick(samples, "dane_findings", target=t, code=code)) >= 1, code
    # state sets: each (mx, port) has exactly one verdict; sender action at most one
    for name in ("dane_mx_verdict", "dane_sender_action"):
        groups: dict[tuple[str, str], float] = {}
        for _, labels, v in pick(samples, name):
            key = (labels["mx"], labels["port"])
            groups[key] = groups.get(key, 0) + v
        assert all(v <= 1 for v in groups.values()), (name, groups)
        if name == "dane_mx_verdict":
            assert all(v == 1 for v in groups.values()), groups
    for status_set in ("dane_dnssec_secure",):
        per_lookup: dict[tuple[str, str], float] = {}
        for _, labels, v in pick(samples, status_set):
            key = (labels["name"], labels["rrtype"])
            per_lookup[key] = per_lookup.get(key, 0) + v
        assert per_lookup and all(v == 1 for v in per_lookup.values()), per_lookup
    _assert_bounded_labels(samples)


BOUNDED = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:-]*$|^$")  # no spaces: no free text
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _assert_bounded_labels(samples: list[Sample]) -> None:
    declared = {f.name: set(f.labels) for f in FAMILIES}
    for name, labels, _ in samples:
        assert set(labels) == declared[name], (name, labels)
        for key, text in labels.items():
            if key == "spki_sha256":
                assert name == "dane_cert_info" and HEX64.match(text), (name, text)
            else:
                assert BOUNDED.match(text), (name, key, text)
                assert not HEX64.search(text), (name, key, text)


def test_the_mx_host_target_kind(dane_world: World, dane_trust_anchor):
    runner = Runner(world_config(dane_world, dane_trust_anchor))
    mx = dane_world.domains["good-ta"].hosts[0].name.rstrip(".")
    outcome = asyncio.run(runner.run(mx, "mx", (25,), 10.0, slim=False))
    samples = parse(_render(families([outcome])).decode())
    assert value(samples, "dane_verdict", target=mx, verdict="valid") == 1
    assert value(samples, "dane_tlsa_match", target=mx, mx=mx, port="25") == 1


def test_a_check_past_its_deadline_is_a_timeout_not_a_hang(dane_world, dane_trust_anchor):
    import socket
    from dataclasses import replace

    # A resolver that never answers: DNS tries (2 s each) outlast the 0.3 s deadline.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        config = world_config(dane_world, dane_trust_anchor)
        dns = replace(config.dns, resolver=f"127.0.0.1:{hole.getsockname()[1]}")
        runner = Runner(replace(config, dns=dns))
        check = runner.run("good-ee.example", "domain", (25,), 0.3, slim=False)
        outcome = asyncio.run(asyncio.wait_for(check, 60))  # 60 s: a hang guard only
    # Cut at its deadline (check-timeout), not left to run into the DNS tries' own failure.
    assert (outcome.success, outcome.failure) == (False, "timeout")
    samples = parse(_render(families([outcome])).decode())
    assert value(samples, "dane_findings", target="good-ee.example", code="check-timeout") == 1
    assert not pick(samples, "dane_findings", code="dns-error")
    assert value(samples, "dane_verdict", target="good-ee.example", verdict="error") == 1
    assert [f.message for f in outcome.result.findings] == ["the check did not finish within 0.3s"]
    assert outcome.duration >= 0.3 - 0.01  # at the deadline, not before


def test_render_escapes_label_values_as_prometheus_client_does():
    from dane_monitor.exporter.metrics import Outcome, render_chunks

    points = [("dane_findings", ('we"ird\\name\nx', "code", "error"), 2.0)]
    outcome = Outcome("t", "domain", None, True, None, 0.0, 0.0, tuple(points),  # type: ignore[arg-type]
                      render_chunks(points))  # fmt: skip
    assert canonical(parse(render_text([outcome]).decode())) == canonical(
        parse(_render(families([outcome])).decode())
    )
    assert parse(render_text([outcome]).decode())[0][1]["target"] == 'we"ird\\name\nx'


def test_a_check_that_crashes_is_reported_not_fatal(dane_world, dane_trust_anchor, caplog):
    """A bug in the checker (here: an exception from the validator) gives check-crashed for
    that target, and the exporter keeps running."""
    runner = Runner(world_config(dane_world, dane_trust_anchor))

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    runner.validator.lookup = broken  # type: ignore[method-assign]
    outcome = asyncio.run(runner.run("good-ee.example", "domain", (25,), 5.0, slim=False))
    assert (outcome.success, outcome.failure) == (False, "exception")
    samples = parse(_render(families([outcome])).decode())
    assert value(samples, "dane_findings", target="good-ee.example", code="check-crashed") == 1
    assert value(samples, "dane_verdict", target="good-ee.example", verdict="error") == 1
    assert "check of good-ee.example crashed" in caplog.text


def test_the_exporter_checks_with_its_configured_expiry_windows(dane_world, dane_trust_anchor):
    """thresholds: in the exporter's config reach the checker: the world's signatures last
    two weeks, so a 20-day warning window reports them and the default 3-day one does not."""
    from dataclasses import replace

    from dane_monitor.settings import Thresholds

    def expiring(config) -> list[tuple[str, ...]]:
        outcome = asyncio.run(Runner(config).run("good-ee.example", "domain", (25,), 10.0,
                                                 slim=False))  # fmt: skip
        samples = parse(_render(families([outcome])).decode())
        return [s[1]["severity"] for s in samples
                if s[0] == "dane_findings" and s[1].get("code") == "rrsig-expiring"]  # fmt: skip

    config = world_config(dane_world, dane_trust_anchor)
    assert expiring(config) == []
    wide = replace(config, thresholds=Thresholds(rrsig_warning_days=20, rrsig_critical_days=1))
    assert expiring(wide) == ["warning"]
    assert not Runner(config).same_settings(wide)  # a reload rebuilds the checkers
