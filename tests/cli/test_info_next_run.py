"""`a3d info RUN` tells which recorded stages the next run runs again, and why, and the runner then agrees.

One run folder is made for real (the weight-free `--video` chain of `a3d animate` at toy sizes:
prepare → reconstruct → mesh-animate → export) and copied for each test, which edits its manifest as an older
or newer a3d would have left it, asks `a3d info`, and, where it matters, runs `a3d animate` again to check that
the runner does what info said.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import ANIMATE_FAST, animate_app, blob_mesh, one_error_with_hint, sliding_video
from typer.testing import CliRunner

from a3d_cli.cli import app
from a3d_cli.io.manifest import digest_json

runner = CliRunner()
CHAIN = ["prepare", "reconstruct", "mesh-animate", "export"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, list[str]]:
    """A finished run folder and the `a3d animate` arguments that made it."""
    root = tmp_path_factory.mktemp("info_next_run")
    mesh = blob_mesh(root / "a.ply")
    video = sliding_video(mesh, root / "gt")
    run = root / "RUN"
    args = ["--device", "cpu", "animate", str(mesh), "--video", str(video), "-o", str(run), *ANIMATE_FAST]
    result = runner.invoke(animate_app(), args)
    assert result.exit_code == 0, result.output + result.stderr
    assert list(_manifest(run)["stages"]) == CHAIN
    return run, args


@pytest.fixture
def run(made, tmp_path) -> Path:
    """A copy of the finished run folder (under the same name's parent, so `animate` can be pointed at it)."""
    copy = tmp_path / "RUN"
    shutil.copytree(made[0], copy)
    return copy


def _manifest(run: Path) -> dict:
    return json.loads((run / "a3d.json").read_text())


def _edit(run: Path, edit) -> None:  # noqa: ANN001 - a function of the manifest's dict
    data = _manifest(run)
    edit(data["stages"])
    (run / "a3d.json").write_text(json.dumps(data))


def _next_run(run: Path, *options: str) -> dict:
    result = runner.invoke(app, ["--json", "info", str(run), *options])
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)["next_run"]


