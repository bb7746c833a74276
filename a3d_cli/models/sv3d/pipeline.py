"""SV3D inference: one image in, an orbit of frames out, sampled the way Stability's script samples it.

The recipe (`SV3DPipeline.__call__`):

1. Encode the image: CLIP image embedding of the clean image; VAE *mode* latent of the image plus
   `noise_aug`·N(0, 1) noise, **unscaled** (not multiplied by 0.18215), repeated over the frames.
2. Build the per-frame vector: `sv3d_vector(cond_aug, polar, azimuth)` (cameras only for sv3d_p).
3. Denoise with EDM Euler (`scheduler.make_scheduler`): the noisy latent (scaled by c_in) is concatenated
   with the conditioning latent on channels; conditional and unconditional rows (CLIP embedding and
   conditioning latent zeroed, same vector) run as one batch; per-frame guidance scales combine them.
4. Decode latents / 0.18215 with the 2-D decoder in fp32, `decode_chunk` frames at a time (the decoder is
   per-frame, so the chunk size changes memory, never the result).

Every random draw comes from one CPU `torch.Generator` seeded by the caller, so a seed gives the same
noise on every device.

Examples:
    >>> pipe = SV3DPipeline(loaded.models, device="cuda")
    >>> out = pipe(image, static_orbit(10.0), num_steps=50, seed=0)          # out.frames: [21, 3, 576, 576]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from a3d_cli.models.guidance import apply_frame_cfg, triangular_cfg_scales
from a3d_cli.models.precision import check_finite
from a3d_cli.models.sv3d.cameras import Orbit, to_sv3d_angles
from a3d_cli.models.sv3d.conditioning import clip_input, sv3d_vector
from a3d_cli.models.sv3d.loading import SV3DModels
from a3d_cli.models.sv3d.scheduler import DEFAULT_STEPS, make_scheduler

DEFAULT_NOISE_AUG = 1e-5


@dataclass
class ImageConditioning:
    """The image conditions of one sample.

    Attributes:
        image_embeds: [1, 1, D] CLIP image embedding (cross-attention context).
        image_latent: [1, C, h, w] unscaled VAE mode latent of the (slightly noised) image.
    """

    image_embeds: Tensor
    image_latent: Tensor


@dataclass
class SV3DOutput:
    """Result of one orbit.

    Attributes:
        frames: [F, 3, H, W] in [0, 1], reference order (input view last).
        latents: [F, C, h, w] final latents (scaled space).
        seconds: wall time per phase ("encode", "sample", "decode").
        peak_bytes: on CUDA, `max_memory_allocated` at the end of each phase (a running maximum, so the
            phase where it first reaches its final value is where the peak happened); empty on CPU.
    """

    frames: Tensor
    latents: Tensor
    seconds: dict[str, float] = field(default_factory=dict)
    peak_bytes: dict[str, int] = field(default_factory=dict)


def _dtype_of(module: nn.Module) -> torch.dtype:
    p = next(module.parameters(), None)
    return p.dtype if p is not None else getattr(module, "dtype", torch.float32)


class SV3DPipeline:
    """Runs SV3D_u / SV3D_p on one device, optionally keeping idle networks on the CPU.

    Args:
        models: loaded networks (`loading.load_sv3d`).
        device: execution device.
        offload: keep each network on the CPU except while it runs (less GPU memory, some transfer time).
        scheduler: an `EulerDiscreteScheduler` in SV3D's configuration (default `make_scheduler()`).
    """

    def __init__(
        self,
        models: SV3DModels,
        device: str | torch.device = "cpu",
        offload: bool = False,
        scheduler=None,  # noqa: ANN001
    ) -> None:
        self.models = models
        self.device = torch.device(device)
        self.offload = offload
        self.scheduler = scheduler if scheduler is not None else make_scheduler()
        for m in (models.unet, models.vae, models.image_encoder):
            m.to("cpu" if offload else self.device)

    # -- helpers -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _on_device(self, module: nn.Module) -> Iterator[nn.Module]:
        """`module` on the execution device for the duration of the block (moved back when offloading)."""
        if self.offload:
            module.to(self.device)
        try:
            yield module
        finally:
            if self.offload:
                module.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _record(self, phase: str, start: float, seconds: dict[str, float], peaks: dict[str, int]) -> None:
        """Close a phase: synchronize, store its wall time and the running peak memory."""
        self._sync()
        seconds[phase] = time.perf_counter() - start
        if self.device.type == "cuda":
            peaks[phase] = int(torch.cuda.max_memory_allocated(self.device))

    def check_inputs(self, image: Tensor, orbit: Orbit | None, cfg: Tensor, num_steps: int, decode_chunk: int) -> None:
        """Fail early, with the argument's name, on inputs that cannot work."""
        cfg_ = self.models.config
        if image.shape != (3, cfg_.image_size, cfg_.image_size):
            raise ValueError(f"image must be [3, {cfg_.image_size}, {cfg_.image_size}], got {list(image.shape)}")
        if self.models.variant == "sv3d_p" and orbit is None:
            raise ValueError("sv3d_p needs an orbit (per-frame elevation and azimuth)")
        if orbit is not None and len(orbit) != cfg_.num_frames:
            raise ValueError(f"the orbit must have {cfg_.num_frames} frames, got {len(orbit)}")
        if cfg.shape != (cfg_.num_frames,):
            raise ValueError(f"cfg scales must be [{cfg_.num_frames}], got {list(cfg.shape)}")
        if num_steps < 1 or decode_chunk < 1:
            raise ValueError("num_steps and decode_chunk must be ≥ 1")

    # -- phases --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_image(self, image: Tensor, noise_aug: float, generator: torch.Generator) -> ImageConditioning:
        """CLIP embedding of the clean image and unscaled VAE mode latent of the noised one.

        Args:
            image: [3, H, W] in [0, 1].
        """
        x = image.float()[None] * 2.0 - 1.0  # [1, 3, H, W] in [-1, 1]
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)  # drawn on the CPU
        clip = self.models.image_encoder
        with self._on_device(clip):
            pixels = clip_input(x.to(self.device), self.models.config.clip.image_size).to(_dtype_of(clip))
            embeds = clip(pixel_values=pixels).image_embeds[:, None].float()  # [1, 1, D]
        vae = self.models.vae
        with self._on_device(vae):
            noisy = (x + noise_aug * noise).to(self.device, _dtype_of(vae))
            latent = vae.encode(noisy).latent_dist.mode().float()  # [1, C, h, w], unscaled
        return ImageConditioning(image_embeds=embeds, image_latent=latent)

    def camera_vector(self, orbit: Orbit | None, noise_aug: float) -> Tensor:
        """[1, F, P] per-frame vector: cond_aug sinusoids, plus polar/azimuth sinusoids for sv3d_p."""
        f = self.models.config.num_frames
        aug = torch.full((1, f), float(noise_aug))
        if self.models.variant == "sv3d_u":
            return sv3d_vector(aug)
        assert orbit is not None
        polar, azim = to_sv3d_angles(orbit)  # [F] each, radians
        return sv3d_vector(aug, polar[None], azim[None])

    @torch.no_grad()
    def denoise(
        self,
        cond: ImageConditioning,
        vector: Tensor,
        cfg: Tensor,
        num_steps: int,
        generator: torch.Generator,
        callback: Callable[[int, int], None] | None = None,
    ) -> Tensor:
        """EDM Euler sampling with per-frame CFG.

        Args:
            cond: image conditions.
            vector: [1, F, P] per-frame vector (same for both CFG rows).
            cfg: [F] guidance scale per frame; when all are 1 the unconditional row is skipped.
            num_steps: Euler steps (UNet calls per CFG row).

        Returns:
            [1, F, C, h, w] latents in the UNet's (scaled) space.
        """
        cfg_ = self.models.config
        f, c, s = cfg_.num_frames, cfg_.vae.latent_channels, cfg_.latent_size
        sched = self.scheduler
        sched.set_timesteps(num_steps, device=self.device)
        noise = torch.randn((1, f, c, s, s), generator=generator, dtype=torch.float32)  # [1, F, C, h, w]
        latents = noise.to(self.device) * sched.init_noise_sigma

        guided = bool((cfg != 1.0).any())
        cond_latent = cond.image_latent.to(self.device)[:, None].expand(1, f, c, s, s)  # [1, F, C, h, w]
        embeds = cond.image_embeds.to(self.device)  # [1, 1, D]
        vec = vector.to(self.device)  # [1, F, P]
        if guided:  # row 0 unconditional (zeros), row 1 conditional
            cond_latent = torch.cat([torch.zeros_like(cond_latent), cond_latent])  # [2, F, C, h, w]
            embeds = torch.cat([torch.zeros_like(embeds), embeds])  # [2, 1, D]
            vec = vec.expand(2, -1, -1)  # [2, F, P]
        scales = cfg.to(self.device, torch.float32)

        unet = self.models.unet
        dtype = _dtype_of(unet)
        with self._on_device(unet):
            embeds, cond_latent, vec = embeds.to(dtype), cond_latent.to(dtype), vec.to(dtype)
            for i, t in enumerate(sched.timesteps):
                x_in = sched.scale_model_input(latents, t)  # [1, F, C, h, w], × c_in
                if guided:
                    x_in = torch.cat([x_in, x_in])
                model_in = torch.cat([x_in.to(dtype), cond_latent], dim=2)  # [B, F, 2C, h, w]
                v = unet(model_in, t, embeds, vec, return_dict=False)[0].float()  # [B, F, C, h, w]
                if guided:
                    v = apply_frame_cfg(v[:1], v[1:], scales)  # [1, F, C, h, w]
                latents = sched.step(v, t, latents).prev_sample
                if callback is not None:
                    callback(i + 1, num_steps)
        return latents

    @torch.no_grad()
    def decode(self, latents: Tensor, decode_chunk: int) -> Tensor:
        """Frames from latents, in fp32, `decode_chunk` frames at a time.

        Args:
            latents: [F, C, h, w] scaled latents.

        Returns:
            [F, 3, H, W] in [0, 1].
        """
        vae = self.models.vae
        frames = []
        with self._on_device(vae), torch.autocast(self.device.type, enabled=False):
            dtype = _dtype_of(vae)
            for start in range(0, latents.shape[0], decode_chunk):
                z = latents[start : start + decode_chunk].to(self.device, dtype) / self.models.config.vae.scaling_factor
                x = vae.decode(z).sample.float()  # [n, 3, H, W] in ~[-1, 1]
                frames.append(((x + 1.0) / 2.0).clamp(0, 1))
        return torch.cat(frames)

    # -- the recipe ------------------------------------------------------------------------------------------

    def __call__(
        self,
        image: Tensor,
        orbit: Orbit | None = None,
        *,
        num_steps: int = DEFAULT_STEPS,
        cfg: Tensor | None = None,
        noise_aug: float = DEFAULT_NOISE_AUG,
        seed: int = 0,
        decode_chunk: int = 3,
        replace_input_frame: bool = True,
        callback: Callable[[int, int], None] | None = None,
    ) -> SV3DOutput:
        """Sample one orbit.

        Args:
            image: [3, H, W] in [0, 1], the preprocessed input (object centred, white background).
            orbit: per-frame cameras in reference order (input view last); required for sv3d_p.
            num_steps: Euler steps.
            cfg: [F] guidance scale per frame (default: triangular 1.0 → 2.5 → 1.0).
            noise_aug: noise added to the conditioning image, also fed as cond_aug (1e-5).
            seed: seeds every random draw.
            decode_chunk: frames decoded at once (memory only).
            replace_input_frame: put the input image in the last frame, as the reference script does.
            callback: called as callback(step, num_steps) after each step.

        Returns:
            `SV3DOutput` with frames [F, 3, H, W] in reference order.

        Raises:
            PrecisionError: the sampled latents hold NaN or infinity (an fp16 overflow, usually).
        """
        f = self.models.config.num_frames
        cfg = triangular_cfg_scales(f) if cfg is None else cfg
        self.check_inputs(image, orbit, cfg, num_steps, decode_chunk)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        seconds: dict[str, float] = {}
        peaks: dict[str, int] = {}

        # 1. image conditions
        t0 = time.perf_counter()
        cond = self.encode_image(image, noise_aug, generator)
        # 2. per-frame vector
        vector = self.camera_vector(orbit, noise_aug)
        self._record("encode", t0, seconds, peaks)

        # 3. denoise
        t0 = time.perf_counter()
        latents = self.denoise(cond, vector, cfg, num_steps, generator, callback)[0]  # [F, C, h, w]
        self._record("sample", t0, seconds, peaks)
        check_finite(latents, "SV3D latents", _dtype_of(self.models.unet))  # never decode NaN silently

        # 4. decode
        t0 = time.perf_counter()
        frames = self.decode(latents, decode_chunk)
        self._record("decode", t0, seconds, peaks)
        frames = frames.cpu()
        if replace_input_frame:
            frames[-1] = image.float().cpu()
        return SV3DOutput(frames=frames, latents=latents.float().cpu(), seconds=seconds, peak_bytes=peaks)
