"""GroupNorms for channels-last networks: per-channel reductions for compiled blocks, NHWC kernels for eager ones.

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

Eagerly (no compilation) the same problem has a different answer: PyTorch's CUDA GroupNorm copies NHWC input
to NCHW, and the SiLU after it is one more pass each way. `use_fused_group_norm` swaps the GroupNorms for
`FusedGroupNorm` / `FusedGroupNormSiLU`, which run `a3d_cli.kernels.group_norm.group_norm_act` (Triton
kernels that read NHWC in order, with the block's SiLU fused in where the block applies one right after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from a3d_cli.kernels.group_norm import group_norm_act
from a3d_cli.models.speed.handles import SpeedHandle, swap_class

SILU_AFTER_NORMS: dict[str, tuple[tuple[str, ...], str]] = {
    "ResnetBlock2D": (("norm1", "norm2"), "nonlinearity"),
    "Encoder": (("conv_norm_out",), "conv_act"),
}
"""diffusers classes whose forward applies the activation module named second right after each of the norms
named first, and nowhere else (a `ResnetBlock2D` only without a time embedding: with one, its activation also
runs on the embedding)."""


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


class FusedGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` through `group_norm_act`: NHWC input on CUDA takes the Triton kernels, anything else
    `F.group_norm` (same parameters, same results to rounding)."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - nn.GroupNorm's argument name
        return group_norm_act(input, self.num_groups, self.weight, self.bias, self.eps)


class FusedGroupNormSiLU(nn.GroupNorm):
    """A GroupNorm followed by SiLU, in one (`group_norm_act(..., silu=True)`): stands in for a norm whose
    block's SiLU `use_fused_group_norm` has taken out."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return group_norm_act(input, self.num_groups, self.weight, self.bias, self.eps, silu=True)


def _silu_owners(module: nn.Module) -> list[tuple[nn.Module, tuple[str, ...], str]]:
    """(block, its norms, its activation's name) for each block of `SILU_AFTER_NORMS` whose norms are plain
    GroupNorms and whose activation is a plain SiLU."""
    found = []
    for block in module.modules():
        names = SILU_AFTER_NORMS.get(type(block).__name__)
        if names is None:
            continue
        norms, act = names
        if type(getattr(block, act, None)) is not nn.SiLU or getattr(block, "time_emb_proj", None) is not None:
            continue
        if all(type(getattr(block, n, None)) is nn.GroupNorm for n in norms):
            found.append((block, norms, act))
    return found


def use_fused_group_norm(module: nn.Module) -> SpeedHandle:
    """Run every plain `nn.GroupNorm` in `module` through the NHWC kernels, with the SiLU that follows fused.

    Norms that a SiLU module follows (`SILU_AFTER_NORMS`) become `FusedGroupNormSiLU` and that block's SiLU
    an `nn.Identity`; every other GroupNorm becomes `FusedGroupNorm`. Parameters and state-dict keys stay the
    same. Pays off only where the activations are NHWC (`channels_last_conv2d` on the same module), and only
    eagerly: compiled blocks fuse their GroupNorms themselves.

    Returns:
        a handle: `count` norms switched; `remove()` gives back the classes and the SiLUs.
    """
    owners = _silu_owners(module)
    swapped: list[nn.Module] = []
    activations: list[tuple[nn.Module, str, nn.Module]] = []
    for block, norms, act in owners:
        for name in norms:
            norm = getattr(block, name)
            norm.__class__ = FusedGroupNormSiLU
            swapped.append(norm)
        activations.append((block, act, getattr(block, act)))
        setattr(block, act, nn.Identity())
    plain = swap_class(module, nn.GroupNorm, FusedGroupNorm, name="fused GroupNorm")

    def undo() -> None:
        plain.remove()
        for norm in swapped:
            norm.__class__ = nn.GroupNorm
        for block, act, original in activations:
            setattr(block, act, original)

    count = len(swapped) + plain.count
    return SpeedHandle("fused GroupNorm", count, undo if count else None)


__all__ = [
    "SILU_AFTER_NORMS",
    "ChannelsLastGroupNorm",
    "FusedGroupNorm",
    "FusedGroupNormSiLU",
    "group_norm_by_channels",
    "use_channels_last_group_norm",
    "use_fused_group_norm",
]
