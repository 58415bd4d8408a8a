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


_STATE = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _resolver_check(args: argparse.Namespace) -> int:
    import json

    from dane_monitor.lookup.resolvercheck import check_resolver
    from dane_monitor.lookup.stub import Server, system_resolver

    try:
        server = Server.parse(args.resolver) if args.resolver else system_resolver()
    except ValueError as exc:
        print(
            f"dane-monitor resolver-check: bad --resolver {args.resolver!r}: {exc}", file=sys.stderr
        )
        return 3
    report = asyncio.run(
        check_resolver(
            server,
            signed_name=args.signed_name,
            bogus_name=args.bogus_name,
            rdtype=args.type,
            timeout=args.timeout,
        )
    )
    code = report.exit_code
    if args.json:
        print(json.dumps({**report.to_dict(), "state": _STATE[code]}, indent=2))
        return code
    verdict = "fit for DANE" if code in (0, 1) else "NOT fit for DANE"
    if code == 3:
        verdict = "not reachable"
    print(f"resolver {report.resolver}: {verdict} ({_STATE[code]})")
    for check in report.checks:
        mark = "ok" if check.ok else ("FAIL" if check.severity == "error" else "WARN")
        print(f"  {mark:4}  {check.code:14} {check.detail}")
    return code


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

    from dane_monitor.lookup.resolvercheck import DEFAULT_BOGUS, DEFAULT_SIGNED

    rc = sub.add_parser(
        "resolver-check",
        help="is this resolver fit for DANE? (validates, rejects bogus, EDNS0/DO, TCP)",
        description="Checks that a resolver sets AD on a signed name, answers SERVFAIL for a "
        "bogus one, handles EDNS0 and DO, answers over TCP, and runs on loopback. Exit codes "
        "follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    rc.add_argument("--resolver", metavar="ADDR[:PORT]", help="default: /etc/resolv.conf's first")
    rc.add_argument("--signed-name", default=DEFAULT_SIGNED, help="a name that validates")
    rc.add_argument("--bogus-name", default=DEFAULT_BOGUS, help="a name that must fail")
    rc.add_argument("--type", default="A", help="record type asked for both names")
    rc.add_argument("--timeout", type=float, default=3.0, help="seconds per query")
    rc.add_argument("--json", action="store_true", help="machine-readable output")
    rc.set_defaults(func=_resolver_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
