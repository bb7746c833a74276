"""`a3d reconstruct`: options and presets, the frame schedule, video-folder checks and bad input (exit 2,
nothing overwritten). The fit itself is scored on ground truth in test_reconstruct_gt.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from helpers import VIDEO_SIZE as SIZE
from helpers import reconstruct_app as _cli
from helpers import reconstruct_run_folder as _run_folder
from helpers import reconstruct_static as _static
from helpers import video_folder as _video

from a3d_cli.errors import InputError, OptionError, RunFolderError
from a3d_cli.gaussians.motion_field import COARSE_GRID, MotionField, MotionFieldConfig
from a3d_cli.gaussians.motion_fit import FitSettings, active_frames, subsample_splats
from a3d_cli.gaussians.motion_io import load_motion, save_motion
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.io.images import save_png
from a3d_cli.stages import reconstruct as stage
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.reconstruct import ReconstructOptions
from a3d_cli.stages.reconstruct_defaults import PRESET_NAMES


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is as fast, and far faster when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- options and schedule ----------------------------------------------------------------------------


def test_presets_follow_the_device_and_overrides_win():
    name, s = ReconstructOptions().resolve("cpu")
    assert name == "quickstart" and s.resolution == 128 and s.max_splats > 0 and s.frames_per_step > 0
    assert s.field.grid_sizes == (COARSE_GRID, *MotionFieldConfig().grid_sizes)  # a coarse level, then the reference's
    name, s = ReconstructOptions().resolve("cuda")
    assert name == "reference"
    assert s.field == MotionFieldConfig(grid_sizes=(COARSE_GRID, *MotionFieldConfig().grid_sizes))  # + a coarse level
    assert (s.steps, s.steps_per_frame, s.resolution, s.frames_per_step, s.max_splats) == (800, 50, 256, 0, 0)
    assert (s.lr_grid, s.lr_heads, s.lr_global, s.adam_eps) == (0.01, 1e-4, 1e-3, 1e-15)
    assert (s.lambda_mask, s.lambda_arap, s.arap_neighbours, s.arap_samples) == (100.0, 12.0, 3, 512)
    # the reference preset's measured departures: the affine prior on 32 neighbours, annealed 48 → 3, RGB weight 300
    assert (s.motion_prior, s.affine_neighbours, s.lambda_rgb) == ("affine", stage.REFERENCE_AFFINE_NEIGHBOURS, 300.0)
    assert s.arap_anneal == stage.REFERENCE_ARAP_ANNEAL == 4.0 and stage.REFERENCE_AFFINE_NEIGHBOURS == 32
    name, animate3d = ReconstructOptions(preset="animate3d").resolve("cuda")
    assert name == "animate3d" and animate3d == replace(FitSettings(), grad_fraction=0.1)  # Animate3D's, every one
    assert animate3d.motion_prior == "arap" and animate3d.lambda_rgb == 100.0 and animate3d.arap_anneal == 1.0
    undone = ReconstructOptions(preset="reference", coarse_level=False, arap_anneal=1.0, motion_prior="arap")
    assert replace(undone.resolve("cuda")[1], lambda_rgb=100.0, affine_neighbours=None) == FitSettings()  # no more
    assert ReconstructOptions(preset="reference", coarse_level=False).resolve("cuda")[1].arap_anneal == 4.0
    assert ReconstructOptions(preset="quickstart", coarse_level=False).resolve("cpu")[1].field == MotionFieldConfig()
    assert ReconstructOptions(coarse_level=True).resolve("cuda")[1].field == s.field  # already there: not twice
    assert s.graph_whole_step and not ReconstructOptions(graph_whole_step=False).resolve("cuda")[1].graph_whole_step
    assert ReconstructOptions().resolve("cpu")[1].motion_prior == "arap"  # the quickstart keeps ARAP
    assert ReconstructOptions(motion_prior="arap").resolve("cuda")[1].motion_prior == "arap"
    assert ReconstructOptions(affine_neighbours=8).resolve("cuda")[1].affine_neighbours == 8
    with pytest.raises(OptionError, match="affine motion prior only") as ignored:  # the quickstart fits ARAP
        ReconstructOptions(affine_neighbours=8).resolve("cpu")
    assert "--motion-prior affine" in (ignored.value.hint or "")
    assert ("auto", *stage.PRESETS) == PRESET_NAMES  # the command line's list is the stage's
    with pytest.raises(OptionError, match="affine-neighbours"):
        ReconstructOptions(affine_neighbours=3).resolve("cuda")
    name, s = ReconstructOptions(preset="reference", steps=400, resolution=64).resolve("cpu")
    assert name == "reference" and s.steps == 400 and s.steps_per_frame == 25 and s.resolution == 64
    with pytest.raises(OptionError):
        ReconstructOptions(preset="fast")
    with pytest.raises(OptionError):
        FitSettings(grad_fraction=0.0)
    with pytest.raises(OptionError):
        FitSettings(field=MotionFieldConfig(num_frames=8))


def test_progressive_schedule_matches_the_reference():
    s = FitSettings()
    assert active_frames(0, s) == [1]
    assert active_frames(49, s) == [1]
    assert active_frames(50, s) == [1, 2]
    assert active_frames(699, s) == list(range(1, 15))
    assert active_frames(700, s) == list(range(1, 16))  # every moving frame from step 700 on
    assert active_frames(799, s) == list(range(1, 16))
    light = FitSettings(frames_per_step=2)
    g = torch.Generator().manual_seed(0)
    picks = [active_frames(400, light, g) for _ in range(50)]
    assert all(len(p) == 2 and p[-1] == 9 and 1 <= p[0] < 9 for p in picks)  # newest + one earlier frame
    assert len({p[0] for p in picks}) > 3


def test_subsample_keeps_coverage_by_growing_scales():
    g = _static(n=400)
    sub = subsample_splats(g, 100, torch.Generator().manual_seed(0))
    assert len(sub) == 100
    torch.testing.assert_close(sub.scales, torch.full((100, 3), 0.1))  # sqrt(400 / 100) = 2
    assert subsample_splats(g, 0, torch.Generator()) is g and subsample_splats(g, 1000, torch.Generator()) is g


# --- the stage with bad input: exit 2, nothing overwritten ------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda d: _video(d, frames=range(15)),
        lambda d: _video(d, views=range(2)),
        lambda d: _video(d, skip={(3, 0)}),
        lambda d: (_video(d), save_png(d / "v0_f03.png", torch.full((8, 8, 3), 0.5))),
    ],
)
def test_cli_bad_input_exits_2_and_keeps_the_old_motion(tmp_path, make):
    from typer.testing import CliRunner

    run = _run_folder(tmp_path)
    old = save_motion(
        run / "motion" / "coarse.safetensors",
        MotionField(MotionFieldConfig.tiny()),
        read_ply(run / "static" / "gaussians.ply"),
    )
    before = old.read_bytes()
    video = tmp_path / "video"
    make(video)
    result = CliRunner().invoke(_cli(), ["--device", "cpu", "reconstruct", str(run), "--video", str(video)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "hint:" in result.output
    assert old.read_bytes() == before
    assert not (run / "motion" / "coarse_preview.mp4").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--motion-prior", "rigid"], "--motion-prior must be arap or affine"),
        (["--affine-neighbours", "3"], "--affine-neighbours must be more than 3"),
        (["--affine-neighbours", "16"], "--affine-neighbours applies to the affine motion prior only"),  # quickstart
        (["--preset", "fast"], "--preset must be one of auto, reference, quickstart, animate3d"),
    ],
)
def test_cli_refuses_a_motion_prior_it_cannot_fit_before_writing(tmp_path, option, message):
    from typer.testing import CliRunner

    run = _run_folder(tmp_path)
    video = _video(tmp_path / "video")
    args = ["--device", "cpu", "reconstruct", str(run), "--video", str(video), *option]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert not (run / "motion").exists()


def test_missing_static_model_or_video(tmp_path):
    video = _video(tmp_path / "video")
    with pytest.raises(RunFolderError, match="static/gaussians.ply") as e:
        stage.run(tmp_path / "EMPTY", ReconstructOptions(video=str(video)))
    assert "a3d prepare" in e.value.hint
    run = _run_folder(tmp_path)
    with pytest.raises(RunFolderError, match="mvvideo") as e:
        stage.run(run, ReconstructOptions())
    assert "a3d mvvideo" in e.value.hint
    with pytest.raises(InputError, match="does not exist"):
        stage.run(run, ReconstructOptions(video=str(tmp_path / "nope")))


def test_motion_from_a_different_static_model_is_refused(tmp_path):
    """A motion file in RUN no longer matches once static/gaussians.ply is replaced."""
    run = _run_folder(tmp_path)
    path = save_motion(
        run / "motion" / "coarse.safetensors",
        MotionField(MotionFieldConfig.tiny()),
        read_ply(run / "static" / "gaussians.ply"),
    )
    write_ply(run / "static" / "gaussians.ply", _static(seed=5))
    with pytest.raises(InputError, match="different static model") as e:
        load_motion(path, static=read_ply(run / "static" / "gaussians.ply"))
    assert e.value.exit_code == 2


def test_cli_fits_the_coarse_level_unless_told_not_to(tmp_path):
    """The reference preset fits the coarse level in front of Animate3D's two with the affine prior annealed;
    --no-coarse-level --arap-anneal 1 fits Animate3D's field with a constant weight, --motion-prior arap its prior."""
    from typer.testing import CliRunner

    run = _run_folder(tmp_path)
    video = _video(tmp_path / "video")
    common = ["--device", "cpu", "reconstruct", str(run), "--video", str(video), "--preset", "reference"]
    common += ["--steps", "2", "--resolution", str(SIZE), "--no-preview"]
    fields = []
    anneals = []
    priors = []
    for extra in ([], ["--no-coarse-level", "--arap-anneal", "1", "--force"], ["--motion-prior", "arap", "--force"]):
        result = CliRunner().invoke(_cli(), [*common, *extra])
        assert result.exit_code == 0, result.output
        static = read_ply(run / "static" / "gaussians.ply")
        field = load_motion(run / "motion" / "coarse.safetensors", static=static).field
        manifest = json.loads((run / "a3d.json").read_text())["stages"]["reconstruct"]
        assert manifest["params"]["settings"]["field"]["grid_sizes"] == [list(g) for g in field.config.grid_sizes]
        fields.append(field)
        anneals.append(manifest["params"]["settings"]["arap_anneal"])
        priors.append(manifest["params"]["settings"]["motion_prior"])
    assert anneals == [4.0, 1.0, 4.0] and priors == ["affine", "affine", "arap"]
    with_coarse, animate3d, _arap = fields
    assert with_coarse.config.grid_sizes == (COARSE_GRID, *animate3d.config.grid_sizes)
    assert animate3d.config == MotionFieldConfig()
    assert with_coarse.config.feature_dim == animate3d.config.feature_dim + animate3d.config.grid_channels
    assert len(list(with_coarse.grid_parameters())) > len(list(animate3d.grid_parameters()))


