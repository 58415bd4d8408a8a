"""Record real servers' answers into the conformance corpus (``cases/servers/<id>.json``).

    python3 tests/conformance/record_servers.py [--out DIR] [--only ID-PREFIX ...]

Starts the servers of ``servers.py`` (Knot DNS, PowerDNS, BIND from Debian), puts a
recording proxy (UDP and TCP, 127.0.0.1, a free port) in front of each, and for every
question of ``servers.CASES`` runs our validator and BIND's delv through the proxy, from
the zone's own DS, at the recording time. Every answer either of them needed (the question,
the DNSKEY RRsets, whatever delv asks besides) is frozen into the case, with the status the
RFCs expect (``servers.QUESTIONS``) and delv's verdict from that run. It prints the
agreement table (expected, ours, delv per case).

EDNS COOKIE options are removed from the recorded responses: a replayed server cookie would
not match the client cookie of a later query. Everything else is as the server sent it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # servers.py; tests/ for test_world_delv

import dns.edns  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402
from servers import (  # noqa: E402
    CASES,
    HOST,
    Fleet,
    Question,
    Zone,
    case_id,
    delv_verdict,
    free_port,
    run_delv,
    validate,
)

from dane_monitor.world.background import BackgroundLoop  # noqa: E402

OUT = HERE / "cases" / "servers"
TIMEOUT = 5.0


@dataclass
class Seen:
    qname: str
    qtype: str
    tcp: bool
    message: dns.message.Message


@dataclass
class RecordingProxy:
    """Relays DNS messages byte for byte to ``upstream`` and keeps every response."""

    upstream: int
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(10):
            port = free_port(HOST)
            try:
                self._udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UDPRelay(self), local_addr=(HOST, port)
                )
                self._tcp = await asyncio.start_server(self._tcp_client, HOST, port)
            except OSError:
                if self._udp is not None:
                    self._udp.close()
                continue
            self.port = port
            return
        raise RuntimeError("no free port for the recording proxy")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def keep(self, wire: bytes, tcp: bool) -> None:
        with contextlib.suppress(Exception):
            msg = dns.message.from_wire(wire, ignore_trailing=True)
            q = msg.question[0]
            self.seen.append(
                Seen(q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype), tcp, msg)
            )

    async def udp_exchange(self, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class Reply(asyncio.DatagramProtocol):
            def datagram_received(self, d: bytes, addr: object) -> None:
                if not answer.done():
                    answer.set_result(d)

        transport, _ = await loop.create_datagram_endpoint(Reply, remote_addr=(HOST, self.upstream))
        try:
            transport.sendto(data)
            return await asyncio.wait_for(answer, TIMEOUT)
        finally:
            transport.close()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            up_r, up_w = await asyncio.open_connection(HOST, self.upstream)
            try:
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    up_w.write(size.to_bytes(2, "big") + await reader.readexactly(size))
                    await up_w.drain()
                    rsize = int.from_bytes(await asyncio.wait_for(up_r.readexactly(2), TIMEOUT))
                    response = await up_r.readexactly(rsize)
                    self.keep(response, tcp=True)
                    writer.write(rsize.to_bytes(2, "big") + response)
                    await writer.drain()
            finally:
                up_w.close()
        writer.close()


class _UDPRelay(asyncio.DatagramProtocol):
    def __init__(self, proxy: RecordingProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._relay(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _relay(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(Exception):
            response = await self.proxy.udp_exchange(data)
            self.proxy.keep(response, tcp=False)
            assert self.transport is not None
            self.transport.sendto(response, addr)


def frozen(msg: dns.message.Message) -> str:
    """The response as the corpus keeps it: id 0, no EDNS COOKIE."""
    msg.id = 0
    if msg.edns >= 0:
        options = [o for o in msg.options if o.otype != dns.edns.OptionType.COOKIE]
        msg.use_edns(msg.edns, msg.ednsflags, msg.payload, options=options)
    return msg.to_text()


def responses(seen: list[Seen]) -> list[dict]:
    """One response per (name, type): the first complete one (TC ones only if nothing else
    came; the replay server truncates by size itself)."""
    chosen: dict[tuple[str, str], Seen] = {}
    for s in seen:
        key = (s.qname, s.qtype)
        old = chosen.get(key)
        if old is None or (old.message.flags & dns.flags.TC and not s.message.flags & dns.flags.TC):
            chosen[key] = s
    return [{"q": [s.qname, s.qtype], "message": frozen(s.message)} for s in chosen.values()]


NOTES = {
    "black-lies": (
        "Knot's mod-onlinesign never answers NXDOMAIN: a name that does not exist gets "
        "NOERROR with an NSEC owned by the name itself (next name \\000.<name>, bitmap "
        "without the asked type): a secure NODATA, and for DANE 'no TLSA record'."
    ),
    "white-lies": (
        "PowerDNS narrow mode: each NSEC3 is made on the fly to cover only hash-1..hash+1 "
        "of the name it denies, with an empty type bitmap."
    ),
}


def notes(zone: Zone, q: Question, ours: str, seen: list[Seen]) -> str:
    parts = []
    if zone.denial in NOTES:
        parts.append(NOTES[zone.denial])
    if q.slug.startswith("dname-") and zone.denial != "black-lies":
        parts.append("The synthesised CNAME is unsigned; it is checked against the DNAME.")
    if q.slug.startswith("dname-") and zone.denial == "black-lies":
        parts.append("mod-onlinesign signs the synthesised CNAME as well.")
    if any(s.message.flags & dns.flags.TC for s in seen):
        parts.append("Truncated over UDP (TC=1) with a 1232-byte EDNS buffer: TCP retry.")
    if not ours.startswith(q.expected):
        parts.append(f"Our validator said {ours} when this was recorded.")
    return " ".join(parts)


def record_case(
    fleet: Fleet, loop: BackgroundLoop, proxies: dict[str, RecordingProxy], zone: Zone, q: Question
) -> tuple[dict, str, str]:
    server = fleet.get(zone.server)
    proxy = proxies.get(zone.server)
    if proxy is None:
        proxy = proxies[zone.server] = RecordingProxy(server.port)
        loop.run(proxy.start())
    anchors, delv_anchor = fleet.anchors(zone)
    qname = q.qname(zone.origin)
    cid = case_id(zone, q)
    proxy.seen = []
    now = int(time.time())
    answer = asyncio.run(validate(proxy.port, anchors, qname, q.rdtype, now=float(now)))
    ours = q.outcome(answer)
    if answer.reason:
        ours += f" ({answer.reason})"
    out = run_delv(proxy.port, delv_anchor, zone.origin, qname, q.rdtype)
    delv = delv_verdict(out)
    seen = list(proxy.seen)
    case = {
        "id": cid,
        "rfc": list(q.rfc),
        "summary": f"{server.software} {zone.style}: {q.what}, expected {q.status} {q.kind}",
        "source": server.source(zone),
        "time": now,
        "anchors": server.anchor_text(zone.origin),
        "question": [qname, q.rdtype],
        "expect": {"status": q.status, "kind": q.kind, "reason": None},
        "delv": delv,
        "notes": notes(zone, q, ours, seen),
        "responses": responses(seen),
    }
    return case, ours, delv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", default=(), help="case id prefixes")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    disagreements = 0
    with (
        tempfile.TemporaryDirectory(prefix="dane-record-") as tmp,
        BackgroundLoop(name="recording-proxy") as loop,
    ):
        fleet = Fleet(Path(tmp))
        proxies: dict[str, RecordingProxy] = {}
        try:
            for zone, q in CASES:
                cid = case_id(zone, q)
                if args.only and not any(cid.startswith(p) for p in args.only):
                    continue
                case, ours, delv = record_case(fleet, loop, proxies, zone, q)
                path = args.out / f"{cid}.json"
                path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
                expected = q.expected
                flag = ""
                if not ours.startswith(expected):
                    flag += " OURS"
                if delv != q.delv:
                    flag += " DELV"
                    disagreements += 1
                rows.append((cid, expected, q.delv, ours, delv, flag.strip()))
            versions = {s.software: s.version() for s in fleet.servers.values()}
        finally:
            for proxy in proxies.values():
                loop.run(proxy.stop())
            fleet.stop()
    print("| case | expected | delv expected | ours | delv | differs |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n{len(rows)} cases written to {args.out}; servers: {versions}")
    if disagreements:
        print(f"{disagreements} cases where delv disagrees with the expected verdict")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
