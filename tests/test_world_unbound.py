"""The world's Unbound answers for itself, or does not start.

Issue 13: xdist workers each start an Unbound on port 53 of the first free 127.0.153.x.
Two of them found the same address free at once; the second Unbound could not bind and
exited, but under load it was still starting when its readiness probe asked the address,
and the first worker's Unbound answered. The second worker then resolved through the first
one's Unbound, which validates another world with other keys and publishes its TLSA records
at another port: posttls-finger found no TLSA, fell back to opportunistic TLS and reported
"untrusted issuer" for every DANE endpoint of that stack. Readiness now means "the server at
the address answers ``id.server`` with this instance's own identity, and this process runs".
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from dnsutil import served

from dane_monitor.world.unbound import Unbound, identity_of
from dane_monitor.world.zones import Fault, Hierarchy

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")


def slow_unbound(tmp_path: Path) -> str:
    """Unbound that takes a second to start, as on a loaded machine (stays alive, not
    bound, while the readiness probe runs)."""
    script = tmp_path / "slow-unbound"
    script.write_text(f'#!/bin/sh\nsleep 1\nexec {UNBOUND} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_an_unbound_whose_address_is_taken_does_not_pass_for_ready(tmp_path: Path):
    h = Hierarchy(".")
    h.zone("example.").add("mail", "A", "127.0.0.1")
    signed = h.sign()
    zones = [z.to_text() for z in signed.zones]
    with served(signed) as server:
        upstream = ("127.0.0.1", server.port)
        with Unbound(upstream, signed.trust_anchor(), zones=zones) as first:
            assert identity_of(*first.address, timeout=2) == first.identity
            # another world's Unbound asked for the very same address and port
            second = Unbound(
                upstream,
                signed.trust_anchor(),
                zones=zones,
                port=first.port,
                binary=slow_unbound(tmp_path),
            )
            with pytest.raises(RuntimeError, match="did not start"):
                second.start(timeout=30)
            assert second.process is None
            # the first one still serves, and still as itself
            assert identity_of(*first.address, timeout=2) == first.identity


def test_each_unbound_has_its_own_identity():
    h = Hierarchy(".")
    h.zone("example.")
    signed = h.sign()
    with served(signed) as server:
        upstream = ("127.0.0.1", server.port)
        with (
            Unbound(upstream, signed.trust_anchor()) as a,
            Unbound(upstream, signed.trust_anchor()) as b,
        ):
            assert a.address != b.address
            assert identity_of(*a.address, timeout=2) == a.identity
            assert identity_of(*b.address, timeout=2) == b.identity
            assert a.identity != b.identity


def test_unbound_keeps_answering_after_many_validation_failures():
    """Unbound logs every validation failure (val-log-level 2). Its stderr was a pipe nobody
    read: after ~190 bogus lookups 64 KiB of log filled it, Unbound blocked on the write, and
    every later query of that (session-long) resolver timed out."""
    h = Hierarchy(".")
    h.zone("example.")
    z = h.zone("expired.example.")
    z.add("*", "A", "127.0.0.1")
    z.fault(Fault.EXPIRED_RRSIG)
    signed = h.sign()
    zones = [str(z) for z in signed.zones]
    with (
        served(signed) as server,
        Unbound(("127.0.0.1", server.port), signed.trust_anchor(), zones=zones) as u,
    ):
        for i in range(400):  # about 90 KiB of log
            query = dns.message.make_query(f"x{i}.expired.example.", "A")
            reply = dns.query.udp(query, u.host, port=u.port, timeout=10)
            assert reply.rcode() == dns.rcode.SERVFAIL
        assert "expired" in u.log().lower()
