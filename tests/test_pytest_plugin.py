"""The plugin run as a user runs it: ``pytest --dane-host …`` (pytester) against the
session's local world, with outcomes read back from ``--junitxml``.

The inner runs reach the world of this process over loopback: its DNS server (with the
world's trust anchor) and its SMTP servers on the world's port (``--dane-connect-port``).
Most inner runs are in-process (``pytester.runpytest``: a run costs a fraction of a second
instead of an interpreter start with every plugin); the ones whose point is the process —
nothing imported, xdist workers — run in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from dane_monitor.world import World

pytest_plugins = ["pytester"]

INNER = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "-p",
    "no:benchmark",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)


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


def mx(world: World, scenario: str, index: int = 0) -> str:
    return world.domains[scenario].hosts[index].name


def run(
    pytester: pytest.Pytester, *args: str, subprocess: bool = False
) -> tuple[pytest.RunResult, dict[str, str]]:
    """Run pytest; return the result and {test name: outcome} from its JUnit XML."""
    xml = pytester.path / "junit.xml"
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = runner(*INNER, f"--junitxml={xml}", *args)
    return result, outcomes(xml)


def outcomes(xml) -> dict[str, str]:
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed"}.get(child.tag, child.tag)
        out[f"{case.get('classname')}::{case.get('name')}"] = kind
    return out


def failed(outcome: dict[str, str]) -> set[str]:
    return {name for name, kind in outcome.items() if kind in ("failed", "error")}


def skipped(outcome: dict[str, str]) -> set[str]:
    return {name for name, kind in outcome.items() if kind == "skipped"}


def rule_names(names: set[str]) -> set[str]:
    """``{"dane::cert-expiry[mx1…|25]"}`` → ``{"cert-expiry"}``."""
    return {name.split("::")[1].split("[")[0] for name in names}


# -- no targets -------------------------------------------------------------------------------


def test_without_targets_the_plugin_adds_no_items_and_imports_nothing_heavy(pytester):
    pytester.makepyfile(
        """
        import sys

        def test_nothing_heavy_was_imported():
            heavy = [m for m in ("dns", "cryptography", "trustme", "pytest_dane.items")
                     if m in sys.modules]
            assert heavy == []
            # The rules of the settings (standard library only), nothing else of the checker.
            ours = {m for m in sys.modules if m.startswith("dane_monitor")}
            assert ours == {"dane_monitor", "dane_monitor.extras", "dane_monitor.settings"}
        """
    )
    result = pytester.runpytest_subprocess(*INNER, "-v")
    result.assert_outcomes(passed=1)
    assert "dane::" not in result.stdout.str()
    assert "dane:" not in "\n".join(result.stdout.lines[:8])  # no report header either


def test_importing_the_plugin_imports_only_its_small_modules():
    code = (
        "import sys, pytest; before = set(sys.modules); import pytest_dane.plugin; "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    new = set(eval(out.stdout))
    stdlib = {m for m in new if m.split(".")[0] in sys.stdlib_module_names}
    assert new - stdlib <= {
        "pytest_dane",
        "pytest_dane.plugin",
        "pytest_dane.config",
        "pytest_dane.errors",
        "dane_monitor",
        "dane_monitor.extras",  # the error that names the 'pytest' extra
        "dane_monitor.settings",  # the one set of rules for every value (standard library only)
    }, new


def test_the_options_have_help(pytester):
    result = pytester.runpytest(*INNER, "--help")
    text = result.stdout.str()
    for option in (
        "--dane-host=HOST",
        "--dane-domain=DOMAIN",
        "--dane-port=PORT",
        "--dane-resolver=",
        "--dane-trust-anchor=FILE",
        "--dane-validation=",
        "--dane-timeout=SECONDS",
        "--dane-connect-port=PORT",
        "--dane-strict",
        "dane_hosts (linelist)",
        "dane_domains (linelist)",
        "dane_strict (bool)",
        "dane_resolver (string)",
    ):
        assert option in text, option


# -- items, ids and outcomes ----------------------------------------------------------------


def test_a_valid_host_is_one_passing_item_per_rule_and_endpoint(pytester, dane_world, world_args):
    host = mx(dane_world, "good-ee")
    (ep,) = dane_world.domains["good-ee"].hosts[0].endpoints
    h = host.rstrip(".")
    result = pytester.runpytest(*INNER, "--collect-only", "-q", *world_args, "--dane-host", host)
    ids = [line for line in result.stdout.lines if line.startswith("dane::")]
    assert ids == [
        f"dane::dnssec[{h}|25]",
        f"dane::tlsa-usable[{h}|25]",
        f"dane::starttls[{h}|{ep.address}|25]",
        f"dane::tlsa-match[{h}|{ep.address}|25|ecdsa]",
        f"dane::rrsig-expiry[{h}|25]",
        f"dane::cert-expiry[{h}|25]",
        f"dane::rollover[{h}|25]",
        f"dane::stale-records[{h}|25]",
        f"dane::warnings[{h}|25]",
        f"dane::warnings[{h}]",
    ]
    result, outcome = run(pytester, *world_args, "--dane-host", host)
    assert result.ret == 0
    assert set(outcome) == set(ids) and not failed(outcome)
    assert f"dane: {host} on port 25, connecting to port" in result.stdout.str()  # header


def test_a_tlsa_mismatch_fails_saying_what_to_publish(pytester, dane_world, world_args):
    built = dane_world.domains["tlsa-mismatch"].hosts[0]
    (ep,) = built.endpoints
    served = ep.chains[0].tlsa(3, 1, 1)
    result, outcome = run(pytester, *world_args, "--dane-host", built.name)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    h = built.name.rstrip(".")
    assert failed(outcome) == {f"dane::tlsa-match[{h}|{ep.address}|25|ecdsa]"}
    text = result.stdout.str()
    # expected and found side by side, then the fix from the code behind `dane-monitor tlsa`
    assert f"published at {built.tlsa_name}" in text
    assert built.tlsa_rdatas[0] in text
    assert f"served by {ep.address} (ecdsa key" in text
    assert served in text
    assert f"{built.tlsa_name} IN TLSA {served}" in text
    assert "DANE senders DEFER mail here" in text
    # rendered natively: no traceback of the plugin's internals
    assert "Traceback" not in text and "pytest_dane" not in text and "raise " not in text
    # and so does JUnit XML
    (failure,) = list(ET.parse(pytester.path / "junit.xml").getroot().iter("failure"))
    assert f"IN TLSA {served}" in failure.text
    assert "does not authenticate: tlsa-mismatch" in failure.get("message")


BROKEN = {
    "no-starttls": {"starttls", "tlsa-match"},
    "starttls-refused": {"starttls", "tlsa-match"},
    "bogus-signature": {"dnssec", "tlsa-usable", "starttls", "tlsa-match"},
    "no-tlsa": {"tlsa-usable", "tlsa-match"},
    "insecure-with-tlsa": {"dnssec", "tlsa-usable", "tlsa-match"},
    "dual-key-ecdsa-only": {"tlsa-match"},
}


def test_broken_hosts_fail_exactly_the_broken_rules(pytester, dane_world, world_args):
    hosts = {scenario: mx(dane_world, scenario) for scenario in BROKEN}
    targets = [arg for host in hosts.values() for arg in ("--dane-host", host)]
    result, outcome = run(pytester, *world_args, *targets)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for scenario, host in hosts.items():
        h = host.rstrip(".")
        mine = {name for name in failed(outcome) if f"[{h}|" in name or name.endswith(f"[{h}]")}
        assert {name.split("::")[1].split("[")[0] for name in mine} == BROKEN[scenario], scenario

    text = result.stdout.str()
    # DNS failures name the lookup and the validation failure; later rules say why they fail
    assert "TLSA: bogus error bad-signature" in text
    assert "DANE senders stop at the DNS step" in text
    # SMTP failures show the end of the dialogue
    assert "starttls-missing: the server does not offer STARTTLS" in text
    assert "S: 250 SMTPUTF8" in text
    # each key type is its own item: ECDSA passes, RSA fails, and the fix is the RSA key's
    # record, not the ECDSA one already published
    built = dane_world.domains["dual-key-ecdsa-only"].hosts[0]
    (ep,) = built.endpoints
    h = built.name.rstrip(".")
    assert outcome[f"dane::tlsa-match[{h}|{ep.address}|25|ecdsa]"] == "passed"
    assert outcome[f"dane::tlsa-match[{h}|{ep.address}|25|rsa]"] == "failed"
    rsa = next(c for c in ep.chains if c.key_type == "rsa")
    assert f"{built.tlsa_name} IN TLSA {rsa.tlsa(3, 1, 1)}" in text


def test_a_domain_walks_its_mx_set(pytester, dane_world, world_args):
    domain = dane_world.domains["two-mx-one-broken"]
    mx1, mx2 = domain.hosts
    d = domain.name.rstrip(".")
    _, outcome = run(pytester, *world_args, "--dane-domain", domain.name)
    assert outcome[f"dane::dnssec[{d}]"] == "passed"  # the MX RRset
    (ep1,), (ep2,) = mx1.endpoints, mx2.endpoints
    assert outcome[f"dane::tlsa-match[{d}|{mx1.name.rstrip('.')}|{ep1.address}|25|ecdsa]"] == (
        "passed"
    )
    assert failed(outcome) == {
        f"dane::tlsa-match[{d}|{mx2.name.rstrip('.')}|{ep2.address}|25|ecdsa]"
    }


def test_a_bogus_mx_rrset_fails_the_domain(pytester, dane_world, world_args):
    domain = dane_world.domains["bogus-expired"]
    _, outcome = run(pytester, *world_args, "--dane-domain", domain.name)
    assert failed(outcome) == {f"dane::dnssec[{domain.name.rstrip('.')}]"}
    assert "signature-expired" in _.stdout.str()


# -- pytest's own switches ----------------------------------------------------------------------


def test_k_selects_rules(pytester, dane_world, world_args):
    result, outcome = run(
        pytester,
        *world_args,
        "-k",
        "tlsa-match",
        "--dane-host",
        mx(dane_world, "good-ee"),
        "--dane-host",
        mx(dane_world, "tlsa-mismatch"),
    )
    assert {name.split("::")[1].split("[")[0] for name in outcome} == {"tlsa-match"}
    result.assert_outcomes(passed=1, failed=1, deselected=18)


def test_m_dane_selects_the_check_items(pytester, dane_world, world_args):
    pytester.makepyfile("def test_own(): pass")
    result, outcome = run(
        pytester, *world_args, "-m", "dane", "--dane-host", mx(dane_world, "good-ee")
    )
    assert "test_m_dane_selects_the_check_items::test_own" not in outcome
    result.assert_outcomes(passed=10, deselected=1)


def test_x_stops_at_the_first_failing_rule(pytester, dane_world, world_args):
    result = pytester.runpytest(
        *INNER,
        "-x",
        *world_args,
        "--dane-host",
        mx(dane_world, "bogus-signature"),
        "--dane-host",
        mx(dane_world, "good-ee"),
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_xdist_workers_give_the_same_outcomes(pytester, dane_world, world_args):
    targets = [
        "--dane-host",
        mx(dane_world, "good-ee"),
        "--dane-host",
        mx(dane_world, "no-starttls"),
        "--dane-host",
        mx(dane_world, "dual-key-ecdsa-only"),
        "--dane-domain",
        dane_world.domains["two-mx-one-broken"].name,
    ]
    serial_result, serial = run(pytester, *world_args, *targets, subprocess=True)
    parallel_result, parallel = run(pytester, "-n", "2", *world_args, *targets, subprocess=True)
    assert serial == parallel
    assert len(failed(serial)) == 4
    assert parallel_result.ret == serial_result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Different tests were collected" not in parallel_result.stdout.str()


# -- warnings and strictness --------------------------------------------------------------------


def test_warnings_pass_with_a_dane_warning_and_fail_when_strict(pytester, dane_world, world_args):
    host = mx(dane_world, "rollover")  # a record for a key nobody serves: stale or next
    h = host.rstrip(".")
    result, outcome = run(pytester, *world_args, "--dane-host", host)
    assert result.ret == 0 and not failed(outcome)
    assert "DaneWarning: stale-records" in result.stdout.str()

    result, outcome = run(pytester, *world_args, "--dane-host", host, "--dane-strict")
    assert failed(outcome) == {f"dane::stale-records[{h}|25]"}
    assert "tlsa-stale-record" in result.stdout.str()

    result, outcome = run(
        pytester, *world_args, "--dane-host", host, "-W", "error::pytest_dane.DaneWarning"
    )
    assert failed(outcome) == {f"dane::stale-records[{h}|25]"}


def test_expiring_certificates_are_a_warning(pytester, dane_world, world_args):
    host = mx(dane_world, "ee-expired-cert")
    _, outcome = run(pytester, *world_args, "--dane-host", host, "--dane-strict")
    assert failed(outcome) == {
        f"dane::cert-expiry[{host.rstrip('.')}|25]",
        f"dane::rollover[{host.rstrip('.')}|25]",
    }


# -- ini options --------------------------------------------------------------------------------


def test_ini_options_give_the_same_outcomes(pytester, dane_world, world_args, dane_trust_anchor):
    hosts = [mx(dane_world, "good-ee"), mx(dane_world, "tlsa-mismatch")]
    domain = dane_world.domains["two-mx-one-broken"].name
    _, cmdline = run(
        pytester,
        *world_args,
        "--dane-host",
        hosts[0],
        "--dane-host",
        hosts[1],
        "--dane-domain",
        domain,
        "--dane-strict",
    )

    host, port = dane_world.dns_address
    (pytester.path / "anchor.ds").write_text(dane_trust_anchor.read_text())
    pytester.makeini(
        f"""
        [pytest]
        dane_hosts =
            {hosts[0]}
            {hosts[1]}
        dane_domains = {domain}
        dane_resolver = {host}:{port}
        dane_trust_anchor = anchor.ds
        dane_connect_port = {dane_world.smtp_port}
        dane_timeout = 5
        dane_strict = true
        """
    )
    _, ini = run(pytester)
    assert ini == cmdline
    (pytester.path / "tox.ini").unlink()

    pytester.makepyprojecttoml(
        f"""
        [tool.pytest.ini_options]
        dane_hosts = ["{hosts[0]}", "{hosts[1]}"]
        dane_domains = ["{domain}"]
        dane_resolver = "{host}:{port}"
        dane_trust_anchor = "anchor.ds"
        dane_connect_port = "{dane_world.smtp_port}"
        dane_ports = ["25"]
        dane_validation = "local"
        dane_timeout = "5"
        dane_strict = true
        """
    )
    _, toml = run(pytester)
    assert toml == cmdline

    # targets on the command line replace the ini file's
    _, one = run(pytester, "--dane-host", hosts[0])
    assert one and all(name.split("[")[1].startswith(hosts[0].rstrip(".")) for name in one)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # The sentences of dane_monitor.settings, as check and the exporter refuse the values.
        (["--dane-port", "0"], "--dane-port: a port is a number from 1 to 65535, not '0'"),
        (
            ["--dane-resolver", "resolver.example"],
            "--dane-resolver: a resolver is an IP address with an optional port",
        ),
        (["--dane-resolver", "127.0.0.1:0"], "--dane-resolver: bad port in resolver"),
        (["--dane-trust-anchor", "missing.ds"], "--dane-trust-anchor: no such file"),
        (["--dane-timeout", "soon"], "--dane-timeout: a duration in seconds (or like 30s"),
        (["--dane-timeout", "0"], "--dane-timeout: a duration must be more than 0 seconds"),
        (
            ["--dane-connect-port", "70000"],
            "--dane-connect-port: a port is a number from 1 to 65535, not '70000'",
        ),
        (["--dane-ehlo-name", "two words"], "--dane-ehlo-name: 'two words' cannot be sent"),
        (["--dane-host", "a..example"], "--dane-host: not a domain or host name: 'a..example'"),
    ],
)
def test_unusable_values_are_usage_errors(pytester, args, message):
    result = pytester.runpytest(*INNER, "--dane-host", "mx.example.", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_the_ehlo_name_is_what_the_server_sees(pytester, dane_world, world_args):
    server = dane_world.domains["good-ta"].hosts[0].endpoints[0].server
    result, _ = run(
        pytester,
        *world_args,
        "--dane-host",
        mx(dane_world, "good-ta"),
        "--dane-ehlo-name",
        "monitor.example.net",
    )
    assert result.ret == pytest.ExitCode.OK
    assert server.last_ehlo == "monitor.example.net"
    pytester.makeini("[pytest]\ndane_ehlo_name = ini.example.net\n")
    result, _ = run(pytester, *world_args, "--dane-host", mx(dane_world, "good-ta"))
    assert server.last_ehlo == "ini.example.net"


def test_an_unreachable_resolver_fails_the_items_instead_of_crashing(pytester):
    result, outcome = run(
        pytester,
        "--dane-host",
        "mx1.example.",
        "--dane-resolver",
        "127.0.0.1:9",
        "--dane-timeout",
        "0.5",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcome and outcome["dane::dnssec[mx1.example|25]"] == "failed"
    # nothing was resolved: no rule passes, and the ones that need addresses fail
    assert failed(outcome) == {
        f"dane::{rule}[mx1.example|25]"
        for rule in ("dnssec", "tlsa-usable", "starttls", "tlsa-match")
    }
    passed = {name for name, kind in outcome.items() if kind == "passed"}
    assert passed == {"dane::warnings[mx1.example]"}  # the target's own warnings: none
    text = result.stdout.str()
    assert "dns-error" in text or "resolver-failed" in text


# -- rules that could not be evaluated: skipped, or failed under --dane-strict ------------------


def messages(xml) -> dict[str, str]:
    """{test name: the message of its failure or skip} from JUnit XML."""
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                out[f"{case.get('classname')}::{case.get('name')}"] = child.get("message", "")
    return out


def unevaluable(world: World) -> tuple[list[str], dict[str, str]]:
    """Targets whose checks lack evidence — a server that hangs, a bogus TLSA RRset, an MX
    host without addresses, a domain that does not exist — and every item's outcome without
    --dane-strict."""
    hang, bogus = world.domains["hang"].hosts[0], world.domains["bogus-signature"].hosts[0]
    nohost = f"no-such-host.{world.domains['good-ee'].name}"
    nxdomain = f"no-such-domain.{world.tld}"
    h, b, n, d = (name.rstrip(".") for name in (hang.name, bogus.name, nohost, nxdomain))
    ha, ba = hang.endpoints[0].address, bogus.endpoints[0].address
    later = ("rrsig-expiry", "cert-expiry", "rollover", "stale-records", "warnings")
    expected = {
        f"dane::dnssec[{h}|25]": "passed",
        f"dane::tlsa-usable[{h}|25]": "passed",
        f"dane::starttls[{h}|{ha}|25]": "failed",
        f"dane::tlsa-match[{h}|{ha}|25]": "failed",
        f"dane::rrsig-expiry[{h}|25]": "passed",  # its signatures were read
        **{f"dane::{rule}[{h}|25]": "skipped" for rule in later[1:]},
        f"dane::warnings[{h}]": "passed",
        f"dane::dnssec[{b}|25]": "failed",
        f"dane::tlsa-usable[{b}|25]": "failed",
        f"dane::starttls[{b}|{ba}|25]": "failed",  # not probed: senders stop at the DNS step
        f"dane::tlsa-match[{b}|{ba}|25]": "failed",
        **{f"dane::{rule}[{b}|25]": "skipped" for rule in later},
        f"dane::warnings[{b}]": "passed",
        f"dane::dnssec[{n}|25]": "failed",
        f"dane::tlsa-usable[{n}|25]": "failed",
        f"dane::starttls[{n}|25]": "failed",  # no address: one item for the host
        f"dane::tlsa-match[{n}|25]": "failed",
        **{f"dane::{rule}[{n}|25]": "skipped" for rule in later},
        f"dane::warnings[{n}]": "passed",
        f"dane::dnssec[{d}]": "failed",
        f"dane::warnings[{d}]": "skipped",
    }
    targets = ["--dane-host", hang.name, "--dane-host", bogus.name, "--dane-host", nohost]
    return [*targets, "--dane-domain", nxdomain], expected


def strictly(expected: dict[str, str]) -> dict[str, str]:
    return {name: "failed" if kind == "skipped" else kind for name, kind in expected.items()}


def test_a_rule_without_its_evidence_is_skipped_or_fails_when_strict(
    pytester, dane_world, world_args
):
    targets, expected = unevaluable(dane_world)
    args = [*world_args, "--dane-timeout", "2", *targets]  # the hanging server: 2 s
    result, outcome = run(pytester, "-rs", *args)
    assert outcome == expected
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    why = messages(pytester.path / "junit.xml")
    hang = dane_world.domains["hang"].hosts[0]
    h, address = hang.name.rstrip("."), hang.endpoints[0].address
    seen = f"not checked: no certificate was seen from {h} {address}:25 (banner-timeout)"
    for rule in ("cert-expiry", "rollover", "stale-records", "warnings"):
        assert why[f"dane::{rule}[{h}|25]"] == seen
    bogus = dane_world.domains["bogus-signature"].hosts[0]
    assert why[f"dane::rrsig-expiry[{bogus.name.rstrip('.')}|25]"] == (
        f"not checked: the TLSA RRset at {bogus.tlsa_name} could not be validated "
        "(bogus: bad-signature)"
    )
    nohost = next(name for name in why if name.startswith("dane::cert-expiry[no-such-host."))
    assert why[nohost].startswith("not checked: no-such-host.") and "no address" in why[nohost]
    assert "(mx-no-address)" in why[nohost]
    nxdomain = f"dane::warnings[no-such-domain.{dane_world.tld.rstrip('.')}]"
    assert why[nxdomain].endswith("could not be read (NXDOMAIN)")
    # the short summary gives the reason at the dane node, not at a line of the plugin
    assert f"SKIPPED [4] dane:1: {seen}" in result.stdout.lines

    result, outcome = run(pytester, *args, "--dane-strict")
    assert outcome == strictly(expected)
    why = messages(pytester.path / "junit.xml")
    assert why[f"dane::cert-expiry[{h}|25]"].startswith(seen)
    text = result.stdout.str()
    assert f"{seen}\n(fails because of --dane-strict / dane_strict)" in text


def test_an_mx_without_addresses_fails_the_rules_that_need_one(
    pytester, dane_world_factory, tmp_path_factory
):
    from dane_monitor.world import Host, Scenario

    world = dane_world_factory(
        [Scenario("no-address", "an MX host without A/AAAA", hosts=(Host("mx1", (), ()),))]
    )
    anchor = world.write_trust_anchor(tmp_path_factory.mktemp("dane") / "anchor.ds")
    host, port = world.dns_address
    domain = world.domains["no-address"].name
    args = ["--dane-resolver", f"{host}:{port}", f"--dane-trust-anchor={anchor}"]
    args += ["--dane-domain", domain]  # (no servers, so no port to connect to)
    d, h = domain.rstrip("."), f"mx1.{domain.rstrip('.')}"
    result, outcome = run(pytester, *args)
    assert outcome == {
        f"dane::dnssec[{d}]": "passed",
        f"dane::dnssec[{d}|{h}|25]": "failed",
        f"dane::tlsa-usable[{d}|{h}|25]": "failed",
        f"dane::starttls[{d}|{h}|25]": "failed",
        f"dane::tlsa-match[{d}|{h}|25]": "failed",
        **{
            f"dane::{rule}[{d}|{h}|25]": "skipped"
            for rule in ("rrsig-expiry", "cert-expiry", "rollover", "stale-records", "warnings")
        },
        f"dane::warnings[{d}]": "passed",
    }
    assert f"{h} has no address to connect to (mx-no-address): senders cannot reach it" in (
        result.stdout.str()
    )
    # -k tlsa-match alone does not turn the domain green
    result, outcome = run(pytester, *args, "-k", "tlsa-match")
    assert outcome == {f"dane::tlsa-match[{d}|{h}|25]": "failed"}
    assert "there is no server to authenticate" in result.stdout.str()


def test_xdist_workers_skip_and_fail_the_same_items(pytester, dane_world, world_args):
    targets, expected = unevaluable(dane_world)
    args = ["-n", "2", *world_args, "--dane-timeout", "2", *targets]
    result, outcome = run(pytester, *args, subprocess=True)
    assert outcome == expected
    assert "Different tests were collected" not in result.stdout.str()
    _, outcome = run(pytester, *args, "--dane-strict", subprocess=True)
    assert outcome == strictly(expected)


def test_a_host_that_is_not_a_name_stops_the_run_instead_of_passing(pytester):
    """Refused as ``dane-monitor check --mx`` refuses it: by the settings' name rule."""
    result = pytester.runpytest(*INNER, "--dane-host", "a" * 64 + ".example.")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--dane-host: not a domain or host name" in result.stderr.str()
    assert "a label is longer than 63 octets" in result.stderr.str()


