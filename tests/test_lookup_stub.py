"""The stub client against misbehaving servers: it answers with a Reply, never an exception."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dane_monitor.lookup.stub import (
    DEADLINE,
    MALFORMED,
    TIMEOUT,
    Cache,
    Server,
    StubClient,
    system_resolver,
)

Handler = Callable[[dns.message.Message, bytes], list[bytes]]


def answer(query: dns.message.Message, ttl: int = 300, big: bool = False) -> dns.message.Message:
    r = dns.message.make_response(query)
    n = 60 if big else 1
    rrset = dns.rrset.from_text_list(
        query.question[0].name, ttl, "IN", "A", [f"192.0.2.{i}" for i in range(1, n + 1)]
    )
    r.answer.append(rrset)
    return r


class FakeDNS:
    """UDP + TCP on one loopback port; ``udp`` and ``tcp`` decide what goes back."""

    def __init__(self, udp: Handler, tcp: Handler | None = None) -> None:
        self.udp_handler = udp
        self.tcp_handler = tcp or (lambda q, raw: [answer(q).to_wire()])
        self.udp_queries = 0
        self.tcp_queries = 0

    async def __aenter__(self) -> FakeDNS:
        loop = asyncio.get_running_loop()
        fake = self

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport):  # type: ignore[override]
                self.transport = transport

            def datagram_received(self, data, addr):  # type: ignore[override]
                fake.udp_queries += 1
                q = dns.message.from_wire(data)
                for packet in fake.udp_handler(q, data):
                    self.transport.sendto(packet, addr)

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
                fake.tcp_queries += 1
                for packet in fake.tcp_handler(dns.message.from_wire(data), data):
                    writer.write(struct.pack("!H", len(packet)) + packet)
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        # UDP and TCP on one port number: another process may hold the TCP side; retry.
        for _ in range(50):
            self.transport, _ = await loop.create_datagram_endpoint(
                Proto, local_addr=("127.0.0.1", 0)
            )
            self.port = self.transport.get_extra_info("sockname")[1]
            try:
                self.tcp = await asyncio.start_server(on_tcp, "127.0.0.1", self.port)
                break
            except OSError:
                self.transport.close()
        else:
            raise OSError("no port free for both UDP and TCP")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.transport.close()
        self.tcp.close()
        await self.tcp.wait_closed()

    @property
    def server(self) -> Server:
        return Server("127.0.0.1", self.port)


async def test_answer_with_edns_do_and_cd():
    seen = {}

    def handler(q, raw):
        seen["q"] = q
        return [answer(q).to_wire()]

    async with FakeDNS(handler) as fake:
        reply = await StubClient(fake.server, timeout=1).query("mail.example.", "A")
    assert reply.ok and not reply.tcp
    q = seen["q"]
    assert q.edns == 0 and q.ednsflags & dns.flags.DO
    assert q.flags & dns.flags.CD and q.flags & dns.flags.RD


async def test_truncated_udp_falls_back_to_tcp():
    def truncated(q, raw):
        r = dns.message.make_response(q)
        r.flags |= dns.flags.TC
        return [r.to_wire()]

    async with FakeDNS(truncated, lambda q, raw: [answer(q, big=True).to_wire()]) as fake:
        reply = await StubClient(fake.server, timeout=1).query("big.example.", "A")
    assert reply.ok and reply.tcp
    assert len(reply.response.answer[0]) == 60
    assert fake.tcp_queries == 1


async def test_spoofed_id_and_garbage_are_ignored_until_the_real_answer():
    sent = {}

    def handler(q, raw):
        sent["id"] = q.id
        wrong = answer(q)
        wrong.id = (q.id + 1) % 65536
        wrong.answer[0] = dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "203.0.113.66")
        return [b"\x00garbage", wrong.to_wire(), answer(q).to_wire()]

    async with FakeDNS(handler) as fake:
        reply = await StubClient(fake.server, timeout=1).query("mail.example.", "A")
    assert reply.ok
    assert reply.response.id == sent["id"]
    assert [rd.to_text() for rd in reply.response.answer[0]] == ["192.0.2.1"]


async def test_reply_to_another_question_is_not_an_answer():
    def other_question(q, raw):
        fake_q = dns.message.make_query("evil.example.", "A")
        fake_q.id = q.id
        return [answer(fake_q).to_wire()]

    async with FakeDNS(other_question) as fake:
        reply = await StubClient(fake.server, timeout=0.3, tries=1).query("mail.example.", "A")
    assert not reply.ok
    assert reply.error in (TIMEOUT, MALFORMED)


async def test_silent_server_times_out_within_the_deadline():
    async with FakeDNS(lambda q, raw: []) as fake:
        # one try alone would wait 20 s: the 0.5 s deadline must be what ends the query
        client = StubClient(fake.server, timeout=20, tries=3)
        started = time.monotonic()
        reply = await client.query("mail.example.", "A", deadline=time.monotonic() + 0.5)
        elapsed = time.monotonic() - started
    assert not reply.ok
    assert reply.error in (TIMEOUT, DEADLINE)
    assert 0.5 <= elapsed < 10  # the deadline's, not a try's timeout


async def test_retries_after_a_lost_packet():
    state = {"n": 0}

    def lossy(q, raw):
        state["n"] += 1
        return [] if state["n"] == 1 else [answer(q).to_wire()]

    async with FakeDNS(lossy) as fake:
        # the lost try waits out its timeout; the answered one must come well within it
        reply = await StubClient(fake.server, timeout=2, tries=3).query("mail.example.", "A")
    assert reply.ok
    assert fake.udp_queries == 2


async def test_cache_honours_ttl_and_shares_in_flight_queries():
    now = [1000.0]
    cache = Cache(clock=lambda: now[0])
    async with FakeDNS(lambda q, raw: [answer(q, ttl=60).to_wire()]) as fake:
        client = StubClient(fake.server, timeout=1, cache=cache)
        replies = await asyncio.gather(*(client.query("mail.example.", "A") for _ in range(20)))
        assert all(r.ok for r in replies)
        assert fake.udp_queries == 1
        now[0] += 59
        await client.query("mail.example.", "A")
        assert fake.udp_queries == 1
        now[0] += 2
        await client.query("mail.example.", "A")
        assert fake.udp_queries == 2


async def test_negative_answers_are_cached_for_the_soa_minimum():
    def nxdomain(q, raw):
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(dns.rrset.from_text("example.", 3600, "IN", "SOA", "ns. h. 1 2 3 4 30"))
        return [r.to_wire()]

    now = [0.0]
    async with FakeDNS(nxdomain) as fake:
        client = StubClient(fake.server, timeout=1, cache=Cache(clock=lambda: now[0]))
        await client.query("nope.example.", "A")
        now[0] = 29
        await client.query("nope.example.", "A")
        assert fake.udp_queries == 1
        now[0] = 31
        await client.query("nope.example.", "A")
        assert fake.udp_queries == 2


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("::1", "::1", 53),
        ("[::1]:5353", "::1", 5353),
    ],
)
def test_server_parse(text, host, port):
    assert Server.parse(text) == Server(host, port)


@pytest.mark.parametrize("bad", ["resolver.example", "127.0.0.1:0", "127.0.0.1:99999", ""])
def test_server_parse_rejects_bad_input(bad):
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by cause
        Server.parse(bad)


def test_system_resolver_reads_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    assert system_resolver(conf) == Server("192.0.2.53")
    assert system_resolver(tmp_path / "missing") == Server("127.0.0.1")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(udp=st.binary(max_size=600), tcp=st.binary(max_size=600), keep_id=st.booleans())
def test_garbage_never_escapes_as_an_exception(udp: bytes, tcp: bytes, keep_id: bool):
    def mangle(data: bytes, raw: bytes) -> bytes:
        # Keeping the query's ID makes garbage look like a reply and reach the parser.
        return raw[:2] + data[2:] if keep_id and len(data) >= 2 else data

    async def run() -> None:
        async with FakeDNS(
            lambda q, raw: [mangle(udp, raw)], lambda q, raw: [mangle(tcp, raw)]
        ) as fake:
            client = StubClient(fake.server, timeout=0.2, tries=1)
            reply = await client.query("mail.example.", "A", deadline=time.monotonic() + 1)
            assert reply.ok or reply.error

    asyncio.run(run())


async def test_a_cancelled_caller_does_not_cancel_the_shared_query():
    state = {"n": 0}

    def slow(q, raw):
        state["n"] += 1
        return [] if state["n"] == 1 else [answer(q).to_wire()]  # the first try is lost

    async with FakeDNS(slow) as fake:
        client = StubClient(fake.server, timeout=2, tries=3)  # the second caller joins in time
        first = asyncio.ensure_future(client.query("mail.example.", "A"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(client.query("mail.example.", "A"))
        await asyncio.sleep(0.05)
        first.cancel()
        reply = await second
    assert first.cancelled()
    assert reply.ok
    assert fake.udp_queries == 2  # one shared query, retried once; not one per caller
