"""STL (binary and ASCII) and OFF inputs: read as meshes, damaged files refused with one error, and 3D formats
a3d does not read answered with the command that converts them."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import a3d_app, prepare_refusal
from typer.testing import CliRunner

from a3d_cli.commands.prepare import prepare as prepare_command
from a3d_cli.errors import InputError
from a3d_cli.mesh.load import detect_kind, load_mesh

runner = CliRunner()
# a unit right triangle and a second one sharing its hypotenuse: the unit square in z = 0, written by hand
SQUARE = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[1, 0, 0], [1, 1, 0], [0, 1, 0]]], dtype=np.float32)


def binary_stl(triangles: np.ndarray, declared: int | None = None, header: bytes = b"a3d test") -> bytes:
    """Binary STL bytes from the STL specification: 80-byte header, u32 count, per triangle a normal, three
    corners (float32, little-endian) and a u16 attribute."""
    body = b"".join(struct.pack("<3f", 0, 0, 1) + t.astype("<f4").tobytes() + b"\0\0" for t in triangles)
    count = len(triangles) if declared is None else declared
    return header.ljust(80, b" ") + struct.pack("<I", count) + body


def ascii_stl(triangles: np.ndarray, first: str | None = None) -> str:
    lines = ["solid part"]
    for i, t in enumerate(triangles):
        lines += ["  facet normal 0 0 1", "    outer loop"]
        for j, v in enumerate(t):
            x = first if (first is not None and i == 0 and j == 0) else repr(float(v[0]))
            lines.append(f"      vertex {x} {float(v[1])!r} {float(v[2])!r}")
        lines += ["    endloop", "  endfacet"]
    return "\n".join([*lines, "endsolid part", ""])


def _corners(path: Path) -> np.ndarray:
    """The loaded mesh's triangles as [T, 3, 3] corner positions, sorted (order-free comparison)."""
    mesh = load_mesh(path)
    tris = mesh.vertices[mesh.faces]  # [T, 3, 3]
    return np.array(sorted(map(lambda t: sorted(map(tuple, t)), tris.tolist())))


def _expected(triangles: np.ndarray) -> np.ndarray:
    return np.array(sorted(map(lambda t: sorted(map(tuple, t)), triangles.astype(np.float64).tolist())))


@pytest.mark.parametrize(
    "header", [b"a3d test", b"solid written by a CAD tool into a binary header"], ids=["plain", "solid-header"]
)
def test_binary_stl_reads_its_triangles(tmp_path, header):
    path = tmp_path / "part.stl"
    path.write_bytes(binary_stl(SQUARE, header=header))
    assert detect_kind(path) == "mesh"
    np.testing.assert_array_equal(_corners(path), _expected(SQUARE))


def test_binary_stl_with_bytes_after_its_triangles_reads_the_declared_ones(tmp_path):
    path = tmp_path / "part.stl"
    path.write_bytes(binary_stl(SQUARE) + bytes(7))  # trimesh alone reads this as (empty) ASCII text
    np.testing.assert_array_equal(_corners(path), _expected(SQUARE))


def test_ascii_stl_reads_its_triangles(tmp_path):
    path = tmp_path / "part.STL"
    path.write_text(ascii_stl(SQUARE))
    np.testing.assert_array_equal(_corners(path), _expected(SQUARE))


