"""benchmarks/bench_orbit_tricks.py: each leave-one-out configuration applies exactly the tricks it names."""

from __future__ import annotations

import sys

import pytest
import torch
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_orbit_tricks as bench  # noqa: E402
from speed_variants import MathShortAttnProcessor  # noqa: E402

from a3d_cli.models.speed.attention import ShortcutAttnProcessor  # noqa: E402
from a3d_cli.models.sv3d.config import SV3DConfig  # noqa: E402
from a3d_cli.models.sv3d.loading import build_models  # noqa: E402


@pytest.fixture(scope="module")
def tiny_models():
    return build_models(SV3DConfig.tiny(), "sv3d_p")


def _processors(unet) -> set[type]:  # noqa: ANN001
    return {type(m.processor) for m in unet.modules() if hasattr(m, "processor")}


@pytest.mark.parametrize("without", [None, *bench.TRICKS["default"]])
def test_default_path_configurations_take_out_one_trick_each(tiny_models, without):
    handles = bench.apply_tricks(tiny_models, bench.Config("default", without), torch.device("cpu"))
    try:
        applied = {h.name for h in handles if h.count}
        assert ("fused GEGLU" in applied) == (without != "gluon_geglu")
        procs = _processors(tiny_models.unet)
        if without == "attention_shortcuts":
            assert ShortcutAttnProcessor not in procs and MathShortAttnProcessor not in procs
        elif without == "short_attention_kernel":
            assert MathShortAttnProcessor in procs
        else:
            assert ShortcutAttnProcessor in procs
    finally:
        bench.SpeedHandle.group("all", handles).remove()
    assert ShortcutAttnProcessor in _processors(tiny_models.unet)  # removed: back to what the loader gave
    assert not any(type(m).__name__ == "FusedGEGLU" for m in tiny_models.unet.modules())


@pytest.mark.parametrize(
    "without",
    [None, "compile", "group_norm_by_channels", "subpixel_upsampling", "attention_shortcuts"],
)
def test_compile_path_configurations_take_out_one_trick_each(tiny_models, without):
    from a3d_cli.models.speed.group_norm import ChannelsLastGroupNorm

    handles = bench.apply_tricks(tiny_models, bench.Config("compile", without), torch.device("cpu"))
    try:
        unet = tiny_models.unet
        kinds = {type(m).__name__ for m in unet.modules()}
        compiled = any(getattr(m, "_compiled_call_impl", None) is not None for m in unet.modules())
        assert compiled == (without != "compile")
        assert getattr(unet.conv_norm_out, "_compiled_call_impl", None) is None  # left eager (PERF: 0.3 %)
        assert ("SubpixelUpsample2D" in kinds) == (without not in ("compile", "subpixel_upsampling"))
        by_channels = any(type(m) is ChannelsLastGroupNorm for m in unet.modules())
        assert by_channels == (without not in ("compile", "group_norm_by_channels"))
        assert (ShortcutAttnProcessor in _processors(unet)) == (without != "attention_shortcuts")
    finally:
        bench.SpeedHandle.group("all", handles).remove()
    assert not any(getattr(m, "_compiled_call_impl", None) is not None for m in tiny_models.unet.modules())
    assert ShortcutAttnProcessor in _processors(tiny_models.unet)


def test_every_trick_the_benchmark_takes_out_has_a_row_in_the_keep_or_drop_table():
    perf = (REPO / "docs" / "PERF.md").read_text()
    section = perf.split("## Speed tricks: keep or drop", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    for trick in set(sum(bench.TRICKS.values(), ())):
        assert any(f"`{trick}`" in row for row in rows), f"{trick} has no row in docs/PERF.md's keep-or-drop table"


def test_the_gluon_kernel_is_reported_absent_off_cuda():
    assert bench.gluon_geglu_runs(torch.device("cpu")) is False


def test_pre_kernel_variant_uses_padded_explicit_products_when_compiled(monkeypatch):
    """The benchmark's pre-kernel route: short sequences as padded explicit products inside torch.compile,
    SDPA eagerly; both equal diffusers' processor."""
    import speed_variants
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    torch.manual_seed(0)
    ref = Attention(query_dim=64, heads=4, dim_head=16).eval()
    ours = Attention(query_dim=64, heads=4, dim_head=16).eval()
    ours.load_state_dict(ref.state_dict())
    ref.set_processor(AttnProcessor2_0())
    ours.set_processor(MathShortAttnProcessor())
    pads = []
    original = speed_variants.explicit_attention

    def spy(*args, **kwargs):
        pads.append(kwargs.get("pad_to"))
        return original(*args, **kwargs)

    monkeypatch.setattr(speed_variants, "explicit_attention", spy)
    x = torch.randn(6, 21, 64)
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            got = torch.compile(ours, backend="eager", fullgraph=True)(x)
            eager_pads = list(pads)
            eager = ours(x)
            expected = ref(x)
    finally:
        torch._dynamo.reset()
    assert eager_pads == [speed_variants.SHORT_PAD] and pads == eager_pads
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager, expected, rtol=1e-5, atol=1e-5)
