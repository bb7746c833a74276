"""Check an STL file before trimesh reads it: binary or ASCII, and a binary file that holds what it declares.

Why: a binary STL is an 80-byte header, a little-endian u32 triangle count and 50 bytes per triangle.
trimesh reads it as binary only when the file's length equals that count exactly, and otherwise reads it
as ASCII text, so a truncated download comes back as an empty mesh ("no geometry") instead of a damaged
file, and a file with a few padding bytes after its triangles reads as nothing at all. This module tells
the two apart first: a file that starts with `solid` and holds no NUL byte is ASCII (left to trimesh,
whose reader keeps memory proportional to the file); anything else is binary, refused when shorter than
its declared triangles and cut to them when longer. Memory stays bounded by the file's own size: a count
the file does not hold is refused before any array is made.

Examples:
    >>> data = binary_stl_bytes(Path("part.stl"))  # doctest: +SKIP
    >>> data is None  # ASCII: trimesh reads the file itself  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from a3d_cli.errors import InputError

HEADER_BYTES = 84  # 80-byte free-form header + u32 triangle count
TRIANGLE_BYTES = 50  # normal (3 float32), 3 corners (9 float32), u16 attribute
_REPAIR = "The export or download did not finish, or the file is damaged; export the STL again."


def is_ascii_stl(data: bytes) -> bool:
    """Whether STL bytes are the ASCII form: they start with `solid` (after blanks) and hold no NUL byte.

    Why NUL: binary headers often start with `solid` too (some CAD exporters write it there), but the
    triangles of a binary file, with their u16 attribute (almost always 0), always hold NUL bytes, and
    text never does."""
    return data.lstrip()[:5].lower() == b"solid" and b"\0" not in data


def binary_stl_bytes(path: Path) -> bytes | None:
    """The bytes of a binary STL cut to exactly the triangles its header declares; None for an ASCII STL.

    Args:
        path: the STL file (a regular, non-empty file: `a3d_cli.mesh.load.check_input_file` ran first).

    Returns:
        84 + 50 · count bytes, what trimesh's binary reader accepts; None when the file is ASCII.

    Raises:
        InputError: a binary file shorter than its header, or than the triangles its header declares, or one
            that declares no triangle.
    """
    from a3d_cli.io.regular import read_regular

    data = read_regular(path)
    if is_ascii_stl(data):
        return None
    if len(data) < HEADER_BYTES:
        raise InputError(
            f"{path.name} is neither an ASCII STL (it does not start with 'solid') nor a binary STL "
            f"(it has {len(data)} bytes, fewer than the {HEADER_BYTES}-byte header).",
            hint=_REPAIR,
        )
    count = int.from_bytes(data[80:84], "little")
    held = (len(data) - HEADER_BYTES) // TRIANGLE_BYTES
    if count == 0:
        raise InputError(f"{path.name} is a binary STL that declares no triangles.", hint="Export the object itself, not an empty scene.")
    if held < count:
        raise InputError(
            f"{path.name} is a binary STL whose header declares {count:,} triangles but whose data holds only "
            f"{held:,} (the file ends early).",
            hint=_REPAIR,
        )
    return data[: HEADER_BYTES + count * TRIANGLE_BYTES]
