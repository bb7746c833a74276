"""The atlas budget: an asset's textures together hold at most `ATLAS_TEXELS` texels in a3d's atlas. Beyond it
the largest textures are reduced to a common cap of texels each, chosen so that all fit, and smaller ones keep
every texel (area average in linear light; NEAREST textures by a power of two, so their texel grid stays), with
one `warning:` line; textures within it read exactly as the file stores them; memory holds the reduced
textures, never the full-size ones; a file with more textures than even that can hold is refused. The budget
is made small here so the textures can be."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from helpers import island_images, quads_glb, random_images

from a3d_cli.errors import InputError
from a3d_cli.mesh import appearance
from a3d_cli.mesh.appearance import LINEAR, NEAREST
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.surface import SurfaceMesh, concatenate

NEAREST_GL = 9728  # the glTF 2.0 spec's sampler.magFilter NEAREST


def to_srgb_level(linear: float) -> int:
    """The 8-bit sRGB level of a linear value (IEC 61966-2-1, written here from the standard)."""
    encoded = linear * 12.92 if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return round(encoded * 255)


def test_equal_textures_over_the_budget_are_all_reduced_alike_with_one_warning(tmp_path, monkeypatch):
    """Six 64² textures under a budget of 4 · 32² texels: the largest side that lets six fit is 26 (6 · 26² =
    4056, 6 · 27² = 4374), and one `warning:` line says so."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 4 * 32 * 32)
    notices: list[str] = []
    mesh = load_mesh(quads_glb(tmp_path / "six.glb", random_images(6, 64)), notice=notices.append)
    side = math.floor(64 * math.sqrt(4 * 32 * 32 / (6 * 64 * 64)))
    assert [im.shape[:2] for im in island_images(mesh, 6)] == [(side, side)] * 6
    assert len(notices) == 1 and notices[0].startswith("warning: six.glb's 6 textures")
    assert "64×64 as 26×26" in notices[0]


def test_scaling_averages_in_linear_light(tmp_path, monkeypatch):
    """Four 64² textures halved (budget 4 · 32²): a one-texel black-and-white checkerboard becomes the grey whose
    light is half of white's, sRGB level 188 (an average of the stored sRGB levels would give 128); a texture of
    one colour keeps it exactly."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 4 * 32 * 32)
    checker = np.where((np.add.outer(np.arange(64), np.arange(64)) % 2)[..., None] == 1, 255, 0).astype(np.uint8)
    checker = np.repeat(checker, 3, axis=2)
    solid = np.full((64, 64, 3), (200, 40, 90), np.uint8)
    images = [checker, solid, *random_images(2, 64)]
    mesh = load_mesh(quads_glb(tmp_path / "four.glb", images), notice=lambda line: None)
    grey, kept = island_images(mesh, 4)[:2]
    assert grey.shape[:2] == (32, 32)
    assert (grey == to_srgb_level(0.5)).all() and to_srgb_level(0.5) == 188
    assert (kept == solid[:32, :32]).all()


def test_textures_within_the_budget_read_exactly_as_stored(tmp_path, monkeypatch):
    """Four 64² textures under a budget of exactly 4 · 64² texels: nothing is scaled, every packed image holds
    the file's texels bit for bit, and nothing is said."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 4 * 64 * 64)
    images = random_images(4, 64, seed=3)
    notices: list[str] = []
    mesh = load_mesh(quads_glb(tmp_path / "fits.glb", images), notice=notices.append)
    for got, image in zip(island_images(mesh, 4), images, strict=True):
        np.testing.assert_array_equal(got, image)
    assert notices == []