def judged(result) -> dict[str, tuple[str, str]]:
    """Every item of a result made by hand: {item name: (outcome, message)}, and the same
    under --dane-strict (keys prefixed "strict "). For evidence the local world cannot make."""
    from pytest_dane.errors import DaneCheckFailed
    from pytest_dane.items import TargetResult, judge, rules

    target = TargetResult("host", result.domain, result)
    out = {}
    for strict in (False, True):
        for rule in rules(0, target):
            key = f"{'strict ' if strict else ''}{rule.item_name}"
            try:
                judge(rule, target, strict)
            except pytest.skip.Exception as exc:
                out[key] = ("skipped", str(exc))
            except DaneCheckFailed as exc:
                out[key] = ("failed", str(exc))
            else:
                out[key] = ("passed", "")
    return out


def dual_stack_host(validation: str = "local"):
    """mx1.example.de with a secure TLSA RRset, an IPv4 endpoint that authenticates and an
    IPv6 endpoint, as a result of dane-monitor's checker."""
    from dane_monitor.report import DNSInfo, DomainResult, EndpointResult, HostResult

    v4 = EndpointResult("192.0.2.1", 25, "ecdsa", starttls_offered=True, authenticated=True)
    v4.chain, v4.leaf_not_after = [{"subject": "CN=mx1.example.de"}], 4102444800
    v6 = EndpointResult("2001:db8::1", 25, "ecdsa", starttls_offered=True, authenticated=True)
    v6.chain, v6.leaf_not_after = v4.chain, v4.leaf_not_after
    tlsa = DNSInfo("_25._tcp.mx1.example.de.", "TLSA", "secure", "positive")
    host = HostResult("mx1.example.de.", 25, addresses=["192.0.2.1", "2001:db8::1"], dns=[tlsa])
    host.endpoints, host.dane_applies, host.tlsa_usable = [v4, v6], True, 1
    host.rrsig_expiration = 4102444800
    result = DomainResult("mx1.example.de.", mx_only=True, validation=validation)
    result.hosts = [host]
    return result


