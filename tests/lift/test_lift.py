"""`a3d lift` on small ground-truth orbits (CPU): outputs, prepare accepts them, the fit beats the visual
hull on held-out views, masks on white, camera/frame orders, resume after a kill, bad inputs.

The ground truth is a procedural object rendered with a3d's rasterizer from SV3D's cameras
(`a3d_cli.lift.synthetic`); sizes are tiny so the whole file stays fast. benchmarks/bench_lift.py is
the full-size version.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import a3d_app, png_declaring
from typer.testing import CliRunner

from a3d_cli.commands.lift import lift as lift_command
from a3d_cli.commands.prepare import prepare as prepare_command
from a3d_cli.gaussians.motion_fit import psnr
from a3d_cli.gaussians.ply import read_ply
from a3d_cli.io.manifest import load_manifest
from a3d_cli.io.video import read_mp4
from a3d_cli.lift import synthetic as syn
from a3d_cli.lift.fit import render_chunked
from a3d_cli.lift.masks import AUTO_THRESHOLD_FLOOR, WhiteMaskOptions, mask_iou, refine_masks, view_masks
from a3d_cli.lift.views import load_views
from a3d_cli.mesh.load import load_mesh
from a3d_cli.models.sv3d.cameras import dynamic_orbit, input_first, orbit_camera_set, static_orbit
from a3d_cli.render.cameras import orbit_cameras

runner = CliRunner()
SIZE = 40
HELD_OUT = orbit_cameras([-20.0, 30.0, 25.0], [40.0, 150.0, 260.0], 2.0, 33.8)
# tiny settings for every CLI run here
TINY = [
    "--resolution", str(SIZE), "--steps", "60", "--views-per-step", "4", "--max-splats", "1500",
    "--hull-resolution", "40", "--mesh-resolution", "48", "--max-faces", "3000", "--texture-size", "128",
    "--preview-size", "32", "--preview-frames", "4",
]  # fmt: skip


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(a3d_app("lift", lift_command), ["--device", "cpu", *args])


@pytest.fixture(scope="module")
def toy() -> dict:
    """The toy object's splats, its 21-view SV3D orbit (reference order) and held-out truth."""
    g = syn.mesh_splats(syn.normalized(syn.toy_mesh()), 5000)
    cams = orbit_camera_set(static_orbit(10.0))
    return {"g": g, "cams": cams, "rgba": syn.render_rgba(g, cams, SIZE), "held": syn.on_white(syn.render_rgba(g, HELD_OUT, SIZE))}


@pytest.fixture(scope="module")
def lifted(toy, tmp_path_factory) -> Path:
    """One CLI lift of the toy orbit (RGB on white, no alpha), shared by the tests that read its outputs."""
    root = tmp_path_factory.mktemp("lift")
    orbit = syn.write_orbit_folder(root / "orbit_in", toy["rgba"], toy["cams"])
    run = root / "RUN"
    result = invoke("lift", str(run), "--orbit", str(orbit), *TINY)
    assert result.exit_code == 0, result.output
    return run


def test_lift_writes_splats_mesh_preview_and_manifest(lifted: Path) -> None:
    for rel in ("lift/gaussians.ply", "lift/model.glb", "lift/preview.mp4", "lift/masks/mask_20.png"):
        assert (lifted / rel).is_file(), rel
    entry = load_manifest(lifted)["stages"]["lift"]
    assert entry["status"] == "done"
    m = entry["metrics"]
    assert len(m["psnr_per_view"]) == 21 and len(m["mask_iou_per_view"]) == 21
    assert m["mask_iou_mean"] > 0.85 and m["psnr_mean"] > 18.0
    assert m["white_threshold"] == AUTO_THRESHOLD_FLOOR  # measured: a clean rendered background
    g = read_ply(lifted / "lift/gaussians.ply")
    assert len(g) == m["splats"] and float(g.means.abs().max()) < 0.8  # in the orbit's frame, around the origin
    assert 0 < m["unseen_splats"] < m["splats"]  # an orbit from 10° above never shows the toy's bottom
    mesh = load_mesh(lifted / "lift/model.glb")
    assert mesh.texture is not None and mesh.uvs is not None
    assert mesh.num_faces <= 3000 and mesh.num_faces == m["faces"]
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    assert (hi - lo).min() > 0.3 and np.abs(mesh.vertices).max() < 0.8  # the object's size, not a sliver or the grid
    video = read_mp4(lifted / "lift/preview.mp4")  # splats | mesh, side by side
    assert m["videos"] == {"lift/preview.mp4": {"frames": 4, "fps": 12.0, "width": 64, "height": 32}}
    assert video.shape == (4, 32, 64, 3)


