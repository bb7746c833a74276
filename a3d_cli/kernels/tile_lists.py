"""Tile-intersection lists of a fixed length, built on the device without reading anything back.

Why: gsplat's `isect_tiles` sizes its list from the data (it reads the total back to the host), so a
render through it cannot be recorded as a CUDA graph and every call waits for the device. Here the list
has a length fixed beforehand (`capacity`): the real entries come first, exactly as gsplat writes them
(same ids, same order after the sort), and the slots after them are *fillers*: entries of a splat whose
opacity is 0 (the caller's filler splat, which the rasterizer skips), spread over every image's tiles and
sorted after the real entries of their tile, so each tile pays a few skipped entries at most. The true
total comes back as a device tensor; a list whose total exceeded its capacity lost its last entries (those
of the last images), which the caller detects by comparing the total with the capacity when it next
reads values back.

Layout (gsplat's, `gsplat/cuda/csrc/IntersectTile.cu`): an intersection id is
`image << (32 + tile_bits) | tile << 32 | depth bits (float32 reinterpreted, zero-extended)`, with
`image_bits = floor(log2 I) + 1` and `tile_bits = floor(log2 T) + 1`; the flat index is
`image · N + splat`; a splat with radii (rx, ry) > 0 at pixel (x, y) covers the tiles
`clamp(floor((x - rx) / s), 0, W) ≤ tx < clamp(ceil((x + rx) / s), 0, W)` and the same in y, row-major.

Examples:
    >>> lists = fixed_tile_lists(means2d, radii, depths, 16, 16, 16, capacity=1 << 20, filler=n - 1)  # doctest: +SKIP
    >>> offsets = tile_offsets(lists.isect_ids, means2d.shape[0], 16, 16)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

FILLER_DEPTH_BITS = 0xFFFFFFFF
"""Depth bits of a filler entry: above every real depth's, so fillers sort after a tile's real entries."""


@dataclass(frozen=True)
class TileLists:
    """Sorted intersection lists of fixed length.

    Attributes:
        isect_ids: [capacity] int64, sorted; the real entries and the fillers, in gsplat's encoding.
        flatten_ids: [capacity] int32, the flat splat index (`image · N + splat`) of each entry.
        total: 0-d int64 on the device: how many real entries there are (> capacity = some were dropped).
    """

    isect_ids: Tensor
    flatten_ids: Tensor
    total: Tensor


def id_bits(n_images: int, n_tiles: int) -> tuple[int, int]:
    """(image bits, tile bits) of gsplat's intersection ids for I images of T tiles each."""
    image_bits = int(math.floor(math.log2(n_images))) + 1
    tile_bits = int(math.floor(math.log2(n_tiles))) + 1
    if image_bits + tile_bits > 32:
        raise ValueError(f"{n_images} images of {n_tiles} tiles do not fit gsplat's 32-bit image|tile id")
    return image_bits, tile_bits


