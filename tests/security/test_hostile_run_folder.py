"""Hostile run folders: links planted in RUN never make a3d write, delete or read outside it.

Each test builds its run folder and a 'home' folder beside it in a temporary directory, runs a stage, and
asserts that nothing outside the run folder changed (a snapshot of every path, mode-less, with contents).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import REPO, in_thread, one_error_with_hint, reconstruct_app, reconstruct_run_folder, video_folder
from typer.testing import CliRunner

from a3d_cli.cli import app
from a3d_cli.errors import OptionError, RunFolderError
from a3d_cli.io.manifest import load_manifest
from a3d_cli.io.runlock import run_lock
from a3d_cli.stages.base import Runtime, run_stage

FOX = REPO / "examples" / "assets" / "fox.glb"


def snapshot(root: Path, skip: Path) -> dict[str, bytes | str]:
    """Every path under `root` except those under `skip`: file bytes, link targets, folder markers."""
    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            if p == skip or skip in p.parents:
                continue
            key = p.relative_to(root).as_posix()
            out[key] = ("link:" + os.readlink(p)) if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
    return out


@pytest.fixture
def home(tmp_path):
    """A folder outside the run folder holding the user's 'private' files."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("precious")
    (home / "prepare-keep").mkdir()
    (home / "prepare-keep" / "data.txt").write_text("precious too")
    return home


def write_body(ctx):
    ctx.output("static/out.txt").write_text("new")


def test_lock_file_that_is_a_link_is_refused_and_its_target_untouched(run_dir, home, tmp_path):
    run_dir.mkdir()
    (run_dir / ".a3d.lock").symlink_to(home / "notes.txt")
    before = snapshot(tmp_path, run_dir)
    with pytest.raises(RunFolderError, match="symbolic link"):
        run_stage("prepare", run_dir, None, write_body, Runtime())
    assert snapshot(tmp_path, run_dir) == before
    assert (home / "notes.txt").read_text() == "precious"


def test_dangling_lock_link_is_not_created_through(run_dir, home):
    run_dir.mkdir()
    (run_dir / ".a3d.lock").symlink_to(home / "new-file")
    with pytest.raises(RunFolderError):
        with run_lock(run_dir):
            pass
    assert not (home / "new-file").exists()


def test_hard_linked_lock_file_is_refused(run_dir, home):
    run_dir.mkdir()
    os.link(home / "notes.txt", run_dir / ".a3d.lock")
    with pytest.raises(RunFolderError, match="plain file"):
        with run_lock(run_dir):
            pass
    assert (home / "notes.txt").read_text() == "precious"


def test_staging_folder_that_is_a_link_is_refused_and_nothing_outside_is_deleted(run_dir, home, tmp_path):
    run_dir.mkdir()
    (run_dir / ".staging").symlink_to(home, target_is_directory=True)
    before = snapshot(tmp_path, run_dir)
    with pytest.raises(RunFolderError, match="symbolic link"):
        run_stage("prepare", run_dir, None, write_body, Runtime())
    assert snapshot(tmp_path, run_dir) == before  # home/prepare-keep (a 'stale staging' name) survives


def test_output_folder_linked_out_of_the_run_is_refused(run_dir, home, tmp_path):
    run_dir.mkdir()
    (run_dir / "static").symlink_to(home, target_is_directory=True)
    before = snapshot(tmp_path, run_dir)
    with pytest.raises(RunFolderError, match="outside the run folder"):
        run_stage("prepare", run_dir, None, write_body, Runtime())
    assert snapshot(tmp_path, run_dir) == before
    assert not (run_dir / ".staging").exists()


def test_output_file_linked_out_of_the_run_is_refused(run_dir, home, tmp_path):
    (run_dir / "static").mkdir(parents=True)
    (run_dir / "static" / "out.txt").symlink_to(home / "notes.txt")
    before = snapshot(tmp_path, run_dir)
    with pytest.raises(RunFolderError):
        run_stage("prepare", run_dir, None, write_body, Runtime())
    assert snapshot(tmp_path, run_dir) == before


