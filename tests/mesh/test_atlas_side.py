"""The atlas's side: no texture image a3d writes (a texture kept as it is, or the packed atlas) is longer a side
than GPUs load, `ATLAS_SIDE` = 16384 (Direct3D 11 and 12 refuse a larger 2D texture on every device). Beyond it the
longest textures are reduced as the texel budget reduces them (area average in linear light; NEAREST by a power
of two), in the same single reduction, with one `warning:` line; other shelf layouts are tried before any texture
is reduced; within it nothing changes. The real bound is checked by planning alone (image headers, layouts), the
rest with the bound lowered so that the images can be small."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import island_images, png_declaring, quad_part, quads_glb, random_images, srgb_decode, srgb_encode
from PIL import Image

from a3d_cli.errors import InputError
from a3d_cli.mesh import appearance, texture_bake
from a3d_cli.mesh.appearance import NEAREST
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.surface import SurfaceMesh, concatenate
from a3d_cli.mesh.texture_bake import TextureRecipe, bake_textures

GPU_SIDE = 16384  # Direct3D 11's D3D11_REQ_TEXTURE2D_U_OR_V_DIMENSION, also Direct3D 12's: the largest 2D texture
NEAREST_GL = 9728  # the glTF 2.0 spec's sampler.magFilter NEAREST
WHITE_PATCH = (4, 4)  # the patch an atlas holds for untextured parts (surface.WHITE_PATCH)


def block_mean(image: np.ndarray, k: int) -> np.ndarray:
    """[H/k, W/k, 3] the mean of each k × k block of an [H, W, 3] sRGB image in linear light (the area average of a
    reduction by k, written here from its definition), as 8-bit sRGB levels."""
    h, w = image.shape[0] // k, image.shape[1] // k
    light = srgb_decode(image[: h * k, : w * k, :3].astype(np.float64)).reshape(h, k, w, k, 3).mean(axis=(1, 3))
    return srgb_encode(light)


def header_only(tmp_path, columns: int, rows: int) -> Image.Image:
    """A Pillow image opened from a PNG whose header declares columns × rows pixels and that holds none: what the
    loader plans from (the size), with nothing to decode."""
    path = png_declaring(tmp_path / f"{columns}x{rows}.png", columns, rows)
    return Image.open(io.BytesIO(path.read_bytes()))


def planned_scales(monkeypatch, tmp_path, sizes: list[tuple[int, int]], name: str) -> tuple[list[float], list[str]]:
    """The factor the loader's bake gives each of textures of `sizes` (columns, rows), planned from their headers
    alone (the bake itself replaced: nothing is decoded), and the lines it says."""
    scales: dict[tuple[int, int], float] = {}

    def bake(recipe, asset, scale=1.0, names=None):  # noqa: ANN001, ANN202
        scales[recipe.shape] = scale
        return np.zeros((1, 1, 4), np.uint8)

    monkeypatch.setattr(texture_bake, "bake", bake)
    recipes = [TextureRecipe(header_only(tmp_path, c, r), np.ones(4), "OPAQUE", 0.5) for c, r in sizes]
    notices: list[str] = []
    bake_textures(recipes, name, notices.append)
    return [scales[(r, c)] for c, r in sizes], notices


def held_to(columns: int, rows: int, side: int) -> tuple[int, int]:
    """(rows, columns) of a LINEAR texture of columns × rows held to `side` texels a side, its aspect kept: each
    side times side / its longest, rounded down (in whole numbers, so exactly)."""
    longest = max(rows, columns)
    return (rows, columns) if longest <= side else (rows * side // longest, columns * side // longest)


def test_a_20000_by_512_texture_is_within_the_texel_budget_but_is_held_to_16384_texels_a_side(monkeypatch, tmp_path):
    """10,240,000 texels, far within the budget of 8192² texels, yet 20000 wide: GPUs refuse it, so it is read at
    16384 / 20000 of its size, 16384 × 419, the widest texture GPUs load; one warning says why."""
    assert 20000 * 512 < appearance.ATLAS_TEXELS == 8192 * 8192
    (scale,), notices = planned_scales(monkeypatch, tmp_path, [(20000, 512)], "wide.glb")
    assert scale == pytest.approx(GPU_SIDE / 20000, rel=1e-12)
    assert appearance.reduced_size((512, 20000), scale) == held_to(20000, 512, GPU_SIDE) == (419, GPU_SIDE)
    assert notices == [
        "warning: wide.glb's texture is 20000×512 texels, longer a side than GPUs load in one texture (16,384); "
        "it is read at 82% of its size (20000×512 as 16384×419)"
    ]


@pytest.mark.parametrize(
    ("columns", "rows", "kept", "percent"),
    [(16385, 1, (1, 16384), "99%"), (20000, 3, (2, 16384), "82%"), (1, 20000, (16384, 1), "82%"),
     (4_000_000, 1, (1, 16384), "under 1%")],  # fmt: skip
)
def test_a_thin_textures_warning_gives_the_reduction_of_its_length(monkeypatch, tmp_path, columns, rows, kept, percent):
    """A texture a texel or few thick and longer than GPUs load is held to 16384 along its length; its thickness,
    rounded down to whole texels, says nothing of that reduction (a 16385 × 1 strip keeps its one row yet loses a
    column, a 20000 × 3 strip keeps 2 of 3 rows yet 82% of its length). The warning gives the reduction of its
    length, 16384 / the length rounded, and never says a reduced texture is read at 100% (or 0%) of its size."""
    (scale,), notices = planned_scales(monkeypatch, tmp_path, [(columns, rows)], "strip.glb")
    assert appearance.reduced_size((rows, columns), scale) == kept
    assert len(notices) == 1
    assert f"it is read at {percent} of its size ({columns}×{rows} as {kept[1]}×{kept[0]})" in notices[0]


def test_wide_textures_are_planned_into_an_atlas_within_16384_texels_a_side(monkeypatch, tmp_path):
    """Two wide textures and a 4096² one (32.4 million texels, within the budget): packed with their edge padding
    they must be at most 16384 wide, so the wide ones are reduced to 16380 (16384 less two texels of padding on
    each side) in the one reduction that bakes them, the 4096² one keeps every texel, and the atlas packed of
    them (with the white patch untextured parts take) is within 16384 texels a side."""
    sizes = [(20000, 512), (18000, 300), (4096, 4096)]
    scales, notices = planned_scales(monkeypatch, tmp_path, sizes, "strips.glb")
    assert scales == pytest.approx([16380 / 20000, 16380 / 18000, 1.0], rel=1e-12)
    baked = [appearance.reduced_size((r, c), f) for (c, r), f in zip(sizes, scales, strict=True)]
    assert baked == [held_to(c, r, 16380) for c, r in sizes] == [(419, 16380), (273, 16380), (4096, 4096)]
    (rows, columns), _ = appearance.shelf_layout([*baked, WHITE_PATCH])
    assert max(rows, columns) <= GPU_SIDE
    assert len(notices) == 1 and "the 2 longest are reduced to at most 16,380 texels a side" in notices[0]
    assert "the other one keeps its size" in notices[0]


def test_a_tall_strip_and_images_beside_it_are_packed_within_the_side_keeping_every_texel():
    """A 16000-texel tall strip and two 1000² images: shelves a square root of their area wide (1497) would put the
    second image on a shelf above the strip's, 17008 texels tall. Every atlas holding the strip is at least its
    16004 rows tall (padding included); at that height nothing fits above or below it, so the two images lie beside
    it, and the narrowest way is one below the other (2008 ≤ 16004 rows) in one column 1004 wide: 14 + 1004 = 1018
    columns, within 16384 with every texel."""
    (rows, columns), places = appearance.shelf_layout([(16000, 10), (1000, 1000), (1000, 1000)])
    assert (rows, columns) == (16004, 1018)
    assert [(p.height, p.width) for p in places] == [(16000, 10), (1000, 1000), (1000, 1000)]


def test_the_shelves_of_textures_within_the_side_are_laid_out_as_before():
    """Four 4096² textures (the budget's own example): shelves ⌈√(4 · 4100²)⌉ = 8200 texels wide, two per shelf."""
    (rows, columns), places = appearance.shelf_layout([(4096, 4096)] * 4)
    assert (rows, columns) == (8200, 8200)
    assert [(p.x, p.y) for p in places] == [(2, 2), (4102, 2), (2, 4102), (4102, 4102)]


def test_thousands_of_tiny_textures_are_laid_out_without_overlap_within_the_side():
    """3000 textures of 1 to 8 texels a side: one layout, within the side, no two padded images overlapping."""
    rng = np.random.default_rng(4)
    shapes = [tuple(int(v) for v in rng.integers(1, 9, 2)) for _ in range(3000)]
    (rows, columns), places = appearance.shelf_layout(shapes)
    assert max(rows, columns) <= GPU_SIDE
    cover = np.zeros((rows, columns), np.int32)
    for p in places:
        cover[p.y - 2 : p.y + p.height + 2, p.x - 2 : p.x + p.width + 2] += 1
    assert cover.max() == 1


def test_a_texture_longer_than_the_side_is_averaged_down_to_it_in_proportion(tmp_path, monkeypatch):
    """The side lowered to 64: a 128 × 8 texture alone comes out 64 × 4 (half of each side, its aspect kept), each
    texel the linear-light mean of the 2 × 2 texels it covers, with one warning naming the side."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64, raising=False)
    image = np.random.default_rng(1).integers(0, 256, (8, 128, 3), dtype=np.uint8)
    notices: list[str] = []
    mesh = load_mesh(quads_glb(tmp_path / "wide.glb", [image]), notice=notices.append)
    assert mesh.texture.shape == (4, 64, 4)  # type: ignore[union-attr]
    assert np.abs(mesh.texture[..., :3].astype(int) - block_mean(image, 2)).max() <= 1  # type: ignore[index]
    assert notices == [
        "warning: wide.glb's texture is 128×8 texels, longer a side than GPUs load in one texture (64); "
        "it is read at 50% of its size (128×8 as 64×4)"
    ]


def test_a_set_of_wide_textures_fits_the_side_and_the_short_one_keeps_every_texel(tmp_path, monkeypatch):
    """The side lowered to 68: two textures 128 wide and a 16² one. Packed, each image has two texels of padding
    on each side, so the wide ones are halved to 64 (each texel the linear-light mean of its 2 × 2 block), the
    16² one is packed texel for texel, the atlas is within 68 a side, and one warning says so."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 68, raising=False)
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (8, 128, 3), dtype=np.uint8), rng.integers(0, 256, (4, 128, 3), dtype=np.uint8),
              random_images(1, 16, seed=3)[0]]  # fmt: skip
    notices: list[str] = []
    mesh = load_mesh(quads_glb(tmp_path / "strips.glb", images), notice=notices.append)
    assert max(mesh.texture.shape[:2]) <= 68  # type: ignore[union-attr]
    wide, narrow, decal = island_images(mesh, 3)
    assert wide.shape[:2] == (4, 64) and narrow.shape[:2] == (2, 64)
    assert np.abs(wide.astype(int) - block_mean(images[0], 2)).max() <= 1
    assert np.abs(narrow.astype(int) - block_mean(images[1], 2)).max() <= 1
    np.testing.assert_array_equal(decal, images[2])
    assert len(notices) == 1 and notices[0].startswith("warning: strips.glb's 3 textures packed into one atlas would take")


