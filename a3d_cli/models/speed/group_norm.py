"""GroupNorm written as per-channel reductions, so that compiled kernels read channels-last data in order.

Why: SVD's temporal resnets normalize a 5-D (batch, channels, frames, h, w) tensor whose groups span all
21 frames, about a million values per group but only batch × 32 groups. For the channels-last (NDHWC)
activations that `keep_channels_last` gives them, inductor lowers `F.group_norm` to a split reduction that
walks each group channel by channel at a large stride, many times slower than one read of the tensor
(measurements in docs/PERF.md).

Computed instead as sums per (batch, channel) over the positions (with channels innermost in memory, a
reduction whose loads are contiguous across channels), then summed per group (a tiny tensor). Two passes
(the mean, then the squares about it) keep the variance as accurate as PyTorch's Welford kernel; the
statistics are in fp32 whatever the input dtype, as in `F.group_norm`.

Same parameters and state-dict keys as `nn.GroupNorm`, so a network can switch at any time
(`use_channels_last_group_norm`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from a3d_cli.models.speed.handles import SpeedHandle, swap_class


def group_norm_by_channels(
    x: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    """`F.group_norm(x, num_groups, weight, bias, eps)` through per-channel sums; any layout, any rank ≥ 3.

    Args:
        x: [batch, channels, *positions].
    """
    b, c = x.shape[:2]
    positions = tuple(range(2, x.ndim))
    per_group = c // num_groups
    count = per_group * x[0, 0].numel()
    expand = (b, c) + (1,) * len(positions)

    xf = x.float()
    channel_sum = xf.sum(dim=positions)  # [b, c]
    mean = channel_sum.view(b, num_groups, per_group).sum(-1) / count  # [b, g]
    mean_c = mean.repeat_interleave(per_group, dim=1).view(expand)
    centered = xf - mean_c
    var = centered.square().sum(dim=positions).view(b, num_groups, per_group).sum(-1) / count  # [b, g]
    scale = torch.rsqrt(var + eps).repeat_interleave(per_group, dim=1)  # [b, c]
    if weight is not None:
        scale = scale * weight.float()
    y = centered * scale.view(expand)
    if bias is not None:
        y = y + bias.float().view(1, c, *(1,) * len(positions))
    return y.to(x.dtype)


class ChannelsLastGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` computed by `group_norm_by_channels` (same parameters, same results to rounding)."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - nn.GroupNorm's argument name
        if input.ndim < 3:
            return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)
        return group_norm_by_channels(input, self.num_groups, self.weight, self.bias, self.eps)


def use_channels_last_group_norm(module: nn.Module) -> SpeedHandle:
    """Turn every plain `nn.GroupNorm` in `module` into a `ChannelsLastGroupNorm`, in place.

    The module objects and their parameters stay the same (only the class changes), so state dicts,
    optimizers and hooks are unaffected.

    Returns:
        a handle: `count` layers switched; `remove()` turns them back into `nn.GroupNorm`s.
    """
    return swap_class(module, nn.GroupNorm, ChannelsLastGroupNorm, name="channels-last GroupNorm")


__all__ = ["ChannelsLastGroupNorm", "group_norm_by_channels", "use_channels_last_group_norm"]
