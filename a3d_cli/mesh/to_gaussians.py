"""Mesh → static 3D Gaussians, with the binding that drives the mesh from the splats later.

Why this construction (after Animate3D's `mesh2gaussian`, which puts one Gaussian per vertex and no
optimisation): the motion stages learn how splats move, and the animated mesh needs the motion of every
vertex. So each welded vertex gets its own splat (splat i ↔ welded vertex i), and where vertices are sparse
— big flat triangles of a low-poly asset — extra splats are sampled on the faces so the renders have no holes.
Samples remember their face and barycentric weights (`MeshBinding`), so their motion follows the vertices.

Splat shape: flat discs lying in the surface.
- Vertex splats: the in-plane axes are the principal directions of the vertex's projected edge vectors
  (second-moment tensor), the standard deviations FOOTPRINT × the edge spacing along each axis (anisotropy
  capped at MAX_ANISOTROPY), shrunk by 1/sqrt(1 + samples nearby) where samples share the area.
- Sample splats: isotropic in their face's plane, FOOTPRINT × the spacing of the points on that face.
- Thickness along the normal: FLATNESS × the smaller in-plane deviation.
- Bounded by the surface: no splat reaches far beyond the triangles it stands for. Along each in-plane
  axis the deviation is at most SURFACE_BOUND × the local surface's own standard deviation along it (the
  area-uniform second moment of a sample's triangle, or of the triangle fan around a vertex, about the
  vertex), and a vertex splat at most SURFACE_BOUND × FOOTPRINT × the spacing its share of the fan's area
  gives (a third of the fan, split with the samples on it). Regular meshes are unaffected; long thin
  triangles and big low-poly faces get thin or small splats instead of streaks across the view.
Colour: the mesh colour at the point (texture at the UV times vertex colour; for vertex splats averaged over
the seam copies of the vertex, like Animate3D's average over adjacent faces). Where the splats lie several
texels apart the texture is averaged over that spacing (√(s1·s2) / FOOTPRINT, mip-mapped:
`SurfaceMesh.surface_rgba`), not read at one texel: the views would show that choice as noise.
Opacity SPLAT_OPACITY × alpha.
With `shade=True` a fixed lighting is baked into the colours (`a3d_cli.mesh.shading`), with the normals the
mesh is shown with (`SurfaceMesh.shading_normals`, the NORMAL of `source/mesh.glb`): a sample is lit with the
normal interpolated from its face's corners, as a renderer shades the mesh, not with its face's own normal
(which would show the facets of a low-poly smooth surface); a vertex splat takes the mean of its copies' lit
colours (the sides of a hard edge each lit with their own normal). The splats' orientation stays geometric.
"""

from __future__ import annotations

import numpy as np
import torch

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.geometry import rotmat_to_quat
from a3d_cli.mesh.binding import MeshBinding
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.topology import face_normals_and_areas, unique_edges, vertex_normals, weld

DEFAULT_TARGET_SPLATS = 20_000  # total splats aimed for: ~2 px spacing in 256² views at radius 0.9
SPLAT_OPACITY = 0.99
FOOTPRINT = 0.6  # in-plane standard deviation / local point spacing (≥ 0.5 leaves no see-through gaps)
FLATNESS = 0.1  # normal-axis standard deviation / in-plane one
MAX_ANISOTROPY = 4.0
SURFACE_BOUND = 2.0  # max splat deviation / the local surface's deviation along the same axis
_HEX_AREA = 0.5 * np.sqrt(3.0)  # area per point of a unit-spacing triangular lattice
_R2 = np.array([0.7548776662466927, 0.5698402909980532])  # Roberts' R2 low-discrepancy sequence steps


