"""Generate the conformance corpus (``cases/<group>/<id>.json``) from the project's own world.

    python3 tests/conformance/generate.py            # rewrite every generated case
    python3 tests/conformance/generate.py -k keytrap # only the cases whose id contains it

One signed hierarchy (private root → ``example.`` → one zone per situation, signatures valid
from 2024-01-01 to 2088-01-01, so that delv, which cannot run at the case's time, sees the
same thing now and for decades) is served by the world's ``Responder`` behind a recording
proxy.  For each case in ``CASES`` the proxy applies the case's mutation (a crafted response,
re-signed with the zones' private keys where the attack needs valid signatures), our
validator and BIND's delv each answer the question through it, and every response either
asked for is frozen into the case with the status the RFCs decide.  Keys are random on each
run; the structure of every case is not.  ``cases/servers/`` (answers of real servers,
``record_servers.py``) is left alone.

It prints one line per case: id, expected status, ours, delv's verdict and delv's expected
one, and a summary of the disagreements (the KNOWN_FAILING candidates of
``test_conformance.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent)]

import dns.dnssec  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdata  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rdtypes.ANY.NSEC3  # noqa: E402
import dns.rrset  # noqa: E402
from corpus import CASES as CASES_DIR  # noqa: E402
from corpus import Case, delv_verdict, describe, load_case, validate  # noqa: E402
from dns.dnssectypes import Algorithm  # noqa: E402
from dns.rdatatype import RdataType  # noqa: E402

from dane_monitor.lookup.anchors import parse as parse_anchors  # noqa: E402
from dane_monitor.lookup.stub import Server  # noqa: E402
from dane_monitor.world.background import BackgroundLoop  # noqa: E402
from dane_monitor.world.dnsserver import DNSServer, Responder  # noqa: E402
from dane_monitor.world.zones import (  # noqa: E402
    NSEC,
    NSEC3,
    Fault,
    Hierarchy,
    KeyPair,
    SignedHierarchy,
    Zone,
)

T = 1767225600  # 2026-01-01T00:00:00Z: the validation time of every generated case
INCEPTION = 1704067200  # 2024-01-01
EXPIRATION = 3723753600  # 2088-01-01 (less than 2**31 s after INCEPTION: RFC 4034 §3.1.5)
SOURCE = "generated: tests/conformance/generate.py"
TLSA = "3 1 1 " + "0f" * 32
GROUPS = ("rfc4035", "rfc4592", "rfc5155", "rfc6672", "rfc6840", "rfc8624", "rfc9276", "attacks")

DELV_OF = {
    ("secure", "positive"): "valid",
    ("secure", "nxdomain"): "nxdomain",
    ("secure", "nodata"): "nodata",
    ("insecure", "positive"): "unsigned",
    ("insecure", "nxdomain"): "unsigned-nxdomain",
    ("insecure", "nodata"): "unsigned-nodata",
}

# --------------------------------------------------------------------------- the world


def _standard(z: Zone) -> None:
    z.add("@", "MX", "10 mail")
    z.add("mail", "A", "127.0.0.25")
    z.add("mail", "AAAA", "::1")
    z.add("_25._tcp.mail", "TLSA", TLSA)
    z.add("ok", "A", "127.0.0.26")


def _zone(h: Hierarchy, origin: str, **kw) -> Zone:
    kw.setdefault("sig_lifetime", EXPIRATION - T)
    kw.setdefault("sig_inception_offset", T - INCEPTION)
    z = h.zone(origin, **kw)
    _standard(z)
    return z


ALGORITHM_ZONES = {
    "rsasha1": Algorithm.RSASHA1,
    "rsasha1-nsec3": Algorithm.RSASHA1NSEC3SHA1,
    "rsasha256": Algorithm.RSASHA256,
    "rsasha512": Algorithm.RSASHA512,
    "ecdsap256": Algorithm.ECDSAP256SHA256,
    "ecdsap384": Algorithm.ECDSAP384SHA384,
    "ed25519": Algorithm.ED25519,
    "ed448": Algorithm.ED448,
}
UNSUPPORTED_ALGORITHMS = {"rsamd5": 1, "dsa": 3, "gost": 12, "private": 253, "unassigned": 200}
ITERATIONS = (0, 50, 51, 150, 500)


def build() -> tuple[Hierarchy, SignedHierarchy]:
    h = Hierarchy(".", sig_lifetime=EXPIRATION - T, sig_inception_offset=T - INCEPTION, denial=NSEC)
    ex = h.zone("example.", sig_lifetime=EXPIRATION - T, sig_inception_offset=T - INCEPTION)
    ex.add("www", "A", "127.0.0.80")

    for denial, name in ((NSEC, "nsec"), (NSEC3(), "nsec3")):
        z = _zone(h, f"{name}.example.", denial=denial)
        z.add("*.wild", "TXT", "wildcard")
        z.add("*.wildalias", "CNAME", "mail")
        z.add("alias", "CNAME", "alias2")
        z.add("alias2", "CNAME", "mail")
        z.add("xalias", "CNAME", "mail.nsec3.example." if name == "nsec" else "mail.nsec.example.")
        z.add("wildalias", "CNAME", "x.wild")
        z.add("loop1", "CNAME", "loop2")
        z.add("loop2", "CNAME", "loop1")
        z.add("self", "CNAME", "self")
        z.add("dangling", "CNAME", "nothere")
        z.add("deep.ent.sub", "A", "127.0.0.27")
        z.add("sub.*.notleft", "TXT", "a star that is not the leftmost label")
        z.add("x*y", "TXT", "a star inside a label")
        z.add("dn", "DNAME", "target")
        z.add("mail.target", "A", "127.0.0.28")
        z.add("_25._tcp.mail.target", "TLSA", TLSA)
        z.add("dnext", "DNAME", "nsec3.example." if name == "nsec" else "nsec.example.")
        z.add("dncname", "DNAME", "cn")
        z.add("a.cn", "CNAME", "mail")
        z.add("toinsecure", "CNAME", "mail.unsigned")
        z.add("toname", "CNAME", "mail.dn")
        z.add("dnloop", "DNAME", "dnloop2")
        z.add("a.dnloop2", "CNAME", "a.dnloop")
        z.add("*._tcp.wmx", "TLSA", TLSA)
        z.add("wmx", "A", "127.0.0.29")
        z.add("*.dyn", "A", "127.0.0.30")
        z.add("host.dyn", "TLSA", TLSA)
        z.add("host.dyn", "A", "127.0.0.31")
        for i in range(4):
            z.add(f"host{i}", "A", f"127.0.1.{i}")
        _zone(h, f"unsigned.{name}.example.", signed=False)
        _zone(h, f"signed.{name}.example.", denial=NSEC)

    z = _zone(h, "optout.example.", denial=NSEC3(opt_out=True))
    z.add("*.wild", "TXT", "wildcard")
    z.add("deep.ent.sub", "A", "127.0.0.27")
    _zone(h, "unsigned.optout.example.", signed=False)
    _zone(h, "signed.optout.example.", denial=NSEC)

    z = _zone(h, "wildapex.example.")  # an apex wildcard TLSA; mail has none of its own
    z.remove("_25._tcp.mail", "TLSA")
    z.add("*", "TLSA", TLSA)
    _zone(h, "plain.example.", signed=False)
    _zone(h, "island.example.").fault(Fault.UNSIGNED_DELEGATION)

    for label, alg in ALGORITHM_ZONES.items():
        denial = NSEC3() if "nsec3" in label else NSEC
        _zone(h, f"{label}.example.", algorithm=alg, denial=denial)
    for label in UNSUPPORTED_ALGORITHMS:
        _zone(h, f"alg-{label}.example.")
    for label in ("sha1", "sha256", "sha384", "gost", "unknown", "sha1-sha256"):
        _zone(h, f"ds-{label}.example.")
    for it in ITERATIONS:
        z = _zone(h, f"iter{it}.example.", denial=NSEC3(iterations=it))
        z.add("*.wild", "TXT", "wildcard")
    z = _zone(h, "salted.example.", denial=NSEC3(iterations=5, salt="aabbccdd"))
    z.add("*.wild", "TXT", "wildcard")
    _zone(h, "longsalt.example.", denial=NSEC3(salt=bytes(range(255))))

    for origin, fault, rdtype in [
        ("expired", Fault.EXPIRED_RRSIG, "TLSA"),
        ("badsig", Fault.BAD_SIGNATURE, "TLSA"),
        ("nosig", Fault.MISSING_RRSIG, "TLSA"),
    ]:
        _zone(h, f"{origin}.example.").fault(fault, "_25._tcp.mail", rdtype)
    _zone(h, "expired-zone.example.", denial=NSEC3()).fault(Fault.EXPIRED_RRSIG)
    _zone(h, "badkeysig.example.").fault(Fault.BAD_SIGNATURE, "@", "DNSKEY")
    _zone(h, "unsigned-dnskey.example.").fault(Fault.MISSING_RRSIG, "@", "DNSKEY")
    _zone(h, "dsmismatch.example.").fault(Fault.DS_MISMATCH)
    _zone(h, "nodenial.example.").fault(Fault.MISSING_DENIAL)
    _zone(h, "nodenial3.example.", denial=NSEC3()).fault(Fault.MISSING_DENIAL)
    for d, name in ((NSEC, "wrongdenial"), (NSEC3(), "wrongdenial3")):
        z = _zone(h, f"{name}.example.", denial=d)
        for i in range(6):
            z.add(f"host{i}", "A", f"127.0.1.{i}")
        z.fault(Fault.WRONG_DENIAL)
    _zone(h, "servfail.example.").fault(Fault.SERVFAIL, "_25._tcp.mail")
    z = _zone(h, "twoalg.example.")  # a second algorithm's keys are added after signing
    z = _zone(h, "keytrap.example.", algorithm=Algorithm.RSASHA256)
    z = _zone(h, "keytrap-dnskey.example.", algorithm=Algorithm.RSASHA256)
    z = _zone(h, "flood.example.", denial=NSEC3(iterations=50))
    z = _zone(h, "flood500.example.", denial=NSEC3(iterations=500))

    signed = h.sign(now=T)
    _post_sign(h, signed)
    return h, signed


# --------------------------------------------------------------------------- signing helpers


def rrsig(
    rrset: dns.rrset.RRset,
    key: KeyPair,
    signer: str | dns.name.Name,
    *,
    inception: int = INCEPTION,
    expiration: int = EXPIRATION,
    owner: dns.name.Name | None = None,
) -> dns.rrset.RRset:
    """An RRSIG RRset over ``rrset`` by ``key`` (signer given); ``owner`` renames the result
    (for wildcard-shaped signatures: sign ``*.x`` and put the RRSIG at a name below x)."""
    signer = dns.name.from_text(signer) if isinstance(signer, str) else signer
    sig = dns.dnssec.sign(
        rrset, key.private, signer, key.dnskey, inception=inception, expiration=expiration
    )
    return dns.rrset.from_rdata_list(owner or rrset.name, rrset.ttl, [sig])


def forge(
    rrset: dns.rrset.RRset,
    key: KeyPair,
    signer: str | dns.name.Name,
    *,
    owner: dns.name.Name | None = None,
    **fields: object,
) -> dns.rrset.RRset:
    """A valid signature by ``key`` over ``rrset`` whose RRSIG fields (labels, signer, key tag,
    dates) are what the attack needs, not what a signer would write."""
    signer = dns.name.from_text(signer) if isinstance(signer, str) else signer
    template = dns.dnssec.sign(
        rrset, key.private, signer, key.dnskey, inception=INCEPTION, expiration=EXPIRATION
    ).replace(**fields)
    labels = template.labels
    data = dns.dnssec._make_rrsig_signature_data(
        rrset, template.replace(labels=min(labels, len(rrset.name) - 1))
    )
    data = data[:3] + bytes([labels]) + data[4:]  # the Labels octet of the RRSIG rdata
    sig = template.replace(signature=key.private.sign(data, verify=False))
    return dns.rrset.from_rdata_list(owner or rrset.name, rrset.ttl, [sig])


def renamed(rrset: dns.rrset.RRset, name: str | dns.name.Name) -> dns.rrset.RRset:
    out = dns.rrset.RRset(_name(name), rrset.rdclass, rrset.rdtype, rrset.covers)
    out.update(rrset)
    out.ttl = rrset.ttl
    return out


def _name(text: str | dns.name.Name) -> dns.name.Name:
    return text if isinstance(text, dns.name.Name) else dns.name.from_text(text)


def _post_sign(h: Hierarchy, s: SignedHierarchy) -> None:
    """Zone-level changes the signer cannot make: other algorithms, other DS digests."""

    def parent_ds(origin: str, rdatas: list[dns.rdata.Rdata]) -> None:
        child = _name(origin)
        parent = s.zones[s.zones[child].parent]
        pz = h[parent.origin]
        ds = dns.rrset.from_rdata_list(child, parent.ttl, rdatas)
        parent.rrsets[child][RdataType.DS] = ds
        parent.rrsigs.setdefault(child, {})[RdataType.DS] = rrsig(ds, pz.zsk, parent.origin)

    # unsupported algorithms: the same key material under another algorithm number; the
    # signatures cannot be checked by anyone, and the parent's DS names that algorithm
    for label, number in UNSUPPORTED_ALGORITHMS.items():
        origin = _name(f"alg-{label}.example.")
        zone = s.zones[origin]
        keys = [k.replace(algorithm=number) for k in zone.rrsets[origin][RdataType.DNSKEY]]
        zone.rrsets[origin][RdataType.DNSKEY] = dns.rrset.from_rdata_list(origin, zone.ttl, keys)
        ksk_tag = dns.dnssec.key_id(keys[0])
        zsk_tag = dns.dnssec.key_id(keys[1])
        for name, sigs in zone.rrsigs.items():
            for rt, sig in list(sigs.items()):
                tag = ksk_tag if rt == RdataType.DNSKEY else zsk_tag
                sigs[rt] = dns.rrset.from_rdata_list(
                    name, sig.ttl, [r.replace(algorithm=number, key_tag=tag) for r in sig]
                )
        parent_ds(origin.to_text(), [dns.dnssec.make_ds(origin, keys[0], 2)])

    # DS digest types (RFC 8624 §3.3)
    def ds_of(origin: str, digest: int) -> dns.rdata.Rdata:
        key = h[origin].ksk.dnskey
        if digest in (1, 2, 4):
            return dns.dnssec.make_ds(
                _name(origin), key, digest, policy=dns.dnssec.allow_all_policy
            )
        good = dns.dnssec.make_ds(_name(origin), key, 2)
        return good.replace(digest_type=digest, digest=bytes(range(32)))

    parent_ds("ds-sha1.example.", [ds_of("ds-sha1.example.", 1)])
    parent_ds("ds-sha256.example.", [ds_of("ds-sha256.example.", 2)])
    parent_ds("ds-sha384.example.", [ds_of("ds-sha384.example.", 4)])
    parent_ds("ds-gost.example.", [ds_of("ds-gost.example.", 3)])
    parent_ds("ds-unknown.example.", [ds_of("ds-unknown.example.", 200)])
    parent_ds(
        "ds-sha1-sha256.example.",
        [ds_of("ds-sha1-sha256.example.", 1), ds_of("ds-sha1-sha256.example.", 2)],
    )

    # two algorithms: an Ed25519 KSK+ZSK beside the ECDSA ones (DNSKEY RRset signed by both
    # KSKs, DS for both), but every other RRset signed by ECDSA only (RFC 6840 §5.11 cases
    # strip one signature from the answers)
    origin = _name("twoalg.example.")
    zone, hz = s.zones[origin], h["twoalg.example."]
    ksk2 = KeyPair.generate(Algorithm.ED25519, ksk=True)
    zsk2 = KeyPair.generate(Algorithm.ED25519, ksk=False)
    keyset = dns.rrset.from_rdata_list(
        origin, zone.ttl, [hz.ksk.dnskey, hz.zsk.dnskey, ksk2.dnskey, zsk2.dnskey]
    )
    zone.rrsets[origin][RdataType.DNSKEY] = keyset
    sigs = [*rrsig(keyset, hz.ksk, origin), *rrsig(keyset, ksk2, origin)]
    zone.rrsigs[origin][RdataType.DNSKEY] = dns.rrset.from_rdata_list(origin, zone.ttl, sigs)
    for name, node in zone.rrsigs.items():
        for rt, sig in list(node.items()):
            if rt != RdataType.DNSKEY:
                rrset = zone.rrsets[name][rt]
                both = [*sig, *rrsig(rrset, zsk2, origin)]
                node[rt] = dns.rrset.from_rdata_list(name, sig.ttl, both)
    parent_ds(
        "twoalg.example.",
        [dns.dnssec.make_ds(origin, hz.ksk.dnskey, 2), dns.dnssec.make_ds(origin, ksk2.dnskey, 2)],
    )
    TWOALG["ed25519-zsk"] = zsk2

    _keytrap(h, s)


TWOALG: dict[str, KeyPair] = {}
KEYTRAP_KEYS = 200
KEYTRAP_SIGS = 200


def _tagged_rsa_key(template: dns.rdata.Rdata, tag: int, seed: int) -> dns.rdata.Rdata:
    """An RSA DNSKEY (junk modulus) whose key tag is ``tag``: the tag is a 16-bit checksum of
    the rdata, so the last two modulus bytes can be chosen to reach any tag."""
    import random

    rnd = random.Random(seed)
    key = bytearray(template.key)
    for i in range(len(key) - 40, len(key)):
        key[i] = rnd.randrange(256)
    key[-2] = key[-1] = 0
    rd = template.replace(key=bytes(key)).to_digestable()
    # RFC 4034 Appendix B: bytes at even offsets count << 8, odd ones as they are
    ac0 = (sum(rd[0::2]) << 8) + sum(rd[1::2])
    hi_shift, lo_shift = (8, 0) if (len(rd) - 2) % 2 == 0 else (0, 8)
    for hi in range(256):
        for lo in range(256):
            ac = ac0 + (hi << hi_shift) + (lo << lo_shift)
            if (ac + (ac >> 16)) & 0xFFFF == tag:
                key[-2], key[-1] = hi, lo
                cand = template.replace(key=bytes(key))
                assert dns.dnssec.key_id(cand) == tag
                return cand
    raise AssertionError("no key with that tag")


def _keytrap(h: Hierarchy, s: SignedHierarchy) -> None:
    """KeyTrap (CVE-2023-50387): hundreds of DNSKEYs sharing the ZSK's key tag, hundreds of
    RRSIGs with that tag on the TLSA RRset (none valid); the DNSKEY RRset itself is valid."""
    origin = _name("keytrap.example.")
    zone, hz = s.zones[origin], h["keytrap.example."]
    tag = dns.dnssec.key_id(hz.zsk.dnskey)
    fakes = [_tagged_rsa_key(hz.zsk.dnskey, tag, i) for i in range(KEYTRAP_KEYS)]
    keyset = dns.rrset.from_rdata_list(origin, zone.ttl, [hz.ksk.dnskey, hz.zsk.dnskey, *fakes])
    zone.rrsets[origin][RdataType.DNSKEY] = keyset
    zone.rrsigs[origin][RdataType.DNSKEY] = rrsig(keyset, hz.ksk, origin)
    tlsa_name = _name("_25._tcp.mail.keytrap.example.")
    good = zone.rrsigs[tlsa_name][RdataType.TLSA][0]
    junk = [
        good.replace(signature=bytes((i + j) % 256 for j in range(len(good.signature))))
        for i in range(KEYTRAP_SIGS)
    ]
    zone.rrsigs[tlsa_name][RdataType.TLSA] = dns.rrset.from_rdata_list(tlsa_name, 300, junk)

    # the DNSKEY RRset as the trap: colliding KSKs, and only junk signatures on it
    origin = _name("keytrap-dnskey.example.")
    zone, hz = s.zones[origin], h["keytrap-dnskey.example."]
    tag = dns.dnssec.key_id(hz.ksk.dnskey)
    fakes = [_tagged_rsa_key(hz.ksk.dnskey, tag, 1000 + i) for i in range(KEYTRAP_KEYS)]
    keyset = dns.rrset.from_rdata_list(origin, zone.ttl, [hz.ksk.dnskey, hz.zsk.dnskey, *fakes])
    zone.rrsets[origin][RdataType.DNSKEY] = keyset
    good = rrsig(keyset, hz.ksk, origin)[0]
    junk = [
        good.replace(signature=bytes((i * 7 + j) % 256 for j in range(len(good.signature))))
        for i in range(KEYTRAP_SIGS)
    ]
    zone.rrsigs[origin][RdataType.DNSKEY] = dns.rrset.from_rdata_list(origin, 300, junk)
    # the parent's DS matches every colliding key (all are "KSKs" with that tag)
    child_ds = [dns.dnssec.make_ds(origin, k, 2) for k in [hz.ksk.dnskey, *fakes[:50]]]
    parent = s.zones[_name("example.")]
    ds = dns.rrset.from_rdata_list(origin, parent.ttl, child_ds)
    parent.rrsets[origin][RdataType.DS] = ds
    parent.rrsigs[origin][RdataType.DS] = rrsig(ds, h["example."].zsk, "example.")


# --------------------------------------------------------------------------- mutations


class Ctx:
    """What a case's mutation works with: the world (keys included) and the live responder."""

    def __init__(self, h: Hierarchy, signed: SignedHierarchy, responder: Responder) -> None:
        self.h = h
        self.signed = signed
        self.responder = responder

    def ask(self, name: str, rdtype: str) -> dns.message.Message:
        """The world's unmutated response (DO set)."""
        q = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
        r = self.responder.respond(q)
        assert r is not None
        return r

    def zsk(self, origin: str) -> KeyPair:
        return self.h[origin].zsk

    def ksk(self, origin: str) -> KeyPair:
        return self.h[origin].ksk

    def rrset(self, origin: str, name: str, rdtype: str) -> dns.rrset.RRset:
        found = self.signed.zones[_name(origin)].rrset(name, rdtype)
        assert found is not None, (origin, name, rdtype)
        return found

    def sig(self, origin: str, name: str, rdtype: str) -> dns.rrset.RRset:
        found = self.signed.zones[_name(origin)].rrsig(name, rdtype)
        assert found is not None, (origin, name, rdtype)
        return found


