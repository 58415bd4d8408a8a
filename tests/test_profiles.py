"""Sender profiles (issue 16): each profile's prediction per MX host, end to end through
``dane-monitor check --json`` against a world of catalogue and SENDER_SCENARIOS domains.

The table below is the documented knobs applied to each scenario (dane_monitor/profiles.py
says where each knob comes from); the real-sender suite in tests/interop/ holds real Postfix
and Exim to the same table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from worldtools import world_args

from dane_monitor import profiles
from dane_monitor.cli import main
from dane_monitor.world import SENDER_SCENARIOS, World, by_name

AUTH, OPP, DEFER = "deliver-authenticated", "deliver-opportunistic", "defer"
NAMES = tuple(profiles.PROFILES)  # rfc7672 postfix postfix-insecure-mx-may rsa-sender
#                                   exim-gnutls sha1-refusing


def row(rfc, postfix, may, rsa, exim, sha1) -> dict[str, str]:
    return dict(zip(NAMES, (rfc, postfix, may, rsa, exim, sha1), strict=True))


ALL_AUTH = row(AUTH, AUTH, AUTH, AUTH, AUTH, AUTH)
ALL_OPP = row(OPP, OPP, OPP, OPP, OPP, OPP)

# scenario -> MX host ("mx1", "mx2") -> profile -> action
EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    "good-ee": {"mx1": ALL_AUTH},
    "good-ta": {"mx1": ALL_AUTH},  # 2 1 1 of the intermediate, sent above the leaf
    # a full 2 0 0 root the server does not send: libdane matches only what is sent
    "ta-root-not-sent": {"mx1": row(AUTH, AUTH, AUTH, AUTH, DEFER, AUTH)},
    # ... and when the server sends the root (depth 2), Exim/GnuTLS delivers
    "ta-root-sent": {"mx1": ALL_AUTH},
    # a right SHA-256 beside a wrong SHA-512: libdane has no digest agility
    "digest-agility": {"mx1": row(DEFER, DEFER, DEFER, DEFER, AUTH, DEFER)},
    # TLSA covers only the ECDSA key: only a sender that gets the RSA chain defers
    "dual-key-ecdsa-only": {"mx1": row(DEFER, AUTH, AUTH, DEFER, AUTH, AUTH)},
    "dual-key-both": {"mx1": ALL_AUTH},
    # unsigned mail domain, signed host zone: RFC 7672 §2.2.1 and Exim do not enforce
    "insecure-mx-tlsa-ok": {"mx1": row(OPP, AUTH, OPP, AUTH, OPP, AUTH)},
    "insecure-mx-tlsa-mismatch": {"mx1": row(OPP, DEFER, OPP, DEFER, OPP, DEFER)},
    # SHA-1 zones: DANE silently off behind a validator that refuses SHA-1
    "rsasha1": {"mx1": row(AUTH, AUTH, AUTH, AUTH, AUTH, OPP)},
    "rsasha1-nsec3": {"mx1": row(AUTH, AUTH, AUTH, AUTH, AUTH, OPP), "mx2": ALL_OPP},
    "nsec3-iter-150": {"mx1": ALL_AUTH, "mx2": ALL_OPP},
    "nsec3-iter-500": {"mx1": ALL_AUTH, "mx2": ALL_OPP},
    "tlsa-mismatch": {"mx1": row(DEFER, DEFER, DEFER, DEFER, DEFER, DEFER)},
}

SCENARIOS = [by_name(n) for n in EXPECTED]


@pytest.fixture(scope="module")
def world(dane_world_factory) -> World:
    return dane_world_factory(SCENARIOS)


@pytest.fixture(scope="module")
def anchor(world: World, tmp_path_factory) -> Path:
    return world.write_trust_anchor(tmp_path_factory.mktemp("profiles") / "anchor.ds")


def check(world: World, anchor: Path, capsys, name: str, *extra: str) -> tuple[int, str]:
    code = main(["check", *extra, world.domains[name].name, *world_args(world, anchor)])
    return code, capsys.readouterr().out


def test_every_sender_scenario_is_in_the_table():
    assert {s.name for s in SENDER_SCENARIOS} <= set(EXPECTED)
    assert set(NAMES) >= {"rfc7672", "postfix", "postfix-insecure-mx-may", "rsa-sender",
                          "exim-gnutls", "sha1-refusing"}  # fmt: skip


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_profile_predicts_what_its_knobs_say(world, anchor, capsys, name):
    _, out = check(world, anchor, capsys, name, "--json")
    result = json.loads(out)
    hosts = {h["name"]: h for h in result["hosts"]}
    built = {h.name: h for h in world.domains[name].hosts}
    got = {}
    for label in EXPECTED[name]:
        mx_name = next(b.mx_name for n, b in built.items() if n.startswith(f"{label}."))
        host = hosts[mx_name]
        assert set(host["profiles"]) == set(NAMES)
        got[label] = {p: v["action"] for p, v in host["profiles"].items()}
        for p in host["profiles"].values():
            assert p["reason"]
    assert got == EXPECTED[name], json.dumps({h: hosts[h]["profiles"] for h in hosts}, indent=1)


def test_the_headline_stays_rfc7672s(world, anchor, capsys):
    """Profiles are extra: the insecure-MX domain stays INSECURE (exit 1) although Postfix
    authenticates, and the SHA-1 domain stays VALID although sha1-refusing senders do not."""
    code, out = check(world, anchor, capsys, "insecure-mx-tlsa-ok", "--json")
    assert (json.loads(out)["verdict"], code) == ("insecure", 1)
    code, out = check(world, anchor, capsys, "rsasha1", "--json")
    assert (json.loads(out)["verdict"], code) == ("valid", 0)


def test_the_text_names_the_senders_that_differ(world, anchor, capsys):
    _, out = check(world, anchor, capsys, "rsasha1")
    assert "senders:" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("sha1-refusing"))
    assert "deliver-opportunistic" in line and "refused algorithm" in line
    _, out = check(world, anchor, capsys, "good-ee")
    assert "senders:" not in out  # every profile agrees with RFC 7672: nothing to add


def test_predict_host_reads_a_checks_result(world, anchor):
    """The interop suite's entry point: a Checker's HostResult and predict_host."""
    import asyncio

    from dane_monitor.settings import make_checker

    host, port = world.dns_address
    checker = make_checker(resolver=f"{host}:{port}", trust_anchor=anchor,
                           connect_port=world.smtp_port, step_timeout=5)  # fmt: skip
    result = asyncio.run(checker.check_domain(world.domains["ta-root-not-sent"].name))
    (mx1,) = result.hosts
    assert profiles.predict_host("postfix", mx1) == AUTH
    assert profiles.predict_host(profiles.PROFILES["exim-gnutls"], mx1) == DEFER
    assert profiles.delivers(DEFER) is False and profiles.delivers(OPP) is True


def test_settings_know_every_profile():
    """The pytest plugin parses profile names without importing the checker."""
    from dane_monitor import settings

    assert tuple(profiles.PROFILES) == settings.PROFILE_NAMES
    assert settings.parse_profile(" Exim-GnuTLS ") == "exim-gnutls"
    with pytest.raises(ValueError, match="the sender profiles are rfc7672, postfix"):
        settings.parse_profile("sendmail")


pytest_plugins = ["pytester"]
INNER = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark",
         "-o", "asyncio_default_fixture_loop_scope=function")  # fmt: skip


def test_pytest_items_require_a_profile(pytester, world, anchor):
    """``--dane-profile exim-gnutls`` adds an item per MX host that fails where Exim/GnuTLS
    senders fare worse than RFC 7672's; postfix passes on the same host."""
    host, port = world.dns_address
    args = [*INNER, "--dane-resolver", f"{host}:{port}", f"--dane-trust-anchor={anchor}",
            "--dane-connect-port", str(world.smtp_port), "--dane-timeout", "5",
            "--dane-domain", world.domains["ta-root-not-sent"].name,
            "--dane-profile", "exim-gnutls", "--dane-profile", "postfix", "-rA"]  # fmt: skip
    result = pytester.runpytest(*args)
    mx1 = world.domains["ta-root-not-sent"].hosts[0].name.rstrip(".")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.assert_outcomes(failed=1, passed=result.parseoutcomes()["passed"])
    assert f"FAILED dane::sender-exim-gnutls[ta-root-not-sent.example|{mx1}|25]" in out
    assert f"PASSED dane::sender-postfix[ta-root-not-sent.example|{mx1}|25]" in out
    assert "exim-gnutls senders DEFER mail here" in out and "libdane" in out
    bad = pytester.runpytest(*args[:-5], "--dane-profile", "sendmail")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--dane-profile: the sender profiles are" in bad.stderr.str()


