"""The exporter's background checks in worker processes (``workers: N``, ``serve --workers``).

A real ``dane-monitor serve`` with two workers against the test world: every target's results
on /metrics, counted once; a worker killed with SIGKILL is noticed, started again and checks
go on; a reload that changes the number of workers and drops a target moves the targets
between workers (each worker reports what it checks) and the dropped one disappears; SIGTERM
stops the exporter and every worker, exit status 0, no traceback. Plus the ``workers`` key
and the ``--workers`` flag as a user meets them, and the split by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_exporter_app import (  # noqa: F401 - blackhole and start: fixtures
    blackhole,
    config_text,
    start,
)
from test_exporter_client import request

from dane_monitor.cli import main
from dane_monitor.exporter.config import ConfigError, parse
from dane_monitor.exporter.workers import share, worker_of
from dane_monitor.world import World

HANG_GUARD = 90.0  # seconds: a deadline for a stuck exporter on a busy machine, not a speed test
NAMES = ("good-ee", "good-ta", "no-tlsa", "tlsa-mismatch", "hang")


def config(world: World, anchor: Path, targets: list[str], workers: int) -> str:
    host, port = world.dns_address
    lines = [
        "listen: 127.0.0.1:0",
        f"dns: {{resolver: '{host}:{port}', trust_anchor: '{anchor}', timeout: 1s}}",
        f"connect_port: {world.smtp_port}",
        "jitter: 0",
        "concurrency: 4",
        f"workers: {workers}",
        "defaults: {interval: 1s, timeout: 3s}",
        "targets:",
    ]
    return "\n".join(lines + [f"  - domain: {t}" for t in targets]) + "\n"


def series(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    found = [
        v
        for (n, lab), v in series(text).items()
        if n == name and labels.items() <= dict(lab).items()
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class Serve:
    """A ``dane-monitor serve --log-level debug`` process; stderr collected by a thread."""

    def __init__(self, path: Path, *args: str) -> None:
        cmd = [sys.executable, "-m", "dane_monitor", "serve", "--config", str(path), *args]
        self.proc = subprocess.Popen(
            [*cmd, "--log-level", "debug"], stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        line = self.wait_for(lambda line: "msg=listening" in line)
        m = re.search(r"url=(\S+)", line)
        assert m, line
        self.url = m.group(1)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, match: Callable[[str], bool], first: int = 0) -> str:
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            for line in self.lines[first:]:
                if match(line):
                    return line
            if self.proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"not logged; stderr:\n{''.join(self.lines)[-3000:]}")

    def metrics(self) -> str:
        reply = asyncio.run(request(self.url + "metrics"))
        assert reply.status == 200
        return reply.text

    def metrics_when(self, ready: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + HANG_GUARD
        while True:
            text = self.metrics()
            if ready(text):
                return text
            assert time.monotonic() < deadline, f"never: {what}\n{text[-2000:]}"
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            workers = children(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            for pid in workers:  # a failed test leaves nothing behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._thread.join(10)


def checked(text: str, name: str) -> float | None:
    """When ``name`` was last checked, per /metrics (None: no result)."""
    return value(text, "dane_last_check_timestamp_seconds", target=name)


def test_two_workers_check_every_target_survive_a_kill_reload_and_stop_cleanly(
    dane_world, dane_trust_anchor, tmp_path
):
    names = [dane_world.domains[n].name.rstrip(".") for n in NAMES] + ["nowhere.example"]
    path = tmp_path / "dane.yml"
    path.write_text(config(dane_world, dane_trust_anchor, names, workers=2))
    serve = Serve(path)
    try:
        pid = serve.proc.pid
        # Every configured target's results, each from the worker its name belongs to.
        text = serve.metrics_when(
            lambda t: (
                all(checked(t, n) for n in names)
                and (value(t, "dane_exporter_cycles_total") or 0) >= 1
            ),
            "every target checked",
        )
        assert value(text, "dane_verdict", target="good-ee.example", verdict="valid") == 1
        assert value(text, "dane_tlsa_match", target="tlsa-mismatch.example") == 0
        assert value(text, "dane_check_success", target="nowhere.example") == 0
        assert value(text, "dane_exporter_workers") == 2
        assert value(text, "dane_exporter_checks_in_flight") is not None
        assert value(text, "dane_exporter_check_duration_seconds_count") >= len(names)
        assert value(text, "dane_exporter_targets_overdue") == 0
        split = [sum(1 for n in names if worker_of(n, 2) == w) for w in range(2)]
        text = serve.metrics_when(
            lambda t: (
                [value(t, "dane_exporter_worker_targets", worker=str(w)) for w in range(2)] == split
            ),
            "each worker reports its targets",
        )
        assert len(children(pid)) == 2
        # The parent logs each check with the worker that ran it: always the name's worker.
        seen = [
            (m.group(1), int(m.group(2)))
            for line in serve.lines
            if (m := re.search(r"msg=checked target=(\S+) .*worker=(\d+)", line))
        ]
        assert {n for n, _ in seen} == set(names)
        assert all(w == worker_of(n, 2) for n, w in seen)

        # A worker killed with SIGKILL: noticed, logged, counted, started again; checks go on.
        victim = worker_of("good-ee.example", 2)
        started = serve.wait_for(lambda line: f'msg="worker started" worker={victim} ' in line)
        killed = int(re.search(r"pid=(\d+)", started).group(1))
        assert killed in children(pid)
        mark = len(serve.lines)
        os.kill(killed, signal.SIGKILL)
        line = serve.wait_for(lambda line: "worker exited" in line, mark)
        assert f"pid={killed}" in line and "signal 9" in line, line
        at = time.time()
        text = serve.metrics_when(
            lambda t: (
                value(t, "dane_exporter_worker_restarts_total") == 1
                and value(t, "dane_exporter_workers") == 2
                and all((checked(t, n) or 0) > at for n in names if n != "hang.example")
            ),
            "the worker restarted and checking again",
        )
        now = children(pid)
        assert len(now) == 2 and killed not in now

        # Reload: three workers (targets move) and one target fewer (it stops everywhere).
        kept = [n for n in names if n != "no-tlsa.example"]
        path.write_text(config(dane_world, dane_trust_anchor, kept, workers=3))
        mark = len(serve.lines)
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait_for(lambda line: "configuration reloaded" in line, mark)
        split = [sum(1 for n in kept if worker_of(n, 3) == w) for w in range(3)]
        at = time.time()
        text = serve.metrics_when(
            lambda t: (
                [value(t, "dane_exporter_worker_targets", worker=str(w)) for w in range(3)] == split
                and all((checked(t, n) or 0) > at for n in kept if n != "hang.example")
            ),
            "three workers, each checking its part of the new configuration",
        )
        assert checked(text, "no-tlsa.example") is None
        assert value(text, "dane_exporter_workers") == 3
        assert len(children(pid)) == 3
        seen_after = [
            (m.group(1), int(m.group(2)))
            for line in serve.lines[mark:]
            if (m := re.search(r"msg=checked target=(\S+) .*worker=(\d+)", line))
        ]
        assert "no-tlsa.example" not in {n for n, _ in seen_after}

        # SIGTERM: every worker stops, the exporter exits 0, without a traceback.
        workers = children(pid)
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(HANG_GUARD) == 0
        serve._thread.join(HANG_GUARD)
        deadline = time.monotonic() + HANG_GUARD
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if alive(p)]
        log = "".join(serve.lines)
        assert "Traceback" not in log
        assert "msg=stopped" in log
        assert "did not stop" not in log
    finally:
        serve.close()


def test_workers_key_and_flag(tmp_path, capsys):
    assert parse("workers: 0\n").workers == 0
    assert parse("workers: 3\n").workers == 3
    assert parse("targets: []\n").workers is None  # serve: one per core
    for bad in ("-1", "two", "1.5", "true"):
        with pytest.raises(ConfigError, match=r"<config>:1: workers: a whole number from 0"):
            parse(f"workers: {bad}\n")
    cfg = tmp_path / "dane.yml"
    cfg.write_text("targets: []\n")
    assert main(["serve", "--config", str(cfg), "--workers", "x"]) != 0
    assert "--workers: a whole number from 0 to 256, not 'x'" in capsys.readouterr().err


def test_split_by_name_is_stable_and_concurrency_is_shared():
    names = [f"d{i}.example" for i in range(1000)]
    parts = [sum(1 for n in names if worker_of(n, 4) == w) for w in range(4)]
    assert min(parts) > 200  # every worker gets its share
    # the same worker in every process and run: CRC-32 of the name, not Python's hash()
    assert worker_of("good-ee.example", 2) == worker_of("good-ee.example", 2)
    assert [worker_of(n, 3) for n in ("a.example", "b.example", "c.example")] == [0, 2, 2]
    assert share(20, 2) == 10 and share(20, 3) == 7 and share(1, 4) == 1


def test_workers_leave_when_the_serving_process_is_killed(tmp_path):
    """SIGKILL to the serving process, at once or once its workers have their orders: every
    worker notices its pipe closed and leaves (no orphans checking on their own)."""
    path = tmp_path / "dane.yml"
    path.write_text("listen: 127.0.0.1:0\nworkers: 2\ntargets: []\n")
    for wait_for_orders in (False, True):
        serve = Serve(path)
        try:
            if wait_for_orders:
                serve.metrics_when(
                    lambda t: value(t, "dane_exporter_worker_targets", worker="1") == 0,
                    "both workers have their orders",
                )
            else:
                serve.wait_for(lambda line: 'msg="worker started" worker=1 ' in line)
            workers = children(serve.proc.pid)
            assert len(workers) == 2
            serve.proc.kill()
            serve.proc.wait()
            deadline = time.monotonic() + HANG_GUARD
            while any(alive(p) for p in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not [p for p in workers if alive(p)]
        finally:
            serve.close()
