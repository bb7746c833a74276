"""The Draco child process's edges: where it cannot start, and output that is not its records.

The decoding itself (and the memory cap) is exercised with real DracoPy streams in test_gltf_extensions.py;
here a stand-in DracoPy module (found through the parent's `sys.path`, which the child takes over) makes the
child's behaviour exact without building a stream.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from a3d_cli.errors import InputError
from a3d_cli.mesh import draco_child

FAKE_DRACOPY = """
import os

os.write(1, b"a native library says hello on stdout\\n")


class _Mesh:
    attributes = [{"unique_id": 7, "data": [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}]
    faces = [[0, 1, 2]]


def decode(blob):
    os.write(1, b"and again while decoding")
    return _Mesh()
"""


def test_output_a_native_library_writes_to_stdout_does_not_break_the_records(tmp_path, monkeypatch):
    (tmp_path / "DracoPy.py").write_text(FAKE_DRACOPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    [(attributes, faces)] = draco_child.decode_streams([b"stream"], declared_values=12, name="m.glb")
    assert list(attributes) == [7]
    np.testing.assert_array_equal(attributes[7], [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(faces, [[0, 1, 2]])


def test_a_frozen_interpreter_refuses_draco_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(InputError, match="frozen or embedded") as info:
        draco_child.decode_streams([b"stream"], declared_values=12, name="m.glb")
    assert "export the asset without Draco" in info.value.hint


@pytest.mark.skipif(shutil.which("true") is None, reason="needs the `true` program")
def test_an_interpreter_path_that_is_not_python_refuses_draco_with_a_clear_error(monkeypatch):
    """An embedded interpreter's sys.executable may be the host application: it exits without the records."""
    monkeypatch.setattr(sys, "executable", shutil.which("true"))
    with pytest.raises(InputError, match="did not start"):
        draco_child.decode_streams([b"stream"], declared_values=12, name="m.glb")


def test_a_decoder_that_cannot_be_imported_is_named(tmp_path, monkeypatch):
    (tmp_path / "DracoPy.py").write_text("raise ImportError('no decoder here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match="did not start.*no decoder here"):
        draco_child.decode_streams([b"stream"], declared_values=12, name="m.glb")


def test_decoded_arrays_are_read_only_views_of_the_childs_output(tmp_path, monkeypatch):
    """The parent keeps the child's output once: the arrays it returns view it (read-only) instead of copying."""
    (tmp_path / "DracoPy.py").write_text(FAKE_DRACOPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    [(attributes, faces)] = draco_child.decode_streams([b"stream"], declared_values=12, name="m.glb")
    for values in (attributes[7], faces):
        assert not values.flags.writeable and not values.flags.owndata
        assert isinstance(values.base, bytes) or isinstance(getattr(values.base, "base", None), bytes)


def test_a_record_is_read_as_a_view_whatever_its_layout():
    """`.npy` records of any shape and order (0-d, Fortran order, empty) come back equal, as views of the bytes."""
    import io

    arrays = [np.array(True), np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
              np.zeros((0, 3), np.uint32), np.arange(5, dtype=np.int64)]  # fmt: skip
    buffer = io.BytesIO()
    for a in arrays:
        np.save(buffer, a)
    data = buffer.getvalue()
    stream = io.BytesIO(data)
    for a in arrays:
        got = draco_child._view_record(stream, data)
        np.testing.assert_array_equal(got, a)
        assert got.shape == a.shape and got.dtype == a.dtype and not got.flags.writeable
    assert stream.read(1) == b""
    stream = io.BytesIO(data[:-8])  # the last record cut short
    for _ in arrays[:-1]:
        draco_child._view_record(stream, data[:-8])
    with pytest.raises(ValueError, match="cut short"):
        draco_child._view_record(stream, data[:-8])
    buffer = io.BytesIO()
    np.save(buffer, np.array([None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        draco_child._view_record(io.BytesIO(buffer.getvalue()), buffer.getvalue())
