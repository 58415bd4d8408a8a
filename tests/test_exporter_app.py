"""The exporter end to end against the local world: /metrics after background cycles, reload,
/probe with its deadline and allow-list, basic auth and TLS, a thousand broken targets, and
the serve and demo commands as processes (signals, logs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families
from test_exporter_client import request
from test_exporter_http import until

from dane_monitor.exporter.app import Exporter, probe_deadline, wants_gzip
from dane_monitor.exporter.config import ProbeSettings
from dane_monitor.world import World

HANG_GUARD = 30.0  # seconds: a deadline for a stuck exporter, not a speed requirement


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    found = [
        v
        for n, lab, v in samples(text)
        if n == name and all(lab.get(k) == x for k, x in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


ANY_EXAMPLE = "{allow: ['*.example']}"


def config_text(world: World, anchor: Path, targets: list[str], **extra: str) -> str:
    host, port = world.dns_address
    lines = [
        "listen: 127.0.0.1:0",
        "dns:",
        f"  resolver: {extra.pop('resolver', f'{host}:{port}')}",
        f"  trust_anchor: {anchor}",
        "  timeout: 1s",
        f"connect_port: {world.smtp_port}",
        "jitter: 0",
        "defaults: {interval: 60s, timeout: 5s}",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    lines.append("targets:")
    lines += [f"  - {t}" for t in targets]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def start(tmp_path):
    started: list[Exporter] = []

    async def factory(text: str, name: str = "dane.yml") -> Exporter:
        path = tmp_path / name
        path.write_text(text)
        exporter = Exporter.from_file(path)
        await exporter.start()
        started.append(exporter)
        return exporter

    yield factory
    for exporter in started:
        await exporter.close()


async def metrics_when(exporter: Exporter, ready, timeout: float = 30, **kw) -> str:
    deadline = time.monotonic() + timeout
    while True:
        reply = await request(exporter.url + "metrics", **kw)
        assert reply.status == 200
        if ready(reply.text) or time.monotonic() > deadline:
            return reply.text
        await asyncio.sleep(0.1)


def cycles(text: str) -> float:
    return value(text, "dane_exporter_cycles_total") or 0


async def test_background_cycle_serves_metrics_and_a_landing_page(
    dane_world, dane_trust_anchor, start
):
    mx = dane_world.domains["good-ta"].hosts[0].name.rstrip(".")
    targets = ["domain: good-ee.example", "domain: tlsa-mismatch.example",
               "domain: hang.example", "domain: nowhere.example", f"mx: {mx}"]  # fmt: skip
    exporter = await start(config_text(dane_world, dane_trust_anchor, targets))
    text = await metrics_when(exporter, lambda t: cycles(t) >= 1)
    assert value(text, "dane_verdict", target="good-ee.example", verdict="valid") == 1
    assert value(text, "dane_tlsa_match", target="tlsa-mismatch.example") == 0
    assert value(text, "dane_verdict", target=mx, verdict="valid") == 1
    # A hanging server is a decided outage; a domain that does not exist is undecided.
    assert value(text, "dane_check_success", target="hang.example") == 1
    assert value(text, "dane_verdict", target="hang.example", verdict="failed") == 1
    assert value(text, "dane_check_success", target="nowhere.example") == 0
    assert value(text, "dane_exporter_check_failures_total", reason="domain-not-found") == 1
    assert value(text, "dane_exporter_check_failures_total", reason="timeout") == 0
    assert value(text, "dane_exporter_targets", kind="domain") == 4
    assert value(text, "dane_exporter_targets", kind="mx") == 1
    assert value(text, "dane_exporter_checks_total") == 5
    # A cycle lasts at least as long as its slowest check: the worst-case age of a result.
    durations = [v for n, _, v in samples(text) if n == "dane_check_duration_seconds"]
    assert len(durations) == 5
    assert value(text, "dane_exporter_cycle_duration_seconds") >= max(durations)
    # the reasons every exporter has are there before the first of them happens
    assert value(text, "dane_exporter_check_failures_total", reason="exception") == 0
    assert value(text, "dane_exporter_checks_in_flight") is not None
    assert not [n for n, _, _ in samples(text) if n.endswith("_created")]  # as documented
    assert value(text, "dane_exporter_build_info")
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "dane_exporter_dns_cache_entries") > 0
    # gzip, as Prometheus asks for it
    zipped = await request(exporter.url + "metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "dane_verdict{" in zipped.text
    refused = await request(exporter.url + "metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    assert "dane_verdict{" in refused.text
    assert value(refused.text, "dane_exporter_http_requests_total", handler="/metrics", code="200")
    page = await request(exporter.url)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert '<tr class="failed"><td><a href="/probe?target=tlsa-mismatch.example' in page.text
    assert "no (domain-not-found)" in page.text
    assert (await request(exporter.url + "-/healthy")).text == "Healthy\n"
    assert (await request(exporter.url + "nope")).status == 404
    assert (await request(exporter.url + "metrics", method="POST")).status == 405


async def test_reload_removes_and_adds_targets_and_keeps_the_old_config_on_errors(
    dane_world, dane_trust_anchor, start, tmp_path
):
    first = ["domain: good-ee.example", "domain: tlsa-mismatch.example"]
    exporter = await start(config_text(dane_world, dane_trust_anchor, first))
    text = await metrics_when(exporter, lambda t: cycles(t) >= 1)
    assert 'target="tlsa-mismatch.example"' in text

    path = tmp_path / "dane.yml"
    second = ["domain: good-ee.example", "domain: no-tlsa.example"]
    path.write_text(config_text(dane_world, dane_trust_anchor, second))
    assert (await request(exporter.url + "-/reload")).status == 405
    reply = await request(exporter.url + "-/reload", method="POST")
    assert reply.status == 200, reply.text
    text = (await request(exporter.url + "metrics")).text
    assert 'target="tlsa-mismatch.example"' not in text  # gone at once, no stale series
    assert value(text, "dane_verdict", target="good-ee.example", verdict="valid") == 1  # kept
    text = await metrics_when(
        exporter, lambda t: value(t, "dane_verdict", target="no-tlsa.example", verdict="no-dane")
    )
    assert value(text, "dane_verdict", target="no-tlsa.example", verdict="no-dane") == 1

    good = path.read_text()
    path.write_text(good + "  - domain: x.example\n    intervall: 5m\n")
    reply = await request(exporter.url + "-/reload", method="POST")
    assert reply.status == 500
    assert f"{path}:{good.count(chr(10)) + 2}: unknown key 'intervall'" in reply.text
    text = (await request(exporter.url + "metrics")).text
    assert value(text, "dane_exporter_config_last_reload_successful") == 0
    assert value(text, "dane_verdict", target="no-tlsa.example", verdict="no-dane") == 1
    assert exporter.scheduler.targets.keys() == {"good-ee.example", "no-tlsa.example"}
    path.write_text(good)
    assert (await request(exporter.url + "-/reload", method="POST")).status == 200
    text = (await request(exporter.url + "metrics")).text
    assert value(text, "dane_exporter_config_last_reload_successful") == 1


async def test_probe(dane_world, dane_trust_anchor, start):
    exporter = await start(config_text(dane_world, dane_trust_anchor, [], probe=ANY_EXAMPLE))
    reply = await request(exporter.url + "probe?target=good-ee.example")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(reply.text, "dane_probe_success") == 1
    assert value(reply.text, "dane_verdict", target="good-ee.example", verdict="valid") == 1
    assert value(reply.text, "dane_tlsa_match", target="good-ee.example") == 1
    assert value(reply.text, "dane_probe_duration_seconds") > 0
    assert "dane_exporter_" not in reply.text  # self-metrics live on /metrics only

    mx = dane_world.domains["tlsa-mismatch"].hosts[0].name.rstrip(".")
    reply = await request(exporter.url + f"probe?target={mx}&kind=mx&port=25")
    assert value(reply.text, "dane_tlsa_match", target=mx) == 0
    assert value(reply.text, "dane_probe_success") == 1

    reply = await request(exporter.url + "probe?target=good-ee.example&port=25,587")
    assert value(reply.text, "dane_mx_verdict", port="587", verdict="no-dane") == 1

    reply = await request(exporter.url + "probe?target=tlsa-mismatch.example&debug=true")
    assert reply.headers["content-type"].startswith("text/plain; charset=utf-8")
    for needle in ("FAILED", "SMTP transcript", "C: STARTTLS", "tlsa-mismatch",
                   "Metrics that would have been returned:", "dane_probe_success 1.0"):  # fmt: skip
        assert needle in reply.text, needle

    assert (await request(exporter.url + "probe?target=example.net")).status == 403
    assert (await request(exporter.url + "probe")).status == 400
    assert (await request(exporter.url + "probe?target=a%20b.example")).status == 400
    assert (await request(exporter.url + "probe?target=good-ee.example&port=0")).status == 400
    assert (await request(exporter.url + "probe?target=good-ee.example&kind=x")).status == 400
    # A scrape config copied from blackbox_exporter names a module: refused, not ignored.
    reply = await request(exporter.url + "probe?target=good-ee.example&module=smtp_starttls")
    assert (reply.status, "unknown module 'smtp_starttls'" in reply.text) == (400, True)
    bad = {"X-Prometheus-Scrape-Timeout-Seconds": "soon"}
    assert (await request(exporter.url + "probe?target=good-ee.example", headers=bad)).status == 400
    text = (await request(exporter.url + "metrics")).text
    assert value(text, "dane_exporter_probes_denied_total") == 1
    assert value(text, "dane_exporter_http_requests_total", handler="/probe", code="403") == 1


@pytest.mark.parametrize(
    ("accept_encoding", "gzip"),
    [
        ("gzip", True),
        ("GZip", True),  # codings are case-insensitive
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=1.0, identity", True),
        ("gzip;q=0", False),  # refused
        ("gzip ; Q=0.000", False),
        ("br, gzip;q=0, deflate", False),
        ("*", False),  # any coding will do: identity it is
        ("", False),
        (None, False),  # no header: a client that does not know content codings
        ("identity", False),
    ],
)
def test_gzip_only_where_the_client_accepts_it(accept_encoding, gzip):
    assert wants_gzip(accept_encoding) is gzip


def debug_metrics(reply_text: str) -> str:
    """The metrics part of a ``/probe?debug=true`` answer."""
    return reply_text.split("Metrics that would have been returned:\n", 1)[1]


@pytest.mark.parametrize(
    ("header", "deadline"),
    [(None, 30.0), ("2", 1.5), ("10.5", 10.0), ("100", 30.0), ("0.3", 0.05), ("0.5", 0.05)],
)
def test_the_probe_deadline_leaves_the_margin_before_the_scrape_timeout(header, deadline):
    # Prometheus gives up at the scrape timeout; the check is cut timeout_margin (0.5 s)
    # earlier so that its answer still arrives, and never runs past probe.timeout (30 s).
    assert probe_deadline(header, ProbeSettings()) == deadline


@pytest.mark.parametrize("header", ["soon", "0", "-1", "nan", "inf", ""])
def test_a_bad_scrape_timeout_header_is_refused(header):
    with pytest.raises(ValueError, match="not a positive number"):
        probe_deadline(header, ProbeSettings())


async def test_probe_honours_the_scrape_timeout_of_a_hanging_server(
    dane_world, dane_trust_anchor, start
):
    exporter = await start(config_text(dane_world, dane_trust_anchor, [], probe=ANY_EXAMPLE))
    header = {"X-Prometheus-Scrape-Timeout-Seconds": "2"}  # margin 0.5: 1.5 s for the check
    for scenario in ("hang", "huge-line"):
        url = exporter.url + f"probe?target={scenario}.example&debug=true"
        reply = await request(url, headers=header, timeout=HANG_GUARD)
        assert reply.status == 200
        assert "with a deadline of 1.50s" in reply.text, reply.text
        # The probe's step deadlines fit inside the check's: the server's hang is seen and
        # judged (senders defer) before the deadline would cut the check, not mistaken for a
        # check that could not finish (check-timeout).
        target, text = f"{scenario}.example", debug_metrics(reply.text)
        assert value(text, "dane_probe_success") == 1
        assert value(text, "dane_verdict", target=target, verdict="failed") == 1
        assert value(text, "dane_findings", target=target, code="smtp-error") == 1
        assert value(text, "dane_findings", target=target, code="check-timeout") is None


@pytest.fixture
def blackhole():
    """A UDP 'resolver' that never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


