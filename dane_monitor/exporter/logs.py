"""Structured logs: one event a line, logfmt (``ts=… level=info msg="…" key=value``) or JSON.

Fields passed as ``extra={...}`` to a ``logging`` call become keys of the line.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    out: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and not any(c in text for c in ' ="\\\n\t') and text.isprintable():
        return text
    return json.dumps(text)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def setup(fmt: str = "logfmt", level: str = "info", stream=None) -> logging.Handler:
    """Send the exporter's logs (logger ``dane_monitor``) to ``stream`` (stderr), only there."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    logger = logging.getLogger("dane_monitor")
    reset()
    handler._dane_exporter = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return handler


def reset() -> None:
    """Undo :func:`setup` (for tests and embedding)."""
    logger = logging.getLogger("dane_monitor")
    for old in list(logger.handlers):
        if getattr(old, "_dane_exporter", False):
            logger.removeHandler(old)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
