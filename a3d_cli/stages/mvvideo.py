"""`mvvideo`: the 4 conditioning views + a prompt → 4 views × 16 frames (MV-VDM with FreeInit).

Animate3D's multi-view video diffusion stage (Jiang et al., arXiv 2407.11398, §3.2; yanqinJiang/Animate3D
`inference.py`, `animatediff/pipelines/pipeline.py`). Reads (from `a3d prepare`):

    static/views/view_{i}_grey.png   i = 0..3, RGB on 0.5 grey (what MV-VDM was trained on)
    static/views/cameras.json        their cameras (`CameraSet.to_json`)

Writes:

    mvvideo/v{view}_f{frame:02d}.png   view 0..3, frame 00..15: 256×256 RGB on the 0.5 grey background.
                                       Frame 00 is the condition view after a VAE round trip (so colours
                                       match the generated frames); frames 01..15 are generated.
    mvvideo/cameras.json               the 4 cameras at 256×256 (`CameraSet.to_json`) plus "num_frames",
                                       "fps" and "naming"; what `a3d reconstruct` reads next to the frames
    mvvideo/preview.mp4                the 4 views side by side (1024×256), 8 fps

Sampling (Animate3D `configs/inference/inference.yaml`): DDIM 25 steps, η = 0, CFG 7.5 with the
unconditional branch = negative prompt ("") + zero IP-Adapter image embeddings, frame 0 clean and pinned,
FreeInit 3 passes (Butterworth n=4, d_s = d_t = 0.25) on frames 1–15. Cost: steps × FreeInit passes
CFG-batched UNet evaluations; `freeinit_iters` 0/1 runs one pass instead of three.

Examples:
    >>> run(Path("RUN"), MVVideoOptions(prompt="a fox wags its tail"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from a3d_cli.errors import OptionError, RunFolderError, require_finite_options
from a3d_cli.models.mvvdm.shape import FPS, NUM_FRAMES, NUM_VIEWS, RESOLUTION
from a3d_cli.run_layout import (
    MVVIDEO_CAMERAS,
    MVVIDEO_DIR,
    MVVIDEO_FRAME_NAME,
    MVVIDEO_PREVIEW,
    VIEWS_CAMERAS,
    mvvideo_frame,
    view_png,
)
from a3d_cli.stages.base import Runtime, StageContext, StageResult, check_inputs, run_stage
from a3d_cli.stages.producers import PREPARE

if TYPE_CHECKING:
    import torch

    from a3d_cli.models.mvvdm.components import MVVDMComponents

DType = Literal["auto", "fp32", "fp16", "bf16"]
RECIPE = 1
"""The version of what `mvvideo` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `mvvideo` once (docs/ARCHITECTURE.md, "Recipes")."""
DTYPES = ("auto", "fp32", "fp16", "bf16")
FREEINIT_METHODS = ("butterworth", "gaussian", "ideal")
FREEINIT_GRIDS = ("reference", "centred")
#: What `--dtype auto` means on CUDA (off CUDA it is fp32): the one place to change this stage's default.
#: The reference (Animate3D's inference.py) runs MV-VDM in fp32; fp16 is a3d's deliberate speed choice,
#: taken from docs/PERF.md's precision table (`benchmarks/bench_precision.py`): no overflow, and about
#: fp32-with-TF32's drift per forward at a fraction of its time.
DEFAULT_CUDA_DTYPE = "fp16"


@dataclass(frozen=True)
class MVVideoOptions:
    """Options of `a3d mvvideo` (defaults: Animate3D's inference config)."""

    prompt: str
    """The motion to generate, e.g. "a fox wags its tail"."""
    negative_prompt: str = ""
    """Text of the unconditional CFG branch (Animate3D uses "")."""
    steps: int = 25
    """DDIM steps per FreeInit pass."""
    guidance: float = 7.5
    """Classifier-free guidance scale; <= 1 turns CFG off (half the UNet work)."""
    freeinit_iters: int = 3
    """FreeInit sampling passes in total; 0 or 1 = no FreeInit (one pass instead of three)."""
    freeinit_method: str = "butterworth"
    """FreeInit low-pass filter: butterworth, gaussian or ideal."""
    freeinit_grid: str = "reference"
    """FreeInit frequency grid: reference (diffusers 0.28's filter, as Animate3D samples) or centred (on DC,
    symmetric for the 15 re-initialised frames); see `a3d_cli.models.freeinit`."""
    dtype: DType = "auto"
    """Network precision: auto (`DEFAULT_CUDA_DTYPE` on CUDA, fp32 on CPU), fp32, fp16 or bf16."""
    fps: float = FPS
    """Frame rate of the preview (MV-VDM's training clips are 16 frames at an effective 8 fps)."""
    mvdream: str | None = None
    """Explicit folder of yanqinJiang/mvdream-sd1.5-diffusers (else A3D_WEIGHTS_DIR / HF cache)."""
    ip_adapter: str | None = None
    """Explicit path of h94/IP-Adapter models/ip-adapter_sd15.bin."""
    image_encoder: str | None = None
    """Explicit folder of h94/IP-Adapter models/image_encoder."""
    motion_modules: str | None = None
    """Explicit path of yanqinJiang/animate3d animate3d_motion_modules.ckpt."""
    tiny_model: bool = False
    """Use the tiny random-weight MV-VDM (tests and plumbing checks only; no weights needed)."""
    compile: bool = False
    """On CUDA, compile the UNet's repeated blocks (`a3d_cli.models.speed.acceleration`): faster evaluations after
    a one-off compilation on the first run (cached on disk afterwards). Ignored on CPU."""
    cuda_graph: bool = True
    """On CUDA, record the guided UNet call of the first DDIM step as a CUDA graph and replay it for every
    later step of every FreeInit pass (`a3d_cli.models.mvvdm.sampling.graphed_guide`): same kernels and
    numbers, none of Python's launch gaps, so the stage's speed does not depend on the host's. Ignored on
    CPU."""

    def __post_init__(self) -> None:
        require_finite_options(self)
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise OptionError("--prompt is empty; MV-VDM needs a description of the motion.",
                              hint='Pass e.g. --prompt "a fox wags its tail".')
        if not 1 <= self.steps <= 1000:
            raise OptionError(f"--steps must be between 1 and 1000, got {self.steps}.", hint="Animate3D uses 25.")
        if not 0.0 <= self.guidance <= 50.0:
            raise OptionError(f"--guidance must be between 0 and 50, got {self.guidance}.", hint="Animate3D uses 7.5.")
        if not 0 <= self.freeinit_iters <= 10:
            raise OptionError(f"--freeinit-iters must be between 0 and 10, got {self.freeinit_iters}.",
                              hint="Animate3D uses 3; 0 or 1 turns FreeInit off.")
        if self.freeinit_method not in FREEINIT_METHODS:
            raise OptionError(f"--freeinit-method {self.freeinit_method!r} is not one of {', '.join(FREEINIT_METHODS)}.")
        if self.freeinit_grid not in FREEINIT_GRIDS:
            raise OptionError(f"--freeinit-grid {self.freeinit_grid!r} is not one of {', '.join(FREEINIT_GRIDS)}.")
        if self.dtype not in DTYPES:
            raise OptionError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}.")
        if not 0 < self.fps <= 120:
            raise OptionError(f"--fps must be in (0, 120], got {self.fps}.")


