"""Exit codes at the CLI edge: every usage error and every user-fixable failure exits 2, SIGTERM exits 143,
and a failed call leaves no folder it created behind."""

from __future__ import annotations

import errno
import os
import signal

import pytest
import typer
from helpers import REPO, one_command_app
from typer.testing import CliRunner

from a3d_cli.cli import EXIT_TERMINATED, app
from a3d_cli.io.manifest import load_manifest
from a3d_cli.stages.base import run_stage

runner = CliRunner()
EXAMPLE = REPO / "examples" / "assets" / "fox.glb"


@pytest.mark.parametrize(
    "args",
    [
        ["prepare", str(EXAMPLE)],  # missing required option -o
        ["prepare"],  # missing required argument
        ["prepare", str(EXAMPLE), "-o", "RUN", "--splats", "many"],  # bad value
        ["--seed", "abc", "info", "RUN"],  # bad value of a global option
        ["--seed", "-1", "prepare", str(EXAMPLE), "-o", "RUN"],  # numpy and torch take seeds in [0, 2**32)
        ["--seed", str(2**32), "prepare", str(EXAMPLE), "-o", "RUN"],
        ["prepare", str(EXAMPLE), "-o", "RUN", "--bogus"],  # unknown option
        ["nosuch"],  # unknown command
        ["weights", "nosuch"],  # unknown sub-command
    ],
    ids=[
        "missing-option",
        "missing-argument",
        "bad-value",
        "bad-global-value",
        "negative-seed",
        "seed-past-32-bits",
        "unknown-option",
        "unknown-command",
        "unknown-subcommand",
    ],
)
def test_usage_errors_exit_2_not_report_it(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output + result.stderr
    assert "report it" not in result.stderr and "unexpectedly" not in result.stderr
    assert not (tmp_path / "RUN").exists()
    # the same two lines as every other failure, not Typer's boxed panel
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: Run `a3d"), lines
    assert "--help` for its usage." in lines[1] and "╭" not in result.output + result.stderr


def test_usage_error_hint_names_the_command_that_failed():
    result = runner.invoke(app, ["prepare", str(EXAMPLE), "-o", "RUN", "--bogus"])
    assert "error: No such option: --bogus" in result.stderr
    assert "hint: Run `a3d prepare --help` for its usage." in result.stderr


def test_an_option_error_without_its_own_hint_points_to_the_commands_help():
    from a3d_cli.errors import OptionError

    def strict(ctx: typer.Context) -> None:
        raise OptionError("--level must be between 1 and 3 (got 9).")

    result = runner.invoke(one_command_app("strict", strict), ["strict"])
    assert result.exit_code == 2
    assert "hint: Run `" in result.stderr and " strict --help` for the accepted values." in result.stderr


def test_no_arguments_still_print_the_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "Usage: a3d" in result.output and "error:" not in result.stderr


def test_usage_exceptions_of_bundled_and_separate_click_both_pass_through():
    """Whatever Typer raises for usage errors today (bundled click) or did before (click) passes through."""
    from a3d_cli.cli import _PASS_THROUGH

    raised = []
    try:
        from typer._click.exceptions import UsageError as bundled

        raised.append(bundled)
    except ImportError:
        pass
    try:
        from click.exceptions import UsageError as separate

        raised.append(separate)
    except ImportError:
        pass
    assert raised, "neither typer._click nor click is importable"
    for exc_type in raised:
        assert issubclass(exc_type, _PASS_THROUGH)
    assert issubclass(typer.Exit, _PASS_THROUGH)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/scratch/RUN/a3d.json")


def test_full_disk_is_exit_2_with_a_hint(tmp_path, monkeypatch):
    import a3d_cli.io.manifest as manifest

    monkeypatch.setattr(manifest, "atomic_write_text", _enospc)
    run_dir = tmp_path / "RUN"
    result = runner.invoke(app, ["prepare", str(EXAMPLE), "-o", str(run_dir), "--splats", "500", "--view-size", "32"])
    assert result.exit_code == 2, result.stderr
    assert "No space left on /scratch/RUN/a3d.json" in result.stderr
    assert "hint:" in result.stderr and "Free some space" in result.stderr
    assert "report it" not in result.stderr
    assert not run_dir.exists()


def test_read_only_file_system_is_exit_2(tmp_path, monkeypatch):
    import a3d_cli.io.manifest as manifest

    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "RUN" / "a3d.json"))

    monkeypatch.setattr(manifest, "atomic_write_text", erofs)
    result = runner.invoke(
        app, ["prepare", str(EXAMPLE), "-o", str(tmp_path / "RUN"), "--splats", "500", "--view-size", "32"]
    )
    assert result.exit_code == 2 and "read-only" in result.stderr and "hint:" in result.stderr


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_permission_denied_is_exit_2_with_a_hint(tmp_path, monkeypatch, code):
    import a3d_cli.io.manifest as manifest

    def denied(*args, **kwargs):
        raise OSError(code, "Permission denied", str(tmp_path / "RUN" / "a3d.json"))

    monkeypatch.setattr(manifest, "atomic_write_text", denied)
    result = runner.invoke(
        app, ["prepare", str(EXAMPLE), "-o", str(tmp_path / "RUN"), "--splats", "500", "--view-size", "32"]
    )
    assert result.exit_code == 2, result.stderr
    assert "Permission denied on" in result.stderr and "hint:" in result.stderr and "report it" not in result.stderr


