"""GEGLU as one warp-specialized Hopper GEMM, written in Gluon (Triton's explicit-layout dialect).

Why: in SV3D's UNet every feed-forward starts with a GEGLU (48 per CFG forward). cuBLAS writes the [M, 2N]
projection and a second kernel reads it back to form value · gelu(gate); fusing both halves into one GEMM
that writes only value · gelu(gate) saves that round trip. On Hopper, plain Triton cannot split a kernel's
warps into roles, so every warp would both wait on loads, issue products and compute the (arithmetic-heavy)
exact gelu; this kernel gives each job its own warps:

- one *loader* warp issues the TMA copies into a ring of shared-memory stages, guarded by "ready"/"empty"
  mbarriers;
- two *consumer* warpgroups take turns over the output tiles (ping-pong): while one issues its tile's
  warpgroup MMAs, the other applies bias, gelu and the product to its finished accumulator and stores it
  with TMA. A "turn" mbarrier per consumer keeps them in that order, which also keeps every stage wait at
  most one phase ahead of its barrier (all that a parity wait can tell apart).

The value and gate rows of a tile share one shared-memory buffer, so one MMA (n = 2·BN) yields both halves
of the accumulator; the epilogue splits them in registers.

Two schedules (`Schedule`, chosen by `schedule_for` from the input width K):

- *resident* (K ≤ 320, SV3D's 72² level: five k-steps per tile): each program keeps the whole [2·128, K]
  weight slice of one column block in shared memory (160 KiB) for its lifetime and streams only 64-row input
  tiles; programs are spread evenly over the column blocks. This cuts the shared-memory and L2 traffic per
  product, which bounds the narrow level.
- *streamed* (wider K): weights and inputs stream through the ring together, 128 × (64 + 64) tiles in grouped
  order over a persistent grid.

The gelu is exact: erfc from Abramowitz & Stegun 7.1.26 with one approximate reciprocal and one exp2
(absolute erf error ≤ 1.5e-7, the order of fp32 rounding, far below the bf16 output's 2^-9). Timings of
the schedules and of the kernel against cuBLAS are in docs/PERF.md (orbit).

TMA zero-fills reads past the edges and clips the stores, so any M and any K, N that are multiples of 8 work.
Only imported on CUDA machines (`a3d_cli.kernels.geglu` imports it lazily): Triton is not a CPU dependency.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import triton
from torch import Tensor
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

BLOCK_K = gl.constexpr(64)
GROUP_M = gl.constexpr(8)  # streamed: row blocks per group of the tile order (neighbours share weights in L2)
RESIDENT_WEIGHT_BYTES = 160 * 1024  # what the resident weight slice may take of the 227 KiB of shared memory
# registers per thread: 12 warps (2 × 4 consumers, 1 loader + 3 idle) × 168 fill the register file; setmaxnreg then
# moves them to the consumers (232 each, of which 128 hold the accumulator) from the loader's warpgroup (40)
CONSUMER_REGISTERS, LOADER_REGISTERS, MAX_REGISTERS = gl.constexpr(232), gl.constexpr(40), 168


class Schedule(NamedTuple):
    """How the kernel tiles one problem (see the module docstring for how these were chosen)."""

    resident: bool  # the weight slice stays in shared memory, or streams with the inputs
    block_m: int  # rows of one consumer's tile
    block_n: int  # output columns of one tile (its accumulator holds 2 · block_n: value then gate)
    stages: int  # depth of the input ring


RESIDENT = Schedule(resident=True, block_m=64, block_n=128, stages=3)
STREAMED = Schedule(resident=False, block_m=128, block_n=64, stages=4)


def schedule_for(k: int) -> Schedule:
    """The schedule for an input width `k`: resident while the [2·128, K] weight slice fits its budget."""
    k_tiles = triton.cdiv(k, BLOCK_K.value)
    return RESIDENT if 2 * RESIDENT.block_n * k_tiles * BLOCK_K.value * 2 <= RESIDENT_WEIGHT_BYTES else STREAMED


@gluon.jit
def _gelu(g):
    """Exact gelu(g) = g · Φ(g) in fp32: Φ(g) = 1 - erfc(g/√2)/2 for g ≥ 0 and erfc(|g|/√2)/2 below."""
    z = gl.abs(g) * 0.7071067811865476
    t = gl.inline_asm_elementwise(  # t = 1 / (1 + p z) in one MUFU instruction (an IEEE division is ~10)
        "rcp.approx.ftz.f32 $0, $1;", "=r,r", [1.0 + 0.3275911 * z], dtype=gl.float32, is_pure=True, pack=1
    )
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    half_erfc = 0.5 * poly * gl.exp2(g * g * -0.7213475204444817)  # exp(-g²/2) = 2^(-g²·log2(e)/2)
    return g * gl.where(g >= 0, 1.0 - half_erfc, half_erfc)


@gluon.jit
def _local_tiles(M, N, RESIDENT: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr):
    """This program's share of the output tiles: (their count, first row block, column offset).

    Resident: the programs are split evenly over the column blocks, and each takes a contiguous run of row
    blocks of its column block (its weight slice never changes). Streamed: tiles pid, pid + P, ... of the
    grouped order (the row block and column offset of each then come from `_tile_offsets`).
    """
    pid = gl.program_id(0)
    programs = gl.num_programs(0)
    num_m = gl.cdiv(M, BM)
    if RESIDENT:
        per_column = programs // gl.cdiv(N, BN)
        chunk = pid % per_column
        first_m = chunk * num_m // per_column
        count = (chunk + 1) * num_m // per_column - first_m
        return count, first_m, (pid // per_column) * BN
    else:
        return gl.cdiv(num_m * gl.cdiv(N, BN) - pid, programs), 0, 0


@gluon.jit
def _tile_offsets(j, M, N, first_m, off_n, RESIDENT: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr):
    """Row and column offsets of this program's local tile `j` (see `_local_tiles`)."""
    if RESIDENT:
        return (first_m + j) * BM, off_n
    else:
        tile = gl.program_id(0) + j * gl.num_programs(0)
        num_m = gl.cdiv(M, BM)
        in_group = GROUP_M * gl.cdiv(N, BN)
        group_first = (tile // in_group) * GROUP_M
        group_size = gl.minimum(num_m - group_first, GROUP_M)
        return (group_first + tile % group_size) * BM, ((tile % in_group) // group_size) * BN


@gluon.jit
def _loader(x_desc, value_desc, gate_desc, out_desc, value_bias, gate_bias, x_bufs, w_bufs, out_bufs,
            ready, empty, turns, weights_ready, M, N,
            HAS_BIAS: gl.constexpr, RESIDENT: gl.constexpr, K_TILES: gl.constexpr):  # fmt: skip
    """One warp: TMA copies into the ring (and, resident, the weight slice once)."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BN: gl.constexpr = value_desc.block_type.shape[0]
    STAGES: gl.constexpr = x_bufs.type.shape[0]
    count, first_m, off_n = _local_tiles(M, N, RESIDENT, BM, BN)
    if RESIDENT:
        mbarrier.expect(weights_ready, K_TILES * 2 * value_desc.block_type.nbytes)
        for kt in gl.static_range(K_TILES):
            w_tile = w_bufs.index(kt)
            tma.async_copy_global_to_shared(value_desc, [off_n, kt * BLOCK_K], weights_ready, w_tile.slice(0, BN))
            tma.async_copy_global_to_shared(gate_desc, [off_n, kt * BLOCK_K], weights_ready, w_tile.slice(BN, BN))
        stage_bytes: gl.constexpr = x_desc.block_type.nbytes
    else:
        stage_bytes: gl.constexpr = x_desc.block_type.nbytes + 2 * value_desc.block_type.nbytes
    for j in range(count):
        off_m, off_n = _tile_offsets(j, M, N, first_m, off_n, RESIDENT, BM, BN)
        for kt in gl.static_range(K_TILES):
            c = j * K_TILES + kt
            s = c % STAGES
            mbarrier.wait(empty.index(s), ((c // STAGES) & 1) ^ 1)  # a fresh barrier passes parity 1 at once
            bar = ready.index(s)
            mbarrier.expect(bar, stage_bytes)
            tma.async_copy_global_to_shared(x_desc, [off_m, kt * BLOCK_K], bar, x_bufs.index(s))
            if not RESIDENT:
                w_stage = w_bufs.index(s)
                tma.async_copy_global_to_shared(value_desc, [off_n, kt * BLOCK_K], bar, w_stage.slice(0, BN))
                tma.async_copy_global_to_shared(gate_desc, [off_n, kt * BLOCK_K], bar, w_stage.slice(BN, BN))


@gluon.jit
def _consumer(CONSUMER: gl.constexpr, x_desc, value_desc, gate_desc, out_desc, value_bias, gate_bias, x_bufs,
              w_bufs, out_bufs, ready, empty, turns, weights_ready, M, N,
              HAS_BIAS: gl.constexpr, RESIDENT: gl.constexpr, K_TILES: gl.constexpr):  # fmt: skip
    """One warpgroup: the products of every other local tile, then their epilogue (ping-pong with the other)."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BN: gl.constexpr = value_desc.block_type.shape[0]
    STAGES: gl.constexpr = x_bufs.type.shape[0]
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, 2 * BN, 16])
    count, first_m, off_n = _local_tiles(M, N, RESIDENT, BM, BN)
    out_buf = out_bufs.index(CONSUMER)
    columns = gl.arange(0, 2 * BN, layout=gl.SliceLayout(0, layout))  # value columns, then gate columns
    is_value = columns < BN
    if RESIDENT:
        mbarrier.wait(weights_ready, 0)
    for j in range(CONSUMER, count, 2):
        off_m, off_n = _tile_offsets(j, M, N, first_m, off_n, RESIDENT, BM, BN)
        # wait for the other consumer to have issued the products of tile j - 1 (its (j // 2 + CONSUMER)-th turn)
        mbarrier.wait(turns.index(1 - CONSUMER), ((j // 2) - 1 + CONSUMER) & 1, pred=j > 0)
        acc = gl.zeros([BM, 2 * BN], gl.float32, layout)
        for kt in gl.static_range(K_TILES):
            c = j * K_TILES + kt
            s = c % STAGES
            mbarrier.wait(ready.index(s), (c // STAGES) & 1)
            if RESIDENT:
                w_tile = w_bufs.index(kt)
            else:
                w_tile = w_bufs.index(s)
            acc = warpgroup_mma(x_bufs.index(s), w_tile.permute((1, 0)), acc, use_acc=kt > 0, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))  # the previous step's products are done
            if kt > 0:
                mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1)
        mbarrier.arrive(turns.index(CONSUMER), count=1)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((j * K_TILES + K_TILES - 1) % STAGES), count=1)
        if HAS_BIAS:
            n = off_n + gl.where(is_value, columns, columns - BN)
            bias = gl.load(gl.where(is_value, value_bias + n, gate_bias + n), mask=n < N, other=0.0)
            acc = acc + bias.to(gl.float32)[None, :]
        value, gate = gl.split(gl.permute(gl.reshape(acc, [BM, 2, BN]), [0, 2, 1]))  # in registers, no shuffle
        result = (value * _gelu(gate)).to(out_desc.dtype)
        tma.store_wait(0)  # this consumer's previous store has left out_buf
        out_buf.store(result)
        fence_async_shared()
        tma.async_copy_shared_to_global(out_desc, [off_m, off_n], out_buf)
    tma.store_wait(0)


@gluon.jit
def _geglu_kernel(x_desc, value_desc, gate_desc, out_desc, value_bias, gate_bias, M, N,
                  HAS_BIAS: gl.constexpr, RESIDENT: gl.constexpr, K_TILES: gl.constexpr, STAGES: gl.constexpr):  # fmt: skip
    BN: gl.constexpr = value_desc.block_type.shape[0]
    x_bufs = gl.allocate_shared_memory(x_desc.dtype, [STAGES] + x_desc.block_type.shape, x_desc.layout)
    w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([2 * BN, BLOCK_K], value_desc.dtype)
    if RESIDENT:
        w_bufs = gl.allocate_shared_memory(value_desc.dtype, [K_TILES, 2 * BN, BLOCK_K], w_layout)
    else:
        w_bufs = gl.allocate_shared_memory(value_desc.dtype, [STAGES, 2 * BN, BLOCK_K], w_layout)
    out_bufs = gl.allocate_shared_memory(out_desc.dtype, [2] + out_desc.block_type.shape, out_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    turns = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    weights_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=1)
    mbarrier.init(turns.index(0), count=1)
    mbarrier.init(turns.index(1), count=1)
    mbarrier.init(weights_ready, count=1)
    # (each partition gets the arguments spelled out: a tuple built first would turn the constexprs into tensors)
    gl.warp_specialize(
        [
            (_consumer, (0, x_desc, value_desc, gate_desc, out_desc, value_bias, gate_bias, x_bufs, w_bufs, out_bufs,
                         ready, empty, turns, weights_ready, M, N, HAS_BIAS, RESIDENT, K_TILES)),
            (_consumer, (1, x_desc, value_desc, gate_desc, out_desc, value_bias, gate_bias, x_bufs, w_bufs, out_bufs,
                         ready, empty, turns, weights_ready, M, N, HAS_BIAS, RESIDENT, K_TILES)),
            (_loader, (x_desc, value_desc, gate_desc, out_desc, value_bias, gate_bias, x_bufs, w_bufs, out_bufs,
                       ready, empty, turns, weights_ready, M, N, HAS_BIAS, RESIDENT, K_TILES)),
        ],
        [4, 1],
        [CONSUMER_REGISTERS, LOADER_REGISTERS],
    )  # fmt: skip


@functools.cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _descriptor(t: Tensor, block: list[int]) -> TensorDescriptor:
    dtype = gl.bfloat16 if t.dtype == torch.bfloat16 else gl.float16
    return TensorDescriptor.from_tensor(t, block, gl.NVMMASharedLayout.get_default_for(block, dtype))


def geglu_gluon(
    x: Tensor,  # [M, K] contiguous, bf16 or fp16, CUDA (sm90+)
    weight: Tensor,  # [2N, K] contiguous, same dtype
    bias: Tensor | None,  # [2N] or None
    schedule: Schedule | None = None,
) -> Tensor:
    """Gluon twin of `a3d_cli.kernels.geglu_ref.geglu_ref` (see `a3d_cli.kernels.geglu.geglu_supported` for what it takes).

    Args:
        schedule: the tiling; None = `schedule_for(K)` (exposed for tuning sweeps).

    Returns:
        [M, N] in x's dtype.
    """
    m, k = x.shape
    n = weight.shape[0] // 2
    s = schedule_for(k) if schedule is None else schedule
    if k == 0 or n == 0:
        raise ValueError(f"the fused kernel needs K > 0 and N > 0, got K = {k}, N = {n}")
    k_tiles = triton.cdiv(k, BLOCK_K.value)
    if s.resident and 2 * s.block_n * k_tiles * BLOCK_K.value * x.element_size() > RESIDENT_WEIGHT_BYTES:
        raise ValueError(f"K = {k} is too wide for the resident schedule")
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    if m == 0:
        return out
    multiprocessors = _multiprocessors(x.device.index if x.device.index is not None else 0)
    columns = triton.cdiv(n, s.block_n)
    rows = triton.cdiv(m, s.block_m)
    # resident: the same number of programs on every column block, each with at least one row block
    if s.resident:
        programs = columns * max(1, min(multiprocessors // columns, rows))
    else:
        programs = min(rows * columns, multiprocessors)
    value_bias, gate_bias = (bias[:n], bias[n:]) if bias is not None else (x, x)  # unread without a bias
    with torch.cuda.device(x.device):  # Triton launches on the current device, which may not be x's
        _geglu_kernel[(programs,)](
            _descriptor(x, [s.block_m, BLOCK_K.value]), _descriptor(weight[:n], [s.block_n, BLOCK_K.value]),
            _descriptor(weight[n:], [s.block_n, BLOCK_K.value]), _descriptor(out, [s.block_m, s.block_n]),
            value_bias, gate_bias, m, n,
            HAS_BIAS=bias is not None, RESIDENT=s.resident, K_TILES=k_tiles, STAGES=s.stages,
            num_warps=4, maxnreg=MAX_REGISTERS,
        )  # fmt: skip
    return out
