"""``dane-monitor check --from FILE`` (issue 17): a fleet of targets in one run.

A world of 1,014 domains (26 copies of every catalogue scenario that answers promptly) runs
in its own process, as ``dane-monitor world --copies 26``, for the one test that checks them
all; the others use the session's world (the catalogue once), so that an xdist worker that
does not get the big test does not start the big world. Every command here is a real
``dane-monitor`` process, so the signals, the terminal and the pipes are the user's.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dane_monitor.fleet import CSV_COLUMNS
from dane_monitor.world import CATALOGUE

#: Scenarios that measure our timeouts (or our validation budget), not a fleet's flow.
SLOW = {"hang", "huge-line", "close-after-ehlo", "hang-after-ehlo", "keytrap"}
COPIES = 26
DEADLINE = 240.0  # generous: two busy cores shared with others


@dataclass
class World:
    proc: subprocess.Popen[str]
    args: list[str]  # dane-monitor check options that reach it
    expected: dict[str, str]  # domain -> the catalogue's verdict


def _lines_until(proc: subprocess.Popen[str], done, deadline: float) -> Iterator[str]:
    """Lines of ``proc``'s stdout until ``done(line)`` or EOF, within ``deadline`` seconds
    (a thread reads them: a buffered pipe keeps lines that select() no longer sees)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line)
            if done(line):
                return
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        assert left > 0, "no answer within the deadline"
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if not line:
            return
        yield line
        if done(line):
            return


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    anchors = tmp_path_factory.mktemp("fleet-world")
    cmd = [sys.executable, "-m", "dane_monitor", "world", "--anchor-dir", str(anchors),
           "--copies", str(COPIES), "--duration", "1800"]  # fmt: skip
    for sc in CATALOGUE:
        if sc.name not in SLOW:
            cmd += ["--scenario", sc.name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        dns = smtp = None
        expected: dict[str, str] = {}
        for line in _lines_until(proc, lambda s: s.startswith(("Stopping", "Ctrl-C")), 180):
            if m := re.match(r"DNS server\s+(\S+) port (\d+)", line):
                dns = (m.group(1), m.group(2))
            elif m := re.match(r"SMTP servers\s+port (\d+)", line):
                smtp = m.group(1)
            elif m := re.match(r"(c\d+-\S+\.)\s+(\S+)\s", line):
                expected[m.group(1)] = m.group(2)
        assert dns and smtp, "the world did not start"
        assert len(expected) >= 1000
        args = ["--resolver", f"{dns[0]}:{dns[1]}", "--nameserver-port", dns[1],
                "--trust-anchor", str(anchors / "trust-anchor.ds"), "--connect-port", smtp,
                "--timeout", "10"]  # fmt: skip
        yield World(proc, args, expected)
    finally:
        proc.terminate()
        proc.wait(30)


def dane_monitor(*args: str, stdin: str | None = None, timeout: float = DEADLINE):
    return subprocess.run([sys.executable, "-m", "dane_monitor", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def write_targets(path: Path, lines: list[str]) -> str:
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def summary_counts(text: str) -> Counter[str]:
    """The per-verdict lines of a summary (``  valid     442``)."""
    return Counter(
        {m.group(1): int(m.group(2)) for m in re.finditer(r"^  ([a-z-]+) +(\d+)$", text, re.M)}
    )


def shape(result: dict) -> dict:
    """What a result says about the target, without times and certificates' dates."""
    return {
        "verdict": result["verdict"],
        "decision": result["decision"],
        "sender_action": result["sender_action"],
        "headline": result["headline"],
        "findings": sorted((f["code"], f["severity"]) for f in result["findings"]),
        "hosts": [
            (h["name"], h["verdict"], h["sender_action"],
             sorted((e["address"], e["key_type"], e["verdict"], e["sender_action"])
                    for e in h["endpoints"]))
            for h in result["hosts"]
        ],
    }  # fmt: skip


@dataclass
class Small:
    """The session's world (the catalogue, one domain a scenario, in the test process)."""

    args: list[str]
    domains: dict[str, str]  # scenario -> domain
    expected: dict[str, str]  # domain -> the catalogue's verdict
    fast: list[str]  # the domains whose servers answer promptly
    slow: list[str]  # those that hang or stall until --timeout


@pytest.fixture(scope="module")
def small(dane_world, world_check_args) -> Small:
    port = str(dane_world.dns_address[1])
    expected = {dane_world.domains[sc.name].name: sc.expect.verdict for sc in CATALOGUE}
    fast = [dane_world.domains[sc.name].name for sc in CATALOGUE if sc.name not in SLOW]
    slow = [dane_world.domains[sc.name].name for sc in CATALOGUE if sc.name in SLOW]
    domains = {sc.name: dane_world.domains[sc.name].name for sc in CATALOGUE}
    return Small([*world_check_args, "--nameserver-port", port], domains, expected, fast, slow)


#: The scenarios whose fleet result is compared with a single check's, whole.
SAMPLE = ["good-ee", "tlsa-mismatch", "dual-key-ecdsa-only", "bogus-ds", "no-tlsa",
          "insecure-mx-tlsa-ok", "null-mx", "two-mx-one-broken", "starttls-refused",
          "cname-mx"]  # fmt: skip


def test_a_thousand_domains_as_json_lines(world, tmp_path):
    """Every domain of the big world once, one MX host, and lines a real list has: comments,
    blank lines, a trailing comment, a name given again in capitals without its final dot."""
    domains = sorted(world.expected)
    lines = ["# the customers", "", *domains[:10], "   # indented comment",
             f"{domains[0].rstrip('.').upper()}   # given again, other spelling",
             *domains[10:], f"domain:{domains[1]}", "mx:mx1.c0-good-ee.example."]  # fmt: skip
    path = write_targets(tmp_path / "targets.txt", lines)
    t0 = time.monotonic()
    p = dane_monitor("check", "--from", path, "--json", *world.args)
    elapsed = time.monotonic() - t0
    results = [json.loads(line) for line in p.stdout.splitlines()]
    by_target = {r["target"]: r for r in results}
    assert len(by_target) == len(results) == len(world.expected) + 1, "each target once"
    for domain, verdict in world.expected.items():
        assert by_target[domain]["verdict"] == verdict, domain
        assert by_target[domain]["kind"] == "domain"
    host = by_target["mx1.c0-good-ee.example."]
    assert (host["kind"], host["verdict"]) == ("mx-host", "valid")
    # The exit code is the worst: the world has failed and bogus domains (CRITICAL).
    assert p.returncode == 2, p.stderr
    # The summary is on stderr (stdout is JSON Lines only), and no progress is.
    n = len(results)
    assert f"{n} of {n} targets checked" in p.stderr
    assert "2 duplicate lines checked once" in p.stderr
    assert summary_counts(p.stderr) == Counter(r["verdict"] for r in results)
    assert "worst: CRITICAL (exit 2)" in p.stderr
    assert "\r" not in p.stderr and "running" not in p.stderr
    failing = re.findall(r"^  (CRITICAL|UNKNOWN) +(\S+?): ", p.stderr, re.M)
    assert sorted(t for _, t in failing) == sorted(
        r["target"].rstrip(".") for r in results if r["verdict"] in ("failed", "bogus", "error")
    )
    print(f"{n} targets in {elapsed:.1f}s: {n / elapsed:.1f} checks/s (process wall time)")
    # A sample, each as a single check of the same world says.
    for scenario in SAMPLE:
        domain = f"c{COPIES - 1}-{scenario}.example."
        single = dane_monitor("check", domain, "--json", *world.args)
        assert shape(by_target[domain]) == shape(json.loads(single.stdout)), domain
    # The summary's reason is the nagios status line of the same check.
    for scenario in ("dual-key-ecdsa-only", "bogus-ds"):
        domain = f"c{COPIES - 1}-{scenario}.example."
        nagios = dane_monitor("check", domain, "--format", "nagios", *world.args)
        assert nagios.returncode == 2
        status = nagios.stdout.splitlines()[0].split(" - ", 1)[1].split(" | ")[0]
        assert f"  CRITICAL {status}\n" in p.stderr


def test_csv_from_stdin_one_row_per_endpoint(small):
    targets = [*small.fast, f"mx:mx1.{small.domains['good-ee']}"]
    jsonl = dane_monitor("check", "--from", "-", "--json", *small.args, stdin="\n".join(targets))
    json_results = {(r["target"], r["kind"]): r for r in map(json.loads, jsonl.stdout.splitlines())}
    out = dane_monitor("check", "--from", "-", "--csv", *small.args, stdin="\n".join(targets))
    assert out.returncode == jsonl.returncode == 2, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert tuple(next(csv.reader(io.StringIO(out.stdout)))) == CSV_COLUMNS
    assert {(r["target"], r["kind"]) for r in rows} == set(json_results)
    assert len(json_results) == len(targets)
    for (target, kind), want in json_results.items():
        mine = [r for r in rows if (r["target"], r["kind"]) == (target, kind)]
        if kind == "domain":
            assert want["verdict"] == small.expected[target]
        assert {r["verdict"] for r in mine} == {want["verdict"]}
        endpoints = sorted(
            (h["name"], e["address"], e["key_type"] or "", e["verdict"], e["sender_action"])
            for h in want["hosts"] for e in h["endpoints"]
        )  # fmt: skip
        got = sorted(
            (r["mx"], r["address"], r["key_type"], r["endpoint_verdict"], r["sender_action"])
            for r in mine if r["address"]
        )  # fmt: skip
        assert got == endpoints, target
        if not endpoints:  # a target without endpoints still has its row
            assert len(mine) == max(1, len(want["hosts"]))
    n = len(targets)
    assert f"{n} of {n} targets checked" in out.stderr


@pytest.mark.parametrize(
    ("scenarios", "code", "state"),
    [
        (["good-ee", "null-mx"], 0, "OK"),
        (["good-ee", "no-tlsa"], 1, "WARNING"),
        (["good-ee", "no-tlsa", "!missing"], 3, "UNKNOWN"),
        (["good-ee", "!missing", "tlsa-mismatch", "no-tlsa"], 2, "CRITICAL"),
    ],
)
def test_the_exit_code_is_the_worst(small, tmp_path, scenarios, code, state):
    # "!missing": a name the world does not have (NXDOMAIN: we cannot decide, UNKNOWN).
    names = ["nowhere.example." if s == "!missing" else small.domains[s] for s in scenarios]
    p = dane_monitor("check", "--from", write_targets(tmp_path / "t", names), *small.args)
    assert p.returncode == code, p.stdout + p.stderr
    # Text: the summary is the output, on stdout.
    assert f"worst: {state} (exit {code})" in p.stdout
    assert p.stderr == ""


def test_the_deadline_is_per_target(small, tmp_path):
    names = [small.domains[s] for s in ("good-ee", "tlsa-mismatch", "no-tlsa")]
    path = write_targets(tmp_path / "t", names)
    p = dane_monitor("check", "--from", path, "--json", "--deadline", "0.001", *small.args)
    results = [json.loads(x) for x in p.stdout.splitlines()]
    assert sorted(r["target"] for r in results) == sorted(names)
    for r in results:
        assert r["verdict"] == "error"
        assert [f["code"] for f in r["findings"]] == ["check-timeout"]
    assert p.returncode == 3
    assert "worst: UNKNOWN (exit 3)" in p.stderr


def _signal_mid_run(small, tmp_path, signum: int):
    # One at a time, the servers that stall last: the run lasts long after the first line.
    path = write_targets(tmp_path / "t", [*small.fast, *small.slow])
    cmd = [sys.executable, "-m", "dane_monitor", "check", "--from", path, "--json",
           "--concurrency", "1", *small.args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = list(_lines_until(proc, lambda line: True, DEADLINE))
        assert first, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signum)
        rest, err = proc.communicate(timeout=DEADLINE)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return proc.returncode, [json.loads(x) for x in [*first, *rest.splitlines()]], err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_with_the_summary_of_what_finished(small, tmp_path, signum, code):
    rc, results, err = _signal_mid_run(small, tmp_path, signum)
    assert rc == code, err
    total = len(small.expected)
    n = len(results)
    assert 0 < n < total, "stopped mid-run"
    assert f"{n} of {total} targets checked" in err
    m = re.search(rf"stopped by {signum.name}: (\d+) running checks cancelled, (\d+) not started",
                  err)  # fmt: skip
    assert m, err
    assert n + int(m.group(1)) + int(m.group(2)) == total
    assert summary_counts(err) == Counter(r["verdict"] for r in results)
    for r in results:  # what finished is whole, and right
        assert r["verdict"] == small.expected[r["target"]]


def test_progress_only_on_a_terminal(small, tmp_path):
    domains = small.fast
    main, other = os.openpty()
    cmd = [sys.executable, "-m", "dane_monitor", "check", "--from", "-", "--json",
           "--concurrency", "5", *small.args]  # fmt: skip
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(domains))
    with targets.open() as stdin, (tmp_path / "out.jsonl").open("w") as stdout:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=other)
    os.close(other)
    seen = b""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if not select.select([main], [], [], end - time.monotonic())[0]:
            continue
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.wait(DEADLINE) == 2
    out = (tmp_path / "out.jsonl").read_text()
    terminal = seen.decode()
    n = len(domains)
    assert f"\r\x1b[K0/{n} checked, " in terminal
    assert re.search(rf"\r\x1b\[K{n}/{n} checked, [\d.]+/s, \d+ failing, 0 running, 0s left",
                     terminal)  # fmt: skip
    assert f"{n} of {n} targets checked" in terminal  # the summary after the line is cleared
    # stdout stays JSON Lines.
    assert len([json.loads(x) for x in out.splitlines()]) == n


def test_bad_lines_are_named_before_anything_is_checked(tmp_path):
    path = write_targets(tmp_path / "targets.txt", [
        "# a comment", "example.de", "mx:", "two words.example", "bad..example",
        "https://example.de", "*.example.de", "mx:mail.example.de   # fine",
    ])  # fmt: skip
    # A resolver nobody answers at: had a check started, it would say so (or wait).
    p = dane_monitor("check", "--from", path, "--resolver", "127.0.0.1:9", "--json")
    assert p.returncode == 3
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert [re.match(rf"dane-monitor check: {re.escape(path)}:(\d+): ", x)[1] for x in lines] == [
        "3", "4", "5", "6", "7",
    ]  # fmt: skip
    assert "unknown prefix 'https:'" in p.stderr
    assert "one target a line" in p.stderr
    assert "an empty label" in p.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "{empty}"], "no targets"),
        (["--from", "{missing}"], "cannot read it"),
        (["--from", "{empty}", "example.de"], "not both"),
        (["--from", "{empty}", "--format", "nagios"], "--format nagios"),
    ],
)
def test_usage_errors(tmp_path, args, message):
    empty = write_targets(tmp_path / "empty", ["# nothing yet", ""])
    words = [a.format(empty=empty, missing=tmp_path / "missing") for a in args]
    p = dane_monitor("check", *words, "--resolver", "127.0.0.1:9")
    assert p.returncode == 3
    assert message in p.stderr and p.stdout == ""
    assert len(p.stderr.splitlines()) == 1


