"""The ``dane-monitor`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from dane_monitor import __version__, settings
from dane_monitor.exporter.cli import add_parsers as add_exporter_parsers
from dane_monitor.extras import MissingExtra
from dane_monitor.settings import arg_type

if TYPE_CHECKING:
    from dane_monitor.check import Checker
    from dane_monitor.lookup import ResolverValidator, Validator

#: Exit code of a usage error: UNKNOWN, as the monitoring-plugin guidelines want (never
#: argparse's 2, which a monitoring system would read as CRITICAL).
USAGE = 3
#: Exit code after Ctrl-C: 128 + SIGINT, as a shell reports it.
INTERRUPTED = 130


class UsageError(Exception):
    """A command line that cannot be used: ``prog: what is wrong`` on one line, exit 3."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: {message}")
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse without its exit 2 and multi-line usage dump: errors raise
    :class:`UsageError`, which :func:`main` prints as one line and turns into exit 3."""

    def error(self, message: str) -> NoReturn:
        hint = f"; see {self.prog} --help" if "--help" not in message else ""
        raise UsageError(self.prog, message + hint)


def _resolver_text(text: str) -> str:
    settings.parse_resolver(text)
    return text.strip()


def _ip_address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"an IP address (like 127.0.0.1 or ::1), not {text!r}") from None


PORT = arg_type(settings.parse_port, "port")
SECONDS = arg_type(settings.parse_duration, "seconds")
DAYS = arg_type(settings.parse_days, "days")
NAME = arg_type(settings.parse_domain_name, "name")
RESOLVER = arg_type(_resolver_text, "resolver")
EHLO_NAME = arg_type(settings.parse_ehlo_name, "ehlo name")
RRTYPE = arg_type(settings.parse_rrtype, "record type")


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
        return USAGE

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


def add_dns_options(parser: argparse.ArgumentParser) -> None:
    """The DNS options every command that looks things up shares."""
    group = parser.add_argument_group("DNS")
    group.add_argument(
        "--resolver",
        type=RESOLVER,
        metavar="ADDR[:PORT]",
        help="resolver to query (default: /etc/resolv.conf)",
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
        type=SECONDS,
        default=settings.DEFAULT_DNS_TIMEOUT,
        metavar="SECONDS",
        help="seconds per DNS try",
    )


def make_validator(args: argparse.Namespace, prog: str) -> Validator | ResolverValidator | str:
    """The validator the options ask for, or an error message for the user."""
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
    return list(settings.parse_ports(values))


def _checker(args: argparse.Namespace, prog: str) -> Checker | str:
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
    )


def _thresholds(args: argparse.Namespace, prog: str) -> settings.Thresholds:
    """The expiry windows of ``check`` (defaults where not given).

    :raises UsageError: critical longer than warning.
    """
    try:
        return settings.thresholds_from_args(args)
    except ValueError as exc:
        raise UsageError(prog, f"--rrsig-critical/--rrsig-warning: {exc}") from None


def _timed_out(target: str, mx_only: bool, deadline: float, started: float):
    """The result of a check cut by ``--deadline``: UNKNOWN, with the finding the exporter
    uses for its own deadline."""
    from dane_monitor.report import DomainResult, Finding, Severity, Verdict

    result = DomainResult(
        target,
        mx_only=mx_only,
        mx_mode="host" if mx_only else "mx",
        started=started,
        verdict=Verdict.ERROR,
    )
    message = f"check did not finish within {deadline:g} s"
    finding = (
        Finding("check-timeout", Severity.ERROR, message, mx=target)
        if mx_only
        else Finding("check-timeout", Severity.ERROR, message, domain=target)
    )
    result.findings.append(finding)
    return result


def _check(args: argparse.Namespace) -> int:
    import json

    from dane_monitor import nagios, render

    prog = "dane-monitor check"
    if args.json and args.format not in (None, "json"):
        raise UsageError(prog, f"--json and --format {args.format} contradict each other")
    output = "json" if args.json else (args.format or "text")
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
    started = time.time()
    t0 = time.monotonic()

    async def run():
        check = checker.check_host(target) if mx_only else checker.check_domain(target)
        if args.deadline is None:
            return await check
        timeout = asyncio.timeout(args.deadline)
        try:
            async with timeout:
                return await check
        except TimeoutError:
            if not timeout.expired():
                raise
        result = _timed_out(target, mx_only, args.deadline, started)
        result.duration = time.monotonic() - t0
        return result

    result = asyncio.run(run())
    if output == "json":
        print(json.dumps(result.to_dict(debug=args.debug), indent=2))
    elif output == "nagios":
        print(nagios.render_result(result, thresholds, time.time(), deadline=args.deadline))
    else:
        print(render.text(result))
    return render.exit_code(result)


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SMTP")
    group.add_argument(
        "--port",
        action="append",
        type=PORT,
        metavar="PORT",
        help="port to check (repeatable; default 25; 465 is implicit TLS, others STARTTLS)",
    )
    group.add_argument(
        "--connect-port",
        type=PORT,
        metavar="PORT",
        help="connect to this TCP port instead, keeping _PORT._tcp TLSA names (for tests)",
    )
    group.add_argument(
        "--ehlo-name",
        type=EHLO_NAME,
        metavar="NAME",
        help="name to send in EHLO (default: this host's name)",
    )
    group.add_argument(
        "--timeout",
        type=SECONDS,
        default=settings.DEFAULT_STEP_TIMEOUT,
        metavar="SECONDS",
        help="deadline for each SMTP/TLS step (connect, greeting, EHLO, STARTTLS, handshake; "
        f"default {settings.DEFAULT_STEP_TIMEOUT:g})",
    )
    group.add_argument(
        "--one-key-type",
        action="store_true",
        help="do not make a second handshake to see the other (RSA/ECDSA) certificate",
    )


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.S)
_CERT_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE")
_WANT_CHAIN = "give the certificate (chain) PEM"


def _not_a_certificate(path: str, data: bytes) -> str:
    """What a file that holds no certificate holds instead, and what was expected."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    labels = [m.group(1).decode() for m in _PEM_BLOCK.finditer(data)]
    if labels:
        label = labels[0]
        # "an EC PRIVATE KEY", "an RSA PRIVATE KEY", "a PUBLIC KEY": as the letters are said
        article = "an" if label[0] in "AEIOURSX" else "a"
        if "PRIVATE KEY" in label:
            return (
                f"{path} holds {article} {label}, not a certificate: {_WANT_CHAIN} "
                "(the key stays with the mail server)"
            )
        if "CERTIFICATE REQUEST" in label:
            return (
                f"{path} holds a CERTIFICATE REQUEST (CSR), not a certificate: give the "
                "certificate (chain) PEM the CA issued for it"
            )
        return f"{path} holds {article} {label}, not a certificate: {_WANT_CHAIN}"
    if b"-----BEGIN " in data:
        return f"{path} holds a PEM block without its END line: {_WANT_CHAIN}"
    for load, what in (
        (lambda d: serialization.load_der_private_key(d, password=None), "a PRIVATE KEY (DER)"),
        (x509.load_der_x509_csr, "a CERTIFICATE REQUEST (CSR, DER)"),
        (serialization.load_der_public_key, "a bare PUBLIC KEY (DER)"),
    ):
        with contextlib.suppress(Exception):
            load(data)
            return f"{path} holds {what}, not a certificate: {_WANT_CHAIN}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return (
            f"{path} is neither a PEM nor a DER certificate ({len(data)} bytes of binary data): "
            f"{_WANT_CHAIN}"
        )
    first = text.strip().splitlines()[0][:40]
    return f"{path} holds text that is not PEM (it starts {first!r}): {_WANT_CHAIN}"


