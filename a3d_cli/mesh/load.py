"""Read a user's 3D file: which kind it is, and meshes as one `SurfaceMesh`.

Why here: trimesh reads every mesh format we accept, but its scenes, visuals and materials come in many
shapes. This module flattens them once (node transforms baked, parts concatenated in scene order,
base-colour factors, vertex colours and glTF emission folded into the appearance) and turns every kind of bad file into one
clear `InputError`.

Examples:
    >>> kind = detect_kind(Path("examples/assets/fox.glb"))  # "mesh" (or "gaussians" for a 3DGS .ply, .splat, .spz)
    >>> mesh = load_mesh(Path("examples/assets/fox.glb"))
    >>> mesh.num_vertices, mesh.texture is not None  # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.io.colour_profiles import Notice
from a3d_cli.mesh.appearance import (
    LINEAR,
    REPEAT_BOTH,
    Wrap,
    linear_to_srgb,
    srgb_to_linear,
)
from a3d_cli.mesh.creases import FILE_NORMAL_DEGREES
from a3d_cli.mesh.surface import SurfaceMesh, concatenate, require_finite, require_sane_extent
from a3d_cli.mesh.texture_bake import TextureRecipe, bake_textures
from a3d_cli.mesh.texture_check import ImageNames, texture_mean

if TYPE_CHECKING:
    from a3d_cli.mesh.gltf_accessors import GltfDocument

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
INPUT_SUFFIXES = (*MESH_SUFFIXES, ".splat", ".spz")  # every suffix `prepare` reads (`.splat`, `.spz`: Gaussians only)
UNORIENTED_SUFFIXES = (".obj", ".ply", ".stl", ".off")  # formats that fix no up axis (STL is usually Z-up)
DEFAULT_GREY = (0.7, 0.7, 0.7, 1.0)  # colour of parts without any material or colour
InputKind = Literal["mesh", "gaussians"]
_REPAIR = "Repair the mesh in a 3D tool and export it again."


def check_input_file(path: Path) -> None:
    """Cheap checks before any work: the file exists, is a file, is readable and has a supported suffix; a
    glTF requires no extension a3d cannot honour (`a3d_cli.mesh.gltf_extensions`). A 3D or splat format a3d
    does not read (FBX, USD, `.ksplat`, ...) is refused with the command that converts it
    (`a3d_cli.mesh.conversions.unread_format_error`).

    Raises:
        InputError: with one sentence naming the problem.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"The input file {path} does not exist.", hint="Check the path and its spelling.")
    if not path.is_file():
        raise InputError(
            f"The input {path} is not a file.", hint="Pass a .glb, .gltf, .obj, .ply, .stl, .off, .splat or .spz file."
        )
    from a3d_cli.mesh.conversions import unread_format_error

    if (error := unread_format_error(path)) is not None:
        raise error
    if path.suffix.lower() not in INPUT_SUFFIXES:
        raise InputError(
            f"{path.name} has an unsupported file type {path.suffix or '(no suffix)'!r}.",
            hint="a3d reads .glb, .gltf, .obj (+ .mtl, textures), .ply (mesh, 3DGS or compressed 3DGS), .stl, .off, "
            ".splat and .spz; convert other formats first (docs/prepare.md lists commands for FBX, COLLADA, USD ...).",
        )
    from a3d_cli.io.regular import open_regular

    try:
        with open_regular(path) as f:  # a pipe swapped in since `is_file` is refused, not waited on
            head = f.read(16)
    except OSError as exc:
        raise InputError(f"Cannot read {path} ({exc.strerror or exc}).", hint="Check the file's permissions.") from exc
    if not head:
        raise InputError(
            f"The input file {path} is empty (0 bytes).", hint="The export or download did not finish; make the file again."
        )
    if path.suffix.lower() in (".glb", ".gltf"):  # extensions a3d cannot honour: refused before any work
        from a3d_cli.mesh.gltf_extensions import check_extensions
        from a3d_cli.mesh.references import gltf_json

        doc = gltf_json(path)
        if doc is not None:
            check_extensions(doc, path.name)


def detect_kind(path: Path) -> InputKind:
    """'gaussians' for a `.splat`, an `.spz` or a PLY meant to hold 3D Gaussians, otherwise 'mesh' (after
    `check_input_file`)."""
    from a3d_cli.gaussians.formats import SPLAT_SUFFIXES
    from a3d_cli.gaussians.ply import is_gaussian_ply

    path = Path(path)
    check_input_file(path)
    if path.suffix.lower() in SPLAT_SUFFIXES:
        return "gaussians"
    if path.suffix.lower() == ".ply" and is_gaussian_ply(path):
        return "gaussians"
    return "mesh"


