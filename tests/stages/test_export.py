"""`a3d export`: per-frame 3DGS PLYs in the original frame, the orbit preview, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import EXPORT_FRAMES as FRAMES
from helpers import (
    HOSTILE_NORMALIZATIONS,
    damage_normalization,
    in_thread,
    make_gaussian_run,
    moving_motion_field,
    one_command_app,
    one_error_with_hint,
)
from helpers import export_static as _static

from a3d_cli.commands.export import export as export_command
from a3d_cli.errors import InputError, OptionError, RunFolderError
from a3d_cli.gaussians.motion_io import save_motion
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.gaussians.transform import similarity_gaussians
from a3d_cli.geometry import quat_to_rotmat as quat_to_matrix
from a3d_cli.io.manifest import load_manifest
from a3d_cli.kernels.sh_ref import sh_colors
from a3d_cli.stages import export
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.export import ExportOptions, parse_frames


@pytest.fixture
def gaussian_run(run_dir):
    static, field = make_gaussian_run(run_dir)
    return run_dir, static, field


def test_ply_sequence_is_the_deformed_splats_in_the_original_frame(gaussian_run):
    run, static, field = gaussian_run
    result = export.run(run, ExportOptions(preview=False, fps=8.0), Runtime())  # the motion's rate: its frames
    files = sorted((run / "export" / "gaussians").glob("frame_*.ply"))
    assert [f.name for f in files] == [f"frame_{k:04d}.ply" for k in range(FRAMES)]
    from a3d_cli.mesh.normalize import Normalization

    norm = Normalization.from_json(json.loads((run / "source" / "normalization.json").read_text()))
    moved = [field.deform(static, k) for k in range(FRAMES)]
    assert not torch.allclose(moved[1].means, moved[2].means)  # the motion really moves
    for k, path in enumerate(files):
        g = read_ply(path)
        assert len(g) == len(static)
        expected = norm.invert(moved[k].means.double().numpy())  # independent of the stage's torch path
        np.testing.assert_allclose(g.means.numpy(), expected, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(g.scales, moved[k].scales / norm.scale, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(g.opacities, static.opacities, rtol=1e-5, atol=1e-6)
    seq = json.loads((run / "export" / "gaussians" / "sequence.json").read_text())
    assert seq["space"] == "original" and seq["fps"] == 8.0 and len(seq["frames"]) == FRAMES
    assert result.metrics["motion"] == "motion/coarse.safetensors"


def test_normalized_space_and_frame_subset(gaussian_run):
    run, static, field = gaussian_run
    export.run(run, ExportOptions(preview=False, space="normalized", frames="0,2-3", fps=8.0), Runtime())
    names = sorted(p.name for p in (run / "export" / "gaussians").glob("*.ply"))
    assert names == ["frame_0000.ply", "frame_0002.ply", "frame_0003.ply"]
    torch.testing.assert_close(read_ply(run / "export/gaussians/frame_0000.ply").means, static.means)
    g2 = read_ply(run / "export/gaussians/frame_0002.ply")
    torch.testing.assert_close(g2.means, field.deform(static, 2).means, rtol=1e-5, atol=1e-6)


def test_preview_orbit_has_loops_times_frames(gaussian_run):
    run, _, _ = gaussian_run
    from a3d_cli.io.video import read_mp4

    result = export.run(run, ExportOptions(size=33, preview_loops=2, fps=8.0), Runtime())
    video = read_mp4(run / "export" / "preview.mp4")
    assert video.shape == (2 * FRAMES, 34, 34, 3)  # an odd size is padded to the even one H.264 needs
    # the manifest says what a player will see, so scripts (and ffprobe checks) need not decode it
    claim = {"frames": 2 * FRAMES, "fps": 8.0, "width": 34, "height": 34}
    assert result.metrics["videos"] == {"export/preview.mp4": claim}
    assert load_manifest(run)["stages"]["export"]["metrics"]["videos"] == {"export/preview.mp4": claim}
    # the object is visible (not all background) and the views differ while the camera moves
    assert (video < 0.9).any(dim=-1).float().mean() > 0.01
    assert (video[0] - video[FRAMES // 2]).abs().mean() > 1e-3


def test_refined_motion_is_preferred_when_present(gaussian_run):
    run, static, _ = gaussian_run
    save_motion(run / "motion" / "refined.safetensors", moving_motion_field(FRAMES, 7), static)
    result = export.run(run, ExportOptions(preview=False, space="normalized"), Runtime())
    assert result.metrics["motion"] == "motion/refined.safetensors"
    coarse = export.run(run, ExportOptions(preview=False, space="normalized", motion="coarse"), Runtime())
    assert coarse.metrics["motion"] == "motion/coarse.safetensors"


def test_similarity_rotates_orientations_and_view_dependent_colour():
    g = _static(n=16)
    angle = 0.7
    axis = torch.nn.functional.normalize(torch.tensor([0.3, -1.0, 0.5]), dim=0)
    q = torch.cat([torch.tensor([math.cos(angle / 2)]), math.sin(angle / 2) * axis])
    rot = quat_to_matrix(q)  # [3, 3]
    out = similarity_gaussians(g, 2.5, rot, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(out.means, 2.5 * g.means @ rot.T + torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(quat_to_matrix(out.quats), rot @ quat_to_matrix(g.quats), atol=1e-5, rtol=0)
    # the rotated splat seen from the rotated direction shows the colour the original showed
    dirs = torch.nn.functional.normalize(torch.randn(16, 3, generator=torch.Generator().manual_seed(3)), dim=-1)
    before = sh_colors(1, dirs, g.sh_coeffs())
    after = sh_colors(1, dirs @ rot.T, out.sh_coeffs())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_frame_specs():
    assert parse_frames("all", 4) == [0, 1, 2, 3]
    assert parse_frames("3, 0-1", 4) == [0, 1, 3]
    with pytest.raises(OptionError, match="clip has 4 frames"):
        parse_frames("0-4", 4)
    with pytest.raises(OptionError, match="backwards"):
        parse_frames("3-1", 4)
    with pytest.raises(OptionError):
        ExportOptions(frames="first")
    with pytest.raises(OptionError):
        ExportOptions(size=4)


def test_missing_motion_names_reconstruct(run_dir):
    (run_dir / "static").mkdir(parents=True)
    write_ply(run_dir / "static" / "gaussians.ply", _static())
    with pytest.raises(RunFolderError) as info:
        export.run(run_dir, ExportOptions(preview=False, space="normalized"), Runtime())
    assert "motion/coarse.safetensors" in str(info.value) and "a3d reconstruct" in info.value.hint


def test_motion_of_another_static_model_is_refused_and_outputs_kept(gaussian_run):
    run, _, _ = gaussian_run
    export.run(run, ExportOptions(preview=False), Runtime())
    before = {p: p.read_bytes() for p in (run / "export").rglob("*") if p.is_file()}
    write_ply(run / "static" / "gaussians.ply", _static(seed=5))  # prepare re-run on another model
    with pytest.raises(InputError, match="different static model") as info:
        export.run(run, ExportOptions(preview=False), Runtime(force=True))
    assert info.value.exit_code == 2 and "a3d reconstruct" in info.value.hint
    after = {p: p.read_bytes() for p in (run / "export").rglob("*") if p.is_file()}
    assert after == before
    assert not (run / ".staging").exists() or not any((run / ".staging").iterdir())


def test_frame_out_of_range_is_a_user_error_before_writing(gaussian_run):
    run, _, _ = gaussian_run
    with pytest.raises(OptionError):
        export.run(run, ExportOptions(preview=False, frames="0-99"), Runtime())
    assert not (run / "export").exists()


def test_cli_exports_and_reports_json(gaussian_run):
    from typer.testing import CliRunner

    run, _, _ = gaussian_run
    result = CliRunner().invoke(one_command_app("export", export_command), ["--json", "export", str(run), "--no-preview", "--frames", "0-1"])
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["stages"][0]["outputs"]
    assert sorted(Path(p).name for p in outputs) == ["frame_0000.ply", "frame_0001.ply", "sequence.json"]


def test_cli_user_errors_exit_2(tmp_path, gaussian_run):
    from typer.testing import CliRunner

    run, _, _ = gaussian_run
    runner = CliRunner()
    missing = runner.invoke(one_command_app("export", export_command), ["export", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "a3d prepare" in missing.stderr
    assert not (tmp_path / "nope").exists()
    bad = runner.invoke(one_command_app("export", export_command), ["export", str(run), "--space", "world"])
    assert bad.exit_code == 2 and "--space" in bad.stderr


# -- frame rate, loops, axes, streaming ---------------------------------------------------------------


def test_default_rate_samples_the_continuous_motion(gaussian_run):
    run, static, field = gaussian_run
    result = export.run(run, ExportOptions(preview=False, space="normalized"), Runtime())
    seq = json.loads((run / "export" / "gaussians" / "sequence.json").read_text())
    k = 3 * (FRAMES - 1) + 1  # 24 fps over the motion's (F - 1) / 8 s
    assert seq["fps"] == pytest.approx(24.0) and len(seq["frames"]) == k and result.metrics["frames"] == k
    assert [f["position"] for f in seq["frames"][::3]] == list(range(FRAMES))
    torch.testing.assert_close(read_ply(run / "export/gaussians/frame_0003.ply").means, field.deform(static, 1).means)
    between = read_ply(run / "export/gaussians/frame_0004.ply").means
    assert not torch.allclose(between, field.deform(static, 1).means, atol=1e-5)


def test_loop_closes_the_seam_of_the_sequence(gaussian_run):
    run, _, _ = gaussian_run
    off = export.run(run, ExportOptions(preview=False), Runtime()).metrics["seam"]
    looped = export.run(run, ExportOptions(preview=False, loop=True), Runtime()).metrics
    seq = json.loads((run / "export" / "gaussians" / "sequence.json").read_text())
    assert seq["loop"] == "blend" and len(seq["frames"]) == 3 * (FRAMES - 1)  # the wrap frame is frame 0
    assert off["position_jump_mean_pct"] > 0.5 and looped["seam"]["position_jump_mean_pct"] == 0.0
    assert looped["seam"]["velocity_jump_mean_pct_per_s"] < off["velocity_jump_mean_pct_per_s"]


def test_inria_convention_turns_y_down(gaussian_run):
    run, static, _ = gaussian_run
    export.run(run, ExportOptions(preview=False, space="normalized", frames="0", ply_convention="inria"), Runtime())
    g = read_ply(run / "export/gaussians/frame_0000.ply")
    flip = torch.tensor([1.0, -1.0, -1.0])
    torch.testing.assert_close(g.means, static.means * flip)
    torch.testing.assert_close(quat_to_matrix(g.quats), torch.diag(flip) @ quat_to_matrix(static.quats), atol=1e-5, rtol=0)
    seq = json.loads((run / "export" / "gaussians" / "sequence.json").read_text())
    assert seq["axes"] == "inria"


def _top_level_boxes(data: bytes) -> list[str]:
    """Names of an MP4's top-level boxes, in file order (ISO BMFF: 32-bit size, 4-char type, 64-bit size if 1)."""
    names, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        names.append(data[pos + 4 : pos + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            break
        pos += size
    return names


def test_preview_streams_moov_before_mdat(gaussian_run):
    run, _, _ = gaussian_run
    export.run(run, ExportOptions(size=32, preview_loops=1, fps=8.0), Runtime())
    boxes = _top_level_boxes((run / "export" / "preview.mp4").read_bytes())
    assert boxes[0] == "ftyp" and "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat")


@pytest.mark.parametrize(
    "bad,option",
    [({"fps": 0.0}, "--fps"), ({"fps": 241.0}, "--fps"), ({"fps": float("nan")}, "--fps"),
     ({"duration": 0.0}, "--duration"), ({"duration": 601.0}, "--duration"), ({"loop_mode": "bounce"}, "--loop-mode")],
)  # fmt: skip
def test_both_exports_refuse_the_same_clip_options(bad, option):
    from a3d_cli.stages.mesh_animate import MeshAnimateOptions

    for options in (ExportOptions, MeshAnimateOptions):
        with pytest.raises(OptionError, match=option):
            options(**bad)
        options(fps=240.0, duration=600.0, loop_mode="pingpong")  # the edges are allowed


@pytest.mark.parametrize("content", [*HOSTILE_NORMALIZATIONS.values(), "named-pipe"],
                         ids=[*HOSTILE_NORMALIZATIONS, "named-pipe"])  # fmt: skip
def test_a_damaged_normalization_exits_2_and_writes_nothing(gaussian_run, content):
    """Exporting in the asset's frame reads source/normalization.json: damaged or tampered (not JSON, a NaN or
    zero scale, a rotation of the wrong shape, a pipe), it is one error (exit 2)."""
    from typer.testing import CliRunner

    run, _, _ = gaussian_run
    damage_normalization(run, content)
    app = one_command_app("export", export_command)
    finished, result = in_thread(lambda: CliRunner().invoke(app, ["export", str(run), "--no-preview"]))
    assert finished
    one_error_with_hint(result)
    assert "normalization.json" in result.stderr and "a3d prepare" in result.stderr
    assert not (run / "export").exists()


def test_a_failed_rerun_never_leaves_a_mix_of_old_and_new_frames(gaussian_run):
    """A frame PLY replaced by a folder: the re-run (another convention: every frame changes) is refused with
    exit 2 before any file moves, so every earlier frame is still the old one, not frames 0-1 new and 2 on old."""
    from typer.testing import CliRunner

    run, _, _ = gaussian_run
    export.run(run, ExportOptions(preview=False, fps=8.0), Runtime())
    frames = run / "export" / "gaussians"
    (frames / "frame_0002.ply").unlink()
    (frames / "frame_0002.ply").mkdir()
    before = {p.name: p.read_bytes() for p in frames.iterdir() if p.is_file()}
    args = ["export", str(run), "--no-preview", "--fps", "8", "--ply-convention", "inria"]
    result = CliRunner().invoke(one_command_app("export", export_command), args)
    one_error_with_hint(result)
    assert "frame_0002.ply is a folder" in result.stderr
    assert {p.name: p.read_bytes() for p in frames.iterdir() if p.is_file()} == before
    assert load_manifest(run)["stages"]["export"]["status"] == "failed"


@pytest.mark.parametrize("in_the_way", ["export", "export/gaussians"])
def test_a_file_where_export_needs_a_folder_exits_2_and_is_kept(gaussian_run, in_the_way):
    from typer.testing import CliRunner

    run, _, _ = gaussian_run
    (run / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (run / in_the_way).write_text("precious")
    result = CliRunner().invoke(one_command_app("export", export_command), ["export", str(run), "--no-preview"])
    one_error_with_hint(result)
    assert "is a file where a3d needs a folder" in result.stderr
    assert (run / in_the_way).read_text() == "precious"
