"""Random 4-view camera sets for SDS: layout and distributions as in the reference."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_cli.render.cameras import orbit_position
from a3d_cli.render.random_cameras import RandomCameraConfig, sample_orthogonal_cameras


def _draws(n: int, cfg: RandomCameraConfig | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [sample_orthogonal_cameras(cfg, generator=g) for _ in range(n)]


def test_views_are_orthogonal_and_share_elevation_fov_radius():
    for cams in _draws(50):
        assert len(cams) == 4
        az = cams.azimuth_deg
        torch.testing.assert_close(az[1:] - az[:-1], torch.full((3,), 90.0), rtol=0, atol=1e-4)
        assert -180.0 <= float(az[0]) < -90.0  # the offset lives in the first quarter
        for t in (cams.elevation_deg, cams.fov_deg, cams.radius):
            assert torch.all(t == t[0])
        # the camera centres really are 90° apart around +Y, and every camera looks at the origin
        centres = cams.c2w[:, :3, 3]
        flat = torch.nn.functional.normalize(centres[:, [0, 2]], dim=-1)
        torch.testing.assert_close((flat[:-1] * flat[1:]).sum(-1), torch.zeros(3), rtol=0, atol=1e-4)
        forward = cams.c2w[:, :3, 2]
        torch.testing.assert_close(forward, torch.nn.functional.normalize(-centres, dim=-1), rtol=0, atol=1e-5)
        torch.testing.assert_close(
            centres, orbit_position(cams.elevation_deg, cams.azimuth_deg, cams.radius), rtol=0, atol=1e-4
        )


def test_ranges_and_relative_radius():
    draws = _draws(400)
    elev = torch.tensor([float(c.elevation_deg[0]) for c in draws])
    fov = torch.tensor([float(c.fov_deg[0]) for c in draws])
    rel = torch.tensor([float(c.radius[0]) * math.tan(math.radians(float(c.fov_deg[0])) / 2) for c in draws])
    assert elev.min() >= 0 and elev.max() <= 30
    assert fov.min() >= 15 and fov.max() <= 60
    assert rel.min() >= 0.8 - 1e-5 and rel.max() <= 1.0 + 1e-5
    # the draws fill their ranges (not stuck at a constant)
    assert elev.max() - elev.min() > 20 and fov.max() - fov.min() > 30 and rel.max() - rel.min() > 0.1
    # the offsets cover the circle's first quarter uniformly
    offsets = torch.tensor([float(c.azimuth_deg[0]) for c in draws]) + 180.0
    assert abs(float(offsets.mean()) - 45.0) < 5.0


def test_elevation_laws():
    """Uniform in degrees vs uniform in sin(elevation), told apart on a wide band (0°…85°)."""
    band = (0.0, 85.0)

    def mean(p: float) -> float:
        cams = _draws(1500, RandomCameraConfig(elevation_range=band, sphere_uniform_prob=p), seed=1)
        return sum(float(c.elevation_deg[0]) for c in cams) / len(cams)

    s_hi = math.sin(math.radians(band[1]))
    expected_sin = sum(math.degrees(math.asin(s_hi * (i + 0.5) / 10000)) for i in range(10000)) / 10000  # ≈ 32.5°
    m_deg, m_sin, m_mix = mean(0.0), mean(1.0), mean(0.5)
    assert abs(m_deg - 42.5) < 2.0
    assert abs(m_sin - expected_sin) < 2.0
    assert abs(m_mix - (42.5 + expected_sin) / 2) < 2.0  # the reference's 50/50 mixture


def test_same_generator_state_same_cameras():
    a, b = _draws(3, seed=7), _draws(3, seed=7)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.c2w, y.c2w)
    assert not torch.equal(a[0].c2w, a[1].c2w)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_views=0),
        dict(elevation_range=(10.0, 0.0)),
        dict(fov_range=(0.0, 60.0)),
        dict(relative_distance_range=(0.0, 1.0)),
        dict(sphere_uniform_prob=1.5),
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        RandomCameraConfig(**kwargs)
