"""The checker against the tools people use: Postfix's posttls-finger, behind Unbound.

    sudo python3 benchmarks/interop.py [--sizes 1,10,100,1000] [--samples 5]
                                       [--concurrency 50] [--finger-parallel 10]

Needs root (posttls-finger resolves through /etc/resolv.conf, so it runs in a private mount
namespace with a resolv.conf naming an Unbound on port 53 of 127.0.153.x), posttls-finger
(Debian postfix) and unbound. Figures and their reading: docs/interop.md.

The world is served by a separate process (``benchmarks/interop.py serve``): N copies of
the good-ee scenario (one MX host, one address, a DANE-EE 3 1 1 record that matches), with
the TLSA records also at ``_<port>._tcp`` for posttls-finger. Unbound runs with its cache
(``Unbound(cache=True)``) and validates from the world's anchor.

1. One full domain check, cold and warm, ours versus ``posttls-finger -l dane DOMAIN:PORT``
   (MX, A, TLSA through Unbound, STARTTLS, handshake, DANE match):
   - posttls-finger: a fresh process each time (as it is used); cold = Unbound restarted
     (empty cache), warm = Unbound primed;
   - ``dane-monitor check`` as a process (Python start-up and imports included; local mode
     is always cold: the process keeps no cache);
   - our Checker in-process (what the exporter runs): cold = a fresh validator, warm = the
     same validator again; local mode (validating from the anchor) and resolver mode (AD
     bit of the same Unbound).
2. Endpoints per second at each size, cold and warm, local and resolver mode, and
   posttls-finger run over all N domains with --finger-parallel processes at once; CPU
   seconds of the checking process per endpoint (the figure that sizes an exporter).
3. Memory per target held: tracemalloc, the bytes the DomainResults of the largest size
   keep alive (what an exporter holds between scrapes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from dane_monitor.check import Checker, Options
from dane_monitor.lookup import make_validator
from dane_monitor.settings import probe_timeouts
from dane_monitor.world.unbound import Unbound, start_on_port_53

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


# -- the world, in its own process ------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Child mode: serve the world, print what the parent needs as one JSON line, and run
    until stdin closes."""
    from dane_monitor.world import World, by_name, replicate

    scenarios = [by_name(n) for n in args.scenario]
    if args.copies > 1:
        scenarios = replicate(scenarios, args.copies)
    network = "127.0.3.0/24" if len(scenarios) < 200 else "127.3.0.0/16"
    world = World(scenarios, tlsa_on_smtp_port=True, smtp_network=network)
    with world.running(timeout=600):
        print(
            json.dumps(
                {
                    "dns": list(world.dns_address),
                    "smtp_port": world.smtp_port,
                    "anchor": world.trust_anchor(),
                    "zones": [n.to_text() for n in world.hierarchy.zones],
                    "domains": [d.name for d in world.domains.values()],
                    "endpoints": sum(1 for _ in world.endpoints()),
                }
            ),
            flush=True,
        )
        sys.stdin.read()


