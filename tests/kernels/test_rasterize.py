"""Tests of the Gaussian rasterizer: the tiled PyTorch backend (`rasterize_torch`) against closed forms, against
the dense all-pairs reference (`rasterize_ref`), against finite differences and against gsplat's pure-torch pieces
(CPU); on a GPU, gsplat's CUDA rasterizer against the reference and the tiled backend, forward and backward."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from helpers import REPO

from a3d_cli.kernels import RasterOutput, available_backends, rasterize, rasterize_ref, rasterize_torch, select_backend
from a3d_cli.kernels.composite_tiled import bin_tiles, composite_tiles, composite_tiles_autograd
from a3d_cli.kernels.projection_ref import camera_centers, project_gaussians_ref
from a3d_cli.kernels.sh_ref import SH_C0, sh_basis, sh_colors

F64 = torch.float64


# ----------------------------------------------------------------------------------------------- helpers
def pinhole(f: float, w: int, h: int, c: int = 1, dtype: torch.dtype = F64) -> torch.Tensor:
    """[C, 3, 3] intrinsics with the principal point at the image centre."""
    k = torch.tensor([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    return k.expand(c, 3, 3).clone()


def look_from(yaw_deg: float, pitch_deg: float, dist: float, dtype: torch.dtype = F64) -> torch.Tensor:
    """[4, 4] world→camera (OpenCV) for a camera at distance `dist` looking at the origin."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=dtype)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]], dtype=dtype)
    vm = torch.eye(4, dtype=dtype)
    vm[:3, :3] = rx @ ry
    vm[2, 3] = dist
    return vm


