"""The checker against real software: Postfix as the MX servers, Unbound as the resolver.

Every catalogue scenario Postfix can serve, in both validation modes:

- ``local``: DNSSEC validated in-process from the world's anchor, straight from the
  world's authoritative server;
- ``resolver``: the AD bit of a real validating Unbound trusted (``--validation resolver``).

Each must reach its catalogued verdict and, per MX host, the catalogued verdict, sender
action and authentication outcome, exactly as ``tests/test_check_catalogue.py`` demands of
the world's own servers, and the same verdict in both modes: a validating resolver does
not pass bogus data on, it answers SERVFAIL (RFC 4035 §5.5), so the checker asks again with
CD set and validates what comes back in-process from the configured anchor (the world's),
which tells "bogus" (with its reason: an expired signature, a bad signature, a DS that
matches no key) from a resolver that is down.
"""

from __future__ import annotations

import re
import smtplib
import socket

import pytest
from conftest import SCENARIOS, Stack, run_check

from dane_monitor.world import Behaviour, Scenario

EXIT = {"valid": {0, 1}, "no-mail": {0}, "no-dane": {1}, "insecure": {1}, "failed": {2},
        "bogus": {2}, "error": {3}}  # fmt: skip


def expected_verdict(sc: Scenario, mode: str) -> str:
    """The same zone gets the same verdict in both modes (issue 12)."""
    return sc.expect.verdict


@pytest.mark.parametrize("mode", ["local", "resolver"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[sc.name for sc in SCENARIOS])
def test_catalogued_verdict_against_real_servers_and_resolver(
    stack: Stack, capsys, mode: str, scenario: Scenario
):
    domain = stack.world.domains[scenario.name]
    code, out = run_check(capsys, domain.name, *stack.check_args(mode))
    assert out["validation"] == mode
    assert out["verdict"] == expected_verdict(scenario, mode), out
    assert code in EXIT[out["verdict"]]
    codes = {f["code"] for f in out["findings"]}
    assert scenario.expect.findings <= codes, codes
    hosts = {h["name"]: h for h in out["hosts"]}
    for built, sc_host in zip(domain.hosts, scenario.hosts, strict=True):
        he = scenario.expect.hosts.get(sc_host.name)
        if he is None:
            continue
        got = hosts[built.mx_name]
        assert (got["verdict"], got["sender_action"]) == (he.verdict, he.sender_action), got
        if he.authenticates is not None:
            assert all(e["authenticated"] for e in got["endpoints"]) == he.authenticates, got
            probed = {(e["address"], e["key_type"]) for e in got["endpoints"]}
            served = {(ep.address, c.key_type) for ep in built.endpoints for c in ep.chains}
            assert probed == served


def banner(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=10) as s:
        data = b""
        while not re.search(rb"(^|\n)220 [^\n]*\r\n$", data):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
        return data


def starttls(address: str, port: int) -> tuple[bool, int, bytes]:
    """(STARTTLS advertised, reply code to STARTTLS, reply text)"""
    with smtplib.SMTP(address, port, local_hostname="interop.example", timeout=10) as smtp:
        smtp.ehlo()
        offered = smtp.has_extn("starttls")
        code, text = smtp.docmd("STARTTLS")
        return offered, code, text


@pytest.mark.parametrize("stack", ["postfix"], indirect=True)
def test_the_endpoints_are_postfix(stack: Stack):
    """The postfix stack really is Postfix, with postscreen where the scenario asks for a
    multi-line greeting, and with Postfix's own ways of not doing TLS."""
    assert stack.kind == "postfix"
    assert stack.postfix
    for _, host, ep in stack.world.endpoints():
        pf = stack.postfix[ep.address]
        assert pf.process is not None and pf.process.poll() is None
        greeting = banner(ep.address, stack.port)
        assert host.name.rstrip(".").encode() + b" ESMTP Postfix\r\n" in greeting
        multiline = Behaviour.MULTILINE_GREETING in ep.behaviours
        assert greeting.startswith(b"220-" if multiline else b"220 "), greeting
        offered, code, text = starttls(ep.address, stack.port)
        if Behaviour.NO_STARTTLS in ep.behaviours:
            assert not offered  # smtpd_tls_security_level = none
            assert code == 502, text
        elif Behaviour.STARTTLS_REFUSED in ep.behaviours:
            assert offered  # the key does not fit the certificate: TLS init failed
            assert (code, text) == (454, b"4.7.0 TLS not available due to local problem")
        else:
            assert offered and code == 220, (code, text)
