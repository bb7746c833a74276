"""`a3d info RUN`: what each stage of a run folder did (from its manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import global_options, human_bytes
from a3d_cli.console import out


def info(ctx: typer.Context, run_dir: Annotated[Path, typer.Argument(help="The run folder.", metavar="RUN")]) -> None:
    """Show the stages recorded in a run folder: status, time, memory, outputs."""
    from a3d_cli.io.manifest import load_manifest
    from a3d_cli.stages.base import ensure_run_dir

    ensure_run_dir(run_dir, create=False)
    data = load_manifest(run_dir)
    if global_options(ctx).json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{run_dir}  (a3d {data.get('a3d_version', '?')})")
    for col in ("stage", "status", "time", "peak mem", "device", "outputs", "note"):
        table.add_column(col)
    for name, entry in data["stages"].items():
        note = entry.get("error", "") if entry.get("status") != "done" else ""
        table.add_row(
            name,
            entry.get("status", "?"),
            f"{entry.get('seconds', 0):.1f} s",
            human_bytes(entry.get("peak_memory_bytes")),
            entry.get("device", "-"),
            str(len(entry.get("outputs", []))),
            note,
        )
    out.print(table)
