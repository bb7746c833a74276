"""`a3d batch` against one `a3d animate` process per asset: seconds per asset, where the difference goes.

Both sides run the same jobs (the bundled fox, copied N times) through the real command line: the batch as
one `a3d batch` (worker processes, models built and compiled once per worker), the baseline as one
`a3d animate` process per asset, `--workers` of them at a time. Both write the same run folders and the
per-stage seconds of each job are read from them, so the table says where the time goes:

* per asset: wall seconds of the whole side / assets (and assets per hour per GPU);
* one-off costs per process or worker: the first job of a worker against its later ones, stage by stage
  (mvvideo and sds include building MV-VDM and, with --compile, compiling its blocks);
* process start: a separate process's wall time minus the seconds its stages report (interpreter, imports).

Modes:
* GPU (default): `--prompt` jobs through prepare → mvvideo → reconstruct → sds → mesh-animate → export with
  full-size MV-VDM networks of random weights. No real weights can be had here, so the script replaces the
  tiny random MV-VDM that `--tiny-model` builds with the full-size one (`random_mvvdm.build_components`),
  in this process and in every process it starts (spawned workers import this file as their main module).
  What this leaves out: reading real weights from disk (random initialisation on the GPU instead).
* `--tiny` (CPU): the weight-free `--video` path (the fox's ground-truth video), no diffusion model at all;
  it measures process start and the shared-queue scheduling.

On CUDA, gsplat's one-off build (once per machine) runs first as a warm-up; its seconds are recorded
(`gsplat_warmup_s`) and are in neither side's figures.

One side at a time: `--side batch` or `--side separate` measures only that side and writes its own JSON, so
each fits in a time-limited GPU session; `--combine BATCH_JSON SEPARATE_JSON` then builds the comparison from
the two (no GPU, nothing run). Each side records the state of inductor's on-disk cache at its start (cold:
nothing in it; warm: compiled kernels there), because a warm cache shortens `--compile` and so favours
whichever side finds it.

Usage:
    python benchmarks/bench_batch.py --jobs 4 --separate 2 --compile --out batch.json             # one GPU
    python benchmarks/bench_batch.py --side batch --jobs 2 --out b.json                            # one side
    python benchmarks/bench_batch.py --side separate --separate 1 --out s.json                     # the other
    python benchmarks/bench_batch.py --combine b.json s.json --out batch.json                      # compare
    python benchmarks/bench_batch.py --jobs 8 --gpus 0,1,2,3 --separate 0 --out batch4.json        # 4 GPUs
    python benchmarks/bench_batch.py --tiny --jobs 8 --workers 2 --out batch_cpu.json              # CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FULL_SIZE_ENV = "A3D_BENCH_FULL_SIZE_MVVDM"
"""Set (to the device) in every process of a GPU run: `--tiny-model` then builds the full-size MV-VDM."""


def _install_full_size_mvvdm(device: str) -> None:
    """Make `tiny_components` build the full-size random MV-VDM (benchmark only)."""
    import torch
    from random_mvvdm import build_components

    import a3d_cli.models.mvvdm.components as components

    components.tiny_components = lambda seed=0, config=None: build_components(device, torch.float16)


def empty_mp4(path: Path, frames: Tensor, fps: float = 8.0) -> dict[str, float | int]:
    """`io.video.write_mp4` without a video: an empty file, and the metadata the real one returns.

    The manifest records that metadata for each preview, so it stays well-formed.
    """
    Path(path).write_bytes(b"")
    count, height, width = (int(n) for n in frames.shape[:3])
    return {"frames": count, "fps": float(fps), "width": width + width % 2, "height": height + height % 2}


def _skip_previews_without_ffmpeg() -> None:
    """Where imageio-ffmpeg is missing (the lent GPU machine), write empty preview files (benchmark only)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        import a3d_cli.io.video as video

        video.write_mp4 = empty_mp4  # type: ignore[assignment]


if os.environ.get(FULL_SIZE_ENV):  # this process, and the batch workers that import this file as main
    _install_full_size_mvvdm(os.environ[FULL_SIZE_ENV])
    _skip_previews_without_ffmpeg()


def ray_setup() -> None:
    """Ray worker setup hook: importing this module applied the replacement (FULL_SIZE_ENV is set there)."""


