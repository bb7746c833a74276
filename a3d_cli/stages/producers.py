"""The command that makes each run-folder input: the hint of a stage's `requires` when a file is missing.

Command strings belong to the stage layer (the domain never names CLI commands).
"""

from __future__ import annotations

ORBIT = "a3d orbit IMAGE -o RUN"
PREPARE = "a3d prepare MODEL -o RUN"
MVVIDEO = "a3d mvvideo RUN --prompt ..."
RECONSTRUCT = "a3d reconstruct RUN"
SDS = "a3d sds RUN --prompt ..."
MOTION_PRODUCERS = {"coarse": RECONSTRUCT, "refined": SDS}
"""Motion kind (`a3d_cli.run_layout.MOTION_FILES`) → the command that fits it."""

__all__ = ["MOTION_PRODUCERS", "MVVIDEO", "ORBIT", "PREPARE", "RECONSTRUCT", "SDS"]
