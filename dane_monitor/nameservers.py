"""Nameserver consistency (issue 16): ask every authoritative server of the zones on a
check's path directly, and say where they disagree.

A validating resolver asks one of a zone's servers; which one is up to it. When a secondary
serves a stale TLSA RRset, an old MX RRset, signatures that expire tomorrow or a corrupted
signature, the senders whose resolver happens to ask it defer mail while every check that
asks one resolver says all is well. :func:`survey` (I/O) asks each address of each listed
server the questions the check's validated lookups asked, plus the SOA and the DNSKEY RRset;
:func:`findings` (pure) turns the survey into findings.

Bounds: at most :data:`MAX_SERVERS` servers per zone and :data:`MAX_ADDRESSES` addresses per
server, every query at once, each UDP (TCP when truncated) within the per-query timeout; the
whole survey within the caller's deadline. The NS RRset and the servers' addresses come from
the validator (its cache, usually: the check has just walked these zones), not from glue.

Findings are made only when at least one server of the zone answers with authority: a zone
whose servers all fail to answer us directly (a network that blocks outbound DNS, a test
setup on another port) says nothing here; the validated path already says what senders get.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import secrets
import struct
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

# Before dnspython, which decides its optional features when first imported (_compat).
import dane_monitor._compat  # noqa: F401  # isort: skip
import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dane_monitor import evidence as ev
from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor._memo import ByIdentity
from dane_monitor.findings import E, Place, W, finding
from dane_monitor.judge import HostJudgement, judge_host
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.report import Finding, SenderAction, Severity
from dane_monitor.settings import Thresholds

DAY = 86400
MAX_SERVERS = 8
MAX_ADDRESSES = 2
#: Names walked up from a zone to find its parent, and the parent's server addresses asked
#: for the referral's glue (when a name server's own name resolves to no address).
MAX_PARENT_STEPS = 8
MAX_GLUE_ADDRESSES = 4
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
#: Queries in flight at once per survey (a domain with many MX zones, each with many servers).
MAX_IN_FLIGHT = 64
PAYLOAD = 1232
#: A server's signatures are "much earlier" than the others' when they expire inside the
#: warning window and at least this long before the best server's.
EXPIRY_SLACK = 3600
#: Hosts named only by an MX RRset a server serves differently, looked up and probed to judge
#: what senders behind that server do (:func:`other_mx_hosts`): at most this many, by
#: preference. Beyond them, the finding cannot say that no host delivers: it stays a warning.
MAX_OTHER_HOSTS = 8
#: Addresses that only an A/AAAA RRset a server serves differently gives an MX host (one
#: DANE applies to), probed to judge what senders behind that server meet
#: (:func:`other_addresses`): at most this many per survey.
MAX_OTHER_ADDRESSES = 8

# Errors that say our host has no route to the address (an IPv6 server seen from a host
# without IPv6): the server is not asked, and that is no finding.
_NO_ROUTE = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
)

Lookup = Callable[[dns.name.Name, str], Awaitable[Answer]]


# -- I/O ----------------------------------------------------------------------------------------


class _Counter:
    """One survey's bookkeeping: messages sent, and the bound on queries in flight. (The
    signature verifications are remembered across surveys: :data:`_VERIFIED`.)"""

    def __init__(self) -> None:
        self.sent = 0
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)  # made in the survey's loop


#: How many verifications and parsed replies the memos below keep (oldest dropped first).
_MEMO = 8192
# A zone's servers (the primary and every faithful secondary alike) give every check the same
# RRsets and RRSIGs until the zone is re-signed:
# a verification is remembered, keyed on everything it reads (names, records, signatures,
# keys) and kept until the time it could change: a success until its earliest signature
# expires, a failure for five minutes (a signature whose inception has not come yet).
_VERIFIED: OrderedDict[tuple[Any, ...], tuple[bool, str, float]] = OrderedDict()
_FAILURE_KEPT = 300.0
# A reply is parsed once per distinct content: the same query and the same reply bytes after
# the ID (the only field that changes between identical questions and answers) parse to the
# same message, found to answer that query, which no one changes afterwards.
_PARSED: OrderedDict[tuple[bytes, bytes], dns.message.Message] = OrderedDict()


def _remember(memo: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > _MEMO:
        memo.popitem(last=False)


def _parse(query: dns.message.Message, query_wire: bytes, raw: bytes) -> dns.message.Message:
    """The reply to ``query`` in ``raw``; FormError when it is not one (ID, QR, question)."""
    if raw[:2] != query_wire[:2]:
        raise dns.exception.FormError("the reply does not answer the query (ID)")
    key = (query_wire[2:], raw[2:])
    reply = _PARSED.get(key)
    if reply is None:
        reply = dns.message.from_wire(raw)
        reply.id = query.id  # the IDs matched above; the kept question has its own
        if not query.is_response(reply):
            raise dns.exception.FormError("the reply does not answer the query")
        _remember(_PARSED, key, reply)
    else:
        _PARSED.move_to_end(key)
    return reply


class _UDP(asyncio.DatagramProtocol):
    """One query over a connected UDP socket: an ICMP "port unreachable" fails it at once
    (dnspython's UDP query waits for its timeout instead)."""

    def __init__(self, future: asyncio.Future[bytes]) -> None:
        self.future = future

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.future.done():
            self.future.set_exception(exc or ConnectionError("closed"))


async def _udp(wire: bytes, address: str, port: int, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _UDP(future), remote_addr=(address, port)
    )
    try:
        transport.sendto(wire)
        return await asyncio.wait_for(future, timeout)
    finally:
        transport.close()


async def _tcp(wire: bytes, address: str, port: int, timeout: float) -> bytes:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(address, port)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout)


