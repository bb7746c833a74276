"""Colour handling for meshes: colour spaces, texture sampling and a small texture-atlas packer.

Why: splat colours must match what a glTF viewer shows. glTF stores base-colour textures in sRGB but
base-colour factors and COLOR_0 vertex colours as *linear* multipliers, so factors are applied to linearised
texels and the product is converted back to sRGB. Everything a3d keeps in memory is sRGB display colour. A material's
emitted colour (glTF `emissiveFactor` × `emissiveTexture`) adds to it in linear light, clamped to [0, 1]
(`add_emission`): an approximation of what a viewer shows, the lit base colour plus the emission.

UV convention (trimesh's): origin at the bottom-left of the image, v grows upwards; texel (row i, column j)
has its centre at u = (j + 0.5) / W, v = 1 - (i + 0.5) / H.

Wrap modes (glTF's sampler `wrapS` / `wrapT`): coordinates outside [0, 1] repeat the image (REPEAT, glTF's
default and OBJ's), mirror it in every other cell (MIRRORED_REPEAT) or take the edge texel (CLAMP_TO_EDGE);
the texture transform applies before wrapping. `sample_texture` honours the mode per sample. A texture packed
into an atlas cannot wrap there, so `extend_texture` bakes the mode into an image covering the texels the
coordinates reach (and the neighbours bilinear filtering reads), and `TexelWindow.to_unit` maps them into it
affinely: a face whose coordinates cross a cell border keeps its colours, where wrapping each vertex on its
own would sweep the face across the image.

Magnification filter (glTF's sampler `magFilter`): LINEAR (bilinear, the default and OBJ's) or NEAREST, the
texel whose square holds the point, as pixel-art, voxel and low-poly assets ask so that texels stay crisp
(Blender's "Closest", three.js's NearestFilter). Only the two values glTF defines count; anything else reads
as LINEAR. An atlas is read with one filter: a NEAREST texture packed beside LINEAR ones is first enlarged by
replicating each texel (`replicate_texels`), so that bilinear reading blends neighbours only within a band
1/k of a texel wide.

Minification: a splat stands for the surface between it and its neighbours, so where many texels fall between
two splats (a 4096² texture under 20,000 splats) a lookup at one point would pick one of them at random and
the views would show that noise. `sample_mipmapped` reads a mip chain (`mip_chain`: halvings box-filtered in
linear light, colours weighted by alpha) at the level whose texels are as far apart as the splats, blending the two levels around it,
as a GPU's trilinear mipmapping does; a sampler's `minFilter` is not followed (a3d's colour is what the asset
shows from a distance, not a renderer's aliasing). An atlas gets one chain per packed image
(`SurfaceMesh.islands`), so that coarse levels never blend an image with its neighbours or the atlas's gaps.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

WINDOW_SIZE = 4096  # an extended texture's side holds at most this many texels, or two copies of the texture (`texel_window`)
ATLAS_PADDING = 2  # texels of edge padding around each image in a packed atlas
REPEAT, CLAMP_TO_EDGE, MIRRORED_REPEAT = 10497, 33071, 33648  # glTF sampler wrap modes (OpenGL enums)
WRAP_MODES = (REPEAT, CLAMP_TO_EDGE, MIRRORED_REPEAT)
Wrap = tuple[int, int]  # (wrapS, wrapT): the mode along u, then along v
REPEAT_BOTH: Wrap = (REPEAT, REPEAT)
NEAREST, LINEAR = 9728, 9729  # glTF sampler magnification filters (OpenGL enums)
MAG_FILTERS = (NEAREST, LINEAR)
REPLICATED_SIZE = 2048  # a NEAREST texture packed beside LINEAR ones is enlarged to at most this many texels a side
MAX_REPLICATION = 16  # ... and by at most this factor (its blend band is then 1/16 of a texel wide)
REPLICATED_TEXELS = REPLICATED_SIZE * REPLICATED_SIZE  # ... the NEAREST textures of one atlas together at most this
ROUNDING = 1e-9  # a reduced side this close below a whole number is that number (`reduced_size`)
MIP_BAND_TEXELS = 4096 * 4096  # mip levels of more texels are halved a band of rows at a time (`mip_chain`)
ATLAS_TEXELS = 8192 * 8192  # the textures of one asset together at most this (256 MB as RGBA): `texel_cap`
ATLAS_IMAGE_TEXELS = ATLAS_TEXELS * 4 // 3
"""The most texels one atlas image a3d writes holds, its textures' edge padding, the gaps between them and their
copies for coordinates outside [0, 1] included (`a3d_cli.mesh.surface.concatenate` keeps to it, and
`a3d_cli.mesh.store.load_processed_mesh` refuses a processed mesh whose images declare more): 89,478,485, Pillow's
default `MAX_IMAGE_PIXELS`, so that the atlas is an image a3d decodes again."""
SHELF_WIDTH_STEPS = 64  # shelf widths tried grow by at least 1/64 at a time (`_shelf_layouts`)
SQUARER_SHARE = 100  # a squarer atlas is kept over one of up to 1/100 fewer texels (`shelf_layout`)
ATLAS_SIDE = 16384
"""The longest side, in texels, of any texture image a3d writes (a texture kept as it is, or the packed atlas): the
largest 2D texture GPUs load. Direct3D 11 and 12 require every device to load this and refuse a larger texture,
Unity supports no larger texture whatever the GPU reports, Godot's renderer refuses one, and Unreal's renderer
counts at most 15 mip levels (16384 texels); a larger one shows untextured or fails to load, however few texels it holds (a
20000 × 512 strip is within the texel budget). 8192 would reach older phones and WebGL on them, but would also
reduce textures every desktop engine loads, among them the common atlas of four 4096² textures (8200 texels wide
with its padding); a viewer on a smaller device downscales what it cannot load (three.js does, with a warning) or
imports it at a size its user sets. Images are held to it by the texel budget's reduction (`capped_sizes`' `side`)."""


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear values in [0, 1] (IEC 61966-2-1)."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] → sRGB-encoded values in [0, 1]."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def apply_linear_factor(image: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Multiply an sRGB RGBA texture by a linear RGBA factor, as a glTF viewer does.

    Uses one 256-entry lookup table per channel, so an 8k texture costs no float copy of itself.

    Args:
        image: [H, W, 4] uint8 sRGB (alpha linear).
        factor: [4] float linear multipliers in [0, 1].

    Returns:
        [H, W, 4] uint8.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0  # [256]
    out = np.empty_like(image)
    for ch in range(4):
        f = float(factor[ch])
        if f == 1.0:
            out[..., ch] = image[..., ch]
            continue
        lut = levels * f if ch == 3 else linear_to_srgb(srgb_to_linear(levels) * f)  # [256]
        out[..., ch] = np.round(lut * 255.0).astype(np.uint8)[image[..., ch]]
    return out


def linear_levels() -> np.ndarray:
    """[256] the linear value of each 8-bit sRGB level."""
    return srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0)


def linear_mean(image: np.ndarray) -> np.ndarray:
    """[3] the mean linear RGB of an sRGB image [H, W, C ≥ 3] uint8: the colour a viewer shows of it from afar
    (averaged as light is, after decoding sRGB)."""
    levels = linear_levels()
    count = max(1, image.shape[0] * image.shape[1])
    return np.array([np.bincount(image[..., ch].ravel(), minlength=256) @ levels / count for ch in range(3)])


def add_emission(
    base: np.ndarray, emission: np.ndarray | None, factor: np.ndarray, rows: int = 256, emission_filter: int = LINEAR
) -> np.ndarray:
    """A base-colour texture plus glTF emission, as one sRGB texture: sRGB(clip(linear(base) + factor ·
    linear(emission), 0, 1)) per texel, alpha the base's.

    Why a sum: a glTF viewer shows the lit base colour plus the emitted colour; a3d's colour is the display
    colour under neutral light, so the emission adds to the base colour in linear light, clamped to what a
    display shows. The emission image is read at each base texel's centre (`sample_texture`, with the
    emissive sampler's magnification filter), so it must use the base texture's texture coordinates; the
    result has the base texture's resolution.

    Args:
        base: [H, W, 4] uint8 sRGB, the base colour with its factor applied; or, for a material without a
            base-colour texture, its [4] linear RGBA factor (the result then has the emission image's size).
        emission: [h, w, C ≥ 3] uint8 sRGB emissive image, or None for the factor alone (only with a
            texture as `base`).
        factor: [3] linear emissive factor (its strength folded in), ≥ 0.
        rows: texel rows worked on at a time (bounds the float copies of a large texture).
        emission_filter: the emissive texture's `magFilter`, NEAREST or LINEAR.

    Returns:
        [H, W, 4] uint8.
    """
    levels = linear_levels()
    factor = np.asarray(factor, dtype=np.float64)[:3]
    if base.ndim == 1:  # a colour: the emission image, tinted, on it
        colour = np.asarray(base, dtype=np.float64)
        out = np.empty((*emission.shape[:2], 4), dtype=np.uint8)  # type: ignore[union-attr]
        out[..., 3] = round(float(np.clip(colour[3], 0.0, 1.0)) * 255.0)
    else:
        out = base.copy()
    h, w = out.shape[:2]
    u = (np.arange(w, dtype=np.float64) + 0.5) / w  # [W] texel centres (module doc's convention)
    for start in range(0, h, rows):
        stop = min(h, start + rows)
        light = colour[:3] if base.ndim == 1 else levels[base[start:stop, :, :3]]  # [3] or [r, W, 3]
        if emission is None:
            light = light + factor
        else:
            v = 1.0 - (np.arange(start, stop, dtype=np.float64) + 0.5) / h  # [r]
            uv = np.stack(np.broadcast_arrays(u[None, :], v[:, None]), axis=-1).reshape(-1, 2)  # [r·W, 2]
            glow = srgb_to_linear(sample_texture(emission, uv, mag_filter=emission_filter)[:, :3]).reshape(stop - start, w, 3)
            light = light + glow * factor
        out[start:stop, :, :3] = np.round(linear_to_srgb(light) * 255.0).astype(np.uint8)  # clipped to [0, 1] first
    return out


def as_rgba_uint8(image: object) -> np.ndarray:
    """A PIL image (any mode) or array as [H, W, 4] uint8, at its own size (the atlas budget, not this, decides
    how large a texture a3d keeps: `texel_cap`)."""
    from PIL import Image

    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    return np.ascontiguousarray(np.asarray(pil.convert("RGBA"), dtype=np.uint8))


def _wrap_unit(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] unchanged (1.0 stays the right/top edge), others wrapped into [0, 1)."""
    return np.where((t >= 0.0) & (t <= 1.0), t, np.mod(t, 1.0))


def wrap_coordinate(t: np.ndarray, mode: int) -> np.ndarray:
    """Texture coordinates along one axis brought into [0, 1] as a sampler with wrap mode `mode` reads them.

    REPEAT: the fractional part (values in [0, 1] unchanged); CLAMP_TO_EDGE: clipped to [0, 1] (bilinear
    lookups then take the edge texel); MIRRORED_REPEAT: t in cells of even index, 1 − frac(t) in odd ones,
    which is continuous and of period 2. Since the image is the same along both axes' directions in glTF's
    top-left and trimesh's bottom-left origins (mirroring commutes with v → 1 − v), this holds in either.
    """
    if mode == CLAMP_TO_EDGE:
        return np.clip(t, 0.0, 1.0)
    if mode == MIRRORED_REPEAT:
        m = np.mod(t, 2.0)
        return np.where(m > 1.0, 2.0 - m, m)
    return _wrap_unit(t)


def sample_texture(texture: np.ndarray, uv: np.ndarray, wrap: Wrap = REPEAT_BOTH, mag_filter: int = LINEAR) -> np.ndarray:
    """Texture lookup, bilinear (LINEAR) or of the nearest texel (NEAREST): coordinates outside [0, 1] wrap by
    the sampler's modes (`wrap_coordinate`), and the lookup never blends across the image border (an atlas
    island touching u = 0 must not pick up colour from u = 1).

    Args:
        texture: [H, W, C] uint8.
        uv: [S, 2] texture coordinates (trimesh convention, see module doc).
        wrap: (wrapS, wrapT) glTF wrap modes.
        mag_filter: NEAREST or LINEAR, the glTF sampler's `magFilter`.

    Returns:
        [S, C] float32 in [0, 1].
    """
    h, w = texture.shape[:2]
    u, v = wrap_coordinate(uv[:, 0], wrap[0]), wrap_coordinate(uv[:, 1], wrap[1])  # [S] each in [0, 1]
    if mag_filter == NEAREST:  # the texel whose square [j, j + 1) holds the point; 1.0 is the last one's edge
        col = np.clip(np.floor(u * w), 0, w - 1).astype(np.int64)  # [S]
        row = np.clip(np.floor((1.0 - v) * h), 0, h - 1).astype(np.int64)  # [S]
        return (texture[row, col] / 255.0).astype(np.float32)
    x = np.clip(u * w - 0.5, 0.0, w - 1.0)  # [S] continuous column, texel centres at integers
    y = np.clip((1.0 - v) * h - 0.5, 0.0, h - 1.0)  # [S] continuous row
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]  # [S, 1]
    x0i, y0i = x0.astype(np.int64), y0.astype(np.int64)
    x1i, y1i = np.minimum(x0i + 1, w - 1), np.minimum(y0i + 1, h - 1)
    tex = texture.astype(np.float32) if texture.size <= 4 * 1024 * 1024 else texture
    top = tex[y0i, x0i] * (1 - fx) + tex[y0i, x1i] * fx  # [S, C]
    bottom = tex[y1i, x0i] * (1 - fx) + tex[y1i, x1i] * fx  # [S, C]
    return ((top * (1 - fy) + bottom * fy) / 255.0).astype(np.float32)


