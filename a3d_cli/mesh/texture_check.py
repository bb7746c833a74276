"""Every texture image a material uses is decoded in full before the mesh reader sees it.

Why: trimesh drops a texture it cannot decode (a truncated PNG, garbage bytes, an image past Pillow's
decompression-bomb limit) without a word, so the asset would come out grey and the run would go on with a
wrong appearance. Decoding the image once here (Pillow's `open` + `load`, its `MAX_IMAGE_PIXELS` guard
made an error rather than a warning) turns each of those into one `InputError` naming the image. The bytes
come through a3d's rooted resolver (`a3d_cli.mesh.references.read_referenced`), which refuses names
outside the asset's folder and anything that is not a regular file (a named pipe or device would block
the read forever).

Examples:
    >>> check_image(Path("tex.png").read_bytes(), "tex.png", "model.obj")  # doctest: +SKIP
"""

from __future__ import annotations

import io

import numpy as np

HINT = "Check the image opens in an image viewer, or export the asset again with its textures."


def check_image(data: bytes, image: str, asset: str) -> None:
    """Decode `data` in full with Pillow, through a3d's one image opener (`a3d_cli.io.images.open_image`).

    Args:
        data: the image file's bytes.
        image: the image's name (file name, or "image N" when it has none), for the message.
        asset: the asset's file name, for the message.

    Raises:
        InputError: the bytes are not an image Pillow reads, are cut short or damaged, or hold more pixels
            than Pillow's `MAX_IMAGE_PIXELS`.
    """
    from a3d_cli.io.images import open_image

    with open_image(io.BytesIO(data), f"{asset}'s texture image {image!r}", HINT, "cannot be decoded") as im:
        im.load()


def decode_image(data: bytes, image: str, asset: str) -> np.ndarray:
    """`check_image`'s decoding, keeping the pixels: [H, W, 4] uint8 RGBA, downscaled to at most
    `a3d_cli.mesh.appearance.MAX_TEXTURE_SIZE` as textures are on load.

    Raises:
        InputError: as `check_image`.
    """
    from a3d_cli.io.images import open_image
    from a3d_cli.mesh.appearance import as_rgba_uint8

    with open_image(io.BytesIO(data), f"{asset}'s texture image {image!r}", HINT, "cannot be decoded") as im:
        return as_rgba_uint8(im)


def texture_rgba(image: object, asset: str, scale: float = 1.0, nearest: bool = False) -> np.ndarray:
    """The pixels of a texture image trimesh opened, as `as_rgba_uint8` gives them (capped at
    `MAX_TEXTURE_SIZE`), then reduced by `scale` (`a3d_cli.mesh.appearance.reduced_size`, `downscale`).

    Why a copy: trimesh opens every image lazily from its bytes in memory, and a Pillow image decoded in
    place keeps its full-size pixels as long as the scene holds it, every image of the asset at once
    whatever a3d keeps of it; decoded from a copy of those bytes, only the image at hand is ever decoded.
    An image that is not such a lazy one is decoded as it is.

    Args:
        image: a Pillow image (as trimesh's materials hold them) or an array.
        asset: the asset's file name, for the message.
        scale: the atlas budget's common factor (`appearance.budget_scale`), ≤ 1.
        nearest: whether the texture is read NEAREST (its reduction keeps its texel grid).

    Returns:
        [H, W, 4] uint8.

    Raises:
        InputError: as `check_image`.
    """
    from a3d_cli.io.images import open_image
    from a3d_cli.mesh.appearance import as_rgba_uint8, downscale, reduced_size

    fp = getattr(image, "fp", None)  # Pillow drops it once the image is decoded
    if isinstance(fp, io.BytesIO) and getattr(image, "tell", lambda: 0)() == 0:
        name = f"{asset}'s texture image {getattr(image, 'filename', '') or 'in memory'!r}"
        with open_image(io.BytesIO(fp.getvalue()), name, HINT, "cannot be decoded") as fresh:
            rgba = as_rgba_uint8(fresh)
    else:
        rgba = as_rgba_uint8(image)
    return downscale(rgba, reduced_size(rgba.shape, scale, nearest), nearest)
