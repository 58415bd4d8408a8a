"""The validator against forged answers: each class of issue 11, with the rule that decides.

The world's zones are signed as usual; :class:`Forger` answers from the world's Responder in
process and lets a test rewrite one answer the way an attacker on the path (or a broken
server) would. Expected outcomes name the RFC section that decides them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dane_monitor.lookup import answer as A
from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.denial import bitmap_types
from dane_monitor.lookup.stub import Reply
from dane_monitor.lookup.validator import (
    MAX_VERIFICATIONS_PER_KEYS,
    MAX_VERIFICATIONS_PER_LOOKUP,
    Validator,
)
from dane_monitor.world.dnsserver import Responder
from dane_monitor.world.zones import NSEC3, Fault, Hierarchy, KeyTrap, SignedHierarchy

N = dns.name.from_text
TLSA = "3 1 1 " + "0f" * 32
Rewrite = Callable[[dns.name.Name, int, dns.message.Message], dns.message.Message | None]


class Forger:
    """The StubClient interface over the world's Responder; ``rewrite`` may change an answer."""

    def __init__(self, signed: SignedHierarchy, rewrite: Rewrite | None = None) -> None:
        self.responder = Responder(signed)
        self.rewrite = rewrite
        self.questions: list[tuple[dns.name.Name, int]] = []

    async def query(self, name, rdtype, *, deadline=None) -> Reply:
        qname = N(name) if isinstance(name, str) else name
        qtype = int(dns.rdatatype.RdataType.make(rdtype))
        self.questions.append((qname, qtype))
        q = dns.message.make_query(qname, qtype, want_dnssec=True)
        q.flags |= dns.flags.CD
        wire = self.responder.handle_wire(q.to_wire(), udp=False)  # as over TCP
        assert wire is not None
        r = dns.message.from_wire(wire)
        if self.rewrite is not None:
            r = self.rewrite(qname, qtype, r) or r
            r = dns.message.from_wire(r.to_wire(max_size=65535, want_shuffle=False))
        return Reply(r)


def lookup_spending(
    signed: SignedHierarchy,
    *questions: tuple[str, str],
    rewrite: Rewrite | None = None,
    anchors: str | None = None,
) -> list[tuple[Answer, int]]:
    """Answers to ``questions``, asked in order of one validator (so zone keys are shared),
    each with the signature verifications the validator spent on it."""

    async def run() -> list[tuple[Answer, int]]:
        v = Validator(Forger(signed, rewrite), parse(anchors or signed.trust_anchor()))  # type: ignore[arg-type]
        out = []
        for name, rdtype in questions:
            before = v.verifications
            answer = await v.lookup(name, rdtype)
            out.append((answer, v.verifications - before))
        return out

    return asyncio.run(run())


def lookup(
    signed: SignedHierarchy,
    *questions: tuple[str, str],
    rewrite: Rewrite | None = None,
    anchors: str | None = None,
) -> list[Answer]:
    """Answers to ``questions``, asked in order of one validator (so zone keys are shared)."""
    return [a for a, _ in lookup_spending(signed, *questions, rewrite=rewrite, anchors=anchors)]


def mail_zone(h: Hierarchy, origin: str, **kw):
    z = h.zone(origin, **kw)
    z.add("@", "MX", "10 mail")
    z.add("mail", "A", "127.0.0.25")
    z.add("_25._tcp.mail", "TLSA", TLSA)
    return z


def sig_of(msg: dns.message.Message, section: str, name, rdtype: int) -> dns.rrset.RRset:
    for r in getattr(msg, section):
        if r.name == name and r.rdtype == dns.rdatatype.RRSIG and r.covers == rdtype:
            return r
    raise AssertionError(f"no RRSIG over {name} {rdtype} in {section}")


def renamed(rrset: dns.rrset.RRset, name: dns.name.Name) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rrset.ttl, list(rrset))


# -- 1. a wildcard-expanded NSEC never proves a denial (RFC 4035 §5.3.4, §5.4) -----------------


@pytest.fixture(scope="module")
def wild() -> SignedHierarchy:
    h = Hierarchy(".")
    h.zone("example.")
    z = mail_zone(h, "wild.example.")
    z.add("*", "TXT", "anything")
    return h.sign()


