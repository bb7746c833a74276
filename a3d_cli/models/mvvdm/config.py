"""The MV-VDM UNet configuration: one frozen dataclass, the released size and a `tiny` size of the same code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from a3d_cli.models.mvvdm.shape import LATENT_CHANNELS, NUM_VIEWS


@dataclass(frozen=True)
class MVVDMConfig:
    """Shape of the MV-VDM UNet (MVDream SD1.5 4-view + AnimateDiff v2 motion modules + MV2V adapter).

    The defaults are the released model (Animate3D `configs/inference/inference.yaml` on
    `yanqinJiang/mvdream-sd1.5-diffusers` and `guoyww/animatediff-motion-adapter-v1-5-2`).
    """

    in_channels: int = LATENT_CHANNELS
    """Latent channels of the SD VAE."""
    out_channels: int = LATENT_CHANNELS
    """Predicted noise channels (epsilon prediction)."""
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    """Channels per UNet level; the last level has no spatial attention (SD1.5 layout)."""
    layers_per_block: int = 2
    """ResNet(+attention+motion module) layers per down level; up levels have one more."""
    norm_num_groups: int = 32
    """GroupNorm groups of resnets and motion modules."""
    norm_eps: float = 1e-5
    """GroupNorm epsilon of resnets and the output norm."""
    attention_heads: int = 8
    """Heads of the spatial transformers (SD1.5's config calls this `attention_head_dim: 8`)."""
    cross_attention_dim: int = 768
    """Width of the text tokens (CLIP ViT-L/14) and of the IP-Adapter image tokens."""
    motion_heads: int = 8
    """Heads of every motion-module attention (temporal and spatial branch)."""
    motion_max_seq_length: int = 32
    """Length of the temporal sinusoid table: the most frames one clip can have."""
    camera_dim: int = 16
    """Camera MLP input: a flattened 4×4 camera-to-world matrix."""
    image_embed_dim: int = 1024
    """IP-Adapter input: the projected CLIP ViT-H/14 image embedding."""
    image_tokens: int = 4
    """Tokens the IP-Adapter projection makes from one image embedding."""
    ip_scale: float = 1.0
    """Weight of the IP-Adapter image attention in every cross-attention."""
    num_views: int = NUM_VIEWS
    """Views that attend to each other (MVDream 4-view)."""

    def __post_init__(self) -> None:
        levels = len(self.block_out_channels)
        if levels < 2:
            raise ValueError("block_out_channels needs at least 2 levels")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ValueError(f"{c} channels are not divisible by {self.norm_num_groups} norm groups")
            if c % self.attention_heads or c % self.motion_heads:
                raise ValueError(f"{c} channels are not divisible by the attention heads")
            if c % 4:
                raise ValueError(f"{c} channels: the 2D sine encoding needs a multiple of 4")

    @property
    def num_levels(self) -> int:
        return len(self.block_out_channels)

    @classmethod
    def tiny(cls) -> MVVDMConfig:
        """A few channels, same structure: runs for real on a CPU in tests (random weights)."""
        return cls(
            block_out_channels=(8, 16, 24, 24),
            layers_per_block=2,
            norm_num_groups=4,
            attention_heads=2,
            cross_attention_dim=16,
            motion_heads=2,
            camera_dim=16,
            image_embed_dim=8,
            image_tokens=4,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """JSON text, e.g. for safetensors metadata."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MVVDMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MVVDMConfig fields: {sorted(unknown)}")
        values = dict(data)
        if "block_out_channels" in values:
            values["block_out_channels"] = tuple(values["block_out_channels"])
        return cls(**values)
