"""``dane-monitor rollover plan|status``: a key rollover without an outage (RFC 7671 §8).

A rollover has six stages; :func:`assess` says which one is live from what DNS and the
server show now (``status``), and what to do through all of them (``plan``):

1. the next key's record is not published (publish it: ``publish``);
2. it is published (the validated answer has it) but not yet on every authoritative server,
   or a server's signatures over it do not verify (wait for the zone transfer / re-signing);
3. it is on every authoritative server, secure, for less than the wait (wait);
4. the wait is over: safe to deploy the next certificate;
5. the server serves the next key and the old key's records are still published (remove them:
   ``remove``);
6. done: the server serves the next key and only records that match it remain.

**The wait** (RFC 7671 §8.1, RFC 6698 Appendix A.4): a resolver may hold the TLSA RRset as
it was before the next record was published for as long as its TTL, so the next certificate
is deployed no earlier than ``2 x T`` after the record is on every authoritative server,
where ``T`` is the largest of: the TTL each authoritative server gives the RRset, the
original TTL in its RRSIGs (RFC 4035 §5.3.3: what a validator caches it under), and, when
the name had no TLSA RRset before, the zone's negative TTL (SOA MINIMUM, RFC 2308 §5). The
clock starts when ``status`` first sees the record everywhere (the state file keeps that
moment per host and record); without an earlier sighting it starts now, never earlier.

**Which records.** The next key's ``3 1 x`` (with every matching type published today for
usage 3 selector 1, as digest agility needs: RFC 7671 §9); when the next certificate comes
from the CA of the served chain (the same issuer public key, or the served issuer's key
verifies it), a ``2 1 1`` for that CA is the alternative (the server must then send the
CA certificate). Afterwards: every record that matches the old key of the same type
and not the next one.

Matching uses :mod:`dane_monitor.tlsa` (one place) and the host policy of ``check``
(:meth:`Checker.host_evidence`, :func:`judge_host`: TLSA base domains through CNAMEs); every
authoritative server is asked through :func:`dane_monitor.nameservers.survey_zone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before dnspython, which decides its optional features when first imported (_compat).
import dane_monitor._compat  # noqa: F401  # isort: skip
import dns.name
import dns.rdatatype

from dane_monitor import policy
from dane_monitor import tlsa as T
from dane_monitor.judge import CRITICAL, OK, UNKNOWN, WARNING, HostJudgement, judge_host
from dane_monitor.lookup.answer import Status

#: Exit codes (the monitoring-plugin ones ``check`` and ``preflight`` use): safe to deploy or
#: done; wait; act (publish, remove) or broken; cannot tell (DNS, usage).
EXIT = {1: CRITICAL, 2: WARNING, 3: WARNING, 4: OK, 5: CRITICAL, 6: OK}
STAGES = {
    1: "not-published",
    2: "propagating",
    3: "waiting",
    4: "safe-to-deploy",
    5: "remove-old-records",
    6: "done",
}
#: The host cases in which deploying any certificate cannot change what DANE senders do.
_NO_DANE = {"address-insecure", "tlsa-insecure", "no-tlsa"}
RFC = "RFC 7671 §8.1, RFC 6698 Appendix A.4"


# -- the next key -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NextKey:
    """The key (and, from ``--next-cert``, the chain) the server will serve next."""

    source: str  # the file
    spki: bytes  # DER SubjectPublicKeyInfo
    key_type: str  # "ecdsa", "rsa", …
    chain: tuple[bytes, ...] = ()  # DER, leaf first; empty for --next-key

    @property
    def spki_sha256(self) -> str:
        return hashlib.sha256(self.spki).hexdigest()


def read_next_cert(path: str) -> NextKey:
    """:raises ValueError: the file holds no certificate (the message says what it holds)."""
    from dane_monitor.certfile import read_chain
    from dane_monitor.probe import key_type_of

    chain = read_chain(path)
    return NextKey(path, T.spki_der(chain[0]), key_type_of(chain[0]) or "unknown", tuple(chain))


def read_next_key(path: str) -> NextKey:
    """A PEM public or private key (unencrypted), or a certificate (then as --next-cert)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from None
    if b"CERTIFICATE-----" in data:
        return read_next_cert(path)
    key: Any = None
    with contextlib.suppress(ValueError, TypeError):
        key = serialization.load_pem_public_key(data)
    if key is None:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{path} holds no PEM public key, unencrypted private key or certificate "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kinds = ((rsa.RSAPublicKey, "rsa"), (ec.EllipticCurvePublicKey, "ecdsa"),
             (ed25519.Ed25519PublicKey, "ed25519"), (ed448.Ed448PublicKey, "ed448"))  # fmt: skip
    kind = next((name for cls, name in kinds if isinstance(key, cls)), "unknown")
    return NextKey(path, spki, kind)


