"""The rasterizer's reference: every pixel against every splat, densely, in a few readable lines.

PyTorch implementation of `gsplat.rasterization(..., packed=False, rasterize_mode="classic")` for pinhole
cameras, written for reading, not for speed (memory grows as pixels × splats): the statement every backend
of `a3d_cli.kernels.rasterize` — the tiled "torch" backend (`rasterize_torch`) and gsplat — is tested
against. Gradients come from plain autograd. gsplat's per-pixel rules:

- pixel (i, j) is sampled at its centre (j + 0.5, i + 0.5);
- σ = ½(a·dx² + c·dy²) + b·dx·dy for conic (a, b, c) and offset (dx, dy) from the pixel to the centre;
- α = min(0.999, opacity·exp(-σ)); a splat with α < 1/255 is skipped at that pixel;
- splats are taken front to back by camera depth, w = α·T with T the transmittance so far;
- a pixel stops before the first splat that would bring T to 1e-4 or below (that splat is not added).

Examples:
    >>> import torch
    >>> out = rasterize_ref(torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([[1.0, 0, 0, 0]]),
    ...                     torch.full((1, 3), 0.2), torch.tensor([0.9]), torch.ones(1, 3),
    ...                     torch.eye(4)[None], torch.tensor([[[64.0, 0, 16], [0, 64.0, 16], [0, 0, 1]]]),
    ...                     32, 32)
    >>> out.colors.shape, round(float(out.alphas[0, 16, 16, 0]), 3)
    (torch.Size([1, 32, 32, 3]), 0.888)
"""

from __future__ import annotations

import torch
from torch import Tensor

from a3d_cli.kernels._common import RasterOutput, check_inputs, finish_output, splat_features
from a3d_cli.kernels.projection_ref import ALPHA_MAX, ALPHA_MIN, T_MIN, project_gaussians_ref


def composite_dense(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    depths: Tensor,  # [N]
    visible: Tensor,  # [N] bool
    features: Tensor,  # [N, F]
    width: int,
    height: int,
    stop_rule: bool = True,
) -> Tensor:
    """Front-to-back compositing of one image, all pixels × all visible splats at once.

    Args:
        means2d, conics, depths, visible: one camera's projection (`project_gaussians_ref`).
        opacities: [N] splat opacities.
        features: [N, F] what each splat adds (colour, depth).
        stop_rule: apply gsplat's early stop at T ≤ 1e-4 (False composites every splat: to show where the
            rule matters).

    Returns:
        [H, W, F + 1]: composited features, then the accumulated alpha.
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype, device=means2d.device),
        torch.arange(width, dtype=means2d.dtype, device=means2d.device),
        indexing="ij",
    )
    pix = torch.stack([xs, ys], -1).reshape(-1, 2) + 0.5  # [P, 2] pixel centres
    ids = visible.nonzero().squeeze(1)
    ids = ids[torch.argsort(depths[ids])]  # [n] front to back
    d = means2d[ids][None] - pix[:, None]  # [P, n, 2]
    a, b, c = conics[ids].unbind(-1)  # [n] each
    sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]  # [P, n]
    alpha = (opacities[ids] * torch.exp(-sigma)).clamp(max=ALPHA_MAX)  # [P, n]
    alpha = torch.where(alpha < ALPHA_MIN, 0.0, alpha)
    t_after = torch.cumprod(1 - alpha, -1)  # [P, n] transmittance after each splat
    t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], -1)  # [P, n]
    weight = alpha * t_before * ((t_after > T_MIN) | (not stop_rule))  # [P, n]
    out = torch.cat([weight @ features[ids], weight.sum(-1, keepdim=True)], -1)  # [P, F + 1]
    return out.reshape(height, width, -1)


def rasterize_ref(
    means: Tensor,  # [..., N, 3]
    quats: Tensor,  # [..., N, 4]
    scales: Tensor,  # [..., N, 3]
    opacities: Tensor,  # [..., N]
    colors: Tensor,  # [..., N, D] or [..., N, K, 3]
    viewmats: Tensor,  # [..., C, 4, 4]
    Ks: Tensor,  # [..., C, 3, 3]  # noqa: N803
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [..., C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    render_mode: str = "RGB",
    stop_rule: bool = True,
) -> RasterOutput:
    """The dense reference of `a3d_cli.kernels.rasterize` (same arguments and outputs, see there).

    Args:
        stop_rule: see `composite_dense`.

    Returns:
        RasterOutput with [..., C, H, W, ·] tensors.
    """
    x = check_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, render_mode
    )
    proj = project_gaussians_ref(
        x.means, x.quats, x.scales, x.opacities, x.viewmats, x.Ks, width, height,
        eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
    )  # fmt: skip
    feats = splat_features(x, proj)  # [B, C, N, F]
    images = [
        torch.stack(
            [
                composite_dense(
                    proj.means2d[bi, ci], proj.conics[bi, ci], x.opacities[bi], proj.depths[bi, ci],
                    proj.visible[bi, ci], feats[bi, ci], width, height, stop_rule,
                )  # fmt: skip
                for ci in range(x.viewmats.shape[1])
            ]
        )
        for bi in range(x.means.shape[0])
    ]
    return finish_output(x, torch.stack(images))  # [B, C, H, W, F + 1]


__all__ = ["composite_dense", "rasterize_ref"]
