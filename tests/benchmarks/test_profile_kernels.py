"""benchmarks/profile_kernels.py: kernel families and a tiny CPU run (the script must not rot)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import profile_kernels  # noqa: E402


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "conv"),
        ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_bias_TNT", "gemm"),
        ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7", "attention"),
        ("void cudnn::engines_precompiled::nchwToNhwcKernel<__nv_bfloat16>", "layout"),
        ("triton_poi_fused_convolution_native_group_norm_silu_1", "triton"),
        ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16>", "norm"),
        ("void at::native::elementwise_kernel<128, 4, direct_copy_kernel_cuda>", "copy"),
        ("something_else_entirely", "other"),
    ],
)
def test_kernel_families(name: str, family: str) -> None:
    assert profile_kernels.kernel_family(name) == family


def test_tiny_run_times_profiles_and_switches_processors(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    rows = profile_kernels.main(
        [
            "--target",
            "orbit-unet",
            "--tiny",
            "--device",
            "cpu",
            "--variants",
            "plain,plain+sc",
            "--profile",
            "plain+sc",
            "--reps",
            "1",
            "--warmup",
            "1",
            "--top",
            "3",
            "--out",
            str(out),
        ]
    )
    assert [r["variant"] for r in rows] == ["plain", "plain+sc"]
    assert all("error" not in r and r["seconds_median"] > 0 for r in rows)
    # the stage's UNet carries the shortcuts: `plain` takes them out, `sc` puts them back
    assert rows[0]["plain_attention_layers"] > 0
    assert rows[1]["shortcut_attention_layers"] == rows[1]["plain_attention_layers"]
    profile = rows[1]["profile"]
    assert profile["families_seconds"] and len(profile["top_kernels"]) == 3 and profile["top_ops"]
    assert json.loads(out.read_text())["rows"][1]["variant"] == "plain+sc"


def test_unknown_variant_flag_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown variant flag"):
        profile_kernels.main(["--target", "orbit-unet", "--tiny", "--device", "cpu", "--variants", "fast"])


def test_profile_blocks_specs_set_up_the_blocks_they_name() -> None:
    """benchmarks/profile_blocks.py: each flag changes the block as documented; a tiny CPU run completes."""
    import profile_blocks
    import torch

    from a3d_cli.models.speed.group_norm import ChannelsLastGroupNorm
    from a3d_cli.models.speed.upsampling import SubpixelUpsample2D
    from a3d_cli.models.sv3d.testing import tiny_models

    unet = tiny_models("sv3d_p", seed=0).unet
    res = unet.get_submodule(profile_blocks.BLOCKS_TINY["res"])

    def norms(block: torch.nn.Module) -> list[type]:
        return [type(m) for m in block.modules() if isinstance(m, torch.nn.GroupNorm)]

    assert set(norms(profile_blocks.prepare_block(res, set()))) == {ChannelsLastGroupNorm}
    assert set(norms(profile_blocks.prepare_block(res, {"nogn"}))) == {torch.nn.GroupNorm}
    assert set(norms(profile_blocks.prepare_block(res, {"nocl"}))) == {torch.nn.GroupNorm}
    assert set(norms(profile_blocks.prepare_block(res, {"gn5"}))) == {profile_blocks.TemporalOnlyGroupNorm}
    assert type(res.spatial_res_block.norm1) is torch.nn.GroupNorm  # the UNet's own block is left alone
    up = unet.get_submodule(profile_blocks.BLOCKS_TINY["up"])
    assert isinstance(profile_blocks.prepare_block(up, {"sub"}), SubpixelUpsample2D)

    rows = profile_blocks.main(
        ["--tiny", "--device", "cpu", "--backend", "eager", "--specs", "res+gn5,up+sub", "--reps", "1", "--top", "1"]
    )
    assert [r["spec"] for r in rows] == ["res+gn5", "up+sub"] and all(r["ms_per_call"] > 0 for r in rows)
    with pytest.raises(SystemExit, match="bad spec"):
        profile_blocks.main(["--tiny", "--device", "cpu", "--backend", "eager", "--specs", "res+fp8"])