def test_a_wildcard_expanded_nsec_cannot_deny_a_tlsa_record(wild):
    """CVE-2017-15105: the NSEC at ``*.wild.example.``, replayed as if the TLSA name owned it
    (its RRSIG still verifies: Labels says 'from a wildcard'), claims the name has no TLSA."""
    zone = wild.zone("wild.example.")
    star = N("*.wild.example.")
    nsec, nsec_sig = zone.rrset(star, "NSEC"), zone.rrsig(star, "NSEC")
    assert nsec is not None and nsec_sig is not None
    qname = N("_25._tcp.mail.wild.example.")

    def forge(name, rdtype, r):
        if (name, rdtype) != (qname, dns.rdatatype.TLSA):
            return None
        soa = Responder(wild).respond(
            dns.message.make_query("wild.example.", "SOA", want_dnssec=True)
        )
        r.answer = []
        r.authority = [*soa.answer, renamed(nsec, qname), renamed(nsec_sig, qname)]
        return r

    [honest] = lookup(wild, (qname.to_text(), "TLSA"))
    [forged] = lookup(wild, (qname.to_text(), "TLSA"), rewrite=forge)
    assert (honest.status, honest.kind) == (Status.SECURE, Kind.POSITIVE)
    assert forged.status == Status.BOGUS, str(forged)
    assert forged.reason == A.BAD_RRSIG_LABELS


def test_the_wildcard_answer_itself_still_validates(wild):
    [answer] = lookup(wild, ("anything.wild.example.", "TXT"))
    assert (answer.status, answer.kind) == (Status.SECURE, Kind.POSITIVE), str(answer)


# -- 2. opt-out proves no more than an insecure delegation (RFC 5155 §9.2) --------------------


@pytest.fixture(scope="module")
def optout() -> SignedHierarchy:
    h = Hierarchy(".")
    h.zone("example.")
    mail_zone(h, "oo.example.", denial=NSEC3(opt_out=True))
    return h.sign()


@pytest.mark.parametrize("rcode", [dns.rcode.NXDOMAIN, dns.rcode.NOERROR])
def test_an_opt_out_span_over_the_next_closer_name_is_insecure(optout, rcode):
    def as_rcode(name, rdtype, r):
        if name == N("_25._tcp.nothere.oo.example."):
            r.set_rcode(rcode)
        return r

    [answer] = lookup(optout, ("_25._tcp.nothere.oo.example.", "TLSA"), rewrite=as_rcode)
    assert answer.status == Status.INSECURE, str(answer)
    assert answer.reason == A.NSEC3_OPT_OUT


def test_names_that_exist_in_an_opt_out_zone_are_still_proven(optout):
    tlsa, nodata = lookup(
        optout, ("_25._tcp.mail.oo.example.", "TLSA"), ("mail.oo.example.", "TXT")
    )
    assert (tlsa.status, tlsa.kind) == (Status.SECURE, Kind.POSITIVE)
    assert (nodata.status, nodata.kind) == (Status.SECURE, Kind.NODATA)


# -- 3, 4, 6: signer, Labels, anchors (RFC 4035 §5.3.1, §5) ------------------------------------


TLD = Hierarchy(".")


@pytest.fixture(scope="module")
def tld() -> SignedHierarchy:
    """A private root, a TLD ``example.`` and a delegated child with data; the hierarchy
    (with the private keys an attacker does not have, for replaying stale data) is TLD."""
    TLD.zone("example.")
    mail_zone(TLD, "child.example.")
    mail_zone(TLD, "other.example.")
    return TLD.sign()


def tld_anchor(signed: SignedHierarchy) -> str:
    ds = "\n".join(f"example. 3600 IN DS {d}" for d in _tld_ds(signed))
    return ds + "\n"


def _tld_ds(signed: SignedHierarchy) -> list:
    root = signed.zone(".")
    ds = root.rrset("example.", "DS")
    assert ds is not None
    return list(ds)


