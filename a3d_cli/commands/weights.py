"""`a3d weights list | fetch | path`: see, download and locate the model files a3d uses.

The lead mounts this with ``app.add_typer(weights.app, name="weights")``. Errors are raised as `A3DError`s
and turned into ``error:``/``hint:`` lines and exit codes by `a3d_cli.cli`, like every other command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from a3d_cli.commands.common import global_options
from a3d_cli.console import err, out
from a3d_cli.errors import OptionError

app = typer.Typer(
    help="See, download and locate model weights (A3D_WEIGHTS_DIR, the Hugging Face cache, or a given path).",
    no_args_is_help=True,
)


def weights_table() -> list[dict[str, Any]]:
    """One plain-JSON row per registered model: where it resolves, or that it is missing and how to fix it.

    Why: `a3d --json weights list` and scripts need the same facts as the rich table, without parsing it.
    """
    from a3d_cli.weights import REGISTRY, locate

    rows: list[dict[str, Any]] = []
    for model in REGISTRY:
        res = locate(model.name)
        rows.append(
            {
                "name": model.name,
                "repo_id": model.repo_id,
                "files": model.contents,
                "stages": list(model.stages),
                "license": model.license,
                "gated": model.gated,
                "approx_size": model.approx_size,
                "status": "found" if res.found else "missing",
                "source": res.source,
                "path": str(res.path) if res.path is not None else None,
                "problem": None if res.error is None else res.error.message,
                "fix": None if res.error is None else res.error.hint,
                "place": model.weights_dir_layout,
            }
        )
    return rows


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Show every model a3d uses, the stage that needs it, and where it resolves (or the fix when missing)."""
    rows = weights_table()
    if global_options(ctx).json:
        typer.echo(json.dumps(rows, indent=2))
        return

    from rich.table import Table

    table = Table(title="a3d model weights", show_lines=True)
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("stage")
    table.add_column("repo")
    table.add_column("resolves to / fix", overflow="fold")
    for row in rows:
        if row["status"] == "found":
            where = f"[green]{row['source']}[/green] {row['path']}"
        elif row["problem"] and row["problem"].startswith(f"Model {row['name']} is missing"):
            where = f"[red]MISSING[/red]\nrun: a3d weights fetch {row['name']}\nor place at: {row['place']}"
        else:  # found but unusable (e.g. wrong size): show the error itself
            where = f"[red]PROBLEM[/red] {row['problem']}\n{row['fix']}"
        repo = row["repo_id"] + (" [yellow](gated)[/yellow]" if row["gated"] else "")
        table.add_row(row["name"], ", ".join(row["stages"]) or "none (optional)", repo, where)
    out.print(table)
    missing = sum(row["status"] == "missing" for row in rows)
    out.print(f"{len(rows) - missing} of {len(rows)} models found.")
    if any(row["gated"] and row["status"] == "missing" for row in rows):
        out.print("Gated repos: accept the license on the model page, then `hf auth login` (or set HF_TOKEN).")


@app.command()
def fetch(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Model to download (see `a3d weights list`).", metavar="NAME", show_default=False)
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Download every model a command needs (optional ones only by NAME).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even when already present.")] = False,
) -> None:
    """Download a model from the Hugging Face Hub into A3D_WEIGHTS_DIR (if set) or the Hugging Face cache."""
    from a3d_cli.weights import fetch as fetch_model
    from a3d_cli.weights import names

    if all_ == (name is not None):
        raise OptionError("Give exactly one of NAME or --all.", hint=f"Models: {', '.join(names())}.")
    opts = global_options(ctx)
    from a3d_cli.weights import get

    targets = [n for n in names() if get(n).stages] if all_ else [name]
    fetched: dict[str, str] = {}
    for target in targets:
        if not opts.quiet:
            err.print(f"fetching {target} …", highlight=False)
        fetched[target] = str(fetch_model(target, force=force))
        if not (opts.json or opts.quiet):
            out.print(f"{target}: {fetched[target]}", highlight=False)
    if opts.json:
        typer.echo(json.dumps(fetched, indent=2))


@app.command()
def path(
    name: Annotated[str, typer.Argument(help="Model to locate (see `a3d weights list`).", metavar="NAME")],
    weights: Annotated[
        Path | None, typer.Option("--weights", "--checkpoint", help="Check this path instead of searching.")
    ] = None,
) -> None:
    """Print the local path of a model (a file, or a folder for diffusers models), for scripts."""
    from a3d_cli.weights import resolve

    typer.echo(str(resolve(name, weights, option="--weights")))
