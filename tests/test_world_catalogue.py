"""The scenario catalogue, served: what DNS says, and whether OpenSSL's DANE agrees.

OpenSSL's DANE implementation (``s_client -dane_tlsa_rrdata``) is the independent judge of
the catalogue's ``authenticates`` expectation: for every endpoint of every DANE-bearing
scenario, and for every key type the endpoint serves, it must reach the same verdict.
"""

from __future__ import annotations

import shutil
import subprocess

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dane_monitor.world import CATALOGUE, Behaviour, World

REQUIRED = {
    "good-ee", "good-ta", "ta-name-mismatch", "tlsa-mismatch", "rollover", "no-tlsa",
    "insecure-with-tlsa", "bogus-expired", "bogus-signature", "unusable-only", "no-starttls",
    "cname-mx", "null-mx", "implicit-mx", "nsec3", "two-mx-one-broken",
}  # fmt: skip
VERDICTS = {"valid", "failed", "bogus", "no-dane", "insecure", "no-mail", "error"}
NO_TLS = {Behaviour.NO_STARTTLS, Behaviour.STARTTLS_REFUSED, Behaviour.TLS_HANDSHAKE_FAILURE}


def test_catalogue_has_the_required_scenarios_with_valid_expectations():
    names = [sc.name for sc in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    for sc in CATALOGUE:
        assert sc.expect.verdict in VERDICTS, sc.name
        host_names = {h.name for h in sc.hosts}
        assert set(sc.expect.hosts) <= host_names, sc.name
        for he in sc.expect.hosts.values():
            assert he.verdict in VERDICTS, sc.name


def _query(world: World, name: str, rdtype: str) -> dns.message.Message:
    host, port = world.dns_address
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.tcp(q, host, port=port, timeout=5)


def _rrset(response: dns.message.Message, name: str, rdtype: str) -> set[str]:
    for rrset in response.answer:
        if rrset.name.to_text() == name and rrset.rdtype == dns.rdatatype.from_text(rdtype):
            return {rd.to_text() for rd in rrset}
    return set()


def _normal(rdata: str) -> str:
    usage, selector, mtype, data = rdata.split(maxsplit=3)
    return f"{usage} {selector} {mtype} {data.replace(' ', '').lower()}"


def test_world_serves_each_scenarios_mx_address_and_tlsa_records(dane_world: World):
    for domain in dane_world.domains.values():
        sc = domain.scenario
        mx = _rrset(_query(dane_world, domain.name, "MX"), domain.name, "MX")
        if sc.mx == "null":
            assert mx == {"0 ."}
        elif sc.mx == "implicit":
            assert mx == set()
        else:
            assert mx == {
                f"{h.preference} {m.mx_name}" for h, m in zip(sc.hosts, domain.hosts, strict=True)
            }
        for host in domain.hosts:
            addresses = _rrset(_query(dane_world, host.name, "A"), host.name, "A")
            assert addresses == {ep.address for ep in host.endpoints}, host.name
            tlsa = _query(dane_world, host.tlsa_name, "TLSA")
            if host.tlsa_rdatas:
                got = {_normal(r) for r in _rrset(tlsa, host.tlsa_name, "TLSA")}
                want = {_normal(r) for r in host.tlsa_rdatas}
                assert got == want, host.tlsa_name
            else:
                assert tlsa.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
                assert _rrset(tlsa, host.tlsa_name, "TLSA") == set()


def test_cname_mx_alias_points_at_the_tlsa_base_domain(dane_world: World):
    domain = dane_world.domains["cname-mx"]
    (host,) = domain.hosts
    response = _query(dane_world, host.mx_name, "A")
    assert _rrset(response, host.mx_name, "CNAME") == {host.name}
    assert _rrset(response, host.name, "A") == {ep.address for ep in host.endpoints}


def test_every_smtp_server_listens_on_the_world_port(dane_world: World):
    assert dane_world.smtp_port
    for _, _, endpoint in dane_world.endpoints():
        assert endpoint.server is not None
        assert (endpoint.server.host, endpoint.server.port) == (
            endpoint.address,
            dane_world.smtp_port,
        )


def _usable(rdata: str) -> bool:
    usage, selector, mtype = (int(x) for x in rdata.split()[:3])
    return usage in (2, 3) and selector in (0, 1) and mtype in (0, 1, 2)


def _openssl_dane(address: str, port: int, base: str, rdatas: list[str], rsa: bool) -> bool:
    cmd = [
        "openssl", "s_client", "-brief", "-starttls", "smtp",
        "-connect", f"{address}:{port}", "-servername", base.rstrip("."),
        "-dane_tlsa_domain", base.rstrip("."), "-dane_ee_no_namechecks",
        "-verify_return_error",
    ]  # fmt: skip
    for rdata in rdatas:
        cmd += ["-dane_tlsa_rrdata", rdata]
    if rsa:
        # What a sender that ends up with the RSA certificate sees (RFC-NOTES: GnuTLS).
        cmd += ["-tls1_2", "-cipher", "aRSA"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    verified = proc.returncode == 0 and "Verification: OK" in out
    assert verified or "Verification error" in out or "verify error" in out, out
    return verified


DANE_HOSTS = [
    (sc.name, name)
    for sc in CATALOGUE
    for name, he in sc.expect.hosts.items()
    if he.authenticates is not None
]


@pytest.mark.openssl
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
@pytest.mark.parametrize(("scenario", "host_name"), DANE_HOSTS)
def test_openssl_dane_agrees_with_the_catalogue(dane_world: World, scenario: str, host_name: str):
    domain = dane_world.domains[scenario]
    sc_host = next(h for h in domain.scenario.hosts if h.name == host_name)
    host = domain.hosts[domain.scenario.hosts.index(sc_host)]
    expect = domain.scenario.expect.hosts[host_name]
    rdatas = [r for r in host.tlsa_rdatas if _usable(r)]
    assert rdatas, "a host expected to (not) authenticate needs usable records"
    verdicts = []
    for endpoint in host.endpoints:
        assert not (endpoint.behaviours & NO_TLS)
        for chain in endpoint.chains:
            verdicts.append(
                _openssl_dane(
                    endpoint.address, dane_world.smtp_port, host.name, rdatas,
                    rsa=chain.key_type == "rsa",
                )
            )  # fmt: skip
    assert all(verdicts) == expect.authenticates, verdicts


@pytest.mark.delv
@pytest.mark.skipif(shutil.which("delv") is None, reason="needs delv")
def test_delv_agrees_with_the_catalogues_dnssec_state(dane_world: World, tmp_path):
    from test_world_delv import BOGUS, NODATA, NXDOMAIN, UNSIGNED, VALID, run_delv, verdict

    anchor = dane_world.write_bind_trust_anchor(tmp_path / "anchor.conf")
    port = dane_world.dns_address[1]
    checked = 0
    for domain in dane_world.domains.values():
        sc = domain.scenario
        unsigned = (not sc.signed or sc.insecure_delegation) and sc.host_zone == "domain"
        for host in domain.hosts:
            out = run_delv(port, anchor, host.tlsa_name, "TLSA")
            if sc.expect.verdict == "bogus":
                want = {BOGUS}
            elif unsigned:
                want = {UNSIGNED}
            elif host.tlsa_rdatas:
                want = {VALID}
            else:
                want = {NXDOMAIN, NODATA}
            assert verdict(out) in want, f"{domain.scenario.name}: {out}"
            checked += 1
    assert checked >= 25
