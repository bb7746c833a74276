"""Short-sequence attention: the front door equals SDPA per head; on CUDA the fused kernel equals fp32.

CPU tests pin the reference path, the layout checks and tracing; `gpu` tests compare the Triton kernel with
fp32 arithmetic at SVD's and AnimateDiff's temporal shapes, with ragged batches and strided inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from a3d_cli.kernels.attention_ref import merge_heads, split_heads
from a3d_cli.kernels.short_attention import short_attention, short_attention_ref, short_attention_supported
from a3d_cli.models.speed.attention import attend_tokens


def _qkv(b: int, length: int, m: int, heads: int, d: int, dv: int | None = None, device: str = "cpu", seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    dv = d if dv is None else dv
    q = torch.randn(b, length, heads * d, generator=g, device=device)
    k = torch.randn(b, m, heads * d, generator=g, device=device)
    v = torch.randn(b, m, heads * dv, generator=g, device=device)
    return q, k, v


def _sdpa_per_head(q, k, v, heads, scale=None):
    out = F.scaled_dot_product_attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), scale=scale)
    return merge_heads(out)


@pytest.mark.parametrize(
    ("b", "length", "m", "heads", "d", "dv", "scale"),
    [(6, 21, 21, 5, 16, 16, None), (3, 16, 16, 8, 5, 5, None), (2, 7, 12, 2, 8, 4, 0.3), (1, 1, 3, 1, 4, 4, None)],
)
def test_front_door_equals_sdpa_per_head(b, length, m, heads, d, dv, scale):
    q, k, v = _qkv(b, length, m, heads, d, dv)
    got = short_attention(q, k, v, heads, scale)
    assert got.shape == (b, length, heads * dv)
    torch.testing.assert_close(got, _sdpa_per_head(q, k, v, heads, scale), rtol=1e-5, atol=1e-5)


def test_bad_layouts_are_named():
    q, k, v = _qkv(2, 5, 5, 2, 4)
    with pytest.raises(ValueError, match="multiples of 3 heads"):
        short_attention(q, k, v, heads=3)
    with pytest.raises(ValueError, match="do not match"):
        short_attention(q, k[:1], v, heads=2)
    with pytest.raises(ValueError, match=r"\[B, L, H·d\]"):
        short_attention(q[0], k, v, heads=2)


def test_cpu_and_fp32_and_long_sequences_are_not_taken_by_the_kernel():
    q, k, v = _qkv(2, 5, 5, 2, 8)
    assert not short_attention_supported(q, k, v, 2)  # CPU
    if torch.cuda.is_available():
        qc, kc, vc = (t.cuda() for t in (q, k, v))
        assert not short_attention_supported(qc, kc, vc, 2)  # fp32
        long_q = torch.randn(2, 33, 16, device="cuda", dtype=torch.bfloat16)
        assert not short_attention_supported(long_q, long_q, long_q, 2)


def test_the_op_traces_as_one_call():
    q, k, v = _qkv(4, 21, 21, 2, 8)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(lambda a, b, c: short_attention(a, b, c, 2), backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(q, k, v), short_attention_ref(q, k, v, 2))
    finally:
        torch._dynamo.reset()


def test_the_op_passes_pytorchs_custom_op_checks():
    """Schema, fake (meta) outputs against real ones, autograd registration: with narrower values, differing
    query/key lengths and strided inputs (on the CPU the op runs its reference; on CUDA the kernel)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    qkv = torch.randn(5, 21, 3 * 32, device=device, dtype=dtype)
    q, k = qkv[..., :32], qkv[:, :13, 32:64]
    v = torch.randn(5, 13, 16, device=device, dtype=dtype)
    torch.library.opcheck(torch.ops.a3d.short_attention.default, (q, k, v, 4, 0.25))


def test_attend_tokens_routes_long_sequences_and_gradients_away_from_the_kernel():
    q, k, v = _qkv(2, 40, 40, 2, 8)  # 40 > 32: the SDPA route
    torch.testing.assert_close(attend_tokens(q, k, v, 2), _sdpa_per_head(q, k, v, 2), rtol=1e-5, atol=1e-5)
    q, k, v = (t.requires_grad_(True) for t in _qkv(2, 21, 21, 2, 8))
    attend_tokens(q, k, v, 2).square().sum().backward()  # the kernel has no backward: this must not reach it
    assert q.grad is not None and k.grad is not None and v.grad is not None


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected).norm() / expected.norm())


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("b", "length", "heads", "d"),
    [
        (2 * 5184, 21, 5, 64),  # SV3D's temporal attention at 72² (CFG batch)
        (2 * 81, 21, 20, 64),  # its 9² level, 1280 channels
        (1001, 16, 8, 40),  # AnimateDiff's 16 frames, 320 channels in 8 heads of 40; ragged batch
        (7, 32, 1, 128),  # the largest sequence and head the kernel takes
    ],
)
def test_triton_kernel_matches_fp32(b: int, length: int, heads: int, d: int):
    q, k, v = (t.bfloat16() for t in _qkv(b, length, length, heads, d, device="cuda"))
    assert short_attention_supported(q, k, v, heads)
    expected = short_attention_ref(q.float(), k.float(), v.float(), heads)
    got = short_attention(q, k, v, heads)
    assert got.shape == (b, length, heads * d) and got.dtype == torch.bfloat16
    library = _sdpa_per_head(q, k, v, heads)  # what PyTorch's fused kernels give in bf16
    assert _relative_error(got, expected) <= max(_relative_error(library, expected) * 1.5, 4e-3)


@pytest.mark.gpu
def test_gradients_on_cuda_take_the_differentiable_route():
    q, k, v = (t.bfloat16().requires_grad_(True) for t in _qkv(64, 21, 21, 5, 64, device="cuda"))
    assert short_attention_supported(q, k, v, 5)  # the kernel would take the shapes, but it has no backward
    attend_tokens(q, k, v, 5).float().square().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.gpu
def test_triton_kernel_reads_strided_inputs_in_place():
    """Slices of one fused [B, L, 3C] projection (row stride 3C) and differing key/query lengths."""
    qkv = torch.randn(300, 21, 3 * 128, device="cuda", dtype=torch.float16)
    q, k, v = qkv[..., :128], qkv[:, :13, 128:256], qkv[:, :13, 256:]
    assert short_attention_supported(q, k, v, 2) and not q.is_contiguous()
    expected = short_attention_ref(q.float(), k.float(), v.float(), 2)
    assert _relative_error(short_attention(q, k, v, 2), expected) < 4e-3
