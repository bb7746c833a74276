"""MV-VDM's shapes, named once: what every module that makes, reads, renders for or scores its videos agrees on.

The released model (Animate3D, arXiv 2407.11398; yanqinJiang/Animate3D `configs/inference/inference.yaml`)
generates 4 views × 16 frames of 256×256 pixels in the SD1.5 VAE's latent space (4 channels), frame 0 of
each view being the clean condition, on a flat grey background; its training clips play at an effective 8 fps.
The 4 views' cameras are `a3d_cli.render.cameras.mvvdm_cameras`. No torch here: option dataclasses take their
defaults from it.
"""

from __future__ import annotations

NUM_VIEWS = 4
"""Views that attend to each other (MVDream's 4 orthogonal views)."""
NUM_FRAMES = 16
"""Frames per view; frame 0 is the condition (the static model)."""
RESOLUTION = 256
"""Width and height of its frames, pixels."""
LATENT_CHANNELS = 4
"""Channels of the SD1.5 VAE latents it denoises."""
FPS = 8.0
"""Frames per second its clips play at."""
MVVDM_BACKGROUND = 0.5
"""The grey its views and videos are rendered on, in [0, 1] (the reference renders on 0.498)."""

__all__ = ["FPS", "LATENT_CHANNELS", "MVVDM_BACKGROUND", "NUM_FRAMES", "NUM_VIEWS", "RESOLUTION"]