@functools.lru_cache(maxsize=_MEMO)
def _query(qname: dns.name.Name, rdtype: str) -> tuple[dns.message.Message, bytes]:
    """The question (RD off, DO on) and its wire form after the ID: made once per question."""
    q = dns.message.make_query(qname, rdtype, want_dnssec=True, payload=PAYLOAD)
    q.flags &= ~dns.flags.RD
    return q, q.to_wire()[2:]


async def _ask(
    qname: dns.name.Name, rdtype: str, address: str, port: int, timeout: float, sent: _Counter
) -> dns.message.Message:
    q, rest = _query(qname, rdtype)
    wire = secrets.token_bytes(2) + rest  # a fresh ID each time
    sent.sent += 1
    reply = _parse(q, wire, await _udp(wire, address, port, timeout))
    if reply.flags & dns.flags.TC:
        sent.sent += 1
        reply = _parse(q, wire, await _tcp(wire, address, port, timeout))
    return reply


# What a server's reply says about one question, for as long as the reply's bytes (one parsed
# message object, see _PARSED), the zone's keys (the validated DNSKEY RRset object) and the
# verification (see _VERIFIED) stay the same: a faithful server's answers are read once.
_ANSWERS: OrderedDict[tuple[Any, ...], tuple[Any, Any, ev.ServerAnswer, float]] = OrderedDict()


def _answer(
    zone: dns.name.Name,
    qname: dns.name.Name,
    rdtype: str,
    reply: dns.message.Message,
    keys: dns.rrset.RRset | None,
    now: float,
) -> ev.ServerAnswer:
    key = (id(reply), id(keys), zone, rdtype)
    hit = _ANSWERS.get(key)
    if hit is not None and hit[0] is reply and hit[1] is keys and now < hit[3]:
        return hit[2]
    answer = _read_answer(zone, qname, rdtype, reply, keys, now)
    if answer.signatures_ok is True:
        until = float(answer.expiration or 0)
    elif answer.signatures_ok is False:
        until = now + _FAILURE_KEPT
    else:
        until = float("inf")
    _remember(_ANSWERS, key, (reply, keys, answer, until))
    return answer


def _read_answer(
    zone: dns.name.Name,
    qname: dns.name.Name,
    rdtype: str,
    reply: dns.message.Message,
    keys: dns.rrset.RRset | None,
    now: float,
) -> ev.ServerAnswer:
    qtype = dns.rdatatype.RdataType.make(rdtype)
    rrset = _find(reply.answer, qname, qtype)
    covered = qtype
    if rrset is None:  # a CNAME in place of the RRset: compare the CNAME
        rrset = _find(reply.answer, qname, dns.rdatatype.CNAME)
        covered = dns.rdatatype.CNAME
    records: tuple[str, ...] = ()
    expiration = None
    ok: bool | None = None
    error = ""
    if rrset is not None:
        records = tuple(sorted(_rdata_text(rrset.rdtype, r) for r in rrset))
        sigs = _sigs(reply, qname, covered)
        if sigs is not None:
            expiration = min(int(s.expiration) for s in sigs)
            if keys is not None:
                memo = (zone, qname, covered, records, tuple(sorted(s.to_text() for s in sigs)),
                        tuple(sorted(k.to_text() for k in keys)))  # fmt: skip
                hit = _VERIFIED.get(memo)
                if hit is None or now >= hit[2]:
                    try:
                        dns.dnssec.validate(rrset, sigs, {zone: keys}, now=now)
                        hit = (True, "", float(expiration))
                    except dns.dnssec.ValidationFailure as exc:
                        hit = (False, str(exc) or "no signature verifies", now + _FAILURE_KEPT)
                    _remember(_VERIFIED, memo, hit)
                ok, error = hit[0], hit[1]
        elif keys is not None:
            ok, error = False, "no RRSIG"
    return ev.ServerAnswer(
        qname.to_text(),
        rdtype,
        dns.rcode.to_text(reply.rcode()),
        bool(reply.flags & dns.flags.AA),
        records,
        expiration,
        ok,
        error,
    )


def _sigs(reply: dns.message.Message, qname: dns.name.Name, covered: int) -> dns.rrset.RRset | None:
    for r in reply.answer:
        if r.name == qname and r.rdtype == dns.rdatatype.RRSIG and r.covers == covered:
            return r
    return None


def _find(
    section: Sequence[dns.rrset.RRset], qname: dns.name.Name, rdtype: int
) -> dns.rrset.RRset | None:
    for r in section:
        if r.name == qname and r.rdtype == rdtype:
            return r
    return None


def _rdata_text(rdtype: int, rdata: object) -> str:
    text = rdata.to_text()  # type: ignore[attr-defined]  # every Rdata has it
    if rdtype == dns.rdatatype.CNAME:
        return f"CNAME {text}"
    return text


