"""Tiny SV3D models and checkpoints for tests: the real code at a few channels, with random weights.

A tiny checkpoint is written in the official sgm key layout (plus the tiny config in its safetensors
metadata), so tests exercise exactly the loading path an official file takes. Random weights prove the
plumbing, never the quality: nothing here is meant for users.

Examples:
    >>> path = write_tiny_checkpoint(tmp_path / "sv3d_p.safetensors", "sv3d_p", seed=0)
"""

from __future__ import annotations

from pathlib import Path

import torch

from a3d_cli.models.sv3d.config import SV3DConfig, Variant
from a3d_cli.models.sv3d.loading import SV3DModels, build_models, save_official_checkpoint


def tiny_models(variant: Variant = "sv3d_p", seed: int = 0) -> SV3DModels:
    """Tiny networks with seeded random weights.

    Weights are re-drawn with a visible spread (including the zero-initialised output layers and the
    mix factors), so that every parameter influences the outputs the tests compare.
    """
    g = torch.Generator().manual_seed(seed)
    models = build_models(SV3DConfig.tiny(), variant, device="cpu")
    for name in ("unet", "vae", "clip"):
        for pname, param in models.component(name).named_parameters():
            noise = torch.randn(param.shape, generator=g)
            if param.ndim >= 2:  # weights: unit-variance outputs
                param.data = noise / max(1, param[0].numel()) ** 0.5
            elif pname.endswith("weight"):  # norm scales around 1
                param.data = 1.0 + 0.1 * noise
            else:  # biases, mix factors, class embedding
                param.data = 0.2 * noise
    return models


def write_tiny_checkpoint(path: Path, variant: Variant = "sv3d_p", seed: int = 0) -> Path:
    """Write a tiny checkpoint in the official key layout (tiny config in metadata) and return its path."""
    save_official_checkpoint(tiny_models(variant, seed), Path(path))
    return Path(path)
