"""Fixed-length tile-intersection lists (`a3d_cli.kernels.tile_lists`) against gsplat's own PyTorch
`isect_tiles`/`isect_offset_encode` on the CPU, and `rasterize_fixed` against `gsplat.rasterization` on a GPU
(renders and gradients equal), also replayed from a CUDA graph."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.kernels.tile_lists import FILLER_DEPTH_BITS, fixed_tile_lists, tile_offsets

TILE, TW, TH = 16, 4, 3  # 64 × 48 images


def _scene(images: int = 5, n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected splats as gsplat returns them: some off-image, some culled (radii 0), distinct depths."""
    g = torch.Generator().manual_seed(seed)
    means2d = torch.rand(images, n, 2, generator=g) * torch.tensor([90.0, 70.0]) - 13.0
    radii = torch.randint(0, 30, (images, n, 2), generator=g, dtype=torch.int32)
    radii[torch.rand(images, n, generator=g) < 0.2] = 0
    depths = torch.randperm(images * n, generator=g).float().view(images, n) * 0.01 + 0.5
    return means2d, radii, depths


def _reference(means2d: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor):  # noqa: ANN202
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    _, ids, flat = impl._isect_tiles(means2d, radii, depths, TILE, TW, TH)
    offsets = impl._isect_offset_encode(ids, means2d.shape[0], TW, TH)
    return ids, flat, offsets


def _per_tile(ids: torch.Tensor, flat: torch.Tensor, offsets: torch.Tensor, drop: torch.Tensor | None = None):  # noqa: ANN202
    """{(image, tile): [(id, flat index), ...]} from a sorted list and its offsets, entries where `drop` skipped."""
    starts = offsets.flatten().tolist() + [ids.numel()]
    out = {}
    for t in range(len(starts) - 1):
        rows = range(starts[t], starts[t + 1])
        out[t] = [(int(ids[i]), int(flat[i])) for i in rows if drop is None or not bool(drop[i])]
    return out


def test_real_entries_and_order_equal_gsplats_and_fillers_fill_the_rest():
    means2d, radii, depths = _scene()
    filler = means2d.shape[1] - 1
    radii[:, filler] = 5  # the filler is a visible splat, yet it must never be listed
    unlisted = radii.clone()
    unlisted[:, filler] = 0
    ref_ids, ref_flat, ref_offsets = _reference(means2d, unlisted, depths)
    capacity = ref_ids.numel() + 57
    lists = fixed_tile_lists(means2d, radii, depths, TILE, TW, TH, capacity, filler=filler)
    assert lists.isect_ids.shape == (capacity,) and lists.flatten_ids.dtype == torch.int32
    assert int(lists.total) == ref_ids.numel()
    assert torch.all(lists.isect_ids[1:] >= lists.isect_ids[:-1])
    is_filler = (lists.isect_ids & 0xFFFFFFFF) == FILLER_DEPTH_BITS
    assert int(is_filler.sum()) == 57
    assert torch.all(lists.flatten_ids[is_filler] % means2d.shape[1] == filler)
    # every filler sits in a real (image, tile), after that tile's real entries
    offsets = tile_offsets(lists.isect_ids, means2d.shape[0], TW, TH)
    mine = _per_tile(lists.isect_ids, lists.flatten_ids, offsets)
    ref = _per_tile(ref_ids, ref_flat, ref_offsets)
    for t, entries in mine.items():
        real = [e for e in entries if (e[0] & 0xFFFFFFFF) != FILLER_DEPTH_BITS]
        assert entries[: len(real)] == real  # fillers last in their tile
        assert real == ref[t]


def test_offsets_equal_gsplats_without_fillers():
    means2d, radii, depths = _scene(seed=3)
    radii[:, -1] = 0  # the filler splat culled: the real lists are the whole of gsplat's
    ref_ids, ref_flat, ref_offsets = _reference(means2d, radii, depths)
    lists = fixed_tile_lists(means2d, radii, depths, TILE, TW, TH, ref_ids.numel(), filler=means2d.shape[1] - 1)
    assert torch.equal(lists.isect_ids, ref_ids)
    assert torch.equal(lists.flatten_ids, ref_flat.to(torch.int32))
    assert torch.equal(tile_offsets(lists.isect_ids, means2d.shape[0], TW, TH), ref_offsets)


