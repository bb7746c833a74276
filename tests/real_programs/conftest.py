"""What a user gets from a3d, made once per session for the real-program tests (only those that run build it).

`fox_prepared`: the bundled fox (a glTF without NORMAL) through `a3d prepare` at the default vertex bound.
`mesh_runs`: the bundled fox through `a3d animate --video` (prepare → reconstruct on a ground-truth video →
mesh-animate → export), two variants of the export commands on copies of that run folder, and a
vertex-coloured mesh through the same chain. `lift_run`: `a3d lift --orbit` on a ground-truth orbit of
the toy object. `image_run`: `a3d animate PHOTO --video` with the tiny random-weight SV3D (orbit → lift →
prepare → reconstruct → mesh-animate → export). Tiny sizes, CPU only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import ANIMATE_FAST, REPO, blob_mesh, run_a3d, sliding_video, small_photo

FOX = REPO / "examples" / "assets" / "fox.glb"
LIFT_SIZE = 40
# tiny lift settings; the preview size is odd, so the video writer must pad it to an even one
LIFT_TINY = [
    "--resolution", str(LIFT_SIZE), "--steps", "60", "--views-per-step", "4", "--max-splats", "1500",
    "--hull-resolution", "40", "--mesh-resolution", "48", "--max-faces", "3000", "--texture-size", "128",
    "--preview-size", "33", "--preview-frames", "5",
]  # fmt: skip


@pytest.fixture(scope="session")
def fox_prepared(tmp_path_factory) -> Path:
    """A run folder after `a3d prepare` of the fox at the default `--max-vertices`: not simplified, so
    `source/mesh.glb` keeps every facet that glTF's flat shading gives it (`mesh_runs` simplifies it)."""
    run = tmp_path_factory.mktemp("fox_prepared") / "RUN"
    run_a3d("prepare", str(FOX), "-o", str(run), "--splat-count", "150", "--view-size", "32")
    return run


@pytest.fixture(scope="session")
def mesh_runs(tmp_path_factory) -> dict[str, Path]:
    """Run folders: "morph" (the fox with the defaults: morph targets at 24 fps, PLY sequence, previews),
    "skin" (`mesh-animate --skin --bones 4`), "loop" (`mesh-animate` and `export` with `--loop --fps 12
    --duration 2`) and "colours" (a vertex-coloured, untextured mesh with the defaults)."""
    root = tmp_path_factory.mktemp("mesh_runs")
    runs = {name: root / name.upper() for name in ("morph", "skin", "loop", "colours")}
    fox_video = sliding_video(FOX, root / "fox_video")
    run_a3d("animate", str(FOX), "--video", str(fox_video), "-o", str(runs["morph"]), *ANIMATE_FAST)
    for name in ("skin", "loop"):
        shutil.copytree(runs["morph"], runs[name])
    run_a3d("mesh-animate", str(runs["skin"]), "--skin", "--bones", "4", "--force")
    loop = ["--loop", "--fps", "12", "--duration", "2", "--force"]
    run_a3d("mesh-animate", str(runs["loop"]), *loop)
    run_a3d("export", str(runs["loop"]), *loop, "--size", "31", "--loops", "2")
    blob = blob_mesh(root / "blob.ply")
    blob_video = sliding_video(blob, root / "blob_video")
    run_a3d("animate", str(blob), "--video", str(blob_video), "-o", str(runs["colours"]), *ANIMATE_FAST)
    return runs


@pytest.fixture(scope="session")
def lift_run(tmp_path_factory) -> Path:
    """A run folder after `a3d lift --orbit` on the toy object's 21-view ground-truth orbit."""
    from a3d_cli.lift import synthetic as syn
    from a3d_cli.models.sv3d.cameras import orbit_camera_set, static_orbit

    root = tmp_path_factory.mktemp("lift")
    g = syn.mesh_splats(syn.normalized(syn.toy_mesh()), 5000)
    cams = orbit_camera_set(static_orbit(10.0))
    orbit = syn.write_orbit_folder(root / "orbit_in", syn.render_rgba(g, cams, LIFT_SIZE), cams)
    run_a3d("lift", str(root / "RUN"), "--orbit", str(orbit), *LIFT_TINY)
    return root / "RUN"


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    """A run folder after `a3d animate PHOTO --video VIDEO` with the tiny SV3D: orbit.mp4 and every later output."""
    from a3d_cli.models.sv3d.testing import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("image")
    ckpt = write_tiny_checkpoint(root / "tiny_sv3d_p.safetensors", "sv3d_p", seed=0)
    video = sliding_video(blob_mesh(root / "blob.ply"), root / "video")
    run_a3d(
        "animate", str(small_photo(root / "photo.png")), "--video", str(video), "--no-sds", "-o", str(root / "RUN"),
        "--sv3d-checkpoint", str(ckpt), "--orbit-steps", "2", "--lift-steps", "3", "--lift-resolution", "32", *ANIMATE_FAST,
    )  # fmt: skip
    return root / "RUN"
