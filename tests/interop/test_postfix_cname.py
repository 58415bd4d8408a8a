"""RFC 7672 §2.2.3 (the TLSA base domain of an MX host reached through a CNAME), every case,
asked of Postfix and compared with the checker.

The matrix (``dane_monitor.world.scenarios.CNAME_MATRIX``): the MX record (secure) names
mail.<domain>, a CNAME that is secure (in the signed mail domain) or insecure (in a zone
delegated without DS), to mx.<...> whose address records are secure (signed hosting zone)
or insecure (the unsigned zone); one 3 1 1 record, matching the served key or not, at the
original name (``_PORT._tcp.mail.<domain>``) or at the expanded one (``_PORT._tcp.mx.<...>``).

Postfix's answer comes from ``posttls-finger -l dane -v DOMAIN:PORT`` (its ``-v`` log names
every TLSA query, so we see which base domain it used): the same ``tls_dane_resolve`` the
smtp(8) client runs with ``smtp_tls_security_level = dane``. Its outcomes:

- authenticated: "Verified TLS connection" after "Matched DANE …";
- defers: DANE applied and "no matching DANE TLSA records" (smtp(8) defers the mail);
- without DANE: "no TLSA records found" or "non DNSSEC destination". posttls-finger then
  "resorts to secure" (a PKIX check, for diagnostics); smtp(8) resorts to "may" and delivers
  opportunistically. When Postfix did look up TLSA (a secure base domain without records)
  that is the checker's ``no-dane``; when it looked up none, ``insecure``.

What Postfix 3.7 does (the expectation of each scenario):

- secure CNAME, secure target: TLSA at the expanded name; when there is none there, at the
  original name (RFC 7672 §2.2.3: "if no TLSA records are found at the expanded name, the
  original name is tried");
- secure CNAME, insecure target: TLSA only at the original name (Postfix's ``qname_secure``:
  the first CNAME is secure, so the original name is a TLSA base domain; §2.2.3);
- insecure CNAME (whatever the target): no DANE, no TLSA query at all.

Postfix and RFC 7672 §2.2.3 agree on every case. The checker before issue 12's rebuild
stopped at "addresses insecure" and never fell back to the original name
(``DISAGREED_BEFORE_ISSUE_12``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import run_check, start_unbound
from mta import FingerRunner

from dane_monitor.world import World
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.scenarios import CNAME_MATRIX, Scenario

#: Where the checker disagreed with Postfix before issue 12's rebuild (commit 003270a): it
#: never fell back to the original name and stopped at "addresses insecure". The rebuilt
#: checker agrees on all sixteen cases; these were the failing ones.
DISAGREED_BEFORE_ISSUE_12 = (
    "cname-secure-secure-orig-match",  # no-dane instead of valid
    "cname-secure-secure-orig-mismatch",  # no-dane instead of failed: mail deferred unseen
    "cname-secure-insecure-orig-match",  # insecure instead of valid
    "cname-secure-insecure-orig-mismatch",  # insecure instead of failed: mail deferred unseen
    "cname-secure-insecure-exp-match",  # insecure instead of no-dane (same sender action)
    "cname-secure-insecure-exp-mismatch",  # insecure instead of no-dane (same sender action)
)
CASES = [pytest.param(sc, id=sc.name) for sc in CNAME_MATRIX]


@dataclass
class PostfixSays:
    outcome: str  # "authenticated" | "defers" | "without-dane"
    tlsa_queries: list[tuple[str, str]]  # (owner name, dns_query result), in order
    base_domain: str | None  # the name whose TLSA RRset Postfix enforced
    output: str

    @property
    def host_expectation(self) -> tuple[str, str]:
        """(host verdict, sender action) the checker must report for a sender like this."""
        if self.outcome == "authenticated":
            return "valid", "deliver-authenticated"
        if self.outcome == "defers":
            return "failed", "defer"
        return ("no-dane" if self.tlsa_queries else "insecure"), "deliver-opportunistic"


_TLSA_QUERY = re.compile(r"dns_query: _\d+\._tcp\.(?P<name>\S+) \(TLSA\): (?P<result>.*)$")


def parse(output: str) -> PostfixSays:
    queries = [
        (m["name"].rstrip(".").lower(), m["result"].strip())
        for line in output.splitlines()
        if (m := _TLSA_QUERY.search(line))
    ]
    found = [name for name, result in queries if result == "OK"]
    if "no TLSA records found" in output or "non DNSSEC destination" in output:
        outcome = "without-dane"
    elif "Verified TLS connection established" in output and "Matched DANE" in output:
        outcome = "authenticated"
    elif "no matching DANE TLSA records" in output:
        outcome = "defers"
    else:
        raise AssertionError(f"cannot tell what Postfix did:\n{output[-4000:]}")
    return PostfixSays(outcome, queries, found[-1] if found else None, output)


@dataclass
class Matrix:
    world: World
    finger: FingerRunner
    anchor_args: list[str]
    said: dict[str, PostfixSays]

    def postfix(self, sc: Scenario) -> PostfixSays:
        if sc.name not in self.said:
            domain = self.world.domains[sc.name].name.rstrip(".")
            f = self.finger.run(f"{domain}:{self.world.smtp_port}", "-v")
            self.said[sc.name] = parse(f.output)
        return self.said[sc.name]


@pytest.fixture(scope="module")
def matrix(interop_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    world = World(CNAME_MATRIX, tlsa_on_smtp_port=True, smtp_network="127.0.7.0/24")
    anchor = world.write_trust_anchor(tmp_path_factory.mktemp("cname-matrix") / "anchor.ds")
    with BackgroundLoop(name="cname-matrix") as loop:
        loop.run(world.start())
        unbound = finger = None
        try:
            unbound = start_unbound(world)
            finger = FingerRunner(unbound.host)
            host, port = world.dns_address
            args = ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor),
                    "--connect-port", str(world.smtp_port), "--timeout", "5"]  # fmt: skip
            yield Matrix(world, finger, args, {})
        finally:
            if finger is not None:
                finger.close()
            if unbound is not None:
                unbound.stop()
            loop.run(world.stop())


def _names(world: World, sc: Scenario) -> tuple[str, str]:
    """(original, expanded) name of the scenario's MX host, lower case without the dot."""
    host = world.domains[sc.name].hosts[0]
    return host.mx_name.rstrip(".").lower(), host.name.rstrip(".").lower()


