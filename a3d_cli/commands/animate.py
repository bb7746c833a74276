"""`a3d animate MODEL --prompt TEXT [-o RUN]`: the whole chain in one resumable run folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from a3d_cli.commands.common import (
    AllowExternalRefsOption,
    CompileOption,
    ForceOption,
    ImageEncoderOption,
    IPAdapterOption,
    MaxTextureSizeOption,
    MotionModulesOption,
    MVDreamOption,
    TinyModelOption,
    check_dtype,
    mvvdm_weight_paths,
    optional_path,
    resolve_path,
)
from a3d_cli.io.paths import run_folder_path
from a3d_cli.stages.animate import AnimateOptions

_INPUT = "Input"
_SPEED = "Speed"
_IMAGE = "Image input (orbit → lift)"


def default_run_dir(model: Path) -> Path:
    """`a3d-runs/<model name>` in the current folder: one run folder per asset name."""
    return Path("a3d-runs") / Path(model).stem


def animate_options(params: Mapping[str, Any]) -> AnimateOptions:
    """`AnimateOptions` from the parsed command-line values of `animate`, keyed by its parameter names.

    One place turns command-line values into options, so `a3d batch` validates a manifest line exactly
    as `a3d animate` validates the same options. Keys other than the options' (`out`, `force`) are ignored.

    Raises:
        OptionError: a value that cannot work (bad --dtype, --preset, an empty prompt without --video, …).
    """
    from a3d_cli.errors import OptionError
    from a3d_cli.stages.animate import AnimateOptions
    from a3d_cli.stages.reconstruct_defaults import PRESET_NAMES

    p = dict(params)
    check_dtype(p["dtype"])
    if p["preset"] not in PRESET_NAMES:
        raise OptionError(f"--preset must be one of {', '.join(PRESET_NAMES)} (got {p['preset']!r}).")
    mesh = p["mesh"]
    return AnimateOptions(
        model=str(resolve_path(p["model"]).absolute()),
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        video=optional_path(p["video"]),
        orbit=optional_path(p["orbit"]),
        sv3d_model=p["sv3d_model"],
        sv3d_checkpoint=optional_path(p["sv3d_checkpoint"]),
        orbit_steps=p["orbit_steps"],
        elevation=p["elevation"],
        lift_steps=p["lift_steps"],
        lift_resolution=p["lift_resolution"],
        sds=p["sds"],
        output="auto" if mesh is None else ("mesh" if mesh else "splats"),
        up=p["up"],
        front=p["front"],
        splats=p["splat_count"],
        shade=p["shade"],
        max_vertices=p["max_vertices"],
        max_texture_size=p["max_texture_size"],
        allow_external_refs=p["allow_external_refs"],
        freeinit_iters=p["freeinit_iters"],
        freeinit_grid=p["freeinit_grid"],
        reconstruct_preset=p["preset"],
        reconstruct_steps=p["reconstruct_steps"],
        resolution=p["resolution"],
        max_splats=p["max_splats"],
        sds_steps=p["sds_steps"],
        sds_target_size=p["sds_target_size"],
        preview_size=p["preview_size"],
        dtype=p["dtype"],
        compile=p["compile_blocks"],
        **mvvdm_weight_paths(p["mvdream"], p["ip_adapter"], p["image_encoder"], p["motion_modules"]),
        tiny_model=p["tiny_model"],
    )


def animate(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="Input: .glb, .gltf, .obj (+.mtl, textures), mesh .ply, .stl, .off, 3DGS .ply (also compressed), .splat, .spz, "
            "or an object image (.png, .jpg, .webp, .tif, .bmp, .avif, .gif).",
            metavar="MODEL",
            show_default=False,
        ),
    ],
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", help='The motion, e.g. "a fox wags its tail".', show_default=False)
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Run folder (default: a3d-runs/<model name>).", metavar="RUN", show_default=False,
            parser=run_folder_path,
        ),
    ] = None,
    video: Annotated[
        Path | None,
        typer.Option(
            help="Use this multi-view video (v{view}_f{frame:02d}.png, 4 × 16) instead of generating one.",
            show_default=False,
        ),
    ] = None,
    sds: Annotated[
        bool | None,
        typer.Option(
            "--sds/--no-sds",
            help="4D-SDS refinement: default = when a prompt and the MV-VDM weights are there.",
            show_default=False,
        ),
    ] = None,
    mesh: Annotated[
        bool | None,
        typer.Option(
            "--mesh/--splats",
            help="--mesh: require an animated mesh GLB; --splats: splat frames + preview only.",
            show_default=False,
        ),
    ] = None,
    negative_prompt: Annotated[str, typer.Option(help="Text of MV-VDM's unconditional branch.")] = AnimateOptions.negative_prompt,
    orbit: Annotated[
        Path | None,
        typer.Option(
            help="Image input: lift this folder (frame_XX.png + cameras.json) instead of sampling SV3D.",
            rich_help_panel=_IMAGE,
            show_default=False,
        ),
    ] = None,
    sv3d_model: Annotated[str, typer.Option(help="Image input: sv3d_p or sv3d_u.", rich_help_panel=_IMAGE)] = AnimateOptions.sv3d_model,
    sv3d_checkpoint: Annotated[
        Path | None,
        typer.Option(help="Image input: the SV3D file (default: found by `a3d weights`).", rich_help_panel=_IMAGE, show_default=False),
    ] = None,
    orbit_steps: Annotated[int, typer.Option(help="Image input: SV3D sampling steps.", rich_help_panel=_IMAGE)] = AnimateOptions.orbit_steps,
    elevation: Annotated[float, typer.Option(help="Image input: orbit elevation in degrees.", rich_help_panel=_IMAGE)] = AnimateOptions.elevation,
    lift_steps: Annotated[
        int | None, typer.Option(help="Image input: lift fit steps (default: by device).", rich_help_panel=_IMAGE, show_default=False)
    ] = None,
    lift_resolution: Annotated[
        int | None, typer.Option(help="Image input: lift fit size (default: by device).", rich_help_panel=_IMAGE, show_default=False)
    ] = None,
    up: Annotated[str, typer.Option(help="The asset's up axis (+x … -z); glTF is +y.", rich_help_panel=_INPUT)] = AnimateOptions.up,
    front: Annotated[
        str,
        typer.Option(
            help="The asset's front axis (it faces the azimuth-0 view), or auto (see a3d prepare --help).",
            rich_help_panel=_INPUT,
        ),
    ] = AnimateOptions.front,
    splat_count: Annotated[
        int, typer.Option(help="Splats aimed for on meshes (a3d prepare --splat-count).", rich_help_panel=_INPUT)
    ] = AnimateOptions.splats,
    shade: Annotated[
        str, typer.Option(help="Baked lighting: auto (meshes without texture), on, off.", rich_help_panel=_INPUT)
    ] = AnimateOptions.shade,
    max_vertices: Annotated[
        int, typer.Option(help="Simplify meshes above this many vertices.", rich_help_panel=_INPUT)
    ] = AnimateOptions.max_vertices,
    allow_external_refs: AllowExternalRefsOption = AnimateOptions.allow_external_refs,
    max_texture_size: MaxTextureSizeOption = AnimateOptions.max_texture_size,
    freeinit_iters: Annotated[
        int, typer.Option(help="FreeInit passes (0/1 = off: one sampling pass instead of 3).", rich_help_panel=_SPEED)
    ] = AnimateOptions.freeinit_iters,
    freeinit_grid: Annotated[
        str,
        typer.Option(help="FreeInit frequency grid: reference (Animate3D's) or centred.", rich_help_panel=_SPEED),
    ] = AnimateOptions.freeinit_grid,
    preset: Annotated[
        str,
        typer.Option(
            help="Motion-fit preset: auto (quickstart on CPU), reference, quickstart or animate3d (Animate3D's own "
            "settings).",
            rich_help_panel=_SPEED,
        ),
    ] = AnimateOptions.reconstruct_preset,
    reconstruct_steps: Annotated[
        int | None,
        typer.Option(help="Motion-fit steps (default: the preset's).", rich_help_panel=_SPEED, show_default=False),
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            help="Motion-fit render size (default: the preset's).", rich_help_panel=_SPEED, show_default=False
        ),
    ] = None,
    max_splats: Annotated[
        int | None,
        typer.Option(
            help="Fit on at most this many splats (default: the preset's).", rich_help_panel=_SPEED, show_default=False
        ),
    ] = None,
    sds_steps: Annotated[int, typer.Option(help="4D-SDS steps.", rich_help_panel=_SPEED)] = AnimateOptions.sds_steps,
    sds_target_size: Annotated[
        int, typer.Option(help="SDS reconstruction-branch render size (the reference: 1024).", rich_help_panel=_SPEED)
    ] = AnimateOptions.sds_target_size,
    preview_size: Annotated[int, typer.Option(help="Preview video size in pixels.", rich_help_panel=_SPEED)] = AnimateOptions.preview_size,
    dtype: Annotated[
        str, typer.Option(help="MV-VDM precision: auto, fp32, fp16, bf16.", rich_help_panel=_SPEED)
    ] = AnimateOptions.dtype,
    compile_blocks: CompileOption = AnimateOptions.compile,
    mvdream: MVDreamOption = None,
    ip_adapter: IPAdapterOption = None,
    image_encoder: ImageEncoderOption = None,
    motion_modules: MotionModulesOption = None,
    tiny_model: TinyModelOption = AnimateOptions.tiny_model,
    force: ForceOption = False,
) -> None:
    """Animate MODEL: prepare → mvvideo → reconstruct → sds → mesh-animate → export, resumable.

    An object image first becomes a 3D asset in the same run: orbit (SV3D) → lift → prepare on lift/model.glb.

    Re-running the same command after an interrupt continues from the last finished stage; changing an
    option re-runs only the stages it affects.
    """
    from a3d_cli.commands.common import global_options, run_and_report
    from a3d_cli.console import err, styled
    from a3d_cli.stages import animate as stage

    opts = animate_options(locals())
    run_dir = resolve_path(out) if out is not None else default_run_dir(model)
    notices: list[str] = []

    def call(rt):  # noqa: ANN001, ANN202 - a Runtime in, StageResults out
        result = stage.run(run_dir, opts, rt)
        notices.extend(result.notices)
        return result.results

    run_and_report(ctx, call, force=force)
    g = global_options(ctx)
    if g.json and not g.quiet:  # the progress display (which shows notices) is off with --json
        for notice in notices:
            err.print(styled(("·", "dim"), " ", notice), highlight=False)
