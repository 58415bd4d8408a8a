"""Real senders deliver to the world (issue 16, "proven against real senders"): Postfix's
smtp(8) with ``smtp_tls_security_level = dane`` and ``smtp_dns_support_level = dnssec``, and
Exim (Debian's GnuTLS build) with ``hosts_require_dane = *`` and
``dnssec_request_domains = *``, each resolving through an Unbound that validates the world
from its trust anchor, each try to deliver one message to every scenario's mail domain.
The outcome, delivered or deferred, is read from the sender's own log and compared with
:data:`EXPECTED`, the one place where what each sender does is recorded.

The world's SMTP servers (:mod:`dane_monitor.world.smtp`) accept MAIL, RCPT and DATA and
throw the message away, so "delivered" is a real 250 after DATA. Each sender makes one
attempt per message (Postfix's retries are an hour away; Exim runs ``-odi``), bounded by
the senders' own connect/command timeouts and the harness's deadlines.

Senders beside the two defaults: each negotiating RSA (dual-key scenarios only), Exim with
``hosts_try_dane`` (DANE only where secure TLSA exists, as RFC 7672), and Postfix and Exim
resolving through BIND's named with ``disable-algorithms`` RSASHA1/NSEC3RSASHA1 instead of
Unbound (a validator that refuses SHA-1). Rows ``scenario/mx2`` deliver to that MX host
alone (the first MX host hides the second otherwise).

Faults placed on ``_25._tcp`` names (bogus-signature, tlsa-expired-rrsig) reach the senders:
the world copies them with the TLSA RRsets to the test port's ``_PORT._tcp`` name.

Postfix runs with ``smtp_tls_dane_insecure_mx_policy`` at its 3.6 default (``dane``) and at
``may`` (postfix-may, every row but the RSA and SHA-1 ones).

Rows of NS_ROWS (a secondary ns2 that serves other records than the primary) are met by
the default senders through the primary and by the -ns2 senders through an Unbound that
asks ns2, beside what the check says about the same world.

The -iter50 senders resolve through an Unbound whose NSEC3 iteration limit is 50 (ours, the
rfc7672 profile's knob) instead of 150: a denial with 150 iterations turns insecure, which
changes no outcome (no TLSA either way), and a wildcard TLSA answer proven with 150
iterations (nsec3-iter-150-wildcard) turns insecure, which turns DANE off.

Not covered: IPv6 endpoints; retries and queue lifetimes; Exim's OpenSSL build.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import REQUIRE, start_unbound
from senders import (
    EXIM_RSA,
    POSTFIX_MAY,
    POSTFIX_RSA,
    REFUSE_SHA1,
    EximSender,
    Outcome,
    PostfixSender,
    exim_missing,
    postfix_version,
    start_named_on_port_53,
)

from dane_monitor.world import (
    NSEC3,
    SENDER_SCENARIOS,
    Expect,
    Fault,
    Host,
    HostExpect,
    Scenario,
    World,
    by_name,
)
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.unbound import start_on_port_53

#: The nameserver scenarios (NAMESERVER_SCENARIOS) whose ns2 answers and serves records
#: other than the primary's: the -ns2 senders' resolver reaches ns2 for their zones. Left out:
#: the lame, silent and down secondaries, where a resolver that knows only ns2 fails while a
#: real one asks the next server (the check warns there).
NS_ROWS = (
    "stale-secondary-tlsa",
    "secondary-bogus-tlsa",
    "stale-secondary-mx",
    "stale-secondary-serial",
    "secondary-sigs-expire-soon",
)
#: The catalogue scenarios that matter for a DANE sender, the sender scenarios and NS_ROWS.
NAMES = (
    "good-ee",
    "good-ta",
    "ta-root-full",
    "digest-agility",
    "rollover",
    "tlsa-mismatch",
    "ee-name-mismatch",
    "ee-expired-cert",
    "no-tlsa",
    "unusable-only",
    "insecure-with-tlsa",
    "no-starttls",
    "starttls-refused",
    "two-mx-one-broken",
    "dual-key-ecdsa-only",
    "dual-key-both",
    "insecure-mx-tlsa-ok",
    "insecure-mx-tlsa-mismatch",
    "bogus-signature",
    "bogus-expired",
    "bogus-ds",
    "tlsa-expired-rrsig",
    *(sc.name for sc in SENDER_SCENARIOS),
    "nsec3-iter-150-wildcard",
    *NS_ROWS,
)
#: Faults the catalogue places on no TLSA RRset alone, and a wildcard TLSA, for the senders.
LOCAL_SCENARIOS = (
    Scenario(
        "tlsa-expired-rrsig",
        "the TLSA RRset's signature has expired (the rest of the zone is fine)",
        faults=((Fault.EXPIRED_RRSIG, "_25._tcp.mx1", "TLSA"),),
        expect=Expect(
            "bogus", {"mx1": HostExpect("bogus", None, "defer")}, frozenset({"dnssec-bogus"})
        ),
    ),
    # a wildcard TLSA RRset (added by with_wildcard_tlsa) in a zone with 150 NSEC3
    # iterations: the answer is secure only to a validator that checks the NSEC3 proof that
    # no closer name exists (RFC 4035 §5.3.4), so one whose RFC 9276 limit is lower calls
    # it insecure and DANE is off for its senders
    Scenario(
        "nsec3-iter-150-wildcard",
        "DANE-EE published at *._tcp.mx1 in a zone whose NSEC3 has 150 iterations",
        denial=NSEC3(iterations=150),
        hosts=(Host("mx1", tlsa=()),),
        expect=Expect("insecure", {"mx1": HostExpect("insecure", None, "deliver-opportunistic")}),
    ),
)
_LOCAL = {sc.name: sc for sc in LOCAL_SCENARIOS}


def with_wildcard_tlsa(world: World, scenario: str) -> None:
    """Publish ``3 1 1`` of mx1's leaf at ``*._tcp.mx1`` (it answers for _25._tcp and the
    test port's name alike) and sign again; before the world starts."""
    from dane_monitor import tlsa

    host = world.domains[scenario].hosts[0]
    leaf = host.endpoints[0].chains[0].leaf
    assert host.zone is not None
    host.zone.add(f"*._tcp.{host.name}", "TLSA", tlsa.rdata_text(leaf, 3, 1, 1))
    world.signed = world.hierarchy.sign()


