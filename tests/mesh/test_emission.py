"""glTF emission: a material's emitted colour (emissiveFactor × emissiveTexture × KHR_materials_emissive_strength)
adds to its base colour in linear light, clamped to [0, 1], so a part lit only by emission (a screen, glowing eyes)
shows its glow; materials that emit nothing read exactly as before."""

from __future__ import annotations

import numpy as np
from helpers import GL_FLOAT, GL_UINT, GlbBuilder, png_bytes

from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians

STRENGTH = "KHR_materials_emissive_strength"
TRANSFORM = "KHR_texture_transform"
TEXEL_UV = (np.arange(4) + 0.5) / 4  # texel centres of a 4×4 image along one axis
SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)  # the unit square's corners, also their uv
FACES = np.array([0, 1, 2, 0, 2, 3], np.uint32)


def to_linear(c):
    """sRGB → linear (IEC 61966-2-1), written here from the standard."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_srgb(c):
    """linear → sRGB, clamped to [0, 1] first."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def random_image(seed: int) -> np.ndarray:
    """[4, 4, 3] uint8."""
    return np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)


def texture_glb(path, material: dict, images: list, uv_sets: list[np.ndarray] | None = None, use=()):
    """A unit square (x, y = u, v) with one material; `images` (arrays, or URIs of image files) become textures
    0, 1, … (one sampler); `uv_sets` are the TEXCOORD_n (bottom-left origin, flipped here to glTF's top-left),
    by default one set equal to the positions."""
    b = GlbBuilder()
    b.doc["samplers"] = [{}]
    for image in images:
        if isinstance(image, str):
            b.doc.setdefault("images", []).append({"uri": image})
            source = len(b.doc["images"]) - 1
        else:
            source = b.image(png_bytes(image), "image/png")
        b.doc.setdefault("textures", []).append({"sampler": 0, "source": source})
    b.doc["materials"] = [material]
    attributes = {"POSITION": b.accessor(np.c_[SQUARE, np.zeros(4)].astype(np.float32), GL_FLOAT, "VEC3")}
    for n, uv in enumerate(uv_sets if uv_sets is not None else [SQUARE]):
        attributes[f"TEXCOORD_{n}"] = b.accessor(np.c_[uv[:, 0], 1 - uv[:, 1]].astype(np.float32), GL_FLOAT, "VEC2")
    b.mesh(attributes, b.accessor(FACES, GL_UINT, "SCALAR"), material=0)
    for ext in use:
        b.use(ext)
    return b.save(path)


def factor_glb(path, material: dict, use=()):
    """The unit square without texture coordinates, with one material."""
    b = GlbBuilder()
    b.doc["materials"] = [material]
    position = b.accessor(np.c_[SQUARE, np.zeros(4)].astype(np.float32), GL_FLOAT, "VEC3")
    b.mesh({"POSITION": position}, b.accessor(FACES, GL_UINT, "SCALAR"), material=0)
    for ext in use:
        b.use(ext)
    return b.save(path)


def texel_colours(mesh) -> np.ndarray:
    """[4, 4, 3] the mesh's colour (0..1) at the centres of a 4×4 image's texels over the square (row 0: top)."""
    u, v = np.meshgrid(TEXEL_UV, 1 - TEXEL_UV)
    points = np.c_[u.ravel(), v.ravel()]
    lower = points[:, 0] >= points[:, 1]  # face 0: corners 0, 1, 2; face 1: corners 0, 2, 3
    below = np.c_[1 - points[:, 0], points[:, 0] - points[:, 1], points[:, 1]]
    above = np.c_[1 - points[:, 1], points[:, 0], points[:, 1] - points[:, 0]]
    bary = np.where(lower[:, None], below, above)
    return mesh.surface_rgba(np.where(lower, 0, 1), bary)[:, :3].reshape(4, 4, 3).astype(np.float64)


def test_a_black_material_with_an_emissive_factor_shows_the_emitted_colour(tmp_path):
    """Black base colour + emissiveFactor (1, 0.5, 0): every vertex and every splat has that colour, as sRGB."""
    material = {"pbrMetallicRoughness": {"baseColorFactor": [0, 0, 0, 1]}, "emissiveFactor": [1, 0.5, 0]}
    mesh = load_mesh(factor_glb(tmp_path / "glow.glb", material))
    want = to_srgb([1, 0.5, 0])
    np.testing.assert_allclose(mesh.vertex_rgba()[:, :3], np.tile(want, (4, 1)), atol=1e-6)
    gaussians, _ = mesh_to_gaussians(mesh, target_splats=50, seed=0)
    colours = gaussians.colors.numpy()
    assert len(colours) > 4
    np.testing.assert_allclose(colours, np.tile(want, (len(colours), 1)), atol=1e-5)


