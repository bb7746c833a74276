"""A video → a fitted, scored motion (`gaussians/video_fit.py`) and the scoring it uses (`motion_fit.score_fit`).

The stage's end-to-end test (tests/stages/test_reconstruct.py) checks the metrics it writes from these; here
the pieces are checked on their own: the scores against renders whose answer is known, and the phases'
order, the one read and the one write.
"""

from __future__ import annotations

import torch
from helpers import VIDEO_SIZE as SIZE
from helpers import moving_motion_field, reconstruct_static, video_folder

from a3d_cli.gaussians.motion_field import MotionFieldConfig
from a3d_cli.gaussians.motion_fit import FitSettings, psnr, render_all_frames, score_fit
from a3d_cli.gaussians.video_fit import FitInputs, fit_video_motion
from a3d_cli.io.video_frames import read_video_frames
from a3d_cli.render.cameras import mvvdm_cameras


def test_score_fit_scores_the_motion_and_the_static_baseline_on_frames_after_the_first():
    static, cams, field = reconstruct_static(), mvvdm_cameras(), moving_motion_field(16)
    targets, _ = render_all_frames(None, static, cams, SIZE)  # the video shows the splats standing still
    scores = score_fit(field, static, cams, targets)
    moved, _ = render_all_frames(field, static, cams, SIZE)
    torch.testing.assert_close(scores.renders, moved)
    assert scores.psnr_static.shape == (4,) and bool((scores.psnr_static >= 100).all())  # exact: the clamp's 120 dB
    torch.testing.assert_close(scores.psnr_per_view, psnr(moved[:, 1:], targets[:, 1:], (1, 2, 3, 4)))
    assert bool((scores.psnr_per_view < 60).all())  # the field moves the splats away from the targets


def test_fit_video_motion_reads_once_times_four_phases_and_writes_the_scored_fit(tmp_path):
    video = read_video_frames(video_folder(tmp_path / "video"))
    static = reconstruct_static()
    settings = FitSettings(steps=3, steps_per_frame=1, frames_per_step=2, resolution=SIZE, max_splats=25,
                           field=MotionFieldConfig.tiny(), arap_samples=8)  # fmt: skip
    reads, writes = [], []

    def read() -> FitInputs:
        reads.append(1)
        return FitInputs(video, mvvdm_cameras(), static)

    def write(out) -> None:  # noqa: ANN001 - a VideoFit
        writes.append(list(out.seconds))  # the phases done before the write

    out = fit_video_motion(read, settings, seed=3, write=write)
    assert reads == [1] and writes == [["inputs", "masks", "fit"]]
    assert list(out.seconds) == ["inputs", "masks", "fit", "scoring_and_writing"] and min(out.seconds.values()) >= 0
    assert out.fit_splats == 25 and out.static is static and out.masks_source == "computed"
    assert out.targets.shape == (4, 16, SIZE, SIZE, 3) and out.scores.psnr_per_view.shape == (4,)
    preview = out.preview()
    assert preview.shape == (16, 2 * SIZE, 4 * SIZE, 3)
    torch.testing.assert_close(preview[:, :SIZE, SIZE : 2 * SIZE], out.targets[1])  # view 1's targets, top row
    torch.testing.assert_close(preview[:, SIZE:, :SIZE], out.scores.renders[0].clamp(0, 1))  # view 0's renders below
