"""The lift's splat fit and mesh fusion on tiny ground truths (CPU): densification grows the splat set
within its budget, transparent splats are pruned, progress is reported every N steps, the TSDF keeps the
object's interior inside and the floor cuts away what no view saw, fusion in chunks and marching cubes
on the occupied box give the whole grid's result, the silhouettes bound a surface fused too far out,
and narrower discs render a curved surface's depth nearer it without opening holes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.io.masks import dilate_mask
from a3d_cli.lift import hull as H
from a3d_cli.lift import meshing as M
from a3d_cli.lift import synthetic as syn
from a3d_cli.lift.fit import LiftFitSettings, budgeted_threshold, fit_static, render_chunked
from a3d_cli.lift.masks import view_masks
from a3d_cli.lift.views import scene_radius
from a3d_cli.models.sv3d.cameras import orbit_camera_set, static_orbit
from a3d_cli.progress import RecordingProgress

SIZE = 32


@pytest.fixture(scope="module")
def scene() -> dict:
    """The toy object's 21-view orbit at 32², its masks and a coarse start on its visual hull."""
    mesh = syn.normalized(syn.toy_mesh())
    truth = syn.mesh_splats(mesh, 4000)
    cams = orbit_camera_set(static_orbit(10.0))
    images = syn.on_white(syn.render_rgba(truth, cams, SIZE))
    masks = view_masks(images, None)
    hw = scene_radius(cams)
    hull = H.carve(dilate_mask(masks > 0.5, 1).float(), cams, 32, hw)
    init = H.hull_splats(hull, images, cams, max_splats=300)
    return {"mesh": mesh, "truth": truth, "cams": cams, "images": images, "masks": masks, "hw": hw, "init": init}


def quick(**kw) -> LiftFitSettings:  # noqa: ANN003
    return LiftFitSettings(**{"steps": 40, "views_per_step": 4, "refine_every": 4, "refine_start": 4, "refine_stop": 0.8, **kw})


def test_budgeted_threshold_lets_only_the_largest_gradients_grow() -> None:
    state = {"grad2d": torch.tensor([0.2, 1.0, 0.6, 1e-5, 0.9]), "count": torch.tensor([1.0, 2.0, 1.0, 1.0, 3.0])}
    means = state["grad2d"] / state["count"]  # 0.2, 0.5, 0.6, 1e-5, 0.3
    thr = budgeted_threshold(state, 2e-4, room=2)
    assert int((means > thr).sum()) == 2 and set(torch.nonzero(means > thr)[:, 0].tolist()) == {1, 2}
    assert budgeted_threshold(state, 2e-4, room=10) == 2e-4  # room for all: the strategy's own threshold
    assert budgeted_threshold(state, 2e-4, room=0) == math.inf
    assert budgeted_threshold({"grad2d": None, "count": None}, 2e-4, room=1) == 2e-4  # nothing gathered yet


def test_fit_grows_splats_where_the_views_need_them_and_keeps_the_budget(scene) -> None:
    init = scene["init"]
    args = (scene["images"], scene["masks"], scene["cams"])
    grown = fit_static(init, *args, quick(max_splats=2 * len(init)), scene["hw"])
    fixed = fit_static(init, *args, quick(max_splats=len(init)), scene["hw"])
    counts = [n for _, n in grown.splat_counts]
    assert max(counts) > len(init) and max(counts) <= 2 * len(init), counts
    assert len(grown.gaussians) > len(fixed.gaussians)
    assert all(n <= len(init) for _, n in fixed.splat_counts)


def test_fit_removes_transparent_splats(scene) -> None:
    init = scene["init"]
    n_ghost = 40
    gen = torch.Generator().manual_seed(1)
    corner = torch.tensor([0.55, 0.55, 0.55]) + torch.rand(n_ghost, 3, generator=gen) * 0.05  # away from the object
    ghosts = Gaussians(corner, init.quats[:n_ghost], init.scales[:n_ghost], torch.full((n_ghost,), 1e-3), init.colors[:n_ghost])
    both = Gaussians(*(torch.cat([getattr(init, k), getattr(ghosts, k)]) for k in ("means", "quats", "scales", "opacities", "colors")))
    out = fit_static(both, scene["images"], scene["masks"], scene["cams"], quick(max_splats=len(both)), scene["hw"]).gaussians
    assert float(out.opacities.min()) >= 0.02  # prune_opacity
    near_corner = ((out.means - torch.tensor([0.575] * 3)).norm(dim=-1) < 0.1).sum()
    assert int(near_corner) == 0


