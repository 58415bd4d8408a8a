"""The exporter: configuration, background checks and the web endpoints, wired together.

    exporter = Exporter.from_file("dane-exporter.yml")
    await exporter.start()            # listens, starts checking
    await exporter.reload()           # what SIGHUP and POST /-/reload do
    await exporter.close()

Endpoints: ``/`` (landing page), ``/metrics`` (latest results and self-metrics),
``/probe?target=…`` (one synchronous check), ``/-/healthy``, ``/-/ready``, ``/-/reload``,
and with ``tlsrpt: {enabled: true}`` ``POST /tlsrpt`` (TLS-RPT reports, RFC 8460).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import logging
import re
import signal
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import gzip_accepted
from prometheus_client.registry import Collector

from dane_monitor import __version__, render, settings, threads
from dane_monitor import tlsrpt as rpt
from dane_monitor.exporter import webconfig
from dane_monitor.exporter.config import Config, ConfigError, ProbeSettings, _target_name, load
from dane_monitor.exporter.http import PIECE, HTTPServer, Request, Response, Stream, batched
from dane_monitor.exporter.metrics import (
    Outcome,
    SelfRegistry,
    Stats,
    families,
    probe_families,
    render_parts,
)
from dane_monitor.exporter.scheduler import Ledger, Runner, Scheduler
from dane_monitor.exporter.workers import WorkerPool

log = logging.getLogger("dane_monitor.exporter")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds"
MAX_PROBE_PORTS = 8


class _Families(Collector):
    """A collector over a fixed list of families (one /probe response)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def _render(metrics: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(metrics))
    return generate_latest(registry)


_REFUSED = re.compile(r";\s*q\s*=\s*0(?:\.0{0,3})?\s*$", re.IGNORECASE)


def wants_gzip(accept_encoding: str | None) -> bool:
    """Whether a client with this ``Accept-Encoding`` header gets a gzip body.

    prometheus_client's ``gzip_accepted`` decides (a ``gzip`` coding listed, in any case);
    codings the client refuses with ``q=0`` (RFC 9110, 12.5.3), which it does not read, are
    taken out first. ``*`` and an absent header get the plain body: identity is always
    acceptable, and Prometheus asks for gzip by name.
    """
    codings = (accept_encoding or "").split(",")
    return gzip_accepted(",".join(c for c in codings if not _REFUSED.search(c)))