def _init_ray_for_full_size(argv: list[str]) -> None:
    """With `--ray`, start Ray here so that its workers import this module (and build full-size models)."""
    import ray

    address = argv[argv.index("--ray") + 1]
    env_vars = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
        FULL_SIZE_ENV: os.environ[FULL_SIZE_ENV],
    }
    ray.init(
        address=None if address == "auto" else address,
        runtime_env={"env_vars": env_vars, "worker_process_setup_hook": "bench_batch.ray_setup"},
        include_dashboard=False,
        log_to_driver=False,
    )


def _run_cli(argv: list[str]) -> int:
    """`a3d ARGV` in this process (so the replacement above applies); returns the exit code."""
    from a3d_cli.cli import app

    if "--ray" in argv and os.environ.get(FULL_SIZE_ENV):
        _init_ray_for_full_size(argv)

    try:
        code = app(argv, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return code if isinstance(code, int) else 0


def _stage_seconds(run: Path) -> dict[str, float]:
    from a3d_cli.io.manifest import load_manifest

    return {k: float(v.get("seconds", 0.0)) for k, v in load_manifest(run)["stages"].items()}


def make_jobs(root: Path, count: int, tiny: bool, job_args: dict) -> Path:
    """count copies of the fox and a manifest with one job each."""
    fox = ROOT / "examples" / "assets" / "fox.glb"
    lines = []
    for i in range(count):
        shutil.copy(fox, root / f"fox{i:02d}.glb")
        job = {"input": f"fox{i:02d}.glb", **job_args}
        if not tiny:
            job["prompt"] = "a fox wags its tail"
        lines.append(json.dumps(job))
    (root / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    return root / "jobs.jsonl"


def animate_args(job: dict) -> list[str]:
    """The manifest job as `a3d animate` words."""
    words = [job["input"]]
    for key, value in job.items():
        if key == "input":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            words += [flag, str(value)]
    return words


def run_separate(root: Path, manifest: Path, count: int, parallel: int, device: str, env: dict) -> dict:
    """`count` jobs as separate `a3d animate` processes, `parallel` at a time; wall and stage seconds."""
    jobs = [json.loads(line) for line in manifest.read_text().splitlines()][:count]
    runs = root / "separate"
    proc_env = dict(env)
    if device == "cpu":  # the CPU threads a batch worker gets (`a3d batch --workers`), so only start-up differs
        proc_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    start = time.perf_counter()
    walls: list[float] = []
    queue = list(enumerate(jobs))
    active: list[tuple[subprocess.Popen, float, int]] = []
    while queue or active:
        while queue and len(active) < parallel:
            i, job = queue.pop(0)
            argv = ["--device", device, "--quiet", "animate", *animate_args(job), "-o", str(runs / f"job{i:02d}")]
            cmd = [sys.executable, str(Path(__file__).resolve()), "--cli", *argv]
            active.append((subprocess.Popen(cmd, cwd=root, env=proc_env), time.perf_counter(), i))
        time.sleep(0.1)
        for item in list(active):
            proc, t0, i = item
            if proc.poll() is not None:
                active.remove(item)
                if proc.returncode != 0:
                    raise SystemExit(f"a3d animate job {i} failed with exit code {proc.returncode}")
                walls.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    stages = [_stage_seconds(runs / f"job{i:02d}") for i in range(len(jobs))]
    return {
        "jobs": len(jobs),
        "wall_s": round(total, 2),
        "process_wall_s": [round(w, 2) for w in walls],
        "stages_s": stages,
    }


def run_batch_side(root: Path, manifest: Path, args: argparse.Namespace, env: dict) -> dict:
    argv = [
        "--device",
        args.device,
        "--quiet",
        "batch",
        str(manifest),
        "-o",
        str(root / "batch"),
        "--compile" if args.compile else "--no-compile",
    ]
    if args.gpus:
        argv += ["--gpus", args.gpus]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    if args.ray:
        argv += ["--ray", args.ray]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cli", *argv]
    start = time.perf_counter()
    code = subprocess.run(cmd, cwd=root, env=env).returncode
    total = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"a3d batch failed with exit code {code}")
    records = [json.loads(line) for line in (root / "batch" / "results.jsonl").read_text().splitlines()]
    return {"jobs": len(records), "wall_s": round(total, 2), "records": records}


def _by_worker(records: list[dict]) -> dict[int, list[dict]]:
    """The batch's job records per worker, in the order each worker finished them."""
    by_worker: dict[int, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["finished"]):
        by_worker.setdefault(r["worker"], []).append(r)
    return by_worker


def job_overheads(records: list[dict]) -> dict:
    """Seconds a job spent outside its stages (imports, model-free setup), first job of a worker vs later."""
    by_worker = _by_worker(records)
    first = [recs[0]["seconds"] - sum(s["seconds"] for s in recs[0]["stages"].values()) for recs in by_worker.values()]
    later = [
        r["seconds"] - sum(s["seconds"] for s in r["stages"].values()) for recs in by_worker.values() for r in recs[1:]
    ]
    return {
        "first_job_s": round(statistics.mean(first), 2),
        "later_jobs_s": round(statistics.mean(later), 2) if later else None,
    }


def one_offs(records: list[dict]) -> dict:
    """Per stage: first job of each worker minus the median of its later jobs (build, compile, warm-up)."""
    by_worker = _by_worker(records)
    out: dict[str, list[float]] = {}
    for recs in by_worker.values():
        if len(recs) < 2:
            continue
        for stage, first in recs[0]["stages"].items():
            later = [r["stages"][stage]["seconds"] for r in recs[1:] if stage in r["stages"]]
            out.setdefault(stage, []).append(first["seconds"] - statistics.median(later))
    return {k: round(statistics.mean(v), 2) for k, v in out.items()}


def inductor_cache_state() -> dict:
    """Where inductor's on-disk cache is now, and whether it holds anything: "cold" (no file) or "warm".

    The directory is `TORCHINDUCTOR_CACHE_DIR` when set, else torch's default; Triton's compiled kernels go
    under it too unless `TRITON_CACHE_DIR` is set.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    env_dir = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    path = Path(env_dir or default_cache_dir())
    existed = path.is_dir()
    has_files = existed and any(f.is_file() for f in path.rglob("*"))
    return {
        "dir": str(path),
        "from_env": bool(env_dir),
        "existed": existed,
        "non_empty": has_files,
        "state": "warm" if has_files else "cold",
    }


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def side_start(warmup_s: float | None) -> dict:
    """What a side records as it starts: the time, inductor's cache state and the gsplat warm-up it skipped."""
    return {"date": _now(), "inductor_cache": inductor_cache_state(), "gsplat_warmup_s": warmup_s}


def summarize_batch(batch: dict, gpus: int, cuda: bool) -> dict:
    """The batch side's figures from `run_batch_side`'s result."""
    records = batch["records"]
    per_asset = batch["wall_s"] / batch["jobs"]
    by_worker = _by_worker(records)
    later = [r["seconds"] for recs in by_worker.values() for r in recs[1:]]
    return {
        "jobs": batch["jobs"],
        "wall_s": batch["wall_s"],
        "seconds_per_asset": round(per_asset, 2),
        "assets_per_hour": round(3600 / per_asset, 1),
        "assets_per_hour_per_gpu": round(3600 / per_asset / gpus, 1) if cuda else None,
        "later_job_s": round(statistics.mean(later), 2) if later else None,
        "models_built": sum(sum(r.get("models_built", {}).values()) for r in records),
        "first_job_extra_s": one_offs(records),
        "outside_stages_s": job_overheads(records),
        "stage_seconds_mean": {
            k: round(statistics.mean(r["stages"][k]["seconds"] for r in records), 2) for k in records[0]["stages"]
        },
        "peak_memory_gib": max((r["peak_memory_bytes"] or 0) for r in records) / 2**30,
        "statuses": sorted({r["status"] for r in records}),
    }


def summarize_separate(separate: dict) -> dict:
    """The separate side's figures from `run_separate`'s result."""
    per_asset = separate["wall_s"] / separate["jobs"]
    stage_sums = [sum(s.values()) for s in separate["stages_s"]]
    starts = [w - s for w, s in zip(separate["process_wall_s"], stage_sums, strict=True)]
    return {
        "jobs": separate["jobs"],
        "wall_s": separate["wall_s"],
        "seconds_per_asset": round(per_asset, 2),
        "assets_per_hour": round(3600 / per_asset, 1),
        "process_start_s": round(statistics.mean(starts), 2),
        "stage_seconds_mean": {
            k: round(statistics.mean(s[k] for s in separate["stages_s"]), 2) for k in separate["stages_s"][0]
        },
    }


def compare(result: dict) -> dict:
    """Add the comparison (per-asset ratio, each side's inductor-cache state) to a result with both sides."""
    batch, separate = result["batch"], result["separate"]
    states = {"batch": batch["inductor_cache"]["state"], "separate": separate["inductor_cache"]["state"]}
    result["batch_over_separate"] = round(batch["seconds_per_asset"] / separate["seconds_per_asset"], 3)
    result["inductor_cache_at_start"] = states
    if result["compile"] and states["batch"] != states["separate"]:
        warm = "batch" if states["batch"] == "warm" else "separate"
        result["cache_note"] = f"only the {warm} side found a warm inductor cache: the comparison favours it"
    return result


MUST_MATCH = ("device", "torch", "compile", "job_options")
"""What two one-side results must share to be compared."""


def _comparable(result: dict, key: str) -> object:
    """`result[key]`; of the job options, all but the `--video` path (a temporary folder of each run)."""
    value = result[key]
    return {k: v for k, v in value.items() if k != "video"} if key == "job_options" else value


def combine(batch_result: dict, separate_result: dict) -> dict:
    """One comparison from two one-side results: the batch side of the first, the separate side of the second.

    Raises:
        ValueError: a side is missing, or the two ran on different devices, torch or job options.
    """
    for which, source, side in (("first", batch_result, "batch"), ("second", separate_result, "separate")):
        if side not in source:
            raise ValueError(f"the {which} JSON has no {side} side (--combine BATCH_JSON SEPARATE_JSON)")
    for key in MUST_MATCH:
        a, b = _comparable(batch_result, key), _comparable(separate_result, key)
        if a != b:
            raise ValueError(f"the two sides differ in {key}: {a!r} vs {b!r}")
    result = {k: batch_result[k] for k in ("benchmark", "gpus", *MUST_MATCH)}
    result.update(date=_now(), side="combined", batch=batch_result["batch"], separate=separate_result["separate"])
    return compare(result)


def print_table(result: dict) -> None:
    """The result as a short table (then the JSON)."""
    sides = [s for s in ("batch", "separate") if s in result]
    rows = [
        ("jobs", "jobs"),
        ("wall s", "wall_s"),
        ("seconds per asset", "seconds_per_asset"),
        ("assets per hour", "assets_per_hour"),
        ("inductor cache at start", "inductor_cache"),
        ("gsplat warm-up s (not in the figures)", "gsplat_warmup_s"),
    ]
    print(f"{'':40}" + "".join(f"{s:>14}" for s in sides))
    for label, key in rows:
        cells = [result[s][key] for s in sides]
        cells = [c["state"] if isinstance(c, dict) else c for c in cells]
        print(f"{label:40}" + "".join(f"{'–' if c is None else c!s:>14}" for c in cells))
    if "batch_over_separate" in result:
        print(f"batch / separate, seconds per asset: {result['batch_over_separate']}")
    if "cache_note" in result:
        print(f"note: {result['cache_note']}")
    print(json.dumps(result, indent=2))


def finish(result: dict, out: Path | None) -> None:
    """Print the result and write it to `out`."""
    print_table(result)
    if out:
        out.write_text(json.dumps(result, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--side", choices=("batch", "separate", "both"), default="both", help="which side to measure")
    ap.add_argument("--jobs", type=int, default=4, help="assets in the batch")
    ap.add_argument("--separate", type=int, default=2, help="assets run as separate processes (0: skip)")
    ap.add_argument(
        "--workers", type=int, default=None, help="workers (per GPU with --gpus); separate processes at a time"
    )
    ap.add_argument("--gpus", default=None, help="a3d batch --gpus (all or 0,1,…)")
    ap.add_argument("--ray", default=None, help="a3d batch --ray (auto or an address)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--freeinit-iters", type=int, default=1)
    ap.add_argument("--sds-steps", type=int, default=20)
    ap.add_argument("--reconstruct-steps", type=int, default=None)
    ap.add_argument("--splat-count", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="CPU: the weight-free --video path, no diffusion model")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the run folders")
    ap.add_argument(
        "--combine",
        nargs=2,
        type=Path,
        default=None,
        metavar=("BATCH_JSON", "SEPARATE_JSON"),
        help="run nothing: compare the batch side of one result with the separate side of another",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    if args.combine:
        batch_json, separate_json = (json.loads(path.read_text()) for path in args.combine)
        try:
            result = combine(batch_json, separate_json)
        except ValueError as exc:
            ap.error(str(exc))
        finish(result, args.out)
        return
    run_batch = args.side in ("batch", "both")
    run_sep = args.side == "separate" or (args.side == "both" and args.separate > 0)
    if args.side == "separate" and args.separate < 1:
        ap.error("--side separate needs --separate N (N ≥ 1)")

    import torch

    if args.tiny:
        args.device = "cpu"
    cuda = args.device.startswith("cuda")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    root = Path(tempfile.mkdtemp(prefix="bench_batch_")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    job_args: dict = {}
    if args.tiny:
        gt = root / "gt"
        splats = args.splat_count or 500
        gt_cmd = [sys.executable, str(ROOT / "examples" / "make_ground_truth_motion.py"), "--out", str(gt)]
        gt_cmd += ["--splats", str(splats), "--device", "cpu"]
        subprocess.run(gt_cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        job_args = {
            "video": str(gt / "video"),
            "splat_count": splats,
            "reconstruct_steps": args.reconstruct_steps or 100,
            "resolution": 64,
            "preview_size": 64,
        }
    else:
        env[FULL_SIZE_ENV] = args.device
        job_args = {"tiny_model": True, "freeinit_iters": args.freeinit_iters, "sds_steps": args.sds_steps}
        if args.reconstruct_steps is not None:
            job_args["reconstruct_steps"] = args.reconstruct_steps
        if args.splat_count is not None:
            job_args["splat_count"] = args.splat_count
    job_args["compile"] = args.compile
    manifest = make_jobs(root, args.jobs if run_batch else args.separate, args.tiny, job_args)  # separate: its first N
    gpus = 1
    if args.gpus:
        gpus = torch.cuda.device_count() if args.gpus == "all" else len(args.gpus.split(","))
    parallel = args.workers or 1

    warmup_s = None
    if cuda:  # gsplat's one-off CUDA build (once per machine) must not land in either side's figures
        print("warm-up: a3d prepare (builds gsplat once) …", flush=True)
        warm = [sys.executable, str(Path(__file__).resolve()), "--cli", "--device", args.device, "--quiet"]
        warm += ["prepare", str(root / "fox00.glb"), "-o", str(root / "warmup")]
        t0 = time.perf_counter()
        subprocess.run(warm, cwd=root, env=env, check=True)
        warmup_s = round(time.perf_counter() - t0, 2)
    result: dict = {
        "benchmark": "a3d batch vs separate a3d animate processes",
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores)",
        "gpus": gpus if cuda else 0,
        "torch": torch.__version__,
        "compile": args.compile,
        "job_options": job_args,
        "date": _now(),
        "side": args.side,
    }
    if run_batch:
        start = side_start(warmup_s)
        print(f"batch: {args.jobs} jobs (inductor cache {start['inductor_cache']['state']}) …", flush=True)
        batch = run_batch_side(root, manifest, args, env)
        print(
            f"batch: {batch['wall_s']} s for {batch['jobs']} jobs; per job (s): "
            + ", ".join(f"{r['seconds']:.1f} (w{r['worker']})" for r in batch["records"]),
            flush=True,
        )
        result["batch"] = {**summarize_batch(batch, gpus, cuda), **start}
    if run_sep:
        start = side_start(warmup_s)
        print(
            f"separate processes: {args.separate} jobs, {parallel} at a time "
            f"(inductor cache {start['inductor_cache']['state']}) …",
            flush=True,
        )
        separate = run_separate(root, manifest, args.separate, parallel, args.device, env)
        result["separate"] = {**summarize_separate(separate), **start}
    if run_batch and run_sep:
        compare(result)
    finish(result, args.out)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cli":
        raise SystemExit(_run_cli(sys.argv[2:]))
    main()
