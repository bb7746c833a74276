"""SV3D's conditioning image equals what Stability's sampling script makes from the same RGBA file.

`reference_input` restates, with the same PIL/numpy calls, the steps of `scripts/sampling/simple_video_sample.py`
for an RGBA image: bounding box of alpha > 0; a square of side `int(max(w, h) / ratio)` or, without a
ratio, the array's first axis (the height); the crop pasted at `side // 2 − h // 2`; PIL LANCZOS to 576²;
`rgb·a + (1 − a)` in float64; `astype(uint8)`; `ToTensor` (/255). An image that is not RGBA is first
thumbnailed as opened (`thumbnail([768, 768], LANCZOS)`) and cut out by `rembg.remove(image.convert("RGBA"),
alpha_matting=True)`; rembg is an optional extra, so a fake module stands in for it and records its call.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, photo_like
from PIL import Image

from a3d_cli.io.preprocess import prepare_object_image

FOX = REPO / "examples" / "assets" / "fox_front.png"


def reference_input(path: Path, ratio: float | None = None, size: int = 576) -> torch.Tensor:
    """[size, size, 3] float32, the reference's conditioning image (before its ×2 − 1) of an RGBA file."""
    image = Image.open(path)
    assert image.mode == "RGBA"
    return reference_recentre(image, ratio, size)


def reference_recentre(image: Image.Image, ratio: float | None = None, size: int = 576) -> torch.Tensor:
    """The reference's steps after the cut-out: crop, recentre, LANCZOS to `size`², white, 8 bits."""
    arr = np.array(image)
    ys, xs = np.nonzero(arr[..., 3] > 0)
    x, y, w, h = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    side = int(max(w, h) / ratio) if ratio is not None else arr.shape[0]
    padded = np.zeros((side, side, 4), dtype=np.uint8)
    c = side // 2
    padded[c - h // 2 : c - h // 2 + h, c - w // 2 : c - w // 2 + w] = arr[y : y + h, x : x + w]
    rgba = np.array(Image.fromarray(padded).resize((size, size), Image.LANCZOS)) / 255.0
    rgb = rgba[..., :3] * rgba[..., -1:] + (1 - rgba[..., -1:])
    return torch.from_numpy((rgb * 255).astype(np.uint8)).float() / 255.0


def reference_rembg_input(path: Path) -> Image.Image:
    """What the reference hands `rembg.remove` for a file that is not RGBA."""
    image = Image.open(path)
    assert image.mode != "RGBA"
    image.thumbnail([768, 768], Image.Resampling.LANCZOS)
    return image.convert("RGBA")


class FakeRembg:
    """Stands in for the `rembg` module: `remove` records its call and cuts out a known soft ellipse."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, dict, Image.Image]] = []

    def remove(self, *args, **kwargs) -> Image.Image:
        arr = np.array(args[0]).copy()  # [H, W, 4]
        h, w = arr.shape[:2]
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        r = np.hypot((x - 0.45 * w) / (0.3 * min(h, w)), (y - 0.55 * h) / (0.35 * min(h, w)))
        arr[..., 3] = (np.clip((1.0 - r) * 8, 0, 1) * 255).round().astype(np.uint8)  # soft rim, 0 outside
        out = Image.fromarray(arr, "RGBA")
        self.calls.append((args, kwargs, out))
        return out


def photo_like_rgba(path: Path, width: int = 151, height: int = 173) -> Path:
    """A portrait RGBA picture: a shaded, textured blob with a soft edge on a transparent background."""
    g = np.random.default_rng(3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = np.hypot((x - 70) / 45, (y - 95) / 60)
    alpha = np.clip((1.0 - r) * 6, 0, 1)  # soft rim a few pixels wide
    rgb = np.stack([0.8 - 0.3 * y / height, 0.4 + 0.2 * np.sin(x / 7), 0.3 + 0.2 * x / width], -1)
    rgb = np.clip(rgb + 0.04 * g.standard_normal(rgb.shape), 0, 1)
    arr = np.concatenate([rgb, alpha[..., None]], -1)
    Image.fromarray((arr * 255).round().astype(np.uint8), "RGBA").save(path)
    return path


@pytest.mark.parametrize("ratio", [None, 0.85])
def test_conditioning_image_equals_the_reference_script(tmp_path: Path, ratio: float | None) -> None:
    for path in (FOX, photo_like_rgba(tmp_path / "blob.png")):
        ours = prepare_object_image(path, 576, frame_ratio=ratio)
        assert ours.matte == "alpha"
        torch.testing.assert_close(ours.image, reference_input(path, ratio), rtol=0, atol=0)


def test_the_object_always_fits_where_the_reference_script_fails(tmp_path: Path) -> None:
    """A landscape image with an object wider than the image is high: the reference's paste fails; ours
    frames it in a square of the image's larger side."""
    arr = np.zeros((40, 100, 4), dtype=np.uint8)
    arr[10:30, 5:95] = (30, 160, 60, 255)  # 90 wide, taller image side only 40
    path = tmp_path / "wide.png"
    Image.fromarray(arr, "RGBA").save(path)
    with pytest.raises(ValueError):
        reference_input(path)
    obj = prepare_object_image(path, 50)
    cols = torch.nonzero(obj.rgba[..., 3].amax(dim=0) > 0.5).flatten()
    assert 44 <= int(cols.max() - cols.min()) + 1 <= 46  # 90 / 100 of 50 px


@pytest.fixture(scope="module")
def pictures_without_alpha(tmp_path_factory) -> list[Path]:
    """The fox render without its alpha; a photo-like PNG over 768 px; a JPEG large enough for PIL's draft."""
    folder = tmp_path_factory.mktemp("rgb")
    fox = folder / "fox_rgb.png"
    Image.open(FOX).convert("RGB").save(fox)
    return [fox, photo_like(folder / "photo.png", 1000, 700), photo_like(folder / "photo.jpg", 3200, 3080)]


@pytest.mark.parametrize("ratio", [None, 0.85])
def test_rembg_gets_the_reference_input_and_its_cut_out_is_recentred_as_the_reference(
    monkeypatch, pictures_without_alpha, ratio: float | None
) -> None:
    for path in pictures_without_alpha:
        fake = FakeRembg()
        monkeypatch.setitem(sys.modules, "rembg", types.SimpleNamespace(remove=fake.remove))
        ours = prepare_object_image(path, 576, frame_ratio=ratio, matte="rembg")
        assert len(fake.calls) == 1
        args, kwargs, cut_out = fake.calls[0]
        assert len(args) == 1 and kwargs == {"alpha_matting": True}
        given, expected = args[0], reference_rembg_input(path)
        assert given.mode == "RGBA" and given.size == expected.size
        assert np.array_equal(np.array(given), np.array(expected))
        assert ours.matte == "rembg"
        torch.testing.assert_close(ours.image, reference_recentre(cut_out, ratio), rtol=0, atol=0)


def test_the_large_jpeg_needs_the_files_own_thumbnail(pictures_without_alpha) -> None:
    """The JPEG case above is not the PNG case again: thumbnailing its decoded pixels gives other numbers."""
    jpeg = pictures_without_alpha[-1]
    decoded = Image.open(jpeg).convert("RGB")
    decoded.thumbnail([768, 768], Image.Resampling.LANCZOS)
    assert not np.array_equal(np.array(decoded), np.array(reference_rembg_input(jpeg).convert("RGB")))
