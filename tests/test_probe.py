"""The SMTP/TLS probe against local servers: the world's SMTP servers (each misbehaviour),
raw asyncio servers for what the world lacks (garbage, bad replies, resets, plaintext after
STARTTLS, stalled handshakes), dual RSA/ECDSA chains, deadlines, memory, and a hypothesis
server that sends arbitrary bytes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import ssl
import struct
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from loopback import HAS_IPV6

from dane_monitor.probe import (
    ERRORS,
    MAX_LINE,
    MAX_REPLY_LINES,
    MAX_TRANSCRIPT,
    STEPS,
    ProbeResult,
    Timeouts,
    key_type_of,
    peer_chain,
    probe,
    probe_all,
)
from dane_monitor.world.pki import PKI, Chain
from dane_monitor.world.smtp import Behaviour, SMTPServer

B = Behaviour
SNI = "mail.example"
# Step deadlines a loopback exchange never reaches, however loaded the machine, so that only
# the step a test makes hang (with its own short deadline) can time out; and a short QUIT,
# whose outcome never changes the result, so that servers that hang after failing are quick.
ROOMY = Timeouts(connect=20, banner=20, command=20, tls=20, quit=0.5, total=60)
# How late past its deadline a loaded machine may end a probe. Tests that measure keep every
# other deadline that could stop the probe further away than this, so "stopped at this
# step's deadline and not at the next one" holds however slow the machine (the figures
# themselves are in benchmarks/, not asserted).
SLACK = 5.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


HOSTS = [
    "127.0.4.1",
    pytest.param("::1", marks=pytest.mark.skipif(not HAS_IPV6, reason="no IPv6")),
]


def der(chain: Chain) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in chain.certs]


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module")
def ecdsa(pki: PKI) -> Chain:
    return pki.issue([SNI])


@pytest.fixture(scope="module")
def rsa(pki: PKI) -> Chain:
    return pki.issue([SNI], key_type="rsa")


@pytest.fixture(scope="module")
def server_ctx(ecdsa: Chain, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A TLS server context for the raw servers below."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*ecdsa.write(tmp_path_factory.mktemp("probe")))
    return ctx


@contextlib.asynccontextmanager
async def raw_server(handler: Handler, host: str = "127.0.4.2") -> AsyncIterator[int]:
    """A TCP server on an ephemeral port that runs ``handler`` per connection; its port.
    On exit every connection is aborted and its handler awaited (Python 3.11 logs an error
    for a connection task that ends cancelled)."""
    sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        sessions[task] = writer
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await handler(reader, writer)
        writer.transport.abort()

    server = await asyncio.start_server(guarded, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in sessions.values():
            writer.transport.abort()
        if sessions:
            _, pending = await asyncio.wait(sessions, timeout=2)
            for task in pending:
                task.cancel()
        await server.wait_closed()


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def hold(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client leaves."""
    while await reader.read(65536):
        pass


def assert_sane(result: ProbeResult) -> None:
    """What every result must satisfy, whatever happened."""
    assert result.error is None or result.error in ERRORS, result.error
    assert (result.error is None) == (result.error_step is None) == (result.detail is None)
    assert result.error_step is None or result.error_step in STEPS
    if result.error is None:
        assert result.tls_established and result.chain
    json.dumps(result.to_dict())


# -- the well-behaved server -------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
async def test_starttls_captures_the_served_chain_with_sni(host: str, ecdsa: Chain) -> None:
    async with SMTPServer(host, chains=[ecdsa]) as server:
        result = await probe(host, server.port, sni=SNI, ehlo_name="probe.example")
    assert_sane(result)
    assert result.error is None
    assert result.chain == der(ecdsa) and len(result.chain) == 2  # leaf + intermediate
    assert result.chain_complete and result.leaf_key_type == "ecdsa"
    assert server.last_sni == SNI and server.snis == [SNI]
    assert result.tls_version in ("TLSv1.2", "TLSv1.3") and result.cipher
    assert result.connected and result.esmtp and result.starttls_offered
    assert result.banner == ["220 mail.example ESMTP dane-monitor test server"]
    assert result.ehlo_keywords[-1] == "STARTTLS"
    assert result.starttls_reply is not None and result.starttls_reply.code == 220
    # the second EHLO, inside TLS: done, and STARTTLS is (rightly) not offered again
    assert result.ehlo_keywords_after_tls is not None and "PIPELINING" in (
        result.ehlo_keywords_after_tls
    )
    assert result.starttls_offered_after_tls is False
    sent = [line for line in result.transcript if line.startswith("C: ")]
    assert sent == ["C: EHLO probe.example", "C: STARTTLS", "C: EHLO probe.example", "C: QUIT"]
    assert "S: 221 2.0.0 Bye" in result.transcript
    assert server.handshakes == 1


