"""The run-folder contract every stage follows, implemented once.

`run_stage` does, in order: check the run folder, take its lock, check the stage's required inputs, skip
when nothing changed, run the stage body into a private staging folder, move the outputs into place one
atomic rename at a time, and record the stage in `RUN/a3d.json`. A body that raises leaves the earlier
outputs untouched and no partial files; its manifest entry says `failed` with the reason.

Examples:
    >>> def body(ctx: StageContext) -> None:
    ...     ctx.output("notes/hello.txt").write_text("hi")
    >>> run_stage("hello", Path("RUN"), opts=None, body=body, rt=Runtime())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from a3d_cli import __version__
from a3d_cli.errors import A3DError, RunFolderError, RunLockedError
from a3d_cli.io.manifest import (
    FIRST_RECIPE,
    MANIFEST_NAME,
    digest_json,
    digest_path,
    digested_params,
    entry_recipe,
    load_manifest,
    save_manifest,
    to_jsonable,
    update_stage,
)
from a3d_cli.io.paths import check_links_inside, private_dir, require_run_folder_name, resolve_inside
from a3d_cli.io.runlock import run_lock
from a3d_cli.progress import Progress
from a3d_cli.stages.producers import PREPARE

if TYPE_CHECKING:
    from torch import Tensor

STAGING_DIR = ".staging"


@dataclass(frozen=True)
class Runtime:
    """Options every stage gets from the command line, apart from its own.

    Attributes:
        device: resolved torch device string ("cpu", "cuda", "cuda:1").
        seed: seed of every random draw in the stage.
        force: re-run even when inputs and parameters are unchanged.
        progress: where progress goes (silent by default).
    """

    device: str = "cpu"
    seed: int = 0
    force: bool = False
    progress: Progress | None = None


@dataclass(frozen=True)
class StageResult:
    """What one stage did. `outputs` are absolute paths of the files it wrote (or found, when skipped)."""

    stage: str
    run_dir: Path
    outputs: tuple[Path, ...]
    seconds: float
    peak_memory_bytes: int | None
    seed: int
    device: str
    skipped: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)


class StageContext:
    """The run folder as one stage body sees it: inputs from RUN, outputs into staging."""

    def __init__(self, run_dir: Path, staging: Path, rt: Runtime) -> None:
        self.run_dir = run_dir
        self.staging = staging
        self.device = rt.device
        self.seed = rt.seed
        self.progress = rt.progress or Progress()
        self.metrics: dict[str, Any] = {}

    def input(self, rel: str) -> Path:
        """Path of an existing file or folder inside the run folder."""
        path = resolve_inside(self.run_dir, rel)
        if not path.exists():
            raise RunFolderError(
                f"The run folder {self.run_dir} has no {rel}.", hint="Run the stage that makes it first (`a3d info RUN` lists what ran)."
            )
        return path

    def output(self, rel: str) -> Path:
        """Where to write run-folder file `rel`; it lands in RUN/`rel` when the body succeeds."""
        resolve_inside(self.run_dir, rel)  # validates the name
        path = self.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_video(self, rel: str, frames: Tensor, fps: float) -> None:
        """Write run-folder video `rel` (`io.video.write_mp4`) and record what a player sees of it.

        The manifest's `metrics.videos[rel]` then holds its frame count, fps, width and height, so scripts
        (and the tests that probe the file with ffprobe) know what the file claims without decoding it.

        Args:
            rel: run-folder path of the `.mp4`.
            frames: [F, H, W, 3] float in [0, 1].
            fps: frames per second.
        """
        from a3d_cli.io.video import write_mp4

        self.metrics.setdefault("videos", {})[rel] = write_mp4(self.output(rel), frames, fps=fps)

    def staged_files(self) -> list[str]:
        """Relative names of everything the body has written so far."""
        return sorted(p.relative_to(self.staging).as_posix() for p in self.staging.rglob("*") if p.is_file())


_CREATED_FOLDERS: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("a3d_created_folders", default=None)
"""The folders this call made, outermost first (set by `created_folders_removed_on_failure`)."""


def _make_folders(run_dir: Path) -> None:
    """Make `run_dir` and its missing parents one by one, recording only the folders this call made.

    Why: another a3d process may make the same folders at the same moment (two batches on one runs folder);
    a folder it made is not ours to remove when this call fails.
    """
    missing = []
    for folder in [run_dir, *run_dir.parents]:
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        created = _CREATED_FOLDERS.get()
        if created is not None:
            created.append(folder)


def ensure_run_dir(run_dir: Path | str, create: bool = True) -> Path:
    """Check (and make) a run folder that a3d can write to.

    Raises:
        OptionError: the path is empty or only spaces (`-o ""` would make the current folder the run folder).
        RunFolderError: the path is a file, cannot be created, or is not writable.
    """
    require_run_folder_name(str(run_dir))
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"The run folder {run_dir} is a file, not a folder.", hint="Pass a folder path with -o.")
    if not run_dir.exists():
        if not create:
            raise RunFolderError(
                f"The run folder {run_dir} does not exist.", hint=f"Run `{PREPARE}` first."
            )
        try:
            _make_folders(run_dir)
        except OSError as exc:
            raise RunFolderError(
                f"Cannot create the run folder {run_dir} ({exc.strerror}).", hint="Choose a folder you can write to (-o)."
            ) from exc
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunFolderError(
            f"The run folder {run_dir} is not writable.", hint="Fix its permissions or choose another with -o."
        )
    return run_dir


def check_inputs(run_dir: Path, requires: Mapping[str, str]) -> None:
    """Pre-flight: every run-folder file a stage reads exists, else an error naming the command that makes it.

    Stages call it before loading weights or taking the lock, so the usual mistake (a stage run out of order)
    fails first and fast; `run_stage` calls it again under the lock.

    Args:
        run_dir: the run folder.
        requires: run-folder path → the command that makes it (for the hint).

    Raises:
        RunFolderError: a required file is missing, or reached through a link out of the run folder (exit code 2).
    """
    for rel, producer in requires.items():
        if not resolve_inside(run_dir, rel).exists():
            raise RunFolderError(f"The run folder {run_dir} has no {rel}.", hint=f"Run `{producer}` first.")
        check_links_inside(run_dir, Path(run_dir) / rel)


def _peak_memory(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # process peak RSS (Linux: KiB)


def _reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _commit(ctx: StageContext, clear: Sequence[str], written: list[str]) -> list[str]:
    """Move the staged files `written` into the run folder, then drop stale files from the folders the stage owns.

    Every destination is checked before the first file moves (`_check_destinations`), so a file or folder in
    the way fails the stage with all earlier outputs in place, never with some files new and some old.
    """
    _check_destinations(ctx.run_dir, written)
    for rel in written:
        dest = resolve_inside(ctx.run_dir, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(ctx.staging / rel, dest)
    keep = set(written)
    for folder in clear:
        root = resolve_inside(ctx.run_dir, folder)
        if root.is_dir():
            for path in sorted(root.rglob("*"), reverse=True):  # rglob does not descend into linked folders
                rel = path.relative_to(ctx.run_dir.resolve()).as_posix()
                if path.is_symlink():  # a link is removed itself; what it points at is never touched
                    if rel not in keep:
                        path.unlink()
                elif path.is_file() and rel not in keep:
                    path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
    return written


def _check_destinations(run_dir: Path, written: Sequence[str]) -> None:
    """Refuse, before anything is replaced, a destination in the way as the wrong kind: a folder where a stage
    writes a file, or a file where it needs a folder.

    Why: `os.replace` fails on such a destination only when it is reached; by then earlier files of the same
    stage have been replaced, leaving a mix of new and old outputs (e.g. frames 0-29 new, 30 onwards old).

    Raises:
        RunFolderError: naming the first thing in the way (exit code 2).
    """
    root, checked = Path(run_dir).resolve(), set()
    hint = "Move it aside or delete it, then re-run; the stage's earlier outputs were left as they were."
    for rel in written:
        dest = resolve_inside(run_dir, rel)
        for folder in reversed(dest.parents):  # from the run folder down
            if folder in checked or folder == root or root not in folder.parents:
                continue
            if folder.exists() and not folder.is_dir():
                raise RunFolderError(f"{folder} is a file where a3d needs a folder (to write {rel}).", hint=hint)
            checked.add(folder)
        if dest.is_dir():
            raise RunFolderError(f"{dest} is a folder where a3d writes the file {rel}.", hint=hint)


def _recorded_outputs(manifest: Mapping[str, Any]) -> set[str]:
    """Every file the manifest says a stage wrote (the latest entries and their earlier successes)."""
    entries = [e for entry in manifest["stages"].values() for e in (entry, entry.get("last_success") or {})]
    return {rel for entry in entries for rel in entry.get("outputs", [])}


def check_cleared_folders(run_dir: Path, name: str, clear: Sequence[str]) -> None:
    """Refuse to run a stage whose owned folders (`clear`) hold files a3d did not write.

    A stage replaces what is in the folders it owns and deletes files the new run did not write (no stale
    frames survive). That is safe only for files a3d wrote, those the manifest records as some stage's outputs.
    A file it does not record (a folder that was never a run folder, such as the current folder given as
    `-o ""`, or a user's file put into `RUN/mvvideo/`) belongs to someone else: the stage stops before anything
    is written, and nothing is deleted. Links are not counted: clearing removes a link, never what it points at.

    Raises:
        RunFolderError: naming the first few such files (exit code 2).
    """
    if not clear:
        return
    recorded = _recorded_outputs(load_manifest(run_dir))
    root, foreign = Path(run_dir).resolve(), []
    for folder in clear:
        top = resolve_inside(run_dir, folder)
        if top.is_dir():
            for path in top.rglob("*"):  # rglob does not descend into linked folders
                if not path.is_symlink() and not path.is_dir() and path.relative_to(root).as_posix() not in recorded:
                    foreign.append(path.relative_to(root).as_posix())
    if foreign:
        shown = ", ".join(sorted(foreign)[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunFolderError(
            f"{run_dir} holds files a3d did not write in the folders `{name}` replaces ({shown}); a3d does not "
            "delete them.",
            hint="Give a new or empty run folder (-o), or move those files out of it first.",
        )


def _input_digests(run_dir: Path, requires: Mapping[str, str], external_inputs: Sequence[Path]) -> dict[str, str]:
    digests = {rel: digest_path(resolve_inside(run_dir, rel)) for rel in requires}
    for path in external_inputs:
        digests[str(Path(path).resolve())] = digest_path(Path(path))
    return digests


def remove_outdated_outputs(run_dir: Path, name: str, made_from: Sequence[str] = ()) -> list[str]:
    """Remove what stage `name` wrote, and its manifest entry, when it no longer matches the run: a run-folder
    file it read has changed since, or it was not made from every file of `made_from`.

    For a stage a command leaves out (`animate --splats` after a run that made the animated GLB): its outputs
    would otherwise sit beside newer ones while showing another motion (`made_from`: the motion the export
    used). Outputs that still match are kept. A failed entry is judged by its last success. The caller holds
    the run lock.

    Returns:
        the run-folder paths removed (empty when the stage never succeeded or still matches).
    """
    manifest = load_manifest(run_dir)
    entry = manifest["stages"].get(name)
    done = entry if isinstance(entry, dict) and entry.get("status") == "done" else (entry or {}).get("last_success")
    if not isinstance(done, dict):
        return []
    recorded = {rel: digest for rel, digest in done.get("inputs", {}).items() if not Path(rel).is_absolute()}
    changed = [
        rel for rel, digest in recorded.items()
        if not (path := resolve_inside(run_dir, rel)).is_file() or digest_path(path) != digest
    ]
    if not changed and all(rel in recorded for rel in made_from):
        return []
    removed = []
    for rel in done.get("outputs", []):
        resolve_inside(run_dir, rel)  # refuses a path out of the run folder
        path = Path(run_dir) / rel  # a link is removed itself, never what it points at
        if path.is_symlink() or path.is_file():
            path.unlink()
            removed.append(rel)
    del manifest["stages"][name]
    save_manifest(run_dir, manifest)
    return removed


@dataclass(frozen=True)
class StaleReason:
    """One reason a stage's manifest entry no longer stands for what this a3d would make of the run folder.

    Attributes:
        kind: "status" (not finished), "recipe", "options" (options or seed), "inputs" (a file it read), "outputs"
            (a file it wrote is gone); `a3d info` adds "upstream" and "options_unread" (stages/outlook.py).
        message: in the runner's words ("made by an older a3d (recipe 1, now 2)"), without the stage's name.
        paths: the run-folder files the reason is about (inputs or outputs), else empty.
    """

    kind: str
    message: str
    paths: tuple[str, ...] = ()


_ABSENT = object()


def params_digest(opts: Any, seed: int) -> str:
    """The digest of a stage's options (less the result-neutral ones) and seed that decides whether a finished
    stage is up to date."""
    return digest_json({"params": digested_params(opts) if opts is not None else {}, "seed": seed})


def stale_reasons(
    run_dir: Path, previous: dict[str, Any] | None, recipe: int, digest: str | None, inputs: Mapping[str, Any]
) -> list[StaleReason]:
    """Why a run of a stage would not skip it: the up-to-date check of `run_stage`, once, so that `a3d info`
    (which asks it with what the manifest tells, `stages/outlook.py`) and the runner cannot disagree.

    Args:
        run_dir: the run folder.
        previous: the stage's manifest entry (None: it never ran).
        recipe: the stage's `RECIPE` in this a3d.
        digest: `params_digest` of the options and seed of the run; None leaves the options out (a3d info when
            this a3d cannot read the recorded options).
        inputs: digest of each input the run reads (`_input_digests`), keyed as the manifest keys them.

    Returns:
        the reasons, empty when the stage is up to date. Files it wrote are checked only when nothing else
        makes it run (a stage that runs anyway rewrites them).
    """
    if previous is None:
        return [StaleReason("status", "it has not run yet")]
    if previous.get("status") != "done":
        return [StaleReason("status", _unfinished(previous))]
    reasons = []
    made_with = entry_recipe(previous)
    if made_with != recipe:
        reasons.append(StaleReason("recipe", _recipe_changed(made_with, recipe)))
    if digest is not None and previous.get("params_digest") != digest:
        reasons.append(StaleReason("options", "its options or seed differ from the recorded ones"))
    recorded = previous.get("inputs")
    if not isinstance(recorded, Mapping):
        reasons.append(StaleReason("inputs", "its entry records no inputs"))
    else:
        changed = [k for k in sorted({*recorded, *inputs}) if recorded.get(k, _ABSENT) != inputs.get(k, _ABSENT)]
        if changed:
            reasons.append(StaleReason("inputs", f"{shortlist(changed)} changed since it ran", tuple(changed)))
    if not reasons:
        missing = [rel for rel in previous.get("outputs", []) if not resolve_inside(run_dir, rel).exists()]
        if missing:
            reasons.append(StaleReason("outputs", f"its output {shortlist(missing)} is missing", tuple(missing)))
    return reasons


def _unfinished(entry: dict[str, Any]) -> str:
    """Why an entry that is not `done` runs again, in a few words."""
    if entry.get("status") == "failed":
        return "its last run failed"
    if entry.get("status") == "running":
        return "its last run did not finish (it is running, or was stopped)"
    return f"its status is {entry.get('status')!r}, not 'done'"


def shortlist(paths: Sequence[str], shown: int = 3) -> str:
    """The first few of `paths`, and how many more (a reason's message stays one line)."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def run_stage(
    name: str,
    run_dir: Path,
    opts: Any,
    body: Callable[[StageContext], None],
    rt: Runtime | None = None,
    requires: Mapping[str, str] | None = None,
    external_inputs: Sequence[Path] = (),
    clear: Sequence[str] = (),
    recipe: int = FIRST_RECIPE,
) -> StageResult:
    """Run one stage body under the run-folder contract.

    Args:
        name: stage name, the manifest key ("prepare", "reconstruct", …).
        run_dir: the run folder (created when missing).
        opts: the stage's frozen options dataclass; recorded as JSON and digested for skipping.
        body: writes the stage's files through `ctx.output(rel)`.
        rt: device, seed, force, progress.
        requires: run-folder paths the stage reads → the command that makes each (for the error hint).
        external_inputs: files outside the run folder whose content matters (the input model).
        clear: run-folder folders this stage owns; files there that the new run did not write are removed.
        recipe: the stage's `RECIPE`: which version of what the stage writes for given inputs and options. An
            entry recorded with another recipe (or none: `FIRST_RECIPE`) is not up to date.

    Returns:
        StageResult with absolute output paths, timing, memory, seed, device, metrics.
    """
    from a3d_cli.models.speed.flags import backend_flags_kept  # torch only (no diffusers): imported when a stage runs

    rt = rt or Runtime()
    with created_folders_removed_on_failure(run_dir):
        run_dir = ensure_run_dir(run_dir)
        if not os.path.lexists(run_dir / MANIFEST_NAME):  # not a run folder (yet): refused before the lock file
            check_cleared_folders(run_dir, name, clear)
        with backend_flags_kept():  # a stage's CUDA speed flags end with the stage
            return _run_locked(name, run_dir, opts, body, rt, dict(requires or {}), external_inputs, clear, recipe)


@contextlib.contextmanager
def created_folders_removed_on_failure(run_dir: Path, keep: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Remove the run folder, and the parent folders made for it, when the block fails after making them.

    Only folders this call made (through `ensure_run_dir` inside the block) are removed, and nothing when the
    failure is another process's lock on the folder. The run folder goes with its contents; a parent made for
    it goes only while it is empty, because other processes may have put their own run folders into it
    meanwhile (two batches, or `-o proj/a` and `-o proj/b`, sharing a new `proj/`).

    Why: a run folder a failed call created holds nothing of value; leaving it (or `a/b/` made for `a/b/RUN`)
    behind would make a typo or a bad input litter the disk and look like a started run.

    Args:
        run_dir: the run folder the block creates (with `ensure_run_dir`) when missing.
        keep: called on failure; True keeps the folders (e.g. when an earlier stage of a chain finished).
    """
    created: list[Path] = []
    token = _CREATED_FOLDERS.set(created)
    try:
        yield
    except BaseException as exc:
        # never on RunLockedError: the folder is then another process's live run, whoever made it
        if created and not isinstance(exc, RunLockedError) and not keep():
            _remove_created(created, Path(run_dir))
        raise
    finally:
        _CREATED_FOLDERS.reset(token)


def _remove_created(created: Sequence[Path], run_dir: Path) -> None:
    """Remove what a failed call made: the run folder whole (only if this call made it), then each parent it made,
    innermost first, while it is empty."""
    parents = list(created)
    if os.path.abspath(parents[-1]) == os.path.abspath(run_dir) and run_dir.is_dir() and not run_dir.is_symlink():
        shutil.rmtree(parents.pop(), ignore_errors=True)
    for folder in reversed(parents):
        try:
            folder.rmdir()  # fails on a folder that now holds another run: it is kept, and so are those above it
        except OSError:
            break


def _run_locked(
    name: str,
    run_dir: Path,
    opts: Any,
    body: Callable[[StageContext], None],
    rt: Runtime,
    requires: dict[str, str],
    external_inputs: Sequence[Path],
    clear: Sequence[str],
    recipe: int,
) -> StageResult:
    progress = rt.progress or Progress()
    with run_lock(run_dir):
        # 1. required inputs exist
        check_inputs(run_dir, requires)
        # 2. skip when the recipe, parameters and inputs are unchanged
        params = to_jsonable(opts) if opts is not None else {}
        digest = params_digest(opts, rt.seed)
        inputs = _input_digests(run_dir, requires, external_inputs)
        previous = load_manifest(run_dir)["stages"].get(name)
        reasons = [] if rt.force else stale_reasons(run_dir, previous, recipe, digest, inputs)
        if not rt.force and not reasons:
            progress.log(f"{name}: up to date, skipped (use --force to re-run)")
            return StageResult(
                stage=name,
                run_dir=run_dir,
                outputs=tuple(resolve_inside(run_dir, rel) for rel in previous["outputs"]),
                seconds=0.0,
                peak_memory_bytes=previous.get("peak_memory_bytes"),
                seed=rt.seed,
                device=previous.get("device", rt.device),
                skipped=True,
                metrics=previous.get("metrics", {}),
            )
        said = [r.message for r in reasons if previous is not None]  # a first run needs no reason
        if said:
            progress.log(f"{name}: {'; '.join(said)}, running again")
        # 3. run the body into a private staging folder (the folders it replaces hold only a3d's files)
        check_cleared_folders(run_dir, name, clear)
        staging_root = private_dir(run_dir, STAGING_DIR)  # refused when it is a link
        for stale in staging_root.glob(f"{name}-*"):  # left by a killed run; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=staging_root))
        ctx = StageContext(run_dir, staging, rt)
        entry: dict[str, Any] = {
            "status": "running",
            "recipe": recipe,
            "params": params,
            "params_digest": digest,
            "inputs": inputs,
            "seed": rt.seed,
            "device": rt.device,
            "started": _now(),
            "a3d_version": __version__,
        }
        if previous is not None and previous.get("status") == "done":
            entry["last_success"] = previous
        elif previous is not None and "last_success" in previous:
            entry["last_success"] = previous["last_success"]
        update_stage(run_dir, name, entry)
        _reset_peak_memory(rt.device)
        start = time.perf_counter()
        try:
            body(ctx)
            # recorded before anything moves: a commit cut short leaves no file the next run would call foreign
            entry["outputs"] = ctx.staged_files()
            update_stage(run_dir, name, entry)
            written = _commit(ctx, clear, entry["outputs"])
        except BaseException as exc:
            entry.update(status="failed", finished=_now(), seconds=round(time.perf_counter() - start, 3))
            entry["error"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else (str(exc) or type(exc).__name__)
            with contextlib.suppress(Exception):
                update_stage(run_dir, name, entry)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging_root.rmdir()
        # 4. record success
        seconds = time.perf_counter() - start
        peak = _peak_memory(rt.device)
        entry.pop("last_success", None)
        entry.update(
            status="done",
            finished=_now(),
            seconds=round(seconds, 3),
            peak_memory_bytes=peak,
            outputs=written,
            metrics=to_jsonable(ctx.metrics),
        )
        update_stage(run_dir, name, entry)
        return StageResult(
            stage=name,
            run_dir=run_dir,
            outputs=tuple(resolve_inside(run_dir, rel) for rel in written),
            seconds=seconds,
            peak_memory_bytes=peak,
            seed=rt.seed,
            device=rt.device,
            metrics=dict(ctx.metrics),
        )


def _recipe_changed(recorded: int, recipe: int) -> str:
    """Why a finished stage runs again when another recipe made its outputs (the runner logs it after the
    stage's name, followed by ", running again")."""
    made_by = "an older" if recorded < recipe else "a newer"
    return f"made by {made_by} a3d (recipe {recorded}, now {recipe})"


def stage_status(run_dir: Path, name: str) -> str | None:
    """The manifest status of a stage ("done", "failed", "running") or None when it never ran."""
    entry = load_manifest(run_dir)["stages"].get(name)
    return None if entry is None else entry.get("status")


__all__ = [
    "A3DError",
    "Runtime",
    "StageContext",
    "StageResult",
    "StaleReason",
    "check_cleared_folders",
    "check_inputs",
    "created_folders_removed_on_failure",
    "ensure_run_dir",
    "params_digest",
    "remove_outdated_outputs",
    "run_stage",
    "shortlist",
    "stage_status",
    "stale_reasons",
]