def resolve_weights(opts: MVVideoOptions) -> dict[str, Path]:
    """Find every MV-VDM file on this machine (pre-flight, before any heavy work).

    Raises:
        WeightsMissing: one or more files are missing; the message names each (repo and file) and the
            hint gives the fetch command for each.
        InputError / CheckpointError: an explicit path that does not hold the model, or a truncated file.
    """
    from a3d_cli.models.mvvdm.weights import explicit_weights, resolve_mvvdm_weights

    return resolve_mvvdm_weights(explicit_weights(opts))


def load_model(opts: MVVideoOptions, weights: dict[str, Path] | None, device: str, seed: int) -> MVVDMComponents:
    """The MV-VDM components on `device` in the requested precision (tiny random weights when asked).

    Built through `a3d_cli.models.cache.cached_model`: a batch worker builds them once for all its jobs.
    """
    from a3d_cli.device import torch_dtype
    from a3d_cli.models.cache import cached_model, model_key
    from a3d_cli.models.mvvdm.components import load_components, tiny_components
    from a3d_cli.models.mvvdm.weights import MVVDM_WEIGHTS

    dtype = torch_dtype(opts.dtype, device, cuda_auto=DEFAULT_CUDA_DTYPE)
    if opts.tiny_model:
        key = model_key("mvvdm", None, dtype, device, opts.compile, seed)
        return cached_model(key, lambda: tiny_components(seed).to(device, dtype))
    assert weights is not None
    key = model_key("mvvdm", weights, dtype, device, opts.compile)
    return cached_model(key, lambda: load_components(*(weights[n] for n in MVVDM_WEIGHTS), device=device, dtype=dtype))


