"""`a3d sds` at the command line: exit codes, the missing-weights message, the tiny model end to end."""

from __future__ import annotations

import json

import pytest
from helpers import one_command_app
from typer.testing import CliRunner

from a3d_cli.commands.sds import sds
from a3d_cli.io.manifest import load_manifest

runner = CliRunner()


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("A3D_WEIGHTS_DIR", raising=False)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def test_missing_weights_is_exit_2_naming_the_fetch_commands(run_dir, no_weights):
    from helpers import sds_run as make_run

    make_run(run_dir)
    result = runner.invoke(one_command_app("sds", sds), ["--device", "cpu", "sds", str(run_dir), "--prompt", "jumps"])
    assert result.exit_code == 2, result.output
    assert "a3d weights fetch mvdream_sd15" in result.stderr and "--no-sds" in result.stderr
    assert "sds" not in load_manifest(run_dir)["stages"]  # nothing ran, nothing recorded


def test_missing_inputs_and_bad_options_are_exit_2(run_dir, no_weights):
    run_dir.mkdir()
    result = runner.invoke(one_command_app("sds", sds), ["sds", str(run_dir), "--prompt", "jumps"])
    assert result.exit_code == 2 and "static/gaussians.ply" in result.stderr and "a3d prepare" in result.stderr
    result = runner.invoke(one_command_app("sds", sds), ["sds", str(run_dir), "--prompt", "jumps", "--render-size", "100"])
    assert result.exit_code == 2 and "multiple of 8" in result.stderr
    result = runner.invoke(one_command_app("sds", sds), ["sds", str(run_dir), "--prompt", "jumps", "--fov", "60", "10"])
    assert result.exit_code == 2 and "fov_range" in result.stderr
    result = runner.invoke(one_command_app("sds", sds), ["sds", str(run_dir), "--prompt", "jumps", "--dtype", "fp8"])
    assert result.exit_code == 2 and "--dtype" in result.stderr


def test_lambda_sds_zero_runs_without_weights_and_reports_json(run_dir, no_weights):
    """λ_sds = 0 needs no diffusion model: the reconstruction terms alone run, and --json lists the outputs."""
    from helpers import sds_run as make_run

    make_run(run_dir)
    args = [
        "--json",
        "--device",
        "cpu",
        "sds",
        str(run_dir),
        "--prompt",
        "jumps",
        "--steps",
        "2",
        "--lambda-sds",
        "0",
        "--render-size",
        "16",
        "--target-size",
        "16",
    ]
    result = runner.invoke(one_command_app("sds", sds), args)
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(result.stdout)
    (stage,) = data["stages"]
    assert stage["stage"] == "sds" and any(p.endswith("motion/refined.safetensors") for p in stage["outputs"])
    assert stage["metrics"]["loss_end"]["sds"] == 0.0
