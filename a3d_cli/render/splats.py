"""Render splats that a motion has moved, on MV-VDM's grey: the one renderer of the motion fits.

Both motion optimisations (`a3d_cli.gaussians.motion_fit` for reconstruct, `a3d_cli.gaussians.motion_refine`
for SDS) render the static splats' colours and opacities at moved positions, orientations and sizes, from
a few cameras, on the grey MV-VDM was trained on. This module is that render, written once.

`render_orbit` renders an animation from a camera circling the object (the export preview), `render_rgba`
static splats as straight RGBA (the conditioning views of `a3d prepare`).

Examples:
    >>> rgb, alpha = render_splats(static, means, static.quats, static.scales, viewmats, Ks, 256)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from a3d_cli.render.cameras import MVVDM_BACKGROUND

if TYPE_CHECKING:
    from torch import Tensor

    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.progress import Progress


@dataclass(frozen=True)
class SplatLooks:
    """What `render_splats` takes from the static splats and the cameras, the same at every step of a fit.

    Attributes:
        opacities: [(F,) N] and colors: [(F,) N, 3] or [(F,) N, K, 3] (SH), the static splats'.
        sh_degree: the colours' SH degree (None = plain RGB).
        viewmats: [(F,) V, 4, 4] and Ks: [(F,) V, 3, 3], the cameras.
        backgrounds: [(F,) V, 3] the grey behind the splats.
    """

    opacities: Tensor
    colors: Tensor
    sh_degree: int | None
    viewmats: Tensor
    Ks: Tensor  # noqa: N815 - the rasterizer's name
    backgrounds: Tensor


def splat_looks(
    static: Gaussians,
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]  # noqa: N803 - the rasterizer's name
    frames: int | None = None,
    background: float = MVVDM_BACKGROUND,
) -> SplatLooks:
    """The static inputs of `render_splats`; with `frames`, copied out to F frames once.

    Why copy: the rasterizer wants every input with the same leading dims, so un-batched colours,
    opacities and cameras are broadcast and copied on every call (a few kernel launches per render). A
    fit renders the same F frames for many steps: made once with `frames`, they are passed as they are.
    """
    import torch

    colors, sh_degree = static.colors, None  # [N, 3]
    if static.sh_rest is not None:
        colors, sh_degree = static.sh_coeffs(), static.sh_degree  # [N, K, 3]
    dev, dtype = static.means.device, static.means.dtype
    bg = torch.full((viewmats.shape[0], 3), background, device=dev, dtype=dtype)  # [V, 3]
    looks = (static.opacities, colors, viewmats, Ks, bg)
    if frames is not None:
        looks = tuple(t.expand(frames, *t.shape).contiguous() for t in looks)
    opacities, colors, viewmats, Ks, bg = looks
    return SplatLooks(opacities, colors, sh_degree, viewmats, Ks, bg)


def render_splats(
    static: Gaussians,
    means: Tensor,  # [F, N, 3]
    quats: Tensor,  # [F, N, 4] or [N, 4]
    scales: Tensor,  # [F, N, 3] or [N, 3]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]  # noqa: N803 - the rasterizer's name
    size: int,
    background: float = MVVDM_BACKGROUND,
    looks: SplatLooks | None = None,
) -> tuple[Tensor, Tensor]:
    """Render F moved copies of the static splats into V square views in one rasterizer call.

    Colours (SH when the splats carry them) and opacities are the static splats'; only the geometry moves.

    Args:
        static: the N static splats.
        means: [F, N, 3] moved centres.
        quats: [F, N, 4] or [N, 4] wxyz orientations.
        scales: [F, N, 3] or [N, 3] linear scales.
        viewmats: [V, 4, 4] world→camera, OpenCV.
        Ks: [V, 3, 3] intrinsics in pixels of a `size`² image.
        size: image side in pixels.
        background: grey level behind the splats (MV-VDM's 0.5 by default).
        looks: `splat_looks(static, viewmats, Ks, F, background)` made beforehand (then `viewmats`, `Ks` and
            `background` are not read again); None makes it here.

    Returns:
        rgb [F, V, H, W, 3] and alpha [F, V, H, W], differentiable w.r.t. means, quats and scales.
    """
    from a3d_cli.kernels import rasterize

    lk = looks if looks is not None else splat_looks(static, viewmats, Ks, background=background)
    r = rasterize(
        means, quats, scales, lk.opacities, lk.colors, lk.viewmats, lk.Ks, size, size,
        sh_degree=lk.sh_degree, backgrounds=lk.backgrounds,
    )  # fmt: skip
    return r.colors, r.alphas[..., 0]


def render_orbit(
    frames: list[Gaussians],
    size: int,
    elevation_deg: float,
    loops: int,
    background: float,
    progress: Progress | None = None,
    chunk: int = 4,
) -> Tensor:
    """Render the animation looping `loops` times while the camera goes once around the object.

    Preview frame i shows motion frame i mod F from azimuth 360° · i / (loops · F), at the MV-VDM
    radius and field of view, in the normalized frame.

    Args:
        frames: F deformed splat sets (normalized frame), same N.
        size: image width and height.

    Returns:
        [P, H, W, 3] float in [0, 1], P = loops · F.
    """
    import torch

    from a3d_cli.kernels import rasterize
    from a3d_cli.render.cameras import MVVDM_FOV_DEG, MVVDM_RADIUS, orbit_cameras

    f = len(frames)
    p = loops * f
    azimuths = [360.0 * i / p for i in range(p)]
    cams = orbit_cameras([elevation_deg] * p, azimuths, MVVDM_RADIUS, MVVDM_FOV_DEG)
    device = frames[0].means.device
    viewmats = cams.viewmats.to(device)  # [P, 4, 4]
    ks = cams.Ks(size, size).to(device)  # [P, 3, 3]
    use_sh = frames[0].sh_rest is not None
    out = []
    for start in range(0, p, chunk):
        ids = list(range(start, min(start + chunk, p)))
        batch = [frames[i % f] for i in ids]
        colors = torch.stack([g.sh_coeffs() if use_sh else g.colors for g in batch])  # [B, N, 3] or [B, N, K, 3]
        res = rasterize(
            torch.stack([g.means for g in batch]),  # [B, N, 3]
            torch.stack([g.quats for g in batch]),  # [B, N, 4]
            torch.stack([g.scales for g in batch]),  # [B, N, 3]
            torch.stack([g.opacities for g in batch]),  # [B, N]
            colors,
            viewmats[ids, None],  # [B, 1, 4, 4]
            ks[ids, None],  # [B, 1, 3, 3]
            size,
            size,
            sh_degree=batch[0].sh_degree if use_sh else None,
            backgrounds=torch.full((len(ids), 1, 3), background, device=device),
        )
        out.append(res.colors[:, 0].clamp(0, 1).float().cpu())  # [B, H, W, 3]
        if progress is not None:
            progress.update(len(ids))
    return torch.cat(out)


PROJECTED_SPLATS_PER_CALL = 1 << 22
"""Views × splats one rasterizer call of `render_rgba` projects: a 3DGS scan of millions of splats is rendered a
view at a time, so every view's projection and SH colours are never held at once (each view is rendered
exactly as in one call with all views); scenes up to a million splats still render all 4 views in one call."""


def render_rgba(g: Gaussians, viewmats: Tensor, Ks: Tensor, size: int, device: str) -> Tensor:  # noqa: N803
    """Render splats into square views as straight (not premultiplied) RGBA.

    Views go into one rasterizer call as long as views × splats stays within `PROJECTED_SPLATS_PER_CALL`,
    else in groups of fewer views (one at least), which bounds the memory of large scenes.

    Args:
        g: Gaussians.
        viewmats: [V, 4, 4] world→camera (OpenCV).
        Ks: [V, 3, 3] intrinsics for `size`×`size` images.
        size: width and height in pixels.
        device: torch device of the render.

    Returns:
        [V, size, size, 4] float CPU tensor in [0, 1].
    """
    import torch

    from a3d_cli.io.images import unpremultiply
    from a3d_cli.kernels import rasterize

    gd = g.to(device)
    colors, sh_degree = gd.colors, None
    if gd.sh_rest is not None:
        colors, sh_degree = gd.sh_coeffs(), gd.sh_degree
    v = viewmats.shape[0]
    per_call = max(1, PROJECTED_SPLATS_PER_CALL // max(len(g), 1))
    parts = []
    for start in range(0, v, per_call):
        views = slice(start, min(start + per_call, v))
        with torch.no_grad():
            out = rasterize(
                gd.means,
                gd.quats,
                gd.scales,
                gd.opacities,
                colors,
                viewmats[views].to(device),
                Ks[views].to(device),
                size,
                size,
                sh_degree=sh_degree,
                backgrounds=torch.zeros(views.stop - views.start, 3, device=device),
            )
        alpha = out.alphas.clamp(0, 1)  # [v', H, W, 1]
        rgb = unpremultiply(out.colors, alpha).clamp(0, 1)  # [v', H, W, 3]
        parts.append(torch.cat([rgb, alpha], dim=-1).float().cpu())
    return torch.cat(parts)


__all__ = ["SplatLooks", "render_orbit", "render_rgba", "render_splats", "splat_looks"]
