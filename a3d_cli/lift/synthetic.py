"""Ground-truth orbits of known meshes: what `a3d lift` is tested and benchmarked against.

A mesh (the bundled fox, a procedural toy, any asset a3d can load) is normalized into SV3D's frame
(centred, farthest point at `radius` from the origin, +Y up, front +Z), turned into dense surface splats
(`mesh.to_gaussians`, the same construction `a3d prepare` uses) and rendered with a3d's rasterizer from
an orbit's cameras on white, with straight alpha. `write_orbit_folder` stores that in the layout
`a3d orbit` writes, so the result goes through `a3d lift --orbit DIR` like any user turntable.

Examples:
    >>> mesh = toy_mesh()
    >>> rgba, cams = render_orbit(mesh, static_orbit(10.0), size=64)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.lift.preview import MESH_SPLATS_MAX, mesh_as_splats
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.render.cameras import CameraSet
from a3d_cli.run_layout import CAMERAS_JSON

OBJECT_RADIUS = 0.5
"""Farthest point of a ground-truth object from the origin: it fills about 80 % of an SV3D frame."""


def normalized(mesh: SurfaceMesh, radius: float = OBJECT_RADIUS, up: str = "+y") -> SurfaceMesh:
    """`mesh` turned so its `up` axis is +Y, centred on its bounding box and scaled so its farthest vertex
    is `radius` away (its front is +Z, or −Y for a Z-up mesh)."""
    from a3d_cli.mesh.normalize import fit_normalization

    front = "-y" if up.endswith("z") else "+z"
    norm = fit_normalization(mesh.vertices, up, front, radius=radius)
    return mesh.with_vertices(norm.apply(mesh.vertices))


def toy_mesh(white_top: float | None = None) -> SurfaceMesh:
    """A procedural test object: a striped box with a ball on it, vertex-coloured.

    Args:
        white_top: when given, the ball has this grey level (e.g. 0.93: a light part touching the
            white background in every view); otherwise it is orange.
    """
    import trimesh

    box = trimesh.creation.box(extents=(0.8, 0.45, 0.5))
    box.apply_translation((0.0, -0.2, 0.0))
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.28)
    ball.apply_translation((0.12, 0.22, 0.05))
    box = box.subdivide().subdivide().subdivide()
    v = box.vertices
    stripes = (np.sin(v[:, 0] * 14) > 0)[:, None]
    box_col = np.where(stripes, [0.15, 0.35, 0.85], [0.85, 0.25, 0.15]) * (0.8 + 0.2 * (v[:, 2:3] > 0))
    ball_col = np.full((len(ball.vertices), 3), white_top if white_top is not None else 0.0)
    if white_top is None:
        ball_col[:] = [0.95, 0.6, 0.1]
    verts = np.concatenate([box.vertices, ball.vertices])
    faces = np.concatenate([box.faces, ball.faces + len(box.vertices)])
    colors = np.concatenate([np.concatenate([box_col, ball_col]), np.ones((len(verts), 1))], axis=1).astype(np.float32)
    return SurfaceMesh(verts.astype(np.float64), faces.astype(np.int64), colors)


def white_van_mesh() -> SurfaceMesh:
    """A procedural test object whose body is exactly the background's white: a white box on four dark
    wheels with a coloured panel on each side and a dark window at the front and back (a small
    CesiumMilkTruck). In every view its white outline touches the white background and its coloured
    parts fall apart into separate pieces: what `lift.masks.unknown_white` is for."""
    import trimesh

    parts: list[tuple[trimesh.Trimesh, tuple[float, float, float]]] = []
    body = trimesh.creation.box(extents=(0.9, 0.45, 0.45)).subdivide().subdivide()
    body.apply_translation((0.0, 0.05, 0.0))
    parts.append((body, (1.0, 1.0, 1.0)))
    for x in (-0.3, 0.3):
        for z in (-0.2, 0.2):
            wheel = trimesh.creation.cylinder(radius=0.09, height=0.06, sections=16)
            wheel.apply_translation((x, -0.2, z + (0.03 if z > 0 else -0.03)))
            parts.append((wheel, (0.12, 0.12, 0.12)))
    for z in (-0.23, 0.23):
        panel = trimesh.creation.box(extents=(0.5, 0.26, 0.02)).subdivide()
        panel.apply_translation((0.05, 0.1, z))
        parts.append((panel, (0.15, 0.45, 0.85)))
    for x in (-0.46, 0.46):
        window = trimesh.creation.box(extents=(0.02, 0.2, 0.3)).subdivide()
        window.apply_translation((x, 0.13, 0.0))
        parts.append((window, (0.2, 0.25, 0.3)))
    verts, faces, cols, offset = [], [], [], 0
    for mesh, colour in parts:
        verts.append(mesh.vertices)
        faces.append(mesh.faces + offset)
        cols.append(np.tile([*colour, 1.0], (len(mesh.vertices), 1)))
        offset += len(mesh.vertices)
    return SurfaceMesh(np.concatenate(verts), np.concatenate(faces).astype(np.int64), np.concatenate(cols).astype(np.float32))


def mesh_splats(mesh: SurfaceMesh, splats: int = MESH_SPLATS_MAX, seed: int = 0, lit: bool = False) -> Gaussians:
    """Dense surface splats of a mesh: how a3d renders a mesh (`lift.preview.mesh_as_splats`).

    Args:
        lit: bake a3d's fixed studio lighting (`a3d_cli.mesh.shading`, the one `a3d prepare --shade` uses)
            into the colours. SV3D was trained on lit renders and its orbits are shaded, so a lit truth
            is the SV3D-like one; unlit, a white albedo is exactly the background's white.
    """
    return mesh_as_splats(mesh, splats, seed=seed, shade=lit)


def render_rgba(g: Gaussians, cameras: CameraSet, size: int, chunk: int = 8) -> Tensor:
    """[V, S, S, 4] straight RGBA renders of splats (CPU result), `chunk` views per rasterizer call."""
    from a3d_cli.render.splats import render_rgba as render_views

    ks = cameras.Ks(size, size)
    device = str(g.means.device)
    parts = [
        render_views(g, cameras.viewmats[s : s + chunk], ks[s : s + chunk], size, device)
        for s in range(0, len(cameras), chunk)
    ]
    return torch.cat(parts)


def on_white(rgba: Tensor) -> Tensor:
    """[..., 4] straight RGBA → [..., 3] composited on white."""
    from a3d_cli.io.images import composite

    return composite(rgba, 1.0)


def write_orbit_folder(folder: Path, rgba: Tensor, cameras: CameraSet, alpha: bool = False, extra: dict | None = None) -> Path:
    """Store views as `frame_XX.png` (+ `cameras.json`), RGB on white or RGBA with `alpha`."""
    from a3d_cli.io.images import save_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = rgba.shape[1]
    for i in range(rgba.shape[0]):
        save_png(folder / f"frame_{i:02d}.png", rgba[i] if alpha else on_white(rgba[i]))
    data = cameras.to_json(size, size)
    data.update(extra or {})
    (folder / CAMERAS_JSON).write_text(json.dumps(data, indent=2))
    return folder


__all__ = ["OBJECT_RADIUS", "mesh_splats", "normalized", "on_white", "render_rgba", "toy_mesh", "white_van_mesh", "write_orbit_folder"]
