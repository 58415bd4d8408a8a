"""The SMTP/TLS probe: connect to one MX endpoint, walk the SMTP dialogue up to TLS, and bring
back what a DANE check needs — the full certificate chain the server presents, as DER.

One call is one TCP connection::

    result = await probe("192.0.2.25", 25, sni="mail.example")
    result.error         # None, or a stable code such as "starttls-missing"
    result.chain         # [leaf DER, intermediate DER, ...] as the server sent them
    result.leaf_key_type # "ecdsa"

    results = await probe_all("192.0.2.25", 25, sni="mail.example")
    # one result, or two when the server also serves a chain of the other key type

The dialogue: greeting (``220``, possibly multi-line), ``EHLO`` (``HELO`` only to find out
that the server is not ESMTP), ``STARTTLS`` when the EHLO reply offers it anywhere, the TLS
handshake with SNI = the TLSA base domain and no PKIX verification (DANE authenticates the
chain afterwards, RFC 7672 §3), ``EHLO`` again inside TLS, ``QUIT``. Never pipelined: every
command waits for the complete reply to the one before. With ``implicit_tls`` (port 465)
the handshake comes first and there is no STARTTLS.

Nothing the network or the server does raises: every failure becomes a :class:`ProbeResult`
with an :attr:`~ProbeResult.error` code from :data:`ERRORS`, the step it happened in
(:data:`STEPS`) and a sentence in :attr:`~ProbeResult.detail`. Only programming errors
(a bad ``port`` or ``key_type``) raise. Every step has its own deadline and the whole probe
an overall cap (:class:`Timeouts`), so a probe never takes longer than
:attr:`Timeouts.budget`; one timer per probe carries both (moved at each step), and a
timeout names the step it cut.

Cheap when repeated (a monitor probes the same servers every few minutes): the TLS client
contexts are made once per key type (:class:`ClientContexts`, shared by default), the
transcript is built only when asked for (``transcript=True``), and a leaf's key type is
read once per certificate.

How it reads: the connection is driven by a small :class:`asyncio.BufferedProtocol` over
:meth:`asyncio.loop.create_connection`, upgraded in place with
:meth:`asyncio.loop.start_tls` (plain streams hide their buffers; this protocol owns a
single buffer of :data:`MAX_LINE` bytes that the transport reads *into*, and reading pauses
while it is full). A server can therefore cost at most :data:`MAX_LINE` bytes of reply
buffer — a 10 MB line without CRLF ends as ``line-too-long`` after 4 KiB — and any bytes
that arrive behind the ``220`` reply to STARTTLS are seen (and refused) rather than
smuggled into the TLS session (CVE-2011-0411 in reverse). Inside TLS, asyncio's own TLS
layer keeps a fixed receive buffer (256 KiB in 3.11) per connection.
"""

from __future__ import annotations

import _ssl
import asyncio
import base64
import errno
import functools
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from dane_monitor import threads

__all__ = [
    "ERRORS",
    "MAX_LINE",
    "MAX_REPLY_LINES",
    "STEPS",
    "ClientContexts",
    "KeyTypeRequest",
    "ProbeResult",
    "Reply",
    "Timeouts",
    "default_ehlo_name",
    "key_type_of",
    "other_key_type",
    "peer_chain",
    "probe",
    "probe_all",
    "record_other_key_type",
]

#: The longest reply line (with its CRLF) the probe reads; longer ones are "line-too-long".
#: RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers stay well below 4 KiB.
MAX_LINE = 4096
#: The most lines one reply may have (a long EHLO reply has ~15); more is "bad-reply".
MAX_REPLY_LINES = 100
#: The transcript keeps about this many characters; each line at most _TRANSCRIPT_LINE.
MAX_TRANSCRIPT = 8192
_TRANSCRIPT_LINE = 200  # a readable line: an SMTP reply line is rarely longer than 100

#: EHLO name used when this host's name is not a dotted host name (RFC 2606 .invalid).
FALLBACK_EHLO_NAME = "dane-monitor.invalid"

#: ``ProbeResult.error`` values. Stable: they surface as finding codes and metric labels.
ERRORS = frozenset(
    {
        "connect-refused",  # TCP RST on connect: nothing listens
        "connect-timeout",  # no TCP handshake within Timeouts.connect
        "connect-failed",  # any other connect error (unreachable or no route out there, …)
        "no-route",  # this host has no route to the address (family): not reachable from here
        "banner-timeout",  # connected, but no complete greeting within Timeouts.banner
        "greeting-rejected",  # the greeting is 4xx/5xx (e.g. 554 from a blocklist)
        "bad-reply",  # not SMTP: garbage, mismatched continuation codes, too many lines
        "line-too-long",  # a reply line longer than MAX_LINE
        "closed",  # the server closed or reset the connection (error_step says when)
        "ehlo-failed",  # EHLO (and HELO) refused, or EHLO refused inside TLS
        "not-esmtp",  # EHLO refused but HELO accepted: no ESMTP, so no STARTTLS
        "starttls-missing",  # STARTTLS is not among the EHLO keywords
        "starttls-refused",  # STARTTLS answered with something other than 220
        "tls-failed",  # the TLS handshake failed (alert, no shared cipher, plaintext, close)
        "timeout",  # a step after the greeting missed its deadline (error_step says which)
    }
)

