"""What a warm check remembers between cycles is never served for a changed input.

A monitor asks the same questions every cycle, so a few pure results are remembered: whole
DNS lookups made of cached answers (the validator), certificates parsed (by DER), TLSA
RRsets as records (by their contents), the address list per pair of address RRsets. Each
test here changes one input by as little as it can and shows the answer changes with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from dane_monitor import check
from dane_monitor import evidence as ev
from dane_monitor import judge as J
from dane_monitor import tlsa as T
from dane_monitor.lookup import validator as V
from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.lookup.stub import Reply, Server, StubClient
from dane_monitor.probe import ProbeResult

# -- certificates and TLSA matching ---------------------------------------------------------


def cert(name: str = "mx1.example") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(Encoding.DER)


def with_last_byte_flipped(der: bytes) -> bytes:
    """The same certificate with one bit of its signature changed: it still parses."""
    return der[:-1] + bytes([der[-1] ^ 1])


def test_a_changed_certificate_is_judged_afresh_not_from_the_parse_memo() -> None:
    leaf, other = cert(), cert()
    flipped = with_last_byte_flipped(leaf)
    assert x509.load_der_x509_certificate(flipped).public_key() is not None
    cert_record = T.TLSARecord(3, 0, 1, T.digest(leaf, 1))  # 3 0 1: the whole certificate
    key_record = T.TLSARecord(3, 1, 1, bytes.fromhex(T.spki_sha256(leaf)))
    names = ["mx1.example"]
    for _ in range(2):  # the second time round, every certificate is in the memo
        assert T.authenticate([cert_record], [leaf], names).authenticated
        # one bit of the signature: another certificate for a 3 0 1 record...
        changed = T.authenticate([cert_record], [flipped], names)
        assert not changed.authenticated and changed.failure == "tlsa-mismatch"
        # ...the same key for a 3 1 1 record
        assert T.authenticate([key_record], [flipped], names).authenticated
        # another key altogether
        assert not T.authenticate([key_record], [other], names).authenticated
        assert T.authenticate([key_record], [leaf], names).authenticated


def test_the_same_certificate_at_another_position_is_another_node() -> None:
    """A DANE-EE record matches the leaf only: the same DER sent second is an issuer."""
    leaf, other = cert(), cert()
    record = T.TLSARecord(3, 1, 1, bytes.fromhex(T.spki_sha256(leaf)))
    assert T.authenticate([record], [leaf, other], ["mx1.example"]).authenticated
    assert not T.authenticate([record], [other, leaf], ["mx1.example"]).authenticated
    assert T.authenticate([record], [leaf, other], ["mx1.example"]).authenticated


# -- the judge: TLSA RRsets as records ------------------------------------------------------


def tlsa_answer(*rdata: str) -> Answer:
    owner = "_25._tcp.mx1.example."
    rrset = dns.rrset.from_text(owner, 3600, "IN", "TLSA", *rdata)
    return Answer(dns.name.from_text(owner), 52, Status.SECURE, Kind.POSITIVE, rrset=rrset,
                  ttl=3600)  # fmt: skip


def a_answer(*addresses: str, name: str = "mx1.example.") -> Answer:
    rrset = dns.rrset.from_text(name, 3600, "IN", "A", *addresses)
    return Answer(dns.name.from_text(name), 1, Status.SECURE, Kind.POSITIVE, rrset=rrset,
                  ttl=3600)  # fmt: skip


def no_aaaa(name: str = "mx1.example.") -> Answer:
    return Answer(dns.name.from_text(name), 28, Status.SECURE, Kind.NODATA)


def host_with(tlsa: Answer, chain: list[bytes]) -> ev.Host:
    probe = ProbeResult("192.0.2.1", 25, "mx1.example")
    probe.connected = probe.starttls_offered = probe.tls_established = True
    probe.chain = list(chain)
    name = "mx1.example."
    return ev.Host(
        name, 25, 10, a_answer("192.0.2.1"), no_aaaa(), (name,),
        (ev.TLSALookup(name, "_25._tcp.mx1.example.", tlsa),),
        (ev.Endpoint("192.0.2.1", 25, probe),),
    )  # fmt: skip


def test_a_tlsa_rrset_changed_by_one_digit_is_judged_afresh() -> None:
    leaf = cert()
    good = T.spki_sha256(leaf)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    for _ in range(2):  # the second time round, both RRsets' records are remembered
        ok = J.judge_host(host_with(tlsa_answer(f"3 1 1 {good}"), [leaf]), True)
        assert ok.case == "dane" and ok.endpoints[0].case == "authenticated"
        changed = J.judge_host(host_with(tlsa_answer(f"3 1 1 {bad}"), [leaf]), True)
        assert changed.endpoints[0].case == "mismatch"
        assert [r.to_text() for r in changed.records] == [f"3 1 1 {bad}"]
        # a record of unknown usage beside it: one more record, and it is unusable
        more = J.judge_host(host_with(tlsa_answer(f"3 1 1 {good}", f"1 1 1 {good}"), [leaf]), True)
        assert len(more.records) == 2 and len(more.usable) == 1


# -- the checker: address lists -------------------------------------------------------------


def test_a_changed_address_rrset_gives_its_own_addresses() -> None:
    for _ in range(2):
        assert check._addresses(a_answer("192.0.2.1"), no_aaaa()) == ["192.0.2.1"]
        assert check._addresses(a_answer("192.0.2.2"), no_aaaa()) == ["192.0.2.2"]
        assert check._addresses(a_answer("192.0.2.1", "192.0.2.3"), no_aaaa()) == [
            "192.0.2.1",
            "192.0.2.3",
        ]
    failed = Answer(dns.name.from_text("mx1.example."), 1, Status.BOGUS, Kind.ERROR)
    assert check._addresses(failed, no_aaaa()) == []


def test_each_answer_is_reported_as_itself_not_from_the_dns_info_memo() -> None:
    from dane_monitor.conclusion import dns_info

    for _ in range(2):
        one, two = a_answer("192.0.2.1"), a_answer("192.0.2.2")
        assert dns_info(one).records == ["192.0.2.1"]
        assert dns_info(two).records == ["192.0.2.2"]
        assert dns_info(one) is dns_info(one)  # the same answer object: made once
        bogus = Answer(dns.name.from_text("mx1.example."), 1, Status.BOGUS, Kind.ERROR,
                       reason="signature-expired")  # fmt: skip
        assert (dns_info(bogus).status, dns_info(bogus).reason) == ("bogus", "signature-expired")


def test_a_changed_tlsrpt_record_is_read_afresh() -> None:
    from dane_monitor import tlsrpt_record

    def txt(text: str) -> Answer:
        name = "_smtp._tls.example."
        rrset = dns.rrset.from_text(name, 3600, "IN", "TXT", text)
        return Answer(dns.name.from_text(name), 16, Status.SECURE, Kind.POSITIVE, rrset=rrset,
                      ttl=3600)  # fmt: skip

    for _ in range(2):
        good = txt('"v=TLSRPTv1; rua=mailto:r@example"')
        bad = txt('"v=TLSRPTv1; rua=ftp://r.example"')
        assert tlsrpt_record.to_dict(good)["state"] == "valid"
        assert tlsrpt_record.to_dict(bad)["state"] == "invalid"
        assert tlsrpt_record.to_dict(good)["rua"] == ["mailto:r@example"]


def test_a_changed_certificate_is_described_by_its_own_subject() -> None:
    from dane_monitor.conclusion import _subject

    for _ in range(2):
        for name in ("mx1.example", "mx2.example"):
            parsed = x509.load_der_x509_certificate(cert(name))
            assert _subject(parsed) == f"CN={name}"


# -- the validator: whole lookups -----------------------------------------------------------


class Scripted(V.Validator):
    """A validator whose single answers come from ``self.zone`` (name -> A address or CNAME
    target), counting how often it is asked; cache lifetimes follow the TTLs given
    (``self.ttls`` per name, else ``ttl``); a name in ``self.gates`` is answered once its
    event is set, with what the zone says then."""

    def __init__(self, ttl: int = 300, max_answers: int = 100_000) -> None:
        super().__init__(StubClient(Server("127.0.0.1", 9)), max_answers=max_answers)
        self.zone: dict[str, str] = {}
        self.ttls: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.asked = 0
        self.ttl = ttl

    async def _single_uncached(self, qname, qtype, deadline, walk, budget):  # type: ignore[no-untyped-def]
        self.asked += 1
        name = qname.to_text()
        gate = self.gates.pop(name, None)
        if gate is not None:
            await gate.wait()
        value = self.zone[name]
        ttl = self.ttls.get(name, self.ttl)
        rdtype = "CNAME" if value.endswith(".") else "A"
        rrset = dns.rrset.from_text(qname, ttl, "IN", rdtype, value)
        return Answer(qname, qtype, Status.SECURE, Kind.POSITIVE, rrset=rrset, ttl=ttl)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(V, "time", SimpleNamespace(monotonic=c.monotonic, time=lambda: 1e9))
    return c


def addresses(answer: Answer) -> list[str]:
    return [r.to_text() for r in answer.rrset] if answer.rrset is not None else []


def test_a_remembered_lookup_lasts_exactly_as_long_as_its_cached_answers(clock: Clock) -> None:
    v = Scripted(ttl=300)
    v.zone = {"mx1.example.": "192.0.2.1"}

    async def run() -> None:
        first = await v.lookup("mx1.example.", "A")
        assert addresses(first) == ["192.0.2.1"] and v.asked == 1
        v.zone["mx1.example."] = "192.0.2.2"  # changed in DNS, but still cached here
        clock.now += 299
        assert await v.lookup("mx1.example.", "A") is first
        assert v.cached("mx1.example.", "A") is first and v.asked == 1
        clock.now += 1  # the TTL is over: asked again, the new address
        assert v.cached("mx1.example.", "A") is None
        assert addresses(await v.lookup("mx1.example.", "A")) == ["192.0.2.2"]
        assert v.asked == 2

    asyncio.run(run())


def test_a_cname_chain_is_not_remembered_past_any_of_its_links(clock: Clock) -> None:
    v = Scripted(ttl=300)
    v.zone = {"mail.example.": "mx1.example.", "mx1.example.": "192.0.2.1"}
    v.ttls = {"mx1.example.": 10}  # the CNAME lasts 300 s, its target's address 10 s

    async def run() -> None:
        name = dns.name.from_text("mail.example.")
        first = await v.lookup(name, dns.rdatatype.A)
        assert addresses(first) == ["192.0.2.1"] and len(first.cnames) == 1
        v.zone["mx1.example."] = "192.0.2.7"
        clock.now += 9
        assert await v.lookup(name, dns.rdatatype.A) is first
        clock.now += 1
        again = await v.lookup(name, dns.rdatatype.A)
        assert addresses(again) == ["192.0.2.7"] and len(again.cnames) == 1
        assert v.asked == 3  # the CNAME was still cached: only the address asked again

    asyncio.run(run())


def test_a_lookup_whose_answer_a_racing_lookup_replaced_is_not_remembered(
    clock: Clock,
) -> None:
    """Two lookups of one name at once both ask; the one answered last replaces the other's
    answer in the cache, and the other's lookup must not outlive it."""
    v = Scripted(ttl=300)
    v.zone = {"mx1.example.": "192.0.2.1"}
    name = dns.name.from_text("mx1.example.")

    async def run() -> None:
        slow = asyncio.Event()
        v.gates["mx1.example."] = slow
        first = asyncio.ensure_future(v.lookup("mx1.example.", "A"))  # asks, waits at the gate
        await asyncio.sleep(0)
        fast = await v.lookup(name, "A")  # asks too, answered at once
        assert addresses(fast) == ["192.0.2.1"]
        v.zone["mx1.example."] = "192.0.2.2"
        slow.set()
        assert addresses(await first) == ["192.0.2.2"]  # answered last: in the cache now
        assert addresses(await v.lookup(name, "A")) == ["192.0.2.2"]
        assert v.asked == 2

    asyncio.run(run())


