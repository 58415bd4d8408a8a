"""`dane-monitor tlsa` and `preflight`, as a mail operator and a renewal hook use them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from dane_monitor.cli import main
from dane_monitor.world import PKI, World


def openssl_digest(cert_pem: bytes, selector: int, mtype: int) -> str:
    """What OpenSSL computes: the certificate or its SPKI in DER, hashed."""
    if selector == 1:
        pub = subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=cert_pem,
                             capture_output=True, check=True).stdout  # fmt: skip
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                             capture_output=True, check=True).stdout  # fmt: skip
    else:
        der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=cert_pem,
                             capture_output=True, check=True).stdout  # fmt: skip
    if mtype == 0:
        return der.hex()
    algo = {1: "-sha256", 2: "-sha512"}[mtype]
    out = subprocess.run(["openssl", "dgst", algo, "-r"], input=der, capture_output=True,
                         check=True).stdout  # fmt: skip
    return out.split()[0].decode()


@pytest.mark.openssl
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
@pytest.mark.parametrize(("selector", "mtype"), [(1, 1), (1, 2), (0, 1), (0, 2), (1, 0)])
def test_tlsa_from_a_certificate_equals_openssl(tmp_path, capsys, key_type, selector, mtype):
    chain = PKI(key_type).issue(["mail.example.de"], key_type=key_type)
    certfile, _ = chain.write(tmp_path)
    args = ["tlsa", "--cert", str(certfile), "--usage", "3", "--usage", "2",
            "--selector", str(selector), "--matching-type", str(mtype)]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    leaf_pem = chain.leaf.public_bytes(Encoding.PEM)
    ca_pem = chain.intermediate.public_bytes(Encoding.PEM)
    owner = "_25._tcp.mail.example.de. IN TLSA"
    assert lines == [
        f"{owner} 3 {selector} {mtype} {openssl_digest(leaf_pem, selector, mtype)}",
        f"{owner} 2 {selector} {mtype} {openssl_digest(ca_pem, selector, mtype)}",
    ]


def test_tlsa_default_is_3_1_1_and_port_goes_into_the_owner(tmp_path, capsys):
    chain = PKI().issue(["mx.example.org"])
    certfile, _ = chain.write(tmp_path)
    assert main(["tlsa", "--cert", str(certfile), "--port", "465"]) == 0
    assert capsys.readouterr().out == f"_465._tcp.mx.example.org. IN TLSA {chain.tlsa(3)}\n"


def test_tlsa_from_a_live_dual_key_server_prints_both_keys(dane_world: World, capsys):
    host = dane_world.domains["dual-key-both"].hosts[0]
    endpoint = host.endpoints[0]
    args = [
        "tlsa",
        "--server",
        host.name,
        "--connect",
        f"{endpoint.address}:{dane_world.smtp_port}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    want = [f"_25._tcp.{host.name} IN TLSA {c.tlsa(3)}" for c in endpoint.chains]
    assert sorted(out) == sorted(want)


def _files(tmp_path) -> dict[str, tuple[bytes, str]]:
    """Files people give where a certificate belongs, and what the error must say."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    chain = PKI().issue(["mail.example.de"])
    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.de")]))
        .sign(key, hashes.SHA256())
    )
    want = "give the certificate (chain) PEM"
    return {
        "empty": (b"", f"is empty: {want}"),
        "blank": (b"\n  \n", f"is empty: {want}"),
        "key.pem": (
            key.private_bytes(Encoding.PEM, pkcs8, none),
            f"holds a PRIVATE KEY, not a certificate: {want}",
        ),
        "ec-key.pem": (
            key.private_bytes(Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, none),
            f"holds an EC PRIVATE KEY, not a certificate: {want}",
        ),
        "key.der": (
            key.private_bytes(Encoding.DER, pkcs8, none),
            f"holds a PRIVATE KEY (DER), not a certificate: {want}",
        ),
        "csr.pem": (csr.public_bytes(Encoding.PEM), "holds a CERTIFICATE REQUEST (CSR)"),
        "pub.pem": (
            key.public_key().public_bytes(
                Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            f"holds a PUBLIC KEY, not a certificate: {want}",
        ),
        "text": (b"not a certificate\n", "holds text that is not PEM (it starts 'not a ce"),
        "binary": (bytes(range(256)), "is neither a PEM nor a DER certificate"),
        "cut.pem": (
            chain.leaf.public_bytes(Encoding.PEM)[:200],
            f"holds a PEM block without its END line: {want}",
        ),
        "damaged.pem": (
            chain.leaf.public_bytes(Encoding.PEM).replace(b"MII", b"AAA", 1),
            "a CERTIFICATE block does not decode",
        ),
    }


@pytest.mark.parametrize(
    "name",
    ["empty", "blank", "key.pem", "ec-key.pem", "key.der", "csr.pem", "pub.pem", "text",
     "binary", "cut.pem", "damaged.pem"],
)  # fmt: skip
@pytest.mark.parametrize("command", ["tlsa", "preflight"])
def test_a_file_that_is_not_a_certificate_says_what_it_is(tmp_path, capsys, name, command):
    data, message = _files(tmp_path)[name]
    path = tmp_path / name
    path.write_bytes(data)
    extra = (
        ["--mx", "mail.example.de", "--resolver", "127.0.0.1:9"] if command == "preflight" else []
    )
    assert main([command, "--cert", str(path), *extra]) == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert f"{path} {message}" in err or f"{path}: {message}" in err, err


def test_a_combined_key_and_certificate_file_is_read_for_its_certificate(tmp_path, capsys):
    chain = PKI().issue(["mx.example.org"])
    certfile, keyfile = chain.write(tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_bytes(keyfile.read_bytes() + certfile.read_bytes())
    assert main(["tlsa", "--cert", str(combined)]) == 0
    assert capsys.readouterr().out == f"_25._tcp.mx.example.org. IN TLSA {chain.tlsa(3)}\n"


def test_a_der_certificate_is_read(tmp_path, capsys):
    chain = PKI().issue(["mx.example.org"])
    der = tmp_path / "leaf.der"
    der.write_bytes(chain.leaf.public_bytes(Encoding.DER))
    assert main(["tlsa", "--cert", str(der)]) == 0
    assert capsys.readouterr().out == f"_25._tcp.mx.example.org. IN TLSA {chain.tlsa(3)}\n"


def test_tlsa_without_a_source_or_with_a_missing_file(tmp_path, capsys):
    assert main(["tlsa"]) == 3
    assert "give --cert FILE or --server HOST" in capsys.readouterr().err
    assert main(["tlsa", "--cert", str(tmp_path / "missing.pem")]) == 3
    assert "No such file or directory" in capsys.readouterr().err


@pytest.fixture
def dns_opts(dane_world: World, tmp_path) -> list[str]:
    anchor = dane_world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = dane_world.dns_address
    return ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor)]


