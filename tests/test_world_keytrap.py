"""The world's CPU attacks on validators are what they claim to be (no validator timed here).

``keytrap`` (CVE-2023-50387): hundreds of RSA DNSKEYs share the real ZSK's key tag and
hundreds of RRSIGs with that tag cover the TLSA RRset (the DNSKEY RRset: as many as fit), the
real keys and signatures last, every response within one TCP message. The NSEC3 flood
(CVE-2023-50868): negative answers carry 120 signed NSEC3 records at the iteration cap of our
validator, so that a naive closest-encloser walk computes thousands of hashes.
"""

from __future__ import annotations

import collections
import shutil

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dns.dnssecalgs import get_algorithm_cls
from dnsutil import served
from test_world_delv import BOGUS, VALID, run_delv, verdict

from dane_monitor.lookup.denial import MAX_NSEC3_ITERATIONS
from dane_monitor.world import World, by_name
from dane_monitor.world.zones import (
    NSEC3,
    Hierarchy,
    KeyTrap,
    SignedZone,
    colliding_rsa_dnskey,
    key_tag_sum,
)

N = dns.name.from_text
ORIGIN = "keytrap.example."
TLSA_NAME = "_25._tcp.mx1.keytrap.example."


@pytest.fixture(scope="module")
def world() -> World:
    return World([by_name("keytrap")])  # built (and signed), not started


@pytest.fixture(scope="module")
def zone(world: World) -> SignedZone:
    return world.signed[ORIGIN]


@pytest.fixture(scope="module")
def server(world: World):
    with served(world.signed) as srv:
        yield srv


def _verifies(rrset, sig, key, origin) -> bool:
    try:
        dns.dnssec.validate_rrsig(rrset, sig, {N(origin): dns.rdataset.from_rdata_list(300, [key])})
    except dns.dnssec.ValidationFailure:
        return False
    return True


@pytest.mark.parametrize("tag", [0, 1, 257, 0x7FFF, 0xFFFF])
@pytest.mark.parametrize("flags", [256, 257])
def test_colliding_keys_get_any_tag_asked_for(tag, flags):
    rd = colliding_rsa_dnskey(tag, flags, 8)
    assert dns.dnssec.key_id(rd) == tag == key_tag_sum(rd.to_wire())
    assert rd.flags == flags


def test_the_dnskey_rrset_has_200_rsa_keys_with_the_zsks_tag(zone):
    keys = list(zone.dnskey_rrset)
    tags = collections.Counter(dns.dnssec.key_id(k) for k in keys)
    zsk_tag = dns.dnssec.key_id(zone.zsk)
    assert tags.most_common(1) == [(zsk_tag, 201)]  # 200 impostors and the real ZSK
    assert zone.stats["keytrap_keys"] == 200
    assert keys[-2:] == [zone.ksk, zone.zsk]  # the real keys last
    for key in keys[:-2]:
        assert (key.algorithm, key.flags) == (dns.dnssec.Algorithm.RSASHA256, 256)
        # a usable 2048-bit RSA public key, exponent 65537
        public = get_algorithm_cls(key.algorithm).public_cls.from_dnskey(key).key
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == 2048
        assert public.public_numbers().e == 65537


def test_the_tlsa_rrset_has_200_rrsigs_with_that_tag_and_only_the_last_verifies(zone):
    tlsa, sigs = zone.rrset(TLSA_NAME, "TLSA"), list(zone.rrsig(TLSA_NAME, "TLSA"))
    assert len(sigs) == 201
    zsk_tag = dns.dnssec.key_id(zone.zsk)
    now = zone.earliest_expiration - 3600
    for sig in sigs:
        assert (sig.key_tag, sig.signer, sig.type_covered) == (zsk_tag, N(ORIGIN), 52)
        assert sig.inception < now < sig.expiration  # only the signature itself is wrong
    assert _verifies(tlsa, sigs[-1], zone.zsk, ORIGIN)
    impostor = zone.dnskey_rrset[0]
    for sig in sigs[:3]:
        assert not _verifies(tlsa, sig, zone.zsk, ORIGIN)
        assert not _verifies(tlsa, sig, impostor, ORIGIN)
    assert not _verifies(tlsa, sigs[-1], impostor, ORIGIN)


def test_the_dnskey_rrset_is_flooded_with_rrsigs_of_the_ksks_tag(zone):
    sigs = list(zone.rrsig("@", "DNSKEY"))
    ksk_tag = dns.dnssec.key_id(zone.ksk)
    assert len(sigs) == zone.stats["keytrap_dnskey_rrsigs"] + 1 >= 20
    assert {s.key_tag for s in sigs} == {ksk_tag}
    assert _verifies(zone.dnskey_rrset, sigs[-1], zone.ksk, ORIGIN)
    assert not _verifies(zone.dnskey_rrset, sigs[0], zone.ksk, ORIGIN)


