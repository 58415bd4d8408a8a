"""The TLSA matching engine: records, DANE-EE, DANE-TA chains and names, digest agility,
unusable records, garbage, and agreement with the openssl CLI."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dane_monitor.tlsa as tlsa_module
from dane_monitor.conclusion import describe
from dane_monitor.tlsa import (
    FAILURES,
    MAX_CHAIN,
    TLSARecord,
    association_data,
    authenticate,
    certificate_names,
    rdata_text,
    spki_sha256,
    suggest_records,
)
from dane_monitor.tlsa import (
    dns_names as names_of_der,
)
from dane_monitor.world.pki import PKI, Chain, self_signed

DER = serialization.Encoding.DER
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
MX = "mx.example.com"


def der(chain: Chain | list[x509.Certificate] | tuple[x509.Certificate, ...]) -> list[bytes]:
    certs = chain.certs if isinstance(chain, Chain) else chain
    return [c.public_bytes(DER) for c in certs]


def rec(cert: x509.Certificate, usage: int, selector: int = 1, mtype: int = 1) -> TLSARecord:
    return TLSARecord.from_text(rdata_text(cert, usage, selector, mtype))


def wrong(record: TLSARecord) -> TLSARecord:
    """The same record with the last byte of its data changed."""
    return TLSARecord(
        record.usage, record.selector, record.mtype, record.data[:-1] + bytes([record.data[-1] ^ 1])
    )


# -- a small certificate factory for shapes trustme does not make ---------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(DER)


def make(
    cn: str | None,
    issuer: Issued | None = None,
    *,
    ca: bool | None = False,
    path_length: int | None = None,
    san: list[x509.GeneralName] | None = None,
    raw_san: bytes | None = None,
    not_before: dt.datetime = NOW - 30 * DAY,
    not_after: dt.datetime = NOW + 30 * DAY,
    key_usage: x509.KeyUsage | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    signer: Issued | None = None,
) -> Issued:
    """An ECDSA certificate. ``ca=None`` leaves out basicConstraints; ``signer`` signs with
    another key than the issuer's (a forged signature under the issuer's name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca, path_length), critical=True)
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if raw_san is not None:  # the extension's DER as given, parsable or not
        raw = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, raw_san)
        builder = builder.add_extension(raw, critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    signing_key = (signer or issuer or Issued(None, key)).key  # type: ignore[arg-type]
    return Issued(builder.sign(signing_key, hashes.SHA256()), key)


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def dns_names(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module")
def chain(pki: PKI) -> Chain:
    """leaf (mx.example.com) + intermediate; the root is not sent."""
    return pki.issue([MX])


@pytest.fixture(scope="module")
def ca() -> tuple[Issued, Issued]:
    """(root, intermediate) of the hand-made hierarchy."""
    root = make("Hand Root", ca=True)
    return root, make("Hand CA", root, ca=True)


# -- records --------------------------------------------------------------------------------


def test_from_text_tolerates_case_and_spaces_in_hex() -> None:
    record = TLSARecord.from_text("  3 1 1 AB cd\tEF 01  ")
    assert record == TLSARecord(3, 1, 1, bytes.fromhex("abcdef01"))
    assert record.to_text() == "3 1 1 abcdef01"
    assert TLSARecord.from_text(record.to_text()) == record


@pytest.mark.parametrize(
    "text",
    [
        "3 1 1 xyz0",  # not hex
        "3 1 1 abc",  # odd number of digits
        "3 1 1",  # no data
        "3 1",
        "",
        "256 1 1 00",
        "-1 1 1 00",
        "3 one 1 00",
        "3 1 1 0x00",
    ],
)
def test_from_text_rejects_malformed_rdata(text: str) -> None:
    with pytest.raises(ValueError, match="TLSA"):
        TLSARecord.from_text(text)


def test_from_rdata_takes_a_dnspython_rdata(chain: Chain) -> None:
    text = chain.tlsa(3)
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, text)
    assert TLSARecord.from_rdata(rdata) == TLSARecord.from_text(text)
    assert TLSARecord.from_rdata(rdata).to_text() == text


def _unusable_rows() -> list[tuple[str, str | None]]:
    leaf = self_signed([MX]).leaf
    full_cert = leaf.public_bytes(DER).hex()
    full_spki = association_data(leaf, 1, 0).hex()
    return [
        ("3 1 1 " + "00" * 32, None),
        ("2 0 2 " + "00" * 64, None),
        (f"3 0 0 {full_cert}", None),
        (f"3 1 0 {full_spki}", None),
        (f"2 0 0 {full_cert}", None),
        (f"2 1 0 {full_spki}", None),
        ("0 1 1 " + "00" * 32, "pkix-usage"),
        ("1 0 1 " + "00" * 32, "pkix-usage"),
        ("1 7 9 00", "pkix-usage"),  # the usage is reported first
        ("4 1 1 " + "00" * 32, "unknown-usage"),
        ("255 1 1 " + "00" * 32, "unknown-usage"),
        ("3 2 1 " + "00" * 32, "unknown-selector"),
        ("3 1 3 " + "00" * 32, "unknown-matching-type"),
        ("3 1 255 00", "unknown-matching-type"),
        ("3 1 1 " + "00" * 31, "bad-digest-length"),
        ("3 1 1 " + "00" * 64, "bad-digest-length"),  # a SHA-512 digest labelled SHA-256
        ("3 1 2 " + "00" * 32, "bad-digest-length"),
        ("2 1 2 " + "00" * 63, "bad-digest-length"),
        ("3 0 0 00", "bad-full-data"),
        ("3 0 0 3003020100", "bad-full-data"),
        (f"3 0 0 {full_spki}", "bad-full-data"),  # an SPKI where a certificate belongs
        (f"3 1 0 {full_cert}", "bad-full-data"),  # a certificate where an SPKI belongs
        (f"2 0 0 {full_cert}00", "bad-full-data"),  # trailing garbage
        (f"2 1 0 {full_spki[:-2]}", "bad-full-data"),  # truncated
    ]


_UNUSABLE_ROWS = _unusable_rows()


# Ids by position: the certificate rows are generated afresh in every xdist worker.
@pytest.mark.parametrize(
    ("text", "reason"),
    _UNUSABLE_ROWS,
    ids=[
        f"{i}-{'.'.join(text.split()[:3])}-{reason or 'usable'}"
        for i, (text, reason) in enumerate(_UNUSABLE_ROWS)
    ],
)
def test_unusable_reason(text: str, reason: str | None) -> None:
    record = TLSARecord.from_text(text)
    assert record.unusable_reason == reason
    assert record.usable == (reason is None)


# -- DANE-EE (RFC 7672 §3.1.1) --------------------------------------------------------------


@pytest.mark.parametrize(("selector", "mtype"), [(s, m) for s in (0, 1) for m in (0, 1, 2)])
def test_dane_ee_match_ignores_names_dates_and_chain(selector: int, mtype: int) -> None:
    # An expired self-signed leaf for another name: DANE-EE does not care.
    leaf = self_signed(["other.example"], expired=True).leaf
    result = authenticate([rec(leaf, 3, selector, mtype)], der([leaf]), [MX, "example.com"])
    assert result.authenticated, result.detail
    assert result.failure is None
    assert result.depth == 0
    assert result.match is not None and result.match.certificate == leaf
    assert result.match.path == (leaf,)


def test_dane_ee_on_an_expired_pki_leaf_passes(pki: PKI) -> None:
    chain = pki.issue([MX], expired=True)
    result = authenticate([TLSARecord.from_text(chain.tlsa(3))], der(chain), [MX])
    assert result.authenticated and result.depth == 0


def test_dane_ee_does_not_match_an_issuer(chain: Chain) -> None:
    """A 3 x x record for the intermediate is no authentication (and says so in hits)."""
    record = rec(chain.certs[1], 3)
    result = authenticate([record], der(chain), [MX])
    assert result.failure == "tlsa-mismatch"
    assert [(h.record, h.depth) for h in result.hits] == [(record, 1)]


def test_wrong_dane_ee_digest_is_a_mismatch(chain: Chain) -> None:
    result = authenticate([wrong(rec(chain.leaf, 3))], der(chain), [MX])
    assert (result.authenticated, result.failure, result.depth) == (False, "tlsa-mismatch", -1)
    assert result.hits == [] and result.match is None
    assert "None of the 1 usable TLSA record matches" in result.detail


# -- DANE-TA (RFC 7672 §3.1.2, §3.2) ---------------------------------------------------------


def test_dane_ta_on_the_intermediate(chain: Chain) -> None:
    record = TLSARecord.from_text(chain.tlsa(2))
    result = authenticate([record], der(chain), [MX])
    assert result.authenticated, result.detail
    assert result.depth == 1
    assert result.match.record == record
    assert result.match.certificate == chain.certs[1]
    assert result.match.path == chain.certs


def test_dane_ta_on_an_unsent_root_needs_the_full_certificate(pki: PKI, chain: Chain) -> None:
    root = pki.root_cert
    # 2 1 1 for a root the server does not send: nothing to match.
    result = authenticate([rec(root, 2)], der(chain), [MX])
    assert (result.failure, result.depth) == ("tlsa-mismatch", -1)
    assert "must match a certificate the server sends" in result.detail
    # 2 0 0 carries the root itself: the chain is built up to it, at depth 2.
    result = authenticate([rec(root, 2, 0, 0)], der(chain), [MX])
    assert result.authenticated, result.detail
    assert result.depth == 2
    assert result.match.certificate == root
    assert result.match.path == (*chain.certs, root)
    assert "carried in the TLSA record" in result.detail
    # 2 1 0 carries the bare key: depth of the highest certificate it signs.
    result = authenticate([rec(root, 2, 1, 0)], der(chain), [MX])
    assert result.authenticated and result.depth == 1


def test_dane_ta_on_a_sent_root(pki: PKI) -> None:
    chain = pki.issue([MX], include_root=True)
    result = authenticate([TLSARecord.from_text(chain.tlsa(2, depth=2))], der(chain), [MX])
    assert result.authenticated and result.depth == 2


def test_dane_ta_lowest_anchor_wins(pki: PKI) -> None:
    chain = pki.issue([MX], include_root=True)
    records = [TLSARecord.from_text(chain.tlsa(2, depth=d)) for d in (2, 1)]
    result = authenticate(records, der(chain), [MX])
    assert result.authenticated and result.depth == 1
    assert sorted(h.depth for h in result.hits) == [1, 2]


def test_dane_ta_chain_is_reordered_and_junk_skipped(pki: PKI) -> None:
    chain = pki.issue([MX], include_root=True)
    other = self_signed(["junk.example"]).leaf
    leaf, intermediate, root = chain.certs
    presented = [
        leaf.public_bytes(DER),
        root.public_bytes(DER),
        b"\x30\x03\x02\x01\x00",
        other.public_bytes(DER),
        intermediate.public_bytes(DER),
    ]
    result = authenticate([rec(root, 2)], presented, [MX])
    assert result.authenticated, result.detail
    assert result.depth == 2
    assert result.match.path == (leaf, intermediate, root)


def test_dane_ta_rsa_chain(pki: PKI) -> None:
    chain = PKI("rsa").issue([MX], key_type="rsa", include_root=True)
    result = authenticate([TLSARecord.from_text(chain.tlsa(2, depth=2))], der(chain), [MX])
    assert result.authenticated and result.depth == 2


def test_dane_ta_name_mismatch(pki: PKI) -> None:
    chain = pki.issue(["other.example"])
    result = authenticate([TLSARecord.from_text(chain.tlsa(2))], der(chain), [MX, "example.com"])
    assert (result.authenticated, result.failure, result.depth) == (False, "ta-name-mismatch", 1)
    assert "other.example" in result.detail and MX in result.detail


@pytest.mark.parametrize("reference", ["tlsa-base.example.", "mx.example.com", "MX.EXAMPLE.COM."])
def test_either_reference_name_is_enough(pki: PKI, reference: str) -> None:
    chain = pki.issue(["tlsa-base.example", MX])
    result = authenticate(
        [TLSARecord.from_text(chain.tlsa(2))], der(chain), ["unrelated.example", reference]
    )
    assert result.authenticated, result.detail


def test_idna_reference_names(ca: tuple[Issued, Issued]) -> None:
    _, intermediate = ca
    leaf = make("x", intermediate, san=dns_names("mx.xn--bcher-kva.example"))
    records, chain = [rec(intermediate.cert, 2)], [leaf.der, intermediate.der]
    assert authenticate(records, chain, ["mx.xn--bcher-kva.example."]).authenticated
    assert authenticate(records, chain, ["mx.bücher.example"]).authenticated
    assert authenticate(records, chain, ["mx.bucher.example"]).failure == "ta-name-mismatch"


@pytest.mark.parametrize(
    ("pattern", "reference", "matches"),
    [
        ("*.example.com", "mx.example.com", True),
        ("*.example.com", "MX.example.com.", True),
        ("*.EXAMPLE.com.", "mx.example.com", True),
        ("*.example.com", "a.mx.example.com", False),
        ("*.example.com", "example.com", False),
        ("m*.example.com", "mx.example.com", False),
        ("*x.example.com", "mx.example.com", False),
        ("mx.*.com", "mx.example.com", False),
        ("*.*.com", "mx.example.com", False),
        ("*.com", "example.com", False),
        ("*", "mx", False),
        ("mx.example.com", "mx.example.com", True),
        ("Mx.Example.Com", "mx.example.com.", True),
        ("mx.example.com", "mx.example.co", False),
        ("mx.example.com", "x.example.com", False),
    ],
)
def test_wildcard_and_case_rules(
    ca: tuple[Issued, Issued], pattern: str, reference: str, matches: bool
) -> None:
    _, intermediate = ca
    leaf = make("leaf", intermediate, san=dns_names(pattern))
    result = authenticate([rec(intermediate.cert, 2)], [leaf.der, intermediate.der], [reference])
    assert result.failure == (None if matches else "ta-name-mismatch"), result.detail


@pytest.mark.parametrize(
    ("cn", "san", "matches"),
    [
        (MX, dns_names("other.example"), False),  # a DNS SAN hides the CN
        ("other.example", dns_names(MX), True),
        (MX, None, True),  # no SAN: the CN counts
        (MX, [x509.IPAddress(__import__("ipaddress").ip_address("192.0.2.1"))], True),
        ("other.example", None, False),
        (None, None, False),  # no names at all
    ],
)
def test_san_takes_precedence_over_cn(
    ca: tuple[Issued, Issued], cn: str | None, san: list | None, matches: bool
) -> None:
    _, intermediate = ca
    leaf = make(cn, intermediate, san=san)
    result = authenticate([rec(intermediate.cert, 2)], [leaf.der, intermediate.der], [MX])
    assert result.failure == (None if matches else "ta-name-mismatch"), result.detail


# A subjectAltName whose DER does not parse (a GeneralNames SEQUENCE cut short).
MALFORMED_SAN = b"\x30\x03\x82\x01"


@pytest.mark.parametrize(
    ("san", "raw_san", "names", "source"),
    [
        (dns_names("a.example", "b.example"), None, ["a.example", "b.example"], "subjectAltName"),
        (None, None, [MX], "subject CN"),  # no SAN
        ([x509.RFC822Name("postmaster@example.com")], None, [MX], "subject CN"),  # no dNSName
        (None, MALFORMED_SAN, [], "unreadable extensions"),  # never the CN instead
    ],
    ids=["san", "no-san", "san-without-dnsname", "malformed-san"],
)
def test_certificate_names_san_else_cn(
    ca: tuple[Issued, Issued],
    san: list[x509.GeneralName] | None,
    raw_san: bytes | None,
    names: list[str],
    source: str,
) -> None:
    """One rule, seen alike by the matcher, ``tlsa --cert`` (dns_names) and the report."""
    _, intermediate = ca
    leaf = make(MX, intermediate, san=san, raw_san=raw_san)
    assert certificate_names(leaf.cert) == (names, source)
    assert names_of_der(leaf.der) == names
    assert describe(leaf.der)["dns_names"] == names


def test_malformed_san_is_not_authenticated_by_its_cn(ca: tuple[Issued, Issued]) -> None:
    """OpenSSL rejects such a leaf outright ("invalid certificate"); its CN, which names the
    MX host, must not authenticate it."""
    _, intermediate = ca
    leaf = make(MX, intermediate, raw_san=MALFORMED_SAN)
    result = authenticate([rec(intermediate.cert, 2)], [leaf.der, intermediate.der], [MX])
    assert not result.authenticated
    assert result.failure == "ta-chain-invalid", result.detail
    assert "(CN=mx.example.com) has malformed extensions" in result.detail


# -- DANE-TA chain validity -------------------------------------------------------------------


def _chain_rows() -> list[tuple[str, dict, dict, str | None]]:
    """(id, intermediate options, leaf options, expected detail fragment or None for pass)."""
    past, future = NOW - 3 * DAY, NOW + 3 * DAY
    return [
        ("valid", {}, {}, None),
        ("expired-intermediate", {"not_after": past}, {}, "expired on"),
        ("future-intermediate", {"not_before": future}, {}, "not valid before"),
        ("expired-leaf", {}, {"not_after": past}, "depth 0 (CN=mx.example.com) expired"),
        ("future-leaf", {}, {"not_before": future}, "not valid before"),
        ("intermediate-not-ca", {"ca": False}, {}, "is not a CA (basicConstraints CA:FALSE)"),
        ("intermediate-no-bc", {"ca": None}, {}, "is not a CA (no basicConstraints)"),
        (
            "intermediate-no-bc-but-certsign",
            {"ca": None, "key_usage": key_usage(cert_sign=True)},
            {},
            None,
        ),
        ("intermediate-no-certsign", {"key_usage": key_usage(cert_sign=False)}, {}, "keyCertSign"),
        ("intermediate-certsign", {"key_usage": key_usage(cert_sign=True)}, {}, None),
        ("leaf-eku-server", {}, {"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, None),
        ("leaf-eku-client-only", {}, {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, "serverAuth"),
        ("intermediate-eku-client", {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, {}, "serverAuth"),
    ]


@pytest.mark.parametrize(
    ("intermediate_options", "leaf_options", "problem"),
    [row[1:] for row in _chain_rows()],
    ids=[row[0] for row in _chain_rows()],
)
def test_dane_ta_on_root_checks_the_chain_below_it(
    intermediate_options: dict, leaf_options: dict, problem: str | None
) -> None:
    root = make("Root", ca=True)
    intermediate = make("CA", root, **{"ca": True, **intermediate_options})
    leaf = make(MX, intermediate, san=dns_names(MX), **leaf_options)
    result = authenticate([rec(root.cert, 2)], [leaf.der, intermediate.der, root.der], [MX])
    if problem is None:
        assert result.authenticated, result.detail
        assert result.depth == 2
    else:
        assert (result.failure, result.depth) == ("ta-chain-invalid", 2)
        assert problem in result.detail
        assert result.match is not None and result.match.certificate == root.cert


def test_an_expired_anchor_is_still_an_anchor() -> None:
    root = make("Root", ca=True, not_after=NOW - DAY)
    leaf = make(MX, root, san=dns_names(MX))
    result = authenticate([rec(root.cert, 2)], [leaf.der, root.der], [MX])
    assert result.authenticated and result.depth == 1


def test_now_decides_the_dates(chain: Chain) -> None:
    records, presented = [TLSARecord.from_text(chain.tlsa(2))], der(chain)
    assert authenticate(records, presented, [MX], now=NOW).authenticated
    late = authenticate(records, presented, [MX], now=dt.datetime(9000, 1, 1, tzinfo=dt.UTC))
    assert late.failure == "ta-chain-invalid" and "expired" in late.detail
    naive_early = dt.datetime(1971, 1, 1)  # naive: taken as UTC
    assert authenticate(records, presented, [MX], now=naive_early).failure == "ta-chain-invalid"


def test_path_length_constraint() -> None:
    root = make("Root", ca=True)
    upper = make("Upper", root, ca=True, path_length=0)
    lower = make("Lower", upper, ca=True)
    leaf = make(MX, lower, san=dns_names(MX))
    presented = [leaf.der, lower.der, upper.der]
    result = authenticate([rec(root.cert, 2, 0, 0)], presented, [MX])
    assert (result.failure, result.depth) == ("ta-chain-invalid", 3)
    assert "allows 0 intermediate CA(s) below it, but the chain has 1" in result.detail
    # Anchored lower, the constraint above the anchor does not matter.
    assert authenticate([rec(lower.cert, 2)], presented, [MX]).authenticated


def test_forged_signature_fails() -> None:
    root = make("Root", ca=True)
    intermediate = make("CA", root, ca=True)
    impostor = make("CA", root, ca=True)  # same name, another key
    leaf = make(MX, intermediate, san=dns_names(MX), signer=impostor)
    result = authenticate([rec(root.cert, 2)], [leaf.der, intermediate.der, root.der], [MX])
    assert result.failure == "ta-chain-invalid"
    assert "signature on the certificate at depth 0" in result.detail


def test_a_ta_record_for_the_leaf_itself_is_not_an_anchor() -> None:
    """OpenSSL looks for DANE-TA anchors at depth >= 1 only; 3 x x is the record for that."""
    leaf = self_signed([MX]).leaf
    result = authenticate([rec(leaf, 2)], der([leaf]), [MX])
    assert (result.failure, result.depth) == ("ta-chain-invalid", -1)
    assert "the leaf certificate itself" in result.detail


def test_a_ta_record_for_an_unrelated_presented_certificate(chain: Chain) -> None:
    other = self_signed(["junk.example"]).leaf
    result = authenticate([rec(other, 2)], [*der(chain), other.public_bytes(DER)], [MX])
    assert result.failure == "ta-chain-invalid"
    assert "no chain from the leaf up to it" in result.detail
    assert [h.depth for h in result.hits] == [2]


def test_missing_intermediate(pki: PKI, chain: Chain) -> None:
    result = authenticate([rec(pki.root_cert, 2, 0, 0)], der(chain)[:1], [MX])
    assert result.failure == "tlsa-mismatch"


# -- several records: EE before TA, hits, digest agility --------------------------------------


def test_every_hit_is_reported_and_dane_ee_wins(chain: Chain) -> None:
    ee, ta = TLSARecord.from_text(chain.tlsa(3)), TLSARecord.from_text(chain.tlsa(2))
    stale = wrong(ee)
    result = authenticate([stale, ta, ee], der(chain), [MX])
    assert result.authenticated and result.match.record == ee and result.depth == 0
    assert [(h.record, h.depth) for h in result.hits] == [(ee, 0), (ta, 1)]


@pytest.mark.parametrize(
    ("records", "authenticated", "ignored"),
    [
        # (usage, selector, mtype, right?) ...
        ([(3, 1, 2, False), (3, 1, 1, True)], False, [(3, 1, 1)]),
        ([(3, 1, 2, True), (3, 1, 1, False)], True, [(3, 1, 1)]),
        ([(3, 1, 2, True), (3, 1, 1, True)], True, [(3, 1, 1)]),
        ([(3, 1, 0, True), (3, 1, 2, False)], True, []),  # Full(0) always takes part
        ([(3, 1, 0, False), (3, 1, 1, True)], True, []),
        ([(3, 0, 2, False), (3, 1, 1, True)], True, []),  # another selector: another group
        ([(2, 1, 2, False), (3, 1, 1, True)], True, []),  # another usage: another group
        ([(2, 1, 2, False), (2, 1, 1, True)], False, [(2, 1, 1)]),
        ([(3, 1, 2, False), (3, 1, 2, True), (3, 1, 1, False)], True, [(3, 1, 1)]),
    ],
)
def test_digest_agility(
    chain: Chain, records: list[tuple[int, int, int, bool]], authenticated: bool, ignored: list
) -> None:
    made = []
    for usage, selector, mtype, right in records:
        record = TLSARecord.from_text(chain.tlsa(usage, selector, mtype))
        made.append(record if right else wrong(record))
    result = authenticate(made, der(chain), [MX])
    assert result.authenticated == authenticated, result.detail
    assert [(r.usage, r.selector, r.mtype) for r in result.ignored_by_agility] == ignored
    if not authenticated:
        assert result.failure == "tlsa-mismatch"
        assert "ignored by digest agility" in result.detail


def test_unusable_records_do_not_take_part_in_agility(chain: Chain) -> None:
    bad = TLSARecord(3, 1, 2, b"\x00" * 32)  # a SHA-512 record with 32 bytes
    good = TLSARecord.from_text(chain.tlsa(3, 1, 1))
    result = authenticate([bad, good], der(chain), [MX])
    assert result.authenticated
    assert result.unusable == [(bad, "bad-digest-length")]
    assert result.ignored_by_agility == []


def test_no_usable_records(chain: Chain) -> None:
    pkix = [TLSARecord.from_text(chain.tlsa(1)), TLSARecord.from_text(chain.tlsa(0))]
    result = authenticate(pkix, der(chain), [MX])
    assert (result.authenticated, result.failure, result.depth) == (False, "no-usable-records", -1)
    assert result.unusable == [(r, "pkix-usage") for r in pkix]
    assert "pkix-usage" in result.detail
    # The PKIX records do match; hits only cover usable records.
    assert result.hits == []
    assert authenticate([], der(chain), [MX]).failure == "no-usable-records"


# -- garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "presented",
    [[], [b""], [b"garbage"], [b"\x30\x82\xff\xff"], ["not bytes"], [None]],
    ids=["empty", "empty-der", "garbage", "truncated", "str", "none"],
)
def test_garbage_leaf(chain: Chain, presented: list) -> None:
    result = authenticate([TLSARecord.from_text(chain.tlsa(3))], presented, [MX])
    assert (result.authenticated, result.failure, result.depth) == (False, "cert-unparsable", -1)


def test_truncated_leaf(chain: Chain) -> None:
    leaf = der(chain)[0]
    result = authenticate([TLSARecord.from_text(chain.tlsa(3))], [leaf[:-1]], [MX])
    assert result.failure == "cert-unparsable"


def test_garbage_between_good_certificates_is_skipped(chain: Chain) -> None:
    leaf, intermediate = der(chain)
    presented = [leaf, b"junk", intermediate[:50], intermediate]
    result = authenticate([TLSARecord.from_text(chain.tlsa(2))], presented, [MX])
    assert result.authenticated and result.depth == 1


def counted_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the certificate signature verifications authenticate() makes: the work it
    does, which is what must stay bounded (how fast that is, is the machine's business)."""
    calls = [0]
    real = tlsa_module._signed_by

    def counting(cert, key):
        calls[0] += 1
        return real(cert, key)

    monkeypatch.setattr(tlsa_module, "_signed_by", counting)
    return calls


def test_huge_chains_are_capped(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    leaf, intermediate = der(chain)
    junk = [self_signed([f"j{i}.example"]).leaf.public_bytes(DER) for i in range(4)]
    calls = counted_signature_checks(monkeypatch)
    result = authenticate(
        [TLSARecord.from_text(chain.tlsa(2))], [leaf, *junk * 50, intermediate], [MX]
    )
    assert result.failure == "tlsa-mismatch"  # the intermediate is beyond MAX_CHAIN
    ok = authenticate([TLSARecord.from_text(chain.tlsa(2))], [leaf, *junk * 3, intermediate], [MX])
    assert ok.authenticated
    # each (certificate, key) pair is checked at most once, over at most MAX_CHAIN
    # certificates per call: 202 presented certificates cost no more than 16
    assert calls[0] <= 2 * MAX_CHAIN * MAX_CHAIN
    assert MAX_CHAIN == 16


def test_many_same_named_cas_do_not_explode_or_hide_the_real_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """15 certificates of one name, cross-signed among themselves, before the real issuer:
    the search is bounded and still finds the chain the signatures support."""
    root = make("Root", ca=True)
    cas = [make("Same", root, ca=True) for _ in range(8)]
    leaf = make(MX, cas[0], san=dns_names(MX))
    cross = [make("Same", cas[i], ca=True) for i in range(7)]
    presented = [leaf.der, *(c.der for c in cross), *(c.der for c in cas[1:]), cas[0].der]
    calls = counted_signature_checks(monkeypatch)
    for record in (rec(root.cert, 2, 0, 0), rec(root.cert, 2, 1, 0)):
        result = authenticate([TLSARecord(2, 1, 1, b"\x01" * 32), record], presented, [MX])
        assert result.authenticated, result.detail
        assert result.match.path[:2] == (leaf.cert, cas[0].cert)
    # memoised per (certificate, key): no more checks than pairs, whatever the search order
    n = len(presented) + 1  # and the anchor's certificate
    assert calls[0] <= 2 * n * n


def test_the_record_may_carry_absurd_data(chain: Chain) -> None:
    huge = TLSARecord(2, 0, 0, b"\x30" * 100_000)
    result = authenticate([huge], der(chain), [MX])
    assert result.unusable == [(huge, "bad-full-data")]


_real = PKI().issue([MX], include_root=True)
_REAL_DER = der(_real)
_REAL_RECORDS = [
    TLSARecord.from_text(_real.tlsa(u, s, m, depth=d))
    for u, d in ((3, 0), (2, 1), (2, 2))
    for s in (0, 1)
    for m in (0, 1, 2)
]


def _mutated(data: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
        lambda p: data[: p[0]] + bytes([data[p[0]] ^ p[1]]) + data[p[0] + 1 :]
    )


_cert_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(_REAL_DER),
    *(_mutated(d) for d in _REAL_DER),
    st.sampled_from(_REAL_DER).map(lambda d: d[: len(d) // 2]),
)
_records = st.one_of(
    st.builds(
        TLSARecord,
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=100),
    ),
    st.builds(
        TLSARecord,
        st.integers(2, 3),
        st.integers(0, 1),
        st.integers(0, 2),
        st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64)),
    ),
    st.sampled_from(_REAL_RECORDS),
    st.sampled_from(_REAL_RECORDS).map(wrong),
)


_chains = st.one_of(
    st.lists(_cert_bytes, max_size=20),
    # The real leaf first, then a shuffle of real, mutated and junk certificates.
    st.lists(_cert_bytes, max_size=6).map(lambda rest: [_REAL_DER[0], *rest]),
)
_names = st.lists(st.one_of(st.text(max_size=30), st.sampled_from([MX, "MX.example.com."])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(_records, max_size=6),
    presented=_chains,
    names=_names.map(lambda names: names[:3]),
)
def test_never_raises(records: list[TLSARecord], presented: list[bytes], names: list[str]) -> None:
    result = authenticate(records, presented, names)
    assert result.authenticated == (result.failure is None)
    assert result.failure is None or result.failure in FAILURES
    assert result.detail
    assert result.depth >= -1
    assert len(result.unusable) + sum(1 for r in records if r.usable) == len(records)
    suggest_records(presented)


# -- suggestions, and agreement with the openssl CLI ----------------------------------------


def test_suggest_records(chain: Chain) -> None:
    assert suggest_records(der(chain)) == [chain.tlsa(3), chain.tlsa(2)]
    leaf = self_signed([MX]).leaf
    assert suggest_records(der([leaf])) == [rdata_text(leaf, 3, 1, 1)]
    # Unordered, with junk: the issuing CA is found wherever it is.
    leaf_der, intermediate_der = der(chain)
    assert suggest_records([leaf_der, b"junk", der([leaf])[0], intermediate_der]) == [
        chain.tlsa(3),
        chain.tlsa(2),
    ]
    assert suggest_records([]) == [] and suggest_records([b"junk"]) == []
    assert spki_sha256(leaf_der) == chain.tlsa(3).split()[3]
    with pytest.raises(ValueError, match="certificate"):
        spki_sha256(b"junk")


def _openssl(*args: str, stdin: bytes) -> bytes:
    return subprocess.run(
        ["openssl", *args], input=stdin, capture_output=True, timeout=20, check=True
    ).stdout


@pytest.mark.openssl
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_association_data_and_suggestions_equal_openssl_cli(key_type: str) -> None:
    chain = PKI(key_type).issue([MX], key_type=key_type)  # type: ignore[arg-type]
    expected = []
    for usage, cert in ((3, chain.leaf), (2, chain.certs[1])):
        pem = cert.public_bytes(serialization.Encoding.PEM)
        spki = _openssl(
            "pkey",
            "-pubin",
            "-outform",
            "DER",
            stdin=_openssl("x509", "-pubkey", "-noout", stdin=pem),
        )
        sha256 = _openssl("dgst", "-sha256", "-r", stdin=spki).split()[0].decode()
        cert_der = _openssl("x509", "-outform", "DER", stdin=pem)
        assert association_data(cert, 1, 0) == spki
        assert association_data(cert, 1, 1).hex() == sha256
        assert association_data(cert, 0, 0) == cert_der
        assert spki_sha256(cert_der) == sha256
        expected.append(f"{usage} 1 1 {sha256}")
    assert suggest_records(der(chain)) == expected
    # And the records built from openssl's digests authenticate the chain.
    result = authenticate([TLSARecord.from_text(t) for t in expected], der(chain), [MX])
    assert result.authenticated and len(result.hits) == 2