def rewrite_sig(qname: str, qtype: str, **fields) -> Rewrite:
    def forge(name, rdtype, r):
        if (name, rdtype) != (N(qname), dns.rdatatype.from_text(qtype)):
            return None
        for i, rrset in enumerate(r.answer):
            if rrset.rdtype == dns.rdatatype.RRSIG:
                sigs = [sig.replace(**fields) for sig in rrset]
                r.answer[i] = dns.rrset.from_rdata_list(rrset.name, rrset.ttl, sigs)
        return r

    return forge


def test_a_signer_above_the_trust_anchor_is_bogus_not_insecure(tld):
    """With the anchor at the TLD, an RRSIG claiming the root signed the TLSA leads to a zone
    with no anchor: that must not read as 'insecure' (which turns a DANE failure off)."""
    anchor = tld_anchor(tld)
    q = ("_25._tcp.mail.child.example.", "TLSA")
    [honest] = lookup(tld, q, anchors=anchor)
    [forged] = lookup(tld, q, anchors=anchor, rewrite=rewrite_sig(*q, signer=dns.name.root))
    assert honest.status == Status.SECURE, str(honest)
    assert forged.status == Status.BOGUS, str(forged)
    assert forged.reason == A.BAD_SIGNER


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (6, A.BAD_RRSIG_LABELS),  # more labels than the owner has
        (1, A.BAD_RRSIG_LABELS),  # a wildcard source '*.example.' above the signer's zone
    ],
)
def test_the_labels_field_is_checked(tld, labels, reason):
    q = ("_25._tcp.mail.child.example.", "TLSA")
    [forged] = lookup(tld, q, rewrite=rewrite_sig(*q, labels=labels))
    assert (forged.status, forged.reason) == (Status.BOGUS, reason), str(forged)


def test_a_parents_signature_over_a_childs_name_is_bogus(tld):
    """RFC 4035 §5.3.1: the signer is the apex of the zone that holds the data. The parent
    ``example.`` signs an A record at ``mail.child.example.`` (stale data from before the
    delegation, replayed): with the child zone known, that is bogus."""
    target = N("mail.child.example.")
    forged_a = dns.rrset.from_text(target, 300, "IN", "A", "192.0.2.66")
    sigs = signed_by(forged_a, "example.")

    def forge(name, rdtype, r):
        if (name, rdtype) == (target, dns.rdatatype.A):
            r.answer = [forged_a, sigs]
        return r

    mx, a = lookup(tld, ("child.example.", "MX"), (target.to_text(), "A"), rewrite=forge)
    assert mx.status == Status.SECURE
    assert (a.status, a.reason) == (Status.BOGUS, A.BAD_SIGNER), str(a)


def signed_by(rrset: dns.rrset.RRset, origin: str) -> dns.rrset.RRset:
    """The RRSIG that zone ``origin`` of TLD would make over ``rrset`` (its private key)."""
    zsk = TLD[origin].zsk
    assert zsk is not None
    sig = dns.dnssec.sign(rrset, zsk.private, N(origin), zsk.dnskey, lifetime=3600)
    return dns.rrset.from_rdata_list(rrset.name, rrset.ttl, [sig])


def test_a_trust_anchor_takes_precedence_over_its_parent():
    """RFC 4035 §5: for names at or below an anchor, what the unanchored parent says about the
    anchored zone (here: a DS that matches nothing) is irrelevant."""
    h = Hierarchy(".")
    z = h.zone("example.")
    z.fault(Fault.DS_MISMATCH)
    mail_zone(h, "child.example.")
    signed = h.sign()
    q = ("_25._tcp.mail.child.example.", "TLSA")
    [from_root] = lookup(signed, q)
    assert (from_root.status, from_root.reason) == (Status.BOGUS, A.NO_MATCHING_DS)
    own = signed.zone("example.").dnskey_rrset
    assert own is not None
    ksk = next(k for k in own if k.flags == 257)
    tld_ds = dns.dnssec.make_ds("example.", ksk, "SHA256")
    both = signed.trust_anchor() + f"example. 3600 IN DS {tld_ds}\n"
    only = f"example. 3600 IN DS {tld_ds}\n"
    for anchors in (both, only):
        [answer] = lookup(signed, q, anchors=anchors)
        assert answer.status == Status.SECURE, (anchors, str(answer))


