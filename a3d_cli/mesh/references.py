"""Files an asset names (glTF buffers and images, OBJ material libraries and texture maps) are read only
from inside the asset's own folder.

Why: assets come from strangers. A glTF whose image URI is `/home/me/.ssh/id_rsa`, or an OBJ whose `mtllib`
climbs out with `../../`, would otherwise have a3d read a private file and copy it into the run folder's
`source/original/`, which people share. Only `data:` URIs and relative paths that stay below the folder are
followed (links included: a reference is judged by where it finally leads); anything else is refused with
a clear error unless the user opts in (`--allow-external-refs`).

Every such file is read through `open_regular` / `read_regular`: the name is resolved (and its containment
checked by the caller) first, then the resolved path is opened without following a last link and without
blocking, and the opened descriptor itself must be a regular file. Checking the path and then opening it
would leave a gap in which a named pipe (whose read never ends) could be swapped in.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

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
        InputError: the reference is absolute or climbs out of the asset's folder (directly or through a link).
    """
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


def open_regular(path: Path) -> BinaryIO:
    """Open a file an asset names for reading in binary, refusing anything but a regular file.

    The path is resolved here (links judged by where they finally lead; callers check containment on the same
    resolved path), then opened with `O_NOFOLLOW` (a link swapped in after the check is refused) and
    `O_NONBLOCK` (opening a named pipe or device returns at once instead of waiting for a writer). The opened
    descriptor is checked with `fstat`, so what is read is what was checked.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not a regular file (a directory, named pipe, socket or device).
        OSError: it cannot be opened (permissions, a link put in its place).
    """
    resolved = Path(path).resolve()
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(resolved, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{Path(path).name!r} is not a regular file")
        os.set_blocking(fd, True)  # a regular file ignores the flag; cleared so the file object reads normally
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path) -> bytes:
    """All bytes of a file an asset names, through `open_regular` (same errors)."""
    with open_regular(path) as f:
        return f.read()


def gltf_json(path: Path) -> dict[str, Any] | None:
    """The JSON document of a .gltf or .glb file (None when it cannot be read; the loader reports that)."""
    from a3d_cli.mesh.gltf_accessors import parse_gltf

    try:
        return parse_gltf(Path(path).read_bytes(), Path(path).name)[0]
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
