"""Colour handling for meshes: colour spaces, texture sampling and a small texture-atlas packer.

Why: splat colours must match what a glTF viewer shows. glTF stores base-colour textures in sRGB but
base-colour factors and COLOR_0 vertex colours as *linear* multipliers, so factors are applied to linearised
texels and the product is converted back to sRGB. Everything a3d keeps in memory is sRGB display colour.

UV convention (trimesh's): origin at the bottom-left of the image, v grows upwards; texel (row i, column j)
has its centre at u = (j + 0.5) / W, v = 1 - (i + 0.5) / H. Coordinates outside [0, 1] wrap (glTF's default
REPEAT sampler).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_TEXTURE_SIZE = 4096  # textures larger than this are downscaled on load (splats need far less)
ATLAS_PADDING = 2  # texels of edge padding around each image in a packed atlas


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


def as_rgba_uint8(image: object) -> np.ndarray:
    """A PIL image (any mode) or array as [H, W, 4] uint8, downscaled to at most MAX_TEXTURE_SIZE."""
    from PIL import Image

    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if max(pil.size) > MAX_TEXTURE_SIZE:
        scale = MAX_TEXTURE_SIZE / max(pil.size)
        pil = pil.resize((max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale))), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(pil.convert("RGBA"), dtype=np.uint8))


def _wrap_unit(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] unchanged (1.0 stays the right/top edge), others wrapped into [0, 1)."""
    return np.where((t >= 0.0) & (t <= 1.0), t, np.mod(t, 1.0))


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup: coordinates outside [0, 1] wrap (REPEAT), and the lookup never blends
    across the image border (an atlas island touching u = 0 must not pick up colour from u = 1).

    Args:
        texture: [H, W, C] uint8.
        uv: [S, 2] texture coordinates (trimesh convention, see module doc).

    Returns:
        [S, C] float32 in [0, 1].
    """
    h, w = texture.shape[:2]
    x = np.clip(_wrap_unit(uv[:, 0]) * w - 0.5, 0.0, w - 1.0)  # [S] continuous column, texel centres at integers
    y = np.clip((1.0 - _wrap_unit(uv[:, 1])) * h - 0.5, 0.0, h - 1.0)  # [S] continuous row
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]  # [S, 1]
    x0i, y0i = x0.astype(np.int64), y0.astype(np.int64)
    x1i, y1i = np.minimum(x0i + 1, w - 1), np.minimum(y0i + 1, h - 1)
    tex = texture.astype(np.float32) if texture.size <= 4 * 1024 * 1024 else texture
    top = tex[y0i, x0i] * (1 - fx) + tex[y0i, x1i] * fx  # [S, C]
    bottom = tex[y1i, x0i] * (1 - fx) + tex[y1i, x1i] * fx  # [S, C]
    return ((top * (1 - fy) + bottom * fy) / 255.0).astype(np.float32)


@dataclass(frozen=True)
class AtlasPlacement:
    """Where one image landed in an atlas, in texels: column x, row y (top-left corner), width, height."""

    x: int
    y: int
    width: int
    height: int


def pack_atlas(images: list[np.ndarray], padding: int = ATLAS_PADDING) -> tuple[np.ndarray, list[AtlasPlacement]]:
    """Pack RGBA images into one atlas with shelf packing (tallest first), edge-padded.

    Args:
        images: list of [H_i, W_i, 4] uint8.
        padding: texels of replicated edge around each image (limits bleeding under bilinear sampling).

    Returns:
        atlas [H, W, 4] uint8 and one placement per input image, in input order.
    """
    order = sorted(range(len(images)), key=lambda i: -images[i].shape[0])
    total_area = sum((im.shape[0] + 2 * padding) * (im.shape[1] + 2 * padding) for im in images)
    widest = max(im.shape[1] + 2 * padding for im in images)
    atlas_w = max(widest, int(np.ceil(np.sqrt(total_area))))
    placements: dict[int, AtlasPlacement] = {}
    x = y = shelf_h = 0
    for i in order:
        h, w = images[i].shape[:2]
        ph, pw = h + 2 * padding, w + 2 * padding
        if x + pw > atlas_w:
            x, y, shelf_h = 0, y + shelf_h, 0
        placements[i] = AtlasPlacement(x + padding, y + padding, w, h)
        x += pw
        shelf_h = max(shelf_h, ph)
    atlas_h = y + shelf_h
    atlas = np.full((atlas_h, atlas_w, 4), 255, dtype=np.uint8)  # gaps: opaque white, never sampled
    for i, p in placements.items():
        padded = np.pad(images[i], ((padding, padding), (padding, padding), (0, 0)), mode="edge")
        atlas[p.y - padding : p.y + p.height + padding, p.x - padding : p.x + p.width + padding] = padded
    return atlas, [placements[i] for i in range(len(images))]


def remap_uv(uv: np.ndarray, placement: AtlasPlacement, atlas_shape: tuple[int, ...]) -> np.ndarray:
    """Map UVs of one image (wrapped into [0, 1)) onto its place in an atlas.

    Args:
        uv: [V, 2] coordinates in the image's own space.

    Returns:
        [V, 2] coordinates in the atlas (same convention).
    """
    ah, aw = atlas_shape[:2]
    u, v = _wrap_unit(uv[:, 0]), _wrap_unit(uv[:, 1])
    col = placement.x + u * placement.width  # texel-space column
    row = placement.y + (1.0 - v) * placement.height  # texel-space row from the top
    return np.stack([col / aw, 1.0 - row / ah], axis=-1)
