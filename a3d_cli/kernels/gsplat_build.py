"""Where gsplat's CUDA extension is built and kept, and the one notice before it is built.

gsplat ships its CUDA rasterizer as sources that PyTorch compiles the first time the extension is
imported on a GPU machine (`torch.utils.cpp_extension`; its duration is in docs/PERF.md), into
`TORCH_EXTENSIONS_DIR`. Without a choice of ours that is `~/.cache/torch_extensions` or a temporary
folder, and a first `a3d animate` silently pauses while it builds. So, before gsplat is first imported:

- `TORCH_EXTENSIONS_DIR` is set to `$XDG_CACHE_HOME/a3d/torch_extensions/<python>_<cuda>_torch<version>`
  (XDG_CACHE_HOME defaulting to ~/.cache) unless the user set it: the build survives reboots, and a new
  Python, CUDA or PyTorch gets a fresh folder instead of a stale library;
- when no build is there yet, one line on stderr says that the build starts, roughly how long it takes,
  where it goes, and that `a3d info --warmup` does it ahead of time.

Examples:
    >>> extensions_dir({"TORCH_EXTENSIONS_DIR": "/opt/ext"})
    PosixPath('/opt/ext')
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

from a3d_cli.kernels.notice import emit_notice

ENV = "TORCH_EXTENSIONS_DIR"
"""PyTorch's variable for where JIT-compiled extensions are built."""
EXTENSION_NAME = "gsplat_cuda"
"""The name gsplat builds its extension under (its `_backend` module)."""


def _version_tag() -> str:
    """`py311_cu130_torch2.11.0`: one folder per Python, CUDA and PyTorch (extensions are ABI-bound to all three)."""
    import torch

    cuda = "cpu" if torch.version.cuda is None else "cu" + torch.version.cuda.replace(".", "")
    torch_version = torch.__version__.split("+")[0]
    return f"py{sys.version_info.major}{sys.version_info.minor}_{cuda}_torch{torch_version}"


def extensions_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """The extension folder: the user's `TORCH_EXTENSIONS_DIR` if set, else a3d's versioned cache folder."""
    env = os.environ if environ is None else environ
    if env.get(ENV):
        return Path(env[ENV])
    cache = Path(env.get("XDG_CACHE_HOME") or Path(env.get("HOME") or Path.home()) / ".cache")
    return cache / "a3d" / "torch_extensions" / _version_tag()


def use_extensions_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """Set `TORCH_EXTENSIONS_DIR` to `extensions_dir()` unless the user set it; returns the folder."""
    env = os.environ if environ is None else environ
    path = extensions_dir(env)
    env.setdefault(ENV, str(path))
    return path


def prebuilt_gsplat() -> bool:
    """True when gsplat was installed with its extension compiled (nothing to build at run time)."""
    import importlib.util

    try:
        return importlib.util.find_spec("gsplat.csrc") is not None
    except (ImportError, ValueError):
        return False


def build_needed(environ: MutableMapping[str, str] | None = None) -> bool:
    """True when importing gsplat's extension will compile it (no pre-built one, no finished build)."""
    if prebuilt_gsplat():
        return False
    folder = extensions_dir(environ) / EXTENSION_NAME
    return not any((folder / f"{EXTENSION_NAME}{ext}").exists() for ext in (".so", ".lib", ".pyd"))


BUILD_NOTICE = (
    "a3d: building gsplat's CUDA rasterizer once for this machine (about 1 minute, up to 2 on slow disks) "
    "into {path}; later runs load it at once. Pre-build it with `a3d info --warmup`."
)


def announce_build(
    emit: Callable[[str], None] | None = None, environ: MutableMapping[str, str] | None = None
) -> bool:
    """Choose the extension folder and, when a build is about to happen, say so once.

    Args:
        emit: where the notice goes (default: a line on stderr).
        environ: the environment to read and set (default `os.environ`).

    Returns:
        True when a build is needed (the notice was emitted).
    """
    path = use_extensions_dir(environ)
    if not build_needed(environ):
        return False
    emit_notice(BUILD_NOTICE.format(path=path / EXTENSION_NAME), emit)
    return True


__all__ = [
    "BUILD_NOTICE",
    "ENV",
    "EXTENSION_NAME",
    "announce_build",
    "build_needed",
    "extensions_dir",
    "prebuilt_gsplat",
    "use_extensions_dir",
]