async def test_sni_is_the_argument_and_trailing_dot_is_dropped(ecdsa: Chain) -> None:
    async with SMTPServer("127.0.4.1", chains=[ecdsa]) as server:
        result = await probe(server.host, server.port, sni="tlsa-base.example.")
    assert result.error is None and server.last_sni == "tlsa-base.example"


async def test_world_fixture_server_on_its_own_loop(dane_smtp_server, dane_pki) -> None:
    """The pytest_dane fixture runs the server on a background thread: same outcome."""
    chain = dane_pki.issue([SNI], key_type="rsa")
    server = dane_smtp_server("127.0.4.3", chains=[chain])
    result = await probe(server.host, server.port, sni=SNI)
    assert result.error is None and result.chain == der(chain)
    assert result.leaf_key_type == "rsa" and server.last_sni == SNI


# -- each misbehaviour of the world's servers ---------------------------------------------------


@pytest.mark.parametrize(
    ("behaviours", "error", "step"),
    [
        ({B.NORMAL}, None, None),
        ({B.NO_STARTTLS}, "starttls-missing", "ehlo"),
        ({B.STARTTLS_REFUSED}, "starttls-refused", "starttls"),
        ({B.MULTILINE_GREETING, B.STARTTLS_NOT_LAST}, None, None),
        ({B.MULTILINE_GREETING}, None, None),
        ({B.STARTTLS_NOT_LAST}, None, None),
        ({B.HANG_AFTER_CONNECT}, "banner-timeout", "banner"),
        ({B.CLOSE_AFTER_EHLO}, "closed", "starttls"),
        ({B.HUGE_LINE}, "line-too-long", "banner"),
        ({B.TLS_HANDSHAKE_FAILURE}, "tls-failed", "tls"),
    ],
    ids=lambda v: ",".join(sorted(v)) if isinstance(v, set) else str(v),
)
async def test_behaviour_outcomes(
    behaviours: set[Behaviour], error: str | None, step: str | None, ecdsa: Chain
) -> None:
    hang_deadline = 0.5
    hangs = B.HANG_AFTER_CONNECT in behaviours
    timeouts = dataclasses.replace(ROOMY, banner=hang_deadline) if hangs else ROOMY
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours=behaviours) as server:
        result = await probe(server.host, server.port, sni=SNI, timeouts=timeouts)
    assert_sane(result)
    assert (result.error, result.error_step) == (error, step), result.detail
    # only HANG waits, and only for its banner deadline: no other step deadline is reached
    assert result.elapsed < hang_deadline + SLACK < ROOMY.command


async def test_multiline_greeting_is_read_whole(ecdsa: Chain) -> None:
    behaviours = {B.MULTILINE_GREETING, B.STARTTLS_NOT_LAST}
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours=behaviours) as server:
        result = await probe(server.host, server.port, sni=SNI)
    assert [line[:4] for line in result.banner] == ["220-", "220-", "220 "]
    assert result.ehlo_keywords[0] == "STARTTLS" and result.chain == der(ecdsa)


async def test_starttls_refused_keeps_the_454_text_and_quits(ecdsa: Chain) -> None:
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours={B.STARTTLS_REFUSED}) as s:
        result = await probe(s.host, s.port, sni=SNI)
    assert result.error == "starttls-refused"
    assert result.starttls_reply is not None and result.starttls_reply.code == 454
    assert result.starttls_reply.text == "4.7.0 TLS not available due to local problem"
    assert "454 4.7.0 TLS not available" in (result.detail or "")
    assert result.transcript[-2:] == ["C: QUIT", "S: 221 2.0.0 Bye"]


