"""A material's texture as a3d keeps it (base colour × factor, plus emission), all within one atlas's budget.

Why planned before baked: the loader meets the asset's materials one part at a time, but the atlas budget
(`a3d_cli.mesh.appearance.texel_cap`: the textures of one atlas together at most `ATLAS_TEXELS` texels, the
largest reduced first, and none longer a side than GPUs load, `ATLAS_SIDE`) needs every texture's size first. So each textured part yields a `TextureRecipe` (its
images, still undecoded, and what to fold into them; its size read from the image's header), and
`bake_textures` bakes each distinct recipe at the size the budget gives it, one at a time: memory holds the baked textures, within the budget, and
the one image being decoded (`texture_check.texture_rgba`), however many or large the images the file declares.
A recipe within the budget bakes exactly as the loader always did.

Examples:
    >>> textures = bake_textures(recipes, "model.glb", notice=print)  # doctest: +SKIP
    >>> textures[recipes[0].key].shape  # doctest: +SKIP
    (4096, 4096, 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from a3d_cli.io.colour_profiles import Notice
from a3d_cli.mesh.appearance import (
    LINEAR,
    NEAREST,
    add_emission,
    apply_linear_factor,
    budget_sizes,
    budget_warning,
    shelf_layout,
    texture_side,
)
from a3d_cli.mesh.texture_check import ImageNames, image_identity, texture_rgba


@dataclass(frozen=True, eq=False)
class TextureRecipe:
    """What one material's baked texture is made of.

    Attributes:
        image: the base-colour image (a Pillow image as trimesh holds it), or None for an emissive texture alone.
        factor: [4] the linear base-colour factor.
        mode: the glTF alpha mode ("OPAQUE", "MASK" or "BLEND").
        cutoff: the MASK alpha cutoff.
        glow: [3] the linear emissive factor, or None for a material that emits nothing.
        glow_image: the emissive image, or None.
        glow_filter: the emissive sampler's magFilter.
        mag_filter: the base-colour sampler's magFilter, how the baked texture is read.
    """

    image: object | None
    factor: np.ndarray  # [4]
    mode: str
    cutoff: float
    glow: np.ndarray | None = None  # [3]
    glow_image: object | None = None
    glow_filter: int = LINEAR
    mag_filter: int = LINEAR

    @cached_property
    def key(self) -> tuple:
        """What makes two recipes bake the same texture: the images by their bytes (`texture_check.image_identity`:
        materials naming one file bake it once), the factors, modes and filters."""
        key: tuple = (image_identity(self.image), tuple(np.round(self.factor, 6)), self.mode, self.cutoff, self.mag_filter)
        if self.glow is not None:
            key += (image_identity(self.glow_image), tuple(np.round(self.glow, 6)), self.glow_filter)
        return key

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the baked texture at full scale: the base image's (else the emissive image's), from
        its header (an array, which trimesh does not hand over, by its shape)."""
        source = self.image if self.image is not None else self.glow_image
        size = getattr(source, "size", None)  # a Pillow image's (width, height)
        if not isinstance(size, tuple):
            rows, columns = np.asarray(source).shape[:2]
            return int(rows), int(columns)
        return int(size[1]), int(size[0])


def bake_textures(
    recipes: list[TextureRecipe],
    asset: str,
    notice: Notice | None = None,
    names: ImageNames | None = None,
    limit: int | None = None,
) -> dict[tuple, np.ndarray]:
    """Bake each distinct recipe (`TextureRecipe.key`) within the atlas budget: textures of at most the budget's
    cap of texels as they are, larger ones reduced to it (`appearance.texel_cap`); in the same reduction, each
    texture's longest side held to `appearance.texture_side` (what GPUs load, `appearance.ATLAS_SIDE`, less the
    atlas's edge padding where there are several).

    Args:
        recipes: the textured parts' recipes, in order (repeats are baked once).
        asset: the asset's file name, for messages.
        notice: receives one `warning:` line when the textures are scaled down to fit the budget or the side.
        names: the images' names, for the message of one whose pixels do not decode (`texture_check`).
        limit: the texels the textures may hold together, `appearance.ATLAS_TEXELS` by default.

    Returns:
        recipe key → [H, W, 4] uint8 sRGB baked texture.

    Raises:
        InputError: an image cannot be decoded, or there are too many textures even for the budget
            (`appearance.budget_sizes`).
    """
    distinct = list({r.key: r for r in recipes}.values())
    if not distinct:
        return {}
    shapes = [r.shape for r in distinct]
    side = texture_side(len(shapes))
    _, scales, sizes = budget_sizes(shapes, [r.mag_filter == NEAREST for r in distinct], asset, limit, side)
    if min(scales) < 1.0 and notice is not None:
        notice(budget_warning(asset, shapes, sizes, limit, _overlong(shapes, side)))
    return {r.key: bake(r, asset, scale, names) for r, scale in zip(distinct, scales, strict=True)}


def _overlong(shapes: list[tuple[int, int]], side: int) -> tuple[int, int] | None:
    """(rows, columns) of the image that textures of `shapes` would make beyond `side` a side (the one texture
    itself, or the atlas packed of several: `appearance.shelf_layout`), None when every texture is within it."""
    if max(max(s) for s in shapes) <= side:
        return None
    return shapes[0] if len(shapes) == 1 else shelf_layout(shapes)[0]


def bake(recipe: TextureRecipe, asset: str, scale: float = 1.0, names: ImageNames | None = None) -> np.ndarray:
    """One recipe's texture: the base image (reduced by `scale`, the budget's factor for it; the emissive image
    too) times its factor in linear light, plus the
    emission (`appearance.add_emission`), alpha as the alpha mode says (OPAQUE: 255; MASK: 0 or 255).

    Returns:
        [H, W, 4] uint8 sRGB.
    """
    glow_rgba = None
    if recipe.glow_image is not None:
        glow_rgba = texture_rgba(recipe.glow_image, asset, scale, recipe.glow_filter == NEAREST, names)
    if recipe.image is None:  # an emissive texture alone: the base factor is a colour under it
        baked = add_emission(recipe.factor, glow_rgba, recipe.glow)  # type: ignore[arg-type]
    else:
        baked = apply_linear_factor(
            texture_rgba(recipe.image, asset, scale, recipe.mag_filter == NEAREST, names), recipe.factor
        )
        if recipe.glow is not None:
            baked = add_emission(baked, glow_rgba, recipe.glow, emission_filter=recipe.glow_filter)
    if recipe.mode == "OPAQUE":
        baked[..., 3] = 255
    elif recipe.mode == "MASK":
        baked[..., 3] = np.where(baked[..., 3] >= round(recipe.cutoff * 255), 255, 0).astype(np.uint8)
    return baked