Mutation = Callable[[dns.message.Message, Ctx], dns.message.Message]


def strip(section: list[dns.rrset.RRset], rdtype: int, covers: int | None = None) -> list:
    return [
        r for r in section if not (r.rdtype == rdtype and (covers is None or r.covers == covers))
    ]


def drop_rrsigs(covers: str) -> Mutation:
    ct = dns.rdatatype.from_text(covers)

    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        m.answer = strip(m.answer, RdataType.RRSIG, ct)
        m.authority = strip(m.authority, RdataType.RRSIG, ct)
        return m

    return f


def replace_answer_sig(origin: str, key: str = "zsk", signer: str | None = None, **kw) -> Mutation:
    """Re-sign every non-RRSIG RRset of the answer section with another zone's key."""

    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        kp = ctx.zsk(origin) if key == "zsk" else ctx.ksk(origin)
        out = []
        for r in m.answer:
            if r.rdtype == RdataType.RRSIG:
                continue
            out += [r, rrsig(r, kp, signer or origin, **kw)]
        m.answer = out
        return m

    return f


def edit_sig(**changes) -> Mutation:
    """Change fields of the answer's RRSIGs (without re-signing)."""

    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        out = []
        for r in m.answer:
            if r.rdtype == RdataType.RRSIG:
                r = dns.rrset.from_rdata_list(r.name, r.ttl, [x.replace(**changes) for x in r])
            out.append(r)
        m.answer = out
        return m

    return f


