"""pytest plugin for DANE for SMTP: a local DNSSEC + STARTTLS world and DANE checks.

The assertion helpers and the scenario vocabulary are imported on first use, so that the
plugin's import (every pytest run, once installed) stays cheap::

    from pytest_dane import Record, assert_dane_valid, assert_tlsa_matches, assert_verdict
"""

from __future__ import annotations

from typing import Any

from dane_monitor.extras import missing

try:  # pytest is an optional dependency of dane-monitor: the 'pytest' extra
    import pytest  # noqa: F401
except ModuleNotFoundError as exc:
    raise missing("pytest", "pytest", "pytest_dane (the pytest plugin)") from exc

from pytest_dane.errors import DaneCheckFailed, DaneWarning

_LAZY = {
    "assert_dane_valid": "pytest_dane.assertions",
    "assert_findings": "pytest_dane.assertions",
    "assert_no_findings": "pytest_dane.assertions",
    "assert_tlsa_matches": "pytest_dane.assertions",
    "assert_verdict": "pytest_dane.assertions",
    "DaneConfig": "pytest_dane.config",
    "DaneScenario": "pytest_dane.scenario",
    "Behaviour": "dane_monitor.world",
    "Cert": "dane_monitor.world",
    "Host": "dane_monitor.world",
    "Record": "dane_monitor.world",
    "Scenario": "dane_monitor.world",
    "Server": "dane_monitor.world",
}

__all__ = ["DaneCheckFailed", "DaneWarning", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pytest_dane' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