async def test_probe_deadline_cuts_a_check_stuck_in_dns(
    dane_world, dane_trust_anchor, start, blackhole
):
    exporter = await start(
        config_text(dane_world, dane_trust_anchor, [], resolver=blackhole, probe=ANY_EXAMPLE)
    )
    reply = await request(
        exporter.url + "probe?target=good-ee.example&debug=true",
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.2"},
        timeout=HANG_GUARD,
    )
    # margin 0.5: the check gets 0.7 s, where a resolver that never answers would hold it
    # for tries of 1 s each and end in dns-error: it is cut at its deadline instead.
    assert "with a deadline of 0.70s" in reply.text, reply.text
    text = debug_metrics(reply.text)
    assert value(text, "dane_probe_success") == 0
    assert value(text, "dane_findings", code="check-timeout") == 1
    assert value(text, "dane_findings", code="dns-error") is None
    assert value(text, "dane_probe_duration_seconds") >= 0.7  # at the deadline, not before


async def test_a_thousand_broken_targets_never_block_a_scrape(
    dane_world, dane_trust_anchor, start, blackhole
):
    # Every check waits for a resolver that never answers until its 4 s deadline; 100 at once.
    targets = [f"domain: broken-{i}.example" for i in range(1000)]
    text = config_text(
        dane_world, dane_trust_anchor, targets, resolver=blackhole, concurrency="100"
    ).replace("timeout: 5s", "timeout: 4s")
    exporter = await start(text)
    # Scrapes are answered while checks are in flight (a scrape never waits for a check),
    # until the first of them have failed; how long a scrape takes is benchmarks/exporter.py's.
    deadline = time.monotonic() + 120
    while True:
        assert (await request(exporter.url + "-/healthy", timeout=HANG_GUARD)).status == 200
        text = (await request(exporter.url + "metrics", timeout=HANG_GUARD)).text
        assert 1 <= value(text, "dane_exporter_checks_in_flight") <= 100
        failures = [v for n, _, v in samples(text) if n == "dane_exporter_check_failures_total"]
        if sum(failures) >= 100 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert sum(failures) >= 100  # dns-error (3 tries of 1 s) or timeout, both undecided
    assert value(text, "dane_exporter_checks_total") < 1000  # answered mid-cycle
    assert value(text, "dane_check_success", target="broken-0.example") == 0


