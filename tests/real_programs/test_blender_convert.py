"""The conversion command a3d's hint gives for an FBX really converts it: Blender writes a cube as FBX, the
hint's command (run through a shell, as a user pastes it) turns it into a .glb, and `a3d prepare` reads that.

Opt-in: set A3D_BLENDER to the `blender` executable.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from helpers import needs_program, run_a3d

from a3d_cli.mesh.conversions import convert_hint

pytestmark = needs_program("A3D_BLENDER")


def test_fbx_hint_command_converts_a_blender_fbx_that_prepare_reads(tmp_path):
    blender = os.environ["A3D_BLENDER"]
    fbx = tmp_path / "my cube.fbx"  # a space: the hint's quoting is part of what is checked
    script = f"import bpy; bpy.ops.export_scene.fbx(filepath={str(fbx)!r})"  # the factory scene's cube
    subprocess.run([blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr", script],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    command = convert_hint(fbx).split(": ", 1)[1]
    assert command.startswith("blender ")
    command = shlex.quote(blender) + command[len("blender") :]
    subprocess.run(["bash", "-c", command], check=True, capture_output=True, timeout=300, cwd=tmp_path)
    glb = tmp_path / "my cube.glb"
    assert glb.is_file()
    run_dir = tmp_path / "RUN"
    run_a3d("prepare", str(glb), "-o", str(run_dir), "--splats", "2000")
    metrics = json.loads((run_dir / "a3d.json").read_text())["stages"]["prepare"]["metrics"]
    assert metrics["kind"] == "mesh" and metrics["faces"] == 12  # Blender's cube: 6 quads, 12 triangles
    assert Path(run_dir / "static/gaussians.ply").is_file()
