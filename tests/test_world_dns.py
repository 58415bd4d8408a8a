"""Unit tests of the DNS half of the local world: the signer (zones) and the server."""

from __future__ import annotations

import socket
import struct
import time

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dns.dnssectypes import Algorithm
from dnsutil import served
from rfc5155 import APPENDIX_A, ITERATIONS, SALT

from dane_monitor.lookup.denial import bitmap_types
from dane_monitor.world.zones import (
    NSEC,
    NSEC3,
    Fault,
    Hierarchy,
    SignedZone,
    Zone,
    nsec3_hash_raw,
)

N = dns.name.from_text
TLSA = "3 1 1 " + "ab" * 32
# 248 octets in wire form: a name of more than 7 octets below it is too long (255)
LONG_TARGET = ".".join(["a" * 60, "b" * 60, "c" * 60, "d" * 50, "nsec.example."])


def _std(zone: Zone) -> Zone:
    zone.add("@", "MX", "10 mail")
    zone.add("mail", "A", "127.0.0.25")
    zone.add("_25._tcp.mail", "TLSA", TLSA)
    zone.add("*.wild", "TXT", "wild")
    return zone


def keys(z: SignedZone) -> dict:
    return {z.origin: z.dnskey_rrset}


def validate_all(z: SignedZone) -> int:
    """Validate every RRSIG of the zone with its DNSKEY RRset; return how many."""
    n = 0
    for rrset, sig in z.all_rrsets():
        if sig is not None:
            dns.dnssec.validate(rrset, sig, keys(z))
            n += 1
    return n


@pytest.fixture(scope="module")
def signed():
    h = Hierarchy()
    h.zone("example.")
    _std(h.zone("nsec.example."))
    z = _std(h.zone("nsec3.example.", denial=NSEC3(iterations=5, salt=b"\xaa\xbb")))
    z.add("deep.ent", "A", "127.0.0.9")
    z.add("alias", "CNAME", "mail.nsec.example.")
    z = _std(h.zone("optout.example.", denial=NSEC3(opt_out=True)))
    h.zone("unsigned.optout.example.", signed=False).add("www", "A", "127.0.0.10")
    _std(h.zone("secure.optout.example."))
    z = _std(h.zone("faulty.example."))
    z.add("ok", "A", "127.0.0.11")
    z.fault(Fault.EXPIRED_RRSIG, "mail", "A")
    z.fault(Fault.NOT_YET_VALID_RRSIG, "@", "MX")
    z.fault(Fault.BAD_SIGNATURE, "_25._tcp.mail", "TLSA")
    z.fault(Fault.MISSING_RRSIG, "ok")
    z.fault(Fault.SERVFAIL, "sf")
    z.fault(Fault.NO_ANSWER, "silent")
    z.add("sf", "A", "127.0.0.12")
    z.add("x.silent", "A", "127.0.0.13")
    _std(h.zone("dsbad.example.")).fault(Fault.DS_MISMATCH)
    _std(h.zone("island.example.")).fault(Fault.UNSIGNED_DELEGATION)
    z = _std(h.zone("big.example.", algorithm=Algorithm.RSASHA256))
    z.add("txt", "TXT", *[f'"{"x" * 200} {i}"' for i in range(6)])
    # DNAME (RFC 6672): an NSEC zone and an NSEC3 zone redirecting a subtree elsewhere
    z = _std(h.zone("dname.example."))
    z.add("dn", "DNAME", "nsec.example.", ttl=120)
    z.add("long", "DNAME", LONG_TARGET)
    z = _std(h.zone("dname3.example.", denial=NSEC3()))
    z.add("dn", "DNAME", "nsec3.example.")
    # a delegation to a server outside the hierarchy (referrals)
    h["example."].add("external", "NS", "ns.external.example.")
    h["example."].add("ns.external", "A", "127.0.0.99")
    return h.sign()


# ------------------------------------------------------------------------- signer


@pytest.mark.parametrize(
    ("origin", "n_min"),
    [(".", 5), ("example.", 10), ("nsec.example.", 8), ("nsec3.example.", 10)],
)
def test_every_signature_validates(signed, origin, n_min):
    assert validate_all(signed[origin]) >= n_min


