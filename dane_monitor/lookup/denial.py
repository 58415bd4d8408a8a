"""Authenticated denial of existence: NSEC (RFC 4035 §5.4) and NSEC3 (RFC 5155 §8).

Pure functions over RRsets whose signatures the caller has already verified. Each returns a
:class:`Proof`: what the records prove about a name and type, or why they prove nothing.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from enum import StrEnum

import dns.name
import dns.rdatatype
import dns.rrset

# RFC 9276 §3.2: validators may treat NSEC3 with many iterations as insecure; Unbound and
# BIND use 150 and 50 as limits today. We take BIND's stricter figure so that we never call
# something secure that a widespread validator calls insecure.
MAX_NSEC3_ITERATIONS = 50
#: The limit of the validators senders use (BIND 9.18, Unbound 1.17: 150, measured in
#: tests/test_world_sender_scenarios.py). A denial above our limit and within this one is
#: also proven with it, so the sender profiles can say what those validators conclude.
RESOLVER_NSEC3_ITERATIONS = 150


class Denied(StrEnum):
    NXDOMAIN = "nxdomain"  # the name does not exist
    NODATA = "nodata"  # the name exists, the type does not
    INSECURE_DELEGATION = "insecure-delegation"  # a DS denial at a cut: the child is unsigned
    OPT_OUT = "opt-out"  # NSEC3 opt-out span covers the name: may be an unsigned delegation
    NONE = "none"  # nothing is proven


@dataclass(frozen=True)
class Proof:
    result: Denied
    why: str = ""
    # NSEC3 with more iterations than we accept: the zone is to be treated as insecure.
    too_many_iterations: bool = False
    iterations: int | None = None  # the NSEC3 iterations, when too many


def bitmap_types(rdata) -> set[int]:
    """The types an NSEC or NSEC3 record's bitmap lists."""
    types: set[int] = set()
    for window, bitmap in rdata.windows:
        for i, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    types.add(window * 256 + i * 8 + bit)
    return types


def _covers(owner: dns.name.Name, nxt: dns.name.Name, name: dns.name.Name) -> bool:
    """``owner < name < next`` in canonical order; the last NSEC wraps to the apex."""
    if owner < nxt:
        return owner < name < nxt
    return name > owner or name < nxt


