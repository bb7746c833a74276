"""What SV3D is conditioned on, as plain functions: the per-frame vector and the CLIP input image.

The vector (sgm's `ConcatTimestepEmbedderND` outputs, concatenated in config order) is, per frame:
``[emb256(cond_aug) | emb512(polar_rad) | emb512(azimuth_rad)]`` for sv3d_p (1280 wide) and
``emb256(cond_aug)`` for sv3d_u, where ``embD(x) = [cos(x·ω_i), sin(x·ω_i)]``, ``ω_i = 10000^(-i/(D/2))``,
``i = 0 … D/2-1`` (cos first, no frequency shift). Angles are in radians; cond_aug is the raw noise
strength (1e-5). The unconditional CFG branch uses the same vector.

The CLIP input is the clean image in [-1, 1], resized to 224 px with an antialiasing Gaussian blur and
bicubic interpolation (kornia's `resize(..., antialias=True, align_corners=True)` recipe that sgm uses),
mapped to [0, 1] and normalised with OpenAI CLIP's mean and std.

Examples:
    >>> vec = sv3d_vector(torch.full((1, 21), 1e-5), torch.zeros(1, 21), torch.zeros(1, 21))  # [1, 21, 1280]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import Tensor

from a3d_cli.models.sv3d.config import ANGLE_DIM, COND_AUG_DIM

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def sinusoid(x: Tensor, dim: int) -> Tensor:
    """sgm's `timestep_embedding`: cos-first sinusoids, max period 10000.

    Args:
        x: [...] real values (radians, noise strengths, c_noise …).
        dim: even output width.

    Returns:
        [..., dim] float32.
    """
    flat = x.reshape(-1).float()  # [N]
    emb = get_timestep_embedding(flat, dim, flip_sin_to_cos=True, downscale_freq_shift=0)  # [N, dim]
    return emb.reshape(*x.shape, dim)


def sv3d_vector(cond_aug: Tensor, polar_rad: Tensor | None = None, azimuth_rad: Tensor | None = None) -> Tensor:
    """The per-frame vector condition of SV3D.

    Args:
        cond_aug: [B, F] noise strength added to the conditioning image (1e-5 in the reference).
        polar_rad: [B, F] polar angle = 90° − elevation, radians (sv3d_p only).
        azimuth_rad: [B, F] azimuth relative to the input view, radians (sv3d_p only).

    Returns:
        [B, F, 256] without cameras (sv3d_u), [B, F, 1280] with them (sv3d_p).
    """
    if (polar_rad is None) != (azimuth_rad is None):
        raise ValueError("pass both polar_rad and azimuth_rad, or neither")
    parts = [sinusoid(cond_aug, COND_AUG_DIM)]  # [B, F, 256]
    if polar_rad is not None and azimuth_rad is not None:
        if polar_rad.shape != cond_aug.shape or azimuth_rad.shape != cond_aug.shape:
            raise ValueError(
                f"cond_aug {list(cond_aug.shape)}, polar_rad {list(polar_rad.shape)} and azimuth_rad "
                f"{list(azimuth_rad.shape)} must all be [B, F]"
            )
        parts += [sinusoid(polar_rad, ANGLE_DIM), sinusoid(azimuth_rad, ANGLE_DIM)]  # 2 × [B, F, 512]
    return torch.cat(parts, dim=-1)


def _gaussian_kernel1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - size // 2  # [size], centred (size is odd)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def resize_antialiased(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Downscale like kornia's antialiased resize: Gaussian blur (σ = (factor−1)/2), then bicubic.

    Args:
        image: [B, C, H, W].
        size: (height, width) of the result.

    Returns:
        [B, C, size[0], size[1]].
    """
    b, c, h, w = image.shape
    out = image
    for axis, factor in ((2, h / size[0]), (3, w / size[1])):
        sigma = max((factor - 1.0) / 2.0, 0.001)
        ks = max(int(4.0 * sigma), 3)
        ks += 1 - ks % 2  # odd
        k = _gaussian_kernel1d(ks, sigma, out.dtype, out.device)  # [ks]
        pad = ks // 2
        if axis == 2:
            out = F.pad(out, (0, 0, pad, pad), mode="reflect") if pad < out.shape[2] else out
            out = F.conv2d(out.reshape(b * c, 1, *out.shape[2:]), k.view(1, 1, ks, 1)).reshape(b, c, -1, out.shape[3])
        else:
            out = F.pad(out, (pad, pad, 0, 0), mode="reflect") if pad < out.shape[3] else out
            out = F.conv2d(out.reshape(b * c, 1, *out.shape[2:]), k.view(1, 1, 1, ks)).reshape(b, c, out.shape[2], -1)
    return F.interpolate(out, size=size, mode="bicubic", align_corners=True)


def clip_input(image: Tensor, size: int) -> Tensor:
    """The CLIP image tower's input from an image in [-1, 1].

    Args:
        image: [B, 3, H, W] in [-1, 1].
        size: the tower's input side (224 for ViT-H/14).

    Returns:
        [B, 3, size, size] normalised with CLIP's mean and std.
    """
    x = resize_antialiased(image.float(), (size, size))
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


__all__ = ["CLIP_MEAN", "CLIP_STD", "clip_input", "resize_antialiased", "sinusoid", "sv3d_vector"]
