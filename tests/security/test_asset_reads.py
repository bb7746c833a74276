"""How a3d reads the files an asset names: only regular files, opened without blocking and checked on the
opened descriptor (`a3d_cli.mesh.references.open_regular`), and, for an OBJ, only the material library trimesh
itself loads (`a3d_cli.mesh.mtl.obj_material_library`)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import in_thread, write_textured_obj

from a3d_cli.errors import InputError
from a3d_cli.io.manifest import digest_path
from a3d_cli.io.regular import NotRegularFileError, read_regular
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.mtl import obj_material_library
from a3d_cli.mesh.references import sidecar_files

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


def test_read_regular_refuses_a_named_pipe_without_blocking_and_reads_a_regular_file(tmp_path):
    """A pipe with no writer would block a plain `open` forever: the helper opens it without blocking and
    refuses it on the opened descriptor; a regular file (also through a link inside) is read in full."""
    os.mkfifo(tmp_path / "pipe.png")
    finished, result = in_thread(lambda: read_regular(tmp_path / "pipe.png"))
    assert finished and isinstance(result, ValueError) and "not a regular file" in str(result)
    (tmp_path / "tex.png").write_bytes(b"\x00\x01 bytes")
    (tmp_path / "link.png").symlink_to(tmp_path / "tex.png")
    assert read_regular(tmp_path / "tex.png") == read_regular(tmp_path / "link.png") == b"\x00\x01 bytes"
    with pytest.raises(ValueError, match="not a regular file"):
        read_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing.png")


def test_an_input_swapped_for_a_pipe_after_its_check_is_refused_not_read_forever(tmp_path, monkeypatch):
    """The fingerprint of an external input checks the path (`is_file`), then reads: a pipe swapped in between
    (the check made to see a file here) is refused on the opened descriptor instead of blocking the read."""
    from pathlib import Path

    os.mkfifo(tmp_path / "model.mtl")
    monkeypatch.setattr(Path, "is_file", lambda self: True)  # what the check saw before the swap
    finished, result = in_thread(lambda: digest_path(tmp_path / "model.mtl"))
    assert finished and isinstance(result, NotRegularFileError)


def test_a_texture_swapped_for_a_pipe_after_the_resolvers_check_is_refused_not_read_forever(tmp_path, monkeypatch):
    """The loader's resolver reads what it opened, not what it checked: a texture that is a pipe by the time it
    is read (every `is_file` check made to see a file) is refused by name instead of hanging the load."""
    from pathlib import Path

    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "tex" / "albedo.png").unlink()
    os.mkfifo(obj.parent / "tex" / "albedo.png")
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    finished, result = in_thread(lambda: load_mesh(obj))
    assert finished and isinstance(result, InputError) and "albedo.png" in str(result), result


def test_an_obj_whose_material_library_is_a_pipe_is_read_without_blocking(tmp_path):
    """The OBJ's library as a pipe: finding the library name, listing sidecars and loading all finish."""
    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "model.mtl").unlink()
    os.mkfifo(obj.parent / "model.mtl")
    finished, result = in_thread(lambda: (obj_material_library(obj), sidecar_files(obj), load_mesh(obj)))
    assert finished and not isinstance(result, Exception), result
    name, sidecars, mesh = result
    assert name == "model.mtl" and sidecars == [] and mesh.texture is None


def _broken_library(folder, name):
    (folder / "tex" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / name).write_text("newmtl skin\nKd 1 1 1\nmap_Kd tex/broken.png\n")


def test_a_material_library_whose_name_has_a_space_is_the_one_checked(tmp_path):
    """`mtllib my lib.mtl` names one file, as trimesh reads it: a3d checks that file (not `my` and `lib.mtl`)."""
    obj = write_textured_obj(tmp_path / "asset")
    _broken_library(obj.parent, "my lib.mtl")
    (obj.parent / "lib.mtl").write_text((obj.parent / "model.mtl").read_text())  # a good one at the split name
    obj.write_text(obj.read_text().replace("mtllib model.mtl", "mtllib my lib.mtl"))
    assert obj_material_library(obj) == "my lib.mtl"
    assert obj.parent / "my lib.mtl" in sidecar_files(obj) and obj.parent / "lib.mtl" not in sidecar_files(obj)
    with pytest.raises(InputError, match="broken.png"):
        load_mesh(obj)


def test_only_the_first_material_library_is_checked_as_trimesh_loads_only_it(tmp_path):
    """A second `mtllib` line is never read by trimesh: a3d neither decodes its maps nor keeps it as a sidecar."""
    obj = write_textured_obj(tmp_path / "asset")
    _broken_library(obj.parent, "other.mtl")
    obj.write_text(obj.read_text().replace("mtllib model.mtl", "mtllib model.mtl\nmtllib other.mtl"))
    assert obj_material_library(obj) == "model.mtl"
    assert obj.parent / "other.mtl" not in sidecar_files(obj)
    mesh = load_mesh(obj)  # the broken image only other.mtl names plays no part
    assert mesh.texture is not None and np.asarray(mesh.texture).size
