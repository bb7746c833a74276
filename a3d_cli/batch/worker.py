"""A batch worker: runs jobs one after another through `a3d animate`'s chain, models built once.

`JobRunner` is the worker's whole logic, shared by the local worker processes (`worker_main`, fed by the
scheduler's queue) and the Ray actors (`a3d_cli.batch.ray_backend`):

* each job is `a3d_cli.stages.animate.run` on the job's run folder, so the run-folder contract (lock,
  skip-if-done, resume, atomic outputs, the manifest) is exactly `a3d animate`'s;
* the runner's `ModelCache` is active around every job (`a3d_cli.models.cache`), so each diffusion model,
  with its compiled blocks, is built once per worker and reused by every later job;
* a failure stays inside the job: it becomes a failed `JobRecord` (the `error:` line, its hint, the exit code
  `a3d animate` would return) and the worker takes the next job. The job's log file gets its progress lines,
  notices, everything the process printed meanwhile (with `capture_output`) and, for a3d's own failures, the
  traceback.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from a3d_cli.batch.manifest import Job
from a3d_cli.batch.results import DONE, FAILED, SKIPPED, JobRecord
from a3d_cli.errors import A3DError, RunLockedError, Terminated, from_os_error
from a3d_cli.progress import Progress

Notify = Callable[[str, int, int | None], None]
"""(phase description, steps done, steps in the phase or None) of the running job."""

DELIVERABLE_STAGES = ("mesh-animate", "export")
"""Stages whose outputs a job's record lists (the animated GLB, the frame PLYs, the preview)."""

NOTIFY_EVERY_S = 0.5


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class JobProgress(Progress):
    """The progress sink of one job: phases and notices go to its log, live steps to `notify` (throttled)."""

    def __init__(self, log: TextIO, notify: Notify | None = None) -> None:
        self.log_file, self.notify = log, notify
        self.description, self.completed, self.total = "", 0, None
        self._last = 0.0

    def _write(self, line: str) -> None:
        self.log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self.log_file.flush()

    def _send(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.notify is not None and (force or now - self._last >= NOTIFY_EVERY_S):
            self._last = now
            self.notify(self.description, self.completed, self.total)

    def start(self, description: str, total: int | None = None) -> None:
        self.description, self.completed, self.total = description, 0, total
        self._write(description + (f" ({total} steps)" if total else ""))
        self._send(force=True)

    def update(self, advance: int = 1, **fields: float) -> None:
        self.completed += advance
        self._send()

    def log(self, message: str) -> None:
        self._write(f"· {message}")


@contextlib.contextmanager
def _output_into(log: TextIO) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) into `log` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@dataclass
class JobRunner:
    """Runs jobs in this process with one model cache for all of them.

    Attributes:
        device: resolved device of this worker ("cpu", "cuda").
        seed: the batch's `--seed`.
        worker: this worker's number (recorded with each job).
        capture_output: send the process's stdout/stderr into the job's log while it runs (worker processes).
        keep_models: keep the diffusion models between jobs (`--keep-models`); False frees each after its stage.
    """

    device: str = "cpu"
    seed: int = 0
    worker: int = 0
    capture_output: bool = False
    keep_models: bool = True
    cache: Any = field(default=None)

    def __post_init__(self) -> None:
        from a3d_cli.models.cache import ModelCache

        if self.cache is None:
            self.cache = ModelCache(keep=self.keep_models)

    def run(self, job: Job, attempt: int = 1, notify: Notify | None = None) -> JobRecord:
        """Run one job to a `JobRecord`; only KeyboardInterrupt (and SystemExit) escape."""
        from a3d_cli.models.cache import using_model_cache
        from a3d_cli.stages import animate
        from a3d_cli.stages.base import Runtime

        log_path = Path(job.log)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        record = JobRecord(job.source, job.run_dir, FAILED, 1, str(log_path), attempts=attempt)
        record.worker, record.device = self.worker, self.device
        builds_before = dict(self.cache.builds)
        start = time.perf_counter()
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"\n=== {_now()} {job.source} → {job.run_dir} (attempt {attempt}, worker {self.worker}, {self.device})\n")
            log.flush()
            progress = JobProgress(log, notify)
            rt = Runtime(device=self.device, seed=self.seed, force=job.force, progress=progress)
            capture = _output_into(log) if self.capture_output else contextlib.nullcontext()
            try:
                with capture, using_model_cache(self.cache):
                    result = animate.run(Path(job.run_dir), job.options, rt)
            except A3DError as exc:
                record.exit_code, record.error, record.hint = exc.exit_code, exc.message, exc.hint
                record.retryable = exc.exit_code != 2 or isinstance(exc, RunLockedError)
            except Exception as exc:  # a failure of a3d itself (or a full disk): recorded, the worker goes on
                mapped = from_os_error(exc) if isinstance(exc, OSError) else None
                if mapped is not None:  # a full disk, a quota, a read-only folder: the user's to fix
                    record.exit_code, record.error, record.hint = mapped.exit_code, mapped.message, mapped.hint
                    record.retryable = False
                else:
                    record.exit_code, record.error = 1, f"a3d failed unexpectedly: {type(exc).__name__}: {exc}"
                    record.retryable = True
                    log.write(traceback.format_exc())
            else:
                results = result.results
                record.status = SKIPPED if results and all(r.skipped for r in results) else DONE
                record.exit_code = 0
                record.stages = {
                    r.stage: {"seconds": round(r.seconds, 3), "skipped": r.skipped, "peak_memory_bytes": r.peak_memory_bytes}
                    for r in results
                }
                peaks = [r.peak_memory_bytes for r in results if not r.skipped and r.peak_memory_bytes is not None]
                record.peak_memory_bytes = max(peaks) if peaks else None
                record.outputs = [str(p) for r in results if r.stage in DELIVERABLE_STAGES for p in r.outputs]
            record.seconds = round(time.perf_counter() - start, 3)
            record.finished = _now()
            record.models_built = {
                name: n - builds_before.get(name, 0) for name, n in self.cache.builds.items() if n > builds_before.get(name, 0)
            }
            if record.ok:
                log.write(f"{record.status} in {record.seconds:.1f} s\n")
            else:
                log.write(f"error: {record.error}\n" + (f"hint: {record.hint}\n" if record.hint else ""))
                log.write(f"failed with exit code {record.exit_code} after {record.seconds:.1f} s\n")
        return record


