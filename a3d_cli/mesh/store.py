"""The processed mesh on disk: `RUN/source/mesh.glb`, the mesh whose vertex order the splat binding uses.

Why a separate file from the user's original: loaders reorder and split vertices differently (trimesh splits
OBJ vertices at UV seams, Blender merges them, simplification changes everything), so "re-load the original"
cannot promise the same vertex order. This GLB is written once by `a3d prepare` after merging, normalization
and simplification, and is the one mesh later stages read.

Layout (guaranteed, checked by `load_processed_mesh`):
- exactly one glTF mesh with one triangle primitive, one node, no transform;
- POSITION holds the V vertices in binding order, in a3d's *normalized* frame (map back to the asset's own
  frame with `source/normalization.json`'s `inverse`);
- TEXCOORD_0 + a baseColorTexture (the packed atlas, embedded, at most `appearance.ATLAS_IMAGE_TEXELS` texels
  and `appearance.ATLAS_SIDE` a side)
  when the asset had textures, with the alpha mode of
  the asset's materials (OPAQUE unless a part was MASK or BLEND; MASK alpha is already 0 or 1), and a
  sampler naming NEAREST filtering when the texture is read so (`SurfaceMesh.mag_filter`), none otherwise;
- COLOR_0 (linear, as glTF defines it) when any vertex colour differs from white;
- NORMAL: `SurfaceMesh.shading_normals`, smooth vertex normals equal across UV seams, except at hard edges
  (`SurfaceMesh.normal_groups`: found by a3d in a mesh whose file gave no normals, `a3d_cli.mesh.creases`,
  held by the file's own normals, or every turn of a glTF primitive without NORMAL, which glTF shades flat):
  there the copies of a point hold different normals, which is how
  `load_processed_mesh` finds those edges again. glTF viewers shade a primitive without normals flat, so
  `lift/model.glb`, written here too, would look faceted;
- every bufferView of vertex data or indices names its `target` (ARRAY_BUFFER / ELEMENT_ARRAY_BUFFER), as
  glTF asks (trimesh leaves it out: the Khronos validator's BUFFER_VIEW_TARGET_MISSING hints), like
  `export/animated.glb`.

`mesh-animate` reads it with `read_processed_mesh`, which keeps the atlas as the PNG stored here when that is
what encoding its texels would write again (the atlas as `prepare` writes it), so the animated GLB carries those
bytes and no texel is decoded or encoded on the way; any other image is decoded as `load_processed_mesh` does.
"""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.io.atomic import atomic_path
from a3d_cli.mesh.appearance import LINEAR, srgb_to_linear
from a3d_cli.mesh.gltf_animated import REPEAT, EncodedTexture, texture_png, texture_sampler
from a3d_cli.mesh.surface import SurfaceMesh

if TYPE_CHECKING:
    from a3d_cli.mesh.gltf_accessors import GltfDocument


def mesh_glb_bytes(mesh: SurfaceMesh) -> bytes:
    """Encode a SurfaceMesh as a single-primitive GLB (see the module docstring)."""
    import trimesh
    from PIL import Image
    from trimesh.visual import ColorVisuals, TextureVisuals
    from trimesh.visual.material import PBRMaterial

    from a3d_cli.mesh.gltf_accessors import pack_glb, parse_gltf

    linear = np.concatenate([srgb_to_linear(mesh.vertex_colors[:, :3]), mesh.vertex_colors[:, 3:]], axis=1)
    color0 = np.round(np.clip(linear, 0, 1) * 255).astype(np.uint8)  # [V, 4]
    has_color = bool((color0 != 255).any())
    png = None
    if mesh.texture is not None:
        opaque = mesh.alpha_mode == "OPAQUE"
        png = texture_png(mesh.texture, opaque)
        material = PBRMaterial(
            baseColorTexture=Image.new("RGB" if opaque else "RGBA", (1, 1)),  # a stand-in: trimesh's PNG of it is swapped for ours
            baseColorFactor=[255, 255, 255, 255],
            metallicFactor=0.0,
            roughnessFactor=1.0,
            alphaMode=mesh.alpha_mode,
            alphaCutoff=0.5 if mesh.alpha_mode == "MASK" else None,
        )
        visual: object = TextureVisuals(uv=mesh.uvs, material=material)
        if has_color:
            visual.vertex_attributes["color"] = color0  # type: ignore[attr-defined]
    else:
        visual = ColorVisuals(vertex_colors=color0) if has_color else None
    normals = mesh.shading_normals()  # [V, 3]
    tm = trimesh.Trimesh(
        vertices=mesh.vertices, faces=mesh.faces, vertex_normals=normals, visual=visual, process=False, validate=False
    )
    doc, binary = parse_gltf(trimesh.Scene(tm).export(file_type="glb", include_normals=True), "the GLB trimesh wrote")
    binary = bytes(binary or b"")
    if png is not None:
        binary = _with_view_replaced(doc, binary, doc["images"][0]["bufferView"], png)
    _set_buffer_view_targets(doc)
    if mesh.texture is not None and mesh.mag_filter != LINEAR:  # trimesh names no sampler: LINEAR to viewers
        doc["samplers"] = [texture_sampler(mesh.mag_filter)]
        for texture in doc.get("textures", []):
            texture["sampler"] = 0
    return pack_glb(doc, binary)


