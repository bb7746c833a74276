"""`a3d info RUN`: what each stage of a run folder did (from its manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from a3d_cli.commands.common import global_options, human_bytes
from a3d_cli.console import out


def quality(stage: str, metrics: dict[str, Any]) -> str:
    """The figures that say how well a stage did, in a few words (empty when it recorded none)."""
    parts: list[str] = []
    if "psnr" in metrics:
        static = f" (static {metrics['psnr_static']:.2f})" if isinstance(metrics.get("psnr_static"), (int, float)) else ""
        parts.append(f"PSNR {metrics['psnr']:.2f} dB{static}")
    if isinstance(metrics.get("final_loss"), (int, float)):
        parts.append(f"loss {metrics['final_loss']:.4g}")
    if "psnr_vs_coarse" in metrics:
        parts.append(f"PSNR vs coarse {metrics['psnr_vs_coarse']:.2f} dB")
    end = metrics.get("loss_end")
    if isinstance(end, dict) and isinstance(end.get("total"), (int, float)):
        start = metrics.get("loss_start", {}).get("total")
        parts.append(f"loss {start:.4g} → {end['total']:.4g}" if isinstance(start, (int, float)) else f"loss {end['total']:.4g}")
    if stage == "prepare":
        if "splats" in metrics:
            parts.append(f"{metrics['splats']} splats")
        if "front" in metrics:
            parts.append(f"front {metrics['front']}")
        if metrics.get("shaded"):
            parts.append("lit")
        cover = metrics.get("view_coverage")
        if isinstance(cover, list) and cover:
            parts.append(f"coverage {min(cover):.0%}–{max(cover):.0%}")
    return ", ".join(parts)


def info(ctx: typer.Context, run_dir: Annotated[Path, typer.Argument(help="The run folder.", metavar="RUN")]) -> None:
    """Show the stages recorded in a run folder: status, time, memory, quality figures, outputs."""
    from a3d_cli.errors import RunFolderError
    from a3d_cli.io.manifest import MANIFEST_NAME, load_manifest
    from a3d_cli.stages.base import ensure_run_dir

    ensure_run_dir(run_dir, create=False)
    if not (Path(run_dir) / MANIFEST_NAME).is_file():
        raise RunFolderError(
            f"{run_dir} is not an a3d run folder (it has no {MANIFEST_NAME}).",
            hint="Pass the folder given to `a3d prepare MODEL -o RUN` (or `a3d animate`).",
        )
    data = load_manifest(run_dir)
    if global_options(ctx).json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{run_dir}  (a3d {data.get('a3d_version', '?')})")
    for col in ("stage", "status", "time", "peak mem", "device", "quality", "outputs", "note"):
        table.add_column(col)
    for name, entry in data["stages"].items():
        note = entry.get("error", "") if entry.get("status") != "done" else ""
        table.add_row(
            name,
            entry.get("status", "?"),
            f"{entry.get('seconds', 0):.1f} s",
            human_bytes(entry.get("peak_memory_bytes")),
            entry.get("device", "-"),
            quality(name, entry.get("metrics", {})),
            str(len(entry.get("outputs", []))),
            note,
        )
    out.print(table)
