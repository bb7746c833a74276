"""Key map between Stability's single-file SV3D checkpoints (sgm layout) and our diffusers/transformers modules.

Every official key is accounted for: it either feeds a parameter of ours (`Rule`), or is listed as a known,
unused leftover with the reason (`UNUSED_GROUPS`), or it is reported as unexpected. Every parameter of ours
must be fed; a key the file lacks is reported as missing. `plan_conversion` works on key → shape tables
only, so the same check runs on a real file's header and on the key fixtures (meta-device models).

Where the official modules live (sgm `DiffusionEngine`, `configs/inference/sv3d_{u,p}.yaml`):

- ``model.diffusion_model.*`` → `SV3DUNet` (the SVD UNet layout, renamed block by block).
- ``conditioner.embedders.0.open_clip.model.visual.*`` → transformers `CLIPVisionModelWithProjection`
  (q/k/v are one packed `in_proj` in OpenCLIP; `proj` is stored transposed).
- ``conditioner.embedders.1.encoder.{encoder,quant_conv}.*`` → `AutoencoderKL` encoder + quant_conv: the
  conditioning latent is the mode of this encoder, exactly as sgm computes it.
- ``first_stage_model.decoder.*`` → `AutoencoderKL` decoder. sgm decodes with this decoder and no
  post_quant_conv (its `AutoencodingEngine` has none), so our VAE is built with `use_post_quant_conv=False`.
  The mid-block attention q/k/v/proj_out are 1×1 convolutions in sgm and linear layers in diffusers: the
  same numbers, stored with two trailing unit dimensions (`op="squeeze"`).

Known leftovers (present in the official files, not used by SV3D inference, never loaded):

- OpenCLIP's text-side parameters that survive sgm's `del model.transformer`: ``positional_embedding``,
  ``token_embedding.weight``, ``ln_final.{weight,bias}``, ``text_projection``, ``logit_scale``.
- The conditioner autoencoder's own ``decoder.*`` and ``post_quant_conv.*``: sgm only encodes with it.

Examples:
    >>> rules = build_rules(our_shapes, config)           # official key -> Rule
    >>> report = plan_conversion(file_shapes, rules, our_shapes)
    >>> report.ok, report.unused_count
    (True, 146)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from a3d_cli.errors import CheckpointError
from a3d_cli.models.sv3d.config import ADM_IN_CHANNELS, SV3DConfig, UNetConfig, Variant

Shape = tuple[int, ...]
Op = Literal["copy", "squeeze", "transpose", "split"]

UNET = "model.diffusion_model."
CLIP_MODEL = "conditioner.embedders.0.open_clip.model."
CLIP_VISUAL = CLIP_MODEL + "visual."
COND_AE = "conditioner.embedders.1.encoder."
FIRST_STAGE_DECODER = "first_stage_model.decoder."
LABEL_EMB_KEY = UNET + "label_emb.0.0.weight"

#: Official keys that SV3D inference does not use, grouped by reason. A group is (reason, exact keys, prefixes).
UNUSED_GROUPS: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    (
        "OpenCLIP text-side leftovers (sgm deletes only the text transformer; SV3D uses the image tower)",
        frozenset(
            CLIP_MODEL + k
            for k in (
                "positional_embedding",
                "token_embedding.weight",
                "ln_final.weight",
                "ln_final.bias",
                "text_projection",
                "logit_scale",
            )
        ),
        (),
    ),
    (
        "decoder and post_quant_conv of the conditioner's autoencoder (sgm only encodes with it; "
        "frames are decoded by first_stage_model.decoder)",
        frozenset(),
        (COND_AE + "decoder.", COND_AE + "post_quant_conv."),
    ),
)


@dataclass(frozen=True)
class Rule:
    """How one official tensor becomes parameters of ours.

    Attributes:
        official: the official key.
        ours: our keys, prefixed by component ("unet.", "vae.", "clip."); several only for `split`.
        op: "copy" (same shape), "squeeze" (official has two trailing unit dims), "transpose" (2-D,
            official is the transpose), "split" (official stacks ours along dim 0, in order).
    """

    official: str
    ours: tuple[str, ...]
    op: Op = "copy"


@dataclass
class ConversionReport:
    """What a conversion found. `ok` is True when nothing is missing, unexpected or mis-shaped.

    Attributes:
        variant: "sv3d_u" or "sv3d_p".
        used: number of official keys that feed our parameters.
        unused: reason → official keys deliberately not loaded.
        missing: official keys our model needs that the file lacks.
        unexpected: file keys that are neither used nor known leftovers.
        mismatched: (key, file shape, expected shape) for keys whose shapes disagree.
    """

    variant: Variant
    used: int = 0
    unused: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, Shape, Shape]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def unused_count(self) -> int:
        return sum(len(v) for v in self.unused.values())

    def summary(self, limit: int = 5) -> str:
        """One paragraph for error messages and logs."""
        parts = [f"{self.variant}: {self.used} keys used, {self.unused_count} known leftovers skipped"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
        if self.mismatched:
            shown = "; ".join(f"{k} file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:limit])
            parts.append(f"{len(self.mismatched)} with other shapes: {shown}")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# UNet: sgm VideoUNet (input_blocks / middle_block / output_blocks) ↔ diffusers down/mid/up blocks


_RESNET_LEAVES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _unet_blocks(cfg: UNetConfig) -> list[tuple[str, str, str]]:
    """(our prefix, official prefix, kind) for every UNet module; kind ∈ plain | resnet | attn."""
    rows = [
        ("conv_in.", "input_blocks.0.0.", "plain"),
        ("time_embedding.linear_1.", "time_embed.0.", "plain"),
        ("time_embedding.linear_2.", "time_embed.2.", "plain"),
        ("add_embedding.linear_1.", "label_emb.0.0.", "plain"),
        ("add_embedding.linear_2.", "label_emb.0.2.", "plain"),
        ("conv_norm_out.", "out.0.", "plain"),
        ("conv_out.", "out.2.", "plain"),
        ("mid_block.resnets.0.", "middle_block.0.", "resnet"),
        ("mid_block.attentions.0.", "middle_block.1.", "attn"),
        ("mid_block.resnets.1.", "middle_block.2.", "resnet"),
    ]
    levels = len(cfg.block_out_channels)
    k = 1  # input_blocks.0 is conv_in
    for i, kind in enumerate(cfg.down_block_types):
        has_attn = kind.startswith("CrossAttn")
        for j in range(cfg.layers_per_block):
            rows.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0.", "resnet"))
            if has_attn:
                rows.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1.", "attn"))
            k += 1
        if i < levels - 1:
            rows.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{k}.0.op.", "plain"))
            k += 1
    k = 0
    for i, kind in enumerate(cfg.up_block_types):
        has_attn = kind.startswith("CrossAttn")
        for j in range(cfg.layers_per_block + 1):
            rows.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0.", "resnet"))
            if has_attn:
                rows.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1.", "attn"))
            if j == cfg.layers_per_block and i < levels - 1:
                slot = 2 if has_attn else 1
                rows.append((f"up_blocks.{i}.upsamplers.0.conv.", f"output_blocks.{k}.{slot}.conv.", "plain"))
            k += 1
    return rows


def _unet_leaf(rest: str, kind: str) -> str:
    if kind == "resnet":
        for ours, theirs in (("spatial_res_block.", ""), ("temporal_res_block.", "time_stack.")):
            if rest.startswith(ours):
                module, _, leaf = rest[len(ours) :].rpartition(".")
                return theirs + _RESNET_LEAVES[module] + "." + leaf
        return rest  # time_mixer.mix_factor
    if kind == "attn":
        rest = rest.replace("temporal_transformer_blocks.", "time_stack.", 1)
        rest = rest.replace("time_pos_embed.linear_1.", "time_pos_embed.0.", 1)
        return rest.replace("time_pos_embed.linear_2.", "time_pos_embed.2.", 1)
    return rest


def _map_by_prefix(key: str, rows: Sequence[tuple[str, str, str]], leaf) -> str:  # noqa: ANN001
    best = max((r for r in rows if key.startswith(r[0])), key=lambda r: len(r[0]), default=None)
    if best is None:
        raise KeyError(f"no official name is known for {key}")
    ours, theirs, kind = best
    return theirs + leaf(key[len(ours) :], kind)


# ---------------------------------------------------------------------------------------------------------
# VAE: sgm Encoder/Decoder (down.i.block.j, mid.block_1, mid.attn_1 …) ↔ diffusers AutoencoderKL


_VAE_ATTN_LEAVES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _vae_blocks(levels: int, layers: int) -> list[tuple[str, str, str]]:
    enc, dec = COND_AE + "encoder.", FIRST_STAGE_DECODER
    rows = [("quant_conv.", COND_AE + "quant_conv.", "plain")]
    for ours, theirs in (("encoder.", enc), ("decoder.", dec)):
        rows += [
            (ours + "conv_in.", theirs + "conv_in.", "plain"),
            (ours + "conv_out.", theirs + "conv_out.", "plain"),
            (ours + "conv_norm_out.", theirs + "norm_out.", "plain"),
            (ours + "mid_block.resnets.0.", theirs + "mid.block_1.", "resnet"),
            (ours + "mid_block.resnets.1.", theirs + "mid.block_2.", "resnet"),
            (ours + "mid_block.attentions.0.", theirs + "mid.attn_1.", "attn"),
        ]
    for i in range(levels):
        for j in range(layers):
            rows.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"{enc}down.{i}.block.{j}.", "resnet"))
        if i < levels - 1:
            rows.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"{enc}down.{i}.downsample.conv.", "plain"))
    for i in range(levels):
        sgm_level = levels - 1 - i  # sgm counts decoder levels from full resolution up
        for j in range(layers + 1):
            rows.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"{dec}up.{sgm_level}.block.{j}.", "resnet"))
        if i < levels - 1:
            rows.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"{dec}up.{sgm_level}.upsample.conv.", "plain"))
    return rows


def _vae_leaf(rest: str, kind: str) -> str:
    if kind == "resnet":
        return rest.replace("conv_shortcut.", "nin_shortcut.", 1)
    if kind == "attn":
        module, _, leaf = rest.rpartition(".")
        return _VAE_ATTN_LEAVES[module] + "." + leaf
    return rest


# ---------------------------------------------------------------------------------------------------------
# CLIP: OpenCLIP VisionTransformer ↔ transformers CLIPVisionModelWithProjection


_CLIP_TOP = {
    "vision_model.embeddings.class_embedding": "class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "positional_embedding",
    "vision_model.pre_layrnorm.weight": "ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "ln_pre.bias",
    "vision_model.post_layernorm.weight": "ln_post.weight",
    "vision_model.post_layernorm.bias": "ln_post.bias",
}
_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def _clip_rules(our_keys: Iterable[str]) -> list[Rule]:
    rules: list[Rule] = []
    packed: dict[str, dict[str, str]] = {}  # official in_proj key -> {"q": our key, ...}
    for key in our_keys:
        if key in _CLIP_TOP:
            rules.append(Rule(CLIP_VISUAL + _CLIP_TOP[key], ("clip." + key,)))
        elif key == "visual_projection.weight":
            rules.append(Rule(CLIP_VISUAL + "proj", ("clip." + key,), "transpose"))
        elif key.startswith("vision_model.encoder.layers."):
            i, rest = key[len("vision_model.encoder.layers.") :].split(".", 1)
            block = f"{CLIP_VISUAL}transformer.resblocks.{i}."
            module, _, leaf = rest.rpartition(".")
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                packed.setdefault(f"{block}attn.in_proj_{leaf}", {})[module[10]] = "clip." + key
            elif module in _CLIP_LAYER:
                rules.append(Rule(f"{block}{_CLIP_LAYER[module]}.{leaf}", ("clip." + key,)))
            else:
                raise KeyError(f"no official name is known for clip.{key}")
        else:
            raise KeyError(f"no official name is known for clip.{key}")
    for official, parts in packed.items():
        if sorted(parts) != ["k", "q", "v"]:
            raise KeyError(f"{official} needs q, k and v projections, found {sorted(parts)}")
        rules.append(Rule(official, (parts["q"], parts["k"], parts["v"]), "split"))
    return rules


# ---------------------------------------------------------------------------------------------------------
# Public API


def build_rules(our_shapes: Mapping[str, Shape], config: SV3DConfig) -> dict[str, Rule]:
    """Official key → Rule for every parameter of our three modules.

    Args:
        our_shapes: our state-dict keys (prefixed "unet.", "vae.", "clip.") → shapes.
        config: the sizes (they decide the sgm block numbering).

    Raises:
        KeyError: one of our parameters has no official name (a bug of this module).
    """
    unet_rows = _unet_blocks(config.unet)
    vae_rows = _vae_blocks(len(config.vae.block_out_channels), config.vae.layers_per_block)
    rules: list[Rule] = []
    clip_keys: list[str] = []
    for key in our_shapes:
        comp, _, rest = key.partition(".")
        if comp == "unet":
            rules.append(Rule(UNET + _map_by_prefix(rest, unet_rows, _unet_leaf), (key,)))
        elif comp == "vae":
            official = _map_by_prefix(rest, vae_rows, _vae_leaf)
            is_attn_weight = (
                ".mid_block.attentions.0." in rest and rest.endswith(".weight") and "group_norm" not in rest
            )
            rules.append(Rule(official, (key,), "squeeze" if is_attn_weight else "copy"))
        elif comp == "clip":
            clip_keys.append(rest)
        else:
            raise KeyError(f"unknown component of {key}")
    rules += _clip_rules(clip_keys)
    table: dict[str, Rule] = {}
    for rule in rules:
        if rule.official in table:
            raise KeyError(f"{rule.official} would feed both {table[rule.official].ours} and {rule.ours}")
        table[rule.official] = rule
    return table


def official_shape(rule: Rule, our_shapes: Mapping[str, Shape]) -> Shape:
    """The shape the official tensor must have for `rule`, given our parameter shapes."""
    shapes = [tuple(our_shapes[k]) for k in rule.ours]
    if rule.op == "copy":
        return shapes[0]
    if rule.op == "squeeze":
        return (*shapes[0], 1, 1)
    if rule.op == "transpose":
        return tuple(reversed(shapes[0]))
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"{rule.official}: split parts differ in shape {shapes}")
    return (shapes[0][0] * len(shapes), *shapes[0][1:])


def to_ours(rule: Rule, tensor: Tensor) -> list[Tensor]:
    """The tensors of our parameters `rule.ours` from one official tensor."""
    if rule.op == "copy":
        return [tensor]
    if rule.op == "squeeze":
        return [tensor.reshape(tensor.shape[:-2])]
    if rule.op == "transpose":
        return [tensor.t().contiguous()]
    return [t.contiguous() for t in tensor.chunk(len(rule.ours), dim=0)]


def to_official(rule: Rule, tensors: Sequence[Tensor]) -> Tensor:
    """The inverse of `to_ours`: one official tensor from our parameters `rule.ours`."""
    if rule.op == "copy":
        return tensors[0]
    if rule.op == "squeeze":
        return tensors[0].reshape(*tensors[0].shape, 1, 1)
    if rule.op == "transpose":
        return tensors[0].t().contiguous()
    return torch.cat(list(tensors), dim=0)


def unused_reason(key: str) -> str | None:
    """Why an official key is deliberately not loaded, or None when it is not a known leftover."""
    for reason, exact, prefixes in UNUSED_GROUPS:
        if key in exact or key.startswith(prefixes):
            return reason
    return None


def detect_variant(file_shapes: Mapping[str, Shape], source: str = "the checkpoint") -> Variant:
    """sv3d_u or sv3d_p from the width of the UNet's vector input (label_emb: 256 → u, 1280 → p).

    Raises:
        CheckpointError: not an sgm SV3D checkpoint (e.g. SVD, whose width is 768, or a diffusers folder).
    """
    shape = file_shapes.get(LABEL_EMB_KEY)
    if shape is None:
        raise CheckpointError(
            f"{source} is not an SV3D checkpoint: it has no {LABEL_EMB_KEY}.",
            hint="Pass Stability's sv3d_u.safetensors or sv3d_p.safetensors (a3d weights fetch sv3d_p).",
        )
    width = int(shape[1]) if len(shape) == 2 else -1
    for variant, adm in ADM_IN_CHANNELS.items():
        if width == adm:
            return variant  # type: ignore[return-value]
    known = {768: "Stable Video Diffusion (SVD / SVD-XT)"}
    what = known.get(width, f"a model whose vector input is {width} wide")
    raise CheckpointError(
        f"{source} looks like {what}, not SV3D (SV3D's label_emb input is 256 for sv3d_u or 1280 for sv3d_p).",
        hint="Pass Stability's sv3d_u.safetensors or sv3d_p.safetensors (a3d weights fetch sv3d_p).",
    )


def plan_conversion(
    file_shapes: Mapping[str, Shape],
    rules: Mapping[str, Rule],
    our_shapes: Mapping[str, Shape],
    variant: Variant,
) -> ConversionReport:
    """Account for every key of a checkpoint against our model, using shapes only.

    Args:
        file_shapes: official key → shape (a safetensors header, or a key fixture).
        rules: from `build_rules`.
        our_shapes: our prefixed keys → shapes.
        variant: the detected variant (recorded in the report).
    """
    report = ConversionReport(variant=variant)
    for official, rule in rules.items():
        if official not in file_shapes:
            report.missing.append(official)
            continue
        want, have = official_shape(rule, our_shapes), tuple(file_shapes[official])
        if want != have:
            report.mismatched.append((official, have, want))
        else:
            report.used += 1
    for key in file_shapes:
        if key in rules:
            continue
        reason = unused_reason(key)
        if reason is None:
            report.unexpected.append(key)
        else:
            report.unused.setdefault(reason, []).append(key)
    return report
