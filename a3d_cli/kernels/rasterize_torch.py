"""The "torch" rasterizer backend: tiled, in plain PyTorch, fast enough on a CPU.

Computes what `gsplat.rasterization(..., packed=False, rasterize_mode="classic")` does for pinhole cameras.
It runs on any device, differentiates through autograd (a closed-form backward for the compositing step),
and is fast enough on a CPU for tests and small reconstructions because it bins splats into tiles instead
of evaluating every pixel against every splat. It is a backend, not the reference: the tests check it (and
gsplat) against the dense all-pairs statement `a3d_cli.kernels.rasterize_ref`. Pieces:

- `a3d_cli.kernels.projection_ref`: EWA projection, radii, culling;
- `a3d_cli.kernels.sh_ref`: spherical-harmonic colours;
- `a3d_cli.kernels.composite_tiled`: tile binning and front-to-back compositing.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from a3d_cli.kernels._common import RasterInputs, RasterOutput, check_inputs, finish_output, splat_features
from a3d_cli.kernels.composite_tiled import bin_tiles, composite_tiles
from a3d_cli.kernels.projection_ref import project_gaussians_ref

DEFAULT_TILE_SIZE = 8  # pixels; smaller tiles waste less work around small splats on a CPU
DEFAULT_BLOCK_SIZE = 32  # depth slots per step of the sweep
DEFAULT_CHUNK_ELEMS = {"cpu": 1 << 20, "cuda": 1 << 24}  # elements of one [tiles, pixels, block] tensor


def rasterize_torch(
    means: Tensor,  # [..., N, 3]
    quats: Tensor,  # [..., N, 4]
    scales: Tensor,  # [..., N, 3]
    opacities: Tensor,  # [..., N]
    colors: Tensor,  # [..., N, D] or [..., N, K, 3]
    viewmats: Tensor,  # [..., C, 4, 4]
    Ks: Tensor,  # [..., C, 3, 3]
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [..., C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    render_mode: str = "RGB",
    tile_size: int = DEFAULT_TILE_SIZE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    chunk_elems: int | None = None,
) -> RasterOutput:
    """The tiled PyTorch backend of `a3d_cli.kernels.rasterize` (same arguments and outputs, see there).

    Args:
        tile_size: binning tile edge in pixels; results do not depend on it (up to rounding).
        block_size: depth slots evaluated per sweep step.
        chunk_elems: memory cap, in elements, of one [tiles, pixels, block] working tensor (default 2²⁰
            on CPU, cache-sized; 2²⁴ on CUDA, fewer kernel launches).

    Returns:
        RasterOutput with [..., C, H, W, ·] tensors.
    """
    x = check_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, render_mode
    )
    return rasterize_torch_checked(
        x,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        tile_size=tile_size,
        block_size=block_size,
        chunk_elems=chunk_elems,
    )


def rasterize_torch_checked(
    x: RasterInputs,
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    tile_size: int = DEFAULT_TILE_SIZE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    chunk_elems: int | None = None,
) -> RasterOutput:
    """`rasterize_torch` on inputs already checked and flattened by `check_inputs`."""
    B, N = x.means.shape[:2]
    C = x.viewmats.shape[1]
    I = B * C
    W, H = x.width, x.height
    if chunk_elems is None:
        chunk_elems = DEFAULT_CHUNK_ELEMS.get(x.means.device.type, DEFAULT_CHUNK_ELEMS["cuda"])

    # 1. Project every splat into every camera.
    proj = project_gaussians_ref(
        x.means,
        x.quats,
        x.scales,
        x.opacities,
        x.viewmats,
        x.Ks,
        W,
        H,
        eps2d=eps2d,
        near_plane=near_plane,
        far_plane=far_plane,
    )

    meta = None
    if not x.batch_shape:  # expose the image-plane centres as a tensor the rest of the graph hangs from
        means2d = proj.means2d[0]  # [C, N, 2]
        proj = dataclasses.replace(proj, means2d=means2d[None])
        meta = {"means2d": means2d, "radii": proj.radii[0], "width": W, "height": H, "n_cameras": C, "gaussian_ids": None}

    # 2. Per-camera features: colour, then depth for "RGB+ED" (the compositor appends alpha).
    feats = splat_features(x, proj)  # [B, C, N, F]
    log_opac = torch.log(x.opacities.clamp(min=1e-30))[:, None].expand(B, C, N)  # [B, C, N]

    # 3. Bin into tiles and composite front to back.
    bins = bin_tiles(
        proj.means2d.reshape(I, N, 2),
        proj.radii.reshape(I, N, 2),
        proj.depths.reshape(I, N),
        W,
        H,
        tile_size,
        conics=proj.conics.reshape(I, N, 3),
        opacities=x.opacities[:, None].expand(B, C, N).reshape(I, N),
    )
    tiles = composite_tiles(
        proj.means2d.reshape(I * N, 2),
        proj.conics.reshape(I * N, 3),
        log_opac.reshape(I * N),
        feats.reshape(I * N, feats.shape[-1]),
        bins,
        block_size=block_size,
        chunk_elems=chunk_elems,
    )
    s, th, tw = bins.tile_size, bins.tiles_y, bins.tiles_x
    img = tiles.view(I, th, tw, -1, s, s).permute(0, 1, 4, 2, 5, 3).reshape(I, th * s, tw * s, -1)[:, :H, :W]
    img = img.reshape(B, C, H, W, -1)  # [B, C, H, W, F+1], alpha last

    # 4. Background and expected depth.
    out = finish_output(x, img)
    out.meta = meta
    return out