#: ``ProbeResult.error_step`` values, in dialogue order (``tls`` comes right after
#: ``connect`` with implicit TLS). ``ehlo-tls`` is the EHLO sent inside STARTTLS's TLS.
STEPS = ("connect", "tls", "banner", "ehlo", "helo", "starttls", "ehlo-tls", "quit")

#: errno values of a connect() that failed before a packet left this host: no route to the
#: network, no source address of that family, no such address family. The checking host's
#: problem (typically IPv6 on an IPv4-only host), reported as "no-route".
_NO_ROUTE_HERE = frozenset({errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})

KeyTypeRequest = Literal["any", "rsa", "ecdsa"]
_KEY_TYPES = ("any", "rsa", "ecdsa")

# TLS 1.2 cipher suites that authenticate with one key type only: a server holding an RSA
# and an ECDSA certificate must present the one the suite names (RFC 5246 §7.4.2). TLS 1.3
# suites do not name the key type, hence the TLS 1.2 cap for restricted probes.
# SECLEVEL=1: see what senders see; a 1024-bit RSA key is the server's problem to report,
# not a reason for the probe to fail.
_CIPHERS = {
    "any": "DEFAULT:!aNULL:!eNULL:@SECLEVEL=1",
    "rsa": "aRSA:!aNULL:!eNULL:@SECLEVEL=1",
    "ecdsa": "aECDSA:!aNULL:!eNULL:@SECLEVEL=1",
}


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds: one per step, and ``total`` for the whole probe.

    ``command`` bounds each reply to EHLO, HELO, STARTTLS and the EHLO inside TLS; ``quit``
    bounds the polite QUIT (whose outcome is recorded but never changes the result). The
    defaults are far shorter than RFC 5321 §4.5.3.2's (5 minutes for the greeting): a
    monitor would rather report a slow server than wait like a sender.
    """

    connect: float = 10.0
    banner: float = 30.0
    command: float = 30.0
    tls: float = 30.0
    quit: float = 5.0
    total: float = 60.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"Timeouts.{f.name} must be a positive number, not {value!r}")

    @property
    def budget(self) -> float:
        """The longest one probe can take: ``total``, or the sum of the steps on the longest
        path (connect, banner, three commands, TLS, QUIT) when that is shorter."""
        steps = self.connect + self.banner + 3 * self.command + self.tls + self.quit
        return min(self.total, steps)


@dataclass(frozen=True)
class Reply:
    """An SMTP reply: its code and the text of each line (without ``250-``/``250 ``)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "lines": list(self.lines)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(int(data["code"]), tuple(data["lines"]))


@dataclass
class ProbeResult:
    """What one probe of one endpoint found. ``error is None`` means the whole dialogue
    worked: TLS is established and :attr:`chain` holds what the server presented.

    Fields are filled as far as the dialogue got: a ``starttls-refused`` result still has
    the banner and the EHLO keywords. :meth:`to_dict` gives JSON types (the chain as
    base64 DER, like JWK's ``x5c``); :meth:`from_dict` reads it back.
    """

    address: str
    port: int
    sni: str
    implicit_tls: bool = False
    key_type_requested: KeyTypeRequest = "any"
    connected: bool = False
    banner: list[str] = field(default_factory=list)  # greeting lines as received
    esmtp: bool = False
    ehlo_keywords: list[str] = field(default_factory=list)  # before TLS (inside, if implicit)
    starttls_offered: bool = False
    starttls_reply: Reply | None = None
    tls_established: bool = False
    tls_version: str | None = None  # "TLSv1.3"
    cipher: str | None = None  # OpenSSL name, "TLS_AES_256_GCM_SHA384"
    chain: list[bytes] = field(default_factory=list)  # DER, leaf first, as presented
    leaf_key_type: str | None = None  # "rsa", "ecdsa", "ed25519", "ed448", "dsa", "unknown"
    chain_complete: bool = False  # False: only the leaf could be captured (see peer_chain)
    ehlo_keywords_after_tls: list[str] | None = None  # None: no EHLO inside STARTTLS's TLS
    starttls_offered_after_tls: bool | None = None  # True is a (harmless) server bug
    #: Set by probe_all on the first result: key type tried in a restricted handshake ->
    #: "served" (a second result holds that chain), "not-served", or that probe's error code.
    other_key_types: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_step: str | None = None
    detail: str | None = None
    elapsed: float = 0.0  # seconds
    transcript: list[str] = field(default_factory=list)  # "C: EHLO …", "S: 250-…", "* …"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def endpoint(self) -> str:
        return _endpoint(self.address, self.port)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "chain":
                value = [base64.b64encode(der).decode("ascii") for der in value]
            elif isinstance(value, Reply):
                value = value.to_dict()
            elif isinstance(value, list | dict):
                value = value.copy()
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        values = dict(data)
        values["chain"] = [base64.b64decode(der) for der in values.get("chain", [])]
        if values.get("starttls_reply") is not None:
            values["starttls_reply"] = Reply.from_dict(values["starttls_reply"])
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# -- certificates ----------------------------------------------------------------------------


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[list[bytes], bool]:
    """The certificates the peer presented, DER, leaf first, in the order it sent them, and
    whether that is the whole presented chain (``False``: only the leaf could be read).

    Tries the public ``get_unverified_chain()`` (Python 3.13+), then the private one every
    ``ssl`` object has had since 3.10 (``_sslobj.get_unverified_chain()``), then falls back
    to ``getpeercert(binary_form=True)``, which gives only the leaf.
    """
    for owner in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        method = getattr(owner, "get_unverified_chain", None)
        if method is None:
            continue
        try:
            certs = method()
        except (ssl.SSLError, ValueError, AttributeError):
            continue
        if certs:
            return [_der(cert) for cert in certs], True
    leaf = ssl_object.getpeercert(binary_form=True)
    return ([leaf] if leaf else []), False


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes | bytearray | memoryview):
        return bytes(cert)
    return cert.public_bytes(_ssl.ENCODING_DER)


