"""MV-VDM's attention processors against plain diffusers / hand-written references (tiny sizes)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from helpers import tiny_mvvdm_unet, tiny_unet_inputs

from a3d_cli.models.mvvdm import MVVDMUNet
from a3d_cli.models.mvvdm.attention import (
    MVDreamI2VAttnProcessor,
    SpatioTemporalAttnProcessor,
    VideoLayout,
    sine_encoding_2d,
)

B, V, F, H, W, C, HEADS = 2, 4, 5, 3, 2, 16, 2


def layout() -> VideoLayout:
    lay = VideoLayout(num_views=V)
    lay.set(B, F, H, W, num_levels=1)
    return lay


def randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def motion_module() -> AnimateDiffTransformer3D:
    torch.manual_seed(0)
    return AnimateDiffTransformer3D(
        num_attention_heads=HEADS, attention_head_dim=C // HEADS, in_channels=C, norm_num_groups=4,
        attention_bias=False, activation_fn="geglu", positional_embeddings="sinusoidal",
        num_positional_embeddings=32, double_self_attention=True,
    ).eval()


def with_spatiotemporal(mm: AnimateDiffTransformer3D, mix: float) -> AnimateDiffTransformer3D:
    ours = copy.deepcopy(mm)
    lay = layout()
    for blk in ours.transformer_blocks:
        blk.pos_embed = None
        for i, attn in enumerate((blk.attn1, blk.attn2)):
            proc = SpatioTemporalAttnProcessor(C, lay)
            randomize(proc, 10 + i)
            with torch.no_grad():  # randomize leaves the frame-encoding buffer as built
                proc.alpha_blender.mix_factor.fill_(mix)
            attn.set_processor(proc)
    return ours


def test_blender_on_temporal_side_is_plain_animatediff():
    plain = motion_module()
    ours = with_spatiotemporal(plain, mix=float("-inf"))  # σ(μ) = 0: temporal branch only
    x = torch.randn(B * V * F, C, H, W)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, num_frames=F), plain(x, num_frames=F))
        halfway = with_spatiotemporal(plain, mix=0.0)(x, num_frames=F)  # the released init: 0.5 / 0.5
    assert (halfway - plain(x, num_frames=F)).abs().max() > 1e-3


def reference_sine_2d(h: int, w: int, c: int) -> torch.Tensor:
    """DETR's normalised sine encoding, written out element by element."""
    half = c // 2
    out = torch.zeros(h, w, c, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            for axis, pos in ((0, (i + 1) / (h + 1e-6) * 2 * math.pi), (1, (j + 1) / (w + 1e-6) * 2 * math.pi)):
                for k in range(half):
                    arg = pos / 10000 ** (2 * (k // 2) / half)
                    out[i, j, axis * half + k] = math.sin(arg) if k % 2 == 0 else math.cos(arg)
    return out.float()


@pytest.mark.parametrize("h,w,c", [(3, 2, 16), (4, 4, 8), (1, 5, 12)])
def test_sine_encoding_2d_formula(h, w, c):
    torch.testing.assert_close(sine_encoding_2d(h, w, c), reference_sine_2d(h, w, c), atol=1e-5, rtol=1e-5)


def softmax_attention(q, k, v, heads):
    """Per-head softmax(q kᵀ / √d) v on [L, C] tensors (no batching tricks)."""
    d = q.shape[-1] // heads
    outs = []
    for hd in range(heads):
        s = slice(hd * d, (hd + 1) * d)
        a = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(d), dim=-1)
        outs.append(a @ v[:, s])
    return torch.cat(outs, dim=-1)


def test_blender_on_spatial_side_is_joint_attention_over_views_and_pixels():
    attn = Attention(query_dim=C, heads=HEADS, dim_head=C // HEADS, bias=False, out_bias=True).eval()
    proc = SpatioTemporalAttnProcessor(C, layout())
    randomize(proc, 3)
    with torch.no_grad():
        proc.alpha_blender.mix_factor.fill_(float("inf"))  # σ(μ) = 1: spatial branch only
    x = torch.randn(B * V * H * W, F, C)  # rows (b, v, y, x)
    with torch.no_grad():
        got = proc(attn, x)
        x6 = x.reshape(B, V, H, W, F, C)
        pe = reference_sine_2d(H, W, C)
        want = torch.zeros_like(x6)
        for b in range(B):
            for f in range(F):
                tokens = (x6[b, :, :, :, f] + pe).reshape(V * H * W, C)  # every view and pixel of frame f
                o = softmax_attention(proc.to_q_sp(tokens), proc.to_k_sp(tokens), proc.to_v_sp(tokens), HEADS)
                want[b, :, :, :, f] = proc.to_out_sp(o).reshape(V, H, W, C)
    torch.testing.assert_close(got, want.reshape(B * V * H * W, F, C), atol=1e-5, rtol=1e-4)


def spatial_attention(seed: int = 0) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=C, heads=HEADS, dim_head=C // HEADS, bias=False, out_bias=True).eval()


def test_zero_i2v_output_is_plain_mvdream_multiview_attention():
    attn = spatial_attention()
    proc = MVDreamI2VAttnProcessor(C, layout())
    randomize(proc, 5)
    with torch.no_grad():
        proc.to_out_i2v.weight.zero_()
        proc.to_out_i2v.bias.zero_()
    L = H * W
    x = torch.randn(B * V * F, L, C)  # rows (b, v, f)
    with torch.no_grad():
        attn.set_processor(proc)
        ours = attn(x)
        attn.set_processor(AttnProcessor2_0())  # MVDream: plain self-attention on (b f) (v l) tokens
        grouped = x.reshape(B, V, F, L, C).permute(0, 2, 1, 3, 4).reshape(B * F, V * L, C)
        plain = attn(grouped).reshape(B, F, V, L, C).permute(0, 2, 1, 3, 4).reshape(B * V * F, L, C)
    torch.testing.assert_close(ours, plain)


def test_i2v_branch_matches_first_frame_attention_formula():
    attn = spatial_attention(1)
    proc = MVDreamI2VAttnProcessor(C, layout())
    randomize(proc, 6)
    attn.set_processor(proc)
    L = H * W
    x = torch.randn(B * V * F, L, C)
    with torch.no_grad():
        got = attn(x)
        x5 = x.reshape(B, V, F, L, C)
        want = torch.zeros_like(x5)
        for b in range(B):
            first = x5[b, :, 0].reshape(V * L, C)  # frame 0 of all views: the I2V keys/values
            for f in range(F):
                tok = x5[b, :, f].reshape(V * L, C)
                mv = softmax_attention(attn.to_q(tok), attn.to_k(tok), attn.to_v(tok), HEADS)
                i2v = softmax_attention(proc.to_q_i2v(tok), attn.to_k(first), attn.to_v(first), HEADS)
                want[b, :, f] = attn.to_out[0](mv + proc.to_out_i2v(i2v)).reshape(V, L, C)
    torch.testing.assert_close(got, want.reshape(B * V * F, L, C), atol=1e-5, rtol=1e-4)


def test_views_talk_within_a_frame_and_every_frame_sees_frame_zero():
    attn = spatial_attention(2)
    proc = MVDreamI2VAttnProcessor(C, layout())
    randomize(proc, 7)
    attn.set_processor(proc)
    x = torch.randn(B, V, F, H * W, C)
    with torch.no_grad():
        base = attn(x.reshape(-1, H * W, C)).reshape(B, V, F, H * W, C)
        y = x.clone()
        y[0, 1, 2] += 1.0  # view 1, frame 2 of video 0
        moved = attn(y.reshape(-1, H * W, C)).reshape(B, V, F, H * W, C)
        z = x.clone()
        z[0, 3, 0] += 1.0  # view 3, frame 0 (the condition frame)
        moved0 = attn(z.reshape(-1, H * W, C)).reshape(B, V, F, H * W, C)
    changed = (moved - base).abs().amax(dim=(-1, -2)) > 1e-6  # [B, V, F]
    assert changed[0, :, 2].all() and not changed[0, :, 3].any() and not changed[1].any()
    assert ((moved0 - base).abs().amax(dim=(-1, -2))[0] > 1e-6).all()  # all views, all frames


@pytest.fixture(scope="module")
def tiny_unet() -> MVVDMUNet:
    return tiny_mvvdm_unet(0)


def test_unet_batch_rows_are_independent(tiny_unet):
    x, t, txt, img, cam = tiny_unet_inputs(2)
    with torch.no_grad():
        both = tiny_unet(x, t, txt, img, cam).sample
        one = [tiny_unet(x[i:i + 1], t[i:i + 1], txt[i:i + 1], img[i:i + 1], cam[i:i + 1]).sample for i in range(2)]
    torch.testing.assert_close(both, torch.cat(one), atol=1e-5, rtol=1e-4)


def test_unet_is_equivariant_to_reordering_views(tiny_unet):
    x, t, txt, img, cam = tiny_unet_inputs(1, seed=3)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = tiny_unet(x, t, txt, img, cam).sample
        out_p = tiny_unet(x[:, perm], t, txt, img[:, perm], cam[:, perm]).sample
    torch.testing.assert_close(out_p, out[:, perm], atol=1e-5, rtol=1e-4)


def test_unet_uses_camera_text_and_image_inputs(tiny_unet):
    x, t, txt, img, cam = tiny_unet_inputs(1, seed=4)
    with torch.no_grad():
        out = tiny_unet(x, t, txt, img, cam).sample
        for changed in (
            (x, t, txt, img, cam + 1),
            (x, t, txt + 1, img, cam),
            (x, t, txt, img + 1, cam),
        ):
            assert (tiny_unet(*changed).sample - out).abs().max() > 1e-4
