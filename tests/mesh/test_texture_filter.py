"""Texture magnification filters: a glTF sampler's `magFilter` NEAREST reads the texel holding each point (crisp
texels, as pixel-art, voxel and low-poly assets ask and Blender, three.js and game engines show), LINEAR and
anything glTF does not define read bilinearly; a NEAREST texture keeps its texels in an atlas beside LINEAR ones.
Minification: where splats lie several texels apart, their colours are the texture averaged (in linear light) over
that spacing, not one texel picked at random."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import GL_FLOAT, GL_UINT, GlbBuilder, khronos_validate, needs_program, png_bytes

from a3d_cli.mesh import appearance
from a3d_cli.mesh.appearance import LINEAR, NEAREST, mip_chain, replicate_texels
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.surface import SurfaceMesh, concatenate
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians

NEAREST_GL, LINEAR_GL, LINEAR_MIPMAP_LINEAR_GL = 9728, 9729, 9987  # the glTF 2.0 spec's sampler.magFilter / minFilter


def to_linear(c):
    """sRGB → linear (IEC 61966-2-1), written here from the standard."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_srgb(c):
    """linear → sRGB, clamped to [0, 1] first."""
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.clip(c, 0, 1) ** (1 / 2.4) - 0.055)


def random_image(seed: int, size: int = 4) -> np.ndarray:
    """[size, size, 3] uint8."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def grid(cells: int) -> tuple[np.ndarray, np.ndarray]:
    """The unit square as a cells × cells grid of squares, two triangles each, vertices at the grid's corners:
    positions (x, y = u, v; z = 0) [V, 3] and faces [T, 3]."""
    t = np.linspace(0.0, 1.0, cells + 1)
    u, v = (a.ravel() for a in np.meshgrid(t, t))
    corner = (np.arange(cells)[None, :] + (cells + 1) * np.arange(cells)[:, None]).ravel()  # bottom-left of each cell
    a, b, c, d = corner, corner + 1, corner + cells + 2, corner + cells + 1
    faces = np.concatenate([np.c_[a, b, c], np.c_[a, c, d]]).astype(np.int64)
    return np.c_[u, v, np.zeros_like(u)], faces


def square_glb(path, images: list[np.ndarray], samplers: list[dict], material: dict | None = None, cells: int = 4):
    """A `grid(cells)` square whose texture coordinates are its positions; image k becomes texture k with sampler
    k; the material defaults to texture 0 as the base colour."""
    vertices, faces = grid(cells)
    b = GlbBuilder()
    b.doc["samplers"] = samplers
    b.doc["textures"] = [{"sampler": k, "source": b.image(png_bytes(im), "image/png")} for k, im in enumerate(images)]
    b.doc["materials"] = [material or {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    uv = np.c_[vertices[:, 0], 1 - vertices[:, 1]].astype(np.float32)  # glTF's origin is the top-left
    attributes = {"POSITION": b.accessor(vertices.astype(np.float32), GL_FLOAT, "VEC3"),
                  "TEXCOORD_0": b.accessor(uv, GL_FLOAT, "VEC2")}  # fmt: skip
    b.mesh(attributes, b.accessor(faces.astype(np.uint32).ravel(), GL_UINT, "SCALAR"), material=0)
    return b.save(path)


def locate(mesh: SurfaceMesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face index [S] and barycentric weights [S, 3] of points (x, y) of a flat mesh in the z = 0 plane."""
    tri = mesh.vertices[mesh.faces][:, :, :2]  # [T, 3, 2]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # [T, 2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # [T]
    d = points[:, None, :] - tri[None, :, 0]  # [S, T, 2]
    b1 = (d[..., 0] * e2[:, 1] - d[..., 1] * e2[:, 0]) / det
    b2 = (e1[:, 0] * d[..., 1] - e1[:, 1] * d[..., 0]) / det
    bary = np.stack([1 - b1 - b2, b1, b2], axis=-1)  # [S, T, 3]
    face = np.argmax(bary.min(axis=-1), axis=1)  # [S] the face holding the point
    return face, bary[np.arange(len(points)), face]


