"""ARAP regulariser: neighbourhoods (k-NN, mesh 1-rings), rotation fit, energy behaviour and gradients."""

from __future__ import annotations

import math

import torch

from a3d_cli.gaussians.arap import (
    ArapRegularizer,
    Neighbours,
    arap_energy,
    best_rotations,
    knn_neighbours,
    mesh_one_ring,
    sample_neighbours,
)


def _rotation(axis: list[float], angle: float) -> torch.Tensor:
    a = torch.nn.functional.normalize(torch.tensor(axis, dtype=torch.float32), dim=0)
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return torch.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def test_knn_matches_brute_force_and_excludes_self():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(300, 3, generator=g)
    nb = knn_neighbours(pts, k=3, chunk_elements=300 * 7)  # force several chunks
    d = torch.cdist(pts, pts)
    d.fill_diagonal_(float("inf"))
    expected = d.topk(3, largest=False).indices
    assert torch.equal(nb.idx, expected)
    assert not (nb.idx == torch.arange(300)[:, None]).any()


def test_mesh_one_ring_of_a_tetrahedron_and_a_strip():
    tet = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    ring = mesh_one_ring(tet, 5)  # vertex 4 is isolated
    assert ring.idx.shape == (5, 3)
    for v in range(4):
        assert sorted(ring.idx[v].tolist()) == sorted(set(range(4)) - {v})
    assert (ring.idx[4] == -1).all()
    strip = torch.tensor([[0, 1, 2], [1, 3, 2], [2, 3, 4]])
    ring = mesh_one_ring(strip, 5)
    assert sorted(x for x in ring.idx[0].tolist() if x >= 0) == [1, 2]
    assert sorted(x for x in ring.idx[2].tolist() if x >= 0) == [0, 1, 3, 4]


def test_sample_neighbours_draws_distinct_ring_members():
    ring = Neighbours(torch.tensor([[1, 2, 3, 4, 5], [0, 2, -1, -1, -1], [0, -1, -1, -1, -1]]))
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        s = sample_neighbours(ring, 3, g).idx
        assert s.shape == (3, 3)
        assert len(set(s[0].tolist())) == 3 and set(s[0].tolist()) <= {1, 2, 3, 4, 5}
        assert sorted(s[1].tolist()) == [-1, 0, 2] and sorted(s[2].tolist()) == [-1, -1, 0]
        seen.update(s[0].tolist())
    assert seen == {1, 2, 3, 4, 5}  # every ring member gets drawn


def test_best_rotation_recovers_a_known_rotation_even_for_reflected_fits():
    g = torch.Generator().manual_seed(0)
    rest = torch.randn(6, 4, 3, generator=g)
    rots = torch.stack([_rotation([1, 2, 3], 0.4 * i) for i in range(6)])
    moved = torch.einsum("bij,bkj->bki", rots, rest)
    torch.testing.assert_close(best_rotations(rest, moved, torch.ones(6, 4)), rots, atol=1e-4, rtol=1e-4)
    mirrored = rest * torch.tensor([1.0, 1.0, -1.0])  # best orthogonal fit is a reflection
    r = best_rotations(rest, mirrored, torch.ones(6, 4))
    torch.testing.assert_close(torch.det(r), torch.ones(6), atol=1e-4, rtol=0)


def test_energy_is_zero_for_rigid_motion_and_grows_with_stretch():
    g = torch.Generator().manual_seed(0)
    rest = torch.rand(400, 3, generator=g)
    reg = ArapRegularizer.from_points(rest, k=3, sample_points=0)
    rigid = torch.stack([rest @ _rotation([0, 1, 0], a).T + torch.tensor([0.3, -0.1, 0.2]) for a in (0.2, 1.0, 2.5)])
    assert float(reg(rigid)) < 1e-8
    stretch = [float(reg((rest * torch.tensor([1 + s, 1.0, 1.0]))[None])) for s in (0.05, 0.1, 0.2)]
    assert 0 < stretch[0] < stretch[1] < stretch[2]
    # two frames score twice one frame (sum over frames, the reference's reduction)
    one = rest * torch.tensor([1.1, 1.0, 1.0])
    torch.testing.assert_close(reg(torch.stack([one, one])), 2 * reg(one[None]))


def test_energy_gradient_pulls_a_displaced_point_back():
    g = torch.Generator().manual_seed(0)
    rest = torch.rand(200, 3, generator=g)
    nb = knn_neighbours(rest, 3)
    moved = rest.clone()
    moved[17] += torch.tensor([0.05, 0.0, 0.0])
    x = moved[None].clone().requires_grad_()
    e = arap_energy(rest, x, nb)
    e.backward()
    assert float(e.detach()) > 0 and torch.isfinite(x.grad).all()
    assert float(x.grad[0, 17, 0]) > 0  # descending the gradient moves the point back towards -x
    x2 = (x - 0.1 * x.grad).detach()
    assert float(arap_energy(rest, x2, nb)) < float(e.detach())


def test_sampled_energy_is_an_unbiased_scaled_estimate():
    g = torch.Generator().manual_seed(0)
    rest = torch.rand(300, 3, generator=g)
    deformed = (rest + 0.05 * torch.sin(4 * rest)[:, [1, 2, 0]])[None]
    full = float(ArapRegularizer.from_points(rest, sample_points=0)(deformed))
    reg = ArapRegularizer.from_points(rest, sample_points=512)
    est = sum(float(reg(deformed, g)) for _ in range(40)) / 40 * 300 / 512
    assert abs(est - full) / full < 0.1


