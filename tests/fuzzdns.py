"""Mutation fuzzing of the validator: real signed answers, one of them mutated per lookup.

Shared by ``tests/test_lookup_fuzz.py`` (a short hypothesis run) and
``benchmarks/fuzz_validator.py`` (the long campaign, which imports this file by path).

The world is the project's own: :class:`~dane_monitor.world.zones.Hierarchy` signs a private
root, a TLD (NSEC3 with opt-out), NSEC and NSEC3 zones with wildcards, CNAMEs, empty
non-terminals, signed and insecure delegations, an Ed25519 zone, an RSA zone whose DNSKEY
RRset holds keys sharing one key tag, and two broken zones (an expired signature, a DS that
matches nothing). :class:`~dane_monitor.world.dnsserver.Responder` answers; the validator
is driven in-process through :class:`FuzzClient` (the ``StubClient`` interface), which
mutates exactly one response per lookup: the first answer to one question picked at random
among the questions that lookup asks.

Oracles per lookup (:func:`judge`): (a) ``lookup`` raises nothing; (b) a ``secure`` result
carries the same data (kind, rdata set, CNAME chain) as the unmutated world gives; (c) a
question whose unmutated answer is secure or bogus, on a path without an insecure
delegation, is never ``insecure`` after a mutation; (d) one lookup costs at most 1 s CPU.
"""

from __future__ import annotations

import asyncio
import base64
import random
import signal
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.rrset
from dns.dnssectypes import Algorithm
from dns.rdatatype import RdataType

from dane_monitor.lookup.anchors import TrustAnchors, parse
from dane_monitor.lookup.answer import Answer, Status
from dane_monitor.lookup.denial import bitmap_types
from dane_monitor.lookup.stub import MALFORMED, TIMEOUT, Reply
from dane_monitor.lookup.validator import Validator
from dane_monitor.world.dnsserver import Responder
from dane_monitor.world.zones import NSEC3, Fault, Hierarchy, SignedHierarchy, SignedZone

Name = dns.name.Name
Question = tuple[Name, int]

TLSA_A = "3 1 1 " + "a1" * 32
TLSA_B = "2 0 1 " + "b2" * 32
CPU_LIMIT = 1.0  # oracle (d), seconds of CPU per lookup
WORK_LIMIT = 200  # oracle (d) as the tests see it: signature verifications per lookup
HARD_LIMIT = 20.0  # a lookup is interrupted after this much CPU (an endless loop)
HANG_LIMIT = 10.0  # seconds of wall time: the client never waits, so only a deadlock waits
KEYTRAP_KEYS = 40  # extra DNSKEYs sharing the ZSK's key tag in keytrap.tld


# ------------------------------------------------------------------------------ the world


@dataclass
class FuzzWorld:
    signed: SignedHierarchy
    now: float  # the validation clock (fixed, so that every run judges the same dates)
    questions: list[Question]
    #: names at or below these are below an insecure delegation (or unsigned zones)
    insecure_cuts: frozenset[Name]
    anchors_text: dict[str, str]  # "root" / "tld" -> trust-anchor file text
    responder: Responder = field(init=False, repr=False)
    anchors: dict[str, TrustAnchors] = field(init=False, repr=False)
    pools: Pools = field(init=False, repr=False)
    _wire: dict[Question, bytes] = field(init=False, repr=False, default_factory=dict)
    _replies: dict[Question, Reply] = field(init=False, repr=False, default_factory=dict)
    _truth: dict[Question, tuple] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.responder = Responder(self.signed)
        self.anchors = {k: parse(v) for k, v in self.anchors_text.items()}
        self.pools = Pools.build(self)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "signed": self.signed,
            "now": self.now,
            "questions": self.questions,
            "insecure_cuts": self.insecure_cuts,
            "anchors_text": self.anchors_text,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._wire = {}
        self._replies = {}
        self._truth = {}
        self.__post_init__()

    def zone_of(self, name: Name) -> SignedZone | None:
        return self.signed.find_zone(name)

    def signed_zone_of(self, name: Name) -> SignedZone | None:
        """The deepest *signed* zone containing ``name`` (for forged denials)."""
        z = self.signed.find_zone(name)
        while z is not None and not z.signed:
            z = self.signed.zones.get(z.parent) if z.parent is not None else None
        return z

    def query(self, name: Name, rdtype: int) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=True, payload=1232)
        q.flags |= dns.flags.RD | dns.flags.CD
        q.id = 4242
        return q

    def wire(self, name: Name, rdtype: int) -> bytes | None:
        """The unmutated response's wire form (cached; None when the server drops it)."""
        key = (name, rdtype)
        if key not in self._wire:
            out = self.responder.handle_wire(self.query(name, rdtype).to_wire(), udp=False)
            self._wire[key] = out  # type: ignore[assignment]
        return self._wire[key]

    def reply(self, key: Question) -> Reply:
        """The unmutated reply (parsed once and shared: the validator only reads messages)."""
        got = self._replies.get(key)
        if got is None:
            wire = self.wire(*key)
            got = (
                Reply(None, TIMEOUT, "no answer")
                if wire is None
                else _parse(self.query(*key), wire)
            )
            self._replies[key] = got
        return got

    def truth(self, question: Question) -> tuple:
        """The data the unmutated world serves for a question, extracted as the validator
        does (CNAMEs followed by asking again): :func:`summary` without the DNSSEC parts."""
        got = self._truth.get(question)
        if got is not None:
            return got
        name, qtype = question
        chain: list[tuple[Name, Name]] = []
        kind, rrset = "error", None
        for _ in range(9):
            msg = self.reply((name, qtype)).response
            if msg is None or msg.rcode() not in (0, 3):
                break
            found = next((r for r in msg.answer if r.name == name and r.rdtype == qtype), None)
            alias = next((r for r in msg.answer if r.name == name and r.rdtype == 5), None)
            if found is None and alias is not None and qtype != RdataType.CNAME:
                chain.append((name.canonicalize(), alias[0].target.canonicalize()))
                name = alias[0].target
                if name in {a for a, _ in chain}:
                    kind = "error"
                    break
                continue
            if found is not None:
                kind = "positive"
                rrset = (found.name.canonicalize(), found.rdtype,
                         frozenset(rd.to_digestable() for rd in found))  # fmt: skip
            else:
                kind = "nxdomain" if msg.rcode() == 3 else "nodata"
            break
        got = (kind, rrset, tuple(chain))
        self._truth[question] = got
        return got

    def below_insecure(self, name: Name) -> bool:
        return any(name.is_subdomain(c) for c in self.insecure_cuts)


def _keytrap_keys(zsk: dns.rdata.Rdata, count: int, rng: random.Random) -> list[dns.rdata.Rdata]:
    """RSA DNSKEYs with the ZSK's algorithm and key tag (the KeyTrap collision)."""
    tag = dns.dnssec.key_id(zsk)
    out = []
    while len(out) < count:
        n = bytearray(rng.randbytes(256))
        n[0] |= 0x80
        n[-1] |= 1
        key = b"\x03\x01\x00\x01" + bytes(n)  # exponent 65537, 2048-bit "modulus"
        # The key tag (RFC 4034 Appendix B) is a folded 16-bit sum over the rdata: fix it
        # with the modulus's last two bytes (at an even offset of the rdata).
        head = struct.pack("!HBB", 256, 3, zsk.algorithm) + key[:-2]
        total = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(head))
        for x in range(1, 65536, 2):  # keep the modulus odd
            t = total + x
            if (t + (t >> 16)) & 0xFFFF == tag:
                rd = dns.rdata.from_wire(
                    1, RdataType.DNSKEY, head + struct.pack("!H", x), 0, len(head) + 2
                )
                assert dns.dnssec.key_id(rd) == tag
                if rd not in out and rd != zsk:
                    out.append(rd)
                break
    return out


