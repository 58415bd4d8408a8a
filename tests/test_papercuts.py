"""Issue 18: what a new user sees in the first ten minutes, run as the user runs it.

Every test starts ``dane-monitor`` in a subprocess and asserts on its output, its exit code
and what it leaves on disk (with a private ``TMPDIR``).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEADLINE = 60.0  # a hang guard: every wait below polls and ends as soon as it can


def _env(tmpdir: Path) -> dict[str, str]:
    """The environment of a user's shell, with scratch files going to ``tmpdir``."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONWARNINGS", None)
    return env


def _start(args: list[str], tmpdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmpdir),
        # As from an interactive shell: SIGINT at its default, not inherited as ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _read_until(proc: subprocess.Popen[str], pattern: str) -> list[str]:
    """stdout lines up to and including the first that matches ``pattern``."""
    stdout = proc.stdout
    assert stdout is not None
    lines: list[str] = []
    found: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stdout:
            found.put(line)
            if re.search(pattern, line):
                break
        else:
            found.put(None)  # end of output

    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            line = found.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(
                f"no line matching {pattern!r} within {DEADLINE}s: {lines}"
            ) from None
        if line is None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited before {pattern!r}: {lines}\n{err}")
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines


def _stop(proc: subprocess.Popen[str], sig: int) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def tmpdir_private(tmp_path: Path) -> Path:
    d = tmp_path / "tmp"
    d.mkdir()
    return d


# -- 1. the demo's first hint works as printed ---------------------------------------------


def test_the_demos_grep_hint_finds_the_verdicts_and_the_readme_line(tmpdir_private: Path):
    if shutil.which("curl") is None:
        pytest.skip("the hint uses curl")
    proc = _start(["demo", "--listen", "127.0.0.1:0", "--scenario", "tlsa-mismatch",
                   "--scenario", "good-ee", "--interval", "1s"], tmpdir_private)  # fmt: skip
    try:
        lines = _read_until(proc, r"^Ctrl-C stops\.")
        hint = next(line.strip() for line in lines if line.strip().startswith("curl "))
        # The README's example of a /metrics line, as it stands in the quickstart.
        readme = re.search(r"\(`(dane_verdict\{[^`]+)`\)", README.read_text())
        assert readme is not None
        wanted = readme.group(1)
        # One line per target, its current verdict, never the 0 lines: the two domains and
        # the demo's MX-host target.
        expected = [
            'dane_verdict{target="good-ee.example",verdict="valid"} 1.0',
            'dane_verdict{target="mx1.good-ee.example",verdict="valid"} 1.0',
            wanted,
        ]
        out = ""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:  # until every first check has finished
            out = subprocess.run(["sh", "-c", hint], capture_output=True, text=True).stdout
            if len(out.splitlines()) >= len(expected):
                break
            time.sleep(0.2)
        assert sorted(out.splitlines()) == sorted(expected), (hint, out)
    finally:
        assert _stop(proc, signal.SIGINT) == 0


# -- 2. demo and world leave nothing in $TMPDIR -------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_leaves_nothing_behind_when_stopped(tmpdir_private: Path, sig: int):
    proc = _start(["demo", "--listen", "127.0.0.1:0", "--scenario", "good-ee"], tmpdir_private)
    lines = _read_until(proc, r"^Ctrl-C stops\.")
    config = next(line.split()[-1] for line in lines if line.startswith("configuration"))
    assert Path(config).parent.parent == tmpdir_private  # it did use the scratch folder
    assert _stop(proc, sig) == 0
    assert list(tmpdir_private.iterdir()) == []


def test_demo_leaves_nothing_behind_when_it_cannot_start(tmpdir_private: Path):
    import socket

    with socket.socket() as busy:  # the port the exporter wants is taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start(["demo", "--listen", f"127.0.0.1:{port}", "--scenario", "good-ee"],
                      tmpdir_private)  # fmt: skip
        _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 1, err
    assert f"dane-monitor demo: cannot listen on 127.0.0.1:{port}: " in err
    assert list(tmpdir_private.iterdir()) == []


def test_demo_keeps_a_folder_the_user_named(tmpdir_private: Path, tmp_path: Path):
    mine = tmp_path / "mine"
    proc = _start(["demo", "--listen", "127.0.0.1:0", "--scenario", "good-ee", "--dir",
                   str(mine), "--duration", "0.1"], tmpdir_private)  # fmt: skip
    _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert (mine / "dane-exporter.yml").is_file()
    assert list(tmpdir_private.iterdir()) == []


def test_demo_stopped_while_starting_leaves_nothing_behind(tmpdir_private: Path):
    """SIGTERM as soon as the scratch folder exists, before the demo's own handlers."""
    proc = _start(["demo", "--listen", "127.0.0.1:0"], tmpdir_private)  # the whole catalogue
    deadline = time.monotonic() + DEADLINE
    while not list(tmpdir_private.iterdir()) and proc.poll() is None:
        assert time.monotonic() < deadline, "no scratch folder appeared"
        time.sleep(0.005)
    rc = _stop(proc, signal.SIGTERM)
    assert rc in (0, 128 + signal.SIGTERM), proc.stderr.read() if proc.stderr else ""
    assert list(tmpdir_private.iterdir()) == []


@pytest.mark.xfail(
    reason="needs dane_monitor/cli.py's _world to use dane_monitor.world.scratch.scratch_dir "
    "(issue 18: cli.py is changed by its owner)",
    strict=False,
)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_world_leaves_nothing_behind_when_stopped(tmpdir_private: Path, sig: int):
    proc = _start(["world", "--scenario", "good-ee"], tmpdir_private)
    lines = _read_until(proc, r"^Ctrl-C stops\.")
    anchor = next(line.split()[2] for line in lines if line.startswith("trust anchor"))
    assert Path(anchor).parent.parent == tmpdir_private
    assert _stop(proc, sig) == 0
    assert list(tmpdir_private.iterdir()) == []
