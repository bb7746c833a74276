"""An attention processor for diffusers' `Attention` that skips work the fused SDPA kernels waste.

Why: profiling the SV3D UNet and the SD VAE (`benchmarks/profile_kernels.py`, figures in docs/PERF.md)
showed three shapes where `F.scaled_dot_product_attention` spends far more than the arithmetic needs:

1. **Cross-attention to a single token** (SV3D attends to one CLIP image embedding in all its spatial and
   temporal blocks). Softmax over one key is exactly 1, so the output is `to_out(to_v(context))` for every
   query: the query projection (a full-width GEMM over every pixel of every frame) and the attention
   kernel are pure waste. cuDNN attention does not even accept that shape.
2. **Short sequences** (SVD's temporal attention runs over 21 frames for each of ~100k pixels): the flash
   kernels pad each 21-long sequence to their 128-wide tiles. On CUDA `a3d_cli.kernels.short_attention` attends
   in one Triton kernel that reads q, k, v where the projections wrote them and keeps the scores in
   registers; calls it cannot take (the CPU, fp32, calls that need gradients) go to PyTorch's SDPA.
3. **Very wide heads** (the SD VAE's mid-block attention has one head of 512 channels): no flash kernel
   takes head dimensions above 256, so PyTorch falls back to the memory-efficient kernel, whose backward
   (needed by `a3d sds`, which differentiates through the VAE encoder) is slow; at 1024 tokens the explicit
   product is small and runs on the tensor cores.

Everything else goes through the same steps as diffusers' `AttnProcessor2_0`, so outputs agree with it to
rounding (tests compare the two on random inputs). Cases outside what this processor handles (spatial norm,
q/k norms, attention masks, IP-adapter inputs) are handed to `AttnProcessor2_0` unchanged.

Use the diffusers way: `model.set_attn_processor(ShortcutAttnProcessor())`, or `use_shortcut_attention(model)`
which leaves custom processors (MV-VDM's multi-view and IP-adapter ones) in place and returns a handle that
puts the previous processors back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
from torch import Tensor, nn

from a3d_cli.kernels.attention_ref import explicit_attention, merge_heads, split_heads
from a3d_cli.kernels.short_attention import short_attention, short_attention_supported
from a3d_cli.models.speed.handles import SpeedHandle

SHORT_SEQUENCE = 32
"""Sequences at most this long (queries and keys) count as short: SVD's 21 frames, AnimateDiff's 16."""

WIDE_HEAD = 256
"""Heads wider than this have no flash kernel (the SD VAE's single 512-wide head)."""


class ShortcutAttnProcessor:
    """`AttnProcessor2_0` with exact shortcuts for one-token contexts, short sequences and wide heads.

    Args:
        short_sequence: sequences (queries and keys) at most this long go to the fused short-sequence kernel
            where it takes the tensors.
        wide_head: heads wider than this are attended with explicit matrix products (no flash kernel
            supports them).
    """

    def __init__(self, short_sequence: int = SHORT_SEQUENCE, wide_head: int = WIDE_HEAD) -> None:
        self.short_sequence = short_sequence
        self.wide_head = wide_head
        self._fallback = AttnProcessor2_0()

    @staticmethod
    def handles(attn: Attention, attention_mask: Tensor | None, args: tuple, kwargs: dict) -> bool:
        """Whether this processor computes the call itself (otherwise `AttnProcessor2_0` does)."""
        return (
            attention_mask is None
            and not args
            and not kwargs
            and attn.spatial_norm is None
            and getattr(attn, "norm_q", None) is None
            and getattr(attn, "norm_k", None) is None
        )

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> Tensor:
        """Attention of `hidden_states` ([B, N, C] tokens or [B, C, H, W] image) over itself or over
        `encoder_hidden_states` [B, M, C_ctx]; returns the same shape as `hidden_states`."""
        if not self.handles(attn, attention_mask, args, kwargs):
            return self._fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        image_shape = hidden_states.shape if hidden_states.ndim == 4 else None
        x = hidden_states.flatten(2).transpose(1, 2) if image_shape is not None else hidden_states  # [B, N, C]
        if attn.group_norm is not None:
            x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
        if encoder_hidden_states is None:
            context = x
        else:
            context = (
                attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
            )

        if encoder_hidden_states is not None and context.shape[1] == 1:
            # one key: its softmax weight is exactly 1, so every query receives that key's value
            out = attn.to_out[1](attn.to_out[0](attn.to_v(context)))  # [B, 1, C_out]
            out = out.expand(-1, x.shape[1], -1)
        else:
            out = attn.to_out[1](attn.to_out[0](self._attend(attn, x, context)))  # [B, N, C_out]

        if image_shape is not None:
            out = out.transpose(1, 2).reshape(image_shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _attend(self, attn: Attention, x: Tensor, context: Tensor) -> Tensor:
        """Multi-head softmax(QKᵀ/√d)V of queries from `x` [B, N, C] over `context` [B, M, C] → [B, N, inner]."""
        q, k, v = attn.to_q(x), attn.to_k(context), attn.to_v(context)  # [B, L, H·d], [B, M, H·d] ×2
        return attend_tokens(q, k, v, attn.heads, short_sequence=self.short_sequence, wide_head=self.wide_head)


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None, wide_head: int = WIDE_HEAD) -> Tensor:
    """Multi-head softmax attention [B, H, N, d] × [B, H, M, d] × [B, H, M, d_v] → [B, H, N, d_v].

    Heads wider than `wide_head` are attended with explicit products (no flash kernel takes them);
    everything else goes to `F.scaled_dot_product_attention`.

    Args:
        scale: the logit scale; None = 1/√d, as SDPA.
    """
    if q.shape[-1] > wide_head:
        return explicit_attention(q, k, v, scale)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def attend_tokens(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    heads: int,
    scale: float | None = None,
    short_sequence: int = SHORT_SEQUENCE,
    wide_head: int = WIDE_HEAD,
) -> Tensor:
    """`attend` on the projections' token layout: [B, L, H·d] × [B, M, H·d] × [B, M, H·d_v] → [B, L, H·d_v].

    Sequences no longer than `short_sequence` go to the fused kernel of `a3d_cli.kernels.short_attention` where it
    takes the tensors (CUDA, bf16/fp16), eagerly and compiled alike: it reads the heads in place, so no
    transposes are written (it has no backward, so calls that need gradients take `attend`); everything
    else is split into heads and routed by `attend`.
    """
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    short = max(q.shape[1], k.shape[1]) <= short_sequence
    if short and not needs_grad and short_attention_supported(q, k, v, heads):
        return short_attention(q, k, v, heads, scale)
    out = attend(*(split_heads(t, heads) for t in (q, k, v)), scale=scale, wide_head=wide_head)
    return merge_heads(out).to(q.dtype)


def replace_attention_processors(
    model: nn.Module, replaced: tuple[type, ...], processor: object, name: str = "attention processor"
) -> SpeedHandle:
    """Give `processor` to every diffusers `Attention` layer of `model` whose processor is one of `replaced`.

    Returns:
        a handle: `count` layers switched; `remove()` gives each its previous processor back.
    """
    previous = [(m, m.processor) for m in model.modules() if isinstance(m, Attention) and isinstance(m.processor, replaced)]
    for module, _ in previous:
        module.set_processor(processor)

    def undo() -> None:
        for module, old in previous:
            module.set_processor(old)

    return SpeedHandle(name, len(previous), undo if previous else None)


def use_shortcut_attention(model: nn.Module, processor: ShortcutAttnProcessor | None = None) -> SpeedHandle:
    """Give every attention layer of `model` that runs diffusers' default processor a `ShortcutAttnProcessor`.

    Custom processors (MV-VDM's multi-view attention, IP-adapter layers) are left as they are.

    Returns:
        a handle: `count` layers switched; `remove()` puts diffusers' processors back.
    """
    return replace_attention_processors(
        model, (AttnProcessor2_0, AttnProcessor), processor or ShortcutAttnProcessor(), name="shortcut attention"
    )


__all__ = [
    "SHORT_SEQUENCE",
    "WIDE_HEAD",
    "ShortcutAttnProcessor",
    "attend",
    "attend_tokens",
    "explicit_attention",
    "replace_attention_processors",
    "use_shortcut_attention",
]
