"""`a3d batch` end to end on the CPU: real worker processes, a killed batch resumed, Ray actors.

Every job is the weight-free `--video` path of `a3d animate` at toy sizes (`test_animate.FAST`), so the
chain runs for real (prepare → reconstruct → mesh-animate → export) in a few seconds per job.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ANIMATE_FAST as FAST
from helpers import REPO, a3d_app
from helpers import blob_mesh as make_mesh
from helpers import manifest_status as _status
from helpers import sliding_video as make_video
from typer.testing import CliRunner

from a3d_cli.commands.batch import batch
from a3d_cli.io.runlock import LOCK_NAME

runner = CliRunner()


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """Three meshes, their ground-truth video, and a video whose frames are not images (fails in reconstruct)."""
    root = tmp_path_factory.mktemp("batch_run")
    mesh = make_mesh(root / "a.ply")
    for name in ("b.ply", "c.ply"):
        (root / name).write_bytes(mesh.read_bytes())
    make_video(mesh, root / "gt")
    broken = root / "broken"
    broken.mkdir()
    for v in range(4):
        for f in range(16):
            (broken / f"v{v}_f{f:02d}.png").write_bytes(b"these bytes are no PNG")
    return root


ONE_BROKEN = [{"input": "a.ply", "video": "gt"}, {"input": "b.ply", "video": "broken"}, {"input": "c.ply", "video": "gt"}]
"""Three jobs; the second fails in reconstruct (its frames are not images) after passing validation."""


def manifest(root: Path, jobs: list[dict], name: str) -> Path:
    path = root / name
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def results(runs: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (runs / "results.jsonl").read_text().splitlines()]
    assert len({r["run_dir"] for r in lines}) == len(lines)  # one line per job
    return {Path(r["run_dir"]).name: r for r in lines}


def test_a_failing_job_stays_local(assets, tmp_path):
    """Two workers, three jobs, one of which fails: the others finish and results.jsonl says which and why."""
    jobs = manifest(assets, ONE_BROKEN, "fail.jsonl")
    runs = tmp_path / "runs"
    args = ["--device", "cpu", "batch", str(jobs), "-o", str(runs), "--workers", "2", "--retries", "1", "--", *FAST]
    result = runner.invoke(a3d_app("batch", batch), args)
    assert result.exit_code == 3, result.output  # jobs failed for a reason the user can fix
    got = results(runs)
    assert set(got) == {"a", "b", "c"}
    for name in ("a", "c"):
        r = got[name]
        assert r["status"] == "done" and r["exit_code"] == 0 and r["error"] is None
        assert list(r["stages"]) == ["prepare", "reconstruct", "mesh-animate", "export"]
        assert all(s["seconds"] > 0 and not s["skipped"] for s in r["stages"].values())
        assert r["peak_memory_bytes"] > 0 and r["device"] == "cpu"
        assert (runs / name / "export" / "preview.mp4") in {Path(p) for p in r["outputs"]}
        assert all(Path(p).is_file() for p in r["outputs"])
    bad = got["b"]
    assert bad["status"] == "failed" and bad["exit_code"] == 2
    assert "v0_f00.png" in bad["error"] or "image" in bad["error"].lower()
    assert bad["attempts"] == 1  # a problem with the input is not retried
    log = Path(bad["log"]).read_text()
    assert "error: " + bad["error"] in log and "exit code 2" in log
    assert "failed" in result.stderr and "b.ply" not in result.stdout


def _lock_is_free(run: Path) -> bool:
    fd = os.open(run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_killed_batch_resumes(assets, tmp_path):
    """SIGKILL the batch while its second job reconstructs; the same command then does only what is missing."""
    # b fits longer than the other jobs, so that the kill lands inside its reconstruct stage
    b = {"input": "b.ply", "video": "gt", "reconstruct-steps": 40}
    jobs = manifest(assets, [{"input": "a.ply", "video": "gt"}, b], "resume.jsonl")
    runs = tmp_path / "runs"
    args = ["--device", "cpu", "batch", str(jobs), "-o", str(runs), "--workers", "1", "--", *FAST]
    proc = subprocess.Popen(
        [sys.executable, "-m", "a3d_cli.cli", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while _status(runs / "b", "reconstruct") != "running":
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the second job never reached reconstruct"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while not _lock_is_free(runs / "b"):  # the orphaned worker ends by itself
        assert time.monotonic() < deadline, "the worker outlived its killed batch"
        time.sleep(0.2)
    assert _status(runs / "a", "export") == "done" and _status(runs / "b", "prepare") == "done"
    assert _status(runs / "b", "reconstruct") == "running"  # the worker died with its driver, mid-stage
    assert not (runs / "b" / "motion" / "coarse.safetensors").exists()  # nothing half-written

    result = runner.invoke(a3d_app("batch", batch), args)
    assert result.exit_code == 0, result.output
    got = results(runs)
    assert got["a"]["status"] == "skipped"  # finished before the kill: nothing re-run
    assert all(s["skipped"] for s in got["a"]["stages"].values())
    b = got["b"]["stages"]
    assert got["b"]["status"] == "done" and b["prepare"]["skipped"] and not b["reconstruct"]["skipped"]
    assert (runs / "b" / "export" / "animated.glb").is_file()
    assert not (runs / "b" / ".staging").exists()


def test_ray_actors_run_the_same_jobs(assets, tmp_path):
    """`--ray auto` on a local Ray instance (CPU actors): the same records in the same results.jsonl."""
    jobs = manifest(assets, ONE_BROKEN, "ray.jsonl")
    runs = tmp_path / "runs"
    args = ["--device", "cpu", "batch", str(jobs), "-o", str(runs), "--ray", "auto", "--workers", "2", "--", *FAST]
    result = runner.invoke(a3d_app("batch", batch), args)
    assert result.exit_code == 3, result.output
    got = results(runs)
    assert {n: r["status"] for n, r in got.items()} == {"a": "done", "b": "failed", "c": "done"}
    assert got["b"]["exit_code"] == 2 and Path(got["b"]["log"]).is_file()
    assert all(Path(p).is_file() for n in ("a", "c") for p in got[n]["outputs"])
    assert {got[n]["worker"] for n in got} <= {0, 1}


def test_a_worker_builds_sv3d_once_for_its_image_jobs(assets, tmp_path):
    """Two object images through one worker process (orbit → lift → prepare → …): one SV3D build between them,
    and results.jsonl says which job paid for it."""
    from helpers import small_photo

    from a3d_cli.models.sv3d.testing import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "tiny_sv3d_p.safetensors", "sv3d_p", seed=0)
    for name in ("p.png", "q.png"):
        small_photo(assets / name)
    image = {"video": "gt", "orbit-steps": 2, "lift-steps": 3, "lift-resolution": 32}
    jobs = manifest(assets, [{"input": "p.png", **image}, {"input": "q.png", **image}], "images.jsonl")
    runs = tmp_path / "runs"
    args = ["--device", "cpu", "batch", str(jobs), "-o", str(runs), "--workers", "1", "--",
            *FAST, "--sv3d-checkpoint", str(ckpt)]  # fmt: skip
    result = runner.invoke(a3d_app("batch", batch), args)
    assert result.exit_code == 0, result.output
    got = results(runs)
    assert set(got) == {"p", "q"} and all(r["status"] == "done" for r in got.values())
    assert all(list(r["stages"])[:3] == ["orbit", "lift", "prepare"] for r in got.values())
    built = {name: r["models_built"] for name, r in got.items()}
    assert sorted(built.values(), key=len) == [{}, {"sv3d": 1}], built  # the first job builds, the second reuses
    assert all((runs / name / "orbit" / "frame_20.png").is_file() for name in got)


def test_a_batch_after_a_recipe_bump_reruns_that_stage_and_keeps_the_rest(assets, tmp_path):
    """Run folders finished before `prepare`'s recipe changed (their entries record none): the same batch runs
    `prepare` again, says why in the job's log, and keeps every later stage, whose inputs came out the same."""
    from a3d_cli.stages import prepare

    jobs = manifest(assets, [{"input": "a.ply", "video": "gt"}], "recipe.jsonl")
    runs = tmp_path / "runs"
    args = ["--device", "cpu", "batch", str(jobs), "-o", str(runs), "--workers", "1", "--", *FAST]
    assert runner.invoke(a3d_app("batch", batch), args).exit_code == 0
    run_manifest = runs / "a" / "a3d.json"
    data = json.loads(run_manifest.read_text())
    del data["stages"]["prepare"]["recipe"]
    run_manifest.write_text(json.dumps(data))

    result = runner.invoke(a3d_app("batch", batch), args)
    assert result.exit_code == 0, result.output
    job = results(runs)["a"]
    assert job["status"] == "done"
    assert {name: s["skipped"] for name, s in job["stages"].items()} == {
        "prepare": False, "reconstruct": True, "mesh-animate": True, "export": True
    }
    expected = f"prepare: made by an older a3d (recipe 1, now {prepare.RECIPE}), running again"
    assert expected in Path(job["log"]).read_text()