def colours_at(mesh: SurfaceMesh, points: np.ndarray) -> np.ndarray:
    """[S, 3] the mesh's colour (0..255) at points (x, y) of a flat mesh."""
    face, bary = locate(mesh, points)
    return mesh.surface_rgba(face, bary)[:, :3].astype(np.float64) * 255


def texel_of(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """[S, 3] the texel whose square holds each uv (bottom-left origin), by the sampler's definition."""
    h, w = image.shape[:2]
    return image[np.floor((1 - uv[:, 1]) * h).astype(int), np.floor(uv[:, 0] * w).astype(int)].astype(np.float64)


def bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """[S, 3] OpenGL's LINEAR filter at uv inside the image, edge texels extended (written from its definition)."""
    h, w = image.shape[:2]
    x, y = uv[:, 0] * w - 0.5, (1 - uv[:, 1]) * h - 0.5
    i0, j0 = np.floor(y).astype(int), np.floor(x).astype(int)
    a, b = (y - i0)[:, None], (x - j0)[:, None]
    at = lambda i, j: image[np.clip(i, 0, h - 1), np.clip(j, 0, w - 1)].astype(np.float64)  # noqa: E731
    return (1 - a) * ((1 - b) * at(i0, j0) + b * at(i0, j0 + 1)) + a * ((1 - b) * at(i0 + 1, j0) + b * at(i0 + 1, j0 + 1))


def points_off_texel_borders(seed: int, size: int, margin: float, count: int = 300) -> np.ndarray:
    """[count, 2] random points of the unit square at least `margin` texels (of a size × size image) from any
    texel border."""
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, size, (count, 2))
    return (cell + margin + rng.random((count, 2)) * (1 - 2 * margin)) / size


@pytest.mark.parametrize(
    "sampler",
    [{"magFilter": NEAREST_GL}, {"magFilter": NEAREST_GL, "minFilter": LINEAR_MIPMAP_LINEAR_GL}],
    ids=["nearest", "nearest-mag-linear-min"],
)
def test_a_nearest_sampler_reads_the_texel_holding_each_point(tmp_path, sampler):
    """magFilter NEAREST: everywhere on the square the colour is the texel whose square holds the point, not a
    blend of four (whatever minFilter says: a3d's splats magnify such a texture)."""
    image = random_image(0)
    mesh = load_mesh(square_glb(tmp_path / "pixels.glb", [image], [sampler]))
    assert mesh.mag_filter == NEAREST
    points = np.random.default_rng(1).random((400, 2))
    np.testing.assert_allclose(colours_at(mesh, points), texel_of(image, points), atol=1e-3)


@pytest.mark.parametrize("sampler", [{"magFilter": LINEAR_GL}, {}], ids=["linear", "no-filter"])
def test_a_linear_or_unset_sampler_reads_bilinearly_as_before(tmp_path, sampler):
    """magFilter LINEAR, or none given: OpenGL's bilinear filter (blends of the four texels around the point)."""
    image = random_image(0)
    mesh = load_mesh(square_glb(tmp_path / "smooth.glb", [image], [sampler]))
    assert mesh.mag_filter == LINEAR
    points = np.random.default_rng(1).random((400, 2))
    got = colours_at(mesh, points)
    np.testing.assert_allclose(got, bilinear(image, points), atol=1e-3)
    assert np.abs(got - texel_of(image, points)).max() > 20  # a blend, not the texels