def drop_authority(rdtype: str, keep: int = 0) -> Mutation:
    """Remove the denial records of one type (and their RRSIGs), keeping the first ``keep``."""
    rt = dns.rdatatype.from_text(rdtype)

    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        kept = [r.name for r in m.authority if r.rdtype == rt][:keep]
        m.authority = [
            r
            for r in m.authority
            if not (
                (r.rdtype == rt or (r.rdtype == RdataType.RRSIG and r.covers == rt))
                and r.name not in kept
            )
        ]
        return m

    return f


def drop_authority_where(pred: Callable[[dns.rrset.RRset, Ctx], bool]) -> Mutation:
    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        names = {r.name for r in m.authority if r.rdtype in (50, 47) and pred(r, ctx)}
        m.authority = [
            r
            for r in m.authority
            if not (r.name in names and (r.rdtype in (50, 47) or r.covers in (50, 47)))
        ]
        return m

    return f


def respond_with(
    answer: Callable[[Ctx], list[dns.rrset.RRset]] | None = None,
    authority: Callable[[Ctx], list[dns.rrset.RRset]] | None = None,
    rcode: int = dns.rcode.NOERROR,
) -> Mutation:
    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        m.set_rcode(rcode)
        m.flags |= dns.flags.AA
        m.answer = answer(ctx) if answer else []
        m.authority = authority(ctx) if authority else []
        m.additional = []
        return m

    return f