def test_the_exporter_has_a_series_per_profile(world, anchor):
    """dane_sender_profile_action{profile, action}: full has each host's six; lean keeps
    them where a profile fares otherwise than RFC 7672 senders."""
    import asyncio

    from dane_monitor.exporter.metrics import samples
    from dane_monitor.settings import make_checker

    host, port = world.dns_address
    checker = make_checker(resolver=f"{host}:{port}", trust_anchor=anchor,
                           connect_port=world.smtp_port, step_timeout=5)  # fmt: skip

    def series(name: str, kind: str) -> dict[str, str]:
        result = asyncio.run(checker.check_domain(world.domains[name].name))
        got = samples(name, result, success=True, finished=0.0, duration=0.0, profile=kind)
        points = [(lb, v) for n, lb, v in got if n == "dane_sender_profile_action"]
        assert all(v == 1.0 for _, v in points)
        return {lb[3]: lb[4] for lb, _ in points}

    assert series("ta-root-not-sent", "full") == {
        **dict.fromkeys(NAMES, AUTH),
        "exim-gnutls": DEFER,
    }
    assert series("ta-root-not-sent", "lean") == {"exim-gnutls": DEFER}
    assert series("good-ee", "full") == dict.fromkeys(NAMES, AUTH)
    assert series("good-ee", "lean") == {}  # all agree with RFC 7672: nothing to add