def test_nearest_vertex_and_splat_colours_are_the_texels_of_their_faces(tmp_path):
    """A 4×4 image on a 4×4 grid whose vertices sit on texel corners, where the nearest texel jumps: every
    surface splat has its face's texel colour, and every vertex (hence its splat) the mean of the texels of
    the faces around it, as a renderer draws them; no splat picks a texel its faces do not show."""
    image = random_image(2)
    mesh = load_mesh(square_glb(tmp_path / "voxel.glb", [image], [{"magFilter": NEAREST_GL}]))
    centroid_uv = mesh.uvs[mesh.faces].mean(axis=1)  # [T, 2]: inside the face's texel
    face_texel = texel_of(image, centroid_uv)  # [T, 3]
    want = np.zeros((mesh.num_vertices, 3))
    count = np.zeros(mesh.num_vertices)
    for t, corners in enumerate(mesh.faces):
        want[corners] += face_texel[t]
        count[corners] += 1
    np.testing.assert_allclose(mesh.vertex_rgba()[:, :3] * 255, want / count[:, None], atol=1e-3)
    gaussians, binding = mesh_to_gaussians(mesh, target_splats=400, seed=0)
    samples = gaussians.colors.numpy()[binding.num_vertex_splats :] * 255  # [S, 3]
    assert len(samples) > 100
    np.testing.assert_allclose(samples, face_texel[binding.sample_face], atol=1e-3)


def part(image: np.ndarray, mag_filter: int, offset: float, cells: int = 4) -> SurfaceMesh:
    """The `grid(cells)` square moved by `offset` along x, textured with `image` (uv = the unmoved position)."""
    vertices, faces = grid(cells)
    texture = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    colours = np.ones((len(vertices), 4), np.float32)
    return SurfaceMesh(vertices + [offset, 0, 0], faces, colours, vertices[:, :2].copy(), texture, mag_filter=mag_filter)


def test_a_nearest_texture_keeps_its_texels_in_an_atlas_beside_a_linear_one():
    """A NEAREST part and a LINEAR part packed into one atlas, read bilinearly: the NEAREST part shows its texels
    everywhere but within 1/16 of a texel of their borders (where the replicated texels blend), also its splats
    (magnified: a replicated texel counts as one), the LINEAR part its bilinear colours."""
    crisp, smooth = random_image(3), random_image(4, 8)
    joined = concatenate([part(crisp, NEAREST, 0.0), part(smooth, LINEAR, 2.0)])
    assert joined.mag_filter == LINEAR
    points = points_off_texel_borders(5, 4, 1 / 16)
    np.testing.assert_allclose(colours_at(joined, points), texel_of(crisp, points), atol=1e-3)
    inner = 1 / 16 + points_off_texel_borders(6, 1, 0.0) * (1 - 2 / 16)  # bilinear at the atlas edge padding aside
    np.testing.assert_allclose(colours_at(joined, inner + [2, 0]), bilinear(smooth, inner), atol=1e-3)
    gaussians, binding = mesh_to_gaussians(joined, target_splats=300, seed=0)  # a fifth of a texel apart
    where = gaussians.means.numpy()[binding.num_vertex_splats :, :2]  # [S, 2] = uv on the NEAREST part
    colours = gaussians.colors.numpy()[binding.num_vertex_splats :] * 255
    crisp_part = (where[:, 0] < 1.5) & (np.abs(where * 4 - np.round(where * 4)).min(axis=1) > 1 / 16)
    assert crisp_part.sum() > 60
    np.testing.assert_allclose(colours[crisp_part], texel_of(crisp, where[crisp_part]), atol=1e-3)


def test_an_atlas_of_nearest_textures_only_is_read_nearest_exactly():
    """Two NEAREST parts: the atlas is NEAREST, and every point of either part shows its own texel."""
    a, b = random_image(7), random_image(8, 2)
    joined = concatenate([part(a, NEAREST, 0.0), part(b, NEAREST, 2.0, cells=2)])
    assert joined.mag_filter == NEAREST
    points = np.random.default_rng(9).random((300, 2))
    np.testing.assert_allclose(colours_at(joined, points), texel_of(a, points), atol=1e-3)
    np.testing.assert_allclose(colours_at(joined, points + [2, 0]), texel_of(b, points), atol=1e-3)


