"""`a3d sds`: refine the coarse motion with 4D score distillation, MV-VDM as the prior.

Reads `static/gaussians.ply` and `motion/coarse.safetensors`; writes `motion/refined.safetensors` (same
format, now with the Δscale head) and `motion/refined_preview.mp4` (the 4 fixed views side by side).

Every step (reference: Animate3D `refine_frame_16.yaml`, shared/reference/animate3d.md §3.4):

1. evaluate the motion field once for all 16 frames (positions do not depend on the view);
2. SDS branch: render a random set of 4 orthogonal views × 16 frames at 256², encode them with the VAE
   (gradients flow through the encoder; frame 0 — the static model — without gradients), and take the
   x0-reconstruction 4D-SDS loss (`a3d_cli.models.sds`), weight 0.01;
3. reconstruction branch: render the 4 fixed MV-VDM views × frames 1–15 and compare with the coarse
   motion's renders of the same views (colour and mask MSE, weight 100 each), plus ARAP over frames 1–15
   (weight 12);
4. one Adam step on the motion field only (grid 0.01, Δ heads 1e-4, global head 1e-3).

Differences from the reference, on purpose: ARAP scores frames 1–15 (the reference, by a variable mix-up,
scores frames 0–14 of a random view; frame 0 adds nothing, so only frame 15 differs), and the VAE encoder
is run under activation checkpointing in chunks (`vae_chunk`), which changes memory, not the numbers.

Examples:
    >>> run(Path("RUN"), SdsOptions(prompt="a dog wags its tail"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from a3d_cli.errors import OptionError, RunFolderError
from a3d_cli.render.random_cameras import RandomCameraConfig
from a3d_cli.stages.base import Runtime, StageContext, StageResult, run_stage

if TYPE_CHECKING:
    from torch import Tensor

    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField, MotionOutput
    from a3d_cli.models.sds import SdsDenoiser
    from a3d_cli.render.cameras import CameraSet

STATIC = "static/gaussians.ply"
COARSE = "motion/coarse.safetensors"
REFINED = "motion/refined.safetensors"
PREVIEW = "motion/refined_preview.mp4"
BACKGROUND = 0.5  # grey, as MV-VDM was trained and the reference renders
REQUIRES = {STATIC: "a3d prepare MODEL -o RUN", COARSE: "a3d reconstruct RUN"}
#: What `--dtype auto` means on CUDA for MV-VDM here (off CUDA it is fp32): the one place to change it.
#: The reference guidance (Animate3D's threestudio guidance) loads MV-VDM in fp16; bf16 is a3d's choice.
DEFAULT_CUDA_DTYPE = "bf16"
WEIGHTS_ALTERNATIVE = "Or skip refinement: `a3d animate --no-sds`."
"""The last sentence of the missing-weights hint: the chain runs without this stage."""


@dataclass(frozen=True)
class SdsOptions:
    """Options of `a3d sds`; defaults are the reference's refine-stage values."""

    prompt: str
    """What the object does ("a dog wags its tail"); the text condition of MV-VDM."""
    negative_prompt: str = ""
    """Text of the unconditional branch (the reference: empty)."""
    steps: int = 200
    """Optimisation steps."""
    guidance_scale: float = 5.0
    """s in ε_c + s (ε_c - ε_u)."""
    std_rescale: float = 0.25
    """Blend weight of the CFG-std rescale of the x0 estimate (0 = off)."""
    min_step_percent: float = 0.02
    """Lowest diffusion timestep, as a fraction of the model's training steps (0.02 → t = 20)."""
    max_step_percent: float = 0.2
    """Highest diffusion timestep fraction (0.2 → t = 200)."""
    lambda_sds: float = 0.01
    """Weight of the 4D-SDS loss."""
    lambda_rgb: float = 100.0
    """Weight of the colour MSE against the coarse motion's renders."""
    lambda_mask: float = 100.0
    """Weight of the silhouette MSE against the coarse motion's renders."""
    lambda_arap: float = 12.0
    """Weight of the as-rigid-as-possible energy (k-NN neighbourhoods of the static splats)."""
    arap_neighbours: int = 3
    """Neighbours per splat in the ARAP energy."""
    arap_sample_points: int = 512
    """Splats scored by ARAP per step (drawn with replacement; 0 = all)."""
    render_size: int = 256
    """Side in pixels of the SDS renders (MV-VDM's resolution)."""
    target_size: int = 1024
    """Side in pixels of the reconstruction-branch renders and their targets (the reference: 1024)."""
    cameras: RandomCameraConfig = field(default_factory=RandomCameraConfig)
    """Distributions of the random SDS camera sets (elevation 0–30°, fov 15–60°, relative distance 0.8–1)."""
    grid_lr: float = 0.01
    """Adam learning rate of the HexPlane grids."""
    head_lr: float = 1e-4
    """Adam learning rate of the Δposition/Δrotation/Δscale heads."""
    global_lr: float = 1e-3
    """Adam learning rate of the global rigid-motion heads."""
    scale_offsets: bool = True
    """Let the motion change splat scales (the Δscale head; the reference turns it on for this stage)."""
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """Precision of the diffusion model (auto: bf16 on CUDA, fp32 on CPU). Renders stay fp32."""
    vae_chunk: int = 16
    """Renders per VAE-encoder checkpoint chunk: lower saves memory, 0 keeps every activation (fastest)."""
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
    """On CUDA, compile the repeated blocks of MV-VDM's UNet and VAE encoder (`a3d_cli.models.acceleration`):
    faster steps after a one-off compilation on the first run (cached on disk afterwards). Ignored on CPU."""

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise OptionError(
                "The SDS prompt is empty.", hint='Say what the object does: --prompt "a dog wags its tail".'
            )
        if self.steps < 0:
            raise OptionError(f"--steps must be >= 0, got {self.steps}.")
        if not 0.0 <= self.min_step_percent <= self.max_step_percent <= 1.0:
            raise OptionError(
                f"The timestep range {self.min_step_percent}–{self.max_step_percent} is not inside 0–1 in increasing order.",
                hint="Use e.g. --min-step-percent 0.02 --max-step-percent 0.2.",
            )
        if not 0.0 <= self.std_rescale <= 1.0:
            raise OptionError(f"--std-rescale must be in [0, 1], got {self.std_rescale}.")
        for name in ("lambda_sds", "lambda_rgb", "lambda_mask", "lambda_arap", "grid_lr", "head_lr", "global_lr"):
            if getattr(self, name) < 0:
                raise OptionError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}.")
        for name in ("render_size", "target_size"):
            if getattr(self, name) < 8 or getattr(self, name) % 8:
                raise OptionError(
                    f"--{name.replace('_', '-')} must be a multiple of 8 (the VAE downsamples by 8), got {getattr(self, name)}."
                )
        if self.vae_chunk < 0 or self.arap_sample_points < 0 or self.arap_neighbours < 1 or self.log_every < 1:
            raise OptionError(
                "--vae-chunk and --arap-sample-points must be >= 0, --arap-neighbours and --log-every >= 1."
            )


