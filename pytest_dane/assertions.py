"""Assertions on a check's :class:`~dane_monitor.report.DomainResult`, for one's own tests.

Each raises ``AssertionError`` with a message a person can act on (the human report of
``dane-monitor check``, or the published and served records side by side with the record to
publish); the helper's own frame is hidden from pytest's traceback.

``host`` arguments name an MX host fully (``"mx1.example.de."``, the dot optional) or by its
first labels (``"mx1"``).
"""

from __future__ import annotations

from dane_monitor import render
from dane_monitor.report import DomainResult, HostResult, Severity, Verdict

__all__ = [
    "assert_dane_valid",
    "assert_findings",
    "assert_no_findings",
    "assert_tlsa_matches",
    "assert_verdict",
]


def _hosts(result: DomainResult, host: str | None) -> list[HostResult]:
    if host is None:
        return list(result.hosts)
    want = host.rstrip(".")
    found = [h for h in result.hosts if h.name.rstrip(".") == want or h.name.startswith(want + ".")]
    if not found:
        names = ", ".join(h.name for h in result.hosts) or "none"
        raise AssertionError(f"{result.domain} has no MX host {host!r} (hosts: {names})")
    return found


def _report(result: DomainResult) -> str:
    return "\n".join("    " + line for line in render.text(result).splitlines())


def assert_verdict(result: DomainResult, verdict: str | Verdict, *, host: str | None = None):
    """The domain's verdict (or, with ``host``, that MX host's) is ``verdict``:
    ``valid``, ``failed``, ``bogus``, ``no-dane``, ``insecure``, ``no-mail`` or ``error``."""
    __tracebackhide__ = True
    want = Verdict(verdict)
    if host is None:
        got = result.verdict
        where = result.domain
    else:
        hosts = _hosts(result, host)
        got = hosts[0].verdict
        where = hosts[0].name
    if got != want:
        raise AssertionError(
            f"expected {where} to be {want.value!r}, the check says {got.value!r}:\n"
            f"{_report(result)}"
        )


def assert_dane_valid(result: DomainResult, *, host: str | None = None) -> None:
    """DANE senders deliver, authenticated, to every endpoint (verdict ``valid``)."""
    __tracebackhide__ = True
    assert_verdict(result, Verdict.VALID, host=host)


def assert_tlsa_matches(
    result: DomainResult,
    *,
    host: str | None = None,
    address: str | None = None,
    key_type: str | None = None,
) -> None:
    """A usable TLSA record authenticates every selected endpoint (by default all of them;
    narrow with ``host``, ``address``, ``key_type``). Fails when nothing is selected."""
    __tracebackhide__ = True
    from pytest_dane.items import _fix, _side_by_side

    selected = [
        (h, ep)
        for h in _hosts(result, host)
        for ep in h.endpoints
        if (address is None or ep.address == address)
        and (key_type is None or ep.key_type == key_type)
    ]
    if not selected:
        raise AssertionError(
            f"no endpoint of {result.domain} matches host={host!r} address={address!r} "
            f"key_type={key_type!r}:\n{_report(result)}"
        )
    failing = [(h, ep) for h, ep in selected if not ep.authenticated]
    if not failing:
        return
    lines = [f"{len(failing)} of {len(selected)} endpoints do not authenticate:"]
    for h, ep in failing:
        why = ep.match_failure or ep.probe_error or "no usable TLSA record"
        lines += ["", f"{h.name} {ep.address} port {ep.port} ({ep.key_type or '?'} key): {why}"]
        if ep.match_detail:
            lines.append(f"    {ep.match_detail}")
        lines += _side_by_side(h, ep) + _fix(h, ep)
    raise AssertionError("\n".join(lines))


def assert_findings(result: DomainResult, *codes: str) -> None:
    """The check reported every one of ``codes`` (e.g. ``"tlsa-mismatch"``), maybe more."""
    __tracebackhide__ = True
    got = {f.code for f in result.all_findings()}
    missing = [c for c in codes if c not in got]
    if missing:
        raise AssertionError(
            f"expected findings {', '.join(missing)} are missing:\n{_report(result)}"
        )


def assert_no_findings(
    result: DomainResult, *codes: str, severity: str | Severity | None = None
) -> None:
    """None of ``codes`` was reported; without codes, nothing of ``severity`` or worse
    (``"error"`` by default: ``"warning"`` also forbids warnings, ``"info"`` everything).

    A code the check could not have found fails too: ``cert-expiring``, ``rrsig-expiring``,
    ``tlsa-no-rollover`` and ``tlsa-stale-record`` need the evidence their pytest rule needs
    (a certificate from every address, the path validated to the TLSA RRset, …)."""
    __tracebackhide__ = True
    from pytest_dane.items import unchecked

    order = [Severity.ERROR, Severity.WARNING, Severity.INFO]
    if codes:
        bad = [f for f in result.all_findings() if f.code in codes]
    else:
        limit = order.index(Severity(severity or Severity.ERROR))
        bad = [f for f in result.all_findings() if order.index(f.severity) <= limit]
    if bad:
        listed = "\n".join(f"  {f.severity.value.upper():7} {f.code}: {f.message}" for f in bad)
        raise AssertionError(f"unexpected findings:\n{listed}\n{_report(result)}")
    for code in codes:
        gaps = unchecked(result, code)
        if gaps:
            raise AssertionError(
                f"cannot tell whether {code} applies: not checked: {'; '.join(gaps)}\n"
                f"{_report(result)}"
            )
