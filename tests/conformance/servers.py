"""Real authoritative DNS servers from Debian, each serving small signed mail zones on
127.0.0.1 and a free port, from a temporary directory of its own.

They deny existence in ways our own signer (``dane_monitor.world.zones``) does not:

=========================  ================  ===============================================
zone                       server            how it signs and denies
=========================  ================  ===============================================
``knot.example.``          Knot DNS          ``mod-onlinesign``: signs each answer as it
                                             goes; a name that does not exist gets NOERROR
                                             and an NSEC *at the query name* whose bitmap
                                             lacks the type ("black lies")
``knot-signed.example.``   Knot DNS          automatic signing on load, NSEC
``knot-nsec3.example.``    Knot DNS          automatic signing on load, NSEC3
``pdns.example.``          PowerDNS (bind    NSEC3 in narrow mode: each NSEC3 covers only
                           backend)          hash-1 .. hash+1 of the name it denies
                                             ("white lies")
``pdns-nsec.example.``     PowerDNS          NSEC, signed as answers go out
``pdns-nodname.example.``  PowerDNS as       narrow NSEC3, ``dname-processing`` off: names
                           installed         below the DNAME get a bogus NXDOMAIN
``bind.example.``          BIND              inline signing with ``dnssec-policy``, NSEC3
``bind-nsec.example.``     BIND              inline signing with ``dnssec-policy``, NSEC
``bigkey.example.``        BIND              pre-signed by ``dnssec-signzone`` with three
                                             RSA-4096 keys: the DNSKEY RRset does not fit
                                             1232 bytes (TC over UDP, then TCP)
=========================  ================  ===============================================

Every zone holds the same records (``ZONE``): MX, A, AAAA, a TLSA at ``_25._tcp.mail``,
a name with only an A record, a CNAME and a dangling one, a TXT wildcard, a wildcard TLSA
(``*._tcp.mx2``) and a DNAME with data below its target.
``QUESTIONS`` lists what is asked of each zone and what the RFCs expect; the live test
(``test_servers_live.py``) and the recorder (``record_servers.py``) share it.

Nothing here needs root; the servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdatatype
import dns.rrset

from dane_monitor.lookup.anchors import TrustAnchors
from dane_monitor.lookup.answer import Answer
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator
from dane_monitor.world.unbound import _free_port as free_port
from dane_monitor.world.unbound import identity_of
from dane_monitor.world.zones import _bind_anchor_text

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
HOST = "127.0.0.1"
TLSA_HEX = "0f" * 32

ZONE = """\
$TTL 300
@               SOA     ns hostmaster 1 3600 900 604800 300
@               NS      ns
ns              A       127.0.0.53
@               MX      10 mail
mail            A       127.0.0.25
mail            AAAA    ::1
_25._tcp.mail   TLSA    3 1 1 {tlsa}
ok              A       127.0.0.26
alias           CNAME   mail
dangling        CNAME   gone
*.wild          TXT     "wildcard"
mx2             A       127.0.0.28
*._tcp.mx2      TLSA    3 1 1 {tlsa}
dname           DNAME   target
mail.target     A       127.0.0.27
_25._tcp.mail.target TLSA 3 1 1 {tlsa}
"""


def zone_text(origin: str) -> str:
    return f"$ORIGIN {origin}\n" + ZONE.format(tlsa=TLSA_HEX)


def which(tool: str) -> str | None:
    return shutil.which(tool, path=SBIN)


# -- what is asked, and what the RFCs expect -----------------------------------------------


@dataclass(frozen=True)
class Question:
    """One question asked of every zone (``{z}`` is the zone's origin)."""

    slug: str  # part of the case id
    name: str
    rdtype: str
    status: str  # secure | insecure | bogus | indeterminate
    kind: str | None  # positive | nxdomain | nodata | error; None: not checked (bogus)
    delv: str  # delv's verdict (tests/test_world_delv.py's vocabulary)
    what: str  # one line for the case summary
    rfc: tuple[str, ...] = ("RFC 4035 §5",)

    def qname(self, zone: str) -> str:
        return self.name.format(z=zone)

    @property
    def expected(self) -> str:
        return self.status if self.kind is None else f"{self.status} {self.kind}"

    def outcome(self, answer: Answer) -> str:
        """``answer`` in the words of :attr:`expected` (its kind left out when unchecked)."""
        if self.kind is None:
            return answer.status.value
        return f"{answer.status.value} {answer.kind.value}"


def _q(slug, name, rdtype, kind, delv, what, *rfc) -> Question:
    return Question(slug, name, rdtype, "secure", kind, delv, what, rfc or ("RFC 4035 §5",))


QUESTIONS: tuple[Question, ...] = (
    _q("mx", "{z}", "MX", "positive", "valid", "the zone's MX RRset"),
    _q("mail-a", "mail.{z}", "A", "positive", "valid", "the MX host's A RRset"),
    _q("mail-aaaa", "mail.{z}", "AAAA", "positive", "valid", "the MX host's AAAA RRset"),
    _q("tlsa", "_25._tcp.mail.{z}", "TLSA", "positive", "valid", "the MX host's TLSA RRset"),
    _q("dnskey", "{z}", "DNSKEY", "positive", "valid", "the zone's DNSKEY RRset"),
    _q("cname", "alias.{z}", "A", "positive", "valid", "A through an in-zone CNAME"),
    _q(
        "cname-nxdomain", "dangling.{z}", "A", "nxdomain", "nxdomain",
        "a CNAME whose target does not exist", "RFC 4035 §5.4", "RFC 6604",
    ),
    _q(
        "nxdomain-a", "nothere.{z}", "A", "nxdomain", "nxdomain",
        "a name that does not exist", "RFC 4035 §5.4", "RFC 5155 §8.4",
    ),
    _q(
        "nxdomain-tlsa", "_25._tcp.nothere.{z}", "TLSA", "nxdomain", "nxdomain",
        "TLSA below a name that does not exist", "RFC 4035 §5.4", "RFC 5155 §8.4",
    ),
    _q(
        "nodata-tlsa", "ok.{z}", "TLSA", "nodata", "nodata",
        "TLSA at a name that has only an A record", "RFC 4035 §5.4", "RFC 5155 §8.5",
    ),
    _q(
        "nodata-ent", "_tcp.mail.{z}", "TLSA", "nodata", "nodata",
        "an empty non-terminal", "RFC 4035 §5.4", "RFC 5155 §8.5",
    ),
    _q(
        "nodata-apex", "{z}", "TLSA", "nodata", "nodata",
        "a type the zone apex lacks", "RFC 4035 §5.4", "RFC 5155 §8.5",
    ),
    _q(
        "wildcard", "a.wild.{z}", "TXT", "positive", "valid",
        "a wildcard expansion", "RFC 4035 §5.3.4", "RFC 4592", "RFC 5155 §8.8",
    ),
    _q(
        "wildcard-nodata", "a.wild.{z}", "A", "nodata", "nodata",
        "wildcard NODATA", "RFC 4035 §3.1.3.4", "RFC 5155 §8.7",
    ),
    _q(
        "wildcard-tlsa", "_25._tcp.mx2.{z}", "TLSA", "positive", "valid",
        "a TLSA RRset from a wildcard (*._tcp.mx2)", "RFC 4592", "RFC 4035 §5.3.4",
    ),
    _q(
        "wildcard-deep-nodata", "_25._tcp.a.wild.{z}", "TLSA", "nodata", "nodata",
        "TLSA three labels below a wildcard that has only TXT", "RFC 4592 §2.2.1",
        "RFC 5155 §8.7",
    ),
    _q("dname", "dname.{z}", "DNAME", "positive", "valid", "the DNAME RRset itself", "RFC 6672"),
    _q(
        "dname-a", "mail.dname.{z}", "A", "positive", "valid",
        "A below a DNAME (synthesised CNAME)", "RFC 6672 §5.3",
    ),
    _q(
        "dname-tlsa", "_25._tcp.mail.dname.{z}", "TLSA", "positive", "valid",
        "TLSA below a DNAME (synthesised CNAME)", "RFC 6672 §5.3", "RFC 7672 §3.2.2",
    ),
    _q(
        "dname-nxdomain", "nothere.dname.{z}", "A", "nxdomain", "nxdomain",
        "a DNAME whose target does not exist", "RFC 6672 §5.3", "RFC 4035 §5.4",
    ),
)  # fmt: skip

BIGKEY_QUESTIONS = (
    "dnskey",
    "mx",
    "tlsa",
    "nxdomain-a",
    "nodata-tlsa",
    "wildcard",
    "wildcard-tlsa",
)


def no_dname_processing(q: Question) -> Question:
    """PowerDNS without ``dname-processing`` (its default) answers a name below a DNAME
    with NXDOMAIN, "proven" by the NSEC3 of the DNAME owner as closest encloser. An NSEC3
    with the DNAME bit set proves nothing about names below its owner: bogus."""
    return Question(
        q.slug, q.name, q.rdtype, "bogus", None, "bogus",
        q.what + ", answered NXDOMAIN by a server that does not process DNAME",
        (*q.rfc, "RFC 6840 §4.1"),
    )  # fmt: skip


def black_lie(q: Question) -> Question:
    """Knot's onlinesign answers a name that does not exist with NOERROR and an NSEC at the
    query name (bitmap: ``nsec-bitmap``, without the asked type): a proven NODATA. That is
    what a validator must conclude (and delv does); for DANE it means "no TLSA"."""
    if q.kind != "nxdomain":
        return q
    return Question(
        q.slug, q.name, q.rdtype, q.status, "nodata", "nodata",
        q.what + " (black lie: NODATA with an NSEC at the name)",
        (*q.rfc, "draft-ietf-dnsop-compact-denial-of-existence"),
    )  # fmt: skip


# -- the servers ---------------------------------------------------------------------------


class ServerError(RuntimeError):
    pass


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise ServerError(f"{cmd}: exit {p.returncode}: {p.stdout}{p.stderr}")
    return p.stdout.strip()


def ask(
    name: str, rdtype: str, port: int, *, tcp: bool = True, timeout: float = 2.0
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    if tcp:
        return dns.query.tcp(q, HOST, port=port, timeout=timeout)
    return dns.query.udp(q, HOST, port=port, timeout=timeout)


def signed(msg: dns.message.Message, name: str, rdtype: str) -> bool:
    """Whether ``msg`` answers with the RRset and an RRSIG over it."""
    owner = dns.name.from_text(name)
    t = dns.rdatatype.from_text(rdtype)
    have = {(r.name, r.rdtype, r.covers) for r in msg.answer}
    return (owner, t, 0) in have and (owner, dns.rdatatype.RRSIG, t) in have


@dataclass(frozen=True)
class Zone:
    origin: str
    server: str  # AuthServer.name
    denial: str  # "nsec" | "nsec3" | "black-lies" | "white-lies"
    style: str  # how it is signed (after the software name in case sources)
    case_prefix: str

    def questions(self) -> tuple[Question, ...]:
        qs = QUESTIONS
        if self.origin.startswith("bigkey."):
            qs = tuple(q for q in qs if q.slug in BIGKEY_QUESTIONS)
        if self.denial == "black-lies":
            qs = tuple(black_lie(q) for q in qs)
        if self.server == "pdns-nodname":
            qs = tuple(no_dname_processing(q) for q in qs if q.slug.startswith("dname-"))
        return qs


ZONES: tuple[Zone, ...] = (
    Zone(
        "knot.example.", "knot", "black-lies",
        "mod-onlinesign (online signing, NSEC black lies)", "knot-onlinesign",
    ),
    Zone(
        "knot-signed.example.", "knot", "nsec",
        "automatic signing, NSEC", "knot-nsec",
    ),
    Zone(
        "knot-nsec3.example.", "knot", "nsec3",
        "automatic signing, NSEC3", "knot-nsec3",
    ),
    Zone(
        "pdns.example.", "pdns", "white-lies",
        "bind backend, NSEC3 narrow mode (white lies)", "pdns-narrow",
    ),
    Zone(
        "pdns-nsec.example.", "pdns", "nsec",
        "bind backend, NSEC signed on the fly", "pdns-nsec",
    ),
    Zone(
        "pdns-nodname.example.", "pdns-nodname", "white-lies",
        "bind backend, NSEC3 narrow mode, dname-processing off (the default)", "pdns-nodname",
    ),
    Zone("bind.example.", "bind", "nsec3", "inline signing (dnssec-policy), NSEC3", "bind-nsec3"),
    Zone("bind-nsec.example.", "bind", "nsec", "inline signing (dnssec-policy), NSEC", "bind-nsec"),
    Zone(
        "bigkey.example.", "bind", "nsec",
        "zone pre-signed by dnssec-signzone, three RSA-4096 keys, NSEC", "bigkey",
    ),
)  # fmt: skip


class AuthServer:
    """One authoritative server process serving ``zones`` on 127.0.0.1:``port``."""

    name = ""  # Zone.server
    software = ""  # "Knot DNS", ...
    binaries: tuple[str, ...] = ()

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.zones = tuple(z for z in ZONES if z.server == self.name)
        self._log: IO[bytes] | None = None
        # what this process answers to id.server. CH TXT: readiness is our process serving,
        # never another run's server that took the port first (issue 13)
        self.identity = f"dane-{self.name}-{secrets.token_hex(6)}"

    # subclasses
    def prepare(self) -> None:
        """Write zone files, keys and anything else that does not depend on the port."""

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def zone_ready(self, zone: Zone) -> bool:
        """Signed the way it should be: the DNSKEY and the TLSA carry signatures, and
        negative answers use the intended denial."""
        origin = zone.origin
        if not signed(ask(origin, "DNSKEY", self.port), origin, "DNSKEY"):
            return False
        tlsa = f"_25._tcp.mail.{origin}"
        if not signed(ask(tlsa, "TLSA", self.port), tlsa, "TLSA"):
            return False
        neg = ask(f"nothere.{origin}", "A", self.port)
        types = {r.rdtype for r in neg.authority}
        want = dns.rdatatype.NSEC3 if zone.denial in ("nsec3", "white-lies") else dns.rdatatype.NSEC
        return want in types and dns.rdatatype.RRSIG in types

    # common
    @property
    def missing(self) -> list[str]:
        return [b for b in self.binaries if which(b) is None]

    def start(self, timeout: float = 90.0) -> None:
        self.prepare()
        for _ in range(5):
            port = free_port(HOST)
            self.identity = f"dane-{self.name}-{secrets.token_hex(6)}"
            log = self.dir / f"{self.name}.log"
            self._log = log.open("wb")  # this try only: a clash of an earlier one is over
            self.process = subprocess.Popen(
                self.command(port), cwd=self.dir, stdout=self._log, stderr=subprocess.STDOUT
            )
            self.port = port
            if self._wait_ready(timeout):
                return
            clash = self.process.poll() is not None or self._port_clash()
            self.stop()
            if not clash:  # it ran but never served the zones: another port will not help
                break
        raise ServerError(f"{self.software} did not serve its zones: {self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            with contextlib.suppress(Exception):
                if identity_of(HOST, self.port, timeout=1) == self.identity and all(
                    self.zone_ready(z) for z in self.zones
                ):
                    return self.process.poll() is None
            if self._port_clash():  # taken between free_port() and the server's bind()
                return False
            time.sleep(0.1)
        return False

    def _port_clash(self) -> bool:
        return "in use" in self.log_tail(200).lower()

    def log_tail(self, lines: int = 30) -> str:
        log = self.dir / f"{self.name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def ds(self, origin: str) -> list[dns.rdata.Rdata]:
        """DS (SHA-256) of the zone's served secure-entry-point keys."""
        msg = ask(origin, "DNSKEY", self.port)
        keys = msg.find_rrset(msg.answer, dns.name.from_text(origin), 1, dns.rdatatype.DNSKEY)
        return [dns.dnssec.make_ds(origin, k, "SHA256") for k in keys if k.flags & 1]

    def anchor_text(self, origin: str) -> str:
        """The trust anchor in Unbound's trust-anchor-file format (our ``--trust-anchor``)."""
        return "".join(f"{origin} 3600 IN DS {ds.to_text()}\n" for ds in self.ds(origin))

    def delv_anchor_text(self, origin: str) -> str:
        """The same anchor as BIND's ``trust-anchors`` clause (for ``delv -a``)."""
        return _bind_anchor_text(dns.name.from_text(origin), self.ds(origin), (), "ds")

    def source(self, zone: Zone) -> str:
        return f"recorded: {self.version()} {zone.style}"


# -- Knot DNS ------------------------------------------------------------------------------

KNOT_CONF = """\
server:
    rundir: "{dir}"
    listen: {host}@{port}
    identity: "{identity}"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{dir}/db"
control:
    listen: "{dir}/knot.sock"
log:
  - target: stderr
    any: info
policy:
  - id: ecdsa
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    rrsig-lifetime: 3650d
    rrsig-refresh: 7d
  - id: ecdsa-nsec3
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    rrsig-lifetime: 3650d
    rrsig-refresh: 7d
    nsec3: on
    nsec3-iterations: 0
    nsec3-salt-length: 0
mod-onlinesign:
  - id: blacklies
    policy: ecdsa
template:
  - id: default
    storage: "{dir}"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: knot.example.
    file: knot.example.zone
    module: mod-onlinesign/blacklies
  - domain: knot-signed.example.
    file: knot-signed.example.zone
    dnssec-signing: on
    dnssec-policy: ecdsa
  - domain: knot-nsec3.example.
    file: knot-nsec3.example.zone
    dnssec-signing: on
    dnssec-policy: ecdsa-nsec3
"""


class Knot(AuthServer):
    name = "knot"
    software = "Knot DNS"
    binaries = ("knotd",)

    def prepare(self) -> None:
        (self.dir / "db").mkdir(exist_ok=True)
        for z in self.zones:
            (self.dir / f"{z.origin}zone").write_text(zone_text(z.origin))

    def command(self, port: int) -> list[str]:
        conf = self.dir / "knot.conf"
        conf.write_text(
            KNOT_CONF.format(dir=self.dir, host=HOST, port=port, identity=self.identity)
        )
        return [which("knotd") or "knotd", "-c", str(conf)]

    def version(self) -> str:
        out = run([which("knotd") or "knotd", "-V"], self.dir)
        return "Knot DNS " + out.split("version", 1)[1].strip()


# -- PowerDNS ------------------------------------------------------------------------------

PDNS_CONF = """\
launch=bind
bind-config={dir}/named.conf
bind-dnssec-db={dir}/dnssec.db
local-address={host}
local-port={port}
socket-dir={dir}
daemon=no
guardian=no
disable-syslog=yes
write-pid=no
setuid=
setgid=
webserver=no
api=no
primary=no
secondary=no
receiver-threads=1
distributor-threads=1
signing-threads=1
security-poll-suffix=
loglevel=4
default-ksk-algorithm=ecdsa256
# DNAME synthesis is off by default in 4.7 (names below a DNAME then get NXDOMAIN)
dname-processing=yes
server-id={identity}
"""


class PowerDNS(AuthServer):
    name = "pdns"
    software = "PowerDNS"
    binaries = ("pdns_server", "pdnsutil")

    def _conf(self, port: int) -> None:
        text = PDNS_CONF.format(dir=self.dir, host=HOST, port=port, identity=self.identity)
        (self.dir / "pdns.conf").write_text(text)

    def prepare(self) -> None:
        self._conf(0)
        stanzas = []
        for z in self.zones:
            (self.dir / f"{z.origin}zone").write_text(zone_text(z.origin))
            stanzas.append(
                f'zone "{z.origin}" {{ type master; file "{self.dir}/{z.origin}zone"; }};'
            )
        (self.dir / "named.conf").write_text("\n".join(stanzas) + "\n")
        util = [which("pdnsutil") or "pdnsutil", f"--config-dir={self.dir}"]
        run([*util, "create-bind-db", str(self.dir / "dnssec.db")], self.dir)
        for z in self.zones:
            run([*util, "secure-zone", z.origin], self.dir)
            if z.denial == "white-lies":
                # NSEC3, no extra iterations, no salt (RFC 9276); "narrow": white lies
                run([*util, "set-nsec3", z.origin, "1 0 0 -", "narrow"], self.dir)
            run([*util, "rectify-zone", z.origin], self.dir)

    def command(self, port: int) -> list[str]:
        self._conf(port)
        return [which("pdns_server") or "pdns_server", f"--config-dir={self.dir}"]

    def version(self) -> str:
        p = subprocess.run(
            [which("pdns_server") or "pdns_server", "--version"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        out = p.stdout + p.stderr
        return "PowerDNS Authoritative Server " + out.split("Server", 1)[1].split()[0]


# -- BIND ----------------------------------------------------------------------------------

NAMED_CONF = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ {host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    server-id "{identity}";
    dnssec-validation no;
    notify no;
}};
controls {{ }};
dnssec-policy "ecdsa-nsec3" {{
    keys {{
        ksk key-directory lifetime unlimited algorithm ecdsap256sha256;
        zsk key-directory lifetime unlimited algorithm ecdsap256sha256;
    }};
    nsec3param iterations 0 optout no salt-length 0;
    signatures-validity 3650d;
    signatures-validity-dnskey 3650d;
}};
dnssec-policy "ecdsa-nsec" {{
    keys {{
        ksk key-directory lifetime unlimited algorithm ecdsap256sha256;
        zsk key-directory lifetime unlimited algorithm ecdsap256sha256;
    }};
    signatures-validity 3650d;
    signatures-validity-dnskey 3650d;
}};
zone "bind.example." {{
    type primary; file "bind.example.zone"; key-directory "{dir}/keys";
    dnssec-policy "ecdsa-nsec3"; inline-signing yes;
}};
zone "bind-nsec.example." {{
    type primary; file "bind-nsec.example.zone"; key-directory "{dir}/keys";
    dnssec-policy "ecdsa-nsec"; inline-signing yes;
}};
zone "bigkey.example." {{
    type primary; file "bigkey.example.zone.signed";
}};
"""


class Bind(AuthServer):
    name = "bind"
    software = "BIND"
    binaries = ("named", "dnssec-keygen", "dnssec-signzone")

    def prepare(self) -> None:
        (self.dir / "keys").mkdir(exist_ok=True)
        for z in self.zones:
            (self.dir / f"{z.origin}zone").write_text(zone_text(z.origin))
        self._sign_bigkey()

    def _sign_bigkey(self) -> None:
        """A KSK and two ZSKs (one active, one pre-published), RSA-4096 each."""
        origin = "bigkey.example."
        keys = self.dir / "bigkeys"
        keys.mkdir(exist_ok=True)
        gen = [which("dnssec-keygen") or "dnssec-keygen", "-q", "-a", "RSASHA256", "-b", "4096"]
        gen += ["-K", str(keys)]
        run([*gen, "-f", "KSK", origin], self.dir)
        run([*gen, origin], self.dir)
        run([*gen, "-A", "none", origin], self.dir)  # published, not yet signing
        zone = self.dir / f"{origin}zone"
        sign = [which("dnssec-signzone") or "dnssec-signzone", "-q", "-S", "-K", str(keys)]
        # Ten years of validity, so that delv (which runs at the present date) can still be
        # asked about the recorded answers long after recording.
        sign += ["-e", "+315360000", "-o", origin, "-f", f"{zone}.signed", str(zone)]
        run(sign, self.dir)

    def command(self, port: int) -> list[str]:
        conf = self.dir / "named.conf"
        conf.write_text(
            NAMED_CONF.format(dir=self.dir, host=HOST, port=port, identity=self.identity)
        )
        return [which("named") or "named", "-g", "-4", "-c", str(conf)]

    def version(self) -> str:
        out = run([which("named") or "named", "-v"], self.dir)
        return out.split("(")[0].strip()


class PowerDNSWithoutDNAME(PowerDNS):
    """PowerDNS as installed: ``dname-processing`` off."""

    name = "pdns-nodname"

    def _conf(self, port: int) -> None:
        text = PDNS_CONF.replace("dname-processing=yes", "dname-processing=no")
        text = text.format(dir=self.dir, host=HOST, port=port, identity=self.identity)
        (self.dir / "pdns.conf").write_text(text)


SERVERS: tuple[type[AuthServer], ...] = (Knot, PowerDNS, PowerDNSWithoutDNAME, Bind)


def run_delv(port: int, anchor: Path, root: str, name: str, rdtype: str) -> str:
    """BIND's delv against the server, validating from ``anchor`` (a ``trust-anchors``
    clause) at ``root``; its stdout and stderr (tests/test_world_delv.py's ``verdict`` reads
    them). One ``+root`` only: a second one makes delv 9.18 abort on a leak check at exit."""
    cmd = ["delv", f"@{HOST}", "-p", str(port), "-a", str(anchor), f"+root={root}", "-4"]
    p = subprocess.run(
        [*cmd, name, rdtype], capture_output=True, text=True, timeout=60, check=False
    )
    return p.stdout + p.stderr


def delv_verdict(out: str) -> str:
    """delv's output in tests/test_world_delv.py's vocabulary. A name below a DNAME whose
    target does not exist: delv prints the validated DNAME ("; fully validated") and then
    ";; resolution failed: ncache nxdomain" (or nxrrset) for the target; that is its
    NXDOMAIN (NODATA) verdict."""
    from test_world_delv import NODATA, NXDOMAIN, VALID, verdict

    v = verdict(out)
    if v == VALID and "resolution failed: ncache nxdomain" in out:
        return NXDOMAIN
    if v == VALID and "resolution failed: ncache nxrrset" in out:
        return NODATA
    return v


async def validate(
    port: int, anchors: TrustAnchors, name: str, rdtype: str, now: float | None = None
) -> Answer:
    """Our validator (a fresh one: nothing cached) against the server on ``port``."""
    clock = time.time if now is None else (lambda: now)
    validator = Validator(StubClient(Server(HOST, port)), anchors, now=clock)
    return await validator.lookup(name, rdtype)


def case_id(zone: Zone, q: Question) -> str:
    return f"{zone.case_prefix}-{q.slug}"


CASES: tuple[tuple[Zone, Question], ...] = tuple((z, q) for z in ZONES for q in z.questions())

SERVER_KINDS: dict[str, type[AuthServer]] = {k.name: k for k in SERVERS}


class Fleet:
    """The servers, each started on first use in its own directory below ``root``; the
    trust anchor of every zone (its served KSK's DS) for our validator and for delv."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, AuthServer] = {}
        self.errors: dict[str, str] = {}
        self._anchors: dict[str, tuple[TrustAnchors, Path]] = {}

    def missing(self, name: str) -> list[str]:
        return SERVER_KINDS[name](self.root).missing

    def get(self, name: str) -> AuthServer:
        if name in self.errors:  # failed once: do not try again for every test
            raise ServerError(self.errors[name])
        if name not in self.servers:
            directory = self.root / name
            directory.mkdir(parents=True, exist_ok=True)
            server = SERVER_KINDS[name](directory)
            try:
                server.start()
            except Exception as exc:
                self.errors[name] = f"{type(exc).__name__}: {exc}"
                raise
            self.servers[name] = server
        return self.servers[name]

    def anchors(self, zone: Zone) -> tuple[TrustAnchors, Path]:
        """(our anchors, delv's anchor file) for ``zone``."""
        if zone.origin not in self._anchors:
            from dane_monitor.lookup.anchors import parse

            server = self.get(zone.server)
            path = self.root / f"{zone.origin}delv-anchor.conf"
            path.write_text(server.delv_anchor_text(zone.origin))
            parsed = parse(server.anchor_text(zone.origin), source=f"{zone.origin} DS")
            self._anchors[zone.origin] = (parsed, path)
        return self._anchors[zone.origin]

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
