"""Everything MV-VDM sampling needs, loaded from the official files or built at `tiny` size for tests.

Official layout (registry names of `a3d_cli.weights`):

* ``mvdream_sd15`` — folder ``yanqinJiang/mvdream-sd1.5-diffusers`` with ``unet/``, ``vae/``,
  ``text_encoder/`` (CLIP ViT-L/14 text) and ``tokenizer/``;
* ``ip_adapter_sd15`` — file ``h94/IP-Adapter/models/ip-adapter_sd15.bin``;
* ``ip_adapter_image_encoder`` — folder ``h94/IP-Adapter/models/image_encoder`` (CLIP ViT-H/14 vision);
* ``animate3d_motion_modules`` — file ``yanqinJiang/animate3d/animate3d_motion_modules.ckpt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from a3d_cli.errors import CheckpointError
from a3d_cli.models.mvvdm.checkpoint import LoadReport, load_mvvdm_unet
from a3d_cli.models.mvvdm.config import MVVDMConfig
from a3d_cli.models.mvvdm.ddim import make_ddim_scheduler
from a3d_cli.models.mvvdm.shape import RESOLUTION
from a3d_cli.models.mvvdm.unet import MVVDMUNet

if TYPE_CHECKING:
    from a3d_cli.models.speed.acceleration import AccelerationReport

Tokenize = Callable[[list[str]], Tensor]  # prompts -> input ids [B, L]


class ClipTokenize:
    """A `CLIPTokenizer` as SD uses it: pad/truncate to the model's 77 tokens."""

    def __init__(self, tokenizer) -> None:  # transformers.CLIPTokenizer
        self.tokenizer = tokenizer

    def __call__(self, prompts: list[str]) -> Tensor:
        tok = self.tokenizer
        return tok(
            prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids


class ByteTokenize:
    """Test tokenizer for the tiny text encoder: UTF-8 bytes, BOS = 256, EOS/pad = 257."""

    def __init__(self, length: int = 16) -> None:
        self.length = length

    def __call__(self, prompts: list[str]) -> Tensor:
        rows = []
        for p in prompts:
            ids = [256, *p.encode("utf-8")[: self.length - 2], 257]
            rows.append(ids + [257] * (self.length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)


@dataclass
class MVVDMComponents:
    """The networks and scheduler of MV-VDM sampling.

    Attributes:
        unet: the MV-VDM noise predictor.
        vae: SD `AutoencoderKL` (latents = scaling_factor · sample of the encoder posterior).
        text_encoder: CLIP text model; its last hidden state is the cross-attention context.
        tokenize: prompts → input ids.
        image_encoder: CLIP vision model with projection; `image_embeds` feed the IP-Adapter.
        scheduler: DDIM (`a3d_cli.models.mvvdm.ddim`).
        report: which file supplied which UNet keys (None for random weights).
    """

    unet: MVVDMUNet
    vae: object  # diffusers.AutoencoderKL
    text_encoder: object  # transformers.CLIPTextModel
    tokenize: Tokenize
    image_encoder: object  # transformers.CLIPVisionModelWithProjection
    scheduler: object  # diffusers.DDIMScheduler
    report: LoadReport | None = None

    @property
    def device(self) -> torch.device:
        return self.unet.conv_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.conv_in.weight.dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def accelerate(
        self,
        device: torch.device | str,
        compile: bool = False,  # noqa: A002 - the option's name
        fused_geglu: bool = True,
    ) -> AccelerationReport:
        """Apply the mvvideo stage's speed settings to the UNet, in place (`acceleration.accelerate`).

        Regional compilation when `compile`; every GEGLU of the spatial transformers and the motion modules
        computed as one GEMM when `fused_geglu` (`a3d_cli.models.speed.geglu`: the Gluon kernel on Hopper for
        bf16/fp16, the reference arithmetic elsewhere), compiled or not, as the orbit stage does. On anything
        but CUDA nothing changes. The changes belong to the UNet (a batch worker's cached model keeps them);
        `report.handle.remove()` undoes them.
        """
        from a3d_cli.models.speed.acceleration import accelerate

        return accelerate(device, [self.unet], compile=compile, fused_geglu=fused_geglu)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> MVVDMComponents:
        """Move every network to `device` and cast it to `dtype`.

        The cast is torch's own `Module.to`: diffusers' override warns about modules to keep in float32 even
        when a model lists none (diffusers 0.42), which only alarms users; these networks have none.
        """
        for m in (self.unet, self.vae, self.text_encoder, self.image_encoder):
            m.to(device=device)
            if dtype is not None and next(m.parameters()).dtype != dtype:
                nn.Module.to(m, dtype=dtype)
            m.eval()
        return self


def load_components(
    mvdream_dir: Path,
    ip_adapter_file: Path,
    image_encoder_dir: Path,
    motion_modules_file: Path,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MVVDMComponents:
    """Load the released MV-VDM from its official files (see the module docstring for the layout).

    Raises:
        CheckpointError: a file that does not match or cannot be read.
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

    from a3d_cli.weights.safe_load import is_refused_pickle, read_errors, refused_pickle_error

    mvdream_dir = Path(mvdream_dir)
    unet, report = load_mvvdm_unet(
        mvdream_dir / "unet", ip_adapter_file, motion_modules_file, device=device, dtype=dtype
    )
    try:
        vae = AutoencoderKL.from_pretrained(mvdream_dir / "vae", torch_dtype=dtype)
        text_encoder = CLIPTextModel.from_pretrained(mvdream_dir / "text_encoder", torch_dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(mvdream_dir / "tokenizer")
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(image_encoder_dir, torch_dtype=dtype)
    except read_errors() as exc:  # incl. transformers' UnpicklingError and a damaged safetensors file
        if is_refused_pickle(exc):
            raise refused_pickle_error(f"a file under {mvdream_dir} or {image_encoder_dir}") from exc
        raise CheckpointError(
            f"Could not load an MV-VDM component ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).",
            hint="Re-fetch the weights with `a3d weights fetch`.",
        ) from exc
    if image_encoder.config.projection_dim != unet.config.image_embed_dim:
        raise CheckpointError(
            f"The image encoder at {image_encoder_dir} makes {image_encoder.config.projection_dim}-d embeddings; "
            f"the IP-Adapter needs {unet.config.image_embed_dim}.",
            hint="Use h94/IP-Adapter models/image_encoder (`a3d weights fetch ip_adapter_image_encoder`).",
        )
    comp = MVVDMComponents(
        unet, vae, text_encoder, ClipTokenize(tokenizer), image_encoder, make_ddim_scheduler(), report
    )
    return comp.to(device, dtype)


def tiny_components(seed: int = 0, config: MVVDMConfig | None = None) -> MVVDMComponents:
    """Random MV-VDM at toy size, same classes and code paths (CPU tests only).

    The tiny VAE downsamples 32× (vs 8×), so a 256² video has an 8² latent and the whole stage runs in
    seconds on a CPU.
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = config or MVVDMConfig.tiny()
    torch.manual_seed(seed)
    unet = MVVDMUNet(cfg)
    with torch.no_grad():  # make the adapters non-trivial so tests exercise them
        for name, p in unet.named_parameters():
            if "to_out_i2v" in name:
                p.normal_(0, 0.02)
    torch.manual_seed(seed + 1)
    levels = 6
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=cfg.in_channels,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=(4,) * levels,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=RESOLUTION,
    )
    torch.manual_seed(seed + 2)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=258,
            hidden_size=cfg.cross_attention_dim,
            intermediate_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=256,
            eos_token_id=257,
            pad_token_id=257,
        )
    )
    torch.manual_seed(seed + 3)
    image = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=cfg.image_embed_dim,
        )
    )
    comp = MVVDMComponents(unet, vae, text, ByteTokenize(16), image, make_ddim_scheduler())
    return comp.to("cpu", torch.float32)
