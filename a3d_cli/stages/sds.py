"""`a3d sds`: refine the coarse motion with 4D score distillation, MV-VDM as the prior.

Reads `static/gaussians.ply` and `motion/coarse.safetensors`; writes `motion/refined.safetensors` (same
format, now with the Δscale head) and `motion/refined_preview.mp4` (the 4 fixed views side by side).
The optimisation itself (`SdsRefiner`, `refine_motion`, what one step does) lives in
`a3d_cli.gaussians.motion_refine`; this stage reads the run folder, loads MV-VDM and writes the results.

Examples:
    >>> run(Path("RUN"), SdsOptions(prompt="a dog wags its tail"))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from a3d_cli.errors import OptionError
from a3d_cli.gaussians.motion_refine import RefineSettings
from a3d_cli.run_layout import COARSE_MOTION, REFINED_MOTION, REFINED_PREVIEW, STATIC_PLY
from a3d_cli.stages import producers
from a3d_cli.stages.base import Runtime, StageContext, StageResult, check_inputs, run_stage

if TYPE_CHECKING:
    from a3d_cli.models.sds import SdsDenoiser

RECIPE = 1
"""The version of what `sds` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `sds` once (docs/ARCHITECTURE.md, "Recipes")."""
REQUIRES = {STATIC_PLY: producers.PREPARE, COARSE_MOTION: producers.RECONSTRUCT}
#: What `--dtype auto` means on CUDA for MV-VDM here (off CUDA it is fp32): the one place to change it.
#: The reference guidance (Animate3D's threestudio guidance) loads MV-VDM in fp16; bf16 is a3d's choice.
DEFAULT_CUDA_DTYPE = "bf16"
WEIGHTS_ALTERNATIVE = "Or skip refinement: `a3d animate --no-sds`."
"""The last sentence of the missing-weights hint: the chain runs without this stage."""


@dataclass(frozen=True)
class SdsOptions(RefineSettings):
    """Options of `a3d sds`: the refinement's settings (`RefineSettings`: prompt, loss weights, timestep range,
    render sizes, learning rates) plus the stage's own. Defaults are the reference's refine-stage values."""

    steps: int = 200
    """Optimisation steps."""
    scale_offsets: bool = True
    """Let the motion change splat scales (the Δscale head; the reference turns it on for this stage)."""
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """Precision of the diffusion model (auto: bf16 on CUDA, fp32 on CPU). Renders stay fp32."""
    tiny_model: bool = False
    """Use the tiny random-weight MV-VDM (tests and plumbing checks only; no weights needed)."""
    mvdream: str | None = None
    """Explicit folder of yanqinJiang/mvdream-sd1.5-diffusers (else A3D_WEIGHTS_DIR / HF cache)."""
    ip_adapter: str | None = None
    """Explicit path of h94/IP-Adapter models/ip-adapter_sd15.bin."""
    image_encoder: str | None = None
    """Explicit folder of h94/IP-Adapter models/image_encoder."""
    motion_modules: str | None = None
    """Explicit path of yanqinJiang/animate3d animate3d_motion_modules.ckpt."""
    log_every: int = 10
    """Steps between progress/loss-curve samples."""
    compile: bool = False
    """On CUDA, compile the repeated blocks of MV-VDM's UNet and VAE encoder (`a3d_cli.models.speed.acceleration`):
    faster steps after a one-off compilation on the first run (cached on disk afterwards). Ignored on CPU."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1:  # 0 would write a "refined" motion that no step refined
            raise OptionError(f"--steps must be >= 1, got {self.steps}.", hint="Pass --no-sds to a3d animate to skip refining.")
        if self.log_every < 1:
            raise OptionError(f"--log-every must be >= 1, got {self.log_every}.")


def load_model(opts: SdsOptions, weights: dict[str, Path] | None, device: str, seed: int) -> SdsDenoiser:
    """MV-VDM as the SDS denoiser on `device` (tiny random weights when `weights` is None).

    Built through `a3d_cli.models.cache.cached_model`: a batch worker builds it once for all its jobs.
    """
    from a3d_cli.device import torch_dtype
    from a3d_cli.models.cache import cached_model, model_key
    from a3d_cli.models.mvvdm.denoiser import load_mvvdm_denoiser

    dtype = torch_dtype(opts.dtype, device, cuda_auto=DEFAULT_CUDA_DTYPE)
    key = model_key("mvvdm-sds", weights, dtype, device, opts.compile, seed)
    return cached_model(key, lambda: load_mvvdm_denoiser(weights, device, dtype, seed))