def _read_views(ctx: StageContext) -> tuple[torch.Tensor, object]:
    """The 4 grey-background views [4, 3, S, S] in [0, 1] at the size they were rendered, and their `CameraSet`."""
    import torch

    from a3d_cli.io.images import load_png
    from a3d_cli.io.json_data import parse_json
    from a3d_cli.io.paths import read_inside
    from a3d_cli.render.cameras import CameraSet

    cam_path = ctx.run_dir / VIEWS_CAMERAS
    raw = read_inside(ctx.run_dir, VIEWS_CAMERAS, hint=f"Re-run `{PREPARE} --force`.")  # regular files only
    try:
        cams = CameraSet.from_json(parse_json(raw))
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(f"{cam_path} is not a camera file of `a3d prepare` ({exc}).",
                             hint="Re-run `a3d prepare ... --force`.") from exc
    if len(cams) != NUM_VIEWS:
        raise RunFolderError(f"{cam_path} has {len(cams)} cameras; MV-VDM needs {NUM_VIEWS} views.",
                             hint="Re-run `a3d prepare ... --force`.")
    views = []
    for i in range(NUM_VIEWS):
        img = load_png(ctx.input(view_png(i, grey=True)), mode="RGB").permute(2, 0, 1)  # [3, H, W]
        if img.shape[-1] != img.shape[-2] or (views and img.shape != views[0].shape):
            raise RunFolderError(f"{view_png(i, grey=True)} is {img.shape[-1]}×{img.shape[-2]}; the {NUM_VIEWS} views "
                                 "must be square and of one size.", hint="Re-run `a3d prepare ... --force`.")
        if img.shape[-1] != RESOLUTION and i == 0:
            ctx.progress.log(f"mvvideo: views are {img.shape[-1]}²; VAE-encoded at {RESOLUTION}² (MV-VDM's size), "
                             "CLIP-encoded at their own size, as the reference does")
        views.append(img.clamp(0, 1))
    return torch.stack(views), cams  # [4, 3, S, S]


def _write_outputs(ctx: StageContext, frames: torch.Tensor, cams, opts: MVVideoOptions) -> None:
    """PNG frames, cameras.json and the side-by-side preview."""
    from a3d_cli.io.atomic import atomic_write_text
    from a3d_cli.io.images import save_pngs

    v, f = frames.shape[:2]  # [V, F, 3, H, W]
    paths = [ctx.output(mvvideo_frame(view, frame)) for view in range(v) for frame in range(f)]
    save_pngs(paths, frames.permute(0, 1, 3, 4, 2).flatten(0, 1))  # [V·F, H, W, 3], view-major as the paths
    data = cams.to_json(RESOLUTION, RESOLUTION)
    data.update(num_frames=f, fps=opts.fps, naming=f"{MVVIDEO_DIR}/{MVVIDEO_FRAME_NAME}")
    atomic_write_text(ctx.output(MVVIDEO_CAMERAS), json.dumps(data, indent=2))
    strip = frames.permute(1, 3, 0, 4, 2).reshape(f, frames.shape[3], v * frames.shape[4], 3)  # [F, H, V·W, 3]
    ctx.write_video(MVVIDEO_PREVIEW, strip, fps=opts.fps)


