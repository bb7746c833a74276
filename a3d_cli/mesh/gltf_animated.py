"""Write an animated GLB: one mesh, animated by one morph target per frame or by a linear-blend skin.

Why morph targets: a3d moves every vertex of a fixed-topology mesh independently (no skeleton), and a
morph target per frame is the one glTF 2.0 encoding of per-vertex trajectories that every viewer and DCC
tool imports (three.js `AnimationMixer`, Blender shape keys, Babylon.js, model-viewer). Frame k is shown by
the weight vector that is 1 on target k and 0 elsewhere, so the decoded positions are exactly
`POSITION + target_k.POSITION`.

A skin (`write_skinned_glb`) is the other encoding every engine imports: a skeleton of joints with keyed
rotations and translations, and per-vertex joint indices and weights (`a3d_cli.mesh.skinning` fits one to
the per-vertex motion). It is what games and rigs edit, retarget and blend, and it is far smaller.

The files are written by our own code (no glTF library at run time): a GLB container with a JSON chunk and
one BIN chunk. Layout of the BIN chunk, every bufferView starting on a 4-byte boundary:

    morph targets: indices | POSITION | NORMAL | TEXCOORD_0 | COLOR_0 | per frame: ΔPOSITION [, ΔNORMAL] |
                   embedded images | key times | key weights
    skin:          indices | POSITION | NORMAL | TEXCOORD_0 | COLOR_0 | JOINTS_0 | WEIGHTS_0 |
                   [per frame: residual ΔPOSITION] | inverse bind matrices | embedded images | key times |
                   per bone: translation keys, rotation keys [| residual weight keys]

Conventions:

- Positions are written as given (the caller puts them in the asset's original frame, +Y up as glTF).
- NORMAL is one area-weighted normal per position: the copies of a vertex along a UV seam share it, so
  viewers shade the surface without creases at its texture seams (per frame too, as morph-target deltas).
  With `normal_groups` (hard edges: `SurfaceMesh.normal_groups`) one per group instead.
- `uvs` are taken with the OBJ/OpenGL origin (bottom-left, v up), which is what trimesh and most mesh
  loaders hold, and flipped to glTF's top-left origin on write (v' = 1 − v).
- Animation keys sit at t_k = k / fps. With `loop=True` one more key at F / fps returns to frame 0, so a
  looping player shows every frame for 1/fps (STEP) or blends the last frame back into the first (LINEAR).

Examples:
    >>> write_animated_glb("animated.glb", vertices, faces, frames, uvs=uvs,
    ...                    material=MeshMaterial(base_color_texture=png_bytes), fps=8.0)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from a3d_cli import __version__
from a3d_cli.io.atomic import atomic_write_bytes
from a3d_cli.mesh.gltf_accessors import pack_glb
from a3d_cli.mesh.topology import NO_FACE_NORMAL, seam_copies, vertex_normals

if TYPE_CHECKING:
    from a3d_cli.mesh.surface import SurfaceMesh


# glTF enums
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT = 5126
UNSIGNED_SHORT = 5123
UNSIGNED_BYTE = 5121
UNSIGNED_INT = 5125
TRIANGLES = 4
NEAREST_FILTER, LINEAR_FILTER = 9728, 9729
NEAREST_MIPMAP_NEAREST, LINEAR_MIPMAP_LINEAR = 9984, 9987
REPEAT = 10497

Interpolation = Literal["STEP", "LINEAR"]


@dataclass(frozen=True)
class MeshMaterial:
    """A glTF metallic-roughness material with optional embedded textures.

    Attributes:
        base_color_factor: RGBA multiplier of the base colour (linear).
        metallic_factor: 0 for dielectrics (most generated assets), 1 for metals.
        roughness_factor: 0 mirror … 1 fully rough.
        base_color_texture: encoded PNG or JPEG bytes of the albedo texture (sRGB), or None.
        metallic_roughness_texture: encoded image (G = roughness, B = metallic, as glTF), or None.
        normal_texture: encoded tangent-space normal map, or None.
        double_sided: render back faces (generated meshes often have open or flipped parts).
        alpha_mode: "OPAQUE", "MASK" or "BLEND" (glTF's names).
        alpha_cutoff: threshold used when alpha_mode is "MASK".
        name: material name shown in DCC tools.
        mag_filter: the textures' magnification filter, LINEAR_FILTER or NEAREST_FILTER (crisp texels: pixel art).
    """

    base_color_factor: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    metallic_factor: float = 0.0
    roughness_factor: float = 1.0
    base_color_texture: bytes | None = None
    metallic_roughness_texture: bytes | None = None
    normal_texture: bytes | None = None
    double_sided: bool = False
    alpha_mode: Literal["OPAQUE", "MASK", "BLEND"] = "OPAQUE"
    alpha_cutoff: float = 0.5
    name: str = "material"
    mag_filter: int = LINEAR_FILTER

    def __post_init__(self) -> None:
        if len(self.base_color_factor) != 4:
            raise ValueError(f"base_color_factor must have 4 values (RGBA), got {self.base_color_factor}")
        if self.alpha_mode not in ("OPAQUE", "MASK", "BLEND"):
            raise ValueError(f"alpha_mode must be OPAQUE, MASK or BLEND, got {self.alpha_mode!r}")


def image_mime_type(data: bytes) -> str:
    """glTF `mimeType` of encoded image bytes (glTF core allows PNG and JPEG only).

    Raises:
        ValueError: the bytes are neither PNG nor JPEG.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    raise ValueError("textures must be PNG or JPEG bytes (glTF 2.0 core formats); re-encode the image first")


class _GlbBuilder:
    """Accumulates bufferViews, accessors and images for one binary buffer (4-byte aligned views)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.offset = 0
        self.buffer_views: list[dict] = []
        self.accessors: list[dict] = []
        self.images: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.offset) % 4
        if pad:
            self.chunks.append(b"\x00" * pad)
            self.offset += pad
        bv: dict = {"buffer": 0, "byteOffset": self.offset, "byteLength": len(data)}
        if target is not None:
            bv["target"] = target
        self.chunks.append(data)
        self.offset += len(data)
        self.buffer_views.append(bv)
        return len(self.buffer_views) - 1

    def accessor(
        self, array: np.ndarray, type_: str, target: int | None = None, *, min_max: bool = False, component: int = FLOAT
    ) -> int:
        """Add a tightly packed accessor; `min_max` stores the exact per-component bounds of the data."""
        arr = np.ascontiguousarray(array)
        acc: dict = {
            "bufferView": self.view(arr.tobytes(), target),
            "componentType": component,
            "count": int(arr.shape[0]),
            "type": type_,
        }
        if min_max:
            flat = arr.reshape(arr.shape[0], -1)
            # Python floats hold float32 values exactly, so the JSON bounds equal the stored data's.
            acc["min"] = [float(x) if component == FLOAT else int(x) for x in flat.min(axis=0)]
            acc["max"] = [float(x) if component == FLOAT else int(x) for x in flat.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def image(self, data: bytes, name: str) -> int:
        self.images.append({"bufferView": self.view(data), "mimeType": image_mime_type(data), "name": name})
        return len(self.images) - 1

    def binary(self) -> list[bytes]:
        """The buffer's pieces in order, padded to a multiple of 4 bytes: `pack_glb` joins them once, into the
        file (the buffer holds the embedded images, a texture atlas of a hundred megabytes or more)."""
        return [*self.chunks, b"\x00" * ((-self.offset) % 4)]


def _check_inputs(
    vertices: np.ndarray, faces: np.ndarray, frames: np.ndarray, uvs: np.ndarray | None, fps: float
) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape [V, 3], got {list(vertices.shape)}")
    v = vertices.shape[0]
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces must have shape [T, 3] with T >= 1, got {list(faces.shape)}")
    if faces.min() < 0 or faces.max() >= v:
        raise ValueError(f"faces index vertices outside [0, {v})")
    if frames.ndim != 3 or frames.shape[1:] != (v, 3) or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape [F, V, 3] = [F, {v}, 3], got {list(frames.shape)}")
    if uvs is not None and uvs.shape != (v, 2):
        raise ValueError(f"uvs must have shape [V, 2] = [{v}, 2], got {list(uvs.shape)}")
    if not (np.isfinite(vertices).all() and np.isfinite(frames).all()):
        raise ValueError("vertices and frames must be finite")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def _normal_sharing(vertices: np.ndarray, normal_groups: np.ndarray | None) -> np.ndarray:
    """[V] which vertices share a normal: `normal_groups` (checked) or, when None, the copies of each position."""
    if normal_groups is None:
        return seam_copies(vertices)
    groups = np.asarray(normal_groups)
    if groups.shape != (vertices.shape[0],) or not np.issubdtype(groups.dtype, np.integer) or (groups < 0).any():
        raise ValueError(f"normal_groups must be [V] = [{vertices.shape[0]}] integers >= 0, got {list(groups.shape)}")
    return groups.astype(np.int64)


def _mesh_primitive(
    b: _GlbBuilder,
    vertices: np.ndarray,  # [V, 3] float64
    faces: np.ndarray,  # [T, 3]
    uvs: np.ndarray | None,  # [V, 2]
    colors: np.ndarray | None,  # [V, 4]
    sharing: np.ndarray,  # [V]
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Indices and vertex attributes of the base mesh; vertices with one `sharing` number share a normal.

    Returns:
        (primitive JSON without material/targets, float32 positions [V, 3], unit normals [V, 3]).
    """
    v = vertices.shape[0]
    index_type = UNSIGNED_SHORT if v <= 0xFFFF else UNSIGNED_INT
    indices = faces.reshape(-1).astype(np.uint16 if index_type == UNSIGNED_SHORT else np.uint32)  # [3T]
    attributes: dict[str, int] = {}
    idx_acc = b.accessor(indices, "SCALAR", ELEMENT_ARRAY_BUFFER, component=index_type)
    base = vertices.astype(np.float32)  # [V, 3]
    attributes["POSITION"] = b.accessor(base, "VEC3", ARRAY_BUFFER, min_max=True)
    base_n = vertex_normals(base, faces, fallback=NO_FACE_NORMAL, welded=sharing).astype(np.float32)  # [V, 3]
    attributes["NORMAL"] = b.accessor(base_n, "VEC3", ARRAY_BUFFER)
    if uvs is not None:
        gl_uv = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1).astype(np.float32)  # [V, 2] top-left origin
        attributes["TEXCOORD_0"] = b.accessor(gl_uv, "VEC2", ARRAY_BUFFER)
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float32)
        if colors.shape != (v, 4) or not np.isfinite(colors).all():
            raise ValueError(f"colors must be finite with shape [V, 4] = [{v}, 4], got {list(colors.shape)}")
        attributes["COLOR_0"] = b.accessor(np.clip(colors, 0.0, 1.0), "VEC4", ARRAY_BUFFER)
    primitive = {"attributes": attributes, "indices": idx_acc, "material": 0, "mode": TRIANGLES}
    return primitive, base, base_n


