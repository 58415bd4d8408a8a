"""What every DNS lookup of the checker returns: data, its DNSSEC status, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import dns.name
import dns.rdatatype
import dns.rrset


class Status(StrEnum):
    """RFC 4033 §5 security states; ``indeterminate`` also covers timeouts and SERVFAIL.

    For DANE, bogus and indeterminate both mean a sender must defer (RFC 7672 §2.1.1)."""

    SECURE = "secure"
    INSECURE = "insecure"
    BOGUS = "bogus"
    INDETERMINATE = "indeterminate"


_RANK = {Status.SECURE: 0, Status.INSECURE: 1, Status.INDETERMINATE: 2, Status.BOGUS: 3}


def worst(*statuses: Status) -> Status:
    return max(statuses, key=_RANK.__getitem__)


class Kind(StrEnum):
    POSITIVE = "positive"  # the RRset exists
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    ERROR = "error"  # no usable answer: timeout, SERVFAIL, garbage…


# Reason codes (stable: they appear in JSON and findings).
SIGNATURE_EXPIRED = "signature-expired"
SIGNATURE_NOT_YET_VALID = "signature-not-yet-valid"
BAD_SIGNATURE = "bad-signature"
MISSING_RRSIG = "missing-rrsig"
NO_MATCHING_KEY = "no-matching-key"
NO_MATCHING_DS = "no-matching-ds"
NO_DNSKEY = "no-dnskey"
ANCHOR_UNAVAILABLE = "anchor-unavailable"
BAD_DENIAL = "bad-denial"
MISSING_DENIAL = "missing-denial"
BAD_SIGNER = "bad-signer"
INSECURE_DELEGATION = "insecure-delegation"
UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
NSEC3_ITERATIONS = "nsec3-iterations"
NO_TRUST_ANCHOR = "no-trust-anchor"
CNAME_LOOP = "cname-loop"
SERVFAIL = "servfail"
REFUSED = "refused"
RCODE = "unexpected-rcode"
RESOLVER_SAYS_INSECURE = "resolver-no-ad"
OPT_OUT_WILDCARD = "opt-out-wildcard"
# An NXDOMAIN/NODATA whose next closer name lies in an NSEC3 opt-out span (RFC 5155 §9.2):
# the span may hide an unsigned delegation, so nothing is proven securely.
NSEC3_OPT_OUT = "nsec3-opt-out"
# RRSIG Labels field inconsistent with the owner or the signer (RFC 4035 §5.3.1), or a
# wildcard-synthesised record offered where only a real one proves anything (§5.3.4, §5.4).
BAD_RRSIG_LABELS = "bad-rrsig-labels"
# The answer would need more work than any honest zone needs (KeyTrap, CVE-2023-50387/50868).
VALIDATION_BUDGET = "validation-budget"
# A DNAME that cannot apply: several records at one owner, or owned above the trust anchor.
BAD_DNAME = "bad-dname"
# A question that names no single RRset (ANY, RRSIG, meta-types): nothing to validate.
UNSUPPORTED_QTYPE = "unsupported-qtype"


@dataclass
class CNAMEStep:
    owner: dns.name.Name
    target: dns.name.Name
    status: Status
    # The DNAME owner when the step was synthesised from a DNAME (RFC 6672), else None.
    dname: dns.name.Name | None = None


@dataclass
class Answer:
    """The outcome of a validated lookup of ``qname``/``qtype``.

    ``rrset`` is the final RRset after following CNAMEs (its owner is the canonical name);
    ``status`` is the worst status along the CNAME chain; ``expiration`` is the earliest
    RRSIG expiration (POSIX seconds) of everything that authenticated the answer, DS and
    DNSKEY RRsets up to the trust anchor included.
    """

    qname: dns.name.Name
    qtype: int
    status: Status
    kind: Kind
    rrset: dns.rrset.RRset | None = None
    reason: str | None = None
    detail: str = ""
    expiration: int | None = None
    ttl: int | None = None
    cnames: list[CNAMEStep] = field(default_factory=list)
    signer: dns.name.Name | None = None
    # A secure DS denial at a zone cut: the child zone is provably unsigned.
    insecure_delegation: bool = False
    # Set when ``rrset`` is a CNAME synthesised from the DNAME owned by this name.
    dname: dns.name.Name | None = None
    # Sender profiles (issue 16): for each zone from the trust anchor down to the signer, the
    # DNSSEC algorithms of its DS/anchor-trusted keys (local validation of a secure answer,
    # of a bogus one down to the zone that fails, or of one insecure for NSEC3 iterations
    # whose ``nsec3_resolver_status`` is known, down to the zone of the denial; empty: not
    # known, e.g. resolver mode).
    # A validator that refuses every algorithm of one of these zones calls the answer
    # insecure.
    chain_algorithms: tuple[frozenset[int], ...] = ()
    # The NSEC3 iterations of a denial found insecure for its iterations (reason
    # nsec3-iterations), also when the answer inherits it from its zone's DS denial; None
    # otherwise.
    nsec3_iterations: int | None = None
    # What a validator that accepts up to denial.RESOLVER_NSEC3_ITERATIONS iterations makes
    # of this answer, the denial proven with that limit: of a NODATA/NXDOMAIN, of the DS of
    # the answer's zone, or the no-closer-match proof beside a wildcard expansion (RFC 5155
    # §8.8; secure when it holds). None: not known. Bogus answers:
    # ``chain_algorithms`` lists the zones validated down to where validation failed (the
    # failing zone's DS algorithms last), so a validator that refuses them is known to call
    # the zone insecure instead (RFC 4035 §5.2).
    nsec3_resolver_status: Status | None = None

    @property
    def secure(self) -> bool:
        return self.status == Status.SECURE

    @property
    def exists(self) -> bool:
        return self.kind == Kind.POSITIVE

    @property
    def canonical_name(self) -> dns.name.Name:
        return self.cnames[-1].target if self.cnames else self.qname

    def __str__(self) -> str:
        qtype = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(self.qtype))
        what = f"{self.qname} {qtype}: {self.status} {self.kind}"
        return f"{what} ({self.reason}: {self.detail})" if self.reason else what


def earliest(*times: int | None) -> int | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None
