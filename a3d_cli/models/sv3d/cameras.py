"""SV3D's camera convention and its orbits, converted from and to a3d's (elevation°, azimuth°) cameras.

SV3D_p takes, per frame, a polar angle and an azimuth in radians: ``polar = 90° − elevation`` (elevation
is absolute, not a delta) and the azimuth measured from the input view. Reference order (Stability's
`simple_video_sample.py`): the **last** frame (index F−1) is the input view at azimuth 0, frames
0 … F−2 go round the object in steps of 360°/F (17.14°, 34.29°, …, 342.86° for F = 21). `input_first`
re-orders any per-frame sequence so that frame 0 is the input view instead.

a3d cameras: the input view looks at the object's front, i.e. a3d azimuth 0 (camera on +Z), and SV3D's
azimuth is used as a3d's azimuth unchanged; radius 2 and vertical fov 33.8° are the values Stability gave
for reconstruction (generative-models issues #342). Whether SV3D's azimuth turns the same way as a3d's
(towards +X) has not been verified against real renders; see docs/orbit.md.

Examples:
    >>> orbit = static_orbit(10.0)
    >>> orbit.azimuth_deg[-1].item(), round(orbit.azimuth_deg[0].item(), 2)
    (0.0, 17.14)
    >>> polar, azim = to_sv3d_angles(orbit)                                # [21], [21] radians
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from a3d_cli.render.cameras import CameraSet, orbit_cameras

NUM_FRAMES = 21
SV3D_RADIUS = 2.0
SV3D_FOV_DEG = 33.8
DEFAULT_ELEVATION_DEG = 10.0


@dataclass(frozen=True)
class Orbit:
    """Per-frame camera angles of one orbit, in reference order (input view last).

    Attributes:
        elevation_deg: [F] absolute elevation of each frame's camera.
        azimuth_deg: [F] azimuth relative to the input view, in [0, 360).
    """

    elevation_deg: Tensor  # [F]
    azimuth_deg: Tensor  # [F]

    def __len__(self) -> int:
        return int(self.elevation_deg.shape[0])


def default_azimuths(num_frames: int = NUM_FRAMES) -> Tensor:
    """The reference's evenly spaced azimuths, relative to the input view (last frame = 0°).

    Returns:
        [F] degrees: 360/F, 2·360/F, …, 0.
    """
    az = torch.arange(1, num_frames + 1, dtype=torch.float64) * (360.0 / num_frames)  # [F]
    return torch.remainder(az, 360.0).float()


def _broadcast_elevation(elevation_deg: float | Sequence[float] | Tensor, num_frames: int) -> Tensor:
    elev = torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1)
    if elev.numel() == 1:
        elev = elev.expand(num_frames).clone()
    if elev.numel() != num_frames:
        raise ValueError(f"elevation needs 1 or {num_frames} values, got {elev.numel()}")
    if (elev.abs() >= 90).any():
        raise ValueError("elevations must lie strictly between -90 and 90 degrees")
    return elev


def static_orbit(
    elevation_deg: float | Sequence[float] | Tensor = DEFAULT_ELEVATION_DEG, num_frames: int = NUM_FRAMES
) -> Orbit:
    """The reference orbit: evenly spaced azimuths at one (or per-frame) elevation."""
    return Orbit(_broadcast_elevation(elevation_deg, num_frames), default_azimuths(num_frames))


def custom_orbit(elevation_deg: float | Sequence[float] | Tensor, azimuth_deg: Sequence[float] | Tensor) -> Orbit:
    """An orbit through given azimuths (any reference, re-expressed relative to the last one, the input view)."""
    az = torch.as_tensor(azimuth_deg, dtype=torch.float64).reshape(-1)
    rel = torch.remainder(az - az[-1], 360.0).float()  # [F], last = 0
    return Orbit(_broadcast_elevation(elevation_deg, az.numel()), rel)


def dynamic_orbit(
    seed: int,
    elevation_deg: float = DEFAULT_ELEVATION_DEG,
    num_frames: int = NUM_FRAMES,
    max_wobble_deg: float = 10.0,
) -> Orbit:
    """A smooth random orbit: elevation wobbles around `elevation_deg`, azimuth advances unevenly.

    Our own take on the reference demo's "dynamic orbit": the elevation is `elevation_deg` plus a few
    random low-frequency sinusoids that close the loop and vanish at the input view; the azimuth grows by
    random positive steps that sum to just under 360°. Seeded, so the same seed gives the same orbit.

    Args:
        seed: random seed.
        elevation_deg: elevation of the input view and centre of the wobble.
        num_frames: F.
        max_wobble_deg: amplitude bound of the elevation wobble.

    Returns:
        An `Orbit` in reference order (input view last, at azimuth 0 and `elevation_deg`).
    """
    g = torch.Generator().manual_seed(int(seed))
    n = 4 * num_frames  # dense samples around the loop, then subsampled
    t = torch.arange(n, dtype=torch.float64) / n  # [n] in [0, 1)
    wobble = torch.zeros(n, dtype=torch.float64)
    for k in (1, 2, 3):
        amp = (0.5 + (max_wobble_deg - 0.5) * torch.rand((), generator=g, dtype=torch.float64)) / k
        phase = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64)
        wobble += amp * (torch.sin(2 * math.pi * k * t + phase) - torch.sin(phase))  # 0 at t = 0, periodic
    wobble *= max_wobble_deg / max(float(wobble.abs().max()), max_wobble_deg)  # keep within ±max_wobble
    elev = (elevation_deg + wobble).clamp(-89.0, 89.0)  # [n]
    steps = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)  # [n] positive increments
    az = torch.cumsum(steps, 0) - steps[0]  # [n], starts at 0
    az = az / (az[-1] + steps[-1]) * 360.0  # the next step would close the loop at 360°
    idx = torch.arange(num_frames) * (n // num_frames)  # [F]
    elev, az = elev[idx], az[idx]  # [F] each, frame 0 = input view
    # reference order: the input view goes last
    return Orbit(torch.roll(elev, -1).float(), torch.roll(az, -1).float())


def to_sv3d_angles(orbit: Orbit) -> tuple[Tensor, Tensor]:
    """SV3D_p's per-frame inputs from an orbit.

    Returns:
        (polar_rad [F], azimuth_rad [F]): polar = 90° − elevation; azimuth relative to the input view
        (the last frame), in [0, 2π).
    """
    polar = torch.deg2rad(90.0 - orbit.elevation_deg.double())  # [F]
    az = torch.remainder(orbit.azimuth_deg.double() - orbit.azimuth_deg[-1].double(), 360.0)  # [F], last = 0
    return polar.float(), torch.deg2rad(az).float()


def input_first(x: Tensor) -> Tensor:
    """Re-order a per-frame sequence [F, ...] from reference order (input last) to input view first."""
    return torch.roll(x, 1, dims=0)


def orbit_camera_set(orbit: Orbit) -> CameraSet:
    """a3d cameras (OpenCV c2w, +Y up) of an orbit: radius 2, vertical fov 33.8°, looking at the origin."""
    return orbit_cameras(orbit.elevation_deg, orbit.azimuth_deg, radius=SV3D_RADIUS, fov_deg=SV3D_FOV_DEG)
