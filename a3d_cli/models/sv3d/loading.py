"""Build the three SV3D networks and load an official single-file checkpoint into them.

Loading streams one tensor at a time from the file (safetensors, or a `.ckpt` through
`torch.load(weights_only=True)`), converts it to the requested dtype and device, and assigns it to a model
that was built on the `meta` device, so the peak memory is the model in its final dtype plus one tensor,
never a second fp32 copy of the 9.4 GB file. Before any tensor is read, `plan_conversion` checks every key
and shape against the model and reports missing, unexpected or mis-shaped keys as one `CheckpointError`.

A checkpoint may carry a non-official config in its safetensors metadata (`CONFIG_METADATA_KEY`); the
tests use this for tiny checkpoints written in the official key layout by `save_official_checkpoint`.
Official files have no such entry and get the full-size config.

Examples:
    >>> loaded = load_sv3d(Path("sv3d_p.safetensors"), device="cuda", unet_dtype=torch.bfloat16)
    >>> loaded.models.variant, loaded.report.summary()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from a3d_cli.errors import CheckpointError, InputError
from a3d_cli.models.speed.acceleration import AccelerationReport, accelerate
from a3d_cli.models.speed.attention import use_shortcut_attention
from a3d_cli.models.sv3d.config import CONFIG_METADATA_KEY, SV3DConfig, Variant
from a3d_cli.models.sv3d.convert import (
    ConversionReport,
    Shape,
    build_rules,
    detect_variant,
    plan_conversion,
    to_official,
    to_ours,
    unused_reason,
)
from a3d_cli.models.sv3d.unet import SV3DUNet

COMPONENTS = ("unet", "vae", "clip")


@dataclass
class SV3DModels:
    """The networks of one SV3D model.

    Attributes:
        unet: the denoiser (v-prediction).
        vae: encoder + quant_conv (conditioning latent) and decoder (frames); no post_quant_conv.
        image_encoder: the OpenCLIP ViT-H/14 image tower, as transformers' CLIP vision model.
        config: their sizes.
        variant: "sv3d_u" or "sv3d_p".
    """

    unet: SV3DUNet
    vae: nn.Module  # diffusers AutoencoderKL
    image_encoder: nn.Module  # transformers CLIPVisionModelWithProjection
    config: SV3DConfig
    variant: Variant

    def component(self, name: str) -> nn.Module:
        return {"unet": self.unet, "vae": self.vae, "clip": self.image_encoder}[name]

    def hot_networks(self) -> list[nn.Module]:
        """The networks whose time matters, for `acceleration.accelerate`: the UNet (100 forwards a run)
        and the VAE decoder (21 frames at 576² in fp32)."""
        return [self.unet, self.vae.decoder]

    def accelerate(self, device: str | torch.device, compile: bool = False) -> AccelerationReport:  # noqa: A002
        """Apply the orbit stage's speed settings to the hot networks, in place (`acceleration.accelerate`).

        Regional compilation when `compile`, channels-last blocks and folded upsampling with it, the fused
        GEGLU always; on anything but CUDA nothing changes. The changes belong to the networks (done once per
        built model: a batch worker keeps them, compiled graphs included); the process-wide backend flags it
        also sets are the caller's to set again for every later run (`acceleration.configure_cuda`).
        """
        return accelerate(
            device,
            self.hot_networks(),
            compile=compile,
            channels_last=True,  # with compile only: NHWC from block to block (docs/PERF.md, orbit)
            subpixel_upsampling=True,  # with compile only: upsampling + 3×3 conv as one 2×2 conv
            fused_geglu=True,  # compiled or not: each GEGLU as one GEMM (a warp-specialized Gluon kernel on Hopper)
        )

    def shapes(self) -> dict[str, Shape]:
        """Our prefixed parameter keys ("unet.…", "vae.…", "clip.…") → shapes."""
        return {
            f"{name}.{k}": tuple(v.shape) for name in COMPONENTS for k, v in self.component(name).state_dict().items()
        }


@dataclass
class LoadedSV3D:
    """A loaded checkpoint: the models and the account of every key."""

    models: SV3DModels
    report: ConversionReport
    path: Path


def build_models(config: SV3DConfig, variant: Variant, device: str | torch.device = "cpu") -> SV3DModels:
    """Construct the three networks with random weights (or on "meta" for shape-only work).

    Args:
        config: sizes (`SV3DConfig.full()` or `.tiny()`).
        variant: "sv3d_u" or "sv3d_p" (the UNet's vector width).
        device: where to allocate; "meta" allocates nothing.
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = build_unet(config, variant, device)
    with torch.device(device):
        vae = AutoencoderKL(**config.vae.diffusers_kwargs())
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**config.clip.transformers_kwargs()))
    for m in (vae, clip):
        m.to(device).eval().requires_grad_(False)
    return SV3DModels(unet=unet, vae=vae, image_encoder=clip, config=config, variant=variant)