async def test_tls_failure_names_the_openssl_reason(ecdsa: Chain) -> None:
    behaviours = {B.TLS_HANDSHAKE_FAILURE}
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours=behaviours) as server:
        result = await probe(server.host, server.port, sni=SNI)
    assert result.error == "tls-failed" and "HANDSHAKE_FAILURE" in (result.detail or "")
    assert not result.tls_established and result.chain == []


async def test_hang_after_connect_ends_at_the_banner_deadline(ecdsa: Chain) -> None:
    timeouts = Timeouts(banner=0.4)
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours={B.HANG_AFTER_CONNECT}) as s:
        start = time.monotonic()
        result = await probe(s.host, s.port, sni=SNI, timeouts=timeouts)
        took = time.monotonic() - start
    assert result.error == "banner-timeout" and result.connected
    assert "overall deadline" not in (result.detail or ""), result.detail
    assert 0.4 <= result.elapsed <= took < 0.4 + SLACK < timeouts.budget


async def test_overall_cap_wins_over_longer_step_deadlines(ecdsa: Chain) -> None:
    timeouts = Timeouts(banner=30, total=0.3)
    assert timeouts.budget == 0.3
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours={B.HANG_AFTER_CONNECT}) as s:
        result = await probe(s.host, s.port, sni=SNI, timeouts=timeouts)
    assert result.error == "banner-timeout" and "overall deadline" in (result.detail or "")
    assert 0.3 <= result.elapsed < 0.3 + SLACK < timeouts.banner


async def test_huge_line_is_refused_quickly() -> None:
    async with SMTPServer("127.0.4.1", behaviours={B.HUGE_LINE}) as server:
        result = await probe(server.host, server.port, sni=SNI)
    assert result.error == "line-too-long" and result.error_step == "banner"
    assert result.elapsed < SLACK < Timeouts().banner  # refused at once, not at a deadline


_HUGE_SERVER = """
import asyncio
from dane_monitor.world.smtp import Behaviour, SMTPServer

async def main():
    async with SMTPServer("127.0.4.1", behaviours=[Behaviour.HUGE_LINE]) as server:
        print(server.port, flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_huge_line_costs_bounded_memory() -> None:
    """The 10 MB line is served from another process, so tracemalloc sees only the probe."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HUGE_SERVER, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 20))
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            result = await probe("127.0.4.1", port, sni=SNI, ehlo_name="probe.example")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        proc.kill()
        await proc.wait()
    print(f"probe peak memory against a 10 MB line: {peak - base} bytes")
    assert result.error == "line-too-long"
    assert peak - base < 128 * 1024, f"probe peak {peak - base} bytes"


# -- raw servers: what the world does not do ---------------------------------------------------


async def test_rejecting_greeting_is_reported_and_answered_with_quit() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"554-mx.example no SMTP service here\r\n554 5.7.1 go away\r\n")
        seen.append(await reader.readline())
        await send(writer, b"221 bye\r\n")

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI)
    assert (result.error, result.error_step) == ("greeting-rejected", "banner")
    assert result.banner == ["554-mx.example no SMTP service here", "554 5.7.1 go away"]
    assert "554" in (result.detail or "") and seen == [b"QUIT\r\n"]


