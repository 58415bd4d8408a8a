"""The plugin's items for an address the checking host has no route to (probe error
``no-route``): not checked — skipped with the reason, failed under ``--dane-strict`` — while
the host's other rules judge the addresses it can reach.

As in ``tests/test_probe_no_route.py``, the world and the inner pytest run inside a private
network namespace (``unshare --net --map-root-user``) with only ``lo`` up, where the MX
host's AAAA record 2001:db8::25 has no route. Where unprivileged namespaces are not allowed
the test is skipped (it fails instead under DANE_REQUIRE_TOOLS=1, as CI sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from dane_monitor.world.scenarios import UNROUTABLE_IPV6

# Inside the namespace: lo up, the NO_ROUTE world served, then pytest with the plugin against
# it, without and with --dane-strict; one JSON line per run, {item: [outcome, message]}.
_INSIDE = textwrap.dedent(
    """
    import fcntl, json, socket, struct, subprocess, sys, tempfile
    import xml.etree.ElementTree as ET
    from pathlib import Path

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))

    from dane_monitor.world import World
    from dane_monitor.world.scenarios import NO_ROUTE

    world = World(NO_ROUTE)
    with world.running():
        where = Path(tempfile.mkdtemp())
        anchor = world.write_trust_anchor(where / "anchor.ds")
        host, port = world.dns_address
        args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                "-p", "no:benchmark", f"--junitxml={where / 'junit.xml'}",
                f"--dane-resolver={host}:{port}", f"--dane-trust-anchor={anchor}",
                "--dane-connect-port", str(world.smtp_port), "--dane-timeout", "5"]
        for sc in NO_ROUTE:
            args += ["--dane-domain", world.domains[sc.name].name]
        for extra in ([], ["--dane-strict"]):
            run = subprocess.run([*args, *extra], cwd=where, capture_output=True, text=True)
            out = {}
            for case in ET.parse(where / "junit.xml").getroot().iter("testcase"):
                kind, message = "passed", ""
                for child in case:
                    if child.tag in ("failure", "error", "skipped"):
                        kind = {"failure": "failed"}.get(child.tag, child.tag)
                        message = child.get("message", "")
                out[case.get("name")] = [kind, message]
            print(json.dumps({"strict": bool(extra), "ret": run.returncode, "items": out}),
                  flush=True)
    """
)

V6 = "2001:0db8:0000:0000:0000:0000:0000:0025"  # UNROUTABLE_IPV6 as item ids write it
LATER = ("rrsig-expiry", "cert-expiry", "rollover", "stale-records", "warnings")


@pytest.fixture(scope="module")
def runs() -> dict[bool, dict]:
    reason = None
    if shutil.which("unshare") is None:
        reason = "needs util-linux's unshare"
    else:
        ns = subprocess.run(["unshare", "--net", "--map-root-user", "true"], capture_output=True)
        if ns.returncode != 0:
            reason = f"no private network namespace here: {ns.stderr.decode().strip()}"
    if reason is not None:
        if os.environ.get("DANE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    run = subprocess.run(
        ["unshare", "--net", "--map-root-user", sys.executable, "-c", _INSIDE],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0 and len(lines) == 2, run.stdout[-3000:] + run.stderr[-3000:]
    return {line["strict"]: line for line in lines}


def items_of(run: dict, domain: str) -> dict[str, list[str]]:
    return {name: v for name, v in run["items"].items() if f"[{domain}" in name}


def test_an_unreachable_ipv6_address_is_not_checked_and_the_rest_is(runs):
    d = "ipv6-no-route.example"
    items = items_of(runs[False], d)
    h = f"{d}|mx1.{d}|25"
    v6 = {name: v for name, v in items.items() if V6 in name}
    assert set(v6) == {f"starttls[{d}|mx1.{d}|{V6}|25]", f"tlsa-match[{d}|mx1.{d}|{V6}|25]"}
    for kind, message in v6.values():
        assert kind == "skipped"
        assert message.startswith(
            f"not checked: mx1.{d} [{UNROUTABLE_IPV6}]:25 is not reachable from this host "
            "(no-route: "
        )
    # the IPv4 address and the host's rules, judged on what is reachable, pass
    others = {name: kind for name, (kind, _) in items.items() if name not in v6}
    assert others and set(others.values()) == {"passed"}, others
    assert {f"{rule}[{h}]" for rule in LATER} <= set(others)

    strict = items_of(runs[True], d)
    failing = {name for name, (kind, _) in strict.items() if kind != "passed"}
    assert failing == {*v6, f"rollover[{h}]"}  # strict: the world publishes no next key
    assert {strict[name][0] for name in failing} == {"failed"}
    assert "tlsa-no-rollover" in strict[f"rollover[{h}]"][1]


def test_a_host_reachable_by_no_address_checks_nothing_but_its_dns(runs):
    d = "only-no-route.example"
    items = items_of(runs[False], d)
    h = f"{d}|mx1.{d}|25"
    assert (
        {name: kind for name, (kind, _) in items.items()}
        == {
            f"dnssec[{d}]": "passed",
            f"dnssec[{h}]": "passed",
            f"tlsa-usable[{h}]": "passed",
            f"starttls[{d}|mx1.{d}|{V6}|25]": "skipped",
            f"tlsa-match[{d}|mx1.{d}|{V6}|25]": "skipped",
            **{f"{rule}[{h}]": "passed" for rule in LATER[:1]},  # the signatures were read
            **{f"{rule}[{h}]": "skipped" for rule in LATER[1:]},
            f"warnings[{d}]": "passed",
        }
    )
    assert items[f"cert-expiry[{h}]"][1] == (
        f"not checked: no address of mx1.{d} is reachable from this host ({UNROUTABLE_IPV6})"
    )
    strict = items_of(runs[True], d)
    assert {name for name, (kind, _) in strict.items() if kind == "failed"} == {
        name for name, (kind, _) in items.items() if kind == "skipped"
    }
    assert runs[True]["ret"] == pytest.ExitCode.TESTS_FAILED