def run(
    run_dir: Path,
    opts: MVVideoOptions,
    rt: Runtime | None = None,
    components: MVVDMComponents | None = None,
) -> StageResult:
    """Generate `RUN/mvvideo/` from `RUN/static/views/` and a prompt.

    Args:
        run_dir: the run folder (after `a3d prepare`).
        opts: prompt, sampler and weight options.
        rt: device, seed, force, progress.
        components: already-loaded MV-VDM (skips resolving and loading; for library use and tests).

    Raises:
        RunFolderError: the run folder lacks `static/views/` (run `a3d prepare` first).
        WeightsMissing: model files are missing (the hint names the fetch commands).

    Examples:
        >>> run(Path("RUN"), MVVideoOptions(prompt="a fox wags its tail", freeinit_iters=1))  # doctest: +SKIP
    """
    rt = rt or Runtime()
    requires = {VIEWS_CAMERAS: PREPARE, **{view_png(i, grey=True): PREPARE for i in range(NUM_VIEWS)}}
    # pre-flight: inputs first (the usual mistake), then weights, before anything heavy
    check_inputs(run_dir, requires)
    weights = None if (components is not None or opts.tiny_model) else resolve_weights(opts)

    def body(ctx: StageContext) -> None:
        import torch

        from a3d_cli.models.freeinit import FreeInitConfig
        from a3d_cli.models.mvvdm.pipeline import generate_mvvideo, resize_for_vae
        from a3d_cli.models.mvvdm.sampling import SamplingConfig
        from a3d_cli.phase_clock import PhaseClock

        clock = PhaseClock(ctx.device)  # one drain per phase, not per step
        # 1. read the condition views and cameras
        views, cams = _read_views(ctx)
        # 2. load MV-VDM
        ctx.progress.log("mvvideo: loading MV-VDM" + (" (tiny random weights)" if opts.tiny_model else ""))
        comp = components if components is not None else load_model(opts, weights, ctx.device, ctx.seed)
        cfg = SamplingConfig(
            steps=opts.steps,
            guidance_scale=opts.guidance,
            num_frames=NUM_FRAMES,
            freeinit=FreeInitConfig(
                iters=opts.freeinit_iters,
                method=opts.freeinit_method,  # type: ignore[arg-type]  # validated by MVVideoOptions
                grid=opts.freeinit_grid,  # type: ignore[arg-type]
            ),
        )
        # 3. sample (CUDA backend flags and the fused GEGLU always; regional compilation of the UNet when asked)
        accel = comp.accelerate(ctx.device, compile=opts.compile)
        clock.mark("inputs_and_model")
        ctx.progress.start("mvvideo: sampling", total=cfg.unet_evaluations)

        def on_step(k: int, i: int, _latents: torch.Tensor) -> None:
            ctx.progress.update(1, freeinit_pass=k + 1)

        generator = torch.Generator().manual_seed(ctx.seed)
        out = generate_mvvideo(comp, resize_for_vae(views, RESOLUTION), cams.c2w, opts.prompt, opts.negative_prompt, cfg,
                               generator, on_step, clip_images=views, cuda_graph=opts.cuda_graph)
        clock.mark("sampling_and_decoding")
        # 4. write
        _write_outputs(ctx, out.frames, cams, opts)
        clock.mark("writing")
        ctx.metrics.update(
            unet_evaluations=cfg.unet_evaluations,
            cfg_batch=2 if cfg.guided else 1,
            freeinit_passes=cfg.freeinit.passes,
            dtype=str(comp.dtype).replace("torch.", ""),
            cuda_graph_replays=out.graph_replays,
            seconds_per_phase={name: round(t, 3) for name, t in clock.seconds.items()},
            **accel.as_metrics(),
        )

    return run_stage("mvvideo", run_dir, opts, body, rt, requires=requires, clear=[MVVIDEO_DIR], recipe=RECIPE)


__all__ = ["MVVideoOptions", "resolve_weights", "run"]
