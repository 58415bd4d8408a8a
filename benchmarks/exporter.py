"""The exporter's figures: /metrics scrape time with many targets, background checks per second
against the local world, and memory over a long soak of repeated cycles.

    python3 benchmarks/exporter.py scrape [--targets 10000] [--runs 10] [--profile full|lean]
                                          [--broken-every K]
    python3 benchmarks/exporter.py soak [--copies 4] [--cycles 60] [--interval 2] [--timeout 10]
    python3 benchmarks/exporter.py deadline [--runs 20] [--scrape-timeout 1.2]
    python3 benchmarks/exporter.py busy [--targets 1000] [--seconds 20]
    python3 benchmarks/exporter.py workers [--copies 50] [--workers 0,1,2] [--seconds 30]
                                           [--nameservers on|off] [--profile full|lean]

``scrape`` fills an exporter with synthesized results (every target a domain with two MX
hosts, each with one address serving ECDSA and RSA chains under a secure 3 1 1 TLSA RRset:
the shape of a well-run DANE domain) and times GET /metrics over loopback, plain and gzip.
``--profile`` picks the metrics profile (what ``metrics: {profile: ...}`` selects), and the
results are kept as the background checks keep them (slimmed; in lean only what the landing
page shows). ``--broken-every K`` makes every K-th target fail (one endpoint's key matches
no TLSA record: senders defer), which lean shows in detail. It reports series and bytes per
target, the memory an outcome holds (tracemalloc over the outcomes of 10,000 targets, and
RSS growth over all of them), the scrape times, and RSS before and during the scrapes
(sampled every 5 ms by a thread).

``soak`` serves the world in a separate process (``dane-monitor world --copies N``, without
the hang / huge-line / close-after-ehlo scenarios: they measure timeouts, not speed), runs the
exporter in this process against every domain with a short interval, and reports checks per
second and this process's resident memory after each tenth of the cycles: it must level off.

``deadline`` times ``/probe`` against a resolver that never answers, with Prometheus's
scrape-timeout header: the check is cut at the deadline the exporter computes (scrape timeout
minus ``probe.timeout_margin``), and the figure is how long after that deadline the answer
arrives (it must stay below the margin, 0.5 s, or Prometheus gives up first).

``busy`` starts an exporter with ``--targets`` targets whose checks all wait for such a
resolver (100 in flight, 4 s deadline) and times ``/metrics`` and ``/-/healthy`` every 0.2 s:
a scrape never waits for a check. (The tests assert the order of these events; the times are
here.)

``workers`` serves the world in a separate process (``--copies 50``: about 2,000 domains) and
runs ``dane-monitor serve`` as a process with each ``--workers`` count in turn (0: every
check in the serving process, the peer figure from the same run), every domain a target with
an interval short enough that the exporter never waits (it is always behind). After the first
cycle (cold caches) it measures, over ``--seconds`` and ``--rounds`` windows: the checks
completed per second of wall time (dane_exporter_checks_total), and the CPU time of every
exporter process (the serving process and its workers, from /proc/PID/stat) per check. The
capacity is what that CPU cost allows on all of this machine's cores in 5 minutes; the wall
figure is lower here because the world's servers run on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from dane_monitor.exporter import logs
from dane_monitor.exporter.app import Exporter, probe_deadline
from dane_monitor.exporter.config import Config, DNSSettings, ProbeSettings, Target, parse
from dane_monitor.exporter.metrics import (
    Outcome,
    lean_result,
    render_chunks,
    render_text,
    samples,
)
from dane_monitor.report import (
    DNSInfo,
    DomainResult,
    EndpointResult,
    HostResult,
    SenderAction,
    Verdict,
)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def synthetic(i: int, broken: bool = False) -> DomainResult:
    name = f"domain-{i:05d}.example."
    now = int(time.time())
    result = DomainResult(name, verdict=Verdict.VALID, started=time.time(), duration=0.2)
    result.mx_dns = DNSInfo(name, "MX", "secure", "positive", ttl=3600, rrsig_expiration=now + 9e5)
    for h in range(2):
        mx = f"mx{h}.{name}"
        host = HostResult(mx, 25, preference=10 * h, base_domain=mx, tlsa_name=f"_25._tcp.{mx}")
        address = f"10.{i // 250 % 250}.{i % 250}.{h + 1}"
        host.addresses = [address]
        host.dns = [
            DNSInfo(mx, "A", "secure", "positive", ttl=3600, rrsig_expiration=now + 9e5),
            DNSInfo(mx, "AAAA", "secure", "nodata", ttl=3600, rrsig_expiration=now + 9e5),
            DNSInfo(f"_25._tcp.{mx}", "TLSA", "secure", "positive", ttl=3600,
                    rrsig_expiration=now + 9e5),
        ]  # fmt: skip
        host.tlsa_records = [f"3 1 1 {i:064x}", f"3 1 1 {i + 1:064x}"]
        host.tlsa_usable, host.tlsa_ttl, host.dane_applies = 2, 3600, True
        host.verdict, host.sender_action = Verdict.VALID, SenderAction.DELIVER_AUTHENTICATED
        host.rrsig_expiration = now + 900000
        for key_type in ("ecdsa", "rsa"):
            ep = EndpointResult(address, 25, key_type, SenderAction.DELIVER_AUTHENTICATED)
            ep.verdict, ep.connected, ep.starttls_offered = Verdict.VALID, True, True
            ep.authenticated, ep.leaf_spki_sha256 = True, f"{i * 4 + h:064x}"
            ep.leaf_not_after = now + 86400 * 60
            ep.chain_der = [b"x"]
            host.endpoints.append(ep)
        result.hosts.append(host)
    if broken:  # the first endpoint's key matches no TLSA record: senders defer at mx0
        host = result.hosts[0]
        host.endpoints[0].authenticated = False
        host.endpoints[0].verdict = host.verdict = result.verdict = Verdict.FAILED
        host.endpoints[0].sender_action = SenderAction.DEFER
        host.sender_action = result.sender_action = SenderAction.DEFER
    return result


def outcome(i: int, profile: str, broken: bool) -> Outcome:
    """Target ``i``'s outcome as the exporter's background checks keep it."""
    result = synthetic(i, broken)
    name = result.domain.rstrip(".")
    now = time.time()
    points = samples(name, result, success=True, finished=now, duration=0.2, profile=profile)
    chunks = render_chunks(points)
    for host in result.hosts:  # what the scheduler's _slim drops
        for ep in host.endpoints:
            ep.chain_der, ep.chain, ep.transcript = [], [], []
    kept = lean_result(result) if profile == "lean" else result
    return Outcome(name, "domain", kept, True, None, now, 0.2, (), chunks)


class RSSSampler:
    """The process's peak RSS between start() and stop(), read every 5 ms by a thread."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mib())

    def __enter__(self) -> RSSSampler:
        self.peak = rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _client():
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from test_exporter_client import request

    return request