def random_scene(seed: int, n: int, c: int, w: int, h: int, dtype: torch.dtype = F64, opacity=(0.2, 0.95)):
    """n splats around the origin seen by c cameras 3 units away; returns the 7 positional inputs."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 1.6  # [N, 3]
    quats = torch.randn(n, 4, generator=g, dtype=dtype)  # [N, 4]
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.15 + 0.02  # [N, 3]
    lo, hi = opacity
    opac = torch.rand(n, generator=g, dtype=dtype) * (hi - lo) + lo  # [N]
    colors = torch.rand(n, 3, generator=g, dtype=dtype)  # [N, 3]
    viewmats = torch.stack([look_from(40.0 * i - 20.0, 10.0 * i, 3.0, dtype) for i in range(c)])  # [C, 4, 4]
    Ks = pinhole(0.9 * w, w, h, c, dtype)  # [C, 3, 3]
    return means, quats, scales, opac, colors, viewmats, Ks


# ------------------------------------------------------------------------------------------ closed forms
def test_single_isotropic_gaussian_matches_formula():
    w, h, f, z, s, o = 24, 20, 30.0, 2.5, 0.1, 0.8
    means = torch.tensor([[0.1, -0.05, z]], dtype=F64)
    out = rasterize_torch(
        means,
        torch.tensor([[1.0, 0, 0, 0]], dtype=F64),
        torch.full((1, 3), s, dtype=F64),
        torch.tensor([o], dtype=F64),
        torch.tensor([[0.2, 0.5, 1.0]], dtype=F64),
        torch.eye(4, dtype=F64)[None],
        pinhole(f, w, h),
        w,
        h,
    )
    # An isotropic splat off the optical axis at (x, y, z): J Jᵀ = (f/z)²·(I + u uᵀ) with u = (x/z, y/z),
    # so Σ2D = (f·s/z)²·(I + u uᵀ) + eps2d·I, centred at f·u + principal point.
    u = torch.tensor([0.1 / z, -0.05 / z], dtype=F64)
    cov = (f * s / z) ** 2 * (torch.eye(2, dtype=F64) + torch.outer(u, u)) + 0.3 * torch.eye(2, dtype=F64)
    prec = torch.linalg.inv(cov)
    mx, my = f * u[0] + w / 2, f * u[1] + h / 2
    ys, xs = torch.meshgrid(torch.arange(h, dtype=F64) + 0.5, torch.arange(w, dtype=F64) + 0.5, indexing="ij")
    d = torch.stack([xs - mx, ys - my], -1)  # [H, W, 2]
    alpha = o * torch.exp(-0.5 * torch.einsum("hwi,ij,hwj->hw", d, prec, d))
    alpha = torch.where(alpha < 1 / 255, 0.0, alpha)
    assert (alpha == 0).any() and (alpha > 0.5).any()  # the frame shows both the splat and its cut-off
    torch.testing.assert_close(out.alphas[0, ..., 0], alpha)
    torch.testing.assert_close(out.colors[0], alpha[..., None] * torch.tensor([0.2, 0.5, 1.0], dtype=F64))
    assert out.depths is None


def test_nearer_splat_occludes_regardless_of_input_order():
    w = h = 16
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]], dtype=F64)  # red in front of green
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=F64)
    scales = torch.tensor([[0.3] * 3, [0.6] * 3], dtype=F64)
    opac = torch.tensor([0.7, 0.9], dtype=F64)
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=F64)
    args = (torch.eye(4, dtype=F64)[None], pinhole(20.0, w, h), w, h)
    a = rasterize_torch(means, quats, scales, opac, colors, *args)
    perm = torch.tensor([1, 0])
    b = rasterize_torch(means[perm], quats[perm], scales[perm], opac[perm], colors[perm], *args)
    torch.testing.assert_close(a.colors, b.colors)
    torch.testing.assert_close(a.alphas, b.alphas)
    # Closed form at the pixel next to the centre (offset 0.5, 0.5 from both means).
    a1 = 0.7 * math.exp(-0.5 * 0.5 / ((20 * 0.3 / 2) ** 2 + 0.3))
    a2 = 0.9 * math.exp(-0.5 * 0.5 / ((20 * 0.6 / 4) ** 2 + 0.3))
    expect = torch.tensor([a1, (1 - a1) * a2, 0.0], dtype=F64)
    torch.testing.assert_close(a.colors[0, 8, 8], expect)
    torch.testing.assert_close(a.alphas[0, 8, 8, 0], torch.tensor(a1 + (1 - a1) * a2, dtype=F64))


def test_background_is_added_where_splats_leave_light_through():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(1, 30, 2, 20, 16)
    bg = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.25, 1.0]], dtype=F64)  # [C, 3]
    plain = rasterize_torch(means, quats, scales, opac, colors, viewmats, Ks, 20, 16)
    on_bg = rasterize_torch(means, quats, scales, opac, colors, viewmats, Ks, 20, 16, backgrounds=bg)
    expect = plain.colors + (1 - plain.alphas) * bg[:, None, None, :]
    torch.testing.assert_close(on_bg.colors, expect)
    torch.testing.assert_close(on_bg.alphas, plain.alphas)
    assert (plain.alphas < 0.5).any()  # some background shows


def test_expected_depth_of_one_opaque_splat_is_its_depth():
    w = h = 12
    out = rasterize_torch(
        torch.tensor([[0.2, 0.1, 3.5]], dtype=F64),
        torch.tensor([[0.9, 0.1, 0.3, -0.2]], dtype=F64),
        torch.tensor([[0.4, 0.3, 0.2]], dtype=F64),
        torch.tensor([0.99], dtype=F64),
        torch.ones(1, 3, dtype=F64),
        torch.eye(4, dtype=F64)[None],
        pinhole(15.0, w, h),
        w,
        h,
        render_mode="RGB+ED",
    )
    covered = out.alphas[..., 0] > 0
    assert covered.sum() > 20
    torch.testing.assert_close(out.depths[..., 0][covered], torch.full((int(covered.sum()),), 3.5, dtype=F64))
    assert (out.depths[..., 0][~covered] == 0).all()


def test_expected_depth_of_two_splats_is_the_weighted_mean():
    w = h = 8
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 5.0]], dtype=F64)
    out = rasterize_torch(
        means,
        torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=F64),
        torch.tensor([[0.2] * 3, [0.5] * 3], dtype=F64),
        torch.tensor([0.5, 0.8], dtype=F64),
        torch.ones(2, 3, dtype=F64),
        torch.eye(4, dtype=F64)[None],
        pinhole(10.0, w, h),
        w,
        h,
        render_mode="RGB+ED",
    )
    a1 = 0.5 * math.exp(-0.5 * 0.5 / ((10 * 0.2 / 2) ** 2 + 0.3))
    a2 = 0.8 * math.exp(-0.5 * 0.5 / ((10 * 0.5 / 5) ** 2 + 0.3))
    w1, w2 = a1, (1 - a1) * a2
    torch.testing.assert_close(out.depths[0, 4, 4, 0], torch.tensor((2 * w1 + 5 * w2) / (w1 + w2), dtype=F64))


def test_culled_splats_contribute_nothing():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(2, 12, 1, 16, 16)
    base = rasterize_torch(means, quats, scales, opac, colors, viewmats, Ks, 16, 16)
    in_cam = torch.tensor([[0.0, 0.0, -0.5], [0.0, 0.0, 0.005], [50.0, 0.0, 3.0]], dtype=F64)  # behind, too near, off
    extra = (in_cam - viewmats[0, :3, 3]) @ viewmats[0, :3, :3]  # camera → world
    more = rasterize_torch(
        torch.cat([means, extra]),
        torch.cat([quats, torch.tensor([[1.0, 0, 0, 0]] * 3, dtype=F64)]),
        torch.cat([scales, torch.full((3, 3), 0.5, dtype=F64)]),
        torch.cat([opac, torch.full((3,), 0.9, dtype=F64)]),
        torch.cat([colors, torch.ones(3, 3, dtype=F64)]),
        viewmats,
        Ks,
        16,
        16,
    )
    torch.testing.assert_close(more.colors, base.colors)


def test_empty_and_fully_culled_scenes_render_the_background():
    K, bg = pinhole(10.0, 10, 10), torch.tensor([[0.1, 0.2, 0.3]], dtype=F64)
    empty = rasterize_torch(*[torch.zeros(0, d, dtype=F64) for d in (3, 4, 3)], torch.zeros(0, dtype=F64),
                          torch.zeros(0, 3, dtype=F64), torch.eye(4, dtype=F64)[None], K, 10, 10, backgrounds=bg,
                          render_mode="RGB+ED")  # fmt: skip
    torch.testing.assert_close(empty.colors, bg[:, None, None].expand(1, 10, 10, 3))
    assert (empty.alphas == 0).all() and (empty.depths == 0).all()
    means = torch.tensor([[0.0, 0.0, -5.0]], dtype=F64, requires_grad=True)  # behind the camera
    out = rasterize_torch(means, torch.tensor([[1.0, 0, 0, 0]], dtype=F64), torch.ones(1, 3, dtype=F64),
                        torch.ones(1, dtype=F64), torch.ones(1, 3, dtype=F64), torch.eye(4, dtype=F64)[None], K, 10, 10)  # fmt: skip
    out.colors.sum().backward()
    assert (out.alphas == 0).all() and (means.grad == 0).all()


# -------------------------------------------------------------------------------- batching and tiling
def test_batch_dims_give_the_same_as_separate_calls():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(3, 25, 3, 18, 14)
    frames = torch.stack([means, means + 0.1, means * 0.9])  # [F, N, 3] per-frame positions
    out = rasterize_torch(frames, quats, scales, opac, colors, viewmats, Ks, 18, 14, render_mode="RGB+ED")
    assert out.colors.shape == (3, 3, 14, 18, 3) and out.depths.shape == (3, 3, 14, 18, 1)
    for fi in range(3):
        for ci in range(3):
            one = rasterize_torch(
                frames[fi], quats, scales, opac, colors, viewmats[ci : ci + 1], Ks[ci : ci + 1], 18, 14,
                render_mode="RGB+ED",
            )  # fmt: skip
            torch.testing.assert_close(out.colors[fi, ci], one.colors[0])
            torch.testing.assert_close(out.alphas[fi, ci], one.alphas[0])
            torch.testing.assert_close(out.depths[fi, ci], one.depths[0])


def test_two_batch_dims_and_per_frame_cameras():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(4, 10, 2, 10, 10)
    vm = torch.stack([viewmats, viewmats.flip(0)])  # [2, C, 4, 4] per-frame cameras
    out = rasterize_torch(means.expand(3, 2, 10, 3), quats, scales, opac, colors, vm, Ks, 10, 10)
    assert out.colors.shape == (3, 2, 2, 10, 10, 3)
    torch.testing.assert_close(out.colors[1, 1, 0], out.colors[0, 0, 1])


@pytest.mark.parametrize("tile_size, block_size", [(4, 4), (8, 32), (16, 8)])
def test_tiled_torch_backend_equals_dense_reference(tile_size, block_size):
    # High opacities and many layers so that pixels hit the 1e-4 transmittance stop.
    scene = random_scene(5, 120, 2, 29, 23, opacity=(0.6, 0.99))
    bg = torch.tensor([[0.3, 0.6, 0.9], [1.0, 0.0, 0.5]], dtype=F64)
    out = rasterize_torch(*scene, 29, 23, backgrounds=bg, tile_size=tile_size, block_size=block_size, chunk_elems=4096)
    ref = rasterize_ref(*scene, 29, 23, backgrounds=bg)
    every = rasterize_ref(*scene, 29, 23, backgrounds=bg, stop_rule=False)
    assert (every.colors - ref.colors).abs().max() > 1e-6  # the stop rule is exercised
    torch.testing.assert_close(out.colors, ref.colors)
    torch.testing.assert_close(out.alphas, ref.alphas)


@pytest.mark.parametrize("backend", ["torch", pytest.param("gsplat", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("mode, sh_degree, batch", [("RGB", None, ()), ("RGB+ED", None, (2,)), ("RGB", 2, ())])
def test_every_backend_matches_the_dense_reference(backend, mode, sh_degree, batch):
    """Each backend of the front door against the dense all-pairs statement, forward and backward."""
    if backend not in available_backends():
        pytest.skip(f"the {backend} backend is not available here")
    dev, dtype = ("cuda", torch.float32) if backend == "gsplat" else ("cpu", F64)
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(21, 60, 2, 24, 18, dtype=dtype, opacity=(0.5, 0.99))
    gen = torch.Generator().manual_seed(22)
    if sh_degree is not None:
        colors = torch.randn(60, (sh_degree + 1) ** 2, 3, generator=gen, dtype=dtype) * 0.3
    inputs = [t.expand(*batch, *t.shape).clone().to(dev).requires_grad_() for t in (means, quats, scales, opac, colors)]
    cams = [viewmats.to(dev), Ks.to(dev)]
    kw = dict(sh_degree=sh_degree, backgrounds=torch.rand(2, 3, generator=gen, dtype=dtype).to(dev), render_mode=mode)
    got = rasterize(*inputs, *cams, 24, 18, backend=backend, **kw)
    ref = rasterize_ref(*inputs, *cams, 24, 18, **kw)
    got_t = [got.colors, got.alphas] + ([got.depths] if mode == "RGB+ED" else [])
    ref_t = [ref.colors, ref.alphas] + ([ref.depths] if mode == "RGB+ED" else [])
    # float64 on the CPU: equal to rounding; gsplat in float32 with fast-math exp: ~1e-4 per pixel (depths ~3 units)
    tol = dict(atol=1e-9, rtol=1e-7) if backend == "torch" else dict(atol=3e-3, rtol=1e-3)
    for a, b in zip(got_t, ref_t, strict=True):
        torch.testing.assert_close(a, b, **tol)
    cot = [torch.randn_like(t) for t in ref_t]
    for name, a, b in zip("means quats scales opacities colors".split(), torch.autograd.grad(got_t, inputs, cot),
                          torch.autograd.grad(ref_t, inputs, cot), strict=True):  # fmt: skip
        rel = (a - b).norm() / b.norm().clamp(min=1e-12)  # 1 % catches any formula error (those are O(1))
        assert rel < (1e-6 if backend == "torch" else 1e-2), f"{name}: relative gradient error {rel:.2e}"


def test_closed_form_backward_equals_autograd_twin():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(6, 80, 2, 21, 19, opacity=(0.5, 0.99))
    proj = project_gaussians_ref(means[None], quats[None], scales[None], opac[None], viewmats[None], Ks[None], 21, 19)
    bins = bin_tiles(proj.means2d[0], proj.radii[0], proj.depths[0], 21, 19, 8)
    feats = colors.repeat(2, 1)  # [C*N, 3]
    ins = [
        t.detach().clone().requires_grad_()
        for t in (proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3), opac.log().repeat(2), feats)
    ]
    fast = composite_tiles(*ins, bins, block_size=8, chunk_elems=2048)
    slow = composite_tiles_autograd(*ins, bins)
    torch.testing.assert_close(fast, slow)
    cot = torch.randn_like(fast)
    for gf, gs in zip(torch.autograd.grad(fast, ins, cot), torch.autograd.grad(slow, ins, cot), strict=True):
        torch.testing.assert_close(gf, gs)


def test_bin_tiles_expands_the_pairs_in_bounded_steps_and_bins_the_same(monkeypatch):
    """Memory: a scan of millions of splats must not expand every (splat, tile) pair at once; in steps of at
    most `pairs_per_step` pairs each tile gets the same splats in the same order, also with step 1 (a splat
    whose tiles outnumber the step stays whole)."""
    import importlib

    composite_tiled = importlib.import_module("a3d_cli.kernels.composite_tiled")
    means, quats, scales, opac, _, viewmats, Ks = random_scene(11, 300, 3, 40, 32, opacity=(0.05, 0.99))
    scales[0] = 0.6  # one splat over many tiles
    proj = project_gaussians_ref(means[None], quats[None], scales[None], opac[None], viewmats[None], Ks[None], 40, 32)
    args = (proj.means2d[0], proj.radii[0], proj.depths[0], 40, 32, 8)
    kw = dict(conics=proj.conics[0], opacities=opac[None].expand(3, -1))
    tested = []  # pairs per ellipse test
    real = composite_tiled._ellipse_meets_tile
    monkeypatch.setattr(
        composite_tiled, "_ellipse_meets_tile", lambda sp, cx, cy, s: tested.append(cx.numel()) or real(sp, cx, cy, s)
    )
    whole = bin_tiles(*args, **kw, pairs_per_step=10**9)
    assert len(tested) == 1
    candidates = tested.pop()
    for step in (64, 1):
        stepped = bin_tiles(*args, **kw, pairs_per_step=step)
        assert sum(tested) == candidates and len(tested) > 1
        if step == 64:
            assert max(tested) <= 64 < candidates
        tested.clear()
        assert torch.equal(stepped.flat_ids, whole.flat_ids) and torch.equal(stepped.offsets, whole.offsets)
    assert whole.counts.max() > 1  # tiles hold several splats, so the depth order inside a tile is checked


# --------------------------------------------------------------------------------------------- gradients
def test_gradients_reach_every_input():
    scene = [t.clone().requires_grad_() for t in random_scene(7, 40, 2, 16, 16)]
    out = rasterize_torch(*scene, 16, 16, render_mode="RGB+ED")
    loss = out.colors.square().sum() + out.alphas.sum() + out.depths.sum()
    grads = torch.autograd.grad(loss, scene[:6])
    for name, g in zip(["means", "quats", "scales", "opacities", "colors", "viewmats"], grads, strict=True):
        assert torch.isfinite(g).all(), name
        assert g.abs().sum() > 0, name


def test_unbatched_calls_report_the_image_plane_centres_in_the_graph():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(9, 30, 2, 16, 16)
    means.requires_grad_()
    out = rasterize(means, quats, scales, opac, colors, viewmats, Ks, 16, 16, backend="torch")
    meta = out.meta
    assert meta is not None and (meta["width"], meta["height"], meta["n_cameras"]) == (16, 16, 2)
    assert meta["means2d"].shape == (2, 30, 2) and meta["radii"].shape == (2, 30, 2) and meta["gaussian_ids"] is None
    cam = means.detach() @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]  # [C, N, 3]
    pix = cam @ Ks.transpose(1, 2)
    torch.testing.assert_close(meta["means2d"].detach(), pix[..., :2] / pix[..., 2:])
    meta["means2d"].retain_grad()  # what a densification strategy does before backward
    out.colors.square().sum().backward()
    grad = meta["means2d"].grad
    visible = (meta["radii"] > 0).all(-1)
    assert grad is not None and grad[visible].abs().sum() > 0 and grad[~visible].abs().sum() == 0
    batched = rasterize(means[None], quats, scales, opac, colors, viewmats, Ks, 16, 16, backend="torch")
    assert batched.meta is None


def test_gradients_match_finite_differences():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(8, 4, 1, 12, 10, opacity=(0.4, 0.8))
    bg = torch.tensor([[0.2, 0.4, 0.6]], dtype=F64)

    def render(m, q, s, o, c):
        out = rasterize_torch(m, q, s, o, c, viewmats, Ks, 12, 10, backgrounds=bg, render_mode="RGB+ED", tile_size=4)
        return out.colors, out.alphas, out.depths

    inputs = tuple(t.clone().requires_grad_() for t in (means, quats, scales, opac, colors))
    # fast_mode checks random projections uᵀ·J·v instead of every Jacobian row (600 outputs here).
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


# -------------------------------------------------------------------------------------- spherical harmonics
def test_sh_basis_is_orthonormal_on_the_sphere():
    # Gauss-Legendre in cos θ times a uniform grid in φ integrates the products of two degree-3 bands
    # (polynomials of degree ≤ 6) exactly.
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(8)
    ct = torch.tensor(nodes, dtype=F64)[:, None].expand(8, 16)
    wt = torch.tensor(weights, dtype=F64)[:, None].expand(8, 16) * (2 * math.pi / 16)
    ph = (torch.arange(16, dtype=F64) * 2 * math.pi / 16)[None].expand(8, 16)
    st = torch.sqrt(1 - ct**2)
    dirs = torch.stack([st * torch.cos(ph), st * torch.sin(ph), ct], -1).reshape(-1, 3)
    y = sh_basis(3, dirs)  # [M, 16]
    gram = y.T @ (y * wt.reshape(-1, 1))
    torch.testing.assert_close(gram, torch.eye(16, dtype=F64))


def test_sh_degree_zero_is_the_plain_colour():
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(9, 20, 2, 12, 12)
    sh = torch.randn(20, 9, 3, dtype=F64)
    sh[:, 0] = (colors - 0.5) / SH_C0
    a = rasterize_torch(means, quats, scales, opac, colors, viewmats, Ks, 12, 12)
    b = rasterize_torch(means, quats, scales, opac, sh, viewmats, Ks, 12, 12, sh_degree=0)
    torch.testing.assert_close(a.colors, b.colors)


def test_sh_colour_uses_the_direction_from_the_camera():
    # Degree 1 with only the z-band set: colour = max(0.5 + C1·dz·k, 0) for the unit direction cam→splat.
    dirs = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -2.0], [3.0, 0.0, 0.0]], dtype=F64)
    coeffs = torch.zeros(3, 4, 3, dtype=F64)
    coeffs[:, 2] = 0.4
    rgb = sh_colors(1, dirs, coeffs)
    c1 = math.sqrt(3 / (4 * math.pi))
    torch.testing.assert_close(rgb[:, 0], torch.tensor([0.5 + 0.4 * c1, 0.5 - 0.4 * c1, 0.5], dtype=F64))
    vm = look_from(30.0, 10.0, 3.0)
    torch.testing.assert_close(camera_centers(vm), torch.linalg.inv(vm)[:3, 3])


# ---------------------------------------------------------------------- gsplat's pure-torch pieces on CPU
def test_projection_and_sh_match_gsplat_torch_reference():
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(10, 50, 3, 32, 24)
    mine = project_gaussians_ref(means[None], quats[None], scales[None], opac[None], viewmats[None], Ks[None], 32, 24)
    covars, _ = impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    _, means2d, depths, conics, _ = impl._fully_fused_projection(means, covars, viewmats, Ks, 32, 24)
    vis = mine.visible[0]
    assert vis.sum() > 50
    torch.testing.assert_close(mine.means2d[0][vis], means2d[vis])
    torch.testing.assert_close(mine.conics[0][vis], conics[vis])
    torch.testing.assert_close(mine.depths[0], depths)
    dirs = torch.randn(100, 3, dtype=F64)
    coeffs = torch.randn(100, 16, 3, dtype=F64)
    for deg in range(4):
        ref = torch.clamp_min(impl._spherical_harmonics(deg, dirs, coeffs) + 0.5, 0.0)
        torch.testing.assert_close(sh_colors(deg, dirs, coeffs), ref)


# --------------------------------------------------------------------------------------------- front door
def test_front_door_picks_the_torch_backend_on_cpu():
    scene = random_scene(11, 10, 1, 8, 8, dtype=torch.float32)
    assert "torch" in available_backends()
    assert select_backend("auto", scene[0]) == "torch"
    out = rasterize(*scene, 8, 8)
    assert isinstance(out, RasterOutput) and out.colors.dtype == torch.float32
    torch.testing.assert_close(out.colors, rasterize_torch(*scene, 8, 8).colors)
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(*scene, 8, 8, backend="gsplat")
    with pytest.raises(ValueError, match="backend must be one of"):
        rasterize(*scene, 8, 8, backend="cuda")


def test_importing_and_probing_on_cpu_never_loads_gsplat():
    code = (
        "import sys, torch\n"
        "from a3d_cli import kernels\n"
        "from a3d_cli.kernels import rasterize\n"
        "assert 'gsplat' not in sys.modules\n"
        "assert torch.cuda.is_available() or kernels.available_backends() == ('torch',)\n"
        "assert torch.cuda.is_available() or 'gsplat' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    "index, bad, message",
    [
        (0, torch.zeros(5, 2), r"means must have shape \[\.\.\., N, 3\], got \[5, 2\]"),
        (1, torch.zeros(4, 4), r"quats must have shape \[\.\.\., 5, 4\], got \[4, 4\]"),
        (3, torch.zeros(5, 1), r"opacities must have shape \[\.\.\., 5\], got \[5, 1\]"),
        (5, torch.zeros(2, 3, 4), r"viewmats must have shape \[\.\.\., C, 4, 4\], got \[2, 3, 4\]"),
        (6, torch.zeros(3, 3, 3), r"Ks must have shape \[\.\.\., 2, 3, 3\], got \[3, 3, 3\]"),
        (0, torch.zeros(3, 5, 3), r"leading batch dims .* do not broadcast"),
    ],
)
def test_shape_errors_name_the_tensor_and_both_shapes(index, bad, message):
    args = [torch.zeros(5, 3), torch.zeros(5, 4), torch.zeros(5, 3), torch.zeros(5), torch.zeros(5, 3)]
    args += [torch.eye(4).expand(2, 4, 4), torch.eye(3).expand(2, 3, 3)]
    if index == 0 and bad.ndim == 3:
        args[1] = torch.zeros(2, 5, 4)  # batch 3 against batch 2
    args[index] = bad
    with pytest.raises(ValueError, match=message):
        rasterize(*args, 8, 8)


def test_option_errors():
    scene = random_scene(12, 3, 2, 8, 8)
    with pytest.raises(ValueError, match=r"backgrounds must have shape \[\.\.\., 2, 3\], got \[3\]"):
        rasterize(*scene, 8, 8, backgrounds=torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="K >= 4"):
        rasterize(*scene[:4], torch.zeros(3, 1, 3, dtype=F64), *scene[5:], 8, 8, sh_degree=1)
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(*scene, 8, 8, render_mode="D")
    with pytest.raises(ValueError, match="dtype"):
        rasterize(scene[0].float(), *scene[1:], 8, 8)


# --------------------------------------------------------------------------------------- gsplat parity
@pytest.mark.gpu
@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("mode, sh_degree", [("RGB", None), ("RGB+ED", None), ("RGB", 2)])
def test_torch_backend_matches_gsplat_forward_and_backward(batch, mode, sh_degree):
    if "gsplat" not in available_backends():
        pytest.skip("gsplat's CUDA extension is not available")
    dev = torch.device("cuda")
    means, quats, scales, opac, colors, viewmats, Ks = random_scene(13, 400, 3, 64, 48, dtype=torch.float32)
    gen = torch.Generator().manual_seed(14)
    if sh_degree is not None:
        colors = torch.randn(400, (sh_degree + 1) ** 2, 3, generator=gen) * 0.3
    expand = lambda t: t.expand(*batch, *t.shape).clone()  # noqa: E731
    inputs = [expand(t).to(dev).requires_grad_() for t in (means, quats, scales, opac, colors)]
    cams = [viewmats.to(dev), Ks.to(dev)]
    bg = torch.rand(3, 3, generator=gen).to(dev)
    kw = dict(sh_degree=sh_degree, backgrounds=bg, render_mode=mode)
    tiled = rasterize(*inputs, *cams, 64, 48, backend="torch", **kw)
    gs = rasterize(*inputs, *cams, 64, 48, backend="gsplat", **kw)
    tiled_t = [tiled.colors, tiled.alphas] + ([tiled.depths] if mode == "RGB+ED" else [])
    gs_t = [gs.colors, gs.alphas] + ([gs.depths] if mode == "RGB+ED" else [])
    # gsplat evaluates exp with fast math and sums in float32 in its own order: ~1e-4 per pixel; depths
    # are ~3 units, so their absolute tolerance scales with them.
    for r, g, atol in zip(tiled_t, gs_t, [1e-3, 1e-3, 3e-3], strict=False):
        torch.testing.assert_close(r, g, atol=atol, rtol=1e-3)
    cot = [torch.randn_like(t) for t in tiled_t]
    if batch == ():  # the image-plane centres densification reads: same gradient from both backends
        inputs_tiled, inputs_gs = [*inputs, tiled.meta["means2d"]], [*inputs, gs.meta["means2d"]]
    else:
        inputs_tiled = inputs_gs = inputs
    g_tiled = torch.autograd.grad(tiled_t, inputs_tiled, cot)
    g_gs = torch.autograd.grad(gs_t, inputs_gs, cot)
    names = ["means", "quats", "scales", "opacities", "colors"] + (["means2d"] if batch == () else [])
    for name, a, b in zip(names, g_tiled, g_gs, strict=True):
        # Relative error of the whole gradient: per-entry comparison is dominated by float32 cancellation
        # in splats with near-zero gradient; 1 % catches any formula error (those are O(1)).
        rel = (a - b).norm() / b.norm().clamp(min=1e-12)
        assert rel < 1e-2, f"{name}: relative gradient error {rel:.2e}"
