"""Monitoring-plugin output (Nagios, Icinga, Naemon, Shinken, Sensu): ``check --format nagios``.

One status line (wrapped here), then the error and warning findings as long output, and the
sender profiles that fare otherwise than RFC 7672 senders (``SENDERS``)::

    DANE CRITICAL - tlsa-mismatch.example: failed, DANE senders DEFER mail here
      (tlsa-mismatch) | rrsig_expiry_days=12.50;3:;1: cert_expiry_days=80.00;14:
      endpoints_authenticated=0;;;0 endpoints_failed=1;;0;0 duration=0.052s;;;0
    ERROR tlsa-mismatch mx1.tlsa-mismatch.example. 127.0.2.7:25: the served key matches …

The state word comes from the same exit code the text output uses
(:func:`dane_monitor.render.exit_code`). Performance data follows the Monitoring Plugins
Development Guidelines (``'label'=value[UOM];[warn];[crit];[min];[max]``, ``U`` for a value
that could not be determined): days until the earliest DNSSEC signature expiry on the path
and until the earliest leaf certificate expiry, with the warning and critical windows as
ranges (``3:`` alerts below 3), the endpoints that authenticate and those where DANE senders
defer, and the check's duration in seconds. The label set is the same in every state, so
graphing add-ons keep one series per label.
"""

from __future__ import annotations

from dane_monitor import render
from dane_monitor.report import (
    ACTION_SENTENCE,
    DomainResult,
    Finding,
    SenderAction,
    Severity,
    worst_action,
)
from dane_monitor.settings import Thresholds

STATE = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
DAY = 86400.0
_MAX_CODES = 3


def _clean(text: str) -> str:
    """One line without the perfdata separator: ``|`` would cut the status short."""
    return " ".join(text.replace("|", "/").split())


def _number(value: float) -> str:
    return f"{value:.2f}"


def _threshold(days: float) -> str:
    """A range that alerts below ``days`` (``3:``), per the guidelines' range syntax."""
    return f"{days:g}:"


def _driving(result: DomainResult, code: int) -> list[Finding]:
    """The findings that make the state: errors for CRITICAL/UNKNOWN, warnings for WARNING."""
    severity = {1: Severity.WARNING, 2: Severity.ERROR, 3: Severity.ERROR}.get(code)
    return [f for f in result.all_findings() if f.severity == severity]


def headline(result: DomainResult, code: int) -> str:
    """``domain: verdict, what senders do (codes)``: the status line after ``DANE STATE -``."""
    text = f"{result.domain.rstrip('.') or result.domain}: {result.verdict.value}"
    action = worst_action(h.sender_action for h in result.hosts if h.sender_action)
    driving = _driving(result, code)
    if result.headline:  # the decision table's sentence, naming who is hurt
        text += f", {result.headline}"
    elif action is not None:
        text += f", {ACTION_SENTENCE[action]}"
        if action == SenderAction.DEFER and len(result.hosts) > 1:
            text += " (at least one MX endpoint)"
    elif driving:
        text += f": {driving[0].message}"
    codes = list(dict.fromkeys(f.code for f in driving))
    if codes:
        shown = ", ".join(codes[:_MAX_CODES])
        more = len(codes) - _MAX_CODES
        text += f" ({shown}{f', +{more} more' if more > 0 else ''})"
    return _clean(text)


def perfdata(
    result: DomainResult, thresholds: Thresholds, now: float, deadline: float | None = None
) -> str:
    """The performance data of ``result``, as of ``now`` (seconds since the epoch)."""
    rrsig = (
        _number((result.rrsig_expiration - now) / DAY)
        if result.rrsig_expiration is not None
        else "U"
    )
    endpoints = [ep for host in result.hosts for ep in host.endpoints]
    leaves = [ep.leaf_not_after for ep in endpoints if ep.leaf_not_after is not None]
    cert = _number((min(leaves) - now) / DAY) if leaves else "U"
    authenticated = sum(1 for ep in endpoints if ep.authenticated)
    failed = sum(1 for ep in endpoints if ep.sender_action == SenderAction.DEFER)
    duration_max = f";{deadline:g}" if deadline is not None else ""
    return " ".join(
        [
            f"rrsig_expiry_days={rrsig};{_threshold(thresholds.rrsig_warning_days)}"
            f";{_threshold(thresholds.rrsig_critical_days)}",
            f"cert_expiry_days={cert};{_threshold(thresholds.cert_warning_days)}",
            f"endpoints_authenticated={authenticated};;;0",
            f"endpoints_failed={failed};;0;0",
            f"duration={result.duration:.3f}s;;;0{duration_max}",
        ]
    )


def _where(f: Finding) -> str:
    parts = [f.mx or f.domain or ""]
    if f.address:
        parts.append(f"{f.address}:{f.port}" if f.port is not None else f.address)
    elif f.port is not None:
        parts.append(f"port {f.port}")
    return " ".join(p for p in parts if p)


def long_output(result: DomainResult) -> list[str]:
    """One line per error and warning finding, errors first; then one per sender profile
    that fares otherwise than RFC 7672 senders with the whole target (``SENDERS name:
    action (RFC 7672 senders: action): reason``, dane_monitor.profiles)."""
    order = {Severity.ERROR: 0, Severity.WARNING: 1}
    findings = sorted(
        (f for f in result.all_findings() if f.severity in order),
        key=lambda f: order[f.severity],
    )
    lines = []
    for f in findings:
        where = _where(f)
        lines.append(
            _clean(
                f"{f.severity.value.upper()} {f.code}{' ' + where if where else ''}: {f.message}"
            )
        )
    rfc = result.profiles.get("rfc7672", {}).get("action")
    for name, p in result.profiles.items():
        if rfc is not None and p["action"] != rfc:
            lines.append(
                _clean(f"SENDERS {name}: {p['action']} (RFC 7672 senders: {rfc}): {p['reason']}")
            )
    return lines


def render_result(
    result: DomainResult,
    thresholds: Thresholds,
    now: float,
    *,
    deadline: float | None = None,
) -> str:
    """The plugin output for ``result``: the status line with perfdata, then long output."""
    code = render.exit_code(result)
    status = f"DANE {STATE[code]} - {headline(result, code)} | "
    status += perfdata(result, thresholds, now, deadline)
    return "\n".join([status, *long_output(result)])
