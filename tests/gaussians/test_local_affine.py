"""The as-affine-as-possible prior (`a3d_cli.gaussians.local_affine`): free for every affine motion, costly for
a point that leaves its neighbours' map, and the fit's choice between it and ARAP."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.errors import OptionError
from a3d_cli.gaussians.arap import ArapRegularizer, knn_neighbours
from a3d_cli.gaussians.local_affine import (
    AFFINE_NEIGHBOURS,
    LocalAffineRegularizer,
    affine_residual_energy,
    residual_projections,
)
from a3d_cli.gaussians.motion_fit import FitSettings, motion_prior


def _points(n: int = 400, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_every_affine_motion_is_free_and_arap_is_not():
    rest = _points()
    prior = LocalAffineRegularizer.from_points(rest, sample_points=0)
    arap = ArapRegularizer.from_points(rest, sample_points=0)
    g = torch.Generator().manual_seed(1)
    linear = torch.eye(3) + 0.3 * torch.randn(3, 3, generator=g)  # stretch and shear as well as rotation
    moved = torch.stack([rest @ linear.T + torch.tensor([0.2, -0.1, 0.4]), rest * 1.3])  # two frames
    assert float(prior(moved)) < 1e-8 * float((moved**2).sum())
    assert float(arap(moved)) > 1.0  # ARAP charges the same motion


def test_a_point_leaving_its_neighbours_costs_what_the_projection_says():
    rest = _points(200, seed=2)
    prior = LocalAffineRegularizer.from_points(rest, k=6, sample_points=0)
    moved = rest.clone()
    moved[7] += torch.tensor([0.05, 0.0, 0.0])  # one point drifts alone
    energy = float(prior(moved[None]))
    assert energy > 0
    # only neighbourhoods that hold point 7 (as centre or neighbour) pay, and a larger drift pays quadratically
    sample, idx = prior.draw()
    involved = (sample == 7) | (idx == 7).any(1)
    alone = affine_residual_energy(moved[None], sample[involved], idx[involved], prior.projections[involved])
    assert float(alone) == pytest.approx(energy, rel=1e-5)
    moved[7] += torch.tensor([0.05, 0.0, 0.0])
    assert float(prior(moved[None])) == pytest.approx(4 * energy, rel=1e-4)


def test_projections_remove_the_rest_edges_even_for_flat_neighbourhoods():
    flat = _points(150, seed=3) * torch.tensor([1.0, 1.0, 0.0])  # a plane: edges span two directions only
    for rest in (_points(150), flat):
        idx = knn_neighbours(rest, 8).idx
        proj = residual_projections(rest, idx)
        edges = rest[idx] - rest[:, None, :]
        assert torch.allclose(proj @ edges, torch.zeros_like(edges), atol=1e-5)
        torch.testing.assert_close(proj @ proj, proj, atol=1e-5, rtol=0)  # a projection
        assert torch.equal(residual_projections(rest, idx, chunk=7), proj)  # in chunks: the same, point by point
    with pytest.raises(ValueError, match="chunk"):
        residual_projections(flat, knn_neighbours(flat, 8).idx, chunk=0)


def test_draws_are_arap_draws_and_frames_are_weighted():
    rest = _points()
    prior = LocalAffineRegularizer.from_points(rest)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    sample, idx = prior.draw(g1)
    assert sample.shape == (512,) and idx.shape == (512, 8)
    moved = torch.stack([rest + 0.01 * torch.randn(rest.shape, generator=g2) for _ in range(3)])
    per_frame = [float(prior.energy(moved[f : f + 1], sample, idx)) for f in range(3)]
    weighted = float(prior.energy(moved, sample, idx, frame_weights=torch.tensor([1.0, 0.0, 2.0])))
    assert weighted == pytest.approx(per_frame[0] + 2 * per_frame[2], rel=1e-5)


def test_three_neighbours_are_refused_and_the_fit_settings_choose_the_prior():
    rest = _points()
    with pytest.raises(ValueError, match="more than 3"):
        LocalAffineRegularizer.from_points(rest, k=3)
    assert type(motion_prior(rest, FitSettings())) is ArapRegularizer
    chosen = motion_prior(rest, FitSettings(motion_prior="affine", arap_samples=64))
    assert isinstance(chosen, LocalAffineRegularizer) and chosen.sample_points == 64 and chosen.k == AFFINE_NEIGHBOURS
    wide = motion_prior(rest, FitSettings(motion_prior="affine", affine_neighbours=32))
    assert isinstance(wide, LocalAffineRegularizer) and wide.k == 32 and wide.projections.shape[1:] == (32, 32)
    few = motion_prior(rest[:10], FitSettings(motion_prior="affine", affine_neighbours=32))
    assert isinstance(few, LocalAffineRegularizer) and few.k == 9  # fewer points than asked for: every other one
    assert motion_prior(rest[:4], FitSettings(motion_prior="affine")) is None  # 3 edges: every motion is affine
    with pytest.raises(OptionError, match="--motion-prior"):
        FitSettings(motion_prior="rigid")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="--affine-neighbours"):
        FitSettings(affine_neighbours=3)
