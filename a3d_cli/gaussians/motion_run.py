"""Where a run folder keeps its static splats and motion, and how stages load them together.

Shared by the stages that consume a fitted motion (`a3d export`, `a3d mesh-animate`): which motion file to
read ("auto" = refined when present, else coarse), the command that makes each one (for a stage's
`requires`), and loading the static splats with the motion fitted on them (digest checked).

Examples:
    >>> rel, producer = motion_input(Path("RUN"), "auto")  # doctest: +SKIP
    >>> static, field, fps = load_static_and_motion(ctx, rel)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField

MotionChoice = Literal["auto", "coarse", "refined"]
STATIC_PLY = "static/gaussians.ply"
NORMALIZATION_JSON = "source/normalization.json"
MOTION_FILES = {"coarse": "motion/coarse.safetensors", "refined": "motion/refined.safetensors"}
MOTION_PRODUCERS = {"coarse": "a3d reconstruct RUN", "refined": "a3d sds RUN --prompt ..."}


class RunInputs(Protocol):
    """What loading needs from a stage context (`a3d_cli.stages.base.StageContext` satisfies it).

    A protocol rather than the stage type so this domain module does not import the stage layer.
    """

    device: str

    def input(self, rel: str) -> Path:
        """Path of a (validated, existing) file inside the run folder."""
        ...


def motion_input(run_dir: Path, choice: MotionChoice) -> tuple[str, str]:
    """The run-folder motion file a stage reads, and the command that makes it (for `requires`).

    "auto" takes the refined motion when it exists, else the coarse one; when neither exists, the coarse
    one is named so the error hints at `a3d reconstruct`.
    """
    if choice == "auto":
        choice = "refined" if (Path(run_dir) / MOTION_FILES["refined"]).is_file() else "coarse"
    return MOTION_FILES[choice], MOTION_PRODUCERS[choice]


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


__all__ = [
    "MOTION_FILES",
    "MOTION_PRODUCERS",
    "NORMALIZATION_JSON",
    "STATIC_PLY",
    "MotionChoice",
    "RunInputs",
    "load_static_and_motion",
    "motion_input",
]
