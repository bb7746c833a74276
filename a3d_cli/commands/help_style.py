"""Help that reads cleanly: no `<bool>` after on/off flags, no `{MODEL}` braces in usage lines, and a
docstring's paragraphs wrapped to the terminal rather than at its source line breaks.

Why: Typer 0.29 labels every option with its type (`--force <bool>`), wraps required arguments in braces
in the usage line (`a3d prepare [OPTIONS] {MODEL}`), which is noise next to our own metavars, and keeps the
single line breaks of every paragraph after the first, so they show as ragged lines. Each command's
parameters are switched to these subclasses, and its help text reflowed, the first time the command is
looked up (see `A3DGroup`).
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperArgument, TyperOption


class _FlagOption(TyperOption):
    """An option shown without a type label when it is an on/off flag."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


class _PlainArgument(TyperArgument):
    """An argument shown by its bare name in usage lines (optional ones keep their brackets)."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        """The element type of a repeated argument (`<str>`, not `<list[str]>`): the usage line's `...`
        already says it repeats."""
        shown = super().display_type_rich(ctx)
        if shown and self.nargs != 1 and shown.startswith("<list[") and shown.endswith("]>"):
            return f"<{shown[6:-2]}>"
        return shown


def _tidy_param(param: Any) -> Any:
    if type(param) is TyperOption:
        param.__class__ = _FlagOption
    elif type(param) is TyperArgument:
        param.__class__ = _PlainArgument
    return param


def reflow_help(text: str) -> str:
    """`text` (a docstring) with each paragraph's single line breaks turned into spaces, so the help
    formatter wraps it; paragraphs marked with click's `\\b` keep their lines."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


def tidy_help(command: Any) -> Any:
    """Switch a (Typer-built) command's parameters, its `--help` option and its subcommands' to the
    cleaner help classes, in place; returns the command."""
    if getattr(command, "_a3d_tidy", False):
        return command
    if command.help:
        command.help = reflow_help(command.help)
    for param in command.params:
        _tidy_param(param)
    help_option = command.get_help_option
    command.get_help_option = lambda ctx: _tidy_param(help_option(ctx))
    command._a3d_tidy = True
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command
