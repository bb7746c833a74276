"""SV3D camera conventions: reference orbit, angle conversion, dynamic orbits, a3d cameras."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_cli.models.sv3d.cameras import (
    SV3D_FOV_DEG,
    SV3D_RADIUS,
    custom_orbit,
    default_azimuths,
    dynamic_orbit,
    input_first,
    orbit_camera_set,
    static_orbit,
    to_sv3d_angles,
)
from a3d_cli.render.cameras import CameraSet


def test_reference_orbit_puts_the_input_view_last() -> None:
    az = default_azimuths(21)
    expected = [(360.0 / 21 * (f + 1)) % 360.0 for f in range(21)]
    torch.testing.assert_close(az, torch.tensor(expected))
    assert az[-1] == 0 and az[0] == pytest.approx(17.142857, abs=1e-4)
    polar, azim = to_sv3d_angles(static_orbit(10.0))
    torch.testing.assert_close(polar, torch.full((21,), math.radians(80.0)))  # polar = 90° − elevation
    torch.testing.assert_close(azim, torch.deg2rad(torch.tensor(expected)))


def test_custom_azimuths_are_made_relative_to_the_last_frame() -> None:
    az = [(30.0 + 360.0 / 21 * (f + 1)) for f in range(21)]  # the same orbit, turned by 30°
    orbit = custom_orbit([5.0] * 21, az)
    torch.testing.assert_close(orbit.azimuth_deg, default_azimuths(21), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="1 or 21"):
        custom_orbit([5.0, 6.0], az)
    with pytest.raises(ValueError, match="between -90 and 90"):
        static_orbit(90.0)


def test_dynamic_orbit_is_seeded_smooth_and_ends_at_the_input_view() -> None:
    a, b, c = dynamic_orbit(7, 10.0), dynamic_orbit(7, 10.0), dynamic_orbit(8, 10.0)
    assert torch.equal(a.elevation_deg, b.elevation_deg) and torch.equal(a.azimuth_deg, b.azimuth_deg)
    assert not torch.equal(a.elevation_deg, c.elevation_deg)
    for orbit in (a, c):
        assert len(orbit) == 21
        assert orbit.azimuth_deg[-1] == 0 and orbit.elevation_deg[-1] == pytest.approx(10.0, abs=1e-4)
        steps = torch.diff(orbit.azimuth_deg[:-1])
        assert torch.all(steps > 0) and orbit.azimuth_deg[-2] < 360  # increasing, below one turn
        assert torch.all((orbit.elevation_deg - 10.0).abs() <= 10.0 + 1e-4)
        assert torch.diff(orbit.elevation_deg).abs().max() < 10.0  # smooth frame to frame


def test_input_first_rolls_the_last_frame_to_the_front() -> None:
    x = torch.arange(21)
    assert input_first(x).tolist() == [20, *range(20)]


def test_camera_set_uses_sv3d_radius_and_fov() -> None:
    cams = orbit_camera_set(static_orbit(10.0))
    assert isinstance(cams, CameraSet) and len(cams) == 21
    centres = cams.c2w[:, :3, 3]
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((21,), SV3D_RADIUS))
    assert torch.all(cams.fov_deg == SV3D_FOV_DEG)
    # the input view (last) looks at the front (+Z camera position) from 10° above
    e = math.radians(10.0)
    torch.testing.assert_close(
        centres[-1], torch.tensor([0.0, math.sin(e), math.cos(e)]) * SV3D_RADIUS, atol=1e-5, rtol=0
    )
    # every camera looks at the origin: its forward axis points from the centre to 0
    forward = cams.c2w[:, :3, 2]
    torch.testing.assert_close(forward, -centres / SV3D_RADIUS, atol=1e-5, rtol=0)