SCENARIOS = tuple(_LOCAL.get(n) or by_name(n) for n in NAMES)
#: (scenario, host) delivered to directly (that host only, as if the others were down): the
#: second MX hosts whose outcome differs from the first's
HOSTS = (
    ("two-mx-one-broken", "mx2"),
    ("rsasha1-nsec3", "mx2"),
    ("nsec3-iter-150", "mx2"),
    ("nsec3-iter-500", "mx2"),
)
ROWS = (*NAMES, *(f"{name}/{host}" for name, host in HOSTS))
#: postfix: smtp_tls_security_level = dane (3.6 defaults); postfix-may: the same with
#: smtp_tls_dane_insecure_mx_policy = may (RFC 7672 §2.2.1); postfix-rsa: the same negotiating
#: RSA; exim: hosts_require_dane = *; exim-try: hosts_try_dane = *; exim-rsa: exim
#: negotiating RSA (dane_require_tls_ciphers)
#: The -nosha1 senders resolve through BIND's named refusing RSASHA1 and NSEC3RSASHA1 (as
#: several distributions' validators now do) instead of Unbound; they meet only the
#: scenarios in NOSHA1_ROWS. The -ns2 senders resolve through an Unbound that asks ns2 (the
#: stale, bogus or early-expiring secondary) for the zones of NS_ROWS, as a sender's
#: resolver may: the issue's headline outage.
SENDERS = (
    "postfix",
    "postfix-may",
    "postfix-rsa",
    "exim",
    "exim-try",
    "exim-rsa",
    "postfix-nosha1",
    "exim-nosha1",
    "exim-try-nosha1",
    "postfix-ns2",
    "exim-ns2",
    "exim-try-ns2",
    "postfix-iter50",
    "exim-iter50",
    "exim-try-iter50",
)
NOSHA1_ROWS = ("good-ee", "rsasha1", "rsasha1-nsec3", "rsasha1-nsec3/mx2")
#: The -iter50 senders resolve through an Unbound whose RFC 9276 limit is 50 NSEC3 iterations
#: (ours; Unbound 1.17's default is 150 for every key size), the rfc7672 profile's knob.
ITER50_ROWS = ("good-ee", "nsec3-iter-150", "nsec3-iter-150/mx2", "nsec3-iter-150-wildcard")
ITER50 = 'val-nsec3-keysize-iterations: "1024 50 2048 50 4096 50"'


def meets(row: str, sender: str) -> bool:
    """Whether ``sender`` delivers to ``row`` in this suite: the RSA senders only the
    dual-key scenarios, the -nosha1 ones only NOSHA1_ROWS, the -ns2 ones only NS_ROWS (which
    the defaults meet as well, through the primary)."""
    if sender.endswith("-ns2") or row in NS_ROWS:
        return row in NS_ROWS and sender.removesuffix("-ns2") in ("postfix", "exim", "exim-try")
    if sender.endswith("-nosha1"):
        return row in NOSHA1_ROWS
    if sender.endswith("-iter50"):
        return row in ITER50_ROWS
    return not sender.endswith("-rsa") or row.startswith("dual-key")


