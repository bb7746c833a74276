"""Fit static Gaussians to V views with known cameras: the splat half of `a3d lift`.

The parameters are the splats' centres, log-scales, rotations, opacity logits and colour logits
(view-independent colour, which is what a texture can hold). Only the two in-plane scales render: the
third is FLATNESS × the smaller, so every splat stays a thin disc lying in the surface — that is what
makes the rendered depth a surface a mesh can be extracted from. Each step renders a few random views in
one rasterizer call (all of them where the device is fast) and minimises

    Charbonnier(render on white, view)                 robust: generated views disagree a little
    + λ_mask · (alpha − mask)²                          silhouettes (not where the mask is unknown, nor on
                                                        a colour mask's antialiased outline)
    + λ_binary · mean(α(1 − α))  over opacities         opaque-or-gone splats: crisp depth
    + λ_scale · mean(relu(scale − max_scale))           no splat larger than a fraction of the object
    + λ_normal · mean(1 − |cos(n_splats, n_depth)|)     (after `normal_start`) depth–normal consistency

The last is 2DGS's regulariser: the splats' blended normals must agree with the normals of their own
rendered depth, so a surface cannot look right from the fitted views while its splats step in and out
of it (at colour edges they otherwise did, and the depth maps fused into the mesh showed cracks that
carved tunnels into the object).

The splat set adapts as in 3DGS, through gsplat's `DefaultStrategy` (the parameters and one Adam per
parameter follow its conventions): from step `refine_start` to the fraction `refine_stop` of the fit, every
`refine_every` steps, splats whose image-plane gradient averaged over the views that saw them exceeds
`grow_grad2d` are cloned (small ones) or split in two (large ones, sampled inside the disc), and splats
whose opacity fell below `prune_opacity` are removed. A budget bounds the growth: when more splats qualify
than `max_splats` leaves room for, only those with the largest gradients grow (and any overshoot goes,
most transparent first). The strategy's per-step tally of those gradients is replaced by an equivalent
one that does not wait for the device (`accumulate_grad2d`). The rasterizer is gsplat on
CUDA and a3d's PyTorch one on the CPU (`a3d_cli.kernels.rasterize`); both report the image-plane centres
the strategy reads.

Examples:
    >>> g = fit_static(init, views.images, masks, views.cameras, LiftFitSettings(steps=300), 0.66).gaussians  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.errors import OptionError, require_finite_options
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.lift.hull import FLATNESS
from a3d_cli.render.cameras import CameraSet

if TYPE_CHECKING:
    from a3d_cli.progress import Progress

BACKGROUND = 1.0
"""The views' background (SV3D renders on white); renders are composited on it too."""

PARAMS = ("means", "scales", "quats", "opacities", "colors")
"""The trainable tensors, named as gsplat's strategies expect (scales as logs, opacities as logits)."""


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
    prune_opacity: float = 0.02
    """Splats below this opacity are removed at every refinement and at the end."""
    max_splats: int = 0
    """Most splats densification may reach (0 = twice the starting count)."""
    grow_grad2d: float = 2e-4
    """Mean image-plane gradient (gsplat's normalisation) above which a splat is cloned or split."""
    grow_scale3d: float = 0.01
    """Splats larger than this fraction of the object's half-width are split, smaller ones cloned."""
    refine_start: int = 100
    """Steps before the first refinement: the splats settle first (gsplat's 500 count single-image
    steps; each of ours sees several views). A fit shorter than this over `refine_stop` never refines."""
    refine_stop: float = 0.6
    """Fraction of the steps after which the splat set stays fixed (but for the final prune)."""
    refine_every: int = 0
    """Steps between refinements (0 = a twentieth of the steps)."""
    lambda_normal: float = 0.05
    """Weight of the depth–normal consistency term (2DGS's): 1 − |cos| between the splats' blended
    normals and the normals of their rendered depth."""
    normal_start: float = 0.3
    """Fraction of the steps after which the depth–normal term is on (the surface settles first)."""

    def __post_init__(self) -> None:
        require_finite_options(self)  # learning rates and weights have no check of their own
        if self.steps < 0 or self.views_per_step < 0 or self.max_splats < 0 or self.refine_every < 0:
            raise OptionError("steps, views_per_step, max_splats and refine_every must be >= 0.")
        if self.refine_start < 0 or not 0.0 <= self.refine_stop <= 1.0:
            raise OptionError("refine_start must be >= 0 and refine_stop within [0, 1].")