async def _server_view(
    zone: dns.name.Name,
    server: str,
    address: str,
    questions: Sequence[tuple[str, str]],
    keys: dns.rrset.RRset | None,
    port: int,
    timeout: float,
    sent: _Counter,
    now: float,
    *,
    glue: bool = False,
) -> ev.ServerView:
    async def one(name: str, rdtype: str) -> ev.ServerAnswer | BaseException:
        qname = dns.name.from_text(name)
        try:
            async with sent.slots:
                reply = await _ask(qname, rdtype, address, port, timeout, sent)
        except Exception as exc:  # every failure is an outcome here
            return exc
        return _answer(zone, qname, rdtype, reply, keys, now)

    # The SOA first (questions[0]): a server that does not answer it is not asked the rest.
    first = await one(*questions[0])
    results = [first]
    if isinstance(first, ev.ServerAnswer):
        results += await asyncio.gather(*(one(n, t) for n, t in questions[1:]))
    answers = [r for r in results if isinstance(r, ev.ServerAnswer)]
    failures = [r for r in results if not isinstance(r, ev.ServerAnswer)]
    if not answers:
        exc = failures[0]
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            error = "timeout"
        elif isinstance(exc, OSError) and exc.errno in _NO_ROUTE:
            error = "no-route"  # our host cannot reach that address (family): not theirs
        elif isinstance(exc, OSError):
            error = "unreachable"
        else:
            error = "malformed"
        detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if error == "timeout":
            detail = f"no reply within {timeout:g}s"
        return ev.ServerView(zone.to_text(), server, address, port, error, detail, glue=glue)
    return ev.ServerView(zone.to_text(), server, address, port, answers=tuple(answers), glue=glue)


def _lookup_state(a: Answer) -> str:
    return f"{a.status.value} {a.kind.value}"


async def _parent_zone(lookup: Lookup, origin: dns.name.Name) -> dns.name.Name | None:
    """The zone above ``origin``: the closest enclosing name with an NS RRset of its own
    (at most :data:`MAX_PARENT_STEPS` names up; None for the root or when none is found)."""
    name = origin
    for _ in range(MAX_PARENT_STEPS):
        if name == dns.name.root:
            return None
        name = name.parent()
        ns = await lookup(name, "NS")
        if ns.rrset is not None and ns.kind == Kind.POSITIVE and ns.canonical_name == name:
            return name
    return None


async def parent_glue(
    lookup: Lookup,
    origin: dns.name.Name,
    names: Sequence[dns.name.Name],
    port: int,
    timeout: float,
    sent: _Counter,
) -> tuple[dict[dns.name.Name, list[str]], bool]:
    """The addresses the parent's referral gives for the name servers ``names`` of
    ``origin`` (glue: what resolvers following the delegation use when the names themselves
    resolve to nothing). The parent's servers (at most :data:`MAX_GLUE_ADDRESSES` addresses,
    found through the validator) are asked ``origin NS`` with RD=0 at once; only A/AAAA
    records of ``names`` below the parent are taken from the additional section, at most
    :data:`MAX_ADDRESSES` per name. Also: whether a server of the parent answered."""
    parent = await _parent_zone(lookup, origin)
    if parent is None:
        return {}, False
    ns = await lookup(parent, "NS")
    assert ns.rrset is not None
    servers = sorted(r.target for r in ns.rrset if r.rdtype == dns.rdatatype.NS)[:MAX_SERVERS]
    found = await asyncio.gather(
        *(asyncio.gather(lookup(n, "A"), lookup(n, "AAAA")) for n in servers)
    )
    addresses = list(dict.fromkeys(a for pair in found for a in _addresses(*pair)))
    wanted = {n for n in names if n.is_subdomain(parent)}
    if not wanted:  # glue is only for names below the parent: the names must resolve
        return {}, True

    async def referral(address: str) -> dns.message.Message | None:
        try:
            async with sent.slots:
                return await _ask(origin, "NS", address, port, timeout, sent)
        except Exception:  # a parent server that fails us gives no glue; the others may
            return None

    replies = await asyncio.gather(*(referral(a) for a in addresses[:MAX_GLUE_ADDRESSES]))
    out: dict[dns.name.Name, list[str]] = {}
    for reply in replies:
        if reply is None or reply.rcode() != dns.rcode.NOERROR:
            continue
        for rrset in reply.additional:
            if rrset.name not in wanted or rrset.rdtype not in _ADDRESS_TYPES:
                continue
            got = out.setdefault(rrset.name, [])
            for r in rrset:
                if r.address not in got and len(got) < MAX_ADDRESSES:
                    got.append(r.address)
    answered = any(r is not None and r.rcode() == dns.rcode.NOERROR for r in replies)
    return out, answered


def _addresses(a: Answer, aaaa: Answer) -> list[str]:
    out: list[str] = []
    for ans in (a, aaaa):
        if ans.rrset is not None and ans.kind == Kind.POSITIVE:
            out += [r.to_text() for r in ans.rrset if r.rdtype == ans.qtype]
    return out


