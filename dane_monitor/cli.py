"""The ``dane-monitor`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from dane_monitor import __version__


def _world(args: argparse.Namespace) -> int:
    from dane_monitor.world import CATALOGUE, World, by_name

    if args.list:
        for sc in CATALOGUE:
            print(f"{sc.name:22} {sc.expect.verdict:9} {sc.summary}")
        return 0
    try:
        scenarios = [by_name(n) for n in args.scenario] if args.scenario else CATALOGUE
    except KeyError as exc:
        print(f"dane-monitor world: {exc.args[0]} (see --list)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    world = World(scenarios, dns_host=args.dns_host)
    built = time.perf_counter()
    anchor_dir = Path(args.anchor_dir or tempfile.mkdtemp(prefix="dane-world-"))
    anchor_dir.mkdir(parents=True, exist_ok=True)
    ta = world.write_trust_anchor(anchor_dir / "trust-anchor.ds")
    bind_ta = world.write_bind_trust_anchor(anchor_dir / "trust-anchor.bind")

    async def serve() -> None:
        async with world:
            host, port = world.dns_address
            print(
                f"dane-monitor {__version__}: local world of {len(world.domains)} domains, "
                f"built in {built - started:.2f}s, serving in {time.perf_counter() - started:.2f}s"
            )
            print(f"DNS server     {host} port {port} (UDP and TCP)")
            print(f"SMTP servers   port {world.smtp_port} on the addresses below")
            print(f"trust anchor   {ta} (DS, zone-file format)")
            print(f"               {bind_ta} (BIND trust-anchors, for delv -a)")
            print()
            print(f"{'domain':34} {'expected':9} {'MX host':40} address")
            for domain in world.domains.values():
                expected = domain.scenario.expect.verdict
                if not domain.hosts:
                    print(f"{domain.name:34} {expected:9} -")
                for mx in domain.hosts:
                    for ep in mx.endpoints:
                        print(f"{domain.name:34} {expected:9} {mx.name:40} {ep.address}")
            first = next(iter(world.domains.values()))
            print()
            print("Try:")
            print(f"  delv @{host} -p {port} -a {bind_ta} +root=. {first.name} MX")
            for mx in first.hosts[:1]:
                ep, rdata = mx.endpoints[0], (mx.tlsa_rdatas or ("3 1 1 00",))[0]
                print(
                    f"  openssl s_client -starttls smtp -connect {ep.address}:{world.smtp_port}"
                    f" -dane_tlsa_domain {mx.name[:-1]} -dane_tlsa_rrdata '{rdata}'"
                )
            print("Ctrl-C stops." if args.duration is None else f"Stopping in {args.duration}s.")
            sys.stdout.flush()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)

    asyncio.run(serve())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dane-monitor",
        description="Checks, monitors and tests DANE for SMTP (RFC 7672).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    world = sub.add_parser(
        "world",
        help="serve the local DNSSEC + STARTTLS world (the scenario catalogue) on loopback",
        description="Serve the scenario catalogue: a private signed DNS hierarchy and "
        "STARTTLS SMTP servers on 127.0.0.0/8, for trying tools against known cases.",
    )
    world.add_argument("--list", action="store_true", help="list the scenarios and exit")
    world.add_argument(
        "--scenario", action="append", metavar="NAME", help="serve only this scenario (repeatable)"
    )
    world.add_argument("--dns-host", default="127.0.0.1", help="DNS server address")
    world.add_argument("--anchor-dir", help="where to write the trust-anchor files")
    world.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: never)"
    )
    world.set_defaults(func=_world)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
