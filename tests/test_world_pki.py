"""Chains from dane_monitor.world.pki: structure, validity, key types, and TLSA data that the
openssl command line computes the same way."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dane_monitor.world.pki import PKI, Chain, self_signed

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")

KEY_CLASSES = {"ecdsa": ec.EllipticCurvePublicKey, "rsa": rsa.RSAPublicKey}


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module", params=["ecdsa", "rsa"])
def chain(request: pytest.FixtureRequest, pki: PKI) -> Chain:
    return pki.issue(["mail.example.", "mx.example"], key_type=request.param)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def openssl(*args: str, stdin: bytes = b"") -> bytes:
    done = subprocess.run(
        ["openssl", *args], input=stdin, capture_output=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def openssl_tlsa(cert: x509.Certificate, selector: int) -> str:
    """SHA-256 association data computed by the openssl CLI alone."""
    if selector == 1:
        spki_pem = openssl("x509", "-pubkey", "-noout", stdin=pem(cert))
        selected = openssl("pkey", "-pubin", "-outform", "DER", stdin=spki_pem)
    else:
        selected = openssl("x509", "-outform", "DER", stdin=pem(cert))
    return openssl("dgst", "-sha256", "-r", stdin=selected).split()[0].decode()


# -- structure ------------------------------------------------------------------------------


def test_chain_is_leaf_intermediate_and_each_cert_signed_by_the_next(chain: Chain) -> None:
    assert len(chain.certs) == 2
    assert chain.intermediate is chain.certs[1]
    assert chain.root is not None
    assert chain.root not in chain.certs
    path = chain.path
    assert path == (*chain.certs, chain.root)
    for cert, issuer in itertools.pairwise(path):
        cert.verify_directly_issued_by(issuer)
    chain.root.verify_directly_issued_by(chain.root)
    basic = [c.extensions.get_extension_for_class(x509.BasicConstraints).value for c in path]
    assert [b.ca for b in basic] == [False, True, True]


def test_leaf_names_lose_trailing_dot_and_first_is_cn(chain: Chain) -> None:
    assert chain.names == ("mail.example", "mx.example")
    cn = chain.leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["mail.example"]


def test_key_types(pki: PKI, chain: Chain) -> None:
    key_class = KEY_CLASSES[chain.key_type]
    assert isinstance(chain.leaf.public_key(), key_class)
    assert isinstance(chain.intermediate.public_key(), key_class)
    # one root per PKI, of the PKI's key type, over both intermediates
    assert chain.root == pki.root_cert
    assert isinstance(chain.root.public_key(), ec.EllipticCurvePublicKey)
    key = serialization.load_pem_private_key(chain.key_pem, None)
    assert key.public_key() == chain.leaf.public_key()


def test_rsa_pki_and_intermediate_reused(pki: PKI) -> None:
    rsa_pki = PKI("rsa", name="rsa test")
    one, two = rsa_pki.issue(["a.example"]), rsa_pki.issue(["b.example"])
    assert one.key_type == two.key_type == "rsa"
    assert isinstance(rsa_pki.root_cert.public_key(), rsa.RSAPublicKey)
    assert one.intermediate == two.intermediate == rsa_pki.intermediate_cert()
    assert one.leaf != two.leaf
    assert pki.issue(["a.example"]).intermediate == pki.intermediate_cert("ecdsa")


def test_include_root_and_directly_under_root(pki: PKI) -> None:
    with_root = pki.issue(["mail.example"], include_root=True)
    assert with_root.certs[-1] == pki.root_cert == with_root.root
    assert with_root.path == with_root.certs
    assert with_root.intermediate == pki.intermediate_cert()

    direct = pki.issue(["mail.example"], via_intermediate=False)
    assert len(direct.certs) == 1
    assert direct.intermediate is None
    direct.leaf.verify_directly_issued_by(pki.root_cert)
    assert direct.tlsa(2) == with_root.tlsa(2, depth=2)  # usage 2 defaults to the root here


def test_expired_and_explicit_validity(pki: PKI) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = pki.issue(["mail.example"], expired=True)
    assert expired.leaf.not_valid_after_utc < now
    assert expired.leaf.not_valid_before_utc < expired.leaf.not_valid_after_utc
    assert expired.intermediate.not_valid_after_utc > now  # only the leaf expired

    start, end = now - dt.timedelta(days=3), now + dt.timedelta(days=7)
    window = pki.issue(["mail.example"], not_before=start, not_after=end)
    assert window.leaf.not_valid_before_utc == start.replace(microsecond=0)
    assert window.leaf.not_valid_after_utc == end.replace(microsecond=0)

    with pytest.raises(ValueError, match="expired"):
        pki.issue(["mail.example"], expired=True, not_after=end)


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_self_signed(key_type: str) -> None:
    chain = self_signed(["mail.example."], key_type=key_type)
    assert chain.root is None
    assert chain.intermediate is None
    assert chain.certs == chain.path == (chain.leaf,)
    assert chain.leaf.issuer == chain.leaf.subject
    chain.leaf.verify_directly_issued_by(chain.leaf)
    assert chain.key_type == key_type
    assert isinstance(chain.leaf.public_key(), KEY_CLASSES[key_type])
    assert chain.names == ("mail.example",)
    assert chain.tlsa(2) == chain.tlsa(3).replace("3", "2", 1)  # its own anchor
    assert self_signed(["mail.example"], expired=True).leaf.not_valid_after_utc < dt.datetime.now(
        dt.UTC
    )


def test_bad_arguments(pki: PKI, chain: Chain) -> None:
    with pytest.raises(TypeError):
        pki.issue("mail.example")
    with pytest.raises(ValueError, match="name"):
        pki.issue(["."])
    with pytest.raises(ValueError, match="key_type"):
        PKI("dsa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        chain.tlsa(2, depth=3)


def test_write_loads_into_ssl_context(tmp_path: Path, pki: PKI, chain: Chain) -> None:
    other = pki.issue(["other.example"])
    certfile, keyfile = chain.write(tmp_path)
    certfile2, _ = other.write(tmp_path)
    assert certfile != certfile2
    assert certfile.read_bytes() == chain.chain_pem() == b"".join(pem(c) for c in chain.certs)
    assert keyfile.read_bytes() == chain.key_pem
    assert keyfile.stat().st_mode & 0o077 == 0
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)


def test_tlsa_defaults(chain: Chain) -> None:
    assert chain.tlsa(3).startswith("3 1 1 ")
    assert len(chain.tlsa(3).split()[3]) == 64
    assert len(chain.tlsa(3, 0, 2).split()[3]) == 128
    assert chain.tlsa(3) == chain.tlsa(3, depth=0)
    assert chain.tlsa(2) == chain.tlsa(2, depth=1)
    assert chain.tlsa(2).split()[3] != chain.tlsa(2, depth=2).split()[3]


# -- independent confirmation by the openssl CLI ----------------------------------------------


@pytest.mark.openssl
@needs_openssl
@pytest.mark.parametrize("selector", [1, 0])
def test_tlsa_equals_openssl_cli(chain: Chain, selector: int) -> None:
    leaf, intermediate, root = chain.path
    assert chain.tlsa(3, selector, 1) == f"3 {selector} 1 {openssl_tlsa(leaf, selector)}"
    assert chain.tlsa(2, selector, 1) == f"2 {selector} 1 {openssl_tlsa(intermediate, selector)}"
    assert chain.tlsa(2, selector, 1, depth=2) == f"2 {selector} 1 {openssl_tlsa(root, selector)}"


@pytest.mark.openssl
@needs_openssl
def test_openssl_verifies_the_chain_and_the_expiry(tmp_path: Path, pki: PKI, chain: Chain) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root_pem)
    good = tmp_path / "good.pem"
    good.write_bytes(chain.chain_pem())
    # the leaf is the first certificate of the file; the rest are untrusted intermediates
    untrusted = tmp_path / "untrusted.pem"
    untrusted.write_bytes(pem(chain.intermediate))
    out = openssl(
        "verify", "-CAfile", str(root), "-untrusted", str(untrusted),
        "-verify_hostname", "mx.example", str(good),
    )  # fmt: skip
    assert out.strip().endswith(b"OK")

    expired = tmp_path / "expired.pem"
    expired.write_bytes(
        pem(pki.issue(["mail.example"], key_type=chain.key_type, expired=True).leaf)
    )
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(untrusted), str(expired)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert done.returncode != 0
    assert b"certificate has expired" in done.stdout + done.stderr
