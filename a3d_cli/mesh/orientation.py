"""Guess which way an asset faces: the lateral axis from its mirror symmetry, the front from where its detail is.

Why: MV-VDM's view 0 must show the object's front, but file formats only fix the up axis (glTF: +Y), not the
front, and many standard samples face +X. Most things people animate (animals, people, vehicles) are
bilaterally symmetric about the plane spanned by their up and front axes, so:

1. Lateral axis: of the two horizontal axes (X and Z, after the up axis is applied), the one whose mirror
   plane through the bounding-box centre maps the surface best onto itself (smallest mean distance from
   each mirrored surface point to the nearest surface point, relative to the radius). The front lies on the
   other horizontal axis.
2. Front sign: the half (along the front axis) that holds more surface *detail* — vertices per unit area —
   since modellers spend vertices on faces, beaks, cabs and hands. Detail only counts where the mesh has
   it, so it is measured on meshes, not on splat files.

The guess is only reported as confident when the symmetry is clear (the two axes' mirror errors differ by
`MIN_SYMMETRY_RATIO` or more) and the detail differs between the halves by `MIN_DETAIL_RATIO` or more.
Measured accuracy on public samples is in docs/prepare.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_SYMMETRY_RATIO = 1.5  # mirror error of the worse axis / the better one, for a confident lateral axis
MIN_DETAIL_RATIO = 1.25  # vertex density of the denser half / the sparser one, for a confident sign
_SAMPLES = 3000  # surface points used for the mirror test


@dataclass(frozen=True)
class FrontGuess:
    """A guessed front direction in the frame the points were given in (up = +Y).

    Attributes:
        front: "+x", "-x", "+z" or "-z".
        confident: whether both the axis and its sign passed their thresholds.
        symmetry_ratio: mirror error of the other horizontal axis / that of the lateral axis.
        detail_ratio: vertex density of the front half / the back half (1.0 when unknown).
    """

    front: str
    confident: bool
    symmetry_ratio: float
    detail_ratio: float


def surface_points(vertices: np.ndarray, faces: np.ndarray, count: int = _SAMPLES, seed: int = 0) -> np.ndarray:
    """[count, 3] points spread over a mesh's surface in proportion to area (deterministic for a seed)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    if mesh.area <= 0:
        return np.asarray(vertices)[:count]
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points)


def mirror_error(points: np.ndarray, axis: int) -> float:
    """Mean distance from each point mirrored across the plane `axis` = bbox centre to its nearest point,
    divided by the points' radius (0 for a perfectly symmetric shape)."""
    p = torch.from_numpy(np.asarray(points, dtype=np.float32))
    centre = 0.5 * (p.min(0).values + p.max(0).values)
    p = p - centre
    q = p.clone()
    q[:, axis] = -q[:, axis]
    nearest = torch.cat([torch.cdist(q[i : i + 1024], p).min(dim=1).values for i in range(0, len(q), 1024)])
    radius = float(p.norm(dim=1).max().clamp_min(1e-12))
    return float(nearest.mean()) / radius


def detail_ratio(vertices: np.ndarray, faces: np.ndarray, axis: int) -> float:
    """Vertices per unit surface area in the + half along `axis` / in the − half (halves split at the bbox
    centre; a face belongs to the half of its centroid)."""
    centre = 0.5 * (vertices[:, axis].min() + vertices[:, axis].max())
    tri = vertices[faces]  # [T, 3, 3]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)  # [T]
    plus_face = tri[:, :, axis].mean(axis=1) > centre  # [T]
    used = np.unique(faces)
    plus_vertex = vertices[used, axis] > centre
    a_plus, a_minus = float(area[plus_face].sum()), float(area[~plus_face].sum())
    n_plus, n_minus = int(plus_vertex.sum()), int((~plus_vertex).sum())
    if min(a_plus, a_minus) <= 0 or min(n_plus, n_minus) == 0:
        return 1.0
    return (n_plus / a_plus) / (n_minus / a_minus)