#: scenario -> sender -> (outcome, a fragment of the sender's reason). One place for what the
#: real senders do; the profiles (dane_monitor/profiles.py) are to predict the same. The
#: outcome is "delivered (<the sender's word for the TLS session>)" -- Postfix: Verified (a
#: DANE match), Trusted (a DANE match under an insecure MX), Untrusted (TLS without
#: authentication); Exim: CV=dane or CV=no -- or "deferred" or "bounced" (Exim's "**": a
#: permanent failure). The RSA senders only meet the dual-key scenarios (every other server
#: has an ECDSA certificate only, so they fail the handshake).
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "good-ee": {
        "postfix-iter50": ("delivered (Verified)", ""),
        "exim-iter50": ("delivered (CV=dane)", ""),
        "exim-try-iter50": ("delivered (CV=dane)", ""),
        "postfix-nosha1": ("delivered (Verified)", ""),
        "exim-nosha1": ("delivered (CV=dane)", ""),
        "exim-try-nosha1": ("delivered (CV=dane)", ""),
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "good-ta": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    # GnuTLS (Exim) does not take a 2 0 0 full trust anchor the server does not send
    "ta-root-full": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("deferred", "CA constrains were violated"),
        "exim-try": ("deferred", "CA constrains were violated"),
    },
    # Postfix applies digest agility (RFC 7671 §9: only the strongest digest, SHA-512,
    # counts); Exim/GnuTLS accepts any matching record
    "digest-agility": {
        "postfix": ("deferred", "Server certificate not verified"),
        "postfix-may": ("deferred", "Server certificate not verified"),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "rollover": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "tlsa-mismatch": {
        "postfix": ("deferred", "Server certificate not verified"),
        "postfix-may": ("deferred", "Server certificate not verified"),
        "exim": ("deferred", "The certificate differs"),
        "exim-try": ("deferred", "The certificate differs"),
    },
    "ee-name-mismatch": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "ee-expired-cert": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    # hosts_require_dane: no TLSA under a secure name is a permanent failure (bounce)
    "no-tlsa": {
        "postfix": ("delivered (Untrusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "tlsa lookup FAIL"),
        "exim-try": ("delivered (CV=no)", ""),
    },
    "unusable-only": {
        "postfix": ("delivered (Untrusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("delivered (CV=no)", ""),
        "exim-try": ("delivered (CV=no)", ""),
    },
    "insecure-with-tlsa": {
        "postfix": ("delivered (Untrusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "lookup not DNSSEC"),
        "exim-try": ("delivered (CV=no)", ""),
    },
    "no-starttls": {
        "postfix": ("deferred", "TLS is required, but was not offered"),
        "postfix-may": ("deferred", "TLS is required, but was not offered"),
        "exim": ("deferred", "did not offer TLS support"),
        "exim-try": ("deferred", "did not offer TLS support"),
    },
    "starttls-refused": {
        "postfix": ("deferred", "refused to start TLS"),
        "postfix-may": ("deferred", "refused to start TLS"),
        "exim": ("deferred", "after STARTTLS: 454"),
        "exim-try": ("deferred", "after STARTTLS: 454"),
    },
    "two-mx-one-broken": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "dual-key-ecdsa-only": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "postfix-rsa": ("deferred", "Server certificate not verified"),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "exim-rsa": ("deferred", "The certificate differs"),
    },
    "dual-key-both": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "postfix-rsa": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "exim-rsa": ("delivered (CV=dane)", ""),
    },
    # Postfix >= 3.6 uses a secure host's TLSA under an insecure MX (Trusted, not
    # Verified), with insecure_mx_policy = may it does not (RFC 7672 §2.2.1: TLS without
    # authentication, a mismatch delivered); Exim requires a secure MX lookup (require:
    # bounce; try: no DANE)
    "insecure-mx-tlsa-ok": {
        "postfix": ("delivered (Trusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "lookup not DNSSEC"),
        "exim-try": ("delivered (CV=no)", ""),
    },
    "insecure-mx-tlsa-mismatch": {
        "postfix": ("deferred", "Server certificate not verified"),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "lookup not DNSSEC"),
        "exim-try": ("delivered (CV=no)", ""),
    },
    # RFC 7672 §2.1.1: a bogus answer on the way defers (the TLSA RRset's signature corrupted
    # or expired: the TLSA lookup fails; every signature of the zone expired, or a DS that
    # matches no key: the MX lookup fails)
    "bogus-signature": {
        "postfix": ("deferred", "TLSA lookup error"),
        "postfix-may": ("deferred", "TLSA lookup error"),
        "exim": ("deferred", "tlsa lookup DEFER"),
        "exim-try": ("deferred", "tlsa lookup DEFER"),
    },
    "tlsa-expired-rrsig": {
        "postfix": ("deferred", "TLSA lookup error"),
        "postfix-may": ("deferred", "TLSA lookup error"),
        "exim": ("deferred", "tlsa lookup DEFER"),
        "exim-try": ("deferred", "tlsa lookup DEFER"),
    },
    "bogus-expired": {
        "postfix": ("deferred", "Name service error"),
        "postfix-may": ("deferred", "Name service error"),
        "exim": ("deferred", "host lookup did not complete"),
        "exim-try": ("deferred", "host lookup did not complete"),
    },
    "bogus-ds": {
        "postfix": ("deferred", "Name service error"),
        "postfix-may": ("deferred", "Name service error"),
        "exim": ("deferred", "host lookup did not complete"),
        "exim-try": ("deferred", "host lookup did not complete"),
    },
    "rsasha1": {
        # a validator that refuses SHA-1: the zone is insecure, DANE silently off
        "postfix-nosha1": ("delivered (Untrusted)", ""),
        "exim-nosha1": ("bounced", "lookup not DNSSEC"),
        "exim-try-nosha1": ("delivered (CV=no)", ""),
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "rsasha1-nsec3": {
        # a validator that refuses SHA-1: the zone is insecure, DANE silently off
        "postfix-nosha1": ("delivered (Untrusted)", ""),
        "exim-nosha1": ("bounced", "lookup not DNSSEC"),
        "exim-try-nosha1": ("delivered (CV=no)", ""),
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    "nsec3-iter-150": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-iter50": ("delivered (Verified)", ""),
        "exim-iter50": ("delivered (CV=dane)", ""),
        "exim-try-iter50": ("delivered (CV=dane)", ""),
    },
    # a wildcard TLSA answer proven with 150 NSEC3 iterations: secure to Unbound's default
    # limit (150), insecure to a limit of 50: DANE silently off (Exim with
    # hosts_require_dane: "tlsa lookup FAIL", a bounce)
    "nsec3-iter-150-wildcard": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-iter50": ("delivered (Untrusted)", ""),
        "exim-iter50": ("bounced", "tlsa lookup FAIL"),
        "exim-try-iter50": ("delivered (CV=no)", ""),
    },
    "nsec3-iter-500": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    # as ta-root-full
    "ta-root-not-sent": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("deferred", "CA constrains were violated"),
        "exim-try": ("deferred", "CA constrains were violated"),
    },
    "ta-root-sent": {
        "postfix": ("delivered (Verified)", ""),
        "postfix-may": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
    },
    # NS_ROWS: through the primary (postfix, exim, exim-try) every sender delivers; behind a
    # resolver that asks ns2 (-ns2), the stale TLSA RRset (validly signed, matching no key)
    # and the bogus signature defer every sender, and the stale MX RRset (old-mx: no address
    # in any copy) bounces them all
    "stale-secondary-tlsa": {
        "postfix": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-ns2": ("deferred", "Server certificate not verified"),
        "exim-ns2": ("deferred", "The certificate differs"),
        "exim-try-ns2": ("deferred", "The certificate differs"),
    },
    "secondary-bogus-tlsa": {
        "postfix": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-ns2": ("deferred", "TLSA lookup error"),
        "exim-ns2": ("deferred", "tlsa lookup DEFER"),
        "exim-try-ns2": ("deferred", "tlsa lookup DEFER"),
    },
    "stale-secondary-mx": {
        "postfix": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-ns2": ("bounced", "Name service error for name=old-mx."),
        "exim-ns2": ("bounced", "all relevant MX records point to non-existent hosts"),
        "exim-try-ns2": ("bounced", "all relevant MX records point to non-existent hosts"),
    },
    # older serial and signatures, the same records: nobody notices
    "stale-secondary-serial": {
        "postfix": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-ns2": ("delivered (Verified)", ""),
        "exim-ns2": ("delivered (CV=dane)", ""),
        "exim-try-ns2": ("delivered (CV=dane)", ""),
    },
    # signatures valid for a day after signing: fine until then
    "secondary-sigs-expire-soon": {
        "postfix": ("delivered (Verified)", ""),
        "exim": ("delivered (CV=dane)", ""),
        "exim-try": ("delivered (CV=dane)", ""),
        "postfix-ns2": ("delivered (Verified)", ""),
        "exim-ns2": ("delivered (CV=dane)", ""),
        "exim-try-ns2": ("delivered (CV=dane)", ""),
    },
    # the second MX hosts, each alone
    "two-mx-one-broken/mx2": {
        "postfix": ("deferred", "Server certificate not verified"),
        "postfix-may": ("deferred", "Server certificate not verified"),
        "exim": ("deferred", "The certificate differs"),
        "exim-try": ("deferred", "The certificate differs"),
    },
    # no TLSA, proven by NSEC3 (SHA-1 signed; 150 and 500 iterations: Unbound 1.17 calls a
    # 500-iteration denial insecure, which changes no sender's outcome: both are "no DANE")
    "rsasha1-nsec3/mx2": {
        "postfix-nosha1": ("delivered (Untrusted)", ""),
        "exim-nosha1": ("bounced", "lookup not DNSSEC"),
        "exim-try-nosha1": ("delivered (CV=no)", ""),
        "postfix": ("delivered (Untrusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "tlsa lookup FAIL"),
        "exim-try": ("delivered (CV=no)", ""),
    },
    "nsec3-iter-150/mx2": {
        # the limit of 50 makes the denial insecure, which changes no sender's outcome
        "postfix-iter50": ("delivered (Untrusted)", ""),
        "exim-iter50": ("bounced", "tlsa lookup FAIL"),
        "exim-try-iter50": ("delivered (CV=no)", ""),
        "postfix": ("delivered (Untrusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "tlsa lookup FAIL"),
        "exim-try": ("delivered (CV=no)", ""),
    },
    "nsec3-iter-500/mx2": {
        "postfix": ("delivered (Untrusted)", ""),
        "postfix-may": ("delivered (Untrusted)", ""),
        "exim": ("bounced", "tlsa lookup FAIL"),
        "exim-try": ("delivered (CV=no)", ""),
    },
}


@dataclass
class Senders:
    world: World
    postfixes: dict[str, PostfixSender]
    exims: dict[str, EximSender]
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    #: the -ns2 senders' resolver (an Unbound that asks ns2 for the zones of NS_ROWS)
    ns2_resolver: tuple[str, int] | None = None

    def host_name(self, scenario: str, host: str) -> str:
        domain = self.world.domains[scenario]
        (found,) = [h for h in domain.hosts if h.name.startswith(f"{host}.")]
        return found.name.rstrip(".")

    def rcpt(self, row: str) -> str:
        """probe@DOMAIN for a scenario; probe-HOST@DOMAIN for scenario/host (to HOST only)."""
        scenario, _, host = row.partition("/")
        domain = self.world.domains[scenario].name.rstrip(".")
        if host:
            return f"probe-{self.host_name(scenario, host)}@{domain}"
        return f"probe@{domain}"

    def outcome(self, scenario: str, sender: str) -> Outcome:
        key = (scenario, sender)
        if key not in self.outcomes:
            rcpt = self.rcpt(scenario)
            if sender in self.postfixes:
                self.outcomes[key] = self.postfixes[sender].outcome(rcpt)
            else:
                self.outcomes[key] = self.exims[sender].deliver(rcpt)
        return self.outcomes[key]


@pytest.fixture(scope="module")
def senders(interop_ready: None) -> Iterator[Senders]:
    missing = exim_missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"DANE_REQUIRE_TOOLS=1 but missing: {missing}", pytrace=False)
        pytest.skip(f"missing: {missing}")
    world = World(
        SCENARIOS,
        tlsa_on_smtp_port=True,
        smtp_network="127.0.17.0/24",
        ns_network="127.0.18.0/24",
    )
    with_wildcard_tlsa(world, "nsec3-iter-150-wildcard")
    with BackgroundLoop(name="real-senders") as loop:
        loop.run(world.start())
        unbound = named = unbound_ns2 = unbound_iter50 = None
        s = Senders(world, {}, {})
        try:
            unbound = start_unbound(world)
            port = world.smtp_port
            assert port is not None
            routes = {}
            for sc in SCENARIOS:
                domain = world.domains[sc.name].name.rstrip(".")
                routes[domain] = f"{domain}:{port}"
            for name, host in HOSTS:
                routes[s.rcpt(f"{name}/{host}")] = f"[{s.host_name(name, host)}]:{port}"
            s.postfixes["postfix"] = PostfixSender(unbound.host, routes)
            s.postfixes["postfix-may"] = PostfixSender(unbound.host, routes, extra=POSTFIX_MAY)
            s.postfixes["postfix-rsa"] = PostfixSender(unbound.host, routes, extra=POSTFIX_RSA)
            anchors = world.hierarchy.bind_trust_anchors()
            named = start_named_on_port_53(world.dns_address, anchors, REFUSE_SHA1)
            s.postfixes["postfix-nosha1"] = PostfixSender(named.host, routes)
            direct = tuple(s.host_name(name, host) for name, host in HOSTS)
            s.exims["exim-nosha1"] = EximSender(named.host, port, direct=direct)
            s.exims["exim-try-nosha1"] = EximSender(
                named.host, port, require_dane=False, direct=direct
            )
            s.exims["exim"] = EximSender(unbound.host, port, direct=direct)
            s.exims["exim-try"] = EximSender(unbound.host, port, require_dane=False, direct=direct)
            s.exims["exim-rsa"] = EximSender(unbound.host, port, extra=EXIM_RSA, direct=direct)
            ns2 = {}
            for name in NS_ROWS:
                _, second, *_ = world.nameservers(world.domains[name].name)
                ns2[world.domains[name].name] = second.address
            unbound_ns2 = start_on_port_53(
                lambda address: world.unbound(host=address, port=53, nameservers=ns2)
            )
            s.ns2_resolver = unbound_ns2.address
            s.postfixes["postfix-ns2"] = PostfixSender(unbound_ns2.host, routes)
            s.exims["exim-ns2"] = EximSender(unbound_ns2.host, port)
            s.exims["exim-try-ns2"] = EximSender(unbound_ns2.host, port, require_dane=False)
            unbound_iter50 = start_on_port_53(
                lambda address: world.unbound(host=address, port=53, options=(ITER50,))
            )
            s.postfixes["postfix-iter50"] = PostfixSender(unbound_iter50.host, routes)
            s.exims["exim-iter50"] = EximSender(unbound_iter50.host, port, direct=direct)
            s.exims["exim-try-iter50"] = EximSender(
                unbound_iter50.host, port, require_dane=False, direct=direct
            )
            for name, postfix in s.postfixes.items():  # Postfix delivers them meanwhile
                for row in ROWS:
                    if meets(row, name):
                        postfix.submit(s.rcpt(row))
            yield s
        finally:
            for sender in (*s.postfixes.values(), *s.exims.values()):
                sender.close()
            for resolver in (unbound, named, unbound_ns2, unbound_iter50):
                if resolver is not None:
                    resolver.stop()
            loop.run(world.stop())


CASES = [
    pytest.param(name, sender, id=f"{name}-{sender}")
    for name in ROWS
    for sender in SENDERS
    if meets(name, sender)
]


@pytest.mark.parametrize(("scenario", "sender"), CASES)
def test_real_sender_outcome(senders: Senders, scenario: str, sender: str):
    got = senders.outcome(scenario, sender)
    print(f"OUTCOME {scenario} {sender} {got.summary} :: {got.reason}")
    expected = EXPECTED.get(scenario, {}).get(sender)
    assert expected is not None, f"no expectation: {got}\n{got.log}"
    summary, why = expected
    assert (got.summary, why in got.reason) == (summary, True), f"{got}\n{got.log}"


def test_versions(senders: Senders):
    print("VERSIONS", postfix_version(), senders.exims["exim"].version())


# -- the sender profiles' predictions against the real senders -------------------------------

#: The profile (dane_monitor/profiles.py) that models each real sender here. exim runs with
#: hosts_require_dane, which exim-gnutls models as hosts_try_dane: where it predicts a
#: delivery without DANE, hosts_require_dane bounces instead.
SENDER_PROFILE = {
    "postfix": "postfix",
    "postfix-may": "postfix-insecure-mx-may",
    "postfix-rsa": "rsa-sender",
    "exim": "exim-gnutls",
    "exim-try": "exim-gnutls",
    "postfix-nosha1": "sha1-refusing",
    # Exim behind the SHA-1-refusing named, and negotiating RSA: on the rows they meet (a
    # secure or a wholly insecure zone, one 3 1 1 record per chain) the Postfix knobs of
    # these profiles (insecure_mx, digest agility, TA matching) change nothing
    "exim-nosha1": "sha1-refusing",
    "exim-try-nosha1": "sha1-refusing",
    "exim-rsa": "rsa-sender",
    "postfix-ns2": "postfix",
    "exim-ns2": "exim-gnutls",
    "exim-try-ns2": "exim-gnutls",
    # the profile whose validator allows 50 NSEC3 iterations; on ITER50_ROWS (a secure MX
    # RRset, ECDSA-only servers, one 3 1 1 record) its other knobs change nothing
    "postfix-iter50": "rfc7672",
    "exim-iter50": "rfc7672",
    "exim-try-iter50": "rfc7672",
}
#: the senders with hosts_require_dane (exim-gnutls models hosts_try_dane)
REQUIRE_DANE = ("exim", "exim-ns2", "exim-iter50", "exim-nosha1", "exim-rsa")
_CLASS = {
    "deliver-authenticated": "authenticated",
    "deliver-unauthenticated-tls": "unauthenticated",
    "deliver-opportunistic": "unauthenticated",
    "defer": "deferred",
    "unknown": "unknown",
}


def real_class(outcome: Outcome) -> str:
    if outcome.status != "delivered":
        return outcome.status  # deferred | bounced
    return (
        "authenticated" if outcome.tls in ("Verified", "Trusted", "CV=dane") else "unauthenticated"
    )


def run_check(world: World, domain: str, *extra: str) -> tuple[int, dict]:
    """``dane-monitor check --json`` on ``domain`` of the world, in local mode against the
    world's primary unless ``extra`` says otherwise: (exit code, result)."""
    import contextlib
    import io
    import json
    import tempfile
    from pathlib import Path

    from dane_monitor.cli import main

    host, port = world.dns_address
    with tempfile.TemporaryDirectory(prefix="dane-sender-check-") as d:
        anchor = world.write_trust_anchor(Path(d) / "anchor.ds")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["check", "--json", domain, "--resolver", f"{host}:{port}",
                         "--trust-anchor", str(anchor), "--connect-port", str(world.smtp_port),
                         "--timeout", "5", *extra])  # fmt: skip
    return code, json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def checks(senders: Senders) -> dict[str, dict]:
    """scenario -> the check's result (JSON) from local mode."""
    world = senders.world
    return {name: run_check(world, world.domains[name].name)[1] for name in NAMES}


