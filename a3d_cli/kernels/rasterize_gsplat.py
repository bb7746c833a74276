"""Thin wrapper over `gsplat.rasterization` (CUDA), with the same inputs and outputs as the reference.

The wrapper owns the boundary: it broadcasts the leading batch dims (gsplat wants them equal on every
tensor), makes the inputs contiguous, asks for `packed=False` (unpacked projection, the layout the
reference mirrors) and splits gsplat's "RGB+ED" output into colours and depths. gsplat is imported on
the first call only, so importing `kernels` never compiles or loads CUDA code.

With a `TileBudget` the render goes through gsplat's pieces instead of its one call (projection, SH
colours, then tile lists of a fixed length from `a3d_cli.kernels.tile_lists`, gsplat's offsets and
compositing): the same numbers, without the host read gsplat's own list sizing makes at every render.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from a3d_cli.kernels._common import RasterInputs, RasterOutput, unflatten_output

if TYPE_CHECKING:
    from torch import Tensor

    from a3d_cli.kernels.tile_lists import TileBudget

TILE_SIZE = 16
"""gsplat's default tile side in pixels (what `gsplat.rasterization` uses)."""


@functools.lru_cache(maxsize=1)
def gsplat_available() -> bool:
    """True when CUDA is present and gsplat's extension loads (JIT-compiling it on first use).

    Why a probe: on a CPU-only machine gsplat imports fine but any CUDA call fails (ImportError when a
    stub nvcc is on PATH, AttributeError without one), so backends are chosen by this probe and never
    by trying a call. The first probe on a GPU machine waits while gsplat builds its kernels (once):
    `a3d_cli.kernels.gsplat_build` picks the cache folder first and says so once when it will build.
    """
    import torch

    from a3d_cli.kernels.gsplat_build import announce_build

    if not torch.cuda.is_available():
        return False
    announce_build()
    try:
        from gsplat.cuda._backend import _C  # noqa: PLC0415 - lazily, it may compile
    except Exception:  # noqa: BLE001 - any failure to load the extension means "not available"
        return False
    return _C is not None


def rasterize_gsplat_checked(
    x: RasterInputs,
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    tile_budget: TileBudget | None = None,
) -> RasterOutput:
    """gsplat backend of `a3d_cli.kernels.rasterize`, on inputs already checked and flattened by `check_inputs`.

    With `tile_budget`, the tile lists have the budget's fixed length (no host read; `meta` is None).
    """
    import torch

    if not x.means.is_cuda:
        raise ValueError(
            f"the gsplat backend needs CUDA tensors, got tensors on {x.means.device}; "
            "use backend='torch' or move the inputs to a GPU"
        )
    if x.means.dtype != torch.float32:
        raise ValueError(f"the gsplat backend needs float32 tensors, got {x.means.dtype}; use backend='torch'")
    if not gsplat_available():
        raise RuntimeError(
            "gsplat's CUDA extension is not available (gsplat missing or it failed to compile); "
            "use backend='torch', or run `python -c \"from gsplat.cuda._backend import _C\"` "
            "with VERBOSE=1 to see the build error"
        )
    if tile_budget is not None:
        return _rasterize_fixed_lists(x, tile_budget, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d)
    from gsplat import rasterization  # noqa: PLC0415 - lazily, CUDA only

    # A call without batch dims goes to gsplat without them too, so its meta["means2d"] is [C, N, 2]
    # (what its densification strategies expect) and is the tensor the render depends on.
    single = not x.batch_shape
    pick = (lambda t: t[0]) if single else (lambda t: t)  # noqa: E731
    colors, alphas, meta = rasterization(
        pick(x.means).contiguous(),
        pick(x.quats).contiguous(),
        pick(x.scales).contiguous(),
        pick(x.opacities).contiguous(),
        pick(x.colors).contiguous(),
        pick(x.viewmats).contiguous(),
        pick(x.Ks).contiguous(),
        x.width,
        x.height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=x.sh_degree,
        packed=False,
        backgrounds=None if x.backgrounds is None else pick(x.backgrounds).contiguous(),
        render_mode=x.render_mode,
        rasterize_mode="classic",
    )  # colors: [(B,) C, H, W, D(+1)], alphas: [(B,) C, H, W, 1]
    if single:
        colors, alphas = colors[None], alphas[None]
    depths = None
    if x.render_mode == "RGB+ED":
        colors, depths = colors[..., :-1], colors[..., -1:]
    out = RasterOutput(colors=colors, alphas=alphas, depths=depths, meta=meta if single else None)
    return unflatten_output(out, x.batch_shape)


