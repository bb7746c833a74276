"""MV-VDM's speed settings (`MVVDMComponents.accelerate`): the fused GEGLU keeps what the UNet computes.

CPU tests swap the GEGLUs (the class swap works anywhere; off CUDA the fused op runs the reference
arithmetic) and compare the UNet's output with the unswapped one. The `gpu` test runs the Gluon kernel
inside the tiny UNet in bf16 and checks its error against fp32 stays at eager bf16's level.
"""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.activations import GEGLU
from helpers import tiny_mvvdm_unet, tiny_unet_inputs

from a3d_cli.models.mvvdm.components import tiny_components
from a3d_cli.models.speed.acceleration import backend_flags_kept
from a3d_cli.models.speed.geglu import FusedGEGLU


def _components():
    comp = tiny_components(0)
    comp.unet = tiny_mvvdm_unet(0)  # non-zero I2V adapters: every branch of the UNet is live
    return comp


def _geglus(module: torch.nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, GEGLU)]


def test_accelerate_for_cuda_fuses_every_geglu_and_keeps_the_unet_output():
    comp = _components()
    reference = copy.deepcopy(comp.unet)
    names = _geglus(comp.unet)
    # spatial transformers and motion modules alike
    assert any(".motion_modules." in n for n in names) and any(".attentions." in n for n in names)
    args = tiny_unet_inputs(2, seed=5)
    with backend_flags_kept():  # "cuda" also sets the process-wide backend flags
        report = comp.accelerate("cuda")  # no CUDA needed for the class swap; compile stays off
        try:
            assert report.enabled and not report.compile and report.fused_geglus == len(names) > 0
            assert all(type(m) is FusedGEGLU for m in comp.unet.modules() if isinstance(m, GEGLU))
            again = comp.accelerate("cuda")  # a batch worker's cached model, accelerated again for its next job
            # the two TF32 switches only: nothing is swapped anew, yet the report counts the fused layers
            assert again.fused_geglus == len(names) and again.handle.count == 2
            again.handle.remove()
            assert all(type(m) is FusedGEGLU for m in comp.unet.modules() if isinstance(m, GEGLU))
            with torch.no_grad():
                got = comp.unet(*args).sample
                expected = reference(*args).sample
        finally:
            report.handle.remove()
    # off CUDA the fused op is the reference arithmetic: the same products in the same order
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert all(type(m) is GEGLU for m in comp.unet.modules() if isinstance(m, GEGLU))  # removed


def test_accelerate_without_fusion_or_off_cuda_leaves_the_geglus():
    comp = _components()
    with backend_flags_kept():
        report = comp.accelerate("cuda", fused_geglu=False)
        report.handle.remove()
    assert report.fused_geglus == 0
    assert comp.accelerate("cpu").fused_geglus == 0
    assert not any(isinstance(m, FusedGEGLU) for m in comp.unet.modules())


@pytest.mark.gpu
def test_fused_geglu_kernel_in_the_bf16_unet_is_as_close_to_fp32_as_eager_bf16():
    """The tiny UNet's widths (8, 16, 24) are multiples of 8, so on Hopper its GEGLUs run the Gluon kernel;
    a wrong tile, a swapped gate/value half or a bad edge would be an O(1) error, far above bf16's."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("the fused kernel needs a Hopper GPU")
    from a3d_cli.kernels.geglu import geglu_supported

    comp = _components()
    unet = comp.unet.cuda()
    args = tuple(a.cuda() for a in tiny_unet_inputs(2, seed=5))
    with torch.no_grad():
        reference = unet(*args).sample
    half = copy.deepcopy(unet).bfloat16()
    half_args = tuple(a.bfloat16() if a.is_floating_point() else a for a in args)
    comp.unet = copy.deepcopy(half)
    ff = next(m for m in comp.unet.modules() if isinstance(m, GEGLU))
    probe = torch.randn(64, ff.proj.in_features, device="cuda", dtype=torch.bfloat16)
    assert geglu_supported(probe, ff.proj.weight, ff.proj.bias)  # the kernel, not the fallback, is under test
    with backend_flags_kept():
        report = comp.accelerate("cuda")
        with torch.no_grad():
            eager = half(*half_args).sample.float()
            got = comp.unet(*half_args).sample.float()

    def error(x: torch.Tensor) -> float:
        return float((x - reference).norm() / reference.norm())

    assert report.fused_geglus == len(_geglus(comp.unet)) > 0
    assert error(got) < 2 * error(eager) + 1e-3


def test_sds_denoiser_accelerate_fuses_the_unet_geglus_and_keeps_its_guidance():
    """`MvvdmDenoiser.accelerate` (the sds stage's one entry point) swaps the UNet's GEGLUs (the VAE encoder,
    which the gradient flows through, has none) and keeps the guidance forward."""
    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser

    comp = _components()
    den = MvvdmDenoiser(comp)
    names = _geglus(comp.unet)
    unet_args = tiny_unet_inputs(2, seed=5)
    with torch.no_grad():
        expected = comp.unet(*unet_args).sample
    with backend_flags_kept():
        report = den.accelerate("cuda")
        try:
            assert report.fused_geglus == len(names) > 0
            assert not any(isinstance(m, GEGLU) for m in comp.vae.encoder.modules())  # nothing there to fuse
            with torch.no_grad():
                got = comp.unet(*unet_args).sample
        finally:
            report.handle.remove()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert den.accelerate("cpu").fused_geglus == 0


def test_sds_denoiser_runs_its_vae_encoder_nhwc_eagerly_and_gives_it_back():
    """Without compiling, `MvvdmDenoiser.accelerate` makes the VAE encoder's conv weights channels-last and
    its GroupNorms the NHWC kernels' (the SiLUs after them fused); `nhwc_encoder=False` leaves it alone, and
    removing the handle restores every layer."""
    from torch import nn

    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser
    from a3d_cli.models.speed.group_norm import FusedGroupNorm, FusedGroupNormSiLU

    comp = _components()
    den = MvvdmDenoiser(comp)
    encoder = comp.vae.encoder
    norms = sum(type(m) is nn.GroupNorm for m in encoder.modules())
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = den.encode(images)
    with backend_flags_kept():
        plain = den.accelerate("cuda", nhwc_encoder=False)
        assert plain.fused_group_norms == 0 and sum(type(m) is nn.GroupNorm for m in encoder.modules()) == norms
        plain.handle.remove()
        report = den.accelerate("cuda")
        try:
            fused = [m for m in encoder.modules() if isinstance(m, (FusedGroupNorm, FusedGroupNormSiLU))]
            assert report.fused_group_norms == len(fused) == norms > 0
            assert not any(type(m) is nn.SiLU for m in encoder.modules())
            assert encoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
            assert report.as_metrics()["fused_group_norms"] == norms
            assert den.accelerate("cuda").fused_group_norms == norms  # a second job on the same cached model
            with torch.no_grad():
                got = den.encode(images)  # on the CPU: PyTorch's GroupNorm and SiLU, NHWC convolutions
        finally:
            report.handle.remove()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert sum(type(m) is nn.GroupNorm for m in encoder.modules()) == norms
    assert any(type(m) is nn.SiLU for m in encoder.modules())
    assert encoder.conv_in.weight.is_contiguous()