def test_lift_fit_beats_the_visual_hull_on_held_out_views(toy, lifted: Path) -> None:
    from a3d_cli.io.masks import dilate_mask
    from a3d_cli.lift import hull as H
    from a3d_cli.lift.views import scene_radius

    views = load_views(lifted.parent / "orbit_in")
    masks = view_masks(views.images, None)
    hw = scene_radius(views.cameras)
    hull = H.carve(dilate_mask(masks > 0.5, 1).float(), views.cameras, 40, hw, tolerance=1)
    baseline = H.hull_splats(hull, views.images, views.cameras, 1500)
    fitted = read_ply(lifted / "lift/gaussians.ply")
    p_hull = psnr(render_chunked(baseline, HELD_OUT, SIZE)[0], toy["held"], (1, 2, 3))
    p_fit = psnr(render_chunked(fitted, HELD_OUT, SIZE)[0], toy["held"], (1, 2, 3))
    assert float(p_fit.mean()) > float(p_hull.mean()) + 1.0, (p_fit, p_hull)


def test_lift_outputs_feed_prepare(lifted: Path, tmp_path: Path) -> None:
    app = a3d_app("prepare", prepare_command)
    for name in ("model.glb", "gaussians.ply"):
        run = tmp_path / name
        result = runner.invoke(app, ["--device", "cpu", "prepare", str(lifted / "lift" / name), "-o", str(run), "--splat-count", "2000", "--view-size", "32", "--front", "+z"])
        assert result.exit_code == 0, result.output
        assert (run / "static/gaussians.ply").is_file()
        assert load_manifest(run)["stages"]["prepare"]["metrics"]["kind"] == ("mesh" if name.endswith("glb") else "gaussians")


def test_lift_is_skipped_when_unchanged(lifted: Path) -> None:
    before = (lifted / "lift/model.glb").stat().st_mtime_ns
    result = invoke("--json", "lift", str(lifted), "--orbit", str(lifted.parent / "orbit_in"), *TINY)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stages"][0]["skipped"] is True
    named = ["--white-threshold", str(AUTO_THRESHOLD_FLOOR)]  # the value it measured, now given: the same lift
    result = invoke("--json", "lift", str(lifted), "--orbit", str(lifted.parent / "orbit_in"), *TINY, *named)
    assert result.exit_code == 0 and json.loads(result.stdout)["stages"][0]["skipped"] is True, result.output
    assert (lifted / "lift/model.glb").stat().st_mtime_ns == before


# --- masks --------------------------------------------------------------------------------------------


def test_white_background_masks_keep_light_parts_that_touch_the_background() -> None:
    g = syn.mesh_splats(syn.normalized(syn.toy_mesh(white_top=0.93)), 4000)
    cams = orbit_cameras([10.0, 10.0, 10.0], [0.0, 120.0, 240.0], 2.0, 33.8)
    rgba = syn.render_rgba(g, cams, SIZE)
    truth = (rgba[..., 3] > 0.5).float()
    ours = view_masks(syn.on_white(rgba), None)
    assert float(mask_iou(ours, truth).min()) > 0.9
    crude = view_masks(syn.on_white(rgba), None, WhiteMaskOptions(threshold=0.1))
    assert float(mask_iou(crude, truth).mean()) < float(mask_iou(ours, truth).mean()) - 0.05  # the light ball matters


