"""The lean metrics profile (``metrics: {profile: lean}``): few series for a healthy target,
the same series as full wherever an alert looks, and a kept result cut to the landing page.

The alerts themselves are proven on lean series by promtool (grafana/prometheus/
dane-alerts.lean.test.yml) and against a lean exporter over the world (tests/test_grafana.py).
"""

from __future__ import annotations

import time

import pytest
from test_exporter_client import request

from dane_monitor.exporter.app import Exporter
from dane_monitor.exporter.config import Config, ConfigError, DNSSettings, Target, parse
from dane_monitor.exporter.metrics import (
    LEAN_HEALTHY_MAX,
    Outcome,
    Sample,
    lean_result,
    render_chunks,
    render_text,
    samples,
)
from dane_monitor.report import (
    DNSInfo,
    DomainResult,
    EndpointResult,
    Finding,
    HostResult,
    SenderAction,
    Severity,
    Verdict,
)

NOW = 1_800_000_000


def healthy(name: str = "example.com.", hosts: int = 2) -> DomainResult:
    """A well-run DANE domain: ``hosts`` MX hosts, each with an IPv4 and an IPv6 address
    serving ECDSA and RSA chains under secure 3 1 1 records, and two findings."""
    result = DomainResult(name, verdict=Verdict.VALID, started=NOW, duration=0.3)
    result.sender_action = SenderAction.DELIVER_AUTHENTICATED
    result.mx_dns = DNSInfo(name, "MX", "secure", "positive", ttl=3600, rrsig_expiration=NOW + 9e5)
    for h in range(hosts):
        mx = f"mx{h}.{name}"
        host = HostResult(mx, 25, preference=10 * h, tlsa_name=f"_25._tcp.{mx}")
        host.addresses = [f"192.0.2.{h + 1}", f"2001:db8::{h + 1}"]
        host.dns = [
            DNSInfo(mx, rrtype, "secure", "positive", rrsig_expiration=NOW + 8e5 + h)
            for rrtype in ("A", "AAAA")
        ] + [DNSInfo(f"_25._tcp.{mx}", "TLSA", "secure", "positive", rrsig_expiration=NOW + 7e5)]
        host.tlsa_records = ["3 1 1 " + "ab" * 32]
        host.tlsa_usable, host.tlsa_ttl, host.dane_applies = 1, 3600, True
        host.verdict, host.sender_action = Verdict.VALID, SenderAction.DELIVER_AUTHENTICATED
        host.rrsig_expiration = NOW + 7e5 + h
        for address in host.addresses:
            for k, key_type in enumerate(("ecdsa", "rsa")):
                ep = EndpointResult(address, 25, key_type, SenderAction.DELIVER_AUTHENTICATED)
                ep.verdict, ep.connected, ep.starttls_offered = Verdict.VALID, True, True
                ep.authenticated, ep.leaf_spki_sha256 = True, f"{h}{k}" * 32
                ep.leaf_not_after = NOW + 86400 * (60 + 10 * h + k)
                host.endpoints.append(ep)
        result.hosts.append(host)
    result.findings.append(Finding("tlsa-no-rollover", Severity.INFO, "publish the next key"))
    result.hosts[0].findings.append(Finding("cert-expiring", Severity.WARNING, "renew soon"))
    return result


def broken(name: str = "broken.example.") -> DomainResult:
    """mx1's RSA chain at its IPv4 address matches no record, and its IPv6 address answers
    EHLO without STARTTLS: senders defer at mx1; mx0 is fine."""
    result = healthy(name)
    host = result.hosts[1]
    host.endpoints[1].authenticated = False
    host.endpoints[1].verdict = Verdict.FAILED
    for ep in host.endpoints[2:]:
        ep.starttls_offered, ep.probe_error = False, "starttls-missing"
        ep.authenticated = ep.leaf_spki_sha256 = ep.leaf_not_after = None
    host.verdict = result.verdict = Verdict.FAILED
    host.sender_action = result.sender_action = SenderAction.DEFER
    host.findings.append(Finding("tlsa-mismatch", Severity.ERROR, "publish the record"))
    return result