def test_cleared_folder_with_a_linked_subfolder_removes_only_the_link(run_dir, home, tmp_path):
    (run_dir / "static").mkdir(parents=True)
    (run_dir / "static" / "sub").symlink_to(home, target_is_directory=True)
    before = snapshot(tmp_path, run_dir)
    run_stage("prepare", run_dir, None, write_body, Runtime(), clear=("static",))
    assert snapshot(tmp_path, run_dir) == before
    assert not (run_dir / "static" / "sub").exists() and (run_dir / "static" / "out.txt").read_text() == "new"


def test_required_input_with_a_link_out_is_refused_before_it_is_read(run_dir, home):
    (run_dir / "mvvideo").mkdir(parents=True)
    (run_dir / "mvvideo" / "v0_f00.png").symlink_to(home / "notes.txt")
    read: list[str] = []

    def body(ctx):
        read.append(ctx.input("mvvideo/v0_f00.png").read_text())

    with pytest.raises(RunFolderError, match="outside the run folder"):
        run_stage("reconstruct", run_dir, None, body, Runtime(), requires={"mvvideo": "a3d mvvideo RUN"})
    assert read == []


def test_manifest_that_is_a_link_out_is_refused(run_dir, home):
    run_dir.mkdir()
    (home / "a3d.json").write_text('{"stages": {}}')
    (run_dir / "a3d.json").symlink_to(home / "a3d.json")
    with pytest.raises(RunFolderError, match="outside the run folder"):
        load_manifest(run_dir)


def test_link_out_reached_through_a_folder_link_inside_the_run_is_refused(run_dir, home):
    (run_dir / "elsewhere").mkdir(parents=True)
    (run_dir / "elsewhere" / "v0_f00.png").symlink_to(home / "notes.txt")
    (run_dir / "mvvideo").symlink_to(run_dir / "elsewhere", target_is_directory=True)  # inside RUN: fine by itself
    with pytest.raises(RunFolderError, match="outside the run folder"):
        run_stage("reconstruct", run_dir, None, lambda ctx: None, Runtime(), requires={"mvvideo": "a3d mvvideo RUN"})


def test_link_loop_in_the_run_is_a_clear_error(run_dir):
    (run_dir / "static").mkdir(parents=True)
    (run_dir / "static" / "out.txt").symlink_to(run_dir / "static" / "out.txt")
    with pytest.raises(RunFolderError, match="loop"):
        run_stage("prepare", run_dir, None, write_body, Runtime())


# -- files that are not what a3d wrote: named pipes, folders in the way, foreign files -----------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_manifest_that_is_a_named_pipe_is_refused_not_read_forever(run_dir):
    """`RUN/a3d.json` as a pipe with no writer: read through `open_regular`, refused at once (exit 2)."""
    run_dir.mkdir()
    os.mkfifo(run_dir / "a3d.json")
    finished, result = in_thread(lambda: load_manifest(run_dir))
    assert finished and isinstance(result, RunFolderError) and "not a regular file" in str(result)
    finished, result = in_thread(lambda: CliRunner().invoke(app, ["prepare", str(FOX), "-o", str(run_dir)]))
    assert finished
    one_error_with_hint(result)


@pytest.mark.parametrize("kind", ["link-out", "named-pipe"])
def test_conditioning_cameras_that_link_out_or_are_a_pipe_are_refused_by_reconstruct(tmp_path, home, kind):
    """`reconstruct --video DIR` with no cameras.json in DIR falls back to RUN/static/views/cameras.json: a link
    from there to a file outside RUN is refused (never read), and a pipe is refused without blocking."""
    if kind == "named-pipe" and not hasattr(os, "mkfifo"):
        pytest.skip("named pipes need a POSIX system")
    run, video = reconstruct_run_folder(tmp_path), video_folder(tmp_path / "video")
    cams = run / "static" / "views" / "cameras.json"
    (home / "cams.json").write_bytes(cams.read_bytes())
    cams.unlink()
    if kind == "link-out":
        cams.symlink_to(home / "cams.json")
    else:
        os.mkfifo(cams)
    args = ["--device", "cpu", "reconstruct", str(run), "--video", str(video), "--steps", "2", "--no-preview"]
    finished, result = in_thread(lambda: CliRunner().invoke(reconstruct_app(), args))
    assert finished
    one_error_with_hint(result)
    assert ("outside the run folder" if kind == "link-out" else "not a regular file") in result.stderr
    assert not (run / "motion").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