def test_each_endpoint_says_which_senders_get_its_chain(world, anchor, capsys):
    """Per endpoint: the profiles that get this chain. The RSA chain of dual-key-ecdsa-only
    is what rsa-sender (and RFC 7672's "every chain") gets; the ECDSA one, everyone else."""
    _, out = check(world, anchor, capsys, "dual-key-ecdsa-only", "--json")
    (host,) = json.loads(out)["hosts"]
    by_key = {e["key_type"]: e["profiles"] for e in host["endpoints"]}
    assert {n: p["action"] for n, p in by_key["rsa"].items()} == {
        "rfc7672": DEFER,
        "rsa-sender": DEFER,
    }
    assert {n: p["action"] for n, p in by_key["ecdsa"].items()} == {
        n: AUTH for n in NAMES if n != "rsa-sender"
    }
    assert "(rsa chain)" in by_key["rsa"]["rsa-sender"]["reason"]


def test_check_profile_shows_the_chosen_senders(world, anchor, capsys):
    """``check --profile NAME``: those profiles' lines on every host, even where they agree
    with RFC 7672; a name that is no profile is a usage error naming the profiles."""
    code, out = check(world, anchor, capsys, "good-ee", "--profile", "exim-gnutls")
    assert code == 0
    lines = [ln.strip() for ln in out.splitlines()]
    i = lines.index("senders:")
    assert lines[i + 1].startswith("exim-gnutls") and AUTH in lines[i + 1]
    assert not any(ln.startswith("postfix") for ln in lines)
    code = main(["check", "--profile", "sendmail", "good-ee.example"])
    err = capsys.readouterr().err
    assert code != 0 and "the sender profiles are rfc7672" in err


def test_without_the_signing_algorithms_sha1_refusing_cannot_tell(world, anchor):
    """Resolver mode knows no signing algorithms (Answer.chain_algorithms empty): the
    sha1-refusing prediction is unknown, never a guess; the other profiles are unaffected."""
    import asyncio
    import dataclasses

    from dane_monitor.conclusion import conclude
    from dane_monitor.settings import make_checker

    host, port = world.dns_address
    checker = make_checker(resolver=f"{host}:{port}", trust_anchor=anchor,
                           connect_port=world.smtp_port, step_timeout=5)  # fmt: skip
    evidence = asyncio.run(checker.domain_evidence(world.domains["good-ee"].name))

    def blind(a):
        return dataclasses.replace(a, chain_algorithms=())

    def blind_host(h):
        tlsa = tuple(dataclasses.replace(t, answer=blind(t.answer)) for t in h.tlsa)
        return dataclasses.replace(h, a=blind(h.a), aaaa=blind(h.aaaa), tlsa=tlsa)

    hosts = tuple(blind_host(h) for h in evidence.hosts)
    seen = conclude(dataclasses.replace(evidence, mx=blind(evidence.mx), hosts=hosts))
    (mx1,) = seen.hosts
    assert mx1.profiles["sha1-refusing"]["action"] == "unknown"
    assert "not known" in mx1.profiles["sha1-refusing"]["reason"]
    assert {n: p["action"] for n, p in mx1.profiles.items() if n != "sha1-refusing"} == {
        n: AUTH for n in NAMES if n != "sha1-refusing"
    }
    assert profiles.delivers("unknown") is None


def test_each_knob_acts_on_its_own(world, anchor):
    """ta_match "sent" needs no digest_agility=False to match as libdane does, and profiles
    that share their validator knobs share a DNS decision without sharing the TLS one."""
    import asyncio
    import dataclasses

    from dane_monitor.evidence import Domain
    from dane_monitor.judge import judge
    from dane_monitor.settings import make_checker

    host, port = world.dns_address
    checker = make_checker(resolver=f"{host}:{port}", trust_anchor=anchor,
                           connect_port=world.smtp_port, step_timeout=5)  # fmt: skip
    d: Domain = asyncio.run(checker.domain_evidence(world.domains["ta-root-not-sent"].name))
    (hj,) = judge(d).hosts
    exim = profiles.PROFILES["exim-gnutls"]
    sent_only = dataclasses.replace(exim, name="sent-only", digest_agility=True)
    memo: dict = {}
    got = {p.name: profiles.predict_full(p, hj, d.mx, memo)[0].action
           for p in (profiles.PROFILES["postfix-insecure-mx-may"], exim, sent_only)}  # fmt: skip
    assert got == {"postfix-insecure-mx-may": AUTH, "exim-gnutls": DEFER, "sent-only": DEFER}
