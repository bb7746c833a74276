"""`a3d prepare` conditioning quality: front guess, contact sheet, baked lighting, surface-bounded splat sizes,
material alpha modes, MTL map names with spaces, the default grey, and the upside-down 3DGS hint."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from helpers import write_glb

from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.io.images import load_png
from a3d_cli.mesh.load import DEFAULT_GREY, load_mesh
from a3d_cli.mesh.mtl import map_file_name
from a3d_cli.mesh.orientation import choose_front, guess_front, looks_upside_down
from a3d_cli.mesh.shading import shade_factor
from a3d_cli.mesh.store import mesh_glb_bytes
from a3d_cli.mesh.surface import SurfaceMesh, concatenate
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians
from a3d_cli.progress import RecordingProgress
from a3d_cli.run_layout import VIEWS_CONTACT_SHEET as CONTACT_SHEET
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.prepare import PrepareOptions, run

FAST = {"splats": 2000, "view_size": 64}


def creature(facing: str = "+x") -> trimesh.Trimesh:
    """A mirror-symmetric 'animal': a coarse long body and a finely tessellated head at its front end."""
    body = trimesh.creation.icosphere(subdivisions=1)
    body.apply_scale([1.0, 0.5, 0.45])
    head = trimesh.creation.icosphere(subdivisions=4, radius=0.35)
    head.apply_translation([1.05, 0.35, 0.0])
    mesh = trimesh.util.concatenate([body, head])
    angle = {"+x": 0.0, "+z": -np.pi / 2, "-x": np.pi, "-z": np.pi / 2}[facing]
    mesh.apply_transform(trimesh.transformations.rotation_matrix(angle, [0, 1, 0]))
    return mesh


@pytest.mark.parametrize("facing", ["+x", "-x", "+z", "-z"])
def test_front_guess_finds_the_detailed_end_of_a_symmetric_creature(facing):
    mesh = creature(facing)
    guess = guess_front(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    assert guess.confident and guess.front == facing


def test_front_guess_is_not_confident_on_a_box():
    box = trimesh.creation.box()
    assert not guess_front(np.asarray(box.vertices), np.asarray(box.faces)).confident


def test_choose_front_answers_in_the_assets_own_axes():
    mesh = creature("-z")
    z_up = np.asarray(mesh.vertices) @ trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])[:3, :3].T
    faces = np.asarray(mesh.faces)  # the creature's +Y is now +Z and its -Z (where it faces) is +Y
    choice = choose_front(z_up, "+z", "auto", faces)
    assert (choice.front, choice.guessed, choice.conventional) == ("+y", "+y", "-y") and choice.guess.confident
    box = trimesh.creation.box()
    unsure = choose_front(np.asarray(box.vertices), "+z", "auto", np.asarray(box.faces))
    assert not unsure.guess.confident and unsure.front == "-y"  # the convention of a Z-up file
    named = choose_front(z_up, "+z", "+x", faces)
    assert named.front == "+x" and named.guess is None and not named.upside_down


def test_prepare_turns_the_guessed_front_to_view_0_and_writes_the_contact_sheet(tmp_path):
    model = write_glb(tmp_path / "creature.glb", (creature("+x"), np.eye(4)))
    progress = RecordingProgress()
    result = run(tmp_path / "RUN", PrepareOptions(model=str(model), **FAST), Runtime(progress=progress))
    assert result.metrics["front"] == "+x"
    assert any("+x" in line and "--front +z" in line for line in progress.messages)
    norm = json.loads((tmp_path / "RUN/source/normalization.json").read_text())
    assert norm["front"] == "+x"
    sheet = load_png(tmp_path / "RUN" / CONTACT_SHEET, "RGB")
    assert sheet.shape[1] > 4 * 64 and sheet.shape[0] > 64  # 4 views side by side with captions
    # an explicit --front wins over the guess
    explicit = run(tmp_path / "RUN2", PrepareOptions(model=str(model), front="+z", **FAST), Runtime())
    assert explicit.metrics["front"] == "+z"


def _object_luminance(run_dir: Path) -> np.ndarray:
    rgba = load_png(run_dir / "static/views/view_0.png", "RGBA").numpy()
    inside = rgba[..., 3] > 0.99
    return (rgba[..., :3] @ np.array([0.2126, 0.7152, 0.0722]))[inside]


def test_untextured_meshes_get_baked_lighting_and_off_keeps_them_flat(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    model = write_glb(tmp_path / "ball.glb", (sphere, np.eye(4)))
    lit = run(tmp_path / "LIT", PrepareOptions(model=str(model), **FAST), Runtime())
    flat = run(tmp_path / "FLAT", PrepareOptions(model=str(model), shade="off", **FAST), Runtime())
    assert lit.metrics["shaded"] and not flat.metrics["shaded"]
    assert _object_luminance(tmp_path / "LIT").std() > 0.05
    assert _object_luminance(tmp_path / "FLAT").std() < 0.02
    # the top is lit more than the underside
    assert shade_factor(np.array([[0.0, 1.0, 0.0]]))[0] > shade_factor(np.array([[0.0, -1.0, 0.0]]))[0]


def _std_along(g, direction: np.ndarray) -> np.ndarray:
    """Each splat's standard deviation along a world direction."""
    from a3d_cli.kernels.projection_ref import quat_to_rotmat

    rot = quat_to_rotmat(g.quats).double().numpy()  # [N, 3, 3]
    d = rot.transpose(0, 2, 1) @ direction  # [N, 3] direction in each splat's frame
    return np.sqrt(np.sum((d * g.scales.double().numpy()) ** 2, axis=-1))


