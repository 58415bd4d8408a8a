"""Zones signed and served by other software: ldns-signzone or BIND's dnssec-signzone signs,
NSD serves.

The world's ``example.`` zone delegates six more domains (NS, glue and the DS that
``ldns-key2ds`` or ``dnssec-dsfromkey`` computes from the KSK) to an NSD listening on port
53 of its own loopback address. Their zone files are written here and signed by
``ldns-signzone`` (NSEC, or NSEC3 with ``-n``) with keys from ``ldns-keygen``, or by
``dnssec-signzone`` (NSEC, or NSEC3 with ``-3 -``) with keys from ``dnssec-keygen``; their
MX hosts are Postfix instances with chains from the world's PKI. Unbound resolves them by
following the referral from the world's server to NSD, as a resolver does on the internet.

The checker, in local mode (validating every signature itself, asking Unbound with the CD
bit) and in resolver mode (Unbound's AD bit), and posttls-finger must reach the expected
outcome for each:

=================  =================================================  ===================
domain             content                                            verdict
=================  =================================================  ===================
ldns-nsec          NSEC, DANE-EE 3 1 1 for the served key             valid
ldns-nsec3         NSEC3; mx1 as above, mx2 without TLSA (NSEC3       no-dane
                   proves it)
ldns-mismatch      NSEC, the 3 1 1 record is for another key          failed
ldns-expired       signatures expired a year ago (-i/-e in the past)  bogus (both modes:
                                                                      SERVFAIL, then CD)
bind-nsec          dnssec-signzone, NSEC, DANE-EE                     valid
bind-nsec3         dnssec-signzone, NSEC3; mx2 without TLSA           no-dane
=================  =================================================  ===================
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest
from conftest import REQUIRE, run_check, start_unbound
from mta import Postfix, which

from dane_monitor.world import World, by_name, self_signed
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.unbound import Unbound, identity_of, port53_free

TOOLS = (
    "nsd", "ldns-signzone", "ldns-keygen", "ldns-key2ds",
    "dnssec-signzone", "dnssec-keygen", "dnssec-dsfromkey",
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    nsec3: bool = False
    mismatch: bool = False
    expired: bool = False
    second_mx_without_tlsa: bool = False
    signer: str = "ldns"  # or "bind"
    verdict: str = "valid"
    resolver_verdict: str | None = None  # when resolver mode differs


CASES = (
    Case("ldns-nsec"),
    Case("ldns-nsec3", nsec3=True, second_mx_without_tlsa=True, verdict="no-dane"),
    Case("ldns-mismatch", mismatch=True, verdict="failed"),
    # a validating resolver answers SERVFAIL for the MX RRset; asked again with CD and
    # validated in-process, the answer is bogus in resolver mode too (issue 12)
    Case("ldns-expired", expired=True, verdict="bogus"),
    Case("bind-nsec", signer="bind"),
    Case("bind-nsec3", signer="bind", nsec3=True, second_mx_without_tlsa=True, verdict="no-dane"),
)

NSD_CONF = """\
server:
    ip-address: {address}
    port: 53
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    database: ""
    zonelistfile: "{dir}/zone.list"
    pidfile: "{dir}/nsd.pid"
    xfrdfile: "{dir}/xfrd.state"
    logfile: "{dir}/nsd.log"
    server-count: 1
    verbosity: 1
    hide-version: yes
    identity: "{identity}"
    hide-identity: no
remote-control:
    control-enable: no
"""
NSD_ZONE = """\
zone:
    name: "{name}"
    zonefile: "{file}"
