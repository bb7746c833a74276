"""A texture reduced to the size the atlas budget gives it, a band of rows at a time.

What: each texel of the result is the mean of the area of the image it covers (partial texels weighted by their
overlap), colours averaged in linear light and weighted by alpha, alpha averaged as it is (the averaging of the
mip levels `a3d_cli.mesh.appearance.box_filtered` makes, with the same weights: `area_weights`, `area_resized`).

Why in bands: a texture is decoded at its full size (Pillow decodes up to `MAX_IMAGE_PIXELS` texels, about 89
million), and averaging in linear light needs float copies of each channel; made of the whole image, those
copies would take several times the decoded image itself. Converted and averaged about `BAND_TEXELS` source
texels at a time (a band of rows; of a very wide image, a tile of columns of it), memory holds the decoded image,
one band and the result, whatever the image's size or shape.

Examples:
    >>> small = reduce_texture(pil_image, (2048, 2048))  # [2048, 2048, 4] uint8  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from a3d_cli.mesh.appearance import linear_levels, linear_to_srgb

BAND_TEXELS = 1 << 22  # source texels converted to RGBA and averaged at a time


def area_weights(n_in: int, n_out: int, start: int = 0, stop: int | None = None) -> object:
    """[stop − start, hi − lo] sparse matrix (scipy CSR) of area weights along one axis, for output texels
    start..stop (all by default) over the source texels they cover, lo = ⌊start · s⌋ to hi = ⌈stop · s⌉,
    s = n_in / n_out: row j holds, for each source texel i, the share of output texel j's span [j·s, (j + 1)·s)
    that texel i covers (each row sums to 1). Built for a range only, so that a texture many times longer than
    its reduction (a strip held to ATLAS_SIDE) is never described in one matrix as long as the texture."""
    from scipy.sparse import csr_matrix

    stop = n_out if stop is None else stop
    step = n_in / n_out
    j = np.arange(start, stop + 1, dtype=np.int64)
    edges = j.astype(np.float64) * n_in / n_out  # [n + 1] exact where the ratio is whole
    lo = _first(j[:-1], n_in, n_out)  # [n] first source texel of each output texel
    hi = _last(j[1:], n_in, n_out)  # [n] one past its last
    counts = hi - lo
    rows = np.repeat(np.arange(stop - start), counts)  # [nnz]
    starts = np.repeat(np.cumsum(counts) - counts, counts)  # [nnz] where each row's entries begin
    cols = np.arange(len(rows)) - starts + lo[rows]  # [nnz]
    overlap = np.minimum(cols + 1.0, edges[1:][rows]) - np.maximum(cols.astype(np.float64), edges[:-1][rows])
    first, last = _first(start, n_in, n_out), int(_last(stop, n_in, n_out))
    return csr_matrix(((overlap / step).astype(np.float32), (rows, cols - first)), shape=(stop - start, last - first))


def _first(j: Any, n_in: int, n_out: int) -> Any:
    """The first source texel output texel j covers: ⌊j · n_in / n_out⌋, in whole numbers (j an int or array)."""
    return j * n_in // n_out


def _last(j: Any, n_in: int, n_out: int) -> Any:
    """One past the last source texel that output texels before j cover: ⌈j · n_in / n_out⌉, in whole numbers."""
    return np.minimum(n_in, -(-j * n_in // n_out))


def reduce_texture(image: object, size: tuple[int, int]) -> np.ndarray:
    """`image` averaged down to `size` (module doc), in bands of rows.

    Args:
        image: a Pillow image (any mode; converted to RGBA a band at a time) or an [H, W, C] uint8 sRGB array
            (C = 3 or 4).
        size: (rows, columns), none larger than the image's.

    Returns:
        [rows, columns, 4] uint8 for a Pillow image, [rows, columns, C] for an array.
    """
    rows, columns = int(size[0]), int(size[1])
    if isinstance(image, np.ndarray):
        height, width, channels = image.shape
    else:
        width, height = image.size  # type: ignore[attr-defined]
        channels = 4
    out = np.empty((rows, columns, channels), np.uint8)
    deep = -(-height // rows)  # source rows one output row covers, at most
    tile = max(1, math.floor(BAND_TEXELS * columns / max(1, width * deep)))  # output columns a tile makes (one, mostly)
    for left in range(0, columns, tile):
        right = min(columns, left + tile)
        across = area_weights(width, columns, left, right)  # [w, W'] the tile's columns
        span = across.shape[1]  # type: ignore[attr-defined]
        band = max(1, math.floor(BAND_TEXELS * rows / max(1, span * height)))  # output rows a band makes
        for start in range(0, rows, band):
            stop = min(rows, start + band)
            first, last = _first(start, height, rows), int(_last(stop, height, rows))
            source = _block(image, (first, last), (_first(left, width, columns), span))  # [r, W', C] uint8
            out[start:stop, left:right] = _averaged(source, across, area_weights(height, rows, start, stop))
    return out


def downscale(texture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An [H, W, C] uint8 texture reduced to `size` (`reduce_texture`; the size from
    `a3d_cli.mesh.appearance.reduced_size`), the texture itself when `size` is its own."""
    return texture if tuple(size) == tuple(texture.shape[:2]) else reduce_texture(texture, size)


