"""The run-folder contract: atomic outputs, manifest, skip/force, failures, locking, path safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from a3d_cli.errors import RunFolderError, RunLockedError
from a3d_cli.io.atomic import atomic_path, atomic_write_text
from a3d_cli.io.manifest import load_manifest
from a3d_cli.io.paths import resolve_inside
from a3d_cli.io.runlock import run_lock
from a3d_cli.progress import RecordingProgress
from a3d_cli.stages.base import Runtime, run_stage, stage_status


@dataclass(frozen=True)
class EchoOptions:
    text: str = "hello"
    copies: int = 2


def echo_body(opts: EchoOptions, calls: list[int] | None = None):
    def body(ctx):
        if calls is not None:
            calls.append(1)
        for i in range(opts.copies):
            ctx.output(f"echo/copy_{i}.txt").write_text(opts.text)
        ctx.metrics["copies"] = opts.copies

    return body


def test_outputs_land_and_manifest_records_stage(run_dir):
    opts = EchoOptions()
    result = run_stage("echo", run_dir, opts, echo_body(opts), Runtime(seed=7))
    assert sorted(p.name for p in result.outputs) == ["copy_0.txt", "copy_1.txt"]
    assert (run_dir / "echo/copy_1.txt").read_text() == "hello"
    entry = load_manifest(run_dir)["stages"]["echo"]
    assert entry["status"] == "done"
    assert entry["params"] == {"text": "hello", "copies": 2}
    assert entry["seed"] == 7
    assert entry["outputs"] == ["echo/copy_0.txt", "echo/copy_1.txt"]
    assert entry["metrics"] == {"copies": 2}
    assert entry["seconds"] >= 0 and entry["peak_memory_bytes"] > 0
    assert not (run_dir / ".staging").exists()


@pytest.mark.parametrize("fails", [False, True])
def test_a_stages_cuda_speed_flags_end_with_the_stage(run_dir, fails):
    """`accelerate` turns on TF32 for the stage that asks (and leaves cuDNN autotuning off); the next stage
    (or test) must get back the fp32 arithmetic it had, whether the stage finished or failed."""
    import torch

    from a3d_cli.models.speed.acceleration import configure_cuda

    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    seen = {}

    def body(ctx):
        configure_cuda()
        seen.update(benchmark=torch.backends.cudnn.benchmark, matmul=torch.backends.cuda.matmul.allow_tf32,
                    convolutions=torch.backends.cudnn.allow_tf32)  # fmt: skip
        if fails:
            raise RuntimeError("the stage broke")
        ctx.output("out.txt").write_text("x")

    if fails:
        with pytest.raises(RuntimeError, match="broke"):
            run_stage("speedy", run_dir, EchoOptions(), body, Runtime())
    else:
        run_stage("speedy", run_dir, EchoOptions(), body, Runtime())
    assert seen == {"benchmark": False, "matmul": True, "convolutions": True}  # the stage ran with TF32 on …
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32  # … and off after


def test_unchanged_stage_is_skipped_and_force_reruns(run_dir):
    calls: list[int] = []
    opts = EchoOptions()
    run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime())
    progress = RecordingProgress()
    again = run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime(progress=progress))
    assert again.skipped and len(calls) == 1
    assert any("skipped" in m for m in progress.messages)
    run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime(force=True))
    assert len(calls) == 2


def test_changed_parameters_seed_or_inputs_rerun(run_dir, tmp_path):
    calls: list[int] = []
    src = tmp_path / "model.txt"
    src.write_text("v1")
    opts = EchoOptions()

    def go(o=opts, seed=0):
        return run_stage("echo", run_dir, o, echo_body(o, calls), Runtime(seed=seed), external_inputs=[src])

    go()
    go(EchoOptions(text="other"))
    go(EchoOptions(text="other"), seed=1)
    src.write_text("v2")
    go(EchoOptions(text="other"), seed=1)
    assert len(calls) == 4
    go(EchoOptions(text="other"), seed=1)
    assert len(calls) == 4


def _set_recipe(run_dir: Path, name: str, recipe: object) -> None:
    """Rewrite a stage entry's recipe as an older (or newer) a3d would have left it; `None` drops the field."""
    path = run_dir / "a3d.json"
    data = json.loads(path.read_text())
    data["stages"][name].pop("recipe", None)
    if recipe is not None:
        data["stages"][name]["recipe"] = recipe
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("recorded", "made_by"),
    [(None, "an older a3d (recipe 1, now 2)"), (1, "an older a3d (recipe 1, now 2)"), (3, "a newer a3d (recipe 3, now 2)")],
    ids=["none-recorded", "older", "newer"],
)
def test_an_entry_of_another_recipe_runs_once_more_and_says_why(run_dir, recorded, made_by):
    """A stage whose code now writes other files for the same inputs and options (a bumped `RECIPE`) runs again
    on a run folder finished by another a3d, saying so in one line; then it is up to date again."""
    calls: list[int] = []
    opts = EchoOptions()
    run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime(), recipe=2)
    _set_recipe(run_dir, "echo", recorded)
    progress = RecordingProgress()
    again = run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime(progress=progress), recipe=2)
    assert not again.skipped and len(calls) == 2
    assert f"echo: made by {made_by}, running again" in progress.messages
    assert not any("skipped" in m for m in progress.messages)
    assert load_manifest(run_dir)["stages"]["echo"]["recipe"] == 2
    progress = RecordingProgress()
    assert run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime(progress=progress), recipe=2).skipped
    assert len(calls) == 2 and not any("made by" in m for m in progress.messages)


