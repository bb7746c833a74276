"""`a3d mesh-animate RUN`: the input mesh moved by the fitted motion, as an animated GLB + vertex cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import (
    DurationOption,
    ForceOption,
    LoopModeOption,
    LoopOption,
    MaxTextureSizeOption,
    MotionChoiceOption,
    resolve_path,
    run_and_report,
    run_folder_argument,
)
from a3d_cli.stages.mesh_animate import MeshAnimateOptions as _Defaults

_SKIN = "Skinning"


def mesh_animate(
    ctx: typer.Context,
    run_dir: Annotated[Path, run_folder_argument("The run folder of a mesh input (after `a3d reconstruct`).")],
    motion: MotionChoiceOption = _Defaults.motion,
    fps: Annotated[float, typer.Option(help="Keys per second, sampled from the continuous motion.")] = _Defaults.fps,
    duration: DurationOption = _Defaults.duration,
    interpolation: Annotated[
        str, typer.Option(help="linear (smooth blend between keys) or step (exact keys).")
    ] = _Defaults.interpolation,
    loop: LoopOption = _Defaults.loop,
    loop_mode: LoopModeOption = _Defaults.loop_mode,
    normals: Annotated[
        bool, typer.Option("--normals/--no-normals", help="Store per-frame normals (better shading, larger file).")
    ] = _Defaults.normals,
    skin: Annotated[
        bool,
        typer.Option("--skin/--no-skin", help="A skeleton fitted to the motion instead of morph targets.",
                     rich_help_panel=_SKIN),  # fmt: skip
    ] = _Defaults.skin,
    bones: Annotated[int, typer.Option(help="Bones of the fitted skin.", rich_help_panel=_SKIN)] = _Defaults.bones,
    residual: Annotated[
        bool,
        typer.Option("--residual/--no-residual", help="With --skin: add what the skin misses as morph targets.",
                     rich_help_panel=_SKIN),  # fmt: skip
    ] = _Defaults.residual,
    rigidity: Annotated[
        float,
        typer.Option(
            help="ARAP clean-up weight over the mesh 1-rings (0 = off; 4 = the reference's).",
            rich_help_panel="Clean-up",
        ),
    ] = _Defaults.rigidity,
    max_texture_size: MaxTextureSizeOption = _Defaults.max_texture_size,
    force: ForceOption = False,
) -> None:
    """Write [bold]export/animated.glb[/bold] (morph targets or a fitted skin) and [bold]export/vertices.npy[/bold]."""
    from a3d_cli.stages import mesh_animate as stage

    opts = stage.MeshAnimateOptions(
        motion=motion,  # type: ignore[arg-type]  # validated by MeshAnimateOptions
        fps=fps,
        duration=duration,
        interpolation=interpolation,  # type: ignore[arg-type]
        loop=loop,
        loop_mode=loop_mode,  # type: ignore[arg-type]
        normals=normals,
        skin=skin,
        bones=bones,
        residual=residual,
        rigidity=rigidity,
        max_texture_size=max_texture_size,
    )
    run_dir = resolve_path(run_dir)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
