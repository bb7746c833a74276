"""Files an asset names (glTF buffers and images, OBJ material libraries and texture maps) are read only
from inside the asset's own folder.

Why: assets come from strangers. A glTF whose image URI is `/home/me/.ssh/id_rsa`, or an OBJ whose `mtllib`
climbs out with `../../`, would otherwise have a3d read a private file and copy it into the run folder's
`source/original/`, which people share. Only `data:` URIs and relative paths that stay below the folder are
followed (links included: a reference is judged by where it finally leads); anything else is refused with
a clear error unless the user opts in (`--allow-external-refs`).

Every such file is read through `a3d_cli.io.regular` (`open_regular` / `read_regular`): the name is resolved (and its containment
checked by the caller) first, then the resolved path is opened without following a last link and without
blocking, and the opened descriptor itself must be a regular file. Checking the path and then opening it
would leave a gap in which a named pipe (whose read never ends) could be swapped in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from a3d_cli.errors import InputError

ALLOW_HINT = (
    "Copy the file into the asset's folder and reference it by a relative path, or pass --allow-external-refs "
    "if you trust this asset."
)


def asset_root(model: Path) -> Path:
    """The folder whose files `model` may reference: the folder the model file sits in (links resolved)."""
    return Path(model).absolute().parent.resolve()


def check_reference(model: Path, target: Path, name: str, allow_external: bool = False) -> Path:
    """Return `target` when it lies inside the asset's folder (or external references are allowed).

    Args:
        model: the asset file (.gltf, .glb, .obj) or, for texture maps, the asset that pulled in the .mtl.
        target: the referenced file, already joined to the folder of the file that names it.
        name: the reference as written in the file (for the message).
        allow_external: accept references anywhere (the user trusts the asset).

    Raises:
        InputError: the reference holds a NUL byte (no file can be named so; refused before any path
            operation, even with `allow_external`, since the OS refuses such a name with a `ValueError`), or
            it is absolute or climbs out of the asset's folder (directly or through a link).
    """
    if "\0" in str(target) or "\0" in name:
        raise InputError(
            f"{Path(model).name} references {name!r}, a file name with a NUL byte, which no file can have.",
            hint="Fix the reference in a 3D tool (or a text editor) and export the asset again.",
        )
    if allow_external:
        return target
    root = asset_root(model)
    resolved = Path(target).absolute().resolve()
    if resolved != root and root not in resolved.parents:
        raise InputError(
            f"{Path(model).name} references {name!r}, which lies outside the asset's folder {root}; "
            "a3d does not read files an asset names outside its own folder.",
            hint=ALLOW_HINT,
        )
    return target


def gltf_json(path: Path) -> dict[str, Any] | None:
    """The JSON document of a .gltf or .glb file (None when it cannot be read; the loader reports that)."""
    from a3d_cli.io.regular import read_regular
    from a3d_cli.mesh.gltf_accessors import parse_gltf

    try:
        return parse_gltf(read_regular(Path(path)), Path(path).name)[0]
    except (OSError, InputError):
        return None


def gltf_uris(path: Path) -> list[str]:
    """The external (non-`data:`) URIs of a glTF's buffers and images, as written."""
    doc = gltf_json(path)
    if doc is None:
        return []
    uris = []
    for key in ("buffers", "images"):
        items = doc.get(key, [])
        for item in items if isinstance(items, list) else []:
            uri = item.get("uri") if isinstance(item, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                uris.append(uri)
    return uris


def read_referenced(resolver: Any, names: list[str], label: str, asset: str, hint: str) -> bytes | None:
    """The bytes of a file the asset names, read through the rooted resolver; None when no candidate name
    exists (the caller judges a missing file: a buffer must exist, a missing texture is left to trimesh).

    Args:
        resolver: a3d's rooted resolver (`resolver.get(name)`, `a3d_cli.mesh.load`), which refuses names
            outside the asset's folder and anything that is not a regular file.
        names: spellings of the reference to try in turn (a URI percent-decoded, then as written).
        label: what the asset names, for the message (e.g. "texture image 'wood.png'").
        asset: the asset's file name, for the message.
        hint: the message's hint.

    Raises:
        InputError: the file exists but cannot be read (not a regular file, outside the folder, unreadable).
    """
    last: Exception | None = None
    for name in names:
        try:
            return bytes(resolver.get(name))
        except FileNotFoundError:
            continue
        except Exception as exc:  # ValueError: not a regular file, or outside the folder; OSError: unreadable
            last = exc
    if last is None:
        return None
    reason = str(last).split(" — ")[0]  # trimesh's own advice after the dash names its API, not a3d's option
    raise InputError(f"{asset}'s {label} cannot be read ({reason}).", hint=hint) from last


def sidecar_files(model: Path, allow_external: bool = False) -> list[Path]:
    """Files an input depends on next to it: an OBJ's .mtl files and their texture maps, a glTF's buffers
    and images. Missing ones are left out (the loader decides whether that matters).

    Raises:
        InputError: a reference leads outside the model's folder and `allow_external` is False.
    """
    suffix = model.suffix.lower()
    found: list[Path] = []
    if suffix == ".obj":
        from a3d_cli.mesh.mtl import MAP_KEYWORDS, obj_material_library, obj_references

        library = obj_material_library(model)  # the one library trimesh loads, its name as written
        if library is not None:
            mtl = model.parent / library.replace("\\", "/")
            check_reference(model, mtl, _shown(model, mtl), allow_external)  # before its text is read
            found.append(mtl)
            found.extend(obj_references(mtl, MAP_KEYWORDS))
    elif suffix in (".gltf", ".glb"):
        found.extend(model.parent / unquote(uri) for uri in gltf_uris(model))
    unique: list[Path] = []
    for p in found:
        check_reference(model, p, _shown(model, p), allow_external)
        if p.is_file() and p.resolve() != model.resolve() and p.resolve() not in [u.resolve() for u in unique]:
            unique.append(p)
    return unique


def _shown(model: Path, path: Path) -> str:
    """A referenced file as seen from the model's folder (for messages)."""
    return os.path.relpath(path, model.parent)
