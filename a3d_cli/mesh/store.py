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
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.io.atomic import atomic_path
from a3d_cli.mesh.appearance import LINEAR, srgb_to_linear
from a3d_cli.mesh.gltf_animated import texture_png, texture_sampler
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
    import pygltflib

    from a3d_cli.mesh import appearance
    from a3d_cli.mesh.gltf_accessors import read_document
    from a3d_cli.mesh.load import load_mesh

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"The processed mesh {path} does not exist.", hint="Run `a3d prepare MESH -o RUN` on a mesh input."
        )
    gltf = pygltflib.GLTF2.load_binary_from_file_object(io.BytesIO(path.read_bytes()))
    if len(gltf.meshes) != 1 or len(gltf.meshes[0].primitives) != 1:
        raise InputError(f"{path} is not an a3d processed mesh (it must hold exactly one mesh primitive).")
    count = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION].count
    if expected_vertices is not None and count != expected_vertices:
        raise InputError(
            f"{path} has {count} vertices but the splat binding expects {expected_vertices}.",
            hint="Re-run `a3d prepare --force`.",
        )
    doc = read_document(path, resolver=None)  # a GLB: its one buffer is its own BIN chunk
    _check_images(path, doc)
    mesh = load_mesh(path, texture_limit=appearance.ATLAS_IMAGE_TEXELS, flat_without_normals=False)  # vertices as written
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
