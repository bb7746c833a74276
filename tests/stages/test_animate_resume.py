"""`a3d animate --video` on the CPU, end to end, through a killed process.

One story, so the (slow) chain runs about once: start `a3d animate` as a subprocess, kill it with SIGKILL
while `reconstruct` runs, re-run the same command (finished stages are skipped, the killed one runs again,
the result completes), re-run again (everything up to date), then change the preview size (only `export`
runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ANIMATE_FAST as FAST
from helpers import REPO
from helpers import animate_app as make_app
from helpers import blob_mesh as make_mesh
from helpers import manifest_status as _status
from helpers import sliding_video as make_video
from typer.testing import CliRunner

from a3d_cli.io.manifest import load_manifest

# `a3d` with the animate command, whatever cli.py registers today.
ENTRY = (
    "import typer; from a3d_cli.cli import A3DGroup, main_options; from a3d_cli.commands.animate import animate; "
    "app = typer.Typer(cls=A3DGroup); app.callback()(main_options); app.command('animate')(animate); app()"
)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture
def clean_env(tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.delenv("A3D_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no weights anywhere
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_killed_run_resumes_and_completes(tmp_path, clean_env):
    mesh = make_mesh(tmp_path / "blob.ply")
    video = make_video(mesh, tmp_path / "video")
    run = tmp_path / "RUN"
    args = ["--json", "--device", "cpu", "animate", str(mesh), "--video", str(video), "-o", str(run), *FAST]

    # 1. start, and kill the process as soon as reconstruct is running
    proc = _start(args, clean_env)
    deadline = time.monotonic() + 300
    while _status(run, "reconstruct") != "running":
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "reconstruct never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _status(run, "prepare") == "done" and _status(run, "reconstruct") == "running"
    assert not (run / "motion" / "coarse.safetensors").exists()  # nothing half-written in place

    # 2. the same command continues: prepare skipped, reconstruct re-run, the chain completes
    proc = _start(args, clean_env)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    summary = json.loads(stdout)
    done = {s["stage"]: s for s in summary["stages"]}
    assert list(done) == ["prepare", "reconstruct", "mesh-animate", "export"]
    assert done["prepare"]["skipped"] and not done["reconstruct"]["skipped"] and not done["export"]["skipped"]
    assert "sds: skipped" in stderr.decode()  # --video without a prompt: no refinement, said so
    for rel in (
        "export/animated.glb",
        "export/preview.mp4",
        "export/gaussians/frame_0015.ply",
        "motion/coarse.safetensors",
    ):
        assert (run / rel).is_file(), rel
    assert not (run / ".staging").exists()  # the killed run's staging area is gone
    manifest = load_manifest(run)["stages"]
    assert all(manifest[s]["status"] == "done" for s in done)
    for s in summary["stages"]:  # the exit summary: outputs with paths, time, peak memory per stage
        assert s["outputs"] and all(Path(p).exists() for p in s["outputs"])
        assert s["seconds"] >= 0 and s["peak_memory_bytes"] > 0

    # 3. again: everything up to date (in-process this time, same code path)
    runner = CliRunner()
    again = runner.invoke(make_app(), args)
    assert again.exit_code == 0, again.stderr
    assert [s["skipped"] for s in json.loads(again.stdout)["stages"]] == [True, True, True, True]

    # 4. a new preview size re-runs only the export
    i = args.index("--preview-size")
    changed = runner.invoke(make_app(), [*args[: i + 1], "32", *args[i + 2 :]])
    assert changed.exit_code == 0, changed.stderr
    skipped = {s["stage"]: s["skipped"] for s in json.loads(changed.stdout)["stages"]}
    assert skipped == {"prepare": True, "reconstruct": True, "mesh-animate": True, "export": False}
