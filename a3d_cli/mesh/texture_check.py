"""Every texture image a material uses is checked before the mesh reader sees it, and decoded once, when baked.

Why: trimesh drops a texture it cannot open (garbage bytes, a format Pillow does not read, an image past
Pillow's decompression-bomb limit) without a word, so the asset would come out grey and the run would go on
with a wrong appearance. Opening each image here (Pillow's `open`, which reads the header and applies its
`MAX_IMAGE_PIXELS` guard, made an error rather than a warning; `check_header`) turns each of those into one
`InputError` naming the image. An image whose header opens but whose pixels are damaged or cut short is kept
by trimesh as it is, unread, and fails where a3d decodes it, in `texture_rgba`, with the same message: so each
image is decoded once, for the bake, and the check costs a header. `ImageNames` remembers each checked image's
name by its bytes, so that the bake's message names it too. An image trimesh decodes itself (a spec-gloss
material's diffuse texture, converted by trimesh to a base colour, which drops it silently if that fails) is
decoded in full here (`check_image`). The bytes come through a3d's rooted resolver
(`a3d_cli.mesh.references.read_referenced`), which refuses names outside the asset's folder and anything that
is not a regular file (a named pipe or device would block the read forever).

Examples:
    >>> names = ImageNames()
    >>> check_header(Path("tex.png").read_bytes(), "tex.png", "model.obj", names)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

HINT = "Check the image opens in an image viewer, or export the asset again with its textures."
UNREADABLE = "cannot be decoded"


@dataclass
class ImageNames:
    """The name of each image checked, by a digest of its bytes: trimesh's images carry no name (a glTF's
    `name` or URI), so the bake finds a damaged image's name here for its message."""

    by_digest: dict[bytes, str] = field(default_factory=dict)

    def add(self, data: bytes, image: str) -> None:
        """Remember `image` as the name of the image of bytes `data` (the first name given wins)."""
        self.by_digest.setdefault(_digest(data), image)

    def name_of(self, data: bytes) -> str | None:
        """The name given to the image of bytes `data`, None when none was."""
        return self.by_digest.get(_digest(data))


def image_identity(image: object) -> object:
    """What makes two texture images the same: the digest of the bytes of a lazily opened one (trimesh opens an
    image once per material that names it, so an OBJ's materials sharing one file hold distinct Pillow images
    of the same bytes), else the object itself (by identity)."""
    fp = getattr(image, "fp", None)
    if isinstance(fp, io.BytesIO) and getattr(image, "tell", lambda: 0)() == 0:
        return _digest(fp.getvalue())
    return id(image)


