"""The scenario catalogue: named DANE situations with the verdict RFC 7672 demands for each.

A scenario is plain data: the mail domain's zone (signed or not, NSEC or NSEC3, faults), its
MX hosts, the servers behind each host's addresses (certificates and behaviours) and the
TLSA records published for each host. ``World`` turns the catalogue into zones and running
servers; the checker's tests iterate over it and compare their verdicts with ``expect``.

Verdicts use the shared vocabulary of DESIGN.md: ``valid``, ``failed``, ``bogus``,
``no-dane``, ``insecure``, ``no-mail``, ``error``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from dane_monitor.world.smtp import Behaviour
from dane_monitor.world.zones import NSEC3, Fault, KeyTrap

KeyType = Literal["ecdsa", "rsa"]
Verdict = Literal["valid", "failed", "bogus", "no-dane", "insecure", "no-mail", "error"]
SenderAction = Literal[
    "deliver-authenticated", "deliver-unauthenticated-tls", "deliver-opportunistic", "defer"
]

# What a TLSA record points at, relative to the chain(s) the host's first server presents.
#   leaf:         the served leaf certificate (usage 3)
#   intermediate: the CA that issued the served leaf (usage 2)
#   root:         the root CA above that intermediate (usage 2; not sent by the server)
#   unrelated:    a key no server of this host presents (a mismatch, or a stale/next key)
Target = Literal["leaf", "intermediate", "root", "unrelated"]


@dataclass(frozen=True)
class Cert:
    """A certificate chain a server presents."""

    key_type: KeyType = "ecdsa"
    # SAN names; None means the MX host name (and the TLSA base domain, when it differs).
    names: tuple[str, ...] | None = None
    self_signed: bool = False
    expired: bool = False
    # Servers of one host whose Cert is equal share one chain (one key, as IPv4 and IPv6
    # usually do); a different key_id makes a server present a key of its own.
    key_id: int = 0
    # ECDSA only: the leaf's public key encoded as a compressed point (another SPKI, and so
    # another ``x 1 x`` digest, than the same key uncompressed; RFC 6698 §1.1.2 hashes the
    # bytes as served).
    compressed: bool = False
    # The server sends the root CA certificate too (leaf, intermediate, root); by default it
    # sends leaf and intermediate only.
    send_root: bool = False


@dataclass(frozen=True)
class Server:
    """One SMTP server, listening on one address of an MX host."""

    certs: tuple[Cert, ...] = (Cert(),)
    behaviours: frozenset[Behaviour] = frozenset()
    # Listen on ::1 (an AAAA record) instead of a 127.0.0.0/8 address; loopback has only one
    # IPv6 address, so a world can hold one such server.
    ipv6: bool = False
    # A literal address published (A or AAAA) instead of a loopback one; nothing listens
    # there. For an address the checking host cannot reach, e.g. 2001:db8::25 where it has no
    # IPv6 route: only in a private network namespace (see NO_ROUTE), never where packets to
    # it could leave the machine.
    address: str | None = None


@dataclass(frozen=True)
class Record:
    """A TLSA record, described by what it should match rather than by its digest."""

    usage: int = 3
    selector: int = 1
    mtype: int = 1
    target: Target = "leaf"
    # Which served chain the target is taken from (0: the first, e.g. ECDSA; 1: the second).
    chain: int = 0
    # A literal RDATA overrides the computed one (malformed or deliberately odd records).
    rdata: str | None = None


#: Where a name lives: "domain" is the mail domain's own zone; "hosting" a shared signed zone
#: (hosting.<tld>); "unsigned" a shared zone delegated without DS (unsigned.<tld>), so
#: everything in it is insecure. Names in shared zones are under <scenario>.<zone>.
Placement = Literal["domain", "hosting", "unsigned"]


@dataclass(frozen=True)
class Host:
    """An MX host: its name, the servers on its addresses and its TLSA RRset."""

    name: str  # relative to the mail domain ("mx1") or absolute ("mx.other.example.")
    servers: tuple[Server, ...] = (Server(),)
    tlsa: tuple[Record, ...] = (Record(),)
    preference: int = 10
    # The MX record names ``alias``; ``alias`` is a CNAME to ``name`` (RFC 7672 §2.2.3).
    alias: str | None = None
    # Where the host (its addresses and ``tlsa``) lives; None: as ``Scenario.host_zone``.
    zone: Placement | None = None
    # Where the alias (the CNAME) lives, and TLSA records published at the alias itself
    # (the original, unexpanded name: ``_25._tcp.<alias>``).
    alias_zone: Placement = "domain"
    alias_tlsa: tuple[Record, ...] = ()
    # The MX record names ``<name>.<dname>``, and ``dname`` (in the mail domain's zone) is a
    # DNAME to where the host lives (RFC 6672): the name is reached by substitution.
    dname: str | None = None


#: How a secondary name server answers (see dane_monitor.world.zones.NSBehaviour): "serve"
#: its copy of the zone; "refused" (lame: REFUSED); "not-authoritative" (lame: no AA bit);
#: "silent" (up, drops every query); "down" (nothing listens at its address).
NSBehaviourName = Literal["serve", "refused", "not-authoritative", "silent", "down"]


@dataclass(frozen=True)
class NameServer:
    """A secondary name server of the mail domain's zone: ``ns2.<domain>``, ``ns3.``, … in
    the order given, each on its own loopback address (``World(ns_network=...)``), listed in
    the zone's NS RRset and in the parent's delegation with glue, and listening on the port of
    the world's primary DNS server. Its copy of the zone is the primary's unless changed here;
    the primary (``ns1``, the world's DNS server) always serves the scenario as written, and
    the world's resolvers (Unbound, delv, the checker's stub mode) ask only the primary.
    """

    behaviour: NSBehaviourName = "serve"
    # Seconds: a stale copy, signed this long ago (older SOA serial; RRSIGs with older
    # inception and expiration, still valid while age < the zone's 14-day signature lifetime).
    age: int = 0
    # Seconds from signing to expiration of this copy's RRSIGs (None: 14 days, as the primary).
    sig_lifetime: int | None = None
    # (host name as in Host.name, TLSA records): the TLSA RRset this server serves for that
    # host instead (e.g. the record for the key before a rollover; () serves none).
    tlsa: tuple[tuple[str, tuple[Record, ...]], ...] = ()
    # (name relative to the domain, rdtype, rdatas): an RRset this server serves instead
    # (an older MX or A RRset); no rdatas: the RRset is absent from this copy.
    records: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # Faults of this copy only: (fault, name relative to the domain or None, rdtype or None).
    faults: tuple[tuple[Fault, str | None, str | None], ...] = ()


@dataclass(frozen=True)
class HostExpect:
    """What a DANE-enforcing sender does with one MX host."""

    verdict: Verdict
    # Whether the TLSA RRset authenticates the host's servers; None when no usable TLSA
    # applies (no DANE, insecure, bogus, no STARTTLS to authenticate).
    authenticates: bool | None
    sender_action: SenderAction


@dataclass(frozen=True)
class Expect:
    verdict: Verdict
    # Host name (as in ``Host.name``) → expectation.
    hosts: dict[str, HostExpect] = field(default_factory=dict)
    # Finding codes the checker must report (a subset: it may report more).
    findings: frozenset[str] = frozenset()
    # `dane-monitor check`'s exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); None: not
    # asserted (the verdict's usual code applies).
    exit_code: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str  # also the mail domain's first label: <name>.<tld>
    summary: str
    hosts: tuple[Host, ...] = (Host("mx1"),)
    # "mx": MX records name the hosts; "implicit": no MX, the domain itself is the host
    # (RFC 7672 §2.2.2; its single host must be named "@"); "null": RFC 7505 null MX.
    mx: Literal["mx", "implicit", "null"] = "mx"
    signed: bool = True
    # True: the parent publishes no DS (insecure delegation), whether or not the zone is signed.
    insecure_delegation: bool = False
    denial: object | None = None  # None: NSEC; or an NSEC3(...) instance
    # (fault, name relative to the domain or None for the whole zone, rdtype or None).
    faults: tuple[tuple[Fault, str | None, str | None], ...] = ()
    # "domain": MX hosts live in the mail domain's zone; "hosting": in a shared signed zone
    # (hosting.<tld>), as with a mail provider's hosts, so the domain's own zone can differ.
    host_zone: Literal["domain", "hosting"] = "domain"
    expect: Expect = field(default_factory=lambda: Expect("valid"))
    # The domain zone's DNSSEC algorithm (None: the world's default, ECDSA P-256).
    algorithm: int | None = None
    # Attacks on validators' CPU (zone options, see dane_monitor.world.zones): KeyTrap-style
    # key-tag collisions and RRSIG floods; NSEC3 records carried by every negative answer.
    keytrap: KeyTrap | None = None
    nsec3_flood: int = 0
    # Secondary name servers of the mail domain's zone, besides the primary (see NameServer).
    nameservers: tuple[NameServer, ...] = ()
    # More RRsets in the mail domain's zone: (name relative to the domain, rdtype, rdatas in
    # zone-file syntax), e.g. ("_smtp._tls", "TXT", ('"v=TLSRPTv1; rua=mailto:r@x.example"',)).
    records: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


def _ok(*hosts: str) -> dict[str, HostExpect]:
    return {h: HostExpect("valid", True, "deliver-authenticated") for h in hosts}


_DEFER_MISMATCH = HostExpect("failed", False, "defer")

CATALOGUE: tuple[Scenario, ...] = (
    Scenario(
        "good-ee",
        "DANE-EE 3 1 1 record for the served key",
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "good-ta",
        "DANE-TA 2 1 1 record for the issuing intermediate; leaf names the MX host",
        hosts=(Host("mx1", tlsa=(Record(2, 1, 1, "intermediate"),)),),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "ta-root-full",
        "DANE-TA 2 0 0 record carrying the root certificate, which the server does not send",
        hosts=(Host("mx1", tlsa=(Record(2, 0, 0, "root"),)),),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "ta-name-mismatch",
        "DANE-TA 2 1 1 matches the intermediate, but the leaf names another host",
        hosts=(
            Host(
                "mx1",
                servers=(Server(certs=(Cert(names=("other.example",)),)),),
                tlsa=(Record(2, 1, 1, "intermediate"),),
            ),
        ),
        expect=Expect("failed", {"mx1": _DEFER_MISMATCH}, frozenset({"ta-name-mismatch"})),
    ),
    Scenario(
        "ee-name-mismatch",
        "DANE-EE 3 1 1 matches a leaf that names another host: names do not matter for EE",
        hosts=(Host("mx1", servers=(Server(certs=(Cert(names=("other.example",)),)),)),),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "ee-expired-cert",
        "DANE-EE 3 1 1 matches an expired leaf: dates do not matter for EE (a warning)",
        hosts=(Host("mx1", servers=(Server(certs=(Cert(expired=True),)),)),),
        expect=Expect("valid", _ok("mx1"), frozenset({"cert-expiring"})),
    ),
    Scenario(
        "ee-self-signed",
        "DANE-EE 3 1 1 for a self-signed certificate",
        hosts=(Host("mx1", servers=(Server(certs=(Cert(self_signed=True),)),)),),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "tlsa-mismatch",
        "the only TLSA record is for a key the server does not present",
        hosts=(Host("mx1", tlsa=(Record(3, 1, 1, "unrelated"),)),),
        expect=Expect("failed", {"mx1": _DEFER_MISMATCH}, frozenset({"tlsa-mismatch"})),
    ),
    Scenario(
        "rollover",
        "records for the current key and for a key not served (stale or next): still valid",
        hosts=(Host("mx1", tlsa=(Record(3, 1, 1, "leaf"), Record(3, 1, 1, "unrelated"))),),
        expect=Expect("valid", _ok("mx1"), frozenset({"tlsa-stale-record"})),
    ),
    Scenario(
        "digest-agility",
        "a right SHA-256 record beside a wrong SHA-512 one: senders use only SHA-512 (RFC 7671 §9)",
        hosts=(
            Host(
                "mx1",
                tlsa=(Record(3, 1, 1, "leaf"), Record(3, 1, 2, "unrelated")),
            ),
        ),
        expect=Expect("failed", {"mx1": _DEFER_MISMATCH}, frozenset({"tlsa-mismatch"})),
    ),
    Scenario(
        "no-tlsa",
        "signed domain and MX host, but no TLSA record",
        hosts=(Host("mx1", tlsa=()),),
        expect=Expect("no-dane", {"mx1": HostExpect("no-dane", None, "deliver-opportunistic")}),
    ),
    Scenario(
        "unusable-only",
        "only PKIX-TA/PKIX-EE (usage 0/1) records: TLS mandatory but unauthenticated",
        hosts=(Host("mx1", tlsa=(Record(1, 1, 1, "leaf"), Record(0, 1, 1, "intermediate"))),),
        expect=Expect(
            "no-dane",
            {"mx1": HostExpect("no-dane", None, "deliver-unauthenticated-tls")},
            frozenset({"tlsa-usage-pkix"}),
        ),
    ),
    Scenario(
        "insecure-with-tlsa",
        "TLSA records published in a zone with an insecure delegation: DANE cannot apply",
        signed=False,
        insecure_delegation=True,
        expect=Expect("insecure", {"mx1": HostExpect("insecure", None, "deliver-opportunistic")}),
    ),
    Scenario(
        "bogus-expired",
        "every signature of the domain's zone has expired",
        faults=((Fault.EXPIRED_RRSIG, None, None),),
        expect=Expect("bogus", {}, frozenset({"dnssec-bogus"})),
    ),
    Scenario(
        "bogus-signature",
        "the TLSA RRset's signature is corrupted",
        faults=((Fault.BAD_SIGNATURE, "_25._tcp.mx1", "TLSA"),),
        expect=Expect(
            "bogus",
            {"mx1": HostExpect("bogus", None, "defer")},
            frozenset({"dnssec-bogus"}),
        ),
    ),
    Scenario(
        "bogus-ds",
        "the parent's DS record matches no DNSKEY of the domain",
        faults=((Fault.DS_MISMATCH, None, None),),
        expect=Expect("bogus", {}, frozenset({"dnssec-bogus"})),
    ),
    Scenario(
        "no-starttls",
        "valid TLSA, but the server does not offer STARTTLS",
        hosts=(Host("mx1", servers=(Server(behaviours=frozenset({Behaviour.NO_STARTTLS})),)),),
        expect=Expect(
            "failed",
            {"mx1": HostExpect("failed", None, "defer")},
            frozenset({"starttls-missing"}),
        ),
    ),
    Scenario(
        "starttls-refused",
        "valid TLSA, STARTTLS offered but refused with 454",
        hosts=(Host("mx1", servers=(Server(behaviours=frozenset({Behaviour.STARTTLS_REFUSED})),)),),
        expect=Expect("failed", {"mx1": HostExpect("failed", None, "defer")}),
    ),
    Scenario(
        "postscreen",
        "multi-line 220- greeting and STARTTLS not the last EHLO keyword: still valid",
        hosts=(
            Host(
                "mx1",
                servers=(
                    Server(
                        behaviours=frozenset(
                            {Behaviour.MULTILINE_GREETING, Behaviour.STARTTLS_NOT_LAST}
                        )
                    ),
                ),
            ),
        ),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "cname-mx",
        "the MX record names an alias; the alias is a CNAME to the real host, whose "
        "name is the TLSA base domain (RFC 7672 §2.2.3)",
        hosts=(Host("real-mx", alias="mail"),),
        expect=Expect("valid", _ok("real-mx")),
    ),
    Scenario(
        "dname-mx",
        "the MX record names mail.dn.<domain>, and dn.<domain> is a DNAME into the hosting "
        "zone: the DNAME-expanded name is the TLSA base domain, as a CNAME-expanded one "
        "would be (RFC 6672, RFC 7672 §2.2.3)",
        hosts=(Host("mail", dname="dn"),),
        host_zone="hosting",
        expect=Expect("valid", _ok("mail")),
    ),
    Scenario(
        "null-mx",
        "null MX (RFC 7505): the domain accepts no mail",
        hosts=(),
        mx="null",
        expect=Expect("no-mail"),
    ),
    Scenario(
        "implicit-mx",
        "no MX record: the domain's own address and TLSA records apply (RFC 7672 §2.2.2)",
        hosts=(Host("@"),),
        mx="implicit",
        expect=Expect("valid", _ok("@")),
    ),
    Scenario(
        "nsec3",
        "DANE-EE in an NSEC3 zone (no TLSA at the second MX, proven by NSEC3)",
        hosts=(Host("mx1"), Host("mx2", tlsa=(), preference=20)),
        denial=NSEC3(),
        expect=Expect(
            "no-dane",
            {
                **_ok("mx1"),
                "mx2": HostExpect("no-dane", None, "deliver-opportunistic"),
            },
        ),
    ),
    Scenario(
        "nsec3-optout",
        "DANE-EE in an NSEC3 opt-out zone with salt and iterations",
        denial=NSEC3(iterations=5, salt=b"\xab\xcd", opt_out=True),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "two-mx-one-broken",
        "two MX hosts: the first authenticates, the second's TLSA does not match",
        hosts=(
            Host("mx1"),
            Host("mx2", tlsa=(Record(3, 1, 1, "unrelated"),), preference=20),
        ),
        expect=Expect(
            "failed", {**_ok("mx1"), "mx2": _DEFER_MISMATCH}, frozenset({"tlsa-mismatch"})
        ),
    ),
    Scenario(
        "dual-key-ecdsa-only",
        "the server has an ECDSA and an RSA certificate, TLSA covers only the ECDSA key: "
        "senders that negotiate RSA defer",
        hosts=(
            Host(
                "mx1",
                servers=(Server(certs=(Cert("ecdsa"), Cert("rsa"))),),
                tlsa=(Record(3, 1, 1, "leaf", chain=0),),
            ),
        ),
        expect=Expect("failed", {"mx1": _DEFER_MISMATCH}, frozenset({"tlsa-mismatch"})),
    ),
    Scenario(
        "dual-key-both",
        "an ECDSA and an RSA certificate, each with its own 3 1 1 record",
        hosts=(
            Host(
                "mx1",
                servers=(Server(certs=(Cert("ecdsa"), Cert("rsa"))),),
                tlsa=(Record(3, 1, 1, "leaf", chain=0), Record(3, 1, 1, "leaf", chain=1)),
            ),
        ),
        expect=Expect("valid", _ok("mx1")),
    ),
    Scenario(
        "endpoints-disagree",
        "one MX host, two addresses: the second serves a key the TLSA RRset does not cover",
        hosts=(
            Host(
                "mx1",
                servers=(Server(), Server(certs=(Cert(key_id=1),))),
            ),
        ),
        expect=Expect(
            "failed", {"mx1": _DEFER_MISMATCH}, frozenset({"tlsa-mismatch", "endpoints-disagree"})
        ),
    ),
)


def _hostile(name: str, behaviour: Behaviour, summary: str, code: str) -> Scenario:
    """A server-side failure where DANE applies: DANE senders defer, so the domain has
    failed (CRITICAL), whatever the server did wrong."""
    return Scenario(
        name,
        summary,
        hosts=(Host("mx1", servers=(Server(behaviours=frozenset({behaviour})),)),),
        expect=Expect(
            "failed",
            {"mx1": HostExpect("failed", None, "defer")},
            frozenset({code}),
            exit_code=2,
        ),
    )


CATALOGUE += (
    _hostile("hang", Behaviour.HANG_AFTER_CONNECT, "valid TLSA; the server accepts the "
             "connection and never greets", "smtp-error"),
    _hostile("huge-line", Behaviour.HUGE_LINE, "valid TLSA; the server's greeting is a 10 MB "
             "line without CRLF", "smtp-error"),
    _hostile("close-after-ehlo", Behaviour.CLOSE_AFTER_EHLO, "valid TLSA; the server hangs up "
             "after answering EHLO", "smtp-error"),
    _hostile("tls-failure", Behaviour.TLS_HANDSHAKE_FAILURE, "valid TLSA; STARTTLS is "
             "accepted, then the handshake fails with an alert", "tls-failed"),
    _hostile("reset", Behaviour.RESET_AFTER_ACCEPT, "valid TLSA; the server resets the "
             "connection (TCP RST) right after accepting it", "smtp-error"),
    _hostile("garbage-greeting", Behaviour.GARBAGE_GREETING, "valid TLSA; the server sends "
             "another protocol's banner instead of an SMTP greeting", "smtp-error"),
    _hostile("hang-after-ehlo", Behaviour.HANG_AFTER_EHLO, "valid TLSA; the server answers "
             "EHLO, offering STARTTLS, and then never answers STARTTLS", "smtp-error"),
    _hostile("starttls-garbage", Behaviour.STARTTLS_GARBAGE, "valid TLSA; the server answers "
             "STARTTLS with binary garbage", "smtp-error"),
    Scenario(
        "malformed-tlsa",
        "a good 3 1 1 record beside a truncated SHA-256 one and an unknown matching type",
        hosts=(Host("mx1", tlsa=(Record(), Record(rdata="3 1 1 abcdef"),
                                 Record(rdata="3 1 7 " + "00" * 32))),),
        expect=Expect("valid", _ok("mx1"), frozenset({"tlsa-unusable"})),
    ),
    Scenario(
        "insecure-mx-tlsa-ok",
        "unsigned mail domain whose MX host is in a signed zone with a matching TLSA record: "
        "RFC 7672 §2.2.1 says no DANE, Postfix (insecure MX policy 'dane') authenticates",
        signed=False,
        insecure_delegation=True,
        host_zone="hosting",
        expect=Expect("insecure", _ok("mx1"), frozenset({"mx-insecure"})),
    ),
    Scenario(
        "insecure-mx-tlsa-mismatch",
        "unsigned mail domain, MX host in a signed zone whose TLSA does not match: Postfix "
        "and other senders that enforce a secure host TLSA defer",
        signed=False,
        insecure_delegation=True,
        host_zone="hosting",
        hosts=(Host("mx1", tlsa=(Record(3, 1, 1, "unrelated"),)),),
        expect=Expect(
            "failed", {"mx1": _DEFER_MISMATCH}, frozenset({"mx-insecure", "tlsa-mismatch"})
        ),
    ),
    Scenario(
        "keytrap",
        "KeyTrap (CVE-2023-50387/50868): 200 RSA DNSKEYs share the ZSK's key tag, the TLSA "
        "RRset has 200 RRSIGs with that tag and the DNSKEY RRset as many as fit, negative "
        "answers carry 120 NSEC3 records at 50 iterations; the real signatures come last. "
        "A validator must give up (bogus, validation-budget) instead of trying them all",
        algorithm=8,  # RSASHA256
        denial=NSEC3(iterations=50),
        keytrap=KeyTrap(),
        nsec3_flood=120,
        expect=Expect("bogus", {}, frozenset({"dnssec-bogus"})),
    ),
    Scenario(
        "ec-compressed",
        "DANE-EE 3 1 1 for an ECDSA leaf whose public key is encoded as a compressed point: "
        "the record hashes the SubjectPublicKeyInfo as served (RFC 6698 §1.1.2)",
        hosts=(Host("mx1", servers=(Server(certs=(Cert(compressed=True),)),)),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "cname-hosted",
        "the MX record names mail.<domain>, a CNAME into the signed hosting zone where the "
        "host's addresses and TLSA records are (the expanded name is the TLSA base domain, "
        "RFC 7672 §2.2.3); `preflight --mx mail.<domain>` must find that TLSA RRset",
        hosts=(Host("mx", alias="mail", zone="hosting"),),
        expect=Expect("valid", _ok("mx"), exit_code=0),
    ),
    Scenario(
        "xn--bcher-kva",
        "an internationalized mail domain (bücher): names go through IDNA, not rejected",
        expect=Expect("valid", _ok("mx1")),
    ),
)  # fmt: skip


def _cname_case(cname: str, target: str, at: str, matches: bool) -> Scenario:
    """One cell of the CNAME matrix: the MX record names mail.<domain> (a CNAME, secure in
    the signed mail domain or insecure in the unsigned zone) whose target mx.<...> has secure
    (hosting zone) or insecure (unsigned zone) address records; one 3 1 1 record, matching
    the served key or not, at the original name or at the expanded one.

    The expectation is what Postfix does (``tls_dane_resolve``, Postfix 3.7), which is RFC
    7672 §2.2.3 as its author implements it: a secure address answer (the whole chain
    secure) looks for TLSA at the expanded name, then at the original name; an insecure one
    whose first CNAME is secure looks only at the original name; otherwise no DANE.
    """
    record = Record(3, 1, 1, "leaf" if matches else "unrelated")
    host = Host(
        "mx",
        alias="mail",
        alias_zone="domain" if cname == "secure" else "unsigned",
        zone="hosting" if target == "secure" else "unsigned",
        tlsa=(record,) if at == "expanded" else (),
        alias_tlsa=(record,) if at == "original" else (),
    )
    if cname == "secure" and (target == "secure" or at == "original"):
        expect = HostExpect("valid", True, "deliver-authenticated") if matches else _DEFER_MISMATCH
        summary = "DANE applies at the " + at + " name"
    elif cname == "secure":
        # the original name is the TLSA base domain and has no TLSA (a secure denial)
        expect = HostExpect("no-dane", None, "deliver-opportunistic")
        summary = "the TLSA records at the insecure expanded name are ignored"
    else:
        expect = HostExpect("insecure", None, "deliver-opportunistic")
        summary = "an insecure CNAME: DANE does not apply"
    outcome = "matching" if matches else "not matching"
    where = "orig" if at == "original" else "exp"
    return Scenario(
        f"cname-{cname}-{target}-{where}-{'match' if matches else 'mismatch'}",
        f"{cname} CNAME to a host with {target} addresses, TLSA ({outcome}) at the {at} "
        f"name: {summary} (RFC 7672 §2.2.3, as Postfix)",
        hosts=(host,),
        expect=Expect(expect.verdict, {"mx": expect}),
    )


#: RFC 7672 §2.2.3's CNAME cases, every combination of: CNAME secure/insecure, target
#: addresses secure/insecure, TLSA at the original/expanded name, matching or not.
#: Expectations follow Postfix (see ``_cname_case``); tests/interop asks Postfix itself.
CNAME_MATRIX: tuple[Scenario, ...] = tuple(
    _cname_case(cname, target, at, matches)
    for cname in ("secure", "insecure")
    for target in ("secure", "insecure")
    for at in ("original", "expanded")
    for matches in (True, False)
)


#: An AAAA record no host should have a route to (RFC 3849 documentation prefix).
UNROUTABLE_IPV6 = "2001:db8::25"

#: Scenarios with an endpoint the checking host has no route to. They belong in a private
#: network namespace with only ``lo`` up (where connecting to UNROUTABLE_IPV6 fails at once
#: with ENETUNREACH), never in a world served on a host with a default IPv6 route.
NO_ROUTE: tuple[Scenario, ...] = (
    Scenario(
        "ipv6-no-route",
        "one MX host with a good IPv4 endpoint and an IPv6 address the checking host has no "
        "route to: that address is not reachable from here (our side, reported, not "
        "alarmed); the verdict comes from the reachable endpoint",
        hosts=(Host("mx1", servers=(Server(), Server(address=UNROUTABLE_IPV6))),),
        expect=Expect(
            "valid",
            {"mx1": HostExpect("valid", None, "deliver-authenticated")},
            exit_code=0,
        ),
    ),
    Scenario(
        "only-no-route",
        "the only address of the only MX host is an IPv6 address the checking host has no "
        "route to: nothing could be checked from here (UNKNOWN)",
        hosts=(Host("mx1", servers=(Server(address=UNROUTABLE_IPV6),)),),
        expect=Expect("error", {}, exit_code=3),
    ),
)


DAY = 86400

#: Scenarios with several authoritative servers for the mail domain's zone that disagree
#: (issue 16's nameserver consistency). Kept out of CATALOGUE: the verdicts below are today's
#: checker's, which asks one resolver that asks only the primary (so each is its primary's
#: verdict); a check that asks every server will add findings, and may change verdicts, here
#: without moving the catalogue's matrices (consumers, decision table, demo, plugin).
NAMESERVER_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "secondaries-agree",
        "the primary and two secondaries serve the same zone: nothing to report",
        nameservers=(NameServer(), NameServer()),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "stale-secondary-tlsa",
        "ns2 serves a copy signed 3 days ago (older SOA serial, older but still valid "
        "signatures) whose TLSA RRset is the one before a key rollover: it matches no key the "
        "server presents, so senders whose resolver asks ns2 defer; ns3 is up to date",
        nameservers=(
            NameServer(age=3 * DAY, tlsa=(("mx1", (Record(3, 1, 1, "unrelated"),)),)),
            NameServer(),
        ),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "stale-secondary-serial",
        "ns2 serves a copy signed 2 days ago: same records, older SOA serial and signatures",
        nameservers=(NameServer(age=2 * DAY),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "stale-secondary-mx",
        "ns2's copy (2 days old) has the MX RRset from before a move: it names old-mx, "
        "which has no address and no TLSA record in any copy",
        nameservers=(NameServer(age=2 * DAY, records=(("@", "MX", ("10 old-mx",)),)),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "secondary-sigs-expire-soon",
        "ns2 serves the same records, but its signatures expire one day after signing "
        "(the primary's: 14 days)",
        nameservers=(NameServer(sig_lifetime=DAY),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "secondary-bogus-tlsa",
        "ns2's copy of the TLSA RRset carries a corrupted signature: validators that ask ns2 "
        "find it bogus and senders behind them defer",
        nameservers=(NameServer(faults=((Fault.BAD_SIGNATURE, "_25._tcp.mx1", "TLSA"),)),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "lame-secondary",
        "ns2 is listed in the NS RRset and the delegation but answers REFUSED (lame)",
        nameservers=(NameServer(behaviour="refused"),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "secondary-not-authoritative",
        "ns2 answers with the zone's data but without the AA bit (lame)",
        nameservers=(NameServer(behaviour="not-authoritative"),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "silent-secondary",
        "ns2 is up and drops every query (its queriers time out)",
        nameservers=(NameServer(behaviour="silent"),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "secondary-down",
        "nothing listens at ns2's address (ICMP port unreachable, TCP connection refused)",
        nameservers=(NameServer(behaviour="down"),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
)


#: Scenarios that senders treat differently by policy (issue 16's sender profiles): SHA-1
#: DNSSEC algorithms, NSEC3 with many iterations (RFC 9276), a full trust anchor the server
#: does not send (RFC 7671 §5.2.2). Kept out of CATALOGUE for the same reason as
#: NAMESERVER_SCENARIOS; the verdicts are today's checker's (RFC 7672 with its own DNSSEC
#: policy: RSASHA1 and RSASHA1-NSEC3-SHA1 supported, NSEC3 iterations above 50 insecure).
SENDER_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "rsasha1",
        "DANE-EE in a zone signed with RSASHA1 (algorithm 5, NSEC): validators that refuse "
        "SHA-1 treat the zone as insecure, so DANE is off for senders behind them",
        algorithm=5,
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "rsasha1-nsec3",
        "DANE-EE in a zone signed with RSASHA1-NSEC3-SHA1 (algorithm 7, NSEC3): as rsasha1",
        algorithm=7,
        denial=NSEC3(),
        hosts=(Host("mx1"), Host("mx2", tlsa=(), preference=20)),
        expect=Expect(
            "no-dane",
            {**_ok("mx1"), "mx2": HostExpect("no-dane", None, "deliver-opportunistic")},
            frozenset({"no-tlsa"}),
            exit_code=1,
        ),
    ),
    Scenario(
        "nsec3-iter-150",
        "NSEC3 with 150 iterations: mx1's TLSA is a positive answer (secure everywhere); "
        "mx2's lack of TLSA is proven only by NSEC3, which validators whose RFC 9276 limit is "
        "below 150 call insecure (ours: 50; BIND 9.18 and Unbound 1.17 accept 150)",
        denial=NSEC3(iterations=150),
        hosts=(Host("mx1"), Host("mx2", tlsa=(), preference=20)),
        expect=Expect(
            "insecure",
            {**_ok("mx1"), "mx2": HostExpect("insecure", None, "deliver-opportunistic")},
            frozenset({"tlsa-insecure"}),
            exit_code=1,
        ),
    ),
    Scenario(
        "nsec3-iter-500",
        "NSEC3 with 500 iterations, above the limit of every current validator (BIND 9.18 and "
        "Unbound 1.17: 150): mx2's denial is insecure everywhere",
        denial=NSEC3(iterations=500, salt=b"\x01\x02"),
        hosts=(Host("mx1"), Host("mx2", tlsa=(), preference=20)),
        expect=Expect(
            "insecure",
            {**_ok("mx1"), "mx2": HostExpect("insecure", None, "deliver-opportunistic")},
            frozenset({"tlsa-insecure"}),
            exit_code=1,
        ),
    ),
    Scenario(
        "ta-root-not-sent",
        "DANE-TA 2 0 0 carrying the root CA certificate; the server sends leaf and "
        "intermediate only (as ta-root-full in CATALOGUE): RFC 7671 §5.2.2 lets the TLSA "
        "record supply a full trust anchor the server omits, but not every DANE client "
        "(GnuTLS's) builds the chain up to it",
        hosts=(Host("mx1", tlsa=(Record(2, 0, 0, "root"),)),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "ta-root-sent",
        "DANE-TA 2 0 0 carrying the root CA certificate, which the server sends too "
        "(leaf, intermediate, root): the contrast to ta-root-not-sent",
        hosts=(
            Host(
                "mx1",
                servers=(Server(certs=(Cert(send_root=True),)),),
                tlsa=(Record(2, 0, 0, "root"),),
            ),
        ),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
)


#: TLS-RPT policy records (RFC 8460 §3) at _smtp._tls.<domain>: DANE-valid domains (as
#: good-ee) with a good record, a malformed one, two, one split into strings, one whose
#: signature is bogus, and none. The record never changes the RFC 7672 verdict; a malformed
#: or unreadable one is a warning (exit 1), a missing one information. Kept out of CATALOGUE
#: like NAMESERVER_SCENARIOS: every catalogue domain is already one without a record.
_TLSRPT = "_smtp._tls"
TLSRPT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "tlsrpt-good",
        "a TLS-RPT policy with a mailto: and an https: report URI",
        records=(
            (
                _TLSRPT,
                "TXT",
                (
                    '"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example,'
                    'https://reports.example/v1/tlsrpt"',
                ),
            ),
        ),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "tlsrpt-split",
        "a TLS-RPT policy in two TXT strings, which senders join without a space",
        records=((_TLSRPT, "TXT", ('"v=TLSRPTv1;" "rua=mailto:tlsrpt@reports.example"',)),),
        expect=Expect("valid", _ok("mx1"), exit_code=0),
    ),
    Scenario(
        "tlsrpt-bad",
        "a TLS-RPT policy whose report URI is http: (senders use only mailto: and https:)",
        records=((_TLSRPT, "TXT", ('"v=TLSRPTv1; rua=http://reports.example/tlsrpt"',)),),
        expect=Expect("valid", _ok("mx1"), frozenset({"tlsrpt-invalid"}), exit_code=1),
    ),
    Scenario(
        "tlsrpt-twice",
        "two TXT records begin with v=TLSRPTv1 (beside an SPF record): senders use neither",
        records=(
            (
                _TLSRPT,
                "TXT",
                (
                    '"v=TLSRPTv1; rua=mailto:a@reports.example"',
                    '"v=TLSRPTv1; rua=mailto:b@reports.example"',
                    '"v=spf1 -all"',
                ),
            ),
        ),
        expect=Expect("valid", _ok("mx1"), frozenset({"tlsrpt-invalid"}), exit_code=1),
    ),
    Scenario(
        "tlsrpt-bogus",
        "a good TLS-RPT policy whose signature does not verify: validating senders cannot read it",
        records=((_TLSRPT, "TXT", ('"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example"',)),),
        faults=((Fault.BAD_SIGNATURE, _TLSRPT, "TXT"),),
        expect=Expect("valid", _ok("mx1"), frozenset({"tlsrpt-unreadable"}), exit_code=1),
    ),
    Scenario(
        "tlsrpt-none",
        "no TLS-RPT policy (information only)",
        expect=Expect("valid", _ok("mx1"), frozenset({"tlsrpt-missing"}), exit_code=0),
    ),
)


def by_name(name: str) -> Scenario:
    for scenario in (
        *CATALOGUE,
        *CNAME_MATRIX,
        *NO_ROUTE,
        *NAMESERVER_SCENARIOS,
        *SENDER_SCENARIOS,
        *TLSRPT_SCENARIOS,
    ):
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario named {name!r}")


def replicate(scenarios, copies: int) -> list[Scenario]:
    """``copies`` of each scenario, named ``c<i>-<name>``: a large world for load tests.
    (A prefix, not a suffix: ``xn--bcher-kva-1`` would no longer be a valid A-label.)"""
    return [
        dataclasses.replace(sc, name=f"c{i}-{sc.name}") for i in range(copies) for sc in scenarios
    ]