@pytest.fixture(scope="module")
def checks_ns2(senders: Senders) -> dict[str, dict]:
    """scenario -> the check's result (JSON) through the -ns2 senders' resolver (local
    mode: it validates what that Unbound got from ns2), for NS_ROWS: what the check says
    from where those senders stand."""
    world, resolver = senders.world, senders.ns2_resolver
    assert resolver is not None
    return {
        name: run_check(world, world.domains[name].name, "--resolver", "{}:{}".format(*resolver),
                        "--no-nameservers")[1]
        for name in NS_ROWS
    }  # fmt: skip


def predicted_class(hosts: list[dict], row: str, profile: str) -> str:
    """What ``profile`` predicts for the row: the host's action for scenario/host rows; for
    a domain, the first host in preference order that the sender does not defer on."""
    if not hosts:
        # no MX host to profile: the MX lookup itself failed (bogus-expired, bogus-ds), and
        # every profile does what RFC 7672 §2.1.1 says there; the check must say defer too
        return "no-hosts"
    _, _, only = row.partition("/")
    if only:
        hosts = [h for h in hosts if h["name"].startswith(f"{only}.")]
    for h in hosts:
        got = _CLASS[h["profiles"][profile]["action"]]
        if got != "deferred":
            return got
    return "deferred"


