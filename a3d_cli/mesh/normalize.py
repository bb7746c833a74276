"""Put an asset where the cameras look: rotate to +Y up / +Z front, centre it, scale it to a fixed radius.

Why a fixed radius: every stage renders from cameras at distance 3.0 with a 40° vertical field of view
(`render/cameras.py`, MV-VDM's conditioning views). A sphere of radius r around the origin stays inside
such a view when r ≤ 3·sin(20°) ≈ 1.03; with r = NORMALIZED_RADIUS = 0.9 the farthest point of the asset
touches a sphere that fills about 87 % of the image height, leaving room for splat footprints, so
nothing is clipped from any orbit direction and the object fills the frame like the reference renders.

The transform (original → normalized) is p' = s · R · (p − c): R the axis rotation from `--up/--front`,
c the centre of the axis-aligned bounding box *in the rotated frame* mapped back, s the scale. It is
written to `RUN/source/normalization.json` (4×4 matrix, its inverse, and the parts) so exports can go back
to the asset's own frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.io.json_data import short_repr

if TYPE_CHECKING:
    import torch

NORMALIZED_RADIUS = 0.9  # distance of the farthest vertex from the origin after normalization
Axis = Literal["+x", "-x", "+y", "-y", "+z", "-z"]
AXES: dict[str, tuple[float, float, float]] = {
    "+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0),
}  # fmt: skip


def axis_rotation(up: str = "+y", front: str = "+z") -> np.ndarray:
    """The rotation taking the asset's `up` axis to +Y and its `front` axis to +Z.

    Args:
        up: the asset's up axis, one of AXES ("+z" for most Z-up OBJ/PLY exports).
        front: the asset's front axis (the side that faces the azimuth-0 camera afterwards).

    Returns:
        [3, 3] proper rotation matrix R (det +1), normalized = R @ original.

    Raises:
        ValueError: unknown axis names, or `up` and `front` on the same line.
    """
    if up not in AXES or front not in AXES:
        raise ValueError(f"axes must be one of {sorted(AXES)}, got up={up!r} front={front!r}")
    u, f = np.asarray(AXES[up]), np.asarray(AXES[front])
    if abs(float(u @ f)) > 0.5:
        raise ValueError(f"up {up} and front {front} must be perpendicular")
    return np.stack([np.cross(u, f), u, f], axis=0)  # rows: where +X, +Y, +Z come from


@dataclass(frozen=True)
class Normalization:
    """The similarity transform from the asset's frame to a3d's normalized frame.

    Attributes:
        rotation: [3, 3] R.
        center: [3] c, in the original frame.
        scale: s (uniform).
        up, front: the axis names R was made from.
        radius: the normalized radius the asset was scaled to.
    """

    rotation: np.ndarray  # [3, 3]
    center: np.ndarray  # [3]
    scale: float
    up: str = "+y"
    front: str = "+z"
    radius: float = NORMALIZED_RADIUS

    @property
    def matrix(self) -> np.ndarray:
        """[4, 4] homogeneous original → normalized: [[sR, -sRc], [0, 1]]."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = -self.scale * self.rotation @ self.center
        return m

    @property
    def inverse(self) -> np.ndarray:
        """[4, 4] homogeneous normalized → original: [[Rᵀ/s, c], [0, 1]]."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.T / self.scale
        m[:3, 3] = self.center
        return m

    def apply(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] original → [..., 3] normalized."""
        return self.scale * (np.asarray(points, dtype=np.float64) - self.center) @ self.rotation.T

    def invert(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] normalized → [..., 3] original."""
        return np.asarray(points, dtype=np.float64) @ self.rotation / self.scale + self.center

    def to_original_similarity(self) -> tuple[float, torch.Tensor, torch.Tensor]:
        """(scale, rotation [3, 3], translation [3]) of normalized → original, as float32 tensors.

        normalized = s R (p − c)  ⇒  original = (1/s) Rᵀ p' + c; feed it to
        `a3d_cli.gaussians.transform.similarity_gaussians`.
        """
        import torch

        rot = torch.from_numpy(self.rotation.T.copy()).float()
        return 1.0 / self.scale, rot, torch.from_numpy(self.center.copy()).float()

    def to_json(self) -> dict[str, Any]:
        """The documented `normalization.json` content (docs/prepare.md)."""
        return {
            "format": "a3d-normalization",
            "version": 1,
            "description": "normalized = matrix @ [x, y, z, 1] of the original; original = inverse @ normalized",
            "matrix": self.matrix.tolist(),
            "inverse": self.inverse.tolist(),
            "rotation": self.rotation.tolist(),
            "center": self.center.tolist(),
            "scale": float(self.scale),
            "offset": self.matrix[:3, 3].tolist(),
            "up": self.up,
            "front": self.front,
            "radius": float(self.radius),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def from_json(cls, data: Any) -> Normalization:
        """Inverse of `to_json`, checked: the file may have been edited or damaged since `a3d prepare` wrote it.

        Raises:
            ValueError: not an object, a missing part, `rotation` not a finite 3×3 rotation, `center` not 3 finite
                numbers, `scale` or `radius` not a positive finite number within ±1e30, an unknown axis name.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a {type(data).__name__}, not a JSON object")
        rotation = _numbers(data, "rotation", (3, 3))
        if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-3 or np.linalg.det(rotation) < 0:
            raise ValueError("rotation is not a rotation matrix (orthonormal, determinant +1)")
        up, front = data.get("up", "+y"), data.get("front", "+z")
        if not (isinstance(up, str) and up in AXES and isinstance(front, str) and front in AXES):
            raise ValueError(
                f"up and front must be axis names such as '+y', got {short_repr(up, 24)} and {short_repr(front, 24)}"
            )
        return cls(
            rotation=rotation,
            center=_numbers(data, "center", (3,)),
            scale=_positive(data, "scale"),
            up=up,
            front=front,
            radius=_positive(data, "radius", NORMALIZED_RADIUS),
        )


