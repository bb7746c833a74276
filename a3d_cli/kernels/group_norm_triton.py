"""The four passes of a channels-last GroupNorm (+ SiLU) in Triton: moments, apply, backward sums, backward apply.

Why: cuDNN's bf16 convolutions work in NHWC, so a network whose activations are NHWC skips the layout
conversions cuDNN inserts around every NCHW convolution. PyTorch's CUDA GroupNorm, though, copies NHWC input
back to NCHW first, and SiLU is one more pass over the tensor each way. These kernels read NHWC activations
in order (a program takes whole rows of channels) and fuse the SiLU into the normalisation and its backward.

Every kernel sees the activations as [N, rows, C] (rows = H·W, channels innermost); the per-group arithmetic
that ties channels together is done on the small per-channel sums by `a3d_cli.kernels.group_norm`, which also
holds the same four passes written in PyTorch (`TorchPasses`) that these must equal. The moments are taken
about a shift (each program's first row), so their variance is as accurate as a two-pass one.

Only imported where Triton runs: CUDA machines, and the tests' Triton interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

ROWS_PER_PROGRAM = 512
"""Rows each program of the two reduction passes sums (a multiple of every tile height below)."""


def _tile_rows(channels: int) -> int:
    """Rows per tile so that a tile holds about 4096 values."""
    return max(1, min(64, 4096 // triton.next_power_of_2(channels)))


@triton.jit
def _silu_and_slope(z):
    """SiLU of `z` and its derivative."""
    sig = tl.sigmoid(z)
    return z * sig, sig * (1.0 + z * (1.0 - sig))


@triton.jit(do_not_specialize=["rows", "channels", "programs_per_sample"])
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
        r = start + r0 + tl.arange(0, BLOCK_R).to(tl.int64)
        m = (r < rows)[:, None] & cmask[None, :]
        x = tl.load(base + r[:, None] * channels + cols[None, :], mask=m, other=0.0).to(tl.float32)
        d = tl.where(m, x - shift[None, :], 0.0)
        acc += d
        acc2 += d * d
    out = out_ptr + pid.to(tl.int64) * 3 * channels
    tl.store(out + cols, shift, mask=cmask)
    tl.store(out + channels + cols, tl.sum(acc, axis=0), mask=cmask)
    tl.store(out + 2 * channels + cols, tl.sum(acc2, axis=0), mask=cmask)


@triton.jit(do_not_specialize=["rows", "channels", "tiles_per_sample"])
def _apply_kernel(
    x_ptr, y_ptr, a_ptr, b_ptr, rows, channels, tiles_per_sample, SILU: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    n = (pid // tiles_per_sample).to(tl.int64)
    r = (pid % tiles_per_sample).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
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


@triton.jit
def _pre_activation_grad(x, dy, a, b, SILU: tl.constexpr):
    """The gradient at the normalised value (before SiLU) from the output's gradient."""
    if SILU:
        _, slope = _silu_and_slope(x * a[None, :] + b[None, :])
        return dy * slope
    return dy


@triton.jit(do_not_specialize=["rows", "channels", "programs_per_sample"])
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
        r = start + r0 + tl.arange(0, BLOCK_R).to(tl.int64)
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


@triton.jit(do_not_specialize=["rows", "channels", "tiles_per_sample"])
def _backward_apply_kernel(
    x_ptr, dy_ptr, dx_ptr, a_ptr, b_ptr, mean_ptr, p_ptr, q_ptr, r_ptr, rows, channels, tiles_per_sample,
    SILU: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    n = (pid // tiles_per_sample).to(tl.int64)
    r = (pid % tiles_per_sample).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < channels
    m = (r < rows)[:, None] & cmask[None, :]
    c = n * channels + cols
    a = tl.load(a_ptr + c, mask=cmask, other=0.0)
    b = tl.load(b_ptr + c, mask=cmask, other=0.0)
    mean = tl.load(mean_ptr + c, mask=cmask, other=0.0)
    p = tl.load(p_ptr + c, mask=cmask, other=0.0)
    q = tl.load(q_ptr + c, mask=cmask, other=0.0)
    rr = tl.load(r_ptr + c, mask=cmask, other=0.0)
    offs = n * rows * channels + r[:, None] * channels + cols[None, :]
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    dy = tl.load(dy_ptr + offs, mask=m, other=0.0).to(tl.float32)
    dz = _pre_activation_grad(x, dy, a, b, SILU)
    dx = p[None, :] * dz + q[None, :] * (x - mean[None, :]) + rr[None, :]
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=m)


class TritonPasses:
    """The passes of `a3d_cli.kernels.group_norm.TorchPasses`, as Triton kernels (same arguments, same results
    to fp32 summation order). Inputs are contiguous [N, rows, C]; per-channel operands contiguous fp32 [N, C]."""

    rows_per_program = ROWS_PER_PROGRAM

    @staticmethod
    def moments(x: Tensor) -> Tensor:
        """Per program of `rows_per_program` rows: [N, programs, 3, C] = (shift, Σ(x−shift), Σ(x−shift)²)."""
        n, rows, c = x.shape
        per_sample = triton.cdiv(rows, ROWS_PER_PROGRAM)
        out = torch.empty(n, per_sample, 3, c, device=x.device, dtype=torch.float32)
        block_c = triton.next_power_of_2(c)
        _moments_kernel[(n * per_sample,)](
            x, out, rows, c, per_sample, ROWS=ROWS_PER_PROGRAM, BLOCK_R=_tile_rows(c), BLOCK_C=block_c
        )
        return out

    @staticmethod
    def apply(x: Tensor, a: Tensor, b: Tensor, silu: bool) -> Tensor:
        """x·a + b per channel (then SiLU), in x's dtype."""
        n, rows, c = x.shape
        y = torch.empty_like(x)
        block_r = _tile_rows(c)
        tiles = triton.cdiv(rows, block_r)
        _apply_kernel[(n * tiles,)](
            x, y, a, b, rows, c, tiles, SILU=silu, BLOCK_R=block_r, BLOCK_C=triton.next_power_of_2(c)
        )
        return y

    @staticmethod
    def backward_sums(x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, silu: bool) -> Tensor:
        """Per program: [N, programs, 2, C] = (Σ dz, Σ dz·(x − mean)), dz the gradient before the SiLU."""
        n, rows, c = x.shape
        per_sample = triton.cdiv(rows, ROWS_PER_PROGRAM)
        out = torch.empty(n, per_sample, 2, c, device=x.device, dtype=torch.float32)
        _backward_sums_kernel[(n * per_sample,)](
            x, dy, a, b, mean, out, rows, c, per_sample, SILU=silu, ROWS=ROWS_PER_PROGRAM,
            BLOCK_R=_tile_rows(c), BLOCK_C=triton.next_power_of_2(c),
        )  # fmt: skip
        return out

    @staticmethod
    def backward_apply(
        x: Tensor, dy: Tensor, a: Tensor, b: Tensor, mean: Tensor, p: Tensor, q: Tensor, r: Tensor, silu: bool
    ) -> Tensor:
        """dx = p·dz + q·(x − mean) + r per channel, in x's dtype."""
        n, rows, c = x.shape
        dx = torch.empty_like(x)
        block_r = _tile_rows(c)
        tiles = triton.cdiv(rows, block_r)
        _backward_apply_kernel[(n * tiles,)](
            x, dy, dx, a, b, mean, p, q, r, rows, c, tiles, SILU=silu, BLOCK_R=block_r,
            BLOCK_C=triton.next_power_of_2(c),
        )  # fmt: skip
        return dx


__all__ = ["ROWS_PER_PROGRAM", "TritonPasses"]
