"""What a batch shows while it runs, on stderr.

On a terminal: one rich display — a bar of finished jobs with the failures and the ETA, and one line per
worker with its current job and stage ("w1 cuda:1  fox  [3/6] reconstruct  120/300"). Failed jobs are printed
above it as they happen.

Elsewhere (a cluster job's log, a pipe): plain lines — one per finished job, and every `every_s` seconds
a status line with the counts and the ETA — so a log file stays readable and small.

With `quiet`, only failed jobs are printed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.text import Text

from a3d_cli.batch.manifest import Job
from a3d_cli.batch.results import SKIPPED, JobRecord
from a3d_cli.batch.scheduler import Listener
from a3d_cli.console import styled


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class BatchDisplay(Listener):
    """Counts jobs and shows them (rich on a terminal, plain lines otherwise)."""

    def __init__(
        self,
        total: int,
        labels: Sequence[str],
        console: Any,
        quiet: bool = False,
        every_s: float = 60.0,
        rich: bool | None = None,
    ) -> None:
        self.total, self.labels, self.console, self.quiet, self.every_s = total, list(labels), console, quiet, every_s
        self.rich = (console.is_terminal if rich is None else rich) and not quiet
        self.done = self.failed = self.skipped = 0
        self.running: dict[int, str] = {}
        self.start = time.monotonic()
        self._last_status = self.start
        self._bar: Any = None
        self._overall: Any = None
        self._workers: dict[int, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def __enter__(self) -> BatchDisplay:
        if self.rich:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}", markup=False),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._overall = self._bar.add_task("jobs", total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    # -- numbers ----------------------------------------------------------------------------------------------------

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (jobs that were already done count as instant)."""
        worked = self.done + self.failed
        if worked == 0:
            return None
        elapsed = time.monotonic() - self.start
        return elapsed / worked * (self.total - self.finished)

    def counts(self) -> str:
        eta = self.eta_s()
        parts = [f"{self.finished}/{self.total} finished", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        parts.append(f"{len(self.running)} running")
        if eta is not None and self.finished < self.total:
            parts.append(f"ETA {_clock(eta)}")
        return ", ".join(parts)

    # -- events -----------------------------------------------------------------------------------------------------

    def _label(self, worker: int | None) -> str:
        return self.labels[worker] if worker is not None and worker < len(self.labels) else f"w{worker}"

    def job_started(self, worker: int, job: Job, attempt: int) -> None:
        self.running[worker] = job.name
        if self._bar is not None:
            description = f"{self._label(worker)} {job.name}" + (f" (attempt {attempt})" if attempt > 1 else "")
            if worker in self._workers:
                self._bar.update(self._workers[worker], description=description, completed=0, total=None, info="")
            else:
                self._workers[worker] = self._bar.add_task(description, total=None, info="")

    def job_stage(self, worker: int, job: Job, description: str, done: int, total: int | None) -> None:
        if self._bar is not None and worker in self._workers:
            self._bar.update(
                self._workers[worker],
                description=f"{self._label(worker)} {job.name}",
                completed=done,
                total=total,
                info=description,
            )

    def job_finished(self, worker: int | None, job: Job, record: JobRecord, final: bool) -> None:
        if worker is not None:
            self.running.pop(worker, None)
        if not final:
            self._print(styled(("retrying", "yellow"), f" {job.name} ({job.source}): {record.error}"), always=False)
            return
        if record.ok:
            if record.status == SKIPPED:
                self.skipped += 1
            else:
                self.done += 1
            if not self.rich and not self.quiet:
                what = "already done" if record.status == SKIPPED else f"done in {record.seconds:.1f} s"
                self._print(f"a3d batch: [{self.finished}/{self.total}] {job.name} {what}", always=False)
        else:
            self.failed += 1
            self._print(
                styled(
                    ("failed", "bold red"),
                    f" [{self.finished}/{self.total}] {job.name} ({job.source}, exit code {record.exit_code}): "
                    f"{record.error}  log: {record.log}",
                ),
                always=True,
            )
        if self._bar is not None:
            self._bar.update(self._overall, completed=self.finished, info=self.counts())
            if worker in self._workers:
                self._bar.update(self._workers[worker], description=f"{self._label(worker)} idle", info="")

    def tick(self) -> None:
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._overall, info=self.counts())
        elif not self.quiet and now - self._last_status >= self.every_s:
            self._last_status = now
            self._print(f"a3d batch: {self.counts()}", always=False)

    def _print(self, message: str | Text, always: bool) -> None:
        if self.quiet and not always:
            return
        (self._bar.console if self._bar is not None else self.console).print(message, highlight=False)


__all__ = ["BatchDisplay"]
