"""Is the GPU waiting for Python? GPU busy fraction and host time per step of `reconstruct` and `mvvideo`.

Both stages run thousands of small kernels, so on a slower host CPU they get slower although the GPU is
the same. For each *code tree* (this checkout, and optionally an older copy of `a3d_cli` to compare
against) and each stage, this script runs one child process that measures:

- the stage's wall time, unprofiled (`reconstruct`: the whole stage on the fox ground truth of
  `examples/make_ground_truth_motion.py`, reference preset by default, plus its held-out PSNR and
  vertex error so a speed change can be checked for equal results; `mvvideo`: the whole
  `generate_mvvideo` call at full size with random weights: encoders, 25 DDIM steps × 3 FreeInit passes
  × CFG, VAE decode);
- seconds per step, unprofiled (fit loop ÷ steps; sampling loop ÷ UNet calls);
- in profiled windows of steps (`torch.profiler`, CPU + CUDA activity; the window is bracketed by device
  synchronisations): the **GPU busy fraction** (union of kernel, copy and memset intervals ÷ window wall
  time), the GPU time per step, the **host time per step** (window wall minus the time spent blocked in
  CUDA synchronisation calls, per step), host synchronisations per step, kernel launches and CUDA-graph
  launches per step. `reconstruct` is profiled at several frame counts (its per-step work grows with the
  active frames; windows on both sides of each default graph bucket's edge, where a padded step's work
  jumps) on a compressed schedule of the same settings; the whole fit's busy fraction is
  estimated from the windows' GPU time per step, interpolated over the real schedule's frame counts,
  divided by the unprofiled fit time. Profiling itself slows the host, so the host figures are upper
  bounds and the windowed busy fractions lower bounds; the unprofiled times are the ones to quote.

Every child records the host CPU model (`/proc/cpuinfo`), the GPU, and torch/gsplat versions. A
reconstruct row also splits the stage's time into its phases (reading the video, masks, the fit's setup,
its graph recordings and its steps, scoring and writing, and the rest: the run folder's bookkeeping), from
the stage's own `seconds_per_phase`, `fit_seconds` and `cuda_graph_seconds` metrics; a second table
lists them.

Usage:
    # GPU, this checkout only
    python benchmarks/profile_stage_busy.py --out busy.json
    # before/after in one command: an older a3d_cli copied into .before/ (e.g. `git archive BASE a3d_cli | tar -x -C .before`)
    python benchmarks/profile_stage_busy.py --trees before=.before,after=. --out busy.json
    # what reconstruct's CUDA graphs alone buy: the same tree with and without them
    python benchmarks/profile_stage_busy.py --graphs off --out busy_nographs.json
    # reconstruct's graph buckets: one child per value (default = the tree's setting, exact = one recording
    # per frame count, or a comma list of frame counts); mvvideo with and without the fused GEGLU
    python benchmarks/profile_stage_busy.py --graph-frames default --graph-frames exact --geglu both --out busy.json
    # host-speed dependence without a second machine: each child also on one core shared with a busy loop
    python benchmarks/profile_stage_busy.py --stages reconstruct --host both --out busy_host.json
    # CPU smoke test (tiny sizes, quickstart preset, tiny MV-VDM)
    python benchmarks/profile_stage_busy.py --tiny --device cpu

A tree is a folder holding an `a3d_cli` package; its children import `a3d_cli` from there and everything
else (these benchmark helpers, the ground-truth example) from this checkout, so the older tree must offer
the same public calls (`fit_motion`, `reconstruct.run`, `generate_mvvideo`). Before any child runs, the
gsplat extension is built once (`a3d info --warmup` of this checkout) into one `TORCH_EXTENSIONS_DIR`
that every child shares. JSON goes to --out, rewritten after every child; a markdown table ends the run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

GPU_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})
SYNC_CALLS = frozenset(
    {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy", "cuStreamSynchronize",
     "cuCtxSynchronize", "cuEventSynchronize"}
)  # fmt: skip
KERNEL_LAUNCHES = frozenset(
    {"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchCooperativeKernel"}
)
GRAPH_LAUNCHES = frozenset({"cudaGraphLaunch", "cuGraphLaunch"})


# --- pure helpers (unit-tested) -------------------------------------------------------------------------


def cpu_model(cpuinfo: str | None = None) -> str:
    """The host CPU's model name and logical core count, from /proc/cpuinfo (`platform` elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.lower().startswith("model name")]
    if not names:
        return platform.processor() or platform.machine()
    return f"{names[0]} ({len(names)} logical cores)"


TOP_KERNELS = 25  # kernels listed per window, costliest first


