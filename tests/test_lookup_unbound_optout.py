"""A NODATA that rests only on an NSEC3 opt-out span: we answer what Unbound answers.

RFC 5155 §8.5 wants a matching NSEC3 for a NODATA of any type but DS; an opt-out cover of the
next closer name proves nothing about the name (§9.2). delv calls the answer bogus, Unbound
insecure (the span may hold an unsigned delegation above the name). A sender behind Unbound
then treats the name as unsigned, so a bogus verdict would be a false alarm; we say insecure.
"""

from __future__ import annotations

import asyncio
import shutil

import dns.name
import dns.rcode
import pytest
from dnsutil import served

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import ResolverValidator, Validator
from dane_monitor.world.unbound import Unbound
from dane_monitor.world.zones import NSEC3, Hierarchy

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
pytestmark = pytest.mark.skipif(UNBOUND is None, reason="Unbound is not installed")
NAME = dns.name.from_text("nothere.optout.example.")


def test_an_opt_out_nodata_is_insecure_for_unbound_and_for_us():
    h = Hierarchy(".")
    h.zone("example.")
    h.zone("optout.example.", denial=NSEC3(opt_out=True)).add("mail", "A", "127.0.0.1")
    signed = h.sign()
    with served(signed) as server:
        nxdomain = server.responder.respond

        def nodata(q):  # the NXDOMAIN proof, sent as NOERROR: a NODATA without a match
            r = nxdomain(q)
            if r is not None and q.question[0].name == NAME:
                r.set_rcode(dns.rcode.NOERROR)
            return r

        server.responder.respond = nodata  # type: ignore[method-assign]
        zones = [z.to_text() for z in signed.zones]
        with Unbound(("127.0.0.1", server.port), signed.trust_anchor(), zones=zones) as u:

            async def ask():
                theirs = ResolverValidator(StubClient(Server(*u.address), timeout=5))
                ours = Validator(
                    StubClient(Server("127.0.0.1", server.port)), parse(signed.trust_anchor())
                )
                return await theirs.lookup(NAME, "TLSA"), await ours.lookup(NAME, "TLSA")

            theirs, ours = asyncio.run(ask())
    assert theirs.status == Status.INSECURE, str(theirs)  # no AD, and no SERVFAIL
    assert (ours.status, ours.reason) == (Status.INSECURE, "nsec3-opt-out"), str(ours)
