"""Multi-view video folders: RGB and RGBA frames, loose frame numbers, and every naming or size problem named."""

from __future__ import annotations

import pytest
import torch
from helpers import VIDEO_SIZE as SIZE
from helpers import video_folder as _video

from a3d_cli.errors import InputError
from a3d_cli.io.images import save_png
from a3d_cli.io.video_frames import list_video_frames, read_cameras, read_video_frames


def test_reads_rgb_and_rgba_folders(tmp_path):
    rgb = read_video_frames(_video(tmp_path / "rgb"))
    assert rgb.rgb.shape == (4, 16, SIZE, SIZE, 3) and rgb.alpha is None
    rgba = read_video_frames(_video(tmp_path / "rgba", channels=4))
    assert rgba.alpha is not None and rgba.alpha.shape == (4, 16, SIZE, SIZE)
    # unpadded frame numbers are read too
    folder = _video(tmp_path / "plain", frames=range(10))
    for v in range(4):
        for f in range(10, 16):
            save_png(folder / f"v{v}_f{f}.png", torch.full((SIZE, SIZE, 3), 0.5))
        (folder / f"v{v}_f03.png").rename(folder / f"v{v}_f3.png")
    assert len(list_video_frames(folder)[3]) == 16


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: _video(d, frames=range(8)), "has 8 frames; reconstruct needs 16"),
        (lambda d: _video(d, frames=range(24)), "has 24 frames; reconstruct needs 16"),
        (lambda d: _video(d, views=range(3)), r"missing \[3\]"),
        (lambda d: _video(d, views=range(5)), "exactly views 0-3"),
        (lambda d: _video(d, skip={(1, 5), (1, 6)}), r"View 1 .* missing frame\(s\) \[5, 6\]"),
        (lambda d: _video(d, views=()), "has no video frames"),
        (lambda d: _video(d, frames=[*range(15), 10**12]), r"View 0 .* missing frame\(s\) \[15, 16, 17, 18, 19, 20, 21, 22\]"),  # the first 8 of 10^12
    ],
)
def test_bad_video_folders_are_named_precisely(tmp_path, make, message):
    folder = tmp_path / "video"
    make(folder)
    folder.mkdir(exist_ok=True)
    with pytest.raises(InputError, match=message) as e:
        read_video_frames(folder)
    assert e.value.exit_code == 2 and e.value.hint


def test_mismatched_resolutions_and_non_square_frames(tmp_path):
    folder = _video(tmp_path / "video")
    save_png(folder / "v2_f07.png", torch.full((SIZE * 2, SIZE * 2, 3), 0.5))
    with pytest.raises(InputError, match=r"v2_f07.png is 32×32 but v0_f00.png is 16×16"):
        read_video_frames(folder)
    wide = _video(tmp_path / "wide")
    for p in wide.glob("*.png"):
        save_png(p, torch.full((SIZE, SIZE * 2, 3), 0.5))
    with pytest.raises(InputError, match="square"):
        read_video_frames(wide)


def test_cameras_come_from_the_folder_then_the_fallback_then_mvvdms(tmp_path):
    import json

    from a3d_cli.render.cameras import mvvdm_cameras, orbit_cameras

    folder = _video(tmp_path / "video")
    torch.testing.assert_close(read_cameras(folder).c2w, mvvdm_cameras().c2w)
    low, high = (orbit_cameras([e] * 4, [0.0, 90.0, 180.0, 270.0], 3.0, 40.0) for e in (5.0, 25.0))
    fallback = tmp_path / "views_cameras.json"
    fallback.write_text(json.dumps(low.to_json(SIZE, SIZE)))
    torch.testing.assert_close(read_cameras(folder, fallback).c2w, low.c2w)
    (folder / "cameras.json").write_text(json.dumps(high.to_json(SIZE, SIZE)))
    torch.testing.assert_close(read_cameras(folder, fallback).c2w, high.c2w)
    three = orbit_cameras([5.0] * 3, [0.0, 120.0, 240.0], 3.0, 40.0)
    (folder / "cameras.json").write_text(json.dumps(three.to_json(SIZE, SIZE)))
    with pytest.raises(InputError, match="3 cameras; the video has 4 views"):
        read_cameras(folder, fallback)