def run(
    run_dir: Path, opts: SdsOptions, rt: Runtime | None = None, *, denoiser: SdsDenoiser | None = None
) -> StageResult:
    """Refine `motion/coarse.safetensors` into `motion/refined.safetensors`.

    Args:
        run_dir: the run folder (after `a3d reconstruct`).
        opts: stage options.
        rt: device, seed, force, progress.
        denoiser: a ready `SdsDenoiser` (library use and tests); None loads MV-VDM from the weights.

    Returns:
        StageResult listing the refined motion and its preview; metrics hold the loss terms.

    Examples:
        >>> res = run(Path("RUN"), SdsOptions(prompt="a dog wags its tail"), Runtime(device="cuda"))  # doctest: +SKIP
        >>> res.metrics["loss_end"]["sds"]  # doctest: +SKIP
    """

    # pre-flight, before the run folder is locked or anything heavy happens: inputs, then weights
    check_inputs(run_dir, REQUIRES)
    need_model = denoiser is None and opts.lambda_sds > 0  # λ_sds = 0 (reconstruction terms only) needs no model
    weights = None
    if need_model and not opts.tiny_model:
        from a3d_cli.models.mvvdm.weights import explicit_weights, resolve_mvvdm_weights

        weights = resolve_mvvdm_weights(explicit_weights(opts), needed_by="4D-SDS", alternative=WEIGHTS_ALTERNATIVE)

    def body(ctx: StageContext) -> None:
        from a3d_cli.gaussians.motion_io import load_motion, save_motion
        from a3d_cli.gaussians.motion_refine import (
            SdsRefiner,
            kept_render_count,
            refine_motion,
            refined_field,
            summarise_history,
        )
        from a3d_cli.gaussians.ply import read_ply
        from a3d_cli.models.speed.acceleration import accelerate
        from a3d_cli.phase_clock import PhaseClock

        clock = PhaseClock(ctx.device)  # one drain per phase, not per step
        # 1. inputs
        static = read_ply(ctx.input(STATIC_PLY)).to(ctx.device)
        coarse = load_motion(ctx.input(COARSE_MOTION), static=static.to("cpu"))
        field = refined_field(coarse.field, opts.scale_offsets, ctx.seed).to(ctx.device)
        den = denoiser
        if den is None and need_model:
            ctx.progress.log("sds: loading MV-VDM" + (" (tiny random weights)" if opts.tiny_model else ""))
            den = load_model(opts, weights, ctx.device, ctx.seed)
        # 2. optimise (CUDA backend flags and MV-VDM's fused GEGLUs always; its regional compilation when asked)
        if hasattr(den, "accelerate"):  # MvvdmDenoiser: compile when asked, fused GEGLU; others are left as they are
            accel = den.accelerate(ctx.device, compile=opts.compile)
        else:  # the CUDA backend flags alone
            accel = accelerate(ctx.device, [], compile=opts.compile)
        clock.mark("inputs_and_model")
        refiner = SdsRefiner(static, field, den, opts, ctx.seed)
        clock.mark("targets")
        history = refine_motion(refiner, opts.steps, log_every=opts.log_every, progress=ctx.progress)
        clock.mark("steps")
        # 3. outputs
        save_motion(ctx.output(REFINED_MOTION), field, static, fps=coarse.fps, extra={"stage": "sds", "prompt": opts.prompt})
        rgb = refiner.render_fixed_views(opts.render_size)  # [V, F, 3, H, W]
        ctx.write_video(REFINED_PREVIEW, rgb.permute(1, 3, 0, 4, 2).flatten(2, 3).cpu(), fps=coarse.fps)  # [F, H, V·W, 3]
        ctx.metrics.update(summarise_history(history))
        ctx.metrics["psnr_vs_coarse"] = round(refiner.psnr_vs_coarse(), 3)
        ctx.metrics["timestep_range"] = [refiner.t_min, refiner.t_max]
        ctx.metrics["vae_renders_kept"] = kept_render_count(refiner.moving_renders(), opts.vae_chunk, refiner.vae_keep)
        ctx.metrics["vae_keep_fell_back"] = refiner.vae_keep_fell_back
        ctx.metrics["cuda_graph_replays"] = refiner.graph_replays
        ctx.metrics["cuda_graph_out_of_memory"] = refiner.graph_ran_out_of_memory
        ctx.metrics.update(accel.as_metrics())
        clock.mark("writing")
        ctx.metrics["seconds_per_phase"] = {name: round(t, 3) for name, t in clock.seconds.items()}

    return run_stage("sds", run_dir, opts, body, rt, requires=REQUIRES, recipe=RECIPE)


__all__ = ["SdsOptions", "load_model", "run"]
