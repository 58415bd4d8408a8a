"""The exporter as a real process under misbehaving clients (issue 14): 500 idle or slowloris
connections from many addresses, a wrong-password flood over TLS with real bcrypt, and
client-certificate authentication with real TLS clients. The tests assert who is served;
latencies are benchmarks/exporter.py's (lockout, authflood)."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import bcrypt
import pytest
import trustme
from test_exporter_app import config_text, serving
from test_exporter_client import request

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from load import Flood, Holders, sources  # the benchmark's misbehaving clients

HANG_GUARD = 60.0  # seconds: a deadline for a stuck exporter, not a speed requirement


async def wait_until(condition, what: str, seconds: float = HANG_GUARD) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("mode", ["idle", "slowloris"])
async def test_500_idle_or_slowloris_connections_lock_no_one_out(
    mode, dane_world, dane_trust_anchor, tmp_path
):
    path = tmp_path / "dane.yml"
    path.write_text(config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"]))
    with serving(path) as (_, url):
        host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
        # Ten addresses, 50 each: under the per-address cap (64), 500 of the 512 slots.
        # Bounded as a whole: a hang fails here, naming the await that never ended.
        async with (
            asyncio.timeout(4 * HANG_GUARD),
            Holders(host, int(port), 500, sources(10), mode=mode) as held,
        ):
            await wait_until(lambda: held.open >= 500, f"500 {mode} connections open")
            statuses = []
            for _ in range(5):
                for path_ in ("-/healthy", "metrics", "probe?target=good-ee.example"):
                    reply = await request(url + path_, timeout=HANG_GUARD)
                    statuses.append((path_, reply.status))
            metrics = (await request(url + "metrics", timeout=HANG_GUARD)).text
            assert held.open >= 400  # still holding while the others were served
        assert all(status == 200 for _, status in statuses), statuses
        line = next(x for x in metrics.splitlines() if x.startswith("dane_exporter_http_conn"))
        assert float(line.split()[1]) >= 400, line  # the exporter saw them, too
        assert held.refused == 0  # none of them was over a limit either


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("load-tls")
    ca, clients, strangers = trustme.CA(), trustme.CA(), trustme.CA()
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(d / "server.pem")
    )
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    clients.cert_pem.write_to_path(str(d / "clients.pem"))
    for name, issuer in (("scraper", clients), ("stranger", strangers)):
        cert = issuer.issue_cert(f"{name}.example")
        cert.private_key_and_cert_chain_pem.write_to_path(str(d / f"{name}.pem"))
    return d


async def test_a_wrong_password_flood_does_not_stop_authorised_scrapes(
    dane_world, dane_trust_anchor, tmp_path, pki
):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$")
    (tmp_path / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {pki / 'server.pem'}\n  key_file: {pki / 'server.pem'}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    path = tmp_path / "dane.yml"
    path.write_text(
        config_text(dane_world, dane_trust_anchor, ["domain: good-ee.example"])
        + f"web_config: {tmp_path / 'web.yml'}\n"
    )
    ca = str(pki / "ca.pem")
    with serving(path) as (_, url):
        assert url.startswith("https://")
        # Prometheus scraped before the flood began: its password is verified and remembered.
        first = await request(
            url + "metrics", cafile=ca, auth=("prometheus", "s3cret"), timeout=HANG_GUARD
        )
        assert first.status == 200
        async with (
            asyncio.timeout(4 * HANG_GUARD),
            Flood(url, 100, sources(100, first=20), cafile=ca) as flood,
        ):
            await wait_until(lambda: flood.statuses[401] >= 24, "the flood under way")
            statuses = []
            for _ in range(20):
                reply = await request(
                    url + "metrics", cafile=ca, auth=("prometheus", "s3cret"), timeout=HANG_GUARD
                )
                statuses.append(reply.status)
            flooded = dict(flood.statuses)
        assert statuses == [200] * 20
        # Every wrong password was refused, none let in, none answered with a server error.
        assert set(flooded) <= {401, "ConnectionResetError", "SSLError"}, flooded


async def test_client_certificates_are_verified_with_a_real_tls_client(
    dane_world, dane_trust_anchor, tmp_path, pki
):
    (tmp_path / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {pki / 'server.pem'}\n  key_file: {pki / 'server.pem'}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki / 'clients.pem'}\n"
    )
    path = tmp_path / "dane.yml"
    path.write_text(
        config_text(dane_world, dane_trust_anchor, []) + f"web_config: {tmp_path / 'web.yml'}\n"
    )
    ca = str(pki / "ca.pem")
    with serving(path) as (_, url):
        scraper = (str(pki / "scraper.pem"), str(pki / "scraper.pem"))
        reply = await request(url + "-/healthy", cafile=ca, certfile=scraper, timeout=HANG_GUARD)
        assert reply.status == 200
        stranger = (str(pki / "stranger.pem"), str(pki / "stranger.pem"))
        for certfile in (None, stranger):  # no certificate, or one from another CA
            assert await refused(url + "-/healthy", ca, certfile)


async def refused(url: str, ca: str, certfile: tuple[str, str] | None) -> bool:
    """Whether the server refuses the client: a failed handshake, or (TLS 1.3, where the
    client's side of the handshake may finish first) a connection closed without an answer."""
    try:
        reply = await request(url, cafile=ca, certfile=certfile, timeout=HANG_GUARD)
    except (ssl.SSLError, ConnectionError, IndexError, ValueError):
        return True
    return reply.status != 200
