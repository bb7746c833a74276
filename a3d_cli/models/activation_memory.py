"""What a pass with gradients holds on the GPU, and how much more this process may take: the two figures a
stage needs to choose between keeping activations for the backward pass and recomputing them.

`sds` asks this of MV-VDM's VAE encoder (`a3d_cli.gaussians.motion_refine`): keeping the encoder's activations
saves one forward pass per step, and costs hundreds of MiB per 256² render: too much for small GPUs, nothing
for large ones. The figures come from PyTorch's caching allocator, so they hold for whatever the
network and precision are; on the CPU there is no such budget and both functions say so with None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

SPARE_FRACTION = 0.9
"""Share of the spare device memory a stage may plan to fill (allocator rounding, fragmentation)."""
RESERVE_FRACTION = 0.05
"""Share of the device's total memory left untouched for other processes and library workspaces."""


def held_after_forward(fn: Callable[..., Tensor], *inputs: Tensor) -> int | None:
    """Bytes the CUDA allocator holds after `fn(*inputs)` with gradients on: the output and everything
    autograd saved for its backward (the inputs and parameters, which exist already, are not counted).

    Returns None when the inputs are not on a CUDA device.
    """
    import torch

    if not inputs or inputs[0].device.type != "cuda":
        return None
    device = inputs[0].device
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    with torch.enable_grad():
        out = fn(*inputs)
        torch.cuda.synchronize(device)
        held = torch.cuda.memory_allocated(device) - before
    del out
    return max(int(held), 0)


def spare_bytes(device: str) -> int | None:
    """Bytes this process could still add on top of its peak so far without running the device out.

    The device's free memory plus what the allocator has reserved beyond this process's peak, less a reserve
    for others (`RESERVE_FRACTION` of the total), times `SPARE_FRACTION`. The peak is the allocator's running
    maximum (stages reset it when they start), so the figure stays safe for a repeat of the work done so far.
    None off CUDA.
    """
    import torch

    if not device.startswith("cuda"):
        return None
    free, total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device)
    peak = torch.cuda.max_memory_allocated(device)
    spare = free + max(reserved - peak, 0) - RESERVE_FRACTION * total
    return max(int(SPARE_FRACTION * spare), 0)


__all__ = ["RESERVE_FRACTION", "SPARE_FRACTION", "held_after_forward", "spare_bytes"]
