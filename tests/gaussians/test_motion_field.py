"""The motion field and motion files: shapes, finiteness, gradients, init, round trips (the HexPlane kernel:
tests/kernels/test_hexplane.py)."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.motion_field import (
    EulerRigid,
    MotionField,
    MotionFieldConfig,
    euler_to_quat,
)
from a3d_cli.gaussians.motion_io import load_motion, read_motion_metadata, save_motion, static_digest
from a3d_cli.geometry import quat_left_matrix, quat_multiply
from a3d_cli.geometry import quat_to_rotmat as quat_to_matrix


def _static(n: int = 64, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.rand(n, 3, generator=g) * 1.6 - 0.8,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        scales=torch.rand(n, 3, generator=g) * 0.05 + 0.01,
        opacities=torch.rand(n, generator=g),
        colors=torch.rand(n, 3, generator=g),
    )


def _randomise(field: MotionField, seed: int = 1, std: float = 0.3) -> None:
    """Perturb every parameter so the field actually moves things."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in field.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


# --- the motion field's HexPlane backends (the kernel's own tests: tests/kernels/test_hexplane.py) ---


def test_motion_field_backends_agree():
    static = _static()
    field = MotionField(MotionFieldConfig.tiny())
    _randomise(field)
    a = field(static, [1, 7, 15])
    field.hexplane_backend = "matmul"
    b = field(static, [1, 7, 15])
    torch.testing.assert_close(b.means, a.means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.quats, a.quats, rtol=1e-5, atol=1e-6)


def test_kept_sampling_weights_move_the_splats_as_the_field_does():
    """`move_frames(..., weights=)`: the same motion and gradients as sampling anew; none kept for `grid_sample`."""
    static = _static()
    field = MotionField(MotionFieldConfig.tiny())
    _randomise(field)
    assert field.sampling_weights(static) is None  # "auto" on the CPU samples with grid_sample
    field.hexplane_backend = "matmul"
    weights = field.sampling_weights(static)
    assert weights is not None
    frames = torch.tensor([0, 4, 4, 15])
    outs = []
    for kept in (None, weights):
        field.zero_grad()
        out = field.move_frames(static, frames, weights=kept)
        (out.means.square().sum() + out.quats[..., 1].sum()).backward()
        outs.append((out, [p.grad.clone() for p in field.parameters()]))
    (a, grads_a), (b, grads_b) = outs
    assert torch.equal(a.means, b.means) and torch.equal(a.quats, b.quats) and torch.equal(a.scales, b.scales)
    assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b, strict=True))


# --- rotations ----------------------------------------------------------------------------------


