"""GEGLU as one Hopper GEMM: both projections and value · gelu(gate) in a single Triton kernel.

Why: in SV3D's UNet every feed-forward starts with a GEGLU (48 per CFG forward). cuBLAS writes the [M, 2N]
projection, then a second kernel reads it back to form value · gelu(gate): on an H200 that gelu·mul pass
alone took 12.6 ms of a 162 ms forward, at the copy bandwidth. Here each program computes one [BM, BN]
output tile from two fp32 accumulators (value rows and gate rows of the weight, the same input tile),
applies bias and exact gelu in registers and writes only [M, N] (docs/PERF.md, orbit, fifth pass).

The gelu is a large part of the epilogue's cost: at SV3D's 72² level (K = 320, five k-steps per tile) the
kernel without it measured 0.68 ms, with libdevice's `erff` 0.90–0.93 ms. `GELU_FORMULAS` holds two exact
forms: "erf" (`tl.math.erf`, libdevice's branchy polynomial) and "rational", the default: erfc from
Abramowitz & Stegun 7.1.26 (one approximate reciprocal, one exp2, five FMAs; absolute erf error ≤ 1.5e-7, the
order of fp32 rounding and far below the bf16 output's 2^-9). On an H200 "rational" took 4–10 % off the
kernel (most at the narrow levels) and about 2 % off the compiled UNet forward. The tanh approximation of
gelu was faster still (another 1.5 ms per forward) but is not the model's function (up to 4.7e-4 off), so it
is not offered (docs/PERF.md, orbit, seventh pass).

Hopper specifics: loads and the store go through TMA descriptors (`TensorDescriptor`), so the tiles reach
shared memory without occupying the warps, and tiles are visited in grouped order so that neighbouring
programs share input and weight tiles in L2. TMA zero-fills reads past the edges and clips the store, so
any M and any K, N that are multiples of 8 work.

The tile schedule is fixed per input width, not autotuned (autotuning would run inside the first sampling
step and must stay out of CUDA-graph capture). Scratch sweeps of eighteen schedules on an H200 picked:
for narrow inputs (K ≤ 640: SV3D's 72² and 36² levels, five or ten k-steps per tile) one program per
(128, 64) tile with 4 warps and 2 stages, so that two or three programs share a multiprocessor and one's
epilogue (the erf gelu of its tile) overlaps another's products; for wider inputs a persistent grid of
(128, 128) tiles, 8 warps, 3 stages, where the products dominate.

Only imported on CUDA machines (`kernels.geglu` imports it lazily): Triton is not a CPU dependency.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.tools.tensor_descriptor import TensorDescriptor

GROUP_M = 8


class Schedule(NamedTuple):
    """How the kernel tiles one problem (see the module docstring for how these were chosen)."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int
    persistent: bool  # one program per multiprocessor walking the tiles, or one program per tile


NARROW = Schedule(128, 64, 64, num_warps=4, num_stages=2, persistent=False)
WIDE = Schedule(128, 128, 64, num_warps=8, num_stages=3, persistent=True)
NARROW_MAX_K = 640

GELU_FORMULAS = ("rational", "erf")
DEFAULT_GELU = "rational"
"""The formula used when a call names none (benchmarks/profile_kernels.py flips it to time the other)."""


def schedule_for(k: int) -> Schedule:
    """The schedule for an input width `k` (the reduction length)."""
    return NARROW if k <= NARROW_MAX_K else WIDE


@triton.jit
def _gelu(g, FORMULA: tl.constexpr):
    """Exact gelu(g) = g · Φ(g) in fp32, by `GELU_FORMULAS[FORMULA]` (see the module docstring)."""
    if FORMULA == 0:  # "rational": Φ(g) = 1 - erfc(g/√2)/2 for g ≥ 0 and erfc(|g|/√2)/2 below
        z = tl.abs(g) * 0.7071067811865476
        t = tl.inline_asm_elementwise(  # t = 1 / (1 + p z) in one MUFU instruction (an IEEE division is ~10)
            "rcp.approx.ftz.f32 $0, $1;", "=r,r", [1.0 + 0.3275911 * z], dtype=tl.float32, is_pure=True, pack=1
        )
        poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
        half_erfc = 0.5 * poly * tl.exp2(g * g * -0.7213475204444817)  # exp(-g²/2) = 2^(-g²·log2(e)/2)
        return g * tl.where(g >= 0, 1.0 - half_erfc, half_erfc)
    else:  # "erf": libdevice's erff
        return 0.5 * g * (1.0 + tl.math.erf(g * 0.7071067811865476))


