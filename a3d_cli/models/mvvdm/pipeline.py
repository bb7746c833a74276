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
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from a3d_cli.models.mvvdm.cameras import mvdream_camera_embedding_input
from a3d_cli.models.mvvdm.components import MVVDMComponents
from a3d_cli.models.mvvdm.sampling import SamplingConfig, StepCallback, graphed_guide, sample_latents
from a3d_cli.models.precision import check_finite


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


def clip_image_processor(size: int = 224):  # noqa: ANN201 - a transformers image processor
    """transformers' PIL-based CLIP preprocessing at `size`: what Animate3D's `CLIPImageProcessor()` does.

    Shortest side resized to `size` (PIL bicubic), centre crop `size`², ×1/255, CLIP mean/std. transformers
    5 names the PIL implementation `CLIPImageProcessorPil` (its plain `CLIPImageProcessor` resizes with
    torchvision when that is installed, which rounds differently); transformers 4's `CLIPImageProcessor` is
    the PIL one, the one Animate3D ran.
    """
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4.x
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def clip_pixel_values(images: Tensor, size: int = 224) -> Tensor:
    """The CLIP image encoder's input for [V, 3, H, W] images in [0, 1], made as the reference makes it.

    The images go through 8-bit PIL images (exact for images read from PNG files, which is what
    Animate3D's `load_image` hands the processor) and `clip_image_processor`.

    Returns:
        [V, 3, size, size] float32 on the CPU.
    """
    from PIL import Image

    from a3d_cli.io.images import to_uint8

    pil = [Image.fromarray(to_uint8(img.permute(1, 2, 0))) for img in images.detach().cpu()]  # RGB, 8-bit
    out = clip_image_processor(size)(images=pil, return_tensors="pt").pixel_values
    return torch.as_tensor(out, dtype=torch.float32)


@torch.no_grad()
def encode_images_clip(comp: MVVDMComponents, images: Tensor) -> Tensor:
    """IP-Adapter input: CLIP image embeddings of [V, 3, H, W] images in [0, 1].

    Preprocessing is `clip_pixel_values` (transformers' PIL CLIP processor, as the reference), at the
    encoder's input size.

    Returns:
        [V, E] in the UNet dtype.
    """
    enc = comp.image_encoder
    x = clip_pixel_values(images, enc.config.image_size).to(device=comp.device, dtype=enc.dtype)
    return enc(pixel_values=x).image_embeds.to(comp.dtype)  # [V, E]


def resize_for_vae(images: Tensor, size: int) -> Tensor:
    """[N, 3, H, W] square images → [N, 3, size, size] as the reference resizes its condition views.

    Animate3D's `encode_latents` applies torchvision's `Resize(size)` to float tensors, which in the
    torchvision it pins (0.14) is bilinear without antialiasing; this is that call through
    `F.interpolate`. Images already `size`² come back unchanged.
    """
    if images.shape[-2:] == (size, size):
        return images
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"condition views must be square, got {list(images.shape[-2:])}")
    return F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=False)


@torch.no_grad()
def encode_latents(comp: MVVDMComponents, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """VAE latents of [N, 3, H, W] images in [0, 1]: a posterior sample × scaling factor. Returns [N, C, h, w] fp32.

    As the reference: images mapped to [-1, 1], `latent_dist.sample()` (here from `generator`), × the VAE's
    scaling factor.
    """
    vae = comp.vae
    x = images.to(device=comp.device, dtype=vae.dtype) * 2 - 1
    dist = vae.encode(x).latent_dist
    return (dist.sample(generator=generator) * vae.config.scaling_factor).float()


@torch.no_grad()
def decode_latents(comp: MVVDMComponents, latents: Tensor, chunk: int = 16) -> Tensor:
    """Images of [N, C, h, w] latents, `chunk` at a time. Returns [N, 3, H, W] float in [0, 1] on the CPU.

    As the reference: `vae.decode(latents / scaling_factor)`, then diffusers' `VaeImageProcessor`
    denormalisation (x/2 + 0.5, clamped). The reference decodes one frame at a time (VAE slicing);
    `chunk` changes only memory and, by rounding, the last bits.
    """
    from diffusers.image_processor import VaeImageProcessor

    vae = comp.vae
    out = []
    for z in latents.split(chunk):
        img = vae.decode((z / vae.config.scaling_factor).to(device=comp.device, dtype=vae.dtype)).sample
        out.append(VaeImageProcessor.denormalize(img.float()).cpu())
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
    cond_images: Tensor,  # [V, 3, H, W] in [0, 1], the object on grey 0.5, at the video's size
    c2w: Tensor,  # [V, 4, 4] a3d OpenCV camera-to-world of the views
    prompt: str,
    negative_prompt: str = "",
    config: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    decode_chunk_size: int = 16,
    clip_images: Tensor | None = None,  # [V, 3, H', W'] in [0, 1]
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
        clip_images: what the CLIP image encoder sees, when it is not `cond_images` itself: the reference
            hands the processor the views at the size they were rendered (512² there) and VAE-encodes
            them resized to the video's size (`resize_for_vae`).
        cuda_graph: on CUDA, record the guided UNet call (CFG batch + guidance blend) once and replay it
            for every later step (`sampling.graphed_guide`): the same kernels without the launch gaps.

    Returns:
        MVVideoOutput with frames [V, F, 3, H, W].

    Raises:
        PrecisionError: the latents or frames hold NaN or infinity (an fp16 overflow, usually).

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
    img = encode_images_clip(comp, cond_images if clip_images is None else clip_images)  # [V, E]
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
    check_finite(latents, "MV-VDM latents", comp.dtype)  # one check: NaN/inf from any step propagates here
    # 7. decode
    v, f = latents.shape[:2]
    frames = decode_latents(comp, latents.reshape(v * f, *latents.shape[2:]), decode_chunk_size)
    check_finite(frames, "MV-VDM decoded frames", comp.vae.dtype)
    return MVVideoOutput(frames=frames.reshape(v, f, *frames.shape[1:]), latents=latents, graph_replays=replays)