def test_the_emissive_strength_multiplies_the_factor_and_the_sum_is_clamped(tmp_path):
    """Factor (1, 0.5, 0) × strength 2 on a base of linear (0, 0, 0.4): linear (2, 1, 0.4), clamped to (1, 1, 0.4)."""
    material = {"pbrMetallicRoughness": {"baseColorFactor": [0, 0, 0.4, 1]}, "emissiveFactor": [1, 0.5, 0],
                "extensions": {STRENGTH: {"emissiveStrength": 2.0}}}  # fmt: skip
    mesh = load_mesh(factor_glb(tmp_path / "strong.glb", material, use=[STRENGTH]))
    np.testing.assert_allclose(mesh.vertex_rgba()[:, :3], np.tile(to_srgb([1, 1, 0.4]), (4, 1)), atol=1e-6)


def test_an_emissive_texture_on_the_base_textures_uv_set_adds_per_texel(tmp_path):
    """Base and emissive textures (4×4 each) on TEXCOORD_1 with one texture transform: the baked texture, and the
    surface at each texel's centre, is sRGB(linear(base) + factor · linear(emissive)) texel by texel."""
    base, glow = random_image(0), random_image(1)
    turn = {"KHR_texture_transform": {"offset": [1, 1], "scale": [-1, -1]}}  # glTF's (s, t) → (1 − s, 1 − t)
    info = {"texCoord": 1, "extensions": turn}
    material = {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0, **info}},
                "emissiveTexture": {"index": 1, **info}, "emissiveFactor": [0.5, 1, 0.25]}  # fmt: skip
    # TEXCOORD_1 is the square turned half a turn, which the transform turns back; TEXCOORD_0 is never read
    path = texture_glb(tmp_path / "screen.glb", material, [base, glow], [SQUARE * 9, 1 - SQUARE], use=[TRANSFORM])
    mesh = load_mesh(path)
    want = to_srgb(to_linear(base / 255) + np.array([0.5, 1, 0.25]) * to_linear(glow / 255))  # [4, 4, 3]
    assert mesh.texture.shape == (4, 4, 4)
    np.testing.assert_array_equal(mesh.texture[..., :3], np.round(want * 255).astype(np.uint8))
    np.testing.assert_allclose(texel_colours(mesh), want, atol=0.51 / 255)


def test_an_emissive_factor_adds_to_every_texel_of_a_base_texture(tmp_path):
    """A base texture and an emissive factor alone: each texel is sRGB(linear(base) + factor)."""
    base = random_image(8)
    material = {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}, "emissiveFactor": [0, 0.05, 0.3]}
    mesh = load_mesh(texture_glb(tmp_path / "lit.glb", material, [base]))
    want = to_srgb(to_linear(base / 255) + np.array([0, 0.05, 0.3]))
    np.testing.assert_array_equal(mesh.texture[..., :3], np.round(want * 255).astype(np.uint8))


def test_an_emissive_texture_without_a_base_texture_is_the_tinted_image_plus_the_base_factor(tmp_path):
    """No base-colour texture: the texture is the emissive image × its factor plus the base factor, read through
    the emissive texture's own UV set (TEXCOORD_1; TEXCOORD_0 holds other coordinates)."""
    glow = random_image(2)
    material = {"pbrMetallicRoughness": {"baseColorFactor": [0.2, 0.4, 0, 1]},
                "emissiveTexture": {"index": 0, "texCoord": 1}, "emissiveFactor": [1, 0.5, 1]}  # fmt: skip
    mesh = load_mesh(texture_glb(tmp_path / "eyes.glb", material, [glow], [SQUARE[::-1] * 0.3, SQUARE]))
    want = to_srgb(np.array([0.2, 0.4, 0]) + np.array([1, 0.5, 1]) * to_linear(glow / 255))
    np.testing.assert_array_equal(mesh.uvs, SQUARE)
    np.testing.assert_array_equal(mesh.texture[..., :3], np.round(want * 255).astype(np.uint8))
    np.testing.assert_allclose(texel_colours(mesh), want, atol=0.51 / 255)


def test_an_emissive_texture_on_another_uv_set_adds_its_average_colour(tmp_path):
    """Base on TEXCOORD_0, emissive on TEXCOORD_1: a3d keeps one UV set, so the emission is the emissive image's
    mean linear colour × its factor, added to every base texel."""
    base, glow = random_image(3), random_image(4)
    material = {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}},
                "emissiveTexture": {"index": 1, "texCoord": 1}, "emissiveFactor": [0.2, 0.2, 0.2]}  # fmt: skip
    mesh = load_mesh(texture_glb(tmp_path / "average.glb", material, [base, glow], [SQUARE, SQUARE[::-1]]))
    mean = to_linear(glow / 255).reshape(-1, 3).mean(axis=0)
    want = to_srgb(to_linear(base / 255) + 0.2 * mean)
    np.testing.assert_array_equal(mesh.texture[..., :3], np.round(want * 255).astype(np.uint8))


