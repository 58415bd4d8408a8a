"""The validator fed hostile but well-formed DNS: it answers with a status, never raises.

A fake server answers every question with a message hypothesis draws from pieces that
make validators trip: RRSIGs with nonsense fields, NSEC/NSEC3 with odd owners and
parameters, CNAME loops, records for other names, any rcode and flags.
"""

from __future__ import annotations

import asyncio
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lookup_stub import FakeDNS

from dane_monitor.lookup.anchors import parse
from dane_monitor.lookup.answer import Answer, Status
from dane_monitor.lookup.stub import StubClient
from dane_monitor.lookup.validator import Validator

ANCHOR = parse(". 3600 IN DS 20326 8 2 " + "ab" * 32)
NAMES = [".", "example.", "mail.example.", "_25._tcp.mail.example.", "*.example.", "a.b.example."]
SIG = "{cov} {alg} {labels} 300 {exp} {inc} {tag} {signer} " + "AAAA" * 16

records = st.one_of(
    st.builds(lambda n, a: (n, "A", f"192.0.2.{a}"), st.sampled_from(NAMES), st.integers(1, 254)),
    st.builds(lambda n, t: (n, "CNAME", t), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.builds(lambda n: (n, "TLSA", "3 1 1 " + "00" * 32), st.sampled_from(NAMES)),
    st.builds(
        lambda n, cov, alg, labels, exp, inc, tag, signer: (
            n, "RRSIG",
            SIG.format(cov=cov, alg=alg, labels=labels, exp=exp, inc=inc, tag=tag, signer=signer),
        ),
        st.sampled_from(NAMES), st.sampled_from(["A", "CNAME", "TLSA", "DNSKEY", "DS", "SOA",
                                                 "NSEC", "NSEC3"]),
        st.sampled_from([1, 8, 13, 15, 200]), st.integers(0, 255),
        st.sampled_from(["20300101000000", "20000101000000"]),
        st.sampled_from(["20000101000000", "20300101000000"]), st.integers(0, 65535),
        st.sampled_from(NAMES),
    ),
    st.builds(lambda n, nxt: (n, "NSEC", f"{nxt} A RRSIG NSEC"), st.sampled_from(NAMES),
              st.sampled_from(NAMES)),
    st.builds(
        lambda label, it, flags: (f"{label}.example.", "NSEC3",
                                  f"1 {flags} {it} - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A RRSIG"),
        st.sampled_from(["0p9mhaveqvm6t7vbl5lop2u3t2rp3tom", "zzzz", "00000000"]),
        st.integers(0, 3000), st.integers(0, 1),
    ),
    st.builds(lambda n: (n, "SOA", "ns. h. 1 2 3 4 30"), st.sampled_from(NAMES)),
    st.builds(lambda n, ds: (n, "DS", f"{ds} 8 2 " + "ab" * 32), st.sampled_from(NAMES),
              st.integers(0, 65535)),
    st.builds(lambda n, f: (n, "DNSKEY", f"{f} 3 8 AwEAAb" + "A" * 40), st.sampled_from(NAMES),
              st.sampled_from([256, 257, 0])),
)  # fmt: skip


def build(query: dns.message.Message, answer, authority, rcode, ad) -> bytes:
    r = dns.message.make_response(query)
    r.set_rcode(rcode)
    if ad:
        r.flags |= dns.flags.AD
    for section, rows in ((r.answer, answer), (r.authority, authority)):
        for name, rdtype, text in rows:
            try:
                section.append(dns.rrset.from_text(name, 300, "IN", rdtype, text))
            except Exception:
                continue  # a row dnspython itself refuses is simply left out
    return r.to_wire()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer=st.lists(records, max_size=6),
    authority=st.lists(records, max_size=6),
    rcode=st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL]),
    ad=st.booleans(),
    qtype=st.sampled_from(["A", "TLSA", "MX", "DS"]),
)
def test_validator_never_raises_on_hostile_answers(answer, authority, rcode, ad, qtype):
    def respond(q, raw):
        return [build(q, answer, authority, rcode, ad)]

    async def run() -> Answer:
        async with FakeDNS(respond, respond) as fake:
            v = Validator(StubClient(fake.server, timeout=0.5, tries=1), ANCHOR)
            return await v.lookup("_25._tcp.mail.example.", qtype, deadline=time.monotonic() + 3)

    result = asyncio.run(run())
    # Nothing here is signed by a key chaining to the anchor: never secure.
    assert result.status in (Status.BOGUS, Status.INDETERMINATE, Status.INSECURE)
    assert result.status != Status.INSECURE or result.reason in ("no-trust-anchor",)