def mesh_to_gaussians(
    mesh: SurfaceMesh, target_splats: int = DEFAULT_TARGET_SPLATS, seed: int = 0, shade: bool = False
) -> tuple[Gaussians, MeshBinding]:
    """Turn a (normalized) mesh into static splats plus their binding.

    Args:
        mesh: the mesh, already in the normalized frame (its vertex order is the binding's).
        target_splats: total splat count aimed for; surface samples fill up to it where vertices are sparse
            (no samples when the mesh already has this many welded vertices).
        seed: seeds sample counts and positions (the result is deterministic for a seed).
        shade: bake `a3d_cli.mesh.shading`'s fixed lighting into the splat colours.

    Returns:
        (Gaussians with W vertex splats then S sample splats, MeshBinding).

    Examples:
        >>> g, binding = mesh_to_gaussians(mesh, target_splats=20_000)  # doctest: +SKIP
        >>> np.allclose(binding.vertex_positions(g.means.numpy()), mesh.vertices, atol=1e-5)  # doctest: +SKIP
        True
    """
    rng = np.random.default_rng(seed)
    # 1. weld seam copies: one splat per distinct position
    vertex_splat, w = weld(mesh.vertices)
    pos = np.zeros((w, 3))
    pos[vertex_splat] = mesh.vertices  # [W, 3]
    faces_w = vertex_splat[mesh.faces]  # [T, 3]
    f_normal, f_area = face_normals_and_areas(pos, faces_w)  # [T, 3], [T]
    edges = unique_edges(faces_w)  # [E, 2]

    # 2. how many surface samples each face gets (stochastic rounding keeps the expected total)
    n_face = _samples_per_face(f_area, w, target_splats, rng)  # [T]
    face_ids = np.repeat(np.arange(len(faces_w)), n_face)  # [S]
    bary = _face_points(n_face, rng)  # [S, 3]

    # 3. vertex splats: frames and sizes from the local edges
    v_rot, v_scale = _vertex_splat_shapes(pos, faces_w, edges, f_area, n_face)

    # 4. sample splats: frames from their face, sizes from the face's point spacing
    s_pos = np.einsum("sk,skc->sc", bary, pos[faces_w[face_ids]])  # [S, 3]
    s_rot, s_scale = _sample_splat_shapes(pos, faces_w, f_normal, f_area, n_face, face_ids)

    # 5. colours: average of the seam copies for vertex splats, the surface colour for samples; lit with the
    #    mesh's shading normals (interpolated over the face for samples) where the light is baked
    v_spacing, s_spacing = (np.sqrt(s[:, 0] * s[:, 1]) / FOOTPRINT for s in (v_scale, s_scale))  # [W], [S]
    copy_rgba = mesh.vertex_rgba(v_spacing[vertex_splat])  # [V, 4]
    s_rgba = mesh.surface_rgba(face_ids, bary, s_spacing) if len(face_ids) else np.zeros((0, 4), np.float32)  # [S, 4]
    if shade:
        copy_rgba, s_rgba = _lit(mesh, copy_rgba, s_rgba, face_ids, bary)
    v_rgba = _average_rows(copy_rgba, vertex_splat, w)  # [W, 4]
    rgba = np.concatenate([v_rgba, s_rgba], axis=0)  # [N, 4]

    g = Gaussians(
        means=torch.from_numpy(np.concatenate([pos, s_pos], axis=0)).float(),
        quats=rotmat_to_quat(torch.from_numpy(np.concatenate([v_rot, s_rot], axis=0))).float(),
        scales=torch.from_numpy(np.concatenate([v_scale, s_scale], axis=0)).float(),
        opacities=torch.from_numpy(SPLAT_OPACITY * np.clip(rgba[:, 3], 0.0, 1.0)).float(),
        colors=torch.from_numpy(np.clip(rgba[:, :3], 0.0, 1.0)).float(),
    )
    binding = MeshBinding(
        vertex_splat=vertex_splat,
        rest_vertices=mesh.vertices.astype(np.float32),
        faces=mesh.faces.astype(np.int64),
        sample_face=face_ids.astype(np.int64),
        sample_bary=bary.astype(np.float32),
        edges=edges,
        num_vertex_splats=w,
    )
    return g, binding


