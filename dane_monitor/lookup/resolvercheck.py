"""Is this resolver fit for DANE? The ``dig +dnssec … | grep flags`` check, done properly.

A DANE sender (and our resolver mode) relies on its resolver to validate: to set AD on
signed answers and to refuse (SERVFAIL) bogus ones, over UDP with EDNS0 and DO, and over TCP
for large answers. Each of those is one :class:`Check` with a stable code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from dane_monitor.lookup.stub import Server

# Public names that stay signed / stay bogus on purpose.
DEFAULT_SIGNED = "isc.org."
DEFAULT_BOGUS = "dnssec-failed.org."


@dataclass
class Check:
    code: str
    ok: bool
    severity: str  # what a failure means: "error" (unfit for DANE) or "warning"
    detail: str


@dataclass
class ResolverReport:
    resolver: str
    checks: list[Check] = field(default_factory=list)
    # Whether anything came back, over UDP or TCP, to any question (a SERVFAIL included):
    # a resolver that answers is reachable, however unfit its answers.
    answered: bool = False

    @property
    def reachable(self) -> bool:
        return self.answered

    @property
    def exit_code(self) -> int:
        """Monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
        if not self.reachable:
            return 3
        failed = [c for c in self.checks if not c.ok]
        if any(c.severity == "error" for c in failed):
            return 2
        return 1 if failed else 0

    def to_dict(self) -> dict:
        return {
            "resolver": self.resolver,
            "fit_for_dane": self.exit_code in (0, 1),
            "reachable": self.reachable,
            "checks": [asdict(c) for c in self.checks],
        }


def _query(name: str, rdtype: str, *, cd: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, want_dnssec=True, use_edns=0, payload=1232)
    q.flags |= dns.flags.RD
    if cd:
        q.flags |= dns.flags.CD
    return q


async def _ask(
    server: Server, q: dns.message.Message, timeout: float, tcp: bool = False
) -> dns.message.Message | str:
    try:
        if tcp:
            return await dns.asyncquery.tcp(q, server.host, timeout=timeout, port=server.port)
        response = await dns.asyncquery.udp(
            q, server.host, timeout=timeout, port=server.port, ignore_unexpected=True
        )
        if response.flags & dns.flags.TC:
            return await dns.asyncquery.tcp(q, server.host, timeout=timeout, port=server.port)
        return response
    except dns.exception.Timeout:
        return f"no answer within {timeout:g}s"
    except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _judge_signed(signed: dns.message.Message, name: str, add: Callable[[Check], None]) -> None:
    """EDNS0 with DO, and AD, on the answer for the signed name: its data with RRSIGs, or a
    NODATA/NXDOMAIN whose RRSIGs (over the SOA and the NSEC/NSEC3 records of the denial)
    are in the authority section, whatever type was asked."""
    sigs = any(r.rdtype == dns.rdatatype.RRSIG for r in (*signed.answer, *signed.authority))
    do = signed.edns >= 0 and bool(signed.ednsflags & dns.flags.DO)
    add(
        Check(
            "edns-do",
            do and sigs,
            "error",
            f"EDNS0 {'yes' if signed.edns >= 0 else 'no'}, DO echoed "
            f"{'yes' if do else 'no'}, RRSIGs returned {'yes' if sigs else 'no'}",
        )
    )
    ad = bool(signed.flags & dns.flags.AD)
    add(
        Check(
            "validates",
            ad,
            "error",
            f"AD {'set' if ad else 'NOT set'} on the signed name {name}"
            + ("" if ad else ": the resolver does not validate, DANE cannot work"),
        )
    )


async def check_resolver(
    server: Server,
    *,
    signed_name: str = DEFAULT_SIGNED,
    bogus_name: str = DEFAULT_BOGUS,
    rdtype: str = "A",
    timeout: float = 3.0,
) -> ResolverReport:
    report = ResolverReport(str(server))
    add = report.checks.append
    signed, bogus, bogus_cd, over_tcp = await asyncio.gather(
        _ask(server, _query(signed_name, rdtype), timeout),
        _ask(server, _query(bogus_name, rdtype), timeout),
        _ask(server, _query(bogus_name, rdtype, cd=True), timeout),
        _ask(server, _query(signed_name, rdtype), timeout, tcp=True),
    )

    report.answered = any(
        not isinstance(reply, str) for reply in (signed, bogus, bogus_cd, over_tcp)
    )
    if isinstance(signed, str):
        add(Check("answers", False, "error", f"{signed_name} {rdtype} over UDP: {signed}"))
    else:
        rcode = dns.rcode.to_text(signed.rcode())
        add(
            Check(
                "answers",
                signed.rcode() == dns.rcode.NOERROR,
                "error",
                f"{signed_name} {rdtype} over UDP: {rcode}",
            )
        )
        if signed.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            # No data came back to look at: say so rather than blame EDNS0 or validation.
            why = f"not judged: {signed_name} {rdtype} got {rcode}, no data to look at"
            add(Check("edns-do", False, "error", why))
            add(Check("validates", False, "error", why))
        else:
            _judge_signed(signed, signed_name, add)

    if isinstance(bogus, str):
        add(Check("rejects-bogus", False, "error", f"{bogus_name}: {bogus}"))
    else:
        servfail = bogus.rcode() == dns.rcode.SERVFAIL
        detail = f"{bogus_name} {rdtype}: {dns.rcode.to_text(bogus.rcode())}"
        if not servfail:
            detail += " (a validating resolver must answer SERVFAIL)"
        elif not isinstance(bogus_cd, str) and bogus_cd.rcode() == dns.rcode.NOERROR:
            detail += "; with CD the data is served, so validation is what rejects it"
        add(Check("rejects-bogus", servfail, "error", detail))

    if isinstance(over_tcp, str):
        add(Check("tcp", False, "error", f"{signed_name} over TCP: {over_tcp}"))
    else:
        ok = over_tcp.rcode() == dns.rcode.NOERROR
        add(
            Check(
                "tcp", ok, "error", f"{signed_name} over TCP: {dns.rcode.to_text(over_tcp.rcode())}"
            )
        )

    add(
        Check(
            "loopback",
            server.is_loopback,
            "warning",
            "the resolver is on this host"
            if server.is_loopback
            else f"{server.host} is not on loopback: the AD bit crosses the network without "
            "authentication; run a validating resolver on this host",
        )
    )
    return report
