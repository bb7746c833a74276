"""The shared CUDA acceleration helper: a no-op off CUDA, finds the repeated blocks it would compile."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models.acceleration import accelerate, compile_blocks, repeated_blocks
from a3d_cli.models.mvvdm.components import tiny_components


def test_accelerate_changes_nothing_on_cpu():
    unet = tiny_components(seed=0).unet
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    report = accelerate("cpu", [unet], compile=True)
    assert not report.enabled and not report.compile and report.compiled_blocks == 0
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    assert not any(hasattr(m, "_compiled_call_impl") and m._compiled_call_impl is not None for m in unet.modules())


def test_repeated_blocks_are_outermost_and_cover_the_unet():
    unet = tiny_components(seed=0).unet
    blocks = repeated_blocks(unet)
    names = [n for n, _ in blocks]
    assert len(blocks) > 4
    assert len(set(names)) == len(names)
    # no block is nested inside another one that is also compiled
    assert not any(a != b and b.startswith(a + ".") for a in names for b in names)


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile mode"):
        compile_blocks(torch.nn.Linear(2, 2), mode="reduce-overhead")


def test_channels_last_convs_covers_conv3d_only_when_asked():
    from torch import nn

    from a3d_cli.models.acceleration import channels_last_conv2d, channels_last_convs

    def net() -> nn.Module:
        return nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv3d(4, 4, (3, 1, 1)))

    a, b = net(), net()
    assert channels_last_conv2d(a) == 1 and channels_last_convs(b) == 2
    assert a[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert a[1].weight.is_contiguous() and not a[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert b[1].weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_orbit_compiles_every_sv3d_unet_level_and_the_vae_decoder():
    from a3d_cli.models.sv3d.config import SV3DConfig
    from a3d_cli.models.sv3d.loading import build_models

    models = build_models(SV3DConfig.tiny(), "sv3d_p")
    unet, decoder = models.hot_networks()
    assert unet is models.unet and decoder is models.vae.decoder
    kinds = {type(b).__name__ for _, b in repeated_blocks(unet)}
    # resnets and transformers of every level, and the resamplers between levels (eager, they ran NCHW
    # convolutions with cuDNN layout conversions and an fp32 round trip around the bf16 upsampling)
    assert {"SpatioTemporalResBlock", "TransformerSpatioTemporalModel", "Upsample2D", "Downsample2D"} <= kinds
    assert {"ResnetBlock2D", "Upsample2D"} <= {type(b).__name__ for _, b in repeated_blocks(decoder)}