def test_many_nearest_textures_beside_a_linear_one_share_one_replication_budget():
    """64 NEAREST 32×32 textures beside a LINEAR one: each replicated 16 times on its own terms made an atlas
    of 64 · 512² texels (a few kilobytes of glTF became gigabytes with a few hundred such textures); together
    they now hold at most 2048² texels, and each part still shows its own texels away from the blend band."""
    images = [random_image(100 + k, 32) for k in range(64)]
    parts = [part(im, NEAREST, 2.0 * k) for k, im in enumerate(images)] + [part(random_image(99), LINEAR, -2.0)]
    joined = concatenate(parts)
    assert joined.mag_filter == LINEAR
    assert joined.texture.shape[0] * joined.texture.shape[1] < 2 * 2048**2  # the 64 textures within 2048², gaps
    points = points_off_texel_borders(6, 32, 1 / 4, count=50)
    for k in (0, 63):
        np.testing.assert_allclose(colours_at(joined, points + [2.0 * k, 0]), texel_of(images[k], points), atol=1e-3)


@pytest.mark.parametrize(("shape", "factor"), [((4, 4, 4), 16), ((1000, 10, 4), 2), ((4096, 1, 4), 1)])
def test_replication_is_bounded(shape, factor):
    """Texels are replicated at most 16 times per axis and sides stay within 2048 (a texture larger than that
    goes in as it is)."""
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    big = replicate_texels(image)
    assert big.shape == (shape[0] * factor, shape[1] * factor, 4)
    np.testing.assert_array_equal(big[::factor, ::factor], image)


@pytest.mark.parametrize("value", [9999, -1, "9728", True, 9984, None, [9728]], ids=repr)
def test_a_filter_value_gltf_does_not_define_reads_as_linear(tmp_path, value):
    """magFilter allows 9728 and 9729 only (glTF 2.0; the Khronos validator reports other values): anything else,
    a minFilter value, a string, a boolean or null, reads bilinearly, exactly as a file without it, as three.js
    falls back to LINEAR; nothing fails."""
    image = random_image(10)
    plain = load_mesh(square_glb(tmp_path / "plain.glb", [image], [{}]))
    odd = load_mesh(square_glb(tmp_path / "odd.glb", [image], [{"magFilter": value, "minFilter": value}]))
    assert odd.mag_filter == LINEAR
    np.testing.assert_array_equal(odd.texture, plain.texture)
    np.testing.assert_array_equal(odd.vertex_rgba(), plain.vertex_rgba())


def test_a_nearest_emissive_texture_adds_its_nearest_texels(tmp_path):
    """A 4×4 base texture and a 2×2 emissive texture with magFilter NEAREST on the same coordinates: each base
    texel gets the emissive texel holding its centre (one of four, unblended), in linear light."""
    base, glow = random_image(11), random_image(12, 2)
    material = {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}, "emissiveTexture": {"index": 1},
                "emissiveFactor": [0.5, 0.5, 0.5]}  # fmt: skip
    samplers = [{"magFilter": LINEAR_GL}, {"magFilter": NEAREST_GL}]
    mesh = load_mesh(square_glb(tmp_path / "glow.glb", [base, glow], samplers, material))
    glow_per_texel = np.repeat(np.repeat(glow, 2, axis=0), 2, axis=1)  # [4, 4, 3]: the 2×2 texel holding each centre
    want = to_srgb(to_linear(base / 255) + 0.5 * to_linear(glow_per_texel / 255))
    np.testing.assert_array_equal(mesh.texture[..., :3], np.round(want * 255).astype(np.uint8))
    assert mesh.mag_filter == LINEAR


