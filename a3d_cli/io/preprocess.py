"""Object images for image-to-3D models: find the object, crop and recentre it, composite it on white.

SV3D expects a square image of one object, centred, on a white background. Stability's sampling script
(`scripts/sampling/simple_video_sample.py`) takes the object mask from an RGBA image's alpha channel, or
from `rembg` (with alpha matting) after a 768-px LANCZOS thumbnail for any other image. Steps 2 and 3 below
are that script's arithmetic exactly (same PIL calls, same rounding); step 1 differs only for images
without alpha, and the framing only where the script fails (docs/orbit.md lists both):

1. **Mask.** An image with a meaningful alpha channel uses it. An image without one (or fully opaque) is
   matted when its background is one uniform colour: pixels close to the border colour and connected to
   the border become transparent. Anything else is refused with a plain message asking for a transparent
   PNG. `rembg` is used only when asked for (`matte="rembg"`) and installed, as the reference calls it
   (`alpha_matting=True`, its RGBA kept): it fetches its own model file on first use, so a3d never
   assumes it. Images without alpha are first thumbnailed to 768 px with PIL's LANCZOS, as the reference
   (a large JPEG from the file as opened, so that it decodes at PIL's reduced draft scale as there).
2. **Crop and recentre.** The bounding box of alpha > 0 is pasted into a transparent square at offset
   ``side // 2 − size // 2`` (the reference's centring), whose side is ``int(max(w, h) / frame_ratio)``
   — or, with no ratio, the image's height (the reference's default, its `in_w` being the array's first
   axis). Where the object does not fit in that square (a landscape image with a wide object, on which
   the reference script fails) the side is the image's larger side instead.
3. **Resize and composite.** The 8-bit square is resized to the model's size with PIL's LANCZOS (which
   filters RGBA with premultiplied alpha), composited on white in float64, and truncated to 8 bits as the
   reference stores its input image.

Examples:
    >>> obj = prepare_object_image(Path("chair.png"), size=576)
    >>> obj.image.shape, obj.matte
    (torch.Size([576, 576, 3]), 'alpha')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.errors import InputError, OptionError
from a3d_cli.io.colour_profiles import Notice, to_srgb
from a3d_cli.io.images import composite as composite_over
from a3d_cli.io.images import load_png, open_image, to_uint8, upright

Matte = Literal["auto", "alpha", "uniform", "rembg"]
MATTES = ("auto", "alpha", "uniform", "rembg")
MATTE_MAX_SIDE = 768  # images without alpha are matted at most this large (as the reference does for rembg)
UNIFORM_TOLERANCE = 0.06  # max per-channel distance to the border colour that still counts as background
UNIFORM_BORDER_SHARE = 0.95  # share of border pixels that must be background-coloured

_NEEDS_ALPHA_HINT = (
    "Save the image as a PNG with a transparent background (most image editors can remove a background), "
    "or put the object on a plain single-colour background, or pass --matte rembg if the optional rembg "
    "package is installed."
)


@dataclass(frozen=True)
class ObjectImage:
    """A prepared object image.

    Attributes:
        image: [S, S, 3] in [0, 1], the object centred on white (what the model is conditioned on).
        rgba: [S, S, 4] in [0, 1], the same before compositing (straight alpha).
        matte: where the alpha came from: "alpha", "uniform" or "rembg".
        bbox: (x0, y0, x1, y1) of the object in the (possibly thumbnailed) input, x1/y1 exclusive.
    """

    image: Tensor
    rgba: Tensor
    matte: str
    bbox: tuple[int, int, int, int]


def _thumbnail(img: Tensor, max_side: int) -> Tensor:
    """[H, W, C] → at most `max_side` on the longer side with PIL's `thumbnail` (LANCZOS), as the reference."""
    from PIL import Image


    if max(img.shape[:2]) <= max_side:
        return img
    pil = Image.fromarray(to_uint8(img))
    pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(pil).copy()).float() / 255.0


