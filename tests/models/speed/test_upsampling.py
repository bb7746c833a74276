"""Nearest ×2 upsampling + 3×3 convolution as one 2×2 convolution equals diffusers' Upsample2D."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.upsampling import Upsample2D

from a3d_cli.models.speed.upsampling import SubpixelUpsample2D, upsample_nearest2x_conv3x3, use_subpixel_upsampling


def _pair(**kwargs) -> tuple[Upsample2D, Upsample2D]:
    torch.manual_seed(0)
    ref = Upsample2D(**kwargs)
    ours = copy.deepcopy(ref)
    assert use_subpixel_upsampling(ours).count == 1
    return ref, ours


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("channels", "out_channels", "h", "w"), [(16, 8, 5, 7), (8, 8, 1, 1), (4, 12, 6, 3)])
def test_subpixel_upsampling_equals_upsample_then_conv(channels, out_channels, h, w, layout):
    ref, ours = _pair(channels=channels, use_conv=True, out_channels=out_channels)
    with torch.no_grad():  # a visible bias: each of the four parities must get it
        ref.conv.bias.uniform_(-1, 1)
        ours.conv.bias.copy_(ref.conv.bias)
    x = torch.randn(2, channels, h, w).contiguous(memory_format=layout)
    expected = ref(x)
    got = ours(x)
    assert got.shape == (2, out_channels, 2 * h, 2 * w)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_vae_style_conv_name_and_half_precision():
    ref, ours = _pair(channels=8, use_conv=True, name="Conv2d_0")
    ref, ours = ref.bfloat16(), ours.bfloat16()
    x = torch.randn(1, 8, 4, 4).bfloat16()
    torch.testing.assert_close(ours(x).float(), ref(x).float(), rtol=0.03, atol=0.03)


def test_configurations_it_does_not_cover_run_diffusers_code():
    # no convolution, a transposed convolution, an explicit output size: diffusers' own path, same results
    for kwargs in ({"channels": 4}, {"channels": 4, "use_conv_transpose": True}):
        ref, ours = _pair(**kwargs)
        assert not ours.fused()
        x = torch.randn(1, 4, 3, 3)
        torch.testing.assert_close(ours(x), ref(x))
    ref, ours = _pair(channels=4, use_conv=True)
    assert ours.fused()
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(ours(x, output_size=(7, 5)), ref(x, output_size=(7, 5)))


def test_switching_keeps_the_module_and_its_keys():
    ref = Upsample2D(channels=4, use_conv=True)
    keys = list(ref.state_dict())
    net = torch.nn.Sequential(ref)
    handle = use_subpixel_upsampling(net)
    assert handle.count == 1 and net[0] is ref and isinstance(ref, SubpixelUpsample2D)
    assert list(ref.state_dict()) == keys
    assert use_subpixel_upsampling(net).count == 0  # already switched
    handle.remove()
    assert type(net[0]) is Upsample2D and net[0] is ref  # the same object, its class given back


def test_functional_form_without_bias():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(1, 3, 4, 5, generator=g), torch.randn(6, 3, 3, 3, generator=g)
    up = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    expected = torch.nn.functional.conv2d(up, w, padding=1)
    torch.testing.assert_close(upsample_nearest2x_conv3x3(x, w, None), expected, rtol=1e-5, atol=1e-5)
