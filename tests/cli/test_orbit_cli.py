"""`a3d orbit` end to end on a tiny random-weight checkpoint in the official key layout (CPU).

Tiny weights prove the plumbing (files, orders, cameras, manifest, errors), never image quality.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, a3d_app, animate_app, png_declaring
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.commands.orbit import orbit
from a3d_cli.io.manifest import load_manifest
from a3d_cli.io.video import read_mp4
from a3d_cli.models.sv3d.cameras import SV3D_FOV_DEG, SV3D_RADIUS
from a3d_cli.models.sv3d.testing import write_tiny_checkpoint
from a3d_cli.render.cameras import CameraSet

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    return {v: write_tiny_checkpoint(root / f"tiny_{v}.safetensors", v, seed=0) for v in ("sv3d_p", "sv3d_u")}


@pytest.fixture
def rgba_png(tmp_path: Path) -> Path:
    arr = np.zeros((40, 40, 4), dtype=np.uint8)
    arr[8:32, 12:28] = (30, 160, 90, 255)
    path = tmp_path / "object.png"
    Image.fromarray(arr, "RGBA").save(path)
    return path


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing resolves: an empty A3D_WEIGHTS_DIR and an empty, offline HF cache."""
    (tmp_path / "w").mkdir()
    (tmp_path / "hf").mkdir()
    monkeypatch.setenv("A3D_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(a3d_app("orbit", orbit), ["--device", "cpu", *args])


def test_orbit_writes_frames_video_cameras_and_manifest(tmp_path: Path, rgba_png: Path, ckpts) -> None:
    run = tmp_path / "RUN"
    result = invoke("orbit", str(rgba_png), "-o", str(run), "--checkpoint", str(ckpts["sv3d_p"]), "--steps", "2")
    assert result.exit_code == 0, result.output
    out = run / "orbit"
    frames = [out / f"frame_{i:02d}.png" for i in range(21)]
    assert all(f.is_file() for f in frames) and not (out / "frame_21.png").exists()
    assert np.asarray(Image.open(frames[0])).shape == (16, 16, 3)
    # the reference overwrites the input view (last frame) with the input image
    assert np.array_equal(np.asarray(Image.open(frames[20])), np.asarray(Image.open(out / "input.png")))
    # input-first copies are the same frames rolled by one
    for i in range(21):
        a = np.asarray(Image.open(out / "input_first" / f"frame_{i:02d}.png"))
        assert np.array_equal(a, np.asarray(Image.open(frames[(i - 1) % 21])))
    video = read_mp4(out / "orbit.mp4")
    assert video.shape[0] == 21 and video.shape[1:] == (16, 16, 3)

    cams = json.loads((out / "cameras.json").read_text())
    cs = CameraSet.from_json(cams)
    assert len(cs) == 21 and cams["input_frame"] == 20 and cams["width"] == 16
    torch.testing.assert_close(cs.radius, torch.full((21,), SV3D_RADIUS))
    torch.testing.assert_close(cs.fov_deg, torch.full((21,), SV3D_FOV_DEG))
    assert cs.azimuth_deg[20] == 0 and cs.elevation_deg[0] == pytest.approx(10.0)
    first = CameraSet.from_json(json.loads((out / "input_first" / "cameras.json").read_text()))
    assert first.azimuth_deg[0] == 0
    torch.testing.assert_close(first.c2w[1:], cs.c2w[:20])

    entry = load_manifest(run)["stages"]["orbit"]
    assert entry["status"] == "done" and entry["metrics"]["model"] == "sv3d_p" and entry["metrics"]["steps"] == 2
    assert entry["params"]["checkpoint"] == str(ckpts["sv3d_p"])

    again = invoke("orbit", str(rgba_png), "-o", str(run), "--checkpoint", str(ckpts["sv3d_p"]), "--steps", "2")
    assert again.exit_code == 0 and load_manifest(run)["stages"]["orbit"]["finished"] == entry["finished"]  # skipped


def test_orbit_sv3d_u_and_per_frame_elevations(tmp_path: Path, rgba_png: Path, ckpts) -> None:
    result = invoke(
        "orbit",
        str(rgba_png),
        "-o",
        str(tmp_path / "U"),
        "--model",
        "sv3d_u",
        "--checkpoint",
        str(ckpts["sv3d_u"]),
        "--steps",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "U" / "orbit" / "cameras.json").read_text())["camera_input"] is False

    elev = ",".join(str(5 + i) for i in range(21))
    azim = ",".join(str(40 + 15 * i) for i in range(21))
    result = invoke(
        "orbit", str(rgba_png), "-o", str(tmp_path / "P"), "--checkpoint", str(ckpts["sv3d_p"]), "--steps", "1",
        "--elevation", elev, "--azimuths", azim,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cs = CameraSet.from_json(json.loads((tmp_path / "P" / "orbit" / "cameras.json").read_text()))
    torch.testing.assert_close(cs.elevation_deg, torch.arange(5.0, 26.0))
    torch.testing.assert_close(cs.azimuth_deg, torch.tensor([(15.0 * (i - 20)) % 360 for i in range(21)]))


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--elevation", "1,2,3"], "--elevation takes 1 value or 21"),
        (["--azimuths", "0,90"], "--azimuths takes 21 values"),
        (["--model", "sv3d_u", "--orbit", "dynamic"], "sv3d_u has no camera input"),
        (["--steps", "0"], "--steps must be"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, rgba_png: Path, ckpts, extra: list[str], needle: str) -> None:
    result = invoke("orbit", str(rgba_png), "-o", str(tmp_path / "RUN"), "--checkpoint", str(ckpts["sv3d_p"]), *extra)
    assert result.exit_code == 2 and needle in result.stderr, result.output


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path: Path, rgba_png: Path, ckpts) -> None:
    run = str(tmp_path / "RUN")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    r = invoke("orbit", str(not_image), "-o", run, "--checkpoint", str(ckpts["sv3d_p"]))
    assert r.exit_code == 2 and "not a readable image" in r.stderr

    bomb = png_declaring(tmp_path / "bomb.png", 100_000, 100_000)  # Pillow's DecompressionBombError: was exit 1
    r = invoke("orbit", str(bomb), "-o", run, "--checkpoint", str(ckpts["sv3d_p"]))
    assert r.exit_code == 2 and "declares 10,000,000,000 pixels" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr and "unexpectedly" not in r.stderr

    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((8, 8, 4), dtype=np.uint8), "RGBA").save(empty)
    r = invoke("orbit", str(empty), "-o", run, "--checkpoint", str(ckpts["sv3d_p"]))
    assert r.exit_code == 2 and "empty alpha" in r.stderr

    r = invoke("orbit", str(rgba_png), "-o", run, "--model", "sv3d_u", "--checkpoint", str(ckpts["sv3d_p"]))
    assert r.exit_code == 2 and "sv3d_p checkpoint, but sv3d_u was asked for" in r.stderr

    from safetensors.torch import save_file

    svd = tmp_path / "svd.safetensors"
    save_file({"model.diffusion_model.label_emb.0.0.weight": torch.zeros(4, 768)}, str(svd))
    r = invoke("orbit", str(rgba_png), "-o", run, "--checkpoint", str(svd))
    assert r.exit_code == 2 and "Stable Video Diffusion" in r.stderr
    assert not (tmp_path / "RUN").exists()  # a stage that fails in a run folder it made removes the folder


