"""benchmarks/bench_sds.py: `--no-wide-head-shortcut` takes exactly the VAE encoder's attention shortcut out."""

from __future__ import annotations

import sys

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_sds as bench  # noqa: E402

from a3d_cli.models.mvvdm.denoiser import load_mvvdm_denoiser  # noqa: E402
from a3d_cli.models.speed.attention import ShortcutAttnProcessor  # noqa: E402


def _shortcut_layers(module) -> int:  # noqa: ANN001
    return sum(isinstance(getattr(m, "processor", None), ShortcutAttnProcessor) for m in module.modules())


def test_the_wide_head_shortcut_is_taken_out_of_the_vae_encoder_only_and_put_back():
    den = load_mvvdm_denoiser(None)  # the tiny random MV-VDM; MvvdmDenoiser gives its VAE encoder the shortcut
    encoder, unet_before = den.comp.vae.encoder, _shortcut_layers(den.comp.unet)
    assert _shortcut_layers(encoder) > 0
    handle = bench.take_out_wide_head_shortcut(den)
    assert handle.count > 0 and _shortcut_layers(encoder) == 0
    assert _shortcut_layers(den.comp.unet) == unet_before
    handle.remove()
    assert _shortcut_layers(encoder) == handle.count
