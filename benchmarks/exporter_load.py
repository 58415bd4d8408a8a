"""The exporter under misbehaving clients: what well-behaved clients see (issue 14).

    python3 benchmarks/exporter_load.py lockout [--connections 500] [--requests 60]
    python3 benchmarks/exporter_load.py authflood [--clients 100] [--rate 12] [--requests 60]
    python3 benchmarks/exporter_load.py slowreaders [--targets 10000] [--readers 16]

``lockout`` runs ``dane-monitor serve`` (a process) against the local world (another
process) and times ``/-/healthy``, ``/metrics`` and ``/probe`` of one target, one request
after another, first alone, then while ``--connections`` idle connections, then as many
slowloris connections (a byte of a request head every 2 s), are held open from ten loopback
addresses (and reopened whenever the exporter closes them).

``authflood`` runs the exporter with TLS and bcrypt basic auth (cost ``--cost``, 10 as
``htpasswd -B`` makes) and times an authorised scraper's ``/metrics`` while ``--clients``
clients, each from its own address, send wrong passwords at ``--rate`` requests a second in
all. The peer, in the same run: Prometheus itself with the same web configuration
(exporter-toolkit, the implementation every Go exporter uses), scraped at its ``/metrics``.

``slowreaders`` fills an in-process exporter with ``--targets`` synthesized results (the
shape of ``exporter.py scrape``) and opens ``--readers`` connections that ask for
``/metrics`` and never read: the resident memory before and with them.

The tests (tests/test_exporter_load.py, test_exporter_slow_readers.py) assert who is served;
the times are here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import trustme

sys.path.insert(0, str(Path(__file__).parent))
from load import Flood, Holders, percentile, sources, timed

ROOT = Path(__file__).parent.parent


def rss_of(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def summary(latencies: list[float]) -> str:
    return (
        f"p50 {statistics.median(latencies) * 1000:7.1f} ms  "
        f"p99 {percentile(latencies, 0.99) * 1000:7.1f} ms  "
        f"max {max(latencies) * 1000:7.1f} ms  (n={len(latencies)})"
    )


@contextmanager
def serve(config: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if m := re.search(r"msg=listening url=(\S+)", line):
                url = m.group(1)
                break
        else:
            raise SystemExit("the exporter did not start")
        # The exporter logs little; a thread keeps its stderr pipe from filling regardless.
        import threading

        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(30)


async def latencies(
    url: str, count: int, pace: float = 0.0, failed: list[str] | None = None, **kwargs
) -> list[float]:
    """Latencies of ``count`` requests; a request that fails or takes over 10 s is put in
    ``failed`` (when given) and counts as 10 s, rather than stopping the run."""
    out = []
    for _ in range(count):
        try:
            reply, seconds = await asyncio.wait_for(timed(url, timeout=10, **kwargs), 10)
            if reply.status != 200:
                raise ValueError(f"status {reply.status}")
        except (OSError, TimeoutError, ValueError) as exc:
            if failed is None:
                raise
            failed.append(type(exc).__name__ + (f" {exc}" if isinstance(exc, ValueError) else ""))
            seconds = 10.0
        out.append(seconds)
        await asyncio.sleep(pace)
    return out


async def run_lockout(args) -> None:
    from check import start_world

    with tempfile.TemporaryDirectory() as tmp:
        world, dns, smtp, domains = start_world(1, Path(tmp))
        try:
            target = next(d.rstrip(".") for d in domains if d.startswith("good-ee"))
            config = Path(tmp) / "dane.yml"
            config.write_text(
                "listen: 127.0.0.1:0\n"
                f"dns: {{resolver: '{dns}', trust_anchor: '{Path(tmp) / 'trust-anchor.ds'}'}}\n"
                f"connect_port: {smtp}\ndefaults: {{interval: 30s, timeout: 10s}}\n"
                f"targets:\n  - domain: {target}\n"
            )
            with serve(config) as (proc, url):
                host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
                paths = ("-/healthy", "metrics", f"probe?target={target}")
                print(
                    f"dane-monitor serve (pid {proc.pid}); {args.requests} requests of each "
                    f"path, {args.pace:g} s apart"
                )
                for mode in ("none", "idle", "slowloris"):
                    holders = None
                    if mode != "none":
                        holders = Holders(host, int(port), args.connections, sources(10),
                                          mode=mode)  # fmt: skip
                        await holders.__aenter__()
                        while holders.open < args.connections:  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
                    label = "alone" if mode == "none" else f"{args.connections} {mode} held"
                    for path in paths:
                        times = await latencies(url + path, args.requests, args.pace)
                        print(f"  {label:22} {path.split('?')[0]:10} {summary(times)}")
                    if holders is not None:
                        print(
                            f"  {'':22} exporter RSS {rss_of(proc.pid):.0f} MiB; connections "
                            f"made {holders.connects}, refused {holders.refused}"
                        )
                        await holders.__aexit__(None, None, None)
        finally:
            world.terminate()
            world.wait(10)


def _web_files(directory: Path, cost: int) -> tuple[Path, Path]:
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "server.pem")
    )
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(cost)).decode().replace("$2b$", "$2y$")
    web = directory / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {directory / 'server.pem'}\n"
        f"  key_file: {directory / 'server.pem'}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    return web, directory / "ca.pem"


@contextmanager
def prometheus(directory: Path, web: Path):
    """Prometheus with ``web`` as its web configuration; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (directory / "prometheus.yml").write_text("scrape_configs: []\n")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={directory / 'prometheus.yml'}",
         f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         f"--web.config.file={web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc, f"https://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(30)


