"""The finiteness guard: half precision must never hand on NaN or infinity silently.

fp16 keeps 5 exponent bits: any activation above 65504 becomes infinity, and a GroupNorm or softmax over
it turns into NaN, which then spreads through every later step. bf16 and fp32 share fp32's range. Rather
than checking every step (a host synchronisation per step), the samplers check their result once: NaN and
infinity propagate, so a bad step anywhere shows in the final latents. What happens then is a choice made
here once: a `PrecisionError` (exit code 2) naming the precision to use instead, and no output written. It
is not retried automatically in another precision, because a silent retry doubles the run time without
saying so and hides a setting the user should change for the next thousand assets.

Examples:
    >>> check_finite(latents, "MV-VDM latents", torch.float16)   # raises PrecisionError on NaN/inf
"""

from __future__ import annotations

import torch
from torch import Tensor

from a3d_cli.errors import PrecisionError

DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}


def dtype_name(dtype: torch.dtype) -> str:
    """"fp16", "bf16", "fp32" … for messages and metrics."""
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def count_nonfinite(x: Tensor) -> int:
    """How many values of `x` are NaN or ±inf (one host synchronisation)."""
    return int((~torch.isfinite(x)).sum())


def check_finite(x: Tensor, what: str, dtype: torch.dtype) -> None:
    """Raise `PrecisionError` when `x` holds NaN or infinite values.

    Args:
        x: a result of a network run in `dtype` (latents, frames).
        what: what `x` is, for the message ("SV3D latents").
        dtype: the precision the network ran in (chooses the hint).

    Raises:
        PrecisionError: exit code 2, with a hint naming the `--dtype` to pass.
    """
    bad = count_nonfinite(x)
    if not bad:
        return
    name = dtype_name(dtype)
    message = f"{what} hold {bad} NaN or infinite values of {x.numel()} (the networks ran in {name})."
    if dtype == torch.float16:
        hint = "fp16 overflowed. Run again with --dtype bf16 (same speed on recent GPUs, fp32's range) or --dtype fp32."
    elif dtype == torch.bfloat16:
        hint = "Run again with --dtype fp32; if that fails too, re-fetch the weights (`a3d weights fetch`)."
    else:
        hint = "The weights or the input may be damaged: re-fetch the weights (`a3d weights fetch`) and check the input."
    raise PrecisionError(message, hint=hint)