def test_off_reads_polygons(tmp_path):
    path = tmp_path / "square.off"
    path.write_text("OFF\n# a comment\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    mesh = load_mesh(path)
    assert mesh.num_faces == 2 and mesh.num_vertices == 4
    area = 0.5 * np.linalg.norm(np.cross(*(mesh.vertices[mesh.faces][:, 1:] - mesh.vertices[mesh.faces][:, :1]).transpose(1, 0, 2)), axis=-1)
    assert area.sum() == pytest.approx(1.0)  # the unit square, whatever the split


def _refused(path: Path, *words: str) -> InputError:
    with pytest.raises(InputError) as info:
        load_mesh(path)
    for word in words:
        assert word in str(info.value)
    return info.value


def test_truncated_binary_stl_is_refused_as_ending_early(tmp_path):
    path = tmp_path / "cut.stl"
    path.write_bytes(binary_stl(SQUARE, declared=1_000_000_000))  # declares 50 GB, holds 2 triangles
    err = _refused(path, "1,000,000,000", "ends early")
    assert err.hint and "again" in err.hint


def test_binary_stl_shorter_than_its_header_is_refused(tmp_path):
    path = tmp_path / "stub.stl"
    path.write_bytes(b"\x01" * 40)
    _refused(path, "84-byte header")


def test_ascii_stl_with_nan_is_refused(tmp_path):
    path = tmp_path / "nan.stl"
    path.write_text(ascii_stl(SQUARE, first="nan"))
    _refused(path, "NaN or infinite")


def test_stl_whose_faces_all_lie_on_lines_is_refused_as_having_no_surface(tmp_path):
    """Corners on one line (exactly, and up to float rounding): no face spans an area, so there is nothing to turn
    into splats or views; a mesh with one real face among such slivers is read."""
    line = np.array([[[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 0, 0], [0.1, 0.1, 0.1], [0.3, 0.3, 0.3]]], np.float32)
    (tmp_path / "lines.stl").write_bytes(binary_stl(line))
    err = _refused(tmp_path / "lines.stl", "no surface", "zero area")
    assert err.hint
    (tmp_path / "mixed.stl").write_bytes(binary_stl(np.concatenate([line, SQUARE[:1]])))
    assert load_mesh(tmp_path / "mixed.stl").num_faces == 3


def test_a_huge_triangle_soup_is_refused_before_its_normals_overflow(tmp_path):
    """A soup is welded and its crease normals computed on load; coordinates near 1e300 overflow those
    products, so the size check comes first: the one error, and no numpy warning printed before it."""
    corners = [[1e300, 0, 0], [0, 1e300, 0], [0, 0, 1e300], [1, 1, 1], [2, 1, 1], [1, 2, 1]]
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in corners]
    path = tmp_path / "huge.obj"
    path.write_text("\n".join([*lines, "f 1 2 3", "f 4 5 6", ""]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail here rather than print
        _refused(path, "too large to normalize")


def test_off_declaring_more_vertices_than_it_holds_is_refused(tmp_path):
    path = tmp_path / "big.off"
    path.write_text("OFF\n4000000000 1 0\n0 0 0\n1 0 0\n1 1 0\n3 0 1 2\n")
    _refused(path, "Cannot read big.off")


@pytest.mark.parametrize("name", ["part.stl", "part.off"])
def test_empty_file_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    _refused(path, "is empty (0 bytes)")


def test_prepare_on_an_untextured_z_up_stl_writes_a_run_folder(tmp_path):
    """End to end: a millimetre-sized box through `prepare` (grey, shaded) with `--up +z`."""
    box = np.array(
        [[[0, 0, 0], [40, 0, 0], [40, 20, 0]], [[0, 0, 0], [40, 20, 0], [0, 20, 0]],
         [[0, 0, 10], [40, 20, 10], [40, 0, 10]], [[0, 0, 10], [0, 20, 10], [40, 20, 10]],
         [[0, 0, 0], [0, 0, 10], [40, 0, 10]], [[0, 0, 0], [40, 0, 10], [40, 0, 0]],
         [[0, 20, 0], [40, 20, 10], [0, 20, 10]], [[0, 20, 0], [40, 20, 0], [40, 20, 10]],
         [[0, 0, 0], [0, 20, 10], [0, 0, 10]], [[0, 0, 0], [0, 20, 0], [0, 20, 10]],
         [[40, 0, 0], [40, 0, 10], [40, 20, 10]], [[40, 0, 0], [40, 20, 10], [40, 20, 0]]], dtype=np.float32,
    )  # fmt: skip
    path = tmp_path / "bracket.stl"
    path.write_bytes(binary_stl(box))
    run_dir = tmp_path / "RUN"
    args = ["prepare", str(path), "-o", str(run_dir), "--up", "+z", "--splats", "2000"]
    result = runner.invoke(a3d_app("prepare", prepare_command), args)
    assert result.exit_code == 0, result.stderr
    import json

    metrics = json.loads((run_dir / "a3d.json").read_text())["stages"]["prepare"]["metrics"]
    assert metrics["kind"] == "mesh" and metrics["faces"] == 12 and metrics["shaded"] is True
    assert (run_dir / "static/gaussians.ply").is_file() and (run_dir / "static/views/view_0.png").is_file()


CONVERTERS = {
    ".fbx": "import_scene.fbx",
    ".FBX": "import_scene.fbx",
    ".dae": "wm.collada_import",
    ".blend": "blender -b --disable-autoexec",
    ".3ds": "assimp export",
    ".x3d": "assimp export",
    ".wrl": "import_scene.x3d",
    ".abc": "wm.alembic_import",
    ".usd": "wm.usd_import",
    ".usda": "wm.usd_import",
    ".usdc": "wm.usd_import",
    ".usdz": "unzip",
}


@pytest.mark.parametrize("suffix", list(CONVERTERS))
def test_formats_a3d_does_not_read_name_the_converter(tmp_path, suffix):
    path = tmp_path / f"hero model{suffix}"
    path.write_bytes(b"Kaydara FBX Binary  \0" + bytes(64))
    run_dir = tmp_path / "RUN"
    lines, stderr = prepare_refusal(path, run_dir)
    assert "does not read" in lines[0]
    hint = stderr[stderr.index("hint:") :].replace("\n", " ")
    assert CONVERTERS[suffix] in hint
    if "blender" in hint:  # a stranger's file: its embedded scripts stay off
        assert "--disable-autoexec" in hint
    if suffix != ".usdz":  # the user's own file name, quoted for the shell (it has a space)
        assert f"'{path}'" in hint.replace("\n", "")
    assert not run_dir.exists()
