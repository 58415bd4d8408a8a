"""TLS and basic auth for the web endpoints, from a Prometheus exporter-toolkit ``web-config.yml``.

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      # client_auth_type: RequireAndVerifyClientCert
      # client_ca_file: clients.pem
      # min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash, e.g. htpasswd -nBC 10 "" | tr -d ':\\n'

The same file works for this exporter and for Go exporters. Settings of the toolkit that
only mean something to Go's TLS stack (cipher_suites, curve_preferences,
prefer_server_cipher_suites) are accepted and ignored; anything unknown is an error with
its line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import hashlib
import ssl
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from dane_monitor import threads
from dane_monitor.exporter.config import ConfigError, _Reader, _relative, _text

_TOP = ("tls_server_config", "basic_auth_users", "http_server_config")
_TLS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
        "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
        "client_allowed_sans")  # fmt: skip
_HTTP = ("http2", "headers")
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name → bcrypt hash
    headers: list[tuple[str, str]] = field(default_factory=list)
    path: str | None = None
    # SHA-256 of verified user:password pairs, most recent last (successes only: a flood of
    # wrong passwords cannot evict an authorised scraper's entry).
    _verified: OrderedDict[bytes, None] = field(default_factory=OrderedDict, repr=False)
    # Client address → times of its recent failed attempts.
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _bcrypt_pending: int = field(default=0, repr=False)

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    async def authorized(self, header: str | None, client: str | None = None) -> bool:
        """Whether an ``Authorization`` header carries a configured user's password.

        bcrypt runs on its own small pool (it is slow on purpose, and must not starve the
        metrics rendering); a verified pair is remembered by its SHA-256, so Prometheus's
        scrapes pay for bcrypt once. A client address with FAILURES_PER_MINUTE failed
        attempts in the last minute, or more than BCRYPT_QUEUE checks waiting, is refused
        without running bcrypt.
        """
        if not self.users:
            return True
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).partition(
                b":"
            )
        except (binascii.Error, ValueError):
            return False
        if not sep:
            return False
        key = hashlib.sha256(user + b"\0" + password).digest()
        if key in self._verified:
            self._verified.move_to_end(key)
            return True
        now = time.monotonic()
        recent = self._failures.get(client or "")
        if recent is not None:
            while recent and recent[0] < now - 60:
                recent.popleft()
        if (recent and len(recent) >= FAILURES_PER_MINUTE) or (
            self._bcrypt_pending >= BCRYPT_QUEUE
        ):
            return False
        hashed = self.users.get(user.decode("utf-8", "replace"))
        # Unknown users cost a bcrypt too, so timing does not tell which names exist.
        check = hashed if hashed is not None else _DUMMY
        self._bcrypt_pending += 1
        try:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(_bcrypt_pool(), _checkpw, password, check)
        finally:
            self._bcrypt_pending -= 1
        ok = ok and hashed is not None
        if ok:
            self._verified[key] = None
            while len(self._verified) > VERIFIED_KEPT:
                self._verified.popitem(last=False)
        else:
            if len(self._failures) > 10_000:  # bounded: forget the oldest addresses
                self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(client or "", deque()).append(now)
        return ok


_DUMMY = bcrypt.hashpw(b"dummy", bcrypt.gensalt(10))

#: Failed attempts per client address and minute past which it is refused without bcrypt.
FAILURES_PER_MINUTE = 10
#: bcrypt checks waiting at most; beyond, a request is refused at once (a flood from many
#: addresses cannot queue unbounded CPU work).
BCRYPT_QUEUE = 16
#: Verified user:password pairs remembered.
VERIFIED_KEPT = 100
_BCRYPT: concurrent.futures.ThreadPoolExecutor | None = None


def _bcrypt_pool() -> concurrent.futures.ThreadPoolExecutor:
    """bcrypt's own two threads: a password flood cannot take the threads that render
    /metrics (the default executor)."""
    global _BCRYPT
    if _BCRYPT is None:
        _BCRYPT = concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix="bcrypt", initializer=threads.leave_signals_to_main_thread
        )
    return _BCRYPT


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def load(path: str | Path | None) -> WebConfig:
    """The web configuration at ``path`` (None: plain HTTP, no auth).

    :raises ConfigError: naming the file and line.
    """
    if path is None:
        return WebConfig()
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the web configuration: {exc}") from None
    r = _Reader(text, path)
    top = r.mapping(r.root, _TOP, "the web configuration")
    out = WebConfig(path=path)
    if "basic_auth_users" in top:
        node = top["basic_auth_users"][1]
        if not isinstance(node, yaml.MappingNode):
            raise r.error(node, "basic_auth_users must map user names to bcrypt hashes")
        users: dict[str, bytes] = {}
        for key_node, value_node in node.value:
            name = r.value((key_node, key_node), "user", _text)
            hashed = r.value((value_node, value_node), name, _text).encode()
            if not hashed.startswith((b"$2a$", b"$2b$", b"$2y$")):
                raise r.error(value_node, f"the password of {name!r} must be a bcrypt hash ($2y$…)")
            try:
                bcrypt.checkpw(b"", hashed)
            except ValueError as exc:
                raise r.error(
                    value_node, f"the bcrypt hash of {name!r} is malformed: {exc}"
                ) from None
            users[name] = hashed
        out.users = users
    if "http_server_config" in top:
        http = r.mapping(top["http_server_config"][1], _HTTP, "http_server_config")
        if "headers" in http:
            node = http["headers"][1]
            if not isinstance(node, yaml.MappingNode):
                raise r.error(node, "headers must map header names to values")
            for key_node, value_node in node.value:
                name = r.value((key_node, key_node), "header", _text)
                value = r.value((value_node, value_node), name, _text)
                if any(c in name + value for c in "\r\n"):
                    raise r.error(value_node, "header names and values are one line")
                out.headers.append((name, value))
    if "tls_server_config" in top:
        tls = r.mapping(top["tls_server_config"][1], _TLS, "tls_server_config")
        out.ssl_context = _context(r, tls, path)
    return out


def _context(r: _Reader, tls, path: str) -> ssl.SSLContext:
    if "client_allowed_sans" in tls:
        # Python's ssl cannot check a client certificate's SANs during the handshake, and a
        # setting that is read but not enforced would let in clients the operator meant to
        # keep out: refuse it until it is enforced.
        raise r.error(
            tls["client_allowed_sans"][0],
            "client_allowed_sans is not supported (it would not be enforced): restrict "
            "clients with client_ca_file, a CA that issues only the allowed clients",
        )
    if "cert_file" not in tls or "key_file" not in tls:
        raise r.error(
            next(iter(tls.values()))[0] if tls else None,
            "tls_server_config needs both cert_file and key_file",
        )
    cert = _relative(r.value(tls["cert_file"], "cert_file", _text), path)
    key = _relative(r.value(tls["key_file"], "key_file", _text), path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise r.error(tls["cert_file"][1], f"cannot load {cert} / {key}: {exc}") from None
    for name, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if name in tls:
            value = r.value(tls[name], name, _text)
            if value not in _VERSIONS:
                raise r.error(tls[name][1], f"{name}: one of {', '.join(_VERSIONS)}")
            setattr(context, attr, _VERSIONS[value])
    auth = "NoClientCert"
    if "client_auth_type" in tls:
        auth = r.value(tls["client_auth_type"], "client_auth_type", _text)
        if auth not in _CLIENT_AUTH:
            raise r.error(
                tls["client_auth_type"][1], f"client_auth_type: one of {', '.join(_CLIENT_AUTH)}"
            )
    context.verify_mode = _CLIENT_AUTH[auth]
    if "client_ca_file" in tls:
        ca = _relative(r.value(tls["client_ca_file"], "client_ca_file", _text), path)
        try:
            context.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as exc:
            raise r.error(tls["client_ca_file"][1], f"cannot load {ca}: {exc}") from None
    elif context.verify_mode != ssl.CERT_NONE and auth != "RequestClientCert":
        raise r.error(tls["client_auth_type"][1], f"{auth} needs client_ca_file")
    return context
