"""Nameserver consistency (issue 16): every authoritative server of the zones on the path,
asked directly, and the findings when they disagree.

Against the world's NAMESERVER_SCENARIOS (each zone's primary plus secondaries that are
stale, early-expiring, bogus, lame, silent or down): ``dane-monitor check`` as a user runs it
(a subprocess) and the Checker give each scenario's finding, and none for secondaries that
agree; the verdict stays the validated path's. The comparison functions are tested on
hand-made surveys.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dane_monitor import evidence as ev
from dane_monitor import nameservers as NS
from dane_monitor import settings
from dane_monitor.report import Severity
from dane_monitor.settings import Thresholds
from dane_monitor.world import NAMESERVER_SCENARIOS, NameServer, Record, Server, World, by_name
from dane_monitor.world import Host as WorldHost
from dane_monitor.world import Scenario as WorldScenario

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400
E, W = "error", "warning"

#: scenario → the nameserver findings it must give, (code, severity), all at ns2.
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "secondaries-agree": set(),
    "stale-secondary-tlsa": {("ns-rrset-differs", E), ("ns-serial-lag", W)},
    "stale-secondary-serial": {("ns-serial-lag", W)},
    "stale-secondary-mx": {("ns-rrset-differs", E), ("ns-serial-lag", W)},
    "secondary-sigs-expire-soon": {("ns-rrsig-expiring", E)},
    "secondary-bogus-tlsa": {("ns-rrsig-bogus", E)},
    "lame-secondary": {("ns-lame", W)},
    "secondary-not-authoritative": {("ns-lame", W)},
    "silent-secondary": {("ns-unreachable", W)},
    "secondary-down": {("ns-unreachable", W)},
}


def test_every_nameserver_scenario_has_an_expectation():
    assert set(EXPECTED) == {sc.name for sc in NAMESERVER_SCENARIOS}


#: A secondary (ns2) that serves an MX RRset other than the validated one, naming hosts that
#: exist elsewhere in the world: one that takes mail, one whose TLSA RRset fails its
#: certificate (the host of mx-moved-target, whose own domain is failed), a null MX.
MX_SCENARIOS = (
    WorldScenario(
        "mx-moved-target",
        "the host the next scenarios' ns2 points to: its TLSA RRset matches no key",
        hosts=(WorldHost("mx1", tlsa=(Record(3, 1, 1, "unrelated"),)),),
    ),
    WorldScenario(
        "secondary-mx-delivers",
        "ns2 names mx1 of secondaries-agree (a valid host) instead of this domain's mx1",
        nameservers=(NameServer(records=(("@", "MX", ("10 mx1.secondaries-agree.example.",)),)),),
    ),
    WorldScenario(
        "secondary-mx-mismatch",
        "ns2 names mx1 of mx-moved-target (whose TLSA RRset fails its certificate)",
        nameservers=(NameServer(records=(("@", "MX", ("10 mx1.mx-moved-target.example.",)),)),),
    ),
    WorldScenario(
        "secondary-null-mx",
        "ns2 serves a null MX (RFC 7505)",
        nameservers=(NameServer(records=(("@", "MX", ("0 .",)),)),),
    ),
    # ns2's A RRset of mx1 (set in the fixture, once addresses are known): the address of
    # mx1.mx-moved-target (whose certificate this domain's TLSA RRset does not match) ...
    WorldScenario(
        "secondary-a-moved", "ns2 gives mx1 another server's address", nameservers=(NameServer(),)
    ),
    # ... beside mx1's own address: an endpoint that fails beside one that authenticates is a
    # failed host by the decision table (senders that reach it defer), so still an error ...
    WorldScenario(
        "secondary-a-extra", "ns2 gives mx1 an extra address", nameservers=(NameServer(),)
    ),
    # ... and one of mx1's two good addresses only: every address it gives authenticates
    WorldScenario(
        "secondary-a-subset",
        "ns2 gives mx1 one of its two addresses",
        hosts=(WorldHost("mx1", servers=(Server(), Server())),),
        nameservers=(NameServer(),),
    ),
)


@pytest.fixture(scope="module")
def world():
    w = World((*NAMESERVER_SCENARIOS, *MX_SCENARIOS))
    moved = w.domains["mx-moved-target"].hosts[0].endpoints[0].address
    own = {
        n: w.domains[n].hosts[0].endpoints[0].address
        for n in ("secondary-a-extra", "secondary-a-subset")
    }
    for name, addresses in (
        ("secondary-a-moved", [moved]),
        ("secondary-a-extra", [moved, own["secondary-a-extra"]]),
        ("secondary-a-subset", [own["secondary-a-subset"]]),
    ):
        (ns2,) = w.hierarchy[f"{name}.example."].secondaries
        ns2.set("mx1", "A", *addresses)
    w.signed = w.hierarchy.sign()
    with w.running():
        yield w


@pytest.fixture(scope="module")
def args(world, tmp_path_factory) -> list[str]:
    anchor = world.write_trust_anchor(tmp_path_factory.mktemp("nsc16") / "anchor.ds")
    host, port = world.dns_address
    return [
        "--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
        "--connect-port", str(world.smtp_port), "--timeout", "5",
        "--nameserver-port", str(port), "--dns-timeout", "1",
    ]  # fmt: skip


def ns_findings(findings) -> set[tuple[str, str]]:
    return {(f["code"], f["severity"]) for f in findings if f["code"].startswith("ns-")}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dane_monitor", *argv],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def expected_exit(scenario_exit: int, found: set[tuple[str, str]]) -> int:
    severities = {s for _, s in found}
    if E in severities:
        return max(scenario_exit, 2)
    if W in severities:
        return max(scenario_exit, 1)
    return scenario_exit


@pytest.mark.parametrize("scenario", NAMESERVER_SCENARIOS, ids=lambda sc: sc.name)
def test_the_cli_reports_each_scenario(world, args, scenario):
    """``dane-monitor check --json`` gives the scenario's findings, located at the faulty
    secondary's address and naming it; the verdict is still the validated path's; the exit
    code follows the findings' severities (judge.exit_code)."""
    zone = f"{scenario.name}.example."
    proc = run("check", "--json", zone, *args)
    out = json.loads(proc.stdout)
    found = ns_findings(out["findings"])
    assert found == EXPECTED[scenario.name], json.dumps(out["findings"], indent=1)
    assert out["verdict"] == scenario.expect.verdict
    assert proc.returncode == expected_exit(scenario.expect.exit_code or 0, found), proc.stdout
    servers = world.nameservers(zone)
    ns2 = servers[1]
    for f in out["findings"]:
        if f["code"].startswith("ns-"):
            assert f["address"] == ns2.address, f
            assert ns2.name.rstrip(".") in f["message"], f
    # the survey: every listed server of the zone, asked
    (surveyed,) = [z for z in out["nameservers"]["zones"] if z["zone"] == zone]
    assert {s["address"] for s in surveyed["servers"]} == {s.address for s in servers}
    states = {s["address"]: s["state"] for s in surveyed["servers"]}
    assert states[servers[0].address] == "ok"


