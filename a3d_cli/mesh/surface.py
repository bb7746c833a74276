"""`SurfaceMesh`: one triangle mesh with its appearance, the form every mesh takes inside a3d.

Why one flat form: a glTF scene with many nodes and materials, an OBJ with several textures and a coloured
PLY all become one mesh with one (optional) texture atlas and per-vertex colour multipliers. That single
vertex order is what the splat binding and the animated-mesh export share (see `docs/prepare.md`).

Appearance model: colour(p) = texture(uv(p)) · vertex_color(p), both sRGB display values in [0, 1]
(texture = white when absent). Base-colour factors and glTF emission are already baked into the texture or
the vertex colours by the loader. Outside [0, 1] the texture wraps by its sampler's modes (`wrap`); `concatenate`
bakes any other mode than REPEAT into the texture, so the mesh `load_mesh` returns always repeats (what the
files a3d writes assume: they name no sampler). The texture is read bilinearly or, for a sampler whose
`magFilter` is NEAREST (`mag_filter`), by its nearest texel; given the spacing of the splats that read it,
averaged over that footprint where it spans several texels (`appearance.sample_mipmapped`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.io.colour_profiles import Notice
from a3d_cli.mesh import appearance
from a3d_cli.mesh.appearance import (
    LINEAR,
    MAG_FILTERS,
    NEAREST,
    REPEAT_BOTH,
    WRAP_MODES,
    AtlasPlacement,
    TexelWindow,
    Wrap,
    mip_chain,
    sample_mipmapped,
    sample_texture,
)

EXTENDED_BUDGET = 2  # an atlas's images extended beyond their textures hold at most this many ATLAS_TEXELS
WHITE_PATCH = (4, 4)  # texels of the white patch an atlas holds for its untextured parts
ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")  # glTF's alpha modes, from least to most transparent
CORNER_NUDGE = 1e-3  # texels a vertex's lookup moves into each of its faces under NEAREST filtering


def require_finite(values: np.ndarray, what: str, name: str) -> None:
    """Refuse NaN or infinite vertex data: positions would poison every bound and transform, texture
    coordinates index the texture at -2^63, and colours turn black when made 8-bit.

    Args:
        values: the decoded data (positions, colours or texture coordinates).
        what: what they are, for the message ("vertex coordinates", "vertex colours (COLOR_0)" ...).
        name: the asset's file name.

    Raises:
        InputError: any value is NaN or infinite.
    """
    if not np.isfinite(values).all():
        raise InputError(f"{name} has {what} that are NaN or infinite.", hint="Repair the mesh in a 3D tool and export it again.")


FLOAT32_MAX = float(np.finfo(np.float32).max)  # ≈ 3.4e38, the largest number a glTF position can hold


def require_sane_extent(vertices: np.ndarray, name: str) -> None:
    """Refuse a model too large to normalize: a coordinate, or the diagonal of its bounding box, beyond the
    largest 32-bit float (≈ 3.4e38).

    Why: a vertex at 1e308 is finite, so `require_finite` lets it through, but the model's size then
    overflows to infinity, the normalization scale (radius / size) becomes 0 and every splat lands on the
    origin, and the stages after prepare fail. Exports write the asset's own frame as 32-bit floats
    (glTF), which hold nothing larger either. Called on the loaded mesh, before normalization.

    Args:
        vertices: [V, 3] positions in the file's own frame (finite: `require_finite` ran first).
        name: the asset's file name.

    Raises:
        InputError: the coordinates or the bounding box's diagonal exceed `FLOAT32_MAX`.
    """
    if not len(vertices):
        return
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)  # [3], [3]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is the answer here, not a warning
        size = float(np.linalg.norm(hi - lo))  # the bounding box's diagonal, inf when it overflows
    largest = float(np.abs(np.concatenate([lo, hi])).max())
    if not (largest <= FLOAT32_MAX and size <= FLOAT32_MAX):
        raise InputError(
            f"{name} is too large to normalize: its coordinates reach {largest:.3g} and its bounding box "
            f"measures {size:.3g}, beyond the {FLOAT32_MAX:.3g} a3d (and glTF's 32-bit floats) can hold.",
            hint="Re-export the model at a sane scale (apply the object's scale in your 3D tool, in metres or centimetres).",
        )


@dataclass(frozen=True)
class SurfaceMesh:
    """A triangle mesh with one optional texture and per-vertex colours.

    Attributes:
        vertices: [V, 3] float64 positions.
        faces: [T, 3] int64 vertex indices, counter-clockwise = front.
        vertex_colors: [V, 4] float32 sRGB RGBA multipliers in [0, 1].
        uvs: [V, 2] float64 texture coordinates (origin bottom-left) or None.
        texture: [H, W, 4] uint8 sRGB RGBA image or None (then `uvs` is None too).
        alpha_mode: how alpha is meant, as glTF's materials say: "OPAQUE" (alpha ignored), "MASK" (alpha is
            0 or 1 already) or "BLEND"; a joined mesh takes the most transparent mode of its parts.
        wrap: the texture's (wrapS, wrapT) glTF wrap modes (`a3d_cli.mesh.appearance`): how it extends
            beyond [0, 1]; REPEAT for OBJ and PLY textures and glTF's default sampler.
        mag_filter: the texture's glTF magnification filter, LINEAR (bilinear; OBJ, PLY and glTF's
            default) or NEAREST (the texel holding the point: crisp texels, as pixel-art assets ask).
        islands: where each image packed into the texture (an atlas, `concatenate`) lies; the texture is
            averaged over a footprint image by image, never across them. Empty for a texture of one image.
        normal_groups: [V] int64, which vertices share one normal (the sum over all their faces): set where
            a mesh has hard edges, found by a3d (`a3d_cli.mesh.creases`) or given by its file's normals
            (`load_mesh`), so the copies of a position on either side of a crease keep their own normals.
            None: the copies of each position share one (`topology.seam_copies`), so a texture seam shades
            smoothly.
    """

    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [T, 3]
    vertex_colors: np.ndarray  # [V, 4]
    uvs: np.ndarray | None = None  # [V, 2]
    texture: np.ndarray | None = None  # [H, W, 4]
    alpha_mode: str = "OPAQUE"
    wrap: Wrap = REPEAT_BOTH
    mag_filter: int = LINEAR
    islands: tuple[AtlasPlacement, ...] = ()
    normal_groups: np.ndarray | None = None  # [V]

    def __post_init__(self) -> None:
        v = self.vertices.shape[0]
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"SurfaceMesh.vertices must be [V, 3], got {list(self.vertices.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"SurfaceMesh.faces must be [T, 3], got {list(self.faces.shape)}")
        if self.vertex_colors.shape != (v, 4):
            raise ValueError(f"SurfaceMesh.vertex_colors must be [{v}, 4], got {list(self.vertex_colors.shape)}")
        if (self.uvs is None) != (self.texture is None):
            raise ValueError("SurfaceMesh needs both uvs and texture, or neither")
        if self.uvs is not None and self.uvs.shape != (v, 2):
            raise ValueError(f"SurfaceMesh.uvs must be [{v}, 2], got {list(self.uvs.shape)}")
        if len(self.wrap) != 2 or any(mode not in WRAP_MODES for mode in self.wrap):
            raise ValueError(f"SurfaceMesh.wrap must be two of {WRAP_MODES}, got {self.wrap}")
        if self.mag_filter not in MAG_FILTERS:
            raise ValueError(f"SurfaceMesh.mag_filter must be one of {MAG_FILTERS}, got {self.mag_filter}")
        if self.normal_groups is not None and self.normal_groups.shape != (v,):
            raise ValueError(f"SurfaceMesh.normal_groups must be [{v}], got {list(self.normal_groups.shape)}")

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def vertex_rgba(self, spacing: np.ndarray | None = None) -> np.ndarray:
        """[V, 4] float32 colour of every vertex (texture at its UV times its vertex colour).

        `spacing` ([V], in the mesh's units) is the distance from each vertex's splat to its neighbours: the
        texture is then averaged over that footprint (`_read`); None reads it at the point.

        Under NEAREST filtering a vertex often sits on a texel border (a voxel face's corner), where the
        texture jumps: its texture colour is then the mean, over its faces, of the texel each face shows next
        to it (`_corner_texels`), as a renderer draws the faces around it; bilinear colours are continuous
        there and are read at the vertex itself.
        """
        if self.texture is None:
            return self.vertex_colors.astype(np.float32)
        footprint = None if spacing is None else spacing * self._vertex_texel_density()  # [V] texels
        if self.mag_filter == NEAREST and self.num_faces:
            rgba = self._corner_texels(footprint)
        else:
            rgba = self._read(self.uvs, footprint)  # type: ignore[arg-type]
        return (rgba * self.vertex_colors).astype(np.float32)

    def _corner_texels(self, footprint: np.ndarray | None) -> np.ndarray:
        """[V, 4] the mean over each vertex's faces of the texel the face shows at the vertex: the texture read
        (`_read`) CORNER_NUDGE texels from the vertex towards the face's UV centroid (at the vertex itself for a
        vertex that no face uses, or a face whose corners share one UV)."""
        h, w = self.texture.shape[:2]  # type: ignore[union-attr]
        corner_uv = self.uvs[self.faces]  # type: ignore[index]  # [T, 3, 2]
        inward = corner_uv.mean(axis=1, keepdims=True) - corner_uv  # [T, 3, 2] towards the UV centroid
        reach = np.abs(inward * np.array([w, h])).max(axis=-1, keepdims=True)  # [T, 3, 1] in texels
        step = np.divide(CORNER_NUDGE, reach, out=np.zeros_like(reach), where=reach > 0)
        corners = self.faces.reshape(-1)  # [3T]
        texel = self._read((corner_uv + inward * step).reshape(-1, 2), None if footprint is None else footprint[corners])
        count = np.bincount(corners, minlength=self.num_vertices)  # [V]
        total = np.stack([np.bincount(corners, texel[:, c], self.num_vertices) for c in range(4)], axis=1)  # [V, 4]
        rgba = total / np.maximum(count, 1)[:, None]  # [V, 4]
        lone = count == 0
        if lone.any():
            rgba[lone] = self._read(self.uvs[lone], None if footprint is None else footprint[lone])  # type: ignore[index]
        return rgba.astype(np.float32)

    def _read(self, uv: np.ndarray, footprint: np.ndarray | None) -> np.ndarray:
        """[S, 4] the texture at uv [S, 2] with the sampler's wrap modes and filter; averaged over `footprint`
        ([S] texels between neighbouring splats) where that exceeds one texel, from the mip chain of the
        image (island) each point lies in (`_mips`)."""
        if footprint is None or not (footprint > 1.0).any():
            return sample_texture(self.texture, uv, self.wrap, self.mag_filter)  # type: ignore[arg-type]
        if not self.islands:
            return sample_mipmapped(self._mips(-1), uv, footprint, self.wrap, self.mag_filter)
        h, w = self.texture.shape[:2]  # type: ignore[union-attr]
        col, row = uv[:, 0] * w, (1.0 - uv[:, 1]) * h  # [S] in atlas texels
        out = sample_texture(self.texture, uv, self.wrap, self.mag_filter)  # [S, 4]: outside every island
        for i, p in enumerate(self.islands):  # a texel of slack for rounded edge coordinates
            at = (col > p.x - 1) & (col < p.x + p.width + 1) & (row > p.y - 1) & (row < p.y + p.height + 1)  # [S]
            if at.any():
                local = np.stack([(col[at] - p.x) / p.width, 1.0 - (row[at] - p.y) / p.height], axis=-1).clip(0.0, 1.0)
                spread = np.where(footprint[at] > p.texel, footprint[at], 1.0)  # a replicated texel is one texel
                out[at] = sample_mipmapped(self._mips(i), local, spread, self.wrap, self.mag_filter)
        return out

    def _mips(self, island: int) -> list[np.ndarray]:
        """The mip chain (`appearance.mip_chain`) of the whole texture (island −1) or of one packed image, made
        on first use and kept with the mesh."""
        if island not in self._mip_cache:
            p = self.islands[island] if island >= 0 else None
            image = self.texture if p is None else self.texture[p.y : p.y + p.height, p.x : p.x + p.width]  # type: ignore[index]
            self._mip_cache[island] = mip_chain(image)  # type: ignore[arg-type]
        return self._mip_cache[island]

    @cached_property
    def _mip_cache(self) -> dict[int, list[np.ndarray]]:
        return {}

    def _face_texel_density(self) -> np.ndarray:
        """[T] texels of the texture per unit of length on each face, √(texel area / surface area) (0 for a
        face of no area, or one whose corners share a texture coordinate)."""
        h, w = self.texture.shape[:2]  # type: ignore[union-attr]
        uv = self.uvs[self.faces] * np.array([w, h])  # type: ignore[index]  # [T, 3, 2] in texels
        e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
        texel_area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])  # [T]
        area = self.face_areas()  # [T]
        return np.sqrt(np.divide(texel_area, area, out=np.zeros_like(area), where=area > 0))

    def _vertex_texel_density(self) -> np.ndarray:
        """[V] the area-weighted mean of `_face_texel_density` over each vertex's faces (0 for a vertex no face uses)."""
        density, area = self._face_texel_density(), self.face_areas()  # [T], [T]
        corners = self.faces.reshape(-1)
        weighted = np.bincount(corners, np.repeat(density * area, 3), self.num_vertices)  # [V]
        total = np.bincount(corners, np.repeat(area, 3), self.num_vertices)  # [V]
        return np.divide(weighted, total, out=np.zeros_like(total), where=total > 0)

    def surface_rgba(self, face_ids: np.ndarray, bary: np.ndarray, spacing: np.ndarray | None = None) -> np.ndarray:
        """Colour at points on faces.

        Args:
            face_ids: [S] face index of each point.
            bary: [S, 3] barycentric weights w.r.t. the face's three vertices.
            spacing: [S] distance from each point's splat to its neighbours, in the mesh's units: the texture
                is then averaged over that footprint (`_read`); None reads it at the point.

        Returns:
            [S, 4] float32 RGBA.
        """
        corners = self.faces[face_ids]  # [S, 3]
        vc = np.einsum("sk,skc->sc", bary, self.vertex_colors[corners])  # [S, 4]
        if self.texture is None:
            return vc.astype(np.float32)
        uv = np.einsum("sk,skc->sc", bary, self.uvs[corners])  # type: ignore[index]  # [S, 2]
        footprint = None if spacing is None else spacing * self._face_texel_density()[face_ids]  # [S] texels
        return (self._read(uv, footprint) * vc).astype(np.float32)

    def normal_sharing(self) -> np.ndarray:
        """[V] int64: vertices with one number share one normal (`topology.vertex_normals`'s `welded`):
        `normal_groups` where set, else the copies of each position (`topology.seam_copies`)."""
        from a3d_cli.mesh.topology import seam_copies

        return seam_copies(self.vertices) if self.normal_groups is None else self.normal_groups

    def shading_normals(self) -> np.ndarray:
        """[V, 3] the unit normals a3d shows this mesh with: the NORMAL of `source/mesh.glb` and of the rest
        pose in `export/animated.glb`, and the light `a3d prepare` bakes into untextured splats.

        Each is the area-weighted normal of the faces around the vertex, summed over the vertices it shares a
        normal with (`normal_sharing`: smooth across texture seams, apart at hard edges); `NO_FACE_NORMAL`
        where they cancel or there are none (glTF asks for unit normals).
        """
        from a3d_cli.mesh.topology import NO_FACE_NORMAL, vertex_normals

        return vertex_normals(self.vertices, self.faces, NO_FACE_NORMAL, welded=self.normal_sharing())

    def surface_normals(
        self, face_ids: np.ndarray, bary: np.ndarray, corner_normals: np.ndarray | None = None
    ) -> np.ndarray:
        """Shading normal at points on faces, as a renderer shades a mesh with its NORMAL: the corners' normals
        interpolated with the barycentric weights, made unit length. A smooth surface of few triangles then
        shades smoothly, while a hard edge stays hard (the corners on either side hold different normals).

        Args:
            face_ids: [S] face index of each point.
            bary: [S, 3] barycentric weights w.r.t. the face's three vertices.
            corner_normals: [V, 3] the vertex normals to interpolate; None: `shading_normals()`.

        Returns:
            [S, 3] float64 unit normals; a point whose corner normals cancel (they point opposite ways) gets its
            face's own normal (zero for a face of no area).
        """
        from a3d_cli.mesh.topology import face_normals_and_areas

        normals = self.shading_normals() if corner_normals is None else corner_normals  # [V, 3]
        corners = self.faces[face_ids]  # [S, 3]
        n = np.einsum("sk,skc->sc", bary, normals[corners])  # [S, 3]
        length = np.linalg.norm(n, axis=-1)  # [S]
        cancel = length < 1e-6
        n = n / np.where(cancel, 1.0, length)[:, None]
        if cancel.any():
            n[cancel] = face_normals_and_areas(self.vertices, corners[cancel])[0]
        return n

    def face_areas(self) -> np.ndarray:
        """[T] triangle areas."""
        tri = self.vertices[self.faces]  # [T, 3, 3]
        return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)

    def with_vertices(self, vertices: np.ndarray) -> SurfaceMesh:
        """A copy with moved vertices (same order, same appearance)."""
        return replace(self, vertices=np.asarray(vertices, dtype=np.float64))

    def compact(self) -> SurfaceMesh:
        """Drop vertices that no face uses (keeping the order of the others) and faces with repeated indices."""
        faces = self.faces[
            (self.faces[:, 0] != self.faces[:, 1])
            & (self.faces[:, 1] != self.faces[:, 2])
            & (self.faces[:, 0] != self.faces[:, 2])
        ]
        used = np.zeros(self.num_vertices, dtype=bool)
        used[faces.ravel()] = True
        if used.all() and len(faces) == self.num_faces:
            return self
        new_index = np.cumsum(used) - 1  # [V]
        return SurfaceMesh(
            vertices=self.vertices[used],
            faces=new_index[faces].astype(np.int64),
            vertex_colors=self.vertex_colors[used],
            uvs=None if self.uvs is None else self.uvs[used],
            texture=self.texture,
            alpha_mode=self.alpha_mode,
            wrap=self.wrap,
            mag_filter=self.mag_filter,
            islands=self.islands,
            normal_groups=None if self.normal_groups is None else self.normal_groups[used],
        )