# -- auth and TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    cert.private_key_pem.write_to_path(str(d / "server.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    (d / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        "http_server_config:\n  headers: {X-Frame-Options: deny}\n"
    )
    return d


async def test_tls_and_basic_auth(dane_world, dane_trust_anchor, start, tls_files):
    text = config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"])
    exporter = await start(text + f"web_config: {tls_files / 'web.yml'}\n")
    assert exporter.url.startswith("https://")
    ca = str(tls_files / "ca.pem")
    reply = await request(exporter.url + "metrics", cafile=ca)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Basic")
    assert (
        await request(exporter.url + "metrics", cafile=ca, auth=("prometheus", "x"))
    ).status == 401
    assert (
        await request(exporter.url + "metrics", cafile=ca, auth=("nobody", "s3cret"))
    ).status == 401
    assert (await request(exporter.url + "probe?target=good-ee.example", cafile=ca)).status == 401
    for _ in range(2):  # the second time from the verified-password cache
        reply = await request(exporter.url + "metrics", cafile=ca, auth=("prometheus", "s3cret"))
        assert reply.status == 200
        assert reply.headers["x-frame-options"] == "deny"
    # plain HTTP to the TLS port gets no answer
    reader, writer = await asyncio.open_connection("127.0.0.1", exporter.server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not (await asyncio.wait_for(reader.read(), 15)).startswith(b"HTTP/1.1 200")
    writer.close()


# -- the commands as processes ------------------------------------------------------------------


def _read_url(proc: subprocess.Popen, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None and proc.stdout is not None
    stream = proc.stdout if pattern.startswith("^exporter") else proc.stderr
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if m := re.search(pattern, line):
            return m.group(1)
    raise AssertionError(f"no {pattern!r} from {proc.args}")


@contextlib.contextmanager
def serving(path: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A ``dane-monitor serve`` process on ``path`` and its URL; killed if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", "serve", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc, _read_url(proc, r"msg=listening url=(\S+)")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_reloads_on_sighup_logs_logfmt_and_stops_on_sigterm(
    dane_world, dane_trust_anchor, tmp_path
):
    path = tmp_path / "dane.yml"
    path.write_text(config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"]))
    with serving(path) as (proc, url):

        def get(p: str):
            return asyncio.run(request(url + p))

        deadline = time.monotonic() + 30
        while "good-ee.example" not in get("metrics").text and time.monotonic() < deadline:
            time.sleep(0.1)
        path.write_text(config_text(dane_world, dane_trust_anchor, ["domain: no-tlsa.example"]))
        proc.send_signal(signal.SIGHUP)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while "reloaded" not in line and line:
            line = proc.stderr.readline()
        assert re.match(
            r"ts=\S+ level=info logger=dane_monitor.exporter "
            r'msg="configuration reloaded" targets=1',
            line,
        ), line
        assert 'target="good-ee.example"' not in get("metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "msg=stopped" in proc.stderr.read()


def test_demo_serves_the_world_in_one_command(tmp_path):
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dane_monitor", "demo", "--listen", "127.0.0.1:0",
         "--scenario", "good-ee", "--scenario", "tlsa-mismatch", "--scenario", "bogus-expired",
         "--dir", str(tmp_path), "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        url = _read_url(proc, r"^exporter\s+(\S+)")
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = asyncio.run(request(url + "metrics")).text
            if (value(text, "dane_exporter_cycles_total") or 0) >= 1:
                break
            time.sleep(0.2)
        assert value(text, "dane_verdict", target="good-ee.example", verdict="valid") == 1
        assert value(text, "dane_verdict", target="tlsa-mismatch.example", verdict="failed") == 1
        assert value(text, "dane_verdict", target="bogus-expired.example", verdict="bogus") == 1
        assert (tmp_path / "dane-exporter.yml").read_text().startswith("# Written by dane-monitor")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_during_a_probe_answers_it_and_exits_0_without_a_traceback(
    dane_world, dane_trust_anchor, tmp_path
):
    """SIGTERM while a /probe waits on a server that never greets: after the grace period the
    client gets a 503 (not a dropped connection), and the exporter exits 0, logging no
    traceback (a cancelled connection task made asyncio log one)."""
    import threading

    hang = dane_world.domains["hang"].hosts[0].endpoints[0].server
    assert hang is not None
    path = tmp_path / "dane.yml"
    path.write_text(
        config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"], probe=ANY_EXAMPLE)
    )
    with serving(path) as (proc, url):
        before = hang.connections
        replies: list[object] = []

        def probe() -> None:
            try:
                replies.append(asyncio.run(request(url + "probe?target=hang.example")).status)
            except Exception as exc:  # reported by the assertion below
                replies.append(exc)

        client = threading.Thread(target=probe)
        client.start()
        deadline = time.monotonic() + 30
        while hang.connections == before:  # the probe is now waiting for a greeting
            assert time.monotonic() < deadline, "the probe never reached the server"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        client.join(60)
        assert replies == [503]
        assert proc.wait(30) == 0
        err = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in err and "CancelledError" not in err, err[-2000:]


@pytest.fixture
def banner_service(dane_world):
    """A non-mail service on a port outside the probe list, on the address of one of the
    world's MX hosts: what an open /probe would let a client scan and read."""
    host = dane_world.domains["good-ee"].hosts[0]
    address = host.endpoints[0].address
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.write(b"SECRET-BANNER internal admin console\r\n")
        with contextlib.suppress(Exception):
            await writer.drain()
            await asyncio.wait_for(reader.read(100), 5)
        writer.close()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(serve, address, 0))
    port = server.sockets[0].getsockname()[1]
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield host.name.rstrip("."), port, accepted
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def open_config(world: World, anchor: Path, probe: str, targets: list[str]) -> str:
    """Like config_text without connect_port: probes connect where the request says."""
    return (
        "\n".join(
            line
            for line in config_text(world, anchor, targets, probe=probe).splitlines()
            if not line.startswith("connect_port:")
        )
        + "\n"
    )


async def test_probe_is_deny_by_default(dane_world, dane_trust_anchor, start):
    """Without probe.allow only configured targets may be probed: a client cannot make the
    exporter check (connect to) any other name, the exporter's own host included."""
    exporter = await start(
        config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"], probe="{}")
    )
    assert (await request(exporter.url + "probe?target=good-ee.example")).status == 200
    for target in ("no-tlsa.example", "localhost", "good-ee.example.evil.net"):
        reply = await request(exporter.url + f"probe?target={target}&debug=true")
        assert reply.status == 403, target
        assert "neither a configured target nor matched by probe.allow" in reply.text
    reply = await request(exporter.url + "probe?target=good-ee.example&port=22")
    assert (reply.status, "port 22 is not in probe.allowed_ports (25, 465, 587)" in reply.text) \
        == (403, True)  # fmt: skip
    text = (await request(exporter.url + "metrics")).text
    assert value(text, "dane_exporter_probes_denied_total") == 4


async def test_probe_never_reads_a_port_outside_the_list(
    dane_world, dane_trust_anchor, start, banner_service
):
    """Even with allow_any, a port outside probe.allowed_ports is refused before any
    connection; listed, the same request does reach the service (so the check can fail)."""
    mx, port, accepted = banner_service
    exporter = await start(open_config(dane_world, dane_trust_anchor, "{allow_any: true}", []))
    query = f"probe?target={mx}&kind=mx&port={port}&debug=true"
    reply = await request(exporter.url + query, timeout=HANG_GUARD)
    assert reply.status == 403
    assert "SECRET-BANNER" not in reply.text
    assert accepted == []

    listed = f"{{allow_any: true, allowed_ports: [25, {port}]}}"
    exporter = await start(open_config(dane_world, dane_trust_anchor, listed, []), "open.yml")
    reply = await request(exporter.url + query, timeout=HANG_GUARD)
    assert reply.status == 200
    assert "SECRET-BANNER" in reply.text
    assert accepted


async def test_allow_any_is_logged_as_a_warning(dane_world, dane_trust_anchor, start, caplog):
    caplog.set_level("WARNING", logger="dane_monitor.exporter")
    await start(config_text(dane_world, dane_trust_anchor, [], probe="{allow: ['*.example']}"))
    assert "allow_any" not in caplog.text
    await start(config_text(dane_world, dane_trust_anchor, [], probe="{allow_any: true}"), "b.yml")
    assert [r.levelname for r in caplog.records if "probe.allow_any is set" in r.message] == [
        "WARNING"
    ]


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
async def test_falling_behind_is_visible_within_the_first_minute(
    workers, dane_world, dane_trust_anchor, start, blackhole, caplog, monkeypatch
):
    """Six targets due every second, each check held 1 s by a resolver that never answers,
    one slot (one per worker): the exporter cannot keep up. It says so in metrics and in the
    log long before a cycle would have shown it, and a target never has more than one check
    waiting. With workers, they report their overdue targets and failed checks to the
    serving process, which warns naming the total concurrency."""
    from dane_monitor.exporter.scheduler import Ledger

    monkeypatch.setattr(Ledger, "WATCH_EVERY", 0.2)
    caplog.set_level("INFO", logger="dane_monitor.exporter")
    slots = max(1, workers)
    targets = [f"domain: slow-{i}.example" for i in range(6)]
    text = config_text(
        dane_world, dane_trust_anchor, targets, resolver=blackhole, concurrency=str(slots),
        workers=str(workers),
    )  # fmt: skip
    text = text.replace("interval: 60s, timeout: 5s", "interval: 1s, timeout: 1s")
    exporter = await start(text)
    deadline = time.monotonic() + 60
    while True:
        metrics = (await request(exporter.url + "metrics", timeout=HANG_GUARD)).text
        overdue = value(metrics, "dane_exporter_targets_overdue")
        if overdue or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert overdue is not None and 1 <= overdue <= 6
    assert (value(metrics, "dane_exporter_oldest_result_age_seconds") or 0) > 1
    assert value(metrics, "dane_exporter_checks_in_flight") <= slots
    await until(lambda: "falling behind" in caplog.text, "a warning that checks fall behind")
    warning = [r for r in caplog.records if "falling behind" in r.message]
    assert warning and warning[0].levelname == "WARNING"
    assert warning[0].overdue >= 1 and warning[0].concurrency == slots  # type: ignore[attr-defined]
    # The checks cut at their deadline are counted here, wherever they ran.
    await until(lambda: sum(exporter.stats.failures.values()) > 0, "failed checks counted")

    # Relieved (longer intervals), it catches up and says so.
    Path(exporter.config_path or "").write_text(text.replace("interval: 1s", "interval: 1h"))  # noqa: ASYNC240
    assert await exporter.reload() is None
    await until(lambda: "checks caught up" in caplog.text, "a log line that checks caught up")
    metrics = (await request(exporter.url + "metrics", timeout=HANG_GUARD)).text
    assert value(metrics, "dane_exporter_targets_overdue") == 0


async def test_a_healthy_exporter_reports_nothing_overdue(dane_world, dane_trust_anchor, start):
    exporter = await start(config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"]))
    await until(lambda: "good-ee.example" in exporter.scheduler.outcomes, "the first check")
    metrics = (await request(exporter.url + "metrics", timeout=HANG_GUARD)).text
    assert value(metrics, "dane_exporter_targets_overdue") == 0
    age = value(metrics, "dane_exporter_oldest_result_age_seconds")
    assert age is not None and 0 <= age < 60