_LIMIT = 1e30
"""Largest magnitude accepted for a normalization's numbers: beyond it, positions mapped back overflow float32."""


def _numbers(data: dict[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    """`data[key]` as a float64 array of `shape`, every value finite and within ±_LIMIT, else ValueError."""
    if key not in data:
        raise ValueError(f"it has no {key!r}")
    try:
        value = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key} is not an array of numbers") from None
    if value.shape != shape:
        raise ValueError(f"{key} has shape {list(value.shape)}, expected {list(shape)}")
    if not (np.isfinite(value).all() and (np.abs(value) <= _LIMIT).all()):
        raise ValueError(f"{key} holds NaN, infinite or huge values")
    return value


def _positive(data: dict[str, Any], key: str, default: float | None = None) -> float:
    """`data[key]` (or `default` when absent) as a float in [1/_LIMIT, _LIMIT], else ValueError."""
    value = data.get(key, default)
    if value is None:
        raise ValueError(f"it has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is {type(value).__name__}, not a number")
    if not 1 / _LIMIT <= value <= _LIMIT:  # NaN fails too
        raise ValueError(f"{key} = {short_repr(value, 24)} is not a positive finite number within 1e-30…1e30")
    return float(value)


def read_normalization(run_dir: Path) -> Normalization:
    """`RUN/source/normalization.json`, read inside RUN as a regular file and checked (`Normalization.from_json`).

    Raises:
        RunFolderError: the file is missing, a link out of RUN, not a regular file (a named pipe is refused, never
            read), not JSON, or not a valid normalization (exit code 2).
    """
    from a3d_cli.errors import RunFolderError
    from a3d_cli.io.json_data import parse_json
    from a3d_cli.io.paths import read_inside
    from a3d_cli.run_layout import NORMALIZATION_JSON

    hint = "Re-run `a3d prepare MODEL -o RUN --force`, which writes it again."
    raw = read_inside(run_dir, NORMALIZATION_JSON, hint=hint)
    try:
        return Normalization.from_json(parse_json(raw))
    except ValueError as exc:
        raise RunFolderError(
            f"{NORMALIZATION_JSON} in the run folder {run_dir} is not a normalization a3d can use ({exc}).", hint=hint
        ) from None


def fit_normalization(
    points: np.ndarray,  # [P, 3]
    up: str = "+y",
    front: str = "+z",
    radius: float = NORMALIZED_RADIUS,
    robust: bool = False,
) -> Normalization:
    """Fit the transform that centres `points` and scales their farthest one to `radius`.

    Args:
        points: [P, 3] vertex positions (or Gaussian centres) in the original frame.
        up, front: the asset's axes (see `axis_rotation`).
        radius: target distance of the farthest point from the origin.
        robust: ignore the extreme 0.5 % per axis and in distance (for 3DGS files with stray floaters).

    Returns:
        The Normalization.

    Raises:
        InputError: the points have no extent (one point, or all at one place): nothing could be seen.
    """
    rot = axis_rotation(up, front)
    p = np.asarray(points, dtype=np.float64) @ rot.T  # [P, 3] rotated frame
    if robust and len(p) >= 200:
        lo, hi = np.percentile(p, 0.5, axis=0), np.percentile(p, 99.5, axis=0)
    else:
        lo, hi = p.min(axis=0), p.max(axis=0)
    center_rot = 0.5 * (lo + hi)  # [3]
    dist = np.linalg.norm(p - center_rot, axis=-1)  # [P]
    extent = float(np.percentile(dist, 99.5) if robust and len(p) >= 200 else dist.max())
    if not extent > 1e-12:
        raise InputError(
            f"The model has zero size: its {len(p)} point(s) all lie at one place, so nothing would be visible.",
            hint="Check the export (units, an empty or collapsed mesh, a PLY with a single splat).",
        )
    scale = radius / extent
    return Normalization(rotation=rot, center=rot.T @ center_rot, scale=scale, up=up, front=front, radius=radius)


def normalize_gaussians(g: Gaussians, norm: Normalization) -> Gaussians:
    """Move 3D Gaussians into the normalized frame, view-dependent colour included.

    p' = s R (p − c) is the similarity p' = s R p + t with t = −s R c: centres are transformed, scales
    multiplied by s, rotations pre-multiplied by R and higher-order SH rotated with R, so each splat shows
    in direction R d the colour it showed in direction d (`gaussians.transform.similarity_gaussians`).
    """
    import torch

    from a3d_cli.gaussians.transform import similarity_gaussians

    rot = torch.from_numpy(norm.rotation.copy())  # [3, 3] float64
    shift = torch.from_numpy(-float(norm.scale) * norm.rotation @ norm.center)  # [3]
    return similarity_gaussians(g, float(norm.scale), rot, shift)
