"""The axes a 3DGS PLY can be written in (`PlyConvention`), without torch.

`ExportOptions.ply_convention` is checked against `PLY_CONVENTIONS` whenever the options are built, `a3d info`
reading recorded options back included: this module imports no torch, so that check does not either. What each
convention means, and the rotation into it, is `a3d_cli.gaussians.ply` (which re-exports these names).
"""

from __future__ import annotations

from typing import Literal, get_args

PlyConvention = Literal["yup", "inria"]
"""a3d's and glTF's +Y up ("yup"), or the original 3DGS viewers' +Y down ("inria")."""

PLY_CONVENTIONS: tuple[str, ...] = get_args(PlyConvention)
"""Every name `--ply-convention` takes."""

__all__ = ["PLY_CONVENTIONS", "PlyConvention"]
