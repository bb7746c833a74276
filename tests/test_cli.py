"""The CLI edge: help panels, exit codes, error lines, --json, device pre-flight."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from a3d_cli.cli import app
from a3d_cli.device import resolve_device
from a3d_cli.errors import DeviceError
from a3d_cli.stages.base import Runtime, run_stage

runner = CliRunner()


def test_help_lists_commands_in_panels():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Utilities" in result.output and "info" in result.output


def test_user_error_is_one_sentence_and_exit_code_2(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "error:" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_unexpected_error_is_exit_1_without_traceback(tmp_path, monkeypatch):
    run = tmp_path / "RUN"
    run.mkdir()
    (run / "a3d.json").write_text("{}")  # a run folder, whose manifest then fails to load
    import a3d_cli.io.manifest as manifest

    def explode(run_dir):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(manifest, "load_manifest", explode)
    result = runner.invoke(app, ["info", str(run)])
    assert result.exit_code == 1
    assert "kaboom" in result.stderr and "--verbose" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_info_prints_the_manifest(tmp_path):
    run = tmp_path / "RUN"
    run_stage("echo", run, None, lambda ctx: ctx.output("x.txt").write_text("1"), Runtime())
    result = runner.invoke(app, ["--json", "info", str(run)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["stages"]["echo"]["outputs"] == ["x.txt"]


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu"])
def test_malformed_device_is_a_user_error(spec):
    with pytest.raises(DeviceError):
        resolve_device(spec)


def test_cpu_and_auto_devices_resolve():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


@pytest.mark.parametrize("command", ["info", "prepare", "weights"])
def test_subcommand_help_exits_cleanly(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Usage" in result.output and "error" not in result.stderr
