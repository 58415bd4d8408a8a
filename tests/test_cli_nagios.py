"""`check --format nagios`: one status line with performance data that Nagios, Icinga and
their graphing add-ons parse, the same state as the exit code, and expiry thresholds that
the operator sets (and that every output format honours)."""

from __future__ import annotations

import json
import re
import time

import pytest

from dane_monitor import nagios
from dane_monitor.cli import main
from dane_monitor.report import DomainResult, Finding, Severity, Verdict
from dane_monitor.settings import Thresholds
from dane_monitor.world import World

STATE = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
# 'label'=value[UOM];[warn];[crit];[min];[max] (Monitoring Plugins Development Guidelines)
PERF = re.compile(
    r"^(?P<label>[^=' ]+)=(?P<value>U|-?\d+(?:\.\d+)?)(?P<uom>s|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>[^;]*))?(?:;(?P<crit>[^;]*))?(?:;(?P<min>[^;]*))?(?:;(?P<max>[^;]*))?$"
)
LABELS = [
    "rrsig_expiry_days",
    "cert_expiry_days",
    "endpoints_authenticated",
    "endpoints_failed",
    "duration",
]


@pytest.fixture(scope="module")
def dns_args(dane_world: World, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    anchor = dane_world.write_trust_anchor(tmp_path_factory.mktemp("ta") / "anchor.ds")
    host, port = dane_world.dns_address
    return ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
            "--connect-port", str(dane_world.smtp_port)]  # fmt: skip


def check(capsys, domain: str, dns_args: list[str], *extra: str) -> tuple[int, str]:
    code = main(["check", domain, *dns_args, *extra])
    return code, capsys.readouterr().out


def parse_status(line: str) -> tuple[str, str, dict[str, re.Match[str]]]:
    match = re.match(r"^DANE (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+) \| (.+)$", line)
    assert match, line
    perf = {}
    for item in match.group(3).split(" "):
        m = PERF.match(item)
        assert m, f"not plugin perfdata: {item!r}"
        perf[m.group("label")] = m
    return match.group(1), match.group(2), perf


@pytest.mark.parametrize(
    ("scenario", "state", "words"),
    [
        ("good-ee", "OK", "good-ee.example: valid, DANE senders deliver here, authenticated"),
        ("tlsa-mismatch", "CRITICAL", "tlsa-mismatch.example: failed, DANE senders DEFER"),
        ("bogus-expired", "CRITICAL", "bogus-expired.example: bogus"),
        ("no-tlsa", "WARNING", "no-tlsa.example: no-dane"),
    ],
)
def test_status_line_state_and_perfdata(capsys, dns_args, scenario, state, words):
    domain = f"{scenario}.example"
    code, out = check(capsys, domain, dns_args, "--format", "nagios")
    text_code, _ = check(capsys, domain, dns_args)
    assert code == text_code  # the state is the text output's exit code
    status, headline, perf = parse_status(out.splitlines()[0])
    assert (status, STATE[code]) == (state, state)
    assert headline.startswith(words)
    assert list(perf) == LABELS  # the same series in every state
    assert perf["rrsig_expiry_days"].group("warn", "crit") == ("3:", "1:")
    assert perf["cert_expiry_days"].group("warn") == "14:"
    assert perf["duration"].group("uom") == "s"
    for line in out.splitlines()[1:]:  # long output: the findings that drive the state
        assert re.match(r"^(ERROR|WARNING) [a-z0-9-]+ ", line), line


def test_a_partial_failure_names_the_senders_that_defer(capsys, dns_args):
    code, out = check(capsys, "dual-key-ecdsa-only.example", dns_args, "--format", "nagios")
    status, headline, perf = parse_status(out.splitlines()[0])
    assert (code, status) == (2, "CRITICAL")
    assert "DANE senders that negotiate RSA DEFER mail" in headline
    assert perf["endpoints_authenticated"].group("value") == "1"
    assert perf["endpoints_failed"].group("value") == "1"


def test_perfdata_values_agree_with_the_json_output(capsys, dns_args):
    _, out = check(capsys, "tlsa-mismatch.example", dns_args, "--json")
    doc = json.loads(out)
    now = time.time()
    _, out = check(capsys, "tlsa-mismatch.example", dns_args, "--format", "nagios")
    first, *rest = out.splitlines()
    _, headline, perf = parse_status(first)
    endpoints = [ep for host in doc["hosts"] for ep in host["endpoints"]]
    leaf = min(ep["leaf_not_after"] for ep in endpoints if ep["leaf_not_after"])
    days = float(perf["rrsig_expiry_days"].group("value"))
    assert days == pytest.approx((doc["rrsig_expiration"] - now) / 86400, abs=0.01)
    assert float(perf["cert_expiry_days"].group("value")) == pytest.approx(
        (leaf - now) / 86400, abs=0.01
    )
    assert int(perf["endpoints_authenticated"].group("value")) == sum(
        1 for ep in endpoints if ep["authenticated"]
    )
    failed = sum(1 for ep in endpoints if ep["sender_action"] == "defer")
    assert failed >= 1
    assert int(perf["endpoints_failed"].group("value")) == failed
    assert perf["endpoints_failed"].group("crit") == "0"  # any failed endpoint is critical
    assert "(tlsa-mismatch" in headline
    assert any(line.startswith("ERROR tlsa-mismatch mx1.tlsa-mismatch.example.") for line in rest)