class Exporter:
    def __init__(
        self,
        config: Config,
        *,
        config_path: str | Path | None = None,
        overrides: Callable[[Config], Config] | None = None,
        default_workers: int = 0,
    ) -> None:
        """``overrides``: what the command line changes in a configuration, applied again
        to the file's on every reload (``serve --listen``, ``--shard``, …).
        ``default_workers``: worker processes when the configuration does not say
        (``workers:``); 0 runs the background checks in this process."""
        self.config = config
        self.config_path = str(config_path) if config_path is not None else None
        self.overrides = overrides
        self.web = webconfig.load(config.web_config)
        self.runner = Runner(config)
        self._self_registry = SelfRegistry()
        self.stats = Stats(
            self._self_registry,
            targets=lambda: self.scheduler.counts(),
            cache=self._cache_stats,
            lag=lambda: self.scheduler.lag(),
            connections=lambda: self.server.open_connections,
        )
        self.default_workers = default_workers
        workers = self.workers_for(config)
        self.scheduler: Ledger = (
            WorkerPool(self.stats, workers) if workers else Scheduler(self.stats)
        )
        self.server = HTTPServer(self._handle, admit=self._admit)
        self.tlsrpt = rpt.Tally(_tlsrpt_domains(config), remembered=config.tlsrpt.remembered)
        self._tlsrpt_slots = asyncio.Semaphore(2)  # reports parsed at once (memory bound)
        self._maildir_seen: dict[str, None] = {}
        self._maildir_task: asyncio.Task[None] | None = None
        self._probe_slots = asyncio.Semaphore(config.concurrency)
        ProcessCollector(registry=self._self_registry)
        self._reload_lock = asyncio.Lock()
        self.started = time.time()

    def workers_for(self, config: Config) -> int:
        """Worker processes for ``config``: its ``workers``, else :attr:`default_workers`."""
        return config.workers if config.workers is not None else self.default_workers

    def _cache_stats(self) -> tuple[int, int, int]:
        entries, hits, misses = self.runner.cache_stats()  # /probe's
        if isinstance(self.scheduler, WorkerPool):
            more = self.scheduler.cache_stats()
            entries, hits, misses = entries + more[0], hits + more[1], misses + more[2]
        return entries, hits, misses

    @classmethod
    def from_file(cls, path: str | Path) -> Exporter:
        """:raises ConfigError: a bad configuration or web configuration, naming the line."""
        config = load(path)
        try:
            return cls(config, config_path=path)
        except (ValueError, OSError) as exc:  # DNS settings that cannot make a validator
            raise ConfigError(f"{path}: {exc}") from None

    @property
    def url(self) -> str:
        scheme = "https" if self.web.ssl_context else "http"
        host = self.server.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.server.port}/"

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        host, port = self.config.listen_address()
        await self.server.start(host, port, ssl=self.web.ssl_context)
        self.scheduler.apply(self.config, self.runner)
        self._maildir_task = asyncio.ensure_future(self._scan_maildir_forever())
        _warn_open_probe(self.config)
        log.info(
            "listening",
            extra={
                "url": self.url,
                **_targets_field(self.config),
                "workers": self.workers_for(self.config),
                "version": __version__,
            },
        )

    async def close(self) -> None:
        if self._maildir_task is not None:
            self._maildir_task.cancel()
            with contextlib.suppress(BaseException):
                await self._maildir_task
        await self.server.close()
        await self.scheduler.close()
        log.info("stopped")

    async def reload(self) -> str | None:
        """Re-read the configuration file; on any error keep the running one.

        :returns: None on success, else the error message.
        """
        async with self._reload_lock:
            if self.config_path is None:
                return "no configuration file to reload"
            try:
                config = load(self.config_path)
                if self.overrides is not None:
                    config = self.overrides(config)
                web = webconfig.load(config.web_config)
                runner = self.runner if self.runner.same_settings(config) else Runner(config)
            except (ConfigError, ValueError, OSError) as exc:
                self.stats.reloaded(ok=False)
                log.error("reload failed; keeping the running configuration",
                          extra={"error": str(exc)})  # fmt: skip
                return str(exc)
            if config.listen != self.config.listen:
                log.warning("the listen address changes only on restart",
                            extra={"listen": self.config.listen})  # fmt: skip
            if (web.ssl_context is None) != (self.web.ssl_context is None):
                log.warning("switching TLS on or off needs a restart; users and headers reloaded")
                web.ssl_context = self.web.ssl_context
            workers = self.workers_for(config)
            pool = self.scheduler if isinstance(self.scheduler, WorkerPool) else None
            if (workers == 0) != (pool is None):
                log.warning("switching between worker processes and none needs a restart",
                            extra={"workers": self.workers_for(self.config)})  # fmt: skip
                config = replace(config, workers=self.config.workers)
            elif pool is not None:
                pool.count = workers
            if config.concurrency != self.config.concurrency:
                self._probe_slots = asyncio.Semaphore(config.concurrency)
            opened = config.probe.allow_any and not self.config.probe.allow_any
            self.config, self.web, self.runner = config, web, runner
            self.tlsrpt.set_domains(_tlsrpt_domains(config))
            self.tlsrpt.remembered = config.tlsrpt.remembered
            self.scheduler.apply(config, runner)
            if opened:
                _warn_open_probe(config)
            self.stats.reloaded(ok=True)
            log.info("configuration reloaded", extra=_targets_field(config))
            return None

    async def serve_forever(self) -> int:
        """Run until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit status."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        await self.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("shutting down")
            await self.close()
        return 0

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        handler = {
            "/": self._landing,
            "/metrics": self._metrics,
            "/probe": self._probe,
            "/-/healthy": self._healthy,
            "/-/ready": self._healthy,
            "/-/reload": self._reload,
            "/tlsrpt": self._tlsrpt if self.config.tlsrpt.enabled else None,
        }.get(request.path)
        name = request.path if handler is not None else "other"
        client = request.peer.rpartition(":")[0] if request.peer else None
        if not await self.web.authorized(request.headers.get("authorization"), client):
            response = Response(401, "Unauthorized\n")
            response.headers.append(("WWW-Authenticate", 'Basic realm="dane-monitor"'))
        elif handler is None:
            response = Response(404, "Not found\n")
        elif request.method not in (("POST",) if name in _POST else ("GET", "HEAD")):
            allowed = "POST" if name in _POST else "GET, HEAD"
            response = Response(405, "Method not allowed\n", headers=[("Allow", allowed)])
        else:
            response = await handler(request)
        response.headers += self.web.headers
        self.stats.request(name, response.status)
        return response

    async def _admit(self, request: Request) -> Response | int:
        """Before a request's body is read: ``POST /tlsrpt`` is authorised, typed and sized
        first (401, 415, 413 without reading the body); every other body keeps the server's
        limit."""
        if request.path != "/tlsrpt" or request.method != "POST" or not self.config.tlsrpt.enabled:
            return self.server.max_body
        client = request.peer.rpartition(":")[0] if request.peer else None
        if not await self.web.authorized(request.headers.get("authorization"), client):
            response = Response(401, "Unauthorized\n")
            response.headers.append(("WWW-Authenticate", 'Basic realm="dane-monitor"'))
        else:
            response = self._tlsrpt_refusal(request) or Response(0)
        if response.status == 0:
            return self.config.tlsrpt.max_body
        response.headers += self.web.headers
        self.stats.request("/tlsrpt", response.status)
        return response

    def _tlsrpt_refusal(self, request: Request) -> Response | None:
        """415 for a content type that is not a report's, 413 for a body over the limit."""
        kind = rpt.media_type(request.headers.get("content-type"))
        if kind not in rpt.CONTENT_TYPES:
            self._tlsrpt_refused("content-type", f"content type {kind or 'missing'}", request)
            return Response(
                415, "a TLS-RPT report is application/tlsrpt+gzip or application/tlsrpt+json\n",
                headers=[("Accept-Post", "application/tlsrpt+gzip, application/tlsrpt+json")],
            )  # fmt: skip
        length = request.headers.get("content-length", "")
        limit = self.config.tlsrpt.max_body
        if length.isdigit() and int(length) > limit:
            self._tlsrpt_refused("too-large", f"{length} bytes", request)
            return Response(413, f"a report may have at most {limit} bytes\n")
        return None

    def _tlsrpt_refused(self, reason: str, detail: str, request: Request) -> None:
        self.tlsrpt.refuse(reason)
        log.info("TLS-RPT report refused",
                 extra={"reason": reason, "detail": detail, "client": request.peer})  # fmt: skip

    async def _tlsrpt(self, request: Request) -> Response:
        refusal = self._tlsrpt_refusal(request)
        if refusal is not None:
            return refusal
        if not request.body:
            self._tlsrpt_refused("invalid-report", "empty body", request)
            return Response(400, "empty body: no report\n")
        gzipped = rpt.CONTENT_TYPES[rpt.media_type(request.headers.get("content-type"))]
        limits = replace(rpt.LIMITS, raw=self.config.tlsrpt.max_body)
        async with self._tlsrpt_slots:
            try:
                report = await threads.to_thread(
                    rpt.parse_report, request.body, gzipped=gzipped, limits=limits
                )
            except rpt.ReportError as exc:
                self._tlsrpt_refused(exc.reason, str(exc), request)
                return Response(400, f"report refused: {exc}\n")
        if not self.tlsrpt.add(report):
            return Response(200, f"report {report.report_id!r} was counted before\n")
        log.info("TLS-RPT report counted",
                 extra={"organization": report.organization, "report_id": report.report_id,
                        "client": request.peer})  # fmt: skip
        return Response(201, f"report {report.report_id!r} counted\n")

    async def _scan_maildir_forever(self) -> None:
        while True:
            settings_ = self.config.tlsrpt
            if settings_.enabled and settings_.maildir:
                try:
                    await self.scan_maildir()
                except Exception:
                    log.exception("reading the TLS-RPT Maildir failed")
            await asyncio.sleep(settings_.scan_interval)

    async def scan_maildir(self) -> int:
        """Count the reports of the mails in ``tlsrpt.maildir`` not read before (by the
        mail's unique name: a mail moved from new/ to cur/ is the same mail); returns how
        many files were read."""
        from dane_monitor.tlsrpt_cli import files_of, read_bounded

        maildir = self.config.tlsrpt.maildir
        if not maildir:
            return 0
        files = await threads.to_thread(files_of, Path(maildir))
        read = 0
        for file in files:
            key = file.name.split(":", 1)[0]
            if key in self._maildir_seen:
                continue
            self._maildir_seen[key] = None
            while len(self._maildir_seen) > MAILDIR_REMEMBERED:
                del self._maildir_seen[next(iter(self._maildir_seen))]
            read += 1

            def parse(path: Path = file) -> list[rpt.Report]:
                return rpt.read_reports(read_bounded(path, rpt.FILE_LIMITS.raw))

            async with self._tlsrpt_slots:
                try:
                    reports = await threads.to_thread(parse)
                except rpt.ReportError as exc:
                    self.tlsrpt.refuse(exc.reason)
                    log.info("TLS-RPT mail refused",
                             extra={"file": str(file), "reason": exc.reason,
                                    "detail": str(exc)})  # fmt: skip
                    continue
            for report in reports:
                self.tlsrpt.add(report)
        return read

    async def _healthy(self, request: Request) -> Response:
        return Response(200, "Healthy\n" if request.path == "/-/healthy" else "Ready\n")

    async def _reload(self, request: Request) -> Response:
        error = await self.reload()
        if error is not None:
            return Response(500, f"failed to reload config: {error}\n")
        return Response(200, "configuration reloaded\n")

    async def _metrics(self, request: Request) -> Response:
        # The body is streamed from the outcomes' own pre-rendered chunks (a snapshot of the
        # list, not of the bytes): a slow reader holds one piece, never a copy of the body.
        outcomes = list(self.scheduler.outcomes.values())
        own = generate_latest(self._self_registry)
        if self.config.tlsrpt.enabled:
            own += self.tlsrpt.render()
        if wants_gzip(request.headers.get("accept-encoding")):
            body = Stream(_gzip_pieces(outcomes, own))
            return Response(200, body, CONTENT_TYPE, [("Content-Encoding", "gzip")])
        length = len(own) + await threads.to_thread(_length, outcomes)
        return Response(200, Stream(_plain_pieces(outcomes, own), length), CONTENT_TYPE)

    async def _probe(self, request: Request) -> Response:
        target = request.arg("target")
        if not target:
            return Response(400, "target parameter is missing\n")
        try:
            target = _target_name(target)
        except ValueError as exc:
            return Response(400, f"bad target: {exc}\n")
        if "module" in request.query:
            # blackbox_exporter's modules do not exist here: a copied scrape config must fail
            # loudly (400, as blackbox answers an unknown module), not probe something else.
            module = request.arg("module")
            return Response(400, f"unknown module {module!r}: dane-monitor has no modules\n")
        kind = request.arg("kind") or "domain"
        if kind not in ("domain", "mx"):
            return Response(400, "kind must be domain or mx\n")
        try:
            ports = _probe_ports(request.query.get("port"), self.config.probe.default_ports)
        except ValueError as exc:
            return Response(400, f"bad port: {exc}\n")
        refusal = self.config.probe_refusal(target, ports)
        if refusal is not None:
            self.stats.probe_denied()
            return Response(403, refusal + "\n")
        try:
            timeout = probe_deadline(request.headers.get(SCRAPE_TIMEOUT_HEADER), self.config.probe)
        except ValueError as exc:
            return Response(400, f"bad {SCRAPE_TIMEOUT_HEADER} header: {exc}\n")
        debug = request.arg("debug") in ("true", "1")
        t0 = time.monotonic()
        outcome: Outcome | None = None
        slots = self._probe_slots
        try:
            async with asyncio.timeout(timeout):  # waiting for a slot counts too
                await slots.acquire()
        except TimeoutError:
            pass
        else:
            try:
                left = max(0.01, timeout - (time.monotonic() - t0))
                outcome = await self.runner.run(
                    target, kind, ports, timeout, slim=False, transcripts=debug, left=left
                )
            finally:
                slots.release()
        self.stats.probe_done()
        duration = time.monotonic() - t0
        log.debug(
            "probe",
            extra={
                "target": target,
                "kind": kind,
                "success": outcome is not None and outcome.success,
                "duration": round(duration, 3),
            },
        )
        metrics = probe_families(outcome is not None and outcome.success, duration)
        if outcome is not None:
            metrics = families([outcome]) + metrics
        body = await threads.to_thread(_render, metrics)
        if debug:
            text = _debug_text(target, kind, ports, timeout, outcome, duration)
            return Response(
                200, text + "\nMetrics that would have been returned:\n" + body.decode()
            )
        return Response(200, body, CONTENT_TYPE)

    async def _landing(self, request: Request) -> Response:
        return Response(200, self.landing_page(), "text/html; charset=utf-8")

    def landing_page(self) -> str:
        rows = []
        now = time.time()
        for target in self.scheduler.targets.values():
            outcome = self.scheduler.outcomes.get(target.name)
            ports = ", ".join(map(str, target.ports))
            if outcome is None:
                cells = ["pending", "", "", "", ""]
                css = "pending"
            else:
                r = outcome.result
                codes = sorted({f.code for f in r.all_findings()})
                checked = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(outcome.finished))
                cells = [
                    r.verdict.value,
                    "yes" if outcome.success else f"no ({outcome.failure})",
                    f"{checked} ({now - outcome.finished:.0f}s ago)",
                    f"{outcome.duration:.2f}s",
                    ", ".join(codes),
                ]
                css = r.verdict.value
            probe = f"/probe?target={target.name}&kind={target.kind}&debug=true" + "".join(
                f"&port={p}" for p in target.ports
            )
            rows.append(
                f'<tr class="{html.escape(css)}"><td><a href="{html.escape(probe)}">'
                f"{html.escape(target.name)}</a></td><td>{target.kind}</td><td>{ports}</td>"
                f"<td>{target.interval:g}s</td>"
                + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                + "</tr>"
            )
        body = "\n".join(rows) or '<tr><td colspan="9">no targets configured</td></tr>'
        return _PAGE.format(
            version=html.escape(__version__),
            count=len(self.scheduler.targets),
            rows=body,
            cycles=self.stats.cycles,
        )


