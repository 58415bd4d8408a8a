"""Several authoritative servers per zone (issue 16): each secondary of NAMESERVER_SCENARIOS
answers as configured, checked with dig and delv; the delegation lists them; the world's
resolvers ask only the primary, so today's checker sees each scenario as its primary serves
it (the Expect of NAMESERVER_SCENARIOS)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dns.name
import pytest
from worldtools import (
    answer,
    check_reaches_expectation,
    delv,
    delv_verdict,
    dig,
    flags,
    status,
    tool,
)

from dane_monitor.background import BackgroundLoop
from dane_monitor.world import (
    CATALOGUE,
    NAMESERVER_SCENARIOS,
    NameServer,
    NSBehaviour,
    Scenario,
    World,
    by_name,
)
from dane_monitor.world.dnsserver import DNSServer, Responder
from dane_monitor.world.zones import Fault, Hierarchy, SignedHierarchy

DAY = 86400


@pytest.fixture(scope="module")
def world():
    w = World(NAMESERVER_SCENARIOS)
    with w.running():
        yield w


@pytest.fixture(scope="module")
def anchor(world, tmp_path_factory) -> Path:
    return world.write_trust_anchor(tmp_path_factory.mktemp("nsw16") / "anchor.ds")


def servers(world: World, scenario: str):
    return world.nameservers(f"{scenario}.example.")


def zone_anchor(world: World, scenario: str, path: Path) -> Path:
    """A BIND trust-anchors file for the scenario's own zone (its DS), so that delv can
    validate what one server of that zone alone says."""
    zone = world.hierarchy[f"{scenario}.example."]
    lines = [
        f'"{zone.origin}" static-ds {ds.key_tag} {ds.algorithm} {ds.digest_type} '
        f'"{ds.digest.hex().upper()}";'
        for ds in zone.ds()
    ]
    path.write_text("trust-anchors {\n" + "\n".join(lines) + "\n};\n")
    return path


def rrsig_times(out: str, covered: str) -> tuple[int, int]:
    """(inception, expiration) as POSIX times of the RRSIG over ``covered`` in dig's answer."""
    for rd in answer(out, "RRSIG"):
        fields = rd.split()
        if fields[0] == covered:
            parse = lambda s: int(  # noqa: E731
                dt.datetime.strptime(s, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC).timestamp()
            )
            return parse(fields[5]), parse(fields[4])
    raise AssertionError(f"no RRSIG({covered}) in {out}")


def serial(out: str) -> int:
    (soa,) = answer(out, "SOA")
    return int(soa.split()[2])


# -- the published delegation ---------------------------------------------------------------


def test_the_zone_lists_every_server_with_its_address(world):
    port = world.dns_port
    for sc in NAMESERVER_SCENARIOS:
        listed = servers(world, sc.name)
        assert [s.name for s in listed] == [
            f"ns{i}.{sc.name}.example." for i in range(1, len(sc.nameservers) + 2)
        ]
        assert listed[0].primary and listed[0].address == "127.0.0.1"
        assert len({s.address for s in listed}) == len(listed)  # each on its own address
        out = dig("127.0.0.1", port, f"{sc.name}.example.", "NS", "+norec")
        assert sorted(answer(out, "NS")) == sorted(s.name for s in listed)
        for s in listed:
            assert answer(dig("127.0.0.1", port, s.name, "A", "+norec"), "A") == [s.address]


def test_the_parent_delegates_to_every_server_with_glue(world):
    """A server holding only the parent zone (example.) answers with a referral whose NS
    RRset names every server of the child and whose additional section has their glue: what
    a checker walking down from the root finds."""
    parent = world.signed.zone("example.")
    responder = Responder(SignedHierarchy.only(world.signed, parent))
    name = "stale-secondary-tlsa"
    with BackgroundLoop() as loop:
        server = DNSServer(host="127.0.0.1", responder=responder)
        loop.run(server.start(), 10)
        try:
            out = dig("127.0.0.1", server.port, f"mx1.{name}.example.", "A", "+norec")
        finally:
            loop.run(server.stop(), 10)
    assert status(out) == "NOERROR" and "aa" not in flags(out)
    authority = out.split(";; AUTHORITY SECTION:")[1].split("\n\n")[0]
    listed = servers(world, name)
    for s in listed:
        assert f"NS\t{s.name}" in authority.replace(" ", "\t") or s.name in authority
        assert f"{s.name}" in out.split(";; ADDITIONAL SECTION:")[1]
        assert s.address in out.split(";; ADDITIONAL SECTION:")[1]
    assert "DS" in authority  # a signed delegation