@functools.lru_cache(maxsize=1024)
def key_type_of(der: bytes) -> str | None:
    """The public key type of a DER certificate: ``"rsa"``, ``"ecdsa"``, ``"ed25519"``,
    ``"ed448"``, ``"dsa"``, ``"unknown"``; ``None`` when the certificate does not parse.
    Remembered for the last 1024 certificates (a monitor sees the same ones every cycle)."""
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except (ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ecdsa"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa"
    return "unknown"


class ClientContexts:
    """One TLS client context per key type request, made on first use and reused for every
    probe after it (making one costs about as much CPU as the SMTP dialogue around a
    handshake). A :class:`~dane_monitor.check.Checker` holds one; :func:`probe` without one
    uses a module-wide instance. Contexts hold no per-connection state that could leak
    between probes: no session is ever resumed (asyncio passes none), so every handshake is
    a full one and the server presents its chain each time."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    def get(self, key_type: KeyTypeRequest) -> ssl.SSLContext:
        ctx = self._contexts.get(key_type)
        if ctx is None:
            if key_type not in _KEY_TYPES:
                raise ValueError(f"key_type must be one of {_KEY_TYPES}, not {key_type!r}")
            ctx = self._contexts[key_type] = _client_context(key_type)
        return ctx


_DEFAULT_CONTEXTS = ClientContexts()


def _client_context(key_type: KeyTypeRequest) -> ssl.SSLContext:
    """TLS 1.2+ client, no PKIX verification (DANE decides), optionally one key type only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if key_type != "any":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_CIPHERS[key_type])
    return ctx


# -- EHLO name -------------------------------------------------------------------------------

_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*\Z")
_ehlo_name: str | None = None
# What may follow EHLO: printable ASCII without spaces (a domain or an address literal).
_EHLO_ARG = re.compile(r"[!-~]{1,255}")
_ehlo_lock = threading.Lock()


def default_ehlo_name() -> str:
    """This host's fully qualified name, or ``dane-monitor.invalid`` when it has none (a
    name without a dot, ``localhost``). Blocking: may ask the resolver once; cached. A probe
    waits for it at most a second (in a thread, within its overall cap), then falls back."""
    global _ehlo_name
    with _ehlo_lock:
        if _ehlo_name is None:
            name = socket.getfqdn().rstrip(".").lower()
            ok = _HOSTNAME.match(name) and not name.startswith("localhost")
            _ehlo_name = name if ok else FALLBACK_EHLO_NAME
        return _ehlo_name


#: How long a probe waits for default_ehlo_name() the first time (it may ask the resolver).
_EHLO_NAME_WAIT = 1.0


async def _resolve_ehlo_name(limit: float) -> str:
    if _ehlo_name is not None:
        return _ehlo_name
    try:
        async with asyncio.timeout(limit):
            return await threads.to_thread(default_ehlo_name)
    except TimeoutError:
        return FALLBACK_EHLO_NAME


# -- the wire --------------------------------------------------------------------------------


class _Closed(Exception):
    """The server closed or reset the connection."""


class _Overlong(Exception):
    """A line did not end within MAX_LINE bytes."""


