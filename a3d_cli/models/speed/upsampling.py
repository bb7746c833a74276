"""Nearest ×2 upsampling followed by a 3×3 convolution, computed as one 2×2 convolution on the small image.

Why: the UNet decoder levels (and the VAE decoder) upsample by repeating every pixel 2×2 and then run a
3×3 convolution over the 4× larger image. Each output pixel of that convolution only ever sees 2×2 distinct
input pixels, so for each of the four output parities (even/odd row, even/odd column) the nine taps collapse
into four summed taps on the small image. One convolution with four stacked 2×2 kernels computes all four
parities; interleaving them gives the same output with 16 instead of 36 taps per input pixel (2.25× fewer
FLOPs) and without writing and re-reading the upsampled tensor (measurements in docs/PERF.md).

Exactness: the same sums; only the weights are pre-added (in fp32, then cast once to the convolution's
dtype), so results agree with diffusers' `Upsample2D` to rounding. Any `Upsample2D` configuration this does
not cover (a norm, a transposed convolution, another kernel size, an explicit `output_size`) runs diffusers'
own code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from diffusers.models.upsampling import Upsample2D
from torch import Tensor, nn

from a3d_cli.models.speed.handles import SpeedHandle, swap_class


def _collapse(weight: Tensor, dim: int) -> Tensor:
    """Fold a 3-tap axis of `weight` into the 2-tap windows of both output parities, stacked in front.

    An even output row reads small-image rows (i-1, i) with taps (0 | 1+2); an odd one reads (i, i+1) with
    taps (0+1 | 2). Plain adds, so that under `torch.compile` this fuses into one small kernel.
    """
    t0, t1, t2 = weight.unbind(dim)
    even = torch.stack((t0, t1 + t2), dim=dim)
    odd = torch.stack((t0 + t1, t2), dim=dim)
    return torch.stack((even, odd))


def subpixel_kernels(weight: Tensor) -> Tensor:
    """The four 2×2 kernels equivalent to `weight` [out, in, 3, 3] after nearest ×2 upsampling.

    Returns:
        [4·out, in, 2, 2] in fp32, ordered (row parity, column parity, output channel).
    """
    rows = _collapse(weight.float(), dim=2)  # [2 (row parity), out, in, 2, 3]
    both = _collapse(rows, dim=4)  # [2 (column parity), 2 (row parity), out, in, 2, 2]
    return both.transpose(0, 1).reshape(-1, *weight.shape[1:2], 2, 2)


def upsample_nearest2x_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """`conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)` for a 3×3 `weight`."""
    b, _, h, w = x.shape
    out_ch = weight.shape[0]
    # folded at every call rather than cached, so a weight loaded later can never be stale; under
    # torch.compile the fold is one small fused kernel over the weights
    kernels = subpixel_kernels(weight).to(x.dtype)
    if x.is_contiguous(memory_format=torch.channels_last):
        kernels = kernels.contiguous(memory_format=torch.channels_last)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernels, None if bias is None else bias.repeat(4))  # [b, 4·out, h+1, w+1]
    y = y.view(b, 2, 2, out_ch, h + 1, w + 1)
    parities = [[y[:, p, q, :, p : p + h, q : q + w] for q in (0, 1)] for p in (0, 1)]  # each [b, out, h, w]
    rows = [torch.stack(pair, dim=-1) for pair in parities]  # [b, out, h, w, 2 (column parity)]
    out = torch.stack(rows, dim=3)  # [b, out, h, 2 (row parity), w, 2]
    return out.reshape(b, out_ch, 2 * h, 2 * w)


class SubpixelUpsample2D(Upsample2D):
    """diffusers' `Upsample2D` whose nearest ×2 + 3×3 convolution runs as `upsample_nearest2x_conv3x3`."""

    def fused(self) -> bool:
        """Whether this layer's configuration is the one the 2×2 form reproduces."""
        conv = getattr(self, "conv", None) if self.name == "conv" else getattr(self, "Conv2d_0", None)
        return (
            self.use_conv
            and self.interpolate
            and not self.use_conv_transpose
            and self.norm is None
            and isinstance(conv, nn.Conv2d)
            and conv.kernel_size == (3, 3)
            and conv.padding == (1, 1)
            and conv.stride == (1, 1)
            and conv.dilation == (1, 1)
            and conv.groups == 1
        )

    def forward(self, hidden_states: Tensor, output_size: int | None = None, *args, **kwargs) -> Tensor:
        if output_size is not None or args or kwargs or not self.fused():
            return super().forward(hidden_states, output_size, *args, **kwargs)
        conv = self.conv if self.name == "conv" else self.Conv2d_0
        return upsample_nearest2x_conv3x3(hidden_states, conv.weight, conv.bias)


def use_subpixel_upsampling(module: nn.Module) -> SpeedHandle:
    """Turn every diffusers `Upsample2D` in `module` into a `SubpixelUpsample2D`, in place.

    The module objects and their parameters stay the same (only the class changes).

    Returns:
        a handle: `count` layers switched; `remove()` turns them back into `Upsample2D`s.
    """
    return swap_class(module, Upsample2D, SubpixelUpsample2D, name="subpixel upsampling")


__all__ = ["SubpixelUpsample2D", "subpixel_kernels", "upsample_nearest2x_conv3x3", "use_subpixel_upsampling"]
