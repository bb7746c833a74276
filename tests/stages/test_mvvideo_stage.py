"""`a3d mvvideo` end to end on a prepared example run (tiny random MV-VDM), and its bad-input paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO, a3d_app
from typer.testing import CliRunner

from a3d_cli.commands.mvvideo import mvvideo as mvvideo_command
from a3d_cli.errors import OptionError
from a3d_cli.stages import mvvideo as stage
from a3d_cli.stages.base import Runtime

EXAMPLE = REPO / "examples" / "assets" / "fox.glb"
runner = CliRunner()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """`a3d prepare` on the bundled example asset (once per module)."""
    from a3d_cli.stages import prepare

    run = tmp_path_factory.mktemp("prepared") / "RUN"
    prepare.run(run, prepare.PrepareOptions(model=str(EXAMPLE)), Runtime(seed=0))
    return run


@pytest.fixture
def run_copy(prepared, tmp_path) -> Path:
    dst = tmp_path / "RUN"
    shutil.copytree(prepared, dst)
    return dst


@pytest.fixture
def tiny_weights(monkeypatch):
    """Swap the released weights for the tiny random model (no files needed)."""
    from a3d_cli.models.mvvdm.components import tiny_components

    monkeypatch.setattr(stage, "resolve_weights", lambda opts: {})
    monkeypatch.setattr(stage, "load_model", lambda opts, weights, device, seed: tiny_components(seed).to(device))


def test_cli_end_to_end_writes_64_frames_cameras_and_preview(run_copy, tiny_weights):
    args = ["--device", "cpu", "--seed", "3", "mvvideo", str(run_copy), "--prompt", "a fox wags its tail",
            "--steps", "1", "--freeinit-iters", "2"]
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), args)
    assert result.exit_code == 0, result.output + result.stderr
    out = run_copy / "mvvideo"
    frames = sorted(p.name for p in out.glob("*.png"))
    assert frames == sorted(f"v{v}_f{f:02d}.png" for v in range(4) for f in range(16))

    from a3d_cli.io.images import load_png
    from a3d_cli.io.video import read_mp4

    img = load_png(out / "v2_f07.png")
    assert img.shape == (256, 256, 3)
    cams = json.loads((out / "cameras.json").read_text())
    views = json.loads((run_copy / "static" / "views" / "cameras.json").read_text())
    assert [c["c2w"] for c in cams["cameras"]] == [c["c2w"] for c in views["cameras"]]
    assert (cams["width"], cams["height"], cams["num_frames"]) == (256, 256, 16)
    preview = read_mp4(out / "preview.mp4")
    assert preview.shape == (16, 256, 1024, 3)
    manifest = json.loads((run_copy / "a3d.json").read_text())["stages"]["mvvideo"]
    assert manifest["status"] == "done" and manifest["seed"] == 3
    assert manifest["metrics"]["unet_evaluations"] == 2 and manifest["metrics"]["freeinit_passes"] == 2
    assert list(manifest["metrics"]["seconds_per_phase"]) == ["inputs_and_model", "sampling_and_decoding", "writing"]
    assert manifest["params"]["prompt"] == "a fox wags its tail"

    # what `a3d reconstruct` reads: the naming and the count it checks
    from a3d_cli.io.video_frames import list_video_frames

    listed = list_video_frames(out)
    assert listed[3][15].name == "v3_f15.png"


@pytest.mark.parametrize("flags,grid", [([], "reference"), (["--freeinit-grid", "centred"], "centred")])
def test_freeinit_grid_reaches_the_filter(run_copy, tiny_weights, monkeypatch, flags, grid):
    from a3d_cli.models.mvvdm import sampling

    seen: list[str] = []
    real = sampling.low_pass_filter

    def recording(*args, **kwargs):  # noqa: ANN202
        seen.append(args[7] if len(args) > 7 else kwargs.get("grid", "reference"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "low_pass_filter", recording)
    args = ["--device", "cpu", "mvvideo", str(run_copy), "--prompt", "a fox runs", "--steps", "1",
            "--freeinit-iters", "2", *flags]
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), args)
    assert result.exit_code == 0, result.output + result.stderr
    assert seen == [grid]
    manifest = json.loads((run_copy / "a3d.json").read_text())["stages"]["mvvideo"]
    assert manifest["params"]["freeinit_grid"] == grid


def test_stage_skips_when_unchanged_and_reruns_the_same_video_with_force(run_copy):
    opts = stage.MVVideoOptions(prompt="a fox jumps", steps=1, freeinit_iters=0, tiny_model=True)
    first = stage.run(run_copy, opts, Runtime(seed=1))
    pixels = (run_copy / "mvvideo" / "v1_f05.png").read_bytes()
    again = stage.run(run_copy, opts, Runtime(seed=1))
    assert again.skipped and not first.skipped
    forced = stage.run(run_copy, opts, Runtime(seed=1, force=True))
    assert not forced.skipped
    assert (run_copy / "mvvideo" / "v1_f05.png").read_bytes() == pixels  # same seed, same video


def test_prepare_run_again_for_its_recipe_with_the_same_views_leaves_mvvideo_skipped(run_copy, monkeypatch):
    """A run folder made before `prepare`'s last recipe bump: `prepare` runs again and says why; the views it
    writes for this untouched asset are the same bytes, so `mvvideo`, which reads only them, stays skipped.
    (The sampler is a stand-in of grey frames: what is checked is the stage's bookkeeping, not its video.)"""
    import torch

    from a3d_cli.models.mvvdm import pipeline
    from a3d_cli.progress import RecordingProgress
    from a3d_cli.stages import prepare

    def grey_video(*args, **kwargs) -> pipeline.MVVideoOutput:
        return pipeline.MVVideoOutput(frames=torch.full((4, 16, 3, 8, 8), 0.5), latents=torch.zeros(4, 16, 4, 1, 1))

    monkeypatch.setattr(pipeline, "generate_mvvideo", grey_video)

    assert prepare.RECIPE > 1  # this release changed how prepare reads textures: older runs must re-run it
    opts = stage.MVVideoOptions(prompt="a fox jumps", steps=1, freeinit_iters=0, tiny_model=True)
    stage.run(run_copy, opts, Runtime(seed=1))
    manifest = json.loads((run_copy / "a3d.json").read_text())
    del manifest["stages"]["prepare"]["recipe"]  # as a3d wrote entries before it recorded recipes
    (run_copy / "a3d.json").write_text(json.dumps(manifest))
    views = {p.name: p.read_bytes() for p in (run_copy / "static" / "views").iterdir()}
    progress = RecordingProgress()
    again = prepare.run(run_copy, prepare.PrepareOptions(model=str(EXAMPLE)), Runtime(seed=0, progress=progress))
    assert not again.skipped
    assert f"prepare: made by an older a3d (recipe 1, now {prepare.RECIPE}), running again" in progress.messages
    assert {p.name: p.read_bytes() for p in (run_copy / "static" / "views").iterdir()} == views
    assert stage.run(run_copy, opts, Runtime(seed=1)).skipped


def test_run_folder_without_prepare_outputs_is_a_user_error(tmp_path, tiny_weights):
    run = tmp_path / "RUN"
    run.mkdir()
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), ["--device", "cpu", "mvvideo", str(run), "--prompt", "a fox runs"])
    assert result.exit_code == 2
    assert "static/views" in result.stderr and "a3d prepare" in result.stderr
    assert not (run / "mvvideo").exists()


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt_is_a_user_error(run_copy, prompt):
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), ["--device", "cpu", "mvvideo", str(run_copy), "--prompt", prompt])
    assert result.exit_code == 2
    assert "--prompt is empty" in result.stderr
    with pytest.raises(OptionError):
        stage.MVVideoOptions(prompt=prompt)


