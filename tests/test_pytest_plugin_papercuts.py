"""Issue 18: the pytest plugin as a new user meets it (pytester, against the session's world).

What is asserted is what the user reads: the header's "collected N items", the item ids,
the error for a misspelt ini key, and the warnings a run prints.
"""

from __future__ import annotations

import re

import pytest

from dane_monitor.world import World

pytest_plugins = ["pytester"]

# The inner runs are in-process: pytest-asyncio's notice about an unset loop scope (the
# inner project's, not the plugin's) would land in this run's warnings.
INNER = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark",
         "-o", "asyncio_default_fixture_loop_scope=function")  # fmt: skip


@pytest.fixture(scope="module")
def world_args(dane_world: World, dane_trust_anchor) -> list[str]:
    host, port = dane_world.dns_address
    return [
        "--dane-resolver",
        f"{host}:{port}",
        f"--dane-trust-anchor={dane_trust_anchor}",
        "--dane-connect-port",
        str(dane_world.smtp_port),
        "--dane-timeout",
        "5",
    ]


def _name(world: World, scenario: str) -> str:
    return world.domains[scenario].name.rstrip(".")


def test_the_header_counts_the_dane_items_it_runs(pytester, dane_world, world_args):
    pytester.makepyfile(test_mine="def test_one():\n    pass\n")
    result = pytester.runpytest(*INNER, *world_args, "--dane-domain", _name(dane_world, "good-ee"))
    result.assert_outcomes(passed=12)
    out = result.stdout.str()
    assert "collected 12 items" in out  # eleven DANE items and the user's own test
    assert "collected 0 items" not in out
    assert "collected 1 item" not in out


def test_deselected_dane_items_are_counted_as_such(pytester, dane_world, world_args):
    domain = _name(dane_world, "good-ee")
    result = pytester.runpytest(*INNER, *world_args, "--dane-domain", domain, "-k", "tlsa-match")
    result.assert_outcomes(passed=1)
    assert "collected 11 items / 10 deselected / 1 selected" in result.stdout.str()


def test_item_ids_separate_host_names_with_a_bar(pytester, dane_world, world_args):
    domain = _name(dane_world, "good-ee")
    host = dane_world.domains["good-ee"].hosts[0]
    address = host.endpoints[0].address
    mx = host.name.rstrip(".")
    result = pytester.runpytest(*INNER, *world_args, "--dane-domain", domain, "-v")
    out = result.stdout.str()
    assert f"dane::tlsa-match[{domain}|{mx}|{address}|25|ecdsa] PASSED" in out
    assert f"dane::dnssec[{domain}|{mx}|25] PASSED" in out
    assert f"dane::dnssec[{domain}] PASSED" in out
    # No place is joined with "-", which host names contain.
    ids = re.findall(r"dane::[a-z-]+\[([^\]]+)\]", out)
    assert ids and not [i for i in ids if f"{domain}-" in i or "-25" in i]


@pytest.mark.parametrize("spelling", ["dane_host", "dane_hosts"])
def test_both_ini_spellings_of_a_list_work(pytester, dane_world, world_args, spelling):
    mx = dane_world.domains["good-ee"].hosts[0].name.rstrip(".")
    pytester.makeini(f"[pytest]\n{spelling} = {mx}\ndane_port = 25\n")
    result = pytester.runpytest(*INNER, *world_args)
    result.assert_outcomes(passed=10)
    assert f"dane: {mx} on port 25" in result.stdout.str()


def test_both_spellings_at_once_is_an_error(pytester):
    pytester.makeini("[pytest]\ndane_host = mx1.example.de\ndane_hosts = mx2.example.de\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "dane_hosts and dane_host are the same list: give one of them" in result.stderr.str()


@pytest.mark.parametrize(
    ("key", "meant"),
    [("dane_domian", "dane_domain"), ("dane_resolvr", "dane_resolver"),
     ("dane_trustanchor", "dane_trust_anchor")],
)  # fmt: skip
def test_a_misspelt_ini_key_is_an_error_naming_the_right_one(pytester, key, meant):
    ini = pytester.makeini(f"[pytest]\n{key} = example.de\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{key} in {ini}: not a pytest-dane ini option; did you mean {meant}?" in err
    assert "Unknown config option" not in result.stdout.str()


def test_an_unknown_key_far_from_any_lists_them(pytester):
    pytester.makeini("[pytest]\ndane_zzz = 1\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the options are: dane_cert_warning_days, dane_connect_port" in result.stderr.str()


def test_a_run_of_the_plugin_warns_about_nothing_of_its_own(pytester, dane_world, world_args):
    """With every warning an error, a run with targets and the world fixtures passes: the
    plugin's hooks and configuration raise no deprecation (or other) warning."""
    pytester.makepyfile(
        test_mine="""
        def test_world(dane_scenario):
            sc = dane_scenario(hosts=["mx1"])
            assert sc.check().verdict.value == "valid"
        """
    )
    domain = _name(dane_world, "good-ee")
    result = pytester.runpytest_subprocess(
        *INNER[:-2], *world_args, "--dane-domain", domain, "-W", "error",
        # pytest-asyncio's own notice about a user's unset loop scope is not the plugin's
        "-W", "ignore:The configuration option \"asyncio_default_fixture_loop_scope\" is unset",
        "-W", "ignore::pytest_dane.DaneWarning",
    )  # fmt: skip
    result.assert_outcomes(passed=12)
    assert "warnings summary" not in result.stdout.str()
    assert "Deprecat" not in result.stdout.str() + result.stderr.str()


def test_garbage_from_a_server_is_escaped_once_in_a_failure(pytester, dane_world, world_args):
    """A server greeting with bytes that are not UTF-8, control characters and 3,000
    characters of text: the failure shows them escaped once and cut."""
    import socketserver
    import threading

    garbage = b"554 5.7.1 \xbf\xfe\x00\x1b[31m" + b"A" * 3000 + b"\r\n"
    shown = r"\xbf\xfe\x00\x1b[31m"
    address = dane_world.domains["good-ee"].hosts[0].endpoints[0].address

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(garbage)
            for line in self.rfile:
                self.wfile.write(b"221 bye\r\n" if line.upper().startswith(b"QUIT") else garbage)

    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer((address, 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        args = [*world_args[:-4], "--dane-connect-port", str(server.server_address[1])]
        result = pytester.runpytest(*INNER, *args, "--dane-domain", _name(dane_world, "good-ee"))
        server.shutdown()
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert f"the server greets with 554: 5.7.1 {shown}AAAA" in out
    assert "\\" + shown not in out and "\x1b" not in out and "\x00" not in out
    assert max(len(m) for m in re.findall(r"A{10,}", out)) <= 200
