"""benchmarks/profile_kernels.py: kernel families and a tiny CPU run (the script must not rot)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

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
