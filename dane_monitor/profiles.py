"""Sender profiles (issue 16): what named kinds of DANE sender do with each MX host.

The headline verdict and sender action stay RFC 7672's, as :mod:`dane_monitor.judge` decides.
A profile is a documented set of knobs in which real senders differ; :func:`predict` applies
them to the evidence the check already holds and says what that sender does with one host.

Public API (also for the real-sender interop suite in ``tests/interop/``)::

    from dane_monitor import profiles
    profiles.PROFILES                      # name -> Profile, in display order
    profiles.predict(profile, host_judgement, mx_answer) -> Prediction(action, reason)
    profiles.predict_host(profile, host_result) -> action   # from a check's HostResult
    profiles.predict_domain(profile, judgement, mx_answer, host_predictions) -> Prediction
    profiles.delivers(action) -> bool | None  # does mail leave the queue?

``action`` is one of ``deliver-authenticated``, ``deliver-unauthenticated-tls``,
``deliver-opportunistic`` (the :class:`dane_monitor.report.SenderAction` values), ``defer``,
or ``unknown`` (the evidence cannot tell, e.g. algorithm policy in resolver mode, or NSEC3
proofs whose iterations were not proven again: resolver mode, more than 150).
:func:`predict_domain` says the same for the whole target (the worst of its hosts, or the
domain's own row: a bogus MX RRset defers every profile whose validator finds it bogus).

Knobs and their sources:

``insecure_mx``
    What a secure TLSA RRset of a host reached through an insecure MX RRset does. "may":
    ignored, opportunistic TLS (RFC 7672 §2.2.1: with an insecure MX RRset DANE need not
    apply). "dane": enforced as for a secure MX: Postfix ``smtp_tls_dane_insecure_mx_policy``,
    postconf(5): default "dane" with ``smtp_tls_security_level = dane`` in Postfix ≥ 3.6
    (backported to 3.5.9, 3.4.19, 3.3.16, 3.2.21); "may" is the other documented choice.
    Exim: its spec says DANE is usable only with DNSSEC-secured MX, A and TLSA records
    (``hosts_try_dane`` / ``hosts_require_dane``), i.e. "may".
``key_types``
    Which of the server's chains the sender gets. "default": what a client with the TLS
    library's default signature algorithms gets (our first probe of each address, which
    offers every key type: OpenSSL and GnuTLS both list ECDSA first). "rsa": a sender that
    offers only RSA signature algorithms gets the RSA chain when the server has one (our
    second probe; when the server serves no RSA chain, the same chain as "default").
    "all": every chain a sender may get (the headline's rule).
``ta_match``
    Where a DANE-TA (usage 2) record may match. "chain": anywhere in the chain, and a full
    ``2 x 0`` trust anchor from DNS that the server does not send also counts (RFC 7671
    §5.2.2; OpenSSL's DANE, which Postfix uses). "sent": only a certificate the server sends
    (Exim's tls-gnu.c hands GnuTLS libdane's ``dane_verify_crt_raw`` the peer's certificate
    list as sent; libdane never adds a trust anchor from DNS). Observed with Debian 12's
    exim4 (GnuTLS) in tests/interop/test_real_senders.py: a ``2 0 0`` root the server does
    not send defers ("CA constrains were violated"), the same root sent at depth 2 delivers.
    (Older libdane ``verify_ca`` compared ``chain[1]`` only; the Debian build does not.)
``digest_agility``
    RFC 7671 §9: for each usage and selector only the strongest digest is used (SHA-512 over
    SHA-256; OpenSSL's DANE default mtype ordinals, so Postfix). False: any record that
    matches counts (libdane's ``dane_verify_crt_raw`` accepts the first record that matches).
``refused_algorithms``
    DNSSEC algorithms the sender's validator does not accept (a zone signed only with them
    is insecure, RFC 4035 §5.2). RFC 8624 §3.1 still requires validating RSASHA1 (5) and
    RSASHA1-NSEC3-SHA1 (7), but distributions that disable SHA-1 signatures system-wide
    (RHEL 9's DEFAULT crypto policy) refuse them; tests/test_world_sender_scenarios.py shows
    named with ``disable-algorithms "." { RSASHA1; NSEC3RSASHA1; }`` calling such zones
    insecure while the records still arrive. The same rule (RFC 4035 §5.2, RFC 6840 §5.2:
    no supported algorithm in an authenticated DS RRset, the zone is treated as unsigned)
    makes an answer bogus for us insecure for such a validator when a zone on its path,
    down to the failing one's DS, is signed only with refused algorithms: it never checks
    what fails (``Answer.chain_algorithms`` of bogus answers; tests/test_profiles_gaps.py
    holds it to named).
``nsec3_max_iterations``
    RFC 9276 §3.2: validators may call NSEC3 denials with more iterations insecure. Ours: 50
    (``lookup.denial.MAX_NSEC3_ITERATIONS``); BIND 9.18 and Unbound 1.17 (what the MTAs here
    use): 150, measured in tests/test_world_sender_scenarios.py. Our validator proves a
    denial above 50 and at most 150 iterations again with 150
    (``Answer.nsec3_resolver_status``, also on the answers below a DS denial), so what those
    validators conclude is predicted: proven, unsigned (no DS), or bogus (they defer). The
    same for the NSEC3 beside a wildcard answer (no closer match, RFC 5155 §8.8): where it
    holds, the TLSA RRset is secure for them and the host is judged again with it
    (:func:`_as_seen`: authenticated, or defer on a mismatch; tests/test_profiles_wildcard.py
    holds it to named, tests/interop/test_real_senders.py to Postfix and Exim). Unless the
    profile refuses an algorithm on the way (``chain_algorithms`` of such answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from dane_monitor import tlsa as T
from dane_monitor.judge import TABLE, EndpointJudgement, HostJudgement, Judgement, judge_host
from dane_monitor.lookup import answer as A
from dane_monitor.lookup.answer import Answer, Status
from dane_monitor.lookup.denial import MAX_NSEC3_ITERATIONS, RESOLVER_NSEC3_ITERATIONS
from dane_monitor.report import SenderAction

UNKNOWN = "unknown"
DEFER = SenderAction.DEFER.value
OPPORTUNISTIC = SenderAction.DELIVER_OPPORTUNISTIC.value
AUTHENTICATED = SenderAction.DELIVER_AUTHENTICATED.value
UNAUTHENTICATED = SenderAction.DELIVER_UNAUTHENTICATED_TLS.value

SHA1_ALGORITHMS = frozenset({5, 7})  # RSASHA1, RSASHA1-NSEC3-SHA1
RESOLVER_NSEC3_LIMIT = RESOLVER_NSEC3_ITERATIONS  # 150: BIND 9.18, Unbound 1.17


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    insecure_mx: Literal["may", "dane"] = "may"
    key_types: Literal["default", "rsa", "all"] = "default"
    ta_match: Literal["chain", "sent"] = "chain"
    digest_agility: bool = True
    refused_algorithms: frozenset[int] = frozenset()
    nsec3_max_iterations: int = RESOLVER_NSEC3_LIMIT

    def knobs(self) -> dict[str, Any]:
        return {
            "insecure_mx": self.insecure_mx,
            "key_types": self.key_types,
            "ta_match": self.ta_match,
            "digest_agility": self.digest_agility,
            "refused_algorithms": sorted(self.refused_algorithms),
            "nsec3_max_iterations": self.nsec3_max_iterations,
        }


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "rfc7672",
            "RFC 7672 as written: DANE only under a secure MX RRset, every chain the server "
            "may present, our validator's limits",
            insecure_mx="may",
            key_types="all",
            nsec3_max_iterations=MAX_NSEC3_ITERATIONS,
        ),
        Profile(
            "postfix",
            "Postfix ≥ 3.6, smtp_tls_security_level = dane, smtp_dns_support_level = "
            "dnssec, defaults otherwise (OpenSSL DANE), behind BIND/Unbound",
            insecure_mx="dane",
        ),
        Profile(
            "postfix-insecure-mx-may",
            "Postfix as above with smtp_tls_dane_insecure_mx_policy = may",
            insecure_mx="may",
        ),
        Profile(
            "rsa-sender",
            "Postfix defaults, but the sender offers only RSA signature algorithms (gets the "
            "server's RSA chain when it has one)",
            insecure_mx="dane",
            key_types="rsa",
        ),
        Profile(
            "exim-gnutls",
            "Exim with GnuTLS (Debian's exim4), hosts_try_dane: libdane matching "
            "(hosts_require_dane: the same where DANE applies; a bounce where the MX or the "
            "TLSA lookup is not secure or no TLSA RRset exists, while a secure RRset of only "
            "PKIX records still delivers over TLS unverified, as measured with Exim 4.96)",
            insecure_mx="may",
            ta_match="sent",
            digest_agility=False,
        ),
        Profile(
            "sha1-refusing",
            "Postfix defaults behind a validator that refuses SHA-1 DNSSEC algorithms "
            "(RSASHA1, RSASHA1-NSEC3-SHA1), as with RHEL 9's DEFAULT crypto policy",
            insecure_mx="dane",
            refused_algorithms=SHA1_ALGORITHMS,
        ),
    )
}


@dataclass(frozen=True)
class Prediction:
    action: str  # a SenderAction value, or "unknown"
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "reason": self.reason}


def delivers(action: str) -> bool | None:
    """Does the message leave the queue (True), wait (False), or can we not tell (None)?"""
    if action == UNKNOWN:
        return None
    return action != DEFER


# -- DNS as the profile's validator sees it ---------------------------------------------------


def _seen(profile: Profile, answer: Answer | None) -> tuple[Status | None, str]:
    """The status ``profile``'s validator gives ``answer`` (None: cannot tell), and why it
    differs from ours ("" when it does not)."""
    if answer is None:
        return None, ""
    if answer.status == Status.SECURE and profile.refused_algorithms:
        if not answer.chain_algorithms:
            return None, "the signing algorithms are not known (resolver mode)"
        for algorithms in answer.chain_algorithms:
            if algorithms and algorithms <= profile.refused_algorithms:
                names = ", ".join(str(a) for a in sorted(algorithms))
                return Status.INSECURE, f"signed only with refused algorithm(s) {names}"
    if answer.status == Status.BOGUS and profile.refused_algorithms:
        # RFC 4035 §5.2 (and RFC 6840 §5.2): a validator that supports none of the
        # algorithms of an authenticated DS RRset treats the zone as unsigned, so it never
        # meets the failure below that DS. chain_algorithms lists the zones validated down to
        # the failing zone's DS (empty: unknown, and the failure stands).
        for algorithms in answer.chain_algorithms:
            if algorithms and algorithms <= profile.refused_algorithms:
                names = ", ".join(str(a) for a in sorted(algorithms))
                return Status.INSECURE, (
                    f"bogus for us ({answer.reason}), but on the way down a zone is signed "
                    f"only with refused algorithm(s) {names}: this validator treats it as "
                    "unsigned (RFC 4035 §5.2) and never checks what fails"
                )
    if (
        answer.status == Status.INSECURE
        and answer.reason == A.NSEC3_ITERATIONS
        and answer.nsec3_iterations is not None
        and answer.nsec3_iterations <= profile.nsec3_max_iterations
    ):
        why = (
            f"NSEC3 with {answer.nsec3_iterations} iterations is within this validator's "
            f"limit ({profile.nsec3_max_iterations})"
        )
        # The denial proven again with the common limit (the validator's
        # nsec3_resolver_status): of the record itself, or of the DS of the zone the answer
        # comes from (then the zone is unsigned, or bogus, for that validator as well).
        wider = answer.nsec3_resolver_status
        if wider is None:  # more iterations than the common limit: not proven here
            return None, why + ", and what it makes of the denial was not computed"
        if wider != Status.INSECURE and profile.refused_algorithms:
            # The proof counts only where this validator accepts the zones' algorithms
            # (chain_algorithms: down to the zone of the denial).
            if not answer.chain_algorithms:
                return None, why + ", but the signing algorithms are not known"
            for algorithms in answer.chain_algorithms:
                if algorithms and algorithms <= profile.refused_algorithms:
                    names = ", ".join(str(a) for a in sorted(algorithms))
                    return Status.INSECURE, f"signed only with refused algorithm(s) {names}"
        # A record of its own zone insecure for iterations: a wildcard expansion (the
        # answers that inherit it from their zone's DS denial carry no signer).
        wildcard = answer.kind == A.Kind.POSITIVE and answer.signer is not None
        if wider == Status.SECURE:
            if wildcard:  # RFC 5155 §8.8: the NSEC3 beside a wildcard expansion
                return Status.SECURE, why + ": the wildcard answer's no-closer-match proof holds"
            return Status.SECURE, why + ": the denial is proven"
        if wider == Status.INSECURE:
            if wildcard:
                return Status.INSECURE, why + ": the wildcard answer's proof is an opt-out span"
            return Status.INSECURE, why + ": the zone is still unsigned for it (no DS, proven)"
        return wider, why + f": the denial does not prove it ({wider.value})"
    return answer.status, ""


def _as_seen(profile: Profile, host: HostJudgement) -> tuple[HostJudgement, str]:
    """``host`` judged again when ``profile``'s validator finds its TLSA RRset secure where
    ours does not (a wildcard TLSA answer whose NSEC3 proof has more iterations than ours
    and is within that validator's limit): DANE applies for that sender, so the endpoints
    are matched against the records (the decision table, :func:`judge.judge_host`).
    Otherwise ``host`` itself. The note says why."""
    if host.case != "tlsa-insecure" or host.tlsa is None:
        return host, ""
    answer = host.tlsa.answer
    if answer.kind != A.Kind.POSITIVE or answer.rrset is None:
        return host, ""
    status, why = _seen(profile, answer)
    if status != Status.SECURE:
        return host, ""
    h = host.host
    seen = replace(host.tlsa, answer=replace(answer, status=Status.SECURE, reason=None))
    tlsa = tuple(seen if t is host.tlsa else t for t in h.tlsa)
    return judge_host(replace(h, tlsa=tlsa), None), f"; the TLSA RRset is secure for it: {why}"


# -- endpoints --------------------------------------------------------------------------------


def _reached(profile: Profile, endpoints: tuple[EndpointJudgement, ...]) -> list:
    if profile.key_types == "all":
        return list(endpoints)
    first = [e for e in endpoints if e.endpoint.probe.key_type_requested == "any"]
    if profile.key_types == "rsa":
        rsa = [e for e in endpoints if e.endpoint.probe.leaf_key_type == "rsa"]
        by_address = {e.endpoint.address for e in rsa}
        return rsa + [e for e in first if e.endpoint.address not in by_address]
    return first


def _libdane(e: EndpointJudgement, digest_agility: bool) -> tuple[str, str] | None:
    """GnuTLS libdane's matching of one endpoint whose chain our check judged, as Exim uses
    it: DANE-EE against the leaf, DANE-TA against the certificates sent above it only.
    None: nothing to add to the RFC 7672 judgement (not a matching case)."""
    m = e.match
    if m is None or e.case not in ("authenticated", "mismatch"):
        return None
    hits = list(m.hits)  # every usable record that matches a sent certificate
    if digest_agility:
        ignored = {id(r) for r in m.ignored_by_agility}
        hits = [h for h in hits if id(h.record) not in ignored]
    if any(h.record.usage == T.Usage.DANE_EE and h.depth == 0 for h in hits):
        return AUTHENTICATED, "a DANE-EE record matches the leaf"
    sent = [h for h in hits if h.record.usage == T.Usage.DANE_TA and h.depth >= 1]
    if sent and e.case == "authenticated":
        return AUTHENTICATED, f"a DANE-TA record matches a certificate sent (depth {sent[0].depth})"
    if sent:
        return DEFER, f"a DANE-TA record matches a certificate sent, but {m.failure}"
    if m.match is not None and m.match.record.usage == T.Usage.DANE_TA and _not_sent(m):
        return DEFER, (
            "the DANE-TA record's trust anchor is not sent by the server; libdane matches "
            "only the certificates sent"
        )
    return DEFER, m.failure or "no TLSA record matches"


def _not_sent(m: T.MatchResult) -> bool:
    return m.match is not None and not any(h.record is m.match.record for h in m.hits)


def _endpoint(profile: Profile, e: EndpointJudgement) -> tuple[str, str]:
    key = e.endpoint.probe.leaf_key_type or "no"
    where = f"{e.endpoint.address} ({key} chain)"
    rfc = (e.action.value if e.action is not None else UNKNOWN, f"{where}: {e.case}")
    if profile.ta_match == "sent" or not profile.digest_agility:
        libdane = _libdane(e, profile.digest_agility)
        if libdane is not None:
            return libdane[0], f"{where}: {libdane[1]}"
    return rfc


_RANK = {AUTHENTICATED: 0, UNAUTHENTICATED: 1, OPPORTUNISTIC: 2, UNKNOWN: 3, DEFER: 4}


def _worst(items: Iterable[tuple[str, str]]) -> tuple[str, str]:
    return max(items, key=lambda x: _RANK[x[0]], default=(UNKNOWN, "no endpoint"))


# -- hosts ------------------------------------------------------------------------------------


def _decide(
    profile: Profile, host: HostJudgement, mx: Answer | None
) -> tuple[Prediction | None, str]:
    """What the DNS alone decides for ``profile`` at ``host`` (None: the endpoints decide),
    and a note to add to the endpoints' reasons."""
    h = host.host
    # An MX RRset bogus for this validator but not for us (a denial with more NSEC3
    # iterations than we check, which does not prove what it claims): it defers everything.
    if mx is not None and mx.status != Status.BOGUS:
        mx_status, mx_why = _seen(profile, mx)
        if mx_status == Status.BOGUS:
            return Prediction(DEFER, f"the MX RRset is bogus for this validator: {mx_why}"), ""
    if host.case == "address-bogus":  # none secure for us; the bogus ones may not be for it
        answers = [a for a in (h.a, h.aaaa) if a.status == Status.BOGUS or a.exists]
        seen = [_seen(profile, a) for a in answers]
        if seen and all(st == Status.INSECURE for st, _ in seen):
            why = next((w for _, w in seen if w), "")
            return Prediction(OPPORTUNISTIC, f"the host's addresses are insecure: {why}"), ""
    # The address records: no secure address, no TLSA lookup (RFC 7672 §2.2.3).
    if host.case in ("dane", "tlsa-insecure", "no-tlsa", "address-insecure", "tlsa-bogus"):
        addresses = [a for a in (h.a, h.aaaa) if a.exists]
        seen = [_seen(profile, a) for a in addresses]
        unknown = next((w for st, w in seen if st is None), None)
        if unknown is not None:  # e.g. NSEC3 iterations: it may see what we never checked
            return Prediction(UNKNOWN, f"the host's addresses: {unknown}"), ""
        secure = next((w for st, w in seen if st == Status.SECURE and w), None)
        if host.case == "address-insecure" and secure is not None:
            # e.g. a wildcard address proven with its NSEC3 iterations: this sender looks
            # the TLSA records up, which we did not (RFC 7672 §2.2.3)
            return Prediction(
                UNKNOWN, f"the host's addresses are secure for it ({secure}): it looks up "
                "TLSA records that the check did not"
            ), ""  # fmt: skip
        bogus = [w for st, w in seen if st == Status.BOGUS]
        if bogus and not any(st == Status.SECURE for st, _ in seen):
            return Prediction(DEFER, f"the host's addresses are bogus for it: {bogus[0]}"), ""
        if addresses and all(s == Status.INSECURE for s, _ in seen):
            why = next((w for _, w in seen if w), "")
            if why:
                return Prediction(OPPORTUNISTIC, f"the host's addresses are insecure: {why}"), ""
    if host.case in ("tlsa-insecure", "no-tlsa", "tlsa-bogus") and host.tlsa is not None:
        status, why = _seen(profile, host.tlsa.answer)
        if status is None:
            return Prediction(UNKNOWN, f"TLSA lookup: {why}"), ""
        if why:
            if status == Status.SECURE:
                return Prediction(OPPORTUNISTIC, f"no TLSA record, proven: {why}"), ""
            if status == Status.BOGUS:
                return Prediction(DEFER, f"TLSA lookup bogus for this validator: {why}"), ""
            return Prediction(OPPORTUNISTIC, f"TLSA lookup insecure: {why}"), ""
    if host.case != "dane":
        row_action = host.action.value if host.action is not None else UNKNOWN
        return Prediction(row_action, f"as RFC 7672 ({host.case})"), ""
    # DANE applies for us: a secure TLSA RRset.
    assert host.tlsa is not None
    status, why = _seen(profile, host.tlsa.answer)
    if status is None:
        return Prediction(UNKNOWN, f"TLSA lookup: {why}"), ""
    if status == Status.INSECURE:
        return Prediction(OPPORTUNISTIC, f"the TLSA RRset is insecure for this sender: {why}"), ""
    if mx is not None:
        mx_status, mx_why = _seen(profile, mx)
        if mx_status is None:
            return Prediction(UNKNOWN, f"MX lookup: {mx_why}"), ""
        if mx_status == Status.INSECURE:
            if profile.insecure_mx == "may":
                what = f" ({mx_why})" if mx_why else ""
                return Prediction(
                    OPPORTUNISTIC, f"the MX RRset is insecure{what}: the TLSA records are ignored"
                ), ""
            return None, "; the MX RRset is insecure, the host's TLSA is enforced (policy dane)"
    return None, ""


def predict(profile: Profile, host: HostJudgement, mx: Answer | None) -> Prediction:
    """What a sender of ``profile`` does with ``host`` (judged by :func:`judge.judge_host`),
    reached through the MX answer ``mx`` (None: a check of one MX host, no MX lookup)."""
    return predict_full(profile, host, mx)[0]


def predict_endpoints(
    profile: Profile, host: HostJudgement, mx: Answer | None
) -> list[Prediction | None]:
    """Per endpoint of ``host`` (in its order): what a sender of ``profile`` does there, or
    None when such a sender does not get this endpoint's chain (another key type)."""
    return predict_full(profile, host, mx)[1]


def predict_full(
    profile: Profile,
    host: HostJudgement,
    mx: Answer | None,
    memo: dict[Any, Any] | None = None,
) -> tuple[Prediction, list[Prediction | None]]:
    """:func:`predict` and :func:`predict_endpoints` at once (each endpoint judged once).
    ``memo``: shared by the calls for one host, so profiles with the same TLS knobs judge an
    endpoint once."""
    memo = {} if memo is None else memo
    # What DNS decides depends on the validator knobs alone, which endpoints a sender gets
    # on key_types alone: profiles that share them share the work (six profiles, four
    # validators, three key-type choices).
    validator = (profile.refused_algorithms, profile.nsec3_max_iterations)
    skey = ("seen", *validator)
    lifted = memo.get(skey)
    if lifted is None:
        lifted = memo[skey] = _as_seen(profile, host)
    host, seen_note = lifted
    dkey = ("decide", id(host), profile.insecure_mx, *validator)
    decision = memo.get(dkey)
    if decision is None:
        decided_, note_ = _decide(profile, host, mx)
        decision = memo[dkey] = (decided_, seen_note + note_)
    decided, note = decision
    rkey = ("reached", id(host), profile.key_types)
    reached = memo.get(rkey)
    if reached is None:
        reached = memo[rkey] = _reached(profile, host.endpoints)
    if decided is not None:
        ids = {id(e) for e in reached}
        return decided, [decided if id(e) in ids else None for e in host.endpoints]
    each: dict[int, tuple[str, str]] = {}
    for e in reached:
        key = (id(e), profile.ta_match, profile.digest_agility)
        got = memo.get(key)
        if got is None:
            got = memo[key] = _endpoint(profile, e)
        each[id(e)] = got
    judged = [e for e in reached if e.case != "unreachable-here"] or reached
    action, reason = _worst(each[id(e)] for e in judged)
    whole = Prediction(action, reason + note if action != UNKNOWN else reason)
    per: list[Prediction | None] = []
    for e in host.endpoints:
        got = each.get(id(e))
        per.append(None if got is None else Prediction(got[0], got[1] + note))
    return whole, per


def predict_domain(
    profile: Profile, domain: Judgement, mx: Answer | None, hosts: Sequence[Prediction]
) -> Prediction | None:
    """What a sender of ``profile`` does with the whole domain (or MX host): the worst of its
    ``hosts`` predictions (:func:`predict`, one per judged host), or, where the domain's own
    row decides (no host was judged: a bogus or failing MX lookup), that row's action unless
    the profile's validator sees the MX RRset otherwise. None: no sender action to predict
    (a null MX, a domain that does not exist, a bad name, or our side failing)."""
    if domain.case == "hosts":
        if not hosts:
            return None
        action, reason = _worst((p.action, p.reason) for p in hosts)
        return Prediction(action, reason)
    row_action = TABLE[domain.case].action
    if row_action is None:
        return None
    status, why = _seen(profile, mx)
    if domain.case == "mx-bogus" and status != Status.BOGUS:
        # The MX RRset is insecure (or unknown) for this validator: it goes on to MX hosts
        # whose names the bogus answer never gave us. "unknown" is the honest answer, not a
        # gap in the knobs (issue 16): what that sender does depends on the hosts alone.
        # Even when they all lie in the same refused zone (unsigned for it, so no DANE), it
        # delivers or defers as their servers take mail or not; a host in a zone secure for
        # it has TLSA that Postfix enforces under an insecure MX (authenticated, or defer on
        # a mismatch). Predicting it needs the hosts' addresses, TLSA and probes, which a
        # check does not look up from a bogus answer (RFC 7672 §2.1.1: its senders stop
        # here, and the answer carries no validated names).
        what = f" ({why})" if why else ""
        return Prediction(
            UNKNOWN, f"the MX RRset is not bogus for this validator{what}: it delivers to MX "
            "hosts we could not look up"
        )  # fmt: skip
    return Prediction(row_action.value, f"as RFC 7672 ({domain.case})")


def predict_all(host: HostJudgement, mx: Answer | None) -> dict[str, Prediction]:
    return {name: predict(p, host, mx) for name, p in PROFILES.items()}


def predict_host(profile: Profile | str, host_result: Any) -> str:
    """The action a check's :class:`dane_monitor.report.HostResult` records for ``profile``
    (``check`` fills ``HostResult.profiles`` from the evidence with :func:`predict`)."""
    name = profile if isinstance(profile, str) else profile.name
    return str(host_result.profiles[name]["action"])


__all__ = [
    "PROFILES",
    "Prediction",
    "Profile",
    "delivers",
    "predict",
    "predict_all",
    "predict_domain",
    "predict_endpoints",
    "predict_full",
    "predict_host",
]