def test_fit_reports_progress_every_n_steps_with_the_mean_loss(scene) -> None:
    rec = RecordingProgress()
    res = fit_static(scene["init"], scene["images"], scene["masks"], scene["cams"], quick(steps=23), scene["hw"], progress=rec, log_every=10)
    assert rec.steps == 23  # every step advanced, in three updates
    assert [s for s, _ in res.losses] == [10, 20, 23]
    assert all(np.isfinite(v) and v > 0 for _, v in res.losses) and rec.last_fields["loss"] == res.losses[-1][1]


def test_tsdf_keeps_the_interior_inside_and_the_floor_cuts_what_no_view_saw(scene) -> None:
    cams, hw = scene["cams"], scene["hw"]
    _, alphas, depths = render_chunked(scene["truth"], cams, 64, depth=True)  # the orbit's views only
    res = 48
    voxel = 2 * hw / res
    tsdf = M.fuse_tsdf(depths, alphas, cams, res, hw, 3 * voxel)
    centres = H.voxel_centres(res, hw)
    v = scene["mesh"].vertices
    box_core = torch.tensor([0.0, float(v[:, 1].min()) + 0.13, 0.0])  # inside the toy's box, > a truncation from its faces
    i = tuple(((box_core + hw) / voxel).long().tolist())
    assert (centres[i] - box_core).abs().max() <= voxel
    assert float(tsdf[i]) < 0  # inside: hidden behind the surface in every view, not free space
    truth_low = float(scene["mesh"].vertices[:, 1].min())
    floor = M.lowest_seen(depths, alphas, cams)
    assert abs(floor - truth_low) < 0.05  # the box's bottom edges are seen from 10° above
    cut = M.fuse_tsdf(depths, alphas, cams, res, hw, 3 * voxel, floor=floor)
    verts, faces = M.marching_cubes(cut, hw)
    assert len(faces) > 0 and verts[:, 1].min() >= floor - voxel
    uncut_verts, _ = M.marching_cubes(tsdf, hw)
    assert uncut_verts[:, 1].min() < floor - voxel  # without it the unseen underside bulges below the object


def test_the_hidden_wedge_under_an_overhang_opens_up_to_its_lower_edge() -> None:
    mesh = syn.normalized(syn.white_van_mesh())  # a box body on four wheels: free space under it
    truth = syn.mesh_splats(mesh, 6000)
    cams = orbit_camera_set(static_orbit(10.0))  # from above: nobody sees under the body
    hw = scene_radius(cams)
    _, alphas, depths = render_chunked(truth, cams, 96, depth=True)
    res = 64
    voxel = 2 * hw / res
    floor = M.lowest_seen(depths, alphas, cams)
    closed = M.fuse_tsdf(depths, alphas, cams, res, hw, 2 * voxel, floor=floor, carve_tolerance=1)
    opened = M.fuse_tsdf(depths, alphas, cams, res, hw, 2 * voxel, floor=floor, carve_tolerance=1, open_under=True)
    white = mesh.vertex_colors[:, :3].min(axis=1) > 0.99  # the body (the wheels, panels and windows are coloured)
    body_bottom = float(mesh.vertices[white, 1].min())
    centre = res // 2  # the column under the body's middle, between the wheels

    def lowest_inside(tsdf: torch.Tensor) -> float:
        column = torch.nonzero(tsdf[centre, :, centre] < 0).flatten()
        return (int(column.min()) + 0.5) * voxel - hw

    assert lowest_inside(closed) < body_bottom - 2 * voxel  # the wedge the rays under the body could not reach
    assert abs(lowest_inside(opened) - body_bottom) <= voxel  # opened up to the body's underside
    core = (torch.tensor([0.0, body_bottom + 0.1, 0.0]) + hw) / voxel
    assert float(opened[tuple(core.long().tolist())]) < 0  # the body's interior stays inside
    unseen_floor = M.fuse_tsdf(depths, alphas, cams, 16, hw, 8 * voxel, floor=float("-inf"), open_under=True)
    assert bool((unseen_floor < 0).any())  # a floor no view saw (-inf) opens from the grid's bottom, no error
    newly_free = torch.nonzero((closed < 0) & (opened > 0))[:, 1]  # the grid's y index
    assert newly_free.numel() > 0
    assert float((newly_free.max() + 0.5) * voxel - hw) <= body_bottom + voxel  # nothing above the body's bottom


