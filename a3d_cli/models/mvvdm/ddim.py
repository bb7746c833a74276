"""The DDIM sampler MV-VDM was released with: diffusers' `DDIMScheduler`, which fits it exactly.

Animate3D builds ``DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
beta_schedule="linear", steps_offset=1, clip_sample=False)`` and keeps the remaining defaults
(``set_alpha_to_one=True``, ``timestep_spacing="leading"``, epsilon prediction). With 25 steps the
timesteps are 961, 921, …, 1. The sampling loop passes ``eta=0`` and keeps latents in float32.

Examples:
    >>> sched = make_ddim_scheduler()
    >>> sched.set_timesteps(25)
    >>> int(sched.timesteps[0]), int(sched.timesteps[-1])
    (961, 1)
"""

from __future__ import annotations

from typing import Any

MVVDM_DDIM_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": True,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


def make_ddim_scheduler(**overrides: Any):  # -> diffusers.DDIMScheduler
    """A fresh `DDIMScheduler` with MV-VDM's configuration (keyword overrides for experiments)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**{**MVVDM_DDIM_CONFIG, **overrides})
