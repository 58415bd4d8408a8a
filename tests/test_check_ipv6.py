"""IPv4 and IPv6 endpoints of one MX host, end to end (skipped where ::1 cannot be bound)."""

from __future__ import annotations

import json

import pytest
from loopback import HAS_IPV6

from dane_monitor.cli import main
from dane_monitor.world import Cert, Expect, Host, Scenario, Server

pytestmark = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback here")


@pytest.mark.parametrize(
    ("key_id", "verdict", "authenticated"),
    [(0, "valid", [True, True]), (1, "failed", [True, False])],
    ids=["same-key", "ipv6-other-key"],
)
def test_every_address_family_is_probed(dane_world_factory, tmp_path, capsys, key_id, verdict,
                                        authenticated):  # fmt: skip
    scenario = Scenario(
        f"dual-stack-{key_id}",
        "one MX host on 127.0.x.y and ::1",
        hosts=(Host("mx1", servers=(Server(), Server(certs=(Cert(key_id=key_id),), ipv6=True))),),
        expect=Expect(verdict),
    )
    world = dane_world_factory([scenario])
    anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = world.dns_address
    args = ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor)]
    args += ["--connect-port", str(world.smtp_port)]
    code = main(["check", "--json", f"{scenario.name}.example.", *args])
    out = json.loads(capsys.readouterr().out)
    (h,) = out["hosts"]
    ipv4 = world.domains[scenario.name].hosts[0].endpoints[0].address
    assert sorted(h["addresses"]) == sorted(["::1", ipv4])
    got = {e["address"]: e["authenticated"] for e in h["endpoints"]}
    assert [got[ipv4], got["::1"]] == authenticated
    assert out["verdict"] == verdict
    if verdict == "failed":
        assert code == 2
        assert got["::1"] is False
        assert "endpoints-disagree" in {f["code"] for f in out["findings"]}
