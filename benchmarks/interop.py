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
   seconds of the checking process per warm endpoint (the figure that sizes an exporter)
   with the exporter's key-type policy (``settings.make_checker(...,
   recheck_other_key_type=RECHECK_KEY_TYPE, transcripts=False)`` as
   ``dane_monitor/exporter/scheduler.py`` makes it: the mean over RECHECK_KEY_TYPE warm
   rounds, since the second key type's handshake comes back every Nth check) and with the
   CLI's (both key types on every check), beside the CPU of the posttls-finger processes
   per endpoint in the same run (kernel accounting of the waited-for children: unshare,
   sh, xargs and posttls-finger; not Unbound, which does posttls-finger's DNSSEC work, and
   which our resolver mode leans on too).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dane_monitor import settings
from dane_monitor.check import Checker
from dane_monitor.exporter.scheduler import RECHECK_KEY_TYPE
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
        wall, _, out = self.run_cpu(dests, parallel)
        return wall, out

    def run_cpu(self, dests: list[str], parallel: int = 1) -> tuple[float, float, str]:
        """Wall seconds, CPU seconds of the processes it ran (the kernel's accounting of
        waited-for children), and their output."""
        c, t = children_cpu(), time.perf_counter()
        p = subprocess.run(
            self.script(dests, parallel),
            input="\n".join(dests) if len(dests) > 1 else None,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        return time.perf_counter() - t, children_cpu() - c, p.stdout + p.stderr


def namespace_overhead(finger: Finger, samples: int) -> tuple[float, float]:
    """Wall and CPU of the mount namespace alone (unshare, sh, mount), medians."""
    script = f"mount --bind {finger.dir}/resolv.conf /etc/resolv.conf && true"
    return medians(lambda: _time(["unshare", "-m", "sh", "-c", script]), samples)


# -- our checker --------------------------------------------------------------------------------


#: Key-type policies: the exporter's background checks (the other key type's handshake on
#: first sight, a changed leaf or TLSA RRset, and every RECHECK_KEY_TYPE-th check; no
#: transcripts), and the CLI's ``dane-monitor check`` (both key types every time; no
#: transcripts without --debug).
POLICIES = {
    "exporter": {"recheck_other_key_type": RECHECK_KEY_TYPE, "transcripts": False},
    "cli": {"recheck_other_key_type": 1, "transcripts": False},
}


def checker(
    world: Served, mode: str, resolver: str | None, concurrency: int, policy: str = "cli"
) -> Checker:
    """A checker as ``settings.make_checker`` makes it for ``policy`` (:data:`POLICIES`)."""
    if mode == "local":
        where = {"resolver": world.dns, "trust_anchor": world.anchor}
    else:
        where = {"resolver": resolver, "validation": "resolver"}
    return settings.make_checker(
        **where,  # type: ignore[arg-type]
        connect_port=world.smtp_port,
        step_timeout=5.0,
        concurrency=concurrency,
        **POLICIES[policy],  # type: ignore[arg-type]
    )


async def check_all(c: Checker, domains: list[str], concurrency: int) -> list:
    limit = asyncio.Semaphore(concurrency)

    async def one(d: str):
        async with limit:
            return await c.check_domain(d)

    return await asyncio.gather(*(one(d) for d in domains))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_round(c: Checker, domains: list[str], concurrency: int) -> tuple[float, float, list]:
    c0, t0 = cpu(), time.perf_counter()
    results = asyncio.run(check_all(c, domains, concurrency))
    return time.perf_counter() - t0, cpu() - c0, results


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:7.{digits}f} ms"


# -- 1. one full domain check -------------------------------------------------------------------