def test_other_rrsets_are_signed_once(zone):
    assert len(zone.rrsig("mx1", "A")) == 1
    assert len(zone.rrsig("@", "MX")) == 1


def _ask(server, name, rdtype, *, tcp=True):
    q = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    if tcp:
        return dns.query.tcp(q, server.host, port=server.port, timeout=10)
    return dns.query.udp(q, server.host, port=server.port, timeout=10)


@pytest.mark.parametrize(("name", "rdtype"), [(ORIGIN, "DNSKEY"), (TLSA_NAME, "TLSA")])
def test_the_floods_are_served_whole_over_tcp_in_the_zones_order(server, zone, name, rdtype):
    r = _ask(server, name, rdtype)
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.flags & dns.flags.TC
    assert len(r.to_wire()) < 65535
    data = r.find_rrset(r.answer, N(name), dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))
    sigs = r.find_rrset(r.answer, N(name), dns.rdataclass.IN, dns.rdatatype.RRSIG, data.rdtype)
    assert list(data) == list(zone.rrset(name, rdtype))  # not shuffled: impostors first
    assert list(sigs) == list(zone.rrsig(name, rdtype))  # the real signature last
    assert _ask(server, name, rdtype, tcp=False).flags & dns.flags.TC  # too big for UDP


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode"),
    [
        ("mx1.keytrap.example.", "AAAA", dns.rcode.NOERROR),
        ("a.b.c.d.e.f.g.h.nothere.keytrap.example.", "A", dns.rcode.NXDOMAIN),
        ("_25._tcp.nothere.keytrap.example.", "TLSA", dns.rcode.NXDOMAIN),
    ],
)
def test_negative_answers_carry_an_nsec3_flood_at_the_iteration_cap(
    server, zone, name, rdtype, rcode
):
    r = _ask(server, name, rdtype)
    assert r.rcode() == rcode
    assert not r.answer
    nsec3 = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC3]
    assert len(nsec3) >= 100
    assert {rr[0].iterations for rr in nsec3} == {MAX_NSEC3_ITERATIONS}
    sigs = {rr.name: rr for rr in r.authority if rr.rdtype == dns.rdatatype.RRSIG}
    for rr in nsec3[:: len(nsec3) // 5]:  # signed, and by the real ZSK
        assert _verifies(rr, sigs[rr.name][0], zone.zsk, ORIGIN)
    # the real proof is there too: the NODATA's matching NSEC3
    if rcode == dns.rcode.NOERROR:
        owner = zone.nsec3_rrsets[zone.nsec3_hash(N(name))][0].name
        assert owner in {rr.name for rr in nsec3}


def test_keytrap_needs_rsa_and_the_flood_needs_nsec3():
    h = Hierarchy()
    with pytest.raises(ValueError, match="RSA"):
        h.zone("ec.example.", keytrap=KeyTrap())
    with pytest.raises(ValueError, match="NSEC3"):
        h.zone("nsec.example.", nsec3_flood=10)
    z = h.zone("small.example.", algorithm=8, denial=NSEC3(), keytrap=KeyTrap(zsk_keys=3, rrsigs=5))
    z.add("_25._tcp.mx", "TLSA", "3 1 1 " + "ab" * 32)
    s = h.sign()["small.example."]
    assert len(s.rrsig("_25._tcp.mx", "TLSA")) == 6
    assert len(s.dnskey_rrset) == 5


@pytest.mark.delv
@pytest.mark.skipif(shutil.which("delv") is None, reason="BIND's delv is not installed")
def test_delv_gives_up_on_the_impostors_too(server, world, tmp_path):
    """BIND (9.18 with the 2024 KeyTrap limits) calls the flooded RRsets bogus: the world's
    attack is one a real validator recognises. Its DNSKEY RRset, whose only KSK-tag key is
    the real KSK, delv still validates."""
    anchor = world.write_bind_trust_anchor(tmp_path / "anchor.conf")
    for name, rdtype in [(TLSA_NAME, "TLSA"), (ORIGIN, "MX")]:
        out = run_delv(server.port, anchor, name, rdtype)
        assert verdict(out) == BOGUS, out
        assert "no valid signature found" in out, out
    out = run_delv(server.port, anchor, ORIGIN, "DNSKEY")
    assert verdict(out) == VALID, out
