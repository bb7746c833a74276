"""Locks between a3d processes: one process per run folder at a time, and one writer at a time of a shared file.

`run_lock`: an advisory `fcntl.flock` on `RUN/.a3d.lock`: the kernel drops it when the process dies, so a
killed run never leaves a stale lock behind. Re-entrant within one process (`animate` runs several stages
under one lock). The lock file is opened without following links and must be a plain file: a run folder
received from someone else could otherwise make a3d truncate and overwrite any file the user can write.

`locked_file`: the same kind of lock on a file itself, waited for, for files several processes append to
(`a3d batch`'s `results.jsonl`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from a3d_cli.errors import RunFolderError, RunLockedError

LOCK_NAME = ".a3d.lock"
_held: dict[Path, tuple[int, int]] = {}  # resolved run dir -> (fd, depth)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the duration of the block.

    Raises:
        RunLockedError: another process holds it (the message names its pid).
        RunFolderError: `RUN/.a3d.lock` is a link or not a plain file.
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
    fd = _open_lock_file(key / LOCK_NAME)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLockedError(
            f"Another a3d process (pid {holder}) is working on {key}.",
            hint="Wait for it to finish, or use another run folder (-o).",
        ) from None
    except OSError as exc:  # e.g. ENOLCK: a network file system without a lock service
        os.close(fd)
        raise RunFolderError(
            f"Cannot lock the run folder {key} ({exc.strerror}).",
            hint="Use a run folder on a file system that supports locks (a local disk, or NFS with its lock service).",
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except BaseException:  # a full disk: give the lock back rather than hold it for this process's life
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    _held[key] = (fd, 1)
    try:
        yield
    finally:
        _held.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_lock_file(path: Path) -> int:
    """Open (or create) the lock file without following a link; refuse anything but a plain, unshared file."""
    hint = "Delete it (it holds only a process id); a3d makes a new one."
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunFolderError(f"The lock file {path} is a symbolic link; a3d does not follow it.", hint=hint) from None
        if exc.errno in (errno.EISDIR, errno.ENXIO, errno.EOPNOTSUPP):  # a folder, a socket, a device without driver
            raise RunFolderError(
                f"The lock file {path} is not a plain file (a folder, socket or device).",
                hint="Move it aside or delete it; a3d makes a new lock file.",
            ) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise RunFolderError(f"The lock file {path} is not a plain file of its own (a device, pipe or hard link).", hint=hint)
    return fd


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[int]:
    """Hold an exclusive `flock` on `path` itself (created when missing), waiting while another process holds it.

    The file is opened for reading and appending. Another holder may have replaced it while this process waited
    (an atomic rewrite renames a new file over it): the lock is then taken again on the file now at `path`, so
    every holder reads and writes the same file. On a file system without `flock` the block runs unlocked (and
    on NFS mounted `nolock` the kernel's lock is local to each machine); docs/batch.md says so. An interrupted
    wait (Ctrl-C) closes the descriptor, so no lock outlives this call.

    Yields:
        the open file descriptor (O_APPEND: each `os.write` lands at the end).
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            if _lock_current(fd, path):
                break
        except BaseException:  # Ctrl-C while waiting, an unreadable path: never keep the descriptor (or its lock)
            os.close(fd)
            raise
        os.close(fd)  # replaced while we waited: closing releases the lock on the old file
    try:
        yield fd
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _lock_current(fd: int, path: Path) -> bool:
    """Lock `fd` exclusively (waiting); whether it is still the file at `path` (False: replaced or removed
    while we waited). True without a lock where the file system has no `flock`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        return True  # no locks on this file system: as good as it gets
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:  # removed while we waited
        return False