def test_answers_dropped_from_a_full_cache_drop_the_lookups_made_of_them(clock: Clock) -> None:
    v = Scripted(ttl=300, max_answers=1)
    v.zone = {"mx1.example.": "192.0.2.1", "mx2.example.": "192.0.2.2"}

    async def run() -> None:
        await v.lookup("mx1.example.", "A")
        v.zone["mx1.example."] = "192.0.2.9"
        await v.lookup("mx2.example.", "A")  # the cache holds one answer: mx1's goes
        assert v.cached("mx1.example.", "A") is None
        assert addresses(await v.lookup("mx1.example.", "A")) == ["192.0.2.9"]

    asyncio.run(run())


def test_a_name_object_is_remembered_as_that_object_only(clock: Clock) -> None:
    """The memo keys a Name by identity: an equal Name made afresh is a lookup of its own
    (and finds the same cached answers), a str by its text."""
    v = Scripted(ttl=300)
    v.zone = {"mx1.example.": "192.0.2.1"}

    async def run() -> None:
        one = dns.name.from_text("mx1.example.")
        first = await v.lookup(one, "A")
        other = await v.lookup(dns.name.from_text("mx1.example."), "A")
        assert addresses(other) == addresses(first) and v.asked == 1
        assert await v.lookup("MX1.example.", "A") is not first
        assert v.asked == 1

    asyncio.run(run())


