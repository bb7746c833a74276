"""Official checkpoints → MV-VDM UNet parameters, with every key accounted for.

The released model is assembled from three files (Animate3D `inference.py`):

============================  =======================================================  ==========
file                          holds                                                    keys
============================  =======================================================  ==========
mvdream-sd1.5-diffusers unet  SD1.5 UNet (686) + camera MLP (4)                         690
ip-adapter_sd15.bin           image projection (4) + 16 × `to_k_ip`/`to_v_ip` (32)      36
animate3d_motion_modules.ckpt motion modules (546) + their processors (294) + I2V (48)  888
============================  =======================================================  ==========

690 + 36 + 888 = 1614 = every parameter and buffer of `MVVDMUNet`; the motion-module file alone leaves
exactly 726 keys to the base models (Animate3D asserts this number). The AnimateDiff v2 adapter
(`guoyww/animatediff-motion-adapter-v1-5-2`, 567 keys) only gives the architecture at inference — every
one of its weights is replaced by the Animate3D file — but it maps too (`convert_motion_adapter`), e.g. to
start training from it.

diffusers 0.28 (the reference) vs 0.42 (a3d): the key names of all these files are identical under both. What
differs is code, not names: the motion module class is `TransformerTemporalModel` in `unet_3d_blocks` (0.28)
and `AnimateDiffTransformer3D` in `unet_motion_model` (0.42); the IP-Adapter processor is
`IPAdapterAttnProcessor` (0.28 on torch < 2, which the reference requires) vs `IPAdapterAttnProcessor2_0`
(0.42, SDPA) with the same `to_k_ip.0` / `to_v_ip.0` parameters; `MotionAdapter`'s config gained
`motion_transformer_layers_per_block` / `…_per_mid_block` (default 1, our layout).

Renamings we apply (everything else keeps its name):

* AnimateDiff ``…motion_modules.N.transformer_blocks.0.pos_embed.pe`` → ``…attn1.processor.time_pos_embed.pe``
  and ``…attn2.processor.time_pos_embed.pe`` (Animate3D moved the frame encoding into the processors);
* IP-Adapter ``image_proj.proj.*`` → ``encoder_hid_proj.image_projection_layers.0.image_embeds.*``,
  ``image_proj.norm.*`` → ``encoder_hid_proj.image_projection_layers.0.norm.*``, and
  ``ip_adapter.<id>.to_{k,v}_ip.weight`` → ``<cross-attention layer>.processor.to_{k,v}_ip.0.weight`` where
  id = 1, 3, 5, … numbers the cross-attentions in diffusers' UNet2DConditionModel order (down blocks, up
  blocks, then the mid block).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from a3d_cli.errors import CheckpointError
from a3d_cli.models.mvvdm.config import MVVDMConfig
from a3d_cli.models.mvvdm.unet import MVVDMUNet
from a3d_cli.weights.safe_load import load_pickled_weights, read_errors, weights_error

GROUPS = ("sd15_unet", "camera", "ip_image_proj", "ip_kv", "motion", "motion_processor", "i2v")
BASE_GROUPS = ("sd15_unet", "camera", "ip_image_proj", "ip_kv")  # frozen base models
MOTION_FILE_GROUPS = ("motion", "motion_processor", "i2v")  # what animate3d_motion_modules.ckpt holds


def key_group(name: str) -> str:
    """Which part of MV-VDM a parameter name belongs to (one of `GROUPS`)."""
    if name.startswith("camera_embedding."):
        return "camera"
    if name.startswith("encoder_hid_proj."):
        return "ip_image_proj"
    if ".motion_modules." in name:
        return "motion_processor" if ".processor." in name else "motion"
    if ".attn2.processor.to_k_ip." in name or ".attn2.processor.to_v_ip." in name:
        return "ip_kv"
    if ".attn1.processor.to_q_i2v." in name or ".attn1.processor.to_out_i2v." in name:
        return "i2v"
    if ".processor." in name:
        raise ValueError(f"{name}: a processor parameter of no known group")
    return "sd15_unet"


def group_keys(names: Iterable[str]) -> dict[str, list[str]]:
    """Names sorted into `GROUPS` (every group present, possibly empty)."""
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for n in names:
        out[key_group(n)].append(n)
    return out


# ---------------------------------------------------------------------------------------------- reading files
def _read_weights_file(path: Path, what: str, hint: str) -> object:
    """What a weights file holds: a flat {name: tensor} from safetensors, else the object of a torch pickle
    (``weights_only=True``, memory-mapped when the file allows it).

    Why one reader: the state files (`read_state_file`) and the IP-Adapter file come in both formats and must
    fail alike, with one `CheckpointError` naming the file (`what`, `hint`: as `weights_error` takes them).
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return load_pickled_weights(path)
    except read_errors() as exc:
        raise weights_error(path, exc, what, hint) from exc


