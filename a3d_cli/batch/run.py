"""`a3d batch` from options to a finished batch: validate every job, take this shard, run the workers.

Order of work (nothing heavy happens before step 3):

1. the jobs: the manifest's lines (or `--glob`), each checked as `a3d animate` would check it; any bad line
   stops the batch before it starts (`ManifestError`, exit code 2);
2. this process's part: `--shard I/N` or the Slurm array task's slice (`a3d_cli.batch.shard`);
3. the workers: one process per GPU of `--gpus` (times `--workers`), or `--workers` processes on `--device`,
   or Ray actors with `--ray`; each job's final record goes to the results file as it finishes.

Exit codes of a batch (`BatchSummary.exit_code`): 0 every job done (or already done); 1 a job failed because of
a3d itself (or its worker died); 3 jobs failed for reasons the user can fix (their `error:` lines are in
results.jsonl); 2 the batch could not start (a bad manifest line, a bad option); 130 interrupted (Ctrl-C), 143
terminated (SIGTERM, e.g. a scheduler's time limit); both keep every finished job's record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a3d_cli.batch.manifest import Job, ManifestError, build_jobs, check_common_args, glob_specs, read_manifest
from a3d_cli.batch.options import BatchOptions
from a3d_cli.batch.results import SKIPPED, JobRecord, ResultsFile, batch_exit_code
from a3d_cli.batch.shard import Shard, parse_shard, select, shard_from_env
from a3d_cli.batch.worker import WorkerSpec
from a3d_cli.device import available_cpus
from a3d_cli.errors import DeviceError, OptionError


@dataclass
class BatchSummary:
    """What a batch did."""

    total: int
    records: list[JobRecord] = field(default_factory=list)
    results: Path | None = None
    shard: Shard | None = None
    builds: list[dict[str, int]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return batch_exit_code(self.records)

    def counts(self) -> dict[str, int]:
        failed = sum(not r.ok for r in self.records)
        skipped = sum(r.status == SKIPPED for r in self.records)
        return {"jobs": self.total, "done": len(self.records) - failed - skipped, "skipped": skipped, "failed": failed}

    def to_json(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "exit_code": self.exit_code,
            "results": None if self.results is None else str(self.results),
            "shard": None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}",
            "failures": [{"run_dir": r.run_dir, "source": r.source, "exit_code": r.exit_code, "error": r.error,
                          "log": r.log} for r in self.records if not r.ok],
        }


def check_options(opts: BatchOptions) -> None:
    """Reject option combinations that cannot work (OptionError, exit code 2)."""
    if (opts.manifest is None) == (opts.glob is None):
        raise OptionError("a3d batch needs a MANIFEST or --glob (one of them).",
                          hint="a3d batch jobs.jsonl, or a3d batch --glob 'assets/*.glb' --prompt-file prompts.txt")
    if opts.manifest is not None and (opts.prompt is not None or opts.prompt_file is not None):
        raise OptionError("--prompt and --prompt-file go with --glob; a manifest gives each job its prompt.")
    if opts.workers is not None and opts.workers < 1:
        raise OptionError(f"--workers must be >= 1, got {opts.workers}.")
    if opts.retries < 0:
        raise OptionError(f"--retries must be >= 0, got {opts.retries}.")
    if opts.ray is not None and opts.gpus is not None:
        raise OptionError("--gpus and --ray do not go together: Ray gives each actor its GPU.",
                          hint="Drop --gpus; --workers sets the number of actors.")
    if not (math.isfinite(opts.status_every) and opts.status_every > 0):  # `<= 0` alone cannot see NaN
        raise OptionError(f"--status-every must be a finite number of seconds > 0, got {opts.status_every}.")


def resolve_shard(opts: BatchOptions, env: dict[str, str] | None = None) -> Shard | None:
    """`--shard`, else the Slurm array task's shard, else None (everything)."""
    if opts.shard is not None:
        return parse_shard(opts.shard)
    return shard_from_env(os.environ if env is None else env)


def results_path(opts: BatchOptions, shard: Shard | None) -> Path:
    if opts.results is not None:
        return Path(opts.results).expanduser().absolute()
    name = "results.jsonl" if shard is None else f"results.shard-{shard[0]}-of-{shard[1]}.jsonl"
    return Path(opts.runs).expanduser().absolute() / name


def load_jobs(opts: BatchOptions, results: Path) -> list[Job]:
    """Every job of the batch, validated (all shards: a bad line anywhere stops every array task alike).

    Raises:
        ManifestError: one entry per bad line.
        OptionError / InputError: the options for every job do not parse; the manifest cannot be read.
    """
    check_common_args(opts.common_args)
    if opts.manifest is not None:
        specs, errors = read_manifest(opts.manifest)
    else:
        assert opts.glob is not None
        specs, errors = glob_specs(opts.glob, opts.prompt, opts.prompt_file)
    logs = results.parent / "logs"
    jobs, job_errors = build_jobs(
        specs, opts.runs, logs, opts.common_args, opts.compile, opts.force, reserved=(results, logs)
    )
    errors = sorted([*errors, *job_errors], key=lambda e: _source_order(e.source))
    if errors:
        raise ManifestError(errors)
    return jobs


