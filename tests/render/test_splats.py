"""`a3d_cli.render.splats`: the motion fits' renderer."""

from __future__ import annotations

import torch

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.render.cameras import mvvdm_cameras
from a3d_cli.render.splats import render_rgba, render_splats, splat_looks


def random_splats(n: int, sh_degree: int, seed: int) -> Gaussians:
    """n small splats around the origin with random SH coefficients of `sh_degree` (≥ 1: the SH path)."""
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        0.5 * (torch.rand(n, 3, generator=g) - 0.5),
        torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        torch.full((n, 3), 0.05),
        torch.rand(n, generator=g),
        torch.rand(n, 3, generator=g),
        sh_rest=0.1 * torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=g),
    )


def test_looks_copied_out_to_the_frames_render_exactly_what_the_broadcast_ones_do():
    """The motion fit makes the static inputs once per frame count; the render must not change."""
    g = torch.Generator().manual_seed(0)
    n, f, size = 40, 3, 16
    static = random_splats(n, 1, seed=0)
    cams = mvvdm_cameras()
    viewmats, ks = cams.viewmats, cams.Ks(size, size)
    means = static.means + 0.02 * torch.randn(f, n, 3, generator=g)
    looks = splat_looks(static, viewmats, ks, f, background=0.3)
    assert looks.opacities.shape == (f, n) and looks.viewmats.shape == (f, len(cams), 4, 4)
    assert all(t.is_contiguous() for t in (looks.opacities, looks.colors, looks.viewmats, looks.Ks, looks.backgrounds))
    want = render_splats(static, means, static.quats, static.scales, viewmats, ks, size, background=0.3)
    got = render_splats(static, means, static.quats, static.scales, viewmats, ks, size, looks=looks)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert float((want[0] - 0.3).abs().max()) > 0.01  # the splats are in view: something was rendered


def test_render_rgba_renders_many_splats_a_few_views_per_call(monkeypatch):
    """Memory: a scan of millions of splats is rendered a few views per rasterizer call (views × splats within
    `PROJECTED_SPLATS_PER_CALL`), not all 4 at once; each view comes out exactly as from one call."""
    import importlib

    kernels = importlib.import_module("a3d_cli.kernels")
    splats = importlib.import_module("a3d_cli.render.splats")
    n, size = 50, 16
    static = random_splats(n, 3, seed=1)  # degree 3, as 3DGS scans have
    cams = mvvdm_cameras()
    ks = cams.Ks(size, size)
    views = []  # views per rasterizer call
    real = kernels.rasterize
    monkeypatch.setattr(kernels, "rasterize", lambda *a, **k: views.append(a[5].shape[0]) or real(*a, **k))
    whole = render_rgba(static, cams.viewmats, ks, size, "cpu")
    assert views == [4]
    views.clear()
    monkeypatch.setattr(splats, "PROJECTED_SPLATS_PER_CALL", 2 * n + 1)  # room for 2 views of n splats
    split = render_rgba(static, cams.viewmats, ks, size, "cpu")
    assert views == [2, 2]
    assert torch.equal(split, whole)
    assert float(whole[..., 3].max()) > 0.1  # the splats are in view: something was rendered