def test_missing_weights_name_each_file_and_the_fetch_commands(run_copy, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("HF_HUB_CACHE", str(empty / "hub"))
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), ["--device", "cpu", "mvvideo", str(run_copy), "--prompt", "a fox runs"])
    assert result.exit_code == 2
    text = " ".join((result.stderr).split())
    for name, repo, file in [
        ("mvdream_sd15", "yanqinJiang/mvdream-sd1.5-diffusers", "unet"),
        ("ip_adapter_sd15", "h94/IP-Adapter", "ip-adapter_sd15.bin"),
        ("ip_adapter_image_encoder", "h94/IP-Adapter", "config.json"),
        ("animate3d_motion_modules", "yanqinJiang/animate3d", "animate3d_motion_modules.ckpt"),
    ]:
        assert f"a3d weights fetch {name}" in text
        assert repo in text and file in text
    assert not (run_copy / "mvvideo").exists()


@pytest.mark.parametrize("flag,value,message", [
    ("--freeinit-method", "box", "--freeinit-method"),
    ("--freeinit-grid", "shifted", "--freeinit-grid"),
    ("--steps", "0", "--steps"),
    ("--dtype", "fp8", "--dtype"),
    ("--freeinit-iters", "-1", "--freeinit-iters"),
])
def test_bad_options_are_user_errors(run_copy, flag, value, message):
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), ["--device", "cpu", "mvvideo", str(run_copy), "--prompt", "x", flag, value])
    assert result.exit_code == 2
    assert message in result.stderr and "hint:" in result.stderr


