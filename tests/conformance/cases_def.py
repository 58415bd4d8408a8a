"""The generated cases of the conformance corpus: what each asks, what the RFCs decide, and
the mutation that makes the situation (``generate.py`` builds the world and runs them).

Zones (all under ``example.``, see ``generate.build``): ``nsec``/``nsec3`` (the full set of
situations: wildcards, CNAMEs, DNAMEs, loops, empty non-terminals), ``optout``, one zone per
algorithm, DS digest, NSEC3 iteration count and fault.
"""

from __future__ import annotations

from types import ModuleType

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from dns.rdatatype import RdataType

from dane_monitor.world.zones import b32hex, nsec3_hash_raw

SIGNER_NOTE = (
    "delv accepts it: BIND checks that the signer is an ancestor of the owner and that its key "
    "validates, but not where the zone cut lies. RFC 4035 §5.3.1 decides: the signer MUST be "
    "the zone that contains the RRset (nsec.example., whose DS the chain followed). Not "
    "exploitable beyond what an ancestor can do through the DS it publishes, but the RFC rule "
    "is issue 11 item 4."
)
SERVFAIL_NOTE = (
    "delv gives up ('resolution failed: failure', after a FORMERR or an unusable referral), "
    "which verdict() calls servfail: no validated answer, as bogus requires."
)
LOOP_NOTE = (
    "delv stops a CNAME/DNAME loop with 'resolution failed: quota reached', which "
    "tests/test_world_delv.py's verdict() counts as bogus. No RFC makes a loop bogus (RFC 1034 "
    "§3.6.2: a resolver stops following it): no validated answer either way; ours says "
    "indeterminate cname-loop."
)
ITER_NOTE = (
    "RFC 9276 §3.2 lets a validator treat NSEC3 with iterations above its own limit as "
    "insecure; the limits differ: BIND 9.18's delv validates up to 150 iterations (secure "
    "here), our validator stops at 50 (dane_monitor/lookup/denial.py), as RFC 9276 §3.1 "
    "asks of zones (0 iterations) and Unbound/Knot Resolver's 2024 limits."
)
N = "nsec.example."
N3 = "nsec3.example."
NXDOMAIN = dns.rcode.NXDOMAIN
NSEC, NSEC3T, RRSIG = RdataType.NSEC, RdataType.NSEC3, RdataType.RRSIG


_G: ModuleType