@pytest.mark.parametrize("alg", [Algorithm.RSASHA256, Algorithm.ED25519, Algorithm.ECDSAP384SHA384])
def test_other_algorithms_validate(alg):
    h = Hierarchy()
    _std(h.zone("alg.example.", algorithm=alg, denial=NSEC3()))
    s = h.sign()
    z = s["alg.example."]
    assert z.ksk.algorithm == alg
    assert validate_all(z) > 5
    assert validate_all(s["."]) > 3


def test_key_roles(signed):
    z = signed["nsec.example."]
    assert z.ksk.flags == 257
    assert z.zsk.flags == 256
    ksk_tag, zsk_tag = dns.dnssec.key_id(z.ksk), dns.dnssec.key_id(z.zsk)
    assert z.rrsig("@", "DNSKEY")[0].key_tag == ksk_tag
    assert {sig[0].key_tag for _, sig in z.all_rrsets() if sig and sig.covers != 48} == {zsk_tag}
    ds = signed["example."].rrset("nsec", "DS")
    assert ds[0] == dns.dnssec.make_ds(z.origin, z.ksk, "SHA256")


def test_apex_and_nameserver(signed):
    z = signed["nsec.example."]
    assert z.rrset("@", "SOA") is not None
    assert [r.target for r in z.rrset("@", "NS")] == [N("ns1.nsec.example.")]
    assert z.rrset("ns1", "A")[0].address == "127.0.0.1"
    parent = signed["example."]
    assert parent.glue[N("ns1.nsec.example.")][dns.rdatatype.A][0].address == "127.0.0.1"


def test_delegation_signing(signed):
    p = signed["example."]
    cut = N("nsec.example.")
    assert cut in p.delegations
    assert p.rrsig(cut, "NS") is None  # NS at a cut is not signed
    assert p.rrsig(cut, "DS") is not None
    assert p.rrsig(cut, "NSEC") is not None
    glue = N("ns1.nsec.example.")
    assert glue not in p.rrsets  # occluded: not authoritative, not in the chain
    assert glue not in p.nsec_names
    assert cut in p.nsec_names
    nsec = p.rrset(cut, "NSEC")[0]
    assert bitmap_types(nsec) == {
        dns.rdatatype.NS,
        dns.rdatatype.DS,
        dns.rdatatype.RRSIG,
        dns.rdatatype.NSEC,
    }


def test_nsec_chain_is_a_closed_loop(signed):
    z = signed["nsec.example."]
    names = list(z.nsec_names)
    assert names == sorted(names)
    for i, name in enumerate(names):
        assert z.rrset(name, "NSEC")[0].next == names[(i + 1) % len(names)]
    assert N("_tcp.mail.nsec.example.") not in names  # NSEC has no empty non-terminals
    assert bitmap_types(z.rrset("mail", "NSEC")[0]) == {1, 46, 47}


def test_nsec3_chain(signed):
    z = signed["nsec3.example."]
    d = z.denial
    assert isinstance(d, NSEC3)
    param = z.rrset("@", "NSEC3PARAM")[0]
    assert (param.iterations, param.salt, param.flags) == (5, b"\xaa\xbb", 0)
    owners = [z.nsec3_rrsets[h][0] for h in z.nsec3_hashes]
    hashes = list(z.nsec3_hashes)
    for i, rrset in enumerate(owners):
        rd = rrset[0]
        assert rd.next == hashes[(i + 1) % len(hashes)]
        assert (rd.iterations, rd.salt, rd.flags) == (5, b"\xaa\xbb", 0)
        assert rrset.name.parent() == z.origin
    # every existing name and empty non-terminal is in the chain, glue is not
    for name in ["@", "mail", "_tcp.mail", "_25._tcp.mail", "wild", "*.wild", "ent", "deep.ent"]:
        n = N(name, z.origin) if name != "@" else z.origin
        h = nsec3_hash_raw(n, b"\xaa\xbb", 5)
        assert h in z.nsec3_rrsets, name
        expect = dns.dnssec.nsec3_hash(n, "aabb", 5, 1).lower()
        assert z.nsec3_rrsets[h][0].name.labels[0].decode() == expect
    ent = z.nsec3_rrsets[nsec3_hash_raw(N("ent.nsec3.example."), b"\xaa\xbb", 5)][0][0]
    assert bitmap_types(ent) == set()  # empty non-terminal: empty bitmap
    apex = z.nsec3_rrsets[nsec3_hash_raw(z.origin, b"\xaa\xbb", 5)][0][0]
    assert {dns.rdatatype.NSEC3PARAM, dns.rdatatype.DNSKEY, dns.rdatatype.SOA} <= bitmap_types(apex)


