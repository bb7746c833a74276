"""`a3d_cli.models.activation_memory`: off CUDA there is no device budget, and both figures say so."""

from __future__ import annotations

import torch

from a3d_cli.models.activation_memory import held_after_forward, spare_bytes


def test_the_cpu_has_no_device_budget():
    x = torch.ones(3, requires_grad=True)
    assert held_after_forward(lambda t: (t * 2).sum(), x) is None
    assert spare_bytes("cpu") is None
