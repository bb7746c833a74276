"""PLY meshes whose faces are polygons, rewritten as triangles for trimesh.

Why: trimesh 5 reads a binary PLY only when every face list has the length of the first (it refuses the file
as "PLY is unexpected length!" otherwise), which Blender's default PLY export of a mesh with quads and
triangles (Suzanne) is not; and when polygon faces carry colours, trimesh triangulates the faces but keeps
one colour per polygon. a3d reads such a file's elements itself, turns each
polygon into a triangle fan (triangle k of polygon p₀ … p_{n−1} is p₀, p_{k+1}, p_{k+2}, as trimesh splits
quads), repeats each face property on the polygon's triangles (per-corner lists such as MeshLab's
`texcoord` follow their corners), and hands trimesh an equivalent binary PLY of triangles. Other elements
(edges, materials) are dropped: a3d reads only the surface.

A face element whose rows all have the first row's list lengths (triangles only, the common case handed to
trimesh as it is, or quads only) is read as one NumPy view. Otherwise one pass reads only each row's list
lengths, and the rows are then gathered in groups of equal lengths, so time and memory stay proportional to
the file however the lengths alternate.

Examples:
    >>> data = triangulated_ply(Path("suzanne.ply"))  # bytes, or None when trimesh reads the file as it is
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.gaussians.ply import PlyElement, read_ply_header

_PLY_NAMES = {
    "i1": "char",
    "u1": "uchar",
    "i2": "short",
    "u2": "ushort",
    "i4": "int",
    "u4": "uint",
    "f4": "float",
    "f8": "double",
}
_INDEX_NAMES = ("vertex_indices", "vertex_index")
_REPAIR = "The PLY file is damaged or cut short; export it again."

# a property: (name, scalar type) or (name, (count type, item type)) for a list
Property = tuple[str, "str | tuple[str, str]"]
# a list property's values: (length of each row's list [P], the lists' items one after another); a scalar: [P]
Column = tuple[np.ndarray, np.ndarray] | np.ndarray


def triangulated_ply(path: Path) -> bytes | None:
    """An equivalent binary little-endian PLY of triangles, or None when trimesh reads `path` correctly as it
    is (no face element, every face a triangle, or a layout this rewrite does not cover).

    Raises:
        InputError: the header is broken, the data is cut short or a face names a vertex that does not exist.
    """
    from a3d_cli.io.regular import read_regular

    header = read_ply_header(path)
    data = read_regular(path)
    fmt, comments, start = header.format, list(header.comments), header.data_offset
    elements = [(e.name, e.count, _kinds(e)) for e in header.elements]
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
    columns: list[Column] = tables["face"]  # type: ignore[assignment]
    sizes = columns[index][0]  # type: ignore[index]  # [P] corners of each face
    if (sizes == 3).all():
        return None  # trimesh reads triangles correctly, whatever the format
    return _write(comments, vertex, face_props, columns, index, sizes, path.name)


def _kinds(element: PlyElement) -> list[Property]:
    """An element's properties as `Property` pairs: scalars by their type, lists by (count type, item type)."""
    lists = {name: (count, item) for name, count, item in element.lists}
    return [(name, kind if kind is not None else lists[name]) for name, kind in element.properties]


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

    def element(self, count: int, props: list[Property]) -> np.ndarray | list[Column]:
        """A fixed-size element as a structured array; one with lists as one `Column` per property."""
        if not any(isinstance(t, tuple) for _, t in props):
            dtype = np.dtype([(n, self.endian + t) for n, t in props])  # type: ignore[operator]
            if self.ascii:
                width = len(props)
                if self.pos + count * width > len(self.tokens):
                    raise self._short()
                values = np.array(self.tokens[self.pos : self.pos + count * width], dtype=np.float64).reshape(
                    count, width
                )
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
        return self._rows(count, props)

    def _rows(self, count: int, props: list[Property]) -> list[Column]:
        """An element with list properties. Where every row's lists have the first row's lengths (a file of
        triangles, or of quads) the element is one structured view of the data; otherwise one pass finds where
        each row starts and the rows are gathered in groups of equal list lengths (ASCII tokens are first made
        float64 items, one per token)."""
        if self.ascii:  # the tokens from here on as float64 items, byte offsets counted in them
            buffer: memoryview | np.ndarray = self._ascii_items()
            kinds: list[Property] = [(n, ("f8", "f8") if isinstance(t, tuple) else "f8") for n, t in props]
            endian, pos, size = "<", 0, buffer.nbytes
        else:
            buffer, kinds, endian, pos, size = self.data, props, self.endian, self.pos, len(self.data)
        if count == 0:
            return [_empty_column(kind) for _, kind in kinds]
        if count > size:  # every row takes a token or a byte at least
            raise self._short()
        first = self._row_lengths(buffer, size, pos, kinds, endian)
        dtype = _row_dtype(kinds, first, endian)
        if pos + count * dtype.itemsize <= size:
            rows = np.frombuffer(buffer, dtype=dtype, count=count, offset=pos)
            lists = [(n, length) for (n, k), length in zip(kinds, first, strict=True) if isinstance(k, tuple)]
            if all((rows[f"{n}#count"] == length).all() for n, length in lists):
                self._moved(pos + count * dtype.itemsize)
                return [_uniform_column(rows, n, k) for n, k in kinds]
        starts, lengths, end = self._scan(buffer, size, pos, kinds, endian, count)
        self._moved(end)
        return _gather(np.frombuffer(buffer, dtype=np.uint8), starts, lengths, kinds, endian)

    def _moved(self, pos: int) -> None:
        """The data position after an element that ended at byte `pos` of the buffer `_rows` read."""
        self.pos = self.pos + pos // 8 if self.ascii else pos

    def _ascii_items(self) -> np.ndarray:
        """The tokens from the current one on, as float64."""
        try:
            return np.array(self.tokens[self.pos :], dtype=np.float64)
        except ValueError as exc:
            raise InputError(f"{self.name}: its PLY data holds a word that is not a number.", hint=_REPAIR) from exc

    def _row_lengths(
        self, buffer: memoryview | np.ndarray, size: int, pos: int, kinds: list[Property], endian: str
    ) -> list[int]:
        """The length of each list property in the row that starts at byte `pos` (0 for scalars)."""
        lengths = []
        for _, kind in kinds:
            item = np.dtype(endian + (kind[0] if isinstance(kind, tuple) else kind))
            if pos + item.itemsize > size:
                raise self._short()
            if not isinstance(kind, tuple):
                lengths.append(0)
                pos += item.itemsize
                continue
            n = np.frombuffer(buffer, dtype=item, count=1, offset=pos)[0]
            if not np.isfinite(n) or n < 0 or n != int(n):
                raise InputError(f"{self.name}: a PLY list has a length of {n}.", hint=_REPAIR)
            lengths.append(int(n))
            pos += item.itemsize + int(n) * np.dtype(kind[1]).itemsize
            if pos > size:  # before a dtype of that size is made
                raise self._short()
        return lengths

    def _scan(self, buffer: memoryview | np.ndarray, size: int, pos: int, kinds: list[Property], endian: str,
              count: int) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
        """Where each of `count` rows starts and its lists' lengths: ([count] byte offsets, [count, P] lengths
        with 0 for scalars, the byte after the last row). One pass over the rows that reads only the counts."""
        steps: list[tuple[struct.Struct | None, int, int]] = []  # per property: count reader, fixed bytes, item bytes
        for _, kind in kinds:
            if isinstance(kind, tuple):
                counter = np.dtype(kind[0])
                steps.append((struct.Struct(endian + counter.char), counter.itemsize, np.dtype(kind[1]).itemsize))
            else:
                steps.append((None, np.dtype(kind).itemsize, 0))
        starts = [0] * count
        lengths = [[0] * len(kinds) for _ in range(count)]
        try:
            for r in range(count):
                starts[r] = pos
                row = lengths[r]
                for j, (reader, fixed, item) in enumerate(steps):
                    if reader is None:
                        pos += fixed
                        continue
                    n = reader.unpack_from(buffer, pos)[0]
                    whole = int(n)
                    if whole != n or whole < 0:
                        raise InputError(f"{self.name}: a PLY list has a length of {n}.", hint=_REPAIR)
                    pos += fixed + whole * item
                    row[j] = whole
                if pos > size:
                    raise self._short()
        except (struct.error, ValueError, OverflowError) as exc:  # past the end, or a NaN length
            raise self._short() from exc
        return np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64).reshape(count, len(kinds)), pos


