"""PLY meshes whose faces are polygons, rewritten as triangles for trimesh.

Why: trimesh 5 reads a binary PLY only when every face list has the length of the first (it refuses the file
as "PLY is unexpected length!" otherwise), which Blender's default PLY export of a mesh with quads and
triangles (Suzanne) is not; and when polygon faces carry colours, trimesh triangulates the faces but keeps
one colour per polygon. a3d reads such a file's elements itself, turns each
polygon into a triangle fan (triangle k of polygon p₀ … p_{n−1} is p₀, p_{k+1}, p_{k+2}, as trimesh splits
quads), repeats each face property on the polygon's triangles (per-corner lists such as MeshLab's
`texcoord` follow their corners), and hands trimesh an equivalent binary PLY of triangles. Other elements
(edges, materials) are dropped: a3d reads only the surface.

Face lists are read in runs of rows with the same list lengths, each run as one NumPy view, so a file of
triangles only (the common case, handed to trimesh as it is) or of quads only costs a few array operations,
and memory stays proportional to the file.

Examples:
    >>> data = triangulated_ply(Path("suzanne.ply"))  # bytes, or None when trimesh reads the file as it is
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.gaussians.ply import PlyElement, read_ply_header

_PLY_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
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
        return self._rows(count, props)

    def _rows(self, count: int, props: list[Property]) -> list[Column]:
        """An element with list properties, read in runs of rows whose lists have the same lengths: each run
        is one structured view of the data (ASCII tokens are first made float64 items, one per token)."""
        if self.ascii:  # the tokens from here on as float64 items, byte offsets counted in them
            buffer: memoryview | np.ndarray = self._ascii_items()
            kinds: list[Property] = [(n, ("f8", "f8") if isinstance(t, tuple) else "f8") for n, t in props]
            endian, pos, size = "<", 0, buffer.nbytes
        else:
            buffer, kinds, endian, pos, size = self.data, props, self.endian, self.pos, len(self.data)
        if count > size:  # every row takes a token or a byte at least
            raise self._short()
        runs: list[np.ndarray] = []
        window, left = 64, count
        while left:
            lengths = self._row_lengths(buffer, size, pos, kinds, endian)
            dtype = _row_dtype(kinds, lengths, endian)
            fits = min(left, window, (size - pos) // dtype.itemsize)
            if fits == 0:
                raise self._short()
            rows = np.frombuffer(buffer, dtype=dtype, count=fits, offset=pos)
            same = np.ones(fits, dtype=bool)
            for (name, kind), length in zip(kinds, lengths, strict=True):
                if isinstance(kind, tuple):
                    same &= rows[f"{name}#count"] == length
            taken = fits if same.all() else int(np.argmin(same))
            runs.append(rows[:taken])
            pos += taken * dtype.itemsize
            left -= taken
            window = window * 2 if taken == fits else 64
        self.pos = self.pos + pos // 8 if self.ascii else pos
        return [_column(runs, name, kind) for name, kind in props]

    def _ascii_items(self) -> np.ndarray:
        """The tokens from the current one on, as float64."""
        try:
            return np.array(self.tokens[self.pos :], dtype=np.float64)
        except ValueError as exc:
            raise InputError(f"{self.name}: its PLY data holds a word that is not a number.", hint=_REPAIR) from exc

    def _row_lengths(self, buffer: memoryview | np.ndarray, size: int, pos: int, kinds: list[Property], endian: str) -> list[int]:
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
        return lengths


def _row_dtype(kinds: list[Property], lengths: list[int], endian: str) -> np.dtype:
    """The structured dtype of one row whose lists have `lengths`."""
    fields: list[tuple] = []
    for (name, kind), length in zip(kinds, lengths, strict=True):
        if isinstance(kind, tuple):
            fields += [(f"{name}#count", endian + kind[0]), (name, endian + kind[1], (length,))]
        else:
            fields.append((name, endian + kind))
    return np.dtype(fields)


def _column(runs: list[np.ndarray], name: str, kind: str | tuple[str, str]) -> Column:
    """One property of all rows, gathered from the runs in native byte order (see `Column`)."""
    if not isinstance(kind, tuple):
        return np.concatenate([r[name].astype(r[name].dtype.newbyteorder("=")) for r in runs])
    lengths = np.concatenate([np.full(len(r), r.dtype[name].shape[0] if r.dtype[name].shape else 1) for r in runs])
    items = np.concatenate([r[name].reshape(-1).astype(r.dtype[name].base.newbyteorder("=")) for r in runs])
    return lengths.astype(np.int64), items


def _write(comments: list[str], vertex: np.ndarray, props: list[Property], columns: list[Column], index: int,
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
            lengths, items = columns[i]  # type: ignore[misc]
            width = 1 if i == index else (int(lengths[0] // sizes[0]) if sizes[0] else 0)
            if width == 0 or not (lengths == width * sizes).all():
                continue  # a list that is not one entry per corner: dropped (trimesh reads none but texcoord)
            flat = items.reshape(-1, width)
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
