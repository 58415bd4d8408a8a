"""TLSA association data: pure functions over certificates (RFC 6698 §2.1, RFC 7671).

Only the pieces the local world needs live here for now; matching (RFC 7672 §3) joins them.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class Usage(IntEnum):
    PKIX_TA = 0
    PKIX_EE = 1
    DANE_TA = 2
    DANE_EE = 3


class Selector(IntEnum):
    CERT = 0
    SPKI = 1


class MatchingType(IntEnum):
    FULL = 0
    SHA256 = 1
    SHA512 = 2


def selected_bytes(cert: x509.Certificate, selector: int) -> bytes:
    """The DER bytes a TLSA selector picks out of ``cert``: the whole certificate or its SPKI."""
    if selector == Selector.CERT:
        return cert.public_bytes(serialization.Encoding.DER)
    if selector == Selector.SPKI:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    raise ValueError(f"unknown TLSA selector {selector}")


def digest(data: bytes, matching_type: int) -> bytes:
    """Apply a TLSA matching type to selected bytes."""
    if matching_type == MatchingType.FULL:
        return data
    if matching_type == MatchingType.SHA256:
        return hashlib.sha256(data).digest()
    if matching_type == MatchingType.SHA512:
        return hashlib.sha512(data).digest()
    raise ValueError(f"unknown TLSA matching type {matching_type}")


def association_data(cert: x509.Certificate, selector: int, matching_type: int) -> bytes:
    """The certificate association data of a TLSA record for ``cert``."""
    return digest(selected_bytes(cert, selector), matching_type)


def rdata_text(cert: x509.Certificate, usage: int, selector: int, matching_type: int) -> str:
    """TLSA RDATA in presentation format, e.g. ``3 1 1 0210f1…``."""
    data = association_data(cert, selector, matching_type).hex()
    return f"{usage} {selector} {matching_type} {data}"
