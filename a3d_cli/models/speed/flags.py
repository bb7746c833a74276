"""Process-wide CUDA backend flags: set them for a stage (`configure_cuda`), put them back after (`backend_flags_kept`).

A module of its own, importing torch only: every stage runs inside `backend_flags_kept`
(`a3d_cli.stages.base.run_stage`), and a stage with no diffusion network (reconstruct, export, …) must not
pay for importing diffusers, which the speed tricks of `a3d_cli.models.speed.acceleration` need.

Examples:
    >>> with backend_flags_kept():
    ...     handle = configure_cuda()  # TF32 until the block ends
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from a3d_cli.models.speed.handles import SpeedHandle


def is_cuda(device: str | torch.device) -> bool:
    """True for "cuda", "cuda:1", torch.device("cuda")."""
    return torch.device(device).type == "cuda"


def _tf32() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def _set_tf32(matmul: bool, convolutions: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = convolutions


def configure_cuda() -> SpeedHandle:
    """Process-wide CUDA backend flags: TF32 for fp32 matmuls and convolutions.

    cuDNN autotuning (`cudnn.benchmark`) is left as it is (off by default): every process would pay its
    algorithm search again for each convolution shape, seconds per diffusion stage, for a steady-state
    gain below the noise (docs/PERF.md, "Speed tricks").

    Returns:
        a handle whose `remove()` puts the two TF32 switches back as they were.
    """
    saved = _tf32()
    _set_tf32(True, True)
    return SpeedHandle("CUDA backend flags", 2, lambda: _set_tf32(*saved))


@contextlib.contextmanager
def backend_flags_kept() -> Iterator[None]:
    """Put the TF32 switches back as they were when the block exits.

    Why: `configure_cuda` sets process-wide flags. `a3d animate` runs every stage in one process, and a
    stage that turns TF32 on for its fp32 VAE decode must not change the fp32 arithmetic of the stages
    after it (the motion fit, the exports), nor that of tests comparing fp32 kernels. `run_stage` wraps
    every stage in this.
    """
    saved = _tf32()
    try:
        yield
    finally:
        _set_tf32(*saved)


__all__ = ["backend_flags_kept", "configure_cuda", "is_cuda"]
