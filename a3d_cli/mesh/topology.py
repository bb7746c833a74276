"""Mesh connectivity helpers: welding seam duplicates, normals, edges, rotations.

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


def rotmat_to_quat(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] → unit quaternions [..., 4] (w, x, y, z), w ≥ 0.

    Shepperd's method: pick the largest of (trace, diagonal) terms so the square root never nears zero.
    """
    r = np.asarray(rot, dtype=np.float64)
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    trace = m00 + m11 + m22
    cand = np.stack(
        [
            np.stack(
                [1 + trace, r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1
            ),
            np.stack(
                [
                    r[..., 2, 1] - r[..., 1, 2],
                    1 + m00 - m11 - m22,
                    r[..., 0, 1] + r[..., 1, 0],
                    r[..., 0, 2] + r[..., 2, 0],
                ],
                -1,
            ),
            np.stack(
                [
                    r[..., 0, 2] - r[..., 2, 0],
                    r[..., 0, 1] + r[..., 1, 0],
                    1 - m00 + m11 - m22,
                    r[..., 1, 2] + r[..., 2, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    r[..., 1, 0] - r[..., 0, 1],
                    r[..., 0, 2] + r[..., 2, 0],
                    r[..., 1, 2] + r[..., 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        axis=-2,
    )  # [..., 4 candidates, 4]
    pick = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)  # [...]
    q = np.take_along_axis(cand, pick[..., None, None], axis=-2)[..., 0, :]  # [..., 4]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of wxyz quaternions [..., 4] (rotation b first, then a)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )
