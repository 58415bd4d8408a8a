"""SMTP TLS Reporting (RFC 8460): what real senders say about their sessions to our MX hosts.

    report = parse_report(body, gzipped=True)        # raises ReportError(reason, message)
    reports = parse_message(raw_mail)                # the mail form (RFC 8460, 5.3)
    tally = Tally(domains={"example.de"})
    tally.add(report)                                # False: a report-id seen before
    tally.families()                                 # the dane_tlsrpt_* metric families

Reports come from strangers (senders do not authenticate to the ``rua`` address), so every
input is hostile until proven otherwise: the raw size, the decompressed size (streaming
zlib with ``max_length``: a gzip bomb stops at the limit, not in memory) and the JSON's
shape (nesting depth and element count, checked before :mod:`json` builds anything) are
bounded, and every field is type-checked. Anything wrong is one :class:`ReportError` with a
bounded ``reason`` (a metric label) and a one-line message; nothing else escapes.

The metric labels are bounded too (:class:`Tally`): ``domain`` is a known domain or
``other``, ``organization`` at most :data:`MAX_ORGANIZATIONS` printable names of at most 64
characters, ``policy_type`` and ``result_type`` the RFC's registered values or ``other``.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import zlib
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = [
    "CONTENT_TYPES",
    "LIMITS",
    "POLICY_TYPES",
    "REFUSAL_REASONS",
    "RESULT_TYPES",
    "FailureDetail",
    "Limits",
    "PolicyResult",
    "Report",
    "ReportError",
    "Tally",
    "decompress",
    "parse_json",
    "parse_message",
    "parse_report",
    "parse_size",
    "read_reports",
]

#: RFC 8460, 4.4: the policy types a report may name.
POLICY_TYPES = ("tlsa", "sts", "no-policy-found")
#: RFC 8460, 4.3 (the IANA "STARTTLS Validation Result Types" registry, section 6.6).
RESULT_TYPES = (
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
)  # fmt: skip
#: RFC 8460, 6.4 and 6.5: the media types of a report, gzip-compressed or not.
CONTENT_TYPES = {"application/tlsrpt+gzip": True, "application/tlsrpt+json": False}
#: Why a report was refused: the values of ``dane_tlsrpt_reports_refused_total{reason}``.
REFUSAL_REASONS = (
    "too-large",  # raw body or file over the limit
    "decompressed-too-large",  # a gzip that inflates past the limit (a bomb)
    "bad-gzip",  # not gzip, or corrupt
    "bad-json",  # not UTF-8 JSON
    "too-complex",  # nesting or element count over the limits (a JSON bomb)
    "invalid-report",  # JSON, but not an RFC 8460 report (missing field, wrong type, ...)
    "content-type",  # not application/tlsrpt+gzip or +json
    "not-a-report",  # a mail without a TLS-RPT attachment
    "duplicate",  # a report-id already counted
    "unreadable",  # a file that cannot be read
)
#: The largest session count taken (a report claiming more is refused): 10^12.
MAX_COUNT = 10**12
MAX_ORGANIZATIONS = 50
ORGANIZATION_CHARS = 64
MAX_DOMAINS = 100
MAX_STRING = 4096  # any one string field of a report


class ReportError(ValueError):
    """A report that cannot be taken; ``reason`` is one of :data:`REFUSAL_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REFUSAL_REASONS, reason
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Bounds on one report. ``raw``: bytes as received (a gzip, a JSON text or a mail);
    ``decompressed``: bytes of JSON after gunzip; ``depth``: JSON nesting; ``elements``:
    values in all arrays and objects together."""

    raw: int = 1 << 20
    decompressed: int = 10 << 20
    depth: int = 16
    elements: int = 200_000


LIMITS = Limits()
#: Files and mails read by ``dane-monitor tlsrpt import``: a mail carries the report in
#: base64, a third larger than the gzip.
FILE_LIMITS = Limits(raw=16 << 20)


@dataclass(frozen=True)
class FailureDetail:
    """One ``failure-details`` entry (RFC 8460, 4.4)."""

    result_type: str
    failed_session_count: int
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    additional_information: str | None = None
    failure_reason_code: str | None = None


@dataclass(frozen=True)
class PolicyResult:
    """One ``policies`` entry: the policy applied, and the sessions under it."""

    policy_type: str  # tlsa | sts | no-policy-found (another value is kept, labelled other)
    policy_domain: str  # lower case, without a trailing dot
    successful: int  # total-successful-session-count
    failed: int  # total-failure-session-count
    policy_strings: tuple[str, ...] = ()
    mx_hosts: tuple[str, ...] = ()
    failure_details: tuple[FailureDetail, ...] = ()

    def failures_by_type(self) -> dict[str, int]:
        """Failed sessions per result type; what ``total-failure-session-count`` counts
        beyond its ``failure-details`` (a reporter may leave them out) is ``other``."""
        out: dict[str, int] = {}
        for detail in self.failure_details:
            out[detail.result_type] = out.get(detail.result_type, 0) + detail.failed_session_count
        rest = self.failed - sum(out.values())
        if rest > 0:
            out["other"] = out.get("other", 0) + rest
        return out


@dataclass(frozen=True)
class Report:
    """An RFC 8460 aggregate report, validated."""

    organization: str  # organization-name
    report_id: str
    start: datetime  # date-range, aware (UTC when the report gave no offset)
    end: datetime
    policies: tuple[PolicyResult, ...]
    contact_info: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "organization-name": self.organization,
            "report-id": self.report_id,
            "date-range": {"start-datetime": _iso(self.start), "end-datetime": _iso(self.end)},
            "policies": [
                {
                    "policy-type": p.policy_type,
                    "policy-domain": p.policy_domain,
                    "total-successful-session-count": p.successful,
                    "total-failure-session-count": p.failed,
                    "failures": p.failures_by_type(),
                }
                for p in self.policies
            ],
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- bytes to JSON ---------------------------------------------------------------------------


def decompress(data: bytes, limit: int) -> bytes:
    """The gunzipped ``data`` (one or more gzip members), at most ``limit`` bytes.

    Inflated in steps with ``max_length``, so a bomb costs ``limit`` bytes of memory and
    the time to inflate them, then stops.

    :raises ReportError: not gzip or corrupt (``bad-gzip``), or larger than ``limit``
        (``decompressed-too-large``).
    """
    if data[:2] != b"\x1f\x8b":
        raise ReportError("bad-gzip", "not gzip data (no gzip magic number)")
    out: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            pending = rest
            while not inflater.eof:
                if not pending:
                    raise ReportError("bad-gzip", "gzip data ends early (truncated)")
                piece = inflater.decompress(pending, limit + 1 - size)
                size += len(piece)
                if size > limit:
                    raise ReportError(
                        "decompressed-too-large",
                        f"the gzip inflates to more than {_bytes(limit)} (refused)",
                    )
                out.append(piece)
                pending = inflater.unconsumed_tail
            rest = inflater.unused_data
            if rest and rest[:2] != b"\x1f\x8b":
                if rest.strip(b"\0"):
                    raise ReportError("bad-gzip", "data after the end of the gzip stream")
                break
    except zlib.error as exc:
        raise ReportError("bad-gzip", f"corrupt gzip data: {exc}") from None
    return b"".join(out)


# A string, or an unterminated one to the end of the text: every match from a quote succeeds,
# so the scan is linear (a pattern that can fail at the end retries from every later quote:
# quadratic on '"' followed by many escaped quotes).
_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def parse_json(data: bytes, limits: Limits = LIMITS) -> Any:
    """``data`` as JSON (UTF-8), its shape checked before :mod:`json` builds anything.

    :raises ReportError: ``bad-json`` or ``too-complex``.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError("bad-json", f"not UTF-8 text (byte {exc.start})") from None
    # Strings out of the way (their brackets and commas are not structure), then count.
    skeleton = _STRING.sub('""', text)
    brackets = _NOT_BRACKET.sub("", skeleton)
    if len(brackets) // 2 + skeleton.count(",") > limits.elements:
        raise ReportError(
            "too-complex", f"more than {limits.elements} JSON values (refused unparsed)"
        )
    steps = (1 if c in "[{" else -1 for c in brackets)
    if max(accumulate(steps, initial=0)) > limits.depth:
        raise ReportError(
            "too-complex", f"JSON nested deeper than {limits.depth} levels (refused unparsed)"
        )
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReportError("bad-json", f"not valid JSON: {first[:200]}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_report(data: bytes, *, gzipped: bool | None = None, limits: Limits = LIMITS) -> Report:
    """The report in ``data``: gzip (``gzipped``; None: by its magic number) of JSON, or JSON.

    :raises ReportError: for anything that is not a valid report within ``limits``.
    """
    if len(data) > limits.raw:
        raise ReportError("too-large", f"report larger than {_bytes(limits.raw)}")
    if gzipped is None:
        gzipped = data[:2] == b"\x1f\x8b"
    if gzipped:
        data = decompress(data, limits.decompressed)
    elif len(data) > limits.decompressed:
        raise ReportError("too-large", f"report larger than {_bytes(limits.decompressed)}")
    return report_from_json(parse_json(data, limits))


# -- JSON to a report ------------------------------------------------------------------------


class _Path:
    """Where in the report a value is, for the error message (``policies[2].summary``)."""

    def __init__(self, where: str = "") -> None:
        self.where = where

    def __truediv__(self, key: str | int) -> _Path:
        if isinstance(key, int):
            return _Path(f"{self.where}[{key}]")
        return _Path(f"{self.where}.{key}" if self.where else key)

    def fail(self, message: str) -> ReportError:
        return ReportError("invalid-report", f"{self.where or 'the report'}: {message}")


def _object(value: Any, at: _Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.fail(f"must be an object, not {_kind(value)}")
    return value


_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "true/false",
          int: "a number", float: "a number", type(None): "null"}  # fmt: skip


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), "a value")


def _required(obj: dict[str, Any], key: str, at: _Path) -> Any:
    if key not in obj:
        raise at.fail(f"{key} is missing")
    return obj[key]


def _string(value: Any, at: _Path, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise at.fail(f"must be a string, not {_kind(value)}")
    if not empty and not value.strip():
        raise at.fail("must not be empty")
    if len(value) > MAX_STRING:
        raise at.fail(f"longer than {MAX_STRING} characters")
    return value


def _optional_string(obj: dict[str, Any], key: str, at: _Path) -> str | None:
    value = obj.get(key)
    return None if value is None else _string(value, at / key, empty=True)


def _count(value: Any, at: _Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise at.fail(f"must be a whole number, not {_kind(value)}")
    if not 0 <= value <= MAX_COUNT:
        raise at.fail(f"{value} is out of range (0 to {MAX_COUNT})")
    return value


def _strings(value: Any, at: _Path) -> tuple[str, ...]:
    """A string or an array of strings (``mx-host`` is either in reports seen in use)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (_string(value, at, empty=True),)
    if not isinstance(value, list):
        raise at.fail(f"must be an array of strings, not {_kind(value)}")
    return tuple(_string(v, at / i, empty=True) for i, v in enumerate(value))


def _datetime(value: Any, at: _Path) -> datetime:
    text = _string(value, at)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise at.fail(f"not an RFC 3339 date-time: {text[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                     r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")  # fmt: skip


def _domain(value: Any, at: _Path) -> str:
    name = _string(value, at).strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise at.fail(f"not a domain name: {name[:60]!r}") from None
    if not _DOMAIN.match(name):
        raise at.fail(f"not a domain name: {name[:60]!r}")
    return name


def report_from_json(document: Any) -> Report:
    """The :class:`Report` in a parsed JSON ``document`` (RFC 8460, 4.4), checked field by
    field: required fields present, types right, counts whole numbers from 0 to
    :data:`MAX_COUNT`, the date range in order. Fields the RFC does not define are ignored.

    :raises ReportError: ``invalid-report``, naming the field.
    """
    root = _Path()
    top = _object(document, root)
    organization = _string(_required(top, "organization-name", root), root / "organization-name")
    report_id = _string(_required(top, "report-id", root), root / "report-id")
    at = root / "date-range"
    dates = _object(_required(top, "date-range", root), at)
    start = _datetime(_required(dates, "start-datetime", at), at / "start-datetime")
    end = _datetime(_required(dates, "end-datetime", at), at / "end-datetime")
    if end < start:
        raise at.fail("end-datetime is before start-datetime")
    contact = _optional_string(top, "contact-info", root)
    at = root / "policies"
    entries = _required(top, "policies", root)
    if not isinstance(entries, list):
        raise at.fail(f"must be an array, not {_kind(entries)}")
    if not entries:
        raise at.fail("must name at least one policy")
    policies = tuple(_policy(entry, at / i) for i, entry in enumerate(entries))
    return Report(organization, report_id, start, end, policies, contact)


def _policy(value: Any, at: _Path) -> PolicyResult:
    entry = _object(value, at)
    pat = at / "policy"
    policy = _object(_required(entry, "policy", at), pat)
    policy_type = _string(_required(policy, "policy-type", pat), pat / "policy-type")
    domain = _domain(_required(policy, "policy-domain", pat), pat / "policy-domain")
    strings = _strings(policy.get("policy-string"), pat / "policy-string")
    mx_hosts = _strings(policy.get("mx-host"), pat / "mx-host")
    sat = at / "summary"
    summary = _object(_required(entry, "summary", at), sat)
    key = "total-successful-session-count"
    successful = _count(_required(summary, key, sat), sat / key)
    key = "total-failure-session-count"
    failed = _count(_required(summary, key, sat), sat / key)
    dat = at / "failure-details"
    raw_details = entry.get("failure-details")
    if raw_details is None:
        raw_details = []
    if not isinstance(raw_details, list):
        raise dat.fail(f"must be an array, not {_kind(raw_details)}")
    details = tuple(_detail(d, dat / i) for i, d in enumerate(raw_details))
    return PolicyResult(policy_type.strip().lower(), domain, successful, failed, strings,
                        mx_hosts, details)  # fmt: skip


def _detail(value: Any, at: _Path) -> FailureDetail:
    entry = _object(value, at)
    result_type = _string(_required(entry, "result-type", at), at / "result-type")
    count = _count(_required(entry, "failed-session-count", at), at / "failed-session-count")
    return FailureDetail(
        result_type.strip().lower(),
        count,
        sending_mta_ip=_optional_string(entry, "sending-mta-ip", at),
        receiving_mx_hostname=_optional_string(entry, "receiving-mx-hostname", at),
        receiving_mx_helo=_optional_string(entry, "receiving-mx-helo", at),
        receiving_ip=_optional_string(entry, "receiving-ip", at),
        additional_information=_optional_string(entry, "additional-information", at),
        failure_reason_code=_optional_string(entry, "failure-reason-code", at),
    )


# -- the mail form ---------------------------------------------------------------------------

#: Parts of a mail looked at, at most: a report has two or three.
MAX_PARTS = 64
#: Lines starting with "--" (MIME boundaries) and header lines a mail may have.
MAX_BOUNDARIES = 1000
MAX_HEADER_LINES = 2000


def parse_message(data: bytes, limits: Limits = FILE_LIMITS) -> list[Report]:
    """The reports attached to a mail (RFC 8460, 5.3: ``multipart/report;
    report-type=tlsrpt`` with an ``application/tlsrpt+gzip`` or ``+json`` part; a part
    typed ``application/gzip``, ``application/json`` or ``application/octet-stream`` whose
    file name ends in ``.json.gz`` or ``.json`` is taken too, as some reporters send them).

    :raises ReportError: ``not-a-report`` when no part is a report; the first bad
        report's error otherwise.
    """
    if len(data) > limits.raw:
        raise ReportError("too-large", f"mail larger than {_bytes(limits.raw)}")
    # What makes the email package slow (seconds for a few MiB) is refused before it parses:
    # many MIME parts, or many header lines.
    if data.count(b"\n--") > MAX_BOUNDARIES:
        raise ReportError("too-complex", f"more than {MAX_BOUNDARIES} MIME boundary lines")
    head = re.split(rb"\r?\n\r?\n", data[: 1 << 20], maxsplit=1)[0]
    if head.count(b"\n") > MAX_HEADER_LINES:
        raise ReportError("too-complex", f"more than {MAX_HEADER_LINES} header lines")
    try:
        message = email.message_from_bytes(data, policy=email.policy.compat32)
        found = []
        for n, part in enumerate(message.walk()):
            if n >= MAX_PARTS:
                break
            gzipped = _report_part(part)
            if gzipped is not None:
                payload = part.get_payload(decode=True)
                found.append((gzipped, payload if isinstance(payload, bytes) else b""))
    except ReportError:
        raise
    except Exception as exc:  # the email package on hostile input: any error is "unreadable"
        raise ReportError("not-a-report", f"unreadable mail: {type(exc).__name__}") from None
    if not found:
        raise ReportError("not-a-report", "the mail has no application/tlsrpt+gzip or +json part")
    return [parse_report(payload, gzipped=gzipped, limits=limits) for gzipped, payload in found]


def _report_part(part: Message) -> bool | None:
    """Whether ``part`` is a gzip report (True), a JSON one (False) or none (None)."""
    kind = part.get_content_type().lower()
    if kind in CONTENT_TYPES:
        return CONTENT_TYPES[kind]
    if kind in ("application/gzip", "application/x-gzip", "application/json",
                "application/octet-stream"):  # fmt: skip
        name = (part.get_filename() or "").lower()
        if name.endswith((".json.gz", ".gz")):
            return True
        if name.endswith(".json"):
            return False
    return None


def media_type(header: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return (header or "").split(";", 1)[0].strip().lower()


def read_reports(data: bytes, limits: Limits = FILE_LIMITS) -> list[Report]:
    """The reports in a file's ``data``, whatever it is: a gzip, JSON, or a mail."""
    if len(data) > limits.raw:
        raise ReportError("too-large", f"larger than {_bytes(limits.raw)}")
    if data[:2] == b"\x1f\x8b":
        return [parse_report(data, gzipped=True, limits=limits)]
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return [parse_report(data, gzipped=False, limits=limits)]
    return parse_message(data, limits)


# -- counting --------------------------------------------------------------------------------


def _printable(text: str) -> str:
    kept = "".join(c if c.isprintable() else " " for c in text[:1024])
    return " ".join(kept.split())[:ORGANIZATION_CHARS] or "unknown"


@dataclass
class Tally:
    """Reports counted into the ``dane_tlsrpt_*`` series, with bounded labels.

    ``domains``: the domains that get their own ``domain`` label (a report's policy-domain
    matched case-insensitively, without the trailing dot); any other is ``other``. None:
    any domain, the first ``max_domains`` of them. ``remembered``: (organization-name,
    report-id) pairs kept to count a report once (the oldest forgotten first).
    """

    domains: Collection[str] | None = None
    max_domains: int = MAX_DOMAINS
    max_organizations: int = MAX_ORGANIZATIONS
    remembered: int = 100_000
    successful: dict[tuple[str, str, str], int] = field(default_factory=dict)
    failed: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    last: dict[tuple[str, str], float] = field(default_factory=dict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)
    _domains: set[str] = field(default_factory=set, repr=False)
    _organizations: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.set_domains(self.domains)

    def set_domains(self, domains: Collection[str] | None) -> None:
        """Change which domains get a label (the exporter's targets after a reload)."""
        self.domains = None if domains is None else {d.rstrip(".").lower() for d in domains}

    def domain_label(self, domain: str) -> str:
        if self.domains is not None:
            return domain if domain in self.domains else "other"
        if domain in self._domains:
            return domain
        if len(self._domains) < self.max_domains:
            self._domains.add(domain)
            return domain
        return "other"

    def organization_label(self, name: str) -> str:
        label = _printable(name)
        if label in self._organizations:
            return label
        if len(self._organizations) < self.max_organizations and label != "other":
            self._organizations.add(label)
            return label
        return "other"

    def add(self, report: Report) -> bool:
        """Count ``report``; False (and counted as refused ``duplicate``) when a report
        with its organization-name and report-id was counted before."""
        # A report-id is unique among its author's reports (RFC 8460, 4.4), and some authors
        # make it of the date and the domain: another organisation's may be the same.
        key = f"{report.organization}\0{report.report_id}"
        if key in self._seen:
            self._seen.move_to_end(key)
            self.refuse("duplicate")
            return False
        self._seen[key] = None
        while len(self._seen) > self.remembered:
            self._seen.popitem(last=False)
        org = self.organization_label(report.organization)
        self.reports[org] = self.reports.get(org, 0) + 1
        end = report.end.timestamp()
        for policy in report.policies:
            domain = self.domain_label(policy.policy_domain)
            ptype = policy.policy_type if policy.policy_type in POLICY_TYPES else "other"
            skey = (domain, org, ptype)
            self.successful[skey] = self.successful.get(skey, 0) + policy.successful
            for result_type, count in policy.failures_by_type().items():
                rtype = result_type if result_type in RESULT_TYPES else "other"
                fkey = (domain, org, ptype, rtype)
                self.failed[fkey] = self.failed.get(fkey, 0) + count
            if self.last.get((domain, org), float("-inf")) < end:
                self.last[(domain, org)] = end
        return True

    def refuse(self, reason: str) -> None:
        assert reason in REFUSAL_REASONS, reason
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def families(self) -> list[Metric]:
        """The ``dane_tlsrpt_*`` families (every one, even while empty)."""
        ok = CounterMetricFamily(
            "dane_tlsrpt_successful_sessions",
            "TLS sessions that senders report as successful (RFC 8460 reports)",
            labels=["domain", "organization", "policy_type"],
        )
        for labels, value in sorted(self.successful.items()):
            ok.add_metric(labels, value)
        bad = CounterMetricFamily(
            "dane_tlsrpt_failed_sessions",
            "TLS sessions that senders report as failed, by RFC 8460 result type",
            labels=["domain", "organization", "policy_type", "result_type"],
        )
        for flabels, value in sorted(self.failed.items()):
            bad.add_metric(flabels, value)
        reports = CounterMetricFamily(
            "dane_tlsrpt_reports", "TLS-RPT reports counted", labels=["organization"]
        )
        for org, value in sorted(self.reports.items()):
            reports.add_metric([org], value)
        refused = CounterMetricFamily(
            "dane_tlsrpt_reports_refused",
            "TLS-RPT reports not counted, by reason (duplicate: a report-id counted before)",
            labels=["reason"],
        )
        for reason, value in sorted(self.refused.items()):
            refused.add_metric([reason], value)
        last = GaugeMetricFamily(
            "dane_tlsrpt_last_report_timestamp_seconds",
            "End of the date range of the latest TLS-RPT report per domain and reporter",
            labels=["domain", "organization"],
        )
        for llabels, stamp in sorted(self.last.items()):
            last.add_metric(llabels, stamp)
        return [ok, bad, reports, refused, last]

    def render(self) -> bytes:
        """The families in the Prometheus text format (the textfile collector's input)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(self.families()))
        return generate_latest(registry)

    def rows(self) -> Iterator[tuple[str, str, str, str, int]]:
        """(domain, organization, policy type, result, sessions): ``successful`` or a
        result type, sorted."""
        for (domain, org, ptype), count in self.successful.items():
            yield domain, org, ptype, "successful", count
        for (domain, org, ptype, rtype), count in self.failed.items():
            yield domain, org, ptype, rtype, count


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return iter(self.metrics)


# -- sizes -----------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "ki": 1 << 10,
          "m": 10**6, "mb": 10**6, "mib": 1 << 20, "mi": 1 << 20,
          "g": 10**9, "gb": 10**9, "gib": 1 << 30, "gi": 1 << 30}  # fmt: skip


def parse_size(value: Any) -> int:
    """A size in bytes: a whole number, or with a unit (``64KiB``, ``1MiB``, ``2MB``)."""
    if isinstance(value, bool):
        raise ValueError(f"a size such as 1MiB, not {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"a size such as 1MiB or 65536, not {value!r}")
        size = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if not 1 <= size <= 1 << 30:
        raise ValueError(f"a size from 1 byte to 1GiB, not {value!r}")
    return size


def _bytes(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"