def test_a_stage_that_runs_again_says_why_in_one_line_and_a_first_run_says_nothing(run_dir):
    """Changed options, a changed input file or a failed last run each re-run a finished stage; the log says which
    (the words `a3d info` shows, `stale_reasons`), so a resumed chain never re-runs a stage without a reason given."""
    calls: list[int] = []
    progress = RecordingProgress()
    run_stage("echo", run_dir, EchoOptions(), echo_body(EchoOptions(), calls), Runtime(progress=progress))
    assert not any("running again" in m for m in progress.messages)
    progress = RecordingProgress()
    changed = EchoOptions(text="bye")
    run_stage("echo", run_dir, changed, echo_body(changed, calls), Runtime(progress=progress))
    assert "echo: its options or seed differ from the recorded ones, running again" in progress.messages
    (run_dir / "in.txt").write_text("a")
    run_stage("echo", run_dir, changed, echo_body(changed, calls), Runtime(), requires={"in.txt": "a3d make-in"})
    (run_dir / "in.txt").write_text("b")
    progress = RecordingProgress()
    run_stage("echo", run_dir, changed, echo_body(changed, calls), Runtime(progress=progress), requires={"in.txt": "a3d make-in"})
    assert "echo: in.txt changed since it ran, running again" in progress.messages
    assert len(calls) == 4


def test_an_entry_without_a_recipe_is_up_to_date_for_a_stage_at_its_first_recipe(run_dir):
    """Runs made before a3d recorded recipes count as recipe 1: a stage never bumped does not run again."""
    calls: list[int] = []
    opts = EchoOptions()
    run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime())
    assert load_manifest(run_dir)["stages"]["echo"]["recipe"] == 1
    _set_recipe(run_dir, "echo", None)
    assert run_stage("echo", run_dir, opts, echo_body(opts, calls), Runtime()).skipped and len(calls) == 1


def test_a_forced_run_of_another_recipe_says_nothing_of_recipes(run_dir):
    opts = EchoOptions()
    run_stage("echo", run_dir, opts, echo_body(opts), Runtime())
    progress = RecordingProgress()
    run_stage("echo", run_dir, opts, echo_body(opts), Runtime(force=True, progress=progress), recipe=2)
    assert not any("made by" in m for m in progress.messages)


