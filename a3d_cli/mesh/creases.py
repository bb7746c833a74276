"""Shared vertices and hard edges for meshes whose file gives neither: STL, and triangle soups in OFF, OBJ, PLY.

Why: STL stores each triangle's three corners apart, so read as written a mesh has three vertices per
triangle and no two faces share one. Blender's STL importer and trimesh (`process=True`) merge identical
corners, and so does a3d (`merge_identical_vertices`): the processed mesh and the exported GLB hold one
vertex per point. The normals are a3d's to choose: STL's per-facet normal only repeats the winding (many
writers leave it zero) and OFF has none. A vertex's normal is the area-weighted normal of the faces around
it that meet without a crease; faces whose normals differ by more than CREASE_ANGLE_DEGREES (the default
angle of Blender's auto smooth) stay apart (`split_creases`), so a machined part keeps its
hard edges while a sculpted or scanned surface shades smoothly. The copies of a point on either side of a
crease keep their own normals through `SurfaceMesh.normal_groups`; the splats and the motion still see one
point (`topology.weld`), so a crease never tears when the mesh moves.

Meshes whose faces share vertices, or whose file has normals, are not welded (`load_mesh` decides); a file's
normals keep their own hard edges (`normal_groups_from_normals`). A glTF primitive without NORMAL, which glTF
shades flat, is given the copies and normals a flat-shading exporter writes (`flat_vertices`), whose edges
are then kept as a file's own. An OBJ without normals but with smoothing groups (`s 1`, `s off`) is split
where its groups meet and flat where smoothing is off (`split_face_groups`, `a3d_cli.mesh.obj_smoothing`)
instead of by the crease angle.

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
"""Faces whose normals differ by more than this meet at a hard edge (Blender 3.4's default auto smooth angle)."""

FLAT = -1
"""The label of a face shaded flat (`split_face_groups`); smoothing groups are numbered from 0."""


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
    keys = np.concatenate([columns[0], *varying], axis=1)  # [V, 3 + ...]
    keys += 0.0  # −0.0 becomes 0.0: one number, one bit pattern
    index, count = distinct_rows(keys)
    if count == mesh.num_vertices:
        return mesh
    first = _first_of_each(index)  # [D] the first vertex of each distinct one
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
    only, or of more than two, counts as hard, as does one of a face without area. Memory and time grow with
    the number of faces: a few sorts of the 3T corners and one connected-components pass over them (scipy).

    Args:
        mesh: a mesh whose faces share vertices (`merge_identical_vertices`).
        angle_degrees: the crease angle.

    Returns:
        A mesh with `normal_groups` set (vertices of one fan share a normal; a fan's texture-seam copies too).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    point, _ = distinct_rows(mesh.vertices + 0.0)  # [V] the point each vertex stands on
    faces_p = point[mesh.faces]  # [T, 3] faces over points
    left, right = _smooth_corner_pairs(mesh.vertices, mesh.faces, faces_p, np.cos(np.radians(angle_degrees)))
    corners = 3 * mesh.num_faces
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(corners, corners))
    _, fan = connected_components(graph, directed=False)  # [3T] the smooth fan of each corner
    return _split_into_fans(mesh, fan)


def split_face_groups(mesh: SurfaceMesh, labels: np.ndarray) -> SurfaceMesh:
    """Split the vertices of `mesh` where faces of different groups meet, as `split_creases` splits at creases.

    Around each point, the faces of one label form one smooth fan (`split_creases`' copies and normal groups),
    so a point where faces of two labels meet gets a copy and a normal for each: a hard edge between them.
    Faces labelled FLAT (an OBJ's faces in `s off`, `a3d_cli.mesh.obj_smoothing`) shade flat: at each point
    they share a copy only with flat faces facing within FILE_NORMAL_DEGREES of the same way (`normal_clusters`,
    as `flat_vertices` shares them), so a flat side of two triangles stays one side.

    Args:
        mesh: a mesh whose faces share vertices.
        labels: [T] int64 the group of each face: a number ≥ 0, or FLAT.

    Returns:
        `mesh` itself when every face holds one label ≥ 0 (one smooth surface, as without labels), else the
        split mesh with `normal_groups` set.
    """
    from a3d_cli.mesh.topology import face_normals_and_areas

    corner_label = np.repeat(np.asarray(labels, dtype=np.int64), 3)  # [3T]
    if not len(corner_label) or (corner_label[0] >= 0 and (corner_label == corner_label[0]).all()):
        return mesh
    point, _ = distinct_rows(mesh.vertices + 0.0)  # [V] the point each vertex stands on
    corner_point = point[mesh.faces].reshape(-1)  # [3T]
    flat = corner_label < 0  # [3T]
    if flat.any():  # flat corners grouped by the way their faces face, at each point
        normal, _ = face_normals_and_areas(mesh.vertices, mesh.faces)  # [T, 3]
        facing = normal_clusters(corner_point[flat], normal, FILE_NORMAL_DEGREES, rows=np.flatnonzero(flat) // 3)
        corner_label[flat] = FLAT - facing
    fan, _ = distinct_rows(np.stack([corner_point, corner_label], axis=1))  # [3T] one per (point, label)
    return _split_into_fans(mesh, fan)


def _split_into_fans(mesh: SurfaceMesh, fan: np.ndarray) -> SurfaceMesh:
    """`mesh` with one copy of each vertex per fan its corners belong to, and the fans as `normal_groups`.

    Args:
        mesh: the mesh.
        fan: [3T] int64 the fan of each face corner (corners of one fan stand on one point).

    Returns:
        A mesh whose vertices are the (vertex, fan) pairs in order of first use (vertices no face uses
        dropped), with `normal_groups` numbering the fans by first appearance (a fan's texture-seam copies
        share one).
    """
    corner_vertex = mesh.faces.reshape(-1)  # [3T]
    fans = int(fan.max(initial=-1)) + 1
    index, _ = distinct_rows((corner_vertex * fans + fan)[:, None])  # [3T] new vertex per (vertex, fan) pair
    first = _first_of_each(index)  # [V'] the first corner of each new vertex
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


def _first_of_each(index: np.ndarray) -> np.ndarray:
    """[D] where each number of `index` [N] (numbered by first appearance, `distinct_rows`) first occurs: there
    it exceeds every number before it."""
    if not len(index):
        return np.zeros(0, dtype=np.int64)
    before = np.maximum.accumulate(index)[:-1]  # [N-1] the largest number up to each place
    return np.flatnonzero(np.r_[True, index[1:] > before])


def _smooth_corner_pairs(
    vertices: np.ndarray, faces: np.ndarray, faces_p: np.ndarray, min_cos: float
) -> tuple[np.ndarray, np.ndarray]:
    """The corners (3 · face + k) that meet across smooth edges: for every edge that exactly two faces share
    and whose faces' unit normals have a dot product above `min_cos`, the two pairs of corners (one pair at
    each end) that stand on the same point.

    Args:
        vertices: [V, 3] positions.
        faces: [T, 3] vertex indices (for the normals).
        faces_p: [T, 3] the faces over points (`distinct_rows` of the positions), which tell shared edges.
        min_cos: cosine of the crease angle.

    Returns:
        ([2S] corners, [2S] the corners they join).
    """
    from a3d_cli.mesh.topology import face_normals_and_areas

    normal, _ = face_normals_and_areas(vertices, faces)  # [T, 3] unit, zero for a face of no area
    start = faces_p.reshape(-1)  # [3T] the point at each corner: corner c starts the edge c → next(c)
    following = (np.arange(3 * len(faces)).reshape(-1, 3)[:, [1, 2, 0]]).reshape(-1)  # [3T] next(c)
    end = start[following]  # [3T]
    edge = np.minimum(start, end) * (int(start.max(initial=0)) + 1) + np.maximum(start, end)  # [3T] undirected
    order = np.argsort(edge)  # [3T] sides grouped by edge
    ordered = edge[order]
    runs = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])  # where each edge's sides begin (+ end)
    pair = runs[:-1][np.diff(runs) == 2]  # sorted positions of edges with exactly two sides
    a, b = order[pair], order[pair + 1]  # [P] the two sides (corners that start them)
    smooth = (normal[a // 3] * normal[b // 3]).sum(axis=1) > min_cos  # [P]
    a, b = a[smooth], b[smooth]
    same_way = start[a] == start[b]  # both faces run the edge the same way (windings disagree)
    b_at_a = np.where(same_way, b, following[b])  # [S] b's corner on a's start point
    b_at_next = np.where(same_way, following[b], b)  # [S] b's corner on a's end point
    return np.concatenate([a, following[a]]), np.concatenate([b_at_a, b_at_next])


FILE_NORMAL_DEGREES = 1.0
"""A file's normals at the copies of one point that differ by at most this angle are one normal: exporters may
write one smooth normal a float rounding apart, and a turn that small shows no edge."""

LEADER_ROUNDS = 64
"""Rounds of `normal_groups_from_normals`'s clustering: one more distinct normal at a point each round; copies
still apart after that many are grouped by exact equality (bounded time, whatever a file puts at one point)."""


def normal_groups_from_normals(vertices: np.ndarray, normals: np.ndarray, max_degrees: float = 0.0) -> np.ndarray | None:
    """The `normal_groups` a mesh's normals imply: copies of a position share a group when their normals agree;
    None when every position's copies share one normal (seam copies only).

    Why: `RUN/source/mesh.glb` keeps its hard edges as copies of a point with different NORMALs (and
    `a3d_cli.mesh.store` writes one normal per group, bit for bit), so the stage that animates it can tell a
    crease from a texture seam again without another file (compared exactly). A file's own normals say the
    same of its hard edges (`load_mesh`), compared within `max_degrees`: exporters may write the copies of one
    smooth normal a float rounding apart, and a3d recomputes each group's normal from its faces, so a split
    there would show an edge the file does not.

    Args:
        vertices: [V, 3] positions.
        normals: [V, 3] the normals given with them (compared as unit vectors).
        max_degrees: copies whose normals differ by at most this angle share a group (`normal_clusters`); 0
            asks for equality.

    Returns:
        [V] int64 groups, or None.
    """
    at = seam_copies(vertices)  # [V] the position of each vertex
    groups = normal_clusters(at, normals, max_degrees)
    return None if int(groups.max(initial=-1)) == int(at.max(initial=-1)) else groups


def normal_clusters(
    at: np.ndarray, normals: np.ndarray, max_degrees: float = 0.0, rows: np.ndarray | None = None
) -> np.ndarray:
    """Number the rows that stand on one point and whose normals agree within `max_degrees`.

    Each round, the first row of each point not yet grouped leads a group, and the other ungrouped rows of that
    point whose normals lie within `max_degrees` of it join (normals of zero length agree with each other
    only): a point with k distinct normals takes k rounds. So a group's leader is its first row, and the
    leaders of one point are more than `max_degrees` apart. Row numbers are int32 where the count allows and
    normals are compared CLUSTER_CHUNK rows at a time, so the memory beyond the inputs is about 20 bytes a row
    (`FLAT_SPLIT_BYTES_PER_CORNER` counts it for the flat split).

    Args:
        at: [N] int the point each row stands on (0 .. P-1).
        normals: [M, 3] normals (compared as unit vectors): row i's is normals[i], or normals[rows[i]].
        max_degrees: rows whose normals differ by at most this angle from their group's leader share it.
        rows: [N] int which of `normals` each row has, so that rows sharing one (a face's three corners) store
            it once; None when `normals` has one per row (M = N).

    Returns:
        [N] int64 groups, numbered by first appearance; as many as the points when no point holds two.
    """
    n = _unit_rows(normals)  # [M, 3] unit or zero
    chord = 2.0 * np.sin(np.radians(max_degrees) / 2.0)  # distance between unit vectors that far apart
    count = len(at)
    index = np.int32 if count < np.iinfo(np.int32).max else np.int64  # row numbers, and `count` as "none yet"
    leader = np.full(count, -1, dtype=index)  # [N] the row leading each row's group
    todo = np.arange(count, dtype=index)  # [U] rows not grouped yet, in order
    lead_of = np.empty(int(at.max(initial=-1)) + 1, dtype=index)  # [P]
    for _ in range(LEADER_ROUNDS):
        if not len(todo):
            break
        lead_of.fill(count)
        np.minimum.at(lead_of, at[todo], todo)  # the first ungrouped row at each point (one pass, no sort)
        lead = lead_of[at[todo]]  # [U]
        join = _agree(n, rows, todo, lead, chord)  # [U]
        leader[todo[join]] = lead[join]
        todo = todo[~join]
    if len(todo):  # beyond the rounds: rows with the same point and the same normal, led by the first of them
        mine = todo if rows is None else rows[todo]
        rest, _ = distinct_rows(np.concatenate([at[todo, None].astype(np.float64), n[mine]], axis=1))
        leader[todo] = todo[_first_of_each(rest)][rest]
    return _numbered(leader)


CLUSTER_CHUNK = 1 << 18
"""Rows whose normals `normal_clusters` compares at a time: bounds the [n, 3] float64 differences it gathers."""


def _unit_rows(normals: np.ndarray) -> np.ndarray:
    """[M, 3] float64 `normals` scaled to unit length, zero rows left zero (−0.0 as 0.0)."""
    n = np.asarray(normals, dtype=np.float64) + 0.0  # −0.0 becomes 0.0
    length = np.linalg.norm(n, axis=1, keepdims=True)  # [M, 1]
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def _agree(n: np.ndarray, rows: np.ndarray | None, todo: np.ndarray, lead: np.ndarray, chord: float) -> np.ndarray:
    """[U] bool: row todo[u] is its leader lead[u], or its unit normal lies within `chord` of the leader's
    (`normal_clusters`'s test), computed CLUSTER_CHUNK rows at a time."""
    join = lead == todo
    for start in range(0, len(todo), CLUSTER_CHUNK):
        part = slice(start, start + CLUSTER_CHUNK)
        mine, theirs = (todo[part], lead[part]) if rows is None else (rows[todo[part]], rows[lead[part]])
        join[part] |= np.linalg.norm(n[mine] - n[theirs], axis=1) <= chord
    return join


def _numbered(leader: np.ndarray) -> np.ndarray:
    """[N] int64 groups numbered by first appearance, from each row's leader [N]: a row at or before it that
    leads itself (`normal_clusters`), so a group's number is the count of leaders up to its own, less one."""
    heads = leader == np.arange(len(leader), dtype=leader.dtype)  # [N] rows that lead their group
    number = np.cumsum(heads, dtype=np.int64)  # [N]
    number -= 1
    return number[leader]


FLAT_SPLIT_BYTES_PER_CORNER = 96
"""Memory `flat_vertices` and the face normals it is given take per corner at most, on top of the positions:
[T, 3] int32 triangles, [T, 3] float64 face normals and their unit copy, int32 rows and leaders, the numbering
(int64), and `normal_clusters`'s passes (measured with tracemalloc on strips, fans and lists: docs/PERF.md). The
glTF reader counts it against a file's decode budget before it builds the triangles (`a3d_cli.mesh.gltf_core`)."""


def flat_vertices(
    triangles: np.ndarray, face_normals: np.ndarray, max_degrees: float = FILE_NORMAL_DEGREES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vertices a flat-shaded mesh needs: each vertex split into one copy per way its faces face.

    Why: glTF 2.0 requires a primitive without NORMAL to be shaded flat (every face its own normal), as
    three.js and Blender show it; a3d keeps hard edges as copies of a point with their own normals, so a flat
    surface is one whose vertices are split wherever the faces around them turn. Faces whose normals lie
    within `max_degrees` of the first of them around a vertex (coplanar ones: a cube's side of two triangles)
    share a copy, as an exporter writing flat normals shares them, so the copies' normals are also those
    `a3d_cli.mesh.load` groups again within the same angle. A face without area takes the copy of the
    vertex's first face with one (it faces no way, and shows nothing). Each corner names its face's normal
    rather than holding a copy of it (`normal_clusters`'s `rows`), so the memory is about
    FLAT_SPLIT_BYTES_PER_CORNER.

    Args:
        triangles: [T, 3] int vertex indices (int32 keeps the memory down).
        face_normals: [T, 3] unit normals, zero for a face without area.
        max_degrees: faces at a vertex within this angle of each other's leader share a copy.

    Returns:
        (source [V'] the vertex each copy copies, faces [T, 3] int64 over the copies, normals [V', 3] each
        copy's: the normal of the first face that uses it).

    Examples:
        >>> source, faces, normals = flat_vertices(box.faces, box.face_normals)  # a 12-triangle cube  # doctest: +SKIP
        >>> len(source)  # 4 copies per side: 24  # doctest: +SKIP
    """
    corner_vertex = np.asarray(triangles).reshape(-1)  # [3T]
    corners = len(corner_vertex)
    index = np.int32 if corners < np.iinfo(np.int32).max else np.int64
    face = np.arange(corners, dtype=index) // 3  # [3T] the face whose normal each corner takes
    facing = np.repeat((np.asarray(face_normals) != 0).any(axis=1), 3)  # [3T] corners of faces with area
    if not facing.all() and facing.any():  # faceless corners borrow the vertex's first facing corner's face
        vertices, first = np.unique(corner_vertex[facing], return_index=True)
        borrowed = face[facing][first]  # [D] the face of each vertex's first facing corner
        lender = np.full(int(corner_vertex.max()) + 1, -1, dtype=index)
        lender[vertices] = borrowed
        faceless = np.flatnonzero(~facing)
        lent = lender[corner_vertex[faceless]]
        face[faceless[lent >= 0]] = lent[lent >= 0]  # a vertex of faceless faces only keeps their zero normal
    copy = normal_clusters(corner_vertex, face_normals, max_degrees, rows=face)  # [3T] one copy per group of corners
    first = _first_of_each(copy)  # [V'] the first corner of each copy: its group's leader
    return corner_vertex[first], copy.reshape(-1, 3), np.asarray(face_normals, dtype=np.float64)[face[first]]