@pytest.mark.parametrize(
    ("script", "error", "step"),
    [
        (b"\x00\xff\xfeHELLO\r\n", "bad-reply", "banner"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "bad-reply", "banner"),
        (b"220-mx.example\r\n250 mixed codes\r\n", "bad-reply", "banner"),
        (b"250 mx.example wrong code\r\n", "bad-reply", "banner"),
        (b"220-x\r\n" * (MAX_REPLY_LINES + 5), "bad-reply", "banner"),
        (b"220 " + b"x" * MAX_LINE + b"\r\n", "line-too-long", "banner"),
        (b"220 ok\r\n250-mx.example\r\n251 STARTTLS\r\n", "bad-reply", "ehlo"),
        (b"220 ok\r\n421 4.3.2 shutting down\r\n", "ehlo-failed", "ehlo"),
        (b"220 ok\r\n502 5.5.2 what\r\n250 mx.example\r\n", "not-esmtp", "helo"),
        (b"220 ok\r\n502 5.5.2 what\r\n502 5.5.2 what\r\n", "ehlo-failed", "helo"),
        (b"220 ok\r\n250 mx.example\r\n", "starttls-missing", "ehlo"),
        (b"220 ok\r\n250-mx.example\r\n250 STARTTLS\r\n", "closed", "starttls"),
        (b"220 ok\r\n250-mx.example\r\n250 STARTTLS\r\n554 no\r\n", "starttls-refused", "starttls"),
        (b"220 partial greet", "closed", "banner"),
    ],
    ids=lambda v: repr(v[:24])[2:-1] if isinstance(v, bytes) else str(v),
)
async def test_replies_from_a_scripted_server(script: bytes, error: str, step: str) -> None:
    """The server sends ``script`` one reply per client line (all at once, as a
    pipelining server would, when the client is quicker), then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, script)
        await asyncio.sleep(0.05)

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert_sane(result)
    assert (result.error, result.error_step) == (error, step), result.detail


async def test_helo_fallback_marks_the_server_not_esmtp() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 old.example SMTP\r\n")
        assert (await reader.readline()).startswith(b"EHLO ")
        await send(writer, b"500 5.5.1 command unrecognized\r\n")
        assert (await reader.readline()).startswith(b"HELO ")
        await send(writer, b"250 old.example\r\n")
        await hold(reader)

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert result.error == "not-esmtp" and result.esmtp is False and not result.starttls_offered


async def test_reset_after_the_banner_is_closed_at_ehlo() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 mx.example ESMTP\r\n")
        await reader.readline()  # EHLO
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # close with linger 0: a TCP RST

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert (result.error, result.error_step) == ("closed", "ehlo"), result.detail


async def test_bare_lf_lowercase_starttls_mid_reply_and_starttls_again_inside_tls(
    server_ctx: ssl.SSLContext, ecdsa: Chain
) -> None:
    """Bare LF line ends, ``starttls`` in lower case between other keywords; inside TLS the
    server offers STARTTLS again (a bug worth recording, not a failure)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220-mx.example\n220 ESMTP\n")
        await reader.readline()
        await send(writer, b"250-mx.example\n250-SIZE 1000\n250-starttls\n250 8BITMIME\n")
        assert await reader.readline() == b"STARTTLS\r\n"
        await send(writer, b"220 go ahead\n")
        await writer.start_tls(server_ctx)
        await reader.readline()
        await send(writer, b"250-mx.example\n250 STARTTLS\n")
        await reader.readline()
        await send(writer, b"221 bye\n")

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert result.error is None, result.detail
    assert result.banner == ["220-mx.example", "220 ESMTP"]
    assert result.ehlo_keywords == ["SIZE 1000", "starttls", "8BITMIME"]
    assert result.chain == der(ecdsa)
    assert result.starttls_offered_after_tls is True


@pytest.mark.parametrize("same_segment", [True, False], ids=["with-the-220", "after-the-220"])
async def test_plaintext_after_starttls_220_fails_tls(same_segment: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 mx.example ESMTP\r\n")
        await reader.readline()
        await send(writer, b"250-mx.example\r\n250 STARTTLS\r\n")
        await reader.readline()
        garbage = b"250 this is not TLS at all\r\n" * 4
        if same_segment:
            await send(writer, b"220 ready\r\n" + garbage)
        else:
            await send(writer, b"220 ready\r\n")
            await asyncio.sleep(0.05)
            await send(writer, garbage)
        await hold(reader)

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert (result.error, result.error_step) == ("tls-failed", "tls"), result.detail
    assert not result.tls_established
    if same_segment:
        assert "plaintext" in (result.detail or "")


async def test_stalled_handshake_times_out_at_the_tls_deadline() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 mx.example ESMTP\r\n")
        await reader.readline()
        await send(writer, b"250-mx.example\r\n250 STARTTLS\r\n")
        await reader.readline()
        await send(writer, b"220 ready\r\n")
        await hold(reader)  # swallow the ClientHello, never answer

    timeouts = Timeouts(tls=0.4)
    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=timeouts)
    assert (result.error, result.error_step) == ("timeout", "tls"), result.detail
    assert "overall deadline" not in (result.detail or ""), result.detail
    assert 0.4 <= result.elapsed < 0.4 + SLACK < timeouts.budget