def _with_view_replaced(doc: dict, binary: bytes, index: int, data: bytes) -> bytes:
    """`binary` (the one buffer of `doc`) with bufferView `index` holding `data`: the views laid out again in
    their order, each on a 4-byte boundary, and `doc`'s byteOffsets, byteLengths and buffer length updated."""
    views = doc["bufferViews"]
    out = bytearray()
    for i in sorted(range(len(views)), key=lambda i: int(views[i].get("byteOffset", 0))):
        start = int(views[i].get("byteOffset", 0))
        chunk = data if i == index else binary[start : start + int(views[i]["byteLength"])]
        out += b"\0" * (-len(out) % 4)
        views[i]["byteOffset"], views[i]["byteLength"] = len(out), len(chunk)
        out += chunk
    doc["buffers"][0]["byteLength"] = len(out)
    return bytes(out)


def _set_buffer_view_targets(doc: dict) -> None:
    """Set `target` on the bufferViews of `doc` that only vertex attributes (ARRAY_BUFFER) or only indices
    (ELEMENT_ARRAY_BUFFER) read; a view read otherwise too (an image, a shared view) is left as it is."""
    from a3d_cli.mesh.gltf_animated import ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER

    accessors, views = doc.get("accessors", []), doc.get("bufferViews", [])
    reads: list[tuple[int, int | None]] = []  # (accessor, the target it asks of its view)
    for mesh in doc.get("meshes", []):
        for prim in mesh.get("primitives", []):
            reads += [(acc, ARRAY_BUFFER) for acc in prim.get("attributes", {}).values()]
            if "indices" in prim:
                reads.append((prim["indices"], ELEMENT_ARRAY_BUFFER))
    read = {acc for acc, _ in reads}
    reads += [(i, None) for i in range(len(accessors)) if i not in read]  # none today: pins the view as it is
    uses: dict[int, set[int | None]] = {}
    for acc, target in reads:
        uses.setdefault(accessors[acc].get("bufferView", -1), set()).add(target)
    for image in doc.get("images", []):
        uses.setdefault(image.get("bufferView", -1), set()).add(None)
    for index, kinds in uses.items():
        if 0 <= index < len(views) and len(kinds) == 1 and None not in kinds:
            views[index]["target"] = kinds.pop()


def save_processed_mesh(path: str | os.PathLike[str], mesh: SurfaceMesh) -> None:
    """Write `mesh` as `mesh.glb`, atomically."""
    data = mesh_glb_bytes(mesh)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)


@dataclass(frozen=True)
class ProcessedMesh:
    """`source/mesh.glb` as `a3d mesh-animate` reads it (`read_processed_mesh`): its atlas decoded only where needed.

    Attributes:
        mesh: the processed mesh; without texture and UVs when `atlas` holds the texture.
        uvs: [V, 2] texture coordinates (OBJ/OpenGL origin, as `SurfaceMesh.uvs`), None for an untextured mesh.
        atlas: the atlas as stored, undecoded (`EncodedTexture`), or None: no texture, or one decoded into `mesh`.
    """

    mesh: SurfaceMesh
    uvs: np.ndarray | None  # [V, 2]
    atlas: EncodedTexture | None


def load_processed_mesh(path: str | os.PathLike[str], expected_vertices: int | None = None) -> SurfaceMesh:
    """Read `RUN/source/mesh.glb` back with its vertex order intact.

    Args:
        path: the GLB written by `save_processed_mesh`.
        expected_vertices: when given (e.g. `len(binding.vertex_splat)`), the vertex count must match.

    The texture is read at the size prepare wrote it (an atlas may be larger than any one texture the asset
    had), never reduced: `prepare` keeps its atlas within `appearance.ATLAS_IMAGE_TEXELS` texels and
    `appearance.ATLAS_SIDE` a side, and a file that declares more, or names an image outside itself, is not one
    a3d wrote and is refused before any image is decoded (a run folder may come from anyone).

    Raises:
        InputError: missing file, not a single-primitive mesh, a vertex count that does not match, or images
            that are not embedded or declare more texels (or a longer side) than a3d's atlas holds.
    """
    path = Path(path)
    doc, count = _checked_document(path, expected_vertices)
    return _load(path, doc, doc, count)