def test_every_server_listens_on_the_world_dns_port(world):
    for s in servers(world, "secondaries-agree"):
        assert s.port == world.dns_port
        out = dig(s.address, s.port, "secondaries-agree.example.", "SOA", "+norec")
        assert status(out) == "NOERROR"


# -- what each secondary serves -------------------------------------------------------------


def test_secondaries_serve_the_primary_copy_by_default(world):
    port = world.dns_port
    name = "secondaries-agree.example."
    views = [
        [dig(s.address, port, f"_25._tcp.mx1.{name}", "TLSA", "+dnssec", "+norec"),
         dig(s.address, port, name, "SOA", "+norec"),
         dig(s.address, port, name, "MX", "+norec")]
        for s in servers(world, "secondaries-agree")
    ]  # fmt: skip
    primary = views[0]
    for tlsa, soa, mx in views:
        assert "aa" in flags(tlsa)
        assert answer(tlsa, "TLSA") == answer(primary[0], "TLSA") != []
        assert answer(tlsa, "RRSIG") == answer(primary[0], "RRSIG")  # the very same signatures
        assert serial(soa) == serial(primary[1])
        assert answer(mx, "MX") == answer(primary[2], "MX")
    # a secondary serves its zone only, and offers no recursion
    secondary = servers(world, "secondaries-agree")[1]
    assert "ra" not in flags(dig(secondary.address, port, name, "SOA"))
    assert status(dig(secondary.address, port, "good-ee.example.", "SOA", "+norec")) == "REFUSED"


def test_a_stale_secondary_serves_an_older_serial_tlsa_and_signatures(world, tmp_path):
    port = world.dns_port
    name = "stale-secondary-tlsa"
    primary, stale, fresh = servers(world, name)
    assert (primary.serial - stale.serial, fresh.serial) == (3 * DAY, primary.serial)
    soa = {
        s.address: dig(s.address, port, f"{name}.example.", "SOA", "+norec")
        for s in (primary, stale, fresh)
    }
    assert serial(soa[stale.address]) == serial(soa[primary.address]) - 3 * DAY
    assert serial(soa[fresh.address]) == serial(soa[primary.address])
    qname = f"_25._tcp.mx1.{name}.example."
    tlsa = {
        s.address: dig(s.address, port, qname, "TLSA", "+dnssec", "+norec")
        for s in (primary, stale, fresh)
    }
    host = world.domains[name].hosts[0]
    assert [r.lower().replace(" ", "") for r in answer(tlsa[primary.address], "TLSA")] == [
        r.replace(" ", "") for r in host.tlsa_rdatas
    ]
    assert answer(tlsa[stale.address], "TLSA") != answer(tlsa[primary.address], "TLSA")
    assert answer(tlsa[fresh.address], "TLSA") == answer(tlsa[primary.address], "TLSA")
    # the stale copy's signatures are three days older, and still valid now
    p_inc, p_exp = rrsig_times(tlsa[primary.address], "TLSA")
    s_inc, s_exp = rrsig_times(tlsa[stale.address], "TLSA")
    assert (p_inc - s_inc, p_exp - s_exp) == (3 * DAY, 3 * DAY)
    # delv, validating from the zone's own DS, finds each copy secure: the old RRset with its
    # then-valid signatures is what a resolver asking ns2 would accept
    zone_ta = zone_anchor(world, name, tmp_path / "zone.bind")
    for s in (primary, stale):
        out = delv(s.address, port, zone_ta, f"{name}.example.", qname, "TLSA")
        assert delv_verdict(out) == "secure", out
    stale_out = delv(stale.address, port, zone_ta, f"{name}.example.", qname, "TLSA")
    assert answer(tlsa[stale.address], "TLSA")[0].split()[3] in stale_out.replace(" ", "")