def build_world(*, keytrap_keys: int = KEYTRAP_KEYS, seed: int = 0) -> FuzzWorld:
    """Sign the fuzz world (fresh keys, so fresh signatures, on every call)."""
    rng = random.Random(seed)
    h = Hierarchy(".")
    h.zone("tld.", denial=NSEC3(iterations=1, salt=b"\xaa\xbb", opt_out=True))
    leaves = {
        "nsec.tld.": {},
        "nsec3.tld.": {"denial": NSEC3()},
        "optout.tld.": {"denial": NSEC3(iterations=2, salt=b"\x01", opt_out=True)},
        "ed.tld.": {"denial": NSEC3(), "algorithm": Algorithm.ED25519},
        "keytrap.tld.": {"algorithm": Algorithm.RSASHA256},
        "expired.tld.": {},
        "dsbad.tld.": {"denial": NSEC3()},
    }
    for origin, kwargs in leaves.items():
        z = h.zone(origin, **kwargs)
        z.add("@", "MX", "10 mail")
        z.add("mail", "A", "192.0.2.1")
        z.add("mail", "AAAA", "2001:db8::1")
        z.add("_25._tcp.mail", "TLSA", TLSA_A, TLSA_B)
        z.add("www", "CNAME", "mail")
        z.add("*.w", "A", "192.0.2.7")
        z.add("*.w", "TLSA", TLSA_A)
        z.add("*.wc", "CNAME", "mail")
        if origin in ("nsec.tld.", "ed.tld."):  # elsewhere, nx.<zone> is an NXDOMAIN
            z.add("*", "TXT", '"apex wildcard"')
        z.add("host.ent", "A", "192.0.2.8")
        z.add("loop1", "CNAME", "loop2")
        z.add("loop2", "CNAME", "loop1")
    h["nsec.tld."].add("ext", "CNAME", "mail.nsec3.tld.")
    h["nsec.tld."].add("dn", "DNAME", "nsec3.tld.")  # RFC 6672, across zones
    h["nsec3.tld."].add("dn", "DNAME", "w.nsec3.tld.")  # into a wildcard
    h["ed.tld."].add("dn", "DNAME", "optout.tld.")  # into an opt-out zone
    h["nsec3.tld."].add("ext", "CNAME", "_25._tcp.mail.optout.tld.")
    h["expired.tld."].fault(Fault.EXPIRED_RRSIG, "mail", "A")
    h["dsbad.tld."].fault(Fault.DS_MISMATCH)
    # delegations: signed children, unsigned children (insecure delegations)
    h.zone("child.nsec.tld.", denial=NSEC3(iterations=0, salt=b"\x05"))
    h.zone("unsigned.nsec.tld.", signed=False)
    h.zone("signed.optout.tld.")
    h.zone("insec.optout.tld.", signed=False)
    h.zone("insecure.tld.", signed=False)
    for origin in ("child.nsec.tld.", "unsigned.nsec.tld.", "signed.optout.tld.",
                   "insec.optout.tld.", "insecure.tld."):  # fmt: skip
        z = h[origin]
        z.add("www", "A", "192.0.2.9")
        z.add("_25._tcp.www", "TLSA", TLSA_A)
    signed = h.sign()

    # keytrap.tld: extra DNSKEYs colliding with the ZSK's tag, re-signed by the KSK (the
    # zone owner is the attacker here), so that each signature has many candidate keys.
    if keytrap_keys:
        kz = h["keytrap.tld."]
        sz = signed.zones[kz.origin]
        assert kz.ksk is not None and kz.zsk is not None
        extra = _keytrap_keys(kz.zsk.dnskey, keytrap_keys, rng)
        dnskey = dns.rrset.from_rdata_list(
            kz.origin, kz.ttl, [kz.ksk.dnskey, *extra, kz.zsk.dnskey]
        )
        sig = dns.dnssec.sign(
            dnskey,
            kz.ksk.private,  # type: ignore[arg-type]
            kz.origin,
            kz.ksk.dnskey,
            inception=int(signed.now) - 3600,
            expiration=int(signed.now) + 14 * 86400,
        )
        sz.rrsets[kz.origin][RdataType.DNSKEY] = dnskey  # type: ignore[index]
        sz.rrsigs[kz.origin][RdataType.DNSKEY] = dns.rrset.from_rdata_list(  # type: ignore[index]
            kz.origin, kz.ttl, [sig]
        )

    qs: list[tuple[str, str]] = [
        (".", "DNSKEY"), (".", "SOA"), ("nx.", "A"), ("tld.", "DS"), ("tld.", "DNSKEY"),
        ("nx.tld.", "A"), ("insecure.tld.", "DS"), ("www.insecure.tld.", "A"),
        ("_25._tcp.www.insecure.tld.", "TLSA"),
    ]  # fmt: skip
    for origin in leaves:
        o = origin
        qs += [
            (o, "MX"), (o, "DS"), (o, "DNSKEY"), (o, "SOA"), (f"mail.{o}", "A"),
            (f"mail.{o}", "AAAA"), (f"_25._tcp.mail.{o}", "TLSA"), (f"www.{o}", "A"),
            (f"www.{o}", "CNAME"), (f"x.w.{o}", "A"), (f"x.w.{o}", "TLSA"),
            (f"x.w.{o}", "MX"), (f"a.b.w.{o}", "A"), (f"y.wc.{o}", "A"),
            (f"_25._tcp.y.wc.{o}", "TLSA"), (f"nx.{o}", "TLSA"), (f"_25._tcp.nx.{o}", "TLSA"),
            (f"ent.{o}", "A"), (f"host.ent.{o}", "A"), (f"mail.{o}", "TXT"),
            (f"loop1.{o}", "A"), (f"zz.{o}", "TXT"),
        ]  # fmt: skip
    qs += [
        ("ext.nsec.tld.", "A"), ("ext.nsec3.tld.", "TLSA"),
        ("child.nsec.tld.", "DS"), ("www.child.nsec.tld.", "A"),
        ("_25._tcp.www.child.nsec.tld.", "TLSA"), ("nx.child.nsec.tld.", "A"),
        ("unsigned.nsec.tld.", "DS"), ("www.unsigned.nsec.tld.", "A"),
        ("_25._tcp.www.unsigned.nsec.tld.", "TLSA"),
        ("signed.optout.tld.", "DS"), ("www.signed.optout.tld.", "A"),
        ("mail.dn.nsec.tld.", "A"), ("_25._tcp.mail.dn.nsec.tld.", "TLSA"),
        ("nx.dn.nsec.tld.", "A"), ("dn.nsec.tld.", "DNAME"), ("y.dn.nsec3.tld.", "TLSA"),
        ("mail.dn.ed.tld.", "A"), ("nx.dn.ed.tld.", "A"), ("www.dn.ed.tld.", "A"),
        ("insec.optout.tld.", "DS"), ("www.insec.optout.tld.", "A"),
        ("_25._tcp.www.insec.optout.tld.", "TLSA"), ("nx.insec.optout.tld.", "A"),
    ]  # fmt: skip
    questions = [(dns.name.from_text(n), int(RdataType.make(t))) for n, t in qs]
    cuts = frozenset(
        dns.name.from_text(n) for n in ("insecure.tld.", "unsigned.nsec.tld.", "insec.optout.tld.")
    )
    tld_ds = signed.zones[dns.name.from_text("tld.")]
    tld_anchor = "".join(f"tld. 3600 IN DS {d.to_text()}\n" for d in tld_ds.parent_ds)
    return FuzzWorld(
        signed=signed,
        now=signed.now + 60,
        questions=questions,
        insecure_cuts=cuts,
        anchors_text={"root": signed.trust_anchor(), "tld": tld_anchor},
    )


