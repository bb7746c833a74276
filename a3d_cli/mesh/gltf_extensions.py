"""Which glTF extensions a3d honours, which it may ignore, and the up-front refusal of the rest.

Why: real-world glTF files (Sketchfab, Poly Haven, gltf-transform and gltfpack output, game pipelines) use
extensions. A loader that skips one it does not know can read zeros for compressed geometry, integers for
quantized coordinates or no texture at all, and the run would go on with a wrong asset. a3d either decodes
an extension correctly (`a3d_cli.mesh.gltf_core`), ignores one that cannot change the geometry or the base
colour it uses, or refuses the file before any work with the extension's name and what to do.

An extension listed in `extensionsRequired` that a3d does not honour is refused. One that is only used
(`extensionsUsed`) is optional by the glTF spec's definition: the file reads correctly without it (for
example, meshopt-compressed data with an uncompressed fallback, or a KTX2 texture next to a PNG one).

Examples:
    >>> check_extensions(json.loads(Path("model.gltf").read_text()), "model.gltf")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from a3d_cli.errors import InputError

# extensions a3d decodes or applies, and how (docs/prepare.md lists them)
HONOURED: dict[str, str] = {
    "KHR_draco_mesh_compression": "geometry decoded with DracoPy",
    "KHR_mesh_quantization": "integer and normalized attributes dequantized",
    "KHR_texture_transform": "offset, rotation and scale applied to the base-colour texture coordinates",
    "EXT_texture_webp": "WebP images read with Pillow",
    "KHR_texture_webp": "WebP images read with Pillow",
    "EXT_texture_avif": "AVIF images read with Pillow (when Pillow was built with AVIF)",
    "EXT_mesh_gpu_instancing": "each instance placed as its own copy of the mesh",
    "KHR_materials_pbrSpecularGlossiness": "diffuse colour and texture used as the base colour",
    "KHR_materials_variants": "the default material is used",
    "KHR_materials_unlit": "the base colour is used as it is (as for every material)",
    "KHR_materials_emissive_strength": "multiplies the emissive colour, which adds to the base colour",
}
# extensions that cannot change the geometry or the base colour a3d reads, so ignoring them is exact
IGNORED: frozenset[str] = frozenset({
    "KHR_materials_clearcoat", "KHR_materials_transmission",
    "KHR_materials_volume", "KHR_materials_ior", "KHR_materials_specular", "KHR_materials_sheen",
    "KHR_materials_iridescence", "KHR_materials_anisotropy", "KHR_materials_dispersion",
    "KHR_materials_diffuse_transmission", "KHR_lights_punctual", "EXT_lights_image_based",
    "KHR_xmp_json_ld", "KHR_xmp", "KHR_animation_pointer", "KHR_materials_volume_scatter",
})  # fmt: skip
MESHOPT_HINT = (
    "Write it without meshopt compression first, e.g. `npx @gltf-transform/cli copy {name} plain.glb` "
    "or `npx gltfpack -i {name} -o plain.glb -noq`, then give a3d plain.glb."
)
# what to do about extensions a3d refuses when they are required (hints name a command that works)
REFUSED_HINTS: dict[str, str] = {
    "EXT_meshopt_compression": MESHOPT_HINT,
    "KHR_meshopt_compression": MESHOPT_HINT,
    "KHR_texture_basisu": (
        "Convert its KTX2 textures to PNG first, e.g. `npx @gltf-transform/cli ktxdecompress {name} png.glb` "
        "(needs KTX-Software's `ktx` tool), or export the asset again with PNG or JPEG textures."
    ),
}
GENERIC_HINT = "Export the asset again without {ext}; docs/prepare.md lists the glTF extensions a3d reads."
DRACO_HINT = "Install the Draco decoder: pip install DracoPy (a dependency of a3d; reinstall a3d to get it)."


def check_extensions(doc: dict[str, Any], name: str) -> None:
    """Refuse a glTF whose required extensions a3d cannot honour (JSON only: cheap, before any work).

    Args:
        doc: the glTF JSON object.
        name: the file's name, for the message.

    Raises:
        InputError: naming the first such extension, with a hint saying how to convert the file.
    """
    required = doc.get("extensionsRequired") or []
    if not isinstance(required, list):
        raise InputError(f"{name}: extensionsRequired is not a list.", hint="Export the file again.")
    for ext in required:
        ext = str(ext)
        if ext in HONOURED and honoured_here(ext):
            continue
        if ext in IGNORED:
            continue
        refuse(name, ext)


def honoured_here(ext: str) -> bool:
    """Whether this installation can honour `ext` (its decoder is importable, Pillow has the codec)."""
    if ext == "KHR_draco_mesh_compression":
        try:
            import DracoPy  # noqa: F401
        except ImportError:
            return False
    elif ext in ("EXT_texture_webp", "KHR_texture_webp", "EXT_texture_avif"):
        from PIL import features

        return bool(features.check("avif" if ext == "EXT_texture_avif" else "webp"))
    return ext in HONOURED


def refuse(name: str, ext: str, what: str = "requires") -> None:
    """Raise the one refusal for an extension a3d cannot honour.

    Args:
        name: the file's name.
        ext: the extension.
        what: the verb ("requires", or a phrase such as "stores its base-colour texture only with").
    """
    if ext == "KHR_draco_mesh_compression":
        hint = DRACO_HINT
    elif ext in ("EXT_texture_webp", "KHR_texture_webp", "EXT_texture_avif"):
        hint = "Install a Pillow build with this image codec (the wheels on PyPI have WebP and AVIF): pip install -U pillow"
    else:
        hint = REFUSED_HINTS.get(ext, GENERIC_HINT).format(name=name, ext=ext)
    raise InputError(f"{name} {what} the glTF extension {ext}, which a3d cannot read.", hint=hint)