@triton.jit
def _geglu_tile(
    x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
    tile, num_pid_m, num_pid_n, N, k_tiles,
    HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
    GELU: tl.constexpr,
):  # fmt: skip
    # grouped tile order: GROUP row-blocks share each weight column-block while it is in L2
    in_group = GROUP * num_pid_n
    first_m = (tile // in_group) * GROUP
    group_size = min(num_pid_m - first_m, GROUP)
    off_m = (first_m + tile % group_size) * BM
    off_n = ((tile % in_group) // group_size) * BN
    acc_value = tl.zeros((BM, BN), dtype=tl.float32)
    acc_gate = tl.zeros((BM, BN), dtype=tl.float32)
    for ki in range(k_tiles):
        off_k = ki * BK
        x = x_desc.load([off_m, off_k])
        acc_value = tl.dot(x, value_desc.load([off_n, off_k]).T, acc_value)
        acc_gate = tl.dot(x, gate_desc.load([off_n, off_k]).T, acc_gate)
    if HAS_BIAS:
        cols = off_n + tl.arange(0, BN)
        acc_value += tl.load(value_bias_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
        acc_gate += tl.load(gate_bias_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    out_desc.store([off_m, off_n], (acc_value * _gelu(acc_gate, GELU)).to(out_desc.dtype))


@triton.jit
def _geglu_kernel(
    x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc, M, N, K, NUM_PROGRAMS,
    HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
    PERSISTENT: tl.constexpr, GELU: tl.constexpr,
):  # fmt: skip
    num_pid_m = tl.cdiv(M, BM)
    num_pid_n = tl.cdiv(N, BN)
    k_tiles = tl.cdiv(K, BK)
    if PERSISTENT:
        for tile in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS):
            _geglu_tile(
                x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
                tile, num_pid_m, num_pid_n, N, k_tiles, HAS_BIAS, BM, BN, BK, GROUP, GELU,
            )  # fmt: skip
    else:
        _geglu_tile(
            x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
            tl.program_id(0), num_pid_m, num_pid_n, N, k_tiles, HAS_BIAS, BM, BN, BK, GROUP, GELU,
        )  # fmt: skip


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def geglu_triton(
    x: Tensor,  # [M, K] contiguous, bf16 or fp16, CUDA (sm90+)
    weight: Tensor,  # [2N, K] contiguous, same dtype
    bias: Tensor | None,  # [2N] or None
    schedule: Schedule | None = None,
    gelu: str | None = None,
) -> Tensor:
    """Triton twin of `kernels.geglu_ref.geglu_ref` (see `kernels.geglu.geglu_supported` for what it takes).

    Args:
        schedule: the tiling; None = `schedule_for(K)` (exposed for tuning sweeps).
        gelu: one of `GELU_FORMULAS`; None = `DEFAULT_GELU`.

    Returns:
        [M, N] in x's dtype.
    """
    m, k = x.shape
    n = weight.shape[0] // 2
    s = schedule_for(k) if schedule is None else schedule
    formula = DEFAULT_GELU if gelu is None else gelu
    if formula not in GELU_FORMULAS:
        raise ValueError(f"gelu must be one of {GELU_FORMULAS}, got {formula!r}")
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    if m == 0:
        return out
    x_desc = TensorDescriptor.from_tensor(x, [s.block_m, s.block_k])
    value_desc = TensorDescriptor.from_tensor(weight[:n], [s.block_n, s.block_k])
    gate_desc = TensorDescriptor.from_tensor(weight[n:], [s.block_n, s.block_k])
    out_desc = TensorDescriptor.from_tensor(out, [s.block_m, s.block_n])
    tiles = triton.cdiv(m, s.block_m) * triton.cdiv(n, s.block_n)
    programs = min(tiles, _multiprocessors(x.device.index if x.device.index is not None else 0)) if s.persistent else tiles
    value_bias, gate_bias = (bias[:n], bias[n:]) if bias is not None else (x, x)  # unread without a bias
    with torch.cuda.device(x.device):  # Triton launches on the current device, which may not be x's
        _geglu_kernel[(programs,)](
            x_desc, value_desc, gate_desc, value_bias, gate_bias, out_desc, m, n, k, programs,
            HAS_BIAS=bias is not None, BM=s.block_m, BN=s.block_n, BK=s.block_k, GROUP=GROUP_M,
            PERSISTENT=s.persistent, GELU=GELU_FORMULAS.index(formula), num_warps=s.num_warps, num_stages=s.num_stages,
        )  # fmt: skip
    return out
