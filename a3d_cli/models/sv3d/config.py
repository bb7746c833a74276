"""Sizes of the three SV3D networks, as one frozen config: the official full size and a `tiny` one.

Why a config of our own next to diffusers' `register_to_config`: the official SV3D checkpoints are single
sgm files with no config inside, so the full-size numbers live here (read from Stability's
`configs/inference/sv3d_{u,p}.yaml`), and a tiny checkpoint written by the tests carries its config in the
safetensors metadata (`CONFIG_METADATA_KEY`). The two variants differ only in the width of the UNet's
vector input (`adm_in_channels`: 256 for sv3d_u, 1280 for sv3d_p), which is read from the checkpoint itself.

Examples:
    >>> SV3DConfig.tiny().unet.block_out_channels
    (32, 64)
    >>> SV3DConfig.from_json(SV3DConfig.full().to_json()) == SV3DConfig.full()
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Variant = Literal["sv3d_u", "sv3d_p"]

#: The width of the per-frame vector each variant's UNet takes (sgm `adm_in_channels`).
ADM_IN_CHANNELS: dict[str, int] = {"sv3d_u": 256, "sv3d_p": 1280}
#: Sinusoid widths of the vector parts: cond_aug, then (sv3d_p only) polar and azimuth.
COND_AUG_DIM = 256
ANGLE_DIM = 512
#: The safetensors metadata key holding a non-official (e.g. tiny) config as JSON.
CONFIG_METADATA_KEY = "a3d.sv3d.config"


@dataclass(frozen=True)
class UNetConfig:
    """The SVD/SV3D spatio-temporal UNet (diffusers `UNetSpatioTemporalConditionModel` arguments).

    Attributes:
        block_out_channels: channels per resolution level (sgm `model_channels * channel_mult`).
        down_block_types / up_block_types: diffusers block names; cross-attention levels carry the
            spatial + temporal transformers (sgm `attention_resolutions`).
        layers_per_block: resnets per down level (sgm `num_res_blocks`); up levels have one more.
        num_attention_heads: heads per level (sgm: channels / 64).
        cross_attention_dim: width of the CLIP image embedding the UNet attends to.
        in_channels: noisy latent (4) + conditioning latent (4).
        out_channels: v-prediction channels.
    """

    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = (
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    )
    up_block_types: tuple[str, ...] = (
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    )
    layers_per_block: int = 2
    num_attention_heads: tuple[int, ...] = (5, 10, 20, 20)
    cross_attention_dim: int = 1024
    in_channels: int = 8
    out_channels: int = 4

    def diffusers_kwargs(self, variant: Variant, num_frames: int, sample_size: int) -> dict[str, Any]:
        """Constructor arguments of the diffusers UNet for one variant."""
        return {
            "sample_size": sample_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": tuple(self.down_block_types),
            "up_block_types": tuple(self.up_block_types),
            "block_out_channels": tuple(self.block_out_channels),
            "addition_time_embed_dim": COND_AUG_DIM,
            "projection_class_embeddings_input_dim": ADM_IN_CHANNELS[variant],
            "layers_per_block": self.layers_per_block,
            "cross_attention_dim": self.cross_attention_dim,
            "transformer_layers_per_block": 1,
            "num_attention_heads": tuple(self.num_attention_heads),
            "num_frames": num_frames,
        }


@dataclass(frozen=True)
class VAEConfig:
    """The KL-f8 image autoencoder (diffusers `AutoencoderKL` arguments).

    Attributes:
        block_out_channels: sgm `ch * ch_mult`; the latent is 2^(levels-1) times smaller than the image.
        layers_per_block: sgm `num_res_blocks` (the decoder has one more per level).
        latent_channels: sgm `z_channels`.
        norm_num_groups: GroupNorm groups (32 in the official model).
        scaling_factor: the latent scale the UNet works in (sgm `scale_factor`, used when decoding only).
    """

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215

    @property
    def downscale(self) -> int:
        """Image pixels per latent pixel along one side."""
        return 2 ** (len(self.block_out_channels) - 1)

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Constructor arguments: encoder + quant_conv as in the conditioner; no post_quant_conv (see docs)."""
        n = len(self.block_out_channels)
        return {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * n,
            "up_block_types": ("UpDecoderBlock2D",) * n,
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels,
            "norm_num_groups": self.norm_num_groups,
            "scaling_factor": self.scaling_factor,
            "force_upcast": True,
            "use_quant_conv": True,
            "use_post_quant_conv": False,
        }


@dataclass(frozen=True)
class CLIPConfig:
    """The OpenCLIP ViT-H/14 image tower (transformers `CLIPVisionConfig` arguments).

    Attributes:
        hidden_size / intermediate_size / num_hidden_layers / num_attention_heads: the ViT.
        patch_size / image_size: 14 px patches of a 224 px input.
        projection_dim: the image embedding width (= the UNet's cross_attention_dim).
    """

    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 1024
    layer_norm_eps: float = 1e-5

    def transformers_kwargs(self) -> dict[str, Any]:
        """Arguments of `CLIPVisionConfig`; OpenCLIP's ViT-H uses exact GELU."""
        return {**asdict(self), "hidden_act": "gelu", "num_channels": 3}


@dataclass(frozen=True)
class SV3DConfig:
    """All sizes of an SV3D model.

    Attributes:
        unet / vae / clip: the three networks.
        image_size: square input and output side in pixels (576 for the official model).
        num_frames: frames of one orbit (21).
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    image_size: int = 576
    num_frames: int = 21

    def __post_init__(self) -> None:
        if self.clip.projection_dim != self.unet.cross_attention_dim:
            raise ValueError(
                f"clip.projection_dim ({self.clip.projection_dim}) must equal unet.cross_attention_dim "
                f"({self.unet.cross_attention_dim})"
            )
        up_factor = self.vae.downscale * 2 ** (len(self.unet.block_out_channels) - 1)
        if self.image_size % up_factor:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {up_factor}")

    @property
    def latent_size(self) -> int:
        """Latent side in pixels (72 for the official model)."""
        return self.image_size // self.vae.downscale

    @classmethod
    def full(cls) -> SV3DConfig:
        """The released SV3D (sv3d_u / sv3d_p) sizes."""
        return cls()

    @classmethod
    def tiny(cls) -> SV3DConfig:
        """A few channels of the same code, for CPU tests. Random weights: plumbing only, never quality."""
        return cls(
            unet=UNetConfig(
                block_out_channels=(32, 64),
                down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
                layers_per_block=1,
                num_attention_heads=(2, 4),
                cross_attention_dim=32,
            ),
            vae=VAEConfig(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8),
            clip=CLIPConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                patch_size=14,
                image_size=28,
                projection_dim=32,
            ),
            image_size=16,
            num_frames=21,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SV3DConfig:
        def tuples(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        return cls(
            unet=UNetConfig(**tuples(data["unet"])),
            vae=VAEConfig(**tuples(data["vae"])),
            clip=CLIPConfig(**tuples(data["clip"])),
            image_size=int(data["image_size"]),
            num_frames=int(data["num_frames"]),
        )

    @classmethod
    def from_json(cls, text: str) -> SV3DConfig:
        return cls.from_dict(json.loads(text))
