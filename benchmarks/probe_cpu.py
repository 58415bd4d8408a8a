"""CPU per warm endpoint check, ours beside the floor: a minimal asyncio STARTTLS client.

    python3 benchmarks/probe_cpu.py [--copies 100] [--rounds 8] [--concurrency 50]
                                    [--scenario good-ee] [--recheck 4] [--profile FILE]
                                    [--gc exporter|default]

The world runs in a separate process (``benchmarks/probe_cpu.py serve``): ``--copies`` copies
of a scenario (good-ee: one MX host, one address, an ECDSA chain matched by a DANE-EE 3 1 1
record), so only the checking side's CPU is counted: ``getrusage(RUSAGE_SELF)``, user +
system, divided by the endpoints checked. Every round checks each domain once, all at once
up to ``--concurrency`` in flight; rounds are interleaved (ours, floor, ours, …). A figure is
the mean over ``--rounds`` (all CPU over all endpoints checked), not a median: the
steady state's second handshakes come every Nth round for every endpoint at once, and a
median would leave them out; the spread shown is the cheapest and dearest round. Run it a
few times on a busy machine and keep the median of the runs.

Rows:

- ``check, steady state``: :meth:`Checker.check_domain` with one Checker reused across
  rounds (DNS cached: warm), the key-type policy of a long-running monitor
  (``recheck_other_key_type=--recheck``: the second key type only on first sight, a changed
  leaf, a changed TLSA RRset, or every Nth check of an endpoint), no transcripts — what the
  exporter's background checks cost per endpoint;
- ``check, both key types every time``: the same with a second handshake on every check
  (what ``dane-monitor check`` does, and the exporter before the policy);
- ``probe only``: :func:`dane_monitor.probe.probe` alone, one handshake, no DNS, no verdict;
- ``floor``: the minimal client: ``asyncio.open_connection``, greeting, ``EHLO``,
  ``STARTTLS``, ``start_tls`` with one reused ``SSLContext``, ``QUIT`` — the least an asyncio
  Python program can do for the same dialogue; and the same with the ``EHLO`` inside TLS
  that senders send and our probe makes too (one round trip more; a server refusing it
  makes senders defer).

``--gc exporter`` (the default) runs every row, the floor's too, under the garbage collector
threshold the exporter sets in its serving and worker processes
(``dane_monitor.exporter.workers.GC_THRESHOLD``), since that is where the steady-state row's
checks run; ``--gc default`` keeps Python's (700), as a one-shot ``dane-monitor check`` has.

The ratio ours/floor is the target of issue 15 (at most 1.3 times, and 1.5 ms per endpoint).
``--profile FILE`` writes a cProfile of extra steady-state rounds and prints its top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import json
import pstats
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dane_monitor import settings
from dane_monitor.check import Checker
from dane_monitor.probe import probe


def serve(args: argparse.Namespace) -> None:
    """Child mode: serve the world, print one JSON line, run until stdin closes."""
    from dane_monitor.world import World, by_name, replicate

    scenarios = replicate([by_name(args.scenario)], args.copies)
    network = "127.0.5.0/24" if len(scenarios) < 200 else "127.5.0.0/16"
    world = World(scenarios, smtp_network=network)
    with world.running(timeout=600):
        info = {
            "dns": list(world.dns_address),
            "smtp_port": world.smtp_port,
            "anchor": world.trust_anchor(),
            "domains": [d.name for d in world.domains.values()],
            "endpoints": [[ep.address, host.name.rstrip(".")] for _, host, ep in world.endpoints()],
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def bounded(jobs: list[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
    limit = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with limit:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


# -- the floor ------------------------------------------------------------------------------


def floor_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def minimal_client(
    address: str, port: int, sni: str, ctx: ssl.SSLContext, ehlo_in_tls: bool = False
) -> bytes:
    """The dialogue with nothing around it: no deadlines, no parsing beyond the reply codes.
    ``ehlo_in_tls``: also EHLO inside TLS, as senders (and our probe) do."""
    reader, writer = await asyncio.open_connection(address, port)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line

    await reply()
    writer.write(b"EHLO bench.invalid\r\n")
    await reply()
    writer.write(b"STARTTLS\r\n")
    assert (await reply()).startswith(b"220")
    await writer.start_tls(ctx, server_hostname=sni)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    if ehlo_in_tls:
        writer.write(b"EHLO bench.invalid\r\n")
        await reply()
    writer.write(b"QUIT\r\n")
    await reply()
    writer.close()
    return der


# -- ours -----------------------------------------------------------------------------------


def make_checker(info: dict[str, Any], anchor: Path, concurrency: int, **kw: Any) -> Checker:
    accepted = inspect.signature(settings.make_checker).parameters
    missing = [k for k in kw if k not in accepted]
    if missing:
        raise SystemExit(f"this checkout's make_checker has no {', '.join(missing)}")
    host, port = info["dns"]
    return settings.make_checker(
        resolver=f"{host}:{port}",
        trust_anchor=anchor,
        connect_port=info["smtp_port"],
        step_timeout=5.0,
        concurrency=concurrency,
        **kw,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--scenario", default="good-ee")
    s.add_argument("--copies", type=int, default=100)
    parser.add_argument("--scenario", default="good-ee")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8, help="a multiple of --recheck")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--recheck", type=int, default=4, help="N of the steady-state row")
    parser.add_argument("--gc", choices=("exporter", "default"), default="exporter",
                        help="the exporter's garbage collector threshold, or Python's")  # fmt: skip
    args = parser.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    cmd = [sys.executable, __file__, "serve", "--scenario", args.scenario]
    cmd += ["--copies", str(args.copies)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="probe-cpu-") as tmp:
            anchor = Path(tmp) / "anchor.ds"
            anchor.write_text(info["anchor"])
            run(args, info, anchor)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(args: argparse.Namespace, info: dict[str, Any], anchor: Path) -> None:
    if args.gc == "exporter":
        from dane_monitor.exporter.workers import GC_THRESHOLD

        gc.set_threshold(GC_THRESHOLD, 10, 10)
    port = info["smtp_port"]
    endpoints: list[tuple[str, str]] = [tuple(e) for e in info["endpoints"]]  # type: ignore[misc]
    domains: list[str] = info["domains"]
    n = len(endpoints)
    conc = args.concurrency
    accepted = inspect.signature(settings.make_checker).parameters
    steady_kw: dict[str, Any] = {}
    if "recheck_other_key_type" in accepted:
        steady_kw["recheck_other_key_type"] = args.recheck
    if "transcripts" in accepted:
        steady_kw["transcripts"] = False
    steady = make_checker(info, anchor, conc, **steady_kw)
    both = make_checker(info, anchor, conc, **{**steady_kw, "recheck_other_key_type": 1}
                        if "recheck_other_key_type" in steady_kw else steady_kw)  # fmt: skip
    ctx = floor_context()

    def check_round(checker: Checker) -> Callable[[], float]:
        def go() -> float:
            jobs = [lambda d=d: checker.check_domain(d) for d in domains]
            c0 = cpu()
            results = asyncio.run(bounded(jobs, conc))
            spent = cpu() - c0
            bad = [r for r in results if r.verdict.value != "valid"]
            assert not bad, (bad[0].verdict, bad[0].headline)
            return spent

        return go

    probe_kw: dict[str, Any] = {}
    if "transcript" in inspect.signature(probe).parameters:
        probe_kw["transcript"] = False

    def probe_round() -> float:
        jobs = [lambda a=a, s=s: probe(a, port, sni=s, **probe_kw) for a, s in endpoints]
        c0 = cpu()
        results = asyncio.run(bounded(jobs, conc))
        spent = cpu() - c0
        assert all(r.ok for r in results), results[0].detail
        return spent

    def floor_round(ehlo_in_tls: bool = False) -> Callable[[], float]:
        def go() -> float:
            jobs = [lambda a=a, s=s: minimal_client(a, port, s, ctx, ehlo_in_tls)
                    for a, s in endpoints]  # fmt: skip
            c0 = cpu()
            results = asyncio.run(bounded(jobs, conc))
            spent = cpu() - c0
            assert all(results)
            return spent

        return go

    rows: dict[str, Callable[[], float]] = {
        f"check, steady state (N={args.recheck})": check_round(steady),
        "check, both key types every time": check_round(both),
        "probe only (one handshake)": probe_round,
        "floor + EHLO inside TLS (our dialogue)": floor_round(ehlo_in_tls=True),
        "floor: minimal asyncio client": floor_round(),
    }
    for fn in rows.values():  # warm-up: DNS caches, first sight of every endpoint, imports
        fn()
    figures: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.rounds):
        for label, fn in rows.items():
            figures[label].append(fn() / n)
    print(
        f"{n} endpoints ({args.scenario} x {args.copies}), concurrency {conc}, "
        f"mean of {args.rounds} rounds, CPU of this process per endpoint, "
        f"gc threshold {gc.get_threshold()[0]} ({args.gc})"
    )
    floor = statistics.mean(figures["floor: minimal asyncio client"])
    for label, values in figures.items():
        med = statistics.mean(values)
        spread = f"[{min(values) * 1000:.2f}-{max(values) * 1000:.2f}]"
        print(f"  {label:40} {med * 1000:6.2f} ms {spread:>15}  {med / floor:5.2f}x floor")
    if args.profile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.rounds):
            check_round(steady)()
        profiler.disable()
        profiler.dump_stats(args.profile)
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
