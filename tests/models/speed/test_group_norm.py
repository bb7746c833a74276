"""GroupNorm as per-channel reductions equals torch's GroupNorm, in any layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from a3d_cli.models.speed.group_norm import ChannelsLastGroupNorm, group_norm_by_channels, use_channels_last_group_norm


@pytest.mark.parametrize(
    ("shape", "groups", "layout"),
    [
        ((2, 64, 5, 6, 7), 32, torch.channels_last_3d),  # SVD's temporal resnets: (batch, C, frames, h, w)
        ((4, 64, 9, 9), 32, torch.channels_last),  # spatial resnets
        ((4, 64, 9, 9), 8, torch.contiguous_format),
        ((3, 12, 10), 4, torch.contiguous_format),
    ],
)
def test_group_norm_by_channels_equals_group_norm(shape, groups, layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 3 + 1.5  # an offset mean: a one-pass variance would lose digits
    if layout is not torch.contiguous_format:
        x = x.contiguous(memory_format=layout)
    w, b = torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    expected = F.group_norm(x.double(), groups, w.double(), b.double(), 1e-6)
    got = group_norm_by_channels(x, groups, w, b, 1e-6)
    assert got.dtype == x.dtype and got.shape == x.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    # without affine parameters, and in bf16 (statistics in fp32, like F.group_norm)
    torch.testing.assert_close(
        group_norm_by_channels(x, groups, None, None, 1e-6).double(),
        F.group_norm(x.double(), groups, None, None, 1e-6),
        rtol=1e-5,
        atol=1e-5,
    )
    xb = x.bfloat16()
    torch.testing.assert_close(
        group_norm_by_channels(xb, groups, w.bfloat16(), b.bfloat16(), 1e-6).float(),
        F.group_norm(xb, groups, w.bfloat16(), b.bfloat16(), 1e-6).float(),
        rtol=0.02,
        atol=0.02,
    )


def test_switching_keeps_parameters_and_results():
    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.GroupNorm(4, 16), nn.SiLU(), ChannelsLastGroupNorm(4, 16))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 5, 5)
    before, keys = net(x), list(net.state_dict())
    norm = net[1]
    assert use_channels_last_group_norm(net).count == 1  # the ChannelsLastGroupNorm already there is not counted
    assert net[1] is norm and type(norm) is ChannelsLastGroupNorm
    assert list(net.state_dict()) == keys
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)