def mip_chain(texture: np.ndarray) -> list[np.ndarray]:
    """The texture and its successive halvings, down to one texel: level k + 1 is level k averaged down to half
    its size (rounded up), each new texel the mean of the area of level k it covers (partial texels by their
    overlap: of an odd side, the middle texel is shared between its two neighbours), colours averaged in linear
    light (as a viewer averages what it shows) and weighted by alpha, alpha averaged as it is (`box_filtered`).

    A level of more than MIP_BAND_TEXELS texels is halved a band of rows at a time instead
    (`a3d_cli.mesh.texture_reduce.reduce_texture`: the same area weights and averaging, from its 8-bit texels),
    so that the float copies `box_filtered` makes of a whole level never exceed that size: a texture as large as
    the atlas budget would otherwise need about a gigabyte of them.

    Args:
        texture: [H, W, C] uint8 sRGB (C = 3 or 4).

    Returns:
        [level 0 = texture, [⌈H/2⌉, ⌈W/2⌉, C], …, [1, 1, C]] uint8.
    """
    from a3d_cli.mesh.texture_reduce import reduce_texture

    levels = [texture]
    while levels[-1].shape[0] * levels[-1].shape[1] > MIP_BAND_TEXELS:
        levels.append(reduce_texture(levels[-1], halving_sizes(levels[-1].shape[:2], 1)[0]))
    return [*levels, *box_filtered(levels[-1], halving_sizes(levels[-1].shape[:2], 0))]