def define_cases(g: ModuleType) -> None:
    global _G
    _G = g
    case, ok = g.case, g.ok

    def tlsa(zone: str) -> str:
        return f"_25._tcp.mail.{zone}"

    def resign(origin: str, **kw):
        return g.replace_answer_sig(origin, **kw)

    # ------------------------------------------------------------------ RFC 4035 §5
    R = "rfc4035"
    for z, d in ((N, "nsec"), (N3, "nsec3")):
        ok(R, f"{d}-tlsa", "RFC 4035 §5.3", f"TLSA in a signed {d.upper()} zone", tlsa(z), "TLSA")
        ok(R, f"{d}-apex-mx", "RFC 4035 §5.3", "MX at the zone apex", z, "MX")
        ok(R, f"{d}-dnskey", "RFC 4035 §5.2", "the zone's DNSKEY RRset, self-signed", z, "DNSKEY")
        ok(R, f"{d}-ds", "RFC 4035 §5.2", "the DS RRset, answered by the parent", z, "DS")
        ok(
            R,
            f"{d}-nxdomain",
            "RFC 4035 §5.4",
            "NXDOMAIN proven",
            f"nothere.{z}",
            "A",
            kind="nxdomain",
        )
        ok(
            R,
            f"{d}-nxdomain-tlsa",
            "RFC 4035 §5.4",
            "no TLSA name below an existing host",
            f"_25._tcp.ok.{z}",
            "TLSA",
            kind="nxdomain",
        )
        ok(R, f"{d}-nodata", "RFC 4035 §5.4", "NODATA proven", f"mail.{z}", "TXT", kind="nodata")
        ok(
            R,
            f"{d}-nodata-ent",
            "RFC 4035 §5.4",
            "NODATA at an empty non-terminal",
            f"_tcp.mail.{z}",
            "TLSA",
            kind="nodata",
        )
        ok(
            R,
            f"{d}-cname-chain",
            "RFC 4035 §5.3",
            "CNAME → CNAME → A, all signed",
            f"alias.{z}",
            "A",
        )
        ok(
            R,
            f"{d}-cname-cross-zone",
            "RFC 4035 §5.3",
            "CNAME into a sibling signed zone",
            f"xalias.{z}",
            "A",
        )
        ok(
            R,
            f"{d}-cname-dangling",
            "RFC 4035 §5.4",
            "CNAME to a name that does not exist: the chain ends in a proven NXDOMAIN",
            f"dangling.{z}",
            "A",
            kind="nxdomain",
        )
        case(
            R,
            f"{d}-cname-to-insecure",
            "RFC 4035 §5.2",
            "CNAME into a provably unsigned child zone: the answer is insecure",
            f"toinsecure.{z}",
            "A",
            "insecure",
            "positive",
        )
        case(
            R,
            f"{d}-insecure-delegation",
            "RFC 4035 §5.2",
            f"delegation without DS, proven by {d.upper()}: insecure",
            tlsa(f"unsigned.{z}"),
            "TLSA",
            "insecure",
            "positive",
        )
        ok(
            R,
            f"{d}-insecure-delegation-ds",
            "RFC 4035 §5.2",
            "the DS denial itself is a secure NODATA",
            f"unsigned.{z}",
            "DS",
            kind="nodata",
        )
        case(
            R,
            f"{d}-cname-loop",
            "RFC 1034 §3.6.2",
            "two CNAMEs pointing at each other: no answer, never a crash",
            f"loop1.{z}",
            "A",
            "indeterminate",
            "error",
            "cname-loop",
            delv="bogus",
            notes=LOOP_NOTE,
        )
        case(
            R,
            f"{d}-cname-self",
            "RFC 1034 §3.6.2",
            "a CNAME pointing at itself",
            f"self.{z}",
            "A",
            "indeterminate",
            "error",
            "cname-loop",
            delv="bogus",
            notes=LOOP_NOTE,
        )
        case(
            R,
            f"{d}-unsigned-cname",
            "RFC 4035 §5.3",
            "the CNAME of a signed zone arrives without its RRSIG: bogus",
            f"alias.{z}",
            "A",
            "bogus",
            overrides={(f"alias.{z}", "A"): g.drop_rrsigs("CNAME")},
        )
        case(
            R,
            f"{d}-missing-nxdomain-proof",
            "RFC 4035 §5.4",
            "NXDOMAIN without any NSEC/NSEC3: bogus",
            f"nothere.{z}",
            "A",
            "bogus",
            overrides={
                (f"nothere.{z}", "A"): g.drop_authority("NSEC3" if d == "nsec3" else "NSEC")
            },
        )
        case(
            R,
            f"{d}-missing-nodata-proof",
            "RFC 4035 §5.4",
            "NODATA without proof: bogus",
            f"mail.{z}",
            "TXT",
            "bogus",
            overrides={(f"mail.{z}", "TXT"): g.drop_authority("NSEC3" if d == "nsec3" else "NSEC")},
        )
        case(
            R,
            f"{d}-nodata-type-present",
            "RFC 4035 §5.4",
            "NODATA whose proof lists the asked type in the bitmap: bogus",
            f"mail.{z}",
            "A",
            "bogus",
            overrides={
                (f"mail.{z}", "A"): g.respond_with(authority=g.sections_of(f"mail.{z}", "TXT"))
            },
        )
        case(
            R,
            f"{d}-nxdomain-for-existing-name",
            "RFC 4035 §5.4",
            "NXDOMAIN for a name that exists, with the zone's real denial of another name",
            f"mail.{z}",
            "A",
            "bogus",
            overrides={
                (f"mail.{z}", "A"): g.respond_with(
                    authority=g.sections_of(f"nothere.{z}", "A"), rcode=NXDOMAIN
                )
            },
        )
        case(
            R,
            f"{d}-rrsig-labels-above-owner",
            ["RFC 4035 §5.3.1", "issue 11 item 4"],
            "RRSIG Labels field larger than the owner's label count (validly signed): bogus",
            tlsa(z),
            "TLSA",
            "bogus",
            overrides={(tlsa(z), "TLSA"): _forge_answer(g, z, labels=6)},
        )

    Z = N
    case(
        R,
        "expired",
        "RFC 4035 §5.3.1",
        "the TLSA RRSIG expired before the validation time",
        tlsa("expired.example."),
        "TLSA",
        "bogus",
        reason="signature-expired",
    )
    ok(
        R,
        "expired-other-rrset",
        "RFC 4035 §5.3.1",
        "an expired signature on one RRset leaves the others secure",
        "mail.expired.example.",
        "A",
    )
    case(
        R,
        "not-yet-valid",
        "RFC 4035 §5.3.1",
        "the TLSA RRSIG's inception lies after the validation time (2087): bogus",
        tlsa(Z),
        "TLSA",
        "bogus",
        reason="signature-not-yet-valid",
        overrides={(tlsa(Z), "TLSA"): resign(Z, inception=3692217600, expiration=3723753600)},
    )
    case(
        R,
        "bad-signature",
        "RFC 4035 §5.3.3",
        "corrupted TLSA signature",
        tlsa("badsig.example."),
        "TLSA",
        "bogus",
        reason="bad-signature",
    )
    case(
        R,
        "missing-rrsig",
        "RFC 4035 §5.3",
        "TLSA without RRSIG in a signed zone",
        tlsa("nosig.example."),
        "TLSA",
        "bogus",
        reason="missing-rrsig",
    )
    case(
        R,
        "no-matching-key",
        "RFC 4035 §5.3.1",
        "TLSA signed by a key that is not in the zone's DNSKEY RRset (signer field right)",
        tlsa(Z),
        "TLSA",
        "bogus",
        overrides={(tlsa(Z), "TLSA"): _foreign_key(g, Z, "nsec3.example.")},
    )
    case(
        R,
        "ds-mismatch",
        "RFC 4035 §5.2",
        "the parent's DS matches no DNSKEY",
        "mail.dsmismatch.example.",
        "A",
        "bogus",
        reason="no-matching-ds",
    )
    case(
        R,
        "ds-mismatch-tlsa",
        "RFC 4035 §5.2",
        "a broken chain makes the TLSA bogus too",
        tlsa("dsmismatch.example."),
        "TLSA",
        "bogus",
    )
    case(
        R,
        "unsigned-dnskey",
        "RFC 4035 §5.2",
        "the DNSKEY RRset carries no RRSIG",
        "mail.unsigned-dnskey.example.",
        "A",
        "bogus",
    )
    case(
        R,
        "bad-dnskey-signature",
        "RFC 4035 §5.2",
        "the DNSKEY RRset's RRSIG is corrupted",
        "mail.badkeysig.example.",
        "A",
        "bogus",
    )
    case(
        R,
        "expired-zone",
        "RFC 4035 §5.3.1",
        "every signature of the zone expired",
        "mail.expired-zone.example.",
        "A",
        "bogus",
    )
    case(
        R,
        "expired-zone-nxdomain",
        "RFC 4035 §5.3.1",
        "a denial signed with expired signatures is bogus",
        "nothere.expired-zone.example.",
        "A",
        "bogus",
    )
    case(
        R,
        "unsupported-digest",
        ["RFC 4035 §5.2", "RFC 6840 §5.2"],
        "the only DS uses an unknown digest type (200): treated as no DS, insecure",
        tlsa("ds-unknown.example."),
        "TLSA",
        "insecure",
        "positive",
    )
    for which, signer_zone, why in (
        ("sibling", "nsec3.example.", "a sibling zone"),
        ("parent", "example.", "the parent zone"),
        ("child", "signed.nsec.example.", "a child zone"),
    ):
        case(
            R,
            f"signer-{which}",
            ["RFC 4035 §5.3.1", "issue 11 item 4"],
            f"the TLSA RRset validly signed by {why} (signer field names it): bogus",
            tlsa(Z),
            "TLSA",
            "bogus",
            overrides={(tlsa(Z), "TLSA"): resign(signer_zone)},
            **({"delv": "valid", "notes": SIGNER_NOTE} if which == "parent" else {}),
        )
    case(
        R,
        "signer-root-under-tld-anchor",
        ["RFC 4035 §5.3.1", "issue 11 item 3"],
        "anchor at example.; the TLSA signed by the root's key (signer '.', above the anchor):"
        " data under an anchor is secure or bogus, never insecure",
        tlsa(Z),
        "TLSA",
        "bogus",
        anchor="example",
        overrides={(tlsa(Z), "TLSA"): resign(".")},
    )
    case(
        R,
        "signer-root-under-root-anchor",
        ["RFC 4035 §5.3.1", "issue 11 item 4"],
        "the TLSA validly signed by the root zone (two levels up)",
        tlsa(Z),
        "TLSA",
        "bogus",
        delv="valid",
        notes=SIGNER_NOTE,
        overrides={(tlsa(Z), "TLSA"): resign(".")},
    )
    case(
        R,
        "ds-from-child-side",
        ["RFC 4035 §5.2", "RFC 6840 §4.4"],
        "the DS question answered with the child's own NODATA (apex NSEC: SOA, no DS): not a "
        "proof of an insecure delegation, so the chain is bogus, not insecure",
        tlsa("signed.nsec.example."),
        "TLSA",
        "bogus",
        overrides={
            ("signed.nsec.example.", "DS"): g.respond_with(
                authority=g.sections_of("signed.nsec.example.", "TXT")
            )
        },
    )
    case(
        R,
        "ds-question-child-side",
        ["RFC 4035 §5.2", "RFC 6840 §4.4"],
        "a DS question answered from the child side of the cut: bogus",
        "signed.nsec.example.",
        "DS",
        "bogus",
        delv="servfail",
        notes=SERVFAIL_NOTE,
        overrides={
            ("signed.nsec.example.", "DS"): g.respond_with(
                authority=g.sections_of("signed.nsec.example.", "TXT")
            )
        },
    )
    case(
        R,
        "island",
        "RFC 4035 §5.2",
        "a signed zone whose parent publishes no DS: insecure",
        tlsa("island.example."),
        "TLSA",
        "insecure",
        "positive",
    )
    case(
        R,
        "unsigned-zone",
        "RFC 4035 §5.2",
        "an unsigned zone under a signed parent",
        "mail.plain.example.",
        "A",
        "insecure",
        "positive",
    )
    case(
        R,
        "servfail",
        "RFC 4035 §5",
        "the server answers SERVFAIL for the TLSA",
        tlsa("servfail.example."),
        "TLSA",
        "indeterminate",
        "error",
        "servfail",
    )
    case(
        R,
        "nsec-wrong-denial",
        "RFC 4035 §5.4",
        "NXDOMAIN with NSECs that cover other names",
        "nothere.wrongdenial.example.",
        "A",
        "bogus",
    )
    case(
        R,
        "nsec-wrong-nodata",
        "RFC 4035 §5.4",
        "NODATA with an NSEC of another name",
        "mail.wrongdenial.example.",
        "TXT",
        "bogus",
    )
    case(
        R,
        "nsec-missing-denial-zone",
        "RFC 4035 §5.4",
        "a zone that never sends proofs",
        "nothere.nodenial.example.",
        "A",
        "bogus",
    )
    case(
        R,
        "nsec-nxdomain-no-wildcard-proof",
        "RFC 4035 §5.4",
        "NXDOMAIN proving the name absent but not the wildcard: bogus",
        f"nothere.{Z}",
        "A",
        "bogus",
        overrides={(f"nothere.{Z}", "A"): g.drop_authority("NSEC", keep=1)},
    )
    case(
        R,
        "nsec-parent-side-nxdomain",
        ["RFC 4035 §5.4", "RFC 6840 §4.1"],
        "NXDOMAIN below a delegation 'proven' by the parent's NSEC at the cut (NS, no SOA)",
        "nothere.signed.nsec.example.",
        "A",
        "bogus",
        overrides={
            ("nothere.signed.nsec.example.", "A"): g.respond_with(
                authority=_parent_nsec(g, "signed.nsec.example."), rcode=NXDOMAIN
            )
        },
    )
    case(
        R,
        "nsec-parent-side-nodata",
        ["RFC 4035 §5.4", "RFC 6840 §4.1"],
        "NODATA for the child's apex TLSA 'proven' by the parent's NSEC at the cut",
        "signed.nsec.example.",
        "TLSA",
        "bogus",
        overrides={
            ("signed.nsec.example.", "TLSA"): g.respond_with(
                authority=_parent_nsec(g, "signed.nsec.example.")
            )
        },
    )
    ok(
        R,
        "nsec-nxdomain-wrapping",
        "RFC 4035 §5.4",
        "NXDOMAIN proven by the zone's last NSEC, whose next name wraps to the apex",
        f"zzzz.{Z}",
        "A",
        kind="nxdomain",
    )
    case(
        R,
        "dnskey-signed-by-zsk-only",
        "RFC 4035 §5.2",
        "the DNSKEY RRset signed only by the ZSK, which no DS names: bogus",
        tlsa(Z),
        "TLSA",
        "bogus",
        overrides={(Z, "DNSKEY"): resign(Z)},
    )
    case(
        R,
        "ds-wrong-algorithm",
        "RFC 4035 §5.2",
        "the parent's DS (validly signed) names algorithm 8 for the zone's algorithm-13 KSK: "
        "a supported algorithm, no key matches, bogus (not insecure)",
        tlsa(Z),
        "TLSA",
        "bogus",
        overrides={(Z, "DS"): _ds_rewrite(Z, "example.", algorithm=8)},
    )
    case(
        R,
        "ds-unsupported-algorithm-field",
        ["RFC 4035 §5.2", "RFC 6840 §5.2"],
        "the parent's only DS (validly signed) names algorithm 253 for the zone's algorithm-13 "
        "KSK: no supported algorithm in the DS RRset, so the zone is insecure",
        tlsa(Z),
        "TLSA",
        "insecure",
        "positive",
        overrides={(Z, "DS"): _ds_rewrite(Z, "example.", algorithm=253)},
    )

    # ------------------------------------------------------------------ RFC 4592 wildcards
    W = "rfc4592"
    for z, d in ((N, "nsec"), (N3, "nsec3")):
        den = "NSEC3" if d == "nsec3" else "NSEC"
        ok(
            W,
            f"{d}-wildcard",
            "RFC 4592 §3.3.1",
            "wildcard expansion with its proof",
            f"a.wild.{z}",
            "TXT",
        )
        ok(
            W,
            f"{d}-wildcard-two-labels",
            "RFC 4592 §3.3.1",
            "two labels below the wildcard",
            f"a.b.wild.{z}",
            "TXT",
        )
        ok(
            W,
            f"{d}-wildcard-tlsa",
            ["RFC 4592", "RFC 7672 §3.1"],
            "a wildcard TLSA (*._tcp.wmx)",
            f"_25._tcp.wmx.{z}",
            "TLSA",
        )
        case(
            W,
            f"{d}-wildcard-no-proof",
            ["RFC 4035 §5.3.4", "RFC 4592"],
            "a wildcard expansion without the proof that the name does not exist: bogus",
            f"a.wild.{z}",
            "TXT",
            "bogus",
            overrides={(f"a.wild.{z}", "TXT"): g.drop_authority(den)},
        )
        case(
            W,
            f"{d}-wildcard-tlsa-no-proof",
            ["RFC 4035 §5.3.4", "RFC 4592"],
            "a wildcard TLSA expansion without proof: bogus",
            f"_25._tcp.wmx.{z}",
            "TLSA",
            "bogus",
            overrides={(f"_25._tcp.wmx.{z}", "TLSA"): g.drop_authority(den)},
        )
        ok(
            W,
            f"{d}-wildcard-nodata",
            "RFC 4592 §3.3.1",
            "the wildcard has no such type",
            f"a.wild.{z}",
            "A",
            kind="nodata",
        )
        ok(
            W,
            f"{d}-wildcard-cname",
            "RFC 4592 §4.4",
            "a wildcard CNAME, followed",
            f"x.wildalias.{z}",
            "A",
        )
        ok(
            W,
            f"{d}-cname-into-wildcard",
            "RFC 4592",
            "a CNAME whose target is a wildcard name",
            f"wildalias.{z}",
            "TXT",
        )
        case(
            W,
            f"{d}-ent-wildcard-nxdomain",
            ["RFC 4592 §2.2.2", "RFC 4592 §2.1.1"],
            "sub.*.notleft makes *.notleft an empty non-terminal wildcard, so sub.x.notleft "
            "matches it (NODATA); the world's server answers NXDOMAIN, which the proof cannot "
            "support (the wildcard exists): bogus",
            f"sub.x.notleft.{z}",
            "TXT",
            "bogus",
            notes="The world's DNS server (dane_monitor/world/dnsserver.py) answers NXDOMAIN "
            "here; RFC 4592 §2.2.2 and §3.3.1 make it NOERROR/NODATA, because an empty "
            "non-terminal wildcard still matches.",
        )
        ok(
            W,
            f"{d}-star-not-leftmost-literal",
            "RFC 4592 §2.1.1",
            "sub.*.notleft asked literally",
            f"sub.*.notleft.{z}",
            "TXT",
        )
        ok(
            W,
            f"{d}-star-inside-label",
            "RFC 4592 §2.1.1",
            "x*y is no wildcard: xay does not exist",
            f"xay.{z}",
            "TXT",
            kind="nxdomain",
        )
        ok(
            W,
            f"{d}-existing-name-beats-wildcard",
            "RFC 4592 §2.2",
            "host.dyn exists: no wildcard expansion of *.dyn for it",
            f"host.dyn.{z}",
            "TLSA",
        )
        case(
            W,
            f"{d}-wildcard-source-outside-zone",
            ["RFC 4035 §5.3.1", "issue 11 item 4"],
            "RRSIG Labels=1 on mail.<zone> A: the wildcard it claims (*.example.) lies above "
            "the signer's zone, though the signature verifies: bogus",
            f"mail.{z}",
            "A",
            "bogus",
            delv="servfail",
            notes=SERVFAIL_NOTE,
            overrides={(f"mail.{z}", "A"): _forge_answer(g, z, labels=1)},
        )
        case(
            W,
            f"{d}-wildcard-claimed-for-existing-name",
            ["RFC 4035 §5.3.4"],
            "an RRSIG claiming expansion of *.<zone> (Labels=2) for mail.<zone>, with no "
            "proof that mail.<zone> does not exist: bogus",
            f"mail.{z}",
            "A",
            "bogus",
            overrides={(f"mail.{z}", "A"): _forge_answer(g, z, labels=2)},
        )
    case(
        W,
        "nsec-expanded-nsec-nxdomain",
        ["RFC 4035 §5.4", "CVE-2017-15105", "issue 11 item 1"],
        "NXDOMAIN for a wildcard-covered TLSA 'proven' by an NSEC synthesised from *._tcp.wmx "
        "(owner !._tcp.wmx, RRSIG Labels < owner labels): a wildcard-expanded NSEC proves "
        "nothing, bogus",
        f"_25._tcp.wmx.{N}",
        "TLSA",
        "bogus",
        overrides={
            (f"_25._tcp.wmx.{N}", "TLSA"): g.respond_with(
                authority=_expanded_nsec(g, N, f"!._tcp.wmx.{N}", None), rcode=NXDOMAIN
            )
        },
    )
    case(
        W,
        "nsec-expanded-nsec-nodata",
        ["RFC 4035 §5.4", "CVE-2017-15105", "issue 11 item 1"],
        "NODATA for host.dyn TLSA (which exists) 'proven' by the *.dyn NSEC expanded to "
        "host.dyn (bitmap A RRSIG NSEC): bogus",
        f"host.dyn.{N}",
        "TLSA",
        "bogus",
        overrides={
            (f"host.dyn.{N}", "TLSA"): g.respond_with(
                authority=_expanded_nsec(g, N, f"zz.dyn.{N}", f"host.dyn.{N}")
            )
        },
    )
    case(
        W,
        "nsec-expanded-nsec-nodata-new-name",
        ["RFC 4035 §5.4", "issue 11 item 1"],
        "NODATA for x.dyn TXT proven only by the *.dyn NSEC expanded to x.dyn (the wildcard "
        "NODATA proof needs the NSEC that covers x.dyn and the wildcard's own NSEC): bogus",
        f"x.dyn.{N}",
        "TXT",
        "bogus",
        overrides={
            (f"x.dyn.{N}", "TXT"): g.respond_with(
                authority=_expanded_nsec(g, N, f"x.dyn.{N}", None)
            )
        },
    )

    # ------------------------------------------------------------------ RFC 5155 NSEC3
    F = "rfc5155"
    ok(
        F,
        "nxdomain-deep",
        "RFC 5155 §8.4",
        "NXDOMAIN three labels below the closest encloser",
        f"a.b.c.nothere.{N3}",
        "A",
        kind="nxdomain",
    )
    ok(
        F,
        "nodata-ent-two-levels",
        "RFC 5155 §8.5",
        "NODATA at an ENT two levels deep",
        f"ent.sub.{N3}",
        "A",
        kind="nodata",
    )
    ok(
        F,
        "wildcard-nodata",
        "RFC 5155 §8.7",
        "wildcard NODATA",
        f"x.wild.{N3}",
        "MX",
        kind="nodata",
    )
    ok(
        F,
        "nxdomain-wrapping",
        "RFC 5155 §8.3",
        "NXDOMAIN whose next closer name hashes beyond the last NSEC3 (the span wraps)",
        _wrapping_name(g),
        "A",
        kind="nxdomain",
    )
    case(
        F,
        "missing-closest-encloser",
        "RFC 5155 §8.3",
        "NXDOMAIN without the NSEC3 matching the closest encloser: bogus",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={(f"nothere.{N3}", "A"): _drop_nsec3(g, N3, "ce", "nothere")},
    )
    case(
        F,
        "missing-next-closer-cover",
        "RFC 5155 §8.4",
        "NXDOMAIN without the NSEC3 covering the next closer name: bogus",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={(f"nothere.{N3}", "A"): _drop_nsec3(g, N3, "nc", "nothere")},
    )
    case(
        F,
        "missing-wildcard-cover",
        "RFC 5155 §8.4",
        "NXDOMAIN without the NSEC3 covering the wildcard at the closest encloser: bogus",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={(f"nothere.{N3}", "A"): _drop_nsec3(g, N3, "wc", "nothere")},
    )
    case(
        F,
        "nsec3-from-another-zone",
        ["RFC 5155 §8.3", "issue 11 item 7"],
        "NXDOMAIN in nsec3.example. proven with the NSEC3 records of another zone (valid "
        "signatures, their own zone): bogus, never an exception",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={
            (f"nothere.{N3}", "A"): g.respond_with(
                authority=lambda ctx: [
                    *_soa(ctx, N3),
                    *_nsec3_only(ctx.ask("nothere.iter0.example.", "A")),
                ],
                rcode=NXDOMAIN,
            )
        },
    )
    case(
        F,
        "nsec3-owner-outside-zone",
        ["RFC 5155 §8.3", "issue 11 item 7"],
        "NSEC3 records renamed below another name (owner not <hash>.<zone>), re-signed: "
        "bogus, never an exception",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={(f"nothere.{N3}", "A"): _nsec3_reowned(g, N3, "deep.ent.sub." + N3)},
    )
    case(
        F,
        "nsec3-owner-in-parent",
        ["RFC 5155 §8.3", "issue 11 item 7"],
        "the zone's NSEC3 records presented as <hash>.example. (the parent), re-signed by "
        "the parent: the closest-encloser walk must not leave the zone",
        f"nothere.{N3}",
        "A",
        "bogus",
        delv="nxdomain",
        notes="delv accepts it: BIND checks that the NSEC3 owner's zone (the owner minus its "
        "first label) is an ancestor of the name and that the signature verifies, so the "
        "parent's key can deny names in the child. RFC 5155 §7.2/§8.3 decide (NSEC3 RRs of "
        "the zone that holds the name), issue 11 item 7: the closest-encloser walk must not "
        "leave the zone. Not exploitable beyond what the parent can do with its DS.",
        overrides={(f"nothere.{N3}", "A"): _nsec3_reowned(g, N3, "example.", signer="example.")},
    )
    case(
        F,
        "mixed-parameters",
        "RFC 5155 §8.2",
        "one NSEC3 of the proof with another salt (re-signed): it is ignored, the proof is "
        "incomplete, bogus",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={(f"nothere.{N3}", "A"): _nsec3_params(g, N3, salt=b"\xff", which=-1)},
    )
    case(
        F,
        "unknown-hash-algorithm",
        "RFC 5155 §8.1",
        "every NSEC3 of the proof says hash algorithm 2 (re-signed): validators ignore them, "
        "so the NXDOMAIN is unproven: bogus",
        f"nothere.{N3}",
        "A",
        "bogus",
        overrides={(f"nothere.{N3}", "A"): _nsec3_params(g, N3, algorithm=2, which=None)},
    )
    ok(
        F,
        "optout-secure-delegation",
        "RFC 5155 §6",
        "a signed child inside an opt-out zone",
        tlsa("signed.optout.example."),
        "TLSA",
    )
    case(
        F,
        "optout-insecure-delegation",
        "RFC 5155 §8.9",
        "an unsigned child in an opt-out span: insecure",
        tlsa("unsigned.optout.example."),
        "TLSA",
        "insecure",
        "positive",
    )
    case(
        F,
        "optout-ds-denial",
        ["RFC 5155 §8.6", "RFC 5155 §9.2", "issue 11 item 2"],
        "the DS denial of an unsigned child is an opt-out span: it proves an insecure "
        "delegation, so the NODATA itself is insecure",
        "unsigned.optout.example.",
        "DS",
        "insecure",
        "nodata",
        notes="delv says a secure NODATA: BIND treats the opt-out DS denial as validated. "
        "RFC 5155 §8.6 and §9.2 decide: an opt-out span proves no more than an insecure "
        "delegation (Unbound answers insecure here too); issue 11 item 2.",
        delv="nodata",
    )
    case(
        F,
        "optout-nxdomain",
        ["RFC 5155 §8.4", "RFC 5155 §9.2", "issue 11 item 2"],
        "NXDOMAIN whose next closer name is covered by an opt-out NSEC3: an unsigned "
        "delegation may hide there, so insecure, never secure",
        "nothere.optout.example.",
        "A",
        "insecure",
        "nxdomain",
        notes="delv (BIND 9.18) accepts an opt-out NXDOMAIN proof as secure. RFC 5155 §9.2 "
        "decides: the opt-out span may contain an unsigned delegation, so the name's "
        "non-existence is not proven; issue 11 item 2.",
        delv="nxdomain",
    )
    case(
        F,
        "optout-nodata",
        ["RFC 5155 §8.5", "RFC 5155 §9.2", "issue 11 item 2"],
        "NODATA for a TLSA in an opt-out span (no matching NSEC3; closest encloser and an "
        "opt-out cover of the next closer): nothing is proven, so never secure; insecure, as "
        "Unbound answers",
        "nothere.optout.example.",
        "TLSA",
        "insecure",
        notes="RFC 5155 §8.5 asks for a matching NSEC3 for any type but DS, so the NODATA is "
        "not proven: delv says bogus. Unbound (nsec3_do_prove_nodata) answers insecure, because "
        "the span may hold an unsigned delegation the name lies under (§9.2); so do we "
        "(tests/test_lookup_unbound_optout.py asks Unbound): a bogus verdict here would page "
        "an operator over what senders behind Unbound treat as unsigned.",
        overrides={
            ("nothere.optout.example.", "TLSA"): g.respond_with(
                authority=lambda ctx: [
                    r
                    for r in ctx.ask("nothere.optout.example.", "A").authority
                    if (r.rdtype != NSEC3T and r.covers != NSEC3T)
                    or _in_proof(ctx, r, "optout.example.", "nothere")
                ]
            )
        },
    )
    case(
        F,
        "optout-wildcard",
        ["RFC 5155 §8.8", "RFC 5155 §9.2"],
        "a wildcard expansion whose next closer is in an opt-out span: insecure",
        "a.wild.optout.example.",
        "TXT",
        "insecure",
        "positive",
    )
    case(
        F,
        "nsec3-missing-denial-zone",
        "RFC 5155 §8",
        "an NSEC3 zone that never sends proofs",
        "nothere.nodenial3.example.",
        "A",
        "bogus",
    )
    case(
        F,
        "nsec3-wrong-denial",
        "RFC 5155 §8.4",
        "NSEC3s that cover other names",
        "nothere.wrongdenial3.example.",
        "A",
        "bogus",
    )
    case(
        F,
        "nsec3-wrong-nodata",
        "RFC 5155 §8.5",
        "NODATA with another name's NSEC3",
        "mail.wrongdenial3.example.",
        "TXT",
        "bogus",
    )
    ok(
        F,
        "salted",
        "RFC 5155 §5",
        "a salted, iterated (5) zone: NXDOMAIN",
        "nothere.salted.example.",
        "A",
        kind="nxdomain",
    )
    ok(
        F,
        "salted-wildcard",
        "RFC 5155 §8.8",
        "wildcard in a salted zone",
        "a.wild.salted.example.",
        "TXT",
    )
    ok(
        F,
        "long-salt",
        "RFC 5155 §3.1.5",
        "a 255-byte salt: NXDOMAIN",
        "nothere.longsalt.example.",
        "A",
        kind="nxdomain",
    )
    case(
        F,
        "parent-side-nxdomain",
        ["RFC 5155 §8.3", "RFC 6840 §4.1"],
        "NXDOMAIN below the delegation to signed.nsec3.example. 'proven' with the parent's "
        "NSEC3s: the closest encloser's NSEC3 has NS without SOA, it cannot be used for names "
        "below the cut: bogus",
        f"nothere.signed.{N3}",
        "A",
        "bogus",
        overrides={
            (f"nothere.signed.{N3}", "A"): g.respond_with(
                authority=_nsec3_proof(
                    N3,
                    match=(f"signed.{N3}",),
                    cover=(f"nothere.signed.{N3}", f"*.signed.{N3}"),
                ),
                rcode=NXDOMAIN,
            )
        },
    )
    case(
        F,
        "dname-closest-encloser",
        ["RFC 5155 §8.3", "RFC 6672 §5.3.2"],
        "NXDOMAIN for a name below a DNAME, with the DNAME owner's NSEC3 as closest encloser "
        "(bitmap has DNAME): the DNAME would apply, so no denial below it: bogus",
        f"x.y.dn.{N3}",
        "A",
        "bogus",
        overrides={
            (f"x.y.dn.{N3}", "A"): g.respond_with(
                authority=_nsec3_proof(N3, match=(f"dn.{N3}",), cover=(f"y.dn.{N3}", f"*.dn.{N3}")),
                rcode=NXDOMAIN,
            )
        },
    )
    case(
        F,
        "nxdomain-proof-with-noerror",
        ["RFC 5155 §8.5", "RFC 4035 §5.4"],
        "a complete NXDOMAIN proof sent with rcode NOERROR (a NODATA claim): NODATA needs "
        "an NSEC3 matching the name: bogus",
        f"nothere.{N3}",
        "TLSA",
        "bogus",
        overrides={
            (f"nothere.{N3}", "TLSA"): g.respond_with(authority=g.sections_of(f"nothere.{N3}", "A"))
        },
    )
    case(
        R,
        "nsec-dname-nxdomain-below",
        ["RFC 4035 §5.4", "RFC 6672 §5.3.2"],
        "NXDOMAIN for a name below a DNAME 'proven' by the NSEC at the DNAME owner (it "
        "covers the name; bitmap has DNAME): the DNAME applies there, bogus",
        f"x.dn.{N}",
        "A",
        "bogus",
        overrides={
            (f"x.dn.{N}", "A"): g.respond_with(
                authority=_nsec_proof(N, (f"x.dn.{N}", f"*.dn.{N}")), rcode=NXDOMAIN
            )
        },
    )
    case(
        R,
        "nsec-nxdomain-for-ent",
        ["RFC 4035 §5.4", "RFC 4592 §2.2.2"],
        "NXDOMAIN for the empty non-terminal _tcp.mail 'proven' by the NSEC at mail, whose "
        "next name _25._tcp.mail lies below the asked name (so the name exists): bogus",
        f"_tcp.mail.{N}",
        "TXT",
        "bogus",
        overrides={
            (f"_tcp.mail.{N}", "TXT"): g.respond_with(
                authority=_nsec_proof(N, (f"_tcp.mail.{N}", f"*.mail.{N}")), rcode=NXDOMAIN
            )
        },
    )
    case(
        R,
        "nsec-nxdomain-proof-with-noerror",
        "RFC 4035 §5.4",
        "a complete NXDOMAIN proof sent with rcode NOERROR (a NODATA claim): NODATA needs the "
        "NSEC of the name itself: bogus",
        f"nothere.{N}",
        "TLSA",
        "bogus",
        overrides={
            (f"nothere.{N}", "TLSA"): g.respond_with(authority=g.sections_of(f"nothere.{N}", "A"))
        },
    )

    # ------------------------------------------------------------------ RFC 6672 DNAME
    D = "rfc6672"
    for z, d in ((N, "nsec"), (N3, "nsec3")):
        ok(
            D,
            f"{d}-dname-a",
            ["RFC 6672 §5.3.1", "issue 11 item 5"],
            "a signed DNAME with its unsigned synthesised CNAME: secure",
            f"mail.dn.{z}",
            "A",
        )
        ok(
            D,
            f"{d}-dname-tlsa",
            ["RFC 6672 §5.3.1", "RFC 7672 §3.2.2", "issue 11 item 5"],
            "a TLSA name below a DNAME",
            tlsa(f"dn.{z}"),
            "TLSA",
        )
        ok(
            D,
            f"{d}-dname-nxdomain",
            "RFC 6672 §5.3.1",
            "the DNAME's target name does not exist: a proven NXDOMAIN",
            f"nothere.dn.{z}",
            "A",
            kind="nxdomain",
        )
        ok(D, f"{d}-dname-itself", "RFC 6672 §2", "the DNAME RRset asked for", f"dn.{z}", "DNAME")
        ok(
            D,
            f"{d}-dname-then-cname",
            "RFC 6672 §3",
            "DNAME, synthesised CNAME, then a CNAME",
            f"a.dncname.{z}",
            "A",
        )
        ok(
            D,
            f"{d}-cname-then-dname",
            "RFC 6672 §3",
            "a CNAME to a name below a DNAME",
            f"toname.{z}",
            "A",
        )
        ok(
            D,
            f"{d}-dname-cross-zone",
            "RFC 6672 §3",
            "a DNAME into a sibling signed zone",
            f"mail.dnext.{z}",
            "A",
        )
        case(
            D,
            f"{d}-dname-cname-mismatch",
            ["RFC 6672 §5.3.1", "issue 11 item 5"],
            "the synthesised CNAME points elsewhere than the DNAME says (to a real, signed "
            "name): ignored, the DNAME's own target is followed and validates",
            f"mail.dn.{z}",
            "A",
            "secure",
            kind="positive",
            delv="valid",
            notes="The unsigned CNAME means nothing; the validator synthesises its own from the "
            "signed DNAME (RFC 6672 §3.4) and validates the right target (mail.target.<zone>), "
            "as delv and Unbound do. Nobody accepts the forged target.",
            overrides={(f"mail.dn.{z}", "A"): _redirect_cname(f"ok.{z}")},
        )
        case(
            D,
            f"{d}-dname-unsigned",
            "RFC 6672 §5.3.1",
            "the DNAME arrives without its RRSIG: bogus",
            f"mail.dn.{z}",
            "A",
            "bogus",
            overrides={(f"mail.dn.{z}", "A"): g.drop_rrsigs("DNAME")},
        )
        case(
            D,
            f"{d}-dname-loop",
            "RFC 6672 §3",
            "DNAME → CNAME back under the DNAME: a loop",
            f"a.dnloop.{z}",
            "A",
            "indeterminate",
            "error",
            "cname-loop",
            delv="bogus",
            notes=LOOP_NOTE,
        )

    # ------------------------------------------------------------------ RFC 6840
    S = "rfc6840"
    case(
        S,
        "cname-bit-ignored",
        ["RFC 6840 §4.3", "RFC 4035 §5.4"],
        "NODATA for alias AAAA proven by alias's NSEC whose bitmap has CNAME (the CNAME "
        "stripped from the answer): the CNAME bit means the type is not denied: bogus",
        f"alias.{N}",
        "AAAA",
        "bogus",
        overrides={
            (f"alias.{N}", "AAAA"): g.respond_with(
                authority=lambda ctx: [*_soa(ctx, N), *_nsec_at(ctx, N, f"alias.{N}")]
            )
        },
    )
    case(
        S,
        "delegation-nsec-with-ds",
        ["RFC 6840 §4.4", "RFC 4035 §5.2"],
        "the DS answer of a signed child denied with the cut's NSEC (NS DS in the bitmap): "
        "the bitmap says DS exists, so not an insecure delegation: bogus",
        tlsa("signed.nsec.example."),
        "TLSA",
        "bogus",
        overrides={
            ("signed.nsec.example.", "DS"): g.respond_with(
                authority=_parent_nsec(g, "signed.nsec.example.")
            )
        },
    )
    ok(
        S,
        "delegation-nsec-without-ds",
        ["RFC 6840 §4.4"],
        "an unsigned delegation's NSEC (NS, no DS, no SOA) proves there is no DS",
        "unsigned.nsec.example.",
        "DS",
        kind="nodata",
    )
    case(
        S,
        "any-question",
        ["RFC 6840 §4.2", "RFC 8482", "issue 11 item 7"],
        "an ANY question: validated per RRset or refused, never an exception",
        f"mail.{N}",
        "ANY",
        "indeterminate",
        "error",
        delv=None,
        notes="delv is not asked: ANY is not a question DANE asks; the world answers NOTIMP.",
    )
    ok(
        S,
        "two-algorithms",
        "RFC 6840 §5.11",
        "a zone signed with ECDSA and Ed25519",
        tlsa("twoalg.example."),
        "TLSA",
    )
    ok(
        S,
        "two-algorithms-one-signature",
        ["RFC 6840 §5.11", "RFC 4035 §5.3"],
        "a zone with two algorithms where the TLSA has only the Ed25519 signature: one valid "
        "signature from a key the DS chain authenticates is enough for the validator",
        tlsa("twoalg.example."),
        "TLSA",
        overrides={(tlsa("twoalg.example."), "TLSA"): _keep_sig_alg(15)},
    )
    ok(
        S,
        "two-algorithms-other-signature",
        ["RFC 6840 §5.11"],
        "the same with only the ECDSA signature",
        tlsa("twoalg.example."),
        "TLSA",
        overrides={(tlsa("twoalg.example."), "TLSA"): _keep_sig_alg(13)},
    )
    case(
        S,
        "two-algorithms-bad-one-good-other",
        ["RFC 6840 §5.4", "RFC 4035 §5.3.3"],
        "one of the two signatures corrupted, the other valid: secure (any valid signature)",
        tlsa("twoalg.example."),
        "TLSA",
        "secure",
        "positive",
        delv=None,
        notes="delv is not asked: BIND 9.18's delv answers 'fully validated' or fails "
        "('no valid signature found') from one run to the next on these same responses, "
        "depending on which RRSIG it tries first (its 2024 KeyTrap limits stop at the first "
        "failed verification). RFC 4035 §5.3.3 / RFC 6840 §5.4: one valid signature from an "
        "authenticated key is enough, so secure.",
        overrides={(tlsa("twoalg.example."), "TLSA"): _corrupt_sig_alg(15)},
    )
    ok(
        S,
        "nested-anchor-secure",
        ["RFC 6840 §5.10", "issue 11 item 6"],
        "anchors at . and example.: the deeper one is used",
        tlsa(N),
        "TLSA",
        anchor="both",
    )
    case(
        S,
        "nested-anchor-bogus-parent-ds",
        ["RFC 6840 §5.10", "issue 11 item 6"],
        "anchors at . and example.; the root serves a (validly signed) DS for example. that "
        "matches nothing: the deeper anchor takes precedence, secure",
        tlsa(N),
        "TLSA",
        "secure",
        "positive",
        anchor="both",
        overrides={("example.", "DS"): _bad_ds("example.", ".")},
    )
    ok(
        S,
        "tld-anchor",
        ["RFC 4035 §5", "RFC 6840 §5.10"],
        "anchor at example. only",
        tlsa(N),
        "TLSA",
        anchor="example",
    )
    case(
        S,
        "tld-anchor-bogus-parent-ds",
        ["RFC 6840 §5.10", "issue 11 item 6"],
        "anchor at example.; the unanchored root serves a DS for example. that matches "
        "nothing: irrelevant, secure",
        tlsa(N),
        "TLSA",
        "secure",
        "positive",
        anchor="example",
        overrides={("example.", "DS"): _bad_ds("example.", ".")},
    )
    case(
        S,
        "tld-anchor-parent-denies-ds",
        ["RFC 6840 §5.10", "issue 11 item 6"],
        "anchor at example.; the root says (validly) that example. has no DS: irrelevant",
        tlsa(N),
        "TLSA",
        "secure",
        "positive",
        anchor="example",
        overrides={("example.", "DS"): g.respond_with(authority=g.sections_of("example.", "TXT"))},
    )
    case(
        S,
        "tld-anchor-nxdomain",
        ["RFC 4035 §5.4"],
        "anchor at example.: a proven NXDOMAIN",
        f"nothere.{N}",
        "A",
        "secure",
        "nxdomain",
        anchor="example",
    )
    case(
        S,
        "tld-anchor-insecure-child",
        ["RFC 4035 §5.2"],
        "anchor at example.: an unsigned child below it is insecure (proven)",
        "mail.plain.example.",
        "A",
        "insecure",
        "positive",
        anchor="example",
    )

    # ------------------------------------------------------------------ RFC 8624 algorithms
    A8 = "rfc8624"
    for label in g.ALGORITHM_ZONES:
        z = f"{label}.example."
        ok(A8, f"alg-{label}", "RFC 8624 §3.1", f"{label}: validates", tlsa(z), "TLSA")
        ok(
            A8,
            f"alg-{label}-nxdomain",
            "RFC 8624 §3.1",
            f"{label}: a proven NXDOMAIN",
            f"nothere.{z}",
            "A",
            kind="nxdomain",
        )
    for label, number in g.UNSUPPORTED_ALGORITHMS.items():
        case(
            A8,
            f"alg-{label}",
            ["RFC 8624 §3.1", "RFC 4035 §5.2"],
            f"DS and DNSKEY of algorithm {number}, which validators must not (or cannot) "
            "use: the zone is insecure",
            tlsa(f"alg-{label}.example."),
            "TLSA",
            "insecure",
            "positive",
        )
    for label, _digest, status in (
        ("sha1", 1, "secure"),
        ("sha256", 2, "secure"),
        ("sha384", 4, "secure"),
        ("gost", 3, "insecure"),
        ("sha1-sha256", 0, "secure"),
    ):
        kind = "positive"
        case(
            A8,
            f"ds-{label}",
            ["RFC 8624 §3.3", "RFC 4035 §5.2"],
            f"DS digest {label}: {status}",
            tlsa(f"ds-{label}.example."),
            "TLSA",
            status,
            kind,
        )

    # ------------------------------------------------------------------ RFC 9276 iterations
    I9 = "rfc9276"
    for it in g.ITERATIONS:
        z = f"iter{it}.example."
        high = it > 50
        st = "insecure" if high else "secure"
        why = (
            " (above the validator's cap of 50: RFC 9276 §3.2 lets it answer insecure)"
            if high
            else ""
        )
        ok(
            I9,
            f"iter{it}-positive",
            "RFC 9276 §3.2",
            f"{it} iterations: a positive answer needs no NSEC3: secure",
            tlsa(z),
            "TLSA",
        )
        bind = {}
        if 50 < it <= 150:
            bind = {"notes": ITER_NOTE}
        case(
            I9,
            f"iter{it}-nxdomain",
            "RFC 9276 §3.2",
            f"{it} iterations: NXDOMAIN{why}",
            f"nothere.{z}",
            "A",
            st,
            "nxdomain",
            reason="nsec3-iterations" if high else None,
            **({**bind, "delv": "nxdomain"} if bind else {}),
        )
        case(
            I9,
            f"iter{it}-nodata",
            "RFC 9276 §3.2",
            f"{it} iterations: NODATA{why}",
            f"mail.{z}",
            "TXT",
            st,
            "nodata",
            **({**bind, "delv": "nodata"} if bind else {}),
        )
        case(
            I9,
            f"iter{it}-wildcard",
            "RFC 9276 §3.2",
            f"{it} iterations: wildcard{why}",
            f"a.wild.{z}",
            "TXT",
            st,
            "positive",
            **({**bind, "delv": "valid"} if bind else {}),
        )

    # ------------------------------------------------------------------ attacks
    X = "attacks"
    case(
        X,
        "wildcard-replay-existing-name",
        ["RFC 4035 §5.3.4", "RFC 4592"],
        "the signed *.dyn A expansion replayed as the answer for host.dyn (which exists with "
        "its own A), with the wildcard proof of another name: bogus",
        f"host.dyn.{N}",
        "A",
        "bogus",
        overrides={(f"host.dyn.{N}", "A"): _replay_wildcard(f"zz.dyn.{N}", f"host.dyn.{N}")},
    )
    case(
        X,
        "wildcard-replay-below-existing-name",
        ["RFC 4035 §5.3.4", "RFC 4592 §3.3.1"],
        "the *.dyn expansion (signature verifies for any name whose rightmost labels are "
        "dyn.<zone>) replayed for a.host.dyn, whose closest encloser host.dyn exists, so *.dyn "
        "cannot apply: the NSEC at host.dyn shows it, bogus",
        f"a.host.dyn.{N}",
        "A",
        "bogus",
        overrides={(f"a.host.dyn.{N}", "A"): _replay_wildcard(f"zz.dyn.{N}", f"a.host.dyn.{N}")},
    )
    case(
        X,
        "wildcard-replay-nsec3-existing-name",
        ["RFC 5155 §8.8", "RFC 4035 §5.3.4"],
        "an NSEC3 zone's *.dyn expansion replayed for host.dyn, which exists: the NSEC3 "
        "proof covers the next closer of another name, bogus",
        f"host.dyn.{N3}",
        "A",
        "bogus",
        overrides={(f"host.dyn.{N3}", "A"): _replay_wildcard(f"zz.dyn.{N3}", f"host.dyn.{N3}")},
    )
    case(
        X,
        "wildcard-replay-nsec3-below-existing-name",
        ["RFC 5155 §8.8", "RFC 4592 §3.3.1"],
        "an NSEC3 zone's *.dyn expansion replayed for a.host.dyn (closest encloser host.dyn "
        "exists, so *.dyn cannot apply): bogus",
        f"a.host.dyn.{N3}",
        "A",
        "bogus",
        overrides={(f"a.host.dyn.{N3}", "A"): _replay_wildcard(f"zz.dyn.{N3}", f"a.host.dyn.{N3}")},
    )
    case(
        X,
        "wildcard-tlsa-below-existing-host",
        ["RFC 4035 §5.3.4", "RFC 4592 §3.3.1", "RFC 7672 §3.1"],
        "wildapex.example. has '* TLSA' and a host mail without TLSA: the apex wildcard's "
        "expansion replayed as _25._tcp.mail's TLSA, with the (real) NSEC at mail covering "
        "the name; mail exists, so the closest encloser is mail, not the apex, and * cannot "
        "apply: bogus (a TLSA the zone never published would be enforced)",
        tlsa("wildapex.example."),
        "TLSA",
        "bogus",
        overrides={
            (tlsa("wildapex.example."), "TLSA"): g.respond_with(
                answer=lambda ctx: [
                    _G.renamed(r, tlsa("wildapex.example."))
                    for r in ctx.ask("zz.wildapex.example.", "TLSA").answer
                ],
                authority=lambda ctx: _nsec_at(ctx, "wildapex.example.", "mail.wildapex.example."),
            )
        },
    )
    ok(
        X,
        "wildcard-tlsa-below-existing-host-honest",
        ["RFC 4592 §3.3.1", "RFC 4035 §5.4"],
        "the honest answer to the same question: NXDOMAIN (the apex wildcard does not apply "
        "below mail)",
        tlsa("wildapex.example."),
        "TLSA",
        kind="nxdomain",
    )
    case(
        X,
        "signer-rewrite-only",
        ["RFC 4035 §5.3.1", "issue 11 item 3"],
        "the TLSA RRSIG's signer field rewritten to '.', nothing else: bogus",
        tlsa(N),
        "TLSA",
        "bogus",
        overrides={(tlsa(N), "TLSA"): g.edit_sig(signer=dns.name.root)},
    )
    case(
        X,
        "signer-rewrite-only-tld-anchor",
        ["RFC 4035 §5.3.1", "issue 11 item 3"],
        "anchor example.; the TLSA RRSIG's signer rewritten to '.': bogus, not insecure",
        tlsa(N),
        "TLSA",
        "bogus",
        anchor="example",
        overrides={(tlsa(N), "TLSA"): g.edit_sig(signer=dns.name.root)},
    )
    case(
        X,
        "signer-rewrite-unsigned-child",
        ["RFC 4035 §5.3.1", "issue 11 item 3"],
        "the TLSA RRSIG's signer rewritten to the provably unsigned child below it",
        tlsa(N),
        "TLSA",
        "bogus",
        overrides={(tlsa(N), "TLSA"): g.edit_sig(signer=dns.name.from_text(f"unsigned.{N}"))},
    )
    case(
        X,
        "labels-rewrite",
        ["RFC 4035 §5.3.1"],
        "the TLSA RRSIG's Labels field lowered (not re-signed): bogus",
        tlsa(N),
        "TLSA",
        "bogus",
        overrides={(tlsa(N), "TLSA"): g.edit_sig(labels=2)},
    )
    case(
        X,
        "dates-rewrite",
        ["RFC 4035 §5.3.1"],
        "an expired TLSA RRSIG with its dates rewritten to look valid: bogus",
        tlsa("expired.example."),
        "TLSA",
        "bogus",
        overrides={
            (tlsa("expired.example."), "TLSA"): g.edit_sig(
                inception=1704067200, expiration=3723753600
            )
        },
    )
    case(
        X,
        "optout-strip-ds-downgrade",
        ["RFC 5155 §8.6", "RFC 4035 §5.2"],
        "the DS of a signed child inside an opt-out zone replaced by the opt-out denial of "
        "another name: the delegation's own NSEC3 says DS exists, so bogus, not insecure",
        tlsa("signed.optout.example."),
        "TLSA",
        "bogus",
        overrides={
            ("signed.optout.example.", "DS"): g.respond_with(
                authority=lambda ctx: list(ctx.ask("unsigned.optout.example.", "DS").authority)
            )
        },
    )
    case(
        X,
        "nsec-insecure-downgrade",
        ["RFC 4035 §5.2"],
        "the DS of a signed child replaced by the NSEC-proven DS denial of its unsigned "
        "sibling: bogus, not insecure",
        tlsa("signed.nsec.example."),
        "TLSA",
        "bogus",
        overrides={
            ("signed.nsec.example.", "DS"): g.respond_with(
                authority=lambda ctx: list(ctx.ask("unsigned.nsec.example.", "DS").authority)
            )
        },
    )
    case(
        X,
        "ds-question-cname",
        ["RFC 4035 §5.2", "issue 11 item 7"],
        "the DS question of a signed child answered with a CNAME validly signed by the "
        "parent (the zone that owns the DS name): followed, mail.<zone> has no DS; a status, "
        "never an exception",
        "signed.nsec.example.",
        "DS",
        "secure",
        "nodata",
        notes="The CNAME carries a valid signature of the zone that is authoritative for "
        "the DS name, so following it (RFC 1034 §3.6.2) is what delv does too; what issue 11 "
        "item 7 requires is a status instead of an exception. The same CNAME on the "
        "validation path (ds-cname-in-chain) is bogus.",
        overrides={
            ("signed.nsec.example.", "DS"): _cname_answer("signed.nsec.example.", f"mail.{N}", N)
        },
    )
    case(
        X,
        "ds-cname-in-chain",
        ["RFC 4035 §5.2", "issue 11 item 7"],
        "a DS on the validation path answered with a signed CNAME: bogus",
        tlsa("signed.nsec.example."),
        "TLSA",
        "bogus",
        overrides={
            ("signed.nsec.example.", "DS"): _cname_answer("signed.nsec.example.", f"mail.{N}", N)
        },
    )
    case(
        X,
        "dnskey-cname",
        ["RFC 4035 §5.2", "issue 11 item 7"],
        "the DNSKEY question answered with a CNAME: bogus, never an exception",
        tlsa(N),
        "TLSA",
        "bogus",
        delv=None,
        notes="delv is not asked: BIND 9.18's delv hangs on it ('shut down hung fetch while "
        "resolving nsec.example/DNSKEY') for 12 s and then prints 'operation canceled' (no "
        "answer, which the verdict reads as bogus): too slow for the suite.",
        overrides={(N, "DNSKEY"): _cname_answer(N, "nsec3.example.", N)},
    )
    ok(
        R,
        "tcp-only",
        ["RFC 4035 §4.1", "RFC 7766 §5", "RFC 6891 §7"],
        "every response comes truncated over UDP: the validator retries each over TCP",
        tlsa(N3),
        "TLSA",
        transport={"tcp_only_tc": True},
    )
    ok(
        R,
        "tcp-only-nxdomain",
        ["RFC 4035 §4.1", "RFC 7766 §5"],
        "a proven NXDOMAIN, every response truncated over UDP",
        f"nothere.{N3}",
        "A",
        kind="nxdomain",
        transport={"tcp_only_tc": True},
    )
    case(
        X,
        "keytrap",
        ["CVE-2023-50387", "issue 11 item 8"],
        f"{g.KEYTRAP_KEYS} DNSKEYs sharing the ZSK's key tag and {g.KEYTRAP_SIGS} RRSIGs with "
        "that tag on the TLSA (none valid): bounded work, bogus",
        tlsa("keytrap.example."),
        "TLSA",
        "bogus",
        reason="validation-budget",
    )
    case(
        X,
        "keytrap-dnskey",
        ["CVE-2023-50387", "issue 11 item 8"],
        f"{g.KEYTRAP_KEYS} KSKs with one key tag (50 of them with a DS) and "
        f"{g.KEYTRAP_SIGS} junk RRSIGs on the DNSKEY RRset: bounded work, bogus",
        tlsa("keytrap-dnskey.example."),
        "TLSA",
        "bogus",
        reason="validation-budget",
    )
    case(
        X,
        "nsec3-flood",
        ["CVE-2023-50868", "issue 11 item 8"],
        "NXDOMAIN with 150 extra validly signed NSEC3 records, each with its own salt (50 "
        "iterations), for a 30-label name: bounded hashing, bogus",
        ".".join(["x"] * 30) + ".flood.example.",
        "A",
        "bogus",
        notes="reason left null: a validator may stop at its hash budget (validation-budget) "
        "or find the proof incomplete (bad-denial); both are bogus.",
        overrides={(".".join(["x"] * 30) + ".flood.example.", "A"): _nsec3_flood(150)},
    )
    case(
        X,
        "nsec3-flood-500-iterations",
        ["CVE-2023-50868", "RFC 9276 §3.2"],
        "NXDOMAIN in a 500-iteration zone for a 30-label name: no hashing needed, insecure",
        ".".join(["x"] * 30) + ".flood500.example.",
        "A",
        "insecure",
        "nxdomain",
        reason="nsec3-iterations",
    )
    case(
        X,
        "cname-loop-long",
        "RFC 1034 §3.6.2",
        "a CNAME loop through two names",
        f"loop2.{N3}",
        "A",
        "indeterminate",
        "error",
        "cname-loop",
        delv="bogus",
        notes=LOOP_NOTE,
    )