#: A fleet whose one check ignores being cancelled (as a bug, or a library that swallows
#: the cancellation, might): only a second signal can end it.
STUBBORN = """
import asyncio, sys
from dane_monitor import fleet

class Stubborn:
    async def check_domain(self, name):
        print("started", flush=True)
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                print("cancelled, carrying on", flush=True)

targets = fleet.parse_targets(["example.de"], "<test>")
fleet.run(Stubborn(), targets, output=fleet.NoOutput())
"""


def test_a_second_signal_exits_at_once():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    try:
        assert next(_lines_until(proc, lambda line: True, DEADLINE)) == "started\n"
        proc.send_signal(signal.SIGINT)
        assert next(_lines_until(proc, lambda line: True, DEADLINE)) == "cancelled, carrying on\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(DEADLINE) == 130
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


#: A fleet in which one target's check raises (a bug): the others still get their results.
CRASHING = """
import asyncio
from dane_monitor import fleet
from dane_monitor.report import DomainResult, Verdict

class Checker:
    async def check_domain(self, name):
        if name == "bug.example":
            raise RuntimeError("a bug")
        return DomainResult(name, verdict=Verdict.VALID)

targets = fleet.parse_targets(["a.example", "bug.example", "b.example"], "<test>")
summary = fleet.run(Checker(), targets, output=fleet.JSONLines(__import__("sys").stdout))
print("\\n".join(summary.lines()))
raise SystemExit(summary.exit_code())
"""


def test_a_check_that_crashes_is_its_target_s_error_and_the_run_goes_on():
    p = subprocess.run([sys.executable, "-c", CRASHING], capture_output=True, text=True,
                       timeout=DEADLINE)  # fmt: skip
    lines = p.stdout.splitlines()
    results = {r["target"]: r for r in map(json.loads, lines[:3])}
    assert {t: r["verdict"] for t, r in results.items()} == {
        "a.example": "valid", "bug.example": "error", "b.example": "valid",
    }  # fmt: skip
    assert [f["code"] for f in results["bug.example"]["findings"]] == ["check-crashed"]
    assert "RuntimeError: a bug" in p.stderr and "check of bug.example crashed" in p.stderr
    assert "(1 of them crashed: a bug, tracebacks above)" in p.stdout
    assert p.returncode == 3
