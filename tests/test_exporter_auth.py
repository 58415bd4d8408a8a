"""Basic auth that a password flood cannot turn against the scrapes (issue 14): verified
credentials are remembered and never evicted by failures, failed attempts are limited per
client address, and bcrypt runs on its own bounded pool."""

from __future__ import annotations

import asyncio
import base64

import bcrypt
import pytest

from dane_monitor.exporter import webconfig
from dane_monitor.exporter.webconfig import WebConfig


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def counted(monkeypatch) -> list[bytes]:
    """Every bcrypt check made, by password."""
    calls: list[bytes] = []
    real = webconfig._checkpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(webconfig, "_checkpw", checkpw)
    return calls


def web() -> WebConfig:
    return WebConfig(users={"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(4))})


def test_a_flood_of_wrong_passwords_from_one_address_stops_costing_bcrypt(counted):
    w = web()

    async def run() -> tuple[list[bool], bool, bool, bool]:
        wrong = [await w.authorized(header("prometheus", f"w{i}"), "10.0.0.1") for i in range(30)]
        from_flooder = await w.authorized(header("prometheus", "right"), "10.0.0.1")
        from_scraper = await w.authorized(header("prometheus", "right"), "10.0.0.2")
        remembered = await w.authorized(header("prometheus", "right"), "10.0.0.1")
        return wrong, from_flooder, from_scraper, remembered

    wrong, from_flooder, from_scraper, remembered = asyncio.run(run())
    assert not any(wrong)
    assert len(counted) == webconfig.FAILURES_PER_MINUTE + 1  # 10 wrong, then the scraper's
    assert (from_flooder, from_scraper) == (False, True)
    assert remembered  # verified once: no bcrypt, whatever the address's failures


def test_failures_never_evict_a_verified_scraper(counted):
    w = web()

    async def run() -> bool:
        assert await w.authorized(header("prometheus", "right"), "10.0.0.2")
        for i in range(3000):  # many addresses, each below its limit
            await w.authorized(header("prometheus", f"w{i}"), f"10.1.{i // 250}.{i % 250}")
        before = len(counted)
        ok = await w.authorized(header("prometheus", "right"), "10.0.0.2")
        assert len(counted) == before  # still remembered: no bcrypt for the scraper
        return ok

    assert asyncio.run(run())


def test_bcrypt_work_waiting_is_bounded(counted, monkeypatch):
    w = web()
    monkeypatch.setattr(w, "_bcrypt_pending", webconfig.BCRYPT_QUEUE)
    assert not asyncio.run(w.authorized(header("prometheus", "right"), "10.0.0.3"))
    assert counted == []  # refused at once, no bcrypt queued