# -- rendering --------------------------------------------------------------------------------------------------------


def render_motion(static: Gaussians, motion: MotionOutput, cams: CameraSet, size: int) -> tuple[Tensor, Tensor]:
    """Render F moved frames from V cameras in one rasterizer call, on grey.

    Args:
        static: the N static splats (opacities and colours are frozen).
        motion: the field's output for F frames (means/quats/scales [F, N, ...]).
        cams: V cameras.
        size: square image side.

    Returns:
        (rgb [V, F, 3, H, W], alpha [V, F, 1, H, W]), differentiable w.r.t. the motion.
    """
    from a3d_cli.kernels import rasterize

    dev = static.means.device
    viewmats = cams.viewmats.to(dev)  # [V, 4, 4]
    ks = cams.Ks(size, size).to(dev)  # [V, 3, 3]
    if static.sh_rest is None:
        colors, sh_degree = static.colors, None  # [N, 3]
    else:
        colors, sh_degree = static.sh_coeffs(), static.sh_degree  # [N, K, 3]
    background = static.means.new_full((len(cams), 3), BACKGROUND)  # [V, 3]
    out = rasterize(
        motion.means,
        motion.quats,
        motion.scales,
        static.opacities,
        colors,
        viewmats,
        ks,
        size,
        size,
        sh_degree=sh_degree,
        backgrounds=background,
    )  # colors [F, V, H, W, 3]
    rgb = out.colors.permute(1, 0, 4, 2, 3)  # [V, F, 3, H, W]
    alpha = out.alphas.permute(1, 0, 4, 2, 3)  # [V, F, 1, H, W]
    return rgb, alpha


