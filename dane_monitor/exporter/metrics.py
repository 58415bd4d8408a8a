"""From check results to Prometheus metrics: the vocabulary, and the collectors that render it.

The mapping is pure: :func:`samples` turns one check result into ``(family, label values,
value)`` triples. Two renderers read them, and a test holds them equal:

- :class:`ResultCollector` / :func:`families`, a prometheus_client collector (``/probe``,
  one target, a fresh registry per request);
- :func:`render_text` for ``/metrics``: each outcome's sample lines are formatted once, when
  its check finishes (:func:`render_chunks`), and a scrape only joins the chunks of the
  outcomes present *at scrape time*, family by family. A target removed from the
  configuration has no series on the next scrape, and 10,000 targets scrape in well under
  a second instead of the ~18 s prometheus_client needs to format 800,000 samples.

Label values are names, ports, addresses, codes and statuses: never free text, and never a
digest except on ``dane_cert_info``. The table in ``docs/exporter.md`` is the reference.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from dane_monitor import __version__
from dane_monitor.report import DomainResult, SenderAction, Severity, Verdict

VERDICTS = tuple(v.value for v in Verdict)
ACTIONS = tuple(a.value for a in SenderAction)
DNS_STATUSES = ("secure", "insecure", "bogus", "indeterminate")


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    labels: tuple[str, ...]


_T = ("target",)
_HOST = ("target", "mx", "port")
_ADDR = ("target", "mx", "address", "port")
_EP = ("target", "mx", "address", "port", "key_type")

FAMILIES: tuple[Family, ...] = (
    Family("dane_check_success", "1 when the last check reached a verdict other than error "
           "(0: timeout, resolver down, no endpoint reachable: could not decide)", _T),
    Family("dane_verdict", "State set: 1 for the target's current verdict, 0 for the others", (
        *_T, "verdict")),
    Family("dane_check_duration_seconds", "Wall-clock duration of the last check", _T),
    Family("dane_last_check_timestamp_seconds", "When the last check finished (Unix time)", _T),
    Family("dane_findings", "Findings of this code and severity in the last check", (
        *_T, "code", "severity")),
    Family("dane_dnssec_secure", "State set over the DNSSEC status of each lookup the check made",
           (*_T, "name", "rrtype", "status")),
    Family("dane_dns_failure", "1 for a lookup that was bogus or indeterminate, with the reason "
           "code", (*_T, "name", "rrtype", "reason")),
    Family("dane_rrsig_expiry_timestamp_seconds", "Earliest RRSIG expiration on the validation "
           "path a sender walks to this MX host and port: MX RRset, addresses, TLSA RRset "
           "(mx=\"\" when there is no host: null or bogus MX)", _HOST),
    Family("dane_mx_verdict", "State set: the verdict of each MX host and port", (
        *_HOST, "verdict")),
    Family("dane_sender_action", "State set: what a DANE-enforcing sender does with the MX host "
           "(worst over its endpoints); all 0 when undetermined", (*_HOST, "action")),
    Family("dane_tlsa_records", "TLSA records in the secure RRset, usable for SMTP or not "
           "(present only when the TLSA lookup was secure)", (*_HOST, "usable")),
    Family("dane_tlsa_ttl_seconds", "TTL of the secure TLSA RRset", _HOST),
    Family("dane_starttls_offered", "1 when the server advertised STARTTLS in its EHLO reply, 0 "
           "when it answered EHLO without it (absent when the dialogue ended before EHLO was "
           "answered, and on port 465, which is implicit TLS)", _ADDR),
    Family("dane_tlsa_match", "1 when a usable TLSA record authenticates the chain this endpoint "
           "presented, 0 when it does not (present only where usable TLSA records apply and a "
           "chain was presented)", _EP),
    Family("dane_cert_not_after_timestamp_seconds", "notAfter of the presented leaf certificate",
           _EP),
    Family("dane_cert_info", "1 per presented leaf: its SPKI SHA-256 (the 3 1 1 association "
           "data)", (*_EP, "spki_sha256")),
)  # fmt: skip

BY_NAME = {f.name: f for f in FAMILIES}


@dataclass(frozen=True)
class Outcome:
    """A target's latest check, as the exporter keeps it."""

    target: str  # the target label
    kind: str  # domain | mx
    result: DomainResult
    success: bool
    failure: str | None  # why success is 0: "timeout", "exception" or an error finding code
    finished: float  # Unix time
    duration: float
    samples: tuple[tuple[str, tuple[str, ...], float], ...] = field(default=(), repr=False)
    chunks: dict[str, bytes] = field(default_factory=dict, repr=False)  # family → its lines