def _empty_column(kind: str | tuple[str, str]) -> Column:
    """A property of an element without rows."""
    if isinstance(kind, tuple):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=kind[1])
    return np.zeros(0, dtype=kind)


def _row_dtype(kinds: list[Property], lengths: list[int], endian: str) -> np.dtype:
    """The structured dtype of one row whose lists have `lengths`."""
    fields: list[tuple] = []
    for (name, kind), length in zip(kinds, lengths, strict=True):
        if isinstance(kind, tuple):
            fields += [(f"{name}#count", endian + kind[0]), (name, endian + kind[1], (length,))]
        else:
            fields.append((name, endian + kind))
    return np.dtype(fields)


def _uniform_column(rows: np.ndarray, name: str, kind: str | tuple[str, str]) -> Column:
    """One property of rows that all have the same list lengths, in native byte order (see `Column`)."""
    values = rows[name]
    if not isinstance(kind, tuple):
        return values.astype(values.dtype.newbyteorder("="))
    items = values.reshape(-1).astype(values.dtype.base.newbyteorder("="))
    return np.full(len(rows), values.shape[1], dtype=np.int64), items


_GATHER_ROWS = 1 << 16  # rows gathered at a time: bounds the [rows, row bytes] index array


def _gather(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, kinds: list[Property], endian: str
) -> list[Column]:
    """Every property of rows that start at byte `starts` of `data` (uint8) with list lengths `lengths`
    [R, P], gathered group by group of rows with the same lengths and put back in row order."""
    columns: list = []
    offsets: list[np.ndarray | None] = []  # per list property: where each row's items start in its flat array
    for j, (_, kind) in enumerate(kinds):
        if isinstance(kind, tuple):
            n = lengths[:, j]
            columns.append((n.copy(), np.zeros(int(n.sum()), dtype=np.dtype(kind[1]).newbyteorder("="))))
            offsets.append(np.cumsum(n) - n)
        else:
            columns.append(np.zeros(len(starts), dtype=np.dtype(kind).newbyteorder("=")))
            offsets.append(None)
    combos, group = np.unique(lengths, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(combos) + 1))
    for g, combo in enumerate(combos):
        dtype = _row_dtype(kinds, [int(c) for c in combo], endian)
        members = order[bounds[g] : bounds[g + 1]]
        for c in range(0, len(members), _GATHER_ROWS):
            rows_at = members[c : c + _GATHER_ROWS]
            records = data[starts[rows_at][:, None] + np.arange(dtype.itemsize)].view(dtype).reshape(-1)
            for j, (name, kind) in enumerate(kinds):
                if not isinstance(kind, tuple):
                    columns[j][rows_at] = records[name]
                elif combo[j]:
                    at = offsets[j][rows_at][:, None] + np.arange(combo[j])  # type: ignore[index]
                    columns[j][1][at] = records[name].reshape(len(rows_at), -1)
    return columns


