"""`a3d export RUN`: per-frame 3DGS PLYs and an orbiting preview video of the animated splats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import (
    DurationOption,
    ForceOption,
    LoopModeOption,
    LoopOption,
    MotionChoiceOption,
    resolve_path,
    run_and_report,
    run_folder_argument,
)
from a3d_cli.stages.export import ExportOptions as _Defaults

_PREVIEW = "Preview video"


def export(
    ctx: typer.Context,
    run_dir: Annotated[Path, run_folder_argument("The run folder (after `a3d reconstruct`).")],
    motion: MotionChoiceOption = _Defaults.motion,
    frames: Annotated[str, typer.Option(help='Clip frames to export: "all", "0-7" or "0,4,8-15".')] = _Defaults.frames,
    fps: Annotated[float, typer.Option(help="Frames per second, sampled from the continuous motion.")] = _Defaults.fps,
    duration: DurationOption = _Defaults.duration,
    loop: LoopOption = _Defaults.loop,
    loop_mode: LoopModeOption = _Defaults.loop_mode,
    space: Annotated[
        str, typer.Option(help="Frame of the PLYs: original (the input asset's) or normalized (a3d's).")
    ] = _Defaults.space,
    ply_convention: Annotated[
        str, typer.Option(help="Axes of the PLYs: yup (+Y up, as glTF) or inria (+Y down, original 3DGS viewers).")
    ] = _Defaults.ply_convention,
    size: Annotated[
        int, typer.Option(help="Preview width and height in pixels.", rich_help_panel=_PREVIEW)
    ] = _Defaults.size,
    preview: Annotated[
        bool, typer.Option("--preview/--no-preview", help="Render export/preview.mp4.", rich_help_panel=_PREVIEW)
    ] = _Defaults.preview,
    elevation: Annotated[
        float, typer.Option(help="Elevation of the preview orbit, degrees.", rich_help_panel=_PREVIEW)
    ] = _Defaults.elevation_deg,
    loops: Annotated[
        int, typer.Option(help="Animation loops during the one preview orbit.", rich_help_panel=_PREVIEW)
    ] = _Defaults.preview_loops,
    background: Annotated[
        float, typer.Option(help="Preview background grey level, 0-1.", rich_help_panel=_PREVIEW)
    ] = _Defaults.background,
    force: ForceOption = False,
) -> None:
    """Write the animated splats as [bold]export/gaussians/frame_0000.ply …[/bold] and [bold]export/preview.mp4[/bold]."""
    from a3d_cli.stages import export as stage

    opts = stage.ExportOptions(
        motion=motion,  # type: ignore[arg-type]  # validated by ExportOptions
        frames=frames,
        fps=fps,
        duration=duration,
        loop=loop,
        loop_mode=loop_mode,  # type: ignore[arg-type]
        size=size,
        space=space,  # type: ignore[arg-type]
        ply_convention=ply_convention,  # type: ignore[arg-type]
        preview=preview,
        elevation_deg=elevation,
        preview_loops=loops,
        background=background,
    )
    run_dir = resolve_path(run_dir)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
