"""PyTorch implementation of the GEGLU feed-forward input layer (the reference twin of `geglu_gluon`).

`geglu_ref(x, weight, bias)` is exactly what diffusers' `GEGLU` computes: one linear layer to 2N features,
split into a value half and a gate half, value × gelu(gate) with the exact (erf) gelu.
"""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def geglu_ref(
    x: Tensor,  # [M, K]
    weight: Tensor,  # [2N, K] (nn.Linear layout: value rows first, then gate rows)
    bias: Tensor | None,  # [2N]
) -> Tensor:
    """value · gelu(gate) of `F.linear(x, weight, bias)` split in two along the features.

    Args:
        x: [M, K] inputs.
        weight: [2N, K], the value projection's rows then the gate projection's.
        bias: [2N] or None.

    Returns:
        [M, N] in x's dtype.
    """
    if weight.ndim != 2 or weight.shape[0] % 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight must be [2N, K={x.shape[-1]}], got {list(weight.shape)}")
    value, gate = F.linear(x, weight, bias).chunk(2, dim=-1)
    return value * F.gelu(gate)
