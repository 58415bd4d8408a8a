"""The optional parts of dane-monitor and the extras that install what they need.

A plain ``pip install dane-monitor`` runs ``check``, ``lookup``, ``tlsa``, ``preflight``,
``resolver-check`` and the exporter (``serve``). Two parts need more:

- ``world`` (trustme): the local DNSSEC + STARTTLS world behind ``dane-monitor world`` and
  ``dane-monitor demo`` and the ``pytest_dane`` fixtures that start it;
- ``pytest`` (pytest): the pytest plugin ``pytest_dane``.

Importing such a part without its extra raises :class:`MissingExtra` (a
``ModuleNotFoundError``), whose message says what to install; the command line prints it as
one line (exit 3).
"""

from __future__ import annotations

__all__ = ["MissingExtra", "missing"]


class MissingExtra(ModuleNotFoundError):
    """A part of dane-monitor whose extra is not installed; the message names the extra."""


def missing(module: str, extra: str, what: str) -> MissingExtra:
    """The error for ``what``, which needs ``module`` from the ``extra`` extra."""
    return MissingExtra(
        f"{what} needs {module}, which the {extra!r} extra installs: "
        f"pip install 'dane-monitor[{extra}]'",
        name=module,
    )
