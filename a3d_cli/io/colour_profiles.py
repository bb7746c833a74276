"""Embedded ICC colour profiles → sRGB, so an image's colours are read as a colour-managed viewer shows them.

Why a module of its own: which profiles are applied, which are ignored (and why), and how a conversion that
changes nothing is recognised are one decision, separate from decoding pixels (`images`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageCms import ImageCmsTransform

Notice = Callable[[str], None]
"""Where a reader sends a one-line warning for the user (a stage passes its `progress.log`)."""

ICC_MAX_BYTES = 16 << 20
"""Largest embedded colour profile a3d applies: a printer's CMYK profile with a fine table is a few MB; one
larger is ignored with a warning (what LittleCMS builds from it grows with it)."""
_PROFILE_SPACE = {
    "RGB": "RGB", "RGBA": "RGB", "RGBX": "RGB", "P": "RGB", "PA": "RGB",
    "L": "GRAY", "LA": "GRAY", "1": "GRAY", "CMYK": "CMYK",
}  # fmt: skip
"""Image modes whose colours a profile converts → the ICC colour space that profile must describe."""
_INPUT_CLASSES = {"mntr", "scnr", "prtr", "spac"}
"""ICC device classes that describe an image's colours (display, input, output, colour space); not a
device link, abstract or named-colour profile."""
_FLOAT_TAGS = {s.encode() for s in ("D2B0", "D2B1", "D2B2", "D2B3", "B2D0", "B2D1", "B2D2", "B2D3")}
"""Tags of floating-point multi-process elements: LittleCMS prefers them to the ordinary tables and
evaluates each element in turn, so a profile of many tiny elements stalls the build of a transform for as
long as its size allows; photos' profiles do not use them."""


class _UnusableProfile(Exception):
    """An embedded colour profile a3d does not apply; the message says why."""


def to_srgb(pil: PILImage, name: str, notice: Notice | None = None) -> PILImage:
    """The image with its colours in sRGB, as a colour-managed viewer (a browser, a photo app) shows them.

    Why: phones store photos in Display P3, editors in Adobe RGB, print workflows in CMYK, each with an
    embedded ICC profile; read as stored, the colours are off (P3 and Adobe RGB duller, CMYK far off) from
    what every viewer shows. The profile is converted to sRGB with Pillow's LittleCMS, relative colorimetric,
    a paper white left as the profile says (no white-on-white fix-up): a matrix profile (P3, Adobe RGB) gives
    a browser's numbers, and LittleCMS's perceptual intent would add black-point scaling towards its v4 sRGB
    that a browser does not. An image without a profile, or whose profile gives the colours Pillow reads
    anyway (sRGB under another name: within one level on a probe of colours), is returned as it is, its
    pixels bit for bit those read without colour management. A profile a3d cannot use (damaged, too large,
    for another colour space, of floating-point elements) is ignored with a warning and the colours read as
    sRGB, as browsers do: the pixels themselves are sound, so the image is not refused for its metadata.

    Args:
        pil: an opened image.
        name: how a warning names the image.
        notice: receives the warning for a profile that is ignored.

    Returns:
        `pil` itself, or an RGB image (RGBA where the image has alpha or a transparent colour).
    """
    icc = pil.info.get("icc_profile")
    if not icc:
        return pil
    space = _PROFILE_SPACE.get(pil.mode)
    try:
        if space is None:
            raise _UnusableProfile(f"a3d applies none to {pil.mode} pixels")
        transform = _srgb_transform(bytes(icc), space)
    except _UnusableProfile as exc:
        if notice is not None:
            notice(f"warning: {name}'s embedded colour profile is ignored ({exc}); its colours are read as sRGB")
        return pil
    if transform is None:
        return pil
    from PIL import ImageCms

    alpha = pil.convert("RGBA").getchannel("A") if "A" in pil.getbands() or "transparency" in pil.info else None
    base = _TRANSFORM_MODE[space]
    out = ImageCms.applyTransform(pil if pil.mode == base else pil.convert(base), transform)
    if alpha is not None:
        out.putalpha(alpha)
    return out


_TRANSFORM_MODE = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}
"""The Pillow mode an image is converted through for each profile colour space."""


def _srgb_transform(icc: bytes, space: str) -> ImageCmsTransform | None:
    """A LittleCMS transform from the profile `icc` (colour space `space`) to sRGB, or None when it would
    change no colour by more than one level.

    Raises:
        _UnusableProfile: too large, of floating-point elements, damaged, of another colour space or
            class, or LittleCMS builds no transform from it.
    """
    from PIL import ImageCms

    if len(icc) > ICC_MAX_BYTES:
        raise _UnusableProfile(f"{len(icc):,} bytes, more than a3d reads, {ICC_MAX_BYTES:,}")
    if _icc_tags(icc) & _FLOAT_TAGS:
        raise _UnusableProfile("it is built of floating-point elements, which a3d does not evaluate")
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        described, device_class = profile.profile.xcolor_space.strip(), profile.profile.device_class
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError) as exc:
        raise _UnusableProfile("it is damaged") from exc
    if described != space:
        raise _UnusableProfile(f"it describes {described} colours, the image holds {space}")
    if device_class not in _INPUT_CLASSES:
        raise _UnusableProfile(f"a '{device_class}' profile does not describe an image's colours")
    mode = _TRANSFORM_MODE[space]
    try:
        transform = ImageCms.buildTransform(
            profile,
            ImageCms.createProfile("sRGB"),
            mode,
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            flags=ImageCms.Flags.NOWHITEONWHITEFIXUP,
        )
        probe = _probe(mode)
        moved = np.abs(
            np.asarray(ImageCms.applyTransform(probe, transform), dtype=np.int16)
            - np.asarray(probe.convert("RGB"), dtype=np.int16)
        )
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError) as exc:
        raise _UnusableProfile("LittleCMS builds no conversion from it") from exc
    return None if int(moved.max()) <= 1 else transform


def _probe(mode: str) -> PILImage:
    """Colours that show whether a profile changes anything: every grey, and a grid of the colour cube
    (17 levels a channel for RGB, 5 for CMYK)."""
    from PIL import Image

    channels = len(mode)
    levels = np.linspace(0, 255, 17 if channels == 3 else 5).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(*[levels] * channels, indexing="ij"), axis=-1).reshape(-1, channels)
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], channels, axis=1)
    if mode == "CMYK":
        grey[:, :3] = 0  # the black ink alone
    colours = np.concatenate([grid, grey]) if channels > 1 else grey[:, :1]
    return Image.fromarray(colours[None, :, 0] if mode == "L" else colours[None], mode)


def _icc_tags(icc: bytes) -> set[bytes]:
    """The tag signatures of an ICC profile's tag table (128-byte header, a count, 12-byte entries)."""
    if len(icc) < 132:
        return set()
    count = min(struct.unpack_from(">I", icc, 128)[0], (len(icc) - 132) // 12)
    return {icc[132 + 12 * i : 136 + 12 * i] for i in range(count)}
