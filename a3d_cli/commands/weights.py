"""`a3d weights list | fetch | path`: see, download and locate the model files a3d uses.

The lead mounts this with ``app.add_typer(weights.app, name="weights")``. Errors are raised as `A3DError`s
and turned into ``error:``/``hint:`` lines and exit codes by `a3d_cli.cli`, like every other command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from a3d_cli.commands.common import global_options
from a3d_cli.console import echo_json, err, out, styled
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
        echo_json(rows)
        return

    from rich.table import Table

    table = Table(title="a3d model weights", show_lines=True)
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("stage")
    table.add_column("repo")
    table.add_column("resolves to / fix", overflow="fold")
    for row in rows:
        if row["status"] == "found":
            where = styled((row["source"], "green"), f" {row['path']}")
        elif row["problem"] and row["problem"].startswith(f"Model {row['name']} is missing"):
            where = styled(("MISSING", "red"), f"\nrun: a3d weights fetch {row['name']}\nor place at: {row['place']}")
        else:  # found but unusable (e.g. wrong size): show the error itself
            where = styled(("PROBLEM", "red"), f" {row['problem']}\n{row['fix']}")
        repo = styled(row["repo_id"], *([(" (gated)", "yellow")] if row["gated"] else []))
        table.add_row(row["name"], ", ".join(row["stages"]) or "none (optional)", repo, where)
    out.print(table)
    missing = sum(row["status"] == "missing" for row in rows)
    out.print(f"{len(rows) - missing} of {len(rows)} models found.")
    if any(row["gated"] and row["status"] == "missing" for row in rows):
        out.print("Gated repos: accept the license on the model page, then `hf auth login` (or set HF_TOKEN).")


FETCH_GROUPS: dict[str, tuple[str, ...]] = {"animate": ("mvvideo", "sds")}
"""`--for` names beyond the stages themselves: `animate` from a model needs what mvvideo and sds load."""


def fetch_targets(names_: list[str], all_: bool, commands: list[str]) -> list[str]:
    """The registry names one `a3d weights fetch` call downloads, in registry order, each once.

    Args:
        names_: models named on the command line.
        all_: every model some command needs (optional ones only by name).
        commands: `--for` values: an a3d command whose models to fetch (orbit, mvvideo, sds, animate).

    Raises:
        OptionError: none or more than one way of choosing was given, or an unknown `--for` command.
    """
    from a3d_cli.weights import REGISTRY, get, names

    if sum((bool(names_), all_, bool(commands))) != 1:
        raise OptionError(
            "Give model NAMEs, --all or --for COMMAND (exactly one of the three).",
            hint=f"Models: {', '.join(names())}.",
        )
    if names_:
        for name in names_:
            get(name)  # an unknown name is refused before anything downloads
        return list(dict.fromkeys(names_))
    if all_:
        return [m.name for m in REGISTRY if m.stages]
    known = sorted({stage for m in REGISTRY for stage in m.stages} | set(FETCH_GROUPS))
    stages: set[str] = set()
    for command in commands:
        if command not in known:
            raise OptionError(
                f"--for takes an a3d command that loads models, got {command!r}.", hint=f"One of: {', '.join(known)}."
            )
        stages.update(FETCH_GROUPS.get(command, (command,)))
    return [m.name for m in REGISTRY if stages.intersection(m.stages)]


@app.command()
def fetch(
    ctx: typer.Context,
    names_: Annotated[
        list[str] | None,
        typer.Argument(help="Models to download (see `a3d weights list`).", metavar="NAME", show_default=False),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Download every model a command needs (optional ones only by NAME).")
    ] = False,
    commands: Annotated[
        list[str] | None,
        typer.Option(
            "--for",
            help="Download the models this command needs: orbit, mvvideo, sds or animate (= mvvideo + sds); repeatable.",
            metavar="COMMAND",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even when already present.")] = False,
) -> None:
    """Download models from the Hugging Face Hub into A3D_WEIGHTS_DIR (if set) or the Hugging Face cache.

    Every target is tried: one that fails (a gated repo whose license is not accepted, say) does not stop
    the others, and the command then exits 2 naming each failure.
    """
    from a3d_cli.errors import A3DError, WeightsMissing
    from a3d_cli.weights import fetch as fetch_model

    targets = fetch_targets(names_ or [], all_, commands or [])
    opts = global_options(ctx)
    fetched: dict[str, str] = {}
    failed: dict[str, A3DError] = {}
    for target in targets:
        if not opts.quiet:
            err.print(f"fetching {target} …", highlight=False)
        try:
            fetched[target] = str(fetch_model(target, force=force))
        except A3DError as exc:
            if len(targets) == 1:
                raise
            failed[target] = exc
            if not opts.quiet:
                err.print(f"{target}: not fetched: {exc.message}", highlight=False)
            continue
        if not (opts.json or opts.quiet):
            out.print(f"{target}: {fetched[target]}", highlight=False)
    if opts.json and not failed:
        echo_json(fetched)
    if failed:
        first = next(iter(failed.values()))
        done = f"; fetched {', '.join(fetched)}" if fetched else ""
        raise WeightsMissing(
            f"{len(failed)} of {len(targets)} models could not be fetched: {', '.join(failed)}{done}.",
            hint=" ".join(dict.fromkeys(e.hint for e in failed.values() if e.hint)) or first.message,
        )


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
