"""The conformance corpus of issue 11: case files, a replay DNS server, and two runners.

A case (``cases/<group>/<id>.json``, format in ``README.md``) is one validation question
with everything needed to answer it offline: the trust anchor, the validation time and
every DNS response the validators ask for.  :class:`ReplayServer` answers from those
recorded responses on 127.0.0.1 (UDP and TCP, one free port); :func:`validate` runs our
validator against it at the case's time; :func:`delv_verdict` runs BIND's ``delv``
against it and classifies the output with ``tests/test_world_delv.py``'s ``verdict``.

delv cannot be run at the case's time: libfaketime makes delv 9.18 hang at start-up
("Unexpected recursive calls to clock_gettime()").  So delv runs at the present, and
:func:`clock_independent` says whether that can change the outcome (a signature valid at
one instant and not at the other).  Generated cases sign with windows from 2024 to 2087,
so they stay clock-independent for decades; recorded ones stop being so when their
signatures expire, and their delv test is skipped from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dane_monitor.lookup.anchors import TrustAnchorError, TrustAnchors, bind_format
from dane_monitor.lookup.anchors import parse as parse_anchors
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.stub import Server, StubClient
from dane_monitor.lookup.validator import Validator
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.dnsserver import DNSServer, fit_to_wire

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"

# delv is run and read one way across the project: servers.py's run_delv (one +root) and
# delv_verdict (tests/test_world_delv.py's verdict, plus delv's DNAME-to-nowhere output).
for _p in (HERE, HERE.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

KEYS = ("id", "rfc", "summary", "source", "time", "anchors", "question", "expect", "delv")
OPTIONAL_KEYS = ("notes",)
ORDER = (*KEYS, "notes", "responses")
EXPECT_KEYS = ("status", "kind", "reason")
RESPONSE_KEYS = ("q", "message")
RESPONSE_OPTIONAL = ("udp", "tcp_only_tc")
STATUSES = tuple(s.value for s in Status)
KINDS = tuple(k.value for k in Kind)
#: delv verdicts, as tests/test_world_delv.py's ``verdict`` names them
DELV_VERDICTS = (
    "valid",
    "nxdomain",
    "nodata",
    "unsigned",
    "unsigned-nxdomain",
    "unsigned-nodata",
    "bogus",
    "servfail",
)
ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class CaseError(ValueError):
    """A case file that does not follow the format; the message names the file and field."""


@dataclass(frozen=True)
class Response:
    qname: str
    qtype: str
    message: str
    udp: bool = True
    tcp_only_tc: bool = False

    @property
    def key(self) -> tuple[dns.name.Name, int]:
        return dns.name.from_text(self.qname), dns.rdatatype.from_text(self.qtype)

    def parsed(self) -> dns.message.Message:
        return dns.message.from_text(self.message)


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    rfc: tuple[str, ...]
    summary: str
    source: str
    time: int
    anchors: str
    question: tuple[str, str]
    status: str
    kind: str | None
    reason: str | None
    delv: str | None
    notes: str
    responses: tuple[Response, ...]
    path: Path

    @property
    def anchor_zones(self) -> list[dns.name.Name]:
        return sorted(parse_anchors(self.anchors).anchors)

    def __str__(self) -> str:
        return f"{self.group}/{self.id}"


def _fail(path: Path, msg: str) -> CaseError:
    return CaseError(f"{path}: {msg}")


def _str(path: Path, where: str, v: object, *, empty: bool = False) -> str:
    if not isinstance(v, str) or (not empty and not v.strip()):
        raise _fail(path, f"{where} must be a non-empty string, not {v!r}")
    return v


def load_case(path: Path) -> Case:
    """Read and strictly check one case file.

    :raises CaseError: with the file and the offending field in the message.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"not a readable JSON file: {exc}") from exc
    if not isinstance(raw, dict):
        raise _fail(path, "the top level must be an object")
    missing = [k for k in (*KEYS, "responses") if k not in raw]
    if missing:
        raise _fail(path, f"missing keys: {', '.join(missing)}")
    unknown = [k for k in raw if k not in ORDER]
    if unknown:
        raise _fail(path, f"unknown keys: {', '.join(unknown)} (allowed: {', '.join(ORDER)})")
    order = [k for k in ORDER if k in raw]
    if list(raw) != order:
        raise _fail(path, f"keys out of order: {list(raw)}; the format's order is {order}")

    cid = _str(path, "id", raw["id"])
    if not ID_RE.match(cid):
        raise _fail(path, f"id {cid!r} is not kebab-case")
    if cid != path.stem:
        raise _fail(path, f"id {cid!r} differs from the file name {path.stem!r}")
    rfc = raw["rfc"]
    if not isinstance(rfc, list) or not rfc:
        raise _fail(path, "rfc must be a non-empty list of strings")
    for i, r in enumerate(rfc):
        _str(path, f"rfc[{i}]", r)
    summary = _str(path, "summary", raw["summary"])
    source = _str(path, "source", raw["source"])
    if not source.startswith(("generated: ", "recorded: ")):
        raise _fail(path, f"source must start with 'generated: ' or 'recorded: ', not {source!r}")
    t = raw["time"]
    if not isinstance(t, int) or isinstance(t, bool) or not 0 < t < 2**32:
        raise _fail(path, f"time must be POSIX seconds (an integer), not {t!r}")
    anchors = _str(path, "anchors", raw["anchors"])
    try:
        parse_anchors(anchors, source=f"{path}: anchors")
    except TrustAnchorError as exc:
        raise CaseError(str(exc)) from exc
    q = raw["question"]
    if not (isinstance(q, list) and len(q) == 2 and all(isinstance(x, str) for x in q)):
        raise _fail(path, f"question must be [name, type], not {q!r}")
    _check_name_type(path, "question", q)

    expect = raw["expect"]
    if not isinstance(expect, dict) or list(expect) != list(EXPECT_KEYS):
        raise _fail(path, f"expect must be an object with keys {list(EXPECT_KEYS)} in order")
    if expect["status"] not in STATUSES:
        raise _fail(path, f"expect.status {expect['status']!r} is not one of {STATUSES}")
    if expect["kind"] is not None and expect["kind"] not in KINDS:
        raise _fail(path, f"expect.kind {expect['kind']!r} is not null or one of {KINDS}")
    reason = expect["reason"]
    if reason is not None and not (isinstance(reason, str) and ID_RE.match(reason)):
        raise _fail(path, f"expect.reason must be null or a kebab-case code, not {reason!r}")
    delv = raw["delv"]
    if delv is not None and delv not in DELV_VERDICTS:
        raise _fail(path, f"delv {delv!r} is not null or one of {DELV_VERDICTS}")
    notes = raw.get("notes", "")
    if not isinstance(notes, str):
        raise _fail(path, "notes must be a string")
    if delv is None and not notes.strip():
        raise _fail(path, "delv is null: notes must say why delv is not asked")

    rs = raw["responses"]
    if not isinstance(rs, list):
        raise _fail(path, "responses must be a list (empty when nothing is asked)")
    responses: list[Response] = []
    seen: set[tuple[dns.name.Name, int]] = set()
    for i, r in enumerate(rs):
        where = f"responses[{i}]"
        if not isinstance(r, dict):
            raise _fail(path, f"{where} must be an object")
        keys = list(r)
        if keys[:2] != list(RESPONSE_KEYS) or any(k not in RESPONSE_OPTIONAL for k in keys[2:]):
            raise _fail(
                path, f"{where} keys {keys}: 'q', 'message', then optionally {RESPONSE_OPTIONAL}"
            )
        rq = r["q"]
        if not (isinstance(rq, list) and len(rq) == 2 and all(isinstance(x, str) for x in rq)):
            raise _fail(path, f"{where}.q must be [name, type], not {rq!r}")
        _check_name_type(path, f"{where}.q", rq)
        for opt in RESPONSE_OPTIONAL:
            if opt in r and not isinstance(r[opt], bool):
                raise _fail(path, f"{where}.{opt} must be true or false")
        resp = Response(
            rq[0],
            rq[1],
            _str(path, f"{where}.message", r["message"]),
            r.get("udp", True),
            r.get("tcp_only_tc", False),
        )
        try:
            msg = resp.parsed()
        except (dns.exception.DNSException, ValueError) as exc:
            raise _fail(path, f"{where}.message does not parse: {exc}") from exc
        if not msg.flags & dns.flags.QR:
            raise _fail(path, f"{where}.message is not a response (QR is clear)")
        if resp.key in seen:
            raise _fail(path, f"{where}: a second response for {rq[0]} {rq[1]}")
        seen.add(resp.key)
        responses.append(resp)

    return Case(
        id=cid,
        group=path.parent.name,
        rfc=tuple(rfc),
        summary=summary,
        source=source,
        time=t,
        anchors=anchors,
        question=(q[0], q[1]),
        status=expect["status"],
        kind=expect["kind"],
        reason=reason,
        delv=delv,
        notes=notes,
        responses=tuple(responses),
        path=path,
    )


