"""The CLI in logs and scripts: plain progress lines off a terminal, CPU threads, JSON failures, `info`
quality figures, the missing-weights message of `animate`, clean help."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from a3d_cli.cli import app
from a3d_cli.commands.common import PlainProgress
from a3d_cli.device import cpu_thread_count
from a3d_cli.errors import WeightsMissing
from a3d_cli.stages.animate import AnimateOptions, plan_chain
from a3d_cli.stages.base import Runtime, run_stage

runner = CliRunner()


def test_plain_progress_prints_phases_periodic_steps_and_eta():
    stream = io.StringIO()
    p = PlainProgress(interval=0.0, stream=stream)
    p.start("reconstruct: fitting", total=4)
    p.update(1, loss=0.5)
    p.update(3, loss=0.25)
    p.log("done soon")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "reconstruct: fitting (0/4)"
    assert lines[1].startswith("reconstruct: fitting: step 1/4") and "loss 0.5" in lines[1] and "ETA" in lines[1]
    assert lines[2].startswith("reconstruct: fitting: step 4/4") and "ETA" not in lines[2]
    assert lines[3] == "· done soon"


def test_plain_progress_waits_for_its_interval_but_always_shows_the_end():
    stream = io.StringIO()
    p = PlainProgress(interval=3600.0, stream=stream)
    p.start("sds", total=3)
    p.update(1)
    p.update(1)
    assert len(stream.getvalue().splitlines()) == 1  # only the phase line so far
    p.update(1)
    assert "step 3/3" in stream.getvalue().splitlines()[-1]


def test_plain_progress_is_what_a_non_terminal_gets(tmp_path):
    import numpy as np
    import trimesh
    from helpers import write_glb

    model = write_glb(tmp_path / "ball.glb", (trimesh.creation.icosphere(subdivisions=2), np.eye(4)))
    result = runner.invoke(app, ["--device", "cpu", "prepare", str(model), "-o", str(tmp_path / "RUN"),
                                 "--splat-count", "500", "--view-size", "32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "prepare: rendering the 4 views" in result.stderr  # a plain line, no live display
    assert (tmp_path / "RUN/static/views/contact_sheet.png").is_file()


@pytest.mark.parametrize(
    ("cpus", "load", "env", "expected"),
    [(8, 0.1, None, 8), (2, 2.2, None, 1), (4, 1.0, None, 3), (2, 9.0, None, 1), (8, 0.0, "3", None)],
)
def test_cpu_threads_leave_busy_cores_alone_and_obey_omp_num_threads(cpus, load, env, expected):
    assert cpu_thread_count(cpus, load, env) == expected


def test_json_failure_is_a_json_object(tmp_path):
    result = runner.invoke(app, ["--json", "info", str(tmp_path / "missing")])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and "does not exist" in data["error"] and data["hint"] and data["exit_code"] == 2


@pytest.mark.parametrize(
    "args", [["export", "RUN", "--fps", "abc"], ["export"], ["export", "RUN", "--no-such-option"], ["no-such-command"]]
)
def test_json_usage_errors_are_json_objects_too(args):
    result = runner.invoke(app, ["--json", *args])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["error"] and data["exit_code"] == 2


def test_info_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "photos").mkdir()
    result = runner.invoke(app, ["info", str(tmp_path / "photos")])
    assert result.exit_code == 2 and "not an a3d run folder" in result.stderr


def test_info_shows_quality_figures(tmp_path):
    def body(ctx):
        ctx.output("x.txt").write_text("1")
        ctx.metrics.update(psnr=31.25, psnr_static=26.5, final_loss=0.0123)

    run_stage("reconstruct", tmp_path / "RUN", None, body, Runtime())
    result = runner.invoke(app, ["info", str(tmp_path / "RUN")], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "PSNR 31.25 dB (static 26.50)" in result.stdout and "loss 0.0123" in result.stdout


def test_animate_without_video_or_weights_names_mvvideo_and_suggests_video(monkeypatch, tmp_path):
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    opts = AnimateOptions(model="m.glb", prompt="jumps")
    with pytest.raises(WeightsMissing) as info:
        plan_chain(opts, mesh_input=True, weights_missing=["mvdream_sd15"])
    text = info.value.message + " " + (info.value.hint or "")
    assert "mvvideo" in text and "--video DIR" in text and "--no-sds" not in text


@pytest.mark.parametrize("command", [["--help"], ["prepare", "--help"], ["animate", "--help"], ["weights", "fetch", "--help"]])
def test_help_has_no_type_label_on_flags_and_no_braces_in_usage(command):
    result = runner.invoke(app, command, env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "{MODEL}" not in result.output and "{RUN}" not in result.output
    assert "--help" in result.output


def test_fetch_all_skips_the_optional_adapter(monkeypatch):
    import a3d_cli.weights as weights

    fetched: list[str] = []
    monkeypatch.setattr(weights, "fetch", lambda name, force=False: fetched.append(name) or f"/w/{name}")
    result = runner.invoke(app, ["weights", "fetch", "--all"])
    assert result.exit_code == 0, result.output
    assert "animatediff_v152" not in fetched and "mvdream_sd15" in fetched and "animate3d_motion_modules" in fetched
    listing = runner.invoke(app, ["weights", "list"], env={"COLUMNS": "200"})
    assert "none (optional)" in listing.stdout
