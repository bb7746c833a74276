"""`a3d prepare`: the run-folder files for the bundled example, 3DGS and OBJ inputs, and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    REPO,
    a3d_app,
    compressed_ply_bytes,
    prepare_refusal,
    splat_file_bytes,
    spz_bytes,
    textured_sphere,
    write_glb,
    write_textured_obj,
)
from typer.testing import CliRunner

from a3d_cli.commands.prepare import prepare as prepare_command
from a3d_cli.errors import InputError, OptionError, RunFolderError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.io.images import load_png
from a3d_cli.io.manifest import load_manifest
from a3d_cli.mesh.binding import MeshBinding
from a3d_cli.mesh.normalize import NORMALIZED_RADIUS, Normalization
from a3d_cli.mesh.store import load_processed_mesh
from a3d_cli.progress import RecordingProgress
from a3d_cli.render.cameras import MVVDM_AZIMUTHS_DEG, CameraSet
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.prepare import PrepareOptions, run

EXAMPLE = REPO / "examples" / "assets" / "fox.glb"
MESH_FILES = [
    "source/mesh.glb",
    "source/normalization.json",
    "source/original/fox.glb",
    "static/binding.safetensors",
    "static/gaussians.ply",
    "static/views/cameras.json",
    "static/views/contact_sheet.png",
] + [f"static/views/view_{i}{s}.png" for i in range(4) for s in ("", "_grey")]
FAST = {"splats": 3000, "view_size": 64}  # small options keep the non-example tests quick

runner = CliRunner()


def files_under(run_dir: Path) -> list[str]:
    return sorted(
        p.relative_to(run_dir).as_posix()
        for p in run_dir.rglob("*")
        if p.is_file() and p.name not in ("a3d.json", ".a3d.lock")
    )


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> tuple[Path, object, RecordingProgress]:
    """The bundled example prepared with default options (what the README quickstart runs)."""
    run_dir = tmp_path_factory.mktemp("example") / "RUN"
    progress = RecordingProgress()
    result = run(run_dir, PrepareOptions(model=str(EXAMPLE)), Runtime(progress=progress))
    return run_dir, result, progress


def test_example_writes_exactly_the_documented_files(example_run):
    run_dir, result, _ = example_run
    assert files_under(run_dir) == sorted(MESH_FILES)
    assert sorted(p.relative_to(run_dir.resolve()).as_posix() for p in result.outputs) == sorted(MESH_FILES)
    entry = load_manifest(run_dir)["stages"]["prepare"]
    assert entry["status"] == "done" and entry["metrics"]["kind"] == "mesh"
    assert (run_dir / "source/original/fox.glb").read_bytes() == EXAMPLE.read_bytes()


def test_example_splats_binding_and_mesh_agree(example_run):
    run_dir, result, _ = example_run
    g = read_ply(run_dir / "static/gaussians.ply")
    binding = MeshBinding.load(run_dir / "static/binding.safetensors")
    mesh = load_processed_mesh(run_dir / "source/mesh.glb", expected_vertices=len(binding.vertex_splat))
    assert len(g) == binding.num_splats == result.metrics["splats"]
    np.testing.assert_allclose(binding.vertex_positions(g.means.double().numpy()), mesh.vertices, atol=1e-5)
    np.testing.assert_allclose(binding.rest_vertices, mesh.vertices, atol=1e-6)
    assert np.linalg.norm(mesh.vertices, axis=-1).max() == pytest.approx(NORMALIZED_RADIUS, abs=1e-5)
    # the transform maps the processed mesh back onto the input's vertices
    import trimesh

    from a3d_cli.mesh.load import load_mesh

    norm = Normalization.from_json(json.loads((run_dir / "source/normalization.json").read_text()))
    original = load_mesh(EXAMPLE)
    np.testing.assert_allclose(norm.invert(mesh.vertices), original.vertices, atol=1e-5)
    assert trimesh  # glTF: no rotation needed
    np.testing.assert_allclose(norm.rotation, np.eye(3))


def test_example_views_and_cameras(example_run):
    run_dir, _, _ = example_run
    cams = CameraSet.from_json(json.loads((run_dir / "static/views/cameras.json").read_text()))
    assert len(cams) == 4
    np.testing.assert_allclose(cams.azimuth_deg.numpy(), MVVDM_AZIMUTHS_DEG)
    np.testing.assert_allclose(cams.elevation_deg.numpy(), 15.0)
    np.testing.assert_allclose(cams.radius.numpy(), 3.0)
    np.testing.assert_allclose(cams.fov_deg.numpy(), 40.0)
    for i in range(4):
        rgba = load_png(run_dir / f"static/views/view_{i}.png")
        grey = load_png(run_dir / f"static/views/view_{i}_grey.png")
        assert rgba.shape == (256, 256, 4) and grey.shape == (256, 256, 3)
        alpha = rgba[..., 3]
        assert 0.03 < float(alpha.mean()) < 0.6  # the fox is visible and not clipped away
        assert float(alpha[0].max()) == 0 and float(alpha[:, 0].max()) == 0  # nothing touches the border
        torch.testing.assert_close(grey[0, 0], torch.full((3,), 128 / 255))
        # the grey view is the RGBA view composited on 0.5 (up to 8-bit rounding)
        comp = rgba[..., :3] * alpha[..., None] + 0.5 * (1 - alpha[..., None])
        assert float((comp - grey).abs().max()) < 3 / 255
    # front view (azimuth 0) sees the face: left-right symmetric silhouette
    alpha0 = load_png(run_dir / "static/views/view_0.png")[..., 3]
    assert float((alpha0 - alpha0.flip(1)).abs().mean()) < 0.02


def test_rerun_is_skipped_and_force_reruns(example_run):
    run_dir, _, _ = example_run
    progress = RecordingProgress()
    again = run(run_dir, PrepareOptions(model=str(EXAMPLE)), Runtime(progress=progress))
    assert again.skipped and any("skipped" in m for m in progress.messages)


@pytest.mark.parametrize("count", ["20000", "500"])  # the default value too: given is given
def test_cli_refuses_the_old_and_new_splat_count_together(tmp_path, count):
    run_dir = tmp_path / "RUN"
    args = ["prepare", str(EXAMPLE), "-o", str(run_dir), "--splats", "1000", "--splat-count", count]
    result = runner.invoke(a3d_app("prepare", prepare_command), args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"]
    assert "--splats" in lines[0] and "--splat-count" in lines[1]
    assert not run_dir.exists()


def test_cli_json_names_every_output(tmp_path):
    path = write_glb(tmp_path / "ball.glb", (textured_sphere(8), np.eye(4)))
    run_dir = tmp_path / "RUN"
    result = runner.invoke(
        a3d_app("prepare", prepare_command), ["--json", "prepare", str(path), "-o", str(run_dir), "--splats", "1000", "--view-size", "64"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (stage,) = data["stages"]
    assert stage["stage"] == "prepare"
    expected = [p.replace("fox.glb", "ball.glb") for p in MESH_FILES]
    assert sorted(Path(p).relative_to(run_dir.resolve()).as_posix() for p in stage["outputs"]) == sorted(expected)
    assert files_under(run_dir) == sorted(expected)


def test_gaussian_input(tmp_path):
    n = 400
    gen = torch.Generator().manual_seed(0)
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen) * torch.tensor([2.0, 0.5, 1.0]) + torch.tensor([10.0, 0.0, -3.0]),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
        scales=torch.rand(n, 3, generator=gen) * 0.05 + 0.01,
        opacities=torch.full((n,), 0.9),
        colors=torch.rand(n, 3, generator=gen),
        sh_rest=torch.randn(n, 3, 3, generator=gen) * 0.05,
    )
    write_ply(tmp_path / "scan.ply", g)
    run_dir = tmp_path / "RUN"
    result = run(run_dir, PrepareOptions(model=str(tmp_path / "scan.ply"), **FAST))
    assert result.metrics["kind"] == "gaussians" and result.metrics["splats"] == n
    assert not (run_dir / "static/binding.safetensors").exists() and not (run_dir / "source/mesh.glb").exists()
    out = read_ply(run_dir / "static/gaussians.ply")
    norm = Normalization.from_json(json.loads((run_dir / "source/normalization.json").read_text()))
    np.testing.assert_allclose(norm.invert(out.means.double().numpy()), g.means.double().numpy(), atol=1e-4)
    torch.testing.assert_close(out.scales, g.scales * norm.scale, rtol=1e-4, atol=1e-6)
    assert out.sh_degree == 1  # view-dependent colour kept
    assert load_png(run_dir / "static/views/view_1.png")[..., 3].max() > 0.5


@pytest.mark.parametrize("name", ["scan.compressed.ply", "scan.splat", "scan.spz", "scan.v4.spz"])
def test_compressed_ply_splat_and_spz_inputs_through_the_cli(tmp_path, name):
    n = 300
    gen = torch.Generator().manual_seed(3)
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen) * torch.tensor([2.0, 0.5, 1.0]),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
        scales=torch.rand(n, 3, generator=gen) * 0.05 + 0.01,
        opacities=torch.full((n,), 0.9),
        colors=torch.rand(n, 3, generator=gen),
        sh_rest=torch.randn(n, 3, 3, generator=gen) * 0.05,
    )
    path = tmp_path / name
    encode = {".ply": compressed_ply_bytes, ".splat": splat_file_bytes, ".spz": spz_bytes}[Path(name).suffix]
    path.write_bytes(spz_bytes(g, 4) if name.endswith(".v4.spz") else encode(g))  # zstd streams, else gzip
    run_dir = tmp_path / "RUN"
    args = ["prepare", str(path), "-o", str(run_dir), "--view-size", "64"]
    result = runner.invoke(a3d_app("prepare", prepare_command), args)
    assert result.exit_code == 0, result.output + result.stderr
    metrics = load_manifest(run_dir)["stages"]["prepare"]["metrics"]
    assert metrics["kind"] == "gaussians" and metrics["splats"] == n
    assert (run_dir / "source/original" / name).read_bytes() == path.read_bytes()  # the input as given
    out = read_ply(run_dir / "static/gaussians.ply")  # a standard 3DGS PLY from here on
    norm = Normalization.from_json(json.loads((run_dir / "source/normalization.json").read_text()))
    span = float((g.means.amax(0) - g.means.amin(0)).max())  # the widest chunk range cannot be wider
    # within a quantization step: a chunk's range / 1023, an .spz's 1/4096; a .splat stores float32
    atol = {".ply": span / 1023, ".splat": 1e-5, ".spz": 1 / 4096}[Path(name).suffix]
    np.testing.assert_allclose(norm.invert(out.means.double().numpy()), g.means.double().numpy(), atol=atol)
    assert out.sh_degree == (0 if name.endswith(".splat") else 1)  # a .splat has no higher SH
    assert load_png(run_dir / "static/views/view_1.png")[..., 3].max() > 0.5


@pytest.mark.parametrize("suffix", [".ksplat", ".sog"])
def test_splat_formats_a3d_does_not_read_name_the_converter(tmp_path, suffix):
    path = tmp_path / f"scene{suffix}"
    path.write_bytes(b"\x1f\x8b" + bytes(64))
    run_dir = tmp_path / "RUN"
    lines, _ = prepare_refusal(path, run_dir)
    assert "does not read" in lines[0] and f"npx @playcanvas/splat-transform in{suffix} out.ply" in lines[1]
    assert not run_dir.exists()


def test_obj_with_sidecars_and_up_axis(tmp_path):
    obj = write_textured_obj(tmp_path / "asset", up_axis="z")
    run_dir = tmp_path / "RUN"
    run(run_dir, PrepareOptions(model=str(obj), up="+z", front="-y", **FAST))
    originals = sorted(
        p.relative_to(run_dir / "source/original").as_posix()
        for p in (run_dir / "source/original").rglob("*")
        if p.is_file()
    )
    assert originals == ["model.mtl", "model.obj", "tex/albedo.png"]
    mesh = load_processed_mesh(run_dir / "source/mesh.glb")
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    assert extent[1] > 1.9 * extent[0]  # the asset's tall +Z axis is now +Y
    assert mesh.texture is not None


def test_gltf_with_external_buffers_is_copied_whole(tmp_path):
    import trimesh

    scene = trimesh.Scene()
    scene.add_geometry(textured_sphere(6))
    folder = tmp_path / "asset"
    folder.mkdir()
    for name, data in scene.export(file_type="gltf").items():
        (folder / name).write_bytes(data)
    run_dir = tmp_path / "RUN"
    result = run(run_dir, PrepareOptions(model=str(folder / "model.gltf"), **FAST))
    copied = sorted(p.name for p in (run_dir / "source/original").iterdir())
    assert copied == sorted(p.name for p in folder.iterdir())
    assert result.metrics["kind"] == "mesh"
    # a changed buffer is a changed input: the stage runs again instead of skipping
    buffer = folder / "gltf_buffer_0.bin"
    buffer.write_bytes(buffer.read_bytes())
    assert run(run_dir, PrepareOptions(model=str(folder / "model.gltf"), **FAST)).skipped
    data = bytearray(buffer.read_bytes())
    data[0] ^= 1
    buffer.write_bytes(bytes(data))
    assert not run(run_dir, PrepareOptions(model=str(folder / "model.gltf"), **FAST)).skipped


def test_large_mesh_is_simplified_with_a_notice(tmp_path):
    import trimesh

    path = write_glb(tmp_path / "big.glb", (trimesh.creation.icosphere(subdivisions=3), np.eye(4)))  # 642 vertices
    progress = RecordingProgress()
    result = run(
        tmp_path / "RUN", PrepareOptions(model=str(path), max_vertices=200, **FAST), Runtime(progress=progress)
    )
    assert result.metrics["simplified_from"] == 642
    assert result.metrics["vertex_splats"] <= 200
    assert any("simplified from 642" in m for m in progress.messages)


def test_options_are_validated():
    with pytest.raises(OptionError):
        PrepareOptions(model="x.glb", up="+y", front="-y")
    with pytest.raises(OptionError):
        PrepareOptions(model="x.glb", up="up")  # type: ignore[arg-type]
    with pytest.raises(OptionError):
        PrepareOptions(model="x.glb", max_vertices=3)


# -- bad input: one clear sentence, exit code 2, no partial outputs ------------------------------------

BAD_FILES = {
    "missing.glb": (None, "does not exist"),
    "corrupt.glb": (b"glTF" + bytes(range(256)) * 4, "Cannot read"),
    "empty.obj": (b"# no geometry\n", "no geometry"),
    "zero.glb": (b"", "empty"),
    "points.ply": (
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n",
        "no faces",
    ),
    "model.fbx": (b"Kaydara FBX Binary", "does not read"),
    "model.lwo": (b"FORM", "unsupported"),
    "nan.obj": (b"v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "NaN"),
    "partial.ply": (
        b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
        b"property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\nproperty float opacity\nend_header\n0 0 0 0 0 0 0\n",
        "scale_0",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_exit_code_2_and_no_outputs(tmp_path, name):
    content, match = BAD_FILES[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    run_dir = tmp_path / "RUN"
    result = runner.invoke(
        a3d_app("prepare", prepare_command),
        ["prepare", str(path), "-o", str(run_dir), *[f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]],
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and match in result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert not run_dir.exists() or files_under(run_dir) == []
    if run_dir.exists():  # failures found while parsing are recorded in the manifest
        assert load_manifest(run_dir)["stages"]["prepare"]["status"] == "failed"


def test_run_path_that_is_a_file(tmp_path):
    (tmp_path / "RUN").write_text("not a folder")
    with pytest.raises(RunFolderError, match="is a file"):
        run(tmp_path / "RUN", PrepareOptions(model=str(EXAMPLE), **FAST))
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(EXAMPLE), "-o", str(tmp_path / "RUN")])
    assert result.exit_code == 2 and "is a file" in result.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_run_folder(tmp_path):
    run_dir = tmp_path / "RUN"
    run_dir.mkdir()
    run_dir.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="not writable"):
            run(run_dir, PrepareOptions(model=str(EXAMPLE), **FAST))
    finally:
        run_dir.chmod(0o755)
    assert list(run_dir.iterdir()) == []


def test_read_only_run_folder_through_the_cli(tmp_path, monkeypatch):
    """Same check for any user (root ignores permission bits): the write-access probe says no."""
    import a3d_cli.stages.base as base

    run_dir = tmp_path / "RUN"
    run_dir.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        base.os, "access", lambda p, mode: False if Path(p) == run_dir and mode & os.W_OK else real_access(p, mode)
    )
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(EXAMPLE), "-o", str(run_dir)])
    assert result.exit_code == 2 and "not writable" in result.stderr
    assert list(run_dir.iterdir()) == []


def test_failed_rerun_keeps_earlier_outputs(tmp_path):
    """A broken input on an existing run leaves the earlier prepare outputs as they were."""
    good = write_glb(tmp_path / "good.glb", (textured_sphere(8), np.eye(4)))
    run_dir = tmp_path / "RUN"
    run(run_dir, PrepareOptions(model=str(good), **FAST))
    before = {p: (run_dir / p).read_bytes() for p in files_under(run_dir)}
    good.write_bytes(b"glTF" + bytes(range(256)) * 4)  # the same file, now corrupt
    with pytest.raises(InputError):
        run(run_dir, PrepareOptions(model=str(good), **FAST))
    assert {p: (run_dir / p).read_bytes() for p in files_under(run_dir)} == before


def test_the_front_hint_lists_the_axes_perpendicular_to_up():
    from a3d_cli.mesh.orientation import fronts_for

    assert fronts_for("+y") == ["+x", "-x", "+z", "-z"]
    assert fronts_for("-z") == ["+x", "-x", "+y", "-y"]
