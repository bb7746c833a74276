"""Camera conventions of a3d, pinned in one module.

World frame: right-handed, +Y up, as glTF. The front of an asset faces +Z and is azimuth 0; azimuth grows
as a positive rotation about +Y (azimuth 90° looks at the asset from +X). Elevation is positive above the
equator.

Cameras on disk and inside the code: 4×4 camera-to-world matrices in the OpenCV convention (x right,
y down, z forward) plus pinhole intrinsics in pixels. `viewmats` (world→camera) are their inverses, which
is what the rasterizer takes. Model adapters (MVDream's z-up orbit, SV3D's polar/azimuth) convert from here
in their own modules.

Examples:
    >>> cams = orbit_cameras([15.0] * 4, [0.0, 90.0, 180.0, 270.0], radius=3.0, fov_deg=40.0)
    >>> cams.c2w.shape, cams.Ks(256, 256).shape
    (torch.Size([4, 4, 4]), torch.Size([4, 3, 3]))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from a3d_cli.models.mvvdm.shape import MVVDM_BACKGROUND as MVVDM_BACKGROUND  # re-exported with its cameras

WORLD_UP = (0.0, 1.0, 0.0)


def orbit_position(elevation_deg: Tensor, azimuth_deg: Tensor, radius: Tensor | float) -> Tensor:
    """Camera centre on an orbit around the origin.

    Args:
        elevation_deg: [V] degrees above the XZ plane.
        azimuth_deg: [V] degrees, 0 = in front (+Z), 90 = right side (+X).
        radius: scalar or [V].

    Returns:
        [V, 3] positions in world coordinates.
    """
    e = torch.deg2rad(elevation_deg.double())  # [V]
    a = torch.deg2rad(azimuth_deg.double())  # [V]
    r = torch.as_tensor(radius, dtype=torch.float64)
    pos = torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], dim=-1)  # [V, 3]
    return (pos * r.reshape(-1, 1) if r.ndim else pos * r).float()


def look_at_c2w(eye: Tensor, target: Tensor | None = None, up: Sequence[float] = WORLD_UP) -> Tensor:
    """OpenCV camera-to-world matrices looking from `eye` at `target`.

    Args:
        eye: [V, 3] camera centres.
        target: [V, 3] or [3] points looked at (default: origin).
        up: world up vector; the camera's y axis points away from it (OpenCV y is down).

    Returns:
        [V, 4, 4] camera-to-world, columns = camera x (right), y (down), z (forward), centre.
    """
    eye = eye.double()
    tgt = torch.zeros_like(eye) if target is None else target.double().expand_as(eye)
    up_t = torch.tensor(up, dtype=torch.float64).expand_as(eye)
    forward = torch.nn.functional.normalize(tgt - eye, dim=-1)  # [V, 3]
    right = torch.linalg.cross(forward, up_t, dim=-1)  # [V, 3]
    # Looking straight up or down: any right vector orthogonal to forward will do.
    degenerate = right.norm(dim=-1) < 1e-8
    if degenerate.any():
        right[degenerate] = torch.linalg.cross(forward[degenerate], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand_as(forward[degenerate]), dim=-1)
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)  # [V, 3]
    c2w = torch.eye(4, dtype=torch.float64).repeat(eye.shape[0], 1, 1)  # [V, 4, 4]
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, down, forward, eye
    return c2w.float()


def intrinsics(fov_deg: Tensor | float, width: int, height: int) -> Tensor:
    """Pinhole intrinsics from a vertical field of view, principal point at the image centre.

    Args:
        fov_deg: scalar or [V] vertical field of view in degrees.

    Returns:
        [V, 3, 3] (or [3, 3] for a scalar fov) in pixels.
    """
    fov = torch.as_tensor(fov_deg, dtype=torch.float64)
    fy = 0.5 * height / torch.tan(torch.deg2rad(fov) / 2)
    K = torch.zeros(*fov.shape, 3, 3, dtype=torch.float64)
    K[..., 0, 0] = fy  # square pixels
    K[..., 1, 1] = fy
    K[..., 0, 2] = width / 2
    K[..., 1, 2] = height / 2
    K[..., 2, 2] = 1.0
    return K.float()


@dataclass(frozen=True)
class CameraSet:
    """V orbit cameras: poses, lenses and the orbit parameters they were made from.

    Attributes:
        c2w: [V, 4, 4] OpenCV camera-to-world.
        fov_deg: [V] vertical field of view.
        elevation_deg: [V]; azimuth_deg: [V]; radius: [V] (orbit naming).
    """

    c2w: Tensor  # [V, 4, 4]
    fov_deg: Tensor  # [V]
    elevation_deg: Tensor  # [V]
    azimuth_deg: Tensor  # [V]
    radius: Tensor  # [V]

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def viewmats(self) -> Tensor:
        """[V, 4, 4] world→camera (OpenCV), the rasterizer's input."""
        return torch.linalg.inv(self.c2w.double()).float()

    def concat(self, other: CameraSet) -> CameraSet:
        """These cameras followed by `other`'s."""
        return CameraSet(*(torch.cat([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)))

    def Ks(self, width: int, height: int) -> Tensor:  # noqa: N802 - gsplat's name
        """[V, 3, 3] intrinsics for an image of `width`×`height` pixels."""
        return intrinsics(self.fov_deg, width, height)

    def to_json(self, width: int, height: int) -> dict[str, Any]:
        """The documented `cameras.json` form (docs/ARTIFACTS.md)."""
        Ks = self.Ks(width, height)
        return {
            "convention": "opencv_c2w_world_y_up",
            "width": width,
            "height": height,
            "cameras": [
                {
                    "elevation_deg": float(self.elevation_deg[i]),
                    "azimuth_deg": float(self.azimuth_deg[i]),
                    "radius": float(self.radius[i]),
                    "fov_deg": float(self.fov_deg[i]),
                    "c2w": self.c2w[i].tolist(),
                    "K": Ks[i].tolist(),
                }
                for i in range(len(self))
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CameraSet:
        """Inverse of `to_json` (the intrinsics are re-derived from the fov).

        Raises:
            ValueError / KeyError / TypeError: a missing field, a pose that is not a finite, invertible 4×4
                matrix, or a field of view outside (0°, 180°).
        """
        cams = data["cameras"]
        out = cls(
            c2w=torch.tensor([c["c2w"] for c in cams], dtype=torch.float32),
            fov_deg=torch.tensor([c["fov_deg"] for c in cams], dtype=torch.float32),
            elevation_deg=torch.tensor([c["elevation_deg"] for c in cams], dtype=torch.float32),
            azimuth_deg=torch.tensor([c["azimuth_deg"] for c in cams], dtype=torch.float32),
            radius=torch.tensor([c["radius"] for c in cams], dtype=torch.float32),
        )
        if out.c2w.ndim != 3 or out.c2w.shape[1:] != (4, 4):
            raise ValueError(f"c2w must be 4×4 matrices, got shape {list(out.c2w.shape)}")
        for name in ("c2w", "fov_deg", "elevation_deg", "azimuth_deg", "radius"):
            if not torch.isfinite(getattr(out, name)).all():
                raise ValueError(f"{name} holds NaN or infinite values")
        if not ((out.fov_deg > 0) & (out.fov_deg < 180)).all():
            raise ValueError(f"fov_deg must lie strictly between 0 and 180 (got {out.fov_deg.tolist()})")
        if (torch.linalg.det(out.c2w.double()).abs() < 1e-12).any():
            raise ValueError("a c2w pose is not invertible")
        return out

    def dumps(self, width: int, height: int) -> str:
        return json.dumps(self.to_json(width, height), indent=2)


def orbit_cameras(
    elevation_deg: Sequence[float] | Tensor,
    azimuth_deg: Sequence[float] | Tensor,
    radius: float | Sequence[float] = 3.0,
    fov_deg: float | Sequence[float] = 40.0,
) -> CameraSet:
    """Cameras on an orbit around the origin, all looking at it.

    Args:
        elevation_deg: [V] degrees.
        azimuth_deg: [V] degrees.
        radius: scalar or [V] distance from the origin.
        fov_deg: scalar or [V] vertical field of view.
    """
    elev = torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1)
    azim = torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1)
    if elev.shape != azim.shape:
        raise ValueError(f"elevation_deg has {elev.numel()} values but azimuth_deg has {azim.numel()}")
    v = elev.numel()
    rad = torch.as_tensor(radius, dtype=torch.float32).reshape(-1).expand(v).clone()
    fov = torch.as_tensor(fov_deg, dtype=torch.float32).reshape(-1).expand(v).clone()
    c2w = look_at_c2w(orbit_position(elev, azim, rad))
    return CameraSet(c2w=c2w, fov_deg=fov, elevation_deg=elev, azimuth_deg=azim, radius=rad)


# The 4 conditioning views MV-VDM was trained on (Animate3D `visualize_four_view_static.yaml`):
# elevation 15°, azimuths 0/90/180/270, camera distance 3.0, vertical fov 40°.
MVVDM_ELEVATION_DEG = 15.0
MVVDM_AZIMUTHS_DEG = (0.0, 90.0, 180.0, 270.0)
MVVDM_RADIUS = 3.0
MVVDM_FOV_DEG = 40.0


def mvvdm_cameras() -> CameraSet:
    """The 4 fixed views of MV-VDM conditioning, video generation and coarse reconstruction."""
    n = len(MVVDM_AZIMUTHS_DEG)
    return orbit_cameras([MVVDM_ELEVATION_DEG] * n, MVVDM_AZIMUTHS_DEG, MVVDM_RADIUS, MVVDM_FOV_DEG)