# -- the resolver-mode validator: answers read from the stub's cached replies ---------------


class FakeResolver(StubClient):
    """Answers A questions with AD set and one RRSIG of the given validity; a reply stays
    the same object until ``fresh()`` (as the stub's cache hands out the one it holds)."""

    def __init__(self, inception: int, expiration: int) -> None:
        super().__init__(Server("127.0.0.1", 9))
        self.dates = (inception, expiration)
        self.address = "192.0.2.1"
        self.replies: dict[tuple[str, int], Any] = {}

    def fresh(self) -> None:
        self.replies.clear()
        self.cache._entries.clear()

    async def query(self, name, rdtype, *, deadline=None):  # type: ignore[no-untyped-def, override]
        qname = dns.name.from_text(name) if isinstance(name, str) else name
        key = (qname.to_text().lower(), int(dns.rdatatype.RdataType.make(rdtype)))
        if key not in self.replies:
            query = dns.message.make_query(qname, rdtype)
            msg = dns.message.make_response(query)
            msg.flags |= dns.flags.AD
            msg.answer.append(dns.rrset.from_text(qname, 300, "IN", "A", self.address))
            inception, expiration = self.dates
            msg.answer.append(dns.rrset.from_text(
                qname, 300, "IN", "RRSIG",
                f"A 13 2 300 {expiration} {inception} 12345 example. " + "AAAA" * 16,
            ))  # fmt: skip
            self.replies[key] = Reply(msg)
            qtype = int(dns.rdatatype.RdataType.make(rdtype))
            self.cache.put((qname, qtype, self.checking_disabled), self.replies[key])
        return self.replies[key]


