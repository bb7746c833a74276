"""Where Triton keeps a3d's compiled kernels, and the one notice before they are first compiled.

Triton compiles a kernel the first time a process meets a new width, head size or precision, and keeps the
binary in its cache folder (`TRITON_CACHE_DIR`, else `$TRITON_HOME/.triton/cache`, else `~/.triton/cache`),
one sub-folder per compiled variant named after the kernel's files (`_geglu_kernel.json`, …). When none of
a3d's kernels is there, the first diffusion stage on this machine is about to spend tens of seconds
compiling: like gsplat's build (`gsplat_build`), that is said once, with the command that does it ahead
(`a3d info --warmup`, `a3d_cli.models.warmup`).

Examples:
    >>> kernels_cached({"TRITON_CACHE_DIR": "/nonexistent"})
    False
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path

from a3d_cli.kernels.notice import emit_notice

KERNEL_NAMES = ("_geglu_kernel", "_short_attention_kernel")
"""The Triton kernels of the diffusion stages (`geglu_gluon`, `short_attention_triton`)."""

COMPILE_NOTICE = (
    "a3d: compiling a3d's GPU kernels once for this machine (about 15-35 s per diffusion stage) into {path}; "
    "later runs load them at once. Compile them ahead with `a3d info --warmup`."
)


def triton_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder Triton compiles into, chosen as Triton chooses it."""
    env = os.environ if environ is None else environ
    if env.get("TRITON_CACHE_DIR"):
        return Path(env["TRITON_CACHE_DIR"])
    return Path(env.get("TRITON_HOME") or os.path.expanduser("~")) / ".triton" / "cache"


def use_triton_cache_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    """Set `TRITON_CACHE_DIR` to `triton_cache_dir()` unless the user set it; returns the folder.

    Why: `torch.compile` points an unset `TRITON_CACHE_DIR` at its own temporary folder the first time it
    compiles, and every Triton kernel of the process, a3d's included, then compiles there instead of where
    `a3d info --warmup` put them. Pinning the variable first keeps one cache for warm-up, eager and compiled
    runs. `accelerate` calls this before anything compiles.
    """
    env = os.environ if environ is None else environ
    path = triton_cache_dir(env)
    env.setdefault("TRITON_CACHE_DIR", str(path))
    return path


def kernels_cached(environ: Mapping[str, str] | None = None) -> bool:
    """True when Triton's cache holds a compiled variant of any of a3d's kernels.

    Any one is enough: the notice is for a machine's first use, not for each width or precision (a stage
    that meets a new one still compiles it, quietly).
    """
    folder = triton_cache_dir(environ)
    try:
        return any(next(folder.glob(f"*/{name}.json"), None) is not None for name in KERNEL_NAMES)
    except OSError:  # an unreadable cache: Triton will compile, and say why if it cannot write
        return False


_said = False  # whether this process has had its say (or was told to keep quiet)


def announce_compile_once() -> bool:
    """`announce_compile` at most once per process (the kernels call this before every Triton launch)."""
    global _said
    if _said:
        return False
    _said = True
    return announce_compile()


def quiet_compile_notice() -> None:
    """Keep the notice back in this process: for `a3d info --warmup`, whose own lines say that it compiles."""
    global _said
    _said = True


def announce_compile(emit: Callable[[str], None] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Say that the kernels are about to be compiled, when none of them is in Triton's cache.

    Args:
        emit: where the notice goes (default: a line on stderr).
        environ: the environment to read (default `os.environ`).

    Returns:
        True when the notice was emitted.
    """
    if kernels_cached(environ):
        return False
    emit_notice(COMPILE_NOTICE.format(path=triton_cache_dir(environ)), emit)
    return True


__all__ = [
    "COMPILE_NOTICE",
    "KERNEL_NAMES",
    "announce_compile",
    "announce_compile_once",
    "kernels_cached",
    "quiet_compile_notice",
    "triton_cache_dir",
    "use_triton_cache_dir",
]
