"""Throwaway certificate chains for the local world's SMTP servers.

A :class:`PKI` is one trustme root CA with one intermediate CA per key type (made on first
use and kept, because RSA key generation is slow). :meth:`PKI.issue` hands out a
:class:`Chain`: the certificates as a server sends them (leaf first), the leaf's private key,
and the root that anchors them. :func:`self_signed` makes a chain of one certificate.

Every chain can print the TLSA record that matches it (:meth:`Chain.tlsa`) and write itself
to files a server can load (:meth:`Chain.write`)::

    pki = PKI()
    chain = pki.issue(["mail.example."])
    chain.tlsa(3)          # '3 1 1 5b2f…'  DANE-EE: the leaf's public key
    chain.tlsa(2)          # '2 1 1 9c4e…'  DANE-TA: the issuing intermediate
    chain.tlsa(2, depth=2) # '2 1 1 03aa…'  DANE-TA: the root (not served unless asked)

``issue(..., compressed=True)`` (and ``self_signed``) gives an ECDSA leaf whose public key is
encoded as a compressed point (X9.62, SEC 1 §2.3.3): the same key, another SubjectPublicKeyInfo
and so another ``x 1 x`` digest. cryptography's builder always encodes points uncompressed, so
the TBSCertificate is rewritten and signed again by the issuer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dane_monitor.tlsa import rdata_text

__all__ = ["PKI", "Chain", "KeyType", "self_signed"]

KeyType = Literal["ecdsa", "rsa"]

_TRUSTME_KEY_TYPES = {"ecdsa": trustme.KeyType.ECDSA, "rsa": trustme.KeyType.RSA}

#: How long before "now" an expired certificate stopped being valid, and how long it lived.
_EXPIRED_AGO = dt.timedelta(days=2)
_EXPIRED_LIFETIME = dt.timedelta(days=90)


def check_key_type(key_type: str) -> KeyType:
    """``key_type`` as a :data:`KeyType`; ValueError unless it is ``ecdsa`` or ``rsa``."""
    if key_type == "ecdsa":
        return "ecdsa"
    if key_type == "rsa":
        return "rsa"
    raise ValueError(f"key_type must be 'ecdsa' or 'rsa', not {key_type!r}")


def _dns_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("names must be a sequence of names, not a single string")
    stripped = [name.rstrip(".") for name in names]
    if not stripped or not all(stripped):
        raise ValueError(f"need at least one non-empty name, got {list(names)!r}")
    return stripped


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _validity(
    not_before: dt.datetime | None, not_after: dt.datetime | None, expired: bool
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Resolve the validity window; ``expired`` puts not_after in the past."""
    if expired:
        if not_after is not None:
            raise ValueError("give either expired=True or not_after, not both")
        not_after = _utcnow() - _EXPIRED_AGO
        if not_before is None:
            not_before = not_after - _EXPIRED_LIFETIME
    return not_before, not_after


def _key_type_of(cert: x509.Certificate) -> KeyType:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ecdsa"
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_children(der: bytes) -> list[bytes]:
    """The TLVs (whole, tag and length included) inside the constructed TLV ``der``."""
    out: list[bytes] = []
    _, pos, end = _der_header(der, 0)
    while pos < end:
        _, _, stop = _der_header(der, pos)
        out.append(der[pos:stop])
        pos = stop
    return out