def test_a_resolver_mode_answer_is_read_again_when_a_signature_date_passes() -> None:
    """Resolver mode remembers an answer per cached reply, but a signature that expires
    (or comes into force) while the reply is still cached changes the verdict at once."""
    clock = [1_000_000.0]
    client = FakeResolver(inception=999_000, expiration=1_000_100)
    # anchored elsewhere: the expiry watch has no DS/DNSKEY chain to fetch for example.
    anchors = parse("elsewhere.invalid. 3600 IN DS 1 13 2 " + "00" * 32)
    v = V.ResolverValidator(client, anchors, now=lambda: clock[0])

    async def run() -> None:
        first = await v.lookup("mx1.example.", "A")
        assert first.status == Status.SECURE and first.expiration == 1_000_100
        assert await v.lookup("mx1.example.", "A") is first
        assert v.cached("mx1.example.", "A") is first
        clock[0] = 1_000_100.0  # the last second the signature is valid
        assert (await v.lookup("mx1.example.", "A")).status == Status.SECURE
        clock[0] = 1_000_101.0  # expired: the same cached reply is bogus now
        assert v.cached("mx1.example.", "A") is None
        late = await v.lookup("mx1.example.", "A")
        assert (late.status, late.reason) == (Status.BOGUS, "signature-expired")
        # a signature not yet valid, then valid
        clock[0] = 1_000_000.0
        client.dates = (1_000_050, 1_000_500)
        client.fresh()
        early = await v.lookup("mx1.example.", "A")
        assert (early.status, early.reason) == (Status.BOGUS, "signature-not-yet-valid")
        clock[0] = 1_000_050.0
        assert (await v.lookup("mx1.example.", "A")).status == Status.SECURE

    asyncio.run(run())


