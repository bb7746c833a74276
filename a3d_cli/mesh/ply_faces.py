"""PLY meshes whose faces are polygons, rewritten as triangles for trimesh.

Why: trimesh 5 reads a binary PLY only when every face list has the length of the first (it refuses the file
as "PLY is unexpected length!" otherwise), so Blender's default PLY export of any mesh with quads and
triangles (Suzanne) could not be read; and when polygon faces carry colours, trimesh triangulates the faces
but keeps one colour per polygon, and fails later. a3d reads such a file's elements itself, turns each
polygon into a triangle fan (triangle k of polygon p₀ … p_{n−1} is p₀, p_{k+1}, p_{k+2}, as trimesh splits
quads), repeats each face property on the polygon's triangles (per-corner lists such as MeshLab's
`texcoord` follow their corners), and hands trimesh an equivalent binary PLY of triangles. Other elements
(edges, materials) are dropped: a3d reads only the surface.

Examples:
    >>> data = triangulated_ply(Path("suzanne.ply"))  # bytes, or None when trimesh reads the file as it is
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from a3d_cli.errors import InputError

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
_INDEX_NAMES = ("vertex_indices", "vertex_index")
_MAX_HEADER = 1 << 20
_REPAIR = "The PLY file is damaged or cut short; export it again."

# a property: (name, scalar type) or (name, (count type, item type)) for a list
Property = tuple[str, "str | tuple[str, str]"]


def triangulated_ply(path: Path) -> bytes | None:
    """An equivalent binary little-endian PLY of triangles, or None when trimesh reads `path` correctly as it
    is (no face element, every face a triangle, or a layout this rewrite does not cover).

    Raises:
        InputError: the data is cut short or a face names a vertex that does not exist.
    """
    from a3d_cli.io.regular import read_regular

    data = read_regular(path)
    parsed = _header(data[:_MAX_HEADER])
    if parsed is None:
        return None
    fmt, comments, elements, start = parsed
    names = [e[0] for e in elements]
    if "vertex" not in names or "face" not in names:
        return None
    face_props = elements[names.index("face")][2]
    index = next((i for i, (n, t) in enumerate(face_props) if n in _INDEX_NAMES and isinstance(t, tuple)), None)
    if index is None or any(isinstance(t, tuple) for _, t in elements[names.index("vertex")][2]):
        return None
    reader = _Reader(data, start, fmt, path.name)
    tables: dict[str, object] = {}
    for name, count, props in elements:
        if name in ("vertex", "face"):
            tables[name] = reader.element(count, props)
        elif name not in tables:
            reader.element(count, props)  # read past it
        if "vertex" in tables and "face" in tables:
            break
    vertex: np.ndarray = tables["vertex"]  # type: ignore[assignment]
    columns: list[list] = tables["face"]  # type: ignore[assignment]
    sizes = np.array([len(f) for f in columns[index]], dtype=np.int64)
    if (sizes == 3).all():
        return None  # trimesh reads triangles correctly, whatever the format
    return _write(comments, vertex, face_props, columns, index, sizes, path.name)


def _header(head: bytes) -> tuple[str, list[str], list[tuple[str, int, list[Property]]], int] | None:
    """(format, comment lines, elements, data offset), or None for a header this module does not parse
    (trimesh then reads the file and says what is wrong)."""
    end = head.find(b"end_header")
    newline = head.find(b"\n", end)
    if not head.startswith(b"ply") or end < 0 or newline < 0:
        return None
    fmt, comments, elements = "", [], []
    try:
        for line in head[:end].decode("ascii", errors="replace").splitlines()[1:]:
            words = line.split()
            if not words:
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] in ("comment", "obj_info"):
                comments.append(line.strip())
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and words[1] == "list":
                elements[-1][2].append((words[4], (_TYPES[words[2]], _TYPES[words[3]])))
            elif words[0] == "property":
                elements[-1][2].append((words[2], _TYPES[words[1]]))
    except (IndexError, KeyError, ValueError):
        return None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian") or any(c < 0 for _, c, _ in elements):
        return None
    return fmt, comments, elements, newline + 1


class _Reader:
    """Reads elements one after another from the data section, in either format."""

    def __init__(self, data: bytes, start: int, fmt: str, name: str) -> None:
        self.name = name
        self.ascii = fmt == "ascii"
        self.endian = ">" if fmt == "binary_big_endian" else "<"
        if self.ascii:
            self.tokens = data[start:].split()
            self.pos = 0
        else:
            self.data = memoryview(data)
            self.pos = start

    def _short(self) -> InputError:
        return InputError(f"{self.name}: its PLY data ends before the elements its header declares.", hint=_REPAIR)

    def element(self, count: int, props: list[Property]) -> np.ndarray | list[list]:
        """A fixed-size element as a structured array; one with lists as one list per property (a list
        property's entries are arrays)."""
        if not any(isinstance(t, tuple) for _, t in props):
            dtype = np.dtype([(n, self.endian + t) for n, t in props])  # type: ignore[operator]
            if self.ascii:
                width = len(props)
                if self.pos + count * width > len(self.tokens):
                    raise self._short()
                values = np.array(self.tokens[self.pos : self.pos + count * width], dtype=np.float64).reshape(count, width)
                self.pos += count * width
                table = np.empty(count, dtype=dtype.newbyteorder("<"))
                for i, n in enumerate(dtype.names or ()):
                    table[n] = values[:, i]
                return table
            if self.pos + count * dtype.itemsize > len(self.data):  # before anything of that size is allocated
                raise self._short()
            table = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
            self.pos += count * dtype.itemsize
            return table.astype(dtype.newbyteorder("<"))
        columns: list[list] = [[] for _ in props]
        if count > len(self.tokens if self.ascii else self.data):  # every row takes a token or a byte at least
            raise self._short()
        try:
            for _ in range(count):
                for column, (_, kind) in zip(columns, props, strict=True):
                    if isinstance(kind, tuple):
                        size = int(self._scalar(kind[0]))
                        column.append(np.array([self._scalar(kind[1]) for _ in range(size)]))
                    else:
                        column.append(self._scalar(kind))
        except (IndexError, struct.error, ValueError) as exc:
            raise self._short() from exc
        return columns

    def _scalar(self, kind: str) -> float:
        if self.ascii:
            token = self.tokens[self.pos]
            self.pos += 1
            return float(token) if kind[0] == "f" else int(token)
        value = struct.unpack_from(self.endian + np.dtype(kind).char, self.data, self.pos)[0]
        self.pos += np.dtype(kind).itemsize
        return value


def _write(comments: list[str], vertex: np.ndarray, props: list[Property], columns: list[list], index: int,
           sizes: np.ndarray, name: str) -> bytes:  # fmt: skip
    """The binary PLY of the vertices and the fan triangles, face properties repeated per triangle."""
    polygon = np.repeat(np.arange(len(sizes)), np.maximum(sizes - 2, 0))  # [T] the polygon of each triangle
    first = np.cumsum(sizes) - sizes  # [P] where each polygon's corners start in the flattened lists
    step = np.arange(len(polygon)) - np.repeat(np.cumsum(np.maximum(sizes - 2, 0)) - np.maximum(sizes - 2, 0), np.maximum(sizes - 2, 0))
    corners = first[polygon][:, None] + np.stack([np.zeros_like(step), step + 1, step + 2], axis=1)  # [T, 3]
    fields: list[tuple] = []
    header: list[str] = []
    values: dict[str, np.ndarray] = {}
    for i, (prop, kind) in enumerate(props):
        if isinstance(kind, tuple):
            lengths = np.array([len(c) for c in columns[i]], dtype=np.int64)
            width = 1 if i == index else (int(lengths[0] // sizes[0]) if sizes[0] else 0)
            if width == 0 or not (lengths == width * sizes).all():
                continue  # a list that is not one entry per corner: dropped (trimesh reads none but texcoord)
            flat = np.concatenate([np.asarray(c) for c in columns[i]] or [np.zeros(0)]).reshape(-1, width)
            table = flat[corners].reshape(len(polygon), 3 * width)
            if i == index and table.size and (table.min() < 0 or table.max() >= len(vertex)):
                raise InputError(f"{name} has faces that point at vertices that do not exist.", hint=_REPAIR)
            item = "i4" if i == index else kind[1]
            fields += [(f"{i}_count", "u1"), (f"{i}", "<" + item, (3 * width,))]
            values[f"{i}_count"], values[f"{i}"] = np.full(len(polygon), 3 * width), table
            header.append(f"property list uchar {_PLY_NAMES[item]} {prop}")
        else:
            fields.append((f"{i}", "<" + kind))
            values[f"{i}"] = np.asarray(columns[i])[polygon]
            header.append(f"property {_PLY_NAMES[kind]} {prop}")
    faces = np.zeros(len(polygon), dtype=np.dtype(fields))
    for field, column in values.items():
        faces[field] = column
    lines = ["ply", "format binary_little_endian 1.0", *comments, f"element vertex {len(vertex)}"]
    lines += [f"property {_PLY_NAMES[vertex.dtype[n].str[1:]]} {n}" for n in vertex.dtype.names or ()]
    lines += [f"element face {len(polygon)}", *header, "end_header"]
    return ("\n".join(lines) + "\n").encode("ascii") + np.ascontiguousarray(vertex).tobytes() + faces.tobytes()
