"""Worker threads leave SIGINT and SIGTERM to the main thread (dane_monitor.threads): a
worker that took Ctrl-C would leave the event loop asleep until its next timer."""

from __future__ import annotations

import asyncio
import signal

from dane_monitor import threads
from dane_monitor.lookup import stub


def _blocked() -> set[int]:
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}


def test_to_thread_workers_block_the_signals_and_the_main_thread_does_not():
    blocked = asyncio.run(threads.to_thread(_blocked))
    assert {signal.SIGINT, signal.SIGTERM} <= blocked
    assert signal.SIGINT not in _blocked()


def test_the_dns_parse_pool_blocks_them_too():
    async def in_pool() -> set[int]:
        return await asyncio.get_running_loop().run_in_executor(stub._parse_pool(), _blocked)

    assert {signal.SIGINT, signal.SIGTERM} <= asyncio.run(in_pool())
