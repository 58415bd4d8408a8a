"""The command imports what the command uses (issue 15, "the CLI starts fast"): ``--help``
and ``--version`` import neither the DNS library, cryptography nor asyncio, and ``check``
does not load package metadata. These are behaviours (which modules a process imports);
the time they take is measured by ``benchmarks/startup.py``."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dns", "cryptography", "asyncio")


def imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m dane_monitor ARGS`` as a user would; the modules the
    process imported (from the import-time lines on stderr)."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dane_monitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in p.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return p, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["check", "--help"], ["check", "--version"], ["lookup", "--help"]],
    ids=" ".join,
)
def test_help_and_version_import_no_dns_cryptography_or_asyncio(args):
    p, modules = imported(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "dane_monitor.cli" in modules  # the measurement sees our imports at all
    assert heavy(modules) == []
    assert p.stdout.startswith("usage: dane-monitor" if "--help" in args else "dane-monitor ")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-h"], ["lookup", "--version"]])
def test_version_and_help_build_no_parser(args):
    p, modules = imported(*args)
    assert p.returncode == 0
    assert "argparse" not in modules
    assert "dane_monitor.settings" not in modules
    assert "dane_monitor.exporter.cli" not in modules


def test_a_command_builds_only_its_own_parser():
    p, modules = imported("check", "--help")
    assert p.returncode == 0
    assert "dane_monitor.settings" in modules  # check's options are parsed by settings
    assert "dane_monitor.exporter.cli" not in modules  # serve's and demo's are not built


def test_the_help_without_argparse_says_what_argparse_would():
    """``dane-monitor --help`` is rendered without argparse; it lists what the full parser
    does, serve's and demo's lines (from exporter/cli.py) included."""
    from dane_monitor import cli

    def words(text: str) -> str:
        return "".join(text.split())  # line breaks and padding aside

    assert words(cli.top_help(80)) == words(cli.build_parser(full=True).format_help())
    for columns in (60, 80, 200):
        assert max(map(len, cli.top_help(columns).splitlines())) <= max(columns - 2, 40)


def test_a_usage_error_imports_nothing_a_check_needs():
    p, modules = imported("check", "--resolvr", "127.0.0.1", "a.example")
    assert p.returncode == 3
    assert heavy(modules) == []


def test_the_dns_library_reads_no_package_metadata():
    """dnspython checks its optional features against package metadata (importlib.metadata:
    email, zipfile, csv, …); dane_monitor decides them first, the same way, without it.
    (-S: no .pth file of this machine's site-packages may load the metadata first.)"""
    code = (
        f"import sys; sys.path[:0] = {[str(ROOT), *site.getsitepackages()]!r}; "
        "import dane_monitor.lookup, dns._features as f; "
        "loaded = type(sys.modules['importlib.metadata']).__name__ == 'module'; "
        "print(loaded, f.have('dnssec'))"
    )
    p = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True"]
