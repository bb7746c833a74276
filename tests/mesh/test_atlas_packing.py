"""Packing an asset's textures into one atlas: the smallest atlas shelf packing makes of them (shelves across or
down, every shelf width that changes the layout), images never rotated, never overlapping, within the atlas's
bounds; where the atlas image would hold too many texels, the images are reduced no further than it needs."""

from __future__ import annotations

import numpy as np
from helpers import island_images, quad_part

from a3d_cli.mesh import appearance
from a3d_cli.mesh.surface import concatenate

PAD = 2  # texels of edge padding around each packed image (appearance.ATLAS_PADDING)


def test_two_textures_go_side_by_side_where_stacking_them_makes_a_larger_atlas():
    """A 4096² and a 2048² texture, 4100² and 2052² with their padding. Two squares in one box either lie side by
    side or one above the other (were the box narrower and shorter than both together, their extents would overlap
    along both axes), so the smallest atlas is 4100 × (4100 + 2052) = 4100 × 6152; shelves a square root of
    their area wide (4585) stacked them, 6152 × 4585. Of the two ways round, the one with fewer rows."""
    (rows, columns), places = appearance.shelf_layout([(4096, 4096), (2048, 2048)])
    assert (rows, columns) == (4100, 6152)
    assert [(p.height, p.width) for p in places] == [(4096, 4096), (2048, 2048)]


def test_a_texture_and_two_of_half_its_side_lie_one_below_the_other_beside_it():
    """A 2048² texture and two 1024² ones (2052², 1028², 1028² padded). A small one fits neither above nor below the
    large one unless the atlas is 3080 tall, nor beside it unless it is 3080 wide; and unless it is 2056 tall (or
    wide) the two small ones cannot share a column beside it either, which needs 2052 + 2056 = 4108. So the smallest
    atlas is 2056 × 3080 (6,332,480 texels, against 8,429,616 for all three on one shelf): the two small ones one
    below the other beside the large one, which shelves across the atlas never make."""
    (rows, columns), places = appearance.shelf_layout([(2048, 2048), (1024, 1024), (1024, 1024)])
    assert rows * columns == 2056 * 3080
    assert (rows, columns) == (2056, 3080)  # of the two ways round, fewer rows
    big, first, second = places
    assert first.x == second.x > big.x  # one column beside the large one


def test_a_squarer_atlas_is_kept_over_one_of_a_fraction_of_a_percent_fewer_texels():
    """A hundred 256² textures and the 4² white patch every atlas holds (260² and 8² padded): two shelves of 50
    hold them in 520 × 13008 texels (6,764,160), ten of ten in 2600 × 2608 (6,780,800), 0.25% more. Within 1% of
    the fewest texels the squarer is kept, which a device loading at most 4096 texels a side loads as it is. With
    fewer than ten a side, the other side needs more than ten (9 × 11 < 100), so no atlas is squarer."""
    (rows, columns), _ = appearance.shelf_layout([(256, 256)] * 100 + [(4, 4)])
    assert max(rows, columns) == 2608
    assert rows * columns * 100 <= (100 * 260 * 260 + 8 * 8) * 101


def test_a_long_row_and_a_long_column_keep_as_much_length_as_the_atlas_image_holds(monkeypatch):
    """A strip 200 texels long across and one 200 long down, 1 thick, with the atlas image's bound lowered to
    10,000 texels: any atlas holding both, each with 2 texels of padding around, is at least (L + 4)² for strips
    kept L long, so L ≤ 96. They are reduced to within a few texels of that (reducing them in proportion to the
    atlas's excess texels kept 46: the strips' texels shrink with their length, the atlas with its square), the
    atlas keeps within its bound, and each strip keeps its colour."""
    monkeypatch.setattr(appearance, "ATLAS_IMAGE_TEXELS", 10_000)
    colours = [(200, 30, 30), (30, 30, 200)]
    shapes = [(1, 200), (200, 1)]
    parts = [quad_part(np.full((*s, 3), c, np.uint8), k) for k, (s, c) in enumerate(zip(shapes, colours, strict=True))]
    notices: list[str] = []
    mesh = concatenate(parts, "strips.glb", notices.append)
    rows, columns = mesh.texture.shape[:2]  # type: ignore[union-attr]
    assert rows * columns <= 10_000
    row, column = island_images(mesh, 2)
    assert row.shape[0] == 1 and column.shape[1] == 1
    assert 90 <= row.shape[1] <= 96 and 90 <= column.shape[0] <= 96
    for image, colour in zip((row, column), colours, strict=True):
        assert (np.abs(image.astype(int) - colour) <= 1).all()
    assert len(notices) == 1 and "more than one texture image a3d writes holds (10,000)" in notices[0]