def test_mesh_regularizer_resamples_neighbours_each_call():
    # a 6×6 grid of vertices, triangulated; a bend deforms it non-rigidly
    n = 6
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    verts = torch.stack([xs.flatten(), ys.flatten(), torch.zeros(n * n)], -1).float() / n
    faces = []
    for y in range(n - 1):
        for x in range(n - 1):
            v = y * n + x
            faces += [[v, v + 1, v + n], [v + 1, v + n + 1, v + n]]
    reg = ArapRegularizer.from_mesh(verts, torch.tensor(faces), k=3, sample_points=0)
    bent = verts.clone()
    bent[:, 2] = 0.5 * (verts[:, 0] - 0.5) ** 2 + 0.3 * verts[:, 1] * verts[:, 0]
    g = torch.Generator().manual_seed(0)
    values = {round(float(reg(bent[None], g)), 8) for _ in range(10)}
    assert len(values) > 1 and min(values) > 0  # different neighbours drawn per call
    assert float(reg(verts[None] + 1.0, g)) < 1e-10


def test_sync_free_rotation_fit_matches_the_svd_fit():
    """`best_rotations` (Horn's quaternion by repeated squaring) equals the SVD route with the reflection fix."""
    from a3d_cli.gaussians.arap import best_rotations_svd

    g = torch.Generator().manual_seed(3)
    b = 400
    rest = torch.randn(b, 3, 3, generator=g)
    rots = torch.stack([_rotation(torch.randn(3, generator=g).tolist(), float(a)) for a in torch.rand(b, generator=g) * 3])
    noisy = torch.einsum("bij,bkj->bki", rots, rest) + 0.05 * torch.randn(b, 3, 3, generator=g)
    planar = rest * torch.tensor([1.0, 1.0, 0.0])  # coplanar edges: one singular value is zero
    planar_moved = torch.einsum("bij,bkj->bki", rots, planar) + 0.02 * torch.randn(b, 3, 3, generator=g)
    mirrored = rest * torch.tensor([1.0, 1.0, -1.0])  # best orthogonal fit is a reflection
    w = torch.rand(b, 3, generator=g) + 0.5
    for src, dst in ((rest, noisy), (planar, planar_moved), (rest, mirrored)):
        r = best_rotations(src, dst, w)
        torch.testing.assert_close(r, best_rotations_svd(src, dst, w), atol=2e-4, rtol=0)
        torch.testing.assert_close(torch.det(r), torch.ones(b), atol=1e-4, rtol=0)
    # no edges at all (padding only): the identity, not NaN
    torch.testing.assert_close(best_rotations(rest[:2], noisy[:2], torch.zeros(2, 3)), torch.eye(3).expand(2, 3, 3))


def test_draw_then_energy_is_the_same_call_with_the_same_seed():
    g = torch.Generator().manual_seed(0)
    rest = torch.rand(100, 3, generator=g)
    deformed = torch.stack([rest + 0.03 * torch.sin(5 * rest + k) for k in range(3)])
    for reg in (ArapRegularizer.from_points(rest, sample_points=64), ArapRegularizer.from_points(rest, sample_points=0)):
        whole = reg(deformed, torch.Generator().manual_seed(7))
        sample, idx = reg.draw(torch.Generator().manual_seed(7))
        assert sample.shape[0] == (64 if reg.sample_points else 100) and idx.shape == (sample.shape[0], 3)
        torch.testing.assert_close(reg.energy(deformed, sample, idx), whole)
    torch.testing.assert_close(
        ArapRegularizer.from_points(rest, sample_points=0)(deformed), arap_energy(rest, deformed, knn_neighbours(rest, 3))
    )


def test_a_draw_into_given_tensors_is_the_same_draw_in_place() -> None:
    """The motion fit draws into a recorded graph's input buffers: the same numbers, in those very tensors."""
    rest = torch.rand(60, 3, generator=torch.Generator().manual_seed(1))
    faces = torch.tensor([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 2, 4]])
    for reg in (
        ArapRegularizer.from_points(rest, sample_points=32),
        ArapRegularizer.from_points(rest, sample_points=0),
        ArapRegularizer.from_mesh(rest, faces, sample_points=32),  # ring members redrawn first, then points
    ):
        want = reg.draw(torch.Generator().manual_seed(3))
        into = (torch.full_like(want[0], -7), torch.full_like(want[1], -7))
        got = reg.draw(torch.Generator().manual_seed(3), out=into)
        assert got[0] is into[0] and got[1] is into[1]
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_nonrigidity_is_zero_for_a_rigid_motion_and_the_stretch_for_a_uniform_scaling() -> None:
    from a3d_cli.gaussians.arap import nonrigidity_pct

    rest = torch.rand(300, 3, generator=torch.Generator().manual_seed(0))
    c, s = math.cos(0.7), math.sin(0.7)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    assert nonrigidity_pct(torch.stack([rest, rest @ rot.T + 0.3, rest @ rot.T - 0.1])) < 0.01
    assert abs(nonrigidity_pct(torch.stack([rest, 1.1 * rest @ rot.T])) - 10.0) < 0.1

    def sheared(g: float) -> torch.Tensor:
        out = rest.clone()
        out[:, 0] = out[:, 0] + g * out[:, 1]  # a shear: no stretch of the x axis, yet not rigid
        return torch.stack([rest, out])

    assert 0.5 < nonrigidity_pct(sheared(0.05)) < nonrigidity_pct(sheared(0.1)) < nonrigidity_pct(sheared(0.2))