def _matting_input(path: Path, img: Tensor) -> Tensor:
    """[h, w, 3]: an image without alpha as the matte sees it, at most `MATTE_MAX_SIDE` on its longer side.

    The reference thumbnails the image as PIL opened it, and PIL's `thumbnail` first asks a JPEG decoder
    for a reduced DCT scale (`draft`) when the file is at least 4× the target on both sides: such a file
    is thumbnailed from the file here too, in its stored mode, to get the reference's pixels, then turned
    and colour-converted as `load_png` does (which has already said anything worth a warning). `draft`
    does nothing for other formats, so they are thumbnailed from the decoded pixels (the same numbers).
    """
    from PIL import Image

    if max(img.shape[:2]) <= MATTE_MAX_SIDE:
        return img[..., :3]
    with open_image(path, str(path)) as pil:
        if pil.format in ("JPEG", "MPO"):  # MPO: a phone camera's JPEG with extra frames, decoded as JPEG
            pil.thumbnail((MATTE_MAX_SIDE, MATTE_MAX_SIDE), Image.Resampling.LANCZOS)
            upright(pil)  # after the thumbnail: the draft scale must be chosen before any decode
            rgb = to_srgb(pil, str(path)).convert("RGB")
            return torch.from_numpy(np.asarray(rgb).copy()).float() / 255.0
    return _thumbnail(img[..., :3], MATTE_MAX_SIDE)


def _border(mask_hw: tuple[int, int], width: int) -> Tensor:
    h, w = mask_hw
    m = torch.zeros(h, w, dtype=torch.bool)
    m[:width], m[-width:], m[:, :width], m[:, -width:] = True, True, True, True
    return m