def _check_name_type(path: Path, where: str, q: list[str]) -> None:
    try:
        name = dns.name.from_text(q[0])
        dns.rdatatype.from_text(q[1])
    except (dns.exception.DNSException, ValueError) as exc:
        raise _fail(path, f"{where} {q!r}: {exc}") from exc
    if not q[0].endswith("."):
        raise _fail(path, f"{where}: {q[0]!r} must be absolute (end with a dot)")
    del name


def case_files(root: Path = CASES) -> list[Path]:
    return sorted(root.glob("*/*.json"))


def load_all(root: Path = CASES) -> list[Case]:
    """Every case under ``root``, sorted by group and id."""
    return [load_case(p) for p in case_files(root)]


# --------------------------------------------------------------------------- replay server


class Replay:
    """Query → response from one case's recorded responses (no I/O): the
    :class:`~dane_monitor.world.dnsserver.WireResponder` a :class:`ReplayServer` serves."""

    def __init__(self, case: Case | None = None) -> None:
        self.case = case
        self._table: dict[tuple[dns.name.Name, int], tuple[Response, dns.message.Message]] = {}
        self.asked: list[tuple[str, str]] = []
        if case is not None:
            self.load(case)

    def load(self, case: Case) -> None:
        self.case = case
        self._table = {r.key: (r, r.parsed()) for r in case.responses}
        self.asked = []

    def handle_wire(self, wire: bytes, *, udp: bool = True) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if query.flags & dns.flags.QR or len(query.question) != 1:
            return None
        q = query.question[0]
        self.asked.append((q.name.to_text(), dns.rdatatype.to_text(q.rdtype)))
        hit = self._table.get((q.name, q.rdtype))  # dns.name equality ignores case
        if hit is None:
            r = dns.message.make_response(query)
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()
        spec, recorded = hit
        if udp and not spec.udp:
            return None
        recorded.id = query.id
        recorded.question = [dns.rrset.RRset(q.name, q.rdclass, q.rdtype)]  # the query's spelling
        return fit_to_wire(query, recorded, udp=udp, force_tc=udp and spec.tcp_only_tc)


