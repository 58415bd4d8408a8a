"""What the plugin raises and warns with (cheap to import: ``-W error::pytest_dane.DaneWarning``
names it before any check runs)."""

from __future__ import annotations

import pytest


class DaneCheckFailed(Exception):
    """A DANE rule does not hold; the message says what was expected, what was found and the
    fix. The plugin's items print it as their whole failure report, without a traceback."""


class DaneWarning(pytest.PytestWarning):
    """A warning check found something (rollover, expiry, stale records, other warnings).

    Shown in pytest's warnings summary; ``--dane-strict`` (or ``-W
    error::pytest_dane.DaneWarning``) turns it into a failure of the item."""
