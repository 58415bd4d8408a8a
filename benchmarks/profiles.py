"""What sender profiles (issue 16) cost a check: CPU of ``conclude`` (evidence -> report) with
the profile predictions against the same evidence without them.

    python3 benchmarks/profiles.py [--rounds 5] [--repeat 2000]

The world (in this process, on loopback) serves a few catalogue domains; each is checked once
for its evidence, then ``conclude`` runs ``--repeat`` times per domain, per round, with
``predict_full`` as it is and replaced by a stub. Process CPU per check; medians of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import tempfile
import time
from unittest import mock

from dane_monitor import conclusion
from dane_monitor.profiles import Prediction
from dane_monitor.settings import make_checker
from dane_monitor.world import World, by_name

NAMES = ("good-ee", "dual-key-both", "two-mx-one-broken", "ta-root-not-sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    world = World([by_name(n) for n in NAMES])
    with world.running():
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-profiles"))
        anchor = world.write_trust_anchor(tmp / "anchor.ds")
        host, port = world.dns_address
        checker = make_checker(resolver=f"{host}:{port}", trust_anchor=anchor,
                               connect_port=world.smtp_port, step_timeout=5)  # fmt: skip
        evidence = [asyncio.run(checker.domain_evidence(world.domains[n].name)) for n in NAMES]

    def per_check() -> float:
        t = time.process_time()
        for _ in range(args.repeat):
            for e in evidence:
                conclusion.conclude(e)
        return (time.process_time() - t) / (args.repeat * len(evidence)) * 1e6

    stub = Prediction("unknown", "")
    with_profiles = [per_check() for _ in range(args.rounds)]
    with mock.patch.object(
        conclusion, "predict_full", lambda p, h, mx, memo: (stub, [None] * len(h.endpoints))
    ):
        without = [per_check() for _ in range(args.rounds)]
    print(f"conclude per check ({len(NAMES)} domains, medians of {args.rounds} rounds): "
          f"{statistics.median(with_profiles):.1f} us with profiles, "
          f"{statistics.median(without):.1f} us without")  # fmt: skip


if __name__ == "__main__":
    main()
