"""Differential checks: Postfix's posttls-finger and our checker on every DANE endpoint.

For every MX host of the catalogue whose expectation has ``authenticates`` not None (the
hosts where DANE applies), on both stacks (Postfix as the servers, and the world's own
servers), posttls-finger at level ``dane`` — resolving through the stack's validating
Unbound — and ``dane-monitor check --mx`` must agree, endpoint by endpoint, on whether the
endpoint authenticates; where both authenticate they must name the same TLSA record.

- Key types: posttls-finger negotiates TLS 1.3 and gets the ECDSA chain of a dual-key
  server. With ``-p '<=TLSv1.2' -o tls_medium_cipherlist=aRSA`` (TLS 1.2, only
  RSA-authenticated suites at its default "medium" grade) it gets the RSA chain, so both
  sides of a dual-key server are compared, each with our endpoint of the same key type.
- Addresses: posttls-finger connects to one address of the host (the first that answers,
  in the order the resolver gives, and Unbound rotates it); it is run again until every
  address of the host has been seen.

Disagreements found: none. Two places where the implementations could have differed and
did not, each decided by the RFC:

- ``digest-agility`` (a right 3 1 1 beside a wrong 3 1 2): Postfix, like us, uses only the
  strongest digest of a usage/selector pair and fails (RFC 7671 §9).
- ``ta-name-mismatch``: Postfix reports "hostname mismatch" after the DANE-TA chain
  verifies, and does not authenticate: the name checks apply to DANE-TA (RFC 7672 §3.2.2,
  §3.2.3), not to DANE-EE (``ee-name-mismatch`` authenticates for both, RFC 7672 §3.1.1).

The domain form (``posttls-finger DOMAIN:PORT``, MX lookup included) is compared too, for
every scenario with a DANE host, the insecure-MX ones included: Postfix ≥ 3.6 with
``smtp_tls_dane_insecure_mx_policy = dane`` (posttls-finger's ``-M``, default ``dane``)
logs "MX RRset insecure: log verified as trusted" and still enforces the MX host's secure
TLSA RRset (a match is logged "Trusted", not "Verified", the MX name being unauthenticated).
That is stricter than RFC 7672 §2.2.1 (DANE only under a secure MX RRset) and is what our
checker reports for such senders (the ``mx-insecure`` finding, hosts still authenticated,
``insecure-mx-tlsa-mismatch`` failed). With ``-M may`` posttls-finger follows §2.2.1 to the
letter ("MX RRset is insecure: try to encrypt", no TLSA used), as our domain verdict
``insecure`` for ``insecure-mx-tlsa-ok`` says senders of that reading do.
"""

from __future__ import annotations

import pytest
from conftest import SCENARIOS, Stack, run_check
from mta import RSA_ONLY, Finger

from dane_monitor.world import MXHost

DANE_HOSTS = [
    (sc.name, i)
    for sc in SCENARIOS
    for i, host in enumerate(sc.hosts)
    if (he := sc.expect.hosts.get(host.name)) is not None and he.authenticates is not None
]
DANE_SCENARIOS = sorted({name for name, _ in DANE_HOSTS}, key=[s.name for s in SCENARIOS].index)
SIGNATURE = {"ecdsa": "ECDSA", "rsa": "RSA"}


def ours(stack: Stack, capsys, mx_name: str) -> dict[tuple[str, str], dict]:
    """Our checker's endpoints of one MX host, by (address, key type)."""
    _, out = run_check(capsys, "--mx", mx_name, *stack.check_args("local"))
    (host,) = out["hosts"]
    return {(e["address"], e["key_type"]): e for e in host["endpoints"]}


def same_record(theirs: str, mine: str) -> bool:
    """posttls-finger elides long association data ("3082…AB...CD12"): compare what it shows."""
    theirs, mine = theirs.lower(), mine.lower()
    if "..." in theirs:
        head, tail = theirs.split("...", 1)
        return mine.startswith(head) and mine.endswith(tail)
    return theirs == mine