class _Wire(asyncio.BufferedProtocol):
    """A connection whose transport reads into one fixed buffer of MAX_LINE bytes; reading
    pauses while the buffer is full, so a server can never make the probe hold more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray(MAX_LINE)
        self._len = 0
        self._paused = False
        self._overrun = False
        self._eof = False
        self._lost: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream connection's transport
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._len >= len(self._buf):  # cannot happen (reading is paused): drop, flag it
            self._overrun = True
            return memoryview(bytearray(256))
        return memoryview(self._buf)[self._len :]

    def buffer_updated(self, nbytes: int) -> None:
        if not self._overrun:
            self._len += nbytes
        if self._len >= len(self._buf) and not self._paused:
            self._pause()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc
        self._wake()

    # the probe's side

    @property
    def buffered(self) -> int:
        return self._len

    @property
    def closed(self) -> bool:
        return self._eof or self.transport is None or self.transport.is_closing()

    def reason(self) -> str:
        if isinstance(self._lost, OSError) and self._lost.strerror:
            return f"connection reset ({self._lost.strerror})"
        if self._lost is not None:
            return f"connection lost ({self._lost})"
        return "connection closed"

    def send(self, data: bytes) -> None:
        if self.closed:
            raise _Closed
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(data)

    def take_line(self) -> bytes | None:
        """A line already received (as :meth:`readline`), else None: the lines after the
        first of a multi-line reply are read without a coroutine each."""
        end = self._buf.find(b"\n", 0, self._len)
        return self._take(end) if end >= 0 else None

    async def readline(self) -> bytes:
        """One line without CRLF (or bare LF)."""
        while True:
            end = self._buf.find(b"\n", 0, self._len)
            if end >= 0:
                return self._take(end)
            if self._len >= len(self._buf) or self._overrun:
                raise _Overlong
            if self._eof:
                raise _Closed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def upgraded(self, transport: asyncio.Transport) -> None:
        """Now reading through ``transport`` (TLS over the old one), which is not paused."""
        self.transport = transport
        self._paused = False

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _take(self, end: int) -> bytes:
        line = bytes(self._buf[:end])
        rest = self._len - end - 1
        self._buf[:rest] = self._buf[end + 1 : self._len]
        self._len = rest
        if self._paused and not self.closed and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return line.rstrip(b"\r")

    def _pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._paused = True
            self.transport.pause_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


# -- the dialogue ----------------------------------------------------------------------------


class _Failure(Exception):
    def __init__(self, code: str, step: str, detail: str, *, polite: bool = False) -> None:
        super().__init__(code, step, detail)
        self.code = code
        self.step = step
        self.detail = detail
        self.polite = polite  # the SMTP session is still sane: say QUIT before leaving


_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)

_STEP_WORDS = {
    "connect": "connecting",
    "tls": "the TLS handshake",
    "banner": "waiting for the greeting",
    "ehlo": "waiting for the EHLO reply",
    "helo": "waiting for the HELO reply",
    "starttls": "waiting for the STARTTLS reply",
    "ehlo-tls": "waiting for the EHLO reply inside TLS",
    "quit": "waiting for the QUIT reply",
}


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def printable(data: bytes | str, limit: int = _TRANSCRIPT_LINE) -> str:
    """What a server sent, as one printable line of at most ``limit`` characters: an
    undecodable byte as ``\\xbf``, a control character as ``\\x00``/``\\x1b``/``\\r``,
    longer text cut with ``…`` (never inside an escape).

    The one place server text is escaped: the probe applies it once, where the text enters
    the transcript or a failure's detail, and every consumer (text, JSON, nagios, the
    exporter's debug page, pytest's failure messages) prints that as it is. Applied to its
    own output it changes nothing, so nothing is ever escaped twice.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", "backslashreplace")
    if not data.isprintable():
        data = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in data)
    if len(data) > limit:
        data = _PARTIAL_ESCAPE.sub("", data[: limit - 1]) + "…"
    return data


# An escape cut short at the end of a cut line: \, \x, \xN, \uNNN, \UNNNNNNN.
_PARTIAL_ESCAPE = re.compile(r"\\(?:x[0-9a-f]?|u[0-9a-f]{0,3}|U[0-9a-f]{0,7})?$")

#: At most this many characters of a server's reply text in a failure's detail.
_DETAIL_TEXT = 160