def points(result: DomainResult, profile: str, success: bool = True) -> list[Sample]:
    target = result.domain.rstrip(".")
    return samples(target, result, success=success, finished=NOW, duration=0.3, profile=profile)


def of(family: str, pts: list[Sample]) -> dict[tuple[str, ...], float]:
    return {labels: value for name, labels, value in pts if name == family}


def test_the_profile_is_full_unless_the_configuration_says_lean():
    assert parse("targets: []\n").metrics.profile == "full"
    assert parse("metrics:\n  profile: lean\n").metrics.profile == "lean"
    assert parse("metrics: {profile: full}\n").metrics.profile == "full"
    with pytest.raises(ConfigError, match=r"<config>:2: profile: must be full or lean"):
        parse("metrics:\n  profile: tiny\n")
    with pytest.raises(ConfigError, match="did you mean 'profile'"):
        parse("metrics:\n  profiles: lean\n")
    with pytest.raises(ValueError, match="unknown metrics profile"):
        points(healthy(), "tiny")


@pytest.mark.parametrize("hosts", [1, 2, 5])
def test_a_healthy_target_has_at_most_10_series_in_lean(hosts):
    result = healthy(hosts=hosts)
    lean, full = points(result, "lean"), points(result, "full")
    assert len(lean) <= LEAN_HEALTHY_MAX == 10
    assert len(full) > 40 * hosts
    assert {name for name, _, _ in lean} == {
        "dane_check_success",
        "dane_verdict",
        "dane_check_duration_seconds",
        "dane_last_check_timestamp_seconds",
        "dane_findings",
        "dane_rrsig_expiry_timestamp_seconds",
        "dane_cert_not_after_timestamp_seconds",
    }
    # Whatever lean keeps of a family that is not a state set or an earliest, it keeps as is.
    for family in ("dane_check_success", "dane_findings", "dane_last_check_timestamp_seconds"):
        assert of(family, lean) == of(family, full)


def test_lean_state_sets_carry_their_current_member_only():
    for result in (healthy(), broken()):
        lean, full = points(result, "lean"), points(result, "full")
        assert of("dane_verdict", lean) == {
            labels: 1.0 for labels, v in of("dane_verdict", full).items() if v == 1.0
        }
    lean = points(broken(), "lean")
    assert of("dane_sender_action", lean) == {("broken.example", "mx1.broken.example", "25",
                                               "defer"): 1.0}  # fmt: skip
    assert of("dane_mx_verdict", lean) == {("broken.example", "mx1.broken.example", "25",
                                            "failed"): 1.0}  # fmt: skip


def test_a_troubled_host_keeps_every_series_an_alert_reads_as_in_full():
    result = broken()
    lean, full = points(result, "lean"), points(result, "full")
    mx1 = "mx1.broken.example"
    for family in ("dane_tlsa_match", "dane_starttls_offered", "dane_tlsa_records",
                   "dane_tlsa_ttl_seconds", "dane_cert_info"):  # fmt: skip
        wanted = {labels: v for labels, v in of(family, full).items() if labels[1] == mx1}
        assert wanted, family
        assert of(family, lean) == wanted, family
    # the failures the alerts select are there, with full's labels and values
    assert of("dane_tlsa_match", lean)[("broken.example", mx1, "192.0.2.2", "25", "rsa")] == 0
    assert of("dane_starttls_offered", lean)[("broken.example", mx1, "2001:db8::2", "25")] == 0
    assert of("dane_tlsa_records", lean)[("broken.example", mx1, "25", "true")] == 1
    # the healthy host has no series of its own (only the target's earliest expiries)
    earliest = {"dane_rrsig_expiry_timestamp_seconds", "dane_cert_not_after_timestamp_seconds"}
    assert not [p for p in lean if p[1][1:2] == ("mx0.broken.example",) and p[0] not in earliest]


