"""RFC 7672 §2.2 host policy: which MX hosts, which TLSA base domains, which names.

Pure functions of validated answers. The checker's sequencing (what to look up next),
``preflight`` and the judgement all ask these, so a rule exists in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass

# Before dnspython, which decides its optional features when first imported (_compat).
import dane_monitor._compat  # noqa: F401  # isort: skip
import dns.name

from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.settings import parse_domain_name


def text(name: dns.name.Name | str) -> str:
    return name.to_text() if isinstance(name, dns.name.Name) else name


def idna(name: str) -> str:
    """A name as the DNS wants it: IDNA A-labels, fully qualified; ValueError if not a name
    (by :func:`dane_monitor.settings.parse_domain_name`, the one rule for names)."""
    name = parse_domain_name(name)
    try:
        return dns.name.from_unicode(name.rstrip(".") + ".").to_text()
    except Exception as exc:
        raise ValueError(f"not a valid domain name: {name!r} ({exc})") from exc


@dataclass(frozen=True)
class MXPlan:
    # failed (bogus/indeterminate MX RRset) | nxdomain | null | mx | implicit
    mode: str
    hosts: tuple[tuple[str, int | None], ...] = ()  # (host name, preference), in MX order
    null_mixed: bool = False  # a "." among other MX records (ignored by senders)


def mx_plan(mx: Answer, domain: str) -> MXPlan:
    """The MX hosts a sender tries (RFC 7672 §2.2.1/§2.2.2, RFC 7505)."""
    if mx.status in (Status.BOGUS, Status.INDETERMINATE):
        return MXPlan("failed")
    if mx.kind == Kind.NXDOMAIN:
        return MXPlan("nxdomain")
    if mx.kind == Kind.POSITIVE and mx.rrset is not None:
        records = sorted(mx.rrset, key=lambda r: (r.preference, r.exchange.to_text()))
        if len(records) == 1 and records[0].exchange == dns.name.root:
            return MXPlan("null")
        hosts = tuple(
            (r.exchange.to_text(), r.preference) for r in records if r.exchange != dns.name.root
        )
        return MXPlan("mx", hosts, null_mixed=len(hosts) < len(records))
    return MXPlan("implicit", ((domain, None),))


def usable_addresses(a: Answer, aaaa: Answer) -> list[Answer]:
    return [x for x in (a, aaaa) if x.kind == Kind.POSITIVE and x.rrset is not None]


def addresses(a: Answer, aaaa: Answer) -> list[str]:
    return [r.to_text() for x in usable_addresses(a, aaaa) if x.rrset for r in x.rrset]


def address_failures(a: Answer, aaaa: Answer) -> list[Answer]:
    """The failed address lookups that stop a sender: only when no family is secure."""
    failures = [x for x in (a, aaaa) if x.status in (Status.BOGUS, Status.INDETERMINATE)]
    if any(x.status == Status.SECURE for x in usable_addresses(a, aaaa)):
        return []
    return failures


def tlsa_bases(name: str, a: Answer, aaaa: Answer) -> tuple[str, ...]:
    """RFC 7672 §2.2.3: the TLSA base domains, in lookup order; empty when DANE does not apply.

    - no CNAME: the name itself, if its address records are secure;
    - a CNAME (or DNAME) chain that is secure all the way, addresses included: the fully
      expanded name first, then the original name (used when the expanded one has no TLSA);
    - otherwise, if the first CNAME is secure: the original name, even though the target's
      address records are insecure (Postfix, by the RFC's author, looks up and enforces TLSA
      there);
    - a first CNAME that is insecure: none.
    """
    usable = usable_addresses(a, aaaa)
    if not usable:
        return ()
    chained = next((x for x in usable if x.cnames), None)
    if chained is None:
        return (name,) if any(x.status == Status.SECURE for x in usable) else ()
    steps = chained.cnames
    if chained.status == Status.SECURE and all(s.status == Status.SECURE for s in steps):
        expanded = text(steps[-1].target)
        return (expanded, name) if expanded != name else (name,)
    if steps[0].status == Status.SECURE:
        return (name,)
    return ()


def tlsa_owner(port: int, base: str) -> str:
    return f"_{port}._tcp.{base}"


def next_base(bases: tuple[str, ...], answers: list[Answer]) -> str | None:
    """The next candidate to look up after ``answers``: only after a secure proof that the
    previous candidate has no TLSA records (RFC 7672 §2.2.3)."""
    if len(answers) >= len(bases):
        return None
    if not answers:
        return bases[0]
    last = answers[-1]
    if last.status == Status.SECURE and last.kind in (Kind.NXDOMAIN, Kind.NODATA):
        return bases[len(answers)]
    return None


def reference_names(name: str, base: str | None) -> list[str]:
    """Names a DANE-TA leaf may carry (RFC 7672 §3.2.3): the TLSA base domain, then the MX
    host name as the MX record gives it."""
    return list(dict.fromkeys([base or name, name]))
