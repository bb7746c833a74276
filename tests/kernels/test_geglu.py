"""GEGLU: the front door equals diffusers' module; on Hopper the fused Gluon kernel equals fp32 arithmetic.

CPU tests pin the reference path, dispatch and tracing; `gpu` tests compare the Gluon kernel (both of its
schedules) with fp32 at SV3D's shapes (with ragged edges) and check that anything it cannot take falls back.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.activations import GEGLU

from a3d_cli.kernels.geglu import geglu, geglu_ref, geglu_supported
from a3d_cli.models.speed.geglu import FusedGEGLU, use_fused_geglu


def _gelu_module(dim_in: int, dim_out: int, bias: bool = True, seed: int = 0) -> GEGLU:
    torch.manual_seed(seed)
    return GEGLU(dim_in, dim_out, bias=bias).eval()


@pytest.mark.parametrize("bias", [True, False])
def test_front_door_equals_diffusers_geglu(bias: bool):
    module = _gelu_module(24, 40, bias)
    x = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x)
        got = geglu(x, module.proj.weight, module.proj.bias)
    assert got.shape == (2, 7, 40)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # the same PyTorch ops on the CPU


def test_bad_weight_shapes_are_named():
    with pytest.raises(ValueError, match=r"\[2N, K=8\]"):
        geglu(torch.randn(3, 8), torch.randn(5, 8))  # odd row count
    with pytest.raises(ValueError, match=r"\[2N, K=8\]"):
        geglu_ref(torch.randn(3, 8), torch.randn(6, 9), None)


def test_cpu_tensors_take_the_reference_path():
    assert not geglu_supported(torch.randn(4, 16).bfloat16(), torch.randn(32, 16).bfloat16(), None)


@pytest.mark.parametrize(("lead", "k", "n"), [((2, 3), 0, 4), ((2, 3), 8, 0), ((0, 3), 8, 4)])
def test_empty_products_keep_their_shapes(lead: tuple[int, ...], k: int, n: int):
    x, w, b = torch.randn(*lead, k), torch.randn(2 * n, k), torch.randn(2 * n)
    value, gate = torch.nn.functional.linear(x, w, b).chunk(2, dim=-1)
    out = geglu(x, w, b)
    assert out.shape == (*lead, n)
    torch.testing.assert_close(out, value * torch.nn.functional.gelu(gate))


def test_fused_module_keeps_parameters_and_output_and_traces_without_breaks():
    module = _gelu_module(16, 32)
    reference = _gelu_module(16, 32)
    holder = torch.nn.Sequential(module)
    state = {k: v.clone() for k, v in holder.state_dict().items()}
    handle = use_fused_geglu(holder)
    assert handle.count == 1 and isinstance(module, FusedGEGLU)
    assert use_fused_geglu(holder).count == 0  # already fused
    handle.remove()
    assert type(module) is GEGLU
    assert holder.state_dict().keys() == state.keys()
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(2))
    torch._dynamo.reset()
    try:
        compiled = torch.compile(module, backend="eager", fullgraph=True)  # fullgraph: a break would raise
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), reference(x))
    finally:
        torch._dynamo.reset()


def test_fused_module_with_gradients_runs_diffusers_forward():
    """The fused op has no backward, so a training call must not reach it (and gradients still flow)."""
    module = _gelu_module(8, 8)
    use_fused_geglu(module)
    x = torch.randn(4, 8, requires_grad=True)
    module(x).sum().backward()
    assert x.grad is not None and module.proj.weight.grad is not None


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected).norm() / expected.norm())


def _hopper_inputs(
    m: int, k: int, n: int, bias: bool, seed: int = 0, scale: float = 1.0, dtype: torch.dtype = torch.bfloat16
):
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("the fused kernel needs a Hopper GPU")
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = (torch.randn(m, k, device="cuda", generator=g) * scale).to(dtype)
    w = (torch.randn(2 * n, k, device="cuda", generator=g) * k**-0.5).to(dtype)
    b = (torch.randn(2 * n, device="cuda", generator=g) * 0.1).to(dtype) if bias else None
    return x, w, b


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("m", "k", "n", "bias"),
    [
        (217728, 320, 1280, True),  # SV3D's 72² level, CFG batch (resident weights)
        (54432, 640, 2560, True),  # the 36² level (streamed)
        (13608, 1280, 5120, True),  # the 18² level (streamed)
        (1000, 72, 200, True),  # ragged in every dimension (tiles cut by TMA)
        (4101, 64, 256, False),
        (5, 1280, 64, True),  # fewer rows than one tile
    ],
)
def test_fused_kernel_matches_fp32(m: int, k: int, n: int, bias: bool):
    x, w, b = _hopper_inputs(m, k, n, bias)
    assert geglu_supported(x, w, b)
    expected = geglu_ref(x.float(), w.float(), None if b is None else b.float())
    got = geglu(x, w, b)
    assert got.shape == (m, n) and got.dtype == torch.bfloat16
    # bf16 output rounding is 2^-9 relative; the two-kernel bf16 path measured 3.0e-3 here
    assert _relative_error(got, expected) < 3e-3
    unfused = geglu_ref(x, w, b)
    assert _relative_error(got, expected) <= _relative_error(unfused, expected) * 1.1


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("m", "k", "n"),
    [
        (131072, 320, 1280),  # MV-VDM's 32² level: CFG 2 × 4 views × 16 frames × 32² tokens (resident weights)
        (32768, 640, 2560),  # the 16² level (streamed)
        (8192, 1280, 5120),  # the 8² level (streamed)
        (2048, 1280, 5120),  # the 4² level: the motion modules of the bottom, the fewest rows
    ],
)
def test_fused_kernel_matches_fp32_at_mvvdm_shapes(m: int, k: int, n: int, dtype: torch.dtype):
    """mvvideo runs MV-VDM in fp16 by default and bf16 in the benchmarks; both go through the kernel."""
    x, w, b = _hopper_inputs(m, k, n, True, dtype=dtype)
    assert geglu_supported(x, w, b)
    expected = geglu_ref(x.float(), w.float(), b.float())
    got = geglu(x, w, b)
    assert got.shape == (m, n) and got.dtype == dtype
    # output rounding: 2^-9 relative in bf16, 2^-12 in fp16; the bound is bf16's two-kernel error (above)
    assert _relative_error(got, expected) < 3e-3
    assert _relative_error(got, expected) <= _relative_error(geglu_ref(x, w, b), expected) * 1.1


@pytest.mark.gpu
@pytest.mark.parametrize("schedule", ["RESIDENT", "STREAMED"])
def test_both_schedules_match_fp32_over_the_whole_range(schedule: str):
    x, w, b = _hopper_inputs(4101, 320, 1280, True, seed=1, scale=4)  # gates far into both tails
    import a3d_cli.kernels.geglu_gluon as gluon_kernel

    expected = geglu_ref(x.float(), w.float(), b.float())
    got = gluon_kernel.geglu_gluon(x, w, b, schedule=getattr(gluon_kernel, schedule))
    assert _relative_error(got, expected) < 3e-3
    # elementwise: bf16 rounding of the output plus a small floor
    torch.testing.assert_close(got.float(), expected, rtol=2**-8, atol=1e-3)


@pytest.mark.gpu
def test_schedules_follow_the_input_width_and_the_resident_one_refuses_wide_inputs():
    x, w, b = _hopper_inputs(300, 1280, 256, True)
    import a3d_cli.kernels.geglu_gluon as gluon_kernel

    assert gluon_kernel.schedule_for(320).resident and not gluon_kernel.schedule_for(640).resident
    with pytest.raises(ValueError, match="too wide for the resident schedule"):
        gluon_kernel.geglu_gluon(x, w, b, schedule=gluon_kernel.RESIDENT)


@pytest.mark.gpu
def test_shapes_the_kernel_cannot_take_fall_back():
    x = torch.randn(10, 12, device="cuda").bfloat16()  # K = 12 is not a multiple of 8
    w = torch.randn(32, 12, device="cuda").bfloat16()
    assert not geglu_supported(x, w, None)
    torch.testing.assert_close(geglu(x, w), geglu_ref(x, w, None))
    x32, w32 = x.float(), w.float()  # fp32 is not taken either
    assert not geglu_supported(x32, w32, None)
    empty_k = torch.randn(10, 0, device="cuda").bfloat16(), torch.randn(32, 0, device="cuda").bfloat16()
    no_columns = torch.randn(10, 16, device="cuda").bfloat16(), torch.randn(0, 16, device="cuda").bfloat16()
    for x0, w0 in (empty_k, no_columns):  # nothing to tile: the reference handles the empty products
        assert not geglu_supported(x0, w0, None)
        torch.testing.assert_close(geglu(x0, w0), geglu_ref(x0, w0, None))


def test_class_swap_refuses_a_class_that_cannot_stand_in():
    from a3d_cli.models.speed.handles import swap_class

    with pytest.raises(TypeError, match="must subclass GEGLU"):
        swap_class(_gelu_module(8, 8), GEGLU, torch.nn.Linear)
