"""`to_device_async`: small host tensors reach the device without making the host wait for it."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.device import to_device_async


def test_off_cuda_it_is_an_ordinary_move():
    x = torch.arange(6.0).reshape(2, 3)
    out = to_device_async(x, "cpu")
    assert out.device.type == "cpu" and torch.equal(out, x)


@pytest.mark.gpu
def test_a_host_tensor_reaches_the_gpu_without_a_host_wait():
    """Under PyTorch's sync debug mode "error" a blocking copy raises; this copy does not, lands the same
    values, and the pinned buffer may be dropped at once (the allocator keeps it until the copy is done)."""
    busy = torch.randn(4096, 4096, device="cuda")
    for _ in range(8):  # keep the stream busy, so that a blocking copy would have to wait
        busy = busy @ busy / 64
    values = torch.arange(16.0).reshape(4, 4)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = to_device_async(values.clone(), "cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(RuntimeError):  # the check itself works: an ordinary copy is refused the same way
        torch.cuda.set_sync_debug_mode("error")
        try:
            values.to("cuda")
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert out.device.type == "cuda" and torch.equal(out.cpu(), values)
