"""Fit static Gaussians to V views with known cameras: the splat half of `a3d lift`.

The parameters are the splats' centres, two in-plane log-scales (the third is FLATNESS × the smaller, so
every splat stays a thin disc lying in the surface — that is what makes the rendered depth a surface a
mesh can be extracted from), rotations, opacity logits and colour logits (view-independent colour, which
is what a texture can hold). Each step renders a few random views in one rasterizer call (all of them
where the device is fast) and minimises

    Charbonnier(render on white, view)                 robust: generated views disagree a little
    + λ_mask · (alpha − mask)²                          silhouettes
    + λ_binary · mean(α(1 − α))  over opacities         opaque-or-gone splats: crisp depth
    + λ_scale · mean(relu(scale − max_scale))           no splat larger than a fraction of the object

Every `prune_every` steps splats whose opacity fell below `prune_opacity` are removed. The rasterizer is
gsplat on CUDA and a3d's PyTorch reference on the CPU (`a3d_cli.kernels.rasterize`).

Examples:
    >>> g = fit_static(init, views.images, masks, views.cameras, LiftFitSettings(steps=300))  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.errors import OptionError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.lift.hull import FLATNESS
from a3d_cli.render.cameras import CameraSet

BACKGROUND = 1.0
"""The views' background (SV3D renders on white); renders are composited on it too."""


@dataclass(frozen=True)
class LiftFitSettings:
    """Knobs of the static fit."""

    steps: int = 1500
    """Optimisation steps."""
    views_per_step: int = 0
    """Views rendered per step (0 = all)."""
    lr_means: float = 2e-3
    """Adam learning rate of the centres, in units of the object's half-width; decays ×0.1 over the fit."""
    lr_scales: float = 1e-2
    lr_quats: float = 2e-3
    lr_opacity: float = 5e-2
    lr_colors: float = 2e-2
    lambda_mask: float = 1.0
    lambda_binary: float = 0.05
    lambda_scale: float = 10.0
    max_scale: float = 0.05
    """Largest in-plane standard deviation, as a fraction of the object's half-width."""
    charbonnier_eps: float = 1e-3
    prune_every: int = 100
    prune_opacity: float = 0.02

    def __post_init__(self) -> None:
        if self.steps < 0 or self.views_per_step < 0 or self.prune_every < 1:
            raise OptionError("steps and views_per_step must be >= 0 and prune_every >= 1.")


@dataclass
class LiftFitResult:
    """The fitted splats, the per-step loss (every 10 steps) and the loop's wall time."""

    gaussians: Gaussians
    losses: list[tuple[int, float]]
    seconds: float


def render(g: Gaussians, cameras: CameraSet, size: int, depth: bool = False, index: Tensor | None = None):  # noqa: ANN201
    """Render splats into (a subset of) the views on white.

    Returns:
        RasterOutput with colors [V, S, S, 3], alphas [V, S, S, 1] (and depths when asked).
    """
    from a3d_cli.kernels import rasterize

    dev = g.means.device
    viewmats, Ks = cameras.viewmats.to(dev), cameras.Ks(size, size).to(dev)
    if index is not None:
        viewmats, Ks = viewmats[index], Ks[index]
    bg = torch.full((viewmats.shape[0], 3), BACKGROUND, device=dev, dtype=g.means.dtype)
    return rasterize(
        g.means, g.quats, g.scales, g.opacities, g.colors, viewmats, Ks, size, size,
        backgrounds=bg, render_mode="RGB+ED" if depth else "RGB",
    )  # fmt: skip


def render_chunked(g: Gaussians, cameras: CameraSet, size: int, depth: bool = False, chunk: int = 8):  # noqa: ANN201
    """`render` without gradients, a few views at a time; returns (rgb, alpha, depth or None) on the CPU."""
    rgbs, alphas, depths = [], [], []
    with torch.no_grad():
        for start in range(0, len(cameras), chunk):
            idx = torch.arange(start, min(start + chunk, len(cameras)))
            out = render(g, cameras, size, depth, idx.to(g.means.device))
            rgbs.append(out.colors.clamp(0, 1).cpu())
            alphas.append(out.alphas[..., 0].clamp(0, 1).cpu())
            if depth:
                depths.append(out.depths[..., 0].cpu())
    return torch.cat(rgbs), torch.cat(alphas), (torch.cat(depths) if depth else None)


