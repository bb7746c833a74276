"""Normalization, welding, mesh → splats with its binding, simplification."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import grid, textured_sphere, write_glb

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.mesh.binding import MeshBinding
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.normalize import (
    NORMALIZED_RADIUS,
    Normalization,
    axis_rotation,
    fit_normalization,
    normalize_gaussians,
)
from a3d_cli.mesh.simplify import simplify_mesh, welded_vertex_count
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians
from a3d_cli.mesh.topology import vertex_normals, weld


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


@pytest.fixture(scope="module")
def sphere_mesh(tmp_path_factory) -> SurfaceMesh:
    """A textured UV sphere (seams and poles duplicated), normalized."""
    path = write_glb(tmp_path_factory.mktemp("s") / "s.glb", (textured_sphere(24, radius=2.0), np.eye(4)))
    mesh = load_mesh(path)
    norm = fit_normalization(mesh.vertices)
    return mesh.with_vertices(norm.apply(mesh.vertices))


# -- normalization -------------------------------------------------------------------------------------


@pytest.mark.parametrize("up,front", [("+y", "+z"), ("+z", "-y"), ("-x", "+y"), ("+z", "+x")])
def test_axis_rotation_maps_up_and_front(up, front):
    from a3d_cli.mesh.normalize import AXES

    r = axis_rotation(up, front)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(r @ np.array(AXES[up]), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(r @ np.array(AXES[front]), [0, 0, 1], atol=1e-12)


def test_axis_rotation_rejects_parallel_axes():
    with pytest.raises(ValueError):
        axis_rotation("+y", "-y")


def test_fit_normalization_centres_scales_and_inverts():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 3)) * [3.0, 1.0, 0.5] + [10.0, -4.0, 2.0]
    norm = fit_normalization(points, up="+z", front="-y")
    out = norm.apply(points)
    assert np.isclose(np.linalg.norm(out, axis=-1).max(), NORMALIZED_RADIUS)
    np.testing.assert_allclose(0.5 * (out.min(0) + out.max(0)), 0.0, atol=1e-9)  # bbox centred
    np.testing.assert_allclose(norm.invert(out), points, atol=1e-9)
    homog = np.concatenate([points, np.ones((len(points), 1))], 1)
    np.testing.assert_allclose((homog @ norm.matrix.T)[:, :3], out, atol=1e-9)
    np.testing.assert_allclose(norm.matrix @ norm.inverse, np.eye(4), atol=1e-12)
    # the asset's +Z (up) is a3d's +Y
    np.testing.assert_allclose(norm.apply(points[:1] + [0, 0, 1]) - out[:1], [[0, norm.scale, 0]], atol=1e-9)
    back = Normalization.from_json(json.loads(norm.dumps()))
    np.testing.assert_allclose(back.matrix, norm.matrix, atol=1e-12)
    assert back.up == "+z" and back.front == "-y"


def test_robust_normalization_ignores_floaters():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.uniform(-1, 1, size=(2000, 3)), [[500.0, 0, 0]]])
    norm = fit_normalization(points, robust=True)
    assert norm.scale > 0.3  # the floater did not shrink the object to a dot
    assert np.abs(norm.center).max() < 0.1


def _random_splats(n: int, seed: int, sh_degree: int = 0) -> Gaussians:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    k = (sh_degree + 1) ** 2
    return Gaussians(
        means=torch.from_numpy(rng.normal(size=(n, 3))).float(),
        quats=torch.from_numpy(q / np.linalg.norm(q, axis=-1, keepdims=True)).float(),
        scales=torch.from_numpy(rng.uniform(0.01, 0.2, size=(n, 3))).float(),
        opacities=torch.full((n,), 0.5),
        colors=torch.from_numpy(rng.uniform(0.2, 0.8, size=(n, 3))).float(),
        sh_rest=torch.from_numpy(0.2 * rng.normal(size=(n, k - 1, 3))).float() if sh_degree else None,
    )


def test_normalize_gaussians_transforms_covariances():
    g = _random_splats(20, seed=2)
    norm = fit_normalization(g.means.numpy(), up="+z", front="+x")
    out = normalize_gaussians(g, norm)
    np.testing.assert_allclose(out.means.numpy(), norm.apply(g.means.numpy()), atol=1e-5)

    def cov(gg: Gaussians) -> np.ndarray:
        r = quat_to_rotmat(gg.quats.double().numpy())
        return r @ (np.eye(3) * (gg.scales.double().numpy() ** 2)[:, None, :]) @ np.swapaxes(r, -1, -2)

    m = norm.scale * norm.rotation
    np.testing.assert_allclose(cov(out), m @ cov(g) @ m.T, atol=1e-6)


@pytest.mark.parametrize("up,front", [("+z", "+x"), ("-x", "+y"), ("+y", "+z")])
def test_normalize_gaussians_keeps_view_dependent_colour(up, front):
    """Seen along R·d after normalization, each splat shows the colour it showed along d before."""
    from a3d_cli.kernels.sh_ref import sh_colors

    g = _random_splats(64, seed=3, sh_degree=3)
    norm = fit_normalization(g.means.numpy(), up=up, front=front)
    out = normalize_gaussians(g, norm)
    assert out.sh_degree == 3
    dirs = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(4)), dim=-1)
    rotated = dirs @ torch.from_numpy(norm.rotation).float().T  # [N, 3] R d
    before = sh_colors(3, dirs, g.sh_coeffs())  # [N, 3]
    after = sh_colors(3, rotated, out.sh_coeffs())
    assert (before - g.colors).abs().max() > 0.05  # the SH rest does change the colour with direction
    torch.testing.assert_close(after, before, atol=2e-5, rtol=0)


# -- welding and splats --------------------------------------------------------------------------------


def test_weld_keeps_order_and_merges_copies():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    index, w = weld(v)
    assert w == 3 and index.tolist() == [0, 1, 2]
    dup = np.concatenate([v, v[[1]] + 1e-9, [[5.0, 5.0, 5.0]]])
    index, w = weld(dup)
    assert w == 4 and index.tolist() == [0, 1, 2, 1, 3]


def test_vertex_normals_point_out_of_a_sphere_for_each_pose():
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=3)
    verts, faces = np.asarray(ball.vertices), np.asarray(ball.faces)
    verts = np.concatenate([verts, [[5.0, 5.0, 5.0]]])  # a vertex on no face
    normals = vertex_normals(verts, faces)  # [V, 3]
    radial = verts[:-1] / np.linalg.norm(verts[:-1], axis=-1, keepdims=True)
    assert np.einsum("vi,vi->v", normals[:-1], radial).min() > 0.999
    np.testing.assert_allclose(normals[-1], 0.0)
    np.testing.assert_allclose(vertex_normals(verts, faces, fallback=(0.0, 1.0, 0.0))[-1], [0.0, 1.0, 0.0])
    # a batch of poses is each pose on its own: the sphere stretched along x tilts its normals towards x
    stretched = verts * [3.0, 1.0, 1.0]
    batch = vertex_normals(np.stack([verts, stretched]), faces)  # [2, V, 3]
    np.testing.assert_allclose(batch[0], normals, atol=1e-12)
    np.testing.assert_allclose(batch[1], vertex_normals(stretched, faces), atol=1e-12)
    expected = radial * [1.0, 3.0, 3.0]  # the gradient of x²/9 + y² + z² at (3x, y, z) is ∝ (x, 3y, 3z)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    assert np.einsum("vi,vi->v", batch[1, :-1], expected).mean() > 0.99


def test_vertex_splats_sit_on_vertices_and_binding_recovers_them(sphere_mesh):
    g, b = mesh_to_gaussians(sphere_mesh, target_splats=4000, seed=0)
    v_count = sphere_mesh.num_vertices
    assert b.num_vertex_splats < v_count  # seam and pole copies were welded
    assert len(g) == b.num_splats and b.num_samples > 0
    means = g.means.double().numpy()
    np.testing.assert_allclose(b.vertex_positions(means), sphere_mesh.vertices, atol=1e-5)
    np.testing.assert_allclose(b.sample_positions(sphere_mesh.vertices), means[b.num_vertex_splats :], atol=1e-5)
    assert np.all(b.sample_bary >= -1e-6) and np.allclose(b.sample_bary.sum(-1), 1.0, atol=1e-5)
    # every undirected edge joins two vertex splats, no self loops
    assert b.edges.max() < b.num_vertex_splats and np.all(b.edges[:, 0] < b.edges[:, 1])
    assert np.linalg.norm(means, axis=-1).max() <= NORMALIZED_RADIUS + 1e-5


def test_splats_lie_flat_on_the_surface(sphere_mesh):
    g, b = mesh_to_gaussians(sphere_mesh, target_splats=3000, seed=0)
    rot = quat_to_rotmat(g.quats.double().numpy())  # [N, 3, 3]
    scales = g.scales.double().numpy()
    thin_axis = rot[np.arange(len(g)), :, np.argmin(scales, axis=-1)]  # [N, 3]
    radial = g.means.double().numpy() / np.linalg.norm(g.means.double().numpy(), axis=-1, keepdims=True)
    # the sphere (centred at the origin) has radial normals: the thinnest axis points along them
    assert np.median(np.abs(np.sum(thin_axis * radial, -1))) > 0.98
    assert np.all(scales.min(-1) < 0.25 * scales.max(-1))


def test_anisotropy_follows_edge_spacing():
    v, f, _ = grid(10, 10, sx=4.0, sy=1.0)  # spacing 0.4 along x, 0.1 along y
    mesh = SurfaceMesh(v, f, np.ones((len(v), 4), np.float32))
    g, b = mesh_to_gaussians(mesh, target_splats=1, seed=0)  # no samples: only the edges decide
    assert b.num_samples == 0
    rot = quat_to_rotmat(g.quats.double().numpy())
    interior = (np.abs(v[:, 0]) < 1.5) & (np.abs(v[:, 1]) < 0.35)
    long_axis = rot[:, :, 0][interior]
    assert np.all(np.abs(long_axis[:, 0]) > 0.99)  # first axis along x
    ratio = (g.scales[:, 0] / g.scales[:, 1]).numpy()[interior]
    assert np.all((ratio > 2.0) & (ratio <= 4.0 + 1e-6))


def test_colours_come_from_the_texture(sphere_mesh):
    g, b = mesh_to_gaussians(sphere_mesh, target_splats=3000, seed=0)
    colors = g.colors.numpy()
    s0 = b.num_vertex_splats
    expected = sphere_mesh.surface_rgba(b.sample_face, b.sample_bary.astype(np.float64))[:, :3]
    np.testing.assert_allclose(colors[s0:], expected, atol=1e-5)
    # the texture is red for u < 0.5 (x < 0 side of the sphere) and blue for u > 0.5
    x = g.means[:, 0].numpy()
    assert colors[x < -0.3, 0].min() > 0.6 and colors[x > 0.3, 2].min() > 0.6


def test_samples_fill_sparse_meshes_and_are_seeded():
    v, f, _ = grid(2, 2)  # 9 vertices, large faces
    mesh = SurfaceMesh(v, f, np.ones((len(v), 4), np.float32))
    g1, b1 = mesh_to_gaussians(mesh, target_splats=500, seed=1)
    g2, b2 = mesh_to_gaussians(mesh, target_splats=500, seed=1)
    g3, _ = mesh_to_gaussians(mesh, target_splats=500, seed=2)
    assert 400 < len(g1) < 600
    torch.testing.assert_close(g1.means, g2.means)
    assert not torch.allclose(g1.means, g3.means)
    # sample splats are smaller than vertex splats would be on their own
    assert g1.scales[9:, 0].mean() < 0.5 * mesh_to_gaussians(mesh, target_splats=1)[0].scales[:, 0].mean()


def test_splats_cover_the_surface_without_holes():
    """A flat square seen head-on renders opaque everywhere inside it (FOOTPRINT leaves no gaps)."""
    from a3d_cli.kernels import rasterize
    from a3d_cli.render.cameras import orbit_cameras

    v, f, _ = grid(6, 6, sx=1.2, sy=1.2)
    mesh = SurfaceMesh(v, f, np.ones((len(v), 4), np.float32))
    g, _ = mesh_to_gaussians(mesh, target_splats=1500, seed=0)
    cams = orbit_cameras([0.0], [0.0], radius=3.0, fov_deg=40.0)
    out = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, cams.viewmats, cams.Ks(64, 64), 64, 64)
    alpha = out.alphas[0, ..., 0]
    # the square spans ±0.6 → ±0.6 / (3 · tan 20°) of the half image: pixels well inside it
    half = 0.6 / (3 * np.tan(np.radians(20))) * 32
    lo, hi = int(32 - 0.8 * half), int(32 + 0.8 * half)
    assert alpha[lo:hi, lo:hi].min() > 0.95
    assert alpha[:3, :3].max() < 0.01


# -- simplification ------------------------------------------------------------------------------------


def test_simplify_bounds_welded_vertices_and_keeps_texture(sphere_mesh):
    before = welded_vertex_count(sphere_mesh)
    small = simplify_mesh(sphere_mesh, max_vertices=150)
    assert welded_vertex_count(small) <= 150 < before
    assert small.texture is sphere_mesh.texture and small.uvs is not None
    assert np.linalg.norm(small.vertices, axis=-1).max() < NORMALIZED_RADIUS + 0.05
    # colours still come from the right halves of the texture
    rgba = small.vertex_rgba()
    x = small.vertices[:, 0]
    assert rgba[x < -0.4, 0].mean() > 0.6 and rgba[x > 0.4, 2].mean() > 0.6
    assert simplify_mesh(sphere_mesh, max_vertices=before) is sphere_mesh


def test_simplify_vertex_coloured_mesh():
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=4)  # 2562 vertices
    colors = np.where(s.vertices[:, 1:2] > 0, [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]).astype(np.float32)
    mesh = SurfaceMesh(np.asarray(s.vertices), np.asarray(s.faces), colors)
    small = simplify_mesh(mesh, max_vertices=300)
    assert small.num_vertices <= 300 and small.texture is None
    top = small.vertex_colors[small.vertices[:, 1] > 0.3]
    assert top[:, 0].mean() > 0.9


@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        ("v %.9g %.9g %.9g %.6g %.6g %.6g", np.random.default_rng(0).standard_normal((23, 6)) * [1e5, 1, 1e-7, 1, 1, 1]),
        ("vt %.9g %.9g", np.array([[-0.0, np.nan], [np.inf, 1e-300], [0.1, 1 / 3]])),
        ("f %d/%d %d/%d %d/%d", np.random.default_rng(1).integers(1, 2**40, (23, 6))),
        ("vt %.9g %.9g", np.zeros((0, 2))),
    ],
)
def test_the_obj_handed_to_meshlab_is_the_text_savetxt_writes(monkeypatch, fmt, rows):
    """The OBJ lines `simplify` writes for MeshLab in blocks of rows are, across block edges, the text
    `np.savetxt` writes for the same format (the rounding of the positions decides MeshLab's collapse)."""
    import io

    from a3d_cli.mesh import simplify

    monkeypatch.setattr(simplify, "_ROWS_PER_WRITE", 5)  # several blocks and a partial last one
    got = io.StringIO()
    simplify._write_rows(got, fmt, rows)
    want = io.BytesIO()
    np.savetxt(want, rows, fmt=fmt)
    assert got.getvalue() == want.getvalue().decode()


def test_simplified_faces_of_an_atlas_read_only_their_own_image(sphere_mesh):
    """The two halves of a sphere, each textured with its own image, share an atlas; decimated tenfold, every face
    still has all three texture coordinates within one packed image. MeshLab's optimal placement put some a few
    percent of the image past its edge (into the atlas's white gap, or by REPEAT onto its far side)."""
    from a3d_cli.mesh.surface import concatenate

    rng = np.random.default_rng(0)
    west = sphere_mesh.uvs[sphere_mesh.faces].mean(axis=1)[:, 0] < 0.5  # [T]
    parts = []
    for half, size in ((west, 24), (~west, 16)):
        texture = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        texture[..., 3] = 255
        parts.append(replace(sphere_mesh, faces=sphere_mesh.faces[half], texture=texture).compact())
    atlas = concatenate(parts)
    assert len(atlas.islands) >= 2
    small = simplify_mesh(atlas, max_vertices=60)
    h, w = small.texture.shape[:2]
    at = np.stack([small.uvs[:, 0] * w, (1 - small.uvs[:, 1]) * h], axis=-1)[small.faces]  # [T, 3, 2] texels
    lo = np.array([[p.x, p.y] for p in atlas.islands], dtype=np.float64)
    hi = lo + [[p.width, p.height] for p in atlas.islands]
    inside = ((at[:, :, None] >= lo - 1e-6) & (at[:, :, None] <= hi + 1e-6)).all(axis=-1).all(axis=1)  # [T, I]
    assert inside.any(axis=1).all(), f"{(~inside.any(axis=1)).sum()} of {len(inside)} faces leave their image"

@pytest.mark.parametrize("textured", [True, False])
def test_simplify_keeps_the_alpha_mode(sphere_mesh, textured):
    """A BLEND or MASK material stays see-through after simplification (its splats' opacity follows it)."""
    mesh = replace(sphere_mesh, alpha_mode="BLEND")
    if not textured:
        mesh = replace(mesh, uvs=None, texture=None)
    assert simplify_mesh(mesh, max_vertices=150).alpha_mode == "BLEND"


# -- binding file --------------------------------------------------------------------------------------


def test_binding_round_trip_and_samples_follow_deformations(tmp_path, sphere_mesh):
    g, b = mesh_to_gaussians(sphere_mesh, target_splats=2000, seed=0)
    b.save(tmp_path / "binding.safetensors")
    back = MeshBinding.load(tmp_path / "binding.safetensors")
    for name in ("vertex_splat", "rest_vertices", "faces", "sample_face", "sample_bary", "edges"):
        np.testing.assert_array_equal(getattr(back, name), getattr(b, name))
    assert back.num_vertex_splats == b.num_vertex_splats
    # barycentric samples follow any affine motion of the vertices exactly
    a = np.array([[1.2, 0.1, 0.0], [0.0, 0.9, 0.3], [0.2, 0.0, 1.1]])
    moved = sphere_mesh.vertices @ a.T + [0.1, 0.2, 0.3]
    np.testing.assert_allclose(
        back.sample_positions(moved), g.means.double().numpy()[b.num_vertex_splats :] @ a.T + [0.1, 0.2, 0.3], atol=1e-5
    )
    # batched: frames of vertex positions
    frames = np.stack([sphere_mesh.vertices, moved])
    assert back.sample_positions(frames).shape == (2, b.num_samples, 3)