# ------------------------------------------------------------------------------ replay pools


@dataclass
class Pools:
    """Real signed records to replay: data, denials, wildcards, every zone's SOA."""

    data: list[tuple[dns.rrset.RRset, dns.rrset.RRset]]
    denial: list[tuple[dns.rrset.RRset, dns.rrset.RRset]]
    wildcard: list[tuple[dns.rrset.RRset, dns.rrset.RRset, SignedZone]]
    names: list[Name]
    key_tags: list[int]

    @classmethod
    def build(cls, world: FuzzWorld) -> Pools:
        data, denial, wildcard = [], [], []
        names: set[Name] = {dns.name.root}
        tags: set[int] = set()
        for z in world.signed.zones.values():
            names.add(z.origin)
            for k in (z.ksk, z.zsk):
                if k is not None:
                    tags.add(dns.dnssec.key_id(k))
            for rrset, sig in z.all_rrsets():
                names.add(rrset.name)
                if sig is None:
                    continue
                if rrset.rdtype in (RdataType.NSEC, RdataType.NSEC3):
                    denial.append((rrset, sig))
                else:
                    data.append((rrset, sig))
                if rrset.name.labels[0] == b"*":
                    wildcard.append((rrset, sig, z))
        for n, _ in world.questions:
            names.add(n)
        return cls(data, denial, wildcard, sorted(names), sorted(tags))


# ------------------------------------------------------------------------------ mutations


@dataclass
class Ctx:
    """What a mutation may use: the response to mutate, the question and the world."""

    world: FuzzWorld
    rng: random.Random
    query: dns.message.Message
    wire: bytes
    qname: Name
    qtype: int

    def msg(self) -> dns.message.Message:
        return dns.message.from_wire(self.wire)


#: what a mutation returns: wire bytes or a message (then encoded), and a description
Mutated = tuple[bytes | dns.message.Message, str]
Mutation = Callable[[Ctx], Mutated | None]
SECTIONS = ("answer", "authority", "additional")


def _rrsets(msg: dns.message.Message, *, sigs: bool | None = None, sections=SECTIONS):
    out = []
    for s in sections:
        for i, rrset in enumerate(getattr(msg, s)):
            if sigs is None or (rrset.rdtype == RdataType.RRSIG) == sigs:
                out.append((s, i, rrset))
    return out


def _with_rdata(rrset: dns.rrset.RRset, old: dns.rdata.Rdata, new: dns.rdata.Rdata):
    covers = new.covers() if rrset.rdtype == RdataType.RRSIG else rrset.covers
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, covers)
    for rd in rrset:
        if rd is old:
            out.add(new, rrset.ttl)
        elif rd.covers() == covers:  # an RRSIG now covering another type: alone in its set
            out.add(rd, rrset.ttl)
    return out


def _renamed(rrset: dns.rrset.RRset, name: Name) -> dns.rrset.RRset:
    out = dns.rrset.RRset(name, rrset.rdclass, rrset.rdtype, rrset.covers)
    out.update(rrset)
    out.ttl = rrset.ttl
    return out


def _pick_name(ctx: Ctx) -> Name:
    r = ctx.rng.random()
    q = ctx.qname
    if r < 0.35:
        return ctx.rng.choice(ctx.world.pools.names)
    if r < 0.5 and len(q) > 1:
        return q.parent()
    if r < 0.6:
        return q
    if r < 0.7:
        return Name((b"*", *q.labels[1:])) if len(q) > 1 else q
    if r < 0.8:
        return Name((ctx.rng.choice([b"a", b"zz", b"\x00", b"\xff", b"x" * 63]), *q.labels))
    if r < 0.9:
        return dns.name.root
    return Name(
        (ctx.rng.choice([b"a", b"~", b"-", b"0"]), *ctx.rng.choice(ctx.world.pools.names).labels)
    )


def _bitmap(types: set[int]):
    return dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(sorted(t for t in types if 0 < t < 65536))


def _replace_in(msg, section: str, index: int, new: dns.rrset.RRset | None) -> None:
    lst = list(getattr(msg, section))
    if new is None:
        del lst[index]
    else:
        lst[index] = new
    setattr(msg, section, lst)


# -- wire level


