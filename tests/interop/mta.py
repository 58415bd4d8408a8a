"""Real mail software around the local world: Postfix instances as the world's MX servers,
and Postfix's posttls-finger as an independent DANE client.

Nothing here touches /etc/postfix or /etc/resolv.conf:

- every Postfix instance has its own config directory (main.cf + master.cf), queue and
  data directory in a temporary directory, and is run as ``master -c DIR -d`` (the master
  daemon in the foreground: no ``postfix start``, so no ``alternate_config_directories``
  entry in a default main.cf that need not exist); it logs to ``DIR/maillog`` through its
  own postlogd;
- posttls-finger resolves through /etc/resolv.conf, which cannot name a port, so it runs in
  a private mount namespace (``unshare -m``) with a resolv.conf bind-mounted over the real
  one, naming an Unbound that listens on port 53 of its own loopback address.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dane_monitor.world import Behaviour, Chain

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")
MASTER = POSTFIX_DAEMONS / "master"


def which(tool: str) -> str | None:
    return shutil.which(tool, path=SBIN_PATH)


def missing_tools() -> list[str]:
    """What the interop suite needs and this machine lacks (empty: all there)."""
    missing = [t for t in ("posttls-finger", "unbound", "unshare", "mount") if not which(t)]
    if not MASTER.exists():
        missing.append(str(MASTER))
    return missing


# -- Postfix as an MX server ------------------------------------------------------------------

# What a Postfix smtpd can be made to do of the world's server behaviours. Postfix always
# lists STARTTLS before ENHANCEDSTATUSCODES, 8BITMIME, ... (so never last), and postscreen's
# pregreet test sends a multi-line "220-" greeting before handing over to smtpd.
POSTFIX_BEHAVIOURS = frozenset(
    {
        Behaviour.NORMAL,
        Behaviour.NO_STARTTLS,
        Behaviour.STARTTLS_REFUSED,
        Behaviour.STARTTLS_NOT_LAST,
        Behaviour.MULTILINE_GREETING,
    }
)

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
myhostname = {hostname}
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
# The addresses are in master.cf; inet_interfaces only has to name a real interface.
inet_interfaces = {interface}
inet_protocols = {protocols}
smtpd_peername_lookup = no
smtpd_tls_chain_files = {chain_files}
smtpd_tls_security_level = {tls_level}
smtpd_tls_loglevel = 1
# postscreen (MULTILINE_GREETING only): the pregreet test on every connection, that is a
# "220-" line, a wait, then smtpd's "220 " line
postscreen_greet_action = enforce
postscreen_greet_wait = 1s
postscreen_greet_ttl = 1s
postscreen_cache_map =
postscreen_access_list =
"""

# No chroot (5th column "n"), and only the services smtpd (and postscreen) need for a
# STARTTLS session: no qmgr, pickup or delivery agents, since nothing is ever delivered.
MASTER_CF_SMTPD = "{listen} inet n - n - - smtpd\n"
MASTER_CF_POSTSCREEN = """\
{listen} inet n - n - 1 postscreen
smtpd pass - - n - - smtpd
dnsblog unix - - n - 0 dnsblog
tlsproxy unix - - n - 0 tlsproxy
"""
MASTER_CF_SERVICES = """\
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
proxymap unix - - n - - proxymap
postlog unix-dgram n - n - 1 postlogd
"""


class PostfixError(RuntimeError):
    pass


@dataclass
class Postfix:
    """One Postfix instance serving SMTP on ``address``:``port`` with the given chains.

    ``behaviours`` (a subset of :data:`POSTFIX_BEHAVIOURS`) become Postfix settings:
    NO_STARTTLS is ``smtpd_tls_security_level = none``; STARTTLS_REFUSED is a key that does
    not belong to the certificate, on which Postfix's TLS initialisation fails so that it
    answers STARTTLS with "454 4.7.0 TLS not available due to local problem";
    MULTILINE_GREETING puts postscreen in front of smtpd.
    """

    address: str
    port: int
    chains: tuple[Chain, ...]
    hostname: str
    behaviours: frozenset[Behaviour] = frozenset()
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def listen(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def _write_config(self, d: Path) -> None:
        unsupported = self.behaviours - POSTFIX_BEHAVIOURS
        if unsupported:
            raise ValueError(f"Postfix cannot be made to {sorted(unsupported)}")
        postfix = pwd.getpwnam("postfix")
        postdrop = grp.getgrnam("postdrop").gr_gid
        os.chmod(d, 0o755)  # postfix-owned daemons must reach queue/ and the certificates
        (d / "data").mkdir()
        os.chown(d / "data", postfix.pw_uid, postfix.pw_gid)
        queue = d / "queue"
        queue.mkdir()
        for sub, mode, uid, gid in (
            ("pid", 0o755, 0, 0),
            ("private", 0o700, postfix.pw_uid, 0),
            ("public", 0o710, postfix.pw_uid, postdrop),
        ):
            (queue / sub).mkdir()
            os.chown(queue / sub, uid, gid)
            os.chmod(queue / sub, mode)
        files: list[str] = []
        for chain in self.chains:
            certfile, keyfile = chain.write(d)
            files += [str(keyfile), str(certfile)]
        if Behaviour.STARTTLS_REFUSED in self.behaviours and len(files) >= 2:
            # a key of another chain than the certificate's: TLS initialisation fails
            from dane_monitor.world import self_signed

            _, other_key = self_signed(["unrelated.invalid"]).write(d)
            files[0] = str(other_key)
        ipv6 = ":" in self.address
        (d / "main.cf").write_text(
            MAIN_CF.format(
                dir=d,
                hostname=self.hostname.rstrip("."),
                interface="[::1]" if ipv6 else "127.0.0.1",
                protocols="ipv6" if ipv6 else "ipv4",
                chain_files=", ".join(files),
                tls_level="none" if Behaviour.NO_STARTTLS in self.behaviours else "may",
            )
        )
        front = (
            MASTER_CF_POSTSCREEN
            if Behaviour.MULTILINE_GREETING in self.behaviours
            else MASTER_CF_SMTPD
        )
        (d / "master.cf").write_text(front.format(listen=self.listen) + MASTER_CF_SERVICES)
        # Postfix rereads a config file modified in the last two seconds until it is older
        # (in case it is still being written): date them back, it saves ~2 s per start.
        past = time.time() - 60
        for name in ("main.cf", "master.cf"):
            os.utime(d / name, (past, past))

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the master daemon; :meth:`wait_ready` waits until it listens (to start many
        instances in parallel)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="dane-postfix-")
        self.directory = Path(self._tmp.name)
        self._write_config(self.directory)
        self.process = subprocess.Popen(
            [str(MASTER), "-c", str(self.directory), "-d"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostfixError(f"postfix master exited: {self.log()[-2000:]}")
            with contextlib.suppress(OSError):
                family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.settimeout(1)
                    s.connect((self.address, self.port))
                    return  # master listens: smtpd is spawned on the first connection
            time.sleep(0.02)
        raise PostfixError(f"postfix did not listen on {self.listen}: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.directory / "maillog" if self.directory else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def terminate(self) -> None:
        """Ask the master to stop (it stops its children); :meth:`stop` waits for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        if self.process is not None:
            self.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# -- posttls-finger as a DANE client -----------------------------------------------------------

# Settings that make posttls-finger take the RSA chain of a dual-key server: TLS 1.2 at
# most (TLS 1.3 picks the certificate by signature algorithm, not by cipher suite) and only
# cipher suites with RSA authentication at its default "medium" grade.
RSA_ONLY = ("-p", "<=TLSv1.2", "-o", "tls_medium_cipherlist=aRSA")


@dataclass
class Finger:
    """What posttls-finger reported about one connection."""

    dest: str
    host: str | None = None  # the MX host it connected to
    address: str | None = None
    trust: str | None = None  # Verified | Trusted | Untrusted | Anonymous | None (no TLS)
    tlsa_match: str | None = None  # "3 1 1 …" of the record it matched, if any
    no_match: bool = False  # "no matching DANE TLSA records"
    insecure_mx: bool = False  # "MX RRset insecure"
    server_signature: str | None = None  # "ECDSA" / "RSA" (TLS 1.3) or from the cipher name
    output: str = ""

    @property
    def authenticated(self) -> bool:
        """posttls-finger's own word: at level dane a Verified connection is a DANE match.
        Under an insecure MX RRset Postfix logs a DANE match as Trusted ("log verified as
        trusted"): the MX host name itself was not authenticated."""
        if self.trust == "Verified":
            return True
        return self.trust == "Trusted" and self.insecure_mx and self.tlsa_match is not None


_ESTABLISHED = re.compile(
    r"(?P<trust>Verified|Trusted|Untrusted|Anonymous) TLS connection established to "
    r"(?P<host>[^\[\s]+)\[(?P<addr>[^\]]+)\]:\d+: (?P<details>.*)"
)
_MATCHED = re.compile(r"Matched DANE (?:EE|TA) \S+ at depth \d+: (?P<rr>\d \d \d [0-9A-F.]+)")
_CONNECTED = re.compile(r" to (?P<host>[^\[\s]+)\[(?P<addr>[^\]]+)\]:\d+")


def parse_finger(dest: str, output: str) -> Finger:
    f = Finger(dest, output=output)
    for line in output.splitlines():
        if m := _ESTABLISHED.search(line):
            f.trust, f.host, f.address = m.group("trust"), m.group("host"), m.group("addr")
            details = m.group("details")
            if sig := re.search(r"server-signature (\w+)", details):
                f.server_signature = sig.group(1)
            elif "-RSA-" in details or "RSA" in details.split("cipher ")[-1][:20]:
                f.server_signature = "RSA"
            elif "ECDSA" in details:
                f.server_signature = "ECDSA"
        elif m := _MATCHED.search(line):
            f.tlsa_match = m.group("rr")
        elif m := _CONNECTED.search(line):
            f.host = f.host or m.group("host")
            f.address = f.address or m.group("addr")
        if "no matching DANE TLSA records" in line:
            f.no_match = True
        if "MX RRset insecure" in line:
            f.insecure_mx = True
    return f


class FingerRunner:
    """Runs posttls-finger against a resolver on port 53 of ``resolver`` (a loopback address)."""

    def __init__(self, resolver: str) -> None:
        self.resolver = resolver
        self._tmp = tempfile.TemporaryDirectory(prefix="dane-finger-")
        self.directory = Path(self._tmp.name)
        # main.cf must exist; nothing in it matters but the compatibility level
        (self.directory / "main.cf").write_text("compatibility_level = 3.6\n")
        # glibc strips the AD bit from answers unless trust-ad is set
        (self.directory / "resolv.conf").write_text(
            f"nameserver {resolver}\noptions edns0 trust-ad\n"
        )

    def command(self, dest: str, *options: str) -> list[str]:
        args = " ".join(_quote(a) for a in options)
        script = (
            f"mount --bind {self.directory}/resolv.conf /etc/resolv.conf && "
            f"MAIL_CONFIG={self.directory} exec posttls-finger -c -l dane -t 5 -T 10 "
            f"-L summary,certmatch {args} {_quote(dest)}"
        )
        return ["unshare", "-m", "sh", "-c", script]

    def run(self, dest: str, *options: str, timeout: float = 60) -> Finger:
        p = subprocess.run(
            self.command(dest, *options), capture_output=True, text=True, timeout=timeout
        )
        return parse_finger(dest, p.stdout + p.stderr)

    def close(self) -> None:
        self._tmp.cleanup()


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"