def test_nsec3_opt_out(signed):
    z = signed["optout.example."]
    unsigned = N("unsigned.optout.example.")
    secure = N("secure.optout.example.")
    assert z.nsec3_match(unsigned) is None  # insecure delegation left out of the chain
    assert z.nsec3_match(secure) is not None
    assert all(rr[0].flags == 1 for rr, _ in z.nsec3_rrsets.values())
    covering = z.nsec3_rrsets[z.nsec3_cover(unsigned)][0]
    assert covering[0].flags & 1


@pytest.mark.parametrize(("name", "hashed"), APPENDIX_A)
def test_nsec3_hash_rfc5155_appendix_a(name, hashed):
    import base64

    raw = nsec3_hash_raw(N(name + "."), SALT, ITERATIONS)
    assert base64.b32hexencode(raw).decode().lower() == hashed


def test_nsec3_owner_names_match_rfc5155_example_zone():
    h = Hierarchy("example.")
    h.anchor.denial = NSEC3(iterations=12, salt=bytes.fromhex("aabbccdd"))
    h.anchor.add("a", "NS", "ns1.a")
    h.anchor.add("ns1.a", "A", "192.0.2.5")
    h.anchor.add("ai", "A", "192.0.2.9")
    h.anchor.add("x.w", "MX", "1 xx")
    h.anchor.add("xx", "A", "192.0.2.10")
    z = h.sign()["example."]
    owners = {rr.name.labels[0].decode() for rr, _ in z.nsec3_rrsets.values()}
    assert {"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom", "35mthgpgcu1qg68fab165klnsnk3dpvl"} <= owners
    assert {"gjeqe526plbf1g8mklp59enfd789njgi", "k8udemvp1j2f7eg6jebps17vp3n8i58h"} <= owners
    assert "2t7b4g4vsa5smi47k61mv5bv1a22bojr" in owners  # ns1.example
    assert "b4um86eghhds6nea196smvmlo4ors995" in owners  # x.w.example
    assert "t644ebqk9bibcna874givr6joj62mlhv" in owners  # xx.example


def test_wildcard_rrsig_labels(signed):
    z = signed["nsec.example."]
    sig = z.rrsig("*.wild", "TXT")[0]
    assert sig.labels == 3  # wild.nsec.example: the "*" label is not counted
    dns.dnssec.validate(z.rrset("*.wild", "TXT"), z.rrsig("*.wild", "TXT"), keys(z))


def test_signature_validity_window(signed):
    z = signed["nsec.example."]
    sig = z.rrsig("mail", "A")[0]
    now = signed.now
    assert sig.inception == pytest.approx(now - 3600, abs=2)
    assert sig.expiration == pytest.approx(now + 14 * 86400, abs=2)
    assert z.earliest_expiration == pytest.approx(now + 14 * 86400, abs=2)


def test_sig_lifetime_is_configurable():
    h = Hierarchy()
    h.zone("short.example.", sig_lifetime=7200)
    s = h.sign(now=1_700_000_000)
    assert s["short.example."].earliest_expiration == 1_700_000_000 + 7200
    assert s.earliest_expiration == 1_700_000_000 + 7200


# ------------------------------------------------------------------------- faults


def test_expired_rrsig(signed):
    z = signed["faulty.example."]
    sig = z.rrsig("mail", "A")
    assert sig[0].expiration < time.time() < z.rrsig("mail", "NSEC")[0].expiration
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(z.rrset("mail", "A"), sig, keys(z))
    # the same signature is good at a time inside its window: only the dates are wrong
    dns.dnssec.validate(z.rrset("mail", "A"), sig, keys(z), now=sig[0].expiration - 60)


def test_date_faults_lie_beyond_every_validators_clock_skew(signed):
    """Unbound forgives signatures up to val-sig-skew-max (one day) outside their window; a
    fault exactly one day out made resolver-mode tests flip between bogus and secure."""
    z = signed["faulty.example."]
    assert z.rrsig("mail", "A")[0].expiration < time.time() - 3 * 86400
    assert z.rrsig("@", "MX")[0].inception > time.time() + 3 * 86400


