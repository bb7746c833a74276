"""safetensors files a3d writes into run folders: the same content gives the same bytes (so a stage re-run
with the same result leaves the stages reading its files up to date), and they read back unchanged."""

from __future__ import annotations

import numpy as np
import torch
from helpers import moving_motion_field, reconstruct_static
from safetensors import safe_open
from safetensors.numpy import load, save

META = {f"key_{i}": f"value {i}" for i in range(12)}
"""Enough metadata keys that safetensors' per-save order (12! of them) differs between saves in practice."""


def test_sorted_header_gives_one_layout_and_keeps_tensors_and_metadata():
    from a3d_cli.io.safetensors_bytes import sorted_header

    tensors = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1, 2, 3], dtype=np.int64)}
    files = {sorted_header(save(tensors, metadata=META)) for _ in range(4)}
    assert len(files) == 1
    (data,) = files
    size = int.from_bytes(data[:8], "little")
    assert size % 8 == 0  # the tensor data stays aligned
    back = load(data)
    assert back.keys() == tensors.keys() and all(np.array_equal(back[k], tensors[k]) for k in tensors)


def test_saving_the_same_binding_or_motion_twice_writes_the_same_bytes(tmp_path):
    from a3d_cli.gaussians.motion_io import load_motion, save_motion
    from a3d_cli.mesh.binding import MeshBinding

    rng = np.random.default_rng(0)
    binding = MeshBinding(
        vertex_splat=np.arange(4), rest_vertices=rng.random((4, 3), dtype=np.float32),
        faces=np.array([[0, 1, 2], [0, 2, 3]]), sample_face=np.array([0, 1]),
        sample_bary=np.full((2, 3), 1 / 3, dtype=np.float32), edges=np.array([[0, 1], [1, 2], [2, 0]]),
        num_vertex_splats=4,
    )  # fmt: skip
    static, field = reconstruct_static(), moving_motion_field(16)
    saved = {"binding": set(), "motion": set()}
    for i in range(4):
        binding.save(tmp_path / f"binding_{i}.safetensors")
        save_motion(tmp_path / f"motion_{i}.safetensors", field, static, extra={"stage": "reconstruct"})
        saved["binding"].add((tmp_path / f"binding_{i}.safetensors").read_bytes())
        saved["motion"].add((tmp_path / f"motion_{i}.safetensors").read_bytes())
    assert {k: len(v) for k, v in saved.items()} == {"binding": 1, "motion": 1}
    again = MeshBinding.load(tmp_path / "binding_0.safetensors")
    assert np.array_equal(again.faces, binding.faces) and np.array_equal(again.rest_vertices, binding.rest_vertices)
    with safe_open(str(tmp_path / "motion_0.safetensors"), "pt") as f:
        assert f.metadata()["stage"] == "reconstruct"
    loaded = load_motion(tmp_path / "motion_0.safetensors", static)
    for (name, a), (_, b) in zip(loaded.field.state_dict().items(), field.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