def uniform_background_alpha(rgb: Tensor, tolerance: float = UNIFORM_TOLERANCE) -> Tensor | None:
    """Alpha for an object on a uniform background, or None when the background is not uniform.

    Args:
        rgb: [H, W, 3] in [0, 1].
        tolerance: per-channel distance to the border colour that still counts as background.

    Returns:
        [H, W] alpha in {0, 1}: 0 for background-coloured pixels connected to the border.
    """
    h, w = rgb.shape[:2]
    ring = _border((h, w), max(1, min(h, w) // 100))  # [H, W]
    bg = rgb[ring].median(dim=0).values  # [3]
    close = (rgb - bg).abs().amax(dim=-1) <= tolerance  # [H, W]
    if close[ring].float().mean() < UNIFORM_BORDER_SHARE:
        return None
    # flood fill from the border through background-coloured pixels (3×3 dilation until nothing changes)
    reached = (close & ring).float()[None, None]  # [1, 1, H, W]
    allowed = close.float()[None, None]
    while True:
        grown = F.max_pool2d(reached, 3, stride=1, padding=1) * allowed
        if torch.equal(grown, reached):
            break
        reached = grown
    return 1.0 - reached[0, 0]


def _rembg_rgba(rgb: Tensor) -> Tensor:
    """rembg's cut-out of an [H, W, 3] image as [H, W, 4], called as the reference calls it."""
    try:
        import rembg  # optional extra; downloads its own model on first use
    except ImportError as exc:
        raise OptionError(
            "--matte rembg needs the optional rembg package, which is not installed.",
            hint="pip install rembg (it downloads its own model file on first use), or pass a transparent PNG.",
        ) from exc
    from PIL import Image


    out = np.asarray(rembg.remove(Image.fromarray(to_uint8(rgb)).convert("RGBA"), alpha_matting=True))
    return torch.from_numpy(out[..., :4].copy()).float() / 255.0


MIN_IMAGE_SIDE = 8  # smaller images hold no object (and background) worth recentring


def load_object_rgba(path: Path, matte: Matte = "auto", notice: Notice | None = None) -> tuple[Tensor, str]:
    """Read an image and give it an alpha channel that marks the object.

    Args:
        path: any image PIL reads.
        matte: "auto" (alpha if meaningful, else a uniform background), "alpha", "uniform" or "rembg".
        notice: receives a warning line about the file (a first frame of several, a colour profile ignored).

    Returns:
        ([H, W, 4] straight-alpha RGBA in [0, 1], the matte used).

    Raises:
        InputError: not an image, smaller than 8 px on a side, an empty alpha, no alpha and no uniform
            background.
        OptionError: an unknown matte, or rembg asked for but missing.
    """
    if matte not in MATTES:
        raise OptionError(f"--matte must be one of {', '.join(MATTES)} (got {matte}).")
    img = load_png(Path(path), orient=True, notice=notice)  # [H, W, 1|3|4], as a viewer shows it
    if min(img.shape[:2]) < MIN_IMAGE_SIDE:
        raise InputError(
            f"{path} is {img.shape[1]}×{img.shape[0]} pixels; an object image needs at least "
            f"{MIN_IMAGE_SIDE} pixels on each side.",
            hint="Give the full-size image (SV3D works at 576×576).",
        )
    if img.shape[-1] == 1:
        img = img.expand(-1, -1, 3)
    has_alpha = img.shape[-1] == 4
    if has_alpha and matte in ("auto", "alpha"):
        alpha = img[..., 3]
        if float(alpha.max()) <= 0.0:
            raise InputError(
                f"{path} has an empty alpha channel: every pixel is transparent, so there is no object.",
                hint="Export the image again with the object visible (alpha > 0 where the object is).",
            )
        if float(alpha.min()) < 1.0 or matte == "alpha":
            return img, "alpha"
    elif matte == "alpha":
        raise InputError(f"{path} has no alpha channel, but --matte alpha was asked for.", hint=_NEEDS_ALPHA_HINT)
    rgb = _matting_input(Path(path), img)  # [h, w, 3], at most 768 px
    if matte == "rembg":
        return _rembg_rgba(rgb), "rembg"
    alpha = uniform_background_alpha(rgb)
    if alpha is None:
        raise InputError(
            f"{path} has no transparent background and its background is not one plain colour.", hint=_NEEDS_ALPHA_HINT
        )
    if float(alpha.max()) <= 0.0:
        raise InputError(f"{path} is one plain colour: no object was found.", hint=_NEEDS_ALPHA_HINT)
    return torch.cat([rgb, alpha[..., None]], dim=-1), "uniform"


def recentre(rgba: Tensor, frame_ratio: float | None = None) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Crop to the object (alpha > 0) and centre it in a transparent square.

    A square of more pixels than a3d decodes (Pillow's `MAX_IMAGE_PIXELS`) is built at the largest scale that
    fits, the object reduced with LANCZOS: a long thin image whose object spans its long side, or a small
    `frame_ratio`, would otherwise ask for gigabytes or terabytes, and the square is reduced to the model's
    few hundred pixels next anyway.

    Args:
        rgba: [H, W, 4] straight alpha.
        frame_ratio: object's longer side / square side; None: side = the image's height (the
            reference's default), or its larger side where the object does not fit in that.

    Returns:
        ([S, S, 4] square, (x0, y0, x1, y1) bounding box in `rgba`).
    """
    from PIL import Image

    if frame_ratio is not None and not 0.0 < frame_ratio <= 1.0:
        raise OptionError(f"--frame-ratio must be in (0, 1] (got {frame_ratio}).")
    mask = rgba[..., 3] > 0  # [H, W]
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if ys.numel() == 0:
        raise InputError("The image has no visible object (its alpha is zero everywhere).")
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    h, w = y1 - y0, x1 - x0
    if frame_ratio is None:
        side = rgba.shape[0] if max(h, w) <= rgba.shape[0] else max(rgba.shape[0], rgba.shape[1])
    else:
        side = max(h, w, int(max(h, w) / frame_ratio))
    crop = rgba[y0:y1, x0:x1]  # [h, w, 4]
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and side * side > limit:
        scale = math.sqrt(limit) / side
        side = max(1, math.floor(side * scale))
        h, w = min(side, max(1, round(h * scale))), min(side, max(1, round(w * scale)))
        pil = Image.fromarray(to_uint8(crop), "RGBA").resize((w, h), Image.LANCZOS)
        crop = torch.from_numpy(np.asarray(pil).copy()).to(rgba.dtype) / 255.0  # [h, w, 4]
    out = torch.zeros(side, side, 4, dtype=rgba.dtype)
    oy, ox = side // 2 - h // 2, side // 2 - w // 2  # the reference's centring
    out[oy : oy + h, ox : ox + w] = crop
    return out, (x0, y0, x1, y1)


def resize_rgba(rgba: Tensor, size: int) -> Tensor:
    """Resize a square straight-alpha RGBA image as the reference: 8-bit, PIL LANCZOS (premultiplied inside)."""
    from PIL import Image


    pil = Image.fromarray(to_uint8(rgba), "RGBA").resize((size, size), Image.LANCZOS)
    return torch.from_numpy(np.asarray(pil).copy()).float() / 255.0  # [size, size, 4] straight alpha


def composite(rgba: Tensor, background: float = 1.0) -> Tensor:
    """[S, S, 4] → [S, S, 3] on `background`, in float64 and truncated to 8 bits as the reference stores it."""
    arr = torch.from_numpy(to_uint8(rgba).astype(np.float64) / 255.0)  # exact: `rgba` holds 8-bit values
    return (composite_over(arr, background) * 255).to(torch.uint8).float() / 255.0


@dataclass(frozen=True)
class FramedObject:
    """An object image matted and recentred, before it is resized to a model's size (`frame_object`).

    Attributes:
        square: [S, S, 4] straight-alpha RGBA in [0, 1], the object centred (S from the framing, not the model).
        matte: where the alpha came from: "alpha", "uniform" or "rembg".
        bbox: (x0, y0, x1, y1) of the object in the (possibly thumbnailed) input, x1/y1 exclusive.
    """

    square: Tensor
    matte: str
    bbox: tuple[int, int, int, int]

    def at(self, size: int, background: float = 1.0) -> ObjectImage:
        """Resize to `size` and composite on `background` (1.0 = white, as SV3D expects)."""
        small = resize_rgba(self.square, size)  # [size, size, 4]
        return ObjectImage(image=composite(small, background), rgba=small, matte=self.matte, bbox=self.bbox)


def frame_object(
    path: Path, frame_ratio: float | None = None, matte: Matte = "auto", notice: Notice | None = None
) -> FramedObject:
    """Mask and recentre one object image (steps 1 and 2 of the module docstring): everything that can refuse
    the image, so a stage can run it before loading a model.

    Args:
        path: the input image.
        frame_ratio: object size / frame size; None keeps the input's framing.
        matte: how to find the object ("auto", "alpha", "uniform", "rembg").
        notice: receives a warning line about the file (a first frame of several, a colour profile ignored).
    """
    rgba, used = load_object_rgba(path, matte, notice)
    square, bbox = recentre(rgba, frame_ratio)
    return FramedObject(square=square, matte=used, bbox=bbox)


def prepare_object_image(
    path: Path,
    size: int,
    frame_ratio: float | None = None,
    matte: Matte = "auto",
    background: float = 1.0,
) -> ObjectImage:
    """Mask, recentre, resize and composite one object image (see the module docstring).

    Args:
        path: the input image.
        size: output side in pixels (576 for SV3D).
        frame_ratio: object size / frame size; None keeps the input's framing.
        matte: how to find the object ("auto", "alpha", "uniform", "rembg").
        background: grey level composited behind the object (1.0 = white, as SV3D expects).
    """
    return frame_object(path, frame_ratio, matte).at(size, background)
