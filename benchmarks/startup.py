"""What one ``dane-monitor`` process costs, next to ``posttls-finger`` on the same domain.

    sudo python3 benchmarks/startup.py [--samples 15] [--python VENV/bin/python]

Issue 15: one ``dane-monitor check`` as a whole process within 5x the CPU of
``posttls-finger`` on the same domain; ``--help`` and ``--version`` within 2x of
``python -c pass``. Measured with a normal install: without ``--python`` the benchmark makes
a scratch virtual environment and runs ``pip install`` of this tree into it (bytecode
compiled, no editable-install finder); with ``--python`` it uses that interpreter and the
``dane-monitor`` script beside it.

Every figure is the median CPU time (user + system, from the kernel's accounting of the
waited-for child) of ``--samples`` runs; the commands take turns, so a burst of load on the
machine hits all of them alike. The world is the one ``benchmarks/interop.py`` serves (one
good-ee domain: one MX host, one address, a DANE-EE 3 1 1 record that matches) behind
Unbound on port 53 of 127.0.153.x, which posttls-finger reaches through /etc/resolv.conf in
a private mount namespace (hence root); that namespace's own cost (unshare, sh, mount) is
measured alike and taken off posttls-finger's figure. Both sides find Unbound's cache warm;
neither side's figure includes the CPU of the servers (Unbound, the world's DNS and SMTP).

``--importtime`` also prints where ``check``'s imports go (``python -X importtime``, self
time summed per top-level package).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import venv
from collections.abc import Callable
from pathlib import Path

import interop

ROOT = Path(__file__).resolve().parents[1]
#: The environment of the measured commands: no PYTHONPATH that would import this tree's
#: sources instead of the installed package (the world's server still gets it).
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


# -- the install ------------------------------------------------------------------------------


def scratch_install(where: Path) -> Path:
    """A virtual environment in ``where`` with this tree (as it is on disk, uncommitted
    changes included) installed by ``pip install``, as a user installs it; its python."""
    source = where / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        if name.startswith(("tests/", "benchmarks/")) or not (ROOT / name).is_file():
            continue
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    env_dir = where / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(source)],
        check=True,
        env=CLEAN,
    )  # fmt: skip
    return python


# -- measuring --------------------------------------------------------------------------------


def cpu_of(cmd: list[str], check: Callable[[subprocess.CompletedProcess[str]], None]) -> float:
    """CPU seconds (user + system) of ``cmd`` and every process it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=CLEAN)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    check(p)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def exit_code(*codes: int) -> Callable[[subprocess.CompletedProcess[str]], None]:
    def check(p: subprocess.CompletedProcess[str]) -> None:
        assert p.returncode in codes, (p.args, p.returncode, p.stdout[-500:], p.stderr[-1500:])

    return check


def interleaved(rows: dict[str, tuple[list[str], Callable]], samples: int) -> dict[str, float]:
    """The median CPU of each command, the commands taking turns ``samples`` times."""
    times: dict[str, list[float]] = {label: [] for label in rows}
    for cmd, check in rows.values():  # once each first: caches, page cache
        cpu_of(cmd, check)
    for _ in range(samples):
        for label, (cmd, check) in rows.items():
            times[label].append(cpu_of(cmd, check))
    return {label: statistics.median(values) for label, values in times.items()}


def import_profile(cmd: list[str], python: str) -> None:
    """Self import time per top-level package of ``cmd`` (a console script of ``python``)."""
    p = subprocess.run(
        [python, "-X", "importtime", *cmd], capture_output=True, text=True, timeout=120, env=CLEAN
    )
    per: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        per[top] += int(self_us)
        count[top] += 1
    total = sum(per.values())
    print(f"\n  where check's imports go (-X importtime, self time; {total / 1000:.1f} ms in all):")
    for top, us in per.most_common(15):
        print(f"    {us / 1000:7.1f} ms  {count[top]:4} modules  {top}")


# -- the run ----------------------------------------------------------------------------------


