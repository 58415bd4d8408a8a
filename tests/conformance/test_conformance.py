"""The conformance corpus (issue 11): every case replayed to our validator and to BIND's delv.

One replay server (a background event loop) serves the whole module, switched from case to
case; each test asserts the status the RFCs decide (``expect``) and, separately, delv's
verdict. Cases our validator gets wrong today are in ``KNOWN_FAILING`` (strict xfail), which
the validator's fixes empty.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus import (
    Case,
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
    "signer-parent": "issue 11 item 4: an RRSIG by the parent zone's key (signer example.) "
    "is accepted for data below the cut at nsec.example.",
    "signer-root-under-root-anchor": "issue 11 item 4: an RRSIG by the root's key is accepted "
    "for data two zone cuts below",
    "nsec-ent-wildcard-nxdomain": "RFC 4592 §2.2.2: an NSEC 'covering' the wildcard whose next "
    "name lies below it (the wildcard is an empty non-terminal) is taken as proof that the "
    "wildcard does not exist",
    "optout-ds-denial": "issue 11 item 2: a DS NODATA resting on an opt-out NSEC3 is secure, "
    "not insecure",
    "optout-nodata": "RFC 5155 §8.5: a TLSA NODATA without a matching NSEC3 (opt-out cover "
    "only) is insecure, not bogus (a choice for the lead: issue 11 item 2 reads 'insecure')",
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
