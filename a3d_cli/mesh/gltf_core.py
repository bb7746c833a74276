"""Rewrite a glTF file into the plain core glTF that trimesh reads correctly, decoding what it would not.

Why: trimesh reads core glTF's scenes, materials and images well, but takes accessor components as raw
numbers and skips several extensions (`a3d_cli.mesh.gltf_accessors`, `a3d_cli.mesh.gltf_extensions`).
Rather than patch its results afterwards, a3d hands it an equivalent file in which every primitive's
POSITION, NORMAL, COLOR_0, TEXCOORD_0 and indices are plain float32/uint32 data:

- Draco-compressed primitives (`KHR_draco_mesh_compression`) are decoded with DracoPy;
- normalized and integer attributes (`KHR_mesh_quantization`) are dequantized, sparse accessors applied;
- the texture coordinates the base-colour texture uses (`texCoord`, possibly TEXCOORD_1) become TEXCOORD_0,
  with its `KHR_texture_transform` (offset, rotation, scale) applied;
- each texture points at an image a3d can decode (`EXT_texture_webp`, `KHR_texture_webp`,
  `EXT_texture_avif` sources, else the core source); a base-colour texture with none is refused;
- `EXT_mesh_gpu_instancing` nodes get one child node per instance.

Morph targets, skins and animations (a3d reads the rest pose) and attributes trimesh does not use are
dropped. Images stay as they are (their URIs are resolved by the same rooted resolver).

Examples:
    >>> glb = core_glb(Path("draco.glb"), resolver)  # bytes of an equivalent plain GLB  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.mesh.gltf_accessors import (
    CHUNK_BIN,
    CHUNK_JSON,
    MAX_SCENE_VERTICES,
    GltfDocument,
    accessor_count,
    read_accessor,
    read_document,
)
from a3d_cli.mesh.gltf_extensions import HONOURED, check_extensions, honoured_here, refuse

DRACO = "KHR_draco_mesh_compression"
TRANSFORM = "KHR_texture_transform"
INSTANCING = "EXT_mesh_gpu_instancing"
SPEC_GLOSS = "KHR_materials_pbrSpecularGlossiness"
IMAGE_SOURCES = ("KHR_texture_webp", "EXT_texture_webp", "EXT_texture_avif")  # preferred over the core source
UNDECODABLE_MIME = ("image/ktx2",)
_FLOAT, _UINT32 = 5126, 5125
UV_SNAP = 1e-5  # texture coordinates this close to a whole number are that number (0.04 px of a 4096 texture)
WIDTHS = {"POSITION": (3,), "NORMAL": (3,), "COLOR_0": (3, 4), "TEXCOORD_0": (2,)}  # components glTF allows
_REEXPORT = "The file is damaged or was written by a faulty exporter; export it again."


def core_glb(path: Path, resolver: Any) -> bytes:
    """An equivalent GLB of core glTF only (plus extensions that change nothing a3d reads).

    Args:
        path: a .glb or .gltf file.
        resolver: fetches files the asset names (`resolver.get(name)`), rooted at its folder.

    Raises:
        InputError: an extension a3d cannot honour, undecodable data, sizes above the decode limits,
            malformed accessors or buffers.
    """
    try:
        doc = read_document(Path(path), resolver)
        check_extensions(doc.json, doc.name)
        return _Rewriter(doc).run()
    except InputError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:  # JSON of the wrong shape
        raise InputError(
            f"Cannot read {Path(path).name}: its glTF JSON is malformed ({type(exc).__name__}: {str(exc)[:120]}).",
            hint=_REEXPORT,
        ) from exc


class _Rewriter:
    """One rewrite: new binary chunk, bufferViews and accessors, built while walking the document."""

    def __init__(self, doc: GltfDocument) -> None:
        self.doc = doc
        self.out = copy.deepcopy(doc.json)
        self.blob = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []
        self.cache: dict[tuple, int] = {}

    def run(self) -> bytes:
        self._check_sizes()
        self._images()
        base_uv = self._materials()
        self._textures(base_uv)
        for mesh in self.out.get("meshes") or []:
            for prim in (mesh or {}).get("primitives") or []:
                self._primitive(prim, base_uv)
        self._instances()
        for key in ("skins", "animations"):
            self.out.pop(key, None)
        for key in ("extensionsUsed", "extensionsRequired"):
            if key in self.out:
                self.out[key] = [e for e in self.out[key] if e not in HONOURED or e == SPEC_GLOSS]
        self.out["buffers"] = [{"byteLength": len(self.blob)}]
        self.out["bufferViews"] = self.views
        self.out["accessors"] = self.accessors
        return _pack_glb(self.out, bytes(self.blob))

    # -- sizes -------------------------------------------------------------------------------------

    def _check_sizes(self) -> None:
        """Refuse before decoding anything when the declared vertex counts exceed MAX_SCENE_VERTICES."""
        meshes = self.out.get("meshes") or []
        per_mesh = []
        for mesh in meshes:
            total = 0
            for prim in (mesh or {}).get("primitives") or []:
                pos = (prim.get("attributes") or {}).get("POSITION")
                total += accessor_count(self.doc, pos) if pos is not None else 0
            per_mesh.append(total)
        total = sum(per_mesh)
        for node in self.out.get("nodes") or []:
            inst = ((node or {}).get("extensions") or {}).get(INSTANCING)
            mesh = (node or {}).get("mesh")
            if inst and isinstance(mesh, int) and 0 <= mesh < len(per_mesh):
                first = next(iter((inst.get("attributes") or {}).values()), None)
                copies = accessor_count(self.doc, first) if first is not None else 1
                total += max(copies - 1, 0) * per_mesh[mesh]
        if total > MAX_SCENE_VERTICES:
            raise InputError(
                f"{self.doc.name} declares {total:,} vertices, more than a3d decodes ({MAX_SCENE_VERTICES:,}).",
                hint="Simplify the mesh before giving it to a3d (a3d keeps at most --max-vertices vertices anyway).",
            )

    # -- binary output -----------------------------------------------------------------------------

    def _append(self, data: bytes) -> int:
        """Append bytes (4-byte aligned) as a new bufferView; return its index."""
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.views.append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob += data
        return len(self.views) - 1

    def _accessor(self, values: np.ndarray, indices: bool = False) -> int:
        """A new tightly packed float32 (or uint32 index) accessor holding `values` [count, width]."""
        values = np.ascontiguousarray(values, dtype=np.uint32 if indices else np.float32)
        width = 1 if indices else values.shape[1]
        acc: dict[str, Any] = {
            "bufferView": self._append(values.tobytes()),
            "componentType": _UINT32 if indices else _FLOAT,
            "count": int(values.size // width),
            "type": {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}[width],
        }
        if not indices and width == 3 and len(values):
            acc["min"], acc["max"] = values.min(0).tolist(), values.max(0).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1

    # -- images, materials, textures -------------------------------------------------------------------

    def _images(self) -> None:
        """Copy images stored in bufferViews into the new binary chunk (URIs stay as they are)."""
        for image in self.out.get("images") or []:
            if isinstance(image, dict) and "bufferView" in image:
                image["bufferView"] = self._append(bytes(self.doc.view(image["bufferView"])))

    def _materials(self) -> dict[int, tuple[int, np.ndarray | None]]:
        """Per material: which UV set its base-colour texture uses and its texture transform (3×3, or None);
        the textureInfo is rewritten to use TEXCOORD_0 without a transform (the rewrite applies both)."""
        found: dict[int, tuple[int, np.ndarray | None]] = {}
        for m, mat in enumerate(self.out.get("materials") or []):
            info = _base_colour_info(mat)
            if info is None:
                continue
            ext = (info.get("extensions") or {}).pop(TRANSFORM, None)
            matrix = None
            try:
                tex_coord = int(info.get("texCoord", 0))
                if isinstance(ext, dict):
                    tex_coord = int(ext.get("texCoord", tex_coord))
                    matrix = _uv_transform(ext)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{self.doc.name}: material {m} has a malformed base-colour texture ({exc}).", hint=_REEXPORT) from exc
            found[m] = (tex_coord, matrix)
            info["texCoord"] = 0
            if not info.get("extensions"):
                info.pop("extensions", None)
        return found

    def _textures(self, base_uv: dict[int, tuple[int, np.ndarray | None]]) -> None:
        """Point every texture at an image a3d can decode; refuse a base-colour texture that has none."""
        base_textures = set()
        for m in base_uv:
            info = _base_colour_info(self.out["materials"][m])
            if info is not None and isinstance(info.get("index"), int):
                base_textures.add(info["index"])
        images = self.out.get("images") or []
        for t, tex in enumerate(self.out.get("textures") or []):
            if not isinstance(tex, dict):
                continue
            exts = tex.pop("extensions", None) or {}
            source = None
            for name in IMAGE_SOURCES:
                if isinstance(exts.get(name), dict) and "source" in exts[name] and honoured_here(name):
                    source = exts[name]["source"]
                    break
            if source is None:
                source = tex.get("source")
            if source is not None and _undecodable(images, source):
                source = None
            if source is not None:
                tex["source"] = source
                continue
            ktx2 = tex.pop("source", None) is not None  # a core source Pillow cannot decode: KTX2
            if t in base_textures:
                unread = [e for e in exts if e not in IMAGE_SOURCES or not honoured_here(e)]
                if unread or ktx2:
                    refuse(self.doc.name, unread[0] if unread else "KHR_texture_basisu", "stores its base-colour texture only with")
                raise InputError(f"{self.doc.name}: a base-colour texture names no image.", hint=_REEXPORT)

    # -- geometry --------------------------------------------------------------------------------------

    def _primitive(self, prim: dict[str, Any], base_uv: dict[int, tuple[int, np.ndarray | None]]) -> None:
        """Decode one primitive's attributes and indices into new plain accessors, in place."""
        attrs = prim.get("attributes") or {}
        exts = prim.pop("extensions", None) or {}
        raw: dict[str, np.ndarray] = {}
        fallback = all("bufferView" in (self.doc.json["accessors"][i] or {}) for i in attrs.values() if _valid(self.doc, i))
        if DRACO in exts and (honoured_here(DRACO) or not fallback):  # optional Draco may carry plain data too
            raw = self._draco(exts[DRACO], attrs, prim.get("indices"))
        tex_coord, matrix = base_uv.get(prim.get("material", -1), (0, None))
        uv_name = f"TEXCOORD_{tex_coord}"
        new: dict[str, int] = {}
        for name, target in (("POSITION", "POSITION"), ("NORMAL", "NORMAL"), ("COLOR_0", "COLOR_0"), (uv_name, "TEXCOORD_0")):
            if name not in attrs:
                continue
            key = (attrs[name], target, None if matrix is None or target != "TEXCOORD_0" else matrix.tobytes())
            if key not in self.cache or name in raw:
                values = read_accessor(self.doc, attrs[name], raw.get(name))
                if values.shape[1] not in WIDTHS[target]:
                    raise InputError(f"{self.doc.name}: a {name} attribute has {values.shape[1]} components.", hint=_REEXPORT)
                if target == "TEXCOORD_0":
                    values = _snap_uv(values if matrix is None else values @ matrix[:2, :2].T + matrix[:2, 2])
                self.cache[key] = self._accessor(values)
            new[target] = self.cache[key]
        if "POSITION" not in new:
            raise InputError(f"{self.doc.name} has a mesh primitive without POSITION.", hint=_REEXPORT)
        prim["attributes"] = new
        prim.pop("targets", None)
        if "indices" in prim:
            values = read_accessor(self.doc, prim["indices"], raw.get("indices"))
            if values.dtype.kind not in "iu":
                raise InputError(f"{self.doc.name} has mesh indices that are not integers.", hint=_REEXPORT)
            prim["indices"] = self._accessor(values.reshape(-1), indices=True)

    def _draco(self, ext: Any, attrs: dict[str, int], indices: int | None) -> dict[str, np.ndarray]:
        """Decode a KHR_draco_mesh_compression primitive: raw components per glTF attribute name (+ 'indices')."""
        if not honoured_here(DRACO):
            refuse(self.doc.name, DRACO, "uses")
        import DracoPy

        try:
            blob = bytes(self.doc.view(ext["bufferView"]))
            ids = {int(uid): name for name, uid in (ext.get("attributes") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{self.doc.name} has a malformed {DRACO} entry ({exc}).", hint=_REEXPORT) from exc
        for name in attrs:  # declared sizes were bounded in _check_sizes; the indices are bounded here
            accessor_count(self.doc, attrs[name])
        if indices is not None:
            accessor_count(self.doc, indices)
        try:
            decoded = DracoPy.decode(blob)
        except Exception as exc:  # DracoPy raises its own error types for damaged streams
            raise InputError(f"{self.doc.name} has Draco-compressed geometry that does not decode ({exc}).", hint=_REEXPORT) from exc
        raw = {ids[a["unique_id"]]: np.asarray(a["data"]) for a in decoded.attributes if a["unique_id"] in ids}
        faces = getattr(decoded, "faces", None)
        if faces is not None and indices is not None:
            raw["indices"] = np.asarray(faces).reshape(-1)
        return raw

    def _instances(self) -> None:
        """EXT_mesh_gpu_instancing: one child node per instance (its TRS is relative to the node)."""
        nodes = self.out.get("nodes") or []
        for node in list(nodes):
            if not isinstance(node, dict):
                continue
            inst = (node.get("extensions") or {}).pop(INSTANCING, None)
            if not node.get("extensions"):
                node.pop("extensions", None)
            if not isinstance(inst, dict) or "mesh" not in node:
                continue
            attrs = inst.get("attributes") or {}
            trs = {k: read_accessor(self.doc, attrs[k]) for k in ("TRANSLATION", "ROTATION", "SCALE") if k in attrs}
            counts = {len(v) for v in trs.values()}
            if len(counts) != 1:
                raise InputError(f"{self.doc.name}: {INSTANCING} attributes of different lengths.", hint=_REEXPORT)
            mesh = node.pop("mesh")
            children = node.setdefault("children", [])
            for i in range(counts.pop()):
                child: dict[str, Any] = {"mesh": mesh}
                for key, field in (("TRANSLATION", "translation"), ("ROTATION", "rotation"), ("SCALE", "scale")):
                    if key in trs:
                        child[field] = [float(x) for x in trs[key][i]]
                nodes.append(child)
                children.append(len(nodes) - 1)


def _valid(doc: GltfDocument, index: Any) -> bool:
    accessors = doc.json.get("accessors") or []
    return isinstance(index, int) and 0 <= index < len(accessors)


def _base_colour_info(mat: Any) -> dict[str, Any] | None:
    """The textureInfo of a material's base-colour texture (or its spec-gloss diffuse texture), if any.

    Raises:
        TypeError: a textureInfo that is not a JSON object (reported by `core_glb` as malformed).
    """
    if not isinstance(mat, dict):
        return None
    info = (mat.get("pbrMetallicRoughness") or {}).get("baseColorTexture")
    if info is None:
        info = ((mat.get("extensions") or {}).get(SPEC_GLOSS) or {}).get("diffuseTexture")
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"a base-colour texture is {info!r}, not a textureInfo object")
    return info


def _uv_transform(ext: dict[str, Any]) -> np.ndarray:
    """KHR_texture_transform as a 3×3 matrix on [u, v, 1]: T(offset) · R(rotation) · S(scale), as the
    extension defines it (rotation counter-clockwise in UV space, glTF's top-left UV origin)."""
    ox, oy = (float(x) for x in ext.get("offset", (0.0, 0.0)))  # TypeError/ValueError: the caller's InputError
    sx, sy = (float(x) for x in ext.get("scale", (1.0, 1.0)))
    r = float(ext.get("rotation", 0.0))
    c, s = np.cos(r), np.sin(r)
    translation = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=np.float64)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)  # the spec's column-major mat3, as rows
    return translation @ rotation @ np.diag([sx, sy, 1.0])


