"""Tests of the fixed-length tile lists (`a3d_cli.kernels.tile_lists`): on the CPU against gsplat's own PyTorch
statement of `isect_tiles` and `isect_offset_encode`; on a GPU, gsplat renders through them against gsplat's
own `rasterization`, forward and backward."""

from __future__ import annotations

import pytest
import torch
from test_rasterize import random_scene

from a3d_cli.kernels import available_backends, rasterize
from a3d_cli.kernels.tile_lists import FILLER_DEPTH_BITS, TileBudget, tile_lists, tile_overlaps

TILE = 16


def projected(seed: int, images: int = 3, n: int = 60, w: int = 64, h: int = 48):
    """Random image-plane splats, some off-image and some culled: (means2d, radii, depths, tiles across, down)."""
    g = torch.Generator().manual_seed(seed)
    means2d = torch.rand(images, n, 2, generator=g) * torch.tensor([w + 40.0, h + 40.0]) - 20
    radii = (torch.rand(images, n, 2, generator=g) * 30).to(torch.int32)
    radii[0, :5] = 0  # culled
    radii[1, 5:8, 1] = 0  # culled in one axis only
    depths = torch.rand(images, n, generator=g) * 5 + 0.1
    return means2d, radii, depths, (w + TILE - 1) // TILE, (h + TILE - 1) // TILE


