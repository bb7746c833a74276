"""The longest side of the texture `a3d mesh-animate` writes (`--max-texture-size N`, engines' "Max Size").

Why: `prepare` keeps the processed mesh's atlas up to `appearance.ATLAS_SIDE` texels a side, what desktop GPUs
load; phones and WebGL load less (Unity's manual lists 2048 a side for OpenGL ES 2.0-class devices, 4096 for
ES 3.0), and a viewer that meets a larger image reduces it itself on every load (three.js's WebGLRenderer draws
it onto a smaller canvas), after the whole file was downloaded. With a limit, a texture longer than N on a side is reduced once,
here, as `prepare` reduces textures over its budget: its aspect kept (`appearance.capped_sizes`), each texel the
exact-area mean of those it covers in linear light (`texture_reduce.reduce_texture`), and a NEAREST texture
reduced by a power of two (`appearance.reduced_size`), so its texels stay on their grid.

This module is imported by the command line's option defaults, so it imports no numpy or Pillow at load.

Examples:
    >>> check_max_texture_size(2048)  # fine; 8 raises OptionError
    >>> limit_texture(read_processed_mesh(path), 2048, "mesh.glb")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from a3d_cli.errors import InputError, OptionError

if TYPE_CHECKING:
    from a3d_cli.mesh.store import ProcessedMesh

MIN_TEXTURE_SIZE = 32
"""The smallest limit taken: below it a texture keeps too little of an asset to be worth writing (a typo such as
`--max-texture-size 4` for 4096 is refused rather than written as a smudge)."""
HINT = "Give the longest side the engine loads, e.g. 4096 for phones or 2048 for WebGL, or leave the option out."


def check_max_texture_size(value: int | None) -> None:
    """Refuse a `--max-texture-size` that is not a whole number of at least `MIN_TEXTURE_SIZE` (None: no limit).

    Raises:
        OptionError: with `HINT`.
    """
    if value is None:
        return
    if type(value) is not int or value < MIN_TEXTURE_SIZE:
        raise OptionError(
            f"--max-texture-size must be a whole number of at least {MIN_TEXTURE_SIZE} texels, got {value!r}.",
            hint=HINT,
        )


def limit_texture(processed: ProcessedMesh, side: int, name: str) -> ProcessedMesh:
    """`processed` with its texture at most `side` texels on its longest side (the module docstring): itself when
    it has no texture or one within `side`; else the texture reduced, decoded first where the atlas is kept as
    stored, and held in the mesh (to be encoded again).

    Args:
        processed: the processed mesh (`a3d_cli.mesh.store.read_processed_mesh`).
        side: the longest side the texture may keep (`check_max_texture_size`).
        name: how messages name the processed mesh.

    Raises:
        InputError: a stored atlas whose pixels do not decode, with the hint to prepare again.
    """
    import io
    from dataclasses import replace

    from a3d_cli.io.images import open_image
    from a3d_cli.mesh.appearance import NEAREST, capped_sizes
    from a3d_cli.mesh.store import ProcessedMesh
    from a3d_cli.mesh.texture_reduce import reduce_texture

    mesh, atlas = processed.mesh, processed.atlas
    shape = atlas.shape if atlas is not None else (None if mesh.texture is None else mesh.texture.shape[:2])
    if shape is None or max(shape) <= side:
        return processed
    (size,) = capped_sizes([shape], [mesh.mag_filter == NEAREST], None, side)[1]
    if atlas is None:
        texture = reduce_texture(mesh.texture, size)
    else:
        hint = "Re-run `a3d prepare --force` to write it again."
        try:
            with open_image(io.BytesIO(atlas.data), f"{name}'s texture image", hint) as image:
                texture = reduce_texture(image, size)
        except InputError as exc:
            raise InputError(str(exc), hint=hint) from None
    return ProcessedMesh(replace(mesh, uvs=processed.uvs, texture=texture), processed.uvs, None)


__all__ = ["HINT", "MIN_TEXTURE_SIZE", "check_max_texture_size", "limit_texture"]