def failure_reason(result: DomainResult) -> str | None:
    """None when the check decided; else the code of its first error finding (bounded)."""
    if result.verdict != Verdict.ERROR:
        return None
    for finding in result.all_findings():
        if finding.severity == Severity.ERROR:
            return finding.code
    return "undecided"


def _name(text: str | None) -> str:
    return (text or "").rstrip(".")


def samples(
    target: str, result: DomainResult, *, success: bool, finished: float, duration: float
) -> list[tuple[str, tuple[str, ...], float]]:
    """Every sample one check contributes, in :data:`FAMILIES` order per family."""
    out: list[tuple[str, tuple[str, ...], float]] = []
    add = out.append
    t = target
    add(("dane_check_success", (t,), 1.0 if success else 0.0))
    for v in VERDICTS:
        add(("dane_verdict", (t, v), 1.0 if result.verdict.value == v else 0.0))
    add(("dane_check_duration_seconds", (t,), duration))
    add(("dane_last_check_timestamp_seconds", (t,), finished))

    counts: dict[tuple[str, str], int] = {}
    for f in result.all_findings():
        key = (f.code, f.severity.value)
        counts[key] = counts.get(key, 0) + 1
    for (code, severity), n in sorted(counts.items()):
        add(("dane_findings", (t, code, severity), float(n)))

    lookups = [result.mx_dns] if result.mx_dns is not None else []
    for host in result.hosts:
        lookups += host.dns
    seen: set[tuple[str, str]] = set()
    for info in lookups:
        key = (_name(info.name), info.rrtype)
        if key in seen:
            continue
        seen.add(key)
        for status in DNS_STATUSES:
            add(("dane_dnssec_secure", (t, *key, status), 1.0 if info.status == status else 0.0))
        if info.status in ("bogus", "indeterminate"):
            add(("dane_dns_failure", (t, *key, info.reason or "unknown"), 1.0))

    mx_expiry = result.mx_dns.rrsig_expiration if result.mx_dns is not None else None
    if not result.hosts and result.rrsig_expiration is not None:
        add(("dane_rrsig_expiry_timestamp_seconds", (t, "", ""), float(result.rrsig_expiration)))
    if not result.hosts and result.sender_action is not None:
        # A failure before any MX host (a bogus or unanswered MX RRset): senders defer for
        # the whole domain, and the defer alert must see it (mx="" and port="").
        action = result.sender_action.value
        for a in ACTIONS:
            add(("dane_sender_action", (t, "", "", a), 1.0 if action == a else 0.0))
    for host in result.hosts:
        mx, port = _name(host.name), str(host.port)
        expiry = [e for e in (mx_expiry, host.rrsig_expiration) if e is not None]
        if expiry:
            add(("dane_rrsig_expiry_timestamp_seconds", (t, mx, port), float(min(expiry))))
        for v in VERDICTS:
            add(("dane_mx_verdict", (t, mx, port, v), 1.0 if host.verdict.value == v else 0.0))
        action = host.sender_action.value if host.sender_action else None
        for a in ACTIONS:
            add(("dane_sender_action", (t, mx, port, a), 1.0 if action == a else 0.0))
        tlsa = host.tlsa_dns
        if tlsa is not None and tlsa.status == "secure":
            usable = host.tlsa_usable
            add(("dane_tlsa_records", (t, mx, port, "true"), float(usable)))
            unusable = len(host.tlsa_records) - usable
            add(("dane_tlsa_records", (t, mx, port, "false"), float(unusable)))
        if host.tlsa_ttl is not None:
            add(("dane_tlsa_ttl_seconds", (t, mx, port), float(host.tlsa_ttl)))

        starttls: dict[str, bool] = {}
        for ep in host.endpoints:
            if host.port == 465:
                break  # implicit TLS: nothing to offer
            if ep.starttls_offered or ep.probe_error == "starttls-missing":
                starttls[ep.address] = starttls.get(ep.address, False) or bool(ep.starttls_offered)
        for address, offered in starttls.items():
            add(("dane_starttls_offered", (t, mx, address, port), 1.0 if offered else 0.0))
        applies = host.dane_applies and host.tlsa_usable > 0
        for ep in host.endpoints:
            if not ep.chain_der and not ep.leaf_spki_sha256:
                continue
            labels = (t, mx, ep.address, port, ep.key_type or "unknown")
            if applies and ep.authenticated is not None:
                add(("dane_tlsa_match", labels, 1.0 if ep.authenticated else 0.0))
            if ep.leaf_not_after is not None:
                add(("dane_cert_not_after_timestamp_seconds", labels, float(ep.leaf_not_after)))
            if ep.leaf_spki_sha256:
                add(("dane_cert_info", (*labels, ep.leaf_spki_sha256), 1.0))
    return out


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_chunks(points: Iterable[tuple[str, tuple[str, ...], float]]) -> dict[str, bytes]:
    """The text-format lines of ``points``, grouped by family (format 0.0.4)."""
    lines: dict[str, list[str]] = {}
    for name, labels, value in points:
        names = BY_NAME[name].labels
        inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in zip(names, labels, strict=True))
        lines.setdefault(name, []).append(f"{name}{{{inner}}} {floatToGoString(value)}\n")
    return {name: "".join(chunk).encode() for name, chunk in lines.items()}


