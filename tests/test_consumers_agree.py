"""Every catalogue scenario through every consumer: they all read the one decision.

For each scenario of the world's catalogue the check runs once (the library, against the
session's world); then the JSON, the exit code, the text and nagios outputs, the exporter's
metrics, the shipped alerts (their expressions, evaluated on those metrics) and the pytest
items must say what the decision table (``dane_monitor.judge.TABLE``) says for the rows the
check reached.
"""

from __future__ import annotations

import asyncio

import pytest

from dane_monitor import judge as J
from dane_monitor import render
from dane_monitor.check import Checker, Options
from dane_monitor.exporter.metrics import samples
from dane_monitor.lookup import make_validator
from dane_monitor.probe import Timeouts
from dane_monitor.world import CATALOGUE, World
from dane_monitor.world.scenarios import CNAME_MATRIX
from pytest_dane import items as I
from pytest_dane.errors import DaneCheckFailed

STATE = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
CRITICAL_ALERTS = {"DANEDNSSECBogus", "DANESendersDefer", "DANETLSAMismatch"}


def check_all(world: World, scenarios, tmp_path_factory) -> dict:
    anchor = world.write_trust_anchor(tmp_path_factory.mktemp("ta") / "anchor.ds")
    host, port = world.dns_address

    async def run():
        validator = make_validator(f"{host}:{port}", trust_anchor=str(anchor))
        step = Timeouts(connect=5, banner=5, command=5, tls=5, quit=2, total=20)
        checker = Checker(validator, Options(connect_port=world.smtp_port, timeouts=step))
        names = [sc.name for sc in scenarios]
        done = await asyncio.gather(*(checker.check_domain(world.domains[n].name)
                                      for n in names))  # fmt: skip
        return dict(zip(names, done, strict=True))

    return asyncio.run(run())


@pytest.fixture(scope="module")
def results(dane_world: World, tmp_path_factory):
    return check_all(dane_world, CATALOGUE, tmp_path_factory)


@pytest.fixture(scope="module")
def matrix_results(dane_world_factory, tmp_path_factory):
    world = dane_world_factory(CNAME_MATRIX, smtp_network="127.0.8.0/24")
    return check_all(world, CNAME_MATRIX, tmp_path_factory)


def alerts_firing(points) -> set[str]:
    """The shipped alert expressions (grafana/prometheus/dane-alerts.yml), on one check."""

    def vals(name, **labels):
        out = []
        for n, key, v in points:
            named = dict(zip(LABELS.get(n, ()), key, strict=False))
            if n == name and all(named.get(k) == w for k, w in labels.items()):
                out.append(v)
        return out

    fired = set()
    if 1.0 in vals("dane_verdict", verdict="bogus"):
        fired.add("DANEDNSSECBogus")
    if 1.0 in vals("dane_sender_action", action="defer"):
        fired.add("DANESendersDefer")
    if 0.0 in vals("dane_tlsa_match"):
        fired.add("DANETLSAMismatch")
    if 0.0 in vals("dane_check_success"):
        fired.add("DANECheckFailing")
    return fired


LABELS = {
    "dane_verdict": ("target", "verdict"),
    "dane_sender_action": ("target", "mx", "port", "action"),
    "dane_tlsa_match": ("target", "mx", "address", "port", "key_type"),
    "dane_check_success": ("target",),
    "dane_mx_verdict": ("target", "mx", "port", "verdict"),
}


def item_outcomes(result) -> list[str]:
    tr = I.TargetResult("domain", result.domain, result)
    out = []
    for rule in I.rules(0, tr):
        try:
            with _quiet():
                I.judge(rule, tr, strict=False)
            out.append("passed")
        except DaneCheckFailed:
            out.append("failed")
        except pytest.skip.Exception:
            out.append("skipped")
    return out


class _quiet:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[sc.name for sc in CATALOGUE])
def test_every_consumer_reads_the_decision(results, scenario):
    consumers_agree(results[scenario.name], scenario)


