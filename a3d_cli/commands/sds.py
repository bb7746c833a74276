"""`a3d sds RUN --prompt TEXT`: refine the coarse motion with 4D score distillation (MV-VDM as the prior)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import (
    CompileOption,
    ForceOption,
    ImageEncoderOption,
    IPAdapterOption,
    MotionModulesOption,
    MVDreamOption,
    TinyModelOption,
    check_dtype,
    mvvdm_weight_paths,
    resolve_path,
    run_and_report,
    run_folder_argument,
)
from a3d_cli.render.random_cameras import RandomCameraConfig
from a3d_cli.stages.sds import SdsOptions

_SDS = "Score distillation"
_LOSS = "Loss weights"
_CAMERAS = "Random cameras"


def parse_vae_keep(value: str) -> int | None:
    """`--vae-keep`: "auto" → None (decided from spare GPU memory), else a count of renders."""
    from a3d_cli.errors import OptionError

    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise OptionError(f"--vae-keep must be auto or a number of renders, got {value!r}.") from None


def sds(
    ctx: typer.Context,
    run_dir: Annotated[Path, run_folder_argument("The run folder (after `a3d reconstruct`).")],
    prompt: Annotated[
        str, typer.Option("--prompt", "-p", help='The motion, e.g. "a fox wags its tail".', show_default=False)
    ],
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = SdsOptions.steps,
    negative_prompt: Annotated[str, typer.Option(help="Text of the unconditional branch.", rich_help_panel=_SDS)] = SdsOptions.negative_prompt,
    guidance: Annotated[float, typer.Option(help="s in ε_c + s·(ε_c − ε_u).", rich_help_panel=_SDS)] = SdsOptions.guidance_scale,
    std_rescale: Annotated[
        float, typer.Option(help="CFG-std rescale of the x0 estimate (0 = off).", rich_help_panel=_SDS)
    ] = SdsOptions.std_rescale,
    min_step_percent: Annotated[float, typer.Option(help="Lowest timestep / 1000.", rich_help_panel=_SDS)] = SdsOptions.min_step_percent,
    max_step_percent: Annotated[float, typer.Option(help="Highest timestep / 1000.", rich_help_panel=_SDS)] = SdsOptions.max_step_percent,
    render_size: Annotated[
        int, typer.Option(help="SDS render size in pixels (MV-VDM's 256).", rich_help_panel=_SDS)
    ] = SdsOptions.render_size,
    target_size: Annotated[
        int,
        typer.Option(
            help="Reconstruction-branch render size (the reference: 1024; smaller is cheaper, less faithful).",
            rich_help_panel=_SDS,
        ),
    ] = SdsOptions.target_size,
    vae_chunk: Annotated[
        int,
        typer.Option(help="Renders per VAE-encoder chunk (0 = one chunk, nothing recomputed).", rich_help_panel=_SDS),
    ] = SdsOptions.vae_chunk,
    vae_keep: Annotated[
        str,
        typer.Option(
            help="Renders whose VAE activations are kept, not recomputed: auto (as many as spare GPU memory holds) "
            "or a number (0 = least memory).",
            rich_help_panel=_SDS,
        ),
    ] = "auto",
    lambda_sds: Annotated[float, typer.Option(help="Weight of the SDS loss.", rich_help_panel=_LOSS)] = SdsOptions.lambda_sds,
    lambda_rgb: Annotated[
        float, typer.Option(help="Weight of the colour MSE vs the coarse renders.", rich_help_panel=_LOSS)
    ] = SdsOptions.lambda_rgb,
    lambda_mask: Annotated[
        float, typer.Option(help="Weight of the mask MSE vs the coarse renders.", rich_help_panel=_LOSS)
    ] = SdsOptions.lambda_mask,
    lambda_arap: Annotated[float, typer.Option(help="Weight of the ARAP energy.", rich_help_panel=_LOSS)] = SdsOptions.lambda_arap,
    elevation: Annotated[
        tuple[float, float],
        typer.Option(help="Elevation range of the random views, degrees.", rich_help_panel=_CAMERAS),
    ] = RandomCameraConfig.elevation_range,
    fov: Annotated[tuple[float, float], typer.Option(help="Vertical fov range, degrees.", rich_help_panel=_CAMERAS)] = RandomCameraConfig.fov_range,
    distance: Annotated[
        tuple[float, float], typer.Option(help="Distance range × 1/tan(fov/2).", rich_help_panel=_CAMERAS)
    ] = RandomCameraConfig.relative_distance_range,
    scale_offsets: Annotated[
        bool, typer.Option("--scale-offsets/--no-scale-offsets", help="Let the motion change splat sizes.")
    ] = SdsOptions.scale_offsets,
    dtype: Annotated[
        str, typer.Option(help="MV-VDM precision: auto (bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16.")
    ] = SdsOptions.dtype,
    mvdream: MVDreamOption = None,
    ip_adapter: IPAdapterOption = None,
    image_encoder: ImageEncoderOption = None,
    motion_modules: MotionModulesOption = None,
    tiny_model: TinyModelOption = SdsOptions.tiny_model,
    compile_blocks: CompileOption = SdsOptions.compile,
    cuda_graph: Annotated[
        bool,
        typer.Option(
            "--cuda-graph/--no-cuda-graph",
            help="On CUDA, replay MV-VDM's guided call as one recorded CUDA graph where memory allows: same result, "
            "no launch gaps (docs/PERF.md).",
        ),
    ] = SdsOptions.cuda_graph,
    force: ForceOption = False,
) -> None:
    """Refine [bold]motion/coarse.safetensors[/bold] into [bold]motion/refined.safetensors[/bold] (+ refined_preview.mp4)."""
    from a3d_cli.errors import OptionError
    from a3d_cli.stages import sds as stage

    check_dtype(dtype)
    try:
        cameras = RandomCameraConfig(elevation_range=elevation, fov_range=fov, relative_distance_range=distance)
    except ValueError as exc:
        raise OptionError(f"Bad random-camera range: {exc}.") from None
    opts = stage.SdsOptions(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=steps,
        guidance_scale=guidance,
        std_rescale=std_rescale,
        min_step_percent=min_step_percent,
        max_step_percent=max_step_percent,
        lambda_sds=lambda_sds,
        lambda_rgb=lambda_rgb,
        lambda_mask=lambda_mask,
        lambda_arap=lambda_arap,
        render_size=render_size,
        target_size=target_size,
        cameras=cameras,
        scale_offsets=scale_offsets,
        dtype=dtype,  # type: ignore[arg-type]  # checked above
        vae_chunk=vae_chunk,
        vae_keep=parse_vae_keep(vae_keep),
        tiny_model=tiny_model,
        **mvvdm_weight_paths(mvdream, ip_adapter, image_encoder, motion_modules),
        compile=compile_blocks,
        cuda_graph=cuda_graph,
    )
    run_dir = resolve_path(run_dir)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
