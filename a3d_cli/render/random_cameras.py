"""Random sets of orthogonal orbit cameras, the views 4D-SDS renders at every step.

One draw is one camera set of V views (4 by default) that share elevation, field of view and distance
and sit at azimuths 360°/V apart behind a common random offset — the layout MV-VDM was trained on, seen
from a new angle each step. The distributions are the reference's (yanqinJiang/Animate3D
`custom/threestudio-animate3d/configs/refine_frame_16.yaml` and its threestudio random-camera data module,
`uncond_hybrid.py`):

* azimuth offset u ~ U[0, 1): view i at lo + (u + i) / V · (hi - lo), (lo, hi) = (-180°, 180°);
* elevation in [0°, 30°]: with probability ½ uniform in degrees, otherwise uniform in sin(elevation)
  (uniform on the sphere's band);
* vertical fov ~ U[15°, 60°];
* distance = U[0.8, 1.0] / tan(fov / 2) ("relative radius": the object fills a similar part of the frame
  whatever the fov).

The reference samples in a z-up frame with azimuth measured from +x; because the offset is uniform over the
full circle the distribution is the same in a3d's y-up frame (azimuth 0 = +Z), so no conversion is needed.

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> cams = sample_orthogonal_cameras(RandomCameraConfig(), generator=g)
    >>> len(cams), float(cams.azimuth_deg[1] - cams.azimuth_deg[0])
    (4, 90.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from a3d_cli.models.mvvdm.shape import NUM_VIEWS

if TYPE_CHECKING:  # torch is imported when cameras are drawn: the options that hold a config stay light
    import torch

    from a3d_cli.render.cameras import CameraSet


@dataclass(frozen=True)
class RandomCameraConfig:
    """Distributions of one random camera set; defaults are the reference's refine-stage values."""

    num_views: int = NUM_VIEWS
    """Views per set, 360°/num_views apart in azimuth."""
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    """Degrees the views (with their offset) spread over."""
    elevation_range: tuple[float, float] = (0.0, 30.0)
    """Degrees above the equator; one elevation per set."""
    sphere_uniform_prob: float = 0.5
    """Probability of drawing the elevation uniform in sin(elevation) instead of uniform in degrees."""
    fov_range: tuple[float, float] = (15.0, 60.0)
    """Vertical field of view in degrees."""
    relative_distance_range: tuple[float, float] = (0.8, 1.0)
    """Camera distance divided by 1 / tan(fov / 2)."""

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {self.num_views}")
        ranges = (self.azimuth_range, self.elevation_range, self.fov_range, self.relative_distance_range)
        if not all(math.isfinite(v) for v in (*[x for r in ranges for x in r], self.sphere_uniform_prob)):
            raise ValueError(f"the ranges must be finite numbers, got {ranges}")  # `0 < lo <= hi` admits inf
        lo, hi = self.elevation_range
        if not -90.0 < lo <= hi < 90.0:
            raise ValueError(f"elevation_range must satisfy -90 < lo <= hi < 90, got {self.elevation_range}")
        f_lo, f_hi = self.fov_range
        if not 0.0 < f_lo <= f_hi < 180.0:
            raise ValueError(f"fov_range must satisfy 0 < lo <= hi < 180, got {self.fov_range}")
        d_lo, d_hi = self.relative_distance_range
        if not 0.0 < d_lo <= d_hi:
            raise ValueError(f"relative_distance_range must satisfy 0 < lo <= hi, got {self.relative_distance_range}")
        if not 0.0 <= self.sphere_uniform_prob <= 1.0:
            raise ValueError(f"sphere_uniform_prob must be in [0, 1], got {self.sphere_uniform_prob}")
        if self.azimuth_range[0] > self.azimuth_range[1]:
            raise ValueError(f"azimuth_range must satisfy lo <= hi, got {self.azimuth_range}")


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    import torch

    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def sample_orthogonal_cameras(
    config: RandomCameraConfig | None = None, generator: torch.Generator | None = None
) -> CameraSet:
    """Draw one set of `num_views` orbit cameras looking at the origin.

    Args:
        config: the distributions (reference defaults when None).
        generator: CPU random source; the same generator state gives the same set.

    Returns:
        `CameraSet` of V views (c2w [V, 4, 4] OpenCV, fov/elevation/azimuth/radius [V]), all sharing
        elevation, fov and radius, azimuths (hi - lo) / V apart.
    """
    import torch

    from a3d_cli.render.cameras import orbit_cameras

    cfg = config or RandomCameraConfig()
    v = cfg.num_views
    # 1. elevation: uniform in degrees or uniform in sin(elevation), one per set.
    e_lo, e_hi = cfg.elevation_range
    if float(torch.rand((), generator=generator)) < cfg.sphere_uniform_prob:
        s = _uniform(math.sin(math.radians(e_lo)), math.sin(math.radians(e_hi)), generator)
        elevation = math.degrees(math.asin(s))
    else:
        elevation = _uniform(e_lo, e_hi, generator)
    # 2. azimuths: one random offset, views evenly spread.
    a_lo, a_hi = cfg.azimuth_range
    u = float(torch.rand((), generator=generator))
    azimuths = [a_lo + (u + i) / v * (a_hi - a_lo) for i in range(v)]
    # 3. lens and distance.
    fov = _uniform(*cfg.fov_range, generator)
    radius = _uniform(*cfg.relative_distance_range, generator) / math.tan(math.radians(fov) / 2)
    return orbit_cameras([elevation] * v, azimuths, radius=radius, fov_deg=fov)


__all__ = ["RandomCameraConfig", "sample_orthogonal_cameras"]