def test_a_stale_secondary_serves_the_old_mx(world):
    port = world.dns_port
    primary, stale = servers(world, "stale-secondary-mx")
    name = "stale-secondary-mx.example."
    assert answer(dig(primary.address, port, name, "MX", "+norec"), "MX") == [f"10 mx1.{name}"]
    assert answer(dig(stale.address, port, name, "MX", "+norec"), "MX") == [f"10 old-mx.{name}"]
    assert status(dig(stale.address, port, f"old-mx.{name}", "A", "+norec")) == "NXDOMAIN"


def test_a_secondary_whose_signatures_expire_soon(world, tmp_path):
    port = world.dns_port
    name = "secondary-sigs-expire-soon"
    primary, early = servers(world, name)
    assert primary.serial == early.serial
    qname = f"_25._tcp.mx1.{name}.example."
    now = world.signed.now
    for s, lifetime in ((primary, 14 * DAY), (early, DAY)):
        out = dig(s.address, port, qname, "TLSA", "+dnssec", "+norec")
        for rd in answer(out, "RRSIG"):
            assert rrsig_times(out, rd.split()[0])[1] == int(now) + lifetime
        dnskey = dig(s.address, port, f"{name}.example.", "DNSKEY", "+dnssec", "+norec")
        assert rrsig_times(dnskey, "DNSKEY")[1] == int(now) + lifetime
        zone_ta = zone_anchor(world, name, tmp_path / "zone.bind")
        assert (
            delv_verdict(delv(s.address, port, zone_ta, f"{name}.example.", qname, "TLSA"))
            == "secure"
        )


def test_a_secondary_with_a_bogus_tlsa_signature(world, tmp_path):
    port = world.dns_port
    name = "secondary-bogus-tlsa"
    primary, bad = servers(world, name)
    qname = f"_25._tcp.mx1.{name}.example."
    zone_ta = zone_anchor(world, name, tmp_path / "zone.bind")
    assert (
        delv_verdict(delv(primary.address, port, zone_ta, f"{name}.example.", qname, "TLSA"))
        == "secure"
    )
    out = delv(bad.address, port, zone_ta, f"{name}.example.", qname, "TLSA")
    assert delv_verdict(out) == "bogus", out
    # the same records, only the signature differs
    a = dig(primary.address, port, qname, "TLSA", "+dnssec", "+norec")
    b = dig(bad.address, port, qname, "TLSA", "+dnssec", "+norec")
    assert answer(a, "TLSA") == answer(b, "TLSA")
    assert answer(a, "RRSIG") != answer(b, "RRSIG")


def test_a_lame_secondary_refuses(world):
    _, lame = servers(world, "lame-secondary")
    assert lame.behaviour == NSBehaviour.REFUSED
    for rdtype, qname in (("SOA", ""), ("TLSA", "_25._tcp.mx1."), ("A", "mx1.")):
        out = dig(lame.address, world.dns_port, f"{qname}lame-secondary.example.", rdtype, "+norec")
        assert status(out) == "REFUSED" and answer(out, rdtype) == []


def test_a_secondary_that_answers_without_authority(world):
    primary, lame = servers(world, "secondary-not-authoritative")
    qname = "_25._tcp.mx1.secondary-not-authoritative.example."
    good = dig(primary.address, world.dns_port, qname, "TLSA", "+norec")
    out = dig(lame.address, world.dns_port, qname, "TLSA", "+norec")
    assert "aa" in flags(good) and "aa" not in flags(out)
    assert status(out) == "NOERROR" and answer(out, "TLSA") == answer(good, "TLSA") != []


def test_a_silent_secondary_times_out(world):
    _, silent = servers(world, "silent-secondary")
    assert silent.address in world.ns_servers  # up and listening...
    out = dig(silent.address, world.dns_port, "silent-secondary.example.", "SOA", "+time=1")
    assert status(out) is None and "timed out" in out  # ...and never answers