def checker(size: int) -> np.ndarray:
    """[size, size, 3] uint8: one-texel black and white squares (a fine weave); from afar, linear-light grey."""
    y, x = np.mgrid[0:size, 0:size]
    return np.repeat((((x + y) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)


GREY = float(np.round(to_srgb(0.5) * 255))  # the checker's mean, 50 % light, as sRGB (188)


def test_each_mip_level_is_the_linear_light_mean_of_the_texels_it_covers():
    """A 16×16 image: levels of 8, 4, 2 and 1 texels a side, each texel the mean in linear light of the 2^k × 2^k
    texels of the image it covers, weighted by their alpha (alpha averaged as it is)."""
    image = np.random.default_rng(13).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    chain = mip_chain(image)
    assert [level.shape for level in chain] == [(n, n, 4) for n in (16, 8, 4, 2, 1)]
    for k, level in enumerate(chain):
        n = 2**k
        blocks = image.reshape(16 // n, n, 16 // n, n, 4).astype(np.float64) / 255
        weights = blocks[..., 3:]
        total = weights.sum(axis=(1, 3))
        weighted = (to_linear(blocks[..., :3]) * weights).sum(axis=(1, 3)) / np.maximum(total, 1e-12)
        rgb = to_srgb(np.where(total > 0, weighted, to_linear(blocks[..., :3]).mean(axis=(1, 3)))) * 255
        alpha = blocks[..., 3].mean(axis=(1, 3)) * 255
        np.testing.assert_allclose(level[..., :3], rgb, atol=0.51)
        np.testing.assert_allclose(level[..., 3], alpha, atol=0.51)


def area_shares(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] the share of output texel j's span [j·s, (j + 1)·s), s = n_in / n_out, that source texel i
    [i, i + 1) covers: the area average of one axis, from its definition."""
    s = n_in / n_out
    j, i = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    return np.clip(np.minimum(i + 1, (j + 1) * s) - np.maximum(i, j * s), 0, None) / s


def test_a_mip_level_of_an_odd_side_shares_the_middle_texel_between_its_neighbours():
    """A 5 × 3 texture halves to 3 × 2: each new texel is the mean, in linear light, of the area of the texture it
    covers, partial texels by their overlap (3 → 2 columns: the first whole texel and half the middle one, over
    1.5 texels). A filter that gives the middle texel to one neighbour whole is up to half a texel off."""
    image = np.random.default_rng(21).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    level = mip_chain(image)[1]
    down, across = area_shares(5, 3), area_shares(3, 2)  # [3, 5], [2, 3]
    want = to_srgb(np.einsum("ai,bj,ijc->abc", down, across, to_linear(image / 255))) * 255
    assert level.shape == (3, 2, 3)
    np.testing.assert_allclose(level, want, atol=0.51)


def test_mip_levels_halved_whole_and_in_bands_are_averaged_alike(monkeypatch):
    """Levels above MIP_BAND_TEXELS are halved a band of rows at a time, smaller ones whole: on a 37 × 23 texture
    (odd sides at every level) the first halving comes out the same either way, to the rounding of an 8-bit
    level."""
    texture = np.random.default_rng(22).integers(0, 256, (37, 23, 4), dtype=np.uint8)
    whole = mip_chain(texture)
    monkeypatch.setattr(appearance, "MIP_BAND_TEXELS", 16, raising=False)
    banded = mip_chain(texture)
    assert [level.shape for level in banded] == [level.shape for level in whole]
    assert np.abs(banded[1].astype(int) - whole[1]).max() <= 1


def test_mip_levels_keep_the_colour_of_the_visible_texels_of_a_cut_out():
    """A leaf-card texture: green opaque texels beside transparent ones whose hidden colour is black. Coarse
    levels stay green (only their alpha falls), where an unweighted mean would darken them; a coarse texel over
    transparent texels alone takes their own colour."""
    image = np.zeros((8, 8, 4), np.uint8)
    image[:, :2] = (40, 200, 60, 255)  # a quarter of the card is leaf
    chain = mip_chain(image)
    for level in chain[1:]:
        leafy = level[..., 3] > 0
        np.testing.assert_array_equal(level[leafy][:, :3], np.tile([40, 200, 60], (int(leafy.sum()), 1)))
    assert chain[-1][0, 0, 3] == 64  # a quarter covered, as before
    np.testing.assert_array_equal(chain[1][:, 2:, :3], 0)  # only hidden black under the bare part


def test_an_opaque_rgba_texture_and_its_rgb_give_the_same_chain():
    image = np.random.default_rng(5).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    rgba = np.concatenate([image, np.full((12, 20, 1), 255, np.uint8)], axis=2)
    for plain, with_alpha in zip(mip_chain(image), mip_chain(rgba), strict=True):
        np.testing.assert_array_equal(with_alpha[..., :3], plain)
        assert (with_alpha[..., 3] == 255).all()


def test_splats_many_texels_apart_show_the_textures_mean_not_single_texels(tmp_path):
    """A 1024² one-texel checker on the square under 2,000 splats (about 20 texels apart): every splat is the
    checker's linear-light grey, where a lookup at one point gives black or white."""
    mesh = load_mesh(square_glb(tmp_path / "weave.glb", [checker(1024)], [{}], cells=8))
    gaussians, _ = mesh_to_gaussians(mesh, target_splats=2000, seed=0)
    colours = gaussians.colors.numpy() * 255
    assert len(colours) > 1500
    np.testing.assert_allclose(colours, GREY, atol=1.5)


def test_a_magnified_texture_reads_as_without_a_footprint(tmp_path):
    """An 8×8 texture under 2,000 splats (a fifth of a texel apart): splat colours are the texture read at their
    points, bit for bit as `surface_rgba` without a spacing gives them."""
    mesh = load_mesh(square_glb(tmp_path / "big_texels.glb", [random_image(14, 8)], [{}], cells=8))
    gaussians, binding = mesh_to_gaussians(mesh, target_splats=2000, seed=0)
    at_points = mesh.surface_rgba(binding.sample_face, binding.sample_bary.astype(np.float64))[:, :3]
    np.testing.assert_allclose(gaussians.colors.numpy()[binding.num_vertex_splats :], at_points, atol=1e-6)


def test_in_an_atlas_each_image_is_averaged_on_its_own():
    """A 1024² checker packed beside a small texture under 2,000 splats (about 45 texels apart): every splat on
    the checker is its grey, also near its island's border, where one mip chain over the whole atlas would blend
    in the atlas's white gaps and the other image."""
    weave = part(checker(1024), LINEAR, 0.0, cells=8)
    joined = concatenate([weave, part(random_image(15, 8), LINEAR, 2.0)])
    assert len(joined.islands) == 3  # the two images and the white patch
    gaussians, _ = mesh_to_gaussians(joined, target_splats=2000, seed=0)
    on_weave = gaussians.means.numpy()[:, 0] < 1.5
    assert on_weave.sum() > 700
    np.testing.assert_allclose(gaussians.colors.numpy()[on_weave] * 255, GREY, atol=1.5)


@pytest.mark.parametrize(("sampler", "mag", "min_"), [({"magFilter": NEAREST_GL}, NEAREST_GL, 9984), ({}, LINEAR_GL, 9987)])
def test_the_filter_survives_the_processed_mesh_and_the_animated_export(tmp_path, sampler, mag, min_):
    """`source/mesh.glb` keeps a NEAREST texture NEAREST (a sampler saying so; none for LINEAR, as before), and
    the animated GLB names it with the minFilter Blender writes for "Closest" (NEAREST_MIPMAP_NEAREST), so that
    Blender and three.js show the animated asset with crisp texels; LINEAR stays LINEAR with mip-maps."""
    from a3d_cli.mesh.gltf_accessors import parse_gltf
    from a3d_cli.mesh.gltf_animated import animated_glb_bytes, mesh_material
    from a3d_cli.mesh.store import load_processed_mesh, mesh_glb_bytes, save_processed_mesh

    mesh = load_mesh(square_glb(tmp_path / "asset.glb", [random_image(16)], [sampler]))
    processed, _ = parse_gltf(mesh_glb_bytes(mesh), "mesh.glb")
    assert ("samplers" in processed) == (mag == NEAREST_GL)
    save_processed_mesh(tmp_path / "mesh.glb", mesh)
    back = load_processed_mesh(tmp_path / "mesh.glb")
    assert back.mag_filter == mag
    material, _ = mesh_material(back)
    frames = np.stack([back.vertices, back.vertices + 0.1])
    doc, _ = parse_gltf(animated_glb_bytes(back.vertices, back.faces, frames, uvs=back.uvs, material=material), "out")
    assert doc["samplers"] == [{"magFilter": mag, "minFilter": min_, "wrapS": 10497, "wrapT": 10497}]
    assert [t["sampler"] for t in doc["textures"]] == [0]


def nearest_processed_glb(tmp_path, alpha_mode: str):
    """A NEAREST-textured square saved as `source/mesh.glb` is (odd-sized texture; BLEND with alpha and vertex
    colours, so COLOR_0 gets a view too): (mesh, path)."""
    from dataclasses import replace

    from a3d_cli.mesh.store import save_processed_mesh

    rng = np.random.default_rng(5)
    mesh = part(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), NEAREST, 0.0)
    if alpha_mode == "BLEND":
        texture = mesh.texture.copy()
        texture[..., 3] = rng.integers(0, 256, texture.shape[:2])
        colours = np.concatenate([rng.random((mesh.num_vertices, 3)), np.ones((mesh.num_vertices, 1))], axis=1)
        mesh = replace(mesh, texture=texture, alpha_mode="BLEND", vertex_colors=colours.astype(np.float32))
    save_processed_mesh(tmp_path / "mesh.glb", mesh)
    return mesh, tmp_path / "mesh.glb"


@pytest.mark.parametrize("alpha_mode", ["OPAQUE", "BLEND"])
def test_a_nearest_processed_mesh_keeps_its_sampler_and_the_level_1_png_in_a_sound_buffer(tmp_path, alpha_mode):
    """Two changes write `source/mesh.glb`'s texture: its NEAREST sampler, and its PNG encoded at zlib level 1
    (`TEXTURE_PNG_LEVEL`) and swapped into the buffer trimesh wrote. Both must be there together, the views laid
    out 4-byte aligned, apart and inside the buffer, and the geometry read back as written."""
    import io

    from PIL import Image

    from a3d_cli.mesh.gltf_accessors import parse_gltf
    from a3d_cli.mesh.store import load_processed_mesh

    mesh, path = nearest_processed_glb(tmp_path, alpha_mode)
    doc, binary = parse_gltf(path.read_bytes(), "mesh.glb")
    assert doc["samplers"] == [{"magFilter": NEAREST_GL, "minFilter": 9984, "wrapS": 10497, "wrapT": 10497}]
    assert [t["sampler"] for t in doc["textures"]] == [0]
    views = doc["bufferViews"]
    spans = sorted((v.get("byteOffset", 0), v.get("byteOffset", 0) + v["byteLength"]) for v in views)
    assert all(start % 4 == 0 for start, _ in spans)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False))
    assert spans[-1][1] <= doc["buffers"][0]["byteLength"] <= len(binary)
    image = views[doc["images"][0]["bufferView"]]
    png = bytes(binary[image.get("byteOffset", 0) : image.get("byteOffset", 0) + image["byteLength"]])
    texels = mesh.texture[..., :3] if alpha_mode == "OPAQUE" else mesh.texture
    level_1 = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(texels)).save(level_1, format="PNG", compress_level=1)
    assert png == level_1.getvalue()  # Pillow's own level-1 encode of these texels, byte for byte
    back = load_processed_mesh(path, expected_vertices=mesh.num_vertices)
    assert back.mag_filter == NEAREST_GL and back.alpha_mode == alpha_mode
    np.testing.assert_array_equal(back.texture[..., : texels.shape[-1]], texels)
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_allclose(back.uvs, mesh.uvs, atol=1e-6)
    np.testing.assert_array_equal(back.faces, mesh.faces)


@needs_program("A3D_GLTF_VALIDATOR")
@pytest.mark.parametrize("alpha_mode", ["OPAQUE", "BLEND"])
def test_a_nearest_processed_mesh_is_valid_gltf(tmp_path, alpha_mode):
    """The Khronos validator finds no error or warning in a NEAREST texture's `source/mesh.glb` (sampler and
    swapped-in PNG together)."""
    _, path = nearest_processed_glb(tmp_path, alpha_mode)
    issues = khronos_validate(path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
