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
from dane_monitor.exporter.cli import add_parsers as add_exporter_parsers


def _world(args: argparse.Namespace) -> int:
    from dane_monitor.world import CATALOGUE, World, by_name, replicate

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
    if args.copies > 1:
        scenarios = replicate(scenarios, args.copies)
    network = "127.0.2.0/24" if len(scenarios) < 100 else "127.2.0.0/16"
    world = World(scenarios, dns_host=args.dns_host, smtp_network=network)
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

    from dane_monitor.lookup.resolvercheck import DEFAULT_BOGUS, DEFAULT_SIGNED, check_resolver
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


def add_dns_options(parser: argparse.ArgumentParser) -> None:
    """The DNS options every command that looks things up shares."""
    group = parser.add_argument_group("DNS")
    group.add_argument(
        "--resolver", metavar="ADDR[:PORT]", help="resolver to query (default: /etc/resolv.conf)"
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
    group.add_argument("--dns-timeout", type=float, default=2.0, help="seconds per DNS try")


def make_validator(args: argparse.Namespace, prog: str):
    """The validator the options ask for, or an error message for the user."""
    from dane_monitor.lookup import TrustAnchorError, make_validator

    try:
        return make_validator(
            args.resolver,
            trust_anchor=args.trust_anchor,
            mode=args.validation,
            timeout=args.dns_timeout,
        )
    except TrustAnchorError as exc:
        return f"{prog}: {exc}"
    except ValueError as exc:
        return f"{prog}: bad --resolver {args.resolver!r}: {exc}"


def _lookup(args: argparse.Namespace) -> int:
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
    expires = (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(answer.expiration))
        if answer.expiration
        else None
    )
    records = [r.to_text() for r in answer.rrset] if answer.rrset is not None else []
    if args.json:
        print(
            json.dumps(
                {
                    "name": str(answer.qname),
                    "type": dns.rdatatype.to_text(answer.qtype),
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
    print(f"{answer.qname} {dns.rdatatype.to_text(answer.qtype)}: {answer.status} {answer.kind}")
    if answer.reason:
        print(f"  {answer.reason}: {answer.detail}")
    for step in answer.cnames:
        via = f" (from the DNAME at {step.dname})" if step.dname else ""
        print(f"  CNAME {step.owner} -> {step.target}{via} ({step.status})")
    if answer.signer:
        print(f"  signed by {answer.signer}")
    if expires:
        days = (answer.expiration - time.time()) / 86400
        print(f"  earliest signature expiry on the path: {expires} ({days:.1f} days)")
    if answer.ttl is not None:
        print(f"  TTL {answer.ttl}s")
    owner = answer.rrset.name if answer.rrset is not None else answer.qname
    for record in records:
        print(f"  {owner} {dns.rdatatype.to_text(answer.qtype)} {record}")
    return code


def step_timeouts(step: float):
    """Probe deadlines from the one --timeout an operator gives: each step gets it, the
    whole probe four times it."""
    from dane_monitor.probe import Timeouts

    return Timeouts(
        connect=step, banner=step, command=step, tls=step, quit=min(5.0, step), total=4 * step
    )


def _ports(values: list[str] | None) -> list[int]:
    ports = []
    for value in values or ["25"]:
        port = int(value)
        if not 0 < port < 65536:
            raise ValueError(f"port out of range: {port}")
        ports.append(port)
    return list(dict.fromkeys(ports))


def _checker(args: argparse.Namespace, prog: str):
    from dane_monitor.check import Checker, Options

    validator = make_validator(args, prog)
    if isinstance(validator, str):
        return validator
    try:
        ports = _ports(args.port)
    except ValueError as exc:
        return f"{prog}: bad --port: {exc}"
    options = Options(
        ports=ports,
        connect_port=args.connect_port,
        ehlo_name=args.ehlo_name,
        timeouts=step_timeouts(args.timeout),
        both_key_types=not args.one_key_type,
    )
    return Checker(validator, options)


def _check(args: argparse.Namespace) -> int:
    import json

    from dane_monitor import render

    checker = _checker(args, "dane-monitor check")
    if isinstance(checker, str):
        print(checker, file=sys.stderr)
        return 3
    if args.mx:
        result = asyncio.run(checker.check_host(args.mx))
    elif args.domain:
        result = asyncio.run(checker.check_domain(args.domain))
    else:
        print("dane-monitor check: give a DOMAIN or --mx HOST", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(result.to_dict(debug=args.debug), indent=2))
    else:
        print(render.text(result))
    return render.exit_code(result)


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SMTP")
    group.add_argument(
        "--port",
        action="append",
        metavar="PORT",
        help="port to check (repeatable; default 25; 465 is implicit TLS, others STARTTLS)",
    )
    group.add_argument(
        "--connect-port",
        type=int,
        metavar="PORT",
        help="connect to this TCP port instead, keeping _PORT._tcp TLSA names (for tests)",
    )
    group.add_argument("--ehlo-name", help="name to send in EHLO (default: this host's name)")
    group.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="deadline for each SMTP/TLS step (connect, greeting, EHLO, STARTTLS, handshake)",
    )
    group.add_argument(
        "--one-key-type",
        action="store_true",
        help="do not make a second handshake to see the other (RSA/ECDSA) certificate",
    )


def _read_chain(path: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = Path(path).read_bytes()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = [x509.load_der_x509_certificate(data)]
    return [c.public_bytes(Encoding.DER) for c in certs]


def _tlsa(args: argparse.Namespace) -> int:
    from dane_monitor import tlsa as T

    prog = "dane-monitor tlsa"
    try:
        port = _ports(args.port)[0]
    except ValueError as exc:
        print(f"{prog}: bad --port: {exc}", file=sys.stderr)
        return 3
    chains: list[list[bytes]] = []
    host = args.host
    if args.cert:
        try:
            chains.append(_read_chain(args.cert))
        except (OSError, ValueError) as exc:
            print(f"{prog}: cannot read a certificate from {args.cert}: {exc}", file=sys.stderr)
            return 3
        if host is None:
            names = T.dns_names(chains[0][0])
            if not names:
                print(f"{prog}: the certificate names no host; give --host", file=sys.stderr)
                return 3
            host = names[0]
    elif args.server:
        host = args.server
        chains = _server_chains(args, prog)
        if isinstance(chains, str):
            print(chains, file=sys.stderr)
            return 3
    else:
        print(f"{prog}: give --cert FILE or --server HOST", file=sys.stderr)
        return 3
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
    from dane_monitor.probe import probe_all

    async def run() -> list[list[bytes]] | str:
        if args.connect:
            address, _, port_text = args.connect.rpartition(":")
            if not address:
                address, port_text = port_text, str(_ports(args.port)[0])
            addresses, port = [address.strip("[]")], int(port_text)
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
            timeouts=step_timeouts(args.timeout),
        )
        chains = [r.chain for r in results if r.chain]
        if not chains:
            r = results[0]
            return f"{prog}: no certificate from {addresses[0]}:{port}: {r.error}: {r.detail}"
        return chains

    return asyncio.run(run())


def _preflight(args: argparse.Namespace) -> int:
    from dane_monitor import preflight
    from dane_monitor.check import Checker

    prog = "dane-monitor preflight"
    try:
        chain = _read_chain(args.cert)
        port = _ports(args.port)[0]
    except (OSError, ValueError) as exc:
        print(f"{prog}: cannot read {args.cert}: {exc}", file=sys.stderr)
        return 3
    validator = make_validator(args, prog)
    if isinstance(validator, str):
        print(validator, file=sys.stderr)
        return 3
    try:
        pre = asyncio.run(Checker(validator).preflight(args.mx, chain, port))
    except ValueError as exc:  # not a host name
        print(f"{prog}: bad --mx {args.mx!r}: {exc}", file=sys.stderr)
        return 3
    out = preflight.answer(pre, args.cert, chain)
    print("\n".join(out.lines))
    return out.code


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
    world.add_argument(
        "--copies",
        type=int,
        default=1,
        metavar="N",
        help="serve N copies of each scenario (<name>-<i>), for load tests and benchmarks",
    )
    world.set_defaults(func=_world)

    rc = sub.add_parser(
        "resolver-check",
        help="is this resolver fit for DANE? (validates, rejects bogus, EDNS0/DO, TCP)",
        description="Checks that a resolver sets AD on a signed name, answers SERVFAIL for a "
        "bogus one, handles EDNS0 and DO, answers over TCP, and runs on loopback. Exit codes "
        "follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    rc.add_argument(
        "--resolver", metavar="ADDR[:PORT]", help="resolver to check (default: /etc/resolv.conf)"
    )
    # Defaults filled in when the command runs: building the parser must not import the DNS
    # stack (every command, even --help, pays for what the parser imports).
    rc.add_argument("--signed-name", help="a name that validates (default: isc.org.)")
    rc.add_argument("--bogus-name", help="a name that must fail (default: dnssec-failed.org.)")
    rc.add_argument("--type", default="A", help="record type asked for both names")
    rc.add_argument("--timeout", type=float, default=3.0, help="seconds per query")
    rc.add_argument("--json", action="store_true", help="machine-readable output")
    rc.set_defaults(func=_resolver_check)

    lookup = sub.add_parser(
        "lookup",
        help="one DNS lookup, validated: status, reason, signature expiry",
        description="Looks up NAME TYPE and says whether the answer is secure, insecure, bogus "
        "(and why) or indeterminate. Exit codes: 0 secure, 1 insecure, 2 bogus, 3 other.",
    )
    lookup.add_argument("name")
    lookup.add_argument("type", nargs="?", default="A")
    lookup.add_argument("--json", action="store_true", help="machine-readable output")
    add_dns_options(lookup)
    lookup.set_defaults(func=_lookup)

    check = sub.add_parser(
        "check",
        help="check a mail domain (or one MX host) the way a DANE-enforcing sender does",
        description="Looks up the MX hosts of DOMAIN (or takes --mx HOST), validates DNSSEC "
        "in-process, probes every address with STARTTLS and matches the presented chains "
        "against the TLSA records (RFC 7672). Exit codes: 0 OK, 1 WARNING, 2 CRITICAL "
        "(DANE senders defer mail), 3 UNKNOWN.",
    )
    check.add_argument("domain", nargs="?", help="the mail domain")
    check.add_argument("--mx", metavar="HOST", help="check this MX host instead of a domain")
    check.add_argument("--json", action="store_true", help="JSON output (schema: docs/json.md)")
    check.add_argument("--debug", action="store_true", help="include SMTP transcripts in JSON")
    add_dns_options(check)
    add_probe_options(check)
    check.set_defaults(func=_check)

    tlsa = sub.add_parser(
        "tlsa",
        help="print the TLSA records a certificate or a live server needs",
        description="Prints zone-file lines such as '_25._tcp.mail.example.de. IN TLSA 3 1 1 "
        "…' for the certificate in FILE (PEM chain or DER) or for the chains a live server "
        "presents (ECDSA and RSA both, when it has both).",
    )
    source = tlsa.add_mutually_exclusive_group()
    source.add_argument("--cert", metavar="FILE", help="certificate (chain) file")
    source.add_argument("--server", metavar="HOST", help="MX host to connect to")
    tlsa.add_argument("--host", help="owner host name (default: the certificate's first name)")
    tlsa.add_argument("--connect", metavar="ADDR[:PORT]", help="connect here for --server")
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
        help="0: full data; 1: SHA-256 (default); 2: SHA-512",
    )
    add_dns_options(tlsa)
    add_probe_options(tlsa)
    tlsa.set_defaults(func=_tlsa)

    preflight = sub.add_parser(
        "preflight",
        help="does a not-yet-deployed certificate match the published TLSA records?",
        description="For certificate-renewal hooks: exits 0 when NEW.pem matches the secure "
        "TLSA RRset of the MX host (or none is published), 2 when deploying it would make DANE "
        "senders defer, 3 when DNS cannot tell.",
    )
    preflight.add_argument("--cert", required=True, metavar="NEW.pem")
    preflight.add_argument("--mx", required=True, metavar="HOST")
    preflight.add_argument("--port", action="append", metavar="PORT", help="default 25")
    add_dns_options(preflight)
    preflight.set_defaults(func=_preflight)

    add_exporter_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
