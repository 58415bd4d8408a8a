"""The checker's DNS layer: a stub client and in-process DNSSEC validation.

    validator = make_validator(resolver="127.0.0.1:53", trust_anchor=None, mode="local")
    answer = await validator.lookup("_25._tcp.mail.example.de.", "TLSA")
    answer.status, answer.kind, answer.rrset, answer.reason, answer.expiration

Modules: :mod:`.stub` (queries, cache), :mod:`.validator` (local and resolver mode),
:mod:`.denial` (NSEC/NSEC3 proofs), :mod:`.anchors` (trust anchors), :mod:`.answer` (the
result model), :mod:`.resolvercheck` (is a resolver fit for DANE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

# Imported first, before any reply is parsed: a TLSA record of the wrong length is unusable, not
# unparsable (see dane_monitor._compat).
import dane_monitor._compat  # noqa: F401
from dane_monitor.lookup.anchors import TrustAnchorError, TrustAnchors
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.stub import Cache, Server, StubClient, system_resolver
from dane_monitor.lookup.validator import ResolverValidator, Validator

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "Answer",
    "Cache",
    "Kind",
    "ResolverValidator",
    "Server",
    "Status",
    "StubClient",
    "TrustAnchorError",
    "TrustAnchors",
    "Validator",
    "make_validator",
    "system_resolver",
]


def make_validator(
    resolver: str | Server | None = None,
    *,
    trust_anchor: str | Path | None = None,
    mode: Literal["local", "resolver"] = "local",
    timeout: float = 2.0,
    tries: int = 3,
    cache: Cache | None = None,
) -> Validator | ResolverValidator:
    """A validator as the command-line options describe it.

    :raises ValueError: a resolver address that does not parse.
    :raises TrustAnchorError: a trust-anchor file that cannot be read or used.
    """
    if isinstance(resolver, str):
        resolver = Server.parse(resolver)
    client = StubClient(
        resolver,
        timeout=timeout,
        tries=tries,
        cache=cache,
        checking_disabled=mode == "local",
    )
    if mode not in ("local", "resolver"):
        raise ValueError(f"unknown validation mode {mode!r} (local or resolver)")
    # Resolver mode needs the anchors too: a SERVFAIL is validated here, with CD, from the
    # same anchors local mode would use, and the expiry watch stops at them.
    anchors = TrustAnchors.from_file(trust_anchor) if trust_anchor else TrustAnchors.root()
    if mode == "resolver":
        return ResolverValidator(client, anchors)
    return Validator(client, anchors)
