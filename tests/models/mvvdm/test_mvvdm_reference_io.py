"""MV-VDM's inputs and outputs against the libraries' own calls, made the way Animate3D makes them.

Reference path (Animate3D `inference.py` / `AnimateDiffMVI2VPipeline`, diffusers 0.28, transformers 4.25):
condition views are PNG files read with `diffusers.utils.load_image` (PIL, RGB); the IP-Adapter input is
`CLIPImageProcessor()` on those PIL images; the text context is `tokenizer(..., padding="max_length",
truncation=True)` → `text_encoder(ids)[0]`; VAE latents are `vae.encode(Normalize(0.5, 0.5)(Resize(256)(x)))
.latent_dist.sample() · scaling_factor`, decoded frames `VaeImageProcessor.postprocess(vae.decode(z / s))`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, photo_like
from PIL import Image

from a3d_cli.io.images import load_png, to_uint8
from a3d_cli.models.mvvdm.components import ClipTokenize, tiny_components
from a3d_cli.models.mvvdm.pipeline import (
    clip_pixel_values,
    decode_latents,
    encode_latents,
    encode_prompts,
    resize_for_vae,
)
from a3d_cli.models.mvvdm.shape import RESOLUTION

FOX = REPO / "examples" / "assets" / "fox_front.png"


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[Path]:
    return [FOX, photo_like(tmp_path_factory.mktemp("img") / "photo.png")]


def test_clip_pixels_equal_the_processor_on_the_files_pil_images(pictures) -> None:
    from diffusers.utils import load_image

    from a3d_cli.models.mvvdm.pipeline import clip_image_processor

    for path in pictures:
        ref = clip_image_processor()(images=[load_image(str(path))], return_tensors="pt").pixel_values
        ours = clip_pixel_values(load_png(path, mode="RGB").permute(2, 0, 1)[None])  # [1, 3, 224, 224]
        assert ours.shape == (1, 3, 224, 224)
        torch.testing.assert_close(ours, torch.as_tensor(ref), rtol=0, atol=0)


def test_processor_is_the_libraries_default_clip_preprocessing() -> None:
    """Our processor at 224 is `CLIPImageProcessor()`'s defaults (what Animate3D constructs), PIL backend."""
    try:
        from transformers import CLIPImageProcessorPil as Default
    except ImportError:  # transformers 4
        from transformers import CLIPImageProcessor as Default

    from a3d_cli.models.mvvdm.pipeline import clip_image_processor

    ours, default = clip_image_processor(224).to_dict(), Default().to_dict()
    for key in ("size", "crop_size", "resample", "image_mean", "image_std", "rescale_factor", "do_center_crop"):
        assert ours[key] == default[key], key


def tiny_clip_tokenizer(max_length: int = 16):  # noqa: ANN201 - a transformers CLIPTokenizer
    """A real `CLIPTokenizer` with a byte-level vocabulary and no merges (every character one token)."""
    from transformers import CLIPTokenizer

    # byte-level BPE's printable stand-ins for the 256 byte values (printable bytes map to themselves)
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    chars = [chr(b) if b in keep else chr(next(extra)) for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


@torch.no_grad()
def test_text_context_equals_the_reference_encode_prompt() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tiny_clip_tokenizer()
    comp = tiny_components(0)
    torch.manual_seed(0)
    comp.text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=comp.unet.config.cross_attention_dim, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )).eval()
    comp.tokenize = ClipTokenize(tok)
    prompts = ["", "a fox wags its tail and keeps wagging it for a long while"]  # the second is truncated
    ours = encode_prompts(comp, prompts)  # [2, L, D], one batch as the sampler does
    for row, prompt in enumerate(prompts):
        ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        ref = comp.text_encoder(ids, attention_mask=None)[0]  # diffusers' encode_prompt, no attention mask
        torch.testing.assert_close(ours[row : row + 1], ref, rtol=1e-5, atol=1e-6)
    assert ids.shape == (1, 16) and ids[0, -1] == tok.eos_token_id  # truncated to the model's length


