"""Loading MV-VDM from files in the official layouts (tiny sizes, real file I/O, safe unpickling)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from helpers import tiny_mvvdm_unet, tiny_unet_inputs
from safetensors.torch import save_file

from a3d_cli.errors import CheckpointError
from a3d_cli.models.mvvdm import MVVDMConfig, MVVDMUNet, load_mvvdm_unet
from a3d_cli.models.mvvdm.checkpoint import cross_attention_layers_in_ip_order, group_keys, read_state_file

CFG = MVVDMConfig.tiny()


def write_official_files(model: MVVDMUNet, root: Path) -> tuple[Path, Path, Path]:
    """Split a model's state into the three released files, in their formats and names."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    groups = group_keys(sd)
    unet_dir = root / "mvdream" / "unet"
    unet_dir.mkdir(parents=True)
    (unet_dir / "config.json").write_text(json.dumps({
        "_class_name": "MVUNet2DConditionModel", "block_out_channels": list(CFG.block_out_channels),
        "layers_per_block": CFG.layers_per_block, "cross_attention_dim": CFG.cross_attention_dim,
        "attention_head_dim": CFG.attention_heads, "in_channels": CFG.in_channels, "camera_embedding_dim": 16,
    }))
    save_file({k: sd[k].contiguous() for k in groups["sd15_unet"] + groups["camera"]},
              str(unet_dir / "diffusion_pytorch_model.safetensors"))
    prefix = "encoder_hid_proj.image_projection_layers.0."
    image_proj = {("proj." if ".image_embeds." in k else "norm.") + k.rsplit(".", 1)[1]: sd[k].half()
                  for k in groups["ip_image_proj"]}
    assert all(k.startswith(prefix) for k in groups["ip_image_proj"])
    ip = {}
    for i, layer in enumerate(cross_attention_layers_in_ip_order(sd)):
        for kv in ("to_k_ip", "to_v_ip"):
            ip[f"{2 * i + 1}.{kv}.weight"] = sd[f"{layer}.processor.{kv}.0.weight"].half()
    ip_file = root / "ip-adapter_sd15.bin"
    torch.save({"image_proj": image_proj, "ip_adapter": ip}, ip_file)
    motion_file = root / "animate3d_motion_modules.ckpt"
    torch.save({"state_dict": {k: sd[k] for g in ("motion", "motion_processor", "i2v") for k in groups[g]}}, motion_file)
    return unet_dir, ip_file, motion_file


@pytest.fixture(scope="module")
def model() -> MVVDMUNet:
    return tiny_mvvdm_unet(0)


def test_official_files_round_trip_to_the_same_network(model, tmp_path):
    unet_dir, ip_file, motion_file = write_official_files(model, tmp_path)
    loaded, report = load_mvvdm_unet(unet_dir, ip_file, motion_file, config=CFG)
    assert report.keys_by_source == {"mvdream_sd15 unet": 690, "ip_adapter_sd15": 36, "animate3d_motion_modules": 888}
    assert not any(t.is_meta for t in loaded.state_dict().values())
    with torch.no_grad():
        ref = model(*tiny_unet_inputs()).sample
        # the IP-Adapter file is fp16 (as released): compare the loaded fp32 model with the fp16-rounded weights
        rounded = {k: (v.half().float() if ("_ip." in k or k.startswith("encoder_hid_proj")) else v)
                   for k, v in model.state_dict().items()}
        twin = MVVDMUNet(CFG).eval()
        twin.load_state_dict(rounded)
        torch.testing.assert_close(loaded(*tiny_unet_inputs()).sample, twin(*tiny_unet_inputs()).sample)
    assert not torch.equal(ref, torch.zeros_like(ref))


def test_fp16_load_keeps_buffers_and_casts_floats(model, tmp_path):
    files = write_official_files(model, tmp_path)
    loaded, _ = load_mvvdm_unet(*files, config=CFG, dtype=torch.float16)
    assert {t.dtype for t in loaded.state_dict().values()} == {torch.float16}


def test_mismatched_base_config_is_refused(model, tmp_path):
    unet_dir, ip_file, motion_file = write_official_files(model, tmp_path)
    cfg = json.loads((unet_dir / "config.json").read_text())
    (unet_dir / "config.json").write_text(json.dumps({**cfg, "cross_attention_dim": 1024}))
    with pytest.raises(CheckpointError, match="cross_attention_dim is 1024"):
        load_mvvdm_unet(unet_dir, ip_file, motion_file, config=CFG)


def test_pickles_with_code_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refuses pickles that run code"):
        read_state_file(evil)


def test_ddp_prefix_and_state_dict_wrapper_are_unwrapped(tmp_path):
    path = tmp_path / "ddp.ckpt"
    torch.save({"state_dict": {"module.a.weight": torch.ones(2)}, "epoch": 3}, path)
    assert list(read_state_file(path)) == ["a.weight"]


def test_wrong_ip_adapter_variant_is_named(model, tmp_path):
    unet_dir, _, motion_file = write_official_files(model, tmp_path)
    plus = tmp_path / "ip-adapter-plus.bin"
    torch.save({"image_proj": {"latents": torch.zeros(1, 16, 8)}, "ip_adapter": {}}, plus)
    with pytest.raises(CheckpointError, match="Plus/FaceID"):
        load_mvvdm_unet(unet_dir, plus, motion_file, config=CFG)


@pytest.mark.slow
def test_released_weights_load_with_every_key_accounted_for():
    """RUN_SLOW=1 with the four MV-VDM files resolvable (`a3d weights list`)."""
    from a3d_cli.models.mvvdm.components import load_components
    from a3d_cli.models.mvvdm.weights import MVVDM_WEIGHTS
    from a3d_cli.weights import resolve

    comp = load_components(*(resolve(n) for n in MVVDM_WEIGHTS))
    assert comp.report is not None and comp.report.total == 1614
    assert comp.report.keys_by_source == {"mvdream_sd15 unet": 690, "ip_adapter_sd15": 36, "animate3d_motion_modules": 888}
    mix = [p for n, p in comp.unet.named_parameters() if n.endswith("mix_factor")]
    assert len(mix) == 42 and any(float(p) != 0.0 for p in mix)  # trained blenders, not the init
