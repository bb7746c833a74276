"""Mesh connectivity helpers: welding seam duplicates, normals, edges.

Why welding: loaders split a vertex wherever its UV (or normal) differs between faces, so a textured mesh
comes apart into UV islands. Motion must be one per *position* — otherwise seams tear when the mesh moves and
the island graph has no edges across seams for the rigidity loss. a3d therefore drives "welded" vertices
(one per distinct position) and maps every mesh vertex to its welded one.
"""

from __future__ import annotations

import numpy as np

WELD_TOLERANCE = 1e-6  # positions closer than this (in normalized units, radius 0.9) are one vertex


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
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique ids sorted by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)].astype(np.int64), int(len(order))


def face_normals_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals [T, 3] (zero for degenerate faces) and areas [T]."""
    tri = vertices[faces]  # [T, 3, 3]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [T, 3]
    double_area = np.linalg.norm(cross, axis=-1)  # [T]
    normals = np.where(double_area[:, None] > 0, cross / np.maximum(double_area, 1e-300)[:, None], 0.0)
    return normals, 0.5 * double_area


def vertex_normals(
    num_vertices: int, faces: np.ndarray, face_normals: np.ndarray, face_areas: np.ndarray
) -> np.ndarray:
    """Area-weighted vertex normals [V, 3]; zero where the surrounding faces cancel or are degenerate."""
    acc = np.zeros((num_vertices, 3))
    weighted = face_normals * face_areas[:, None]  # [T, 3]
    for k in range(3):
        np.add.at(acc, faces[:, k], weighted)
    norm = np.linalg.norm(acc, axis=-1, keepdims=True)
    return np.where(norm > 1e-20, acc / np.maximum(norm, 1e-300), 0.0)


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """Undirected edges [E, 2] (smaller index first, sorted) of a triangle list, self-loops removed."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=0)  # [3T, 2]
    e = np.sort(e, axis=1)
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0).astype(np.int64)
