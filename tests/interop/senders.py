"""Real mail senders as DANE clients: a Postfix instance (smtp(8) with
``smtp_tls_security_level = dane``) and an Exim test instance (Debian's GnuTLS build with
``hosts_require_dane = *``), each delivering one message per mail domain and telling from
its own log whether the message was delivered or deferred, and why.

Both resolve through /etc/resolv.conf, so both run in a private mount namespace
(``unshare -m``) with a resolv.conf bind-mounted over the real one that names a validating
Unbound on port 53 of a loopback address (as posttls-finger does in :mod:`mta`).

Nothing touches /etc/postfix or /etc/exim4: each instance has its own configuration file,
queue or spool and log in a temporary directory. Debian's exim4 packages conflict with
postfix (both provide mail-transport-agent), so Exim is not installed: ``.ci/run`` unpacks
the exim4-daemon-light package to /opt/exim4 (``dpkg -x``) and creates its runtime user
Debian-exim; :func:`exim_binary` finds it there, on PATH, or in ``$DANE_EXIM``.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mta import MASTER, SBIN_PATH, _quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: worldtools
from worldtools import NAMED_RESOLVER_CONF, REFUSE_SHA1  # noqa: F401 - REFUSE_SHA1 for the tests

EXIM_LOCATIONS = ("/opt/exim4/usr/sbin/exim4",)
EXIM_USER = "Debian-exim"


@dataclass(frozen=True)
class Outcome:
    """What one sender did with the message to one domain."""

    status: str  # "delivered" | "deferred" | "bounced"
    tls: str  # delivered: the sender's word for the TLS session ("Verified", "CV=dane", ...)
    reason: str  # the sender's own words (the log line's tail)
    log: str = ""  # the sender's log lines about this recipient

    @property
    def summary(self) -> str:
        """``delivered (Verified)``, ``deferred``, ...: what the table shows."""
        return f"{self.status} ({self.tls})" if self.status == "delivered" else self.status

    def __str__(self) -> str:
        return f"{self.summary}: {self.reason}"


def exim_binary() -> str | None:
    env = os.environ.get("DANE_EXIM")
    if env:
        return env if os.access(env, os.X_OK) else None
    found = shutil.which("exim4", path=SBIN_PATH) or shutil.which("exim", path=SBIN_PATH)
    if found:
        return found
    return next((p for p in EXIM_LOCATIONS if os.access(p, os.X_OK)), None)


def exim_missing() -> str | None:
    if exim_binary() is None:
        return "Exim (exim4-daemon-light unpacked to /opt/exim4, or $DANE_EXIM)"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"the user {EXIM_USER} (Exim's compiled-in exim_user)"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _resolv_conf(directory: Path, resolver: str) -> Path:
    path = directory / "resolv.conf"
    # glibc strips the AD bit from answers unless trust-ad is set
    path.write_text(f"nameserver {resolver}\noptions edns0 trust-ad\n")
    return path


def _in_namespace(resolv_conf: Path, command: list[str]) -> list[str]:
    script = f"mount --bind {_quote(str(resolv_conf))} /etc/resolv.conf && exec " + " ".join(
        _quote(a) for a in command
    )
    return ["unshare", "-m", "sh", "-c", script]


MESSAGE = "From: <sender@sender.test>\nTo: <{rcpt}>\nSubject: DANE interop\n\nhello\n"


# -- Postfix ---------------------------------------------------------------------------------

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
myhostname = sender.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
transport_maps = texthash:{dir}/transport
# the DANE client under test
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
smtp_tls_loglevel = 1
smtp_connect_timeout = 5s
smtp_helo_timeout = 10s
smtp_starttls_timeout = 10s
smtp_mail_timeout = 10s
smtp_rcpt_timeout = 10s
smtp_data_init_timeout = 10s
smtp_data_xfer_timeout = 10s
smtp_data_done_timeout = 10s
smtp_quit_timeout = 5s
smtp_tls_session_cache_database =
smtp_connection_cache_on_demand = no
# one attempt is all a test reads; no bounce for the deferred ones within a run
queue_run_delay = 1h
minimal_backoff_time = 1h
maximal_backoff_time = 1h
"""

POSTFIX_MASTER_CF = """\
{inject} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

_POSTFIX_STATUS = re.compile(
    r"postfix/smtp\[(?P<pid>\d+)\]: [0-9A-F]+: to=<(?P<rcpt>[^>]+)>, relay=(?P<relay>\S+),.*? "
    r"status=(?P<status>sent|deferred|bounced) \((?P<reason>.*)\)$"
)


_POSTFIX_TLS = re.compile(
    r"(?P<trust>Verified|Trusted|Untrusted|Anonymous) TLS connection established to (?P<relay>\S+):"
    r" "
)


class PostfixSender:
    """A Postfix instance whose smtp(8) client is a DANE client; mail is injected over SMTP
    on 127.0.0.1:``inject_port``. ``routes`` is transport(5) lookup key -> next hop: a domain
    -> ``domain:PORT`` (MX lookup, then each MX host on PORT), or a full address ->
    ``[host]:PORT`` (that host only, DANE from its own address and TLSA lookups)."""

    def __init__(self, resolver: str, routes: dict[str, str], *, extra: str = "") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="dane-sender-postfix-")
        self.directory = d = Path(self._tmp.name)
        self.inject_port = free_port()
        postfix = pwd.getpwnam("postfix")
        postdrop = grp.getgrnam("postdrop").gr_gid
        os.chmod(d, 0o755)
        (d / "data").mkdir()
        os.chown(d / "data", postfix.pw_uid, postfix.pw_gid)
        queue = d / "queue"
        queue.mkdir()
        os.chmod(queue, 0o755)
        subdirs = ("incoming", "active", "deferred", "defer", "bounce", "trace", "corrupt",
                   "hold", "flush", "saved", "private", "maildrop", "public", "pid")  # fmt: skip
        for sub in subdirs:
            (queue / sub).mkdir()
            uid, gid, mode = postfix.pw_uid, 0, 0o700
            if sub == "pid":
                uid, mode = 0, 0o755
            elif sub in ("public", "maildrop"):
                gid, mode = postdrop, 0o710 if sub == "public" else 0o730
            os.chown(queue / sub, uid, gid)
            os.chmod(queue / sub, mode)
        (d / "transport").write_text(
            "".join(f"{key} smtp:{nexthop}\n" for key, nexthop in routes.items())
        )
        (d / "main.cf").write_text(POSTFIX_MAIN_CF.format(dir=d) + extra)
        (d / "master.cf").write_text(
            POSTFIX_MASTER_CF.format(inject=f"127.0.0.1:{self.inject_port}")
        )
        past = time.time() - 60  # Postfix waits for config files younger than 2 s
        for name in ("main.cf", "master.cf", "transport"):
            os.utime(d / name, (past, past))
        resolv = _resolv_conf(d, resolver)
        self.process = subprocess.Popen(
            _in_namespace(resolv, [str(MASTER), "-c", str(d), "-d"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_listening(30)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postfix master exited: {self.log()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.inject_port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"postfix did not listen: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def submit(self, rcpt: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.inject_port, timeout=30) as s:
            s.sendmail("sender@sender.test", [rcpt], MESSAGE.format(rcpt=rcpt))

    def outcome(self, rcpt: str, timeout: float = 90) -> Outcome:
        """The first delivery attempt's result for ``rcpt``, from the maillog."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            lines = log.splitlines()
            for i, line in enumerate(lines):
                m = _POSTFIX_STATUS.search(line)
                if m and m["rcpt"] == rcpt:
                    status = {"sent": "delivered"}.get(m["status"], m["status"])
                    # the smtp(8) process's last TLS line about the relay it delivered to
                    tls = "plain"
                    for before in lines[:i]:
                        t = _POSTFIX_TLS.search(before)
                        if t and f"postfix/smtp[{m['pid']}]" in before and t["relay"] == m["relay"]:
                            tls = t["trust"]
                    return Outcome(status, tls, m["reason"], _postfix_lines(log, rcpt))
            time.sleep(0.1)
        raise AssertionError(f"Postfix logged no outcome for {rcpt}:\n{self.log()[-4000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._tmp.cleanup()


def _postfix_lines(log: str, rcpt: str) -> str:
    """The smtp(8) lines of the queue file that went to ``rcpt`` (TLS and DANE details)."""
    ids = {m[1] for m in re.finditer(r" ([0-9A-F]{6,}): to=<" + re.escape(rcpt) + ">", log)}
    domain = rcpt.split("@", 1)[1]
    return "\n".join(
        line
        for line in log.splitlines()
        if "postfix/smtp[" in line
        and (any(f" {i}: " in line for i in ids) or f".{domain}" in line or f"<{rcpt}>" in line)
    )


# -- Exim ------------------------------------------------------------------------------------

EXIM_CONF = """\
primary_hostname = sender.test
# Exim re-executes itself (-Mc) for each delivery: not at its compiled-in /usr/sbin/exim4
exim_path = {binary}
qualify_domain = sender.test
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
keep_environment =
message_logs = false
# DNSSEC: set the DO bit; trust the AD bit of the validating resolver
dns_dnssec_ok = 1
dns_retrans = 2s
dns_retry = 2
log_selector = +outgoing_port +tls_peerdn +tls_certificate_verified +deliver_time
tls_require_ciphers = NORMAL

begin routers

# probe-HOST@domain: to HOST only (one MX host of a domain), by the transport's own lookups
direct:
  driver = accept
  local_parts = ^probe-
  transport = direct_smtp

dnslookup:
  driver = dnslookup
  transport = remote_smtp
  # the MX and address lookups must be DNSSEC-requested for DANE to apply
  dnssec_request_domains = *
  # the world's MX hosts live on loopback addresses, which Exim may count as its own
  self = send
  no_more

begin transports

remote_smtp:
  driver = smtp
  port = {port}
  {dane_option} = *
  connect_timeout = 5s
  command_timeout = 10s
  data_timeout = 10s
  final_timeout = 10s
{extra}
direct_smtp:
  driver = smtp
  # a lookup's result, not the (tainted) local part itself
  hosts = ${{lookup{{$local_part}}lsearch{{{dir}/direct}}}}
  hosts_override
  dnssec_request_domains = *
  port = {port}
  {dane_option} = *
  connect_timeout = 5s
  command_timeout = 10s
  data_timeout = 10s
  final_timeout = 10s
{extra}
begin retry

* * F,1h,1h
"""

# "=> rcpt R=... T=... H=host [addr]:port X=... CV=dane ..." (delivered) / "== rcpt ... defer
# (errno): reason" (deferred) / "** rcpt ...: reason" (bounced)
# (a routing failure puts a colon after the address: "** rcpt: all relevant MX records ...")
_EXIM_LINE = re.compile(r" (?P<flag>=>|==|\*\*) (?P<rcpt>\S+?):? (?P<rest>.*)$")


class EximSender:
    """An Exim test instance (its own config file, spool and logs): each message is
    submitted with ``exim -C CONF -odi`` (delivered in the foreground, one attempt).
    ``require_dane``: ``hosts_require_dane = *`` (DANE mandatory: a host without usable
    secure TLSA fails); otherwise ``hosts_try_dane = *`` (DANE where TLSA is published, as
    RFC 7672 and Postfix's "dane" level). ``direct``: hosts that mail to
    ``probe-HOST@anydomain`` goes to without an MX lookup."""

    def __init__(
        self,
        resolver: str,
        port: int,
        *,
        require_dane: bool = True,
        extra: str = "",
        direct: tuple[str, ...] = (),
    ) -> None:
        binary = exim_binary()
        assert binary is not None
        self.binary = binary
        self._tmp = tempfile.TemporaryDirectory(prefix="dane-sender-exim-")
        self.directory = d = Path(self._tmp.name)
        exim = pwd.getpwnam(EXIM_USER)
        os.chmod(d, 0o755)
        for sub in ("spool", "log"):
            (d / sub).mkdir()
            os.chown(d / sub, exim.pw_uid, exim.pw_gid)
            os.chmod(d / sub, 0o750)
        (d / "direct").write_text("".join(f"probe-{host}: {host}\n" for host in direct))
        self.config = d / "exim.conf"
        self.config.write_text(
            EXIM_CONF.format(
                dir=d,
                port=port,
                binary=binary,
                dane_option="hosts_require_dane" if require_dane else "hosts_try_dane",
                extra=extra,
            )
        )
        self.resolv = _resolv_conf(d, resolver)

    def version(self) -> str:
        p = subprocess.run(
            [self.binary, "-C", str(self.config), "-bV"], capture_output=True, text=True, timeout=30
        )
        return p.stdout.splitlines()[0] if p.stdout else p.stderr

    def log(self) -> str:
        path = self.directory / "log" / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliver(self, rcpt: str, timeout: float = 120) -> Outcome:
        command = [self.binary, "-C", str(self.config), "-odi", "-oi", "-f",
                   "sender@sender.test", rcpt]  # fmt: skip
        p = subprocess.run(
            _in_namespace(self.resolv, command),
            input=MESSAGE.format(rcpt=rcpt),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        log = self.log()
        lines = [line for line in log.splitlines() if f" {rcpt}" in line or rcpt in line]
        for line in lines:
            m = _EXIM_LINE.search(line)
            if m and m["rcpt"] == rcpt:
                status = {"=>": "delivered", "==": "deferred", "**": "bounced"}[m["flag"]]
                cv = re.search(r" (CV=\w+)", m["rest"])
                tls = cv[1] if cv else ("TLS" if " X=" in m["rest"] else "plain")
                return Outcome(status, tls, m["rest"], "\n".join(lines))
        raise AssertionError(
            f"Exim logged no outcome for {rcpt} (exit {p.returncode}): {p.stdout}{p.stderr}\n"
            f"{log[-4000:]}\n{self._paniclog()}"
        )

    def _paniclog(self) -> str:
        path = self.directory / "log" / "paniclog"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        self._tmp.cleanup()


#: A Postfix that follows RFC 7672 §2.2.1 under an insecure MX RRset: the host's TLSA is not
#: looked at, TLS is opportunistic (Postfix >= 3.6; its default at level dane is "dane").
POSTFIX_MAY = "smtp_tls_dane_insecure_mx_policy = may\n"
#: A Postfix that negotiates RSA: TLS 1.2 at most (TLS 1.3 picks the server's certificate by
#: signature algorithm, not cipher suite) and only cipher suites with RSA authentication at
#: the "medium" grade level dane uses (as :data:`mta.RSA_ONLY` for posttls-finger).
POSTFIX_RSA = "smtp_tls_mandatory_protocols = <=TLSv1.2\ntls_medium_cipherlist = aRSA\n"
#: An Exim that negotiates RSA: ``dane_require_tls_ciphers`` (the GnuTLS priority string
#: used on DANE connections) without TLS 1.3 and without ECDSA key exchanges.
EXIM_RSA = "  dane_require_tls_ciphers = NORMAL:-VERS-TLS1.3:-ECDHE-ECDSA\n"


# -- a validator that refuses SHA-1 ---------------------------------------------------------


class Named:
    """BIND's named as a validating resolver on port 53 of ``address`` (a loopback address
    whose port 53 is free), forwarding to the world's primary, with ``anchors``
    (``trust-anchors { ... };``) and the ``options`` statements in ``policy``."""

    def __init__(
        self, address: str, upstream: tuple[str, int], anchors: str, policy: str = ""
    ) -> None:
        named = shutil.which("named", path=SBIN_PATH)
        if named is None:
            raise RuntimeError("named (bind9) is not installed")
        self.host = address
        self.lock: IO[str] | None = None  # released when named has stopped
        self._tmp = tempfile.TemporaryDirectory(prefix="dane-sender-named-")
        d = Path(self._tmp.name)
        conf = d / "named.conf"
        conf.write_text(
            NAMED_RESOLVER_CONF.format(
                dir=d,
                address=address,
                port=53,
                upstream_host=upstream[0],
                upstream_port=upstream[1],
                policy=policy,
                anchors=anchors,
            )
        )
        self._log_path = d / "named.log"
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [named, "-g", "-4", "-c", str(conf)], stdout=self._log, stderr=self._log
        )

    def wait_ready(self, timeout: float = 30) -> None:
        import dns.message
        import dns.query

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited: {self._log_path.read_text()[-2000:]}")
            query = dns.message.make_query("version.bind.", "TXT", "CH")
            with contextlib.suppress(OSError, dns.exception.Timeout):
                dns.query.udp(query, self.host, port=53, timeout=0.5)
                return
            time.sleep(0.05)  # poll interval while named starts
        raise RuntimeError(f"named did not answer: {self._log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        self._tmp.cleanup()
        if self.lock is not None:
            self.lock.close()
            self.lock = None


#: named only listens on addresses of an interface: of the loopback addresses, 127.0.0.1.
#: Concurrent runs (xdist workers) take turns through this lock file.
NAMED_LOCK = Path(tempfile.gettempdir()) / "dane-monitor-named-127.0.0.1-53.lock"


def start_named_on_port_53(
    upstream: tuple[str, int], anchors: str, policy: str = "", lock_timeout: float = 600
) -> Named:
    """A :class:`Named` on 127.0.0.1 port 53 (glibc's resolv.conf cannot name a port, and
    named does not bind addresses no interface has, such as 127.0.154.1), once no other
    run of this harness holds it."""
    import fcntl

    from dane_monitor.world.unbound import port53_free

    lock = open(NAMED_LOCK, "a")  # noqa: SIM115 - held by the Named, closed in its stop()
    deadline = time.monotonic() + lock_timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise RuntimeError(f"{NAMED_LOCK} still held after {lock_timeout} s") from None
            time.sleep(0.1)  # poll interval while another run holds the lock
    try:
        if not port53_free("127.0.0.1"):
            raise RuntimeError("port 53 of 127.0.0.1 is taken")
        named = Named("127.0.0.1", upstream, anchors, policy)
        named.lock = lock
        try:
            named.wait_ready()
        except BaseException:
            named.stop()
            raise
        return named
    except BaseException:
        lock.close()
        raise


def postfix_version() -> str:
    p = subprocess.run(
        ["postconf", "-d", "-h", "mail_version"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PATH": SBIN_PATH},
    )
    return p.stdout.strip()