# --------------------------------------------------------------------------- helpers


def _soa(ctx, origin: str) -> list[dns.rrset.RRset]:
    return [ctx.rrset(origin, origin, "SOA"), ctx.sig(origin, origin, "SOA")]


def _nsec_at(ctx, origin: str, name: str) -> list[dns.rrset.RRset]:
    return [ctx.rrset(origin, name, "NSEC"), ctx.sig(origin, name, "NSEC")]


def _parent_nsec(g, cut: str):
    parent = dns.name.from_text(cut).parent().to_text()
    return lambda ctx: [*_soa(ctx, parent), *_nsec_at(ctx, parent, cut)]


def _forge_answer(g, origin: str, **fields):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        out = []
        for r in m.answer:
            if r.rdtype == RRSIG:
                continue
            out += [r, g.forge(r, ctx.zsk(origin), origin, **fields)]
        m.answer = out
        return m

    return f


def _foreign_key(g, origin: str, other: str):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        out = []
        for r in m.answer:
            if r.rdtype == RRSIG:
                continue
            out += [r, g.rrsig(r, ctx.zsk(other), origin)]
        m.answer = out
        return m

    return f


def _expanded_nsec(g, origin: str, ask: str, rename: str | None):
    """SOA plus the NSEC the world synthesises from a wildcard when asked ``ask`` NSEC
    (optionally moved to the owner ``rename``: its RRSIG still verifies, being a wildcard
    signature)."""

    def f(ctx) -> list[dns.rrset.RRset]:
        ans = [r for r in ctx.ask(ask, "NSEC").answer]
        assert ans, ask
        if rename:
            ans = [g.renamed(r, rename) for r in ans]
        return [*_soa(ctx, origin), *ans]

    return f


