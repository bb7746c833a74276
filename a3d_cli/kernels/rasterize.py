"""The rasterizer front door: one differentiable Gaussian-splat renderer, several backends.

Stage code calls `rasterize(...)` and nothing else; the backend is chosen here, once per call, from
the device of the inputs (CUDA → gsplat when its extension works, otherwise the PyTorch reference).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from a3d_cli.kernels._common import RasterOutput, check_inputs
from a3d_cli.kernels.rasterize_gsplat import gsplat_available, rasterize_gsplat_checked
from a3d_cli.kernels.rasterize_torch import rasterize_torch_checked

Backend = Literal["auto", "torch", "gsplat"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "gsplat")

__all__ = ["RasterOutput", "available_backends", "rasterize", "select_backend"]


def available_backends() -> tuple[str, ...]:
    """Backends usable on this machine: always "torch"; "gsplat" when CUDA and its extension load.

    The first call on a GPU machine may JIT-compile gsplat (once per machine); the answer is cached.
    """
    return ("torch", "gsplat") if gsplat_available() else ("torch",)


def select_backend(backend: str, means: Tensor) -> str:
    """Resolve "auto" to a concrete backend for tensors like `means`.

    "auto" picks gsplat for float32 CUDA tensors when gsplat works, else the PyTorch reference.

    Raises:
        ValueError: unknown backend name.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    import torch

    if means.is_cuda and means.dtype == torch.float32 and gsplat_available():
        return "gsplat"
    return "torch"


def rasterize(
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
    render_mode: Literal["RGB", "RGB+ED"] = "RGB",
    backend: Backend = "auto",
) -> RasterOutput:
    """Render N 3D Gaussians into C pinhole cameras, differentiably (gsplat's calling convention).

    Leading batch dims broadcast across all inputs: per-frame means `[F, N, 3]` with shared quats
    `[N, 4]` and cameras `[C, 4, 4]` render `[F, C, H, W, D]` in one call. All views and frames should go
    into one call; that is what both backends are fast at.

    Args:
        means: [..., N, 3] centres, world coordinates.
        quats: [..., N, 4] rotations, wxyz (normalised internally).
        scales: [..., N, 3] standard deviations, linear (not log).
        opacities: [..., N] in [0, 1] (activated, not logits).
        colors: [..., N, D] features to blend (any D), or SH coefficients [..., N, K, 3] with sh_degree.
        viewmats: [..., C, 4, 4] world→camera, OpenCV (x right, y down, z forward).
        Ks: [..., C, 3, 3] pinhole intrinsics in pixels.
        width: image width in pixels.
        height: image height in pixels.
        sh_degree: None for plain colours, else 0..3: colour = max(Σ sh·Y(dir) + 0.5, 0).
        backgrounds: [..., C, D] colour behind the splats, added as (1 - alpha)·background.
        near_plane: splats closer than this (camera z) are culled.
        far_plane: splats farther than this are culled.
        eps2d: added to every 2D covariance's diagonal (anti-aliasing blur, in pixels²).
        render_mode: "RGB" or "RGB+ED" (also return the expected depth).
        backend: "auto" (gsplat on CUDA when it works, else "torch"), "torch" or "gsplat".

    Returns:
        RasterOutput(colors [..., C, H, W, D], alphas [..., C, H, W, 1], depths [..., C, H, W, 1] or None).

    Raises:
        ValueError: a tensor has the wrong shape/dtype/device (the message names it, the expected and
            the actual shape), an unknown option, or backend="gsplat" with CPU tensors.
        RuntimeError: backend="gsplat" but gsplat's extension does not load.

    .. note::
        Pixel centres sit at (j + 0.5, i + 0.5). A splat adds α = min(0.999, opacity·exp(-σ)) unless
        α < 1/255; splats are blended front to back and a pixel stops before the splat that would drop
        its transmittance to 1e-4. Gradients flow to means, quats, scales, opacities, colors (or SH) and
        viewmats; not to Ks.

    Examples:
        >>> import torch
        >>> from a3d_cli.kernels import rasterize
        >>> means = torch.tensor([[0.0, 0.0, 3.0]])  # one splat 3 units in front of the camera
        >>> quats, scales = torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.2)
        >>> K = torch.tensor([[[64.0, 0, 16], [0, 64.0, 16], [0, 0, 1]]])
        >>> out = rasterize(means, quats, scales, torch.tensor([0.9]), torch.ones(1, 3),
        ...                 torch.eye(4)[None], K, 32, 32, render_mode="RGB+ED")
        >>> out.colors.shape, out.depths.shape
        (torch.Size([1, 32, 32, 3]), torch.Size([1, 32, 32, 1]))
    """
    x = check_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, render_mode
    )
    name = select_backend(backend, means)
    if name == "gsplat":
        return rasterize_gsplat_checked(x, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d)
    return rasterize_torch_checked(x, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d)