# -- 5. DNAME (RFC 6672) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dname() -> SignedHierarchy:
    h = Hierarchy(".")
    h.zone("example.")
    z = mail_zone(h, "target.example.", denial=NSEC3())
    z.add("alias", "CNAME", "mail")
    z = h.zone("source.example.")
    z.add("dn", "DNAME", "target.example.")
    z.add("cn", "CNAME", "x.dn")
    return h.sign()


def test_a_signed_dname_with_its_unsigned_cname_validates(dname):
    a, tlsa, chain = lookup(
        dname,
        ("mail.dn.source.example.", "A"),
        ("_25._tcp.mail.dn.source.example.", "TLSA"),
        ("alias.dn.source.example.", "A"),
    )
    assert (a.status, a.kind) == (Status.SECURE, Kind.POSITIVE), str(a)
    assert a.canonical_name == N("mail.target.example.")
    assert a.cnames[0].dname == N("dn.source.example.")
    assert (tlsa.status, tlsa.kind) == (Status.SECURE, Kind.POSITIVE), str(tlsa)
    # DNAME, then a CNAME in the target zone
    assert (chain.status, chain.canonical_name) == (Status.SECURE, N("mail.target.example."))
    assert [s.dname is not None for s in chain.cnames] == [True, False]


def test_a_cname_then_a_dname(dname):
    [answer] = lookup(dname, ("cn.source.example.", "TXT"))
    # cn -> x.dn.source.example. -(DNAME)-> x.target.example., which does not exist
    assert (answer.status, answer.kind) == (Status.SECURE, Kind.NXDOMAIN), str(answer)
    assert [s.dname is not None for s in answer.cnames] == [False, True]


def test_a_synthesised_cname_that_does_not_follow_from_the_dname_is_ignored(dname):
    """The synthesised CNAME is unsigned: a forged one (to a real, signed name elsewhere) is
    neither followed nor a reason for 'bogus'; the DNAME's own target is (RFC 6672 §3.4, as
    BIND and Unbound do)."""
    qname = N("mail.dn.source.example.")

    def forge(name, rdtype, r):
        if name == qname:
            for i, rrset in enumerate(r.answer):
                if rrset.name == qname and rrset.rdtype == dns.rdatatype.CNAME:
                    r.answer[i] = dns.rrset.from_text(
                        qname, 300, "IN", "CNAME", "cn.source.example."
                    )
        return r

    [answer] = lookup(dname, (qname.to_text(), "A"), rewrite=forge)
    assert (answer.status, answer.kind) == (Status.SECURE, Kind.POSITIVE), str(answer)
    assert answer.canonical_name == N("mail.target.example.")


def test_an_nsec_at_a_dname_cannot_deny_names_below_it(dname):
    """Strip the DNAME and claim NXDOMAIN with the NSEC that the DNAME owner has: names below a
    DNAME are redirected, not absent (RFC 6672 §5.3.2)."""
    src = dname.zone("source.example.")
    owner = N("dn.source.example.")
    nsec, nsec_sig = src.rrset(owner, "NSEC"), src.rrsig(owner, "NSEC")
    apex = src.rrset("source.example.", "NSEC"), src.rrsig("source.example.", "NSEC")
    soa, soa_sig = src.rrset("source.example.", "SOA"), src.rrsig("source.example.", "SOA")
    qname = N("mail.dn.source.example.")

    def forge(name, rdtype, r):
        if name == qname:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.answer = []
            r.authority = [soa, soa_sig, nsec, nsec_sig, *apex]
        return r

    [answer] = lookup(dname, (qname.to_text(), "A"), rewrite=forge)
    assert answer.status == Status.BOGUS, str(answer)


# -- 7. malformed answers are a status, never an exception ------------------------------------


def test_a_ds_question_answered_with_a_cname(tld):
    """The DS of ``child.example.`` answered with a CNAME: the child is then no delegation, so
    its signatures have no chain (bogus), and nothing raises."""
    child = N("child.example.")
    cname = dns.rrset.from_text(child, 300, "IN", "CNAME", "other.example.")
    sigs = signed_by(cname, "example.")

    def forge(name, rdtype, r):
        if (name, rdtype) == (child, dns.rdatatype.DS):
            r.answer = [cname, sigs]
            r.authority = []
        return r

    tlsa, ds = lookup(
        tld, ("_25._tcp.mail.child.example.", "TLSA"), ("child.example.", "DS"), rewrite=forge
    )
    assert tlsa.status == Status.BOGUS, str(tlsa)
    assert (ds.status, ds.kind) == (Status.SECURE, Kind.NODATA), str(ds)


