"""The GEGLU front door: value · gelu(gate) of one linear layer, fused into one GEMM where the GPU allows.

`geglu(x, weight, bias)` takes any leading dimensions and dispatches per call: the warp-specialized Gluon
kernel (`a3d_cli.kernels.geglu_gluon`) for CUDA tensors on a Hopper-or-newer GPU that meet its layout needs
(`geglu_supported`), the PyTorch reference (`a3d_cli.kernels.geglu_ref`) for everything else, the CPU included.

It is registered as the custom op `a3d::geglu` so that `torch.compile` treats it as one opaque call
(dynamo never traces into the kernel's host-side descriptors, and inductor schedules it like a cuBLAS GEMM).

Examples:
    >>> x, w = torch.randn(5, 16), torch.randn(32, 16)
    >>> geglu(x, w, None).shape
    torch.Size([5, 16])
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from a3d_cli.kernels.geglu_ref import geglu_ref

__all__ = ["geglu", "geglu_ref", "geglu_supported"]


@functools.cache
def _has_tma(device_index: int) -> bool:
    """Hopper (sm90) or newer with a Triton that has Gluon's Hopper API: TMA, warpgroup MMA, warp roles."""
    if torch.cuda.get_device_capability(device_index) < (9, 0):
        return False
    try:
        from a3d_cli.kernels import geglu_gluon  # noqa: F401  (Gluon is experimental; an older Triton lacks parts of it)
    except (ImportError, AttributeError):
        return False
    return True


def geglu_supported(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    """Whether the fused kernel takes these tensors (else `geglu` runs the reference).

    Needs: CUDA on sm90+, bf16 or fp16 for all three, a contiguous [M, K] input and [2N, K] weight, K and
    N positive multiples of 8 and 16-byte aligned storage (TMA's rules for descriptors).
    """
    if not (x.is_cuda and x.dtype in (torch.bfloat16, torch.float16) and weight.dtype == x.dtype):
        return False
    if weight.device != x.device or (bias is not None and (bias.dtype != x.dtype or bias.device != x.device)):
        return False
    if x.ndim != 2 or not x.is_contiguous() or not weight.is_contiguous():
        return False
    k, n = x.shape[1], weight.shape[0] // 2
    tensors = (x, weight) if bias is None else (x, weight, bias)
    tileable = k > 0 and n > 0 and k % 8 == 0 and n % 8 == 0
    return tileable and all(t.data_ptr() % 16 == 0 for t in tensors) and _has_tma(x.device.index)


@torch.library.custom_op("a3d::geglu", mutates_args=())
def _geglu_op(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """[M, K] × [2N, K] → [M, N]: the fused kernel when `geglu_supported`, else the reference."""
    if geglu_supported(x, weight, bias):
        from a3d_cli.kernels.geglu_gluon import geglu_gluon
        from a3d_cli.kernels.triton_cache import announce_compile_once

        announce_compile_once()
        return geglu_gluon(x, weight, bias)
    return geglu_ref(x, weight, bias)


@_geglu_op.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return x.new_empty(x.shape[0], weight.shape[0] // 2)


def geglu(
    x: Tensor,  # [..., K]
    weight: Tensor,  # [2N, K]
    bias: Tensor | None = None,  # [2N]
) -> Tensor:
    """value · gelu(gate) of `F.linear(x, weight, bias)` split in half (diffusers' `GEGLU`), fused on GPU.

    Args:
        x: [..., K] inputs.
        weight: [2N, K], the value projection's rows then the gate projection's (nn.Linear layout).
        bias: [2N] or None.

    Returns:
        [..., N] in x's dtype.
    """
    if weight.ndim != 2 or weight.shape[0] % 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight must be [2N, K={x.shape[-1]}], got {list(weight.shape)}")
    lead = x.shape[:-1]
    rows = math.prod(lead)  # (not -1: that cannot be inferred when K = 0)
    out = _geglu_op(x.reshape(rows, x.shape[-1]).contiguous(), weight.contiguous(), bias)  # [M, N]
    return out.reshape(*lead, out.shape[-1])
