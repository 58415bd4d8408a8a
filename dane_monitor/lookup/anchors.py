"""Trust anchors: the built-in IANA root KSKs, or DS/DNSKEY lines from a file.

The file format is the one Unbound's ``trust-anchor-file`` takes: zone-file lines
(``owner [TTL] [IN] DS|DNSKEY rdata``), comments after ``;``, parentheses across lines.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zonefile
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS

if TYPE_CHECKING:
    from pathlib import Path

# https://data.iana.org/root-anchors/root-anchors.xml: KSK-2017 and KSK-2024.
IANA_ROOT_ANCHORS = """\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
"""


class TrustAnchorError(ValueError):
    """A trust-anchor file that cannot be used; the message names the file and the line."""


@dataclass
class Anchor:
    zone: dns.name.Name
    ds: list[DS] = field(default_factory=list)
    dnskeys: list[DNSKEY] = field(default_factory=list)


@dataclass
class TrustAnchors:
    anchors: dict[dns.name.Name, Anchor]
    source: str = "built-in IANA root anchors"

    def closest(self, name: dns.name.Name) -> Anchor | None:
        """The deepest anchor at or above ``name``: one comparison per anchor (there are
        few), no ancestor names built, since every validated RRset asks."""
        best = None
        for anchor in self.anchors.values():
            if name.is_subdomain(anchor.zone) and (
                best is None or len(anchor.zone) > len(best.zone)
            ):
                best = anchor
        return best

    @classmethod
    def root(cls) -> TrustAnchors:
        return parse(IANA_ROOT_ANCHORS)

    @classmethod
    def from_file(cls, path: str | Path) -> TrustAnchors:
        from pathlib import Path

        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise TrustAnchorError(f"{path}: cannot read trust anchors: {reason}") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TrustAnchorError(
                f"{path}: cannot read trust anchors: {_what_it_is(data)}, not text; {EXPECTED}"
            ) from None
        return parse(text, source=str(path))


#: What a trust-anchor file must hold, for error messages.
EXPECTED = (
    "expected DS or DNSKEY lines in zone-file format, as Unbound's trust-anchor-file takes "
    "them (like '. IN DS 20326 8 2 E06D44B8…')"
)


def _what_it_is(data: bytes | str) -> str:
    """What a file that is not a trust-anchor file looks like it is, for the message."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    head = text.lstrip()[:4096]
    if isinstance(data, bytes) and head.startswith("0\x82"):
        return "the file looks like DER (a binary certificate or key)"
    if isinstance(data, bytes):
        return "the file is binary"
    if head.startswith("-----BEGIN "):
        kind = head[len("-----BEGIN ") :].split("-----", 1)[0]
        return f"the file is PEM ({kind}), not trust anchors"
    if head.startswith("<?xml") or "<TrustAnchor" in head:
        return "the file is XML (IANA's root-anchors.xml?), not zone-file lines"
    for clause in ("trust-anchors", "managed-keys", "trusted-keys"):
        if re.match(rf"{clause}\s*{{", head):
            return f"the file is BIND's {clause} clause, not zone-file lines"
    return ""


def _syntax_error(text: str, source: str, exc: Exception) -> str:
    """The message for a file dnspython cannot read: the first line that is not a record
    (dnspython's own line numbers point past it), and what the file seems to be."""
    what = _what_it_is(text)
    line_no, line, problem = 0, "", str(exc).split(": ", 1)[-1]
    depth = 0
    for number, raw in enumerate(text.splitlines(), 1):
        body = raw.split(";", 1)[0]
        opened = depth > 0 or "(" in body
        depth += body.count("(") - body.count(")")
        if not body.strip() or opened:
            continue
        try:
            dns.zonefile.read_rrsets(
                body, origin=dns.name.root, relativize=False, default_ttl=3600, rdclass=None
            )
        except dns.exception.DNSException as line_exc:
            line_no, line = number, body.strip()
            problem = str(line_exc).split(": ", 1)[-1]
            break
    where = f"{source}:{line_no}" if line_no else source
    shown = f" {line[:60]!r}" if line else ""
    lead = f"{what}; " if what else ""
    return f"{where}: not a trust anchor:{shown} ({problem}); {lead}{EXPECTED}"


def parse(text: str, source: str = "trust anchors") -> TrustAnchors:
    try:
        rrsets = dns.zonefile.read_rrsets(
            text, origin=dns.name.root, relativize=False, default_ttl=3600, rdclass=None
        )
    except dns.exception.DNSException as exc:
        raise TrustAnchorError(_syntax_error(text, source, exc)) from exc
    anchors: dict[dns.name.Name, Anchor] = {}
    for rrset in rrsets:
        if rrset.rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
            raise TrustAnchorError(
                f"{source}: {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: "
                f"only DS and DNSKEY records can be trust anchors; {EXPECTED}"
            )
        anchor = anchors.setdefault(rrset.name, Anchor(rrset.name))
        anchor.ds.extend(r for r in rrset if isinstance(r, DS))
        anchor.dnskeys.extend(r for r in rrset if isinstance(r, DNSKEY))
    if not anchors:
        what = "the file is empty" if not text.strip() else "only comments"
        raise TrustAnchorError(f"{source}: no DS or DNSKEY records ({what}); {EXPECTED}")
    return TrustAnchors(anchors, source)


def bind_format(anchors: TrustAnchors) -> str:
    """The anchors as BIND's ``trust-anchors { ... };`` clause (``delv -a FILE`` reads it)."""
    lines = ["trust-anchors {"]
    for zone, anchor in sorted(anchors.anchors.items()):
        for ds in anchor.ds:
            lines.append(
                f'\t"{zone.to_text()}" static-ds {ds.key_tag} {ds.algorithm} '
                f'{ds.digest_type} "{ds.digest.hex().upper()}";'
            )
        for key in anchor.dnskeys:
            lines.append(
                f'\t"{zone.to_text()}" static-key {key.flags} {key.protocol} {key.algorithm} '
                f'"{base64.b64encode(key.key).decode()}";'
            )
    lines.append("};")
    return "\n".join(lines) + "\n"
