"""MV-VDM behind the SDS denoiser protocol (`a3d_cli.models.sds.SdsDenoiser`): what `a3d sds` distils from.

Examples:
    >>> den = load_mvvdm_denoiser(None)  # the tiny random MV-VDM  # doctest: +SKIP
    >>> eps_c, eps_u = den.predict_noise(noisy, 100, cond)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from a3d_cli.models.sds import SdsCondition
from a3d_cli.models.speed.attention import use_shortcut_attention
from a3d_cli.models.speed.cuda_graph import GraphedFunction


class MvvdmDenoiser:
    """MV-VDM (`a3d_cli.models.mvvdm`) as an `SdsDenoiser`: frozen, no gradients except through `encode`.

    The conditional and unconditional branches run as one batch of 2 (the reference's layout):
    unconditional = negative prompt + zero IP-Adapter image embeddings; both see the clean frame 0.
    The frame-0 renders are quantised to 8 bits before the CLIP image encoder, as the reference's trip
    through PIL does.

    Args:
        comp: loaded components (`load_components` or `tiny_components`), already on their device/dtype.
    """

    def __init__(self, comp) -> None:  # comp: a3d_cli.models.mvvdm.components.MVVDMComponents
        self.comp = comp
        for module in (comp.unet, comp.vae, comp.text_encoder, comp.image_encoder):
            module.requires_grad_(False)
            module.eval()
        # SDS differentiates through the VAE encoder: its mid-block attention (one 512-wide head, which no
        # flash kernel takes) runs as explicit products, whose backward is far cheaper than the fallback's
        use_shortcut_attention(comp.vae.encoder)
        # on the networks' device, so that reading ᾱ_t in a step copies nothing from the host
        self.alphas_cumprod = comp.scheduler.alphas_cumprod.float().to(comp.device)  # [T]
        self._text: dict[tuple[str, str], Tensor] = {}
        self._prepared: tuple[SdsCondition, Tensor, Tensor] | None = None
        self._graphed: GraphedFunction | None = None
        self.guided_call_bytes: int | None = None
        """On CUDA, an upper bound of the memory the first eager guided UNet call since `use_guided_graph(False)`
        took above what was allocated before it (what a recording of the call keeps in its own pool); None until
        that call ran."""
        self.graph_ran_out_of_memory = False
        """Recording the guided call ran out of GPU memory; the call has run eagerly since."""

    def hot_networks(self) -> list:
        """The networks whose time matters, for `acceleration.accelerate`: the UNet and the VAE encoder, which
        every SDS step runs and differentiates through."""
        return [self.comp.unet, self.comp.vae.encoder]

    def accelerate(
        self,
        device: torch.device | str,
        compile: bool = False,  # noqa: A002 - the option's name
        fused_geglu: bool = True,
        nhwc_encoder: bool = True,
    ):  # noqa: ANN201 - AccelerationReport, imported lazily
        """Apply the sds stage's speed settings to `hot_networks`, in place (`acceleration.accelerate`).

        Regional compilation when `compile`; every GEGLU of the UNet as one GEMM when `fused_geglu` (the
        guidance forward runs without gradients, so the forward-only kernel serves it; the VAE encoder,
        which the gradient flows through, has no GEGLU). Without `compile` and with `nhwc_encoder`, the VAE
        encoder runs NHWC with fused GroupNorm + SiLU kernels (`acceleration.channels_last_eagerly`), forward
        and backward. On anything but CUDA nothing changes; the returned report's `handle.remove()` undoes
        the changes.
        """
        from a3d_cli.models.speed.acceleration import accelerate, channels_last_eagerly
        from a3d_cli.models.speed.group_norm import FusedGroupNorm, FusedGroupNormSiLU
        from a3d_cli.models.speed.handles import SpeedHandle

        report = accelerate(device, self.hot_networks(), compile=compile, fused_geglu=fused_geglu)
        if report.enabled and nhwc_encoder and not compile:
            encoder = self.comp.vae.encoder
            report.handle = SpeedHandle.group("accelerate", [report.handle, channels_last_eagerly(encoder)])
            # counted, not taken from the handle: a batch worker's cached denoiser was switched by an earlier job
            fused = (FusedGroupNorm, FusedGroupNormSiLU)
            report.fused_group_norms = sum(isinstance(m, fused) for m in encoder.modules())
        self.use_guided_graph(False)  # a recording holds the kernels of the networks as they were
        return report

    def use_guided_graph(self, on: bool = True) -> None:
        """With `on`, from the next call of `predict_noise` on, run the CFG-batched UNet call eagerly once more,
        then record it as a CUDA graph and replay that (`a3d_cli.models.speed.cuda_graph`): the same kernels and
        numbers without Python's launch of each of them. CUDA only; the recording keeps about
        `guided_call_bytes` for as long as it lives. Without `on`, drop any recording (its memory goes back), run
        the call eagerly, and measure `guided_call_bytes` again at the next call (the shapes may have changed)."""
        self._graphed = GraphedFunction(self._guided_pair, eager_calls=1) if on else None
        if not on:
            self.guided_call_bytes, self.graph_ran_out_of_memory = None, False

    @property
    def graph_replays(self) -> int:
        """Guided calls served by the CUDA graph since `use_guided_graph` (0 without it)."""
        return 0 if self._graphed is None else self._graphed.replays

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = self.comp.vae_scale_factor
        return int(self.comp.vae.config.latent_channels), height // f, width // f

    def encode(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        vae = self.comp.vae
        x = images.to(device=self.comp.device, dtype=vae.dtype) * 2 - 1  # [B, 3, H, W]
        dist = vae.encode(x).latent_dist
        z = dist.mean if noise is None else dist.mean + dist.std * noise.to(dist.mean)  # [B, C, h, w]
        return (z * vae.config.scaling_factor).float()

    def _text_pair(self, prompt: str, negative_prompt: str) -> Tensor:
        """[2, L, D] (unconditional, conditional) text context, computed once per prompt pair.

        Only the latest pair is kept: a batch worker hands this denoiser to job after job, each with its own
        prompt, and a context per prompt ever seen would grow without bound on the GPU.
        """
        from a3d_cli.models.mvvdm.pipeline import encode_prompts

        key = (prompt, negative_prompt)
        if key not in self._text:
            self._text = {key: encode_prompts(self.comp, [negative_prompt, prompt])}
        return self._text[key]

    @torch.no_grad()
    def prepare_condition(self, cond: SdsCondition) -> None:
        """Encode `cond`'s frame-0 images and cameras now, for the next `predict_noise` with this `cond`.

        Why: CLIP's preprocessing runs on the host (PIL, as the reference) and reads the images back, which
        waits for the GPU. Called before the step queues its VAE encoder, that wait is for the renders alone;
        inside `predict_noise` it would drain the encoder's work and leave the GPU idle during the preprocessing.
        """
        self._prepared = (cond, *self._condition_tensors(cond))

    def _condition_tensors(self, cond: SdsCondition) -> tuple[Tensor, Tensor]:
        """(image embeddings [2, V, E]: zeros for the unconditional branch, then the frames'; cameras [V, 16])."""
        from a3d_cli.device import to_device_async
        from a3d_cli.models.mvvdm.cameras import mvdream_camera_embedding_input
        from a3d_cli.models.mvvdm.pipeline import encode_images_clip

        if self._prepared is not None and self._prepared[0] is cond:
            return self._prepared[1], self._prepared[2]
        comp = self.comp
        frames = torch.floor(cond.first_frames.detach().float().clamp(0, 1) * 255) / 255  # [V, 3, H, W] 8-bit
        img = encode_images_clip(comp, frames)  # [V, E]
        cams = to_device_async(mvdream_camera_embedding_input(cond.cameras.c2w), comp.device)  # [V, 16]
        return torch.stack([torch.zeros_like(img), img]), cams.to(comp.dtype)

    def _guided_pair(self, noisy: Tensor, t: Tensor, text: Tensor, img_pair: Tensor, cams: Tensor) -> Tensor:
        """ε of (unconditional, conditional) as one UNet call: [2, V, F, C, h, w] fp32. Tensors only, fixed shapes
        and no host reads, so that it can be recorded as a CUDA graph."""
        x = torch.stack([noisy, noisy]).to(dtype=self.comp.dtype)  # [2, V, F, C, h, w]
        return self.comp.unet(x, t, text, img_pair, cams).sample.float()

    @torch.no_grad()
    def predict_noise(self, noisy: Tensor, t: int, cond: SdsCondition) -> tuple[Tensor, Tensor]:
        comp = self.comp
        text = self._text_pair(cond.prompt, cond.negative_prompt)  # [2, L, D]
        img_pair, cams = self._condition_tensors(cond)
        self._prepared = None
        x = noisy.to(device=comp.device)  # [V, F, C, h, w]
        tt = torch.full((2,), t, dtype=torch.long, device=comp.device)  # filled on the device: no host copy
        if self._graphed is not None:
            try:
                eps = self._graphed(x, tt, text, img_pair, cams)  # the recording's buffer: read before the next call
            except torch.OutOfMemoryError:  # no room for the recording after all: eager from here on
                self._graphed, self.graph_ran_out_of_memory = None, True
                torch.cuda.empty_cache()
                eps = self._guided_pair(x, tt, text, img_pair, cams)
        elif self.guided_call_bytes is None and x.device.type == "cuda":
            before = torch.cuda.memory_allocated(x.device)
            eps = self._guided_pair(x, tt, text, img_pair, cams)
            self.guided_call_bytes = max(torch.cuda.max_memory_allocated(x.device) - before, 0)
        else:
            eps = self._guided_pair(x, tt, text, img_pair, cams)
        return eps[1], eps[0]


def load_mvvdm_denoiser(
    weights: dict[str, Path] | None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> MvvdmDenoiser:
    """MV-VDM for SDS from resolved files (`mvvdm.weights.resolve_mvvdm_weights`), or the tiny random model when None.

    Args:
        weights: registry name → path of every file in `MVVDM_WEIGHTS`; None builds the tiny random MV-VDM
            (tests and plumbing checks only).
        device: where the networks go.
        dtype: their precision.
        seed: seeds the tiny model's random weights.
    """
    from a3d_cli.models.mvvdm.components import load_components, tiny_components
    from a3d_cli.models.mvvdm.weights import MVVDM_WEIGHTS

    if weights is None:
        return MvvdmDenoiser(tiny_components(seed).to(device, dtype))
    paths = [weights[name] for name in MVVDM_WEIGHTS]
    return MvvdmDenoiser(load_components(*paths, device=device, dtype=dtype))


__all__ = ["MvvdmDenoiser", "load_mvvdm_denoiser"]
