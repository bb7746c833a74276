"""How far each precision lands from fp32, and how fast it is: SV3D (orbit), MV-VDM (mvvideo) and MV-VDM as
the 4D-SDS guidance (sds).

Full-size networks with random weights (one seeded fp32 master per model, cast to each precision, so every
row has the same weights) and fixed inputs. Per model and row:

  * one forward: the CFG-batched UNet call on fixed inputs; relative L2 distance of its output from the
    reference row's, count of NaN/inf, seconds (median after a warm-up), and, from one extra untimed call
    with hooks, the largest |activation| of any layer and how many layer outputs held NaN/inf (fp16's
    largest finite value is 65504: this is the head-room);
  * the whole sampler from the same seed: SV3D's image encoding + 50 EDM Euler steps with triangular CFG
    (latents before decoding), MV-VDM's `generate_mvvideo` (encoders, 25 DDIM steps × 3 FreeInit passes ×
    CFG, decode); relative L2 of the final latents from the reference row's, NaN/inf count, seconds.

For `sds` (`--models sds`) the same columns mean, with fixed render-like frames (4 views × 16 frames at 256²,
frame 0 the static condition), fixed VAE posterior and diffusion noise draws, fixed random orthogonal
cameras and one fixed timestep (`--sds-timestep`, default the middle of the stage's range):

  * forward: one guidance forward, `MvvdmDenoiser.predict_noise` on the reference row's latents of those
    frames, guided by `classifier_free_guidance` (ε̂ = ε_c + 5 (ε_c − ε_u)): the CFG noise prediction; the
    activation probe covers the UNet, the VAE encoder (which the gradient flows back through) and the CLIP
    image encoder, over one encode of the frames plus that forward;
  * sampler: one SDS step's gradient, λ_sds · ∂L_SDS/∂renders on the 60 moving frames, computed by
    `motion_refine.sds_loss_of_renders` (the stage's own VAE encode under checkpointing, guidance, x0 target,
    std rescale and loss); seconds are the median of `--reps` steps after one warm-up; plus the gradient's
    largest |value| and, against the reference row, how many gradient values are 0 or ±inf where strict
    fp32's are not (the stage scales no loss, so an fp16 backward through the VAE can flush tiny gradients
    to 0).

Rows:
  * `fp32-strict` — the reference: fp32 with TF32 off, plain PyTorch (the numbers Stability's and
    Animate3D's code would give in fp32; MV-VDM's reference runs exactly this; Animate3D's SDS guidance
    loads MV-VDM in fp16, so for `sds` the `fp16` row is the reference's precision);
  * `autocast-fp16` (SV3D only, with the fp16 rows) — fp32 weights under `torch.autocast(float16)`, as Stability's script
    samples (here the VAE encoder runs under autocast too, where sgm disables it);
  * `fp32` / `bf16` / `fp16` — the networks stored in that dtype with the settings the stage itself applies
    without `--compile` (`accelerate(...)`: TF32 for fp32 matmuls and convolutions;
    orbit also fuses each GEGLU into one GEMM). SV3D's VAE stays fp32, as in the stage; sds casts every MV-VDM network (the renders and the
    loss stay fp32) and accelerates the UNet and the VAE encoder, as the stage does;
  * with `--compile`, `<dtype>+compile` rows for `--compile-dtypes`: the same plus regional compilation
    (orbit: channels-last and folded upsampling too), i.e. `--compile`. First-call compile seconds are
    reported apart.

Random weights say how each precision treats these networks' arithmetic, not how the trained models
behave; read the table for orders of magnitude and for NaN/overflow, then confirm a default on real
weights. The default dtype of each stage is one constant: `DEFAULT_CUDA_DTYPE` in
`a3d_cli/stages/orbit.py`, `a3d_cli/stages/mvvideo.py` and `a3d_cli/stages/sds.py`.

Usage:
    python benchmarks/bench_precision.py --device cuda --out precision.json
    python benchmarks/bench_precision.py --device cuda --sv3d-steps 30 --freeinit-iters 2 --out p.json
    python benchmarks/bench_precision.py --device cuda --models sds --out precision_sds.json
    python benchmarks/bench_precision.py --tiny --device cpu --dtypes fp32 bf16 --sv3d-steps 2 \
        --mvvdm-steps 2 --freeinit-iters 2 --out /tmp/p.json    # smoke test (fp16 is very slow on CPUs)

The printed table labels the row in the reference's precision "(reference)" and the stage's CUDA default
"(default)"; distances are always to `fp32-strict`.

The JSON is rewritten after every row (a run cut short by `timeout` keeps what it finished); the markdown
table is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import peak_bytes, reset_peak, sync  # noqa: E402

from a3d_cli.errors import PrecisionError  # noqa: E402
from a3d_cli.models.precision import count_nonfinite  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
REFERENCE = "fp32-strict"


# ---------------------------------------------------------------------------------------------- helpers


def set_strict_backend() -> None:
    """Plain fp32 arithmetic: no TF32, no cuDNN autotuning (reset before every plain row)."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def rel_l2(x: Tensor, ref: Tensor) -> float:
    """‖x − ref‖ / ‖ref‖ in fp64 (NaN when x is not finite)."""
    x, ref = x.double(), ref.double()
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))


