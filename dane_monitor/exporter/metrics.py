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

Two profiles (``metrics: {profile: ...}`` in the configuration): ``full`` (the default) is
every sample above; ``lean``, for large fleets, keeps what the alert rules in ``grafana/``
read and the detail of the MX hosts that have a problem. A healthy target has at most
:data:`LEAN_HEALTHY_MAX` series in lean (see :func:`samples`), and a kept result is cut to
what the landing page shows (:func:`lean_result`).

The exporter's own metrics (:class:`Stats`) are prometheus_client ``Counter``, ``Gauge`` and
``Histogram`` objects on the exporter's :class:`SelfRegistry`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from dane_monitor import __version__
from dane_monitor.report import (
    DomainResult,
    EndpointResult,
    Finding,
    HostResult,
    SenderAction,
    Severity,
    Verdict,
)

PROFILES = ("full", "lean")
# The most series a healthy target has in the lean profile: success, verdict, duration, last
# check, earliest signature expiry, earliest certificate expiry and up to four findings (a
# valid domain has at most three today: tlsa-no-rollover, cert-expiring, tlsrpt-missing).
# tests hold it.
LEAN_HEALTHY_MAX = 10

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
# At most 8 servers x 2 addresses per zone (dane_monitor.nameservers): bounded.
_NS = ("target", "zone", "nameserver", "address")

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
    Family("dane_sender_profile_action", "1 for the action each sender profile takes with the "
           "MX host (dane_monitor.profiles: rfc7672, postfix, exim-gnutls, …; action as "
           "dane_sender_action, or unknown); mx=\"\" and port=\"\": with the whole target, "
           "when no MX host was judged", (*_HOST, "profile", "action")),
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
    Family("dane_nameserver_state", "1 for the state of each authoritative server address of "
           "a zone on the check's path, asked directly: ok, lame, timeout, unreachable, "
           "no-route, malformed, no-address", (*_NS, "state")),
    Family("dane_nameserver_soa_serial", "SOA serial an authoritative server address serves",
           _NS),
    Family("dane_nameserver_rrsig_expiry_timestamp_seconds", "Earliest RRSIG expiration over "
           "what an authoritative server address served for the check (Unix time)", _NS),
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


Sample = tuple[str, tuple[str, ...], float]


def samples(
    target: str,
    result: DomainResult,
    *,
    success: bool,
    finished: float,
    duration: float,
    profile: str = "full",
) -> list[Sample]:
    """Every sample one check contributes, in :data:`FAMILIES` order per family.

    ``profile="lean"``: see :func:`lean_samples`.
    """
    if profile == "lean":
        return lean_samples(target, result, success=success, finished=finished, duration=duration)
    if profile != "full":
        raise ValueError(f"unknown metrics profile {profile!r}")
    out: list[Sample] = []
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
        domain_action = result.sender_action.value
        for a in ACTIONS:
            add(("dane_sender_action", (t, "", "", a), 1.0 if domain_action == a else 0.0))
    if not result.hosts:
        # The whole target's sender profiles where no MX host was judged (a bogus MX RRset:
        # what each kind of sender does, dane_monitor.profiles.predict_domain), mx="" and
        # port="" as above; with hosts, theirs below say it.
        for name, p in result.profiles.items():
            add(("dane_sender_profile_action", (t, "", "", name, p["action"]), 1.0))
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
        for name, p in host.profiles.items():  # the current action only: 6 series a host
            add(("dane_sender_profile_action", (t, mx, port, name, p["action"]), 1.0))
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
    for zone in (result.nameservers or {}).get("zones", ()):
        z = _name(zone["zone"]) or "."
        for server in zone["servers"]:
            at = (t, z, _name(server["name"]), server["address"] or "")
            add(("dane_nameserver_state", (*at, server["state"]), 1.0))
            if server["serial"] is not None:
                add(("dane_nameserver_soa_serial", at, float(server["serial"])))
            if server["rrsig_expiration"] is not None:
                until = float(server["rrsig_expiration"])
                add(("dane_nameserver_rrsig_expiry_timestamp_seconds", at, until))
    return out


