"""Usage errors and Ctrl-C as the monitoring-plugin guidelines want them: a bad command line
exits 3 (UNKNOWN) with one line on stderr, never argparse's 2 or a traceback; Ctrl-C ends
quietly with 130."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dane_monitor.cli import main
from dane_monitor.world import World


def run(args: list[str]) -> int:
    """``main(args)``, with argparse's ``sys.exit`` (the old behaviour) as a return code."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "dane.yml"
    path.write_text("targets:\n  - domain: a.example\n")
    return path


USAGE = [
    # (arguments, what stderr must say)
    (["check", "--jsn", "a.example"], "unknown option --jsn (did you mean --json?)"),
    (["check", "a.example", "--timeout", "0"], "--timeout: a duration must be more than 0"),
    (["check", "a.example", "--timeout", "-5"], "--timeout: a duration must be more than 0"),
    (["check", "a.example", "--timeout", "nan"], "--timeout: a duration in seconds"),
    (["check", "a.example", "--timeout", "inf"], "--timeout: a duration in seconds"),
    (["check", "a.example", "--timeout", "soon"], "--timeout: a duration in seconds"),
    (["check", "a.example", "--timeout"], "--timeout: expected one argument"),
    (["check", "a.example", "--dns-timeout", "0"], "--dns-timeout: a duration must be more"),
    (["check", "a.example", "--port", "0"], "--port: a port is a number from 1 to 65535"),
    (["check", "a.example", "--port", "smtp"], "--port: a port is a number from 1 to 65535"),
    (["check", "a.example", "--connect-port", "70000"], "--connect-port: a port is a number"),
    (["check", "a.example", "--resolver", "dns.example"], "--resolver: a resolver is an IP"),
    (["check", "a.example", "--resolver", "127.0.0.1:0"], "bad port in resolver"),
    (["check", "a.example", "--ehlo-name", "two words"], "cannot be sent in EHLO"),
    (["check"], "give a DOMAIN or --mx HOST"),
    (["check", "a.example", "--mx", "mx.a.example"], "not both"),
    (["check", "not a name"], "not a domain or host name: 'not a name'"),
    (["check", "a..example"], "an empty label"),
    (["check", "a.example", "--format", "xml"], "--format: invalid choice: 'xml'"),
    (["check", "a.example", "--json", "--format", "nagios"], "contradict"),
    (["check", "a.example", "--deadline", "0"], "--deadline: a duration must be more than 0"),
    (["check", "a.example", "--rrsig-warning", "-1"], "--rrsig-warning: a number of days"),
    (["check", "a.example", "--cert-warning", "nan"], "--cert-warning: a number of days"),
    (["check", "a.example", "--rrsig-warning", "1", "--rrsig-critical", "2"], "at most"),
    (["check", "a.example", "stray"], "unexpected argument 'stray'"),
    (["lookup"], "the following arguments are required: NAME"),
    (["lookup", "a.example", "--dns-timeout", "-1"], "--dns-timeout"),
    (["resolver-check", "--timeout", "0"], "--timeout: a duration must be more than 0"),
    (["resolver-check", "--type", "FOO"], "--type: a DNS record type"),
    (["lookup", "a.example", "FOO"], "argument TYPE: a DNS record type"),
    (["resolver-check", "--signed-name", "a b"], "not a domain or host name"),
    (["tlsa"], "give --cert FILE or --server HOST"),
    (["tlsa", "--cert", "x.pem", "--port", "99999"], "--port: a port is a number"),
    (["tlsa", "--server", "mx.a.example", "--connect", "mx.a.example"], "--connect: an IP"),
    (["tlsa", "--cert", "x.pem", "--usage", "1"], "--usage: invalid choice"),
    (["preflight", "--mx", "mx.a.example"], "required: --cert"),
    (["preflight", "--cert", "x.pem", "--mx", "mx.a.example", "--port", "0"], "--port"),
    (["world", "--copies", "0"], "--copies: a whole number of at least 1"),
    (["world", "--duration", "0"], "--duration: a duration must be more than 0"),
    (["world", "--scenario", "no-such-thing"], "no scenario named 'no-such-thing'"),
    (["world", "--dns-host", "localhost"], "--dns-host: an IP address"),
    (["serve"], "required: --config"),
    (
        ["serve", "--config", "CONFIG", "--listen", "9925"],
        "--listen/--web.listen-address: listen address must be",
    ),
    (["serve", "--config", "CONFIG", "--check-config", "--rrsig-critical", "9"], "at most"),
    (["serve", "--config", "/nonexistent/dane.yml", "--check-config"], "cannot read"),
    (["demo", "--interval", "0"], "--interval: a duration must be more than 0"),
    (["demo", "--rrsig-warning", "x"], "--rrsig-warning: a number of days"),
    ([], "the following arguments are required: command"),
    (["chek", "a.example"], "invalid choice: 'chek'"),
]


