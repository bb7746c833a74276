"""An orbit folder on disk → views (images, optional alpha) and their cameras, checked for consistency.

The layout (docs/lift.md) is the one `a3d orbit` writes: `frame_00.png … frame_NN.png` (RGB on a white
background, or RGBA) plus `cameras.json` whose `cameras[i]` is the camera of `frame_i`. Frame *i* always
pairs with camera *i*, so SV3D's reference order (input view last), the `input_first/` order and any
user turntable all read the same way; the front of the object is wherever its cameras say.

Only `c2w` (4×4 OpenCV camera-to-world, +Y up) and `fov_deg` (vertical) are needed per camera; the
intrinsics are derived from the fov for the frames' own size, so frames may be stored at any square size.
`elevation_deg`, `azimuth_deg` and `radius` are optional (recomputed from `c2w` when absent).

Examples:
    >>> views = load_views(Path("RUN/orbit"))  # doctest: +SKIP
    >>> views.images.shape, len(views.cameras)  # doctest: +SKIP
    (torch.Size([21, 576, 576, 3]), 21)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from a3d_cli.errors import InputError
from a3d_cli.io.json_data import parse_json
from a3d_cli.render.cameras import CameraSet
from a3d_cli.run_layout import CAMERAS_JSON

FRAME_PATTERN = re.compile(r"^frame_(\d+)\.png$")
MIN_VIEWS = 4
MAX_VIEWS = 512
MAX_CAMERAS_BYTES = 16 << 20
LAYOUT_HINT = "An orbit folder holds frame_00.png, frame_01.png, … and cameras.json; docs/lift.md gives the layout."
SIZE_HINT = "Give every frame the same square size, at least 16 pixels (a3d orbit writes 576²)."


@dataclass(frozen=True)
class OrbitViews:
    """V square views of one object and their cameras.

    Attributes:
        images: [V, S, S, 3] RGB in [0, 1] (composited on white where the frames had alpha).
        alphas: [V, S, S] alpha in [0, 1] when every frame had an alpha channel, else None.
        cameras: the V cameras (frame i ↔ camera i).
        names: the frame file names, in view order.
        camera_input: False when the cameras are nominal (an sv3d_u orbit: the model was not told them).
    """

    images: Tensor
    alphas: Tensor | None
    cameras: CameraSet
    names: tuple[str, ...]
    camera_input: bool = True

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def frame_files(folder: Path) -> list[Path]:
    """The `frame_XX.png` files of `folder` in numeric order; missing numbers are an error.

    Raises:
        InputError: no frames, or a gap in the numbering (a missing frame).
    """
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        m = FRAME_PATTERN.match(path.name)
        if m and path.is_file() and not path.is_symlink():
            found[int(m.group(1))] = path
    if not found:
        raise InputError(
            f"{folder} holds no frame_XX.png images.",
            hint="Run `a3d orbit IMAGE -o RUN` first, or pass --orbit DIR with frame_00.png … and cameras.json.",
        )
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        shown = ", ".join(f"frame_{i:02d}.png" for i in missing[:5])
        raise InputError(
            f"{folder} is missing {shown}{' …' if len(missing) > 5 else ''} (frames must be numbered from 00 without gaps).",
            hint=LAYOUT_HINT,
        )
    return [found[i] for i in range(len(found))]


def _first(bad: Tensor) -> int:
    """The index of the first camera a [V] boolean test flags."""
    return int(torch.nonzero(bad)[0, 0])


def _camera_angles(c2w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(elevation°, azimuth°, radius) of camera centres [V, 4, 4] (a3d's orbit convention)."""
    centre = c2w[:, :3, 3].double()  # [V, 3]
    radius = centre.norm(dim=-1)
    elev = torch.rad2deg(torch.asin((centre[:, 1] / radius.clamp_min(1e-12)).clamp(-1, 1)))
    azim = torch.remainder(torch.rad2deg(torch.atan2(centre[:, 0], centre[:, 2])), 360.0)
    return elev.float(), azim.float(), radius.float()


