"""The dashboard and the alert rules: they parse, they say what the exporter really emits,
promtool's unit tests pass, and the alerts fire from real data in a real Prometheus.

Skipped without promtool/prometheus, unless DANE_REQUIRE_TOOLS=1 (then they fail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_exporter_prometheus import Prometheus, start_process, stop_process

from dane_monitor.world import CATALOGUE

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
RULES = GRAFANA / "prometheus" / "dane-alerts.yml"
RULE_TESTS = GRAFANA / "prometheus" / "dane-alerts.test.yml"
# The same alerts from the series of the lean metrics profile (metrics: {profile: lean}).
LEAN_RULE_TESTS = GRAFANA / "prometheus" / "dane-alerts.lean.test.yml"
DASHBOARD = GRAFANA / "dashboards" / "dane.json"
GRAFANA_ALERTS = GRAFANA / "provisioning" / "alerting" / "dane-alerts.yaml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "dane.yml"
PROMTOOL = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
PROMETHEUS = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")

# What Grafana substitutes before a query reaches Prometheus.
VARIABLES = {"$target": ".*", "$mx": ".*", "$__rate_interval": "5m", "${datasource}": "x"}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "rate",
    "time",
    "absent_over_time",
    "present_over_time",
    "increase",
    "label_values",
    "inf",
    "nan",
}


def need(tool: str | None, name: str) -> str:
    if tool is None:
        if os.environ.get("DANE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {name} is not installed")
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus)")
    return tool


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    out = []
    for panel in dashboard()["panels"]:
        out += [t["expr"] for t in panel.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            out.append(var["query"]["query"])
    return out


def grafana_alert_exprs() -> list[str]:
    doc = yaml.safe_load(GRAFANA_ALERTS.read_text())
    return [
        d["model"]["expr"]
        for g in doc["groups"]
        for r in g["rules"]
        for d in r["data"]
        if d["datasourceUid"] != "__expr__"
    ]


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def substitute(expr: str) -> str:
    for var, value in VARIABLES.items():
        expr = expr.replace(var, value)
    # label_values() is a Grafana function, not PromQL: check the selector inside it
    m = re.fullmatch(r"label_values\((.*),\s*\w+\)", expr)
    return m.group(1) if m else expr


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not names
    expr = re.sub(r"\{[^}]*\}", "", expr)  # nor are label names
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # nor durations
    expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", w)}


# -- the rules ------------------------------------------------------------------------------


def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    promtool = need(PROMTOOL, "promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 16 rules found" in check.stdout
    run = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name, LEAN_RULE_TESTS.name],
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == 2, run.stdout


def fired_alerts(path: Path) -> dict[str, list]:
    """What each alert's unit tests expect to fire, by alert name."""
    fired: dict[str, list] = {}
    for t in yaml.safe_load(path.read_text())["tests"]:
        for case in t.get("alert_rule_test", []):
            fired.setdefault(case["alertname"], []).append((case["eval_time"], case["exp_alerts"]))
    return fired


@pytest.mark.parametrize("tests", [RULE_TESTS, LEAN_RULE_TESTS], ids=["full", "lean"])
def test_every_alert_has_a_unit_test_that_fires_it(tests):
    fired = {name for name, cases in fired_alerts(tests).items() if any(e for _, e in cases)}
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert fired == alerts


def test_the_lean_profile_fires_the_same_alerts_as_the_full_one():
    # Same alert, same labels and annotations, at the same times: no rule needs full.
    assert fired_alerts(LEAN_RULE_TESTS) == fired_alerts(RULE_TESTS)


def test_every_alert_says_what_to_do():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_grafana_alerts_are_generated_from_the_prometheus_rules():
    check = subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    prom = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    graf = yaml.safe_load(GRAFANA_ALERTS.read_text())
    assert graf["apiVersion"] == 1
    rules = {r["title"]: r for g in graf["groups"] for r in g["rules"]}
    assert set(rules) == set(prom)
    for name, rule in rules.items():
        assert rule["for"] == prom[name].get("for", "0s")
        assert rule["labels"] == prom[name]["labels"]
        assert rule["condition"] == "B"
    assert len({r["uid"] for r in rules.values()}) == len(rules)


