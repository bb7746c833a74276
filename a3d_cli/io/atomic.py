"""Atomic writes: a file is either the old one or the complete new one, never half of either.

Why: studios run a3d over thousands of assets and kill jobs; a killed write must not leave a file that a
later stage (or a splat viewer) reads as valid.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename.

    The temporary file lives in the same folder, so the rename never crosses file systems. On any
    exception the temporary file is removed and `path` is left as it was. The finished file gets the mode
    a plainly created file would (0666 less the umask), not the private 0600 of a temporary file, so render
    farms and web servers where other users read the outputs work as they do for any other tool.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real extension last: writers such as imageio pick the format from it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_PROBE:  # elsewhere: set and restore, one thread at a time (`save_pngs` writes on several)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_PROBE = threading.Lock()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