def test_not_yet_valid_rrsig(signed):
    z = signed["faulty.example."]
    sig = z.rrsig("@", "MX")
    assert sig[0].inception > time.time()
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(z.rrset("@", "MX"), sig, keys(z))
    dns.dnssec.validate(z.rrset("@", "MX"), sig, keys(z), now=sig[0].inception + 60)


def test_bad_signature(signed):
    z = signed["faulty.example."]
    sig = z.rrsig("_25._tcp.mail", "TLSA")
    now = time.time()
    assert sig[0].inception < now < sig[0].expiration
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(z.rrset("_25._tcp.mail", "TLSA"), sig, keys(z))


def test_missing_rrsig(signed):
    z = signed["faulty.example."]
    assert z.rrset("ok", "A") is not None
    assert z.rrsig("ok", "A") is None
    assert z.rrsig("ok", "NSEC") is None  # rdtype None: every type at the name


def test_faults_stay_scoped(signed):
    z = signed["faulty.example."]
    for name, rdtype in [("mail", "NSEC"), ("@", "SOA"), ("@", "DNSKEY"), ("sf", "A")]:
        dns.dnssec.validate(z.rrset(name, rdtype), z.rrsig(name, rdtype), keys(z))


def test_ds_mismatch(signed):
    child = signed["dsbad.example."]
    ds = signed["example."].rrset("dsbad", "DS")
    assert ds is not None
    assert signed["example."].rrsig("dsbad", "DS") is not None  # signed, just wrong
    for rd in ds:
        for key in child.dnskey_rrset:
            assert rd != dns.dnssec.make_ds(child.origin, key, rd.digest_type)
    assert validate_all(child) > 3  # the child itself is fine


def test_unsigned_delegation(signed):
    parent = signed["example."]
    cut = N("island.example.")
    assert cut in parent.delegations
    assert parent.rrset(cut, "DS") is None
    assert dns.rdatatype.DS not in bitmap_types(parent.rrset(cut, "NSEC")[0])
    assert signed["island.example."].dnskey_rrset is not None  # signed island


def test_unsigned_zone_has_no_dnssec(signed):
    z = signed["unsigned.optout.example."]
    assert not z.rrsigs
    assert z.dnskey_rrset is None
    assert not z.nsec_names
    assert not z.nsec3_rrsets


def test_zone_level_faults_take_no_name():
    z = Zone("x.example.")
    with pytest.raises(ValueError, match="zone-level"):
        z.fault(Fault.DS_MISMATCH, "mail")
    with pytest.raises(ValueError, match="signed"):
        Zone("y.example.", signed=False).fault(Fault.EXPIRED_RRSIG)


# ------------------------------------------------------------------------- API bits


def test_add_names():
    z = Zone("example.com.", signed=False)
    z.add("@", "MX", "10 mail")
    z.add("mail", "A", "192.0.2.1")
    z.add("www.example.com.", "CNAME", "mail")
    z.add("_25._tcp.mail", "TLSA", TLSA)
    names = {str(n) for n, _, _ in z.records()}
    assert names == {
        "example.com.",
        "mail.example.com.",
        "www.example.com.",
        "_25._tcp.mail.example.com.",
    }
    cname = next(r for n, t, r in z.records() if t == dns.rdatatype.CNAME)
    assert cname[0].target == N("mail.example.com.")
    with pytest.raises(ValueError, match="not in zone"):
        z.add("other.org.", "A", "192.0.2.1")


def test_trust_anchor_formats(signed):
    ta = signed.trust_anchor()
    assert ta.startswith(". 3600 IN DS ")
    ds = dns.rrset.from_text(".", 3600, "IN", "DS", ta.split(" DS ")[1].strip())
    assert ds[0] == dns.dnssec.make_ds(N("."), signed["."].ksk, "SHA256")
    key = signed.trust_anchor("dnskey")
    assert key.startswith(". 3600 IN DNSKEY 257 3 13 ")
    bind = signed.bind_trust_anchors()
    assert bind.startswith("trust-anchors {")
    assert f'"." static-ds {ds[0].key_tag} 13 2 "{ds[0].digest.hex().upper()}";' in bind


