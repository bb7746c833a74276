"""Bound a mesh's size with quadric edge-collapse decimation (pymeshlab).

Why: every welded vertex becomes a splat whose motion is learned, so a 500k-vertex scan would make every
later stage slow without making the motion better (Animate3D's author: fine detail is not needed to learn
vertex motion). The bound counts welded vertices (distinct positions = vertex splats); the saved mesh may
have more vertices where UV seams split them. Untextured meshes far above the bound are first brought near
it by a faster collapse (`a3d_cli.mesh.first_pass`); MeshLab's makes the final choices either way.

pymeshlab is imported inside the function only: GPU stages never load it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TextIO

import numpy as np

from a3d_cli.mesh.appearance import AtlasPlacement
from a3d_cli.mesh.first_pass import first_pass
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.topology import weld

DEFAULT_MAX_VERTICES = 20_000
_UV_KEY = 1e-7  # UVs closer than this are one seam side when splitting vertices again


def welded_vertex_count(mesh: SurfaceMesh) -> int:
    """Number of distinct vertex positions (what `simplify_mesh` bounds)."""
    return weld(mesh.vertices)[1]


def simplify_mesh(
    mesh: SurfaceMesh, max_vertices: int = DEFAULT_MAX_VERTICES, fast_first_pass: bool = True, hard_edges: bool = False
) -> SurfaceMesh:
    """Decimate `mesh` until it has at most `max_vertices` welded vertices; unchanged if already small.

    Textured meshes use MeshLab's texture-aware collapse (UVs per face corner are kept and the vertices are
    split again at seams afterwards); vertex colours ride along as MeshLab vertex colours. A mesh with hard
    edges (`normal_groups`) has them found again on the result by a3d's crease rule (`a3d_cli.mesh.creases`).

    Args:
        mesh: input mesh.
        max_vertices: bound on distinct vertex positions (≥ 4).
        fast_first_pass: let an untextured mesh of more than `first_pass.HEADROOM` × `max_vertices` vertices
            be collapsed to about that many by fast-simplification before MeshLab's collapse (far faster on
            scans; `a3d_cli.mesh.first_pass` says where it is not used).
        hard_edges: the file shades with hard edges that `mesh`, read without them, does not mark (a glTF
            primitive without NORMAL, an OBJ's smoothing groups: `load.hard_edges_left_out`); the result gets the crease
            rule as a mesh with `normal_groups` does.

    Returns:
        A new SurfaceMesh (same texture image) or `mesh` itself when it is within the bound.
    """
    import pymeshlab

    vertex_index, w = weld(mesh.vertices)
    if w <= max_vertices:
        return mesh
    pos = np.zeros((w, 3))
    pos[vertex_index] = mesh.vertices  # [W, 3]
    faces_w = vertex_index[mesh.faces]  # [T, 3]
    colors = np.zeros((w, 4))
    np.add.at(colors, vertex_index, mesh.vertex_colors)
    colors /= np.bincount(vertex_index, minlength=w)[:, None]  # [W, 4]
    textured = mesh.uvs is not None
    ms = pymeshlab.MeshSet()
    with tempfile.TemporaryDirectory(prefix="a3d-simplify-") as tmp:
        if textured:
            # MeshLab's texture-aware collapse needs per-corner texture indices, which only its importers set
            ms.load_new_mesh(_write_obj(Path(tmp), pos, faces_w, colors, mesh.uvs[mesh.faces].reshape(-1, 2)))  # type: ignore[index]
        else:
            if fast_first_pass:
                pos, faces_w, colors = first_pass(pos, faces_w, colors, max_vertices)
            ms.add_mesh(
                pymeshlab.Mesh(
                    vertex_matrix=pos, face_matrix=faces_w.astype(np.int32), v_color_matrix=np.clip(colors, 0.0, 1.0)
                )
            )
        for _ in range(6):  # collapse stops early on borders/seams; repeat with a tighter face target
            current = ms.current_mesh()
            if current.vertex_number() <= max_vertices:
                break
            target_faces = max(4, int(current.face_number() * max_vertices / current.vertex_number() * 0.97))
            if textured:
                ms.meshing_decimation_quadric_edge_collapse_with_texture(
                    targetfacenum=target_faces, preserveboundary=True, preservenormal=True
                )
            else:
                ms.meshing_decimation_quadric_edge_collapse(
                    targetfacenum=target_faces, preserveboundary=True, preservenormal=True, autoclean=True
                )
        ms.meshing_remove_unreferenced_vertices()
    simplified = _from_meshlab(mesh, ms.current_mesh(), textured)
    if mesh.normal_groups is None and not hard_edges:
        return simplified
    from a3d_cli.mesh.creases import split_creases

    return split_creases(simplified)


def _from_meshlab(mesh: SurfaceMesh, out: object, textured: bool) -> SurfaceMesh:
    """The SurfaceMesh of MeshLab's result `out`, with the appearance of `mesh` (split again at UV seams)."""
    vertices = out.vertex_matrix()  # type: ignore[attr-defined]  # [W', 3]
    faces = out.face_matrix().astype(np.int64)  # type: ignore[attr-defined]  # [T', 3]
    v_colors = out.vertex_color_matrix().astype(np.float32)  # type: ignore[attr-defined]  # [W', 4]
    if not textured:
        return SurfaceMesh(vertices, faces, v_colors, alpha_mode=mesh.alpha_mode).compact()
    corner_uv = out.wedge_tex_coord_matrix().reshape(-1, 2)  # type: ignore[attr-defined]  # [3T', 2]
    if mesh.islands:
        corner_uv = keep_in_islands(corner_uv.reshape(-1, 3, 2), mesh.islands, mesh.texture.shape).reshape(-1, 2)  # type: ignore[union-attr]
    corner_v = faces.reshape(-1)  # [3T']
    keys = np.concatenate([corner_v[:, None], np.round(corner_uv / _UV_KEY).astype(np.int64)], axis=1)  # [3T', 3]
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    corner_new = rank[inverse.reshape(-1)]  # [3T'] new vertex of each corner
    first_corner = first[order]  # [V'] a corner of each new vertex, in new-vertex order
    return SurfaceMesh(
        vertices=vertices[corner_v[first_corner]],
        faces=corner_new.reshape(-1, 3).astype(np.int64),
        vertex_colors=v_colors[corner_v[first_corner]],
        uvs=corner_uv[first_corner].astype(np.float64),
        texture=mesh.texture,
        alpha_mode=mesh.alpha_mode,
        wrap=mesh.wrap,
        mag_filter=mesh.mag_filter,
        islands=mesh.islands,
    ).compact()


def keep_in_islands(face_uv: np.ndarray, islands: tuple[AtlasPlacement, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Texture coordinates [T, 3, 2] of an atlas of `shape` with each face's corners moved into one image of it:
    the image holding most of the face's corners (the one nearest its centre among equals), each coordinate
    clamped to that image's edges.

    Why: MeshLab places a collapsed vertex, and its texture coordinate, where the quadric error is least, which
    can lie past the edge of the image the face shows, the more the fewer vertices are kept. In an
    atlas, past the edge lie the two texels of padding, then the white gap or another image (and past the atlas's
    border, by REPEAT, its far side), so such a face would show a sliver of a wrong colour along its seam. Clamped,
    the sliver shows the image's edge texels instead, as the padding does.
    """
    h, w = shape[:2]
    col, row = face_uv[..., 0] * w, (1.0 - face_uv[..., 1]) * h  # [T, 3] in atlas texels, rows from the top
    lo = np.array([[p.x, p.y] for p in islands], dtype=np.float64)  # [I, 2]
    hi = lo + np.array([[p.width, p.height] for p in islands], dtype=np.float64)  # [I, 2]
    at = np.stack([col, row], axis=-1)[:, :, None, :]  # [T, 3, 1, 2]
    inside = ((at >= lo) & (at <= hi)).all(axis=-1).sum(axis=1)  # [T, I] corners within each image
    centre = at.mean(axis=1)  # [T, 1, 2]
    distance = np.linalg.norm(np.maximum(lo - centre, 0.0) + np.maximum(centre - hi, 0.0), axis=-1)  # [T, I]
    island = np.argmax(inside * (1.0 + distance.max(initial=0.0)) - distance, axis=1)  # [T]: most corners first
    col = np.clip(col, lo[island, :1], hi[island, :1])
    row = np.clip(row, lo[island, 1:], hi[island, 1:])
    return np.stack([col / w, 1.0 - row / h], axis=-1)


def _write_obj(folder: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, corner_uv: np.ndarray) -> str:
    """A temporary OBJ (vertex colours as `v x y z r g b`, one UV per face corner) with a stand-in texture."""
    from PIL import Image

    Image.new("RGB", (4, 4), (255, 255, 255)).save(folder / "texture.png")
    (folder / "mesh.mtl").write_text("newmtl a3d\nKd 1 1 1\nmap_Kd texture.png\n")
    t = len(faces)
    path = folder / "mesh.obj"
    with open(path, "w") as f:
        f.write("mtllib mesh.mtl\n")
        _write_rows(f, "v %.9g %.9g %.9g %.6g %.6g %.6g", np.concatenate([vertices, np.clip(colors[:, :3], 0, 1)], axis=1))
        _write_rows(f, "vt %.9g %.9g", corner_uv)
        f.write("usemtl a3d\n")
        idx = np.stack([faces + 1, np.arange(3 * t).reshape(t, 3) + 1], axis=-1).reshape(t, 6)  # [T, 6] v/vt pairs
        _write_rows(f, "f %d/%d %d/%d %d/%d", idx)
    return str(path)


_ROWS_PER_WRITE = 65_536


def _write_rows(f: TextIO, fmt: str, rows: np.ndarray) -> None:
    """Write each row of `rows` [R, C] as one line `fmt % tuple(row)`: the text `np.savetxt` writes, formatted a
    block of rows at a time in one `%` operation instead of one call per row (a scan's mesh has millions)."""
    line = fmt + "\n"
    for start in range(0, len(rows), _ROWS_PER_WRITE):
        block = rows[start : start + _ROWS_PER_WRITE]
        f.write((line * len(block)) % tuple(block.ravel().tolist()))
