"""GEGLU as one Hopper GEMM: both projections and value · gelu(gate) in a single Triton kernel.

Why: in SV3D's UNet every feed-forward starts with a GEGLU (48 per CFG forward). cuBLAS writes the [M, 2N]
projection, then a second kernel reads it back to form value · gelu(gate): on an H200 that gelu·mul pass
alone took 12.6 ms of a 162 ms forward, at the copy bandwidth. Here each program computes one [BM, BN]
output tile from two fp32 accumulators (value rows and gate rows of the weight, the same input tile),
applies bias and exact gelu in registers and writes only [M, N] (docs/PERF.md, orbit, fifth pass).

Hopper specifics: loads and the store go through TMA descriptors (`TensorDescriptor`), so the tiles reach
shared memory without occupying the warps, and the grid is persistent (one program per multiprocessor,
walking the tiles in grouped order so neighbouring programs share input and weight tiles in L2). TMA
zero-fills reads past the edges and clips the store, so any M and any K, N that are multiples of 8 work.

The tile configuration is fixed, not autotuned: (128, 128, 64), 8 warps, 3 stages won at all three SV3D
levels among ten candidates (scratch sweep on an H200), and a fixed one keeps autotuning out of the first
sampling step and out of CUDA-graph capture.

Only imported on CUDA machines (`kernels.geglu` imports it lazily): Triton is not a CPU dependency.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.tools.tensor_descriptor import TensorDescriptor

BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M = 128, 128, 64, 8
NUM_WARPS, NUM_STAGES = 8, 3


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
):  # fmt: skip
    num_pid_m = tl.cdiv(M, BM)
    num_pid_n = tl.cdiv(N, BN)
    k_tiles = tl.cdiv(K, BK)
    for tile in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS):
        _geglu_tile(
            x_desc, value_desc, gate_desc, value_bias_ptr, gate_bias_ptr, out_desc,
            tile, num_pid_m, num_pid_n, N, k_tiles, HAS_BIAS, BM, BN, BK, GROUP,
        )  # fmt: skip


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def geglu_triton(
    x: Tensor,  # [M, K] contiguous, bf16 or fp16, CUDA (sm90+)
    weight: Tensor,  # [2N, K] contiguous, same dtype
    bias: Tensor | None,  # [2N] or None
) -> Tensor:
    """Triton twin of `kernels.geglu_ref.geglu_ref` (see `kernels.geglu.geglu_supported` for what it takes).

    Returns:
        [M, N] in x's dtype.
    """
    m, k = x.shape
    n = weight.shape[0] // 2
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    x_desc = TensorDescriptor.from_tensor(x, [BLOCK_M, BLOCK_K])
    value_desc = TensorDescriptor.from_tensor(weight[:n], [BLOCK_N, BLOCK_K])
    gate_desc = TensorDescriptor.from_tensor(weight[n:], [BLOCK_N, BLOCK_K])
    out_desc = TensorDescriptor.from_tensor(out, [BLOCK_M, BLOCK_N])
    tiles = triton.cdiv(m, BLOCK_M) * triton.cdiv(n, BLOCK_N)
    programs = min(tiles, _multiprocessors(x.device.index if x.device.index is not None else 0))
    value_bias, gate_bias = (bias[:n], bias[n:]) if bias is not None else (x, x)  # unread without a bias
    _geglu_kernel[(programs,)](
        x_desc, value_desc, gate_desc, value_bias, gate_bias, out_desc, m, n, k, programs,
        HAS_BIAS=bias is not None, BM=BLOCK_M, BN=BLOCK_N, BK=BLOCK_K, GROUP=GROUP_M,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return out
