"""`dane-monitor lookup` as an operator runs it: exit codes, reasons, bad options."""

from __future__ import annotations

import json

import pytest

from dane_monitor.cli import main
from dane_monitor.world import World


@pytest.fixture(scope="module")
def opts(dane_world: World, tmp_path_factory) -> list[str]:
    anchor = dane_world.write_trust_anchor(tmp_path_factory.mktemp("ta") / "anchor.ds")
    host, port = dane_world.dns_address
    return ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor)]


@pytest.mark.parametrize(
    ("name", "rdtype", "code", "status", "reason"),
    [
        ("_25._tcp.mx1.good-ee.example.", "TLSA", 0, "secure", None),
        ("_25._tcp.mx1.no-tlsa.example.", "TLSA", 0, "secure", None),
        ("_25._tcp.mx1.insecure-with-tlsa.example.", "TLSA", 1, "insecure", "insecure-delegation"),
        ("_25._tcp.mx1.bogus-signature.example.", "TLSA", 2, "bogus", "bad-signature"),
        ("mx1.bogus-expired.example.", "A", 2, "bogus", "signature-expired"),
        ("mx1.bogus-ds.example.", "A", 2, "bogus", "no-matching-ds"),
    ],
)
def test_lookup_json(opts, capsys, name, rdtype, code, status, reason):
    assert main(["lookup", name, rdtype, "--json", *opts]) == code
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["reason"]) == (status, reason)
    if status == "secure":
        assert out["rrsig_expiration"]


def test_lookup_text_follows_cnames(opts, capsys):
    assert main(["lookup", "mail.cname-mx.example", "A", *opts]) == 0
    out = capsys.readouterr().out
    assert "CNAME mail.cname-mx.example. -> real-mx.cname-mx.example. (secure)" in out
    assert "earliest signature expiry on the path" in out


def test_lookup_without_the_worlds_anchor_is_bogus(dane_world: World, capsys):
    host, port = dane_world.dns_address
    # The built-in IANA root anchors do not match the world's private root.
    assert main(["lookup", "mx1.good-ee.example", "--resolver", f"{host}:{port}"]) == 2
    assert "no-matching-ds" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trust-anchor", "/nonexistent/anchor"], "cannot read trust anchors"),
        (["--resolver", "resolver.example"], "argument --resolver: a resolver is an IP address"),
    ],
)
def test_lookup_bad_options_say_what_is_wrong(capsys, args, message):
    assert main(["lookup", "example.", *args]) == 3
    assert message in capsys.readouterr().err


def test_bad_trust_anchor_file_names_the_problem(tmp_path, capsys):
    bad = tmp_path / "anchor"
    bad.write_text("example. IN A 192.0.2.1\n")
    assert main(["lookup", "example.", "--trust-anchor", str(bad), "--resolver", "127.0.0.1"]) == 3
    assert "only DS and DNSKEY records can be trust anchors" in capsys.readouterr().err


@pytest.mark.parametrize("rdtype", ["ANY", "RRSIG", "AXFR"])
def test_a_question_that_names_no_rrset_is_refused_clearly(opts, capsys, rdtype):
    """RFC 6840 §5.9 leaves ANY to the validator: we refuse it (and other meta-types) with a
    reason that says what to do, and never send the question."""
    assert main(["lookup", "good-ee.example.", rdtype, *opts]) == 3
    out = capsys.readouterr().out
    assert "unsupported-qtype" in out
    assert "ask for each type on its own" in out


EXPECTED = "expected DS or DNSKEY lines in zone-file format, as Unbound's trust-anchor-file"
ANCHOR_FILES = [
    # (file content, what the message says the file is)
    (b"", "no DS or DNSKEY records (the file is empty)"),
    (b"; just a comment\n", "no DS or DNSKEY records (only comments)"),
    (b"garbage here\n", ":1: not a trust anchor: 'garbage here'"),
    (b"; c\n. IN DS 20326 8 2 ZZ\n", ":2: not a trust anchor: '. IN DS 20326 8 2 ZZ'"),
    (b'trust-anchors {\n\t"." static-ds 20326 8 2 "E0";\n};\n', "BIND's trust-anchors clause"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM (CERTIFICATE)"),
    (b'<?xml version="1.0"?>\n<TrustAnchor id="x">\n', "XML (IANA's root-anchors.xml?)"),
    (bytes([0x30, 0x82, 0x01, 0x0A, 0xFF, 0xFE]), "looks like DER"),
]


@pytest.mark.parametrize(("data", "what"), ANCHOR_FILES, ids=[w for _, w in ANCHOR_FILES])
def test_a_garbage_trust_anchor_file_says_what_it_is_and_what_was_expected(
    tmp_path, capsys, data, what
):
    path = tmp_path / "anchor"
    path.write_bytes(data)
    assert main(["lookup", "example.", "--trust-anchor", str(path), "--resolver", "127.0.0.1"]) == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"dane-monitor lookup: {path}")
    assert what in err
    assert EXPECTED in err
