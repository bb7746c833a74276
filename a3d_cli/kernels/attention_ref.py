"""Attention as explicit matrix products (the PyTorch twin of `a3d_cli.kernels.short_attention_triton`).

`explicit_attention` is softmax(QKᵀ·scale)V on [..., L, d] heads with the softmax in fp32; the products run
in the inputs' dtype (tensor cores for bf16/fp16, fp32 accumulation). It is the right choice where the
fused SDPA kernels waste work: short sequences (their tiles are 64–128 rows) and heads wider than 256
(no flash kernel takes them). `short_attention_ref` is the same arithmetic on the token layout the
projections write, [B, L, H·d], which is what the fused short-sequence kernel reads and writes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def explicit_attention(
    q: Tensor,  # [..., L, d]
    k: Tensor,  # [..., M, d]
    v: Tensor,  # [..., M, d_v]
    scale: float | None = None,
    pad_to: int = 1,
) -> Tensor:
    """softmax(QKᵀ·scale)V with the softmax in fp32 → [..., L, d_v] in v's dtype.

    Args:
        scale: the logit scale; None = 1/√d.
        pad_to: pad L and M with zero rows up to a multiple of this for the products (padded keys get no
            weight, padded queries are dropped), so that batched GEMMs see aligned shapes.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    n, m = q.shape[-2], k.shape[-2]
    pad_n, pad_m = -n % pad_to, -m % pad_to
    if pad_n:
        q = F.pad(q, (0, 0, 0, pad_n))
    if pad_m:
        k, v = F.pad(k, (0, 0, 0, pad_m)), F.pad(v, (0, 0, 0, pad_m))
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    if pad_m:
        padded_key = torch.arange(m + pad_m, device=scores.device) >= m
        scores = scores.masked_fill(padded_key, float("-inf"))
    out = torch.matmul(scores.softmax(dim=-1).to(v.dtype), v)
    return out[..., :n, :] if pad_n else out


def split_heads(x: Tensor, heads: int) -> Tensor:
    """[B, L, H·d] → [B, H, L, d] (a view)."""
    b, length, width = x.shape
    return x.view(b, length, heads, width // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, L, d] → [B, L, H·d]."""
    b, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(b, length, heads * d)


def short_attention_ref(
    q: Tensor,  # [B, L, H·d]
    k: Tensor,  # [B, M, H·d]
    v: Tensor,  # [B, M, H·d_v]
    heads: int,
    scale: float | None = None,
) -> Tensor:
    """Multi-head attention on token-major tensors: [B, L, H·d] queries over M keys → [B, L, H·d_v].

    Args:
        heads: H; every width must be a multiple of it.
        scale: the logit scale; None = 1/√d.
    """
    check_token_layout(q, k, v, heads)
    out = explicit_attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), scale)
    return merge_heads(out)


def check_token_layout(q: Tensor, k: Tensor, v: Tensor, heads: int) -> None:
    """Raise ValueError unless q, k, v are [B, L, H·d], [B, M, H·d], [B, M, H·d_v] with H = `heads`."""
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError(f"q, k, v must be [B, L, H·d]; got {list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    if q.shape[0] != k.shape[0] or k.shape[:2] != v.shape[:2] or q.shape[2] != k.shape[2]:
        raise ValueError(f"q, k, v do not match: {list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    if heads < 1 or q.shape[2] % heads or v.shape[2] % heads:
        raise ValueError(f"widths {q.shape[2]} and {v.shape[2]} are not multiples of {heads} heads")


__all__ = ["check_token_layout", "explicit_attention", "merge_heads", "short_attention_ref", "split_heads"]
