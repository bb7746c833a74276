"""`a3d prepare MODEL -o RUN`: normalize a mesh or 3DGS file, make static splats and the 4 conditioning views."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.commands.common import AllowExternalRefsOption, ForceOption, resolve_path, run_and_report
from a3d_cli.errors import OptionError
from a3d_cli.io.paths import run_folder_path
from a3d_cli.stages.prepare import PrepareOptions

_MESH = "Mesh conversion"
_AXES = "+x, -x, +y, -y, +z or -z"


def prepare(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="Input: .glb, .gltf, .obj (+.mtl, textures), mesh .ply, .stl, .off, 3DGS .ply (also compressed), .splat or .spz.",
            metavar="MODEL",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The run folder to create or update.", metavar="RUN", show_default=False,
            parser=run_folder_path,
        ),
    ],
    up: Annotated[
        str, typer.Option(help=f"The asset's up axis ({_AXES}); glTF is +y, many OBJ/PLY exports +z.")
    ] = PrepareOptions.up,
    front: Annotated[
        str,
        typer.Option(
            help=f"The asset's front axis ({_AXES}), which faces the azimuth-0 view, or auto: guessed from "
            "the asset's mirror symmetry when clear, else +z (check static/views/contact_sheet.png)."
        ),
    ] = PrepareOptions.front,
    max_vertices: Annotated[
        int,
        typer.Option(help="Simplify meshes with more distinct vertices than this (pymeshlab).", rich_help_panel=_MESH),
    ] = PrepareOptions.max_vertices,
    splat_count: Annotated[
        int,
        typer.Option(help="Splats aimed for on meshes (surface samples fill sparse areas).", rich_help_panel=_MESH),
    ] = PrepareOptions.splats,
    shade: Annotated[
        str,
        typer.Option(
            help="Bake a fixed studio lighting into splat colours: auto (meshes without texture), on, off.",
            rich_help_panel=_MESH,
        ),
    ] = PrepareOptions.shade,
    splats_deprecated: Annotated[
        int | None, typer.Option("--splats", hidden=True, help="Deprecated spelling of --splat-count.")
    ] = None,
    view_size: Annotated[
        int, typer.Option(help="Size of the 4 conditioning renders, pixels.", rich_help_panel="Views")
    ] = PrepareOptions.view_size,
    allow_external_refs: AllowExternalRefsOption = PrepareOptions.allow_external_refs,
    force: ForceOption = False,
) -> None:
    """Make [bold]RUN/static/gaussians.ply[/bold] and the 4 conditioning views from a mesh or 3DGS file."""
    from a3d_cli.stages import prepare as stage

    given = ctx.get_parameter_source("splat_count")  # a ParameterSource of whichever click Typer runs on
    if splats_deprecated is not None and given is not None and given.name == "COMMANDLINE":
        raise OptionError(
            f"--splats (the old spelling) and --splat-count were both given ({splats_deprecated} and {splat_count}).",
            hint="Give --splat-count only.",
        )
    opts = stage.PrepareOptions(
        model=str(resolve_path(model).absolute()),
        up=up,  # type: ignore[arg-type]  # validated by PrepareOptions
        front=front,  # type: ignore[arg-type]
        max_vertices=max_vertices,
        splats=splat_count if splats_deprecated is None else splats_deprecated,
        shade=shade,  # type: ignore[arg-type]
        view_size=view_size,
        allow_external_refs=allow_external_refs,
    )
    run_dir = resolve_path(out)
    run_and_report(ctx, lambda rt: stage.run(run_dir, opts, rt), force=force)