def test_a_secondary_that_is_down(world):
    _, down = servers(world, "secondary-down")
    assert down.address not in world.ns_servers
    for transport in ("+notcp", "+tcp"):
        out = dig(down.address, world.dns_port, "secondary-down.example.", "SOA", transport)
        assert status(out) is None
        assert "refused" in out or "timed out" in out, out


# -- the world's resolvers ask only the primary ---------------------------------------------


def test_unbound_and_delv_ask_only_the_primary(world, tmp_path):
    """Deterministic resolution: Unbound (stub zones) and delv reach only the primary, so
    they see the primary's TLSA RRset of stale-secondary-tlsa, however often they ask, and
    no secondary receives a single query from them."""
    tool("unbound")
    before = {a: s.query_count for a, s in world.ns_servers.items()}
    name = "stale-secondary-tlsa"
    host = world.domains[name].hosts[0]
    want = sorted(r.replace(" ", "").lower() for r in host.tlsa_rdatas)
    with world.unbound() as unbound:
        for _ in range(5):
            out = dig(*unbound.address, host.tlsa_name, "TLSA", "+dnssec")
            assert "ad" in flags(out)
            assert sorted(r.replace(" ", "").lower() for r in answer(out, "TLSA")) == want
    ta = world.write_bind_trust_anchor(tmp_path / "ta.bind")
    out = delv("127.0.0.1", world.dns_port, ta, ".", host.tlsa_name, "TLSA")
    assert delv_verdict(out) == "secure"
    assert {a: s.query_count for a, s in world.ns_servers.items()} == before


@pytest.mark.parametrize(
    "scenario", NAMESERVER_SCENARIOS, ids=[s.name for s in NAMESERVER_SCENARIOS]
)
def test_todays_checker_sees_the_primary(world, anchor, capsys, scenario):
    before = {a: s.query_count for a, s in world.ns_servers.items()}
    check_reaches_expectation(world, scenario, anchor, capsys)
    assert {a: s.query_count for a, s in world.ns_servers.items()} == before


# -- the API --------------------------------------------------------------------------------


def test_the_new_scenarios_stay_out_of_the_catalogue_and_are_found_by_name():
    names = {sc.name for sc in CATALOGUE}
    for sc in NAMESERVER_SCENARIOS:
        assert sc.name not in names and sc.nameservers
        assert by_name(sc.name) is sc


def test_zone_level_secondaries_without_the_scenario_layer():
    h = Hierarchy(".")
    h.zone("example.")
    z = h.zone("d.example.")
    z.add("@", "MX", "10 mx1")
    z.add("mx1", "A", "127.0.2.1")
    stale = z.secondary("127.0.53.201", age=DAY).set("@", "MX", "10 old")
    z.secondary("127.0.53.202", behaviour="refused")
    with pytest.raises(ValueError, match="already serves"):
        z.secondary("127.0.53.201")
    with pytest.raises(ValueError, match="newer"):
        z.secondary("127.0.53.203", age=-1)
    signed = h.sign()
    assert [n.to_text() for n, _ in signed.nameservers("d.example.")] == [
        "ns1.d.example.", "ns2.d.example.", "ns3.d.example."
    ]  # fmt: skip
    (s2, s3) = signed.secondaries[dns.name.from_text("d.example.")]
    assert (
        s2.name == stale.name
        and s2.serial == signed["d.example."].rrset("@", "SOA")[0].serial - DAY
    )
    assert [rd.to_text() for rd in s2.zone.rrset("@", "MX")] == ["10 old.d.example."]
    assert s3.behaviour == NSBehaviour.REFUSED
    # the primary's copy is untouched
    assert [rd.to_text() for rd in signed["d.example."].rrset("@", "MX")] == ["10 mx1.d.example."]


def test_a_custom_scenario_with_nameservers_serves(tmp_path):
    sc = Scenario(
        "custom-ns",
        "two secondaries",
        nameservers=(NameServer(age=DAY), NameServer(behaviour="silent")),
    )
    w = World([sc], ns_network="127.0.54.0/24")
    with w.running():
        listed = w.nameservers("custom-ns.example.")
        assert [s.address for s in listed] == ["127.0.0.1", "127.0.54.1", "127.0.54.2"]
        out = dig("127.0.54.1", w.dns_port, "custom-ns.example.", "SOA", "+norec")
        assert serial(out) == listed[0].serial - DAY


