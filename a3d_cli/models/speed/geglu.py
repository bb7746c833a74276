"""diffusers' `GEGLU` with its projection and gating fused into one GEMM (`a3d_cli.kernels.geglu`).

Why: every feed-forward of SV3D's UNet starts with a GEGLU; computed as diffusers writes it (a linear layer
to 2N features, then value · gelu(gate)), the [M, 2N] projection is written and read back once more for
the gating (its share of the orbit stage is in docs/PERF.md). `FusedGEGLU` keeps the module, its `proj`
parameters and so the state dict as they are, and only computes the forward through
`a3d_cli.kernels.geglu.geglu`, which runs one Gluon (Triton) kernel on Hopper GPUs and diffusers' arithmetic
elsewhere.

Exactness: the same products and the exact gelu; the fused kernel applies gelu to the fp32 accumulator
instead of a bf16-rounded projection, so it is if anything closer to fp32. With gradients required the
module runs diffusers' own forward (the fused op has no backward; `orbit` samples without gradients).
"""

from __future__ import annotations

import torch
from diffusers.models.activations import GEGLU
from torch import Tensor, nn

from a3d_cli.kernels.geglu import geglu
from a3d_cli.models.speed.handles import SpeedHandle, swap_class


class FusedGEGLU(GEGLU):
    """`GEGLU` computed by `a3d_cli.kernels.geglu.geglu` (same parameters; see the module docstring)."""

    def forward(self, hidden_states: Tensor, *args: object, **kwargs: object) -> Tensor:
        """[..., dim_in] → [..., dim_out]."""
        if torch.is_grad_enabled() and (hidden_states.requires_grad or self.proj.weight.requires_grad):
            return super().forward(hidden_states, *args, **kwargs)
        return geglu(hidden_states, self.proj.weight, self.proj.bias)


def use_fused_geglu(module: nn.Module) -> SpeedHandle:
    """Turn every diffusers `GEGLU` in `module` into a `FusedGEGLU`, in place.

    The module objects and their parameters stay the same (only the class changes).

    Returns:
        a handle: `count` layers switched; `remove()` turns them back into `GEGLU`s.
    """
    return swap_class(module, GEGLU, FusedGEGLU, name="fused GEGLU")


__all__ = ["FusedGEGLU", "use_fused_geglu"]
