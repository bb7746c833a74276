"""OBJ smoothing groups in a file without `vn`: faces in `s off` / `s 0` flat, faces of one group smooth across
the points they share, a hard edge where two groups meet; a file without `s` lines, or with its own `vn`,
read as before (a3d_cli.mesh.obj_smoothing, docs/prepare.md "Smoothing groups")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from a3d_cli.mesh.creases import FLAT
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.topology import weld

CUBE_POINTS = [(-1, -1, -1), (1, -1, -1), (1, 1, -1), (-1, 1, -1), (-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)]
CUBE_SIDES = {  # outward-wound quads over CUBE_POINTS (1-based), by the way each side faces
    "-z": (1, 4, 3, 2), "+z": (5, 6, 7, 8), "-y": (1, 2, 6, 5), "+x": (2, 3, 7, 6), "+y": (3, 4, 8, 7), "-x": (4, 1, 5, 8),
}  # fmt: skip
AXIS = {"-z": (0, 0, -1), "+z": (0, 0, 1), "-y": (0, -1, 0), "+x": (1, 0, 0), "+y": (0, 1, 0), "-x": (-1, 0, 0)}


def _cube_obj(tmp_path: Path, groups: dict[str, str | None], name: str = "cube.obj", extra: str = "") -> Path:
    """A cube of six quads, no `vn`; `groups` gives each side's `s` value (None: no `s` line before it),
    written side by side in that order."""
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_POINTS] + ([extra] if extra else [])
    for side, group in groups.items():
        if group is not None:
            lines.append(f"s {group}")
        lines.append("f " + " ".join(map(str, CUBE_SIDES[side])))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _normals_at(mesh: SurfaceMesh, point: tuple[float, float, float]) -> np.ndarray:
    """[k, 3] the distinct shading normals of the copies of `point` (rounded to 1e-9)."""
    at = np.flatnonzero((mesh.vertices == np.asarray(point, dtype=np.float64)).all(axis=1))
    return np.unique(np.round(mesh.shading_normals()[at], 9), axis=0)


def _copies_per_point(mesh: SurfaceMesh) -> np.ndarray:
    point, count = weld(mesh.vertices)
    return np.bincount(point, minlength=count)


@pytest.mark.parametrize("off", ["off", "0", "OFF"])
def test_faces_with_smoothing_off_are_flat(tmp_path, off):
    """`s off` / `s 0`: every side its own normal at each corner (3 copies of each of the 8 points), as Blender
    3.4 imports them (every polygon flat); before, the cube was read smooth with 8 vertices."""
    mesh = load_mesh(_cube_obj(tmp_path, dict.fromkeys(CUBE_SIDES, off)))
    assert mesh.num_vertices == 24
    assert (_copies_per_point(mesh) == 3).all()
    corner = _normals_at(mesh, (-1, -1, -1))
    np.testing.assert_allclose(corner, np.unique([AXIS["-x"], AXIS["-y"], AXIS["-z"]], axis=0), atol=1e-12)


def test_one_group_is_one_smooth_surface_and_no_s_line_reads_as_before(tmp_path):
    """`s 1` over every side, and no `s` line at all: one vertex and one normal per point (smooth)."""
    for groups in (dict.fromkeys(CUBE_SIDES, "1"), dict.fromkeys(CUBE_SIDES)):
        mesh = load_mesh(_cube_obj(tmp_path, groups))
        assert mesh.num_vertices == 8 and mesh.normal_groups is None
        assert len(_normals_at(mesh, (-1, -1, -1))) == 1


def test_two_groups_meet_at_a_hard_edge(tmp_path):
    """Sides -z, +z, -y in group 1 and +x, +y, -x in group 2: each point has one copy per group, and each
    copy's normal comes from its own group's faces only: at (-1, -1, -1) group 2 holds only the -x side, so
    that copy's normal is exactly -x; group 1's (-z, -y) has no x part."""
    groups = {"-z": "1", "+z": None, "-y": None, "+x": "2", "+y": None, "-x": None}
    mesh = load_mesh(_cube_obj(tmp_path, groups))
    assert mesh.num_vertices == 16
    assert (_copies_per_point(mesh) == 2).all()
    corner = _normals_at(mesh, (-1, -1, -1))
    assert len(corner) == 2
    np.testing.assert_allclose(corner[0], AXIS["-x"], atol=1e-12)  # sorted: the copy with x = -1 first
    assert corner[1][0] == 0.0 and corner[1][1] < 0 and corner[1][2] < 0


def test_faces_before_the_first_s_line_are_flat(tmp_path):
    """In a file with `s` lines, the faces before the first are flat (smoothing starts off, as in Blender)."""
    groups = {"-z": None, "+z": None, "-y": None, "+x": "1", "+y": None, "-x": None}
    mesh = load_mesh(_cube_obj(tmp_path, groups))
    top = _normals_at(mesh, (1, 1, 1))  # on +z (flat) and +x, +y (group 1)
    assert len(top) == 2
    assert any(np.allclose(n, AXIS["+z"], atol=1e-12) for n in top)


def test_the_files_own_normals_win_over_its_smoothing_groups(tmp_path):
    """`vn` (here one radial normal per point: smooth) and `s off`: the file's normals decide, as before."""
    radial = [f"vn {x} {y} {z}" for x, y, z in CUBE_POINTS]
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_POINTS] + radial + ["s off"]
    lines += ["f " + " ".join(f"{i}//{i}" for i in quad) for quad in CUBE_SIDES.values()]
    path = tmp_path / "cube.obj"
    path.write_text("\n".join(lines) + "\n")
    mesh = load_mesh(path)
    assert mesh.num_vertices == 8
    assert len(_normals_at(mesh, (-1, -1, -1))) == 1


