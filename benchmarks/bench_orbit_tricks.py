"""What each speed trick gains on the whole `orbit` stage: the stage with every trick, then with one taken out.

Each trick of `a3d_cli.models.speed` earns its code by its gain on a stage's total time (docs/PERF.md,
"Speed tricks: keep or drop"). This script measures that gain on SV3D_p at full size with random weights,
leave-one-out, on the two paths `a3d orbit` runs:

- `default` (no `--compile`): CUDA flags, attention shortcuts with the fused short-sequence kernel, the
  fused Gluon GEGLU;
- `compile` (`--compile`): all of that, plus regional `torch.compile`, channels-last blocks, GroupNorm by
  channels and subpixel upsampling.

Every configuration builds a fresh network, applies the tricks through the product's own functions (each
returns a removable `SpeedHandle`), warms up, and times the stage as `a3d orbit` runs it after loading
(encode, `--steps` Euler steps, decode) between `torch.cuda.synchronize()` calls. A trick is "taken out" by
not applying it (or, for a piece applied together with others, by removing that piece's change: the
GroupNorms of `keep_channels_last`). `compile` path − `compile`
is the `default` path's all-tricks configuration, so the gain of `--compile` is the difference of the two
paths' first rows.
The table gives each configuration's stage seconds and the gain of the trick: stage time without it minus
stage time with all, as seconds and as a percentage of the all-tricks stage time.

By default the tricks under review are taken out (`DEFAULT_TAKEN_OUT`); `--tricks all` takes out every one
(longer: each compiled configuration whose graphs differ compiles again).

Usage (GPU machine; most of the default run is compiling):
    python benchmarks/bench_orbit_tricks.py --out tricks.json
    python benchmarks/bench_orbit_tricks.py --paths default --tricks all --out tricks_default.json
    python benchmarks/bench_orbit_tricks.py --tiny --device cpu --steps 2                   # CPU smoke test

Prints a markdown table at the end; `--out` receives every row as JSON, rewritten after each configuration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import gluon_geglu_runs, peak_bytes, reset_peak, sync  # noqa: E402
from speed_variants import MathShortAttnProcessor  # noqa: E402

from a3d_cli.device import torch_dtype  # noqa: E402
from a3d_cli.models.guidance import triangular_cfg_scales  # noqa: E402
from a3d_cli.models.speed.acceleration import (  # noqa: E402
    compile_blocks,
    configure_cuda,
    keep_channels_last,
)
from a3d_cli.models.speed.attention import ShortcutAttnProcessor, replace_attention_processors  # noqa: E402
from a3d_cli.models.speed.geglu import use_fused_geglu  # noqa: E402
from a3d_cli.models.speed.group_norm import ChannelsLastGroupNorm  # noqa: E402
from a3d_cli.models.speed.handles import SpeedHandle  # noqa: E402
from a3d_cli.models.speed.upsampling import use_subpixel_upsampling  # noqa: E402
from a3d_cli.models.sv3d.cameras import static_orbit  # noqa: E402
from a3d_cli.models.sv3d.config import SV3DConfig  # noqa: E402
from a3d_cli.models.sv3d.loading import build_models  # noqa: E402
from a3d_cli.models.sv3d.pipeline import SV3DPipeline  # noqa: E402
from a3d_cli.stages.orbit import DEFAULT_CUDA_DTYPE  # noqa: E402

TRICKS = {
    "default": ("cuda_flags", "attention_shortcuts", "short_attention_kernel", "gluon_geglu"),
    "compile": (
        "compile",
        "channels_last_blocks",
        "group_norm_by_channels",
        "subpixel_upsampling",
        "attention_shortcuts",
        "gluon_geglu",
        "short_attention_kernel",
    ),
}
"""Per path, the tricks that can be taken out one at a time (the first row of a path has them all)."""

DEFAULT_TAKEN_OUT = ("gluon_geglu", "short_attention_kernel", "group_norm_by_channels")
"""Taken out by default: the tricks under review (issue 19), so that the default run stays under 7 minutes."""


@dataclass(frozen=True)
class Config:
    """One measured configuration: a path and the trick left out (None = every trick)."""

    path: str
    without: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}" + (f" − {self.without}" if self.without else " (all tricks)")


def _group_norms_back(module: nn.Module) -> SpeedHandle:
    """Take out the GroupNorm-by-channels part of `keep_channels_last` (plain `nn.GroupNorm` again)."""
    swapped = [m for m in module.modules() if type(m) is ChannelsLastGroupNorm]
    for m in swapped:
        m.__class__ = nn.GroupNorm
    return SpeedHandle("GroupNorm by channels taken out", len(swapped))


def apply_tricks(models, cfg: Config, device: torch.device) -> list[SpeedHandle]:  # noqa: ANN001
    """Apply the configuration's tricks as the orbit stage does; returns their handles."""
    has = set(TRICKS[cfg.path]) - {cfg.without}
    nets = models.hot_networks()
    handles: list[SpeedHandle] = []
    cuda = device.type == "cuda"
    if "cuda_flags" in has or cfg.path == "compile":
        if cuda:
            handles.append(configure_cuda())
    # SV3D's loader always gives the UNet the attention shortcuts (with the short kernel); take them out here
    if "attention_shortcuts" not in has:
        from diffusers.models.attention_processor import AttnProcessor2_0

        handles.append(replace_attention_processors(models.unet, (ShortcutAttnProcessor,), AttnProcessor2_0()))
    elif "short_attention_kernel" not in has:
        handles.append(replace_attention_processors(models.unet, (ShortcutAttnProcessor,), MathShortAttnProcessor()))
    if "gluon_geglu" in has:
        handles += [use_fused_geglu(n) for n in nets]
    if cfg.path == "compile" and "compile" in has:
        for n in nets:
            if "subpixel_upsampling" in has:
                handles.append(use_subpixel_upsampling(n))
            if "channels_last_blocks" in has:
                handles.append(keep_channels_last(n))
                if "group_norm_by_channels" not in has:
                    handles.append(_group_norms_back(n))
            handles.append(compile_blocks(n))
    return handles