def test_other_os_errors_stay_unexpected(tmp_path, monkeypatch):
    import a3d_cli.io.manifest as manifest

    def eio(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(manifest, "load_manifest", eio)
    (tmp_path / "RUN").mkdir()
    (tmp_path / "RUN" / "a3d.json").write_text("{}")  # a run folder, whose manifest then fails to read
    result = runner.invoke(app, ["info", str(tmp_path / "RUN")])
    assert result.exit_code == 1 and "report it" in result.stderr


def test_sigterm_is_handled_like_ctrl_c(tmp_path, monkeypatch):
    """SIGTERM during a stage: manifest `failed: interrupted`, staging cleaned, exit 143."""
    run_dir = tmp_path / "RUN"
    run_stage("first", run_dir, None, lambda ctx: ctx.output("first.txt").write_text("kept"))

    def body(ctx):
        ctx.output("half.txt").write_text("half")
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the stage")

    def slow(ctx: typer.Context) -> None:
        run_stage("slow", run_dir, None, body)

    before = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(one_command_app("slow", slow), ["slow"])
    assert result.exit_code == EXIT_TERMINATED == 143, result.stderr
    assert "terminated" in result.stderr
    entry = load_manifest(run_dir)["stages"]["slow"]
    assert entry["status"] == "failed" and entry["error"] == "interrupted"
    assert not (run_dir / ".staging").exists() and not (run_dir / "half.txt").exists()
    assert (run_dir / "first.txt").read_text() == "kept"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only


def test_sigterm_swallowed_by_a_library_still_ends_the_command_as_terminated(tmp_path):
    """Some lazy imports catch `BaseException`; a SIGTERM they swallow is remembered, so the command exits 143."""
    run_dir = tmp_path / "RUN"

    def body(ctx):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:  # noqa: BLE001 - what such a library does
            pass
        ctx.output("done.txt").write_text("finished")

    def swallow(ctx: typer.Context) -> None:
        run_stage("swallow", run_dir, None, body)

    result = runner.invoke(one_command_app("swallow", swallow), ["swallow"])
    assert result.exit_code == EXIT_TERMINATED, result.stderr
    assert "terminated" in result.stderr
    assert (run_dir / "done.txt").read_text() == "finished"  # the finished stage is kept


def test_sigterm_swallowed_then_another_failure_still_exits_143(tmp_path):
    def body(ctx):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:  # noqa: BLE001 - a library swallows it, then fails half-imported
            pass
        raise ImportError("cannot import name 'x' from partially initialized module")

    def swallow(ctx: typer.Context) -> None:
        run_stage("swallow", tmp_path / "RUN", None, body)

    result = runner.invoke(one_command_app("swallow", swallow), ["swallow"])
    assert result.exit_code == EXIT_TERMINATED, result.stderr


@pytest.mark.parametrize("name", ["no[/x].glb", "model [v2].glb", "[bold]x.glb", "fox :cat: v2.glb"])
def test_failure_lines_print_text_with_brackets_verbatim(tmp_path, name):
    result = runner.invoke(app, ["prepare", str(tmp_path / name), "-o", str(tmp_path / "RUN")])
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr + result.output
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert name in error


# -- leftovers: a failed call removes the folders it created -------------------------------------------


def test_truncated_glb_to_animate_leaves_no_run_folder(tmp_path):
    bad = tmp_path / "cut.glb"
    bad.write_bytes(EXAMPLE.read_bytes()[:200])
    run_dir = tmp_path / "out" / "deeper" / "RUN"
    result = runner.invoke(app, ["animate", str(bad), "--prompt", "jumps", "--tiny-model", "-o", str(run_dir)])
    assert result.exit_code == 2, result.stderr
    assert not (tmp_path / "out").exists()  # the run folder and the parents made for it are gone


def test_bad_axis_to_animate_leaves_no_run_folder(tmp_path):
    run_dir = tmp_path / "new" / "RUN"
    result = runner.invoke(
        app, ["animate", str(EXAMPLE), "--prompt", "jumps", "--tiny-model", "--up", "+q", "-o", str(run_dir)]
    )
    assert result.exit_code == 2 and "--up" in result.stderr
    assert not (tmp_path / "new").exists()


def test_a_failed_run_keeps_the_runs_another_process_put_into_the_folder_it_made(tmp_path):
    """`-o proj/a` fails after `-o proj/b` finished inside the `proj/` it made: proj/b and proj survive."""
    other = tmp_path / "proj" / "b"

    def body(ctx):
        other.mkdir()  # another process's run, finished while this one was running
        (other / "a3d.json").write_text("{}")
        raise RuntimeError("this run fails")

    with pytest.raises(RuntimeError):
        run_stage("first", tmp_path / "proj" / "a", None, body)
    assert not (tmp_path / "proj" / "a").exists()  # this call's own run folder is removed
    assert (other / "a3d.json").read_text() == "{}"


def test_failed_prepare_removes_created_parent_folders_but_keeps_existing_ones(tmp_path):
    bad = tmp_path / "cut.glb"
    bad.write_bytes(EXAMPLE.read_bytes()[:200])
    (tmp_path / "existing").mkdir()
    result = runner.invoke(app, ["prepare", str(bad), "-o", str(tmp_path / "existing" / "a" / "b" / "RUN")])
    assert result.exit_code == 2
    assert (tmp_path / "existing").is_dir() and list((tmp_path / "existing").iterdir()) == []
