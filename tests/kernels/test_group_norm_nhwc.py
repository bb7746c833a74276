"""The NHWC GroupNorm (+ SiLU): its arithmetic against PyTorch's, its Triton kernels against that arithmetic
(under Triton's interpreter on the CPU, natively on CUDA), and the swap into a VAE encoder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from a3d_cli.kernels.group_norm import (
    TorchPasses,
    group_norm_act,
    group_norm_rows,
    group_statistics,
    triton_runs_on,
)

REPO = Path(__file__).resolve().parents[2]


def _reference(x: torch.Tensor, groups: int, weight, bias, eps: float, silu: bool) -> torch.Tensor:  # noqa: ANN001
    """PyTorch's GroupNorm (+ SiLU) of [N, rows, C] activations."""
    y = F.group_norm(x.transpose(1, 2), groups, weight, bias, eps).transpose(1, 2)
    return F.silu(y) if silu else y


@pytest.mark.parametrize(
    ("n", "rows", "channels", "groups", "silu", "affine"),
    [(2, 100, 8, 4, True, True), (3, 64, 12, 3, False, True), (1, 257, 16, 2, True, False), (2, 1, 6, 2, False, True)],
)
def test_the_passes_give_pytorchs_group_norm_and_its_gradients(n, rows, channels, groups, silu, affine):
    g = torch.Generator().manual_seed(rows)
    x = (torch.randn(n, rows, channels, generator=g, dtype=torch.float64) * 3 + 5).requires_grad_()
    weight = torch.randn(channels, generator=g, dtype=torch.float64).requires_grad_() if affine else None
    bias = torch.randn(channels, generator=g, dtype=torch.float64).requires_grad_() if affine else None
    dy = torch.randn(n, rows, channels, generator=g, dtype=torch.float64)
    inputs = [t for t in (x, weight, bias) if t is not None]

    y = group_norm_rows(x, groups, weight, bias, 1e-6, silu, TorchPasses)
    want = _reference(x, groups, weight, bias, 1e-6, silu)
    grads = torch.autograd.grad(y, inputs, dy)
    want_grads = torch.autograd.grad(want, inputs, dy)

    # the statistics and the coefficients are fp32 (as F.group_norm's), the reference here fp64
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_the_variance_holds_for_activations_far_from_zero():
    """Moments about a shift: a large mean must not swamp the variance (a one-pass Σx² would lose it in fp32)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4096, 8, generator=g) * 1e-2 + 300.0
    mean, rstd = group_statistics(x, 2, 1e-12)
    var = x.double().view(1, 4096, 2, 4).var(dim=(1, 3), unbiased=False)
    torch.testing.assert_close(rstd.double(), var.rsqrt(), rtol=1e-4, atol=0)
    torch.testing.assert_close(mean.double(), x.double().view(1, 4096, 2, 4).mean(dim=(1, 3)), rtol=1e-7, atol=0)


def test_off_cuda_the_entry_point_is_pytorchs_own_arithmetic():
    x = torch.randn(2, 8, 5, 5).to(memory_format=torch.channels_last)
    w, b = torch.randn(8), torch.randn(8)
    assert torch.equal(group_norm_act(x, 4, w, b, 1e-6, silu=True), F.silu(F.group_norm(x, 4, w, b, 1e-6)))
    assert torch.equal(group_norm_act(x, 2, w, b, 1e-5), F.group_norm(x, 2, w, b, 1e-5))


@pytest.mark.gpu
def test_only_well_formed_nhwc_cuda_inputs_take_the_kernels():
    x = torch.randn(2, 8, 4, 4, device="cuda").to(memory_format=torch.channels_last)
    w = torch.ones(8, device="cuda")
    assert triton_runs_on(x, 4, w, w)
    assert not triton_runs_on(x.contiguous(), 4)  # NCHW
    assert not triton_runs_on(x, 3)  # channels not in whole groups
    assert not triton_runs_on(x, 4, torch.ones(4, device="cuda"))  # a weight of the wrong size
    assert not triton_runs_on(x[:0], 4)  # empty


_INTERPRETED = textwrap.dedent(
    """
    import torch
    import a3d_cli.kernels.group_norm_triton as kernels
    from a3d_cli.kernels.group_norm import TorchPasses, group_norm_rows

    worst = 0.0
    default_rows = kernels.ROWS_PER_PROGRAM
    cases = [
        (2, default_rows + 37, 8, 4, True, torch.float32, default_rows),  # a short last block
        (1, 130, 12, 3, False, torch.float32, default_rows),  # channels not a power of two
        (2, 300, 32, 8, True, torch.bfloat16, default_rows),
        (1, 5000, 8, 1, True, torch.float32, 16),  # more blocks than one pass of the merging kernels takes
    ]
    for n, rows, c, groups, silu, dtype, rows_per_program in cases:
        kernels.ROWS_PER_PROGRAM = rows_per_program
        g = torch.Generator().manual_seed(rows)
        x = (torch.randn(n, rows, c, generator=g) * 3 + 5).to(dtype).requires_grad_()
        w = torch.randn(c, generator=g).requires_grad_()
        b = torch.randn(c, generator=g).requires_grad_()
        dy = torch.randn(n, rows, c, generator=g).to(dtype)
        outs = []
        for passes in (TorchPasses, kernels.TritonPasses):
            y = group_norm_rows(x, groups, w, b, 1e-6, silu, passes)
            outs.append([y, *torch.autograd.grad(y, (x, w, b), dy)])
        for got, want in zip(outs[1], outs[0]):
            scale = want.float().abs().max().item()
            # bf16 outputs may differ by one rounding; fp32 only by the order of fp32 sums
            tol = 2 ** -7 if (got.dtype == torch.bfloat16) else 1e-5
            worst = max(worst, (got.float() - want.float()).abs().max().item() / (scale * tol))
    print(worst)
    """
)


def test_the_triton_kernels_equal_the_pytorch_passes_under_the_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _INTERPRETED], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) <= 1.0


def _tiny_encoder() -> torch.nn.Module:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    return vae.encoder.eval()


def test_the_swap_fuses_each_silu_after_a_norm_and_undoes_cleanly():
    from torch import nn

    from a3d_cli.models.speed.group_norm import FusedGroupNorm, FusedGroupNormSiLU, use_fused_group_norm

    enc = _tiny_encoder()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = enc(x)
    norms = sum(type(m) is nn.GroupNorm for m in enc.modules())
    silus = sum(type(m) is nn.SiLU for m in enc.modules())

    handle = use_fused_group_norm(enc)
    fused = [m for m in enc.modules() if type(m) is FusedGroupNormSiLU]
    plain = [m for m in enc.modules() if type(m) is FusedGroupNorm]
    assert handle.count == norms == len(fused) + len(plain)
    assert len(plain) == 1  # the mid-block attention's norm: no SiLU after it
    assert not any(type(m) is nn.SiLU for m in enc.modules())  # every SiLU followed a norm and is fused
    with torch.no_grad():
        assert torch.equal(enc(x), before)  # off CUDA: F.group_norm then F.silu, as before

    handle.remove()
    assert sum(type(m) is nn.GroupNorm for m in enc.modules()) == norms
    assert sum(type(m) is nn.SiLU for m in enc.modules()) == silus
    assert use_fused_group_norm(enc).count == norms  # removable and re-appliable


def test_a_resnet_with_a_time_embedding_keeps_its_silu():
    from diffusers.models.resnet import ResnetBlock2D
    from torch import nn

    from a3d_cli.models.speed.group_norm import FusedGroupNorm, use_fused_group_norm

    block = ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=4, groups=4)
    use_fused_group_norm(block)
    assert type(block.nonlinearity) is nn.SiLU  # it also runs on the embedding
    assert type(block.norm1) is FusedGroupNorm and type(block.norm2) is FusedGroupNorm


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(3, 128, 64, 64), (2, 512, 17, 9), (1, 96, 33, 33)])
def test_the_triton_kernels_match_pytorch_on_cuda(shape, dtype):
    n, c, h, w = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(shape, generator=g, device="cuda") * 2 + 1).to(dtype).to(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(c, generator=g, device="cuda").to(dtype).requires_grad_()
    bias = torch.randn(c, generator=g, device="cuda").to(dtype).requires_grad_()
    dy = torch.randn(shape, generator=g, device="cuda").to(dtype).to(memory_format=torch.channels_last)
    for silu in (False, True):
        y = group_norm_act(x, 32, weight, bias, 1e-6, silu=silu)
        assert y.is_contiguous(memory_format=torch.channels_last)
        want = F.group_norm(x.float(), 32, weight.float(), bias.float(), 1e-6)
        want = F.silu(want) if silu else want
        got_grads = torch.autograd.grad(y, (x, weight, bias), dy)
        want_grads = torch.autograd.grad(want, (x, weight, bias), dy.float())
        tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-4, "atol": 1e-4}
        torch.testing.assert_close(y.float(), want, **tol)
        for got, ref in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(got.float(), ref.float(), **tol)


@pytest.mark.gpu
def test_an_nhwc_encoder_gives_the_nchw_encoders_latents_and_gradients_on_cuda(monkeypatch):
    from a3d_cli.models.speed.acceleration import channels_last_eagerly

    enc = _tiny_encoder().cuda()
    x = torch.rand(4, 3, 32, 32, device="cuda", requires_grad=True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # else each layout's TF32 rounding differs
    y0 = enc(x)
    (g0,) = torch.autograd.grad(y0.square().sum(), x)
    handle = channels_last_eagerly(enc)
    assert handle.count > 0
    y1 = enc(x)
    (g1,) = torch.autograd.grad(y1.square().sum(), x)
    handle.remove()
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g1, g0, rtol=1e-3, atol=1e-4)
