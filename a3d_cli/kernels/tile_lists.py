"""Tile-intersection lists of a fixed length, so that a gsplat render needs no host read.

gsplat sorts every (splat, tile) overlap of a render into one list per tile before it composites. Its
`isect_tiles` counts the overlaps, reads the count back to the host to allocate the list, then fills and
sorts it: the host waits for the GPU at every render, and a training loop can never run ahead of the
device. Here the same lists are built at a length fixed beforehand (`capacity`), entirely on the device:

- every splat with a positive radius covers the rectangle of tiles gsplat's kernel computes (tile_min =
  clamp(floor(t - r), 0, W), tile_max = clamp(ceil(t + r), 0, W) in tile units), its tiles listed row by
  row, splats in flat [image, splat] order, each entry keyed image | tile | depth bits exactly as gsplat
  keys it, and the list sorted stably (gsplat's radix sort is stable too): the real entries come out in
  gsplat's order, so the render is the same;
- the slots past the real entries are *filler*: spread round-robin over every tile of every image, keyed
  behind all of that tile's real entries (depth bits 0xFFFFFFFF), and pointing at one extra splat per
  image, index N, which the caller gives opacity 0, so the rasterizer loads and skips them;
- a render that needs more entries than the capacity keeps the first `capacity` in flat order (the
  last images lose the rest of their overlaps) and says so in `needed`, which the caller reads back only
  now and then (`TileBudget`).

`tile_lists` runs anywhere PyTorch does (it is tested on the CPU against gsplat's own PyTorch statement of
`isect_tiles`); the rasterizer that consumes it is gsplat's (`rasterize_gsplat`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

FILLER_DEPTH_BITS = 0xFFFFFFFF
"""Depth key of the filler entries: behind every real entry of their tile (real depths are positive floats)."""


@dataclass(frozen=True)
class TileLists:
    """Sorted tile-intersection lists of a fixed length.

    Attributes:
        isect_ids: [capacity] int64, sorted keys image << (32 + tile bits) | tile << 32 | depth bits.
        flatten_ids: [capacity] int32 indices into the [I, N + 1] splats of the render (N + 1: each image's
            splat N is the opacity-0 filler).
        needed: 0-d int64, the overlaps the render has; above the capacity, the last ones were dropped.
    """

    isect_ids: Tensor
    flatten_ids: Tensor
    needed: Tensor


def tile_rects(means2d: Tensor, radii: Tensor, tile_size: int, tile_width: int, tile_height: int) -> tuple[Tensor, Tensor]:
    """Each splat's inclusive-exclusive tile rectangle, as gsplat's intersection kernel computes it.

    Args:
        means2d: [I, N, 2] float32 pixel centres; radii: [I, N, 2] int32 pixel radii (≤ 0 = culled).

    Returns:
        (tile_min [I, N, 2] int64 (x, y), extent [I, N, 2] int64 tiles across; 0 for culled splats).
    """
    r = radii.to(torch.float32) / tile_size
    t = means2d.to(torch.float32) / tile_size
    lim = torch.tensor([tile_width, tile_height], device=means2d.device, dtype=torch.float32)
    lo = torch.minimum(torch.floor(t - r).clamp_min(0), lim)
    hi = torch.minimum(torch.ceil(t + r).clamp_min(0), lim)
    visible = ((radii[..., 0] > 0) & (radii[..., 1] > 0))[..., None]
    extent = torch.where(visible, (hi - lo).to(torch.int64), 0)
    return lo.to(torch.int64), extent


def tile_overlaps(means2d: Tensor, radii: Tensor, tile_size: int, tile_width: int, tile_height: int) -> Tensor:
    """0-d int64: how many (splat, tile) overlaps a render has (the list length gsplat would allocate)."""
    _, extent = tile_rects(means2d, radii, tile_size, tile_width, tile_height)
    return (extent[..., 0] * extent[..., 1]).sum()


def tile_lists(
    means2d: Tensor,  # [I, N, 2]
    radii: Tensor,  # [I, N, 2] int32
    depths: Tensor,  # [I, N] float32
    tile_size: int,
    tile_width: int,
    tile_height: int,
    capacity: int,
) -> TileLists:
    """gsplat's sorted tile-intersection lists at a fixed length, built without reading anything back.

    Args:
        means2d, radii, depths: the projection's outputs for I images of N splats (unpacked layout).
        tile_size: tile side in pixels; tile_width, tile_height: tiles across and down.
        capacity: the lists' length (≥ 1).

    Returns:
        TileLists; its flatten_ids index [I, N + 1] splats (see the module docstring).
    """
    images, n = depths.shape
    dev = depths.device
    n_tiles = tile_width * tile_height
    tile_bits = n_tiles.bit_length()
    if (images - 1).bit_length() + tile_bits > 32:
        raise ValueError(f"{images} images of {n_tiles} tiles do not fit gsplat's 32-bit image|tile key")
    lo, extent = tile_rects(means2d, radii, tile_size, tile_width, tile_height)
    lo, extent = lo.reshape(-1, 2), extent.reshape(-1, 2)
    counts = extent[:, 0] * extent[:, 1]  # [I*N]
    needed = counts.sum()
    # keep the counts that fit (a running total past the capacity is cut), the rest of the list is filler;
    # repeat_interleave is told its output size, so it neither reads back nor writes past the end
    ends = torch.cumsum(counts, 0)
    kept = ends.clamp_max(capacity) - (ends - counts).clamp_max(capacity)
    filler = (capacity - kept.sum()).clamp_min(0).reshape(1)
    reps = torch.cat([kept, filler])
    owner = torch.repeat_interleave(torch.arange(images * n + 1, device=dev), reps, output_size=capacity)
    rank = torch.arange(capacity, device=dev) - (torch.cumsum(reps, 0) - reps)[owner]  # position in its run
    real = owner < images * n
    splat = owner.clamp_max(images * n - 1)
    width = extent[splat, 0].clamp_min(1)
    tile = (lo[splat, 1] + rank // width) * tile_width + lo[splat, 0] + rank % width
    image = torch.div(splat, n, rounding_mode="floor")
    depth_bits = depths.reshape(-1)[splat].contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    # the filler: slot k of the filler run goes to tile k mod (I · tiles), behind that tile's real entries
    slot = rank % (images * n_tiles)
    image = torch.where(real, image, torch.div(slot, n_tiles, rounding_mode="floor"))
    tile = torch.where(real, tile, slot % n_tiles)
    depth_bits = torch.where(real, depth_bits, FILLER_DEPTH_BITS)
    keys = (image << (32 + tile_bits)) | (tile << 32) | depth_bits
    index = torch.where(real, image * (n + 1) + splat - image * n, image * (n + 1) + n)
    keys, order = torch.sort(keys, stable=True)
    return TileLists(isect_ids=keys, flatten_ids=index[order].to(torch.int32), needed=needed)


@dataclass
class TileBudget:
    """The list lengths of repeated renders: sized from a first count, grown when a render needs more.

    A fit renders the same number of images for many steps, with splats that move a little each step.
    The first render of each shape counts its overlaps (one host read) and takes `margin` times that;
    every render adds its `needed` count to a running peak on the device, and `settle` (called every few
    steps, where the caller reads its losses anyway) reads the peaks back, grows any capacity that was
    exceeded, and reports how many renders were cut short.

    Attributes:
        margin: capacity over the first count.
        capacities: per render key (images, splats, width, height), the current list length.
        cut_renders: renders so far that needed more than their capacity (their last overlaps dropped).
    """

    margin: float = 1.5
    capacities: dict[tuple[int, ...], int] = field(default_factory=dict)
    cut_renders: int = 0
    _peaks: dict[tuple[int, ...], Tensor] = field(default_factory=dict)
    _cuts: dict[tuple[int, ...], Tensor] = field(default_factory=dict)

    def capacity(self, key: tuple[int, ...], count: Callable[[], Tensor]) -> int:
        """The list length for renders of `key`; the first call evaluates `count()` (the overlaps) and reads it back."""
        if key not in self.capacities:
            self.capacities[key] = self._rounded(int(count()))
        return self.capacities[key]

    def observe(self, key: tuple[int, ...], needed: Tensor) -> None:
        """Add one render's `needed` to its key's running peak and cut count (on the device, no read)."""
        cap = self.capacities[key]
        peak = self._peaks.get(key)
        self._peaks[key] = needed.clone() if peak is None else torch.maximum(peak, needed)
        cut = (needed > cap).to(torch.int64)
        self._cuts[key] = cut if key not in self._cuts else self._cuts[key] + cut

    def settle(self) -> int:
        """Read the peaks back (one transfer), grow exceeded capacities; returns the renders cut since last time."""
        if not self._peaks:
            return 0
        keys = list(self._peaks)
        values = torch.stack([torch.stack((self._peaks[k], self._cuts[k])) for k in keys]).tolist()
        self._peaks.clear()
        self._cuts.clear()
        cut = 0
        for k, (peak, cuts) in zip(keys, values, strict=True):
            cut += int(cuts)
            if peak > self.capacities[k]:
                self.capacities[k] = self._rounded(int(peak))
        self.cut_renders += cut
        return cut

    def _rounded(self, count: int) -> int:
        """`margin` × count, rounded up to a multiple of 4096 (at least 4096)."""
        return max(4096, math.ceil(self.margin * count / 4096) * 4096)
