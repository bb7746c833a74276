"""What a ground-truth motion lets a fit see: which mesh vertices the video cameras see, frame by frame.

Used by `bench_reconstruct.py` to split the vertex error into what pixels can show and what they cannot
(docs/reconstruct.md, *What limits each asset*). How non-rigid a motion is: `a3d_cli.gaussians.arap.nonrigidity_pct`.

Visibility is a z-buffer test: the mesh at each frame is sampled densely on its faces (area-weighted, the
same samples every frame), the samples' nearest camera depth is kept per pixel (holes filled from their
3×3 neighbours), and a vertex is visible in a view when one of its faces faces the camera and its depth
is at most the buffer's plus a slope-scaled bias (`a3d_cli.lift.texture.slope_tolerance`, the lift's
visibility test's: a constant plus 1.5 pixel widths × the tangent of the angle between the ray and that
face's normal, the tangent capped at 10: at grazing angles a pixel spans a deep range of the vertex's own
surface).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from a3d_cli.lift.hull import project
from a3d_cli.lift.texture import slope_tolerance
from a3d_cli.render.cameras import CameraSet

SLOPE_PIXELS = 1.5
"""Pixel widths of depth change the bias allows (the z-buffer holds the nearest sample in a pixel)."""
MIN_COS = 1 / math.sqrt(101.0)
"""The tangent stops growing at 10 (cos = 1/√101)."""


def facing(vertices: torch.Tensor, faces: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """[V] the largest cosine, over each vertex's faces, between a face's normal and the direction to `eye`
    (> 0: some face at the vertex faces the eye; -1 for a vertex on no face)."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    normal = F.normalize(torch.linalg.cross(b - a, c - a, dim=-1), dim=-1)  # [T, 3]
    cos = (normal * F.normalize(eye - (a + b + c) / 3, dim=-1)).sum(-1)  # [T]
    out = torch.full((vertices.shape[0],), -1.0)
    return out.scatter_reduce_(0, faces.reshape(-1), cos.repeat_interleave(3), reduce="amax")


def vertex_visibility(
    vertices: np.ndarray,
    faces: np.ndarray,
    cameras: CameraSet,
    size: int = 256,
    samples: int = 400_000,
    bias: float = 0.005,
    seed: int = 0,
) -> np.ndarray:
    """Which mesh vertices each camera sees, frame by frame.

    Args:
        vertices: [F, V, 3] vertex positions per frame (world, the cameras' frame).
        faces: [T, 3] triangles (indices into V).
        cameras: the C cameras.
        size: z-buffer resolution in pixels (the video's).
        samples: surface samples per frame for the z-buffer (a few per pixel of the object's image).
        bias: constant depth bias (world units) on top of the slope-scaled one.
        seed: the surface samples' random draw.

    Returns:
        [F, C, V] bool.
    """
    f = torch.from_numpy(np.asarray(faces)).long()
    verts = torch.from_numpy(np.asarray(vertices, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    rest = verts[0]
    area = torch.linalg.cross(rest[f[:, 1]] - rest[f[:, 0]], rest[f[:, 2]] - rest[f[:, 0]], dim=-1).norm(dim=-1)
    face = torch.multinomial(area / area.sum().clamp_min(1e-12) + 1e-12, samples, replacement=True, generator=gen)
    r1, r2 = torch.rand(samples, generator=gen).sqrt(), torch.rand(samples, generator=gen)
    bary = torch.stack([1 - r1, r1 * (1 - r2), r1 * r2], dim=1)  # uniform on each triangle
    focal = cameras.Ks(size, size)[:, 0, 0]  # [C]
    centres = cameras.c2w[:, :3, 3]  # [C, 3]
    out = torch.zeros(verts.shape[0], len(cameras), verts.shape[1], dtype=torch.bool)
    for t, v in enumerate(verts):
        uv, z = project((bary[:, :, None] * v[f[face]]).sum(1), cameras, size)  # [C, P, 2], [C, P]
        uvv, zv = project(v, cameras, size)  # [C, V, 2], [C, V]
        for c in range(len(cameras)):
            ij = uv[c].floor().long()
            ok = (ij >= 0).all(-1) & (ij < size).all(-1) & (z[c] > 0)
            zbuf = torch.full((size * size,), math.inf)
            zbuf.scatter_reduce_(0, ij[ok, 1] * size + ij[ok, 0], z[c][ok], reduce="amin")
            zbuf = zbuf.reshape(1, 1, size, size)
            zbuf = torch.where(torch.isinf(zbuf), -F.max_pool2d(-zbuf, 3, 1, 1), zbuf)[0, 0]
            cos = facing(v, f, centres[c])
            tol = slope_tolerance(zv[c], cos, focal[c], bias, SLOPE_PIXELS, MIN_COS)
            pix = uvv[c].floor().long()
            inside = (pix >= 0).all(-1) & (pix < size).all(-1) & (zv[c] > 0)
            pix = pix.clamp(0, size - 1)
            out[t, c] = inside & (cos > 0) & (zv[c] <= zbuf[pix[:, 1], pix[:, 0]] + tol)
    return out.numpy()