def m_bitflip(ctx: Ctx) -> Mutated:
    b = bytearray(ctx.wire)
    n = 1 if ctx.rng.random() < 0.7 else ctx.rng.randint(2, 8)
    where = []
    for _ in range(n):
        i = ctx.rng.randrange(len(b) * 8)
        b[i // 8] ^= 0x80 >> (i % 8)
        where.append(i)
    return bytes(b), f"flip bits {where}"


def m_byte_set(ctx: Ctx) -> Mutated:
    b = bytearray(ctx.wire)
    i = ctx.rng.randrange(len(b))
    v = ctx.rng.choice(
        [0, 0xFF, 0xC0, 0xC0 | ctx.rng.randrange(64), 0x3F, 0x40, ctx.rng.randrange(256)]
    )
    b[i] = v
    return bytes(b), f"byte {i} := {v:#04x}"


def m_insert(ctx: Ctx) -> Mutated:
    i = ctx.rng.randrange(len(ctx.wire) + 1)
    ins = ctx.rng.randbytes(ctx.rng.choice([1, 1, 2, 4, 16]))
    return ctx.wire[:i] + ins + ctx.wire[i:], f"insert {ins.hex()} at {i}"


def m_delete(ctx: Ctx) -> Mutated:
    i = ctx.rng.randrange(len(ctx.wire))
    n = ctx.rng.choice([1, 1, 2, 4, 16])
    return ctx.wire[:i] + ctx.wire[i + n :], f"delete {n} bytes at {i}"


def m_truncate(ctx: Ctx) -> Mutated:
    i = ctx.rng.randrange(len(ctx.wire))
    return ctx.wire[:i], f"truncate to {i} of {len(ctx.wire)} bytes"


def m_header_counts(ctx: Ctx) -> Mutated:
    b = bytearray(ctx.wire)
    which = ctx.rng.randrange(4)
    v = ctx.rng.choice(
        [0, 1, 2, 0xFFFF, struct.unpack("!H", b[4 + 2 * which : 6 + 2 * which])[0] + 1]
    )
    b[4 + 2 * which : 6 + 2 * which] = struct.pack("!H", v & 0xFFFF)
    return bytes(b), f"{['QD', 'AN', 'NS', 'AR'][which]}COUNT := {v & 0xFFFF}"


# -- message level: header


def m_rcode(ctx: Ctx) -> Mutated:
    msg = ctx.msg()
    rc = ctx.rng.choice([0, 1, 2, 3, 4, 5, 9, 10, 15])
    old = msg.rcode()
    msg.set_rcode(rc)
    return msg, f"rcode {dns.rcode.to_text(old)} -> {dns.rcode.to_text(rc)}"


def m_flags(ctx: Ctx) -> Mutated:
    msg = ctx.msg()
    f = ctx.rng.choice(
        [dns.flags.AA, dns.flags.AD, dns.flags.CD, dns.flags.RA, dns.flags.RD, dns.flags.TC]
    )
    msg.flags ^= f
    return msg, f"toggle flag {dns.flags.to_text(f)}"


def m_case(ctx: Ctx) -> Mutated:
    """Neutral: names in another case (0x20)."""
    msg = ctx.msg()
    for s in SECTIONS:
        out = []
        for rrset in getattr(msg, s):
            labels = tuple(
                bytes(
                    c ^ 0x20 if 97 <= (c | 0x20) <= 122 and ctx.rng.random() < 0.5 else c
                    for c in lab
                )
                for lab in rrset.name.labels
            )
            out.append(_renamed(rrset, Name(labels)))
        setattr(msg, s, out)
    return msg, "randomise the case of owner names"


def m_shuffle(ctx: Ctx) -> Mutated | None:
    """Neutral: the records of each RRset in another order (the signature covers the
    canonical order; resolvers rotate RRsets)."""
    msg = ctx.msg()
    changed = False
    for s in SECTIONS:
        out = []
        for rrset in getattr(msg, s):
            rds = list(rrset)
            ctx.rng.shuffle(rds)
            changed = changed or rds != list(rrset)
            out.append(dns.rrset.from_rdata_list(rrset.name, rrset.ttl, rds))
        setattr(msg, s, out)
    return (msg, "shuffle the records of every RRset") if changed else None


def m_ttl(ctx: Ctx) -> Mutated | None:
    """Neutral: another TTL."""
    msg = ctx.msg()
    cands = _rrsets(msg)
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    new = _renamed(rrset, rrset.name)
    new.ttl = ctx.rng.choice([0, 1, 2**31 - 1, 86400 * 30])
    _replace_in(msg, s, i, new)
    return msg, f"TTL of {s} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} := {new.ttl}"


# -- sections


def m_drop(ctx: Ctx) -> Mutated | None:
    msg = ctx.msg()
    cands = _rrsets(msg)
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    _replace_in(msg, s, i, None)
    return msg, f"drop {s} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}" + (
        f"({dns.rdatatype.to_text(rrset.covers)})" if rrset.covers else ""
    )


def m_drop_rdata(ctx: Ctx) -> Mutated | None:
    msg = ctx.msg()
    cands = [c for c in _rrsets(msg) if len(c[2]) > 1]
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    gone = ctx.rng.choice(list(rrset))
    new = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rd in rrset:
        if rd is not gone:
            new.add(rd, rrset.ttl)
    _replace_in(msg, s, i, new)
    return msg, f"drop one rdata of {s} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: {gone}"


def m_add_rdata(ctx: Ctx) -> Mutated | None:
    msg = ctx.msg()
    cands = [
        c for c in _rrsets(msg, sigs=False) if c[2].rdtype in (1, 28, 52, 15, 48, 43, 5, 2, 16)
    ]
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    extra = {
        1: "192.0.2.66", 28: "2001:db8::66", 52: "3 1 1 " + "66" * 32, 15: "10 evil.example.",
        48: "257 3 13 " + base64.b64encode(ctx.rng.randbytes(64)).decode(),
        43: f"{ctx.rng.randrange(65536)} 13 2 " + "66" * 32, 5: "evil.example.",
        2: "ns.evil.example.", 16: '"evil"',
    }[rrset.rdtype]  # fmt: skip
    new = _renamed(rrset, rrset.name)
    new.add(dns.rdata.from_text(1, rrset.rdtype, extra), rrset.ttl)
    _replace_in(msg, s, i, new)
    return msg, f"add {extra} to {s} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"


def m_move(ctx: Ctx) -> Mutated | None:
    msg = ctx.msg()
    cands = _rrsets(msg)
    if not cands:
        return None
    picked = ctx.rng.sample(cands, min(len(cands), ctx.rng.choice([1, 1, 2, 3])))
    to = ctx.rng.choice(SECTIONS)
    for s, _i, rrset in picked:
        setattr(msg, s, [r for r in getattr(msg, s) if r is not rrset])
        getattr(msg, to).append(rrset)
    what = ", ".join(f"{s} {r.name} {dns.rdatatype.to_text(r.rdtype)}" for s, _, r in picked)
    return msg, f"move {what} to {to}"


def m_rename(ctx: Ctx) -> Mutated | None:
    """Rewrite an owner name (optionally the matching RRSIG's too)."""
    msg = ctx.msg()
    cands = _rrsets(msg, sigs=False)
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    new_name = _pick_name(ctx)
    _replace_in(msg, s, i, _renamed(rrset, new_name))
    with_sig = ctx.rng.random() < 0.7
    if with_sig:
        for s2 in SECTIONS:
            setattr(
                msg,
                s2,
                [
                    _renamed(r, new_name)
                    if r.rdtype == RdataType.RRSIG
                    and r.name == rrset.name
                    and r.covers == rrset.rdtype
                    else r
                    for r in getattr(msg, s2)
                ],
            )
    return msg, (
        f"rename {s} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} to {new_name}"
        + (" (with its RRSIG)" if with_sig else "")
    )


# -- RRSIG fields


def _rrsig_rewrite(ctx: Ctx, field_name: str, values: Callable[[Any], list[Any]]) -> Mutated | None:
    msg = ctx.msg()
    cands = _rrsets(msg, sigs=True)
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    old = ctx.rng.choice(list(rrset))
    value = ctx.rng.choice(values(old))
    try:
        new = old.replace(**{field_name: value})
    except Exception:
        return None
    _replace_in(msg, s, i, _with_rdata(rrset, old, new))
    shown = value.hex() if isinstance(value, bytes) and len(value) > 8 else value
    return msg, (
        f"RRSIG({dns.rdatatype.to_text(old.type_covered)}) at {s} {rrset.name}: "
        f"{field_name} {getattr(old, field_name) if field_name != 'signature' else '…'} -> {shown}"
    )


def m_rrsig_signer(ctx: Ctx) -> Mutated | None:
    def vals(old) -> list[Name]:
        zs = [z for z in ctx.world.signed.zones]
        return [dns.name.root, old.signer.parent() if len(old.signer) > 1 else old.signer,
                ctx.qname, ctx.rng.choice(zs), ctx.rng.choice(zs), _pick_name(ctx),
                dns.name.from_text("tld."), dns.name.from_text("com.")]  # fmt: skip

    return _rrsig_rewrite(ctx, "signer", vals)


def m_rrsig_labels(ctx: Ctx) -> Mutated | None:
    return _rrsig_rewrite(
        ctx, "labels", lambda o: [0, 1, max(0, o.labels - 1), o.labels + 1, ctx.rng.randrange(256)]
    )


def m_rrsig_dates(ctx: Ctx) -> Mutated | None:
    now = int(ctx.world.now)
    f = ctx.rng.choice(["inception", "expiration"])
    return _rrsig_rewrite(
        ctx,
        f,
        lambda o: [
            now - 86400 * 400,
            now + 86400 * 400,
            0,
            2**32 - 1,
            now,
            now - 1,
            now + 1,
            o.expiration if f == "inception" else o.inception,
            (now + 2**31) % 2**32,
        ],
    )


def m_rrsig_keytag(ctx: Ctx) -> Mutated | None:
    return _rrsig_rewrite(
        ctx,
        "key_tag",
        lambda o: [
            ctx.rng.choice(ctx.world.pools.key_tags),
            (o.key_tag + 1) % 65536,
            ctx.rng.randrange(65536),
        ],
    )


def m_rrsig_algorithm(ctx: Ctx) -> Mutated | None:
    return _rrsig_rewrite(ctx, "algorithm", lambda o: [1, 3, 5, 8, 10, 13, 14, 15, 16, 0, 253, 255])


def m_rrsig_type(ctx: Ctx) -> Mutated | None:
    return _rrsig_rewrite(
        ctx, "type_covered", lambda o: [1, 2, 5, 6, 28, 43, 47, 48, 50, 52, 15, 16, 255, 0]
    )


def m_rrsig_ttl(ctx: Ctx) -> Mutated | None:
    return _rrsig_rewrite(ctx, "original_ttl", lambda o: [0, 1, o.original_ttl + 1, 2**31])


def m_rrsig_signature(ctx: Ctx) -> Mutated | None:
    def vals(o) -> list[bytes]:
        s = bytearray(o.signature)
        i = ctx.rng.randrange(len(s) * 8)
        s[i // 8] ^= 0x80 >> (i % 8)
        return [bytes(s), o.signature[:-1], b"", b"\x00" * len(o.signature), o.signature + b"\x00"]

    return _rrsig_rewrite(ctx, "signature", vals)


def m_rrsig_flood(ctx: Ctx) -> Mutated | None:
    """Many copies of an RRSIG with other signature bytes (CPU: KeyTrap's second half)."""
    msg = ctx.msg()
    cands = _rrsets(msg, sigs=True)
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    old = rrset[0]
    n = ctx.rng.choice([20, 100, 200])
    new = _renamed(rrset, rrset.name)
    for _ in range(n):
        new.add(old.replace(signature=ctx.rng.randbytes(len(old.signature))), rrset.ttl)
    _replace_in(msg, s, i, new)
    covered = dns.rdatatype.to_text(old.type_covered)
    return msg, f"{n} extra RRSIG({covered}) at {rrset.name} with tag {old.key_tag}"


# -- NSEC / NSEC3 fields


def _denial_rewrite(
    ctx: Ctx, rdtype: int, change: Callable[[Any], tuple[Any, str] | None]
) -> Mutated | None:
    msg = ctx.msg()
    cands = [c for c in _rrsets(msg, sigs=False) if c[2].rdtype == rdtype]
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    old = rrset[0]
    got = change(old)
    if got is None:
        return None
    new, what = got
    _replace_in(msg, s, i, _with_rdata(rrset, old, new))
    return msg, f"{dns.rdatatype.to_text(rdtype)} {rrset.name}: {what}"


def _bitmap_change(ctx: Ctx, old) -> tuple[Any, str]:
    types = bitmap_types(old)
    t = ctx.rng.choice([ctx.qtype, 5, 2, 6, 43, 46, 47, 50, 48, 1, 52, 39])
    types ^= {t}
    if ctx.rng.random() < 0.2:
        types = set()
    return old.replace(windows=_bitmap(types)), f"bitmap ^= {dns.rdatatype.to_text(t)}"


def m_nsec_next(ctx: Ctx) -> Mutated | None:
    def ch(old):
        n = _pick_name(ctx)
        return old.replace(next=n), f"next {old.next} -> {n}"

    return _denial_rewrite(ctx, RdataType.NSEC, ch)


def m_nsec_bitmap(ctx: Ctx) -> Mutated | None:
    return _denial_rewrite(ctx, RdataType.NSEC, lambda o: _bitmap_change(ctx, o))


def m_nsec3_field(ctx: Ctx) -> Mutated | None:
    def ch(old):
        f = ctx.rng.choice(["flags", "iterations", "salt", "algorithm", "next", "bitmap"])
        if f == "bitmap":
            return _bitmap_change(ctx, old)
        v: Any = {
            "flags": old.flags ^ 1,
            "iterations": ctx.rng.choice([0, 1, old.iterations + 1, 51, 150, 500, 2500]),
            "salt": ctx.rng.choice([b"", b"\x00", old.salt + b"\x01"]),
            "algorithm": ctx.rng.choice([0, 2, 255]),
            "next": ctx.rng.choice([old.next[:-1] + bytes([old.next[-1] ^ 1]), b"\x00" * 20,
                                    b"\xff" * 20, old.next[:10]]),
        }[f]  # fmt: skip
        return old.replace(**{f: v}), f"{f} {getattr(old, f)!r} -> {v!r}"

    return _denial_rewrite(ctx, RdataType.NSEC3, ch)


# -- replay


def m_replay_rrset(ctx: Ctx) -> Mutated:
    """Add (or substitute) a real signed RRset of another name or type, with its RRSIG."""
    msg = ctx.msg()
    pool = ctx.world.pools
    rrset, sig = ctx.rng.choice(pool.data)
    rename = ctx.rng.random() < 0.4
    if rename:
        rrset, sig = _renamed(rrset, ctx.qname), _renamed(sig, ctx.qname)
    section = ctx.rng.choice(["answer", "answer", "authority"])
    if ctx.rng.random() < 0.5:
        setattr(msg, section, [rrset, sig])
        how = "replace"
    else:
        getattr(msg, section).extend([rrset, sig])
        how = "add"
    return msg, (
        f"{how} {section} with {'renamed ' if rename else ''}{rrset.name} "
        f"{dns.rdatatype.to_text(rrset.rdtype)} (+RRSIG)"
    )


def m_replay_denial(ctx: Ctx) -> Mutated:
    """NSEC/NSEC3 (with RRSIG) of another denial, added or instead of the proof."""
    msg = ctx.msg()
    pool = ctx.world.pools
    zone = ctx.world.signed_zone_of(ctx.qname)
    same = [
        p
        for p in pool.denial
        if (zone is not None and len(p[0].name) > 1 and p[0].name.parent() == zone.origin)
        or (
            zone is not None
            and p[0].name.is_subdomain(zone.origin)
            and p[0].rdtype == RdataType.NSEC
        )
    ]
    src = same if same and ctx.rng.random() < 0.8 else pool.denial
    picked = ctx.rng.sample(src, min(len(src), ctx.rng.choice([1, 2, 3])))
    keep = ctx.rng.random() < 0.5
    auth = [
        r
        for r in msg.authority
        if keep
        or (
            r.rdtype not in (RdataType.NSEC, RdataType.NSEC3)
            and not (r.rdtype == RdataType.RRSIG and r.covers in (RdataType.NSEC, RdataType.NSEC3))
        )
    ]
    for rr, sig in picked:
        auth += [rr, sig]
    msg.authority = auth
    return msg, ("add " if keep else "replace the proof by ") + ", ".join(
        f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)}" for rr, _ in picked
    )