def test_opening_undersides_needs_free_space_beside_and_below_not_a_crack() -> None:
    g, t = 24, 1.0
    tsdf = torch.full((g, g, g), t)
    assumed = torch.zeros(g, g, g, dtype=torch.bool)
    tsdf[6:18, 10:18, 6:18] = -t  # a body seen from its sides and top: a shell of decided voxels ...
    assumed[7:17, 10:17, 7:17] = True  # ... around a hidden interior whose underside nobody saw
    for y, lo in ((9, 7), (8, 8), (7, 9), (6, 10)):  # the wedge under it, narrowing downwards
        tsdf[lo : g - lo, y, lo : g - lo] = -t
        assumed[lo : g - lo, y, lo : g - lo] = True
    tsdf[6, 14, 12] = t  # a one-voxel crack through a wall
    tsdf[6, 10, 8:16:3] = t  # three in the wall of the lowest slice, which rests on the opened wedge
    tsdf[11, 15, 11] = t  # and a free pocket inside (a hole a view's splats left)
    assumed[6, 14, 12] = assumed[11, 15, 11] = False
    out = M.open_undersides(tsdf, assumed, t)
    leaky = M.open_undersides(tsdf, assumed, t, exposed=0.0)
    assert bool((leaky[7:17, 10, 7:17] > 0).all())  # without the rim share, the cracks would let the slice open
    assert bool((out[:, 6:10] > 0).all())  # the wedge is open
    assert bool((out[7:17, 10:17, 7:17] < 0).all())  # the interior is not: walled in, the cracks too narrow
    assert float(out[11, 15, 11]) < 0  # the pocket is filled
    free = tsdf > 0
    free[11, 15, 11] = False
    assert bool((out[free] > 0).all())  # the rest of the free space stays free


def test_a_hole_in_one_views_surface_bores_no_tunnel_into_the_interior(scene) -> None:
    cams, hw = scene["cams"], scene["hw"]
    _, alphas, depths = render_chunked(scene["truth"], cams, 64, depth=True)
    res = 48
    voxel = 2 * hw / res
    v = scene["mesh"].vertices
    core = torch.tensor([0.0, float(v[:, 1].min()) + 0.13, 0.0])  # inside the toy's box
    i = tuple(((core + hw) / voxel).long().tolist())
    centre = (torch.tensor(i) + 0.5) * voxel - hw
    uv, z = H.project(centre[None], cams, 64)
    u, w = (int(c) for c in uv[0, 0].floor().long())
    hole = (0, slice(w - 1, w + 2), slice(u - 1, u + 2))  # 3 × 3 pixels of view 0
    holed = depths.clone()
    holed[hole] = float(z[0, 0]) + 0.1  # view 0 sees through a hole in the box's face to past the voxel
    bored = M.fuse_tsdf(holed, alphas, cams, res, hw, 3 * voxel)  # no tolerance: one view decides
    assert float(bored[i]) > 0  # the hole's rays called the core free: a tunnel with walls inside the box
    kept = M.fuse_tsdf(holed, alphas, cams, res, hw, 3 * voxel, carve_tolerance=1)
    clean = M.fuse_tsdf(depths, alphas, cams, res, hw, 3 * voxel, carve_tolerance=1)
    assert float(kept[i]) < 0  # one view's free space, hidden in the others and too narrow to be space: filled
    assert torch.equal(kept < 0, clean < 0)  # to the tunnel's end, within a truncation of the wall it saw
    gap = alphas.clone()
    gap[hole] = 0.0  # view 0 sees the background there: a gap through the object, not a hole in one wall
    seen_through = M.fuse_tsdf(depths, gap, cams, res, hw, 3 * voxel, carve_tolerance=1)
    assert float(seen_through[i]) > 0  # empty pixels carve as before, whatever the other views hid


