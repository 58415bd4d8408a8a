"""What a check saw: the immutable record that the judgement and the finding rules read.

:mod:`dane_monitor.check` fills it (the only layer that does I/O); :mod:`dane_monitor.judge`
and :mod:`dane_monitor.findings` are pure functions of it. Everything here is as received:
validated DNS answers with their DNSSEC status and the probes' results with the chains as
presented, plus the moment (``now``) at which the evidence is judged.
"""

from __future__ import annotations

from dataclasses import dataclass

from dane_monitor.lookup.answer import Answer, Status
from dane_monitor.probe import ProbeResult


@dataclass(frozen=True)
class Endpoint:
    """One probe of one (address, port), per key type served."""

    address: str
    port: int  # the logical port (the one in the TLSA name)
    probe: ProbeResult


@dataclass(frozen=True)
class TLSALookup:
    base: str  # the TLSA base domain candidate (RFC 7672 §2.2.3)
    owner: str  # _port._tcp.<base>
    answer: Answer


@dataclass(frozen=True)
class Host:
    """One MX host on one port, as a sender reaches it."""

    name: str  # as the MX record (or the domain, for implicit MX) names it
    port: int
    preference: int | None
    a: Answer
    aaaa: Answer
    # TLSA base domain candidates in lookup order (policy.tlsa_bases); empty: DANE does not
    # apply, no TLSA lookup is made.
    bases: tuple[str, ...] = ()
    tlsa: tuple[TLSALookup, ...] = ()  # the lookups made, in order
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def lookups(self) -> tuple[Answer, ...]:
        return (self.a, self.aaaa, *(t.answer for t in self.tlsa))


@dataclass(frozen=True)
class ServerAnswer:
    """What one authoritative server address said to one question (asked directly, RD=0)."""

    name: str  # owner asked, with the final dot
    rdtype: str  # "TLSA", "MX", "A", "AAAA", "SOA", "DNSKEY", "DS"
    rcode: str  # NOERROR, NXDOMAIN, REFUSED, …
    authoritative: bool  # the AA bit
    records: tuple[str, ...]  # the RRset's rdata as text, sorted (empty: none)
    expiration: int | None = None  # earliest RRSIG expiration over the RRset (POSIX)
    # Do its RRSIGs verify against the zone's validated DNSKEY RRset? None: not checked
    # (no records, an unsigned zone, or no validated keys).
    signatures_ok: bool | None = None
    signature_error: str = ""


@dataclass(frozen=True)
class ServerView:
    """One address of one authoritative server of a zone, and what it answered."""

    zone: str
    server: str  # the name server's name (from the NS RRset)
    address: str
    port: int
    # No usable reply: "timeout", "unreachable" (connection refused, no route), "malformed".
    error: str | None = None
    detail: str = ""
    answers: tuple[ServerAnswer, ...] = ()
    # The address came from the parent's referral (glue), not from a lookup of the server's
    # name: the name resolves to no address (e.g. the zone lacks it), while resolvers that
    # follow the delegation still ask it.
    glue: bool = False

    @property
    def serial(self) -> int | None:
        for a in self.answers:
            if a.rdtype == "SOA" and a.records and a.authoritative:
                try:
                    return int(a.records[0].split()[2])
                except (IndexError, ValueError):
                    return None
        return None


@dataclass(frozen=True)
class ZoneSurvey:
    """Every listed server address of one zone, asked the same questions."""

    zone: str
    questions: tuple[tuple[str, str], ...]  # (name, rdtype) asked of every server
    servers: tuple[ServerView, ...] = ()
    # The RRsets the check's validated lookups used in this zone: (owner, rdtype, records).
    used: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # Why the zone could not be surveyed (fully), e.g. its NS RRset failed; "" when it was.
    note: str = ""


@dataclass(frozen=True)
class NameServerSurvey:
    """Nameserver consistency (issue 16): the zones on the check's path, each server asked
    directly. ``queries``: DNS messages sent (UDP and TCP); ``duration``: seconds spent."""

    zones: tuple[ZoneSurvey, ...] = ()
    queries: int = 0
    duration: float = 0.0
    # The MX hosts that only an MX RRset some server serves differently names (not the
    # validated one), looked up and probed as the check's own hosts are, so the findings can
    # say what senders whose resolver asks that server do (nameservers.other_mx_hosts: the
    # first few by preference, each port).
    hosts: tuple[Host, ...] = ()
    # Why those hosts were not (all) looked up, e.g. not finished in time; "" when they were.
    hosts_note: str = ""
    # The check's own hosts (DANE applying) again, each with the endpoints probed at the
    # addresses that only an A/AAAA RRset some server serves differently gives
    # (nameservers.other_addresses: the first few).
    readdressed: tuple[Host, ...] = ()


@dataclass(frozen=True)
class Domain:
    """A whole check: a mail domain (or one MX host, ``mx_only``)."""

    target: str  # IDNA A-label form when it is a name, else as given
    mx_only: bool
    validation: str  # local | resolver
    started: float  # wall clock when the check began
    now: float  # wall clock at which the evidence is judged (expiry windows)
    duration: float = 0.0
    bad_name: str | None = None  # why the target is not a domain name
    mx: Answer | None = None
    hosts: tuple[Host, ...] = ()
    # Whether our resolver validates a known-good name; asked only when a lookup on the path
    # is indeterminate (None: not asked, or the validator cannot tell).
    resolver_ok: bool | None = None
    resolver_warnings: tuple[tuple[str, str], ...] = ()
    # Every authoritative server of the zones on the path, asked directly (None: not asked).
    nameservers: NameServerSurvey | None = None
    # The TLS-RPT policy lookup (_smtp._tls.<domain> TXT, RFC 8460 §3), made beside the MX
    # lookup for a domain (None: --mx host mode, or not asked). Never part of lookups():
    # it does not decide the RFC 7672 verdict.
    tlsrpt: Answer | None = None

    def lookups(self) -> list[Answer]:
        out = [self.mx] if self.mx is not None else []
        for host in self.hosts:
            out += host.lookups
        return out

    def indeterminate(self) -> bool:
        return any(a.status == Status.INDETERMINATE for a in self.lookups())
