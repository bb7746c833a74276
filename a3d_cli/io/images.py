"""PNG images on disk ↔ float tensors in [0, 1] inside the code (alpha kept where it exists).

Every image a3d reads is opened through `open_image`, so a damaged file or one whose header declares more
pixels than Pillow's `MAX_IMAGE_PIXELS` is one `InputError` naming it, wherever it is read. `load_png` reads
colours as a colour-managed viewer shows them (`colour_profiles.to_srgb`: an embedded ICC profile other than sRGB is
converted to sRGB), and the first frame of an animation or the first page of a multi-page file.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from a3d_cli.errors import InputError
from a3d_cli.io.atomic import atomic_path
from a3d_cli.io.colour_profiles import Notice, to_srgb

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

PNG_WRITERS = min(8, os.cpu_count() or 1)
"""Threads `save_pngs` encodes on."""
DAMAGED_HINT = "Re-export or replace this file; it is damaged or not an image."
TOO_LARGE_HINT = "Downscale the image and save it again."
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError)
"""What Pillow's decoders raise for bad data (UnidentifiedImageError is an OSError)."""


@contextmanager
def open_image(
    source: Path | IO[bytes], name: str, hint: str = DAMAGED_HINT, unreadable: str = "is not a readable image"
) -> Iterator[PILImage]:
    """Open an image with Pillow; every way the file can fail, in the `with` body too, is one `InputError`.

    Why: Pillow raises `DecompressionBombError` (not an `OSError`) for a header declaring more than twice
    `MAX_IMAGE_PIXELS`, and between once and twice only warns and then decodes gigabytes; its decoders
    raise many types for damaged data. Opening every image here turns each into exit 2 naming the file,
    never a traceback. Errors raised while the body decodes (`load`, `convert`, `np.asarray`) are mapped
    too.

    Args:
        source: a path or a binary file object.
        name: how the message names the image (a path, or "fox.glb's texture image 'skin'").
        hint: the hint for an image that does not decode.
        unreadable: what the message says of such an image ("is not a readable image").

    Raises:
        InputError: the header declares more than `MAX_IMAGE_PIXELS` pixels (the message gives the count),
            or the data is not an image Pillow reads, is cut short or damaged.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, never decode gigabytes
            with Image.open(source) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
        raise InputError(
            f"{name} declares {size}, more pixels than a3d decodes ({Image.MAX_IMAGE_PIXELS:,}).",
            hint=TOO_LARGE_HINT,
        ) from None
    except DECODE_ERRORS as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, Image.UnidentifiedImageError):
            reason = "not an image format Pillow reads"
            known = _unread_format(source)
            if known == "":
                reason = "the file is empty, 0 bytes"
            elif known is not None:
                reason, hint = f"{known}, a format Pillow does not read", _CONVERT_HINT[known]
        elif isinstance(exc, ValueError) and "MAX_TEXT_CHUNK" in str(exc):  # a PNG's iCCP, zTXt or iTXt chunk
            from PIL import PngImagePlugin

            reason = (
                f"an embedded colour profile or text chunk inflates past {PngImagePlugin.MAX_TEXT_CHUNK:,} bytes, "
                "more than Pillow reads"
            )
            hint = _BIG_CHUNK_HINT
        raise InputError(f"{name} {unreadable} ({reason}).", hint=hint) from exc


_BIG_CHUNK_HINT = "Pass a copy without that metadata: `exiftool -all= -o copy.png IMAGE` writes one."


_CONVERT_HINT = {
    "a HEIC/HEIF image": "Convert it to PNG or JPEG first (photo apps export either).",
    "an AVIF image": "Convert it to PNG or JPEG first.",
    "an SVG drawing": "Render it to a PNG first (with a transparent background, for an object image).",
}
"""Formats people commonly hold that Pillow does not open, and what to do (not "it is damaged")."""


def _unread_format(source: Path | IO[bytes]) -> str | None:
    """Name the common format of an image Pillow did not identify (a phone's HEIC photo, an SVG), "" for an
    empty file, or None.

    HEIF and AVIF are ISO base media files whose `ftyp` box names the brand; an SVG is XML with an `<svg` tag.
    """
    try:
        if isinstance(source, Path):
            with open(source, "rb") as f:
                head = f.read(1024)
        else:
            source.seek(0)
            head = source.read(1024)
    except (OSError, ValueError):  # unreadable or unseekable: say nothing more
        return None
    if not head:
        return ""
    if head[4:8] == b"ftyp":
        from PIL import Image

        Image.init()
        brands = {head[i : i + 4] for i in range(8, min(len(head), 32), 4)}
        if brands & {b"avif", b"avis"}:
            return None if "AVIF" in Image.OPEN else "an AVIF image"  # a Pillow that reads AVIF: it is damaged
        if brands & {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}:
            return None if "HEIF" in Image.OPEN else "a HEIC/HEIF image"  # pillow-heif registers "HEIF"
    if b"<svg" in head.lower() and head.lstrip().startswith(b"<"):
        return "an SVG drawing"
    return None


def require_image_file(path: Path, hint: str = "Check the path and its spelling.") -> None:
    """Refuse a path that is not a regular file, saying what it is instead (missing, a folder, a broken link,
    a pipe or device), not "does not exist" for all of them; a pipe is never opened.

    Raises:
        InputError: naming the path and what it is; `hint` for a missing file.
    """
    path = Path(path)
    if path.is_file():
        return
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image file.", hint="Pass the image file itself.")
    if path.exists():
        raise InputError(
            f"{path} is not a regular file (a named pipe, socket or device); a3d reads images from plain files.",
            hint="Save the image to a file and pass that.",
        )
    if path.is_symlink():
        raise InputError(f"Image {path} is a link to {os.readlink(path)}, which does not exist.", hint=hint)
    raise InputError(f"Image {path} does not exist.", hint=hint)


def to_uint8(img: Tensor) -> np.ndarray:
    """[H, W, C] float in [0, 1] → uint8 array (clamped, rounded half to even).

    Half to even is numpy's `round`, which diffusers' `VaeImageProcessor.numpy_to_pil` (the reference
    pipelines' frame writer) uses: a value of exactly k + ½ levels lands where theirs does.
    """
    return (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def save_png(path: Path, img: Tensor) -> None:
    """Write an image atomically.

    Args:
        path: destination `.png`.
        img: [H, W, C] float in [0, 1], C = 1, 3 or 4.
    """
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"save_png expects [H, W, 1|3|4], got {list(img.shape)}")
    _write_png(Path(path), to_uint8(img))


def save_pngs(paths: Sequence[Path], images: Tensor) -> None:
    """Write `images[i]` to `paths[i]`, each atomically, as `save_png` would, but faster for many frames.

    Why: a stage writes tens of frames at once. Converting them to 8 bits in one operation makes one copy off
    the GPU instead of one per frame, and PNG encoding (zlib, which releases the GIL) runs on up to
    `PNG_WRITERS` threads. If a write fails, the others still finish and the first error is raised.

    Args:
        paths: one destination `.png` per image.
        images: [N, H, W, C] float in [0, 1], C = 1, 3 or 4.
    """
    from concurrent.futures import ThreadPoolExecutor

    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.shape[0] != len(paths):
        raise ValueError(f"save_pngs expects {len(paths)} images [N, H, W, 1|3|4], got {list(images.shape)}")
    arrays = to_uint8(images)
    with ThreadPoolExecutor(max_workers=max(1, min(PNG_WRITERS, len(paths)))) as pool:
        for done in [pool.submit(_write_png, Path(p), a) for p, a in zip(paths, arrays, strict=True)]:
            done.result()


def _write_png(path: Path, arr: np.ndarray) -> None:
    """[H, W, C] uint8 → `path`, atomically."""
    from PIL import Image

    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")


def upright(pil: PILImage) -> None:
    """Turn an opened image, in place, the way its EXIF Orientation tag says, as image viewers show it.

    Why: a phone stores a portrait photo as landscape pixels plus an Orientation tag (6 or 8); read as
    stored, the object lies on its side. Pillow reads a damaged EXIF block leniently (a warning, no
    orientation); that warning is not shown, as viewers show such an image as stored.
    """
    from PIL import ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data": the image is read as stored
        ImageOps.exif_transpose(pil, in_place=True)


def load_png(path: Path, mode: str | None = None, orient: bool = False, notice: Notice | None = None) -> Tensor:
    """Read an image as [H, W, C] float in [0, 1], its colours as a colour-managed viewer shows them.

    An embedded ICC profile other than sRGB is converted to sRGB (`to_srgb`); colour conversion moves no
    pixel, so frames that come with cameras get it too. A file of several frames or pages (an animated GIF,
    PNG or WebP, a multi-page TIFF) gives its first, with a warning. 16-bit greyscale images (PIL modes I;16
    and I) are scaled by 65535, not clipped at 255, their tRNS transparent value kept as alpha;
    floating-point greyscale (mode F: a 32-bit float TIFF) is taken as 0 = black, 1 = white, as image
    editors and viewers show it (PIL's own conversion reads it as 0-255, all but black), clamped, NaN black;
    16-bit RGB(A) PNGs arrive from PIL already reduced to 8 bits per channel (`_png_16bit_key`).

    Args:
        path: any format PIL reads.
        mode: PIL mode to convert to ("RGB", "RGBA", "L"); None keeps RGB or RGBA as stored.
        orient: turn the image as its EXIF Orientation says (`upright`): a photo as a viewer shows it.
            Off for frames that come with cameras, whose pixels are taken as stored.
        notice: receives a "warning: ..." line for a first frame read out of several, or an embedded colour
            profile that is not used; None says nothing.

    Raises:
        InputError: the file is missing or not a regular file (`require_image_file`), not a readable image,
            or declares more pixels than Pillow's `MAX_IMAGE_PIXELS` (`open_image`; the message says which
            file).
    """
    path = Path(path)
    require_image_file(path, hint="Check the path (and the frame naming).")
    with open_image(path, str(path)) as pil:
        _png_16bit_key(pil)
        first = _first_of_several(pil, str(path))
        if first and notice is not None:
            notice(first)
        if orient:
            upright(pil)
        pil = to_srgb(pil, str(path), notice)
        if mode is None:
            mode = "RGBA" if ("A" in pil.getbands() or "transparency" in pil.info) else "RGB"
        if pil.mode in _WIDE_GREY:
            return _wide_grey(np.asarray(pil), mode, _WIDE_GREY[pil.mode], pil.info.get("transparency"))
        arr = np.asarray(pil.convert(mode))
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(arr.copy()).float() / 255.0


SEVERAL_FRAMES = {"GIF": "frames", "PNG": "frames", "WEBP": "frames", "FLI": "frames", "TIFF": "pages", "DCX": "pages"}
"""Formats whose further frames or pages are more of the user's pictures; a phone's MPO (its other frames a
depth map or preview) and a layered PSD (Pillow opens its merged picture) are read as one image."""


def _first_of_several(pil: PILImage, name: str) -> str | None:
    """A warning line when the image holds several frames or pages (of which Pillow opened the first), else
    None.

    Why say so: an animation or a scanned document handed to a command that takes one picture gives its
    first frame silently, which may be a blank lead-in or a cover page.
    """
    unit = SEVERAL_FRAMES.get(pil.format or "")
    if unit is None:
        return None
    try:
        if not getattr(pil, "is_animated", False):
            return None
        count = _page_count(pil) if pil.format == "TIFF" else str(pil.n_frames)
    except DECODE_ERRORS:  # a damaged later frame or page directory: the first is read as if alone
        pil.seek(0)
        return None
    kind = "an animated PNG" if pil.format == "PNG" else f"a {pil.format} file"
    return f"warning: {name} is {kind} of {count} {unit}; a3d reads the first (to use another, save that one as a PNG)"


COUNTED_PAGES = 100
"""Pages of a TIFF counted for the warning; beyond, it says "more than" this many."""


def _page_count(pil: PILImage) -> str:
    """How many pages a multi-page TIFF holds, up to COUNTED_PAGES ("more than COUNTED_PAGES" beyond),
    leaving the first page selected.

    Why not Pillow's `n_frames`: it walks every page directory and checks each against all those before it,
    so a file of many tiny pages costs time growing with the square of their number.
    """
    try:
        for page in range(1, COUNTED_PAGES + 1):  # one at a time: Pillow notes the count only so
            pil.seek(page)
    except EOFError:
        return str(page)
    finally:
        pil.seek(0)
    return f"more than {COUNTED_PAGES}"


def _png_16bit_key(pil: PILImage) -> None:
    """Give a 16-bit RGB PNG's tRNS transparent colour in the 8 bits per channel Pillow decodes it to.

    Pillow keeps the PNG's 16-bit key but reduces the pixels to their high bytes, so `convert("RGBA")`
    would compare the two on different scales: a key above 255 matches no pixel, a key below it matches
    bright pixels it does not describe. The key's own high bytes match the pixels whose high bytes equal
    it: the key colour and the 255 levels above it on each channel (a 16-bit decoder would match the key
    alone).
    """
    key = pil.info.get("transparency")
    if pil.format != "PNG" or pil.mode != "RGB" or not isinstance(key, tuple) or not pil.tile:
        return
    if pil.tile[0][3] == "RGB;16B":  # the decoder's raw mode (by index: Pillow 10 gives plain tuples)
        pil.info["transparency"] = tuple(int(v) >> 8 for v in key)


def composite(rgba: Tensor, background: float | Tensor) -> Tensor:
    """Alpha-composite [H, W, 4] over a background colour → [H, W, 3]."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:4]
    bg = torch.as_tensor(background, dtype=rgba.dtype).expand_as(rgb)
    return rgb * alpha + bg * (1 - alpha)


def unpremultiply(rgb: Tensor, alpha: Tensor) -> Tensor:
    """Straight colours [..., 3] from premultiplied ones and their alpha [..., 1] (0 where alpha is ~0):
    the inverse of compositing over black."""
    return torch.where(alpha > 1e-6, rgb / alpha.clamp_min(1e-6), torch.zeros_like(rgb))


def resize_square(images: Tensor, size: int) -> Tensor:
    """[..., H, W, C] → [..., size, size, C]: area-averaged when shrinking, bilinear when growing."""
    import torch.nn.functional as F

    lead, (h, w, c) = images.shape[:-3], images.shape[-3:]
    if h == size and w == size:
        return images
    x = images.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # [B, C, H, W]
    shrink = size < h
    x = F.interpolate(x, size=(size, size), mode="area" if shrink else "bilinear", align_corners=None if shrink else False)
    return x.permute(0, 2, 3, 1).reshape(*lead, size, size, c)


_WIDE_GREY = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}
"""PIL's greyscale modes wider than 8 bits (16-bit, 32-bit integer, 32-bit float) → the value read as white."""


def _wide_grey(arr: np.ndarray, mode: str, white: float, key: object = None) -> Tensor:
    """A wide greyscale image [H, W] → [H, W, C] float in [0, 1] for `mode` (L, RGB or RGBA); with RGBA, the
    pixels equal to `key` (a PNG's tRNS transparent grey, in the file's 16 bits) transparent, others opaque."""
    grey = torch.from_numpy(np.asarray(arr, dtype=np.float32) / white)  # [H, W]
    grey = torch.nan_to_num(grey, nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)[..., None]  # [H, W, 1]
    channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(mode)
    if channels is None:
        raise ValueError(f"cannot convert a 16-bit greyscale image to {mode}")
    out = grey.expand(*grey.shape[:2], min(channels, 3))
    if channels == 4:
        opaque = torch.from_numpy(np.asarray(arr) != key)[..., None] if isinstance(key, int) else torch.ones_like(grey)
        out = torch.cat([out, opaque.to(grey.dtype)], dim=-1)
    return out.contiguous()


def contact_sheet(images: list[Tensor], labels: list[str], gap: int = 4, background: float = 1.0) -> Tensor:
    """Lay equally sized images out in one row with a caption above each, for a person to check at a glance.

    Args:
        images: list of [H, W, 3] float images in [0, 1], all the same size.
        labels: one caption per image (PIL's built-in font, black on the background).
        gap: pixels between images and around the sheet.
        background: grey level of the sheet.

    Returns:
        [H + caption, n·W + (n+1)·gap, 3] float image.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not images or len(images) != len(labels):
        raise ValueError("contact_sheet needs one label per image and at least one image")
    h, w = images[0].shape[:2]
    caption = 16
    sheet = Image.new("RGB", (len(images) * w + (len(images) + 1) * gap, h + caption + 2 * gap), (round(255 * background),) * 3)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        x = gap + i * (w + gap)
        sheet.paste(Image.fromarray(to_uint8(img[..., :3])), (x, gap + caption))
        draw.text((x + 2, gap), label, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.asarray(sheet).copy()).float() / 255.0