def test_nearest_textures_are_reduced_on_their_own_texel_grid(tmp_path, monkeypatch):
    """Four NEAREST 64² textures, each a 16² image enlarged 4 times (pixel art as often stored): under a budget
    that asks for 0.45 of their sides, each is reduced by the next power of two, 4, which gives back the 16²
    image exactly (every new texel covers one 4 × 4 block of one colour); the mesh still reads NEAREST."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", round(4 * (0.45 * 64) ** 2))
    art = random_images(4, 16, seed=5)
    enlarged = [np.repeat(np.repeat(a, 4, axis=0), 4, axis=1) for a in art]
    mesh = load_mesh(quads_glb(tmp_path / "pixels.glb", enlarged, {"magFilter": NEAREST_GL}), notice=lambda line: None)
    assert mesh.mag_filter == NEAREST
    for got, image in zip(island_images(mesh, 4), art, strict=True):
        np.testing.assert_array_equal(got, image)


def test_a_one_texel_nearest_texture_among_scaled_ones_stays_one_texel(tmp_path, monkeypatch):
    """Four NEAREST 64² textures and a 1 × 1 one (a solid colour, as exporters write) over the budget: the
    others are reduced to a mip level, the 1 × 1 texture has none smaller, so it stays as it is, with its colour."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 4 * 32 * 32)
    dot = np.array([[[10, 120, 230]]], np.uint8)
    images = [*random_images(4, 64, seed=9), dot]
    mesh = load_mesh(quads_glb(tmp_path / "dot.glb", images, {"magFilter": NEAREST_GL}), notice=lambda line: None)
    *scaled, kept = island_images(mesh, 5)
    assert all(im.shape[:2] == (16, 16) for im in scaled)  # √(4 · 32² / (4 · 64² + 1)) < 1/2: a quarter of a side
    np.testing.assert_array_equal(kept, dot)


def test_memory_holds_the_scaled_textures_never_the_full_size_ones(tmp_path, monkeypatch):
    """Forty 128² textures (40 · 128² = 655,360 texels declared) under a budget of 64² = 4096 texels: every
    texture baked (the base colour times its factor) is already at its scaled size, and the whole atlas,
    gaps and padding included, stays within a few times the budget."""
    from a3d_cli.mesh import texture_bake

    budget = 64 * 64
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", budget)
    baked: list[tuple[int, ...]] = []
    real = texture_bake.apply_linear_factor
    monkeypatch.setattr(texture_bake, "apply_linear_factor", lambda image, factor: baked.append(image.shape) or real(image, factor))
    images = [np.full((128, 128, 3), (k, 255 - k, 3 * k % 256), np.uint8) for k in range(40)]
    mesh = load_mesh(quads_glb(tmp_path / "forty.glb", images), notice=lambda line: None)
    side = math.floor(128 * math.sqrt(budget / (40 * 128 * 128)))  # 10
    assert baked == [(side, side, 4)] * 40
    assert mesh.texture.shape[0] * mesh.texture.shape[1] <= 4 * budget  # type: ignore[union-attr]


def test_a_file_with_more_textures_than_an_atlas_can_hold_is_refused(tmp_path, monkeypatch):
    """A budget of 16 texels and eight textures: even at one texel each, their edge padding alone (5 × 5 each)
    is more than twice the budget, so the file is refused with one sentence and a hint."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 16)
    with pytest.raises(InputError, match="8 distinct textures") as caught:
        load_mesh(quads_glb(tmp_path / "many.glb", random_images(8, 8)))
    assert caught.value.hint


def wrapped_part(colour: tuple[int, int, int], offset: float, reach: float) -> SurfaceMesh:
    """A unit quad moved by `offset` along x whose texture coordinates run from 0 to `reach` (its 8² texture of
    one colour repeats `reach` times across it)."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float) + [offset, 0, 0]
    texture = np.dstack([np.full((8, 8, 3), colour, np.uint8), np.full((8, 8), 255, np.uint8)])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float) * reach
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return SurfaceMesh(vertices, faces, np.ones((4, 4), np.float32), uv, texture, mag_filter=LINEAR)


def test_textures_repeated_across_their_parts_count_at_their_extended_size(monkeypatch):
    """Twelve 8² textures each repeated 40 times across its part: each goes into the atlas extended over the
    texels its coordinates reach (~322² each), together far over a budget of 128² texels: all are scaled by
    one factor before they are extended, one warning says so, and every part keeps its colour."""
    budget = 128 * 128
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", budget)
    colours = [(20 * k, 200 - 10 * k, 7 * k) for k in range(12)]
    notices: list[str] = []
    mesh = concatenate([wrapped_part(c, 2.0 * k, 40.0) for k, c in enumerate(colours)], "wrapped.glb", notices.append)
    assert mesh.texture.shape[0] * mesh.texture.shape[1] <= 4 * budget  # type: ignore[union-attr]
    assert len(notices) == 1 and notices[0].startswith("warning: wrapped.glb's 12 textures")
    middle = np.array([0.5, 0.5, 0.0])
    for k, colour in enumerate(colours):
        face = 2 * k  # each part's first face; its centroid's colour
        rgb = mesh.surface_rgba(np.array([face]), np.array([[1 / 3, 1 / 3, 1 / 3]]))[0, :3] * 255
        np.testing.assert_allclose(rgb, colour, atol=1.0, err_msg=f"part {k} at {middle + [2.0 * k, 0, 0]}")


