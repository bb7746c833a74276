"""GroupNorm, optionally followed by SiLU, on channels-last (NHWC) activations, with its own backward.

Why: see `a3d_cli.kernels.group_norm_triton` (NHWC convolutions without layout conversions need a GroupNorm
that reads NHWC in order; the SiLU after it fused into the same passes, forward and backward).

How: four passes over the activations, each a kernel, with the arithmetic that ties the channels of a group
together done here on small per-channel sums:

1. moments: per block of rows and channel, (shift, Σ(x − shift), Σ(x − shift)²); merged here per group
   (Chan's formula, in fp64) into the group's mean and 1/√(var + eps), as `F.group_norm` computes them
   (biased variance, fp32 statistics whatever the input dtype).
2. apply: y = x·a + b per channel, a = rstd·γ and b = β − mean·a (PyTorch's own fused form), then SiLU.
3. backward sums: per channel, Σ dz and Σ dz·(x − mean), dz being the gradient before the SiLU (recomputed
   from x, not stored).
4. backward apply: dx = rstd·γ·dz − rstd·⟨γ·dz⟩ − rstd²·(x − mean)·⟨γ·dz·x̂⟩, the means ⟨·⟩ over the group.

`TorchPasses` writes the four passes in PyTorch: the reference the Triton kernels are tested against, and
what runs where Triton does not. `group_norm_act` is the entry point: on CUDA with NHWC input it runs the
Triton passes, anywhere else `F.group_norm` (and `F.silu`), PyTorch's own arithmetic.

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
    """The four passes (see the module docstring); x and dy are contiguous [N, rows, C]."""

    rows_per_program: int

    @staticmethod
    def moments(x: Tensor) -> Tensor: ...

    @staticmethod
    def apply(x: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor: ...

    @staticmethod
    def backward_sums(x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, silu: bool) -> Tensor: ...

    @staticmethod
    def backward_apply(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, p: Tensor, q: Tensor, r: Tensor, silu: bool
    ) -> Tensor: ...


def _blocks(x: Tensor, rows_per_program: int) -> Tensor:
    """[N, rows, C] → [N, programs, rows_per_program, C], the last block padded with its own first row."""
    n, rows, c = x.shape
    programs = -(-rows // rows_per_program)
    pad = programs * rows_per_program - rows
    if pad:
        first_of_last = x[:, (programs - 1) * rows_per_program][:, None].expand(n, pad, c)
        x = torch.cat([x, first_of_last], dim=1)
    return x.view(n, programs, rows_per_program, c)


def _pre_activation_grad(x: Tensor, dy: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
    """The gradient at the normalised value (before the SiLU), fp32."""
    if not silu:
        return dy.float()
    z = x.float() * a[:, None] + b[:, None]
    sig = torch.sigmoid(z)
    return dy.float() * sig * (1 + z * (1 - sig))


class TorchPasses:
    """The four passes in PyTorch (the arithmetic the Triton kernels implement; any device)."""

    rows_per_program = 64

    @staticmethod
    def moments(x: Tensor) -> Tensor:
        blocks = _blocks(x, TorchPasses.rows_per_program).float()  # padded rows repeat the shift: they add 0
        shift = blocks[:, :, 0]  # [N, P, C]
        d = blocks - shift[:, :, None]
        return torch.stack([shift, d.sum(2), d.square().sum(2)], dim=2)  # [N, P, 3, C]

    @staticmethod
    def apply(x: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
        z = x.float() * a[:, None] + b[:, None]
        return (F.silu(z) if silu else z).to(x.dtype)

    @staticmethod
    def backward_sums(x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, silu: bool) -> Tensor:
        dz = _pre_activation_grad(x, dy, a, b, silu)
        rows = x.shape[1]
        p = TorchPasses.rows_per_program
        keep = (torch.arange(-(-rows // p) * p, device=x.device) < rows).view(1, -1, p, 1)
        dz_b = _blocks(dz, p) * keep  # padded rows contribute nothing
        centred = _blocks(x.float() - mean[:, None], p) * keep
        return torch.stack([dz_b.sum(2), (dz_b * centred).sum(2)], dim=2)  # [N, P, 2, C]

    @staticmethod
    def backward_apply(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, p: Tensor, q: Tensor, r: Tensor, silu: bool
    ) -> Tensor:
        dz = _pre_activation_grad(x, dy, a, b, silu)
        dx = p[:, None] * dz + q[:, None] * (x.float() - mean[:, None]) + r[:, None]
        return dx.to(x.dtype)


def group_statistics(
    moments: Tensor, rows: int, rows_per_program: int, groups: int, eps: float
) -> tuple[Tensor, Tensor]:
    """Per (sample, group) mean and 1/√(var + eps), fp32 [N, G], from the moments pass's [N, P, 3, C]."""
    n, programs, _, c = moments.shape
    m = moments.double()
    counts = torch.full((programs,), float(rows_per_program), dtype=torch.float64, device=m.device)
    counts[-1] = rows - (programs - 1) * rows_per_program
    cnt = counts.view(1, programs, 1)
    block_mean = m[:, :, 0] + m[:, :, 1] / cnt  # [N, P, C]
    block_m2 = m[:, :, 2] - m[:, :, 1].square() / cnt
    per_group = c // groups
    block_mean = block_mean.view(n, programs, groups, per_group)
    block_m2 = block_m2.view(n, programs, groups, per_group)
    total = rows * per_group
    weights = cnt.view(1, programs, 1, 1)
    mean = (block_mean * weights).sum((1, 3)) / total  # [N, G]
    m2 = (block_m2 + weights * (block_mean - mean[:, None, :, None]).square()).sum((1, 3))
    var = (m2 / total).clamp_min(0)
    return mean.float(), torch.rsqrt(var + eps).float()