def single(tmp: Path, samples: int) -> None:
    world = start_world(1, tmp)
    unbound = start_unbound(world)
    try:
        (domain,) = world.domains
        dest = f"{domain.rstrip('.')}:{world.smtp_port}"
        resolver = f"{unbound.host}:{unbound.port}"
        finger = Finger(unbound.host, tmp)
        print(
            f"\n1. one full domain check: {domain} (1 MX host, 1 address, DANE-EE match); "
            "wall time, and CPU of the checking processes (ours: this process in-process, "
            "the child for `dane-monitor check`; posttls-finger: its processes), medians"
        )
        _, out = finger.run([dest])
        assert "Verified TLS connection established" in out, out

        def finger_cold() -> tuple[float, float]:
            unbound.stop()
            unbound.start(timeout=60)
            return finger.run_cpu([dest])[:2]

        rows = [("posttls-finger (process), Unbound cold", medians(finger_cold, samples))]
        finger.run([dest])
        rows.append(
            (
                "posttls-finger (process), Unbound warm",
                medians(lambda: finger.run_cpu([dest])[:2], samples),
            )
        )
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

        def proc(extra: list[str]) -> tuple[float, float]:
            c, t = children_cpu(), time.perf_counter()
            p = subprocess.run(cli + extra, capture_output=True, text=True)
            wall, spent = time.perf_counter() - t, children_cpu() - c
            assert json.loads(p.stdout)["verdict"] == "valid", p.stdout
            return wall, spent

        rows += [
            ("dane-monitor check (process), local mode", medians(lambda: proc(local), samples)),
            (
                "dane-monitor check (process), resolver mode, Unbound warm",
                medians(lambda: proc(remote), samples),
            ),
            (
                "  of which dane-monitor --version (start-up)",
                medians(lambda: _time(["dane-monitor", "--version"]), samples),
            ),
        ]

        def in_process(c: Checker) -> tuple[float, float]:
            wall, spent, results = timed_round(c, [domain], 1)
            assert results[0].verdict.value == "valid", results[0].headline
            return wall, spent

        for mode in ("local", "resolver"):

            def cold(mode: str = mode) -> tuple[float, float]:
                if mode == "resolver":
                    unbound.stop()
                    unbound.start(timeout=60)
                return in_process(checker(world, mode, resolver, 50))

            rows.append((f"Checker in-process, {mode} mode, cold", medians(cold, samples)))
            for policy in ("cli", "exporter"):
                warm_checker = checker(world, mode, resolver, 50, policy)
                in_process(warm_checker)
                # the exporter's figure: the mean of RECHECK_KEY_TYPE checks in a row, as
                # its second key type comes back every Nth check
                rounds = 1 if policy == "cli" else RECHECK_KEY_TYPE

                def warm(c: Checker = warm_checker, k: int = rounds) -> tuple[float, float]:
                    got = [in_process(c) for _ in range(k)]
                    return statistics.mean(w for w, _ in got), statistics.mean(s for _, s in got)

                rows.append(
                    (
                        f"Checker in-process, {mode} mode, warm, {policy}'s policy",
                        medians(warm, samples),
                    )
                )
        width = max(len(r[0]) for r in rows)
        base = dict(rows)
        print(f"  {'':{width}}  {'wall':>10} {'CPU':>10}")
        for label, (wall, spent) in rows:
            print(f"  {label:{width}}  {ms(wall)} {ms(spent, 2)}")
        pf_wall, pf_cpu = base["posttls-finger (process), Unbound warm"]
        for label in (
            "dane-monitor check (process), local mode",
            "Checker in-process, local mode, warm, cli's policy",
            "Checker in-process, resolver mode, warm, cli's policy",
            "Checker in-process, local mode, warm, exporter's policy",
        ):
            wall, spent = base[label]
            print(
                f"  ratio {label} / posttls-finger warm: wall {wall / pf_wall:5.2f}, "
                f"CPU {spent / pf_cpu:5.2f}"
            )
    finally:
        unbound.stop()
        world.stop()


def medians(fn: Callable[[], tuple[float, float]], samples: int) -> tuple[float, float]:
    """The medians of ``samples`` runs of ``fn``, each figure on its own: (wall, CPU)."""
    got = [fn() for _ in range(samples)]
    return statistics.median(w for w, _ in got), statistics.median(c for _, c in got)


def _time(cmd: list[str]) -> tuple[float, float]:
    c, t = children_cpu(), time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t, children_cpu() - c


# -- 2. endpoints per second and 3. memory --------------------------------------------------


def scaling(tmp: Path, sizes: list[int], concurrency: int, parallel: int) -> None:
    n_rounds = RECHECK_KEY_TYPE
    print(
        f"\n2. endpoints per second (good-ee copies, 1 endpoint each; checker concurrency "
        f"{concurrency}, posttls-finger {parallel} processes at once). CPU per warm endpoint: "
        f"this process, the mean of {n_rounds} warm rounds; exporter = the exporter's "
        f"key-type policy (the other key type every {RECHECK_KEY_TYPE}th check), cli = both "
        "key types every check; p-finger = the posttls-finger processes, same run"
    )
    print(
        f"  {'endpoints':>9}  {'mode':8} {'cold/s':>8} {'warm/s':>8} "
        f"{'CPU exporter':>13} {'CPU cli':>10}  {'p-finger/s':>10} {'p-finger CPU':>13}"
    )
    for n in sizes:
        world = start_world(n, tmp)
        unbound = start_unbound(world)
        try:
            resolver = f"{unbound.host}:{unbound.port}"
            finger = Finger(unbound.host, tmp)
            dests = [f"{d.rstrip('.')}:{world.smtp_port}" for d in world.domains]
            finger.run(dests, parallel)  # warm Unbound
            elapsed, finger_cpu, out = finger.run_cpu(dests, parallel)
            verified = out.count("Verified TLS connection established")
            assert verified == n, (verified, out[-2000:])
            finger_rate = n / elapsed
            for mode in ("local", "resolver"):
                if mode == "resolver":  # cold means Unbound's cache too
                    unbound.stop()
                    unbound.start(timeout=120)
                c = checker(world, mode, resolver, concurrency, "exporter")
                cold, _, _ = timed_round(c, world.domains, concurrency)
                walls, cpus = [], []
                for _ in range(n_rounds):
                    warm, warm_cpu, results = timed_round(c, world.domains, concurrency)
                    assert all(r.verdict.value == "valid" for r in results), results[:1]
                    walls.append(warm)
                    cpus.append(warm_cpu)
                both = checker(world, mode, resolver, concurrency, "cli")
                timed_round(both, world.domains, concurrency)  # its DNS cache warm
                cli_cpu = [timed_round(both, world.domains, concurrency)[1] for _ in range(2)]
                print(
                    f"  {world.endpoints:9}  {mode:8} {n / cold:8.1f} "
                    f"{n * n_rounds / sum(walls):8.1f} {ms(sum(cpus) / n_rounds / n, 2):>13} "
                    f"{ms(statistics.mean(cli_cpu) / n, 2):>10}  "
                    + (
                        f"{finger_rate:10.1f} {ms(finger_cpu / n, 2):>13}"
                        if mode == "local"
                        else f"{'':10} {'':13}"
                    )
                )
            if n == max(sizes):
                memory(world, checker(world, "local", None, concurrency, "exporter"), concurrency)
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
