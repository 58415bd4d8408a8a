"""What a new user sees of the command line (issue 18): every default in ``--help``, a help
line for every option, one metavar per kind of value, the commands in the order they are
needed, ``--version`` anywhere, a misspelled option or command answered with the right one.
Each test runs ``python -m dane_monitor`` as a user runs the command and reads its output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dane_monitor import __version__

ROOT = Path(__file__).resolve().parents[1]
#: The commands whose options cli.py defines (serve and demo: dane_monitor/exporter/cli.py).
OURS = ("check", "tlsa", "preflight", "rollover", "lookup", "resolver-check", "world")


def run(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    # A wide terminal: one line per option, so an option's help is found on its line.
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "dane_monitor", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def entries(help_text: str) -> dict[str, str]:
    """Each option and positional argument of a ``--help`` page: its invocation (``--timeout
    SECONDS``) → its help text (which argparse puts on the next line after a long one)."""
    found: dict[str, str] = {}
    last = None
    for line in help_text.splitlines():
        m = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if m:
            last = m.group(1)
            found[last] = m.group(2) or ""
        elif last is not None and line.startswith("    ") and line.strip():
            found[last] = f"{found[last]} {line.strip()}".strip()
        else:
            last = None
    return found


def option(help_text: str, name: str) -> tuple[str, str]:
    """The invocation and help line of option ``name`` (``--timeout``) or positional."""
    for invocation, text in entries(help_text).items():
        if re.match(rf"^{re.escape(name)}\b(?![-.])", invocation) or f", {name} " in invocation:
            return invocation, text
    raise AssertionError(f"{name} not in:\n{help_text}")


def help_of(command: str) -> str:
    p = run(command, "--help")
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize(
    ("command", "name", "shown"),
    [
        ("check", "--timeout", "(default: 10)"),
        ("check", "--dns-timeout", "(default: 2)"),
        ("check", "--rrsig-warning", "(default 3)"),
        ("check", "--validation", "(default)"),
        ("tlsa", "--selector", "(default: 1)"),
        ("tlsa", "--matching-type", "(default: 1)"),
        ("tlsa", "--timeout", "(default: 10)"),
        ("preflight", "--dns-timeout", "(default: 2)"),
        ("lookup", "TYPE", "(default: A)"),
        ("resolver-check", "--type", "(default: A)"),
        ("resolver-check", "--timeout", "(default: 3)"),
        ("resolver-check", "--signed-name", "(default: isc.org.)"),
        ("world", "--dns-host", "(default: 127.0.0.1)"),
        ("world", "--copies", "(default: 1)"),
        ("demo", "--interval", "(default: 30s)"),
        ("demo", "--log-level", "default: warning"),
        ("demo", "--log-format", "default: logfmt"),
        ("serve", "--log-level", "default: info"),
    ],
)
def test_help_shows_every_default(command, name, shown):
    _, text = option(help_of(command), name)
    assert shown in text


@pytest.mark.parametrize("command", [*OURS, "serve", "demo"])
def test_every_option_has_a_help_line(command):
    page = help_of(command)
    missing = [invocation for invocation, text in entries(page).items() if not text.strip()]
    assert missing == [], page


@pytest.mark.parametrize("command", OURS)
def test_metavars_name_the_kind_of_value_not_the_option(command):
    """``--dns-timeout SECONDS``, ``--signed-name NAME``: never argparse's DNS_TIMEOUT."""
    page = help_of(command)
    kinds = {"SECONDS", "DAYS", "PORT", "NAME", "HOST", "FILE", "DIR", "ADDR[:PORT]", "TYPE",
             "ADDRESS", "N", "DOMAIN"}  # fmt: skip
    for invocation in entries(page):
        for metavar in re.findall(
            r"(?:^|\s)(?:--?[\w.-]+ )?([A-Z][A-Z_\[\]:]*)(?=,|$)", invocation
        ):
            assert metavar in kinds, f"{command}: {invocation}"
    durations = ["--timeout", "--dns-timeout", "--deadline", "--duration"]
    for name in durations:
        if re.search(rf"^  {name} ", page, re.M):
            assert option(page, name)[0] == f"{name} SECONDS"


