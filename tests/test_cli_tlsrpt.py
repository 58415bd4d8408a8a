"""``dane-monitor tlsrpt import`` (issue 17): TLS-RPT reports from files, mails and a Maildir
summed per domain, reporter, policy and result; --json; --textfile for node_exporter's textfile
collector, written atomically; a bad file one line on stderr, the others still imported, exit 1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from test_tlsrpt import sample
from tlsrpt_samples import (
    BIG_HEALTHY,
    BIG_TLSA_FAILURES,
    HOST_MISMATCH,
    MULTI_POLICY,
    RFC8460_EXAMPLE,
    as_gzip,
    as_json,
    as_mail,
    gzip_bomb,
)

from dane_monitor import cli


def make_maildir(root: Path, mails: dict[str, bytes]) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    for name, data in mails.items():
        (root / name).write_bytes(data)
    return root


def test_import_files_mails_and_a_maildir(tmp_path, capsys):
    maildir = make_maildir(
        tmp_path / "Maildir",
        {
            "new/1764300000.M1P1.host": as_mail(BIG_TLSA_FAILURES),
            "cur/1764300001.M2P2.host:2,S": as_mail(MULTI_POLICY, gzipped=False),
            "cur/1764300002.M3P3.host:2,S": as_mail(BIG_HEALTHY),  # also given as a file
            "tmp/1764300003.M4P4.host": b"still being delivered",
        },
    )
    (tmp_path / "healthy.json.gz").write_bytes(as_gzip(BIG_HEALTHY))
    (tmp_path / "mismatch.json").write_bytes(as_json(HOST_MISMATCH))
    (tmp_path / "rfc.eml").write_bytes(as_mail(json.loads(RFC8460_EXAMPLE)))
    textfile = tmp_path / "tlsrpt.prom"
    code = cli.main(["tlsrpt", "import", str(tmp_path / "healthy.json.gz"),
                     str(tmp_path / "mismatch.json"), str(tmp_path / "rfc.eml"), str(maildir),
                     "--textfile", str(textfile)])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    assert out.splitlines()[0] == ("5 reports imported from 6 files (1 duplicate counted once):")
    rows = [line.split() for line in out.splitlines()[2:]]
    assert ["example.de", "Mailbox", "Provider", "B", "Corporation", "tlsa", "tlsa-invalid",
            "50"] in rows  # fmt: skip
    assert ["company-y.example", "Company-X", "sts", "starttls-not-supported", "200"] in rows
    text = textfile.read_text()
    assert (
        sample(
            text,
            "dane_tlsrpt_successful_sessions_total",
            domain="example.de",
            organization="Mailbox Provider A Inc.",
            policy_type="tlsa",
        )
        == 4120 + 3900
    )
    assert (
        sample(
            text,
            "dane_tlsrpt_failed_sessions_total",
            domain="example.de",
            organization="Mailbox Provider A Inc.",
            policy_type="tlsa",
            result_type="certificate-host-mismatch",
        )
        == 12
    )
    end = sample(
        text,
        "dane_tlsrpt_last_report_timestamp_seconds",
        domain="example.de",
        organization="Mailbox Provider A Inc.",
    )
    assert end == datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC).timestamp()  # the later
    assert not list(tmp_path.glob(".tlsrpt.prom.*"))  # no temporary file left


def test_import_json_output_and_bad_files(tmp_path, capsys):
    good = tmp_path / "good.json.gz"
    good.write_bytes(as_gzip(BIG_TLSA_FAILURES))
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip_bomb(100 << 20))
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 50_000)
    mail = tmp_path / "spam.eml"
    mail.write_bytes(b"From: a@b.example\nSubject: hi\n\nnot a report\n")
    code = cli.main(["tlsrpt", "import", "--json", str(bomb), str(good), str(deep), str(mail),
                     str(tmp_path / "missing.json")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        f"{bomb}: the gzip inflates to more than 10 MiB (refused)",
        f"{deep}: JSON nested deeper than 16 levels (refused unparsed)",
        f"{mail}: the mail has no application/tlsrpt+gzip or +json part",
        f"{tmp_path / 'missing.json'}: no such file",
    ]
    result = json.loads(out)
    assert (result["files"], result["reports"], result["duplicates"]) == (4, 1, 0)
    assert [r["reason"] for r in result["refused"]] == [
        "decompressed-too-large", "too-complex", "not-a-report", "unreadable",
    ]  # fmt: skip
    assert {
        "domain": "example.de",
        "organization": "Mailbox Provider B Corporation",
        "policy_type": "tlsa",
        "result": "tlsa-invalid",
        "sessions": 50,
    } in result["sessions"]
    assert result["imported"][0]["report-id"] == BIG_TLSA_FAILURES["report-id"]


def test_import_a_file_over_the_size_limit_is_not_read_whole(tmp_path, capsys):
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(100 << 20)  # sparse: 100 MiB
    code = cli.main(["tlsrpt", "import", str(big), "--domain", "example.de"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err == f"{big}: larger than 16 MiB (refused)\n"


def test_import_needs_a_path(capsys):
    assert cli.main(["tlsrpt", "import"]) == cli.USAGE
    assert "PATH" in capsys.readouterr().err