def test_an_emissive_texture_whose_image_is_missing_takes_the_emission_away(tmp_path):
    """Exporters write emissiveFactor (1, 1, 1) next to the texture: without the image, the factor alone would
    turn the part white; the part keeps its base colour instead."""
    red = {"pbrMetallicRoughness": {"baseColorFactor": [0.6, 0, 0, 1]}}
    material = {**red, "emissiveTexture": {"index": 0}, "emissiveFactor": [1, 1, 1]}
    mesh = load_mesh(texture_glb(tmp_path / "lost.glb", material, ["missing.png"]))
    np.testing.assert_allclose(mesh.vertex_rgba(), np.tile([*to_srgb([0.6, 0, 0]), 1], (4, 1)), atol=1e-6)


def test_materials_that_emit_nothing_read_bit_for_bit_as_before(tmp_path):
    """A black emissiveFactor (glTF's default), with an emissive texture and a strength beside it, changes
    nothing: mesh, texture, coordinates and colours equal those of the same file without any emissive field,
    which are the image itself and the factor's colour."""
    base, other = random_image(6), random_image(7)
    dark = {"emissiveTexture": {"index": 1}, "emissiveFactor": [0, 0, 0],
            "extensions": {STRENGTH: {"emissiveStrength": 5.0}}}  # fmt: skip
    textured = {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}
    plain = load_mesh(texture_glb(tmp_path / "plain.glb", textured, [base, other]))
    mesh = load_mesh(texture_glb(tmp_path / "dark.glb", {**textured, **dark}, [base, other], use=[STRENGTH]))
    for field in ("vertices", "faces", "vertex_colors", "uvs", "texture"):
        np.testing.assert_array_equal(getattr(mesh, field), getattr(plain, field))
    np.testing.assert_array_equal(plain.texture[..., :3], base)
    np.testing.assert_array_equal(plain.uvs, SQUARE)
    tinted = {"pbrMetallicRoughness": {"baseColorFactor": [0.2, 0.4, 0.6, 1]}}
    plain = load_mesh(factor_glb(tmp_path / "tinted.glb", tinted))
    mesh = load_mesh(factor_glb(tmp_path / "tinted_dark.glb", {**tinted, "emissiveFactor": [0, 0, 0]}))
    np.testing.assert_array_equal(mesh.vertex_colors, plain.vertex_colors)
    want = np.tile(to_srgb([0.2, 0.4, 0.6]), (4, 1)).astype(np.float32)
    np.testing.assert_allclose(plain.vertex_colors[:, :3], want, atol=1e-7)


def test_an_emissive_image_on_another_uv_set_is_averaged_a_band_at_a_time(tmp_path, monkeypatch):
    """The average of an emissive image on another UV set is counted a band of rows at a time: no RGBA copy of
    more than a band (made 64 × 4 texels here) of a 64 × 48 image, and the same colour as averaging it whole."""
    from a3d_cli.mesh import appearance

    monkeypatch.setattr("a3d_cli.mesh.texture_reduce.BAND_TEXELS", 64 * 4)
    converted: list[int] = []
    real = appearance.as_rgba_uint8
    monkeypatch.setattr(appearance, "as_rgba_uint8", lambda im: (converted.append(im.size[0] * im.size[1]), real(im))[1])
    base, glow = random_image(5), np.random.default_rng(6).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    material = {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}},
                "emissiveTexture": {"index": 1, "texCoord": 1}, "emissiveFactor": [0.2, 0.2, 0.2]}  # fmt: skip
    mesh = load_mesh(texture_glb(tmp_path / "bands.glb", material, [base, glow], [SQUARE, SQUARE[::-1]]))
    assert max(converted) <= 64 * 4
    mean = to_linear(glow / 255).reshape(-1, 3).mean(axis=0)
    want = to_srgb(to_linear(base / 255) + 0.2 * mean)
    np.testing.assert_array_equal(mesh.texture[..., :3], np.round(want * 255).astype(np.uint8))


def test_an_emissive_strip_wider_than_a_band_is_averaged_a_tile_at_a_time(monkeypatch):
    """One row of 1000 texels with a band of 100: a band of rows would convert the whole row; tiles of columns
    convert at most 100 texels at a time, and the mean is that of every texel in linear light."""
    from PIL import Image

    from a3d_cli.mesh import appearance
    from a3d_cli.mesh.texture_check import image_mean

    monkeypatch.setattr("a3d_cli.mesh.texture_reduce.BAND_TEXELS", 100)
    converted: list[int] = []
    real = appearance.as_rgba_uint8
    monkeypatch.setattr(appearance, "as_rgba_uint8", lambda im: (converted.append(im.size[0] * im.size[1]), real(im))[1])
    strip = np.random.default_rng(7).integers(0, 256, (1, 1000, 3), dtype=np.uint8)
    mean = image_mean(Image.fromarray(strip))
    assert max(converted) <= 100
    np.testing.assert_allclose(mean, to_linear(strip / 255).reshape(-1, 3).mean(axis=0), rtol=1e-12)
