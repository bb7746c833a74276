"""Read a glTF file's JSON and binary buffers, and its accessors as numpy arrays, as the glTF 2.0 spec defines them.

Why here: trimesh reads an accessor's raw components only. It ignores `normalized` (so quantized
positions, UVs and normals of `KHR_mesh_quantization` files come out as integers 0..65535), ignores
`sparse` substitutions, and fills accessors without a bufferView with zeros whatever their declared
count. This module is a3d's one reader of accessor data: strides, normalized integers, sparse accessors
and bounded sizes, with every inconsistency an `InputError`.

Examples:
    >>> doc = read_document(Path("examples/assets/fox.glb"), resolver)  # doctest: +SKIP
    >>> positions = read_accessor(doc, doc.json["meshes"][0]["primitives"][0]["attributes"]["POSITION"])
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.io.regular import read_regular
from a3d_cli.mesh.references import read_referenced

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A  # b"JSON"
CHUNK_BIN = 0x004E4942  # b"BIN\0"
COMPONENT_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
NORMALIZED_DIVISORS = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}  # glTF 2.0 §3.11
MAX_ACCESSOR_COUNT = 1 << 26  # elements of one accessor (67M): decoded data is bounded before it is allocated
MAX_SCENE_VERTICES = 1 << 25  # vertices of all primitives together (33.5M), once decoded
MAX_SCENE_NODES = 1 << 17  # nodes placed in the scene, GPU instances included (131k)
MAX_DECODED_VALUES = 1 << 29  # components decoded from one file, all accessors together (2 GiB as float32)
_REEXPORT = "The file is damaged or was written by a faulty exporter; export it again."
Buffer = bytes | bytearray | memoryview
_BUFFER_HINT = "Keep the .bin files next to the .gltf file, as the exporter wrote them."


@dataclass
class GltfDocument:
    """A glTF file's JSON and the bytes of its buffers (the GLB's BIN chunk, data URIs, files beside it).

    Attributes:
        json: the glTF JSON object.
        buffers: bytes of each entry of `json["buffers"]` (b"" for a buffer with no data, such as the
            `EXT_meshopt_compression` fallback buffer, which has none by design).
        name: the file's name, for messages.
        decoded: components decoded so far (`read_accessor`), bounded by MAX_DECODED_VALUES: many
            accessors, each within MAX_ACCESSOR_COUNT, must not add up to an allocation a tiny file asks for.
    """

    json: dict[str, Any]
    buffers: list[bytes | memoryview]
    name: str
    decoded: int = 0
    _views: dict[int, memoryview] = field(default_factory=dict, repr=False)

    def charge(self, index: int, values: int, use: str | None = None, hint: str | None = None) -> None:
        """Count `values` components about to be decoded for accessor `index`; refuse past MAX_DECODED_VALUES.
        `use` says what the values are for when they are working memory derived from the accessor rather than its
        own data (the message then names it, not the accessors' declared sizes), with `hint` the user's remedy."""
        self.decoded += values
        if self.decoded > MAX_DECODED_VALUES:
            what = use or f"its accessors (up to accessor {index}) declare"
            raise InputError(
                f"{self.name}: {what} more than {MAX_DECODED_VALUES:,} values, more than a3d decodes from one file.",
                hint=hint
                or "Simplify or split the mesh before giving it to a3d (a3d keeps at most --max-vertices vertices anyway).",
            )

    def view(self, index: int) -> memoryview:
        """Bytes of bufferView `index` (checked against its buffer's size)."""
        if index not in self._views:
            views = self.json.get("bufferViews", [])
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(views):
                raise InputError(f"{self.name} refers to bufferView {index!r}, which does not exist.", hint=_REEXPORT)
            v = views[index]
            buf, start, length = v.get("buffer", -1), int(v.get("byteOffset", 0)), int(v.get("byteLength", -1))
            if not isinstance(buf, int) or not 0 <= buf < len(self.buffers):
                raise InputError(f"{self.name}: bufferView {index} names buffer {buf!r}, which does not exist.", hint=_REEXPORT)
            meshopt = [e for e in (v.get("extensions") or {}) if e in ("EXT_meshopt_compression", "KHR_meshopt_compression")]
            if meshopt and not self.buffers[buf]:  # compressed, and its fallback buffer holds no data
                from a3d_cli.mesh.gltf_extensions import refuse

                refuse(self.name, meshopt[0], "uses")
            if start < 0 or length < 0 or start + length > len(self.buffers[buf]):
                raise InputError(
                    f"{self.name}: bufferView {index} lies outside its buffer (bytes {start}..{start + length} "
                    f"of {len(self.buffers[buf])}).",
                    hint=_REEXPORT,
                )
            self._views[index] = memoryview(self.buffers[buf])[start : start + length]
        return self._views[index]


def pack_glb(doc: dict[str, Any], binary: Buffer | Sequence[Buffer]) -> bytes:
    """A GLB container of `doc` and its buffer (bytes, or its pieces in order): header, the JSON chunk (padded with
    spaces) and, when there is binary data, the BIN chunk (padded with zeros), as glTF 2.0 §4.4 lays them out.
    Joined in one copy: the buffer may hold a texture atlas of a hundred megabytes or more."""
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    pieces = [binary] if isinstance(binary, (bytes, bytearray, memoryview)) else list(binary)
    length = sum(len(piece) for piece in pieces)
    pad = b"\0" * (-length % 4)
    parts = [struct.pack("<II", len(text), CHUNK_JSON), text]
    if length:
        parts += [struct.pack("<II", length + len(pad), CHUNK_BIN), *pieces, pad]
    total = 12 + sum(len(part) for part in parts)
    return b"".join([struct.pack("<4sII", GLB_MAGIC, 2, total), *parts])


def parse_gltf(data: bytes, name: str) -> tuple[dict[str, Any], memoryview | None]:
    """The JSON object of a .glb or .gltf file's bytes, and the GLB's BIN chunk (None for .gltf or when
    the GLB has none; a view into `data`, not a copy).

    Raises:
        InputError: not JSON or not a glTF 2.0 binary, chunks that do not fit the file, JSON nested past
            the parser, or JSON that is not an object.
    """
    view, binary = memoryview(data), None
    try:
        if bytes(view[:4]) != GLB_MAGIC:
            kind = ".gltf"
            doc = json.loads(bytes(view).decode("utf-8"))
        else:
            kind = ".glb"
            magic, version, _length = struct.unpack_from("<4sII", view, 0)
            json_length, chunk = struct.unpack_from("<II", view, 12)
            if version != 2 or chunk != CHUNK_JSON or 20 + json_length > len(view):
                raise ValueError("not a glTF 2.0 binary")
            doc = json.loads(bytes(view[20 : 20 + json_length]).decode("utf-8"))
            offset = 20 + json_length
            while offset + 8 <= len(view):
                length, chunk = struct.unpack_from("<II", view, offset)
                if offset + 8 + length > len(view):
                    raise ValueError("a chunk runs past the end of the file")
                if chunk == CHUNK_BIN and binary is None:
                    binary = view[offset + 8 : offset + 8 + length]
                offset += 8 + length + (-length % 4)
    except RecursionError:  # JSON nested deeper than Python's parser goes: no glTF is
        raise InputError(f"Cannot read {name}: its JSON is nested too deeply.", hint="Check the file opens in a 3D viewer.") from None
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {name} as a {kind} file ({exc}).", hint="Check the file opens in a 3D viewer.") from exc
    if not isinstance(doc, dict):
        raise InputError(f"Cannot read {name}: its JSON is not a glTF object.", hint="Check the file opens in a 3D viewer.")
    return doc, binary


def read_document(path: Path, resolver: Any) -> GltfDocument:
    """Read a .glb or .gltf file and every buffer it holds or names.

    Args:
        path: the asset.
        resolver: fetches a buffer URI's bytes (`resolver.get(name)`); a3d's resolver is rooted at the
            asset's folder (`a3d_cli.mesh.load`), so a URI leading out is refused there too.

    Raises:
        InputError: unreadable JSON, a buffer that cannot be read or is shorter than declared.
    """
    path = Path(path)
    doc, binary = parse_gltf(read_regular(path), path.name)  # never blocks on a pipe swapped in after the check
    buffers: list[bytes | memoryview] = []
    for i, buf in enumerate(doc.get("buffers") or []):
        if not isinstance(buf, dict):
            raise InputError(f"{path.name}: buffer {i} is not a JSON object.", hint=_REEXPORT)
        uri = buf.get("uri")
        if uri is None:  # the GLB's BIN chunk (first buffer only), or a buffer with no data by design
            blob = binary if (i == 0 and binary is not None) else b""
        else:
            blob = uri_bytes(resolver, str(uri), f"buffer {i}", path.name, _BUFFER_HINT)
            if blob is None:
                raise InputError(f"{path.name} names the buffer file {uri!r}, which does not exist.", hint=_BUFFER_HINT)
        declared = buf.get("byteLength", 0)
        if len(blob) and (not isinstance(declared, int) or len(blob) < declared):
            raise InputError(
                f"{path.name}: buffer {i} holds {len(blob)} bytes but declares {declared}.",
                hint="A .bin file beside the asset is missing or truncated; copy the complete asset folder.",
            )
        buffers.append(blob)
    return GltfDocument(doc, buffers, path.name)


def uri_bytes(resolver: Any, uri: str, label: str, asset: str, hint: str) -> bytes | None:
    """The bytes a glTF buffer's or image's `uri` stands for: a base64 `data:` URI decoded, else the file it
    names, read through the rooted resolver (percent-decoded first, then as written, as URIs are).

    Args:
        resolver: a3d's rooted resolver (`resolver.get(name)`).
        uri: the URI as written.
        label: what the URI is, for messages ("buffer 0", "texture image 'wood.png'").
        asset: the asset's file name, for messages.
        hint: the hint when the named file exists but cannot be read.

    Returns:
        The bytes, or None when the URI names a file that does not exist (the caller judges that).

    Raises:
        InputError: a damaged `data:` URI, or a named file that cannot be read (`read_referenced`).
    """
    if uri.startswith("data:"):
        try:
            return base64.b64decode(uri.split(",", 1)[1])
        except (IndexError, ValueError) as exc:
            raise InputError(f"{asset}: {label} has a damaged data: URI.", hint=_REEXPORT) from exc
    return read_referenced(resolver, [unquote(uri), uri], label, asset, hint)


def accessor_count(doc: GltfDocument, index: int) -> int:
    """The declared element count of accessor `index` (checked: a non-negative int within MAX_ACCESSOR_COUNT)."""
    acc = _accessor(doc, index)
    count = acc.get("count")
    if not isinstance(count, int) or count < 0:
        raise InputError(f"{doc.name}: accessor {index} has an invalid count {count!r}.", hint=_REEXPORT)
    if count > MAX_ACCESSOR_COUNT:
        raise InputError(
            f"{doc.name}: accessor {index} declares {count:,} elements, more than a3d decodes "
            f"({MAX_ACCESSOR_COUNT:,}).",
            hint="Simplify or split the mesh before giving it to a3d (a3d keeps at most --max-vertices vertices anyway).",
        )
    return count


def read_accessor(doc: GltfDocument, index: int, raw: np.ndarray | None = None) -> np.ndarray:
    """Accessor `index` as a [count, width] array: float32 for float and normalized integer components
    (normalized as glTF 2.0 defines it, e.g. int16 c → max(c / 32767, −1)), the component's integer type
    otherwise. Sparse substitutions are applied.

    Args:
        doc: the document.
        index: the accessor's index.
        raw: the accessor's components when they come from elsewhere than its bufferView (a
            `KHR_draco_mesh_compression` decode), [count, width] or [count × width].

    Raises:
        InputError: missing fields, unknown types, data outside its bufferView, bad sparse indices,
            a count above MAX_ACCESSOR_COUNT, more than MAX_DECODED_VALUES components read from `doc` in all.
    """
    acc = _accessor(doc, index)
    count = accessor_count(doc, index)
    ctype, atype = acc.get("componentType"), acc.get("type")
    if ctype not in COMPONENT_DTYPES or atype not in TYPE_WIDTHS:
        raise InputError(f"{doc.name}: accessor {index} has an unknown type {atype!r}/{ctype!r}.", hint=_REEXPORT)
    dtype, width = np.dtype(COMPONENT_DTYPES[ctype]), TYPE_WIDTHS[atype]
    doc.charge(index, count * width)  # before anything of this size is allocated
    if raw is not None:
        values = np.asarray(raw)
        if values.size != count * width:
            raise InputError(
                f"{doc.name}: accessor {index} declares {count} elements but its compressed data decodes to "
                f"{values.size // max(width, 1)}.",
                hint=_REEXPORT,
            )
        values = values.reshape(count, width)
    elif "bufferView" in acc:
        values = _strided(doc, acc.get("bufferView"), int(acc.get("byteOffset", 0)), count, width, dtype, index)
    else:  # no data: zeros, which sparse substitutions may fill
        values = np.zeros((count, width), dtype=dtype)
    if "sparse" in acc:
        values = _apply_sparse(doc, acc["sparse"], values.copy(), index, dtype)
    if acc.get("normalized") and values.dtype.kind in "iu":
        divisor = NORMALIZED_DIVISORS.get(ctype)
        if divisor is None:
            raise InputError(f"{doc.name}: accessor {index} is normalized but of type {ctype}.", hint=_REEXPORT)
        return np.maximum(values.astype(np.float32) / np.float32(divisor), np.float32(-1.0))
    return values.astype(np.float32) if values.dtype.kind == "f" else values


def _accessor(doc: GltfDocument, index: int) -> dict[str, Any]:
    accessors = doc.json.get("accessors") or []
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(accessors) or not isinstance(accessors[index], dict):
        raise InputError(f"{doc.name} refers to accessor {index!r}, which does not exist.", hint=_REEXPORT)
    return accessors[index]


def _strided(doc: GltfDocument, view_index: int, offset: int, count: int, width: int, dtype: np.dtype, index: int) -> np.ndarray:
    """[count, width] elements from a bufferView, honouring its byteStride (interleaved vertex data)."""
    data = doc.view(view_index)
    element = width * dtype.itemsize
    stride = int(doc.json["bufferViews"][view_index].get("byteStride") or element)
    if count == 0:
        return np.zeros((0, width), dtype=dtype)
    end = offset + (count - 1) * stride + element
    if offset < 0 or stride < element or end > len(data):
        raise InputError(
            f"{doc.name}: accessor {index} reads bytes {offset}..{end} of a bufferView of {len(data)} bytes.",
            hint=_REEXPORT,
        )
    rows = np.lib.stride_tricks.as_strided(
        np.frombuffer(data, dtype=np.uint8, count=end - offset, offset=offset), shape=(count, element), strides=(stride, 1)
    )
    return np.ascontiguousarray(rows).view(dtype).reshape(count, width)


def _apply_sparse(doc: GltfDocument, sparse: Any, values: np.ndarray, index: int, dtype: np.dtype) -> np.ndarray:
    """Substitute a sparse accessor's values at its indices (glTF 2.0 §3.6.2.3)."""
    try:
        n = int(sparse["count"])
        ind, val = sparse["indices"], sparse["values"]
        ind_dtype = np.dtype({5121: "<u1", 5123: "<u2", 5125: "<u4"}[ind["componentType"]])
        if not 1 <= n <= len(values):
            raise ValueError(f"count {n}")
        where = _strided(doc, ind["bufferView"], int(ind.get("byteOffset", 0)), n, 1, ind_dtype, index)[:, 0]
        new = _strided(doc, val["bufferView"], int(val.get("byteOffset", 0)), n, values.shape[1], dtype, index)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{doc.name}: accessor {index} has a malformed sparse part ({exc}).", hint=_REEXPORT) from exc
    if where.size and int(where.max()) >= len(values):
        raise InputError(f"{doc.name}: accessor {index} has sparse indices past its count.", hint=_REEXPORT)
    values[where.astype(np.int64)] = new
    return values