@dataclass
class LiftFitResult:
    """The fitted splats, (step, mean loss of the steps since the previous entry) every `log_every`
    steps, the splat count after each refinement, and the loop's wall time."""

    gaussians: Gaussians
    losses: list[tuple[int, float]]
    seconds: float
    splat_counts: list[tuple[int, int]] = dataclasses.field(default_factory=list)


def render(g: Gaussians, cameras: CameraSet, size: int, depth: bool = False, index: Tensor | None = None):  # noqa: ANN201
    """Render splats into (a subset of) the views on white.

    Returns:
        RasterOutput with colors [V, S, S, 3], alphas [V, S, S, 1] (and depths when asked).
    """
    dev = g.means.device
    viewmats, Ks = cameras.viewmats.to(dev), cameras.Ks(size, size).to(dev)
    if index is not None:
        viewmats, Ks = viewmats[index], Ks[index]
    return _rasterize(g, g.colors, viewmats, Ks, size, depth)


def _rasterize(g: Gaussians, colors: Tensor, viewmats: Tensor, Ks: Tensor, size: int, depth: bool):  # noqa: ANN202
    """One rasterizer call of `g` with per-splat `colors` [N, D] into the cameras given as device tensors,
    composited on white (colour channels beyond the third on 0)."""
    from a3d_cli.kernels import rasterize

    d = colors.shape[-1]
    bg = torch.zeros(viewmats.shape[0], d, device=viewmats.device, dtype=g.means.dtype)
    bg[:, :3] = BACKGROUND
    return rasterize(
        g.means, g.quats, g.scales, g.opacities, colors, viewmats, Ks, size, size,
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


def _render_with_normals(g: Gaussians, viewmats: Tensor, Ks: Tensor, size: int):  # noqa: ANN202
    """Render on white with each splat's world normal (its thin axis) blended as three more channels, and
    depth; the cameras as device tensors [C, 4, 4] and [C, 3, 3]."""
    from a3d_cli.geometry import quat_to_rotmat

    normals = quat_to_rotmat(g.quats)[..., 2]  # [N, 3] the local z axis
    return _rasterize(g, torch.cat([g.colors, normals], dim=-1), viewmats, Ks, size, depth=True)


def depth_normal_loss(out, alpha: Tensor, Ks: Tensor, c2w: Tensor) -> Tensor:  # noqa: ANN001
    """Mean 1 − |cos| between blended splat normals and the normals of the rendered depth (2DGS's term).

    The depth's normal at a pixel is the cross product of its back-projected neighbours' differences;
    only pixels whose 3×3 neighbourhood is opaque count. |cos| because a flat splat's normal has no side.

    Args:
        out: a `_render_with_normals` output; alpha: [C, S, S]; Ks: [C, 3, 3] and c2w: [C, 4, 4] of the
            C views rendered.
    """
    from a3d_cli.lift.hull import backproject

    world = backproject(out.depths[..., 0], Ks, c2w)  # [C, S, S, 3]
    dx = world[:, 1:-1, 2:] - world[:, 1:-1, :-2]
    dy = world[:, 2:, 1:-1] - world[:, :-2, 1:-1]
    n_depth = F.normalize(torch.linalg.cross(dx, dy, dim=-1), dim=-1)
    n_splat = F.normalize(out.colors[:, 1:-1, 1:-1, 3:6], dim=-1)
    opaque = -F.max_pool2d(-(alpha > 0.5).float()[:, None], 3, stride=1)[:, 0]  # [C, S-2, S-2] all 9 opaque
    cos = (n_depth * n_splat).sum(-1).abs()
    return ((1 - cos) * opaque).sum() / opaque.sum().clamp_min(1)


def _params(g: Gaussians, device: torch.device) -> torch.nn.ParameterDict:
    """Trainable tensors of flat splats in gsplat's layout (log-scales, opacity logits; colour logits)."""
    in_plane = g.scales[:, :2].clamp_min(1e-6)
    thin = FLATNESS * in_plane.min(dim=1, keepdim=True).values
    tensors = {
        "means": g.means,
        "scales": torch.cat([in_plane, thin], dim=1).log(),
        "quats": F.normalize(g.quats, dim=-1),
        "opacities": torch.logit(g.opacities.clamp(1e-4, 1 - 1e-4)),
        "colors": torch.logit(g.colors.clamp(1e-3, 1 - 1e-3)),
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(tensors[k].detach().clone().to(device)) for k in PARAMS})