def m_replay_response(ctx: Ctx) -> Mutated | None:
    """The whole response to another question (same zone most of the time)."""
    w = ctx.world
    zone = w.zone_of(ctx.qname)
    qs = [q for q in w.questions if q != (ctx.qname, ctx.qtype)]
    same = [q for q in qs if zone is not None and w.zone_of(q[0]) is zone]
    other = ctx.rng.choice(same if same and ctx.rng.random() < 0.7 else qs)
    wire = w.wire(*other)
    if wire is None:
        return None
    msg = dns.message.from_wire(wire)
    msg.id = ctx.query.id
    msg.question = list(ctx.query.question)
    return msg, f"the response to {other[0]} {dns.rdatatype.to_text(other[1])}"


def m_wildcard_replay(ctx: Ctx) -> Mutated | None:
    """A wildcard expansion (data or NSEC, with its RRSIG) replayed for another name."""
    msg = ctx.msg()
    rrset, sig, _zone = ctx.rng.choice(ctx.world.pools.wildcard)
    parent = rrset.name.parent()
    owner = ctx.qname if ctx.rng.random() < 0.5 else Name((b"x", *ctx.qname.labels))
    if not owner.is_subdomain(parent) or owner == parent:
        owner = Name((ctx.rng.choice([b"a", b"zzz", b"\xff" * 8, b"m-1"]), *parent.labels))
    r2, s2 = _renamed(rrset, owner), _renamed(sig, owner)
    if rrset.rdtype == RdataType.NSEC:
        msg.authority = [*msg.authority, r2, s2]
    else:
        msg.answer = [*msg.answer, r2, s2]
    return msg, f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} expanded as {owner}"