def concatenate(parts: list[SurfaceMesh], name: str = "the mesh", notice: Notice | None = None) -> SurfaceMesh:
    """Join meshes into one, in order: vertices of part k follow those of part k-1; the result's texture
    repeats (`wrap` REPEAT).

    Textured parts share one atlas (each distinct texture and wrap mode packed once); untextured parts point
    at a white patch of the atlas and keep their colours in `vertex_colors`. A texture whose coordinates stay
    within [0, 1] goes in as it is. One whose coordinates leave [0, 1] (over all the parts using it) goes in
    extended over the texels they reach (`appearance.extend_texture`) and the coordinates are mapped into
    that image: an atlas cannot wrap, and wrapping each vertex into [0, 1) on its own would make a face
    whose coordinates cross a cell border sweep across the image. A single REPEAT texture is kept as it is,
    since sampling wraps it exactly.

    The atlas (or the one texture kept as it is) is at most `appearance.ATLAS_SIDE` texels a side, what GPUs
    load: where no shelf layout (`appearance.shelf_layout`, tried before any image is reduced) is within it,
    the longest images are reduced to a common cap of texels a side, the largest cap that fits, in the same
    reduction as the texel cap below and with the same warning. The images of the atlas together hold at most twice `appearance.ATLAS_TEXELS` texels (and their edge
    padding): beyond that the largest are reduced to a common cap of texels each (`appearance.texel_cap`,
    `budget_sizes`) before they are extended, with one `warning:` line to `notice` naming the asset `name`. Twice: the loader has already held
    the textures themselves to ATLAS_TEXELS, and extending them a few texels past their edges (UV islands a hair
    outside [0, 1]) must not scale textures that fit; what this bounds is an image extended over many copies
    of its texture, which counts as large as it is. The atlas itself, padding, gaps and replicated texels
    included, holds at most `appearance.ATLAS_IMAGE_TEXELS` texels (the cap is the largest for which it does): the
    processed mesh's texture is one image that a3d reads back whole (`a3d_cli.mesh.store`). The atlas is read with NEAREST filtering when every texture
    in it is, else bilinearly: a NEAREST texture then goes in with each texel replicated
    (`appearance.replicate_texels`), so it keeps its crisp texels.

    Raises:
        InputError: more textures than an atlas holds even scaled down.
        ValueError: several parts of which one has `normal_groups` (the loader finds creases after joining).
    """
    from a3d_cli.mesh.appearance import pack_atlas, remap_uv, replicate_texels, replication_factors

    if len(parts) > 1 and any(p.normal_groups is not None for p in parts):
        raise ValueError("concatenate joins meshes without normal_groups; find the creases after joining")
    if len(parts) == 1 and not _wraps_otherwise(parts[0]) and _within_side(parts[0]):  # within [0, 1] every mode reads as REPEAT does
        return parts[0] if parts[0].wrap == REPEAT_BOTH else replace(parts[0], wrap=REPEAT_BOTH)
    alpha_mode = max((p.alpha_mode for p in parts), key=ALPHA_MODES.index)
    offsets = np.cumsum([0] + [p.num_vertices for p in parts])
    vertices = np.concatenate([p.vertices for p in parts], axis=0)
    faces = np.concatenate([p.faces + offsets[i] for i, p in enumerate(parts)], axis=0)
    colors = np.concatenate([p.vertex_colors for p in parts], axis=0)
    users: dict[tuple[int, Wrap, int], list[SurfaceMesh]] = {}  # (texture, wrap, filter) → the parts that use it
    for p in parts:
        if p.texture is not None:
            users.setdefault(_texture_key(p), []).append(p)
    if not users:
        return SurfaceMesh(vertices, faces, colors, alpha_mode=alpha_mode)
    mag_filter = NEAREST if all(key[2] == NEAREST for key in users) else LINEAR  # the atlas's
    replicated = [key[2] != mag_filter for key in users]  # NEAREST textures in a LINEAR atlas
    alone = len(users) == 1 and all(p.texture is not None for p in parts)  # one image, no atlas around it
    images, windows = _atlas_images(users, len(parts), name, notice, replicated, alone)
    to_image = {key: (k, window) for k, (key, window) in enumerate(zip(users, windows, strict=True))}
    factors = iter(replication_factors([im.shape for im, r in zip(images, replicated, strict=True) if r]))
    textures = [replicate_texels(im, next(factors)) if r else im for im, r in zip(images, replicated, strict=True)]
    texel_size = [t.shape[0] // im.shape[0] for t, im in zip(textures, images, strict=True)]  # replication factors

    def image_uv(p: SurfaceMesh) -> np.ndarray:
        window = to_image[_texture_key(p)][1]
        return p.uvs if window is None else window.to_unit(p.uvs)  # type: ignore[return-value,arg-type]

    if alone:
        uvs_all = np.concatenate([image_uv(p) for p in parts], axis=0)
        groups = parts[0].normal_groups if len(parts) == 1 else None  # one part keeps its own
        return SurfaceMesh(vertices, faces, colors, uvs_all, textures[0], alpha_mode, mag_filter=mag_filter, normal_groups=groups)
    white_slot = len(textures)
    textures.append(np.full((*WHITE_PATCH, 4), 255, dtype=np.uint8))
    atlas, places = pack_atlas(textures)
    places = [replace(p, texel=k) for p, k in zip(places, [*texel_size, 1], strict=True)]
    uvs = []
    for p in parts:
        if p.texture is None:
            uvs.append(remap_uv(np.full((p.num_vertices, 2), 0.5), places[white_slot], atlas.shape))
        else:
            uvs.append(remap_uv(image_uv(p), places[to_image[_texture_key(p)][0]], atlas.shape))
    uvs_all = np.concatenate(uvs, axis=0)
    return SurfaceMesh(vertices, faces, colors, uvs_all, atlas, alpha_mode, mag_filter=mag_filter, islands=tuple(places))


def _atlas_images(
    users: dict[tuple[int, Wrap, int], list[SurfaceMesh]],
    num_parts: int,
    name: str,
    notice: Notice | None,
    replicated: list[bool],
    alone: bool,
) -> tuple[list[np.ndarray], list[TexelWindow | None]]:
    """Per distinct texture (`users`: key → the parts that use it): the image it puts in the atlas, before
    replication (`replicated`: which are), and the texels of its sampler's endless plane that image holds (None
    when its coordinates stay within [0, 1], or for the one repeating texture of the whole mesh, which sampling
    wraps exactly); the largest reduced to a cap of texels each where they exceed the budget (see
    `concatenate`), or where the atlas packed of them (the one image itself when `alone`) would hold more than
    `appearance.ATLAS_IMAGE_TEXELS`. Sizes are planned first, from the textures' shapes; each image is made
    once, at its planned size."""
    from a3d_cli.mesh.appearance import budget_sizes, budget_warning, extend_texture, texel_window
    from a3d_cli.mesh.texture_reduce import downscale

    plans = []  # per texture: (texture, lowest and highest coordinates or None when inside [0, 1])
    for key, group in users.items():
        uv = np.concatenate([p.uvs for p in group], axis=0)  # type: ignore[misc]
        inside = not len(uv) or bool((uv >= 0.0).all() and (uv <= 1.0).all())
        if not inside and key[1] == REPEAT_BOTH and len(users) == 1 and len(group) == num_parts:
            inside = True  # one repeating texture for the whole mesh: sampling wraps it exactly
        plans.append((group[0].texture, None if inside else (uv.min(axis=0), uv.max(axis=0))))
    windows = [None if span is None else texel_window(*span, texture.shape) for texture, span in plans]
    shapes = [t.shape if w is None else (w.count_v, w.count_u) for (t, _), w in zip(plans, windows, strict=True)]
    nearest = [key[2] == NEAREST for key in users]

    def plan(limit: int, side: int | None) -> tuple[list[float], list[tuple[int, int]], list, tuple[int, int]]:
        """Each image's factor, size and plan (`_planned`) under caps of `limit` texels in all and `side` a side,
        and the atlas's (rows, columns)."""
        _, scales, sizes = budget_sizes(shapes, nearest, name, limit, side)
        planned = [_planned(t, span, w, f, n) for (t, span), w, f, n in zip(plans, windows, scales, nearest, strict=True)]
        return scales, sizes, planned, _packed_size([image for image, _, _ in planned], replicated, alone)

    def fits(limit: int, side: int | None) -> bool:
        """Whether the atlas planned under these caps keeps within both of its bounds."""
        rows, columns = plan(limit, side)[3]
        return rows * columns <= appearance.ATLAS_IMAGE_TEXELS and max(rows, columns) <= appearance.ATLAS_SIDE

    def holds(limit: int, side: int | None) -> bool:
        """Whether the atlas planned under these caps holds at most ATLAS_IMAGE_TEXELS texels."""
        rows, columns = plan(limit, side)[3]
        return rows * columns <= appearance.ATLAS_IMAGE_TEXELS

    budget = limit = EXTENDED_BUDGET * appearance.ATLAS_TEXELS
    side: int | None = None  # no cap on the images' sides unless the atlas needs one
    overlong = overfull = None  # the atlas's size when first found too long a side, or too large, for the warning
    while True:  # the caps that keep the images, and the atlas packed of them, within their bounds
        scales, sizes, planned, (rows, columns) = plan(limit, side)
        packed = rows * columns
        if packed > appearance.ATLAS_IMAGE_TEXELS:
            overfull = overfull or (rows, columns)
            held = sum(image[0] * image[1] for image, _, _ in planned)  # the images as planned: shrink them in proportion
            guess = min(limit - 1, held * appearance.ATLAS_IMAGE_TEXELS // packed)
            # in proportion is too little where the atlas shrinks faster than its images (a long row and a long
            # column: their texels shrink with their length, the atlas with its square): the largest that holds
            limit = _largest(lambda n, side=side: holds(n, side), guess, limit - 1) if holds(guess, side) else guess
        elif max(rows, columns) > appearance.ATLAS_SIDE:
            overlong = overlong or (rows, columns)
            longest = max(max(s) for s in sizes)
            side = _side_cap(lambda cap, limit=limit: fits(limit, cap), longest - 1, name, len(shapes))
        else:
            break
    if min(scales) < 1.0 and notice is not None:
        notice(budget_warning(name, shapes, sizes, budget, overlong, atlas=not alone, overfull=overfull))
    images = []
    for k, ((texture, _), key) in enumerate(zip(plans, users, strict=True)):
        _, reduced, windows[k] = planned[k]
        texture = downscale(texture, reduced)  # reduced before it is extended: memory never holds the larger image
        images.append(texture if windows[k] is None else extend_texture(texture, windows[k], key[1]))  # type: ignore[arg-type]
    return images, windows


def _planned(
    texture: np.ndarray, span: tuple | None, window: TexelWindow | None, scale: float, nearest: bool
) -> tuple[tuple[int, int], tuple[int, int], TexelWindow | None]:
    """(the image's size in the atlas, the texture's size before it is extended, its window) for a texture of
    coordinates `span` (None: inside [0, 1]) and unscaled `window`, reduced by `scale` (`reduced_size`)."""
    from a3d_cli.mesh.appearance import reduced_size, texel_window

    size = reduced_size(texture.shape, scale, nearest)
    if scale < 1.0 and span is not None:
        window = texel_window(*span, _scaled_copy(window, texture.shape, size, scale))
    image = size if window is None else (window.count_v, window.count_u)
    return image, size, window


def _side_cap(fits: Callable[[int], bool], longest: int, name: str, count: int) -> int:
    """A cap of texels a side, at most `longest`, under which `fits(cap)` holds (`_largest`): always one that fits,
    and the largest that does wherever a smaller cap never makes a longer atlas, as shelf packing
    (`appearance.shelf_layout`) behaves but for contrived sets of images. The longest images are reduced to it
    and the others keep their size, as the texel cap takes texels from the largest alone (`appearance.texel_cap`).

    Raises:
        InputError: the atlas would exceed its bounds even with every image a texel a side.
    """
    if longest < 1 or not fits(1):
        raise InputError(
            f"{name} has {count:,} distinct textures, more than a3d can pack into one texture atlas "
            f"({appearance.ATLAS_SIDE:,} texels a side) even at a few texels each.",
            hint="Bake the materials into a few textures in a 3D tool (e.g. Blender's texture baking) and export again.",
        )
    return _largest(fits, 1, longest)


def _largest(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest n in [lo, hi] for which `fits(n)` holds, found by bisection, given that `fits(lo)` does (for a
    `fits` that holds up to some n and not beyond, as the caps on images behave: smaller images, a smaller atlas)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _within_side(mesh: SurfaceMesh) -> bool:
    """Whether the mesh's texture (if any) is at most `appearance.ATLAS_SIDE` texels a side."""
    return mesh.texture is None or max(mesh.texture.shape[:2]) <= appearance.ATLAS_SIDE


def _packed_size(sizes: list[tuple[int, int]], replicated: list[bool], alone: bool) -> tuple[int, int]:
    """(rows, columns) of the atlas `concatenate` packs of images of `sizes` (NEAREST ones among LINEAR enlarged
    by their `replication_factors`; with the white patch and edge padding, `shelf_layout`), or of the one image
    when `alone`."""
    from a3d_cli.mesh.appearance import replication_factors, shelf_layout

    factors = iter(replication_factors([s for s, r in zip(sizes, replicated, strict=True) if r]))
    final = []
    for size, enlarged in zip(sizes, replicated, strict=True):
        k = next(factors) if enlarged else 1
        final.append((size[0] * k, size[1] * k))
    if alone:
        return final[0]
    return shelf_layout([*final, WHITE_PATCH])[0]


def _scaled_copy(
    window: TexelWindow | None, full: tuple[int, ...], shape: tuple[int, ...], scale: float
) -> tuple[int, int]:
    """(rows, columns) of one copy of a texture in its window once the texture of `full` [H, W, ...] is reduced
    to `shape` by `scale`: along an axis where the unscaled `window` held the whole texture, the reduced
    texture; where it held a smaller copy (`tile` below the texture's size: a window capped at its axis's
    limit, `appearance.texel_window`, coordinates reaching over many copies), that copy times `scale`.

    Why: a capped window holds about its limit of texels whatever the texture's size, so reducing the
    texture alone would leave its image in the atlas as large as it was."""
    if window is None:
        return int(shape[0]), int(shape[1])
    sizes = []
    for tile, old, new in ((window.tile_v, full[0], shape[0]), (window.tile_u, full[1], shape[1])):
        sizes.append(int(new) if tile >= old else min(int(new), max(1, math.floor(tile * scale))))
    return sizes[0], sizes[1]


def _texture_key(mesh: SurfaceMesh) -> tuple[int, Wrap, int]:
    """What makes a textured part's image distinct in an atlas: the texture, its wrap modes and its filter."""
    return id(mesh.texture), mesh.wrap, mesh.mag_filter


def _wraps_otherwise(mesh: SurfaceMesh) -> bool:
    """Whether the mesh's texture is read beyond [0, 1] by a wrap mode other than REPEAT."""
    if mesh.uvs is None or mesh.wrap == REPEAT_BOTH or not len(mesh.uvs):
        return False
    return bool((mesh.uvs < 0.0).any() or (mesh.uvs > 1.0).any())