# -- what was seen ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSeen:
    """One address of one authoritative server: does it serve a record for the next key?"""

    server: str
    address: str
    error: str | None  # no usable answer: timeout, unreachable, lame, …
    records: tuple[str, ...] = ()
    signatures_ok: bool | None = None
    expiration: int | None = None
    ttl: int | None = None  # the RRset's TTL as served
    original_ttl: int | None = None  # the largest original TTL of its RRSIGs
    soa_minimum: int | None = None


@dataclass(frozen=True)
class Observed:
    """What ``rollover`` gathered: the host as ``check`` sees it, and every server's copy."""

    host: HostJudgement
    owner: str | None
    zone: str | None
    servers: tuple[ServerSeen, ...] | None  # None: not asked (--no-nameservers)
    note: str = ""


async def observe(checker: Any, host: str, port: int, *, nameservers: bool = True) -> Observed:
    """The host's DNS and endpoints through ``checker`` (as ``check --mx`` sees them) and, with
    ``nameservers``, the TLSA RRset on every authoritative server of its zone."""
    from dane_monitor import nameservers as ns

    name = policy.idna(host)
    evidence = await checker.host_evidence(name, None, port)
    resolver_ok = None
    if any(a.status == Status.INDETERMINATE for a in evidence.lookups):
        resolver_ok = await checker._resolver_ok()
    hj = judge_host(evidence, resolver_ok)
    if hj.tlsa is None:
        return Observed(hj, None, None, None)
    owner, answer = hj.tlsa.owner, hj.tlsa.answer
    zone = answer.signer.to_text() if answer.signer is not None else None
    if not nameservers or zone is None or answer.status != Status.SECURE:
        return Observed(hj, owner, zone, None)
    o = checker.options
    survey = await ns.survey_zone(checker.validator.lookup, zone, [(owner, "TLSA")],
                                  port=o.nameserver_port, timeout=o.nameserver_timeout)  # fmt: skip
    views = [v for v in survey.servers]
    ttls = await asyncio.gather(
        *(_ttls(owner, v.address, v.port, o.nameserver_timeout) for v in views if not v.error)
    )
    by_address = dict(zip([v.address for v in views if not v.error], ttls, strict=True))
    seen = []
    for v in views:
        if v.error:
            seen.append(ServerSeen(v.server, v.address, f"{v.error}: {v.detail}".rstrip(": ")))
            continue
        tlsa = next((a for a in v.answers if a.rdtype == "TLSA"), None)
        soa = next((a for a in v.answers if a.rdtype == "SOA"), None)
        error = None
        if tlsa is None or not tlsa.authoritative or tlsa.rcode not in ("NOERROR", "NXDOMAIN"):
            error = "no authoritative answer" + (f" ({tlsa.rcode})" if tlsa else "")
        minimum = None
        if soa is not None and soa.records:
            with contextlib.suppress(IndexError, ValueError):
                minimum = int(soa.records[0].split()[-1])
        ttl, original = by_address.get(v.address, (None, None))
        seen.append(ServerSeen(v.server, v.address, error,
                               tlsa.records if tlsa else (), tlsa.signatures_ok if tlsa else None,
                               tlsa.expiration if tlsa else None, ttl, original,
                               minimum))  # fmt: skip
    return Observed(hj, owner, zone, tuple(seen), survey.note)


async def _ttls(
    owner: str, address: str, port: int, timeout: float
) -> tuple[int | None, int | None]:
    """The TLSA RRset's TTL at one server, and the largest original TTL of its RRSIGs (the
    survey compares records and signatures, not TTLs)."""
    from dane_monitor import nameservers as ns

    qname = dns.name.from_text(owner)
    try:
        reply = await ns._ask(qname, "TLSA", address, port, timeout, ns._Counter())
    except Exception:
        return None, None
    ttl = original = None
    for rrset in reply.answer:
        if rrset.name != qname:
            continue
        if rrset.rdtype == dns.rdatatype.TLSA:
            ttl = int(rrset.ttl)
        elif rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == dns.rdatatype.TLSA:
            original = max(int(s.original_ttl) for s in rrset)
    return ttl, original