def _snap_uv(uv: np.ndarray) -> np.ndarray:
    """UVs within UV_SNAP of a whole number set to it. Dequantizing and transforming leave the rounding of
    float arithmetic (gltfpack's 4095 / 65535 · 16.003664 = 1.0000001): a coordinate meant to be the texture's
    edge 1.0 would otherwise wrap to the opposite edge (`a3d_cli.mesh.appearance.sample_texture`)."""
    uv = np.asarray(uv, dtype=np.float64)
    whole = np.round(uv)
    return np.where(np.abs(uv - whole) < UV_SNAP, whole, uv)


def _undecodable(images: list[Any], source: Any) -> bool:
    """Whether image `source` is in a format Pillow cannot decode (KTX2), judged by its mimeType or URI."""
    if not isinstance(source, int) or not 0 <= source < len(images) or not isinstance(images[source], dict):
        return True
    image = images[source]
    uri = str(image.get("uri", ""))
    return image.get("mimeType") in UNDECODABLE_MIME or (not uri.startswith("data:") and uri.lower().endswith(".ktx2"))


def _pack_glb(doc: dict[str, Any], binary: bytes) -> bytes:
    """A GLB container: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<II", len(text), CHUNK_JSON)
        + text
        + struct.pack("<II", len(binary), CHUNK_BIN)
        + binary
    )
