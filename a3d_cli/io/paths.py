"""Paths inside a run folder: every relative path from a manifest or a stage stays inside RUN."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from a3d_cli.errors import RunFolderError


def resolve_inside(run_dir: Path, rel: str) -> Path:
    """Resolve a run-folder-relative path, refusing absolute paths and `..` escapes.

    Why: manifests are data another tool may have written; a path in one must never reach outside RUN.
    """
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or rel.strip() == "":
        raise RunFolderError(f"The path {rel!r} is not a plain path inside the run folder.")
    root = Path(run_dir).resolve()
    path = (root / pure).resolve()
    if root != path and root not in path.parents:
        raise RunFolderError(f"The path {rel!r} leads outside the run folder {root}.")
    return path
