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


def obj_references(path: Path, keywords: tuple[str, ...]) -> list[Path]:
    """Files named after `keywords` in an OBJ/MTL file (`referenced_names`), joined to its folder; [] when the
    file is missing or not a regular file (a pipe or device, whose read would never end).

    The file is scanned line by line: an OBJ of millions of lines is never held in memory as text.
    """
    if not path.is_file():  # missing (the loader decides), or a pipe or device
        return []
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            return [path.parent / name for name in referenced_names(lines, keywords)]
    except OSError:
        return []


def referenced_names(text: str | Iterable[str], keywords: tuple[str, ...]) -> list[str]:
    """File names after `keywords` (lower case) in an OBJ/MTL file's text (or its lines), as written ('/'
    separators): `mtllib` lists file names separated by spaces; a map statement has options first and the
    file name as the rest of the line (`map_file_name`)."""
    out = []
    for line in text.splitlines() if isinstance(text, str) else text:
        words = line.strip().split(maxsplit=1)
        if len(words) == 2 and words[0].lower() in keywords:
            if words[0].lower() == "mtllib":
                out.extend(n.replace("\\", "/") for n in words[1].split())
            elif name := map_file_name(words[1]):
                out.append(name)
    return out
