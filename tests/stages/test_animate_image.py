"""`a3d animate IMAGE`: the chain starts with orbit → lift, prepare reads lift/model.glb; `--orbit` skips SV3D.

The end-to-end run uses the tiny random-weight SV3D (official key layout) and the tiny MV-VDM: plumbing
only, never quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import animate_app as make_app
from helpers import small_photo
from typer.testing import CliRunner

from a3d_cli.errors import OptionError
from a3d_cli.io.manifest import load_manifest
from a3d_cli.stages.animate import AnimateOptions, plan_chain, stage_calls

runner = CliRunner()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return small_photo(tmp_path / "photo.png")


def test_plan_for_an_image_starts_with_orbit_and_lift():
    plan = plan_chain(AnimateOptions(model="p.png", prompt="hops"), mesh_input=True, weights_missing=[], image_input=True)
    assert plan.stages == ("orbit", "lift", "prepare", "mvvideo", "reconstruct", "sds", "mesh-animate", "export")
    plan = plan_chain(AnimateOptions(model="p.png", prompt="hops", orbit="o", video="v"), True, [], image_input=True)
    assert plan.stages[:3] == ("lift", "prepare", "reconstruct") and "orbit: skipped" in plan.notices[0]


def test_prepare_reads_the_lifted_model(tmp_path: Path):
    opts = AnimateOptions(model="p.png", prompt="hops", orbit=str(tmp_path), video=str(tmp_path))
    plan = plan_chain(opts, True, [], image_input=True)
    calls = stage_calls(opts, plan, tmp_path / "RUN")
    prep = calls["prepare"].__defaults__[1]  # the PrepareOptions bound to the call
    assert Path(prep.model) == (tmp_path / "RUN" / "lift" / "model.glb").absolute()
    assert (prep.up, prep.front) == ("+y", "+z")  # the lift's frame, not prepare's guess


def test_compile_reaches_the_orbit_stage(tmp_path: Path):
    """`--compile` (on by default in a batch) compiles SV3D as well as MV-VDM."""
    for compile_blocks in (False, True):
        opts = AnimateOptions(model="p.png", prompt="hops", compile=compile_blocks)
        calls = stage_calls(opts, plan_chain(opts, True, [], image_input=True), tmp_path / "RUN")
        assert calls["orbit"].__defaults__[1].compile is compile_blocks


def test_orbit_folder_needs_an_image_input():
    with pytest.raises(OptionError, match="--orbit"):
        AnimateOptions(model="m.glb", prompt="hops", orbit="o")


def test_missing_sv3d_weights_stop_before_anything_is_written(tmp_path: Path, photo: Path, monkeypatch):
    for var, sub in (("A3D_WEIGHTS_DIR", "w"), ("HF_HUB_CACHE", "hf")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "RUN"
    result = runner.invoke(make_app(), ["animate", str(photo), "--prompt", "hops", "--video", str(tmp_path), "-o", str(run)])
    assert result.exit_code == 2 and "sv3d_p" in result.stderr
    assert not run.exists()


@pytest.mark.parametrize("suffix", [".tif", ".TIFF", ".bmp", ".avif", ".gif"])
def test_every_image_format_orbit_reads_is_an_image_input(tmp_path: Path, photo: Path, monkeypatch, suffix: str):
    """`a3d orbit` reads a TIFF or a BMP; `a3d animate` called it 'an unsupported file type' of a 3D model."""
    from PIL import Image

    for var, sub in (("A3D_WEIGHTS_DIR", "w"), ("HF_HUB_CACHE", "hf")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / f"photo{suffix}"
    Image.open(photo).save(image)
    result = runner.invoke(make_app(), ["animate", str(image), "--prompt", "hops", "-o", str(tmp_path / "RUN")])
    assert result.exit_code == 2 and "sv3d_p" in result.stderr, result.stderr  # the image path: SV3D is missing
    assert "unsupported file type" not in result.stderr and not (tmp_path / "RUN").exists()


def test_an_image_input_that_does_not_open_is_refused_before_the_weights(tmp_path: Path, monkeypatch):
    """A phone's HEIC photo is named as such at once, not after the SV3D weights (9.4 GB) were fetched."""
    for var, sub in (("A3D_WEIGHTS_DIR", "w"), ("HF_HUB_CACHE", "hf")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    heic = tmp_path / "IMG_0042.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    result = runner.invoke(make_app(), ["animate", str(heic), "--prompt", "hops", "-o", str(tmp_path / "RUN")])
    assert result.exit_code == 2 and "a HEIC/HEIF image, a format Pillow does not read" in result.stderr, result.stderr
    assert "sv3d_p" not in result.stderr and "PNG or JPEG" in result.stderr
    assert not (tmp_path / "RUN").exists()


def _chain_args(photo: Path, run: Path, ckpt: Path, *extra: str) -> list[str]:
    return [
        "--json", "--device", "cpu", "animate", str(photo), "--prompt", "it hops", "-o", str(run),
        "--sv3d-checkpoint", str(ckpt), "--orbit-steps", "2", "--lift-steps", "3", "--lift-resolution", "32",
        "--splat-count", "150", "--max-vertices", "100", "--reconstruct-steps", "3", "--resolution", "32",
        "--preview-size", "24", *extra,
    ]  # fmt: skip


def _check_chain(result, run: Path, expected: list[str]) -> None:  # noqa: ANN001
    assert result.exit_code == 0, result.output
    stages = [s["stage"] for s in json.loads(result.stdout)["stages"]]
    assert stages == expected
    manifest = load_manifest(run)["stages"]
    assert all(manifest[s]["status"] == "done" for s in stages)
    assert str((run / "lift" / "model.glb").resolve()) in manifest["prepare"]["inputs"]
    assert (run / "export" / "animated.glb").is_file() and (run / "lift" / "gaussians.ply").is_file()


def test_animate_photo_with_tiny_sv3d_then_a_given_video(tmp_path: Path, photo: Path):
    """orbit (tiny SV3D) → lift → prepare(lift/model.glb) → reconstruct → mesh-animate → export, then resumed."""
    from helpers import blob_mesh as make_mesh
    from helpers import sliding_video as make_video

    from a3d_cli.models.sv3d.testing import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "tiny_sv3d_p.safetensors", "sv3d_p", seed=0)
    video = make_video(make_mesh(tmp_path / "blob.ply"), tmp_path / "video")
    run = tmp_path / "RUN"
    args = _chain_args(photo, run, ckpt, "--video", str(video), "--no-sds")
    _check_chain(runner.invoke(make_app(), args), run, ["orbit", "lift", "prepare", "reconstruct", "mesh-animate", "export"])
    again = runner.invoke(make_app(), args)  # resumable: the same command finds everything up to date
    assert again.exit_code == 0, again.output
    assert all(s["skipped"] for s in json.loads(again.stdout)["stages"])


@pytest.mark.slow
def test_animate_photo_end_to_end_with_tiny_sv3d_and_mvvdm(tmp_path: Path, photo: Path):
    """The whole chain with both tiny diffusion models (minutes on a CPU: RUN_SLOW=1)."""
    from a3d_cli.models.sv3d.testing import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "tiny_sv3d_p.safetensors", "sv3d_p", seed=0)
    run = tmp_path / "RUN"
    args = _chain_args(photo, run, ckpt, "--tiny-model", "--freeinit-iters", "0", "--sds-steps", "1", "--sds-target-size", "32")
    expected = ["orbit", "lift", "prepare", "mvvideo", "reconstruct", "sds", "mesh-animate", "export"]
    _check_chain(runner.invoke(make_app(), args), run, expected)
