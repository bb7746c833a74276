"""`a3d reconstruct RUN [--video DIR]`: fit the coarse motion field to a 4-view × 16-frame video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import ForceOption, resolve_path, run_and_report, run_folder_argument
from a3d_cli.stages.reconstruct_defaults import DEFAULT_PRESET, DEFAULT_PREVIEW

_FIT = "Fit settings (override the preset)"


def reconstruct(
    ctx: typer.Context,
    run_dir: Annotated[Path, run_folder_argument("The run folder (after `a3d prepare`).")],
    video: Annotated[
        Path | None,
        typer.Option(
            help="Folder of frames v{view}_f{frame:02d}.png (views 0-3, frames 00-15; RGB on grey or RGBA). "
            "Default: RUN/mvvideo.",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="auto (quickstart on CPU, reference on GPU), reference (Animate3D's 800 steps with four measured "
            "changes), quickstart (sized for a CPU) or animate3d (Animate3D's settings, every one)."
        ),
    ] = DEFAULT_PRESET,
    steps: Annotated[
        int | None, typer.Option(help="Optimisation steps.", rich_help_panel=_FIT, show_default=False)
    ] = None,
    resolution: Annotated[
        int | None, typer.Option(help="Render and target size, pixels.", rich_help_panel=_FIT, show_default=False)
    ] = None,
    max_splats: Annotated[
        int | None,
        typer.Option(help="Fit on at most this many splats (0 = all).", rich_help_panel=_FIT, show_default=False),
    ] = None,
    frames_per_step: Annotated[
        int | None,
        typer.Option(
            help="Frames rendered per step (0 = all active frames).", rich_help_panel=_FIT, show_default=False
        ),
    ] = None,
    grad_fraction: Annotated[
        float | None,
        typer.Option(
            help="Fraction of splats receiving image gradients per step (Animate3D's: 0.1, the animate3d preset's).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    cuda_graph: Annotated[
        bool | None,
        typer.Option(
            "--cuda-graph/--no-cuda-graph",
            help="On CUDA, replay each step's motion field, losses and optimiser step as recorded CUDA graphs (same "
            "result, far fewer kernel launches; every preset does).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    whole_step_graph: Annotated[
        bool | None,
        typer.Option(
            "--whole-step-graph/--no-whole-step-graph",
            help="With the CUDA graphs, record the rasterizer inside each step's graph too (tile lists of a fixed "
            "length, the same renders as gsplat's own call: no step waits for the device); off renders through "
            "gsplat.rasterization between the recorded pieces (default: on).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    arap_anneal: Annotated[
        float | None,
        typer.Option(
            help="Motion prior's weight schedule: from A× the weight at the first step falling towards 1/A× at the "
            "last (1 = constant, Animate3D's; the reference preset: 4).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    motion_prior: Annotated[
        str | None,
        typer.Option(
            help="Local motion prior: arap (neighbourhoods move rigidly; Animate3D's, the quickstart's) or affine "
            "(neighbourhoods move by some affine map, so smooth stretching and shearing cost nothing; the reference "
            "preset's).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    affine_neighbours: Annotated[
        int | None,
        typer.Option(
            help="Neighbours per point of the affine motion prior, with it only (more than 3; default 8, the "
            "reference preset 32 for its fit on every splat).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    coarse_level: Annotated[
        bool | None,
        typer.Option(
            "--coarse-level/--no-coarse-level",
            help="Put a coarse HexPlane level (12³ × 8) in front of the field's two, or not (the reference and "
            "quickstart presets have it, animate3d not).",
            rich_help_panel=_FIT,
            show_default=False,
        ),
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview/--no-preview", help="Write motion/coarse_preview.mp4.")
    ] = DEFAULT_PREVIEW,
    force: ForceOption = False,
) -> None:
    """Fit [bold]RUN/motion/coarse.safetensors[/bold] to the multi-view video (targets vs renders in coarse_preview.mp4)."""
    from a3d_cli.stages import reconstruct as stage

    opts = stage.ReconstructOptions(
        video=None if video is None else str(resolve_path(video).absolute()),
        preset=preset,  # type: ignore[arg-type]  # validated by ReconstructOptions
        steps=steps,
        resolution=resolution,
        max_splats=max_splats,
        frames_per_step=frames_per_step,
        grad_fraction=grad_fraction,
        cuda_graphs=cuda_graph,
        graph_whole_step=whole_step_graph,
        arap_anneal=arap_anneal,
        motion_prior=motion_prior,
        affine_neighbours=affine_neighbours,
        coarse_level=coarse_level,
        preview=preview,
    )
    run_dir = resolve_path(run_dir)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
