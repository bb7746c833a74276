"""`a3d mvvideo RUN --prompt TEXT`: 4 views × 16 frames of the prepared object in motion (MV-VDM + FreeInit)."""

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
    mvvdm_weight_paths,
    resolve_path,
    run_and_report,
    run_folder_argument,
)
from a3d_cli.stages.mvvideo import DEFAULT_CUDA_DTYPE, MVVideoOptions

_SAMPLER = "Sampler"


def mvvideo(
    ctx: typer.Context,
    run_dir: Annotated[Path, run_folder_argument("The run folder made by `a3d prepare`.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help='The motion, e.g. "a fox wags its tail".', show_default=False)],
    negative_prompt: Annotated[str, typer.Option(help="Text of the unconditional guidance branch.", rich_help_panel=_SAMPLER)] = MVVideoOptions.negative_prompt,
    steps: Annotated[int, typer.Option(help="DDIM steps per FreeInit pass.", rich_help_panel=_SAMPLER)] = MVVideoOptions.steps,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale (<= 1: off).", rich_help_panel=_SAMPLER)] = MVVideoOptions.guidance,
    freeinit_iters: Annotated[
        int, typer.Option(help="FreeInit passes in total; 0 or 1 = off (one sampling pass instead of 3).", rich_help_panel=_SAMPLER)
    ] = MVVideoOptions.freeinit_iters,
    freeinit_method: Annotated[
        str, typer.Option(help="FreeInit low-pass filter: butterworth, gaussian or ideal.", rich_help_panel=_SAMPLER)
    ] = MVVideoOptions.freeinit_method,
    freeinit_grid: Annotated[
        str,
        typer.Option(
            help="FreeInit frequency grid: reference (Animate3D's, diffusers 0.28) or centred (on DC).",
            rich_help_panel=_SAMPLER,
        ),
    ] = MVVideoOptions.freeinit_grid,
    dtype: Annotated[
        str, typer.Option(help=f"Precision: auto ({DEFAULT_CUDA_DTYPE} on CUDA, fp32 on CPU), fp32, fp16, bf16.")
    ] = MVVideoOptions.dtype,
    mvdream: MVDreamOption = None,
    ip_adapter: IPAdapterOption = None,
    image_encoder: ImageEncoderOption = None,
    motion_modules: MotionModulesOption = None,
    tiny_model: TinyModelOption = MVVideoOptions.tiny_model,
    compile_blocks: CompileOption = MVVideoOptions.compile,
    cuda_graph: Annotated[
        bool,
        typer.Option(
            "--cuda-graph/--no-cuda-graph",
            help="On CUDA, replay the guided UNet call of every step as one recorded CUDA graph: same result, no launch gaps (docs/PERF.md).",
        ),
    ] = MVVideoOptions.cuda_graph,
    force: ForceOption = False,
) -> None:
    """Generate [bold]RUN/mvvideo/[/bold]: v{view}_f{frame:02d}.png (4 × 16, 256²), cameras.json, preview.mp4."""
    from a3d_cli.stages import mvvideo as stage

    opts = stage.MVVideoOptions(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=steps,
        guidance=guidance,
        freeinit_iters=freeinit_iters,
        freeinit_method=freeinit_method,
        freeinit_grid=freeinit_grid,
        dtype=dtype,  # type: ignore[arg-type]  # validated by MVVideoOptions
        **mvvdm_weight_paths(mvdream, ip_adapter, image_encoder, motion_modules),
        tiny_model=tiny_model,
        compile=compile_blocks,
        cuda_graph=cuda_graph,
    )
    run_and_report(ctx, lambda rt: stage.run(resolve_path(run_dir), opts, rt), force=force)
