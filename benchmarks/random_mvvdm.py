"""MV-VDM with random weights for the benchmarks: at the released sizes, or tiny for a CPU smoke run.

The one builder of every benchmark that runs MV-VDM without its weights (`bench_mvvideo`, `bench_sds`,
`bench_animate`, `bench_batch`, `bench_precision`, `profile_kernels`, `profile_stage_busy`). Random
weights: what these runs measure is speed and memory, never quality. Full size is the MV-VDM UNet of
`MVVDMConfig()`, the SD1.5 VAE, and the CLIP ViT-L/14 text and ViT-H/14 image towers; tiny is the
library's own `tiny_components(0)` (the same classes and code paths at toy size).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from a3d_cli.models.mvvdm.components import MVVDMComponents
    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser


def build_components(device: str, dtype: torch.dtype, tiny: bool = False) -> MVVDMComponents:
    """MV-VDM's networks (UNet, VAE, text and image encoders, tokenizer, DDIM scheduler), seeded with 0.

    Args:
        device: where the networks are built (built there directly at full size: no CPU copy first).
        dtype: their precision.
        tiny: the tiny configuration instead of the released sizes.
    """
    from a3d_cli.models.mvvdm.components import ByteTokenize, MVVDMComponents, tiny_components

    if tiny:
        return tiny_components(0).to(device, dtype)
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from a3d_cli.models.mvvdm import MVVDMConfig, MVVDMUNet
    from a3d_cli.models.mvvdm.ddim import make_ddim_scheduler

    torch.manual_seed(0)
    with torch.device(device):
        unet = MVVDMUNet(MVVDMConfig())
        vae = AutoencoderKL(  # SD1.5 VAE config
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=512,
        )
        text = CLIPTextModel(CLIPTextConfig(  # openai/clip-vit-large-patch14 text tower
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        ))
        image = CLIPVisionModelWithProjection(CLIPVisionConfig(  # h94/IP-Adapter models/image_encoder (ViT-H/14)
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
            image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu",
        ))
    comp = MVVDMComponents(unet, vae, text, ByteTokenize(77), image, make_ddim_scheduler())
    return comp.to(device, dtype)


def build_denoiser(device: str, dtype: torch.dtype, tiny: bool = False) -> MvvdmDenoiser:
    """`build_components` wrapped for SDS (`MvvdmDenoiser`: the VAE encoder and the guided UNet call)."""
    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser

    return MvvdmDenoiser(build_components(device, dtype, tiny))