def _proof_pairs(zone: SignedZone, keys) -> list:
    out = []
    for k in dict.fromkeys(keys):
        if isinstance(k, bytes):
            if k in zone.nsec3_rrsets:
                out.append(zone.nsec3_rrsets[k])
        elif dns.rdatatype.NSEC in zone.rrsets.get(k, {}):
            out.append((zone.rrsets[k][RdataType.NSEC], zone.rrsigs.get(k, {}).get(RdataType.NSEC)))
    return out


def m_forge_denial(ctx: Ctx) -> Mutated | None:
    """A denial for the question made of the zone's real, signed NSEC/NSEC3 records that
    come closest to proving it (an opt-out span, a wildcard-expanded NSEC, an ENT...)."""
    w = ctx.world
    zone = w.signed_zone_of(ctx.qname)
    if zone is None or zone.denial is None:
        return None
    q = ctx.qname
    msg = ctx.msg()
    nx = ctx.rng.random() < 0.6
    msg.set_rcode(dns.rcode.NXDOMAIN if nx else dns.rcode.NOERROR)
    soa = (zone.rrsets[zone.origin][RdataType.SOA], zone.rrsigs[zone.origin][RdataType.SOA])
    keys: list = []
    how = ""
    if isinstance(zone.denial, NSEC3):
        n, prev = q, q
        while zone.nsec3_match(n) is None and n != zone.origin:
            prev, n = n, n.parent()
        keys = [
            zone.nsec3_hash(n),
            zone.nsec3_cover(prev),
            zone.nsec3_cover(Name((b"*", *n.labels))),
        ]
        if zone.nsec3_match(q) is not None and not nx:
            keys = [zone.nsec3_hash(q)]
        how = f"closest provable encloser {n}"
    else:
        # the wildcard-expanded NSEC attack (RFC 4035 §5.3.4): an NSEC of a wildcard, renamed
        # to a name just before q inside the wildcard's parent, covers q.
        wild = [p for p in w.pools.wildcard if p[0].rdtype == RdataType.NSEC and p[2] is zone]
        enc = q.parent() if len(q) > len(zone.origin) else q
        keys = [zone.nsec_cover(q), zone.nsec_cover(Name((b"*", *enc.labels)))]
        if wild and ctx.rng.random() < 0.7:
            rr, sig, _ = ctx.rng.choice(wild)
            lab = q.labels[0] if len(q) > len(zone.origin) else b"a"
            lab = (lab[:-1] + bytes([max(lab[-1] - 1, 0)]) + b"\xff") if lab else b"\x00"
            parent = rr.name.parent()
            owner = (
                Name((lab, *q.labels[1:]))
                if q.parent().is_subdomain(parent) and len(q) > len(parent)
                else Name((lab, *parent.labels))
            )
            msg.authority = [soa[0], soa[1], _renamed(rr, owner), _renamed(sig, owner)]
            for p in _proof_pairs(zone, keys[1:]):
                msg.authority += [x for x in p if x is not None]
            msg.answer = []
            return msg, f"{'NXDOMAIN' if nx else 'NODATA'} by {rr.name} NSEC expanded as {owner}"
        how = "covering NSECs"
    msg.answer = []
    msg.authority = [soa[0], soa[1]]
    for p in _proof_pairs(zone, keys):
        msg.authority += [x for x in p if x is not None]
    return msg, f"forged {'NXDOMAIN' if nx else 'NODATA'} from {zone.origin}: {how}"


def m_strip_sigs(ctx: Ctx) -> Mutated | None:
    msg = ctx.msg()
    which = ctx.rng.choice(["answer", "authority", "all"])
    secs = SECTIONS if which == "all" else (which,)
    for s in secs:
        setattr(msg, s, [r for r in getattr(msg, s) if r.rdtype != RdataType.RRSIG])
    return msg, f"strip RRSIGs from {which}"


def m_cname_inject(ctx: Ctx) -> Mutated:
    msg = ctx.msg()
    cnames = [p for p in ctx.world.pools.data if p[0].rdtype == RdataType.CNAME]
    rr, sig = ctx.rng.choice(cnames)
    if ctx.rng.random() < 0.6:
        rr, sig = _renamed(rr, ctx.qname), _renamed(sig, ctx.qname)
    msg.answer = [rr, sig, *msg.answer] if ctx.rng.random() < 0.5 else [rr, sig]
    return msg, f"answer with CNAME {rr.name} -> {rr[0].target} (+RRSIG)"


def m_alias_target(ctx: Ctx) -> Mutated | None:
    """Another target in a CNAME (e.g. the unsigned one synthesised from a DNAME) or DNAME."""
    msg = ctx.msg()
    cands = [c for c in _rrsets(msg, sigs=False) if c[2].rdtype in (5, 39)]
    if not cands:
        return None
    s, i, rrset = ctx.rng.choice(cands)
    old = rrset[0]
    if rrset.rdtype == 39 or ctx.rng.random() < 0.3:
        target = ctx.rng.choice([*ctx.world.signed.zones, dns.name.root])
    else:
        target = _pick_name(ctx)
    _replace_in(msg, s, i, _with_rdata(rrset, old, old.replace(target=target)))
    what = dns.rdatatype.to_text(rrset.rdtype)
    return msg, f"{what} {rrset.name} target {old.target} -> {target}"


def m_empty(ctx: Ctx) -> Mutated:
    msg = ctx.msg()
    what = ctx.rng.choice(["answer", "authority", "both"])
    if what in ("answer", "both"):
        msg.answer = []
    if what in ("authority", "both"):
        msg.authority = []
    return msg, f"empty {what}"


MUTATIONS: dict[str, tuple[Mutation, int]] = {
    "bitflip": (m_bitflip, 12),
    "byte-set": (m_byte_set, 4),
    "byte-insert": (m_insert, 3),
    "byte-delete": (m_delete, 3),
    "truncate": (m_truncate, 4),
    "header-count": (m_header_counts, 2),
    "rcode": (m_rcode, 3),
    "flags": (m_flags, 2),
    "case": (m_case, 2),
    "ttl": (m_ttl, 2),
    "shuffle": (m_shuffle, 4),
    "drop-rrset": (m_drop, 5),
    "drop-rdata": (m_drop_rdata, 3),
    "add-rdata": (m_add_rdata, 3),
    "section-move": (m_move, 3),
    "rename": (m_rename, 4),
    "rrsig-signer": (m_rrsig_signer, 6),
    "rrsig-labels": (m_rrsig_labels, 5),
    "rrsig-dates": (m_rrsig_dates, 4),
    "rrsig-keytag": (m_rrsig_keytag, 3),
    "rrsig-algorithm": (m_rrsig_algorithm, 3),
    "rrsig-type": (m_rrsig_type, 3),
    "rrsig-ttl": (m_rrsig_ttl, 1),
    "rrsig-signature": (m_rrsig_signature, 2),
    "rrsig-flood": (m_rrsig_flood, 1),
    "strip-rrsig": (m_strip_sigs, 3),
    "nsec-next": (m_nsec_next, 3),
    "nsec-bitmap": (m_nsec_bitmap, 3),
    "nsec3-field": (m_nsec3_field, 5),
    "replay-rrset": (m_replay_rrset, 5),
    "replay-denial": (m_replay_denial, 5),
    "replay-response": (m_replay_response, 5),
    "wildcard-replay": (m_wildcard_replay, 4),
    "forge-denial": (m_forge_denial, 5),
    "cname-inject": (m_cname_inject, 2),
    "alias-target": (m_alias_target, 2),
    "empty": (m_empty, 2),
}
KINDS = list(MUTATIONS)
WEIGHTS = [w for _, w in MUTATIONS.values()]


