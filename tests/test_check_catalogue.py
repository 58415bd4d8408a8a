"""Every scenario of the catalogue, end to end through `dane-monitor check --json`.

The CLI runs in-process (``main([...])``) against the session's world: DNS validated from
the world's anchor, every SMTP endpoint probed on the world's port. Each scenario must get
exactly its catalogued verdict, at least its catalogued findings, and, per MX host, the
catalogued host verdict, sender action and authentication outcome.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from dane_monitor.check import Checker
from dane_monitor.cli import main
from dane_monitor.world import CATALOGUE, World

EXIT = {"valid": {0, 1}, "no-mail": {0}, "no-dane": {1}, "insecure": {1}, "failed": {2},
        "bogus": {2}, "error": {3}}  # fmt: skip


def run_check(capsys, *args: str) -> tuple[int, dict]:
    code = main(["check", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[sc.name for sc in CATALOGUE])
def test_check_reaches_the_catalogued_verdict(
    dane_world: World, world_check_args, capsys, scenario
):
    domain = dane_world.domains[scenario.name]
    code, out = run_check(capsys, domain.name, *world_check_args)
    expect = scenario.expect
    codes = {f["code"] for f in out["findings"]}
    assert out["verdict"] == expect.verdict, json.dumps(out, indent=1)[:4000]
    assert expect.findings <= codes, codes
    assert code in EXIT[expect.verdict]
    if expect.exit_code is not None:
        assert code == expect.exit_code, json.dumps(out, indent=1)[:4000]
    hosts = {h["name"]: h for h in out["hosts"]}
    for built, sc_host in zip(domain.hosts, scenario.hosts, strict=True):
        he = expect.hosts.get(sc_host.name)
        if he is None:
            continue
        got = hosts[built.mx_name]
        assert (got["verdict"], got["sender_action"]) == (he.verdict, he.sender_action), got
        if he.authenticates is not None:
            auth = [e["authenticated"] for e in got["endpoints"]]
            assert all(auth) == he.authenticates, got
            # every address of the host was probed, for every key type it serves
            probed = {(e["address"], e["key_type"]) for e in got["endpoints"]}
            served = {(ep.address, c.key_type) for ep in built.endpoints for c in ep.chains}
            assert probed == served


def test_check_one_mx_host(dane_world: World, world_check_args, capsys):
    host = dane_world.domains["good-ta"].hosts[0]
    code, out = run_check(capsys, "--mx", host.name, *world_check_args)
    assert code == 0
    assert out["kind"] == "mx-host"
    (h,) = out["hosts"]
    (ep,) = h["endpoints"]
    assert ep["match"]["record"].startswith("2 1 1 ")
    assert ep["match"]["depth"] == 1


def test_text_output_says_what_senders_do_and_what_to_publish(
    dane_world: World, world_check_args, capsys
):
    domain = dane_world.domains["tlsa-mismatch"]
    assert main(["check", domain.name, *world_check_args]) == 2
    out = capsys.readouterr().out
    assert "FAILED (CRITICAL)" in out
    assert "DANE senders DEFER mail here" in out
    served = domain.hosts[0].endpoints[0].chains[0].tlsa(3, 1, 1)
    assert f"IN TLSA {served}" in out  # the fix, ready to paste


def test_the_tlsa_name_uses_the_logical_port(dane_world: World, world_check_args, capsys):
    # Port 587: the world publishes only _25._tcp records, so _587._tcp has none.
    host = dane_world.domains["good-ee"].hosts[0]
    code, out = run_check(capsys, "--mx", host.name, "--port", "587", *world_check_args)
    (h,) = out["hosts"]
    assert h["tlsa_name"] == f"_587._tcp.{host.name}"
    assert out["verdict"] == "no-dane"
    assert code == 1


def test_internationalized_names_are_converted_not_rejected(world_check_args, capsys):
    code, out = run_check(capsys, "bücher.example", *world_check_args)
    assert out["target"] == "xn--bcher-kva.example."
    assert (code, out["verdict"]) == (0, "valid")


@pytest.mark.parametrize("bad", ["exa mple..com", "a" * 70 + ".example", "mail..example"])
def test_a_name_that_cannot_be_a_domain_is_a_clear_error(world_check_args, capsys, bad):
    code = main(["check", "--json", bad, *world_check_args])
    captured = capsys.readouterr()
    assert code == 3
    if captured.out:  # the library's verdict, in JSON
        out = json.loads(captured.out)
        assert out["verdict"] == "error"
        assert [f["code"] for f in out["findings"]] == ["bad-name"]
    else:  # or a usage error: one line saying what is wrong
        assert len(captured.err.strip().splitlines()) == 1
        assert "name" in captured.err


@pytest.mark.parametrize("bad", ["exa mple..com", "mail..example"])
def test_the_library_judges_a_bad_name_without_asking_dns(bad):
    class NoDNS:
        async def lookup(self, *args, **kwargs):
            raise AssertionError("a bad name must not reach DNS")

    result = asyncio.run(Checker(NoDNS()).check_domain(bad))  # type: ignore[arg-type]
    assert (result.verdict, result.case) == ("error", "bad-name")
    assert [f.code for f in result.all_findings()] == ["bad-name"]


def test_no_target_is_a_usage_error(world_check_args, capsys):
    assert main(["check", *world_check_args]) == 3
    assert "give a DOMAIN" in capsys.readouterr().err


def test_each_failing_endpoint_gets_the_record_its_own_key_needs(
    dane_world: World, world_check_args, capsys
):
    domain = dane_world.domains["dual-key-ecdsa-only"]
    code, out = run_check(capsys, domain.name, *world_check_args)
    assert code == 2
    rsa_chain = next(c for c in domain.hosts[0].endpoints[0].chains if c.key_type == "rsa")
    (mismatch,) = [f for f in out["findings"] if f["code"] == "tlsa-mismatch"]
    assert "(rsa key)" in mismatch["message"]
    assert mismatch["message"].endswith(f"IN TLSA {rsa_chain.tlsa(3)}")
