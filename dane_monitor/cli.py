"""The ``dane-monitor`` command.

Start-up is part of the interface (a monitoring system runs ``check`` every few minutes, a
user reads ``--help``): this module imports only :mod:`sys` and :mod:`time` when it is
loaded. ``--version`` and ``--help`` are answered without argparse (:func:`top_help`); for
a command, only that command's parser is built in full (:mod:`dane_monitor._argparse`; the
other commands are their help line), and the command imports what it uses when it runs. So
``--help`` imports neither argparse, the DNS library, cryptography nor asyncio
(``tests/test_cli_startup.py``), and ``check`` what a check needs (``benchmarks/startup.py``
measures both against ``python -c pass`` and ``posttls-finger``).
"""

from __future__ import annotations

import sys
import time

from dane_monitor import __version__
from dane_monitor.extras import MissingExtra

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any

    from dane_monitor._argparse import Parser
    from dane_monitor.check import Checker
    from dane_monitor.lookup import ResolverValidator, Validator
    from dane_monitor.settings import Thresholds
    from dane_monitor.world import World

#: Exit code of a usage error: UNKNOWN, as the monitoring-plugin guidelines want (never
#: argparse's 2, which a monitoring system would read as CRITICAL).
USAGE = 3
#: Exit code after Ctrl-C: 128 + SIGINT, as a shell reports it.
INTERRUPTED = 130
#: Exit code when the reader of the output went away: 128 + SIGPIPE, as a shell reports it.
BROKEN_PIPE = 141

#: The commands in the order a user needs them: check a domain, fix its records, guard a
#: renewal, look closer at DNS, then monitor; the demo and the test world last. Each with the
#: line ``dane-monitor --help`` shows (serve's and demo's are the ones ``exporter/cli.py``
#: gives them: tests/test_cli_startup.py holds the two in step).
COMMANDS: dict[str, str] = {
    "check": "check a mail domain (or one MX host) the way a DANE-enforcing sender does",
    "tlsa": "print the TLSA records a certificate or a live server needs",
    "preflight": "does a not-yet-deployed certificate match the published TLSA records?",
    "rollover": "change a key without an outage: what to publish, how long to wait, when to "
    "deploy (plan, status)",
    "lookup": "one DNS lookup, validated: status, reason, signature expiry",
    "resolver-check": "is this resolver fit for DANE? (validates, rejects bogus, EDNS0/DO, TCP)",
    "tlsrpt": "import TLS-RPT reports (RFC 8460): the sessions real senders saw fail, and why",
    "serve": "the Prometheus exporter: background checks on /metrics, one-off checks on /probe",
    "demo": "the exporter against the built-in local world: real metrics, no internet",
    "world": "serve the local DNSSEC + STARTTLS world (the scenario catalogue) on loopback",
}
DESCRIPTION = "Checks, monitors and tests DANE for SMTP (RFC 7672)."
EPILOG = "'dane-monitor COMMAND --help' describes a command's options."
#: Commands whose parsers ``dane_monitor.exporter.cli.add_parsers`` adds (both at once).
_EXPORTER_COMMANDS = ("serve", "demo")


