"""Small synthetic 3D files shared by the mesh, PLY and prepare tests (helpers only: no tests here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def two_colour_texture(left=(200, 30, 30), right=(30, 30, 200), size: int = 32) -> np.ndarray:
    """[size, size, 3] uint8: left half one colour, right half another (u < 0.5 vs u > 0.5)."""
    img = np.zeros((size, size, 3), dtype=np.uint8)
    img[:, : size // 2] = left
    img[:, size // 2 :] = right
    return img


def grid(nx: int, ny: int, sx: float = 1.0, sy: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat (nx+1)×(ny+1) vertex grid in the XY plane facing +Z, with UVs spanning [0, 1]²."""
    u, v = np.meshgrid(np.linspace(0, 1, nx + 1), np.linspace(0, 1, ny + 1), indexing="xy")
    vertices = np.stack([(u.ravel() - 0.5) * sx, (v.ravel() - 0.5) * sy, np.zeros(u.size)], axis=-1)
    idx = np.arange(u.size).reshape(ny + 1, nx + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices, faces, np.stack([u.ravel(), v.ravel()], -1)


def textured_trimesh(vertices, faces, uv, image, factor=(255, 255, 255, 255)):
    import trimesh
    from PIL import Image
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    mat = PBRMaterial(baseColorTexture=Image.fromarray(np.asarray(image, dtype=np.uint8)), baseColorFactor=list(factor))
    return trimesh.Trimesh(vertices, faces, visual=TextureVisuals(uv=uv, material=mat), process=False)


def textured_sphere(count: int = 24, radius: float = 1.0):
    """A lat-long sphere with UV-seam and pole copies (as exporters write them), the two-colour texture
    wrapped around it: u < 0.5 (x < 0) red, u > 0.5 (x > 0) blue."""
    nu, nv = 2 * count, count
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="xy")
    s, t = s.ravel(), t.ravel()
    theta, phi = 2 * np.pi * s, np.pi * t  # theta = 0 at -Z, π/2 at -X (u < 0.5), 3π/2 at +X
    v = radius * np.stack([-np.sin(phi) * np.sin(theta), -np.cos(phi), -np.sin(phi) * np.cos(theta)], -1)
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nv + 1, nu + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    tri = v[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    faces = faces[np.linalg.norm(cross, axis=-1) > 1e-12]  # drop collapsed pole triangles
    if np.sum(np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]) * v[faces[:, 0]]) < 0:
        faces = faces[:, ::-1]  # outward
    return textured_trimesh(v, faces, np.stack([s, t], -1), two_colour_texture())


def write_glb(path: Path, *meshes_with_transforms) -> Path:
    """A GLB with one node per (mesh, 4×4 transform) pair."""
    import trimesh

    scene = trimesh.Scene()
    for i, (mesh, transform) in enumerate(meshes_with_transforms):
        scene.add_geometry(mesh, node_name=f"node{i}", geom_name=f"mesh{i}", transform=transform)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def write_textured_obj(folder: Path, up_axis: str = "y") -> Path:
    """folder/model.obj + model.mtl + tex/albedo.png: a 1×2 quad (tall along `up_axis`), texture left red / right blue."""
    from PIL import Image

    (folder / "tex").mkdir(parents=True, exist_ok=True)
    Image.fromarray(two_colour_texture()).save(folder / "tex" / "albedo.png")
    (folder / "model.mtl").write_text("newmtl skin\nKd 1 1 1\nmap_Kd -bm 1.0 tex/albedo.png\n")
    tall = {"y": [(0, 0, 0), (1, 0, 0), (1, 2, 0), (0, 2, 0)], "z": [(0, 0, 0), (1, 0, 0), (1, 0, 2), (0, 0, 2)]}[
        up_axis
    ]
    lines = ["mtllib model.mtl"] + [f"v {x} {y} {z}" for x, y, z in tall]
    lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", "usemtl skin", "f 1/1 2/2 3/3", "f 1/1 3/3 4/4"]
    (folder / "model.obj").write_text("\n".join(lines) + "\n")
    return folder / "model.obj"