# -- the dashboard --------------------------------------------------------------------------


def test_the_dashboard_provisions_from_a_file():
    board = dashboard()
    assert "__inputs" not in board  # provisioning cannot answer import prompts
    assert board["uid"] == "dane-monitor"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"target", "mx"} <= set(variables)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert x >= 0 and x + w <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("description"), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    provider = yaml.safe_load(PROVIDER.read_text())
    assert provider["providers"][0]["type"] == "file"
    titles = {p["title"] for p in board["panels"]}
    for wanted in (
        "TLSA match over time",
        "Current findings",
        "Check duration",
        "Days until the earliest DNSSEC signature expiry",
        "Days until certificate expiry",
        "Exporter",
        "What each kind of sender does (sender profiles)",
        "What senders report (TLS-RPT)",
        "DANE sessions senders reported (last day)",
    ):
        assert wanted in titles


def test_every_promql_expression_parses():
    promtool = need(PROMTOOL, "promtool")
    exprs = [substitute(e) for e in dashboard_exprs() + grafana_alert_exprs()]
    assert len(exprs) > 25
    rules = {
        "groups": [
            {
                "name": "parse",
                "rules": [
                    {"record": f"dane_parse:expr_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dane-parse-{os.getpid()}.yml"
    path.write_text(yaml.safe_dump(rules))
    try:
        check = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True
        )
    finally:
        path.unlink()
    assert check.returncode == 0, check.stdout + check.stderr


# -- against the exporter on the local world ----------------------------------------------


def _scrape(url: str) -> str:
    with urllib.request.urlopen(f"http://{url}/metrics", timeout=30) as r:
        return r.read().decode()


# Only the full profile has a state-set member at 0: none left means every target's result
# is from a lean check.
FULL_ONLY = re.compile(r"^dane_verdict\{.*\} 0(\.0)?$", re.M)


@pytest.fixture(scope="module", params=["full", "lean"])
def demo(request, tmp_path_factory):
    """The demo exporter over the catalogue, in each metrics profile (the rules and the
    dashboard say they work in both)."""
    profile = request.param
    tmp = tmp_path_factory.mktemp(f"demo-{profile}")
    proc, out, url = start_process(
        ["demo", "--listen", "127.0.0.1:0", "--interval", "10s", "--dir", str(tmp / "demo")],
        tmp / "demo.log",
        r"^exporter\s+http://(\S+)/$",
    )
    try:
        # Some series exist only once something happened (a failure, a finished cycle):
        # wait for the first full cycle over the catalogue.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if re.search(r"^dane_exporter_cycles_total [1-9]", _scrape(url), re.M):
                break
            time.sleep(0.5)
        # The demo's own configuration, reloaded with TLS-RPT reports accepted (the TLS-RPT
        # row and alert read series that exist once reports arrived) and, for lean, switched
        # to lean: every target is checked again and its series replaced.
        config = tmp / "demo" / "dane-exporter.yml"
        extra = "tlsrpt: {enabled: true}\n"
        if profile == "lean":
            extra += "metrics: {profile: lean}\n"
        config.write_text(config.read_text() + extra)
        reload = urllib.request.Request(f"http://{url}/-/reload", method="POST")
        with urllib.request.urlopen(reload, timeout=30) as r:
            assert r.status == 200
        post_reports(url)
        if profile == "lean":
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and FULL_ONLY.search(_scrape(url)):
                time.sleep(0.5)
            assert not FULL_ONLY.search(_scrape(url)), "targets still in the full profile"
        yield url, tmp
    finally:
        stop_process(proc, out)


# A sender's daily report of DANE failures at a demo domain (a key rollover gone wrong at one
# MX host: 57 of 1,037 sessions failed), as a large mailbox provider sends it.
REPORTED_DOMAIN = "good-ee.example"


def post_reports(url: str) -> None:
    """POST /tlsrpt: one report counted, one refused (wrong content type)."""
    from tlsrpt_samples import BIG_TLSA_FAILURES, as_gzip

    report = json.loads(json.dumps(BIG_TLSA_FAILURES).replace("example.de", REPORTED_DOMAIN))
    posts = [(as_gzip(report), "application/tlsrpt+gzip", 201), (b"{}", "text/plain", 415)]
    for body, kind, status in posts:
        post = urllib.request.Request(f"http://{url}/tlsrpt", data=body, method="POST",
                                      headers={"Content-Type": kind})  # fmt: skip
        try:
            with urllib.request.urlopen(post, timeout=30) as r:
                got, text = r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            got, text = exc.code, exc.read().decode()
        assert got == status, (kind, got, text)


def exposed_names(url: str) -> set[str]:
    names = set()
    for path in ("/metrics", "/probe?target=good-ee.example"):
        with urllib.request.urlopen(f"http://{url}{path}", timeout=60) as r:
            text = r.read().decode()
        names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    return names


def test_every_metric_in_the_dashboard_and_the_alerts_is_emitted(demo):
    url, _ = demo
    names = exposed_names(url) | {"up"}
    used = set()
    for expr in dashboard_exprs() + grafana_alert_exprs() + rule_exprs():
        used |= metric_names(substitute(expr))
    assert {"dane_tlsa_match", "dane_verdict", "dane_findings"} <= used
    assert used <= names, sorted(used - names)


def test_a_healthy_target_has_at_most_10_series_in_the_lean_profile(demo):
    url, _ = demo
    text = _scrape(url)
    per_target: dict[str, int] = {}
    for target in re.findall(r'^dane_[a-z_]+\{target="([^"]+)"', text, re.M):
        per_target[target] = per_target.get(target, 0) + 1
    healthy = {f"{sc.name}.example" for sc in CATALOGUE if sc.expect.verdict == "valid"}
    assert len(healthy & set(per_target)) > 10
    most = max(per_target[t] for t in healthy & set(per_target))
    if FULL_ONLY.search(text):  # the full profile: the state sets alone are more
        assert most > 10
    else:
        assert most <= 10, {t: per_target[t] for t in healthy if per_target.get(t, 0) > 10}


def test_probe_answers_with_every_series_whatever_the_profile(demo):
    # /probe is one target for a person or a blackbox-style job: always the full profile.
    url, _ = demo
    with urllib.request.urlopen(f"http://{url}/probe?target=good-ee.example", timeout=60) as r:
        text = r.read().decode()
    # (prometheus_client orders the labels by name)
    assert re.search(r'^dane_verdict\{.*verdict="bogus"\} 0', text, re.M)
    assert re.search(r'^dane_tlsa_match\{.*target="good-ee.example"\} 1', text, re.M)
    assert "dane_dnssec_secure{" in text


def test_the_alerts_fire_from_real_data(demo):
    prometheus = need(PROMETHEUS, "prometheus")
    need(PROMTOOL, "promtool")
    url, tmp = demo
    # The rules as shipped, with `for:` shortened: promtool's unit tests prove the durations;
    # this proves the expressions select the right series from what the exporter emits.
    rules = tmp / "rules.yml"
    rules.write_text(re.sub(r"for: \S+", "for: 0s", RULES.read_text()))
    prom = Prometheus(
        prometheus,
        tmp,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        "  - job_name: dane\n"
        f"    static_configs: [{{targets: ['{url}']}}]\n",
    )
    try:
        firing = 'ALERTS{alertstate="firing"}'
        by_alert: dict[str, set[str]] = {}

        def ready(result) -> bool:
            by_alert.clear()
            for metric, _ in result:
                where = metric.get("target", metric.get("domain", ""))
                by_alert.setdefault(metric["alertname"], set()).add(where)
            # DANEExporterDown (no `for:` here) fires at Prometheus's first evaluations,
            # before its first scrape, and was once seen beside the DANE alerts on a loaded
            # machine: wait until it has resolved, and fail below if it never does.
            wanted = {"DANETLSAMismatch", "DANEDNSSECBogus", "DANESTARTTLSMissing",
                      "DANESendersReportFailures", "DANESenderProfileDefers"}  # fmt: skip
            return wanted <= set(by_alert) and "DANEExporterDown" not in by_alert

        prom.wait(firing, ready, timeout=60)
        expected = {
            "DANETLSAMismatch": {
                "tlsa-mismatch.example",
                "digest-agility.example",
                "ta-name-mismatch.example",
                "two-mx-one-broken.example",
            },
            "DANEDNSSECBogus": {
                "bogus-expired.example",
                "bogus-signature.example",
                "bogus-ds.example",
            },
            "DANESTARTTLSMissing": {"no-starttls.example"},
            # the report posted by the demo fixture (post_reports)
            "DANESendersReportFailures": {REPORTED_DOMAIN},
            # valid for RFC 7672 senders, but GnuTLS's DANE (Exim) does not build the chain up
            # to a 2 0 0 root the server does not send: that sender defers
            "DANESenderProfileDefers": {"ta-root-full.example"},
            "DANESendersDefer": {
                "no-starttls.example",
                "tls-failure.example",
                "starttls-refused.example",
            },
        }
        for alert, targets in expected.items():
            assert targets <= by_alert.get(alert, set()), (alert, by_alert.get(alert))
        healthy = {f"{sc.name}.example" for sc in CATALOGUE if sc.expect.verdict == "valid"}
        for alert in (
            "DANETLSAMismatch",
            "DANEDNSSECBogus",
            "DANESTARTTLSMissing",
            "DANESendersDefer",
            "DANECheckFailing",
        ):
            assert not (by_alert.get(alert, set()) & healthy), (alert, by_alert[alert] & healthy)
        assert "DANEExporterDown" not in by_alert
    finally:
        prom.stop()


def test_the_tlsrpt_and_profile_panels_show_real_data(demo):
    """The TLS-RPT row and the sender-profile panels, queried in a real Prometheus scraping
    the demo exporter: the report posted by the fixture (57 of 1,037 DANE sessions failed:
    50 tlsa-invalid, 7 validation-failure) and the refused post are there, and Exim's
    prediction for ta-root-full (defers: the 2 0 0 root is not sent)."""
    prometheus = need(PROMETHEUS, "prometheus")
    url, tmp = demo
    directory = tmp / "panels"
    directory.mkdir(exist_ok=True)
    prom = Prometheus(
        prometheus,
        directory,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: dane\n"
        f"    static_configs: [{{targets: ['{url}']}}]\n",
    )
    try:
        prom.wait("dane_tlsrpt_reports_total", bool, timeout=60)
        panels = {p["title"]: p for p in dashboard()["panels"] if p["type"] != "row"}

        def rows(title: str, ref: str = "A") -> list[tuple[dict[str, str], float]]:
            (target,) = [t for t in panels[title]["targets"] if t["refId"] == ref]
            return prom.query(substitute(target["expr"]))

        sessions = "DANE sessions senders reported (last day)"
        assert [v for _, v in rows(sessions, "A")] == [980]
        assert [v for _, v in rows(sessions, "B")] == [57]
        by_result = rows("Failed sessions by domain, reporter and result (last day)")
        assert {(m["domain"], m["policy_type"], m["result_type"], v) for m, v in by_result} == {
            (REPORTED_DOMAIN, "tlsa", "tlsa-invalid", 50),
            (REPORTED_DOMAIN, "tlsa", "validation-failure", 7),
        }
        over_time = rows("Failed sessions reported over the preceding day, by result type")
        assert {m["result_type"] for m, _ in over_time} == {"tlsa-invalid", "validation-failure"}
        (last,) = rows("Last report per domain and reporter")
        assert last[0]["domain"] == REPORTED_DOMAIN and last[1] > 0  # the report is of 2026-11-28
        reports = "Reports received and refused (per day)"
        assert [v for _, v in rows(reports, "A")] == [1]
        assert {m["reason"]: v for m, v in rows(reports, "B")} == {"content-type": 1}
        matrix = rows("What each kind of sender does (sender profiles)")
        # a target without MX hosts (the demo's bogus MX RRsets) has its own rows: mx="",
        # which Prometheus drops
        actions = {(m.get("mx", ""), m["profile"]): m["action"] for m, _ in matrix}
        assert {m["action"] for m, _ in matrix if "mx" not in m and m["profile"] == "postfix"} == {
            "defer"
        }
        assert actions[("mx1.ta-root-full.example", "exim-gnutls")] == "defer"
        worse = rows("Where a kind of sender defers and RFC 7672 senders deliver")
        assert {(m["target"], m["profile"]) for m, _ in worse} == {
            ("ta-root-full.example", "exim-gnutls")
        }
    finally:
        prom.stop()
