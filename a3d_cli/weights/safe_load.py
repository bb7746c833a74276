"""Reading weight files safely: safetensors, or pickles through `torch.load(weights_only=True)` only.

Why one module: every loader of a3d (MV-VDM's UNet, motion modules and IP-Adapter, SV3D) must refuse a
pickle that would run code, fall back cleanly for old (non-zip) `.pt` files that cannot be memory-mapped,
and turn every way a damaged or foreign file fails into one `CheckpointError` a user can act on (exit 2),
never a traceback.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from a3d_cli.errors import CheckpointError

REFUSED_PICKLE = (
    "a3d refuses pickles that run code: {path} holds Python objects other than tensors and plain containers, "
    "and unpickling them could execute code."
)


def read_errors() -> tuple[type[BaseException], ...]:
    """The exception types a damaged, truncated or foreign weights file raises while being read."""
    types: list[type[BaseException]] = [pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError]
    try:
        from safetensors import SafetensorError

        types.append(SafetensorError)
    except ImportError:  # pragma: no cover - safetensors is a dependency
        pass
    return tuple(types)


def load_pickled_weights(path: Path) -> Any:
    """`torch.load(path, weights_only=True)`, memory-mapped when the file allows it.

    Legacy (non-zip) `.pt` files cannot be memory-mapped; they are read whole, still with
    `weights_only=True`.
    """
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


def is_refused_pickle(exc: BaseException) -> bool:
    """Whether `exc` is torch's safe unpickler refusing an object that could run code (not mere damage).

    torch reports both as "Weights only load failed"; a refusal names the blocked GLOBAL (a callable the
    pickle asked to import), damage names a bad load key or an early end.
    """
    return isinstance(exc, pickle.UnpicklingError) and "global" in str(exc).lower()


def refused_pickle_error(what: str | Path) -> CheckpointError:
    """The error for a pickle the safe unpickler refused (`what`: the file, or which files)."""
    return CheckpointError(
        REFUSED_PICKLE.format(path=what),
        hint="Use the official file (`a3d weights list` names it), or a .safetensors copy of the weights.",
    )


def weights_error(path: Path, exc: BaseException, what: str, hint: str) -> CheckpointError:
    """The `CheckpointError` for a weights file that failed to read.

    Args:
        path: the file.
        exc: what reading it raised (one of `read_errors()`).
        what: the kind of file, for the message ("a weights file", "an IP-Adapter file").
        hint: what to do (usually the `a3d weights fetch` command).
    """
    if is_refused_pickle(exc):
        return refused_pickle_error(path)
    first = (str(exc).splitlines() or [""])[0][:200]
    return CheckpointError(f"{path} could not be read as {what} ({type(exc).__name__}: {first}).", hint=hint)
