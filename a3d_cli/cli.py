"""The `a3d` command line: options in, one stage call, a summary out. No math here.

Errors are mapped to exit codes in exactly one place (`A3DGroup.invoke`): an `A3DError` prints `error:` and
`hint:` lines on stderr and exits with its code (2 for anything the user can fix); an unexpected exception
prints one line (the traceback only with `--verbose`) and exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from a3d_cli import __version__
from a3d_cli.commands import animate, batch, export, info, mesh_animate, mvvideo, orbit, prepare, reconstruct, sds, weights
from a3d_cli.commands.common import GlobalOptions
from a3d_cli.console import err
from a3d_cli.errors import A3DError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130


class A3DGroup(TyperGroup):
    """Typer group that turns a3d's exceptions into one clear message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except A3DError as exc:
            err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
            if exc.hint:
                err.print(f"[bold]hint:[/bold] {exc.hint}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted:[/bold red] finished stages are kept; re-run the same command to continue.")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            opts = ctx.obj if isinstance(ctx.obj, GlobalOptions) else GlobalOptions()
            if opts.verbose:
                raise
            err.print(f"[bold red]error:[/bold red] a3d failed unexpectedly: {type(exc).__name__}: {exc}", highlight=False)
            err.print("[bold]hint:[/bold] re-run with --verbose for the full traceback, and report it.", highlight=False)
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None


app = typer.Typer(
    name="a3d",
    cls=A3DGroup,
    help="Animate any static 3D model from a text prompt; turn one image into an orbit video.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"a3d {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    device: Annotated[str, typer.Option(help="Compute device: auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of every random draw (same seed + device = same output).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary, errors only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Full tracebacks on unexpected errors.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """a3d: 4D content from the command line. Every stage reads and writes one run folder."""
    ctx.obj = GlobalOptions(device=device, seed=seed, quiet=quiet, verbose=verbose, json=json_out)


app.command("animate", rich_help_panel="Generate")(animate.animate)
app.command("batch", rich_help_panel="Generate", context_settings=batch.CONTEXT_SETTINGS)(batch.batch)
app.command("orbit", rich_help_panel="Generate")(orbit.orbit)
app.command("mvvideo", rich_help_panel="Generate")(mvvideo.mvvideo)
app.command("prepare", rich_help_panel="4D")(prepare.prepare)
app.command("reconstruct", rich_help_panel="4D")(reconstruct.reconstruct)
app.command("sds", rich_help_panel="4D")(sds.sds)
app.command("mesh-animate", rich_help_panel="Export")(mesh_animate.mesh_animate)
app.command("export", rich_help_panel="Export")(export.export)
app.command("info", rich_help_panel="Utilities")(info.info)
app.add_typer(weights.app, name="weights", rich_help_panel="Utilities")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