def test_closing_tunnels_fills_a_narrow_lone_bore_but_not_open_space_or_a_crack_many_views_see() -> None:
    g, t = 32, 1.0
    tsdf = torch.full((g, g, g), t)
    tsdf[4:28, 4:20, 4:28] = -t  # a block
    lone = torch.zeros(g, g, g, dtype=torch.bool)
    bore = (slice(4, 16), 12, 16)  # one voxel wide, from the block's side into it
    notch = (slice(10, 22), slice(14, 20), slice(10, 22))  # a wide notch open at the top
    crack = (slice(20, 28), 8, 8)  # a slot as narrow as the bore, but seen free by many views
    for region in (bore, notch, crack):
        tsdf[region] = t
    lone[bore] = lone[notch] = True
    out, filled = M.close_tunnels(tsdf, lone, t, neck=2)
    assert bool((out[bore] < 0).all())
    assert bool((out[notch] > 0).all()) and bool((out[crack] > 0).all())
    expected = torch.zeros_like(lone)
    expected[bore] = True
    assert torch.equal(filled, expected)
    assert torch.equal(out[~expected], tsdf[~expected])


def test_tsdf_fusion_does_not_depend_on_its_chunks_and_marching_cubes_skips_free_space(scene) -> None:
    import mcubes

    cams, hw = scene["cams"], scene["hw"]
    _, alphas, depths = render_chunked(scene["truth"], cams, 48, depth=True)
    res = 40
    assert torch.equal(M.chunk_centres(0, res**3, res, hw, "cpu"), H.voxel_centres(res, hw).reshape(-1, 3))
    whole = M.fuse_tsdf(depths, alphas, cams, res, hw, 0.05)
    chunked = M.fuse_tsdf(depths, alphas, cams, res, hw, 0.05, chunk=999)  # chunks that split rows and planes
    torch.testing.assert_close(whole, chunked, rtol=0, atol=1e-5)  # the same up to the matmuls' rounding

    lo, hi = M.occupied_box(whole)
    assert all(h - lo_ < res for lo_, h in zip(lo, hi, strict=True))  # the toy does not fill the cube: a crop
    assert bool((whole[: lo[0]] > 0).all()) and bool((whole[hi[0] :] > 0).all())  # nothing inside out there
    verts, faces = M.marching_cubes(whole, hw)
    vol = np.pad(whole.numpy().astype(np.float64), 1, constant_values=float(whole.max()))
    full_verts, full_faces = mcubes.marching_cubes(-vol, 0.0)  # the whole grid, no crop
    full_verts = (full_verts - 0.5) * (2 * hw / res) - hw
    assert len(faces) == len(full_faces) > 0
    np.testing.assert_allclose(np.sort(verts, axis=0), np.sort(full_verts, axis=0), atol=1e-9)

    free = torch.full((8, 8, 8), 0.05)
    assert M.occupied_box(free) == ([0, 0, 0], [1, 1, 1]) and len(M.marching_cubes(free, hw)[1]) == 0


def test_silhouette_distance_is_signed_pixels_to_the_outline() -> None:
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    disc = (((xx + 0.5 - 20) ** 2 + (yy + 0.5 - 20) ** 2).sqrt() < 10).float()  # radius 10 px about (20, 20)
    dist = M.silhouette_distance(disc[None])[0]
    radial = ((xx + 0.5 - 20) ** 2 + (yy + 0.5 - 20) ** 2).sqrt() - 10  # the true signed distance
    assert bool(((dist < 0) == (disc > 0.5)).all())  # negative exactly inside
    assert float((dist - radial).abs().max()) < 1.0  # within a pixel of the true distance everywhere