def _exit_with_parent() -> None:
    """End this worker as soon as its driver is gone (killed with SIGKILL, say): an orphan would hold a run
    folder's lock and keep a GPU busy for a batch nobody records. On Linux the kernel does it at once
    (PR_SET_PDEATHSIG); elsewhere a thread checks every second."""
    import threading

    parent = os.getppid()
    if sys.platform.startswith("linux"):  # the kernel kills us the moment the driver dies
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it died before that was in place
            os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="a3d-batch-parent-watch", daemon=True).start()


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one local worker process.

    Attributes:
        worker: its number.
        device: the device string its jobs use ("cuda" when `env` pins one GPU with CUDA_VISIBLE_DEVICES).
        env: environment variables set before torch is imported (CUDA_VISIBLE_DEVICES).
        threads: CPU threads for torch (0: torch's default).
        log: the worker's own log (what it prints between jobs, e.g. a crash while starting).
        label: how displays name it ("w0 cuda:3").
        keep_models: keep the diffusion models between jobs (see `JobRunner`).
    """

    worker: int
    device: str
    env: dict[str, str]
    threads: int
    log: str
    label: str
    keep_models: bool = True


def sigterm_as_interrupt() -> None:
    """In this (worker) process, SIGTERM raises `Terminated`, a KeyboardInterrupt: a scheduler's time limit or
    `scancel` then stops the job's stage as Ctrl-C does (`failed: interrupted` recorded, staging cleaned)."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def worker_main(spec: WorkerSpec, seed: int, inbox: Any, outbox: Any) -> None:
    """A worker process: take (job, attempt) from `inbox` until None, put events on `outbox`.

    Events: ("ready", worker), ("start", worker, index, attempt), ("stage", worker, index, description,
    done, total), ("result", worker, index, JobRecord).
    """
    os.environ.update(spec.env)  # before torch is imported in this process
    _exit_with_parent()
    sigterm_as_interrupt()
    Path(spec.log).parent.mkdir(parents=True, exist_ok=True)
    try:  # an interrupt at any point, imports included, ends the worker quietly
        with open(spec.log, "a", encoding="utf-8") as own_log, _output_into(own_log):
            import torch

            if spec.threads:
                torch.set_num_threads(spec.threads)
            runner = JobRunner(device=spec.device, seed=seed, worker=spec.worker, capture_output=True,
                               keep_models=spec.keep_models)
            outbox.put(("ready", spec.worker))
            while (item := inbox.get()) is not None:
                job, attempt = item
                outbox.put(("start", spec.worker, job.index, attempt))

                def notify(description: str, done: int, total: int | None, index: int = job.index) -> None:
                    outbox.put(("stage", spec.worker, index, description, done, total))

                record = runner.run(job, attempt, notify)
                outbox.put(("result", spec.worker, job.index, record))
    except KeyboardInterrupt:
        pass  # the driver is stopping the batch; the run folders are consistent (atomic stages)


__all__ = ["DELIVERABLE_STAGES", "JobProgress", "JobRunner", "WorkerSpec", "sigterm_as_interrupt", "worker_main"]