def sections_of(name: str, rdtype: str, which: str = "authority") -> Callable[[Ctx], list]:
    """The given section of the world's own response to another question."""
    return lambda ctx: list(getattr(ctx.ask(name, rdtype), which))


def chain(*fs: Mutation) -> Mutation:
    def f(m: dns.message.Message, ctx: Ctx) -> dns.message.Message:
        for g in fs:
            m = g(m, ctx)
        return m

    return f


# --------------------------------------------------------------------------- cases


@dataclass
class Spec:
    group: str
    id: str
    rfc: list[str]
    summary: str
    question: tuple[str, str]
    status: str
    kind: str | None = None
    reason: str | None = None
    delv: str | None = "auto"  # "auto": what the expectation means in delv's terms
    notes: str = ""
    anchor: str = "root"  # root | example | both
    overrides: dict[tuple[str, str], Mutation] = field(default_factory=dict)
    #: extra keys of every response ({"tcp_only_tc": True}, {"udp": False}); the world's
    #: own server is not changed by them, only the replay
    transport: dict[str, bool] = field(default_factory=dict)

    def delv_expected(self) -> str | None:
        if self.delv != "auto":
            return self.delv
        if self.status == "bogus":
            return "bogus"
        if self.status == "indeterminate":
            return "servfail"
        return DELV_OF.get((self.status, self.kind or ""))


