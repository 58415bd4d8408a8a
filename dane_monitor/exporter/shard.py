"""Splitting one target list among several exporters, the way Prometheus splits targets.

An exporter given ``shard: i/N`` checks in the background only the targets whose name
Prometheus's ``hashmod`` relabel action would put in bucket ``i`` of ``N``::

    relabel_configs:
      - source_labels: [target]     # or __address__ / __param_target for /probe
        modulus: 3
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: "1"
        action: keep

so N exporters given ``0/N`` … ``N-1/N`` and the same target file check every target
exactly once, and an operator can compute (or have Prometheus compute) which exporter holds
a target. The hash is Prometheus's (model/relabel/relabel.go, ``HashMod``): the MD5 of the
label value, its last 8 bytes read as a big-endian unsigned 64-bit integer, modulo N. The
value hashed is the ``target`` label exactly as configured (without a trailing dot).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["Shard", "hashmod", "parse_shard"]

_SHARD = re.compile(r"(\d+)\s*/\s*(\d+)", re.ASCII)


def hashmod(value: str, modulus: int) -> int:
    """Prometheus's ``hashmod`` of a label ``value``: the bucket from 0 to ``modulus - 1``."""
    if modulus < 1:
        raise ValueError(f"the modulus is a positive integer, not {modulus!r}")
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


@dataclass(frozen=True)
class Shard:
    """Bucket ``index`` (from 0) of ``count``: the targets this exporter checks."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"a shard is I/N with N at least 1 and I from 0 to N-1, "
                f"not {self.index}/{self.count}"
            )

    def holds(self, name: str) -> bool:
        """Whether the target named ``name`` (its ``target`` label) belongs to this shard."""
        return self.count == 1 or hashmod(name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: object) -> Shard:
    """``I/N`` (``0/3``, ``2/3``): bucket I, counted from 0 as Prometheus's ``hashmod``
    counts, of N.

    :raises ValueError: anything else, saying what a shard looks like.
    """
    match = _SHARD.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"a shard is I/N (for example 0/3: the first of three), not {value!r}")
    return Shard(int(match[1]), int(match[2]))