# -- the assessment (pure) ---------------------------------------------------------------------


@dataclass
class Assessment:
    host: str
    port: int
    owner: str | None
    next: NextKey
    code: int  # the exit code
    stage: int | None  # None: DANE does not apply, or DNS cannot tell
    headline: str
    lines: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # the usable records now
    publish: list[str] = field(default_factory=list)
    alternative: list[str] = field(default_factory=list)
    alternative_why: str = ""
    remove: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    covering: list[str] = field(default_factory=list)  # published records that take next
    ttl: int | None = None
    wait: int | None = None
    wait_rule: str = ""
    visible_since: float | None = None
    first_seen_now: bool = False
    safe_at: float | None = None
    servers: list[dict[str, Any]] = field(default_factory=list)
    served: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "owner": self.owner,
            "stage": self.stage,
            "stage_name": STAGES.get(self.stage) if self.stage else None,
            "exit_code": self.code,
            "safe_to_deploy": self.stage in (4, 5, 6),
            "headline": self.headline,
            "next": {
                "source": self.next.source,
                "key_type": self.next.key_type,
                "spki_sha256": self.next.spki_sha256,
            },
            "served": self.served,
            "published": self.published,
            "covering": self.covering,
            "publish": self.publish,
            "alternative": self.alternative,
            "alternative_why": self.alternative_why,
            "remove": self.remove,
            "stale": self.stale,
            "ttl": self.ttl,
            "wait_seconds": self.wait,
            "wait_rule": self.wait_rule,
            "visible_since": self.visible_since,
            "first_seen_now": self.first_seen_now,
            "safe_at": self.safe_at,
            "nameservers": self.servers,
            "lines": self.lines,
        }


def _covers(records: Sequence[T.TLSARecord], nxt: NextKey, names: Sequence[str]) -> bool:
    """Would a sender authenticate the next key with ``records`` (digest agility applied)?"""
    if nxt.chain:
        return T.authenticate(list(records), list(nxt.chain), list(names)).authenticated
    used, _ = T._apply_agility([r for r in records if r.usable])
    return any(_matches_key(r, nxt) for r in used)


def _matches_key(r: T.TLSARecord, nxt: NextKey) -> bool:
    """A ``3 1 x`` record of the next key (the key alone: no certificate to hold 3 0 x to)."""
    if r.usage != 3 or r.selector != 1 or not r.usable:
        return False
    return r.data == (nxt.spki if r.mtype == 0 else T.digest(nxt.spki, r.mtype))


def _matches_next(r: T.TLSARecord, nxt: NextKey) -> bool:
    """Does ``r`` match anything of the next chain (any depth, agility not applied)?"""
    if not nxt.chain:
        return _matches_key(r, nxt)
    hits = T.authenticate([r], list(nxt.chain), []).hits
    return bool(hits) or _matches_key(r, nxt)


def _is_next(leaf: bytes, nxt: NextKey) -> bool:
    """Is ``leaf`` the next certificate (--next-cert: the same certificate, since a 3 0 x
    record tells a renewal with the same key from the current one), or has the next key?"""
    return leaf == nxt.chain[0] if nxt.chain else T.spki_der(leaf) == nxt.spki


def _issuer_record(chain: Sequence[bytes]) -> str | None:
    found = T.suggest_records(list(chain), usages=(2,))
    return found[0] if found else None


def _same_ca(served: Sequence[bytes], nxt: NextKey) -> str | None:
    """The ``2 1 1`` of the served chain's issuing CA when the next certificate comes from
    it (the next chain's issuer has the same public key, or the served issuer's key verifies
    the next leaf), else None."""
    if not nxt.chain:
        return None
    current = _issuer_record(served)
    if current is None:
        return None
    theirs = _issuer_record(nxt.chain)
    if theirs is None:  # the next file has the leaf alone: does the served CA verify it?
        theirs = _issuer_record([nxt.chain[0], *served[1:]])
    return current if theirs == current else None


def _from_records(texts: Sequence[str]) -> list[T.TLSARecord]:
    out = []
    for text in texts:
        with contextlib.suppress(ValueError):
            out.append(T.TLSARecord.from_text(text))
    return out