class _Deadline:
    """One timer for a whole probe. Each step moves the deadline (:meth:`move`); the timer is
    rescheduled only when the deadline comes earlier than it is set for, and when it goes off
    before a deadline that moved later, it sets itself again: a step costs an assignment,
    not a timer. When the deadline passes, the probe's task is cancelled (:attr:`expired`
    tells that cancellation from anyone else's, as :func:`asyncio.timeout` does)."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.loop = task.get_loop()
        self.task = task
        self.when = 0.0
        self.expired = False
        self._armed = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def move(self, when: float) -> None:
        self.when = when
        if self._handle is None or when < self._armed:
            if self._handle is not None:
                self._handle.cancel()
            self._armed = when
            self._handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        if self.when > self._armed:  # moved later since the timer was set: wait on
            self._armed = self.when
            self._handle = self.loop.call_at(self.when, self._fire)
            return
        self._handle = None
        self.expired = True
        self.task.cancel()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Probe:
    """One probe's dialogue, under one :class:`_Deadline` (made by :func:`probe`), moved at
    each step to that step's end, or to the probe's overall end when that comes first;
    :meth:`timed_out` then says which step it cut and which of the two deadlines passed."""

    def __init__(
        self,
        result: ProbeResult,
        ehlo_name: str | None,
        timeouts: Timeouts,
        contexts: ClientContexts,
        transcript: bool,
    ) -> None:
        self.result = result
        self.ehlo_name = ehlo_name or FALLBACK_EHLO_NAME
        self._want_default_name = ehlo_name is None
        self.timeouts = timeouts
        self.contexts = contexts
        self.logging = transcript
        self.wire = _Wire()
        self.step = "connect"
        self._transcript_size = 0
        # The deadline (set by probe()), the loop time at which the whole probe must end,
        # and the current step's timeout code and length (None: the overall end binds).
        self.deadline: _Deadline | None = None
        self.end = 0.0
        self._step_code = "timeout"
        self._step_seconds: float | None = None

    # bookkeeping

    def log(self, line: str) -> None:
        if not self.logging or self._transcript_size >= MAX_TRANSCRIPT:
            return
        self._transcript_size += len(line)
        if self._transcript_size >= MAX_TRANSCRIPT:
            line = "* transcript truncated"
        self.result.transcript.append(line)

    def fail(self, failure: _Failure) -> None:
        if self.result.error is None:
            self.result.error = failure.code
            self.result.error_step = failure.step
            self.result.detail = failure.detail
            if self.logging:
                self.log(f"* {failure.code} at {failure.step}: {failure.detail}")

    def begin(self, step: str, seconds: float, timeout_code: str = "timeout") -> None:
        """Enter ``step``: the deadline moves to ``seconds`` from now (or the overall end)."""
        self.step = step
        self._step_code = timeout_code
        deadline = self.deadline
        assert deadline is not None
        when = deadline.loop.time() + seconds
        if when < self.end:
            self._step_seconds = seconds
            deadline.move(when)
        else:
            self._step_seconds = None
            deadline.move(self.end)

    def timed_out(self) -> _Failure:
        """The failure of the step the deadline cut: its own deadline, or the overall one."""
        step = self.step
        if self._step_seconds is not None:
            return _Failure(
                self._step_code,
                step,
                f"no answer within {self._step_seconds:g} s ({_STEP_WORDS[step]})",
            )
        code = {"connect": "connect-timeout", "banner": "banner-timeout"}.get(step, "timeout")
        return _Failure(
            code,
            step,
            f"the overall deadline of {self.timeouts.budget:g} s passed while {_STEP_WORDS[step]}",
        )

    def broken(self, exc: _Closed | _Overlong) -> _Failure:
        """A wire event (closed, overlong line) as a failure of the current step."""
        step = self.step
        if isinstance(exc, _Overlong):
            return _Failure(
                "line-too-long",
                step,
                f"a reply line longer than {MAX_LINE} bytes while {_STEP_WORDS[step]}",
            )
        return _Failure(
            "closed",
            step,
            f"the server ended the connection: {self.wire.reason()} while {_STEP_WORDS[step]}",
        )

    # I/O

    def send(self, command: str) -> None:
        if self.logging:
            self.log(f"C: {command}")
        self.wire.send(command.encode("ascii") + b"\r\n")

    async def reply(self, raw: list[str] | None = None) -> Reply:
        """One complete (multi-line) reply; its lines as received are added to ``raw``."""
        code: bytes | None = None
        texts: list[str] = []
        wire = self.wire
        while True:
            line = wire.take_line()
            if line is None:
                line = await wire.readline()
            if self.logging:
                self.log(f"S: {printable(line)}")
            if raw is not None:
                raw.append(line.decode("utf-8", "backslashreplace"))
            match = _REPLY_LINE.fullmatch(line)
            if match is None:
                shown = printable(line, 80)
                raise _Failure("bad-reply", self.step, f"not an SMTP reply line: '{shown}'")
            if code is None:
                code = match[1]
            elif match[1] != code:
                raise _Failure(
                    "bad-reply",
                    self.step,
                    f"a continuation line has code {match[1].decode()} in a {code.decode()} reply",
                )
            texts.append((match[3] or b"").decode("utf-8", "backslashreplace").strip())
            if match[2] != b"-":
                return Reply(int(code), tuple(texts))
            if len(texts) >= MAX_REPLY_LINES:
                raise _Failure(
                    "bad-reply", self.step, f"a reply of more than {MAX_REPLY_LINES} lines"
                )

    async def command(self, step: str, command: str, seconds: float) -> Reply:
        self.begin(step, seconds)
        self.send(command)
        return await self.reply()

    # the dialogue

    async def run(self) -> None:
        """The dialogue up to TLS and EHLO inside it; every failure is a :class:`_Failure`
        (a deadline is the caller's: :meth:`timed_out`)."""
        try:
            await self._dialogue()
        except (_Closed, _Overlong) as exc:
            raise self.broken(exc) from None

    async def _dialogue(self) -> None:
        r = self.result
        await self.connect()
        if r.implicit_tls:
            await self.handshake()
        await self.greeting()
        keywords = await self.hello("ehlo")
        r.ehlo_keywords = keywords
        r.starttls_offered = _offers_starttls(keywords)
        if r.implicit_tls:
            return
        if not r.starttls_offered:
            raise _Failure(
                "starttls-missing",
                "ehlo",
                "the server does not offer STARTTLS in its EHLO reply",
                polite=True,
            )
        await self.starttls()
        await self.handshake()
        keywords = await self.hello("ehlo-tls")
        r.ehlo_keywords_after_tls = keywords
        r.starttls_offered_after_tls = _offers_starttls(keywords)
        if r.starttls_offered_after_tls:
            self.log("* the server offers STARTTLS again inside TLS (RFC 3207 §4.2 says not to)")

    async def connect(self) -> None:
        r = self.result
        loop = asyncio.get_running_loop()
        if self.logging:
            self.log(f"* connecting to {r.endpoint}")
        self.begin("connect", self.timeouts.connect, "connect-timeout")
        try:
            await loop.create_connection(lambda: self.wire, r.address, r.port)
        except ConnectionRefusedError:
            raise _Failure(
                "connect-refused", "connect", f"{r.endpoint} refused the connection"
            ) from None
        except ConnectionResetError:
            # The handshake completed (a RST to the SYN is "refused") and the server reset
            # the connection before the event loop saw it connected: the same server
            # behaviour as a reset while waiting for the greeting, whichever the loop sees.
            raise _Failure(
                "closed",
                "connect",
                f"the server ended the connection: connection reset by {r.endpoint} right "
                "after accepting it",
            ) from None
        except OSError as exc:
            if exc.errno in _NO_ROUTE_HERE:
                reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "no route")
                raise _Failure(
                    "no-route",
                    "connect",
                    f"{r.endpoint} is not reachable from here: this host has no route to it "
                    f"({reason}); the problem is on the checking side, not the server's",
                ) from None
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise _Failure(
                "connect-failed", "connect", f"cannot connect to {r.endpoint}: {reason}"
            ) from None
        r.connected = True

    async def greeting(self) -> None:
        self.begin("banner", self.timeouts.banner, "banner-timeout")
        raw: list[str] = []
        reply = await self.reply(raw)
        self.result.banner = raw
        if reply.code == 220:
            return
        if reply.code >= 400:
            raise _Failure(
                "greeting-rejected",
                "banner",
                f"the server greets with {reply.code}: {printable(reply.text, _DETAIL_TEXT)}",
                polite=True,
            )
        raise _Failure("bad-reply", "banner", f"the greeting is {reply.code}, not 220")

    async def hello(self, step: str) -> list[str]:
        """EHLO; on a 5xx reply, HELO to tell "not ESMTP" from "refuses us". Keywords."""
        if self._want_default_name:  # first EHLO only, outside the command's deadline
            self._want_default_name = False
            if _ehlo_name is not None:
                self.ehlo_name = _ehlo_name
            else:
                self.begin(step, _EHLO_NAME_WAIT + self.timeouts.command)
                self.ehlo_name = await _resolve_ehlo_name(_EHLO_NAME_WAIT)
        reply = await self.command(step, f"EHLO {self.ehlo_name}", self.timeouts.command)
        if reply.code == 250:
            self.result.esmtp = True
            return [kw for kw in reply.lines[1:] if kw]
        refused = f"EHLO answered with {reply.code} {printable(reply.text, _DETAIL_TEXT)}"
        if step != "ehlo" or not 500 <= reply.code < 600:
            raise _Failure("ehlo-failed", step, refused, polite=True)
        helo = await self.command("helo", f"HELO {self.ehlo_name}", self.timeouts.command)
        if helo.code == 250:
            raise _Failure(
                "not-esmtp",
                "helo",
                f"{refused}, HELO accepted: the server speaks only SMTP, without STARTTLS",
                polite=True,
            )
        raise _Failure(
            "ehlo-failed",
            "helo",
            f"{refused}, HELO with {helo.code} {printable(helo.text, _DETAIL_TEXT)}",
            polite=True,
        )

    async def starttls(self) -> None:
        reply = await self.command("starttls", "STARTTLS", self.timeouts.command)
        self.result.starttls_reply = reply
        if reply.code != 220:
            raise _Failure(
                "starttls-refused",
                "starttls",
                f"STARTTLS answered with {reply.code} {printable(reply.text, _DETAIL_TEXT)}",
                polite=True,
            )

    async def handshake(self) -> None:
        r = self.result
        if self.wire.buffered:
            raise _Failure(
                "tls-failed",
                "tls",
                f"the server sent {self.wire.buffered} bytes of plaintext where the TLS "
                "handshake should begin",
            )
        plain = self.wire.transport
        if self.wire.closed or plain is None:
            raise _Failure("tls-failed", "tls", f"{self.wire.reason()} before the TLS handshake")
        loop = asyncio.get_running_loop()
        ctx = self.contexts.get(r.key_type_requested)
        if self.logging:
            self.log(f"* TLS handshake, SNI {r.sni}, key type {r.key_type_requested}")
        self.begin("tls", self.timeouts.tls)
        try:
            transport = await loop.start_tls(
                plain,
                self.wire,
                ctx,
                server_hostname=r.sni,
                ssl_handshake_timeout=self.timeouts.tls + 1,  # ours fires first
                ssl_shutdown_timeout=self.timeouts.quit,
            )
        except ssl.SSLError as exc:
            raise _Failure(
                "tls-failed", "tls", f"TLS handshake failed: {_ssl_reason(exc)}"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise _Failure(
                "tls-failed", "tls", f"the connection broke during the TLS handshake: {reason}"
            ) from None
        if transport is None:  # 3.11: the peer closed cleanly mid-handshake
            raise _Failure(
                "tls-failed", "tls", "the server closed the connection during the TLS handshake"
            )
        self.wire.upgraded(transport)
        sslobj = transport.get_extra_info("ssl_object")
        r.tls_established = True
        r.tls_version = sslobj.version()
        cipher = sslobj.cipher()
        r.cipher = cipher[0] if cipher else None
        r.chain, r.chain_complete = peer_chain(sslobj)
        r.leaf_key_type = key_type_of(r.chain[0]) if r.chain else None
        if self.logging:
            self.log(
                f"* {r.tls_version} {r.cipher}, {len(r.chain)} certificate(s), "
                f"leaf {r.leaf_key_type}" + ("" if r.chain_complete else " (leaf only)")
            )

    async def quit(self) -> None:
        """QUIT and read the reply; whatever happens is only logged (a deadline too: the
        caller's :meth:`timed_out` while ``step`` is ``quit``)."""
        if self.wire.closed:
            return
        self.begin("quit", self.timeouts.quit)
        try:
            self.send("QUIT")
            await self.reply()
        except (_Closed, _Overlong) as exc:
            self.log(f"* QUIT: {self.broken(exc).detail}")
        except _Failure as failure:
            self.log(f"* QUIT: {failure.detail}")
        if self.wire.transport is not None:
            self.wire.transport.close()  # inside TLS: close_notify


def _offers_starttls(keywords: list[str]) -> bool:
    # The keyword is the first word of a line (the lines are stripped): no split per line.
    return any(
        kw[:8].upper() == "STARTTLS" and (len(kw) == 8 or kw[8].isspace()) for kw in keywords
    )


def _ssl_reason(exc: ssl.SSLError) -> str:
    """``SSLV3_ALERT_HANDSHAKE_FAILURE (sslv3 alert handshake failure)`` from an SSLError."""
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    text = re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", text).strip()
    reason = getattr(exc, "reason", None)
    if reason and text and reason.lower().replace("_", " ") != text.lower():
        return f"{reason} ({text})"
    return reason or text or type(exc).__name__


# -- public entry points ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _sni_problem(sni: str) -> str | None:
    """Why ``sni`` cannot be a TLS server name (None: it can). Remembered: a monitor sends
    the same few names again and again."""
    if not sni.strip(".") or not sni.isascii():
        return f"sni must be an ASCII (A-label) host name, not {sni!r}"
    try:
        sni.rstrip(".").encode("idna")  # what ssl does with server_hostname
    except UnicodeError:
        return f"sni is not a valid host name: {sni!r}"
    return None


async def probe(
    address: str,
    port: int,
    *,
    sni: str,
    ehlo_name: str | None = None,
    implicit_tls: bool = False,
    key_type: KeyTypeRequest = "any",
    timeouts: Timeouts = Timeouts(),
    transcript: bool = True,
    contexts: ClientContexts | None = None,
) -> ProbeResult:
    """Probe one SMTP endpoint: ``address`` (IPv4 or IPv6 literal; ``[::1]`` brackets are
    accepted) and ``port``, STARTTLS unless ``implicit_tls``.

    ``sni`` is sent as the TLS server name: the TLSA base domain (RFC 7672 §8.1).
    ``ehlo_name``: the name in EHLO/HELO; by default :func:`default_ehlo_name`.
    ``key_type``: ``"rsa"`` or ``"ecdsa"`` offer only that kind of server authentication
    (TLS 1.2 with aRSA or aECDSA suites), to see the chain of that type on a server that
    has two; ``"any"`` is an ordinary TLS 1.2/1.3 client. The cipher suites alone pin the
    key type in TLS 1.2 (the server must present a certificate the suite can use), so no
    signature-algorithm list is needed — Python's ``ssl`` has no API to set one anyway.
    A TLS 1.3-only server therefore fails a restricted probe (``tls-failed``).
    ``transcript``: record the dialogue in :attr:`ProbeResult.transcript` (``False``
    leaves it empty and saves the work). ``contexts``: where the TLS client contexts come
    from (default: one module-wide :class:`ClientContexts`).

    Never raises for what the network or the server does; raises ValueError for a bad port,
    key type or empty ``sni``. Takes at most ``timeouts.budget`` seconds.
    """
    if key_type not in _KEY_TYPES:
        raise ValueError(f"key_type must be one of {_KEY_TYPES}, not {key_type!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, not {port!r}")
    if not isinstance(sni, str):
        raise ValueError(f"sni must be an ASCII (A-label) host name, not {sni!r}")
    problem = _sni_problem(sni)
    if problem is not None:
        raise ValueError(problem)
    if ehlo_name is not None and not _EHLO_ARG.fullmatch(ehlo_name):
        raise ValueError(f"ehlo_name must be a domain or address literal, not {ehlo_name!r}")
    address = address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    result = ProbeResult(
        address=address,
        port=port,
        sni=sni.rstrip("."),
        implicit_tls=implicit_tls,
        key_type_requested=key_type,
    )
    runner = _Probe(result, ehlo_name, timeouts, contexts or _DEFAULT_CONTEXTS, transcript)
    start = time.monotonic()
    task = asyncio.current_task()
    assert task is not None, "probe() runs in a task"
    cancelling = task.cancelling()
    deadline = runner.deadline = _Deadline(task)
    runner.end = deadline.loop.time() + timeouts.budget
    try:
        try:
            await runner.run()
        except _Failure as failure:
            runner.fail(failure)
            if failure.polite:
                await runner.quit()
        else:
            await runner.quit()
    except asyncio.CancelledError:
        # Ours only when the deadline went off and nobody else cancelled the task too.
        if not deadline.expired or task.uncancel() > cancelling:
            raise
        cut = runner.timed_out()
        if runner.step == "quit":  # the result never depends on QUIT
            runner.log(f"* QUIT: {cut.detail}")
        else:
            runner.fail(cut)
    except OSError as exc:  # a transport error outside a step: treat as a broken connection
        runner.fail(_Failure("closed", runner.step, f"connection error: {exc}"))
    finally:
        deadline.cancel()
        runner.wire.abort()
        result.elapsed = time.monotonic() - start
    return result


def other_key_type(first: ProbeResult) -> KeyTypeRequest:
    """The key type a second handshake offers after ``first``: RSA when the first leaf was
    not RSA, ECDSA when it was."""
    return "ecdsa" if first.leaf_key_type == "rsa" else "rsa"


def record_other_key_type(first: ProbeResult, second: ProbeResult) -> list[ProbeResult]:
    """What the second handshake (offering only :func:`other_key_type`) found, recorded in
    ``first.other_key_types`` (and its transcript, when it has one): ``[first, second]``
    when the server presented a chain of that type, else ``[first]``."""
    other = second.key_type_requested
    if first.transcript:
        first.transcript.append(
            f"* {other}-only handshake: {second.error or 'ok'}, leaf {second.leaf_key_type}"
            + (f" ({second.detail})" if second.detail else "")
        )
    if second.tls_established and second.leaf_key_type == other:
        first.other_key_types[other] = "served"
        return [first, second]
    if second.error == "tls-failed" or second.tls_established:
        first.other_key_types[other] = "not-served"
    else:
        first.other_key_types[other] = second.error or "not-served"
    return [first]


async def probe_all(
    address: str,
    port: int,
    *,
    sni: str,
    ehlo_name: str | None = None,
    implicit_tls: bool = False,
    timeouts: Timeouts = Timeouts(),
    transcript: bool = True,
    contexts: ClientContexts | None = None,
) -> list[ProbeResult]:
    """Probe with a default handshake, then once more offering only the other key type
    (RSA when the first leaf was not RSA, ECDSA when it was): senders may get either chain.

    Returns ``[first, second]`` when the second handshake got a leaf of that other type (a
    dual-certificate server), else ``[first]``. Either way ``first.other_key_types`` says
    what the second try found. No second try when the first one did not reach TLS.
    Sequential (one connection at a time): at most ``2 * timeouts.budget`` seconds.
    (:class:`~dane_monitor.check.Checker` decides per check whether the second try can
    change the answer; this function always makes it.)
    """
    kwargs: dict[str, Any] = {
        "sni": sni,
        "ehlo_name": ehlo_name,
        "implicit_tls": implicit_tls,
        "timeouts": timeouts,
        "transcript": transcript,
        "contexts": contexts,
    }
    first = await probe(address, port, key_type="any", **kwargs)
    if not first.tls_established:
        return [first]
    second = await probe(address, port, key_type=other_key_type(first), **kwargs)
    return record_other_key_type(first, second)