def _hash(name: str, origin: str, ctx) -> bytes:
    z = ctx.signed.zones[dns.name.from_text(origin)]
    return z.nsec3_hash(dns.name.from_text(name))


def _covers(rr: dns.rrset.RRset, h: bytes) -> bool:
    import base64

    own = base64.b32hexdecode(rr.name.labels[0].upper())
    nxt = rr[0].next
    if own < nxt:
        return own < h < nxt
    return h > own or h < nxt


def _nsec3_role(ctx, rr, origin: str, label: str) -> set[str]:
    import base64

    roles = set()
    own = base64.b32hexdecode(rr.name.labels[0].upper())
    if own == _hash(origin, origin, ctx):
        roles.add("ce")
    if _covers(rr, _hash(f"{label}.{origin}", origin, ctx)):
        roles.add("nc")
    if _covers(rr, _hash(f"*.{origin}", origin, ctx)):
        roles.add("wc")
    return roles


def _in_proof(ctx, rr, origin: str, label: str) -> bool:
    """Keep the closest-encloser and next-closer NSEC3s, not the wildcard cover (when it
    is a different record)."""
    if rr.rdtype == RRSIG:
        return True  # RRSIGs of removed NSEC3s are dropped with them below
    roles = _nsec3_role(ctx, rr, origin, label)
    return bool(roles & {"ce", "nc"})


