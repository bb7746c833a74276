"""Generate a 4-view × F-frame video of an object from its 4 condition renders and a prompt (MV-VDM).

Recipe (Animate3D `AnimateDiffMVI2VPipeline` with `configs/inference/inference.yaml`), in phases:

1. check inputs;
2. encode the prompt and the negative prompt (CLIP text, last hidden state);
3. encode each view with the CLIP image encoder (IP-Adapter input); the unconditional branch gets zeros;
4. VAE-encode the condition views: frame 0 of every view, kept clean;
5. MVDream camera inputs from the views' cameras;
6. sample (DDIM, CFG, FreeInit: `sampling.py`);
7. VAE-decode all F frames (frame 0 too, so colours match within the video).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from a3d_cli.models.mvvdm.cameras import mvdream_camera_embedding_input
from a3d_cli.models.mvvdm.components import MVVDMComponents
from a3d_cli.models.mvvdm.sampling import SamplingConfig, StepCallback, graphed_guide, sample_latents

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class MVVideoOutput:
    """A generated multi-view video.

    Attributes:
        frames: [V, F, 3, H, W] float in [0, 1], on the CPU.
        latents: [V, F, C, h, w] float32 final latents.
        graph_replays: UNet calls served by the CUDA-graph replay (0 without `cuda_graph`).
    """

    frames: Tensor
    latents: Tensor
    graph_replays: int = 0


@torch.no_grad()
def encode_prompts(comp: MVVDMComponents, prompts: list[str]) -> Tensor:
    """CLIP text context. Returns [B, L, D] in the UNet dtype."""
    ids = comp.tokenize(prompts).to(comp.device)  # [B, L]
    return comp.text_encoder(ids).last_hidden_state.to(comp.dtype)


@torch.no_grad()
def encode_images_clip(comp: MVVDMComponents, images: Tensor) -> Tensor:
    """IP-Adapter input: CLIP image embeddings of [V, 3, H, W] images in [0, 1].

    Preprocessing follows `CLIPImageProcessor`'s defaults: bicubic resize to the encoder's size (the views
    are square, so the centre crop is a no-op), then CLIP mean/std normalisation.

    Returns:
        [V, E] in the UNet dtype.
    """
    enc = comp.image_encoder
    size = enc.config.image_size
    x = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    x = ((x.clamp(0, 1) - mean) / std).to(device=comp.device, dtype=enc.dtype)
    return enc(pixel_values=x).image_embeds.to(comp.dtype)  # [V, E]


@torch.no_grad()
def encode_latents(comp: MVVDMComponents, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """VAE latents of [N, 3, H, W] images in [0, 1]: a posterior sample × scaling factor. Returns [N, C, h, w] fp32."""
    vae = comp.vae
    x = images.to(device=comp.device, dtype=vae.dtype) * 2 - 1
    dist = vae.encode(x).latent_dist
    return (dist.sample(generator=generator) * vae.config.scaling_factor).float()


@torch.no_grad()
def decode_latents(comp: MVVDMComponents, latents: Tensor, chunk: int = 16) -> Tensor:
    """Images of [N, C, h, w] latents, `chunk` at a time. Returns [N, 3, H, W] float in [0, 1] on the CPU."""
    vae = comp.vae
    out = []
    for z in latents.split(chunk):
        img = vae.decode((z / vae.config.scaling_factor).to(device=comp.device, dtype=vae.dtype)).sample
        out.append(((img.float() + 1) / 2).clamp(0, 1).cpu())
    return torch.cat(out)


def check_inputs(comp: MVVDMComponents, cond_images: Tensor, c2w: Tensor, prompt: str) -> None:
    """Shapes and sizes the model can take (ValueError naming the input otherwise)."""
    v = comp.unet.config.num_views
    if cond_images.ndim != 4 or cond_images.shape[:2] != (v, 3):
        raise ValueError(f"cond_images must be [{v}, 3, H, W], got {list(cond_images.shape)}")
    if c2w.shape != (v, 4, 4):
        raise ValueError(f"c2w must be [{v}, 4, 4], got {list(c2w.shape)}")
    multiple = comp.vae_scale_factor * 2 ** (comp.unet.config.num_levels - 1)
    h, w = cond_images.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"image size {h}×{w} must be a multiple of {multiple}")
    if not isinstance(prompt, str):
        raise ValueError("prompt must be a string")


@torch.no_grad()
def generate_mvvideo(
    comp: MVVDMComponents,
    cond_images: Tensor,  # [V, 3, H, W] in [0, 1], the object on grey 0.5
    c2w: Tensor,  # [V, 4, 4] a3d OpenCV camera-to-world of the views
    prompt: str,
    negative_prompt: str = "",
    config: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    decode_chunk_size: int = 16,
    cuda_graph: bool = False,
) -> MVVideoOutput:
    """Sample a V-view video whose frame 0 is the given views.

    Args:
        comp: loaded components (`load_components` or `tiny_components`).
        cond_images: the condition renders; the model was trained on grey (0.5) backgrounds.
        c2w: their cameras (converted to MVDream's convention inside).
        prompt: the motion to generate; negative_prompt: the unconditional text (Animate3D: "").
        config: steps, guidance, frames, FreeInit.
        generator: CPU generator for every random draw.
        callback: called after every DDIM step with (pass, step, latents).
        decode_chunk_size: frames per VAE decode call (memory knob).
        cuda_graph: on CUDA, record the guided UNet call (CFG batch + guidance blend) once and replay it
            for every later step (`sampling.graphed_guide`): the same kernels without the launch gaps.

    Returns:
        MVVideoOutput with frames [V, F, 3, H, W].

    Examples:
        >>> comp = tiny_components()                                   # doctest: +SKIP
        >>> out = generate_mvvideo(comp, views, mvvdm_cameras().c2w, "a dog wags its tail")  # doctest: +SKIP
    """
    config = config or SamplingConfig()
    # 1. check inputs
    check_inputs(comp, cond_images, c2w, prompt)
    unet, device = comp.unet, comp.device
    # 2. text: row 0 unconditional, row 1 conditional
    text = encode_prompts(comp, [negative_prompt, prompt])  # [2, L, D]
    # 3. IP-Adapter image embeddings; the unconditional branch gets zeros
    img = encode_images_clip(comp, cond_images)  # [V, E]
    img_pair = torch.stack([torch.zeros_like(img), img])  # [2, V, E]
    # 4. condition latents (frame 0)
    cond = encode_latents(comp, cond_images, generator)  # [V, C, h, w]
    # 5. cameras
    cams = mvdream_camera_embedding_input(c2w).to(device=device, dtype=comp.dtype)  # [V, 16]

    def eps_fn(x: Tensor, t: Tensor) -> Tensor:
        rows = slice(0, 2) if x.shape[0] == 2 else slice(1, 2)
        return unet(x.to(comp.dtype), t, text[rows], img_pair[rows], cams).sample

    # 6. sample
    guide = graphed_guide(eps_fn, config.guidance_scale) if cuda_graph and cond.device.type == "cuda" else None
    latents = sample_latents(eps_fn, cond, comp.scheduler, config, generator=generator, callback=callback, guide=guide)
    replays = 0 if guide is None else guide.replays
    del guide  # frees the recording's memory pool before decoding
    # 7. decode
    v, f = latents.shape[:2]
    frames = decode_latents(comp, latents.reshape(v * f, *latents.shape[2:]), decode_chunk_size)
    return MVVideoOutput(frames=frames.reshape(v, f, *frames.shape[1:]), latents=latents, graph_replays=replays)
