"""The finding-code catalogue is the single source: docs, checker, exporter and tests agree.

- docs/json.md prints the catalogue and the decision table exactly as the code has them;
- every catalogued code is produced by some test: by a synthetic-evidence case of
  ``test_decision_table.py``, or by the test named below (checked to exist and to assert
  on that code);
- the checker cannot emit an uncatalogued code or severity (``findings.finding`` refuses it,
  and the decision-table cases assert it for every finding they see).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_decision_table import CASES

from dane_monitor import findings, judge
from dane_monitor.conclusion import conclude
from dane_monitor.report import Severity

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "json.md").read_text()

# Codes produced by a test other than the synthetic cases: (test file, test function).
ELSEWHERE = {
    "ta-name-mismatch": ("test_exporter_metrics.py", "test_distinctive_series_of_each_scenario"),
    "ta-chain-invalid": ("test_tlsa.py", None),
    "cert-unparsable": ("test_tlsa.py", None),
    "tlsa-stale-record": ("test_exporter_metrics.py", "test_distinctive_series_of_each_scenario"),
    "endpoints-disagree": ("test_check_ipv6.py", "test_every_address_family_is_probed"),
    "cert-expiring": ("test_decision_table.py", "test_cert_expiry_uses_the_evidence_clock"),
    "rrsig-expiring": ("test_decision_table.py", "test_rrsig_expiry_windows_follow_the_thresholds"),
    "resolver-not-loopback": ("test_lookup_resolver.py", None),
    "check-timeout": ("test_exporter_metrics.py", "test_a_check_past_its_deadline_is_a_timeout"),
    "check-crashed": ("test_exporter_metrics.py", "test_a_check_that_crashes_is_reported"),
    **{
        code: ("test_tlsrpt_record.py", "test_each_state_has_its_finding")
        for code in ("tlsrpt-missing", "tlsrpt-invalid", "tlsrpt-unreadable")
    },
    **{
        code: ("test_nameservers.py", "test_the_cli_reports_each_scenario")
        for code in (
            "ns-rrset-differs",
            "ns-serial-lag",
            "ns-rrsig-bogus",
            "ns-rrsig-expiring",
            "ns-unreachable",
            "ns-lame",
        )
    },
}


def _generated(marker: str) -> str:
    opening = f"<!-- generated from {marker} -->\n"
    start = DOCS.index(opening) + len(opening)
    return DOCS[start : DOCS.index("<!-- end -->", start)]


def test_docs_print_the_catalogue_as_it_is():
    assert _generated("dane_monitor.findings.catalogue_markdown()") == (
        findings.catalogue_markdown()
    ), "run: python3 -c 'from dane_monitor import findings; print(findings.catalogue_markdown())'"


def test_docs_print_the_decision_table_as_it_is():
    assert _generated("dane_monitor.judge.table_markdown()") == judge.table_markdown()


def test_every_catalogued_code_is_produced_by_a_test():
    produced = set()
    for d, *_ in CASES.values():
        produced |= {f.code for f in conclude(d).all_findings()}
    missing = set(findings.CATALOGUE) - produced - set(ELSEWHERE)
    assert not missing, f"catalogued but produced by no test: {sorted(missing)}"
    for code, (path, function) in ELSEWHERE.items():
        text = (ROOT / "tests" / path).read_text()
        assert code in text, (code, path)
        if function is not None:
            assert re.search(rf"def {function}", text), (code, path, function)


def test_an_uncatalogued_code_or_severity_cannot_be_emitted():
    with pytest.raises(KeyError):
        findings.finding("no-such-code", Severity.ERROR, "x")
    with pytest.raises(ValueError, match="never error"):
        findings.finding("null-mx", Severity.ERROR, "x")
