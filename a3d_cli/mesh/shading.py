"""A fixed, view-independent lighting baked into the colours of untextured meshes.

Why: a mesh with one flat colour (no texture, no painted vertex colours) renders as a flat silhouette, but
MV-VDM was trained on lit renders, where shading shows the shape. `a3d prepare` multiplies such colours by

    shade(n) = AMBIENT + SKY · (1 + n·up) / 2 + KEY · max(0, n·key)

for the splat's unit normal n in the normalized frame (+Y up, +Z front): a constant term, a sky term that
brightens surfaces facing up, and one key light from the front-right-above (KEY_DIRECTION), applied to the
*linear* colour, then converted back to sRGB. A surface facing the key light gets 0.35 + 0.35·0.83 + 0.4 ≈
1.04 (clamped), one facing straight down 0.35. The light does not move with the camera, like a studio light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from a3d_cli.mesh.appearance import linear_to_srgb, srgb_to_linear

if TYPE_CHECKING:
    from a3d_cli.mesh.surface import SurfaceMesh

AMBIENT = 0.35
SKY = 0.35
KEY = 0.4
KEY_DIRECTION = (1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0)  # unit vector: right, up, front
MAX_MATERIAL_COLOURS = 16
"""`--shade auto` lights meshes with no texture and at most this many distinct colours (`plain_colour`)."""


def shade_factor(normals: np.ndarray) -> np.ndarray:
    """[N] light factor of unit normals [N, 3] (zero normals get the ambient + half the sky term)."""
    n = np.asarray(normals, dtype=np.float64)
    key = np.maximum(n @ np.asarray(KEY_DIRECTION), 0.0)  # [N]
    return AMBIENT + SKY * 0.5 * (1.0 + n[:, 1]) + KEY * key


def shade_srgb(rgb: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """[N, 3] sRGB colours lit by `shade_factor` (in linear light), clamped to [0, 1]."""
    lit = srgb_to_linear(rgb) * shade_factor(normals)[:, None]
    return linear_to_srgb(np.clip(lit, 0.0, 1.0)).astype(np.float32)


def plain_colour(mesh: SurfaceMesh) -> bool:
    """Whether a mesh has no texture and only a few distinct colours (materials, not painted colours): the
    meshes `--shade auto` lights."""
    if mesh.texture is not None:
        return False
    distinct = np.unique(np.round(mesh.vertex_colors * 255).astype(np.int32), axis=0)
    return len(distinct) <= MAX_MATERIAL_COLOURS
