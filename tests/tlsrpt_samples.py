"""TLS-RPT reports (RFC 8460) for the importer and exporter tests: the RFC's own example, and
reports shaped as large mailbox providers send them, written from the RFC's schema (section
4.4) and the fields such reports carry in practice (policy-string as lines, mx-host as an
array, failure-details with receiving-mx-hostname, receiving-ip, failure-reason-code).
Imported by test_tlsrpt.py and test_exporter_tlsrpt.py."""

from __future__ import annotations

import gzip
import json
from email.message import EmailMessage
from typing import Any

# RFC 8460, Appendix B, as printed (the additional-information URL, which the RFC's text
# wraps over two lines inside the string, on one line).
RFC8460_EXAMPLE = """{
     "organization-name": "Company-X",
     "date-range": {
       "start-datetime": "2016-04-01T00:00:00Z",
       "end-datetime": "2016-04-01T23:59:59Z"
     },
     "contact-info": "sts-reporting@company-x.example",
     "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
     "policies": [{
       "policy": {
         "policy-type": "sts",
         "policy-string": ["version: STSv1","mode: testing",
               "mx: *.mail.company-y.example","max_age: 86400"],
         "policy-domain": "company-y.example",
         "mx-host": ["*.mail.company-y.example"]
       },
       "summary": {
         "total-successful-session-count": 5326,
         "total-failure-session-count": 303
       },
       "failure-details": [{
         "result-type": "certificate-expired",
         "sending-mta-ip": "2001:db8:abcd:0012::1",
         "receiving-mx-hostname": "mx1.mail.company-y.example",
         "failed-session-count": 100
       }, {
         "result-type": "starttls-not-supported",
         "sending-mta-ip": "2001:db8:abcd:0013::1",
         "receiving-mx-hostname": "mx2.mail.company-y.example",
         "receiving-ip": "203.0.113.56",
         "failed-session-count": 200,
         "additional-information": "https://reports.company-x.example/report_info ? id = 5065427 c - 23 d3# StarttlsNotSupported "
       }, {
         "result-type": "validation-failure",
         "sending-mta-ip": "198.51.100.62",
         "receiving-ip": "203.0.113.58",
         "receiving-mx-hostname": "mx-backup.mail.company-y.example",
         "failed-session-count": 3,
         "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
       }]
     }]
   }"""  # noqa: E501

TLSA_STRING = "3 1 1 0210f1a3ad0c1c1a9a2a6bbf1d3b9e9cc2b5b1e7cf0e1c5fb6e1d5b53a3b0c7d"


