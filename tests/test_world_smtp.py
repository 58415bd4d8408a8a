"""SMTP servers of the local world: the dialogue and each misbehaviour seen by a raw asyncio
client, and confirmed independently by ``openssl s_client`` (STARTTLS, chains, DANE)."""

from __future__ import annotations

import asyncio
import errno
import re
import shutil
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from loopback import HAS_IPV6

from dane_monitor.world.pki import PKI, Chain, self_signed
from dane_monitor.world.smtp import MAX_ERRORS, MAX_LINE, Behaviour, SMTPServer

B = Behaviour
T = TypeVar("T")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run one test's coroutine with a hard deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module")
def ecdsa(pki: PKI) -> Chain:
    return pki.issue(["mail.example"])


@pytest.fixture(scope="module")
def rsa(pki: PKI) -> Chain:
    return pki.issue(["mail.example"], key_type="rsa")


def client_context(pki: PKI) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=pki.root_pem.decode())


class Client:
    """A line-level SMTP client with a deadline on every read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: SMTPServer, **kwargs: Any) -> Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, **kwargs), 5
        )
        return cls(reader, writer)

    async def reply(self) -> list[str]:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 5)
            assert line.endswith(b"\r\n"), line
            lines.append(line[:-2].decode())
            if line[3:4] == b" ":
                return lines

    async def command(self, line: str) -> list[str]:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def starttls(self, ctx: ssl.SSLContext, server_hostname: str | None) -> None:
        assert (await self.command("STARTTLS"))[-1].startswith("220 ")
        await asyncio.wait_for(self.writer.start_tls(ctx, server_hostname=server_hostname), 5)

    async def at_eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    async def closed_by_server(self) -> bool:
        """EOF, or a reset (an aborted TLS connection has no close_notify)."""
        try:
            return await self.at_eof()
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.writer.transport.abort()


# -- the dialogue -------------------------------------------------------------------------


def test_normal_dialogue_through_starttls(pki: PKI, ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.1", chains=[ecdsa]) as server:
            c = await Client.connect(server)
            greeting = await c.reply()
            assert greeting == ["220 mail.example ESMTP dane-monitor test server"]
            ehlo = await c.command("EHLO client.example")
            assert ehlo[0] == "250-mail.example"
            assert ehlo[-1] == "250 STARTTLS"  # last, where naive parsers miss it
            assert {"250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME"} <= set(ehlo)
            assert (await c.command("NOOP")) == ["250 2.0.0 Ok"]
            assert (await c.command("FOO bar"))[0].startswith("500 ")
            await c.starttls(client_context(pki), "mail.example")
            tls = c.writer.get_extra_info("ssl_object")
            assert tls.getpeercert(binary_form=True) == ecdsa.leaf.public_bytes(
                serialization.Encoding.DER
            )
            # RFC 3207: state is reset, and STARTTLS is no longer offered
            assert (await c.command("MAIL FROM:<a@client.example>"))[0].startswith("503 ")
            ehlo = await c.command("EHLO client.example")
            assert not any("STARTTLS" in line for line in ehlo)
            assert (await c.command("STARTTLS"))[0].startswith("554 ")
            assert (await c.command("MAIL FROM:<a@client.example>")) == ["250 2.1.0 Ok"]
            assert (await c.command("RCPT TO:<b@mail.example>")) == ["250 2.1.5 Ok"]
            assert (await c.command("DATA"))[0].startswith("354 ")
            done = await c.command("Subject: hi\r\n\r\nbody\r\n.")
            assert done[0].startswith("250 ")
            assert (await c.command("RSET")) == ["250 2.0.0 Ok"]
            assert (await c.command("QUIT")) == ["221 2.0.0 Bye"]
            assert await c.at_eof()
            c.close()
            assert (server.connections, server.handshakes, server.last_sni) == (
                1,
                1,
                "mail.example",
            )

    run(scenario())


def test_sni_recorded_also_when_absent(pki: PKI, ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.2", chains=[ecdsa]) as server:
            assert server.last_sni is None
            c = await Client.connect(server)
            await c.reply()
            await c.command("EHLO client.example")
            ctx = client_context(pki)
            ctx.check_hostname = False
            await c.starttls(ctx, "other.example")
            assert server.last_sni == "other.example"
            c.close()
            c = await Client.connect(server)
            await c.reply()
            await c.command("HELO client.example")
            await c.starttls(ctx, None)
            assert (await c.command("NOOP")) == ["250 2.0.0 Ok"]
            assert server.last_sni is None
            assert server.snis == ["other.example", None]
            c.close()

    run(scenario())


def test_implicit_tls(pki: PKI, ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.3", chains=[ecdsa], implicit_tls=True) as server:
            c = await Client.connect(
                server, ssl=client_context(pki), server_hostname="mail.example"
            )
            assert (await c.reply())[0].startswith("220 mail.example")
            ehlo = await c.command("EHLO client.example")
            assert not any("STARTTLS" in line for line in ehlo)
            assert (await c.command("STARTTLS"))[0].startswith("554 ")
            assert server.last_sni == "mail.example"
            assert server.handshakes == 1
            c.close()

    run(scenario())


def test_dual_chain_served_by_what_the_client_can_verify(pki: PKI, ecdsa: Chain, rsa: Chain):
    async def leaf_for(server: SMTPServer, ctx: ssl.SSLContext) -> bytes:
        c = await Client.connect(server)
        await c.reply()
        await c.command("EHLO client.example")
        await c.starttls(ctx, "mail.example")
        der = c.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        c.close()
        return der

    async def scenario() -> None:
        async with SMTPServer("127.0.2.4", chains=[ecdsa, rsa]) as server:
            default = client_context(pki)
            rsa_only = client_context(pki)
            rsa_only.maximum_version = ssl.TLSVersion.TLSv1_2
            rsa_only.set_ciphers("aRSA")
            der = serialization.Encoding.DER
            assert await leaf_for(server, default) == ecdsa.leaf.public_bytes(der)
            assert await leaf_for(server, rsa_only) == rsa.leaf.public_bytes(der)

    run(scenario())


# -- misbehaviour, seen by a raw client ------------------------------------------------------


def test_multiline_greeting_and_starttls_not_last(ecdsa: Chain) -> None:
    async def scenario() -> None:
        behaviours = {B.MULTILINE_GREETING, B.STARTTLS_NOT_LAST}
        async with SMTPServer("127.0.2.5", chains=[ecdsa], behaviours=behaviours) as server:
            c = await Client.connect(server)
            greeting = await c.reply()
            assert len(greeting) == 3
            assert [line[:4] for line in greeting] == ["220-", "220-", "220 "]
            ehlo = await c.command("EHLO client.example")
            starttls = [i for i, line in enumerate(ehlo) if line[4:] == "STARTTLS"]
            assert starttls == [1]
            assert len(ehlo) > 2
            c.close()

    run(scenario())


def test_no_starttls_and_refused(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.6", behaviours=[B.NO_STARTTLS]) as server:
            c = await Client.connect(server)
            await c.reply()
            ehlo = await c.command("EHLO client.example")
            assert not any("STARTTLS" in line for line in ehlo)
            assert (await c.command("STARTTLS"))[0].startswith("502 ")
            c.close()
        async with SMTPServer("127.0.2.6", behaviours=[B.STARTTLS_REFUSED]) as server:
            c = await Client.connect(server)
            await c.reply()
            assert "250 STARTTLS" in await c.command("EHLO client.example")
            assert (await c.command("STARTTLS")) == [
                "454 4.7.0 TLS not available due to local problem"
            ]
            assert (await c.command("NOOP")) == ["250 2.0.0 Ok"]  # the session goes on
            c.close()

    run(scenario())


def test_close_after_ehlo(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.7", chains=[ecdsa], behaviours=[B.CLOSE_AFTER_EHLO]) as s:
            c = await Client.connect(s)
            await c.reply()
            assert (await c.command("EHLO client.example"))[-1] == "250 STARTTLS"
            assert await c.at_eof()
            c.close()

    run(scenario())


def test_huge_line_sends_megabytes_without_crlf() -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.8", behaviours=[B.HUGE_LINE]) as server:
            c = await Client.connect(server)
            received = 0
            while received < 4 * 1024 * 1024:
                chunk = await asyncio.wait_for(c.reader.read(1 << 20), 5)
                assert chunk, "server closed before 4 MB"
                assert b"\n" not in chunk
                received += len(chunk)
            c.close()

    run(scenario())


def test_tls_handshake_failure_sends_an_alert(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.9", behaviours=[B.TLS_HANDSHAKE_FAILURE]) as server:
            c = await Client.connect(server)
            await c.reply()
            await c.command("EHLO client.example")
            ctx = ssl.create_default_context()
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                await c.starttls(ctx, "mail.example")
            assert server.handshakes == 0
            c.close()

    run(scenario())


def test_hang_and_stop_is_prompt_with_hung_clients(pki: PKI, ecdsa: Chain) -> None:
    async def scenario() -> None:
        hung = SMTPServer("127.0.2.10", behaviours=[B.HANG_AFTER_CONNECT])
        idle = SMTPServer("127.0.2.10", chains=[ecdsa])
        await hung.start()
        await idle.start()
        clients = [await Client.connect(hung) for _ in range(3)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(clients[0].reader.read(1), 0.5)
        assert hung.connections == 3
        # one client idle in plaintext, one inside TLS, one half-way through STARTTLS
        plain = await Client.connect(idle)
        await plain.reply()
        in_tls = await Client.connect(idle)
        await in_tls.reply()
        await in_tls.command("EHLO client.example")
        await in_tls.starttls(client_context(pki), "mail.example")
        halfway = await Client.connect(idle)
        await halfway.reply()
        await halfway.command("STARTTLS")  # and never sends a ClientHello
        # stop() does not wait for clients to leave: these never do until closed below, so
        # a stop() that waited for them would never return (the 30 s bound only turns that
        # hang into a failure; a prompt stop() takes milliseconds)
        await asyncio.wait_for(asyncio.gather(hung.stop(), idle.stop()), 30)
        for c in [*clients, plain, in_tls, halfway]:
            assert await c.closed_by_server()
            c.close()
        await hung.stop()  # idempotent
        with pytest.raises(ConnectionRefusedError):
            await Client.connect(idle)  # nobody listens any more

    run(scenario())


async def until(condition: Callable[[], bool], deadline: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after a deadline no loaded machine reaches."""
    limit = asyncio.get_running_loop().time() + deadline
    while not condition():
        assert asyncio.get_running_loop().time() < limit, "condition never held"
        await asyncio.sleep(0.01)


