"""Chromium, a colour-managed viewer, shows a photo with an embedded ICC profile in the colours a3d reads
from it (`a3d_cli.io.images.load_png`): Display P3 and Adobe RGB PNGs and JPEGs, and no change for sRGB.

Opt-in: set A3D_CHROMIUM to a chromium or chrome executable (Debian: `apt-get install chromium`). The page
is screenshotted with the output colour space forced to sRGB, the flat patches sampled at their centres.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from helpers import needs_program
from icc_profiles import ADOBE_ICC, P3_ICC
from PIL import Image

from a3d_cli.io.images import load_png

pytestmark = needs_program("A3D_CHROMIUM")

PATCHES = [(200, 100, 50), (30, 180, 90), (120, 120, 220), (128, 128, 128), (250, 20, 20), (60, 200, 230)]
SIDE = 40


def _screenshot(page: Path, out: Path, width: int, height: int) -> np.ndarray:
    """[H, W, 3] of `page` as chromium renders it into sRGB at one pixel per CSS pixel."""
    cmd = [
        os.environ["A3D_CHROMIUM"], "--headless=new", "--no-sandbox", "--disable-gpu",
        f"--user-data-dir={out.parent / 'profile'}", "--force-color-profile=srgb", "--force-device-scale-factor=1",
        "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(out).convert("RGB"))


def test_chromium_shows_the_colours_a3d_reads(tmp_path: Path) -> None:
    arr = np.concatenate([np.full((SIDE, SIDE, 3), c, np.uint8) for c in PATCHES], axis=1)
    files = []
    for name, icc in [("p3", P3_ICC), ("adobe", ADOBE_ICC), ("srgb", None)]:
        extra = {} if icc is None else {"icc_profile": icc}
        Image.fromarray(arr).save(tmp_path / f"{name}.png", **extra)
        Image.fromarray(arr).save(tmp_path / f"{name}.jpg", quality=100, subsampling=0, **extra)
        files += [tmp_path / f"{name}.png", tmp_path / f"{name}.jpg"]
    body = "".join(f"<img src='{f.name}' style='display:block'>" for f in files)
    page = tmp_path / "page.html"
    page.write_text(f"<html><body style='margin:0;background:#fff'>{body}</body></html>")
    shot = _screenshot(page, tmp_path / "shot.png", SIDE * len(PATCHES) + 20, SIDE * len(files) + 20)
    for row, f in enumerate(files):
        seen = np.array([shot[SIDE * row + SIDE // 2, SIDE * i + SIDE // 2] for i in range(len(PATCHES))], float)
        ours = load_png(f)
        read = np.array([(ours[SIDE // 2, SIDE * i + SIDE // 2] * 255).numpy() for i in range(len(PATCHES))])
        np.testing.assert_allclose(read, seen, atol=1.0, err_msg=f.name)  # a level of rounding apart at most