def _material(b: _GlbBuilder, material: MeshMaterial, has_uvs: bool) -> tuple[dict, list[dict]]:
    """(material JSON, textures JSON) with the textures' images embedded in the buffer."""
    mat: dict = {
        "name": material.name,
        "pbrMetallicRoughness": {
            "baseColorFactor": [float(c) for c in material.base_color_factor],
            "metallicFactor": float(material.metallic_factor),
            "roughnessFactor": float(material.roughness_factor),
        },
        "doubleSided": bool(material.double_sided),
        "alphaMode": material.alpha_mode,
    }
    if material.alpha_mode == "MASK":
        mat["alphaCutoff"] = float(material.alpha_cutoff)
    textures: list[dict] = []
    has_texture = any(
        t is not None
        for t in (material.base_color_texture, material.metallic_roughness_texture, material.normal_texture)
    )
    if has_texture and not has_uvs:
        raise ValueError("a textured material needs per-vertex uvs")

    def add_texture(data: bytes, label: str) -> dict:
        textures.append({"sampler": 0, "source": b.image(data, label)})
        return {"index": len(textures) - 1, "texCoord": 0}

    if material.base_color_texture is not None:
        mat["pbrMetallicRoughness"]["baseColorTexture"] = add_texture(material.base_color_texture, "base_color")
    if material.metallic_roughness_texture is not None:
        mat["pbrMetallicRoughness"]["metallicRoughnessTexture"] = add_texture(
            material.metallic_roughness_texture, "metallic_roughness"
        )
    if material.normal_texture is not None:
        mat["normalTexture"] = add_texture(material.normal_texture, "normal")
    return mat, textures


