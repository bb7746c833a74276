"""Variants of the speed tricks that product code does not carry: built here, for A/B runs only.

The product (`a3d_cli.models.speed`) keeps one path per trick. A benchmark that wants to time an alternative
(another torch.compile mode, short attention sequences left to SDPA or as explicit products) builds it from
the product's pieces with the helpers below, so the comparison stays possible without a switch in the product.

Examples:
    >>> proc = SdpaShortAttnProcessor()  # doctest: +SKIP
    >>> compile_with_mode([unet], "max-autotune-no-cudagraphs")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from a3d_cli.kernels.attention_ref import explicit_attention, merge_heads, split_heads
from a3d_cli.models.speed.acceleration import compile_blocks, repeated_blocks
from a3d_cli.models.speed.attention import ShortcutAttnProcessor, attend

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
"""torch.compile modes the benchmarks offer (the product compiles with "default")."""

SHORT_PAD = 8
"""The pre-kernel route padded short sequences to a multiple of this: a batched [21 × 64]·[64 × 21] product
writes rows of 21 bf16 values, which are not 16-byte aligned, and cuBLAS then picks a slow kernel."""


def compile_with_mode(networks: Iterable[nn.Module | None], mode: str) -> dict[str, int]:
    """Regional compilation of `networks` as `accelerate(compile=True)` does, but in another compile mode.

    Returns:
        class name → blocks compiled.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    counts: dict[str, int] = {}
    for net in networks:
        if net is None:
            continue
        handle = compile_blocks(net)  # the product's block choice and dynamo limits
        for name, n in handle.classes.items():
            counts[name] = counts.get(name, 0) + n
        if mode != "default":  # compile the same blocks again in the other mode (replaces the compiled forward)
            for _, block in repeated_blocks(net):
                block.compile(mode=mode, dynamic=False)
    return counts


class MathShortAttnProcessor(ShortcutAttnProcessor):
    """`ShortcutAttnProcessor` without the fused short-sequence kernel: short sequences are explicit products
    padded to `SHORT_PAD` while compiling (inductor fuses them) and SDPA eagerly (the route before the kernel)."""

    def _attend(self, attn, x: Tensor, context: Tensor) -> Tensor:  # noqa: ANN001
        q, k, v = (split_heads(t, attn.heads) for t in (attn.to_q(x), attn.to_k(context), attn.to_v(context)))
        if max(q.shape[-2], k.shape[-2]) <= self.short_sequence and torch.compiler.is_compiling():
            return merge_heads(explicit_attention(q, k, v, pad_to=SHORT_PAD)).to(x.dtype)
        return merge_heads(attend(q, k, v, wide_head=self.wide_head)).to(x.dtype)


class SdpaShortAttnProcessor(ShortcutAttnProcessor):
    """`ShortcutAttnProcessor` whose short sequences go to PyTorch's SDPA (isolates the other shortcuts)."""

    def _attend(self, attn, x: Tensor, context: Tensor) -> Tensor:  # noqa: ANN001
        q, k, v = (split_heads(t, attn.heads) for t in (attn.to_q(x), attn.to_k(context), attn.to_v(context)))
        return merge_heads(attend(q, k, v, wide_head=self.wide_head)).to(x.dtype)


__all__ = ["COMPILE_MODES", "SHORT_PAD", "MathShortAttnProcessor", "SdpaShortAttnProcessor", "compile_with_mode"]