def parse_cameras(path: Path, count: int) -> tuple[CameraSet, bool]:
    """Read `cameras.json` and check it against the number of frames.

    Returns:
        (cameras, camera_input): camera_input is the file's `camera_input` flag (True when absent).

    Raises:
        InputError: unreadable JSON, a camera count that differs from the frame count, or a camera
            without a valid 4×4 `c2w` and a positive `fov_deg`.
    """
    if not path.is_file() or path.is_symlink():
        raise InputError(f"{path} does not exist.", hint="An orbit folder needs cameras.json next to its frames.")
    if path.stat().st_size > MAX_CAMERAS_BYTES:
        raise InputError(f"{path} is too large to be a cameras file.")
    try:
        data = parse_json(path.read_bytes())  # deep nesting and huge integers are one ValueError too
        cams = data["cameras"]
        if not isinstance(cams, list):
            raise TypeError("cameras is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a cameras file ({exc}).", hint="See docs/lift.md for the layout.") from exc
    if len(cams) != count:
        raise InputError(
            f"{path} lists {len(cams)} cameras but the folder has {count} frames.",
            hint="cameras[i] must be the camera of frame_i; give one camera per frame.",
        )
    try:
        c2w = torch.tensor([c["c2w"] for c in cams], dtype=torch.float64)  # [V, 4, 4]
        fov = torch.tensor([float(c["fov_deg"]) for c in cams], dtype=torch.float64)  # [V]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: every camera needs a 4×4 `c2w` and a `fov_deg` ({exc}).", hint=LAYOUT_HINT) from exc
    if c2w.shape[1:] != (4, 4):
        raise InputError(f"{path}: every `c2w` must be a 4×4 matrix.", hint=LAYOUT_HINT)
    if not torch.isfinite(c2w).all():
        bad = _first(~torch.isfinite(c2w).flatten(1).all(1))
        raise InputError(f"{path}: cameras[{bad}].c2w holds NaN or infinity.", hint=LAYOUT_HINT)
    rot = c2w[:, :3, :3]
    skew = (rot.transpose(1, 2) @ rot - torch.eye(3, dtype=torch.float64)).abs().flatten(1).amax(1)  # [V]
    if (skew > 1e-3).any():
        raise InputError(
            f"{path}: the rotation of cameras[{_first(skew > 1e-3)}].c2w is not orthonormal.",
            hint="Cameras must be rigid (no scale or shear), in the OpenCV convention: x right, y down, z forward.",
        )
    if (torch.linalg.det(rot) < 0).any():
        raise InputError(
            f"{path}: the rotation of cameras[{_first(torch.linalg.det(rot) < 0)}].c2w is a mirror (determinant −1); "
            "cameras must be rigid rotations.",
            hint="Check the axes of the camera export (OpenCV: x right, y down, z forward).",
        )
    fov_bad = ~((fov > 1.0) & (fov < 170.0))
    if fov_bad.any():
        raise InputError(
            f"{path}: cameras[{_first(fov_bad)}].fov_deg is {fov[_first(fov_bad)].item():g}; it must lie between 1 and "
            "170 degrees.",
            hint="fov_deg is the full vertical field of view in degrees (SV3D's orbit: 33.8).",
        )
    elev, azim, radius = _camera_angles(c2w.float())
    if (radius < 1e-6).any():
        raise InputError(
            f"{path}: cameras[{_first(radius < 1e-6)}] sits at the origin; cameras must look at the object from outside.",
            hint=LAYOUT_HINT,
        )
    facing = (c2w[:, :3, 2] * -c2w[:, :3, 3]).sum(-1)  # [V] forward axis · direction to the origin
    if (facing <= 0).any():
        raise InputError(
            f"{path}: cameras[{_first(facing <= 0)}] looks away from the object at the origin.",
            hint="Cameras must be OpenCV camera-to-world (z forward, y down); an OpenGL/Blender export "
            "(z backward, y up) needs its y and z axes negated.",
        )
    cameras = CameraSet(c2w=c2w.float(), fov_deg=fov.float(), elevation_deg=elev, azimuth_deg=azim, radius=radius)
    return cameras, bool(data.get("camera_input", True))


def load_views(folder: Path) -> OrbitViews:
    """Read an orbit folder (frames + cameras.json), checking everything before anything is fitted.

    Raises:
        InputError: a missing folder, frames or cameras; counts that differ; frames of different or
            non-square sizes; fewer than MIN_VIEWS views.
    """
    from a3d_cli.io.images import composite, load_png

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"The orbit folder {folder} does not exist.", hint="Run `a3d orbit IMAGE -o RUN` first.")
    files = frame_files(folder)
    if not MIN_VIEWS <= len(files) <= MAX_VIEWS:
        raise InputError(
            f"{folder} has {len(files)} frames; lifting needs between {MIN_VIEWS} and {MAX_VIEWS}.", hint=LAYOUT_HINT
        )
    cameras, camera_input = parse_cameras(folder / CAMERAS_JSON, len(files))
    images, alphas = [], []
    for path in files:
        img = load_png(path)
        if img.shape[-1] not in (3, 4):
            img = load_png(path, "RGB")
        if img.shape[0] != img.shape[1]:
            raise InputError(f"{path} is {img.shape[1]}×{img.shape[0]}; lift needs square frames.", hint=SIZE_HINT)
        if images and img.shape[:2] != images[0].shape[:2]:
            raise InputError(
                f"{path} is {img.shape[1]}×{img.shape[0]} but {files[0].name} is "
                f"{images[0].shape[1]}×{images[0].shape[0]}.",
                hint=SIZE_HINT,
            )
        if img.shape[-1] == 4:
            a = img[..., 3]
            alphas.append(a)
            images.append(composite(img, 1.0))  # on white
        else:
            alphas.append(None)
            images.append(img)
    if img.shape[0] < 16:
        raise InputError(f"{folder}: frames of {img.shape[0]} pixels are too small to lift.", hint=SIZE_HINT)
    alpha = torch.stack(alphas) if all(a is not None for a in alphas) else None  # type: ignore[misc]
    return OrbitViews(torch.stack(images), alpha, cameras, tuple(p.name for p in files), camera_input)


def resize_views(views: OrbitViews, size: int) -> OrbitViews:
    """The same views at `size`² (area-averaged when shrinking); cameras are unchanged (fov-based)."""
    from a3d_cli.io.images import resize_square

    if size == views.size:
        return views

    def rs(x: Tensor) -> Tensor:  # [V, S, S, C] → [V, size, size, C]
        return resize_square(x, size).clamp(0, 1)

    alphas = None if views.alphas is None else rs(views.alphas[..., None])[..., 0]
    return OrbitViews(rs(views.images), alphas, views.cameras, views.names, views.camera_input)


def scene_radius(cameras: CameraSet) -> float:
    """Half-width of a cube around the origin that holds anything every camera sees whole.

    The narrowest view's half-height at the origin, with a 10 % margin for points nearer the camera.
    """
    half = cameras.radius.double() * torch.tan(torch.deg2rad(cameras.fov_deg.double()) / 2)
    return float(half.min()) * 1.1


__all__ = ["FRAME_PATTERN", "OrbitViews", "frame_files", "load_views", "parse_cameras", "resize_views", "scene_radius"]