def random_shapes(rng: np.random.Generator) -> list[tuple[int, int]]:
    """1 to 30 image shapes (rows, columns): squares, rectangles and thin strips of 1 to 3000 texels a side."""
    shapes = []
    for _ in range(int(rng.integers(1, 31))):
        kind = rng.integers(0, 3)
        if kind == 0:
            side = int(rng.integers(1, 3001))
            shapes.append((side, side))
        elif kind == 1:
            shapes.append((int(rng.integers(1, 3001)), int(rng.integers(1, 3001))))
        else:
            long, thin = int(rng.integers(100, 3001)), int(rng.integers(1, 9))
            shapes.append((long, thin) if rng.integers(0, 2) else (thin, long))
    return shapes


def test_random_layouts_never_overlap_and_are_no_larger_than_a_single_row_or_column():
    """300 seeded sets of images, with the side limit at random: each image is placed at its own size (never
    rotated), its padded box inside the atlas and overlapping no other, and the atlas is the boxes' extent. One row
    of all the images, or one column, is an atlas too: wherever either is within the side (and the atlas image's
    texels), so is the layout, and it holds no more texels than that one, but for the 1/100 share by which a squarer
    layout is preferred."""
    rng = np.random.default_rng(2024)
    for trial in range(300):
        shapes = random_shapes(rng)
        side = int(rng.choice([2_000, 6_000, 16_384]))
        (rows, columns), places = appearance.shelf_layout(shapes, side=side)
        boxes = np.array([[p.y - PAD, p.x - PAD, p.y + p.height + PAD, p.x + p.width + PAD] for p in places])  # [N, 4]
        assert [(p.height, p.width) for p in places] == shapes, trial
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= rows).all() and (boxes[:, 3] <= columns).all(), trial
        assert (boxes[:, 2].max(), boxes[:, 3].max()) == (rows, columns), trial
        apart = (
            (boxes[:, None, 2] <= boxes[None, :, 0])
            | (boxes[None, :, 2] <= boxes[:, None, 0])
            | (boxes[:, None, 3] <= boxes[None, :, 1])
            | (boxes[None, :, 3] <= boxes[:, None, 1])
        )  # [N, N] pairs whose padded boxes are disjoint
        assert (apart | np.eye(len(shapes), dtype=bool)).all(), trial
        heights, widths = (np.array(shapes) + 2 * PAD).T
        for r, c in ((heights.max(), widths.sum()), (heights.sum(), widths.max())):  # one row, one column
            if max(r, c) <= side and r * c <= appearance.ATLAS_IMAGE_TEXELS:
                assert max(rows, columns) <= side and rows * columns <= appearance.ATLAS_IMAGE_TEXELS, trial
                assert rows * columns * 100 <= r * c * 101, trial


def test_textures_packed_under_lowered_bounds_keep_within_them(monkeypatch):
    """Seeded sets of 2 to 8 textures of up to 60 texels a side, with the atlas's side lowered to 64 and its image
    to 3000 texels: the atlas keeps within both, and every textured part keeps its colour."""
    monkeypatch.setattr(appearance, "ATLAS_SIDE", 64)
    monkeypatch.setattr(appearance, "ATLAS_IMAGE_TEXELS", 3000)
    rng = np.random.default_rng(7)
    for trial in range(12):
        count = int(rng.integers(2, 9))
        shapes = [(int(rng.integers(1, 61)), int(rng.integers(1, 61))) for _ in range(count)]
        colours = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(count)]
        parts = [quad_part(np.full((*s, 3), c, np.uint8), k) for k, (s, c) in enumerate(zip(shapes, colours, strict=True))]
        mesh = concatenate(parts, "set.glb", lambda line: None)
        rows, columns = mesh.texture.shape[:2]  # type: ignore[union-attr]
        assert max(rows, columns) <= 64 and rows * columns <= 3000, trial
        for image, colour in zip(island_images(mesh, count), colours, strict=True):
            assert (np.abs(image.astype(int) - colour) <= 1).all(), trial