def test_root_tld_and_20_domains_are_all_signed():
    """How long this takes is a figure, not an assertion: benchmarks/world_build.py."""
    h = Hierarchy()
    h.zone("example.")
    for i in range(20):
        z = h.zone(f"d{i}.example.", denial=NSEC3() if i % 2 else NSEC)
        _std(z)
    s = h.sign()
    assert len(s.zones) == 22
    assert all(s[z].earliest_expiration for z in s.zones)


# ------------------------------------------------------------------------- server


def q(server, name, rdtype, *, tcp=False, do=True, payload=1232, timeout=3.0, **kw):
    msg = dns.message.make_query(name, rdtype, want_dnssec=do, payload=payload, **kw)
    if tcp:
        return dns.query.tcp(msg, server.host, port=server.port, timeout=timeout)
    return dns.query.udp(msg, server.host, port=server.port, timeout=timeout)


@pytest.fixture(scope="module")
def server(signed):
    with served(signed) as srv:
        yield srv


def _rrset(section, name, rdtype, covers=0):
    for rr in section:
        if (
            rr.name == N(name)
            and rr.rdtype == dns.rdatatype.from_text(rdtype)
            and (rr.covers == covers)
        ):
            return rr
    return None


@pytest.mark.parametrize("tcp", [False, True])
def test_positive_answer(server, tcp):
    r = q(server, "mail.nsec.example.", "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    a = _rrset(r.answer, "mail.nsec.example.", "A")
    sig = _rrset(r.answer, "mail.nsec.example.", "RRSIG", dns.rdatatype.A)
    assert a[0].address == "127.0.0.25"
    z = server.signed["nsec.example."]
    dns.dnssec.validate(a, sig, keys(z))


def test_no_do_no_rrsig(server):
    r = q(server, "mail.nsec.example.", "A", do=False)
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.A]
    r = q(server, "nothere.nsec.example.", "A", do=False, use_edns=False)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]


def test_nxdomain_nsec(server):
    r = q(server, "nothere.nsec.example.", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    z = server.signed["nsec.example."]
    nsecs = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC]
    assert nsecs
    qname, wild = N("nothere.nsec.example."), N("*.nsec.example.")

    def covers(rr, name):
        nxt = rr[0].next
        return rr.name < name < nxt or (nxt == z.origin and rr.name < name)

    assert any(covers(rr, qname) for rr in nsecs)
    assert any(covers(rr, wild) for rr in nsecs)
    for rr in nsecs:
        dns.dnssec.validate(rr, _rrset(r.authority, rr.name.to_text(), "RRSIG", 47), keys(z))


def test_nodata_nsec3_and_ent(server):
    z = server.signed["nsec3.example."]
    r = q(server, "mail.nsec3.example.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    n3 = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC3]
    assert [rr.name for rr in n3] == [
        z.nsec3_rrsets[z.nsec3_hash(N("mail.nsec3.example."))][0].name
    ]
    r = q(server, "ent.nsec3.example.", "A")  # empty non-terminal: NODATA, not NXDOMAIN
    assert r.rcode() == dns.rcode.NOERROR
    n3 = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC3]
    assert bitmap_types(n3[0][0]) == set()


def test_nxdomain_nsec3_three_records(server):
    r = q(server, "a.b.nothere.nsec3.example.", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    n3 = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC3]
    assert 2 <= len(n3) <= 3  # closest encloser, next closer, wildcard (may coincide)


def test_wildcard_answer(server):
    r = q(server, "a.b.wild.nsec.example.", "TXT")
    txt = _rrset(r.answer, "a.b.wild.nsec.example.", "TXT")
    sig = _rrset(r.answer, "a.b.wild.nsec.example.", "RRSIG", dns.rdatatype.TXT)
    assert sig[0].labels == 3 < len(txt.name) - 1
    dns.dnssec.validate(txt, sig, keys(server.signed["nsec.example."]))
    assert any(rr.rdtype == dns.rdatatype.NSEC for rr in r.authority)  # no closer match


def test_cname_chain_across_zones(server):
    r = q(server, "alias.nsec3.example.", "A")
    assert _rrset(r.answer, "alias.nsec3.example.", "CNAME") is not None
    assert _rrset(r.answer, "mail.nsec.example.", "A") is not None
    assert _rrset(r.answer, "mail.nsec.example.", "RRSIG", dns.rdatatype.A) is not None