def covered(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by the union of [start, end) intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def analyse_trace(trace: dict, wall_s: float, steps: int) -> dict:
    """Busy fraction and per-step host/GPU figures of one profiled window (a Chrome trace of torch.profiler).

    Args:
        trace: the parsed trace (`traceEvents`, times in µs).
        wall_s: the window's wall time (host clock, between synchronisations).
        steps: steps in the window.
    """
    gpu: list[tuple[float, float]] = []
    by_kernel: dict[str, list[float]] = {}  # name -> [total µs, calls]
    sync_us = 0.0
    syncs = launches = graphs = 0
    launch_ids: set[int] = set()  # correlation ids of the kernel launches the host made itself
    kernel_by_id: dict[int, str] = {}
    for e in trace.get("traceEvents", []):
        if e.get("ph") != "X":
            continue
        cat, name, dur = e.get("cat", ""), e.get("name", ""), float(e.get("dur", 0.0))
        correlation = (e.get("args") or {}).get("correlation")
        if cat in GPU_CATEGORIES:
            gpu.append((float(e["ts"]), float(e["ts"]) + dur))
            tally = by_kernel.setdefault(name[:100], [0.0, 0])
            tally[0] += dur
            tally[1] += 1
            if correlation is not None:
                kernel_by_id[int(correlation)] = name[:100]
        elif cat in ("cuda_runtime", "cuda_driver"):
            if name in SYNC_CALLS:
                syncs += 1
                sync_us += dur
            elif name in KERNEL_LAUNCHES:
                launches += 1
                if correlation is not None:
                    launch_ids.add(int(correlation))
            elif name in GRAPH_LAUNCHES:
                graphs += 1
    busy_s = covered(gpu) / 1e6
    eager: dict[str, int] = {}  # what the host launched outside the CUDA graphs, by kernel
    for i in launch_ids:
        eager[kernel_by_id.get(i, "?")] = eager.get(kernel_by_id.get(i, "?"), 0) + 1
    return {
        "steps": steps,
        "wall_ms_per_step": round(1e3 * wall_s / steps, 3),
        "gpu_ms_per_step": round(1e3 * busy_s / steps, 3),
        "gpu_busy_pct": round(100 * busy_s / wall_s, 1) if wall_s > 0 else None,
        "host_ms_per_step": round(1e3 * max(wall_s - sync_us / 1e6, 0.0) / steps, 3),
        "syncs_per_step": round(syncs / steps, 2),
        "kernel_launches_per_step": round(launches / steps, 1),
        "graph_launches_per_step": round(graphs / steps, 2),
        "device_ops_per_step": round(sum(c for _, c in by_kernel.values()) / steps, 1),
        "top_kernels": [  # where the GPU time goes: [name, ms per step, calls per step], costliest first
            [name, round(us / 1e3 / steps, 4), round(calls / steps, 2)]
            for name, (us, calls) in sorted(by_kernel.items(), key=lambda kv: -kv[1][0])[:TOP_KERNELS]
        ],
        "eager_kernels": [  # kernels the host launched itself (outside graphs): [name, calls per step]
            [name, round(calls / steps, 2)] for name, calls in sorted(eager.items(), key=lambda kv: -kv[1])[:TOP_KERNELS]
        ],
    }


def schedule_frames(steps: int, steps_per_frame: int, num_frames: int = 16) -> list[int]:
    """Active frame count at every step of the progressive schedule (`active_frames` without the subset)."""
    return [min(s // steps_per_frame, num_frames - 2) + 1 for s in range(steps)]


def interpolate(points: dict[int, float], x: int) -> float:
    """Piecewise-linear value at x through {x_i: y_i} (constant beyond the ends)."""
    xs = sorted(points)
    if x <= xs[0]:
        return points[xs[0]]
    if x >= xs[-1]:
        return points[xs[-1]]
    i = bisect_left(xs, x)
    if xs[i] == x:
        return points[x]
    x0, x1 = xs[i - 1], xs[i]
    return points[x0] + (points[x1] - points[x0]) * (x - x0) / (x1 - x0)


def row_label(row: dict) -> str:
    """The tree's name and, where set, the variant the child ran (graph buckets, GEGLU fusion)."""
    return f"{row['tree']} [{row['variant']}]" if row.get("variant") else row["tree"]


PHASES = ("inputs", "masks", "fit setup", "graph recording", "fit steps", "scoring and writing", "other")


def phase_split(row: dict) -> dict[str, float] | None:
    """reconstruct's total seconds by phase, from the stage's metrics (None where the tree records no phases).

    "fit setup" is the fit phase less the loop (field, optimiser, ARAP neighbours, targets to the device);
    "graph recording" is the loop's time recording graphs; "other" is the total less every phase (the run
    folder's lock, input digests and manifest).
    """
    phases, loop, total = row.get("seconds_per_phase"), row.get("loop_seconds"), row.get("total_seconds")
    if not phases or loop is None or total is None:
        return None
    graphs = row.get("cuda_graph_seconds") or 0.0
    fit = phases.get("fit", 0.0)
    split = {
        "inputs": phases.get("inputs", 0.0),
        "masks": phases.get("masks", 0.0),
        "fit setup": fit - loop,
        "graph recording": graphs,
        "fit steps": loop - graphs,
        "scoring and writing": phases.get("scoring_and_writing", 0.0),
    }
    split["other"] = total - sum(phases.values())
    return {k: round(v, 3) for k, v in split.items()}


def phase_markdown(rows: list[dict]) -> str:
    """Where reconstruct's total goes, one row per child that recorded its phases ("" when none did)."""
    lines = []
    for r in rows:
        split = phase_split(r) if r.get("stage") == "reconstruct" and "error" not in r else None
        if split is not None:
            recordings = r.get("cuda_graph_recordings")
            lines.append(f"| {row_label(r)} | {r['total_seconds']} | " + " | ".join(str(split[k]) for k in PHASES)
                         + f" | {recordings if recordings is not None else '-'} |")  # fmt: skip
    if not lines:
        return ""
    head = "| tree | total s | " + " | ".join(f"{k} s" for k in PHASES) + " | recordings |"
    failures = [f"{row_label(r)}: a recording failed, later steps ran eagerly: {r['cuda_graph_failure']}"
                for r in rows if r.get("cuda_graph_failure")]  # fmt: skip
    return "\n".join([head, "|" + "---|" * (len(PHASES) + 3), *lines, *(["", *failures] if failures else [])])


def markdown(rows: list[dict]) -> str:
    """The final table: one row per (tree, stage, window)."""
    head = ("| tree | stage | host CPU | total s | loop s | s / step | window | GPU busy % | GPU ms / step "
            "| host ms / step | syncs / step | launches / step (graphs) | quality |")  # fmt: skip
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        if "error" in r:
            lines.append(f"| {row_label(r)} | {r['stage']} | {r.get('cpu', '-')} | failed: {r['error'][:120]} |" + " |" * 9)
            continue
        q = r.get("quality") or {}
        quality = f"PSNR {q['heldout_psnr']} dB, vertex err {q['vertex_error_pct']} %" if "heldout_psnr" in q else "-"
        est = r.get("estimated_busy_pct")
        blank = {"label": "-", "gpu_busy_pct": "-", "gpu_ms_per_step": "-", "host_ms_per_step": "-", "syncs_per_step": "-",
                 "kernel_launches_per_step": "-", "graph_launches_per_step": "-"}  # fmt: skip
        for i, w in enumerate(r.get("windows") or [blank]):
            first = i == 0
            lines.append(
                f"| {row_label(r) if first else ''} | {r['stage'] if first else ''} | {r['cpu'] if first else ''} "
                f"| {r['total_seconds'] if first else ''} | {r['loop_seconds'] if first else ''} "
                f"| {r['seconds_per_step'] if first else ''} | {w['label']} | {w['gpu_busy_pct']} | {w['gpu_ms_per_step']} "
                f"| {w['host_ms_per_step']} | {w['syncs_per_step']} | {w['kernel_launches_per_step']} ({w['graph_launches_per_step']}) "
                f"| {quality if first else ''} |"
            )
        if est is not None:
            lines.append(f"| | | | | | | whole fit (estimated) | {est} | | | | | |")
    return "\n".join(lines)


# --- child side: one stage on one code tree ---------------------------------------------------------------


def _import_tree(code_root: Path) -> str:
    """Make `import a3d_cli` load the tree's copy; this checkout's benchmarks and examples stay importable."""
    sys.path.insert(0, str(code_root))
    for extra in (str(HERE), str(ROOT)):
        if extra not in sys.path:
            sys.path.append(extra)
    import a3d_cli

    _backfill_moved_modules()
    return str(Path(a3d_cli.__file__).resolve().parent)


# Modules this checkout's benchmark helpers import that an older tree keeps elsewhere (old name) or lacks
# (None: this checkout's file, a leaf module, is loaded under that name). Lets one script profile both trees.
_MOVED_MODULES: dict[str, str | None] = {
    "a3d_cli.models.speed": "a3d_cli.models",
    "a3d_cli.models.speed.acceleration": "a3d_cli.models.acceleration",
    "a3d_cli.models.speed.attention": "a3d_cli.models.attention",
    "a3d_cli.models.mvvdm.ddim": "a3d_cli.models.ddim",
    "a3d_cli.models.mvvdm.shape": None,
    "a3d_cli.run_layout": None,
    "a3d_cli.io.video_frames": None,
    "a3d_cli.gaussians.fit_targets": None,
}


# Functions those helpers import from a module an older tree has, but without them: taken from this checkout.
_MISSING_NAMES: dict[str, tuple[str, ...]] = {"a3d_cli.io.images": ("resize_square",)}


def _load_checkout_file(module: str, as_name: str):  # noqa: ANN202 - a module
    """This checkout's file of `module`, executed as a module named `as_name`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(as_name, ROOT / (module.replace(".", "/") + ".py"))
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def _backfill_moved_modules() -> None:
    """Register the older tree's module under each name it lacks (see `_MOVED_MODULES`, `_MISSING_NAMES`)."""
    import importlib
    import importlib.util

    for name, functions in _MISSING_NAMES.items():
        module = importlib.import_module(name)
        lacking = [f for f in functions if not hasattr(module, f)]
        if lacking:
            current = _load_checkout_file(name, f"_checkout_{name.replace('.', '_')}")
            for f in lacking:
                setattr(module, f, getattr(current, f))
    for name, old in _MOVED_MODULES.items():
        try:
            if importlib.util.find_spec(name) is not None:
                continue
        except ModuleNotFoundError:
            pass
        module = importlib.import_module(old) if old is not None else _load_checkout_file(name, name)
        sys.modules[name] = module
        parent, _, leaf = name.rpartition(".")
        setattr(sys.modules[parent], leaf, module)


def _environment(device: str) -> dict:
    import torch

    env = {"cpu": cpu_model(), "torch": torch.__version__, "python": platform.python_version()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    try:
        import gsplat

        env["gsplat"] = getattr(gsplat, "__version__", "?")
    except ImportError:
        env["gsplat"] = None
    return env


class _Window:
    """Profiles steps [start, end) of a loop whose hook is called after every step with the step index."""

    def __init__(self, label: str, start: int, end: int, device: str, trace_dir: Path) -> None:
        self.label, self.start, self.end, self.device, self.trace_dir = label, start, end, device, trace_dir
        self.result: dict | None = None
        self._prof = None
        self._t0 = 0.0

    def after_step(self, step: int) -> None:
        import torch
        from gpu_timing import sync

        if step + 1 == self.start:
            sync(self.device)
            acts = [torch.profiler.ProfilerActivity.CPU]
            if self.device.startswith("cuda"):
                acts.append(torch.profiler.ProfilerActivity.CUDA)
            self._prof = torch.profiler.profile(activities=acts)
            self._prof.start()
            self._t0 = time.perf_counter()
        elif step + 1 == self.end and self._prof is not None:
            sync(self.device)
            wall = time.perf_counter() - self._t0
            self._prof.stop()
            path = self.trace_dir / f"trace_{self.label.replace(' ', '_')}.json"
            self._prof.export_chrome_trace(str(path))
            self._prof = None
            self.result = {"label": self.label, **analyse_trace(json.loads(path.read_text()), wall, self.end - self.start)}
            path.unlink()


def child_reconstruct(args: argparse.Namespace) -> dict:
    """The reconstruct stage on the ground truth: timed run, quality, then profiled windows."""
    from dataclasses import replace

    import bench_reconstruct as br
    from gpu_timing import peak_bytes, reset_peak, sync

    from a3d_cli.gaussians import motion_fit
    from a3d_cli.gaussians.motion_io import load_motion
    from a3d_cli.gaussians.ply import read_ply
    from a3d_cli.run_layout import COARSE_MOTION, STATIC_PLY
    from a3d_cli.stages import reconstruct as stage
    from a3d_cli.stages.base import Runtime

    dev, work = args.device, Path(args.work)
    run_dir = work / f"run_{args.tag}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(Path(args.gt) / "run", run_dir)
    small = {"resolution": 32, "max_splats": 300} if args.tiny else {}
    # trees with the graphed step run it as --graphs says (on: "after" measures the graphs)
    fields = stage.ReconstructOptions.__dataclass_fields__
    graphs = {"cuda_graphs": args.graphs == "on"} if "cuda_graphs" in fields else {}
    buckets = graph_frame_counts(args.graph_frames)
    if buckets is not None:
        if "graph_frame_counts" not in fields:
            raise SystemExit(f"--graph-frames {args.graph_frames}: this tree has no graph_frame_counts")
        graphs["graph_frame_counts"] = buckets
    if args.whole_step != "default":
        if "graph_whole_step" not in fields:
            raise SystemExit(f"--whole-step {args.whole_step}: this tree has no graph_whole_step")
        graphs["graph_whole_step"] = args.whole_step == "on"
    opts = stage.ReconstructOptions(
        video=str(Path(args.gt) / "video"), preset=args.preset, steps=args.steps, preview=False, **small, **graphs
    )
    preset, settings = opts.resolve(dev)
    row: dict = {"preset": preset, "steps": settings.steps, "resolution": settings.resolution,
                 "graph_frame_counts": list(getattr(settings, "graph_frame_counts", ())) or None}  # fmt: skip
    train, cams, tg, mk = br.fit_inputs(Path(args.gt), run_dir, settings, dev, args.seed)
    row["fit_splats"] = len(train)
    # warm-up: gsplat load, library handles, allocator (and, where the tree records graphs, every frame count)
    motion_fit.fit_motion(train, cams, tg, mk, replace(settings, steps=20, steps_per_frame=1))
    sync(dev)
    reset_peak(dev)
    t0 = time.perf_counter()
    result = stage.run(run_dir, opts, Runtime(device=dev, seed=args.seed, force=True))
    sync(dev)
    row["total_seconds"] = round(time.perf_counter() - t0, 2)
    row["loop_seconds"] = result.metrics.get("fit_seconds")
    row["seconds_per_phase"] = result.metrics.get("seconds_per_phase")
    row["seconds_per_step"] = round(row["loop_seconds"] / settings.steps, 5) if row["loop_seconds"] else None
    row["cuda_graph_recordings"] = result.metrics.get("cuda_graph_recordings")
    row["cuda_graph_seconds"] = result.metrics.get("cuda_graph_seconds")
    row["cuda_graph_failure"] = result.metrics.get("cuda_graph_failure")
    row["cuda_graph_optimizer_replays"] = result.metrics.get("cuda_graph_optimizer_replays")
    row["tile_list_overflows"] = result.metrics.get("tile_list_overflows")
    row["phase_split"] = phase_split(row)
    peak = peak_bytes(dev)
    row["peak_memory_mib"] = None if peak is None else round(peak / 2**20, 1)
    static = read_ply(run_dir / STATIC_PLY)
    motion = load_motion(run_dir / COARSE_MOTION, static=static, device=dev).field
    row["quality"] = br.evaluate(motion, Path(args.gt), run_dir, dev)
    # profiled windows on a compressed schedule: the same per-step work at each frame count
    spf, per_step = args.window_stage, settings.frames_per_step

    def rendered(active: int) -> int:  # frames rendered per step (a subset with frames_per_step)
        return min(active, per_step) if per_step else active

    # the default graph buckets' edges (4|5, 8|9, 12|13): a padded step's GPU work jumps there, so the estimate
    # interpolates between measured points on each side of a jump
    counts = sorted({1, 4, 5, 8, 9, 12, 13, 15} if not args.tiny else {1, 15})
    windows = [
        _Window(f"F={rendered(f)}", (f - 1) * spf + args.window_skip, (f - 1) * spf + args.window_skip + args.window_steps, dev, work)
        for f in counts
    ]
    prof_settings = replace(settings, steps=14 * spf + args.window_skip + args.window_steps, steps_per_frame=spf)

    def hook(step: int, _field) -> None:
        for w in windows:
            w.after_step(step)

    motion_fit.fit_motion(train, cams, tg, mk, prof_settings, seed=args.seed, on_step=hook)
    row["windows"] = [w.result for w in windows if w.result is not None]
    gpu_ms = {int(w["label"][2:]): w["gpu_ms_per_step"] for w in row["windows"]}
    if gpu_ms and row["loop_seconds"]:
        frames = schedule_frames(settings.steps, settings.steps_per_frame)
        est = sum(interpolate(gpu_ms, rendered(f)) for f in frames) / 1e3
        row["estimated_gpu_seconds"] = round(est, 3)
        row["estimated_busy_pct"] = round(100 * est / row["loop_seconds"], 1)
    return row


def child_mvvideo(args: argparse.Namespace) -> dict:
    """`generate_mvvideo` at full size (random weights): timed run, then a profiled window of DDIM steps."""
    import inspect

    import bench_mvvideo as bm
    import torch
    from gpu_timing import gluon_geglu_runs, peak_bytes, reset_peak, sync
    from random_mvvdm import build_components

    from a3d_cli.models.freeinit import FreeInitConfig
    from a3d_cli.models.mvvdm import generate_mvvideo
    from a3d_cli.models.mvvdm.sampling import SamplingConfig
    from a3d_cli.models.speed.acceleration import accelerate
    from a3d_cli.render.cameras import mvvdm_cameras

    dev = args.device
    dtype = bm.DTYPES[args.mv_dtype]
    comp, size = build_components(dev, torch.float32 if args.tiny else dtype, tiny=args.tiny), bm.SIZE
    fused = args.geglu == "on"
    if hasattr(comp, "accelerate"):  # what the stage does without --compile (the fused GEGLU as --geglu says)
        report = comp.accelerate(dev, compile=False, fused_geglu=fused)
    elif "fused_geglu" in inspect.signature(accelerate).parameters:  # a tree whose stage leaves the GEGLUs alone
        report = accelerate(dev, [comp.unet], compile=False, fused_geglu=fused)
    else:
        report = accelerate(dev, [comp.unet], compile=False)
    fused_geglus = getattr(report, "fused_geglus", 0)
    # older trees may still record the guided UNet call as a CUDA graph: there it follows --graphs
    has_graph = "cuda_graph" in inspect.signature(generate_mvvideo).parameters
    graph = {"cuda_graph": args.graphs == "on"} if has_graph else {}
    views = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    c2w = mvvdm_cameras().c2w

    def generate(steps: int, iters: int, callback=None):
        cfg = SamplingConfig(steps=steps, guidance_scale=7.5, num_frames=16, freeinit=FreeInitConfig(iters=iters))
        return generate_mvvideo(comp, views, c2w, "a fox wags its tail", config=cfg,
                                generator=torch.Generator().manual_seed(0), callback=callback, **graph)  # fmt: skip

    generate(3, 1)  # warm-up
    sync(dev)
    reset_peak(dev)
    stamps: list = []  # CUDA events on the GPU's clock (the host may run ahead of it), else host times

    def stamp(_k: int, _i: int, _lat) -> None:
        if dev.startswith("cuda"):
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            stamps.append(event)
        else:
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    out = generate(args.mv_steps, args.mv_freeinit, stamp)
    sync(dev)
    row: dict = {"dtype": args.mv_dtype if not args.tiny else "fp32", "steps": args.mv_steps, "freeinit": args.mv_freeinit,
                 "fused_geglus": fused_geglus, "gluon_geglu_kernel": gluon_geglu_runs(dev, comp.dtype) if fused_geglus else False}  # fmt: skip
    row["total_seconds"] = round(time.perf_counter() - t0, 2)
    loop = None
    if len(stamps) > 1:
        loop = stamps[0].elapsed_time(stamps[-1]) / 1e3 if dev.startswith("cuda") else stamps[-1] - stamps[0]
    row["loop_seconds"] = None if loop is None else round(loop, 3)
    row["seconds_per_step"] = None if loop is None else round(loop / (len(stamps) - 1), 4)
    row["cuda_graph_replays"] = getattr(out, "graph_replays", None)  # None: a tree without mvvideo's graph
    peak = peak_bytes(dev)
    row["peak_memory_mib"] = None if peak is None else round(peak / 2**20, 1)
    window = _Window("DDIM steps", args.window_skip, args.window_skip + args.window_steps, dev, Path(args.work))
    generate(args.window_skip + args.window_steps + 1, 1, lambda _k, i, _lat: window.after_step(i))
    row["windows"] = [window.result] if window.result else []
    return row


def variant_name(stage: str, value: str) -> str:
    """A child's variant as the tables name it: "" for the stage's own setting, else what differs."""
    if value in ("", "default", "on"):
        return ""
    return f"frames {value}" if stage == "reconstruct" else f"geglu {value}"


def graph_frame_counts(value: str) -> tuple[int, ...] | None:
    """`--graph-frames` → `FitSettings.graph_frame_counts`: None = the tree's default, () = "exact", else the list."""
    if value == "default":
        return None
    if value == "exact":
        return ()
    return tuple(int(v) for v in value.split(","))


def child_main(args: argparse.Namespace) -> None:
    """Run one stage on one tree and write its row to --child-out."""
    where = _import_tree(Path(args.code_root).resolve())
    value = args.graph_frames if args.stage == "reconstruct" else args.geglu
    variant = variant_name(args.stage, value)
    if args.stage == "reconstruct" and args.whole_step != "default":
        variant = ", ".join(v for v in (variant, f"whole step {args.whole_step}") if v)
    row = {"tree": args.tag, "stage": args.stage, "variant": variant, "graphs": args.graphs, "a3d_cli": where,
           **_environment(args.device)}  # fmt: skip
    row.update(child_reconstruct(args) if args.stage == "reconstruct" else child_mvvideo(args))
    Path(args.child_out).write_text(json.dumps(row, indent=2))


# --- driver side ------------------------------------------------------------------------------------------


SLOWED_HOST = "host slowed"
"""Variant name of a child run on one CPU core shared with a busy loop (`--host slowed`)."""


@contextlib.contextmanager
def shared_core(spinners: int) -> Iterator[tuple[int, list[subprocess.Popen]]]:
    """One CPU core with `spinners` busy-looping processes pinned to it, for as long as the block runs.

    Why: a child pinned to that core gets about 1 / (spinners + 1) of it, which stands in for a host CPU that
    many times slower when no slower machine is at hand (Linux only). Yields (the core, the spinners).
    """
    core = min(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_pinned(core)) for _ in range(spinners)]
    try:
        yield core, procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _pinned(core: int | None) -> Callable[[], None] | None:
    """A `preexec_fn` that pins the new process to `core` (None: no pinning)."""
    return None if core is None else (lambda: os.sched_setaffinity(0, {core}))


def _run(cmd: list[str], env: dict, label: str, core: int | None = None) -> tuple[int, float, str]:
    """Run a child (pinned to `core` if given), streaming its output; returns (exit code, seconds, last lines)."""
    print(f"[{label}] {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, preexec_fn=_pinned(core))
    seconds = time.perf_counter() - t0
    tail = (proc.stdout + proc.stderr)[-4000:]
    print(tail if proc.returncode else f"[{label}] done in {seconds:.1f} s", flush=True)
    return proc.returncode, seconds, tail


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", default="after=.", help="comma list NAME=FOLDER of code trees holding a3d_cli")
    ap.add_argument("--stages", default="reconstruct,mvvideo", help="comma list: reconstruct, mvvideo")
    ap.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    ap.add_argument("--tiny", action="store_true", help="smoke test: tiny ground truth, quickstart, tiny MV-VDM")
    ap.add_argument("--graphs", default="on", choices=["on", "off"],
                    help="CUDA graphs in the trees that have them (reconstruct's step; mvvideo's guided call in older trees)")  # fmt: skip
    ap.add_argument("--graph-frames", action="append", default=None,
                    help="reconstruct's graph buckets, one child per use: default (the tree's), exact (one recording "
                         "per frame count) or a comma list such as 4,8,12,15 (default: default)")  # fmt: skip
    ap.add_argument("--whole-step", default="default", choices=["default", "on", "off", "both"],
                    help="reconstruct: the rasterizer inside the step's graph (FitSettings.graph_whole_step): the "
                         "tree's default, on, off, or both (one child each)")  # fmt: skip
    ap.add_argument("--geglu", default="on", choices=["on", "off", "both"],
                    help="mvvideo's fused GEGLU: on (the stage's setting), off, or both (one child each)")
    ap.add_argument("--host", default="normal", choices=["normal", "slowed", "both"],
                    help="slowed: each child on one CPU core shared with a busy loop (about half a core: a host "
                         "twice as slow); both: one child of each")  # fmt: skip
    ap.add_argument("--splats", type=int, default=None, help="ground-truth splats (default 20000; tiny 400)")
    ap.add_argument("--preset", default=None, help="reconstruct preset (default reference; tiny quickstart)")
    ap.add_argument("--steps", type=int, default=None, help="reconstruct steps override (default: the preset's)")
    ap.add_argument("--mv-dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--mv-steps", type=int, default=None, help="DDIM steps (default 25; tiny 4)")
    ap.add_argument("--mv-freeinit", type=int, default=None, help="FreeInit passes (default 3; tiny 1)")
    ap.add_argument("--window-steps", type=int, default=None, help="steps per profiled window (default 8; tiny 2)")
    ap.add_argument("--window-skip", type=int, default=None, help="steps before a window (default 4; tiny 1)")
    ap.add_argument("--window-stage", type=int, default=None, help="profiling schedule: steps per frame (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="ground truth and run folders (default: a temp folder)")
    ap.add_argument("--out", type=Path, default=None, help="write every row and the table as JSON here")
    # child mode (internal)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--code-root", help=argparse.SUPPRESS)
    ap.add_argument("--tag", help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.graph_frames = args.graph_frames or ["default"]
    for value in args.graph_frames:
        try:
            counts = graph_frame_counts(value)
        except ValueError:
            ap.error(f"--graph-frames {value!r}: give default, exact or a comma list of frame counts")
        if counts and not all(1 <= c <= 15 for c in counts):
            ap.error(f"--graph-frames {value!r}: frame counts lie in 1 … 15")
    tiny = args.tiny
    defaults = {"splats": 400 if tiny else 20_000, "preset": "quickstart" if tiny else "reference",
                "steps": 12 if tiny else None, "mv_steps": 4 if tiny else 25, "mv_freeinit": 1 if tiny else 3,
                "window_steps": 2 if tiny else 8, "window_skip": 1 if tiny else 4, "window_stage": 2 if tiny else 16}  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        args.graph_frames = args.graph_frames[0]
        child_main(args)
        return []

    work = args.work or Path(tempfile.mkdtemp(prefix="a3d_busy_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not env.get("TORCH_EXTENSIONS_DIR"):  # one gsplat build shared by every child and tree
        sys.path.insert(0, str(ROOT))
        from a3d_cli.kernels.gsplat_build import extensions_dir

        env["TORCH_EXTENSIONS_DIR"] = str(extensions_dir(env))
    report: dict = {"date": dt.date.today().isoformat(), "cpu": cpu_model(), "args": {k: str(v) for k, v in vars(args).items()},
                    "torch_extensions_dir": env["TORCH_EXTENSIONS_DIR"], "rows": []}  # fmt: skip

    def save() -> None:
        report["markdown"] = markdown(report["rows"])
        report["phases_markdown"] = phase_markdown(report["rows"])
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))

    py = sys.executable
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if args.device.startswith("cuda") and "reconstruct" in stages:
        rc, seconds, tail = _run([py, "-c", "from a3d_cli.cli import main; main()", "info", "--warmup"], env, "gsplat")
        report["gsplat_warmup"] = {"exit_code": rc, "seconds": round(seconds, 1), "output": tail[-600:]}
    gt = work / "gt"
    if "reconstruct" in stages and not (gt / "ground_truth.npz").is_file():
        cmd = [py, str(ROOT / "examples" / "make_ground_truth_motion.py"), "--out", str(gt), "--splats", str(args.splats),
               "--device", args.device]  # fmt: skip
        if tiny:
            cmd += ["--size", "64", "--max-vertices", "400", "--heldout", "2"]
        gt_env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
        rc, seconds, tail = _run(cmd, gt_env, "ground truth")  # the example against its own tree's a3d_cli
        report["ground_truth"] = {"exit_code": rc, "seconds": round(seconds, 1)}
        if rc:
            raise SystemExit(f"ground truth failed:\n{tail}")
    trees = [t.split("=", 1) for t in args.trees.split(",") if t.strip()]
    variants = {"reconstruct": [("--graph-frames", v) for v in args.graph_frames],
                "mvvideo": [("--geglu", v) for v in (["on", "off"] if args.geglu == "both" else [args.geglu])]}  # fmt: skip
    hosts = ["normal", "slowed"] if args.host == "both" else [args.host]
    wholes = ["off", "on"] if args.whole_step == "both" else [args.whole_step]
    for stage_name in stages:
        combos = itertools.product(trees, variants.get(stage_name, [("", "")]), hosts, wholes if stage_name == "reconstruct" else ["default"])
        for (tag, folder), (flag, value), host, whole in combos:
            name = (f"{tag}_{stage_name}" + (f"_{value.replace(',', '-')}" if flag else "") + ("_slowed" if host == "slowed" else "")
                    + ("" if whole == "default" else f"_whole-{whole}"))  # fmt: skip
            child_out = work / f"row_{name}.json"
            child_out.unlink(missing_ok=True)
            cmd = [py, str(Path(__file__).resolve()), "--child", "--stage", stage_name, "--code-root", str(Path(folder).resolve()),
                   "--tag", tag, "--gt", str(gt), "--child-out", str(child_out), "--work", str(work), "--device", args.device,
                   "--preset", args.preset, "--graphs", args.graphs, "--mv-dtype", args.mv_dtype, "--mv-steps", str(args.mv_steps),
                   "--mv-freeinit", str(args.mv_freeinit), "--window-steps", str(args.window_steps),
                   "--window-skip", str(args.window_skip), "--window-stage", str(args.window_stage), "--seed", str(args.seed),
                   "--whole-step", whole]  # fmt: skip
            if flag:
                cmd += [flag, value]
            if args.steps is not None:
                cmd += ["--steps", str(args.steps)]
            if tiny:
                cmd.append("--tiny")
            slowed = host == "slowed"
            label = (f"{tag} {stage_name}" + (f" {flag} {value}" if flag else "") + ("" if whole == "default" else f" whole step {whole}")
                     + (f" ({SLOWED_HOST})" if slowed else ""))  # fmt: skip
            with shared_core(1) if slowed else contextlib.nullcontext((None, [])) as (core, _spinners):
                rc, seconds, tail = _run(cmd, env, label, core)
            if rc or not child_out.is_file():
                row = {"tree": tag, "stage": stage_name, "variant": variant_name(stage_name, value), "cpu": report["cpu"], "error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {rc}", "log": tail}
            else:
                row = json.loads(child_out.read_text())
            if slowed:
                row["variant"] = ", ".join(v for v in (row.get("variant"), SLOWED_HOST) if v)
                row["host"] = f"one core (CPU {core}) shared with a busy loop"
            row["child_seconds"] = round(seconds, 1)
            report["rows"].append(row)
            save()
    save()
    print(markdown(report["rows"]))
    if report["phases_markdown"]:
        print("\nreconstruct, where the total goes:\n" + report["phases_markdown"])
    return report["rows"]


if __name__ == "__main__":
    main()
