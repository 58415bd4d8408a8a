"""A real validating resolver for the world: Unbound, run as a child process on loopback.

It resolves the world's names through a stub zone for the root pointing at the world's DNS
server, and validates them from the world's trust anchor. This is what resolver mode
(trusting the AD bit) and ``dane-monitor resolver-check`` are tested against, and what a
user of the world gets when they want "a resolver like the one my MTA uses".
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

CONFIG = """\
server:
    interface: {host}@{port}
    port: {port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    logfile: "{dir}/unbound.log"
    use-syslog: no
    verbosity: 0
    identity: "{identity}"
    hide-identity: no
    do-ip6: no
    do-not-query-localhost: no
    trust-anchor-file: "{dir}/anchor.ds"
    module-config: "validator iterator"
    harden-dnssec-stripped: yes
    val-log-level: 2
    qname-minimisation: no
    aggressive-nsec: no
{cache}{options}    access-control: 127.0.0.0/8 allow
    so-reuseport: no
remote-control:
    control-enable: no
"""
# Tests want every answer fresh from the world (whose zones they change); benchmarks of a
# warm resolver want Unbound's cache (``Unbound(cache=True)``).
NO_CACHE = """\
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
"""
# One stub zone per zone of the world: otherwise Unbound follows referrals to the NS glue on
# port 53, where nothing of ours listens.
STUB = """\
stub-zone:
    name: "{zone}"
    stub-addr: {upstream_host}@{upstream_port}
"""


def identity_of(host: str, port: int, timeout: float = 0.3) -> str | None:
    """What the server at ``host``:``port`` calls itself (``id.server. CH TXT``), or None."""
    query = dns.message.make_query("id.server.", dns.rdatatype.TXT, dns.rdataclass.CH)
    with contextlib.suppress(Exception):
        r = dns.query.udp(query, host, port=port, timeout=timeout)
        for rrset in r.answer:
            for rdata in rrset:
                return b"".join(rdata.strings).decode(errors="replace")
    return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Unbound:
    """``with Unbound(upstream=(host, port), trust_anchor=text, zones=[...]) as u: u.address``

    ``World.unbound()`` fills in the world's DNS server, anchor and zones.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        trust_anchor: str,
        *,
        zones: Iterable[str] = (".",),
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        cache: bool = False,
        stubs: Mapping[str, tuple[str, int]] | None = None,
        options: Iterable[str] = (),
    ) -> None:
        self.cache = cache
        #: further ``server:`` lines, e.g. ``val-nsec3-keysize-iterations: "1024 50 ..."``
        self.options = tuple(options)
        self.upstream = upstream
        #: zone → the server asked for that zone instead of ``upstream`` (e.g. one secondary
        #: name server of it, to resolve as a resolver that happened to reach that one)
        self.stubs = {str(k): v for k, v in (stubs or {}).items()}
        self.trust_anchor = trust_anchor
        self.zones = [str(z) for z in zones]
        self.host = host
        self.port = port
        self.binary = binary or shutil.which("unbound") or "/usr/sbin/unbound"
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.identity = ""  # what this instance answers to id.server. CH TXT
        self._last_log = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.port is not None
        return (self.host, self.port)

    def start(self, timeout: float = 15.0) -> None:
        """Start Unbound and wait until *this* process answers (its own ``id.server``): an
        address whose port another server already holds makes ours exit, and that other
        server's answers must not pass for ours (two xdist workers racing for one
        127.0.153.x:53 once had one worker's tests resolve through the other's Unbound and
        keys). With ``port`` fixed there is one attempt (RuntimeError if it is taken);
        without, up to five free ports are tried."""
        attempts = 1 if self.port is not None else 5
        for _ in range(attempts):
            self._dir = tempfile.TemporaryDirectory(prefix="dane-unbound-")
            directory = Path(self._dir.name)
            (directory / "anchor.ds").write_text(self.trust_anchor)
            port = self.port or _free_port(self.host)
            self.identity = f"dane-unbound-{secrets.token_hex(8)}"
            up = {"upstream_host": self.upstream[0], "upstream_port": self.upstream[1]}
            conf = CONFIG.format(
                host=self.host,
                port=port,
                dir=directory,
                identity=self.identity,
                cache="" if self.cache else NO_CACHE,
                options="".join(f"    {line}\n" for line in self.options),
            )
            conf += "".join(
                STUB.format(zone=zone, **up)
                if zone not in self.stubs
                else STUB.format(
                    zone=zone, upstream_host=self.stubs[zone][0], upstream_port=self.stubs[zone][1]
                )
                for zone in self.zones
            )
            (directory / "unbound.conf").write_text(conf)
            fixed = self.port
            self.process = subprocess.Popen(
                [self.binary, "-d", "-c", str(directory / "unbound.conf")],
                stdout=subprocess.DEVNULL,
                # never a pipe nobody reads: Unbound logs every validation failure
                # (val-log-level 2), and once 64 KiB of them filled an unread pipe it
                # blocked on the write and stopped answering (after ~190 bogus lookups)
                stderr=subprocess.DEVNULL,
            )
            self.port = port
            if self._wait_ready(timeout):
                return
            self.stop()
            self.port = fixed
        raise RuntimeError(
            f"unbound did not start on {self.host}:{self.port or 'a free port'}: {self.log()}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        """True once the server at our address answers with our identity, and our process
        still runs (False as soon as it exits: e.g. the address was taken)."""
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if identity_of(self.host, self.port) == self.identity:
                return self.process.poll() is None
            time.sleep(0.05)
        return False

    def log(self, limit: int = 2000) -> str:
        """The end of this instance's log (validation failures, bind errors)."""
        if self._dir is None:
            return self._last_log
        path = Path(self._dir.name) / "unbound.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        if self._dir is not None:
            self._last_log = self.log()
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Unbound:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port53_free(address: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, 53))
            except OSError:
                return False
    return True


def start_on_port_53(
    make: Callable[[str], Unbound], network: str = "127.0.153.0/24", timeout: float = 15.0
) -> Unbound:
    """Start ``make(address)`` (an :class:`Unbound` for ``address``, port 53) on the first
    address of ``network`` whose port 53 is free. For tools that resolve through
    /etc/resolv.conf, which cannot name a port; concurrent runs each get their own address.
    Binding port 53 needs root (or CAP_NET_BIND_SERVICE)."""
    for candidate in ipaddress.ip_network(network).hosts():
        address = str(candidate)
        if not port53_free(address):
            continue
        unbound = make(address)
        with contextlib.suppress(RuntimeError):  # taken between the probe and the start
            unbound.start(timeout=timeout)
            return unbound
    raise RuntimeError(f"no address in {network} with a free port 53")
