"""Compute kernels of a3d: one signature per op, a PyTorch reference and fast backends.

The rasterizer front door is `rasterize` (backend chosen from the inputs' device: the tiled PyTorch
backend `rasterize_torch`, or gsplat on CUDA, imported lazily on the first CUDA call); `rasterize_ref` is
the dense all-pairs statement of the same function, the ground truth every backend is tested against.
`a3d_cli.kernels.geglu.geglu` (GEGLU as one Hopper GEMM, twin `a3d_cli.kernels.geglu_ref`) is imported where it is used,
by `a3d_cli.models.speed.geglu`; its Gluon kernel only on CUDA.
"""

from a3d_cli.kernels._common import RasterOutput
from a3d_cli.kernels.rasterize import available_backends, rasterize, select_backend
from a3d_cli.kernels.rasterize_ref import rasterize_ref
from a3d_cli.kernels.rasterize_torch import rasterize_torch

__all__ = ["RasterOutput", "available_backends", "rasterize", "rasterize_ref", "rasterize_torch", "select_backend"]