def test_euler_rigid_is_the_quaternion_path_in_a_few_products():
    """`EulerRigid` gives R(q) and q ⊗ · of q = euler_to_quat(angles), values and gradients, and adds nothing to
    the field's files (its constants are non-persistent buffers)."""
    g = torch.Generator().manual_seed(2)
    angles = (torch.rand(12, 3, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    angles.requires_grad_()
    rigid = EulerRigid().double()
    rotation, left = rigid(angles)
    q = euler_to_quat(angles)
    want_r, want_l = quat_to_matrix(q), quat_left_matrix(q)
    torch.testing.assert_close(rotation, want_r, rtol=0, atol=1e-12)
    torch.testing.assert_close(left, want_l, rtol=0, atol=1e-12)
    cot_r, cot_l = (torch.randn(x.shape, generator=g, dtype=torch.float64) for x in (rotation, left))
    (got,) = torch.autograd.grad((rotation * cot_r).sum() + (left * cot_l).sum(), angles)
    (want,) = torch.autograd.grad((want_r * cot_r).sum() + (want_l * cot_l).sum(), angles)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert rigid.state_dict() == {}
    assert not any("rigid" in k for k in MotionField(MotionFieldConfig.tiny()).state_dict())


def test_quaternion_helpers_match_matrices():
    g = torch.Generator().manual_seed(0)
    a, b = torch.nn.functional.normalize(torch.randn(2, 10, 4, generator=g), dim=-1)
    torch.testing.assert_close(
        quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-5, rtol=1e-5
    )
    ang = torch.rand(10, 3, generator=g) * 2 * math.pi - math.pi
    r, p, y = ang.unbind(-1)
    one, zero = torch.ones_like(r), torch.zeros_like(r)
    rx = torch.stack([one, zero, zero, zero, r.cos(), -r.sin(), zero, r.sin(), r.cos()], -1).reshape(-1, 3, 3)
    ry = torch.stack([p.cos(), zero, p.sin(), zero, one, zero, -p.sin(), zero, p.cos()], -1).reshape(-1, 3, 3)
    rz = torch.stack([y.cos(), -y.sin(), zero, y.sin(), y.cos(), zero, zero, zero, one], -1).reshape(-1, 3, 3)
    torch.testing.assert_close(quat_to_matrix(euler_to_quat(ang)), rz @ ry @ rx, atol=1e-5, rtol=1e-5)


# --- MotionField ----------------------------------------------------------------------------------


def test_reference_config_defaults():
    cfg = MotionFieldConfig()
    assert cfg.grid_sizes == ((50, 50, 50, 8), (100, 100, 100, 16))
    assert cfg.grid_channels == 16 and cfg.feature_dim == 32
    assert cfg.head_width == 32 and cfg.head_hidden_layers == 1 and cfg.num_frames == 16
    field = MotionField(cfg)
    assert field.grids[1][0].shape == (16, 100, 100) and field.grids[0][2].shape == (16, 8, 50)  # xy, xt
    assert all(m.bias is None for m in field.modules() if isinstance(m, torch.nn.Linear))


def test_zero_motion_at_init_for_every_frame():
    static = _static()
    field = MotionField(MotionFieldConfig.tiny(use_delta_scale=True), generator=torch.Generator().manual_seed(0))
    out = field(static, torch.arange(16))
    assert out.means.shape == (16, 64, 3) and out.quats.shape == (16, 64, 4) and out.scales.shape == (16, 64, 3)
    torch.testing.assert_close(out.means, static.means.expand(16, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.quats, static.quats.expand(16, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.scales, static.scales.expand(16, -1, -1), atol=1e-6, rtol=1e-6)
    # sigmoid(0)·2π − π and sigmoid(0)·2 − 1 are exactly zero: the global head starts at the identity.
    assert torch.equal(out.global_rotation, torch.eye(3).expand(16, 3, 3))
    assert torch.equal(out.global_translation, torch.zeros(16, 3))


def test_frame_zero_is_static_after_training_and_other_frames_move():
    static = _static()
    field = MotionField(MotionFieldConfig.tiny(use_delta_scale=True))
    _randomise(field)
    out = field(static, [0, 3, 15])
    assert torch.isfinite(out.means).all() and torch.isfinite(out.quats).all() and torch.isfinite(out.scales).all()
    assert torch.equal(out.means[0], static.means) and torch.equal(out.quats[0], static.quats)
    assert torch.equal(out.scales[0], static.scales)
    assert (out.means[1] - static.means).abs().max() > 1e-3 and (out.means[2] - out.means[1]).abs().max() > 1e-3
    torch.testing.assert_close(out.quats.norm(dim=-1), torch.ones(3, 64))
    assert (out.scales[1] - static.scales).abs().max() > 1e-4


def test_scales_stay_static_without_delta_scale_head():
    static = _static()
    field = MotionField(MotionFieldConfig.tiny())
    _randomise(field)
    assert torch.equal(field(static, [5]).scales[0], static.scales)


def test_global_rigid_motion_moves_points_rigidly():
    """With only the global heads active, frame positions are one rotation + translation of the rest pose."""
    static = _static()
    field = MotionField(MotionFieldConfig.tiny())
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for head in (field.global_rot, field.global_trans):
            head[-1].weight.copy_(torch.randn(head[-1].weight.shape, generator=g))
    out = field(static, [7])
    r, t = out.global_rotation[0], out.global_translation[0]
    assert not torch.allclose(r, torch.eye(3), atol=1e-3)
    torch.testing.assert_close(r @ r.T, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.means[0], static.means @ r.T + t, atol=1e-5, rtol=1e-5)
    # splat orientations turn with the object
    torch.testing.assert_close(quat_to_matrix(out.quats[0]), r @ quat_to_matrix(static.quats), atol=1e-5, rtol=1e-5)


def test_gradients_reach_heads_then_grids():
    """Zero-initialised output layers: the first step only trains them, afterwards gradients reach the grid."""
    static = _static()
    field = MotionField(MotionFieldConfig.tiny())
    target = static.means + 0.05

    def step() -> None:
        field.zero_grad()
        out = field(static, [4, 9])
        loss = (out.means - target).square().sum() + (out.quats[..., 1] - 0.1).square().sum()
        loss.backward()

    step()
    assert field.delta_xyz[-1].weight.grad.abs().sum() > 0 and field.global_trans[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in field.grid_parameters())
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    opt.step()
    step()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in field.parameters())
    assert sum(float(p.grad.abs().sum()) for p in field.grid_parameters()) > 0


def test_grad_mask_detaches_unselected_splats():
    static = _static()
    field = MotionField(MotionFieldConfig.tiny(use_global_rigid=False))
    _randomise(field)
    mask = torch.zeros(1, 64, dtype=torch.bool)
    mask[0, :5] = True
    field(static, [6], grad_mask=mask).means[0, 5:].sum().backward()  # loss only on detached splats
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in field.parameters())
    field.zero_grad()
    field(static, [6], grad_mask=mask).means[0, :5].sum().backward()
    assert field.delta_xyz[-1].weight.grad.abs().sum() > 0


def test_config_json_round_trip_and_validation():
    cfg = MotionFieldConfig.tiny(use_delta_scale=True, bounds=1.5)
    assert MotionFieldConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        MotionFieldConfig.from_json(cfg.to_json()[:-1] + ', "future_knob": 1}')
    with pytest.raises(ValueError):
        MotionFieldConfig(grid_sizes=((50, 50, 50),))
    with pytest.raises(ValueError):
        MotionFieldConfig(num_frames=1)


def test_frame_index_out_of_range():
    with pytest.raises(ValueError, match="frame indices"):
        MotionField(MotionFieldConfig.tiny())(_static(), [16])


# --- motion files ---------------------------------------------------------------------------------


def test_motion_file_round_trip_is_self_describing(tmp_path):
    static = _static()
    field = MotionField(MotionFieldConfig.tiny(use_delta_scale=True))
    _randomise(field)
    path = save_motion(
        tmp_path / "motion" / "coarse.safetensors", field, static, fps=10.0, extra={"stage": "reconstruct"}
    )
    meta = read_motion_metadata(path)
    assert meta["stage"] == "reconstruct" and meta["num_gaussians"] == "64"
    assert meta["static_digest"] == static_digest(static)
    loaded = load_motion(path, static=static)  # no config given: the file describes itself
    assert loaded.field.config == field.config and loaded.fps == 10.0 and loaded.num_frames == 16
    a, b = field(static, [2, 11]), loaded.field(static, [2, 11])
    assert torch.equal(a.means, b.means) and torch.equal(a.quats, b.quats) and torch.equal(a.scales, b.scales)
    torch.testing.assert_close(loaded.field.deform(static, 11).means, a.means[1])
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "motion").iterdir())


