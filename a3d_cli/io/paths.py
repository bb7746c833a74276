"""Paths inside a run folder: every relative path from a manifest or a stage stays inside RUN, and no link
inside RUN leads a3d to read, write or delete anything outside it.

Why: run folders travel (tarballs, shared drives). One received from someone else may hold symbolic links
planted to make a3d overwrite or delete the user's files, or copy them into a folder that gets shared.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from a3d_cli.errors import OptionError, RunFolderError

_MANIFEST_HINT = "Paths in a run folder are relative to it; fix the manifest (a3d.json) or start a new run folder."
_NAME_HINT = "Give the run folder a name, e.g. -o runs/fox."
_LINK_HINT = "Remove the link (a3d never follows links out of a run folder), or start a new run folder."


def resolve_inside(run_dir: Path, rel: str) -> Path:
    """Resolve a run-folder-relative path, refusing absolute paths, `..` escapes and links that lead out.

    Why: manifests are data another tool may have written; a path in one must never reach outside RUN.
    """
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or rel.strip() == "" or "\0" in rel:  # no file name holds NUL
        raise RunFolderError(f"The path {rel!r} is not a plain path inside the run folder.", hint=_MANIFEST_HINT)
    root = Path(run_dir).resolve()
    path = _resolve(root / pure)
    if root != path and root not in path.parents:
        raise RunFolderError(f"The path {rel!r} leads outside the run folder {root}.", hint=_LINK_HINT)
    return path


def read_inside(run_dir: Path, rel: str, hint: str) -> bytes:
    """The bytes of run-folder file `rel`, read only inside RUN and only from a regular file.

    The path is resolved with `resolve_inside` (absolute paths, `..` and links that lead out are refused) and
    read through `open_regular` (opened without following a link and checked on the descriptor, so a named
    pipe or device is refused at once instead of hanging the read).

    Why: run folders travel; a file in one may be a link to a private file or a pipe planted to hang a3d.

    Args:
        run_dir: the run folder.
        rel: the file's path relative to it.
        hint: what to do when it is missing or not a regular file (e.g. the command that writes it).

    Raises:
        RunFolderError: the file is missing, leads outside RUN, or is not a regular file.
    """
    from a3d_cli.io.regular import NotRegularFileError, read_regular

    path = resolve_inside(run_dir, rel)
    try:
        return read_regular(path)
    except FileNotFoundError:
        raise RunFolderError(f"The run folder {run_dir} has no {rel}.", hint=hint) from None
    except (NotRegularFileError, IsADirectoryError):
        raise RunFolderError(
            f"{rel} in the run folder {run_dir} is not a regular file (a folder, named pipe or device).", hint=hint
        ) from None


def run_folder_path(text: str) -> Path:
    """The run folder a user typed (`-o RUN`), as a Path; Typer's `parser` for that option.

    Why: converted as a plain Path, an empty string becomes `.`, the current folder, before any later check can
    tell it from a `.` typed on purpose; the stage would then make the current folder its run folder.

    Raises:
        OptionError: the text is empty or only spaces (exit code 2).
    """
    require_run_folder_name(text)
    return Path(text)


def require_run_folder_name(text: str) -> None:
    """Refuse a run folder path that is empty or only spaces, or whose last part is (`runs/ `).

    Raises:
        OptionError: naming the path (exit code 2).
    """
    name = Path(text).name
    if not text.strip() or (name and not name.strip()):
        raise OptionError(f"The run folder path {text!r} is empty or only spaces.", hint=_NAME_HINT)


def _resolve(path: Path) -> Path:
    """`path.resolve()`, with a link loop (which Python reports as RuntimeError) as a RunFolderError."""
    try:
        return path.resolve()
    except RuntimeError as exc:  # "Symlink loop from …"
        raise RunFolderError(f"{path} is a loop of symbolic links.", hint=_LINK_HINT) from exc


def private_dir(run_dir: Path, rel: str) -> Path:
    """The folder RUN/`rel` that a3d owns (staging): created when missing, refused when it or any folder on
    the way is a link or not a folder.

    Why: a3d deletes and renames entries in these folders; a link planted there would make it act elsewhere.

    Raises:
        RunFolderError: a component is a symbolic link or a file.
    """
    root = Path(run_dir).resolve()
    path = root
    for part in PurePosixPath(rel).parts:
        if part in ("..", "/"):
            raise RunFolderError(f"The path {rel!r} is not a plain path inside the run folder.", hint=_MANIFEST_HINT)
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            path.mkdir()
            continue
        if stat.S_ISLNK(mode):
            raise RunFolderError(
                f"{path} is a symbolic link; a3d writes only into real folders of the run.", hint=_LINK_HINT
            )
        if not stat.S_ISDIR(mode):
            raise RunFolderError(f"{path} is not a folder.", hint="Remove it, or start a new run folder.")
    return path


def check_links_inside(run_dir: Path, path: Path) -> None:
    """Refuse any symbolic link at or below `path` (a file or folder in RUN) that resolves outside RUN.

    Why: a stage reads its inputs through these paths (and digests them); a link such as
    `RUN/mvvideo/v0_f00.png -> ~/private.png` would pull a file from outside into the outputs.

    Raises:
        RunFolderError: naming the first link that leads out.
    """
    root = Path(run_dir).resolve()
    stack, seen = [Path(path)], set()
    while stack:  # a linked folder that stays inside RUN is walked too (once), since reads go through it
        p = stack.pop()
        if p.is_symlink():
            target = _resolve(p)
            if target != root and root not in target.parents:
                raise RunFolderError(f"{p} is a link to {target}, outside the run folder {root}.", hint=_LINK_HINT)
            stack.append(target)
        elif p.is_dir() and p.resolve() not in seen:
            seen.add(p.resolve())
            stack.extend(p.iterdir())