def test_ds_answered_by_parent(server):
    r = q(server, "nsec.example.", "DS")
    ds = _rrset(r.answer, "nsec.example.", "DS")
    sig = _rrset(r.answer, "nsec.example.", "RRSIG", dns.rdatatype.DS)
    assert sig[0].signer == N("example.")
    dns.dnssec.validate(ds, sig, keys(server.signed["example."]))


def test_ds_nodata_at_insecure_delegation_opt_out(server):
    r = q(server, "unsigned.optout.example.", "DS")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    n3 = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC3]
    assert len(n3) == 2  # closest provable encloser + opt-out span over the next closer
    assert any(rr[0].flags & 1 for rr in n3)


def test_referral_for_delegation_outside_the_world(server):
    r = q(server, "www.external.example.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.flags & dns.flags.AA
    assert _rrset(r.authority, "external.example.", "NS") is not None
    assert _rrset(r.authority, "external.example.", "NSEC") is not None  # no DS, proven
    assert _rrset(r.additional, "ns.external.example.", "A") is not None


def test_refused_outside_and_notimp_any(server):
    h = Hierarchy("example.")
    with served(h.sign()) as srv:
        assert q(srv, "example.org.", "A").rcode() == dns.rcode.REFUSED
    assert q(server, "mail.nsec.example.", "ANY").rcode() == dns.rcode.NOTIMP


def test_truncation_and_tcp_fallback(server):
    r = q(server, "txt.big.example.", "TXT", payload=512)
    assert r.flags & dns.flags.TC
    assert not r.answer
    r = q(server, "txt.big.example.", "TXT", use_edns=False)
    assert r.flags & dns.flags.TC
    r = q(server, "txt.big.example.", "TXT", tcp=True)
    assert not r.flags & dns.flags.TC
    assert len(_rrset(r.answer, "txt.big.example.", "TXT")) == 6
    r = q(server, "txt.big.example.", "TXT", payload=4096)  # a large buffer: no truncation
    assert not r.flags & dns.flags.TC


def test_several_queries_on_one_tcp_connection(server):
    with socket.create_connection((server.host, server.port), timeout=3) as s:
        for i, name in enumerate(["mail.nsec.example.", "nothere.nsec.example.", "nsec.example."]):
            wire = dns.message.make_query(name, "A", id=100 + i).to_wire()
            s.sendall(struct.pack("!H", len(wire)) + wire)
        for i in range(3):
            (n,) = struct.unpack("!H", _recv(s, 2))
            assert dns.message.from_wire(_recv(s, n)).id == 100 + i


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk
        buf += chunk
    return buf


def test_servfail_fault(server):
    assert q(server, "sf.faulty.example.", "A").rcode() == dns.rcode.SERVFAIL
    assert q(server, "below.sf.faulty.example.", "A").rcode() == dns.rcode.SERVFAIL
    assert q(server, "mail.nsec.example.", "A").rcode() == dns.rcode.NOERROR


def test_no_answer_fault_times_out(server):
    with pytest.raises(dns.exception.Timeout):
        q(server, "x.silent.faulty.example.", "A", timeout=0.5)
    with pytest.raises(dns.exception.Timeout):
        q(server, "silent.faulty.example.", "A", timeout=0.5)
    assert q(server, "ok.faulty.example.", "A").rcode() == dns.rcode.NOERROR


def test_missing_and_wrong_denial():
    h = Hierarchy("example.")
    md = _std(h.zone("md.example."))
    md.fault(Fault.MISSING_DENIAL)
    wd = _std(h.zone("wd.example.", denial=NSEC3()))
    for i in range(8):
        wd.add(f"h{i}", "A", "127.0.0.1")
    wd.fault(Fault.WRONG_DENIAL)
    s = h.sign()
    with served(s) as srv:
        r = q(srv, "nothere.md.example.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert {rr.rdtype for rr in r.authority} == {dns.rdatatype.SOA, dns.rdatatype.RRSIG}
        assert q(srv, "mail.md.example.", "A").answer  # positive answers unaffected
        r = q(srv, "nothere.wd.example.", "A")
        z = s["wd.example."]
        n3 = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC3]
        assert n3
        served_hashes = {rr.name.labels[0] for rr in n3}
        right = {
            z.nsec3_rrsets[h][0].name.labels[0]
            for h in (z.nsec3_cover(N("nothere.wd.example.")), z.nsec3_cover(N("*.wd.example.")))
        }
        assert not served_hashes & right


def test_garbage_does_not_kill_the_server(server):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.3)
    good = dns.message.make_query("mail.nsec.example.", "A").to_wire()
    bad_qd = bytearray(good)
    bad_qd[5] = 2  # QDCOUNT 2 but one question
    response_bit = bytearray(good)
    response_bit[2] |= 0x80
    packets = [
        b"",
        b"\x00",
        b"\x12\x34",
        b"\xff" * 11,
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # loop
        bytes(bad_qd),
        bytes(response_bit),
        good[:-3],
        bytes(range(256)) * 4,
    ]
    replies = []
    for p in packets:
        sock.sendto(p, server.address)
        try:
            data, _ = sock.recvfrom(4096)
            replies.append(data)
        except TimeoutError:
            replies.append(None)
    sock.close()
    for data in replies:
        if data is not None:
            assert data[3] & 0x0F == dns.rcode.FORMERR  # errors only, never an answer
    # garbage over TCP too
    with socket.create_connection(server.address, timeout=2) as s:
        s.sendall(b"\x00\x05hello\x00\x01")
    assert q(server, "mail.nsec.example.", "A").rcode() == dns.rcode.NOERROR
    assert q(server, "mail.nsec.example.", "A", tcp=True).rcode() == dns.rcode.NOERROR


