"""Texture wrap modes: glTF samplers' REPEAT / CLAMP_TO_EDGE / MIRRORED_REPEAT, read as a viewer reads them, also
once textures are packed into an atlas; coordinates inside [0, 1] read exactly as without a sampler."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import GL_FLOAT, GL_UINT, GlbBuilder, png_bytes

from a3d_cli.mesh.appearance import (
    CLAMP_TO_EDGE,
    MIRRORED_REPEAT,
    REPEAT,
    WINDOW_SIZE,
    extend_texture,
    sample_texture,
    texel_window,
)
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.surface import SurfaceMesh, concatenate

MODES = {"REPEAT": REPEAT, "CLAMP_TO_EDGE": CLAMP_TO_EDGE, "MIRRORED_REPEAT": MIRRORED_REPEAT}
PAD = {REPEAT: "wrap", CLAMP_TO_EDGE: "edge", MIRRORED_REPEAT: "symmetric"}  # np.pad's name for each mode
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def quadrants() -> np.ndarray:
    """[4, 4, 3] uint8, one colour per 2×2 quadrant: top-left red, top-right green, bottom-left blue,
    bottom-right yellow (v up: v > 0.5 is the top)."""
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2, :2], image[:2, 2:], image[2:, :2], image[2:, 2:] = RED, GREEN, BLUE, YELLOW
    return image


def rgba(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 → opaque [H, W, 4]."""
    return np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])


def grey_part(vertices: np.ndarray, faces: np.ndarray) -> SurfaceMesh:
    """A part with a texture of its own (plain grey), so that joining it packs an atlas."""
    uv = np.full((len(vertices), 2), 0.5)
    return SurfaceMesh(vertices, faces, np.ones((len(vertices), 4), np.float32), uv, np.full((8, 8, 4), 200, np.uint8))


def closed_form(t: np.ndarray, mode: int) -> np.ndarray:
    """Where a sampler with `mode` reads coordinate t, in [0, 1] (the OpenGL / glTF definitions)."""
    if mode == REPEAT:
        return t - np.floor(t)
    if mode == CLAMP_TO_EDGE:
        return np.clip(t, 0.0, 1.0)
    odd = np.floor(t) % 2 == 1
    return np.where(odd, 1.0 - (t - np.floor(t)), t - np.floor(t))


def expected_colours(uv: np.ndarray, wrap: tuple[int, int]) -> np.ndarray:
    """[S, 3] the quadrant colour a viewer shows at each uv (points chosen on texel centres)."""
    u, v = closed_form(uv[:, 0], wrap[0]), closed_form(uv[:, 1], wrap[1])
    col = np.clip(np.floor(u * 4), 0, 3).astype(int)
    row = np.clip(np.floor((1 - v) * 4), 0, 3).astype(int)
    return quadrants()[row, col].astype(np.float64)


