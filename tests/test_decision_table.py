"""The decision table, row by row, from synthetic evidence (no I/O: the judge is pure).

Every row of ``dane_monitor.judge.TABLE`` is reached by at least one case here, with the
verdict, sender action and exit code the row names; every catalogued finding code that the
checker emits is produced by at least one case (the exporter's own codes are tested with the
exporter). The world-driven half (every scenario through every consumer) is in
``test_consumers_agree.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from dane_monitor import evidence as ev
from dane_monitor import judge as J
from dane_monitor import render
from dane_monitor import tlsa as T
from dane_monitor.conclusion import conclude
from dane_monitor.findings import CATALOGUE
from dane_monitor.lookup.answer import Answer, CNAMEStep, Kind, Status
from dane_monitor.probe import ProbeResult
from dane_monitor.render import exit_code
from dane_monitor.settings import Thresholds

NOW = 1_800_000_000.0
DAY = 86400
S, I, B, X = Status.SECURE, Status.INSECURE, Status.BOGUS, Status.INDETERMINATE  # noqa: E741


def cert(name: str, key_type: str = "ecdsa", days: int = 90) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()) if key_type == "ecdsa" else (
        rsa.generate_private_key(public_exponent=65537, key_size=2048))  # fmt: skip
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(Encoding.DER)


LEAF = cert("mx1.example.")
OTHER = cert("mx1.example.")
RSA_LEAF = cert("mx1.example.", "rsa")


def answer(name: str, rdtype: str, status: Status, records: list[str] | None = None, *,
           kind: Kind | None = None, reason: str | None = None, ttl: int = 3600,
           expiration: int | None = int(NOW + 20 * DAY), cnames=()) -> Answer:  # fmt: skip
    qname = dns.name.from_text(name)
    qtype = dns.rdatatype.from_text(rdtype)
    rrset = None
    if records:
        owner = cnames[-1].target if cnames else qname
        rrset = dns.rrset.from_text_list(owner, ttl, "IN", rdtype, records)
    if kind is None:
        kind = Kind.POSITIVE if records else (Kind.ERROR if status == X else Kind.NODATA)
    if status in (B, X) and reason is None:
        reason = "signature-expired" if status == B else "servfail"
    return Answer(qname, qtype, status, kind, rrset=rrset, reason=reason, detail="",
                  expiration=expiration if status == S else None, ttl=ttl if records else None,
                  cnames=list(cnames))  # fmt: skip


def probe(address: str, chain: list[bytes] | None = None, error: str | None = None,
          key_type: str = "ecdsa") -> ProbeResult:  # fmt: skip
    p = ProbeResult(address, 25, "mx1.example")
    if error is None:
        p.connected = p.starttls_offered = p.tls_established = True
        p.chain = list(chain if chain is not None else [LEAF])
        p.leaf_key_type = key_type
    else:
        p.error, p.detail = error, f"synthetic {error}"
        p.connected = error not in ("connect-refused", "connect-timeout", "no-route")
    return p


def record(der: bytes, usage: int = 3) -> str:
    return T.rdata_text(der, usage, 1, 1)


def host(*, a=None, aaaa=None, tlsa=None, probes=(), name="mx1.example.", bases=None) -> ev.Host:
    a = a or answer(name, "A", S, ["192.0.2.1"])
    aaaa = aaaa or answer(name, "AAAA", S, kind=Kind.NODATA)
    lookups = ()
    if tlsa is not None:
        tlsa = tlsa if isinstance(tlsa, list) else [tlsa]
        lookups = tuple(ev.TLSALookup(base, f"_25._tcp.{base}", t) for base, t in tlsa)
    endpoints = tuple(ev.Endpoint(p.address, 25, p) for p in probes)
    return ev.Host(name, 25, 10, a, aaaa, bases if bases is not None else (name,), lookups,
                   endpoints)  # fmt: skip


def tlsa_ok(*records: str, ttl: int = 3600, expiration=None) -> tuple[str, Answer]:
    kw = {"expiration": expiration} if expiration else {}
    return ("mx1.example.", answer("_25._tcp.mx1.example.", "TLSA", S, list(records), ttl=ttl,
                                   **kw))  # fmt: skip


def domain(*hosts: ev.Host, mx: Answer | None = None, resolver_ok=None, mx_only=False,
           bad_name=None) -> ev.Domain:  # fmt: skip
    if mx is None and not mx_only and bad_name is None:
        mx = answer("example.", "MX", S, [f"10 {h.name}" for h in hosts] or ["0 ."])
    return ev.Domain("example.", mx_only, "local", NOW, NOW, mx=mx, hosts=hosts,
                     resolver_ok=resolver_ok, bad_name=bad_name)  # fmt: skip


def good_host(**kw) -> ev.Host:
    return host(tlsa=tlsa_ok(record(LEAF)), probes=(probe("192.0.2.1"),), **kw)


# (case name, evidence, expected domain case, host case or None, endpoint cases, verdict,
#  action, exit code, finding codes that must appear)
CASES = {
    "valid": (
        domain(good_host()),
        "hosts",
        "dane",
        ["authenticated"],
        "valid",
        "deliver-authenticated",
        0,
        {"tlsa-no-rollover"},
    ),
    "bad-name": (
        domain(bad_name="not a valid domain name"),
        "bad-name",
        None,
        [],
        "error",
        None,
        3,
        {"bad-name"},
    ),
    "mx-bogus": (
        domain(mx=answer("example.", "MX", B)),
        "mx-bogus",
        None,
        [],
        "bogus",
        None,
        2,
        {"dnssec-bogus"},
    ),
    "mx-dns-failure": (
        domain(mx=answer("example.", "MX", X), resolver_ok=True),
        "mx-dns-failure",
        None,
        [],
        "failed",
        None,
        2,
        {"dns-error"},
    ),
    "mx-unknown": (
        domain(mx=answer("example.", "MX", X), resolver_ok=False),
        "mx-unknown",
        None,
        [],
        "error",
        None,
        3,
        {"resolver-failed"},
    ),
    "mx-unknown-unasked": (
        domain(mx=answer("example.", "MX", X)),
        "mx-unknown",
        None,
        [],
        "error",
        None,
        3,
        {"resolver-failed"},
    ),
    "domain-not-found": (
        domain(mx=answer("example.", "MX", S, kind=Kind.NXDOMAIN)),
        "domain-not-found",
        None,
        [],
        "error",
        None,
        3,
        {"domain-not-found"},
    ),
    "null-mx": (
        domain(mx=answer("example.", "MX", S, ["0 ."])),
        "null-mx",
        None,
        [],
        "no-mail",
        None,
        0,
        {"null-mx"},
    ),
    "null-mixed": (
        domain(good_host(), mx=answer("example.", "MX", S, ["0 .", "10 mx1.example."])),
        "hosts",
        "dane",
        ["authenticated"],
        "valid",
        "deliver-authenticated",
        1,
        {"mx-null-mixed"},
    ),
    "implicit-mx": (
        domain(good_host(name="example."), mx=answer("example.", "MX", S)),
        "hosts",
        "dane",
        ["authenticated"],
        "valid",
        "deliver-authenticated",
        0,
        {"implicit-mx"},
    ),
    "mx-insecure": (
        domain(good_host(), mx=answer("example.", "MX", I, ["10 mx1.example."])),
        "hosts",
        "dane",
        ["authenticated"],
        "insecure",
        "deliver-authenticated",
        1,
        {"mx-insecure"},
    ),
    "address-bogus": (
        domain(host(a=answer("mx1.example.", "A", B), aaaa=answer("mx1.example.", "AAAA", X))),
        "hosts",
        "address-bogus",
        [],
        "bogus",
        "defer",
        2,
        {"dnssec-bogus"},
    ),
    "address-dns-failure": (
        domain(host(a=answer("mx1.example.", "A", X)), resolver_ok=True),
        "hosts",
        "address-dns-failure",
        [],
        "failed",
        "defer",
        2,
        {"dns-error"},
    ),
    "address-unknown": (
        domain(host(a=answer("mx1.example.", "A", X)), resolver_ok=False),
        "hosts",
        "address-unknown",
        [],
        "error",
        None,
        3,
        {"resolver-failed"},
    ),
    "no-address": (
        domain(
            host(
                a=answer("mx1.example.", "A", S, kind=Kind.NXDOMAIN),
                aaaa=answer("mx1.example.", "AAAA", S, kind=Kind.NXDOMAIN),
            )
        ),
        "hosts",
        "no-address",
        [],
        "failed",
        "defer",
        2,
        {"mx-no-address"},
    ),
    "address-insecure": (
        domain(
            host(
                a=answer("mx1.example.", "A", I, ["192.0.2.1"]),
                bases=(),
                probes=(probe("192.0.2.1"),),
            )
        ),
        "hosts",
        "address-insecure",
        ["opportunistic"],
        "insecure",
        "deliver-opportunistic",
        1,
        {"address-insecure"},
    ),
    "address-insecure-hang": (
        domain(
            host(
                a=answer("mx1.example.", "A", I, ["192.0.2.1"]),
                bases=(),
                probes=(probe("192.0.2.1", error="banner-timeout"),),
            )
        ),
        "hosts",
        "address-insecure",
        ["opportunistic"],
        "insecure",
        "deliver-opportunistic",
        1,
        {"address-insecure", "smtp-error"},
    ),
    "tlsa-bogus": (
        domain(host(tlsa=("mx1.example.", answer("_25._tcp.mx1.example.", "TLSA", B)))),
        "hosts",
        "tlsa-bogus",
        [],
        "bogus",
        "defer",
        2,
        {"dnssec-bogus"},
    ),
    "tlsa-dns-failure": (
        domain(
            host(tlsa=("mx1.example.", answer("_25._tcp.mx1.example.", "TLSA", X))),
            resolver_ok=True,
        ),
        "hosts",
        "tlsa-dns-failure",
        [],
        "failed",
        "defer",
        2,
        {"dns-error"},
    ),
    "tlsa-unknown": (
        domain(
            host(tlsa=("mx1.example.", answer("_25._tcp.mx1.example.", "TLSA", X))),
            resolver_ok=False,
        ),
        "hosts",
        "tlsa-unknown",
        [],
        "error",
        None,
        3,
        {"resolver-failed"},
    ),
    "tlsa-insecure": (
        domain(
            host(
                tlsa=("mx1.example.", answer("_25._tcp.mx1.example.", "TLSA", I, [record(LEAF)])),
                probes=(probe("192.0.2.1"),),
            )
        ),
        "hosts",
        "tlsa-insecure",
        ["opportunistic"],
        "insecure",
        "deliver-opportunistic",
        1,
        {"tlsa-insecure"},
    ),
    "no-tlsa": (
        domain(
            host(
                tlsa=("mx1.example.", answer("_25._tcp.mx1.example.", "TLSA", S)),
                probes=(probe("192.0.2.1"),),
            )
        ),
        "hosts",
        "no-tlsa",
        ["opportunistic"],
        "no-dane",
        "deliver-opportunistic",
        1,
        {"no-tlsa"},
    ),
    "mismatch": (
        domain(host(tlsa=tlsa_ok(record(OTHER)), probes=(probe("192.0.2.1"),))),
        "hosts",
        "dane",
        ["mismatch"],
        "failed",
        "defer",
        2,
        {"tlsa-mismatch"},
    ),
    "unusable-only": (
        domain(
            host(tlsa=tlsa_ok("1 1 1 " + "00" * 32, "3 1 1 abcdef"), probes=(probe("192.0.2.1"),))
        ),
        "hosts",
        "dane",
        ["tls-unauthenticated"],
        "no-dane",
        "deliver-unauthenticated-tls",
        1,
        {"tlsa-no-usable", "tlsa-usage-pkix", "tlsa-unusable"},
    ),
    "unusable-only-no-tls": (
        domain(
            host(
                tlsa=tlsa_ok("1 1 1 " + "00" * 32),
                probes=(probe("192.0.2.1", error="starttls-missing"),),
            )
        ),
        "hosts",
        "dane",
        ["server-failure"],
        "failed",
        "defer",
        2,
        {"starttls-missing"},
    ),
    "ttl-long": (
        domain(host(tlsa=tlsa_ok(record(LEAF), ttl=7 * DAY), probes=(probe("192.0.2.1"),))),
        "hosts",
        "dane",
        ["authenticated"],
        "valid",
        "deliver-authenticated",
        0,
        {"tlsa-ttl-long"},
    ),
}
for code in (
    "connect-refused",
    "connect-timeout",
    "banner-timeout",
    "bad-reply",
    "greeting-rejected",
    "starttls-refused",
    "tls-failed",
    "line-too-long",
):
    CASES[f"server-{code}"] = (
        domain(host(tlsa=tlsa_ok(record(LEAF)), probes=(probe("192.0.2.1", error=code),))),
        "hosts", "dane", ["server-failure"], "failed", "defer", 2,
        {{"connect-refused": "connect-failed", "connect-timeout": "connect-failed",
          "starttls-refused": "starttls-refused", "tls-failed": "tls-failed"}.get(
            code, "smtp-error")},
    )  # fmt: skip
# Our host has no route to the IPv6 address: reported, not alarmed; alone, undecided.
CASES["unreachable-here-beside-ok"] = (
    domain(host(tlsa=tlsa_ok(record(LEAF)),
                aaaa=answer("mx1.example.", "AAAA", S, ["2001:db8::25"]),
                probes=(probe("192.0.2.1"), probe("2001:db8::25", error="no-route")))),
    "hosts", "dane", ["authenticated", "unreachable-here"], "valid", "deliver-authenticated", 0,
    {"address-unreachable-here"},
)  # fmt: skip
CASES["unreachable-here-only"] = (
    domain(host(tlsa=tlsa_ok(record(LEAF)), a=answer("mx1.example.", "A", S, kind=Kind.NODATA),
                aaaa=answer("mx1.example.", "AAAA", S, ["2001:db8::25"]),
                probes=(probe("2001:db8::25", error="no-route"),))),
    "hosts", "dane", ["unreachable-here"], "error", None, 3, {"address-unreachable-here"},
)  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_reaches_its_row(name):
    d, dcase, hcase, ecases, verdict, action, code, codes = CASES[name]
    j = J.judge(d)
    result = conclude(d)
    assert j.case == dcase
    if hcase is not None:
        assert [h.case for h in j.hosts] == [hcase]
        assert [e.case for e in j.hosts[0].endpoints] == ecases
    assert result.verdict == verdict
    assert result.verdict == J.judge(d).verdict  # deterministic
    got_action = result.hosts[0].sender_action if result.hosts else None
    if hcase is not None:
        assert (got_action.value if got_action else None) == action
    assert exit_code(result) == code
    emitted = {f.code for f in result.all_findings()}
    assert codes <= emitted, emitted
    assert emitted <= set(CATALOGUE), emitted - set(CATALOGUE)
    for f in result.all_findings():
        assert f.severity in CATALOGUE[f.code].severities, f


def test_every_row_of_the_table_is_reached():
    reached = set()
    for d, *_ in CASES.values():
        j = J.judge(d)
        reached.add(j.case)
        for h in j.hosts:
            reached.add(h.case)
            reached |= {e.case for e in h.endpoints}
    assert reached == set(J.TABLE), set(J.TABLE) ^ reached


def test_a_verdict_comes_from_its_row():
    for d, *_ in CASES.values():
        j = J.judge(d)
        for h in j.hosts:
            row = J.TABLE[h.case]
            if row.level == "host" and h.case != "dane":
                assert (h.verdict, h.action) == (row.verdict, row.action)
            for e in h.endpoints:
                # "opportunistic" endpoints take their host's row (DANE does not apply).
                erow = row if e.case == "opportunistic" else J.TABLE[e.case]
                assert (e.verdict, e.action) == (erow.verdict, erow.action)


# -- partial failures say who is hurt ---------------------------------------------------------


def test_rsa_failing_beside_authenticated_ecdsa_names_the_rsa_senders():
    rsa_probe = probe("192.0.2.1", [RSA_LEAF], key_type="rsa")
    d = domain(host(tlsa=tlsa_ok(record(LEAF)), probes=(probe("192.0.2.1"), rsa_probe)))
    result = conclude(d)
    assert result.verdict == "failed"
    assert result.headline.startswith("DANE senders that negotiate RSA DEFER mail at mx1.example")
    assert "ECDSA chain authenticates" in result.headline
    # The record to publish is the failing key's, not the one already published.
    (h,) = result.hosts
    assert h.suggested_records[0] == record(RSA_LEAF)
    mismatch = [f for f in h.findings if f.code == "tlsa-mismatch"]
    assert record(RSA_LEAF) in mismatch[0].message
    assert h.impact == "that negotiate RSA"
    assert "port 25: FAILED — DANE senders that negotiate RSA DEFER mail here" in render.text(
        result
    )


def test_ipv6_failing_beside_authenticated_ipv4_names_the_family():
    d = domain(host(tlsa=tlsa_ok(record(LEAF)),
                    aaaa=answer("mx1.example.", "AAAA", S, ["2001:db8::25"]),
                    probes=(probe("192.0.2.1"), probe("2001:db8::25", [OTHER]))))  # fmt: skip
    assert "that reach it over IPv6 DEFER mail" in conclude(d).headline


def test_a_whole_outage_keeps_the_plain_sentence():
    d = domain(host(tlsa=tlsa_ok(record(OTHER)), probes=(probe("192.0.2.1"),)))
    assert conclude(d).headline == "DANE senders DEFER mail here"


# -- expiry windows and the injected clock ---------------------------------------------------


@pytest.mark.parametrize(("hours", "severity", "code"), [(100, None, 0), (48, "warning", 1),
                                                         (12, "error", 2)])  # fmt: skip
def test_rrsig_expiry_windows_follow_the_thresholds_and_the_evidence_clock(hours, severity, code):
    expiration = int(NOW + hours * 3600)
    d = domain(host(tlsa=tlsa_ok(record(LEAF), record(OTHER), expiration=expiration),
                    probes=(probe("192.0.2.1"),)))  # fmt: skip
    result = conclude(d)
    got = [f.severity.value for f in result.all_findings() if f.code == "rrsig-expiring"]
    assert got == ([severity] if severity else [])
    assert exit_code(result) == code
    # A wider window (a setting) turns the 100-hour case into a warning too.
    wide = conclude(d, Thresholds(rrsig_warning_days=5, rrsig_critical_days=1))
    assert any(f.code == "rrsig-expiring" for f in wide.all_findings())
    # Judged a week later, the same evidence is past every window.
    later = conclude(replace(d, now=NOW + 7 * DAY))
    assert [f.severity.value for f in later.all_findings() if f.code == "rrsig-expiring"] == [
        "error"
    ]


def test_cert_expiry_uses_the_evidence_clock():
    short = cert("mx1.example.", days=5)
    d = domain(host(tlsa=tlsa_ok(record(short)), probes=(probe("192.0.2.1", [short]),)))
    assert "cert-expiring" in {f.code for f in conclude(d).all_findings()}
    assert "cert-expiring" not in {
        f.code for f in conclude(d, Thresholds(cert_warning_days=2)).all_findings()
    }


# -- RFC 7672 §2.2.3: the TLSA base domain through CNAMEs ------------------------------------


def test_secure_cname_to_insecure_addresses_keeps_the_original_name_as_base():
    from dane_monitor import policy

    alias = dns.name.from_text("mx1.example.")
    target = dns.name.from_text("host.unsigned.example.")
    a = answer("mx1.example.", "A", I, ["192.0.2.1"], cnames=[CNAMEStep(alias, target, S)])
    aaaa = answer("mx1.example.", "AAAA", I, kind=Kind.NODATA, cnames=[CNAMEStep(alias, target, S)])
    assert policy.tlsa_bases("mx1.example.", a, aaaa) == ("mx1.example.",)
    chain_secure = answer("mx1.example.", "A", S, ["192.0.2.1"],
                          cnames=[CNAMEStep(alias, target, S)])  # fmt: skip
    assert policy.tlsa_bases("mx1.example.", chain_secure, aaaa) == (
        "host.unsigned.example.", "mx1.example.")  # fmt: skip
    insecure_first = answer("mx1.example.", "A", I, ["192.0.2.1"],
                            cnames=[CNAMEStep(alias, target, I)])  # fmt: skip
    assert policy.tlsa_bases("mx1.example.", insecure_first, aaaa) == ()


def test_an_expiring_mx_signature_is_on_every_hosts_path():
    soon = int(NOW + 12 * 3600)
    mx = answer("example.", "MX", S, ["10 mx1.example."], expiration=soon)
    result = conclude(domain(good_host(), mx=mx))
    got = [(f.code, f.severity.value) for f in result.all_findings() if f.code == "rrsig-expiring"]
    assert got == [("rrsig-expiring", "error")]
    assert result.rrsig_expiration == soon
    assert exit_code(result) == 2
