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


def test_json_output_is_strict_json_with_null_for_non_finite_numbers(capsys):
    from a3d_cli.console import echo_json

    echo_json({"loss": float("nan"), "psnr": [float("inf"), 30.5], "stage": "sds[/x]"})
    text = capsys.readouterr().out
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}")) == {
        "loss": None,
        "psnr": [None, 30.5],
        "stage": "sds[/x]",
    }


def test_summary_table_prints_brackets_verbatim(tmp_path, capsys):
    from types import SimpleNamespace

    from a3d_cli.commands.common import GlobalOptions, print_summary

    run_dir = tmp_path / "R[red]"
    run_dir.mkdir()
    result = SimpleNamespace(
        run_dir=run_dir, stage="prepare", skipped=False, seconds=1.0, peak_memory_bytes=None,
        outputs=[run_dir / "static" / "[bold]gaussians.ply"],
    )
    print_summary([result], GlobalOptions())
    text = capsys.readouterr().out
    assert "R[red]" in text and "[bold]gaussians.ply" in text  # rich would read both as style tags


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


def test_help_paragraphs_wrap_to_the_terminal_not_to_the_source_lines():
    from a3d_cli.commands.help_style import reflow_help

    text = "Summary.\n\n    One paragraph\n    over two lines.\n\n    \b\n    kept\n    as is"
    assert reflow_help(text) == "Summary.\n\nOne paragraph over two lines.\n\n\b\nkept\nas is"
    result = runner.invoke(app, ["batch", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    # the docstring breaks this sentence after "3 some"; the help shows it as one line
    assert any("3 some jobs failed for reasons you can fix" in line for line in result.output.splitlines())


MVVDM_MODELS = ["mvdream_sd15", "ip_adapter_sd15", "ip_adapter_image_encoder", "animate3d_motion_modules"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--for", "animate"], MVVDM_MODELS),
        (["--for", "sds"], MVVDM_MODELS),
        (["--for", "orbit"], ["sv3d_u", "sv3d_p"]),
        (["--for", "orbit", "--for", "mvvideo"], ["sv3d_u", "sv3d_p", *MVVDM_MODELS]),
        (["ip_adapter_sd15", "sv3d_p", "ip_adapter_sd15"], ["ip_adapter_sd15", "sv3d_p"]),
    ],
)
def test_fetch_targets_by_command_and_by_names(monkeypatch, args, expected):
    import a3d_cli.weights as weights

    fetched: list[str] = []
    monkeypatch.setattr(weights, "fetch", lambda name, force=False: fetched.append(name) or f"/w/{name}")
    result = runner.invoke(app, ["weights", "fetch", *args])
    assert result.exit_code == 0, result.output
    assert fetched == expected


@pytest.mark.parametrize(
    "args", [[], ["sv3d_u", "--all"], ["--all", "--for", "orbit"], ["--for", "export"], ["ip_adapter_sd15", "nosuch"]]
)
def test_fetch_needs_exactly_one_way_of_choosing_and_a_known_command(monkeypatch, args):
    import a3d_cli.weights as weights

    monkeypatch.setattr(weights, "fetch", lambda name, force=False: pytest.fail("nothing may be fetched"))
    result = runner.invoke(app, ["weights", "fetch", *args])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_fetch_all_goes_on_past_a_gated_model_and_names_it(monkeypatch):
    import a3d_cli.weights as weights

    fetched: list[str] = []

    def fake_fetch(name, force=False):
        if name.startswith("sv3d"):
            raise WeightsMissing(f"Cannot fetch {name}: the repo is gated.", hint="Accept the license, then log in.")
        fetched.append(name)
        return f"/w/{name}"

    monkeypatch.setattr(weights, "fetch", fake_fetch)
    result = runner.invoke(app, ["weights", "fetch", "--all"])
    assert result.exit_code == 2, result.output
    assert fetched == MVVDM_MODELS  # every model after the gated ones was still fetched
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "2 of 6" in error[0] and "sv3d_u, sv3d_p" in error[0]
    assert "hint: Accept the license, then log in." in result.output and "Traceback" not in result.output


def test_fetch_of_one_name_keeps_its_own_error(monkeypatch):
    import a3d_cli.weights as weights

    def refuse(name, force=False):
        raise WeightsMissing(f"Cannot fetch {name}: the repo is gated.", hint="Accept the license.")

    monkeypatch.setattr(weights, "fetch", refuse)
    result = runner.invoke(app, ["weights", "fetch", "sv3d_u"])
    assert result.exit_code == 2 and "error: Cannot fetch sv3d_u: the repo is gated." in result.output


def test_fetch_all_skips_the_optional_adapter(monkeypatch):
    import a3d_cli.weights as weights

    fetched: list[str] = []
    monkeypatch.setattr(weights, "fetch", lambda name, force=False: fetched.append(name) or f"/w/{name}")
    result = runner.invoke(app, ["weights", "fetch", "--all"])
    assert result.exit_code == 0, result.output
    assert "animatediff_v152" not in fetched and "mvdream_sd15" in fetched and "animate3d_motion_modules" in fetched
    listing = runner.invoke(app, ["weights", "list"], env={"COLUMNS": "200"})
    assert "none (optional)" in listing.stdout
