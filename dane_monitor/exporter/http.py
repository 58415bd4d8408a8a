"""A small, strict HTTP/1.1 server on ``asyncio.start_server``: enough for Prometheus.

It accepts origin-form GET, HEAD and POST requests with a bounded head (request line and
headers), a bounded ``Content-Length`` body and no chunked bodies; anything else gets a
4xx/5xx answer and the connection closes. Connections are kept alive (HTTP/1.1 default),
bounded in number, and closed when idle. Every read has a deadline.

    server = HTTPServer(handler)          # async handler(Request) -> Response
    await server.start("127.0.0.1", 0, ssl=context)
    server.port; await server.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl as _ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("dane_monitor.exporter.http")

REASONS = {
    200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}  # fmt: skip

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_METHOD = re.compile(rb"^[A-Z]{1,16}$")
_TARGET = re.compile(rb"^/[\x21-\x7e]*$")


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    version: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""
    peer: str = ""

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


PIECE = 65536  # bytes handed to the transport at a time: what one connection buffers


@dataclass
class Stream:
    """A body sent piece by piece as ``pieces`` yields it, never joined into one.

    Large bodies (``/metrics`` of many targets) are made of parts that already exist (each
    target's pre-rendered lines): a stream writes them out without a copy per connection, so a
    slow reader holds one piece in the transport's buffer, not the whole body. ``length``
    None: not known in advance (sent chunked to HTTP/1.1 clients, and with the connection
    closed after it to HTTP/1.0 ones).
    """

    pieces: AsyncIterator[bytes]
    length: int | None = None


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Stream = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def payload(self) -> bytes:
        """The body as bytes (a stream is not readable this way)."""
        if isinstance(self.body, Stream):
            raise TypeError("a streamed body has no payload")
        return self.body.encode() if isinstance(self.body, str) else self.body


def batched(parts: Iterable[bytes], size: int = PIECE) -> Iterator[bytes]:
    """``parts`` (small byte strings) joined into pieces of about ``size`` bytes."""
    batch: list[bytes] = []
    held = 0
    for part in parts:
        batch.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


async def _slices(body: bytes) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(view), PIECE):
        yield view[start : start + PIECE]  # type: ignore[misc]  # a bytes-like view, no copy


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]
#: Called with a request's head (``body`` still empty) when it announces a body: an int is
#: the body size allowed for it, a Response is sent instead and the connection closed,
#: without reading the body (an unauthorised upload, a wrong content type).
Admit = Callable[[Request], Awaitable["Response | int"]]


class HTTPServer:
    """Serves ``handler`` over HTTP/1.1 (and HTTPS, with ``ssl``).

    :param max_head: bytes allowed for the request line and headers together.
    :param max_body: bytes allowed in a request body.
    :param head_timeout: seconds to receive a whole request head once a request began, and
        for the first byte of a new connection's first request (a connection that sends
        nothing holds a slot no longer than that).
    :param idle_timeout: seconds a kept-alive connection may wait for its next request.
    :param write_timeout: seconds a client may take to accept more of a response; the whole
        response must be sent within that plus one second per MiB.
    :param max_connections: connections beyond this get a 503 and are closed.
    :param max_connections_per_client: the same, per client address, so that one client
        cannot take every slot (default: an eighth of ``max_connections``).
    :param admit: decides, from the head of a request with a body, how large the body may
        be (else ``max_body``) or answers at once (see :data:`Admit`).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_head: int = 16384,
        max_body: int = 65536,
        max_headers: int = 100,
        head_timeout: float = 10.0,
        idle_timeout: float = 75.0,
        body_timeout: float = 10.0,
        write_timeout: float = 30.0,
        max_connections: int = 512,
        max_connections_per_client: int | None = None,
        max_requests_per_connection: int = 10000,
        admit: Admit | None = None,
    ) -> None:
        self.handler = handler
        self.admit = admit
        self.max_head = max_head
        self.max_body = max_body
        self.max_headers = max_headers
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.max_per_client = max_connections_per_client or max(1, max_connections // 8)
        self._per_client: dict[str, int] = {}
        self._closing = False  # past close()'s grace period: cut connections end quietly
        self.stalled = 0  # responses waiting for their client to take more data
        self.max_requests = max_requests_per_connection
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.host = ""
        self.port = 0

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        return len(self._connections)

    async def start(self, host: str, port: int, *, ssl: _ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(
            self._serve,
            host,
            port,
            ssl=ssl,
            limit=self.max_head + 1,
            ssl_handshake_timeout=self.head_timeout if ssl else None,
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, give requests in progress ``grace`` seconds, then cut the rest."""
        if self._server is not None:
            self._server.close()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=grace)
            self._closing = True
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # -- one connection --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        client = str(peer[0]) if isinstance(peer, tuple) else peer_text
        self._per_client[client] = self._per_client.get(client, 0) + 1
        try:
            if len(self._connections) > self.max_connections:
                await self._send(writer, Response(503, "too many connections\n"), close=True)
                return
            if self._per_client[client] > self.max_per_client:
                busy = Response(503, "too many connections from this address\n")
                await self._send(writer, busy, close=True)
                return
            for n in range(self.max_requests):
                try:
                    request = await self._read(reader, first=n == 0, peer=peer_text, writer=writer)
                except _Closed:
                    return
                except _Refused as exc:
                    await self._send(writer, exc.response, close=True)
                    return
                except HTTPError as exc:
                    await self._send(writer, Response(exc.status, f"{exc}\n"), close=True)
                    return
                request.peer = peer_text
                close = _wants_close(request) or n == self.max_requests - 1
                try:
                    response = await self.handler(request)
                except asyncio.CancelledError:
                    if not self._closing:
                        raise
                    # Shutting down past the grace period: the client gets an answer.
                    task.uncancel()
                    response, close = Response(503, "shutting down\n"), True
                except Exception:
                    log.exception("handler failed", extra={"path": request.path})
                    response = Response(500, "internal error\n")
                close = await self._send(
                    writer, response, close=close, head=request.method == "HEAD",
                    version=request.version,
                )  # fmt: skip
                if close:
                    return
        except (ConnectionError, TimeoutError, _ssl.SSLError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Cut while reading or writing at shutdown: end normally, as a cancelled
            # connection task would make asyncio's stream callback log a traceback.
            task.uncancel()
            return
        finally:
            self._connections.discard(task)
            left = self._per_client[client] - 1
            if left:
                self._per_client[client] = left
            else:
                del self._per_client[client]
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _read(
        self,
        reader: asyncio.StreamReader,
        *,
        first: bool,
        peer: str = "",
        writer: asyncio.StreamWriter | None = None,
    ) -> Request:
        # A kept-alive connection may wait the idle timeout for its next request; a new one
        # gets the head timeout for its first byte too: sending nothing must not hold a slot.
        try:
            wait = self.head_timeout if first else self.idle_timeout
            start = await asyncio.wait_for(reader.read(1), wait)
        except TimeoutError:
            raise _Closed() from None
        if not start:
            raise _Closed()
        try:
            rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except asyncio.LimitOverrunError:
            raise HTTPError(431, "request head too large") from None
        except TimeoutError:
            raise HTTPError(408, "request head not received in time") from None
        except asyncio.IncompleteReadError:
            raise _Closed() from None
        head = start + rest
        if len(head) > self.max_head:
            raise HTTPError(431, "request head too large")
        request = self._parse_head(head[:-4])
        request.peer = peer
        limit = self.max_body
        if self.admit is not None and request.headers.get("content-length", "0") != "0":
            verdict = await self.admit(request)
            if isinstance(verdict, Response):
                raise _Refused(verdict)
            limit = verdict
        request.body = await self._read_body(reader, request, limit, writer)
        return request

    def _parse_head(self, head: bytes) -> Request:
        lines = head.split(b"\r\n")
        if any(b"\n" in line or b"\r" in line or b"\x00" in line for line in lines):
            raise HTTPError(400, "bare CR, LF or NUL in the request head")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise HTTPError(400, "malformed request line")
        method, target, version = parts
        if not _METHOD.match(method):
            raise HTTPError(400, "malformed method")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            if version.startswith(b"HTTP/") and re.match(rb"^HTTP/\d\.\d$", version):
                raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1")
            raise HTTPError(400, "malformed request line")
        if len(target) > 8192:
            raise HTTPError(414, "request target too long")
        if not _TARGET.match(target):
            raise HTTPError(400, "request target must be a path (origin form)")
        if len(lines) - 1 > self.max_headers:
            raise HTTPError(431, "too many header fields")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise HTTPError(400, "malformed header field")
            text = value.strip(b" \t")
            if any((c < 0x20 and c != 0x09) or c == 0x7F for c in text):
                raise HTTPError(400, "control character in a header field")
            key = name.decode("ascii").lower()
            decoded = text.decode("latin-1")
            if key in headers:
                if key in ("content-length", "host"):
                    raise HTTPError(400, f"repeated {key} header")
                headers[key] += ", " + decoded
            else:
                headers[key] = decoded
        ver = version.decode()
        if ver == "HTTP/1.1" and "host" not in headers:
            raise HTTPError(400, "HTTP/1.1 request without Host")
        raw = target.decode("ascii")
        split = urlsplit(raw)
        try:
            query = parse_qs(split.query, keep_blank_values=True, strict_parsing=False,
                             max_num_fields=100)  # fmt: skip
        except ValueError:
            raise HTTPError(400, "too many query parameters") from None
        return Request(method.decode(), raw, unquote(split.path), query, ver, headers)

    async def _read_body(
        self,
        reader: asyncio.StreamReader,
        request: Request,
        limit: int,
        writer: asyncio.StreamWriter | None = None,
    ) -> bytes:
        if "transfer-encoding" in request.headers:
            raise HTTPError(501, "Transfer-Encoding is not supported; send Content-Length")
        length = request.headers.get("content-length")
        if length is None:
            return b""
        if not length.isdigit() or len(length) > 12:
            raise HTTPError(400, "malformed Content-Length")
        size = int(length)
        if size > limit:
            raise HTTPError(413, "request body too large")
        if size == 0:
            return b""
        if (
            writer is not None
            and request.version == "HTTP/1.1"
            and request.headers.get("expect", "").lower() == "100-continue"
        ):
            # The client waits for this before it sends the body (curl does for large
            # uploads): the head was admitted and the size is within the limit.
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            return await asyncio.wait_for(reader.readexactly(size), self.body_timeout)
        except TimeoutError:
            raise HTTPError(408, "request body not received in time") from None
        except asyncio.IncompleteReadError:
            raise _Closed() from None

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        close: bool,
        head: bool = False,
        version: str = "HTTP/1.1",
    ) -> bool:
        """Write ``response``; returns whether the connection must close after it."""
        if isinstance(response.body, Stream):
            pieces, length = response.body.pieces, response.body.length
        else:
            payload = response.payload()
            pieces, length = _slices(payload), len(payload)
        chunked = length is None and version == "HTTP/1.1"
        close = close or (length is None and not chunked)
        reason = REASONS.get(response.status, "Unknown")
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            "X-Content-Type-Options: nosniff",
        ]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif chunked:
            lines.append("Transfer-Encoding: chunked")
        lines += [f"{k}: {v}" for k, v in response.headers]
        if close:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        started, sent = time.monotonic(), 0
        if not head:
            async for piece in pieces:
                if not piece:
                    continue
                if chunked:
                    writer.write(b"%x\r\n" % len(piece))
                    writer.write(piece)
                    writer.write(b"\r\n")
                else:
                    writer.write(piece)
                sent += len(piece)
                await self._drain(writer, started, sent)
            if chunked:
                writer.write(b"0\r\n\r\n")
        await self._drain(writer, started, sent)
        return close

    async def _drain(self, writer: asyncio.StreamWriter, started: float, sent: int) -> None:
        # Each wait for the client is bounded, and so is the whole response (a reader taking
        # a few bytes every 29 s must not hold its connection and its body for hours).
        left = started + self.write_timeout + sent / 2**20 - time.monotonic()
        transport = writer.transport
        waiting = transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]
        self.stalled += waiting
        try:
            await asyncio.wait_for(writer.drain(), min(self.write_timeout, max(0.0, left)))
        finally:
            self.stalled -= waiting


class _Closed(Exception):
    """The client went away, or stayed idle too long: close without an answer."""


class _Refused(Exception):
    """``admit`` answered a request before its body: send this and close."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _wants_close(request: Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("connection", "").split(",")}
    if request.version == "HTTP/1.0":
        return "keep-alive" not in tokens
    return "close" in tokens