def test_preflight_accepts_the_certificate_the_records_match(
    dane_world, dns_opts, tmp_path, capsys
):
    host = dane_world.domains["good-ee"].hosts[0]
    certfile, _ = host.endpoints[0].chains[0].write(tmp_path)
    assert main(["preflight", "--cert", str(certfile), "--mx", host.name, *dns_opts]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


def test_preflight_rejects_a_new_key_and_says_what_to_publish(
    dane_world, dns_opts, tmp_path, capsys
):
    host = dane_world.domains["good-ee"].hosts[0]
    renewed = dane_world.pki("ecdsa").issue([host.name])  # a new key: 3 1 1 no longer matches
    certfile, _ = renewed.write(tmp_path)
    assert main(["preflight", "--cert", str(certfile), "--mx", host.name, *dns_opts]) == 2
    out = capsys.readouterr().out
    assert out.startswith("CRITICAL: ")
    assert f"publish first: {host.tlsa_name} IN TLSA {renewed.tlsa(3)}" in out


def test_preflight_a_ta_record_survives_a_renewal_by_the_same_ca(dane_world, dns_opts, tmp_path,
                                                                  capsys):  # fmt: skip
    host = dane_world.domains["good-ta"].hosts[0]
    renewed = dane_world.pki("ecdsa").issue([host.name.rstrip(".")])
    certfile, _ = renewed.write(tmp_path)
    assert main(["preflight", "--cert", str(certfile), "--mx", host.name, *dns_opts]) == 0


@pytest.mark.parametrize(("scenario", "code"), [("no-tlsa", 0), ("insecure-with-tlsa", 0),
                                                 ("bogus-signature", 3)])  # fmt: skip
def test_preflight_without_usable_dns(dane_world, dns_opts, tmp_path, capsys, scenario, code):
    host = dane_world.domains[scenario].hosts[0]
    certfile, _ = dane_world.pki("ecdsa").issue([host.name]).write(tmp_path)
    assert main(["preflight", "--cert", str(certfile), "--mx", host.name, *dns_opts]) == code