def bench_config(cfg: Config, args: argparse.Namespace, device: torch.device) -> dict:
    """Build, apply, warm up and time one configuration."""
    import gc

    torch._dynamo.reset()
    gc.collect()
    reset_peak(device)
    config = SV3DConfig.tiny() if args.tiny else SV3DConfig.full()
    dtype = torch.float32 if args.tiny else torch_dtype(args.dtype, "cuda")
    torch.manual_seed(0)
    models = build_models(config, "sv3d_p", device=device)  # shortcuts on, as `load_sv3d` gives them
    models.unet.to(dtype)
    models.image_encoder.to(dtype)
    handles = apply_tricks(models, cfg, device)
    pipe = SV3DPipeline(models, device=device)
    image = torch.rand(3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    orbit, scales = static_orbit(10.0), triangular_cfg_scales(config.num_frames)
    row: dict = {"config": cfg.name, "path": cfg.path, "without": cfg.without}
    row["applied"] = {h.name: h.count for h in handles}
    t0 = time.perf_counter()
    pipe(image, orbit, num_steps=args.warmup_steps, cfg=scales, seed=0)  # compiles, autotunes
    sync(device)
    row["warmup_s"] = round(time.perf_counter() - t0, 2)
    reset_peak(device)
    t0 = time.perf_counter()
    out = pipe(image, orbit, num_steps=args.steps, cfg=scales, seed=0)
    sync(device)
    row.update(
        stage_s=round(time.perf_counter() - t0, 4),
        sample_s=round(out.seconds["sample"], 4),
        steps=args.steps,
        peak_gib=None if peak_bytes(device) is None else round(peak_bytes(device) / 2**30, 3),
        finite=bool(torch.isfinite(out.frames).all()),
    )
    SpeedHandle.group("all", handles).remove()
    del pipe, models, out
    return row


def table(rows: list[dict]) -> str:
    """Markdown: per path, the all-tricks stage time, then each trick's gain (time without − time with)."""
    lines = ["| path | configuration | stage s | gain of the trick s | gain % of stage |", "|---|---|---|---|---|"]
    for path in TRICKS:
        base = next((r for r in rows if r["path"] == path and r["without"] is None and "stage_s" in r), None)
        for r in (r for r in rows if r["path"] == path):
            if "stage_s" not in r:
                lines.append(f"| {path} | {r['config']} | error: {r.get('error', '?')} | | |")
                continue
            gain = pct = ""
            if base is not None and r["without"] is not None:
                d = r["stage_s"] - base["stage_s"]
                gain, pct = f"{d:+.3f}", f"{100 * d / base['stage_s']:+.1f} %"
            lines.append(f"| {path} | {r['config']} | {r['stage_s']:.3f} | {gain} | {pct} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--paths", default="default,compile", help="comma-separated: " + ", ".join(TRICKS))
    p.add_argument(
        "--tricks",
        default=",".join(DEFAULT_TAKEN_OUT),
        help="comma-separated tricks to take out one at a time ('all' = every trick of each path)",
    )
    p.add_argument("--steps", type=int, default=50, help="Euler steps of the timed stage (SV3D's 50)")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed warm-up run (compiles)")
    p.add_argument(
        "--dtype", choices=("bf16", "fp16"), default=DEFAULT_CUDA_DTYPE, help="UNet and CLIP precision (the stage's default)"
    )
    p.add_argument("--tiny", action="store_true", help="tiny SV3D in fp32: a CPU smoke test of this script")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    paths = [s.strip() for s in args.paths.split(",") if s.strip()]
    for path in paths:
        if path not in TRICKS:
            p.error(f"unknown path {path!r}; choose from {', '.join(TRICKS)}")
    # tricks named explicitly run in the order given (cheap recompiles first while inductor's cache is warm)
    named = None if args.tricks == "all" else list(dict.fromkeys(t.strip() for t in args.tricks.split(",")))
    unknown = set(named or ()) - set(sum(TRICKS.values(), ()))
    if unknown:
        p.error(f"unknown trick(s) {sorted(unknown)}")
    configs = [
        Config(path, t)
        for path in paths
        for t in (None, *(TRICKS[path] if named is None else (t for t in named if t in TRICKS[path])))
    ]
    info = {
        "benchmark": "orbit speed tricks, leave-one-out (SV3D_p, random weights)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "gluon_geglu_kernel": gluon_geglu_runs(device),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": [],
    }
    for cfg in configs:
        print(f"[{cfg.name}] …", file=sys.stderr, flush=True)
        try:
            row = bench_config(cfg, args, device)
        except Exception as exc:  # one failing configuration must not lose the others
            row = {"config": cfg.name, "path": cfg.path, "without": cfg.without, "error": f"{type(exc).__name__}: {exc}"[:500]}
        done = row.get("stage_s", row.get("error"))
        print(f"[{cfg.name}] {done} (warm-up {row.get('warmup_s')} s)", file=sys.stderr, flush=True)
        info["rows"].append(row)
        if args.out:
            args.out.write_text(json.dumps(info, indent=2))
    dtype = "fp32 (tiny)" if args.tiny else args.dtype
    kernel = "Gluon GEGLU kernel" if info["gluon_geglu_kernel"] else "no Gluon GEGLU kernel (reference GEGLU)"
    print(f"\n{info['device']}, torch {info['torch']}, {args.steps} steps, {dtype}, {kernel}, {info['date']}\n")
    print(table(info["rows"]))
    return info["rows"]


if __name__ == "__main__":
    main()