def build_unet(config: SV3DConfig, variant: Variant, device: str | torch.device = "cpu") -> SV3DUNet:
    """SV3D's UNet with random weights, frozen, with the attention the orbit stage runs (see `build_models`)."""
    with torch.device(device):
        unet = SV3DUNet(**config.unet.diffusers_kwargs(variant, config.num_frames, config.latent_size))
    # `to(device)`: diffusers' AlphaBlender builds its mix factors with the legacy `torch.Tensor(...)`,
    # which ignores the device context above and lands on the CPU
    unet.to(device).eval().requires_grad_(False)
    # one-token cross-attention as a value broadcast, short temporal attention fused when compiled
    use_shortcut_attention(unet)
    return unet


class CheckpointReader:
    """Uniform, lazy access to a safetensors or `.ckpt` checkpoint: shapes, metadata, one tensor at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(
                f"Checkpoint {self.path} does not exist.", hint="Fetch it with `a3d weights fetch sv3d_p` (or sv3d_u)."
            )
        self._stack = contextlib.ExitStack()
        self.metadata: dict[str, str] = {}
        try:
            if self.path.suffix == ".safetensors":
                from safetensors import safe_open

                self._st = self._stack.enter_context(safe_open(str(self.path), framework="pt", device="cpu"))
                self.metadata = dict(self._st.metadata() or {})
                self.shapes: dict[str, Shape] = {k: tuple(self._st.get_slice(k).get_shape()) for k in self._st.keys()}
                self._sd: dict[str, Tensor] | None = None
            elif self.path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
                from a3d_cli.weights.safe_load import load_pickled_weights

                obj = load_pickled_weights(self.path)  # weights_only=True; legacy files without mmap
                sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
                if not isinstance(sd, dict):
                    raise CheckpointError(f"{self.path} holds no state dict.")
                self._sd = {k: v for k, v in sd.items() if isinstance(v, Tensor)}
                if isinstance(obj, dict) and isinstance(obj.get(CONFIG_METADATA_KEY), str):
                    self.metadata = {CONFIG_METADATA_KEY: obj[CONFIG_METADATA_KEY]}
                self.shapes = {k: tuple(v.shape) for k, v in self._sd.items()}
            else:
                raise CheckpointError(
                    f"{self.path} is not a checkpoint a3d reads (expected .safetensors or .ckpt).",
                    hint="Pass Stability's sv3d_p.safetensors or sv3d_u.safetensors.",
                )
        except CheckpointError:
            self._stack.close()
            raise
        except Exception as exc:  # safetensors / pickle errors on a damaged or foreign file
            self._stack.close()
            from a3d_cli.weights.safe_load import is_refused_pickle, refused_pickle_error

            if is_refused_pickle(exc):
                raise refused_pickle_error(self.path) from exc
            raise CheckpointError(
                f"Cannot read checkpoint {self.path} ({type(exc).__name__}: {exc}).",
                hint="The file may be truncated; delete it and fetch it again (a3d weights fetch sv3d_p).",
            ) from exc

    def get(self, key: str) -> Tensor:
        return self._sd[key] if self._sd is not None else self._st.get_tensor(key)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def config_from_metadata(metadata: dict[str, str]) -> SV3DConfig:
    """The config a checkpoint declares, or the official full size when it declares none."""
    text = metadata.get(CONFIG_METADATA_KEY)
    if text is None:
        return SV3DConfig.full()
    try:
        return SV3DConfig.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"The checkpoint's {CONFIG_METADATA_KEY} metadata is not a valid config ({exc})."
        ) from exc


def _materialize_buffers(models: SV3DModels, device: torch.device) -> None:
    """Recreate the non-persistent buffers a meta-built model still lacks (they are not in checkpoints)."""
    for name in COMPONENTS:
        module = models.component(name)
        for full, buf in list(module.named_buffers()):
            if not buf.is_meta:
                continue
            owner_name, _, attr = full.rpartition(".")
            owner = module.get_submodule(owner_name)
            if attr == "position_ids":  # CLIP embeddings: 0 … num_positions-1
                owner.register_buffer(attr, torch.arange(buf.shape[-1], device=device).expand(1, -1), persistent=False)
            else:
                raise RuntimeError(f"{name}.{full} is a non-persistent buffer a3d does not know how to rebuild")


def check_variant(path: Path, variant: Variant, expect: Variant | None) -> None:
    """Refuse a checkpoint of the other variant than the one asked for (None: any).

    Raises:
        CheckpointError: `variant` (what `path` holds) is not `expect`.
    """
    if expect is not None and variant != expect:
        raise CheckpointError(
            f"{path} is an {variant} checkpoint, but {expect} was asked for.",
            hint=f"Pass --model {variant}, or give the {expect} file (a3d weights fetch {expect}).",
        )


def load_sv3d(
    path: Path,
    device: str | torch.device = "cpu",
    unet_dtype: torch.dtype = torch.float32,
    clip_dtype: torch.dtype | None = None,
    vae_dtype: torch.dtype = torch.float32,
    expect: Variant | None = None,
) -> LoadedSV3D:
    """Load an official SV3D single file (or a test checkpoint in the same layout).

    Args:
        path: `sv3d_u.safetensors` / `sv3d_p.safetensors` (or `.ckpt`, read with weights_only=True).
        device: where the weights go.
        unet_dtype / clip_dtype / vae_dtype: storage dtypes (clip defaults to the UNet's).
        expect: the variant the caller asked for; a different one raises.

    Raises:
        CheckpointError: not SV3D, the other variant than `expect`, or keys missing/unexpected/mis-shaped.
        InputError: the file does not exist.
    """
    path = Path(path)
    device = torch.device(device)
    clip_dtype = clip_dtype or unet_dtype
    with CheckpointReader(path) as reader:
        variant = detect_variant(reader.shapes, source=str(path))
        check_variant(path, variant, expect)
        config = config_from_metadata(reader.metadata)
        models = build_models(config, variant, device="meta")
        our_shapes = models.shapes()
        rules = build_rules(our_shapes, config)
        report = plan_conversion(reader.shapes, rules, our_shapes, variant)
        if not report.ok:
            raise CheckpointError(
                f"{path} does not match the SV3D model: {report.summary()}.",
                hint=f"The file may be damaged or of another model; fetch it again (a3d weights fetch {variant}).",
            )
        dtypes = {"unet": unet_dtype, "vae": vae_dtype, "clip": clip_dtype}
        state: dict[str, dict[str, Tensor]] = {name: {} for name in COMPONENTS}
        for official, rule in rules.items():
            for our_key, tensor in zip(rule.ours, to_ours(rule, reader.get(official)), strict=True):
                comp, _, key = our_key.partition(".")
                state[comp][key] = tensor.to(device=device, dtype=dtypes[comp], copy=True)  # own, aligned memory
    for name in COMPONENTS:
        models.component(name).load_state_dict(state.pop(name), strict=True, assign=True)
    _materialize_buffers(models, device)
    return LoadedSV3D(models=models, report=report, path=path)


def official_state_dict(models: SV3DModels, include_unused: bool = True) -> dict[str, Tensor]:
    """Our weights under the official sgm key names (the inverse of loading).

    Args:
        include_unused: also write stand-ins for the known leftovers (text-side CLIP parameters, the
            conditioner's decoder), so the result has the official file's full key set.
    """
    params = {f"{name}.{k}": v.detach() for name in COMPONENTS for k, v in models.component(name).state_dict().items()}
    rules = build_rules({k: tuple(v.shape) for k, v in params.items()}, models.config)
    out = {official: to_official(rule, [params[k] for k in rule.ours]).contiguous() for official, rule in rules.items()}
    if include_unused:
        out.update(_leftover_standins(out, models.config))
    return out


def _leftover_standins(official: dict[str, Tensor], config: SV3DConfig) -> Iterator[tuple[str, Tensor]]:
    """Tensors in the places of the official leftovers: text-side CLIP params and the conditioner decoder."""
    from a3d_cli.models.sv3d.convert import CLIP_MODEL, COND_AE, FIRST_STAGE_DECODER

    width = config.clip.projection_dim
    yield CLIP_MODEL + "positional_embedding", torch.zeros(77, width)
    yield CLIP_MODEL + "token_embedding.weight", torch.zeros(49408 if width >= 1024 else 64, width)
    yield CLIP_MODEL + "ln_final.weight", torch.ones(width)
    yield CLIP_MODEL + "ln_final.bias", torch.zeros(width)
    yield CLIP_MODEL + "text_projection", torch.eye(width)
    yield CLIP_MODEL + "logit_scale", torch.tensor(4.6052)
    for key, value in list(official.items()):
        if key.startswith(FIRST_STAGE_DECODER):
            yield COND_AE + "decoder." + key[len(FIRST_STAGE_DECODER) :], value.clone()
    c = config.vae.latent_channels
    yield COND_AE + "post_quant_conv.weight", torch.eye(c).reshape(c, c, 1, 1)
    yield COND_AE + "post_quant_conv.bias", torch.zeros(c)


def save_official_checkpoint(models: SV3DModels, path: Path, write_config: bool = True) -> None:
    """Write `models` as a single safetensors file in the official SV3D key layout.

    Args:
        write_config: store `models.config` in the metadata, so that non-official sizes (tiny) load back.
    """
    from safetensors.torch import save_file

    from a3d_cli.io.atomic import atomic_path

    sd = official_state_dict(models)
    metadata = {CONFIG_METADATA_KEY: models.config.to_json()} if write_config else None
    with atomic_path(Path(path)) as tmp:
        save_file(sd, str(tmp), metadata=metadata)


__all__ = [
    "CheckpointReader",
    "LoadedSV3D",
    "SV3DModels",
    "build_models",
    "build_unet",
    "check_variant",
    "config_from_metadata",
    "load_sv3d",
    "official_state_dict",
    "save_official_checkpoint",
    "unused_reason",
]