def test_a_nearest_texture_longer_than_the_side_is_reduced_by_a_power_of_two(tmp_path, monkeypatch):
    """Pixel art 50 × 3 stored enlarged twice (100 × 6), NEAREST, with the side lowered to 64: 64/100 of a side is
    not a power of two, so it is halved, which gives back the 50 × 3 image exactly; the mesh still reads NEAREST."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64, raising=False)
    art = np.random.default_rng(5).integers(0, 256, (3, 50, 3), dtype=np.uint8)
    enlarged = np.repeat(np.repeat(art, 2, axis=0), 2, axis=1)
    mesh = load_mesh(quads_glb(tmp_path / "art.glb", [enlarged], {"magFilter": NEAREST_GL}), notice=lambda line: None)
    assert mesh.mag_filter == NEAREST
    np.testing.assert_array_equal(mesh.texture[..., :3], art)  # type: ignore[index]


def test_a_tall_strip_and_images_beside_it_are_packed_into_the_smallest_atlas_keeping_every_texel(monkeypatch):
    """The side lowered to 64: a strip 2 texels wide and 60 tall and two 20² images, packed with the 4² white patch
    every atlas holds. Shelves √area = 40 wide would stack the second image above the strip (88 rows). Any atlas
    holding the strip has its 64 rows (padding included), so nothing fits above or below it; the others, padded
    24 + 24 + 8 = 56 ≤ 64 rows, fit one below the other in a column 24 wide beside it: 6 + 24 = 30 columns, the
    fewest that hold them, every texel as it was, and nothing is said."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64, raising=False)
    rng = np.random.default_rng(6)
    textures = [rng.integers(0, 256, (60, 2, 3), dtype=np.uint8), *random_images(2, 20, seed=7)]
    notices: list[str] = []
    mesh = concatenate([quad_part(t, k) for k, t in enumerate(textures)], "tall.glb", notices.append)
    assert mesh.texture.shape[:2] == (64, 30)  # type: ignore[union-attr]
    for got, texture in zip(island_images(mesh, 3), textures, strict=True):
        np.testing.assert_array_equal(got, texture)
    assert notices == []