def tile_rects(
    means2d: Tensor, radii: Tensor, tile_size: int, tile_width: int, tile_height: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each splat's covered tiles as a half-open rectangle [x0, x1) × [y0, y1), int64, empty where radii ≤ 0.

    means2d: [..., 2] float32 pixels; radii: [..., 2] int32 (gsplat's per-axis radii).
    """
    r = radii.to(torch.float32) / float(tile_size)
    c = means2d.to(torch.float32) / float(tile_size)
    lo = torch.floor(c - r).to(torch.int64)  # a negative float converts to 0 in gsplat's unsigned cast
    hi = torch.ceil(c + r).to(torch.int64)
    x0, x1 = lo[..., 0].clamp(0, tile_width), hi[..., 0].clamp(0, tile_width)  # Python bounds: no device copy
    y0, y1 = lo[..., 1].clamp(0, tile_height), hi[..., 1].clamp(0, tile_height)
    valid = (radii > 0).all(dim=-1)
    return x0, torch.where(valid, x1, x0), y0, torch.where(valid, y1, y0)


def fixed_tile_lists(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    tile_size: int,
    tile_width: int,
    tile_height: int,
    capacity: int,
    filler: int,
    image_mask: Tensor | None = None,
) -> TileLists:
    """The sorted intersection lists of I images of N splats, `capacity` entries long, with no host read.

    Args:
        means2d: [I, N, 2], radii: [I, N, 2] int32, depths: [I, N]: gsplat's unpacked projection.
        tile_size, tile_width, tile_height: the tiling (tiles per row and column).
        capacity: the list length; entries past it are dropped (`TileLists.total` tells).
        filler: the splat index (0 … N−1) whose entries fill the free slots; it must have opacity 0 in the
            render and a valid projection (finite conic) in every image. Its own tiles are never listed.
        image_mask: [I] bool; images where it is False list no splat (their tiles hold fillers only).
    """
    n_images, n = means2d.shape[0], means2d.shape[1]
    n_tiles = tile_width * tile_height
    _, tile_bits = id_bits(n_images, n_tiles)
    dev = means2d.device
    x0, x1, y0, y1 = tile_rects(means2d, radii, tile_size, tile_width, tile_height)  # [I, N] each
    counts = (x1 - x0) * (y1 - y0)  # [I, N]
    counts = counts * (torch.arange(n, device=dev) != filler)  # no scalar copy: a recording may hold this
    if image_mask is not None:
        counts = counts * image_mask[:, None]
    counts = counts.flatten()
    ends = counts.cumsum(0)  # [I·N]
    # per splat, what its slots share: first slot, rectangle width, first tile, and image | depth bits
    starts = ends - counts
    width = (x1 - x0).flatten().clamp(min=1)
    first_tile = (y0 * tile_width + x0).flatten()
    image = torch.arange(n_images, device=dev)[:, None]
    depth_bits = depths.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF  # [I, N]
    base = ((image << (32 + tile_bits)) | depth_bits).flatten()
    expand = _slot_expander(dev.type)
    ids, flat = expand(ends, starts, width, first_tile, base, capacity, n, n_images, n_tiles, tile_width, tile_bits, filler)
    ids, order = torch.sort(ids, stable=True)
    return TileLists(ids, flat.index_select(0, order), ends[-1])


@functools.lru_cache(maxsize=2)
def _slot_expander(device_type: str) -> Callable[..., tuple[Tensor, Tensor]]:
    """The Triton slot kernel on CUDA where Triton imports (it ships with PyTorch's Linux CUDA builds), else
    the PyTorch version: same numbers, more passes."""
    if device_type == "cuda":
        try:
            from a3d_cli.kernels.tile_lists_triton import expand_slots_triton  # noqa: PLC0415 - CUDA only
        except ImportError:
            return expand_slots_torch
        return expand_slots_triton
    return expand_slots_torch


def expand_slots_torch(
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
    """Every slot's entry, unsorted: (ids [capacity] int64, flat [capacity] int32).

    Per splat g (flat, I·N of them): `ends` its cumulative tile count, `starts` = ends − count, `width` its
    rectangle's width (≥ 1), `first_tile` its rectangle's first tile, `base` = image << (32 + tile bits) | depth
    bits. Slot j < total belongs to the splat whose range [start, end) holds it and takes that splat's
    (j − start)-th tile, row-major; a slot past the total is a filler (`fixed_tile_lists`). The reference of
    `a3d_cli.kernels.tile_lists_triton.expand_slots_triton`.
    """
    dev = ends.device
    slots = torch.arange(capacity, device=dev)
    owner = torch.searchsorted(ends, slots, right=True).clamp(max=ends.numel() - 1)  # the splat filling each slot
    k = slots - starts[owner]  # the slot's rank among its splat's tiles (row-major)
    w = width[owner]
    row = torch.div(k, w, rounding_mode="floor")
    tile = first_tile[owner] + row * tile_width + (k - row * w)
    real_ids = base[owner] | (tile << 32)
    filler_image = slots % n_images  # fillers spread over every image's tiles
    filler_tile = torch.div(slots, n_images, rounding_mode="floor") % n_tiles
    filler_ids = (filler_image << (32 + tile_bits)) | (filler_tile << 32) | FILLER_DEPTH_BITS
    is_real = slots < ends[-1]
    ids = torch.where(is_real, real_ids, filler_ids)
    flat = torch.where(is_real, owner, filler_image * splats_per_image + filler)
    return ids, flat.to(torch.int32)


def tile_offsets(isect_ids: Tensor, n_images: int, tile_width: int, tile_height: int) -> Tensor:
    """[I, tile_height, tile_width] int32: where each tile's entries start in the sorted list (gsplat's offsets)."""
    n_tiles = tile_width * tile_height
    _, tile_bits = id_bits(n_images, n_tiles)
    dev = isect_ids.device
    image = torch.arange(n_images, device=dev)[:, None]
    tile = torch.arange(n_tiles, device=dev)[None, :]
    first_ids = (image << (32 + tile_bits)) | (tile << 32)  # [I, T]: the smallest id of each tile
    starts = torch.searchsorted(isect_ids, first_ids.flatten())
    return starts.to(torch.int32).view(n_images, tile_height, tile_width)


__all__ = [
    "FILLER_DEPTH_BITS",
    "TileLists",
    "expand_slots_torch",
    "fixed_tile_lists",
    "id_bits",
    "tile_offsets",
    "tile_rects",
]