# -- a resolver that happens to reach one secondary -----------------------------------------


def check_via(world: World, unbound, name: str, anchor: Path, capsys) -> tuple[int, dict]:
    import json

    from dane_monitor.cli import main

    uhost, uport = unbound.address
    code = main(["check", "--json", f"{name}.example.", "--resolver", f"{uhost}:{uport}",
                 "--trust-anchor", str(anchor), "--connect-port", str(world.smtp_port),
                 "--timeout", "5"])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def test_a_resolver_that_reaches_the_stale_secondary_fails_the_check(world, anchor, capsys):
    """What a sender behind a resolver that asked ns2 sees: the stale TLSA RRset, validly
    signed (AD), matching no served key: today's checker, pointed at such a resolver, says
    failed (senders defer), while through the primary it says valid."""
    tool("unbound")
    name = "stale-secondary-tlsa"
    _, stale, _ = servers(world, name)
    host = world.domains[name].hosts[0]
    with world.unbound(nameservers={f"{name}.example.": stale.address}) as unbound:
        out = dig(*unbound.address, host.tlsa_name, "TLSA", "+dnssec")
        assert "ad" in flags(out)
        want = sorted(r.replace(" ", "").lower() for r in host.tlsa_rdatas)
        assert sorted(r.replace(" ", "").lower() for r in answer(out, "TLSA")) != want
        code, result = check_via(world, unbound, name, anchor, capsys)
    assert (code, result["verdict"]) == (2, "failed"), result
    assert "tlsa-mismatch" in {f["code"] for f in result["findings"]}
    assert [h["sender_action"] for h in result["hosts"]] == ["defer"]


def test_a_resolver_that_reaches_the_bogus_secondary_finds_it_bogus(world, anchor, capsys):
    tool("unbound")
    name = "secondary-bogus-tlsa"
    _, bad = servers(world, name)
    with world.unbound(nameservers={f"{name}.example.": bad.address}) as unbound:
        out = dig(*unbound.address, f"_25._tcp.mx1.{name}.example.", "TLSA", "+dnssec")
        assert status(out) == "SERVFAIL"
        code, result = check_via(world, unbound, name, anchor, capsys)
    assert (code, result["verdict"]) == (2, "bogus"), result


def test_unbound_refuses_a_zone_the_world_does_not_have(world):
    with pytest.raises(ValueError, match="not zones of this world"):
        world.unbound(nameservers={"nowhere.invalid.": "127.0.53.1"})


def test_tlsa_on_smtp_port_moves_the_stale_tlsa_too():
    sc = by_name("stale-secondary-tlsa")
    w = World([sc], ns_network="127.0.55.0/24", tlsa_on_smtp_port=True)
    with w.running():
        _, stale, fresh = w.nameservers("stale-secondary-tlsa.example.")
        at_port = f"_{w.smtp_port}._tcp.mx1.stale-secondary-tlsa.example."
        at_25 = "_25._tcp.mx1.stale-secondary-tlsa.example."
        for s in (stale, fresh):
            a = answer(dig(s.address, w.dns_port, at_25, "TLSA", "+norec"), "TLSA")
            b = answer(dig(s.address, w.dns_port, at_port, "TLSA", "+norec"), "TLSA")
            assert a == b != []
        assert answer(dig(stale.address, w.dns_port, at_port, "TLSA"), "TLSA") != answer(
            dig(fresh.address, w.dns_port, at_port, "TLSA"), "TLSA"
        )


def test_dane_monitor_world_lists_the_name_servers():
    import re
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "dane_monitor", "world", "--scenario", "stale-secondary-tlsa",
           "--scenario", "lame-secondary", "--duration", "0.3"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = re.findall(r"^(\S+)\s+(ns\d\.\S+)\s+(127\.\S+)\s+(\d+)\s+(\S+)$", p.stdout, re.M)
    assert [(r[1].split(".")[0], r[4]) for r in rows] == [
        ("ns1", "primary"), ("ns2", "serve"), ("ns3", "serve"),
        ("ns1", "primary"), ("ns2", "refused"),
    ]  # fmt: skip
    assert int(rows[0][3]) - int(rows[1][3]) == 3 * DAY  # ns2's stale serial


