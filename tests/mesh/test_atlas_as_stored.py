"""`read_processed_mesh`: `source/mesh.glb`'s atlas is kept as the PNG `prepare` wrote where that is what decoding it
and encoding it again would write, so `export/animated.glb` comes out byte for byte as before without the decode;
any other atlas (one a stranger made or edited) is decoded, checked and written again, as before."""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from helpers import GlbBuilder, png_bytes
from PIL import Image, PngImagePlugin

from a3d_cli.errors import InputError
from a3d_cli.mesh.appearance import LINEAR, NEAREST
from a3d_cli.mesh.gltf_accessors import parse_gltf
from a3d_cli.mesh.gltf_animated import animated_glb_bytes, mesh_material
from a3d_cli.mesh.store import load_processed_mesh, read_processed_mesh, save_processed_mesh
from a3d_cli.mesh.surface import SurfaceMesh

CELLS = 3


def grid_mesh(texture: np.ndarray | None, alpha_mode: str = "OPAQUE", mag_filter: int = LINEAR, colours=None):
    """A CELLS × CELLS grid over the unit square (uv = position), textured with `texture` [H, W, 4] when given."""
    t = np.linspace(0.0, 1.0, CELLS + 1)
    u, v = (a.ravel() for a in np.meshgrid(t, t))
    corner = (np.arange(CELLS)[None, :] + (CELLS + 1) * np.arange(CELLS)[:, None]).ravel()
    a, b, c, d = corner, corner + 1, corner + CELLS + 2, corner + CELLS + 1
    faces = np.concatenate([np.c_[a, b, c], np.c_[a, c, d]]).astype(np.int64)
    vertices = np.c_[u, v, 0.1 * u * v]
    colours = np.ones((len(vertices), 4), np.float32) if colours is None else colours
    uvs = None if texture is None else np.c_[u, v]
    return SurfaceMesh(vertices, faces, colours, uvs, texture, alpha_mode, mag_filter=mag_filter)


def atlas(alpha: str, seed: int = 0) -> np.ndarray:
    """[24, 20, 4] random texels; alpha "opaque" (255), "ramp" (1 … 231), "cut" (0 or 255), "half" (0, 100, 255)."""
    rng = np.random.default_rng(seed)
    texels = rng.integers(0, 256, (24, 20, 4), dtype=np.uint8)
    column = np.arange(20)[None, :]
    texels[..., 3] = {"opaque": 255 + 0 * column, "ramp": 1 + column * 12, "cut": (column % 2) * 255,
                      "half": np.array([0, 100, 255])[column % 3]}[alpha]  # fmt: skip
    return texels


def animated(mesh: SurfaceMesh, uvs, atlas_png=None) -> bytes:
    """The animated GLB `mesh-animate` writes of a processed mesh (two frames)."""
    material, colours = mesh_material(mesh, atlas_png)
    frames = np.stack([mesh.vertices, mesh.vertices + [0.0, 0.1, 0.0]])
    return animated_glb_bytes(mesh.vertices, mesh.faces, frames, uvs=uvs, colors=colours, material=material,
                              normal_groups=mesh.normal_groups)  # fmt: skip


def image_bytes(glb: bytes) -> bytes:
    """The bytes of a GLB's first image."""
    doc, binary = parse_gltf(glb, "glb")
    view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    start = view.get("byteOffset", 0)
    return bytes(binary[start : start + view["byteLength"]])


