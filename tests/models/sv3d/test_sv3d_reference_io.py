"""SV3D's conditioning encode and frame decode against sgm's recipes, on the fox render as a3d prepares it.

The recipes are those of Stability's `simple_video_sample.py` with `sv3d_p.yaml` (written out from the
upstream code in /work/shared/reference/sv3d.md §2): the clean image in [-1, 1] goes to
`FrozenOpenCLIPImageEmbedder` (kornia's antialiased bicubic resize, `(x + 1) / 2`, OpenAI CLIP's mean and
std); `image + cond_aug·randn` goes to `AutoencoderKLModeOnly` (encoder → quant_conv → the posterior's
mean, unscaled); frames are `decoder(z / scale_factor)` with no post-quant conv, then `clamp((x + 1) / 2)`.
The networks are tiny and random: this pins the inputs and the calls, not the weights.
"""

from __future__ import annotations

import torch
from helpers import REPO

from a3d_cli.io.preprocess import prepare_object_image
from a3d_cli.models.sv3d.pipeline import SV3DPipeline
from a3d_cli.models.sv3d.testing import tiny_models

FOX = REPO / "examples" / "assets" / "fox_front.png"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # sgm FrozenOpenCLIPImageEmbedder's buffers
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@torch.no_grad()
def test_conditioning_of_the_prepared_fox_equals_sgms_embedders() -> None:
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
        _resize_with_antialiasing,  # diffusers' port of kornia's antialiased resize
    )

    models = tiny_models("sv3d_p", seed=0)
    size = models.config.image_size
    image = prepare_object_image(FOX, size).image.permute(2, 0, 1)  # [3, S, S], as `a3d orbit` prepares it
    cond = SV3DPipeline(models).encode_image(image, 1e-5, torch.Generator().manual_seed(3))

    x = image[None] * 2 - 1  # the reference's ToTensor() * 2 − 1
    side = models.config.clip.image_size
    pixels = (_resize_with_antialiasing(x, (side, side)) + 1) / 2
    pixels = (pixels - torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    embeds = models.image_encoder(pixel_values=pixels).image_embeds  # [1, D], of the clean image
    torch.testing.assert_close(cond.image_embeds, embeds[:, None], rtol=1e-5, atol=1e-6)

    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))  # a3d's stream, the reference's form
    moments = models.vae.quant_conv(models.vae.encoder(x + 1e-5 * noise))  # [1, 2C, h, w]
    mean = moments.chunk(2, dim=1)[0]  # the mode: no sample, no scale factor
    torch.testing.assert_close(cond.image_latent, mean, rtol=0, atol=0)


@torch.no_grad()
def test_frames_are_the_first_stage_decoder_without_a_post_quant_conv() -> None:
    models = tiny_models("sv3d_p", seed=0)
    f, c, s = 5, models.config.vae.latent_channels, models.config.latent_size
    z = torch.randn(f, c, s, s, generator=torch.Generator().manual_seed(1))
    frames = SV3DPipeline(models).decode(z, decode_chunk=f)
    ref = ((models.vae.decoder(z / 0.18215) + 1.0) / 2.0).clamp(0, 1)
    torch.testing.assert_close(frames, ref, rtol=0, atol=0)


class RecordingUNet(torch.nn.Module):
    """The tiny UNet, recording what each call is given."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, sample, t, embeds, vec, return_dict: bool = False):  # noqa: ANN001, ANN201
        self.calls.append((sample.clone(), embeds.clone(), vec.clone()))
        return self.unet(sample, t, embeds, vec, return_dict=return_dict)


@torch.no_grad()
def test_the_unconditional_row_zeroes_both_image_conditions_and_keeps_the_cameras() -> None:
    """sgm's `force_uc_zero_embeddings=["cond_frames", "cond_frames_without_noise"]`, repeated over frames."""
    from a3d_cli.models.guidance import triangular_cfg_scales
    from a3d_cli.models.sv3d.cameras import static_orbit

    models = tiny_models("sv3d_p", seed=0)
    models.unet = RecordingUNet(models.unet)  # type: ignore[assignment]
    pipe = SV3DPipeline(models)
    image = prepare_object_image(FOX, models.config.image_size).image.permute(2, 0, 1)
    cond = pipe.encode_image(image, 1e-5, torch.Generator().manual_seed(3))
    vec = pipe.camera_vector(static_orbit(), 1e-5)
    pipe.denoise(cond, vec, triangular_cfg_scales(21), 1, torch.Generator().manual_seed(0))
    (sample, embeds, vecs), = models.unet.calls
    c = models.config.vae.latent_channels
    assert sample.shape[:3] == (2, 21, 2 * c)
    torch.testing.assert_close(sample[0, :, :c], sample[1, :, :c], rtol=0, atol=0)  # the same noisy latent
    assert torch.all(sample[0, :, c:] == 0) and torch.all(embeds[0] == 0)
    torch.testing.assert_close(sample[1, :, c:], cond.image_latent.expand(21, -1, -1, -1), rtol=0, atol=0)
    torch.testing.assert_close(embeds[1], cond.image_embeds[0], rtol=0, atol=0)
    torch.testing.assert_close(vecs[0], vecs[1], rtol=0, atol=0)
    torch.testing.assert_close(vecs[1], vec[0], rtol=0, atol=0)
