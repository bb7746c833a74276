"""MV-VDM's attention processors (diffusers `Attention` processors, attention through PyTorch SDPA).

Three kinds, as in Animate3D's released model:

* `MVDreamI2VAttnProcessor` on every spatial self-attention (``…attentions.N.transformer_blocks.0.attn1``):
  MVDream's multi-view attention (the tokens of all views of one frame attend to each other) plus the
  MV2V-Adapter's I2V branch (every frame also queries the clean frame 0 of its video through `to_q_i2v`;
  the result passes `to_out_i2v` and is summed before the shared `to_out`).
* diffusers' `IPAdapterAttnProcessor2_0` on every spatial cross-attention (text + IP-Adapter image tokens).
* `SpatioTemporalAttnProcessor` on both attentions of every motion module: AnimateDiff's temporal
  attention (pretrained `to_q/k/v/out`, sinusoidal frame encoding) and a spatial branch over all views ×
  pixels of a frame (`to_{q,k,v,out}_sp`, 2D sine encoding), blended as σ(μ)·spatial + (1 − σ(μ))·temporal.

Processors see one flattened batch, ``rows = B·V·F`` (spatial) or ``B·V·h·w`` (motion modules), and cannot
tell B, V, F, h and w apart from it. `VideoLayout` carries those numbers: the UNet owns one instance,
hands the same object to every processor it builds, and sets it at the start of each forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from diffusers.models.resnet import AlphaBlender
from torch import Tensor, nn

from a3d_cli.models.speed.attention import attend_tokens


@dataclass
class VideoLayout:
    """Shape facts of the current UNet call, shared by the UNet and its processors.

    Attributes:
        num_views: V, views per video (fixed by the model).
        batch: B, videos in the call (a CFG batch counts 2).
        num_frames: F, frames per video.
        level_shapes: latent (h, w) of every UNet level, keyed by h·w (how a processor finds its level).
    """

    num_views: int
    batch: int = 0
    num_frames: int = 0
    level_shapes: dict[int, tuple[int, int]] = field(default_factory=dict)

    def set(self, batch: int, num_frames: int, height: int, width: int, num_levels: int) -> None:
        """Record the shapes of a forward pass on a [B, V, F, C, height, width] latent."""
        self.batch, self.num_frames = batch, num_frames
        self.level_shapes = {}
        h, w = height, width
        for _ in range(num_levels):
            self.level_shapes[h * w] = (h, w)
            h, w = (h + 1) // 2, (w + 1) // 2  # Downsample2D: 3×3 conv, stride 2, padding 1

    def spatial_shape(self, tokens: int) -> tuple[int, int]:
        """(h, w) of the level whose images have `tokens` pixels."""
        try:
            return self.level_shapes[tokens]
        except KeyError:
            raise RuntimeError(
                f"no UNet level has {tokens} pixels per image (levels: {self.level_shapes}); "
                "processors must run inside MVVDMUNet.forward"
            ) from None


def sdpa(q: Tensor, k: Tensor, v: Tensor, heads: int, scale: float) -> Tensor:
    """Multi-head attention through `a3d_cli.models.speed.attention.attend_tokens` (fused SDPA kernels on CUDA,
    the fused short-sequence kernel for the 16-frame temporal attention).

    Args:
        q: [N, Lq, C]; k, v: [N, Lk, C].

    Returns:
        [N, Lq, C]
    """
    return attend_tokens(q, k, v, heads, scale=scale)


def _check_plain(attn: Attention, encoder_hidden_states: Tensor | None, attention_mask: Tensor | None) -> None:
    if encoder_hidden_states is not None or attention_mask is not None:
        raise ValueError("this processor is for self-attention without a mask")
    if attn.residual_connection or attn.group_norm is not None or attn.spatial_norm is not None:
        raise ValueError("this processor supports plain pre-norm attention blocks only")


class MVDreamI2VAttnProcessor(nn.Module):
    """Multi-view self-attention of MVDream plus the MV2V-Adapter's first-frame (I2V) branch.

    ``out = to_out( MVAttn(x) + to_out_i2v( Attn(to_q_i2v(x), K(frame 0), V(frame 0)) ) )`` where MVAttn
    is self-attention over the V·L tokens of one frame, and K/V of frame 0 are the pretrained `to_k`/`to_v`
    applied to frame 0 (the clean condition). With `to_out_i2v` zero this is MVDream's attention.

    Args:
        hidden_size: C, the attention width.
        layout: the UNet's shared `VideoLayout`.
    """

    def __init__(self, hidden_size: int, layout: VideoLayout) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.layout = layout
        self.to_q_i2v = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_out_i2v = nn.Linear(hidden_size, hidden_size, bias=True)

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,  # [B·V·F, L, C], rows ordered (b, v, f)
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
    ) -> Tensor:
        _check_plain(attn, encoder_hidden_states, attention_mask)
        b, v, f = self.layout.batch, self.layout.num_views, self.layout.num_frames
        rows, length, c = hidden_states.shape
        if rows != b * v * f:
            raise RuntimeError(f"expected {b}·{v}·{f} rows, got {rows}")
        x = hidden_states.reshape(b, v, f, length, c).transpose(1, 2).reshape(b * f, v * length, c)  # [B·F, V·L, C]

        q, k, val = attn.to_q(x), attn.to_k(x), attn.to_v(x)  # [B·F, V·L, C]
        out = sdpa(q, k, val, attn.heads, attn.scale)  # [B·F, V·L, C] multi-view attention

        # I2V: all F frames of a video query the V·L tokens of its frame 0. The queries of one video are
        # stacked into one sequence, so frame 0's keys are shared without being copied F times.
        k0 = k.view(b, f, v * length, c)[:, 0]  # [B, V·L, C]
        v0 = val.view(b, f, v * length, c)[:, 0]  # [B, V·L, C]
        qi = self.to_q_i2v(x).view(b, f * v * length, c)  # [B, F·V·L, C]
        out_i2v = sdpa(qi, k0, v0, attn.heads, attn.scale).view(b * f, v * length, c)  # [B·F, V·L, C]
        out = out + self.to_out_i2v(out_i2v)

        out = attn.to_out[1](attn.to_out[0](out))  # [B·F, V·L, C] (to_out[1] is dropout)
        return out.view(b, f, v, length, c).transpose(1, 2).reshape(rows, length, c)  # [B·V·F, L, C]


@lru_cache(maxsize=64)
def _sine_encoding_2d_cached(h: int, w: int, channels: int, device: str, dtype: torch.dtype) -> Tensor:
    return sine_encoding_2d(h, w, channels).to(device=device, dtype=dtype)


def sine_encoding_2d(h: int, w: int, channels: int, temperature: float = 10000.0, eps: float = 1e-6) -> Tensor:
    """DETR-style normalised 2D sine position encoding, as Animate3D's spatial branch adds it.

    Row and column positions are 1..h and 1..w, normalised to (0, 2π]: ``p = i / (n + eps) · 2π``. Each
    half of the channels encodes one axis (rows first, then columns) with C/2 features: feature k is
    ``sin(p / T^(2⌊k/2⌋/(C/2)))`` for even k and ``cos(…)`` for odd k, T = `temperature`.

    Args:
        h, w: grid size in latent pixels.
        channels: C, a multiple of 4.

    Returns:
        [h, w, C] float32.
    """
    if channels % 4:
        raise ValueError(f"channels must be a multiple of 4, got {channels}")
    half = channels // 2
    k = torch.arange(half, dtype=torch.float32)  # [C/2]
    dim_t = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)  # [C/2]
    even = k % 2 == 0  # [C/2]

    def axis(n: int) -> Tensor:
        pos = torch.arange(1, n + 1, dtype=torch.float32) / (n + eps) * (2 * math.pi)  # [n]
        arg = pos[:, None] / dim_t  # [n, C/2]
        return torch.where(even, torch.sin(arg), torch.cos(arg))  # [n, C/2]

    rows = axis(h)[:, None, :].expand(h, w, half)  # [h, w, C/2]
    cols = axis(w)[None, :, :].expand(h, w, half)  # [h, w, C/2]
    return torch.cat([rows, cols], dim=-1)  # [h, w, C]


class SpatioTemporalAttnProcessor(nn.Module):
    """Animate3D's spatiotemporal attention for one motion-module attention layer.

    Temporal branch: AnimateDiff's attention over the F frames of each pixel of each view, with the
    sinusoidal frame encoding added here (the block's own `pos_embed` is removed, as in Animate3D).
    Spatial branch: attention over all V·h·w tokens of a frame with its own projections and a 2D sine
    encoding added to the (un-encoded) input. Output: ``σ(μ)·spatial + (1 − σ(μ))·temporal``.

    Args:
        hidden_size: C.
        layout: the UNet's shared `VideoLayout`.
        max_seq_length: length of the temporal sinusoid table.
    """

    def __init__(self, hidden_size: int, layout: VideoLayout, max_seq_length: int = 32) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.layout = layout
        self.to_q_sp = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_k_sp = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_v_sp = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_out_sp = nn.Linear(hidden_size, hidden_size, bias=True)
        self.alpha_blender = AlphaBlender(alpha=0.0, merge_strategy="learned")  # mix_factor μ = 0 at init
        # AlphaBlender builds μ with the legacy `torch.Tensor([...])`, which ignores a `torch.device(...)`
        # context; rebuild it so meta/CUDA construction puts every tensor on the same device.
        self.alpha_blender.mix_factor = nn.Parameter(torch.zeros(1))
        self.time_pos_embed = SinusoidalPositionalEmbedding(hidden_size, max_seq_length=max_seq_length)

    def temporal(self, attn: Attention, x: Tensor) -> Tensor:
        """AnimateDiff's temporal attention. x: [N, F, C] → [N, F, C]."""
        xt = self.time_pos_embed(x)  # [N, F, C]
        out = sdpa(attn.to_q(xt), attn.to_k(xt), attn.to_v(xt), attn.heads, attn.scale)  # [N, F, C]
        return attn.to_out[1](attn.to_out[0](out))

    def spatial(self, attn: Attention, x: Tensor) -> Tensor:
        """Joint attention over views × pixels of each frame. x: [B·V·h·w, F, C] → same shape."""
        b, v = self.layout.batch, self.layout.num_views
        rows, f, c = x.shape
        h, w = self.layout.spatial_shape(rows // (b * v))
        pe = _sine_encoding_2d_cached(h, w, c, str(x.device), x.dtype)  # [h, w, C]
        xs = x.reshape(b, v, h, w, f, c) + pe[None, None, :, :, None, :]  # [B, V, h, w, F, C]
        xs = xs.permute(0, 4, 1, 2, 3, 5).reshape(b * f, v * h * w, c)  # [B·F, V·h·w, C]
        out = sdpa(self.to_q_sp(xs), self.to_k_sp(xs), self.to_v_sp(xs), attn.heads, attn.scale)
        out = self.to_out_sp(out)  # [B·F, V·h·w, C]
        return out.view(b, f, v, h, w, c).permute(0, 2, 3, 4, 1, 5).reshape(rows, f, c)  # [B·V·h·w, F, C]

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,  # [B·V·h·w, F, C], rows ordered (b, v, y, x)
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
    ) -> Tensor:
        _check_plain(attn, encoder_hidden_states, attention_mask)
        out_t = self.temporal(attn, hidden_states)
        out_s = self.spatial(attn, hidden_states)
        return self.alpha_blender(out_s, out_t)