def test_many_wide_short_textures_whose_shelves_exceed_the_side_are_reduced_until_they_fit(monkeypatch):
    """The side lowered to 64: twelve 40 × 6 textures of one colour each. No shelf width up to 64 holds two of them
    (44 texels each, padded), so twelve shelves would stack 120 rows: the textures are reduced until the atlas
    fits, one warning says so, and every part keeps its colour."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64, raising=False)
    colours = [(20 * k, 200 - 10 * k, 7 * k) for k in range(12)]
    parts = [quad_part(np.full((6, 40, 3), c, np.uint8), k) for k, c in enumerate(colours)]
    notices: list[str] = []
    mesh = concatenate(parts, "shelves.glb", notices.append)
    assert max(mesh.texture.shape[:2]) <= 64  # type: ignore[union-attr]
    assert len(notices) == 1 and "longer a side than GPUs load in one texture (64)" in notices[0]
    for k, colour in enumerate(colours):
        rgb = mesh.surface_rgba(np.array([2 * k]), np.array([[1 / 3, 1 / 3, 1 / 3]]))[0, :3] * 255
        np.testing.assert_allclose(rgb, colour, atol=1.0, err_msg=f"part {k}")


def test_a_long_row_strip_and_a_long_column_strip_are_reduced_to_fit_the_atlas_not_refused(monkeypatch):
    """A strip 60 texels long across and one 60 long down, each 2 thick: any atlas holding both is at least 64 × 64
    with their padding, more than an atlas image holds (lowered to 1600 texels), though they hold 240 texels. Their
    padding (5 texels around a 1-texel row) outweighs their texels once reduced, which is no reason to refuse
    three textures: they are reduced until the atlas fits, one warning says so (naming the atlas image's bound, not
    the texel budget they are within), and every part keeps its colour."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 1200)
    monkeypatch.setattr(appearance, "ATLAS_IMAGE_TEXELS", 1600)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    shapes = [(2, 60), (2, 60), (60, 2)]
    parts = [quad_part(np.full((*shape, 3), c, np.uint8), k) for k, (shape, c) in enumerate(zip(shapes, colours, strict=True))]
    notices: list[str] = []
    mesh = concatenate(parts, "strips.glb", notices.append)
    rows, columns = mesh.texture.shape[:2]  # type: ignore[union-attr]
    assert rows * columns <= 1600
    assert len(notices) == 1 and notices[0].startswith("warning: strips.glb's 3 textures packed into one atlas")
    assert "more than one texture image a3d writes holds (1,600)" in notices[0]
    assert "more than one atlas takes" not in notices[0]  # 240 texels, far within the budget: not the reason
    for k, colour in enumerate(colours):
        rgb = mesh.surface_rgba(np.array([2 * k]), np.array([[1 / 3, 1 / 3, 1 / 3]]))[0, :3] * 255
        np.testing.assert_allclose(rgb, colour, atol=1.0, err_msg=f"part {k}")