def mutate(ctx: Ctx, kind: str | None = None) -> tuple[str, bytes, str]:
    """Apply one mutation (``kind`` or a random one; another if it does not apply) →
    (kind, mutated wire, description)."""
    for attempt in range(20):
        k = kind if kind is not None and attempt == 0 else ctx.rng.choices(KINDS, WEIGHTS)[0]
        if attempt >= 10:
            k = "bitflip"
        try:
            got = MUTATIONS[k][0](ctx)
        except (dns.exception.DNSException, ValueError, TypeError, IndexError, KeyError):
            got = None
        if got is None:
            continue
        out, what = got
        if isinstance(out, dns.message.Message):
            try:
                # no shuffling by dnspython: lookup (seed, index) gives the same bytes again
                out = out.to_wire(max_size=65535, want_shuffle=False)
            except Exception:
                continue
        if out == ctx.wire and k not in ("case", "ttl", "shuffle"):
            continue
        return k, out, what
    raise AssertionError("no mutation applies")  # bitflip always does


# ------------------------------------------------------------------------------ the client


class FuzzClient:
    """The ``StubClient`` interface, answered by the world's Responder in-process.

    The first answer to ``target`` is replaced by a mutation; like the stub, replies are
    cached per question (a repeated question gets the same, possibly mutated, reply), an
    unparsable reply or one to another question is ``malformed``, and a reply with TC set
    is retried "over TCP" (the unmutated answer).
    """

    def __init__(
        self,
        world: FuzzWorld,
        target: Question | None = None,
        mutator: Callable[[Ctx], tuple[str, bytes, str]] | None = None,
        rng: random.Random | None = None,
        replay_wire: bytes | None = None,
    ) -> None:
        self.world = world
        self.target = target
        self.mutator = mutator
        self.rng = rng or random.Random(0)
        self.replay_wire = replay_wire
        self.asked: list[Question] = []
        self.cache: dict[Question, Reply] = {}
        self.mutation: tuple[str, bytes, str] | None = None
        self.checking_disabled = True

    async def query(self, name, rdtype, *, deadline: float | None = None) -> Reply:
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        key = (qname, int(dns.rdatatype.RdataType.make(rdtype)))
        self.asked.append(key)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        reply = self._answer(key)
        self.cache[key] = reply
        return reply

    def _answer(self, key: Question) -> Reply:
        wire = self.world.wire(*key)
        if wire is None:
            return Reply(None, TIMEOUT, "no answer")
        if key == self.target and self.mutation is None:
            if self.replay_wire is not None:
                self.mutation = ("replay", self.replay_wire, "recorded mutation")
            else:
                assert self.mutator is not None
                ctx = Ctx(self.world, self.rng, self.world.query(*key), wire, *key)
                self.mutation = self.mutator(ctx)
            mutated = self.mutation[1]
            reply = _parse(self.world.query(*key), mutated)
            if reply.response is not None and reply.response.flags & dns.flags.TC:
                return _parse(self.world.query(*key), wire)  # the stub falls back to TCP
            return reply
        return self.world.reply(key)


def _parse(query: dns.message.Message, wire: bytes) -> Reply:
    try:
        msg = dns.message.from_wire(wire)
    except Exception as exc:  # what dnspython refuses, the stub reports as malformed
        return Reply(None, MALFORMED, f"{type(exc).__name__}: {exc}")
    if not query.is_response(msg):
        return Reply(None, MALFORMED, "the reply answers another question")
    return Reply(msg)


# ------------------------------------------------------------------------------ oracles


def summary(ans: Answer) -> tuple:
    """The data of an answer, as oracle (b) compares it (not TTLs, not case, not order)."""
    rrset = None
    if ans.rrset is not None:
        rrset = (
            ans.rrset.name.canonicalize(),
            ans.rrset.rdtype,
            frozenset(rd.to_digestable() for rd in ans.rrset),
        )
    chain = tuple((s.owner.canonicalize(), s.target.canonicalize()) for s in ans.cnames)
    return (ans.kind.value, rrset, chain, ans.insecure_delegation)


@dataclass
class Baseline:
    status: Status
    summary: tuple
    reason: str | None
    asked: list[Question]


@dataclass
class Outcome:
    """One fuzzed lookup: what was asked and mutated, what came back, what is wrong."""

    index: int
    question: Question
    anchor: str
    warm: bool
    target: Question
    kind: str
    what: str
    wire: bytes
    baseline: Baseline
    status: str | None = None
    reason: str | None = None
    detail: str = ""
    result_summary: tuple | None = None
    cpu: float = 0.0
    verifications: int = 0
    error: str | None = None  # exception type and where
    error_trace: str = ""
    findings: list[tuple[str, str]] = field(default_factory=list)  # (oracle, key)

    def response_text(self) -> str:
        try:
            return dns.message.from_wire(self.wire).to_text()
        except Exception as exc:
            return f"(unparsable: {type(exc).__name__}: {exc}) {self.wire.hex()}"

    def describe(self) -> str:
        q = f"{self.question[0]} {dns.rdatatype.to_text(self.question[1])}"
        t = f"{self.target[0]} {dns.rdatatype.to_text(self.target[1])}"
        return (
            f"lookup #{self.index}: {q} (anchor {self.anchor}, {'warm' if self.warm else 'cold'} "
            f"key cache)\n  mutated the answer to {t}: [{self.kind}] {self.what}\n"
            f"  unmutated: {self.baseline.status} {self.baseline.summary[0]}\n"
            f"  mutated:   {self.status} {self.result_summary[0] if self.result_summary else ''}"
            f" reason={self.reason} {self.detail}\n"
            + (f"  exception: {self.error}\n{self.error_trace}" if self.error else "")
            + f"  cpu {self.cpu * 1000:.1f} ms"
        )


