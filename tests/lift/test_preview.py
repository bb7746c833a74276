"""The lift's turntable preview (`lift/preview.py`): its mesh splat count and the timed preview."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from a3d_cli.lift import synthetic as syn
from a3d_cli.lift.preview import MESH_SPLATS_MAX, MESH_SPLATS_MIN, lift_turntable, preview_mesh_splats, turntable


def test_mesh_splats_grow_with_the_preview_within_their_bounds():
    assert preview_mesh_splats(32) == MESH_SPLATS_MIN  # 512 pixels' worth: the floor
    assert preview_mesh_splats(100) == 100 * 100 // 2
    assert preview_mesh_splats(2048) == MESH_SPLATS_MAX
    sizes = [32, 64, 128, 256, 346, 347, 384, 1024]
    counts = [preview_mesh_splats(s) for s in sizes]
    assert counts == sorted(counts) and all(MESH_SPLATS_MIN <= c <= MESH_SPLATS_MAX for c in counts)


def test_lift_turntable_is_the_turntable_at_that_density_and_reports_its_seconds():
    torch.manual_seed(0)
    mesh = syn.normalized(syn.toy_mesh())
    result = SimpleNamespace(gaussians=syn.mesh_splats(mesh, 800), mesh=mesh)
    frames, seconds = lift_turntable(result, size=32, frames=3)
    assert frames.shape == (3, 32, 64, 3) and isinstance(seconds, float)
    torch.testing.assert_close(frames, turntable(result.gaussians, mesh, 32, 3, mesh_splats=preview_mesh_splats(32)))