def test_more_textures_than_fit_the_side_even_at_a_texel_each_are_refused(monkeypatch):
    """The side lowered to 16: forty textures, each at least 5 × 5 texels with its padding, cannot fit 16 × 16
    (1000 texels against 256): one `InputError` with a hint, not a loop without end."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 16, raising=False)
    parts = [quad_part(np.full((2, 2, 3), (k, 100, 200), np.uint8), k) for k in range(40)]
    with pytest.raises(InputError, match="40 distinct textures") as caught:
        concatenate(parts, "many.glb")
    assert caught.value.hint


def test_textures_within_the_side_read_exactly_as_with_no_side_at_all(tmp_path, monkeypatch):
    """Within the side the bound changes nothing: three textures packed under the real bound give the atlas bit for
    bit that an unbounded side gives, and a texture exactly as long as a lowered side stays as it is; nothing is
    said either time."""
    images = [random_images(1, 32, seed=8)[0], np.random.default_rng(9).integers(0, 256, (16, 48, 3), dtype=np.uint8),
              random_images(1, 8, seed=10)[0]]  # fmt: skip
    path = quads_glb(tmp_path / "fits.glb", images)
    notices: list[str] = []
    bounded = load_mesh(path, notice=notices.append)
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 10**9, raising=False)
    unbounded = load_mesh(path)
    np.testing.assert_array_equal(bounded.texture, unbounded.texture)
    np.testing.assert_array_equal(bounded.uvs, unbounded.uvs)
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64, raising=False)
    edge = np.random.default_rng(11).integers(0, 256, (8, 64, 3), dtype=np.uint8)
    mesh = load_mesh(quads_glb(tmp_path / "edge.glb", [edge]), notice=notices.append)
    np.testing.assert_array_equal(mesh.texture[..., :3], edge)  # type: ignore[index]
    assert notices == []


def test_the_warning_gives_both_reasons_when_textures_exceed_the_budget_and_the_side():
    both = appearance.budget_warning("b.glb", [(8, 80), (4, 4)], [(3, 30), (4, 4)], limit=400, overlong=(12, 84))
    assert both == (
        "warning: b.glb's 2 textures hold 656 texels together, more than one atlas takes (400), and packed into one "
        f"atlas would take 84×12 texels, longer a side than GPUs load in one texture ({appearance.ATLAS_SIDE:,}); the "
        "largest is reduced to at most 90 texels and 30 texels a side (the largest 80×8 as 30×3); the smaller one "
        "keeps its size"
    )


def test_a_lone_texture_longer_than_the_side_is_held_to_it_whether_alone_or_beside_untextured_parts(monkeypatch):
    """The side lowered to 64, a texture 100 × 4 handed to `concatenate` itself (not through the loader): alone on
    its part it comes out 64 × 2 and the part keeps its hard edges (`normal_groups`); beside an untextured part it
    shares an atlas with the white patch, so with its padding it is held to 60 wide, and the warning names the
    atlas, not the texture, as what was too long."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64, raising=False)
    texture = np.full((4, 100, 3), (200, 120, 40), np.uint8)
    lone = quad_part(texture, 0)
    lone = SurfaceMesh(lone.vertices, lone.faces, lone.vertex_colors, lone.uvs, lone.texture, normal_groups=np.arange(4))
    notices: list[str] = []
    alone = concatenate([lone], "lone.glb", notices.append)
    assert alone.texture.shape[:2] == (2, 64)  # type: ignore[union-attr]
    np.testing.assert_array_equal(alone.normal_groups, np.arange(4))
    untextured = SurfaceMesh(lone.vertices + [2.0, 0, 0], lone.faces, lone.vertex_colors)
    joined = concatenate([quad_part(texture, 0), untextured], "pair.glb", notices.append)
    assert max(joined.texture.shape[:2]) <= 64  # type: ignore[union-attr]
    assert notices[0].startswith("warning: lone.glb's texture is 100×4 texels, longer a side than GPUs load")
    assert notices[1].startswith("warning: pair.glb's texture packed into one atlas would take")
    rgb = joined.surface_rgba(np.array([0]), np.array([[1 / 3, 1 / 3, 1 / 3]]))[0, :3] * 255
    np.testing.assert_allclose(rgb, (200, 120, 40), atol=1.0)
