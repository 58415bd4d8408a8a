"""TLSA records and the DANE-for-SMTP matching engine (RFC 6698, RFC 7671, RFC 7672 §3).

Pure functions over bytes: no I/O, no clock unless ``now`` is left out. The entry point is
:func:`authenticate`, which decides whether a TLS server's certificate chain is
authenticated by a TLSA RRset the way an RFC 7672 SMTP client (Postfix, Exim, OpenSSL's
DANE code) decides it::

    records = [TLSARecord.from_text("3 1 1 0b8c…"), TLSARecord.from_text("2 1 1 9f3a…")]
    result = authenticate(records, der_chain, ["mx.example.com", "mx.example.com."])
    result.authenticated        # True / False
    result.failure, result.detail   # 'ta-name-mismatch', 'the leaf certificate names …'
    result.depth                # 0 for DANE-EE, depth of the trust anchor for DANE-TA

Rules, in short (the RFC sections are the authority):

* Only usable records count: usage 2 (DANE-TA) and 3 (DANE-EE), selector 0/1, matching
  type 0/1/2 with well-formed data (:attr:`TLSARecord.unusable_reason`).
* Digest agility (RFC 7671 §9, OpenSSL's default ordinals): for each usage and selector,
  only the most preferred digest present is used (SHA2-512 over SHA2-256); Full(0) records
  always take part.
* DANE-EE(3): the leaf matches; no names, no dates, no chain (RFC 7672 §3.1.1).
* DANE-TA(2): a certificate at depth >= 1 of a chain built from the presented certificates
  (and the full certificates carried in ``2 0 0`` records) matches, or a ``2 1 0`` bare key
  signs one; the chain up to that anchor must verify (signatures, CA constraints, dates of
  the certificates below the anchor) and the leaf must carry one of the reference names.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Any

# Before dnspython, which decides its optional features when first imported (_compat).
import dane_monitor._compat  # noqa: F401  # isort: skip
import dns.name
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "FAILURES",
    "MAX_CHAIN",
    "Hit",
    "Match",
    "MatchResult",
    "MatchingType",
    "Selector",
    "TLSARecord",
    "Usage",
    "association_data",
    "authenticate",
    "certificate_names",
    "digest",
    "dns_names",
    "rdata_text",
    "selected_bytes",
    "spki_der",
    "spki_sha256",
    "suggest_records",
]


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


#: Presented certificates beyond this many are ignored (a TLS chain is rarely over 5).
MAX_CHAIN = 16

#: Every value :attr:`MatchResult.failure` can take, with what it means.
FAILURES = {
    "no-usable-records": "the TLSA RRset has no record an SMTP client may use",
    "cert-unparsable": "the server presented no leaf certificate that parses",
    "tlsa-mismatch": "no usable TLSA record matches any presented certificate",
    "ta-chain-invalid": "a DANE-TA record matched, but the chain to it does not verify",
    "ta-name-mismatch": "a DANE-TA chain verifies, but the leaf's names match no reference name",
}

_DIGEST_LENGTHS: dict[int, int] = {MatchingType.SHA256: 32, MatchingType.SHA512: 64}
#: Digest agility ordinals, OpenSSL's defaults (``dane_ctx_enable``): the higher is preferred.
#: Full(0) has none: Full records are always used.
_AGILITY_ORDINAL: dict[int, int] = {MatchingType.SHA256: 1, MatchingType.SHA512: 2}
#: Bounds on the chain-building search: nodes visited and trust-anchor paths tried.
_SEARCH_BUDGET = 512
_MAX_ANCHORS = 32


def _der(cert: x509.Certificate | bytes) -> bytes:
    if isinstance(cert, x509.Certificate):
        return cert.public_bytes(serialization.Encoding.DER)
    return bytes(cert)


def spki_der(cert: x509.Certificate | bytes) -> bytes:
    """The SubjectPublicKeyInfo of ``cert`` exactly as it appears in the certificate's DER.

    This is what a TLSA selector 1 record hashes (RFC 6698 §1.1.2): the bytes as served, not
    the key re-encoded (an EC key encoded as a compressed point would come out uncompressed,
    with another digest). Every SPKI digest in the project comes from here. ``cert`` is a
    certificate or its DER; raises ``ValueError`` when the DER is not a certificate.
    """
    return _tbs_fields(_der(cert))[2]


def selected_bytes(cert: x509.Certificate | bytes, selector: int) -> bytes:
    """The DER bytes a TLSA selector picks out of ``cert``: the whole certificate or its SPKI
    as served (:func:`spki_der`). ``cert`` is a certificate or its DER."""
    if selector == Selector.CERT:
        return _der(cert)
    if selector == Selector.SPKI:
        return spki_der(cert)
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


def association_data(cert: x509.Certificate | bytes, selector: int, matching_type: int) -> bytes:
    """The certificate association data of a TLSA record for ``cert`` (or its DER)."""
    return digest(selected_bytes(cert, selector), matching_type)


def rdata_text(
    cert: x509.Certificate | bytes, usage: int, selector: int, matching_type: int
) -> str:
    """TLSA RDATA in presentation format, e.g. ``3 1 1 0210f1…``."""
    data = association_data(cert, selector, matching_type).hex()
    return f"{usage} {selector} {matching_type} {data}"


# -- records ------------------------------------------------------------------------------

_OCTET = re.compile(r"[0-9]{1,3}")
_HEX = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True)
class TLSARecord:
    """One TLSA record: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @classmethod
    def from_text(cls, text: str) -> TLSARecord:
        """Parse RDATA presentation format, ``"3 1 1 0b8c…"``.

        The hex may be in either case and may contain whitespace. Raises ``ValueError``
        when the text is not a TLSA RDATA (a parameter outside 0..255, no data, bad hex).
        """
        fields = text.split()
        if len(fields) < 4:
            raise ValueError(f"TLSA RDATA needs usage, selector, type and data: {text!r}")
        numbers = []
        for name, value in zip(("usage", "selector", "matching type"), fields[:3], strict=True):
            if not _OCTET.fullmatch(value) or int(value) > 255:
                raise ValueError(f"TLSA {name} must be a number 0..255, not {value!r}")
            numbers.append(int(value))
        hexdata = "".join(fields[3:])
        if not _HEX.fullmatch(hexdata) or len(hexdata) % 2:
            raise ValueError(f"TLSA association data is not an even number of hex digits: {text!r}")
        return cls(numbers[0], numbers[1], numbers[2], bytes.fromhex(hexdata))

    @classmethod
    def from_rdata(cls, rdata: Any) -> TLSARecord:
        """From a dnspython ``TLSA`` rdata (``.usage``, ``.selector``, ``.mtype``, ``.cert``)."""
        return cls(int(rdata.usage), int(rdata.selector), int(rdata.mtype), bytes(rdata.cert))

    def to_text(self) -> str:
        """RDATA presentation format, lower-case hex: ``"3 1 1 0b8c…"``."""
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    def __str__(self) -> str:
        return self.to_text()

    @property
    def short(self) -> str:
        """The record for messages: parameters and the first 16 hex digits of the data."""
        data = self.data.hex()
        return (
            f"{self.usage} {self.selector} {self.mtype} {data[:16]}{'…' if len(data) > 16 else ''}"
        )

    @cached_property
    def unusable_reason(self) -> str | None:
        """Why an SMTP client must ignore this record (RFC 7672 §3.1.3), or ``None``.

        ``"pkix-usage"`` (usage 0/1), ``"unknown-usage"``, ``"unknown-selector"``,
        ``"unknown-matching-type"``, ``"bad-digest-length"`` (SHA2-256 data not 32 bytes,
        SHA2-512 not 64), ``"bad-full-data"`` (Full(0) data that is not a certificate for
        selector 0, or not a SubjectPublicKeyInfo for selector 1).
        """
        if self.usage in (Usage.PKIX_TA, Usage.PKIX_EE):
            return "pkix-usage"
        if self.usage not in (Usage.DANE_TA, Usage.DANE_EE):
            return "unknown-usage"
        if self.selector not in (Selector.CERT, Selector.SPKI):
            return "unknown-selector"
        if self.mtype not in (MatchingType.FULL, MatchingType.SHA256, MatchingType.SHA512):
            return "unknown-matching-type"
        if self.mtype in _DIGEST_LENGTHS:
            return None if len(self.data) == _DIGEST_LENGTHS[self.mtype] else "bad-digest-length"
        return None if self._full_object is not None else "bad-full-data"

    @property
    def usable(self) -> bool:
        return self.unusable_reason is None

    @cached_property
    def _full_object(self) -> _Node | Any | None:
        """Full(0) data parsed: a :class:`_Node` (selector 0) or a public key (selector 1)."""
        if self.mtype != MatchingType.FULL:
            return None
        if self.selector == Selector.CERT:
            return _Node.parse(self.data, index=None)
        if self.selector == Selector.SPKI:
            try:
                return serialization.load_der_public_key(self.data)
            except Exception:
                return None
        return None


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A usable record whose data matches a presented certificate.

    ``depth`` is the certificate's position in the chain as the server sent it (0 = leaf).
    Digest-agility-ignored records are included, so an operator sees what they match.
    """

    record: TLSARecord
    depth: int
    certificate: x509.Certificate


@dataclass(frozen=True)
class Match:
    """The record that authenticated the chain (or, for ``ta-*`` failures, the anchor tried).

    ``depth`` is the match depth as OpenSSL reports it: 0 for DANE-EE; for DANE-TA the
    anchor's position in the chain built from the leaf (a ``2 0 0`` certificate from DNS
    takes the position it fills); a ``2 1 0`` bare key takes the depth of the highest chain
    certificate it signs. ``certificate`` is the certificate at that depth (for a bare key:
    the one it signs); ``path`` the built chain from the leaf up to it.
    """

    record: TLSARecord
    depth: int
    certificate: x509.Certificate
    path: tuple[x509.Certificate, ...]


@dataclass
class MatchResult:
    """The outcome of :func:`authenticate`.

    ``failure`` is ``None`` when ``authenticated``, else one of :data:`FAILURES`; ``detail``
    is one sentence for an operator (also on success).
    """

    authenticated: bool
    failure: str | None
    detail: str
    match: Match | None = None
    hits: list[Hit] = field(default_factory=list)
    unusable: list[tuple[TLSARecord, str]] = field(default_factory=list)
    ignored_by_agility: list[TLSARecord] = field(default_factory=list)

    @property
    def depth(self) -> int:
        """The match depth (see :class:`Match`), -1 when nothing matched."""
        return self.match.depth if self.match is not None else -1


# -- certificates -------------------------------------------------------------------------


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER TLV at ``pos``."""
    if pos + 2 > len(buf):
        raise ValueError("truncated DER")
    tag, length = buf[pos], buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4 or pos + n > len(buf):
            raise ValueError("bad DER length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _tbs_fields(der: bytes) -> tuple[bytes, bytes, bytes]:
    """The raw DER of a certificate's issuer, subject and SubjectPublicKeyInfo."""
    _, start, _ = _tlv(der, 0)
    _, pos, end = _tlv(der, start)
    fields: list[tuple[int, bytes]] = []
    while pos < end:
        tag, _, value_end = _tlv(der, pos)
        fields.append((tag, der[pos:value_end]))
        pos = value_end
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("short TBSCertificate")
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    return fields[2][1], fields[4][1], fields[5][1]


class _Node:
    """A parsed certificate with what matching needs, computed once."""

    def __init__(self, der: bytes, cert: x509.Certificate, index: int | None) -> None:
        self.der = der
        self.cert = cert
        self.index = index  # position in the presented chain; None for a cert from DNS
        # self.spki is spki_der(der), from the same parse
        self.issuer_der, self.subject_der, self.spki = _tbs_fields(der)
        try:
            self.key: Any = cert.public_key()
        except Exception:
            self.key = None
        self._data: dict[tuple[int, int], bytes] = {}

    @classmethod
    def parse(cls, der: Any, index: int | None) -> _Node | None:
        """``der`` parsed, or None when it is not a certificate. A node depends only on its
        DER bytes and ``index`` and is never changed after it is made (what it computes
        lazily follows from the bytes), so a monitor that sees the same chain every cycle
        gets the node it had: :func:`_parsed` remembers the last :data:`_PARSED`."""
        try:
            if isinstance(der, x509.Certificate):
                der = der.public_bytes(serialization.Encoding.DER)
            der = bytes(der)
        except Exception:
            return None
        return _parsed(der, index)

    def association(self, selector: int, mtype: int) -> bytes:
        key = (selector, mtype)
        if key not in self._data:
            self._data[key] = digest(self.der if selector == Selector.CERT else self.spki, mtype)
        return self._data[key]

    def matches(self, record: TLSARecord) -> bool:
        return self.association(record.selector, record.mtype) == record.data

    @cached_property
    def label(self) -> str:
        """The subject for messages: ``CN=mx.example.com`` or the whole DN."""
        try:
            cns = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if cns:
                return f"CN={cns[0].value!s}"
            return self.cert.subject.rfc4514_string() or "an empty subject"
        except Exception:
            return "an unreadable subject"

    @cached_property
    def self_issued(self) -> bool:
        return self.issuer_der == self.subject_der

    @cached_property
    def extensions(self) -> x509.Extensions | None:
        try:
            return self.cert.extensions
        except Exception:
            return None

    def extension(self, kind: type) -> Any:
        if self.extensions is None:
            return None
        try:
            return self.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    @cached_property
    def key_id(self) -> bytes | None:
        ski = self.extension(x509.SubjectKeyIdentifier)
        return ski.digest if ski is not None else None

    @cached_property
    def authority_key_id(self) -> bytes | None:
        aki = self.extension(x509.AuthorityKeyIdentifier)
        return aki.key_identifier if aki is not None else None

    def could_issue(self, child: _Node) -> bool:
        """Name (and key identifier, when both are present) say ``self`` issued ``child``."""
        if self.key is None or self.subject_der != child.issuer_der:
            return False
        return not (
            self.key_id is not None
            and child.authority_key_id is not None
            and self.key_id != child.authority_key_id
        )


# Certificates parsed, by exact DER bytes and chain position: a monitor checks the same
# servers every cycle. Bounded; a node holds the DER, the parsed certificate and its key.
_PARSED = 2048


@functools.lru_cache(maxsize=_PARSED)
def _parsed(der: bytes, index: int | None) -> _Node | None:
    try:
        return _Node(der, x509.load_der_x509_certificate(der), index)
    except Exception:
        return None


def _signed_by(cert: x509.Certificate, key: Any) -> bool:
    """Does ``key`` verify the signature on ``cert``? Never raises."""
    try:
        signature, tbs = cert.signature, cert.tbs_certificate_bytes
        params = cert.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey):
            hash_algorithm = cert.signature_hash_algorithm
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or hash_algorithm is None:
                return False
            key.verify(signature, tbs, params, hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            key.verify(signature, tbs, params)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            hash_algorithm = cert.signature_hash_algorithm
            if hash_algorithm is None:
                return False
            key.verify(signature, tbs, hash_algorithm)
        else:
            return False
    except Exception:
        return False
    return True


# -- names (RFC 6125 as RFC 7672 §3.2.3 narrows it) ----------------------------------------


def _reference_name(name: str) -> str | None:
    """A reference name as lower-case A-labels without the final dot; None if unusable."""
    name = name.strip()
    if not name.isascii():
        try:
            name = dns.name.from_unicode(name).to_text(omit_final_dot=True)
        except Exception:
            return None
    name = name.lower().removesuffix(".")
    return name if name and "*" not in name else None


def _name_matches(pattern: str, reference: str) -> bool:
    """Does the certificate name ``pattern`` match ``reference`` (already normalised)?

    A wildcard counts only as the whole leftmost label of a name with at least three
    labels, and stands for exactly one non-empty label.
    """
    pattern = pattern.lower().removesuffix(".")
    if "*" not in pattern:
        return pattern == reference
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    label, dot, reference_rest = reference.partition(".")
    return bool(label and dot) and reference_rest == rest


def certificate_names(cert: x509.Certificate) -> tuple[list[str], str]:
    """The DNS names a certificate is for, and where they came from.

    The one place of the rule "SAN dNSNames, else CN" (RFC 6125 §6.4.4, as OpenSSL's host
    check applies it): the subjectAltName's dNSNames (``"subjectAltName"``); when it has
    none (no SAN, or one with only other kinds of names), the subject's common names
    (``"subject CN"``). When the extensions do not parse (a malformed or duplicated
    extension, which may be the SAN), no name is returned (``"unreadable extensions"``): a
    name check that cannot be made fails rather than falling back to the CN.
    """
    try:
        extensions = cert.extensions
    except Exception:  # cryptography parses them lazily: ValueError, DuplicateExtension
        return [], "unreadable extensions"
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    names = san.get_values_for_type(x509.DNSName) if san is not None else []
    if names:
        return list(names), "subjectAltName"
    try:
        attributes = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:
        attributes = []
    return [a.value for a in attributes if isinstance(a.value, str)], "subject CN"


def _leaf_names(node: _Node) -> tuple[list[str], str]:
    """The names to check and where they came from (see :func:`certificate_names`)."""
    return certificate_names(node.cert)


# -- chain building -----------------------------------------------------------------------


@dataclass
class _Anchor:
    path: tuple[_Node, ...]  # leaf first, up to and including the certificate at `depth`
    depth: int
    record: TLSARecord
    bare_key: Any = None  # the public key of a `2 1 0` record, which signs path[depth]

    def match(self) -> Match:
        return Match(
            record=self.record,
            depth=self.depth,
            certificate=self.path[self.depth].cert,
            path=tuple(n.cert for n in self.path),
        )


class _Signatures:
    """Signature checks memoised for one :func:`authenticate` call (which keeps the nodes
    and keys alive, so their ids are stable)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int], bool] = {}

    def check(self, node: _Node, key: Any) -> bool:
        """Does ``key`` verify the signature on ``node``?"""
        memo = (id(node), id(key))
        if memo not in self._seen:
            self._seen[memo] = key is not None and _signed_by(node.cert, key)
        return self._seen[memo]


def _anchored_paths(
    leaf: _Node,
    nodes: list[_Node],
    ta_records: list[TLSARecord],
    bare_keys: list[tuple[TLSARecord, Any]],
    signatures: _Signatures,
) -> Iterator[_Anchor]:
    """Chains from the leaf that end in a DANE-TA trust anchor, lowest anchor first.

    Issuers are the certificates whose name (and key identifier) and key fit, trying the
    presented certificates in the order sent, then those carried in ``2 0 0`` records; only
    when none has a key that verifies the signature are the name-only candidates tried (so
    that a forged chain is reported as such by :func:`_verify`). A certificate at depth >= 1
    matching a DANE-TA record ends the chain there (as OpenSSL stops at the first trusted
    certificate); when a chain cannot be extended, a bare key (``2 1 0``) anchors it at the
    highest certificate it signs. The search is depth-first and bounded.
    """
    budget = [_SEARCH_BUDGET]

    def extend(path: tuple[_Node, ...]) -> Iterator[_Anchor]:
        budget[0] -= 1
        top, depth = path[-1], len(path) - 1
        if depth >= 1:
            for record in ta_records:
                if top.matches(record):
                    yield _Anchor(path, depth, record)
                    return
        extended = False
        if len(path) < MAX_CHAIN:
            named = [n for n in nodes if n.could_issue(top) and all(n is not p for p in path)]
            signing = [n for n in named if signatures.check(top, n.key)]
            for node in signing or named:
                if budget[0] <= 0:
                    return
                extended = True
                yield from extend((*path, node))
        if not extended:
            for record, key in bare_keys:
                for below in range(depth, -1, -1):
                    if signatures.check(path[below], key):
                        yield _Anchor(path[: below + 1], below, record, bare_key=key)
                        break

    yield from extend((leaf,))


def _as_utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _verify(anchor: _Anchor, now: dt.datetime, signatures: _Signatures) -> str | None:
    """Why the chain up to ``anchor`` does not verify (one sentence), or ``None``."""
    path, depth = anchor.path, anchor.depth
    # Certificates below the anchor; with a bare key the anchor is the key, not path[depth].
    below = path if anchor.bare_key is not None else path[:depth]
    for i, node in enumerate(below):
        where = f"the certificate at depth {i} ({node.label})"
        if i + 1 < len(path):
            if not signatures.check(node, path[i + 1].key):
                return (
                    f"the signature on {where} does not verify with the key of {path[i + 1].label}"
                )
        elif not signatures.check(node, anchor.bare_key):  # pragma: no cover - found signed
            return f"the signature on {where} does not verify with the TLSA record's key"
        if node.extensions is None:
            return f"{where} has malformed extensions"
        for ext in node.extensions:
            if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                return f"{where} has an unsupported critical extension {ext.oid.dotted_string}"
        try:
            not_before, not_after = node.cert.not_valid_before_utc, node.cert.not_valid_after_utc
        except Exception:
            return f"{where} has an unreadable validity period"
        if now < not_before:
            return f"{where} is not valid before {not_before:%Y-%m-%d %H:%M} UTC"
        if now > not_after:
            return f"{where} expired on {not_after:%Y-%m-%d %H:%M} UTC"
        eku = node.extension(x509.ExtendedKeyUsage)
        if eku is not None and not {
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        } & set(eku):
            return f"{where} has an extended key usage without serverAuth"
    for i in range(1, depth + 1):
        problem = _ca_problem(path, i)
        if problem is not None:
            return f"the certificate at depth {i} ({path[i].label}) {problem}"
    return None


def _ca_problem(path: tuple[_Node, ...], i: int) -> str | None:
    """Why ``path[i]`` may not issue certificates (RFC 5280 §4.2.1.3, 4.2.1.9), or None."""
    node = path[i]
    key_usage = node.extension(x509.KeyUsage)
    if key_usage is not None and not key_usage.key_cert_sign:
        return "is not allowed to sign certificates (keyUsage without keyCertSign)"
    constraints = node.extension(x509.BasicConstraints)
    if constraints is None:
        # Like OpenSSL: a v1 self-signed root, or a keyUsage that allows keyCertSign.
        v1_root = node.cert.version == x509.Version.v1 and node.self_issued
        return None if v1_root or key_usage is not None else "is not a CA (no basicConstraints)"
    if not constraints.ca:
        return "is not a CA (basicConstraints CA:FALSE)"
    if constraints.path_length is not None:
        intermediates = sum(1 for n in path[1:i] if not n.self_issued)
        if intermediates > constraints.path_length:
            return (
                f"allows {constraints.path_length} intermediate CA(s) below it, "
                f"but the chain has {intermediates}"
            )
    return None


# -- matching -----------------------------------------------------------------------------


def _apply_agility(records: list[TLSARecord]) -> tuple[list[TLSARecord], list[TLSARecord]]:
    """Split usable records into (used, ignored by digest agility, RFC 7671 §9)."""
    best: dict[tuple[int, int], int] = {}
    for r in records:
        if r.mtype in _AGILITY_ORDINAL:
            key = (r.usage, r.selector)
            best[key] = max(best.get(key, 0), _AGILITY_ORDINAL[r.mtype])
    used, ignored = [], []
    for r in records:
        ordinal = _AGILITY_ORDINAL.get(r.mtype)  # IntEnum keys: an int finds them
        if ordinal is not None and ordinal < best[(r.usage, r.selector)]:
            ignored.append(r)
        else:
            used.append(r)
    return used, ignored


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def authenticate(
    records: Sequence[TLSARecord],
    chain: Sequence[bytes],
    reference_names: Sequence[str],
    *,
    now: dt.datetime | None = None,
) -> MatchResult:
    """Is ``chain`` authenticated by the TLSA ``records``, as an RFC 7672 SMTP client sees it?

    ``chain`` is the certificates as the server sent them, DER, leaf first; it may be
    unordered, incomplete or carry junk (unparsable entries are skipped, entries beyond
    :data:`MAX_CHAIN` ignored). ``reference_names`` are the TLSA base domain and the MX
    host name (RFC 7672 §3.2.2), with or without the final dot. ``now`` (default: the
    current time) is when the DANE-TA chain's validity dates are checked.

    Never raises on bad input: every problem is a :attr:`MatchResult.failure`.
    """
    records = list(records)
    unusable = [(r, reason) for r in records if (reason := r.unusable_reason) is not None]
    usable = [r for r in records if r.unusable_reason is None]
    used, ignored = _apply_agility(usable)
    presented = list(chain)[:MAX_CHAIN]
    parsed = [_Node.parse(der, index=i) for i, der in enumerate(presented)]
    hits = [
        Hit(record, node.index, node.cert)
        for node in parsed
        if node is not None and node.index is not None
        for record in usable
        if node.matches(record)
    ]

    def result(
        authenticated: bool, failure: str | None, detail: str, match: Match | None = None
    ) -> MatchResult:
        return MatchResult(authenticated, failure, detail, match, hits, unusable, ignored)

    if not usable:
        what = (
            "has no records"
            if not records
            else "has only unusable records ("
            + ", ".join(f"{r.short}: {reason}" for r, reason in unusable)
            + ")"
        )
        return result(False, "no-usable-records", f"The TLSA RRset {what}.")
    if not presented or parsed[0] is None:
        detail = (
            "The server presented no certificate."
            if not presented
            else "The server's leaf certificate does not parse as X.509 DER."
        )
        return result(False, "cert-unparsable", detail)
    leaf = parsed[0]

    # DANE-EE(3): the leaf itself; nothing else is checked (RFC 7672 §3.1.1).
    for record in used:
        if record.usage == Usage.DANE_EE and leaf.matches(record):
            what = "certificate" if record.selector == Selector.CERT else "public key"
            return result(
                True,
                None,
                f"DANE-EE record {record.short} matches the leaf {what} ({leaf.label}).",
                Match(record, 0, leaf.cert, (leaf.cert,)),
            )

    # DANE-TA(2): a trust anchor at depth >= 1 and a verified chain up to it.
    ta_records = [r for r in used if r.usage == Usage.DANE_TA]
    bare_keys = [
        (r, r._full_object)
        for r in ta_records
        if r.selector == Selector.SPKI and r.mtype == MatchingType.FULL
    ]
    nodes: list[_Node] = []
    for node in parsed[1:]:
        if node is not None and all(node.der != n.der for n in (leaf, *nodes)):
            nodes.append(node)
    for r in ta_records:
        if r.selector == Selector.CERT and r.mtype == MatchingType.FULL:
            carried = r._full_object
            if isinstance(carried, _Node) and all(carried.der != n.der for n in (leaf, *nodes)):
                nodes.append(carried)

    when = _as_utc(now) if now is not None else dt.datetime.now(dt.UTC)
    references = [n for n in (_reference_name(x) for x in _names(reference_names)) if n]
    names, source = _leaf_names(leaf)
    name_ok = any(_name_matches(p, ref) for p in names for ref in references)
    chain_problem: tuple[_Anchor, str] | None = None
    name_mismatch: _Anchor | None = None
    signatures = _Signatures()
    anchors = _anchored_paths(leaf, nodes, ta_records, bare_keys, signatures)
    for count, anchor in enumerate(anchors):
        if count >= _MAX_ANCHORS:
            break
        problem = _verify(anchor, when, signatures)
        if problem is not None:
            chain_problem = chain_problem or (anchor, problem)
        elif not name_ok:  # no other anchor can fix the leaf's names
            name_mismatch = anchor
            break
        else:
            return result(
                True,
                None,
                f"DANE-TA record {anchor.record.short} matches {_anchor_text(anchor)}, "
                f"and the chain from the leaf ({leaf.label}) verifies.",
                anchor.match(),
            )
    if name_mismatch is not None:
        shown = ", ".join(names) if names else "none"
        refs = ", ".join(references) if references else "none given"
        return result(
            False,
            "ta-name-mismatch",
            f"DANE-TA record {name_mismatch.record.short} matches "
            f"{_anchor_text(name_mismatch)} and the chain verifies, but the leaf's names "
            f"({source}: {shown}) match none of the reference names ({refs}).",
            name_mismatch.match(),
        )
    if chain_problem is not None:
        anchor, problem = chain_problem
        return result(
            False,
            "ta-chain-invalid",
            f"DANE-TA record {anchor.record.short} matches {_anchor_text(anchor)}, "
            f"but the chain to it does not verify: {problem}.",
            anchor.match(),
        )
    ta_hits = [h for h in hits if h.record.usage == Usage.DANE_TA and h.record in used]
    if ta_hits:
        hit = ta_hits[0]
        hit_node = parsed[hit.depth]  # a hit's certificate parsed, so never None here
        hit_label = hit_node.label if hit_node is not None else "?"
        where = (
            "the leaf certificate itself; a trust anchor must be an issuer (publish a 3 x x "
            "record for the leaf instead)"
            if hit.depth == 0
            else f"the presented certificate #{hit.depth} ({hit_label}), "
            "but no chain from the leaf up to it can be built (missing intermediate or "
            "unrelated certificate)"
        )
        return result(
            False, "ta-chain-invalid", f"DANE-TA record {hit.record.short} matches {where}."
        )
    hints = ""
    if any(h.record in ignored for h in hits):
        hints = (
            " A record ignored by digest agility (a stronger digest of the same usage and "
            "selector is published) would match."
        )
    if ta_records:
        hints += (
            " A DANE-TA record must match a certificate the server sends (is the CA missing "
            "from the server's chain?) or carry the trust anchor itself (2 0 0, 2 1 0)."
        )
    sent = _plural(sum(1 for n in parsed if n is not None), "certificate")
    return result(
        False,
        "tlsa-mismatch",
        f"None of the {_plural(len(used), 'usable TLSA record')} matches the {sent} "
        f"the server presented (leaf {leaf.label}).{hints}",
    )


def _names(reference_names: Sequence[str] | str) -> list[str]:
    if isinstance(reference_names, str):
        return [reference_names]
    return [n for n in reference_names if isinstance(n, str)]


def _anchor_text(anchor: _Anchor) -> str:
    node = anchor.path[anchor.depth]
    if anchor.bare_key is not None:
        return f"the key that signed the certificate at depth {anchor.depth} ({node.label})"
    source = "carried in the TLSA record" if node.index is None else "sent by the server"
    return f"the certificate at depth {anchor.depth} ({node.label}, {source})"


# -- helpers for reports ------------------------------------------------------------------


def spki_sha256(der_cert: bytes) -> str:
    """SHA2-256 of a certificate's SubjectPublicKeyInfo, hex: the data of a ``x 1 1`` record.

    Raises ``ValueError`` when ``der_cert`` is not a DER certificate.
    """
    node = _Node.parse(der_cert, index=0)
    if node is None:
        raise ValueError("not a DER X.509 certificate")
    return node.association(Selector.SPKI, MatchingType.SHA256).hex()


def suggest_records(
    der_chain: Sequence[bytes],
    usages: Sequence[int] | None = None,
    selector: int = Selector.SPKI,
    mtype: int = MatchingType.SHA256,
) -> list[str]:
    """TLSA RDATA to publish for a presented chain: ``3 1 1`` for the leaf's key, then
    ``2 1 1`` for the CA that issued the leaf when the server sends it. ``usages`` picks
    which of the two (default both, 3 first); ``selector`` and ``mtype`` change the other
    two fields. Empty when the leaf does not parse."""
    wanted = (3, 2) if not usages else tuple(usages)
    parsed = [_Node.parse(der, index=i) for i, der in enumerate(list(der_chain)[:MAX_CHAIN])]
    if not parsed or parsed[0] is None:
        return []
    leaf = parsed[0]
    suggestions = []
    if 3 in wanted:
        suggestions.append(f"3 {selector} {mtype} {leaf.association(selector, mtype).hex()}")
    if 2 not in wanted:
        return suggestions
    for node in parsed[1:]:
        if (
            node is not None
            and node.der != leaf.der
            and node.could_issue(leaf)
            and _signed_by(leaf.cert, node.key)
        ):
            suggestions.append(f"2 {selector} {mtype} {node.association(selector, mtype).hex()}")
            break
    return suggestions


def dns_names(der: bytes) -> list[str]:
    """The DNS names a DER certificate is for (:func:`certificate_names`); [] on garbage."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return []
    return certificate_names(cert)[0]