async def test_server_closing_during_the_handshake_is_tls_failed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 mx.example ESMTP\r\n")
        await reader.readline()
        await send(writer, b"250-mx.example\r\n250 STARTTLS\r\n")
        await reader.readline()
        await send(writer, b"220 ready\r\n")
        await reader.read(1)  # the ClientHello starts: hang up
        writer.close()

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert (result.error, result.error_step) == ("tls-failed", "tls"), result.detail


async def test_trickling_greeting_cannot_stretch_the_banner_deadline() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220-")
        for _ in range(200):
            await asyncio.sleep(0.02)
            await send(writer, b"x")

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=Timeouts(banner=0.3))
    assert result.error == "banner-timeout" and "overall" not in (result.detail or "")
    assert 0.3 <= result.elapsed < 0.3 + SLACK < Timeouts().total


async def test_transcript_is_bounded() -> None:
    long_keywords = b"".join(b"250-X%03d " % i + b"y" * 2000 + b"\r\n" for i in range(90))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 mx.example ESMTP\r\n")
        await reader.readline()
        await send(writer, b"250-mx.example\r\n" + long_keywords + b"250 SIZE\r\n")
        await hold(reader)

    async with raw_server(handler) as port:
        result = await probe("127.0.4.2", port, sni=SNI, timeouts=ROOMY)
    assert result.error == "starttls-missing" and len(result.ehlo_keywords) == 91
    assert sum(map(len, result.transcript)) <= MAX_TRANSCRIPT + 500
    assert result.transcript[-1] == "* transcript truncated"


# -- connecting ----------------------------------------------------------------------------------


def _closed_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("host", HOSTS)
async def test_closed_port_is_refused_fast(host: str) -> None:
    result = await probe(host, _closed_port(host), sni=SNI)
    assert (result.error, result.error_step) == ("connect-refused", "connect")
    assert not result.connected and result.elapsed < SLACK < Timeouts().connect


async def test_unconnectable_address_is_connect_failed() -> None:
    result = await probe("no-such-host.invalid", 25, sni=SNI, timeouts=ROOMY)
    assert result.error in ("connect-failed", "connect-timeout") and not result.connected