def _pkix_only(hosts: list[dict], row: str) -> bool:
    """Measured (unusable-only): Exim with hosts_require_dane does not bounce when the
    first host's secure TLSA RRset holds only PKIX-TA/PKIX-EE (usage 0/1) records; it
    delivers over TLS without verification (CV=no), as hosts_try_dane does."""
    _, _, only = row.partition("/")
    first = next(h for h in hosts if not only or h["name"].startswith(f"{only}."))
    return bool(first["tlsa_records"]) and not first["tlsa_usable"]


PROFILE_CASES = [
    pytest.param(row, sender, id=f"{row}-{sender}")
    for row, sender in ((p.values[0], p.values[1]) for p in CASES)
    if sender in SENDER_PROFILE
]


@pytest.mark.parametrize(("row", "sender"), PROFILE_CASES)
def prediction(checks: dict[str, dict], row: str, sender: str) -> tuple[str, list[dict]]:
    """The class SENDER_PROFILE[sender] predicts for ``row`` from ``checks`` (the check from
    where the sender stands), and the hosts it read."""
    profile = SENDER_PROFILE[sender]
    scenario = row.partition("/")[0]
    hosts = sorted(checks[scenario]["hosts"], key=lambda h: h.get("preference") or 0)
    predicted = predicted_class(hosts, row, profile)
    if predicted == "no-hosts":
        predicted = _CLASS[checks[scenario]["sender_action"]]
    if predicted == "deferred" and hosts and all(h["decision"] == "no-address" for h in hosts):
        # the check's actions have no bounce: every MX host's name is proven to have no
        # address, which both Postfix ("Host not found") and Exim ("all relevant MX records
        # point to non-existent hosts") treat as permanent (stale-secondary-mx through ns2)
        predicted = "bounced"
    if sender in REQUIRE_DANE and predicted == "unauthenticated" and not _pkix_only(hosts, row):
        predicted = "bounced"  # hosts_require_dane where DANE does not apply
    return predicted, hosts


