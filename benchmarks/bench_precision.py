"""How far each precision lands from fp32, and how fast it is: SV3D (orbit) and MV-VDM (mvvideo).

Full-size networks with random weights (one seeded fp32 master per model, cast to each precision, so every
row has the same weights) and fixed inputs. Per model and row:

  * one forward: the CFG-batched UNet call on fixed inputs; relative L2 distance of its output from the
    reference row's, count of NaN/inf, seconds (median after a warm-up), and, from one extra untimed call
    with hooks, the largest |activation| of any layer and how many layer outputs held NaN/inf (fp16's
    largest finite value is 65504: this is the head-room);
  * the whole sampler from the same seed: SV3D's image encoding + 50 EDM Euler steps with triangular CFG
    (latents before decoding), MV-VDM's `generate_mvvideo` (encoders, 25 DDIM steps × 3 FreeInit passes ×
    CFG, decode); relative L2 of the final latents from the reference row's, NaN/inf count, seconds.

Rows:
  * `fp32-strict` — the reference: fp32 with TF32 off, plain PyTorch (the numbers Stability's and
    Animate3D's code would give in fp32; MV-VDM's reference runs exactly this);
  * `autocast-fp16` (SV3D only, with the fp16 rows) — fp32 weights under `torch.autocast(float16)`, as Stability's script
    samples (here the VAE encoder runs under autocast too, where sgm disables it);
  * `fp32` / `bf16` / `fp16` — the networks stored in that dtype with the settings the stage itself applies
    without `--compile` (`accelerate(...)`: cuDNN autotuning and TF32 for fp32 matmuls and convolutions;
    orbit also fuses each GEGLU into one GEMM; the orbit stage's CUDA graph replays the same kernels and is
    left out). SV3D's VAE stays fp32, as in the stage;
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
    python benchmarks/bench_precision.py --tiny --device cpu --dtypes fp32 bf16 --sv3d-steps 2 \
        --mvvdm-steps 2 --freeinit-iters 2 --out /tmp/p.json    # smoke test (fp16 is very slow on CPUs)

The JSON is rewritten after every row (a run cut short by `timeout` keeps what it finished); the markdown
table is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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
from a3d_cli.models.speed.acceleration import accelerate  # noqa: E402

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


# ---------------------------------------------------------------------------------------------- SV3D


class SV3DBench:
    """SV3D_p at full size (or tiny), fixed image, static orbit at 10°, triangular CFG, seed 0."""

    name = "sv3d (orbit)"

    def __init__(self, args: argparse.Namespace) -> None:
        from a3d_cli.models.sv3d.config import SV3DConfig
        from a3d_cli.models.sv3d.loading import build_models
        from a3d_cli.models.sv3d.testing import tiny_models

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


class MVVDMBench:
    """MV-VDM at full size (or tiny), fixed views and prompt, 4 views × 16 frames, CFG 7.5, seed 0."""

    name = "mv-vdm (mvvideo)"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.device = args, args.device
        if args.tiny:
            from a3d_cli.models.mvvdm.components import tiny_components

            self.master = tiny_components(0).to(args.device, torch.float32)
        else:
            from bench_mvvideo import build_components

            self.master = build_components(args.device, torch.float32)
        self.views = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(1))

    def variant(self, name: str, compile_: bool):  # noqa: ANN201 - MVVDMComponents
        if name == REFERENCE:
            return self.master
        comp = copy.deepcopy(self.master).to(self.device, DTYPES[name])
        accelerate(self.device, [comp.unet], compile=compile_)  # as stages/mvvideo.py
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


# ---------------------------------------------------------------------------------------------- driver


def bench_row(bench, row: str, compile_: bool, ref: dict, reps: int) -> dict:  # noqa: ANN001
    device = bench.device
    set_strict_backend()  # the stage rows set their own flags through `accelerate`
    reset_peak(device)
    t0 = time.perf_counter()
    models = bench.variant(row.removesuffix("+compile"), compile_)
    res: dict = {"prepare_seconds": round(time.perf_counter() - t0, 2)}
    with torch.no_grad(), row_context(row, device):
        fwd = bench.forward(models)
        out, first, median = timed(fwd, device, reps)
        res["forward_seconds"] = round(median, 4)
        if compile_:
            res["compile_first_call_seconds"] = round(max(first - median, 0.0), 2)
        else:
            unet = models.unet
            res.update(activation_probe(unet, fwd))
        res["forward_nonfinite"] = count_nonfinite(out)
        sync(device)
        t0 = time.perf_counter()
        latents = bench.sample(models)
        sync(device)
        res["sampler_seconds"] = round(time.perf_counter() - t0, 3)
        res["sampler_nonfinite"] = count_nonfinite(latents)
    if row == REFERENCE:
        ref["forward"], ref["latents"] = out.cpu(), latents.cpu()
    res["forward_rel_l2"] = rel_l2(out.cpu(), ref["forward"])
    res["sampler_rel_l2"] = rel_l2(latents.cpu(), ref["latents"])
    peak = peak_bytes(device)
    res["peak_gib"] = None if peak is None else round(peak / 2**30, 2)
    del models
    torch._dynamo.reset()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", nargs="+", default=["sv3d", "mvvdm"], choices=["sv3d", "mvvdm"])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(DTYPES))
    ap.add_argument("--compile", action="store_true", help="add <dtype>+compile rows for --compile-dtypes")
    ap.add_argument("--compile-dtypes", nargs="+", default=["bf16"], choices=list(DTYPES))
    ap.add_argument("--sv3d-steps", type=int, default=50, help="EDM Euler steps (the reference: 50)")
    ap.add_argument("--mvvdm-steps", type=int, default=25, help="DDIM steps per pass (the reference: 25)")
    ap.add_argument("--freeinit-iters", type=int, default=3, help="FreeInit passes (the reference: 3)")
    ap.add_argument("--reps", type=int, default=3, help="timed forwards per row (after one warm-up)")
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
                     "freeinit_iters": args.freeinit_iters, "reference_row": REFERENCE},
        "results": {},
    }
    table = [
        "| model | row | forward rel. L2 | forward NaN/inf | max abs activation | s / forward | "
        "sampler rel. L2 | sampler NaN/inf | sampler s | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    benches = {"sv3d": SV3DBench, "mvvdm": MVVDMBench}
    for key in args.models:
        bench = benches[key](args)
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

            table.append(
                f"| {bench.name} | {row} | {fmt(res.get('forward_rel_l2'))} | {fmt(res.get('forward_nonfinite'))} | "
                f"{fmt(res.get('max_abs_activation'), '.3g')} | {fmt(res.get('forward_seconds'), '.4f')} | "
                f"{fmt(res.get('sampler_rel_l2'))} | {fmt(res.get('sampler_nonfinite'))} | "
                f"{fmt(res.get('sampler_seconds'), '.2f')} | {fmt(res.get('peak_gib'), '.1f')} |"
                + (f" error: {res['error']}" if "error" in res else "")
            )
        del bench
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    print("\n".join(table))
    return report


if __name__ == "__main__":
    main()
