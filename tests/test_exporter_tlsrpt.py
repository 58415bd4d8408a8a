"""The exporter's ``POST /tlsrpt`` (RFC 8460 reports over HTTPS, issue 17): reports counted into
the dane_tlsrpt_* series with bounded labels in both metric profiles, duplicates once; a wrong
content type 415, an oversized body 413 before it is read, a bad report 400 with its reason,
an unauthenticated upload 401 before its body; off unless configured; a Maildir of mailed
reports read each cycle. The exporter runs in-process on loopback, with a target whose DNS
goes nowhere (127.0.0.1:9): no check here needs the network."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
from datetime import UTC, datetime

import bcrypt
import pytest
from test_exporter_app import value
from test_exporter_client import parse_reply, request
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

from dane_monitor.exporter.app import Exporter

GZIP = "application/tlsrpt+gzip"
JSON = "application/tlsrpt+json"
TIMEOUT = 30.0  # a hang guard


def config(*, tlsrpt: str = "{enabled: true}", profile: str = "full", extra: str = "") -> str:
    return (
        "listen: 127.0.0.1:0\n"
        "dns: {resolver: '127.0.0.1:9', timeout: 1s}\n"
        "jitter: 0\n"
        "nameservers: {enabled: false}\n"
        f"metrics: {{profile: {profile}}}\n"
        "defaults: {interval: 1h, timeout: 2s}\n"
        "targets:\n  - domain: example.de\n  - mx: mail.example.org\n"
        f"tlsrpt: {tlsrpt}\n" + extra
    )


@pytest.fixture
async def start(tmp_path):
    started: list[Exporter] = []

    async def factory(text: str) -> Exporter:
        path = tmp_path / "dane.yml"
        path.write_text(text)
        exporter = Exporter.from_file(path)
        await exporter.start()
        started.append(exporter)
        return exporter

    yield factory
    for exporter in started:
        await exporter.close()


async def post(
    exporter: Exporter | tuple[str, int],
    body: bytes,
    content_type: str | None = GZIP,
    *,
    auth: str | None = None,
    length: int | None = None,
) -> tuple[int, str]:
    """POST /tlsrpt to an exporter (or a host and port); the status and the body's text."""
    head = [
        "POST /tlsrpt HTTP/1.1",
        "Host: reports.example",
        "Connection: close",
        f"Content-Length: {len(body) if length is None else length}",
    ]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    if auth is not None:
        head.append(f"Authorization: Basic {auth}")
    if isinstance(exporter, Exporter):
        exporter = (exporter.server.host, exporter.server.port)
    reader, writer = await asyncio.open_connection(*exporter)
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        reply = parse_reply(await asyncio.wait_for(reader.read(), TIMEOUT))
    finally:
        writer.close()
    return reply.status, reply.text


async def scrape(exporter: Exporter, **kw) -> str:
    reply = await request(exporter.url + "metrics", **kw)
    assert reply.status == 200
    return reply.text