def test_the_command_takes_the_tiny_model_like_sds_and_animate(monkeypatch, tmp_path):
    from a3d_cli.stages import mvvideo as stage

    seen = {}
    monkeypatch.setattr(stage, "run", lambda run_dir, opts, rt: seen.setdefault("opts", opts) and [])
    monkeypatch.setattr("a3d_cli.commands.mvvideo.run_and_report", lambda ctx, call, force=False: call(None))
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), ["mvvideo", str(tmp_path), "-p", "x", "--tiny-model"])
    assert result.exit_code == 0, result.output
    assert seen["opts"].tiny_model is True


def test_casting_the_tiny_components_prints_no_float32_warning():
    """diffusers' own `to(dtype)` warns about float32 modules even when a model lists none; a fresh process
    shows what a user would see on stderr."""
    import subprocess
    import sys

    code = (
        "import torch; from a3d_cli.models.mvvdm import tiny_components; comp = tiny_components(); "
        "comp.to('cpu', torch.bfloat16); print(next(comp.vae.parameters()).dtype)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "torch.bfloat16" and "should be kept in float32" not in done.stderr


def test_nan_from_the_model_is_a_user_error_with_a_dtype_hint_and_no_output(run_copy, monkeypatch):
    """NaN from the network at the CLI: exit 2, one error line naming the precision, a hint, nothing written.

    (In fp32 on the CPU here; the fp16 hint naming --dtype is pinned in test_precision_guard.py.)"""
    from a3d_cli.models.mvvdm.components import tiny_components

    def poisoned(opts, weights, device, seed):  # noqa: ANN001, ANN202
        comp = tiny_components(seed).to(device)
        comp.unet.conv_out.register_forward_hook(lambda _m, _i, out: out * float("nan"))
        return comp

    monkeypatch.setattr(stage, "resolve_weights", lambda opts: {})
    monkeypatch.setattr(stage, "load_model", poisoned)
    args = ["--device", "cpu", "mvvideo", str(run_copy), "--prompt", "a fox runs", "--steps", "1", "--freeinit-iters", "1"]
    result = runner.invoke(a3d_app("mvvideo", mvvideo_command), args)
    assert result.exit_code == 2, result.output + result.stderr
    assert "error:" in result.stderr and "NaN or infinite" in result.stderr and "ran in fp32" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run_copy / "mvvideo").exists() or not any((run_copy / "mvvideo").iterdir())