def read_processed_mesh(path: str | os.PathLike[str], expected_vertices: int | None = None) -> ProcessedMesh:
    """Read `RUN/source/mesh.glb` as `load_processed_mesh` does, but keep its atlas encoded where that writes the
    same texture: `export/animated.glb` then carries the PNG's bytes as they are, and no texel is decoded or
    encoded again (`_stored_atlas` says when: the atlas as `prepare` writes it, PNG bytes a3d's encoder would
    make of the texels the loader would read). Otherwise the atlas is decoded into the mesh, as
    `load_processed_mesh` does. The checks are `load_processed_mesh`'s either way.

    Raises:
        InputError: as `load_processed_mesh`.
    """
    path = Path(path)
    doc, count = _checked_document(path, expected_vertices)
    atlas = _stored_atlas(path, doc)
    if atlas is None:
        mesh = _load(path, doc, doc, count)
        return ProcessedMesh(mesh, mesh.uvs, None)
    mesh = _load(path, doc, _without_pixels(doc), count)
    if mesh.texture is None:  # the loader found no texture to read after all: as `load_processed_mesh` finds it
        mesh = _load(path, doc, doc, count)
        return ProcessedMesh(mesh, mesh.uvs, None)
    return ProcessedMesh(replace(mesh, uvs=None, texture=None), mesh.uvs, atlas)


def _checked_document(path: Path, expected_vertices: int | None) -> tuple[GltfDocument, int]:
    """The processed mesh's document (read once) and vertex count, after the checks that need no pixel: it
    exists, holds one mesh primitive of `expected_vertices` vertices, and its images are a3d's (`_check_images`).

    Raises:
        InputError: as `load_processed_mesh`.
    """
    from a3d_cli.mesh.gltf_accessors import accessor_count, read_document

    if not path.is_file():
        raise InputError(
            f"The processed mesh {path} does not exist.", hint="Run `a3d prepare MESH -o RUN` on a mesh input."
        )
    doc = read_document(path, resolver=None)  # a GLB: its one buffer is its own BIN chunk
    meshes = doc.json.get("meshes")
    primitives = _only(meshes) and _only(meshes).get("primitives")  # type: ignore[union-attr]
    if _only(primitives) is None:
        raise InputError(f"{path} is not an a3d processed mesh (it must hold exactly one mesh primitive).")
    attributes = primitives[0].get("attributes")  # type: ignore[index]
    count = accessor_count(doc, attributes.get("POSITION") if isinstance(attributes, dict) else None)
    if expected_vertices is not None and count != expected_vertices:
        raise InputError(
            f"{path} has {count} vertices but the splat binding expects {expected_vertices}.",
            hint="Re-run `a3d prepare --force`.",
        )
    _check_images(path, doc)
    return doc, count


def _load(path: Path, doc: GltfDocument, read: GltfDocument, count: int) -> SurfaceMesh:
    """The processed mesh at `path` (`doc`, its document) as `load_mesh` reads document `read` (`doc` itself, or
    `_without_pixels(doc)`), with its hard edges (`_written_normal_groups`).

    Raises:
        InputError: a vertex no face uses (the vertex order would not be the binding's), or as `load_mesh`.
    """
    from a3d_cli.mesh import appearance
    from a3d_cli.mesh.load import load_mesh

    mesh = load_mesh(  # vertices as written: a3d's own file is never split
        path, texture_limit=appearance.ATLAS_IMAGE_TEXELS, document=read, flat_without_normals=False
    )
    if mesh.num_vertices != count:  # a face-less vertex would have been dropped; never written by a3d
        raise InputError(f"{path} has vertices that no face uses, so its vertex order cannot be trusted.")
    return replace(mesh, normal_groups=_written_normal_groups(path, doc, mesh))