def _animate_again(made, run: Path) -> str:
    """Run the same `a3d animate` on the copy; its log (stderr)."""
    args = [str(run) if arg == str(made[0]) else arg for arg in made[1]]
    result = runner.invoke(animate_app(), args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stderr


def _skipped(log: str) -> set[str]:
    return {name for name in CHAIN if f"{name}: up to date, skipped" in log}


def test_a_folder_this_a3d_just_made_is_up_to_date_and_the_runner_skips_every_stage(made, run):
    stages = _next_run(run)["stages"]
    assert list(stages) == CHAIN
    for name, outlook in stages.items():
        assert outlook["verdict"] == "up_to_date", (name, outlook)
        assert outlook["reasons"] == [] and outlook["follows"] == []
        assert outlook["recipe"] == outlook["current_recipe"] == _manifest(run)["stages"][name]["recipe"]
    table = runner.invoke(app, ["info", str(run)])
    assert table.exit_code == 0
    assert "every stage is up to date" in table.stdout and "runs again" not in table.stdout
    assert _skipped(_animate_again(made, run)) == set(CHAIN)


@pytest.mark.parametrize("offset, made_by", [(-1, "an older"), (1, "a newer")], ids=["older", "newer"])
def test_a_stage_of_another_recipe_runs_again_in_the_runners_words_and_the_later_stages_follow(made, run, offset,
                                                                                               made_by):  # fmt: skip
    from a3d_cli.stages import prepare

    assert prepare.RECIPE > 1  # so that an older recipe (recipe - 1) is a valid one
    old = prepare.RECIPE + offset
    _edit(run, lambda stages: stages["prepare"].update(recipe=old))
    stages = _next_run(run)["stages"]

    said = f"made by {made_by} a3d (recipe {old}, now {prepare.RECIPE})"
    assert stages["prepare"]["verdict"] == "runs_again"
    assert stages["prepare"]["reasons"] == [{"kind": "recipe", "message": said, "paths": []}]
    assert (stages["prepare"]["recipe"], stages["prepare"]["current_recipe"]) == (old, prepare.RECIPE)
    for later in CHAIN[1:]:  # each reads static/gaussians.ply, which prepare writes
        assert stages[later]["verdict"] == "may_run_again", later
        assert "prepare" in stages[later]["follows"]
        assert [r["kind"] for r in stages[later]["reasons"]] == ["upstream"]
    table = runner.invoke(app, ["info", str(run)])
    assert f"prepare runs again: {said}" in table.stdout
    assert "reconstruct may run again: after prepare, if it writes other files than before" in table.stdout

    log = _animate_again(made, run)
    assert f"prepare: {said}, running again" in log  # the runner's own line: the same words
    assert "prepare" not in _skipped(log)


def test_an_option_this_a3d_added_since_makes_that_stage_run_again_as_info_says(made, run):
    """A run folder made by an a3d without mesh-animate's `rigidity_iterations`: its entry records neither the
    option nor a digest of it, so this a3d's run (which passes it, at its default) does not match it."""

    def as_older_a3d(stages: dict) -> None:
        entry = stages["mesh-animate"]
        del entry["params"]["rigidity_iterations"]
        entry["params_digest"] = digest_json({"params": entry["params"], "seed": entry["seed"]})

    _edit(run, as_older_a3d)
    stages = _next_run(run)["stages"]
    assert stages["mesh-animate"]["verdict"] == "runs_again"
    reasons = stages["mesh-animate"]["reasons"]
    assert [r["kind"] for r in reasons] == ["options"] and "new: rigidity_iterations" in reasons[0]["message"]
    assert stages["prepare"]["verdict"] == stages["reconstruct"]["verdict"] == "up_to_date"
    assert stages["export"]["verdict"] == "up_to_date"  # export reads nothing mesh-animate writes

    assert _skipped(_animate_again(made, run)) == {"prepare", "reconstruct", "export"}
    assert "rigidity_iterations" in _manifest(run)["stages"]["mesh-animate"]["params"]


def test_a_stage_rerun_with_other_files_makes_the_stages_reading_them_run_again(run):
    """`a3d prepare --force` with another splat count after the chain ran: the manifest says prepare finished after
    the others started, so their inputs from it are hashed (and only those), and they differ."""
    from a3d_cli.stages.base import Runtime
    from a3d_cli.stages.prepare import PrepareOptions
    from a3d_cli.stages.prepare import run as prepare

    recorded = _manifest(run)["stages"]["prepare"]["params"]
    prepare(run, PrepareOptions(**{**recorded, "splats": recorded["splats"] - 30}), Runtime(force=True))
    stages = _next_run(run)["stages"]
    assert stages["prepare"]["verdict"] == "up_to_date"
    for later in CHAIN[1:]:
        assert stages[later]["verdict"] == "runs_again", later
        inputs = [r for r in stages[later]["reasons"] if r["kind"] == "inputs"]
        assert inputs and "static/gaussians.ply" in inputs[0]["paths"]
        assert "static/gaussians.ply changed since it ran" in inputs[0]["message"]
        assert "static/gaussians.ply" in stages[later]["hashed_inputs"]


def _one_minute_apart(stages: dict) -> None:
    """Each stage started a minute after the one before it finished (as on real hardware)."""
    for i, name in enumerate(CHAIN):
        stages[name]["started"] = f"2026-01-01T10:{2 * i:02d}:00+00:00"
        stages[name]["finished"] = f"2026-01-01T10:{2 * i + 1:02d}:00+00:00"


def test_inputs_are_hashed_only_when_asked_or_written_again_after_the_stage_ran(run):
    _edit(run, _one_minute_apart)
    cheap = _next_run(run)
    assert cheap["inputs_hashed"] == "rewritten"
    assert all(s["hashed_inputs"] == [] and s["verdict"] == "up_to_date" for s in cheap["stages"].values())

    (run / "motion" / "coarse.safetensors").write_bytes(b"changed by hand")
    assert all(s["verdict"] == "up_to_date" for s in _next_run(run)["stages"].values())  # not hashed, not seen
    full = _next_run(run, "--check-inputs")
    assert full["inputs_hashed"] == "all"
    recorded = _manifest(run)["stages"]
    for name in CHAIN:
        read = sorted(rel for rel in recorded[name]["inputs"] if not rel.startswith("/"))
        assert sorted(full["stages"][name]["hashed_inputs"]) == read
    assert full["stages"]["reconstruct"]["verdict"] == "up_to_date"
    for name in ("mesh-animate", "export"):  # both read the motion
        assert full["stages"][name]["verdict"] == "runs_again"
        assert full["stages"][name]["reasons"][0]["paths"] == ["motion/coarse.safetensors"]


def test_a_missing_output_or_input_and_an_unfinished_stage_run_again(run):
    shutil.rmtree(run / "motion")

    def failed(stages: dict) -> None:
        stages["export"] = {**stages["export"], "status": "failed", "error": "boom", "last_success": stages["export"]}

    _edit(run, failed)
    stages = _next_run(run)["stages"]
    assert stages["reconstruct"]["verdict"] == "runs_again"
    assert stages["reconstruct"]["reasons"][0]["kind"] == "outputs"
    assert "motion/coarse.safetensors" in stages["reconstruct"]["reasons"][0]["paths"]
    missing = stages["mesh-animate"]["reasons"][0]
    assert missing["kind"] == "inputs" and missing["paths"] == ["motion/coarse.safetensors"]
    assert "is missing" in missing["message"]
    assert stages["export"]["verdict"] == "runs_again"
    assert stages["export"]["reasons"][0] == {"kind": "status", "message": "its last run failed", "paths": []}
    assert stages["prepare"]["verdict"] == "up_to_date"


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["reconstruct"].update(started=5),
        lambda s: s["reconstruct"].update(started="yesterday"),
        lambda s: s["prepare"].update(finished="2030-01-01T00:00:00"),  # no time zone, where the others have one
        lambda s: s["prepare"]["params"].update(splats="many"),
        lambda s: s["reconstruct"]["params"].update(settings=[1, 2]),
        lambda s: s["export"].pop("seed"),
        lambda s: s["export"].pop("inputs"),
        lambda s: s["prepare"]["inputs"].update({"motion/coarse.safetensors": "x"}),  # a cycle
        lambda s: s["reconstruct"]["inputs"].update({"static/gaussians.ply": 5}),
        lambda s: s.update(mine={"status": "done", "outputs": ["x/y"], "inputs": {"static/gaussians.ply": "x"}}),
    ],
    ids=["started-a-number", "started-not-a-time", "finished-without-zone", "option-of-another-type",
         "nested-options-a-list", "no-seed", "no-inputs", "cycle", "digest-a-number", "unknown-stage"],  # fmt: skip
)
def test_odd_but_well_typed_manifest_fields_get_a_verdict_not_a_crash(run, edit):
    _edit(run, edit)
    stages = _next_run(run)["stages"]
    verdicts = {"up_to_date", "runs_again", "may_run_again", "unknown"}
    assert all(s["verdict"] in verdicts for s in stages.values())


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["reconstruct"]["inputs"].update({"../outside.ply": "sha256:x"}),
        lambda s: s["reconstruct"]["inputs"].update({"static/a\u0000b": "sha256:x"}),
        lambda s: s["export"]["outputs"].append("../../etc/passwd"),
        lambda s: s["export"]["outputs"].append("export/a\u0000b"),
    ],
    ids=["input-escapes", "input-with-nul", "output-escapes", "output-with-nul"],
)
def test_a_manifest_path_out_of_the_run_folder_is_one_error(run, edit):
    _edit(run, edit)
    one_error_with_hint(runner.invoke(app, ["info", str(run)]))
    one_error_with_hint(runner.invoke(app, ["info", str(run), "--check-inputs"]))


def test_an_input_that_links_out_of_the_run_folder_is_refused_before_it_is_hashed(run, tmp_path):
    outside = tmp_path / "private.ply"
    outside.write_bytes(b"not the run's")
    (run / "static" / "gaussians.ply").unlink()
    (run / "static" / "gaussians.ply").symlink_to(outside)
    result = runner.invoke(app, ["info", str(run), "--check-inputs"])
    one_error_with_hint(result)
    assert "outside the run folder" in result.stderr


def test_recorded_options_of_another_type_are_named_in_a_users_words(run):
    """A recorded option this a3d cannot read (a number stored as text) gives `may run again` with a reason in
    plain words, not Python's message about comparing a str with an int."""
    _edit(run, lambda s: s["prepare"]["params"].update(splats="many"))
    prepare = _next_run(run)["stages"]["prepare"]
    assert prepare["verdict"] == "may_run_again"
    (reason,) = [r for r in prepare["reasons"] if r["kind"] == "options_unread"]
    assert reason["message"] == (
        "this a3d cannot read its recorded options (a recorded value is not of the type this a3d expects)"
    )