def test_the_silhouettes_bound_a_surface_fused_in_front_of_itself(scene) -> None:
    cams, hw = scene["cams"], scene["hw"]
    size, res = 48, 40
    _, alphas, depths = render_chunked(scene["truth"], cams, size, depth=True)
    voxel = 2 * hw / res
    early = depths - 2 * voxel  # every view's depth in front of the surface, as fitted layers render it

    def beyond(tsdf: torch.Tensor) -> float:
        """Mean over the mesh's vertices of how far (pixels) the view that sees it farthest out puts it
        beyond its silhouette (0 inside all of them)."""
        verts, _ = M.marching_cubes(tsdf, hw)
        uv, _ = H.project(torch.from_numpy(verts).float(), cams, size)
        dist = H.sample_images(M.silhouette_distance(alphas)[..., None], uv)[..., 0]  # [V, P]
        return float(dist.max(0).values.clamp_min(0).mean())

    loose = M.fuse_tsdf(early, alphas, cams, res, hw, 3 * voxel)
    bound = M.fuse_tsdf(early, alphas, cams, res, hw, 3 * voxel, carve_tolerance=0)
    assert beyond(bound) < 0.5 * beyond(loose)  # the early depths grew the volume past the outlines
    assert bool((bound >= loose).all())  # the bound only ever removes


def test_narrower_discs_render_the_depth_of_a_curved_surface_nearer_it(scene) -> None:
    cams, truth = scene["cams"], scene["truth"]
    wide = truth.with_(scales=truth.scales * torch.tensor([2.5, 2.5, 1.0]))  # overlapping discs, as fitted
    alpha, depth = M.depth_renders(truth, cams, 48)
    bias = []
    for footprint in (1.0, 0.4):
        a, d = M.depth_renders(wide, cams, 48, footprint)
        core = (alpha > 0.99) & (a > 0.5)
        bias.append(float((d - depth)[core].median()))
    assert bias[0] < 0  # the wide discs' rims render the surface in front of itself
    assert abs(bias[1]) < 0.5 * abs(bias[0])


def test_narrower_discs_neither_open_holes_nor_sink_the_surface(scene) -> None:
    cams, truth = scene["cams"], scene["truth"]
    pick = torch.arange(0, len(truth), 8)
    sparse = Gaussians(truth.means[pick], truth.quats[pick], truth.scales[pick] * torch.tensor([3.0, 3.0, 1.0]), truth.opacities[pick], truth.colors[pick])
    narrow_alone = render_chunked(sparse.with_(scales=sparse.scales * torch.tensor([0.3, 0.3, 1.0])), cams, 48)[1]
    a_full, d_full = M.depth_renders(sparse, cams, 48)
    gap = (a_full > 0.5) & (narrow_alone <= 0.5)
    assert int(gap.sum()) > 100  # alone, the narrow discs leave gaps
    a, d = M.depth_renders(sparse, cams, 48, 0.3)
    assert torch.equal(a, a_full)  # the full discs' coverage and silhouettes
    assert torch.equal(d[gap], d_full[gap])  # where the narrow discs leave a gap, the full render's depth: no hole
    radius = float(sparse.scales[:, :2].amax(dim=1).median())
    assert bool(((d - d_full)[a > 0.5] < radius).all())  # never a layer behind