def _check_images(path: Path, doc: GltfDocument) -> None:
    """Refuse a processed mesh whose images a3d did not write: one that is not embedded in the GLB (a3d embeds
    its one texture), one longer a side than a3d's atlas (`appearance.ATLAS_SIDE`), or images that declare more
    texels together than the atlas holds (`appearance.ATLAS_IMAGE_TEXELS`), read from their headers before any
    is decoded.

    Raises:
        InputError: as said, with a hint to run `prepare` again.
    """
    from a3d_cli.mesh import appearance

    hint = "Re-run `a3d prepare --force` to write it again."
    declared = 0
    for i, image in enumerate(doc.json.get("images") or []):
        if not isinstance(image, dict) or not isinstance(image.get("bufferView"), int):
            raise InputError(f"{path} is not an a3d processed mesh: its image {i} is not embedded in it.", hint=hint)
        columns, rows = _declared_size(bytes(doc.view(image["bufferView"])), f"{path}'s texture image {i}", hint)
        declared += columns * rows
        if max(columns, rows) > appearance.ATLAS_SIDE:
            raise InputError(
                f"{path} is not an a3d processed mesh: its image {i} is {columns}×{rows} texels, longer a side than "
                f"a3d's texture atlas ({appearance.ATLAS_SIDE:,}).",
                hint=hint,
            )
    if declared > appearance.ATLAS_IMAGE_TEXELS:
        raise InputError(
            f"{path} is not an a3d processed mesh: its images declare {declared:,} texels, more than a3d's texture "
            f"atlas holds ({appearance.ATLAS_IMAGE_TEXELS:,}).",
            hint=hint,
        )


def _declared_size(data: bytes, name: str, hint: str) -> tuple[int, int]:
    """(columns, rows) an embedded image's header declares, read without decoding its pixels.

    Raises:
        InputError: the image does not open (`a3d_cli.io.images.open_image`), or declares more pixels than
            Pillow decodes; either way with `hint` (prepare again): the file is a3d's own, not an image the
            user made and could downscale.
    """
    from a3d_cli.io.images import open_image

    try:
        with open_image(io.BytesIO(data), name, hint) as im:
            return im.size
    except InputError as exc:
        raise InputError(str(exc), hint=hint) from None


_MATERIAL_KEYS = {"name", "pbrMetallicRoughness", "alphaMode", "alphaCutoff", "doubleSided", "extras"}
_PBR_KEYS = {"baseColorTexture", "baseColorFactor", "metallicFactor", "roughnessFactor"}
_SAMPLER_KEYS = {"magFilter", "minFilter", "wrapS", "wrapT", "name"}


def _stored_atlas(path: Path, doc: GltfDocument) -> EncodedTexture | None:
    """The processed mesh's atlas as stored, when writing those bytes gives what decoding it and encoding it again
    (`texture_png` of the texels the loader reads) gives; else None, and it is decoded.

    That is the atlas as `prepare` writes it (`mesh_glb_bytes`): a document laid out as `prepare` lays it out
    (`_atlas_image`) and a plain PNG (`a3d_cli.io.plain_png`: nothing but 8-bit texels, the stream whole and of
    the declared size, checked undecoded), RGB for an OPAQUE material, RGBA for MASK or BLEND. An RGB atlas is
    kept without decoding a texel. An RGBA one is decoded once to count its alpha levels (`_alpha_counts`), and
    kept only when a texel is see-through (`texture_png` writes an opaque texture as RGB) and, for MASK, every
    alpha is 0 or 255 (the loader sets others to one of them).
    """
    from a3d_cli.io.plain_png import plain_png

    found = _atlas_image(doc)
    if found is None:
        return None
    view, mode = found
    data = bytes(doc.view(view))
    png = plain_png(data)
    if png is None or png.alpha != (mode != "OPAQUE"):
        return None
    if not png.alpha:
        return EncodedTexture(data, translucent=False, shape=(png.height, png.width))
    counts = _alpha_counts(path, data)
    if not any(counts[:255]) or (mode == "MASK" and any(counts[1:255])):
        return None
    return EncodedTexture(data, translucent=True, shape=(png.height, png.width))


def _atlas_image(doc: GltfDocument) -> tuple[int, str] | None:
    """(bufferView of the image, alpha mode) when the document is laid out as `prepare` writes it, so that the
    loader reads the image's texels unchanged: one buffer (the BIN chunk), one material whose base colour is
    one texture's one embedded PNG read through TEXCOORD_0, without factor, emission, other textures, texture
    transform or any extension, a sampler (if any) that repeats, MASK at glTF's cutoff 0.5; None otherwise."""
    gltf = doc.json
    material, texture, image, buffer = (_only(gltf.get(key)) for key in ("materials", "textures", "images", "buffers"))
    if material is None or texture is None or image is None or buffer is None or "uri" in buffer:
        return None
    pbr = material.get("pbrMetallicRoughness")
    if not set(material) <= _MATERIAL_KEYS or not isinstance(pbr, dict) or not set(pbr) <= _PBR_KEYS:
        return None
    factor = pbr.get("baseColorFactor", [1.0] * 4)
    if not (isinstance(factor, list) and len(factor) == 4 and all(type(c) in (int, float) and c == 1 for c in factor)):
        return None
    info = pbr.get("baseColorTexture")
    if not (isinstance(info, dict) and set(info) <= {"index", "texCoord"}):
        return None
    if not (_is(info.get("index"), 0) and _is(info.get("texCoord", 0), 0) and _is(texture.get("source"), 0)):
        return None
    if not (set(texture) <= {"source", "sampler", "name"} and _repeats(gltf, texture)):
        return None
    if not (set(image) <= {"bufferView", "mimeType", "name"} and image.get("mimeType") == "image/png"):
        return None
    mode, cutoff = material.get("alphaMode", "OPAQUE"), material.get("alphaCutoff", 0.5)
    if mode not in ("OPAQUE", "MASK", "BLEND") or type(cutoff) not in (int, float) or cutoff != 0.5:
        return None
    return image["bufferView"], mode


