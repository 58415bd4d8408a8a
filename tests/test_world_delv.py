"""Independent confirmation of the local DNS world: BIND's ``delv`` validates it.

One hierarchy (private root → ``example.`` → one domain per situation) is served on
loopback; every row of ``CASES`` runs ``delv`` for one (name, type) against it, from our
trust anchor, and asserts delv's verdict: fully validated, a validated negative answer
(NXDOMAIN / NODATA proven by NSEC or NSEC3), an unsigned answer (insecure delegation),
or a validation failure for every deliberate fault.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import dns.dnssec
import pytest
from dnsutil import served

from dane_monitor.world.zones import NSEC, NSEC3, Fault, Hierarchy, SignedHierarchy

pytestmark = [
    pytest.mark.delv,
    pytest.mark.skipif(shutil.which("delv") is None, reason="BIND's delv is not installed"),
]

TLSA = "3 1 1 " + "0f" * 32

# The expected outcomes, as delv 9.18 prints them.
VALID = "valid"  # "; fully validated" with the answer
NXDOMAIN = "nxdomain"  # "; negative response, fully validated" + NXDOMAIN
NODATA = "nodata"  # "; negative response, fully validated" + NXRRSET
UNSIGNED = "unsigned"  # "; unsigned answer"
UNSIGNED_NX = "unsigned-nxdomain"  # "; negative response, unsigned answer" + NXDOMAIN
BOGUS = "bogus"  # a validation failure (no answer printed)
SERVFAIL = "servfail"  # the server said SERVFAIL


def _standard(zone, *, mx: bool = True) -> None:
    """The records of a typical mail domain."""
    if mx:
        zone.add("@", "MX", "10 mail")
    zone.add("mail", "A", "127.0.0.25")
    zone.add("mail", "AAAA", "::1")
    zone.add("_25._tcp.mail", "TLSA", TLSA)
    zone.add("ok", "A", "127.0.0.26")


def build() -> SignedHierarchy:
    h = Hierarchy(".")
    h.zone("example.")

    z = h.zone("good-nsec.example.")
    _standard(z)
    z.add("*.wild", "TXT", "wildcard")
    z.add("alias", "CNAME", "alias2")
    z.add("alias2", "CNAME", "mail.good-nsec3.example.")
    z.add("wildalias", "CNAME", "x.wild")
    z.add("deep.ent.sub", "A", "127.0.0.27")

    z.add("sub.*.entwild", "A", "127.0.0.28")  # the wildcard is an empty non-terminal

    z = h.zone("good-nsec3.example.", denial=NSEC3())
    _standard(z)
    z.add("*.wild", "TXT", "wildcard")
    z.add("deep.ent.sub", "A", "127.0.0.27")
    z.add("sub.*.entwild", "A", "127.0.0.28")

    z = h.zone("salted.example.", denial=NSEC3(iterations=10, salt=bytes.fromhex("aabbccdd")))
    _standard(z)
    z.add("*.wild", "MX", "10 mail")

    z = h.zone("optout.example.", denial=NSEC3(opt_out=True))
    _standard(z)
    z.add("*.wild", "TXT", "wildcard")
    u = h.zone("unsigned.optout.example.", signed=False)
    _standard(u)
    s = h.zone("signed.optout.example.", denial=NSEC)
    _standard(s)

    # an NSEC parent with an insecure delegation
    u = h.zone("plain.example.", signed=False)
    _standard(u)
    z = h.zone("island.example.")  # signed, but the parent publishes no DS
    _standard(z)
    z.fault(Fault.UNSIGNED_DELEGATION)

    _standard(h.zone("rsa.example.", algorithm=dns.dnssec.Algorithm.RSASHA256))
    _standard(h.zone("ed25519.example.", algorithm=dns.dnssec.Algorithm.ED25519, denial=NSEC3()))

    # faults scoped to one RRset: the rest of the zone stays good
    for origin, fault in [
        ("expired.example.", Fault.EXPIRED_RRSIG),
        ("notyet.example.", Fault.NOT_YET_VALID_RRSIG),
        ("badsig.example.", Fault.BAD_SIGNATURE),
        ("nosig.example.", Fault.MISSING_RRSIG),
    ]:
        z = h.zone(origin)
        _standard(z)
        z.fault(fault, "_25._tcp.mail", "TLSA")
    z = h.zone("expired-zone.example.", denial=NSEC3())
    _standard(z)
    z.fault(Fault.EXPIRED_RRSIG)  # every signature, the DNSKEY RRset's too
    z = h.zone("badkeysig.example.")
    _standard(z)
    z.fault(Fault.BAD_SIGNATURE, "@", "DNSKEY")

    z = h.zone("dsmismatch.example.")
    _standard(z)
    z.fault(Fault.DS_MISMATCH)

    z = h.zone("nodenial.example.")
    _standard(z)
    z.fault(Fault.MISSING_DENIAL)
    z = h.zone("nodenial3.example.", denial=NSEC3())
    _standard(z)
    z.fault(Fault.MISSING_DENIAL)
    z = h.zone("wrongdenial.example.")
    _standard(z)
    for i in range(6):  # enough names for proofs that cover something else
        z.add(f"host{i}", "A", f"127.0.1.{i}")
    z.fault(Fault.WRONG_DENIAL)
    z = h.zone("wrongdenial3.example.", denial=NSEC3())
    _standard(z)
    for i in range(6):
        z.add(f"host{i}", "A", f"127.0.1.{i}")
    z.fault(Fault.WRONG_DENIAL)

    z = h.zone("servfail.example.")
    _standard(z)
    z.fault(Fault.SERVFAIL, "_25._tcp.mail")

    # DNAME (RFC 6672): subtrees redirected into other zones, NSEC and NSEC3
    z = h.zone("dname-nsec.example.")
    _standard(z)
    z.add("dn", "DNAME", "good-nsec3.example.")
    z.add("ins", "DNAME", "plain.example.")  # into an insecure zone
    z.add("viacname", "CNAME", "mail.dn.dname-nsec3.example.")  # CNAME, then DNAME
    z.add("bad", "DNAME", "badsig.example.")  # into a zone with a bad TLSA signature
    z.add("nd", "DNAME", "nodenial.example.")  # into a zone without denial proofs
    z = h.zone("dname-nsec3.example.", denial=NSEC3())
    _standard(z)
    z.add("dn", "DNAME", "good-nsec.example.")
    return h.sign()


# (name, type, expected verdict[, regular expression delv's output must match])
CASES: list[tuple[str, ...]] = [
    # good NSEC zone
    ("good-nsec.example.", "MX", VALID),
    ("mail.good-nsec.example.", "A", VALID),
    ("mail.good-nsec.example.", "AAAA", VALID),
    ("_25._tcp.mail.good-nsec.example.", "TLSA", VALID),
    ("good-nsec.example.", "DNSKEY", VALID),
    ("good-nsec.example.", "DS", VALID),
    ("nothere.good-nsec.example.", "A", NXDOMAIN),
    # RFC 4592 §2.2.2: "*.entwild" exists only because "sub.*.entwild" does; it still
    # matches x.entwild, with no data
    ("x.entwild.good-nsec.example.", "A", NODATA),
    ("_25._tcp.ok.good-nsec.example.", "TLSA", NXDOMAIN),
    ("mail.good-nsec.example.", "TXT", NODATA),
    ("_tcp.mail.good-nsec.example.", "A", NODATA),  # empty non-terminal
    ("ent.sub.good-nsec.example.", "A", NODATA),  # empty non-terminal, two levels
    ("deep.ent.sub.good-nsec.example.", "A", VALID),
    ("a.wild.good-nsec.example.", "TXT", VALID),  # wildcard expansion
    ("a.b.wild.good-nsec.example.", "TXT", VALID),  # two labels below the wildcard
    ("a.wild.good-nsec.example.", "A", NODATA),  # wildcard NODATA
    ("alias.good-nsec.example.", "A", VALID),  # CNAME → CNAME → other zone
    ("wildalias.good-nsec.example.", "TXT", VALID),  # CNAME into a wildcard
    # good NSEC3 zone
    ("good-nsec3.example.", "MX", VALID),
    ("_25._tcp.mail.good-nsec3.example.", "TLSA", VALID),
    ("nothere.good-nsec3.example.", "A", NXDOMAIN),
    # RFC 4592 §2.2.2: "*.entwild" exists only because "sub.*.entwild" does; it still
    # matches x.entwild, with no data
    ("x.entwild.good-nsec3.example.", "A", NODATA),
    ("_25._tcp.ok.good-nsec3.example.", "TLSA", NXDOMAIN),
    ("mail.good-nsec3.example.", "TXT", NODATA),
    ("_tcp.mail.good-nsec3.example.", "A", NODATA),
    ("ent.sub.good-nsec3.example.", "A", NODATA),
    ("a.wild.good-nsec3.example.", "TXT", VALID),
    ("a.b.wild.good-nsec3.example.", "TXT", VALID),
    ("a.wild.good-nsec3.example.", "A", NODATA),
    ("good-nsec3.example.", "NSEC3PARAM", VALID),
    # salted, iterated NSEC3
    ("_25._tcp.mail.salted.example.", "TLSA", VALID),
    ("nothere.salted.example.", "A", NXDOMAIN),
    ("mail.salted.example.", "TXT", NODATA),
    ("x.wild.salted.example.", "MX", VALID),
    # NSEC3 opt-out parent
    ("_25._tcp.mail.optout.example.", "TLSA", VALID),
    ("mail.optout.example.", "TXT", NODATA),
    # no DS: the closest provable encloser and an opt-out NSEC3 covering the delegation
    # (RFC 5155 7.2.4); a validator accepts that as a proven NODATA for the DS
    ("unsigned.optout.example.", "DS", NODATA),
    ("mail.unsigned.optout.example.", "A", UNSIGNED),
    ("_25._tcp.mail.unsigned.optout.example.", "TLSA", UNSIGNED),
    ("nothere.unsigned.optout.example.", "A", UNSIGNED_NX),
    ("mail.signed.optout.example.", "A", VALID),  # secure delegation inside opt-out
    ("signed.optout.example.", "DS", VALID),
    # An opt-out span may hide an unsigned delegation, so delv cannot prove the
    # non-existence of a closer name and treats opt-out NXDOMAIN / wildcard answers as
    # insecure (RFC 5155 section 9.2); delv is right about the wildcard.
    # BIND 9.18 still accepts an opt-out NXDOMAIN proof as secure, but not a wildcard
    # expansion whose next closer name falls in an opt-out span.
    ("nothere.optout.example.", "A", NXDOMAIN),
    ("a.wild.optout.example.", "TXT", UNSIGNED),
    # NSEC parent, insecure delegations
    ("mail.plain.example.", "A", UNSIGNED),
    ("plain.example.", "DS", NODATA),
    ("_25._tcp.mail.island.example.", "TLSA", UNSIGNED),
    # other algorithms
    ("_25._tcp.mail.rsa.example.", "TLSA", VALID),
    ("nothere.rsa.example.", "A", NXDOMAIN),
    ("_25._tcp.mail.ed25519.example.", "TLSA", VALID),
    ("nothere.ed25519.example.", "A", NXDOMAIN),
    # signing faults, scoped to the TLSA RRset
    ("_25._tcp.mail.expired.example.", "TLSA", BOGUS, r"RRSIG has expired"),
    ("mail.expired.example.", "A", VALID),
    ("_25._tcp.mail.notyet.example.", "TLSA", BOGUS, r"RRSIG validity period has not begun"),
    ("mail.notyet.example.", "A", VALID),
    ("_25._tcp.mail.badsig.example.", "TLSA", BOGUS, r"RRSIG failed to verify"),
    ("mail.badsig.example.", "A", VALID),
    ("_25._tcp.mail.nosig.example.", "TLSA", BOGUS, r"insecurity proof failed"),
    ("mail.nosig.example.", "A", VALID),
    # zone-wide faults
    (
        "mail.expired-zone.example.",
        "A",
        BOGUS,
        r"expired-zone.example/DNSKEY: verify failed.*RRSIG has expired",
    ),
    ("nothere.expired-zone.example.", "A", BOGUS, r"RRSIG has expired"),
    ("mail.badkeysig.example.", "A", BOGUS, r"badkeysig.example/DNSKEY: no valid signature found"),
    (
        "mail.dsmismatch.example.",
        "A",
        BOGUS,
        r"dsmismatch.example/DNSKEY: no valid signature found \(DS\)",
    ),
    ("_25._tcp.mail.dsmismatch.example.", "TLSA", BOGUS, r"broken trust chain"),
    # denial faults: positive answers stay good, negative ones are bogus
    ("mail.nodenial.example.", "A", VALID),
    ("nothere.nodenial.example.", "A", BOGUS),
    ("mail.nodenial.example.", "TXT", BOGUS),
    ("nothere.nodenial3.example.", "A", BOGUS),
    ("mail.nodenial3.example.", "TXT", BOGUS),
    ("mail.wrongdenial.example.", "A", VALID),
    ("nothere.wrongdenial.example.", "A", BOGUS),
    ("mail.wrongdenial.example.", "TXT", BOGUS),
    ("_25._tcp.ok.wrongdenial.example.", "TLSA", BOGUS),
    ("nothere.wrongdenial3.example.", "A", BOGUS),
    ("mail.wrongdenial3.example.", "TXT", BOGUS),
    # SERVFAIL on the TLSA name only
    ("_25._tcp.mail.servfail.example.", "TLSA", SERVFAIL),
    ("mail.servfail.example.", "A", VALID),
    # DNAME: the signed DNAME, the synthesised (unsigned) CNAME, the target's data
    ("mail.dn.dname-nsec.example.", "A", VALID),
    ("_25._tcp.mail.dn.dname-nsec.example.", "TLSA", VALID),
    ("mail.dn.dname-nsec3.example.", "A", VALID),
    ("_25._tcp.mail.dn.dname-nsec3.example.", "TLSA", VALID),
    ("alias.dn.dname-nsec3.example.", "A", VALID),  # DNAME, then CNAME → CNAME
    ("viacname.dname-nsec.example.", "A", VALID),  # CNAME, then DNAME
    ("mail.ins.dname-nsec.example.", "A", UNSIGNED),  # DNAME into an insecure zone
    ("nothere.dn.dname-nsec3.example.", "A", NXDOMAIN),  # proven by the target zone
    ("dn.dname-nsec.example.", "DNAME", VALID),  # the owner itself: no synthesis
    ("dn.dname-nsec3.example.", "A", NODATA),
    ("mail.dn.dname-nsec.example.", "TXT", NODATA),  # NODATA proven by the target zone
    ("mail.ins.dname-nsec.example.", "TXT", "unsigned-nodata"),
    ("nothere.ins.dname-nsec.example.", "A", UNSIGNED_NX),
    ("_25._tcp.mail.bad.dname-nsec.example.", "TLSA", BOGUS, r"RRSIG failed to verify"),
    ("nothere.nd.dname-nsec.example.", "A", BOGUS),  # no denial in the target zone
    # names outside the world
    ("nothere.example.", "A", NXDOMAIN),
    ("nothere.", "A", NXDOMAIN),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    signed = build()
    anchor = tmp_path_factory.mktemp("delv") / "anchor.conf"
    anchor.write_text(signed.bind_trust_anchors())
    with served(signed) as server:
        yield server, anchor


def run_delv(port: int, anchor: Path, name: str, rdtype: str, *extra: str) -> str:
    cmd = ["delv", "@127.0.0.1", "-p", str(port), "-a", str(anchor), "+root=.", "-4"]
    cmd += [*extra, name, rdtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    return p.stdout + p.stderr


def _chain_verdict(out: str) -> str | None:
    """A CNAME/DNAME chain: delv prints a status line before each part of the chain whose
    trust differs from the part before it, and a negative end as ``resolution failed: ncache
    …`` (its status line too only when it differs). The weakest part decides; None: no chain
    with a secure start, let :func:`verdict` decide."""
    if not out.startswith("; fully validated"):
        return None
    failed = re.search(r"^;; resolution failed: (.+)$", out, re.MULTILINE)
    if failed is None:
        return UNSIGNED if "; unsigned answer" in out else None
    reason = failed.group(1)
    if reason in ("ncache nxdomain", "ncache nxrrset"):
        nx = reason == "ncache nxdomain"
        if "; negative response, unsigned answer" in out:
            return UNSIGNED_NX if nx else "unsigned-nodata"
        return NXDOMAIN if nx else NODATA
    return SERVFAIL if reason in ("failure", "SERVFAIL") else BOGUS


def verdict(out: str) -> str:
    """Classify delv's output."""
    chain = _chain_verdict(out)
    if chain is not None:
        return chain
    if "; fully validated" in out and "negative response" not in out:
        return VALID
    if "; negative response, fully validated" in out:
        return NXDOMAIN if "NXDOMAIN" in out else NODATA if "NXRRSET" in out else "negative?"
    if "; negative response, unsigned answer" in out:
        return UNSIGNED_NX if "NXDOMAIN" in out else "unsigned-nodata"
    if "; unsigned answer" in out:
        return UNSIGNED
    if re.search(r"resolution failed: (failure|SERVFAIL)$", out, re.MULTILINE):
        return SERVFAIL  # what delv prints when its "resolver" (our server) says SERVFAIL
    if re.search(
        r"resolution failed|no valid (signature|RRSIG|DS|NSEC)|broken trust chain|"
        r"insecurity proof failed|bad cache hit|verify failed",
        out,
    ):
        return BOGUS
    return "unknown"


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_delv_verdict(world, case):
    name, rdtype, expected, *why = case
    server, anchor = world
    out = run_delv(server.port, anchor, name, rdtype)
    assert verdict(out) == expected, out
    if why:
        assert re.search(why[0], out), out
    if expected in (VALID, UNSIGNED):
        # delv shows a DNAME under the question's name, not its owner's, and omits the
        # CNAME synthesised from it
        pattern = rf"^{re.escape(name)}\s+\d+\s+IN\s+(CNAME|DNAME|{rdtype})\s"
        assert re.search(pattern, out, re.M), out


