"""GEGLU as one Hopper GEMM: both projections and value · gelu(gate) in a single Triton kernel.

Why: in SV3D's UNet every feed-forward starts with a GEGLU (48 per CFG forward). cuBLAS writes the [M, 2N]
projection, then a second kernel reads it back to form value · gelu(gate): on an H200 that gelu·mul pass
alone took 12.6 ms of a 162 ms forward, at the copy bandwidth. Here each program computes one [BM, BN]
output tile from two fp32 accumulators (value rows and gate rows of the weight, the same input tile),
applies bias and exact gelu in registers and writes only [M, N] (docs/PERF.md, orbit, fifth pass).

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


def schedule_for(k: int) -> Schedule:
    """The schedule for an input width `k` (the reduction length)."""
    return NARROW if k <= NARROW_MAX_K else WIDE


@triton.jit
def _geglu_tile(
    x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
    tile, num_pid_m, num_pid_n, N, k_tiles,
    HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
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
    gelu = 0.5 * acc_gate * (1.0 + tl.math.erf(acc_gate * 0.7071067811865476))  # exact gelu
    out_desc.store([off_m, off_n], (acc_value * gelu).to(out_desc.dtype))


@triton.jit
def _geglu_kernel(
    x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc, M, N, K, NUM_PROGRAMS,
    HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
    PERSISTENT: tl.constexpr,
):  # fmt: skip
    num_pid_m = tl.cdiv(M, BM)
    num_pid_n = tl.cdiv(N, BN)
    k_tiles = tl.cdiv(K, BK)
    if PERSISTENT:
        for tile in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS):
            _geglu_tile(
                x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
                tile, num_pid_m, num_pid_n, N, k_tiles, HAS_BIAS, BM, BN, BK, GROUP,
            )  # fmt: skip
    else:
        _geglu_tile(
            x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
            tl.program_id(0), num_pid_m, num_pid_n, N, k_tiles, HAS_BIAS, BM, BN, BK, GROUP,
        )  # fmt: skip


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def geglu_triton(
    x: Tensor,  # [M, K] contiguous, bf16 or fp16, CUDA (sm90+)
    weight: Tensor,  # [2N, K] contiguous, same dtype
    bias: Tensor | None,  # [2N] or None
    schedule: Schedule | None = None,
) -> Tensor:
    """Triton twin of `kernels.geglu_ref.geglu_ref` (see `kernels.geglu.geglu_supported` for what it takes).

    Args:
        schedule: the tiling; None = `schedule_for(K)` (exposed for tuning sweeps).

    Returns:
        [M, N] in x's dtype.
    """
    m, k = x.shape
    n = weight.shape[0] // 2
    s = schedule_for(k) if schedule is None else schedule
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
            PERSISTENT=s.persistent, num_warps=s.num_warps, num_stages=s.num_stages,
        )  # fmt: skip
    return out