def test_white_masks_keep_enclosed_white_and_refine_with_fitted_opacity() -> None:
    img = torch.ones(1, 32, 32, 3)
    img[0, 6:26, 6:26] = torch.tensor([0.2, 0.4, 0.8])
    img[0, 12:20, 12:20] = 1.0  # a white patch inside the object
    m = view_masks(img, None)
    assert m[0, 15, 15] == 1 and m[0, 2, 2] == 0
    # a white part touching the outline: the colour test drops it, the fitted opacity brings it back
    img2 = torch.ones(1, 32, 32, 3)
    img2[0, 10:26, 6:26] = torch.tensor([0.2, 0.4, 0.8])
    colour = view_masks(img2, None)
    assert colour[0, 8, 15] == 0
    alpha = torch.zeros(1, 32, 32)
    alpha[0, 7:26, 6:26] = 1.0  # the fit covers rows 7-9 (white) too
    alpha[0, 0:2, 0:2] = 1.0  # and a floater far away
    refined = refine_masks(colour, img2, alpha, 0.04, band_px=4)
    assert refined[0, 8, 15] == 1 and refined[0, 0, 0] == 0


# --- cameras and frame order --------------------------------------------------------------------------


def _orbit_folder(root: Path, g, orbit, model: str, order: str) -> Path:  # noqa: ANN001
    """An orbit folder exactly as `a3d orbit` writes it (its own cameras.json writer), frames rendered."""
    from a3d_cli.models.sv3d.cameras import Orbit
    from a3d_cli.stages.orbit import _cameras_json

    if order == "input_first":
        orbit = Orbit(input_first(orbit.elevation_deg), input_first(orbit.azimuth_deg))
    rgba = syn.render_rgba(g, orbit_camera_set(orbit), 32)
    folder = root / f"{model}-{order}"
    syn.write_orbit_folder(folder, rgba, orbit_camera_set(orbit))
    (folder / "cameras.json").write_text(_cameras_json(orbit, 32, order, 0 if order == "input_first" else 20, model))
    return folder


@pytest.mark.parametrize(
    ("model", "kind", "order"),
    [("sv3d_p", "static", "reference"), ("sv3d_p", "dynamic", "reference"), ("sv3d_p", "dynamic", "input_first"), ("sv3d_u", "static", "input_first")],
)
def test_orbit_folders_pair_each_frame_with_its_camera(tmp_path: Path, toy, model: str, kind: str, order: str) -> None:
    from a3d_cli.lift import hull as H

    orbit = dynamic_orbit(seed=3) if kind == "dynamic" else static_orbit(10.0)
    folder = _orbit_folder(tmp_path, toy["g"], orbit, model, order)
    views = load_views(folder)
    front = 0 if order == "input_first" else 20
    assert abs(float(views.cameras.azimuth_deg[front])) < 1e-3 or abs(float(views.cameras.azimuth_deg[front]) - 360) < 1e-3
    assert float(views.cameras.c2w[front, 2, 3]) > 1.9  # the input view's camera sits on +Z
    assert views.camera_input == (model == "sv3d_p")
    # the hull carved through the file's cameras is the object's, in the object's own orientation:
    # it matches the hull carved from the truth's cameras, and frames paired with shifted cameras do not
    def hull_of(v):  # noqa: ANN001, ANN202
        return H.carve(view_masks(v.images, None), v.cameras, 32, 0.66, tolerance=0).occupied

    def iou(a, b) -> float:  # noqa: ANN001
        return float((a & b).sum()) / float((a | b).sum())

    truth = hull_of(load_views(syn.write_orbit_folder(tmp_path / "truth", syn.render_rgba(toy["g"], toy["cams"], 32), toy["cams"])))
    assert iou(hull_of(views), truth) > 0.85
    data = json.loads((folder / "cameras.json").read_text())
    data["cameras"] = data["cameras"][5:] + data["cameras"][:5]
    (folder / "cameras.json").write_text(json.dumps(data))
    assert iou(hull_of(load_views(folder)), truth) < 0.75


# --- resume and bad input -----------------------------------------------------------------------------