@torch.no_grad()
def activation_probe(model: nn.Module, call: Callable[[], object]) -> dict:
    """Largest |output| of any leaf layer during `call()`, where it happened, and layers with NaN/inf."""
    peaks: list[tuple[str, Tensor]] = []

    def hook(name: str):  # noqa: ANN202
        def record(_m, _i, out) -> None:  # noqa: ANN001
            if isinstance(out, Tensor) and out.is_floating_point():
                peaks.append((name, out.detach().abs().amax().float()))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    try:
        call()
    finally:
        for h in handles:
            h.remove()
    if not peaks:
        return {}
    values = torch.stack([v for _, v in peaks]).cpu()  # one sync
    finite = torch.isfinite(values)
    top = int(torch.where(finite, values, torch.zeros_like(values)).argmax())
    return {
        "max_abs_activation": float(values[top]),
        "max_abs_layer": peaks[top][0],
        "layers_with_nonfinite_output": int((~finite).sum()),
    }


def timed(call: Callable[[], Tensor], device: str, reps: int) -> tuple[Tensor, float, float]:
    """(output, first-call seconds, median seconds of `reps` calls after it)."""
    sync(device)
    t0 = time.perf_counter()
    out = call()
    sync(device)
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = call()
        sync(device)
        times.append(time.perf_counter() - t0)
    return out, first, statistics.median(times) if times else first