def quad(lo: float = -1.0, hi: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square in the XY plane whose position is its texture coordinate: vertices, faces, uvs."""
    uv = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]], np.float64)
    return np.c_[uv, np.zeros(4)], np.array([[0, 1, 2], [0, 2, 3]], np.int64), uv


def texel_centre_points() -> np.ndarray:
    """[144, 2] the texel centres of every cell of the quadrant texture over [-1, 2]²."""
    g = np.arange(-1.0, 2.0, 0.25) + 0.125
    u, v = (a.ravel() for a in np.meshgrid(g, g))
    return np.c_[u, v]


def colours_at(mesh: SurfaceMesh, points: np.ndarray, lo: float = -1.0, hi: float = 2.0) -> np.ndarray:
    """[S, 3] the mesh's colour (0..255) at points of the `quad(lo, hi)` plane (x, y = the original uv)."""
    x = (points - lo) / (hi - lo)  # [S, 2] in the unit square
    lower = x[:, 0] >= x[:, 1]  # face 0: corners 0, 1, 2; face 1: corners 0, 2, 3
    below = np.c_[1 - x[:, 0], x[:, 0] - x[:, 1], x[:, 1]]
    above = np.c_[1 - x[:, 1], x[:, 0], x[:, 1] - x[:, 0]]
    bary = np.where(lower[:, None], below, above)
    return mesh.surface_rgba(np.where(lower, 0, 1), bary)[:, :3].astype(np.float64) * 255


def wrap_glb(path, wrap, uv: np.ndarray, **info):
    """A one-quad GLB (`quad()`) with texture coordinates `uv` whose base-colour texture (`quadrants()`) has a
    sampler with `wrap`; `info` joins the textureInfo."""
    vertices, faces, _ = quad()
    b = GlbBuilder()
    material = b.textured_material({"source": b.image(png_bytes(quadrants()), "image/png")}, **info)
    b.doc["samplers"] = [{"wrapS": wrap[0], "wrapT": wrap[1]}]
    gltf_uv = np.c_[uv[:, 0], 1 - uv[:, 1]].astype(np.float32)  # glTF's origin is the top-left
    attributes = {"POSITION": b.accessor(vertices.astype(np.float32), GL_FLOAT, "VEC3"),
                  "TEXCOORD_0": b.accessor(gltf_uv, GL_FLOAT, "VEC2")}  # fmt: skip
    b.mesh(attributes, b.accessor(faces.astype(np.uint32).ravel(), GL_UINT, "SCALAR"), material=material)
    return b.save(path)


MIXED = [(CLAMP_TO_EDGE, MIRRORED_REPEAT), (MIRRORED_REPEAT, REPEAT), (REPEAT, CLAMP_TO_EDGE)]
WRAPS = [(m, m) for m in MODES.values()] + MIXED


@pytest.mark.parametrize("wrap", WRAPS, ids=lambda w: f"{w[0]}-{w[1]}")
def test_a_gltf_sampler_reads_as_its_wrap_modes_closed_form(tmp_path, wrap):
    """UVs over [-1, 2]²: every texel centre of every cell shows the colour the mode's definition names (REPEAT:
    frac(t); CLAMP_TO_EDGE: clip(t, 0, 1); MIRRORED_REPEAT: frac(t) in even cells, 1 − frac(t) in odd ones)."""
    _, _, uv = quad()
    mesh = load_mesh(wrap_glb(tmp_path / "quad.glb", wrap, uv))
    points = texel_centre_points()
    np.testing.assert_array_equal(np.round(colours_at(mesh, points)), expected_colours(points, wrap))


@pytest.mark.parametrize("wrap", WRAPS, ids=lambda w: f"{w[0]}-{w[1]}")
def test_wrap_modes_survive_packing_into_an_atlas(wrap):
    """Two textured parts (the quad and a small other one) share an atlas: the quad still shows its
    sampler's colours everywhere, where wrapping each vertex into [0, 1) would stretch one copy across it."""
    vertices, faces, uv = quad()
    part = SurfaceMesh(vertices, faces, np.ones((4, 4), np.float32), uv, rgba(quadrants()), wrap=wrap)
    other = grey_part(vertices + 5, faces)
    joined = concatenate([part, other])
    assert joined.wrap == (REPEAT, REPEAT)
    points = texel_centre_points()
    np.testing.assert_array_equal(np.round(colours_at(joined, points)), expected_colours(points, wrap))


def test_a_face_crossing_a_cell_border_keeps_its_colours_in_an_atlas():
    """A repeating texture whose face spans u = 0.9 .. 1.1, packed with another texture: along the face the
    colours are those of u and frac(u) (the right edge, then the left edge), never the image's middle, which
    wrapping each corner on its own (0.9 and 0.1) sweeps across."""
    image = np.full((1, 8, 4), 255, np.uint8)
    image[0, :, :3] = GREEN
    image[0, 0, :3], image[0, -1, :3] = RED, BLUE
    vertices, faces, _ = quad(0.0, 1.0)
    uv = np.array([[0.9, 0.0], [1.1, 0.0], [1.1, 1.0], [0.9, 1.0]])
    part = SurfaceMesh(vertices, faces, np.ones((4, 4), np.float32), uv, image)
    other = grey_part(vertices + 5, faces)
    joined = concatenate([part, other])
    x = np.linspace(0.02, 0.98, 25)
    points = np.c_[x, np.full_like(x, 0.3)]
    got = colours_at(joined, points, 0.0, 1.0)
    assert not (np.abs(got - GREEN).max(axis=1) < 60).any(), got
    want = sample_texture(image, np.c_[0.9 + 0.2 * x, np.full_like(x, 0.3)])[:, :3] * 255  # per sample: exact REPEAT
    off_seam = np.abs(0.9 + 0.2 * x - 1.0) > 1 / 16  # at the seam a viewer blends the two edge texels
    np.testing.assert_allclose(got[off_seam], want[off_seam], atol=1e-3)


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_the_extended_texture_is_np_pad_with_the_modes_pad_mode(mode):
    """Over u ∈ [-1.7, 2.3], v ∈ [-0.2, 1.6] the extended image holds the texels np.pad's "wrap", "symmetric" or
    "edge" gives there (rows above are v > 1, rows below v < 0), one more on each side for bilinear filtering,
    and no more."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    window = texel_window(np.array([-1.7, -0.2]), np.array([2.3, 1.6]), image.shape)
    # columns: x = u·5 − 0.5 over [-9, 11] → texels -9 … 12; rows: y = (1 − v)·3 − 0.5 over [-2.3, 3.1] → -3 … 4
    assert (window.start_u, window.count_u, window.start_v, window.count_v) == (-9, 22, -3, 8)
    padded = np.pad(image, ((10, 10), (10, 10), (0, 0)), mode=PAD[mode])  # texel k at index k + 10
    want = padded[10 - 3 : 10 - 3 + 8, 10 - 9 : 10 - 9 + 22]
    np.testing.assert_array_equal(extend_texture(image, window, (mode, mode)), want)


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_coordinates_just_past_the_edge_add_a_few_texels_not_whole_copies(mode):
    """UV islands a hair past [0, 1] (common in exports) extend a 256² texture by a few texels: it keeps its
    resolution, and sampling the extended image at the mapped coordinates equals sampling the texture with its
    wrap mode (between the last and first texel of a copy, where a viewer blends the two and per-sample
    wrapping does not, only for the modes whose neighbour there is the edge texel itself)."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (256, 256, 4), dtype=np.uint8)
    lo, hi = np.array([-0.01, -0.005]), np.array([1.01, 1.0])
    window = texel_window(lo, hi, image.shape)
    assert (window.tile_u, window.tile_v) == (256, 256)
    ext = extend_texture(image, window, (mode, mode))
    assert ext.shape[:2] == (window.count_v, window.count_u) and max(ext.shape[:2]) <= 256 + 8
    uv = lo + rng.random((500, 2)) * (hi - lo)
    texel = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=-1) * 256 - 0.5  # continuous texel coordinates
    within = (np.mod(texel, 256) < 255).all(axis=1) | (mode != REPEAT)  # not between two copies
    assert within.sum() > 400
    got, want = sample_texture(ext, window.to_unit(uv)), sample_texture(image, uv, (mode, mode))
    np.testing.assert_allclose(got[within], want[within], atol=1e-5)


