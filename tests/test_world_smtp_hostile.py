"""The world's hostile SMTP servers added for issue 12, seen by a raw client and by the probe:
a reset right after accept, garbage instead of a greeting, a hang after the EHLO reply, and
garbage in answer to STARTTLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dane_monitor.probe import Timeouts, probe
from dane_monitor.world.pki import PKI
from dane_monitor.world.smtp import (
    GARBAGE_GREETING_LINE,
    STARTTLS_GARBAGE_BYTES,
    Behaviour,
    SMTPServer,
)

B = Behaviour
FAST = Timeouts(connect=2, banner=1, command=1, tls=1, quit=1, total=10)
DEADLINE = 10  # generous: only a broken server or client ever waits this long


@pytest.fixture(scope="module")
def chain():
    return PKI().issue(["mail.example"])


async def _server(chain, behaviour: Behaviour) -> SMTPServer:
    server = SMTPServer("127.0.0.1", chains=[chain], behaviours={behaviour})
    await server.start()
    return server


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(DEADLINE):
        while marker not in data:
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture
async def servers(chain) -> AsyncIterator[dict[Behaviour, SMTPServer]]:
    started = {}
    try:
        for b in (B.RESET_AFTER_ACCEPT, B.GARBAGE_GREETING, B.HANG_AFTER_EHLO, B.STARTTLS_GARBAGE):
            started[b] = await _server(chain, b)
        yield started
    finally:
        for server in started.values():
            await server.stop()


async def test_reset_after_accept_sends_a_tcp_rst(servers):
    server = servers[B.RESET_AFTER_ACCEPT]

    async def connect_and_read_until_the_end() -> None:
        # A FIN ends this with EOF (b""), a RST raises ConnectionResetError: while reading,
        # or already while connecting when it arrives before the loop sees the connection.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            async with asyncio.timeout(DEADLINE):
                while await reader.read(4096):
                    pass  # pragma: no cover - the server sends nothing
        finally:
            writer.transport.abort()

    with pytest.raises(ConnectionResetError):
        await connect_and_read_until_the_end()
    assert server.connections == 1


async def test_garbage_greeting_is_not_smtp(servers):
    server = servers[B.GARBAGE_GREETING]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        assert await _read_until(reader, b"\n") == GARBAGE_GREETING_LINE
    finally:
        writer.close()


async def test_hang_after_ehlo_never_answers_starttls(servers):
    server = servers[B.HANG_AFTER_EHLO]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        await _read_until(reader, b"220 ")
        writer.write(b"EHLO client.example\r\n")
        ehlo = await _read_until(reader, b"250 ")
        assert b"STARTTLS" in ehlo
        writer.write(b"STARTTLS\r\n")
        await writer.drain()
        # no answer, and the connection stays open: the read can only end by our deadline
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(FAST.command):
                await reader.read(1)
    finally:
        writer.close()


async def test_starttls_garbage_answers_with_garbage(servers):
    server = servers[B.STARTTLS_GARBAGE]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        await _read_until(reader, b"220 ")
        writer.write(b"EHLO client.example\r\n")
        await _read_until(reader, b"250 ")
        writer.write(b"STARTTLS\r\n")
        assert await _read_until(reader, b"\r\n") == STARTTLS_GARBAGE_BYTES
    finally:
        writer.close()
    assert server.handshakes == 0


@pytest.mark.parametrize(
    ("behaviour", "error", "step"),
    [
        # "connect" too: the RST may reach the socket before the loop sees it connected
        (B.RESET_AFTER_ACCEPT, "closed", {"banner", "connect"}),
        (B.GARBAGE_GREETING, "bad-reply", {"banner"}),
        (B.HANG_AFTER_EHLO, "timeout", {"starttls"}),
        (B.STARTTLS_GARBAGE, "bad-reply", {"starttls"}),
    ],
)
async def test_the_probe_names_each_failure(servers, behaviour, error, step):
    server = servers[behaviour]
    result = await probe(server.host, server.port, sni="mail.example", timeouts=FAST)
    assert result.error == error and result.error_step in step, result.transcript
    assert not result.tls_established
    if behaviour == B.RESET_AFTER_ACCEPT:
        assert "reset" in (result.detail or ""), result.detail


async def test_a_reset_seen_while_connecting_is_closed_not_a_connect_failure(monkeypatch):
    """The handshake completed (a RST to the SYN would be "refused"); the server reset the
    connection before the event loop saw it connected. Same server, same code."""

    async def reset(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", reset)
    result = await probe("127.0.0.1", 25, sni="mail.example", timeouts=FAST)
    assert (result.error, result.error_step) == ("closed", "connect")
    assert "reset" in (result.detail or "")


async def test_garbage_is_shown_escaped_once(servers):
    """What an operator reads: each odd byte escaped once, as the server sent it."""
    server = servers[B.STARTTLS_GARBAGE]
    result = await probe(server.host, server.port, sni="mail.example", timeouts=FAST)
    shown = r"\x00\xff\xfe garbage \x01\x02\x03"
    assert result.detail == f"not an SMTP reply line: '{shown}'"
    assert f"S: {shown}" in result.transcript
