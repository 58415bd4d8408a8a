"""Build and sign a hierarchy of DNS zones in memory (no I/O).

A :class:`Hierarchy` starts with an anchor zone (a private root by default);
:meth:`Hierarchy.zone` adds zones below it, each delegated from the closest
enclosing zone (NS + glue, and a DS unless the child is unsigned or the
delegation is deliberately insecure).  :meth:`Hierarchy.sign` turns the whole
thing into an immutable :class:`SignedHierarchy`, which the authoritative
server in :mod:`dane_monitor.world.dnsserver` serves.

Deliberate breakage is configured with :meth:`Zone.fault`: some faults change
what gets signed (expired or corrupted signatures, missing RRSIGs, a DS that
matches nothing, a missing DS), the others are recorded for the server
(missing or wrong denial-of-existence proofs, SERVFAIL, silence).

Attacks on validators' CPU are zone options rather than faults, because they take sizes:
:class:`KeyTrap` (CVE-2023-50387: DNSKEYs sharing one key tag and RRSIGs with that tag that
verify under none of them) and ``nsec3_flood`` (CVE-2023-50868: negative answers that carry
many NSEC3 records, best with iterations at a validator's cap).

Several authoritative servers per zone: :meth:`Zone.secondary` adds a name server
``<label>.<apex>`` at its own address (listed in the zone's NS RRset and in the parent's
delegation, with glue). By default it serves the same signed data as the primary; each one's
copy is settable on its own (:class:`Secondary`): ``age`` (a stale copy: signed that many
seconds ago, so an older SOA serial and older, still valid, signatures), ``sig_lifetime``
(signatures that expire earlier), :meth:`Secondary.set`/:meth:`Secondary.remove` (another
RRset, e.g. the TLSA RRset before a rollover), :meth:`Secondary.fault` (any :class:`Fault`,
on this copy only) and ``behaviour`` (:class:`NSBehaviour`: lame, silent, down).
:meth:`Hierarchy.sign` signs each copy (``SignedHierarchy.secondaries``); the world serves
each on its own loopback address.

Algorithms: every algorithm dnspython signs with, including RSASHA1 (5) and
RSASHA1-NSEC3-SHA1 (7, with NSEC3), which several validators refuse by policy (they treat such
zones as insecure); NSEC3 with any iteration count up to 65535 (RFC 9276 validators treat
counts above their limit, 150 or less, as insecure).
"""

from __future__ import annotations

import base64
import bisect
import copy
import dataclasses
import io
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Literal

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.rdtypes.ANY.NSEC3PARAM
import dns.rdtypes.ANY.RRSIG
import dns.rrset
from dns.dnssecalgs import get_algorithm_cls
from dns.dnssecalgs.base import GenericPrivateKey
from dns.dnssectypes import Algorithm, DSDigest
from dns.rdatatype import RdataType

from dane_monitor.lookup.anchors import Anchor, TrustAnchors, bind_format

__all__ = [
    "NSEC",
    "NSEC3",
    "Denial",
    "Fault",
    "Hierarchy",
    "KeyPair",
    "KeyTrap",
    "NSBehaviour",
    "Secondary",
    "SignedHierarchy",
    "SignedSecondary",
    "SignedZone",
    "Zone",
    "colliding_rsa_dnskey",
    "key_tag_sum",
    "nsec3_hash_raw",
]

IN = dns.rdataclass.IN
DAY = 86400
# How far outside its validity an expired or not-yet-valid signature lies: well past the
# clock skew validators forgive (Unbound's val-sig-skew-max is one day, so a signature that
# expired exactly one day ago was bogus or secure by a few seconds of test run time).
FAULT_OFFSET = 7 * DAY


# --------------------------------------------------------------------------- config


class Denial:
    """Base class of the denial-of-existence configurations :class:`NSEC`, :class:`NSEC3`."""


@dataclass(frozen=True)
class NSEC(Denial):
    """Plain NSEC chain (RFC 4034).  ``NSEC`` (the class) and ``NSEC()`` are both accepted."""


@dataclass(frozen=True)
class NSEC3(Denial):
    """Hashed denial of existence (RFC 5155), SHA-1."""

    iterations: int = 0
    salt: bytes = b""
    opt_out: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.salt, str):  # accept hex text for convenience
            object.__setattr__(self, "salt", bytes.fromhex(self.salt))
        if not 0 <= self.iterations <= 65535:
            raise ValueError("NSEC3 iterations out of range")
        if len(self.salt) > 255:
            raise ValueError("NSEC3 salt too long")


#: what a response may hold, as the server sends it over TCP, minus room for the header,
#: the question, the OPT record and a SOA: floods stop there
FLOOD_BUDGET = 65535 - 1024


@dataclass(frozen=True)
class KeyTrap:
    """A KeyTrap-style zone (CVE-2023-50387): a validator that tries every DNSKEY with an
    RRSIG's key tag for every RRSIG does ``keys * rrsigs`` RSA verifications per RRset.

    The DNSKEY RRset gets ``zsk_keys`` RSA keys (random moduli, which verify nothing) whose key
    tag is the real ZSK's, and ``ksk_keys`` whose tag is the real KSK's; every RRset of a type
    in ``types`` gets ``rrsigs`` extra RRSIGs with the ZSK's tag, and the DNSKEY RRset
    ``dnskey_rrsigs`` with the KSK's tag (None: as many as fit in one TCP response). The real
    keys and signatures come last, so a validator without limits ends up *secure*, after trying
    everything; one with limits gives up first (bogus). Every count is capped so that each
    response still fits a TCP message; ``SignedZone.stats`` says what was published.
    Needs an RSA zone: RSA verification is the expensive case, and an RSA key's tag can be
    steered by two bytes of its modulus.
    """

    zsk_keys: int = 200
    ksk_keys: int = 0
    rrsigs: int = 200
    dnskey_rrsigs: int | None = None
    types: tuple[str, ...] = ("TLSA",)


class Fault(StrEnum):
    """Deliberate breakage of a zone, a name, or one RRset."""

    EXPIRED_RRSIG = "expired-rrsig"
    NOT_YET_VALID_RRSIG = "not-yet-valid-rrsig"
    BAD_SIGNATURE = "bad-signature"
    MISSING_RRSIG = "missing-rrsig"
    DS_MISMATCH = "ds-mismatch"
    UNSIGNED_DELEGATION = "unsigned-delegation"
    MISSING_DENIAL = "missing-denial"
    WRONG_DENIAL = "wrong-denial"
    SERVFAIL = "servfail"
    NO_ANSWER = "no-answer"


