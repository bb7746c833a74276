"""`a3d sds` as a stage: an oracle denoiser pulls the motion toward a known motion; gradients reach only the field.

Sizes are tiny (a few dozen splats, 2 views × 4 frames at 16²) because the CPU rasterizer is the cost here.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from helpers import SDS_FRAMES as FRAMES
from helpers import sds_run as make_run
from helpers import sds_static as make_static
from torch import nn

from a3d_cli.errors import OptionError, RunFolderError
from a3d_cli.gaussians import motion_refine
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig, MotionOutput
from a3d_cli.gaussians.motion_io import load_motion
from a3d_cli.io.manifest import load_manifest
from a3d_cli.models.sds import SdsCondition, SdsDenoiser
from a3d_cli.progress import RecordingProgress
from a3d_cli.render.random_cameras import RandomCameraConfig
from a3d_cli.stages import sds as sds_stage
from a3d_cli.stages.base import Runtime

SIZE = 16
STEPS = 16
SHIFT = 0.3  # the known motion: a translation along +X growing to SHIFT at the last frame


def known_motion(static: Gaussians, frames: int = FRAMES) -> MotionOutput:
    shift = torch.linspace(0, SHIFT, frames)[:, None, None] * torch.tensor([1.0, 0.0, 0.0])  # [F, 1, 3]
    n = len(static)
    return MotionOutput(
        means=static.means[None] + shift,
        quats=static.quats[None].expand(frames, n, 4),
        scales=static.scales[None].expand(frames, n, 3),
        global_rotation=torch.eye(3).expand(frames, 3, 3),
        global_translation=shift[:, 0],
    )


def _schedule() -> torch.Tensor:
    return torch.cumprod(1 - torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64), 0).float()


class RenderOracle:
    """Stand-in MV-VDM whose x0 prediction is the known motion rendered from the step's cameras.

    Its "VAE" is a frozen strided convolution (parameters that must never receive gradients).
    """

    def __init__(self, static: Gaussians) -> None:
        self.alphas_cumprod = _schedule()
        self.static = static
        torch.manual_seed(0)
        self.vae = nn.Conv2d(3, 4, kernel_size=4, stride=4)
        self.vae.requires_grad_(False)
        self.calls = 0

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return 4, height // 4, width // 4

    def encode(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        z = self.vae(images * 2 - 1)
        return z if noise is None else z + 0.0 * noise

    @torch.no_grad()
    def predict_noise(self, noisy: torch.Tensor, t: int, cond: SdsCondition) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        size = cond.first_frames.shape[-1]
        rgb, _ = motion_refine.render_motion(self.static, known_motion(self.static, noisy.shape[1]), cond.cameras, size)
        v, f = rgb.shape[:2]
        x0 = self.encode(rgb.flatten(0, 1)).unflatten(0, (v, f))  # [V, F, C, h, w]
        a = self.alphas_cumprod[t]
        eps = (noisy - a.sqrt() * x0) / (1 - a).sqrt()
        return eps, eps


def oracle_options(**overrides) -> sds_stage.SdsOptions:
    base = dict(
        prompt="moves to the right",
        steps=2,
        render_size=SIZE,
        target_size=SIZE,
        cameras=RandomCameraConfig(num_views=2),
        arap_sample_points=32,
        log_every=1,
    )
    base.update(overrides)
    return sds_stage.SdsOptions(**base)


def _mean_error(field: MotionField, static: Gaussians) -> float:
    with torch.no_grad():
        moved = field(static, torch.arange(FRAMES)).means[1:]
        return float((moved - known_motion(static).means[1:]).norm(dim=-1).mean())


def test_oracle_pulls_the_motion_toward_the_known_motion():
    static = make_static()
    oracle = RenderOracle(static)
    assert isinstance(oracle, SdsDenoiser)
    field = MotionField(
        MotionFieldConfig.tiny(num_frames=FRAMES, use_delta_scale=True), generator=torch.Generator().manual_seed(0)
    )
    # SDS alone, with learning rates raised so a few dozen steps show the pull.
    opts = oracle_options(lambda_rgb=0.0, lambda_mask=0.0, lambda_arap=0.0, grid_lr=0.02, head_lr=0.01, global_lr=0.02)
    refiner = motion_refine.SdsRefiner(static, field, oracle, opts, seed=0)
    start = _mean_error(field, static)
    losses = [float(refiner.step().sds.detach()) for _ in range(STEPS)]
    end = _mean_error(field, static)
    assert start == pytest.approx(SHIFT * 2 / 3, rel=1e-4)  # frames 1-3 are 0.1, 0.2, 0.3 away
    assert end < 0.5 * start, (start, end)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.5 * first, losses
    assert oracle.calls == STEPS


def test_gradients_reach_the_motion_field_and_nothing_frozen():
    static = make_static()
    static_before = dataclasses.replace(static)
    oracle = RenderOracle(static)
    field = MotionField(
        MotionFieldConfig.tiny(num_frames=FRAMES, use_delta_scale=True), generator=torch.Generator().manual_seed(0)
    )
    refiner = motion_refine.SdsRefiner(static, field, oracle, oracle_options(), seed=0)
    optimised = {id(p) for group in refiner.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in field.parameters()}
    for _ in range(3):  # zero-initialised output layers: the grids see gradient from the second step on
        refiner.step()
    for name, p in field.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reached {name}"
    assert all(p.grad is None for p in oracle.vae.parameters())
    for t in (static.means, static.quats, static.scales, static.opacities, static.colors):
        assert not t.requires_grad and t.grad is None
    assert torch.equal(static.means, static_before.means)


def test_reconstruction_terms_alone_keep_the_coarse_motion():
    """With λ_sds = 0 the coarse renders are the targets, so a coarse field sits at the optimum (loss 0)."""
    static = make_static()
    field = MotionField(
        MotionFieldConfig.tiny(num_frames=FRAMES, use_delta_scale=True), generator=torch.Generator().manual_seed(0)
    )
    refiner = motion_refine.SdsRefiner(static, field, None, oracle_options(lambda_sds=0.0), seed=0)
    losses = refiner.step()
    assert float(losses.rgb.detach()) / 100.0 < 2e-3  # only the edge residue of the binarised-mask compositing
    assert float(losses.arap.detach()) == pytest.approx(0.0, abs=1e-9)
    assert losses.t == -1


def test_stage_writes_refined_motion_preview_and_losses(run_dir):
    static = make_run(run_dir)
    progress = RecordingProgress()
    res = sds_stage.run(
        run_dir, oracle_options(steps=3), Runtime(seed=3, progress=progress), denoiser=RenderOracle(static)
    )
    names = sorted(p.relative_to(run_dir.resolve()).as_posix() for p in res.outputs)
    assert names == ["motion/refined.safetensors", "motion/refined_preview.mp4"]
    refined = load_motion(run_dir / "motion" / "refined.safetensors", static=static)
    assert refined.field.config.use_delta_scale and refined.metadata["stage"] == "sds"
    entry = load_manifest(run_dir)["stages"]["sds"]
    assert entry["status"] == "done"
    assert set(entry["metrics"]["loss_end"]) == {"total", "sds", "rgb", "mask", "arap"}
    assert len(entry["metrics"]["loss_curve"]) == 3 and entry["metrics"]["timestep_range"] == [20, 200]
    assert math.isfinite(entry["metrics"]["psnr_vs_coarse"])
    assert progress.steps == 3 and "sds" in progress.last_fields
    # on the CPU, auto keeps no VAE activations (no device budget), and says so once
    assert entry["metrics"]["vae_renders_kept"] == 0 and entry["metrics"]["vae_keep_fell_back"] is False
    assert sum("recomputing the VAE encoder's activations" in m for m in progress.messages) == 1
    # unchanged inputs and options: skipped, also when only a result-neutral option (the VAE memory) differs
    again = sds_stage.run(run_dir, oracle_options(steps=3, vae_keep=0), Runtime(seed=3), denoiser=RenderOracle(static))
    assert again.skipped and entry["params"]["vae_keep"] is None
    changed = sds_stage.run(run_dir, oracle_options(steps=4), Runtime(seed=3), denoiser=RenderOracle(static))
    assert not changed.skipped


class OutOfMemoryOnce(RenderOracle):
    """The oracle, whose encoder runs out of GPU memory the first time it is asked to keep activations."""

    def __init__(self, static: Gaussians) -> None:
        super().__init__(static)
        self.failed = False

    def encode(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_grad_enabled() and images.requires_grad and not self.failed:  # the first encode with gradients
            self.failed = True
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().encode(images, noise)


def test_a_step_out_of_memory_keeping_activations_is_run_again_without_them():
    """Keeping the VAE activations is a speed choice: when memory runs out the step runs again from the same
    random state with every chunk recomputed, so the motion ends exactly where it would have without keeping."""
    static = make_static()
    fields, refiners = [], []
    for keep, oracle in ((0, RenderOracle(static)), (99, OutOfMemoryOnce(static))):
        field = MotionField(
            MotionFieldConfig.tiny(num_frames=FRAMES, use_delta_scale=True), generator=torch.Generator().manual_seed(0)
        )
        refiner = motion_refine.SdsRefiner(static, field, oracle, oracle_options(vae_keep=keep), seed=0)
        losses = [refiner.step() for _ in range(3)]
        fields.append((field, [float(x.total.detach()) for x in losses]))
        refiners.append(refiner)
    assert refiners[1].denoiser.failed and refiners[1].vae_keep_fell_back and refiners[1].vae_keep == 0
    assert "out of GPU memory" in refiners[1].vae_keep_message()
    assert fields[1][1] == fields[0][1]
    for (name, a), b in zip(fields[0][0].state_dict().items(), fields[1][0].state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_bad_input(run_dir):
    with pytest.raises(OptionError):
        sds_stage.SdsOptions(prompt="  ")
    with pytest.raises(OptionError, match="--steps must be >= 1"):  # 0 steps would write an unrefined "refined"
        sds_stage.SdsOptions(prompt="x", steps=0)
    with pytest.raises(OptionError, match="^--vae-chunk must be >= 0"):  # names the one option at fault
        oracle_options(vae_chunk=-1)
    with pytest.raises(OptionError):
        oracle_options(render_size=30)
    with pytest.raises(OptionError):
        oracle_options(min_step_percent=0.5, max_step_percent=0.2)
    with pytest.raises(OptionError, match="--vae-keep"):
        oracle_options(vae_keep=-1)
    run_dir.mkdir()
    with pytest.raises(RunFolderError, match="static/gaussians.ply"):
        sds_stage.run(run_dir, oracle_options(), Runtime(), denoiser=RenderOracle(make_static()))