def _key_times(b: _GlbBuilder, frames: int, fps: float, loop: bool) -> tuple[int, list[int]]:
    """Accessor of key times k / fps (one more at F / fps when looping) and the frame each key shows."""
    order = list(range(frames)) + ([0] if loop else [])
    times = (np.arange(len(order), dtype=np.float64) / fps).astype(np.float32)  # [K]
    return b.accessor(times, "SCALAR", min_max=True), order


def _morph_weight_sampler(b: _GlbBuilder, time_acc: int, order: list[int], targets: int, interpolation: str) -> dict:
    """Sampler of one-hot morph weights: key k shows target order[k]."""
    weights = np.zeros((len(order), targets), dtype=np.float32)  # [K, F]
    weights[np.arange(len(order)), order] = 1.0
    return {"input": time_acc, "output": b.accessor(weights.reshape(-1), "SCALAR"), "interpolation": interpolation}


TEXTURE_PNG_LEVEL = 1
"""zlib level of the texture PNGs a3d writes (`source/mesh.glb`, `export/animated.glb`). Why not Pillow's default
(6): a packed atlas of a scan's textures holds tens of millions of texels, which level 6 compresses several times
slower than level 1 for a somewhat smaller file (docs/PERF.md); the texels are the same either way."""


def texture_png(texture: np.ndarray, opaque: bool) -> bytes:
    """The PNG of an [H, W, 4] uint8 RGBA texture at `TEXTURE_PNG_LEVEL`: RGB when `opaque` (its alpha unused), so
    an opaque atlas is not a third larger to compress; both files a3d writes with a texture encode it here."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(texture))  # RGBA, a view of the texture, not a copy
    image = image.convert("RGB") if opaque else image  # one RGB copy, not a numpy one and then Pillow's
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=TEXTURE_PNG_LEVEL)
    return out.getvalue()


def texture_sampler(mag_filter: int) -> dict:
    """A glTF sampler that repeats: LINEAR with trilinear mip-maps, or for NEAREST_FILTER the pair Blender writes
    for "Closest" interpolation (NEAREST, NEAREST_MIPMAP_NEAREST), which its importer and three.js both show
    with crisp texels (Blender's shows "Closest" only when minFilter is a NEAREST kind too)."""
    if mag_filter == NEAREST_FILTER:
        return {"magFilter": NEAREST_FILTER, "minFilter": NEAREST_MIPMAP_NEAREST, "wrapS": REPEAT, "wrapT": REPEAT}
    return {"magFilter": LINEAR_FILTER, "minFilter": LINEAR_MIPMAP_LINEAR, "wrapS": REPEAT, "wrapT": REPEAT}


def _document(
    b: _GlbBuilder,
    nodes: list[dict],
    roots: list[int],
    mesh: dict,
    mat: dict,
    textures: list[dict],
    animation: dict,
    skins: list[dict] | None = None,
    mag_filter: int = LINEAR_FILTER,
) -> bytes:
    """The glTF JSON around one mesh, one material and one animation, packed as GLB bytes; the textures repeat
    and are filtered by `mag_filter` (`texture_sampler`)."""
    gltf: dict = {
        "asset": {"version": "2.0", "generator": f"a3d {__version__}"},
        "scene": 0,
        "scenes": [{"name": "a3d", "nodes": roots}],
        "nodes": nodes,
        "meshes": [mesh],
        "materials": [mat],
        "animations": [animation],
        **({"skins": skins} if skins else {}),
        "accessors": b.accessors,
        "bufferViews": b.buffer_views,
    }
    if textures:
        gltf["textures"] = textures
        gltf["images"] = b.images
        gltf["samplers"] = [texture_sampler(mag_filter)]
    blob = b.binary()
    gltf["buffers"] = [{"byteLength": sum(len(piece) for piece in blob)}]
    return pack_glb(gltf, blob)


def animated_glb_bytes(
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [T, 3]
    frames: np.ndarray,  # [F, V, 3]
    *,
    uvs: np.ndarray | None = None,  # [V, 2]
    colors: np.ndarray | None = None,  # [V, 4]
    material: MeshMaterial | None = None,
    fps: float = 8.0,
    interpolation: Interpolation = "LINEAR",
    loop: bool = True,
    morph_normals: bool = True,
    name: str = "a3d_mesh",
    frame_names: Sequence[str] | None = None,
    normal_groups: np.ndarray | None = None,  # [V]
) -> bytes:
    """Encode a mesh and its per-frame vertex positions as an animated GLB (glTF 2.0): the file's bytes.

    Frame k is encoded as morph target k (POSITION delta from `vertices`, and a NORMAL delta when
    `morph_normals`), and the animation `a3d_motion` keys the one-hot weight vector of frame k at k / fps.

    Args:
        vertices: [V, 3] rest positions (the base mesh a static viewer shows).
        faces: [T, 3] triangle vertex indices (counter-clockwise = front, as glTF).
        frames: [F, V, 3] positions of every vertex at every frame, same frame as `vertices`.
        uvs: [V, 2] texture coordinates, OBJ/OpenGL origin (v up); required when the material is textured.
        colors: [V, 4] *linear* RGBA vertex colours in [0, 1] (glTF COLOR_0, multiplied with the material).
        material: colours and embedded textures (default: plain white, rough, dielectric).
        fps: animation keys per second (a3d's videos run at 8).
        interpolation: "STEP" shows exact frames; "LINEAR" blends neighbouring frames.
        loop: add a closing key at F / fps that returns to frame 0.
        morph_normals: also store per-frame NORMAL deltas (correct shading while moving; doubles target size).
        name: node and mesh name.
        frame_names: morph-target names (default frame_0000, …), shown as shape-key names.
        normal_groups: [V] vertices with one number share a normal (`SurfaceMesh.normal_groups`: hard edges
            kept); None: the copies of each position share one (smooth across texture seams).

    Raises:
        ValueError: shapes disagree, positions are not finite, fps <= 0, or a texture is not PNG/JPEG.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.float64)
    uvs = None if uvs is None else np.asarray(uvs, dtype=np.float64)
    _check_inputs(vertices, faces, frames, uvs, fps)
    if interpolation not in ("STEP", "LINEAR"):
        raise ValueError(f"interpolation must be STEP or LINEAR, got {interpolation!r}")
    f = frames.shape[0]
    names = list(frame_names) if frame_names is not None else [f"frame_{k:04d}" for k in range(f)]
    if len(names) != f:
        raise ValueError(f"frame_names has {len(names)} names for {f} frames")
    material = material or MeshMaterial()
    b = _GlbBuilder()

    # 1. base geometry
    sharing = _normal_sharing(vertices, normal_groups)  # [V]
    primitive, base, base_n = _mesh_primitive(b, vertices, faces, uvs, colors, sharing)

    # 2. one morph target per frame: deltas taken in float64 so that base + Δ rounds to the frame's value
    targets = []
    frame_n = None  # [F, V, 3]
    if morph_normals:
        frame_n = vertex_normals(frames, faces, fallback=NO_FACE_NORMAL, welded=sharing).astype(np.float32)
    for k in range(f):
        delta = (frames[k] - base.astype(np.float64)).astype(np.float32)  # [V, 3]
        target = {"POSITION": b.accessor(delta, "VEC3", ARRAY_BUFFER, min_max=True)}
        if frame_n is not None:
            target["NORMAL"] = b.accessor(frame_n[k] - base_n, "VEC3", ARRAY_BUFFER)
        targets.append(target)
    primitive["targets"] = targets

    # 3. material and textures
    mat, textures = _material(b, material, uvs is not None)

    # 4. animation: one-hot weight keys at k / fps (plus the loop-closing key back to frame 0)
    time_acc, order = _key_times(b, f, fps, loop)
    sampler = _morph_weight_sampler(b, time_acc, order, f, interpolation)

    # 5. the JSON document
    mesh = {
        "name": name,
        "primitives": [primitive],
        "weights": [1.0 if k == 0 else 0.0 for k in range(f)],
        "extras": {"targetNames": names},  # shape-key names (Blender, three.js read this)
    }
    animation = {
        "name": "a3d_motion",
        "samplers": [sampler],
        "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
        "extras": {"fps": float(fps), "frames": f, "loop": bool(loop)},
    }
    return _document(b, [{"name": name, "mesh": 0}], [0], mesh, mat, textures, animation, mag_filter=material.mag_filter)


def write_animated_glb(
    path: str | os.PathLike[str],
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [T, 3]
    frames: np.ndarray,  # [F, V, 3]
    **kwargs: Any,
) -> None:
    """Write `animated_glb_bytes(vertices, faces, frames, **kwargs)` to `path` (a `.glb`), atomically.

    Raises:
        ValueError: as `animated_glb_bytes`.
    """
    atomic_write_bytes(Path(path), animated_glb_bytes(vertices, faces, frames, **kwargs))


@dataclass(frozen=True)
class EncodedTexture:
    """A texture kept as the PNG it was read as, written out without being decoded (`mesh_material`).

    Attributes:
        data: the PNG's bytes, exactly as `texture_png` writes its texels (`a3d_cli.io.plain_png`).
        translucent: whether a texel's alpha is below 255 (False for an RGB PNG): an RGBA PNG is written as it
            is only where it is, since `texture_png` writes an opaque texture as RGB.
        shape: (rows, columns) its header declares.
    """

    data: bytes
    translucent: bool
    shape: tuple[int, int]


def mesh_material(mesh: SurfaceMesh, encoded: EncodedTexture | None = None) -> tuple[MeshMaterial, np.ndarray | None]:
    """The glTF material and optional COLOR_0 of a processed mesh, as `a3d prepare` stored them.

    Uniform vertex colours become the base-colour factor (linear), varying ones COLOR_0 (linear). The texture is
    `encoded` as it is when given (then `mesh` holds none; `a3d_cli.mesh.store.read_processed_mesh`), else the
    mesh's own, encoded by `texture_png`.

    Returns:
        (MeshMaterial, [V, 4] linear RGBA or None).

    Raises:
        ValueError: `encoded` is opaque (RGB) while the vertex colours are see-through, so that the texture would
            have to gain an alpha channel (`read_processed_mesh` keeps no such texture encoded).
    """
    from a3d_cli.mesh.appearance import srgb_to_linear

    rgba = np.asarray(mesh.vertex_colors, dtype=np.float64)  # [V, 4] sRGB
    linear = np.concatenate([srgb_to_linear(rgba[:, :3]), np.clip(rgba[:, 3:], 0, 1)], axis=1)  # [V, 4]
    uniform = bool(np.allclose(linear, linear[:1], atol=1.0 / 512))
    factor = tuple(float(c) for c in linear[0]) if uniform else (1.0, 1.0, 1.0, 1.0)
    texture = None
    translucent = bool((rgba[:, 3] < 1.0 - 1e-6).any())
    if encoded is not None:
        if translucent and not encoded.translucent:
            raise ValueError("an opaque encoded texture cannot carry see-through vertex colours; decode it")
        translucent, texture = encoded.translucent, encoded.data
    elif mesh.texture is not None:
        translucent = translucent or bool((mesh.texture[..., 3] < 255).any())
        texture = texture_png(mesh.texture, opaque=not translucent)
    material = MeshMaterial(
        base_color_factor=factor,  # type: ignore[arg-type]
        metallic_factor=0.0,
        roughness_factor=1.0,
        base_color_texture=texture,
        alpha_mode=_animated_alpha_mode(mesh.alpha_mode, translucent),
        name="a3d_material",
        mag_filter=mesh.mag_filter,
    )
    return material, (None if uniform else linear.astype(np.float32))


def _animated_alpha_mode(stored: str, translucent: bool) -> Literal["OPAQUE", "MASK", "BLEND"]:
    """The animated GLB's alpha mode: OPAQUE where no texel or colour is see-through; MASK (glTF's cutoff 0.5)
    where the processed mesh's parts were at most MASK, whose alpha prepare made 0 or 1 (cut-outs keep depth
    writes and draw in any order, as in the user's file); BLEND otherwise."""
    if not translucent:
        return "OPAQUE"
    return "MASK" if stored == "MASK" else "BLEND"