def _der_header(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at ``pos``."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def _compress_point(
    cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> x509.Certificate:
    """``cert`` with its EC public key encoded as a compressed point, signed again by
    ``issuer_key`` (with the same signature algorithm, SHA-256)."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("only an EC public key has a compressed encoding")
    outer = _der_children(cert.public_bytes(serialization.Encoding.DER))
    tbs, signature_algorithm = outer[0], outer[1]
    fields = _der_children(tbs)
    spki_index = 6 if fields[0][0] == 0xA0 else 5  # after [0] version, serial, ..., subject
    algorithm = _der_children(fields[spki_index])[0]  # id-ecPublicKey + the curve
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    fields[spki_index] = _der(0x30, algorithm + _der(0x03, b"\x00" + point))
    new_tbs = _der(0x30, b"".join(fields))
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        signature = issuer_key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    else:
        signature = issuer_key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA256())
    der = _der(0x30, new_tbs + signature_algorithm + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def _load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key


@dataclass(frozen=True)
class Chain:
    """A certificate chain as a server presents it, with the leaf's private key.

    ``certs`` is leaf first, then intermediates, then the root only when it is served.
    ``root`` is the trust anchor that issued the chain, served or not; ``None`` for a
    self-signed leaf.
    """

    certs: tuple[x509.Certificate, ...]
    key_pem: bytes
    root: x509.Certificate | None

    def __post_init__(self) -> None:
        if not self.certs:
            raise ValueError("a chain needs at least a leaf certificate")

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0]

    @property
    def intermediate(self) -> x509.Certificate | None:
        """The certificate that issued the leaf, when it is an intermediate CA (not the root)."""
        for cert in self.certs[1:]:
            if cert != self.root:
                return cert
        return None

    @property
    def key_type(self) -> KeyType:
        """The leaf key's type: this is what a server picks the chain by."""
        return _key_type_of(self.leaf)

    @property
    def names(self) -> tuple[str, ...]:
        """The DNS names in the leaf's subjectAltName."""
        try:
            san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ()
        return tuple(san.value.get_values_for_type(x509.DNSName))

    @property
    def path(self) -> tuple[x509.Certificate, ...]:
        """Leaf up to the trust anchor: ``certs`` plus the root when it is not served.

        Index = depth as OpenSSL counts it (0 = leaf).
        """
        if self.root is None or self.root in self.certs:
            return self.certs
        return (*self.certs, self.root)

    def chain_pem(self) -> bytes:
        """The served certificates, PEM, leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certs)

    def write(self, directory: Path | str) -> tuple[Path, Path]:
        """Write ``(certfile, keyfile)`` into ``directory``: the chain PEM and the leaf key PEM.

        File names carry the leaf's serial number, so several chains can share a directory.
        """
        directory = Path(directory)
        stem = (
            f"{self.names[0] if self.names else 'cert'}-{self.key_type}-{self.leaf.serial_number:x}"
        )
        certfile = directory / f"{stem}.crt.pem"
        keyfile = directory / f"{stem}.key.pem"
        certfile.write_bytes(self.chain_pem())
        keyfile.touch(mode=0o600)
        keyfile.write_bytes(self.key_pem)
        return certfile, keyfile

    def tlsa(
        self, usage: int, selector: int = 1, mtype: int = 1, *, depth: int | None = None
    ) -> str:
        """TLSA RDATA text (``"3 1 1 <hex>"``) matching this chain.

        The certificate is picked by ``depth`` in :attr:`path` (0 = leaf). By default usage 3
        (DANE-EE) and 1 (PKIX-EE) pick the leaf; usage 2 (DANE-TA) and 0 (PKIX-TA) pick the
        leaf's issuer (the intermediate, or the root when there is none; a self-signed leaf
        is its own issuer). Pass ``depth=len(chain.path) - 1`` for the root.
        """
        if depth is None:
            depth = 0 if usage in (1, 3) else min(1, len(self.path) - 1)
        if not 0 <= depth < len(self.path):
            raise ValueError(f"depth {depth} outside the chain (0..{len(self.path) - 1})")
        return rdata_text(self.path[depth], usage, selector, mtype)


def _load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


class PKI:
    """A trustme root CA (of ``key_type``) with one intermediate CA per leaf key type.

    The intermediates are made on first use and reused by every later :meth:`issue`, so a
    test that issues many RSA leaves pays for one RSA CA key. ``name`` goes into the
    organization of every certificate, so chains from different PKIs are easy to tell apart.
    """

    def __init__(self, key_type: KeyType = "ecdsa", name: str = "dane-monitor test") -> None:
        self.key_type: KeyType = check_key_type(key_type)
        self.name = name
        self._root_ca = trustme.CA(
            organization_name=name,
            organization_unit_name=f"{name} root CA ({key_type})",
            key_type=_TRUSTME_KEY_TYPES[key_type],
        )
        self._intermediates: dict[KeyType, trustme.CA] = {}

    @property
    def root_cert(self) -> x509.Certificate:
        return _load_cert(self._root_ca.cert_pem.bytes())

    @property
    def root_pem(self) -> bytes:
        """The trust anchor, PEM; give it to a client as its CA file."""
        return self._root_ca.cert_pem.bytes()

    def intermediate_cert(self, key_type: KeyType | None = None) -> x509.Certificate:
        """The intermediate CA that issues leaves of ``key_type`` (made on first use)."""
        return _load_cert(self._intermediate(key_type).cert_pem.bytes())

    def _intermediate(self, key_type: KeyType | None) -> trustme.CA:
        key_type = check_key_type(key_type or self.key_type)
        ca = self._intermediates.get(key_type)
        if ca is None:
            ca = trustme.CA(
                parent_cert=self._root_ca,
                path_length=0,
                organization_name=self.name,
                organization_unit_name=f"{self.name} intermediate CA ({key_type})",
                key_type=_TRUSTME_KEY_TYPES[key_type],
            )
            self._intermediates[key_type] = ca
        return ca

    def issue(
        self,
        names: Sequence[str],
        *,
        key_type: KeyType | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        expired: bool = False,
        include_root: bool = False,
        via_intermediate: bool = True,
        compressed: bool = False,
    ) -> Chain:
        """Issue a leaf for ``names`` (DNS names or IP addresses; a trailing dot is dropped).

        The first name is also the subject CN. ``key_type`` defaults to the PKI's.
        ``compressed=True`` (ECDSA only) encodes the leaf's public key as a compressed point.
        ``expired=True`` sets not_after two days in the past. ``via_intermediate=False``
        signs the leaf with the root directly; ``include_root=True`` serves the root too.
        A leaf for the wrong name (a DANE-TA name-mismatch scenario) is just
        ``issue(["other.example"])``.
        """
        dns_names = _dns_names(names)
        leaf_key_type = check_key_type(key_type or self.key_type)
        if compressed and leaf_key_type != "ecdsa":
            raise ValueError("compressed=True needs an ECDSA leaf")
        not_before, not_after = _validity(not_before, not_after, expired)
        issuer = self._intermediate(leaf_key_type) if via_intermediate else self._root_ca
        leaf = issuer.issue_cert(
            *dns_names,
            common_name=dns_names[0],
            organization_name=self.name,
            organization_unit_name=f"{self.name} server",
            not_before=not_before,
            not_after=not_after,
            key_type=_TRUSTME_KEY_TYPES[leaf_key_type],
        )
        certs = [_load_cert(blob.bytes()) for blob in leaf.cert_chain_pems]
        if compressed:
            issuer_key = _load_private_key(issuer.private_key_pem.bytes())
            certs[0] = _compress_point(certs[0], issuer_key)
        root = self.root_cert
        if include_root:
            certs.append(root)
        return Chain(certs=tuple(certs), key_pem=leaf.private_key_pem.bytes(), root=root)


def _private_key(key_type: KeyType) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed(
    names: Sequence[str],
    *,
    key_type: KeyType = "ecdsa",
    expired: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    compressed: bool = False,
) -> Chain:
    """A self-signed leaf for ``names`` (the typical DANE-EE-only mail server).

    It is an end-entity certificate (CA:FALSE) with the names as subjectAltName and the
    first one as CN; ``root`` is ``None``. ``compressed=True`` (ECDSA only) encodes its
    public key as a compressed point.
    """
    dns_names = _dns_names(names)
    if compressed and key_type != "ecdsa":
        raise ValueError("compressed=True needs an ECDSA key")
    key = _private_key(check_key_type(key_type))
    not_before, not_after = _validity(not_before, not_after, expired)
    now = _utcnow()
    not_before = not_before or now - dt.timedelta(days=1)
    not_after = not_after or now + dt.timedelta(days=365)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in dns_names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    if compressed:
        cert = _compress_point(cert, key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Chain(certs=(cert,), key_pem=key_pem, root=None)