@pytest.mark.parametrize(("args", "message"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_exit_3_with_one_line(capsys, config_file, args, message):
    args = [str(config_file) if a == "CONFIG" else a for a in args]
    assert run(args) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    command = args[0] if args and args[0] != "chek" else None
    assert lines[0].startswith(f"dane-monitor {command}: " if command else "dane-monitor: ")
    assert message in lines[0]


def test_the_installed_command_exits_3_without_a_traceback():
    command = [sys.executable, "-m", "dane_monitor", "check", "--timeout", "0", "a.example"]
    p = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert p.returncode == 3
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr


def test_help_and_version_still_exit_0(capsys):
    assert run(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--format {text,json,nagios,csv}" in out
    assert "--deadline SECONDS" in out
    assert run(["--version"]) == 0


# -- Ctrl-C and --deadline, against an MX endpoint that accepts and then says nothing --------


@contextmanager
def hanging_listener(address: str) -> Iterator[socket.socket]:
    """A TCP listener on ``address`` (a free port) that accepts and never answers."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((address, 0))
        listener.listen(16)
        yield listener


@pytest.fixture
def hanging_mx(
    dane_world: World, dane_trust_anchor: Path
) -> Iterator[tuple[list[str], socket.socket]]:
    """``check`` arguments for good-ee.example whose SMTP connection hangs after accept,
    and the listener it connects to."""
    endpoint = dane_world.domains["good-ee"].hosts[0].endpoints[0]
    host, port = dane_world.dns_address
    with hanging_listener(endpoint.address) as listener:
        args = ["check", "good-ee.example", "--resolver", f"{host}:{port}",
                "--trust-anchor", str(dane_trust_anchor), "--timeout", "120",
                "--connect-port", str(listener.getsockname()[1])]  # fmt: skip
        yield args, listener


def _signal_masks(pid: int) -> dict[str, int]:
    """SigBlk/SigIgn/SigPnd/ShdPnd of a process's main thread, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("SigBlk", "SigIgn", "SigPnd", "ShdPnd"):
            fields[key] = int(value.strip(), 16)
    return fields


def _foreground_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def test_ctrl_c_ends_quietly_with_130(hanging_mx):
    args, listener = hanging_mx
    # Ctrl-C reaches a foreground process, whose SIGINT is at its default. A test run started
    # in the background of a non-interactive shell (`… &`, as a CI wrapper may do) ignores
    # SIGINT and SIGQUIT, and SIG_IGN survives exec: the child would rightly ignore Ctrl-C.
    # -X faulthandler: should it hang anyway, SIGABRT below shows every thread's stack.
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "dane_monitor", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_foreground_signals)  # fmt: skip
    try:
        listener.settimeout(60)
        conn, _ = listener.accept()  # the check now waits for a greeting that never comes
        with conn:
            masks = _signal_masks(proc.pid)
            sigint = 1 << (signal.SIGINT - 1)
            # A blocked or ignored SIGINT would make the check deaf to Ctrl-C: the harness's
            # fault, and the failure must say so.
            assert not masks["SigBlk"] & sigint and not masks["SigIgn"] & sigint, masks
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                out, err = proc.communicate(timeout=30)
                pytest.fail(f"no exit 60 s after SIGINT; masks then {masks}; stacks:\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err == ""
    assert out == ""


@pytest.mark.parametrize("output", ["text", "json", "nagios"])
def test_deadline_ends_the_check_unknown_in_every_format(hanging_mx, capsys, output):
    args, _ = hanging_mx
    assert run([*args, "--deadline", "0.5", "--format", output]) == 3
    out = capsys.readouterr().out
    message = "check did not finish within 0.5 s"
    if output == "json":
        doc = json.loads(out)
        assert doc["verdict"] == "error"
        assert [(f["code"], f["severity"]) for f in doc["findings"]] == [("check-timeout", "error")]
        assert message in doc["findings"][0]["message"]
    elif output == "nagios":
        first = out.splitlines()[0]
        assert first.startswith("DANE UNKNOWN - good-ee.example: error: " + message)
        assert "endpoints_authenticated=0;;;0" in first
        assert "duration=0." in first
    else:
        assert out.startswith("good-ee.example: ERROR (UNKNOWN)")
        assert message in out


def test_a_check_within_its_deadline_is_unchanged(dane_world, dane_trust_anchor, capsys):
    host, port = dane_world.dns_address
    args = ["check", "good-ee.example", "--resolver", f"{host}:{port}",
            "--trust-anchor", str(dane_trust_anchor), "--connect-port", str(dane_world.smtp_port),
            "--deadline", "120", "--json"]  # fmt: skip
    assert run(args) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "valid"


def test_a_crash_is_unknown_not_warning(monkeypatch, capsys):
    """A bug must not read as WARNING (Python's exit 1) to a monitoring system."""
    from dane_monitor.check import Checker

    async def crash(self, domain):
        raise RuntimeError("boom")

    monkeypatch.setattr(Checker, "check_domain", crash)
    args = ["check", "a.example", "--resolver", "127.0.0.1:9", "--format", "nagios"]
    assert run(args) == 3
    captured = capsys.readouterr()
    assert captured.out == "DANE UNKNOWN - dane-monitor check crashed: RuntimeError: boom\n"
    assert "Traceback" in captured.err
    assert captured.err.splitlines()[-1].startswith("dane-monitor check: internal error")