def test_missing_weights_name_the_fetch_command(tmp_path: Path, rgba_png: Path, no_weights: None) -> None:
    r = invoke("orbit", str(rgba_png), "-o", str(tmp_path / "RUN"))
    assert r.exit_code == 2
    assert "a3d weights fetch sv3d_p" in r.stderr
    assert not (tmp_path / "RUN").exists()  # pre-flight: nothing was written


def test_orbit_on_the_bundled_example_image(tmp_path: Path, ckpts) -> None:
    example = REPO / "examples" / "assets" / "fox_front.png"
    run = tmp_path / "RUN"
    result = invoke("orbit", str(example), "-o", str(run), "--checkpoint", str(ckpts["sv3d_p"]), "--steps", "2")
    assert result.exit_code == 0, result.output
    out = run / "orbit"
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:02d}.png" for i in range(21)]
    assert read_mp4(out / "orbit.mp4").shape[0] == 21
    assert len(CameraSet.from_json(json.loads((out / "cameras.json").read_text()))) == 21


def test_an_image_a3d_refuses_is_refused_before_sv3d_loads(tmp_path: Path, ckpts, monkeypatch) -> None:
    """Loading SV3D takes seconds (minutes with --compile): a bad image must not wait for it."""
    import a3d_cli.stages.orbit as orbit_stage

    loads: list[Path] = []
    real = orbit_stage.load_model
    monkeypatch.setattr(orbit_stage, "load_model", lambda opts, ckpt, device: loads.append(ckpt) or real(opts, ckpt, device))
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((8, 8, 4), dtype=np.uint8), "RGBA").save(empty)
    r = invoke("orbit", str(empty), "-o", str(tmp_path / "RUN"), "--checkpoint", str(ckpts["sv3d_p"]))
    assert r.exit_code == 2 and "empty alpha" in r.stderr
    assert loads == [] and "loading SV3D" not in r.stderr
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("folder", "is a folder, not an image file"),
        ("pipe", "is not a regular file (a named pipe"),
        ("broken link", "is a link to"),
        ("missing", "does not exist"),
    ],
)
def test_an_image_path_that_is_no_file_says_what_it_is(tmp_path: Path, ckpts, kind: str, needle: str) -> None:
    """A folder, a pipe or a broken link named x.png was 'does not exist' for all of them; the pipe is never opened."""
    path = tmp_path / "x.png"
    if kind == "folder":
        path.mkdir()
    elif kind == "pipe":
        os.mkfifo(path)
    elif kind == "broken link":
        path.symlink_to(tmp_path / "gone.png")
    r = invoke("orbit", str(path), "-o", str(tmp_path / "RUN"), "--checkpoint", str(ckpts["sv3d_p"]))
    assert r.exit_code == 2 and needle in " ".join(r.stderr.split()), r.stderr
    assert (f"{path} does not exist" in r.stderr) == (kind == "missing") and "hint:" in r.stderr
    a = runner.invoke(animate_app(), ["animate", str(path), "--prompt", "hops", "-o", str(tmp_path / "RUN")])
    assert a.exit_code == 2 and needle in " ".join(a.stderr.split()), a.stderr
    assert not (tmp_path / "RUN").exists()


def test_an_animated_image_is_orbited_from_its_first_frame_with_one_warning(tmp_path: Path, ckpts) -> None:
    """The reader's warning reaches the user on stderr through the stage's progress (not only a return value)."""
    frames = []
    for colour in [(200, 40, 40), (40, 200, 40)]:
        arr = np.full((40, 40, 3), 255, dtype=np.uint8)
        arr[8:32, 12:28] = colour
        frames.append(Image.fromarray(arr))
    gif = tmp_path / "spin.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    r = invoke("orbit", str(gif), "-o", str(tmp_path / "RUN"), "--checkpoint", str(ckpts["sv3d_p"]), "--steps", "1")
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if "warning:" in line]
    assert len(lines) == 1 and "spin.gif" in lines[0] and "of 2 frames; a3d reads the first" in lines[0], r.stderr
    first = np.asarray(Image.open(tmp_path / "RUN" / "orbit" / "input.png"))[8, 8]  # the red first frame, centred
    assert first[0] > 150 and first[1] < 100