@pytest.mark.parametrize("profile", ["full", "lean"])
async def test_reports_become_metrics_in_both_profiles(start, profile):
    exporter = await start(config(profile=profile))
    assert await post(exporter, as_gzip(BIG_TLSA_FAILURES)) == (
        201,
        f"report '{BIG_TLSA_FAILURES['report-id']}' counted\n",
    )
    assert (await post(exporter, as_json(MULTI_POLICY), JSON))[0] == 201
    assert (await post(exporter, RFC8460_EXAMPLE.encode(), JSON + "; charset=utf-8"))[0] == 201
    assert (await post(exporter, as_gzip(HOST_MISMATCH)))[0] == 201
    # A sender retrying the same report (same report-id): accepted, counted once.
    assert (await post(exporter, as_gzip(BIG_TLSA_FAILURES)))[0] == 200
    text = await scrape(exporter)
    b = "Mailbox Provider B Corporation"
    assert value(text, "dane_tlsrpt_reports_total", organization=b) == 1
    assert value(text, "dane_tlsrpt_reports_refused_total", reason="duplicate") == 1
    assert (
        value(
            text,
            "dane_tlsrpt_successful_sessions_total",
            domain="example.de",
            organization=b,
            policy_type="tlsa",
        )
        == 980
    )
    assert (
        value(
            text,
            "dane_tlsrpt_failed_sessions_total",
            domain="example.de",
            organization=b,
            policy_type="tlsa",
            result_type="tlsa-invalid",
        )
        == 50
    )
    c = "Mail Operator C GmbH"
    assert (
        value(
            text,
            "dane_tlsrpt_failed_sessions_total",
            domain="example.de",
            organization=c,
            policy_type="tlsa",
            result_type="dnssec-invalid",
        )
        == 5
    )
    # example.org's sts policy and the RFC example's company-y.example are no target's
    # domain here (mail.example.org is a target, example.org is not): "other".
    assert (
        value(
            text,
            "dane_tlsrpt_failed_sessions_total",
            domain="other",
            organization=c,
            policy_type="sts",
            result_type="sts-webpki-invalid",
        )
        == 4
    )
    assert (
        value(
            text,
            "dane_tlsrpt_failed_sessions_total",
            domain="other",
            organization="Company-X",
            policy_type="sts",
            result_type="certificate-expired",
        )
        == 100
    )
    assert (
        value(
            text,
            "dane_tlsrpt_last_report_timestamp_seconds",
            domain="example.de",
            organization="Mailbox Provider A Inc.",
        )
        == datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC).timestamp()
    )
    domains = {
        s.split('domain="')[1].split('"')[0]
        for s in text.splitlines()
        if s.startswith("dane_tlsrpt_") and 'domain="' in s
    }
    assert domains == {"example.de", "other"}


async def test_hostile_reports_are_refused_and_the_exporter_stays_up(start):
    exporter = await start(config(tlsrpt="{enabled: true, max_body: 256KiB}"))
    bomb = gzip_bomb(100 << 20)
    assert len(bomb) < 256 << 10
    cases = [
        (bomb, GZIP, 400, "the gzip inflates to more than 10 MiB"),
        (b"\x1f\x8b" + b"\x00" * 100, GZIP, 400, "corrupt gzip"),
        (as_json(BIG_HEALTHY), GZIP, 400, "not gzip data"),
        (gzip.compress(b"[" * 100_000), GZIP, 400, "nested deeper than 16 levels"),
        (gzip.compress(b"[" + b"1," * 2_000_000 + b"1]"), GZIP, 400, "more than 200000"),
        (b'{"organization-name": 5}', JSON, 400, "organization-name: must be a string"),
        (as_json(BIG_HEALTHY), "application/json", 415, "application/tlsrpt+gzip or"),
        (as_json(BIG_HEALTHY), None, 415, "application/tlsrpt+gzip or"),
        (b"", GZIP, 400, "empty body"),
    ]
    for body, kind, status, says in cases:
        got, text = await post(exporter, body, kind)
        assert (got, says in text, "\n" not in text.rstrip("\n")) == (status, True, True), text
    # 100 MB announced: 413 from the head alone, the body never sent.
    reader, writer = await asyncio.open_connection(exporter.server.host, exporter.server.port)
    writer.write(
        f"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: {GZIP}\r\n"
        f"Content-Length: {100 * 10**6}\r\n\r\n".encode()
        + b"\x1f\x8b" * 1000
    )
    await writer.drain()
    reply = parse_reply(await asyncio.wait_for(reader.read(), TIMEOUT))
    writer.close()
    assert (reply.status, reply.text) == (413, f"a report may have at most {256 << 10} bytes\n")
    text = await scrape(exporter)
    refused = {
        r: value(text, "dane_tlsrpt_reports_refused_total", reason=r)
        for r in (
            "decompressed-too-large",
            "bad-gzip",
            "too-complex",
            "invalid-report",
            "content-type",
            "too-large",
        )
    }
    assert refused == {
        "decompressed-too-large": 1,
        "bad-gzip": 2,
        "too-complex": 2,
        "invalid-report": 2,
        "content-type": 2,
        "too-large": 1,
    }
    # Still taking reports after all that.
    assert (await post(exporter, as_gzip(BIG_HEALTHY)))[0] == 201


