"""Fleet checks: ``dane-monitor check --from FILE`` (issue 17).

The input is one target a line (docs/fleet.md): a mail domain, or ``mx:HOST`` for one MX
host; ``#`` starts a comment, blank lines are skipped, ``-`` reads standard input. Every
line is read and parsed before the first check starts, so a bad line is a usage error
(``FILE:LINE: …``) and nothing is checked. A target given twice is checked once.

The checks share one :class:`~dane_monitor.check.Checker` (one DNS cache, one TLS context
per key type) and run under one bound: ``concurrency`` workers each take the next target
when their last check ends, so at most that many checks are in flight, each within the
per-target ``deadline``, and only those results are held. A result is written as soon as
it is in (JSON Lines, or CSV rows) and then dropped; the summary keeps counts and one line
per failing target.

SIGINT and SIGTERM stop the run: no new check starts, the running ones are cancelled, and
the summary of what finished is printed; the exit code is then 128 + the signal (130,
143). A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from dane_monitor import nagios, render, settings
from dane_monitor.check import Checker, within
from dane_monitor.findings import finding
from dane_monitor.report import DomainResult, Severity, Verdict

#: Targets checked at once unless ``--concurrency`` says otherwise (the exporter's
#: examples use 50 too): enough to hide the network's latency, few enough for one core.
DEFAULT_CONCURRENCY = 50
#: How often the progress line is redrawn on a terminal (seconds).
PROGRESS_EVERY = 0.5
#: At most this many bad lines are named before a usage error ends the run.
MAX_BAD_LINES = 20
#: The line prefix of an MX host (``mx:mail.example.de``); ``domain:`` is the default's.
MX_PREFIX = "mx:"
DOMAIN_PREFIX = "domain:"

#: Exit codes from least to most severe, as :func:`dane_monitor.report.worst_verdict` ranks
#: verdicts: a known outage (CRITICAL) outranks "could not decide" (UNKNOWN).
_EXIT_RANK = {render.OK: 0, render.WARNING: 1, render.UNKNOWN: 2, render.CRITICAL: 3}


def worst_exit(codes: Iterable[int]) -> int:
    """The exit code of a fleet: CRITICAL if any target is, else UNKNOWN, WARNING, OK."""
    return max(codes, key=_EXIT_RANK.__getitem__, default=render.OK)


@dataclass(frozen=True)
class Target:
    name: str  # as written on the line (its first spelling when given twice)
    mx_only: bool  # an MX host (``mx:``), else a mail domain
    line: int  # where it was first given

    @property
    def kind(self) -> str:
        return "mx-host" if self.mx_only else "domain"


@dataclass
class Targets:
    targets: list[Target]
    duplicates: int  # lines that named a target given before


class BadInput(ValueError):
    """Lines that are not targets; ``str()`` is one ``FILE:LINE: why`` a line."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def _key(name: str, mx_only: bool) -> tuple[bool, str]:
    """What makes two lines the same target: kind and name, case and final dot aside."""
    bare = name[:-1] if name.endswith(".") else name
    if not bare.isascii():
        bare = bare.encode("idna").decode("ascii")  # parse_domain_name checked it encodes
    return mx_only, bare.lower()


def parse_targets(lines: Iterable[str], source: str) -> Targets:
    """The targets of ``lines`` (see the module's docstring).

    :raises BadInput: a line that is not a target (at most :data:`MAX_BAD_LINES` named),
        or no target at all.
    """
    targets: list[Target] = []
    seen: set[tuple[bool, str]] = set()
    duplicates = 0
    errors: list[str] = []
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        mx_only = False
        word = text
        prefix, colon, rest = text.partition(":")
        if colon:
            if prefix.strip().lower() + ":" == MX_PREFIX:
                mx_only, word = True, rest.strip()
            elif prefix.strip().lower() + ":" == DOMAIN_PREFIX:
                word = rest.strip()
            else:
                errors.append(
                    f"{source}:{number}: unknown prefix {prefix.strip() + ':'!r} (a line is a "
                    f"mail domain, or {MX_PREFIX}HOST for one MX host)"
                )
                continue
        if len(word.split()) > 1:
            errors.append(
                f"{source}:{number}: one target a line, not {text!r} (comments start with #)"
            )
            continue
        try:
            name = settings.parse_domain_name(word)
        except ValueError as exc:
            errors.append(f"{source}:{number}: {exc}")
            continue
        key = _key(name, mx_only)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        targets.append(Target(name, mx_only, number))
    if errors:
        more = len(errors) - MAX_BAD_LINES
        shown = errors[:MAX_BAD_LINES]
        if more > 0:
            shown.append(f"{source}: … and {more} more bad lines")
        raise BadInput(shown)
    if not targets:
        raise BadInput([f"{source}: no targets (one mail domain, or {MX_PREFIX}HOST, a line)"])
    return Targets(targets, duplicates)