def test_nsec3_records_from_another_zone_prove_nothing():
    h = Hierarchy(".")
    h.zone("example.")
    mail_zone(h, "a.example.", denial=NSEC3())
    mail_zone(h, "b.example.", denial=NSEC3())
    signed = h.sign()
    qname = N("nothere.a.example.")
    other = Responder(signed).respond(
        dns.message.make_query("nothere.b.example.", "A", want_dnssec=True)
    )
    foreign = [r for r in other.authority if r.rdtype != dns.rdatatype.SOA and r.covers != 6]

    def forge(name, rdtype, r):
        if name == qname:
            r.authority = [x for x in r.authority if x.covers in (0, 6) and x.rdtype in (6, 46)]
            r.authority += foreign
        return r

    [answer] = lookup(signed, (qname.to_text(), "A"), rewrite=forge)
    assert answer.status == Status.BOGUS, str(answer)


def test_a_negative_answer_for_the_apex_without_its_nsec3():
    h = Hierarchy(".")
    h.zone("example.")
    mail_zone(h, "a.example.", denial=NSEC3())
    signed = h.sign()
    nx = Responder(signed).respond(
        dns.message.make_query("nothere.a.example.", "A", want_dnssec=True)
    )

    def has_soa(rrset) -> bool:
        return any(dns.rdatatype.SOA in bitmap_types(rd) for rd in rrset)

    # The closest-encloser proof of another name, without the NSEC3 that matches the apex.
    others = [r for r in nx.authority if not (r.rdtype == dns.rdatatype.NSEC3 and has_soa(r))]

    def forge(name, rdtype, r):
        if name == N("a.example.") and rdtype == dns.rdatatype.TLSA:
            r.authority = others
        return r

    [answer] = lookup(signed, ("a.example.", "TLSA"), rewrite=forge)
    assert answer.status == Status.BOGUS, str(answer)


@pytest.mark.parametrize("qtype", ["ANY", "RRSIG", "AXFR"])
def test_questions_that_name_no_rrset_are_refused_with_a_reason(tld, qtype):
    [answer] = lookup(tld, ("mail.child.example.", qtype))
    assert (answer.status, answer.reason) == (Status.INDETERMINATE, A.UNSUPPORTED_QTYPE)
    assert "ask for each type" in answer.detail


# -- 8. bounded work (KeyTrap, CVE-2023-50387 / CVE-2023-50868) ---------------------------------


def test_keytrap_ends_bogus_within_the_budget():
    h = Hierarchy(".")
    h.zone("example.")
    trap = KeyTrap(zsk_keys=60, rrsigs=60, dnskey_rrsigs=0, types=("TLSA",))
    mail_zone(h, "trap.example.", algorithm=dns.dnssec.Algorithm.RSASHA256, keytrap=trap)
    signed = h.sign()

    (mx, _), (tlsa, spent) = lookup_spending(
        signed, ("trap.example.", "MX"), ("_25._tcp.mail.trap.example.", "TLSA")
    )
    # Without caps, 61 keys x 61 signatures: 3,721 RSA verifications for the TLSA RRset. The
    # real ZSK comes last, so the MX RRset (one good signature) is out of reach too.
    assert (mx.status, mx.reason) == (Status.BOGUS, A.VALIDATION_BUDGET), str(mx)
    assert (tlsa.status, tlsa.reason) == (Status.BOGUS, A.VALIDATION_BUDGET), str(tlsa)
    assert spent <= MAX_VERIFICATIONS_PER_LOOKUP


