"""The `.splat` file (antimatter15/splat's web viewer format) → `Gaussians`.

Why a3d reads it: it is the plain format many web viewers and converters (antimatter15's `convert.py`,
gsplat's `export_splats(format="splat")`) write, often the only file a shared splat comes as.

The file is N records of 32 bytes, with no header (so N = file size / 32), little-endian:

    bytes  0–11  position x, y, z            float32
    bytes 12–23  scale x, y, z               float32, linear (a 3DGS PLY stores their logs)
    bytes 24–27  red, green, blue, alpha     uint8, display values: u / 255
    bytes 28–31  rotation w, x, y, z         uint8, the unit quaternion as u = q · 128 + 128, clamped to 0–255

What a3d makes of it, and why:

- colour: the display colour u / 255 is the SH degree-0 colour, so f_dc = (rgb − 0.5) / SH_C0 with
  SH_C0 = 0.28209479177387814 (a3d keeps rgb itself, which is the same Gaussian). There are no higher SH.
- opacity: alpha u / 255 is the opacity after the sigmoid (a 3DGS PLY would store logit(alpha)); a3d keeps
  it as it is, so 0 and 255 stay 0 and 1 (converters that write a PLY clamp them off the asymptotes).
- rotation: the order is w, x, y, z, as rot_0..rot_3 of the 3DGS PLY it was converted from. Each byte is
  read back as (u − 128) / 128, as antimatter15's viewer reads it (the exact inverse of the writers'
  q · 128 + 128), and the quaternion is then normalised; all four bytes 128 (no rotation stored) is the
  identity. `splat-transform` reads u / 127.5 − 1 instead, which adds 1/255 to each component of a
  slightly longer quaternion: after normalising, its quaternions differ from these by under 0.008
  (Euclidean: 2/255 over the stored quaternion's length, which is at least 1 − 2/128; under 1° of rotation).
- axes: those of the 3DGS PLY it was converted from (the Inria/COLMAP frame, Y down); nothing is converted.

Scales must be finite and not negative; a zero scale (a flat splat) is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.ply import gaussians_from_arrays

SPLAT_RECORD = np.dtype(
    [("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rotation", "u1", (4,))]
)  # 32 bytes
_TRUNCATED = "A .splat file is whole 32-byte records; this one was cut short (an interrupted download or copy?)."
_DIVERGED = "The splats are broken; export them again from the tool that made them."


def read_splat(path: str | os.PathLike[str]) -> Gaussians:
    """Read a `.splat` file into activated `Gaussians` (float32, CPU).

    Returns:
        Gaussians with the file's linear scales, opacities alpha / 255, colours rgb / 255 and unit
        quaternions (wxyz); `sh_rest` None.

    Raises:
        InputError: missing or unreadable file, a size that is not a whole number of records, no records,
            non-finite values or negative scales.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size % SPLAT_RECORD.itemsize:  # before reading anything
                raise InputError(
                    f"{path} is {size} bytes, not a whole number of {SPLAT_RECORD.itemsize}-byte splats.",
                    hint=_TRUNCATED,
                )
            if size == 0:
                raise InputError(f"{path} holds no Gaussians (0 bytes).", hint="Export the splats again.")
            data = f.read(size)
    except OSError as exc:
        raise InputError(
            f"Cannot read {path} ({exc.strerror or exc}).", hint="Check that the file exists and is readable."
        ) from exc
    if len(data) != size:  # the file shrank while it was read
        raise InputError(f"{path} changed while it was read ({len(data)} of {size} bytes).", hint=_TRUNCATED)
    records = np.frombuffer(data, dtype=SPLAT_RECORD)
    scales = np.array(records["scale"], dtype=np.float32)  # [N, 3]
    if np.isfinite(scales).all() and (scales < 0).any():
        raise InputError(f"{path} has negative Gaussian scales, which no splat can have.", hint=_DIVERGED)
    rgba = records["rgba"].astype(np.float32) / 255.0  # [N, 4]
    quats = (records["rotation"].astype(np.float32) - 128.0) / 128.0  # [N, 4] wxyz, normalised below
    return gaussians_from_arrays(
        path,
        means=np.array(records["position"], dtype=np.float32),
        quats=quats,
        scales=scales,
        opacities=rgba[:, 3],
        colors=rgba[:, :3],
    )


__all__ = ["SPLAT_RECORD", "read_splat"]
