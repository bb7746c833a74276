"""The one pair of rich consoles every command prints through.

stdout carries results (or JSON with `--json`), stderr carries progress, notices and errors, so shell
pipelines can read stdout safely.
"""

from __future__ import annotations

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