class Harness:
    """Runs fuzzed lookups against one world; keeps baselines and a warm key cache."""

    def __init__(self, world: FuzzWorld, *, cpu_limit: float | None = CPU_LIMIT) -> None:
        self.world = world
        self.cpu_limit = cpu_limit  # None: judge work by verifications only (no timing)
        self.baselines: dict[tuple[Question, str, bool], Baseline] = {}
        self._warm: dict[str, tuple[dict, float]] = {}

    def validator(self, client, anchor: str, warm: bool) -> Validator:
        v = Validator(client, self.world.anchors[anchor], now=lambda: self.world.now)
        if warm:
            keys = self._warm_keys(anchor)
            if hasattr(v, "_keys"):
                v._keys.update(keys)  # internal: the zone-key cache, kept warm for speed
        return v

    def _warm_keys(self, anchor: str) -> dict:
        got = self._warm.get(anchor)
        if got is not None and time.monotonic() - got[1] < 120:
            return got[0]
        v = Validator(
            FuzzClient(self.world), self.world.anchors[anchor], now=lambda: self.world.now
        )

        async def go() -> None:
            for q in self.world.questions:
                await v.lookup(*q)

        asyncio.run(go())
        keys = dict(getattr(v, "_keys", {}))
        self._warm[anchor] = (keys, time.monotonic())
        # baselines taken with another snapshot stay valid: the keys are the same
        return keys

    def baseline(self, question: Question, anchor: str, warm: bool) -> Baseline:
        key = (question, anchor, warm)
        b = self.baselines.get(key)
        if b is None:
            client = FuzzClient(self.world)
            v = self.validator(client, anchor, warm)
            ans = asyncio.run(v.lookup(*question))
            b = Baseline(ans.status, summary(ans), ans.reason, list(dict.fromkeys(client.asked)))
            self.baselines[key] = b
        return b

    def run(
        self,
        index: int,
        seed: int,
        *,
        question: Question | None = None,
        anchor: str | None = None,
        warm: bool | None = None,
        target_pick: float | None = None,
        kind: str | None = None,
        replay_wire: bytes | None = None,
        target: Question | None = None,
    ) -> Outcome:
        """One fuzzed lookup, reproducible from (world, seed, index)."""
        rng = random.Random(f"{seed}:{index}")
        w = self.world
        if question is None:
            question = rng.choice(w.questions)
        if anchor is None:
            anchor = rng.choice(["root", "root", "tld"])
        if warm is None:
            warm = rng.random() < 0.7
        base = self.baseline(question, anchor, warm)
        if target is None:
            pick = rng.random() if target_pick is None else target_pick
            # the final question half the time, else any question the lookup asks
            asked = base.asked
            target = (
                question
                if pick < 0.4 and question in asked
                else asked[int(pick * len(asked)) % len(asked)]
            )
        client = FuzzClient(
            w, target, lambda ctx: mutate(ctx, kind), rng=rng, replay_wire=replay_wire
        )
        v = self.validator(client, anchor, warm)
        out = Outcome(index, question, anchor, warm, target, "", "", b"", base)
        t0 = time.process_time()
        try:
            with _cpu_alarm(HARD_LIMIT):
                ans = asyncio.run(_bounded(v.lookup(*question), HANG_LIMIT))
        except BaseException as exc:  # oracle (a)
            if isinstance(exc, KeyboardInterrupt):
                raise
            out.cpu = time.process_time() - t0
            if isinstance(exc, _Hang):
                out.error = f"no answer after {HANG_LIMIT:.0f} s ({out.cpu:.2f} s CPU)"
                out.error_trace = exc.args[0]
                if client.mutation is not None:
                    out.kind, out.wire, out.what = client.mutation
                out.findings.append(("hang", f"lookup never ends, by {out.kind}"))
                return out
            tb = traceback.extract_tb(exc.__traceback__)
            ours = [f for f in tb if "dane_monitor" in f.filename] or tb
            where = f"{ours[-1].filename.split('/')[-1]}:{ours[-1].lineno}" if ours else "?"
            out.error = f"{type(exc).__name__}: {exc} at {where}"
            out.error_trace = "".join(traceback.format_list(tb[-6:]))
            if client.mutation is not None:
                out.kind, out.wire, out.what = client.mutation
            out.findings.append(("exception", f"{type(exc).__name__} at {where}"))
            return out
        out.cpu = time.process_time() - t0
        out.verifications = getattr(v, "verifications", 0)
        if client.mutation is not None:
            out.kind, out.wire, out.what = client.mutation
        else:
            out.kind, out.what = "not-asked", "the lookup never asked the target question"
        out.status, out.reason, out.detail = ans.status.value, ans.reason, ans.detail
        out.result_summary = summary(ans)
        judge(w, out, ans, cpu_limit=self.cpu_limit)
        return out


class _CPUTimeout(Exception):
    pass


class _Hang(Exception):
    """The lookup awaits something that never comes (the fuzz client answers at once)."""


async def _bounded(coro, seconds: float):
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    stacks = []
    for t in asyncio.all_tasks():
        if t is not asyncio.current_task():
            frames = t.get_stack(limit=8)
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
            stacks.append(f"  task {t.get_name()}: {where}")
    task.cancel()
    raise _Hang("\n".join(stacks) + "\n")


class _cpu_alarm:
    """Interrupt a lookup that has used ``seconds`` of CPU (an endless loop would hang the run)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.old: Any = None

    def __enter__(self) -> None:
        try:
            self.old = signal.signal(signal.SIGPROF, self._fire)
            signal.setitimer(signal.ITIMER_PROF, self.seconds)
        except ValueError:  # not the main thread: no alarm
            self.old = None

    @staticmethod
    def _fire(signum, frame) -> None:
        raise _CPUTimeout("lookup exceeded the hard CPU limit")

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, self.old)


def judge(
    world: FuzzWorld, out: Outcome, ans: Answer, *, cpu_limit: float | None = CPU_LIMIT
) -> None:
    """Oracles (b), (c), (d) on one finished lookup (oracle (a) is the caller's)."""
    base = out.baseline
    q = out.question
    if ans.status == Status.SECURE and out.result_summary is not None:  # (b)
        if base.status == Status.SECURE:
            altered = out.result_summary != base.summary
        else:  # no validated data to compare with: the data the world serves
            altered = out.result_summary[:3] != world.truth(q)
        if altered:
            key = f"secure {base.summary[0]}->{out.result_summary[0]}"
            if base.status != Status.SECURE:
                key += f" (unmutated {base.status})"
            out.findings.append(("secure-altered", f"{key} by {out.kind}"))
        elif base.status != Status.SECURE:
            out.findings.append(
                ("secure-upgrade", f"{base.status} ({base.reason})->secure by {out.kind}")
            )
    anchored = world.anchors[out.anchor].closest(q[0]) is not None
    if (
        ans.status == Status.INSECURE
        and base.status in (Status.SECURE, Status.BOGUS)
        and anchored
        and not world.below_insecure(q[0])
    ):  # (c)
        out.findings.append(("downgrade", f"{base.status}->insecure ({ans.reason}) by {out.kind}"))
    if cpu_limit is not None and out.cpu > cpu_limit:  # (d)
        out.findings.append(("cpu", f"{out.cpu:.1f}s CPU by {out.kind} on {q[0]}"))
    if out.verifications > WORK_LIMIT:  # (d), counted rather than timed
        out.findings.append(("work", f"over {WORK_LIMIT} signature checks by {out.kind}"))


def outcome_record(o: Outcome) -> dict[str, Any]:
    """A JSON-able reproducer: enough to replay the exact mutated response."""
    return {
        "index": o.index,
        "question": [o.question[0].to_text(), dns.rdatatype.to_text(o.question[1])],
        "anchor": o.anchor,
        "warm": o.warm,
        "target": [o.target[0].to_text(), dns.rdatatype.to_text(o.target[1])],
        "kind": o.kind,
        "what": o.what,
        "wire": o.wire.hex(),
        "unmutated": [o.baseline.status.value, o.baseline.summary[0], o.baseline.reason],
        "status": o.status,
        "reason": o.reason,
        "detail": o.detail,
        "cpu": round(o.cpu, 4),
        "verifications": o.verifications,
        "error": o.error,
        "findings": o.findings,
    }


def replay(h: Harness, rec: dict[str, Any]) -> Outcome:
    """Re-run a recorded reproducer (same world file) with its exact mutated response."""
    q = (dns.name.from_text(rec["question"][0]), int(RdataType.make(rec["question"][1])))
    t = (dns.name.from_text(rec["target"][0]), int(RdataType.make(rec["target"][1])))
    o = h.run(
        rec["index"], 0, question=q, anchor=rec["anchor"], warm=rec["warm"], target=t,
        replay_wire=bytes.fromhex(rec["wire"]),
    )  # fmt: skip
    o.kind, o.what = rec["kind"], rec["what"]
    return o


__all__ = [
    "KINDS",
    "MUTATIONS",
    "FuzzClient",
    "FuzzWorld",
    "Harness",
    "Outcome",
    "build_world",
    "judge",
    "mutate",
    "outcome_record",
    "replay",
    "summary",
]