def test_edns_version_and_query_count(server):
    before = server.query_count
    r = q(server, "mail.nsec.example.", "A", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS
    assert server.query_count == before + 1


def test_ra_follows_rd(server):
    r = q(server, "mail.nsec.example.", "A")  # dnspython sets RD
    assert r.flags & dns.flags.RD
    assert r.flags & dns.flags.RA
    msg = dns.message.make_query("mail.nsec.example.", "A")
    msg.flags &= ~dns.flags.RD
    r = dns.query.udp(msg, server.host, port=server.port, timeout=3)
    assert not r.flags & (dns.flags.RD | dns.flags.RA)
    assert r.flags & dns.flags.AA


def test_async_context_manager(signed):
    import asyncio

    import dns.asyncquery

    from dane_monitor.world.dnsserver import DNSServer

    async def main():
        async with DNSServer(signed) as srv:
            assert srv.port > 0
            assert srv.address == ("127.0.0.1", srv.port)
            m = dns.message.make_query("mail.nsec.example.", "A", want_dnssec=True)
            r1 = await dns.asyncquery.udp(m, srv.host, port=srv.port, timeout=3)
            r2 = await dns.asyncquery.tcp(m, srv.host, port=srv.port, timeout=3)
            return r1, r2

    r1, r2 = asyncio.run(asyncio.wait_for(main(), 20))
    assert r1.answer == r2.answer


# ------------------------------------------------------------------------- DNAME (RFC 6672)


def _sig_of(section, rrset):
    return _rrset(section, rrset.name.to_text(), "RRSIG", rrset.rdtype)


@pytest.mark.parametrize(
    ("qname", "rdtype", "target", "target_zone"),
    [
        ("mail.dn.dname.example.", "A", "mail.nsec.example.", "nsec.example."),
        ("_25._tcp.mail.dn.dname.example.", "TLSA", "_25._tcp.mail.nsec.example.", "nsec.example."),
        ("mail.dn.dname3.example.", "A", "mail.nsec3.example.", "nsec3.example."),
        (
            "_25._tcp.mail.dn.dname3.example.",
            "TLSA",
            "_25._tcp.mail.nsec3.example.",
            "nsec3.example.",
        ),
    ],
)
def test_dname_answer_is_the_signed_dname_an_unsigned_cname_and_the_target(
    server, qname, rdtype, target, target_zone
):
    r = q(server, qname, rdtype)
    assert r.rcode() == dns.rcode.NOERROR
    dname = next(rr for rr in r.answer if rr.rdtype == dns.rdatatype.DNAME)
    zone = server.signed.find_zone(dname.name)
    dns.dnssec.validate(dname, _sig_of(r.answer, dname), keys(zone))
    cname = _rrset(r.answer, qname, "CNAME")
    assert cname[0].target == N(target)
    assert cname.ttl == dname.ttl
    assert _sig_of(r.answer, cname) is None  # synthesised: never signed (RFC 6672 5.3.1)
    data = _rrset(r.answer, target, rdtype)
    z = server.signed[target_zone]
    dns.dnssec.validate(data, _sig_of(r.answer, data), keys(z))
    # the order a resolver shows: DNAME, CNAME, then the target's data
    kinds = [rr.rdtype for rr in r.answer if rr.rdtype != dns.rdatatype.RRSIG]
    assert kinds == [dns.rdatatype.DNAME, dns.rdatatype.CNAME, dns.rdatatype.from_text(rdtype)]


def test_dname_ttl_is_the_synthesised_cnames(server):
    r = q(server, "mail.dn.dname.example.", "A")
    assert _rrset(r.answer, "dn.dname.example.", "DNAME").ttl == 120
    assert _rrset(r.answer, "mail.dn.dname.example.", "CNAME").ttl == 120


def test_dname_owner_itself_is_not_redirected(server):
    r = q(server, "dn.dname.example.", "DNAME")
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.DNAME, dns.rdatatype.RRSIG]
    r = q(server, "dn.dname.example.", "A")  # the owner has no A: NODATA, DNAME in the bitmap
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    nsec = _rrset(r.authority, "dn.dname.example.", "NSEC")
    assert dns.rdatatype.DNAME in bitmap_types(nsec[0])
    assert dns.rdatatype.CNAME not in bitmap_types(nsec[0])


