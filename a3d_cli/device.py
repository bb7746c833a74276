"""Resolve the `--device` option once, before any heavy work (pre-flight check), and move small host
tensors to the device without stalling it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from a3d_cli.errors import DeviceError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str) -> str:
    """Turn `auto|cpu|cuda|cuda:N` into a concrete torch device string.

    Raises:
        DeviceError: the spec is malformed or names a GPU this machine does not have.
    """
    spec = spec.strip().lower()
    if not DEVICE_PATTERN.match(spec):
        raise DeviceError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N.", hint="Use --device auto.")
    if spec == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if spec == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise DeviceError(f"--device {spec} was asked for, but this machine has no usable CUDA GPU.", hint="Use --device cpu (or auto).")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"--device {spec} was asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s).",
            hint="Use --device cuda:0.",
        )
    return spec


def to_device_async(tensor: Tensor, device: torch.device | str) -> Tensor:
    """`tensor` on `device`; a CPU tensor headed for CUDA is copied from pinned memory without waiting.

    Why: PyTorch's ordinary `.to("cuda")` of a CPU tensor blocks the host until everything queued before it
    has run, so the GPU drains and then idles while Python launches the next kernels. From pinned memory the
    copy is queued like a kernel; the caching host allocator keeps the pinned buffer until the copy is done.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def torch_dtype(name: str, device: str, cuda_auto: str = "fp16"):  # noqa: ANN201 - a torch.dtype (lazy import)
    """The torch dtype for a `--dtype` value on `device`.

    Each model picks its own CUDA default ("auto" = `cuda_auto` on CUDA); off CUDA "auto" is fp32, since
    half precision on a CPU is slow and loses accuracy for nothing.

    Args:
        name: "auto", "fp32", "fp16" or "bf16" (validated by the stage options).
        device: a resolved device string, e.g. "cuda:0" or "cpu".
        cuda_auto: what "auto" means on CUDA: "fp16", "bf16", or "bf16-if-supported" (else fp16).
    """
    import torch

    if name == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        if cuda_auto == "bf16-if-supported":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        name = cuda_auto
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def cpu_thread_count(cpus: int, load: float, env: str | None) -> int | None:
    """How many torch threads a CPU run should use, or None to leave torch's own choice.

    An explicit OMP_NUM_THREADS (`env`) always wins (torch reads it itself). Otherwise the threads are the
    CPUs this process may run on minus the ones already busy (the 1-minute load average, rounded): threads
    that outnumber free cores slow every process on the machine down, far more than they help.

    Args:
        cpus: CPUs available to this process (`os.sched_getaffinity`).
        load: the 1-minute load average.
        env: the OMP_NUM_THREADS value, or None when unset.
    """
    if env is not None and env.strip():
        return None
    return max(1, min(cpus, cpus - int(round(load))))


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity (what `taskset` or a Slurm allocation grants), not
    every core of the machine."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_cpu_threads() -> int | None:
    """Apply `cpu_thread_count` to torch for this process; returns the count set (None: left alone)."""
    import os

    import torch

    cpus = available_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    count = cpu_thread_count(cpus, load, os.environ.get("OMP_NUM_THREADS"))
    if count is not None and count != torch.get_num_threads():
        torch.set_num_threads(count)
    return count