# -- the lean profile ---------------------------------------------------------------------

_TROUBLE_VERDICTS = frozenset({Verdict.FAILED, Verdict.BOGUS, Verdict.ERROR})
# Families lean keeps for every target as they are in full.
_LEAN_TARGET = frozenset({"dane_check_success", "dane_check_duration_seconds",
                          "dane_last_check_timestamp_seconds", "dane_findings",
                          "dane_dns_failure"})  # fmt: skip
# Families lean keeps for the hosts that need detail: labelled (target, mx, port, ...) ...
_LEAN_HOST = frozenset({"dane_tlsa_records", "dane_tlsa_ttl_seconds"})
# ... and (target, mx, address, port, ...).
_LEAN_ENDPOINT = frozenset({"dane_starttls_offered", "dane_tlsa_match", "dane_cert_info"})


def needs_detail(host: HostResult) -> bool:
    """Whether the lean profile shows ``host`` in detail: something about it is wrong.

    Senders defer there, its verdict is failed, bogus or error, an endpoint presents a chain
    its usable TLSA records do not match, or an address answers EHLO without STARTTLS.
    """
    if host.sender_action == SenderAction.DEFER or host.verdict in _TROUBLE_VERDICTS:
        return True
    for ep in host.endpoints:
        if ep.authenticated is False or ep.starttls_offered is False:
            return True
        if ep.probe_error == "starttls-missing":
            return True
    return False


def _earliest_cert(host: HostResult) -> tuple[float, EndpointResult] | None:
    best: tuple[float, EndpointResult] | None = None
    for ep in host.endpoints:
        if ep.leaf_not_after is None or not (ep.chain_der or ep.leaf_spki_sha256):
            continue
        if best is None or ep.leaf_not_after < best[0]:
            best = (float(ep.leaf_not_after), ep)
    return best


def lean_samples(
    target: str, result: DomainResult, *, success: bool, finished: float, duration: float
) -> list[Sample]:
    """The lean profile: what the alerts read, and detail only where something is wrong.

    Every target: ``dane_check_success``, the current ``dane_verdict`` only (value 1),
    ``dane_check_duration_seconds``, ``dane_last_check_timestamp_seconds``, its
    ``dane_findings``, any ``dane_dns_failure``, and ONE ``dane_rrsig_expiry_timestamp_seconds``
    and ONE ``dane_cert_not_after_timestamp_seconds``: the earliest over its hosts and
    endpoints, labelled with the host (and endpoint) it belongs to. ``dane_dnssec_secure`` is
    left out (the verdict and ``dane_dns_failure`` say what goes wrong).

    An MX host that :func:`needs_detail` also has its current ``dane_mx_verdict`` and
    ``dane_sender_action`` (value 1 only), ``dane_tlsa_records``, ``dane_tlsa_ttl_seconds``,
    ``dane_starttls_offered``, ``dane_tlsa_match`` and ``dane_cert_info``: every series an
    alert on a host or endpoint reads, with the same labels and values as in ``full``.
    """
    full = samples(target, result, success=success, finished=finished, duration=duration)
    detailed = {(_name(h.name), str(h.port)) for h in result.hosts if needs_detail(h)}
    # The profiles whose action differs from RFC 7672's (every profile of a detailed host).
    rfc_action: dict[tuple[str, ...], str | None] = {
        (_name(h.name), str(h.port)): h.sender_action.value if h.sender_action else None
        for h in result.hosts
    }
    if not result.hosts:  # the whole target's profiles (mx="", port=""): the same rule
        action = result.sender_action
        rfc_action[("", "")] = action.value if action is not None else None
        if action == SenderAction.DEFER or result.verdict in _TROUBLE_VERDICTS:
            detailed.add(("", ""))
    out: list[Sample] = []
    add = out.append
    rrsig: Sample | None = None
    for point in full:
        name, labels, value = point
        if name in _LEAN_TARGET:
            add(point)
        elif name == "dane_verdict":
            if value == 1.0:
                add(point)
        elif name == "dane_rrsig_expiry_timestamp_seconds":
            if rrsig is None or value < rrsig[2]:
                rrsig = point
        elif name == "dane_sender_action" and labels[1:3] == ("", ""):
            if value == 1.0:  # the domain's own action (no MX host): one series
                add(point)
        elif name in ("dane_mx_verdict", "dane_sender_action"):
            if value == 1.0 and labels[1:3] in detailed:
                add(point)
        elif name == "dane_sender_profile_action":
            if labels[1:3] in detailed or labels[4] != rfc_action.get(labels[1:3]):
                add(point)
        elif name in _LEAN_HOST:
            if (labels[1], labels[2]) in detailed:
                add(point)
        elif name in _LEAN_ENDPOINT and (labels[1], labels[3]) in detailed:
            add(point)
        elif name == "dane_nameserver_state" and labels[4] != "ok":
            add(point)  # a server that does not answer as it should; the rest: findings
        # dane_dnssec_secure and per-endpoint certificate expiry: left out (see above)
    if rrsig is not None:
        add(rrsig)
    cert: tuple[float, HostResult, EndpointResult] | None = None
    for host in result.hosts:
        found = _earliest_cert(host)
        if found is not None and (cert is None or found[0] < cert[0]):
            cert = (found[0], host, found[1])
    if cert is not None:
        value, host, ep = cert
        labels = (target, _name(host.name), ep.address, str(host.port), ep.key_type or "unknown")
        add(("dane_cert_not_after_timestamp_seconds", labels, value))
    return out  # render_chunks groups by family: the order within needs no care