class UsageError(Exception):
    """A command line that cannot be used: ``prog: what is wrong`` on one line, exit 3."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: {message}")
        self.prog = prog


def _arg(parse: Callable[[Any], Any], name: str) -> Callable[[str], Any]:
    from dane_monitor import settings

    return settings.arg_type(parse, name)


def _resolver_text(text: str) -> str:
    from dane_monitor import settings

    settings.parse_resolver(text)
    return text.strip()


def _ip_address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"an IP address (like 127.0.0.1 or ::1), not {text!r}") from None


def _world(args: argparse.Namespace) -> int:
    from dane_monitor.world import CATALOGUE, World, by_name, replicate
    from dane_monitor.world.scratch import scratch_dir

    if args.list:
        for sc in CATALOGUE:
            print(f"{sc.name:22} {sc.expect.verdict:9} {sc.summary}")
        return 0
    try:
        scenarios = [by_name(n) for n in args.scenario] if args.scenario else CATALOGUE
    except KeyError as exc:
        print(f"dane-monitor world: {exc.args[0]} (see --list)", file=sys.stderr)
        return USAGE

    started = time.perf_counter()
    if args.copies > 1:
        scenarios = replicate(scenarios, args.copies)
    network = "127.0.2.0/24" if len(scenarios) < 100 else "127.2.0.0/16"
    world = World(scenarios, dns_host=args.dns_host, smtp_network=network)
    built = time.perf_counter()
    # Without --anchor-dir the trust anchors live in a scratch folder removed however the
    # world ends (also when its servers cannot start, on Ctrl-C and on SIGTERM).
    with scratch_dir(args.anchor_dir, "dane-world-") as anchor_dir:
        _serve_world(args, world, anchor_dir, started, built)
    return 0


def _serve_world(
    args: argparse.Namespace, world: World, anchor_dir: Path, started: float, built: float
) -> None:
    import asyncio
    import contextlib
    import signal

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
            if world.signed.secondaries:  # zones with several name servers (issue 16)
                print()
                print(f"{'zone':34} {'name server':40} {'address':15} serial     behaviour")
                for origin in world.signed.secondaries:
                    for ns in world.nameservers(origin.to_text()):
                        print(
                            f"{ns.zone:34} {ns.name:40} {ns.address:15} {ns.serial:<10} "
                            f"{'primary' if ns.primary else ns.behaviour.value}"
                        )
            first = next(iter(world.domains.values()))
            print()
            print("Try:")
            print(
                f"  dane-monitor check {first.name} --resolver {host}:{port} "
                f"--trust-anchor {ta} --connect-port {world.smtp_port}"
            )
            print(f"  delv @{host} -p {port} -a {bind_ta} +root=. {first.name} MX")
            for mx in first.hosts[:1]:
                ep, rdata = mx.endpoints[0], (mx.tlsa_rdatas or ("3 1 1 00",))[0]
                print(
                    f"  openssl s_client -starttls smtp -connect {ep.address}:{world.smtp_port}"
                    f" -dane_tlsa_domain {mx.name[:-1]} -dane_tlsa_rrdata '{rdata}'"
                )
            # The handlers are in place before the line that invites Ctrl-C is printed.
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print("Ctrl-C stops." if args.duration is None else f"Stopping in {args.duration}s.")
            sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)

    asyncio.run(serve())


_STATE = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _resolver_check(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from dane_monitor import settings
    from dane_monitor.lookup.resolvercheck import DEFAULT_BOGUS, DEFAULT_SIGNED, check_resolver
    from dane_monitor.lookup.stub import Server, system_resolver

    try:
        server = Server(*settings.parse_resolver(args.resolver)) if args.resolver else None
    except ValueError as exc:
        print(
            f"dane-monitor resolver-check: bad --resolver {args.resolver!r}: {exc}", file=sys.stderr
        )
        return 3
    report = asyncio.run(
        check_resolver(
            server or system_resolver(),
            signed_name=args.signed_name or DEFAULT_SIGNED,
            bogus_name=args.bogus_name or DEFAULT_BOGUS,
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


def make_validator(args: argparse.Namespace, prog: str) -> Validator | ResolverValidator | str:
    """The validator the options ask for, or an error message for the user."""
    from dane_monitor import settings
    from dane_monitor.lookup import TrustAnchorError

    try:
        return settings.make_validator(
            args.resolver,
            trust_anchor=args.trust_anchor,
            validation=args.validation,
            timeout=args.dns_timeout,
        )
    except TrustAnchorError as exc:
        return f"{prog}: {exc}"
    except ValueError as exc:
        return f"{prog}: bad --resolver {args.resolver!r}: {exc}"


def _lookup(args: argparse.Namespace) -> int:
    import asyncio
    import json

    import dns.rdatatype

    from dane_monitor.lookup import Status

    validator = make_validator(args, "dane-monitor lookup")
    if isinstance(validator, str):
        print(validator, file=sys.stderr)
        return 3
    try:
        rdtype = dns.rdatatype.from_text(args.type)
        name = args.name if args.name.endswith(".") else args.name + "."
        answer = asyncio.run(validator.lookup(name, rdtype))
    except Exception as exc:  # a name or type the user mistyped
        print(f"dane-monitor lookup: {exc}", file=sys.stderr)
        return 3
    code = {Status.SECURE: 0, Status.INSECURE: 1, Status.BOGUS: 2}.get(answer.status, 3)
    qtype = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(answer.qtype))
    expiration = answer.expiration
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiration)) if expiration else None
    records = [r.to_text() for r in answer.rrset] if answer.rrset is not None else []
    if args.json:
        print(
            json.dumps(
                {
                    "name": str(answer.qname),
                    "type": qtype,
                    "status": answer.status.value,
                    "kind": answer.kind.value,
                    "reason": answer.reason,
                    "detail": answer.detail,
                    "records": records,
                    "ttl": answer.ttl,
                    "rrsig_expiration": expires,
                    "signer": str(answer.signer) if answer.signer else None,
                    "cnames": [
                        [str(c.owner), str(c.target), c.status.value, c.dname and str(c.dname)]
                        for c in answer.cnames
                    ],
                },
                indent=2,
            )
        )
        return code
    print(f"{answer.qname} {qtype}: {answer.status} {answer.kind}")
    if answer.reason:
        print(f"  {answer.reason}: {answer.detail}")
    for step in answer.cnames:
        via = f" (from the DNAME at {step.dname})" if step.dname else ""
        print(f"  CNAME {step.owner} -> {step.target}{via} ({step.status})")
    if answer.signer:
        print(f"  signed by {answer.signer}")
    if expiration:
        days = (expiration - time.time()) / 86400
        print(f"  earliest signature expiry on the path: {expires} ({days:.1f} days)")
    if answer.ttl is not None:
        print(f"  TTL {answer.ttl}s")
    owner = answer.rrset.name if answer.rrset is not None else answer.qname
    for record in records:
        print(f"  {owner} {qtype} {record}")
    return code


def _ports(values: Sequence[int | str] | None) -> list[int]:
    """The ports given (each once, in order), or [25]; :raises ValueError: a bad port."""
    from dane_monitor import settings

    return list(settings.parse_ports(values))


def _checker(args: argparse.Namespace, prog: str) -> Checker | str:
    from dane_monitor import settings

    validator = make_validator(args, prog)
    if isinstance(validator, str):
        return validator
    try:
        ports = _ports(args.port)
    except ValueError as exc:
        return f"{prog}: bad --port: {exc}"
    return settings.make_checker(
        validator,
        ports=ports,
        connect_port=args.connect_port,
        ehlo_name=args.ehlo_name,
        step_timeout=args.timeout,
        thresholds=_thresholds(args, prog),
        both_key_types=not args.one_key_type,
        # Only --debug's JSON shows the SMTP transcripts: no other check builds them.
        transcripts=bool(getattr(args, "debug", False)),
        nameservers=bool(getattr(args, "nameservers", False)),
        nameserver_port=getattr(args, "nameserver_port", None),
        dns_timeout=getattr(args, "dns_timeout", settings.DEFAULT_DNS_TIMEOUT),
        concurrency=getattr(args, "concurrency", None),
        # check --from: each zone's servers asked once per 5 minutes however many targets
        # share the zone (the exporter's rule), held to each check's own RRsets.
        nameserver_max_age=300.0 if getattr(args, "from_file", None) else 0.0,
    )


def _thresholds(args: argparse.Namespace, prog: str) -> Thresholds:
    """The expiry windows of ``check`` (defaults where not given).

    :raises UsageError: critical longer than warning.
    """
    from dane_monitor import settings

    try:
        return settings.thresholds_from_args(args)
    except ValueError as exc:
        raise UsageError(prog, f"--rrsig-critical/--rrsig-warning: {exc}") from None


def _check(args: argparse.Namespace) -> int:
    import asyncio

    from dane_monitor import render

    prog = "dane-monitor check"
    if args.json and args.format not in (None, "json"):
        raise UsageError(prog, f"--json and --format {args.format} contradict each other")
    output = "json" if args.json else (args.format or "text")
    if args.from_file is not None:  # many targets: dane_monitor/fleet.py
        from dane_monitor import fleet

        return fleet.main(args, prog, _checker)
    if args.mx and args.domain:
        raise UsageError(prog, "give a DOMAIN or --mx HOST, not both")
    if not (args.mx or args.domain):
        raise UsageError(prog, "give a DOMAIN or --mx HOST")
    thresholds = _thresholds(args, prog)
    checker = _checker(args, prog)
    if isinstance(checker, str):
        print(checker, file=sys.stderr)
        return USAGE
    target, mx_only = (args.mx, True) if args.mx else (args.domain, False)
    result = asyncio.run(checker.check_within(target, mx_only=mx_only, deadline=args.deadline))
    if output == "json":
        import json

        print(json.dumps(result.to_dict(debug=args.debug), indent=2))
    elif output == "nagios":
        from dane_monitor import nagios

        print(nagios.render_result(result, thresholds, time.time(), deadline=args.deadline))
    elif output == "csv":
        from dane_monitor import fleet

        fleet.CSVRows(sys.stdout).write(result)
    else:
        print(render.text(result, profiles=getattr(args, "profiles", None)))
    return render.exit_code(result)


def _tlsa(args: argparse.Namespace) -> int:
    from dane_monitor import tlsa as T
    from dane_monitor.certfile import read_chain

    prog = "dane-monitor tlsa"
    port = _ports(args.port)[0]
    chains: list[list[bytes]] = []
    host = args.host
    if args.cert:
        try:
            chains.append(read_chain(args.cert))
        except ValueError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return USAGE
        if host is None:
            names = T.dns_names(chains[0][0])
            if not names:
                print(f"{prog}: the certificate names no host; give --host", file=sys.stderr)
                return 3
            host = names[0]
    elif args.server:
        host = args.server
        served = _server_chains(args, prog)
        if isinstance(served, str):
            print(served, file=sys.stderr)
            return 3
        chains = served
    else:
        raise UsageError(prog, "give --cert FILE or --server HOST")
    owner = f"_{port}._tcp.{host.rstrip('.')}."
    seen = set()
    for chain in chains:
        for record in T.suggest_records(
            chain, usages=args.usage or [3], selector=args.selector, mtype=args.matching_type
        ):
            if record not in seen:
                seen.add(record)
                print(f"{owner} IN TLSA {record}")
    return 0


def _server_chains(args: argparse.Namespace, prog: str) -> list[list[bytes]] | str:
    """The chains a live server presents (both key types), reached as a sender would."""
    import asyncio

    from dane_monitor import settings
    from dane_monitor.probe import probe_all

    async def run() -> list[list[bytes]] | str:
        if args.connect:
            address, port = args.connect
            port = port or _ports(args.port)[0]
            addresses = [address]
        else:
            validator = make_validator(args, prog)
            if isinstance(validator, str):
                return validator
            name = args.server.rstrip(".") + "."
            answers = await asyncio.gather(
                validator.lookup(name, "A"), validator.lookup(name, "AAAA")
            )
            addresses = [r.to_text() for a in answers if a.rrset is not None for r in a.rrset]
            port = args.connect_port or _ports(args.port)[0]
            if not addresses:
                return f"{prog}: {args.server} has no address"
        results = await probe_all(
            addresses[0],
            port,
            sni=args.server.rstrip("."),
            implicit_tls=_ports(args.port)[0] == 465,
            timeouts=settings.probe_timeouts(args.timeout),
        )
        chains = [r.chain for r in results if r.chain]
        if not chains:
            r = results[0]
            return f"{prog}: no certificate from {addresses[0]}:{port}: {r.error}: {r.detail}"
        return chains

    return asyncio.run(run())


def _preflight(args: argparse.Namespace) -> int:
    import asyncio

    from dane_monitor import preflight, settings
    from dane_monitor.certfile import read_chain

    prog = "dane-monitor preflight"
    try:
        chain = read_chain(args.cert)
        port = _ports(args.port)[0]
    except (OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 3
    validator = make_validator(args, prog)
    if isinstance(validator, str):
        print(validator, file=sys.stderr)
        return 3
    try:
        pre = asyncio.run(settings.make_checker(validator).preflight(args.mx, chain, port))
    except ValueError as exc:  # not a host name
        print(f"{prog}: bad --mx {args.mx!r}: {exc}", file=sys.stderr)
        return 3
    out = preflight.answer(pre, args.cert, chain)
    print("\n".join(out.lines))
    return out.code


def _rollover(args: argparse.Namespace) -> int:
    import asyncio
    import json
    from pathlib import Path

    from dane_monitor import rollover

    prog = f"dane-monitor rollover {args.action}"
    try:
        if (args.next_cert is None) == (args.next_key is None):
            raise ValueError("give one of --next-cert FILE and --next-key FILE")
        nxt = (
            rollover.read_next_cert(args.next_cert)
            if args.next_cert is not None
            else rollover.read_next_key(args.next_key)
        )
        ports = _ports(args.port)
        if len(ports) > 1:
            raise ValueError("one --port at a time: each port has its own TLSA records")
        port = ports[0]
    except (OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE
    args.port = [port]
    checker = _checker(args, prog)
    if isinstance(checker, str):
        print(checker, file=sys.stderr)
        return USAGE
    checker.options.nameserver_port = args.nameserver_port or 53
    try:
        obs = asyncio.run(rollover.observe(checker, args.mx, port, nameservers=args.nameservers))
    except ValueError as exc:  # not a host name
        print(f"{prog}: bad --mx {args.mx!r}: {exc}", file=sys.stderr)
        return USAGE
    state_path = Path(args.state) if args.state else rollover.default_state_path()
    seen = rollover.load_state(state_path) if args.action == "status" else {}
    covering = [r.to_text() for r in obs.host.usable if rollover._matches_next(r, nxt)]
    first = seen.get(rollover.state_key(args.mx, port, covering))
    a = rollover.assess(obs, nxt, args.mx, port, first_seen=first)
    if args.action == "status":
        rollover.update_state(seen, args.mx, port, a)
        try:
            rollover.save_state(state_path, seen)
        except OSError as exc:
            a.lines.append(f"state file {state_path} not written ({exc.strerror or exc})")
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
    else:
        text = rollover.plan_text(a) if args.action == "plan" else rollover.status_text(a)
        print("\n".join(text))
    if args.action == "plan":
        return USAGE if a.code == USAGE else 0
    return a.code


# -- the parser: one builder per command ---------------------------------------------------------


def add_dns_options(parser: argparse.ArgumentParser) -> None:
    """The DNS options every command that looks things up shares."""
    from dane_monitor import settings

    group = parser.add_argument_group("DNS")
    group.add_argument(
        "--resolver",
        type=_arg(_resolver_text, "resolver"),
        metavar="ADDR[:PORT]",
        help="resolver to query (default: the first nameserver in /etc/resolv.conf)",
    )
    group.add_argument(
        "--trust-anchor",
        metavar="FILE",
        help="DS/DNSKEY lines in zone-file format replacing the IANA root anchors",
    )
    group.add_argument(
        "--validation",
        choices=("local", "resolver"),
        default="local",
        help="local: validate here from the trust anchors (default); "
        "resolver: trust the resolver's AD bit",
    )
    group.add_argument(
        "--dns-timeout",
        type=_arg(settings.parse_duration, "seconds"),
        default=settings.DEFAULT_DNS_TIMEOUT,
        metavar="SECONDS",
        help="seconds to wait for each DNS answer before trying again",
    )


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    """The SMTP options of the commands that connect to mail servers."""
    from dane_monitor import settings

    port = _arg(settings.parse_port, "port")
    group = parser.add_argument_group("SMTP")
    group.add_argument(
        "--port",
        action="append",
        type=port,
        metavar="PORT",
        help="port to check (repeatable; default 25; 465 is implicit TLS, others STARTTLS)",
    )
    group.add_argument(
        "--connect-port",
        type=port,
        metavar="PORT",
        help="connect to this TCP port instead, keeping _PORT._tcp TLSA names (for tests)",
    )
    group.add_argument(
        "--ehlo-name",
        type=_arg(settings.parse_ehlo_name, "ehlo name"),
        metavar="NAME",
        help="name to send in EHLO (default: this host's name)",
    )
    group.add_argument(
        "--timeout",
        type=_arg(settings.parse_duration, "seconds"),
        default=settings.DEFAULT_STEP_TIMEOUT,
        metavar="SECONDS",
        help="deadline for each SMTP/TLS step: connect, greeting, EHLO, STARTTLS, handshake",
    )
    group.add_argument(
        "--one-key-type",
        action="store_true",
        help="do not make a second handshake to see the other (RSA/ECDSA) certificate",
    )


def _version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action="version", version=f"dane-monitor {__version__}",
        help="print the version and exit",
    )  # fmt: skip


def _build_check(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    check = sub.add_parser(
        "check",
        help=COMMANDS["check"],
        description="Looks up the MX hosts of DOMAIN (or takes --mx HOST), validates DNSSEC "
        "in-process, probes every address with STARTTLS and matches the presented chains "
        "against the TLSA records (RFC 7672). Exit codes: 0 OK, 1 WARNING, 2 CRITICAL "
        "(DANE senders defer mail), 3 UNKNOWN (could not decide from here, or bad usage); "
        "130 after Ctrl-C.",
    )
    name = _arg(settings.parse_domain_name, "name")
    days = _arg(settings.parse_days, "days")
    check.add_argument(
        "domain", nargs="?", type=name, metavar="DOMAIN", help="the mail domain to check"
    )
    check.add_argument(
        "--mx", type=name, metavar="HOST", help="check this MX host instead of a domain"
    )
    check.add_argument(
        "--format",
        choices=("text", "json", "nagios", "csv"),
        help="text (default); json (schema: docs/json.md); nagios: one monitoring-plugin "
        "status line with performance data, then the findings; csv: one row per endpoint "
        "(columns: docs/fleet.md)",
    )
    check.add_argument("--json", action="store_true", help="the same as --format json")
    check.add_argument(
        "--csv", dest="format", action="store_const", const="csv", help="the same as --format csv"
    )
    check.add_argument("--debug", action="store_true", help="include SMTP transcripts in JSON")
    check.add_argument(
        "--deadline",
        type=_arg(settings.parse_duration, "seconds"),
        metavar="SECONDS",
        help="end the whole check after this long, UNKNOWN (default: only the per-step "
        "timeouts bound it)",
    )
    _version(check)
    expiry = check.add_argument_group("expiry windows (days)")
    expiry.add_argument(
        "--rrsig-warning",
        type=days,
        metavar="DAYS",
        help=f"WARNING when a DNSSEC signature on the path expires within DAYS "
        f"(default {settings.DEFAULT_RRSIG_WARNING_DAYS:g})",
    )
    expiry.add_argument(
        "--rrsig-critical",
        type=days,
        metavar="DAYS",
        help=f"CRITICAL within DAYS (default {settings.DEFAULT_RRSIG_CRITICAL_DAYS:g}; "
        "at most --rrsig-warning)",
    )
    expiry.add_argument(
        "--cert-warning",
        type=days,
        metavar="DAYS",
        help=f"WARNING when a leaf certificate expires within DAYS "
        f"(default {settings.DEFAULT_CERT_WARNING_DAYS:g})",
    )
    add_dns_options(check)
    senders = check.add_argument_group("sender profiles")
    senders.add_argument(
        "--profile",
        dest="profiles",
        action="append",
        type=_arg(settings.parse_profile, "profile"),
        metavar="NAME",
        help="show what senders of this profile do with each MX host, also where they do as "
        "RFC 7672 senders (repeatable; by default the text shows the profiles only where one "
        f"differs; the JSON always has them all): {', '.join(settings.PROFILE_NAMES)}",
    )
    ns = check.add_argument_group("name servers")
    ns.add_argument(
        "--no-nameservers",
        dest="nameservers",
        action="store_false",
        help="do not ask every authoritative server of the zones on the path directly "
        "(by default each is asked, and servers that disagree are findings)",
    )
    ns.add_argument(
        "--nameserver-port",
        type=_arg(settings.parse_port, "port"),
        metavar="PORT",
        help="ask the authoritative servers at this port instead of 53 (for tests)",
    )
    add_probe_options(check)
    fleet = check.add_argument_group("many targets (docs/fleet.md)")
    fleet.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="check every target in FILE (- for stdin): a mail domain, or mx:HOST, a line; "
        "# comments; --json writes JSON Lines, --csv CSV, a summary ends the run",
    )
    fleet.add_argument(
        "--concurrency",
        type=_arg(settings.parse_count, "count"),
        metavar="N",
        help="with --from: check at most N targets (and make N probes) at once (default 50)",
    )
    check.set_defaults(func=_check)


def _build_tlsa(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    tlsa = sub.add_parser(
        "tlsa",
        help=COMMANDS["tlsa"],
        description="Prints zone-file lines such as '_25._tcp.mail.example.de. IN TLSA 3 1 1 "
        "…' for the certificate in FILE (PEM chain or DER) or for the chains a live server "
        "presents (ECDSA and RSA both, when it has both).",
    )
    name = _arg(settings.parse_domain_name, "name")
    source = tlsa.add_mutually_exclusive_group()
    source.add_argument("--cert", metavar="FILE", help="certificate (chain) file, PEM or DER")
    source.add_argument("--server", type=name, metavar="HOST", help="MX host to connect to")
    tlsa.add_argument(
        "--host",
        type=name,
        metavar="HOST",
        help="owner host name (default: the certificate's first name, or --server)",
    )
    tlsa.add_argument(
        "--connect",
        type=_arg(lambda text: settings.parse_address(text, None), "address"),
        metavar="ADDR[:PORT]",
        help="connect here for --server (default: --server's addresses)",
    )
    tlsa.add_argument(
        "--usage",
        action="append",
        type=int,
        choices=(2, 3),
        help="3: the leaf key (default); 2: the issuing CA's key (repeatable)",
    )
    tlsa.add_argument(
        "--selector", type=int, choices=(0, 1), default=1, help="0: full certificate; 1: key"
    )
    tlsa.add_argument(
        "--matching-type",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0: full data; 1: SHA-256; 2: SHA-512",
    )
    _version(tlsa)
    add_dns_options(tlsa)
    add_probe_options(tlsa)
    tlsa.set_defaults(func=_tlsa)


def _build_preflight(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    preflight = sub.add_parser(
        "preflight",
        help=COMMANDS["preflight"],
        description="For certificate-renewal hooks: exits 0 when the certificate in FILE "
        "matches the secure TLSA RRset of the MX host (or none is published), 2 when deploying "
        "it would make DANE senders defer, 3 when DNS cannot tell.",
    )
    preflight.add_argument(
        "--cert",
        required=True,
        metavar="FILE",
        help="the new certificate (chain) PEM, before the mail server loads it",
    )
    preflight.add_argument(
        "--mx",
        required=True,
        type=_arg(settings.parse_domain_name, "name"),
        metavar="HOST",
        help="the MX host that will serve it",
    )
    preflight.add_argument(
        "--port",
        action="append",
        type=_arg(settings.parse_port, "port"),
        metavar="PORT",
        help="the port whose TLSA records apply (_PORT._tcp; default 25)",
    )
    _version(preflight)
    add_dns_options(preflight)
    preflight.set_defaults(func=_preflight)


def _build_rollover(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    rollover = sub.add_parser(
        "rollover",
        help=COMMANDS["rollover"],
        description="A key rollover in the order RFC 7671 §8 gives it. 'plan' says, from live "
        "DNS and the live server, which records to publish now (the next key's 3 1 1, or a "
        "2 1 1 for the CA when the next certificate comes from the served chain's CA), how "
        "long to wait (2 x the longest TLSA TTL on the authoritative servers, their RRSIG "
        "original TTLs, and the negative TTL for a new name), when to deploy and which records "
        "to remove afterwards; it exits 0 (3 when DNS cannot tell). 'status' says which stage "
        "is live: 1 next record not published, 2 published but not yet secure on every "
        "authoritative server, 3 everywhere for less than the wait, 4 safe to deploy, 5 "
        "deployed with the old records still published, 6 done. Exit codes of status: 0 safe "
        "to deploy (4) or done (6), or DANE does not apply; 1 wait (2, 3); 2 act: publish "
        "(1) or remove the old records (5); 3 DNS cannot tell, or a usage error.",
    )
    rollover.add_argument("action", choices=("plan", "status"), help="plan or status")
    rollover.add_argument(
        "--mx",
        required=True,
        type=_arg(settings.parse_domain_name, "name"),
        metavar="HOST",
        help="the MX host whose key changes",
    )
    rollover.add_argument("--next-cert", metavar="FILE", help="the next certificate (chain) PEM")
    rollover.add_argument(
        "--next-key",
        metavar="FILE",
        help="or the next key alone: a PEM public key or unencrypted private key (3 1 x "
        "records only)",
    )
    rollover.add_argument(
        "--state",
        metavar="FILE",
        help="where status keeps when it first saw the next key's record on every "
        "authoritative server (default $XDG_STATE_HOME/dane-monitor/rollover.json, or "
        "~/.local/state/dane-monitor/rollover.json)",
    )
    rollover.add_argument("--json", action="store_true", help="JSON instead of text")
    rollover.add_argument(
        "--no-nameservers",
        dest="nameservers",
        action="store_false",
        help="trust the validated answer alone (by default every authoritative server is "
        "asked; without them status never passes stage 2)",
    )
    rollover.add_argument(
        "--nameserver-port",
        type=_arg(settings.parse_port, "port"),
        metavar="PORT",
        help="ask the authoritative servers at this port instead of 53 (for tests)",
    )
    _version(rollover)
    add_dns_options(rollover)
    add_probe_options(rollover)
    rollover.set_defaults(func=_rollover)


def _build_lookup(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    lookup = sub.add_parser(
        "lookup",
        help=COMMANDS["lookup"],
        description="Looks up NAME TYPE and says whether the answer is secure, insecure, bogus "
        "(and why) or indeterminate. Exit codes: 0 secure, 1 insecure, 2 bogus, 3 other.",
    )
    lookup.add_argument("name", metavar="NAME", help="the name to look up, like example.de")
    lookup.add_argument(
        "type",
        nargs="?",
        type=_arg(settings.parse_rrtype, "record type"),
        default="A",
        metavar="TYPE",
        help="the record type, like MX, TLSA or AAAA",
    )
    lookup.add_argument("--json", action="store_true", help="machine-readable output")
    _version(lookup)
    add_dns_options(lookup)
    lookup.set_defaults(func=_lookup)


def _build_resolver_check(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    rc = sub.add_parser(
        "resolver-check",
        help=COMMANDS["resolver-check"],
        description="Checks that a resolver sets AD on a signed name, answers SERVFAIL for a "
        "bogus one, handles EDNS0 and DO, answers over TCP, and runs on loopback. Exit codes "
        "follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    name = _arg(settings.parse_domain_name, "name")
    rc.add_argument(
        "--resolver",
        type=_arg(_resolver_text, "resolver"),
        metavar="ADDR[:PORT]",
        help="resolver to check (default: the first nameserver in /etc/resolv.conf)",
    )
    # Defaults filled in when the command runs: building the parser must not import the DNS
    # stack (every command, even --help, pays for what the parser imports).
    rc.add_argument(
        "--signed-name", type=name, metavar="NAME", help="a name that validates (default: isc.org.)"
    )
    rc.add_argument(
        "--bogus-name",
        type=name,
        metavar="NAME",
        help="a name that must fail (default: dnssec-failed.org.)",
    )
    rc.add_argument(
        "--type",
        type=_arg(settings.parse_rrtype, "record type"),
        default="A",
        metavar="TYPE",
        help="record type asked for both names",
    )
    rc.add_argument(
        "--timeout",
        type=_arg(settings.parse_duration, "seconds"),
        default=3.0,
        metavar="SECONDS",
        help="seconds to wait for each answer",
    )
    rc.add_argument("--json", action="store_true", help="machine-readable output")
    _version(rc)
    rc.set_defaults(func=_resolver_check)


def _build_exporter(sub: argparse._SubParsersAction) -> None:
    from dane_monitor.exporter.cli import add_parsers

    add_parsers(sub)
    for name in _EXPORTER_COMMANDS:
        _version(sub.choices[name])


def _build_world(sub: argparse._SubParsersAction) -> None:
    from dane_monitor import settings

    world = sub.add_parser(
        "world",
        help=COMMANDS["world"],
        description="Serve the scenario catalogue: a private signed DNS hierarchy and "
        "STARTTLS SMTP servers on 127.0.0.0/8, for trying tools against known cases.",
    )
    world.add_argument("--list", action="store_true", help="list the scenarios and exit")
    world.add_argument(
        "--scenario", action="append", metavar="NAME", help="serve only this scenario (repeatable)"
    )
    world.add_argument(
        "--dns-host",
        type=_arg(_ip_address, "address"),
        default="127.0.0.1",
        metavar="ADDRESS",
        help="DNS server address",
    )
    world.add_argument(
        "--anchor-dir",
        metavar="DIR",
        help="where to write the trust-anchor files (default: a temporary directory, "
        "removed when the world stops)",
    )
    world.add_argument(
        "--duration",
        type=_arg(settings.parse_duration, "seconds"),
        metavar="SECONDS",
        help="stop after this long (default: never)",
    )
    world.add_argument(
        "--copies",
        type=_arg(settings.parse_count, "count"),
        default=1,
        metavar="N",
        help="serve N copies of each scenario (<name>-<i>), for load tests and benchmarks",
    )
    _version(world)
    world.set_defaults(func=_world)


def _build_tlsrpt(sub: argparse._SubParsersAction) -> None:
    from dane_monitor.tlsrpt_cli import add_parser

    _version(add_parser(sub, COMMANDS["tlsrpt"]))


_BUILDERS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "check": _build_check,
    "tlsa": _build_tlsa,
    "preflight": _build_preflight,
    "rollover": _build_rollover,
    "lookup": _build_lookup,
    "resolver-check": _build_resolver_check,
    "tlsrpt": _build_tlsrpt,
    "serve": _build_exporter,
    "world": _build_world,
}


def build_parser(command: str | None = None, *, full: bool | None = None) -> Parser:
    """The ``dane-monitor`` parser.

    With ``command``, only that command's parser is built in full and every other command
    is its help line (what ``--help`` lists), which is what :func:`main` does: building a
    command imports what its options need. Without it (or with ``full=True``), all of them.
    """
    from dane_monitor._argparse import Parser

    full = command is None if full is None else full
    parser = Parser(prog="dane-monitor", description=DESCRIPTION, epilog=EPILOG)
    _version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    exporter_built = False
    for name, summary in COMMANDS.items():
        if name in _EXPORTER_COMMANDS:
            if full or command in _EXPORTER_COMMANDS:
                if not exporter_built:
                    _build_exporter(sub)
                    exporter_built = True
                continue
        elif full or name == command:
            _BUILDERS[name](sub)
            continue
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> tuple[str | None, int]:
    """The command a command line names (the first word that is not an option: the top
    level has no option that takes a value) and its index, or (None, len(argv))."""
    for i, word in enumerate(argv):
        if word == "--":
            break
        if not word.startswith("-"):
            return word, i
    return None, len(argv)


def _unknown_option(parser: argparse.ArgumentParser, words: Sequence[str]) -> str | None:
    """The first word in ``words`` that is meant as an option but names none of ``parser``,
    as one line with the option it most likely means; None when there is none.

    Run before argparse sees the command line: argparse would take the word after an unknown
    option for the next positional argument (``--resolvr 127.0.0.1 a.example`` made
    127.0.0.1 the domain) and complain about that instead, or not at all."""
    import re

    from dane_monitor._argparse import suggest

    negative = re.compile(r"^-\d+$|^-\d*\.\d+$")  # a value, as argparse reads it
    known = parser._option_string_actions
    for word in words:
        if word == "--":
            return None
        if not word.startswith("-") or word == "-" or negative.match(word):
            continue
        option = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        if option in known:
            continue
        close = (
            suggest(option, [o for o in known if o.startswith("--")])
            if option[1:2] == "-"
            else None
        )
        hint = f" (did you mean {close}?)" if close else ""
        return f"{parser.prog}: unknown option {option}{hint}; see {parser.prog} --help"
    return None


def _command_parser(
    parser: argparse.ArgumentParser, command: str
) -> argparse.ArgumentParser | None:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        choices = getattr(action, "choices", None) or {}
        if command in choices:
            return choices[command]
    return None


def _unexpected(parser: argparse.ArgumentParser, command: str | None, extras: list[str]) -> str:
    """``prog: unexpected argument 'stray'`` for what argparse left over."""
    sub = (_command_parser(parser, command) if command else None) or parser
    return f"{sub.prog}: unexpected argument {extras[0]!r}; see {sub.prog} --help"


def terminal_columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` has it ($COLUMNS, else the
    terminal on stdout, else 80), without importing shutil (bz2, lzma, …: 2 ms)."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]  # None: caught
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters (a longer word stands alone)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def top_help(columns: int | None = None) -> str:
    """``dane-monitor --help``: the commands and what each is for, in argparse's layout but
    without argparse, which neither ``--help`` nor ``--version`` imports (start-up: each
    costs a fifth more than Python's own)."""
    if columns is None:
        columns = terminal_columns()
    width = max(columns - 2, 40)
    rows = [("-h, --help", "show this help message and exit"),
            ("--version", "print the version and exit"), *COMMANDS.items()]  # fmt: skip
    at = min(max(len(left) for left, _ in rows) + 4, 24)  # where the help lines start
    out = ["usage: dane-monitor [-h] [--version] COMMAND ...", "", *_wrap(DESCRIPTION, width)]
    for title, section in (("options", rows[:2]), ("commands", rows[2:])):
        out += ["", f"{title}:"]
        for left, text in section:
            lines = _wrap(text, width - at)
            if len(left) + 4 > at:  # too long to share a line with its help
                out.append(f"  {left}")
            else:
                out.append(f"  {left:{at - 2}}{lines.pop(0)}")
            out += [" " * at + line for line in lines]
    out += ["", *_wrap(EPILOG, width)]
    return "\n".join(out) + "\n"


def _asks_version(argv: Sequence[str]) -> bool:
    """``--version`` anywhere before ``--``: answered before any parser is built."""
    for word in argv:
        if word == "--":
            return False
        if word == "--version":
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dane-monitor``; returns the exit code.

    Usage errors (an unknown option, a bad value, a missing argument) print one line on
    stderr and return 3 (UNKNOWN), never argparse's 2; Ctrl-C returns 130 quietly; a reader
    that stops reading (``dane-monitor check … | head``) ends it quietly with 141, as SIGPIPE
    would.
    """
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe can still be told from a bug
    except BrokenPipeError:
        import os

        # Nothing more can reach the reader; keep Python's exit-time flush from failing too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args: argparse.Namespace | None = None
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if _asks_version(words):
            print(f"dane-monitor {__version__}")
            return 0
        if words[:1] in (["-h"], ["--help"]):  # argparse would stop at it too
            sys.stdout.write(top_help())
            return 0
        command, at = _command_of(words)
        parser = build_parser(command if command in COMMANDS else None, full=False)
        wrong = _unknown_option(parser, words[:at])
        sub = _command_parser(parser, command) if command in COMMANDS else None
        if wrong is not None and sub is not None:
            option = wrong.split("unknown option ", 1)[1].split()[0].rstrip(";")
            if option in sub._option_string_actions:
                wrong = (
                    f"dane-monitor: {option} is an option of {command}: put it after the "
                    f"command (dane-monitor {command} {option} …)"
                )
        if wrong is None and command is None and not {"-h", "--help"} & set(words):
            listed = ", ".join(COMMANDS)
            raise UsageError(
                "dane-monitor", f"the following arguments are required: command ({listed})"
            )
        if wrong is None and sub is not None:
            wrong = _unknown_option(sub, words[at + 1 :])
        if wrong is not None:
            print(wrong, file=sys.stderr)
            return USAGE
        args, extras = parser.parse_known_args(words)
        if extras:
            print(_unexpected(parser, getattr(args, "command", None), extras), file=sys.stderr)
            return USAGE
        return args.func(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return USAGE
    except MissingExtra as exc:  # e.g. demo without trustme: say what to install
        command = getattr(args, "command", None)
        print(f"dane-monitor {command}: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug: UNKNOWN for the monitoring system, the traceback for us
        import traceback

        traceback.print_exc()
        what = f"{type(exc).__name__}: {exc}".splitlines()[0]
        command = getattr(args, "command", None)
        prog = f"dane-monitor {command}" if command else "dane-monitor"
        if getattr(args, "format", None) == "nagios":
            print(f"DANE UNKNOWN - {prog} crashed: {what}".replace("|", "/"))
        print(f"{prog}: internal error (a bug; please report it with the traceback above): "
              f"{what}", file=sys.stderr)  # fmt: skip
        return USAGE
