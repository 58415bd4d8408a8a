"""The plugin's ``nameservers`` rule (issue 16): the ns-* findings as pytest items, run as a
user runs ``pytest --dane-domain …`` (pytester) against the world's NAMESERVER_SCENARIOS
(each zone's primary plus a secondary that is stale, early-expiring, bogus, lame, silent or
down).

One item ``nameservers[target|zone]`` per zone on the check's path that at least one of its
servers answers with authority (the mail domain's zone and ``example`` here): it
fails on an error finding (a server whose TLSA RRset fails the certificate, or whose MX
RRset names no host that takes mail, bad signatures, signatures about to expire), passes with
a DaneWarning on warnings only (a lagging serial, another RRset, a lame or silent server),
and fails on those too under --dane-strict. No survey (``--dane-no-nameservers``) or servers
nobody answers give no item, as ``check`` says nothing then; the ``warnings`` item no longer
judges ns-* findings.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dane_monitor.world import NAMESERVER_SCENARIOS, World

pytest_plugins = ["pytester"]

INNER = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark")

#: scenario → the outcome of its own zone's nameservers item (what its ns-* findings give:
#: tests/test_nameservers.py EXPECTED): failed (an error), warned (warnings only), passed.
EXPECTED = {
    "secondaries-agree": "passed",
    "stale-secondary-tlsa": "failed",
    "stale-secondary-serial": "warned",
    "stale-secondary-mx": "failed",
    "secondary-sigs-expire-soon": "failed",
    "secondary-bogus-tlsa": "failed",
    "lame-secondary": "warned",
    "secondary-not-authoritative": "warned",
    "silent-secondary": "warned",
    "secondary-down": "warned",
}


def test_every_nameserver_scenario_has_an_expectation():
    assert set(EXPECTED) == {sc.name for sc in NAMESERVER_SCENARIOS}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(NAMESERVER_SCENARIOS, ns_network="127.0.62.0/24")
    w.anchor_path = w.write_trust_anchor(tmp_path_factory.mktemp("nsp16") / "anchor.ds")
    with w.running():
        yield w


def args(world: World, *, port: bool = True) -> list[str]:
    host, dns_port = world.dns_address
    out = [
        "--dane-resolver", f"{host}:{dns_port}", f"--dane-trust-anchor={world.anchor_path}",
        "--dane-connect-port", str(world.smtp_port), "--dane-timeout", "5",
    ]  # fmt: skip
    return out + (["--dane-nameserver-port", str(dns_port)] if port else [])


def run(pytester: pytest.Pytester, *argv: str) -> tuple[pytest.RunResult, dict[str, str]]:
    """{item name: passed | warned | failed | skipped} from the JUnit XML and the warnings
    summary."""
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(*INNER, f"--junitxml={xml}", "-rA", *argv)
    text = result.stdout.str()
    warned = text.split("warnings summary")[-1].split("short test summary info")[0]
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed", "error": "failed"}.get(child.tag, child.tag)
        name = str(case.get("name"))
        if kind == "passed" and f"dane::{name}\n" in warned:
            kind = "warned"
        out[name] = kind
    return result, out


def domains() -> list[str]:
    out = []
    for sc in NAMESERVER_SCENARIOS:
        out += ["--dane-domain", f"{sc.name}.example"]
    return out


def test_each_zone_s_item_follows_its_findings(pytester, world):
    _, got = run(pytester, *args(world), *domains())
    for sc in NAMESERVER_SCENARIOS:
        d = f"{sc.name}.example"
        assert got[f"nameservers[{d}|{d}]"] == EXPECTED[sc.name], (sc.name, got)
        # the parent (the world's trust anchor: no root above it), whose servers agree
        assert got[f"nameservers[{d}|example]"] == "passed"
        # ns-* findings are the nameservers rule's only: the target's warnings item is clean
        assert got[f"warnings[{d}]"] == "passed", (sc.name, got[f"warnings[{d}]"])
        # and the RFC 7672 items are the validated path's (every scenario is valid there)
        address = world.domains[sc.name].hosts[0].endpoints[0].address
        assert got[f"tlsa-match[{d}|mx1.{d}|{address}|25|ecdsa]"] == "passed"


def test_a_failing_item_names_the_server_the_zone_and_what_senders_do(pytester, world):
    result, got = run(pytester, *args(world), "--dane-domain", "stale-secondary-tlsa.example")
    d = "stale-secondary-tlsa.example"
    assert got[f"nameservers[{d}|{d}]"] == "failed"
    text = result.stdout.str()
    _, stale, _ = world.nameservers(f"{d}.")
    assert f"name servers of {d}. disagree" in text
    assert "ns-rrset-differs" in text and "ns-serial-lag" in text
    assert f"{stale.name.rstrip('.')} ({stale.address}) serves _25._tcp.mx1.{d}. TLSA" in text
    assert "defer mail" in text


def test_strict_fails_the_warnings_too(pytester, world):
    d = "lame-secondary.example"
    _, got = run(pytester, *args(world), "--dane-domain", d, "--dane-strict")
    assert got[f"nameservers[{d}|{d}]"] == "failed"
    assert got[f"nameservers[{d}|example]"] == "passed"


def test_k_selects_a_zone(pytester, world):
    d = "secondary-down.example"
    _, got = run(pytester, *args(world), "--dane-domain", d, "-k", "nameservers")
    assert sorted(got) == sorted(f"nameservers[{d}|{z}]" for z in (d, "example"))


def test_no_nameservers_and_unreachable_servers_make_no_item(pytester, world):
    d = "stale-secondary-tlsa.example"
    for extra in (["--dane-no-nameservers"], ["-o", "dane_nameservers=false"]):
        _, got = run(pytester, *args(world), "--dane-domain", d, *extra)
        assert not [n for n in got if n.startswith("nameservers[")], extra
        assert got[f"warnings[{d}]"] == "passed"
    # port 53, where nothing of the world listens: nobody answers, nothing to compare
    _, got = run(pytester, *args(world, port=False), "--dane-domain", d)
    assert not [n for n in got if n.startswith("nameservers[")]
    assert "failed" not in got.values(), got


def test_a_bad_nameserver_port_is_a_usage_error(pytester, world):
    result = pytester.runpytest(*INNER, *args(world, port=False), "--dane-nameserver-port", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--dane-nameserver-port" in result.stderr.str()
