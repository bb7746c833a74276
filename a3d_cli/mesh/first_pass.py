"""A fast first collapse for large untextured meshes (fast-simplification), before MeshLab's careful one.

Why: MeshLab's quadric edge collapse (`a3d_cli.mesh.simplify`) spends about the same time on every edge it
removes, so a scan of a million points costs a million of its collapses, nearly all of them far from the
final shape's decisions. fast-simplification (a wrapper of Fast-Quadric-Mesh-Simplification: the same
quadric error, edges removed in rounds of a rising error threshold instead of one at a time from a queue)
removes edges an order of magnitude faster. It takes the mesh down to HEADROOM × the bound only (or less far,
where its thresholds stop it first: noisy scans); MeshLab then makes the last, visible choices from there, with
its boundary, normal and triangle-quality checks.

Where the fast pass is not trusted, it is not used or its work is undone:
- Faceted meshes (more than MAX_FLAT_SHARE of their faces share their normal with another face: a low-poly
  shape cut finely, CAD exports of flat parts) keep MeshLab alone: on a flat patch the quadric's position solve is singular
  and fast-simplification can slide a vertex far across the plane and over the patch's edge.
- A vertex the fast pass placed where its quadric error (the squared distances to the planes of the faces
  around the points it merged) is larger than at the one point it kept goes back to that point: the optimal
  position can only do better, so a worse one is a failed solve.
- Open borders are kept as they are (`preserve_border`): MeshLab's boundary weighting decides them.
Texture coordinates are not carried by fast-simplification, so textured meshes keep MeshLab's
texture-aware collapse throughout.
"""

from __future__ import annotations

import threading

import numpy as np

from a3d_cli.mesh.topology import face_normals_and_areas

HEADROOM = 4
"""The fast pass stops at this many times the vertex bound (the triangle count that goes with it)."""
SCALE_RADIUS = 20.0
"""fast-simplification's thresholds are absolute squared distances rising on a fixed schedule, so the mesh is
scaled to this bounding radius first: the pass then stops at the same errors whatever the file's units."""
AGGRESSIVENESS = 3.0
"""fast-simplification's `agg`: how fast the threshold rises from round to round (its default 7 rises in
coarse steps that remove edges of very different error together, visibly worse on smooth scans)."""
FLAT_ANGLE = 1e-4
"""Radians: faces whose normals differ by less face the same way (float32 corners leave about this much)."""
MAX_FLAT_SHARE = 0.25
"""Meshes with a larger share of faces that repeat another's normal are faceted and skip the fast pass."""
FLAT_SAMPLE = 250_000
"""Faces whose normals `flat_face_share` compares at most."""

_LOCK = threading.Lock()  # fast-simplification keeps the mesh in module-level state between its calls


