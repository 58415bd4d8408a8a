"""The CNAME matrix world, as BIND's delv validates it: each alias (the MX name) and each
target's address and TLSA records have the DNSSEC state the scenario's name says, so the
Postfix comparison in tests/interop/test_postfix_cname.py compares what it means to."""

from __future__ import annotations

import shutil

import pytest
from test_world_delv import UNSIGNED, VALID, run_delv, verdict

from dane_monitor.world import World
from dane_monitor.world.scenarios import CNAME_MATRIX, Placement

pytestmark = [
    pytest.mark.delv,
    pytest.mark.skipif(shutil.which("delv") is None, reason="needs delv"),
]


@pytest.fixture(scope="module")
def matrix(dane_world_factory, tmp_path_factory) -> tuple[World, object]:
    world = dane_world_factory(CNAME_MATRIX, smtp_network="127.0.6.0/24")
    anchor = world.write_bind_trust_anchor(tmp_path_factory.mktemp("delv") / "anchor.conf")
    return world, anchor


def _state(placement: Placement) -> str:
    return UNSIGNED if placement == "unsigned" else VALID


@pytest.mark.parametrize("scenario", CNAME_MATRIX, ids=[sc.name for sc in CNAME_MATRIX])
def test_delv_sees_the_matrix_cells_dnssec_state(matrix, scenario):
    world, anchor = matrix
    port = world.dns_address[1]
    (sc_host,) = scenario.hosts
    (host,) = world.domains[scenario.name].hosts
    cname, target = scenario.name.split("-")[1:3]
    assert (_state(sc_host.alias_zone), _state(sc_host.zone)) == (
        VALID if cname == "secure" else UNSIGNED,
        VALID if target == "secure" else UNSIGNED,
    )
    # the alias itself, the target's addresses, and each published TLSA RRset
    assert verdict(run_delv(port, anchor, host.mx_name, "CNAME")) == _state(sc_host.alias_zone)
    assert verdict(run_delv(port, anchor, host.name, "A")) == _state(sc_host.zone)
    if host.tlsa_rdatas:
        assert verdict(run_delv(port, anchor, host.tlsa_name, "TLSA")) == _state(sc_host.zone)
    if host.alias_tlsa_rdatas:
        name = f"_25._tcp.{host.mx_name}"
        assert verdict(run_delv(port, anchor, name, "TLSA")) == _state(sc_host.alias_zone)
    # the MX RRset of every cell is secure: only the CNAME and its target vary
    assert verdict(run_delv(port, anchor, world.domains[scenario.name].name, "MX")) == VALID
