"""The shared CUDA acceleration helper: a no-op off CUDA, finds the repeated blocks it would compile."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.models.mvvdm.components import tiny_components
from a3d_cli.models.speed.acceleration import accelerate, backend_flags_kept, compile_blocks, repeated_blocks


def test_accelerate_changes_nothing_on_cpu():
    unet = tiny_components(seed=0).unet
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    report = accelerate("cpu", [unet], compile=True)
    assert not report.enabled and not report.compile and report.compiled_blocks == 0
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())
    assert not any(hasattr(m, "_compiled_call_impl") and m._compiled_call_impl is not None for m in unet.modules())


def test_repeated_blocks_are_outermost_and_cover_the_unet():
    unet = tiny_components(seed=0).unet
    blocks = repeated_blocks(unet)
    names = [n for n, _ in blocks]
    assert len(blocks) > 4
    assert len(set(names)) == len(names)
    # no block is nested inside another one that is also compiled
    assert not any(a != b and b.startswith(a + ".") for a in names for b in names)


def test_compile_blocks_is_removable():
    unet = tiny_components(seed=0).unet
    handle = compile_blocks(unet, backend="eager")
    blocks = [b for _, b in repeated_blocks(unet)]
    assert handle.count == len(blocks) == sum(handle.classes.values())
    assert all(b._compiled_call_impl is not None for b in blocks)
    again = compile_blocks(unet, backend="eager")  # idempotent: counts the blocks, compiles none anew
    assert again.classes == handle.classes and again.removed
    handle.remove()
    assert all(b._compiled_call_impl is None for b in blocks) and handle.removed


def test_channels_last_convs_covers_conv3d_only_when_asked():
    from torch import nn

    from a3d_cli.models.speed.acceleration import channels_last_conv2d, channels_last_convs

    def net() -> nn.Module:
        return nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv3d(4, 4, (3, 1, 1)))

    a, b = net(), net()
    handle = channels_last_conv2d(a)
    assert handle.count == 1 and channels_last_convs(b).count == 2
    assert a[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert a[1].weight.is_contiguous() and not a[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert b[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    handle.remove()
    assert a[0].weight.is_contiguous() and not a[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_orbit_compiles_every_sv3d_unet_level_and_the_vae_decoder():
    from a3d_cli.models.sv3d.config import SV3DConfig
    from a3d_cli.models.sv3d.loading import build_models

    models = build_models(SV3DConfig.tiny(), "sv3d_p")
    unet, decoder = models.hot_networks()
    assert unet is models.unet and decoder is models.vae.decoder
    kinds = {type(b).__name__ for _, b in repeated_blocks(unet)}
    # resnets and transformers of every level, and the resamplers between levels (eager, they ran NCHW
    # convolutions with cuDNN layout conversions and an fp32 round trip around the bf16 upsampling)
    assert {"SpatioTemporalResBlock", "TransformerSpatioTemporalModel", "Upsample2D", "Downsample2D"} <= kinds
    assert {"ResnetBlock2D", "Upsample2D"} <= {type(b).__name__ for _, b in repeated_blocks(decoder)}


def _tiny_sv3d_unet_and_inputs():
    from a3d_cli.models.sv3d.testing import tiny_models

    models = tiny_models("sv3d_p", seed=0)
    unet, cfg = models.unet.eval(), models.config
    g = torch.Generator().manual_seed(0)
    f, s = cfg.num_frames, cfg.latent_size
    args = (
        torch.randn(2, f, 8, s, s, generator=g),
        torch.tensor(0.5),
        torch.randn(2, 1, cfg.unet.cross_attention_dim, generator=g),
        torch.randn(2, f, unet.add_embedding.linear_1.in_features, generator=g),
    )
    return unet, args


def test_channels_last_blocks_subpixel_upsampling_and_fused_geglu_keep_the_sv3d_unet_output():
    """The orbit stage's compiled layout work changes layouts and rounding, not what the UNet computes."""
    import copy

    from a3d_cli.models.speed.acceleration import keep_channels_last
    from a3d_cli.models.speed.geglu import FusedGEGLU, use_fused_geglu
    from a3d_cli.models.speed.group_norm import ChannelsLastGroupNorm
    from a3d_cli.models.speed.upsampling import use_subpixel_upsampling

    unet, args = _tiny_sv3d_unet_and_inputs()
    fast = copy.deepcopy(unet)
    assert use_subpixel_upsampling(fast).count > 0
    assert use_fused_geglu(fast).count > 0  # on the CPU it runs the reference arithmetic through the custom op
    hooked = keep_channels_last(fast)
    blocks = dict(repeated_blocks(fast))
    assert hooked.count == len(blocks) and "SubpixelUpsample2D" in {type(b).__name__ for b in blocks.values()}
    # GroupNorms by channels inside the resnets only (the transformers keep inductor's own lowering)
    for block in blocks.values():
        kinds = {type(m) for m in block.modules() if isinstance(m, torch.nn.GroupNorm)}
        if type(block).__name__ == "SpatioTemporalResBlock":
            assert kinds == {ChannelsLastGroupNorm}
        elif type(block).__name__ == "TransformerSpatioTemporalModel":
            assert kinds == {torch.nn.GroupNorm}
    seen = []
    for block in blocks.values():
        block.register_forward_hook(lambda _m, _a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        expected = unet(*args, return_dict=False)[0]
        got = fast(*args, return_dict=False)[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert seen and all(o.is_contiguous(memory_format=torch.channels_last) for o in seen if o.ndim == 4)
    assert fast.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(type(m).__name__ != "GEGLU" for m in fast.modules()) and any(
        isinstance(m, FusedGEGLU) for m in fast.modules()
    )


def test_channels_last_hooks_and_fused_geglu_trace_into_the_compiled_blocks():
    """Dynamo traces the hooks and the GEGLU op with each block (eager backend: a CPU check of the trace, not of inductor)."""
    import copy

    from a3d_cli.models.speed.acceleration import keep_channels_last
    from a3d_cli.models.speed.geglu import use_fused_geglu
    from a3d_cli.models.speed.upsampling import use_subpixel_upsampling

    unet, args = _tiny_sv3d_unet_and_inputs()
    fast = copy.deepcopy(unet)
    use_subpixel_upsampling(fast)
    keep_channels_last(fast)
    use_fused_geglu(fast)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        counts = compile_blocks(fast, backend="eager").classes
        with torch.no_grad():
            got = fast(*args, return_dict=False)[0]
            expected = unet(*args, return_dict=False)[0]
        breaks = dict(torch._dynamo.utils.counters["graph_break"])
    finally:
        torch._dynamo.reset()
    assert counts["SubpixelUpsample2D"] >= 1 and counts["SpatioTemporalResBlock"] >= 1
    assert not breaks, breaks  # the hooks and the fused GEGLU op trace into each block's graph
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_orbit_compile_path_matches_eager_on_cuda():
    """Inductor's kernels for the channels-last, subpixel, by-channel-GroupNorm, fused-GEGLU UNet agree with eager."""
    import copy

    unet, args = _tiny_sv3d_unet_and_inputs()
    unet = unet.cuda()
    args = tuple(a.cuda() for a in args)
    fast = copy.deepcopy(unet)
    with torch.no_grad():
        expected = unet(*args, return_dict=False)[0]  # fp32 eager, before accelerate turns TF32 on
    with backend_flags_kept():
        report = accelerate(
            "cuda", [fast], compile=True, channels_last=True, subpixel_upsampling=True, fused_geglu=True
        )
        assert report.channels_last_blocks > 0 and report.subpixel_upsamplers > 0 and report.fused_geglus > 0
        with torch.no_grad():
            got = fast(*args, return_dict=False)[0]
    # TF32 rounding (10-bit mantissa) is allowed for; a wrong layout or parity would be off by O(1)
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2)


def _bf16_errors_against_fp32(**accelerate_options: bool) -> tuple[object, torch.nn.Module, float, float]:
    """Accelerate a bf16 copy of the tiny SV3D UNet on CUDA with `accelerate_options`; returns the report,
    that copy, and the relative errors against the fp32 UNet of its output and of the plain bf16 UNet's."""
    import copy

    unet, args = _tiny_sv3d_unet_and_inputs()
    unet = unet.cuda()
    args = tuple(a.cuda() for a in args)
    with torch.no_grad():
        reference = unet(*args, return_dict=False)[0]
    half = copy.deepcopy(unet).bfloat16()
    half_args = tuple(a.bfloat16() if a.is_floating_point() else a for a in args)
    fast = copy.deepcopy(half)
    try:
        with backend_flags_kept():
            report = accelerate("cuda", [fast], **accelerate_options)
            with torch.no_grad():
                eager = half(*half_args, return_dict=False)[0].float()
                got = fast(*half_args, return_dict=False)[0].float()
    finally:
        torch._dynamo.reset()

    def error(x: torch.Tensor) -> float:
        return float((x - reference).norm() / reference.norm())

    return report, fast, error(got), error(eager)


@pytest.mark.gpu
def test_orbit_compile_path_in_bf16_is_as_close_to_fp32_as_eager_bf16():
    """In bf16 the compiled path runs the fused Triton GEGLU (on Hopper) inside inductor's graphs; its
    error against fp32 must stay at eager bf16's level (a wrong tile or gate/value swap would be O(1))."""
    report, _, got, eager = _bf16_errors_against_fp32(
        compile=True, channels_last=True, subpixel_upsampling=True, fused_geglu=True
    )
    assert report.fused_geglus > 0
    assert got < 2 * eager + 1e-3


@pytest.mark.gpu
def test_fused_geglu_is_used_without_compilation_and_keeps_bf16_accuracy():
    """`a3d orbit` without --compile swaps in the fused GEGLU too; eagerly in bf16 its error against fp32
    must stay at diffusers' own bf16 level."""
    from a3d_cli.models.speed.geglu import FusedGEGLU

    report, fast, got, eager = _bf16_errors_against_fp32(fused_geglu=True)
    assert not report.compile and report.fused_geglus == sum(isinstance(m, FusedGEGLU) for m in fast.modules()) > 0
    assert got < 2 * eager + 1e-3


def test_no_layer_is_compiled_on_its_own_outside_the_blocks():
    """`compile_blocks` compiles each repeated block once, outermost only, misses none, and nothing else."""
    from a3d_cli.models.mvvdm.config import MVVDMConfig
    from a3d_cli.models.mvvdm.unet import MVVDMUNet
    from a3d_cli.models.speed.acceleration import REPEATED_BLOCKS
    from a3d_cli.models.sv3d.config import SV3DConfig
    from a3d_cli.models.sv3d.loading import build_models

    models = build_models(SV3DConfig.tiny(), "sv3d_p", device=torch.device("cpu"))
    for net in (models.unet, MVVDMUNet(MVVDMConfig.tiny()), models.vae):
        handle = compile_blocks(net, backend="eager")
        compiled = {name for name, m in net.named_modules() if getattr(m, "_compiled_call_impl", None) is not None}
        assert compiled and sum(handle.classes.values()) == len(compiled)
        for name, m in net.named_modules():
            inside = any(name.startswith(c + ".") for c in compiled)
            if name in compiled:
                assert type(m).__name__ in REPEATED_BLOCKS and not inside  # a block, and the outermost one
            elif type(m).__name__ in REPEATED_BLOCKS:
                assert inside  # a repeated block is compiled itself or as part of its compiled parent
        assert not any(name.endswith("norm_out") for name in compiled)  # the final GroupNorms stay eager
        handle.remove()
        assert not any(getattr(m, "_compiled_call_impl", None) is not None for m in net.modules())


def test_every_trick_of_the_orbit_path_is_removed_by_its_handle():
    """Applied, then removed: the UNet has its classes, hooks, weight layouts and eager forwards back."""
    import copy

    from a3d_cli.models.speed.acceleration import keep_channels_last
    from a3d_cli.models.speed.geglu import use_fused_geglu
    from a3d_cli.models.speed.handles import SpeedHandle
    from a3d_cli.models.speed.upsampling import use_subpixel_upsampling

    unet, args = _tiny_sv3d_unet_and_inputs()
    fast = copy.deepcopy(unet)
    classes = [type(m) for m in fast.modules()]
    handle = SpeedHandle.group(
        "orbit", [use_subpixel_upsampling(fast), use_fused_geglu(fast), keep_channels_last(fast), compile_blocks(fast, backend="eager")]
    )
    assert handle.count > 0 and [type(m) for m in fast.modules()] != classes
    handle.remove()
    assert [type(m) for m in fast.modules()] == classes
    assert all(not m._forward_hooks for m in fast.modules())
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in fast.modules())
    assert fast.conv_in.weight.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(fast(*args, return_dict=False)[0], unet(*args, return_dict=False)[0])
    handle.remove()  # idempotent