def test_textures_repeated_so_often_that_their_windows_are_capped_are_scaled_too(monkeypatch):
    """Twelve 16² textures each repeated 20 times across its part, with WINDOW_SIZE made 128: each one's
    window is capped at about 128² texels (copies of ~6 texels), whatever the texture's size, so scaling the
    textures alone would leave the images as large. The images must hold at most twice the budget together
    (what `concatenate` promises), one warning says so, and every part keeps its colour."""
    budget = 64 * 64
    monkeypatch.setattr(appearance, "WINDOW_SIZE", 128)
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", budget)
    colours = [(20 * k, 200 - 10 * k, 7 * k) for k in range(12)]
    parts = [wrapped_part(c, 2.0 * k, 20.0) for k, c in enumerate(colours)]
    parts = [replace(p, texture=np.repeat(np.repeat(p.texture, 2, axis=0), 2, axis=1)) for p in parts]  # 16²
    notices: list[str] = []
    mesh = concatenate(parts, "tiled.glb", notices.append)
    assert len(notices) == 1 and notices[0].startswith("warning: tiled.glb's 12 textures")
    assert sum(p.width * p.height for p in mesh.islands) <= 2 * budget
    for k, colour in enumerate(colours):
        rgb = mesh.surface_rgba(np.array([2 * k]), np.array([[1 / 3, 1 / 3, 1 / 3]]))[0, :3] * 255
        np.testing.assert_allclose(rgb, colour, atol=1.0, err_msg=f"part {k}")


