"""What the probe's savings (issue 15) must not change: reused TLS contexts still see the
full chain on every handshake, a probe without a transcript finds exactly what one with a
transcript finds, checks keep transcripts only when asked, and one timer per probe still
gives every step its own deadline and names the step it cut."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from dane_monitor import settings
from dane_monitor.probe import ClientContexts, ProbeResult, Timeouts, probe
from dane_monitor.world import World
from dane_monitor.world.pki import PKI, Chain
from dane_monitor.world.smtp import Behaviour, SMTPServer

SNI = "mail.example"
HOST = "127.0.4.7"
ROOMY = Timeouts(connect=20, banner=20, command=20, tls=20, quit=20, total=120)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module")
def ecdsa(pki: PKI) -> Chain:
    return pki.issue([SNI])


@pytest.fixture(scope="module")
def rsa(pki: PKI) -> Chain:
    return pki.issue([SNI], key_type="rsa")


def der(chain: Chain) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in chain.certs]


# -- reused contexts -----------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["any", "rsa"])  # TLS 1.3, and TLS 1.2 (restricted)
async def test_probes_that_share_contexts_each_get_the_full_chain(
    key_type: Any, ecdsa: Chain, rsa: Chain
) -> None:
    # A resumed TLS session would bring no certificate: every probe must make a full
    # handshake and capture the chain, however many probes share one context.
    contexts = ClientContexts()
    async with SMTPServer(HOST, chains=[ecdsa, rsa]) as server:
        results = [
            await probe(server.host, server.port, sni=SNI, key_type=key_type, contexts=contexts)
            for _ in range(3)
        ]
    want = der(rsa) if key_type == "rsa" else der(ecdsa)
    for result in results:
        assert result.error is None, result.detail
        assert result.chain == want and result.chain_complete
    assert server.handshakes == 3 and server.snis == [SNI] * 3


# -- transcripts ---------------------------------------------------------------------------------


def _without_transcript(result: ProbeResult) -> dict[str, Any]:
    data = result.to_dict()
    del data["transcript"], data["elapsed"]
    return data


@pytest.mark.parametrize("behaviours", [set(), {Behaviour.NO_STARTTLS}], ids=["ok", "no-starttls"])
async def test_a_probe_without_transcript_finds_the_same(ecdsa: Chain, behaviours) -> None:
    async with SMTPServer(HOST, chains=[ecdsa], behaviours=behaviours) as server:
        kept = await probe(server.host, server.port, sni=SNI, timeouts=ROOMY)
        lean = await probe(server.host, server.port, sni=SNI, timeouts=ROOMY, transcript=False)
    assert kept.transcript and lean.transcript == []
    assert _without_transcript(lean) == _without_transcript(kept)


async def test_checks_keep_transcripts_only_when_asked(
    dane_world: World, dane_trust_anchor
) -> None:
    host, port = dane_world.dns_address
    domain = dane_world.domains["good-ee"].name

    def checker(**kw: Any):
        return settings.make_checker(resolver=f"{host}:{port}", trust_anchor=dane_trust_anchor,
                                     connect_port=dane_world.smtp_port, step_timeout=5,
                                     **kw)  # fmt: skip

    def transcripts(result) -> list[list[str]]:
        return [ep.transcript for h in result.hosts for ep in h.endpoints]

    background = checker(transcripts=False)
    quiet = await background.check_domain(domain)
    debug = await background.check_domain(domain, transcripts=True)  # /probe?debug=true
    default = await checker().check_domain(domain)  # dane-monitor check --debug
    assert quiet.verdict.value == debug.verdict.value == default.verdict.value == "valid"
    assert transcripts(quiet) == [[]]
    for result in (debug, default):
        (lines,) = transcripts(result)
        assert "C: STARTTLS" in lines and lines[-1].startswith("* rsa-only handshake")
    # Everything else a user sees is the same.
    a, b = quiet.to_dict(), debug.to_dict()
    for out in (a, b):
        out.pop("checked_at"), out.pop("duration_seconds")
        for h in out["hosts"]:
            for ep in h["endpoints"]:
                ep.pop("transcript", None)
    assert a == b


# -- one timer, a deadline per step ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[int]:
    sessions: list[asyncio.StreamWriter] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        sessions.append(writer)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await handler(reader, writer)
        writer.transport.abort()

    server = await asyncio.start_server(guarded, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in sessions:
            writer.transport.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def hold(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def server_context(chain: Chain, tmp_path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*chain.write(tmp_path))
    return ctx


def stalling_at(stall: str, ctx: ssl.SSLContext) -> Handler:
    """A server that answers every command up to ``stall``, then never again."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, b"220 stall.example ESMTP\r\n")
        await reader.readline()
        if stall == "ehlo":
            return await hold(reader)
        await send(writer, b"250-stall.example\r\n250 STARTTLS\r\n")
        await reader.readline()
        if stall == "starttls":
            return await hold(reader)
        await send(writer, b"220 2.0.0 go ahead\r\n")
        await writer.start_tls(ctx)
        await reader.readline()
        if stall == "ehlo-tls":
            return await hold(reader)
        await send(writer, b"250-stall.example\r\n250 PIPELINING\r\n")
        await reader.readline()
        if stall == "quit":
            return await hold(reader)
        await send(writer, b"221 2.0.0 bye\r\n")

    return handler


