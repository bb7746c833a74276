"""ShortcutAttnProcessor computes what diffusers' AttnProcessor2_0 computes, by shorter routes."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import a3d_cli.models.speed.attention as attention_module
from a3d_cli.models.speed.attention import ShortcutAttnProcessor, explicit_attention, use_shortcut_attention


def _pair(**kwargs) -> tuple[Attention, Attention]:
    """Two identical Attention layers: one with the reference processor, one with ours."""
    torch.manual_seed(0)
    ref = Attention(**kwargs).eval()
    ours = Attention(**kwargs).eval()
    ours.load_state_dict(ref.state_dict())
    ref.set_processor(AttnProcessor2_0())
    ours.set_processor(ShortcutAttnProcessor())
    return ref, ours


@pytest.mark.parametrize(
    ("name", "kwargs", "x_shape", "ctx_shape"),
    [
        ("self, long sequence (SDPA)", {"query_dim": 64, "heads": 4, "dim_head": 16}, (2, 40, 64), None),
        ("self, short sequence", {"query_dim": 64, "heads": 4, "dim_head": 16}, (6, 21, 64), None),
        (
            "cross, one token (value shortcut)",
            {"query_dim": 64, "cross_attention_dim": 48, "heads": 4, "dim_head": 16},
            (3, 50, 64),
            (3, 1, 48),
        ),
        (
            "cross, many tokens",
            {"query_dim": 64, "cross_attention_dim": 48, "heads": 4, "dim_head": 16},
            (2, 50, 64),
            (2, 77, 48),
        ),
        (
            "VAE-style: image input, group norm, residual, one wide head",
            {
                "query_dim": 320,
                "heads": 1,
                "dim_head": 320,
                "norm_num_groups": 32,
                "residual_connection": True,
                "rescale_output_factor": 2.0,
                "bias": True,
                "upcast_softmax": True,
            },
            (2, 320, 6, 7),
            None,
        ),
    ],
)
def test_matches_attn_processor_2_0(name, kwargs, x_shape, ctx_shape):
    ref, ours = _pair(**kwargs)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(x_shape, generator=g)
    ctx = None if ctx_shape is None else torch.randn(ctx_shape, generator=g)
    with torch.no_grad():
        expected = ref(x, encoder_hidden_states=ctx)
        got = ours(x, encoder_hidden_states=ctx)
    assert got.shape == expected.shape, name
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_short_sequences_leave_explicit_products_to_the_benchmarks():
    """Where the fused kernel cannot run (here: the CPU), short sequences go to SDPA, compiled or not; the
    padded explicit products of the pre-kernel route exist only as a benchmark variant."""
    ref, ours = _pair(query_dim=64, heads=4, dim_head=16)
    x = torch.randn(6, 21, 64)
    routes = []
    original = attention_module.explicit_attention

    def spy(*args, **kwargs):
        routes.append("explicit")
        return original(*args, **kwargs)

    attention_module.explicit_attention = spy
    try:
        torch._dynamo.reset()
        compiled = torch.compile(ours, backend="eager", fullgraph=True)
        with torch.no_grad():
            got = compiled(x)
            expected = ref(x)
            eager = ours(x)
    finally:
        attention_module.explicit_attention = original
        torch._dynamo.reset()
    assert routes == []
    assert not hasattr(attention_module, "SHORT_PAD")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager, expected, rtol=1e-5, atol=1e-5)


def test_mvvdm_sdpa_helper_passes_its_scale():
    from a3d_cli.models.mvvdm.attention import sdpa

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 7, 32, generator=g) for _ in range(3))
    heads, scale = 4, 0.3
    split = [t.view(3, 7, heads, 8).transpose(1, 2) for t in (q, k, v)]
    expected = explicit_attention(*split, scale=scale).transpose(1, 2).reshape(3, 7, 32)
    torch.testing.assert_close(sdpa(q, k, v, heads, scale), expected, rtol=1e-5, atol=1e-5)


def test_single_token_shortcut_skips_the_query_projection():
    ref, ours = _pair(query_dim=32, cross_attention_dim=16, heads=2, dim_head=16)
    calls = []
    ours.to_q.register_forward_hook(lambda *a: calls.append("q"))
    ours.to_k.register_forward_hook(lambda *a: calls.append("k"))
    with torch.no_grad():
        ours(torch.randn(2, 9, 32), encoder_hidden_states=torch.randn(2, 1, 16))
        assert calls == []  # neither projection ran: softmax over one key needs neither
        ours(torch.randn(2, 9, 32), encoder_hidden_states=torch.randn(2, 3, 16))
    assert calls == ["q", "k"]


def test_gradients_match_through_the_wide_head_path():
    ref, ours = _pair(query_dim=64, heads=1, dim_head=300, norm_num_groups=8, residual_connection=True, bias=True)
    x = torch.randn(2, 64, 5, 5)
    xr, xo = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref(xr).square().sum().backward()
    ours(xo).square().sum().backward()
    torch.testing.assert_close(xo.grad, xr.grad, rtol=1e-4, atol=1e-5)


def test_masks_and_extra_arguments_go_to_the_reference_processor():
    ref, ours = _pair(query_dim=32, heads=2, dim_head=16)
    x = torch.randn(1, 5, 32)
    mask = torch.zeros(1, 1, 5)
    mask[..., -1] = -1e4  # the last key is masked out
    with torch.no_grad():
        torch.testing.assert_close(ours(x, attention_mask=mask), ref(x, attention_mask=mask))


def test_explicit_attention_equals_sdpa_in_low_precision():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 21, 64, generator=g).to(torch.bfloat16) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(explicit_attention(q, k, v).float(), expected, rtol=0.03, atol=0.03)


def test_use_shortcut_attention_switches_default_processors_only():
    vae = AutoencoderKL(
        block_out_channels=(32,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        norm_num_groups=8,
        latent_channels=4,
    )
    custom = vae.decoder.mid_block.attentions[0]
    marker = AttnProcessor2_0()
    marker.custom = True  # stands for a project-specific processor (MV-VDM's multi-view attention)

    class Custom:
        def __call__(self, *a, **k):  # pragma: no cover - never called here
            return marker(*a, **k)

    custom.set_processor(Custom())
    before = vae.encoder.mid_block.attentions[0].processor
    handle = use_shortcut_attention(vae)
    assert handle.count == 1  # the encoder's mid-block attention; the custom one is kept
    assert isinstance(vae.encoder.mid_block.attentions[0].processor, ShortcutAttnProcessor)
    assert isinstance(custom.processor, Custom)
    handle.remove()
    assert vae.encoder.mid_block.attentions[0].processor is before and isinstance(custom.processor, Custom)




def test_sv3d_unet_and_sds_vae_encoder_use_the_shortcuts():
    from a3d_cli.models.mvvdm.components import tiny_components
    from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser
    from a3d_cli.models.sv3d.config import SV3DConfig
    from a3d_cli.models.sv3d.loading import build_models

    unet = build_models(SV3DConfig.tiny(), "sv3d_p", device="meta").unet
    layers = [m for m in unet.modules() if isinstance(m, Attention)]
    assert layers and all(isinstance(m.processor, ShortcutAttnProcessor) for m in layers)
    den = MvvdmDenoiser(tiny_components(0))
    encoder_layers = [m for m in den.comp.vae.encoder.modules() if isinstance(m, Attention)]
    assert encoder_layers and all(isinstance(m.processor, ShortcutAttnProcessor) for m in encoder_layers)


@pytest.mark.parametrize(("n", "m", "pad_to"), [(21, 21, 8), (21, 19, 8), (16, 16, 8), (5, 9, 4)])
def test_padding_short_sequences_changes_nothing(n: int, m: int, pad_to: int):
    """Zero rows added for aligned GEMMs: padded keys get no weight, padded queries are dropped."""
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 2, n, 16, generator=g), torch.randn(3, 2, m, 16, generator=g), torch.randn(3, 2, m, 8, generator=g)
    got = explicit_attention(q, k, v, pad_to=pad_to)
    assert got.shape == (3, 2, n, 8)
    torch.testing.assert_close(got, explicit_attention(q, k, v), rtol=1e-6, atol=1e-6)
    # a padded key that got weight would show: large values in v's rows beyond m are never read
    assert torch.isfinite(got).all()