def _write(comments: list[str], vertex: np.ndarray, props: list[Property], columns: list[Column], index: int,
           sizes: np.ndarray, name: str) -> bytes:  # fmt: skip
    """The binary PLY of the vertices and the fan triangles, face properties repeated per triangle."""
    polygon = np.repeat(np.arange(len(sizes)), np.maximum(sizes - 2, 0))  # [T] the polygon of each triangle
    first = np.cumsum(sizes) - sizes  # [P] where each polygon's corners start in the flattened lists
    step = np.arange(len(polygon)) - np.repeat(
        np.cumsum(np.maximum(sizes - 2, 0)) - np.maximum(sizes - 2, 0), np.maximum(sizes - 2, 0)
    )
    corners = first[polygon][:, None] + np.stack([np.zeros_like(step), step + 1, step + 2], axis=1)  # [T, 3]
    fields: list[tuple] = []
    header: list[str] = []
    values: dict[str, np.ndarray] = {}
    for i, (prop, kind) in enumerate(props):
        if isinstance(kind, tuple):
            lengths, items = columns[i]  # type: ignore[misc]
            width = 1 if i == index else (int(lengths[0] // sizes[0]) if sizes[0] else 0)
            if width == 0 or not (lengths == width * sizes).all():
                continue  # a list that is not one entry per corner: dropped (trimesh reads none but texcoord)
            flat = items.reshape(-1, width)
            table = flat[corners].reshape(len(polygon), 3 * width)
            if i == index and table.dtype.kind == "f" and not (np.isfinite(table) & (table == np.round(table))).all():
                raise InputError(f"{name} has face indices that are not whole numbers.", hint=_REPAIR)
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