def test_long_thin_triangles_give_thin_splats():
    # parallel slivers 1.6 long and 0.01 wide, 0.2 apart (like trim strips on a low-poly vehicle)
    verts, faces = [], []
    for k in range(6):
        y = 0.2 * k
        base = len(verts)
        verts += [(0.0, y, 0.0), (1.6, y, 0.0), (1.6, y + 0.01, 0.0), (0.0, y + 0.01, 0.0)]
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    mesh = SurfaceMesh(np.array(verts), np.array(faces), np.ones((len(verts), 4), np.float32))
    for target in (1, 4000):  # vertex splats only, and with surface samples
        g, _ = mesh_to_gaussians(mesh, target_splats=target, seed=0)
        across = _std_along(g, np.array([0.0, 1.0, 0.0]))
        assert across.max() <= 0.02, target  # never wider than twice the strip


def test_a_regular_mesh_keeps_its_splat_sizes():
    """The surface bound leaves regular triangles alone: a flat grid's splats stay as wide as its spacing."""
    n = 11
    xs, ys = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], -1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a = i * n + j
            faces += [(a, a + 1, a + n + 1), (a, a + n + 1, a + n)]
    mesh = SurfaceMesh(verts, np.array(faces), np.ones((n * n, 4), np.float32))
    g, _ = mesh_to_gaussians(mesh, target_splats=1, seed=0)
    inner = (verts[:, 0] > 0.05) & (verts[:, 0] < 0.95) & (verts[:, 1] > 0.05) & (verts[:, 1] < 0.95)
    assert np.allclose(g.scales[inner, :2].numpy().min(), 0.6 * 0.1 * np.sqrt(2) / np.sqrt(2), rtol=0.35)


def _glb_json(data: bytes) -> dict:
    length = struct.unpack("<I", data[12:16])[0]
    return json.loads(data[20 : 20 + length])


def test_opaque_materials_stay_opaque_after_atlas_packing():
    quad = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], float)
    faces = np.array([(0, 1, 2), (0, 2, 3)])
    uv = np.array([(0, 0), (1, 0), (1, 1), (0, 1)], float)
    white = np.ones((4, 4), np.float32)
    tex_a = np.full((8, 8, 4), 200, np.uint8)
    tex_b = np.full((5, 13, 4), 90, np.uint8)  # odd sizes leave gaps in the atlas
    a = SurfaceMesh(quad, faces, white, uv, tex_a)
    b = SurfaceMesh(quad + 2, faces, white, uv, tex_b)
    joined = concatenate([a, b])
    assert joined.alpha_mode == "OPAQUE"
    assert _glb_json(mesh_glb_bytes(joined))["materials"][0].get("alphaMode", "OPAQUE") == "OPAQUE"
    blend = concatenate([a, SurfaceMesh(quad + 2, faces, white, uv, tex_b, "BLEND")])
    assert _glb_json(mesh_glb_bytes(blend))["materials"][0]["alphaMode"] == "BLEND"


@pytest.mark.parametrize(
    ("rest", "name"),
    [
        ("fuze uv.jpg", "fuze uv.jpg"),
        ("-bm 0.5 -o 0.1 0.2 my tex.png", "my tex.png"),
        ("-clamp on -mm 0 1 a.png", "a.png"),
        ("textures\\wood.png", "textures/wood.png"),
        ("-bm 1", ""),
    ],
)
def test_mtl_map_names_are_the_rest_of_the_line_after_the_options(rest, name):
    assert map_file_name(rest) == name