def many_textures_obj(folder, images: list[np.ndarray]):
    """folder/model.obj + model.mtl + one PNG per image: one unit quad per image, side by side along x, each
    with its own material (`map_Kd`)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    lines, materials = ["mtllib model.mtl"], []
    for k, image in enumerate(images):
        Image.fromarray(image).save(folder / f"tex{k}.png")
        materials += [f"newmtl m{k}", "Kd 1 1 1", f"map_Kd tex{k}.png"]
        lines += [f"v {2 * k + x} {y} 0" for x, y in ((0, 0), (1, 0), (1, 1), (0, 1))]
        lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", f"usemtl m{k}"]
        first = 4 * k + 1
        lines += [f"f {first}/{first} {first + 1}/{first + 1} {first + 2}/{first + 2}",
                  f"f {first}/{first} {first + 2}/{first + 2} {first + 3}/{first + 3}"]  # fmt: skip
    (folder / "model.mtl").write_text("\n".join(materials) + "\n")
    (folder / "model.obj").write_text("\n".join(lines) + "\n")
    return folder / "model.obj"


def test_prepare_says_once_that_an_objs_textures_were_scaled(tmp_path, monkeypatch):
    """`a3d prepare` on an OBJ of four materials with 64² textures, under a budget of 4 · 32² texels: the run
    succeeds, its log has one `warning:` line naming the file and the halving, and the processed mesh's atlas
    holds four 32² images (plus its white patch and padding)."""
    from a3d_cli.mesh.store import load_processed_mesh
    from a3d_cli.progress import RecordingProgress
    from a3d_cli.stages.base import Runtime
    from a3d_cli.stages.prepare import PrepareOptions, run

    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 4 * 32 * 32)
    model = many_textures_obj(tmp_path / "asset", random_images(4, 64, seed=7))
    progress = RecordingProgress()
    run(tmp_path / "RUN", PrepareOptions(model=str(model), splats=500, view_size=32), Runtime(progress=progress))
    warnings = [m for m in progress.messages if m.startswith("warning:")]
    assert len(warnings) == 1 and "model.obj's 4 textures" in warnings[0] and "64×64 as 32×32" in warnings[0]
    atlas = load_processed_mesh(tmp_path / "RUN" / "source" / "mesh.glb").texture
    assert atlas.shape[0] * atlas.shape[1] <= 2 * 4 * 32 * 32  # four 36² padded images and a white patch, in shelves


def test_textures_that_fill_the_budget_and_reach_a_hair_past_their_edges_are_not_scaled(monkeypatch):
    """Four 32² textures under a budget of exactly 4 · 32², each read a hair outside [0, 1] (a UV island past the
    edge, as exporters leave): each goes into the atlas extended by a few texels, which must not count against
    textures that fit; the atlas is the one an unbounded budget gives, bit for bit, and nothing is said."""
    rng = np.random.default_rng(11)
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    uv = np.array([[-0.01, -0.01], [1.01, -0.01], [1.01, 1.01], [-0.01, 1.01]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    parts = [
        SurfaceMesh(vertices + [2.0 * k, 0, 0], faces, np.ones((4, 4), np.float32), uv, rng.integers(0, 256, (32, 32, 4), dtype=np.uint8))
        for k in range(4)
    ]
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 10**9)
    unbounded = concatenate(parts, "edges.glb")
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 4 * 32 * 32)
    notices: list[str] = []
    joined = concatenate(parts, "edges.glb", notices.append)
    assert unbounded.texture.shape[0] > 32 + 4  # type: ignore[union-attr]  # the images were extended
    np.testing.assert_array_equal(joined.texture, unbounded.texture)
    assert notices == []


def test_the_budget_warning_names_one_texture_in_the_singular_and_several_in_the_plural():
    one = appearance.budget_warning("a.glb", [(4096, 2048)], [(2048, 1024)], limit=4_000_000)
    assert one.startswith("warning: a.glb's texture holds 8,388,608 texels") and "50% of its size (2048×4096 as 1024×2048)" in one
    two = appearance.budget_warning("b.glb", [(8, 8), (16, 4)], [(4, 4), (8, 2)], limit=64)
    assert two.startswith("warning: b.glb's 2 textures hold 128 texels together") and "the largest 8×8 as 4×4" in two
    assert "all 2 are reduced to at most 16 texels each" in two
    three = appearance.budget_warning("c.glb", [(8, 8), (2, 2), (3, 3)], [(4, 4), (2, 2), (3, 3)], limit=32)
    assert "the largest is reduced to at most 16 texels (the largest 8×8 as 4×4); the 2 smaller keep their size" in three


def test_small_textures_keep_every_texel_while_the_largest_is_reduced(tmp_path, monkeypatch):
    """A 128² texture, a 64² one and an 8² decal under a budget of 80² + 64² + 8² texels: only what must be
    reduced is, the largest first: the 128² texture comes out 80² (the cap, 6400 texels, is what the others
    leave), the 64² texture and the decal bit for bit as stored, and together they fill the budget exactly."""
    budget = 80 * 80 + 64 * 64 + 8 * 8
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", budget)
    images = [random_images(1, 128, seed=1)[0], random_images(1, 64, seed=2)[0], random_images(1, 8, seed=3)[0]]
    notices: list[str] = []
    mesh = load_mesh(quads_glb(tmp_path / "mixed.glb", images), notice=notices.append)
    large, middle, decal = island_images(mesh, 3)
    assert large.shape[:2] == (80, 80)
    np.testing.assert_array_equal(middle, images[1])
    np.testing.assert_array_equal(decal, images[2])
    assert sum(im.shape[0] * im.shape[1] for im in (large, middle, decal)) == budget
    assert len(notices) == 1 and "the largest is reduced to at most 6,400 texels (the largest" in notices[0]
    assert "128×128 as 80×80); the 2 smaller keep their size" in notices[0]


def test_a_small_nearest_decal_keeps_its_texels_beside_large_nearest_textures(tmp_path, monkeypatch):
    """Pixel art: two NEAREST 64² textures and a NEAREST 8² decal over a budget of 2 · 32² + 8²: the large ones
    are halved (a power of two, their texel grid kept: each new texel is one 2 × 2 block of one colour here),
    the decal keeps all 64 of its texels, and the mesh still reads NEAREST."""
    monkeypatch.setattr(appearance, "ATLAS_TEXELS", 2 * 32 * 32 + 8 * 8)
    art = random_images(2, 32, seed=6)
    enlarged = [np.repeat(np.repeat(a, 2, axis=0), 2, axis=1) for a in art]  # 64², blocks of 2 × 2
    decal = random_images(1, 8, seed=7)[0]
    mesh = load_mesh(quads_glb(tmp_path / "art.glb", [*enlarged, decal], {"magFilter": NEAREST_GL}), notice=lambda line: None)
    assert mesh.mag_filter == NEAREST
    *large, small = island_images(mesh, 3)
    for got, image in zip(large, art, strict=True):
        np.testing.assert_array_equal(got, image)
    np.testing.assert_array_equal(small, decal)