def test_cname_question_below_a_dname_is_not_followed(server):
    r = q(server, "mail.dn.dname.example.", "CNAME")
    kinds = [rr.rdtype for rr in r.answer if rr.rdtype != dns.rdatatype.RRSIG]
    assert kinds == [dns.rdatatype.DNAME, dns.rdatatype.CNAME]


def test_dname_to_a_missing_name_is_nxdomain_proven_by_the_target_zone(server):
    r = q(server, "nothere.dn.dname.example.", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert _rrset(r.answer, "nothere.dn.dname.example.", "CNAME")[0].target == N(
        "nothere.nsec.example."
    )
    nsecs = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.NSEC]
    assert nsecs
    assert all(rr.name.is_subdomain(N("nsec.example.")) for rr in nsecs)


def test_dname_substitution_too_long_is_yxdomain(server):
    ok = q(server, "x.long.dname.example.", "A")  # 250 octets: fits, and does not exist
    assert ok.rcode() == dns.rcode.NXDOMAIN
    assert _rrset(ok.answer, "x.long.dname.example.", "CNAME") is not None
    r = q(server, "abcdefghij.long.dname.example.", "A")  # 259 octets
    assert r.rcode() == dns.rcode.YXDOMAIN
    assert _rrset(r.answer, "long.dname.example.", "DNAME") is not None
    assert _rrset(r.answer, "abcdefghij.long.dname.example.", "CNAME") is None


def test_names_below_a_dname_are_not_in_the_denial_chains(signed):
    z = signed["dname.example."]
    assert N("dn.dname.example.") in z.nsec_names
    assert not [n for n in z.nsec_names if n.is_subdomain(N("dn.dname.example.")) and len(n) > 4]
    assert dns.rdatatype.DNAME in bitmap_types(z.rrset("dn", "NSEC")[0])
    z3 = signed["dname3.example."]
    h = z3.nsec3_match(N("dn.dname3.example."))
    assert h is not None
    assert bitmap_types(z3.nsec3_rrsets[h][0][0]) == {dns.rdatatype.DNAME, dns.rdatatype.RRSIG}
    dns.dnssec.validate(z3.rrset("dn", "DNAME"), z3.rrsig("dn", "DNAME"), keys(z3))


@pytest.mark.parametrize(
    ("name", "rdtype", "rdata", "message"),
    [
        ("x.dn", "A", "127.0.0.1", "below the DNAME"),
        ("dn", "CNAME", "mail", "both a CNAME and a DNAME"),
        ("@", "DNAME", "other.example.", "apex"),
    ],
)
def test_the_signer_refuses_data_a_dname_would_hide(name, rdtype, rdata, message):
    h = Hierarchy("example.")
    z = h.zone("d.example.")
    if name != "@":
        z.add("dn", "DNAME", "other.example.")
    z.add(name, rdtype, rdata)
    with pytest.raises(ValueError, match=message):
        h.sign()