def coarse_targets(rgb: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """The reconstruction targets made from the coarse motion's renders, as the reference reads them back.

    The reference saves the coarse renders as RGBA PNGs and loads them with mask = alpha > 0.5 and the
    colour composited on grey through that mask.

    Args:
        rgb: [V, F, 3, H, W] renders on grey.
        alpha: [V, F, 1, H, W].

    Returns:
        (target rgb [V, F, 3, H, W], target mask [V, F, 1, H, W]), detached.
    """
    mask = (alpha.detach() > 0.5).to(rgb.dtype)  # [V, F, 1, H, W]
    return rgb.detach() * mask + BACKGROUND * (1 - mask), mask


# -- the denoiser -----------------------------------------------------------------------------------------------------


def encode_checkpointed(denoiser: SdsDenoiser, images: Tensor, noise: Tensor, chunk: int) -> Tensor:
    """VAE-encode with gradients, recomputing activations chunk by chunk in the backward pass.

    Why: the encoder's activations for 60 renders at 256² take tens of GB; checkpointing keeps one chunk's.

    Args:
        images: [B, 3, H, W] in [0, 1].
        noise: [B, C, h, w] posterior draws (fixed, so the recomputation matches).
        chunk: renders per chunk; 0 = plain autograd (everything stored).

    Returns:
        [B, C, h, w] latents.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if chunk <= 0 or not torch.is_grad_enabled() or not images.requires_grad:
        return denoiser.encode(images, noise)
    parts = [
        checkpoint(denoiser.encode, images[i : i + chunk], noise[i : i + chunk], use_reentrant=False)
        for i in range(0, images.shape[0], chunk)
    ]
    return torch.cat(parts, dim=0)


# -- the optimisation -------------------------------------------------------------------------------------------------


@dataclass
class StepLosses:
    """Weighted loss terms of one step (tensors, so reading them is the caller's choice of sync)."""

    total: Tensor
    sds: Tensor
    rgb: Tensor
    mask: Tensor
    arap: Tensor
    t: int


class SdsRefiner:
    """One motion field being refined: holds the optimiser, the fixed targets and the random sources.

    Args:
        static: N frozen splats on the device.
        field: the motion field to refine (its parameters are the only ones optimised).
        denoiser: the diffusion prior (frozen, no gradients); None only when `opts.lambda_sds` is 0.
        opts: stage options.
        seed: seeds cameras, timesteps and noise.
    """

    def __init__(
        self, static: Gaussians, field: MotionField, denoiser: SdsDenoiser | None, opts: SdsOptions, seed: int
    ) -> None:
        import torch

        from a3d_cli.gaussians.arap import ArapRegularizer
        from a3d_cli.models.sds import timestep_range
        from a3d_cli.render.cameras import mvvdm_cameras

        self.static, self.field, self.denoiser, self.opts = static, field, denoiser, opts
        dev = static.means.device
        self.device = dev
        self.num_frames = field.config.num_frames
        self.frames = torch.arange(self.num_frames)
        self.cpu_gen = torch.Generator().manual_seed(seed)  # cameras, timesteps
        self.dev_gen = torch.Generator(device=dev).manual_seed(seed + 1)  # noise, ARAP samples
        if denoiser is None and opts.lambda_sds > 0:
            raise ValueError("a denoiser is needed when lambda_sds > 0")
        num_train = 1000 if denoiser is None else denoiser.alphas_cumprod.shape[0]
        self.t_min, self.t_max = timestep_range(num_train, opts.min_step_percent, opts.max_step_percent)
        self.fixed_cams = mvvdm_cameras()
        with torch.no_grad():
            rgb, alpha = render_motion(static, field(static, self.frames), self.fixed_cams, opts.target_size)
        self.target_rgb, self.target_mask = coarse_targets(rgb[:, 1:], alpha[:, 1:])  # frames 1…F-1
        self.arap = ArapRegularizer.from_points(
            static.means, k=opts.arap_neighbours, sample_points=opts.arap_sample_points
        )
        groups = [
            {"params": field.grid_parameters(), "lr": opts.grid_lr},
            {"params": field.head_parameters(), "lr": opts.head_lr},
            {"params": field.global_parameters(), "lr": opts.global_lr},
        ]
        self.optimizer = torch.optim.Adam([g for g in groups if g["params"]], eps=1e-15)

    def sds_term(self, motion: MotionOutput) -> tuple[Tensor, int]:
        """The unweighted 4D-SDS loss of this step's random views (gradients into `motion`)."""
        import torch

        from a3d_cli.models.sds import SdsCondition, sample_timestep, sds_loss
        from a3d_cli.render.random_cameras import sample_orthogonal_cameras

        opts, den = self.opts, self.denoiser
        assert den is not None
        cams = sample_orthogonal_cameras(opts.cameras, generator=self.cpu_gen)
        rgb, _ = render_motion(self.static, motion, cams, opts.render_size)  # [V, F, 3, H, W]
        v, f = rgb.shape[:2]
        c, h, w = den.latent_shape(opts.render_size, opts.render_size)
        post = torch.randn(v, f, c, h, w, generator=self.dev_gen, device=self.device)  # VAE posterior draws
        with torch.no_grad():
            z0 = den.encode(rgb[:, 0], post[:, 0])  # [V, C, h, w] static frame: no gradient
        moving = encode_checkpointed(
            den,
            rgb[:, 1:].reshape(v * (f - 1), 3, *rgb.shape[-2:]),
            post[:, 1:].reshape(v * (f - 1), c, h, w),
            opts.vae_chunk,
        )
        z = torch.cat([z0[:, None], moving.reshape(v, f - 1, c, h, w)], dim=1).float()  # [V, F, C, h, w]
        t = sample_timestep(self.t_min, self.t_max, self.cpu_gen)
        noise = torch.randn(v, f - 1, c, h, w, generator=self.dev_gen, device=self.device)
        cond = SdsCondition(opts.prompt, opts.negative_prompt, rgb[:, 0].detach(), cams)
        loss, _ = sds_loss(den, z, cond, t, noise, opts.guidance_scale, opts.std_rescale)
        return loss, t

    def step(self) -> StepLosses:
        """One optimisation step of all loss terms."""
        import torch.nn.functional as F  # noqa: N812

        opts = self.opts
        motion = self.field(self.static, self.frames)  # [F, N, ...]
        zero = motion.means.new_zeros(())
        sds, t = self.sds_term(motion) if opts.lambda_sds > 0 else (zero, -1)
        rgb_l, mask_l = zero, zero
        if opts.lambda_rgb > 0 or opts.lambda_mask > 0:
            moving = dataclasses.replace(
                motion, means=motion.means[1:], quats=motion.quats[1:], scales=motion.scales[1:]
            )
            rgb, alpha = render_motion(self.static, moving, self.fixed_cams, opts.target_size)  # [V, F-1, ...]
            rgb_l, mask_l = F.mse_loss(rgb, self.target_rgb), F.mse_loss(alpha, self.target_mask)
        arap = self.arap(motion.means[1:], generator=self.dev_gen) if opts.lambda_arap > 0 else zero
        losses = StepLosses(
            total=zero,
            sds=opts.lambda_sds * sds,
            rgb=opts.lambda_rgb * rgb_l,
            mask=opts.lambda_mask * mask_l,
            arap=opts.lambda_arap * arap,
            t=t,
        )
        losses.total = losses.sds + losses.rgb + losses.mask + losses.arap
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        return losses


def _refined_field(coarse: MotionField, scale_offsets: bool, seed: int) -> MotionField:
    """A copy of the coarse field, with a fresh zero-output Δscale head when `scale_offsets` asks for one."""
    import torch

    from a3d_cli.gaussians.motion_field import MotionField

    cfg = dataclasses.replace(coarse.config, use_delta_scale=scale_offsets or coarse.config.use_delta_scale)
    refined = MotionField(cfg, generator=torch.Generator().manual_seed(seed))
    missing, unexpected = refined.load_state_dict(coarse.state_dict(), strict=False)
    stray = [k for k in missing if not k.startswith("delta_scale.")] + list(unexpected)
    if stray:  # pragma: no cover - the two configs differ only in the Δscale head
        raise RuntimeError(f"coarse motion does not fit the refined field: {stray}")
    return refined


def _summarise(history: list[dict[str, float]]) -> dict[str, object]:
    """Manifest metrics: each loss term at the start and the end (means of the first/last samples)."""
    if not history:
        return {"steps": 0}
    k = max(1, min(3, len(history) // 2))
    keys = ("total", "sds", "rgb", "mask", "arap")
    first = {key: sum(h[key] for h in history[:k]) / k for key in keys}
    last = {key: sum(h[key] for h in history[-k:]) / k for key in keys}
    return {
        "loss_start": first,
        "loss_end": last,
        "loss_curve": [{"step": h["step"], **{key: h[key] for key in keys}} for h in history],
    }


def load_model(opts: SdsOptions, weights: dict[str, Path] | None, device: str, seed: int) -> SdsDenoiser:
    """MV-VDM as the SDS denoiser on `device` (tiny random weights when `weights` is None).

    Built through `a3d_cli.models.cache.cached_model`: a batch worker builds it once for all its jobs.
    """
    from a3d_cli.device import torch_dtype
    from a3d_cli.models.cache import cached_model, model_key
    from a3d_cli.models.sds import load_mvvdm_denoiser

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
    for rel, producer in REQUIRES.items():
        if not (Path(run_dir) / rel).exists():
            raise RunFolderError(f"The run folder {run_dir} has no {rel}.", hint=f"Run `{producer}` first.")
    need_model = denoiser is None and opts.lambda_sds > 0  # λ_sds = 0 (reconstruction terms only) needs no model
    weights = None
    if need_model and not opts.tiny_model:
        from a3d_cli.models.mvvdm.weights import explicit_weights, resolve_mvvdm_weights

        weights = resolve_mvvdm_weights(explicit_weights(opts), needed_by="4D-SDS", alternative=WEIGHTS_ALTERNATIVE)

    def body(ctx: StageContext) -> None:
        import torch

        from a3d_cli.gaussians.motion_io import load_motion, save_motion
        from a3d_cli.gaussians.ply import read_ply
        from a3d_cli.io.video import write_mp4

        # 1. inputs
        static = read_ply(ctx.input(STATIC)).to(ctx.device)
        coarse = load_motion(ctx.input(COARSE), static=static.to("cpu"))
        field = _refined_field(coarse.field, opts.scale_offsets, ctx.seed).to(ctx.device)
        den = denoiser
        if den is None and need_model:
            ctx.progress.log("sds: loading MV-VDM" + (" (tiny random weights)" if opts.tiny_model else ""))
            den = load_model(opts, weights, ctx.device, ctx.seed)
        # 2. optimise (CUDA backend flags always; regional compilation of MV-VDM when asked)
        from a3d_cli.models.acceleration import accelerate

        comp = getattr(den, "comp", None)  # MvvdmDenoiser; other denoisers are left as they are
        nets = [comp.unet, comp.vae.encoder] if comp is not None else []
        accel = accelerate(ctx.device, nets, compile=opts.compile)
        refiner = SdsRefiner(static, field, den, opts, ctx.seed)
        ctx.progress.start("sds", total=opts.steps)
        history: list[dict[str, float]] = []
        pending: list[StepLosses] = []
        for i in range(opts.steps):
            pending.append(refiner.step())
            if (i + 1) % opts.log_every == 0 or i + 1 == opts.steps:
                with torch.no_grad():  # one host sync per logging interval
                    stacked = (
                        torch.stack([torch.stack([p.total, p.sds, p.rgb, p.mask, p.arap]) for p in pending])
                        .mean(0)
                        .tolist()
                    )
                entry = dict(zip(("total", "sds", "rgb", "mask", "arap"), stacked, strict=True))
                history.append({"step": i + 1, **entry})
                ctx.progress.update(len(pending), loss=entry["total"], sds=entry["sds"], t=float(pending[-1].t))
                pending.clear()
        # 3. outputs
        save_motion(ctx.output(REFINED), field, static, fps=coarse.fps, extra={"stage": "sds", "prompt": opts.prompt})
        with torch.no_grad():
            rgb, _ = render_motion(
                static, field(static, refiner.frames), refiner.fixed_cams, opts.render_size
            )  # [V, F, 3, H, W]
            fixed_rgb, _ = render_motion(
                static, field(static, refiner.frames[1:]), refiner.fixed_cams, opts.target_size
            )
            mse = float(torch.nn.functional.mse_loss(fixed_rgb, refiner.target_rgb))
        write_mp4(ctx.output(PREVIEW), rgb.permute(1, 3, 0, 4, 2).flatten(2, 3).cpu(), fps=coarse.fps)  # [F, H, V·W, 3]
        ctx.metrics.update(_summarise(history))
        ctx.metrics["psnr_vs_coarse"] = round(-10 * math.log10(max(mse, 1e-12)), 3)
        ctx.metrics["timestep_range"] = [refiner.t_min, refiner.t_max]
        ctx.metrics.update(accel.as_metrics())

    return run_stage("sds", run_dir, opts, body, rt, requires=REQUIRES)


__all__ = ["SdsOptions", "SdsRefiner", "StepLosses", "coarse_targets", "encode_checkpointed", "load_model", "render_motion", "run"]
