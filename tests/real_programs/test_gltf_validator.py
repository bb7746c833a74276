"""The Khronos glTF validator finds no error or warning in any GLB a user gets from a3d (no issue at all in `lift/model.glb`).

Opt-in: set A3D_GLTF_VALIDATOR to a folder holding node_modules/gltf-validator (`npm install gltf-validator`).
"""

from __future__ import annotations

import pytest
from helpers import khronos_validate, needs_program

pytestmark = needs_program("A3D_GLTF_VALIDATOR")


@pytest.mark.parametrize("variant", ["morph", "loop", "skin", "colours"])
def test_animated_glbs_are_valid(mesh_runs, variant):
    issues = khronos_validate(mesh_runs[variant] / "export" / "animated.glb")
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_lifted_model_is_valid(lift_run):
    issues = khronos_validate(lift_run / "lift" / "model.glb")
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
    # nor a hint: trimesh's GLB left bufferView.target out (BUFFER_VIEW_TARGET_MISSING on every attribute)
    assert issues["numInfos"] == 0 and issues["numHints"] == 0, issues["messages"]
