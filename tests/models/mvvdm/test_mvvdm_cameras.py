"""a3d cameras → MVDream's camera input: hand-computed matrices and MVDream's own construction."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_cli.models.mvvdm.cameras import mvdream_c2w, mvdream_camera_embedding_input
from a3d_cli.render.cameras import mvvdm_cameras, orbit_cameras


def mvdream_orbit_c2w(elevation_deg: float, azimuth_deg: float) -> torch.Tensor:
    """MVDream's camera for an orbit view, following its recipe step by step: z-up world, centre
    (cos e cos a, cos e sin a, sin e), look at the origin, right = lookat × up, up' = right × lookat,
    columns (right, up', −lookat, centre)."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    pos = torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)], dtype=torch.float64)
    lookat = -pos / pos.norm()
    right = torch.linalg.cross(lookat, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    right = right / right.norm()
    up = torch.linalg.cross(right, lookat)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up / up.norm(), -lookat, pos
    return m


def test_front_view_by_hand():
    """Elevation 15°, azimuth 0 (a3d's front): MVDream's camera sits on +X, z up."""
    c, s = math.cos(math.radians(15)), math.sin(math.radians(15))
    want = torch.tensor([
        [0.0, -s, c, c],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, c, s, s],
        [0.0, 0.0, 0.0, 1.0],
    ], dtype=torch.float64)
    torch.testing.assert_close(mvdream_c2w(mvvdm_cameras().c2w)[0], want, atol=1e-6, rtol=0)


def test_side_view_by_hand():
    """Azimuth 90 (a3d camera on +X): MVDream's camera sits on +Y, looking back along −Y."""
    c, s = math.cos(math.radians(15)), math.sin(math.radians(15))
    want = torch.tensor([
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -s, c, c],
        [0.0, c, s, s],
        [0.0, 0.0, 0.0, 1.0],
    ], dtype=torch.float64)
    torch.testing.assert_close(mvdream_c2w(mvvdm_cameras().c2w)[1], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("elev,azim,radius", [(15, 0, 3.0), (15, 270, 3.0), (0, 45, 1.7), (30, 123.4, 2.2), (-10, 200, 5.0)])
def test_matches_mvdream_construction_for_the_same_angles(elev, azim, radius):
    ours = mvdream_c2w(orbit_cameras([elev], [azim], radius=radius).c2w)[0]
    torch.testing.assert_close(ours, mvdream_orbit_c2w(elev, azim), atol=2e-6, rtol=0)


def test_rotation_is_proper_and_translation_unit():
    cams = orbit_cameras([5.0, 20.0, 35.0], [10.0, 100.0, 300.0], radius=[2.0, 3.0, 4.5])
    m = mvdream_c2w(cams.c2w)
    torch.testing.assert_close(torch.linalg.det(m[:, :3, :3]), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(m[:, :3, 3].norm(dim=-1), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_embedding_input_is_row_major_flattening():
    cams = mvvdm_cameras().c2w
    emb = mvdream_camera_embedding_input(cams)
    assert emb.shape == (4, 16) and emb.dtype == torch.float32
    m = mvdream_c2w(cams)
    assert emb[2, 3] == pytest.approx(float(m[2, 0, 3]), abs=1e-7)  # translation x of view 2
    assert emb[2, 4] == pytest.approx(float(m[2, 1, 0]), abs=1e-7)
    torch.testing.assert_close(emb[:, 12:], torch.tensor([[0.0, 0.0, 0.0, 1.0]] * 4))