def row_context(name: str, device: str):  # noqa: ANN201
    """fp16 autocast for the autocast row, nothing otherwise."""
    if name == "autocast-fp16":
        return torch.autocast(torch.device(device).type, dtype=torch.float16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------- benches


class Bench:
    """What `bench_row` asks of a model: `variant`, `forward`, `sample`, `rows` (each subclass), and these defaults.

    Attributes:
        reference_row: the row in the reference implementation's own precision (labelled in the table).
        default_row: the row in the stage's `DEFAULT_CUDA_DTYPE`.
        sample_reps: timed `sample` calls after a first one (0: the first call is the timing).
    """

    name = ""
    reference_row = ""
    default_row = ""
    sample_reps = 0

    def probe(self, models, forward: Callable[[], Tensor]) -> dict:  # noqa: ANN001
        """`activation_probe` of the networks one forward runs (the UNet)."""
        return activation_probe(models.unet, forward)

    def sample_extras(self, out: Tensor, ref: Tensor) -> dict:
        """Measures of `sample`'s result beyond its distance from the reference row's (none by default)."""
        return {}

    def report_settings(self) -> dict:
        """Inputs this bench chose itself, for the JSON's "settings" (none by default)."""
        return {}

    def label(self, row: str) -> str:
        """The row's name in the table: marks the reference's precision and the stage's default."""
        notes = [n for n, r in (("reference", self.reference_row), ("default", self.default_row)) if r == row]
        return f"{row} ({', '.join(notes)})" if notes else row


def stage_default(constant: str) -> str:
    """The row name of a stage's `DEFAULT_CUDA_DTYPE` ("bf16-if-supported" is the bf16 row)."""
    return constant.removesuffix("-if-supported")


# ---------------------------------------------------------------------------------------------- SV3D


class SV3DBench(Bench):
    """SV3D_p at full size (or tiny), fixed image, static orbit at 10°, triangular CFG, seed 0."""

    name = "sv3d (orbit)"
    reference_row = "autocast-fp16"

    def __init__(self, args: argparse.Namespace) -> None:
        from a3d_cli.models.sv3d.config import SV3DConfig
        from a3d_cli.models.sv3d.loading import build_models
        from a3d_cli.models.sv3d.testing import tiny_models
        from a3d_cli.stages.orbit import DEFAULT_CUDA_DTYPE

        self.default_row = stage_default(DEFAULT_CUDA_DTYPE)

        self.args, self.device = args, args.device
        torch.manual_seed(0)
        self.master = tiny_models("sv3d_p", 0) if args.tiny else build_models(SV3DConfig.full(), "sv3d_p", args.device)
        self.master.unet.to(args.device)
        self.master.image_encoder.to(args.device)
        self.master.vae.to(args.device)
        size = self.master.config.image_size
        self.image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(1))
        self.steps = args.sv3d_steps

    def variant(self, name: str, compile_: bool):  # noqa: ANN201 - SV3DModels
        """A copy of the master in the row's precision, with the stage's settings applied."""
        from a3d_cli.models.sv3d.loading import SV3DModels

        m = self.master
        if name in (REFERENCE, "autocast-fp16"):
            return m  # fp32 master, plain PyTorch
        dtype = DTYPES[name]
        models = SV3DModels(
            unet=copy.deepcopy(m.unet).to(dtype), vae=m.vae, image_encoder=copy.deepcopy(m.image_encoder).to(dtype),
            config=m.config, variant=m.variant,
        )
        models.accelerate(self.device, compile=compile_)  # the orbit stage's settings
        return models

    def forward(self, models) -> Callable[[], Tensor]:  # noqa: ANN001
        from bench_orbit import unet_forward_args

        dtype = next(models.unet.parameters()).dtype
        args = unet_forward_args(models, torch.device(self.device), dtype)
        return lambda: models.unet(*args, return_dict=False)[0].float()

    def sample(self, models) -> Tensor:  # noqa: ANN001
        from a3d_cli.models.guidance import triangular_cfg_scales
        from a3d_cli.models.sv3d.cameras import static_orbit
        from a3d_cli.models.sv3d.pipeline import DEFAULT_NOISE_AUG, SV3DPipeline

        pipe = SV3DPipeline(models, device=self.device)
        g = torch.Generator("cpu").manual_seed(0)
        cond = pipe.encode_image(self.image, DEFAULT_NOISE_AUG, g)  # the draws in `SV3DPipeline.__call__`'s order
        vector = pipe.camera_vector(static_orbit(10.0), DEFAULT_NOISE_AUG)
        scales = triangular_cfg_scales(models.config.num_frames)
        return pipe.denoise(cond, vector, scales, self.steps, g)[0].float()  # [F, C, h, w]

    def rows(self) -> list[str]:
        autocast = ["autocast-fp16"] if "fp16" in self.args.dtypes else []  # with the fp16 rows only
        return [REFERENCE, *autocast, *self.args.dtypes]


# ---------------------------------------------------------------------------------------------- MV-VDM


def mvvdm_master(args: argparse.Namespace):  # noqa: ANN201 - MVVDMComponents
    """MV-VDM's networks in fp32 with seeded random weights: full size, or tiny with `--tiny`."""
    from random_mvvdm import build_components

    return build_components(args.device, torch.float32, tiny=args.tiny)


class MVVDMBench(Bench):
    """MV-VDM at full size (or tiny), fixed views and prompt, 4 views × 16 frames, CFG 7.5, seed 0."""

    name = "mv-vdm (mvvideo)"
    reference_row = REFERENCE  # Animate3D's inference script runs MV-VDM in fp32

    def __init__(self, args: argparse.Namespace) -> None:
        from a3d_cli.stages.mvvideo import DEFAULT_CUDA_DTYPE

        self.args, self.device = args, args.device
        self.default_row = stage_default(DEFAULT_CUDA_DTYPE)
        self.master = mvvdm_master(args)
        self.views = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(1))

    def variant(self, name: str, compile_: bool):  # noqa: ANN201 - MVVDMComponents
        if name == REFERENCE:
            return self.master
        comp = copy.deepcopy(self.master).to(self.device, DTYPES[name])
        comp.accelerate(self.device, compile=compile_)  # as stages/mvvideo.py
        return comp

    def forward(self, comp) -> Callable[[], Tensor]:  # noqa: ANN001
        from bench_mvvideo import unet_args

        args = unet_args(comp, self.device)
        return lambda: comp.unet(*args).sample.float()

    def sample(self, comp) -> Tensor:  # noqa: ANN001
        from a3d_cli.models.freeinit import FreeInitConfig
        from a3d_cli.models.mvvdm import generate_mvvideo
        from a3d_cli.models.mvvdm.sampling import SamplingConfig
        from a3d_cli.render.cameras import mvvdm_cameras

        cfg = SamplingConfig(steps=self.args.mvvdm_steps, freeinit=FreeInitConfig(iters=self.args.freeinit_iters))
        last: list[Tensor] = []

        def keep(_pass: int, _step: int, latents: Tensor) -> None:
            last[:] = [latents]  # a reference, no copy and no sync

        try:
            out = generate_mvvideo(comp, self.views, mvvdm_cameras().c2w, "a fox wags its tail", config=cfg,
                                   generator=torch.Generator().manual_seed(0), callback=keep)
            return out.latents.float()
        except PrecisionError:  # the guard fired: report the latents it refused
            return last[0].float()

    def rows(self) -> list[str]:
        return [REFERENCE, *self.args.dtypes]