def test_a_rerun_for_its_recipe_that_writes_the_same_bytes_leaves_the_next_stage_skipped(run_dir):
    """Recipes do not cascade: the stage after one re-run for its recipe runs again only if the files it reads
    changed (here they did not)."""
    later: list[int] = []

    def first(ctx):
        ctx.output("first/out.txt").write_text("same bytes")

    def second(ctx):
        later.append(1)
        ctx.output("second/out.txt").write_text((run_dir / "first/out.txt").read_text())

    run_stage("first", run_dir, None, first)
    run_stage("second", run_dir, None, second, requires={"first/out.txt": "first"})
    assert not run_stage("first", run_dir, None, first, recipe=2).skipped
    assert run_stage("second", run_dir, None, second, requires={"first/out.txt": "first"}).skipped and later == [1]


def test_a_left_out_stage_loses_its_outputs_only_when_its_inputs_changed(run_dir):
    """`animate --splats` after a run that made the GLB: the GLB of an older motion goes, a current one stays."""
    from a3d_cli.stages.base import remove_outdated_outputs

    def fit(motion: str):
        return run_stage("fit", run_dir, EchoOptions(text=motion), lambda ctx: ctx.output("m/motion.txt").write_text(motion))

    def mesh(ctx):
        ctx.output("export/animated.glb").write_text("glb of " + (run_dir / "m/motion.txt").read_text())

    fit("v1")
    run_stage("mesh", run_dir, None, mesh, requires={"m/motion.txt": "fit"})
    assert remove_outdated_outputs(run_dir, "mesh") == []  # still current: kept
    assert (run_dir / "export/animated.glb").read_text() == "glb of v1"
    fit("v2")
    assert remove_outdated_outputs(run_dir, "mesh") == ["export/animated.glb"]
    assert not (run_dir / "export/animated.glb").exists() and "mesh" not in load_manifest(run_dir)["stages"]
    assert remove_outdated_outputs(run_dir, "mesh") == []  # nothing recorded any more


