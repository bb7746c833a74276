"""`a3d mesh-animate RUN`: the input mesh moved by the fitted motion, as an animated GLB + vertex cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import ForceOption, resolve_path, run_and_report, run_folder_argument
from a3d_cli.stages.mesh_animate import MeshAnimateOptions


def mesh_animate(
    ctx: typer.Context,
    run_dir: Annotated[Path, run_folder_argument("The run folder of a mesh input (after `a3d reconstruct`).")],
    motion: Annotated[
        str, typer.Option(help="Motion file: auto (refined if present, else coarse), coarse or refined.")
    ] = MeshAnimateOptions.motion,
    fps: Annotated[
        float | None, typer.Option(help="Animation rate; default: the motion's own (8 fps).", show_default=False)
    ] = MeshAnimateOptions.fps,
    interpolation: Annotated[
        str, typer.Option(help="linear (smooth blend between frames) or step (exact frames).")
    ] = MeshAnimateOptions.interpolation,
    loop: Annotated[bool, typer.Option("--loop/--no-loop", help="End with a key back to frame 0.")] = MeshAnimateOptions.loop,
    normals: Annotated[
        bool, typer.Option("--normals/--no-normals", help="Store per-frame normals (better shading, larger file).")
    ] = MeshAnimateOptions.normals,
    rigidity: Annotated[
        float,
        typer.Option(
            help="ARAP clean-up weight over the mesh 1-rings (0 = off; 4 = the reference's).",
            rich_help_panel="Clean-up",
        ),
    ] = MeshAnimateOptions.rigidity,
    force: ForceOption = False,
) -> None:
    """Write [bold]export/animated.glb[/bold] (morph target per frame) and [bold]export/vertices.npy[/bold] [F, V, 3]."""
    from a3d_cli.stages import mesh_animate as stage

    opts = stage.MeshAnimateOptions(
        motion=motion,  # type: ignore[arg-type]  # validated by MeshAnimateOptions
        fps=fps,
        interpolation=interpolation,  # type: ignore[arg-type]
        loop=loop,
        normals=normals,
        rigidity=rigidity,
    )
    run_dir = resolve_path(run_dir)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