# ---------------------------------------------------------------------------------------------- SDS


def render_like_frames(views: int, frames: int, size: int, seed: int) -> Tensor:
    """[V, F, 3, size, size] smooth frames in [0, 1]: a coloured disc on the stage's grey, moving a little.

    A stand-in for the splat renders the stage encodes (no rasterizer needed): smooth colour inside a
    silhouette, grey (`MVVDM_BACKGROUND`) outside, each frame a small change of the one before.
    """
    import torch.nn.functional as F  # noqa: N812

    from a3d_cli.render.cameras import MVVDM_BACKGROUND

    g = torch.Generator().manual_seed(seed)
    base = torch.rand(views, 1, 3, 8, 8, generator=g)
    drift = 0.05 * torch.randn(views, frames, 3, 8, 8, generator=g).cumsum(dim=1)
    colour = F.interpolate((base + drift).flatten(0, 1), size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    inside = ((xx.square() + yy.square()) < 0.6).float()  # [H, W]
    out = colour.clamp(0, 1) * inside + MVVDM_BACKGROUND * (1 - inside)
    return out.reshape(views, frames, 3, size, size)


class SdsBench(Bench):
    """MV-VDM as `a3d sds`'s guidance at full size (or tiny): one guided forward and one SDS gradient.

    Fixed inputs (seeded): render-like frames 4 views × 16 frames at 256² (2 frames with `--tiny`, whose VAE is
    slow at 256² on a CPU), one random orthogonal camera set
    of the stage's distributions, VAE posterior and diffusion noise draws, one timestep; the stage's
    settings (`SdsOptions` defaults: guidance 5, std rescale 0.25, λ_sds 0.01, VAE chunk 16).
    """

    name = "mv-vdm guidance (sds)"
    reference_row = "fp16"  # Animate3D's threestudio guidance loads MV-VDM with fp16 weights

    def __init__(self, args: argparse.Namespace) -> None:
        from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser
        from a3d_cli.models.mvvdm.shape import NUM_FRAMES, NUM_VIEWS, RESOLUTION
        from a3d_cli.models.sds import timestep_range
        from a3d_cli.render.random_cameras import sample_orthogonal_cameras
        from a3d_cli.stages.sds import DEFAULT_CUDA_DTYPE, SdsOptions

        self.args, self.device = args, args.device
        self.default_row = stage_default(DEFAULT_CUDA_DTYPE)
        self.sample_reps = args.reps
        self.settings = SdsOptions(prompt="a fox wags its tail")
        self.master = mvvdm_master(args)
        self.reference = MvvdmDenoiser(self.master)  # the stage's wrapper (frozen, VAE attention shortcut)
        v, f, size = NUM_VIEWS, 2 if args.tiny else NUM_FRAMES, RESOLUTION  # tiny: a CPU smoke run, 1 moving frame
        self.frames = render_like_frames(v, f, size, seed=1).to(args.device)  # [V, F, 3, H, W]
        self.cams = sample_orthogonal_cameras(self.settings.cameras, generator=torch.Generator().manual_seed(0))
        c, h, w = self.reference.latent_shape(size, size)
        g = torch.Generator().manual_seed(2)
        self.post = torch.randn(v, f, c, h, w, generator=g).to(args.device)  # VAE posterior draws
        self.noise = torch.randn(v, f - 1, c, h, w, generator=g).to(args.device)  # diffusion noise, frames 1…F-1
        t_min, t_max = timestep_range(
            self.reference.alphas_cumprod.shape[0], self.settings.min_step_percent, self.settings.max_step_percent
        )
        self.t = (t_min + t_max) // 2 if args.sds_timestep is None else args.sds_timestep
        if not 0 <= self.t < self.reference.alphas_cumprod.shape[0]:
            sys.exit(f"--sds-timestep must be in 0…{self.reference.alphas_cumprod.shape[0] - 1}, got {self.t}")
        set_strict_backend()
        with torch.no_grad():  # the guidance forward's clean latents: the reference row's encoding, for every row
            z = self.reference.encode(self.frames.flatten(0, 1), self.post.flatten(0, 1))
        self.latents = z.reshape(v, f, c, h, w)

    def variant(self, name: str, compile_: bool):  # noqa: ANN201 - MvvdmDenoiser
        from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser

        if name == REFERENCE:
            return self.reference
        den = MvvdmDenoiser(copy.deepcopy(self.master).to(self.device, DTYPES[name]))
        den.accelerate(self.device, compile=compile_)  # as stages/sds.py
        return den

    def condition(self):  # noqa: ANN201 - SdsCondition
        from a3d_cli.models.sds import SdsCondition

        s = self.settings
        return SdsCondition(s.prompt, s.negative_prompt, self.frames[:, 0], self.cams)

    def forward(self, den) -> Callable[[], Tensor]:  # noqa: ANN001
        from a3d_cli.models.sds import classifier_free_guidance, noise_moving_frames

        noisy = noise_moving_frames(self.latents, self.noise, self.t, den.alphas_cumprod)  # [V, F, C, h, w]
        cond, scale = self.condition(), self.settings.guidance_scale

        def guided() -> Tensor:
            eps_c, eps_u = den.predict_noise(noisy, self.t, cond)
            return classifier_free_guidance(eps_c, eps_u, scale)  # [V, F, C, h, w]

        return guided

    def probe(self, den, forward: Callable[[], Tensor]) -> dict:  # noqa: ANN001
        comp = den.comp
        nets = nn.ModuleDict({"unet": comp.unet, "vae_encoder": comp.vae.encoder, "image_encoder": comp.image_encoder})

        def encode_and_guide() -> None:
            den.encode(self.frames.flatten(0, 1), self.post.flatten(0, 1))
            forward()

        return activation_probe(nets, encode_and_guide)

    def sample(self, den) -> Tensor:  # noqa: ANN001
        from a3d_cli.gaussians.motion_refine import sds_loss_of_renders

        renders = self.frames.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = sds_loss_of_renders(den, renders, self.cams, self.settings, self.post, self.t, self.noise)
            (self.settings.lambda_sds * loss).backward()
        return renders.grad[:, 1:]  # [V, F-1, 3, H, W]; frame 0 is encoded without gradients

    def sample_extras(self, out: Tensor, ref: Tensor) -> dict:
        return {
            "grad_max_abs": float(out.abs().nan_to_num(0.0, 0.0, 0.0).amax()),
            "grad_zero_where_fp32_nonzero": int(((out == 0) & (ref != 0)).sum()),
            "grad_inf_where_fp32_finite": int((out.isinf() & ref.isfinite()).sum()),
        }

    def report_settings(self) -> dict:
        return {"sds_timestep": self.t, "sds_frames": list(self.frames.shape), "sds_settings": "SdsOptions defaults"}

    def rows(self) -> list[str]:
        return [REFERENCE, *self.args.dtypes]


# ---------------------------------------------------------------------------------------------- driver


def bench_row(bench: Bench, row: str, compile_: bool, ref: dict, reps: int) -> dict:
    device = bench.device
    set_strict_backend()  # the stage rows set their own flags through `accelerate`
    reset_peak(device)
    t0 = time.perf_counter()
    models = bench.variant(row.removesuffix("+compile"), compile_)
    res: dict = {"label": bench.label(row), "prepare_seconds": round(time.perf_counter() - t0, 2)}
    with torch.no_grad(), row_context(row, device):
        fwd = bench.forward(models)
        out, first, median = timed(fwd, device, reps)
        res["forward_seconds"] = round(median, 4)
        if compile_:
            res["compile_first_call_seconds"] = round(max(first - median, 0.0), 2)
        else:
            res.update(bench.probe(models, fwd))
        res["forward_nonfinite"] = count_nonfinite(out)
        sample = functools.partial(bench.sample, models)
        latents, first, seconds = timed(sample, device, bench.sample_reps)
        res["sampler_seconds"] = round(seconds, 3)
        if compile_ and bench.sample_reps:  # the backward's graphs compile on the first step
            res["sampler_compile_first_call_seconds"] = round(max(first - seconds, 0.0), 2)
        res["sampler_nonfinite"] = count_nonfinite(latents)
    if row == REFERENCE:
        ref["forward"], ref["latents"] = out.cpu(), latents.cpu()
    res["forward_rel_l2"] = rel_l2(out.cpu(), ref["forward"])
    res["sampler_rel_l2"] = rel_l2(latents.cpu(), ref["latents"])
    res.update(bench.sample_extras(latents.cpu(), ref["latents"]))
    peak = peak_bytes(device)
    res["peak_gib"] = None if peak is None else round(peak / 2**30, 2)
    del models, sample
    torch._dynamo.reset()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", nargs="+", default=["sv3d", "mvvdm"], choices=["sv3d", "mvvdm", "sds"],
                    help="sds: MV-VDM as the SDS guidance (one guided forward, one SDS gradient); not in the default")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(DTYPES))
    ap.add_argument("--compile", action="store_true", help="add <dtype>+compile rows for --compile-dtypes")
    ap.add_argument("--compile-dtypes", nargs="+", default=["bf16"], choices=list(DTYPES))
    ap.add_argument("--sv3d-steps", type=int, default=50, help="EDM Euler steps (the reference: 50)")
    ap.add_argument("--mvvdm-steps", type=int, default=25, help="DDIM steps per pass (the reference: 25)")
    ap.add_argument("--freeinit-iters", type=int, default=3, help="FreeInit passes (the reference: 3)")
    ap.add_argument("--sds-timestep", type=int, default=None,
                    help="the SDS timestep (default: the middle of the stage's range, 110 of 1000)")
    ap.add_argument("--reps", type=int, default=3,
                    help="timed forwards per row, and timed SDS steps for sds (after one warm-up)")
    ap.add_argument("--tiny", action="store_true", help="tiny networks: a CPU smoke test of this script")
    ap.add_argument("--out", type=Path, default=Path("precision_bench.json"))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("CUDA is not available: pass --device cpu --tiny for a smoke test")

    report: dict = {
        "benchmark": "precision",
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor(),
        "torch": torch.__version__,
        "model": "tiny (smoke test)" if args.tiny else "full size, random weights",
        "settings": {"sv3d_steps": args.sv3d_steps, "mvvdm_steps": args.mvvdm_steps,
                     "freeinit_iters": args.freeinit_iters, "sds_timestep": args.sds_timestep,
                     "reference_row": REFERENCE},
        "results": {},
    }
    table = [
        "| model | row | forward rel. L2 | forward NaN/inf | max abs activation | s / forward | "
        "sampler rel. L2 | sampler NaN/inf | sampler s | peak GiB | grad max abs | grad 0 / inf where fp32 not |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    benches = {"sv3d": SV3DBench, "mvvdm": MVVDMBench, "sds": SdsBench}
    for key in args.models:
        bench = benches[key](args)
        report["settings"].update(bench.report_settings())
        ref: dict = {}
        rows = [(r, False) for r in bench.rows()]
        if args.compile:
            rows += [(f"{d}+compile", True) for d in args.compile_dtypes]
        results = report["results"].setdefault(bench.name, {})
        for row, compile_ in rows:
            try:
                res = bench_row(bench, row, compile_, ref, args.reps)
            except Exception as exc:  # one failing row must not lose the others
                if row == REFERENCE:
                    raise
                res = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            results[row] = res
            print(f"[{bench.name}] {row}: {res}", flush=True)
            args.out.write_text(json.dumps(report, indent=2))

            def fmt(v: object, spec: str = ".2e") -> str:
                return "–" if v is None else (format(v, spec) if isinstance(v, float) else str(v))

            lost = (
                f"{res['grad_zero_where_fp32_nonzero']} / {res['grad_inf_where_fp32_finite']}"
                if "grad_zero_where_fp32_nonzero" in res else "–"
            )
            table.append(
                f"| {bench.name} | {bench.label(row)} | {fmt(res.get('forward_rel_l2'))} | "
                f"{fmt(res.get('forward_nonfinite'))} | "
                f"{fmt(res.get('max_abs_activation'), '.3g')} | {fmt(res.get('forward_seconds'), '.4f')} | "
                f"{fmt(res.get('sampler_rel_l2'))} | {fmt(res.get('sampler_nonfinite'))} | "
                f"{fmt(res.get('sampler_seconds'), '.2f')} | {fmt(res.get('peak_gib'), '.1f')} | "
                f"{fmt(res.get('grad_max_abs'), '.3g')} | {lost} |"
                + (f" error: {res['error']}" if "error" in res else "")
            )
        del bench
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    print("\n".join(table))
    return report


if __name__ == "__main__":
    main()
