"""Test helpers for the DNS half of the local world: serve a signed hierarchy from a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dane_monitor.world.dnsserver import DNSServer
from dane_monitor.world.zones import SignedHierarchy


@contextmanager
def served(signed: SignedHierarchy, host: str = "127.0.0.1") -> Iterator[DNSServer]:
    """Run a :class:`DNSServer` for ``signed`` on its own event loop in a daemon thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dns-test-server", daemon=True)
    thread.start()
    server = DNSServer(signed, host=host)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