def test_the_text_names_the_server_its_address_and_both_rrsets(world, args):
    zone = "stale-secondary-tlsa.example."
    proc = run("check", zone, *args)
    assert proc.returncode == 2, proc.stdout
    primary, stale, fresh = world.nameservers(zone)
    text = proc.stdout
    line = next(ln for ln in text.splitlines() if "serves _25._tcp.mx1" in ln)
    assert f"{stale.name.rstrip('.')} ({stale.address}) serves" in line
    assert "does not authenticate the server" in line and "defer" in line
    assert f"({primary.address})" in line and f"({fresh.address})" in line
    assert "Name servers (" in text
    assert f"{stale.address}" in text.split("Name servers (")[1]


def ns2_mx_finding(world: World, args: list[str], scenario: str) -> tuple[int, dict, dict]:
    zone = f"{scenario}.example."
    proc = run("check", "--json", zone, *args)
    out = json.loads(proc.stdout)
    (f,) = [f for f in out["findings"] if f["code"] == "ns-rrset-differs"]
    ns2 = world.nameservers(zone)[1]
    assert f["address"] == ns2.address and f["record"] == f"{zone} MX", f
    assert f"{ns2.name.rstrip('.')} ({ns2.address}) serves {zone} MX as " in f["message"]
    assert out["verdict"] == "valid"  # the RFC 7672 verdict stays the validated path's
    return proc.returncode, out, f


