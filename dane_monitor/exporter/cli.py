"""The ``serve`` and ``demo`` commands of ``dane-monitor``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from dane_monitor import __version__, settings
from dane_monitor.settings import arg_type, thresholds_from_args

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from dane_monitor.exporter.config import Config
    from dane_monitor.exporter.shard import Shard
    from dane_monitor.world import World

# asyncio, signal and the exporter are imported where a command runs: `serve --help` and
# `demo --help` need none of them.

#: Exit code of a usage error or an unusable configuration (as every dane-monitor command).
USAGE = 3


def _listen(text: str) -> str:
    from dane_monitor.exporter.config import parse_listen

    parse_listen(text)
    return text


def _shard(text: str) -> Shard:
    from dane_monitor.exporter.shard import parse_shard

    return parse_shard(text)


LISTEN = arg_type(_listen, "listen")
SHARD = arg_type(_shard, "shard")


def _workers(text: str) -> int:
    from dane_monitor.exporter.config import parse_workers

    return parse_workers(text)


WORKERS = arg_type(_workers, "workers")
DAYS = arg_type(settings.parse_days, "days")
DURATION = arg_type(settings.parse_duration, "duration")


def add_parsers(sub) -> None:
    """Add ``serve`` and ``demo`` to the ``dane-monitor`` sub-command parser ``sub``."""
    serve = sub.add_parser(
        "serve",
        help="the Prometheus exporter: background checks on /metrics, one-off checks on /probe",
        description="Checks the configured domains and MX hosts in the background and serves "
        "the latest results on /metrics; /probe?target=DOMAIN checks synchronously (for "
        "sharding over several exporters). SIGHUP or POST /-/reload re-reads the "
        "configuration. Reference and a full example configuration: docs/exporter.md.",
    )
    # Prometheus-style names (--config.file, --web.listen-address, …) as every exporter has
    # them, beside the short ones.
    serve.add_argument("--config", "--config.file", dest="config", required=True,
                       metavar="FILE", help="YAML configuration")  # fmt: skip
    serve.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration (and its web configuration and trust anchor) and exit: "
        "0 when usable, 3 with the error",
    )
    serve.add_argument("--listen", "--web.listen-address", dest="listen", type=LISTEN,
                       metavar="HOST:PORT", help="override the configured listen")  # fmt: skip
    serve.add_argument("--web-config", "--web.config.file", dest="web_config", metavar="FILE",
                       help="override the configured web_config (TLS, basic auth)")  # fmt: skip
    serve.add_argument("--shard", type=SHARD, metavar="I/N",
                       help="check in the background only bucket I (from 0) of N of the targets, "
                       "as Prometheus's hashmod of the target name splits them: N exporters "
                       "given 0/N ... N-1/N check each target once (overrides the file's "
                       "shard)")  # fmt: skip
    serve.add_argument("--workers", type=WORKERS, metavar="N",
                       help="worker processes running the background checks (default: the "
                       "configuration's workers, else one per core; 0: in the serving "
                       "process)")  # fmt: skip
    _threshold_options(serve, "override the configuration's thresholds")
    _log_options(serve)
    serve.set_defaults(func=_serve)

    demo = sub.add_parser(
        "demo",
        help="the exporter against the built-in local world: real metrics, no internet",
        description="Starts the local world (signed DNS and STARTTLS servers on loopback, the "
        "scenario catalogue: healthy and broken domains) and the exporter checking every "
        "domain of it, and prints the URL to open.",
    )
    demo.add_argument("--listen", default="127.0.0.1:9925", type=LISTEN, metavar="HOST:PORT",
                      help="where the exporter listens (port 0: any free port)")  # fmt: skip
    demo.add_argument(
        "--scenario", action="append", metavar="NAME", help="only this scenario (repeatable)"
    )
    demo.add_argument(
        "--interval", default="30s", type=arg_type(_duration_text, "duration"),
        metavar="DURATION", help="check interval of every target (30s, 5m, 1h30m)",
    )  # fmt: skip
    demo.add_argument(
        "--timeout", default="10s", type=arg_type(_duration_text, "duration"),
        metavar="DURATION", help="check timeout of every target",
    )  # fmt: skip
    demo.add_argument("--dir", metavar="DIR", help="where to write the demo's configuration")
    demo.add_argument(
        "--duration", type=DURATION, metavar="SECONDS", help="stop after this long (default: never)"
    )
    _threshold_options(demo, "written into the demo's configuration")
    _log_options(demo, default_level="warning")
    demo.set_defaults(func=_demo)


def _duration_text(text: str) -> str:
    settings.parse_duration(text)
    return text.strip()


def _threshold_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group(f"expiry windows in days ({what})")
    group.add_argument(
        "--rrsig-warning",
        type=DAYS,
        metavar="DAYS",
        help=f"a DNSSEC signature expiring within DAYS is a warning "
        f"(default {settings.DEFAULT_RRSIG_WARNING_DAYS:g})",
    )
    group.add_argument(
        "--rrsig-critical",
        type=DAYS,
        metavar="DAYS",
        help=f"... an error (default {settings.DEFAULT_RRSIG_CRITICAL_DAYS:g})",
    )
    group.add_argument(
        "--cert-warning",
        type=DAYS,
        metavar="DAYS",
        help=f"a leaf certificate expiring within DAYS is a warning "
        f"(default {settings.DEFAULT_CERT_WARNING_DAYS:g})",
    )


def _log_options(parser: argparse.ArgumentParser, default_level: str = "info") -> None:
    parser.add_argument("--log-format", "--log.format", dest="log_format",
                        choices=("logfmt", "json"), default="logfmt",
                        help="one event a line on stderr: logfmt or JSON")  # fmt: skip
    parser.add_argument("--log-level", "--log.level", dest="log_level",
                        choices=("debug", "info", "warning", "error"), default=default_level,
                        help="the least severe events logged (debug: every check)")  # fmt: skip


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    from dataclasses import replace

    from dane_monitor.exporter import logs
    from dane_monitor.exporter.app import Exporter
    from dane_monitor.exporter.config import ConfigError, load, parse_listen
    from dane_monitor.exporter.workers import GC_THRESHOLD, default_workers

    prog = "dane-monitor serve"
    try:
        config = load(args.config)
        if args.listen:
            parse_listen(args.listen)
            config = replace(config, listen=args.listen)
        if args.web_config:
            config = replace(config, web_config=args.web_config)
        if args.shard:
            config = replace(config, shard=args.shard)
        if args.workers is not None:
            config = replace(config, workers=args.workers)
    except (ConfigError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE
    try:
        config = replace(config, thresholds=thresholds_from_args(args, config.thresholds))
    except ValueError as exc:
        print(f"{prog}: --rrsig-critical/--rrsig-warning: {exc}", file=sys.stderr)
        return USAGE

    if args.check_config:
        from dane_monitor.exporter import webconfig
        from dane_monitor.exporter.scheduler import Runner

        try:
            webconfig.load(config.web_config)
            Runner(config)  # reads the trust anchor, parses the resolver
        except (ConfigError, ValueError, OSError) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return USAGE
        kinds = {k: sum(1 for t in config.targets if t.kind == k) for k in ("domain", "mx")}
        th = config.thresholds
        print(
            f"{args.config}: OK: {len(config.targets)} targets ({kinds['domain']} domains, "
            f"{kinds['mx']} MX hosts){_shard_text(config)}, listen {config.listen}; "
            "expiry windows: signatures "
            f"{th.rrsig_warning_days:g}/{th.rrsig_critical_days:g} days (warning/critical), "
            f"certificates {th.cert_warning_days:g} days"
        )
        return 0

    logs.setup(args.log_format, args.log_level)  # only now: --check-config logs nothing

    async def run() -> int:
        try:
            exporter = Exporter(
                config,
                config_path=args.config,
                overrides=_overrides(args),
                default_workers=default_workers(),
            )
        except (ConfigError, ValueError, OSError) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return USAGE
        try:
            return await exporter.serve_forever()
        except OSError as exc:
            print(f"{prog}: cannot listen on {config.listen}: {exc}", file=sys.stderr)
            return 1

    import gc

    # As in the workers (dane_monitor.exporter.workers.main): every result received or made
    # allocates dozens of objects, and at the default threshold (700) the collector runs
    # every few checks; the serving process's CPU per check fell by a third without it.
    gc.set_threshold(GC_THRESHOLD, 10, 10)
    return asyncio.run(run())


def _overrides(args: argparse.Namespace) -> Callable[[Config], Config]:
    """What ``serve``'s options change in a configuration: applied again to the file's on
    every reload (else SIGHUP would forget --shard, and N exporters would check everything)."""
    from dataclasses import replace

    def apply(config: Config) -> Config:
        if args.listen:
            config = replace(config, listen=args.listen)
        if args.web_config:
            config = replace(config, web_config=args.web_config)
        if args.shard:
            config = replace(config, shard=args.shard)
        if args.workers is not None:
            config = replace(config, workers=args.workers)
        return replace(config, thresholds=thresholds_from_args(args, config.thresholds))

    return apply


def _shard_text(config: Config) -> str:
    if config.shard is None:
        return ""
    return f", shard {config.shard}: {len(config.scheduled_targets())} checked here"


def demo_config(
    world,
    anchor: Path,
    listen: str,
    interval: str,
    timeout: str,
    thresholds: settings.Thresholds | None = None,
) -> str:
    """The configuration ``dane-monitor demo`` writes: every domain of the world, one MX host."""
    host, port = world.dns_address
    lines = [
        "# Written by dane-monitor demo: the exporter against the local world on loopback.",
        f"listen: {listen}",
        "dns:",
        f"  resolver: {host}:{port}",
        f"  trust_anchor: {anchor}",
        f"connect_port: {world.smtp_port}  # every world SMTP server listens on this port",
        "nameservers:",
        f"  port: {port}  # the world's authoritative servers answer on its DNS port",
        "concurrency: 20",
        "jitter: 0.1",
        "defaults:",
        "  ports: [25]",
        f"  interval: {interval}",
        f"  timeout: {timeout}",
    ]
    if thresholds is not None and thresholds != settings.Thresholds():
        lines += [
            "thresholds:",
            f"  rrsig_warning: {thresholds.rrsig_warning_days:g}",
            f"  rrsig_critical: {thresholds.rrsig_critical_days:g}",
            f"  cert_warning: {thresholds.cert_warning_days:g}",
        ]
    lines.append("targets:")
    first_mx = None
    for domain in world.domains.values():
        lines.append(f"  - domain: {domain.name.rstrip('.')}")
        if first_mx is None and domain.hosts and domain.scenario.expect.verdict == "valid":
            first_mx = domain.hosts[0].name.rstrip(".")
    if first_mx:
        lines.append(f"  - mx: {first_mx}")
    return "\n".join(lines) + "\n"


def _demo(args: argparse.Namespace) -> int:
    import time

    from dane_monitor.exporter import logs
    from dane_monitor.exporter.config import parse_duration, parse_listen
    from dane_monitor.world import CATALOGUE, World, by_name
    from dane_monitor.world.scratch import scratch_dir

    prog = "dane-monitor demo"
    logs.setup(args.log_format, args.log_level)
    try:
        parse_listen(args.listen)
        parse_duration(args.interval)
        parse_duration(args.timeout)
        thresholds = thresholds_from_args(args)
        scenarios = [by_name(n) for n in args.scenario] if args.scenario else CATALOGUE
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return USAGE
    except KeyError as exc:
        print(f"{prog}: {exc.args[0]} (see dane-monitor world --list)", file=sys.stderr)
        return USAGE
    started = time.perf_counter()
    world = World(scenarios)
    # Without --dir the demo's files live in a scratch folder removed however the demo
    # ends (also when the exporter cannot start, on Ctrl-C and on SIGTERM).
    with scratch_dir(args.dir, "dane-demo-") as directory:
        return _run_demo(args, world, directory, thresholds, started)


def _run_demo(
    args: argparse.Namespace,
    world: World,
    directory: Path,
    thresholds: settings.Thresholds,
    started: float,
) -> int:
    import asyncio
    import contextlib
    import signal
    import time

    from dane_monitor.exporter.app import Exporter
    from dane_monitor.exporter.config import ConfigError

    prog = "dane-monitor demo"
    anchor = world.write_trust_anchor(directory / "trust-anchor.ds")

    async def run() -> int:
        async with world:
            path = directory / "dane-exporter.yml"
            path.write_text(
                demo_config(world, anchor, args.listen, args.interval, args.timeout, thresholds)
            )
            try:
                exporter = Exporter.from_file(path)
            except ConfigError as exc:
                print(f"{prog}: {exc}", file=sys.stderr)
                return 1
            try:
                await exporter.start()
            except OSError as exc:
                why = exc.strerror or str(exc)
                print(f"{prog}: cannot listen on {args.listen}: {why}", file=sys.stderr)
                return 1
            try:
                # Ctrl-C and SIGTERM stop the demo cleanly from the moment "Ctrl-C stops." is
                # printed (and a little before).
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                loop.add_signal_handler(
                    signal.SIGHUP, lambda: asyncio.ensure_future(exporter.reload())
                )
                print(
                    f"dane-monitor {__version__} demo: local world of {len(world.domains)} "
                    f"domains up in {time.perf_counter() - started:.1f}s; the exporter checks "
                    f"them every {args.interval}"
                )
                print(f"exporter       {exporter.url}")
                print(f"metrics        {exporter.url}metrics")
                print(f"configuration  {path}")
                first = next(iter(world.domains.values())).name.rstrip(".")
                print(f"probe          {exporter.url}probe?target={first}&debug=true")
                print("Try:")
                # prometheus-client writes every value as a float: a current verdict is 1.0
                print(f"  curl -s {exporter.url}metrics | grep '^dane_verdict.*}} 1.0$'")
                print(
                    "  prometheus: scrape_configs: [{job_name: dane, static_configs: "
                    f"[{{targets: ['{exporter.server.host}:{exporter.server.port}']}}]}}]"
                )
                print(
                    "Ctrl-C stops." if args.duration is None else f"Stopping in {args.duration}s."
                )
                sys.stdout.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.duration)
            finally:
                await exporter.close()
        return 0

    return asyncio.run(run())
