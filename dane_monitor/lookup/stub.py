"""An asyncio DNS stub client: UDP with TCP fallback, EDNS0 + DO, deadlines, retries, a cache.

Every failure mode of the wire — no answer, garbage, a reply to another question, a
connection reset — becomes a :class:`Reply` with an ``error`` code rather than an exception,
because the layers above must turn it into the DNS outcome "indeterminate" (RFC 7672
§2.1.1), never into a crash.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dane_monitor.settings import parse_resolver
from dane_monitor.threads import leave_signals_to_main_thread

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_PAYLOAD = 1232  # the DNS flag day 2020 size: no IP fragmentation on common paths
MAX_TCP_MESSAGE = 65535

# Reply.error values (stable: they surface as finding reasons).
TIMEOUT = "timeout"
MALFORMED = "malformed"
NETWORK = "network-error"
DEADLINE = "deadline"


# Parsing a 64 KiB answer (a DNSKEY RRset of hundreds of keys, an NSEC3 flood) takes 15 ms
# of pure Python; off the event loop, the GIL's switch interval keeps everything else
# answering (the exporter's /-/healthy included) while it runs.
PARSE_INLINE_BELOW = 4096
_parser: concurrent.futures.ThreadPoolExecutor | None = None


def _parse_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _parser
    if _parser is None:
        _parser = concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix="dns-parse", initializer=leave_signals_to_main_thread
        )
    return _parser


async def _parse(wire: bytes, q: dns.message.Message) -> dns.message.Message:
    if len(wire) < PARSE_INLINE_BELOW:
        return dns.message.from_wire(wire, keyring=q.keyring, request_mac=q.request_mac)
    parse = functools.partial(
        dns.message.from_wire, wire, keyring=q.keyring, request_mac=q.request_mac
    )
    return await asyncio.get_running_loop().run_in_executor(_parse_pool(), parse)


@dataclass(frozen=True)
class Server:
    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> Server:
        """``127.0.0.1``, ``127.0.0.1:5353``, ``::1``, ``[::1]:5353`` (the one rule:
        :func:`dane_monitor.settings.parse_resolver`)."""
        return cls(*parse_resolver(text))

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def system_resolver(path: str | Path = "/etc/resolv.conf") -> Server:
    """The first ``nameserver`` of resolv.conf (127.0.0.1 when there is none, as libc does)."""
    from pathlib import Path

    try:
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    return Server(parts[1].split("%")[0])
    except OSError:
        pass
    return Server("127.0.0.1")


@dataclass
class Reply:
    """The outcome of one query: a response, or an error code and a detail."""

    response: dns.message.Message | None
    error: str | None = None
    detail: str = ""
    tcp: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.response is not None


@dataclass
class _Entry:
    reply: Reply
    expires: float


@dataclass
class Cache:
    """Responses by question, kept for their TTL; shared by every check of a run.

    Concurrent identical questions share one query in flight. Errors are cached briefly
    (``error_ttl``) so a dead server is not hammered by a thousand checks at once.
    """

    max_entries: int = 100_000
    error_ttl: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[dns.name.Name, int, bool], _Entry] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def get(self, key: tuple[dns.name.Name, int, bool]) -> Reply | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            del self._entries[key]
            return None
        return entry.reply

    def put(self, key: tuple[dns.name.Name, int, bool], reply: Reply) -> None:
        ttl = _cache_ttl(reply, self.error_ttl)
        if ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[key] = _Entry(reply, self.clock() + ttl)

    def _evict(self) -> None:
        now = self.clock()
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:  # oldest insertion first
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)


def _cache_ttl(reply: Reply, error_ttl: float) -> float:
    msg = reply.response
    if msg is None or msg.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return error_ttl
    ttls = [rrset.ttl for section in (msg.answer, msg.authority) for rrset in section]
    if not msg.answer:  # negative answer: RFC 2308 §5, min(SOA TTL, SOA minimum)
        for rrset in msg.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                ttls.append(rrset[0].minimum)
    return float(min(ttls)) if ttls else error_ttl


class StubClient:
    """Sends questions to one recursive resolver (or, in tests, an authoritative server).

    :param server: where to send queries; the system resolver when None.
    :param timeout: how long one try waits for an answer.
    :param tries: UDP tries per question before giving up (each with ``timeout``).
    :param checking_disabled: set CD, so that a validating resolver hands over bogus data
        for us to validate (and to say *why* it is bogus) instead of SERVFAIL.
    :param payload: EDNS0 UDP payload size advertised.
    """

    def __init__(
        self,
        server: Server | str | None = None,
        *,
        timeout: float = 2.0,
        tries: int = 3,
        checking_disabled: bool = True,
        payload: int = DEFAULT_PAYLOAD,
        cache: Cache | None = None,
    ) -> None:
        if server is None:
            server = system_resolver()
        self.server = Server.parse(server) if isinstance(server, str) else server
        self.timeout = timeout
        self.tries = max(1, tries)
        self.checking_disabled = checking_disabled
        self.payload = payload
        self.cache = cache if cache is not None else Cache()
        self._inflight: dict[tuple[dns.name.Name, int, bool], asyncio.Future[Reply]] = {}
        self.queries_sent = 0

    async def query(
        self,
        name: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType | str | int,
        *,
        deadline: float | None = None,
    ) -> Reply:
        """Ask one question; never raises for anything the network or the server does.

        :param deadline: a ``time.monotonic()`` instant after which the answer is no use.
        """
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        qtype = dns.rdatatype.RdataType.make(rdtype)
        key = (qname, int(qtype), self.checking_disabled)
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.hits += 1
            return cached
        # Identical questions in flight share one task of their own, so a caller that is
        # cancelled (a check cut off at its deadline, a target removed on reload) does not
        # cancel the query for the others.
        task = self._inflight.get(key)
        if task is None:
            self.cache.misses += 1
            task = asyncio.ensure_future(self._resolve_and_cache(key, qname, qtype, deadline))
            self._inflight[key] = task

            def forget(_: object) -> None:
                self._inflight.pop(key, None)

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _resolve_and_cache(
        self,
        key: tuple[dns.name.Name, int, bool],
        qname: dns.name.Name,
        qtype: int,
        deadline: float | None,
    ) -> Reply:
        reply = await self._resolve(qname, qtype, deadline)
        if reply.error != DEADLINE:
            self.cache.put(key, reply)
        return reply

    def _make_query(self, qname: dns.name.Name, qtype: int) -> dns.message.Message:
        q = dns.message.make_query(
            qname,
            dns.rdatatype.RdataType.make(qtype),
            use_edns=0,
            want_dnssec=True,
            payload=self.payload,
        )
        q.flags |= dns.flags.RD
        if self.checking_disabled:
            q.flags |= dns.flags.CD
        return q

    async def _resolve(self, qname: dns.name.Name, qtype: int, deadline: float | None) -> Reply:
        started = time.monotonic()
        last = Reply(None, TIMEOUT, f"no answer from {self.server}")
        for _ in range(self.tries):
            budget = self._budget(deadline)
            if budget <= 0:
                return Reply(None, DEADLINE, "deadline passed", elapsed=time.monotonic() - started)
            q = self._make_query(qname, qtype)
            reply = await self._udp(q, budget)
            if reply.ok and reply.response is not None and reply.response.flags & dns.flags.TC:
                budget = self._budget(deadline)
                if budget <= 0:
                    return Reply(None, DEADLINE, "deadline passed before TCP fallback")
                reply = await self._tcp(q, budget)
            reply.elapsed = time.monotonic() - started
            if reply.ok:
                return reply
            last = reply
            if reply.error == MALFORMED:
                # A server that talks garbage over UDP may still talk sense over TCP.
                tcp = await self._tcp(q, self._budget(deadline))
                tcp.elapsed = time.monotonic() - started
                if tcp.ok:
                    return tcp
                last = reply
        return last

    def _budget(self, deadline: float | None) -> float:
        if deadline is None:
            return self.timeout
        return min(self.timeout, deadline - time.monotonic())

    async def _udp(self, q: dns.message.Message, budget: float) -> Reply:
        self.queries_sent += 1
        try:
            # ignore_unexpected/ignore_errors: packets with a wrong ID, from a wrong source,
            # or unparsable are dropped and we keep listening, as a resolver must to resist
            # spoofing; if nothing right arrives we time out.
            response = await dns.asyncquery.udp(
                q,
                self.server.host,
                timeout=budget,
                port=self.server.port,
                ignore_unexpected=True,
                ignore_errors=True,
            )
        except dns.exception.Timeout:
            return Reply(None, TIMEOUT, f"no answer from {self.server} within {budget:.1f}s")
        except (dns.exception.DNSException, ValueError) as exc:
            return Reply(None, MALFORMED, f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            return Reply(None, NETWORK, f"{self.server}: {exc.strerror or exc}")
        return self._checked(q, response, tcp=False)

    async def _tcp(self, q: dns.message.Message, budget: float) -> Reply:
        if budget <= 0:
            return Reply(None, DEADLINE, "deadline passed", tcp=True)
        self.queries_sent += 1
        try:
            async with asyncio.timeout(budget):
                wire = await self._tcp_exchange(q.to_wire())
                response = await _parse(wire, q)
        except TimeoutError:
            return Reply(None, TIMEOUT, f"no TCP answer from {self.server}", tcp=True)
        except asyncio.IncompleteReadError:
            return Reply(None, MALFORMED, "TCP: the server closed before a whole message", tcp=True)
        except (dns.exception.DNSException, ValueError, EOFError) as exc:
            return Reply(None, MALFORMED, f"TCP: {type(exc).__name__}: {exc}", tcp=True)
        except OSError as exc:
            return Reply(None, NETWORK, f"TCP {self.server}: {exc.strerror or exc}", tcp=True)
        return self._checked(q, response, tcp=True)

    async def _tcp_exchange(self, query: bytes) -> bytes:
        """One length-prefixed query and its reply (RFC 1035 §4.2.2), at most 64 KiB."""
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            writer.write(len(query).to_bytes(2, "big") + query)
            await writer.drain()
            length = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(length)
        finally:
            writer.close()

    @staticmethod
    def _checked(q: dns.message.Message, response: dns.message.Message, *, tcp: bool) -> Reply:
        if not q.is_response(response):
            return Reply(None, MALFORMED, "the reply answers another question", tcp=tcp)
        return Reply(response, tcp=tcp)
