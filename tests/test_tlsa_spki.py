"""One SPKI digest path (RFC 6698 §1.1.2): every digest of a SubjectPublicKeyInfo is taken over
the bytes as they appear in the certificate, never over a re-encoded key.

The reference is OpenSSL, which keeps the point encoding of the key it parsed:
``openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256``.
An EC key encoded as a compressed point is where a re-encoding path goes wrong (the key comes
out uncompressed, with another digest); RSA and Ed25519 keys have one encoding only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from dane_monitor import tlsa as T
from dane_monitor.cli import main
from dane_monitor.world import PKI, World, self_signed
from dane_monitor.world.scenarios import by_name

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl_spki_sha256(cert_pem: bytes) -> str:
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=cert_pem,
                         capture_output=True, check=True).stdout  # fmt: skip
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout  # fmt: skip
    out = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=der, capture_output=True,
                         check=True).stdout  # fmt: skip
    return out.split()[0].decode()


def ed25519_leaf(name: str) -> x509.Certificate:
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, None)
    )


_PKI: dict[str, PKI] = {}


def leaf(kind: str) -> tuple[x509.Certificate, list[bytes]]:
    """A leaf of ``kind`` and the chain a server would send with it."""
    if kind == "ed25519":
        cert = ed25519_leaf("mail.example.de")
        return cert, [cert.public_bytes(DER)]
    key_type = "rsa" if kind == "rsa" else "ecdsa"
    pki = _PKI.setdefault(key_type, PKI(key_type))
    chain = pki.issue(["mail.example.de"], compressed=kind == "ec-compressed")
    return chain.leaf, [c.public_bytes(DER) for c in chain.certs]


KINDS = ["ec-compressed", "ec-uncompressed", "rsa", "ed25519"]


def test_a_compressed_point_leaf_carries_a_compressed_spki() -> None:
    cert, _ = leaf("ec-compressed")
    raw = T.spki_der(cert)
    reencoded = cert.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert raw != reencoded  # the case a re-encoding path gets wrong
    assert raw[-33] in (2, 3) and len(raw) == 59  # 0x02/0x03 || x: 33 bytes of point
    assert cert.public_key() == x509.load_der_x509_certificate(cert.public_bytes(DER)).public_key()


@pytest.mark.openssl
@needs_openssl
@pytest.mark.parametrize("kind", KINDS)
def test_every_spki_digest_is_openssls(kind: str, tmp_path: Path, capsys) -> None:
    cert, chain = leaf(kind)
    want = openssl_spki_sha256(cert.public_bytes(PEM))
    assert want == hashlib.sha256(T.spki_der(cert)).hexdigest()
    # the library's helpers, from the certificate object and from its DER
    assert T.association_data(cert, 1, 1).hex() == want
    assert T.association_data(chain[0], 1, 1).hex() == want
    assert T.rdata_text(cert, 3, 1, 1) == f"3 1 1 {want}"
    assert T.spki_sha256(chain[0]) == want
    assert T.suggest_records(chain, usages=[3]) == [f"3 1 1 {want}"]
    # the matcher authenticates the record built from it
    record = T.TLSARecord.from_text(T.rdata_text(cert, 3, 1, 1))
    assert T.authenticate([record], chain, ["mail.example.de"]).authenticated
    # and `dane-monitor tlsa --cert` prints it
    certfile = tmp_path / "leaf.pem"
    certfile.write_bytes(cert.public_bytes(PEM))
    assert main(["tlsa", "--cert", str(certfile)]) == 0
    assert capsys.readouterr().out == f"_25._tcp.mail.example.de. IN TLSA 3 1 1 {want}\n"


@pytest.mark.openssl
@needs_openssl
@pytest.mark.parametrize("kind", ["ec-compressed", "ec-uncompressed"])
def test_the_worlds_records_are_openssls(kind: str) -> None:
    compressed = kind == "ec-compressed"
    issued = PKI().issue(["mx.example"], compressed=compressed)
    alone = self_signed(["mx.example"], compressed=compressed)
    for chain in (issued, alone):
        want = openssl_spki_sha256(chain.leaf.public_bytes(PEM))
        assert chain.tlsa(3) == f"3 1 1 {want}"


def test_compressed_needs_an_ec_key() -> None:
    with pytest.raises(ValueError, match="ECDSA"):
        PKI("rsa").issue(["mx.example"], key_type="rsa", compressed=True)
    with pytest.raises(ValueError, match="ECDSA"):
        self_signed(["mx.example"], key_type="rsa", compressed=True)


@pytest.mark.openssl
@needs_openssl
def test_checker_authenticates_a_compressed_point_server_end_to_end(
    dane_world_factory, tmp_path: Path, capsys
) -> None:
    """The world serves the compressed leaf over STARTTLS; `check` matches its 3 1 1 record
    and reports the served key's digest as OpenSSL computes it."""
    world: World = dane_world_factory([by_name("ec-compressed")], smtp_network="127.0.5.0/24")
    domain = world.domains["ec-compressed"]
    served = domain.hosts[0].endpoints[0].chains[0].leaf
    want = openssl_spki_sha256(served.public_bytes(PEM))
    assert domain.hosts[0].tlsa_rdatas == (f"3 1 1 {want}",)
    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = world.dns_address
    code = main(["check", "--json", domain.name, "--resolver", f"{host}:{port}",
                 "--trust-anchor", str(anchor), "--connect-port", str(world.smtp_port),
                 "--timeout", "5"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert (code, out["verdict"]) == (0, "valid"), out
    (ep,) = out["hosts"][0]["endpoints"]
    assert ep["authenticated"] is True
    assert ep["match"]["record"] == f"3 1 1 {want}"
    assert ep["leaf_spki_sha256"] == want  # the served key's digest, as served
