"""`a3d lift RUN [--orbit DIR]`: an orbit of views (a3d orbit's, or your own turntable) → splats + textured mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import ForceOption, optional_path, resolve_path, run_and_report, run_folder_argument

_FIT = "Splat fit (default: by device)"
_MESH = "Mesh and texture"
_PREVIEW = "Preview"


def lift(
    ctx: typer.Context,
    run: Annotated[Path, run_folder_argument("The run folder (its orbit/ is lifted unless --orbit is given).")],
    orbit: Annotated[
        Path | None,
        typer.Option(help="Lift this folder instead: frame_00.png … + cameras.json (docs/lift.md).", show_default=False),
    ] = None,
    resolution: Annotated[
        int | None, typer.Option(help="Fit size in pixels (576 on CUDA, 256 on CPU).", rich_help_panel=_FIT, show_default=False)
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Fit steps (2000 on CUDA, 400 on CPU).", rich_help_panel=_FIT, show_default=False)
    ] = None,
    views_per_step: Annotated[
        int | None, typer.Option(help="Views per step, 0 = all (all on CUDA, 4 on CPU).", rich_help_panel=_FIT, show_default=False)
    ] = None,
    max_splats: Annotated[
        int | None, typer.Option(help="Splats the fit starts from (100k on CUDA, 20k on CPU).", rich_help_panel=_FIT, show_default=False)
    ] = None,
    hull_resolution: Annotated[
        int | None, typer.Option(help="Visual-hull voxels per axis.", rich_help_panel=_FIT, show_default=False)
    ] = None,
    hull_tolerance: Annotated[
        int, typer.Option(help="Views allowed to call a hull voxel background.", rich_help_panel=_FIT)
    ] = 1,
    white_threshold: Annotated[
        float, typer.Option(help="Frames without alpha: distance from white above which a pixel is object.", rich_help_panel=_FIT)
    ] = 0.04,
    mesh_resolution: Annotated[
        int | None, typer.Option(help="TSDF voxels per axis (256 on CUDA, 128 on CPU).", rich_help_panel=_MESH, show_default=False)
    ] = None,
    max_faces: Annotated[int, typer.Option(help="Face budget of the mesh.", rich_help_panel=_MESH)] = 40_000,
    texture_size: Annotated[
        int | None, typer.Option(help="Texture size (1024 on CUDA, 512 on CPU).", rich_help_panel=_MESH, show_default=False)
    ] = None,
    preview_size: Annotated[
        int | None, typer.Option(help="Turntable height in pixels.", rich_help_panel=_PREVIEW, show_default=False)
    ] = None,
    preview_frames: Annotated[int, typer.Option(help="Turntable frames.", rich_help_panel=_PREVIEW)] = 48,
    fps: Annotated[float, typer.Option(help="Turntable frame rate.", rich_help_panel=_PREVIEW)] = 12.0,
    force: ForceOption = False,
) -> None:
    """Lift an orbit to [bold]RUN/lift/gaussians.ply[/bold] and a textured [bold]RUN/lift/model.glb[/bold]."""
    from a3d_cli.stages import lift as stage

    opts = stage.LiftOptions(
        orbit=optional_path(orbit),
        resolution=resolution,
        steps=steps,
        views_per_step=views_per_step,
        max_splats=max_splats,
        hull_resolution=hull_resolution,
        hull_tolerance=hull_tolerance,
        white_threshold=white_threshold,
        mesh_resolution=mesh_resolution,
        max_faces=max_faces,
        texture_size=texture_size,
        preview_size=preview_size,
        preview_frames=preview_frames,
        fps=fps,
    )
    run_dir = resolve_path(run)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
