"""Key coverage of MV-VDM against the official checkpoint layouts (full-size models on the meta device).

Fixtures: tests/fixtures/{mvvdm_unet_full, animate3d_motion_modules, animatediff_motion_adapter_v1_5_2*,
ip_adapter_sd15}.keys.json — the exact key names and shapes of the released files.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import key_fixture  # noqa: E402 - test helper module

from a3d_cli.errors import CheckpointError
from a3d_cli.models.mvvdm import MVVDMConfig, MVVDMUNet
from a3d_cli.models.mvvdm.checkpoint import (
    BASE_GROUPS,
    MOTION_FILE_GROUPS,
    assemble_state_dict,
    convert_animate3d_motion_modules,
    convert_ip_adapter,
    convert_motion_adapter,
    convert_mvdream_unet,
    cross_attention_layers_in_ip_order,
    group_keys,
)


def fixture(name: str) -> dict:
    return json.loads(key_fixture(name).read_text())


def meta(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


@pytest.fixture(scope="module")
def full_shapes() -> dict[str, list[int]]:
    with torch.device("meta"):
        model = MVVDMUNet(MVVDMConfig())
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_full_model_matches_the_released_layout_exactly(full_shapes):
    ref = fixture("mvvdm_unet_full.keys.json")["keys"]
    assert sorted(full_shapes) == sorted(ref)
    assert {k: full_shapes[k] for k in ref} == ref


def test_meta_construction_puts_every_tensor_on_meta():
    with torch.device("meta"):
        model = MVVDMUNet(MVVDMConfig.tiny())
    assert {t.device.type for t in model.state_dict().values()} == {"meta"}


def test_group_counts_match_the_fixture_notes(full_shapes):
    counts = {g: len(ks) for g, ks in group_keys(full_shapes).items()}
    assert counts == {
        "sd15_unet": 686, "camera": 4, "ip_image_proj": 4, "ip_kv": 32,
        "motion": 546, "motion_processor": 294, "i2v": 48,
    }


def test_motion_module_file_leaves_exactly_726_keys_to_the_base_models(full_shapes):
    released = fixture("animate3d_motion_modules.keys.json")["keys"]
    mapped = convert_animate3d_motion_modules(meta(released), full_shapes)
    assert {k: list(v.shape) for k, v in mapped.items()} == {k: full_shapes[k] for k in released}
    left = set(full_shapes) - set(mapped)
    assert len(left) == 726
    groups = {g: len(ks) for g, ks in group_keys(left).items() if ks}
    assert groups == {"sd15_unet": 686, "camera": 4, "ip_image_proj": 4, "ip_kv": 32}
    assert set(groups) == set(BASE_GROUPS)


def test_mvdream_unet_is_diffusers_sd15_unet_plus_camera(full_shapes):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # SD1.5 unet/config.json values
        sd15 = UNet2DConditionModel(
            sample_size=64, cross_attention_dim=768, attention_head_dim=8,
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        )
    base = {k: v for k, v in sd15.state_dict().items()}
    assert len(base) == 686
    camera = {f"camera_embedding.linear_{i}.{p}": torch.empty(full_shapes[f"camera_embedding.linear_{i}.{p}"], device="meta")
              for i in (1, 2) for p in ("weight", "bias")}
    mapped = convert_mvdream_unet({**base, **camera}, full_shapes)
    assert all(list(v.shape) == full_shapes[k] for k, v in mapped.items())
    with pytest.raises(CheckpointError, match="4 missing"):
        convert_mvdream_unet(base, full_shapes)  # without the camera MLP


def test_ip_adapter_maps_to_the_documented_layers(full_shapes):
    fx = fixture("ip_adapter_sd15.keys.json")
    data = {part: meta(keys) for part, keys in fx["keys"].items()}
    mapped = convert_ip_adapter(data, full_shapes)
    assert {k: list(v.shape) for k, v in mapped.items()} == fx["notes"]["resulting_diffusers_unet_keys"]
    layers = cross_attention_layers_in_ip_order(full_shapes)
    assert {str(2 * i + 1): name for i, name in enumerate(layers)} == fx["notes"]["key_id_to_diffusers_layer"]


@pytest.mark.parametrize("name", ["animatediff_motion_adapter_v1_5_2.keys.json",
                                  "animatediff_motion_adapter_v1_5_2.keys.diffusers-0.42.json"])
def test_animatediff_adapter_maps_onto_motion_modules(full_shapes, name):
    keys = fixture(name)["keys"]
    assert len(keys) == 567
    mapped = convert_motion_adapter(meta(keys), full_shapes)
    assert all(list(v.shape) == full_shapes[k] for k, v in mapped.items())
    groups = group_keys(mapped)
    assert len(groups["motion"]) == 546
    assert len(groups["motion_processor"]) == 42  # 21 pos_embed tables → attn1 and attn2 processors


def test_installed_diffusers_motion_adapter_has_the_fixture_layout():
    from diffusers import MotionAdapter

    with torch.device("meta"):
        adapter = MotionAdapter(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                                motion_mid_block_layers_per_block=1, motion_num_attention_heads=8,
                                motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=True)
    got = {k: list(v.shape) for k, v in adapter.state_dict().items()}
    assert got == fixture("animatediff_motion_adapter_v1_5_2.keys.diffusers-0.42.json")["keys"]


def test_three_official_files_cover_every_key_and_one_missing_file_is_named(full_shapes):
    shapes = {k: torch.Size(s) for k, s in full_shapes.items()}
    fx_ip = fixture("ip_adapter_sd15.keys.json")["keys"]
    groups = group_keys(full_shapes)
    mvdream = {k: torch.empty(full_shapes[k], device="meta") for k in groups["sd15_unet"] + groups["camera"]}
    motion = meta(fixture("animate3d_motion_modules.keys.json")["keys"])
    sources = [
        ("mvdream", convert_mvdream_unet(mvdream, full_shapes)),
        ("ip", convert_ip_adapter({p: meta(k) for p, k in fx_ip.items()}, full_shapes)),
        ("motion", convert_animate3d_motion_modules(motion, full_shapes)),
    ]
    state, report = assemble_state_dict(shapes, sources)
    assert report.total == len(full_shapes) == 1614
    assert report.keys_by_source == {"mvdream": 690, "ip": 36, "motion": 888}
    assert sum(report.overridden.values()) == 0
    with pytest.raises(CheckpointError, match="726 keys missing"):
        assemble_state_dict(shapes, sources[2:])
    with pytest.raises(CheckpointError, match="888 keys missing") as info:
        assemble_state_dict(shapes, sources[:2])
    assert all(f"{g}: {len(groups[g])}" in str(info.value) for g in MOTION_FILE_GROUPS)


def test_wrong_shapes_and_stray_keys_are_refused(full_shapes):
    motion = meta(fixture("animate3d_motion_modules.keys.json")["keys"])
    stray = {**motion, "down_blocks.0.motion_modules.0.extra.weight": torch.empty(1, device="meta")}
    with pytest.raises(CheckpointError, match="1 unexpected"):
        convert_animate3d_motion_modules(stray, full_shapes)
    key = "mid_block.motion_modules.0.proj_in.weight"
    shapes = {k: torch.Size(s) for k, s in full_shapes.items()}
    bad = {k: torch.empty(s, device="meta") for k, s in full_shapes.items()}
    bad[key] = torch.empty(3, 3, device="meta")
    with pytest.raises(CheckpointError, match="wrong shape"):
        assemble_state_dict(shapes, [("all", bad)])


def test_one_cfg_batched_evaluation_costs_what_the_reference_costs():
    """Animate3D's own UNet does 51.9 TFLOP per CFG-batched call on 4 views × 16 frames at 32² latents
    (issue 5's measured anchor); the same architecture must count the same work."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = MVVDMUNet(MVVDMConfig())
        args = (torch.empty(2, 4, 16, 4, 32, 32), torch.tensor([500, 500]), torch.empty(2, 77, 768),
                torch.empty(2, 4, 1024), torch.empty(4, 16))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(*args).sample
    assert out.shape == (2, 4, 16, 4, 32, 32)
    assert counter.get_total_flops() / 1e12 == pytest.approx(51.9, rel=2e-3)
