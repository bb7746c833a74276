"""The one pair of rich consoles every command prints through.

stdout carries results (or JSON with `--json`), stderr carries progress, notices and errors, so shell
pipelines can read stdout safely.

Neither console reads rich markup or emoji codes: what a3d prints is full of text it did not write (file
names, messages that quote an asset, fields of a run folder's manifest), and `[...]` in any of them would be
parsed as a style tag, or end the command with rich's `MarkupError`, and `:cat:` would become a picture.
Styled parts are built with `styled`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

out = Console(soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line from plain strings and (text, style) pairs; no part is read as markup.

    Examples:
        >>> styled(("error:", "bold red"), " ", "model[v2].glb is damaged").plain
        'error: model[v2].glb is damaged'
    """
    return Text.assemble(*parts)


def _strict(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (strict JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def echo_json(value: Any, indent: int | None = 2) -> None:
    """Print `value` on stdout as strict JSON, what `--json` promises: a non-finite number (a diverged loss
    recorded in a manifest, say) becomes null, which every parser reads, instead of a bare NaN."""
    typer.echo(json.dumps(_strict(value), indent=indent, allow_nan=False))