def test_hung_server_handler_ends_when_client_leaves() -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.10", behaviours=[B.HANG_AFTER_CONNECT]) as server:
            c = await Client.connect(server)
            await until(lambda: len(server._sessions) == 1)
            c.writer.close()
            await until(lambda: not server._sessions)

    run(scenario())


# -- robustness against misbehaving clients ---------------------------------------------------


def test_overlong_line_and_too_many_errors_end_the_session_not_the_server(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.11", chains=[ecdsa]) as server:
            c = await Client.connect(server)
            await c.reply()
            c.writer.write(b"NOOP " + b"x" * (2 * MAX_LINE))
            assert (await c.reply())[0].startswith("500 5.5.2 Error: line too long")
            assert await c.at_eof()
            c.close()

            c = await Client.connect(server)
            await c.reply()
            for _ in range(MAX_ERRORS - 1):
                assert (await c.command("\x01\x02"))[0].startswith("500 ")
            assert (await c.command("BOGUS"))[0].startswith("421 ")
            assert await c.at_eof()
            c.close()

            c = await Client.connect(server)
            await c.reply()
            c.writer.write(b"EHLO bare-lf.example\n")  # tolerated
            assert (await c.reply())[0] == "250-mail.example"
            c.close()
            assert server.connections == 3

    run(scenario())


def test_plaintext_pipelined_behind_starttls_is_refused(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.12", chains=[ecdsa]) as server:
            c = await Client.connect(server)
            await c.reply()
            await c.command("EHLO client.example")
            c.writer.write(b"STARTTLS\r\nMAIL FROM:<injected@example>\r\n")
            assert (await c.reply())[0].startswith("220 ")
            assert await c.at_eof()
            c.close()
            assert server.handshakes == 0

    run(scenario())


def test_tls_without_starttls_gets_an_error_not_a_hang(pki: PKI, ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.12", chains=[ecdsa]) as server:
            c = await Client.connect(server)
            await c.reply()
            with pytest.raises(ssl.SSLError):
                await asyncio.wait_for(c.writer.start_tls(client_context(pki)), 5)
            c.close()

    run(scenario())


# -- construction and binding -----------------------------------------------------------------


def test_bind_given_port_distinct_addresses_and_taken_port(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.2.13", chains=[ecdsa]) as first:
            port = first.port
            assert port > 0
            assert first.address == ("127.0.2.13", port)
            assert first.endpoint == f"127.0.2.13:{port}"
            async with SMTPServer("127.0.2.14", port, chains=[ecdsa]) as second:
                assert second.port == port
                c = await Client.connect(second)
                assert (await c.reply())[0].startswith("220 ")
                c.close()
                assert (first.connections, second.connections) == (0, 1)
            with pytest.raises(OSError, match="address already in use") as taken:
                await SMTPServer("127.0.2.13", port, chains=[ecdsa]).start()
            assert taken.value.errno == errno.EADDRINUSE

    run(scenario())


@pytest.mark.skipif(not HAS_IPV6, reason="no ::1")
def test_ipv6_loopback(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("::1", chains=[ecdsa]) as server:
            assert server.endpoint == f"[::1]:{server.port}"
            c = await Client.connect(server)
            assert (await c.reply())[0].startswith("220 ")
            c.close()

    run(scenario())


def test_constructor_checks(pki: PKI, ecdsa: Chain) -> None:
    with pytest.raises(ValueError, match="chains"):
        SMTPServer()
    with pytest.raises(ValueError, match="chains"):
        SMTPServer(behaviours=[B.NO_STARTTLS], implicit_tls=True)
    assert SMTPServer(behaviours=["no-starttls"]).behaviours == {B.NO_STARTTLS}
    two_ecdsa = SMTPServer(chains=[ecdsa, pki.issue(["mail.example"])])
    with pytest.raises(ValueError, match="two ecdsa chains"):
        run(two_ecdsa.start())


# -- independent confirmation: openssl s_client -----------------------------------------------

PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


async def s_client(
    server: SMTPServer, *args: str, starttls: bool = True, deadline: float = 10
) -> tuple[int | None, str, list[x509.Certificate]]:
    """Run ``openssl s_client`` against ``server``: (exit status or None on timeout, output,
    certificates it printed)."""
    cmd = ["openssl", "s_client", "-connect", server.endpoint, "-servername", "mail.example"]
    if starttls:
        cmd += ["-starttls", "smtp"]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), deadline)
        status: int | None = proc.returncode
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        status = None
    certs = [x509.load_pem_x509_certificate(m) for m in PEM_RE.findall(out)]
    return status, out.decode(errors="replace"), certs


def dane(domain: str, *records: str) -> list[str]:
    args = ["-dane_tlsa_domain", domain, "-verify_return_error"]
    for record in records:
        args += ["-dane_tlsa_rrdata", record]
    return args


@pytest.mark.openssl
@needs_openssl
def test_s_client_starttls_shows_the_chain_dual_chain_by_client(ecdsa: Chain, rsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.3.1", chains=[ecdsa, rsa]) as server:
            status, out, certs = await s_client(server, "-showcerts")
            assert status == 0, out
            assert tuple(certs) == ecdsa.certs
            status, out, certs = await s_client(server, "-showcerts", "-tls1_2", "-cipher", "aRSA")
            assert status == 0, out
            assert tuple(certs) == rsa.certs
            assert server.snis == ["mail.example", "mail.example"]

    run(scenario())


@pytest.mark.openssl
@needs_openssl
def test_s_client_dane_ee_and_ta(pki: PKI, ecdsa: Chain) -> None:
    wrong = self_signed(["mail.example"])

    async def scenario() -> None:
        async with SMTPServer("127.0.3.2", chains=[ecdsa]) as server:
            status, out, _ = await s_client(server, *dane("mail.example", ecdsa.tlsa(3)))
            assert status == 0, out
            assert "Verification: OK" in out
            assert re.search(r"DANE TLSA 3 1 1 \.\.\.\w+ matched EE certificate at depth 0", out)

            status, out, _ = await s_client(server, *dane("mail.example", wrong.tlsa(3)))
            assert status != 0
            assert "Verification: OK" not in out

            status, out, _ = await s_client(server, *dane("mail.example", ecdsa.tlsa(2)))
            assert status == 0, out
            assert re.search(r"DANE TLSA 2 1 1 \.\.\.\w+ matched TA certificate at depth 1", out)

            # the root is not served: a 2 1 1 record for it cannot be used
            status, out, _ = await s_client(server, *dane("mail.example", ecdsa.tlsa(2, depth=2)))
            assert status != 0

        with_root = pki.issue(["mail.example"], include_root=True)
        async with SMTPServer("127.0.3.2", chains=[with_root]) as server:
            record = with_root.tlsa(2, depth=2)
            status, out, _ = await s_client(server, *dane("mail.example", record))
            assert status == 0, out
            assert re.search(r"DANE TLSA 2 1 1 \.\.\.\w+ matched TA certificate at depth 2", out)

    run(scenario())


@pytest.mark.openssl
@needs_openssl
def test_s_client_dane_ta_name_mismatch_and_expiry(pki: PKI) -> None:
    other = pki.issue(["other.example"])
    expired = pki.issue(["mail.example"], expired=True)

    async def scenario() -> None:
        async with SMTPServer("127.0.3.3", chains=[other]) as server:
            status, out, _ = await s_client(server, *dane("mail.example", other.tlsa(2)))
            assert status != 0
            assert "hostname mismatch" in out
            # DANE-EE has no name checks (RFC 7672 §3.1.1); OpenSSL needs telling
            ee = dane("mail.example", other.tlsa(3))
            status, out, _ = await s_client(server, *ee)
            assert status != 0
            assert "hostname mismatch" in out
            status, out, _ = await s_client(server, *ee, "-dane_ee_no_namechecks")
            assert status == 0, out
        async with SMTPServer("127.0.3.3", chains=[expired]) as server:
            status, out, _ = await s_client(server, *dane("mail.example", expired.tlsa(2)))
            assert status != 0
            assert "certificate has expired" in out
            # nor expiry checks
            ee = dane("mail.example", expired.tlsa(3))
            status, out, _ = await s_client(server, *ee, "-dane_ee_no_namechecks")
            assert status == 0, out

    run(scenario())


@pytest.mark.openssl
@needs_openssl
def test_s_client_implicit_tls_and_multiline(pki: PKI, ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.3.4", chains=[ecdsa], implicit_tls=True) as server:
            status, out, certs = await s_client(server, "-showcerts", starttls=False)
            assert status == 0, out
            assert tuple(certs) == ecdsa.certs
        behaviours = [B.MULTILINE_GREETING, B.STARTTLS_NOT_LAST]
        async with SMTPServer("127.0.3.4", chains=[ecdsa], behaviours=behaviours) as server:
            status, out, _ = await s_client(server, *dane("mail.example", ecdsa.tlsa(3)))
            assert status == 0, out
            assert "Didn't find STARTTLS" not in out
            assert server.handshakes == 1

    run(scenario())


@pytest.mark.openssl
@needs_openssl
def test_s_client_sees_each_failure(ecdsa: Chain) -> None:
    async def scenario() -> None:
        async with SMTPServer("127.0.3.5", behaviours=[B.NO_STARTTLS]) as server:
            status, out, _ = await s_client(server)
            assert status != 0
            assert "Didn't find STARTTLS in server response" in out
            assert "wrong version number" in out  # our 500 to its ClientHello
            assert server.handshakes == 0
        async with SMTPServer("127.0.3.5", behaviours=[B.STARTTLS_REFUSED]) as server:
            status, out, _ = await s_client(server)
            assert status != 0
            assert "Didn't find STARTTLS" not in out
            assert "wrong version number" in out  # it tried TLS anyway, after the 454
            assert server.handshakes == 0
        async with SMTPServer("127.0.3.5", behaviours=[B.TLS_HANDSHAKE_FAILURE]) as server:
            status, out, _ = await s_client(server)
            assert status != 0
            assert "alert handshake failure" in out
        async with SMTPServer("127.0.3.5", behaviours=[B.HANG_AFTER_CONNECT]) as server:
            status, out, _ = await s_client(server, deadline=1.5)
            assert status is None  # s_client waits for a greeting that never comes
            assert server.connections == 1

    run(scenario())
