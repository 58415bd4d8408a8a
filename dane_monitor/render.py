"""Human output and exit codes for check results (pure functions of the report model)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from dane_monitor import judge
from dane_monitor.report import (
    ACTION_SENTENCE,
    DomainResult,
    Severity,
    Verdict,
)

# Monitoring-plugin convention (Nagios, Icinga, Checkmk): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def exit_code(result: DomainResult) -> int:
    """The decision table's exit code (dane_monitor.judge): CRITICAL when DANE senders defer
    (failed, bogus) or an error finding stands, UNKNOWN when we could not decide, WARNING when
    mail flows without DANE's protection or a warning finding stands."""
    return judge.exit_code(result.verdict, (f.severity.value for f in result.all_findings()))


def _short(rdata: str, width: int = 24) -> str:
    usage_selector_mtype, _, data = rdata.rpartition(" ")
    if len(data) <= width:
        return rdata
    return f"{usage_selector_mtype} {data[:width]}…"


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    days = (epoch - time.time()) / 86400
    return f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(epoch))} UTC ({days:.1f} days)"


def text(result: DomainResult, profiles: Sequence[str] | None = None) -> str:
    """The human report; ``profiles``: the sender profiles to show for every host (None:
    all of them, only on hosts where one differs from RFC 7672)."""
    lines: list[str] = []
    code = exit_code(result)
    headline = f"{result.domain}: {result.verdict.value.upper()} ({STATE[code]})"
    if result.headline:
        headline += f" — {result.headline}"
    lines.append(headline)
    lines += _raised(result, code)
    if result.mx_dns is not None:
        mx = result.mx_dns
        records = ", ".join(mx.records) if mx.records else mx.kind
        lines.append(f"MX ({mx.status}): {records}")
    if result.tlsrpt is not None:  # RFC 8460 §3 policy record
        t = result.tlsrpt
        shown = ", ".join(t["rua"]) if t["record"] else (t["problem"] or t["state"])
        lines.append(f"TLS-RPT {t['name']} ({t['state']}): {shown}")
    lines.append(f"validation: {result.validation}; checked in {result.duration:.2f}s")

    for host in result.hosts:
        lines.append("")
        pref = f"{host.preference} " if host.preference is not None else ""
        action = ACTION_SENTENCE[host.sender_action] if host.sender_action else ""
        if host.impact:  # only some endpoints fail: say whose mail waits
            action = f"DANE senders {host.impact} DEFER mail here"
        lines.append(
            f"  {pref}{host.name} port {host.port}: {host.verdict.value.upper()}"
            + (f" — {action}" if action else "")
        )
        if host.base_domain and host.base_domain != host.name:
            lines.append(f"    TLSA base domain: {host.base_domain}")
        if host.tlsa_name:
            tlsa_dns = host.tlsa_dns
            state = f"{tlsa_dns.status} {tlsa_dns.kind}" if tlsa_dns else "not looked up"
            ttl = f", TTL {host.tlsa_ttl}s" if host.tlsa_ttl is not None else ""
            lines.append(f"    TLSA {host.tlsa_name} ({state}{ttl})")
            for record in host.tlsa_records:
                lines.append(f"      {_short(record, 48)}")
        for ep in host.endpoints:
            if ep.authenticated and ep.match is not None:
                match = ep.match
                outcome = f"authenticated by {_short(match.record)} at depth {match.depth}"
            elif ep.probe_error:
                outcome = f"{ep.probe_error}: {ep.probe_detail}"
            elif ep.match_failure:
                outcome = f"{ep.match_failure}"
            elif ep.tls_version:
                outcome = f"{ep.tls_version}"
            else:
                outcome = ""
            action = ep.sender_action.value if ep.sender_action else "-"
            key = ep.key_type or "-"
            lines.append(f"    {ep.address:39} {key:6} {outcome}  → {action}")
        lines += _profiles(host.profiles, host.sender_action, profiles)
        if host.suggested_records and host.verdict != Verdict.VALID:
            lines.append(
                f"    suggested: {host.tlsa_name or host.name} IN TLSA {host.suggested_records[0]}"
            )

    if result.nameservers is not None:
        lines += _nameservers(result.nameservers)

    findings = result.all_findings()
    if findings:
        lines.append("")
        lines.append("Findings:")
        order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
        for f in sorted(findings, key=lambda f: order[f.severity]):
            where = " ".join(str(x) for x in (f.mx, f.address and f"{f.address}:{f.port}") if x)
            lines.append(f"  {f.severity.value.upper():7} {f.code:20} {where}")
            lines.append(f"          {f.message}")
    if result.rrsig_expiration is not None:
        lines.append("")
        lines.append(
            f"Earliest DNSSEC signature expiry on the path: {_when(result.rrsig_expiration)}"
        )
    return "\n".join(lines)


def _raised(result: DomainResult, code: int) -> list[str]:
    """The error findings that make the exit CRITICAL when the verdict alone would not (a
    valid domain whose secondary name server serves a failing RRset, a signature about to
    expire): right under the headline, so it does not read as all-clear."""
    if code != CRITICAL or judge.EXIT[result.verdict] == CRITICAL:
        return []
    errors = [f for f in result.all_findings() if f.severity == Severity.ERROR]
    errors.sort(key=lambda f: not f.code.startswith("ns-"))  # stable: ns-* first
    lines = []
    for f in errors:
        where = f" {f.address}" if f.address else (f" {f.mx}" if f.mx else "")
        lines.append(f"  CRITICAL: {f.code}{where} — {f.message}")
    return lines


def _profiles(
    profiles: dict[str, dict[str, str]], headline: Any, chosen: Sequence[str] | None
) -> list[str]:
    """Sender profiles (dane_monitor.profiles): one line each. Without ``chosen``, only when
    some profile's action differs from the RFC 7672 host action (the usual case stays
    short); with it, those profiles always."""
    ours = headline.value if headline is not None else None
    if chosen:
        profiles = {n: profiles[n] for n in chosen if n in profiles}
    elif all(p["action"] == ours for p in profiles.values()):
        return []
    if not profiles:
        return []
    lines = ["    senders:"]
    for name, p in profiles.items():
        lines.append(f"      {name:24} {p['action']:28} {p['reason']}")
    return lines


def _nameservers(survey: dict[str, Any]) -> list[str]:
    """Each zone's authoritative servers as asked directly (dane_monitor.nameservers)."""
    lines = ["", f"Name servers ({survey['queries']} queries, {survey['duration_seconds']:.2f}s):"]
    for z in survey["zones"]:
        note = f" ({z['note']})" if z["note"] else ""
        lines.append(f"  {z['zone']}{note}")
        for s in z["servers"]:
            serial = f" serial {s['serial']}" if s["serial"] is not None else ""
            where = s["address"] or "-"
            glue = " (glue)" if s.get("glue") else ""
            lines.append(f"    {s['name']:40} {where:39} {s['state']}{serial}{glue}")
    return lines
