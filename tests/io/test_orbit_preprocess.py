"""Object-image preparation for `a3d orbit`: alpha crop, recentring, uniform-background matting, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from a3d_cli.errors import InputError, OptionError
from a3d_cli.io.preprocess import load_object_rgba, prepare_object_image, recentre, uniform_background_alpha


def write_rgba(path: Path, size=(60, 40), box=(10, 5, 30, 25), colour=(200, 30, 30)) -> Path:
    """A transparent W×H PNG with an opaque rectangle (x0, y0, x1, y1)."""
    arr = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = (*colour, 255)
    Image.fromarray(arr, "RGBA").save(path)
    return path


def test_rgba_object_is_centred_on_white(tmp_path: Path) -> None:
    path = write_rgba(tmp_path / "obj.png", size=(60, 40), box=(2, 5, 22, 25))  # 20×20 box near the left edge
    obj = prepare_object_image(path, size=30)
    assert obj.matte == "alpha" and obj.bbox == (2, 5, 22, 25)
    assert obj.image.shape == (30, 30, 3) and obj.rgba.shape == (30, 30, 4)
    # no ratio: the square's side is the image's height (40, the reference's default), so the object spans
    # 20/40 of it, centred
    alpha = obj.rgba[..., 3]
    ys, xs = torch.nonzero(alpha > 0.5, as_tuple=True)
    assert abs((ys.float().mean() - 14.5).item()) < 0.6 and abs((xs.float().mean() - 14.5).item()) < 0.6
    assert 14 <= int(xs.max() - xs.min()) + 1 <= 16
    torch.testing.assert_close(obj.image[0, 0], torch.ones(3))  # white background
    torch.testing.assert_close(obj.image[15, 15], torch.tensor([200, 30, 30]) / 255.0, atol=0.02, rtol=0)


def test_frame_ratio_sets_the_object_size(tmp_path: Path) -> None:
    path = write_rgba(tmp_path / "obj.png", size=(100, 100), box=(40, 30, 60, 70))  # 20 wide, 40 high
    square, bbox = recentre(load_object_rgba(path)[0], frame_ratio=0.5)
    assert bbox == (40, 30, 60, 70) and square.shape[0] == 80  # longer side 40 / 0.5
    rows = torch.nonzero(square[..., 3].amax(dim=1) > 0).flatten()
    assert int(rows.min()) == 20 and int(rows.max()) == 59
    with pytest.raises(OptionError):
        recentre(square, frame_ratio=1.5)


def test_empty_alpha_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    Image.fromarray(np.zeros((8, 8, 4), dtype=np.uint8), "RGBA").save(path)
    with pytest.raises(InputError, match="empty alpha"):
        prepare_object_image(path, size=16)


def test_uniform_background_is_matted_and_enclosed_holes_stay(tmp_path: Path) -> None:
    arr = np.full((50, 50, 3), 240, dtype=np.uint8)  # light grey background
    arr[10:40, 10:40] = (20, 90, 200)  # the object
    arr[20:30, 20:30] = 240  # a background-coloured patch inside the object: not connected to the border
    path = tmp_path / "plain.jpg"
    Image.fromarray(arr).save(path, quality=95)
    rgba, matte = load_object_rgba(path)
    assert matte == "uniform"
    alpha = rgba[..., 3]
    assert alpha[0, 0] == 0 and alpha[25, 15] == 1 and alpha[25, 25] == 1
    assert uniform_background_alpha(torch.from_numpy(arr).float() / 255) is not None
    obj = prepare_object_image(path, size=25)
    torch.testing.assert_close(obj.image[0, 0], torch.ones(3))  # background replaced by white


def test_busy_background_asks_for_a_transparent_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="not one plain colour") as info:
        prepare_object_image(path, size=16)
    assert "transparent background" in (info.value.hint or "")
    with pytest.raises(InputError, match="no alpha channel"):
        load_object_rgba(path, matte="alpha")


def test_not_an_image_and_missing_rembg(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    with pytest.raises(InputError):
        prepare_object_image(bad, size=16)
    try:
        import rembg  # noqa: F401
    except ImportError:
        path = write_rgba(tmp_path / "obj.png")
        Image.open(path).convert("RGB").save(tmp_path / "obj_rgb.png")
        with pytest.raises(OptionError, match="rembg"):
            load_object_rgba(tmp_path / "obj_rgb.png", matte="rembg")


def rotated_with_orientation(upright: np.ndarray, orientation: int, path: Path, **save) -> Path:
    """Store `upright` the way a camera does: pixels turned, plus the EXIF Orientation that turns them back."""
    turn = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(upright).transpose(turn).save(path, exif=exif, **save)
    return path


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path: Path, orientation: int) -> None:
    """A phone stores a portrait photo sideways with an Orientation tag; every viewer shows it upright."""
    arr = np.full((60, 40, 3), 255, dtype=np.uint8)
    arr[10:50, 8:16] = (200, 30, 30)  # an L: a tall bar on the left ...
    arr[42:50, 8:32] = (200, 30, 30)  # ... and a foot to the right at the bottom
    Image.fromarray(arr).save(tmp_path / "plain.png")
    stored = rotated_with_orientation(arr, orientation, tmp_path / "phone.png")
    rgba, matte = load_object_rgba(stored)
    assert matte == "uniform" and torch.equal(rgba, load_object_rgba(tmp_path / "plain.png")[0])
    assert prepare_object_image(stored, size=32).bbox == (8, 10, 32, 50)


def test_an_rgba_png_with_an_exif_orientation_is_read_upright(tmp_path: Path) -> None:
    arr = np.zeros((60, 40, 4), dtype=np.uint8)
    arr[10:50, 8:16] = (200, 30, 30, 255)
    arr[42:50, 8:32] = (200, 30, 30, 255)
    rgba, matte = load_object_rgba(rotated_with_orientation(arr, 6, tmp_path / "phone.png"))
    assert matte == "alpha"
    assert torch.equal(rgba, torch.from_numpy(arr).float() / 255.0)


def test_a_large_phone_jpeg_is_thumbnailed_from_the_file_and_turned_upright(tmp_path: Path) -> None:
    """Over 4× the matte size a JPEG is thumbnailed from the file (PIL's draft); the turn comes after it."""
    arr = np.full((3300, 2200, 3), 250, dtype=np.uint8)
    arr[600:2700, 400:1000] = (120, 60, 20)  # a tall object left of centre
    stored = rotated_with_orientation(arr, 6, tmp_path / "phone.jpg", quality=90)
    rgba, matte = load_object_rgba(stored)
    assert matte == "uniform" and rgba.shape[:2] == (768, 512)  # portrait, as the viewer shows it
    ys, xs = torch.nonzero(rgba[..., 3] > 0.5, as_tuple=True)
    assert abs(int(ys.min()) - 140) <= 2 and abs(int(ys.max()) - 629) <= 2  # 600 and 2700 of 3300, at 768
    assert abs(int(xs.min()) - 93) <= 2 and abs(int(xs.max()) - 232) <= 2  # 400 and 1000 of 2200, at 512


def test_a_square_frame_larger_than_a3d_decodes_is_built_at_a_scale_that_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long thin image whose object spans it, or a tiny --frame-ratio, asked for a square of terabytes (exit 1
    after the allocation failed): the square is built smaller instead, the object framed as at full size."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 250_000)  # squares of at most 500²
    strip = torch.zeros(8, 2000, 4)
    strip[2:6, :] = 1.0  # a white bar across the whole width: the square's side is the width, 2000
    square, bbox = recentre(strip)
    assert square.shape == (500, 500, 4) and bbox == (0, 2, 2000, 6)
    ys, xs = torch.nonzero(square[..., 3] > 0.5, as_tuple=True)
    assert (int(xs.min()), int(xs.max())) == (0, 499)  # still spans the frame
    assert 249 <= int(ys.min()) <= int(ys.max()) <= 250  # 4 px of 2000 → 1 px of 500, centred

    obj = torch.zeros(60, 60, 4)
    obj[5:55, 5:55] = 1.0  # 50 px; with --frame-ratio 0.01 a 5000² square
    square, _ = recentre(obj, frame_ratio=0.01)
    assert square.shape == (500, 500, 4)
    ys, xs = torch.nonzero(square[..., 3] > 0.5, as_tuple=True)
    assert (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())) == (248, 252, 248, 252)  # 5 px, centred

    monkeypatch.undo()  # Pillow's own limit: --frame-ratio 1e-4 on a 50-px object asks for a 500,000² square
    path = write_rgba(tmp_path / "obj.png", size=(60, 60), box=(5, 5, 55, 55))
    assert prepare_object_image(path, size=16, frame_ratio=1e-4)