async def run_scrape(args) -> None:
    request = _client()
    broken_every = args.broken_every

    def is_broken(i: int) -> bool:
        return broken_every > 0 and i % broken_every == 0

    # What one outcome holds, by tracemalloc, over the outcomes of (at most) 10,000 targets.
    sample = min(args.targets, 10000)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = [outcome(i, args.profile, is_broken(i)) for i in range(sample)]
    gc.collect()
    traced = (tracemalloc.get_traced_memory()[0] - base) / sample
    tracemalloc.stop()
    del kept
    gc.collect()
    rss0 = rss_mib()
    t = time.perf_counter()
    outcomes = {}
    for i in range(args.targets):
        o = outcome(i, args.profile, is_broken(i))
        outcomes[o.target] = o
    built = time.perf_counter() - t
    gc.collect()
    grown = (rss_mib() - rss0) * 1024 * 1024 / args.targets
    config = Config(listen="127.0.0.1:0", dns=DNSSettings(resolver="127.0.0.1:53"))
    exporter = Exporter(config)
    await exporter.start()
    exporter.scheduler.outcomes.update(outcomes)
    exporter.scheduler.targets.update(
        {n: Target(n, "domain") for n in outcomes}
    )  # for /metrics only: no checks are scheduled
    lines = [sum(c.count(b"\n") for c in o.chunks.values()) for o in outcomes.values()]
    healthy = [n for i, n in enumerate(lines) if not is_broken(i)]
    broken = [n for i, n in enumerate(lines) if is_broken(i)]
    body = sum(len(c) for o in outcomes.values() for c in o.chunks.values())
    print(
        f"{args.targets} targets, profile {args.profile}"
        + (f", every {broken_every}th broken" if broken_every else "")
        + f": {sum(lines)} result series ({sum(lines) / args.targets:.1f} a target; "
        f"healthy {max(healthy, default=0)}"
        + (f", broken {max(broken)}" if broken else "")
        + f"), {body / args.targets:.0f} bytes of result lines a target; synthesized in "
        f"{built:.1f}s"
    )
    print(
        f"  held per target: {traced / 1024:.2f} KiB (tracemalloc, {sample} outcomes), "
        f"{grown / 1024:.2f} KiB (RSS growth over {args.targets}); RSS {rss_mib():.0f} MiB"
    )
    try:
        t = time.perf_counter()
        render_text(list(outcomes.values()))
        print(f"  rendering the result families alone: {time.perf_counter() - t:.2f}s")
        for label, extra in (("plain", []), ("gzip", ["-H", "Accept-Encoding: gzip"])):
            times, size = [], 0
            gc.collect()
            before = rss_mib()
            with RSSSampler() as rss:
                for _ in range(args.runs):
                    # curl in a subprocess: the client's own work is not the server's
                    proc = await asyncio.create_subprocess_exec(
                        "curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                        *extra, exporter.url + "metrics", stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    out, _ = await proc.communicate()
                    seconds, size_text = out.decode().split()
                    times.append(float(seconds))
                    size = int(size_text)
            print(
                f"  GET /metrics {label:5} (curl): median {statistics.median(times):.2f}s, "
                f"min {min(times):.2f}s, max {max(times):.2f}s over {args.runs} scrapes, "
                f"{size / 1e6:.1f} MB on the wire ({size / args.targets:.0f} bytes a target); "
                f"RSS before {before:.0f} MiB, peak during {rss.peak:.0f} MiB "
                f"({rss.peak / before:.2f}x)"
            )
        # the landing page too, since an operator opens it
        t = time.perf_counter()
        page = await request(exporter.url, timeout=120)
        print(
            f"  GET / (landing page): {time.perf_counter() - t:.2f}s, {len(page.body) / 1e6:.1f} MB"
        )
    finally:
        await exporter.close()


async def run_soak(args) -> None:
    from check import SLOW, start_world

    with tempfile.TemporaryDirectory() as tmp:
        proc, dns, smtp, domains = start_world(args.copies, Path(tmp))
        names = [d.rstrip(".") for d in domains]
        try:
            text = (
                "listen: 127.0.0.1:0\n"
                f"dns: {{resolver: '{dns}', trust_anchor: '{Path(tmp) / 'trust-anchor.ds'}'}}\n"
                f"connect_port: {smtp}\nconcurrency: {args.concurrency}\njitter: 0.1\n"
                f"defaults: {{interval: {args.interval}, timeout: {args.timeout}}}\n"
                "targets:\n" + "".join(f"  - domain: {n}\n" for n in names)
            )
            path = Path(tmp) / "dane.yml"
            path.write_text(text)
            parse(text)
            exporter = Exporter.from_file(path)
            await exporter.start()
            print(
                f"world: {len(names)} domains in a separate process (without {sorted(SLOW)}); "
                f"interval {args.interval}s, timeout {args.timeout}s, "
                f"concurrency {args.concurrency}, "
                f"{args.cycles} cycles"
            )
            stats = exporter.stats
            t0, c0 = time.monotonic(), 0
            marks = sorted({max(1, args.cycles * k // 10) for k in range(1, 11)})
            rss = []
            try:
                for mark in marks:
                    while stats.cycles < mark:  # noqa: ASYNC110 (a benchmark's poll)
                        await asyncio.sleep(0.2)
                    if mark == marks[0]:
                        t0, c0 = time.monotonic(), stats.checks  # after warm-up
                    gc.collect()
                    rss.append(rss_mib())
                    cache = exporter.runner.cache_stats()[0]
                    elapsed = time.monotonic() - t0
                    rate = (stats.checks - c0) / elapsed if elapsed > 0 else float("nan")
                    print(
                        f"  cycle {mark:4}: {stats.checks:6} checks, {rate:6.1f} checks/s since "
                        f"cycle {marks[0]}, last cycle {stats.last_cycle_seconds:.2f}s, RSS "
                        f"{rss[-1]:.0f} MiB, DNS cache {cache} entries, failures {stats.failures}"
                    )
            finally:
                await exporter.close()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  RSS after cycle {marks[0]}: {rss[0]:.0f} MiB; at the end: {rss[-1]:.0f} MiB; "
                f"peak {peak:.0f} MiB; growth over the last half: "
                f"{rss[-1] - rss[len(rss) // 2]:+.1f} MiB"
            )
        finally:
            proc.terminate()
            proc.wait(10)


def _blackhole() -> tuple[socket.socket, str]:
    """A UDP 'resolver' that never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms over {len(ordered)}"
    )


async def run_deadline(args) -> None:
    request = _client()
    sock, resolver = _blackhole()
    config = Config(
        listen="127.0.0.1:0",
        dns=DNSSettings(resolver=resolver, timeout=1.0),
        probe=ProbeSettings(allow=("*.example",)),
    )
    exporter = Exporter(config)
    await exporter.start()
    header = {"X-Prometheus-Scrape-Timeout-Seconds": f"{args.scrape_timeout:g}"}
    deadline = probe_deadline(header["X-Prometheus-Scrape-Timeout-Seconds"], config.probe)
    late, durations, timeouts = [], [], 0
    try:
        for i in range(args.runs):
            t = time.perf_counter()
            reply = await request(exporter.url + f"probe?target=d{i}.example", headers=header)
            late.append(time.perf_counter() - t - deadline)
            text = reply.text
            timeouts += 'code="check-timeout"' in text
            for line in text.splitlines():
                if line.startswith("dane_probe_duration_seconds "):
                    durations.append(float(line.split()[1]) - deadline)
    finally:
        await exporter.close()
        sock.close()
    print(
        f"/probe, scrape timeout {args.scrape_timeout:g}s, deadline {deadline:g}s "
        f"(margin {config.probe.timeout_margin:g}s), resolver never answers: "
        f"{timeouts}/{args.runs} cut with check-timeout"
    )
    print(f"  answer after the deadline (client): {_summary(late)}")
    print(f"  dane_probe_duration_seconds past the deadline: {_summary(durations)}")


async def run_busy(args) -> None:
    request = _client()
    sock, resolver = _blackhole()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dane.yml"
        path.write_text(
            f"listen: 127.0.0.1:0\ndns: {{resolver: '{resolver}', timeout: 1s}}\n"
            "concurrency: 100\njitter: 0\ndefaults: {interval: 60s, timeout: 4s}\ntargets:\n"
            + "".join(f"  - domain: broken-{i}.example\n" for i in range(args.targets))
        )
        exporter = Exporter.from_file(path)
        await exporter.start()
        scrapes, health = [], []
        try:
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                t = time.perf_counter()
                await request(exporter.url + "-/healthy")
                health.append(time.perf_counter() - t)
                t = time.perf_counter()
                await request(exporter.url + "metrics")
                scrapes.append(time.perf_counter() - t)
                await asyncio.sleep(0.2)
            checks = exporter.stats.checks
        finally:
            await exporter.close()
            sock.close()
    print(
        f"{args.targets} targets whose checks wait 4 s for a silent resolver, 100 in flight, "
        f"{args.seconds:g}s ({checks} checks done):"
    )
    print(f"  GET /metrics: {_summary(scrapes)}")
    print(f"  GET /-/healthy: {_summary(health)}")


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """``pid`` and its live children (the exporter's workers)."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                out.append(int(entry))
    return out


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _serve_round(args, tmp: Path, dns: str, smtp: int, names: list[str], workers: int):
    """(checks/s wall, CPU s per check) per window of one ``serve --workers`` process."""
    request = _client()
    path = tmp / f"dane-{workers}.yml"
    path.write_text(
        "listen: 127.0.0.1:0\n"
        f"dns: {{resolver: '{dns}', trust_anchor: '{tmp / 'trust-anchor.ds'}'}}\n"
        f"connect_port: {smtp}\nconcurrency: {args.concurrency}\njitter: 0.1\n"
        f"workers: {workers}\n"
        # The world's name servers answer at its DNS port; the default, 53, has nothing there
        # and every survey would time out instead of measuring what asking them costs.
        f"nameservers: {{enabled: {str(args.nameservers == 'on').lower()}, "
        f"port: {dns.rsplit(':', 1)[1]}}}\n"
        f"metrics: {{profile: {args.profile}}}\n"
        f"defaults: {{interval: {args.interval}, timeout: 10}}\n"
        "targets:\n" + "".join(f"  - domain: {n}\n" for n in names)
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dane_monitor", "serve", "--config", str(path),
        "--log-level", "error", "--log-format", "json",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        # the URL comes in the "listening" line, logged at info: ask the port instead
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            for conn in _listening(proc.pid):
                url = f"http://127.0.0.1:{conn}/"
        assert url, "the exporter did not start"

        async def scrape() -> str:
            reply = await request(url + "metrics")
            assert reply.status == 200
            return reply.text

        while _metric(await scrape(), "dane_exporter_cycles_total") < 1:  # noqa: ASYNC110 (a poll)
            await asyncio.sleep(2)
        figures = []
        for _ in range(args.rounds):
            family = _family(proc.pid)
            cpu0, own0 = sum(map(_proc_cpu, family)), _proc_cpu(proc.pid)
            text = await scrape()
            t0, n0 = time.monotonic(), _metric(text, "dane_exporter_checks_total")
            await asyncio.sleep(args.seconds)
            text = await scrape()
            t1, n1 = time.monotonic(), _metric(text, "dane_exporter_checks_total")
            later = _family(proc.pid)
            assert later == family, "a worker restarted during the window"
            cpu1, own1 = sum(map(_proc_cpu, later)), _proc_cpu(proc.pid)
            checks = n1 - n0
            figures.append((checks / (t1 - t0), (cpu1 - cpu0) / checks, (own1 - own0) / checks))
        restarts = _metric(text, "dane_exporter_worker_restarts_total")
        failures = _metric(text, 'dane_exporter_check_failures_total{reason="timeout"}')
        return figures, len(family) - 1, restarts, failures
    finally:
        proc.terminate()
        await proc.wait()


def _listening(pid: int) -> list[int]:
    """TCP ports process ``pid`` listens on (from /proc/net/tcp and its descriptors)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        return []
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                    ports.append(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


async def run_workers(args) -> None:
    from check import SLOW, start_world

    counts = [int(n) for n in args.workers.split(",")]
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="dane-bench-workers-") as tmp:
        proc, dns, smtp, domains = start_world(args.copies, Path(tmp))
        names = [d.rstrip(".") for d in domains]
        try:
            print(
                f"world: {len(names)} domains in a separate process (without {sorted(SLOW)}); "
                f"interval {args.interval}s (always behind), concurrency {args.concurrency} "
                f"in total; {args.rounds} windows of {args.seconds:g}s after the first cycle; "
                f"{cores} cores; every authoritative server asked: {args.nameservers}; "
                f"metric profile {args.profile}"
            )
            print(
                f"{'workers':>7}  {'processes':>9}  {'checks/s wall':>13}  "
                f"{'CPU ms/check':>12}  {'capacity /5 min on ' + str(cores) + ' cores':>26}"
            )
            for workers in counts:
                figures, procs, restarts, timeouts = await _serve_round(
                    args, Path(tmp), dns, smtp, names, workers
                )
                rate = statistics.median(f[0] for f in figures)
                cpu = statistics.median(f[1] for f in figures)
                capacity = cores * 300 / cpu
                own = statistics.median(f[2] for f in figures)
                spread = ", ".join(f"{r:.0f}/s {c * 1000:.2f} ms" for r, c, _ in figures)
                print(
                    f"{workers:>7}  {procs + 1:>9}  {rate:>13.0f}  {cpu * 1000:>12.2f}  "
                    f"{capacity:>26,.0f}   (serving process {own * 1000:.2f} ms/check; "
                    f"windows: {spread}; restarts {restarts:g}, timeouts {timeouts:g})"
                )
                sys.stdout.flush()
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scrape")
    s.add_argument("--targets", type=int, default=10000)
    s.add_argument("--runs", type=int, default=10)
    s.add_argument("--profile", choices=("full", "lean"), default="full")
    s.add_argument("--broken-every", type=int, default=0, metavar="K",
                   help="every K-th target fails (a TLSA mismatch); 0: none")  # fmt: skip
    k = sub.add_parser("soak")
    k.add_argument("--copies", type=int, default=4)
    k.add_argument("--cycles", type=int, default=60)
    k.add_argument("--interval", type=float, default=2.0)
    k.add_argument("--timeout", type=float, default=10.0)
    k.add_argument("--concurrency", type=int, default=50)
    d = sub.add_parser("deadline")
    d.add_argument("--runs", type=int, default=20)
    d.add_argument("--scrape-timeout", type=float, default=1.2)
    b = sub.add_parser("busy")
    b.add_argument("--targets", type=int, default=1000)
    b.add_argument("--seconds", type=float, default=20.0)
    w = sub.add_parser("workers")
    w.add_argument("--copies", type=int, default=50)
    w.add_argument("--workers", default="0,1,2", help="worker counts to run, in turn")
    w.add_argument("--seconds", type=float, default=30.0)
    w.add_argument("--rounds", type=int, default=3)
    w.add_argument("--interval", type=float, default=1.0)
    w.add_argument("--concurrency", type=int, default=100)
    w.add_argument("--nameservers", choices=("on", "off"), default="on",
                   help="ask every authoritative server (the default) or not")  # fmt: skip
    w.add_argument("--profile", choices=("full", "lean"), default="full",
                   help="the metric profile (lean: what large fleets use)")  # fmt: skip
    args = parser.parse_args()
    logs.setup("logfmt", "error")
    run = {"scrape": run_scrape, "soak": run_soak, "deadline": run_deadline, "busy": run_busy,
           "workers": run_workers}  # fmt: skip
    asyncio.run(run[args.what](args))


if __name__ == "__main__":
    main()