_HEADERS = {
    f.name: f"# HELP {f.name} {f.help.replace(chr(92), 2 * chr(92))}\n# TYPE {f.name} gauge\n"
    for f in FAMILIES
}


def render_text(outcomes: Iterable[Outcome]) -> bytes:
    """The result families of ``outcomes`` in the text format, from their pre-rendered chunks."""
    outcomes = list(outcomes)
    parts: list[bytes] = []
    for f in FAMILIES:
        parts.append(_HEADERS[f.name].encode())
        for outcome in outcomes:
            chunk = outcome.chunks.get(f.name)
            if chunk:
                parts.append(chunk)
    return b"".join(parts)


def families(outcomes: Iterable[Outcome]) -> list[Metric]:
    """Gauge families holding the samples of ``outcomes`` (targets in the order given)."""
    built = {f.name: GaugeMetricFamily(f.name, f.help, labels=f.labels) for f in FAMILIES}
    for outcome in outcomes:
        for name, labels, value in outcome.samples:
            built[name].add_metric(labels, value)
    return list(built.values())


class ResultCollector(Collector):
    """The latest outcome of each configured target, read at each scrape."""

    def __init__(self, outcomes: Callable[[], Iterable[Outcome]]) -> None:
        self._outcomes = outcomes

    def collect(self) -> Iterator[Metric]:
        yield from families(self._outcomes())


# -- the exporter's own metrics -----------------------------------------------------------------

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class Stats:
    """Counters of the exporter itself; rendered by :class:`SelfCollector`."""

    checks: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    duration_buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    cycles: int = 0
    last_cycle_seconds: float | None = None
    probes: int = 0
    probes_denied: int = 0
    http: dict[tuple[str, str], int] = field(default_factory=dict)
    reload_ok: bool = True
    reload_ok_at: float = 0.0
    reloads_failed: int = 0

    def check_done(self, outcome: Outcome) -> None:
        self.checks += 1
        if outcome.failure is not None:
            self.failures[outcome.failure] = self.failures.get(outcome.failure, 0) + 1
        self.duration_sum += outcome.duration
        for i, bound in enumerate(DURATION_BUCKETS):
            if outcome.duration <= bound:
                self.duration_buckets[i] += 1

    def request(self, handler: str, code: int) -> None:
        key = (handler, str(code))
        self.http[key] = self.http.get(key, 0) + 1