def _quat_keys(rotations: np.ndarray) -> np.ndarray:
    """glTF quaternions (x, y, z, w) [K, B, 4] of rotations [K, B, 3, 3], signs kept continuous along K."""
    import torch

    from a3d_cli.geometry import rotmat_to_quat

    wxyz = rotmat_to_quat(torch.from_numpy(np.asarray(rotations, dtype=np.float64))).numpy()  # [K, B, 4]
    for k in range(1, wxyz.shape[0]):  # same hemisphere as the previous key: slerp takes the short way
        flip = (wxyz[k] * wxyz[k - 1]).sum(-1) < 0  # [B]
        wxyz[k, flip] *= -1.0
    xyzw = np.concatenate([wxyz[..., 1:], wxyz[..., :1]], axis=-1)
    return (xyzw / np.linalg.norm(xyzw, axis=-1, keepdims=True)).astype(np.float32)


def _check_skin(
    v: int, joints: np.ndarray, weights: np.ndarray, centres: np.ndarray, rotations: np.ndarray, translations: np.ndarray
) -> None:
    b = centres.shape[0] if centres.ndim == 2 else -1
    if centres.ndim != 2 or centres.shape[1] != 3 or not 1 <= b <= 255:
        raise ValueError(f"centres must have shape [B, 3] with 1 <= B <= 255, got {list(centres.shape)}")
    if joints.ndim != 2 or joints.shape[0] != v or not 1 <= joints.shape[1] <= 4 or weights.shape != joints.shape:
        raise ValueError(f"joints and weights must have shape [V, K] = [{v}, K<=4], got {list(joints.shape)}, "
                         f"{list(weights.shape)}")  # fmt: skip
    if joints.min() < 0 or joints.max() >= b:
        raise ValueError(f"joints index bones outside [0, {b})")
    if not np.isfinite(weights).all() or weights.min() < 0 or np.abs(weights.sum(1) - 1.0).max() > 1e-4:
        raise ValueError("weights must be finite, >= 0 and sum to 1 per vertex")
    if rotations.ndim != 4 or rotations.shape[1:] != (b, 3, 3) or rotations.shape[0] < 1:
        raise ValueError(f"rotations must have shape [K, B, 3, 3] = [K, {b}, 3, 3], got {list(rotations.shape)}")
    if translations.shape != rotations.shape[:2] + (3,):
        raise ValueError(f"translations must have shape [K, B, 3] = {list(rotations.shape[:2]) + [3]}, "
                         f"got {list(translations.shape)}")  # fmt: skip
    if not (np.isfinite(rotations).all() and np.isfinite(translations).all() and np.isfinite(centres).all()):
        raise ValueError("bone transforms and centres must be finite")