def _read_chain(path: str) -> list[bytes]:
    """The certificates in ``path`` as DER, in file order (leaf first): a PEM chain, or one
    DER certificate. A file that also holds the key (a combined PEM) is read for its
    certificates.

    :raises ValueError: the file cannot be read or holds no certificate; the message says
        what the file holds and what was expected.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise ValueError(f"{path} is empty: {_WANT_CHAIN}")
    blocks = [m.group(1) for m in _PEM_BLOCK.finditer(data)]
    if any(label in _CERT_LABELS for label in blocks):
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            detail = str(exc).split(".", 1)[0]
            raise ValueError(
                f"{path}: a CERTIFICATE block does not decode ({detail}): {_WANT_CHAIN}"
            ) from None
    else:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise ValueError(_not_a_certificate(path, data)) from None
    return [c.public_bytes(Encoding.DER) for c in certs]


def _tlsa(args: argparse.Namespace) -> int:
    from dane_monitor import tlsa as T

    prog = "dane-monitor tlsa"
    port = _ports(args.port)[0]
    chains: list[list[bytes]] = []
    host = args.host
    if args.cert:
        try:
            chains.append(_read_chain(args.cert))
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
    from dane_monitor import preflight

    prog = "dane-monitor preflight"
    try:
        chain = _read_chain(args.cert)
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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    world.add_argument(
        "--dns-host",
        type=arg_type(_ip_address, "address"),
        default="127.0.0.1",
        help="DNS server address",
    )
    world.add_argument("--anchor-dir", help="where to write the trust-anchor files")
    world.add_argument(
        "--duration", type=SECONDS, metavar="SECONDS", help="stop after this long (default: never)"
    )
    world.add_argument(
        "--copies",
        type=arg_type(settings.parse_count, "count"),
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
        "--resolver",
        type=RESOLVER,
        metavar="ADDR[:PORT]",
        help="resolver to check (default: /etc/resolv.conf)",
    )
    # Defaults filled in when the command runs: building the parser must not import the DNS
    # stack (every command, even --help, pays for what the parser imports).
    rc.add_argument("--signed-name", type=NAME, help="a name that validates (default: isc.org.)")
    rc.add_argument(
        "--bogus-name", type=NAME, help="a name that must fail (default: dnssec-failed.org.)"
    )
    rc.add_argument("--type", type=RRTYPE, default="A", help="record type asked for both names")
    rc.add_argument(
        "--timeout", type=SECONDS, default=3.0, metavar="SECONDS", help="seconds per query"
    )
    rc.add_argument("--json", action="store_true", help="machine-readable output")
    rc.set_defaults(func=_resolver_check)

    lookup = sub.add_parser(
        "lookup",
        help="one DNS lookup, validated: status, reason, signature expiry",
        description="Looks up NAME TYPE and says whether the answer is secure, insecure, bogus "
        "(and why) or indeterminate. Exit codes: 0 secure, 1 insecure, 2 bogus, 3 other.",
    )
    lookup.add_argument("name")
    lookup.add_argument("type", nargs="?", type=RRTYPE, default="A")
    lookup.add_argument("--json", action="store_true", help="machine-readable output")
    add_dns_options(lookup)
    lookup.set_defaults(func=_lookup)

    check = sub.add_parser(
        "check",
        help="check a mail domain (or one MX host) the way a DANE-enforcing sender does",
        description="Looks up the MX hosts of DOMAIN (or takes --mx HOST), validates DNSSEC "
        "in-process, probes every address with STARTTLS and matches the presented chains "
        "against the TLSA records (RFC 7672). Exit codes: 0 OK, 1 WARNING, 2 CRITICAL "
        "(DANE senders defer mail), 3 UNKNOWN (could not decide from here, or bad usage); "
        "130 after Ctrl-C.",
    )
    check.add_argument("domain", nargs="?", type=NAME, help="the mail domain")
    check.add_argument(
        "--mx", type=NAME, metavar="HOST", help="check this MX host instead of a domain"
    )
    check.add_argument(
        "--format",
        choices=("text", "json", "nagios"),
        help="text (default); json (schema: docs/json.md); nagios: one monitoring-plugin "
        "status line with performance data, then the findings",
    )
    check.add_argument("--json", action="store_true", help="the same as --format json")
    check.add_argument("--debug", action="store_true", help="include SMTP transcripts in JSON")
    check.add_argument(
        "--deadline",
        type=SECONDS,
        metavar="SECONDS",
        help="end the whole check after this long, UNKNOWN (default: only the per-step "
        "timeouts bound it)",
    )
    expiry = check.add_argument_group("expiry windows (days)")
    expiry.add_argument(
        "--rrsig-warning",
        type=DAYS,
        metavar="DAYS",
        help=f"WARNING when a DNSSEC signature on the path expires within DAYS "
        f"(default {settings.DEFAULT_RRSIG_WARNING_DAYS:g})",
    )
    expiry.add_argument(
        "--rrsig-critical",
        type=DAYS,
        metavar="DAYS",
        help=f"CRITICAL within DAYS (default {settings.DEFAULT_RRSIG_CRITICAL_DAYS:g}; "
        "at most --rrsig-warning)",
    )
    expiry.add_argument(
        "--cert-warning",
        type=DAYS,
        metavar="DAYS",
        help=f"WARNING when a leaf certificate expires within DAYS "
        f"(default {settings.DEFAULT_CERT_WARNING_DAYS:g})",
    )
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
    source.add_argument("--server", type=NAME, metavar="HOST", help="MX host to connect to")
    tlsa.add_argument(
        "--host", type=NAME, help="owner host name (default: the certificate's first name)"
    )
    tlsa.add_argument(
        "--connect",
        type=arg_type(lambda text: settings.parse_address(text, None), "address"),
        metavar="ADDR[:PORT]",
        help="connect here for --server",
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
    preflight.add_argument("--mx", required=True, type=NAME, metavar="HOST")
    preflight.add_argument("--port", action="append", type=PORT, metavar="PORT", help="default 25")
    add_dns_options(preflight)
    preflight.set_defaults(func=_preflight)

    add_exporter_parsers(sub)
    return parser


def _unknown(parser: argparse.ArgumentParser, command: str | None, extras: list[str]) -> str:
    """``prog: unknown option --jsn (did you mean --json?)`` for what argparse left over."""
    sub = parser
    if command is not None and parser._subparsers is not None:
        for action in parser._subparsers._group_actions:
            choices = getattr(action, "choices", None) or {}
            sub = choices.get(command, sub)
    first = extras[0]
    if first.startswith("-") and len(first) > 1:
        known = [o for o in sub._option_string_actions if o.startswith("--")]
        close = difflib.get_close_matches(first.split("=", 1)[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{sub.prog}: unknown option {first}{hint}; see {sub.prog} --help"
    return f"{sub.prog}: unexpected argument {first!r}; see {sub.prog} --help"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dane-monitor``; returns the exit code.

    Usage errors (an unknown option, a bad value, a missing argument) print one line on
    stderr and return 3 (UNKNOWN), never argparse's 2; Ctrl-C returns 130 quietly.
    """
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args, extras = parser.parse_known_args(argv)
        if extras:
            print(_unknown(parser, getattr(args, "command", None), extras), file=sys.stderr)
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