def daily(org: str, contact: str, report_id: str, day: str, policies: list[Any]) -> dict:
    return {
        "organization-name": org,
        "date-range": {
            "start-datetime": f"{day}T00:00:00Z",
            "end-datetime": f"{day}T23:59:59Z",
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }


def tlsa_policy(domain: str, mx: str, ok: int, failed: int, details: list[Any]) -> dict:
    entry: dict[str, Any] = {
        "policy": {
            "policy-type": "tlsa",
            "policy-string": [TLSA_STRING],
            "policy-domain": domain,
            "mx-host": [mx],
        },
        "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
    }
    if details:
        entry["failure-details"] = details
    return entry


# A large provider's daily report for a healthy DANE domain: one tlsa policy, no failures,
# and no failure-details key at all (as such reports leave it out).
BIG_HEALTHY = daily(
    "Mailbox Provider A Inc.",
    "smtp-tls-reporting@provider-a.example",
    "2026-11-28T00:00:00Z_example.de",
    "2026-11-28",
    [tlsa_policy("example.de", "mail.example.de", 4120, 0, [])],
)

# After a key rollover went wrong: one MX host's TLSA record no longer matches.
BIG_TLSA_FAILURES = daily(
    "Mailbox Provider B Corporation",
    "tlsrpt-noreply@provider-b.example",
    "133772985600000000+example.de",
    "2026-11-28",
    [
        tlsa_policy(
            "example.de",
            "mail.example.de",
            980,
            57,
            [
                {
                    "result-type": "tlsa-invalid",
                    "sending-mta-ip": "192.0.2.25",
                    "receiving-mx-hostname": "mail2.example.de",
                    "receiving-ip": "198.51.100.7",
                    "failed-session-count": 50,
                },
                {
                    "result-type": "validation-failure",
                    "sending-mta-ip": "192.0.2.26",
                    "receiving-mx-hostname": "mail2.example.de",
                    "receiving-mx-helo": "mail2.example.de",
                    "receiving-ip": "2001:db8::7",
                    "failed-session-count": 7,
                    "failure-reason-code": "X509_V_ERR_CERT_HAS_EXPIRED",
                },
            ],
        )
    ],
)

# Several policies in one report: sts and tlsa for two domains, a domain with none, DNSSEC
# trouble, a sender that requires DANE, an unregistered result type, and failures the
# failure-details do not all account for.
MULTI_POLICY = daily(
    "Mail Operator C GmbH",
    "mailto:tls-reports@operator-c.example",
    "operator-c-2026-11-28-0001",
    "2026-11-28",
    [
        {
            "policy": {
                "policy-type": "sts",
                "policy-string": [
                    "version: STSv1",
                    "mode: enforce",
                    "mx: mail.example.org",
                    "max_age: 604800",
                ],
                "policy-domain": "example.org",
                "mx-host": ["mail.example.org"],
            },
            "summary": {"total-successful-session-count": 310, "total-failure-session-count": 4},
            "failure-details": [
                {
                    "result-type": "sts-webpki-invalid",
                    "sending-mta-ip": "203.0.113.9",
                    "receiving-mx-hostname": "mail.example.org",
                    "failed-session-count": 4,
                }
            ],
        },
        tlsa_policy(
            "Example.DE.",
            "mail.example.de",
            120,
            9,
            [
                {
                    "result-type": "dnssec-invalid",
                    "sending-mta-ip": "203.0.113.10",
                    "receiving-mx-hostname": "mail.example.de",
                    "failed-session-count": 5,
                },
                {
                    "result-type": "dane-required",
                    "sending-mta-ip": "203.0.113.10",
                    "receiving-mx-hostname": "mail.example.de",
                    "failed-session-count": 2,
                },
                {
                    "result-type": "starttls-downgrade-attempt",
                    "sending-mta-ip": "203.0.113.11",
                    "failed-session-count": 1,
                },
            ],
        ),
        {
            "policy": {"policy-type": "no-policy-found", "policy-domain": "example.net"},
            "summary": {"total-successful-session-count": 42, "total-failure-session-count": 0},
        },
    ],
)

# A report whose host names matter: certificate-host-mismatch on a backup MX.
HOST_MISMATCH = daily(
    "Mailbox Provider A Inc.",
    "smtp-tls-reporting@provider-a.example",
    "2026-11-29T00:00:00Z_example.de",
    "2026-11-29",
    [
        tlsa_policy(
            "example.de",
            "mail.example.de",
            3900,
            12,
            [
                {
                    "result-type": "certificate-host-mismatch",
                    "sending-mta-ip": "2001:db8:1::25",
                    "receiving-mx-hostname": "backup-mx.example.de",
                    "receiving-ip": "198.51.100.9",
                    "failed-session-count": 12,
                }
            ],
        )
    ],
)

REALISTIC = [BIG_HEALTHY, BIG_TLSA_FAILURES, MULTI_POLICY, HOST_MISMATCH]


def as_json(report: dict) -> bytes:
    return json.dumps(report, indent=1).encode()


def as_gzip(report: dict) -> bytes:
    return gzip.compress(as_json(report))


def as_mail(
    report: dict, *, gzipped: bool = True, kind: str | None = None, filename: str | None = None
) -> bytes:
    """The report as a sender mails it (RFC 8460, 5.3): multipart/report; report-type=tlsrpt,
    a text part and the report as an attachment (base64)."""
    org = report["organization-name"]
    domain = report["policies"][0]["policy"]["policy-domain"]
    msg = EmailMessage()
    msg["From"] = "noreply-smtp-tls-reporting@reporter.example"
    msg["To"] = f"tls-reports@{domain}"
    msg["Subject"] = f"Report Domain: {domain} Submitter: {org} Report-ID: <{report['report-id']}>"
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = org
    msg.set_content(f"This is an aggregate TLS report from {org}.")
    data = as_gzip(report) if gzipped else as_json(report)
    subtype = kind or ("tlsrpt+gzip" if gzipped else "tlsrpt+json")
    name = filename or f"reporter.example!{domain}!1764288000!1764374399" + (
        ".json.gz" if gzipped else ".json"
    )
    msg.add_attachment(data, maintype="application", subtype=subtype, filename=name)
    msg.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    msg.set_boundary("----=_tlsrpt_boundary_0001")
    return msg.as_bytes()


def gzip_bomb(size: int) -> bytes:
    """A small gzip that inflates to ``size`` bytes of spaces (valid JSON whitespace)."""
    return gzip.compress(b" " * size, 9)
