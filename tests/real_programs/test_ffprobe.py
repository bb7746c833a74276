"""ffprobe reads every preview video a3d writes as browsers and QuickTime need it, with the frames and fps
the manifest claims (`metrics.videos`).

Opt-in: set A3D_FFPROBE to the `ffprobe` executable (Debian: `apt-get install ffmpeg`).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from helpers import ffprobe_video, needs_program

from a3d_cli.io.manifest import load_manifest

pytestmark = needs_program("A3D_FFPROBE")


def _assert_plays_everywhere(path, claim: dict) -> None:
    seen = ffprobe_video(path)
    assert seen["codec"] == "h264" and seen["pix_fmt"] == "yuv420p", seen  # what browsers and QuickTime decode
    assert "mp4" in seen["format"]
    assert seen["width"] % 2 == 0 and seen["height"] % 2 == 0, seen  # 4:2:0 needs even sizes
    assert (seen["width"], seen["height"]) == (claim["width"], claim["height"]), (seen, claim)
    assert seen["frames"] == claim["frames"], (seen, claim)
    assert seen["fps"] == Fraction(claim["fps"]).limit_denominator(1001), (seen, claim)
    assert seen["atoms"].index("moov") < seen["atoms"].index("mdat"), seen["atoms"]  # +faststart: streams


def _claimed_videos(run) -> dict:
    """{run-folder path: claim} over every stage's manifest; every .mp4 in the run folder must be claimed."""
    claims = {}
    for entry in load_manifest(run)["stages"].values():
        claims.update(entry.get("metrics", {}).get("videos", {}))
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*.mp4")}
    assert on_disk == set(claims), (on_disk, claims)
    return claims


@pytest.mark.parametrize("variant", ["morph", "loop", "colours"])
def test_fox_run_previews_play_everywhere(mesh_runs, variant):
    run = mesh_runs[variant]
    claims = _claimed_videos(run)
    assert {"motion/coarse_preview.mp4", "export/preview.mp4"} <= set(claims)
    for rel, claim in claims.items():
        _assert_plays_everywhere(run / rel, claim)


def test_image_run_previews_play_everywhere(image_run):
    claims = _claimed_videos(image_run)
    assert {"orbit/orbit.mp4", "lift/preview.mp4", "motion/coarse_preview.mp4", "export/preview.mp4"} <= set(claims)
    for rel, claim in claims.items():
        _assert_plays_everywhere(image_run / rel, claim)


def test_lift_preview_plays_everywhere(lift_run):
    claims = _claimed_videos(lift_run)
    assert set(claims) == {"lift/preview.mp4"}
    _assert_plays_everywhere(lift_run / "lift/preview.mp4", claims["lift/preview.mp4"])


@pytest.mark.parametrize(("height", "width", "fps"), [(17, 33, 7.5), (24, 40, 30000 / 1001)])
def test_the_video_writer_output_plays_everywhere(tmp_path, height, width, fps):
    from a3d_cli.io.video import write_mp4

    frames = torch.rand(9, height, width, 3, generator=torch.Generator().manual_seed(0))
    claim = write_mp4(tmp_path / "v.mp4", frames, fps=fps)
    assert (claim["width"], claim["height"], claim["frames"]) == (width + width % 2, height + height % 2, 9)
    _assert_plays_everywhere(tmp_path / "v.mp4", claim)