def test_a_large_texture_reaching_a_hair_past_its_edges_keeps_every_texel():
    """A 5000-texel-wide texture (wider than WINDOW_SIZE) whose coordinates reach 0.01 past both edges: its window
    holds the texture at its own size (two copies always fit), so the extended image is the texture's own
    texels, its edge columns repeated (CLAMP_TO_EDGE) and its rows wrapped (REPEAT), not a resampled copy."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (6, 5000, 4), dtype=np.uint8)
    window = texel_window(np.array([-0.01, 0.0]), np.array([1.01, 1.0]), image.shape)
    assert (window.tile_u, window.tile_v) == (5000, 6)
    ext = extend_texture(image, window, (CLAMP_TO_EDGE, REPEAT))
    cols = np.clip(np.arange(window.count_u) + window.start_u, 0, 4999)  # the edge texel beyond each side
    rows = np.mod(np.arange(window.count_v) + window.start_v, 6)  # the image again beyond each side
    np.testing.assert_array_equal(ext, image[rows][:, cols])
    assert window.count_u >= 5000 + 2 * 50  # 0.01 of 5000 texels past each edge


def test_an_extended_texture_stays_within_the_size_bound():
    """Many copies: the texture is downscaled so a side stays within WINDOW_SIZE; past that many copies
    the axis is the texture's average."""
    image = np.zeros((64, 64, 4), np.uint8)
    image[:, :32], image[:, 32:] = (255, 0, 0, 255), (0, 0, 255, 255)
    window = texel_window(np.array([0.0, 0.0]), np.array([100.0, 1.0]), image.shape)
    ext = extend_texture(image, window, (REPEAT, REPEAT))
    assert ext.shape[1] <= WINDOW_SIZE and ext.shape[0] == window.count_v <= 64 + 2
    tile = window.tile_u
    assert tile < 64
    np.testing.assert_array_equal(ext[:, 1 : 1 + tile], ext[:, 1 + tile : 1 + 2 * tile])  # every copy the same
    far = texel_window(np.array([-1e30, 0.0]), np.array([1e30, 1.0]), image.shape)
    far_image = extend_texture(image, far, (MIRRORED_REPEAT, REPEAT))
    assert far_image.shape[1] == 1
    # half red, half blue averaged in linear light: 0.5 in red and blue, sRGB 0.7354 (188), as the mip levels
    assert np.abs(far_image[0, 0, :3].astype(int) - (188, 0, 188)).max() <= 1