def read_targets(path: str, stdin: IO[str] | None = None) -> Targets:
    """The targets in the file at ``path`` (``-``: ``stdin``, by default standard input).

    :raises BadInput: bad lines, no targets, or a file that cannot be read.
    """
    if path == "-":
        return parse_targets(stdin if stdin is not None else sys.stdin, "<stdin>")
    try:
        with open(path, encoding="utf-8") as f:
            return parse_targets(f, path)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput([f"{path}: cannot read it: {why}"]) from None


# -- what the summary keeps ---------------------------------------------------------------


@dataclass
class Summary:
    """What a run leaves behind: counts, and one line a failing target."""

    total: int
    duplicates: int = 0
    done: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    codes: Counter[int] = field(default_factory=Counter)
    # (exit code, the one-line reason of nagios.headline) of each CRITICAL/UNKNOWN target
    failing: list[tuple[int, str]] = field(default_factory=list)
    crashed: int = 0
    cancelled: int = 0  # checks running when a signal stopped the run
    signal: int | None = None  # the signal that stopped it
    elapsed: float = 0.0

    def add(self, result: DomainResult) -> None:
        code = render.exit_code(result)
        self.done += 1
        self.verdicts[result.verdict.value] += 1
        self.codes[code] += 1
        if code in (render.CRITICAL, render.UNKNOWN):
            self.failing.append((code, nagios.headline(result, code)))

    @property
    def not_started(self) -> int:
        return self.total - self.done - self.cancelled

    @property
    def failures(self) -> int:
        return self.codes[render.CRITICAL] + self.codes[render.UNKNOWN]

    def exit_code(self) -> int:
        """128 + the signal that stopped the run, else the worst target's exit code."""
        if self.signal is not None:
            return 128 + self.signal
        return worst_exit(self.codes.elements())

    def lines(self) -> list[str]:
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        head = f"{self.done} of {self.total} targets checked in {self.elapsed:.1f}s ({rate:.1f}/s)"
        if self.duplicates:
            head += f"; {self.duplicates} duplicate line{'s' * (self.duplicates != 1)} " \
                "checked once"  # fmt: skip
        out = [head]
        if self.signal is not None:
            name = signal.Signals(self.signal).name
            out.append(
                f"stopped by {name}: {self.cancelled} running checks cancelled, "
                f"{self.not_started} not started"
            )
        for verdict in Verdict:
            if self.verdicts[verdict.value]:
                out.append(f"  {verdict.value:9} {self.verdicts[verdict.value]}")
        if self.crashed:
            out.append(f"  ({self.crashed} of them crashed: a bug, tracebacks above)")
        worst = worst_exit(self.codes.elements())
        out.append(f"worst: {render.STATE[worst]} (exit {worst})" if self.done else "worst: -")
        if self.failing:
            out.append(f"failing ({len(self.failing)}):")
            order = {render.CRITICAL: 0, render.UNKNOWN: 1}
            for code, reason in sorted(self.failing, key=lambda f: (order[f[0]], f[1])):
                out.append(f"  {render.STATE[code]:8} {reason}")
        return out


# -- outputs ------------------------------------------------------------------------------


class Output(Protocol):
    def write(self, result: DomainResult) -> None: ...


class NoOutput:
    """The text format: nothing a target, the summary on stdout at the end."""

    def write(self, result: DomainResult) -> None:
        pass


class JSONLines:
    """One ``result.to_dict()`` a line (docs/json.md), written as each check ends."""

    def __init__(self, stream: IO[str], *, debug: bool = False) -> None:
        self.stream = stream
        self.debug = debug

    def write(self, result: DomainResult) -> None:
        line = json.dumps(result.to_dict(debug=self.debug), separators=(",", ":"))
        self.stream.write(line + "\n")
        self.stream.flush()


#: The CSV columns (docs/fleet.md): the target's, its MX host's, then the endpoint's.
CSV_COLUMNS = (
    "target", "kind", "verdict", "state", "reason",
    "mx", "preference", "port", "mx_verdict", "mx_sender_action", "tlsa_records",
    "address", "key_type", "endpoint_verdict", "sender_action", "authenticated",
    "decision", "probe_error", "match_failure", "tls_version", "leaf_spki_sha256",
    "leaf_not_after",
)  # fmt: skip