async def test_full_backlog_is_connect_timeout() -> None:
    """A listener that never accepts, with its queue full: SYNs go unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.4.5", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.4.5", port))
            fillers.append(s)
        await asyncio.sleep(0.05)
        timeouts = Timeouts(connect=0.3)
        result = await probe("127.0.4.5", port, sni=SNI, timeouts=timeouts)
    finally:
        for s in fillers:
            s.close()
        listener.close()
    if result.error != "connect-timeout":
        pytest.skip(f"this kernel answers a full backlog ({result.error})")
    assert "overall deadline" not in (result.detail or ""), result.detail
    assert 0.3 <= result.elapsed < 0.3 + SLACK < timeouts.budget


@pytest.mark.parametrize("host", HOSTS)
async def test_implicit_tls(host: str, rsa: Chain) -> None:
    async with SMTPServer(host, chains=[rsa], implicit_tls=True) as server:
        result = await probe(f"[{host}]" if ":" in host else host, server.port, sni=SNI,
                             implicit_tls=True)  # fmt: skip
    assert result.error is None, result.detail
    assert result.implicit_tls and result.chain == der(rsa) and server.last_sni == SNI
    assert result.starttls_reply is None and not result.starttls_offered
    assert result.ehlo_keywords and result.ehlo_keywords_after_tls is None
    assert result.transcript.index("* TLSv1.3 TLS_AES_256_GCM_SHA384, 2 certificate(s), leaf rsa")
    assert result.address == host


async def test_implicit_tls_against_a_starttls_server_fails_tls(ecdsa: Chain) -> None:
    async with SMTPServer("127.0.4.1", chains=[ecdsa]) as server:
        result = await probe(server.host, server.port, sni=SNI, implicit_tls=True, timeouts=ROOMY)
    assert (result.error, result.error_step) == ("tls-failed", "tls")


# -- key types ---------------------------------------------------------------------------------


async def test_probe_all_sees_both_chains_of_a_dual_certificate_server(
    ecdsa: Chain, rsa: Chain
) -> None:
    async with SMTPServer("127.0.4.1", chains=[ecdsa, rsa]) as server:
        results = await probe_all(server.host, server.port, sni=SNI)
    assert [r.leaf_key_type for r in results] == ["ecdsa", "rsa"]
    assert [r.key_type_requested for r in results] == ["any", "rsa"]
    assert results[0].chain == der(ecdsa) and results[1].chain == der(rsa)
    assert results[1].tls_version == "TLSv1.2" and "RSA" in (results[1].cipher or "")
    assert results[0].other_key_types == {"rsa": "served"}
    assert server.snis == [SNI, SNI]


@pytest.mark.parametrize(("served", "other"), [("ecdsa", "rsa"), ("rsa", "ecdsa")])
async def test_probe_all_on_a_single_chain_server(
    served: str, other: str, ecdsa: Chain, rsa: Chain
) -> None:
    chain = ecdsa if served == "ecdsa" else rsa
    async with SMTPServer("127.0.4.1", chains=[chain]) as server:
        results = await probe_all(server.host, server.port, sni=SNI)
    assert len(results) == 1 and results[0].leaf_key_type == served
    assert results[0].chain == der(chain) and results[0].error is None
    assert results[0].other_key_types == {other: "not-served"}
    assert results[0].transcript[-1].startswith(f"* {other}-only handshake: tls-failed")
    assert server.connections == 2


async def test_probe_all_does_not_retry_without_tls(ecdsa: Chain) -> None:
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours={B.NO_STARTTLS}) as server:
        results = await probe_all(server.host, server.port, sni=SNI)
    assert len(results) == 1 and results[0].error == "starttls-missing"
    assert results[0].other_key_types == {} and server.connections == 1


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
async def test_restricted_probe_gets_that_key_type_or_fails(
    key_type: str, ecdsa: Chain, rsa: Chain
) -> None:
    want, other = (rsa, ecdsa) if key_type == "rsa" else (ecdsa, rsa)
    async with SMTPServer("127.0.4.1", chains=[ecdsa, rsa]) as server:
        got = await probe(server.host, server.port, sni=SNI, key_type=key_type)  # type: ignore[arg-type]
    assert got.chain == der(want) and got.tls_version == "TLSv1.2"
    async with SMTPServer("127.0.4.1", chains=[other]) as server:
        missing = await probe(server.host, server.port, sni=SNI, key_type=key_type)  # type: ignore[arg-type]
    assert missing.error == "tls-failed" and missing.chain == []


# -- the result and helpers ------------------------------------------------------------------


async def test_result_round_trips_through_json(ecdsa: Chain) -> None:
    async with SMTPServer("127.0.4.1", chains=[ecdsa], behaviours={B.MULTILINE_GREETING}) as s:
        result = await probe(s.host, s.port, sni=SNI)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["chain"][0].isascii() and data["starttls_reply"]["code"] == 220
    assert ProbeResult.from_dict(data) == result


def test_peer_chain_falls_back_to_the_leaf_and_says_so(ecdsa: Chain) -> None:
    leaf = der(ecdsa)[0]

    class LeafOnly:
        def getpeercert(self, binary_form: bool = False) -> bytes:
            assert binary_form
            return leaf

    class Public(LeafOnly):
        def get_unverified_chain(self) -> list[bytes]:
            return der(ecdsa)

    assert peer_chain(LeafOnly()) == ([leaf], False)  # type: ignore[arg-type]
    assert peer_chain(Public()) == (der(ecdsa), True)  # type: ignore[arg-type]


def test_key_type_of(ecdsa: Chain, rsa: Chain) -> None:
    assert key_type_of(der(ecdsa)[0]) == "ecdsa" and key_type_of(der(rsa)[0]) == "rsa"
    assert key_type_of(b"not a certificate") is None


async def test_programming_errors_raise() -> None:
    with pytest.raises(ValueError, match="key_type"):
        await probe("127.0.0.1", 25, sni=SNI, key_type="dsa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        await probe("127.0.0.1", 0, sni=SNI)
    for bad_sni in ("", "a..b", "bücher.example"):
        with pytest.raises(ValueError, match="sni"):
            await probe("127.0.0.1", 25, sni=bad_sni)
    with pytest.raises(ValueError, match="ehlo_name"):
        await probe("127.0.0.1", 25, sni=SNI, ehlo_name="a.example\r\nRSET")
    with pytest.raises(ValueError, match="positive"):
        Timeouts(banner=0)


def test_budget_is_the_sum_of_steps_or_the_cap() -> None:
    assert Timeouts(connect=1, banner=1, command=1, tls=1, quit=1, total=100).budget == 7
    assert Timeouts(total=2).budget == 2


# -- arbitrary bytes ---------------------------------------------------------------------------

_FUZZ = Timeouts(connect=1, banner=0.2, command=0.2, tls=0.2, quit=0.2, total=1.5)

_codes = st.sampled_from([b"220", b"250", b"221", b"354", b"421", b"454", b"502", b"554", b"999"])
_keywords = st.sampled_from(
    [b"mx.example", b"PIPELINING", b"SIZE 10240000", b"STARTTLS", b"starttls", b"8BITMIME", b""]
)
_ends = st.sampled_from([b"\r\n", b"\n"])
_noisy_line = st.builds(
    lambda code, sep, text, end: code + sep + text + end,
    _codes,
    st.sampled_from([b" ", b"-", b"", b"\t"]),
    st.one_of(_keywords, st.binary(max_size=40)),
    st.sampled_from([b"\r\n", b"\n", b"\r", b""]),
)
_noise = st.one_of(st.lists(_noisy_line, max_size=5).map(b"".join), st.binary(max_size=200))


def _reply(codes: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A well-formed (multi-line) reply with one of ``codes``."""
    return st.builds(
        lambda code, texts, end: b"".join(code + b"-" + t + end for t in texts[:-1])
        + code + b" " + texts[-1] + end,
        codes,
        st.lists(_keywords, min_size=1, max_size=6),
        _ends,
    )  # fmt: skip


