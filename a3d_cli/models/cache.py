"""Built models kept for the life of a process, so that many jobs in one worker load each model once.

Why: a batch worker (`a3d batch`) animates asset after asset in one process. Loading MV-VDM reads several GB
of weights, and with `--compile` the first forward of every block shape compiles it; paying both once per
worker instead of once per asset is most of what batching buys.

The seam: a stage that builds a model asks `cached_model(key, build)`. With no cache active (one `a3d`
command, library use, tests) that is simply `build()`, so a single run holds no model longer than its
stage. A batch worker makes a `ModelCache` active around its jobs (`using_model_cache`), and then each key
is built once and the same object is handed out again.

What the key holds (`ModelKey`): the model's name, every weight file's path, size and modification time
(a replaced file is a new model), the dtype, the device, the compile flag (a compiled model is never handed
to a stage that asked for an eager one) and, for random-weight models, their seed.

Callers must treat a cached model as shared: no per-job state may be left on it. The MV-VDM stages set
their per-call state at each call (the SDS denoiser keeps only the latest prompt's text context) and
regional compilation is idempotent (`acceleration.compile_blocks`); the orbit stage applies its speed
settings, some of which add hooks, inside the build, and only the process-wide CUDA flags at each run.
Samplers, schedulers and CUDA graphs are made per call.

Examples:
    >>> cache = ModelCache()
    >>> key = ModelKey("toy", (), "fp32", "cpu", False)
    >>> with using_model_cache(cache):
    ...     a = cached_model(key, lambda: object())
    ...     b = cached_model(key, lambda: object())
    >>> a is b, cache.builds["toy"]
    (True, 1)
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ModelKey:
    """What makes two requests for a model the same model.

    Attributes:
        name: which model ("mvvdm", "mvvdm-sds", …).
        files: (path, size, mtime_ns) of every weight file or folder; () for random weights.
        dtype: precision, e.g. "torch.float16".
        device: resolved device string.
        compile: whether the stage compiles the model's blocks.
        seed: seed of random weights (None for loaded weights).
    """

    name: str
    files: tuple[tuple[str, int, int], ...]
    dtype: str
    device: str
    compile: bool
    seed: int | None = None


def model_key(
    name: str,
    weights: Mapping[str, Path] | None,
    dtype: Any,
    device: str,
    compile: bool,  # noqa: A002 - the option's name
    seed: int | None = None,
) -> ModelKey:
    """The key of a model built from `weights` (registry name → path; None for random weights).

    Args:
        seed: only used when `weights` is None (random weights depend on it; loaded ones do not).
    """
    files: list[tuple[str, int, int]] = []
    for _, path in sorted((weights or {}).items()):
        resolved = Path(path).resolve()
        st = os.stat(resolved)
        files.append((str(resolved), st.st_size, st.st_mtime_ns))
    return ModelKey(name, tuple(files), str(dtype), device, bool(compile), seed if weights is None else None)


def _free_memory() -> None:
    """Return dropped models' memory now (Python's cycles, then the CUDA allocator's cache)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelCache:
    """Models by `ModelKey`, each built once; `builds` counts the builds per model name.

    One model per name is kept: a job that asks for the same model with other settings (dtype, compile,
    weights) drops the cached one before building its own, so a manifest that mixes settings costs rebuilds,
    never several copies of a multi-GB network in one worker.

    Args:
        keep: False counts the builds but keeps nothing, so every stage frees its model when it ends, as a
            single `a3d animate` does (for GPUs where the kept models do not fit together).
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._models: dict[ModelKey, Any] = {}
        self.builds: Counter[str] = Counter()

    def get(self, key: ModelKey, build: Callable[[], T]) -> T:
        """The model for `key`, built with `build()` the first time it is asked for (every time without `keep`)."""
        if not self.keep:
            self.builds[key.name] += 1
            return build()
        if key not in self._models:
            stale = [other for other in self._models if other.name == key.name]
            for other in stale:
                del self._models[other]
            if stale:
                _free_memory()
            self._models[key] = build()
            self.builds[key.name] += 1
        return self._models[key]

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> None:
        """Drop every model (their memory is freed once no stage holds them)."""
        self._models.clear()


_ACTIVE: contextvars.ContextVar[ModelCache | None] = contextvars.ContextVar("a3d_model_cache", default=None)


@contextlib.contextmanager
def using_model_cache(cache: ModelCache) -> Iterator[ModelCache]:
    """Make `cache` the one `cached_model` uses inside the block."""
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def cached_model(key: ModelKey, build: Callable[[], T]) -> T:
    """The one way stages obtain a model: from the active cache, or freshly built when none is active."""
    cache = _ACTIVE.get()
    return build() if cache is None else cache.get(key, build)


__all__ = ["ModelCache", "ModelKey", "cached_model", "model_key", "using_model_cache"]