def _gaussians(p: torch.nn.ParameterDict) -> Gaussians:
    """The splats the parameters describe (the third scale is derived: thin discs)."""
    s = p["scales"][:, :2].exp()  # [N, 2]
    thin = FLATNESS * s.min(dim=1, keepdim=True).values
    return Gaussians(
        means=p["means"],
        quats=F.normalize(p["quats"], dim=-1),
        scales=torch.cat([s, thin], dim=1),
        opacities=torch.sigmoid(p["opacities"]),
        colors=torch.sigmoid(p["colors"]),
    )


def _sync_thin_scale(p: torch.nn.ParameterDict) -> None:
    """Set the stored third log-scale to the one that renders (FLATNESS × the smaller in-plane scale).

    Only the in-plane scales are trained, but gsplat's strategy reads all three: the largest decides
    clone or split, and a split samples its children's offsets along all three axes.
    """
    with torch.no_grad():
        p["scales"][:, 2] = math.log(FLATNESS) + p["scales"][:, :2].min(dim=1).values


def _optimizers(p: torch.nn.ParameterDict, s: LiftFitSettings, extent: float) -> dict[str, torch.optim.Optimizer]:
    """One Adam per parameter (gsplat's convention: its strategies resize each optimizer's state)."""
    lrs = {"means": s.lr_means * extent, "scales": s.lr_scales, "quats": s.lr_quats, "opacities": s.lr_opacity, "colors": s.lr_colors}
    return {k: torch.optim.Adam([{"params": [p[k]], "lr": lrs[k], "name": k}], eps=1e-15) for k in PARAMS}