def _drop_nsec3(g, origin: str, role: str, label: str):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        drop = {
            r.name
            for r in m.authority
            if r.rdtype == NSEC3T and role in _nsec3_role(ctx, r, origin, label)
        }
        m.authority = [r for r in m.authority if r.name not in drop]
        return m

    return f


def _nsec3_only(msg: dns.message.Message) -> list[dns.rrset.RRset]:
    return [r for r in msg.authority if r.rdtype == NSEC3T or r.covers == NSEC3T]


def _nsec3_reowned(g, origin: str, under: str, signer: str | None = None):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        out = []
        key = ctx.zsk(signer or origin)
        for r in m.authority:
            if r.rdtype == NSEC3T:
                nr = g.renamed(
                    r, dns.name.Name((r.name.labels[0], *dns.name.from_text(under).labels))
                )
                out += [nr, g.rrsig(nr, key, signer or origin)]
            elif r.covers != NSEC3T:
                out.append(r)
        m.authority = out
        return m

    return f


def _nsec3_params(g, origin: str, *, which: int | None, **changes):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        nsec3s = [r for r in m.authority if r.rdtype == NSEC3T]
        targets = nsec3s if which is None else [nsec3s[which]]
        names = {r.name for r in targets}
        out = []
        for r in m.authority:
            if r.name in names and r.rdtype == NSEC3T:
                nr = dns.rrset.from_rdata_list(r.name, r.ttl, [x.replace(**changes) for x in r])
                out += [nr, g.rrsig(nr, ctx.zsk(origin), origin)]
            elif not (r.name in names and r.covers == NSEC3T):
                out.append(r)
        m.authority = out
        return m

    return f