def lean_result(result: DomainResult) -> DomainResult:
    """What the lean profile keeps of a background check's result: what the landing page
    shows (verdict, finding codes and severities; the outcome holds the times). Messages,
    hosts, lookups and endpoints are dropped: about 1 KiB instead of 10 or more."""
    codes: dict[str, Severity] = {}
    for f in result.all_findings():
        codes.setdefault(f.code, f.severity)
    kept = DomainResult(result.domain, mx_only=result.mx_only, verdict=result.verdict,
                        started=result.started, duration=result.duration,
                        sender_action=result.sender_action)  # fmt: skip
    kept.findings = [Finding(code, severity, "") for code, severity in codes.items()]
    return kept


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


_HEADER_BYTES = {name: text.encode() for name, text in _HEADERS.items()}


def render_parts(outcomes: list[Outcome]) -> Iterator[bytes]:
    """The result families of ``outcomes`` in the text format, as the pre-rendered chunks
    themselves (each family's lines grouped under its header): nothing is copied."""
    for f in FAMILIES:
        yield _HEADER_BYTES[f.name]
        for outcome in outcomes:
            chunk = outcome.chunks.get(f.name)
            if chunk:
                yield chunk


def render_text(outcomes: Iterable[Outcome]) -> bytes:
    """The result families of ``outcomes`` in the text format, from their pre-rendered chunks."""
    return b"".join(render_parts(list(outcomes)))


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

# Failure reasons every exporter has: exposed at 0 from the start, so that rate() and
# absent-series alerts work before the first failure.
FAILURE_REASONS = ("exception", "timeout")

CacheStats = Callable[[], tuple[int, int, int]]  # (entries, hits, misses) of the DNS cache


class SelfRegistry(CollectorRegistry):
    """The registry of the exporter's own metrics, without prometheus_client's ``_created``.

    prometheus_client adds a ``<name>_created`` sample to every counter and histogram. The
    exporter's self-metrics never had them (docs/exporter.md lists its series), and the
    library's switch, ``disable_created_metrics()``, is process-wide: it would change every
    other registry in the process too. This registry leaves them out of its own output only.
    """

    def __init__(self) -> None:
        super().__init__(auto_describe=False)

    def collect(self) -> Iterator[Metric]:
        for metric in super().collect():
            if metric.type in ("counter", "histogram"):
                created = metric.name + "_created"
                metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