async def survey_zone(
    lookup: Lookup,
    zone: str,
    questions: Iterable[tuple[str, str]],
    used: Sequence[tuple[str, str, tuple[str, ...]]] = (),
    *,
    port: int = 53,
    timeout: float = 2.0,
    now: float | None = None,
    sent: _Counter | None = None,
) -> ev.ZoneSurvey:
    """Ask every listed server address of ``zone`` the SOA, the DNSKEY RRset and
    ``questions`` ((owner, rdtype) pairs) directly. ``used``: the RRsets the check used, by
    (owner, rdtype, records), which the comparison holds each server to."""
    now = time.time() if now is None else now
    sent = sent or _Counter()
    origin = dns.name.from_text(zone)
    asked = tuple(dict.fromkeys([(zone, "SOA"), (zone, "DNSKEY"), *questions]))
    ns, dnskey = await asyncio.gather(lookup(origin, "NS"), lookup(origin, "DNSKEY"))
    keys = dnskey.rrset if dnskey.status == Status.SECURE and dnskey.rrset is not None else None
    if ns.rrset is None or ns.kind != Kind.POSITIVE:
        note = f"the NS RRset could not be looked up ({ns.status.value} {ns.kind.value})"
        return ev.ZoneSurvey(zone, asked, note=note, used=tuple(used))
    names = sorted(r.target for r in ns.rrset if r.rdtype == dns.rdatatype.NS)
    note = ""
    if len(names) > MAX_SERVERS:
        note = f"{len(names)} servers listed; the first {MAX_SERVERS} asked"
        names = names[:MAX_SERVERS]
    found = await asyncio.gather(
        *(asyncio.gather(lookup(n, "A"), lookup(n, "AAAA")) for n in names)
    )
    resolved = {
        n: _addresses(a, aaaa)[:MAX_ADDRESSES] for n, (a, aaaa) in zip(names, found, strict=True)
    }
    unresolved = [n for n in names if not resolved[n]]
    glue: dict[dns.name.Name, list[str]] = {}
    asked_parent = False
    if unresolved:
        glue, asked_parent = await parent_glue(lookup, origin, unresolved, port, timeout, sent)
    no_glue = (
        "the parent's referral carries no glue for it"
        if asked_parent
        else "no server of the parent zone told us its glue"
    )
    jobs = []
    missing = []
    for name, (a, aaaa) in zip(names, found, strict=True):
        addresses, from_glue = resolved[name], False
        if not addresses and glue.get(name):
            addresses, from_glue = glue[name][:MAX_ADDRESSES], True
        if not addresses:
            missing.append(
                ev.ServerView(
                    zone,
                    name.to_text(),
                    "",
                    port,
                    "no-address",
                    f"its name has no address ({_lookup_state(a)} A, {_lookup_state(aaaa)} "
                    f"AAAA) and {no_glue}",
                )
            )
        for address in addresses:
            jobs.append(
                _server_view(
                    origin,
                    name.to_text(),
                    address,
                    asked,
                    keys,
                    port,
                    timeout,
                    sent,
                    now,
                    glue=from_glue,
                )
            )
    views = await asyncio.gather(*jobs)
    return ev.ZoneSurvey(zone, asked, (*views, *missing), note=note, used=tuple(used))


def plan(
    d: ev.Domain, extra: Iterable[Answer] = ()
) -> dict[str, list[tuple[str, str, tuple[str, ...]]]]:
    """The zones on the check's path, each with the RRsets the check used there (owner,
    rdtype, records): the signer of every validated answer (the final RRset's zone, after
    CNAMEs), and of ``extra`` answers (the CNAMEs on the way, each zone's DS: see
    :func:`survey`). Unsigned answers have no known zone and are left out."""
    out: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
    for answer in (*d.lookups(), *extra):
        found = _plan_entry(answer)
        if found is None:
            continue
        zone, entry = found
        if entry not in out.setdefault(zone, []):
            out[zone].append(entry)
    return out


# Each check plans with the validator's cached Answer objects, which nothing changes: an
# answer's zone and entry are worked out once (printing a DNSKEY RRset on every check cost
# more than the survey it keys; dane_monitor._memo).
_PlanEntry = tuple[str, tuple[str, str, tuple[str, ...]]] | None
_PLANNED: ByIdentity[_PlanEntry] = ByIdentity(_MEMO)


def _plan_entry(answer: Answer) -> _PlanEntry:
    return _PLANNED(answer, _planned)


def _planned(answer: Answer) -> _PlanEntry:
    if answer.signer is None or answer.status != Status.SECURE:
        return None
    owner = answer.canonical_name.to_text()
    rdtype = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(answer.qtype))
    records: tuple[str, ...] = ()
    if answer.rrset is not None and answer.kind == Kind.POSITIVE:
        records = tuple(sorted(_rdata_text(answer.rrset.rdtype, r) for r in answer.rrset))
    return answer.signer.to_text(), (owner, rdtype, records)


