"""TLS-RPT reports (RFC 8460, issue 17) parsed and counted (dane_monitor.tlsrpt): the RFC's own
example, reports shaped as large providers send them (JSON, gzip, mail), and hostile input
(bad gzip, gzip and JSON bombs, wrong types, huge counts, pathological mails), each refused
fast with one clear line; the tally's bounded labels. The importer command's tests are in
test_cli_tlsrpt.py, the exporter's in test_exporter_tlsrpt.py."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tlsrpt_samples import (
    BIG_HEALTHY,
    BIG_TLSA_FAILURES,
    MULTI_POLICY,
    REALISTIC,
    RFC8460_EXAMPLE,
    as_gzip,
    as_json,
    as_mail,
    gzip_bomb,
)

from dane_monitor.tlsrpt import (
    Limits,
    ReportError,
    Tally,
    parse_json,
    parse_message,
    parse_report,
    parse_size,
    read_reports,
)

HANG_GUARD = 20.0  # seconds: a refusal that takes longer parsed what it should not have


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    return metrics(text).get((name, tuple(sorted(labels.items()))))


# -- parsing ----------------------------------------------------------------------------------


def test_the_rfc_8460_appendix_b_example_parses():
    report = parse_report(RFC8460_EXAMPLE.encode())
    assert report.organization == "Company-X"
    assert report.report_id == "5065427c-23d3-47ca-b6e0-946ea0e8c4be"
    assert report.contact_info == "sts-reporting@company-x.example"
    assert (report.start.isoformat(), report.end.isoformat()) == (
        "2016-04-01T00:00:00+00:00",
        "2016-04-01T23:59:59+00:00",
    )
    (policy,) = report.policies
    assert (policy.policy_type, policy.policy_domain) == ("sts", "company-y.example")
    assert policy.mx_hosts == ("*.mail.company-y.example",)
    assert policy.policy_strings[0] == "version: STSv1"
    assert (policy.successful, policy.failed) == (5326, 303)
    assert policy.failures_by_type() == {
        "certificate-expired": 100,
        "starttls-not-supported": 200,
        "validation-failure": 3,
    }
    third = policy.failure_details[2]
    assert third.receiving_mx_hostname == "mx-backup.mail.company-y.example"
    assert third.receiving_ip == "203.0.113.58"
    assert third.failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    assert parse_report(gzip.compress(RFC8460_EXAMPLE.encode())) == report


@pytest.mark.parametrize("encode", [as_json, as_gzip, as_mail], ids=["json", "gzip", "mail"])
@pytest.mark.parametrize("report", REALISTIC, ids=lambda r: r["report-id"][:24])
def test_realistic_reports_parse_in_every_form(report, encode):
    (parsed,) = read_reports(encode(report))
    assert parsed.report_id == report["report-id"]
    assert parsed.organization == report["organization-name"]
    assert len(parsed.policies) == len(report["policies"])
    for got, sent in zip(parsed.policies, report["policies"], strict=True):
        assert got.policy_type == sent["policy"]["policy-type"]
        assert got.successful == sent["summary"]["total-successful-session-count"]
        assert sum(got.failures_by_type().values()) == max(
            sent["summary"]["total-failure-session-count"],
            sum(d["failed-session-count"] for d in sent.get("failure-details", [])),
        )


def test_multi_policy_report_keeps_each_policy_and_detail():
    (report,) = read_reports(as_gzip(MULTI_POLICY))
    sts, tlsa, none = report.policies
    assert (sts.policy_type, sts.policy_domain) == ("sts", "example.org")
    # "Example.DE." as the reporter wrote it: compared as a domain name.
    assert (tlsa.policy_type, tlsa.policy_domain) == ("tlsa", "example.de")
    assert tlsa.failures_by_type() == {
        "dnssec-invalid": 5,
        "dane-required": 2,
        "starttls-downgrade-attempt": 1,
        "other": 1,  # counted in the summary, in no failure-details entry
    }
    assert (none.policy_type, none.failure_details) == ("no-policy-found", ())


def test_the_mail_form_with_a_json_attachment_and_a_gzip_named_by_file_only():
    assert (
        parse_message(as_mail(BIG_HEALTHY, gzipped=False))[0].report_id
        == (BIG_HEALTHY["report-id"])
    )
    mail = as_mail(BIG_HEALTHY, kind="octet-stream", filename="r.example!example.de!1!2.json.gz")
    assert parse_message(mail)[0].report_id == BIG_HEALTHY["report-id"]


def refusal(data: bytes, **kw) -> ReportError:
    started = time.monotonic()
    with pytest.raises(ReportError) as caught:
        parse_report(data, **kw)
    assert time.monotonic() - started < HANG_GUARD
    assert "\n" not in str(caught.value)
    return caught.value


def with_change(change) -> bytes:
    report = json.loads(json.dumps(BIG_TLSA_FAILURES))
    change(report)
    return json.dumps(report).encode()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.pop("report-id"), "report-id is missing"),
        (lambda r: r.update({"policies": {}}), "policies: must be an array"),
        (lambda r: r.update({"policies": []}), "at least one policy"),
        (lambda r: r["date-range"].update({"end-datetime": "yesterday"}), "RFC 3339"),
        (
            lambda r: r["date-range"].update({"end-datetime": "2016-01-01T00:00:00Z"}),
            "end-datetime is before start-datetime",
        ),
        (
            lambda r: r["policies"][0]["summary"].update({"total-failure-session-count": -5}),
            "policies[0].summary.total-failure-session-count: -5 is out of range",
        ),
        (
            lambda r: r["policies"][0]["summary"].update(
                {"total-successful-session-count": 10**20}
            ),
            "out of range",
        ),
        (
            lambda r: r["policies"][0]["summary"].update({"total-successful-session-count": "7"}),
            "must be a whole number, not a string",
        ),
        (
            lambda r: r["policies"][0]["summary"].update({"total-successful-session-count": 1.5}),
            "must be a whole number",
        ),
        (
            lambda r: r["policies"][0]["summary"].update({"total-successful-session-count": True}),
            "must be a whole number, not true/false",
        ),
        (
            lambda r: r["policies"][0]["failure-details"][1].pop("failed-session-count"),
            "policies[0].failure-details[1]: failed-session-count is missing",
        ),
        (
            lambda r: r["policies"][0]["policy"].update({"policy-domain": "not a domain"}),
            "not a domain name",
        ),
        (lambda r: r.update({"organization-name": ["x"]}), "must be a string, not an array"),
        (lambda r: r.update({"organization-name": "x" * 5000}), "longer than"),
    ],
)
def test_wrong_fields_are_refused_naming_the_field(change, says):
    error = refusal(with_change(change))
    assert error.reason == "invalid-report"
    assert says in str(error)


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20, "bad-gzip", "corrupt gzip"),
        (as_gzip(BIG_HEALTHY)[:-12], "bad-gzip", "ends early"),
        (as_gzip(BIG_HEALTHY) + b"trailing", "bad-gzip", "after the end"),
        (gzip_bomb(200 << 20), "decompressed-too-large", "more than 10 MiB"),
        (b"[" * 100_000 + b"]" * 100_000, "too-complex", "nested deeper"),
        (gzip.compress(b"[" + b"0," * 1_000_000 + b"0]"), "too-complex", "more than 200000"),
        (gzip.compress(b'{"a": [' + b"{}," * 500_000 + b"{}]}"), "too-complex", "more than"),
        (b'{"a": ' + b"9" * 100_000 + b"}", "bad-json", "not valid JSON"),
        (b'{"a": NaN}', "bad-json", "NaN is not JSON"),
        (b'"' + b'\\"' * 400_000, "bad-json", "not valid JSON"),  # quadratic for a naive scan
        (b"\xff\xfe{}", "bad-json", "not UTF-8"),
        (b'{"organization-name": "x", ', "bad-json", "not valid JSON"),
        (b"[]", "invalid-report", "must be an object"),
    ],
    ids=[
        "bad-gzip",
        "truncated",
        "trailing",
        "gzip-bomb",
        "deep",
        "huge-array",
        "many-objects",
        "huge-int",
        "nan",
        "escaped-quotes",
        "not-utf8",
        "cut-json",
        "array",
    ],
)
def test_hostile_input_is_refused_fast_with_one_line(data, reason, says):
    error = refusal(data)
    assert error.reason == reason
    assert says in str(error)


def test_gzip_announced_but_plain_and_raw_size_limit():
    assert refusal(as_json(BIG_HEALTHY), gzipped=True).reason == "bad-gzip"
    small = Limits(raw=1000)
    assert refusal(as_json(BIG_TLSA_FAILURES), limits=small).reason == "too-large"


def test_mail_without_a_report_part():
    with pytest.raises(ReportError) as caught:
        parse_message(b"From: a@b.example\n\nhello\n")
    error = caught.value
    assert (error.reason, str(error)) == (
        "not-a-report",
        "the mail has no application/tlsrpt+gzip or +json part",
    )


@pytest.mark.parametrize(
    ("mail", "says"),
    [
        (
            b'From: a@b.example\nContent-Type: multipart/mixed; boundary="B"\n\n'
            + b"--B\nContent-Type: text/plain\n\nx\n" * 200_000,
            "more than 1000 MIME boundary lines",
        ),
        (b"From: a@b.example\n" + b"X-A: b\n" * 500_000 + b"\nx\n", "more than 2000 header lines"),
        (
            b"From: a@b.example\n"
            + b"".join(
                b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i)
                for i in range(990)
            ),
            "",
        ),
    ],
    ids=["many-parts", "many-headers", "deeply-nested"],
)
def test_hostile_mails_are_refused_fast(mail, says):
    started = time.monotonic()
    with pytest.raises(ReportError) as caught:
        parse_message(mail)
    assert time.monotonic() - started < HANG_GUARD
    assert says in str(caught.value)


def test_parse_json_takes_strings_with_brackets_as_strings():
    assert parse_json(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[,,,,,,"}') == {
        "a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[,,,,,,"
    }


def test_parse_size():
    assert [parse_size(v) for v in ("1MiB", "64KiB", 1024, "2MB", "100")] == [
        1 << 20,
        64 << 10,
        1024,
        2_000_000,
        100,
    ]
    for bad in ("lots", -1, 0, True, "2TiB"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


# -- counting ---------------------------------------------------------------------------------


def test_tally_bounds_its_labels():
    tally = Tally(domains={"example.de"}, max_organizations=2)
    for report in REALISTIC:
        assert tally.add(read_reports(as_json(report))[0])
    assert not tally.add(read_reports(as_gzip(BIG_HEALTHY))[0])  # same report-id
    text = tally.render().decode()
    orgs = {labels.get("organization") for (_, label_items), _ in metrics(text).items()
            for labels in [dict(label_items)]} - {None}  # fmt: skip
    assert orgs == {"Mailbox Provider A Inc.", "Mailbox Provider B Corporation", "other"}
    domains = {dict(k[1]).get("domain") for k in metrics(text)} - {None}
    assert domains == {"example.de", "other"}  # example.org and example.net: not ours
    assert sample(text, "dane_tlsrpt_reports_refused_total", reason="duplicate") == 1
    assert sample(text, "dane_tlsrpt_reports_total", organization="Mailbox Provider A Inc.") == 2
    assert (
        sample(
            text,
            "dane_tlsrpt_failed_sessions_total",
            domain="example.de",
            organization="other",
            policy_type="tlsa",
            result_type="other",  # the unregistered type and the unexplained failure
        )
        == 2
    )


def test_tally_same_report_id_from_another_organization_is_another_report():
    tally = Tally()
    report = json.loads(json.dumps(BIG_HEALTHY))
    assert tally.add(read_reports(json.dumps(report).encode())[0])
    report["organization-name"] = "Another Provider"
    assert tally.add(read_reports(json.dumps(report).encode())[0])
    assert not tally.add(read_reports(json.dumps(report).encode())[0])
    assert tally.reports == {"Mailbox Provider A Inc.": 1, "Another Provider": 1}


def test_tally_organization_labels_are_printable_and_cut():
    tally = Tally()
    report = json.loads(json.dumps(BIG_HEALTHY))
    report["organization-name"] = "Evil\x1b[31m Corp\n" + "x" * 200
    tally.add(read_reports(json.dumps(report).encode())[0])
    (org,) = tally.reports
    assert org.startswith("Evil [31m Corp x") and len(org) == 64 and org.isprintable()


def test_tally_without_a_domain_list_labels_the_first_domains_only():
    tally = Tally(max_domains=2)
    for i in range(4):
        report = json.loads(json.dumps(BIG_HEALTHY))
        report["report-id"] = f"r{i}"
        report["policies"][0]["policy"]["policy-domain"] = f"d{i}.example"
        tally.add(read_reports(json.dumps(report).encode())[0])
    assert {d for d, *_ in tally.successful} == {"d0.example", "d1.example", "other"}
