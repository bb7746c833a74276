"""GroupNorm, optionally followed by SiLU, on channels-last (NHWC) activations, with its own backward.

Why: see `a3d_cli.kernels.group_norm_triton` (NHWC convolutions without layout conversions need a GroupNorm
that reads NHWC in order; the SiLU after it fused into the same passes, forward and backward).

How, on activations seen as [N, rows, C]:

1. statistics: per block of rows and channel, the moments about a shift (the block's first row); merged per
   group (Chan's formula) into the group's mean and 1/√(var + eps), as `F.group_norm` defines them (biased
   variance, fp32 statistics whatever the input dtype), and each channel's a = rstd·γ, b = β − mean·a.
2. apply: y = x·a + b (PyTorch's own fused form), then SiLU.
3. backward coefficients: per channel, Σ dz and Σ dz·(x − mean), dz being the gradient before the SiLU
   (recomputed from x, not stored); per group, q = −rstd²·⟨γ·dz·x̂⟩ and r = −rstd·⟨γ·dz⟩, the means ⟨·⟩
   over the group.
4. backward apply: dx = a·dz + q·(x − mean) + r.

`TorchPasses` writes the passes in PyTorch: the reference the Triton kernels are tested against, and what
runs where Triton does not. `group_norm_act` is the entry point: on CUDA with NHWC input it runs the Triton
passes, anywhere else `F.group_norm` (and `F.silu`), PyTorch's own arithmetic.

Examples:
    >>> x = torch.randn(2, 8, 4, 4).to(memory_format=torch.channels_last)
    >>> y = group_norm_act(x, 4, None, None, 1e-6, silu=True)
    >>> torch.allclose(y, F.silu(F.group_norm(x, 4, eps=1e-6)))
    True
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


class GroupNormPasses(Protocol):
    """A backend of the passes (see the module docstring). x and dy are contiguous [N, rows, C]; per-channel
    tensors are contiguous fp32 [N, C], rstd fp32 [N, G]."""

    @staticmethod
    def statistics(
        x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pass 1: (mean per channel, rstd per group, a, b)."""
        ...

    @staticmethod
    def apply(x: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
        """Pass 2: x·a + b per channel (then SiLU), in x's dtype."""
        ...

    @staticmethod
    def backward_coefficients(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, rstd: Tensor, silu: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pass 3: (q, r, Σ dz, Σ dz·(x − mean)), all per channel."""
        ...

    @staticmethod
    def backward_apply(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, q: Tensor, r: Tensor, silu: bool
    ) -> Tensor:
        """Pass 4: dx = a·dz + q·(x − mean) + r, in x's dtype."""
        ...


ROWS_PER_BLOCK = 64
"""Rows per block of `TorchPasses`' moments (the Triton kernels use their own)."""


def _blocks(x: Tensor, rows_per_block: int) -> Tensor:
    """[N, rows, C] → [N, blocks, rows_per_block, C], the last block padded with its own first row."""
    n, rows, c = x.shape
    blocks = -(-rows // rows_per_block)
    pad = blocks * rows_per_block - rows
    if pad:
        first_of_last = x[:, (blocks - 1) * rows_per_block][:, None].expand(n, pad, c)
        x = torch.cat([x, first_of_last], dim=1)
    return x.view(n, blocks, rows_per_block, c)


def _pre_activation_grad(x: Tensor, dy: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
    """The gradient at the normalised value (before the SiLU), fp32."""
    if not silu:
        return dy.float()
    z = x.float() * a[:, None] + b[:, None]
    sig = torch.sigmoid(z)
    return dy.float() * sig * (1 + z * (1 - sig))


def _per_channel(values: Tensor, per_group: int) -> Tensor:
    """[N, G] → [N, C] (each group's value for each of its channels), contiguous."""
    return values.repeat_interleave(per_group, dim=1).contiguous()


def group_statistics(x: Tensor, groups: int, eps: float) -> tuple[Tensor, Tensor]:
    """Per (sample, group) mean and 1/√(var + eps), fp32 [N, G], of [N, rows, C] activations: moments of
    blocks of rows about each block's first row, merged by Chan's formula (in fp64)."""
    n, rows, c = x.shape
    blocks = _blocks(x, ROWS_PER_BLOCK).double()  # padded rows repeat the shift: they add nothing
    shift = blocks[:, :, 0]  # [N, B, C]
    d = blocks - shift[:, :, None]
    s1, s2 = d.sum(2), d.square().sum(2)
    programs = blocks.shape[1]
    counts = torch.full((programs,), float(ROWS_PER_BLOCK), dtype=torch.float64, device=x.device)
    counts[-1] = rows - (programs - 1) * ROWS_PER_BLOCK
    cnt = counts.view(1, programs, 1)
    per_group = c // groups
    block_mean = (shift + s1 / cnt).view(n, programs, groups, per_group)
    block_m2 = (s2 - s1.square() / cnt).view(n, programs, groups, per_group)
    weights = cnt.view(1, programs, 1, 1)
    total = rows * per_group
    mean = (block_mean * weights).sum((1, 3)) / total  # [N, G]
    m2 = (block_m2 + weights * (block_mean - mean[:, None, :, None]).square()).sum((1, 3))
    var = (m2 / total).clamp_min(0)
    return mean.float(), torch.rsqrt(var + eps).float()


class TorchPasses:
    """The passes in PyTorch (the arithmetic the Triton kernels implement; any device)."""

    @staticmethod
    def statistics(
        x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c = x.shape[2]
        mean_g, rstd = group_statistics(x, groups, eps)
        mean = _per_channel(mean_g, c // groups)
        a = _per_channel(rstd, c // groups)
        if weight is not None:
            a = a * weight.float()[None]
        b = -mean * a
        if bias is not None:
            b = b + bias.float()[None]
        return mean, rstd, a.contiguous(), b.contiguous()

    @staticmethod
    def apply(x: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
        z = x.float() * a[:, None] + b[:, None]
        return (F.silu(z) if silu else z).to(x.dtype)

    @staticmethod
    def backward_coefficients(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, rstd: Tensor, silu: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n, rows, c = x.shape
        groups = rstd.shape[1]
        per_group = c // groups
        dz = _pre_activation_grad(x, dy, a, b, silu)
        sum_dz = dz.sum(1)  # [N, C]
        sum_centred = (dz * (x.float() - mean[:, None])).sum(1)
        total = rows * per_group
        mean_g_dz = (a * sum_dz).view(n, groups, per_group).sum(-1) / rstd / total  # ⟨γ·dz⟩ (a = rstd·γ)
        mean_g_dz_xhat = (a * sum_centred).view(n, groups, per_group).sum(-1) / total  # ⟨γ·dz·x̂⟩
        q = _per_channel(-rstd * rstd * mean_g_dz_xhat, per_group)
        r = _per_channel(-rstd * mean_g_dz, per_group)
        return q, r, sum_dz, sum_centred

    @staticmethod
    def backward_apply(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, q: Tensor, r: Tensor, silu: bool
    ) -> Tensor:
        dz = _pre_activation_grad(x, dy, a, b, silu)
        dx = a[:, None] * dz + q[:, None] * (x.float() - mean[:, None]) + r[:, None]
        return dx.to(x.dtype)


class _GroupNormAct(torch.autograd.Function):
    """GroupNorm (+ SiLU) of [N, rows, C] activations through a `GroupNormPasses` backend."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps, silu, passes):  # noqa: ANN001, ANN205 - autograd's signature
        mean, rstd, a, b = passes.statistics(x, groups, weight, bias, eps)
        ctx.save_for_backward(x, mean, rstd, a, b)
        ctx.silu, ctx.passes = silu, passes
        ctx.weight_dtype = weight.dtype if weight is not None else None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return passes.apply(x, a, b, silu)

    @staticmethod
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        x, mean, rstd, a, b = ctx.saved_tensors
        silu, passes = ctx.silu, ctx.passes
        dy = dy.contiguous()
        q, r, sum_dz, sum_centred = passes.backward_coefficients(x, dy, a, b, mean, rstd, silu)
        dx = passes.backward_apply(x, dy, a, b, mean, q, r, silu) if ctx.needs_input_grad[0] else None
        d_weight = d_bias = None
        if ctx.weight_dtype is not None and ctx.needs_input_grad[1]:
            d_weight = (sum_centred * _per_channel(rstd, x.shape[2] // rstd.shape[1])).sum(0).to(ctx.weight_dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            d_bias = sum_dz.sum(0).to(ctx.bias_dtype)
        return dx, d_weight, d_bias, None, None, None, None


def group_norm_rows(
    x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float, silu: bool, passes: GroupNormPasses
) -> Tensor:
    """GroupNorm (+ SiLU) of contiguous [N, rows, C] activations through `passes` (differentiable)."""
    return _GroupNormAct.apply(x.contiguous(), weight, bias, groups, eps, silu, passes)


def triton_runs_on(x: Tensor, groups: int, weight: Tensor | None = None, bias: Tensor | None = None) -> bool:
    """Whether `group_norm_act` takes the Triton passes: a non-empty CUDA tensor, 4-D, NHWC in memory, a float
    dtype, channels in whole groups of fewer than 2³¹ values, and the affine parameters (if any) one contiguous
    value per channel on the same device. Anything else goes to `F.group_norm`, which also raises PyTorch's own errors for bad shapes."""
    c = x.shape[1] if x.ndim == 4 else 0

    def per_channel(p: Tensor | None) -> bool:
        return p is None or (p.shape == (c,) and p.is_contiguous() and p.device == x.device)

    return (
        x.is_cuda
        and x.ndim == 4
        and x.numel() > 0
        and x.dtype in (torch.float16, torch.bfloat16, torch.float32)
        and x.is_contiguous(memory_format=torch.channels_last)
        and 0 < c <= 4096
        and groups > 0
        and c % groups == 0
        and x.shape[2] * x.shape[3] * (c // groups) < 2**31  # the kernels count a group's values in int32
        and per_channel(weight)
        and per_channel(bias)
    )


def group_norm_act(
    x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float, silu: bool = False
) -> Tensor:
    """`F.group_norm(x, groups, weight, bias, eps)`, then `F.silu` when `silu`; NHWC on CUDA through Triton.

    Args:
        x: [N, C, H, W] (any layout; only NHWC on CUDA takes the Triton passes, and the result is NHWC too).
    """
    if not triton_runs_on(x, groups, weight, bias):
        y = F.group_norm(x, groups, weight, bias, eps)
        return F.silu(y) if silu else y
    from a3d_cli.kernels.group_norm_triton import TritonPasses
    from a3d_cli.kernels.triton_cache import announce_compile_once

    announce_compile_once()
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view: NHWC memory is [N, H·W, C]
    y = group_norm_rows(rows, groups, weight, bias, eps, silu, TritonPasses)
    return y.view(n, h, w, c).permute(0, 3, 1, 2)


__all__ = ["GroupNormPasses", "TorchPasses", "group_norm_act", "group_norm_rows", "group_statistics", "triton_runs_on"]
