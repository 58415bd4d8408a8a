"""The one loader of certificate files (``tlsa --cert``, ``preflight --cert``).

:func:`read_chain` reads a PEM chain or one DER certificate. When the file holds no
certificate its error names the file, says what the file is instead (a private key, a CSR,
a public key, TLSA or DS records, text, binary data, nothing) and what was expected, so
that the common mix-up (the key file for the chain file) is answered in one line.
cryptography is imported when a file is read, not with this module.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

#: What every error asks for.
WANT_CHAIN = "give the certificate (chain) PEM"

_PEM_BLOCK = re.compile(rb"(?s)-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----")
_CERT_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE")
# A resource record in zone-file text: [name] [ttl] [class] TYPE rdata.
_RECORD = re.compile(r"(?im)^\S*\s+(?:\d+\s+)?(?:IN\s+)?(TLSA|DS|DNSKEY|CDS|CDNSKEY)\s+\d")


def read_chain(path: str | Path) -> list[bytes]:
    """The certificates in ``path`` as DER, in file order (leaf first): a PEM chain, or one
    DER certificate. A file that also holds the key (a combined PEM) is read for its
    certificates.

    :raises ValueError: the file cannot be read or holds no certificate; the message names
        the file, says what it holds and what was expected.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    path = str(path)
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a file: {WANT_CHAIN}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc}): {WANT_CHAIN}") from None
    if not data.strip():
        raise ValueError(f"{path} is empty: {WANT_CHAIN}")
    blocks = [m.group(1) for m in _PEM_BLOCK.finditer(data)]
    if any(label in _CERT_LABELS for label in blocks):
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            detail = str(exc).split(".", 1)[0]
            raise ValueError(
                f"{path}: a CERTIFICATE block does not decode ({detail}): {WANT_CHAIN}"
            ) from None
    else:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise ValueError(not_a_certificate(path, data)) from None
    return [c.public_bytes(Encoding.DER) for c in certs]


def not_a_certificate(path: str, data: bytes) -> str:
    """What a file that holds no certificate holds instead, and what was expected."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    labels = [m.group(1).decode() for m in _PEM_BLOCK.finditer(data)]
    if labels:
        label = labels[0]
        # "an EC PRIVATE KEY", "an RSA PRIVATE KEY", "a PUBLIC KEY": as the letters are said
        article = "an" if label[0] in "AEIOURSX" else "a"
        if "PRIVATE KEY" in label:
            return (
                f"{path} holds {article} {label}, not a certificate: {WANT_CHAIN} (this is "
                "the private key, which stays with the mail server)"
            )
        if "CERTIFICATE REQUEST" in label:
            return (
                f"{path} holds a CERTIFICATE REQUEST (CSR), not a certificate: give the "
                "certificate (chain) PEM the CA issued for it"
            )
        return f"{path} holds {article} {label}, not a certificate: {WANT_CHAIN}"
    if b"-----BEGIN " in data:
        return f"{path} holds a PEM block without its END line: {WANT_CHAIN}"
    for load, what in (
        (lambda d: serialization.load_der_private_key(d, password=None), "a PRIVATE KEY (DER)"),
        (x509.load_der_x509_csr, "a CERTIFICATE REQUEST (CSR, DER)"),
        (serialization.load_der_public_key, "a bare PUBLIC KEY (DER)"),
    ):
        with contextlib.suppress(Exception):
            load(data)
            if "PRIVATE KEY" in what:
                return (
                    f"{path} holds {what}, not a certificate: {WANT_CHAIN} (this is the "
                    "private key, which stays with the mail server)"
                )
            return f"{path} holds {what}, not a certificate: {WANT_CHAIN}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return (
            f"{path} is neither a PEM nor a DER certificate ({len(data)} bytes of binary data): "
            f"{WANT_CHAIN}"
        )
    if record := _RECORD.search(text):
        rrtype = record.group(1).upper()
        if rrtype == "TLSA":
            return (
                f"{path} holds TLSA records (zone-file text), not a certificate: {WANT_CHAIN} "
                "the records are for"
            )
        return (
            f"{path} holds {rrtype} records (zone-file text, a trust-anchor file?), not a "
            f"certificate: {WANT_CHAIN}"
        )
    first = text.strip().splitlines()[0][:40]
    return f"{path} holds text that is not PEM (it starts {first!r}): {WANT_CHAIN}"
