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
