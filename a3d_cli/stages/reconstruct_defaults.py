"""The defaults of `ReconstructOptions` that modules read without importing torch.

`a3d_cli.stages.reconstruct` imports the motion field (hence torch), but the command line builds its
options' defaults when it starts (`a3d --help` stays torch-free) and `AnimateOptions` repeats the preset
option: both take these values, and `ReconstructOptions` itself defaults to them.
"""

from __future__ import annotations

from typing import Literal, get_args

PresetName = Literal["auto", "reference", "quickstart", "animate3d"]
"""A motion-fit preset; "auto" is quickstart on the CPU and reference on a GPU."""

PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
"""Every name `--preset` takes."""

DEFAULT_PRESET: PresetName = "auto"
"""`ReconstructOptions.preset`."""

DEFAULT_PREVIEW = True
"""`ReconstructOptions.preview`: write motion/coarse_preview.mp4."""

__all__ = ["DEFAULT_PRESET", "DEFAULT_PREVIEW", "PRESET_NAMES", "PresetName"]