class _CacheCounters(Collector):
    """The DNS cache's hit and miss counts, read from the cache at scrape time.

    They are counted by the cache, not by the exporter, and a prometheus_client ``Counter``
    can only be incremented, not read from elsewhere: a collector is the library's way to
    expose a count another object keeps.
    """

    def __init__(self, cache: CacheStats) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        _, hits, misses = self._cache()
        yield CounterMetricFamily("dane_exporter_dns_cache_hits", "DNS cache hits", value=hits)
        yield CounterMetricFamily("dane_exporter_dns_cache_misses", "DNS cache misses",
                                  value=misses)  # fmt: skip


def _value(metric: MetricWrapperBase, sample: str) -> float:
    """The current value of the unlabelled sample ``sample`` of ``metric``."""
    for family in metric.collect():
        for s in family.samples:
            if s.name == sample and not s.labels:
                return s.value
    return 0.0


def _count(targets: Callable[[], Mapping[str, int]], kind: str) -> Callable[[], float]:
    return lambda: targets().get(kind, 0)


class Stats:
    """The exporter's own metrics: prometheus_client metrics on ``registry`` (``/metrics``).

    :param targets: configured targets by kind, read at each scrape.
    :param cache: the shared DNS cache's (entries, hits, misses), read at each scrape.
    :param lag: (overdue targets, age in seconds of the oldest result), read at each scrape.
    :param connections: HTTP connections open now, read at each scrape.

    What the exporter does is recorded with :meth:`check_done`, :meth:`checking`,
    :meth:`cycle_done`, :meth:`probe_done`, :meth:`probe_denied`, :meth:`request` and
    :meth:`reloaded`; :attr:`checks`, :attr:`cycles`, :attr:`failures` and
    :attr:`last_cycle_seconds` read the values back (landing page, benchmarks).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        targets: Callable[[], Mapping[str, int]] = dict,
        cache: CacheStats | None = None,
        lag: Callable[[], tuple[int, float]] | None = None,
        connections: Callable[[], int] | None = None,
    ) -> None:
        self.registry = registry
        build = Gauge(
            "dane_exporter_build_info",
            "dane-monitor version and Python version of the exporter",
            ("version", "python_version"),
            registry=registry,
        )
        build.labels(__version__, ".".join(map(str, sys.version_info[:3]))).set(1)
        by_kind = Gauge("dane_exporter_targets", "Configured targets, by kind", ("kind",),
                        registry=registry)  # fmt: skip
        for kind in ("domain", "mx"):
            by_kind.labels(kind).set_function(_count(targets, kind))
        self._checks = Counter("dane_exporter_checks", "Background checks run", registry=registry)
        self._failures = Counter(
            "dane_exporter_check_failures",
            "Background checks that reached no verdict (dane_check_success 0), by reason: "
            "timeout, exception, or the code of the first error finding",
            ("reason",),
            registry=registry,
        )
        for reason in FAILURE_REASONS:
            self._failures.labels(reason)
        self._in_flight = Gauge("dane_exporter_checks_in_flight", "Checks running now",
                                registry=registry)  # fmt: skip
        self._duration = Histogram(
            "dane_exporter_check_duration_seconds",
            "Duration of background checks",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._cycles = Counter(
            "dane_exporter_cycles",
            "Completed cycles: passes in which every configured target was checked once",
            registry=registry,
        )
        # Registered when the first cycle completes: before that there is no such duration.
        self._cycle_seconds = Gauge(
            "dane_exporter_cycle_duration_seconds",
            "How long the last cycle took, from its start until every target had been "
            "checked: the worst-case age of a result",
            registry=None,
        )
        self._cycle_seen = False
        self._probes = Counter("dane_exporter_probes", "/probe checks run", registry=registry)
        self._denied = Counter(
            "dane_exporter_probes_denied",
            "/probe requests refused because the target is not allowed",
            registry=registry,
        )
        self._http = Counter(
            "dane_exporter_http_requests",
            "HTTP requests served, by handler and status code",
            ("handler", "code"),
            registry=registry,
        )
        self._reload_ok = Gauge(
            "dane_exporter_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded",
            registry=registry,
        )
        self._reload_at = Gauge(
            "dane_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (Unix time)",
            registry=registry,
        )
        self.reloaded(ok=True)
        if lag is not None:
            overdue = Gauge(
                "dane_exporter_targets_overdue",
                "Targets whose check is due and still waits for a slot, past a tenth of their "
                "interval (at least 1 s): the exporter is falling behind",
                registry=registry,
            )
            overdue.set_function(lambda: lag()[0])
            oldest = Gauge(
                "dane_exporter_oldest_result_age_seconds",
                "Age of the oldest result among configured targets (a target not checked yet "
                "counts from when it was configured)",
                registry=registry,
            )
            oldest.set_function(lambda: lag()[1])
        if connections is not None:
            open_now = Gauge(
                "dane_exporter_http_connections",
                "HTTP connections open now (idle, reading a request or being answered)",
                registry=registry,
            )
            open_now.set_function(connections)
        if cache is not None:
            entries = Gauge("dane_exporter_dns_cache_entries", "Responses in the shared DNS cache",
                            registry=registry)  # fmt: skip
            entries.set_function(lambda: cache()[0])
            registry.register(_CacheCounters(cache))

    # -- recording -------------------------------------------------------------------------

    def check_done(self, outcome: Outcome) -> None:
        self._checks.inc()
        if outcome.failure is not None:
            self._failures.labels(outcome.failure).inc()
        self._duration.observe(outcome.duration)

    def checking(self) -> AbstractContextManager[object]:
        """``with stats.checking(): …`` counts a check in flight for the block's duration."""
        return self._in_flight.track_inprogress()

    def cycle_done(self, seconds: float) -> None:
        self._cycles.inc()
        self.last_cycle_seconds = seconds

    def probe_done(self) -> None:
        self._probes.inc()

    def probe_denied(self) -> None:
        self._denied.inc()

    def request(self, handler: str, code: int) -> None:
        self._http.labels(handler, str(code)).inc()

    def reloaded(self, *, ok: bool) -> None:
        self._reload_ok.set(1 if ok else 0)
        if ok:
            self._reload_at.set_to_current_time()

    # -- reading back ------------------------------------------------------------------------

    @property
    def checks(self) -> int:
        return int(_value(self._checks, "dane_exporter_checks_total"))

    @property
    def failures(self) -> dict[str, int]:
        """Failed checks by reason (the reasons every exporter has included, at 0)."""
        return {
            s.labels["reason"]: int(s.value)
            for family in self._failures.collect()
            for s in family.samples
            if s.name == "dane_exporter_check_failures_total"
        }

    @property
    def cycles(self) -> int:
        return int(_value(self._cycles, "dane_exporter_cycles_total"))

    @property
    def last_cycle_seconds(self) -> float | None:
        if not self._cycle_seen:
            return None
        return _value(self._cycle_seconds, "dane_exporter_cycle_duration_seconds")

    @last_cycle_seconds.setter
    def last_cycle_seconds(self, seconds: float) -> None:
        self._cycle_seconds.set(seconds)
        if not self._cycle_seen:
            self._cycle_seen = True
            self.registry.register(self._cycle_seconds)

    @property
    def in_flight(self) -> int:
        return int(_value(self._in_flight, "dane_exporter_checks_in_flight"))


def probe_families(success: bool, duration: float) -> list[Metric]:
    return [
        GaugeMetricFamily(
            "dane_probe_success",
            "1 when the check reached a verdict other than error within the deadline",
            value=1 if success else 0,
        ),
        GaugeMetricFamily("dane_probe_duration_seconds", "How long the check took", value=duration),
    ]