@pytest.mark.parametrize(
    ("stall", "words"),
    [
        ("ehlo", "waiting for the EHLO reply"),
        ("starttls", "waiting for the STARTTLS reply"),
        ("ehlo-tls", "waiting for the EHLO reply inside TLS"),
    ],
)
async def test_the_step_that_misses_its_deadline_is_named(
    stall: str, words: str, ecdsa: Chain, tmp_path
) -> None:
    timeouts = dataclasses.replace(ROOMY, command=0.3)
    async with raw_server(stalling_at(stall, server_context(ecdsa, tmp_path))) as port:
        result = await probe(HOST, port, sni=SNI, timeouts=timeouts)
    assert (result.error, result.error_step) == ("timeout", stall), result.detail
    assert result.detail == f"no answer within 0.3 s ({words})"
    assert result.tls_established == (stall == "ehlo-tls")


async def test_a_silent_quit_changes_nothing(ecdsa: Chain, tmp_path) -> None:
    timeouts = dataclasses.replace(ROOMY, quit=0.3)
    async with raw_server(stalling_at("quit", server_context(ecdsa, tmp_path))) as port:
        result = await probe(HOST, port, sni=SNI, timeouts=timeouts)
    assert result.error is None and result.chain == der(ecdsa)
    assert result.transcript[-1] == "* QUIT: no answer within 0.3 s (waiting for the QUIT reply)"


async def test_each_step_gets_its_whole_deadline(ecdsa: Chain) -> None:
    # A slow server: every reply a second late, within each step's 2.5 s but not within
    # one 2.5 s for the whole dialogue. Each step's deadline counts from its own start.
    delay = 1.0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        await send(writer, b"220 slow.example ESMTP\r\n")
        await reader.readline()
        await asyncio.sleep(delay)
        await send(writer, b"250-slow.example\r\n250 8BITMIME\r\n")  # no STARTTLS
        await reader.readline()
        await asyncio.sleep(delay)
        await send(writer, b"221 2.0.0 bye\r\n")
        await hold(reader)

    timeouts = Timeouts(connect=20, banner=2.5, command=2.5, tls=20, quit=2.5, total=60)
    async with raw_server(slow) as port:
        result = await probe(HOST, port, sni=SNI, timeouts=timeouts)
    assert (result.error, result.error_step) == ("starttls-missing", "ehlo"), result.detail
    assert result.transcript[-2:] == ["C: QUIT", "S: 221 2.0.0 bye"]
    assert result.elapsed >= 3 * delay


async def test_a_deadline_around_the_probe_is_the_callers(ecdsa: Chain, tmp_path) -> None:
    # The exporter bounds a whole check with asyncio.timeout: that deadline must end the
    # probe as the caller's timeout (check-timeout), not be taken for one of the probe's own.
    async with raw_server(stalling_at("starttls", server_context(ecdsa, tmp_path))) as port:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await probe(HOST, port, sni=SNI, timeouts=ROOMY)
        task = asyncio.create_task(probe(HOST, port, sni=SNI, timeouts=ROOMY))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
