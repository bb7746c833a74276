"""One a3d process per run folder at a time.

An advisory `fcntl.flock` on `RUN/.a3d.lock`: the kernel drops it when the process dies, so a killed run
never leaves a stale lock behind. Re-entrant within one process (`animate` runs several stages under one lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from a3d_cli.errors import RunLockedError

LOCK_NAME = ".a3d.lock"
_held: dict[Path, tuple[int, int]] = {}  # resolved run dir -> (fd, depth)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the duration of the block.

    Raises:
        RunLockedError: another process holds it (the message names its pid).
    """
    key = Path(run_dir).resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLockedError(
            f"Another a3d process (pid {holder}) is working on {key}.",
            hint="Wait for it to finish, or use another run folder (-o).",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[key] = (fd, 1)
    try:
        yield
    finally:
        _held.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