@pytest.mark.parametrize("output", ["nagios", "text", "json"])
@pytest.mark.parametrize(
    ("thresholds", "code", "finding"),
    [
        (["--rrsig-warning", "400"], 1, "rrsig-expiring"),
        (["--rrsig-warning", "500", "--rrsig-critical", "400"], 2, "rrsig-expiring"),
        (["--cert-warning", "LEAF+1"], 1, "cert-expiring"),
        (["--rrsig-warning", "0", "--rrsig-critical", "0", "--cert-warning", "0"], 0, None),
    ],
)
def test_expiry_thresholds_set_the_state_in_every_format(
    capsys, dane_world, dns_args, thresholds, code, finding, output
):
    """Windows longer than the world's signatures (days) and leaf certificate (LEAF days)
    live make the same healthy domain WARNING or CRITICAL; windows of 0 silence it."""
    leaf = dane_world.domains["good-ee"].hosts[0].endpoints[0].chains[0].leaf
    leaf_days = (leaf.not_valid_after_utc.timestamp() - time.time()) / 86400
    thresholds = [str(int(leaf_days) + 1) if t == "LEAF+1" else t for t in thresholds]
    got, out = check(capsys, "good-ee.example", dns_args, *thresholds, "--format", output)
    assert got == code
    if output == "nagios":
        status, headline, perf = parse_status(out.splitlines()[0])
        assert status == STATE[code]
        if finding:
            assert f"({finding})" in headline
        windows = dict(zip(thresholds[::2], thresholds[1::2], strict=True))
        if "--rrsig-warning" in windows:
            assert perf["rrsig_expiry_days"].group("warn") == windows["--rrsig-warning"] + ":"
        if "--cert-warning" in windows:
            assert perf["cert_expiry_days"].group("warn") == windows["--cert-warning"] + ":"
    elif output == "json":
        codes = {f["code"] for f in json.loads(out)["findings"]}
        assert (finding in codes) if finding else not codes & {"rrsig-expiring", "cert-expiring"}
    elif finding:
        assert finding in out


def test_json_is_still_an_alias(capsys, dns_args):
    code, out = check(capsys, "good-ee.example", dns_args, "--json")
    assert code == 0
    assert json.loads(out)["verdict"] == "valid"


# -- the formatter on its own: a pure function of a result, thresholds and the time ---------


def test_values_that_could_not_be_determined_are_u_and_text_cannot_break_the_line():
    result = DomainResult("mx.example.", mx_only=True, verdict=Verdict.ERROR, duration=1.25)
    result.findings.append(
        Finding("check-timeout", Severity.ERROR, "no answer | from\nthe resolver", mx="mx.example.")
    )
    out = nagios.render_result(result, Thresholds(5, 2, 30), now=0.0, deadline=10)
    first, *rest = out.splitlines()
    status, headline, perf = parse_status(first)
    assert status == "UNKNOWN"
    assert headline == "mx.example: error: no answer / from the resolver (check-timeout)"
    assert perf["rrsig_expiry_days"].group(0) == "rrsig_expiry_days=U;5:;2:"
    assert perf["cert_expiry_days"].group(0) == "cert_expiry_days=U;30:"
    assert perf["duration"].group(0) == "duration=1.250s;;;0;10"
    assert rest == ["ERROR check-timeout mx.example.: no answer / from the resolver"]


def test_days_are_counted_from_now():
    result = DomainResult("example.de.", verdict=Verdict.VALID, rrsig_expiration=86400 * 10)
    out = nagios.render_result(result, Thresholds(), now=86400 * 7.5)
    _, _, perf = parse_status(out)
    assert perf["rrsig_expiry_days"].group("value") == "2.50"


def test_many_codes_are_summarised():
    result = DomainResult("example.de.", verdict=Verdict.VALID)
    for code in ("a-one", "b-two", "c-three", "d-four", "e-five"):
        result.findings.append(Finding(code, Severity.WARNING, f"{code} happened"))
    out = nagios.render_result(result, Thresholds(), now=0.0)
    status, headline, _ = parse_status(out.splitlines()[0])
    assert status == "WARNING"
    assert headline.endswith("(a-one, b-two, c-three, +2 more)")
    assert len(out.splitlines()) == 6
