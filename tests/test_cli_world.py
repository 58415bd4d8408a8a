"""`dane-monitor world`: what a newcomer runs first."""

from __future__ import annotations

import re
import subprocess
import sys

from dane_monitor.world import CATALOGUE


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dane_monitor", "world", *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_list_names_every_scenario_with_its_verdict():
    p = run("--list")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert len(lines) == len(CATALOGUE)
    for line, sc in zip(lines, CATALOGUE, strict=True):
        assert line.split()[:2] == [sc.name, sc.expect.verdict]


def test_serves_and_prints_how_to_use_it(tmp_path):
    p = run("--scenario", "good-ee", "--anchor-dir", str(tmp_path), "--duration", "0.5")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^DNS server\s+127\.0\.0\.1 port \d+", p.stdout, re.M)
    assert "good-ee.example." in p.stdout
    assert "dane-monitor check good-ee.example." in p.stdout
    assert (tmp_path / "trust-anchor.ds").read_text().startswith(". ")
    assert "trust-anchors" in (tmp_path / "trust-anchor.bind").read_text()


def test_unknown_scenario_is_a_usage_error():
    p = run("--scenario", "no-such-thing")
    assert p.returncode == 3
    assert "no scenario named 'no-such-thing'" in p.stderr
