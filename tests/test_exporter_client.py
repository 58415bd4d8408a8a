"""A tiny HTTP client for the exporter tests (raw bytes in, status, headers, body out), and its
own test. Imported by the other test_exporter_* modules."""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl as _ssl
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def parse_reply(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return Reply(status, headers, body)


def dechunk(data: bytes) -> bytes:
    """A chunked body (RFC 9112, 7.1), strictly: every size line, and the last chunk."""
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            assert data[end:] == b"\r\n\r\n", "chunked body not terminated"
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        assert data[end + 2 + size : end + 4 + size] == b"\r\n", "chunk not terminated"
        pos = end + 4 + size


async def raw(
    host: str, port: int, data: bytes, *, timeout: float = 10, ssl=None, source: str | None = None
) -> bytes:
    local = (source, 0) if source else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ssl, local_addr=local), timeout
    )
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    cafile: str | None = None,
    timeout: float = 30,
    source: str | None = None,
    certfile: tuple[str, str] | None = None,
    context: _ssl.SSLContext | None = None,
) -> Reply:
    """One request on a new connection; ``source`` binds the client's address, ``certfile``
    (certificate, key) presents a client certificate, ``context`` replaces the TLS context
    made from ``cafile`` and ``certfile``."""
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    if scheme == "https" and context is None:
        context = _ssl.create_default_context(cafile=cafile)
        if certfile:
            context.load_cert_chain(*certfile)
    lines = [f"{method} /{path} HTTP/1.1", f"Host: {hostport}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    reply = await raw(host, int(port), data, timeout=timeout, ssl=context, source=source)
    return parse_reply(reply)


def test_parse_reply_reads_chunked_bodies():
    raw_reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw_reply += b"3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n"
    assert parse_reply(raw_reply).text == "abc0123456789"


def test_parse_reply_reads_status_headers_and_gzip_bodies():
    body = gzip.compress(b"hello")
    raw_reply = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nX-A:  b \r\n\r\n" + body
    reply = parse_reply(raw_reply)
    assert (reply.status, reply.headers["x-a"], reply.text) == (200, "b", "hello")