@dataclass
class Served:
    proc: subprocess.Popen[str]
    dns: str
    smtp_port: int
    anchor: Path
    anchor_text: str
    zones: list[str]
    domains: list[str]
    endpoints: int

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_world(copies: int, tmp: Path, scenario: str = "good-ee") -> Served:
    cmd = [sys.executable, __file__, "serve", "--scenario", scenario, "--copies", str(copies)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    anchor = tmp / f"anchor-{copies}.ds"
    anchor.write_text(info["anchor"])
    return Served(
        proc,
        f"{info['dns'][0]}:{info['dns'][1]}",
        info["smtp_port"],
        anchor,
        info["anchor"],
        info["zones"],
        info["domains"],
        info["endpoints"],
    )


# -- Unbound on port 53 and posttls-finger in a mount namespace --------------------------------


def start_unbound(world: Served) -> Unbound:
    host, port = world.dns.rsplit(":", 1)
    return start_on_port_53(
        lambda address: Unbound(
            (host, int(port)),
            world.anchor_text,
            zones=world.zones,
            host=address,
            port=53,
            cache=True,
        ),
        timeout=60,
    )


class Finger:
    def __init__(self, resolver: str, tmp: Path) -> None:
        self.dir = tmp / f"finger-{resolver}"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "main.cf").write_text("compatibility_level = 3.6\n")
        (self.dir / "resolv.conf").write_text(f"nameserver {resolver}\noptions edns0 trust-ad\n")

    def script(self, dests: list[str], parallel: int = 1) -> list[str]:
        """One mount namespace for a batch of posttls-finger runs, ``parallel`` at once."""
        finger = f"MAIL_CONFIG={self.dir} posttls-finger -c -l dane -t 5 -T 10 -L summary"
        mount = f"mount --bind {self.dir}/resolv.conf /etc/resolv.conf"
        if len(dests) == 1:
            return ["unshare", "-m", "sh", "-c", f"{mount} && {finger} '{dests[0]}'"]
        return [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"{mount} && xargs -P {parallel} -n 1 sh -c '{finger} \"$0\"'",
        ]

    def run(self, dests: list[str], parallel: int = 1) -> tuple[float, str]:
        t = time.perf_counter()
        p = subprocess.run(
            self.script(dests, parallel),
            input="\n".join(dests) if len(dests) > 1 else None,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        return time.perf_counter() - t, p.stdout + p.stderr


def namespace_overhead(finger: Finger, samples: int) -> float:
    script = f"mount --bind {finger.dir}/resolv.conf /etc/resolv.conf && true"
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        subprocess.run(["unshare", "-m", "sh", "-c", script], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# -- our checker --------------------------------------------------------------------------------


def checker(world: Served, mode: str, resolver: str | None, concurrency: int) -> Checker:
    if mode == "local":
        validator = make_validator(world.dns, trust_anchor=world.anchor)
    else:
        validator = make_validator(resolver, mode="resolver")
    options = Options(
        connect_port=world.smtp_port, timeouts=probe_timeouts(5.0), concurrency=concurrency
    )
    return Checker(validator, options)


async def check_all(c: Checker, domains: list[str], concurrency: int) -> list:
    limit = asyncio.Semaphore(concurrency)

    async def one(d: str):
        async with limit:
            return await c.check_domain(d)

    return await asyncio.gather(*(one(d) for d in domains))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_round(c: Checker, domains: list[str], concurrency: int) -> tuple[float, float, list]:
    c0, t0 = cpu(), time.perf_counter()
    results = asyncio.run(check_all(c, domains, concurrency))
    return time.perf_counter() - t0, cpu() - c0, results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def median_of(fn, samples: int) -> float:
    return statistics.median(fn() for _ in range(samples))


# -- 1. one full domain check -------------------------------------------------------------------


def single(tmp: Path, samples: int) -> None:
    world = start_world(1, tmp)
    unbound = start_unbound(world)
    try:
        (domain,) = world.domains
        dest = f"{domain.rstrip('.')}:{world.smtp_port}"
        resolver = f"{unbound.host}:{unbound.port}"
        finger = Finger(unbound.host, tmp)
        print(f"\n1. one full domain check: {domain} (1 MX host, 1 address, DANE-EE match)")
        _, out = finger.run([dest])
        assert "Verified TLS connection established" in out, out

        def finger_cold() -> float:
            unbound.stop()
            unbound.start(timeout=60)
            return finger.run([dest])[0]

        rows = [
            ("posttls-finger (process), Unbound cold", median_of(finger_cold, samples)),
        ]
        finger.run([dest])
        warm_finger = median_of(lambda: finger.run([dest])[0], samples)
        rows.append(("posttls-finger (process), Unbound warm", warm_finger))
        rows.append(("  of which unshare + bind mount", namespace_overhead(finger, samples)))

        cli = [
            "dane-monitor",
            "check",
            domain,
            "--json",
            "--connect-port",
            str(world.smtp_port),
            "--timeout",
            "5",
        ]
        local = ["--resolver", world.dns, "--trust-anchor", str(world.anchor)]
        remote = ["--resolver", resolver, "--validation", "resolver"]

        def proc(extra: list[str]) -> float:
            t = time.perf_counter()
            p = subprocess.run(cli + extra, capture_output=True, text=True)
            assert json.loads(p.stdout)["verdict"] == "valid", p.stdout
            return time.perf_counter() - t

        rows += [
            ("dane-monitor check (process), local mode", median_of(lambda: proc(local), samples)),
            (
                "dane-monitor check (process), resolver mode, Unbound warm",
                median_of(lambda: proc(remote), samples),
            ),
            (
                "  of which dane-monitor --version (start-up)",
                median_of(lambda: _time(["dane-monitor", "--version"]), samples),
            ),
        ]

        for mode in ("local", "resolver"):

            def cold(mode: str = mode) -> float:
                if mode == "resolver":
                    unbound.stop()
                    unbound.start(timeout=60)
                c = checker(world, mode, resolver, 50)
                return timed_round(c, [domain], 1)[0]

            warm_checker = checker(world, mode, resolver, 50)
            timed_round(warm_checker, [domain], 1)
            rows.append((f"Checker in-process, {mode} mode, cold", median_of(cold, samples)))
            rows.append(
                (
                    f"Checker in-process, {mode} mode, warm",
                    median_of(lambda c=warm_checker: timed_round(c, [domain], 1)[0], samples),
                )
            )
        width = max(len(r[0]) for r in rows)
        base = dict(rows)
        for label, t in rows:
            print(f"  {label:{width}}  {ms(t)}")
        pf = base["posttls-finger (process), Unbound warm"]
        for label in (
            "dane-monitor check (process), local mode",
            "Checker in-process, local mode, warm",
            "Checker in-process, resolver mode, warm",
        ):
            print(f"  ratio {label} / posttls-finger warm: {base[label] / pf:5.2f}")
    finally:
        unbound.stop()
        world.stop()


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t


# -- 2. endpoints per second and 3. memory --------------------------------------------------


def scaling(tmp: Path, sizes: list[int], concurrency: int, parallel: int) -> None:
    print(
        f"\n2. endpoints per second (good-ee copies, 1 endpoint each; checker concurrency "
        f"{concurrency}, posttls-finger {parallel} processes at once)"
    )
    print(
        f"  {'endpoints':>9}  {'mode':8} {'cold/s':>8} {'warm/s':>8} "
        f"{'CPU/endpoint (warm)':>20}  {'p-finger/s':>10}"
    )
    for n in sizes:
        world = start_world(n, tmp)
        unbound = start_unbound(world)
        try:
            resolver = f"{unbound.host}:{unbound.port}"
            finger_rate = None
            finger = Finger(unbound.host, tmp)
            dests = [f"{d.rstrip('.')}:{world.smtp_port}" for d in world.domains]
            finger.run(dests, parallel)  # warm Unbound
            elapsed, out = finger.run(dests, parallel)
            verified = out.count("Verified TLS connection established")
            assert verified == n, (verified, out[-2000:])
            finger_rate = n / elapsed
            for mode in ("local", "resolver"):
                if mode == "resolver":  # cold means Unbound's cache too
                    unbound.stop()
                    unbound.start(timeout=120)
                c = checker(world, mode, resolver, concurrency)
                cold, _, _ = timed_round(c, world.domains, concurrency)
                warm, warm_cpu, results = timed_round(c, world.domains, concurrency)
                assert all(r.verdict.value == "valid" for r in results), results[:1]
                print(
                    f"  {world.endpoints:9}  {mode:8} {n / cold:8.1f} {n / warm:8.1f} "
                    f"{ms(warm_cpu / n):>20}  "
                    + (f"{finger_rate:10.1f}" if mode == "local" else "")
                )
            if n == max(sizes):
                memory(world, checker(world, "local", None, concurrency), concurrency)
        finally:
            unbound.stop()
            world.stop()


def memory(world: Served, c: Checker, concurrency: int) -> None:
    timed_round(c, world.domains, concurrency)  # warm caches first: measure results only
    gc.collect()
    tracemalloc.start()
    results = asyncio.run(check_all(c, world.domains, concurrency))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    size_json = sum(len(json.dumps(r.to_dict())) for r in results)
    del results
    gc.collect()
    released = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(world.domains)
    print(
        f"\n3. memory per target held ({n} DomainResults of a 1-endpoint domain): "
        f"{(held - released) / n / 1024:.1f} KiB each (tracemalloc); "
        f"their JSON: {size_json / n / 1024:.1f} KiB each"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   peak RSS of the benchmark process: {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--scenario", action="append", required=True)
    s.add_argument("--copies", type=int, default=1)
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--finger-parallel", type=int, default=10)
    parser.add_argument("--skip-single", action="store_true")
    args = parser.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    if os.geteuid() != 0:
        sys.exit("benchmarks/interop.py: needs root (mount namespace, port 53)")
    for tool in ("posttls-finger", "unbound", "unshare"):
        if not shutil.which(tool, path=SBIN):
            sys.exit(f"benchmarks/interop.py: {tool} is not installed")
    print(f"dane-monitor interop benchmark on {os.cpu_count()} CPUs; medians of {args.samples}")
    with tempfile.TemporaryDirectory(prefix="dane-bench-") as tmp:
        if not args.skip_single:
            single(Path(tmp), args.samples)
        scaling(
            Path(tmp),
            [int(x) for x in args.sizes.split(",")],
            args.concurrency,
            args.finger_parallel,
        )


if __name__ == "__main__":
    main()