async def test_a_body_over_the_limit_is_not_read(start):
    """The 413 arrives while the client is still sending: the server read the head only."""
    exporter = await start(config())
    reader, writer = await asyncio.open_connection(exporter.server.host, exporter.server.port)
    writer.write(
        f"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: {GZIP}\r\n"
        f"Content-Length: {100 * 2**20}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 413 ")
    writer.close()
    assert (await request(exporter.url + "-/healthy")).status == 200


async def test_off_unless_configured_and_post_only(start):
    exporter = await start(config(tlsrpt="{enabled: false}"))
    assert (await post(exporter, as_gzip(BIG_HEALTHY)))[0] == 404
    assert "dane_tlsrpt_" not in await scrape(exporter)
    await exporter.close()
    exporter = await start(config())
    reply = await request(exporter.url + "tlsrpt")
    assert (reply.status, reply.headers["allow"]) == (405, "POST")
    text = await scrape(exporter)
    assert "# TYPE dane_tlsrpt_failed_sessions_total counter" in text


async def test_unauthenticated_posts_are_refused_before_the_body(start, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  reporter: '{hashed}'\n")
    exporter = await start(config(extra=f"web_config: {tmp_path / 'web.yml'}\n"))
    # No credentials, with a 100 MB body announced and not sent: 401 at once.
    status, _ = await post(exporter, b"", length=100 * 10**6)
    assert status == 401
    status, _ = await post(exporter, as_gzip(BIG_HEALTHY), auth="cmVwb3J0ZXI6d3Jvbmc=")
    assert status == 401  # reporter:wrong
    good = "cmVwb3J0ZXI6czNjcmV0"  # reporter:s3cret
    assert (await post(exporter, as_gzip(BIG_HEALTHY), auth=good))[0] == 201
    text = await scrape(exporter, auth=("reporter", "s3cret"))
    assert value(text, "dane_tlsrpt_reports_total", organization="Mailbox Provider A Inc.") == 1
    assert value(text, "dane_tlsrpt_reports_refused_total", reason="too-large") is None


async def test_a_maildir_is_read_each_cycle(start, tmp_path):
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.M1.host").write_bytes(as_mail(BIG_TLSA_FAILURES))
    (maildir / "new" / "2.M2.host").write_bytes(b"From: x@y.example\n\nnot a report\n")
    exporter = await start(
        config(tlsrpt=f"{{enabled: true, maildir: {maildir}, scan_interval: 1h}}")
    )

    async def counted() -> float:
        text = await scrape(exporter)
        return (
            value(text, "dane_tlsrpt_reports_total", organization="Mailbox Provider B Corporation")
            or 0
        )

    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while await counted() != 1:
        assert asyncio.get_running_loop().time() < deadline, "the Maildir was not read"
        await asyncio.sleep(0.05)
    # A mail moved to cur/ by a mail client is the same mail; a new one is read next cycle.
    (maildir / "new" / "1.M1.host").rename(maildir / "cur" / "1.M1.host:2,S")
    (maildir / "new" / "3.M3.host").write_bytes(as_mail(MULTI_POLICY))
    assert await exporter.scan_maildir() == 1
    text = await scrape(exporter)
    assert value(text, "dane_tlsrpt_reports_total", organization="Mail Operator C GmbH") == 1
    assert (
        value(text, "dane_tlsrpt_reports_total", organization="Mailbox Provider B Corporation") == 1
    )
    assert value(text, "dane_tlsrpt_reports_refused_total", reason="not-a-report") == 1
    assert value(text, "dane_tlsrpt_reports_refused_total", reason="duplicate") is None


async def test_reload_keeps_the_counts(start):
    exporter = await start(config())
    assert (await post(exporter, as_gzip(BIG_HEALTHY)))[0] == 201
    assert await exporter.reload() is None
    text = await scrape(exporter)
    assert value(text, "dane_tlsrpt_reports_total", organization="Mailbox Provider A Inc.") == 1
    report = json.loads(json.dumps(BIG_HEALTHY))
    report["report-id"] = "another"
    assert (await post(exporter, as_gzip(report)))[0] == 201
    text = await scrape(exporter)
    assert value(text, "dane_tlsrpt_reports_total", organization="Mailbox Provider A Inc.") == 2


def test_config_errors_name_the_line():
    from dane_monitor.exporter.config import ConfigError, parse

    assert parse(config(tlsrpt="{enabled: true, max_body: 64KiB}")).tlsrpt.max_body == 65536
    assert not parse(config(tlsrpt="{}")).tlsrpt.enabled
    for bad, says in [
        ("{enabled: maybe}", "enabled: true or false"),
        ("{max_body: lots}", "max_body: a size such as 1MiB"),
        ("{max_bdy: 1MiB}", "did you mean 'max_body'?"),
    ]:
        with pytest.raises(ConfigError, match=says) as caught:
            parse(config(tlsrpt=bad), "dane.yml")
        assert str(caught.value).startswith("dane.yml:10: ")


def test_a_serve_process_survives_hostile_reports(tmp_path):
    """``dane-monitor serve`` as users run it: bombs and a 100 MB upload, sent at once, are
    refused; the process keeps answering /metrics and logs each refusal, no traceback."""
    from test_exporter_app import serving

    path = tmp_path / "dane.yml"
    path.write_text(config(extra="workers: 0\n"))
    with serving(path) as (proc, url):
        host, _, port = url.split("//")[1].rstrip("/").rpartition(":")
        address = (host, int(port))

        async def attack() -> list[int]:
            bodies = [
                (gzip_bomb(200 << 20), GZIP, None),
                (gzip.compress(b"[" * 1_000_000), GZIP, None),
                (b"\x1f\x8b" * 100, GZIP, None),
                (b"x" * 65536, GZIP, 100 * 10**6),
                (as_json(BIG_HEALTHY), "text/plain", None),
                (as_gzip(BIG_TLSA_FAILURES), GZIP, None),
            ]
            replies = await asyncio.gather(
                *(post(address, b, kind, length=n) for b, kind, n in bodies),
                return_exceptions=True,
            )
            return [r[0] if isinstance(r, tuple) else -1 for r in replies]

        statuses = asyncio.run(attack())
        # The 100 MB upload may see its connection reset while still sending (-1): the
        # server answered 413 from the head and closed.
        assert statuses[:3] == [400, 400, 400]
        assert statuses[3] in (413, -1)
        assert statuses[4:] == [415, 201]
        reply = asyncio.run(request(url + "metrics"))
        assert reply.status == 200
        assert value(reply.text, "dane_tlsrpt_reports_refused_total", reason="too-large") == 1
        b = "Mailbox Provider B Corporation"
        assert value(reply.text, "dane_tlsrpt_reports_total", organization=b) == 1
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        logs = proc.stderr.read()
        assert "Traceback" not in logs
        assert logs.count('msg="TLS-RPT report refused"') == 5, logs


async def test_expect_100_continue_is_answered_after_the_head_is_admitted(start):
    """A sender that asks first (``Expect: 100-continue``, as curl does for large uploads) is
    told to go on only when the report would be taken; else it gets the refusal at once."""
    exporter = await start(config())
    body = as_gzip(BIG_HEALTHY)

    async def ask(content_type: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(exporter.server.host, exporter.server.port)
        writer.write(
            f"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT), reader, writer

    interim, reader, writer = await ask(GZIP)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    await writer.drain()
    reply = parse_reply(await asyncio.wait_for(reader.read(), TIMEOUT))
    writer.close()
    assert reply.status == 201
    refused, _, writer = await ask("text/plain")
    writer.close()
    assert refused.startswith(b"HTTP/1.1 415 ")