def test_masked_images_list_nothing():
    means2d, radii, depths = _scene(seed=5)
    mask = torch.tensor([True, False, True, False, True])
    lists = fixed_tile_lists(means2d, radii, depths, TILE, TW, TH, 4096, filler=0, image_mask=mask)
    real = (lists.isect_ids & 0xFFFFFFFF) != FILLER_DEPTH_BITS
    images = lists.flatten_ids[real].long() // means2d.shape[1]
    assert images.numel() > 0 and bool(mask[images].all())
    kept = radii.clone()
    kept[~mask] = 0
    kept[:, 0] = 0
    ref_ids, _, _ = _reference(means2d, kept, depths)
    assert torch.equal(lists.isect_ids[real], ref_ids)


def test_overflow_is_reported_and_the_list_keeps_its_length():
    means2d, radii, depths = _scene(seed=7)
    full = fixed_tile_lists(means2d, radii, depths, TILE, TW, TH, 1 << 14, filler=0)
    need = int(full.total)
    short = fixed_tile_lists(means2d, radii, depths, TILE, TW, TH, need // 2, filler=0)
    assert int(short.total) == need > short.isect_ids.numel() == need // 2
    assert not bool(((short.isect_ids & 0xFFFFFFFF) == FILLER_DEPTH_BITS).any())  # no room for fillers


def test_too_many_images_for_gsplats_id_layout_is_refused():
    from a3d_cli.kernels.tile_lists import id_bits

    assert id_bits(60, 256) == (6, 9)
    with pytest.raises(ValueError, match="32-bit"):
        id_bits(1 << 20, 1 << 14)


# ----------------------------------------------------------------------------------- on a GPU, with gsplat
def _gpu_inputs(b: int, c: int, n: int, sh_degree: int | None, seed: int = 0):  # noqa: ANN202
    from a3d_cli.render.cameras import orbit_cameras

    g = torch.Generator(device="cuda").manual_seed(seed)
    dev = "cuda"
    means = (torch.rand(b, n, 3, generator=g, device=dev) - 0.5) * 0.8
    quats = torch.nn.functional.normalize(torch.randn(b, n, 4, generator=g, device=dev), dim=-1)
    scales = torch.rand(b, n, 3, generator=g, device=dev) * 0.04 + 0.005
    opacities = torch.rand(b, n, generator=g, device=dev) * 0.9 + 0.05
    k = 1 if sh_degree is None else (sh_degree + 1) ** 2
    colors = torch.rand(b, n, k, 3, generator=g, device=dev)
    if sh_degree is None:
        colors = colors[:, :, 0]
    cams = orbit_cameras([10.0] * c, [90.0 * i for i in range(c)], 2.0, 40.0)
    viewmats = cams.viewmats.to(dev).expand(b, c, 4, 4).contiguous()
    ks = cams.Ks(64, 64).to(dev).expand(b, c, 3, 3).contiguous()
    bgs = torch.full((b, c, 3), 0.5, device=dev)
    return means, quats, scales, opacities, colors, viewmats, ks, bgs


@pytest.mark.gpu
@pytest.mark.parametrize("capacity_share", [1.3, 0.5])
def test_the_triton_slots_equal_the_pytorch_reference_on_cuda(capacity_share):
    from a3d_cli.kernels.tile_lists import expand_slots_torch, id_bits, tile_rects
    from a3d_cli.kernels.tile_lists_triton import expand_slots_triton

    means2d, radii, depths = (t.cuda() for t in _scene(images=7, n=3000, seed=11))
    images, n = means2d.shape[:2]
    x0, x1, y0, y1 = tile_rects(means2d, radii, TILE, TW, TH)
    counts = ((x1 - x0) * (y1 - y0)).flatten()
    ends = counts.cumsum(0)
    _, bits = id_bits(images, TW * TH)
    depth_bits = depths.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    base = ((torch.arange(images, device="cuda")[:, None] << (32 + bits)) | depth_bits).flatten()
    args = (ends, ends - counts, (x1 - x0).flatten().clamp(min=1), (y0 * TW + x0).flatten(), base,
            int(int(ends[-1]) * capacity_share), n, images, TW * TH, TW, bits, 0)  # fmt: skip
    want, got = expand_slots_torch(*args), expand_slots_triton(*args)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.gpu
@pytest.mark.parametrize("sh_degree", [None, 2])
def test_fixed_render_equals_gsplat_rasterization_with_gradients(sh_degree):
    from a3d_cli.kernels.rasterize import available_backends
    from a3d_cli.kernels.rasterize_fixed import fixed_looks, intersections_needed, rasterize_fixed

    if "gsplat" not in available_backends():
        pytest.skip("gsplat's CUDA extension is not available")
    from gsplat import rasterization

    means, quats, scales, opac, colors, viewmats, ks, bgs = _gpu_inputs(3, 4, 3000, sh_degree)
    looks = fixed_looks(opac, colors, sh_degree, viewmats, ks, bgs)
    need, filler_ok = intersections_needed(means, quats, scales, looks, 64, 64)
    assert filler_ok and need > 0
    geo = [t.clone().requires_grad_(True) for t in (means, quats, scales)]
    out = rasterize_fixed(*geo, looks, 64, 64, capacity=need + 1000)
    assert int(out.total) == need
    ref_geo = [t.clone().requires_grad_(True) for t in (means, quats, scales)]
    ref_rgb, ref_alpha, _ = rasterization(
        *ref_geo, opac, colors, viewmats, ks, 64, 64, sh_degree=sh_degree, packed=False, backgrounds=bgs
    )
    assert torch.equal(out.colors, ref_rgb) and torch.equal(out.alphas, ref_alpha)
    w = torch.rand_like(ref_rgb)
    (out.colors * w).sum().add(out.alphas.sum()).backward()
    (ref_rgb * w).sum().add(ref_alpha.sum()).backward()
    for mine, ref in zip(geo, ref_geo, strict=True):
        # gsplat sums a splat's gradient over pixels with atomic adds in no fixed order: equal to rounding of
        # the largest contributions (measured on an H200: 10 of 27 000 values off, by at most 4e-6)
        torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-3, atol=1e-5 * float(ref.grad.abs().max()))