def test_motion_file_from_other_static_model_is_refused(tmp_path):
    static = _static()
    path = save_motion(tmp_path / "m.safetensors", MotionField(MotionFieldConfig.tiny()), static)
    other = static.with_(means=static.means + 1e-3)
    with pytest.raises(InputError, match="different static model") as e:
        load_motion(path, static=other)
    assert e.value.exit_code == 2 and "reconstruct" in e.value.hint
    assert static_digest(static.with_(colors=torch.zeros(64, 3))) == static_digest(static)  # colour is not geometry


def test_non_motion_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InputError, match="not an a3d motion file"):
        load_motion(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a readable"):
        load_motion(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="does not exist"):
        load_motion(tmp_path / "missing.safetensors")


def test_quaternion_left_matrix_is_the_hamilton_product():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g)
    via_matrix = torch.einsum("fij,nj->fni", quat_left_matrix(a), b)  # [5, 7, 4], as the field composes
    torch.testing.assert_close(via_matrix, quat_multiply(a[:, None], b[None]))


def test_field_without_global_heads_keeps_identity_rotation():
    cfg = MotionFieldConfig.tiny(use_global_rigid=False)
    field = MotionField(cfg, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    quats = torch.nn.functional.normalize(torch.randn(30, 4, generator=g), dim=-1)
    static = Gaussians(
        torch.rand(30, 3, generator=g) - 0.5,
        quats,
        torch.full((30, 3), 0.02),
        torch.ones(30),
        torch.rand(30, 3, generator=g),
    )
    out = field(static, torch.tensor([3, 9]))
    torch.testing.assert_close(out.quats, quats.expand(2, 30, 4))
    torch.testing.assert_close(out.global_rotation, torch.eye(3).expand(2, 3, 3))