def test_the_commands_are_listed_in_the_order_they_are_needed():
    p = run("--help")
    assert p.returncode == 0
    listed = [
        m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]+)\s", p.stdout, re.M)
    ]  # the command lines of the "commands:" section
    assert listed == [
        "check", "tlsa", "preflight", "rollover", "lookup", "resolver-check", "tlsrpt",
        "serve", "demo", "world",
    ]  # fmt: skip
    assert "COMMAND" in p.stdout.splitlines()[0]


@pytest.mark.parametrize(
    "args",
    [["--version"], ["check", "--version"], ["check", "a.example", "--version"],
     ["lookup", "--version"], ["serve", "--version"], ["world", "--version"]],
    ids=" ".join,
)  # fmt: skip
def test_version_works_before_and_after_a_command(args):
    p = run(*args)
    assert (p.returncode, p.stdout, p.stderr) == (0, f"dane-monitor {__version__}\n", "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["check", "--resolvr", "127.0.0.1", "a.example"], "--resolvr (did you mean --resolver?)"),
        (["check", "a.example", "--resolvr=127.0.0.1"], "--resolvr (did you mean --resolver?)"),
        (["check", "--jsn", "a.example"], "unknown option --jsn (did you mean --json?)"),
        (["lookup", "--trust-anchr", "ta.ds", "a.example"], "(did you mean --trust-anchor?)"),
        # An abbreviation is refused, not taken for the option it starts: an option added
        # later would change what it means.
        (["check", "--res", "127.0.0.1", "a.example"], "option --res (did you mean --resolver?)"),
        (["check", "--time", "5", "a.example"], "unknown option --time"),
        (["--json", "check", "a.example"], "--json is an option of check: put it after"),
        (["chek", "a.example"], "invalid choice: 'chek' (did you mean check?)"),
        (["resolver", "--resolver", "127.0.0.1"], "'resolver' (did you mean resolver-check?)"),
        (["check", "a.example", "--format", "nagio"], "'nagio' (did you mean nagios?)"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)  # fmt: skip
def test_a_misspelled_option_names_the_right_one_and_nothing_runs(args, says):
    p = run(*args)
    assert p.returncode == 3
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1, p.stderr
    assert says in p.stderr
    # The value after the misspelled option was not taken for the domain.
    assert "127.0.0.1'" not in p.stderr and "not a domain" not in p.stderr


def test_a_misspelled_option_with_a_value_that_is_not_a_name_is_still_named():
    """Before: ``--resolvr 127.0.0.1:53`` made '127.0.0.1:53' the domain, and the user was
    told it is not a domain name instead of what they mistyped."""
    p = run("check", "--resolvr", "127.0.0.1:53", "a.example")
    assert p.returncode == 3
    assert "unknown option --resolvr (did you mean --resolver?)" in p.stderr
    assert "domain" not in p.stderr


def test_a_value_that_looks_like_a_negative_number_is_a_value():
    p = run("check", "a.example", "--timeout", "-5")
    assert p.returncode == 3
    assert "--timeout: a duration must be more than 0" in p.stderr


def test_a_reader_that_stops_reading_ends_the_command_quietly():
    """``dane-monitor … | head -1``: no traceback, no 'internal error'."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes anything
    try:
        p = run("--version", stdout=write)
    finally:
        os.close(write)
    assert p.returncode == 141
    assert p.stderr == ""


def test_debug_shows_the_smtp_transcript_and_only_debug_builds_it(dane_world, dane_trust_anchor):
    host, port = dane_world.dns_address
    args = ["check", "good-ee.example", "--json", "--resolver", f"{host}:{port}",
            "--trust-anchor", str(dane_trust_anchor),
            "--connect-port", str(dane_world.smtp_port)]  # fmt: skip
    for debug in (True, False):
        p = run(*args, *(["--debug"] if debug else []))
        assert p.returncode == 0, p.stderr
        endpoint = json.loads(p.stdout)["hosts"][0]["endpoints"][0]
        if debug:
            assert endpoint["transcript"][1].startswith("S: 220 "), endpoint["transcript"]
            assert "C: STARTTLS" in endpoint["transcript"]
        else:
            assert "transcript" not in endpoint
