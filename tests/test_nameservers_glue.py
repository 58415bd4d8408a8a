"""Nameserver consistency (issue 16) for servers whose own name resolves to no address.

A zone may list an in-bailiwick name server whose address exists only as glue in the
parent's delegation (the zone forgot its A record): resolvers that follow the delegation
still ask it, so the survey asks it too, at the address the parent's referral gives (asked
with RD=0 of a server of the parent only, as a resolver would be referred), and marks it as
glue. A listed name with no address at all (no record, no glue) is an ``ns-unreachable``
finding that says so. In the world: ``example.`` has a second server (ns9) holding only that
zone, which answers with referrals and glue as a real TLD server does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from worldtools import answer, dig

from dane_monitor import settings
from dane_monitor.report import DomainResult
from dane_monitor.world import Scenario, World

DAY = 86400
NET = "127.0.61"
GLUE, STALE, GONE = "glue-ns", "glue-ns-stale", "ns-no-address"


@pytest.fixture(scope="module")
def world():
    scenarios = [
        Scenario(GLUE, "ns2's address is only glue in the parent", nameservers=()),
        Scenario(STALE, "as glue-ns, and ns2's copy is two days old", nameservers=()),
        Scenario(GONE, "the NS RRset lists a name that does not exist", nameservers=()),
    ]
    w = World(scenarios, ns_network=f"{NET}.0/24")
    w.hierarchy["example."].secondary(f"{NET}.9", "ns9")  # serves example. only: referrals
    w.hierarchy[f"{GLUE}.example."].secondary(f"{NET}.2", glue_only=True)
    w.hierarchy[f"{STALE}.example."].secondary(f"{NET}.3", glue_only=True, age=2 * DAY)
    w.hierarchy[f"{GONE}.example."].add("@", "NS", "ns.nowhere.example.")
    w.signed = w.hierarchy.sign()
    with w.running():
        yield w


def check(world: World, tmp_path, name: str) -> DomainResult:
    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = world.dns_address

    async def run() -> DomainResult:
        checker = settings.make_checker(
            resolver=f"{host}:{port}", trust_anchor=anchor, connect_port=world.smtp_port,
            dns_timeout=2, nameservers=True, nameserver_port=port,
        )  # fmt: skip
        return await checker.check_domain(f"{name}.example")

    return asyncio.run(run())


def servers(result: DomainResult, zone: str) -> list[dict[str, Any]]:
    assert result.nameservers is not None
    (z,) = [z for z in result.nameservers["zones"] if z["zone"] == zone]
    return z["servers"]


def ns_findings(result: DomainResult) -> list[tuple[str, str, str]]:
    return [
        (f.code, f.severity.value, f.message)
        for f in result.all_findings()
        if f.code.startswith("ns-")
    ]


def test_the_world_publishes_the_address_only_as_glue(world):
    zone = f"{GLUE}.example."
    port = world.dns_port
    ns2 = f"ns2.{zone}"
    own = dig("127.0.0.1", port, ns2, "A", "+norec")
    assert answer(own, "A") == []  # the zone has no address for its own server
    referral = dig(f"{NET}.9", port, zone, "NS", "+norec")
    assert f"{ns2}" in referral and f"{NET}.2" in referral  # the parent's glue has it
    assert [(s.name, s.address) for s in world.nameservers(zone)] == [
        (f"ns1.{zone}", "127.0.0.1"), (ns2, f"{NET}.2"),
    ]  # fmt: skip


def test_a_server_known_only_by_glue_is_asked_at_the_glue_address(world, tmp_path):
    result = check(world, tmp_path, GLUE)
    assert result.verdict.value == "valid"
    by_name = {s["name"]: s for s in servers(result, f"{GLUE}.example.")}
    ns2 = by_name[f"ns2.{GLUE}.example."]
    assert (ns2["address"], ns2["glue"], ns2["state"]) == (f"{NET}.2", True, "ok")
    assert by_name[f"ns1.{GLUE}.example."]["glue"] is False
    assert ns_findings(result) == []  # it serves what the primary serves


def test_what_a_glue_server_serves_is_compared_and_named_as_glue(world, tmp_path):
    result = check(world, tmp_path, STALE)
    found = ns_findings(result)
    assert [(c, s) for c, s, _ in found] == [("ns-serial-lag", "warning")], found
    assert f"ns2.{STALE}.example ({NET}.3, from the parent's glue)" in found[0][2]


def test_a_name_server_without_any_address_is_unreachable_and_says_why(world, tmp_path):
    result = check(world, tmp_path, GONE)
    assert result.verdict.value == "valid"
    by_name = {s["name"]: s for s in servers(result, f"{GONE}.example.")}
    gone = by_name["ns.nowhere.example."]
    assert (gone["address"], gone["state"]) == (None, "no-address")
    found = ns_findings(result)
    assert [(c, s) for c, s, _ in found] == [("ns-unreachable", "warning")], found
    message = found[0][2]
    assert "ns.nowhere.example" in message and "has no address" in message
    assert "nxdomain" in message


def test_the_text_marks_glue_addresses(world, tmp_path, capsys):
    from dane_monitor.cli import main

    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = world.dns_address
    main(["check", f"{GLUE}.example.", "--resolver", f"{host}:{port}", "--trust-anchor",
          str(anchor), "--connect-port", str(world.smtp_port),
          "--nameserver-port", str(port)])  # fmt: skip
    text = capsys.readouterr().out.split("Name servers (")[1]
    line = next(ln for ln in text.splitlines() if f"ns2.{GLUE}.example." in ln)
    assert f"{NET}.2" in line and line.rstrip().endswith("(glue)")