def test_delv_over_tcp(world):
    server, anchor = world
    out = run_delv(server.port, anchor, "_25._tcp.mail.good-nsec3.example.", "TLSA", "+tcp")
    assert verdict(out) == VALID, out


def test_delv_rejects_a_foreign_trust_anchor(world, tmp_path):
    """The same world under another (freshly generated) anchor is bogus: the anchor matters."""
    server, _ = world
    other = Hierarchy(".")
    anchor = tmp_path / "other.conf"
    anchor.write_text(other.bind_trust_anchors())
    out = run_delv(server.port, anchor, "mail.good-nsec.example.", "A")
    assert verdict(out) == BOGUS, out


def test_delv_dnskey_anchor(world, tmp_path):
    """A static-key anchor (the root KSK itself) works as well as the DS one."""
    server, _ = world
    anchor = tmp_path / "key.conf"
    anchor.write_text(server.signed.bind_trust_anchors("dnskey"))
    out = run_delv(server.port, anchor, "mail.good-nsec.example.", "A")
    assert verdict(out) == VALID, out


def test_world_builds():
    """Every zone of the delv world is signed (how long that takes: benchmarks/world_build.py)."""
    signed = build()
    zones = [signed[z] for z in signed.zones]
    assert zones and all(z.earliest_expiration for z in zones if z.signed)


# A TLD anchor instead of the root: delv's +root names the anchor
def test_delv_with_tld_anchor(tmp_path):
    h = Hierarchy("example.")
    z = h.zone("tld-anchored.example.", denial=NSEC)
    _standard(z)
    signed = h.sign()
    anchor = tmp_path / "a.conf"
    anchor.write_text(signed.bind_trust_anchors())
    with served(signed) as server:
        cmd = ["delv", "@127.0.0.1", "-p", str(server.port), "-a", str(anchor)]
        cmd += ["+root=example.", "-4", "_25._tcp.mail.tld-anchored.example.", "TLSA"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert verdict(p.stdout + p.stderr) == VALID, p.stdout + p.stderr
