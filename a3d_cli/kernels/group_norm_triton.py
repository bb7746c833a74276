"""A channels-last GroupNorm (+ SiLU) in six Triton kernels: three for the forward pass, three for the backward.

Why: see `a3d_cli.kernels.group_norm` (NHWC convolutions without layout conversions need a GroupNorm that
reads NHWC in order; the SiLU after it is fused into the same passes, forward and backward).

Every kernel sees the activations as [N, rows, C] (rows = H·W, channels innermost). Forward: per block of
rows, each channel's moments about a shift (the block's first row, so the variance is as accurate as a
two-pass one); one program per (sample, group) merges them (Chan's formula) into the per-channel scale and
shift; then y = x·a + b (then SiLU). Backward: per block of rows, each channel's Σ dz and Σ dz·(x − mean)
(dz the gradient before the SiLU, recomputed from x); one program per (sample, group) turns them into the
coefficients of dx = a·dz + q·(x − mean) + r; then that. The arithmetic is `TorchPasses`' (the reference
these kernels are tested against).

Only imported where Triton runs: CUDA machines, and the tests' Triton interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

ROWS_PER_PROGRAM = 256
"""Rows each program of the two reduction passes sums (a multiple of every tile height)."""

TILE_VALUES = 4096
"""Values per tile of the streaming passes (rows × channels, channels padded to a power of two)."""

NUM_WARPS = 4
"""Warps per program of the streaming passes."""


def _tile_rows(channels: int) -> int:
    """Rows per tile: about `TILE_VALUES` values, at most `ROWS_PER_PROGRAM` rows."""
    return max(1, min(ROWS_PER_PROGRAM, TILE_VALUES // triton.next_power_of_2(channels)))


@triton.jit
def _silu_and_slope(z):
    """SiLU of `z` and its derivative."""
    sig = tl.sigmoid(z)
    return z * sig, sig * (1.0 + z * (1.0 - sig))


@triton.jit
def _pre_activation_grad(x, dy, a, b, SILU: tl.constexpr):
    """The gradient at the normalised value (before SiLU) from the output's gradient."""
    if SILU:
        _, slope = _silu_and_slope(x * a[None, :] + b[None, :])
        return dy * slope
    return dy


