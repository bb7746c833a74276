"""`lift.unseen`: which fitted splats no view shows, and the colours the texture bake gives them."""

from __future__ import annotations

import numpy as np
import torch

from a3d_cli.lift import synthetic as syn
from a3d_cli.lift.fit import render_chunked
from a3d_cli.lift.unseen import blend_weights, colour_unseen, neighbourhood_colours, seen_splats
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.models.sv3d.cameras import orbit_camera_set, static_orbit

SIZE = 96
DEPTH_TOLERANCE = 0.01
SIDE = (0.8, 0.3, 0.2)
BOTTOM = (0.1, 0.2, 0.9)


def _box_splats():  # noqa: ANN202
    """Splats on a flat box (0.7 × 0.2 × 0.7, y up), one colour, and which lie on its bottom face."""
    import trimesh

    box = trimesh.creation.box(extents=(0.7, 0.2, 0.7)).subdivide().subdivide()
    mesh = SurfaceMesh(
        np.asarray(box.vertices),
        np.asarray(box.faces, dtype=np.int64),
        np.full((len(box.vertices), 4), 0.5, np.float32),
    )
    g = syn.mesh_splats(mesh, 12_000)
    return g.with_(colors=torch.tensor(SIDE).expand(len(g), 3).clone()), g.means[:, 1] < -0.099


def test_an_orbit_above_the_ground_shows_the_sides_but_not_the_bottom() -> None:
    g, bottom = _box_splats()
    weights = blend_weights(g, orbit_camera_set(static_orbit(10.0)), SIZE)
    inner = g.means[:, [0, 2]].abs().amax(dim=1) < 0.3  # away from the bottom's edges, which the silhouette shows
    side = g.means[:, 1].abs() < 0.09  # the four side faces, away from the top and bottom edges
    assert int((bottom & inner).sum()) > 1000
    assert bool((weights[bottom & inner] < 0.5).all())
    assert float((weights[side] >= 0.5).float().mean()) > 0.95
    assert float(weights.min()) >= 0.0


def test_unseen_splats_take_their_surroundings_colour_and_seen_ones_keep_theirs() -> None:
    g, bottom = _box_splats()
    cams = orbit_camera_set(static_orbit(10.0))
    _, alphas, depths = render_chunked(g, cams, SIZE, depth=True)
    seen = seen_splats(g, cams, depths, alphas, DEPTH_TOLERANCE)
    centre_of_bottom = bottom & (g.means[:, [0, 2]].abs().amax(dim=1) < 0.2)  # the depth test forgives near edges
    assert not bool(seen[centre_of_bottom].any())
    colours = g.colors.clone()
    colours[~seen] = torch.tensor(BOTTOM)  # what the visual hull would have guessed, wrongly
    g = g.with_(colors=colours)
    recoloured, found = colour_unseen(g, cams, depths, alphas, DEPTH_TOLERANCE, half_width=0.6, radius=0.2)
    assert torch.equal(found, seen)
    assert torch.equal(recoloured.colors[seen], g.colors[seen])
    assert torch.equal(recoloured.means, g.means) and torch.equal(recoloured.opacities, g.opacities)
    assert int((~seen).sum()) > 1000
    assert float((recoloured.colors[~seen] - torch.tensor(SIDE)).abs().max()) < 1e-5  # the seen ones' mean
    # a neighbourhood too small to reach any seen splat from the bottom's middle: the nearest seen one's colour
    tight, _ = colour_unseen(g, cams, depths, alphas, DEPTH_TOLERANCE, half_width=0.6, radius=0.05)
    assert float((tight.colors[~seen] - torch.tensor(SIDE)).abs().max()) < 1e-5


def test_all_seen_leaves_the_splats_alone() -> None:
    g, _ = _box_splats()
    top = g.subset(g.means[:, 1] > 0.099)  # the top face alone, seen from every view of an orbit above it
    cams = orbit_camera_set(static_orbit(30.0))
    _, alphas, depths = render_chunked(top, cams, SIZE, depth=True)
    recoloured, seen = colour_unseen(top, cams, depths, alphas, DEPTH_TOLERANCE, half_width=0.6)
    assert bool(seen.all())
    assert recoloured is top


def test_neighbourhood_colours_average_within_the_cube_and_report_empty_ones() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.tensor([-0.5, 0.0, 0.0]) + (torch.rand(50, 3, generator=gen) - 0.5) * 0.1
    b = torch.tensor([0.5, 0.0, 0.0]) + (torch.rand(30, 3, generator=gen) - 0.5) * 0.1
    source = torch.cat([a, b])
    colours = torch.cat([torch.full((50, 3), 0.2), torch.full((30, 3), 0.9)])
    points = torch.tensor([[-0.5, 0.0, 0.0], [0.5, 0.05, 0.0], [0.0, 0.8, 0.0]])
    cols, count = neighbourhood_colours(points, source, colours, radius=0.2, half_width=1.0)
    assert count.tolist() == [50.0, 30.0, 0.0]
    assert torch.allclose(cols[0], torch.full((3,), 0.2)) and torch.allclose(cols[1], torch.full((3,), 0.9))
    wide, n = neighbourhood_colours(points[:1], source, colours, radius=1.2, half_width=1.0)  # both groups
    assert n.tolist() == [80.0]
    assert torch.allclose(wide[0], torch.full((3,), (50 * 0.2 + 30 * 0.9) / 80))
