"""Compile a3d's Triton kernels before a first run: one guided UNet call per diffusion stage, at full size.

Why: the fused GEGLU, the short-sequence attention and the NHWC GroupNorm (`a3d_cli.kernels`) are Triton
kernels. Triton
compiles each one the first time it meets a new width, head size or precision, tens of seconds per
diffusion stage on a fresh machine, and keeps the result in its disk cache (`TRITON_CACHE_DIR`, by
default `~/.triton/cache`). The kernels a stage compiles depend only on its networks' widths, its call
shapes and its precision, never on the weights, so one call of each stage's UNet with random weights, at
the released sizes, the stage's own shapes and its default precision, compiles exactly what a run needs
(sds also runs its VAE encoder forward and backward, which its GroupNorm kernels serve).
`a3d info --warmup` runs these calls; a later run finds the kernels on disk and starts at full speed.

The UNets are built one at a time and freed before the next: each needs a few GB of GPU memory.

Examples:
    >>> for warmed in warm_diffusion_kernels({"mvvideo": "fp16", "sds": "bf16"}, "cuda"):  # doctest: +SKIP
    ...     print(warmed.stage, warmed.dtype, f"{warmed.seconds:.1f} s")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from a3d_cli.device import torch_dtype

TEXT_TOKENS = 77
"""Tokens of the CLIP text condition (its tokenizer pads every prompt to this; the tiny one to its own length)."""
CFG_BATCH = 2
"""Conditional and unconditional halves: every guided UNet call of the three stages is batched so."""


@dataclass(frozen=True)
class WarmedNetwork:
    """One UNet call made to compile its stage's kernels."""

    stage: str
    """The stage whose call it was: "orbit", "mvvideo" or "sds"."""
    dtype: str
    """The precision it ran in (the stage's default on this device)."""
    seconds: float
    """Building the network and the call, including whatever Triton compiled."""