def _rasterize_fixed_lists(
    x: RasterInputs, budget: TileBudget, *, near_plane: float, far_plane: float, eps2d: float
) -> RasterOutput:
    """What `gsplat.rasterization(..., packed=False, rasterize_mode="classic")` computes, from its pieces.

    The steps and their arguments are the ones `gsplat.rasterization` takes for these options; only the
    intersection lists differ (`tile_lists`: fixed length, an opacity-0 filler splat appended per image).
    """
    import torch
    from gsplat import (  # noqa: PLC0415 - lazily, CUDA only
        fully_fused_projection,
        isect_offset_encode,
        rasterize_to_pixels,
        spherical_harmonics,
    )

    from a3d_cli.kernels.tile_lists import tile_lists, tile_overlaps

    b, n = x.means.shape[:2]
    c = x.viewmats.shape[1]
    images = b * c
    radii, means2d, depths, conics, _ = fully_fused_projection(
        x.means.contiguous(), None, x.quats.contiguous(), x.scales.contiguous(),
        x.viewmats.contiguous(), x.Ks.contiguous(), x.width, x.height,
        eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, packed=False, opacities=x.opacities.contiguous(),
    )  # fmt: skip  # [B, C, N, 2] int32, [B, C, N, 2], [B, C, N], [B, C, N, 3]
    opacities = torch.broadcast_to(x.opacities[:, None, :], (b, c, n))
    if x.sh_degree is None:
        colors = torch.broadcast_to(x.colors[:, None], (b, c, *x.colors.shape[1:]))
    else:
        campos = torch.linalg.inv_ex(x.viewmats)[0][..., :3, 3]  # [B, C, 3]; gsplat's inverse, minus its error read
        dirs = x.means[:, None, :, :] - campos[:, :, None, :]  # [B, C, N, 3]
        shs = torch.broadcast_to(x.colors[:, None], (b, c, *x.colors.shape[1:]))
        colors = spherical_harmonics(x.sh_degree, dirs, shs, masks=(radii > 0).all(dim=-1))
        colors = torch.clamp_min(colors + 0.5, 0.0)
    backgrounds = None if x.backgrounds is None else x.backgrounds.contiguous()
    if x.render_mode == "RGB+ED":
        colors = torch.cat((colors, depths[..., None]), dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, torch.zeros(b, c, 1, device=backgrounds.device)], dim=-1)
    tile_width, tile_height = math.ceil(x.width / TILE_SIZE), math.ceil(x.height / TILE_SIZE)
    flat = (means2d.reshape(images, n, 2), radii.reshape(images, n, 2))
    key = (images, n, x.width, x.height)
    capacity = budget.capacity(key, lambda: tile_overlaps(*flat, TILE_SIZE, tile_width, tile_height))
    lists = tile_lists(*flat, depths.reshape(images, n), TILE_SIZE, tile_width, tile_height, capacity)
    budget.observe(key, lists.needed)
    offsets = isect_offset_encode(lists.isect_ids, images, tile_width, tile_height)
    offsets = offsets.reshape(b, c, tile_height, tile_width)
    render_colors, render_alphas = rasterize_to_pixels(
        _with_filler(means2d), _with_filler(conics), _with_filler(colors), _with_filler(opacities),
        x.width, x.height, TILE_SIZE, offsets, lists.flatten_ids, backgrounds=backgrounds, packed=False,
    )  # fmt: skip  # [B, C, H, W, D(+1)], [B, C, H, W, 1]
    depth_out = None
    if x.render_mode == "RGB+ED":
        depth_out = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
        render_colors = render_colors[..., :-1]
    return unflatten_output(RasterOutput(colors=render_colors, alphas=render_alphas, depths=depth_out), x.batch_shape)


def _with_filler(t: Tensor) -> Tensor:
    """[B, C, N, ...] → [B, C, N + 1, ...]: splat N of every image all zeros (opacity 0: drawn as nothing)."""
    import torch

    return torch.cat([t, t.new_zeros(*t.shape[:2], 1, *t.shape[3:])], dim=2)