def test_a_stale_mx_rrset_whose_hosts_have_no_address_is_an_error(world, args):
    """stale-secondary-mx: ns2's MX RRset names old-mx, which has no address in any copy;
    real Postfix and Exim behind ns2 bounce (tests/interop/test_real_senders.py): the check
    looks old-mx up through the validated path and says so, CRITICAL."""
    code, _, f = ns2_mx_finding(world, args, "stale-secondary-mx")
    assert code == 2
    assert f["severity"] == E
    assert "10 old-mx.stale-secondary-mx.example." in f["message"]
    assert "old-mx.stale-secondary-mx.example failed (no-address)" in f["message"]
    assert f["message"].endswith(
        "senders whose resolver asks ns2.stale-secondary-mx.example bounce mail"
    )


def test_a_differing_mx_rrset_whose_host_fails_dane_is_an_error(world, args):
    """The host ns2 names is probed: its TLSA RRset fails its certificate, so senders that
    got ns2's RRset defer."""
    code, _, f = ns2_mx_finding(world, args, "secondary-mx-mismatch")
    assert code == 2
    assert f["severity"] == E
    assert "mx1.mx-moved-target.example failed (mismatch)" in f["message"]
    assert f["message"].endswith("asks ns2.secondary-mx-mismatch.example defer mail")


def test_a_differing_mx_rrset_whose_host_delivers_stays_a_warning(world, args):
    code, _, f = ns2_mx_finding(world, args, "secondary-mx-delivers")
    assert code == 1
    assert f["severity"] == W
    assert f["message"].endswith("deliver to other hosts")


def test_a_null_mx_at_a_secondary_is_an_error(world, args):
    code, _, f = ns2_mx_finding(world, args, "secondary-null-mx")
    assert code == 2
    assert f["severity"] == E
    assert "null MX" in f["message"] and f["message"].endswith("bounce mail")


def test_an_address_rrset_whose_endpoints_fail_dane_is_an_error(world, args):
    """ns2 gives mx1 the address of another server, whose certificate mx1's (validated)
    TLSA RRset does not match: the address is probed as mx1's own, and senders whose
    resolver asks ns2 defer there."""
    zone = "secondary-a-moved.example."
    moved = world.domains["mx-moved-target"].hosts[0].endpoints[0].address
    proc = run("check", "--json", zone, *args)
    out = json.loads(proc.stdout)
    (f,) = [f for f in out["findings"] if f["code"] == "ns-rrset-differs"]
    ns2 = world.nameservers(zone)[1]
    assert (f["address"], f["record"], f["severity"]) == (ns2.address, f"mx1.{zone} A", E), f
    assert f"serves mx1.{zone} A as {moved}" in f["message"]
    assert f"mx1.{zone.rstrip('.')} port 25 failed (mismatch at {moved})" in f["message"]
    assert f["message"].endswith(
        f"senders whose resolver asks {ns2.name.rstrip('.')} defer mail there"
    )
    assert (proc.returncode, out["verdict"]) == (2, "valid")


def test_an_address_rrset_is_judged_as_the_decision_table_judges_a_host(world, args):
    """An extra failing address beside a good one: a failed host (as the validated path's
    would be), an error; a subset of the host's good addresses: a warning."""
    extra = json.loads(run("check", "--json", "secondary-a-extra.example.", *args).stdout)
    (f,) = [f for f in extra["findings"] if f["code"] == "ns-rrset-differs"]
    assert f["severity"] == E and "failed (mismatch at " in f["message"], f
    proc = run("check", "--json", "secondary-a-subset.example.", *args)
    out = json.loads(proc.stdout)
    (f,) = [f for f in out["findings"] if f["code"] == "ns-rrset-differs"]
    assert f["severity"] == W and f["message"].endswith("connect to other addresses"), f
    assert (proc.returncode, out["verdict"]) == (1, "valid")


def test_an_ns_error_shows_right_under_the_headline(world, args):
    """A valid domain made CRITICAL by a secondary: the headline's next line says why, so
    the block does not read as all-clear."""
    zone = "stale-secondary-tlsa.example."
    proc = run("check", zone, *args)
    headline, under, *_ = proc.stdout.splitlines()
    assert headline.startswith(f"{zone}: VALID (CRITICAL)")
    stale = world.nameservers(zone)[1]
    assert under.startswith(f"  CRITICAL: ns-rrset-differs {stale.address} — "), under
    assert f"{stale.name.rstrip('.')} ({stale.address}) serves" in under
    assert under.endswith("defer mail")
    # warnings alone leave the headline block as it was
    proc = run("check", "stale-secondary-serial.example.", *args)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[1].startswith("MX (secure): ")