@pytest.mark.parametrize(("row", "sender"), PROFILE_CASES)
def test_the_profile_predicts_the_real_sender(
    senders: Senders,
    checks: dict[str, dict],
    checks_ns2: dict[str, dict],
    row: str,
    sender: str,
):
    profile = SENDER_PROFILE[sender]
    predicted, hosts = prediction(checks_ns2 if sender.endswith("-ns2") else checks, row, sender)
    # Every cell is predicted: a profile that cannot tell is a gap in the check's evidence
    # (the last ones, nsec3-iter-150-wildcard, are closed by proving the wildcard answer's
    # NSEC3 again with the validators' limit, Answer.nsec3_resolver_status).
    assert predicted != "unknown", f"{profile} cannot tell from the evidence: {hosts}"
    got = senders.outcome(row, sender)
    print(f"PROFILE {row} {sender} real={real_class(got)} {profile}={predicted}")
    reasons = [h["profiles"][profile]["reason"] for h in hosts]
    assert real_class(got) == predicted, f"{got}\n{profile}: {reasons}"


_SHORT = {"authenticated": "auth", "unauthenticated": "tls", "deferred": "defer"}


def test_print_the_table(senders: Senders, checks: dict[str, dict], checks_ns2: dict[str, dict]):
    """The scenarios x senders table the issue asks for: each cell the real outcome (auth:
    delivered, DANE-authenticated; tls: delivered over TLS without DANE; defer; bounced),
    then ``=`` when the sender's profile predicted it, ``?`` where the profile says unknown,
    nothing for a sender no profile models. ``pytest -s`` prints it."""
    lines = [
        "| row | " + " | ".join(SENDERS) + " |",
        "|---|" + "---|" * len(SENDERS),
    ]
    wrong = []
    for row in ROWS:
        cells = []
        for sender in SENDERS:
            if not meets(row, sender):
                cells.append("")
                continue
            real = real_class(senders.outcome(row, sender))
            cell = _SHORT.get(real, real)
            if sender in SENDER_PROFILE:
                got = checks_ns2 if sender.endswith("-ns2") else checks
                predicted, _ = prediction(got, row, sender)
                cell += "?" if predicted == "unknown" else "=" if predicted == real else "≠"
                if predicted not in ("unknown", real):
                    wrong.append((row, sender, real, predicted))
            cells.append(cell)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    print("TABLE\n" + "\n".join(lines))
    assert wrong == []