def halving_sizes(size: tuple[int, ...], count: int) -> list[tuple[int, int]]:
    """[(⌈H/2⌉, ⌈W/2⌉), …] the sizes of `count` successive halvings of an [H, W] image (rounded up), every one
    down to a single texel when `count` is 0."""
    sizes = [(int(size[0]), int(size[1]))]
    while max(sizes[-1]) > 1 and (count <= 0 or len(sizes) <= count):
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    return sizes[1:]


def box_filtered(texture: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """The texture box-filtered to each of `sizes` in turn, each from the one before kept as floats: each texel
    the mean of the area it covers (`a3d_cli.mesh.texture_reduce.area_resized`, the weights `reduce_texture`
    uses: 3 → 2 texels gives each new texel one whole texel and half of the middle one), colours averaged in
    linear light and weighted by alpha, alpha averaged as it is.

    Why weighted by alpha: the colour under a transparent texel is not shown (a leaf or hair card's cut-out is
    often black), so an unweighted mean would darken every coarse texel at a cut-out's edge by that unseen
    colour; the weighted mean (premultiplied averaging, as renderers filter) keeps the visible texels' colour.
    A coarse texel that covers only fully transparent texels takes their unweighted mean.

    Args:
        texture: [H, W, C] uint8 sRGB (C = 3 or 4).
        sizes: (rows, columns) of each result, none larger than the one before.

    Returns:
        one [rows, columns, C] uint8 per size.
    """
    from a3d_cli.mesh.texture_reduce import area_resized

    c = texture.shape[2]
    levels = [np.empty((a, b, c), np.uint8) for a, b in sizes]

    def resized(plane: np.ndarray) -> Iterator[np.ndarray]:
        """The float plane averaged down to each size in turn, each from the one before."""
        for size in sizes:
            plane = area_resized(plane, size)
            yield plane

    coverage: list[np.ndarray] = []  # per level: [a, b] mean alpha, when alpha weights the colours
    if c == 4 and (texture[..., 3] < 255).any():
        alpha = texture[..., 3].astype(np.float32) / 255
        coverage = list(resized(alpha))
        for level, values in zip(levels, coverage, strict=True):
            level[..., 3] = np.round(np.clip(values, 0, 1) * 255)
    elif c == 4:
        for level in levels:
            level[..., 3] = 255
    decode = linear_levels().astype(np.float32)  # [256]
    for ch in range(3):  # one channel at a time: at most two float copies of the texture
        linear = decode[texture[..., ch]]
        if not coverage:
            for level, mean in zip(levels, resized(linear), strict=True):
                level[..., ch] = np.round(linear_to_srgb(mean) * 255)
            continue
        for level, mean, weighted, cover in zip(levels, resized(linear), resized(linear * alpha), coverage, strict=True):
            seen = cover > 0
            mean = np.where(seen, np.divide(weighted, cover, out=np.zeros_like(cover), where=seen), mean)
            level[..., ch] = np.round(linear_to_srgb(mean) * 255)
    return levels


def sample_mipmapped(
    chain: list[np.ndarray], uv: np.ndarray, footprint: np.ndarray, wrap: Wrap = REPEAT_BOTH, mag_filter: int = LINEAR
) -> np.ndarray:
    """Texture lookup averaged over a footprint, as trilinear mipmapping: level of detail log2(footprint),
    the two levels of `chain` around it read (`sample_texture`) and blended; a footprint of at most one texel
    reads the texture itself with `mag_filter`, exactly as `sample_texture` does.

    Args:
        chain: `mip_chain(texture)`.
        uv: [S, 2] texture coordinates (trimesh convention).
        footprint: [S] distance between neighbouring samples, in texels of the texture.
        wrap: (wrapS, wrapT) glTF wrap modes.
        mag_filter: NEAREST or LINEAR, used where the texture is magnified.

    Returns:
        [S, C] float32 in [0, 1].
    """
    top = len(chain) - 1
    lod = np.clip(np.log2(np.maximum(np.nan_to_num(footprint, nan=1.0), 1.0)), 0.0, top)  # [S]
    low = np.floor(lod).astype(np.int64)  # [S]
    blend = (lod - low).astype(np.float32)[:, None]  # [S, 1]
    out = np.empty((len(uv), chain[0].shape[2]), np.float32)
    for k in np.unique(low):
        at = low == k
        value = sample_texture(chain[k], uv[at], wrap, mag_filter if k == 0 else LINEAR)
        if k < top and (blend[at] > 0).any():
            value += (sample_texture(chain[k + 1], uv[at], wrap) - value) * blend[at]
        out[at] = value
    return out


def replication_factors(shapes: list[tuple[int, ...]]) -> list[int]:
    """How many times `replicate_texels` enlarges each of the NEAREST textures packed into one atlas beside
    LINEAR ones: the largest factor up to MAX_REPLICATION that keeps the texture's sides within
    REPLICATED_SIZE and all of them together within REPLICATED_TEXELS (1 where that allows no more).

    Why a total: a factor k multiplies a texture's texels by k², and an asset can name any number of small
    NEAREST textures; each enlarged on its own terms, a few kilobytes of file would become gigabytes of atlas.

    Args:
        shapes: each texture's [H, W, ...] shape.

    Returns:
        One factor per shape, in order.
    """
    shared = math.isqrt(REPLICATED_TEXELS // max(1, sum(s[0] * s[1] for s in shapes)))
    return [max(1, min(MAX_REPLICATION, REPLICATED_SIZE // max(s[:2]), shared)) for s in shapes]


def replicate_texels(texture: np.ndarray, k: int | None = None) -> np.ndarray:
    """A NEAREST texture enlarged k times along each axis by repeating every texel k × k times; k by default
    the texture's own `replication_factors` (as if it were the only one replicated).

    Why: an atlas is read bilinearly when any texture in it is LINEAR. Enlarged so, the texture occupies the
    same coordinates, and bilinear reading matches the nearest texel everywhere but in a band one enlarged
    texel (1/k of an original texel) wide along texel borders, where it blends the two texels; memory stays
    bounded by the caps of `replication_factors`. Resampling at the atlas's texel centres instead could not be
    exact either.

    Args:
        texture: [H, W, C] uint8.
        k: the factor, ≥ 1.

    Returns:
        [k·H, k·W, C] uint8.
    """
    k = replication_factors([texture.shape])[0] if k is None else k
    return texture if k == 1 else np.repeat(np.repeat(texture, k, axis=0), k, axis=1)


def texel_cap(
    shapes: list[tuple[int, ...]], nearest: list[bool], limit: int | None = None, side: int | None = None
) -> int | None:
    """The most texels any one image packed into an atlas keeps so that together they hold at most `limit`
    texels, ATLAS_TEXELS by default: the largest cap C for which the images, each of at most C texels kept as
    it is and each larger one reduced to at most C (`capped_sizes`, with each one's sides also held to `side`),
    fit; None when they fit as they are, 1 when even that does not fit (`budget_sizes` then refuses or keeps
    them at a texel or so each).

    Why a cap rather than one common factor: memory is the only reason to reduce, and it is held by the
    largest images; a cap takes texels only from images larger than it, so small ones (decals, pixel art,
    masks) keep every texel, and of all ways to fit the budget it drops the fewest mip levels in total (the
    sum over images of log₂ of each one's reduction is least when every reduced image ends at the same
    size). What it gives up is the proportion between the images it reduces: they end at about the same
    texel count whatever their sizes were (a 16384² and an 8192² texture over the cap both come out near
    √C a side), where a common factor would keep their texel densities in proportion.

    Args:
        shapes: each image's [H, W, ...] shape.
        nearest: whether each image is read NEAREST (reduced by powers of two, `reduced_size`).
        limit: the texels they may hold together.
        side: the longest side each keeps (`capped_sizes`), None for no such cap.
    """
    limit = ATLAS_TEXELS if limit is None else limit
    kinds = Counter((int(s[0]), int(s[1]), bool(n)) for s, n in zip(shapes, nearest, strict=True))  # few distinct

    def total(cap: int | None) -> int:
        sizes = capped_sizes([k[:2] for k in kinds], [k[2] for k in kinds], cap, side)[1]
        return sum(count * h * w for count, (h, w) in zip(kinds.values(), sizes, strict=True))

    if total(None) <= limit:
        return None
    lo, hi = 1, max(int(s[0]) * int(s[1]) for s in shapes) - 1  # total(hi + 1) > limit; the largest cap that fits
    if total(lo) > limit:
        return 1
    while lo < hi:  # every image's kept size grows with the cap, so the total does
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if total(mid) <= limit else (lo, mid - 1)
    return lo


def capped_sizes(
    shapes: list[tuple[int, ...]], nearest: list[bool], cap: int | None, side: int | None = None
) -> tuple[list[float], list[tuple[int, int]]]:
    """Each image's factor and (rows, columns) under a cap of `cap` texels (`texel_cap`; None: no cap) and of
    `side` texels on its longest side (None: none), in one reduction (`reduced_size`): an image within both as
    it is (factor 1), a larger one scaled by the smaller of √(cap / its texels) and side / its longest side.

    Why one reduction for both: each reduction averages the texels again (`a3d_cli.mesh.texture_reduce`), so an
    image reduced for its texels and then for its sides would be blurred twice."""
    scales, sizes = [], []
    for shape, near in zip(shapes, nearest, strict=True):
        texels, longest = int(shape[0]) * int(shape[1]), max(int(shape[0]), int(shape[1]))
        scale = 1.0 if cap is None or texels <= cap else math.sqrt(cap / texels)
        if side is not None and longest > side:
            scale = min(scale, side / longest)
        scales.append(scale)
        sizes.append(reduced_size(shape, scale, near))
    return scales, sizes


def reduced_size(shape: tuple[int, ...], scale: float, nearest: bool = False) -> tuple[int, int]:
    """(rows, columns) of an image of `shape` [H, W, ...] scaled by `scale` ≤ 1 (`capped_sizes`): each side
    rounded down, at least 1 (a product within floating-point rounding below a whole number counts as that
    number: 20000 · (16380 / 20000) is 16379.999999999998 in floats, and is 16380); for a NEAREST texture, the
    mip level (`halving_sizes`) of the smallest power-of-two reduction 1/2^n ≤ scale, so that each new texel
    covers whole 2^n × 2^n blocks of the old ones and texel borders stay on the texture's own grid (pixel art
    stored enlarged keeps its texels exactly)."""
    h, w = int(shape[0]), int(shape[1])
    if scale >= 1.0:
        return h, w
    if nearest:
        halvings = max(0, math.ceil(-math.log2(scale) - 1e-9))
        sizes = halving_sizes((h, w), halvings) if halvings else []  # none for a 1 × 1 texture
        return sizes[-1] if sizes else (h, w)
    return max(1, math.floor(h * scale + ROUNDING)), max(1, math.floor(w * scale + ROUNDING))


def texture_side(count: int) -> int:
    """The longest side each of `count` distinct textures of one asset keeps when it is baked (`budget_sizes`'
    `side`): ATLAS_SIDE for one, which the processed mesh may hold as it is; for several, ATLAS_SIDE less the
    edge padding around it, since several are always packed into one atlas, each padded (`pack_atlas`), and
    reduced here they need no second reduction there."""
    return ATLAS_SIDE if count <= 1 else ATLAS_SIDE - 2 * ATLAS_PADDING


def budget_sizes(
    shapes: list[tuple[int, ...]], nearest: list[bool], name: str, limit: int | None = None, side: int | None = None
) -> tuple[int | None, list[float], list[tuple[int, int]]]:
    """The cap (`texel_cap`) and each image's factor and size under it and under `side` (`capped_sizes`) for the
    images of one atlas.

    Args:
        shapes: each image's [H, W, ...] shape.
        nearest: whether each image is read NEAREST.
        name: the asset's file name, for the message.
        limit: the texels they may hold together, ATLAS_TEXELS by default.
        side: the longest side each keeps, None for no such cap.

    Returns:
        (cap or None when all fit the texel budget, [factor] per image, [(rows, columns)] per image).

    Raises:
        InputError: so many images that even reduced to a texel each, with their edge padding, they would take
            more than twice `limit` (the padding of thin images can outweigh their texels at any cap: that alone
            is no reason to refuse).
    """
    from a3d_cli.errors import InputError

    limit = ATLAS_TEXELS if limit is None else limit
    cap = texel_cap(shapes, nearest, limit, side)
    scales, sizes = capped_sizes(shapes, nearest, cap, side)
    least = len(shapes) * (1 + 2 * ATLAS_PADDING) ** 2  # each image a texel, with its padding: what no cap shrinks
    if cap is not None and least > 2 * limit:
        raise InputError(
            f"{name} has {len(shapes):,} distinct textures, more than a3d can pack into one texture atlas "
            f"({limit:,} texels) even at a few texels each.",
            hint="Bake the materials into a few textures in a 3D tool (e.g. Blender's texture baking) and export again.",
        )
    return cap, scales, sizes


def budget_warning(
    name: str,
    shapes: list[tuple[int, ...]],
    sizes: list[tuple[int, int]],
    limit: int | None = None,
    overlong: tuple[int, int] | None = None,
    atlas: bool | None = None,
    overfull: tuple[int, int] | None = None,
) -> str:
    """The `warning:` line that says an asset's textures were reduced to fit the atlas budget (`limit`,
    ATLAS_TEXELS by default; `texel_cap`) or to keep the image a3d writes within ATLAS_SIDE a side: why (each
    bound the textures exceed), the most texels and the longest side a reduced one kept, the largest (or, for
    sides alone, the longest), and how many kept their size.

    Args:
        shapes: each texture's [H, W, ...] shape as the asset gives it.
        sizes: each one's (rows, columns) as kept.
        limit: the texel budget they were held to.
        overlong: (rows, columns) of the image that would exceed ATLAS_SIDE a side, None when sides were not a
            reason.
        atlas: whether that image is the atlas packed of the textures (else the one texture itself); by
            default, whether there are several.
        overfull: (rows, columns) of that image where it would hold more than ATLAS_IMAGE_TEXELS texels, None
            when that was not a reason (textures within the budget can make one: a long row and a long column
            need an atlas as wide as the one and as tall as the other).
    """
    limit = ATLAS_TEXELS if limit is None else limit
    total = sum(int(s[0]) * int(s[1]) for s in shapes)
    over_budget = total > limit
    reasons = []
    if over_budget:
        held = "holds" if len(shapes) == 1 else "hold"
        reasons.append(f"{held} {total:,} texels{'' if len(shapes) == 1 else ' together'}, more than one atlas takes ({limit:,})")
    image = "packed into one atlas would take" if (len(shapes) > 1 if atlas is None else atlas) else "is"
    if overfull is not None:
        reasons.append(
            f"{image} {overfull[1]}×{overfull[0]} texels, more than one texture image a3d writes holds "
            f"({ATLAS_IMAGE_TEXELS:,})"
        )
    if overlong is not None:
        reasons.append(
            f"{image} {overlong[1]}×{overlong[0]} texels, longer a side than GPUs load in one texture ({ATLAS_SIDE:,})"
        )
    why = ", and ".join(reasons)
    over_budget = over_budget or overfull is not None  # both are bounds on texels: the largest are reduced
    measure = (lambda s: int(s[0]) * int(s[1])) if over_budget else (lambda s: max(int(s[0]), int(s[1])))
    example = max(range(len(shapes)), key=lambda i: measure(shapes[i]))  # the largest, or else the longest
    (h, w), (rows, columns) = shapes[example][:2], sizes[example]
    if len(shapes) == 1:
        kept = _kept_percent((h, w), (rows, columns))
        return f"warning: {name}'s texture {why}; it is read at {kept} of its size ({w}×{h} as {columns}×{rows})"
    changed = [z for s, z in zip(shapes, sizes, strict=True) if tuple(s[:2]) != tuple(z)]
    reduced, kept = len(changed), len(shapes) - len(changed)
    most = "largest" if over_budget else "longest"
    which = f"all {reduced} are" if not kept else f"the {reduced} {most} are" if reduced > 1 else f"the {most} is"
    many, one = ("smaller", "smaller one") if over_budget else ("others", "other one")
    others = "" if not kept else f"; the {kept} {many} keep their size" if kept > 1 else f"; the {one} keeps its size"
    bounds = []
    if over_budget:
        bounds.append(f"{max(r * c for r, c in changed):,} texels{' each' if reduced > 1 else ''}")
    if overlong is not None:
        bounds.append(f"{max(max(r, c) for r, c in changed):,} texels a side")
    return (
        f"warning: {name}'s {len(shapes)} textures {why}; {which} reduced to at most {' and '.join(bounds)} (the "
        f"{most} {w}×{h} as {columns}×{rows}){others}"
    )


def _kept_percent(shape: tuple[int, int], size: tuple[int, int]) -> str:
    """How much of its size a texture of `shape` (rows, columns) reduced to `size` keeps, as a whole percent: the
    ratio along its longer side (the shorter, rounded down to whole texels, can keep all of a strip's one row),
    and at most 99% for a reduced texture, so that a warning never says one is read at 100% (nor at 0%: "under
    1%")."""
    h, w = shape
    ratio = size[1] / w if w >= h else size[0] / h
    percent = round(100 * ratio)
    if tuple(size) == tuple(shape):
        return f"{percent}%"
    return "under 1%" if percent < 1 else f"{min(percent, 99)}%"


@dataclass(frozen=True)
class TexelWindow:
    """The texels of the sampler's endless plane an extended image holds (`extend_texture`), per axis: `count`
    texels from texel `start` of the texture made `tile` texels wide. Columns count from u = 0 rightwards,
    rows from v = 1 downwards, as the image's own columns and rows do."""

    start_u: int
    count_u: int
    tile_u: int
    start_v: int
    count_v: int
    tile_v: int

    def to_unit(self, uv: np.ndarray) -> np.ndarray:
        """[V, 2] coordinates of the original texture → the same points of the extended image, in [0, 1]
        (`sample_texture` then reads the texels it would read on the endless plane)."""
        u = (uv[:, 0] * self.tile_u - self.start_u) / self.count_u
        v = 1.0 - ((1.0 - uv[:, 1]) * self.tile_v - self.start_v) / self.count_v
        return np.clip(np.stack([u, v], axis=-1), 0.0, 1.0)  # the rounding of far coordinates stays inside


def texel_window(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...]) -> TexelWindow:
    """The window of texels that coordinates within [lo, hi] read with bilinear filtering, on a texture of
    `shape` [H, W, ...] downscaled where the window would be wider than its axis's limit, WINDOW_SIZE texels or
    two copies of the texture (and two texels), whichever is more; coordinates that span more than half that
    limit in copies of the texture along an axis read its average there (one texel), which is what a
    mipmapping viewer shows of a texture repeated that often.

    Why two copies: a texture of any size whose coordinates reach a little past its edges (UV islands a hair
    outside [0, 1]) or over two copies keeps every texel; only textures repeated more often than that are
    downscaled, where a fixed limit alone would resample every large texture reaching a texel past its edge."""
    h, w = shape[:2]
    u = _axis_window(float(lo[0]), float(hi[0]), w)
    v = _axis_window(1.0 - float(hi[1]), 1.0 - float(lo[1]), h)  # rows: from v = 1 down
    return TexelWindow(*u, *v)


def _axis_window(lo: float, hi: float, size: int) -> tuple[int, int, int]:
    """(start, count, tile) of the texels that positions lo..hi (in copies of the texture) read along one axis."""
    span = hi - lo
    limit = max(WINDOW_SIZE, 2 * size + 2)
    if span * size + 2 <= limit:
        tile = size
    elif span <= limit / 2:
        tile = max(1, math.floor((limit - 2) / span))
    else:
        return 0, 1, 1
    start = math.floor(lo * tile - 0.5)  # texel centres sit at k + 0.5: bilinear reads floor(x - 0.5) and the next
    return start, math.floor(hi * tile - 0.5) + 2 - start, tile


def extend_texture(texture: np.ndarray, window: TexelWindow, wrap: Wrap) -> np.ndarray:
    """The texels `window` holds, as the sampler shows them: beyond the image, copies of it (REPEAT), copies
    mirrored in every other cell (MIRRORED_REPEAT) or its edge texels (CLAMP_TO_EDGE), the texels `np.pad`
    gives with mode "wrap", "symmetric" or "edge". Sampled at `window.to_unit(uv)` it gives the colours the
    sampler gives at uv, with bilinear blending across cell borders as a viewer does.

    Args:
        texture: [H, W, C] uint8 (trimesh convention: row 0 is the top, v = 1).
        window: the texels to hold (`texel_window`); the texture is first downscaled to `window.tile_v` ×
            `window.tile_u` texels when that is smaller, averaged as the mip levels are (area weights, linear
            light, alpha-weighted colours: `texture_reduce.downscale`).
        wrap: (wrapS, wrapT) glTF wrap modes.

    Returns:
        [count_v, count_u, C] uint8.
    """
    from a3d_cli.mesh.texture_reduce import downscale  # imports this module

    texture = downscale(texture, (window.tile_v, window.tile_u))
    cols = _wrapped_texels(window.start_u, window.count_u, window.tile_u, wrap[0])
    rows = _wrapped_texels(window.start_v, window.count_v, window.tile_v, wrap[1])
    return np.ascontiguousarray(texture[rows[:, None], cols[None, :]])


def _wrapped_texels(start: int, count: int, tile: int, mode: int) -> np.ndarray:
    """[count] the image texel the sampler shows at each of texels start .. start + count of the endless
    plane (texel 0 is the image's first)."""
    if mode == CLAMP_TO_EDGE:
        start = min(max(start, -count), tile)  # beyond this, clipping gives the same texels
        return np.clip(np.arange(count, dtype=np.int64) + start, 0, tile - 1)
    period = 2 * tile if mode == MIRRORED_REPEAT else tile
    k = np.mod(np.arange(count, dtype=np.int64) + start % period, period)  # a Python int: far texels do not overflow
    return np.where(k >= tile, period - 1 - k, k) if mode == MIRRORED_REPEAT else k


@dataclass(frozen=True)
class AtlasPlacement:
    """Where one image landed in an atlas, in texels: column x, row y (top-left corner), width, height; `texel`
    is how many atlas texels a side one texel of the asset's image became (`replicate_texels`' factor)."""

    x: int
    y: int
    width: int
    height: int
    texel: int = 1


def pack_atlas(images: list[np.ndarray], padding: int = ATLAS_PADDING) -> tuple[np.ndarray, list[AtlasPlacement]]:
    """Pack RGBA images into one atlas laid out by shelves (`shelf_layout`), edge-padded.

    Args:
        images: list of [H_i, W_i, 4] uint8.
        padding: texels of replicated edge around each image (limits bleeding under bilinear sampling).

    Returns:
        atlas [H, W, 4] uint8 and one placement per input image, in input order.
    """
    (atlas_h, atlas_w), placements = shelf_layout([im.shape for im in images], padding)
    atlas = np.full((atlas_h, atlas_w, 4), 255, dtype=np.uint8)  # gaps: opaque white, never sampled
    for image, p in zip(images, placements, strict=True):
        padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)), mode="edge")
        atlas[p.y - padding : p.y + p.height + padding, p.x - padding : p.x + p.width + padding] = padded
    return atlas, placements


def shelf_layout(
    shapes: list[tuple[int, ...]], padding: int = ATLAS_PADDING, side: int | None = None
) -> tuple[tuple[int, int], list[AtlasPlacement]]:
    """Where `pack_atlas` puts images of `shapes` [H_i, W_i, ...], known before any image exists: about the
    smallest atlas that shelf packing makes of them, within `side` (ATLAS_SIDE by default) texels a side and
    ATLAS_IMAGE_TEXELS texels.

    Shelves across the atlas are filled tallest image first, each image beside the one before until the shelf
    is full (`_shelf_runs`); the atlas is as wide as its widest shelf. Every shelf width that gives another
    layout is tried (`_shelf_layouts`), and the same again with shelves down the atlas (columns filled widest
    image first, one image below the other: the images are never rotated, since their texture coordinates
    would have to turn with them). The layout kept is the squarest of those within 1/SQUARER_SHARE of the fewest
    texels (`_chosen`).

    Why the smallest: the atlas is held in memory while splat colours are read and written into every file
    that carries the mesh, and a smaller one fits the bounds with fewer reductions. One fixed width (the square
    root of the images' area) would stack a 4096² and a 2048² texture (6152 rows × 4585 columns) where side by
    side they take 4100 rows × 6152 columns, and put a tall strip's neighbours on a shelf of their own above it;
    shelves down the atlas hold a 2048² texture with two 1024² ones below each other beside it, which no width of
    shelves across does. Why the squarest of nearly the smallest: a hundred 256² textures (and the white patch)
    fit two shelves of 50 with 0.25% fewer texels than ten of ten, an atlas 13008 texels wide and 520 tall, which a device that loads
    at most 8192 (or 4096) texels a side cannot load as it is, where ten of ten (2608 × 2600) it can.

    Returns:
        the atlas's (rows, columns) and one placement per shape, in input order.
    """
    side = ATLAS_SIDE if side is None else side
    padded = [(int(s[0]) + 2 * padding, int(s[1]) + 2 * padding) for s in shapes]
    turned = [(w, h) for h, w in padded]  # shelves down the atlas are shelves across the transposed images
    options = [(rows, columns, width, False) for rows, columns, width in _shelf_layouts(padded, side)]
    options += [(rows, columns, width, True) for columns, rows, width in _shelf_layouts(turned, side)]
    rows, columns, width, down = _chosen(options, side)
    if down:
        corners = [(y, x) for x, y in _shelf_corners(turned, width)]
    else:
        corners = _shelf_corners(padded, width)
    places = [
        AtlasPlacement(x + padding, y + padding, w - 2 * padding, h - 2 * padding)
        for (y, x), (h, w) in zip(corners, padded, strict=True)
    ]
    return (rows, columns), places


def _shelving(padded: list[tuple[int, int]]) -> tuple[list[int], list[int], list[int]]:
    """The images of `padded` (rows, columns) in the order shelves take them, tallest first (equal ones in input
    order); their heights in that order; and where each would end on one shelf, [0, w_0, w_0 + w_1, …]."""
    order = sorted(range(len(padded)), key=lambda i: -padded[i][0])
    return order, [padded[i][0] for i in order], list(accumulate((padded[i][1] for i in order), initial=0))


def _shelf_corners(padded: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """Each image's top-left corner (row, column), padding included, in input order, for images of `padded`
    (rows, columns) on shelves across `width` wide."""
    order, heights, ends = _shelving(padded)
    corners: list[tuple[int, int]] = [(0, 0)] * len(padded)
    top = 0
    for start, stop in _shelf_runs(ends, width):
        for k in range(start, stop):
            corners[order[k]] = (top, ends[k] - ends[start])
        top += heights[start]
    return corners


def _shelf_layouts(padded: list[tuple[int, int]], side: int) -> list[tuple[int, int, int]]:
    """(rows, columns, shelf width) of the layouts of images of `padded` (rows, columns) on shelves across, at each
    width tried.

    Widths are tried from the widest image's up to `side` (a wider layout is not within it). A layout stays the
    same up to the width at which some shelf takes the first image of the next (`grow`), which is where the next
    layout begins, as wide as that width; each width tried is such a width, except that where many small images
    make layouts less than 1/SHELF_WIDTH_STEPS apart, the next width tried is that share wider: it has no more
    rows than a layout passed over (a wider shelf never makes more rows, filled tallest first) and is at most
    that share wider, so it holds at most that share more texels. The search stops where no wider layout (at
    least `grow` wide and as tall as the tallest image) can come within 1/SQUARER_SHARE of the fewest texels
    found within the bounds (`_within`).
    """
    _, heights, ends = _shelving(padded)
    width = max(b - a for a, b in zip(ends, ends[1:], strict=False))  # the widest image's
    layouts: list[tuple[int, int, int]] = []
    least = None  # the fewest texels of a layout within the bounds
    while True:
        rows = columns = 0
        grow = None  # the next width at which some shelf takes one more image
        for start, stop in _shelf_runs(ends, width):
            rows += heights[start]
            columns = max(columns, ends[stop] - ends[start])
            if stop < len(heights):
                grow = ends[stop + 1] - ends[start] if grow is None else min(grow, ends[stop + 1] - ends[start])
        layouts.append((rows, columns, width))
        if _within(rows, columns, side):
            least = rows * columns if least is None else min(least, rows * columns)
        if grow is None or grow > side:
            return layouts
        if least is not None and grow * heights[0] * SQUARER_SHARE > least * (SQUARER_SHARE + 1):
            return layouts
        width = max(grow, min(width + width // SHELF_WIDTH_STEPS, side))  # never past `side` in one step


def _shelf_runs(ends: list[int], width: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each shelf `width` wide, images start .. stop - 1 on it, for images ending at `ends` on one
    shelf (each at most `width` wide): each shelf holds as many of the next images as fit beside each other."""
    start = 0
    while start < len(ends) - 1:
        stop = bisect_right(ends, ends[start] + width) - 1
        yield start, stop
        start = stop


def _within(rows: int, columns: int, side: int) -> bool:
    """Whether an atlas of rows × columns is within `side` a side and ATLAS_IMAGE_TEXELS texels."""
    return max(rows, columns) <= side and rows * columns <= ATLAS_IMAGE_TEXELS


def _chosen(options: list[tuple[int, int, int, bool]], side: int) -> tuple[int, int, int, bool]:
    """The layout `shelf_layout` keeps of `options` (rows, columns, shelf width, shelves down): of those within
    both bounds (`_within`), else within ATLAS_IMAGE_TEXELS, else all, the ones within 1/SQUARER_SHARE of the
    fewest texels; of those the squarest (shortest longest side), then the fewest texels, then the fewest rows,
    then shelves across, then the narrowest shelves.

    Why in that order of bounds: the caller reduces the images until the atlas is within both, and asks whether
    it is within each; an atlas within them is kept wherever one exists, so the answer is whether one does."""
    pool = [o for o in options if _within(o[0], o[1], side)]
    pool = pool or [o for o in options if o[0] * o[1] <= ATLAS_IMAGE_TEXELS] or options
    least = min(rows * columns for rows, columns, _, _ in pool)
    near = [o for o in pool if o[0] * o[1] * SQUARER_SHARE <= least * (SQUARER_SHARE + 1)]
    return min(near, key=lambda o: (max(o[0], o[1]), o[0] * o[1], o[0], o[3], o[2]))


def remap_uv(uv: np.ndarray, placement: AtlasPlacement, atlas_shape: tuple[int, ...]) -> np.ndarray:
    """Map UVs of one image (wrapped into [0, 1) by REPEAT) onto its place in an atlas.

    Args:
        uv: [V, 2] coordinates in the image's own space; for an image made by `extend_texture`, those
            `CellRange.to_unit` gives (in [0, 1], so nothing wraps).

    Returns:
        [V, 2] coordinates in the atlas (same convention).
    """
    ah, aw = atlas_shape[:2]
    u, v = _wrap_unit(uv[:, 0]), _wrap_unit(uv[:, 1])
    col = placement.x + u * placement.width  # texel-space column
    row = placement.y + (1.0 - v) * placement.height  # texel-space row from the top
    return np.stack([col / aw, 1.0 - row / ah], axis=-1)
