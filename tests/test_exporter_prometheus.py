"""The exporter scraped by a real Prometheus (Debian's package), on loopback.

1. ``dane-monitor demo`` is scraped every second; Prometheus's query API must return the
   catalogue's verdicts, TLSA matches and sender actions, and the alert expressions of
   docs/exporter.md must select exactly the broken targets. promtool checks the rules.
2. ``/probe`` targets are sharded over two ``dane-monitor serve`` instances with ``hashmod``
   relabeling: every target is scraped by exactly one exporter (Prometheus has one series
   per target, and the exporters' own probe logs are disjoint and cover every target).

Skipped without ``prometheus``, unless DANE_REQUIRE_TOOLS=1 (then they fail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from dane_monitor.world import World

PROMETHEUS = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
PROMTOOL = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
RULES = Path(__file__).parent.parent / "grafana" / "prometheus" / "dane-alerts.yml"


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    if PROMETHEUS is None or PROMTOOL is None:
        if os.environ.get("DANE_REQUIRE_TOOLS") == "1":
            pytest.fail("DANE_REQUIRE_TOOLS=1 but prometheus/promtool are not installed")
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    return PROMETHEUS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, binary: str, directory: Path, config: str) -> None:
        self.config_path = directory / "prometheus.yml"
        self.config_path.write_text(config)
        check = subprocess.run(
            [PROMTOOL, "check", "config", str(self.config_path)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self.directory = directory
        for _attempt in range(5):
            if self._start(binary):
                return
        raise AssertionError("prometheus found no free port: " + self._log_text())

    def _start(self, binary: str) -> bool:
        """Start on a free port; False when another process took the port first (the port is
        chosen, then bound: another test's server may win the race)."""
        directory = self.directory
        self.port = free_port()
        self.log = open(directory / "prometheus.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.console.templates={directory}",
                f"--web.console.libraries={directory}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            # Ready, and ours: another test's Prometheus on the same port would answer
            # /-/ready too, and every later query would read its data.
            if self._is_ours():
                return True
            if self.proc.poll() is not None:
                self.log.close()
                if "address already in use" in self._log_text():
                    return False
                raise AssertionError(self._log_text())
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)

    def _is_ours(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                if r.status != 200:
                    return False
            with urllib.request.urlopen(self.url + "/api/v1/status/flags", timeout=2) as r:
                flags = json.load(r)["data"]
        except OSError:
            return False
        return flags.get("config.file") == str(self.config_path) and self.proc.poll() is None

    def _log_text(self) -> str:
        return (self.directory / "prometheus.log").read_text()

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            data = json.load(r)
        assert data["status"] == "success", data
        return [(item["metric"], float(item["value"][1])) for item in data["data"]["result"]]

    def wait(self, expr: str, ready, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if ready(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def start_process(args: list[str], log: Path, pattern: str, stream: str = "stderr"):
    """Start ``dane-monitor ARGS`` with output in ``log``; wait for ``pattern`` there."""
    out = open(log, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", *args],
        stdout=out,
        stderr=out,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if m := re.search(pattern, log.read_text(), re.M):
            return proc, out, m.group(1)
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{args[0]} did not start: {log.read_text()}")


def stop_process(proc, out) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.close()


def docs_rules() -> str:
    return RULES.read_text()


def test_prometheus_scrapes_the_demo(prometheus_bin, tmp_path):
    rules = tmp_path / "dane-rules.yml"
    rules.write_text(docs_rules())
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    proc, out, url = start_process(
        ["demo", "--listen", "127.0.0.1:0", "--interval", "10s", "--dir", str(tmp_path / "demo")],
        tmp_path / "demo.log",
        r"^exporter\s+http://(\S+)/$",
    )
    prom = None
    try:
        prom = Prometheus(
            prometheus_bin,
            tmp_path,
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{rules}]\n"
            "scrape_configs:\n"
            "  - job_name: dane\n"
            f"    static_configs: [{{targets: ['{url}']}}]\n",
        )
        # every target of the demo has its verdict in Prometheus (the slowest scenarios, the
        # hanging servers, come last: wait for every target, not for a count)
        from dane_monitor.world import CATALOGUE

        every = {f"{sc.name}.example" for sc in CATALOGUE}
        verdicts = prom.wait(
            "dane_verdict == 1", lambda r: every <= {m["target"] for m, _ in r}, timeout=120
        )
        by_target = {m["target"]: m["verdict"] for m, _ in verdicts}
        for sc in CATALOGUE:
            assert by_target[f"{sc.name}.example"] == sc.expect.verdict, sc.name
        assert prom.query('up{job="dane"}')[0][1] == 1
        mismatch = prom.query("dane_tlsa_match == 0")
        assert {m["target"] for m, _ in mismatch} >= {
            "tlsa-mismatch.example",
            "ta-name-mismatch.example",
            "digest-agility.example",
        }
        assert "good-ee.example" not in {m["target"] for m, _ in mismatch}
        defer = {m["target"] for m, _ in prom.query('dane_sender_action{action="defer"} == 1')}
        assert {"no-starttls.example", "tlsa-mismatch.example"} <= defer
        assert "good-ee.example" not in defer
        ok = prom.query('dane_tlsa_match{target="good-ee.example"}')
        assert ok and all(v == 1 for _, v in ok)
        # A server that hangs or breaks the dialogue is a decided outage (senders defer), not
        # an undecided check: every catalogue target is decided.
        undecided = {m["target"] for m, _ in prom.query("dane_check_success == 0")}
        assert undecided == set()
        assert {"hang.example", "huge-line.example", "close-after-ehlo.example"} <= defer
        # the shipped alerts (grafana/) fire for the broken targets (pending: `for` not passed)
        alerts = prom.wait(
            'ALERTS{alertname="DANETLSAMismatch"}',
            lambda r: "tlsa-mismatch.example" in {m["target"] for m, _ in r},
            timeout=20,
        )
        assert "tlsa-mismatch.example" in {m["target"] for m, _ in alerts}
        assert prom.query("dane_exporter_cycles_total")[0][1] >= 1
    finally:
        if prom is not None:
            prom.stop()
        stop_process(proc, out)


def test_probe_targets_sharded_with_hashmod_are_each_scraped_once(
    prometheus_bin, dane_world: World, dane_trust_anchor, tmp_path
):
    host, port = dane_world.dns_address
    config = tmp_path / "dane.yml"
    config.write_text(
        "listen: 127.0.0.1:0\n"
        f"dns: {{resolver: '{host}:{port}', trust_anchor: '{dane_trust_anchor}'}}\n"
        f"connect_port: {dane_world.smtp_port}\n"
        "probe: {allow: ['*.example']}\n"
    )
    slow = {"hang", "huge-line", "close-after-ehlo"}
    targets = sorted(d.name.rstrip(".") for n, d in dane_world.domains.items() if n not in slow)
    exporters = []
    prom = None
    try:
        for i in range(2):
            exporters.append(
                start_process(
                    ["serve", "--config", str(config), "--log-level", "debug"],
                    tmp_path / f"exporter-{i}.log",
                    r"msg=listening url=http://(\S+)/",
                )
            )
        jobs = ""
        for i, (_, _, address) in enumerate(exporters):
            jobs += f"""
  - job_name: dane-shard-{i}
    metrics_path: /probe
    scrape_interval: 4s
    scrape_timeout: 4s
    static_configs: [{{targets: {json.dumps(targets)}}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__address__], target_label: instance}}
      - {{source_labels: [__address__], modulus: 2, target_label: __tmp_shard, action: hashmod}}
      - {{source_labels: [__tmp_shard], regex: "{i}", action: keep}}
      - {{target_label: __address__, replacement: "{address}"}}
"""
        prom = Prometheus(prometheus_bin, tmp_path, "scrape_configs:" + jobs)
        result = prom.wait(
            "count by (instance, job) (dane_probe_success)", lambda r: len(r) >= len(targets)
        )
        jobs_of: dict[str, list[str]] = {}
        for metric, n in result:
            assert n == 1, metric
            jobs_of.setdefault(metric["instance"], []).append(metric["job"])
        assert sorted(jobs_of) == targets
        assert all(len(j) == 1 for j in jobs_of.values()), jobs_of  # one job per target
        shards = [{t for t, j in jobs_of.items() if j == [f"dane-shard-{i}"]} for i in range(2)]
        assert shards[0] and shards[1], shards
        # every check decided (a probe cut short by a loaded machine is retried next scrape)
        success = prom.wait("dane_probe_success == 1", lambda r: len(r) == len(targets))
        assert len(success) == len(targets), success
        # the exporters agree: each was asked only about its own shard (an exporter logs a
        # probe before it answers it, so every probe Prometheus stored is in a log by now)
        for i in range(len(exporters)):
            log = (tmp_path / f"exporter-{i}.log").read_text()
            probed = set(re.findall(r"msg=probe target=(\S+)", log))
            assert probed == shards[i], (i, probed ^ shards[i])
    finally:
        if prom is not None:
            prom.stop()
        for proc, out, _ in exporters:
            stop_process(proc, out)


def test_a_port_taken_by_another_prometheus_is_not_mistaken_for_ours(
    prometheus_bin, tmp_path, monkeypatch
):
    """The port is chosen, then bound: when another test's Prometheus holds it, its /-/ready
    must not pass for ours (every query would read the other one's data)."""
    config = "global: {scrape_interval: 1m}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Prometheus(prometheus_bin, tmp_path / "a", config)
    try:
        ports = iter([first.port])
        monkeypatch.setattr(sys.modules[__name__], "free_port",
                            lambda: next(ports, None) or _real_free_port())  # fmt: skip
        second = Prometheus(prometheus_bin, tmp_path / "b", config)
        try:
            # It tried first.port (taken), saw the server there was not its own, moved on.
            assert next(ports, "used") == "used"
            assert second.port != first.port
            assert second._is_ours() and first._is_ours()
        finally:
            second.stop()
    finally:
        first.stop()


_real_free_port = free_port