def shades_flat(path: Path) -> bool:
    """Whether `load_mesh` may split vertices of `path` for flat shading when `flat_without_normals` is on: a
    .glb/.gltf with a triangle primitive without NORMAL (`gltf_core.has_flat_primitives`, from the file's JSON
    only), or an .obj with smoothing groups (`obj_smoothing.has_smoothing_lines`, a scan of its bytes; it may
    still have `vn`, which win). False for other formats and for a file whose JSON does not parse (loading it
    says why)."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        from a3d_cli.mesh.obj_smoothing import has_smoothing_lines

        return has_smoothing_lines(path)
    return _has_flat_primitives(path)


def hard_edges_left_out(path: Path) -> bool:
    """Whether `path` shades with hard edges that reading it with `flat_without_normals=False` leaves out: a
    glTF triangle primitive without NORMAL (flat), an OBJ without `vn` whose smoothing groups hold a flat face
    or more than one group (`obj_smoothing.smoothing_splits`; with `vn` the file's normals win, and
    `normal_groups` holds their hard edges). `prepare` has the hard edges of a mesh it simplifies found afresh
    then (`simplify_mesh(hard_edges=)`); an OBJ of one smoothing group stays smooth."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        from a3d_cli.mesh.obj_smoothing import has_normal_lines, smoothing_splits

        return smoothing_splits(path) and not has_normal_lines(path)
    return _has_flat_primitives(path)


def _has_flat_primitives(path: Path) -> bool:
    """A .glb/.gltf with a triangle primitive without NORMAL (`gltf_core.has_flat_primitives`), from its JSON;
    False for other formats and for a file whose JSON does not parse (loading it says why)."""
    from a3d_cli.io.regular import read_regular
    from a3d_cli.mesh.gltf_accessors import parse_gltf
    from a3d_cli.mesh.gltf_core import has_flat_primitives

    if path.suffix.lower() not in (".glb", ".gltf"):
        return False
    try:
        document, _ = parse_gltf(read_regular(path), path.name)
    except InputError:
        return False
    return has_flat_primitives(document)


