"""A multi-view video → a fitted and scored motion, timed per phase: the work of `a3d reconstruct`.

The caller says how the inputs are read and the outputs written (a run folder's paths are the stage's
business, `a3d_cli.stages.reconstruct`); this module does the rest in four phases and reports the seconds of
each (`VideoFit.seconds`, the device drained at every mark so the figures hold the GPU work):

    inputs               the caller's `read`: the video, its cameras and the static splats
    masks                the fit's targets and masks at its size (`fit_targets`)
    fit                  the fit on (a random subset of) the splats (`fit_motion`)
    scoring_and_writing  every frame scored with all splats (`score_fit`), then the caller's `write`

Examples:
    >>> out = fit_video_motion(lambda: FitInputs(video, cameras, static), FitSettings(), device="cuda")  # doctest: +SKIP
    >>> list(out.seconds)  # doctest: +SKIP
    ['inputs', 'masks', 'fit', 'scoring_and_writing']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from a3d_cli.phase_clock import PhaseClock

if TYPE_CHECKING:
    from torch import Tensor

    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_fit import FitResult, FitScores, FitSettings
    from a3d_cli.io.video_frames import VideoFrames
    from a3d_cli.progress import Progress
    from a3d_cli.render.cameras import CameraSet


@dataclass(frozen=True)
class FitInputs:
    """What a video fit reads: the video, its V cameras and the static splats (on the fit's device)."""

    video: VideoFrames
    cameras: CameraSet
    static: Gaussians


@dataclass
class VideoFit:
    """Output of `fit_video_motion`.

    Attributes:
        fit: the fit's result (the trained field, losses, the loop's seconds, CUDA graph figures).
        static: every static splat (on the fit's device): the ones the saved field moves.
        fit_splats: how many of them the fit trained on.
        targets: [V, F, S, S, 3] the frames fitted, on grey, at the fit's size (CPU).
        masks_source: "alpha" (the frames carried it) or "computed" (`fit_targets`).
        scores: PSNR per view of the motion and of the static baseline, and the renders scored.
        seconds: seconds per phase (module docstring), complete once `fit_video_motion` returns.
    """

    fit: FitResult
    static: Gaussians
    fit_splats: int
    targets: Tensor
    masks_source: str
    scores: FitScores
    seconds: dict[str, float]

    def preview(self) -> Tensor:
        """[F, 2·S, V·S, 3] per frame: the V targets side by side (top) above the V renders (bottom)."""
        import torch

        top = torch.cat(list(self.targets), dim=2)  # [F, S, V·S, 3]
        bottom = torch.cat(list(self.scores.renders), dim=2)  # [F, S, V·S, 3]
        return torch.cat([top, bottom], dim=1).clamp(0, 1)


def fit_video_motion(
    read: Callable[[], FitInputs],
    settings: FitSettings,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    write: Callable[[VideoFit], None] | None = None,
    note: str = "",
) -> VideoFit:
    """Read the inputs, make the targets, fit the motion, score it and hand it to `write`, timing each phase.

    Args:
        read: returns the inputs (called once, timed as "inputs").
        settings: the fit's settings (resolution, splat budget, masks, schedule …).
        device: the device the splats and the fit live on (drained at each phase mark).
        seed: seeds the splat subset and the fit.
        progress: receives each phase's start and the fit's steps.
        write: called once with the scored result (timed with the scoring), e.g. to save it.
        note: added to the progress line that announces the fit (e.g. the preset's name).

    Returns:
        VideoFit with `seconds` for the four phases.
    """
    import torch

    from a3d_cli.gaussians.fit_targets import fit_targets
    from a3d_cli.gaussians.motion_fit import fit_motion, score_fit, subsample_splats

    clock = PhaseClock(device)
    if progress is not None:
        progress.start("reconstruct: reading the video", total=None)
    inputs = read()
    clock.mark("inputs")

    static, s = inputs.static, settings
    targets, masks, source = fit_targets(
        inputs.video.rgb, inputs.video.alpha, inputs.cameras, static, s.resolution, s.masks
    )
    clock.mark("masks")

    train = subsample_splats(static, s.max_splats, torch.Generator().manual_seed(seed))
    if progress is not None:
        progress.log(
            f"fitting on {len(train)} of {len(static)} splats at {s.resolution}², {s.steps} steps"
            + (f" ({note})" if note else "")
        )
    fit = fit_motion(train, inputs.cameras, targets, masks, s, seed=seed, progress=progress)
    clock.mark("fit")

    if progress is not None:
        progress.start("reconstruct: scoring and writing", total=None)
    scores = score_fit(fit.field, static, inputs.cameras, targets)
    out = VideoFit(fit, static, len(train), targets, source, scores, clock.seconds)
    if write is not None:
        write(out)
    clock.mark("scoring_and_writing")
    return out


__all__ = ["FitInputs", "VideoFit", "fit_video_motion"]
