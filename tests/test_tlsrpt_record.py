"""The TLS-RPT policy record (RFC 8460 §3, issue 17): the grammar on good and bad records
from the RFC, §3's selection over a TXT RRset, and the check against the world's
TLSRPT_SCENARIOS: a domain's record is read beside its MX RRset, reported in the JSON and
the text, and never changes the RFC 7672 verdict; ``--mx`` host mode does not ask for it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from worldtools import check_reaches_expectation, world_args

from dane_monitor import tlsrpt_record as R
from dane_monitor.cli import main
from dane_monitor.conclusion import conclude
from dane_monitor.evidence import Domain
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.world import World
from dane_monitor.world.scenarios import TLSRPT_SCENARIOS

# -- the grammar ------------------------------------------------------------------------------

GOOD = {
    # RFC 8460 §3.1's examples
    "v=TLSRPTv1;rua=mailto:reports@example.com": ("mailto:reports@example.com",),
    "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt": (
        "https://reporting.example.com/v1/tlsrpt",
    ),
    # several URIs, whitespace around the delimiters, a trailing ';'
    "v=TLSRPTv1 ; rua=mailto:a@example.com , https://r.example.com/x ;": (
        "mailto:a@example.com",
        "https://r.example.com/x",
    ),
    # an unknown extension field (the grammar allows it; senders ignore it)
    "v=TLSRPTv1; rua=mailto:a@example.com; ext_1.x=some-value": ("mailto:a@example.com",),
    # an encoded comma in a URI, a port, a query, an IPv6 literal
    "v=TLSRPTv1; rua=mailto:tls%2Crpt@example.com?subject=x": (
        "mailto:tls%2Crpt@example.com?subject=x",
    ),
    "v=TLSRPTv1; rua=https://[2001:db8::1]:8443/tlsrpt": ("https://[2001:db8::1]:8443/tlsrpt",),
    # scheme names are case-insensitive (RFC 3986 §3.1)
    "v=TLSRPTv1; rua=MAILTO:a@example.com": ("MAILTO:a@example.com",),
}

BAD = {
    "v=TLSRPTv1": "no rua field",
    "v=TLSRPTv1;": "no rua field",
    "v=TLSRPTv1; ext=1": "no rua field",
    "v=TLSRPTv1 rua=mailto:a@example.com": "not followed by ';'",
    "v=TLSRPTv10; rua=mailto:a@example.com": "not followed by ';'",
    "v=TLSRPTv2; rua=mailto:a@example.com": "does not begin with v=TLSRPTv1",
    "rua=mailto:a@example.com; v=TLSRPTv1": "does not begin with v=TLSRPTv1",
    "v=tlsrptv1; rua=mailto:a@example.com": "does not begin with v=TLSRPTv1",
    "v=TLSRPTv1; RUA=mailto:a@example.com": "no rua field",  # %s"rua=": case-sensitive
    "v=TLSRPTv1; rua=": "rua field is empty",
    "v=TLSRPTv1; rua=mailto:a@example.com,": "empty URI",
    "v=TLSRPTv1;; rua=mailto:a@example.com": "empty field",
    "v=TLSRPTv1; rua=http://reports.example.com/": "scheme http",
    "v=TLSRPTv1; rua=ftp://reports.example.com/": "scheme ftp",
    "v=TLSRPTv1; rua=reports@example.com": "no scheme",
    "v=TLSRPTv1; rua=mailto:": "names no mail address",
    "v=TLSRPTv1; rua=mailto:example.com": "names no mail address",
    "v=TLSRPTv1; rua=https://": "names no host",
    "v=TLSRPTv1; rua=https:/path-only": "names no host",
    "v=TLSRPTv1; rua=mailto:a!b@example.com": "percent-encode",  # '!' MUST be encoded
    "v=TLSRPTv1; rua=mailto:a@example.com x": "percent-encode",
    "v=TLSRPTv1; rua=mailto:ä@example.com": "percent-encode",
    "v=TLSRPTv1; rua=mailto:a@example.com; novalue": "not name=value",
    "v=TLSRPTv1; rua=mailto:a@example.com; _x=1": "not a valid extension name",
    "v=TLSRPTv1; rua=mailto:a@example.com; " + "x" * 33 + "=1": "not a valid extension name",
    "v=TLSRPTv1; rua=mailto:a@example.com; x=": "is empty",
    "v=TLSRPTv1; rua=mailto:a@example.com; x=a=b": "'='",
}


@pytest.mark.parametrize("text", GOOD)
def test_good_records_parse(text):
    record = R.parse(text)
    assert record.rua == GOOD[text]
    assert R.policy([text]).state == "valid"


def test_unknown_fields_are_kept_apart_from_rua():
    record = R.parse("v=TLSRPTv1; rua=mailto:a@example.com; ext_1.x=some-value")
    assert record.extensions == (("ext_1.x", "some-value"),)


@pytest.mark.parametrize("text", BAD)
def test_bad_records_are_refused_with_the_reason(text):
    with pytest.raises(R.RecordError, match=BAD[text].replace("(", r"\(")):
        R.parse(text)


def test_selection_over_a_txt_rrset():
    good = "v=TLSRPTv1; rua=mailto:a@example.com"
    # records that do not begin with v=TLSRPTv1; are discarded (SPF, verification tokens)
    assert R.policy(["v=spf1 -all", good, "google-site-verification=x"]).state == "valid"
    assert R.policy([]).state == "missing"
    assert R.policy(["v=spf1 -all"]).state == "missing"
    twice = R.policy([good, "v=TLSRPTv1; rua=mailto:b@example.com"])
    assert twice.state == "invalid" and "2 TXT records" in twice.problem
    # a record meant as TLS-RPT that senders discard is reported, not called missing
    wrong_case = R.policy(["v=tlsrptv1; rua=mailto:a@example.com"])
    assert wrong_case.state == "invalid" and "discard" in wrong_case.problem
    broken = R.policy(["v=TLSRPTv1; rua=http://x.example.com/"])
    assert broken.state == "invalid" and "http" in broken.problem


def _txt(domain: str, *texts: bytes | tuple[bytes, ...], status=Status.SECURE) -> Answer:
    name = dns.name.from_text(f"_smtp._tls.{domain}")
    rrset = dns.rrset.RRset(name, 1, dns.rdatatype.TXT)
    for t in texts:
        strings = t if isinstance(t, tuple) else (t,)
        text = " ".join(f'"{s.decode("latin-1")}"' for s in strings)
        rrset.add(dns.rdata.from_text(1, dns.rdatatype.TXT, text))
    return Answer(name, int(dns.rdatatype.TXT), status, Kind.POSITIVE, rrset=rrset, ttl=3600)


def test_strings_of_one_record_are_joined_without_spaces():
    answer = _txt("example.com.", (b"v=TLSRPTv1;", b"rua=mailto:a@example.com"))
    assert R.txt_texts(answer) == ["v=TLSRPTv1;rua=mailto:a@example.com"]
    assert R.from_answer(answer).state == "valid"


def test_failed_lookups_are_unreadable_and_denials_missing():
    name = dns.name.from_text("_smtp._tls.example.com.")
    bogus = Answer(name, 16, Status.BOGUS, Kind.ERROR, reason="bad-signature", detail="x")
    assert R.from_answer(bogus).state == "unreadable"
    nodata = Answer(name, 16, Status.SECURE, Kind.NODATA)
    nxdomain = Answer(name, 16, Status.INSECURE, Kind.NXDOMAIN)
    assert R.from_answer(nodata).state == R.from_answer(nxdomain).state == "missing"


# -- findings from synthetic evidence ---------------------------------------------------------


def _mx(domain: str) -> Answer:
    name = dns.name.from_text(domain)
    rrset = dns.rrset.from_text(name, 3600, "IN", "MX", f"10 mx1.{domain}")
    return Answer(name, int(dns.rdatatype.MX), Status.SECURE, Kind.POSITIVE, rrset=rrset)


def _codes(domain: str, tlsrpt: Answer, **kw) -> dict[str, str]:
    d = Domain(domain, False, "local", 0.0, 0.0, mx=_mx(domain), tlsrpt=tlsrpt, **kw)
    result = conclude(d)
    assert result.tlsrpt is not None
    return {f.code: f.severity.value for f in result.findings if f.code.startswith("tlsrpt")}


def test_each_state_has_its_finding():
    d = "example.com."
    name = dns.name.from_text(f"_smtp._tls.{d}")
    assert _codes(d, _txt(d, b"v=TLSRPTv1; rua=mailto:a@example.com")) == {}
    assert _codes(d, Answer(name, 16, Status.SECURE, Kind.NODATA)) == {"tlsrpt-missing": "info"}
    bad = _txt(d, b"v=TLSRPTv1; rua=ftp://x.example.com/")
    assert _codes(d, bad) == {"tlsrpt-invalid": "warning"}
    bogus = Answer(name, 16, Status.BOGUS, Kind.ERROR, reason="bad-signature")
    assert _codes(d, bogus) == {"tlsrpt-unreadable": "warning"}
    servfail = Answer(name, 16, Status.INDETERMINATE, Kind.ERROR, reason="servfail")
    # the domain's servers fail (our resolver answers a known-good name): say so ...
    assert _codes(d, servfail, resolver_ok=True) == {"tlsrpt-unreadable": "warning"}
    # ... but not when our own resolver fails: nothing is known about the domain
    assert _codes(d, servfail, resolver_ok=False) == {}


def test_a_domain_without_mail_gets_no_tlsrpt_finding():
    d = "nomail.example."
    name = dns.name.from_text(d)
    null = Answer(name, 15, Status.SECURE, Kind.POSITIVE,
                  rrset=dns.rrset.from_text(name, 3600, "IN", "MX", "0 ."))  # fmt: skip
    txt = Answer(dns.name.from_text(f"_smtp._tls.{d}"), 16, Status.SECURE, Kind.NODATA)
    result = conclude(Domain(d, False, "local", 0.0, 0.0, mx=null, tlsrpt=txt))
    assert not [f for f in result.findings if f.code.startswith("tlsrpt")]


# -- the world ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    w = World(TLSRPT_SCENARIOS)
    with w.running():
        yield w


@pytest.fixture(scope="module")
def anchor(world, tmp_path_factory) -> Path:
    return world.write_trust_anchor(tmp_path_factory.mktemp("tlsrpt-c2") / "anchor.ds")


@pytest.mark.parametrize("scenario", TLSRPT_SCENARIOS, ids=[s.name for s in TLSRPT_SCENARIOS])
def test_the_check_reads_the_policy_and_keeps_the_verdict(world, anchor, scenario, capsys):
    out = check_reaches_expectation(world, scenario, anchor, capsys)
    t = out["tlsrpt"]
    assert t["name"] == f"_smtp._tls.{scenario.name}.example."
    codes = {f["code"] for f in out["findings"] if f["code"].startswith("tlsrpt-")}
    if scenario.name in ("tlsrpt-good", "tlsrpt-split"):
        assert (t["state"], t["status"], codes) == ("valid", "secure", set())
        assert t["rua"][0] == "mailto:tlsrpt@reports.example"
    if scenario.name == "tlsrpt-good":
        assert t["rua"] == ["mailto:tlsrpt@reports.example", "https://reports.example/v1/tlsrpt"]
    if scenario.name == "tlsrpt-bad":
        assert (t["state"], t["record"], t["rua"]) == ("invalid", None, [])
        assert t["records"] == ["v=TLSRPTv1; rua=http://reports.example/tlsrpt"]
        assert "http" in t["problem"]
    if scenario.name == "tlsrpt-twice":
        assert t["state"] == "invalid" and len(t["records"]) == 2
    if scenario.name == "tlsrpt-bogus":
        assert (t["state"], t["status"]) == ("unreadable", "bogus")
    if scenario.name == "tlsrpt-none":
        assert (t["state"], t["record"]) == ("missing", None)
    assert len(codes) <= 1


def test_the_text_shows_the_policy(world, anchor, capsys):
    domain = world.domains["tlsrpt-good"].name
    main(["check", domain, *world_args(world, anchor)])
    text = capsys.readouterr().out
    assert (
        f"TLS-RPT _smtp._tls.{domain} (valid): mailto:tlsrpt@reports.example, "
        "https://reports.example/v1/tlsrpt"
    ) in text
    main(["check", world.domains["tlsrpt-bad"].name, *world_args(world, anchor)])
    text = capsys.readouterr().out
    assert "tlsrpt-invalid" in text and "http:" in text


def test_host_mode_does_not_ask_for_it(world, anchor, capsys):
    domain = world.domains["tlsrpt-bad"]
    host = domain.hosts[0].mx_name
    code = main(["check", "--json", "--mx", host, *world_args(world, anchor)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and "tlsrpt" not in out
    assert not [f for f in out["findings"] if f["code"].startswith("tlsrpt")]


def test_the_lookup_runs_beside_the_mx_lookup(world, anchor):
    """One more lookup a domain check, started with the MX lookup, not after the hosts."""
    from dane_monitor.settings import make_checker

    started: list[str] = []
    host, port = world.dns_address
    checker = make_checker(resolver=f"{host}:{port}", trust_anchor=anchor,
                           connect_port=world.smtp_port)  # fmt: skip
    lookup = checker.validator.lookup

    async def spy(name, rdtype, **kw):
        started.append(f"{name} {dns.rdatatype.to_text(rdtype)}")
        return await lookup(name, rdtype, **kw)

    checker.validator.lookup = spy  # type: ignore[method-assign]  # a spy on the instance
    result = asyncio.run(checker.check_domain(world.domains["tlsrpt-good"].name))
    assert result.tlsrpt is not None and result.tlsrpt["state"] == "valid"
    first_two = {s.split()[1] for s in started[:2]}
    assert first_two == {"MX", "TXT"}, started
    assert sum(s.endswith(" TXT") for s in started) == 1, started


def test_a_name_too_long_for_the_prefix_is_not_asked_and_not_fatal():
    """A 250-character domain is valid, ``_smtp._tls.`` before it is not a DNS name: the
    check goes on without the TLS-RPT lookup (no ``tlsrpt`` key) instead of failing."""
    from dane_monitor.check import Checker

    asked: list[int] = []

    class Denying:
        async def lookup(self, name, rdtype, **kw) -> Answer:
            asked.append(int(rdtype))
            return Answer(name, int(rdtype), Status.SECURE, Kind.NXDOMAIN)

    domain = ".".join(["a" * 63] * 3) + "." + "b" * 50 + ".example"
    assert len(domain) == 250
    result = asyncio.run(Checker(Denying()).check_domain(domain))  # type: ignore[arg-type]  # a stand-in validator
    assert asked == [int(dns.rdatatype.MX)]
    assert result.tlsrpt is None and "tlsrpt" not in result.to_dict()
    assert [f.code for f in result.findings] == ["domain-not-found"]