def refine_schedule(settings: LiftFitSettings) -> tuple[int, int, int]:
    """(first step, step to stop, steps between) of the refinements, in gsplat's iteration terms."""
    every = settings.refine_every or max(1, settings.steps // 20)
    return settings.refine_start, int(settings.refine_stop * settings.steps), every


def budgeted_threshold(state: dict, base: float, room: int) -> float:
    """The growth threshold that lets at most `room` splats grow: `base`, or higher where more qualify.

    Args:
        state: the strategy's running state ("grad2d" summed gradient norms, "count" views that saw each).
        base: the strategy's own threshold.
        room: how many more splats the budget allows.
    """
    if state.get("grad2d") is None:
        return base
    grads = state["grad2d"] / state["count"].clamp_min(1)
    if room <= 0:
        return float("inf")
    if room >= grads.numel():
        return base
    kth = torch.topk(grads, room + 1).values[-1]  # the (room+1)-th largest: strictly above it grow
    return max(base, float(kth))


def accumulate_grad2d(state: dict, info: dict, n: int) -> None:
    """Add one step's image-plane gradient norms and view counts to the strategy's running state.

    What gsplat's `DefaultStrategy._update_state` does for unpacked projections (gradients scaled to
    [-1, 1] screen space × cameras, summed over the cameras that see each splat), written as masked sums
    instead of boolean indexing: the indexing reads a count to the host, so it made the host wait for the
    device at every step of a CUDA fit.

    Args:
        state: the strategy's state ("grad2d", "count": [N], created on the first call).
        info: a rasterizer `meta` whose "means2d" holds its gradient.
        n: the number of splats.
    """
    grads = info["means2d"].grad  # [C, N, 2]
    c = info["n_cameras"]
    norms = torch.stack([grads[..., 0] * (info["width"] / 2.0 * c), grads[..., 1] * (info["height"] / 2.0 * c)], dim=-1).norm(dim=-1)
    seen = (info["radii"] > 0).all(dim=-1)  # [C, N]
    if state["grad2d"] is None:
        state["grad2d"] = torch.zeros(n, device=grads.device)
    if state["count"] is None:
        state["count"] = torch.zeros(n, device=grads.device)
    state["grad2d"] += torch.where(seen, norms, torch.zeros_like(norms)).sum(0)
    state["count"] += seen.sum(0, dtype=state["count"].dtype)


def _strategy(**kw):  # noqa: ANN003, ANN202
    """gsplat's `DefaultStrategy` with `accumulate_grad2d` as its per-step state update."""
    from gsplat.strategy import DefaultStrategy

    class _Strategy(DefaultStrategy):
        def _update_state(self, params, state, info, packed=False):  # noqa: ANN001, ANN202
            if packed or self.absgrad or self.refine_scale2d_stop_iter > 0 or self.key_for_gradient != "means2d":
                return super()._update_state(params, state, info, packed=packed)
            accumulate_grad2d(state, info, len(params["means"]))
            return None

    return _Strategy(**kw)


def _enforce_cap(params: torch.nn.ParameterDict, opts: dict, state: dict, cap: int) -> None:
    """Remove the most transparent splats beyond `cap` (gsplat's `remove` op keeps the optimizers in step).

    The budgeted threshold is set before the strategy adds the step's own gradients, so a refinement can
    overshoot the budget by a few splats; this trims them.
    """
    from gsplat.strategy.ops import remove

    over = len(params["means"]) - cap
    if over > 0:
        drop = torch.zeros(len(params["means"]), dtype=torch.bool, device=params["means"].device)
        drop[torch.topk(params["opacities"].detach(), over, largest=False).indices] = True
        remove(params=params, optimizers=opts, state=state, mask=drop)


def fit_static(
    init: Gaussians,
    images: Tensor,  # [V, S, S, 3]
    masks: Tensor,  # [V, S, S]
    cameras: CameraSet,
    settings: LiftFitSettings,
    extent: float,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    log_every: int = 10,
    unknown: Tensor | None = None,
) -> LiftFitResult:
    """Fit flat splats to the views (everything on `init`'s device), growing and pruning them.

    Args:
        init: starting splats (e.g. `hull.hull_splats`).
        images: [V, S, S, 3] views on white.
        masks: [V, S, S] foreground masks.
        cameras: the V cameras.
        settings: steps, learning rates, loss weights, refinement.
        extent: the object's half-width (scales the centres' learning rate, the scale cap and the
            clone/split size).
        seed: seeds the view draws and the split samples (the caller's random generators are left as
            they were).
        progress: receives `update(advance, loss=…)` every `log_every` steps and after the last, with the
            mean loss of those steps (summed on the device: the loop reads it to the host only then).
        log_every: steps between progress updates and entries of `LiftFitResult.losses`.
        unknown: [V, S, S] bool, pixels whose mask says nothing about the silhouette (`masks.unknown_white`,
            and a colour mask's `masks.outline`): no silhouette loss there, only the photometric one decides
            whether (or how much) splats cover them. None: every pixel's mask is known.
    """
    dev = init.means.device
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seeded here without moving the caller's random streams
        # the split samples: gsplat draws them from the default generator of the splats' device
        torch.random.default_generator.manual_seed(seed)
        for i in devices:
            torch.cuda.default_generators[i].manual_seed(seed)
        return _fit(init, images, masks, cameras, settings, extent, seed, progress, log_every, unknown)


def _fit(
    init: Gaussians, images: Tensor, masks: Tensor, cameras: CameraSet, settings: LiftFitSettings, extent: float,
    seed: int, progress: Progress | None, log_every: int, unknown: Tensor | None = None,
) -> LiftFitResult:  # fmt: skip
    """`fit_static` once the default random generators are seeded."""
    dev = init.means.device
    v, size = images.shape[0], images.shape[1]
    images, masks = images.to(dev), masks.to(dev).float()
    known = None if unknown is None else (~unknown.to(dev).bool()).float()  # [V, S, S] silhouette loss weight
    params = _params(init, dev)
    opts = _optimizers(params, settings, extent)
    start_it, stop_it, every = refine_schedule(settings)
    strategy = _strategy(
        prune_opa=settings.prune_opacity,
        grow_grad2d=settings.grow_grad2d,
        grow_scale3d=settings.grow_scale3d,
        refine_start_iter=start_it,
        refine_stop_iter=stop_it,
        refine_every=every,
        reset_every=settings.steps + 1,  # no opacity resets: the binary regulariser already drives them
    )
    strategy.check_sanity(params, opts)
    state = strategy.initialize_state(scene_scale=extent)
    cap = settings.max_splats or 2 * len(init)
    gen = torch.Generator().manual_seed(seed)
    k = v if settings.views_per_step in (0, v) or settings.views_per_step > v else settings.views_per_step
    # The cameras and every step's view draw go to the device once: a copy from the host each step
    # would make the host wait for the device each step.
    draws = [torch.arange(v) if k == v else torch.randperm(v, generator=gen)[:k] for _ in range(settings.steps)]
    draws = torch.stack(draws).to(dev) if draws else None  # [steps, k]
    all_viewmats, all_Ks = cameras.viewmats.to(dev), cameras.Ks(size, size).to(dev)
    all_c2w = cameras.c2w.to(dev)
    max_scale = settings.max_scale * extent
    losses: list[tuple[int, float]] = []
    counts: list[tuple[int, int]] = []
    running, pending = torch.zeros((), device=dev), 0
    start = time.perf_counter()
    for step in range(settings.steps):
        frac = step / max(1, settings.steps)
        opts["means"].param_groups[0]["lr"] = settings.lr_means * extent * (0.1**frac)  # exponential decay to 10 %
        idx = draws[step]
        viewmats, Ks = all_viewmats[idx], all_Ks[idx]
        g = _gaussians(params)
        with_normals = settings.lambda_normal > 0 and step >= settings.normal_start * settings.steps
        out = _render_with_normals(g, viewmats, Ks, size) if with_normals else _rasterize(g, g.colors, viewmats, Ks, size, False)
        info = out.meta
        strategy.step_pre_backward(params, opts, state, step, info)
        rgb, alpha = out.colors[..., :3], out.alphas[..., 0]
        diff = rgb - images[idx]
        loss = torch.sqrt(diff.square() + settings.charbonnier_eps**2).mean()
        if with_normals:
            loss = loss + settings.lambda_normal * depth_normal_loss(out, alpha, Ks, all_c2w[idx])
        mask_err = (alpha - masks[idx]).square()
        loss = loss + settings.lambda_mask * (mask_err if known is None else mask_err * known[idx]).mean()
        op = g.opacities
        loss = loss + settings.lambda_binary * (op * (1 - op)).mean()
        loss = loss + settings.lambda_scale * F.relu(g.scales[:, :2] - max_scale).mean()
        loss.backward()
        for opt in opts.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        refine = start_it < step < stop_it and step % every == 0
        if refine:  # the budget: raise the growth threshold so that the count stays within the cap
            strategy.grow_grad2d = budgeted_threshold(state, settings.grow_grad2d, cap - len(params["means"]))
            _sync_thin_scale(params)
        strategy.step_post_backward(params, opts, state, step, info, packed=False)
        if refine:
            _enforce_cap(params, opts, state, cap)
            counts.append((step, len(params["means"])))
        running = running + loss.detach()
        pending += 1
        empty = len(params["means"]) == 0  # pruning took every splat: nothing left to render or fit
        if (step + 1) % log_every == 0 or step + 1 == settings.steps or empty:
            value = float(running) / pending  # the loop's host read: once per interval (and at refinements)
            losses.append((step + 1, value))
            if progress is not None:
                progress.update(pending + (settings.steps - step - 1 if empty else 0), loss=value)
            running, pending = torch.zeros((), device=dev), 0
        if empty:
            break
    with torch.no_grad():
        final = _gaussians(params)
        final = Gaussians(*(t.detach() for t in (final.means, final.quats, final.scales, final.opacities, final.colors)))
        keep = final.opacities >= settings.prune_opacity
        if int(keep.sum()) > 0:
            final = final.subset(keep)
    return LiftFitResult(final, losses, time.perf_counter() - start, counts)


__all__ = ["BACKGROUND", "LiftFitResult", "LiftFitSettings", "accumulate_grad2d", "budgeted_threshold", "fit_static", "refine_schedule", "render", "render_chunked"]
