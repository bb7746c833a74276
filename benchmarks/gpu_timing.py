"""What every benchmark script needs around a timed GPU region: wait for the GPU, and read its peak memory.

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
