"""OBJ smoothing groups (`s 1`, `s 2`, `s off`): which faces of an OBJ without `vn` shade smoothly together.

Why: many exporters (3ds Max, Maya, ZBrush, game-asset stores) write smoothing groups and no `vn`, and the
artist expects what the modelling tool showed: faces of one group smooth across the points they share, a hard
edge where two groups meet, faces in `s off` (or `s 0`) flat. trimesh ignores `s` lines, so a3d reads them
here and hands `a3d_cli.mesh.creases.split_face_groups` a label per face.

The rules (docs/prepare.md, "Smoothing groups"):
- `s off` and `s 0` (any spelling of the number 0) turn smoothing off: each face that follows is flat;
- `s N` for any other word puts the faces that follow into the group named N (`s 1` and `s 01` are one
  group, a number being read as a number); a bare `s` is a group of its own, as three.js reads it;
- in a file with any `s` line, faces before the first one are flat, as in Blender, the OBJ default being
  smoothing off; a file with no `s` line is not read here (`read_smoothing_groups` gives None) and keeps
  a3d's smooth default.

trimesh's faces are matched to the file's by their points, not by their order: trimesh regroups faces by
material and splits polygons into fans, and the positions of the file's `v` lines are what both hold. A
polygon becomes the fan (0, i, i + 1), as trimesh splits it; a triangle is keyed by its three points in
winding order, starting at the smallest, so a face and its reverse (a two-sided sheet) stay apart. A face of
trimesh's that no face of the file matches (a file trimesh reads otherwise) is smooth with the other
unmatched ones, as without smoothing groups.

Memory: the file is scanned once for an `s` line in blocks of bytes; only a file with one is read line by
line (never held as text), keeping its positions and its fan triangles with their labels: 32 bytes a
triangle and 24 a position, the same order as trimesh's own arrays for the file.

Examples:
    >>> groups = read_smoothing_groups(Path("crate.obj"))  # doctest: +SKIP
    >>> mesh = split_face_groups(mesh, face_labels(mesh.vertices, mesh.faces, groups))  # doctest: +SKIP
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from a3d_cli.mesh.creases import FLAT
from a3d_cli.mesh.topology import distinct_rows

_SMOOTHING_LINE = re.compile(rb"(?m)^[ \t]*s(?:[ \t\r#]|$)")  # a line whose first word is `s`
_SMOOTHING_VALUE = re.compile(rb"(?m)^[ \t]*s(?![^ \t\r\n#])[ \t]*([^ \t\r\n#]*)")  # an `s` line and its group
_FACE_LINE = re.compile(rb"(?m)^[ \t]*f(?:[ \t\r#]|$)")  # a line whose first word is `f`
_NORMAL_LINE = re.compile(rb"(?m)^[ \t]*vn(?:[ \t\r#]|$)")  # a line whose first word is `vn`
_BLOCK = 1 << 20  # bytes scanned at a time for an `s` line
_LARGEST_CORNER = int(np.iinfo(np.int64).max)  # a corner past this names no position (nor fits the int64 triangles)


@dataclass(frozen=True)
class SmoothingGroups:
    """An OBJ's faces as fan triangles over its `v` positions, each with its smoothing label.

    Attributes:
        positions: [P, 3] float64 the file's `v` positions, in order.
        triangles: [S, 3] int64 the fan triangles of its faces, indices into `positions`.
        labels: [S] int64 each triangle's label: a smoothing group's number (0, 1, ... by first appearance)
            for a face in one, `creases.FLAT` for a face where smoothing is off.
    """

    positions: np.ndarray  # [P, 3]
    triangles: np.ndarray  # [S, 3]
    labels: np.ndarray  # [S]


def has_smoothing_lines(path: Path) -> bool:
    """Whether some line of the OBJ at `path` starts with the word `s` (leading blanks allowed); the file is
    read in blocks of bytes through `open_regular`, False when it cannot be read (the loader says why)."""
    return _has_line(path, _SMOOTHING_LINE)


def has_normal_lines(path: Path) -> bool:
    """Whether some line of the OBJ at `path` starts with the word `vn`: the file gives its own normals, which
    win over its smoothing groups (`a3d_cli.mesh.load`); a scan of its bytes, as `has_smoothing_lines`."""
    return _has_line(path, _NORMAL_LINE)


def _has_line(path: Path, line: re.Pattern[bytes]) -> bool:
    """Whether `line` (a pattern anchored at a line's start) matches in the OBJ's bytes (`_blocks`)."""
    return any(line.search(text, 0, cut) is not None for text, cut in _blocks(path))


def smoothing_splits(path: Path) -> bool:
    """Whether the OBJ's smoothing groups give some face a hard edge, as `read_smoothing_groups` labels them: a
    face before the first `s` line or after an `s 0` / `s off` line (flat), or faces in two groups of different
    names. False for a file without `s` lines or with all its faces in one group (smooth, as without groups). A
    scan of its bytes: faces are looked for only before the first `s` line and between `s` lines, and an `s`
    line counts only when a face line follows it before the next (the reader numbers no other)."""
    named: set[bytes | int] = set()  # the groups that hold a face
    pending: bytes | int | None = None  # the last `s` line's group, until a face line follows it
    seen = False  # an `s` line was met
    for text, cut in _blocks(path):
        start = 0  # where this block's lines not yet looked at begin
        if not seen:
            found = _SMOOTHING_LINE.search(text, 0, cut)
            if _FACE_LINE.search(text, 0, cut if found is None else found.start()) is not None:
                return has_smoothing_lines(path)  # a face before any `s` line is flat once one exists
            if found is None:
                continue
            seen, start = True, found.start()
        for line in _SMOOTHING_VALUE.finditer(text, start, cut):
            if pending is not None and _FACE_LINE.search(text, start, line.start()) is not None:
                if _splits(named, pending):
                    return True
            pending, start = _group_name(line.group(1)), line.end()
        if pending is not None and _FACE_LINE.search(text, start, cut) is not None:
            if _splits(named, pending):
                return True
            pending = None  # entered: later faces of the group change nothing
    return False


def _splits(named: set[bytes | int], group: bytes | int) -> bool:
    """Enter `group`, which a face holds, in `named` (`smoothing_splits`); whether the faces so far have a hard
    edge: the group is smoothing off, or a second group."""
    if group == 0 or group == b"off":
        return True
    named.add(group)
    return len(named) > 1


def _blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """The OBJ's bytes in blocks of about _BLOCK, each as (text, cut): text[:cut] is whole lines, each line in
    one block's whole lines; nothing when the file cannot be read (the loader says why)."""
    from a3d_cli.io.regular import open_regular

    try:
        with open_regular(path) as raw:
            tail = b"\n"  # the previous block's last, unfinished line
            while block := raw.read(_BLOCK):
                text = tail + block
                cut = text.rfind(b"\n") + 1
                yield text, cut
                tail = text[cut:]
            yield tail + b"\n", len(tail) + 1
    except (OSError, ValueError):
        return


def read_smoothing_groups(path: Path) -> SmoothingGroups | None:
    """The smoothing labels of an OBJ's faces; None for a file without `s` lines or one whose `v` or `f` lines
    do not read as numbers (trimesh reads it its own way; its faces then shade as without groups).

    Lines are joined where one ends in a backslash and split at "\\n", as trimesh reads them. A face's corner
    `i`, `i/t`, `i//n` or `i/t/n` names position `i` (1-based; negative counts back from the last position so
    far); a face naming no position that exists, or with fewer than three corners, is skipped.
    """
    from a3d_cli.io.regular import open_regular

    if not has_smoothing_lines(path):
        return None
    positions, triangles, labels = array("d"), array("q"), array("q")
    groups: dict[bytes | int, int] = {}
    label = FLAT  # smoothing starts off
    pending: bytes | int | None = None  # the group of the last `s` line, entered once a face follows it
    try:
        with open_regular(path) as raw:
            for line in _logical_lines(raw):
                words = line.partition(b"#")[0].split()
                if not words:
                    continue
                key = words[0]
                if key == b"v":
                    positions.extend((float(words[1]), float(words[2]), float(words[3])))  # IndexError: too few
                elif key == b"f":
                    corners = [int(w.partition(b"/")[0]) for w in words[1:]]  # 1-based, or negative: relative
                    if len(corners) < 3 or max(corners) > _LARGEST_CORNER:
                        continue
                    if min(corners) <= 0 and not _resolve(corners, len(positions) // 3):
                        continue
                    if pending is not None:  # numbered only now: `s` lines without faces cost nothing
                        label = FLAT if pending == 0 or pending == b"off" else groups.setdefault(pending, len(groups))
                        pending = None
                    for i in range(1, len(corners) - 1):
                        triangles.extend((corners[0], corners[i], corners[i + 1]))
                        labels.append(label)
                elif key == b"s":
                    pending = _group_name(words[1] if len(words) > 1 else b"")
    except (OSError, ValueError, IndexError):  # unreadable, a number that is not one, a `v` of too few
        return None
    points = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)  # [P, 3]
    fans = np.frombuffer(triangles, dtype=np.int64).reshape(-1, 3) - 1  # [S, 3] 0-based
    named = (fans < len(points)).all(axis=1)  # [S] a corner past the last position names none
    return SmoothingGroups(points, fans[named], np.frombuffer(labels, dtype=np.int64)[named])


def face_labels(vertices: np.ndarray, faces: np.ndarray, groups: SmoothingGroups) -> np.ndarray:
    """[T] the smoothing label of each face of a mesh read from the file (`load_mesh`, in the file's frame):
    the label of the file's triangle over the same points in the same winding; an unmatched face gets a label
    of its own kind, shared by all of them (smooth, as without groups).

    Args:
        vertices: [V, 3] the mesh's positions (the file's `v` values, copied).
        faces: [T, 3] its triangles.
        groups: the file's triangles and labels (`read_smoothing_groups`).

    Returns:
        [T] int64 labels, as `SmoothingGroups.labels` numbers them.
    """
    point, _ = distinct_rows(np.concatenate([vertices, groups.positions]) + 0.0)  # [V + P] one number a point
    keys = np.concatenate([_cycle_keys(point[faces]), _cycle_keys(point[len(vertices) :][groups.triangles])])
    key, count = distinct_rows(keys)  # [T + S]
    unmatched = int(groups.labels.max(initial=-1)) + 1  # a smoothing group no face of the file holds
    label_of = np.full(count, unmatched, dtype=np.int64)  # [D]
    label_of[key[len(faces) :]] = groups.labels
    return label_of[key[: len(faces)]]


def _cycle_keys(triangles: np.ndarray) -> np.ndarray:
    """[T, 3] each triangle's points [T, 3] turned to start at its smallest, keeping the winding: one key for
    (a, b, c), (b, c, a) and (c, a, b), another for (a, c, b)."""
    start = np.argmin(triangles, axis=1)  # [T]
    turn = (start[:, None] + np.arange(3)) % 3  # [T, 3]
    return np.take_along_axis(triangles, turn, axis=1)


def _resolve(corners: list[int], count: int) -> bool:
    """Turn a face's negative corners (counted back from the last of the `count` positions read so far) into
    1-based ones, in place; False when one is 0 or reaches before the first position."""
    for k, i in enumerate(corners):
        if i < 0:
            corners[k] = count + i + 1
        if corners[k] <= 0:
            return False
    return True


def _group_name(word: bytes) -> bytes | int:
    """A smoothing group's name: a number as its value (`01` is `1`; `0` turns smoothing off), `off` in any
    case as b"off", any other word as written."""
    try:
        return int(word)
    except ValueError:
        return word.lower() if word.lower() == b"off" else word


def _logical_lines(raw: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary file, each without its "\\n", with those ending in a backslash joined to the next
    (trimesh's reading: "\\r\\n" counts as "\\n"). A joined line grows in one bytearray, so a face continued
    over a million lines costs its length once, not once a line."""
    logical = bytearray()
    for line in raw:
        logical += line.replace(b"\r\n", b"\n")
        if logical.endswith(b"\\\n"):
            del logical[-2:]
            continue
        yield bytes(logical).rstrip(b"\n")
        logical.clear()
    if logical:
        yield bytes(logical)