def test_a_resolver_mode_answer_follows_a_new_reply() -> None:
    clock = [1_000_000.0]
    client = FakeResolver(inception=999_000, expiration=2_000_000)
    anchors = parse("elsewhere.invalid. 3600 IN DS 1 13 2 " + "00" * 32)
    v = V.ResolverValidator(client, anchors, now=lambda: clock[0])

    async def run() -> None:
        first = await v.lookup("mx1.example.", "A")
        assert addresses(first) == ["192.0.2.1"]
        # the same cached reply (names compare without case), the name as asked
        other = await v.lookup("MX1.example.", "A")
        assert other.qname.to_text() == "MX1.example." and addresses(other) == ["192.0.2.1"]
        assert await v.lookup("mx1.example.", "A") is not other
        client.address = "192.0.2.2"  # the resolver's cache still holds the old reply
        assert addresses(await v.lookup("mx1.example.", "A")) == ["192.0.2.1"]
        client.fresh()  # its TTL is over: a new reply
        assert v.cached("mx1.example.", "A") is None
        assert addresses(await v.lookup("mx1.example.", "A")) == ["192.0.2.2"]

    asyncio.run(run())


# -- the nameserver survey: replies parsed and read once per content --------------------------


def _signed_reply(query: dns.message.Message, text: str, *, expires_in: int) -> tuple:
    """A reply to ``query`` with an A RRset signed by a fresh zone key, and that key."""
    import time as _time

    import dns.dnssec

    zone = dns.name.from_text("example.")
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256)
    keys = dns.rrset.from_rdata(zone, 3600, dnskey)
    rrset = dns.rrset.from_text("mx1.example.", 3600, "IN", "A", text)
    now = int(_time.time())
    sig = dns.dnssec.sign(rrset, key, zone, dnskey, inception=now - 60,
                          expiration=now + expires_in)  # fmt: skip
    reply = dns.message.make_response(query)
    reply.answer.append(rrset)
    reply.answer.append(dns.rrset.from_rdata(rrset.name, 3600, sig))
    return reply, keys


def test_a_reply_is_parsed_once_but_never_taken_for_another_question() -> None:
    from dane_monitor import nameservers as N

    q1, rest1 = N._query(dns.name.from_text("mx1.example."), "A")
    q2, rest2 = N._query(dns.name.from_text("mx2.example."), "A")
    raw = dns.message.make_response(q1).to_wire()
    wire1 = raw[:2] + rest1
    first = N._parse(q1, wire1, raw)
    assert N._parse(q1, wire1, raw) is first  # the same bytes: the same message
    with pytest.raises(dns.exception.FormError):  # the same bytes answer mx1, not mx2
        N._parse(q2, raw[:2] + rest2, raw)
    with pytest.raises(dns.exception.FormError):  # another ID
        N._parse(q1, bytes([raw[0] ^ 1, raw[1]]) + rest1, raw)


def test_a_servers_answer_is_read_again_when_its_reply_or_the_time_changes() -> None:
    import time as _time

    from dane_monitor import nameservers as N

    zone, qname = dns.name.from_text("example."), dns.name.from_text("mx1.example.")
    q, _ = N._query(qname, "A")
    good, keys = _signed_reply(q, "192.0.2.1", expires_in=3600)
    now = _time.time()
    first = N._answer(zone, qname, "A", good, keys, now)
    assert (first.records, first.signatures_ok) == (("192.0.2.1",), True)
    assert N._answer(zone, qname, "A", good, keys, now) is first
    # The same RRSIG over other records (a stale or forged copy): read, and it fails.
    forged = dns.message.make_response(q)
    forged.answer.append(dns.rrset.from_text(qname, 3600, "IN", "A", "192.0.2.66"))
    forged.answer.append(good.answer[1])
    bad = N._answer(zone, qname, "A", forged, keys, now)
    assert (bad.records, bad.signatures_ok) == (("192.0.2.66",), False)
    # Past the signature's expiry, the remembered success is not served.
    later = N._answer(zone, qname, "A", good, keys, now + 7200)
    assert later.signatures_ok is False


def test_each_answer_is_planned_as_itself_not_from_the_plan_memo() -> None:
    from dane_monitor import nameservers as N

    zone = dns.name.from_text("example.")
    for _ in range(2):
        one, two = a_answer("192.0.2.1"), a_answer("192.0.2.2")
        one.signer, two.signer = zone, zone
        assert N._plan_entry(one) == ("example.", ("mx1.example.", "A", ("192.0.2.1",)))
        assert N._plan_entry(two) == ("example.", ("mx1.example.", "A", ("192.0.2.2",)))
        bogus = Answer(dns.name.from_text("mx1.example."), 1, Status.BOGUS, Kind.ERROR)
        assert N._plan_entry(bogus) is None  # no known zone: not surveyed
