"""An asyncio event loop on a background thread, for synchronous code: it serves the local
world (:mod:`dane_monitor.world`) and runs the pytest plugin's ``dane_check`` (which needs no
world, and so no ``world`` extra)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """Runs coroutines on a private event loop in a daemon thread.

    Servers started through :meth:`run` live on that loop until stopped through it too, so
    blocking code (subprocesses, synchronous tests) can talk to them meanwhile.
    """

    def __init__(self, name: str = "dane-world") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
