"""Shared pieces of the rasterizer backends: the output dataclass, the input checks, and the per-splat features
and output assembly of the PyTorch rasterizers.

Why one module: every backend (the PyTorch reference, gsplat) must accept exactly the same inputs and
return exactly the same outputs, so the checks and the broadcasting of leading batch dims live here once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from a3d_cli.kernels.projection_ref import Projection, camera_centers
from a3d_cli.kernels.sh_ref import sh_colors

RENDER_MODES: tuple[str, ...] = ("RGB", "RGB+ED")


@dataclass
class RasterOutput:
    """What a rasterizer call returns.

    Attributes:
        colors: [..., C, H, W, D] composited colour, background included.
        alphas: [..., C, H, W, 1] accumulated opacity (1 - final transmittance).
        depths: [..., C, H, W, 1] expected camera-space depth (accumulated depth / alpha) for
            render_mode "RGB+ED", else None. Pixels nothing covers hold 0.
        meta: for calls without leading batch dims, the projection in gsplat's `meta` layout, which its
            densification strategies read: "means2d" [C, N, 2] pixels (part of the graph: call
            `retain_grad()` on it before `backward()` to get the image-plane gradients), "radii"
            [C, N, 2] (0 = culled), "width", "height", "n_cameras", "gaussian_ids" (None: unpacked).
            None for batched calls.
    """

    colors: Tensor  # [..., C, H, W, D]
    alphas: Tensor  # [..., C, H, W, 1]
    depths: Tensor | None = None  # [..., C, H, W, 1]
    meta: dict | None = None


@dataclass(frozen=True)
class RasterInputs:
    """Checked inputs, leading batch dims broadcast to one shape and flattened to B.

    Attributes:
        means: [B, N, 3]; quats: [B, N, 4]; scales: [B, N, 3]; opacities: [B, N].
        colors: [B, N, D] or SH coefficients [B, N, K, 3] when sh_degree is set.
        viewmats: [B, C, 4, 4]; Ks: [B, C, 3, 3]; backgrounds: [B, C, D] or None.
        batch_shape: the broadcast leading dims (what B was flattened from).
    """

    means: Tensor  # [B, N, 3]
    quats: Tensor  # [B, N, 4]
    scales: Tensor  # [B, N, 3]
    opacities: Tensor  # [B, N]
    colors: Tensor  # [B, N, D] or [B, N, K, 3]
    viewmats: Tensor  # [B, C, 4, 4]
    Ks: Tensor  # [B, C, 3, 3]
    backgrounds: Tensor | None  # [B, C, D]
    batch_shape: tuple[int, ...]
    width: int
    height: int
    sh_degree: int | None
    render_mode: str

    @property
    def num_channels(self) -> int:
        """D, the colour channels rendered (3 for SH colours)."""
        return 3 if self.sh_degree is not None else self.colors.shape[-1]


def _fmt(shape: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _check_tail(name: str, t: Tensor, tail: tuple[int | str, ...], symbolic: tuple[int | str, ...]) -> None:
    """Raise ValueError unless `t` ends with `tail` (ints fixed; strings name sizes checked elsewhere)."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    ok = t.ndim >= len(tail) and all(
        isinstance(want, str) or got == want for got, want in zip(t.shape[t.ndim - len(tail) :], tail, strict=True)
    )
    if not ok:
        raise ValueError(f"{name} must have shape {_fmt(('...', *symbolic))}, got {_fmt(tuple(t.shape))}")


