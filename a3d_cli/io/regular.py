"""Open a file for reading only when it is a regular file, checked on the opened descriptor, never blocking.

Why: checking a path (`is_file`) and then opening it leaves a gap in which a named pipe can be swapped in,
and opening or reading a pipe with no writer waits forever. Opening without blocking and checking what was
opened closes that gap. a3d reads every file an asset names (`a3d_cli.mesh.references`) and every external
input it fingerprints or copies this way.

Examples:
    >>> data = read_regular(Path("asset/tex/albedo.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from a3d_cli.errors import InputError


class NotRegularFileError(InputError, ValueError):
    """A file that had to be a regular file is a folder, named pipe, socket or device. An `InputError` (one
    clear error where nothing else handles it) and a `ValueError` (what trimesh's resolvers raise for a
    name they refuse)."""


def open_regular(path: Path) -> BinaryIO:
    """Open a file an asset names for reading in binary, refusing anything but a regular file.

    The path is resolved here (links judged by where they finally lead; callers check containment on the same
    resolved path), then opened with `O_NOFOLLOW` (a link swapped in after the check is refused) and
    `O_NONBLOCK` (opening a named pipe or device returns at once instead of waiting for a writer). The opened
    descriptor is checked with `fstat`, so what is read is what was checked.

    Raises:
        FileNotFoundError: the file does not exist.
        NotRegularFileError: it is not a regular file (a directory, named pipe, socket or device).
        OSError: it cannot be opened (permissions, a link put in its place).
    """
    resolved = Path(path).resolve()
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(resolved, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(
                f"{Path(path).name!r} is not a regular file", hint="Replace it with the plain file it should be."
            )
        os.set_blocking(fd, True)  # a regular file ignores the flag; cleared so the file object reads normally
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path) -> bytes:
    """All bytes of a file an asset names, through `open_regular` (same errors)."""
    with open_regular(path) as f:
        return f.read()


def copy_regular(path: Path, dest: Path) -> None:
    """Copy an input file to `dest`, reading it only as a regular file (`open_regular`: a named pipe swapped
    in since the input was checked is refused, not read forever).

    Raises:
        InputError: the file cannot be read or is not a regular file.
    """
    try:
        with open_regular(path) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read {path.name} ({exc}).", hint="Check the file is a plain, readable file.") from exc
