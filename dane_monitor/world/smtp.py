"""Small asyncio SMTP servers for the local world: STARTTLS (or implicit TLS) with chains from
:mod:`dane_monitor.world.pki`, and switchable misbehaviour seen on real MX hosts.

The dialogue is the part of SMTP a DANE check walks through: greeting, EHLO/HELO, STARTTLS,
EHLO again inside TLS, NOOP, RSET, QUIT; MAIL/RCPT/DATA are accepted and thrown away. Lines
are CRLF (a bare LF is tolerated) and at most :data:`MAX_LINE` bytes; longer lines, too many
bad commands, and pipelined data after STARTTLS end the connection, never the server::

    async with SMTPServer("127.0.2.1", chains=[pki.issue(["mail.example"])]) as server:
        ...  # connect to server.host, server.port; server.last_sni is what the client sent

Several :class:`Behaviour` values combine, e.g. ``{MULTILINE_GREETING, STARTTLS_NOT_LAST}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from types import TracebackType

from dane_monitor.world.pki import Chain

__all__ = [
    "GARBAGE_GREETING_LINE",
    "HUGE_LINE_BYTES",
    "MAX_ERRORS",
    "MAX_LINE",
    "MAX_MESSAGE",
    "STARTTLS_GARBAGE_BYTES",
    "Behaviour",
    "SMTPServer",
]

#: The longest command line (with CRLF) the server reads; RFC 5321 §4.5.3.1.4 asks for 512.
MAX_LINE = 4096
#: Size of the line a HUGE_LINE server sends instead of its greeting.
HUGE_LINE_BYTES = 10 * 1024 * 1024
#: After this many unrecognised or out-of-sequence commands the server hangs up (as Postfix).
MAX_ERRORS = 20
#: The most DATA the server swallows before answering 552.
MAX_MESSAGE = 10 * 1024 * 1024

# A TLS 1.0-framed fatal alert record, handshake_failure(40): what TLS_HANDSHAKE_FAILURE
# sends in place of a ServerHello.
_TLS_ALERT = bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])


class Behaviour(StrEnum):
    """What a server does differently from a well-behaved STARTTLS MX host."""

    NORMAL = "normal"
    #: STARTTLS is not advertised, and refused with 502 if tried anyway.
    NO_STARTTLS = "no-starttls"
    #: STARTTLS is advertised but answered with "454 4.7.0 TLS not available".
    STARTTLS_REFUSED = "starttls-refused"
    #: "220-" continuation lines before the final "220 " greeting line (as postscreen).
    MULTILINE_GREETING = "multiline-greeting"
    #: STARTTLS is the second EHLO keyword, not the last (NORMAL puts it last).
    STARTTLS_NOT_LAST = "starttls-not-last"
    #: Accept the connection and never send a greeting (until the client leaves or stop()).
    HANG_AFTER_CONNECT = "hang-after-connect"
    #: Close the connection right after the (first) EHLO reply.
    CLOSE_AFTER_EHLO = "close-after-ehlo"
    #: Send a greeting of HUGE_LINE_BYTES bytes without CRLF, then wait for the client to leave.
    HUGE_LINE = "huge-line"
    #: Answer STARTTLS with 220, then send a TLS alert instead of a ServerHello and close.
    #: With implicit TLS: the alert right after the ClientHello.
    TLS_HANDSHAKE_FAILURE = "tls-handshake-failure"
    #: Reset the connection right after accepting it (SO_LINGER 0, then close: a TCP RST).
    RESET_AFTER_ACCEPT = "reset-after-accept"
    #: Send a line that is not SMTP (an SSH banner) instead of the greeting, then wait for the
    #: client to leave.
    GARBAGE_GREETING = "garbage-greeting"
    #: Greet and answer EHLO (offering STARTTLS), then never answer again: STARTTLS and every
    #: later command go unanswered until the client leaves.
    HANG_AFTER_EHLO = "hang-after-ehlo"
    #: Answer STARTTLS with binary garbage instead of a reply, then wait for the client to leave.
    STARTTLS_GARBAGE = "starttls-garbage"


# Behaviours under which the server never completes a TLS handshake.
_NEVER_TLS = {
    Behaviour.NO_STARTTLS,
    Behaviour.STARTTLS_REFUSED,
    Behaviour.HANG_AFTER_CONNECT,
    Behaviour.CLOSE_AFTER_EHLO,
    Behaviour.HUGE_LINE,
    Behaviour.TLS_HANDSHAKE_FAILURE,
    Behaviour.RESET_AFTER_ACCEPT,
    Behaviour.GARBAGE_GREETING,
    Behaviour.HANG_AFTER_EHLO,
    Behaviour.STARTTLS_GARBAGE,
}

#: What GARBAGE_GREETING sends in place of "220 …": another protocol's banner.
GARBAGE_GREETING_LINE = b"SSH-2.0-OpenSSH_9.6p1 not-smtp\r\n"
#: What STARTTLS_GARBAGE answers STARTTLS with: bytes that are neither a reply nor TLS.
STARTTLS_GARBAGE_BYTES = b"\x00\xff\xfe garbage \x01\x02\x03\r\n"


class _Hangup(Exception):
    """Ends a session: the server closes the connection."""


def _server_context(
    chains: Sequence[Chain], on_sni: Callable[[str | None], None]
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="dane-monitor-smtp-") as tmp:
        for chain in chains:
            if chain.key_type in seen:
                raise ValueError(
                    f"two {chain.key_type} chains: a server holds one chain per key type"
                )
            seen.add(chain.key_type)
            certfile, keyfile = chain.write(tmp)
            ctx.load_cert_chain(certfile, keyfile)

    def sni_callback(_sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        on_sni(server_name)

    ctx.sni_callback = sni_callback  # type: ignore[assignment]
    return ctx


class SMTPServer:
    """An SMTP server on ``host``:``port`` (0 = any free port; see :attr:`port` after start).

    ``chains``: one chain, or an ECDSA and an RSA chain served together (OpenSSL picks by
    what the client can verify: a TLS 1.2 client offering only aRSA suites gets the RSA one).
    Needed unless every behaviour keeps the server from completing a handshake.

    ``implicit_tls``: TLS right after connect (port 465 style), then SMTP inside; STARTTLS
    is then not offered.

    For tests: :attr:`connections` counts accepted connections, :attr:`handshakes`
    completed TLS handshakes, :attr:`last_sni` is the server name the last TLS client sent
    (``None`` when it sent none) and :attr:`snis` all of them in order.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chains: Sequence[Chain] = (),
        behaviours: Iterable[Behaviour] = (),
        hostname: str = "mail.example",
        implicit_tls: bool = False,
        idle_timeout: float = 300.0,
    ) -> None:
        self.host = host
        self.port = port
        self.chains: tuple[Chain, ...] = tuple(chains)
        self.behaviours: frozenset[Behaviour] = frozenset(Behaviour(b) for b in behaviours)
        self.hostname = hostname.rstrip(".")
        self.implicit_tls = implicit_tls
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.handshakes = 0
        self.last_sni: str | None = None
        self.snis: list[str | None] = []
        #: The name the last client gave in EHLO (tests of a client's EHLO name).
        self.last_ehlo: str | None = None
        if not self.chains and (implicit_tls or not self.behaviours & _NEVER_TLS):
            raise ValueError("this server would complete TLS handshakes: give it chains")
        self._ssl: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False

    def __repr__(self) -> str:
        behaviours = ",".join(sorted(self.behaviours)) or "normal"
        tls = "implicit-tls" if self.implicit_tls else "starttls"
        return f"<SMTPServer {self.endpoint} {tls} {behaviours}>"

    # -- addresses -------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def endpoint(self) -> str:
        """``host:port``, with IPv6 hosts in brackets (as ``openssl s_client -connect``)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and listen. Raises OSError when the address or port is taken."""
        if self._server is not None:
            raise RuntimeError("server already started")
        if self.chains:
            self._ssl = _server_context(self.chains, self._record_sni)
        self._closing = False
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=MAX_LINE, reuse_port=False
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def serve(self, chains: Sequence[Chain]) -> None:
        """Present ``chains`` from the next handshake on (a certificate deployed while the
        server runs, as an MTA reload does); sessions already in TLS keep theirs."""
        chains = tuple(chains)
        if not chains:
            raise ValueError("give the server at least one chain")
        context = _server_context(chains, self._record_sni)
        self.chains, self._ssl = chains, context

    async def stop(self) -> None:
        """Stop listening and drop every connection, hung ones included. Idempotent."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Aborting the transport wakes every session (reads see EOF, writes and handshakes
        # fail), so they end on their own; cancelling is only for one that somehow does not
        # (a cancelled connection task makes asyncio 3.11 log an error).
        for writer in list(self._sessions.values()):
            writer.transport.abort()
        if self._sessions:
            _, pending = await asyncio.wait(list(self._sessions), timeout=1)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> SMTPServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _record_sni(self, server_name: str | None) -> None:
        self.last_sni = server_name
        self.snis.append(server_name)

    # -- one connection --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closing:
            writer.transport.abort()
            return
        self._sessions[task] = writer
        self.connections += 1
        if Behaviour.RESET_AFTER_ACCEPT in self.behaviours:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # linger on, for 0 s: close() sends a RST, not a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            self._sessions.pop(task, None)
            return
        graceful = False
        try:
            await _Session(self, reader, writer).run()
            graceful = True
        except _Hangup:
            graceful = True
        except (ConnectionError, ssl.SSLError, TimeoutError, EOFError, OSError):
            pass  # the client went away or broke the protocol: nothing to tell it
        except asyncio.IncompleteReadError:
            pass
        finally:
            if graceful and not self._closing:
                writer.close()  # sends close_notify inside TLS
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await writer.wait_closed()
            writer.transport.abort()
            self._sessions.pop(task, None)


class _Session:
    """The SMTP dialogue of one connection."""

    def __init__(
        self, server: SMTPServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.behaviours = server.behaviours
        self.reader = reader
        self.writer = writer
        self.tls = False
        self.ehlo_seen = False
        self.errors = 0
        self.buffer = bytearray()  # received, not yet consumed: lines are read from here

    # -- I/O -------------------------------------------------------------------------------

    async def send(self, *lines: str) -> None:
        self.writer.write(b"".join(line.encode() + b"\r\n" for line in lines))
        await self.writer.drain()

    async def reply(self, code: int, *texts: str) -> None:
        """A (multi-line) reply: ``code-text`` for all but the last line."""
        *first, last = texts
        await self.send(*(f"{code}-{t}" for t in first), f"{code} {last}")

    async def readline(self) -> bytes:
        """One line without its CRLF. Hangs up on EOF, idle timeout, an overlong line, or a
        TLS ClientHello where a command should be (a client that skipped STARTTLS's reply).
        """
        try:
            async with asyncio.timeout(self.server.idle_timeout):
                while True:
                    if self.buffer[:1] == b"\x16":  # a TLS handshake record
                        await self.reply(500, "5.5.2 Error: TLS handshake without STARTTLS")
                        raise _Hangup
                    end = self.buffer.find(b"\n")
                    if end >= MAX_LINE or (end < 0 and len(self.buffer) >= MAX_LINE):
                        await self.reply(500, "5.5.2 Error: line too long")
                        raise _Hangup
                    if end >= 0:
                        break
                    data = await self.reader.read(MAX_LINE)
                    if not data:
                        raise _Hangup
                    self.buffer += data
        except TimeoutError:
            await self.reply(421, f"4.4.2 {self.server.hostname} Error: timeout exceeded")
            raise _Hangup from None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line.rstrip(b"\r")

    async def wait_for_client_to_leave(self) -> None:
        """Read and discard until the client closes (or the server stops)."""
        while await self.reader.read(65536):
            pass

    async def error(self, code: int, text: str) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            await self.reply(421, f"4.7.0 {self.server.hostname} Error: too many errors")
            raise _Hangup
        await self.reply(code, text)

    async def upgrade(self) -> None:
        """TLS handshake on this connection (server side), or the deliberate failure."""
        if Behaviour.TLS_HANDSHAKE_FAILURE in self.behaviours:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.reader.read(16384)  # the ClientHello
            self.writer.write(_TLS_ALERT)
            await self.writer.drain()
            raise _Hangup
        assert self.server._ssl is not None
        plain = self.writer.transport
        try:
            await self.writer.start_tls(self.server._ssl, ssl_handshake_timeout=10)
        except AttributeError:
            # Python 3.11: when the peer goes away mid-handshake, loop.start_tls() returns
            # None and StreamWriter.start_tls() fails on it, leaving the writer without a
            # transport. Give it back the plain one so closing works, and say what happened.
            self.writer._transport = plain  # type: ignore[attr-defined]
            raise ConnectionResetError("connection lost during the TLS handshake") from None
        self.tls = True
        self.server.handshakes += 1

    # -- dialogue --------------------------------------------------------------------------

    async def run(self) -> None:
        if Behaviour.HANG_AFTER_CONNECT in self.behaviours:
            await self.wait_for_client_to_leave()
            return
        if self.server.implicit_tls:
            await self.upgrade()
        if Behaviour.HUGE_LINE in self.behaviours:
            self.writer.write(b"220 " + b"x" * (HUGE_LINE_BYTES - 4))
            await self.writer.drain()
            await self.wait_for_client_to_leave()
            return
        if Behaviour.GARBAGE_GREETING in self.behaviours:
            self.writer.write(GARBAGE_GREETING_LINE)
            await self.writer.drain()
            await self.wait_for_client_to_leave()
            return
        await self.greet()
        while True:
            line = await self.readline()
            verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
            handler = getattr(self, f"smtp_{verb.upper()}", None) if verb.isalpha() else None
            if handler is None:
                await self.error(500, "5.5.2 Error: command not recognized")
            else:
                await handler(arg.strip())

    async def greet(self) -> None:
        name = self.server.hostname
        if Behaviour.MULTILINE_GREETING in self.behaviours:
            await self.reply(
                220,
                f"{name} ESMTP",
                "dane-monitor test server: a multi-line greeting, as postscreen sends",
                f"{name} ESMTP ready",
            )
        else:
            await self.reply(220, f"{name} ESMTP dane-monitor test server")

    def offers_starttls(self) -> bool:
        return not (
            self.tls or self.server.implicit_tls or Behaviour.NO_STARTTLS in self.behaviours
        )

    def ehlo_keywords(self) -> list[str]:
        keywords = [
            "PIPELINING",
            "SIZE 10240000",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
        ]
        if self.offers_starttls():
            at = 0 if Behaviour.STARTTLS_NOT_LAST in self.behaviours else len(keywords)
            keywords.insert(at, "STARTTLS")
        return keywords

    async def smtp_EHLO(self, arg: str) -> None:
        if not arg:
            await self.error(501, "5.5.4 Syntax: EHLO hostname")
            return
        self.ehlo_seen = True
        self.server.last_ehlo = arg
        await self.reply(250, self.server.hostname, *self.ehlo_keywords())
        if Behaviour.CLOSE_AFTER_EHLO in self.behaviours:
            raise _Hangup
        if Behaviour.HANG_AFTER_EHLO in self.behaviours:
            await self.wait_for_client_to_leave()
            raise _Hangup

    async def smtp_HELO(self, arg: str) -> None:
        if not arg:
            await self.error(501, "5.5.4 Syntax: HELO hostname")
            return
        self.ehlo_seen = True
        await self.reply(250, self.server.hostname)
        if Behaviour.CLOSE_AFTER_EHLO in self.behaviours:
            raise _Hangup

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls or self.server.implicit_tls:
            await self.error(554, "5.5.1 Error: TLS already active")
        elif Behaviour.NO_STARTTLS in self.behaviours:
            await self.error(502, "5.5.1 Error: command not implemented")
        elif arg:
            await self.error(501, "5.5.4 Syntax: STARTTLS")
        elif Behaviour.STARTTLS_REFUSED in self.behaviours:
            await self.reply(454, "4.7.0 TLS not available due to local problem")
        elif Behaviour.STARTTLS_GARBAGE in self.behaviours:
            self.writer.write(STARTTLS_GARBAGE_BYTES)
            await self.writer.drain()
            await self.wait_for_client_to_leave()
            raise _Hangup
        else:
            # Plaintext already sent behind STARTTLS would be read as if it came over TLS
            # (CVE-2011-0411): refuse to upgrade such a connection.
            pipelined = bool(self.buffer)
            await self.reply(220, "2.0.0 Ready to start TLS")
            if pipelined:
                raise _Hangup
            await self.upgrade()
            self.ehlo_seen = False  # RFC 3207 §4.2: forget what the client said before TLS

    async def smtp_NOOP(self, arg: str) -> None:
        await self.reply(250, "2.0.0 Ok")

    async def smtp_RSET(self, arg: str) -> None:
        await self.reply(250, "2.0.0 Ok")

    async def smtp_QUIT(self, arg: str) -> None:
        await self.reply(221, "2.0.0 Bye")
        raise _Hangup

    async def smtp_MAIL(self, arg: str) -> None:
        if not self.ehlo_seen:
            await self.error(503, "5.5.1 Error: send HELO/EHLO first")
        else:
            await self.reply(250, "2.1.0 Ok")

    async def smtp_RCPT(self, arg: str) -> None:
        if not self.ehlo_seen:
            await self.error(503, "5.5.1 Error: send HELO/EHLO first")
        else:
            await self.reply(250, "2.1.5 Ok")

    async def smtp_DATA(self, arg: str) -> None:
        if not self.ehlo_seen:
            await self.error(503, "5.5.1 Error: send HELO/EHLO first")
            return
        await self.reply(354, "End data with <CR><LF>.<CR><LF>")
        size = 0
        while (line := await self.readline()) != b".":
            size += len(line) + 2
        if size > MAX_MESSAGE:
            await self.reply(552, "5.3.4 Error: message file too big")
        else:
            await self.reply(250, "2.0.0 Ok: queued and discarded")

    async def smtp_VRFY(self, arg: str) -> None:
        await self.error(502, "5.5.1 Error: command not implemented")