def reference_vae_input(path: Path, size: int = RESOLUTION) -> torch.Tensor:
    """[1, 3, size, size]: Animate3D's `encode_latents` input for one condition-view file, before the VAE.

    `load_image` (PIL, RGB) → `np.array` → /255 → torchvision 0.14's `Resize(size)` on a float tensor →
    `Normalize(0.5, 0.5)`. Torchvision is not a dependency: its resize is replayed for the two cases these
    tests use, the identity at `size`² and bilinear 2× down (the mean of each 2×2 block, no antialiasing).
    """
    from diffusers.utils import load_image

    x = torch.from_numpy(np.array(load_image(str(path))))[None] / 255  # [1, H, W, 3]
    x = x.permute(0, 3, 1, 2)
    if x.shape[-1] == 2 * size:
        x = x.reshape(1, 3, size, 2, size, 2).mean(dim=(3, 5))
    assert x.shape[-2:] == (size, size), "the replay covers size² and (2·size)² views only"
    return (x - 0.5) / 0.5


def a3d_condition_views(path: Path) -> torch.Tensor:
    """[1, 3, S, S] in [0, 1]: one view file as `a3d mvvideo` reads it (`_read_views`) and resizes it."""
    view = load_png(path, mode="RGB").permute(2, 0, 1).clamp(0, 1)  # [3, S, S]
    return resize_for_vae(torch.stack([view]), RESOLUTION)  # stacked as the stage stacks its 4 views


@pytest.fixture(scope="module")
def square_pictures(tmp_path_factory) -> dict[str, Path]:
    """The fox render (256², RGBA: `load_image` drops its alpha) and a photo-like view at twice MV-VDM's size."""
    return {"fox": FOX, "photo": photo_like(tmp_path_factory.mktemp("img") / "view.png", 2 * RESOLUTION, 2 * RESOLUTION)}


@torch.no_grad()
@pytest.mark.parametrize("source", ["random", "fox", "photo"])
def test_vae_encode_and_decode_equal_the_diffusers_calls(source: str, square_pictures) -> None:
    from diffusers.image_processor import VaeImageProcessor

    comp = tiny_components(0)
    vae = comp.vae
    if source == "random":
        views = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        ref_input, exact = (views - 0.5) / 0.5, True
    else:
        path = square_pictures[source]
        views = a3d_condition_views(path)  # [1, 3, 256, 256]
        ref_input = reference_vae_input(path)
        # at 256² both sides hold the file's 8-bit values / 255; the 2×2 mean and bilinear round apart
        exact = Image.open(path).size == (RESOLUTION, RESOLUTION)
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(views * 2 - 1, ref_input, **tol)  # the VAE's input itself
    # the reference's tensor is channels-last (from HWC arrays); CPU convolutions round by memory layout
    ref_input = ref_input.contiguous()
    ours = encode_latents(comp, views, torch.Generator().manual_seed(5))
    ref = vae.encode(ref_input).latent_dist.sample(torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, ref * vae.config.scaling_factor, **tol)

    z = ours.contiguous()  # as the sampler's latents are (CPU convolutions round by memory layout)
    frames = decode_latents(comp, z, chunk=1)  # [N, 3, H, W] in [0, 1]
    # the reference decodes with VAE slicing: one latent at a time
    decoded = torch.cat([vae.decode(one[None] / vae.config.scaling_factor).sample for one in z])
    proc = VaeImageProcessor()
    torch.testing.assert_close(frames, proc.postprocess(decoded, output_type="pt"), rtol=0, atol=0)
    pils = proc.postprocess(decoded, output_type="pil")  # what the reference writes into its GIF
    for frame, pil in zip(frames, pils, strict=True):
        assert np.array_equal(to_uint8(frame.permute(1, 2, 0)), np.asarray(pil))


def test_condition_views_are_resized_as_torchvision_014_resizes_tensors() -> None:
    """Bilinear, no antialiasing: 512² → 256² is the mean of each 2×2 block; 256² stays as it is."""
    views = torch.rand(4, 3, 512, 512, generator=torch.Generator().manual_seed(2))
    blocks = views.reshape(4, 3, 256, 2, 256, 2).mean(dim=(3, 5))
    torch.testing.assert_close(resize_for_vae(views, 256), blocks, rtol=0, atol=1e-6)
    same = views[..., :256, :256]
    assert resize_for_vae(same, 256) is same