def _digest(data: bytes) -> bytes:
    """A 16-byte digest of an image's bytes."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _label(asset: str, image: str) -> str:
    """How messages name an image."""
    return f"{asset}'s texture image {image!r}"


def check_header(data: bytes, image: str, asset: str, names: ImageNames | None = None) -> None:
    """Open `data` with Pillow, through a3d's one image opener (`a3d_cli.io.images.open_image`): its header is
    read and its declared size checked against Pillow's `MAX_IMAGE_PIXELS`; its pixels are decoded later, once,
    by `texture_rgba`.

    Args:
        data: the image file's bytes.
        image: the image's name (file name, or "image N" when it has none), for messages.
        asset: the asset's file name, for messages.
        names: where the image's name is remembered for `texture_rgba`.

    Raises:
        InputError: the bytes are not an image Pillow opens, or declare more pixels than `MAX_IMAGE_PIXELS`.
    """
    from a3d_cli.io.images import open_image

    with open_image(io.BytesIO(data), _label(asset, image), HINT, UNREADABLE):
        pass
    if names is not None:
        names.add(data, image)


def check_image(data: bytes, image: str, asset: str) -> None:
    """`check_header`, then the pixels decoded in full: for an image trimesh decodes itself, which it would drop
    without a word if that failed.

    Raises:
        InputError: as `check_header`, or the pixels are cut short or damaged.
    """
    from a3d_cli.io.images import open_image

    with open_image(io.BytesIO(data), _label(asset, image), HINT, UNREADABLE) as im:
        im.load()


def mean_colour(data: bytes, image: str, asset: str) -> np.ndarray:
    """`check_image`'s decoding, keeping only the image's mean linear colour (`image_mean`).

    Raises:
        InputError: as `check_image`.
    """
    from a3d_cli.io.images import open_image

    with open_image(io.BytesIO(data), _label(asset, image), HINT, UNREADABLE) as im:
        return image_mean(im)


def image_mean(image: object) -> np.ndarray:
    """[3] the mean linear RGB of a Pillow image (`a3d_cli.mesh.appearance.linear_mean`), counted a block of at
    most `texture_reduce.BAND_TEXELS` texels at a time (a band of rows; of an image wider than that, part of a
    row), so that no RGBA copy of a large image is ever made whole, whatever its shape."""
    from a3d_cli.mesh.appearance import as_rgba_uint8, linear_levels
    from a3d_cli.mesh.texture_reduce import BAND_TEXELS

    width, height = image.size  # type: ignore[attr-defined]
    counts = np.zeros((3, 256), np.int64)
    tile = max(1, min(width, BAND_TEXELS))  # columns a block holds
    step = max(1, BAND_TEXELS // tile)  # rows a block holds
    for top in range(0, height, step):
        for left in range(0, width, tile):
            box = (left, top, min(width, left + tile), min(height, top + step))
            block = as_rgba_uint8(image.crop(box))  # type: ignore[attr-defined]
            for ch in range(3):
                counts[ch] += np.bincount(block[..., ch].ravel(), minlength=256)
    levels, count = linear_levels(), max(1, width * height)
    return np.array([counts[ch] @ levels / count for ch in range(3)])  # as `linear_mean` sums, to the last bit


def texture_rgba(
    image: object, asset: str, scale: float = 1.0, nearest: bool = False, names: ImageNames | None = None
) -> np.ndarray:
    """The pixels of a texture image trimesh opened, as `as_rgba_uint8` gives them, reduced by `scale` to
    `a3d_cli.mesh.appearance.reduced_size` (`a3d_cli.mesh.texture_reduce.reduce_texture`, a band of rows at a
    time: memory holds the decoded image and the reduced one, never an RGBA or float copy of the full size).

    Why a copy: trimesh opens every image lazily from its bytes in memory, and a Pillow image decoded in
    place keeps its full-size pixels as long as the scene holds it, every image of the asset at once
    whatever a3d keeps of it; decoded from a copy of those bytes, only the image at hand is ever decoded.
    This is the one decoding of such an image (`check_header` read its header only), so every way it can
    fail is one `InputError` naming it (by `names`, else its file name). An image that is not such a lazy
    one (trimesh decoded it itself) is used as it is.

    Args:
        image: a Pillow image (as trimesh's materials hold them) or an array.
        asset: the asset's file name, for the message.
        scale: the factor the atlas budget gives this texture (`appearance.capped_sizes`), ≤ 1.
        nearest: whether the texture is read NEAREST (its reduction keeps its texel grid).
        names: the names `check_header` remembered.

    Returns:
        [H, W, 4] uint8.

    Raises:
        InputError: the image's pixels cannot be decoded (cut short, damaged).
    """
    return _decoded(image, asset, names, lambda im: _pixels(im, scale, nearest))


def texture_mean(image: object, asset: str, names: ImageNames | None = None) -> np.ndarray:
    """[3] the mean linear RGB of a texture image trimesh opened (`image_mean`; an array by
    `appearance.linear_mean`), decoded as `texture_rgba` decodes it."""
    from a3d_cli.mesh.appearance import linear_mean

    return _decoded(image, asset, names, lambda im: linear_mean(im) if isinstance(im, np.ndarray) else image_mean(im))


def _decoded(image: object, asset: str, names: ImageNames | None, use: Callable[[object], np.ndarray]) -> np.ndarray:
    """`use` applied to a texture image trimesh opened: to a fresh copy decoded from its bytes when it is a lazy
    one (`texture_rgba`), every failure one `InputError` naming it; else to the image as it is."""
    from a3d_cli.io.images import open_image

    fp = getattr(image, "fp", None)  # Pillow drops it once the image is decoded
    if isinstance(fp, io.BytesIO) and getattr(image, "tell", lambda: 0)() == 0:
        data = fp.getvalue()
        name = (names.name_of(data) if names is not None else None) or getattr(image, "filename", "") or "in memory"
        with open_image(io.BytesIO(data), _label(asset, name), HINT, UNREADABLE) as fresh:
            return use(fresh)
    return use(image)


def _pixels(image: object, scale: float, nearest: bool) -> np.ndarray:
    """[H, W, 4] uint8: a Pillow image or array as RGBA, reduced by `scale` (`texture_rgba`)."""
    from a3d_cli.mesh.appearance import as_rgba_uint8, reduced_size
    from a3d_cli.mesh.texture_reduce import reduce_texture

    if isinstance(image, np.ndarray):
        rgba = as_rgba_uint8(image)
        size = reduced_size(rgba.shape, scale, nearest)
        return rgba if size == rgba.shape[:2] else reduce_texture(rgba, size)
    width, height = image.size  # type: ignore[attr-defined]
    size = reduced_size((height, width), scale, nearest)
    return as_rgba_uint8(image) if size == (height, width) else reduce_texture(image, size)