def _wrapping_name(g):
    """A name of nsec3.example. whose hash lies after the last NSEC3 owner or before the
    first (the span that wraps); resolved once the world is signed."""

    def pick(signed) -> str:
        hashes = signed.zones[dns.name.from_text(N3)].nsec3_hashes
        for i in range(10000):
            name = dns.name.from_text(f"wrap{i}.{N3}")
            x = nsec3_hash_raw(name, b"", 0)
            if x < hashes[0] or x > hashes[-1]:
                return name.to_text()
        raise AssertionError("no wrapping name")

    return pick


def _redirect_cname(target: str):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        out = []
        for r in m.answer:
            if r.rdtype == RdataType.CNAME:
                nr = dns.rrset.from_rdata_list(
                    r.name, r.ttl, [r[0].replace(target=dns.name.from_text(target))]
                )
                out.append(nr)
            elif r.rdtype in (RdataType.DNAME,) or r.covers == RdataType.DNAME:
                out.append(r)
        out += [r for r in ctx.ask(target, "A").answer]
        m.answer = out
        return m

    return f


def _keep_sig_alg(alg: int):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        out = []
        for r in m.answer:
            if r.rdtype == RRSIG:
                r = dns.rrset.from_rdata_list(r.name, r.ttl, [x for x in r if x.algorithm == alg])
            out.append(r)
        m.answer = out
        return m

    return f