@pytest.mark.gpu
def test_fixed_render_replays_from_a_cuda_graph_and_masks_images():
    from a3d_cli.kernels.rasterize import available_backends
    from a3d_cli.kernels.rasterize_fixed import fixed_looks, intersections_needed, rasterize_fixed

    if "gsplat" not in available_backends():
        pytest.skip("gsplat's CUDA extension is not available")
    means, quats, scales, opac, colors, viewmats, ks, bgs = _gpu_inputs(2, 4, 2000, None)
    looks = fixed_looks(opac, colors, None, viewmats, ks, bgs)
    need, _ = intersections_needed(means, quats, scales, looks, 64, 64)
    mask = torch.tensor([True] * 4 + [False] * 4, device="cuda")
    eager = rasterize_fixed(means, quats, scales, looks, 64, 64, need + 512, image_mask=mask)
    static_means = means.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        rasterize_fixed(static_means, quats, scales, looks, 64, 64, need + 512, image_mask=mask)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        recorded = rasterize_fixed(static_means, quats, scales, looks, 64, 64, need + 512, image_mask=mask)
    static_means.copy_(means + 0.01)
    graph.replay()
    moved = rasterize_fixed(means + 0.01, quats, scales, looks, 64, 64, need + 512, image_mask=mask)
    assert torch.equal(recorded.colors, moved.colors) and not torch.equal(recorded.colors, eager.colors)
    assert torch.all(recorded.alphas[1] == 0)  # the masked frame's views: nothing listed, background only
    assert torch.allclose(recorded.colors[1], bgs[1][:, None, None, :].expand_as(recorded.colors[1]))
