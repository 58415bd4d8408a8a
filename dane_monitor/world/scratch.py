"""The scratch folder of ``dane-monitor world`` and ``demo``: made on entry, gone on exit.

Both commands write files a user passes to other tools while they run (the world's trust
anchors, the demo's exporter configuration). Left in ``$TMPDIR`` after the command ends,
they are litter: one ``dane-world-*``/``dane-demo-*`` folder per run. :func:`scratch_dir`
removes the folder it made however the command ends — normally, with an error before the
servers are up, on Ctrl-C (``KeyboardInterrupt``) and on SIGTERM, which it turns into
``SystemExit(143)`` while the command has no handler of its own for it. A folder the user
named (``--dir``, ``--anchor-dir``) is theirs and is left as it is.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

#: Exit status of a process ended by SIGTERM, as a shell reports it (128 + 15).
TERMINATED = 128 + signal.SIGTERM


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(TERMINATED)


@contextlib.contextmanager
def scratch_dir(given: str | Path | None, prefix: str) -> Iterator[Path]:
    """``given`` (created if missing, kept), or a new ``$TMPDIR/<prefix>XXXXXXXX`` folder
    that is removed when the block ends, whatever ends it.

    While the block runs, SIGTERM raises ``SystemExit(143)`` in the main thread (so that
    this cleanup runs) unless something installs its own handler, as an asyncio loop's
    ``add_signal_handler`` does; the previous handler is restored at the end.
    """
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if given is not None:
            path = Path(given)
            path.mkdir(parents=True, exist_ok=True)
            yield path
            return
        path = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