def _corrupt_sig_alg(alg: int):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        out = []
        for r in m.answer:
            if r.rdtype == RRSIG:
                r = dns.rrset.from_rdata_list(
                    r.name,
                    r.ttl,
                    [
                        x.replace(signature=bytes(b ^ 0x55 for b in x.signature))
                        if x.algorithm == alg
                        else x
                        for x in r
                    ],
                )
            out.append(r)
        m.answer = out
        return m

    return f


def _bad_ds(child: str, parent: str):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        g = _G
        ds = ctx.rrset(parent, child, "DS")
        bad = dns.rrset.from_rdata_list(
            ds.name, ds.ttl, [d.replace(digest=bytes(b ^ 0x5A for b in d.digest)) for d in ds]
        )
        m.answer = [bad, g.rrsig(bad, ctx.zsk(parent), parent)]
        return m

    return f


def _nsec3_proof(origin: str, match: tuple[str, ...] = (), cover: tuple[str, ...] = ()):
    """SOA plus the zone's own NSEC3 records matching / covering the given names."""

    def f(ctx) -> list[dns.rrset.RRset]:
        z = ctx.signed.zones[dns.name.from_text(origin)]
        keys = [z.nsec3_hash(dns.name.from_text(n)) for n in match]
        keys += [z.nsec3_cover(dns.name.from_text(n)) for n in cover]
        out = _soa(ctx, origin)
        for k in dict.fromkeys(keys):
            rr, sig = z.nsec3_rrsets[k]
            out += [rr, sig]
        return out

    return f