SPECS: list[Spec] = []


def case(
    group: str,
    cid: str,
    rfc: str | list[str],
    summary: str,
    name: str,
    rdtype: str,
    status: str,
    kind: str | None = None,
    reason: str | None = None,
    **kw,
) -> None:
    SPECS.append(
        Spec(
            group,
            cid,
            [rfc] if isinstance(rfc, str) else rfc,
            summary,
            (name, rdtype),
            status,
            kind,
            reason,
            **kw,
        )
    )


def ok(
    group: str,
    cid: str,
    rfc: str | list[str],
    summary: str,
    name: str,
    rdtype: str,
    kind: str = "positive",
    **kw,
) -> None:
    case(group, cid, rfc, summary, name, rdtype, "secure", kind, **kw)


from cases_def import define_cases  # noqa: E402

define_cases(sys.modules[__name__])


# --------------------------------------------------------------------------- recording


class Recorder(Responder):
    """The world's responder, with per-question mutations, remembering every answer."""

    def __init__(self, signed: SignedHierarchy) -> None:
        super().__init__(signed)
        self.overrides: dict[tuple[dns.name.Name, int], Mutation] = {}
        self.ctx: Ctx | None = None
        self.errors: list[str] = []
        self.seen: dict[tuple[dns.name.Name, int], tuple[str, str, str, bool]] = {}

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        r = super().respond(query)
        if r is None or not query.question:
            return r
        q = query.question[0]
        key = (q.name, q.rdtype)
        fn = self.overrides.get(key)
        if fn is not None:
            assert self.ctx is not None
            try:
                r = fn(r, self.ctx)
            except Exception as exc:
                self.errors.append(f"{q.name} {dns.rdatatype.to_text(q.rdtype)}: {exc!r}")
                raise
        do = bool(query.ednsflags & dns.flags.DO) if query.edns >= 0 else False
        old = self.seen.get(key)
        if old is None or (do and not old[3]):
            frozen = copy.copy(r)
            frozen.id = 0
            self.seen[key] = (
                q.name.to_text().lower(),
                dns.rdatatype.to_text(q.rdtype),
                frozen.to_text(),
                do,
            )
        return r