V6 = "2001:0db8:0000:0000:0000:0000:0000:0001"  # in item ids


def test_an_address_this_host_cannot_reach_is_not_checked():
    """Probe error ``no-route`` (no IPv6 here, say) is about us, not the server: its items
    are not checked, and the host's other rules judge the addresses we can reach. (On a
    result made by hand; tests/test_pytest_plugin_no_route.py runs it end to end.)"""
    result = dual_stack_host()
    assert {kind for kind, _ in judged(result).values()} == {"passed"}

    v6 = result.hosts[0].endpoints[1]
    v6.chain, v6.leaf_not_after, v6.authenticated, v6.key_type = [], None, None, None
    v6.probe_error, v6.probe_detail = "no-route", "ENETUNREACH"
    got = judged(result)
    why = "not checked: mx1.example.de [2001:db8::1]:25 is not reachable from this host"
    assert got[f"starttls[mx1.example.de|{V6}|25]"] == ("skipped", f"{why} (no-route: ENETUNREACH)")
    assert got[f"tlsa-match[mx1.example.de|{V6}|25]"][0] == "skipped"
    assert {name for name, (kind, _) in got.items() if kind != "passed"} == {
        f"{strict}{rule}[mx1.example.de|{V6}|25]"
        for strict in ("", "strict ")
        for rule in ("starttls", "tlsa-match")
    }
    assert got[f"strict starttls[mx1.example.de|{V6}|25]"][0] == "failed"
    assert got[f"strict starttls[mx1.example.de|{V6}|25]"][1].startswith(why)

    v4 = result.hosts[0].endpoints[0]
    v4.chain, v4.authenticated, v4.probe_error = [], None, "no-route"  # nothing reachable
    got = judged(result)
    for rule in ("cert-expiry", "rollover", "stale-records", "warnings"):
        assert got[f"{rule}[mx1.example.de|25]"] == (
            "skipped",
            "not checked: no address of mx1.example.de is reachable from this host "
            "(192.0.2.1, 2001:db8::1)",
        )