def _wall(tilt_deg: float) -> Gaussians:
    """A dense square of flat splats in the plane z = 0 facing +Z, their normals tilted by `tilt_deg`."""
    from a3d_cli.geometry import rotmat_to_quat

    n = 40
    xs = torch.linspace(-0.3, 0.3, n)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    means = torch.stack([xx.flatten(), yy.flatten(), torch.zeros(n * n)], dim=-1)
    t = math.radians(tilt_deg)
    rot = torch.tensor([[1.0, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    quats = rotmat_to_quat(rot[None]).float().expand(n * n, 4)
    scales = torch.tensor([0.012, 0.012, 0.0012]).expand(n * n, 3)
    return Gaussians(means, quats, scales, torch.full((n * n,), 0.99), torch.full((n * n, 3), 0.5))


def test_depth_normal_term_is_small_when_splat_normals_match_their_surface() -> None:
    from a3d_cli.lift.fit import _render_with_normals, depth_normal_loss
    from a3d_cli.render.cameras import orbit_cameras

    cams = orbit_cameras([0.0, 15.0], [0.0, 20.0], 2.0, 33.8)  # looking at the wall from its front
    Ks = cams.Ks(SIZE, SIZE).float()
    losses = {}
    for tilt in (0.0, 60.0):
        out = _render_with_normals(_wall(tilt), cams.viewmats, Ks, SIZE)
        losses[tilt] = float(depth_normal_loss(out, out.alphas[..., 0], Ks, cams.c2w))
    assert losses[0.0] < 0.02 and losses[60.0] > 0.3, losses  # 1 − cos 60° = 0.5 where the wall is opaque


def _tiny() -> tuple:
    """A tiny fit problem: 60 splats near the origin, 3 views at 16², refinements from step 1."""
    from a3d_cli.render.cameras import orbit_cameras

    gen = torch.Generator().manual_seed(3)
    n = 60
    g = Gaussians(
        torch.rand(n, 3, generator=gen) * 0.4 - 0.2, torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
        torch.full((n, 3), 0.03), torch.full((n,), 0.6), torch.rand(n, 3, generator=gen),
    )  # fmt: skip
    cams = orbit_cameras([10.0, 10.0, 30.0], [0.0, 120.0, 240.0], 2.0, 33.8)
    images = torch.rand(3, 16, 16, 3, generator=gen)
    masks = (torch.rand(3, 16, 16, generator=gen) > 0.5).float()
    settings = LiftFitSettings(steps=12, views_per_step=2, refine_start=1, refine_every=3, refine_stop=0.9, grow_grad2d=0.0)
    return g, images, masks, cams, settings


def test_seeded_fits_repeat_and_leave_the_callers_random_streams_alone() -> None:
    g, images, masks, cams, settings = _tiny()
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = fit_static(g, images, masks, cams, settings, 0.5, seed=7)
    assert torch.equal(torch.rand(4), expected)  # the fit seeds its own draws, not the caller's generator
    b = fit_static(g, images, masks, cams, settings, 0.5, seed=7)
    assert a.splat_counts == b.splat_counts and max(n for _, n in a.splat_counts) > len(g)  # splits were drawn
    for name in ("means", "quats", "scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(a.gaussians, name), getattr(b.gaussians, name), rtol=0, atol=0)


def test_fit_converts_the_cameras_once_not_every_step(monkeypatch) -> None:
    from a3d_cli.render.cameras import CameraSet

    calls = []
    real = CameraSet.Ks

    def counting(self, width: int, height: int):  # noqa: ANN001, ANN202
        calls.append(width)
        return real(self, width, height)

    monkeypatch.setattr(CameraSet, "Ks", counting)
    g, images, masks, cams, settings = _tiny()
    fit_static(g, images, masks, cams, settings, 0.5)
    assert len(calls) == 1  # each step's cameras are slices of device tensors made once


def _projection_meta(c: int = 3, n: int = 50, device: str = "cpu") -> dict:
    gen = torch.Generator().manual_seed(5)
    means2d = torch.randn(c, n, 2, generator=gen).to(device).requires_grad_()
    (means2d * torch.randn(c, n, 2, generator=gen).to(device)).sum().backward()
    radii = torch.randint(0, 3, (c, n, 2), generator=gen, dtype=torch.int32).to(device)
    return {"means2d": means2d, "radii": radii, "width": 40, "height": 24, "n_cameras": c, "gaussian_ids": None}


def test_grad2d_accumulation_matches_gsplats_default_strategy() -> None:
    from gsplat.strategy import DefaultStrategy

    from a3d_cli.lift.fit import accumulate_grad2d

    info = _projection_meta()
    ours, theirs = {"grad2d": None, "count": None}, {"grad2d": None, "count": None, "radii": None}
    params = {"means": torch.zeros(50, 3)}
    for _ in range(2):  # creates the state, then adds to it
        accumulate_grad2d(ours, info, 50)
        DefaultStrategy()._update_state(params, theirs, info, packed=False)
    assert int((theirs["count"] > 0).sum()) > 0 and int((theirs["count"] == 0).sum()) > 0  # some culled, some seen
    torch.testing.assert_close(ours["count"], theirs["count"], rtol=0, atol=0)
    torch.testing.assert_close(ours["grad2d"], theirs["grad2d"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grad2d_accumulation_does_not_wait_for_the_device() -> None:
    from a3d_cli.lift.fit import accumulate_grad2d

    info = _projection_meta(device="cuda")
    state = {"grad2d": None, "count": None}
    accumulate_grad2d(state, info, 50)
    torch.cuda.set_sync_debug_mode("error")
    try:
        accumulate_grad2d(state, info, 50)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert float(state["count"].sum()) > 0


def test_backproject_inverts_project() -> None:
    from a3d_cli.render.cameras import orbit_cameras

    cams = orbit_cameras([10.0, -30.0], [0.0, 200.0], 2.0, 33.8)
    depths = 1.5 + torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    world = H.backproject(depths, cams.Ks(8, 8).float(), cams.c2w)  # [2, 8, 8, 3]
    for v in range(2):
        uv, z = H.project(world[v].reshape(-1, 3), cams, 8)
        pix = torch.arange(8) + 0.5
        grid = torch.stack(torch.meshgrid(pix, pix, indexing="ij")[::-1], dim=-1).reshape(-1, 2)  # (u, v)
        torch.testing.assert_close(uv[v], grid, atol=1e-4, rtol=0)
        torch.testing.assert_close(z[v], depths[v].reshape(-1), atol=1e-5, rtol=0)


def test_fit_stops_when_pruning_leaves_no_splat() -> None:
    g, images, masks, cams, settings = _tiny()
    ghosts = Gaussians(g.means, g.quats, g.scales, torch.full((len(g),), 1e-3), g.colors)  # below prune_opacity
    rec = RecordingProgress()
    res = fit_static(ghosts, images, masks, cams, settings, 0.5, progress=rec)
    assert len(res.gaussians) == 0 and res.splat_counts == [(3, 0)]  # the first refinement, then no more steps
    assert rec.steps == settings.steps and res.losses[-1][0] == 4  # the bar still completes


def test_splits_see_the_thin_scale_that_renders(monkeypatch) -> None:
    import gsplat.strategy.default as gsplat_default

    from a3d_cli.lift.hull import FLATNESS

    seen = []
    real = gsplat_default.split

    def spy(params, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(params["scales"].detach().clone())
        return real(params=params, **kw)

    monkeypatch.setattr(gsplat_default, "split", lambda **kw: spy(**kw))
    g, images, masks, cams, settings = _tiny()
    fit_static(g, images, masks, cams, dataclasses.replace(settings, grow_scale3d=0.0), 0.5)  # every growth a split
    assert seen
    for log_scales in seen:  # the third (untrained) scale is FLATNESS × the smaller in-plane one, as rendered
        torch.testing.assert_close(log_scales[:, 2], math.log(FLATNESS) + log_scales[:, :2].min(dim=1).values)


def test_a_lift_whose_fit_prunes_every_splat_is_an_input_error(scene) -> None:
    from a3d_cli.errors import InputError
    from a3d_cli.lift.pipeline import LiftSettings, lift
    from a3d_cli.lift.views import OrbitViews

    views = OrbitViews(images=scene["images"], alphas=None, cameras=scene["cams"], names=tuple(f"frame_{i:02d}.png" for i in range(21)))
    settings = LiftSettings(
        resolution=SIZE, hull_resolution=24, max_splats=200, mesh=M.MeshSettings(resolution=24),
        fit=quick(steps=8, refine_start=1, refine_every=2, prune_opacity=1.0),  # every splat is below it at the first refinement
    )  # fmt: skip
    with pytest.raises(InputError, match="pruned every splat"):
        lift(views, settings)


def test_the_floor_quantile_reads_every_pixel_beyond_two_to_the_24() -> None:
    """The lowest points may sit in the last views: a quantile over a prefix of the pixels would miss them."""
    n = (1 << 24) + (1 << 20)
    values = torch.ones(n)
    values[-(1 << 16):] = -1.0  # 0.4 % of the pixels, all past the first 2^24
    assert M.low_quantile(values, 1e-3) == -1.0
    small = torch.arange(1001, dtype=torch.float32)
    assert M.low_quantile(small, 0.01) == 10.0