def check_inputs(
    means: Tensor,  # [..., N, 3]
    quats: Tensor,  # [..., N, 4]
    scales: Tensor,  # [..., N, 3]
    opacities: Tensor,  # [..., N]
    colors: Tensor,  # [..., N, D] or [..., N, K, 3]
    viewmats: Tensor,  # [..., C, 4, 4]
    Ks: Tensor,  # [..., C, 3, 3]
    width: int,
    height: int,
    sh_degree: int | None,
    backgrounds: Tensor | None,  # [..., C, D]
    render_mode: str,
) -> RasterInputs:
    """Validate shapes, dtypes and devices, broadcast the leading dims and flatten them to B.

    Why: a wrong shape deep inside a tile loop gives an unreadable error, so every tensor is checked up
    front and the message names the tensor, the expected shape and the actual shape (gsplat's habit).
    Leading dims broadcast across all tensors, so per-frame means `[F, N, 3]` can share static quats
    `[N, 4]` and cameras `[C, 4, 4]`.

    Raises:
        ValueError: on any shape, dtype, device or option mismatch.
    """
    # 1. Trailing shapes, one tensor at a time.
    _check_tail("means", means, ("N", 3), ("N", 3))
    n = means.shape[-2]
    _check_tail("quats", quats, (n, 4), (n, 4))
    _check_tail("scales", scales, (n, 3), (n, 3))
    _check_tail("opacities", opacities, (n,), (n,))
    if sh_degree is None:
        _check_tail("colors", colors, (n, "D"), (n, "D"))
        d = colors.shape[-1]
        color_batch = colors.shape[:-2]
    else:
        if not isinstance(sh_degree, int) or not 0 <= sh_degree <= 3:
            raise ValueError(f"sh_degree must be None or an int in 0..3, got {sh_degree!r}")
        _check_tail("colors", colors, (n, "K", 3), (n, "K", 3))
        need = (sh_degree + 1) ** 2
        if colors.shape[-2] < need:
            raise ValueError(
                f"colors must have shape [..., {n}, K, 3] with K >= {need} for sh_degree={sh_degree}, "
                f"got {_fmt(tuple(colors.shape))}"
            )
        d = 3
        color_batch = colors.shape[:-3]
    if d < 1:
        raise ValueError(f"colors must have at least one channel, got shape {_fmt(tuple(colors.shape))}")
    _check_tail("viewmats", viewmats, ("C", 4, 4), ("C", 4, 4))
    c = viewmats.shape[-3]
    _check_tail("Ks", Ks, (c, 3, 3), (c, 3, 3))
    if backgrounds is not None:
        _check_tail("backgrounds", backgrounds, (c, d), (c, d))
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError(f"width and height must be positive ints, got width={width!r}, height={height!r}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")

    # 2. Dtype and device agree.
    named = {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "viewmats": viewmats,
        "Ks": Ks,
    }
    if backgrounds is not None:
        named["backgrounds"] = backgrounds
    for name, t in named.items():
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.dtype != means.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but means has {means.dtype}; pass one dtype")
        if t.device != means.device:
            raise ValueError(f"{name} is on {t.device} but means is on {means.device}; pass one device")

    # 3. Leading batch dims broadcast.
    leads = {
        "means": means.shape[:-2],
        "quats": quats.shape[:-2],
        "scales": scales.shape[:-2],
        "opacities": opacities.shape[:-1],
        "colors": color_batch,
        "viewmats": viewmats.shape[:-3],
        "Ks": Ks.shape[:-3],
    }
    if backgrounds is not None:
        leads["backgrounds"] = backgrounds.shape[:-2]
    try:
        batch = tuple(torch.broadcast_shapes(*leads.values()))
    except RuntimeError:
        desc = ", ".join(f"{k} {_fmt(tuple(v))}" for k, v in leads.items())
        raise ValueError(f"the leading batch dims of the inputs do not broadcast: {desc}") from None
    b = math.prod(batch)

    def flat(t: Tensor, tail: int) -> Tensor:
        return t.expand(*batch, *t.shape[t.ndim - tail :]).reshape(b, *t.shape[t.ndim - tail :])

    return RasterInputs(
        means=flat(means, 2),
        quats=flat(quats, 2),
        scales=flat(scales, 2),
        opacities=flat(opacities, 1),
        colors=flat(colors, 2 if sh_degree is None else 3),
        viewmats=flat(viewmats, 3),
        Ks=flat(Ks, 3),
        backgrounds=None if backgrounds is None else flat(backgrounds, 2),
        batch_shape=batch,
        width=width,
        height=height,
        sh_degree=sh_degree,
        render_mode=render_mode,
    )


def unflatten_output(out: RasterOutput, batch_shape: tuple[int, ...]) -> RasterOutput:
    """Turn [B, C, H, W, X] outputs back into [..., C, H, W, X] with the broadcast leading dims."""

    def un(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.reshape(*batch_shape, *t.shape[1:])

    return RasterOutput(colors=un(out.colors), alphas=un(out.alphas), depths=un(out.depths), meta=out.meta)


def splat_features(x: RasterInputs, proj: Projection) -> Tensor:
    """What each splat composites in each camera: its colour (SH evaluated from that camera), then its
    depth for "RGB+ED". Shared by the PyTorch rasterizers (the tiled backend and the reference).

    Returns:
        [B, C, N, F] with F = D, or D + 1 for "RGB+ED".
    """
    B, N = x.means.shape[:2]
    C = x.viewmats.shape[1]
    if x.sh_degree is None:
        rgb = x.colors[:, None].expand(B, C, N, x.num_channels)  # [B, C, N, D]
    else:
        dirs = x.means[:, None] - camera_centers(x.viewmats)[:, :, None]  # [B, C, N, 3]
        rgb = sh_colors(x.sh_degree, dirs, x.colors[:, None])  # [B, C, N, 3]
    return torch.cat([rgb, proj.depths[..., None]], dim=-1) if x.render_mode == "RGB+ED" else rgb


def finish_output(x: RasterInputs, img: Tensor) -> RasterOutput:
    """Composited features [B, C, H, W, F+1] (alpha last) → colours on the background, alphas, expected depth."""
    D = x.num_channels
    rgb_img, alphas = img[..., :D], img[..., -1:]  # [B, C, H, W, D], [B, C, H, W, 1]
    if x.backgrounds is not None:
        rgb_img = rgb_img + (1.0 - alphas) * x.backgrounds[:, :, None, None, :]
    depths = None
    if x.render_mode == "RGB+ED":
        depths = img[..., D : D + 1] / alphas.clamp(min=1e-10)  # [B, C, H, W, 1]
    return unflatten_output(RasterOutput(colors=rgb_img, alphas=alphas, depths=depths), x.batch_shape)
