"""Texture resolution end to end: a texture of any size within the atlas budget is kept at its own size (no
per-texture cap), the processed mesh's atlas is read back at the size `prepare` wrote it, and that atlas stays
within `ATLAS_IMAGE_TEXELS`, which also bounds what is decoded of a processed mesh from a run folder."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import GL_FLOAT, GL_UINT, GlbBuilder, png_bytes, png_declaring, srgb_decode, srgb_encode
from PIL import Image, ImageFile

from a3d_cli.errors import InputError
from a3d_cli.mesh import appearance
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.store import load_processed_mesh, save_processed_mesh
from a3d_cli.mesh.surface import SurfaceMesh, concatenate

QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_UV = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)  # glTF's top-left origin
QUAD_FACES = np.array([0, 1, 2, 0, 2, 3], np.uint32)


def textured_quad_glb(path, image: np.ndarray):
    """A GLB of one unit quad whose base-colour texture is `image` [H, W, 3|4] uint8."""
    b = GlbBuilder()
    attributes = {"POSITION": b.accessor(QUAD, GL_FLOAT, "VEC3"), "TEXCOORD_0": b.accessor(QUAD_UV, GL_FLOAT, "VEC2")}
    material = b.textured_material({"source": b.image(png_bytes(image), "image/png")})
    b.mesh(attributes, b.accessor(QUAD_FACES, GL_UINT, "SCALAR"), material=material)
    return b.save(path)


def wide_texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)


def quad(texture: np.ndarray, offset: float = 0.0) -> SurfaceMesh:
    vertices = QUAD.astype(np.float64) + [offset, 0.0, 0.0]
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    return SurfaceMesh(vertices, QUAD_FACES.reshape(-1, 3).astype(np.int64), np.ones((4, 4), np.float32), uv, texture)


def test_a_texture_wider_than_4096_within_the_budget_is_kept_at_its_own_size(tmp_path):
    """A 6000 × 8 texture (48,000 texels, far within the budget): read texel for texel, not capped at 4096 px
    a side (a 4096 px cap would have resampled it to 4096 × 5)."""
    image = wide_texture(6000, 8)
    mesh = load_mesh(textured_quad_glb(tmp_path / "wide.glb", image))
    assert mesh.texture.shape == (8, 6000, 4)  # type: ignore[union-attr]
    np.testing.assert_array_equal(mesh.texture[..., :3], image[..., :3])  # type: ignore[index]


def test_the_processed_mesh_is_read_back_at_the_size_prepare_wrote_it(tmp_path):
    """An atlas wider than 4096 px in `source/mesh.glb` (what `prepare` writes for several large textures) is
    read back by the later stages texel for texel."""
    atlas = wide_texture(6000, 6, seed=1)
    atlas[..., 3] = 255
    save_processed_mesh(tmp_path / "mesh.glb", quad(atlas))
    mesh = load_processed_mesh(tmp_path / "mesh.glb")
    np.testing.assert_array_equal(mesh.texture, atlas)



@pytest.mark.parametrize("alpha", ["opaque", "translucent"])
def test_the_animated_glb_carries_the_texture_encoded_as_the_processed_mesh_does(tmp_path, alpha):
    """`export/animated.glb` holds the processed mesh's texture as `source/mesh.glb` does: the same PNG (RGB when
    opaque, zlib level 1), so `mesh-animate` spends no more on an atlas of tens of millions of texels than
    `prepare` did, and the texels are those `prepare` wrote."""
    import io

    from a3d_cli.mesh.gltf_accessors import parse_gltf
    from a3d_cli.mesh.gltf_animated import mesh_material

    atlas = wide_texture(300, 40, seed=2)
    atlas[..., 3] = 255 if alpha == "opaque" else np.arange(300)[None, :] % 256
    mesh = replace(quad(atlas), alpha_mode="OPAQUE" if alpha == "opaque" else "BLEND")
    save_processed_mesh(tmp_path / "mesh.glb", mesh)
    doc, binary = parse_gltf((tmp_path / "mesh.glb").read_bytes(), "mesh.glb")
    view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    processed_png = bytes(binary[view.get("byteOffset", 0) : view.get("byteOffset", 0) + view["byteLength"]])
    material, _ = mesh_material(load_processed_mesh(tmp_path / "mesh.glb"))
    assert material.base_color_texture == processed_png
    with Image.open(io.BytesIO(material.base_color_texture)) as image:
        assert image.mode == ("RGB" if alpha == "opaque" else "RGBA")
        np.testing.assert_array_equal(np.asarray(image.convert("RGBA")), atlas)


@pytest.mark.parametrize("mode", ["MASK", "BLEND"])
def test_a_cut_out_mesh_keeps_its_alpha_mode_in_the_animated_glb(tmp_path, mode):
    """A processed mesh whose parts were MASK (alpha 0 or 1: leaves, fences, hair cards) stays MASK, at glTF's
    cutoff, in `export/animated.glb`: BLEND would put it in engines' sorted transparent pass, without depth
    writes, where overlapping cut-outs draw in the wrong order. A BLEND mesh stays BLEND."""
    from a3d_cli.mesh.gltf_animated import mesh_material

    atlas = wide_texture(64, 16, seed=3)
    atlas[..., 3] = np.where(np.arange(64)[None, :] % 2 == 0, 255, 0)
    save_processed_mesh(tmp_path / "mesh.glb", replace(quad(atlas), alpha_mode=mode))
    material, _ = mesh_material(load_processed_mesh(tmp_path / "mesh.glb"))
    assert material.alpha_mode == mode
    assert material.alpha_cutoff == 0.5


def test_a3d_decodes_its_own_largest_atlas():
    """The atlas bound is an image size Pillow decodes under its default limit, which a3d keeps as an error."""
    assert appearance.ATLAS_TEXELS < appearance.ATLAS_IMAGE_TEXELS <= Image.MAX_IMAGE_PIXELS


def test_the_packed_atlas_stays_within_its_bound(monkeypatch):
    """Four 32² textures fit the texture budget, but packed with their padding and the white patch (4 · 36² + 8²
    texels and the shelves' gaps) they would exceed an atlas bound of 3,000 texels: the textures are reduced
    until the atlas fits, with one warning, and every part keeps its colour."""
    monkeypatch.setattr(appearance, "ATLAS_IMAGE_TEXELS", 3000, raising=False)
    colours = [(200, 20, 20), (20, 200, 20), (20, 20, 200), (200, 200, 20)]
    parts = [quad(np.dstack([np.full((32, 32, 3), c, np.uint8), np.full((32, 32), 255, np.uint8)]), 2.0 * k) for k, c in enumerate(colours)]
    parts.append(replace_untextured(quad(parts[0].texture, 8.0)))  # type: ignore[arg-type]
    notices: list[str] = []
    mesh = concatenate(parts, "packed.glb", notices.append)
    assert mesh.texture.shape[0] * mesh.texture.shape[1] <= 3000  # type: ignore[union-attr]
    assert len(notices) == 1 and notices[0].startswith("warning: packed.glb's 4 textures")
    for k, colour in enumerate(colours):
        rgb = mesh.surface_rgba(np.array([2 * k]), np.array([[1 / 3, 1 / 3, 1 / 3]]))[0, :3] * 255
        np.testing.assert_allclose(rgb, colour, atol=1.0)


def replace_untextured(mesh: SurfaceMesh) -> SurfaceMesh:
    """The same quad without a texture (the atlas then holds a white patch for it)."""
    return SurfaceMesh(mesh.vertices, mesh.faces, mesh.vertex_colors)


def processed_glb_with_image(tmp_path, image: dict, blob_image: bytes | None = None):
    """A processed mesh as `save_processed_mesh` writes it, its one image replaced by `image` (a glTF image
    object; `blob_image` appended to the binary chunk as its bufferView when given)."""
    texture = wide_texture(8, 8, seed=2)
    texture[..., 3] = 255
    path = save_and_read(tmp_path, texture)
    raw = path.read_bytes()
    length = int.from_bytes(raw[12:16], "little")
    doc = json.loads(raw[20 : 20 + length])
    b = GlbBuilder()
    b.doc, b.blob = doc, bytearray(raw[20 + length + 8 :])
    if blob_image is not None:
        image = {**image, "bufferView": b.view(blob_image)}
    doc["images"][0] = image
    return b.save(path)


def save_and_read(tmp_path, texture: np.ndarray):
    save_processed_mesh(tmp_path / "mesh.glb", quad(texture))
    return tmp_path / "mesh.glb"


def assert_refused_undecoded(monkeypatch, path, match: str) -> None:  # noqa: ANN001
    """`load_processed_mesh(path)` refuses with a message matching `match` and a hint to prepare again, having
    decoded no image."""
    decoded: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (decoded.append(self.size) if self.tile else None, real(self))[1])
    with pytest.raises(InputError, match=match) as caught:
        load_processed_mesh(path)
    assert "prepare --force" in caught.value.hint
    assert decoded == []


def test_a_processed_mesh_whose_images_declare_more_than_the_atlas_bound_is_refused_undecoded(tmp_path, monkeypatch):
    """A run folder may come from anyone: a processed mesh whose image declares more texels than a3d's atlas
    holds (the bound made small here: a 40² image against 1,000 texels) is refused, naming the bound, before
    any image is decoded."""
    monkeypatch.setattr(appearance, "ATLAS_IMAGE_TEXELS", 1000, raising=False)
    path = processed_glb_with_image(tmp_path, {"mimeType": "image/png"}, png_bytes(wide_texture(40, 40)))
    assert_refused_undecoded(monkeypatch, path, "declare 1,600 texels, more than a3d's texture atlas holds")


def test_a_processed_mesh_whose_image_is_longer_a_side_than_the_atlas_is_refused_undecoded(tmp_path, monkeypatch):
    """A processed mesh whose image is longer a side than any atlas a3d writes (the side made 32 here, the image 40
    × 8, far within the texel bound) was not written by a3d: refused, naming the side, before it is decoded
    (read whole it would be reduced, where the processed mesh's texture is read as prepare wrote it)."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 32, raising=False)
    path = processed_glb_with_image(tmp_path, {"mimeType": "image/png"}, png_bytes(wide_texture(40, 8)))
    assert_refused_undecoded(monkeypatch, path, "is 40×8 texels, longer a side than a3d's texture atlas")


def test_a_processed_mesh_whose_image_declares_more_than_pillow_decodes_is_refused_with_the_prepare_hint(
    tmp_path, monkeypatch
):
    """An image header declaring more pixels than Pillow decodes (a 100000² bomb, 45 bytes) in a processed mesh is
    refused undecoded, like the others: the file is not one a3d wrote, so the hint says to prepare again, not to
    downscale an image the user never made."""
    bomb = png_declaring(tmp_path / "bomb.png", 100_000, 100_000).read_bytes()
    path = processed_glb_with_image(tmp_path, {"mimeType": "image/png"}, bomb)
    assert_refused_undecoded(monkeypatch, path, "declares 10,000,000,000 pixels")


def test_a_processed_mesh_naming_an_image_file_is_refused(tmp_path):
    """a3d embeds its atlas in the processed mesh: one whose image is a file beside it was not written by a3d."""
    (tmp_path / "atlas.png").write_bytes(png_bytes(wide_texture(8, 8)))
    path = processed_glb_with_image(tmp_path, {"uri": "atlas.png"})
    with pytest.raises(InputError, match="not embedded"):
        load_processed_mesh(path)


def test_a_reduced_texture_is_the_linear_light_mean_of_each_block_whatever_the_band(monkeypatch):
    """Halving a 64² opaque texture gives each texel the mean of its 2 × 2 block in linear light (within a level
    of float rounding), and the same bytes whether the rows are averaged in bands of a few texels or at once."""
    from a3d_cli.mesh import texture_reduce

    rng = np.random.default_rng(8)
    texture = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    texture[..., 3] = 255
    whole = texture_reduce.reduce_texture(texture, (32, 32))
    blocks = srgb_decode(texture[..., :3].astype(np.float64)).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(whole[..., :3].astype(int) - srgb_encode(blocks)).max() <= 1
    assert (whole[..., 3] == 255).all()
    monkeypatch.setattr(texture_reduce, "BAND_TEXELS", 100)  # a band of one output row
    np.testing.assert_array_equal(texture_reduce.reduce_texture(texture, (32, 32)), whole)



@pytest.mark.parametrize("rows", [1, 12])
def test_a_texture_far_longer_than_its_reduction_is_averaged_a_tile_at_a_time(monkeypatch, rows):
    """A strip `rows` tall and 2000 texels long reduced to one row of 50 (as a strip far longer than ATLAS_SIDE
    is): a band of one output row would hold the whole strip, as long as the texture whatever the band's budget;
    averaged in tiles of columns, no block converted holds more than the budget (100 texels here) and one output
    texel's footprint (rows × 40), and each output texel is still the linear-light mean of its texels."""
    from a3d_cli.mesh import texture_reduce

    strip = np.random.default_rng(4).integers(0, 256, (rows, 2000, 3), dtype=np.uint8)
    monkeypatch.setattr(texture_reduce, "BAND_TEXELS", 100)
    blocks: list[int] = []
    real = texture_reduce._averaged
    monkeypatch.setattr(texture_reduce, "_averaged", lambda source, across, down: (blocks.append(source.shape[0] * source.shape[1]), real(source, across, down))[1])
    reduced = texture_reduce.reduce_texture(strip, (1, 50))
    assert max(blocks) <= 100 + rows * 40
    light = srgb_decode(strip.astype(np.float64)).reshape(rows, 50, 40, 3).mean(axis=(0, 2))[None]  # [1, 50, 3]
    assert np.abs(reduced.astype(int) - srgb_encode(light)).max() <= 1


def test_a_mip_level_larger_than_the_band_limit_is_halved_in_bands(monkeypatch):
    """Splat colours read a mip chain of the texture; its levels above MIP_BAND_TEXELS are halved a band at a
    time, so the whole-level float copies (`box_filtered`) are only ever made of levels within it (here: a 64²
    texture with the limit made 16², so box filtering starts at level 2, 16²)."""
    monkeypatch.setattr(appearance, "MIP_BAND_TEXELS", 16 * 16, raising=False)
    filtered: list[tuple[int, ...]] = []
    real = appearance.box_filtered
    monkeypatch.setattr(appearance, "box_filtered", lambda texture, sizes: (filtered.append(texture.shape[:2]), real(texture, sizes))[1])
    texture = np.random.default_rng(9).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    chain = appearance.mip_chain(texture)
    assert [level.shape[:2] for level in chain] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert filtered == [(16, 16)]