def _block(image: object, rows: tuple[int, int], columns: tuple[int, int]) -> np.ndarray:
    """Rows first..last and `count` columns from `start` (`rows` = (first, last), `columns` = (start, count)) of
    an array, or of a Pillow image as RGBA (`appearance.as_rgba_uint8`)."""
    (first, last), (start, count) = rows, columns
    if isinstance(image, np.ndarray):
        return image[first:last, start : start + count]
    from a3d_cli.mesh.appearance import as_rgba_uint8

    return as_rgba_uint8(image.crop((start, first, start + count, last)))  # type: ignore[attr-defined]


def _averaged(source: np.ndarray, across: object, down: object) -> np.ndarray:
    """[h, w, C] uint8: the band `source` [r, W, C] averaged across (`across` [w, W]) and down (`down` [h, r])."""
    channels = source.shape[2]

    def reduced(plane: np.ndarray) -> np.ndarray:  # [r, W] → [h, w]: down the rows first, so the transposed copy is small
        return (across @ (down @ plane).T).T  # type: ignore[operator]

    out = np.empty((down.shape[0], across.shape[0], channels), np.uint8)  # type: ignore[attr-defined]
    alpha = cover = None
    if channels == 4 and (source[..., 3] < 255).any():
        alpha = source[..., 3].astype(np.float32) / 255.0  # [r, W]
        cover = reduced(alpha)  # [h, w] mean alpha
        out[..., 3] = np.round(np.clip(cover, 0.0, 1.0) * 255.0)
    elif channels == 4:
        out[..., 3] = 255
    decode = linear_levels().astype(np.float32)  # [256]
    for ch in range(3):
        linear = decode[source[..., ch]]  # [r, W]
        mean = reduced(linear)
        if cover is not None:  # colours weighted by alpha; a texel over transparent texels only takes their mean
            seen = cover > 0
            mean = np.where(seen, np.divide(reduced(linear * alpha), cover, out=np.zeros_like(cover), where=seen), mean)
        out[..., ch] = np.round(linear_to_srgb(mean) * 255.0)
    return out


def area_resized(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[rows, columns] float32: a float plane [H, W] averaged down to `size` by area (`area_weights`), none larger
    than the plane's.

    A side that exactly halves averages its pairs of texels directly: the same weights, ½ each, without building
    and applying a sparse matrix, which would take several times as long on a large level. Columns are halved
    before rows; a side of any other length is reduced after the rows, transposed (the sparse product runs down
    rows), when the copy is smallest."""
    rows, columns = int(size[0]), int(size[1])
    if plane.shape[1] == 2 * columns:
        plane = (plane[:, 0::2] + plane[:, 1::2]) * np.float32(0.5)
    if plane.shape[0] != rows:
        plane = _down(plane, rows)
    if plane.shape[1] != columns:  # a side of odd length: transposed, after the rows (the smaller copy)
        plane = np.ascontiguousarray(_down(np.ascontiguousarray(plane.T), columns).T)
    return plane


def _down(plane: np.ndarray, rows: int) -> np.ndarray:
    """[rows, W] float32: a float plane [H, W] averaged down its rows to `rows` (`area_resized`)."""
    if plane.shape[0] == 2 * rows:
        return (plane[0::2] + plane[1::2]) * np.float32(0.5)
    return np.asarray(area_weights(plane.shape[0], rows) @ plane, dtype=np.float32)
