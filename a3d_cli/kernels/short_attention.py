"""The short-sequence attention front door: multi-head attention over at most 32 keys, fused on CUDA.

`short_attention(q, k, v, heads)` takes the projections' token layout ([B, L, H·d] queries, [B, M, H·d]
keys and values) and returns [B, L, H·d_v]. It dispatches per call: the Triton kernel
(`a3d_cli.kernels.short_attention_triton`) for CUDA tensors it can take (`short_attention_supported`), the PyTorch
reference (`a3d_cli.kernels.attention_ref.short_attention_ref`) for everything else, the CPU included.

It is registered as the custom op `a3d::short_attention` so that `torch.compile` treats it as one opaque
call (inductor schedules it between the projections' GEMMs).

Examples:
    >>> q = torch.randn(6, 21, 64)
    >>> short_attention(q, q, q, heads=4).shape
    torch.Size([6, 21, 64])
"""

from __future__ import annotations

import torch
from torch import Tensor

from a3d_cli.kernels.attention_ref import check_token_layout, short_attention_ref

__all__ = ["MAX_SEQUENCE", "short_attention", "short_attention_ref", "short_attention_supported"]

MAX_SEQUENCE = 32
"""Longest query or key sequence the kernel takes: its [L, M] scores live in registers."""
MAX_HEAD_DIM = 128
"""Widest head the kernel takes."""


def short_attention_supported(q: Tensor, k: Tensor, v: Tensor, heads: int) -> bool:
    """Whether the fused Triton kernel takes these tensors (else `short_attention` runs the reference).

    Needs: one CUDA device and one dtype, bf16 or fp16, for all three, at least one key, sequences of at
    most `MAX_SEQUENCE`, heads of at most `MAX_HEAD_DIM` channels, and unit stride along the channels
    (batch and sequence strides are free).
    """
    tensors = (q, k, v)
    if not all(t.is_cuda and t.device == q.device and t.dtype == q.dtype for t in tensors):
        return False
    if q.dtype not in (torch.bfloat16, torch.float16) or k.shape[1] == 0:
        return False
    if max(q.shape[1], k.shape[1]) > MAX_SEQUENCE or max(q.shape[2], v.shape[2]) // heads > MAX_HEAD_DIM:
        return False
    return all(t.stride(2) == 1 for t in tensors)


@torch.library.custom_op("a3d::short_attention", mutates_args=())
def _short_attention_op(q: Tensor, k: Tensor, v: Tensor, heads: int, scale: float) -> Tensor:
    """[B, L, H·d] × [B, M, H·d] × [B, M, H·d_v] → [B, L, H·d_v]: the kernel when supported, else the reference."""
    if short_attention_supported(q, k, v, heads):
        from a3d_cli.kernels.short_attention_triton import short_attention_triton
        from a3d_cli.kernels.triton_cache import announce_compile_once

        announce_compile_once()
        return short_attention_triton(q, k, v, _output_for(q, v), heads, scale)
    return short_attention_ref(q, k, v, heads, scale).to(v.dtype).contiguous()


@_short_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, heads: int, scale: float) -> Tensor:
    return _output_for(q, v)


def _output_for(q: Tensor, v: Tensor) -> Tensor:
    """The op's output: [B, L, H·d_v], row-major, in v's dtype on v's device (the fake and the kernel agree)."""
    return v.new_empty(q.shape[0], q.shape[1], v.shape[2])


def short_attention(
    q: Tensor,  # [B, L, H·d]
    k: Tensor,  # [B, M, H·d]
    v: Tensor,  # [B, M, H·d_v]
    heads: int,
    scale: float | None = None,
) -> Tensor:
    """softmax(QKᵀ·scale)V per head, on the token layout; fused on CUDA for sequences up to 32.

    Args:
        heads: H; the widths must be multiples of it.
        scale: the logit scale; None = 1/√d.

    Returns:
        [B, L, H·d_v] in v's dtype.
    """
    check_token_layout(q, k, v, heads)
    scale = (q.shape[2] // heads) ** -0.5 if scale is None else float(scale)
    return _short_attention_op(q, k, v, heads, scale)