def _nsec_proof(origin: str, names: tuple[str, ...]):
    """SOA plus the NSEC records that match or cover the given names."""

    def f(ctx) -> list[dns.rrset.RRset]:
        z = ctx.signed.zones[dns.name.from_text(origin)]
        owners = dict.fromkeys(z.nsec_cover(dns.name.from_text(n)) for n in names)
        out = _soa(ctx, origin)
        for o in owners:
            out += _nsec_at(ctx, origin, o.to_text())
        return out

    return f


def _ds_rewrite(child: str, parent: str, **changes):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        g = _G
        ds = ctx.rrset(parent, child, "DS")
        new = dns.rrset.from_rdata_list(ds.name, ds.ttl, [d.replace(**changes) for d in ds])
        m.answer = [new, g.rrsig(new, ctx.zsk(parent), parent)]
        return m

    return f


def _cname_answer(owner: str, target: str, origin: str):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        g = _G
        c = dns.rrset.from_text(owner, 300, "IN", "CNAME", target)
        m.set_rcode(dns.rcode.NOERROR)
        m.answer = [c, g.rrsig(c, ctx.zsk(origin), origin)]
        m.authority = []
        return m

    return f


def _replay_wildcard(source: str, victim: str):
    """The answer and proof of the wildcard expansion for ``source``, renamed to ``victim``."""

    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        g = _G
        q = m.question[0]
        src = ctx.ask(source, dns.rdatatype.to_text(q.rdtype))
        m.set_rcode(dns.rcode.NOERROR)
        m.answer = [g.renamed(r, victim) for r in src.answer]
        m.authority = list(src.authority)
        return m

    return f


def _nsec3_flood(extra: int):
    def f(m: dns.message.Message, ctx) -> dns.message.Message:
        g = _G
        origin = "flood.example."
        key = ctx.zsk(origin)
        out = list(m.authority)
        template = next(r for r in m.authority if r.rdtype == NSEC3T)
        for i in range(extra):
            salt = i.to_bytes(2, "big")
            owner = dns.name.Name(
                (
                    b32hex(nsec3_hash_raw(dns.name.from_text(f"f{i}.{origin}"), salt, 50)).encode(),
                    *dns.name.from_text(origin).labels,
                )
            )
            rr = dns.rrset.from_rdata_list(owner, template.ttl, [template[0].replace(salt=salt)])
            out += [rr, g.rrsig(rr, key, origin)]
        m.authority = out
        return m

    return f