def test_a_commit_cut_short_leaves_nothing_the_rerun_calls_foreign(run_dir, monkeypatch):
    """Ctrl-C while outputs move into place: the re-run finishes (the moved files were recorded first)."""
    from a3d_cli.stages import base

    def frames(count):
        return lambda ctx: [ctx.output(f"echo/f{i}.txt").write_text(str(count)) for i in range(count)]

    run_stage("echo", run_dir, EchoOptions(copies=2), frames(2), clear=["echo"])
    moved: list[str] = []
    real_replace = base.os.replace

    def replace_then_interrupt(src, dst):  # os.replace is global: count only the staged outputs' moves
        if Path(dst).parent.name == "echo":
            if len(moved) == 3:
                raise KeyboardInterrupt
            moved.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(base.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_stage("echo", run_dir, EchoOptions(copies=4), frames(4), clear=["echo"])
    monkeypatch.setattr(base.os, "replace", real_replace)
    assert (run_dir / "echo/f2.txt").exists() and not (run_dir / "echo/f3.txt").exists()  # cut after f2
    result = run_stage("echo", run_dir, EchoOptions(copies=4), frames(4), clear=["echo"])
    assert not result.skipped and sorted(p.name for p in (run_dir / "echo").iterdir()) == [f"f{i}.txt" for i in range(4)]


def test_outputs_of_another_motion_or_behind_a_link_are_judged_and_removed_safely(run_dir):
    from a3d_cli.stages.base import remove_outdated_outputs

    run_stage("fit", run_dir, None, lambda ctx: ctx.output("m/refined.txt").write_text("refined"))
    run_stage("fit2", run_dir, None, lambda ctx: ctx.output("m/coarse.txt").write_text("coarse"))
    run_stage("mesh", run_dir, None, lambda ctx: ctx.output("export/a.glb").write_text("glb"), requires={"m/refined.txt": "fit"})
    assert remove_outdated_outputs(run_dir, "mesh", made_from=["m/refined.txt"]) == []  # the motion exported
    (run_dir / "export/a.glb").unlink()
    (run_dir / "export/a.glb").symlink_to(run_dir / "m/coarse.txt")  # a link in place of the output
    assert remove_outdated_outputs(run_dir, "mesh", made_from=["m/coarse.txt"]) == ["export/a.glb"]
    assert (run_dir / "m/coarse.txt").read_text() == "coarse"  # the link went, not what it pointed at


def test_fewer_outputs_remove_stale_files_in_owned_folder(run_dir):
    big, small = EchoOptions(copies=3), EchoOptions(copies=1)
    run_stage("echo", run_dir, big, echo_body(big), Runtime(), clear=["echo"])
    run_stage("echo", run_dir, small, echo_body(small), Runtime(), clear=["echo"])
    assert sorted(p.name for p in (run_dir / "echo").iterdir()) == ["copy_0.txt"]


def test_failed_rerun_keeps_earlier_outputs_and_records_reason(run_dir):
    opts = EchoOptions()
    run_stage("echo", run_dir, opts, echo_body(opts), Runtime())

    def broken(ctx):
        ctx.output("echo/copy_0.txt").write_text("half")
        raise ValueError("disk on fire")

    with pytest.raises(ValueError):
        run_stage("echo", run_dir, EchoOptions(text="new"), broken, Runtime())
    assert (run_dir / "echo/copy_0.txt").read_text() == "hello"
    entry = load_manifest(run_dir)["stages"]["echo"]
    assert entry["status"] == "failed" and "disk on fire" in entry["error"]
    assert entry["last_success"]["status"] == "done"
    assert not list((run_dir).rglob("*.tmp*")) and not (run_dir / ".staging").exists()


def test_missing_required_input_names_the_command_to_run(run_dir):
    with pytest.raises(RunFolderError) as info:
        run_stage("echo", run_dir, None, lambda ctx: None, Runtime(), requires={"static/gaussians.ply": "a3d prepare"})
    assert "static/gaussians.ply" in info.value.message and "a3d prepare" in info.value.hint


def test_run_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "RUN"
    f.write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        run_stage("echo", f, None, lambda ctx: None, Runtime())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_run_is_refused(run_dir):
    run_dir.mkdir()
    run_dir.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="not writable"):
            run_stage("echo", run_dir, None, lambda ctx: None, Runtime())
    finally:
        run_dir.chmod(0o755)


def test_read_only_run_is_refused_even_as_root(run_dir, monkeypatch):
    run_dir.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == run_dir else real_access(p, mode))
    with pytest.raises(RunFolderError, match="not writable"):
        run_stage("echo", run_dir, None, lambda ctx: None, Runtime())


def test_second_process_on_same_run_gets_a_clear_lock_error(run_dir):
    run_dir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from a3d_cli.io.runlock import run_lock
            with run_lock({str(run_dir)!r}):
                print("locked", flush=True)
                time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=str(holder.pid)):
            run_stage("echo", run_dir, None, lambda ctx: None, Runtime())
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead process's lock: the folder is usable again
    run_stage("echo", run_dir, None, lambda ctx: None, Runtime())


def test_lock_is_reentrant_within_a_process(run_dir):
    run_dir.mkdir()
    with run_lock(run_dir):
        run_stage("echo", run_dir, None, lambda ctx: ctx.output("a.txt").write_text("x"), Runtime())
    assert stage_status(run_dir, "echo") == "done"