def _only(items: object) -> dict | None:
    """The one JSON object of a list holding exactly one, else None."""
    if isinstance(items, list) and len(items) == 1 and isinstance(items[0], dict):
        return items[0]
    return None


def _is(value: object, number: int) -> bool:
    """Whether a JSON value is the integer `number` (not a float, not a boolean)."""
    return type(value) is int and value == number


def _repeats(gltf: dict, texture: dict) -> bool:
    """Whether the texture names no sampler, or one that repeats both ways (glTF's default) and has only
    filters besides: no other wrap mode extends the image, and no extension changes how it is read."""
    if "sampler" not in texture:
        return True
    samplers = gltf.get("samplers")
    index = texture["sampler"]
    if not (isinstance(samplers, list) and type(index) is int and 0 <= index < len(samplers)):
        return False
    sampler = samplers[index]
    return (
        isinstance(sampler, dict)
        and set(sampler) <= _SAMPLER_KEYS
        and all(_is(sampler.get(key, REPEAT), REPEAT) for key in ("wrapS", "wrapT"))
    )


def _alpha_counts(path: Path, data: bytes) -> list[int]:
    """[256] how many texels of an RGBA PNG have each alpha level, from one decoding of it (not kept).

    Raises:
        InputError: the image does not decode, with the hint to prepare again.
    """
    from a3d_cli.io.images import open_image

    hint = "Re-run `a3d prepare --force` to write it again."
    try:
        with open_image(io.BytesIO(data), f"{path}'s texture image 0", hint) as image:
            return image.histogram()[768:]  # R, G, B, then A: 256 levels each
    except InputError as exc:
        raise InputError(str(exc), hint=hint) from None


def _without_pixels(doc: GltfDocument) -> GltfDocument:
    """`doc` with its one image (`_atlas_image`) swapped for a 1 × 1 PNG of the same channels, held in a buffer
    of its own: what the loader reads for everything but the atlas's texels when those stay encoded. Geometry,
    UVs, colours, alpha mode and filter come out as from `doc`; the texture is the stand-in, which the caller
    drops."""
    from a3d_cli.mesh.gltf_accessors import GltfDocument

    gltf = copy.deepcopy(doc.json)
    opaque = gltf["materials"][0].get("alphaMode", "OPAQUE") == "OPAQUE"
    stand_in = texture_png(np.full((1, 1, 4), 255, dtype=np.uint8), opaque=opaque)
    gltf["buffers"].append({"byteLength": len(stand_in)})
    gltf["bufferViews"].append({"buffer": len(gltf["buffers"]) - 1, "byteOffset": 0, "byteLength": len(stand_in)})
    gltf["images"][0]["bufferView"] = len(gltf["bufferViews"]) - 1
    return GltfDocument(gltf, [*doc.buffers, stand_in], doc.name)


def _written_normal_groups(path: Path, doc: GltfDocument, mesh: SurfaceMesh) -> np.ndarray | None:
    """The `normal_groups` the NORMAL of a processed mesh implies (`creases.normal_groups_from_normals`):
    None for a file without NORMAL, or whose copies of each point share their normal (no hard edges)."""
    from a3d_cli.mesh.creases import normal_groups_from_normals
    from a3d_cli.mesh.gltf_accessors import read_accessor

    attributes = doc.json["meshes"][0]["primitives"][0]["attributes"]
    if "NORMAL" not in attributes:
        return None
    normals = read_accessor(doc, attributes["NORMAL"])  # [V, 3]
    if normals.shape != (mesh.num_vertices, 3):
        raise InputError(f"{path} has {len(normals)} normals for {mesh.num_vertices} vertices.", hint="Re-run `a3d prepare --force`.")
    return normal_groups_from_normals(mesh.vertices, normals)