def csv_rows(result: DomainResult) -> list[list[Any]]:
    """The CSV rows of ``result``: one per endpoint; a host without endpoints gets one row
    with empty endpoint columns, a target without hosts one with empty host columns."""
    code = render.exit_code(result)
    head = [
        result.domain, "mx-host" if result.mx_only else "domain", result.verdict.value,
        render.STATE[code], nagios.headline(result, code),
    ]  # fmt: skip
    if not result.hosts:
        return [head + [""] * (len(CSV_COLUMNS) - len(head))]
    rows = []
    for host in result.hosts:
        host_cols = [
            host.name, "" if host.preference is None else host.preference, host.port,
            host.verdict.value, host.sender_action.value if host.sender_action else "",
            ";".join(host.tlsa_records),
        ]  # fmt: skip
        if not host.endpoints:
            rows.append(head + host_cols + [""] * (len(CSV_COLUMNS) - len(head) - len(host_cols)))
        for ep in host.endpoints:
            rows.append(head + host_cols + [
                ep.address, ep.key_type or "", ep.verdict.value,
                ep.sender_action.value if ep.sender_action else "",
                "" if ep.authenticated is None else str(ep.authenticated).lower(),
                ep.case or "", ep.probe_error or "", ep.match_failure or "",
                ep.tls_version or "", ep.leaf_spki_sha256 or "",
                "" if ep.leaf_not_after is None else ep.leaf_not_after,
            ])  # fmt: skip
    return rows


class CSVRows:
    """:data:`CSV_COLUMNS`, then :func:`csv_rows` of each result as its check ends."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(CSV_COLUMNS)
        stream.flush()

    def write(self, result: DomainResult) -> None:
        self.writer.writerows(csv_rows(result))
        self.stream.flush()


# -- progress on a terminal ---------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """One line on a terminal, redrawn in place: done/total, rate, failures, time left."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.shown = False

    def columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            return 80

    def line(self, summary: Summary, elapsed: float, running: int) -> str:
        rate = summary.done / elapsed if elapsed > 0 else 0.0
        left = summary.total - summary.done
        eta = _duration(left / rate) if rate > 0 else "?"
        return (
            f"{summary.done}/{summary.total} checked, {rate:.1f}/s, "
            f"{summary.failures} failing, {running} running, {eta} left"
        )

    def draw(self, summary: Summary, elapsed: float, running: int) -> None:
        text = self.line(summary, elapsed, running)[: max(10, self.columns() - 1)]
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


# -- the run ------------------------------------------------------------------------------


def _crashed(target: Target, started: float, exc: BaseException) -> DomainResult:
    """The result of a check that raised: UNKNOWN, with the exporter's finding for it."""
    result = DomainResult(
        target.name,
        mx_only=target.mx_only,
        mx_mode="host" if target.mx_only else "mx",
        started=started,
        verdict=Verdict.ERROR,
    )
    message = f"the check crashed: {type(exc).__name__} (a bug; the traceback is on stderr)"
    result.findings.append(finding("check-crashed", Severity.ERROR, message))
    return result