@triton.jit(do_not_specialize=["rows", "programs_per_sample"])
def _moments_kernel(
    x_ptr, out_ptr, rows, channels, programs_per_sample, ROWS: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    n = (pid // programs_per_sample).to(tl.int64)
    start = (pid % programs_per_sample).to(tl.int64) * ROWS
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < channels
    base = x_ptr + n * rows * channels
    shift = tl.load(base + start * channels + cols, mask=cmask, other=0.0).to(tl.float32)
    acc = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    for r0 in range(0, ROWS, BLOCK_R):
        r = start + r0 + tl.arange(0, BLOCK_R)
        m = (r < rows)[:, None] & cmask[None, :]
        x = tl.load(base + r[:, None] * channels + cols[None, :], mask=m, other=0.0).to(tl.float32)
        d = tl.where(m, x - shift[None, :], 0.0)
        acc += d
        acc2 += d * d
    out = out_ptr + pid.to(tl.int64) * 3 * channels
    tl.store(out + cols, shift, mask=cmask)
    tl.store(out + channels + cols, tl.sum(acc, axis=0), mask=cmask)
    tl.store(out + 2 * channels + cols, tl.sum(acc2, axis=0), mask=cmask)


@triton.jit(do_not_specialize=["rows", "programs"])
def _forward_coefficients_kernel(
    part_ptr, weight_ptr, bias_ptr, mean_ptr, rstd_ptr, a_ptr, b_ptr, rows, programs, channels, groups, eps,
    ROWS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_P: tl.constexpr,
    BLOCK_G: tl.constexpr,
):  # fmt: skip
    """One program per (sample, group): the moments of every block merged into the group's statistics."""
    pid = tl.program_id(0)
    n = pid // groups
    g = pid % groups
    per_group = channels // groups
    ch = g * per_group + tl.arange(0, BLOCK_G)
    cmask = tl.arange(0, BLOCK_G) < per_group
    base = part_ptr + n.to(tl.int64) * programs * 3 * channels
    total = (rows * per_group).to(tl.float32)
    mean_sum = tl.zeros([BLOCK_P, BLOCK_G], dtype=tl.float32)
    for p0 in range(0, programs, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = (p < programs)[:, None] & cmask[None, :]
        cnt = tl.maximum(tl.minimum(rows - p * ROWS, ROWS), 1).to(tl.float32)[:, None]
        off = base + p[:, None].to(tl.int64) * 3 * channels + ch[None, :]
        shift = tl.load(off, mask=m, other=0.0)
        s1 = tl.load(off + channels, mask=m, other=0.0)
        mean_sum += tl.where(m, shift * cnt + s1, 0.0)
    mean = tl.sum(tl.sum(mean_sum, axis=1), axis=0) / total
    m2_sum = tl.zeros([BLOCK_P, BLOCK_G], dtype=tl.float32)
    for p0 in range(0, programs, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = (p < programs)[:, None] & cmask[None, :]
        cnt = tl.maximum(tl.minimum(rows - p * ROWS, ROWS), 1).to(tl.float32)[:, None]
        off = base + p[:, None].to(tl.int64) * 3 * channels + ch[None, :]
        shift = tl.load(off, mask=m, other=0.0)
        s1 = tl.load(off + channels, mask=m, other=0.0)
        s2 = tl.load(off + 2 * channels, mask=m, other=0.0)
        block_mean = shift + s1 / cnt
        block_m2 = s2 - s1 * s1 / cnt
        d = block_mean - mean
        m2_sum += tl.where(m, block_m2 + cnt * d * d, 0.0)
    var = tl.maximum(tl.sum(tl.sum(m2_sum, axis=1), axis=0) / total, 0.0)
    rstd = 1.0 / tl.sqrt(var + eps)
    a = tl.zeros([BLOCK_G], dtype=tl.float32) + rstd
    if HAS_WEIGHT:
        a = a * tl.load(weight_ptr + ch, mask=cmask, other=0.0).to(tl.float32)
    b = -mean * a
    if HAS_BIAS:
        b = b + tl.load(bias_ptr + ch, mask=cmask, other=0.0).to(tl.float32)
    out = n.to(tl.int64) * channels + ch
    tl.store(mean_ptr + out, tl.zeros([BLOCK_G], dtype=tl.float32) + mean, mask=cmask)
    tl.store(a_ptr + out, a, mask=cmask)
    tl.store(b_ptr + out, b, mask=cmask)
    tl.store(rstd_ptr + pid, rstd)


@triton.jit(do_not_specialize=["rows", "tiles_per_sample"])
def _apply_kernel(
    x_ptr, y_ptr, a_ptr, b_ptr, rows, channels, tiles_per_sample, SILU: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    n = (pid // tiles_per_sample).to(tl.int64)
    r = (pid % tiles_per_sample).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < channels
    m = (r < rows)[:, None] & cmask[None, :]
    a = tl.load(a_ptr + n * channels + cols, mask=cmask, other=0.0)
    b = tl.load(b_ptr + n * channels + cols, mask=cmask, other=0.0)
    offs = n * rows * channels + r[:, None] * channels + cols[None, :]
    z = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32) * a[None, :] + b[None, :]
    if SILU:
        z, _ = _silu_and_slope(z)
    tl.store(y_ptr + offs, z.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit(do_not_specialize=["rows", "programs_per_sample"])
def _backward_sums_kernel(
    x_ptr, dy_ptr, a_ptr, b_ptr, mean_ptr, out_ptr, rows, channels, programs_per_sample, SILU: tl.constexpr,
    ROWS: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    n = (pid // programs_per_sample).to(tl.int64)
    start = (pid % programs_per_sample).to(tl.int64) * ROWS
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < channels
    a = tl.load(a_ptr + n * channels + cols, mask=cmask, other=0.0)
    b = tl.load(b_ptr + n * channels + cols, mask=cmask, other=0.0)
    mean = tl.load(mean_ptr + n * channels + cols, mask=cmask, other=0.0)
    acc = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    acc_centred = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    for r0 in range(0, ROWS, BLOCK_R):
        r = start + r0 + tl.arange(0, BLOCK_R)
        m = (r < rows)[:, None] & cmask[None, :]
        offs = n * rows * channels + r[:, None] * channels + cols[None, :]
        x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + offs, mask=m, other=0.0).to(tl.float32)
        dz = tl.where(m, _pre_activation_grad(x, dy, a, b, SILU), 0.0)
        acc += dz
        acc_centred += dz * (x - mean[None, :])
    out = out_ptr + pid.to(tl.int64) * 2 * channels
    tl.store(out + cols, tl.sum(acc, axis=0), mask=cmask)
    tl.store(out + channels + cols, tl.sum(acc_centred, axis=0), mask=cmask)


@triton.jit(do_not_specialize=["rows", "programs"])
def _backward_coefficients_kernel(
    part_ptr, a_ptr, rstd_ptr, q_ptr, r_ptr, sum_dz_ptr, sum_centred_ptr, rows, programs, channels, groups,
    BLOCK_P: tl.constexpr, BLOCK_G: tl.constexpr,
):  # fmt: skip
    """One program per (sample, group): the blocks' sums totalled, and dx's coefficients q and r."""
    pid = tl.program_id(0)
    n = pid // groups
    g = pid % groups
    per_group = channels // groups
    ch = g * per_group + tl.arange(0, BLOCK_G)
    cmask = tl.arange(0, BLOCK_G) < per_group
    base = part_ptr + n.to(tl.int64) * programs * 2 * channels
    acc = tl.zeros([BLOCK_P, BLOCK_G], dtype=tl.float32)
    acc_centred = tl.zeros([BLOCK_P, BLOCK_G], dtype=tl.float32)
    for p0 in range(0, programs, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = (p < programs)[:, None] & cmask[None, :]
        off = base + p[:, None].to(tl.int64) * 2 * channels + ch[None, :]
        acc += tl.load(off, mask=m, other=0.0)
        acc_centred += tl.load(off + channels, mask=m, other=0.0)
    sum_dz = tl.sum(acc, axis=0)  # [BLOCK_G] per channel
    sum_centred = tl.sum(acc_centred, axis=0)
    out = n.to(tl.int64) * channels + ch
    a = tl.load(a_ptr + out, mask=cmask, other=0.0)  # rstd·γ
    rstd = tl.load(rstd_ptr + pid)
    total = (rows * per_group).to(tl.float32)
    mean_g_dz = tl.sum(a * sum_dz, axis=0) / rstd / total  # ⟨γ·dz⟩
    mean_g_dz_xhat = tl.sum(a * sum_centred, axis=0) / total  # ⟨γ·dz·x̂⟩
    tl.store(q_ptr + out, tl.zeros([BLOCK_G], dtype=tl.float32) - rstd * rstd * mean_g_dz_xhat, mask=cmask)
    tl.store(r_ptr + out, tl.zeros([BLOCK_G], dtype=tl.float32) - rstd * mean_g_dz, mask=cmask)
    tl.store(sum_dz_ptr + out, sum_dz, mask=cmask)
    tl.store(sum_centred_ptr + out, sum_centred, mask=cmask)


@triton.jit(do_not_specialize=["rows", "tiles_per_sample"])
def _backward_apply_kernel(
    x_ptr, dy_ptr, dx_ptr, a_ptr, b_ptr, mean_ptr, q_ptr, r_ptr, rows, channels, tiles_per_sample,
    SILU: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    n = (pid // tiles_per_sample).to(tl.int64)
    r = (pid % tiles_per_sample).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < channels
    m = (r < rows)[:, None] & cmask[None, :]
    c = n * channels + cols
    a = tl.load(a_ptr + c, mask=cmask, other=0.0)
    b = tl.load(b_ptr + c, mask=cmask, other=0.0)
    mean = tl.load(mean_ptr + c, mask=cmask, other=0.0)
    q = tl.load(q_ptr + c, mask=cmask, other=0.0)
    rr = tl.load(r_ptr + c, mask=cmask, other=0.0)
    offs = n * rows * channels + r[:, None] * channels + cols[None, :]
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    dy = tl.load(dy_ptr + offs, mask=m, other=0.0).to(tl.float32)
    dz = _pre_activation_grad(x, dy, a, b, SILU)
    dx = a[None, :] * dz + q[None, :] * (x - mean[None, :]) + rr[None, :]
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=m)


def _reduction_grid(rows: int) -> tuple[int, int]:
    """(programs per sample, rows per program) of the reduction passes."""
    return triton.cdiv(rows, ROWS_PER_PROGRAM), ROWS_PER_PROGRAM


class TritonPasses:
    """`a3d_cli.kernels.group_norm.TorchPasses` as Triton kernels (same arguments, same results to the order of
    fp32 sums). x and dy are contiguous [N, rows, C]; the per-channel results contiguous fp32 [N, C]."""

    @staticmethod
    def statistics(
        x: Tensor, groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n, rows, c = x.shape
        per_sample, rows_per_program = _reduction_grid(rows)
        block_c = triton.next_power_of_2(c)
        part = torch.empty(n, per_sample, 3, c, device=x.device, dtype=torch.float32)
        _moments_kernel[(n * per_sample,)](
            x, part, rows, c, per_sample, ROWS=rows_per_program, BLOCK_R=_tile_rows(c), BLOCK_C=block_c,
            num_warps=NUM_WARPS,
        )  # fmt: skip
        mean, a, b = (torch.empty(n, c, device=x.device, dtype=torch.float32) for _ in range(3))
        rstd = torch.empty(n, groups, device=x.device, dtype=torch.float32)
        block_g = triton.next_power_of_2(c // groups)
        _forward_coefficients_kernel[(n * groups,)](
            part, weight, bias, mean, rstd, a, b, rows, per_sample, c, groups, eps, ROWS=rows_per_program,
            HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None,
            BLOCK_P=max(1, min(triton.next_power_of_2(per_sample), 2048 // block_g)), BLOCK_G=block_g,
        )  # fmt: skip
        return mean, rstd, a, b

    @staticmethod
    def apply(x: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
        n, rows, c = x.shape
        y = torch.empty_like(x)
        block_r = _tile_rows(c)
        tiles = triton.cdiv(rows, block_r)
        _apply_kernel[(n * tiles,)](
            x, y, a, b, rows, c, tiles, SILU=silu, BLOCK_R=block_r, BLOCK_C=triton.next_power_of_2(c),
            num_warps=NUM_WARPS,
        )  # fmt: skip
        return y

    @staticmethod
    def backward_coefficients(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, rstd: Tensor, silu: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n, rows, c = x.shape
        groups = rstd.shape[1]
        per_sample, rows_per_program = _reduction_grid(rows)
        part = torch.empty(n, per_sample, 2, c, device=x.device, dtype=torch.float32)
        _backward_sums_kernel[(n * per_sample,)](
            x, dy, a, b, mean, part, rows, c, per_sample, SILU=silu, ROWS=rows_per_program,
            BLOCK_R=_tile_rows(c), BLOCK_C=triton.next_power_of_2(c), num_warps=NUM_WARPS,
        )  # fmt: skip
        q, r, sum_dz, sum_centred = (torch.empty(n, c, device=x.device, dtype=torch.float32) for _ in range(4))
        block_g = triton.next_power_of_2(c // groups)
        _backward_coefficients_kernel[(n * groups,)](
            part, a, rstd, q, r, sum_dz, sum_centred, rows, per_sample, c, groups,
            BLOCK_P=max(1, min(triton.next_power_of_2(per_sample), 2048 // block_g)), BLOCK_G=block_g,
        )  # fmt: skip
        return q, r, sum_dz, sum_centred

    @staticmethod
    def backward_apply(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, q: Tensor, r: Tensor, silu: bool
    ) -> Tensor:
        n, rows, c = x.shape
        dx = torch.empty_like(x)
        block_r = _tile_rows(c)
        tiles = triton.cdiv(rows, block_r)
        _backward_apply_kernel[(n * tiles,)](
            x, dy, dx, a, b, mean, q, r, rows, c, tiles, SILU=silu, BLOCK_R=block_r,
            BLOCK_C=triton.next_power_of_2(c), num_warps=NUM_WARPS,
        )  # fmt: skip
        return dx


__all__ = ["NUM_WARPS", "ROWS_PER_PROGRAM", "TILE_VALUES", "TritonPasses"]
