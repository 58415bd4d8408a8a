"""Issue 18: what a new user sees in the first ten minutes, run as the user runs it.

Every test starts ``dane-monitor`` in a subprocess and asserts on its output, its exit code
and what it leaves on disk (with a private ``TMPDIR``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Whatever a test started is killed after it, also when an assertion cut it short."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _start(args: list[str], tmpdir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmpdir),
        # As from an interactive shell: SIGINT at its default, not inherited as ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _STARTED.append(proc)
    return proc


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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_world_leaves_nothing_behind_when_stopped(tmpdir_private: Path, sig: int):
    proc = _start(["world", "--scenario", "good-ee"], tmpdir_private)
    lines = _read_until(proc, r"^Ctrl-C stops\.")
    anchor = next(line.split()[2] for line in lines if line.startswith("trust anchor"))
    assert Path(anchor).parent.parent == tmpdir_private
    assert _stop(proc, sig) == 0
    assert list(tmpdir_private.iterdir()) == []


# -- 4. garbage from a server: escaped once, cut to a readable length ----------------------

#: A greeting a broken or hostile server might send: bytes that are not UTF-8, a NUL, a
#: terminal escape sequence, and far too much text.
GARBAGE = b"554 5.7.1 \xbf\xfe\x00\x1b[31m" + b"A" * 3000 + b"\r\n"
SHOWN = r"\xbf\xfe\x00\x1b[31m"  # what the user reads: each odd byte escaped once


@pytest.fixture(scope="module")
def garbage_server(dane_world) -> Iterator[tuple[str, int]]:
    """A server sending :data:`GARBAGE` on good-ee's MX address (another port than the
    world's), reached with ``--connect-port``."""
    import socketserver

    address = dane_world.domains["good-ee"].hosts[0].endpoints[0].address

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(GARBAGE)
            for line in self.rfile:
                if line.upper().startswith(b"QUIT"):
                    self.wfile.write(b"221 bye\r\n")
                    return
                self.wfile.write(GARBAGE)

    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer((address, 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield "good-ee.example", server.server_address[1]
        server.shutdown()


def _assert_once_escaped(text: str, where: str) -> None:
    assert SHOWN + "AAAA" in text, f"{where}: {text}"
    assert "\\" + SHOWN not in text, f"{where}: escaped twice: {text}"
    assert "\x1b" not in text and "\x00" not in text, f"{where}: raw control characters"
    longest = max((len(m) for m in re.findall(r"A{10,}", text)), default=0)
    assert 0 < longest <= 200, f"{where}: {longest} characters of the server's text"


def _check(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dane_monitor", "check", *args]
    return subprocess.run(command, capture_output=True, text=True, env=_env(tmp), timeout=DEADLINE)


def test_garbage_in_text_and_json_output_is_escaped_once_and_cut(
    garbage_server, world_dns_args, tmpdir_private
):
    domain, port = garbage_server
    args = [domain, *world_dns_args, "--connect-port", str(port), "--timeout", "5"]
    text = _check(args, tmpdir_private)
    assert text.returncode == 2, text.stderr
    _assert_once_escaped(text.stdout, "text")
    assert "the server greets with 554: 5.7.1 " + SHOWN in text.stdout
    js = _check([*args, "--json"], tmpdir_private)
    assert js.returncode == 2, js.stderr
    data = json.loads(js.stdout)
    ep = data["hosts"][0]["endpoints"][0]
    _assert_once_escaped(ep["probe_detail"], "JSON probe_detail")
    messages = [f["message"] for h in data["hosts"] for f in h["findings"]]
    assert any(SHOWN in m for m in messages), messages
    for m in messages:
        assert "\\" + SHOWN not in m and "\x1b" not in m


def test_garbage_in_nagios_output_is_escaped_once(garbage_server, world_dns_args, tmpdir_private):
    domain, port = garbage_server
    args = [domain, *world_dns_args, "--connect-port", str(port), "--format", "nagios"]
    out = _check(args, tmpdir_private)
    assert out.returncode == 2, out.stderr
    _assert_once_escaped(out.stdout, "nagios")


def test_garbage_on_the_exporters_debug_page_is_escaped_once(
    garbage_server, dane_world, world_dns_args, tmp_path, tmpdir_private
):
    import urllib.request

    domain, port = garbage_server
    resolver, anchor = world_dns_args[1], world_dns_args[3]
    config = tmp_path / "dane.yml"
    config.write_text(
        f"listen: 127.0.0.1:0\ndns:\n  resolver: {resolver}\n  trust_anchor: {anchor}\n"
        f"connect_port: {port}\ndefaults: {{interval: 60s, timeout: 5s}}\n"
        f"targets:\n  - domain: {domain}\n"
    )
    proc = _start(["serve", "--config", str(config)], tmpdir_private)
    try:
        assert proc.stderr is not None
        url = ""
        deadline = time.monotonic() + DEADLINE
        while not url and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "serve exited"
            if m := re.search(r"msg=listening url=(\S+)", line):
                url = m.group(1)
        with urllib.request.urlopen(f"{url}probe?target={domain}&debug=true", timeout=30) as r:
            page = r.read().decode()
        _assert_once_escaped(page, "debug page")
        assert f"S: 554 5.7.1 {SHOWN}AAAA" in page  # the transcript line
    finally:
        _stop(proc, signal.SIGTERM)


# -- 5. a file that is not a certificate chain: what it is, and what was expected ---------


def _files() -> dict[str, tuple[bytes | None, str]]:
    """name → (content, or None for no file; what the error must say after the name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    none = serialization.NoEncryption()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx1.example.de")]))
        .sign(key, hashes.SHA256())
    )
    want = "give the certificate (chain) PEM"
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    pkcs8 = serialization.PrivateFormat.PKCS8
    return {
        "privkey.pem": (key.private_bytes(pem, pkcs8, none),
                        f" holds a PRIVATE KEY, not a certificate: {want}"),
        "privkey.der": (key.private_bytes(der, pkcs8, none),
                        f" holds a PRIVATE KEY (DER), not a certificate: {want}"),
        "mx1.csr": (csr.public_bytes(pem), " holds a CERTIFICATE REQUEST (CSR), not a certificate"),
        "empty.pem": (b"", f" is empty: {want}"),
        "random.bin": (bytes(range(256)), " is neither a PEM nor a DER certificate"),
    }  # fmt: skip


def _needing_cli() -> dict[str, tuple[bytes | None, str]]:
    want = "give the certificate (chain) PEM"
    return {
        "tlsa.zone": (b"_25._tcp.mx1.example.de. 300 IN TLSA 3 1 1 " + b"ab" * 32 + b"\n",
                      f" holds TLSA records (zone-file text), not a certificate: {want}"),
        "anchor.ds": (b". IN DS 20326 8 2 " + b"E0" * 32 + b"\n",
                      " holds DS records (zone-file text, a trust-anchor file?), not a "
                      f"certificate: {want}"),
        "missing.pem": (None, f" (No such file or directory): {want}"),
    }  # fmt: skip


def _run_with_file(tmp: Path, command: str, name: str, content: bytes | None) -> str:
    path = tmp / name
    if content is not None:
        path.write_bytes(content)
    extra = ["--mx", "mx1.example.de"] if command == "preflight" else []
    p = subprocess.run([sys.executable, "-m", "dane_monitor", command, "--cert", str(path),
                        *extra], capture_output=True, text=True, env=_env(tmp))  # fmt: skip
    assert p.returncode == 3, p.stderr
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr  # one line, no traceback
    return lines[0]


@pytest.mark.parametrize("command", ["tlsa", "preflight"])
@pytest.mark.parametrize("name", sorted(_files()))
def test_a_file_that_is_not_a_chain_says_what_it_is(tmp_path, command, name):
    content, says = _files()[name]
    line = _run_with_file(tmp_path, command, name, content)
    assert line.startswith(f"dane-monitor {command}: {tmp_path / name}{says}"), line


@pytest.mark.parametrize("command", ["tlsa", "preflight"])
@pytest.mark.parametrize("name", sorted(_needing_cli()))
def test_records_or_no_file_given_as_a_chain_say_what_they_are(tmp_path, command, name):
    content, says = _needing_cli()[name]
    line = _run_with_file(tmp_path, command, name, content)
    what = f"cannot read {tmp_path / name}" if content is None else str(tmp_path / name)
    assert line.startswith(f"dane-monitor {command}: {what}{says}"), line


@pytest.mark.parametrize("name", sorted(_needing_cli()))
def test_the_loader_says_what_records_or_no_file_are(tmp_path, name):
    """dane_monitor.certfile.read_chain, the loader cli.py is to use, already says it."""
    from dane_monitor.certfile import read_chain

    content, says = _needing_cli()[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    what = f"cannot read {path}" if content is None else str(path)
    with pytest.raises(ValueError, match="^" + re.escape(f"{what}{says}")):
        read_chain(path)
