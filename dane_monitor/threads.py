"""Worker threads that leave signals to the main thread.

A process-directed signal (Ctrl-C's SIGINT, a service manager's SIGTERM) goes to any thread
that does not block it. When a worker thread takes it (a probe's host-name lookup, DNS
parsing, bcrypt), CPython notes it for the main thread, but nothing wakes the main thread's
event loop, asleep in epoll until its next timer: Ctrl-C is then ignored for as long as a
probe waits for a greeting (two minutes with ``--timeout 120``). Blocked in every worker, the
signal goes to the main thread, whose epoll returns EINTR and runs the handler at once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def leave_signals_to_main_thread() -> None:
    """Block SIGINT and SIGTERM in the calling thread (a ThreadPoolExecutor initializer)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


async def to_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """:func:`asyncio.to_thread`, with the signals blocked in the worker first."""

    def run() -> R:
        leave_signals_to_main_thread()
        return fn(*args, **kwargs)

    return await asyncio.to_thread(run)