def test_a_keytrap_dnskey_rrset_ends_bogus_within_the_budget():
    h = Hierarchy(".")
    h.zone("example.")
    trap = KeyTrap(zsk_keys=0, ksk_keys=60, rrsigs=0, dnskey_rrsigs=60, types=())
    mail_zone(h, "trap.example.", algorithm=dns.dnssec.Algorithm.RSASHA256, keytrap=trap)
    signed = h.sign()

    [(a, spent)] = lookup_spending(signed, ("mail.trap.example.", "A"))
    assert (a.status, a.reason) == (Status.BOGUS, A.VALIDATION_BUDGET), str(a)
    # root, example. and trap.example. key fetches, plus the answer
    assert spent <= 3 * MAX_VERIFICATIONS_PER_KEYS + MAX_VERIFICATIONS_PER_LOOKUP


def test_an_nsec3_flood_ends_bogus_before_any_hashing():
    """CVE-2023-50868: a negative answer stuffed with NSEC3 records at the iteration cap makes
    a naive closest-encloser walk hash and verify thousands of times; a denial never needs
    more than three."""
    h = Hierarchy(".")
    h.zone("example.")
    mail_zone(h, "flood.example.", denial=NSEC3(iterations=50), nsec3_flood=120)
    signed = h.sign()

    (mx, _), (nx, spent) = lookup_spending(
        signed, ("flood.example.", "MX"), ("_25._tcp.nothere.flood.example.", "TLSA")
    )
    assert mx.status == Status.SECURE, str(mx)
    assert (nx.status, nx.reason) == (Status.BOGUS, A.VALIDATION_BUDGET), str(nx)
    assert spent == 0


def test_a_signed_dname_that_makes_the_name_too_long_is_a_secure_yxdomain():
    """RFC 6672 §2.2: YXDOMAIN comes with the DNAME, which validates; the name cannot exist."""
    h = Hierarchy(".")
    h.zone("example.")
    mail_zone(h, "target.example.")
    z = h.zone("d.example.")
    z.add("long", "DNAME", ".".join(["a" * 60, "b" * 60, "c" * 60, "d" * 50, "target.example."]))
    signed = h.sign()
    [answer] = lookup(signed, ("abcdefghijkl.long.d.example.", "A"))
    assert (answer.status, answer.kind) == (Status.SECURE, Kind.NXDOMAIN), str(answer)
    assert "YXDOMAIN" in answer.detail


def test_the_ds_of_an_anchored_zone_is_its_unanchored_parents_data(tld):
    """With the anchor at ``example.``, its DS RRset lives in the root zone, which no anchor
    covers: insecure, not bogus (the anchor rule is about data at or below the anchor)."""
    [ds] = lookup(tld, ("example.", "DS"), anchors=tld_anchor(tld))
    assert (ds.status, ds.reason) == (Status.INSECURE, A.NO_TRUST_ANCHOR), str(ds)


def test_a_dname_from_above_the_trust_anchor_cannot_redirect_names_below_it(dname):
    """Found by the fuzzer: a bit flip turned the DNAME's owner into the root. With the anchor
    at ``example.``, the root's data is insecure, and an unsigned DNAME there would turn every
    name below the anchor insecure. The anchored zone exists, so no DNAME above it applies."""
    anchor = tld_anchor(dname)
    qname = N("mail.dn.source.example.")

    def forge(name, rdtype, r):
        if name == qname:
            r.answer = [dns.rrset.from_text(".", 300, "IN", "DNAME", "target.example.")]
        return r

    [honest] = lookup(dname, (qname.to_text(), "A"), anchors=anchor)
    [forged] = lookup(dname, (qname.to_text(), "A"), anchors=anchor, rewrite=forge)
    assert honest.status == Status.SECURE, str(honest)
    assert (forged.status, forged.reason) == (Status.BOGUS, A.BAD_DNAME), str(forged)


def test_a_ds_question_answered_by_an_alias_the_child_signed_never_hangs(tld):
    """Found by the fuzzer: a DS question answered with a CNAME that the child zone itself
    signed made the child's key fetch wait for itself, forever. A DS answer comes from the
    parent, so the child's signature is bogus (the parent's: the test above)."""
    child = N("child.example.")
    cname = dns.rrset.from_text(child, 300, "IN", "CNAME", "other.example.")
    sigs = signed_by(cname, "child.example.")

    def forge(name, rdtype, r):
        if (name, rdtype) == (child, dns.rdatatype.DS):
            r.answer = [cname, sigs]
            r.authority = []
        return r

    async def run():
        v = Validator(Forger(tld, forge), parse(tld.trust_anchor()))  # type: ignore[arg-type]
        return await asyncio.wait_for(v.lookup("_25._tcp.mail.child.example.", "TLSA"), 30)

    answer = asyncio.run(run())
    assert answer.status == Status.BOGUS, str(answer)