def test_a_secondary_added_to_any_zone_of_a_world_before_start():
    """The zone-level API on a built world: a lame secondary for the TLD itself."""
    w = World([by_name("good-ee")], ns_network="127.0.56.0/24")
    w.hierarchy["example."].secondary("127.0.56.77", "ns9", behaviour="not-authoritative")
    w.signed = w.hierarchy.sign()
    with w.running():
        listed = w.nameservers("example.")
        assert [(s.name, s.address) for s in listed] == [
            ("ns1.example.", "127.0.0.1"), ("ns9.example.", "127.0.56.77")
        ]  # fmt: skip
        out = dig("127.0.56.77", w.dns_port, "good-ee.example.", "NS", "+norec")
        assert status(out) == "NOERROR" and "aa" not in flags(out)  # a referral from ns9
        root = dig("127.0.0.1", w.dns_port, "example.", "NS", "+norec")
        assert sorted(answer(root, "NS")) == ["ns1.example.", "ns9.example."]


#: One fault of each kind a TLSA RRset can carry, placed on _25._tcp.mx1 of its own scenario.
_TLSA_FAULTS = (
    Fault.BAD_SIGNATURE,
    Fault.EXPIRED_RRSIG,
    Fault.NOT_YET_VALID_RRSIG,
    Fault.MISSING_RRSIG,
    Fault.SERVFAIL,
)


def test_tlsa_on_smtp_port_carries_the_tlsa_faults_over(tmp_path, capsys):
    """Tools that take the TLSA name from the port (posttls-finger, real senders) meet at
    _<port>._tcp what a sender on port 25 meets: the same bogus answer and reason, from the
    primary, and from a secondary whose copy alone is broken."""
    from dane_monitor.cli import main

    scenarios = [
        Scenario(f"tlsa-fault-{f}", f.value, faults=((f, "_25._tcp.mx1", "TLSA"),))
        for f in _TLSA_FAULTS
    ]
    scenarios.append(by_name("secondary-bogus-tlsa"))
    w = World(scenarios, ns_network="127.0.57.0/24", tlsa_on_smtp_port=True)
    anchor = tmp_path / "anchor.ds"
    with w.running():
        w.write_trust_anchor(anchor)
        assert w.smtp_port is not None and w.smtp_port != 25

        def lookup(resolver: tuple[str, int], name: str) -> tuple[int, str | None]:
            capsys.readouterr()
            code = main(["lookup", "--json", "--resolver", "{}:{}".format(*resolver),
                         "--trust-anchor", str(anchor), name, "TLSA"])  # fmt: skip
            return code, json.loads(capsys.readouterr().out).get("reason")

        def both(resolver: tuple[str, int], scenario: str) -> list[tuple[int, str | None]]:
            return [lookup(resolver, f"_{port}._tcp.mx1.{scenario}.example.")
                    for port in (25, w.smtp_port)]  # fmt: skip

        got = {sc.name: both(w.dns_address, sc.name) for sc in scenarios[:-1]}
        # the bogus copy is ns2's alone: ask through a resolver that reaches ns2
        name = "secondary-bogus-tlsa"
        _, bad = w.nameservers(f"{name}.example.")
        with w.unbound(nameservers={f"{name}.example.": bad.address}) as unbound:
            got[name] = both(unbound.address, name)
        got["(through the primary)"] = both(w.dns_address, name)
    bogus = lambda reason: [(2, reason)] * 2  # noqa: E731
    assert got == {
        "tlsa-fault-bad-signature": bogus("bad-signature"),
        "tlsa-fault-expired-rrsig": bogus("signature-expired"),
        "tlsa-fault-not-yet-valid-rrsig": bogus("signature-not-yet-valid"),
        "tlsa-fault-missing-rrsig": bogus("missing-rrsig"),
        "tlsa-fault-servfail": [(3, "servfail")] * 2,  # our side cannot tell: UNKNOWN
        name: bogus("bad-signature"),
        "(through the primary)": [(0, None)] * 2,
    }