# Mostly plausible replies at each step, so that examples get past the greeting, with noise
# anywhere: greeting, EHLO reply, STARTTLS (or HELO) reply, then what follows.
def _mostly(code: bytes) -> st.SearchStrategy[bytes]:
    """A good reply with ``code`` 7 times in 10, else another reply or noise."""
    good, other = _reply(st.just(code)), st.one_of(_reply(_codes), _noise)
    return st.integers(0, 9).flatmap(lambda i: good if i < 7 else other)


_script = st.tuples(
    _mostly(b"220"),
    _mostly(b"250"),
    _mostly(b"220"),
    st.lists(_noise, max_size=2),
    st.sampled_from([1, 2, 3, 3, 4, 4, 5, 5]),
).map(lambda t: [t[0], t[1], t[2], *t[3]][: t[4]])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=_script, ending=st.sampled_from(["close", "hang", "reset"]))
def test_arbitrary_server_bytes_never_raise_and_respect_the_deadline(
    chunks: list[bytes], ending: str
) -> None:
    """The server sends the first chunk on connect and the next one whenever the client
    sends something; then it closes, hangs or resets."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i, chunk in enumerate(chunks):
            if i and not await reader.read(4096):
                return
            await send(writer, chunk)
        if ending == "hang":
            await hold(reader)
        elif ending == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def scenario() -> ProbeResult:
        async with raw_server(handler) as port:
            return await probe("127.0.4.2", port, sni=SNI, timeouts=_FUZZ)

    result = asyncio.run(scenario())
    event(f"{result.error} at {result.error_step}")
    assert_sane(result)
    assert result.error is not None  # a plaintext server never completes a handshake
    assert result.elapsed <= _FUZZ.budget + SLACK