class SurveyCache:
    """What each zone's servers answered, kept ``max_age`` seconds for the checks that follow
    (an exporter checks many targets whose MX hosts share a provider's zones: each zone is
    asked once per ``max_age``, not once per target). Keyed on the zone, the exact questions
    (with the check's validated records: a change there is asked about at once) and
    the port; at most ``size`` zones, the least recently used dropped first."""

    def __init__(self, max_age: float, size: int = 4096) -> None:
        self.max_age = max_age
        self.size = size
        self._kept: OrderedDict[tuple[Any, ...], tuple[float, ev.ZoneSurvey]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> ev.ZoneSurvey | None:
        kept = self._kept.get(key)
        if kept is None or time.monotonic() - kept[0] > self.max_age:
            return None
        self._kept.move_to_end(key)
        return kept[1]

    def put(self, key: tuple[Any, ...], survey: ev.ZoneSurvey) -> None:
        self._kept[key] = (time.monotonic(), survey)
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


async def survey(
    lookup: Lookup,
    d: ev.Domain,
    *,
    port: int = 53,
    timeout: float = 2.0,
    deadline: float | None = None,
    cache: SurveyCache | None = None,
) -> ev.NameServerSurvey:
    """Every zone of :func:`plan` surveyed at once (each zone once per check), within
    ``deadline`` seconds (what did not finish is a timeout of the zones concerned).
    ``cache``: reuse what a zone's servers answered to the same questions in an earlier
    check, while it is young enough."""
    t0, now, sent = time.monotonic(), time.time(), _Counter()
    # Beyond the final RRsets: each secure CNAME on the way (in the zone of its owner, which
    # may differ from the target's) and each zone's DS RRset (in the parent zone).
    owners = {
        step.owner
        for answer in d.lookups()
        for step in answer.cnames
        if step.dname is None and step.status == Status.SECURE
    }
    zones = plan(d)
    extra = await asyncio.gather(
        *(lookup(owner, "CNAME") for owner in sorted(owners)),
        *(lookup(dns.name.from_text(z), "DS") for z in sorted(zones) if z != "."),
    )
    zones = plan(d, extra)

    async def one(zone: str, used: list[tuple[str, str, tuple[str, ...]]]) -> ev.ZoneSurvey:
        questions = [(o, t) for o, t, _ in used]
        key = (zone, tuple(sorted(set(questions))), port)
        kept = cache.get(key) if cache is not None else None
        if kept is not None:  # the servers' answers, held to this check's RRsets
            return dataclasses.replace(kept, used=tuple(used))
        job = survey_zone(
            lookup, zone, questions, used, port=port, timeout=timeout, now=now, sent=sent
        )
        try:
            result = await asyncio.wait_for(job, deadline)
        except TimeoutError:
            return ev.ZoneSurvey(zone, (), note=f"not finished within {deadline}s")
        if cache is not None:
            cache.put(key, result)
        return result

    done = await asyncio.gather(*(one(z, u) for z, u in zones.items()))
    return ev.NameServerSurvey(tuple(done), sent.sent, time.monotonic() - t0)


# -- comparison (pure) ----------------------------------------------------------------------


def _serial_newer(a: int, b: int) -> bool:
    """RFC 1982 serial number arithmetic: is ``a`` newer than ``b``?"""
    return a != b and ((a - b) % 2**32) < 2**31


def _label(v: ev.ServerView) -> str:
    if v.glue:
        return f"{v.server.rstrip('.')} ({v.address}, from the parent's glue)"
    return f"{v.server.rstrip('.')} ({v.address})"


def _authoritative(v: ev.ServerView) -> bool:
    soa = next((a for a in v.answers if a.rdtype == "SOA"), None)
    return v.error is None and soa is not None and soa.rcode == "NOERROR" and soa.authoritative


def _show(records: tuple[str, ...]) -> str:
    if not records:
        return "nothing"
    return ", ".join(r if len(r) <= 60 else r[:56] + "…" for r in records)


def tlsa_failure(d: ev.Domain, owner: str, records: tuple[str, ...]) -> str | None:
    """Do ``records`` (a TLSA RRset as a server serves it at ``owner``) fail a chain the
    check saw at a host whose deciding TLSA lookup is at ``owner``? The failure, or None."""
    try:
        parsed = [T.TLSARecord.from_text(r) for r in records if not r.startswith("CNAME ")]
    except ValueError as exc:
        return f"unparsable record ({exc})"
    for host in d.hosts:
        if not host.tlsa or host.tlsa[-1].answer.canonical_name.to_text() != owner:
            continue
        names = policy.reference_names(host.name, host.tlsa[-1].base)
        for e in host.endpoints:
            if not e.probe.chain:
                continue
            if not parsed:
                return "no TLSA record"
            m = T.authenticate(parsed, e.probe.chain, names)
            if not m.authenticated:
                key = e.probe.leaf_key_type or "?"
                return f"{e.address} ({key} key): {m.failure}"
    return None


def findings(d: ev.Domain, th: Thresholds) -> list[Finding]:
    """What :attr:`ev.Domain.nameservers` says to the operator (nothing when not asked)."""
    s = d.nameservers
    if s is None:
        return []
    out: list[Finding] = []
    for z in s.zones:
        out += zone_findings(z, d, th)
    return out


def zone_findings(z: ev.ZoneSurvey, d: ev.Domain, th: Thresholds) -> list[Finding]:
    where = Place(domain=None if d.mx_only else d.target)
    good = [v for v in z.servers if _authoritative(v)]
    if not good:
        return []  # nobody answers us directly: nothing to compare (see the module's doc)
    out: list[Finding] = []
    zone = z.zone
    for v in z.servers:
        at = Place(where.domain, address=v.address or None, port=v.port)
        if v.error == "no-route":
            continue  # e.g. an IPv6 address from a host without IPv6: checked from elsewhere
        if v.error == "no-address":
            out.append(
                finding(
                    "ns-unreachable",
                    W,
                    f"{v.server.rstrip('.')}, a name server of {zone}, cannot be asked: "
                    f"{v.detail}; resolvers that pick it fail over to another server, and "
                    "mail is delayed (publish its address, or remove it from the NS RRset)",
                    where=at,
                )
            )
        elif v.error is not None:
            out.append(
                finding(
                    "ns-unreachable",
                    W,
                    f"{_label(v)}, a name server of {zone}, "
                    f"does not answer ({v.error}: {v.detail}): resolvers that ask it "
                    "wait and retry another server, and mail is delayed",
                    where=at,
                )
            )
        elif v not in good:
            soa = next((a for a in v.answers if a.rdtype == "SOA"), None)
            how = (
                f"answers {soa.rcode}"
                if soa is not None and soa.rcode != "NOERROR"
                else "answers without authority (no AA bit)"
            )
            out.append(
                finding(
                    "ns-lame",
                    W,
                    f"{_label(v)} is listed as a name server of "
                    f"{zone} but {how} (lame delegation): resolvers that ask it "
                    "fail over to another server, or fail",
                    where=at,
                )
            )
    out += serial_findings(zone, good, where)
    out += rrset_findings(z, good, d, where)
    out += signature_findings(zone, good, where)
    out += expiry_findings(zone, good, d.now, th, where)
    return [dataclasses.replace(f, zone=zone) for f in out]


def serial_findings(zone: str, good: Sequence[ev.ServerView], where: Place) -> list[Finding]:
    serials = {v.address: v.serial for v in good if v.serial is not None}
    if len(set(serials.values())) <= 1:
        return []
    newest = max(serials.values(), key=_Key)
    out = []
    for v in good:
        if v.serial is not None and _serial_newer(newest, v.serial):
            others = sorted({_label(o) for o in good if o.serial == newest})
            out.append(
                finding(
                    "ns-serial-lag",
                    W,
                    f"{_label(v)} serves {zone} with SOA serial "
                    f"{v.serial}, behind {newest} at {', '.join(others)}: its copy "
                    "is stale (zone transfers or NOTIFY failing?)",
                    where=Place(where.domain, address=v.address, port=v.port),
                )
            )
    return out


class _Key:
    """Sort key ordering serials by RFC 1982 (among serials within 2**31 of each other)."""

    def __init__(self, serial: int) -> None:
        self.serial = serial

    def __lt__(self, other: _Key) -> bool:
        return _serial_newer(other.serial, self.serial)


def rrset_findings(
    z: ev.ZoneSurvey, good: Sequence[ev.ServerView], d: ev.Domain, where: Place
) -> list[Finding]:
    """Servers whose RRset differs from the one the check used (its validated answer), or,
    for the DNSKEY RRset the check did not record, from the one most servers serve."""
    used = {(o, t): r for o, t, r in z.used}
    out: list[Finding] = []
    for name, rdtype in z.questions:
        if rdtype == "SOA":
            continue  # the serial says it
        served = {
            v.address: a.records
            for v in good
            for a in v.answers
            if a.name == name and a.rdtype == rdtype and a.rcode in ("NOERROR", "NXDOMAIN")
        }
        if not served:
            continue
        reference = used.get((name, rdtype))
        if reference is None:
            if len(set(served.values())) <= 1:
                continue
            reference = Counter(served.values()).most_common(1)[0][0]
        for v in good:
            records = served.get(v.address)
            if records is None or records == reference:
                continue
            severity = W
            consequence = "senders whose resolver asks it see a different RRset"
            if rdtype == "TLSA":
                failure = tlsa_failure(d, name, records)
                if failure is not None:
                    severity = E
                    consequence = (
                        f"it does not authenticate the server ({failure}): DANE "
                        "senders whose resolver asks this server defer mail"
                    )
            elif rdtype == "MX":
                answer = next(a for a in _answers(v, name, rdtype) if a.records == records)
                severity, consequence = mx_consequence(d, answer, v.server)
            elif rdtype in ("A", "AAAA"):
                severity, consequence = address_consequence(d, v, name, rdtype)
            same = sorted(_label(o) for o in good if served.get(o.address) == reference)
            against = f"{', '.join(same)} and the check" if same else "the check"
            out.append(
                finding(
                    "ns-rrset-differs",
                    severity,
                    f"{_label(v)} serves {name} {rdtype} as {_show(records)}; "
                    f"{against} see {_show(reference)}: {consequence}",
                    where=Place(where.domain, address=v.address, port=v.port),
                    record=f"{name} {rdtype}",
                )
            )
    return out


def _answers(v: ev.ServerView, name: str, rdtype: str) -> Iterable[ev.ServerAnswer]:
    return (a for a in v.answers if a.name == name and a.rdtype == rdtype)


def served_mx(a: ev.ServerAnswer, domain: str) -> tuple[str, tuple[tuple[str, int | None], ...]]:
    """What a sender makes of an MX answer as one server serves it (:func:`policy.mx_plan`
    on text): the mode (``mx``, ``null``, ``nxdomain``, ``implicit``; ``other`` for a CNAME
    or records we cannot read) and the hosts it tries, by preference, names in lower case."""
    if a.rcode == "NXDOMAIN":
        return "nxdomain", ()
    if not a.records:
        return "implicit", ((domain.lower(), None),)
    parsed = []
    for r in a.records:
        pref, _, exchange = r.partition(" ")
        if r.startswith("CNAME ") or not pref.isdigit():
            return "other", ()
        try:
            parsed.append((int(pref), dns.name.from_text(exchange).to_text().lower()))
        except dns.exception.DNSException:
            return "other", ()
    hosts = tuple((x, p) for p, x in sorted(parsed) if x != ".")
    return ("mx", hosts) if hosts else ("null", ())


def _differing_mx(s: ev.NameServerSurvey) -> Iterable[ev.ServerAnswer]:
    """Every MX answer an authoritative server gives that differs from the check's."""
    for z in s.zones:
        used = {(o, t): r for o, t, r in z.used if t == "MX"}
        for v in z.servers:
            if not _authoritative(v):
                continue
            for a in v.answers:
                reference = used.get((a.name, a.rdtype))
                if reference not in (None, a.records) and a.rcode in ("NOERROR", "NXDOMAIN"):
                    yield a


def other_mx_hosts(d: ev.Domain, s: ev.NameServerSurvey) -> list[tuple[str, int | None]]:
    """The MX hosts (name, preference) that an MX RRset some authoritative server serves
    names and the check's validated one does not: the first :data:`MAX_OTHER_HOSTS` by
    preference. The check looks them up and probes them as its own (Checker.host_evidence),
    so :func:`mx_consequence` can judge what senders that got that RRset do."""
    known = {h.name.lower() for h in d.hosts}
    found: dict[str, int | None] = {}
    for a in _differing_mx(s):
        for name, pref in served_mx(a, d.target)[1]:
            if name not in known:
                old = found.get(name)
                found[name] = pref if old is None or (pref is not None and pref < old) else old
    ranked = sorted(found.items(), key=lambda x: (x[1] if x[1] is not None else -1, x[0]))
    return ranked[:MAX_OTHER_HOSTS]


def mx_consequence(d: ev.Domain, a: ev.ServerAnswer, server: str) -> tuple[Severity, str]:
    """(severity, what senders do) for a server (``server``) that serves the MX answer
    ``a``, other than the check's: each host of that RRset judged by the decision table
    (judge_host) on the evidence of the check's own hosts and of
    :attr:`ev.NameServerSurvey.hosts`. An error when, at some port, no host of it would take
    mail (no address, DANE failure, bogus...) or the RRset says there is no mail (null MX,
    NXDOMAIN); a warning when a host delivers or we cannot tell, or when a host was not
    looked up (beyond :data:`MAX_OTHER_HOSTS`, or out of time)."""
    who = f"senders whose resolver asks {server.rstrip('.')}"
    mode, hosts = served_mx(a, d.target)
    if mode == "nxdomain":
        return E, f"the domain does not exist there: {who} bounce mail"
    if mode == "null":
        return E, f"a null MX (no mail accepted): {who} bounce mail"
    if mode == "other":
        return W, f"{who} deliver to other hosts"
    s = d.nameservers
    other = s.hosts if s is not None else ()
    evidence = {(h.name.lower(), h.port): h for h in (*d.hosts, *other)}
    ports = sorted({p for _, p in evidence}) or [25]
    lost = []
    for port in ports:
        judged = []
        for name, _ in hosts:
            h = evidence.get((name, port))
            if h is None:
                why = f": {s.hosts_note}" if s is not None and s.hosts_note else ""
                return W, f"{who} deliver to other hosts ({name.rstrip('.')} not looked up{why})"
            judged.append(judge_host(h, d.resolver_ok))
        if any(j.action != SenderAction.DEFER for j in judged):
            continue  # a host takes mail (or we cannot tell): senders reach it
        lost.append((port, judged))
    if not lost:
        return W, f"{who} deliver to other hosts"
    port, judged = lost[0]
    # A host whose name has no address is permanent to senders (Postfix: "Host not found",
    # Exim: "all relevant MX records point to non-existent hosts"): they bounce.
    verb = "bounce" if all(j.case == "no-address" for j in judged) else "defer"
    if verb == "defer" and any(j.case == "no-address" for j in judged):
        verb = "defer or bounce"
    each = "; ".join(f"{j.host.name.rstrip('.')} {j.verdict.value} ({_case(j)})" for j in judged)
    on = f" on port {port}" if ports != [25] else ""
    return E, f"no host of it takes mail{on} ({each}): {who} {verb} mail"


def _address_owner(h: ev.Host, rdtype: str) -> str:
    answer = h.a if rdtype == "A" else h.aaaa
    return answer.canonical_name.to_text()


def _served_addresses(h: ev.Host, v: ev.ServerView) -> tuple[list[str], bool]:
    """The addresses a sender whose resolver asks ``v`` gets for ``h``: each family as ``v``
    serves it (the check's own where ``v`` was not asked it). Also: whether ``v`` serves a
    family differently from the check."""
    out: list[str] = []
    differs = False
    mine = set(policy.addresses(h.a, h.aaaa))
    for rdtype, answer in (("A", h.a), ("AAAA", h.aaaa)):
        owner = _address_owner(h, rdtype)
        got = [a for a in _answers(v, owner, rdtype) if a.rcode in ("NOERROR", "NXDOMAIN")]
        if got and not any(r.startswith("CNAME ") for r in got[0].records):
            out += got[0].records
            differs = differs or set(got[0].records) != {
                x for x in mine if (":" in x) == (rdtype == "AAAA")
            }
        elif answer.rrset is not None:
            out += [r.to_text() for r in answer.rrset if r.rdtype == answer.qtype]
    return out, differs


def other_addresses(d: ev.Domain, s: ev.NameServerSurvey) -> list[tuple[ev.Host, str]]:
    """(host, address): the addresses that an A/AAAA RRset some authoritative server serves
    gives an MX host of the check that DANE applies to and that the check did not probe;
    the first :data:`MAX_OTHER_ADDRESSES`. The check probes them as the host's own
    (same SNI, same TLSA RRset), so :func:`address_consequence` can judge them."""
    hosts = [h for h in d.hosts if judge_host(h, d.resolver_ok).dane_applies]
    out: list[tuple[ev.Host, str]] = []
    seen: set[tuple[str, int, str]] = set()
    for z in s.zones:
        for v in z.servers:
            if not _authoritative(v):
                continue
            for h in hosts:
                served, differs = _served_addresses(h, v)
                if not differs:
                    continue
                probed = {e.address for e in h.endpoints}
                for address in served:
                    if address not in probed and (h.name, h.port, address) not in seen:
                        seen.add((h.name, h.port, address))
                        out.append((h, address))
    return out[:MAX_OTHER_ADDRESSES]


def address_consequence(
    d: ev.Domain, v: ev.ServerView, name: str, rdtype: str
) -> tuple[Severity, str]:
    """(severity, what senders do) for a server ``v`` that serves the A/AAAA RRset ``name``
    of an MX host other than the check's: the host judged (judge_host) at the addresses a
    sender whose resolver asks ``v`` gets, on the probes of the check and of
    :attr:`ev.NameServerSurvey.readdressed`. An error when no endpoint there takes mail for
    a host DANE applies to; a warning otherwise, or when an address was not probed."""
    who = f"senders whose resolver asks {v.server.rstrip('.')}"
    s = d.nameservers
    extra = {(h.name, h.port): h.endpoints for h in (s.readdressed if s is not None else ())}
    lost = []
    for h in d.hosts:
        if _address_owner(h, rdtype) != name:
            continue
        served, differs = _served_addresses(h, v)
        if not differs or not judge_host(h, d.resolver_ok).dane_applies:
            continue
        where = f"{h.name.rstrip('.')} port {h.port}"
        if not served:
            lost.append(f"{where} has no address")
            continue
        known = (*h.endpoints, *extra.get((h.name, h.port), ()))
        eps = tuple(e for e in known if e.address in served)
        missing = sorted(set(served) - {e.address for e in eps})
        if missing:
            why = f": {s.hosts_note}" if s is not None and s.hosts_note else ""
            return W, f"{who} connect to other addresses ({', '.join(missing)} not probed{why})"
        j = judge_host(dataclasses.replace(h, endpoints=eps), d.resolver_ok)
        if j.action == SenderAction.DEFER:
            bad = ", ".join(e.endpoint.address for e in j.endpoints if e.action == j.action)
            lost.append(f"{where} {j.verdict.value} ({_case(j)} at {bad})")
    if not lost:
        return W, f"{who} connect to other addresses"
    return E, f"at the addresses it gives, {'; '.join(lost)}: {who} defer mail there"


def _case(j: HostJudgement) -> str:
    """The decision table's case for a host, its endpoints' for a host DANE applies to."""
    if j.case != "dane" or not j.endpoints:
        return j.case
    return ", ".join(dict.fromkeys(e.case for e in j.endpoints if e.action == SenderAction.DEFER))


def signature_findings(zone: str, good: Sequence[ev.ServerView], where: Place) -> list[Finding]:
    """Signatures one server serves that fail against the zone's validated DNSKEY RRset
    while another server's signatures over the same RRset verify."""
    verified = {(a.name, a.rdtype) for v in good for a in v.answers if a.signatures_ok}
    out = []
    for v in good:
        bad = [a for a in v.answers if a.signatures_ok is False and (a.name, a.rdtype) in verified]
        if bad:
            what = "; ".join(f"{a.name} {a.rdtype}: {a.signature_error}" for a in bad)
            out.append(
                finding(
                    "ns-rrsig-bogus",
                    E,
                    f"{_label(v)} serves signatures of {zone} "
                    f"that fail validation ({what}) where other servers' verify: "
                    "validators that ask it call the answer bogus and DANE senders "
                    "behind them defer mail",
                    where=Place(where.domain, address=v.address, port=v.port),
                )
            )
    return out


def expiry_findings(
    zone: str, good: Sequence[ev.ServerView], now: float, th: Thresholds, where: Place
) -> list[Finding]:
    """A server whose earliest signature expires inside the warning window, and at least
    :data:`EXPIRY_SLACK` before the earliest of the server with the latest ones."""
    earliest = {}
    for v in good:
        times = [a.expiration for a in v.answers if a.expiration is not None]
        if times:
            earliest[v.address] = min(times)
    if len(earliest) < 2:
        return []
    best = max(earliest.values())
    out = []
    for v in good:
        t = earliest.get(v.address)
        if t is None or best - t < EXPIRY_SLACK:
            continue
        left = t - now
        if left >= th.rrsig_warning_days * DAY:
            continue
        severity = E if left < th.rrsig_critical_days * DAY else W
        out.append(
            finding(
                "ns-rrsig-expiring",
                severity,
                f"{_label(v)} serves signatures of "
                f"{zone} that expire in {left / 3600:.1f} hours, {(best - t) / DAY:.1f} "
                "days before other servers': when they do, validators that ask it "
                "call the answers bogus and DANE senders behind them defer; check "
                "its zone transfers or its signer",
                where=Place(where.domain, address=v.address, port=v.port),
            )
        )
    return out


def state(v: ev.ServerView) -> str:
    """ok | lame | timeout | unreachable | no-route | malformed | no-address"""
    if v.error is not None:
        return v.error
    return "ok" if _authoritative(v) else "lame"


def to_dict(s: ev.NameServerSurvey) -> dict[str, Any]:
    """The survey as the JSON output shows it: per zone, each server address with its state,
    SOA serial and earliest signature expiry."""
    zones = []
    for z in s.zones:
        servers = []
        for v in z.servers:
            times = [a.expiration for a in v.answers if a.expiration is not None]
            servers.append(
                {
                    "name": v.server,
                    "address": v.address or None,
                    "glue": v.glue,
                    "port": v.port,
                    "state": state(v),
                    "detail": v.detail or None,
                    "serial": v.serial,
                    "rrsig_expiration": min(times) if times else None,
                }
            )
        zones.append({"zone": z.zone, "note": z.note or None, "servers": servers})
    return {"zones": zones, "queries": s.queries, "duration_seconds": round(s.duration, 4)}
