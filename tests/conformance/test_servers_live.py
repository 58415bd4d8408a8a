"""Denial as real servers make it: Knot DNS (online signing, NSEC black lies; automatic
signing, NSEC), PowerDNS (NSEC3 narrow mode, white lies) and BIND (inline signing, NSEC3
and NSEC; an RSA-4096 zone whose DNSKEY RRset needs TCP), started here from Debian's
packages (``servers.py``), answer the questions of ``servers.QUESTIONS``. Our validator and
BIND's delv each validate every answer from the zone's own DS and must reach the status the
RFCs expect.

The servers start once per xdist worker (about 5 s together, most of it BIND's RSA-4096
key generation). Missing server binaries skip the tests, unless DANE_REQUIRE_TOOLS=1.
``record_servers.py`` freezes the same answers into ``cases/servers/`` for the replay corpus.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from servers import (
    CASES,
    HOST,
    ZONES,
    Fleet,
    Question,
    Zone,
    ask,
    case_id,
    delv_verdict,
    free_port,
    run_delv,
    validate,
    which,
)

from dane_monitor.lookup.answer import Kind, Status

REQUIRE = os.environ.get("DANE_REQUIRE_TOOLS") == "1"

# Where our validator disagrees with the RFCs (and delv) today: {case id: "issue 11 item N"},
# marked xfail(strict=True); the lead removes entries as the validator is fixed. Each id is
# also a case of cases/servers/. Empty since the DNAME support of issue 11 item 5 (the
# twelve "*-dname-a|tlsa|nxdomain" cases of servers whose synthesised CNAME is unsigned
# failed before it).
KNOWN_FAILING: dict[str, str] = {}


def _unavailable(fleet: Fleet, server: str, *tools: str) -> None:
    missing = fleet.missing(server) + [t for t in tools if which(t) is None]
    if not missing:
        return
    reason = f"missing for the real-server tests: {', '.join(missing)}"
    if REQUIRE:
        pytest.fail(f"DANE_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("auth-servers"))
    try:
        yield f
    finally:
        f.stop()


def _port(fleet: Fleet, zone: Zone, *tools: str) -> int:
    _unavailable(fleet, zone.server, *tools)
    return fleet.get(zone.server).port


def _params(xfail: bool) -> list:
    out = []
    for zone, q in CASES:
        cid = case_id(zone, q)
        marks = ()
        if xfail and cid in KNOWN_FAILING:
            marks = (pytest.mark.xfail(reason=KNOWN_FAILING[cid], strict=True),)
        out.append(pytest.param(zone, q, id=cid, marks=marks))
    return out


@pytest.mark.parametrize(("zone", "q"), _params(xfail=True))
def test_ours(fleet: Fleet, zone: Zone, q: Question) -> None:
    port = _port(fleet, zone)
    anchors, _ = fleet.anchors(zone)
    answer = asyncio.run(validate(port, anchors, q.qname(zone.origin), q.rdtype))
    assert q.outcome(answer) == q.expected, str(answer)


@pytest.mark.delv
@pytest.mark.parametrize(("zone", "q"), _params(xfail=False))
def test_delv(fleet: Fleet, zone: Zone, q: Question) -> None:
    port = _port(fleet, zone, "delv")
    _, anchor = fleet.anchors(zone)
    out = run_delv(port, anchor, zone.origin, q.qname(zone.origin), q.rdtype)
    assert delv_verdict(out) == q.delv, out


def _zone(prefix: str) -> Zone:
    return next(z for z in ZONES if z.case_prefix == prefix)


def test_knot_black_lie_is_a_nodata_our_tlsa_check_reads_as_no_tlsa(fleet: Fleet) -> None:
    """Knot's onlinesign: NOERROR, no answer, an NSEC owned by the query name itself whose
    next name is ``\\000.<qname>`` and whose bitmap lacks TLSA. That is a secure NODATA, which
    ``check`` reads as "no TLSA record" (it acts on secure + not positive)."""
    zone = _zone("knot-onlinesign")
    port = _port(fleet, zone)
    qname = f"_25._tcp.nothere.{zone.origin}"
    msg = ask(qname, "TLSA", port)
    assert msg.rcode() == 0 and not msg.answer
    owner = dns.name.from_text(qname)
    nsec = msg.find_rrset(msg.authority, owner, 1, dns.rdatatype.NSEC)
    assert nsec[0].next == dns.name.Name((b"\x00", *owner.labels))
    types = {t for window, bits in nsec[0].windows for t in _types(window, bits)}
    assert dns.rdatatype.TLSA not in types and dns.rdatatype.NSEC in types
    anchors, _ = fleet.anchors(zone)
    answer = asyncio.run(validate(port, anchors, qname, "TLSA"))
    assert answer.status == Status.SECURE and answer.kind == Kind.NODATA and answer.rrset is None


def test_check_reads_a_black_lie_as_no_tlsa(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dane-monitor check`` of an MX host in the onlinesign zone whose TLSA name does not
    exist: Knot answers NODATA (black lie), and the check says what senders do when no TLSA
    is published (deliver without DANE), not a DNS failure."""
    from dane_monitor.cli import main

    zone = _zone("knot-onlinesign")
    port = _port(fleet, zone)
    anchor = tmp_path / "anchor.ds"
    anchor.write_text(fleet.get(zone.server).anchor_text(zone.origin))
    closed = free_port(HOST)  # nothing listens there: the probe is refused at once
    args = ["check", "--json", "--mx", f"ok.{zone.origin}", "--resolver", f"{HOST}:{port}"]
    args += ["--trust-anchor", str(anchor), "--connect-port", str(closed), "--timeout", "5"]
    capsys.readouterr()
    code = main(args)
    result = json.loads(capsys.readouterr().out)
    (host,) = result["hosts"]
    tlsa = next(d for d in host["dns"] if d["type"] == "TLSA")
    assert (tlsa["status"], tlsa["kind"]) == ("secure", "nodata")
    assert host["verdict"] == "no-dane" and host["sender_action"] == "deliver-opportunistic"
    # Not a DNS failure; the refused port is reported, as a warning: DANE does not apply.
    got = [(f["code"], f["severity"]) for f in result["findings"]]
    assert got == [("no-tlsa", "warning"), ("connect-failed", "warning")]
    assert code == 1