def wait_rule(obs: Observed) -> tuple[int | None, int | None, str]:
    """(T, the wait = 2 T, the rule with the figures) from what the servers serve."""
    hj = obs.host
    parts: list[tuple[int, str]] = []
    for s in obs.servers or ():
        if s.ttl is not None:
            parts.append((s.ttl, f"the TTL at {s.server} {s.address}"))
        if s.original_ttl is not None:
            parts.append((s.original_ttl, f"the RRSIG original TTL at {s.server} {s.address}"))
    answer = hj.tlsa.answer if hj.tlsa is not None else None
    if answer is not None and answer.ttl is not None:
        parts.append((int(answer.ttl), "the validated answer's TTL"))
    if not hj.records:  # no TLSA RRset yet: resolvers may cache its absence
        minimums = [s.soa_minimum for s in obs.servers or () if s.soa_minimum is not None]
        if minimums:
            parts.append((max(minimums), "the SOA negative TTL (MINIMUM): the name had no "
                                         "TLSA RRset"))  # fmt: skip
    if not parts:
        return None, None, "the TTLs could not be seen: wait at least twice the TLSA TTL"
    longest, why = max(parts, key=lambda p: p[0])
    rule = (f"2 x {longest} s = {2 * longest} s after the record is on every authoritative "
            "server: twice the longest of the TLSA RRset's TTL on each authoritative server, "
            "the original TTL in its RRSIGs and, for a name that had no TLSA RRset, the "
            f"negative TTL; here {why} ({RFC}). If you lowered the TTL recently, count the "
            "old one")  # fmt: skip
    return longest, 2 * longest, rule