def _closest_common(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    _, _, common = a.fullcompare(b)
    return dns.name.Name(a.labels[-common:]) if common else dns.name.root


def _is_delegation(types: set[int]) -> bool:
    return dns.rdatatype.NS in types and dns.rdatatype.SOA not in types


# -- NSEC ------------------------------------------------------------------------------------


def nsec_proof(
    qname: dns.name.Name, qtype: int, nsecs: list[dns.rrset.RRset], zone: dns.name.Name
) -> Proof:
    """What verified NSEC RRsets from ``zone`` prove about ``qname``/``qtype``."""
    records = [(r.name, r[0].next, bitmap_types(r[0])) for r in nsecs if len(r)]
    for owner, _, types in records:
        if owner == qname:
            if qtype == dns.rdatatype.DS:
                if dns.rdatatype.DS in types:
                    return Proof(Denied.NONE, "NSEC says DS exists")
                if _is_delegation(types):
                    return Proof(Denied.INSECURE_DELEGATION, f"NSEC at {owner}: NS without DS")
                if dns.rdatatype.SOA in types and owner != zone:
                    return Proof(Denied.NONE, "DS denial from the child side of the cut")
                return Proof(Denied.NODATA, f"NSEC at {owner} has no DS")
            if _is_delegation(types) and owner != zone:
                return Proof(Denied.NONE, f"NSEC at {owner} is from above a delegation")
            if qtype in types or dns.rdatatype.CNAME in types:
                return Proof(Denied.NONE, f"NSEC at {owner} lists the type or a CNAME")
            return Proof(Denied.NODATA, f"NSEC at {owner} lacks the type")

    cover = _nsec_cover(records, qname, zone)
    if cover is None:
        return Proof(Denied.NONE, f"no NSEC matches or covers {qname}")
    owner, nxt, _ = cover
    if nxt.is_subdomain(qname) and nxt != qname:
        return Proof(Denied.NODATA, f"{qname} is an empty non-terminal")
    encloser = _encloser(qname, owner, nxt, zone)
    wildcard = dns.name.Name((b"*", *encloser.labels))
    for w_owner, _, w_types in records:
        if w_owner == wildcard:
            # A wildcard exists: NXDOMAIN is impossible; NODATA if it lacks the type.
            if qtype in w_types or dns.rdatatype.CNAME in w_types:
                return Proof(Denied.NONE, f"wildcard {wildcard} has the type")
            return Proof(Denied.NODATA, f"wildcard {wildcard} lacks the type")
    w_cover = _nsec_cover(records, wildcard, zone)
    if w_cover is None:
        return Proof(Denied.NONE, f"no NSEC denies the wildcard {wildcard}")
    if w_cover[1].is_subdomain(wildcard) and w_cover[1] != wildcard:
        # Names below the wildcard exist, so it is an empty non-terminal that matches
        # qname with no data at all (RFC 4592 §2.2.2): NODATA, never NXDOMAIN.
        return Proof(Denied.NODATA, f"wildcard {wildcard} is an empty non-terminal")
    return Proof(Denied.NXDOMAIN, f"NSEC {owner} → {nxt} covers {qname}")


def _nsec_cover(records, name: dns.name.Name, zone: dns.name.Name):
    for owner, nxt, types in records:
        if not _covers(owner, nxt, name):
            continue
        if _is_delegation(types) and owner != zone and name.is_subdomain(owner):
            continue  # an NSEC at a cut cannot deny names below it
        if dns.rdatatype.DNAME in types and name.is_subdomain(owner) and name != owner:
            continue  # names below a DNAME are redirected, not absent (RFC 6672 §5.3.2)
        return owner, nxt, types
    return None


def wildcard_nsec_ok(
    qname: dns.name.Name,
    source: dns.name.Name,
    nsecs: list[dns.rrset.RRset],
    zone: dns.name.Name,
) -> bool:
    """An answer expanded from wildcard ``source`` (``*.<closest encloser>``) needs an NSEC
    proving that ``qname`` itself does not exist (RFC 4035 §5.3.4)."""
    records = [(r.name, r[0].next, bitmap_types(r[0])) for r in nsecs if len(r)]
    cover = _nsec_cover(records, qname, zone)
    if cover is None:
        return False
    # The wildcard applies only at the closest encloser: an existing name between it and
    # qname (say a host without the type) means no wildcard could have answered.
    owner, nxt, _ = cover
    return _encloser(qname, owner, nxt, zone) == source.parent()


def _encloser(qname: dns.name.Name, owner: dns.name.Name, nxt: dns.name.Name, zone):
    """The closest encloser of a name covered by ``owner → nxt``: the deepest ancestor of
    ``qname`` that exists, which is its deeper common ancestor with the NSEC's two ends."""
    encloser = max(_closest_common(qname, owner), _closest_common(qname, nxt), key=len)
    return encloser if encloser.is_subdomain(zone) else zone


# -- NSEC3 -----------------------------------------------------------------------------------


def nsec3_hash(name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
    """RFC 5155 §5: iterated SHA-1 over the canonical wire form."""
    digest = hashlib.sha1(name.to_digestable() + salt).digest()
    for _ in range(iterations):
        digest = hashlib.sha1(digest + salt).digest()
    return digest


def b32hex(raw: bytes) -> str:
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


def _from_b32hex(text: str) -> bytes | None:
    try:
        return base64.b32hexdecode(text.upper() + "=" * (-len(text) % 8))
    except ValueError:
        return None


@dataclass(frozen=True)
class _N3:
    owner_hash: bytes
    next_hash: bytes
    types: set[int]
    opt_out: bool


def nsec3_proof(
    qname: dns.name.Name,
    qtype: int,
    nsec3s: list[dns.rrset.RRset],
    zone: dns.name.Name,
    max_iterations: int = MAX_NSEC3_ITERATIONS,
) -> Proof:
    """What verified NSEC3 RRsets from ``zone`` prove about ``qname``/``qtype`` (with more
    than ``max_iterations`` iterations: nothing, ``too_many_iterations``)."""
    params = {(r[0].algorithm, r[0].salt, r[0].iterations) for r in nsec3s if len(r)}
    if not params:
        return Proof(Denied.NONE, "no NSEC3 records")
    if len(params) > 1:
        return Proof(Denied.NONE, "NSEC3 records with different parameters")
    algorithm, salt, iterations = params.pop()
    if algorithm != 1:
        return Proof(Denied.NONE, f"unknown NSEC3 hash algorithm {algorithm}")
    if iterations > max_iterations:
        return Proof(
            Denied.NONE,
            f"NSEC3 iterations {iterations}",
            too_many_iterations=True,
            iterations=iterations,
        )
    if not qname.is_subdomain(zone):
        return Proof(Denied.NONE, f"{qname} is not in {zone}")
    records = _nsec3_records(nsec3s, zone)
    hashes: dict[dns.name.Name, bytes] = {}

    def h(name: dns.name.Name) -> bytes:
        # At most one hash per ancestor of qname (<= 127) plus the wildcard: bounded work.
        if name not in hashes:
            hashes[name] = nsec3_hash(name, salt, iterations)
        return hashes[name]

    def match(name: dns.name.Name) -> _N3 | None:
        digest = h(name)
        return next((n for n in records if n.owner_hash == digest), None)

    def cover(name: dns.name.Name) -> _N3 | None:
        digest = h(name)
        return next((n for n in records if _hash_covers(n, digest)), None)

    exact = match(qname)
    if exact is not None:
        if qtype == dns.rdatatype.DS:
            if dns.rdatatype.DS in exact.types:
                return Proof(Denied.NONE, "NSEC3 says DS exists")
            if _is_delegation(exact.types):
                return Proof(Denied.INSECURE_DELEGATION, f"NSEC3 for {qname}: NS without DS")
            if dns.rdatatype.SOA in exact.types and qname != zone:
                return Proof(Denied.NONE, "DS denial from the child side of the cut")
            return Proof(Denied.NODATA, f"NSEC3 for {qname} has no DS")
        if _is_delegation(exact.types) and qname != zone:
            return Proof(Denied.NONE, f"NSEC3 for {qname} is from above a delegation")
        if qtype in exact.types or dns.rdatatype.CNAME in exact.types:
            return Proof(Denied.NONE, f"NSEC3 for {qname} lists the type or a CNAME")
        return Proof(Denied.NODATA, f"NSEC3 for {qname} lacks the type")

    # Closest encloser proof (RFC 5155 §8.3): the deepest existing ancestor, and a cover
    # for the next closer name one label below it. The walk never leaves the zone.
    if qname == zone:
        return Proof(Denied.NONE, f"no NSEC3 matches the apex {zone}")
    encloser = qname.parent()
    next_closer = qname
    while True:
        found = match(encloser)
        if found is not None:
            if _is_delegation(found.types) and encloser != zone:
                return Proof(Denied.NONE, f"closest encloser {encloser} is a delegation")
            if dns.rdatatype.DNAME in found.types:
                return Proof(Denied.NONE, f"closest encloser {encloser} owns a DNAME")
            break
        if encloser == zone:
            return Proof(Denied.NONE, f"no NSEC3 matches any ancestor of {qname}")
        next_closer, encloser = encloser, encloser.parent()
    nc_cover = cover(next_closer)
    if nc_cover is None:
        return Proof(Denied.NONE, f"no NSEC3 covers the next closer name {next_closer}")
    if nc_cover.opt_out:
        # The span may hold an unsigned delegation that the name lies under: nothing is
        # proven securely, for DS (an insecure delegation) or any other type (RFC 5155
        # §9.2; Unbound answers insecure likewise; BIND calls an NXDOMAIN secure).
        return Proof(Denied.OPT_OUT, f"opt-out NSEC3 covers the next closer name {next_closer}")
    wildcard = dns.name.Name((b"*", *encloser.labels))
    wild = match(wildcard)
    if wild is not None:
        if qtype in wild.types or dns.rdatatype.CNAME in wild.types:
            return Proof(Denied.NONE, f"wildcard {wildcard} has the type")
        return Proof(Denied.NODATA, f"wildcard {wildcard} lacks the type")
    if cover(wildcard) is None:
        return Proof(Denied.NONE, f"no NSEC3 denies the wildcard {wildcard}")
    return Proof(Denied.NXDOMAIN, f"NSEC3 closest encloser {encloser}, {next_closer} covered")


def wildcard_nsec3_proof(
    qname: dns.name.Name,
    source: dns.name.Name,
    nsec3s: list[dns.rrset.RRset],
    zone: dns.name.Name,
    max_iterations: int = MAX_NSEC3_ITERATIONS,
) -> Proof:
    """An answer expanded from ``source`` = ``*.<encloser>`` needs an NSEC3 covering the next
    closer name of ``qname`` (RFC 5155 §8.8). NXDOMAIN means proven; OPT_OUT means the
    cover is an opt-out span, which could hide an unsigned delegation: insecure (§9.2).
    With more than ``max_iterations`` iterations: nothing, ``too_many_iterations``."""
    params = {(r[0].algorithm, r[0].salt, r[0].iterations) for r in nsec3s if len(r)}
    if len(params) != 1:
        return Proof(Denied.NONE, "no NSEC3 records, or mixed parameters")
    _, salt, iterations = params.pop()
    if iterations > max_iterations:
        return Proof(
            Denied.NONE,
            f"NSEC3 iterations {iterations}",
            too_many_iterations=True,
            iterations=iterations,
        )
    encloser = source.parent()
    next_closer = dns.name.Name(qname.labels[-(len(encloser) + 1) :])
    digest = nsec3_hash(next_closer, salt, iterations)
    for n in _nsec3_records(nsec3s, zone):
        if _hash_covers(n, digest):
            if n.opt_out:
                return Proof(Denied.OPT_OUT, f"opt-out NSEC3 covers {next_closer}")
            return Proof(Denied.NXDOMAIN, f"NSEC3 covers {next_closer}")
    return Proof(Denied.NONE, f"no NSEC3 covers the next closer name {next_closer}")


def _nsec3_records(nsec3s: list[dns.rrset.RRset], zone: dns.name.Name) -> list[_N3]:
    records = []
    for r in nsec3s:
        if not len(r) or r.name.parent() != zone:
            continue
        owner_hash = _from_b32hex(r.name.labels[0].decode("ascii", "replace"))
        if owner_hash is None:
            continue
        records.append(_N3(owner_hash, r[0].next, bitmap_types(r[0]), bool(r[0].flags & 1)))
    return records


def _hash_covers(n: _N3, digest: bytes) -> bool:
    if n.owner_hash < n.next_hash:
        return n.owner_hash < digest < n.next_hash
    return digest > n.owner_hash or digest < n.next_hash  # the last NSEC3 wraps around
