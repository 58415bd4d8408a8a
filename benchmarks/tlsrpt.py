"""What a TLS-RPT report costs to take or refuse (issue 17): dane_monitor.tlsrpt against the
unbounded standard-library way (gzip.decompress + json.loads) on the same input.

    python3 benchmarks/tlsrpt.py [--rounds 5]

Inputs: a realistic report (three policies, gzip), a gzip bomb (50 KiB inflating to 200 MiB),
a JSON bomb (a 2 MiB array of a million numbers, gzip) and a nesting bomb (5 MB of '[').
Wall time per parse and the peak memory traced by tracemalloc; medians over rounds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tlsrpt_samples import MULTI_POLICY, as_gzip, gzip_bomb  # noqa: E402

from dane_monitor.tlsrpt import FILE_LIMITS, ReportError, parse_report  # noqa: E402


def ours(data: bytes) -> object:
    try:
        return parse_report(data, limits=FILE_LIMITS)
    except ReportError as exc:
        return exc.reason


def stdlib(data: bytes) -> object:
    try:
        text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        return type(json.loads(text)).__name__
    except (ValueError, RecursionError, OSError, EOFError) as exc:
        return type(exc).__name__


def measure(fn: Callable[[bytes], object], data: bytes, rounds: int) -> tuple[float, float, object]:
    times, peaks, result = [], [], None
    for _ in range(rounds):
        tracemalloc.start()
        t0 = time.perf_counter()
        result = fn(data)
        times.append(time.perf_counter() - t0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), statistics.median(peaks), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    inputs = {
        "realistic report": as_gzip(MULTI_POLICY),
        "gzip bomb 200 MiB": gzip_bomb(200 << 20),
        "JSON bomb 1e6 items": gzip.compress(b"[" + b"1," * 1_000_000 + b"1]"),
        "nesting bomb 5 MB": gzip.compress(b"[" * 5_000_000),
    }
    print(f"{'input':22} {'bytes':>9} | {'ours ms':>9} {'peak MiB':>8} result"
          f"{'':18}| {'stdlib ms':>9} {'peak MiB':>8} result")  # fmt: skip
    for name, data in inputs.items():
        t1, m1, r1 = measure(ours, data, args.rounds)
        t2, m2, r2 = measure(stdlib, data, args.rounds)
        r1 = type(r1).__name__ if not isinstance(r1, str) else r1
        print(f"{name:22} {len(data):9} | {t1 * 1e3:9.2f} {m1 / 2**20:8.1f} {r1:24}| "
              f"{t2 * 1e3:9.2f} {m2 / 2**20:8.1f} {r2}")  # fmt: skip


if __name__ == "__main__":
    main()