def assess(
    obs: Observed,
    nxt: NextKey,
    host: str,
    port: int,
    *,
    first_seen: float | None = None,
    now: float | None = None,
) -> Assessment:
    """The stage and the plan. ``first_seen``: when the next key's record was first seen
    on every authoritative server (the state file), None: never before now."""
    now = time.time() if now is None else now
    hj = obs.host
    a = Assessment(host, port, obs.owner, nxt, UNKNOWN, None, "")
    if hj.case in _NO_DANE:
        a.code = OK
        a.headline = (f"OK: DANE does not apply to {host} ({hj.case}): deploying the next "
                      "certificate cannot break DANE; nothing to roll over")  # fmt: skip
        return a
    if not hj.dane_applies or hj.tlsa is None:
        reasons = [x for x in hj.host.lookups if x.reason]
        detail = "; ".join(f"{x.qname} {x.status} ({x.reason})" for x in reasons) or hj.case
        a.headline = f"UNKNOWN: DNS cannot tell ({detail}); fix DNS before a rollover"
        return a
    names = policy.reference_names(policy.idna(host), hj.base)
    usable = list(hj.usable)
    a.published = [r.to_text() for r in hj.records]
    a.covering = [r.to_text() for r in usable if _matches_next(r, nxt)]
    covered = _covers(hj.records, nxt, names)

    # What the server serves now, per endpoint.
    chains = [e for e in hj.endpoints if e.endpoint.probe.chain]
    for e in chains:
        p = e.endpoint.probe
        a.served.append({"address": e.endpoint.address, "key_type": p.leaf_key_type,
                         "spki_sha256": T.spki_sha256(bytes(p.chain[0])),
                         "next": _is_next(bytes(p.chain[0]), nxt),
                         "authenticated": e.case == "authenticated"})  # fmt: skip
    # The endpoints that serve the key type of the next key (none: a key type added), and of
    # those the ones that serve the next certificate (or key) already.
    same_type = [e for e in chains if e.endpoint.probe.leaf_key_type == nxt.key_type]
    deployed = [e for e in same_type if _is_next(bytes(e.endpoint.probe.chain[0]), nxt)]
    old = [e for e in same_type if e not in deployed]

    # Records: to publish now, the alternative, to remove after deployment.
    if not covered:
        mtypes = sorted({r.mtype for r in usable if (r.usage, r.selector) == (3, 1)}) or [1]
        a.publish = [f"3 1 {m} {(nxt.spki if m == 0 else T.digest(nxt.spki, m)).hex()}"
                     for m in mtypes]  # fmt: skip
        for e in old[:1]:
            ca = _same_ca([bytes(c) for c in e.endpoint.probe.chain], nxt)
            if ca is not None:
                a.alternative = [ca]
                a.alternative_why = ("the next certificate comes from the CA of the served "
                                     "chain (same issuer key): a 2 1 1 for that CA takes this "
                                     "and later renewals from it, as long as the server sends "
                                     "the CA certificate and the CA does not change")  # fmt: skip
    for r in usable:
        if _matches_next(r, nxt):
            continue
        if any(_hits(r, e) for e in old) or any(_hits(r, e) for e in deployed):
            if not any(_hits(r, e) for e in chains if e not in same_type):
                a.remove.append(r.to_text())
        elif not any(_hits(r, e) for e in chains):
            a.stale.append(r.to_text())
    a.remove += [s for s in a.stale if s not in a.remove]

    # The wait.
    a.ttl, a.wait, a.wait_rule = wait_rule(obs)

    # Every authoritative server's copy.
    everywhere = obs.servers is not None
    lagging: list[str] = []
    for s in obs.servers or ():
        recs = _from_records(s.records)
        has = not s.error and _covers(recs, nxt, names)
        secure = s.signatures_ok is True
        a.servers.append({"server": s.server, "address": s.address, "error": s.error,
                          "has_next": has, "signatures_ok": s.signatures_ok, "ttl": s.ttl,
                          "rrsig_expiration": s.expiration})  # fmt: skip
        if not has or not secure:
            what = s.error or ("no record for the next key" if not has
                               else "signatures do not verify")  # fmt: skip
            lagging.append(f"{s.server} {s.address}: {what}")
    if obs.servers is not None and not obs.servers:
        everywhere = False
        lagging.append(f"no authoritative server of {obs.zone} could be asked directly "
                       f"{obs.note}".rstrip())  # fmt: skip

    owner = obs.owner
    a.lines.append(f"TLSA {owner} (TTL {a.ttl if a.ttl is not None else '?'} s): "
                   + (", ".join(r.short for r in usable) or "no usable record"))  # fmt: skip
    for shown in a.served:
        a.lines.append(
            f"served at {shown['address']}: {shown['key_type']} key "
            f"{shown['spki_sha256'][:16]}… ({'the next key' if shown['next'] else 'current'}"
            f", {'authenticated' if shown['authenticated'] else 'NOT authenticated'})"
        )
    a.lines.append(f"next key ({nxt.source}): {nxt.key_type} {nxt.spki_sha256[:16]}…")

    if deployed and not old:  # the server serves the next key everywhere (of its type)
        if not covered:
            a.stage, a.code = 1, CRITICAL
            a.headline = (f"stage 1/6: {host} already serves the next key, which no published "
                          f"record authenticates: DANE senders defer now; publish {owner} IN "
                          f"TLSA {a.publish[0] if a.publish else '(the next key)'}")  # fmt: skip
            return a
        if a.remove:
            a.stage, a.code = 5, EXIT[5]
            a.headline = (f"stage 5/6: {host} serves the next key; remove the old records "
                          f"from {owner}: {', '.join(_short(t) for t in a.remove)}")  # fmt: skip
            return a
        a.stage, a.code = 6, EXIT[6]
        a.headline = f"stage 6/6: done: {host} serves the next key and only its records remain"
        return a
    if not covered:
        a.stage, a.code = 1, EXIT[1]
        a.headline = (
            f"stage 1/6: publish {owner} IN TLSA {a.publish[0]}"
            + (" (and " + ", ".join(a.publish[1:]) + ")" if a.publish[1:] else "")
            + "; deploying the next certificate now would make DANE senders defer"
        )
        if deployed:
            a.headline += f" (already served at {len(deployed)} endpoint(s): they fail now)"
        return a
    if lagging or not everywhere:
        a.stage, a.code = 2, EXIT[2]
        if obs.servers is None:
            lagging.append("the authoritative servers were not asked (--no-nameservers)")
        a.headline = ("stage 2/6: the next key's record is in the validated answer but not "
                      "yet secure on every authoritative server: wait (" + "; ".join(lagging)
                      + ")")  # fmt: skip
        return a
    a.first_seen_now = first_seen is None
    a.visible_since = now if first_seen is None else first_seen
    wait = a.wait or 0
    a.safe_at = a.visible_since + wait
    seen_for = max(0.0, now - a.visible_since)
    since = ("unknown, first seen now" if a.first_seen_now
             else f"for {_duration(seen_for)} (since {_when(a.visible_since)})")  # fmt: skip
    a.lines.append(f"on every authoritative server and secure: {since}")
    expiring = [s.expiration for s in obs.servers or () if s.expiration is not None]
    if expiring and min(expiring) < a.safe_at + wait:
        a.lines.append(
            f"note: a signature over the RRset expires {_when(min(expiring))}, "
            "before the wait is over plus a TTL: make sure the zone is re-signed"
        )
    if a.wait is None:  # no TTL seen: never "safe", whatever the clock says
        a.stage, a.code = 3, EXIT[3]
        a.headline = (f"stage 3/6: wait: {a.wait_rule}; safe to deploy only once that has "
                      f"passed since {_when(a.visible_since)}")  # fmt: skip
        return a
    if seen_for < wait:
        a.stage, a.code = 3, EXIT[3]
        a.headline = (f"stage 3/6: wait {_duration(a.safe_at - now)} more: safe to deploy "
                      f"from {_when(a.safe_at)} ({a.wait_rule.split(' after ')[0]})")  # fmt: skip
        return a
    a.stage, a.code = 4, EXIT[4]
    a.headline = (f"stage 4/6: safe to deploy the next certificate on {host}"
                  + (f" ({len(deployed)} of {len(same_type)} endpoints already serve it)"
                     if deployed else ""))  # fmt: skip
    return a


