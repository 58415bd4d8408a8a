"""The fixtures and assertion helpers for one's own tests: ``dane_scenario``, ``dane_check``,
``dane_checker``, ``dane_config`` and ``pytest_dane.assert_*``.

This project's own run has the plugin installed, so most of these use the fixtures directly;
the configured-resolver fixtures and the native failure rendering are seen through pytester.
"""

from __future__ import annotations

import pytest

from dane_monitor.world import World
from pytest_dane import (
    Cert,
    Host,
    Record,
    assert_dane_valid,
    assert_findings,
    assert_no_findings,
    assert_tlsa_matches,
    assert_verdict,
)

pytest_plugins = ["pytester"]

INNER = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark", "-o",
         "asyncio_default_fixture_loop_scope=function", "-o", "asyncio_mode=auto")  # fmt: skip


def test_a_valid_domain_in_one_line(dane_scenario):
    sc = dane_scenario(hosts=["mx1", "mx2"])
    assert sc.name == "mail.example."
    result = sc.check()
    assert_dane_valid(result)
    assert_tlsa_matches(result)
    assert_tlsa_matches(result, host="mx2")
    assert [h.name for h in result.hosts] == [h.name for h in sc.hosts]
    assert_no_findings(result)  # no errors
    assert_no_findings(result, "cert-expiring", "rrsig-expiring")  # both were looked for
    assert_findings(result, "tlsa-no-rollover")
    with pytest.raises(AssertionError, match="tlsa-no-rollover"):
        assert_no_findings(result, severity="info")


def test_dane_ta_records_and_one_host_on_its_own(dane_scenario):
    sc = dane_scenario(tlsa=[Record(2, 1, 1, "intermediate")])
    result = sc.check_host("mx1")
    assert result.mx_only
    assert_dane_valid(result)
    (host,) = result.hosts
    assert host.endpoints[0].match.record.startswith("2 1 1 ")


def test_a_catalogue_scenario_by_name(dane_scenario):
    sc = dane_scenario("no-starttls")
    result = sc.check()
    assert_verdict(result, "failed")
    assert_verdict(result, "failed", host="mx1")
    assert_findings(result, "starttls-missing")
    with pytest.raises(AssertionError, match="starttls-missing"):
        assert_dane_valid(result)
    # no certificate was seen, so its expiry cannot be asserted away
    with pytest.raises(AssertionError) as raised:
        assert_no_findings(result, "cert-expiring")
    host = result.hosts[0]
    assert str(raised.value).startswith(
        "cannot tell whether cert-expiring applies: not checked: no certificate was seen from "
        f"{host.name.rstrip('.')} {host.addresses[0]}:25 (starttls-missing)"
    )


def test_two_key_types_one_record(dane_scenario):
    sc = dane_scenario(certs=["ecdsa", "rsa"], tlsa=[Record(3, 1, 1, "leaf", chain=0)])
    result = sc.check()
    assert_verdict(result, "failed")
    assert_tlsa_matches(result, key_type="ecdsa")
    rsa = next(c for c in sc.hosts[0].endpoints[0].chains if c.key_type == "rsa")
    with pytest.raises(AssertionError) as failure:
        assert_tlsa_matches(result, key_type="rsa")
    message = str(failure.value)
    assert "1 of 1 endpoints do not authenticate" in message
    assert f"{sc.hosts[0].tlsa_name} IN TLSA {rsa.tlsa(3, 1, 1)}" in message


def test_literal_records_and_full_hosts(dane_scenario):
    wrong = "3 1 1 " + "00" * 32
    sc = dane_scenario(
        hosts=[
            "mx1",
            Host(
                "mx2", servers=(Host("x").servers[0],), tlsa=(Record(rdata=wrong),), preference=20
            ),
        ],
        certs=[Cert("rsa")],
    )
    result = sc.check()
    assert_verdict(result, "valid", host="mx1")
    assert_verdict(result, "failed", host="mx2")
    assert sc.hosts[1].tlsa_rdatas == (wrong,)
    with pytest.raises(AssertionError, match=r"no MX host 'mx3'"):
        assert_verdict(result, "valid", host="mx3")
    with pytest.raises(AssertionError, match="no endpoint"):
        assert_tlsa_matches(result, address="192.0.2.1")


def test_assert_verdict_says_what_it_got_and_lists_the_findings(dane_scenario):
    result = dane_scenario(tlsa=[Record(target="unrelated")]).check()
    with pytest.raises(AssertionError) as failure:
        assert_verdict(result, "valid")
    message = str(failure.value)
    assert "to be 'valid', the check says 'failed'" in message
    assert "tlsa-mismatch" in message and "DANE senders DEFER mail here" in message
    with pytest.raises(ValueError, match="'fine' is not a valid Verdict"):
        assert_verdict(result, "fine")


async def test_an_async_test_awaits_the_scenarios_checker(dane_scenario):
    sc = dane_scenario()
    result = await sc.checker().check_domain(sc.name)
    assert_dane_valid(result)


def test_helpers_fail_natively_without_their_own_frames(pytester, dane_world: World):
    pytester.makepyfile(
        """
        from pytest_dane import Record, assert_tlsa_matches

        def test_mismatch(dane_scenario):
            result = dane_scenario(tlsa=[Record(target="unrelated")]).check()
            assert_tlsa_matches(result)
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert ">       assert_tlsa_matches(result)" in text  # the user's line
    assert "E       AssertionError: 1 of 1 endpoints do not authenticate" in text
    assert "IN TLSA 3 1 1 " in text
    assert "assertions.py" not in text  # the helper's frame is hidden


def test_configured_fixtures_check_with_the_configured_resolver(pytester, dane_world: World,
                                                                dane_trust_anchor):  # fmt: skip
    host, port = dane_world.dns_address
    good = dane_world.domains["good-ee"]
    broken = dane_world.domains["tlsa-mismatch"].hosts[0]
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_dane import assert_dane_valid, assert_verdict

        def test_config(dane_config):
            assert dane_config.resolver == "{host}:{port}"
            assert dane_config.connect_port == {dane_world.smtp_port}
            assert dane_config.hosts == () and dane_config.strict is False

        def test_sync(dane_check):
            assert_dane_valid(dane_check("{good.name}"))
            assert_verdict(dane_check(host="{broken.name}"), "failed")
            with pytest.raises(TypeError):
                dane_check()

        async def test_async(dane_checker):
            result = await dane_checker.check_domain("{good.name}")
            assert result.verdict == "valid"
        """
    )
    result = pytester.runpytest(
        *INNER, "--dane-resolver", f"{host}:{port}", f"--dane-trust-anchor={dane_trust_anchor}",
        "--dane-connect-port", str(dane_world.smtp_port),
    )  # fmt: skip
    result.assert_outcomes(passed=3)


def test_a_scenario_gives_the_options_of_a_run_against_it(pytester, dane_scenario):
    sc = dane_scenario(hosts=["mx1", "mx2"], tlsa=[Record(target="unrelated")])
    result = pytester.runpytest(*INNER, *sc.pytest_args(domain=False))
    # cert-expiry, rollover and stale-records judge chains that authenticate: not checked
    result.assert_outcomes(passed=12, failed=2, skipped=6)
    result = pytester.runpytest(*INNER, "-k", "tlsa-match", *sc.pytest_args())
    result.assert_outcomes(failed=2, deselected=18)
    assert sc.dns_args() == ["--resolver", sc.resolver, "--trust-anchor", str(sc.trust_anchor)]
