"""SV3D's sampler: diffusers' `EulerDiscreteScheduler` in its EDM v-prediction configuration.

Stability samples SV3D with sgm's `EulerEDMSampler`: Karras/EDM sigmas from σ_max = 700 down to
σ_min = 0.002 with ρ = 7, a final 0, no churn (a deterministic Euler step), initial noise scaled by
√(1 + σ₀²), and the `VScalingWithEDMcNoise` denoiser (c_skip = 1/(σ²+1), c_out = −σ/√(σ²+1),
c_in = 1/√(σ²+1), c_noise = 0.25·ln σ). `EulerDiscreteScheduler` with the settings below reproduces each of
these exactly (its `init_noise_sigma` is √(σ_max²+1) because spacing is "leading"; its continuous timesteps
are 0.25·ln σ; `scale_model_input` divides by √(σ²+1); `step` forms x0 from v with c_skip and c_out and
takes the Euler step with s_churn = 0), so we reuse it instead of writing our own. The beta settings only
satisfy the constructor: with Karras sigmas and explicit σ_min/σ_max they do not influence the schedule.
Tests check the sigmas, timesteps and init scale against the formulas and drive it with an analytic
denoiser.

Examples:
    >>> s = make_scheduler(); s.set_timesteps(50)
    >>> round(float(s.sigmas[0]), 3), round(float(s.timesteps[0]), 4), float(s.sigmas[-1])
    (700.0, 1.6378, 0.0)
"""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler

SIGMA_MIN = 0.002
SIGMA_MAX = 700.0
RHO = 7.0
DEFAULT_STEPS = 50

SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "timestep_type": "continuous",
    "interpolation_type": "linear",
    "use_karras_sigmas": True,
    "sigma_min": SIGMA_MIN,
    "sigma_max": SIGMA_MAX,
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "final_sigmas_type": "zero",
}


def make_scheduler(sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX) -> EulerDiscreteScheduler:
    """The EDM Euler v-prediction scheduler SV3D was sampled with (s_churn stays 0 in `step`)."""
    return EulerDiscreteScheduler(**{**SCHEDULER_CONFIG, "sigma_min": sigma_min, "sigma_max": sigma_max})


def edm_sigmas(
    num_steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> torch.Tensor:
    """The EDM (Karras) noise levels, written out from the formula, with the final 0.

    σ_i = (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, i = 0 … n−1, then 0.

    Returns:
        [num_steps + 1] float64.
    """
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])
