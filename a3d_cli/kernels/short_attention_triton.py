"""Short-sequence multi-head attention in one Triton kernel, reading and writing the projections' layout.

Why: SVD's temporal attention attends over 21 frames for each of ~218k pixel rows (CFG batch, 72² level),
AnimateDiff's over 16. The arithmetic is tiny (QKᵀ and PV are [21 × 64]·[64 × 21] per head), so the cost is
all memory traffic, and the library route multiplies it: the heads are transposed out of the [B, L, H·d]
projection output, padded for aligned batched GEMMs, multiplied, soft-maxed in a separate pass and
transposed back (its share of an SV3D forward is in docs/PERF.md). Here each program loads
the q, k, v rows of a few batch entries for one head straight from [B, L, H·d], keeps the [L, M] scores
in registers and writes the output rows in place: q, k, v are read once and the output written once.

The arithmetic matches `a3d_cli.kernels.attention_ref.short_attention_ref`: products in the inputs' dtype with
fp32 accumulation, the scale and the softmax in fp32, the probabilities rounded to v's dtype before PV.

Only imported on CUDA machines (`a3d_cli.kernels.short_attention` imports it lazily).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_BATCH = 1
"""Batch entries (pixel rows) per program: one entry per warp was the fastest at all four SVD levels in a
sweep of 1–16 entries × 1–8 warps (figures in docs/PERF.md)."""
NUM_WARPS = 1


@triton.jit
def _short_attention_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, B, L, M, scale,
    q_sb, q_sl, k_sb, k_sm, v_sb, v_sm, o_sb, o_sl,
    D: tl.constexpr, DV: tl.constexpr,
    BB: tl.constexpr, BL: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
):  # fmt: skip
    head = tl.program_id(1)
    rows = tl.program_id(0) * BB + tl.arange(0, BB)
    ls, ms = tl.arange(0, BL), tl.arange(0, BM)
    ds, dvs = tl.arange(0, BD), tl.arange(0, BDV)
    in_b = (rows < B)[:, None, None]
    rows = rows.to(tl.int64)[:, None, None]  # [BB, 1, 1]: offsets past 2^31 at SV3D's sizes
    q_mask = in_b & (ls < L)[None, :, None] & (ds < D)[None, None, :]
    k_mask = in_b & (ms < M)[None, :, None] & (ds < D)[None, None, :]
    v_mask = in_b & (ms < M)[None, :, None] & (dvs < DV)[None, None, :]
    q = tl.load(q_ptr + rows * q_sb + ls[None, :, None] * q_sl + (head * D + ds)[None, None, :], mask=q_mask, other=0.0)
    k = tl.load(k_ptr + rows * k_sb + ms[None, :, None] * k_sm + (head * D + ds)[None, None, :], mask=k_mask, other=0.0)
    v = tl.load(v_ptr + rows * v_sb + ms[None, :, None] * v_sm + (head * DV + dvs)[None, None, :], mask=v_mask, other=0.0)
    scores = tl.dot(q, tl.permute(k, (0, 2, 1))) * scale  # [BB, BL, BM] fp32
    scores = tl.where((ms < M)[None, None, :], scores, float("-inf"))
    weights = tl.exp(scores - tl.max(scores, axis=2)[:, :, None])
    weights = weights / tl.sum(weights, axis=2)[:, :, None]
    out = tl.dot(weights.to(v.dtype), v)  # [BB, BL, BDV] fp32
    o_mask = in_b & (ls < L)[None, :, None] & (dvs < DV)[None, None, :]
    o_offsets = rows * o_sb + ls[None, :, None] * o_sl + (head * DV + dvs)[None, None, :]
    tl.store(o_ptr + o_offsets, out.to(o_ptr.dtype.element_ty), mask=o_mask)


def _block(n: int) -> int:
    """Padded extent of a product dimension: a power of two, at least 16 (tl.dot's smallest)."""
    return max(16, triton.next_power_of_2(n))


def short_attention_triton(
    q: Tensor, k: Tensor, v: Tensor, out: Tensor, heads: int, scale: float,
    block_batch: int = BLOCK_BATCH, num_warps: int = NUM_WARPS,
) -> Tensor:  # fmt: skip
    """Write the attention of q [B, L, H·d] over k [B, M, H·d], v [B, M, H·d_v] into `out` [B, L, H·d_v].

    The last dimension of every tensor must be contiguous (`a3d_cli.kernels.short_attention.short_attention_supported`
    says what else the kernel takes); `block_batch` and `num_warps` are exposed for tuning sweeps.
    """
    b, length, width = q.shape
    m = k.shape[1]
    d, dv = width // heads, v.shape[2] // heads
    if b == 0 or length == 0:
        return out
    grid = (triton.cdiv(b, block_batch), heads)
    with torch.cuda.device(q.device):  # Triton launches on the current device, which may not be q's
        _short_attention_kernel[grid](
            q, k, v, out, b, length, m, scale,
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
            D=d, DV=dv, BB=block_batch, BL=_block(length), BM=_block(m), BD=_block(d), BDV=_block(dv),
            num_warps=num_warps,
        )  # fmt: skip
    return out