def read_state_file(path: Path) -> dict[str, Tensor]:
    """A flat {name: tensor} from a safetensors file or a torch pickle (loaded with ``weights_only=True``).

    A pickle holding ``{"state_dict": {...}, ...}`` (a training checkpoint) yields its state dict, and a
    ``module.`` prefix carried by every key (a DDP save) is removed.

    Raises:
        CheckpointError: unreadable, not a tensor mapping, or refused by the safe unpickler.
    """
    path = Path(path)
    data = _read_weights_file(
        path, "a weights file", "Re-download it with `a3d weights fetch` (the file may be truncated)."
    )
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a mapping of tensors.")
    return _strip_module_prefix({str(k): v for k, v in data.items()}, path)


def _strip_module_prefix(sd: dict[str, object], path: Path) -> dict[str, Tensor]:
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path} has non-tensor entries, e.g. {bad[:3]}.")
    return sd  # type: ignore[return-value]


def read_ip_adapter_file(path: Path) -> dict[str, dict[str, Tensor]]:
    """h94's ``ip-adapter_sd15.bin``: ``{"image_proj": {...}, "ip_adapter": {...}}`` (pickle, weights only)."""
    path = Path(path)
    data = _read_weights_file(path, "an IP-Adapter file", "Re-download it with `a3d weights fetch ip_adapter_sd15`.")
    if path.suffix == ".safetensors":  # flat `image_proj.*` / `ip_adapter.*` keys, nested as the pickle holds them
        nested: dict[str, dict[str, Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for k, v in data.items():  # type: ignore[union-attr]  # safetensors: a dict
            head, _, rest = k.partition(".")
            if head not in nested:
                raise CheckpointError(f"{path}: unexpected key {k!r} (want image_proj.* / ip_adapter.*)")
            nested[head][rest] = v
        data = nested
    if not (isinstance(data, Mapping) and set(data) == {"image_proj", "ip_adapter"}):
        keys = list(data)[:5] if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"{path} is not an IP-Adapter file (top level: {keys}; want image_proj, ip_adapter).")
    return {"image_proj": dict(data["image_proj"]), "ip_adapter": dict(data["ip_adapter"])}


# ---------------------------------------------------------------------------------------------- converters
def _check_exact(source: str, got: Iterable[str], expected: Iterable[str]) -> None:
    got, expected = set(got), set(expected)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        raise CheckpointError(
            f"{source} does not match MV-VDM: " + "; ".join(parts) + ".",
            hint="Check that the file is the one the registry names (`a3d weights list`).",
        )


def convert_mvdream_unet(sd: Mapping[str, Tensor], model_keys: Iterable[str]) -> dict[str, Tensor]:
    """MVDream SD1.5 diffusers UNet (UNet2DConditionModel + `camera_embedding`) → same names here.

    Raises:
        CheckpointError: the file is not exactly the 686 SD1.5 + 4 camera keys of this model.
    """
    groups = group_keys(model_keys)
    _check_exact("The MVDream UNet weights", sd, groups["sd15_unet"] + groups["camera"])
    return dict(sd)


def convert_motion_adapter(sd: Mapping[str, Tensor], model_keys: Iterable[str]) -> dict[str, Tensor]:
    """diffusers `MotionAdapter` (AnimateDiff v2) → motion-module names here; `pos_embed.pe` goes to both processors."""
    out: dict[str, Tensor] = {}
    for k, v in sd.items():
        if k.endswith(".transformer_blocks.0.pos_embed.pe"):
            stem = k[: -len("pos_embed.pe")]
            out[f"{stem}attn1.processor.time_pos_embed.pe"] = v
            out[f"{stem}attn2.processor.time_pos_embed.pe"] = v
        else:
            out[k] = v
    groups = group_keys(model_keys)
    expected = groups["motion"] + [k for k in groups["motion_processor"] if k.endswith("time_pos_embed.pe")]
    _check_exact("The AnimateDiff motion adapter", out, expected)
    return out


def cross_attention_layers_in_ip_order(model_keys: Iterable[str]) -> list[str]:
    """The spatial cross-attention layers in IP-Adapter id order (diffusers UNet2DConditionModel order).

    IP-Adapter ids 1, 3, 5, … number the attn2 layers as `UNet2DConditionModel.attn_processors` lists
    them: down blocks, then up blocks, then the mid block (that class registers `up_blocks` before
    `mid_block`), each in module order.
    """
    layers: list[str] = []
    for k in model_keys:
        if key_group(k) == "ip_kv" and ".to_k_ip." in k:
            layers.append(k.split(".processor.", 1)[0])
    order = {"down_blocks": 0, "up_blocks": 1, "mid_block": 2}
    return sorted(dict.fromkeys(layers), key=lambda n: (order[n.split(".", 1)[0]], layers.index(n)))


def convert_ip_adapter(data: Mapping[str, Mapping[str, Tensor]], model_keys: Iterable[str]) -> dict[str, Tensor]:
    """h94 IP-Adapter SD1.5 layout → `encoder_hid_proj.*` and the cross-attention processors' `to_{k,v}_ip.0`."""
    model_keys = list(model_keys)
    out: dict[str, Tensor] = {}
    proj_prefix = "encoder_hid_proj.image_projection_layers.0."
    for k, v in data["image_proj"].items():
        head, _, rest = k.partition(".")
        if head not in ("proj", "norm"):
            raise CheckpointError(
                f"IP-Adapter image_proj key {k!r} is not proj.* or norm.* (a Plus/FaceID variant?).",
                hint="MV-VDM uses h94/IP-Adapter models/ip-adapter_sd15.bin.",
            )
        out[proj_prefix + ("image_embeds." if head == "proj" else "norm.") + rest] = v
    layers = cross_attention_layers_in_ip_order(model_keys)
    for k, v in data["ip_adapter"].items():
        ident, _, rest = k.partition(".")
        if (
            not ident.isdigit()
            or ident == "0"
            or int(ident) % 2 == 0
            or rest not in ("to_k_ip.weight", "to_v_ip.weight")
        ):
            raise CheckpointError(f"IP-Adapter key ip_adapter.{k} is not <odd id>.to_{{k,v}}_ip.weight.")
        idx = (int(ident) - 1) // 2
        if idx >= len(layers):
            raise CheckpointError(f"IP-Adapter key ip_adapter.{k}: the model has only {len(layers)} cross-attentions.")
        out[f"{layers[idx]}.processor.{rest.replace('_ip.weight', '_ip.0.weight')}"] = v
    groups = group_keys(model_keys)
    _check_exact("The IP-Adapter weights", out, groups["ip_image_proj"] + groups["ip_kv"])
    return out


def convert_animate3d_motion_modules(sd: Mapping[str, Tensor], model_keys: Iterable[str]) -> dict[str, Tensor]:
    """Animate3D's released motion-module file → same names (motion modules, their processors, I2V)."""
    groups = group_keys(model_keys)
    _check_exact("The Animate3D motion-module weights", sd, [k for g in MOTION_FILE_GROUPS for k in groups[g]])
    return dict(sd)


# ---------------------------------------------------------------------------------------------- assembly
@dataclass
class LoadReport:
    """Which file supplied which keys (for logs and tests)."""

    keys_by_source: dict[str, int] = field(default_factory=dict)
    overridden: dict[str, int] = field(default_factory=dict)
    total: int = 0


def assemble_state_dict(
    model_shapes: Mapping[str, torch.Size],
    sources: list[tuple[str, Mapping[str, Tensor]]],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[dict[str, Tensor], LoadReport]:
    """Merge converted sources (later ones win) and check full coverage and shapes.

    Raises:
        CheckpointError: a model key no source provides, a key the model lacks, or a shape mismatch.
    """
    state: dict[str, Tensor] = {}
    report = LoadReport()
    for name, sd in sources:
        report.keys_by_source[name] = len(sd)
        report.overridden[name] = sum(1 for k in sd if k in state)
        for k, v in sd.items():
            state[k] = v
    missing = sorted(set(model_shapes) - set(state))
    extra = sorted(set(state) - set(model_shapes))
    if missing or extra:
        groups = group_keys(missing)
        summary = ", ".join(f"{g}: {len(ks)}" for g, ks in groups.items() if ks)
        raise CheckpointError(
            f"MV-VDM weights are incomplete: {len(missing)} keys missing ({summary or 'none'}), {len(extra)} unexpected"
            f" (e.g. {(missing or extra)[:3]}).",
            hint="Pass the MVDream base, the IP-Adapter and the Animate3D motion-module files (`a3d weights list`).",
        )
    wrong = [(k, tuple(state[k].shape), tuple(s)) for k, s in model_shapes.items() if tuple(state[k].shape) != tuple(s)]
    if wrong:
        k, got, want = wrong[0]
        raise CheckpointError(
            f"{len(wrong)} MV-VDM weights have the wrong shape, e.g. {k}: {list(got)} instead of {list(want)}."
        )
    for k, v in state.items():
        target_dtype = dtype if (dtype is not None and v.is_floating_point()) else v.dtype
        state[k] = v.to(device=device or v.device, dtype=target_dtype)
    report.total = len(state)
    return state, report


def check_unet_config(config_path: Path, cfg: MVVDMConfig) -> None:
    """Refuse an MVDream UNet whose `config.json` describes other sizes than `cfg`.

    Raises:
        CheckpointError: a size that disagrees (the message names the field).
    """
    try:
        data = json.loads(Path(config_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not a readable UNet config ({exc}).") from exc
    heads = data.get("num_attention_heads") or data.get("attention_head_dim")
    checks = {
        "block_out_channels": (
            list(data.get("block_out_channels", cfg.block_out_channels)),
            list(cfg.block_out_channels),
        ),
        "layers_per_block": (data.get("layers_per_block", cfg.layers_per_block), cfg.layers_per_block),
        "cross_attention_dim": (data.get("cross_attention_dim", cfg.cross_attention_dim), cfg.cross_attention_dim),
        "in_channels": (data.get("in_channels", cfg.in_channels), cfg.in_channels),
        "attention heads": (heads if heads is not None else cfg.attention_heads, cfg.attention_heads),
        "camera_embedding_dim": (data.get("camera_embedding_dim", cfg.camera_dim), cfg.camera_dim),
    }
    for name, (got, want) in checks.items():
        if got != want:
            raise CheckpointError(
                f"{config_path}: {name} is {got}, but MV-VDM needs {want}.",
                hint="Use yanqinJiang/mvdream-sd1.5-diffusers (`a3d weights fetch mvdream_sd15`).",
            )


def _find_weights(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.safetensors", f"{stem}.bin"):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(
        f"{folder} has no {stem}.safetensors or {stem}.bin.", hint="Run `a3d weights fetch mvdream_sd15`."
    )


def load_mvvdm_unet(
    unet_dir: Path,
    ip_adapter_file: Path,
    motion_modules_file: Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    config: MVVDMConfig | None = None,
) -> tuple[MVVDMUNet, LoadReport]:
    """Build the released MV-VDM UNet from its three official files, every key accounted for.

    The model is built on the meta device and receives the checkpoint tensors directly (no random init of
    1.5 B parameters).

    Raises:
        CheckpointError: a file that does not match (the message says which and how).
    """
    cfg = config or MVVDMConfig()
    unet_dir = Path(unet_dir)
    check_unet_config(unet_dir / "config.json", cfg)
    with torch.device("meta"):
        model = MVVDMUNet(cfg)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    keys = list(shapes)
    sources = [
        (
            "mvdream_sd15 unet",
            convert_mvdream_unet(read_state_file(_find_weights(unet_dir, "diffusion_pytorch_model")), keys),
        ),
        ("ip_adapter_sd15", convert_ip_adapter(read_ip_adapter_file(ip_adapter_file), keys)),
        ("animate3d_motion_modules", convert_animate3d_motion_modules(read_state_file(motion_modules_file), keys)),
    ]
    state, report = assemble_state_dict(shapes, sources, dtype=dtype, device=device)
    model.load_state_dict(state, strict=True, assign=True)
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:  # pragma: no cover - strict loading covers every persistent entry
        raise CheckpointError(f"MV-VDM has uninitialised tensors after loading: {leftovers[:3]}")
    return model.eval(), report
