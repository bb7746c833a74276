"""`a3d lift RUN [--orbit DIR]`: an orbit of views (a3d orbit's, or your own turntable) → splats + textured mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from a3d_cli.commands.common import ForceOption, optional_path, resolve_path, run_and_report, run_folder_argument
from a3d_cli.stages.lift import _DEVICE_DEFAULTS, LiftOptions
from a3d_cli.stages.lift import run as run_lift

_FIT = "Splat fit (default: by device)"
_MESH = "Mesh and texture"
_PREVIEW = "Preview"


def _by_device(text: str, name: str, panel: str, zero: str | None = None) -> Any:
    """An option whose default depends on the device: its help ends with the CUDA and CPU defaults, read
    from the lift stage's table (`a3d_cli.stages.lift._DEVICE_DEFAULTS`), so the numbers are written once.

    Args:
        text: the option's help, ending in a full stop.
        name: the `LiftOptions` field.
        panel: the help panel.
        zero: how to show a default of 0 (e.g. "all"); None shows the number.
    """
    shown = [zero if v == 0 and zero is not None else str(v) for v in _DEVICE_DEFAULTS[name]]
    return typer.Option(
        help=f"{text[:-1]} (default: {shown[0]} on CUDA, {shown[1]} on CPU).", rich_help_panel=panel, show_default=False
    )


def lift(
    ctx: typer.Context,
    run: Annotated[Path, run_folder_argument("The run folder (its orbit/ is lifted unless --orbit is given).")],
    orbit: Annotated[
        Path | None,
        typer.Option(
            help="Lift this folder instead: frame_00.png … + cameras.json (docs/lift.md).", show_default=False
        ),
    ] = None,
    resolution: Annotated[int | None, _by_device("Fit size in pixels.", "resolution", _FIT)] = None,
    steps: Annotated[int | None, _by_device("Fit steps.", "steps", _FIT)] = None,
    views_per_step: Annotated[
        int | None, _by_device("Views per step, 0 = all.", "views_per_step", _FIT, zero="all")
    ] = None,
    max_splats: Annotated[int | None, _by_device("Splats the fit starts from.", "max_splats", _FIT)] = None,
    hull_resolution: Annotated[int | None, _by_device("Visual-hull voxels per axis.", "hull_resolution", _FIT)] = None,
    hull_tolerance: Annotated[
        int, typer.Option(help="Views allowed to call a hull voxel background.", rich_help_panel=_FIT)
    ] = LiftOptions.hull_tolerance,
    white_threshold: Annotated[
        float | None,
        typer.Option(
            help="Frames without alpha: distance from white above which a pixel is object "
            "(default: measured from the frames' background, between 0.012 and 0.04).",
            show_default=False,
            rich_help_panel=_FIT,
        ),
    ] = LiftOptions.white_threshold,
    mesh_resolution: Annotated[int | None, _by_device("TSDF voxels per axis.", "mesh_resolution", _MESH)] = None,
    max_faces: Annotated[
        int, typer.Option(help="Face budget of the mesh.", rich_help_panel=_MESH)
    ] = LiftOptions.max_faces,
    open_undersides: Annotated[
        bool,
        typer.Option(
            help="Open the hidden space under overhangs (a body between its wheels) up to their seen lower edge.",
            rich_help_panel=_MESH,
        ),
    ] = LiftOptions.open_undersides,
    mesh_smoothing: Annotated[
        int | None,
        typer.Option(
            help="Taubin smoothing passes over the mesh surface before decimation: fewer lumps under lights, "
            "thin parts kept; 0 = none (default 40).",
            show_default=False,
            rich_help_panel=_MESH,
        ),
    ] = LiftOptions.mesh_smoothing,
    mesh_level: Annotated[
        float | None,
        _by_device(
            "Voxels outside the fused surface's zero level that the mesh is taken at (-1 to 1): a short fit leaves "
            "the surface inside the object's outline.",
            "mesh_level",
            _MESH,
        ),
    ] = None,
    unseen_radius: Annotated[
        float | None,
        typer.Option(
            help="The texture colours surface no view saw from the seen surface within this fraction of the "
            "scene's half-width; 0 keeps the fitted splats' colours there (default 0.3).",
            show_default=False,
            rich_help_panel=_MESH,
        ),
    ] = LiftOptions.unseen_radius,
    texture_size: Annotated[int | None, _by_device("Texture size.", "texture_size", _MESH)] = None,
    preview_size: Annotated[int | None, _by_device("Turntable height in pixels.", "preview_size", _PREVIEW)] = None,
    preview_frames: Annotated[
        int, typer.Option(help="Turntable frames.", rich_help_panel=_PREVIEW)
    ] = LiftOptions.preview_frames,
    fps: Annotated[float, typer.Option(help="Turntable frame rate.", rich_help_panel=_PREVIEW)] = LiftOptions.fps,
    force: ForceOption = False,
) -> None:
    """Lift an orbit to [bold]RUN/lift/gaussians.ply[/bold] and a textured [bold]RUN/lift/model.glb[/bold]."""
    opts = LiftOptions(
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
        open_undersides=open_undersides,
        mesh_smoothing=mesh_smoothing,
        mesh_level=mesh_level,
        unseen_radius=unseen_radius,
        texture_size=texture_size,
        preview_size=preview_size,
        preview_frames=preview_frames,
        fps=fps,
    )
    run_dir = resolve_path(run)
    run_and_report(ctx, lambda rt: run_lift(run_dir, opts, rt), force=force)
