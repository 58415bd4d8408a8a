"""An address the checking host has no route to is "not reachable from here" (probe error
``no-route``): the checking side's problem, not the server's.

The end-to-end tests run the world and ``dane-monitor check`` inside a private network
namespace (``unshare --net --map-root-user``) with only ``lo`` up, where the MX host's AAAA
record 2001:db8::25 has no route: connect() fails at once with ENETUNREACH and no packet can
leave the machine. Where unprivileged namespaces are not allowed they are skipped (they fail
instead under DANE_REQUIRE_TOOLS=1, as CI sets it: CI runs as root).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from dane_monitor.probe import ERRORS, Timeouts, probe
from dane_monitor.world.scenarios import NO_ROUTE, UNROUTABLE_IPV6

FAST = Timeouts(connect=2, banner=1, command=1, tls=1, quit=1, total=5)


@pytest.mark.parametrize("code", [errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT])
def test_a_local_no_route_is_no_route(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    async def no_route(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", no_route)
    result = asyncio.run(probe(UNROUTABLE_IPV6, 25, sni="mx.example", timeouts=FAST))
    assert "no-route" in ERRORS
    assert (result.error, result.error_step, result.connected) == ("no-route", "connect", False)
    assert "not reachable from here" in (result.detail or "")


@pytest.mark.parametrize("code", [errno.EHOSTUNREACH, errno.ENETDOWN])
def test_other_connect_errors_stay_connect_failed(monkeypatch: pytest.MonkeyPatch, code: int):
    async def fails(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", fails)
    result = asyncio.run(probe("192.0.2.25", 25, sni="mx.example", timeouts=FAST))
    assert result.error == "connect-failed"


# -- in a private network namespace ---------------------------------------------------------

# Runs inside the namespace: lo up (SIOCSIFFLAGS, no iproute2 needed), the NO_ROUTE world
# served, then one `check --json` per scenario; prints one JSON line per scenario.
_INSIDE = textwrap.dedent(
    """
    import contextlib, fcntl, io, json, socket, struct, sys, tempfile
    from pathlib import Path

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    try:  # the premise: no route to the AAAA, failing at once
        socket.create_connection((sys.argv[1], 25), timeout=5)
        raise SystemExit("a route to the unroutable address exists here")
    except OSError as exc:
        print(json.dumps({"premise": exc.errno}), flush=True)

    from dane_monitor.cli import main
    from dane_monitor.world import World
    from dane_monitor.world.scenarios import NO_ROUTE

    world = World(NO_ROUTE)
    with world.running():
        anchor = world.write_trust_anchor(Path(tempfile.mkdtemp()) / "anchor.ds")
        host, port = world.dns_address
        for sc in NO_ROUTE:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(["check", "--json", world.domains[sc.name].name,
                             "--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
                             "--connect-port", str(world.smtp_port), "--timeout", "5"])
            print(json.dumps({"scenario": sc.name, "code": code,
                              "out": json.loads(out.getvalue())}), flush=True)
    """
)


def _netns_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "needs util-linux's unshare"
    probe_ns = subprocess.run(
        ["unshare", "--net", "--map-root-user", "true"], capture_output=True, text=True
    )
    if probe_ns.returncode != 0:
        return f"no private network namespace here: {probe_ns.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def in_namespace() -> dict[str, dict]:
    reason = _netns_unavailable()
    if reason is not None:
        if os.environ.get("DANE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    run = subprocess.run(
        ["unshare", "--net", "--map-root-user", sys.executable, "-c", _INSIDE, UNROUTABLE_IPV6],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    assert lines[0] == {"premise": errno.ENETUNREACH}, lines[0]
    return {line["scenario"]: line for line in lines[1:]}


def _endpoints(out: dict) -> dict[str, dict]:
    return {e["address"]: e for h in out["hosts"] for e in h["endpoints"]}


def test_an_unroutable_ipv6_endpoint_is_not_reachable_from_here(in_namespace):
    run = in_namespace["ipv6-no-route"]
    out = run["out"]
    endpoints = _endpoints(out)
    v6 = endpoints[UNROUTABLE_IPV6]
    assert v6["probe_error"] == "no-route", v6
    # the finding says it is our side's problem
    about = [f for f in out["findings"] if f.get("address") == UNROUTABLE_IPV6]
    assert any("not reachable from here" in f["message"] for f in about), out["findings"]
    # the reachable endpoint decides: it authenticates, the domain is OK
    (v4,) = [e for a, e in endpoints.items() if a != UNROUTABLE_IPV6]
    assert v4["authenticated"] is True, v4
    sc = next(s for s in NO_ROUTE if s.name == "ipv6-no-route")
    assert (out["verdict"], run["code"]) == (sc.expect.verdict, sc.expect.exit_code), out
    (host,) = out["hosts"]
    assert host["sender_action"] == sc.expect.hosts["mx1"].sender_action, host


def test_only_unroutable_endpoints_is_unknown(in_namespace):
    run = in_namespace["only-no-route"]
    out = run["out"]
    assert _endpoints(out)[UNROUTABLE_IPV6]["probe_error"] == "no-route"
    assert (out["verdict"], run["code"]) == ("error", 3), out