def _source_order(source: str) -> tuple[str, int]:
    name, _, line = source.rpartition(":")
    return (name, int(line)) if line.isdigit() else (source, 0)


def visible_gpus(spec: str) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each worker GPU for `--gpus all|0,1,…` (indices into the GPUs this
    process sees, which an outer CUDA_VISIBLE_DEVICES, e.g. Slurm's, may already restrict)."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise DeviceError(f"--gpus {spec} was asked for, but this machine has no usable CUDA GPU.",
                          hint="Drop --gpus (the workers then run on --device, e.g. cpu).")
    outer = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    physical = outer[:count] if outer else [str(i) for i in range(count)]
    if spec.strip().lower() == "all":
        return physical
    try:
        wanted = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"--gpus {spec!r} is not `all` or a list like 0,1,3.") from None
    bad = [i for i in wanted if not 0 <= i < count]
    if bad or not wanted or len(set(wanted)) != len(wanted):
        raise DeviceError(f"--gpus {spec}: this machine has GPUs 0 … {count - 1} (each listed once).")
    return [physical[i] for i in wanted]


def gpu_shared(jobs: Sequence[Job]) -> list[Job]:
    """The jobs as run by workers that share a GPU: their sds stage keeps no VAE activations beyond what it must
    (`vae_keep=0`) and records no CUDA graph of its guided call (`cuda_graph=False`), since spare memory it sees
    may be what another worker's next stage needs. Result-neutral: finished stages stay up to date."""
    return [
        dataclasses.replace(j, options=dataclasses.replace(j.options, sds_vae_keep=0, sds_cuda_graph=False))
        for j in jobs
    ]


def worker_specs(opts: BatchOptions, device: str, logs: Path) -> list[WorkerSpec]:
    """The local worker processes: `--gpus` × `--workers`, or `--workers` on `device`."""
    specs: list[WorkerSpec] = []
    per = opts.workers or 1
    if opts.gpus is not None:
        for gpu in visible_gpus(opts.gpus):
            for _ in range(per):
                w = len(specs)
                specs.append(WorkerSpec(w, "cuda", {"CUDA_VISIBLE_DEVICES": gpu}, 0,
                                        str(logs / "workers" / f"worker-{w}.log"), f"w{w} gpu{gpu}", opts.keep_models))
        return specs
    # CPU workers share the CPUs this process may use; an explicit OMP_NUM_THREADS wins (0: torch reads it)
    threads = 0 if device != "cpu" or os.environ.get("OMP_NUM_THREADS", "").strip() else max(1, available_cpus() // per)
    for w in range(per):
        specs.append(WorkerSpec(w, device, {}, threads, str(logs / "workers" / f"worker-{w}.log"), f"w{w} {device}",
                                opts.keep_models))
    return specs


def run_batch(
    opts: BatchOptions, device: str, seed: int, listener_factory: Any = None, jobs: Sequence[Job] | None = None
) -> BatchSummary:
    """Validate, select this shard, run it, and leave one results line per job.

    Args:
        device: the `--device` spec ("auto", "cpu", "cuda", "cuda:N"); `--gpus` overrides it.
        seed: the global `--seed` of every job.
        listener_factory: (number of jobs, worker labels) → a context-managed `Listener` (the display).
        jobs: already validated jobs (skips loading them again).

    Raises:
        ManifestError / OptionError / DeviceError: before any job runs (exit code 2).
        KeyboardInterrupt: the batch was stopped; finished jobs are recorded.
    """
    from a3d_cli.batch.scheduler import Listener, run_local
    from a3d_cli.device import resolve_device

    check_options(opts)
    shard = resolve_shard(opts)
    results = results_path(opts, shard)
    all_jobs = list(jobs) if jobs is not None else load_jobs(opts, results)
    mine = select(all_jobs, shard)
    summary = BatchSummary(total=len(mine), results=results, shard=shard)
    if not mine:
        return summary
    sink_file = ResultsFile(results)

    def sink(record: JobRecord) -> None:
        sink_file.append(record)
        summary.records.append(record)

    if opts.ray is not None:
        from a3d_cli.batch.ray_backend import run_ray

        labels = [f"ray{w}" for w in range(opts.workers or 1)]
        display = listener_factory(len(mine), labels) if listener_factory else contextlib.nullcontext(Listener())
        try:
            with display as listener:
                _, summary.builds = run_ray(mine, opts.ray, device, opts.workers, seed, opts.retries, sink, listener,
                                             keep_models=opts.keep_models)
        finally:
            sink_file.compact()
        return summary
    resolved = "cuda" if opts.gpus is not None else resolve_device(device)
    if resolved.startswith("cuda") and (opts.workers or 1) > 1:
        mine = gpu_shared(mine)
    specs = worker_specs(opts, resolved, results.parent / "logs")
    display = listener_factory(len(mine), [s.label for s in specs]) if listener_factory else contextlib.nullcontext(Listener())
    try:
        with display as listener:
            run_local(mine, specs, seed, opts.retries, sink, listener)
    finally:
        sink_file.compact()
    return summary


__all__ = ["BatchOptions", "BatchSummary", "check_options", "gpu_shared", "load_jobs", "resolve_shard", "results_path",
           "run_batch", "visible_gpus", "worker_specs"]