def test_no_nameservers_turns_it_off(world, args):
    proc = run("check", "--json", "stale-secondary-tlsa.example.", "--no-nameservers", *args)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert "nameservers" not in out
    assert not ns_findings(out["findings"])


def test_the_checker_reports_each_scenario(world, tmp_path):
    """The same through make_checker(nameservers=True), one checker for every scenario."""
    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = world.dns_address

    async def all_checks() -> dict[str, set[tuple[str, str]]]:
        checker = settings.make_checker(
            resolver=f"{host}:{port}", trust_anchor=anchor, connect_port=world.smtp_port,
            dns_timeout=1, nameservers=True, nameserver_port=port,
        )  # fmt: skip
        got = {}
        for sc in NAMESERVER_SCENARIOS:
            result = await checker.check_domain(f"{sc.name}.example")
            assert result.verdict.value == sc.expect.verdict
            got[sc.name] = {
                (f.code, f.severity.value)
                for f in result.all_findings()
                if f.code.startswith("ns-")
            }
        return got

    assert asyncio.run(all_checks()) == EXPECTED


def test_servers_nobody_can_reach_say_nothing(world, args):
    """Direct queries that no server answers (here: port 53, where nothing of the world
    listens) are no finding: the validated path already says what senders get."""
    argv = [a for a in args]
    i = argv.index("--nameserver-port")
    del argv[i : i + 2]
    proc = run("check", "--json", "stale-secondary-tlsa.example.", *argv)
    out = json.loads(proc.stdout)
    assert not ns_findings(out["findings"])
    assert proc.returncode == 0


# -- the comparison functions on hand-made surveys ------------------------------------------

NOW = 1_800_000_000.0
ZONE = "example.de."
TLSA = "_25._tcp.mx.example.de."


def view(
    address: str,
    *,
    serial: int = 100,
    tlsa: tuple[str, ...] = ("3 1 1 AA",),
    expiration: float = NOW + 14 * DAY,
    ok: bool | None = True,
    aa: bool = True,
    rcode: str = "NOERROR",
    error: str | None = None,
) -> ev.ServerView:
    if error is not None:
        return ev.ServerView(ZONE, f"ns-{address}.example.de.", address, 53, error, "x")
    soa = ev.ServerAnswer(ZONE, "SOA", rcode, aa, (f"ns1. host. {serial} 1 1 1 1",),
                          int(expiration), ok)  # fmt: skip
    t = ev.ServerAnswer(TLSA, "TLSA", rcode, aa, tlsa, int(expiration), ok, "" if ok else "bad")
    return ev.ServerView(ZONE, f"ns-{address}.example.de.", address, 53, answers=(soa, t))


def zone(*views: ev.ServerView, used: tuple[str, ...] | None = ("3 1 1 AA",)) -> ev.ZoneSurvey:
    u = ((TLSA, "TLSA", used),) if used is not None else ()
    return ev.ZoneSurvey(ZONE, ((ZONE, "SOA"), (TLSA, "TLSA")), views, used=u)


def domain(z: ev.ZoneSurvey) -> ev.Domain:
    return ev.Domain("example.de.", False, "local", NOW, NOW, nameservers=ev.NameServerSurvey((z,)))


def codes(z: ev.ZoneSurvey, th: Thresholds | None = None) -> list[tuple[str, str, str | None]]:
    return sorted(
        (f.code, f.severity.value, f.address) for f in NS.findings(domain(z), th or Thresholds())
    )


def test_agreeing_servers_give_nothing():
    assert codes(zone(view("192.0.2.1"), view("192.0.2.2"))) == []


def test_serial_lag_uses_serial_arithmetic():
    # 4294967295 → 5 wrapped: 5 is newer (RFC 1982), so the server at 4294967295 lags
    z = zone(view("192.0.2.1", serial=5), view("192.0.2.2", serial=4294967295))
    assert codes(z) == [("ns-serial-lag", W, "192.0.2.2")]