def test_signatures_a_resolver_did_not_return_are_not_checked():
    result = dual_stack_host(validation="resolver")
    result.hosts[0].rrsig_expiration = None  # the resolver's answers carried no RRSIGs
    got = judged(result)
    assert got["rrsig-expiry[mx1.example.de|25]"] == (
        "skipped",
        "not checked: no DNSSEC signature expiry is known on the path to "
        "_25._tcp.mx1.example.de.: the resolver's answers carried no signatures (resolver "
        "validation)",
    )
    assert got["strict rrsig-expiry[mx1.example.de|25]"][0] == "failed"


def test_an_error_no_rule_owns_fails_the_warnings_item():
    """A finding code the checker gains later (or one only the exporter makes) is not dropped
    because no rule knows it: the warnings item of its place fails on it."""
    from dane_monitor.report import Finding, Severity

    result = dual_stack_host()
    new = Finding("brand-new-error", Severity.ERROR, "something a rule does not know yet")
    result.hosts[0].findings.append(new)
    result.findings.append(Finding("check-timeout", Severity.ERROR, "too slow"))
    got = judged(result)
    assert {name for name, (kind, _) in got.items() if kind != "passed"} == {
        f"{strict}warnings[{place}]"
        for strict in ("", "strict ")
        for place in ("mx1.example.de|25", "mx1.example.de")
    }
    kind, text = got["warnings[mx1.example.de|25]"]
    assert kind == "failed" and text.startswith("warnings: errors no other rule judges")
    assert "brand-new-error" in text and "something a rule does not know yet" in text
    assert "check-timeout" in got["warnings[mx1.example.de]"][1]