def _per_channel(values: Tensor, per_group: int) -> Tensor:
    """[N, G] → [N, C] (each group's value for each of its channels), contiguous."""
    return values.repeat_interleave(per_group, dim=1).contiguous()


class _GroupNormAct(torch.autograd.Function):
    """GroupNorm (+ SiLU) of [N, rows, C] activations through a `GroupNormPasses` backend."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps, silu, passes):  # noqa: ANN001, ANN205 - autograd's signature
        n, rows, c = x.shape
        per_group = c // groups
        mean_g, rstd_g = group_statistics(passes.moments(x), rows, passes.rows_per_program, groups, eps)
        mean, rstd = _per_channel(mean_g, per_group), _per_channel(rstd_g, per_group)
        gamma = weight.float()[None] if weight is not None else torch.ones(1, c, device=x.device)
        a = (rstd * gamma).contiguous()
        b = -mean * a
        if bias is not None:
            b = b + bias.float()[None]
        b = b.contiguous()
        ctx.save_for_backward(x, weight, mean, rstd_g, a, b)
        ctx.groups, ctx.silu, ctx.passes = groups, silu, passes
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return passes.apply(x, a, b, silu)

    @staticmethod
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        x, weight, mean, rstd_g, a, b = ctx.saved_tensors
        groups, silu, passes = ctx.groups, ctx.silu, ctx.passes
        n, rows, c = x.shape
        per_group = c // groups
        dy = dy.contiguous()
        sums = passes.backward_sums(x, dy, a, b, mean, silu).sum(1)  # [N, 2, C]
        sum_dz, sum_dz_centred = sums[:, 0], sums[:, 1]
        gamma = weight.float()[None] if weight is not None else torch.ones(1, c, device=x.device)
        total = rows * per_group
        rstd = _per_channel(rstd_g, per_group)
        mean_g_dz = (gamma * sum_dz).view(n, groups, per_group).sum(-1) / total  # ⟨γ·dz⟩
        mean_g_dz_xhat = (gamma * sum_dz_centred).view(n, groups, per_group).sum(-1) * rstd_g / total  # ⟨γ·dz·x̂⟩
        p = a
        q = (-rstd * _per_channel(rstd_g * mean_g_dz_xhat, per_group)).contiguous()
        r = (-_per_channel(rstd_g * mean_g_dz, per_group)).contiguous()
        dx = passes.backward_apply(x, dy, a, b, mean, p, q, r, silu) if ctx.needs_input_grad[0] else None
        d_weight = d_bias = None
        if weight is not None and ctx.needs_input_grad[1]:
            d_weight = (sum_dz_centred * rstd).sum(0).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            d_bias = sum_dz.sum(0).to(ctx.bias_dtype)
        return dx, d_weight, d_bias, None, None, None, None


def group_norm_rows(
    x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float, silu: bool, passes: GroupNormPasses
) -> Tensor:
    """GroupNorm (+ SiLU) of contiguous [N, rows, C] activations through `passes` (differentiable)."""
    return _GroupNormAct.apply(x.contiguous(), weight, bias, groups, eps, silu, passes)


def triton_runs_on(x: Tensor) -> bool:
    """Whether `group_norm_act` takes the Triton passes for `x`: CUDA, 4-D, NHWC in memory, a float dtype."""
    return (
        x.is_cuda
        and x.ndim == 4
        and x.dtype in (torch.float16, torch.bfloat16, torch.float32)
        and x.is_contiguous(memory_format=torch.channels_last)
        and x.shape[1] <= 4096
        and x.shape[2] * x.shape[3] > 0
    )


def group_norm_act(
    x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float, silu: bool = False
) -> Tensor:
    """`F.group_norm(x, groups, weight, bias, eps)`, then `F.silu` when `silu`; NHWC on CUDA through Triton.

    Args:
        x: [N, C, H, W] (any layout; only NHWC on CUDA takes the Triton passes, and the result is NHWC too).
    """
    if not triton_runs_on(x):
        y = F.group_norm(x, groups, weight, bias, eps)
        return F.silu(y) if silu else y
    from a3d_cli.kernels.group_norm_triton import TritonPasses

    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view: NHWC memory is [N, H·W, C]
    y = group_norm_rows(rows, groups, weight, bias, eps, silu, TritonPasses)
    return y.view(n, h, w, c).permute(0, 3, 1, 2)


__all__ = ["GroupNormPasses", "TorchPasses", "group_norm_act", "group_norm_rows", "group_statistics", "triton_runs_on"]