@pytest.mark.parametrize("scenario", CASES)
def test_postfix_does_what_the_matrix_says(matrix: Matrix, scenario: Scenario):
    said = matrix.postfix(scenario)
    expect = scenario.expect.hosts["mx"]
    assert said.host_expectation == (expect.verdict, expect.sender_action), said.output[-4000:]
    original, expanded = _names(matrix.world, scenario)
    if said.outcome != "without-dane":
        # the base domain Postfix enforced is the one the scenario published TLSA at
        at = original if "-orig-" in scenario.name else expanded
        assert said.base_domain == at, said.tlsa_queries
    queried = [name for name, _ in said.tlsa_queries]
    if scenario.name.startswith("cname-insecure-"):
        assert queried == [], said.tlsa_queries  # an insecure CNAME: no TLSA lookup at all
    elif scenario.name.startswith("cname-secure-insecure-"):
        assert set(queried) == {original}, said.tlsa_queries  # only the original name
    else:
        assert queried[0] == expanded, said.tlsa_queries  # the expanded name first


@pytest.mark.parametrize("scenario", CASES)
def test_the_checker_agrees_with_postfix(matrix: Matrix, capsys, scenario: Scenario):
    said = matrix.postfix(scenario)
    domain = matrix.world.domains[scenario.name]
    _, out = run_check(capsys, domain.name, *matrix.anchor_args)
    (host,) = out["hosts"]
    assert (host["verdict"], host["sender_action"]) == said.host_expectation, host
    if said.base_domain is not None:
        assert host["tlsa_name"].rstrip(".").lower() == f"_25._tcp.{said.base_domain}", host
    if said.outcome != "without-dane":
        authenticated = {e["authenticated"] for e in host["endpoints"]}
        assert authenticated == {said.outcome == "authenticated"}, host