_POST = ("/-/reload", "/tlsrpt")
#: Maildir mails remembered as read (by unique name), the oldest forgotten first.
MAILDIR_REMEMBERED = 100_000


def _tlsrpt_domains(config: Config) -> set[str] | None:
    """The domains that get their own ``domain`` label in the TLS-RPT series: the
    configured targets' names; None (any domain, up to a cap) without targets."""
    return {t.name.lower() for t in config.targets} or None


def _targets_field(config: Config) -> dict[str, object]:
    """What a log line says of the targets: those checked here, and the shard if any."""
    field: dict[str, object] = {"targets": len(config.scheduled_targets())}
    if config.shard is not None:
        field["shard"] = str(config.shard)
    return field


def _warn_open_probe(config: Config) -> None:
    if config.probe.allow_any:
        log.warning(
            "probe.allow_any is set: any client that reaches this exporter can make it connect "
            "to any host on the allowed ports and read back what it says",
            extra={"allowed_ports": ",".join(map(str, config.probe.allowed_ports))},
        )


def probe_deadline(scrape_timeout: str | None, settings: ProbeSettings) -> float:
    """Seconds a /probe check may take, from Prometheus's scrape-timeout header.

    ``timeout_margin`` before Prometheus gives up, so the answer (the check cut at this
    deadline, with ``check-timeout``) still reaches it; never more than ``probe.timeout``,
    which also applies without the header; at least 50 ms.

    :raises ValueError: the header is not a positive finite number.
    """
    if scrape_timeout is None:
        return settings.timeout
    try:
        seconds = float(scrape_timeout)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"not a positive number: {scrape_timeout!r}")
    return max(0.05, min(settings.timeout, seconds - settings.timeout_margin))