async def _authflood_one(name, proc, url, ca, args) -> None:
    context = __import__("ssl").create_default_context(cafile=str(ca))
    auth = ("prometheus", "s3cret")
    deadline = time.monotonic() + 60
    while True:  # until it answers (Prometheus takes a moment to start)
        try:
            reply, _ = await timed(url + "metrics", context=context, auth=auth, timeout=10)
            if reply.status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer")
        await asyncio.sleep(0.2)
    alone = await latencies(url + "metrics", args.requests, args.pace, context=context, auth=auth)
    print(f"  {name:14} alone            {summary(alone)}", flush=True)
    cpu0 = _cpu(proc.pid)
    async with Flood(url, args.clients, sources(args.clients, first=20), cafile=str(ca),
                     rate=args.rate) as flood:  # fmt: skip
        t0 = time.monotonic()
        failed: list[str] = []
        flooded = await latencies(
            url + "metrics", args.requests, args.pace, failed, context=context, auth=auth
        )
        elapsed = time.monotonic() - t0
        statuses = dict(flood.statuses)
    cpu = (_cpu(proc.pid) - cpu0) / elapsed
    sent = sum(v for v in statuses.values())
    print(
        f"  {name:14} during the flood {summary(flooded)}"
        + (f"; failed or over 10 s: {len(failed)} ({failed[0]})" if failed else "")
        + "\n"
        f"  {'':14} flood: {sent / elapsed:.1f} requests/s answered {statuses}; "
        f"server CPU {cpu * 100:.0f}% of a core"
    )


async def _bounded(run, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await run
    except TimeoutError:
        print(f"  did not finish within {seconds:.0f} s")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_authflood(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        web, ca = _web_files(d, args.cost)
        config = d / "dane.yml"
        config.write_text(
            f"listen: 127.0.0.1:0\nweb_config: {web}\ndns: {{resolver: '127.0.0.1:53'}}\n"
        )
        print(
            f"{args.clients} clients from {args.clients} addresses sending wrong passwords, "
            f"{args.rate:g} requests/s in all; bcrypt cost {args.cost}; TLS; an authorised "
            f"scraper (verified once before) times {args.requests} /metrics, {args.pace:g} s apart"
        )
        # A bound on each run: a server that stalls gives a line saying so, not a hung run.
        budget = 120 + args.requests * (args.pace + 10) * 2
        with serve(config) as (proc, url):
            await _bounded(_authflood_one("dane-monitor", proc, url, ca, args), budget)
        if shutil.which("prometheus"):
            with prometheus(d, web) as (proc, url):
                await _bounded(_authflood_one("prometheus", proc, url, ca, args), budget)
        else:
            print("  prometheus: not installed, no peer figure")


async def run_slowreaders(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from exporter import rss_mib
    from test_exporter_client import request
    from test_exporter_slow_readers import fill, stuck_reader

    from dane_monitor.exporter.app import Exporter
    from dane_monitor.exporter.config import Config, DNSSettings

    exporter = Exporter(Config(listen="127.0.0.1:0", dns=DNSSettings(resolver="127.0.0.1:53")))
    await exporter.start()
    socks = []
    try:
        fill(exporter, args.targets)
        body = len((await request(exporter.url + "metrics", timeout=120)).body)
        before = rss_mib()
        socks = [stuck_reader(exporter.server.port, gzip=False) for _ in range(args.readers)]
        while exporter.server.stalled < args.readers:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        during = rss_mib()
        print(
            f"{args.targets} targets, /metrics {body / 1e6:.1f} MB: RSS {before:.0f} MiB before, "
            f"{during:.0f} MiB with {args.readers} stalled readers "
            f"({(during - before) / args.readers * 1024:.0f} KiB a reader)"
        )
    finally:
        for s in socks:
            s.close()
        await exporter.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("lockout")
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--pace", type=float, default=0.2, help="seconds between requests")
    # 60 requests 0.2 s apart: each path is timed over 12 s, past the 10 s head timeout
    # at which the exporter cuts the held connections (and the attacker reopens them).
    p = sub.add_parser("authflood")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--rate", type=float, default=12.0)
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--cost", type=int, default=10)
    p.add_argument("--pace", type=float, default=0.25, help="seconds between scrapes")
    p = sub.add_parser("slowreaders")
    p.add_argument("--targets", type=int, default=10000)
    p.add_argument("--readers", type=int, default=16)
    args = parser.parse_args()
    run = {"lockout": run_lockout, "authflood": run_authflood, "slowreaders": run_slowreaders}
    asyncio.run(run[args.what](args))


if __name__ == "__main__":
    main()