def load_mesh(
    path: Path,
    allow_external_refs: bool = False,
    notice: Notice | None = None,
    texture_limit: int | None = None,
    document: GltfDocument | None = None,
    flat_without_normals: bool = True,
) -> SurfaceMesh:
    """Load a mesh file as one `SurfaceMesh` in the file's own frame (no normalization).

    Multi-node glTF scenes are flattened with their node transforms (instanced meshes appear once per
    instance); parts are concatenated in scene-graph order; textures (sampled through UVs), base-colour
    factors, COLOR_0 / PLY vertex colours and OBJ diffuse colours are all kept. Vertices no face uses
    are dropped. Files the asset names (buffers, images, materials, textures) are read only from inside its
    own folder unless `allow_external_refs` (`a3d_cli.mesh.references`). Textures that together exceed one
    atlas's budget (`a3d_cli.mesh.appearance.ATLAS_TEXELS`) are reduced, the largest first, and so are those
    longer a side than GPUs load (`appearance.ATLAS_SIDE`, the texture or the atlas packed of them), with one `warning:`
    line to `notice` (`a3d_cli.mesh.texture_bake`, `surface.concatenate`); `texture_limit` replaces that budget
    (a3d's own processed mesh, whose atlas may hold more: `a3d_cli.mesh.store.load_processed_mesh`). A glTF's
    `document` (`gltf_accessors.read_document`) is what is read instead of the file when given: the caller's,
    which it has read and checked already (`a3d_cli.mesh.store`). A triangle soup (no two faces share
    a vertex) from a file without normals (STL; OFF, OBJ or PLY written so) comes back with identical corners
    merged and its hard edges kept apart (`a3d_cli.mesh.creases`); an OBJ without `vn` but with smoothing
    groups (`s` lines) is shaded by them instead: flat where smoothing is off, a hard edge where two groups
    meet (`a3d_cli.mesh.obj_smoothing`); a file with its own normals keeps the hard edges they hold
    (`_with_file_hard_edges`). A glTF triangle primitive without NORMAL is shaded flat, as glTF
    requires: its vertices are split where its faces turn and given its faces' normals
    (`a3d_cli.mesh.gltf_core`), whose edges are then kept as a file's own. `flat_without_normals=False` reads
    the vertices as they are, without the glTF flat split or the OBJ smoothing groups (a3d's own processed mesh,
    `a3d_cli.mesh.store`; `prepare` before it knows it keeps the mesh unsimplified, `shades_flat`).

    Raises:
        InputError: unreadable or corrupt file, no geometry, no faces, non-finite coordinates or bad indices,
            more textures than an atlas holds even scaled down.
    """
    import trimesh

    path = Path(path)
    check_input_file(path)
    logging.getLogger("trimesh").setLevel(logging.ERROR)
    library = _obj_library(path)  # read once: the resolver and the texture check both need it
    resolver = _resolver(path, allow_external_refs, library)
    names = ImageNames()  # each texture image's name, for the message if its pixels do not decode when baked
    source: object = str(path)
    kwargs: dict[str, object] = {}
    if path.suffix.lower() in (".glb", ".gltf"):  # decode what trimesh would misread (a3d_cli.mesh.gltf_core)
        from a3d_cli.mesh.gltf_core import core_glb

        glb = core_glb(path, resolver, names, document, flat_without_normals)
        source, kwargs = io.BytesIO(glb), {"file_type": "glb"}
    uv_transforms: dict[str, tuple] = {}  # OBJ material → its map_Kd's -s / -o (a3d_cli.mesh.mtl)
    if path.suffix.lower() == ".obj":
        uv_transforms = _check_obj_textures(path, resolver, library, names)
    if path.suffix.lower() == ".ply":  # polygon faces trimesh misreads: triangles (a3d_cli.mesh.ply_faces)
        from a3d_cli.mesh.ply_faces import triangulated_ply

        if (triangles := triangulated_ply(path)) is not None:
            source, kwargs = io.BytesIO(triangles), {"file_type": "ply"}
    if path.suffix.lower() == ".stl":  # a binary STL that ends early is refused, not read as empty text (a3d_cli.mesh.stl)
        from a3d_cli.mesh.stl import binary_stl_bytes

        if (binary := binary_stl_bytes(path)) is not None:
            source, kwargs = io.BytesIO(binary), {"file_type": "stl"}
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # huge node transforms overflow: the checks below say so
            scene = trimesh.load_scene(source, process=False, resolver=resolver, **kwargs)
        # flatten the scene graph ourselves: trimesh's Scene.dump() copies visuals and loses COLOR_0 on textured parts
        instances = []  # (geometry, 4×4 world transform) per node that holds a geometry, in scene-graph order
        with np.errstate(over="ignore", invalid="ignore"):
            for node in scene.graph.nodes_geometry:
                transform, name = scene.graph[node]
                instances.append((scene.geometry[name], np.asarray(transform, dtype=np.float64)))
    except Exception as exc:  # trimesh raises many types for corrupt files, some only when its graph is walked
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"Cannot read {path.name} as a {path.suffix.lower()} file ({reason[:200]}).",
            hint="Check the file opens in a 3D viewer.",
        ) from exc
    if not any(len(getattr(g, "vertices", ())) for g, _ in instances):
        raise InputError(
            f"{path.name} contains no geometry (the mesh is empty).", hint="Export the object itself, not an empty scene."
        )
    faced = [(g, t) for g, t in instances if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not faced:
        raise InputError(
            f"{path.name} has points but no faces, so it is neither a mesh nor a 3DGS file.",
            hint="Give a triangle mesh, or a 3DGS .ply with x y z f_dc_0..2 opacity scale_0..2 rot_0..3.",
        )
    if any(np.shape(g.vertices)[1:] != (3,) for g, _ in faced):  # trimesh keeps an OBJ's `v 1 2` as 2 columns
        raise InputError(f"{path.name} has vertex positions that are not three numbers each (x y z).", hint=_REPAIR)
    _check_stored_colours(path, faced)
    from_gltf = path.suffix.lower() in (".glb", ".gltf")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing placement is refused as non-finite
        planned = [_to_surface(g, t, from_gltf, path, uv_transforms, names) for g, t in faced]
    try:  # every texture's size is known now: baked within the atlas budget, one at a time
        textures = bake_textures([r for _, _, r in planned if r is not None], path.name, notice, names, texture_limit)
    except OSError as exc:  # Pillow decodes the textures only now: a truncated or damaged image
        raise InputError(f"{path.name} has a texture image that cannot be decoded ({exc}).", hint=_REPAIR) from exc
    parts = [part if r is None else replace(part, uvs=uvs, texture=textures[r.key]) for part, uvs, r in planned]
    without_normals = path.suffix.lower() in UNORIENTED_SUFFIXES and not _has_own_normals(faced)
    mesh = _with_file_hard_edges(concatenate(parts, path.name, notice), faced).compact()
    if mesh.num_faces > 0:  # a vertex at 1e308 would normalize every splat to the origin (and overflow normals)
        require_sane_extent(mesh.vertices, path.name)
    if without_normals:
        mesh = _shaded_without_normals(mesh, path, smoothing_groups=flat_without_normals)
    if mesh.num_faces == 0:
        raise InputError(
            f"{path.name} has only degenerate faces (every face repeats a vertex).", hint=_REPAIR
        )
    if not _has_area(mesh):
        raise InputError(
            f"{path.name} has no surface: every face has zero area (its corners lie on one line).", hint=_REPAIR
        )
    return mesh


def _shaded_without_normals(mesh: SurfaceMesh, path: Path, smoothing_groups: bool) -> SurfaceMesh:
    """`mesh`, read from a file without vertex normals, with the hard edges a3d gives it: an OBJ's smoothing
    groups where it has `s` lines and `smoothing_groups` is on (`a3d_cli.mesh.obj_smoothing`), else, for a
    triangle soup (an STL as written), the crease rule (`a3d_cli.mesh.creases`); a soup's identical corners are
    merged first either way. Any other mesh is left as read (smooth)."""
    from a3d_cli.mesh.creases import is_triangle_soup, merge_identical_vertices, split_face_groups, weld_and_crease

    groups = None
    if smoothing_groups and path.suffix.lower() == ".obj":
        from a3d_cli.mesh.obj_smoothing import read_smoothing_groups

        groups = read_smoothing_groups(path)
    if groups is None:
        return weld_and_crease(mesh) if is_triangle_soup(mesh) else mesh
    from a3d_cli.mesh.obj_smoothing import face_labels

    if is_triangle_soup(mesh):
        mesh = merge_identical_vertices(mesh)
    return split_face_groups(mesh, face_labels(mesh.vertices, mesh.faces, groups))


FLAT_AREA = 1e-12
"""A face whose doubled area is at most this share of the mesh's squared extent counts as having none: corners
on one line, up to float rounding."""


def _has_area(mesh: SurfaceMesh) -> bool:
    """Whether some face of the mesh spans an area: one whose faces all lie on lines would give invisible
    splats and empty views (a line drawing exported as triangles, a damaged file). A mesh of one point counts
    as having area here: normalization refuses it as having zero size, the more exact message."""
    from a3d_cli.mesh.topology import face_normals_and_areas

    vertices = mesh.vertices.astype(np.float64)
    extent = float(np.ptp(vertices, axis=0).max())
    return extent == 0 or bool((2 * face_normals_and_areas(vertices, mesh.faces)[1] > FLAT_AREA * extent**2).any())


def _with_file_hard_edges(mesh: SurfaceMesh, faced: list[tuple[Any, np.ndarray]]) -> SurfaceMesh:
    """`mesh` (the parts of `faced` joined, vertices in their order) with `normal_groups` set where its file's
    own normals hold hard edges: copies of a point whose normals differ (a flat-shaded cube's corners, a CAD
    part's edges) keep their own shading normals (`SurfaceMesh.shading_normals`), as viewers show the file,
    instead of one smooth normal per point. Unchanged when the file has no normals or none differ at a point.

    Why the groups and not the normals themselves: a3d recomputes its normals as the mesh moves (the animated
    GLB's morph normals), so what it keeps of the file is which corners share one."""
    if not _has_own_normals(faced):
        return mesh
    from a3d_cli.mesh.creases import normal_groups_from_normals

    normals = np.concatenate([_world_normals(g, t) for g, t in faced], axis=0)  # [V, 3]
    return replace(mesh, normal_groups=normal_groups_from_normals(mesh.vertices, normals, FILE_NORMAL_DEGREES))


def _world_normals(m: object, transform: np.ndarray) -> np.ndarray:
    """[V, 3] a trimesh part's own vertex normals (the file's) turned by its node's world transform (the
    cofactor of its 3×3, sign-corrected as `_to_surface` reverses mirrored faces); zero for a part whose file
    gave none or for values that are not finite."""
    v = len(m.vertices)  # type: ignore[attr-defined]
    if "vertex_normals" not in getattr(m, "_cache", ()):
        return np.zeros((v, 3))
    own = np.asarray(m.vertex_normals, dtype=np.float64)  # type: ignore[attr-defined]  # [V, 3]
    if own.shape != (v, 3):
        return np.zeros((v, 3))
    a = transform[:3, :3]
    cofactor = np.stack([np.cross(a[1], a[2]), np.cross(a[2], a[0]), np.cross(a[0], a[1])])  # [3, 3]
    with np.errstate(over="ignore", invalid="ignore"):
        world = own @ (np.sign(np.linalg.det(a)) * cofactor).T  # [V, 3]
    return np.where(np.isfinite(world), world, 0.0)


def _has_own_normals(faced: list[tuple[Any, np.ndarray]]) -> bool:
    """Whether trimesh read vertex normals from the file (an OBJ's `vn`, a PLY's `nx ny nz`) for any part.

    trimesh keeps normals given to it in its cache and computes them only when asked, so their presence
    there right after reading means the file had them. STL's per-facet normals do not count. The cache is
    trimesh's own attribute: a trimesh without it counts as one that read none (the soup is then welded and
    its normals computed, as for an STL)."""
    return any("vertex_normals" in getattr(g, "_cache", ()) for g, _ in faced)


def _check_stored_colours(path: Path, faced: list[tuple[Any, np.ndarray]]) -> None:
    """Refuse NaN or infinite OBJ/PLY vertex (or face) colours as the file stores them.

    Why: trimesh turns float colours into 8 bits before a3d sees them, and NaN becomes 0 (black) without a
    word. glTF's COLOR_0 is checked as it is decoded (`a3d_cli.mesh.gltf_core`); this keeps the same
    promise for OBJ and PLY, with the same `require_finite`. The colours are read again only when trimesh
    found some, so a file without colours costs nothing.

    Raises:
        InputError: a stored colour is NaN or infinite.
    """
    if not any(getattr(getattr(g, "visual", None), "kind", None) in ("vertex", "face") for g, _ in faced):
        return
    suffix = path.suffix.lower()
    if suffix == ".obj":
        require_finite(_obj_vertex_colours(path), "vertex colours", path.name)
    elif suffix == ".ply":  # trimesh keeps the PLY's elements as read: float colours before the 8-bit cast
        for g, _ in faced:
            raw = (getattr(g, "metadata", None) or {}).get("_ply_raw") or {}
            for element in ("vertex", "face"):
                data = raw.get(element, {}).get("data") if isinstance(raw.get(element), dict) else None
                names = data.dtype.names if isinstance(data, np.ndarray) else data
                for key in ("red", "green", "blue", "alpha"):
                    if names and key in names:
                        require_finite(np.asarray(data[key]), f"{element} colours", path.name)  # type: ignore[index]


def _obj_vertex_colours(path: Path) -> np.ndarray:
    """[N] the colour numbers of an OBJ's `v x y z r g b` lines (4th to 6th number), as trimesh finds them
    (lines starting with "v ", backslash continuations joined); empty when a token is not a number (trimesh
    then read the file its own way)."""
    from a3d_cli.io.regular import read_regular

    text = read_regular(path).decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\\\n", "")
    tokens = [t for line in text.split("\n") if line.startswith("v ") for t in line.split()[4:7]]
    try:
        return np.array(tokens, dtype=np.float64)  # "nan", "inf" and "1e999" (→ inf) read as floats do
    except ValueError:
        return np.zeros(0)


def _check_obj_textures(path: Path, resolver: Any, library: str | None, names: ImageNames | None = None) -> dict[str, tuple]:
    """Check every `map_Kd` image of the OBJ's material library (`a3d_cli.mesh.texture_check.check_header`;
    its pixels are decoded once, when baked, with `names` naming it): trimesh would drop one it cannot open
    without a word. The library is the one trimesh loads
    (`a3d_cli.mesh.mtl.obj_material_library`), asked for by its name as written through the same rooted
    `resolver` trimesh is given, so the file checked is the file trimesh reads, and one outside the asset's
    folder (or through a link out of it) is never opened. Each image is asked for by its name as written,
    so the resolver finds the very file trimesh will read. A library that is missing or refused, and an
    image that is missing, are left to trimesh, as before.

    Returns:
        the `-s` / `-o` of each material's `map_Kd` (`a3d_cli.mesh.mtl.diffuse_uv_transforms`), which trimesh
        does not apply."""
    from a3d_cli.mesh.mtl import diffuse_uv_transforms, referenced_names
    from a3d_cli.mesh.references import read_referenced
    from a3d_cli.mesh.texture_check import HINT, check_header

    if library is None:
        return {}
    try:
        text = bytes(resolver.get(library)).decode("utf-8", errors="replace")
    except Exception:  # missing, outside the folder, not a regular file, unreadable: trimesh decides
        return {}
    checked: set[str] = set()  # an image many materials use is read and checked once
    for name in referenced_names(text, ("map_kd",)):  # as written: the resolver finds what trimesh will read
        if posixpath.normpath(name) in checked:
            continue
        checked.add(posixpath.normpath(name))
        data = read_referenced(resolver, [name], f"texture image {name!r}", path.name, HINT)
        if data is not None:
            check_header(data, name, path.name, names)
    return diffuse_uv_transforms(text)


def _obj_library(path: Path) -> str | None:
    """The material library an OBJ names (as trimesh reads it); None for other formats or none named."""
    from a3d_cli.mesh.mtl import obj_material_library

    return obj_material_library(path) if path.suffix.lower() == ".obj" else None  # a regular file: `check_input_file`


def _material_dirs(library: str | None) -> list[str]:
    """The folder (relative to the OBJ's, '/' separators) of the OBJ's material library, when not its own."""
    if library is None:
        return []
    folder = posixpath.normpath(posixpath.dirname(library.replace("\\", "/")) or ".")
    return [] if folder == "." else [folder]


def _resolver(path: Path, allow_external: bool = False, library: str | None = None) -> object:
    """A file resolver for the files an OBJ/glTF references, with MTL map options (`map_Kd -bm 1.0 my tex.png`,
    read as the MTL format defines them: options, then the file name as the rest of the line) and Windows
    separators tolerated. Names leading outside the asset's folder (absolute, `../`, links) are refused
    unless `allow_external` (trimesh's own root check, `allow_anywhere`), and so are names of anything but a
    regular file (a named pipe or device would hang the read).

    trimesh looks up an MTL's maps from the OBJ's folder; a name found nowhere from there is looked up again
    from the folder of the OBJ's material library (an MTL in `mats/` naming `../tex/a.png` or
    `a.png`), which is where a3d's reference check (`mesh.references.sidecar_files`) finds it; `library` is that
    library's name as the OBJ writes it (`_obj_library`), None for none."""
    from trimesh.resolvers import FilePathResolver

    from a3d_cli.io.regular import read_regular
    from a3d_cli.mesh.mtl import map_file_name

    material_dirs = _material_dirs(library)

    class _Lenient(FilePathResolver):
        def get(self, name: str) -> bytes:
            try:
                return self._as_written(name)
            except Exception as exc:
                file_name = map_file_name(name) or name
                for folder in material_dirs:
                    try:
                        return self._as_written(posixpath.normpath(posixpath.join(folder, file_name)))
                    except Exception:  # noqa: S112 - the next folder, then the error of the name as written
                        continue
                raise exc

        def _as_written(self, name: str) -> bytes:
            try:
                return self._regular(name)
            except Exception:
                file_name = map_file_name(name)
                if not file_name or file_name == name:
                    raise
                return self._regular(file_name)

        def _regular(self, name: str) -> bytes:
            """The bytes of a plain file: a pipe or device would block the read forever or never end. The
            names tried are those trimesh's `get` tries, in its order (as written, without a leading "/",
            the base name): the first that exists inside the folder is read, through `read_regular` (opened
            without blocking, checked on the opened descriptor, so nothing can be swapped in after the check)."""
            for candidate in (name.strip(), name.strip().lstrip("/"), os.path.basename(name)):
                try:
                    target = self.absolute(candidate)  # resolved, and inside the folder unless allow_anywhere
                except ValueError:  # outside the folder: trimesh's get skips it too
                    continue
                if target.exists():
                    return read_regular(target)
            self.absolute(name)  # a name outside the folder: trimesh's error that says so
            raise FileNotFoundError(name)

    return _Lenient(str(path), allow_anywhere=allow_external)


def _to_surface(
    m: object,
    transform: np.ndarray,
    from_gltf: bool,
    path: Path,
    uv_transforms: dict | None = None,
    names: ImageNames | None = None,
) -> tuple[SurfaceMesh, np.ndarray | None, TextureRecipe | None]:
    """One trimesh part placed by its node's world transform → SurfaceMesh with its colours, and, for a
    textured part, its texture coordinates and the recipe of its texture (`a3d_cli.mesh.texture_bake`), which
    `load_mesh` bakes and puts into the mesh together with them; `uv_transforms` maps an OBJ material's name to
    its map_Kd's (scale, offset) of texture coordinates; `names` names the images in messages."""
    local = np.asarray(m.vertices, dtype=np.float64)  # type: ignore[attr-defined]  # [V, 3]
    vertices = local @ transform[:3, :3].T + transform[:3, 3]  # [V, 3]
    faces = np.asarray(m.faces, dtype=np.int64)  # type: ignore[attr-defined]  # [T, 3]
    if np.linalg.slogdet(transform[:3, :3])[0] < 0:  # mirroring turns faces inside out (the sign: no overflow)
        faces = faces[:, ::-1].copy()
    require_finite(vertices, "vertex coordinates", path.name)  # also after the node transform
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InputError(f"{path.name} has faces that point at vertices that do not exist.", hint=_REPAIR)
    v = len(vertices)
    visual = getattr(m, "visual", None)
    kind = getattr(visual, "kind", None)
    colors = np.tile(np.asarray(DEFAULT_GREY, dtype=np.float32), (v, 1))  # [V, 4]
    uvs = recipe = None
    alpha_mode, wrap = "OPAQUE", REPEAT_BOTH
    mag_filter, glow_filter = _gltf_filters(m) if from_gltf else (LINEAR, LINEAR)
    if kind == "texture":
        try:
            colors, uvs, recipe = _texture_appearance(visual, v, from_gltf, path.name, glow_filter, mag_filter, names)
        except OSError as exc:  # an emissive image's mean is decoded here: a truncated or damaged image
            raise InputError(f"{path.name} has a texture image that cannot be decoded ({exc}).", hint=_REPAIR) from exc
        if uvs is not None:  # OBJ/PLY texture coordinates (glTF's are checked as they are decoded)
            require_finite(uvs, "texture coordinates", path.name)
            name = getattr(visual.material, "name", None)  # type: ignore[union-attr]
            if uv_transforms and not from_gltf and name in uv_transforms:  # map_Kd -s / -o: uv · s + o
                scale, offset = uv_transforms[name]
                uvs = uvs * np.asarray(scale) + np.asarray(offset)
            wrap = _gltf_wrap(m) if from_gltf else REPEAT_BOTH
        alpha_mode = _alpha_mode(visual.material)[0]  # type: ignore[union-attr]
    elif kind in ("vertex", "face"):
        raw = np.asarray(visual.vertex_colors, dtype=np.float64)[:, :4] / 255.0  # type: ignore[union-attr]  # [V, 4]
        colors = _vertex_colors(raw, from_gltf)
        colors[:, 3] = 1.0  # vertex colours without a material: opaque (glTF's default material)
    mag_filter = mag_filter if recipe is not None else LINEAR
    return SurfaceMesh(vertices, faces, colors.astype(np.float32), None, None, alpha_mode, wrap, mag_filter), uvs, recipe


def _gltf_wrap(m: object) -> Wrap:
    """The (wrapS, wrapT) of a glTF part's base-colour sampler, as `a3d_cli.mesh.gltf_core` hands it on
    (`WRAP_ATTRIBUTE`, absent for REPEAT)."""
    from a3d_cli.mesh.gltf_core import WRAP_ATTRIBUTE

    modes = (getattr(m, "vertex_attributes", None) or {}).get(WRAP_ATTRIBUTE)
    if modes is None or not len(modes):
        return REPEAT_BOTH
    return (int(modes[0][0]), int(modes[0][1]))


def _gltf_filters(m: object) -> tuple[int, int]:
    """The magFilter of a glTF part's base-colour and emissive samplers, as `a3d_cli.mesh.gltf_core` hands them
    on (`FILTER_ATTRIBUTE`, absent when both are LINEAR)."""
    from a3d_cli.mesh.gltf_core import FILTER_ATTRIBUTE

    filters = (getattr(m, "vertex_attributes", None) or {}).get(FILTER_ATTRIBUTE)
    if filters is None or not len(filters):
        return LINEAR, LINEAR
    return int(filters[0][0]), int(filters[0][1])


def _vertex_colors(raw: np.ndarray, from_gltf: bool) -> np.ndarray:
    """[V, 3|4] colours in [0, 1] → [V, 4] sRGB. glTF COLOR_0 is linear, PLY/OBJ colours are display values."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[1] == 3:
        raw = np.concatenate([raw, np.ones((len(raw), 1))], axis=1)
    rgb = linear_to_srgb(raw[:, :3]) if from_gltf else np.clip(raw[:, :3], 0, 1)
    return np.concatenate([rgb, np.clip(raw[:, 3:4], 0, 1)], axis=1).astype(np.float32)


def _texture_appearance(
    visual: object,
    v: int,
    from_gltf: bool,
    asset: str,
    glow_filter: int = LINEAR,
    mag_filter: int = LINEAR,
    names: ImageNames | None = None,
) -> tuple[np.ndarray, np.ndarray | None, TextureRecipe | None]:
    """Vertex colours, UVs and the recipe of the texture (`a3d_cli.mesh.texture_bake`) of a trimesh
    TextureVisuals.

    A glTF material's emission adds to its base colour (`a3d_cli.mesh.appearance.add_emission`): into the
    vertex colours when it is a factor alone, else into the baked texture. `a3d_cli.mesh.gltf_core` has made
    an emissive texture read the base texture's texture coordinates (or stand alone); read without them, it
    counts as its average colour. `glow_filter` and `mag_filter` are the emissive and base-colour samplers'
    magFilter; `names` names the images in messages (`a3d_cli.mesh.texture_check`)."""
    from trimesh.visual.material import PBRMaterial

    mat = visual.material  # type: ignore[attr-defined]
    uv = getattr(visual, "uv", None)
    image = None
    factor = np.ones(4)
    glow, glow_image = None, None
    if isinstance(mat, PBRMaterial):
        image = mat.baseColorTexture
        if mat.baseColorFactor is not None:
            factor = np.asarray(mat.baseColorFactor, dtype=np.float64) / 255.0
        glow, glow_image = _emission(mat)
    else:
        image = getattr(mat, "image", None)
        diffuse = getattr(mat, "diffuse", None)
        if _placeholder(mat):  # UVs but no material at all: trimesh's stand-in is not the asset's texture
            image = None
        if "kd" not in (getattr(mat, "kwargs", None) or {}):
            diffuse = None  # no Kd line: trimesh's dark placeholder is not the asset's colour
        if image is None:  # OBJ Kd: a display colour, used when there is no map_Kd
            rgba = np.asarray(DEFAULT_GREY if diffuse is None else np.asarray(diffuse)[:4] / 255.0, dtype=np.float32)
            colors = np.tile(rgba, (v, 1))
            colors[:, 3] = 1.0
            return colors, None, None
    if (image is None and glow_image is None) or uv is None or len(uv) != v:
        # factor only (or a texture without UVs: use the factor alone): a linear glTF colour
        rgb = linear_to_srgb(factor[:3]) if isinstance(mat, PBRMaterial) else factor[:3]
        colors = _times_color0(np.tile(np.concatenate([rgb, factor[3:]]).astype(np.float32), (v, 1)), visual, from_gltf)
        if glow is not None:  # COLOR_0 tints the base colour only: the emission adds after it
            light = glow if glow_image is None else glow * texture_mean(glow_image, asset, names)
            colors[:, :3] = linear_to_srgb(srgb_to_linear(colors[:, :3]) + light)
        mode, cutoff = _alpha_mode(mat)
        if mode == "OPAQUE":
            colors[:, 3] = 1.0
        elif mode == "MASK":
            colors[:, 3] = (colors[:, 3] >= cutoff).astype(np.float32)
        return colors, None, None
    mode, cutoff = _alpha_mode(mat)
    recipe = TextureRecipe(image, factor, mode, cutoff, glow, glow_image, glow_filter, mag_filter)
    colors = _times_color0(np.ones((v, 4), dtype=np.float32), visual, from_gltf)
    if mode != "BLEND":
        colors[:, 3] = 1.0
    return colors, np.asarray(uv, dtype=np.float64), recipe


def _emission(mat: object) -> tuple[np.ndarray | None, object | None]:
    """A glTF material's emissive factor ([3] linear, its KHR_materials_emissive_strength folded in by
    `a3d_cli.mesh.gltf_core`) and emissive image; (None, None) when it emits nothing (glTF's default factor
    is black, which no texture lights)."""
    glow = getattr(mat, "emissiveFactor", None)
    if glow is None:
        return None, None
    glow = np.asarray(glow, dtype=np.float64).reshape(3)
    if not (glow > 0).any():
        return None, None
    return glow, getattr(mat, "emissiveTexture", None)


def _placeholder(mat: object) -> bool:
    """Whether a non-PBR material is trimesh's stand-in for "no material" (a tiny one-colour image
    that no file provided), which must not replace a3d's default grey."""
    image = getattr(mat, "image", None)
    if image is None or getattr(mat, "kwargs", None):
        return False
    return "file_path" not in getattr(image, "info", {}) and max(getattr(image, "size", (99, 99))) <= 2


def _alpha_mode(mat: object) -> tuple[str, float]:
    """glTF alpha mode of a material ("OPAQUE" for anything that is not a glTF BLEND/MASK material)."""
    mode = getattr(mat, "alphaMode", None) or "OPAQUE"
    cutoff = getattr(mat, "alphaCutoff", None)
    return (mode if mode in ("OPAQUE", "MASK", "BLEND") else "OPAQUE"), float(0.5 if cutoff is None else cutoff)


def _times_color0(colors: np.ndarray, visual: object, from_gltf: bool) -> np.ndarray:
    """Multiply by COLOR_0 when a textured glTF primitive also has vertex colours."""
    attrs = getattr(visual, "vertex_attributes", None)
    raw = attrs["color"] if attrs is not None and "color" in attrs else None
    if raw is None or len(raw) != len(colors):
        return colors
    raw = np.asarray(raw)
    scale = 255.0 if raw.dtype == np.uint8 else (65535.0 if raw.dtype == np.uint16 else 1.0)
    return (colors * _vertex_colors(raw.astype(np.float64) / scale, from_gltf)).astype(np.float32)