def test_a_downscaled_repeat_averages_only_what_is_seen():
    """Texels a viewer never shows (alpha 0) add nothing to the colour of a downscaled repeat, as in the mip
    levels: a half-transparent stripe pattern averages to the opaque half's colour at half the coverage."""
    image = np.zeros((8, 8, 4), np.uint8)
    image[:, ::2] = (255, 255, 255, 255)
    image[:, 1::2] = (0, 0, 0, 0)  # black where nothing is seen
    far = texel_window(np.array([-1e30, 0.0]), np.array([1e30, 1.0]), image.shape)
    texel = extend_texture(image, far, (REPEAT, REPEAT))[0, 0].astype(int)
    assert np.abs(texel - (255, 255, 255, 128)).max() <= 1


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_uvs_inside_the_unit_square_read_exactly_as_without_a_sampler(tmp_path, mode):
    """Inside [0, 1] a wrap mode changes nothing: the same texture and coordinates bit for bit, alone and in
    an atlas, as a file whose texture has no sampler."""
    vertices, faces, _ = quad()
    uv = np.random.default_rng(1).random((4, 2))
    plain = load_mesh(wrap_glb(tmp_path / "plain.glb", (REPEAT, REPEAT), uv))
    wrapped = load_mesh(wrap_glb(tmp_path / "wrapped.glb", (mode, mode), uv))
    np.testing.assert_array_equal(wrapped.texture, plain.texture)
    np.testing.assert_array_equal(wrapped.uvs, plain.uvs)
    assert wrapped.wrap == plain.wrap == (REPEAT, REPEAT)
    texture = rgba(quadrants())
    other = grey_part(vertices + 5, faces)

    def joined(wrap):
        part = SurfaceMesh(vertices, faces, np.ones((4, 4), np.float32), uv, texture, wrap=(wrap, wrap))
        return concatenate([part, other])

    a, b = joined(REPEAT), joined(mode)
    np.testing.assert_array_equal(a.texture, b.texture)
    np.testing.assert_array_equal(a.uvs, b.uvs)


def test_the_texture_transform_applies_before_wrapping(tmp_path):
    """KHR_texture_transform scale 3 on UVs over [0, 1], offset −1: a clamping sampler reads the transformed
    coordinates over [-1, 2], as the plain file with those coordinates does."""
    _, _, uv = quad()
    want = load_mesh(wrap_glb(tmp_path / "plain.glb", (CLAMP_TO_EDGE, MIRRORED_REPEAT), uv))
    unit = (uv + 1) / 3  # glTF: t' = 3 t + offset, in glTF's top-left origin (v' = 1 − v)
    transform = {"KHR_texture_transform": {"scale": [3, 3], "offset": [-1, -1]}}
    got = load_mesh(wrap_glb(tmp_path / "moved.glb", (CLAMP_TO_EDGE, MIRRORED_REPEAT), unit, extensions=transform))
    points = texel_centre_points()
    np.testing.assert_array_equal(np.round(colours_at(got, points)), np.round(colours_at(want, points)))
