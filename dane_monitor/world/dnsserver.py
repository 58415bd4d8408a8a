"""An asyncio authoritative DNS server for a :class:`~dane_monitor.world.zones.SignedHierarchy`.

It is authoritative for every zone of the hierarchy at once, like one name server that
hosts all of them: a query is answered from the deepest zone containing the name, except
DS queries at a zone's apex, which the parent answers.  With the DO bit, answers carry
RRSIGs and NSEC/NSEC3 proofs (NXDOMAIN, NODATA, empty non-terminals, wildcards, insecure
delegations, opt-out).  CNAME chains inside the served zones are followed, as a resolver's
answer would show them.  A name below a DNAME owner (RFC 6672) is answered with the signed
DNAME, an unsigned CNAME synthesised from it, and the CNAME followed like any other (YXDOMAIN
when the substituted name would be too long).  UDP (with truncation) and TCP share one port.

The faults recorded on the zones (SERVFAIL, NO_ANSWER, MISSING_DENIAL, WRONG_DENIAL) are
applied here; the others are already in the signed data.

A zone's secondary name servers (:class:`~dane_monitor.world.zones.SignedSecondary`) are served
by :class:`NameServerResponder`, one per address: only that zone (REFUSED for other names, DS at
the apex answered from the zone itself, as a server without the parent would), no RA bit, and
the secondary's :class:`~dane_monitor.world.zones.NSBehaviour` (REFUSED, no AA bit, silence).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from typing import Protocol, Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset
from dns.rdatatype import RdataType

from dane_monitor.world.zones import (
    NSEC3,
    Fault,
    NSBehaviour,
    SignedHierarchy,
    SignedSecondary,
    SignedZone,
)

__all__ = ["DNSServer", "NameServerResponder", "Responder", "WireResponder", "fit_to_wire"]

log = logging.getLogger(__name__)

MAX_CNAME_CHAIN = 8
OUR_PAYLOAD = 1232
TCP_IDLE_TIMEOUT = 10.0

_META_TYPES = frozenset(
    {RdataType.OPT, RdataType.TSIG, RdataType.TKEY, RdataType.NONE, RdataType.MAILA}
)

RRPair = tuple[dns.rrset.RRset, dns.rrset.RRset | None]


class _Answer:
    """The sections of a response under construction (deduplicated RRsets)."""

    def __init__(self, do: bool) -> None:
        self.do = do
        self.answer: list[dns.rrset.RRset] = []
        self.authority: list[dns.rrset.RRset] = []
        self.additional: list[dns.rrset.RRset] = []
        self.rcode = dns.rcode.NOERROR
        self.aa = True
        self._seen: set[tuple[int, dns.name.Name, int, int]] = set()

    def _add(self, section: list[dns.rrset.RRset], idx: int, rrset: dns.rrset.RRset) -> None:
        key = (idx, rrset.name, rrset.rdtype, rrset.covers)
        if key not in self._seen:
            self._seen.add(key)
            section.append(rrset)

    def add(self, which: str, pair: RRPair | dns.rrset.RRset | None) -> None:
        if pair is None:
            return
        section, idx = {
            "answer": (self.answer, 0),
            "authority": (self.authority, 1),
            "additional": (self.additional, 2),
        }[which]
        if isinstance(pair, dns.rrset.RRset):
            self._add(section, idx, pair)
            return
        rrset, sig = pair
        self._add(section, idx, rrset)
        if self.do and sig is not None:
            self._add(section, idx, sig)


def _renamed(rrset: dns.rrset.RRset, name: dns.name.Name) -> dns.rrset.RRset:
    out = dns.rrset.RRset(name, rrset.rdclass, rrset.rdtype, rrset.covers)
    out.update(rrset)
    out.ttl = rrset.ttl
    return out


def fit_to_wire(
    query: dns.message.Message,
    response: dns.message.Message,
    *,
    udp: bool,
    force_tc: bool = False,
) -> bytes:
    """``response`` to ``query`` in wire form, within what the transport carries.

    Over UDP the limit is the client's EDNS payload size (at least 512, 512 without EDNS);
    over TCP it is 64 KiB.  A larger response, or any response when ``force_tc``, goes out
    truncated: TC=1 and no records.  ``response`` itself is left as it was.
    """
    limit = 65535
    if udp:
        limit = max(512, min(query.payload if query.edns >= 0 else 512, 65535))
    try:
        # In the zone's order, unshuffled: an attack zone (KeyTrap) decides which key and
        # which signature a validator meets first.
        out = response.to_wire(max_size=65535, want_shuffle=False)
    except dns.exception.TooBig:
        out = b""
    if force_tc or len(out) > limit or not out:
        sections = response.answer, response.authority, response.additional
        flags = response.flags
        try:
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            out = response.to_wire(max_size=65535)
        finally:
            response.answer, response.authority, response.additional = sections
            response.flags = flags
    return out


class WireResponder(Protocol):
    """What :class:`DNSServer` serves: one DNS message in, the reply (None: none) out."""

    def handle_wire(self, wire: bytes, *, udp: bool = True) -> bytes | None: ...


class Responder:
    """Pure query → response logic (no I/O), shared by the UDP and TCP transports."""

    #: set RA when the query asks for recursion (the world's primary answers every name it
    #: knows in full, so stubs and forwarders may use it; secondaries are authoritative only)
    recursion_available = True

    def __init__(self, signed: SignedHierarchy) -> None:
        self.signed = signed

    # ------------------------------------------------------------------ entry points
    def handle_wire(self, wire: bytes, *, udp: bool = True) -> bytes | None:
        """Answer one DNS message; None means: send nothing.

        Over UDP the limit is the client's EDNS payload size (at least 512, 512 without
        EDNS) and a larger response is truncated (TC=1, no records); over TCP it is 64 KiB.
        """
        try:
            query = dns.message.from_wire(wire)
        except dns.message.BadEDNS:
            return self._error_from_header(wire, dns.rcode.FORMERR)
        except (dns.exception.DNSException, ValueError, struct.error, IndexError):
            return self._error_from_header(wire, dns.rcode.FORMERR)
        except Exception:  # never let a packet kill the server
            log.exception("unparsable query")
            return self._error_from_header(wire, dns.rcode.FORMERR)
        try:
            response = self.respond(query)
        except Exception:
            log.exception("failed to answer %s", query.question)
            response = self._error(query, dns.rcode.SERVFAIL)
        if response is None:
            return None
        return fit_to_wire(query, response, udp=udp)

    @staticmethod
    def _error_from_header(wire: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
        if len(wire) < 12:
            return None
        qid, flags = struct.unpack("!HH", wire[:4])
        if flags & dns.flags.QR:
            return None  # never answer a response
        opcode_bits = flags & 0x7800
        rd = flags & dns.flags.RD
        out_flags = dns.flags.QR | opcode_bits | rd | (rcode & 0xF)
        return struct.pack("!HHHHHH", qid, out_flags, 0, 0, 0, 0)

    @staticmethod
    def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
        r = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        r.set_rcode(rcode)
        return r

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        """Answer a parsed query (None: drop it)."""
        if query.flags & dns.flags.QR:
            return None
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return self._error(query, dns.rcode.FORMERR)
        if query.edns > 0:
            r = self._error(query, dns.rcode.BADVERS)
            return r
        q = query.question[0]
        qname, qtype = q.name, q.rdtype
        if q.rdclass != dns.rdataclass.IN:
            return self._error(query, dns.rcode.REFUSED)
        if qtype in _META_TYPES:
            return self._error(query, dns.rcode.FORMERR)
        if qtype in (RdataType.AXFR, RdataType.IXFR):
            return self._error(query, dns.rcode.REFUSED)
        if qtype in (RdataType.ANY, RdataType.MAILB):
            return self._error(query, dns.rcode.NOTIMP)

        zone = self.zone_for(qname, qtype)
        if zone is None:
            return self._error(query, dns.rcode.REFUSED)
        if any(f.covers(qname) for f in zone.faults_of(Fault.NO_ANSWER)):
            return None
        if any(f.covers(qname) for f in zone.faults_of(Fault.SERVFAIL)):
            return self._error(query, dns.rcode.SERVFAIL)

        do = query.edns >= 0 and bool(query.ednsflags & dns.flags.DO)
        ans = _Answer(do)
        self._lookup(zone, qname, qtype, ans, depth=0, visited=set())

        r = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        if do:
            r.ednsflags |= dns.flags.DO
        if ans.aa:
            r.flags |= dns.flags.AA
        # Every name this server answers for is answered in full (it serves the whole
        # namespace it knows), so a stub or forwarding client (delv) may treat it as a
        # recursive server.
        if query.flags & dns.flags.RD and self.recursion_available:
            r.flags |= dns.flags.RA
        r.set_rcode(ans.rcode)
        r.answer = ans.answer
        r.authority = ans.authority
        r.additional = ans.additional
        return r

    # ------------------------------------------------------------------ zone selection
    def zone_for(self, qname: dns.name.Name, qtype: int) -> SignedZone | None:
        zone = self.signed.find_zone(qname)
        if (
            zone is not None
            and qtype == RdataType.DS
            and qname == zone.origin
            and zone.parent is not None
            and zone.parent in self.signed.zones
        ):
            return self.signed.zones[zone.parent]
        return zone

    # ------------------------------------------------------------------ lookup
    def _lookup(
        self,
        zone: SignedZone,
        qname: dns.name.Name,
        qtype: int,
        ans: _Answer,
        *,
        depth: int,
        visited: set[dns.name.Name],
    ) -> None:
        visited.add(qname)
        cut = self._find_cut(zone, qname)
        if cut is not None and not (cut == qname and qtype == RdataType.DS):
            if depth == 0:
                self._referral(zone, cut, ans)
            return

        owner = self._find_dname(zone, qname)
        if owner is not None:
            self._dname(zone, qname, qtype, owner, ans, depth, visited)
            return

        if qtype == RdataType.NSEC3 and zone.denial is not None:
            for pair in zone.nsec3_rrsets.values():
                if pair[0].name == qname:
                    ans.add("answer", pair)
                    return

        node = zone.rrsets.get(qname)
        if node is not None:
            if qtype == RdataType.RRSIG:
                sigs = zone.rrsigs.get(qname, {})
                if sigs:
                    for sig in sigs.values():
                        ans.add("answer", sig)
                    return
            elif qtype in node:
                ans.add("answer", self._pair(zone, qname, qtype))
                return
            elif RdataType.CNAME in node:
                pair = self._pair(zone, qname, RdataType.CNAME)
                ans.add("answer", pair)
                self._follow(pair[0], qtype, ans, depth, visited)
                return
            self._nodata(zone, qname, qtype, ans)
            return
        if qname in zone.empty_non_terminals:
            self._nodata(zone, qname, qtype, ans)
            return

        ce = self._closest_encloser(zone, qname)
        wild = dns.name.Name((b"*", *ce.labels))
        wnode = zone.rrsets.get(wild)
        if wnode is not None:
            if qtype in wnode or RdataType.CNAME in wnode:
                rt = qtype if qtype in wnode else RdataType.CNAME
                rrset, wsig = self._pair(zone, wild, rt)
                synth = _renamed(rrset, qname)
                ans.add("answer", (synth, None if wsig is None else _renamed(wsig, qname)))
                if ans.do:
                    for pair in self._wildcard_answer_proof(zone, qname, ce):
                        ans.add("authority", pair)
                if rt == RdataType.CNAME:
                    self._follow(synth, qtype, ans, depth, visited)
                return
            self._nodata(zone, qname, qtype, ans, wildcard=(ce, wild))
            return
        if wild in zone.empty_non_terminals:
            # RFC 4592 §2.2.2: a wildcard that exists only as an empty non-terminal (names
            # below it exist) still matches, with no data: NODATA, not NXDOMAIN.
            self._nodata(zone, qname, qtype, ans, wildcard=(ce, wild))
            return
        self._nxdomain(zone, qname, ce, ans)

    def _dname(
        self,
        zone: SignedZone,
        qname: dns.name.Name,
        qtype: int,
        owner: dns.name.Name,
        ans: _Answer,
        depth: int,
        visited: set[dns.name.Name],
    ) -> None:
        """RFC 6672 section 3.2: the DNAME, then the CNAME synthesised from it (unsigned, the
        DNAME's TTL), then whatever the CNAME leads to; YXDOMAIN if the new name is too long."""
        pair = self._pair(zone, owner, RdataType.DNAME)
        ans.add("answer", pair)
        dname = pair[0]
        try:
            target = qname.relativize(owner).concatenate(dname[0].target)
        except dns.name.NameTooLong:
            ans.rcode = dns.rcode.YXDOMAIN
            return
        rd = dns.rdtypes.ANY.CNAME.CNAME(dns.rdataclass.IN, RdataType.CNAME, target)
        cname = dns.rrset.from_rdata_list(qname, dname.ttl, [rd])
        ans.add("answer", cname)
        if qtype != RdataType.CNAME:
            self._follow(cname, qtype, ans, depth, visited)

    def _follow(
        self,
        cname: dns.rrset.RRset,
        qtype: int,
        ans: _Answer,
        depth: int,
        visited: set[dns.name.Name],
    ) -> None:
        target = cname[0].target
        if depth + 1 >= MAX_CNAME_CHAIN or target in visited:
            return
        zone = self.zone_for(target, qtype)
        if zone is None:
            return
        if any(f.covers(target) for f in zone.faults_of(Fault.NO_ANSWER, Fault.SERVFAIL)):
            return  # the client will ask for the target itself and see the fault there
        self._lookup(zone, target, qtype, ans, depth=depth + 1, visited=visited)

    @staticmethod
    def _pair(zone: SignedZone, name: dns.name.Name, rdtype: int) -> RRPair:
        return zone.rrsets[name][rdtype], zone.rrsigs.get(name, {}).get(rdtype)

    @staticmethod
    def _find_cut(zone: SignedZone, qname: dns.name.Name) -> dns.name.Name | None:
        if not zone.delegations:
            return None
        rel = qname.relativize(zone.origin)
        n = zone.origin
        for label in reversed(rel.labels):
            n = dns.name.Name((label, *n.labels))
            if n in zone.delegations:
                return n
        return None

    @staticmethod
    def _find_dname(zone: SignedZone, qname: dns.name.Name) -> dns.name.Name | None:
        """The DNAME owner strictly above ``qname`` in ``zone`` (the signer keeps the names
        below a DNAME empty, so the first one on the way down is the only one)."""
        rel = qname.relativize(zone.origin)
        n = zone.origin
        for label in reversed(rel.labels[1:]):
            n = dns.name.Name((label, *n.labels))
            if RdataType.DNAME in zone.rrsets.get(n, {}):
                return n
        return None

    @staticmethod
    def _closest_encloser(zone: SignedZone, qname: dns.name.Name) -> dns.name.Name:
        n = qname
        while n != zone.origin:
            n = n.parent()
            if zone.exists(n):
                return n
        return zone.origin

    def _soa(self, zone: SignedZone, ans: _Answer) -> None:
        rrset, sig = self._pair(zone, zone.origin, RdataType.SOA)
        neg_ttl = min(rrset.ttl, rrset[0].minimum)
        if neg_ttl != rrset.ttl:
            rrset = _renamed(rrset, rrset.name)
            rrset.ttl = neg_ttl
            if sig is not None:
                sig = _renamed(sig, sig.name)
                sig.ttl = neg_ttl
        ans.add("authority", (rrset, sig))

    # ------------------------------------------------------------------ referrals
    def _referral(self, zone: SignedZone, cut: dns.name.Name, ans: _Answer) -> None:
        ans.aa = False
        ns = zone.rrsets[cut][RdataType.NS]
        ans.add("authority", ns)
        if RdataType.DS in zone.rrsets[cut]:
            ans.add("authority", self._pair(zone, cut, RdataType.DS))
        elif ans.do and zone.denial is not None:
            self._denial(zone, cut, ans, self._ds_nodata_proof(zone, cut))
        for rd in ns:
            for rt in (RdataType.A, RdataType.AAAA):
                g = zone.glue.get(rd.target, {}).get(rt) or zone.rrsets.get(rd.target, {}).get(rt)
                if g is not None:
                    ans.add("additional", g)

    # ------------------------------------------------------------------ negative answers
    def _nodata(
        self,
        zone: SignedZone,
        qname: dns.name.Name,
        qtype: int,
        ans: _Answer,
        wildcard: tuple[dns.name.Name, dns.name.Name] | None = None,
    ) -> None:
        self._soa(zone, ans)
        if not ans.do or zone.denial is None:
            return
        if wildcard is not None:
            proof = self._wildcard_nodata_proof(zone, qname, *wildcard)
        elif qtype == RdataType.DS and qname in zone.delegations:
            proof = self._ds_nodata_proof(zone, qname)
        elif isinstance(zone.denial, NSEC3):
            # not in the chain (opt-out): closest provable encloser
            h = zone.nsec3_match(qname)
            proof = [h] if h is not None else self._nsec3_cpe_proof(zone, qname)
        elif qname in zone.rrsets:
            proof = [qname]
        else:  # empty non-terminal: the NSEC covering it
            proof = [zone.nsec_cover(qname)]
        self._denial(zone, qname, ans, proof)

    def _nxdomain(
        self, zone: SignedZone, qname: dns.name.Name, ce: dns.name.Name, ans: _Answer
    ) -> None:
        ans.rcode = dns.rcode.NXDOMAIN
        self._soa(zone, ans)
        if not ans.do or zone.denial is None:
            return
        wild = dns.name.Name((b"*", *ce.labels))
        if isinstance(zone.denial, NSEC3):
            nc = self._next_closer(qname, ce)
            proof: list[bytes | dns.name.Name] = [
                zone.nsec3_hash(ce),
                zone.nsec3_cover(nc),
                zone.nsec3_cover(wild),
            ]
            if zone.nsec3_match(ce) is None:  # ce not in chain: fall back to the provable one
                proof = [*self._nsec3_cpe_proof(zone, qname), zone.nsec3_cover(wild)]
        else:
            proof = [zone.nsec_cover(qname), zone.nsec_cover(wild)]
        self._denial(zone, qname, ans, proof)

    @staticmethod
    def _next_closer(qname: dns.name.Name, ce: dns.name.Name) -> dns.name.Name:
        return dns.name.Name(qname.labels[-(len(ce) + 1) :])

    def _nsec3_cpe_proof(self, zone: SignedZone, qname: dns.name.Name) -> list[bytes]:
        """Closest provable encloser proof (RFC 5155 7.2.1): match + next-closer cover."""
        n, prev = qname, qname
        while zone.nsec3_match(n) is None and n != zone.origin:
            prev, n = n, n.parent()
        h = zone.nsec3_hash(n)
        return [h] if prev == n else [h, zone.nsec3_cover(prev)]

    def _ds_nodata_proof(self, zone: SignedZone, cut: dns.name.Name) -> list:
        if isinstance(zone.denial, NSEC3):
            h = zone.nsec3_match(cut)
            return [h] if h is not None else self._nsec3_cpe_proof(zone, cut)
        return [cut]

    def _wildcard_answer_proof(
        self, zone: SignedZone, qname: dns.name.Name, ce: dns.name.Name
    ) -> list[RRPair]:
        if zone.denial is None:
            return []
        if isinstance(zone.denial, NSEC3):
            keys: list = [zone.nsec3_cover(self._next_closer(qname, ce))]
        else:
            keys = [zone.nsec_cover(qname)]
        return [self._proof_pair(zone, k) for k in keys]

    def _wildcard_nodata_proof(
        self, zone: SignedZone, qname: dns.name.Name, ce: dns.name.Name, wild: dns.name.Name
    ) -> list:
        if isinstance(zone.denial, NSEC3):
            return [
                zone.nsec3_hash(ce),
                zone.nsec3_cover(self._next_closer(qname, ce)),
                zone.nsec3_hash(wild),
            ]
        # An NSEC at the wildcard, or (an empty non-terminal has none) the one covering it.
        return [zone.nsec_cover(qname), wild if wild in zone.rrsets else zone.nsec_cover(wild)]

    @staticmethod
    def _proof_pair(zone: SignedZone, key: dns.name.Name | bytes) -> RRPair:
        if isinstance(key, bytes):
            return zone.nsec3_rrsets[key]
        return zone.rrsets[key][RdataType.NSEC], zone.rrsigs.get(key, {}).get(RdataType.NSEC)

    def _denial(self, zone: SignedZone, qname: dns.name.Name, ans: _Answer, proof: list) -> None:
        """Add a denial proof to the authority section, with the zone's denial faults."""
        if any(f.covers(qname) for f in zone.faults_of(Fault.MISSING_DENIAL)):
            return
        if any(f.covers(qname) for f in zone.faults_of(Fault.WRONG_DENIAL)):
            proof = self._wrong_proof(zone, qname, len(set(proof)))
        for h in zone.nsec3_flood:  # CVE-2023-50868: hashes for a validator to compute
            ans.add("authority", zone.nsec3_rrsets[h])
        for key in dict.fromkeys(proof):
            if key in zone.nsec3_rrsets or (
                isinstance(key, dns.name.Name) and RdataType.NSEC in zone.rrsets.get(key, {})
            ):
                ans.add("authority", self._proof_pair(zone, key))

    @staticmethod
    def _wrong_proof(zone: SignedZone, qname: dns.name.Name, count: int) -> list:
        """Chain entries that neither match nor cover anything relevant to ``qname``."""
        relevant = [qname]
        n = qname
        while n != zone.origin:
            n = n.parent()
            relevant += [n, dns.name.Name((b"*", *n.labels))]
        relevant.append(dns.name.Name((b"*", *zone.origin.labels)))
        if isinstance(zone.denial, NSEC3):
            bad = {zone.nsec3_cover(x) for x in relevant}
            candidates: list = [h for h in zone.nsec3_hashes if h not in bad]
        else:
            bad_names = {zone.nsec_cover(x) for x in relevant}
            candidates = [o for o in zone.nsec_names if o not in bad_names]
        return candidates[: max(count, 1)]


class NameServerResponder(Responder):
    """One secondary name server: its copy of one zone, answered as its behaviour says."""

    recursion_available = False

    def __init__(self, secondary: SignedSecondary, parent: SignedHierarchy) -> None:
        super().__init__(SignedHierarchy.only(parent, secondary.zone))
        self.secondary = secondary

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        behaviour = self.secondary.behaviour
        if behaviour in (NSBehaviour.SILENT, NSBehaviour.DOWN):
            return None
        if behaviour == NSBehaviour.REFUSED and not query.flags & dns.flags.QR:
            return self._error(query, dns.rcode.REFUSED)
        response = super().respond(query)
        if response is not None and behaviour == NSBehaviour.NOT_AUTHORITATIVE:
            response.flags &= ~dns.flags.AA
        return response


# ---------------------------------------------------------------------- transports


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.server.query_count += 1
        try:
            out = self.server.responder.handle_wire(data, udp=True)
        except Exception:  # pragma: no cover - handle_wire already guards
            log.exception("UDP query from %s", addr)
            return
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        log.debug("UDP error: %s", exc)


class DNSServer:
    """Authoritative server for a signed hierarchy on ``host``: UDP and TCP, one port.

    ``async with DNSServer(signed) as srv: ...`` or ``await srv.start()`` / ``stop()``.
    ``port=0`` picks an ephemeral port free for both UDP and TCP.  ``responder=`` serves
    any :class:`WireResponder` instead of a signed hierarchy (the conformance corpus's
    replay of recorded responses).
    """

    def __init__(
        self,
        signed: SignedHierarchy | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        responder: WireResponder | None = None,
    ) -> None:
        if responder is None:
            if signed is None:
                raise TypeError("DNSServer needs a signed hierarchy or a responder")
            responder = Responder(signed)
        elif signed is not None:
            raise TypeError("DNSServer takes a signed hierarchy or a responder, not both")
        self.responder: WireResponder = responder
        self.host = host
        self.port = port
        self.query_count = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task] = set()

    def _hierarchy_responder(self) -> Responder:
        if not isinstance(self.responder, Responder):
            raise AttributeError("this server answers from a responder, not a signed hierarchy")
        return self.responder

    @property
    def signed(self) -> SignedHierarchy:
        return self._hierarchy_responder().signed

    @signed.setter
    def signed(self, value: SignedHierarchy) -> None:
        """Swap the served data (e.g. re-signed later) without restarting."""
        self._hierarchy_responder().signed = value

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        attempts = 50 if self.port == 0 else 1
        last: OSError | None = None
        for _ in range(attempts):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self), local_addr=(self.host, self.port), family=family
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, self.host, port, family=family, reuse_address=True
                )
            except OSError as e:
                udp.close()
                last = e
                if e.errno != errno.EADDRINUSE:
                    raise
                continue
            self._udp = udp
            self.port = port
            return
        raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP: {last}")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for t in list(self._conns):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
            self._tcp = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    (length,) = struct.unpack("!H", head)
                    data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    break
                self.query_count += 1
                out = self.responder.handle_wire(data, udp=False)
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("TCP connection failed")
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()
            # cancelled by stop(): end quietly (a cancelled handler task makes asyncio log
            # "Exception in callback" for every connection still open)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