def anchors_text(spec: Spec, h: Hierarchy) -> str:
    root = h.trust_anchor("ds")
    ex = "".join(f"example. 3600 IN DS {d.to_text()}\n" for d in h["example."].ds())
    return {"root": root, "example": ex, "both": root + ex}[spec.anchor]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only cases whose id contains this")
    ap.add_argument("--no-delv", action="store_true", help="do not run delv (delv: as expected)")
    args = ap.parse_args()

    ids = [s.id for s in SPECS]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, dupes
    specs = [s for s in SPECS if args.k in s.id]
    use_delv = not args.no_delv and shutil.which("delv") is not None
    if not args.k:
        for g in GROUPS:
            for p in (CASES_DIR / g).glob("*.json"):
                p.unlink()

    h, signed = build()
    disagree: list[str] = []
    with BackgroundLoop("conformance-generate") as bg, tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(signed)
        server = DNSServer(responder=recorder)
        bg.run(server.start())
        try:
            for spec in specs:
                if callable(spec.question[0]):
                    spec.question = (spec.question[0](signed), spec.question[1])
                recorder.overrides = {
                    (_name(n), dns.rdatatype.from_text(t)): f
                    for (n, t), f in spec.overrides.items()
                }
                recorder.ctx = Ctx(h, signed, recorder)
                recorder.seen = {}
                anchors = anchors_text(spec, h)
                draft = _draft(spec, anchors, [])
                ours = asyncio.run(validate(draft, Server("127.0.0.1", server.port), timeout=5.0))
                expected_delv = spec.delv_expected()
                observed = None
                if use_delv and spec.delv is not None:
                    observed, _out = delv_verdict(draft, server.port, Path(tmp))
                responses = [
                    {"q": [n, t], "message": text, **spec.transport}
                    for n, t, text, _ in recorder.seen.values()
                ]
                delv = observed if observed is not None else expected_delv
                notes = spec.notes
                if observed is not None and observed != expected_delv:
                    disagree.append(f"DELV {spec.id}: expected {expected_delv}, delv {observed}")
                if spec.delv is None and not notes:
                    notes = "delv is not asked."
                if recorder.errors:
                    raise SystemExit(f"{spec.id}: the mutation failed: {recorder.errors}")
                out = _write(spec, anchors, delv, notes, responses)
                replayed = load_case(out)
                line = (
                    f"{spec.group}/{spec.id}: expect {spec.status}/{spec.kind}/{spec.reason}"
                    f" | ours {describe(ours)} | delv {observed} (want {expected_delv})"
                )
                print(line, flush=True)
                if not _matches(spec, ours):
                    disagree.append(
                        f"OURS {spec.id}: expect {spec.status}/{spec.kind}/"
                        f"{spec.reason}, ours {describe(ours)}"
                    )
                del replayed
        finally:
            bg.run(server.stop())
    print("\n".join(["", f"{len(specs)} cases", *disagree]))
    return 0