#: faults that change what the signer produces
SIGNING_FAULTS = frozenset(
    {Fault.EXPIRED_RRSIG, Fault.NOT_YET_VALID_RRSIG, Fault.BAD_SIGNATURE, Fault.MISSING_RRSIG}
)
#: faults that only make sense for a whole zone (they live in the parent)
ZONE_FAULTS = frozenset({Fault.DS_MISMATCH, Fault.UNSIGNED_DELEGATION})
#: faults the server applies when answering
SERVER_FAULTS = frozenset(
    {Fault.MISSING_DENIAL, Fault.WRONG_DENIAL, Fault.SERVFAIL, Fault.NO_ANSWER}
)


@dataclass(frozen=True)
class FaultSpec:
    """One configured fault: ``name`` None means the whole zone, ``rdtype`` None all types."""

    fault: Fault
    name: dns.name.Name | None = None
    rdtype: RdataType | None = None

    def matches(self, name: dns.name.Name, rdtype: int) -> bool:
        """Exact-name match, as used for signing faults."""
        return (self.name is None or self.name == name) and (
            self.rdtype is None or self.rdtype == rdtype
        )

    def covers(self, qname: dns.name.Name, qtype: int | None = None) -> bool:
        """Subtree match, as used for the server's faults."""
        if self.name is not None and not qname.is_subdomain(self.name):
            return False
        return self.rdtype is None or qtype is None or self.rdtype == qtype


class NSBehaviour(StrEnum):
    """How a secondary name server (:class:`Secondary`) answers."""

    #: answers from its copy of the zone, authoritatively (AA=1)
    SERVE = "serve"
    #: lame: REFUSED to every query (it does not think it serves the zone)
    REFUSED = "refused"
    #: lame: the answers of SERVE, but without the AA bit (not authoritative)
    NOT_AUTHORITATIVE = "not-authoritative"
    #: the server is up and drops every query (the querier times out)
    SILENT = "silent"
    #: nothing listens at the address (UDP: ICMP port unreachable; TCP: connection refused)
    DOWN = "down"


class Secondary:
    """Another authoritative server of a zone: ``<label>.<apex>`` at ``address``.

    Made by :meth:`Zone.secondary`; its copy of the zone is the primary's unless changed
    here. Changes apply to this copy only, at signing time (so later :meth:`Zone.add` calls
    reach every copy, while :meth:`set` overrides win on their RRsets).
    """

    def __init__(
        self,
        zone: Zone,
        label: str,
        address: str,
        *,
        behaviour: NSBehaviour | str = NSBehaviour.SERVE,
        age: int | timedelta = 0,
        sig_lifetime: int | timedelta | None = None,
        glue_only: bool = False,
    ) -> None:
        self.zone = zone
        self.name = dns.name.Name((label.encode(), *zone.origin.labels))
        self.address = address
        self.behaviour = NSBehaviour(behaviour)
        #: seconds: this copy is the zone as signed ``age`` seconds ago (SOA serial, RRSIG
        #: inception and expiration all that much older)
        self.age = _seconds(age)
        if self.age < 0:
            raise ValueError("a secondary's copy cannot be newer than the primary's")
        #: seconds from signing to the RRSIGs' expiration (None: the zone's sig_lifetime)
        self.sig_lifetime = None if sig_lifetime is None else _seconds(sig_lifetime)
        #: its address is published only as glue in the parent's delegation, not in the zone
        #: (a zone that forgot its in-bailiwick server's address: resolvers that follow the
        #: delegation reach it, a lookup of its name finds no address)
        self.glue_only = glue_only
        self.overrides: dict[tuple[dns.name.Name, RdataType], tuple[dns.rdata.Rdata, ...]] = {}
        self.faults: list[FaultSpec] = []

    def __repr__(self) -> str:
        return f"Secondary({self.name.to_text()!r}, {self.address!r}, {self.behaviour.value})"

    def set(self, name: str | dns.name.Name, rdtype: str | int, *rdatas: str) -> Secondary:
        """Serve these records as the RRset ``name``/``rdtype`` (none: the RRset is absent)."""
        owner = self.zone.name(name)
        rt = RdataType.make(rdtype)
        self.overrides[(owner, rt)] = tuple(
            dns.rdata.from_text(IN, rt, t, origin=self.zone.origin, relativize=False)
            for t in rdatas
        )
        return self

    def remove(self, name: str | dns.name.Name, rdtype: str | int) -> Secondary:
        """This copy lacks the RRset ``name``/``rdtype``."""
        return self.set(name, rdtype)

    def fault(
        self,
        fault: Fault | str,
        name: str | dns.name.Name | None = None,
        rdtype: str | int | None = None,
    ) -> Secondary:
        """A signing or serving :class:`Fault` in this copy only (not the parent's faults)."""
        f = Fault(fault)
        if f in ZONE_FAULTS:
            raise ValueError(f"{f} lives in the parent: not a secondary's fault")
        self.faults.append(
            FaultSpec(
                f,
                None if name is None else self.zone.name(name),
                None if rdtype is None else RdataType.make(rdtype),
            )
        )
        return self

    def copy_of(self, zone: Zone) -> Zone:
        """``zone`` as this server holds it (same keys; overrides, faults, lifetime applied)."""
        out = copy.copy(zone)
        out._records = {
            n: {rt: rds.copy() for rt, rds in node.items()} for n, node in zone._records.items()
        }
        out.faults = [*zone.faults, *self.faults]
        if self.sig_lifetime is not None:
            out.sig_lifetime = self.sig_lifetime
        for (owner, rt), rdatas in self.overrides.items():
            out.remove(owner, rt)
            if rdatas:
                out.add(owner, rt, *rdatas)
        return out


_RSA_ALGORITHMS = frozenset(
    {Algorithm.RSASHA1, Algorithm.RSASHA1NSEC3SHA1, Algorithm.RSASHA256, Algorithm.RSASHA512}
)


@dataclass(frozen=True)
class KeyPair:
    """A DNSSEC key: the private key object (dnspython's wrapper) and its DNSKEY rdata."""

    private: GenericPrivateKey
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY

    @property
    def key_tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @classmethod
    def generate(cls, algorithm: Algorithm, *, ksk: bool) -> KeyPair:
        kcls = get_algorithm_cls(algorithm)
        size = {"key_size": 2048} if algorithm in _RSA_ALGORITHMS else {}
        private = kcls.generate(**size)  # type: ignore[attr-defined]  # per class, not on the base
        flags = 257 if ksk else 256
        return cls(private=private, dnskey=private.public_key().to_dnskey(flags=flags))