def test_lean_keeps_one_signature_and_one_certificate_expiry_a_target_the_earliest():
    result = healthy(hosts=3)
    lean, full = points(result, "lean"), points(result, "full")
    for family in ("dane_rrsig_expiry_timestamp_seconds", "dane_cert_not_after_timestamp_seconds"):
        kept = of(family, lean)
        everything = of(family, full)
        assert len(kept) == 1 and len(everything) > 1
        (labels, value), = kept.items()  # fmt: skip
        assert value == min(everything.values())
        assert everything[labels] == value  # labelled with the host/endpoint it belongs to
    assert of("dane_cert_not_after_timestamp_seconds", lean) == {
        ("example.com", "mx0.example.com", "192.0.2.1", "25", "ecdsa"): NOW + 86400 * 60
    }


def test_a_domain_that_fails_before_any_host_keeps_its_defer_in_lean():
    result = DomainResult("bogus-mx.example.", verdict=Verdict.BOGUS, started=NOW)
    result.sender_action = SenderAction.DEFER
    result.rrsig_expiration = NOW + 100
    result.mx_dns = DNSInfo("bogus-mx.example.", "MX", "bogus", "error", reason="signature-expired")
    lean = points(result, "lean")
    assert of("dane_sender_action", lean) == {("bogus-mx.example", "", "", "defer"): 1.0}
    assert of("dane_dns_failure", lean) == {("bogus-mx.example", "bogus-mx.example", "MX",
                                             "signature-expired"): 1.0}  # fmt: skip
    assert of("dane_verdict", lean) == {("bogus-mx.example", "bogus"): 1.0}
    assert of("dane_rrsig_expiry_timestamp_seconds", lean) == {
        ("bogus-mx.example", "", ""): NOW + 100
    }


def test_lean_renders_in_the_text_format_with_headers_once():
    outcomes = []
    for result in (healthy("a.example."), broken("b.example.")):
        name = result.domain.rstrip(".")
        pts = points(result, "lean")
        outcomes.append(Outcome(name, "domain", lean_result(result), True, None, NOW, 0.3, (),
                                render_chunks(pts)))  # fmt: skip
    text = render_text(outcomes).decode()
    assert text.count("# TYPE dane_verdict gauge") == 1
    assert 'dane_verdict{target="a.example",verdict="valid"} 1.0\n' in text
    assert 'verdict="bogus"' not in text
    assert 'dane_tlsa_match{target="b.example",mx="mx1.b.example",address="192.0.2.2",' in text
    assert 'dane_tlsa_match{target="b.example",mx="mx0.b.example"' not in text


def test_the_kept_lean_result_is_what_the_landing_page_shows():
    full = broken()
    kept = lean_result(full)
    assert kept.verdict == Verdict.FAILED and kept.domain == full.domain
    assert kept.hosts == [] and kept.mx_dns is None
    assert {(f.code, f.severity) for f in kept.all_findings()} == {
        (f.code, f.severity) for f in full.all_findings()
    }
    assert all(f.message == "" for f in kept.findings)


async def test_the_landing_page_of_a_lean_exporter_shows_verdicts_and_finding_codes():
    exporter = Exporter(Config(listen="127.0.0.1:0", dns=DNSSettings(resolver="127.0.0.1:53")))
    await exporter.start()
    try:
        for result in (healthy("a.example."), broken("b.example.")):
            name = result.domain.rstrip(".")
            chunks = render_chunks(points(result, "lean"))
            exporter.scheduler.outcomes[name] = Outcome(
                name, "domain", lean_result(result), True, None, time.time(), 0.3, (), chunks
            )
            exporter.scheduler.targets[name] = Target(name, "domain")
        page = (await request(exporter.url)).text
        metrics = (await request(exporter.url + "metrics")).text
    finally:
        await exporter.close()
    assert "<td>failed</td>" in page and "<td>valid</td>" in page
    assert "cert-expiring, tlsa-mismatch, tlsa-no-rollover" in page
    assert (
        'dane_sender_action{target="b.example",mx="mx1.b.example",port="25",action="defer"} 1.0'
        in metrics
    )
