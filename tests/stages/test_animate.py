"""`a3d animate`: the chain plan (pure), option checks, and early exit-2 errors; shared example builders."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import animate_app as make_app
from helpers import blob_mesh as make_mesh
from helpers import sliding_video as make_video
from typer.testing import CliRunner

from a3d_cli.errors import InputError, OptionError, WeightsMissing
from a3d_cli.stages.animate import AnimateOptions, ChainPlan, plan_chain, stage_calls

runner = CliRunner()

# Small enough for 2 shared CPU cores: a few hundred splats, 32² frames, a handful of fit steps.


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("animate_example")
    mesh = make_mesh(root / "blob.ply")
    return mesh, make_video(mesh, root / "video")


# -- the plan (pure) ----------------------------------------------------------------------------------------------------


def test_plan_with_prompt_and_weights_runs_everything():
    plan = plan_chain(AnimateOptions(model="m.glb", prompt="jumps"), mesh_input=True, weights_missing=[])
    assert plan.stages == ("prepare", "mvvideo", "reconstruct", "sds", "mesh-animate", "export")
    assert plan.notices == ()


def test_plan_with_video_and_no_weights_skips_sds_with_a_notice():
    plan = plan_chain(
        AnimateOptions(model="m.glb", prompt="jumps", video="v"), mesh_input=True, weights_missing=["mvdream_sd15"]
    )
    assert plan.stages == ("prepare", "reconstruct", "mesh-animate", "export")
    assert len(plan.notices) == 1 and "mvdream_sd15" in plan.notices[0] and "--no-sds" in plan.notices[0]
    plan = plan_chain(AnimateOptions(model="m.ply", video="v"), mesh_input=False, weights_missing=[])
    assert plan.stages == ("prepare", "reconstruct", "export") and "no --prompt" in plan.notices[0]


def test_plan_flags():
    opts = AnimateOptions(model="m.glb", prompt="jumps", sds=False, output="splats")
    plan = plan_chain(opts, mesh_input=True, weights_missing=[])
    assert plan.stages == ("prepare", "mvvideo", "reconstruct", "export")
    assert any("--no-sds" in n for n in plan.notices) and any("--splats" in n for n in plan.notices)
    with pytest.raises(InputError, match="splat file"):
        plan_chain(AnimateOptions(model="m.ply", prompt="jumps", output="mesh"), mesh_input=False, weights_missing=[])


def test_plan_refuses_early_when_generation_needs_missing_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("A3D_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsMissing, match="animate3d_motion_modules"):
        plan_chain(
            AnimateOptions(model="m.glb", prompt="jumps"), mesh_input=True, weights_missing=["animate3d_motion_modules"]
        )
    with pytest.raises(WeightsMissing):  # --sds insists on refinement
        plan_chain(
            AnimateOptions(model="m.glb", prompt="jumps", video="v", sds=True),
            mesh_input=True,
            weights_missing=["mvdream_sd15"],
        )


def test_options_need_a_prompt_or_a_video():
    with pytest.raises(OptionError, match="--prompt"):
        AnimateOptions(model="m.glb")
    with pytest.raises(OptionError, match="--sds needs --prompt"):
        AnimateOptions(model="m.glb", video="v", sds=True)


# -- errors (the end-to-end run, resume and option changes are in test_animate_resume.py) ---------------------------


def test_bad_input_is_exit_2_before_anything_is_written(tmp_path):
    run = tmp_path / "RUN"
    missing = tmp_path / "nope.glb"
    result = runner.invoke(make_app(), ["animate", str(missing), "--video", str(tmp_path), "-o", str(run)])
    assert result.exit_code == 2 and "error:" in result.stderr
    assert not run.exists()
    result = runner.invoke(make_app(), ["animate", str(missing), "-o", str(run)])
    assert result.exit_code == 2 and "--prompt" in result.stderr


def test_cli_flags_map_to_the_options(tmp_path, monkeypatch):
    """--mesh/--splats, --sds/--no-sds, -o and the default run folder reach AnimateOptions / run as documented."""
    from a3d_cli.stages import animate as stage

    seen: list[tuple[Path, AnimateOptions]] = []

    def fake_run(run_dir, opts, rt=None):
        seen.append((Path(run_dir), opts))
        return stage.AnimateResult(results=[], notices=("sds: skipped (test)",))

    monkeypatch.setattr(stage, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    base = ["--json", "animate", "fox.glb", "--prompt", "jumps"]
    cases = {
        (): ("auto", None),
        ("--splats",): ("splats", None),
        ("--mesh", "--no-sds"): ("mesh", False),
        ("--sds", "--splat-count", "500"): ("auto", True),
    }
    for extra, (output, sds) in cases.items():
        result = runner.invoke(make_app(), [*base, *extra])
        assert result.exit_code == 0, result.stderr
        run_dir, opts = seen[-1]
        assert (opts.output, opts.sds) == (output, sds), extra
        assert run_dir == Path("a3d-runs") / "fox" and Path(opts.model).is_absolute()
        assert "sds: skipped (test)" in result.stderr  # notices reach stderr even with --json
    assert seen[-1][1].splats == 500
    runner.invoke(make_app(), [*base, "-o", "elsewhere"])
    assert seen[-1][0] == Path("elsewhere")


def test_compile_flag_reaches_mvvideo_and_sds_options(tmp_path, monkeypatch):
    from a3d_cli.stages import animate as stage

    seen: list[AnimateOptions] = []
    monkeypatch.setattr(stage, "run", lambda run_dir, opts, rt=None: seen.append(opts) or stage.AnimateResult(results=[], notices=()))
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(make_app(), ["animate", "fox.glb", "--prompt", "jumps", "--compile"]).exit_code == 0
    assert seen[-1].compile is True
    assert runner.invoke(make_app(), ["animate", "fox.glb", "--prompt", "jumps"]).exit_code == 0
    assert seen[-1].compile is False


@pytest.mark.parametrize(
    ("stage_name", "module", "field", "cases", "mesh"),
    [
        ("mvvideo", "mvvideo", "freeinit_grid", [([], "reference"), (["--freeinit-grid", "centred"], "centred")], False),
        ("mesh-animate", "mesh_animate", "max_texture_size", [([], None), (["--max-texture-size", "2048"], 2048)], True),
    ],
)
def test_an_animate_flag_reaches_its_stage_options(tmp_path, monkeypatch, stage_name, module, field, cases, mesh):
    """The value typed to `a3d animate` (or its default) is the one the stage it belongs to runs with."""
    import importlib

    from a3d_cli.stages import animate as stage

    target = importlib.import_module(f"a3d_cli.stages.{module}")
    seen: list[AnimateOptions] = []
    ran: list = []
    monkeypatch.setattr(stage, "run", lambda run_dir, opts, rt=None: seen.append(opts) or stage.AnimateResult(results=[], notices=()))
    monkeypatch.setattr(target, "run", lambda run_dir, opts, rt=None: ran.append(opts))
    monkeypatch.chdir(tmp_path)
    for flags, value in cases:
        assert runner.invoke(make_app(), ["animate", "fox.glb", "--prompt", "jumps", *flags]).exit_code == 0
        assert getattr(seen[-1], field) == value
        calls = stage.stage_calls(seen[-1], stage.ChainPlan((stage_name,), (), mesh), tmp_path)
        calls[stage_name](None)
        assert getattr(ran[-1], field) == value  # the stage runs with it


@pytest.mark.parametrize(
    ("model", "changes", "flags"),
    [
        ("fox.glb", {"sv3d_model": "sv3d_u", "orbit_steps": 10}, "--sv3d-model, --orbit-steps"),
        ("fox.glb", {"lift_resolution": 128, "elevation": 20.0}, "--elevation, --lift-resolution"),
        ("photo.png", {"up": "+z", "front": "+x"}, "--up, --front"),
    ],
)
def test_options_the_input_kind_would_ignore_are_refused(model, changes, flags):
    with pytest.raises(OptionError, match=flags):
        AnimateOptions(model=model, video="video", **changes)


def test_options_of_the_input_kind_are_accepted():
    AnimateOptions(model="photo.png", video="video", sv3d_model="sv3d_u", lift_steps=50)
    AnimateOptions(model="fox.glb", video="video", up="+z", front="+x")


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("lift_resolution", 8, "--lift-resolution"), ("lift_steps", -3, "--lift-steps"), ("preview_size", 1, "--preview-size")],
)
def test_a_stage_option_error_names_the_animate_flag_the_user_typed(tmp_path, field, value, flag):
    """lift's own check says `--resolution`; through animate the user typed `--lift-resolution`."""
    opts = AnimateOptions(model="obj.png", video="v", orbit="o", **{field: value})
    plan = ChainPlan(("lift", "export"), (), True)
    with pytest.raises(OptionError) as info:
        stage_calls(opts, plan, tmp_path / "RUN")
    assert info.value.message.startswith(flag + " ")


# -- the texture limit of the animated mesh ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"max_texture_size": 16}, OptionError, "at least 32"),
        ({"max_texture_size": 2048, "output": "splats"}, OptionError, "--splats leaves out"),
    ],
)
def test_a_texture_limit_that_cannot_work_is_refused(changes, error, match):
    with pytest.raises(error, match=match):
        AnimateOptions(model="m.glb", video="v", **changes)


def test_a_texture_limit_on_a_splat_input_is_refused():
    """A 3DGS input has no animated mesh, so no texture the limit could size: refused, not ignored."""
    opts = AnimateOptions(model="m.ply", video="v", max_texture_size=2048)
    with pytest.raises(InputError, match="--max-texture-size sizes an animated mesh's texture"):
        plan_chain(opts, mesh_input=False, weights_missing=[])
    assert "mesh-animate" in plan_chain(opts, mesh_input=True, weights_missing=[]).stages
