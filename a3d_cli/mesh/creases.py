"""Shared vertices and hard edges for meshes whose file gives neither: STL, and triangle soups in OFF, OBJ, PLY.

Why: STL stores each triangle's three corners apart, so read as written a mesh has three vertices per
triangle and no two faces share one. Blender's STL importer and trimesh (`process=True`) merge identical
corners, and so does a3d (`merge_identical_vertices`): the processed mesh and the exported GLB hold one
vertex per point. The normals are a3d's to choose: STL's per-facet normal only repeats the winding (many
writers leave it zero) and OFF has none. A vertex's normal is the area-weighted normal of the faces around
it that meet without a crease; faces meeting at more than CREASE_ANGLE_DEGREES (Blender's default angle
for auto smooth and "Shade Smooth by Angle") stay apart (`split_creases`), so a machined part keeps its
hard edges while a sculpted or scanned surface shades smoothly. The copies of a point on either side of a
crease keep their own normals through `SurfaceMesh.normal_groups`; the splats and the motion still see one
point (`topology.weld`), so a crease never tears when the mesh moves.

Meshes whose faces share vertices, or whose file has normals, are left as read (`load_mesh` decides).

Examples:
    >>> mesh = weld_and_crease(soup)  # doctest: +SKIP
    >>> mesh.num_vertices, mesh.normal_groups is not None  # a cube: 24 vertices (4 per side), 8 points  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.topology import distinct_rows, seam_copies

CREASE_ANGLE_DEGREES = 30.0
"""Faces whose normals differ by more than this meet at a hard edge (Blender's default smoothing angle)."""


def is_triangle_soup(mesh: SurfaceMesh) -> bool:
    """Whether no two face corners share a vertex: every vertex is used by exactly one corner (an STL as read)."""
    if mesh.num_vertices != 3 * mesh.num_faces:
        return False
    return bool((np.bincount(mesh.faces.reshape(-1), minlength=mesh.num_vertices) == 1).all())


def weld_and_crease(mesh: SurfaceMesh, angle_degrees: float = CREASE_ANGLE_DEGREES) -> SurfaceMesh:
    """`merge_identical_vertices`, then `split_creases`: a triangle soup as a shared mesh with hard edges kept."""
    return split_creases(merge_identical_vertices(mesh), angle_degrees)


def merge_identical_vertices(mesh: SurfaceMesh) -> SurfaceMesh:
    """One vertex per distinct position, colour and texture coordinate, in order of first appearance; faces
    that then repeat a vertex (no area) dropped.

    Why equal bit for bit, not within a tolerance: a writer puts the same numbers into every corner of one
    point (binary STL: the same float32s; ASCII STL: the same printed text, read back to the same float), so
    exact equality finds them all, and points a tolerance would join are the model's own (thin walls, fine
    engraving). A seam where colours or texture coordinates differ keeps its copies.

    Args:
        mesh: any mesh (`normal_groups` is not carried: call `split_creases` after).

    Returns:
        The merged mesh; `mesh` itself when no two vertices are identical.
    """
    columns = [mesh.vertices, mesh.vertex_colors.astype(np.float64)]  # [V, 3], [V, 4]
    if mesh.uvs is not None:
        columns.append(mesh.uvs)  # [V, 2]
    varying = [c for c in columns[1:] if len(c) and not (c == c[:1]).all()]  # constant columns decide nothing
    index, count = distinct_rows(np.concatenate([columns[0], *varying], axis=1) + 0.0)  # +0.0: −0.0 is 0.0
    if count == mesh.num_vertices:
        return mesh
    first = np.zeros(count, dtype=np.int64)
    first[index[::-1]] = np.arange(mesh.num_vertices - 1, -1, -1)  # the first vertex of each distinct one
    merged = replace(
        mesh,
        vertices=mesh.vertices[first],
        faces=index[mesh.faces],
        vertex_colors=mesh.vertex_colors[first],
        uvs=None if mesh.uvs is None else mesh.uvs[first],
        normal_groups=None,
    )
    return merged.compact()


def split_creases(mesh: SurfaceMesh, angle_degrees: float = CREASE_ANGLE_DEGREES) -> SurfaceMesh:
    """Split the vertices of `mesh` at its hard edges and say which copies share a normal.

    Around each point, the faces joined across edges whose two faces' normals differ by less than
    `angle_degrees` form one smooth fan; each fan gets its own copy of the point's vertex (vertices already
    split by texture coordinates or colours stay split) and its copies one normal group. An edge of one face
    only, or of more than two, counts as hard. Memory and time grow with the number of faces (one sort of the
    edges, one connected-components pass over the corners).

    Args:
        mesh: a mesh whose faces share vertices (`merge_identical_vertices`).
        angle_degrees: the crease angle.

    Returns:
        A mesh with `normal_groups` set (vertices of one fan share a normal; a fan's texture-seam copies too).
    """
    import trimesh
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    point, count = distinct_rows(mesh.vertices + 0.0)  # [V] the point each vertex stands on
    positions = np.zeros((count, 3))
    positions[point] = mesh.vertices  # [P, 3]
    faces_p = point[mesh.faces]  # [T, 3] faces over points
    on_points = trimesh.Trimesh(vertices=positions, faces=faces_p, process=False, validate=False)
    smooth = on_points.face_adjacency_angles < np.radians(angle_degrees)  # [A] edges shared by two faces
    pairs, edges = on_points.face_adjacency[smooth], on_points.face_adjacency_edges[smooth]  # [S, 2], [S, 2]
    ends = np.concatenate([edges[:, 0], edges[:, 1]])  # [2S] each smooth edge's two points, each a graph edge
    left = _corner(faces_p, np.concatenate([pairs[:, 0], pairs[:, 0]]), ends)  # [2S]
    right = _corner(faces_p, np.concatenate([pairs[:, 1], pairs[:, 1]]), ends)  # [2S]
    corners = 3 * mesh.num_faces
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(corners, corners))
    _, fan = connected_components(graph, directed=False)  # [3T] the smooth fan of each corner
    corner_vertex = mesh.faces.reshape(-1)  # [3T]
    fans = int(fan.max(initial=-1)) + 1
    index, _ = distinct_rows((corner_vertex * fans + fan)[:, None])  # [3T] new vertex per (vertex, fan) pair
    first = np.zeros(int(index.max(initial=-1)) + 1, dtype=np.int64)
    first[index[::-1]] = np.arange(corners - 1, -1, -1)  # the first corner of each new vertex
    source = corner_vertex[first]  # [V'] the vertex each new one copies
    groups, _ = distinct_rows(fan[first][:, None].astype(np.int64))  # [V'] numbered 0.. by first appearance
    return replace(
        mesh,
        vertices=mesh.vertices[source],
        faces=index.reshape(-1, 3),
        vertex_colors=mesh.vertex_colors[source],
        uvs=None if mesh.uvs is None else mesh.uvs[source],
        normal_groups=groups,
    )


def _corner(faces: np.ndarray, face: np.ndarray, point: np.ndarray) -> np.ndarray:
    """[N] the corner (3 · face + k) at which each of `face` [N] touches `point` [N] (faces [T, 3] over points)."""
    return 3 * face + np.argmax(faces[face] == point[:, None], axis=1)


def normal_groups_from_normals(vertices: np.ndarray, normals: np.ndarray) -> np.ndarray | None:
    """The `normal_groups` a written mesh's normals imply: copies of a position share a group when their
    normals are equal; None when every position's copies share one normal (seam copies only).

    Why: `RUN/source/mesh.glb` keeps its hard edges as copies of a point with different NORMALs (and
    `a3d_cli.mesh.store` writes one normal per group, bit for bit), so the stage that animates it can tell
    a crease from a texture seam again without another file.

    Args:
        vertices: [V, 3] positions.
        normals: [V, 3] the NORMAL written with them.

    Returns:
        [V] int64 groups, or None.
    """
    at = seam_copies(vertices)  # [V]
    key = np.concatenate([at[:, None].astype(np.float64), np.asarray(normals, dtype=np.float64) + 0.0], axis=1)
    groups, count = distinct_rows(key)
    return None if count == int(at.max(initial=-1)) + 1 else groups