def guess_front(
    vertices: np.ndarray, faces: np.ndarray | None = None, points: np.ndarray | None = None
) -> FrontGuess:
    """Guess the front of an asset already turned so that +Y is up.

    Args:
        vertices: [V, 3] mesh vertices (or splat centres when `faces` is None).
        faces: [T, 3] triangles, or None for splat files (then the sign cannot be told and +Z is kept on
            the detected axis).
        points: optional [P, 3] surface points for the mirror test (default: area-weighted samples of the
            mesh, or the splat centres).

    Returns:
        FrontGuess in the given frame.
    """
    if points is None:
        if faces is not None and len(faces):
            points = surface_points(vertices, faces)
        else:
            rng = np.random.default_rng(0)
            points = vertices[rng.choice(len(vertices), size=min(len(vertices), _SAMPLES), replace=False)]
    err_x, err_z = mirror_error(points, 0), mirror_error(points, 2)
    lateral = 0 if err_x <= err_z else 2
    front_axis = 2 if lateral == 0 else 0
    sym_ratio = max(err_x, err_z) / max(min(err_x, err_z), 1e-9)
    ratio = detail_ratio(vertices, faces, front_axis) if faces is not None and len(faces) else 1.0
    sign = "+" if ratio >= 1.0 else "-"
    name = sign + "xyz"[front_axis]
    strength = max(ratio, 1.0 / max(ratio, 1e-9))
    return FrontGuess(
        front=name,
        confident=sym_ratio >= MIN_SYMMETRY_RATIO and strength >= MIN_DETAIL_RATIO,
        symmetry_ratio=round(sym_ratio, 3),
        detail_ratio=round(ratio, 3),
    )



MIN_UPSIDE_DOWN_RATIO = 1.15  # luminance of the bottom band / the top band that suggests a Y-down file


def looks_upside_down(means: np.ndarray, colors: np.ndarray, band: float = 0.2) -> bool:
    """Whether splats look stored upside down (+Y up assumed): captured scenes are lit from above, so the
    top of an object is usually brighter than its underside; a clearly brighter bottom band suggests the
    Inria/COLMAP Y-down convention. A hint only: it never changes the orientation.

    Args:
        means: [N, 3] splat centres in the frame where +Y is taken as up.
        colors: [N, 3] base colours in [0, 1].
        band: the top and bottom bands, as a fraction of the height.
    """
    y = np.asarray(means)[:, 1]
    lo, hi = np.percentile(y, 1), np.percentile(y, 99)
    if hi - lo <= 0:
        return False
    lum = np.asarray(colors) @ np.array([0.2126, 0.7152, 0.0722])  # [N]
    top, bottom = lum[y >= hi - band * (hi - lo)], lum[y <= lo + band * (hi - lo)]
    if len(top) < 10 or len(bottom) < 10:
        return False
    return float(bottom.mean()) > MIN_UPSIDE_DOWN_RATIO * max(float(top.mean()), 1e-6)


def conventional_front(up: str) -> str:
    """The front a file's convention gives for its up axis: -y for a Z-up export (Blender), else +z."""
    return "-y" if up[1] == "z" else "+z"


def fronts_for(up: str) -> list[str]:
    """The front axes that make sense with `up`: the four axes perpendicular to it."""
    return [f"{sign}{axis}" for axis in "xyz" if axis != up[1] for sign in "+-"]


@dataclass(frozen=True)
class FrontChoice:
    """Which front an asset is given, and what the guess behind it said.

    Attributes:
        front: the front axis to normalize with, in the asset's own axes.
        conventional: the front its file's convention implies (`conventional_front`).
        guess: the guess for `--front auto` (None when the user named the front).
        guessed: the guessed front in the asset's own axes (None when the user named the front).
        upside_down: splats that look stored Y-down (`looks_upside_down`); False for meshes and other up axes.
    """

    front: str
    conventional: str
    guess: FrontGuess | None = None
    guessed: str | None = None
    upside_down: bool = False


def choose_front(
    points: np.ndarray,  # [P, 3]
    up: str,
    front: str,
    faces: np.ndarray | None = None,  # [T, 3]
    colors: np.ndarray | None = None,  # [P, 3]
) -> FrontChoice:
    """The front axis to use: the named one, or for "auto" the guessed one when confident, else the conventional.

    Args:
        points: [P, 3] mesh vertices or splat centres, in the asset's own axes.
        up: the asset's up axis (`a3d_cli.mesh.normalize.AXES`).
        front: the asset's front axis, or "auto" to guess it (`guess_front`).
        faces: [T, 3] the mesh's triangles (None for splats).
        colors: [P, 3] splat base colours in [0, 1], for the upside-down check (None for meshes).

    Returns:
        FrontChoice.
    """
    from a3d_cli.mesh.normalize import AXES, axis_rotation

    conventional = conventional_front(up)
    rot = axis_rotation(up, front if front != "auto" else conventional)
    turned = np.asarray(points, dtype=np.float64) @ rot.T  # [P, 3] up = +Y
    upside_down = colors is not None and up == "+y" and looks_upside_down(turned, colors)
    if front != "auto":
        return FrontChoice(front=front, conventional=conventional, upside_down=upside_down)
    guess = guess_front(turned, faces)
    vec = rot.T @ np.asarray(AXES[guess.front])  # the guessed direction back in the asset's own axes
    guessed = next(name for name, v in AXES.items() if np.allclose(v, vec, atol=1e-6))
    return FrontChoice(
        front=guessed if guess.confident else conventional,
        conventional=conventional,
        guess=guess,
        guessed=guessed,
        upside_down=upside_down,
    )

