"""Which motion of a run folder to read, and loading it with the static splats it was fitted on.

Shared by the stages that consume a fitted motion (`a3d export`, `a3d mesh-animate`): which motion file to
read ("auto" = refined when present, else coarse) and loading the static splats with the motion fitted on
them (digest checked). File names come from `a3d_cli.run_layout`.

Examples:
    >>> kind = motion_kind(Path("RUN"), "auto")  # doctest: +SKIP
    >>> static, field, fps = load_static_and_motion(ctx, MOTION_FILES[kind])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from a3d_cli.run_layout import MOTION_FILES, STATIC_PLY, MotionKind

if TYPE_CHECKING:
    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField

MotionChoice = Literal["auto", "coarse", "refined"]


class RunInputs(Protocol):
    """What loading needs from a stage context (`a3d_cli.stages.base.StageContext` satisfies it).

    A protocol rather than the stage type so this domain module does not import the stage layer.
    """

    device: str

    def input(self, rel: str) -> Path:
        """Path of a (validated, existing) file inside the run folder."""
        ...


def motion_kind(run_dir: Path, choice: MotionChoice) -> MotionKind:
    """The motion a stage reads: "auto" takes the refined motion when it exists, else the coarse one.

    When neither exists, "coarse" is returned, so the missing-input error names the first one to make.
    """
    if choice == "auto":
        return "refined" if (Path(run_dir) / MOTION_FILES["refined"]).is_file() else "coarse"
    return choice


def load_static_and_motion(ctx: RunInputs, motion_rel: str) -> tuple[Gaussians, MotionField, float]:
    """The static splats and the motion fitted on them (digest checked), on the stage's device.

    Returns:
        (static splats, motion field, the motion's frame rate).

    Raises:
        InputError: the motion file is not one, or was fitted on a different static model (exit code 2).
    """
    from a3d_cli.gaussians.motion_io import load_motion
    from a3d_cli.gaussians.ply import read_ply

    static = read_ply(ctx.input(STATIC_PLY))
    motion = load_motion(ctx.input(motion_rel), static=static, device=ctx.device)
    return static.to(ctx.device), motion.field, motion.fps


__all__ = ["MotionChoice", "RunInputs", "load_static_and_motion", "motion_kind"]
