"""The options of `a3d batch`, alone: the command reads their defaults at start-up without loading the
batch machinery (`a3d_cli.batch.run` and its workers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BatchOptions:
    """Options of `a3d batch` (see `a3d batch --help` and docs/batch.md)."""

    manifest: Path | None = None
    """JSON Lines manifest, one job per line."""
    glob: str | None = None
    """Instead of a manifest: every file matching this pattern is a job."""
    prompt: str | None = None
    """With `glob`: the prompt of every asset without a line in `prompt_file`."""
    prompt_file: Path | None = None
    """With `glob`: `asset name<TAB>prompt` lines."""
    runs: Path = Path("a3d-runs")
    """Where run folders go (`RUNS/<input name>/`) and what a relative "out" is relative to."""
    results: Path | None = None
    """The results file (default RUNS/results.jsonl; RUNS/results.shard-I-of-N.jsonl for a shard)."""
    workers: int | None = None
    """Worker processes (per GPU with `gpus`); default 1 (per GPU)."""
    gpus: str | None = None
    """"all" or "0,1,…": one worker process per GPU (CUDA_VISIBLE_DEVICES each)."""
    compile: bool = True
    """The jobs' `--compile` default (a job's own "compile" wins)."""
    keep_models: bool = True
    """Workers keep the diffusion models they build for their later jobs (False: freed after each stage)."""
    retries: int = 0
    """Attempts after the first for failures that may pass (a3d's own, a dead worker, a locked run folder)."""
    shard: str | None = None
    """"I/N": run only shard I of N (default: the Slurm array task's, else everything)."""
    ray: str | None = None
    """"auto" or a Ray address: run the workers as Ray actors."""
    force: bool = False
    """Re-run every stage of every job."""
    common_args: tuple[str, ...] = ()
    """`a3d animate` options for every job (after `--` on the command line)."""
    status_every: float = 60.0
    """Seconds between status lines when stderr is not a terminal."""


__all__ = ["BatchOptions"]
