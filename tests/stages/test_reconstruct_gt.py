"""Reconstruct on synthetic ground truth (CPU, tiny sizes): the fitted motion must beat the static model on
held-out views and on splat positions. The full-size version is benchmarks/bench_reconstruct.py."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.motion_field import MotionFieldConfig
from a3d_cli.gaussians.motion_fit import FitSettings
from a3d_cli.gaussians.motion_io import load_motion
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.io.images import save_png
from a3d_cli.kernels import rasterize
from a3d_cli.render.cameras import mvvdm_cameras, orbit_cameras
from a3d_cli.stages import reconstruct as stage
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.reconstruct import ReconstructOptions

SIZE = 40
FRAMES = 16


def _worm(n: int = 360) -> Gaussians:
    """Splats on an elongated ellipsoid (long axis z), striped so that motion shows in every view."""
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    means = d * torch.tensor([0.22, 0.22, 0.6])
    stripes = (torch.sin(means[:, 2] * 18) > 0).float()[:, None]
    colors = stripes * torch.tensor([0.9, 0.3, 0.1]) + (1 - stripes) * torch.tensor([0.15, 0.35, 0.9])
    colors = colors * (0.75 + 0.25 * (means[:, :1] > 0).float())
    return Gaussians(
        means=means,
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.055),
        opacities=torch.full((n,), 0.95),
        colors=colors,
    )


def _moved(p: torch.Tensor, f: int) -> torch.Tensor:
    """Known motion: the worm's ends bend up, and the whole worm sways sideways."""
    s = math.sin(math.pi * f / (FRAMES - 1))
    q = p.clone()
    q[:, 1] = q[:, 1] + 0.3 * s * (p[:, 2] / 0.6) ** 2
    q[:, 0] = q[:, 0] + 0.08 * s
    return q


def _render(g: Gaussians, means: torch.Tensor, cams) -> torch.Tensor:
    """[F, V, H, W, 3] on grey for per-frame means [F, N, 3]."""
    with torch.no_grad():
        out = rasterize(
            means, g.quats, g.scales, g.opacities, g.colors, cams.viewmats, cams.Ks(SIZE, SIZE), SIZE, SIZE,
            backgrounds=torch.full((len(cams), 3), 0.5),
        )  # fmt: skip
    return out.colors.clamp(0, 1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is as fast, and far faster when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("gt")
    static = _worm()
    run = root / "RUN"
    (run / "static" / "views").mkdir(parents=True)
    write_ply(run / "static" / "gaussians.ply", static)
    cams = mvvdm_cameras()
    (run / "static" / "views" / "cameras.json").write_text(cams.dumps(SIZE, SIZE))
    truth = torch.stack([_moved(static.means, f) for f in range(FRAMES)])  # [F, N, 3]
    video = _render(static, truth, cams)  # [F, V, H, W, 3]
    (root / "video").mkdir()
    for f in range(FRAMES):
        for v in range(4):
            save_png(root / "video" / f"v{v}_f{f:02d}.png", video[f, v])  # RGB, no alpha: masks are computed
    held = orbit_cameras([0.0, 30.0, 0.0], [45.0, 200.0, 300.0], radius=3.0, fov_deg=40.0)
    return {
        "run": run,
        "video": root / "video",
        "static": read_ply(run / "static" / "gaussians.ply"),
        "truth": truth,
        "held": held,
    }


def test_reconstruct_beats_the_static_model_on_held_out_views(scene):
    settings = FitSettings(
        steps=90, steps_per_frame=5, frames_per_step=3, resolution=SIZE, arap_samples=128,
        lr_heads=1e-3, field=MotionFieldConfig(grid_sizes=((16, 16, 16, 8), (32, 32, 32, 16))),
    )  # fmt: skip
    res = stage.run(
        scene["run"],
        ReconstructOptions(video=str(scene["video"]), settings=settings, preview=False),
        Runtime(device="cpu"),
    )
    assert res.metrics["psnr"] > res.metrics["psnr_static"] + 2.0  # training views

    static, truth, held = scene["static"], scene["truth"], scene["held"]
    field = load_motion(scene["run"] / "motion" / "coarse.safetensors", static=static).field
    frames = list(range(FRAMES))
    with torch.no_grad():
        fitted = field(static, frames)
    target = _render(static, truth, held)  # [F, 3, H, W, 3]
    with torch.no_grad():
        out = rasterize(
            fitted.means, fitted.quats, fitted.scales, static.opacities, static.colors, held.viewmats,
            held.Ks(SIZE, SIZE), SIZE, SIZE, backgrounds=torch.full((3, 3), 0.5),
        )  # fmt: skip
    still = _render(static, static.means[None].expand(FRAMES, -1, -1), held)

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(-10 * torch.log10((a[1:] - b[1:]).square().mean()))

    fit_psnr, static_psnr = psnr(out.colors.clamp(0, 1), target), psnr(still, target)
    assert fit_psnr > static_psnr + 4.0, (fit_psnr, static_psnr)
    # positions: the splats move the right way (mean error well below the motion's own size)
    fit_err = (fitted.means - truth).norm(dim=-1)[1:].mean()
    static_err = (static.means[None] - truth).norm(dim=-1)[1:].mean()
    assert fit_err < 0.5 * static_err, (float(fit_err), float(static_err))
    assert torch.equal(fitted.means[0], static.means)  # frame 0 stays the static model
