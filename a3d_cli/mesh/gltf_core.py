"""Rewrite a glTF file into the plain core glTF that trimesh reads correctly, decoding what it would not.

Why: trimesh reads core glTF's scenes, materials and images well, but takes accessor components as raw
numbers and skips several extensions (`a3d_cli.mesh.gltf_accessors`, `a3d_cli.mesh.gltf_extensions`).
Rather than patch its results afterwards, a3d hands it an equivalent file in which every primitive's
POSITION, NORMAL, COLOR_0, TEXCOORD_0 and indices are plain float32/uint32 data:

- Draco-compressed primitives (`KHR_draco_mesh_compression`) are decoded with DracoPy;
- normalized and integer attributes (`KHR_mesh_quantization`) are dequantized, sparse accessors applied;
- the texture coordinates the base-colour texture uses (`texCoord`, possibly TEXCOORD_1) become TEXCOORD_0,
  with its `KHR_texture_transform` (offset, rotation, scale) applied;
- a material's emission becomes what `a3d_cli.mesh.load` adds to the base colour: `KHR_materials_emissive_strength`
  folded into `emissiveFactor` (trimesh reads the factor, not the extension), an emissive texture kept where it
  reads the base texture's coordinates (or the material has no base texture: then its UV set is the one made
  TEXCOORD_0), else its average colour folded into the factor (`_Rewriter._emission`);
- the base-colour texture's sampler wrap modes, which trimesh does not read, travel with each primitive
  that needs them as an application-specific attribute (`WRAP_ATTRIBUTE`, (wrapS, wrapT) per vertex,
  written only when either is not REPEAT), which trimesh keeps in the part's `vertex_attributes`; so do the
  base-colour and emissive samplers' `magFilter` (`FILTER_ATTRIBUTE`, written only when either is NEAREST);
- each texture points at an image a3d can decode (`EXT_texture_webp`, `KHR_texture_webp`,
  `EXT_texture_avif` sources, else the core source); a base-colour texture with none is refused;
- `EXT_mesh_gpu_instancing` nodes get one child node per instance.

- meshes are posed as viewers show the file without animation: morph targets blended by their default
  weights, skinned meshes placed by their joints (`_Rewriter._poses`); triangle fans become triangle lists;
- a triangle primitive without NORMAL gets the flat normals glTF 2.0 requires viewers to give it (§3.7.2.1:
  "client implementations MUST calculate flat normals"), each vertex split once per way its faces face
  (`a3d_cli.mesh.creases.flat_vertices`), so `a3d_cli.mesh.load` keeps its facets as it keeps any file's
  hard edges (`_Rewriter._flat`);
- a file without scenes gets one of its root nodes, and cameras are taken off nodes.

Animations and attributes trimesh does not use are dropped. Images stay as they are (their URIs are resolved by the same rooted resolver).

Examples:
    >>> glb = core_glb(Path("draco.glb"), resolver)  # bytes of an equivalent plain GLB  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.mesh.appearance import LINEAR, NEAREST, REPEAT, REPEAT_BOTH, WRAP_MODES, Wrap
from a3d_cli.mesh.creases import FLAT_SPLIT_BYTES_PER_CORNER
from a3d_cli.mesh.gltf_accessors import (
    MAX_SCENE_NODES,
    MAX_SCENE_VERTICES,
    TYPE_WIDTHS,
    GltfDocument,
    accessor_count,
    pack_glb,
    read_accessor,
    read_document,
    uri_bytes,
)
from a3d_cli.mesh.gltf_extensions import HONOURED, check_extensions, honoured_here, refuse
from a3d_cli.mesh.surface import require_finite
from a3d_cli.mesh.texture_check import HINT as TEXTURE_HINT
from a3d_cli.mesh.texture_check import ImageNames, check_header, check_image, mean_colour

DRACO = "KHR_draco_mesh_compression"
TRANSFORM = "KHR_texture_transform"
INSTANCING = "EXT_mesh_gpu_instancing"
SPEC_GLOSS = "KHR_materials_pbrSpecularGlossiness"
EMISSIVE_STRENGTH = "KHR_materials_emissive_strength"
IMAGE_SOURCES = ("KHR_texture_webp", "EXT_texture_webp", "EXT_texture_avif")  # preferred over the core source
UNDECODABLE_MIME = ("image/ktx2",)
_FLOAT, _UINT32 = 5126, 5125
_TRIANGLES, _STRIP, _FAN = 4, 5, 6  # primitive modes
FACE_CHUNK = 1 << 18  # faces whose normals are computed at a time (bounds the [n, 3, 3] corners gathered)
SKIN_CHUNK = 1 << 18  # vertices skinned at a time (bounds the [n, 4, 4] joint matrices gathered per influence)
UV_SNAP = 1e-5  # texture coordinates this close to a whole number are that number (0.04 px of a 4096 texture)
WIDTHS = {"POSITION": (3,), "NORMAL": (3,), "COLOR_0": (3, 4), "TEXCOORD_0": (2,)}  # components glTF allows
WRAP_ATTRIBUTE = "_A3D_WRAP"  # glTF's prefix for application-specific attributes; trimesh keeps those
FILTER_ATTRIBUTE = "_A3D_FILTER"  # (base-colour magFilter, emissive magFilter) per vertex
FINITE = {"POSITION": "vertex coordinates", "COLOR_0": "vertex colours (COLOR_0)", "TEXCOORD_0": "texture coordinates"}
_REEXPORT = "The file is damaged or was written by a faulty exporter; export it again."
UvSet = tuple[int, np.ndarray | None, Wrap, int]  # a texture's (texCoord, KHR_texture_transform 3×3 or None, wrap, magFilter)


def core_glb(
    path: Path,
    resolver: Any,
    names: ImageNames | None = None,
    document: GltfDocument | None = None,
    flat_without_normals: bool = True,
) -> bytes:
    """An equivalent GLB of core glTF only (plus extensions that change nothing a3d reads).

    Args:
        path: a .glb or .gltf file.
        resolver: fetches files the asset names (`resolver.get(name)`), rooted at its folder.
        names: receives the name of each texture image checked (`a3d_cli.mesh.texture_check`).
        document: the file's document when the caller has read it already (`read_document(path, resolver)`),
            so that it is not read again; it is read here when None.
        flat_without_normals: give triangle primitives without NORMAL their flat normals, as glTF requires;
            False keeps their vertices as they are (a3d's own processed mesh, whose vertex order is the binding's).

    Raises:
        InputError: an extension a3d cannot honour, undecodable data, sizes above the decode limits,
            malformed accessors or buffers.
    """
    try:
        doc = document if document is not None else read_document(Path(path), resolver)
        check_extensions(doc.json, doc.name)
        return _Rewriter(doc, resolver, names, flat_without_normals).run()
    except InputError:
        raise
    except RecursionError:  # JSON nested deeper than copying it can go (parsing stops a little deeper)
        raise InputError(f"Cannot read {Path(path).name}: its JSON is nested too deeply.", hint=_REEXPORT) from None
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:  # JSON of the wrong shape
        raise InputError(
            f"Cannot read {Path(path).name}: its glTF JSON is malformed ({type(exc).__name__}: {str(exc)[:120]}).",
            hint=_REEXPORT,
        ) from exc


def has_flat_primitives(document: dict[str, Any]) -> bool:
    """Whether a glTF's JSON has a primitive of triangles (a list, strip or fan) without NORMAL: one `core_glb`
    shades flat, splitting its vertices, unless `flat_without_normals` is off."""
    meshes = [mesh for mesh in document.get("meshes") or [] if isinstance(mesh, dict)]
    primitives = [prim for mesh in meshes for prim in mesh.get("primitives") or [] if isinstance(prim, dict)]
    return any(
        isinstance(prim.get("attributes"), dict)
        and "NORMAL" not in prim["attributes"]
        and prim.get("mode", _TRIANGLES) in (_TRIANGLES, _STRIP, _FAN)
        for prim in primitives
    )


class _Rewriter:
    """One rewrite: new binary chunk, bufferViews and accessors, built while walking the document."""

    def __init__(
        self, doc: GltfDocument, resolver: Any, names: ImageNames | None = None, flat_without_normals: bool = True
    ) -> None:
        self.doc = doc
        self.resolver = resolver
        self.names = names
        self.flat_without_normals = flat_without_normals
        self.out = copy.deepcopy(doc.json)
        self.blob = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []
        self.cache: dict[tuple, int] = {}
        self.glow_filter: dict[int, int] = {}  # material → the magFilter of the emissive texture it keeps

    def run(self) -> bytes:
        self._check_scene()
        self._scenes()
        self._images()
        base_uv = self._materials()
        self._check_base_images(*self._textures(base_uv))
        self._emission(base_uv)
        self.draco = self._decode_draco()
        self.posed: dict[int, dict[str, np.ndarray]] = {}  # id(primitive) → POSITION as the file shows it
        self._poses()
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
        return pack_glb(self.out, self.blob)

    # -- sizes -------------------------------------------------------------------------------------

    def _check_scene(self) -> None:
        """Refuse, before decoding anything, a node hierarchy that is not a forest and declared sizes past the bounds.

        glTF nodes form disjoint trees: each node has at most one parent and none is its own ancestor. A
        cycle would make a scene-graph walk loop forever, and a node shared by several parents would place its
        mesh once per path (exponentially many with depth). Within trees every node is placed at most once,
        so the vertices a3d places are at most those of each node's mesh times its GPU instances: bounded by
        MAX_SCENE_VERTICES, like the vertices decoded (every mesh once), and the nodes placed (instances
        included) by MAX_SCENE_NODES.
        """
        name = self.doc.name
        meshes, nodes = self.out.get("meshes") or [], self.out.get("nodes") or []
        per_mesh = []
        for mesh in meshes:
            total = 0
            for prim in (mesh or {}).get("primitives") or []:
                pos = (prim.get("attributes") or {}).get("POSITION")
                total += accessor_count(self.doc, pos) if pos is not None else 0
            per_mesh.append(total)
        children: list[list[int]] = []
        parent: dict[int, int] = {}
        placed_vertices, placed_nodes = 0, len(nodes)
        for i, node in enumerate(nodes):
            node = node if isinstance(node, dict) else {}
            kids = node.get("children") or []
            if not isinstance(kids, list) or not all(_is_index(c, len(nodes)) for c in kids):
                raise InputError(f"{name}: node {i} has children that are not nodes ({str(kids)[:80]}).", hint=_REEXPORT)
            for c in kids:
                if c in parent:
                    raise InputError(
                        f"{name}: node {c} has two parents (nodes {parent[c]} and {i}); glTF nodes must form trees.",
                        hint=_REEXPORT,
                    )
                parent[c] = i
            children.append(kids)
            mesh = node.get("mesh")
            if mesh is None:
                continue
            if not _is_index(mesh, len(meshes)):
                raise InputError(f"{name}: node {i} names mesh {mesh!r}, which does not exist.", hint=_REEXPORT)
            copies = 1
            inst = (node.get("extensions") or {}).get(INSTANCING)
            if isinstance(inst, dict):  # every instance attribute has the instance count (checked before any is read)
                counts = {accessor_count(self.doc, a) for a in (inst.get("attributes") or {}).values()}
                if len(counts) > 1:
                    raise InputError(
                        f"{name}: node {i}'s {INSTANCING} attributes have different lengths ({sorted(counts)}).",
                        hint=_REEXPORT,
                    )
                copies = counts.pop() if counts else 1
                placed_nodes += copies
            placed_vertices += copies * per_mesh[mesh]
        reached, stack = 0, [i for i in range(len(nodes)) if i not in parent]
        while stack:  # from the roots: with one parent each, a node never reached lies on a cycle
            reached += 1
            stack.extend(children[stack.pop()])
        if reached < len(nodes):
            raise InputError(f"{name}: its node hierarchy has a cycle (a node is its own ancestor).", hint=_REEXPORT)
        vertices = max(sum(per_mesh), placed_vertices)
        if vertices > MAX_SCENE_VERTICES:
            raise InputError(
                f"{name} declares {vertices:,} vertices, more than a3d decodes ({MAX_SCENE_VERTICES:,}).",
                hint="Simplify the mesh before giving it to a3d (a3d keeps at most --max-vertices vertices anyway).",
            )
        if placed_nodes > MAX_SCENE_NODES:
            raise InputError(
                f"{name} places {placed_nodes:,} nodes (GPU instances included), more than a3d reads ({MAX_SCENE_NODES:,}).",
                hint="Give a3d one object: export the part to animate, or merge its instances into one mesh.",
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

    def _materials(self) -> dict[int, UvSet]:
        """Per material: which UV set its base-colour texture uses, its texture transform (3×3, or None) and
        its sampler's wrap modes and magnification filter; the textureInfo is rewritten to use TEXCOORD_0
        without a transform (the rewrite applies both, and hands the sampler on: `_primitive`)."""
        found: dict[int, UvSet] = {}
        for m, mat in enumerate(self.out.get("materials") or []):
            info = _base_colour_info(mat)
            if info is not None:
                found[m] = self._texture_uv(m, info, "base-colour")
        return found

    def _texture_uv(self, m: int, info: dict[str, Any], what: str) -> UvSet:
        """The UV set, texture transform, wrap modes and magFilter of material `m`'s textureInfo `info`, which is
        rewritten to read TEXCOORD_0 without a transform."""
        ext = (info.get("extensions") or {}).pop(TRANSFORM, None)
        matrix = None
        try:
            tex_coord = int(info.get("texCoord", 0))
            if isinstance(ext, dict):
                tex_coord = int(ext.get("texCoord", tex_coord))
                matrix = _uv_transform(ext)
        except (TypeError, ValueError) as exc:
            message = f"{self.doc.name}: material {m} has a malformed {what} texture ({exc})."
            raise InputError(message, hint=_REEXPORT) from exc
        info["texCoord"] = 0
        if not info.get("extensions"):
            info.pop("extensions", None)
        return tex_coord, matrix, *self._sampler(info)

    def _emission(self, base_uv: dict[int, UvSet]) -> None:
        """Each material's emission in the form `a3d_cli.mesh.load` adds to the base colour: `emissiveFactor`
        with the KHR_materials_emissive_strength folded in (trimesh reads the factor, not the extension), and
        an `emissiveTexture` only where it reads the base texture's texture coordinates.

        An emissive texture on the base texture's UV set and transform stays, as does one in a material
        without a base-colour texture, whose UV set and transform (and sampler) then become the material's
        (`base_uv`). One on another UV set or transform counts as its average colour (linear light), folded
        into the factor: a3d keeps one set of texture coordinates per vertex. An emissive texture whose
        image cannot be read (a missing file, no source Pillow decodes) takes the material's emission away,
        since its factor alone would light the whole part; a damaged image is refused, as a base-colour one
        is. A material that emits nothing (black factor) keeps neither field.
        """
        textures = self.out.get("textures") or []
        for m, mat in enumerate(self.out.get("materials") or []):
            if not isinstance(mat, dict):
                continue
            factor = _emissive_factor(mat)
            info = mat.pop("emissiveTexture", None)
            mat.pop("emissiveFactor", None)
            if not factor.any():
                continue
            if info is not None:
                if not isinstance(info, dict):
                    raise TypeError(f"an emissive texture is {info!r}, not a textureInfo object")
                uv = self._texture_uv(m, info, "emissive")
                index = info.get("index")
                texture = textures[index] if _is_index(index, len(textures)) else None
                source = texture.get("source") if isinstance(texture, dict) else None  # `_textures` chose it
                label, data = self._image_bytes(source) if source is not None else ("", None)
                if data is None:
                    continue
                if m not in base_uv or _same_uv(base_uv[m], uv):
                    check_header(data, label, self.doc.name, self.names)
                    base_uv.setdefault(m, uv)
                    self.glow_filter[m] = uv[3]
                    mat["emissiveTexture"] = info
                else:
                    factor = factor * mean_colour(data, label, self.doc.name)
            mat["emissiveFactor"] = factor.tolist()

    def _sampler(self, info: dict[str, Any]) -> tuple[Wrap, int]:
        """The (wrapS, wrapT) and magFilter of the sampler a textureInfo's texture names: REPEAT and LINEAR for a
        texture without a sampler, a sampler without the field, and a value glTF does not define (viewers
        fall back to them)."""
        textures, samplers = self.out.get("textures") or [], self.out.get("samplers") or []
        index = info.get("index")
        texture = textures[index] if _is_index(index, len(textures)) else None
        sampler = texture.get("sampler") if isinstance(texture, dict) else None
        fields = samplers[sampler] if _is_index(sampler, len(samplers)) and isinstance(samplers[sampler], dict) else {}
        s, t = (fields.get(key, REPEAT) for key in ("wrapS", "wrapT"))
        return (_wrap_mode(s), _wrap_mode(t)), _mag_filter(fields.get("magFilter"))

    def _textures(self, base_uv: dict[int, UvSet]) -> tuple[set[int], set[int]]:
        """Point every texture at an image a3d can decode; refuse a base-colour texture that has none.
        Returns the images the base-colour textures use, and those of them that a spec-gloss material's
        diffuse texture uses (trimesh decodes those itself)."""
        base_textures, spec_textures = set(), set()
        for m in base_uv:
            mat = self.out["materials"][m]
            info = _base_colour_info(mat)
            if info is not None and isinstance(info.get("index"), int):
                base_textures.add(info["index"])
            spec = ((mat.get("extensions") or {}).get(SPEC_GLOSS) or {}).get("diffuseTexture")
            if isinstance(spec, dict) and isinstance(spec.get("index"), int):
                spec_textures.add(spec["index"])
        images = self.out.get("images") or []
        base_images: set[int] = set()
        spec_images: set[int] = set()
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
                if t in base_textures:
                    base_images.add(source)
                if t in spec_textures:
                    spec_images.add(source)
                continue
            ktx2 = tex.pop("source", None) is not None  # a core source Pillow cannot decode: KTX2
            if t in base_textures:
                unread = [e for e in exts if e not in IMAGE_SOURCES or not honoured_here(e)]
                if unread or ktx2:
                    refuse(self.doc.name, unread[0] if unread else "KHR_texture_basisu", "stores its base-colour texture only with")
                raise InputError(f"{self.doc.name}: a base-colour texture names no image.", hint=_REEXPORT)
        return base_images, spec_images & base_images

    def _check_base_images(self, sources: set[int], decoded_by_trimesh: set[int]) -> None:
        """Check each image a base-colour texture uses (`a3d_cli.mesh.texture_check`): trimesh would drop one
        it cannot open without a word. Its header is read here and its pixels decoded once, when baked; an
        image trimesh decodes itself (`decoded_by_trimesh`: spec-gloss diffuse textures) is decoded in full
        here, since trimesh would drop it silently if that failed. A missing image file is left to trimesh,
        as before."""
        for i in sorted(sources):
            label, data = self._image_bytes(i)
            if data is None:
                continue
            if i in decoded_by_trimesh:
                check_image(data, label, self.doc.name)
            else:
                check_header(data, label, self.doc.name, self.names)

    def _image_bytes(self, i: int) -> tuple[str, bytes | None]:
        """Image `i`'s name for messages and its bytes, None for a file that does not exist. The image is an
        existing dict (`_textures` kept only such sources)."""
        image = (self.doc.json.get("images") or [])[i]
        uri = image.get("uri")
        named = uri if isinstance(uri, str) and not uri.startswith("data:") else f"image {i}"
        label = str(image.get("name") or named)
        if "bufferView" in image:
            return label, bytes(self.doc.view(image["bufferView"]))
        if isinstance(uri, str):
            return label, uri_bytes(self.resolver, uri, f"texture image {label!r}", self.doc.name, TEXTURE_HINT)
        raise InputError(f"{self.doc.name}: image {label!r} has neither a uri nor a bufferView.", hint=_REEXPORT)

    # -- geometry --------------------------------------------------------------------------------------

    def _primitive(self, prim: dict[str, Any], base_uv: dict[int, UvSet]) -> None:
        """Decode one primitive's attributes and indices into new plain accessors, in place; TEXCOORD_0 becomes
        the UV set (transformed) its material's texture reads (`_materials`, `_emission`)."""
        attrs = prim.get("attributes") or {}
        prim.pop("extensions", None)  # Draco (decoded already) and any other primitive extension
        raw = self.draco.get(id(prim), {})
        material = prim.get("material", -1)
        tex_coord, matrix, wrap, mag_filter = base_uv.get(material, (0, None, REPEAT_BOTH, LINEAR))
        uv_name = f"TEXCOORD_{tex_coord}"
        self._check_primitive(prim, attrs, uv_name)
        new: dict[str, int] = {}
        posed = self.posed.get(id(prim))
        flat = self._flat(prim, attrs, raw)  # a primitive to shade flat: its triangles, then its split vertices
        for name, target in (("POSITION", "POSITION"), ("NORMAL", "NORMAL"), ("COLOR_0", "COLOR_0"), (uv_name, "TEXCOORD_0")):
            if name not in attrs:
                continue
            key = (attrs[name], target, None if matrix is None or target != "TEXCOORD_0" else matrix.tobytes())
            own = flat is not None or (posed is not None and name == "POSITION")  # values of this primitive only
            if key not in self.cache or name in raw or own:
                if posed is not None and name == "POSITION":  # morphed or skinned (`_poses`): this primitive's own
                    values = posed
                else:
                    values = read_accessor(self.doc, attrs[name], raw.get(name))
                if values.shape[1] not in WIDTHS[target]:
                    raise InputError(f"{self.doc.name}: a {name} attribute has {values.shape[1]} components.", hint=_REEXPORT)
                if target == "TEXCOORD_0":
                    values = _snap_uv(values if matrix is None else values @ matrix[:2, :2].T + matrix[:2, 2])
                if target in FINITE:  # here, before trimesh turns a NaN colour into black (0 as 8 bits)
                    require_finite(values, FINITE[target], self.doc.name)
                if flat is not None:
                    if target == "POSITION":  # first: the split follows from the faces' normals
                        flat.split(values)
                    values = flat.copies(values, self.doc, attrs[name])
                accessor = self._accessor(values)
                if own:
                    new[target] = accessor
                    continue
                self.cache[key] = accessor
            new[target] = self.cache[key]
        if "POSITION" not in new:
            raise InputError(f"{self.doc.name} has a mesh primitive without POSITION.", hint=_REEXPORT)
        if flat is not None:
            new["NORMAL"] = self._accessor(flat.normals)
        if "TEXCOORD_0" in new and wrap != REPEAT_BOTH:
            count = self.accessors[new["POSITION"]]["count"]
            key = (WRAP_ATTRIBUTE, count, wrap)
            if key not in self.cache:
                self.cache[key] = self._accessor(np.tile(np.asarray(wrap, dtype=np.float32), (count, 1)))
            new[WRAP_ATTRIBUTE] = self.cache[key]
        filters = (mag_filter, self.glow_filter.get(material, LINEAR))
        if "TEXCOORD_0" in new and NEAREST in filters:
            count = self.accessors[new["POSITION"]]["count"]
            key = (FILTER_ATTRIBUTE, count, filters)
            if key not in self.cache:
                self.cache[key] = self._accessor(np.tile(np.asarray(filters, dtype=np.float32), (count, 1)))
            new[FILTER_ATTRIBUTE] = self.cache[key]
        prim["attributes"] = new
        prim.pop("targets", None)
        if flat is not None:
            prim["indices"], prim["mode"] = self._accessor(flat.faces.reshape(-1), indices=True), _TRIANGLES
        elif "indices" in prim:
            values = read_accessor(self.doc, prim["indices"], raw.get("indices"))
            if values.dtype.kind not in "iu":
                raise InputError(f"{self.doc.name} has mesh indices that are not integers.", hint=_REEXPORT)
            if prim.get("mode", _TRIANGLES) == _TRIANGLES and values.size % 3:  # glTF 2.0 §3.7.2.1: whole triangles
                raise InputError(
                    f"{self.doc.name} has a triangle list of {values.size} indices, not a whole number of triangles.",
                    hint=_REEXPORT,
                )
            prim["indices"] = self._accessor(_fan_triangles(values.reshape(-1), prim), indices=True)
        elif prim.get("mode") == _FAN:  # drawn in vertex order
            count = accessor_count(self.doc, attrs["POSITION"])
            prim["indices"] = self._accessor(_fan_triangles(np.arange(count, dtype=np.uint32), prim), indices=True)

    def _flat(self, prim: dict[str, Any], attrs: dict[str, Any], raw: dict[str, np.ndarray]) -> _FlatSplit | None:
        """The triangles of a primitive glTF shades flat, to be split (`_FlatSplit`): one of triangles, a strip
        or a fan without NORMAL, as the primitive's own attributes say (not what a loader computes in its
        place). None for any other primitive, when `flat_without_normals` is off, and for one left for the
        loader to refuse as it is: no triangles, indices past its vertices, or an index count that is not a
        whole number of triangles."""
        mode = prim.get("mode", _TRIANGLES)
        if not self.flat_without_normals or "NORMAL" in attrs or "POSITION" not in attrs:
            return None
        if mode not in (_TRIANGLES, _STRIP, _FAN):
            return None
        count = accessor_count(self.doc, attrs["POSITION"])  # within MAX_ACCESSOR_COUNT: int32 vertex numbers
        if "indices" in prim:
            order = read_accessor(self.doc, prim["indices"], raw.get("indices"))
            if order.dtype.kind not in "iu":
                raise InputError(f"{self.doc.name} has mesh indices that are not integers.", hint=_REEXPORT)
            order = order.reshape(-1)
            if order.size and int(order.max()) >= count:
                return None
        else:
            order = np.arange(count, dtype=np.int32)
        triangles = len(order) // 3 if mode == _TRIANGLES else max(len(order) - 2, 0)
        if mode == _TRIANGLES and len(order) % 3 or not triangles:
            return None
        # before the split's arrays exist: they are counted as values of 4 bytes, as decoded data is
        self.doc.charge(
            attrs["POSITION"],
            -(-3 * triangles * FLAT_SPLIT_BYTES_PER_CORNER // 4),
            use="a primitive without NORMAL is shaded flat, as glTF requires, by copying each vertex once per way its "
            f"faces face, and its {triangles:,} triangles with what the file decoded before them take",
            hint="Export the mesh with normals (glTF NORMAL: Blender's glTF exporter writes them with its Normals "
            "option on), which a3d reads without this split, or simplify it before giving it to a3d.",
        )
        order = order.astype(np.int32, copy=False)
        if mode == _FAN:
            faces = _fan_list(order)
        elif mode == _STRIP:
            faces = _strip_triangles(order)
        else:
            faces = order.reshape(-1, 3)
        return _FlatSplit(faces)

    def _check_primitive(self, prim: dict[str, Any], attrs: dict[str, Any], uv_name: str) -> None:
        """A primitive's mode is one glTF defines, and the attributes a3d reads have POSITION's count (as glTF
        requires): one declared count bounds them all before any is decoded."""
        mode = prim.get("mode", 4)
        if not _is_index(mode, 7):  # POINTS .. TRIANGLE_FAN
            raise InputError(f"{self.doc.name} has a mesh primitive of mode {mode!r}, which glTF does not define.", hint=_REEXPORT)
        if "POSITION" not in attrs:
            return  # refused below, after Draco may have said more
        count = accessor_count(self.doc, attrs["POSITION"])
        for name in ("NORMAL", "COLOR_0", uv_name):
            if name in attrs and accessor_count(self.doc, attrs[name]) != count:
                raise InputError(
                    f"{self.doc.name}: a primitive's {name} has {accessor_count(self.doc, attrs[name]):,} elements "
                    f"but its POSITION {count:,}; glTF requires the same count.",
                    hint=_REEXPORT,
                )

    def _decode_draco(self) -> dict[int, dict[str, np.ndarray]]:
        """Decode every KHR_draco_mesh_compression primitive (each stream once) in one capped child process
        (`a3d_cli.mesh.draco_child`): raw components per glTF attribute name (+ 'indices'), by id(primitive)."""
        todo: list[tuple[dict[str, Any], dict[int, str], int]] = []  # (primitive, Draco id → name, stream)
        streams: dict[int, int] = {}  # bufferView → stream number
        blobs: list[bytes] = []
        declared = 0
        for mesh in self.out.get("meshes") or []:
            for prim in (mesh or {}).get("primitives") or []:
                attrs, ext = prim.get("attributes") or {}, (prim.get("extensions") or {}).get(DRACO)
                if ext is None:
                    continue
                if not honoured_here(DRACO):
                    accessors = self.doc.json["accessors"]
                    if all("bufferView" in (accessors[i] or {}) for i in attrs.values() if _valid(self.doc, i)):
                        continue  # optional Draco may carry plain data too
                    refuse(self.doc.name, DRACO, "uses")
                try:
                    view = ext["bufferView"]
                    ids = {int(uid): name for name, uid in (ext.get("attributes") or {}).items()}
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise InputError(f"{self.doc.name} has a malformed {DRACO} entry ({exc}).", hint=_REEXPORT) from exc
                if view not in streams:  # the declared sizes (bounded here) size the child's memory cap
                    streams[view] = len(blobs)
                    blobs.append(bytes(self.doc.view(view)))
                    declared += sum(accessor_count(self.doc, attrs[n]) * _width(self.doc, attrs[n]) for n in attrs)
                    if prim.get("indices") is not None:
                        declared += accessor_count(self.doc, prim["indices"])
                todo.append((prim, ids, streams[view]))
        if not blobs:
            return {}
        from a3d_cli.mesh.draco_child import decode_streams

        decoded = decode_streams(blobs, declared, self.doc.name)
        out: dict[int, dict[str, np.ndarray]] = {}
        for prim, ids, k in todo:
            attributes, faces = decoded[k]
            raw = {ids[uid]: data for uid, data in attributes.items() if uid in ids}
            if faces is not None and prim.get("indices") is not None:
                raw["indices"] = faces.reshape(-1)
            out[id(prim)] = raw
        return out

    def _scenes(self) -> None:
        """The scene as viewers build it. A file without scenes (a valid glTF) gets one that holds every root
        node, as Blender imports it (trimesh would read nothing and call the file empty). Cameras are taken
        off their nodes: a3d places its own, and trimesh skips a camera node's mesh and children."""
        nodes = self.out.get("nodes") or []
        for node in nodes:
            if isinstance(node, dict):
                node.pop("camera", None)
        if nodes and not self.out.get("scenes"):
            children = {c for node in nodes if isinstance(node, dict) for c in node.get("children") or []}
            self.out["scenes"] = [{"nodes": [i for i in range(len(nodes)) if i not in children]}]
            self.out["scene"] = 0

    def _poses(self) -> None:
        """Meshes in the pose the file shows when no animation plays: morph targets blended by their default
        weights, skinned meshes placed by their joints.

        glTF draws a mesh with its morph targets' POSITION displacements weighted by the node's `weights`,
        else the mesh's (§3.7.2.2), and a skinned mesh (a node with `skin`) by its joints alone: vertex
        v → Σ_k w_k · world(joint_k) · inverseBindMatrix_k · v, where the skinned node's own transform is
        ignored (§3.7.3). A node that needs either gets its own copy of its mesh whose POSITION is decoded
        here (`self.posed`); a skinned copy, already in world space, hangs from a new root node without a
        transform in the scenes that hold the node.
        """
        nodes, meshes = self.out.get("nodes") or [], self.out.get("meshes") or []
        parent = {c: i for i, node in enumerate(nodes) if isinstance(node, dict) for c in node.get("children") or []}
        world: list[np.ndarray] | None = None
        copies: dict[tuple, int] = {}
        for i, node in enumerate(list(nodes)):
            if not isinstance(node, dict) or node.get("mesh") is None:
                continue
            mesh = meshes[node["mesh"]]  # an index (`_check_scene`)
            weights = _morph_weights(node, mesh)
            skin = node.get("skin")
            if weights is None and skin is None:
                continue
            if skin is not None and world is None:
                world = self._world_matrices(parent)
            key = (node["mesh"], None if weights is None else weights.tobytes(), skin)
            if key not in copies:
                joints = None if skin is None else self._joint_matrices(skin, world)  # type: ignore[arg-type]
                copy = {k: v for k, v in mesh.items() if k != "weights"}
                copy["primitives"] = [dict(p) for p in mesh.get("primitives") or []]
                for original, prim in zip(mesh.get("primitives") or [], copy["primitives"], strict=True):
                    if id(original) in self.draco:
                        self.draco[id(prim)] = self.draco[id(original)]
                    self.posed[id(prim)] = self._posed_positions(prim, weights, joints)
                meshes.append(copy)
                copies[key] = len(meshes) - 1
            if skin is None:
                node["mesh"] = copies[key]
                continue
            node.pop("mesh")
            node.pop("skin")
            nodes.append({"mesh": copies[key]})
            root = i
            while root in parent:
                root = parent[root]
            for scene in self.out.get("scenes") or []:
                if isinstance(scene, dict) and root in (scene.get("nodes") or []):
                    scene["nodes"].append(len(nodes) - 1)

    def _world_matrices(self, parent: dict[int, int]) -> list[np.ndarray]:
        """Every node's 4×4 world transform (the hierarchy is a forest: `_check_scene`)."""
        nodes = self.out.get("nodes") or []
        world: list[np.ndarray | None] = [None] * len(nodes)
        for i in range(len(nodes)):
            chain = [i]
            while chain[-1] in parent and world[chain[-1]] is None:
                chain.append(parent[chain[-1]])
            above = world[chain[-1]] if world[chain[-1]] is not None else np.eye(4)
            if world[chain[-1]] is not None:
                chain.pop()
            for j in reversed(chain):
                node = nodes[j] if isinstance(nodes[j], dict) else {}
                above = above @ _local_matrix(node)
                world[j] = above
        return world  # type: ignore[return-value]

    def _joint_matrices(self, skin: Any, world: list[np.ndarray]) -> np.ndarray:
        """[J, 4, 4] world(joint) · inverseBindMatrix for each joint of skin `skin` (identity when the skin
        has no inverseBindMatrices)."""
        skins = self.out.get("skins") or []
        if not _is_index(skin, len(skins)) or not isinstance(skins[skin], dict):
            raise InputError(f"{self.doc.name}: a node names skin {skin!r}, which does not exist.", hint=_REEXPORT)
        joints = skins[skin].get("joints") or []
        if not isinstance(joints, list) or not all(_is_index(j, len(world)) for j in joints):
            raise InputError(f"{self.doc.name}: skin {skin} names joints that are not nodes.", hint=_REEXPORT)
        if len(set(joints)) != len(joints):  # glTF: each node once, which also bounds the matrices built here
            raise InputError(f"{self.doc.name}: skin {skin} names a joint node twice.", hint=_REEXPORT)
        inverse = np.tile(np.eye(4), (len(joints), 1, 1))
        if skins[skin].get("inverseBindMatrices") is not None:
            values = read_accessor(self.doc, skins[skin]["inverseBindMatrices"])
            if values.shape[1] != 16:
                raise InputError(
                    f"{self.doc.name}: skin {skin}'s inverse bind matrices have {values.shape[1]} components, not 16 (MAT4).",
                    hint=_REEXPORT,
                )
            if len(values) < len(joints):
                raise InputError(
                    f"{self.doc.name}: skin {skin} has {len(values)} inverse bind matrices for {len(joints)} joints.",
                    hint=_REEXPORT,
                )
            inverse = values[: len(joints)].astype(np.float64).reshape(-1, 4, 4).transpose(0, 2, 1)
        return np.stack([world[j] for j in joints]) @ inverse if joints else np.zeros((0, 4, 4))

    def _posed_positions(self, prim: dict[str, Any], weights: np.ndarray | None, joints: np.ndarray | None) -> np.ndarray:
        """A primitive's POSITION [V, 3] with its morph targets blended by `weights` and skinned by the joint
        matrices `joints` (either may be None)."""
        attrs, raw = prim.get("attributes") or {}, self.draco.get(id(prim), {})
        if "POSITION" not in attrs:
            raise InputError(f"{self.doc.name} has a mesh primitive without POSITION.", hint=_REEXPORT)
        positions = read_accessor(self.doc, attrs["POSITION"], raw.get("POSITION")).astype(np.float64)
        for w, target in zip(weights if weights is not None else (), prim.get("targets") or [], strict=False):
            if w != 0 and isinstance(target, dict) and target.get("POSITION") is not None:
                offset = read_accessor(self.doc, target["POSITION"])
                if offset.shape != positions.shape:
                    raise InputError(
                        f"{self.doc.name}: a morph target has {len(offset):,} positions for {len(positions):,} vertices.",
                        hint=_REEXPORT,
                    )
                positions += w * offset
        if joints is None:
            return positions
        sets = []
        for k in range(8):  # JOINTS_k / WEIGHTS_k pairs, 4 influences each
            if f"JOINTS_{k}" not in attrs or f"WEIGHTS_{k}" not in attrs:
                break
            sets.append([read_accessor(self.doc, attrs[f"{n}_{k}"], raw.get(f"{n}_{k}")) for n in ("JOINTS", "WEIGHTS")])
        if not sets:
            raise InputError(f"{self.doc.name}: a skinned mesh has no JOINTS_0 / WEIGHTS_0.", hint=_REEXPORT)
        index = np.concatenate([s[0] for s in sets], axis=1)
        amount = np.concatenate([s[1] for s in sets], axis=1)
        if index.dtype.kind not in "iu" or index.shape != amount.shape or len(index) != len(positions):
            raise InputError(f"{self.doc.name}: a skinned mesh's JOINTS / WEIGHTS do not match its vertices.", hint=_REEXPORT)
        if index.size and int(index.max()) >= len(joints):
            raise InputError(f"{self.doc.name}: a skinned mesh names joint {int(index.max())} of {len(joints)}.", hint=_REEXPORT)
        return _skinned(positions, index.astype(np.int64), amount, joints)

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


class _FlatSplit:
    """A flat-shaded primitive's triangles and, once its positions are read (`split`), the copies of its
    vertices that flat shading needs (`a3d_cli.mesh.creases.flat_vertices`): every attribute is read through
    `copies`, and the primitive is written with `faces` over them and `normals`. The memory the split takes
    is counted against the file's decode budget before the triangles are built (`_Rewriter._flat`)."""

    def __init__(self, triangles: np.ndarray) -> None:
        self.triangles = triangles  # [T, 3] int32 over the primitive's vertices
        self.source = np.zeros(0, dtype=np.int64)  # [V'] the vertex each copy copies
        self.faces = np.zeros((0, 3), dtype=np.int64)  # [T, 3] over the copies
        self.normals = np.zeros((0, 3), dtype=np.float32)  # [V', 3] flat normals

    def split(self, positions: np.ndarray) -> None:
        """Split the vertices by the normals of the faces `positions` [V, 3] give them."""
        from a3d_cli.mesh.creases import FILE_NORMAL_DEGREES, flat_vertices

        face_normals = _face_normals(np.asarray(positions, dtype=np.float64), self.triangles)  # [T, 3]
        self.source, self.faces, normals = flat_vertices(self.triangles, face_normals, FILE_NORMAL_DEGREES)
        self.triangles = np.zeros((0, 3), dtype=np.int32)  # no longer needed: `faces` replaces them
        self.normals = normals.astype(np.float32)

    def copies(self, values: np.ndarray, doc: GltfDocument, accessor: int) -> np.ndarray:
        """[V', C] an attribute's `values` [V, C] at each copy (counted against the decode budget)."""
        doc.charge(accessor, len(self.source) * values.shape[1])
        return values[self.source]


def _face_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[T, 3] float64 unit normals of `triangles` [T, 3] over `positions` [V, 3] (zero for a face without area),
    FACE_CHUNK faces at a time: the [n, 3, 3] corners gathered stay small whatever T is."""
    from a3d_cli.mesh.topology import face_normals_and_areas

    normals = np.empty((len(triangles), 3), dtype=np.float64)
    for start in range(0, len(triangles), FACE_CHUNK):
        normals[start : start + FACE_CHUNK] = face_normals_and_areas(positions, triangles[start : start + FACE_CHUNK])[0]
    return normals


def _strip_triangles(order: np.ndarray) -> np.ndarray:
    """[n − 2, 3] the triangles of a TRIANGLE_STRIP drawn through the vertices `order` [n] (n ≥ 3): triangle i is
    (o_i, o_{i+1}, o_{i+2}), every other one reversed ((o_{i+2}, o_{i+1}, o_i) for odd i), so all wind the same
    way, as glTF 2.0 §3.7.2.1 draws them (odd triangles starting at another corner); of `order`'s dtype, so int32
    for the flat split (trimesh's `triangle_strips_to_faces` gives the same triangles as int64, through a copy)."""
    triangles = np.empty((len(order) - 2, 3), dtype=order.dtype)
    triangles[:, 0], triangles[:, 1], triangles[:, 2] = order[:-2], order[1:-1], order[2:]
    triangles[1::2] = triangles[1::2, ::-1]
    return triangles


def _fan_triangles(indices: np.ndarray, prim: dict[str, Any]) -> np.ndarray:
    """A TRIANGLE_FAN primitive's indices as a triangle list (the primitive becomes TRIANGLES, which trimesh
    reads; it skips fans without a word): triangle k is (i₀, i_{k+1}, i_{k+2}), glTF 2.0 §3.7.2.1. Indices of
    other modes are returned as they are."""
    if prim.get("mode") != _FAN:
        return indices
    prim["mode"] = _TRIANGLES
    return _fan_list(indices).reshape(-1)


def _fan_list(order: np.ndarray) -> np.ndarray:
    """[max(n − 2, 0), 3] the triangles of a TRIANGLE_FAN drawn through the vertices `order` [n]: triangle k is
    (o₀, o_{k+1}, o_{k+2}), glTF 2.0 §3.7.2.1; of `order`'s dtype."""
    if len(order) < 3:
        return np.zeros((0, 3), dtype=order.dtype)
    return np.stack([np.full(len(order) - 2, order[0], dtype=order.dtype), order[1:-1], order[2:]], axis=1)


def _morph_weights(node: dict[str, Any], mesh: Any) -> np.ndarray | None:
    """The morph-target weights a node draws its mesh with (its own `weights`, else the mesh's), None when
    there are none or all are 0 (the mesh as stored)."""
    weights = node.get("weights")
    if weights is None and isinstance(mesh, dict):
        weights = mesh.get("weights")
    if not weights:
        return None
    values = np.array([float(w) for w in weights], dtype=np.float64)  # TypeError/ValueError: `core_glb` reports them
    return values if np.any(values != 0) else None


def _local_matrix(node: dict[str, Any]) -> np.ndarray:
    """A node's 4×4 local transform: its `matrix` (column-major), else T · R · S (rotation a unit quaternion
    x, y, z, w), as glTF 2.0 §3.5.3 defines it. Malformed values raise TypeError/ValueError (`core_glb` reports them)."""
    if "matrix" in node:
        return np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T
    x, y, z, w = (float(c) for c in node.get("rotation", (0.0, 0.0, 0.0, 1.0)))
    matrix = np.eye(4)
    matrix[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    matrix[:3, :3] *= np.array([float(c) for c in node.get("scale", (1.0, 1.0, 1.0))])[None, :]
    matrix[:3, 3] = [float(c) for c in node.get("translation", (0.0, 0.0, 0.0))]
    return matrix


def _skinned(positions: np.ndarray, joints: np.ndarray, weights: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Linear blend skinning: vertex v → Σ_k weights[v, k] · matrices[joints[v, k]] · v, weights normalized to
    sum 1 as three.js does for malformed assets (a vertex whose weights are all 0 follows its first joint).

    Args:
        positions: [V, 3] float64.
        joints: [V, K] joint numbers (checked < len(matrices)).
        weights: [V, K] float.
        matrices: [J, 4, 4] joint matrices, world(joint) · inverseBind.
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=1, keepdims=True)
    first = np.zeros_like(weights)
    first[:, :1] = 1.0
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), first)
    out = np.zeros_like(positions)
    for start in range(0, len(positions), SKIN_CHUNK):
        part = slice(start, start + SKIN_CHUNK)
        for k in range(joints.shape[1]):
            m = matrices[joints[part, k]]  # [n, 4, 4]
            moved = np.einsum("nij,nj->ni", m[:, :3, :3], positions[part]) + m[:, :3, 3]
            out[part] += weights[part, k, None] * moved
    return out


def _width(doc: GltfDocument, index: int) -> int:
    """Components per element of accessor `index` (its `type`; 16, the widest, when unknown: refused later)."""
    return TYPE_WIDTHS.get((doc.json["accessors"][index] or {}).get("type"), 16)


def _valid(doc: GltfDocument, index: Any) -> bool:
    return _is_index(index, len(doc.json.get("accessors") or []))


def _is_index(value: Any, size: int) -> bool:
    """Whether a JSON value is an index into a list of `size` entries (an int, not a bool, in range)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


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


def _emissive_factor(mat: dict[str, Any]) -> np.ndarray:
    """[3] a material's emitted colour as one linear factor: its `emissiveFactor` (glTF's default black) times
    its KHR_materials_emissive_strength (default 1), negatives as 0; the extension is taken off the material.

    Raises:
        ValueError, TypeError: a factor that is not three numbers, a strength that is not a number, or a
            product that is not finite (reported by `core_glb` as malformed).
    """
    factor = np.array([float(x) for x in mat.get("emissiveFactor", (0.0, 0.0, 0.0))], dtype=np.float64)
    if factor.shape != (3,):
        raise ValueError(f"an emissiveFactor has {len(factor)} components, not 3")
    extensions = mat.get("extensions")
    if isinstance(extensions, dict) and EMISSIVE_STRENGTH in extensions:
        strength = extensions.pop(EMISSIVE_STRENGTH)
        factor = factor * float((strength if isinstance(strength, dict) else {}).get("emissiveStrength", 1.0))
        if not extensions:
            mat.pop("extensions")
    if not np.isfinite(factor).all():
        raise ValueError(f"an emissive factor times its strength is {factor.tolist()}")
    return np.maximum(factor, 0.0)


def _same_uv(a: UvSet, b: UvSet) -> bool:
    """Whether two textures read the same texture coordinates: one UV set, one transform (wrap modes aside)."""
    ma, mb = (np.eye(3) if m is None else m for m in (a[1], b[1]))
    return a[0] == b[0] and np.allclose(ma, mb, rtol=0, atol=1e-12)


def _uv_transform(ext: dict[str, Any]) -> np.ndarray:
    """KHR_texture_transform as a 3×3 matrix on [u, v, 1]: T(offset) · R(rotation) · S(scale).

    The rotation turns UVs counter-clockwise as seen in UV space, whose v axis points down (glTF's top-left
    origin): u' = cos·u + sin·v, v' = −sin·u + cos·v. This is what the extension's prose and its example
    (offset [0, 1], rotation π/2, scale 0.5 reads the image's lower-left quadrant) define, and what Khronos'
    glTF-Sample-Viewer, three.js and Babylon.js do; the GLSL listing in the extension's text has the
    opposite sign (KhronosGroup/glTF issue 1563).
    """
    ox, oy = (float(x) for x in ext.get("offset", (0.0, 0.0)))  # TypeError/ValueError: the caller's InputError
    sx, sy = (float(x) for x in ext.get("scale", (1.0, 1.0)))
    r = float(ext.get("rotation", 0.0))
    c, s = np.cos(r), np.sin(r)
    translation = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=np.float64)
    rotation = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)
    return translation @ rotation @ np.diag([sx, sy, 1.0])


def _wrap_mode(value: Any) -> int:
    """A sampler's wrapS / wrapT value as one of glTF's wrap modes: REPEAT for anything glTF does not define."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value in WRAP_MODES else REPEAT


def _mag_filter(value: Any) -> int:
    """A sampler's magFilter as NEAREST or LINEAR: LINEAR for an absent value and for anything glTF does not
    define (glTF allows 9728 and 9729 only; three.js falls back to LINEAR likewise)."""
    return NEAREST if isinstance(value, int) and not isinstance(value, bool) and value == NEAREST else LINEAR


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


