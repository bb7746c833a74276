"""Which Gaussian-splat files a3d reads, and what to do with the ones it does not.

Why one place: `a3d prepare` decides by a file's suffix whether to read it, and the answer for a splat
format a3d leaves to a converter (the converter and the command) belongs next to the readers.

Read: 3DGS `.ply` (the Inria layout, `a3d_cli.gaussians.ply`; SuperSplat's compressed PLY,
`a3d_cli.gaussians.compressed_ply`, recognised by its header), `.splat` (`a3d_cli.gaussians.splat_file`) and
Niantic's `.spz` of versions 1–3 (gzip) and 4 (zstd streams; `a3d_cli.gaussians.spz`).
Not read: `.ksplat` (mkkellogg's GaussianSplats3D) and `.sog` (PlayCanvas): PlayCanvas' `splat-transform`
converts each to a 3DGS PLY.
"""

from __future__ import annotations

import os
from pathlib import Path

from a3d_cli.gaussians.container import Gaussians

SPLAT_SUFFIXES = (".splat", ".spz")  # suffixes that are always Gaussians (a .ply may be a mesh)
CONVERT_FIRST = {
    ".ksplat": "GaussianSplats3D's .ksplat",
    ".sog": "PlayCanvas' .sog",
}  # splat formats a3d does not read, by suffix → what they are called in messages


def convert_hint(suffix: str) -> str:
    """The command that turns a splat file with `suffix` into a 3DGS PLY a3d reads."""
    return f"Convert it to a 3DGS .ply first: npx @playcanvas/splat-transform in{suffix} out.ply (Node.js)."


def read_gaussians(path: str | os.PathLike[str]) -> Gaussians:
    """Read a Gaussian-splat file of any kind a3d reads, by its suffix: `.splat`, `.spz`, else a PLY.

    Raises:
        InputError: whatever the format's reader refuses (`read_splat`, `read_spz`, `read_ply`).
    """
    path = Path(path)
    if path.suffix.lower() == ".spz":
        from a3d_cli.gaussians.spz import read_spz

        return read_spz(path)
    if path.suffix.lower() == ".splat":
        from a3d_cli.gaussians.splat_file import read_splat

        return read_splat(path)
    from a3d_cli.gaussians.ply import read_ply

    return read_ply(path)


__all__ = ["CONVERT_FIRST", "SPLAT_SUFFIXES", "convert_hint", "read_gaussians"]
