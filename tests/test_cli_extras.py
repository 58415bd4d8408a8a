"""What a plain ``pip install dane-monitor`` runs, and what the extras add.

A plain install has neither trustme (the local world's certificates: the ``world`` extra)
nor pytest (the plugin: the ``pytest`` extra). Each test runs a fresh interpreter in which
those modules cannot be imported, as in such an install, against this session's world.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from dane_monitor.world import World

ROOT = Path(__file__).resolve().parents[1]


def without(*modules: str, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``modules`` cannot be imported."""
    hide = "; ".join(f"sys.modules[{m!r}] = None" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {hide}\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def cli(*args: str) -> str:
    return f"from dane_monitor.cli import main; sys.exit(main({list(args)!r}))"


def test_the_plain_dependencies_leave_out_the_world_and_the_plugin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert {"trustme", "pytest"}.isdisjoint(names)
    extras = project["optional-dependencies"]
    assert extras["world"] == ["trustme>=1.1"] and extras["pytest"] == ["pytest>=8"]
    assert "dane-monitor[world,pytest]" in extras["dev"]  # the README's quickstart installs dev


def test_check_and_the_exporter_run_without_trustme_and_pytest(
    dane_world: World, dane_trust_anchor: Path, tmp_path: Path
):
    host, port = dane_world.dns_address
    dns = ["--resolver", f"{host}:{port}", "--trust-anchor", str(dane_trust_anchor)]
    check = ["check", "good-ee.example", *dns, "--connect-port", str(dane_world.smtp_port)]
    p = without("trustme", "pytest", code=cli(*check, "--json"))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["verdict"] == "valid"

    config = tmp_path / "dane.yml"
    config.write_text(
        f"dns: {{resolver: '{host}:{port}', trust_anchor: '{dane_trust_anchor}'}}\n"
        "targets: [{domain: good-ee.example}]\n"
    )
    p = without("trustme", "pytest", code=cli("serve", "--config", str(config), "--check-config"))
    assert p.returncode == 0, p.stderr
    assert ": OK: 1 targets" in p.stdout


@pytest.mark.parametrize("command", [["demo"], ["world", "--list"]])
def test_the_world_commands_name_the_extra_they_need(command):
    p = without("trustme", code=cli(*command))
    assert p.returncode == 3
    assert p.stderr.splitlines() == [
        f"dane-monitor {command[0]}: the local world (dane-monitor world and demo, the "
        "pytest_dane world fixtures) needs trustme, which the 'world' extra installs: "
        "pip install 'dane-monitor[world]'"
    ]
    assert p.stdout == ""


def test_the_plugin_without_trustme_checks_and_names_the_extra_for_the_world(
    dane_world: World, dane_trust_anchor: Path, tmp_path: Path
):
    """pytest and the plugin installed, trustme not: the checks and dane_check work; a
    fixture that starts a world fails with the extra to install."""
    host, port = dane_world.dns_address
    (tmp_path / "test_mine.py").write_text(
        textwrap.dedent(
            """
            def test_check(dane_check):
                assert dane_check("good-ee.example").verdict.value == "valid"

            def test_world(dane_world):
                pass
            """
        )
    )
    args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-p", "xdist", "-n", "0",
            f"--dane-resolver={host}:{port}", f"--dane-trust-anchor={dane_trust_anchor}",
            f"--dane-connect-port={dane_world.smtp_port}", "--dane-timeout=5",
            "--dane-domain=good-ee.example", "-rA", "-o", "addopts="]  # fmt: skip
    p = without("trustme", code=f"import pytest; sys.exit(pytest.main({args!r}))", cwd=tmp_path)
    out = p.stdout
    assert p.returncode == pytest.ExitCode.TESTS_FAILED, out + p.stderr
    assert "PASSED test_mine.py::test_check" in out
    assert "ERROR test_mine.py::test_world" in out
    assert "pip install 'dane-monitor[world]'" in out
    assert "PASSED dane::tlsa-match[" in out  # the DANE checks as items
    assert "FAILED dane::" not in out


def test_the_plugin_package_without_pytest_names_its_extra():
    p = without("pytest", code="import pytest_dane")
    assert p.returncode == 1
    assert (
        "MissingExtra: pytest_dane (the pytest plugin) needs pytest, which the 'pytest' "
        "extra installs: pip install 'dane-monitor[pytest]'"
    ) in p.stderr