def _hits(r: T.TLSARecord, e: Any) -> bool:
    chain = [bytes(c) for c in e.endpoint.probe.chain]
    return bool(T.authenticate([r], chain, []).hits)


def _short(text: str) -> str:
    try:
        return T.TLSARecord.from_text(text).short
    except ValueError:
        return text


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- the state file ----------------------------------------------------------------------------


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/dane-monitor/rollover.json`` (default ``~/.local/state/…``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "dane-monitor" / "rollover.json"


def state_key(host: str, port: int, covering: Sequence[str]) -> str:
    return f"{policy.idna(host)}|{port}|{' ; '.join(sorted(covering))}"


def load_state(path: Path) -> dict[str, float]:
    """First sightings by :func:`state_key`; an unreadable file is an empty state."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    seen = data.get("first_seen", {}) if isinstance(data, dict) else {}
    if not isinstance(seen, dict):
        return {}
    # A sighting that is not a finite time (NaN, Infinity: json reads them) never counts:
    # -Infinity would make any wait pass at once.
    return {
        k: float(v)
        for k, v in seen.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def save_state(path: Path, seen: dict[str, float]) -> None:
    """Written whole to a temporary file beside it, then renamed (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"version": 1, "first_seen": seen}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def update_state(seen: dict[str, float], host: str, port: int, a: Assessment) -> None:
    """Keep the first sighting while the record stays on every server (stages 3-5), forget
    it when it is gone (stages 1, 2) or the rollover is done (6)."""
    prefix = f"{policy.idna(host)}|{port}|"
    key = state_key(host, port, a.covering)
    for k in [k for k in seen if k.startswith(prefix) and k != key]:
        del seen[k]
    if a.stage in (3, 4, 5) and a.visible_since is not None:
        seen.setdefault(key, a.visible_since)
    else:
        seen.pop(key, None)


# -- text -------------------------------------------------------------------------------------


def plan_text(a: Assessment) -> list[str]:
    """``rollover plan``: the steps from now on, with the records and the wait."""
    out = [f"rollover plan for {a.host} port {a.port}", *(f"  {x}" for x in a.lines)]
    if a.stage is None:
        return [a.headline, *out[1:]]
    out.append(f"now: {a.headline}")
    step = 1
    if a.publish:
        out.append(f"{step}. publish now (beside the current records):")
        out += [f"     {a.owner} IN TLSA {r}" for r in a.publish]
        if a.alternative:
            out.append(f"   or instead: {a.owner} IN TLSA {a.alternative[0]}")
            out.append(f"   ({a.alternative_why})")
        step += 1
    if a.stage is not None and a.stage <= 4:
        out.append(f"{step}. wait {a.wait_rule}")
        step += 1
        out.append(f"{step}. deploy the next certificate when 'dane-monitor rollover status' "
                   "says stage 4 (safe to deploy, exit 0)")  # fmt: skip
        step += 1
    if a.remove:
        out.append(f"{step}. after deploying, remove from {a.owner}:")
        out += [f"     {a.owner} IN TLSA {r}" for r in a.remove]
    return out


def status_text(a: Assessment) -> list[str]:
    out = [a.headline, *(f"  {x}" for x in a.lines)]
    if a.stage in (3, 4) and a.wait is not None:
        out.append(f"  the wait: {a.wait_rule}")
    if a.servers:
        out += [f"  {s['server']} {s['address']}: "
                + (s["error"] or ("next key's record, signatures "
                                  + ("verify" if s["signatures_ok"] else "do NOT verify")
                                  if s["has_next"] else "no record for the next key"))
                for s in a.servers]  # fmt: skip
    if a.stage == 4 and a.remove:
        out.append("  after deploying, remove: " + ", ".join(_short(r) for r in a.remove))
    return out
