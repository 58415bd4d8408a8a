"""The pytest plugin examples of the README, taken from the file and run as written (pytester, in a
subprocess as a user's run would be), so that they cannot rot.

An example is the fenced block after a ``<!-- example: FILENAME -->`` line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dane_monitor.world import World

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "README.md"
INNER = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark")


def examples() -> dict[str, str]:
    found = re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.S)
    return dict(found)


def test_the_documented_examples_are_found():
    assert set(examples()) == {"pyproject.toml", "test_renewal_hook.py"}


def test_the_operator_example(pytester: pytest.Pytester, dane_world: World, dane_trust_anchor):
    # The documented pyproject.toml with its names pointed at the world: example.de is a
    # domain whose MX host authenticates; mx-backup.example.net a host with two key types.
    domain = dane_world.domains["good-ee"].name
    backup = dane_world.domains["dual-key-both"].hosts[0].name
    text = examples()["pyproject.toml"]
    text = text.replace('"example.de"', f'"{domain}"').replace(
        '"mx-backup.example.net"', f'"{backup}"'
    )
    pytester.makefile(".toml", pyproject=text)
    host, port = dane_world.dns_address
    result = pytester.runpytest_subprocess(
        *INNER, "-v", "--junitxml=dane.xml", "--dane-resolver", f"{host}:{port}",
        # "=": a separate existing path would move pytest's rootdir away from pyproject.toml
        f"--dane-trust-anchor={dane_trust_anchor}",
        "--dane-connect-port", str(dane_world.smtp_port),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert (
        f"dane::tlsa-match[{domain.rstrip('.')}|{dane_world.domains['good-ee'].hosts[0].name.rstrip('.')}|"
        in out
    )
    assert f"dane::tlsa-match[{backup.rstrip('.')}|" in out
    assert "|25|rsa] PASSED" in out and "|25|ecdsa] PASSED" in out
    assert (pytester.path / "dane.xml").is_file()


def test_the_developer_example(pytester: pytest.Pytester):
    pytester.makepyfile(test_renewal_hook=examples()["test_renewal_hook.py"])
    result = pytester.runpytest_subprocess(
        *INNER, "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=3)
