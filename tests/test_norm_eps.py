"""Every normalisation layer of the full-size networks has the reference's eps and group count.

The full-size models are built on the meta device (no memory, no weights) and each GroupNorm / LayerNorm
is matched against a table of rules written from the upstream code, not from our own models:

SV3D (Stability-AI/generative-models, `configs/inference/sv3d_p.yaml`):
  * UNet resnets, spatial and temporal (`VideoResBlock` = `ResBlock` + `time_stack` `ResBlock`): sgm
    `normalization(ch)` = `GroupNorm32(32, ch)` with `nn.GroupNorm`'s default eps 1e-5; the output norm too.
  * UNet transformer input norm: `SpatialTransformer.norm = Normalize(C)` = GroupNorm(32, eps 1e-6).
  * Transformer LayerNorms (`BasicTransformerBlock`, `VideoTransformerBlock` incl. `norm_in`):
    `nn.LayerNorm(dim)`, eps 1e-5.
  * VAE (`sgm.modules.diffusionmodules.model` Encoder/Decoder): `Normalize` = GroupNorm(32, eps 1e-6)
    everywhere (resnets, mid attention, norm_out).
  * CLIP image tower (OpenCLIP ViT-H/14): `LayerNorm` = `nn.LayerNorm` default, eps 1e-5.

MV-VDM (yanqinJiang/Animate3D `MVUNetMotionModel` on diffusers 0.28 blocks, SD1.5 UNet config
`norm_num_groups 32`, `norm_eps 1e-5`):
  * resnets: `resnet_eps=norm_eps` = 1e-5, `resnet_groups=norm_num_groups` = 32; `conv_norm_out` the same.
  * spatial transformers (`Transformer2DModel.norm`) and motion modules (`TransformerTemporalModel.norm`):
    GroupNorm(32, eps 1e-6) hard-coded in diffusers 0.28.
  * `BasicTransformerBlock` LayerNorms: `norm_eps` default 1e-5; IP-Adapter `ImageProjection.norm`:
    `nn.LayerNorm` default 1e-5.
  * The SD VAE (`AutoencoderKL`, SD1.5 `vae/config.json`: 4 levels 128…512, 2 layers, 32 groups):
    diffusers' `Encoder`/`Decoder` use eps 1e-6 for every GroupNorm.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

# (pattern on the module name, kind, eps, groups or None for LayerNorm)
Rule = tuple[str, str, float, int | None]

SV3D_UNET_RULES: list[Rule] = [
    (r".*\.resnets\.\d+\.(spatial|temporal)_res_block\.norm[12]", "GroupNorm", 1e-5, 32),
    (r"conv_norm_out", "GroupNorm", 1e-5, 32),
    (r".*\.attentions\.\d+\.norm", "GroupNorm", 1e-6, 32),
    (r".*\.attentions\.\d+\.(temporal_)?transformer_blocks\.\d+\.norm(1|2|3|_in)", "LayerNorm", 1e-5, None),
]
VAE_RULES: list[Rule] = [(r"(encoder|decoder)\..*norm.*", "GroupNorm", 1e-6, 32)]
CLIP_RULES: list[Rule] = [
    (r"vision_model\.(pre_layrnorm|post_layernorm)", "LayerNorm", 1e-5, None),
    (r"vision_model\.encoder\.layers\.\d+\.layer_norm[12]", "LayerNorm", 1e-5, None),
]
MVVDM_UNET_RULES: list[Rule] = [
    (r".*\.resnets\.\d+\.norm[12]", "GroupNorm", 1e-5, 32),
    (r"conv_norm_out", "GroupNorm", 1e-5, 32),
    (r".*\.(attentions|motion_modules)\.\d+\.norm", "GroupNorm", 1e-6, 32),
    (r".*\.(attentions|motion_modules)\.\d+\.transformer_blocks\.\d+\.norm[123]", "LayerNorm", 1e-5, None),
    (r"encoder_hid_proj\.image_projection_layers\.0\.norm", "LayerNorm", 1e-5, None),
]


def check_norms(model: nn.Module, rules: list[Rule]) -> dict[str, int]:
    """Match every norm layer against exactly one rule; returns how many layers each rule matched."""
    hits = {r[0]: 0 for r in rules}
    for name, m in model.named_modules():
        if not isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
            continue
        matches = [r for r in rules if re.fullmatch(r[0], name)]
        assert len(matches) == 1, f"{name}: matched {len(matches)} reference rules"
        pattern, kind, eps, groups = matches[0]
        assert isinstance(m, getattr(nn, kind)), f"{name} is a {type(m).__name__}, the reference has a {kind}"
        assert m.eps == eps, f"{name}: eps {m.eps}, reference {eps}"
        if groups is not None:
            assert m.num_groups == groups, f"{name}: {m.num_groups} groups, reference {groups}"
        hits[pattern] += 1
    assert all(hits.values()), f"a reference rule matched nothing: {hits}"
    return hits


@pytest.fixture(scope="module")
def sv3d_meta():  # noqa: ANN201 - SV3DModels
    from a3d_cli.models.sv3d.config import SV3DConfig
    from a3d_cli.models.sv3d.loading import build_models

    return build_models(SV3DConfig.full(), "sv3d_p", device="meta")


def test_sv3d_unet_norms_match_sgm(sv3d_meta) -> None:  # noqa: ANN001
    hits = check_norms(sv3d_meta.unet, SV3D_UNET_RULES)
    # 22 VideoResBlocks (8 down, 2 mid, 12 up), each 2 spatial + 2 temporal GroupNorms
    assert hits[SV3D_UNET_RULES[0][0]] == 88


def test_sv3d_vae_and_clip_norms_match_sgm_and_openclip(sv3d_meta) -> None:  # noqa: ANN001
    check_norms(sv3d_meta.vae, VAE_RULES)
    hits = check_norms(sv3d_meta.image_encoder, CLIP_RULES)
    assert hits[CLIP_RULES[1][0]] == 2 * 32  # two LayerNorms in each of ViT-H's 32 layers


def test_mvvdm_unet_and_sd_vae_norms_match_animate3d() -> None:
    from diffusers import AutoencoderKL

    from a3d_cli.models.mvvdm import MVVDMConfig, MVVDMUNet

    with torch.device("meta"):
        unet = MVVDMUNet(MVVDMConfig())
        vae = AutoencoderKL(  # SD1.5 vae/config.json
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            norm_num_groups=32,
        )
    hits = check_norms(unet, MVVDM_UNET_RULES)
    assert hits[MVVDM_UNET_RULES[0][0]] == 2 * (8 + 2 + 12)  # 22 resnets, two norms each
    assert hits[MVVDM_UNET_RULES[2][0]] == 16 + 21  # 16 spatial transformers + 21 motion modules
    check_norms(vae, VAE_RULES)
