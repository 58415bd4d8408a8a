"""Independent DNS tools for the world's tests: dig, delv, and BIND's named as a validating
resolver with a policy (``disable-algorithms``), each run as a subprocess against loopback."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SBIN = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"


def tool(name: str) -> str:
    """The path of ``name``; skips the test without it (fails under DANE_REQUIRE_TOOLS=1)."""
    path = shutil.which(name, path=SBIN)
    if path is None:
        if os.environ.get("DANE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {name} is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def dig(server: str, port: int, name: str, rdtype: str, *opts: str) -> str:
    """dig's full output for one query (no retries, a generous timeout)."""
    cmd = [tool("dig"), f"@{server}", "-p", str(port), "+tries=1", "+time=5", *opts, name, rdtype]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False).stdout


def status(out: str) -> str | None:
    m = re.search(r"status: (\w+)", out)
    return m.group(1) if m else None


def flags(out: str) -> set[str]:
    m = re.search(r";; flags: ([a-z ]*);", out)
    return set(m.group(1).split()) if m else set()


def answer(out: str, rdtype: str) -> list[str]:
    """The RDATA of the answer section's ``rdtype`` records, as dig prints them."""
    section = (
        out.split(";; ANSWER SECTION:", 1)[1].split("\n\n", 1)[0] if "ANSWER SECTION" in out else ""
    )
    rows = [line.split(None, 4) for line in section.splitlines() if line and line[0] != ";"]
    return [r[4] for r in rows if len(r) == 5 and r[3] == rdtype]


def delv(server: str, port: int, anchor: Path, root: str, name: str, rdtype: str) -> str:
    """delv's verdict lines for ``name`` asked of ``server``, validated from ``root``'s
    anchor in ``anchor`` (BIND ``trust-anchors`` syntax)."""
    cmd = [tool("delv"), f"@{server}", "-p", str(port), "-a", str(anchor), f"+root={root}"]
    cmd += ["-4", name, rdtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return p.stdout + p.stderr


def delv_verdict(out: str) -> str:
    """secure / insecure / bogus from delv's output."""
    if "unsigned answer" in out:
        return "insecure"
    if re.search(r"^; (negative response, )?fully validated", out, re.M):
        return "secure"
    return "bogus"


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


#: What several distributions' validators do by default now: SHA-1 DNSSEC algorithms are
#: not validated, so zones signed with them are insecure (DANE silently off).
REFUSE_SHA1 = 'disable-algorithms "." { RSASHA1; NSEC3RSASHA1; };'

#: named as a validating resolver forwarding to the world's primary (here and in the real
#: senders' harness, tests/interop/senders.py).
NAMED_RESOLVER_CONF = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ any; }};
    dnssec-validation yes;
    forward only;
    forwarders {{ {upstream_host} port {upstream_port}; }};
    {policy}
}};
controls {{ }};
{anchors}
"""


@contextlib.contextmanager
def named_resolver(
    upstream: tuple[str, int], anchors: str, policy: str = "", timeout: float = 60.0
) -> Iterator[tuple[str, int]]:
    """BIND's named as a validating resolver forwarding to ``upstream`` (the world's primary,
    which answers every name in full), with ``anchors`` (``trust-anchors { ... };``) and the
    extra ``options`` statements in ``policy`` (e.g. ``disable-algorithms``)."""
    named = tool("named")
    with tempfile.TemporaryDirectory(prefix="dane-nsw16-named-") as d:
        for _ in range(5):
            port = free_udp_port()
            conf = Path(d) / "named.conf"
            conf.write_text(
                NAMED_RESOLVER_CONF.format(
                    dir=d,
                    address="127.0.0.1",
                    port=port,
                    upstream_host=upstream[0],
                    upstream_port=upstream[1],
                    policy=policy,
                    anchors=anchors,
                )
            )
            log = open(Path(d) / "named.log", "wb")  # noqa: SIM115 - closed below
            proc = subprocess.Popen([named, "-g", "-4", "-c", str(conf)], stdout=log, stderr=log)
            try:
                deadline = time.monotonic() + timeout
                ready = False
                while time.monotonic() < deadline and proc.poll() is None:
                    out = dig("127.0.0.1", port, "version.bind.", "TXT", "-c", "CH", "+time=1")
                    if status(out) is not None:
                        ready = True
                        break
                    time.sleep(0.05)  # poll interval while named starts
                if ready:
                    yield ("127.0.0.1", port)
                    return
                if proc.poll() is None:
                    raise RuntimeError(
                        f"named did not answer: {(Path(d) / 'named.log').read_text()}"
                    )
                # exited: most likely the port was taken between free_udp_port() and bind()
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                log.close()
        raise RuntimeError("named did not start on any of 5 free ports")


def named_version() -> str:
    out = subprocess.run([tool("named"), "-v"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def world_args(world, anchor: Path) -> list[str]:
    """``dane-monitor check`` options for a started world (its primary DNS server, anchor)."""
    host, port = world.dns_address
    return ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
            "--connect-port", str(world.smtp_port), "--timeout", "5"]  # fmt: skip


def check_domain(world, anchor: Path, name: str):
    """A Checker's result for ``world``'s domain ``name`` (its primary DNS server, ``anchor``,
    its SMTP port), in a fresh event loop."""
    import asyncio

    from dane_monitor import settings

    host, port = world.dns_address

    async def run():
        checker = settings.make_checker(
            resolver=f"{host}:{port}", trust_anchor=anchor,
            connect_port=world.smtp_port, step_timeout=5,
        )  # fmt: skip
        return await checker.check_domain(world.domains[name].name)

    return asyncio.run(run())


def check_reaches_expectation(world, scenario, anchor: Path, capsys) -> dict:
    """``dane-monitor check --json`` on ``scenario``'s domain gives its Expect (verdict, exit
    code, findings, each host's verdict and sender action); returns the JSON."""
    import json

    from dane_monitor.cli import main

    domain = world.domains[scenario.name]
    code = main(["check", "--json", domain.name, *world_args(world, anchor)])
    out = json.loads(capsys.readouterr().out)
    expect = scenario.expect
    dump = json.dumps(out, indent=1)[:4000]
    assert out["verdict"] == expect.verdict, dump
    assert expect.findings <= {f["code"] for f in out["findings"]}, dump
    if expect.exit_code is not None:
        assert code == expect.exit_code, dump
    hosts = {h["name"]: h for h in out["hosts"]}
    for built, sc_host in zip(domain.hosts, scenario.hosts, strict=True):
        he = expect.hosts.get(sc_host.name)
        if he is not None:
            got = hosts[built.mx_name]
            assert (got["verdict"], got["sender_action"]) == (he.verdict, he.sender_action), got
    return out
