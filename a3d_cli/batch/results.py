"""`results.jsonl`: one JSON line per job of a batch — status, outputs, seconds per stage, peak memory.

The batch's driver writes it (workers send their results back). While the batch runs, each finished job is
appended as one line, flushed and synced, so a killed batch leaves every finished job on record. When the
batch ends the file is rewritten atomically with one line per job (the latest record of a run folder wins,
earlier batches' jobs are kept), in the order they were first recorded. Both happen under an exclusive
`flock` on the file (`a3d_cli.io.runlock.locked_file`), so batches sharing one results file lose no line.

A line (`JobRecord.to_json`):

    {"source": "jobs.jsonl:3", "run_dir": "/abs/runs/fox", "status": "done" | "skipped" | "failed",
     "exit_code": 0, "error": null, "hint": null, "log": "/abs/runs/logs/fox.log", "attempts": 1,
     "worker": 0, "device": "cuda", "seconds": 81.2, "stages": {"prepare": {"seconds": 2.1, "skipped": false,
     "peak_memory_bytes": 123}, ...}, "peak_memory_bytes": 9876543210, "outputs": ["/abs/runs/fox/export/..."],
     "models_built": {"mvvdm": 1}, "finished": "2026-12-05T06:00:00+00:00"}

"skipped" means every stage was already done (nothing ran); `models_built` counts the models this job had to
build (a worker builds each once, so later jobs of the same worker show none); "failed" carries the `error:` line, its `hint:`,
and the exit code `a3d animate` would have returned (2 for a problem the user can fix, 1 for a failure of a3d
itself or a worker that died).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from a3d_cli.io.atomic import atomic_write_text
from a3d_cli.io.runlock import locked_file

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class JobRecord:
    """What happened to one job (see the module docstring for the JSON form)."""

    source: str
    run_dir: str
    status: str
    exit_code: int
    log: str
    error: str | None = None
    hint: str | None = None
    attempts: int = 1
    worker: int | None = None
    device: str | None = None
    seconds: float = 0.0
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    outputs: list[str] = field(default_factory=list)
    models_built: dict[str, int] = field(default_factory=dict)
    finished: str | None = None
    retryable: bool = False
    """Whether trying again may help (a3d's own failures, a dead worker, a locked run folder); not written."""

    @property
    def ok(self) -> bool:
        return self.status in (DONE, SKIPPED)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("retryable")
        return data


class ResultsFile:
    """Appends job records as they finish and compacts the file to one line per job at the end."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: JobRecord) -> None:
        """Add one line, flushed and synced, under the file's lock (one `write`, so a reader never sees half a line).

        A file that ends in a line cut by a crash gets a line break first, so the new record is a line of its own
        (the cut one is ignored on reading) rather than glued to it and lost with it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record.to_json()) + "\n").encode("utf-8")
        with locked_file(self.path) as fd:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            written = os.write(fd, line)
            if written < len(line):  # a full disk: say so rather than leave half a line
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            os.fsync(fd)

    def read(self) -> dict[str, dict[str, Any]]:
        """run folder → its latest record (lines that do not parse, e.g. cut by a crash, are ignored)."""
        return latest_records(read_lines(self.path))

    def compact(self) -> None:
        """Rewrite the file atomically with one line per job, under the file's lock (no other batch's line is lost)."""
        if not self.path.exists():
            return
        with locked_file(self.path):
            records = self.read()
            text = "".join(json.dumps(r) + "\n" for r in records.values())
            atomic_write_text(self.path, text)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every parseable JSON object line of a results file (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "run_dir" in data:
            records.append(data)
    return records


def latest_records(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """run folder → the last record of it, in the order run folders first appear."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        out[r["run_dir"]] = r
    return out


def batch_exit_code(records: Iterable[JobRecord]) -> int:
    """0 when every job is done; 1 when a job failed because of a3d itself (exit code 1); else 3 if any failed."""
    codes = [r.exit_code for r in records if not r.ok]
    if not codes:
        return 0
    return 1 if any(c != 2 for c in codes) else 3


__all__ = ["DONE", "FAILED", "SKIPPED", "JobRecord", "ResultsFile", "batch_exit_code", "latest_records", "read_lines"]
