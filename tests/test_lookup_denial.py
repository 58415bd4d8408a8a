"""NSEC and NSEC3 proofs, checked piece by piece (the end-to-end checks are against delv)."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from rfc5155 import APPENDIX_A, ITERATIONS, SALT

from dane_monitor.lookup.denial import Denied, b32hex, nsec3_hash, nsec3_proof, nsec_proof

N = dns.name.from_text
ZONE = N("example.")


@pytest.mark.parametrize(
    ("name", "hashed"),
    # hashed in canonical (lower) case, whatever case the name comes in
    [*APPENDIX_A, ("XX.EXAMPLE", "t644ebqk9bibcna874givr6joj62mlhv")],
)
def test_nsec3_hash_rfc5155_appendix_a(name, hashed):
    assert b32hex(nsec3_hash(N(name), SALT, ITERATIONS)) == hashed


@pytest.mark.parametrize(
    ("name", "salt", "iterations"),
    [
        (".", b"", 0),  # the root, no salt, the single hash RFC 9276 recommends
        ("example.", b"", 0),
        ("Mail.Example.", b"\x00", 1),  # case folded; a zero byte of salt still counts
        ("f1.keytrap.example.", bytes(range(255)), 50),  # the longest salt, keytrap's count
        ("*.w.example.", b"\xaa\xbb\xcc\xdd", 150),  # RFC 5155's old upper bound for 1024-bit
    ],
)
def test_nsec3_hash_edges_agree_with_dnspython(name: str, salt: bytes, iterations: int) -> None:
    """The validator's own hash (the world uses dnspython's, so neither checks itself)."""
    expected = dns.dnssec.nsec3_hash(N(name), salt, iterations, 1).lower()
    assert b32hex(nsec3_hash(N(name), salt, iterations)) == expected
    assert len(nsec3_hash(N(name), salt, iterations)) == 20


def nsec(owner: str, nxt: str, types: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, 300, "IN", "NSEC", f"{nxt} {types}")


CHAIN = [
    nsec("example.", "a.example.", "SOA NS RRSIG NSEC DNSKEY"),
    nsec("a.example.", "deleg.example.", "A RRSIG NSEC"),
    nsec("deleg.example.", "insecure.example.", "NS DS RRSIG NSEC"),
    nsec("insecure.example.", "x.y.example.", "NS RRSIG NSEC"),
    nsec("x.y.example.", "example.", "A RRSIG NSEC"),  # last: wraps to the apex
]


@pytest.mark.parametrize(
    ("qname", "qtype", "result"),
    [
        ("a.example.", "TXT", Denied.NODATA),
        ("a.example.", "A", Denied.NONE),  # the type exists: no denial
        ("b.example.", "A", Denied.NXDOMAIN),
        ("zzz.example.", "A", Denied.NXDOMAIN),  # covered by the wrap-around NSEC
        ("y.example.", "A", Denied.NODATA),  # empty non-terminal above x.y.example.
        ("insecure.example.", "DS", Denied.INSECURE_DELEGATION),
        ("deleg.example.", "DS", Denied.NONE),  # DS exists
        ("a.example.", "DS", Denied.NODATA),  # not a cut, no DS
        ("www.insecure.example.", "A", Denied.NONE),  # an NSEC at a cut cannot deny below it
    ],
)
def test_nsec_proofs(qname, qtype, result):
    proof = nsec_proof(N(qname), dns.rdatatype.from_text(qtype), CHAIN, ZONE)
    assert proof.result == result, proof.why


def test_nxdomain_needs_the_wildcard_denial_too():
    only_name = [CHAIN[1]]  # covers b.example. but not *.example.
    assert nsec_proof(N("b.example."), 1, only_name, ZONE).result == Denied.NONE


def test_nsec3_rejects_mixed_parameters_and_caps_iterations():
    def n3(owner_hash: str, salt: str, iterations: int) -> dns.rrset.RRset:
        return dns.rrset.from_text(
            f"{owner_hash}.example.", 300, "IN", "NSEC3",
            f"1 0 {iterations} {salt} 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A",
        )  # fmt: skip

    mixed = [n3("00000000000000000000000000000000", "aa", 1), n3("1" * 32, "bb", 1)]
    assert nsec3_proof(N("x.example."), 1, mixed, ZONE).result == Denied.NONE
    heavy = nsec3_proof(N("x.example."), 1, [n3("0" * 32, "-", 500)], ZONE)
    assert heavy.too_many_iterations


def test_a_wildcard_answers_only_at_the_closest_encloser():
    """RFC 4035 §5.3.4: ``*.example.`` cannot answer for ``_25._tcp.mail.example.`` when
    ``mail.example.`` exists (the NSEC at ``mail`` covers the name, and shows the encloser)."""
    from dane_monitor.lookup.denial import wildcard_nsec_ok

    chain = [nsec("*.example.", "mail.example.", "TXT RRSIG NSEC"),
             nsec("mail.example.", "zzz.example.", "A RRSIG NSEC")]  # fmt: skip
    assert not wildcard_nsec_ok(N("_25._tcp.mail.example."), N("*.example."), chain, ZONE)
    assert wildcard_nsec_ok(N("other.example."), N("*.example."), chain, ZONE)


def test_a_wildcard_that_is_an_empty_non_terminal_makes_nodata_not_nxdomain():
    """RFC 4592 §2.2.2: ``sub.*.w.example.`` exists, so ``*.w.example.`` does too (empty):
    it matches ``x.w.example.`` with no data."""
    chain = [nsec("w.example.", "sub.*.w.example.", "A RRSIG NSEC"),
             nsec("sub.*.w.example.", "zzz.example.", "A RRSIG NSEC")]  # fmt: skip
    proof = nsec_proof(N("x.w.example."), dns.rdatatype.A, chain, ZONE)
    assert proof.result == Denied.NODATA, proof.why