def _as_name(name: str | dns.name.Name, origin: dns.name.Name | None = None) -> dns.name.Name:
    if isinstance(name, dns.name.Name):
        return name if name.is_absolute() or origin is None else name.derelativize(origin)
    if origin is not None and name in ("@", ""):
        return origin
    return dns.name.from_text(name, origin if origin is not None else dns.name.root)


def _seconds(value: int | float | timedelta) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


def nsec3_hash_raw(name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
    """RFC 5155 section 5 hash of ``name`` (raw 20 bytes, SHA-1).

    dnspython's ``nsec3_hash``, not the checker's (``lookup.denial.nsec3_hash``): the world
    is the checker's test oracle, so a bug in one hash cannot hide by being on both sides.
    """
    return base64.b32hexdecode(dns.dnssec.nsec3_hash(name, salt, iterations, 1))


def b32hex(raw: bytes) -> str:
    return base64.b32hexencode(raw).decode().lower()


def key_tag_sum(wire: bytes) -> int:
    """RFC 4034 Appendix B: the key tag of a DNSKEY from its RDATA (algorithms other than 1)."""
    ac = 0
    for i, byte in enumerate(wire):
        ac += byte if i & 1 else byte << 8
    ac += (ac >> 16) & 0xFFFF
    return ac & 0xFFFF


def colliding_rsa_dnskey(tag: int, flags: int, algorithm: int, bits: int = 2048) -> dns.rdata.Rdata:
    """An RSA DNSKEY (exponent 65537, a random odd ``bits``-bit modulus) whose key tag is
    ``tag``: two bytes in the middle of the modulus are chosen to make the RFC 4034 Appendix B
    checksum come out right. A random modulus is a usable public key for verification — it
    just verifies nothing."""
    exponent = b"\x01\x00\x01"
    nbytes = bits // 8
    pos = nbytes // 2 & ~1  # even: the RDATA is 4 + 1 + 3 bytes before the modulus
    while True:
        modulus = bytearray(os.urandom(nbytes))
        modulus[0] |= 0x80
        modulus[-1] |= 1
        modulus[pos] = modulus[pos + 1] = 0
        head = bytes((flags >> 8, flags & 0xFF, 3, algorithm, len(exponent))) + exponent
        words = 0
        for i, byte in enumerate(head + modulus):
            words += byte if i & 1 else byte << 8
        first = (tag - words - (words >> 16)) & 0xFFFF
        for value in (first, (first - 1) & 0xFFFF, (first + 1) & 0xFFFF):
            total = words + value
            if (total + (total >> 16)) & 0xFFFF == tag:
                modulus[pos], modulus[pos + 1] = value >> 8, value & 0xFF
                rd = dns.rdtypes.ANY.DNSKEY.DNSKEY(
                    IN, RdataType.DNSKEY, flags, 3, algorithm, head[4:] + bytes(modulus)
                )
                assert dns.dnssec.key_id(rd) == tag
                return rd


def _fake_signature(length: int) -> bytes:
    """Random bytes as an RSA signature, below any modulus of that length (top bit clear), so
    that a verifier does the full modular exponentiation before it finds out."""
    sig = bytearray(os.urandom(length))
    sig[0] &= 0x7F
    return bytes(sig)


def _wire_size(rrset: dns.rrset.RRset) -> int:
    """Bytes of ``rrset`` in a message (owner names compressed after the first)."""
    out = io.BytesIO()
    rrset.to_wire(out, compress={})
    return out.tell()


# --------------------------------------------------------------------------- zone


class Zone:
    """One zone's content and configuration, before signing."""

    def __init__(
        self,
        origin: str | dns.name.Name,
        *,
        signed: bool = True,
        denial: Denial | type[Denial] = NSEC,
        algorithm: Algorithm | int = Algorithm.ECDSAP256SHA256,
        ttl: int = 300,
        sig_lifetime: int | timedelta = 14 * DAY,
        sig_inception_offset: int | timedelta = 3600,
        ns_address: str | None = None,
        ns_address6: str | None = None,
        keytrap: KeyTrap | None = None,
        nsec3_flood: int = 0,
    ) -> None:
        self.origin = _as_name(origin)
        self.signed = signed
        if isinstance(denial, type):
            denial = denial()
        if not isinstance(denial, Denial):
            raise TypeError(f"denial must be NSEC or NSEC3(...), not {denial!r}")
        self.denial: Denial = denial
        self.algorithm = Algorithm.make(algorithm)
        if keytrap is not None and (not signed or self.algorithm not in _RSA_ALGORITHMS):
            raise ValueError("a KeyTrap zone must be signed with an RSA algorithm")
        if nsec3_flood and (not signed or not isinstance(denial, NSEC3)):
            raise ValueError("an NSEC3 flood needs a signed NSEC3 zone")
        #: KeyTrap-style key-tag collisions and RRSIG floods (CVE-2023-50387), or None
        self.keytrap = keytrap
        #: negative answers carry (about) this many NSEC3 records (CVE-2023-50868); the zone
        #: gets filler names ``n<i>.flood`` so that its chain is that long
        self.nsec3_flood = nsec3_flood
        self.ttl = ttl
        self.sig_lifetime = _seconds(sig_lifetime)
        self.sig_inception_offset = _seconds(sig_inception_offset)
        self.ns_address = ns_address
        self.ns_address6 = ns_address6
        self.faults: list[FaultSpec] = []
        #: the zone's other name servers, in NS order after ns1 (see :meth:`secondary`)
        self.secondaries: list[Secondary] = []
        self._records: dict[dns.name.Name, dict[RdataType, dns.rdataset.Rdataset]] = {}
        self.ksk: KeyPair | None = None
        self.zsk: KeyPair | None = None
        if signed:
            self.ksk = KeyPair.generate(self.algorithm, ksk=True)
            self.zsk = KeyPair.generate(self.algorithm, ksk=False)

    def __repr__(self) -> str:
        return f"Zone({self.origin.to_text()!r}, signed={self.signed}, denial={self.denial!r})"

    @property
    def nameserver(self) -> dns.name.Name:
        """The zone's (only) name server, ``ns1.<apex>``."""
        return dns.name.Name(("ns1", *self.origin.labels))

    def secondary(
        self,
        address: str,
        label: str | None = None,
        *,
        behaviour: NSBehaviour | str = NSBehaviour.SERVE,
        age: int | timedelta = 0,
        sig_lifetime: int | timedelta | None = None,
        glue_only: bool = False,
    ) -> Secondary:
        """Add a name server ``<label>.<apex>`` (default ns2, ns3, ...) at ``address``: the
        zone's NS RRset and the parent's delegation list it, with its address as glue
        (``glue_only``: only as glue, the zone itself has no address record for it)."""
        label = label or f"ns{len(self.secondaries) + 2}"
        sec = Secondary(
            self,
            label,
            address,
            behaviour=behaviour,
            age=age,
            sig_lifetime=sig_lifetime,
            glue_only=glue_only,
        )
        if sec.name == self.nameserver or any(s.name == sec.name for s in self.secondaries):
            raise ValueError(f"{sec.name} is already a name server of {self.origin}")
        if any(s.address == address for s in self.secondaries):
            raise ValueError(f"{address} already serves {self.origin}")
        self.secondaries.append(sec)
        return sec

    def name(self, name: str | dns.name.Name) -> dns.name.Name:
        """Absolute name from a relative one ("mail", "@", "*.wild") or an absolute one."""
        n = _as_name(name, self.origin)
        if not n.is_subdomain(self.origin):
            raise ValueError(f"{n} is not in zone {self.origin}")
        return n

    def add(
        self,
        name: str | dns.name.Name,
        rdtype: str | int,
        *rdatas: str | dns.rdata.Rdata,
        ttl: int | None = None,
    ) -> None:
        """Add records, e.g. ``zone.add("_25._tcp.mail", "TLSA", "3 1 1 ABCD...")``."""
        owner = self.name(name)
        rt = RdataType.make(rdtype)
        if rt in (RdataType.RRSIG, RdataType.NSEC, RdataType.NSEC3, RdataType.ANY):
            raise ValueError(f"{rt.name} records are made by the signer")
        if not rdatas:
            raise ValueError("no rdata given")
        node = self._records.setdefault(owner, {})
        rds = node.get(rt)
        if rds is None:
            rds = node[rt] = dns.rdataset.Rdataset(IN, rt)
        for text in rdatas:
            rd = (
                text
                if isinstance(text, dns.rdata.Rdata)
                else dns.rdata.from_text(IN, rt, text, origin=self.origin, relativize=False)
            )
            rds.add(rd, self.ttl if ttl is None else ttl)

    def remove(self, name: str | dns.name.Name, rdtype: str | int | None = None) -> None:
        """Remove an RRset (or every RRset at a name)."""
        owner = self.name(name)
        if rdtype is None:
            self._records.pop(owner, None)
        else:
            self._records.get(owner, {}).pop(RdataType.make(rdtype), None)

    def fault(
        self,
        fault: Fault | str,
        name: str | dns.name.Name | None = None,
        rdtype: str | int | None = None,
    ) -> None:
        """Break the zone (``name`` None), a name and its subtree, or one RRset on purpose."""
        f = Fault(fault)
        if f in ZONE_FAULTS and (name is not None or rdtype is not None):
            raise ValueError(f"{f} is a zone-level fault: give no name/rdtype")
        if f in ZONE_FAULTS | SIGNING_FAULTS and not self.signed and f != Fault.UNSIGNED_DELEGATION:
            raise ValueError(f"{f} needs a signed zone")
        self.faults.append(
            FaultSpec(
                f,
                None if name is None else self.name(name),
                None if rdtype is None else RdataType.make(rdtype),
            )
        )

    def has_fault(self, fault: Fault) -> bool:
        return any(fs.fault == fault for fs in self.faults)

    def records(self) -> Iterator[tuple[dns.name.Name, RdataType, dns.rdataset.Rdataset]]:
        for name, node in self._records.items():
            for rt, rds in node.items():
                yield name, rt, rds

    def ds(self, digest: int = 2) -> list[dns.rdtypes.ANY.DS.DS]:
        """The DS record(s) a parent should publish for this zone (from the KSK)."""
        if self.ksk is None:
            return []
        return [dns.dnssec.make_ds(self.origin, self.ksk.dnskey, DSDigest(digest))]


# --------------------------------------------------------------------------- signed result


@dataclass(frozen=True, eq=False)
class SignedZone:
    """A signed (or deliberately unsigned) zone, ready to serve.  Treat as read-only."""

    origin: dns.name.Name
    parent: dns.name.Name | None
    signed: bool
    denial: Denial | None
    ttl: int
    #: authoritative data (including delegation NS/DS and NSEC records), by owner and type
    rrsets: Mapping[dns.name.Name, Mapping[int, dns.rrset.RRset]]
    #: RRSIG RRsets by owner and covered type
    rrsigs: Mapping[dns.name.Name, Mapping[int, dns.rrset.RRset]]
    #: glue and other data below zone cuts (served as additional data only)
    glue: Mapping[dns.name.Name, Mapping[int, dns.rrset.RRset]]
    delegations: frozenset[dns.name.Name]
    empty_non_terminals: frozenset[dns.name.Name]
    #: NSEC: owner names in canonical order
    nsec_names: tuple[dns.name.Name, ...]
    #: NSEC3: raw hashes in order, and their (NSEC3, RRSIG) RRsets
    nsec3_hashes: tuple[bytes, ...]
    nsec3_rrsets: Mapping[bytes, tuple[dns.rrset.RRset, dns.rrset.RRset | None]]
    faults: tuple[FaultSpec, ...]
    ksk: dns.rdata.Rdata | None
    zsk: dns.rdata.Rdata | None
    #: DS records the parent publishes (may deliberately match nothing)
    parent_ds: tuple[dns.rdata.Rdata, ...]
    earliest_expiration: int | None
    stats: Mapping[str, int] = field(default_factory=dict)
    #: NSEC3 hashes whose records every negative answer carries (``Zone.nsec3_flood``)
    nsec3_flood: tuple[bytes, ...] = ()

    # -- lookups
    def rrset(self, name: str | dns.name.Name, rdtype: str | int) -> dns.rrset.RRset | None:
        n = _as_name(name, self.origin)
        rt = RdataType.make(rdtype)
        found = self.rrsets.get(n, {}).get(rt)
        if found is None and rt == RdataType.NSEC3:
            for rr, _sig in self.nsec3_rrsets.values():
                if rr.name == n:
                    return rr
        return found

    def rrsig(self, name: str | dns.name.Name, rdtype: str | int) -> dns.rrset.RRset | None:
        n = _as_name(name, self.origin)
        rt = RdataType.make(rdtype)
        found = self.rrsigs.get(n, {}).get(rt)
        if found is None and rt == RdataType.NSEC3:
            for rr, sig in self.nsec3_rrsets.values():
                if rr.name == n:
                    return sig
        return found

    @property
    def dnskey_rrset(self) -> dns.rrset.RRset | None:
        return self.rrsets.get(self.origin, {}).get(RdataType.DNSKEY)

    def all_rrsets(self) -> Iterator[tuple[dns.rrset.RRset, dns.rrset.RRset | None]]:
        """Every signed-or-signable authoritative RRset with its RRSIG (NSEC3 included)."""
        for name, node in self.rrsets.items():
            for rt, rrset in node.items():
                yield rrset, self.rrsigs.get(name, {}).get(rt)
        yield from self.nsec3_rrsets.values()

    def exists(self, name: dns.name.Name) -> bool:
        """Name exists in this zone (has data, or is an empty non-terminal)."""
        return name in self.rrsets or name in self.empty_non_terminals

    def nsec3_hash(self, name: dns.name.Name) -> bytes:
        assert isinstance(self.denial, NSEC3)
        return nsec3_hash_raw(name, self.denial.salt, self.denial.iterations)

    def nsec3_match(self, name: dns.name.Name) -> bytes | None:
        h = self.nsec3_hash(name)
        return h if h in self.nsec3_rrsets else None

    def nsec3_cover(self, name: dns.name.Name) -> bytes:
        """The hash of the NSEC3 whose span covers (or matches) ``name``."""
        h = self.nsec3_hash(name)
        i = bisect.bisect_right(self.nsec3_hashes, h) - 1
        return self.nsec3_hashes[i]  # i == -1 wraps to the last one, as it should

    def nsec_cover(self, name: dns.name.Name) -> dns.name.Name:
        """Owner of the NSEC that matches or covers ``name``."""
        i = bisect.bisect_right(self.nsec_names, name) - 1
        return self.nsec_names[i]

    def faults_of(self, *kinds: Fault) -> list[FaultSpec]:
        return [f for f in self.faults if f.fault in kinds]


@dataclass(frozen=True, eq=False)
class SignedSecondary:
    """One secondary name server of a zone, with its signed copy of the zone."""

    name: dns.name.Name  # e.g. ns2.<apex>
    address: str
    behaviour: NSBehaviour
    zone: SignedZone = field(repr=False)  # its copy (origin, parent, data as it serves them)
    age: int  # seconds its copy is older than the primary's

    @property
    def serial(self) -> int:
        soa = self.zone.rrset(self.zone.origin, "SOA")
        assert soa is not None
        return int(soa[0].serial)


@dataclass(frozen=True, eq=False)
class SignedHierarchy:
    """All zones of a hierarchy, signed, plus the trust anchor.  Treat as read-only."""

    anchor: dns.name.Name
    zones: Mapping[dns.name.Name, SignedZone]
    anchor_ds: tuple[dns.rdata.Rdata, ...]
    anchor_dnskey: tuple[dns.rdata.Rdata, ...]
    now: float
    ns_address: str
    ns_address6: str | None = None
    #: zone origin → its secondary name servers (NS order), each with its own signed copy
    secondaries: Mapping[dns.name.Name, tuple[SignedSecondary, ...]] = field(default_factory=dict)

    def zone(self, origin: str | dns.name.Name) -> SignedZone:
        return self.zones[_as_name(origin)]

    @classmethod
    def only(cls, signed: SignedHierarchy, zone: SignedZone) -> SignedHierarchy:
        """``signed`` cut down to ``zone`` alone (what a server of that zone only holds)."""
        return dataclasses.replace(signed, zones={zone.origin: zone}, secondaries={})

    def nameservers(self, origin: str | dns.name.Name) -> list[tuple[dns.name.Name, str]]:
        """The zone's name servers as its NS RRset lists them, with their (glue) addresses."""
        zone = self.zone(origin)
        ns = zone.rrset(zone.origin, "NS")
        out = []
        parent = self.zones.get(zone.parent) if zone.parent is not None else None
        for rd in ns or ():
            for rt in ("A", "AAAA"):
                addr = zone.rrset(rd.target, rt) if rd.target.is_subdomain(zone.origin) else None
                if addr is None and parent is not None:  # a glue-only server (Secondary)
                    addr = parent.glue.get(rd.target, {}).get(RdataType.make(rt))
                out += [(rd.target, a.address) for a in addr or ()]
        return out

    def __getitem__(self, origin: str | dns.name.Name) -> SignedZone:
        return self.zone(origin)

    def find_zone(self, qname: dns.name.Name) -> SignedZone | None:
        """The deepest zone containing ``qname`` (None if no zone does)."""
        n = qname
        while True:
            z = self.zones.get(n)
            if z is not None:
                return z
            if n == dns.name.root or len(n) <= 1:
                return None
            n = n.parent()

    def trust_anchor(self, kind: Literal["ds", "dnskey"] = "ds") -> str:
        return _trust_anchor_text(self.anchor, self.anchor_ds, self.anchor_dnskey, kind)

    def bind_trust_anchors(self, kind: Literal["ds", "dnskey"] = "ds") -> str:
        return _bind_anchor_text(self.anchor, self.anchor_ds, self.anchor_dnskey, kind)

    @property
    def earliest_expiration(self) -> int | None:
        exps = [z.earliest_expiration for z in self.zones.values() if z.earliest_expiration]
        return min(exps) if exps else None


def _trust_anchor_text(anchor, ds, dnskey, kind) -> str:
    rdatas = ds if kind == "ds" else dnskey
    rt = "DS" if kind == "ds" else "DNSKEY"
    if not rdatas:
        raise ValueError("the anchor zone is unsigned: no trust anchor")
    return "".join(f"{anchor.to_text()} 3600 IN {rt} {rd.to_text()}\n" for rd in rdatas)


def _bind_anchor_text(anchor, ds, dnskey, kind) -> str:
    if not (ds if kind == "ds" else dnskey):
        raise ValueError("the anchor zone is unsigned: no trust anchor")
    entry = Anchor(anchor, list(ds) if kind == "ds" else [], list(dnskey) if kind != "ds" else [])
    return bind_format(TrustAnchors({anchor: entry}))


# --------------------------------------------------------------------------- hierarchy


class Hierarchy:
    """A tree of zones under one trust anchor (a private root by default)."""

    def __init__(
        self,
        anchor: str | dns.name.Name = ".",
        *,
        ns_address: str = "127.0.0.1",
        ns_address6: str | None = None,
        algorithm: Algorithm | int = Algorithm.ECDSAP256SHA256,
        **anchor_kwargs,
    ) -> None:
        self.ns_address = ns_address
        self.ns_address6 = ns_address6
        self.algorithm = Algorithm.make(algorithm)
        anchor_kwargs.setdefault("algorithm", self.algorithm)
        self.anchor = Zone(anchor, **anchor_kwargs)
        self.zones: dict[dns.name.Name, Zone] = {self.anchor.origin: self.anchor}

    def __getitem__(self, origin: str | dns.name.Name) -> Zone:
        return self.zones[_as_name(origin)]

    def __iter__(self) -> Iterator[Zone]:
        return iter(self.zones.values())

    def zone(self, origin: str | dns.name.Name, **zone_kwargs) -> Zone:
        """Create a zone, delegated (at sign time) from the closest enclosing zone."""
        name = _as_name(origin)
        if name in self.zones:
            raise ValueError(f"zone {name} exists already")
        if not name.is_subdomain(self.anchor.origin):
            raise ValueError(f"{name} is not below the anchor {self.anchor.origin}")
        zone_kwargs.setdefault("algorithm", self.algorithm)
        z = Zone(name, **zone_kwargs)
        self.zones[name] = z
        return z

    def parent_of(self, zone: Zone) -> Zone | None:
        if zone is self.anchor:
            return None
        n = zone.origin.parent()
        while n not in self.zones:
            n = n.parent()
        return self.zones[n]

    def trust_anchor(self, kind: Literal["ds", "dnskey"] = "ds") -> str:
        """The anchor as zone-file lines (usable as Unbound's trust-anchor-file)."""
        return _trust_anchor_text(self.anchor.origin, *self._anchor_rdatas(), kind)

    def bind_trust_anchors(self, kind: Literal["ds", "dnskey"] = "ds") -> str:
        """The anchor as BIND's ``trust-anchors { ... };`` clause (for ``delv -a``)."""
        return _bind_anchor_text(self.anchor.origin, *self._anchor_rdatas(), kind)

    def _anchor_rdatas(self) -> tuple[tuple[dns.rdata.Rdata, ...], tuple[dns.rdata.Rdata, ...]]:
        a = self.anchor
        if a.ksk is None:
            return (), ()
        return tuple(a.ds()), (a.ksk.dnskey,)

    def sign(self, now: float | None = None) -> SignedHierarchy:
        """Sign every zone (signatures relative to ``now``, default: the current time)."""
        if now is None:
            now = time.time()
        children: dict[dns.name.Name, list[Zone]] = {o: [] for o in self.zones}
        parents: dict[dns.name.Name, dns.name.Name | None] = {}
        for z in self.zones.values():
            p = self.parent_of(z)
            parents[z.origin] = None if p is None else p.origin
            if p is not None:
                children[p.origin].append(z)
        signed: dict[dns.name.Name, SignedZone] = {}
        secondaries: dict[dns.name.Name, tuple[SignedSecondary, ...]] = {}
        for z in self.zones.values():

            def sign(zone: Zone, when: float) -> SignedZone:
                return _sign_zone(
                    zone,
                    parent=parents[zone.origin],
                    children=children[zone.origin],
                    now=when,
                    ns_address=zone.ns_address or self.ns_address,
                    ns_address6=zone.ns_address6 or self.ns_address6,
                    hierarchy=self,
                )

            signed[z.origin] = sign(z, now)
            if z.secondaries:
                secondaries[z.origin] = tuple(
                    SignedSecondary(
                        s.name, s.address, s.behaviour, sign(s.copy_of(z), now - s.age), s.age
                    )
                    for s in z.secondaries
                )
        ds, dnskey = self._anchor_rdatas()
        return SignedHierarchy(
            anchor=self.anchor.origin,
            zones=signed,
            anchor_ds=ds,
            anchor_dnskey=dnskey,
            now=now,
            ns_address=self.ns_address,
            ns_address6=self.ns_address6,
            secondaries=secondaries,
        )


# --------------------------------------------------------------------------- signer


def _published_ds(child: Zone) -> list[dns.rdata.Rdata]:
    """The DS RRset the parent publishes for ``child`` (faults applied)."""
    if not child.signed or child.has_fault(Fault.UNSIGNED_DELEGATION):
        return []
    ds = child.ds()
    if child.has_fault(Fault.DS_MISMATCH):
        return [d.replace(digest=bytes(b ^ 0x5A for b in d.digest)) for d in ds]
    return list(ds)


def _check_dnames(origin: dns.name.Name, authoritative: Mapping[dns.name.Name, Mapping]) -> None:
    """A DNAME owner has no descendants and no CNAME (RFC 6672 sections 2.3-2.4): refuse a zone
    that has them rather than serve data no resolver would see."""
    dnames = {n for n, node in authoritative.items() if RdataType.DNAME in node}
    if not dnames:
        return
    if origin in dnames:
        raise ValueError(f"{origin}: a DNAME at the apex would occlude the zone's own name server")
    for name, node in authoritative.items():
        if name in dnames and RdataType.CNAME in node:
            raise ValueError(f"{name} has both a CNAME and a DNAME")
        n = name
        while n != origin:
            n = n.parent()
            if n in dnames:
                raise ValueError(f"{name} lies below the DNAME at {n} (occluded, RFC 6672 2.4)")


def _corrupt(sig: bytes) -> bytes:
    b = bytearray(sig)
    mid = len(b) // 2
    b[mid] ^= 0xFF
    b[mid + 1] ^= 0x55
    return bytes(b)


def _sign_zone(
    zone: Zone,
    *,
    parent: dns.name.Name | None,
    children: list[Zone],
    now: float,
    ns_address: str,
    ns_address6: str | None,
    hierarchy: Hierarchy,
) -> SignedZone:
    origin = zone.origin
    ttl = zone.ttl
    data: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}
    ttls: dict[tuple[dns.name.Name, int], int] = {}

    def put(name: dns.name.Name, rt: int, rdatas: Iterable[dns.rdata.Rdata], t: int) -> None:
        lst = data.setdefault(name, {}).setdefault(rt, [])
        for rd in rdatas:
            if rd not in lst:
                lst.append(rd)
        key = (name, rt)
        ttls[key] = min(ttls.get(key, t), t)

    def addr_rdatas(rt: str, addr: str) -> list[dns.rdata.Rdata]:
        return [dns.rdata.from_text(IN, rt, addr)]

    # apex: SOA, NS, the name server's address
    ns1 = zone.nameserver
    soa = dns.rdata.from_text(
        IN,
        "SOA",
        f"{ns1} {dns.name.Name(('hostmaster', *origin.labels))} "
        f"{int(now) & 0xFFFFFFFF} 7200 3600 1209600 {ttl}",
    )
    for name, rt, rds in zone.records():
        put(name, rt, rds, rds.ttl)
    filler = [dns.rdata.from_text(IN, "TXT", '"NSEC3 flood filler"')]
    for i in range(zone.nsec3_flood):
        put(dns.name.Name((f"n{i}".encode(), b"flood", *origin.labels)), RdataType.TXT, filler, ttl)
    if RdataType.SOA not in data.get(origin, {}):
        put(origin, RdataType.SOA, [soa], ttl)
    put(origin, RdataType.NS, [dns.rdata.from_text(IN, "NS", ns1.to_text())], ttl)
    put(ns1, RdataType.A, addr_rdatas("A", ns_address), ttl)
    if ns_address6:
        put(ns1, RdataType.AAAA, addr_rdatas("AAAA", ns_address6), ttl)
    for sec in zone.secondaries:
        put(origin, RdataType.NS, [dns.rdata.from_text(IN, "NS", sec.name.to_text())], ttl)
        if sec.glue_only:
            continue  # only the parent's delegation carries its address
        addr_type = "AAAA" if ":" in sec.address else "A"
        put(sec.name, RdataType.make(addr_type), addr_rdatas(addr_type, sec.address), ttl)

    # delegations to child zones in the hierarchy (every name server, with glue)
    for child in children:
        c_ns1 = child.nameserver
        c_addr = child.ns_address or hierarchy.ns_address
        c_addr6 = child.ns_address6 or hierarchy.ns_address6
        put(child.origin, RdataType.NS, [dns.rdata.from_text(IN, "NS", c_ns1.to_text())], ttl)
        put(c_ns1, RdataType.A, addr_rdatas("A", c_addr), ttl)
        if c_addr6:
            put(c_ns1, RdataType.AAAA, addr_rdatas("AAAA", c_addr6), ttl)
        for sec in child.secondaries:
            ns_rd = dns.rdata.from_text(IN, "NS", sec.name.to_text())
            put(child.origin, RdataType.NS, [ns_rd], ttl)
            addr_type = "AAAA" if ":" in sec.address else "A"
            put(sec.name, RdataType.make(addr_type), addr_rdatas(addr_type, sec.address), ttl)
        ds = _published_ds(child)
        if ds:
            put(child.origin, RdataType.DS, ds, ttl)

    delegations = frozenset(n for n, node in data.items() if n != origin and RdataType.NS in node)

    def below_cut(name: dns.name.Name) -> bool:
        n = name
        while n != origin:
            n = n.parent()
            if n in delegations and n != origin:
                return True
        return False

    authoritative: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}
    glue: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}
    for name, node in data.items():
        if below_cut(name):
            glue[name] = node
        elif name in delegations:
            authoritative[name] = {rt: v for rt, v in node.items() if rt in (2, 43)}
            rest = {rt: v for rt, v in node.items() if rt not in (2, 43)}
            if rest:
                glue[name] = rest
        else:
            authoritative[name] = node

    _check_dnames(origin, authoritative)

    ents: set[dns.name.Name] = set()
    for name in authoritative:
        n = name
        while n != origin:
            n = n.parent()
            if n not in authoritative:
                ents.add(n)

    rrsets: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
    for name, node in authoritative.items():
        rrsets[name] = {
            rt: dns.rrset.from_rdata_list(name, ttls[(name, rt)], rds) for rt, rds in node.items()
        }
    glue_rrsets = {
        name: {rt: dns.rrset.from_rdata_list(name, ttls[(name, rt)], rds) for rt, rds in n.items()}
        for name, n in glue.items()
    }

    rrsigs: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
    flood: list[bytes] = []
    trap_stats: dict[str, int] = {}
    nsec_names: tuple[dns.name.Name, ...] = ()
    nsec3_hashes: tuple[bytes, ...] = ()
    nsec3_rrsets: dict[bytes, tuple[dns.rrset.RRset, dns.rrset.RRset | None]] = {}
    expirations: list[int] = []
    n_sigs = 0

    if zone.signed:
        assert zone.ksk is not None
        assert zone.zsk is not None
        denial = zone.denial
        neg_ttl = ttl
        apex = rrsets[origin]
        trap = zone.keytrap
        colliders: list[dns.rdata.Rdata] = []
        if trap is not None:
            alg = int(zone.algorithm)
            colliders += [
                colliding_rsa_dnskey(zone.ksk.key_tag, 257, alg) for _ in range(trap.ksk_keys)
            ]
            colliders += [
                colliding_rsa_dnskey(zone.zsk.key_tag, 256, alg) for _ in range(trap.zsk_keys)
            ]
        # the impostors first: a validator trying keys in order meets every one of them
        apex[RdataType.DNSKEY] = dns.rrset.from_rdata_list(
            origin, ttl, [*colliders, zone.ksk.dnskey, zone.zsk.dnskey]
        )
        if _wire_size(apex[RdataType.DNSKEY]) > FLOOD_BUDGET:
            raise ValueError(f"{origin}: the DNSKEY RRset would not fit in a TCP response")
        flooded: set[int] = {RdataType.make(t) for t in trap.types} if trap is not None else set()
        trap_stats = {"keytrap_keys": len(colliders), "keytrap_rrsigs": 0}
        if isinstance(denial, NSEC3):
            apex[RdataType.NSEC3PARAM] = dns.rrset.from_rdata_list(
                origin,
                ttl,
                [
                    dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM(
                        IN, RdataType.NSEC3PARAM, 1, 0, denial.iterations, denial.salt
                    )
                ],
            )

        signing_faults = [f for f in zone.faults if f.fault in SIGNING_FAULTS]
        inception_ok = int(now) - zone.sig_inception_offset
        expiration_ok = int(now) + zone.sig_lifetime

        def make_sig(rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
            nonlocal n_sigs
            name, rt = rrset.name, rrset.rdtype
            active = {f.fault for f in signing_faults if f.matches(name, rt)}
            if Fault.MISSING_RRSIG in active:
                return None
            inception, expiration = inception_ok, expiration_ok
            if Fault.EXPIRED_RRSIG in active:
                inception, expiration = int(now) - 30 * DAY, int(now) - FAULT_OFFSET
            elif Fault.NOT_YET_VALID_RRSIG in active:
                inception, expiration = int(now) + FAULT_OFFSET, int(now) + 30 * DAY
            key = zone.ksk if rt == RdataType.DNSKEY else zone.zsk
            assert key is not None
            signed = dns.dnssec.sign(
                rrset,
                key.private,
                origin,
                key.dnskey,
                inception=inception,
                expiration=expiration,
            )
            signature = signed.signature
            if Fault.BAD_SIGNATURE in active:
                signature = _corrupt(signature)
            rrsig = signed.replace(signature=signature)
            n_sigs += 1
            expirations.append(expiration)
            fakes = [
                rrsig.replace(signature=_fake_signature(len(signature)))
                for _ in range(_flood_count(trap, rrset, rrsig, flooded))
            ]
            if fakes:
                stat = "keytrap_dnskey_rrsigs" if rt == RdataType.DNSKEY else "keytrap_rrsigs"
                trap_stats[stat] = max(trap_stats.get(stat, 0), len(fakes))
            # the real signature last: a validator trying signatures in order meets every fake
            return dns.rrset.from_rdata_list(name, rrset.ttl, [*fakes, rrsig])

        def sign_node(name: dns.name.Name) -> None:
            for rt, rrset in rrsets[name].items():
                if name in delegations and rt not in (RdataType.DS, RdataType.NSEC):
                    continue  # NS at a cut is the child's; unsigned here
                sig = make_sig(rrset)
                if sig is not None:
                    rrsigs.setdefault(name, {})[rt] = sig

        if isinstance(denial, NSEC3):
            chain_names = set(rrsets) | ents
            if denial.opt_out:
                chain_names -= {d for d in delegations if RdataType.DS not in rrsets[d]}
            by_hash = {nsec3_hash_raw(n, denial.salt, denial.iterations): n for n in chain_names}
            nsec3_hashes = tuple(sorted(by_hash))
            flags = 1 if denial.opt_out else 0
            for i, h in enumerate(nsec3_hashes):
                owner_name = by_hash[h]
                types: set[int] = set(rrsets.get(owner_name, {}))
                if types and not (
                    owner_name in delegations and RdataType.DS not in rrsets[owner_name]
                ):
                    types.add(RdataType.RRSIG)
                nxt = nsec3_hashes[(i + 1) % len(nsec3_hashes)]
                rd = dns.rdtypes.ANY.NSEC3.NSEC3(
                    IN,
                    RdataType.NSEC3,
                    1,
                    flags,
                    denial.iterations,
                    denial.salt,
                    nxt,
                    dns.rdtypes.ANY.NSEC3.Bitmap.from_rdtypes(
                        [RdataType.make(t) for t in sorted(types)]
                    ),
                )
                owner = dns.name.Name((b32hex(h), *origin.labels))
                rr = dns.rrset.from_rdata_list(owner, neg_ttl, [rd])
                nsec3_rrsets[h] = (rr, None)
            for name in rrsets:
                sign_node(name)
            for h, (rr, _) in list(nsec3_rrsets.items()):
                nsec3_rrsets[h] = (rr, make_sig(rr))
            size = 2048  # the SOA and the real proof's records
            for h in nsec3_hashes[: zone.nsec3_flood]:
                rr, sig = nsec3_rrsets[h]
                size += _wire_size(rr) + (_wire_size(sig) if sig is not None else 0)
                if size > FLOOD_BUDGET:
                    break
                flood.append(h)
        else:
            nsec_names = tuple(sorted(rrsets))
            for i, name in enumerate(nsec_names):
                types = set(rrsets[name]) | {RdataType.NSEC, RdataType.RRSIG}
                nsec = dns.rdtypes.ANY.NSEC.NSEC(
                    IN,
                    RdataType.NSEC,
                    nsec_names[(i + 1) % len(nsec_names)],
                    dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(
                        [RdataType.make(t) for t in sorted(types)]
                    ),
                )
                rrsets[name][RdataType.NSEC] = dns.rrset.from_rdata_list(name, neg_ttl, [nsec])
            for name in rrsets:
                sign_node(name)

    parent_ds: tuple[dns.rdata.Rdata, ...] = tuple(_published_ds(zone)) if parent else ()
    return SignedZone(
        origin=origin,
        parent=parent,
        signed=zone.signed,
        denial=zone.denial if zone.signed else None,
        ttl=ttl,
        rrsets=rrsets,
        rrsigs=rrsigs,
        glue=glue_rrsets,
        delegations=delegations,
        empty_non_terminals=frozenset(ents),
        nsec_names=nsec_names,
        nsec3_hashes=nsec3_hashes,
        nsec3_rrsets=nsec3_rrsets,
        faults=tuple(zone.faults),
        ksk=zone.ksk.dnskey if zone.ksk else None,
        zsk=zone.zsk.dnskey if zone.zsk else None,
        parent_ds=parent_ds,
        earliest_expiration=min(expirations) if expirations else None,
        stats={"rrsigs": n_sigs, "names": len(rrsets), **trap_stats, "nsec3_flood": len(flood)},
        nsec3_flood=tuple(flood),
    )


def _flood_count(
    trap: KeyTrap | None, rrset: dns.rrset.RRset, rrsig: dns.rdata.Rdata, flooded: set[int]
) -> int:
    """How many fake RRSIGs go beside ``rrsig``: as configured, within one TCP response."""
    if trap is None:
        return 0
    if rrset.rdtype == RdataType.DNSKEY:
        wanted = trap.dnskey_rrsigs
    elif rrset.rdtype in flooded:
        wanted = trap.rrsigs
    else:
        return 0
    one = 12 + len(rrsig.to_digestable())  # a compressed owner, type, class, TTL, length, RDATA
    fit = (FLOOD_BUDGET - _wire_size(rrset)) // one - 1
    return max(0, fit if wanted is None else min(wanted, fit))
