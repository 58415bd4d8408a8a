"""Changing a running world: what an operator does during a key rollover.

``publish_tlsa(world, host, rdatas, ttl=…)`` replaces an MX host's ``_25._tcp`` TLSA RRset
and re-signs the hierarchy with the same keys (the DS and the trust anchor stay valid); a
secondary listed in ``lagging`` keeps serving the RRset it had (a zone transfer that has not
happened yet) until the next :func:`publish_tlsa` without it. ``deploy(host, chains)`` makes
every server of the host present new chains from the next handshake on (an MTA reload).

Safe to call from another thread than the world's loop: each server reads the signed
hierarchy and its TLS context once per query or handshake, and both are replaced whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dns.rdatatype

from dane_monitor.world.dnsserver import NameServerResponder
from dane_monitor.world.pki import Chain
from dane_monitor.world.world import MXHost, World


def publish_tlsa(
    world: World,
    host: MXHost,
    rdatas: Sequence[str],
    *,
    ttl: int | None = None,
    lagging: Iterable[str] = (),
) -> None:
    """Serve ``rdatas`` (none: no TLSA RRset) at ``host.tlsa_name`` with ``ttl`` (default
    the zone's). ``lagging``: addresses of the zone's secondaries that keep their current
    copy of the RRset (with the zone's TTL); every other secondary serves the new one."""
    zone = host.zone
    if zone is None:
        raise ValueError(f"{host.name} has no zone of its own in this world")
    behind = set(lagging)
    owner = zone.name(host.tlsa_name)
    key = (owner, dns.rdatatype.TLSA)
    old = tuple(zone._records.get(owner, {}).get(dns.rdatatype.TLSA, ()))
    for sec in zone.secondaries:
        if sec.address in behind:
            sec.overrides.setdefault(key, old)
        else:
            sec.overrides.pop(key, None)
    zone.remove(owner, "TLSA")
    if rdatas:
        zone.add(owner, "TLSA", *rdatas, ttl=ttl)
    host.tlsa_rdatas = tuple(rdatas)
    resign(world)


def resign(world: World) -> None:
    """Sign ``world.hierarchy`` again and serve the result from the primary and every
    secondary (same keys: the DS records and the trust anchor stay valid)."""
    world.signed = world.hierarchy.sign()
    if world.dns is not None:
        world.dns.signed = world.signed
    for secs in world.signed.secondaries.values():
        for sec in secs:
            server = world.ns_servers.get(sec.address)
            if server is not None:
                server.responder = NameServerResponder(sec, world.signed)


def deploy(host: MXHost, chains: Sequence[Chain]) -> None:
    """Every listening server of ``host`` presents ``chains`` from its next handshake on."""
    for endpoint in host.endpoints:
        endpoint.chains = tuple(chains)
        if endpoint.server is not None:
            endpoint.server.serve(chains)