def _length(outcomes: list[Outcome]) -> int:
    return sum(map(len, render_parts(outcomes)))


async def _plain_pieces(outcomes: list[Outcome], own: bytes) -> AsyncIterator[bytes]:
    for piece in batched(render_parts(outcomes)):
        yield piece
    yield own


async def _gzip_pieces(outcomes: list[Outcome], own: bytes) -> AsyncIterator[bytes]:
    # Compressed as it is sent, on worker threads (zlib releases the GIL), in pieces of
    # 256 KiB: one compressor's state per connection, never the whole body.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    for batch in batched(itertools.chain(render_parts(outcomes), (own,)), 4 * PIECE):
        out = await threads.to_thread(compressor.compress, batch)
        if out:
            yield out
    yield compressor.flush()


def _probe_ports(values: list[str] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if not values:
        return default
    ports = settings.parse_ports(part for value in values for part in value.split(","))
    if len(ports) > MAX_PROBE_PORTS:
        raise ValueError(f"at most {MAX_PROBE_PORTS} ports")
    return ports


def _debug_text(
    target: str,
    kind: str,
    ports: tuple[int, ...],
    timeout: float,
    outcome: Outcome | None,
    duration: float,
) -> str:
    head = (
        f"Check of {target} ({kind}, port {', '.join(map(str, ports))}) "
        f"with a deadline of {timeout:.2f}s, took {duration:.3f}s\n"
    )
    if outcome is None:
        return head + "No slot for the check before the deadline (too many probes at once).\n"
    r = outcome.result
    why = f" (reason: {outcome.failure})" if outcome.failure else ""
    lines = [head, f"success: {int(outcome.success)}{why}", "", render.text(r), ""]
    for host in r.hosts:
        for info in host.dns:
            lines.append(
                f"dns {info.name} {info.rrtype}: {info.status} {info.kind}"
                + (f" ({info.reason}: {info.detail})" if info.reason else "")
            )
        for ep in host.endpoints:
            lines.append(
                f"SMTP transcript {host.name} {ep.address} port {ep.port} ({ep.key_type or '-'}):"
            )
            lines += [f"  {line}" for line in ep.transcript]
    return "\n".join(lines) + "\n"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dane-monitor exporter</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}
tr.valid td:nth-child(5), tr.no-mail td:nth-child(5) {{ color: #070; }}
tr.failed td:nth-child(5), tr.bogus td:nth-child(5) {{ color: #b00; font-weight: bold; }}
tr.error td:nth-child(5) {{ color: #a60; }}
</style></head>
<body>
<h1>dane-monitor exporter</h1>
<p>Version {version}. {count} targets; {cycles} complete cycles so far.
<a href="/metrics">Metrics</a> &middot; <a href="/-/healthy">Health</a> &middot;
probe one target: <code>/probe?target=DOMAIN</code> (<code>&amp;kind=mx</code> for an MX
host, <code>&amp;port=25</code>, <code>&amp;debug=true</code>)</p>
<table>
<tr><th>target</th><th>kind</th><th>ports</th><th>interval</th><th>verdict</th>
<th>decided</th><th>last check</th><th>duration</th><th>findings</th></tr>
{rows}
</table>
</body></html>
"""