def rewritten(path, edit=None, image: bytes | None = None):
    """The processed mesh at `path` written again with `edit(doc)` applied to its JSON and/or its image's bytes
    replaced by `image` (appended to the buffer as a new bufferView)."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[12:16], "little")
    b = GlbBuilder()
    b.doc, b.blob = json.loads(raw[20 : 20 + length]), bytearray(raw[20 + length + 8 :])
    if image is not None:
        b.doc["images"][0]["bufferView"] = b.view(image)
    if edit is not None:
        edit(b.doc)
    return b.save(path)


def vertex_colours(alpha: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.random(((CELLS + 1) ** 2, 3)), np.full((CELLS + 1) ** 2, alpha)].astype(np.float32)


# (mesh, whether the atlas stays encoded)
AS_PREPARE_WRITES = {
    "opaque": (lambda: grid_mesh(atlas("opaque")), True),
    "opaque, vertex colours": (lambda: grid_mesh(atlas("opaque"), colours=vertex_colours(1.0)), True),
    "nearest": (lambda: grid_mesh(atlas("opaque"), mag_filter=NEAREST), True),
    "blend": (lambda: grid_mesh(atlas("ramp"), "BLEND"), True),
    "blend, see-through vertex colours": (lambda: grid_mesh(atlas("ramp"), "BLEND", colours=vertex_colours(0.5)), True),
    "nearest blend": (lambda: grid_mesh(atlas("ramp"), "BLEND", NEAREST), True),
    "mask": (lambda: grid_mesh(atlas("cut"), "MASK"), True),
    # the texels alone would not tell the loader's texture (decoded, as before):
    "blend, every texel opaque": (lambda: grid_mesh(atlas("opaque"), "BLEND", colours=vertex_colours(0.5)), False),
    "mask with levels between": (lambda: grid_mesh(atlas("half"), "MASK"), False),
    "untextured": (lambda: grid_mesh(None, colours=vertex_colours(1.0)), False),
}


@pytest.mark.parametrize("case", AS_PREPARE_WRITES)
def test_the_animated_glb_is_the_same_bytes_with_the_atlas_kept_as_stored(tmp_path, case):
    """Whatever the alpha mode, filter and vertex colours, the animated GLB made from `read_processed_mesh` (atlas
    kept encoded where it can be) is byte for byte the one made from `load_processed_mesh` (atlas decoded and
    encoded again), and the mesh read is the same."""
    build, kept = AS_PREPARE_WRITES[case]
    save_processed_mesh(tmp_path / "mesh.glb", build())
    decoded = load_processed_mesh(tmp_path / "mesh.glb")
    stored = read_processed_mesh(tmp_path / "mesh.glb")
    assert (stored.atlas is not None) == kept
    mesh = stored.mesh
    for field in ("vertices", "faces", "vertex_colors", "normal_groups"):
        np.testing.assert_array_equal(getattr(mesh, field), getattr(decoded, field))
    assert (mesh.alpha_mode, mesh.mag_filter) == (decoded.alpha_mode, decoded.mag_filter)
    if kept:
        np.testing.assert_array_equal(stored.uvs, decoded.uvs)
        assert mesh.texture is None and mesh.uvs is None
    assert animated(mesh, stored.uvs, stored.atlas) == animated(decoded, decoded.uvs)


def test_a_kept_atlas_is_the_png_in_the_processed_mesh(tmp_path):
    """What is kept is the stored PNG itself (no re-encode), for an RGB and an RGBA atlas."""
    for name, mesh in (("rgb.glb", grid_mesh(atlas("opaque"))), ("rgba.glb", grid_mesh(atlas("ramp"), "BLEND"))):
        save_processed_mesh(tmp_path / name, mesh)
        stored = read_processed_mesh(tmp_path / name)
        assert stored.atlas.data == image_bytes((tmp_path / name).read_bytes())
        assert stored.atlas.shape == (24, 20)


def _with_text(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as im:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "SMUGGLED-TEXT")
        out = io.BytesIO()
        im.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _jpeg(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()


def _edit_material(**fields):
    def edit(doc: dict) -> None:
        doc["materials"][0].update(fields)

    return edit


def _edit_pbr(**fields):
    def edit(doc: dict) -> None:
        doc["materials"][0]["pbrMetallicRoughness"].update(fields)

    return edit


def _clamp(doc: dict) -> None:
    doc["samplers"] = [{"wrapS": 33071, "wrapT": 33071}]
    doc["textures"][0]["sampler"] = 0


def _mime(mime: str):
    def edit(doc: dict) -> None:
        doc["images"][0]["mimeType"] = mime

    return edit


# (image bytes made from the stored PNG, JSON edit, bytes that must not reach the output)
FOREIGN = {
    "a text chunk in the PNG": (_with_text, None, b"SMUGGLED-TEXT"),
    "bytes after the PNG's end": (lambda png: png + b"PK\x03\x04SMUGGLED-ZIP", None, b"SMUGGLED-ZIP"),
    "a JPEG": (_jpeg, None, b"\xff\xd8\xff"),
    "a JPEG named image/png": (_jpeg, _mime("image/png"), b"\xff\xd8\xff"),
    "a PNG named image/jpeg": (None, _mime("image/jpeg"), None),
    "a base-colour factor": (None, _edit_pbr(baseColorFactor=[0.5, 1.0, 1.0, 1.0]), None),
    "emission": (None, _edit_material(emissiveFactor=[0.2, 0.0, 0.0]), None),
    "a texture transform": (None, _edit_pbr(baseColorTexture={"index": 0, "extensions": {"KHR_texture_transform": {}}}),
                            None),
    "a clamping sampler": (None, _clamp, None),
    "OPAQUE over an RGBA PNG": ("rgba", _edit_material(alphaMode="OPAQUE"), None),
    "BLEND over an RGB PNG": (None, _edit_material(alphaMode="BLEND"), None),
    "MASK at another cutoff": ("cut", _edit_material(alphaMode="MASK", alphaCutoff=0.9), None),
}


@pytest.mark.parametrize("case", FOREIGN)
def test_an_atlas_prepare_would_not_write_is_decoded_and_written_again(tmp_path, case):
    """A processed mesh edited or made by someone else (the run folder may come from anyone): its atlas is not
    copied but decoded, checked and encoded again, as before, so nothing the decode would drop (text, trailing
    bytes, another format) reaches the animated GLB, and what the loader changes (a factor, emission, a mode) is
    in it; the GLB is the one `load_processed_mesh` gives."""
    make, edit, absent = FOREIGN[case]
    texels = atlas("opaque")
    mode = "OPAQUE"
    if make in ("rgba", "cut"):
        texels, mode, make = atlas("ramp" if make == "rgba" else "cut"), "BLEND" if make == "rgba" else "MASK", None
    save_processed_mesh(tmp_path / "mesh.glb", grid_mesh(texels, mode))
    png = image_bytes((tmp_path / "mesh.glb").read_bytes())
    rewritten(tmp_path / "mesh.glb", edit, None if make is None else make(png))
    stored = read_processed_mesh(tmp_path / "mesh.glb")
    assert stored.atlas is None
    decoded = load_processed_mesh(tmp_path / "mesh.glb")
    glb = animated(stored.mesh, stored.uvs, stored.atlas)
    assert glb == animated(decoded, decoded.uvs)
    if absent is not None:
        assert absent not in glb


def test_an_atlas_whose_stream_does_not_fill_its_declared_size_is_not_copied(tmp_path):
    """A PNG whose header declares one row more than its pixel data holds (CRCs made right): Pillow decodes it,
    the missing row black, so the loader reads it as before; it is not copied as it is (viewers would each show
    it their own way) but written again, whole, at the size its header declares."""
    from a3d_cli.io.plain_png import PlainPng, plain_png

    save_processed_mesh(tmp_path / "mesh.glb", grid_mesh(atlas("opaque")))
    png = image_bytes((tmp_path / "mesh.glb").read_bytes())
    ihdr = bytearray(png[16:29])
    ihdr[4:8] = struct.pack(">I", 25)  # rows: one more than the 24 stored
    forged = png[:16] + bytes(ihdr) + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr))) + png[33:]
    rewritten(tmp_path / "mesh.glb", image=forged)
    stored = read_processed_mesh(tmp_path / "mesh.glb")
    assert stored.atlas is None
    glb = animated(stored.mesh, stored.uvs, stored.atlas)
    assert plain_png(image_bytes(glb)) == PlainPng(20, 25, False)
    decoded = load_processed_mesh(tmp_path / "mesh.glb")
    assert glb == animated(decoded, decoded.uvs)


def test_a_processed_mesh_without_positions_is_refused(tmp_path):
    """A processed mesh whose primitive names no POSITION accessor is one `InputError` (exit 2), not a crash."""
    save_processed_mesh(tmp_path / "mesh.glb", grid_mesh(atlas("opaque")))
    rewritten(tmp_path / "mesh.glb", lambda doc: doc["meshes"][0]["primitives"][0]["attributes"].pop("POSITION"))
    for read in (load_processed_mesh, read_processed_mesh):
        with pytest.raises(InputError, match="accessor None"):
            read(tmp_path / "mesh.glb")


def test_an_opaque_kept_atlas_refuses_see_through_vertex_colours():
    """`mesh_material` never writes an RGB PNG under see-through vertex colours (the texture would need alpha)."""
    from a3d_cli.mesh.gltf_animated import EncodedTexture

    mesh = grid_mesh(None, colours=vertex_colours(0.5))
    with pytest.raises(ValueError, match="opaque encoded texture"):
        mesh_material(mesh, EncodedTexture(png_bytes(atlas("opaque")[..., :3]), translucent=False, shape=(24, 20)))


def test_the_kept_atlas_keeps_the_mesh_untouched(tmp_path):
    """A mesh read with its atlas kept is a valid untextured SurfaceMesh, whose UVs travel beside it."""
    save_processed_mesh(tmp_path / "mesh.glb", grid_mesh(atlas("opaque")))
    stored = read_processed_mesh(tmp_path / "mesh.glb", expected_vertices=(CELLS + 1) ** 2)
    assert stored.uvs.shape == ((CELLS + 1) ** 2, 2)
    replace(stored.mesh)  # its invariants hold
    with pytest.raises(InputError, match="splat binding expects"):
        read_processed_mesh(tmp_path / "mesh.glb", expected_vertices=5)