def _types(window: int, bits: bytes) -> Iterator[int]:
    for i, byte in enumerate(bits):
        for bit in range(8):
            if byte & (0x80 >> bit):
                yield window * 256 + i * 8 + bit


def test_pdns_white_lies_are_narrow(fleet: Fleet) -> None:
    """PowerDNS's narrow mode: every NSEC3 of a denial covers only the hash next to its own
    owner's (owner hash + 1 or + 2), and the ones that cover carry no types and are owned by
    no name of the zone."""
    zone = _zone("pdns-narrow")
    port = _port(fleet, zone)
    msg = ask(f"nothere.{zone.origin}", "A", port)
    assert msg.rcode() == dns.rcode.NXDOMAIN
    nsec3s = [r for r in msg.authority if r.rdtype == dns.rdatatype.NSEC3]
    assert len(nsec3s) >= 2
    spans = [
        int(r[0].next.hex(), 16) - int(base64.b32hexdecode(r.name.labels[0].upper()).hex(), 16)
        for r in nsec3s
    ]
    assert all(1 <= s <= 2 for s in spans), spans
    names = ("", "ns.", "mail.", "ok.", "alias.", "*.wild.", "wild.", "dname.", "target.")
    real = {dns.dnssec.nsec3_hash(n + zone.origin, "", 0, 1).lower() for n in names}
    covering = [r for r in nsec3s if not r[0].windows]
    assert covering
    assert not {r.name.labels[0].decode() for r in covering} & real


def test_bigkey_dnskey_needs_tcp(fleet: Fleet) -> None:
    """Three RSA-4096 keys and their signature do not fit 1232 bytes: the server truncates
    over UDP; our stub client retries over TCP and the validator gets a secure RRset."""
    zone = _zone("bigkey")
    port = _port(fleet, zone)
    udp = ask(zone.origin, "DNSKEY", port, tcp=False)
    assert udp.flags & dns.flags.TC
    tcp = ask(zone.origin, "DNSKEY", port)
    keys = tcp.find_rrset(tcp.answer, dns.name.from_text(zone.origin), 1, dns.rdatatype.DNSKEY)
    assert len(keys) == 3 and all(len(k.key) > 500 for k in keys)  # 4096-bit moduli
    assert len(tcp.to_wire()) > 1232
    anchors, _ = fleet.anchors(zone)
    answer = asyncio.run(validate(port, anchors, zone.origin, "DNSKEY"))
    assert answer.status == Status.SECURE and len(answer.rrset) == 3
