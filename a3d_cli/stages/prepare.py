"""`prepare`: a user's mesh or 3DGS file → normalized static splats + the 4 conditioning views.

Writes into RUN (formats in docs/prepare.md and docs/ARTIFACTS.md):

    source/original/<file>        the input as given (+ .mtl and textures of an OBJ, buffers/images of a .gltf)
    source/normalization.json     original → normalized transform (4×4, inverse, rotation, centre, scale)
    source/mesh.glb               mesh inputs: the processed mesh whose vertex order the binding uses
    static/gaussians.ply          static splats, standard 3DGS PLY (binary little-endian)
    static/binding.safetensors    mesh inputs: vertex ↔ splat binding (`a3d_cli.mesh.binding`)
    static/views/view_{i}.png     i = 0..3: RGBA renders at elevation 15°, azimuth 0/90/180/270, radius 3, fov 40°
    static/views/view_{i}_grey.png  the same on a 0.5 grey background (what MV-VDM is conditioned on), RGB
    static/views/contact_sheet.png  the 4 grey views in one captioned row, to check the orientation at a glance
    static/views/cameras.json     the 4 cameras (`CameraSet.to_json`)

Examples:
    >>> run(Path("RUN"), PrepareOptions(model="examples/assets/fox.glb"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from a3d_cli.errors import OptionError
from a3d_cli.models.mvvdm.shape import RESOLUTION
from a3d_cli.run_layout import (
    BINDING,
    NORMALIZATION_JSON,
    PROCESSED_MESH,
    SOURCE_ORIGINAL_DIR,
    STATIC_PLY,
    VIEWS_CAMERAS,
    VIEWS_CONTACT_SHEET,
    view_png,
)
from a3d_cli.stages.base import Runtime, StageContext, StageResult, run_stage

Axis = Literal["+x", "-x", "+y", "-y", "+z", "-z"]
RECIPE = 5
"""The version of what `prepare` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `prepare` once (docs/ARCHITECTURE.md, "Recipes")."""
AXES = ("+x", "-x", "+y", "-y", "+z", "-z")
FRONTS = (*AXES, "auto")
Shade = Literal["auto", "on", "off"]
SHADE_MODES = ("auto", "on", "off")
MAX_SPLATS = 20_000_000
"""Most splats `--splat-count` asks for: 1000× the default and several times what 3DGS scans hold; a larger
count would only fail for memory (docs/prepare.md gives the memory per splat)."""


@dataclass(frozen=True)
class PrepareOptions:
    """Options of `a3d prepare`.

    Attributes:
        model: the input file (.glb, .gltf, .obj, mesh .ply, .stl, .off, 3DGS .ply (also compressed), .splat or .spz).
        up: the asset's up axis; glTF assets are +y (the default), many OBJ/PLY exports +z.
        front: the asset's front axis, which faces the azimuth-0 camera, or "auto": guessed from the
            asset's mirror symmetry and detail (`a3d_cli.mesh.orientation`), used only when the guess is
            confident, else the conventional front (+z, or -y for a +z-up asset).
        shade: bake a fixed lighting into the splat colours (`a3d_cli.mesh.shading`): "auto" for meshes
            without texture and with at most `mesh.shading.MAX_MATERIAL_COLOURS` colours, "on" for every mesh, "off".
        max_vertices: meshes with more distinct vertex positions are simplified to this many.
        splats: total splats aimed for on meshes (surface samples fill in where vertices are sparse).
        view_size: width and height of the conditioning renders, pixels (MV-VDM uses 256).
        allow_external_refs: read files the asset names outside its own folder (absolute paths, `../`);
            off by default so an untrusted asset cannot pull a private file into the run folder.
    """

    model: str
    up: Axis = "+y"
    front: Axis | Literal["auto"] = "auto"
    max_vertices: int = 20_000
    splats: int = 20_000
    view_size: int = RESOLUTION
    shade: Shade = "auto"
    allow_external_refs: bool = False

    def __post_init__(self) -> None:
        if self.up not in AXES or self.front not in FRONTS:
            raise OptionError(
                f"--up must be one of {', '.join(AXES)} and --front one of {', '.join(FRONTS)} "
                f"(got {self.up}, {self.front})."
            )
        if self.shade not in SHADE_MODES:
            raise OptionError(f"--shade must be one of {', '.join(SHADE_MODES)} (got {self.shade}).")
        if self.front != "auto" and self.up[1] == self.front[1]:
            raise OptionError(
                f"--up {self.up} and --front {self.front} lie on the same axis.",
                hint="Choose two different axes, e.g. --up +z --front -y.",
            )
        if self.max_vertices < 100:
            raise OptionError(f"--max-vertices must be at least 100 (got {self.max_vertices}).")
        if not 1 <= self.splats <= MAX_SPLATS:
            raise OptionError(
                f"--splat-count must be between 1 and {MAX_SPLATS:,} (got {self.splats:,}).",
                hint=f"a3d prepares at most {MAX_SPLATS:,} splats (about 1 GB of memory per million, plus 1 GB); "
                "the default 20,000 fills MV-VDM's 256-pixel views.",
            )
        if not 32 <= self.view_size <= 2048:
            raise OptionError(f"--view-size must be between 32 and 2048 pixels (got {self.view_size}).")


def run(run_dir: Path, opts: PrepareOptions, rt: Runtime | None = None) -> StageResult:
    """Normalize the input, turn meshes into splats, render the 4 conditioning views.

    Args:
        run_dir: the run folder (created when missing).
        opts: PrepareOptions.
        rt: device (for the renders), seed (surface samples), force, progress.

    Returns:
        StageResult listing every file written; metrics: kind, splats, vertex splats, samples, vertices,
        faces, simplified_from, normalization scale.

    Raises:
        InputError: missing, unreadable, corrupt, empty or unsupported input (before RUN is touched when
            the problem is visible without parsing the whole file).
        RunFolderError: RUN is a file or not writable.
    """
    from a3d_cli.mesh.load import detect_kind
    from a3d_cli.mesh.references import sidecar_files

    # 0. cheap input checks first, so a bad path leaves no run folder behind
    model = Path(opts.model).expanduser()
    kind = detect_kind(model)
    sidecars = sidecar_files(model, opts.allow_external_refs)

    def body(ctx: StageContext) -> None:
        _prepare(ctx, model, kind, sidecars, opts)

    return run_stage(
        "prepare",
        Path(run_dir),
        opts,
        body,
        rt,
        external_inputs=[model, *sidecars],
        clear=("source", "static"),
        recipe=RECIPE,
    )


def _prepare(ctx: StageContext, model: Path, kind: str, sidecars: list[Path], opts: PrepareOptions) -> None:
    from a3d_cli.gaussians.formats import read_gaussians
    from a3d_cli.gaussians.ply import write_ply
    from a3d_cli.io.regular import copy_regular
    from a3d_cli.mesh.normalize import fit_normalization, normalize_gaussians

    progress = ctx.progress
    progress.start(f"prepare: reading {model.name}")
    # 1. read and normalize
    mesh = binding = None
    if kind == "gaussians":
        g = read_gaussians(model)  # 3DGS PLY, compressed PLY, .splat or .spz
        points = g.means.double().numpy()
        front = _choose_front(ctx, opts, points, None, g.colors.numpy())
        norm = fit_normalization(points, opts.up, front, robust=True)
        g = normalize_gaussians(g, norm)
        ctx.metrics.update(kind="gaussians", splats=len(g))
    else:
        from a3d_cli.mesh.load import UNORIENTED_SUFFIXES, hard_edges_left_out, load_mesh, shades_flat
        from a3d_cli.mesh.shading import plain_colour
        from a3d_cli.mesh.simplify import simplify_mesh, welded_vertex_count
        from a3d_cli.mesh.to_gaussians import mesh_to_gaussians

        # flat shading's split (glTF without NORMAL, OBJ smoothing groups) waits for the vertex count: simplification
        # would drop it
        mesh = load_mesh(model, allow_external_refs=opts.allow_external_refs, notice=progress.log, flat_without_normals=False)
        if opts.up == "+y" and kind == "mesh" and model.suffix.lower() in UNORIENTED_SUFFIXES:
            progress.log(
                f"{model.suffix.lower()} files have no fixed up axis; +y assumed. If the contact sheet "
                f"({VIEWS_CONTACT_SHEET}) shows the asset on its side, re-run with --up +z (or the axis that is up)."
            )
        front = _choose_front(ctx, opts, mesh.vertices, mesh.faces, None)
        norm = fit_normalization(mesh.vertices, opts.up, front)
        mesh = mesh.with_vertices(norm.apply(mesh.vertices))
        welded = welded_vertex_count(mesh)
        if welded > opts.max_vertices:
            progress.start(f"prepare: simplifying {welded} vertices")
            mesh = simplify_mesh(mesh, opts.max_vertices, hard_edges=hard_edges_left_out(model))  # read without them
            progress.log(
                f"mesh simplified from {welded} to {welded_vertex_count(mesh)} vertices (--max-vertices {opts.max_vertices})"
            )
            ctx.metrics["simplified_from"] = welded
        elif shades_flat(model):  # kept as it is: read again with its faces' normals, placed as normalized above
            flat = load_mesh(model, allow_external_refs=opts.allow_external_refs)
            mesh = flat.with_vertices(norm.apply(flat.vertices))
        progress.start("prepare: mesh → splats")
        shade = opts.shade == "on" or (opts.shade == "auto" and plain_colour(mesh))
        g, binding = mesh_to_gaussians(mesh, opts.splats, seed=ctx.seed, shade=shade)
        ctx.metrics["shaded"] = shade
        ctx.metrics.update(
            kind="mesh",
            splats=len(g),
            vertex_splats=binding.num_vertex_splats,
            samples=binding.num_samples,
            vertices=mesh.num_vertices,
            faces=mesh.num_faces,
        )
    ctx.metrics["normalization_scale"] = float(norm.scale)

    # 2. keep the source: the input as given, its transform, the processed mesh and the binding
    for path in [model, *sidecars]:
        copy_regular(path, ctx.output(f"{SOURCE_ORIGINAL_DIR}/{_source_name(model, path)}"))
    ctx.output(NORMALIZATION_JSON).write_text(norm.dumps())
    if mesh is not None and binding is not None:
        from a3d_cli.mesh.store import save_processed_mesh

        save_processed_mesh(ctx.output(PROCESSED_MESH), mesh)
        binding.save(ctx.output(BINDING))
    write_ply(ctx.output(STATIC_PLY), g)

    # 3. the 4 conditioning views
    from a3d_cli.io.images import composite, contact_sheet, save_png
    from a3d_cli.render.cameras import MVVDM_BACKGROUND, mvvdm_cameras
    from a3d_cli.render.splats import render_rgba

    progress.start("prepare: rendering the 4 views", total=1)
    cams = mvvdm_cameras()
    rgba = render_rgba(
        g, cams.viewmats, cams.Ks(opts.view_size, opts.view_size), opts.view_size, ctx.device
    )  # [4, H, W, 4]
    greys = [composite(rgba[i], MVVDM_BACKGROUND) for i in range(len(cams))]  # [H, W, 3] each
    for i in range(len(cams)):
        save_png(ctx.output(view_png(i)), rgba[i])
        save_png(ctx.output(view_png(i, grey=True)), greys[i])
    labels = [f"view {i}: azimuth {round(a)}" + (" (front)" if i == 0 else "") for i, a in enumerate(cams.azimuth_deg.tolist())]
    save_png(ctx.output(VIEWS_CONTACT_SHEET), contact_sheet(greys, labels))
    ctx.output(VIEWS_CAMERAS).write_text(
        json.dumps(cams.to_json(opts.view_size, opts.view_size), indent=2)
    )
    coverage = rgba[..., 3].mean(dim=(1, 2))  # [4] fraction of each view the object covers
    ctx.metrics["view_coverage"] = [round(float(c), 4) for c in coverage]
    if float(coverage.min()) < 1e-4:
        progress.log("warning: a conditioning view is empty; check --up/--front")
    progress.update(1)


def _choose_front(
    ctx: StageContext, opts: PrepareOptions, points: np.ndarray, faces: np.ndarray | None, colors: np.ndarray | None
) -> str:
    """The front axis to use (`a3d_cli.mesh.orientation.choose_front`); logs what was decided and why."""
    from a3d_cli.mesh.orientation import choose_front, fronts_for

    choice = choose_front(points, opts.up, opts.front, faces, colors)
    if choice.upside_down:
        ctx.progress.log(
            "hint: the splats look upside down (brighter underneath), as 3DGS files from the Inria/COLMAP "
            "pipeline are stored (Y down); if the contact sheet agrees, re-run with --up -y"
        )
    ctx.metrics["front"] = choice.front
    guess, conventional = choice.guess, choice.conventional
    if guess is None:
        return choice.front
    ctx.metrics["front_guess"] = {
        "front": choice.guessed, "confident": guess.confident,
        "symmetry_ratio": guess.symmetry_ratio, "detail_ratio": guess.detail_ratio,
    }  # fmt: skip
    if guess.confident and choice.front != conventional:
        ctx.progress.log(
            f"front: the asset seems to face {choice.front} (mirror symmetry and detail), so view 0 looks at that "
            f"side; pass --front {conventional} to keep the file's convention (check {VIEWS_CONTACT_SHEET})"
        )
    elif not guess.confident and choice.guessed != conventional:
        ctx.progress.log(
            f"front: could not tell which way the asset faces; {conventional} assumed. Check {VIEWS_CONTACT_SHEET} "
            f"and pass --front ({', '.join(fronts_for(opts.up))}) if view 0 is not the front"
        )
    return choice.front


def _source_name(model: Path, path: Path) -> str:
    """Where a source file goes under source/original/: its path relative to the model's folder when it
    stays inside it, else its bare name."""
    try:
        rel = path.resolve().relative_to(model.resolve().parent)
        return rel.as_posix()
    except ValueError:
        return path.name