class ReplayServer(DNSServer):
    """Answers from a case's recorded responses on 127.0.0.1, UDP and TCP on one free port
    (the world's :class:`~dane_monitor.world.dnsserver.DNSServer` serving a :class:`Replay`).

    ``server.case = other`` switches to another case without restarting (one server can
    serve a whole test module, one case after the other)."""

    def __init__(self, case: Case | None = None, host: str = "127.0.0.1") -> None:
        self.replay = Replay(case)
        super().__init__(host=host, responder=self.replay)

    @property
    def case(self) -> Case | None:
        return self.replay.case

    @case.setter
    def case(self, case: Case) -> None:
        self.replay.load(case)

    @property
    def server(self) -> Server:
        return Server(self.host, self.port)


@contextlib.contextmanager
def replay_in_thread(case: Case | None = None) -> Iterator[ReplayServer]:
    """A :class:`ReplayServer` on a background event loop (for delv, or synchronous tests)."""
    with BackgroundLoop("conformance-replay") as bg:
        server = ReplayServer(case)
        bg.run(server.start())
        try:
            yield server
        finally:
            bg.run(server.stop())


# --------------------------------------------------------------------------- runners


async def validate(
    case: Case, server: Server, *, anchors: TrustAnchors | None = None, timeout: float = 2.0
) -> Answer:
    """Our validator's answer to the case's question, at the case's time."""
    v = Validator(
        StubClient(server, timeout=timeout, tries=2),
        anchors if anchors is not None else parse_anchors(case.anchors),
        now=lambda: case.time,
    )
    name, rdtype = case.question
    return await v.lookup(name, rdtype)


def bind_anchors(text: str) -> str:
    """Unbound trust-anchor-file text → BIND's ``trust-anchors { ... };`` (for ``delv -a``)."""
    return bind_format(parse_anchors(text))


def delv_output(case: Case, port: int, workdir: Path) -> str:
    """Run delv for the case against a replay server on ``port``; its output."""
    from servers import run_delv

    anchor_file = workdir / f"{case.id}.anchor.conf"
    anchor_file.write_text(bind_anchors(case.anchors))
    # delv starts its chase at +root; the deepest anchor (cases have one anchor zone)
    root = case.anchor_zones[-1].to_text()
    name, rdtype = case.question
    return run_delv(port, anchor_file, root, name, rdtype)


def delv_verdict(case: Case, port: int, workdir: Path) -> tuple[str, str]:
    """(verdict, output) of delv for the case."""
    from servers import delv_verdict as classify

    out = delv_output(case, port, workdir)
    return classify(out), out


def _sig_valid(sig: dns.rdata.Rdata, at: float) -> bool:
    # RFC 4034 §3.1.5 serial arithmetic is what validators do; the cases stay far from
    # the wrap, so plain comparison gives the same answer
    return sig.inception <= at <= sig.expiration


def clock_independent(case: Case, present: float | None = None) -> bool:
    """True when no RRSIG of the case changes validity between the case's time and now."""
    now = time.time() if present is None else present
    for r in case.responses:
        msg = r.parsed()
        for section in (msg.answer, msg.authority, msg.additional):
            for rrset in section:
                if rrset.rdtype != dns.rdatatype.RRSIG:
                    continue
                for sig in rrset:
                    if _sig_valid(sig, case.time) != _sig_valid(sig, now):
                        return False
    return True


def describe(answer: Answer) -> str:
    return f"{answer.status} {answer.kind} reason={answer.reason} ({answer.detail})"


def run(coro):  # small helper for scripts
    return asyncio.run(coro)


__all__ = [
    "CASES",
    "Case",
    "CaseError",
    "Replay",
    "ReplayServer",
    "Response",
    "bind_anchors",
    "case_files",
    "clock_independent",
    "delv_output",
    "delv_verdict",
    "describe",
    "load_all",
    "load_case",
    "replay_in_thread",
    "validate",
]