def test_an_rrset_is_held_to_the_one_the_check_used():
    # two against one, but the one agrees with the validated answer: the two differ
    z = zone(view("192.0.2.1"), view("192.0.2.2", tlsa=("3 1 1 BB",)),
             view("192.0.2.3", tlsa=("3 1 1 BB",)))  # fmt: skip
    assert codes(z) == [("ns-rrset-differs", W, "192.0.2.2"), ("ns-rrset-differs", W, "192.0.2.3")]


def test_without_the_check_s_rrset_the_majority_is_the_reference():
    z = zone(view("192.0.2.1"), view("192.0.2.2"), view("192.0.2.3", tlsa=()), used=None)
    assert codes(z) == [("ns-rrset-differs", W, "192.0.2.3")]


def test_early_expiring_signatures_follow_the_windows():
    th = Thresholds(3.0, 1.0, 14.0)
    soon = zone(view("192.0.2.1"), view("192.0.2.2", expiration=NOW + 2 * DAY))
    assert codes(soon, th) == [("ns-rrsig-expiring", W, "192.0.2.2")]
    sooner = zone(view("192.0.2.1"), view("192.0.2.2", expiration=NOW + 0.5 * DAY))
    assert codes(sooner, th) == [("ns-rrsig-expiring", E, "192.0.2.2")]
    # older but outside the window: a stale copy, not an expiry
    later = zone(view("192.0.2.1"), view("192.0.2.2", expiration=NOW + 5 * DAY))
    assert codes(later, th) == []
    # every server expires together: the validated path's rrsig-expiring says it
    together = zone(
        view("192.0.2.1", expiration=NOW + DAY), view("192.0.2.2", expiration=NOW + DAY)
    )
    assert codes(together, th) == []


def test_bad_signatures_count_only_beside_good_ones():
    assert codes(zone(view("192.0.2.1"), view("192.0.2.2", ok=False))) == [
        ("ns-rrsig-bogus", E, "192.0.2.2")
    ]
    # every server's fail: the validated path calls it bogus already
    assert codes(zone(view("192.0.2.1", ok=False), view("192.0.2.2", ok=False))) == []


def test_lame_and_silent_servers():
    z = zone(
        view("192.0.2.1"),
        view("192.0.2.2", rcode="REFUSED", tlsa=()),
        view("192.0.2.3", aa=False),
        view("192.0.2.4", error="timeout"),
    )
    assert codes(z) == [
        ("ns-lame", W, "192.0.2.2"),
        ("ns-lame", W, "192.0.2.3"),
        ("ns-unreachable", W, "192.0.2.4"),
    ]


def test_an_address_our_host_has_no_route_to_is_no_finding():
    z = zone(view("192.0.2.1"), view("2001:db8::1", error="no-route"))
    assert codes(z) == []


def test_nothing_is_said_when_no_server_answers_with_authority():
    z = zone(view("192.0.2.1", error="unreachable"), view("192.0.2.2", aa=False))
    assert codes(z) == []


def test_the_hosts_of_other_mx_rrsets_are_bounded():
    """Only the first MAX_OTHER_HOSTS hosts by preference are looked up; a host left out
    keeps the finding a warning (it might take the mail)."""
    mx = "example.de."
    many = tuple(f"{i} h{i:02}.example.net." for i in range(NS.MAX_OTHER_HOSTS + 2))
    soa = ev.ServerAnswer(ZONE, "SOA", "NOERROR", True, ("ns1. host. 1 1 1 1 1",))
    other = ev.ServerAnswer(mx, "MX", "NOERROR", True, tuple(sorted(many)))
    v = ev.ServerView(ZONE, "ns2.example.de.", "192.0.2.2", 53, answers=(soa, other))
    z = ev.ZoneSurvey(ZONE, ((ZONE, "SOA"), (mx, "MX")), (v,),
                      used=((mx, "MX", ("10 mx.example.de.",)),))  # fmt: skip
    d = ev.Domain(mx, False, "local", NOW, NOW, nameservers=ev.NameServerSurvey((z,)))
    wanted = NS.other_mx_hosts(d, d.nameservers)  # type: ignore[arg-type]  # set above
    assert wanted == [(f"h{i:02}.example.net.", i) for i in range(NS.MAX_OTHER_HOSTS)]
    (f,) = NS.findings(d, Thresholds())
    assert (f.code, f.severity) == ("ns-rrset-differs", Severity.WARNING)
    assert "h00.example.net not looked up" in f.message