def test_killed_run_leaves_running_status_and_is_rerun(run_dir):
    run_dir.mkdir()
    (run_dir / ".staging" / "echo-dead").mkdir(parents=True)
    (run_dir / ".staging" / "echo-dead" / "junk.txt").write_text("partial")
    data = load_manifest(run_dir)
    data["stages"]["echo"] = {"status": "running", "params_digest": "x", "inputs": {}, "outputs": []}
    (run_dir / "a3d.json").write_text(json.dumps(data))
    opts = EchoOptions()
    result = run_stage("echo", run_dir, opts, echo_body(opts), Runtime())
    assert not result.skipped and stage_status(run_dir, "echo") == "done"
    assert not (run_dir / ".staging").exists()


@pytest.mark.parametrize("rel", ["../escape.txt", "/etc/passwd", "a/../../b", "", "static/a\x00b"])
def test_paths_outside_the_run_folder_are_refused(run_dir, rel):
    run_dir.mkdir()
    with pytest.raises(RunFolderError):
        resolve_inside(run_dir, rel)


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new but broken")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failure_in_a_new_run_folder_leaves_no_folder_but_keeps_an_existing_one(run_dir):
    def broken(ctx):
        ctx.output("x.txt").write_text("half")
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        run_stage("echo", run_dir, None, broken, Runtime())
    assert not run_dir.exists()
    run_dir.mkdir()
    (run_dir / "mine.txt").write_text("keep")
    with pytest.raises(ValueError):
        run_stage("echo", run_dir, None, broken, Runtime())
    assert (run_dir / "mine.txt").read_text() == "keep"
    assert load_manifest(run_dir)["stages"]["echo"]["status"] == "failed"


def test_a_failed_call_keeps_a_run_folder_another_process_made_meanwhile(tmp_path):
    """Two processes on one new run folder: the one that fails must not remove what the other one made."""
    from a3d_cli.stages.base import created_folders_removed_on_failure, ensure_run_dir

    run_dir = tmp_path / "runs" / "fox"
    with pytest.raises(RuntimeError), created_folders_removed_on_failure(run_dir):
        run_dir.mkdir(parents=True)  # the other process, between this call's start and its mkdir
        (run_dir / "a3d.json").write_text("{}")
        ensure_run_dir(run_dir)
        raise RuntimeError("this call fails")
    assert (run_dir / "a3d.json").is_file()


def test_a_failed_call_removes_only_the_folders_it_made(tmp_path):
    from a3d_cli.stages.base import created_folders_removed_on_failure, ensure_run_dir

    (tmp_path / "runs").mkdir()
    with pytest.raises(RuntimeError), created_folders_removed_on_failure(tmp_path / "runs" / "a" / "RUN"):
        ensure_run_dir(tmp_path / "runs" / "a" / "RUN")
        raise RuntimeError("bad input")
    assert (tmp_path / "runs").is_dir() and not (tmp_path / "runs" / "a").exists()


def test_a_locked_run_folder_is_never_removed(tmp_path):
    from a3d_cli.errors import RunLockedError
    from a3d_cli.stages.base import created_folders_removed_on_failure, ensure_run_dir

    run_dir = tmp_path / "RUN"
    with pytest.raises(RunLockedError), created_folders_removed_on_failure(run_dir):
        ensure_run_dir(run_dir)
        (run_dir / "a3d.json").write_text("{}")  # the other process took the lock and started
        raise RunLockedError("another a3d process is working on it")
    assert (run_dir / "a3d.json").is_file()


def test_a_failed_pid_write_gives_the_lock_back(tmp_path, monkeypatch):
    import errno

    import a3d_cli.io.runlock as runlock

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(runlock.os, "pwrite", full_disk)
        with pytest.raises(OSError), runlock.run_lock(tmp_path):
            pass
    with runlock.run_lock(tmp_path):  # this process can lock it again: nothing was left held
        pass


def test_a_file_system_without_locks_is_a_run_folder_error(tmp_path, monkeypatch):
    import errno

    import a3d_cli.io.runlock as runlock
    from a3d_cli.errors import RunFolderError

    def no_locks(*args, **kwargs):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    with pytest.raises(RunFolderError, match="Cannot lock"), runlock.run_lock(tmp_path):
        pass
