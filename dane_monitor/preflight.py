"""``dane-monitor preflight``: would deploying a certificate break DANE? (renewal hooks)

The host's DNS is gathered and judged by the checker's own sequencing and decision table
(:meth:`dane_monitor.check.Checker.preflight`): the same TLSA base domains through CNAMEs
(RFC 7672 §2.2.3), the same record usability, the same names for DANE-TA. This module only
turns that judgement into a monitoring-plugin answer. A renewal hook must never hear "OK"
for a certificate that ``check`` would then fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from dane_monitor import tlsa as T
from dane_monitor.check import Preflight
from dane_monitor.judge import CRITICAL, OK, UNKNOWN

# Host cases in which deploying any certificate cannot change what DANE senders do.
_NO_DANE = {"address-insecure", "tlsa-insecure", "no-tlsa"}


@dataclass(frozen=True)
class Answer:
    code: int
    lines: tuple[str, ...]


def answer(pre: Preflight, cert: str, chain: list[bytes]) -> Answer:
    hj = pre.host
    case = hj.case
    owner = pre.owner or (f"_{hj.host.port}._tcp.{hj.base}" if hj.base else hj.host.name)
    if case in _NO_DANE:
        why = {
            "address-insecure": f"the address records of {hj.host.name} are not signed (and no "
            "secure CNAME leads to them), so senders look up no TLSA record",
            "tlsa-insecure": f"{owner} is not DNSSEC-signed, so senders ignore it",
            "no-tlsa": f"no TLSA record at {owner} (proven by DNSSEC)",
        }[case]
        return Answer(OK, (f"OK: {why}: deploying this certificate cannot break DANE",))
    if case != "dane":
        reasons = [a for a in hj.host.lookups if a.reason]
        detail = "; ".join(f"{a.qname} {a.status} ({a.reason}: {a.detail})" for a in reasons)
        what = {
            "no-address": f"{hj.host.name} has no address record",
        }.get(case, detail or case)
        return Answer(UNKNOWN, (f"UNKNOWN: {what}; fix DNS before deploying",))
    if not hj.usable:
        return Answer(OK, (f"OK: {owner} has no record usable for SMTP; senders insist on TLS "
                           "but authenticate nothing: deploying this certificate cannot break "
                           "DANE",))  # fmt: skip
    match = pre.match
    assert match is not None
    if match.authenticated and match.match is not None:
        return Answer(OK, (f"OK: {cert} matches the published {match.match.record.to_text()} "
                           f"at {owner} (depth {match.match.depth})",))  # fmt: skip
    lines = [
        f"CRITICAL: {cert} does not match {owner}: {match.failure}: {match.detail}",
        f"  published: {', '.join(r.to_text() for r in hj.records)}",
    ]
    lines += [f"  publish first: {owner} IN TLSA {r}" for r in T.suggest_records(chain)]
    lines.append("  then wait two TTLs before deploying the certificate (RFC 7671 §8)")
    return Answer(CRITICAL, tuple(lines))