"""


def run(cmd: list[str], cwd: Path) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    return p.stdout.strip()


def sign_zone(d: Path, origin: str, text: str, case: Case) -> tuple[Path, str]:
    """Make a KSK and a ZSK and sign the zone with ``case.signer``; returns (signed file,
    DS text)."""
    zone = d / f"{origin}zone"
    zone.write_text(text)
    if case.signer == "bind":
        return _bind_sign(d, origin, zone, case)
    ksk = run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", origin], d)
    zsk = run(["ldns-keygen", "-a", "ECDSAP256SHA256", origin], d)
    cmd = ["ldns-signzone"]
    if case.nsec3:
        cmd += ["-n", "-t", "0"]  # NSEC3, no extra iterations, no salt (RFC 9276)
    if case.expired:
        now = dt.datetime.now(dt.UTC)
        cmd += [
            "-i", (now - dt.timedelta(days=400)).strftime("%Y%m%d"),
            "-e", (now - dt.timedelta(days=365)).strftime("%Y%m%d"),
        ]  # fmt: skip
    run([*cmd, "-f", f"{zone}.signed", str(zone), zsk, ksk], d)
    ds = run(["ldns-key2ds", "-n", "-2", f"{ksk}.key"], d)
    return Path(f"{zone}.signed"), ds


def _bind_sign(d: Path, origin: str, zone: Path, case: Case) -> tuple[Path, str]:
    keys = d / f"keys-{origin}"
    keys.mkdir()
    alg = ["-a", "ECDSAP256SHA256", "-K", str(keys)]
    ksk = run(["dnssec-keygen", *alg, "-f", "KSK", origin], d)
    run(["dnssec-keygen", *alg, origin], d)
    cmd = ["dnssec-signzone", "-S", "-K", str(keys), "-o", origin, "-d", str(keys)]
    if case.nsec3:
        cmd += ["-3", "-", "-H", "0"]  # NSEC3, no salt, no extra iterations (RFC 9276)
    run([*cmd, "-f", f"{zone}.signed", str(zone)], d)
    ds = run(["dnssec-dsfromkey", "-2", str(keys / f"{ksk}.key")], d)
    return Path(f"{zone}.signed"), ds


@dataclass
class NSDStack:
    world: World
    world_anchor: Path
    unbound: Unbound
    nsd_address: str
    port: int
    cases: dict[str, tuple[Case, list[str], list[str]]]  # name → case, MX hosts, addresses

    def args(self, mode: str) -> list[str]:
        resolver = ["--resolver", f"{self.unbound.host}:{self.unbound.port}"]
        common = ["--connect-port", str(self.port), "--timeout", "5"]
        if mode == "local":
            return [*resolver, "--trust-anchor", str(self.world_anchor), *common]
        # the anchor too: a SERVFAIL is re-asked with CD and validated in-process from it
        anchor = ["--trust-anchor", str(self.world_anchor)]
        return [*resolver, "--validation", "resolver", *anchor, *common]


def _free_nsd_address() -> str:
    # xdist workers look in disjoint ranges: two checking the same address at once would
    # both find it free, and two NSDs answering one address (SO_REUSEPORT) with different
    # keys make every validation a coin toss ("no DNSKEY matches its DS")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = 1 + 32 * (int(worker) % 7) if worker.isdigit() else 1
    for x in (*range(start, 255), *range(1, start)):
        if port53_free(address := f"127.0.154.{x}"):
            return address
    raise RuntimeError("no 127.0.154.x with a free port 53")


def _nsd_ready(
    proc: subprocess.Popen[bytes], address: str, identity: str, origin: str, timeout: float = 15.0
) -> bool:
    """Our NSD answers on ``address`` with ``origin`` loaded: its own identity, as the
    world's Unbound proves its own, since another run's NSD that took the address first
    must not pass for ours."""
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(origin, "SOA")
    while time.monotonic() < deadline and proc.poll() is None:
        if identity_of(address, 53, timeout=0.5) == identity:
            with contextlib.suppress(Exception):
                if dns.query.udp(query, address, timeout=0.5).answer:
                    return proc.poll() is None
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def nsd(interop_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NSDStack]:
    missing = [t for t in TOOLS if which(t) is None]
    if missing:
        reason = f"missing for the NSD/ldns interop tests: {', '.join(missing)}"
        if REQUIRE:
            pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    world = World([by_name("good-ee")], tlsa_on_smtp_port=True, smtp_network="127.0.3.0/24")
    tld = world.hierarchy["example."]
    nsd_address = _free_nsd_address()
    with BackgroundLoop(name="interop-nsd") as loop, contextlib.ExitStack() as stack:
        loop.run(world.start())
        stack.callback(lambda: loop.run(world.stop()))
        port = world.smtp_port
        assert port is not None
        d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dane-nsd-")))
        os.chmod(d, 0o755)
        identity = f"dane-nsd-{secrets.token_hex(8)}"
        conf = NSD_CONF.format(address=nsd_address, dir=d, identity=identity)
        cases: dict[str, tuple[Case, list[str], list[str]]] = {}
        servers: list[Postfix] = []
        for i, case in enumerate(CASES):
            origin = f"{case.name}.example."
            mx1 = f"mx1.{origin}"
            address = f"127.0.4.{10 + i}"  # one Postfix per domain
            chain = world.pki("ecdsa").issue([mx1.rstrip(".")])
            served = chain if not case.mismatch else self_signed(["unrelated.invalid"])
            rdata = served.tlsa(3, 1, 1)
            lines = [
                f"$ORIGIN {origin}",
                "$TTL 300",
                "@ IN SOA ns1 hostmaster 1 3600 900 86400 300",
                "@ IN NS ns1",
                f"ns1 IN A {nsd_address}",
                "@ IN MX 10 mx1",
                f"mx1 IN A {address}",
                f"_25._tcp.mx1 IN TLSA {rdata}",
                f"_{port}._tcp.mx1 IN TLSA {rdata}",
            ]
            hosts = [mx1]
            if case.second_mx_without_tlsa:
                lines += ["@ IN MX 20 mx2", f"mx2 IN A {address}"]
                hosts.append(f"mx2.{origin}")
            signed, ds = sign_zone(d, origin, "\n".join(lines) + "\n", case)
            conf += NSD_ZONE.format(name=origin, file=signed)
            # the delegation from the world's example. zone, signed by the world's signer
            tld.add(case.name, "NS", f"ns1.{origin}")
            tld.add(f"ns1.{case.name}", "A", nsd_address)
            tokens = ds.split()
            tld.add(case.name, "DS", " ".join(tokens[tokens.index("DS") + 1 :]))
            servers.append(Postfix(address, port, (chain,), mx1))
            cases[case.name] = (case, hosts, [address])
        world.signed = world.hierarchy.sign()
        assert world.dns is not None
        world.dns.signed = world.signed
        (d / "nsd.conf").write_text(conf)
        proc = subprocess.Popen(
            [which("nsd") or "nsd", "-d", "-c", str(d / "nsd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(lambda: (proc.terminate(), proc.wait(10)))
        log = d / "nsd.log"
        assert _nsd_ready(proc, nsd_address, identity, CASES[0].name + ".example."), (
            log.read_text() if log.exists() else "no nsd.log"
        )
        for pf in servers:
            pf.launch()
            stack.callback(pf.stop)
        for pf in servers:
            pf.wait_ready()
        unbound = start_unbound(world)
        stack.callback(unbound.stop)
        anchor = world.write_trust_anchor(tmp_path_factory.mktemp("nsd") / "anchor.ds")
        yield NSDStack(world, anchor, unbound, nsd_address, port, cases)


@pytest.mark.parametrize("mode", ["local", "resolver"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_checker_on_ldns_signed_nsd_served_zones(nsd: NSDStack, capsys, mode: str, case: Case):
    _, hosts, addresses = nsd.cases[case.name]
    code, out = run_check(capsys, f"{case.name}.example", *nsd.args(mode))
    expected = case.verdict
    if mode == "resolver" and case.resolver_verdict:
        expected = case.resolver_verdict
    assert out["verdict"] == expected, out
    assert code == {"valid": 0, "no-dane": 1, "failed": 2, "bogus": 2, "error": 3}[expected]
    codes = {f["code"] for f in out["findings"]}
    if case.expired:  # the same in both modes
        assert "dnssec-bogus" in codes
        assert "signature-expired" in str(out["mx"]["reason"]), out["mx"]
        return
    assert out["mx"]["status"] == "secure", out["mx"]
    got = {h["name"]: h for h in out["hosts"]}
    assert list(got) == hosts
    mx1 = got[hosts[0]]
    assert mx1["dane_applies"] is True
    assert [e["address"] for e in mx1["endpoints"]] == addresses
    (endpoint,) = mx1["endpoints"]
    assert endpoint["authenticated"] is (not case.mismatch), endpoint
    if case.mismatch:
        assert "tlsa-mismatch" in codes
    if case.second_mx_without_tlsa:
        mx2 = got[hosts[1]]
        (tlsa,) = [x for x in mx2["dns"] if x["type"] == "TLSA"]
        # NSEC3 from ldns-signzone proves there is no TLSA record: secure NODATA/NXDOMAIN
        assert (tlsa["status"], tlsa["kind"]) in {("secure", "nxdomain"), ("secure", "nodata")}
        assert (mx2["verdict"], mx2["sender_action"]) == ("no-dane", "deliver-opportunistic")


def test_posttls_finger_agrees_on_ldns_signed_nsd_served_zones(nsd: NSDStack):
    from mta import FingerRunner

    finger = FingerRunner(nsd.unbound.host)
    try:
        for name, (case, hosts, _) in nsd.cases.items():
            f = finger.run(f"[{hosts[0].rstrip('.')}]:{nsd.port}")
            if case.expired:
                # no usable DNS answer at all: posttls-finger cannot even find the address
                assert f.trust is None, f.output
                continue
            assert f.trust is not None, f.output
            assert f.authenticated is (not case.mismatch), (name, f.output)
            assert f.no_match is case.mismatch, (name, f.output)
    finally:
        finger.close()


def test_nsd_really_serves_them(nsd: NSDStack):
    """The answers come from NSD (its own SOA, ldns's signatures), not the world."""
    origin = "ldns-nsec.example."
    query = dns.message.make_query(origin, "SOA", want_dnssec=True)
    r = dns.query.udp(query, nsd.nsd_address, timeout=2)
    assert r.flags & dns.flags.AA
    (soa,) = [x for x in r.answer if x.rdtype == dns.rdatatype.SOA]
    assert soa[0].rname.to_text() == f"hostmaster.{origin}"  # our zone file, as NSD loaded it
    assert any(x.rdtype == dns.rdatatype.RRSIG for x in r.answer)
    # ldns-signzone -n and dnssec-signzone -3 made NSEC3 zones (no extra iterations)
    for name in ("ldns-nsec3.example.", "bind-nsec3.example."):
        q3 = dns.message.make_query(name, "NSEC3PARAM")
        (param,) = dns.query.udp(q3, nsd.nsd_address, timeout=2).answer
        assert param[0].iterations == 0
    # and the world's server only refers to it
    world_host, world_port = nsd.world.dns_address
    r = dns.query.udp(query, world_host, port=world_port, timeout=2)
    assert not r.answer and any(x.rdtype == dns.rdatatype.NS for x in r.authority)
