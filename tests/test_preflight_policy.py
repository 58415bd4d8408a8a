"""``preflight`` follows the RFC 7672 host policy of ``check``, for every catalogue scenario.

For each MX host of each scenario, the chain the world's server presents is given to
``preflight --mx <the name the MX record gives>``; its answer must be what ``check`` decided
for the endpoint serving that chain: OK where it authenticates or DANE does not apply,
CRITICAL where it does not match, UNKNOWN where DNS cannot tell. A renewal hook must never
hear OK for a certificate that ``check`` then fails (issue 12: CNAME'd MX names).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.serialization import Encoding

from dane_monitor.cli import main
from dane_monitor.world import CATALOGUE, World

NO_DANE = {"address-insecure", "tlsa-insecure", "no-tlsa"}
DNS_FAILURE = {"address-bogus", "address-dns-failure", "address-unknown", "no-address",
               "tlsa-bogus", "tlsa-dns-failure", "tlsa-unknown"}  # fmt: skip


def expected(host: dict, address: str, key_type: str) -> int | None:
    case = host["decision"]
    if case in NO_DANE:
        return 0
    if case in DNS_FAILURE:
        return 3
    if host["tlsa_usable"] == 0:
        return 0
    for e in host["endpoints"]:
        if (e["address"], e["key_type"]) == (address, key_type):
            return {"authenticated": 0, "mismatch": 2}.get(e["decision"])
    return None  # the server never presented it (hostile): nothing to compare


WITH_HOSTS = [sc for sc in CATALOGUE if sc.mx != "null"]


@pytest.fixture(scope="module")
def unrelated(tmp_path_factory) -> Path:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("cert") / "unrelated.pem"
    ca.issue_cert("mx.unrelated.example").cert_chain_pems[0].write_to_path(path)
    return path


@pytest.mark.parametrize("scenario", WITH_HOSTS, ids=[sc.name for sc in WITH_HOSTS])
def test_preflight_agrees_with_check(
    dane_world: World, world_dns_args, capsys, tmp_path, unrelated, scenario
):
    domain = dane_world.domains[scenario.name]
    connect = ["--connect-port", str(dane_world.smtp_port), "--timeout", "5"]
    main(["check", "--json", domain.name, *world_dns_args, *connect])
    out = json.loads(capsys.readouterr().out)
    hosts = {h["name"]: h for h in out["hosts"]}
    compared = 0
    for built in domain.hosts:
        if built.mx_name not in hosts or not built.endpoints:
            continue
        ep = built.endpoints[0]
        for chain in ep.chains:
            want = expected(hosts[built.mx_name], ep.address, chain.key_type)
            if want is None:
                continue
            pem = tmp_path / f"{chain.key_type}.pem"
            pem.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain.certs))
            code = main(["preflight", "--cert", str(pem), "--mx", built.mx_name, *world_dns_args])
            said = capsys.readouterr().out
            assert code == want, (built.mx_name, hosts[built.mx_name]["decision"], said)
            compared += 1
        if hosts[built.mx_name]["decision"] == "dane" and hosts[built.mx_name]["tlsa_usable"]:
            # A key nobody published: CRITICAL wherever DANE applies, CNAME'd MX names
            # included (where the TLSA records sit at the expanded name).
            code = main(["preflight", "--cert", str(unrelated), "--mx", built.mx_name,
                         *world_dns_args])  # fmt: skip
            said = capsys.readouterr().out
            assert code == 2 and said.startswith("CRITICAL"), (built.mx_name, said)
    if out["verdict"] not in ("bogus", "error") and out.get("decision") == "hosts":
        assert compared or all(not h.endpoints for h in domain.hosts) or scenario.name in {
            "hang", "huge-line", "close-after-ehlo", "tls-failure", "reset", "garbage-greeting",
            "hang-after-ehlo", "starttls-garbage", "no-starttls", "starttls-refused",
        }  # fmt: skip
