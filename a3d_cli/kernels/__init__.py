"""Compute kernels of a3d: one signature per op, a PyTorch reference and fast backends.

The rasterizer front door is `rasterize` (backend chosen from the inputs' device); `rasterize_ref` is
its pure-PyTorch twin, the ground truth of the tests. gsplat is imported lazily, on the first CUDA call.
`a3d_cli.kernels.geglu.geglu` (GEGLU as one Hopper GEMM, twin `a3d_cli.kernels.geglu_ref`) is imported where it is used,
by `a3d_cli.models.speed.geglu`; its Gluon kernel only on CUDA.
"""

from a3d_cli.kernels._common import RasterOutput
from a3d_cli.kernels.rasterize import available_backends, rasterize, select_backend
from a3d_cli.kernels.rasterize_ref import rasterize_ref

__all__ = ["RasterOutput", "available_backends", "rasterize", "rasterize_ref", "select_backend"]
