"""3D formats a3d does not read, and the command that turns each into a .glb it does.

Why one place: `a3d prepare` decides by suffix whether to read a file, and for a format it leaves to another
tool the answer is the tool and the exact command, which users copy. Each command was run on a cube that
Blender (or assimp) wrote in that format, and its .glb went through `a3d prepare` (docs/prepare.md, "Formats
to convert first", says which commands could be run here and which could not).

Blender commands pass `--disable-autoexec`, so scripts embedded in a stranger's .blend (or pulled in by an
import) do not run, and `--python-exit-code 1` with a check that something was imported, so a failed import
exits non-zero instead of writing an empty .glb.

Examples:
    >>> convert_hint(Path("hero.fbx"))  # doctest: +SKIP
    'Convert it to .glb with Blender: blender -b --factory-startup --disable-autoexec ...'
"""

from __future__ import annotations

import shlex
from pathlib import Path

from a3d_cli.errors import InputError

# suffix → (what the format is called in messages, how it is converted: a Blender import operator or a tool)
CONVERT_FIRST: dict[str, tuple[str, str]] = {
    ".fbx": ("Autodesk FBX", "import_scene.fbx"),
    ".dae": ("COLLADA", "wm.collada_import"),
    ".blend": ("Blender", "blend"),
    ".3ds": ("Autodesk 3DS", "assimp"),
    ".x3d": ("X3D", "assimp"),
    ".wrl": ("VRML", "import_scene.x3d"),
    ".abc": ("Alembic", "wm.alembic_import"),
    ".usd": ("USD", "wm.usd_import"),
    ".usda": ("USD (text)", "wm.usd_import"),
    ".usdc": ("USD (binary)", "wm.usd_import"),
    ".usdz": ("USDZ", "usdz"),
}

_EXPORT = "bpy.ops.export_scene.gltf(filepath=p.rsplit('.', 1)[0] + '.glb')"  # the .glb next to the input
_IMPORTED = "assert bpy.context.scene.objects, 'nothing imported'"  # a failed import must not write an empty .glb


def blender_command(operator: str, file: str) -> str:
    """One shell line that imports `file` with Blender's `operator` and writes a .glb next to it.

    Args:
        operator: a Blender import operator, e.g. "import_scene.fbx".
        file: the file as the user names it (quoted for a POSIX shell here).
    """
    script = (
        f"import bpy, sys; p = sys.argv[-1]; bpy.ops.wm.read_factory_settings(use_empty=True); "
        f"bpy.ops.{operator}(filepath=p); {_IMPORTED}; {_EXPORT}"
    )
    return (
        f'blender -b --factory-startup --disable-autoexec --python-exit-code 1 --python-expr "{script}" '
        f"-- {shlex.quote(file)}"
    )


def blend_command(file: str) -> str:
    """One shell line that opens a .blend without running its scripts and writes its scene as a .glb next to it."""
    script = f"import bpy; p = bpy.data.filepath; {_IMPORTED}; {_EXPORT}"
    return f'blender -b --disable-autoexec {shlex.quote(file)} --python-exit-code 1 --python-expr "{script}"'


def convert_hint(path: Path) -> str:
    """The hint for a file a3d does not read: the command that converts it to a .glb (`CONVERT_FIRST`)."""
    suffix = path.suffix.lower()
    how = CONVERT_FIRST[suffix][1]
    file = str(path)
    glb = str(path.with_suffix(".glb"))
    if how == "blend":
        return f"Export it as .glb with Blender (its scripts kept off): {blend_command(file)}"
    if how == "assimp":
        return f"Convert it to .glb with assimp: assimp export {shlex.quote(file)} {shlex.quote(glb)}"
    if how == "usdz":
        return (
            "A .usdz is a zip holding a .usdc and its textures: unzip it, then convert the .usdc with a Blender "
            f"build that has USD import (blender.org builds): {blender_command('wm.usd_import', 'model.usdc')}"
        )
    if how in ("wm.usd_import", "wm.alembic_import"):
        return f"Convert it to .glb with a Blender build that has {CONVERT_FIRST[suffix][0].split()[0]} import " \
            f"(blender.org builds): {blender_command(how, file)}"
    return f"Convert it to .glb with Blender: {blender_command(how, file)}"


def unread_format_error(path: Path) -> InputError | None:
    """The error for a file in a format a3d leaves to another tool (a 3D format here, a splat format in
    `a3d_cli.gaussians.formats`), with the command that converts it; None for any other suffix."""
    from a3d_cli.gaussians import formats

    suffix = path.suffix.lower()
    if suffix in CONVERT_FIRST:
        return InputError(
            f"{path.name} is in {CONVERT_FIRST[suffix][0]} format, which a3d does not read.", hint=convert_hint(path)
        )
    if suffix in formats.CONVERT_FIRST:
        return InputError(
            f"{path.name} is a Gaussian-splat file in {formats.CONVERT_FIRST[suffix]} format, which a3d does not read.",
            hint=formats.convert_hint(suffix),
        )
    return None


__all__ = ["CONVERT_FIRST", "blend_command", "blender_command", "convert_hint", "unread_format_error"]
