"""Fuzz campaign: the validator against mutated real answers of a signed world.

    python3 benchmarks/fuzz_validator.py --mutations 1000000 --workers 2 --seed 1

Every lookup asks one question of the fuzz world (``tests/fuzzdns.py``: a private root, an
opt-out NSEC3 TLD, NSEC/NSEC3/Ed25519/RSA zones with wildcards, CNAMEs, empty
non-terminals, signed and insecure delegations, a KeyTrap-style key-tag collision, an
expired signature and a DS that matches nothing), with a fresh validator whose zone-key
cache is warm 70% of the time (cold otherwise, so DS and DNSKEY answers get mutated too),
anchored at the root or at the TLD. Exactly one response per lookup is mutated: the first
answer to one of the questions the lookup asks. Oracles: (a) no exception, (b) no
``secure`` answer whose data differs from the unmutated world's, (c) no secure/bogus →
insecure downgrade on a path without an insecure delegation, (d) at most 1 s CPU per lookup.

Lookup ``i`` of seed ``s`` is reproducible from the world file: ``--show I`` re-runs it
verbosely. Every finding is written (one JSON line each, with the exact mutated response)
to ``--findings``; ``--replay FILE`` re-runs those reproducers against today's validator.
The world is signed once and kept in ``--world`` (signatures are randomised, so a re-signed
world would give other bytes); the validation clock is fixed to the world's signing time.

Measured on 2 shared cores (harness of 4f103a0, validator of that time): 1,000,000 lookups in
1,064 s wall, 940 lookups/s, 1.9 ms CPU per lookup, slowest lookup 52 ms CPU; 0 exceptions,
0 hangs, 0 secure answers with altered data, 0 downgrades, 0 over the CPU or work limits;
8 bogus -> secure upgrades (the key-tag cap depends on the DNSKEY RRset's order).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzzdns

_HARNESS: fuzzdns.Harness | None = None


def load_world(path: Path) -> fuzzdns.FuzzWorld:
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    world = fuzzdns.build_world()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(world, f)
    return world


def _work(args: tuple[int, int, int]) -> dict[str, Any]:
    start, count, seed = args
    h = _HARNESS
    assert h is not None
    kinds: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    transitions: Counter[str] = Counter()
    findings: dict[str, dict[str, Any]] = {}
    cpu = 0.0
    worst = (0.0, -1)
    for i in range(start, start + count):
        o = h.run(i, seed)
        kinds[o.kind] += 1
        status = o.status or "exception"
        statuses[status] += 1
        transitions[f"{o.baseline.status.value}->{status}"] += 1
        cpu += o.cpu
        worst = max(worst, (o.cpu, i))
        for oracle, key in o.findings:
            k = f"{oracle}: {key}"
            f = findings.get(k)
            rec = fuzzdns.outcome_record(o)
            if f is None:
                findings[k] = {"oracle": oracle, "count": 1, "example": rec,
                               "text": o.describe() + "\n" + o.response_text()}  # fmt: skip
            else:
                f["count"] += 1
                if len(rec["wire"]) < len(f["example"]["wire"]):
                    f["example"] = rec
                    f["text"] = o.describe() + "\n" + o.response_text()
    return {
        "n": count, "kinds": kinds, "statuses": statuses, "transitions": transitions,
        "findings": findings, "cpu": cpu, "worst": worst,
    }  # fmt: skip


def _init(world_path: str) -> None:
    global _HARNESS
    if _HARNESS is None:  # spawn start method: load the world again
        _HARNESS = fuzzdns.Harness(load_world(Path(world_path)))


def campaign(args: argparse.Namespace) -> int:
    world_path = Path(args.world)
    global _HARNESS
    world = load_world(world_path)
    _HARNESS = fuzzdns.Harness(world)  # inherited by forked workers
    chunk = max(1, min(args.chunk, args.mutations // (args.workers * 4) or 1))
    end = args.start + args.mutations
    jobs = [(s, min(chunk, end - s), args.seed) for s in range(args.start, end, chunk)]
    print(
        f"fuzz campaign: {args.mutations:,} mutated lookups, seed {args.seed}, "
        f"{args.workers} workers, world {world_path} ({len(world.questions)} questions, "
        f"{len(world.signed.zones)} zones), validator {fuzzdns.Validator.__module__}",
        flush=True,
    )
    total: dict[str, Any] = {"n": 0, "kinds": Counter(), "statuses": Counter(),
                             "transitions": Counter(), "findings": {}, "cpu": 0.0,
                             "worst": (0.0, -1)}  # fmt: skip
    t0 = time.perf_counter()
    c0 = os.times()
    last = t0
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init, initargs=(str(world_path),)) as pool:
        for part in pool.imap_unordered(_work, jobs):
            total["n"] += part["n"]
            total["cpu"] += part["cpu"]
            total["worst"] = max(total["worst"], tuple(part["worst"]))
            for k in ("kinds", "statuses", "transitions"):
                total[k].update(part[k])
            for k, f in part["findings"].items():
                g = total["findings"].get(k)
                if g is None:
                    total["findings"][k] = f
                else:
                    g["count"] += f["count"]
                    if len(f["example"]["wire"]) < len(g["example"]["wire"]):
                        g["example"], g["text"] = f["example"], f["text"]
            now = time.perf_counter()
            if now - last >= args.progress or total["n"] == args.mutations:
                last = now
                if args.findings:  # so far: usable while the campaign still runs
                    write_findings(total, args.findings)
                nf = sum(f["count"] for f in total["findings"].values())
                print(
                    f"  {total['n']:>9,} / {args.mutations:,}  {total['n'] / (now - t0):7.0f} "
                    f"lookups/s  {nf} findings ({len(total['findings'])} distinct)",
                    flush=True,
                )
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu_children = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    report(total, wall, cpu_children, args)
    if args.findings:
        write_findings(total, args.findings)
        print(f"\nreproducers: {args.findings} (re-run: --replay {args.findings})")
    return 1 if total["findings"] else 0


def write_findings(total: dict[str, Any], path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for k, v in sorted(total["findings"].items()):
            f.write(json.dumps({"key": k, "count": v["count"], **v["example"]}) + "\n")
    os.replace(tmp, path)


def report(total: dict[str, Any], wall: float, cpu: float, args: argparse.Namespace) -> None:
    n = total["n"]
    worst_cpu, worst_i = total["worst"]
    print(
        f"\n== {n:,} mutated lookups in {wall:.0f} s wall, {cpu:.0f} s CPU (workers), "
        f"{n / wall:.0f} lookups/s, {total['cpu'] / n * 1000:.2f} ms CPU per lookup; "
        f"slowest lookup #{worst_i}: {worst_cpu * 1000:.0f} ms CPU"
    )
    print("\nmutation kind          lookups")
    for k, c in sorted(total["kinds"].items(), key=lambda kv: -kv[1]):
        print(f"  {k:<20} {c:>9,}")
    print("\nstatus after mutation  lookups")
    for k, c in total["statuses"].most_common():
        print(f"  {k:<20} {c:>9,}  {c / n:6.1%}")
    print("\nunmutated -> mutated   lookups")
    for k, c in total["transitions"].most_common():
        print(f"  {k:<32} {c:>9,}")
    by_oracle = Counter()
    for f in total["findings"].values():
        by_oracle[f["oracle"]] += f["count"]
    print("\nfindings per oracle")
    for o in ("exception", "hang", "secure-altered", "secure-upgrade", "downgrade", "cpu", "work"):
        print(f"  {o:<16} {by_oracle.get(o, 0):>9,}")
    for k, f in sorted(total["findings"].items(), key=lambda kv: -kv[1]["count"]):
        print(f"\n--- {f['count']:,} x {k}\n{f['text']}")


def show(args: argparse.Namespace) -> int:
    h = fuzzdns.Harness(load_world(Path(args.world)))
    o = h.run(args.show, args.seed)
    print(o.describe())
    print(o.response_text())
    print("findings:", o.findings or "none")
    return 1 if o.findings else 0


def replay_findings(args: argparse.Namespace) -> int:
    h = fuzzdns.Harness(load_world(Path(args.world)))
    still = 0
    for line in Path(args.replay).read_text().splitlines():
        rec = json.loads(line)
        o = fuzzdns.replay(h, rec)
        now = ", ".join(f"{a}: {b}" for a, b in o.findings) or "fixed"
        still += bool(o.findings)
        print(f"{rec['key']}\n    was {rec['status']} ({rec['reason']}), now "
              f"{o.status or 'exception'} ({o.reason or o.error}) -> {now}")  # fmt: skip
    print(f"\n{still} of the recorded findings still reproduce")
    return 1 if still else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mutations", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=0, help="first lookup number (a slice of a run)")
    p.add_argument("--world", default="/tmp/dane-fuzz/world.pickle")
    p.add_argument("--findings", default="/tmp/dane-fuzz/findings.jsonl")
    p.add_argument("--chunk", type=int, default=5000)
    p.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    p.add_argument("--show", type=int, help="re-run lookup number SHOW verbosely")
    p.add_argument("--replay", help="re-run the reproducers of a findings file")
    args = p.parse_args()
    if args.show is not None:
        return show(args)
    if args.replay:
        return replay_findings(args)
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