# -- the nameserver survey against the senders behind a stale or bogus secondary -------------

#: What the check (asking every authoritative server) says where senders behind ns2 lose
#: mail: an error finding at ns2's address, exit CRITICAL. stale-secondary-mx was the miss
#: measured (ns2's MX RRset names a host with no address, both senders bounce, the check
#: warned): the check now looks up and probes the hosts of a differing MX RRset and judges
#: them (nameservers.mx_consequence). A row the check misses goes here, as a strict xfail.
NS_CHECK_MISSES: tuple[str, ...] = ()
NS_ERRORS = ("ns-rrset-differs", "ns-rrsig-bogus")


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            row,
            marks=pytest.mark.xfail(strict=True, reason="the check misses what senders meet"),
        )
        if row in NS_CHECK_MISSES
        else row
        for row in NS_ROWS
    ],
)
def test_the_check_warns_where_senders_behind_a_secondary_lose_mail(
    senders: Senders, checks_ns2: dict[str, dict], row: str
):
    """The issue's headline outage end to end: through the primary every sender delivers and
    a check that asks one resolver says valid; the senders whose resolver reaches ns2 defer
    (or bounce); the check that asks every authoritative server says CRITICAL with an error
    finding naming ns2, and from the senders' resolver it says what they met."""
    world = senders.world
    domain = world.domains[row].name
    _, ns2, *_ = world.nameservers(domain)
    plain_code, plain = run_check(world, domain, "--no-nameservers")
    code, result = run_check(world, domain, "--nameserver-port", str(world.dns_port))
    errors = sorted(
        f["code"]
        for f in result["findings"]
        if f["code"] in NS_ERRORS and f["severity"] == "error" and f.get("address") == ns2.address
    )
    behind = {
        s: senders.outcome(row, s).status for s in ("postfix-ns2", "exim-ns2", "exim-try-ns2")
    }
    through_ns2 = checks_ns2[row]
    print(
        f"NSROW {row} primary-senders="
        f"{sorted({senders.outcome(row, s).status for s in ('postfix', 'exim', 'exim-try')})} "
        f"ns2-senders={behind} check--no-nameservers={plain['verdict']}/{plain_code} "
        f"check={result['verdict']}/{code} {errors} "
        f"check-via-ns2={through_ns2['verdict']}/{through_ns2['sender_action']}"
    )
    assert (plain_code, plain["verdict"]) == (0, "valid")
    if set(behind.values()) == {"delivered"}:
        assert errors == [] and through_ns2["sender_action"] == "deliver-authenticated"
    else:
        assert (code, through_ns2["sender_action"]) == (2, "defer")
        assert errors, result["findings"]