def _samples_per_face(area: np.ndarray, num_vertices: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """[T] sample counts: a face holds area/a_target points, of which half a vertex is already there."""
    total = float(area.sum())
    if target <= num_vertices or total <= 0:
        return np.zeros(len(area), dtype=np.int64)
    per_point = total / target
    expected = np.maximum(area / per_point - 0.5, 0.0)  # [T]
    return np.floor(expected + rng.random(len(area))).astype(np.int64)


def _face_points(n_face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[S, 3] barycentric weights: an R2 sequence with a random start per face, warped onto the triangle."""
    total = int(n_face.sum())
    if total == 0:
        return np.zeros((0, 3))
    face_ids = np.repeat(np.arange(len(n_face)), n_face)  # [S]
    k = np.arange(total) - np.repeat(np.cumsum(n_face) - n_face, n_face)  # [S] index within its face
    start = rng.random((len(n_face), 2))[face_ids]  # [S, 2]
    r = np.mod(start + (k[:, None] + 1) * _R2, 1.0)  # [S, 2]
    s = np.sqrt(r[:, 0])
    return np.stack([1 - s, s * (1 - r[:, 1]), s * r[:, 1]], axis=-1)


def _tangent_frames(normals: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """[P, 3, 3] rotations with columns (a1, a2, n): a1 = `directions` made orthogonal to n, a2 = n × a1."""
    n = normals.copy()
    bad_n = np.linalg.norm(n, axis=-1) < 0.5
    n[bad_n] = (0.0, 1.0, 0.0)
    a1 = directions - np.sum(directions * n, axis=-1, keepdims=True) * n
    norm = np.linalg.norm(a1, axis=-1, keepdims=True)
    # directions parallel to n (or zero): any perpendicular axis
    helper = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    fallback = np.cross(n, helper)
    a1 = np.where(
        norm > 1e-12, a1 / np.maximum(norm, 1e-300), fallback / np.linalg.norm(fallback, axis=-1, keepdims=True)
    )
    a2 = np.cross(n, a1)
    return np.stack([a1, a2, n], axis=-1)


def _vertex_splat_shapes(
    pos: np.ndarray, faces: np.ndarray, edges: np.ndarray, f_area: np.ndarray, n_face: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotations [W, 3, 3] and scales [W, 3] of the vertex splats."""
    w = len(pos)
    normals = vertex_normals(pos, faces)  # [W, 3]
    # second moment of the edge vectors around each vertex
    d = pos[edges[:, 1]] - pos[edges[:, 0]]  # [E, 3]
    outer = d[:, :, None] * d[:, None, :]  # [E, 3, 3]
    moment = np.zeros((w, 3, 3))
    np.add.at(moment, edges[:, 0], outer)
    np.add.at(moment, edges[:, 1], outer)
    count = np.bincount(edges.ravel(), minlength=w).astype(np.float64)  # [W]
    moment /= np.maximum(count, 1)[:, None, None]
    # where the faces around a vertex cancel, the flattest direction of its edges serves as the normal
    evals, evecs = np.linalg.eigh(moment)  # ascending  # [W, 3], [W, 3, 3]
    no_normal = np.linalg.norm(normals, axis=-1) < 0.5
    normals[no_normal] = evecs[no_normal, :, 0]
    proj = np.eye(3) - normals[:, :, None] * normals[:, None, :]  # [W, 3, 3]
    tangent_moment = proj @ moment @ proj
    _, t_evecs = np.linalg.eigh(tangent_moment)
    rot = _tangent_frames(normals, t_evecs[:, :, 2])  # [W, 3, 3]
    a1, a2 = rot[:, :, 0], rot[:, :, 1]
    spacing1 = np.sqrt(2.0 * np.maximum(np.einsum("wi,wij,wj->w", a1, moment, a1), 0.0))  # [W]
    spacing2 = np.sqrt(2.0 * np.maximum(np.einsum("wi,wij,wj->w", a2, moment, a2), 0.0))  # [W]
    spacing2 = np.maximum(spacing2, spacing1 / MAX_ANISOTROPY)
    # samples on the surrounding faces share the vertex's area
    nearby = np.zeros(w)
    for k in range(3):
        np.add.at(nearby, faces[:, k], n_face / 3.0)
    shrink = 1.0 / np.sqrt(1.0 + nearby)  # [W]
    # bounded by the surface: the vertex's share of its fan's area (split with the samples there), and the
    # fan's own extent along each axis (thin fans of long thin triangles give thin splats)
    fan_area = np.zeros(w)
    for k in range(3):
        np.add.at(fan_area, faces[:, k], f_area)
    share_spacing = np.sqrt(fan_area / 3.0 / (1.0 + nearby) / _HEX_AREA)  # [W]
    fan = _fan_moments(pos, faces, f_area)  # [W, 3, 3]
    cap1 = np.minimum(SURFACE_BOUND * FOOTPRINT * share_spacing, _bound_along(fan, a1))
    cap2 = np.minimum(SURFACE_BOUND * FOOTPRINT * share_spacing, _bound_along(fan, a2))
    s1 = np.maximum(np.minimum(FOOTPRINT * spacing1 * shrink, cap1), 1e-6)
    s2 = np.maximum(np.minimum(FOOTPRINT * spacing2 * shrink, cap2), 1e-6)
    scale = np.stack([s1, s2, FLATNESS * np.minimum(s1, s2)], axis=-1)  # [W, 3]
    return rot, scale


def _sample_splat_shapes(
    pos: np.ndarray,
    faces: np.ndarray,
    f_normal: np.ndarray,
    f_area: np.ndarray,
    n_face: np.ndarray,
    face_ids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotations [S, 3, 3] and scales [S, 3] of the surface samples."""
    if len(face_ids) == 0:
        return np.zeros((0, 3, 3)), np.zeros((0, 3))
    used = np.unique(face_ids)  # shapes are per face: compute them once per face that has samples
    tri = pos[faces[used]]  # [U, 3, 3]
    d = tri - tri.mean(axis=1, keepdims=True)  # [U, 3, 3] corners about the centroid
    cov = np.einsum("uki,ukj->uij", d, d) / 12.0  # [U, 3, 3] covariance of the uniform triangle
    evals, evecs = np.linalg.eigh(cov)  # ascending
    rot_u = _tangent_frames(f_normal[used], evecs[:, :, 2])  # [U, 3, 3] a1 = the triangle's long axis
    spacing = np.sqrt(f_area[used] / (n_face[used] + 0.5) / _HEX_AREA)  # [U]
    s1 = np.minimum(FOOTPRINT * spacing, _bound_along(cov, rot_u[:, :, 0]))
    s2 = np.minimum(FOOTPRINT * spacing, _bound_along(cov, rot_u[:, :, 1]))
    s1, s2 = np.maximum(s1, 1e-6), np.maximum(s2, 1e-6)
    scale_u = np.stack([s1, s2, FLATNESS * np.minimum(s1, s2)], axis=-1)  # [U, 3]
    where = np.searchsorted(used, face_ids)  # [S]
    return rot_u[where], scale_u[where]


def _fan_moments(pos: np.ndarray, faces: np.ndarray, f_area: np.ndarray) -> np.ndarray:
    """[W, 3, 3] second moment, about each vertex, of the area-uniform distribution over its triangle fan."""
    w = len(pos)
    moment = np.zeros((w, 3, 3))
    for k in range(3):
        b = pos[faces[:, (k + 1) % 3]] - pos[faces[:, k]]  # [T, 3] the other corners, relative to corner k
        c = pos[faces[:, (k + 2) % 3]] - pos[faces[:, k]]
        m = (
            b[:, :, None] * b[:, None, :] + c[:, :, None] * c[:, None, :] + (b + c)[:, :, None] * (b + c)[:, None, :]
        ) / 12.0  # [T, 3, 3] E[p p^T] over the triangle, p from corner k
        np.add.at(moment, faces[:, k], f_area[:, None, None] * m)
    area = np.zeros(w)
    for k in range(3):
        np.add.at(area, faces[:, k], f_area)
    return moment / np.maximum(area, 1e-300)[:, None, None]


def _bound_along(moment: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """[P] SURFACE_BOUND × the standard deviation of a [P, 3, 3] second moment along unit axes [P, 3]."""
    return SURFACE_BOUND * np.sqrt(np.maximum(np.einsum("pi,pij,pj->p", axis, moment, axis), 0.0))


def _lit(
    mesh: SurfaceMesh, copy_rgba: np.ndarray, s_rgba: np.ndarray, face_ids: np.ndarray, bary: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The colours of the vertices [V, 4] and of the samples [S, 4] under `a3d_cli.mesh.shading`'s light, with
    the normals the mesh is shown with (`SurfaceMesh.shading_normals`, interpolated at each sample), so the
    views shade like `source/mesh.glb` in a viewer: smooth where the mesh is smooth, hard at its hard edges.
    A vertex splat where copies with different normals meet (a hard edge) takes the mean of their lit colours."""
    from a3d_cli.mesh.shading import shade_srgb

    normals = mesh.shading_normals()  # [V, 3]
    lit_copies = copy_rgba.copy()
    lit_copies[:, :3] = shade_srgb(copy_rgba[:, :3], normals)
    lit_samples = s_rgba.copy()
    if len(face_ids):
        lit_samples[:, :3] = shade_srgb(s_rgba[:, :3], mesh.surface_normals(face_ids, bary, normals))
    return lit_copies, lit_samples


def _average_rows(values: np.ndarray, index: np.ndarray, count: int) -> np.ndarray:
    """[count, C] mean of `values` rows grouped by `index`."""
    out = np.zeros((count, values.shape[1]))
    np.add.at(out, index, values)
    return out / np.maximum(np.bincount(index, minlength=count), 1)[:, None]
