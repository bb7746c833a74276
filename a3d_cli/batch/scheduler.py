"""The local driver of a batch: worker processes fed from one queue, results recorded as they come.

Why a driver that hands out jobs one at a time (rather than a fixed split): assets differ in size, so a fixed
split leaves GPUs idle behind the slowest part. Here a worker gets its next job the moment it reports the
last one, so a slow asset holds up only its own worker.

The driver alone writes `results.jsonl` and talks to the display. It also watches its workers: a worker
that dies (killed for memory, a crash in native code) has its job recorded as failed (exit code 1, retried
with `--retries`) and is replaced while jobs remain.

Processes are started with "spawn" (CUDA cannot be forked), each with its own CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from a3d_cli.batch.manifest import Job
from a3d_cli.batch.results import FAILED, JobRecord
from a3d_cli.batch.worker import WorkerSpec, worker_main

POLL_S = 0.5
MAX_STARTUP_FAILURES = 3
STOP_GRACE_S = 20.0


class BatchDriverError(RuntimeError):
    """Workers keep dying before they can take a job (see their logs)."""


class Listener:
    """What the driver tells the display; every method may be left as is."""

    def worker_ready(self, worker: int) -> None: ...

    def job_started(self, worker: int, job: Job, attempt: int) -> None: ...

    def job_stage(self, worker: int, job: Job, description: str, done: int, total: int | None) -> None: ...

    def job_finished(self, worker: int | None, job: Job, record: JobRecord, final: bool) -> None: ...

    def tick(self) -> None: ...


@dataclass
class Outcome:
    """The final record of every job the driver ran (by job index)."""

    records: dict[int, JobRecord] = field(default_factory=dict)


def retry_or_record(
    job: Job, record: JobRecord, retries: int, pending: deque, outcome: Outcome, sink: Callable[[JobRecord], None]
) -> bool:
    """Queue the job again when its failure may pass and attempts remain; else record it. True when final."""
    if not record.ok and record.retryable and record.attempts <= retries:
        pending.append((job, record.attempts + 1))
        return False
    outcome.records[job.index] = record
    sink(record)
    return True


def _death_record(job: Job, attempt: int, spec: WorkerSpec, exitcode: int | None) -> JobRecord:
    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    hint = "Out of memory? Use fewer --workers per GPU, or a smaller --splat-count." if exitcode == -9 else None
    return JobRecord(
        job.source,
        job.run_dir,
        FAILED,
        1,
        job.log,
        error=f"the worker running this job died ({how}); see {spec.log}",
        hint=hint,
        attempts=attempt,
        worker=spec.worker,
        device=spec.device,
        retryable=True,
    )


def run_local(
    jobs: Sequence[Job],
    specs: Sequence[WorkerSpec],
    seed: int,
    retries: int,
    sink: Callable[[JobRecord], None],
    listener: Listener | None = None,
) -> Outcome:
    """Run `jobs` on local worker processes (one per `WorkerSpec`) until each has a final record.

    Args:
        sink: called once per job with its final record (the driver's results file).
        listener: progress events (the display).

    Raises:
        KeyboardInterrupt: after stopping the workers; jobs not finished are simply not recorded.
        BatchDriverError: workers die before taking any job, again and again.
    """
    listener = listener or Listener()
    ctx = mp.get_context("spawn")
    outbox = ctx.Queue()
    pending: deque[tuple[Job, int]] = deque((job, 1) for job in jobs)
    outcome = Outcome()
    by_index = {job.index: job for job in jobs}
    procs: dict[int, Any] = {}
    inboxes: dict[int, Any] = {}
    ready: set[int] = set()
    busy: dict[int, tuple[Job, int]] = {}
    startup_failures = 0

    def start(spec: WorkerSpec) -> None:
        inboxes[spec.worker] = ctx.Queue()
        proc = ctx.Process(target=worker_main, args=(spec, seed, inboxes[spec.worker], outbox), daemon=True)
        proc.start()
        procs[spec.worker] = proc

    spec_of = {s.worker: s for s in specs}
    for spec in specs[: max(1, min(len(specs), len(jobs)))]:
        start(spec)
    try:
        while pending or busy:
            for w in sorted(ready - set(busy)):  # hand out work to idle workers
                if not pending:
                    break
                job, attempt = pending.popleft()
                busy[w] = (job, attempt)
                inboxes[w].put((job, attempt))
            try:
                event = outbox.get(timeout=POLL_S)
            except queue.Empty:
                event = None
            if event is not None:
                kind, w = event[0], event[1]
                if kind == "ready":
                    ready.add(w)
                    listener.worker_ready(w)
                elif kind == "start":
                    listener.job_started(w, by_index[event[2]], event[3])
                elif kind == "stage":
                    listener.job_stage(w, by_index[event[2]], *event[3:])
                elif kind == "result":
                    job, _ = busy.pop(w)
                    record: JobRecord = event[3]
                    final = retry_or_record(job, record, retries, pending, outcome, sink)
                    listener.job_finished(w, job, record, final)
            for w, proc in list(procs.items()):  # dead workers: record their job, start a replacement
                if proc.is_alive() or not outbox.empty():
                    continue
                del procs[w]
                ready.discard(w)
                if w in busy:
                    job, attempt = busy.pop(w)
                    record = _death_record(job, attempt, spec_of[w], proc.exitcode)
                    final = retry_or_record(job, record, retries, pending, outcome, sink)
                    listener.job_finished(w, job, record, final)
                elif w not in ready:
                    startup_failures += 1
                if startup_failures >= MAX_STARTUP_FAILURES:
                    raise BatchDriverError(f"batch workers die while starting; see {spec_of[w].log}")
                if pending or busy:
                    start(spec_of[w])
            listener.tick()
    except BaseException:
        _stop(procs, inboxes, interrupt=True)
        raise
    _stop(procs, inboxes, interrupt=False)
    return outcome


def _stop(procs: dict[int, Any], inboxes: dict[int, Any], interrupt: bool) -> None:
    """Ask every worker to finish (interrupting the job it runs when `interrupt`), then end the ones that do
    not within the grace period. An interrupted job's stage is recorded as failed in its run folder and left
    without half-written files, like a Ctrl-C of `a3d animate`."""
    for w, proc in procs.items():
        try:
            inboxes[w].put(None)
        except (OSError, ValueError):
            pass
        if interrupt and proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs.values():
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs.values():
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)


__all__ = ["BatchDriverError", "Listener", "Outcome", "retry_or_record", "run_local"]