def test_the_stage_runs_without_importing_the_diffusion_libraries(tmp_path):
    """`run_stage` wraps every stage in the backend-flag guard; importing it must not drag in diffusers (whose
    import is slow), which reconstruct never uses."""
    import subprocess
    import sys

    from helpers import REPO

    run = _run_folder(tmp_path)
    video = _video(tmp_path / "video")
    code = (
        "import json, sys; from pathlib import Path; from a3d_cli.stages import reconstruct as stage; "
        "from a3d_cli.stages.base import Runtime; "
        f"stage.run(Path({str(run)!r}), stage.ReconstructOptions(video={str(video)!r}, preset='quickstart', steps=2, "
        f"resolution={SIZE}, preview=False), Runtime(device='cpu')); "
        "print('LOADED', json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'diffusers', 'transformers'})))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run / "motion" / "coarse.safetensors").is_file()
    assert json.loads(res.stdout.split("LOADED ", 1)[1]) == []


def test_tiny_fit_writes_motion_preview_and_metrics(tmp_path):
    """End to end on a 16-pixel video: files, manifest metrics, the preview layout, skipping on re-run."""
    from a3d_cli.io.video import read_mp4

    run = _run_folder(tmp_path)
    video = _video(tmp_path / "video")
    settings = FitSettings(
        steps=4, steps_per_frame=1, frames_per_step=2, resolution=SIZE, field=MotionFieldConfig.tiny(), arap_samples=16
    )
    opts = ReconstructOptions(video=str(video), settings=settings)
    res = stage.run(run, opts, Runtime(device="cpu"))
    assert {p.name for p in res.outputs} == {"coarse.safetensors", "coarse_preview.mp4"}
    m = res.metrics
    assert m["preset"] == "custom" and m["masks"] == "computed" and len(m["psnr_per_view"]) == 4 and m["steps"] == 4
    phases = m["seconds_per_phase"]
    assert list(phases) == ["inputs", "masks", "fit", "scoring_and_writing"] and min(phases.values()) >= 0
    assert phases["fit"] >= m["fit_seconds"] - 0.01  # the loop sits inside its phase
    motion = load_motion(run / "motion" / "coarse.safetensors", static=read_ply(run / "static" / "gaussians.ply"))
    assert motion.field.config == settings.field and motion.metadata["stage"] == "reconstruct"
    frames = read_mp4(run / "motion" / "coarse_preview.mp4")
    assert frames.shape == (16, 2 * SIZE, 4 * SIZE, 3)  # targets above renders, 4 views side by side
    manifest = json.loads((run / "a3d.json").read_text())["stages"]["reconstruct"]
    assert manifest["status"] == "done" and manifest["params"]["settings"]["steps"] == 4
    assert manifest["metrics"]["psnr_per_view"] == m["psnr_per_view"]
    claim = {"frames": 16, "fps": 8.0, "width": 4 * SIZE, "height": 2 * SIZE}
    assert manifest["metrics"]["videos"] == {"motion/coarse_preview.mp4": claim}
    assert stage.run(run, opts, Runtime(device="cpu")).skipped
