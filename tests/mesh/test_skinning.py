"""Skinning decomposition (mesh/skinning.py) and the skinned GLB, read back from the file alone."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import bending_bar, decode_skinned_frames, khronos_validate, needs_program

from a3d_cli.mesh.gltf_animated import write_skinned_glb
from a3d_cli.mesh.skinning import bind_space_residual, fit_skinning, skin_vertices, solve_bone_transforms


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _radius(rest: np.ndarray) -> float:
    return float(np.linalg.norm(rest - rest.mean(0), axis=1).max())


def test_fit_recovers_an_exact_two_bone_skin():
    rng = np.random.default_rng(0)
    rest = rng.uniform(-1, 1, (200, 3))
    s = 1.0 / (1.0 + np.exp(-4.0 * rest[:, 0]))  # smooth blend along x
    frames = []
    for f in range(5):
        r0, r1 = _rot(np.array([0, 0, 1.0]), 0.2 * f), _rot(np.array([1.0, 1, 0]), -0.3 * f)
        a, b = rest @ r0.T + [0.1 * f, 0, 0], rest @ r1.T + [0, 0.2 * f, 0]
        frames.append((1 - s)[:, None] * a + s[:, None] * b)
    frames = np.stack(frames)
    fit = fit_skinning(rest, frames, bones=2, iterations=100)  # the alternating solve converges linearly
    err = np.linalg.norm(fit.skin(rest) - frames, axis=-1)
    assert fit.num_bones == 2 and err.max() < 1e-4 * _radius(rest)


def test_fit_invariants_and_error_shrinks_with_bones():
    rest, _, frames = bending_bar()
    errors = []
    for bones in (2, 8):
        fit = fit_skinning(rest, frames, bones=bones, iterations=10)
        assert fit.joints.shape == fit.weights.shape == (len(rest), min(bones, 4))
        assert fit.weights.min() >= 0 and np.allclose(fit.weights.sum(1), 1.0)
        assert fit.joints.max() < fit.num_bones <= bones
        rot = fit.rotations
        np.testing.assert_allclose(
            np.einsum("fbij,fbkj->fbik", rot, rot), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9
        )
        np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)
        errors.append(np.linalg.norm(fit.skin(rest) - frames, axis=-1).mean())
    assert errors[1] < 0.5 * errors[0]
    assert errors[1] < 0.01 * _radius(rest)


def test_transforms_for_new_frames_with_fixed_weights():
    rest, _, frames = bending_bar(frames=7)
    fit = fit_skinning(rest, frames[::2], bones=6, iterations=10)  # fitted on frames 0, 2, 4, 6
    rot, trans = solve_bone_transforms(rest, frames, fit.joints, fit.weights, fit.num_bones)
    new = skin_vertices(rest, fit.joints, fit.weights, rot, trans)
    err_new = np.linalg.norm(new - frames, axis=-1)
    err_fit = np.linalg.norm(fit.skin(rest) - frames[::2], axis=-1)
    assert err_new[1::2].mean() < 3.0 * err_fit.mean() + 1e-6  # unseen frames as good as fitted ones
    assert err_new[::2].mean() <= 1.25 * err_fit.mean() + 1e-9  # block descent from a cold start: near the fit


def test_bad_input_is_refused():
    rest, _, frames = bending_bar(frames=2)
    with pytest.raises(ValueError, match="bones"):
        fit_skinning(rest, frames, bones=0)
    with pytest.raises(ValueError, match="frames must have shape"):
        fit_skinning(rest, frames[:, :-1], bones=2)
    with pytest.raises(ValueError, match="finite"):
        fit_skinning(rest, frames * np.nan, bones=2)


# -- the skinned GLB, decoded without our writer ------------------------------------------------------


@pytest.fixture(scope="module")
def skinned(tmp_path_factory):
    rest, faces, frames = bending_bar(frames=6)
    fit = fit_skinning(rest, frames, bones=6, iterations=10)
    path = tmp_path_factory.mktemp("skin") / "skinned.glb"
    write_skinned_glb(path, rest, faces, fit.joints, fit.weights, fit.centres, fit.rotations, fit.translations,
                      fps=24.0, loop=True)  # fmt: skip
    return path, rest, faces, frames, fit


def test_skinned_glb_invariants(skinned):
    path, rest, _, frames, fit = skinned
    decoded, info = decode_skinned_frames(path)
    joints, weights, ibm, skin = info["joints"], info["weights"], info["ibm"], info["skin"]
    assert joints.shape == weights.shape == (len(rest), 4)
    assert weights.min() >= 0 and np.abs(weights.sum(1) - 1).max() < 1e-6
    assert joints.max() < len(skin.joints) and (joints[weights == 0] == 0).all()
    for row_j, row_w in zip(joints, weights, strict=True):  # no joint twice among the non-zero influences
        used = row_j[row_w > 0]
        assert len(set(used.tolist())) == len(used)
    gltf = info["gltf"]
    for i, node in enumerate(skin.joints):  # bind pose: every joint matrix is the identity
        n = gltf.nodes[node]
        m = np.eye(4)
        m[:3, 3] = n.translation or [0, 0, 0]
        np.testing.assert_allclose(m @ ibm[i], np.eye(4), atol=1e-6)
    np.testing.assert_allclose(info["times"], np.arange(len(frames) + 1) / 24.0, rtol=1e-6)  # + loop key


def test_skinned_vertices_from_the_file_match_the_motion(skinned):
    path, rest, _, frames, fit = skinned
    decoded, _ = decode_skinned_frames(path)
    fit_err = np.linalg.norm(fit.skin(rest) - frames, axis=-1)  # the measured skinning error
    for k in range(len(frames)):
        err = np.linalg.norm(decoded[k] - frames[k], axis=-1)
        assert err.max() <= fit_err[k].max() + 1e-5 * _radius(rest)
    np.testing.assert_allclose(decoded[-1], decoded[0], atol=1e-6)  # the loop key repeats frame 0


def test_residual_morph_targets_make_it_exact(tmp_path):
    rest, faces, frames = bending_bar(frames=4)
    fit = fit_skinning(rest, frames, bones=3, iterations=5)
    delta = bind_space_residual(fit.joints, fit.weights, fit.rotations, fit.residual(rest, frames))
    path = tmp_path / "r.glb"
    write_skinned_glb(path, rest, faces, fit.joints, fit.weights, fit.centres, fit.rotations, fit.translations,
                      residual=delta, fps=8.0, interpolation="STEP")  # fmt: skip
    decoded, _ = decode_skinned_frames(path)
    assert np.linalg.norm(fit.skin(rest) - frames, axis=-1).max() > 1e-3  # the skin alone is not exact
    np.testing.assert_allclose(decoded, frames, atol=1e-5)


@needs_program("A3D_GLTF_VALIDATOR")
@pytest.mark.parametrize("residual", [False, True])
def test_khronos_validator_accepts_the_skin(tmp_path, residual):
    rest, faces, frames = bending_bar(frames=4)
    fit = fit_skinning(rest, frames, bones=5, iterations=5)
    delta = (
        bind_space_residual(fit.joints, fit.weights, fit.rotations, fit.residual(rest, frames)) if residual else None
    )
    path = tmp_path / "s.glb"
    uvs = np.random.default_rng(0).random((len(rest), 2))
    write_skinned_glb(path, rest, faces, fit.joints, fit.weights, fit.centres, fit.rotations, fit.translations,
                      residual=delta, uvs=uvs, loop=True)  # fmt: skip
    issues = khronos_validate(path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