def unpad(ids: torch.Tensor, n: int) -> torch.Tensor:
    """Indices into [I, N + 1] (filler at N) → indices into [I, N]."""
    return (ids // (n + 1)) * n + ids % (n + 1)


def test_real_entries_are_gsplats_lists_in_gsplats_order():
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means2d, radii, depths, tw, th = projected(0)
    n = depths.shape[1]
    _, ref_ids, ref_flat = impl._isect_tiles(means2d, radii, depths, TILE, tw, th)
    needed = int(tile_overlaps(means2d, radii, TILE, tw, th))
    assert needed == ref_ids.numel() > 100
    lists = tile_lists(means2d, radii, depths, TILE, tw, th, needed + 37)
    real = lists.flatten_ids % (n + 1) != n
    assert int(real.sum()) == needed == int(lists.needed)
    assert torch.equal(lists.isect_ids[real], ref_ids)
    assert torch.equal(unpad(lists.flatten_ids[real], n).to(torch.int32), ref_flat)


def test_every_tile_holds_its_real_entries_first_then_only_filler():
    """What makes the render equal gsplat's: each tile's range is gsplat's list for it, then opacity-0 filler."""
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means2d, radii, depths, tw, th = projected(1)
    images, n = depths.shape
    _, ref_ids, ref_flat = impl._isect_tiles(means2d, radii, depths, TILE, tw, th)
    capacity = ref_ids.numel() + 2 * images * tw * th + 5  # more filler than tiles: every tile gets some
    lists = tile_lists(means2d, radii, depths, TILE, tw, th, capacity)
    ours = impl._isect_offset_encode(lists.isect_ids, images, tw, th).flatten().tolist() + [capacity]
    ref = impl._isect_offset_encode(ref_ids, images, tw, th).flatten().tolist() + [ref_ids.numel()]
    for t in range(images * tw * th):
        got = lists.flatten_ids[ours[t] : ours[t + 1]]
        is_real = got % (n + 1) != n
        k = int(is_real.sum())
        assert bool(is_real[:k].all()) and not bool(is_real[k:].any()), f"tile {t}: filler before a real entry"
        assert torch.equal(unpad(got[:k], n).to(torch.int32), ref_flat[ref[t] : ref[t + 1]]), f"tile {t}"
        assert len(got) - k >= 2, f"tile {t} got no filler share"
        assert bool((got[k:] // (n + 1) == t // (tw * th)).all()), "filler points at another image's filler"
    filler = lists.flatten_ids % (n + 1) == n
    assert bool(((lists.isect_ids[filler] & 0xFFFFFFFF) == FILLER_DEPTH_BITS).all())


def test_a_short_capacity_keeps_the_first_entries_and_reports_the_need():
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means2d, radii, depths, tw, th = projected(2)
    n = depths.shape[1]
    needed = int(tile_overlaps(means2d, radii, TILE, tw, th))
    lists = tile_lists(means2d, radii, depths, TILE, tw, th, needed - 25)
    assert lists.isect_ids.numel() == needed - 25 and int(lists.needed) == needed
    assert not bool((lists.flatten_ids % (n + 1) == n).any())  # no room for filler
    # what is kept is the unsorted list's first entries (flat order), sorted
    _, ref_ids, ref_flat = impl._isect_tiles(means2d, radii, depths, TILE, tw, th, sort=False)
    kept_ref, _ = torch.sort(ref_ids[: needed - 25], stable=True)
    assert torch.equal(lists.isect_ids, kept_ref)


def test_too_many_images_for_the_key_is_refused():
    means2d, radii, depths, _, _ = projected(3, images=2)
    with pytest.raises(ValueError, match="32-bit"):
        tile_lists(means2d, radii, depths, 1, 1 << 16, 1 << 15, 64)


def test_budget_sizes_once_grows_when_exceeded_and_counts_cut_renders():
    budget = TileBudget(margin=1.5)
    calls = []

    def count():
        calls.append(1)
        return torch.tensor(10_000)

    key = (4, 100, 64, 64)
    cap = budget.capacity(key, count)
    assert cap >= 15_000 and cap % 4096 == 0
    assert budget.capacity(key, count) == cap and len(calls) == 1  # counted once per key
    budget.observe(key, torch.tensor(cap - 1))
    assert budget.settle() == 0 and budget.capacities[key] == cap
    budget.observe(key, torch.tensor(cap + 10))
    budget.observe(key, torch.tensor(cap + 5000))
    budget.observe(key, torch.tensor(cap - 3))
    assert budget.settle() == 2 and budget.cut_renders == 2
    assert budget.capacities[key] >= 1.5 * (cap + 5000)
    assert budget.settle() == 0  # nothing observed since


# --------------------------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@pytest.mark.parametrize("mode, sh_degree", [("RGB", None), ("RGB+ED", None), ("RGB", 2)])
def test_gsplat_through_fixed_lists_equals_gsplat(mode, sh_degree):
    if "gsplat" not in available_backends():
        pytest.skip("gsplat's CUDA extension is not available")
    dev = torch.device("cuda")
    means, quats, scales, opac, colors, viewmats, ks = random_scene(13, 600, 3, 64, 48, dtype=torch.float32)
    gen = torch.Generator().manual_seed(14)
    if sh_degree is not None:
        colors = torch.randn(600, (sh_degree + 1) ** 2, 3, generator=gen) * 0.3
    frames = 2
    shift = torch.randn(frames, 1, 3, generator=gen) * 0.1
    inputs = [(means + shift).to(dev), *(t.expand(frames, *t.shape).clone().to(dev) for t in (quats, scales, opac, colors))]
    inputs = [t.requires_grad_() for t in inputs]
    cams = [viewmats.to(dev), ks.to(dev)]
    kw = dict(sh_degree=sh_degree, backgrounds=torch.rand(3, 3, generator=gen).to(dev), render_mode=mode)
    ref = rasterize(*inputs, *cams, 64, 48, backend="gsplat", **kw)
    budget = TileBudget()
    got = rasterize(*inputs, *cams, 64, 48, backend="gsplat", tile_budget=budget, **kw)
    outs_ref = [ref.colors, ref.alphas] + ([ref.depths] if mode == "RGB+ED" else [])
    outs_got = [got.colors, got.alphas] + ([got.depths] if mode == "RGB+ED" else [])
    for a, b in zip(outs_got, outs_ref, strict=True):
        assert torch.equal(a, b)  # same kernels, same lists, same order: the same bits
    cot = [torch.randn_like(t) for t in outs_ref]
    for name, a, b in zip(
        ["means", "quats", "scales", "opacities", "colors"],
        torch.autograd.grad(outs_got, inputs, cot),
        torch.autograd.grad(outs_ref, inputs, cot),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name} gradient")  # atomics: any order
    assert budget.settle() == 0 and budget.cut_renders == 0


@pytest.mark.gpu
def test_gsplat_through_cut_lists_draws_less_and_says_so():
    if "gsplat" not in available_backends():
        pytest.skip("gsplat's CUDA extension is not available")
    dev = torch.device("cuda")
    scene = [t.to(dev) for t in random_scene(15, 600, 3, 64, 48, dtype=torch.float32)]
    full = rasterize(*scene, 64, 48, backend="gsplat")
    budget = TileBudget(margin=1.0)
    key = (3, 600, 64, 48)  # 3 images of 600 splats
    budget.capacities[key] = 64  # far fewer than this scene needs
    cut = rasterize(*scene, 64, 48, backend="gsplat", tile_budget=budget)
    assert budget.settle() == 1 and budget.capacities[key] > 64
    assert not torch.equal(cut.alphas, full.alphas)
    again = rasterize(*scene, 64, 48, backend="gsplat", tile_budget=budget)
    assert torch.equal(again.alphas, full.alphas) and budget.settle() == 0