class _Params(torch.nn.Module):
    """The trainable form of flat splats."""

    def __init__(self, g: Gaussians) -> None:
        super().__init__()
        in_plane = g.scales[:, :2].clamp_min(1e-6)
        self.means = torch.nn.Parameter(g.means.clone())
        self.log_scales = torch.nn.Parameter(in_plane.log())
        self.quats = torch.nn.Parameter(F.normalize(g.quats, dim=-1).clone())
        self.opacity_logits = torch.nn.Parameter(torch.logit(g.opacities.clamp(1e-4, 1 - 1e-4)))
        self.color_logits = torch.nn.Parameter(torch.logit(g.colors.clamp(1e-3, 1 - 1e-3)))

    def gaussians(self) -> Gaussians:
        s = self.log_scales.exp()  # [N, 2]
        thin = FLATNESS * s.min(dim=1, keepdim=True).values
        return Gaussians(
            means=self.means,
            quats=F.normalize(self.quats, dim=-1),
            scales=torch.cat([s, thin], dim=1),
            opacities=torch.sigmoid(self.opacity_logits),
            colors=torch.sigmoid(self.color_logits),
        )

    def keep(self, mask: Tensor) -> None:
        for name in ("means", "log_scales", "quats", "opacity_logits", "color_logits"):
            setattr(self, name, torch.nn.Parameter(getattr(self, name).detach()[mask].clone()))


def _optimizer(p: _Params, s: LiftFitSettings, extent: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        [
            {"params": [p.means], "lr": s.lr_means * extent, "name": "means"},
            {"params": [p.log_scales], "lr": s.lr_scales},
            {"params": [p.quats], "lr": s.lr_quats},
            {"params": [p.opacity_logits], "lr": s.lr_opacity},
            {"params": [p.color_logits], "lr": s.lr_colors},
        ],
        eps=1e-15,
    )


def fit_static(
    init: Gaussians,
    images: Tensor,  # [V, S, S, 3]
    masks: Tensor,  # [V, S, S]
    cameras: CameraSet,
    settings: LiftFitSettings,
    extent: float,
    *,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> LiftFitResult:
    """Fit flat splats to the views (everything on `init`'s device).

    Args:
        init: starting splats (e.g. `hull.hull_splats`).
        images: [V, S, S, 3] views on white.
        masks: [V, S, S] foreground masks.
        cameras: the V cameras.
        settings: steps, learning rates, loss weights.
        extent: the object's half-width (scales the centres' learning rate and the scale cap).
        seed: seeds the view draws.
        on_step: called with (step, loss) after every step (progress, tests).
    """
    dev = init.means.device
    v, size = images.shape[0], images.shape[1]
    images, masks = images.to(dev), masks.to(dev).float()
    params = _Params(init)
    opt = _optimizer(params, settings, extent)
    gen = torch.Generator().manual_seed(seed)
    k = v if settings.views_per_step in (0, v) or settings.views_per_step > v else settings.views_per_step
    max_scale = settings.max_scale * extent
    losses: list[tuple[int, float]] = []
    start = time.perf_counter()
    for step in range(settings.steps):
        frac = step / max(1, settings.steps)
        opt.param_groups[0]["lr"] = settings.lr_means * extent * (0.1**frac)  # exponential decay to 10 %
        idx = (torch.arange(v) if k == v else torch.randperm(v, generator=gen)[:k]).to(dev)
        g = params.gaussians()
        out = render(g, cameras, size, index=idx)
        rgb, alpha = out.colors, out.alphas[..., 0]
        diff = rgb - images[idx]
        loss = torch.sqrt(diff.square() + settings.charbonnier_eps**2).mean()
        loss = loss + settings.lambda_mask * (alpha - masks[idx]).square().mean()
        op = g.opacities
        loss = loss + settings.lambda_binary * (op * (1 - op)).mean()
        loss = loss + settings.lambda_scale * F.relu(g.scales[:, :2] - max_scale).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if step % 10 == 0:
            losses.append((step, value))
        if on_step is not None:
            on_step(step, value)
        if (step + 1) % settings.prune_every == 0 and step + 1 < settings.steps:
            keep = torch.sigmoid(params.opacity_logits.detach()) >= settings.prune_opacity
            if 0 < int(keep.sum()) < keep.numel():
                params.keep(keep)
                opt = _reoptimizer(params, opt, settings, extent, keep)
    with torch.no_grad():
        final = params.gaussians()
        final = Gaussians(*(t.detach() for t in (final.means, final.quats, final.scales, final.opacities, final.colors)))
        keep = final.opacities >= settings.prune_opacity
        if int(keep.sum()) > 0:
            final = final.subset(keep)
    return LiftFitResult(final, losses, time.perf_counter() - start)


def _reoptimizer(p: _Params, old: torch.optim.Optimizer, s: LiftFitSettings, extent: float, keep: Tensor) -> torch.optim.Optimizer:
    """A fresh Adam over the pruned parameters that keeps the surviving splats' moments."""
    new = _optimizer(p, s, extent)
    for g_old, g_new in zip(old.param_groups, new.param_groups):
        g_new["lr"] = g_old["lr"]
        st = old.state.get(g_old["params"][0])
        if st:
            new.state[g_new["params"][0]] = {
                "step": st["step"],
                "exp_avg": st["exp_avg"][keep].clone(),
                "exp_avg_sq": st["exp_avg_sq"][keep].clone(),
            }
    return new


__all__ = ["BACKGROUND", "LiftFitResult", "LiftFitSettings", "fit_static", "render", "render_chunked"]