def test_what_a_sender_makes_of_a_served_mx_answer():
    def mx(rcode: str, *records: str) -> tuple[str, tuple[tuple[str, int | None], ...]]:
        return NS.served_mx(ev.ServerAnswer("d.example.", "MX", rcode, True, records), "D.example.")

    assert mx("NXDOMAIN") == ("nxdomain", ())
    assert mx("NOERROR") == ("implicit", (("d.example.", None),))  # no MX: the domain itself
    assert mx("NOERROR", "0 .") == ("null", ())
    assert mx("NOERROR", "0 .", "10 MX.d.example.") == ("mx", (("mx.d.example.", 10),))
    assert mx("NOERROR", "20 b.example.", "10 a.example.") == (
        "mx",
        (("a.example.", 10), ("b.example.", 20)),
    )
    assert mx("NOERROR", "CNAME other.example.") == ("other", ())


def test_hosts_not_looked_up_in_time_leave_a_warning_saying_why():
    mx = "example.de."
    soa = ev.ServerAnswer(ZONE, "SOA", "NOERROR", True, ("ns1. host. 1 1 1 1 1",))
    old = ev.ServerAnswer(mx, "MX", "NOERROR", True, ("10 old.example.de.",))
    v = ev.ServerView(ZONE, "ns2.example.de.", "192.0.2.2", 53, answers=(soa, old))
    z = ev.ZoneSurvey(ZONE, ((ZONE, "SOA"), (mx, "MX")), (v,),
                      used=((mx, "MX", ("10 mx.example.de.",)),))  # fmt: skip
    note = "other hosts and addresses were not looked up within 8s"
    s = ev.NameServerSurvey((z,), hosts_note=note)
    (f,) = NS.findings(ev.Domain(mx, False, "local", NOW, NOW, nameservers=s), Thresholds())
    assert f.severity == Severity.WARNING
    assert f.message.endswith(f"(old.example.de not looked up: {note})")


def test_findings_use_catalogued_severities():
    z = zone(view("192.0.2.1"), view("192.0.2.2", tlsa=("3 1 1 BB",), serial=99, ok=False))
    for f in NS.findings(domain(z), Thresholds()):
        assert f.severity in (Severity.ERROR, Severity.WARNING)


def test_cname_owners_and_the_parent_s_ds_are_compared(tmp_path):
    """Beyond the final RRsets: the CNAME on the way to a hosted MX host (in the mail
    domain's zone, not the hosting zone) and each zone's DS RRset at the parent's servers."""
    w = World([by_name("cname-hosted"), by_name("good-ee")], ns_network="127.0.57.0/24")
    w.hierarchy["cname-hosted.example."].secondary("127.0.57.2").set(
        "mail", "CNAME", "elsewhere.cname-hosted.example."
    )
    w.hierarchy["example."].secondary("127.0.57.9", "ns9").set(
        "good-ee", "DS", "12345 13 2 " + "ab" * 32
    )
    w.signed = w.hierarchy.sign()
    with w.running():
        anchor = w.write_trust_anchor(tmp_path / "anchor.ds")
        host, port = w.dns_address
        common = [
            "--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
            "--connect-port", str(w.smtp_port), "--timeout", "5",
            "--nameserver-port", str(port), "--dns-timeout", "1",
        ]  # fmt: skip
        hosted = json.loads(run("check", "--json", "cname-hosted.example.", *common).stdout)
        good = json.loads(run("check", "--json", "good-ee.example.", *common).stdout)
    (cname,) = [f for f in hosted["findings"] if f["code"] == "ns-rrset-differs"]
    assert cname["address"] == "127.0.57.2" and cname["record"].endswith(" CNAME"), cname
    assert "elsewhere.cname-hosted.example." in cname["message"]
    ds = [f for f in good["findings"] if f["code"] == "ns-rrset-differs"]
    assert [(f["address"], f["record"]) for f in ds] == [("127.0.57.9", "good-ee.example. DS")]
    assert hosted["verdict"] == good["verdict"] == "valid"