def skinned_glb_bytes(
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [T, 3]
    joints: np.ndarray,  # [V, K]
    weights: np.ndarray,  # [V, K]
    centres: np.ndarray,  # [B, 3]
    rotations: np.ndarray,  # [F, B, 3, 3]
    translations: np.ndarray,  # [F, B, 3]
    *,
    residual: np.ndarray | None = None,  # [F, V, 3]
    uvs: np.ndarray | None = None,  # [V, 2]
    colors: np.ndarray | None = None,  # [V, 4]
    material: MeshMaterial | None = None,
    fps: float = 24.0,
    interpolation: Interpolation = "LINEAR",
    loop: bool = False,
    name: str = "a3d_mesh",
    normal_groups: np.ndarray | None = None,  # [V]
) -> bytes:
    """Encode a mesh animated by a linear-blend skin as a GLB (glTF 2.0): the file's bytes.

    The skeleton is a root joint with one child joint per bone, placed at the bone's rest centre c_b (so
    rotations keyed on it turn about that centre). Inverse bind matrices are translations by −c_b, and
    frame k keys each bone's local rotation R_b^k and translation R_b^k c_b + t_b^k, so a glTF player skins
    vertex i at frame k to Σ_b w_ib (R_b^k p_i + t_b^k). Keys sit at k / fps, and with `loop` one more at
    F / fps repeats frame 0 (as `animated_glb_bytes`).

    Args:
        vertices: [V, 3] rest (bind) positions, which a static viewer shows.
        faces: [T, 3] triangle vertex indices.
        joints: [V, K ≤ 4] bone index of each influence.
        weights: [V, K] influence weights, ≥ 0 and summing to 1 per vertex.
        centres: [B, 3] rest centres of the bones (B ≤ 255).
        rotations: [F, B, 3, 3] bone rotations per frame.
        translations: [F, B, 3] bone translations per frame.
        residual: [F, V, 3] bind-space morph deltas keyed one-hot per frame (optional).
        uvs, colors, material, fps, interpolation, loop, name, normal_groups: as in `animated_glb_bytes`.

    Raises:
        ValueError: shapes disagree, weights are not convex, values are not finite, or fps <= 0.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    joints = np.asarray(joints, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    rotations = np.asarray(rotations, dtype=np.float64)
    translations = np.asarray(translations, dtype=np.float64)
    uvs = None if uvs is None else np.asarray(uvs, dtype=np.float64)
    f = rotations.shape[0] if rotations.ndim == 4 else 0
    _check_inputs(vertices, faces, np.zeros((max(f, 1),) + vertices.shape), uvs, fps)
    _check_skin(vertices.shape[0], joints, weights, centres, rotations, translations)
    if residual is not None:
        residual = np.asarray(residual, dtype=np.float64)
        if residual.shape != (f,) + vertices.shape or not np.isfinite(residual).all():
            raise ValueError(f"residual must be finite with shape [F, V, 3] = [{f}, {vertices.shape[0]}, 3]")
    if interpolation not in ("STEP", "LINEAR"):
        raise ValueError(f"interpolation must be STEP or LINEAR, got {interpolation!r}")
    material = material or MeshMaterial()
    nb = centres.shape[0]
    b = _GlbBuilder()

    # 1. base geometry + skin attributes (joint 0 is the root; bone j is joint j + 1)
    sharing = _normal_sharing(vertices, normal_groups)  # [V]
    primitive, _, _ = _mesh_primitive(b, vertices, faces, uvs, colors, sharing)
    k = joints.shape[1]
    j4 = np.zeros((len(vertices), 4), dtype=np.uint8)
    w4 = np.zeros((len(vertices), 4), dtype=np.float32)
    j4[:, :k] = joints + 1
    w4[:, :k] = weights
    j4[w4 == 0] = 0  # unused slots point at the root with weight 0
    w4 = w4 / w4.sum(1, keepdims=True)
    w4[:, 0] = 1.0 - w4[:, 1:].sum(1, dtype=np.float32)  # float32 rows sum to 1 exactly (validators check it)
    primitive["attributes"]["JOINTS_0"] = b.accessor(j4, "VEC4", ARRAY_BUFFER, component=UNSIGNED_BYTE)
    primitive["attributes"]["WEIGHTS_0"] = b.accessor(w4, "VEC4", ARRAY_BUFFER)

    # 2. optional residual morph targets (bind-space deltas, applied before skinning)
    mesh: dict = {"name": name, "primitives": [primitive]}
    if residual is not None:
        primitive["targets"] = [
            {"POSITION": b.accessor(residual[i].astype(np.float32), "VEC3", ARRAY_BUFFER, min_max=True)}
            for i in range(f)
        ]
        mesh["weights"] = [1.0 if i == 0 else 0.0 for i in range(f)]
        mesh["extras"] = {"targetNames": [f"residual_{i:04d}" for i in range(f)]}

    # 3. skeleton: mesh node 0, root joint node 1, bone nodes 2.. at their rest centres
    ibm = np.tile(np.eye(4, dtype=np.float32), (nb + 1, 1, 1))  # [B+1, 4, 4]
    ibm[1:, :3, 3] = -centres
    ibm_acc = b.accessor(ibm.transpose(0, 2, 1).reshape(nb + 1, 16), "MAT4")  # column-major
    nodes: list[dict] = [
        {"name": name, "mesh": 0, "skin": 0},
        {"name": "root", "children": list(range(2, nb + 2))},
    ]
    nodes += [{"name": f"bone_{j:03d}", "translation": [float(c) for c in centres[j]]} for j in range(nb)]
    skin = {"name": "a3d_skin", "joints": list(range(1, nb + 2)), "skeleton": 1, "inverseBindMatrices": ibm_acc}

    # 4. material and textures
    mat, textures = _material(b, material, uvs is not None)

    # 5. animation: per bone a translation and a rotation channel (joint about its centre c:
    #    local = [R | R c + t], so the skinned vertex is Σ w (R p + t))
    time_acc, order = _key_times(b, f, fps, loop)
    quats = _quat_keys(rotations)[order]  # [K, B, 4]
    moved = (np.einsum("fbij,bj->fbi", rotations, centres) + translations)[order].astype(np.float32)  # [K, B, 3]
    samplers, channels = [], []
    for j in range(nb):
        for path, data in (("translation", moved[:, j]), ("rotation", quats[:, j])):
            samplers.append({"input": time_acc, "output": b.accessor(data, "VEC4" if path == "rotation" else "VEC3"),
                             "interpolation": interpolation})  # fmt: skip
            channels.append({"sampler": len(samplers) - 1, "target": {"node": j + 2, "path": path}})
    if residual is not None:
        samplers.append(_morph_weight_sampler(b, time_acc, order, f, interpolation))
        channels.append({"sampler": len(samplers) - 1, "target": {"node": 0, "path": "weights"}})
    animation = {
        "name": "a3d_motion",
        "samplers": samplers,
        "channels": channels,
        "extras": {"fps": float(fps), "frames": f, "loop": bool(loop), "bones": nb},
    }
    data = _document(b, nodes, [0, 1], mesh, mat, textures, animation, skins=[skin], mag_filter=material.mag_filter)
    return data


def write_skinned_glb(path: str | os.PathLike[str], *arrays: np.ndarray, **kwargs: Any) -> None:
    """Write `skinned_glb_bytes(*arrays, **kwargs)` to `path` (a `.glb`), atomically.

    Args:
        path: the file to write.
        *arrays: vertices, faces, joints, weights, centres, rotations, translations, as `skinned_glb_bytes`.
        **kwargs: its keyword options (residual, uvs, colors, material, fps, interpolation, loop, name).

    Raises:
        ValueError: as `skinned_glb_bytes`.
    """
    atomic_write_bytes(Path(path), skinned_glb_bytes(*arrays, **kwargs))


__all__ = [
    "EncodedTexture",
    "MeshMaterial",
    "animated_glb_bytes",
    "image_mime_type",
    "mesh_material",
    "texture_png",
    "skinned_glb_bytes",
    "write_animated_glb",
    "write_skinned_glb",
]