def fingers(stack: Stack, host: MXHost, key_type: str) -> dict[str, Finger]:
    """posttls-finger's result per address of ``host``, for chains of ``key_type``."""
    dest = f"[{host.mx_name.rstrip('.')}]:{stack.port}"
    options = RSA_ONLY if key_type == "rsa" else ()
    wanted = {ep.address for ep in host.endpoints if key_type in {c.key_type for c in ep.chains}}
    seen: dict[str, Finger] = {}
    for _ in range(12 * len(wanted)):
        f = stack.finger.run(dest, *options)
        assert f.trust is not None and f.address is not None, f.output
        seen.setdefault(f.address, f)
        if set(seen) >= wanted:
            break
    assert set(seen) == wanted, (seen.keys(), wanted)
    return seen


@pytest.mark.parametrize(("scenario", "index"), DANE_HOSTS, ids=[f"{n}-{i}" for n, i in DANE_HOSTS])
def test_posttls_finger_and_the_checker_agree_per_endpoint(
    stack: Stack, capsys, scenario: str, index: int
):
    host = stack.world.domains[scenario].hosts[index]
    mine = ours(stack, capsys, host.mx_name)
    key_types = sorted({c.key_type for ep in host.endpoints for c in ep.chains})
    compared = 0
    for key_type in key_types:
        for address, f in fingers(stack, host, key_type).items():
            endpoint = mine[(address, key_type)]
            assert f.server_signature == SIGNATURE[key_type], f.output
            assert f.authenticated == endpoint["authenticated"], (f.output, endpoint)
            if f.authenticated:
                assert f.tlsa_match is not None, f.output
                assert same_record(f.tlsa_match, endpoint["match"]["record"]), (
                    f.tlsa_match,
                    endpoint["match"],
                )
            else:
                # Postfix's reason and ours name the same failure
                failure = endpoint["match_failure"]
                if f.no_match:
                    assert failure == "tlsa-mismatch", endpoint
                else:
                    assert "hostname mismatch" in f.output, f.output
                    assert failure == "ta-name-mismatch", endpoint
            compared += 1
    # and both agree with the catalogue
    assert compared == sum(len(ep.chains) for ep in host.endpoints)
    assert host.expect is not None
    assert all(e["authenticated"] for e in mine.values()) == host.expect.authenticates


@pytest.mark.parametrize("scenario", DANE_SCENARIOS)
def test_posttls_finger_domain_form_follows_the_mx_like_the_checker(
    stack: Stack, capsys, scenario: str
):
    domain = stack.world.domains[scenario]
    f = stack.finger.run(f"{domain.name.rstrip('.')}:{stack.port}")
    assert f.trust is not None and f.host is not None, f.output
    _, out = run_check(capsys, domain.name, *stack.check_args("local"))
    hosts = {h["name"].rstrip(".").lower(): h for h in out["hosts"]}
    # posttls-finger reports the MX host by the name the MX record gives (CNAMEs unexpanded)
    host = hosts[f.host.lower()]
    # it tries MX hosts by preference and stops at the first that answers
    assert host["name"] == out["hosts"][0]["name"]
    endpoint = next(
        e for e in host["endpoints"] if e["address"] == f.address and e["key_type"] == "ecdsa"
    )
    assert f.authenticated == endpoint["authenticated"], (f.output, endpoint)
    # an insecure MX RRset: Postfix says so and enforces the host's TLSA all the same
    codes = {x["code"] for x in out["findings"]}
    assert f.insecure_mx == ("mx-insecure" in codes), (f.output, codes)
    if f.insecure_mx:
        assert endpoint["authenticated"] is not None  # DANE still applied, as by Postfix


@pytest.mark.parametrize("scenario", ["insecure-mx-tlsa-ok", "insecure-mx-tlsa-mismatch"])
def test_posttls_finger_insecure_mx_policy_may_is_rfc_7672_2_2_1(stack: Stack, scenario: str):
    domain = stack.world.domains[scenario]
    f = stack.finger.run(f"{domain.name.rstrip('.')}:{stack.port}", "-M", "may")
    assert "MX RRset is insecure: try to encrypt" in f.output, f.output
    assert f.tlsa_match is None and not f.no_match  # no TLSA consulted at all
    assert f.trust == "Untrusted" and not f.authenticated