def test_a_killed_lift_leaves_nothing_and_the_rerun_finishes(toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import a3d_cli.lift.meshing as meshing

    orbit = syn.write_orbit_folder(tmp_path / "orbit_in", toy["rgba"], toy["cams"], alpha=True)
    run = tmp_path / "RUN"
    run.mkdir()
    quick = [*TINY[:2], "--steps", "5", *TINY[4:]]

    def killed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(meshing, "extract_mesh", killed)
        result = invoke("lift", str(run), "--orbit", str(orbit), *quick)
    assert result.exit_code == 130
    entry = load_manifest(run)["stages"]["lift"]
    assert entry["status"] == "failed" and entry["error"] == "interrupted"
    assert not (run / "lift").exists() and not (run / ".staging").exists()
    result = invoke("lift", str(run), "--orbit", str(orbit), *quick)
    assert result.exit_code == 0, result.output
    assert load_manifest(run)["stages"]["lift"]["status"] == "done"
    assert load_manifest(run)["stages"]["lift"]["metrics"]["white_threshold"] is None  # masks from alpha
    assert (run / "lift/model.glb").is_file() and (run / "lift/gaussians.ply").is_file()


@pytest.mark.parametrize(
    "problem",
    [
        "missing_frame", "camera_count", "empty_mask", "no_orbit", "opengl_cameras", "mirrored", "huge_frame", "deep_json",
        "bad_fov",
    ],
)
def test_bad_orbit_input_is_one_error_exit_2_and_no_output(toy, tmp_path: Path, problem: str) -> None:
    orbit = syn.write_orbit_folder(tmp_path / "orbit_in", toy["rgba"][:6], orbit_camera_set(static_orbit(10.0, num_frames=6)))
    expected = {
        "missing_frame": "frame_03.png",
        "camera_count": "lists 5 cameras but the folder has 6 frames",
        "empty_mask": "No object found in frame_02.png",
        "no_orbit": "has no orbit/",
        "opengl_cameras": "looks away from the object",
        "mirrored": "is a mirror",
        "huge_frame": "frame_04.png declares 10,000,000,000 pixels",
        "deep_json": "JSON nested deeper than",
        "bad_fov": "cameras[4].fov_deg is 0; it must lie between 1 and 170 degrees",
    }[problem]
    if problem == "missing_frame":
        (orbit / "frame_03.png").unlink()
    elif problem == "camera_count":
        data = json.loads((orbit / "cameras.json").read_text())
        data["cameras"] = data["cameras"][:5]
        (orbit / "cameras.json").write_text(json.dumps(data))
    elif problem in ("opengl_cameras", "mirrored"):
        data = json.loads((orbit / "cameras.json").read_text())
        flip = [1, -1, -1] if problem == "opengl_cameras" else [-1, 1, 1]  # OpenGL axes / one axis mirrored
        for cam in data["cameras"]:
            for row in range(3):
                cam["c2w"][row][:3] = [v * f for v, f in zip(cam["c2w"][row][:3], flip, strict=True)]
        (orbit / "cameras.json").write_text(json.dumps(data))
    elif problem == "bad_fov":  # the message names the camera
        data = json.loads((orbit / "cameras.json").read_text())
        data["cameras"][4]["fov_deg"] = 0
        (orbit / "cameras.json").write_text(json.dumps(data))
    elif problem == "deep_json":  # nested past json's own parser
        (orbit / "cameras.json").write_text('{"cameras": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif problem == "huge_frame":  # a decompression bomb's header: Pillow's error was exit 1
        png_declaring(orbit / "frame_04.png", 100_000, 100_000)
    elif problem == "empty_mask":
        from a3d_cli.io.images import save_png

        save_png(orbit / "frame_02.png", torch.ones(SIZE, SIZE, 3))
    run = tmp_path / "RUN"
    args = ["lift", str(run)] if problem == "no_orbit" else ["lift", str(run), "--orbit", str(orbit)]
    if problem == "no_orbit":
        run.mkdir()
    result = invoke(*args, *TINY)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()), result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    assert "hint:" in result.output
    assert not run.exists() or not any(p.name != ".a3d.lock" for p in run.iterdir())
    shutil.rmtree(tmp_path / "orbit_in")


def test_device_defaults_and_their_caps_at_small_fit_sizes() -> None:
    from a3d_cli.stages.lift import LiftOptions

    cuda = LiftOptions().resolved("cuda")
    assert (cuda.resolution, cuda.steps, cuda.views_per_step, cuda.texture_size) == (576, 2000, 0, 1024)
    cpu = LiftOptions().resolved("cpu")
    assert (cpu.resolution, cpu.steps, cpu.views_per_step, cpu.mesh_resolution) == (256, 400, 4, 192)
    small = LiftOptions(resolution=64, texture_size=300).resolved("cpu")
    assert small.mesh_resolution == 128 and small.hull_resolution == 32 and small.preview_size == 64
    assert small.texture_size == 300  # given values are kept
    assert cpu.settings().mesh.open_undersides  # on by default; --no-open-undersides reaches the meshing
    assert not LiftOptions(open_undersides=False).resolved("cpu").settings().mesh.open_undersides
    from a3d_cli.lift.meshing import SMOOTHING_PASSES

    assert cpu.settings().mesh.smoothing == cuda.settings().mesh.smoothing == SMOOTHING_PASSES > 0  # every device
    assert LiftOptions(mesh_smoothing=0).resolved("cpu").settings().mesh.smoothing == 0  # --mesh-smoothing 0: off
    from a3d_cli.errors import OptionError

    # the level follows the device's fit: 2000 steps place the surface, 400 leave it inside (docs/PERF.md)
    assert cuda.settings().mesh.level == 0.0 and cpu.settings().mesh.level > 0.0
    assert LiftOptions(mesh_level=-0.5).resolved("cpu").settings().mesh.level == -0.5  # given values are kept
    for bad in (-1.5, 2.0):
        with pytest.raises(OptionError, match="--mesh-level"):
            LiftOptions(mesh_level=bad)
    from a3d_cli.lift.unseen import UNSEEN_RADIUS

    assert cpu.settings().unseen_radius == UNSEEN_RADIUS  # the bake's default reaches the pipeline
    assert LiftOptions(unseen_radius=0.0).resolved("cpu").settings().unseen_radius == 0.0  # off
    for bad in (0.01, -1.0, 3.0):  # a radius under 0.05 would need a grid too fine to hold
        with pytest.raises(OptionError, match="--unseen-radius"):
            LiftOptions(unseen_radius=bad)
    for bad in (-1, 201):
        with pytest.raises(OptionError, match="--mesh-smoothing"):
            LiftOptions(mesh_smoothing=bad)


def test_the_default_tsdf_voxel_follows_the_fit_pixel() -> None:
    from a3d_cli.lift.views import scene_radius
    from a3d_cli.models.sv3d.cameras import orbit_camera_set, static_orbit
    from a3d_cli.stages.lift import MESH_RESOLUTION_MAX, LiftOptions

    cams = orbit_camera_set(static_orbit(10.0))
    pixel_at_origin = float(2 * cams.radius[0] * torch.tan(torch.deg2rad(cams.fov_deg[0]) / 2))  # views' width at the origin
    for device in ("cuda", "cpu"):
        for fit in (96, 256, 384, 576, 640, 768, 1024, 2048):
            mesh_res = LiftOptions(resolution=fit).resolved(device).mesh_resolution
            assert mesh_res is not None and mesh_res <= min(MESH_RESOLUTION_MAX, 2 * fit)
            voxel_px = (2 * scene_radius(cams) / mesh_res) / (pixel_at_origin / fit)
            assert voxel_px <= 1.7 or mesh_res == MESH_RESOLUTION_MAX, (device, fit, mesh_res, voxel_px)
    assert LiftOptions().resolved("cuda").mesh_resolution == 384  # the full-size default: 576² fit
    assert LiftOptions(resolution=1024).resolved("cuda").mesh_resolution == MESH_RESOLUTION_MAX
    assert LiftOptions(resolution=1024, mesh_resolution=200).resolved("cuda").mesh_resolution == 200  # given: kept