class SelfCollector(Collector):
    def __init__(
        self,
        stats: Stats,
        targets: Callable[[], Mapping[str, int]],
        cache: Callable[[], tuple[int, int, int] | None] = lambda: None,
    ) -> None:
        self.stats = stats
        self._targets = targets
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        info = GaugeMetricFamily(
            "dane_exporter_build_info",
            "dane-monitor version and Python version of the exporter",
            labels=("version", "python_version"),
        )
        info.add_metric((__version__, ".".join(map(str, sys.version_info[:3]))), 1)
        yield info
        targets = GaugeMetricFamily(
            "dane_exporter_targets", "Configured targets, by kind", labels=("kind",)
        )
        counts = self._targets()
        for kind in ("domain", "mx"):
            targets.add_metric((kind,), counts.get(kind, 0))
        yield targets
        yield CounterMetricFamily("dane_exporter_checks", "Background checks run", value=s.checks)
        failures = CounterMetricFamily(
            "dane_exporter_check_failures",
            "Background checks that reached no verdict (dane_check_success 0), by reason: "
            "timeout, exception, or the code of the first error finding",
            labels=("reason",),
        )
        # The reasons every exporter has are exposed from the start (0), so that rate()
        # and absent-series alerts work before the first failure.
        counts = {"exception": 0, "timeout": 0, **s.failures}
        for reason, n in sorted(counts.items()):
            failures.add_metric((reason,), n)
        yield failures
        yield GaugeMetricFamily(
            "dane_exporter_checks_in_flight", "Checks running now", value=s.in_flight
        )
        hist = HistogramMetricFamily(
            "dane_exporter_check_duration_seconds", "Duration of background checks"
        )
        hist.add_metric(
            [],
            [(str(b), n) for b, n in zip(DURATION_BUCKETS, s.duration_buckets, strict=True)]
            + [("+Inf", s.checks)],
            s.duration_sum,
        )
        yield hist
        yield CounterMetricFamily(
            "dane_exporter_cycles",
            "Completed cycles: passes in which every configured target was checked once",
            value=s.cycles,
        )
        if s.last_cycle_seconds is not None:
            yield GaugeMetricFamily(
                "dane_exporter_cycle_duration_seconds",
                "How long the last cycle took, from its start until every target had been "
                "checked: the worst-case age of a result",
                value=s.last_cycle_seconds,
            )
        yield CounterMetricFamily("dane_exporter_probes", "/probe checks run", value=s.probes)
        yield CounterMetricFamily(
            "dane_exporter_probes_denied",
            "/probe requests refused because the target is not allowed",
            value=s.probes_denied,
        )
        http = CounterMetricFamily(
            "dane_exporter_http_requests",
            "HTTP requests served, by handler and status code",
            labels=("handler", "code"),
        )
        for (handler, code), n in sorted(s.http.items()):
            http.add_metric((handler, code), n)
        yield http
        yield GaugeMetricFamily(
            "dane_exporter_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded",
            value=1 if s.reload_ok else 0,
        )
        yield GaugeMetricFamily(
            "dane_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (Unix time)",
            value=s.reload_ok_at,
        )
        cache = self._cache()
        if cache is not None:
            entries, hits, misses = cache
            yield GaugeMetricFamily(
                "dane_exporter_dns_cache_entries",
                "Responses in the shared DNS cache",
                value=entries,
            )
            yield CounterMetricFamily("dane_exporter_dns_cache_hits", "DNS cache hits", value=hits)
            yield CounterMetricFamily(
                "dane_exporter_dns_cache_misses", "DNS cache misses", value=misses
            )


def probe_families(success: bool, duration: float) -> list[Metric]:
    return [
        GaugeMetricFamily(
            "dane_probe_success",
            "1 when the check reached a verdict other than error within the deadline",
            value=1 if success else 0,
        ),
        GaugeMetricFamily("dane_probe_duration_seconds", "How long the check took", value=duration),
    ]