def _matches(spec: Spec, ours) -> bool:
    return (
        ours.status.value == spec.status
        and (spec.kind is None or ours.kind.value == spec.kind)
        and (spec.reason is None or ours.reason == spec.reason)
    )


def _draft(spec: Spec, anchors: str, responses: list) -> Case:
    parse_anchors(anchors)
    return Case(
        id=spec.id,
        group=spec.group,
        rfc=tuple(spec.rfc),
        summary=spec.summary,
        source=SOURCE,
        time=T,
        anchors=anchors,
        question=spec.question,
        status=spec.status,
        kind=spec.kind,
        reason=spec.reason,
        delv=spec.delv,
        notes=spec.notes,
        responses=tuple(responses),
        path=CASES_DIR / spec.group / f"{spec.id}.json",
    )


def _write(spec: Spec, anchors: str, delv: str | None, notes: str, responses: list) -> Path:
    doc: dict = {
        "id": spec.id,
        "rfc": spec.rfc,
        "summary": spec.summary,
        "source": SOURCE,
        "time": T,
        "anchors": anchors,
        "question": list(spec.question),
        "expect": {"status": spec.status, "kind": spec.kind, "reason": spec.reason},
        "delv": delv,
    }
    if notes:
        doc["notes"] = notes
    doc["responses"] = sorted(responses, key=lambda r: (r["q"][0], r["q"][1]))
    path = CASES_DIR / spec.group / f"{spec.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
