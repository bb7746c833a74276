"""The slots of a fixed-length tile list in one Triton kernel (CUDA): each slot finds its splat and writes its entry.

Why: written with PyTorch ops, filling the list's slots (find the owning splat, its tile, the id, or a filler)
is about twenty passes over the whole list plus a search, several times the cost of gsplat's own list. Here
one program per block of slots does the search (a binary search over the splats' cumulative counts) and
writes each slot's id and flat index once. The numbers are `a3d_cli.kernels.tile_lists.expand_slots_torch`'s;
the layout is described in `a3d_cli.kernels.tile_lists`.

Only imported on CUDA machines (`a3d_cli.kernels.tile_lists` imports it lazily).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK = 1024
"""Slots per program."""


@triton.jit(  # one compiled kernel for every list size (Triton would otherwise specialise on sizes divisible by 16)
    do_not_specialize=[
        "splats_total", "capacity", "search_steps", "splats_per_image", "n_images", "n_tiles", "tile_width",
        "image_shift", "filler",
    ]
)  # fmt: skip
def _slots_kernel(
    ends_ptr,
    starts_ptr,
    width_ptr,
    first_tile_ptr,
    base_ptr,
    ids_ptr,
    flat_ptr,
    splats_total,
    capacity,
    search_steps,
    splats_per_image,
    n_images,
    n_tiles,
    tile_width,
    image_shift,
    filler,
    BLOCK: tl.constexpr,
):
    slot = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    in_range = slot < capacity
    last = splats_total - 1
    total = tl.load(ends_ptr + last)
    # the first splat whose cumulative count exceeds the slot (upper bound of `slot` in `ends`)
    lo = tl.zeros([BLOCK], dtype=tl.int64)
    hi = tl.zeros([BLOCK], dtype=tl.int64) + splats_total
    for _ in range(search_steps):
        mid = (lo + hi) // 2
        value = tl.load(ends_ptr + tl.minimum(mid, last))
        active = lo < hi
        lo_next = tl.where(active & (value <= slot), mid + 1, lo)
        hi = tl.where(active & (value > slot), mid, hi)
        lo = lo_next
    owner = tl.minimum(lo, last)
    rank = slot - tl.load(starts_ptr + owner)
    width = tl.load(width_ptr + owner)
    row = rank // width
    tile = tl.load(first_tile_ptr + owner) + row * tile_width + (rank - row * width)
    real_id = tl.load(base_ptr + owner) | (tile << 32)
    filler_image = slot % n_images
    filler_tile = (slot // n_images) % n_tiles
    low_ones = (tl.full([BLOCK], 1, tl.int64) << 32) - 1
    filler_id = (filler_image << image_shift) | (filler_tile << 32) | low_ones
    is_real = slot < total
    ids = tl.where(is_real, real_id, filler_id)
    flat = tl.where(is_real, owner, filler_image * splats_per_image + filler)
    tl.store(ids_ptr + slot, ids, mask=in_range)
    tl.store(flat_ptr + slot, flat.to(tl.int32), mask=in_range)


def expand_slots_triton(
    ends: Tensor,
    starts: Tensor,
    width: Tensor,
    first_tile: Tensor,
    base: Tensor,
    capacity: int,
    splats_per_image: int,
    n_images: int,
    n_tiles: int,
    tile_width: int,
    tile_bits: int,
    filler: int,
) -> tuple[Tensor, Tensor]:
    """(ids [capacity] int64, flat [capacity] int32), unsorted; the arguments as `expand_slots_torch` takes them."""
    ids = torch.empty(capacity, dtype=torch.int64, device=ends.device)
    flat = torch.empty(capacity, dtype=torch.int32, device=ends.device)
    splats = ends.numel()
    _slots_kernel[(triton.cdiv(capacity, BLOCK),)](
        ends, starts, width, first_tile, base, ids, flat,
        splats, capacity, splats.bit_length(), splats_per_image, n_images, n_tiles, tile_width,
        32 + tile_bits, filler, BLOCK=BLOCK,
    )  # fmt: skip
    return ids, flat


__all__ = ["expand_slots_triton"]
