"""The HexPlane kernel (`a3d_cli.kernels.hexplane`): its reference against a hand-written bilinear product,
its initialisation, and the fast (matmul) backend against the reference, forward and backward."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from a3d_cli.kernels.hexplane import (
    PLANE_AXES,
    TIME_PLANES,
    InterpolationMatrix,
    hexplane_features,
    hexplane_features_matmul,
    hexplane_features_ref,
    hexplane_features_weighted,
    hexplane_weights,
    init_hexplane_level,
)


def _bilinear_by_hand(plane: torch.Tensor, u: float, v: float) -> torch.Tensor:
    """Independent bilinear lookup with corner-aligned coordinates and border clamping: [C]."""
    c, h, w = plane.shape
    px = (min(max(u, -1.0), 1.0) + 1) / 2 * (w - 1)
    py = (min(max(v, -1.0), 1.0) + 1) / 2 * (h - 1)
    x0, y0 = min(int(math.floor(px)), w - 2), min(int(math.floor(py)), h - 2)
    fx, fy = px - x0, py - y0
    return (
        plane[:, y0, x0] * (1 - fx) * (1 - fy)
        + plane[:, y0, x0 + 1] * fx * (1 - fy)
        + plane[:, y0 + 1, x0] * (1 - fx) * fy
        + plane[:, y0 + 1, x0 + 1] * fx * fy
    )


def test_hexplane_matches_hand_written_bilinear_product():
    g = torch.Generator().manual_seed(0)
    levels = [
        [torch.rand(s, generator=g) + 0.5 for s in [(3, 5, 4), (3, 6, 4), (3, 3, 4), (3, 6, 5), (3, 3, 5), (3, 3, 6)]],
        [torch.rand(s, generator=g) + 0.5 for s in [(2, 7, 9), (2, 8, 9), (2, 4, 9), (2, 8, 7), (2, 4, 7), (2, 4, 8)]],
    ]
    xyz = torch.rand(7, 3, generator=g) * 2.4 - 1.2  # some points outside the cube: border clamp
    t = torch.tensor([-1.0, 0.3, 1.0])
    out = hexplane_features_ref(levels, xyz, t)
    assert out.shape == (3, 7, 5)
    for fi, ni in itertools.product(range(3), range(7)):
        p4 = [float(xyz[ni, 0]), float(xyz[ni, 1]), float(xyz[ni, 2]), float(t[fi])]
        expected = []
        for planes in levels:
            prod = torch.ones(planes[0].shape[0])
            for (a, b), plane in zip(PLANE_AXES, planes, strict=True):
                prod = prod * _bilinear_by_hand(plane, p4[a], p4[b])
            expected.append(prod)
        torch.testing.assert_close(out[fi, ni], torch.cat(expected), rtol=1e-5, atol=1e-6)


def test_hexplane_init_is_time_invariant_and_gradients_reach_every_plane():
    g = torch.Generator().manual_seed(0)
    planes = [p.requires_grad_() for p in init_hexplane_level((6, 6, 6, 4), 5, generator=g)]
    for p, plane in enumerate(planes):
        plane = plane.detach()
        if p in TIME_PLANES:
            assert torch.all(plane == 1.0)
        else:
            assert 0.1 <= float(plane.min()) and float(plane.max()) <= 0.5
    xyz = torch.rand(20, 3, generator=g) * 2 - 1
    feats = hexplane_features([planes], xyz, torch.linspace(-1, 1, 4))
    assert feats.shape == (4, 20, 5) and torch.isfinite(feats).all()
    torch.testing.assert_close(feats[0], feats[3])  # time planes constant -> no dependence on t
    (feats * torch.randn(feats.shape, generator=g)).sum().backward()
    for p, plane in enumerate(planes):
        assert plane.grad is not None and plane.grad.abs().sum() > 0, f"no gradient into plane {p}"


@pytest.mark.parametrize(
    ("res", "n", "f"), [((5, 6, 7, 3), 50, 1), ((8, 9, 10, 4), 200, 15), ((50, 50, 50, 8), 300, 4)]
)
def test_matmul_backend_matches_grid_sample_forward_and_backward(res, n, f):
    g = torch.Generator().manual_seed(n)
    levels = [init_hexplane_level(res, 4, generator=g), init_hexplane_level([2 * r for r in res], 3, generator=g)]
    levels = [[(p * (torch.rand(p.shape, generator=g) + 0.5)).requires_grad_() for p in lv] for lv in levels]
    xyz = torch.rand(n, 3, generator=g) * 2.4 - 1.2  # some outside: border clamp in both
    t = torch.rand(f, generator=g) * 2 - 1
    ref, fast = hexplane_features_ref(levels, xyz, t), hexplane_features(levels, xyz, t, backend="matmul")
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    cot = torch.randn(ref.shape, generator=g)  # one random cotangent through both paths
    params = [p for lv in levels for p in lv]
    for a, b in zip(
        torch.autograd.grad((ref * cot).sum(), params), torch.autograd.grad((fast * cot).sum(), params), strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)  # sums in another order: fp32 rounding


@pytest.mark.gpu
def test_matmul_backend_matches_grid_sample_on_cuda_and_replays_from_a_graph():
    """cuSPARSE's products against `grid_sample` at the motion field's three levels, and recorded as a CUDA
    graph (as the fit's step is) with new cotangents at replay."""
    g = torch.Generator().manual_seed(1)
    sizes = ((12, 12, 12, 8), (50, 50, 50, 8), (100, 100, 100, 16))
    levels = [
        [
            (p * (torch.rand(p.shape, generator=g) + 0.5)).cuda().requires_grad_()
            for p in init_hexplane_level(res, 16, generator=g)
        ]
        for res in sizes
    ]
    params = [p for lv in levels for p in lv]
    xyz = (torch.rand(3000, 3, generator=g) * 2.2 - 1.1).cuda()
    t = torch.linspace(-1, 1, 16, device="cuda")
    weights, rows = hexplane_weights(levels, xyz, t), torch.tensor([0, 5, 9, 15], device="cuda")
    cot = torch.randn(4, 3000, 48, device="cuda")

    def grads(fast: bool) -> tuple[torch.Tensor, ...]:
        out = hexplane_features_weighted(levels, weights, rows) if fast else hexplane_features_ref(levels, xyz, t[rows])
        return torch.autograd.grad((out * cot).sum(), params)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        grads(True)  # warm the libraries outside the recording
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        recorded = grads(True)
    cot.normal_(generator=None)
    graph.replay()
    for got, want in zip(recorded, grads(False), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_precomputed_weights_give_the_matmul_backend_at_any_subset_of_times():
    """The weights of fixed points at T times, computed once, serve any rows of those times: same features."""
    g = torch.Generator().manual_seed(3)
    levels = [init_hexplane_level((5, 6, 7, 3), 4, generator=g), init_hexplane_level((9, 8, 7, 5), 3, generator=g)]
    levels = [[(p * (torch.rand(p.shape, generator=g) + 0.5)).requires_grad_() for p in lv] for lv in levels]
    xyz, t = torch.rand(40, 3, generator=g) * 2.2 - 1.1, torch.linspace(-1, 1, 16)
    weights = hexplane_weights(levels, xyz, t)
    rows = torch.tensor([3, 3, 15, 0, 9])
    got = hexplane_features_weighted(levels, weights, rows)
    assert torch.equal(got, hexplane_features_matmul(levels, xyz, t[rows]))
    assert torch.equal(hexplane_features_weighted(levels, weights), hexplane_features_matmul(levels, xyz, t))
    params = [p for lv in levels for p in lv]
    cot = torch.randn(got.shape, generator=g)
    want = torch.autograd.grad((hexplane_features_matmul(levels, xyz, t[rows]) * cot).sum(), params)
    for a, b in zip(torch.autograd.grad((got * cot).sum(), params), want, strict=True):
        assert torch.equal(a, b)
    assert set(weights.at) == {3, 5} and all(w.shape == (16, r) for r, w in weights.at.items())


def test_interpolation_matrix_multiplies_like_its_dense_form_and_its_backward_uses_the_transpose():
    g = torch.Generator().manual_seed(5)
    cols = torch.tensor([[1, 3], [0, 2], [0, 3], [2, 1], [1, 0]])  # column 3 twice, in rows 0 and 2
    values = torch.rand(5, 2, generator=g)
    matrix = InterpolationMatrix.from_rows(cols, values, 4)
    dense = torch.zeros(5, 4).scatter_(1, cols, values)
    assert matrix.rows == 5
    torch.testing.assert_close(matrix.matrix.to_dense(), dense)
    torch.testing.assert_close(matrix.transpose.to_dense(), dense.T)
    table = torch.randn(4, 6, generator=g, requires_grad=True)
    out = matrix(table.T.contiguous().T)  # a column-major table too
    torch.testing.assert_close(out, dense @ table.detach())
    cot = torch.randn(5, 6, generator=g)
    (grad,) = torch.autograd.grad((out * cot).sum(), table)
    torch.testing.assert_close(grad, dense.T @ cot)
    (grad_expanded,) = torch.autograd.grad(matrix(table).sum(0).sum(), table)  # a broadcast (non-contiguous) grad
    torch.testing.assert_close(grad_expanded, dense.sum(0)[:, None].expand(4, 6))


def test_planes_receive_contiguous_gradients_from_the_matmul_backend():
    """A strided gradient would make autograd copy it into the parameter's layout on its own, a launch outside
    the fit's recorded CUDA graph for every plane at every step."""
    g = torch.Generator().manual_seed(2)
    planes = [p.requires_grad_() for p in init_hexplane_level((6, 7, 8, 4), 3, generator=g)]
    arriving: list[bool] = []
    for plane in planes:
        plane.register_hook(lambda grad: arriving.append(grad.is_contiguous()))
    weights = hexplane_weights([planes], torch.rand(30, 3, generator=g) * 2 - 1, torch.linspace(-1, 1, 5))
    hexplane_features_weighted([planes], weights, torch.tensor([1, 4])).square().sum().backward()
    assert arriving == [True] * 6


def test_hexplane_rejects_bad_shapes():
    planes = init_hexplane_level((4, 4, 4, 4), 2)
    with pytest.raises(ValueError, match="xyz"):
        hexplane_features([planes], torch.zeros(5, 4), torch.zeros(1))
    with pytest.raises(ValueError, match="6 planes"):
        hexplane_features([planes[:5]], torch.zeros(5, 3), torch.zeros(1))
    with pytest.raises(ValueError, match="backend"):
        hexplane_features([planes], torch.zeros(3, 3), torch.zeros(1), backend="cuda")