@pytest.mark.parametrize("scenario", CNAME_MATRIX, ids=[sc.name for sc in CNAME_MATRIX])
def test_every_consumer_reads_the_decision_through_cnames(matrix_results, scenario):
    """RFC 7672 §2.2.3's CNAME matrix (as Postfix decides it, tests/interop)."""
    consumers_agree(matrix_results[scenario.name], scenario)


def consumers_agree(result, scenario) -> None:
    data = result.to_dict()
    # JSON: the verdict and the rows that decided it.
    assert data["verdict"] == result.verdict == scenario.expect.verdict
    assert data["decision"] in J.TABLE
    rows = [J.TABLE[data["decision"]]]
    for h, hd in zip(result.hosts, data["hosts"], strict=True):
        assert hd["decision"] in J.TABLE and hd["verdict"] == h.verdict
        rows.append(J.TABLE[hd["decision"]])
        for e in hd["endpoints"]:
            rows.append(J.TABLE[e["decision"]])
            if e["decision"] not in ("opportunistic",):
                row = J.TABLE[e["decision"]]
                assert (e["verdict"], e["sender_action"]) == (row.verdict, row.action)
        if hd["decision"] not in ("dane",):
            row = J.TABLE[hd["decision"]]
            assert (hd["verdict"], hd["sender_action"]) == (row.verdict, row.action)
    # Exit code: the verdict's, raised by findings only.
    code = render.exit_code(result)
    assert code == J.exit_code(result.verdict, [f["severity"] for f in data["findings"]])
    assert code >= J.EXIT[result.verdict] or J.EXIT[result.verdict] == 3
    if scenario.expect.exit_code is not None:
        assert code == scenario.expect.exit_code
    # Text: the headline states verdict, state and what senders do.
    first = render.text(result).splitlines()[0]
    assert first.startswith(f"{result.domain}: {result.verdict.upper()} ({STATE[code]})")
    if result.headline:
        assert first.endswith(result.headline)
    # Nagios: one status line with the same state.
    nagios = _nagios(result)
    if nagios is not None:
        assert nagios.splitlines()[0].startswith(f"DANE {STATE[code]}")
    # Metrics: the same verdict, per host the same verdict and sender action.
    points = samples(result.domain, result, success=result.verdict != "error", finished=0.0,
                     duration=0.0)  # fmt: skip
    by = {(n, k): v for n, k, v in points}
    assert by[("dane_verdict", (result.domain, result.verdict.value))] == 1.0
    assert by[("dane_check_success", (result.domain,))] == float(result.verdict != "error")
    for h in result.hosts:
        key = (result.domain, h.name.rstrip("."), str(h.port))
        assert by[("dane_mx_verdict", (*key, h.verdict.value))] == 1.0
        if h.sender_action is not None:
            assert by[("dane_sender_action", (*key, h.sender_action.value))] == 1.0
    # Alerts: each row's alerts fire; nothing critical fires for an OK domain.
    fired = alerts_firing(points)
    for row in rows:
        wanted = {a for a in J.alerts(row) if not a.endswith("*")}
        if row.level == "endpoint" or row.case in ("hosts", "dane"):
            wanted.discard("DANECheckFailing")  # only the domain's verdict sets success
        if row.verdict == "error" and result.verdict != "error":
            wanted.discard("DANECheckFailing")
        assert wanted <= fired, (row.case, fired)
    if code == 0:
        assert not fired & CRITICAL_ALERTS, fired
    # pytest items: a deferring domain fails an item; an OK one fails none.
    outcomes = item_outcomes(result)
    if code == 2:
        assert "failed" in outcomes
    if code == 0:
        assert "failed" not in outcomes, outcomes
    if code == 3:
        assert "failed" in outcomes or "skipped" in outcomes


def _nagios(result) -> str | None:
    try:
        from dane_monitor import nagios
    except ImportError:  # the nagios output is not there yet
        return None
    thresholds = nagios.Thresholds() if hasattr(nagios, "Thresholds") else None
    return nagios.render_result(result, thresholds, result.started)
