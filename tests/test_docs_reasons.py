"""docs/json.md lists every DNS reason code the lookup layer can give, once."""

from __future__ import annotations

import re
from pathlib import Path

from dane_monitor.lookup import answer, stub

DOC = Path(__file__).resolve().parent.parent / "docs" / "json.md"


def documented() -> list[str]:
    text = DOC.read_text().split("## DNS reasons", 1)[1]
    codes: list[str] = []
    for line in text.splitlines():
        if line.startswith("| `"):
            codes += re.findall(r"`([a-z0-9-]+)`", line.split("|")[1])
    return codes


def test_every_reason_code_is_documented_once():
    codes = documented()
    assert len(codes) == len(set(codes))
    ours = {v for k, v in vars(answer).items() if k.isupper() and isinstance(v, str)}
    ours |= {stub.TIMEOUT, stub.MALFORMED, stub.NETWORK, stub.DEADLINE}
    ours |= {f"cname-{s.value}" for s in answer.Status if s != answer.Status.SECURE}
    assert ours == set(codes)
