"""The argparse of ``dane-monitor``: one-line usage errors (exit 3), every default in
``--help``, no abbreviated options, and the right word suggested for a misspelled one.

Imported only when a command line needs a parser: ``dane-monitor --version`` and
``dane-monitor --help`` are answered without it (:mod:`dane_monitor.cli`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from dane_monitor.cli import UsageError, terminal_columns


def suggest(word: str, candidates: Sequence[str]) -> str | None:
    """The one candidate ``word`` most likely meant: the only one it abbreviates, else the
    closest spelling (difflib), else None."""
    starting = [c for c in candidates if c.startswith(word)]
    if len(starting) == 1:
        return starting[0]
    import difflib

    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return close[0] if close else None


def _shown_default(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help with every default shown, ``(default: 10)``, unless the help line
    already says it; options without a default (None, a flag's False) show none."""

    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("width") is None and len(args) < 3:
            kwargs["width"] = terminal_columns() - 2  # as argparse, without importing shutil
        super().__init__(prog, *args, **kwargs)

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            return False
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            return False
        return bool(action.option_strings) or action.nargs in ("?", "*")

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = (action.help or "").strip()
        if self._shows_default(action) and "default" not in text:
            shown = _shown_default(action.default).replace("%", "%%")
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        return text

    def _format_action(self, action: argparse.Action) -> str:
        if isinstance(action, argparse._SubParsersAction):
            # The commands, one line each, without a line for COMMAND itself above them.
            return "".join(self._format_action(a) for a in action._get_subactions())
        if not action.help and self._shows_default(action):
            # An option without a help line still shows its default.
            shown = _shown_default(action.default).replace("%", "%%")
            action = argparse.Action(
                action.option_strings, action.dest, nargs=action.nargs, default=action.default,
                choices=action.choices, metavar=action.metavar, help=f"default: {shown}",
            )  # fmt: skip
        return super()._format_action(action)


class Parser(argparse.ArgumentParser):
    """argparse without its exit 2 and multi-line usage dump: errors raise
    :class:`UsageError`, which :func:`main` prints as one line and turns into exit 3.

    No abbreviated options (``--res`` is not ``--resolver``: an abbreviation breaks when an
    option is added, and a misspelling must not be taken for another option); every default
    in ``--help``; an invalid choice names the closest valid one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        import re

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            valid = re.findall(r"'([^']*)'", choice.group(2))
            close = suggest(choice.group(1), valid) if choice.group(1) else None
            if close:
                message = f"{message[: choice.start()]}invalid choice: {choice.group(1)!r} " \
                    f"(did you mean {close}?)"  # fmt: skip
        hint = f"; see {self.prog} --help" if "--help" not in message else ""
        raise UsageError(self.prog, message + hint)