@pytest.mark.parametrize("kind", ["named-pipe", "nested-past-the-parser"])
def test_mvvideo_refuses_conditioning_cameras_that_are_a_pipe_or_too_deep(run_dir, kind):
    """mvvideo reads RUN/static/views/cameras.json through `read_inside`: a pipe is refused without blocking,
    JSON nested past the parser is one RunFolderError (not a RecursionError)."""
    from a3d_cli.stages.base import StageContext
    from a3d_cli.stages.mvvideo import _read_views

    (run_dir / "static" / "views").mkdir(parents=True)
    cams = run_dir / "static" / "views" / "cameras.json"
    if kind == "named-pipe":
        os.mkfifo(cams)
    else:
        cams.write_bytes(b"[" * 100_000)
    finished, result = in_thread(lambda: _read_views(StageContext(run_dir, run_dir / "staging", Runtime())))
    assert finished and isinstance(result, RunFolderError) and result.hint, result
    assert ("not a regular file" if kind == "named-pipe" else "nested") in str(result)


@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_run_path_is_refused_and_the_current_folder_untouched(tmp_path, monkeypatch, out):
    """`-o ""` would make the current folder the run folder (and prepare clears its source/ and static/)."""
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "important.txt").write_text("precious")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path, tmp_path / "nothing")
    result = CliRunner().invoke(app, ["prepare", str(FOX), "-o", out, "--view-size", "32"])
    one_error_with_hint(result)
    assert "empty" in result.stderr
    with pytest.raises(OptionError, match="empty"):  # the library's callers too (a Path("") is already ".")
        run_stage("prepare", out, None, write_body, Runtime(), clear=("source", "static"))
    assert snapshot(tmp_path, tmp_path / "nothing") == before


def test_a_folder_holding_files_a3d_did_not_write_is_not_adopted_and_nothing_is_deleted(tmp_path):
    """A folder that was never a run folder (here the current folder, `-o .`), whose source/ and static/ hold a
    user's files: prepare, which replaces those folders, stops before writing anything (no lock, no manifest)."""
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "important.txt").write_text("precious")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "gaussians.ply").write_text("the user's own splats")
    before = snapshot(tmp_path, tmp_path / "nothing")
    result = CliRunner().invoke(app, ["prepare", str(FOX), "-o", str(tmp_path), "--view-size", "32"])
    one_error_with_hint(result)
    assert "did not write" in result.stderr and "source/important.txt" in result.stderr
    assert snapshot(tmp_path, tmp_path / "nothing") == before


def test_a_users_file_in_an_owned_folder_of_a_run_is_kept(run_dir):
    """In a real run folder, a file a3d's manifest does not record (put into a folder a stage owns) is never
    deleted by that stage's clearing: the stage is refused; files a3d wrote there are still replaced."""
    run_stage("prepare", run_dir, None, write_body, Runtime(), clear=("static",))
    (run_dir / "static" / "mine.txt").write_text("precious")
    with pytest.raises(RunFolderError, match="did not write") as info:
        run_stage("prepare", run_dir, None, write_body, Runtime(force=True), clear=("static",))
    assert info.value.exit_code == 2 and "static/mine.txt" in str(info.value)
    assert (run_dir / "static" / "mine.txt").read_text() == "precious"
    (run_dir / "static" / "mine.txt").unlink()
    run_stage("prepare", run_dir, None, write_body, Runtime(force=True), clear=("static",))


@pytest.mark.parametrize("kind", ["folder", "named-pipe"])
def test_lock_file_that_is_not_a_plain_file_is_a_run_folder_error(run_dir, kind):
    """`RUN/.a3d.lock` as a folder (EISDIR on open) or a pipe: exit 2 with a hint, not exit 1."""
    run_dir.mkdir()
    if kind == "folder":
        (run_dir / ".a3d.lock").mkdir()
    elif hasattr(os, "mkfifo"):
        os.mkfifo(run_dir / ".a3d.lock")
    else:
        pytest.skip("named pipes need a POSIX system")
    with pytest.raises(RunFolderError, match="not a plain file") as info:
        run_stage("prepare", run_dir, None, write_body, Runtime())
    assert info.value.exit_code == 2 and info.value.hint