def test_a_lookup_that_runs_out_of_budget_does_not_poison_the_names_it_passed(monkeypatch):
    """The per-lookup budget is about the whole chain: a name reached as it ran out is not
    cached as bogus for the next lookup that asks for that name alone."""
    from dane_monitor.lookup import validator as V

    h = Hierarchy(".")
    h.zone("example.")
    z = mail_zone(h, "chain.example.")
    for i in range(8):
        z.add(f"c{i}", "CNAME", f"c{i + 1}")
    z.add("c8", "A", "127.0.0.8")
    signed = h.sign()

    async def run():
        v = Validator(Forger(signed), parse(signed.trust_anchor()))  # type: ignore[arg-type]
        await v.lookup("chain.example.", "MX")  # warm keys: the chain costs one check a step
        with monkeypatch.context() as m:
            m.setattr(V, "MAX_VERIFICATIONS_PER_LOOKUP", 4)
            long = await v.lookup("c0.chain.example.", "A")
        return long, [await v.lookup(f"c{i}.chain.example.", "A") for i in range(9)]

    long, alone = asyncio.run(run())
    assert (long.status, long.reason) == (Status.BOGUS, A.VALIDATION_BUDGET), str(long)
    assert [a.status for a in alone] == [Status.SECURE] * 9, [str(a) for a in alone]


def test_a_crowded_key_tag_gives_the_same_verdict_in_any_rrset_order():
    """Found by the fuzzer: with more keys per tag than the cap tries, the verdict depended on
    where the real ZSK stood in the DNSKEY RRset, whose order is not signed and which servers
    rotate. An exporter would flap between secure and bogus on such a zone."""
    h = Hierarchy(".")
    h.zone("example.")
    trap = KeyTrap(zsk_keys=2, rrsigs=0, dnskey_rrsigs=0, types=())
    mail_zone(h, "trap.example.", algorithm=dns.dnssec.Algorithm.RSASHA256, keytrap=trap)
    signed = h.sign()
    zsk = signed.zone("trap.example.").zsk
    apex = N("trap.example.")

    def order(zsk_first: bool) -> Rewrite:
        def forge(name, rdtype, r):
            if (name, rdtype) == (apex, dns.rdatatype.DNSKEY):
                keys = r.answer[0]
                ranked = sorted(keys, key=lambda k: (k.flags == 257, zsk_first != (k == zsk)))
                r.answer[0] = dns.rrset.from_rdata_list(apex, keys.ttl, ranked)
            return r

        return forge

    first, last = (
        lookup(signed, ("mail.trap.example.", "A"), rewrite=order(z))[0] for z in (True, False)
    )
    assert (first.status, first.reason) == (last.status, last.reason), (str(first), str(last))


def test_a_key_fetch_that_would_wait_for_itself_ends_bogus(tld, monkeypatch):
    """The last line of defence against the hang the fuzzer found: whatever path leads a
    zone's key fetch back to that same zone's keys ends bogus at once (today the DS rules
    stop every known path earlier, so the path is forced here)."""
    original = Validator._fetch_keys

    async def circular(self, zone, deadline, budget):
        if zone == N("child.example."):
            return await self._zone_keys(zone, deadline)
        return await original(self, zone, deadline, budget)

    monkeypatch.setattr(Validator, "_fetch_keys", circular)

    async def run():
        v = Validator(Forger(tld), parse(tld.trust_anchor()))  # type: ignore[arg-type]
        return await asyncio.wait_for(v.lookup("_25._tcp.mail.child.example.", "TLSA"), 30)

    answer = asyncio.run(run())
    assert (answer.status, answer.reason) == (Status.BOGUS, A.BAD_SIGNER), str(answer)
    assert "vouch for themselves" in answer.detail