def test_obj_texture_with_spaces_in_its_name_is_read_copied_and_tracked(tmp_path):
    from PIL import Image

    folder = tmp_path / "asset"
    folder.mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(folder / "fuze uv.png")
    (folder / "m.mtl").write_text("newmtl skin\nKd 1 1 1\nmap_Kd -bm 1.0 fuze uv.png\n")
    lines = ["mtllib m.mtl", "v 0 0 0", "v 1 0 0", "v 1 1 0", "v 0 1 0", "vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
    (folder / "m.obj").write_text("\n".join([*lines, "usemtl skin", "f 1/1 2/2 3/3", "f 1/1 3/3 4/4"]) + "\n")
    mesh = load_mesh(folder / "m.obj")
    assert mesh.texture is not None and np.allclose(mesh.vertex_rgba()[:, 0], 200 / 255, atol=0.02)
    result = run(tmp_path / "RUN", PrepareOptions(model=str(folder / "m.obj"), **FAST), Runtime())
    assert (tmp_path / "RUN/source/original/fuze uv.png").is_file()
    manifest = json.loads((tmp_path / "RUN/a3d.json").read_text())
    assert any(k.endswith("fuze uv.png") for k in manifest["stages"]["prepare"]["inputs"])
    assert result.metrics["shaded"] is False  # textured: no baked light by default


def test_an_obj_material_without_kd_is_the_default_light_grey(tmp_path):
    (tmp_path / "m.mtl").write_text("newmtl plain\nNs 10\n")
    lines = ["mtllib m.mtl", "v 0 0 0", "v 1 0 0", "v 0 1 0", "usemtl plain", "f 1 2 3"]
    (tmp_path / "m.obj").write_text("\n".join(lines) + "\n")
    assert np.allclose(load_mesh(tmp_path / "m.obj").vertex_colors, DEFAULT_GREY, atol=1e-6)


def test_splats_stored_upside_down_get_a_hint(tmp_path):
    sphere = SurfaceMesh(
        np.asarray(trimesh.creation.icosphere(subdivisions=3).vertices),
        np.asarray(trimesh.creation.icosphere(subdivisions=3).faces),
        np.full((642, 4), 0.8, np.float32),
    )
    g, _ = mesh_to_gaussians(sphere, target_splats=3000, seed=0, shade=True)  # lit from above
    means, colors = g.means.numpy(), g.colors.numpy()
    assert not looks_upside_down(means, colors)
    flipped = means * np.array([1.0, -1.0, -1.0])  # Y down (a 180° turn about X)
    assert looks_upside_down(flipped, colors)
    write_ply(tmp_path / "down.ply", g.with_(means=torch.from_numpy(flipped).float()))
    progress = RecordingProgress()
    run(tmp_path / "RUN", PrepareOptions(model=str(tmp_path / "down.ply"), **FAST), Runtime(progress=progress))
    assert any("--up -y" in line for line in progress.messages)
    assert len(read_ply(tmp_path / "RUN/static/gaussians.ply")) == len(g)


def test_an_obj_with_uvs_but_no_material_is_light_grey_and_gets_lit(tmp_path):
    """trimesh gives such files a tiny dark stand-in texture; a3d uses its documented grey and lights it."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    lines = [f"v {x} {y} {z}" for x, y, z in sphere.vertices] + [f"vt {0.5 + 0.5 * x} {0.5 + 0.5 * y}" for x, y, _ in sphere.vertices]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in sphere.faces]
    (tmp_path / "ball.obj").write_text("\n".join(lines) + "\n")
    mesh = load_mesh(tmp_path / "ball.obj")
    assert mesh.texture is None and np.allclose(mesh.vertex_colors, DEFAULT_GREY, atol=1e-6)
    result = run(tmp_path / "RUN", PrepareOptions(model=str(tmp_path / "ball.obj"), **FAST), Runtime())
    assert result.metrics["shaded"]
    assert _object_luminance(tmp_path / "RUN").mean() > 0.45  # light grey, not trimesh's 0.4 stand-in


def test_references_of_a_large_obj_are_found_without_holding_its_text(tmp_path):
    """`obj_material_library` scans line by line: finding the `mtllib` of a ~4 MB OBJ (at its end) allocates far
    less than the file."""
    import tracemalloc

    from a3d_cli.mesh.mtl import obj_material_library

    obj = tmp_path / "big.obj"
    with obj.open("w") as f:
        f.writelines(f"v {i} {i} {i}\n" for i in range(200_000))
        f.write("mtllib late one.mtl\n")
        f.write("mtllib never read.mtl\n")
    assert obj.stat().st_size > 3_000_000
    tracemalloc.start()
    try:
        found = obj_material_library(obj)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == "late one.mtl"
    assert peak < 1_000_000