def _cast(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """`module` in `dtype`, frozen. `nn.Module.to` itself: diffusers' override warns about `from_pretrained`
    loading, which this is not."""
    return torch.nn.Module.to(module, dtype=dtype).eval().requires_grad_(False)


def _mvvdm_call(device: str, dtype: torch.dtype, tiny: bool) -> Callable[[], object]:
    """MV-VDM's guided call as mvvideo and sds make it: [2, 4 views, 16 frames, 4, 32, 32]."""
    from a3d_cli.models.mvvdm import MVVDMConfig, MVVDMUNet
    from a3d_cli.models.mvvdm.components import ByteTokenize
    from a3d_cli.models.mvvdm.shape import NUM_FRAMES, RESOLUTION
    from a3d_cli.models.speed.acceleration import accelerate

    cfg = MVVDMConfig.tiny() if tiny else MVVDMConfig()
    with torch.device(device):
        unet = MVVDMUNet(cfg)
    _cast(unet, dtype)
    accelerate(device, [unet], compile=False, fused_geglu=True)  # as MVVDMComponents/MvvdmDenoiser.accelerate
    latent = RESOLUTION // (32 if tiny else 8)  # the SD VAE downsamples 8× (the tiny one 32×)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, dtype=dtype)

    x = noise(CFG_BATCH, cfg.num_views, NUM_FRAMES, cfg.in_channels, latent, latent)
    t = torch.full((CFG_BATCH,), 500, device=device)
    text, image = (
        noise(CFG_BATCH, ByteTokenize().length if tiny else TEXT_TOKENS, cfg.cross_attention_dim),
        noise(CFG_BATCH, cfg.num_views, cfg.image_embed_dim),
    )
    cams = noise(cfg.num_views, 16)
    return lambda: unet(x, t, text, image, cams)


def _sds_encoder_backward(device: str, dtype: torch.dtype, tiny: bool) -> Callable[[], object]:
    """The SD VAE encoder's forward and backward through one render at sds's default render size, NHWC as sds
    runs it eagerly. Its GroupNorm kernels specialise on the widths and the image size, not on the batch, so
    one render compiles what a step needs (another `--render-size` compiles its own on its first step)."""
    from diffusers.models.autoencoders.vae import Encoder

    from a3d_cli.models.mvvdm.shape import RESOLUTION
    from a3d_cli.models.speed.acceleration import channels_last_eagerly
    from a3d_cli.models.speed.attention import use_shortcut_attention
    from a3d_cli.models.sv3d.config import VAEConfig

    if tiny:  # tiny_components' VAE
        widths, groups, layers, latent = (4,) * 6, 2, 1, 4
    else:  # the KL-f8 autoencoder: SD 1.5's, which MV-VDM uses as SV3D does
        kl_f8 = VAEConfig()
        widths, groups = kl_f8.block_out_channels, kl_f8.norm_num_groups
        layers, latent = kl_f8.layers_per_block, kl_f8.latent_channels
    with torch.device(device):
        encoder = Encoder(
            in_channels=3,
            out_channels=latent,
            down_block_types=("DownEncoderBlock2D",) * len(widths),
            block_out_channels=tuple(widths),
            layers_per_block=layers,
            norm_num_groups=groups,
            double_z=True,
        )
    _cast(encoder, dtype)
    use_shortcut_attention(encoder)  # as MvvdmDenoiser
    if device.startswith("cuda"):
        channels_last_eagerly(encoder)  # as MvvdmDenoiser.accelerate without --compile
    image = torch.rand(1, 3, RESOLUTION, RESOLUTION, device=device, dtype=dtype)

    def call() -> object:
        with torch.enable_grad():
            x = image.clone().requires_grad_(True)
            return torch.autograd.grad(encoder(x).float().square().mean(), x)

    return call


def _sds_call(device: str, dtype: torch.dtype, tiny: bool) -> Callable[[], object]:
    """sds's networks: MV-VDM's guided call, then the VAE encoder's forward and backward."""
    unet_call = _mvvdm_call(device, dtype, tiny)
    encoder_call = _sds_encoder_backward(device, dtype, tiny)
    return lambda: (unet_call(), encoder_call())


def _sv3d_call(device: str, dtype: torch.dtype, tiny: bool) -> Callable[[], object]:
    """SV3D_p's guided call as orbit makes it: [2, 21 frames, 8, 72, 72]."""
    from a3d_cli.models.speed.acceleration import accelerate
    from a3d_cli.models.sv3d.config import SV3DConfig
    from a3d_cli.models.sv3d.loading import build_unet

    cfg = SV3DConfig.tiny() if tiny else SV3DConfig.full()
    unet = _cast(build_unet(cfg, "sv3d_p", device), dtype)
    accelerate(device, [unet], compile=False, fused_geglu=True)  # the part of SV3DModels.accelerate eager runs use
    f, s = cfg.num_frames, cfg.latent_size
    x = torch.randn(CFG_BATCH, f, unet.config.in_channels, s, s, device=device, dtype=dtype)
    context = torch.randn(CFG_BATCH, 1, unet.config.cross_attention_dim, device=device, dtype=dtype)
    vector = torch.randn(CFG_BATCH, f, unet.add_embedding.linear_1.in_features, device=device, dtype=dtype)
    t = torch.tensor(0.5, device=device)
    return lambda: unet(x, t, context, vector, return_dict=False)


GUIDED_CALLS: dict[str, Callable[[str, torch.dtype, bool], Callable[[], object]]] = {
    "orbit": _sv3d_call,
    "mvvideo": _mvvdm_call,
    "sds": _sds_call,
}
"""Each diffusion stage's guided UNet call, by stage name."""


def warm_diffusion_kernels(
    precisions: dict[str, str],
    device: str = "cuda",
    tiny: bool = False,
) -> list[WarmedNetwork]:
    """Run each named stage's guided UNet call once, so that its Triton kernels are compiled and cached.

    Args:
        precisions: stage name (a key of `GUIDED_CALLS`) → what its `--dtype auto` means on CUDA (the
            stage's `DEFAULT_CUDA_DTYPE`), in the order to run them.
        device: where the stages will run ("cuda", "cuda:1"); off CUDA the calls run in fp32 and compile
            nothing, which is what the tests use.
        tiny: the tiny configurations (tests only: their widths compile other kernels than a real run's).

    Returns:
        one `WarmedNetwork` per stage (a stage that shares another's network and precision finds its
        kernels compiled already).
    """
    done: list[WarmedNetwork] = []
    for stage, default in precisions.items():
        build = GUIDED_CALLS[stage]
        dtype = torch_dtype("auto", device, cuda_auto=default)
        name = str(dtype).replace("torch.", "")
        start = time.perf_counter()
        with torch.no_grad():
            build(device, dtype, tiny)()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
        done.append(WarmedNetwork(stage, name, time.perf_counter() - start))
    return done


__all__ = ["GUIDED_CALLS", "WarmedNetwork", "warm_diffusion_kernels"]
