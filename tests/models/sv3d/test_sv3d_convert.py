"""SV3D checkpoint conversion: full key coverage against the official layouts, and a tiny round trip.

The fixtures list every key and shape of Stability's `sv3d_u.safetensors` / `sv3d_p.safetensors`; the
full-size models are built on the meta device, so these tests allocate nothing large.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import key_fixture

from a3d_cli.errors import CheckpointError, InputError
from a3d_cli.models.sv3d.config import CONFIG_METADATA_KEY, SV3DConfig
from a3d_cli.models.sv3d.convert import (
    LABEL_EMB_KEY,
    build_rules,
    detect_variant,
    official_shape,
    plan_conversion,
    to_official,
    to_ours,
)
from a3d_cli.models.sv3d.loading import build_models, load_sv3d, official_state_dict, save_official_checkpoint
from a3d_cli.models.sv3d.testing import tiny_models


def fixture_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    path = key_fixture(f"{variant}.keys.json")
    return {k: tuple(v) for k, v in json.loads(path.read_text())["keys"].items()}


@pytest.mark.parametrize("variant", ["sv3d_u", "sv3d_p"])
def test_every_official_key_is_accounted_for(variant: str) -> None:
    file_shapes = fixture_shapes(variant)
    assert detect_variant(file_shapes) == variant
    models = build_models(SV3DConfig.full(), variant, device="meta")
    ours = models.shapes()
    rules = build_rules(ours, models.config)
    report = plan_conversion(file_shapes, rules, ours, variant)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert report.ok
    # used + deliberately skipped leftovers = the whole file
    assert report.used + report.unused_count == len(file_shapes) == 2212
    leftovers = sorted(k for keys in report.unused.values() for k in keys)
    assert len([k for k in leftovers if k.startswith("conditioner.embedders.0.")]) == 6  # text-side CLIP
    assert all(
        k.startswith("conditioner.embedders.1.encoder.")
        for k in leftovers
        if not k.startswith("conditioner.embedders.0.")
    )
    # nothing of the UNet, the image tower, the encoder or the first-stage decoder is left over
    assert not [
        k
        for k in leftovers
        if k.startswith(("model.", "first_stage_model.", "conditioner.embedders.0.open_clip.model.visual."))
    ]


@pytest.mark.parametrize("variant", ["sv3d_u", "sv3d_p"])
def test_rules_feed_every_parameter_exactly_once(variant: str) -> None:
    models = build_models(SV3DConfig.full(), variant, device="meta")
    ours = models.shapes()
    rules = build_rules(ours, models.config)
    fed = Counter(k for rule in rules.values() for k in rule.ours)
    assert set(fed) == set(ours)
    assert max(fed.values()) == 1
    # only the declared reshapes exist: the packed CLIP q/k/v, its projection, the VAE 1x1-conv attention
    ops = Counter(rule.op for rule in rules.values())
    assert ops["split"] == 2 * 32  # in_proj weight and bias of 32 ViT-H blocks
    assert ops["transpose"] == 1
    assert ops["squeeze"] == 2 * 4  # q, k, v, proj_out weights in the encoder's and the decoder's mid block


def test_tiny_official_layout_uses_the_official_key_grammar() -> None:
    """A tiny checkpoint's names, with numbers masked, are all names of the official layout."""
    official = fixture_shapes("sv3d_p")
    mask = lambda k: re.sub(r"\.\d+\.", ".#.", k)  # noqa: E731
    grammar = {mask(k) for k in official}
    tiny = official_state_dict(tiny_models("sv3d_p"))
    assert {mask(k) for k in tiny} <= grammar
    assert {k.split(".")[0] for k in tiny} == {k.split(".")[0] for k in official}


def test_ops_round_trip_exactly() -> None:
    torch.manual_seed(0)
    from a3d_cli.models.sv3d.convert import Rule

    cases = [
        (Rule("a", ("x",), "copy"), {"x": (3, 4)}),
        (Rule("a", ("x",), "squeeze"), {"x": (5, 5)}),
        (Rule("a", ("x",), "transpose"), {"x": (6, 2)}),
        (Rule("a", ("q", "k", "v"), "split"), {"q": (4, 3), "k": (4, 3), "v": (4, 3)}),
    ]
    for rule, shapes in cases:
        parts = [torch.randn(shapes[k]) for k in rule.ours]
        packed = to_official(rule, parts)
        assert tuple(packed.shape) == official_shape(rule, shapes)
        for a, b in zip(to_ours(rule, packed), parts, strict=True):
            assert torch.equal(a, b)