def first_pass(
    points: np.ndarray,  # [W, 3]
    faces: np.ndarray,  # [T, 3]
    colors: np.ndarray,  # [W, 4]
    max_vertices: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse a welded mesh to about HEADROOM × `max_vertices` vertices with fast-simplification.

    Vertex colours ride along: each remaining vertex gets the mean colour of the input vertices merged into it.

    Args:
        points: [W, 3] welded vertex positions.
        faces: [T, 3] triangles over `points`.
        colors: [W, 4] RGBA per vertex.
        max_vertices: the final bound (MeshLab's collapse reaches it afterwards).

    Returns:
        (points [W', 3], faces [T', 3] int64, colors [W', 4]); the inputs themselves where the pass does not
        apply (small enough already, faceted, no extent).
    """
    target = int(len(faces) * HEADROOM * max_vertices / max(len(points), 1))
    if target >= len(faces) or flat_face_share(points, faces) > MAX_FLAT_SHARE:
        return points, faces, colors
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))  # [3]
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    if not radius > 0:
        return points, faces, colors
    import fast_simplification

    scale = SCALE_RADIUS / radius
    with _LOCK:
        out, out_faces, collapses = fast_simplification.simplify(
            (points - centre) * scale,
            faces.astype(np.int32),
            target_count=max(target, 4),
            agg=AGGRESSIVENESS,
            preserve_border=True,
            return_collapses=True,
        )
    merged = collapse_map(faces, np.asarray(collapses, dtype=np.int64).reshape(-1, 2), len(points))
    if merged is None or merged[1] != len(out) or not np.array_equal(merged[3], out_faces):
        return points, faces, colors  # not the numbering fast-simplification documents: keep MeshLab alone
    group, _, kept, new_faces = merged
    out = out / scale + centre  # [W', 3]
    out = _undo_misplaced(out, points, faces, group, kept)
    return out, new_faces, _mean_per_group(colors, group, len(out))


def flat_face_share(points: np.ndarray, faces: np.ndarray) -> float:
    """Share of the faces whose normal another face repeats (both rounded to a grid of FLAT_ANGLE): the faces of
    flat patches, and of parallel ones (counted too: the test only needs to be cheap and err towards MeshLab).
    Above FLAT_SAMPLE faces, every k-th face stands for the rest (a flat patch worth the name still has several).

    Args:
        points: [W, 3] positions.
        faces: [T, 3] triangles.
    """
    stride = max(1, -(-len(faces) // FLAT_SAMPLE))  # ceil(T / FLAT_SAMPLE)
    normals, area = face_normals_and_areas(points, faces[::stride])  # [T', 3], [T']
    normals = normals[area > 0]
    if not len(normals):
        return 0.0
    half = int(round(1 / FLAT_ANGLE)) + 1
    cells = np.round(normals / FLAT_ANGLE).astype(np.int64) + half  # [T', 3] each in [0, 2 · half]
    key = (cells[:, 0] * (2 * half + 1) + cells[:, 1]) * (2 * half + 1) + cells[:, 2]  # [T']
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())


def collapse_map(
    faces: np.ndarray, collapses: np.ndarray, count: int
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray] | None:
    """Which output vertex each input vertex was merged into, from fast-simplification's collapse history.

    `collapses[i] = (a, b)`: the i-th collapse merged vertex b into vertex a (b is gone after it). The output
    keeps, in input order, the vertices that triangles still use, and the triangles that no collapse made
    degenerate, in input order.

    Args:
        faces: [T, 3] input triangles.
        collapses: [C, 2] the history.
        count: number of input vertices.

    Returns:
        (group [count]: output vertex of each input vertex, -1 where its vertex left the mesh; the number of
        output vertices; kept [W']: the input vertex each output vertex kept; faces [T', 3] over the output),
        or None when the history is not one (a vertex removed twice, or merged into one already gone).
    """
    into, gone = collapses[:, 0], collapses[:, 1]  # [C]
    if len(collapses) and (collapses.min() < 0 or collapses.max() >= count):
        return None
    step_gone = np.full(count, len(collapses))
    step_gone[gone] = np.arange(len(collapses))  # when each vertex was removed (C: never)
    steps = np.arange(len(collapses))
    if (step_gone[gone] != steps).any() or (step_gone[into] <= steps).any():
        return None  # removed twice, or merged into a vertex already removed (or into itself)
    parent = np.arange(count)
    parent[gone] = into  # merges point forward in time, so the chains end
    while not np.array_equal(parent[parent], parent):  # pointer jumping: each round halves every chain
        parent = parent[parent]
    corners = parent[faces]  # [T, 3] the surviving vertex at each corner
    live = (corners[:, 0] != corners[:, 1]) & (corners[:, 1] != corners[:, 2]) & (corners[:, 0] != corners[:, 2])
    kept = np.unique(corners[live])  # [W']
    rank = np.full(count, -1, dtype=np.int64)
    rank[kept] = np.arange(len(kept))
    return rank[parent], len(kept), kept, rank[corners[live]]


def _undo_misplaced(
    out: np.ndarray, points: np.ndarray, faces: np.ndarray, group: np.ndarray, kept: np.ndarray
) -> np.ndarray:
    """`out` [W', 3] with each vertex whose quadric error is larger than that of the input vertex it kept moved
    back to that vertex's position.

    The quadric of an output vertex is fast-simplification's own: the squared distances to the planes of the
    input faces around every input vertex merged into it. Its optimal position can only beat the kept
    vertex's; where it does not, its position solve failed (a near-singular quadric).

    Args:
        out: [W', 3] output positions.
        points: [W, 3] input positions.
        faces: [T, 3] input triangles.
        group: [W] output vertex of each input vertex (-1: none).
        kept: [W'] the input vertex each output vertex kept.
    """
    normals, _ = face_normals_and_areas(points, faces)  # [T, 3]
    offset = -(normals * points[faces[:, 0]]).sum(axis=1)  # [T]: plane n · x + offset = 0
    plane = np.concatenate([normals, offset[:, None]], axis=1)  # [T, 4]
    home = points[kept]  # [W', 3]
    moved, stay = np.c_[out, np.ones(len(out))], np.c_[home, np.ones(len(out))]  # [W', 4] homogeneous
    error_out, error_home = np.zeros(len(out)), np.zeros(len(out))
    for corner in range(3):  # each face's plane counts once for each of its corners' groups
        g = group[faces[:, corner]]  # [T]
        use = g >= 0
        g, p = g[use], plane[use]  # [T'], [T', 4]
        error_out += np.bincount(g, ((p * moved[g]).sum(axis=1)) ** 2, len(out))
        error_home += np.bincount(g, ((p * stay[g]).sum(axis=1)) ** 2, len(out))
    scale = float(np.abs(points).max()) or 1.0
    misplaced = error_out > error_home * (1 + 1e-9) + (1e-12 * scale) ** 2
    out = out.copy()
    out[misplaced] = home[misplaced]
    return out


def _mean_per_group(colors: np.ndarray, group: np.ndarray, count: int) -> np.ndarray:
    """[count, 4] mean of `colors` [W, 4] over the input vertices of each group (-1: none)."""
    member = group >= 0
    g, c = group[member], colors[member]
    n = np.maximum(np.bincount(g, minlength=count), 1)[:, None]
    return np.stack([np.bincount(g, c[:, k], count) for k in range(c.shape[1])], axis=1) / n
