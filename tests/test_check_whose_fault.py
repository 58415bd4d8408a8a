"""Whose fault decides CRITICAL or UNKNOWN, end to end (issue 12).

The domain's name servers answer SERVFAIL (or nothing) for its TLSA or MX RRset while our
resolver validates a known-good name: DANE senders defer, so the check is ``failed``,
CRITICAL, with the reason; in both validation modes. Our resolver itself is gone: nothing
can be decided, UNKNOWN, and the finding says whose side it is.
"""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from dane_monitor.cli import main
from dane_monitor.world import Expect, Fault, Host, Scenario, World

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")

SCENARIOS = (
    Scenario("tlsa-servfail", "the TLSA name answers SERVFAIL", hosts=(Host("mx1"),),
             faults=((Fault.SERVFAIL, "_25._tcp.mx1", None),), expect=Expect("failed")),
    Scenario("mx-servfail", "the MX RRset answers SERVFAIL",
             faults=((Fault.SERVFAIL, "@", "MX"),), expect=Expect("failed")),
    Scenario("tlsa-silent", "the TLSA name never answers", hosts=(Host("mx1"),),
             faults=((Fault.NO_ANSWER, "_25._tcp.mx1", None),), expect=Expect("failed")),
)  # fmt: skip


@pytest.fixture(scope="module")
def world(dane_world_factory) -> World:
    return dane_world_factory(SCENARIOS, smtp_network="127.0.9.0/24")


def check(capsys, world: World, name: str, *args: str) -> tuple[int, dict]:
    code = main(["check", "--json", world.domains[name].name, "--connect-port",
                 str(world.smtp_port), "--timeout", "5", "--dns-timeout", "1", *args])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def local_args(world: World, tmp_path) -> list[str]:
    host, port = world.dns_address
    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    return ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor)]


@pytest.mark.parametrize(
    ("name", "decision", "where"),
    [("tlsa-servfail", "tlsa-dns-failure", "host"), ("mx-servfail", "mx-dns-failure", "domain"),
     ("tlsa-silent", "tlsa-dns-failure", "host")],
)  # fmt: skip
def test_the_domains_failing_servers_are_critical(world, tmp_path, capsys, name, decision, where):
    code, out = check(capsys, world, name, *local_args(world, tmp_path))
    assert (code, out["verdict"]) == (2, "failed"), out["findings"]
    got = out["decision"] if where == "domain" else out["hosts"][0]["decision"]
    assert got == decision
    assert "dns-error" in {f["code"] for f in out["findings"]}
    assert out["sender_action"] == "defer"


@pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")
def test_the_same_in_resolver_mode_behind_unbound(world, tmp_path, capsys):
    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    with world.unbound() as unbound:
        host, port = unbound.address
        args = ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
                "--validation", "resolver"]  # fmt: skip
        code, out = check(capsys, world, "tlsa-servfail", *args)
    assert (code, out["verdict"], out["hosts"][0]["decision"]) == (2, "failed",
                                                                   "tlsa-dns-failure")  # fmt: skip


def test_our_resolver_gone_is_unknown(world, tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:  # never answers
        hole.bind(("127.0.0.1", 0))
        anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
        args = ["--resolver", f"127.0.0.1:{hole.getsockname()[1]}", "--trust-anchor", str(anchor)]
        code, out = check(capsys, world, "tlsa-servfail", *args)
    assert (code, out["verdict"], out["decision"]) == (3, "error", "mx-unknown")
    assert [f["code"] for f in out["findings"]] == ["resolver-failed"]
    assert "our resolver fails a known-good name too" in out["findings"][0]["message"]
