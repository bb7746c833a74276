"""Mesh connectivity helpers: welding seam duplicates, normals, edges.

Why welding: loaders split a vertex wherever its UV (or normal) differs between faces, so a textured mesh
comes apart into UV islands. Motion must be one per *position* — otherwise seams tear when the mesh moves and
the island graph has no edges across seams for the rigidity loss. a3d therefore drives "welded" vertices
(one per distinct position) and maps every mesh vertex to its welded one.
"""

from __future__ import annotations

import numpy as np

WELD_TOLERANCE = 1e-6  # positions closer than this (in normalized units, radius 0.9) are one vertex
NO_FACE_NORMAL = (0.0, 1.0, 0.0)  # the unit normal of a vertex on no face (glTF requires unit NORMALs)


def weld(vertices: np.ndarray, tolerance: float = WELD_TOLERANCE) -> tuple[np.ndarray, int]:
    """Map vertices to distinct positions, numbered in order of first appearance.

    With no duplicates the map is the identity, so welded vertex i is mesh vertex i.

    Args:
        vertices: [V, 3] positions.
        tolerance: grid size for "same position".

    Returns:
        (welded_index [V] int64, number of welded vertices W).
    """
    keys = np.round(np.asarray(vertices, dtype=np.float64) / tolerance).astype(np.int64)  # [V, 3]
    return distinct_rows(keys)


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Number the distinct rows of an array, bit for bit, in order of first appearance.

    Rows of 8-byte numbers are sorted by a 64-bit hash and checked against it (`_distinct_by_hash`), other
    rows as blocks of bytes, a single column as numbers: one sort of V items, memory proportional to the
    array, and faster than `np.unique(axis=0)`'s structured comparison. Float
    rows need `+ 0.0` first where −0.0 and 0.0 must count as one value (and a single float column holds no NaN).

    Args:
        rows: [V, K] numbers.

    Returns:
        (index [V] int64 of each row's distinct row, number of distinct rows D).
    """
    data = np.ascontiguousarray(rows)
    if data.shape[1] == 1:  # one number per row: compared as numbers, the faster sort
        first, inverse = _unique_first(data.reshape(-1))
    elif (found := _distinct_by_hash(data)) is not None:
        first, inverse = found
    else:
        items = data.view(np.dtype((np.void, data.dtype.itemsize * data.shape[1]))).reshape(-1)  # [V]
        _, first, inverse = np.unique(items, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # distinct ids sorted by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)].astype(np.int64), int(len(order))


_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))  # splitmix64's finalizer constants


def _mixed(words: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """[V] uint64: `seed` and `words` [V] combined, then mixed by splitmix64's finalizer (every input bit
    reaches every output bit, which float coordinates, mostly zero in their low bits, need)."""
    z = seed ^ words
    z = (z ^ (z >> np.uint64(30))) * _MIX[0]
    z = (z ^ (z >> np.uint64(27))) * _MIX[1]
    return z ^ (z >> np.uint64(31))


def _distinct_by_hash(data: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`np.unique`'s (first index, inverse) for the rows of 8-byte numbers [V, K], from one 64-bit hash per row
    (a sort of plain integers, faster than one of rows of bytes). Every row is checked
    against the first row of its hash; None when some hash stands for two different rows (then the caller
    compares bytes), or for rows that are not of 8-byte numbers."""
    if data.dtype.itemsize != 8:
        return None
    words = data.view(np.uint64)  # [V, K]
    digest = np.zeros(len(words), dtype=np.uint64)  # [V]
    with np.errstate(over="ignore"):  # wrapping arithmetic is the point
        for k in range(words.shape[1]):
            digest = _mixed(words[:, k], digest)
    first, inverse = _unique_first(digest)
    representative = first[inverse]  # [V] the first row with each row's hash
    for k in range(words.shape[1]):  # a column at a time: no [V, K] copy
        if not (words[:, k] == words[representative, k]).all():  # two rows behind one hash: the caller compares bytes
            return None
    return first, inverse


def _unique_first(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_index=True, return_inverse=True)[1:]` for [V] numbers, from one unstable sort:
    the first index of each distinct value is the smallest index among its equals (np.unique's stable sort,
    which finds it directly, is slower on millions of values)."""
    order = np.argsort(values)  # [V]
    ordered = values[order]
    begins = np.ones(len(values), dtype=bool)  # [V] in sorted order: where a distinct value begins
    np.not_equal(ordered[1:], ordered[:-1], out=begins[1:])
    starts = np.flatnonzero(begins)  # [D]
    first = np.minimum.reduceat(order, starts) if len(starts) else np.zeros(0, dtype=np.int64)  # [D]
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(begins) - 1
    return first, inverse


def face_normals_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals [T, 3] (zero for degenerate faces) and areas [T]."""
    tri = vertices[faces]  # [T, 3, 3]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [T, 3]
    double_area = np.linalg.norm(cross, axis=-1)  # [T]
    normals = np.where(double_area[:, None] > 0, cross / np.maximum(double_area, 1e-300)[:, None], 0.0)
    return normals, 0.5 * double_area


def seam_copies(vertices: np.ndarray) -> np.ndarray:
    """[V] the welded index of each of [V, 3] `vertices` (`weld`) at a tolerance relative to their extent,
    for meshes in an asset's own units (a written GLB) rather than a3d's normalized frame."""
    v = np.asarray(vertices, dtype=np.float64)
    extent = float(np.abs(v - v.mean(axis=0)).max()) if len(v) else 0.0
    return weld(v, WELD_TOLERANCE * (extent or 1.0))[0]


def vertex_normals(
    vertices: np.ndarray,
    faces: np.ndarray,
    fallback: tuple[float, float, float] | None = None,
    welded: np.ndarray | None = None,
) -> np.ndarray:
    """Area-weighted unit vertex normals, for one pose or a batch of poses of the same faces.

    Each face adds its cross product (direction its normal, length twice its area) to its three corners.
    With `welded`, the sums are per position: the copies of a vertex along a UV seam get one normal, that of
    all faces around the position, so a written mesh shades without creases at its texture seams (viewers
    shade with NORMAL as written).

    Args:
        vertices: [V, 3] or [F, V, 3] positions.
        faces: [T, 3] vertex indices.
        fallback: [3] unit vector given to vertices whose faces cancel, are degenerate or absent; zero
            when None.
        welded: [V] index of the distinct position each vertex is a copy of (`weld`, `seam_copies`); None
            treats every vertex on its own.

    Returns:
        float64 array of the shape of `vertices`, each row unit length (or the fallback).
    """
    v = np.asarray(vertices, dtype=np.float64)
    index = np.arange(v.shape[-2]) if welded is None else np.asarray(welded, dtype=np.int64)  # [V]
    tri = v[..., faces, :]  # [..., T, 3, 3]
    cross = np.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])  # [..., T, 3]
    acc = np.zeros(v.shape[:-2] + (int(index.max(initial=-1)) + 1, 3))  # [..., W, 3]
    for corner in range(3):
        np.add.at(acc, (..., index[faces[:, corner]], slice(None)), cross)
    acc = acc[..., index, :]  # [..., V, 3]
    length = np.linalg.norm(acc, axis=-1, keepdims=True)  # [..., V, 1]
    empty = np.zeros(3) if fallback is None else np.asarray(fallback, dtype=np.float64)
    return np.where(length > 1e-20, acc / np.maximum(length, 1e-300), empty)


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """Undirected edges [E, 2] (smaller index first, sorted) of a triangle list, self-loops removed."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=0)  # [3T, 2]
    e = np.sort(e, axis=1)
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0).astype(np.int64)
