"""Trust anchors: the built-in IANA root KSKs, or DS/DNSKEY lines from a file.

The file format is the one Unbound's ``trust-anchor-file`` takes: zone-file lines
(``owner [TTL] [IN] DS|DNSKEY rdata``), comments after ``;``, parentheses across lines.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zonefile

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
    ds: list[dns.rdata.Rdata] = field(default_factory=list)
    dnskeys: list[dns.rdata.Rdata] = field(default_factory=list)


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
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustAnchorError(f"{path}: cannot read trust anchors: {exc}") from exc
        return parse(text, source=str(path))


def parse(text: str, source: str = "trust anchors") -> TrustAnchors:
    try:
        rrsets = dns.zonefile.read_rrsets(
            text, origin=dns.name.root, relativize=False, default_ttl=3600, rdclass=None
        )
    except dns.exception.DNSException as exc:
        raise TrustAnchorError(f"{source}: {exc}") from exc
    anchors: dict[dns.name.Name, Anchor] = {}
    for rrset in rrsets:
        if rrset.rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
            raise TrustAnchorError(
                f"{source}: {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: "
                "only DS and DNSKEY records can be trust anchors"
            )
        anchor = anchors.setdefault(rrset.name, Anchor(rrset.name))
        if rrset.rdtype == dns.rdatatype.DS:
            anchor.ds.extend(rrset)
        else:
            anchor.dnskeys.extend(rrset)
    if not anchors:
        raise TrustAnchorError(f"{source}: no DS or DNSKEY records")
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
