"""What every benchmark script needs around a timed GPU region: wait for the GPU, read its peak memory, and
say whether the fused GEGLU kernel runs (a fusion gain measured without it says nothing about the kernel).

One copy for all of `benchmarks/` (each script used to carry its own). Every helper takes a device as a
`torch.device` or a string ("cuda", "cuda:1", "cpu") and does nothing (or returns None) off CUDA.
"""

from __future__ import annotations

import torch


def _is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def sync(device: str | torch.device) -> None:
    """Wait until the GPU has finished what was queued (before reading a wall clock)."""
    if _is_cuda(device):
        torch.cuda.synchronize(device)


def reset_peak(device: str | torch.device) -> None:
    """Start a peak-memory measurement: return cached blocks first, so the peak counts live tensors only."""
    if _is_cuda(device):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: str | torch.device) -> int | None:
    """Peak bytes allocated since the last `reset_peak` (None off CUDA)."""
    return int(torch.cuda.max_memory_allocated(device)) if _is_cuda(device) else None


def reserved_bytes(device: str | torch.device) -> int | None:
    """Bytes the caching allocator holds from the device now (None off CUDA): unlike `peak_bytes`, this counts
    the private pools of CUDA-graph recordings, whose replays allocate nothing."""
    return int(torch.cuda.memory_reserved(device)) if _is_cuda(device) else None


def gluon_geglu_runs(device: str | torch.device, dtype: torch.dtype = torch.bfloat16) -> bool | None:
    """Whether `a3d::geglu` takes the Gluon kernel on `device` in `dtype` (else the swapped-in fused GEGLUs run
    the reference, e.g. on a Triton whose experimental Gluon API changed, and a fusion gain reads ≈ 0); None
    where the code under test has no such probe (an older tree)."""
    try:
        from a3d_cli.kernels.geglu import geglu_supported
    except ImportError:
        return None
    if not _is_cuda(device):
        return False
    x = torch.zeros(16, 64, dtype=dtype, device=device)
    return geglu_supported(x, torch.zeros(128, 64, dtype=dtype, device=device), None)