def test_variant_detection_rejects_other_models() -> None:
    assert detect_variant({LABEL_EMB_KEY: (1280, 256)}) == "sv3d_u"
    assert detect_variant({LABEL_EMB_KEY: (1280, 1280)}) == "sv3d_p"
    with pytest.raises(CheckpointError, match="Stable Video Diffusion"):
        detect_variant({LABEL_EMB_KEY: (1280, 768)})
    with pytest.raises(CheckpointError, match="not an SV3D checkpoint"):
        detect_variant({"down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3)})


@pytest.fixture(scope="module")
def tiny_p(tmp_path_factory) -> tuple[Path, object]:
    models = tiny_models("sv3d_p", seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "sv3d_p.safetensors"
    save_official_checkpoint(models, path)
    return path, models


def _same_weights(a, b) -> None:  # noqa: ANN001
    for name in ("unet", "vae", "clip"):
        sa, sb = a.component(name).state_dict(), b.component(name).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}"


@torch.no_grad()
def test_tiny_round_trip_gives_identical_outputs(tiny_p) -> None:
    path, models = tiny_p
    loaded = load_sv3d(path)
    assert loaded.report.ok and loaded.models.variant == "sv3d_p"
    assert loaded.models.config == SV3DConfig.tiny()
    assert loaded.report.unused_count > 0  # the stand-in leftovers were seen and skipped, not loaded
    _same_weights(models, loaded.models)
    cfg = models.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg.num_frames, 8, cfg.latent_size, cfg.latent_size, generator=g)
    ctx = torch.randn(1, 1, cfg.unet.cross_attention_dim, generator=g)
    vec = torch.randn(1, cfg.num_frames, 1280, generator=g)
    assert torch.equal(
        models.unet(x, torch.tensor(0.3), ctx, vec).sample, loaded.models.unet(x, torch.tensor(0.3), ctx, vec).sample
    )
    img = torch.rand(2, 3, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    za = models.vae.encode(img).latent_dist.mode()
    zb = loaded.models.vae.encode(img).latent_dist.mode()
    assert torch.equal(za, zb)
    assert torch.equal(models.vae.decode(za).sample, loaded.models.vae.decode(zb).sample)
    pix = torch.randn(2, 3, cfg.clip.image_size, cfg.clip.image_size, generator=g)
    assert torch.equal(
        models.image_encoder(pixel_values=pix).image_embeds, loaded.models.image_encoder(pixel_values=pix).image_embeds
    )
    # nothing stayed on the meta device, including CLIP's non-persistent position ids
    for name in ("unet", "vae", "clip"):
        module = loaded.models.component(name)
        assert not any(t.is_meta for t in [*module.parameters(), *module.buffers()])


def test_dtype_and_ckpt_loading(tiny_p, tmp_path: Path) -> None:
    path, models = tiny_p
    half = load_sv3d(path, unet_dtype=torch.bfloat16)
    assert next(half.models.unet.parameters()).dtype == torch.bfloat16
    assert next(half.models.image_encoder.parameters()).dtype == torch.bfloat16
    assert next(half.models.vae.parameters()).dtype == torch.float32
    ckpt = tmp_path / "sv3d_p.ckpt"
    torch.save({"state_dict": official_state_dict(models), CONFIG_METADATA_KEY: models.config.to_json()}, ckpt)
    _same_weights(models, load_sv3d(ckpt).models)


def test_bad_checkpoints_raise_checkpoint_errors(tiny_p, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path, models = tiny_p
    meta = {CONFIG_METADATA_KEY: models.config.to_json()}
    with pytest.raises(CheckpointError, match="sv3d_p checkpoint, but sv3d_u was asked for"):
        load_sv3d(path, expect="sv3d_u")

    sd = official_state_dict(models)
    missing = dict(sd)
    missing.pop("model.diffusion_model.out.2.weight")
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"1 missing: model\.diffusion_model\.out\.2\.weight"):
        load_sv3d(tmp_path / "missing.safetensors")

    extra = {**sd, "model_ema.decay": torch.tensor(0.999)}
    save_file(extra, str(tmp_path / "extra.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"1 unexpected: model_ema\.decay"):
        load_sv3d(tmp_path / "extra.safetensors")

    wrong = {**sd, "model.diffusion_model.out.2.bias": torch.zeros(5)}
    save_file(wrong, str(tmp_path / "wrong.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="other shapes"):
        load_sv3d(tmp_path / "wrong.safetensors")

    svd = {**sd, LABEL_EMB_KEY: torch.zeros(sd[LABEL_EMB_KEY].shape[0], 768)}
    save_file(svd, str(tmp_path / "svd.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="Stable Video Diffusion"):
        load_sv3d(tmp_path / "svd.safetensors")

    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="Cannot read checkpoint"):
        load_sv3d(tmp_path / "junk.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a checkpoint a3d reads"):
        load_sv3d(tmp_path / "model.onnx")
    with pytest.raises(InputError):
        load_sv3d(tmp_path / "absent.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["sv3d_u", "sv3d_p"])
def test_real_checkpoint_loads_completely(variant: str) -> None:
    """With the real file (RUN_SLOW=1 and the weights resolvable): every key accounted for, sane outputs."""
    from a3d_cli.errors import WeightsMissing
    from a3d_cli.weights import resolve

    try:
        path = resolve(variant)
    except WeightsMissing:
        pytest.skip(f"{variant} weights are not on this machine")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_sv3d(path, device=device, unet_dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    assert loaded.report.ok and loaded.models.variant == variant
    assert loaded.report.used == 2066 and loaded.report.unused_count == 146
    with torch.no_grad():
        pix = torch.zeros(1, 3, 224, 224, device=device, dtype=next(loaded.models.image_encoder.parameters()).dtype)
        emb = loaded.models.image_encoder(pixel_values=pix).image_embeds
    assert emb.shape == (1, 1024) and torch.isfinite(emb).all()


def test_build_models_puts_every_tensor_on_the_requested_device() -> None:
    """diffusers' AlphaBlender makes its mix factor with the legacy constructor, which ignores the device
    context; a stray CPU tensor would break the first CUDA forward (and FLOP counting) with a device error."""
    models = build_models(SV3DConfig.tiny(), "sv3d_p", device="meta")
    devices = {
        t.device.type
        for m in (models.unet, models.vae, models.image_encoder)
        for t in [*m.parameters(), *m.buffers()]
    }
    assert devices == {"meta"}