def run(python: Path, samples: int, importtime: bool) -> None:
    script = str(python.parent / "dane-monitor")
    with tempfile.TemporaryDirectory(prefix="dane-startup-world-") as tmp:
        world = interop.start_world(1, Path(tmp))
        unbound = interop.start_unbound(world)
        try:
            (domain,) = world.domains
            resolver = f"{unbound.host}:{unbound.port}"
            finger = interop.Finger(unbound.host, Path(tmp))
            dest = f"{domain.rstrip('.')}:{world.smtp_port}"
            verified = "Verified TLS connection established"
            _, out = finger.run([dest])
            assert verified in out, out

            def finger_ok(p: subprocess.CompletedProcess[str]) -> None:
                assert verified in p.stdout + p.stderr, p.stdout + p.stderr

            def valid(p: subprocess.CompletedProcess[str]) -> None:
                assert p.returncode == 0, (p.args, p.stdout[-500:], p.stderr[-1500:])
                assert json.loads(p.stdout)["verdict"] == "valid", p.stdout

            check = [script, "check", domain, "--json", "--connect-port", str(world.smtp_port)]
            local = ["--resolver", world.dns, "--trust-anchor", str(world.anchor)]
            remote = ["--resolver", resolver, "--validation", "resolver"]
            mount = f"mount --bind {finger.dir}/resolv.conf /etc/resolv.conf"
            namespace = ["unshare", "-m", "sh", "-c", f"{mount} && true"]
            rows: dict[str, tuple[list[str], Callable]] = {
                "posttls-finger -l dane (process, in its namespace)": (
                    finger.script([dest]),
                    finger_ok,
                ),
                "  the namespace alone (unshare, sh, mount)": (namespace, exit_code(0)),
                "dane-monitor check, local mode": ([*check, *local], valid),
                "dane-monitor check, local mode, --one-key-type": (
                    [*check, *local, "--one-key-type"],
                    valid,
                ),
                "dane-monitor check, resolver mode (Unbound's AD bit)": ([*check, *remote], valid),
                "python -c pass (same interpreter)": ([str(python), "-c", "pass"], exit_code(0)),
                "dane-monitor --version": ([script, "--version"], exit_code(0)),
                "dane-monitor --help": ([script, "--help"], exit_code(0)),
                "dane-monitor check --help": ([script, "check", "--help"], exit_code(0)),
            }
            print(
                f"dane-monitor start-up on {os.cpu_count()} CPUs, {python}; domain {domain} "
                f"(1 MX host, 1 address, DANE-EE match); CPU medians of {samples} runs"
            )
            cpu = interleaved(rows, samples)
            width = max(map(len, rows))
            for label, seconds in cpu.items():
                print(f"  {label:{width}}  {seconds * 1000:7.1f} ms")
            finger_net = (
                cpu["posttls-finger -l dane (process, in its namespace)"]
                - cpu["  the namespace alone (unshare, sh, mount)"]
            )
            bare = cpu["python -c pass (same interpreter)"]
            print(f"\n  posttls-finger itself (namespace taken off): {finger_net * 1000:.1f} ms")
            for label in (
                "dane-monitor check, local mode",
                "dane-monitor check, local mode, --one-key-type",
                "dane-monitor check, resolver mode (Unbound's AD bit)",
            ):
                print(f"  {label} / posttls-finger: {cpu[label] / finger_net:5.1f}x  (goal 5x)")
            for label in ("dane-monitor --version", "dane-monitor --help"):
                print(f"  {label} / python -c pass: {cpu[label] / bare:5.2f}x  (goal 2x)")
            if importtime:
                import_profile([*check, *local], str(python))
        finally:
            unbound.stop()
            world.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument(
        "--python", type=Path, help="a venv's python with dane-monitor installed (default: "
        "a scratch venv with this tree installed by pip)",
    )  # fmt: skip
    parser.add_argument("--importtime", action="store_true", help="where check's imports go")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/startup.py: needs root (posttls-finger's mount namespace, port 53)")
    for tool in ("posttls-finger", "unbound", "unshare"):
        if not shutil.which(tool, path=interop.SBIN):
            sys.exit(f"benchmarks/startup.py: {tool} is not installed")
    if args.python:
        run(args.python, args.samples, args.importtime)
        return
    with tempfile.TemporaryDirectory(prefix="dane-startup-venv-") as where:
        print("installing this tree into a scratch venv (pip install .) …", flush=True)
        run(scratch_install(Path(where)), args.samples, args.importtime)


if __name__ == "__main__":
    main()
