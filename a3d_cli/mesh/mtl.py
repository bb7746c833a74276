"""Texture-map statements of Wavefront MTL files: options first, then the file name as the rest of the line.

Why our own: the MTL format puts options (`-bm 0.5`, `-o 0 0 0`, `-clamp on`) before the file name, and the
file name is everything after them — it may contain spaces (`map_Kd fuze uv.jpg`). Taking the last word,
or the whole rest of the line, both read such files wrongly.

Examples:
    >>> map_file_name("-bm 0.5 -o 0.1 0.2 fuze uv.jpg")
    'fuze uv.jpg'
    >>> map_file_name("textures\\\\wood.png")
    'textures/wood.png'
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

# option → how many arguments it takes (at most; -o/-s/-t take 1 to 3 numbers)
_FIXED_ARGS = {"-blendu": 1, "-blendv": 1, "-cc": 1, "-clamp": 1, "-mm": 2, "-texres": 1, "-bm": 1,
               "-boost": 1, "-imfchan": 1, "-type": 1}  # fmt: skip
_NUMERIC_ARGS = {"-o": 3, "-s": 3, "-t": 3}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

MAP_KEYWORDS = ("map_kd", "map_ka", "map_ks", "map_ns", "map_d", "map_bump", "bump", "norm", "map_pr", "map_pm",
                "disp", "decal", "refl")  # fmt: skip


def map_file_name(rest: str) -> str:
    """The file name of a map statement, given the text after its keyword (options skipped, Windows
    separators turned into '/'); '' when there is none."""
    words = rest.strip().split()
    i = 0
    while i < len(words) and words[i].startswith("-") and not _NUMBER.match(words[i]):
        opt = words[i].lower()
        i += 1
        if opt in _FIXED_ARGS:
            i += _FIXED_ARGS[opt]
        else:  # -o/-s/-t, or an option we do not know: skip the numbers that follow it
            limit = _NUMERIC_ARGS.get(opt, 3)
            taken = 0
            while i < len(words) and taken < limit and _NUMBER.match(words[i]):
                i += 1
                taken += 1
    if i >= len(words):
        return ""
    # keep the original spacing of the name: find where its first word starts in the stripped text
    text = rest.strip()
    pos = 0
    for w in words[:i]:
        pos = text.index(w, pos) + len(w)
    return text[pos:].strip().replace("\\", "/")


def map_uv_transform(rest: str) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The `-s u [v]` scale and `-o u [v]` offset of a map statement (the text after its keyword): texture
    coordinates become uv · s + o, as Blender's OBJ importer (a Mapping node) and three.js's MTLLoader
    (texture repeat and offset) apply them; a missing v is 1 for -s and 0 for -o. None when neither is given."""
    words = rest.strip().split()
    found: dict[str, list[float]] = {}
    i = 0
    while i < len(words) and words[i].startswith("-") and not _NUMBER.match(words[i]):
        opt = words[i].lower()
        i += 1
        if opt in _FIXED_ARGS:  # as `map_file_name` skips them
            i += _FIXED_ARGS[opt]
            continue
        numbers: list[float] = []
        while i < len(words) and len(numbers) < _NUMERIC_ARGS.get(opt, 3) and _NUMBER.match(words[i]):
            numbers.append(float(words[i]))
            i += 1
        if opt in ("-s", "-o") and numbers:
            found[opt] = numbers
    if not found:
        return None
    scale, offset = found.get("-s", [1.0]), found.get("-o", [0.0])
    return (scale[0], scale[1] if len(scale) > 1 else 1.0), (offset[0], offset[1] if len(offset) > 1 else 0.0)


def diffuse_uv_transforms(text: str) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """Per material name (`newmtl`), the `-s`/`-o` of its `map_Kd` (`map_uv_transform`), for those that have one."""
    out: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
    material = None
    for line in text.splitlines():
        words = line.strip().split(maxsplit=1)
        if len(words) == 2 and words[0].lower() == "newmtl":
            material = words[1].strip()
        elif len(words) == 2 and words[0].lower() == "map_kd" and material is not None:
            if (transform := map_uv_transform(words[1])) is not None:
                out[material] = transform
    return out


def obj_material_library(path: Path) -> str | None:
    """The one material library trimesh loads for an OBJ, as written; None when there is none.

    trimesh (`trimesh.exchange.obj.load_obj`) reads only the first `mtllib` in the file's text (after joining
    lines continued with a backslash), and takes the rest of that line, stripped, as one name: spaces are
    kept (`mtllib my lib.mtl` names `my lib.mtl`) and further `mtllib` lines are never read. a3d checks and
    copies exactly that file, so it never vets one file while trimesh opens another. The file is scanned
    line by line (an OBJ of millions of lines is never held as text) through `open_regular`; a file that is
    missing or not a regular file gives None (the loader decides).
    """
    from a3d_cli.io.regular import open_regular

    try:
        with open_regular(path) as raw:
            lines = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")  # split at "\n" only
            logical = ""
            for line in lines:
                logical += line.replace("\r\n", "\n")
                if logical.endswith("\\\n"):  # a continued line: trimesh joins it to the next
                    logical = logical[:-2]
                    continue
                if (at := logical.find("mtllib")) >= 0:
                    return logical[at + 6 :].strip() or None
                logical = ""
            if (at := logical.find("mtllib")) >= 0:
                return logical[at + 6 :].strip() or None
    except (OSError, ValueError):  # missing, unreadable, or not a regular file
        return None
    return None


def obj_references(path: Path, keywords: tuple[str, ...]) -> list[Path]:
    """Files named after `keywords` in an MTL file (`referenced_names`), joined to its folder; [] when the
    file is missing or not a regular file (a pipe or device, whose read would never end).

    The file is opened through `a3d_cli.io.regular.open_regular` and scanned line by line.
    """
    from a3d_cli.io.regular import open_regular

    try:
        with open_regular(path) as raw:
            lines = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
            return [path.parent / name for name in referenced_names(lines, keywords)]
    except (OSError, ValueError):  # missing, unreadable, or not a regular file
        return []


def referenced_names(text: str | Iterable[str], keywords: tuple[str, ...]) -> list[str]:
    """File names after map `keywords` (lower case) in an MTL file's text (or its lines), as written ('/'
    separators): a map statement has options first and the file name as the rest of the line
    (`map_file_name`). An OBJ's `mtllib` is read by `obj_material_library`, as trimesh reads it."""
    out = []
    for line in text.splitlines() if isinstance(text, str) else text:
        words = line.strip().split(maxsplit=1)
        if len(words) == 2 and words[0].lower() in keywords and (name := map_file_name(words[1])):
            out.append(name)
    return out