class Fleet:
    """Checks ``targets`` with ``checker``, at most ``concurrency`` at once, each within
    ``deadline`` seconds (None: only the checker's step timeouts bound it)."""

    def __init__(
        self,
        checker: Checker,
        targets: Targets,
        *,
        output: Output,
        concurrency: int = DEFAULT_CONCURRENCY,
        deadline: float | None = None,
        progress: Progress | None = None,
        errors: IO[str] | None = None,
    ) -> None:
        self.checker = checker
        self.targets = targets.targets
        self.output = output
        self.concurrency = concurrency
        self.deadline = deadline
        self.progress = progress
        self.errors = errors if errors is not None else sys.stderr
        self.summary = Summary(len(self.targets), duplicates=targets.duplicates)
        self._next = iter(self.targets)
        self._running = 0
        self._stopping = False
        self._workers: list[asyncio.Task[None]] = []
        self._broken_pipe: BrokenPipeError | None = None
        self._t0 = 0.0

    async def _check(self, target: Target) -> DomainResult:
        started = time.time()
        t0 = time.monotonic()
        try:
            check = (
                self.checker.check_host(target.name)
                if target.mx_only
                else self.checker.check_domain(target.name)
            )
            result = await within(check, target.name, mx_only=target.mx_only,
                                  deadline=self.deadline)  # fmt: skip
        except Exception as exc:  # one target's bug must not lose the others' results
            self._report_crash(target, exc)
            result = _crashed(target, started, exc)
            self.summary.crashed += 1
        result.duration = time.monotonic() - t0
        return result

    def _report_crash(self, target: Target, exc: Exception) -> None:
        if self.progress is not None:
            self.progress.clear()
        self.errors.write(f"check of {target.name} crashed (a bug; please report it):\n")
        self.errors.write("".join(traceback.format_exception(exc)))
        self.errors.flush()

    async def _worker(self) -> None:
        while not self._stopping:
            target = next(self._next, None)
            if target is None:
                return
            self._running += 1
            try:
                result = await self._check(target)
            finally:
                self._running -= 1
            self.summary.add(result)
            try:
                self.output.write(result)
            except BrokenPipeError as exc:  # the reader went away: nothing more to do
                self._broken_pipe = exc
                self.stop()
                return

    def stop(self, signum: int | None = None) -> None:
        """Start no new check and cancel the running ones (a signal's first delivery)."""
        if self._stopping:
            return
        self._stopping = True
        if signum is not None:
            self.summary.signal = signum
            self.summary.cancelled = self._running
        current = asyncio.current_task()
        for task in self._workers:
            if task is not current:
                task.cancel()

    def _on_signal(self, signum: int) -> None:
        if self._stopping and self.summary.signal is not None:
            os._exit(128 + signum)  # a second signal: at once, as promised
        self.stop(signum)

    async def _ticker(self) -> None:
        assert self.progress is not None
        while True:
            self.progress.draw(self.summary, time.monotonic() - self._t0, self._running)
            await asyncio.sleep(PROGRESS_EVERY)

    async def run(self) -> Summary:
        """Check every target (or until a signal); the summary of what finished.

        :raises BrokenPipeError: the reader of the output went away.
        """
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal, signum)
        self._t0 = time.monotonic()
        ticker = asyncio.create_task(self._ticker()) if self.progress is not None else None
        try:
            workers = min(self.concurrency, len(self.targets))
            self._workers = [asyncio.create_task(self._worker()) for _ in range(workers)]
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self.summary.elapsed = time.monotonic() - self._t0
            if self.progress is not None:
                self.progress.draw(self.summary, self.summary.elapsed, 0)
                self.progress.clear()
        if self._broken_pipe is not None:
            raise self._broken_pipe
        return self.summary


def run(
    checker: Checker,
    targets: Targets,
    *,
    output: Output,
    concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> Summary:
    """:meth:`Fleet.run` in a new event loop; SIGINT and SIGTERM stop it (see the module)."""
    fleet = Fleet(
        checker,
        targets,
        output=output,
        concurrency=concurrency,
        deadline=deadline,
        progress=progress,
    )
    return asyncio.run(fleet.run())


# -- check --from -------------------------------------------------------------------------


def main(
    args: Any,
    prog: str,
    make_checker: Callable[[Any, str], Checker | str],
) -> int:
    """``check --from FILE`` (``args`` as cli.py's check parser makes them): usage errors
    and bad lines on stderr with exit 3 before any check; JSON Lines or CSV on stdout as
    checks end; the summary on stdout (text) or stderr (--json, --csv); progress on stderr
    when it is a terminal. The exit code is the worst target's, or 128 + a signal's."""
    usage = 3
    problem = None
    if args.domain or args.mx:
        problem = "give --from FILE, or a DOMAIN or --mx HOST, not both"
    elif args.format == "nagios":
        problem = "--format nagios is one target's status line: --from takes text, --json or --csv"
    if problem is None:
        try:
            targets = read_targets(args.from_file)
        except BadInput as exc:
            for line in exc.errors:
                print(f"{prog}: {line}", file=sys.stderr)
            return usage
    if problem is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return usage
    checker = make_checker(args, prog)
    if isinstance(checker, str):
        print(checker, file=sys.stderr)
        return usage
    output: Output
    if args.format == "csv":
        output = CSVRows(sys.stdout)
    elif args.json or args.format == "json":
        output = JSONLines(sys.stdout, debug=args.debug)
    else:
        output = NoOutput()
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    summary = run(
        checker,
        targets,
        output=output,
        concurrency=args.concurrency or DEFAULT_CONCURRENCY,
        deadline=args.deadline,
        progress=progress,
    )
    where = sys.stdout if isinstance(output, NoOutput) else sys.stderr
    where.write("\n".join(summary.lines()) + "\n")
    where.flush()
    return summary.exit_code()