@pytest.mark.skipif(
    shutil.which("unbound", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None,
    reason="Unbound is not installed",
)
def test_resolver_validation_never_passes_a_signature_expiry_it_did_not_read(
    pytester, dane_world, world_args
):
    """With every signature of the world inside the warning window, rrsig-expiry in resolver
    mode either warns (the signatures were read) or is not checked: it never passes quietly."""
    host = mx(dane_world, "good-ee")
    with dane_world.unbound() as unbound:
        address, port = unbound.address
        result, outcome = run(
            pytester,
            *world_args,
            f"--dane-resolver={address}:{port}",
            "--dane-validation=resolver",
            "--dane-rrsig-warning-days=30",
            "--dane-host",
            host,
        )
    h, address = host.rstrip("."), dane_world.domains["good-ee"].hosts[0].endpoints[0].address
    assert outcome[f"dane::tlsa-match[{h}|{address}|25|ecdsa]"] == "passed"  # the check worked
    item = f"dane::rrsig-expiry[{h}|25]"
    text = result.stdout.str()
    if outcome[item] == "skipped":
        reason = messages(pytester.path / "junit.xml")[item]
        assert reason.startswith("not checked: no DNSSEC signature expiry is known")
        assert "(resolver validation)" in reason
    else:
        assert outcome[item] == "passed" and "DaneWarning: rrsig-expiry" in text


# -- expiry thresholds ---------------------------------------------------------------------------


def test_the_expiry_thresholds_have_help(pytester):
    text = pytester.runpytest(*INNER, "--help").stdout.str()
    for option in (
        "--dane-rrsig-warning-days=DAYS",
        "--dane-rrsig-critical-days=DAYS",
        "--dane-cert-warning-days=DAYS",
        "dane_rrsig_warning_days (string)",
        "dane_rrsig_critical_days (string)",
        "dane_cert_warning_days (string)",
        "(default 3)",
        "(default 1;",
        "(default 14)",
    ):
        assert option in text, option


def test_the_expiry_thresholds_decide_the_expiry_items(pytester, dane_world, world_args):
    # The world signs for 14 days; its certificates live for years.
    host = mx(dane_world, "good-ee")
    h = host.rstrip(".")
    result, outcome = run(
        pytester,
        *world_args,
        "--dane-host",
        host,
        "--dane-rrsig-warning-days",
        "30",
        "--dane-cert-warning-days",
        "1000000",
    )
    assert result.ret == pytest.ExitCode.OK and not failed(outcome)
    text = result.stdout.str()
    assert "DaneWarning: rrsig-expiry" in text and "DaneWarning: cert-expiry" in text

    # under the critical window the signature fails without --dane-strict; from the ini file
    pytester.makeini("[pytest]\ndane_rrsig_warning_days = 30\ndane_rrsig_critical_days = 20\n")
    result, outcome = run(pytester, *world_args, "--dane-host", host)
    assert failed(outcome) == {f"dane::rrsig-expiry[{h}|25]"}
    assert "rrsig-expiring" in result.stdout.str()

    result, outcome = run(
        pytester, *world_args, "--dane-host", host, "--dane-rrsig-critical-days", "1"
    )
    assert not failed(outcome)  # the command line wins: within 30 days, but not within 1
    header = "dane: expiry warnings for signatures within 30 days (failure within 1), "
    assert f"{header}certificates within 14" in result.stdout.lines
    assert "DaneWarning: rrsig-expiry" in result.stdout.str()
    result, outcome = run(
        pytester,
        *world_args,
        "--dane-host",
        host,
        "--dane-rrsig-warning-days",
        "3",
        "--dane-rrsig-critical-days",
        "1",
    )
    assert not failed(outcome) and "DaneWarning: rrsig-expiry" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--dane-cert-warning-days", "-5"],
            "",
            "--dane-cert-warning-days: a number of days, 0 or more, not '-5'",
        ),
        (
            ["--dane-rrsig-critical-days", "soon"],
            "",
            "--dane-rrsig-critical-days: a number of days, 0 or more, not 'soon'",
        ),
        (
            [],
            "dane_cert_warning_days = nan",
            "dane_cert_warning_days: a number of days, 0 or more, not 'nan'",
        ),
        (
            [],
            "dane_rrsig_warning_days = inf",
            "dane_rrsig_warning_days: a number of days, 0 or more, not 'inf'",
        ),
        (
            ["--dane-rrsig-critical-days", "5"],
            "",
            "--dane-rrsig-critical-days: the critical window for signature expiry (5 days) "
            "must be at most the warning window (3 days)",
        ),
        (
            ["--dane-rrsig-warning-days", "0"],
            "",
            "--dane-rrsig-warning-days: the critical window for signature expiry (1 day) "
            "must be at most the warning window (0 days)",
        ),
        (
            ["--dane-rrsig-warning-days", "2"],
            "dane_rrsig_critical_days = 2.5",
            "--dane-rrsig-warning-days/dane_rrsig_critical_days: the critical window for "
            "signature expiry (2.5 days) must be at most the warning window (2 days)",
        ),
    ],
)
def test_unusable_thresholds_are_usage_errors(pytester, args, ini, message):
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest(*INNER, "--dane-host", "mx.example.", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_zero_days_and_durations_mean_what_they_mean_to_check_and_the_exporter(pytester):
    """One rule per value: 0 days turns an expiry warning off (as ``check --cert-warning 0``
    and the exporter's ``thresholds``), a timeout may be written ``7s`` (as in dane.yml),
    and the probe's deadlines follow ``check --timeout``'s policy."""
    pytester.makepyfile(
        """
        from dane_monitor import settings

        def test_config(dane_checker):
            o = dane_checker.options
            assert (o.rrsig_warn_days, o.rrsig_error_days, o.cert_warn_days) == (0, 0, 0)
            assert o.timeouts == settings.probe_timeouts(7.0)
        """
    )
    result = pytester.runpytest(
        *INNER,
        "--dane-rrsig-warning-days=0",
        "--dane-rrsig-critical-days=0",
        "--dane-cert-warning-days=0",
        "--dane-timeout=7s",
    )
    result.assert_outcomes(passed=1)


def test_the_thresholds_reach_the_checker(pytester):
    pytester.makepyfile(
        """
        def test_config(dane_config, dane_checker):
            assert (dane_config.rrsig_warning_days, dane_config.rrsig_critical_days,
                    dane_config.cert_warning_days) == (7.0, 2.0, 30.0)
            o = dane_checker.options
            assert (o.rrsig_warn_days, o.rrsig_error_days, o.cert_warn_days) == (7.0, 2.0, 30.0)

        def test_defaults():
            from pytest_dane.config import DaneConfig
            c = DaneConfig()
            assert (c.rrsig_warning_days, c.rrsig_critical_days, c.cert_warning_days) == (3, 1, 14)
        """
    )
    pytester.makeini("[pytest]\ndane_cert_warning_days = 30\n")
    result = pytester.runpytest(
        *INNER, "--dane-rrsig-warning-days", "7", "--dane-rrsig-critical-days=2"
    )
    result.assert_outcomes(passed=2)
