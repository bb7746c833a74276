"""`a3d orbit IMAGE -o RUN`: a 21-frame SV3D orbit video of the object in one image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import CompileOption, ForceOption, resolve_path, run_and_report
from a3d_cli.errors import OptionError
from a3d_cli.io.paths import run_folder_path
from a3d_cli.stages.orbit import DEFAULT_CUDA_DTYPE, OrbitOptions

_CAMERAS = "Cameras (sv3d_p)"
_SAMPLING = "Sampling"
_INPUT = "Input image"
_SPEED = "Speed and memory"


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """'10' or '0, 5, 10' → floats; None stays None."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError as exc:
        raise OptionError(f"{option} takes numbers separated by commas (got {text!r}).") from exc
    if not values:
        raise OptionError(f"{option} needs at least one number.")
    return values


def orbit(
    ctx: typer.Context,
    image: Annotated[
        Path,
        typer.Argument(
            help="Object image; a PNG with a transparent background works best.", metavar="IMAGE", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The run folder to create or update.", metavar="RUN", show_default=False,
            parser=run_folder_path,
        ),
    ],
    model: Annotated[
        str, typer.Option(help="sv3d_p (follows --elevation/--azimuths) or sv3d_u (no camera input).")
    ] = OrbitOptions.model,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="The model file (sv3d_p.safetensors); default: found by `a3d weights`.", show_default=False),
    ] = None,
    elevation: Annotated[
        str,
        typer.Option(help="Camera elevation in degrees: one value, or 21 comma-separated.", rich_help_panel=_CAMERAS),
    ] = ",".join(f"{e:g}" for e in OrbitOptions.elevation),
    azimuths: Annotated[
        str | None,
        typer.Option(
            help="21 comma-separated azimuths in degrees; the last is the input view.", rich_help_panel=_CAMERAS
        ),
    ] = None,
    orbit_kind: Annotated[
        str,
        typer.Option(
            "--orbit", help="static (even azimuths) or dynamic (smooth random, from --seed).", rich_help_panel=_CAMERAS
        ),
    ] = OrbitOptions.orbit,
    steps: Annotated[int, typer.Option(help="Sampling steps.", rich_help_panel=_SAMPLING)] = OrbitOptions.steps,
    cfg: Annotated[
        str, typer.Option(help="Per-frame guidance: triangular (SV3D) or linear (SVD ramp).", rich_help_panel=_SAMPLING)
    ] = OrbitOptions.cfg,
    cfg_min: Annotated[
        float, typer.Option(help="Smallest guidance scale (ends of the orbit).", rich_help_panel=_SAMPLING)
    ] = OrbitOptions.cfg_min,
    cfg_max: Annotated[
        float, typer.Option(help="Largest guidance scale (back of the object).", rich_help_panel=_SAMPLING)
    ] = OrbitOptions.cfg_max,
    keep_generated_input: Annotated[
        bool,
        typer.Option(
            "--keep-generated-input",
            help="Keep the generated input view as frame_20 instead of the input image.",
            rich_help_panel=_SAMPLING,
        ),
    ] = not OrbitOptions.replace_input_frame,
    frame_ratio: Annotated[
        float | None,
        typer.Option(
            help="Object size / frame size after recentring (default: square side = image height, as the reference).",
            rich_help_panel=_INPUT,
        ),
    ] = OrbitOptions.frame_ratio,
    matte: Annotated[
        str, typer.Option(help="Object mask: auto, alpha, uniform (plain background) or rembg.", rich_help_panel=_INPUT)
    ] = OrbitOptions.matte,
    dtype: Annotated[
        str, typer.Option(help=f"UNet precision: auto ({DEFAULT_CUDA_DTYPE} on CUDA, fp32 on CPU), fp32, bf16 or fp16.", rich_help_panel=_SPEED)
    ] = OrbitOptions.dtype,
    decode_chunk: Annotated[
        int, typer.Option(help="Frames decoded at once (lower = less memory).", rich_help_panel=_SPEED)
    ] = OrbitOptions.decode_chunk,
    offload: Annotated[
        bool, typer.Option("--offload", help="Keep idle networks on the CPU (small GPUs).", rich_help_panel=_SPEED)
    ] = OrbitOptions.offload,
    fps: Annotated[float, typer.Option(help="Frame rate of orbit.mp4.")] = OrbitOptions.fps,
    compile_blocks: CompileOption = OrbitOptions.compile,
    force: ForceOption = False,
) -> None:
    """Make [bold]RUN/orbit/[/bold]: 21 frames around the object in IMAGE, orbit.mp4 and cameras.json (SV3D)."""
    from a3d_cli.stages import orbit as stage

    opts = stage.OrbitOptions(
        image=str(resolve_path(image).absolute()),
        model=model,  # type: ignore[arg-type]  # validated by OrbitOptions
        checkpoint=str(resolve_path(checkpoint).absolute()) if checkpoint is not None else None,
        steps=steps,
        cfg=cfg,  # type: ignore[arg-type]
        cfg_min=cfg_min,
        cfg_max=cfg_max,
        elevation=parse_floats(elevation, "--elevation") or (),
        azimuths=parse_floats(azimuths, "--azimuths"),
        orbit=orbit_kind,  # type: ignore[arg-type]
        frame_ratio=frame_ratio,
        matte=matte,  # type: ignore[arg-type]
        decode_chunk=decode_chunk,
        dtype=dtype,  # type: ignore[arg-type]
        offload=offload,
        replace_input_frame=not keep_generated_input,
        fps=fps,
        compile=compile_blocks,
    )
    run_dir = resolve_path(out)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
