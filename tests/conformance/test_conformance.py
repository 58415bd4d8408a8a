"""The conformance corpus (issue 11): every case replayed to our validator and to BIND's delv.

One replay server (a background event loop) serves the whole module, switched from case to
case; each test asserts the status the RFCs decide (``expect``) and, separately, delv's
verdict. Cases our validator gets wrong today are in ``KNOWN_FAILING`` (strict xfail), which
the validator's fixes empty.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from corpus import (
    CASES,
    Case,
    CaseError,
    ReplayServer,
    case_files,
    clock_independent,
    delv_verdict,
    describe,
    load_all,
    load_case,
    replay_in_thread,
    validate,
)

MIN_CASES = 150

# Cases our validator gets wrong today: {case id: "issue 11 item N: what is wrong"}.
KNOWN_FAILING: dict[str, str] = {
    # A stub validator learns zone cuts from what it has validated; asked about this name
    # alone it cannot know nsec.example. is a zone without extra queries, and those (SOA or
    # DS per owner name) turn zones with broken denial bogus while an attacker who replays
    # stale parent data can drop them anyway. delv accepts both; with the cut known (any
    # lookup in the child zone first, as every DANE check does) we say bogus:
    # tests/test_lookup_attacks.py::test_a_parents_signature_over_a_childs_name_is_bogus.
    "signer-parent": "issue 11 item 4, the stub-validator limit: an RRSIG by the parent "
    "zone's key is accepted for data below a cut this validator has not seen",
    "signer-root-under-root-anchor": "issue 11 item 4, the stub-validator limit: an RRSIG by "
    "the root's key is accepted for data two cuts below, neither of them seen",
}

FILES = case_files()


def _param(path: Path) -> pytest.param:
    marks = []
    if path.stem in KNOWN_FAILING:
        marks.append(pytest.mark.xfail(reason=KNOWN_FAILING[path.stem], strict=True))
    return pytest.param(path, id=path.stem, marks=marks)


def _delv_files() -> list[Path]:
    out = []
    for path in FILES:
        try:
            if load_case(path).delv is not None:
                out.append(path)
        except ValueError:
            out.append(path)  # test_schema says what is wrong; the test here fails too
    return out


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with replay_in_thread() as server:
        yield server


def test_schema() -> None:
    cases = load_all()
    ids = [c.id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"case ids used twice: {dupes}"
    assert len(cases) >= MIN_CASES, f"only {len(cases)} cases"
    stale = sorted(set(KNOWN_FAILING) - set(ids))
    assert not stale, f"KNOWN_FAILING names cases that do not exist: {stale}"


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_validator(replay: ReplayServer, path: Path) -> None:
    case = load_case(path)
    replay.case = case
    answer = asyncio.run(validate(case, replay.server))
    got = (answer.status.value, answer.kind.value if case.kind else None, answer.reason)
    want = (case.status, case.kind, case.reason if case.reason else answer.reason)
    assert got == want, f"{case}: {case.summary}\nours: {describe(answer)}"


@pytest.mark.delv
@pytest.mark.skipif(shutil.which("delv") is None, reason="BIND's delv is not installed")
@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in _delv_files()])
def test_delv(replay: ReplayServer, path: Path, tmp_path: Path) -> None:
    case: Case = load_case(path)
    if not clock_independent(case):
        pytest.skip("signatures valid at the case's time and not now (delv runs at the present)")
    replay.case = case
    got, out = delv_verdict(case, replay.port, tmp_path)
    assert got == case.delv, f"{case}: {case.summary}\n{out}"


# --------------------------------------------------------------------------- the machinery


def _first_case() -> Case:
    return load_case(next(p for p in FILES if p.parent.name == "rfc4035"))


def _rewrite(tmp_path: Path, case: Case, edit) -> Path:
    doc = json.loads(case.path.read_text())
    edit(doc)
    out = tmp_path / case.group / f"{doc['id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("expect"), "missing keys: expect"),
        (lambda d: d.update(extra=1), "unknown keys: extra"),
        (lambda d: d.update(id="Not-Kebab"), "not kebab-case"),
        (lambda d: d["expect"].update(status="fine"), "expect.status 'fine'"),
        (lambda d: d.update(delv="maybe"), "delv 'maybe'"),
        (lambda d: d.update(anchors="example. IN A 127.0.0.1\n"), "only DS and DNSKEY"),
        (lambda d: d.update(question=["relative", "A"]), "must be absolute"),
        (lambda d: d["responses"].append(dict(d["responses"][0])), "a second response"),
        (lambda d: d["responses"][0].update(message="garbage"), "does not parse"),
        (lambda d: d.update(time="2026"), "time must be POSIX seconds"),
    ],
)
def test_loader_rejects(tmp_path: Path, edit, message: str) -> None:
    path = _rewrite(tmp_path, _first_case(), edit)
    with pytest.raises(CaseError, match=re.escape(message)) as err:
        load_case(path)
    assert str(path) in str(err.value)


def test_loader_rejects_keys_out_of_order(tmp_path: Path) -> None:
    path = _rewrite(tmp_path, _first_case(), lambda d: d.update(rfc=d.pop("rfc")))
    with pytest.raises(CaseError, match="out of order"):
        load_case(path)


def _ask(port: int, name: str, rdtype: str, *, tcp: bool, payload: int | None = 1232):
    q = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload or 0)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5, ignore_trailing=True)


def test_replay_answers_refuses_and_truncates(replay: ReplayServer) -> None:
    case = load_case(CASES / "rfc8624" / "alg-rsasha512.json")  # RSA keys: > 512 bytes
    replay.case = case
    name = "RSASHA512.Example."  # names match case-insensitively
    r = _ask(replay.port, name, "DNSKEY", tcp=False)
    assert r.rcode() == dns.rcode.NOERROR and r.answer
    assert r.question[0].name.to_text() == name  # the query's spelling comes back
    small = _ask(replay.port, name, "DNSKEY", tcp=False, payload=None)  # 512 bytes: too small
    assert small.flags & dns.flags.TC and not small.answer
    assert _ask(replay.port, name, "DNSKEY", tcp=True).answer == r.answer
    assert _ask(replay.port, "nothing.example.", "A", tcp=True).rcode() == dns.rcode.REFUSED


def test_replay_tcp_only(replay: ReplayServer) -> None:
    case = load_case(CASES / "rfc4035" / "tcp-only.json")
    replay.case = case
    udp = _ask(replay.port, case.question[0], case.question[1], tcp=False)
    assert udp.flags & dns.flags.TC and not udp.answer
    assert _ask(replay.port, case.question[0], case.question[1], tcp=True).answer


def test_clock_independent() -> None:
    case = load_case(CASES / "rfc4035" / "nsec-tlsa.json")
    assert clock_independent(case)
    assert clock_independent(case, present=case.time + 86400 * 365 * 40)
    assert not clock_independent(case, present=4000000000)  # past the 2088 expiry