def test_groups_follow_their_faces_through_materials_and_texture_seams(tmp_path):
    """trimesh regroups faces by material and splits vertices at texture seams; the groups still land on the
    faces the file gives them: materials alternate side by side, every side has its own texture coordinates
    (4 copies of each point), and the groups are those of `test_two_groups_meet_at_a_hard_edge`, interleaved."""
    (tmp_path / "m.mtl").write_text("newmtl a\nKd 1 0 0\nnewmtl b\nKd 0 0 1\n")
    lines = ["mtllib m.mtl", *(f"v {x} {y} {z}" for x, y, z in CUBE_POINTS), "vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
    group = {"-z": "1", "+z": "1", "-y": "1", "+x": "2", "+y": "2", "-x": "2"}
    for k, side in enumerate(["+x", "-z", "+y", "+z", "-x", "-y"]):
        lines += [f"usemtl {'ab'[k % 2]}", f"s {group[side]}"]
        lines.append("f " + " ".join(f"{i}/{j + 1}" for j, i in enumerate(CUBE_SIDES[side])))
    path = tmp_path / "cube.obj"
    path.write_text("\n".join(lines) + "\n")
    mesh = load_mesh(path)
    corner = _normals_at(mesh, (-1, -1, -1))
    assert len(corner) == 2
    np.testing.assert_allclose(corner[0], AXIS["-x"], atol=1e-12)
    assert corner[1][0] == 0.0


def test_a_cylinders_smooth_side_ends_at_a_hard_edge_with_its_caps(tmp_path):
    """Side quads in `s 1`, caps in `s 2`: the side's normals are horizontal up to the rim (its faces alone
    decide them), the caps stay flat; Blender 3.4 tilts the side's rim normals towards the caps instead."""
    n = 12
    angle = 2 * np.pi * np.arange(n) / n
    lines = [f"v {float(np.cos(a))!r} {float(np.sin(a))!r} {z}" for z in (0, 1) for a in angle]
    lines.append("s 1")
    lines += [f"f {i + 1} {(i + 1) % n + 1} {(i + 1) % n + n + 1} {i + n + 1}" for i in range(n)]
    lines += ["s 2", "f " + " ".join(str(i + 1) for i in reversed(range(n))), "f " + " ".join(str(i + n + 1) for i in range(n))]
    path = tmp_path / "cylinder.obj"
    path.write_text("\n".join(lines) + "\n")
    mesh = load_mesh(path)
    normals = mesh.shading_normals()
    cap = np.abs(normals[:, 2]) > 0.5  # [V]
    np.testing.assert_allclose(np.abs(normals[cap, 2]), 1.0, atol=1e-12)
    np.testing.assert_allclose(normals[~cap, 2], 0.0, atol=1e-12)
    assert cap.sum() == (~cap).sum() == 2 * n


def test_a_triangle_soup_with_one_group_is_merged_and_smooth_not_creased(tmp_path):
    """An OBJ soup (each triangle its own `v` lines) in `s 1`: corners merged as for any soup, and one smooth
    surface, not the 30° crease rule's flat-sided cube; in `s off` the same soup is flat."""
    corners = [CUBE_POINTS[i - 1] for quad in CUBE_SIDES.values() for i in (quad[0], quad[1], quad[2], quad[2], quad[3], quad[0])]
    for group, vertices in (("1", 8), ("off", 24)):
        lines = [f"v {x} {y} {z}" for x, y, z in corners] + [f"s {group}"]
        lines += [f"f {3 * t + 1} {3 * t + 2} {3 * t + 3}" for t in range(len(corners) // 3)]
        path = tmp_path / f"soup_{group}.obj"
        path.write_text("\n".join(lines) + "\n")
        assert load_mesh(path).num_vertices == vertices


def test_a_face_the_file_does_not_hold_is_smooth_with_the_others_unmatched(tmp_path):
    """`face_labels` of faces the file's triangles do not match (here the same points wound the other way)
    all get one group of their own, distinct from every label of the file."""
    from a3d_cli.mesh.obj_smoothing import face_labels, read_smoothing_groups

    path = _cube_obj(tmp_path, {"-z": "1", "+z": "off", "-y": None, "+x": None, "+y": None, "-x": None})
    groups = read_smoothing_groups(path)
    assert groups is not None
    vertices = np.asarray(CUBE_POINTS, dtype=np.float64)
    faces = np.array([[0, 3, 2], [0, 1, 2], [4, 7, 6]])  # a file's triangle, its reverse, one the file lacks
    labels = face_labels(vertices, faces, groups)
    assert labels[0] == 0 and labels[1] == labels[2] and labels[1] not in groups.labels


def test_relative_face_indices_name_the_same_points(tmp_path):
    """Negative corners count back from the last `v` so far (the OBJ rule): written so, `s off` is still flat."""
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_POINTS] + ["s off"]
    lines += ["f " + " ".join(str(i - 9) for i in quad) for quad in CUBE_SIDES.values()]
    path = tmp_path / "cube.obj"
    path.write_text("\n".join(lines) + "\n")
    assert load_mesh(path).num_vertices == 24


def test_a_corner_past_any_index_names_no_point_and_its_face_is_skipped(tmp_path):
    """A corner too large for an index (past 2^63; trimesh does not read this face, indented as it is) names no
    position, like one past the last `v`: its face is skipped and the others keep their groups, where it
    stopped the read unexpectedly (an overflow, exit 1)."""
    path = _cube_obj(tmp_path, dict.fromkeys(CUBE_SIDES, "off"), extra="  f 1 2 99999999999999999999999")
    assert load_mesh(path).num_vertices == 24


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_CPU as Linux enforces it")
def test_a_face_continued_over_a_million_lines_is_read_in_work_its_length_allows(tmp_path):
    """A 4 MB file whose one face is continued by backslashes over a million lines: joining them must cost the
    face's length, not its length once a line (a quadratic join spends minutes of CPU on it). The read runs
    in a child limited to 60 CPU seconds, far above what a linear join needs, and must finish with the face."""
    path = tmp_path / "continued.obj"
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\ns 1\nf 1 2 \\\n" + b"3 \\\n" * 1_000_000 + b"1\n")
    child = (
        "import resource, sys; from pathlib import Path;"
        "resource.setrlimit(resource.RLIMIT_CPU, (60, 60));"
        "from a3d_cli.mesh.obj_smoothing import read_smoothing_groups;"
        "print(len(read_smoothing_groups(Path(sys.argv[1])).triangles))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # this checkout's a3d_cli
    done = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == [str(1_000_001)]  # the fan of 1,000,003 corners


@pytest.mark.parametrize(
    ("lines", "splits"),
    [
        (["f 1 2 3"], False),  # no `s` line: smooth
        (["s 1", "f 1 2 3", "s 1", "f 1 3 4"], False),  # one group over every face
        (["s 1 # the body", "f 1 2 3", "s 01", "f 1 3 4"], False),  # a comment, and 01 is group 1
        (["s 1", "f 1 2 3", "s off", "f 1 3 4"], True),
        (["s 1", "f 1 2 3", "s off#flat", "f 1 3 4"], True),  # a comment right after the word
        (["s 1", "f 1 2 3", "s 2", "f 1 3 4"], True),
        (["f 1 2 3", "s 1", "f 1 3 4"], True),  # a face before the first `s` line is flat
        (["s 0", "f 1 2 3"], True),
        (["s off", "s 1", "f 1 2 3", "f 1 3 4"], False),  # an `s` line no face follows names nothing
        (["s 1", "f 1 2 3", "f 1 3 4", "s 2", "# no face after it"], False),
        (["s 1", "f 1 2 3", "s off", "s 1", "f 1 3 4", "s 2"], False),
        (["s 1", "f 1 2 3", "s 2", "s 1", "f 1 3 4", "s 3", "f 2 3 4"], True),
    ],
)
@pytest.mark.parametrize("block", [None, 7], ids=["one-block", "7-byte-blocks"])
def test_which_smoothing_groups_give_a_hard_edge(tmp_path, monkeypatch, lines, splits, block):
    """`smoothing_splits` answers from the file's bytes what the groups read gives (a flat face or faces in two
    groups: prepare then finds hard edges again on a mesh it simplifies), also when the file is scanned in blocks
    that cut its lines."""
    from a3d_cli.mesh import obj_smoothing

    if block is not None:
        monkeypatch.setattr(obj_smoothing, "_BLOCK", block)
    path = tmp_path / "quad.obj"
    path.write_text("\n".join(["v 0 0 0", "v 1 0 0", "v 1 1 0", "v 0 1 0", *lines]) + "\n")
    assert obj_smoothing.smoothing_splits(path) is splits
    groups = obj_smoothing.read_smoothing_groups(path)
    labels = set() if groups is None else set(groups.labels.tolist())
    assert (FLAT in labels or len(labels) > 1) is splits


def test_groups_are_numbered_only_when_a_face_follows_and_comments_are_not_names(tmp_path):
    """`s` lines with no face after them name no group (a file of millions of them holds none in memory), and
    `s off#flat` is smoothing off, not a group called `off#flat`."""
    from a3d_cli.mesh.obj_smoothing import read_smoothing_groups

    path = tmp_path / "quad.obj"
    lines = ["v 0 0 0", "v 1 0 0", "v 1 1 0", "v 0 1 0"] + [f"s {k}" for k in range(5, 500)]
    lines += ["s 7", "f 1 2 3", "s off#flat", "f 1 3 4"]
    path.write_text("\n".join(lines) + "\n")
    groups = read_smoothing_groups(path)
    assert groups is not None
    assert groups.labels.tolist() == [0, FLAT]


@pytest.mark.parametrize("own_normals", [False, True], ids=["s-1", "smooth-vn-and-s-off"])
def test_a_simplified_obj_of_one_smoothing_group_stays_smooth(tmp_path, own_normals):
    """Over `--max-vertices`, an OBJ all in `s 1` is simplified as the smooth surface it is: no hard edges found
    on it (a file of one group shades as one without groups), where flat faces or two groups would get them. So
    is one whose own smooth `vn` come with `s off`: the file's normals win over its groups, simplified or not."""
    import trimesh

    from a3d_cli.mesh.store import load_processed_mesh
    from a3d_cli.stages.base import Runtime
    from a3d_cli.stages.prepare import PrepareOptions, run

    cube = trimesh.creation.box(extents=(2, 2, 2)).subdivide().subdivide().subdivide()  # 386 points
    lines = [f"v {x} {y} {z}" for x, y, z in cube.vertices]
    if own_normals:  # each point's direction from the centre: one smooth normal a point
        lines += [f"vn {x} {y} {z}" for x, y, z in cube.vertices] + ["s off"]
        lines += [f"f {a + 1}//{a + 1} {b + 1}//{b + 1} {c + 1}//{c + 1}" for a, b, c in cube.faces]
    else:
        lines += ["s 1"] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in cube.faces]
    path = tmp_path / "cube.obj"
    path.write_text("\n".join(lines) + "\n")
    result = run(tmp_path / "RUN", PrepareOptions(model=str(path), max_vertices=100, splats=3000, view_size=64), Runtime())
    mesh = load_processed_mesh(tmp_path / "RUN" / "source" / "mesh.glb")
    assert result.metrics["simplified_from"] == 386
    assert mesh.num_vertices == weld(mesh.vertices)[1]  # one copy a point: no hard edge
