"""``dane-monitor tlsrpt import PATH...``: TLS-RPT reports (RFC 8460) from files or a Maildir.

Each PATH is a report (``.json``, ``.json.gz``), a mail carrying one (``.eml``, RFC 8460
5.3), a Maildir (its ``new/`` and ``cur/``) or a directory of such files. The summary says,
per domain, reporting organisation and policy type, how many sessions succeeded and how
many failed with which result type; ``--textfile`` writes the same counts as the
``dane_tlsrpt_*`` metrics for node_exporter's textfile collector. A report-id seen twice
counts once. A file that is not a valid report gets one line on stderr and the others are
still imported; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from dane_monitor.tlsrpt import FILE_LIMITS, ReportError, Tally, read_reports

#: Exit codes: everything imported; some file or report refused; nothing to import.
OK, SOME_REFUSED, USAGE = 0, 1, 3

DESCRIPTION = (
    "Read SMTP TLS reports (RFC 8460) that senders mailed or posted to your rua address: "
    "report files (.json, .json.gz), mails (.eml), or a Maildir (new/ and cur/). Prints "
    "sessions per domain, reporting organisation, policy type and result type; a report-id "
    "seen twice counts once."
)


def add_parser(sub: argparse._SubParsersAction, summary: str) -> argparse.ArgumentParser:
    parser = sub.add_parser("tlsrpt", help=summary, description=DESCRIPTION)
    parser.add_argument("action", choices=["import"], help="import: read reports")
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="a report file, a mail, a Maildir or a directory"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--textfile",
        metavar="FILE",
        help="also write the dane_tlsrpt_* metrics to FILE (Prometheus text format, written "
        "atomically) for node_exporter's textfile collector; name it *.prom",
    )
    parser.add_argument(
        "--domain",
        action="append",
        metavar="NAME",
        help="label only these domains in the metrics, the others as 'other' (repeatable; "
        "default: any domain, the first 100)",
    )
    parser.set_defaults(func=run)
    return parser


def files_of(path: Path) -> list[Path]:
    """The files to read for ``path``: itself, a Maildir's new/ and cur/ (not tmp/, where
    mails are still being written), or a directory's files; hidden files are skipped."""
    if not path.is_dir():
        return [path]
    folders = [path / "new", path / "cur"]
    if not any(f.is_dir() for f in folders):
        folders = [path]
    return [
        f
        for folder in folders
        if folder.is_dir()
        for f in sorted(folder.iterdir())
        if not f.name.startswith(".") and f.is_file()
    ]


def read_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``; a larger file is refused without reading it all."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ReportError("unreadable", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ReportError("too-large", f"larger than {limit // (1 << 20)} MiB (refused)")
    return data


def run(args: argparse.Namespace) -> int:
    tally = Tally(domains=args.domain, remembered=10**7)
    files = imported = duplicates = 0
    refused: list[dict[str, str]] = []
    accepted: list[dict[str, Any]] = []
    for given in args.paths:
        path = Path(given)
        if not path.exists():
            refused.append({"path": given, "reason": "unreadable", "error": "no such file"})
            tally.refuse("unreadable")
            continue
        for file in files_of(path):
            files += 1
            try:
                reports = read_reports(read_bounded(file, FILE_LIMITS.raw), FILE_LIMITS)
            except ReportError as exc:
                refused.append({"path": str(file), "reason": exc.reason, "error": str(exc)})
                tally.refuse(exc.reason)
                continue
            for report in reports:
                if tally.add(report):
                    imported += 1
                    accepted.append({"path": str(file), **report.to_json()})
                else:
                    duplicates += 1
    for entry in refused:
        print(f"{entry['path']}: {entry['error']}", file=sys.stderr)
    if args.textfile:
        try:
            write_atomically(Path(args.textfile), tally.render())
        except OSError as exc:
            print(f"dane-monitor tlsrpt: cannot write {args.textfile}: {exc}", file=sys.stderr)
            return USAGE
    rows = sorted(tally.rows(), key=lambda r: (*r[:3], r[3] != "successful", r[3]))
    if args.json:
        out = {
            "files": files,
            "reports": imported,
            "duplicates": duplicates,
            "refused": refused,
            "sessions": [
                {"domain": d, "organization": o, "policy_type": p, "result": r, "sessions": n}
                for d, o, p, r, n in rows
            ],
            "imported": accepted,
        }
        print(json.dumps(out, indent=2))
    else:
        print(text_summary(files, imported, duplicates, len(refused), rows))
    return SOME_REFUSED if refused else OK


def text_summary(
    files: int, imported: int, duplicates: int, refused: int, rows: list[tuple[str, ...]] | Any
) -> str:
    head = f"{imported} report{'s' if imported != 1 else ''} imported from {files} file"
    head += "s" if files != 1 else ""
    extra = []
    if duplicates:
        extra.append(f"{duplicates} duplicate{'s' if duplicates != 1 else ''} counted once")
    if refused:
        extra.append(f"{refused} refused")
    if extra:
        head += f" ({', '.join(extra)})"
    if not rows:
        return head + "."
    table = [("DOMAIN", "ORGANIZATION", "POLICY", "RESULT", "SESSIONS")]
    table += [(d, o, p, r, str(n)) for d, o, p, r, n in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
        + "  "
        + row[4].rjust(8)
        for row in table
    ]
    return head + ":\n" + "\n".join(line.rstrip() for line in lines)


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file in the same directory and a rename:
    a reader (node_exporter) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
