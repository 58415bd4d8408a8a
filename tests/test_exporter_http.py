"""The exporter's HTTP server against garbage, oversized, slow and half-valid requests.

Every bad request gets a 4xx/5xx answer (or a closed connection) within its deadline, and the
server keeps serving good requests afterwards.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_exporter_client import parse_reply, raw

from dane_monitor.exporter.http import HTTPServer, Request, Response, Stream

HANG_GUARD = 30.0  # seconds: a deadline for a stuck server, not a speed requirement
CLOCK = 0.01  # timer granularity: a timeout may fire this much before its nominal time


async def echo(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path} {sorted(request.query.items())}\n")


@pytest.fixture
async def server():
    s = HTTPServer(
        echo,
        max_head=2048,
        max_body=100,
        head_timeout=0.5,
        idle_timeout=1.0,
        max_connections=4,
        max_connections_per_client=4,
    )
    await s.start("127.0.0.1", 0)
    yield s
    await s.close()


async def send(server: HTTPServer, data: bytes, timeout: float = 5) -> bytes:
    return await raw("127.0.0.1", server.port, data, timeout=timeout)


def status(reply: bytes) -> int:
    return parse_reply(reply).status


GOOD = b"GET /x?a=1&a=2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"


async def test_a_good_request(server):
    reply = parse_reply(await send(server, GOOD))
    assert reply.status == 200
    assert reply.text == "GET /x [('a', ['1', '2'])]\n"
    assert reply.headers["content-length"] == str(len(reply.body))


async def test_keep_alive_serves_several_requests_on_one_connection(server):
    two = (
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    out = await send(server, two)
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert b"GET /a" in out and b"GET /b" in out


async def test_head_has_no_body(server):
    out = await send(server, b"HEAD / HTTP/1.0\r\n\r\n")
    reply = parse_reply(out)
    assert reply.status == 200 and reply.body == b"" and int(reply.headers["content-length"]) > 0


BAD = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    (b"GET / FTP/1.0\r\nHost: h\r\n\r\n", 400),
    (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # absolute form
    (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\n continued\r\n\r\n", 400),  # obs-fold
    (b"GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400),  # bare LF
    (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    (b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 300 + b"\r\n", 431),
    (b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n", 400),
]


@pytest.mark.parametrize(("data", "code"), BAD, ids=[str(i) for i in range(len(BAD))])
async def test_bad_requests_get_an_error_and_the_server_stays_up(server, data, code):
    out = await send(server, data)
    assert status(out) == code, out[:200]
    assert b"Connection: close" in out
    assert status(await send(server, GOOD)) == 200


async def test_a_slow_request_head_times_out(server):
    t = time.monotonic()
    out = await send(server, b"GET / HTTP/1.1\r\nHost: h\r\n", timeout=HANG_GUARD)  # unfinished
    assert status(out) == 408  # an answer, not a connection held open
    assert time.monotonic() - t >= server.head_timeout - CLOCK  # after the head timeout


async def test_a_connection_that_sends_nothing_is_closed_at_the_head_timeout(server):
    # The idle timeout (kept-alive connections) is far beyond the hang guard: only the head
    # timeout can have closed it, so 500 silent connections cannot hold every slot for long.
    server.idle_timeout = 10 * HANG_GUARD
    t = time.monotonic()
    assert await send(server, b"", timeout=HANG_GUARD) == b""  # closed: raw() read until EOF
    assert time.monotonic() - t >= server.head_timeout - CLOCK  # not before its head timeout


async def test_a_kept_alive_connection_waits_its_idle_timeout_not_the_head_timeout(server):
    server.head_timeout, server.idle_timeout = 0.2, HANG_GUARD
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for path in (b"/first", b"/second"):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = re.search(rb"Content-Length: (\d+)", head)
            assert length is not None
            await reader.readexactly(int(length[1]))
            await asyncio.sleep(5 * server.head_timeout)  # idle, well past the head timeout
    finally:
        writer.close()


async def test_a_connection_busy_past_the_idle_timeout_is_kept(server):
    # The idle timeout is per request: a client that keeps asking stays connected longer.
    # Pauses of a tenth of it leave 90 % of the timeout for a loaded machine's stalls.
    server.idle_timeout = 2.0
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        t = time.monotonic()
        for _ in range(20):  # 20 pauses of a tenth of the idle timeout: twice the idle timeout
            writer.write(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = re.search(rb"Content-Length: (\d+)", head)
            assert length is not None
            await reader.readexactly(int(length[1]))
            await asyncio.sleep(server.idle_timeout / 10)
        assert time.monotonic() - t >= 2 * server.idle_timeout - CLOCK
    finally:
        writer.close()


async def test_a_body_that_never_comes_is_cut(server):
    server.body_timeout = 0.3
    out = await send(server, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\nabc")
    assert status(out) == 408


async def until(condition, what: str) -> None:
    """Poll ``condition`` until it holds (a hang guard, not a speed requirement)."""
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_connections_beyond_the_limit_get_503(server):
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(4)]
    try:
        await until(lambda: server.open_connections == 4, "the 4 connections accepted")
        assert status(await send(server, GOOD)) == 503
    finally:
        for _, w in held:
            w.close()
    await until(lambda: server.open_connections == 0, "the held connections closed")
    assert status(await send(server, GOOD)) == 200


async def test_one_client_cannot_take_every_slot():
    s = HTTPServer(echo, head_timeout=HANG_GUARD, max_connections=8, max_connections_per_client=2)
    await s.start("127.0.0.1", 0)
    held = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(2)]
    try:
        await until(lambda: s.open_connections == 2, "the 2 connections accepted")
        reply = parse_reply(await raw("127.0.0.1", s.port, GOOD))
        assert (reply.status, reply.text) == (503, "too many connections from this address\n")
        # Another client address (loopback has them all) is still served.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", s.port, local_addr=("127.0.0.2", 0)
        )
        writer.write(GOOD)
        assert status(await asyncio.wait_for(reader.read(), HANG_GUARD)) == 200
        writer.close()
    finally:
        for _, w in held:
            w.close()
        await s.close()


async def test_a_failing_handler_is_a_500_not_a_dead_server():
    async def broken(request: Request) -> Response:
        raise RuntimeError("bug")

    s = HTTPServer(broken)
    await s.start("127.0.0.1", 0)
    try:
        assert status(await raw("127.0.0.1", s.port, GOOD)) == 500
        assert status(await raw("127.0.0.1", s.port, GOOD)) == 500
    finally:
        await s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(
        st.binary(min_size=1, max_size=300),
        st.builds(
            lambda a, b: a + b"\r\n\r\n" + b,
            st.binary(min_size=1, max_size=200),
            st.binary(max_size=50),
        ),
        st.lists(
            st.sampled_from([b"GET", b" ", b"/", b"HTTP/1.1", b"\r\n", b"Host: h", b":", b"\x00"])
        ).map(lambda parts: b"".join(parts) + b"\r\n\r\n"),
    )
)
def test_fuzzed_requests_never_break_the_server(data):
    async def run():
        s = HTTPServer(echo, head_timeout=0.2, idle_timeout=0.2, body_timeout=0.2)
        await s.start("127.0.0.1", 0)
        try:
            out = await raw("127.0.0.1", s.port, data, timeout=5)
            if out:
                assert out.startswith(b"HTTP/1.1 "), out[:100]
                assert 200 <= status(out) < 600
            assert status(await raw("127.0.0.1", s.port, GOOD)) == 200
        finally:
            await s.close()

    asyncio.run(run())


def test_logs_are_one_event_a_line_in_logfmt_or_json():
    import io
    import json
    import logging

    from dane_monitor.exporter import logs

    log = logging.getLogger("dane_monitor.exporter")
    for fmt in ("logfmt", "json"):
        stream = io.StringIO()
        logs.setup(fmt, "info", stream)
        try:
            log.info("checked", extra={"target": "a.example", "detail": 'two words "quoted"'})
        finally:
            logs.reset()
        line = stream.getvalue()
        assert line.count("\n") == 1
        if fmt == "json":
            event = json.loads(line)
            assert (event["msg"], event["target"], event["level"]) == (
                "checked",
                "a.example",
                "info",
            )
        else:
            assert " level=info logger=dane_monitor.exporter msg=checked target=a.example " in line
            assert 'detail="two words \\"quoted\\""' in line
    assert logging.getLogger("dane_monitor").propagate


def _trickle_client(port: int, request: bytes) -> tuple[socket.socket, Callable[[], int]]:
    """A client with a tiny receive window that reads a little at a time, as a slowloris
    reader does; the callable reads what is there and returns bytes read so far (-1 at EOF)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    sock.setblocking(False)
    got = [0]

    def read() -> int:
        try:
            data = sock.recv(1024)
        except BlockingIOError:
            return got[0]
        except ConnectionError:
            return -1
        if not data:
            return -1
        got[0] += len(data)
        return got[0]

    return sock, read


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
async def test_a_slow_reader_is_cut_by_the_write_deadline(length):
    """A client that takes a kilobyte now and then (never idle for the write timeout) is still
    cut once the whole response is overdue: write timeout plus a second per MiB."""
    body = b"x" * (4 << 20)

    async def big(request: Request) -> Response:
        async def pieces():
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        return Response(200, Stream(pieces(), len(body) if length else None))

    s = HTTPServer(big, write_timeout=0.5)
    await s.start("127.0.0.1", 0)
    sock, read = _trickle_client(s.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    try:
        await until(lambda: s.open_connections == 1, "the connection accepted")
        deadline = time.monotonic() + HANG_GUARD
        got = 0
        while (got := read()) != -1 and s.open_connections:
            assert time.monotonic() < deadline, "the slow reader was never cut"
            await asyncio.sleep(0.05)
        assert s.open_connections == 0
        assert got < len(body)  # cut before the end, not served in full
    finally:
        sock.close()
        await s.close()
