"""The `a3d` command line: options in, one stage call, a summary out. No math here.

Errors are mapped to exit codes in exactly one place (`A3DGroup.invoke`): an `A3DError` prints `error:` and
`hint:` lines on stderr and exits with its code (2 for anything the user can fix); a usage error (missing or
unknown option, bad value, unknown command) is printed the same way, `error:` and a `hint:` naming the
command's `--help`, and exits 2 (`A3DGroup.main`); a full disk or a read-only file
system is a user error too (exit 2); an unexpected exception prints one line (the traceback only with
`--verbose`) and exits 1; Ctrl-C exits 130 and SIGTERM 143 (both record `failed: interrupted`). Under
`--json` every such failure also prints `{"ok": false, "error": ..., "hint": ..., "exit_code": ...}` on stdout.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from a3d_cli import __version__
from a3d_cli.commands import (
    animate,
    batch,
    export,
    info,
    lift,
    mesh_animate,
    mvvideo,
    orbit,
    prepare,
    reconstruct,
    sds,
    weights,
)
from a3d_cli.commands.common import GlobalOptions
from a3d_cli.console import echo_json, err, styled
from a3d_cli.errors import A3DError, OptionError, Terminated, from_os_error

EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what shells report for a job ended by SIGTERM


def _framework_exceptions() -> tuple[type[BaseException], ...]:
    """The exception types Typer (and click) use for usage errors, `--help` and explicit exits.

    Why: Typer >= 0.29 bundles its own copy of click (`typer._click`, whose exceptions derive from
    `typer.exceptions.TyperException`), older Typer raises `click`'s. These pass through `A3DGroup.invoke`
    untouched so Typer prints them and exits with their own code (2 for usage errors) in either case.
    """
    types: list[type[BaseException]] = [typer.Exit, typer.Abort]
    with contextlib.suppress(ImportError):
        from typer.exceptions import TyperException

        types.append(TyperException)
    with contextlib.suppress(ImportError):
        from typer._click import exceptions as bundled  # Typer >= 0.29

        types.extend(getattr(bundled, n) for n in ("ClickException", "Exit", "Abort") if hasattr(bundled, n))
    with contextlib.suppress(ImportError):
        import click.exceptions as separate  # older Typer, or click installed beside Typer

        types.extend((separate.ClickException, separate.Exit, separate.Abort))
    return tuple(dict.fromkeys(types))


_PASS_THROUGH = _framework_exceptions()


def _usage_exceptions() -> tuple[type[BaseException], ...]:
    """The usage-error types of the click in use (bundled with Typer >= 0.29, or separate)."""
    types: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        from typer._click.exceptions import UsageError as bundled

        types.append(bundled)
    with contextlib.suppress(ImportError):
        from click.exceptions import UsageError as separate

        types.append(separate)
    return tuple(dict.fromkeys(types))


_USAGE_ERRORS = _usage_exceptions()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (what `kill` and job schedulers send) into `Terminated` for the duration of a command.

    `Terminated` is a `KeyboardInterrupt`, so stages record `failed: interrupted` and clean their staging
    exactly as on Ctrl-C. A library that swallows every exception (some lazy imports catch
    `BaseException`) can eat it; the signal is remembered, so a command that then runs to its end still
    exits as terminated (its finished stages kept). Outside the main thread (where signal handlers cannot
    be set) nothing changes.
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    except BaseException as exc:  # another failure that followed a swallowed SIGTERM: still terminated
        if received and not isinstance(exc, KeyboardInterrupt):
            raise Terminated() from exc
        raise
    else:
        if received:
            raise Terminated()
    finally:
        signal.signal(signal.SIGTERM, previous)


class A3DGroup(TyperGroup):
    """Typer group that turns a3d's exceptions into one clear message and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; a usage error prints `error:` and `hint:` lines like every other failure.

        Why: Typer would print its own boxed panel, which scripts and the `error:`-line contract cannot read.
        Run without standalone mode, usage errors reach this method; everything else keeps click's meaning
        (the return value or an `Exit`'s code becomes the exit status).
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except _USAGE_ERRORS as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "a3d"
            wants_json = (ctx is not None and _json_wanted(ctx.find_root())) or "--json" in self._global_args(argv)
            _print_failure(exc.format_message(), f"Run `{command} --help` for its usage.", exc.exit_code, wants_json)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)

    def _global_args(self, argv: list[str]) -> list[str]:
        """The arguments before the command name (a3d's global options)."""
        for i, arg in enumerate(argv):
            if arg in self.commands:
                return argv[:i]
        return argv

    def get_params(self, ctx: typer.Context) -> list[Any]:
        from a3d_cli.commands.help_style import tidy_help

        tidy_help(self)  # clean help for this group and every command under it (once)
        return super().get_params(ctx)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            with _sigterm_as_interrupt():
                return super().invoke(ctx)
        except A3DError as exc:
            raise _fail(ctx, exc.message, exc.hint or _default_hint(ctx, exc), exc.exit_code) from None
        except KeyboardInterrupt as exc:
            signal_name = "terminated" if isinstance(exc, Terminated) else "interrupted"
            code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
            message = "finished stages are kept; re-run the same command to continue."
            raise _fail(ctx, message, None, code, label=signal_name) from None
        except _PASS_THROUGH:
            raise  # help, explicit exits and usage errors: `main` reports the usage errors
        except OSError as exc:
            mapped = from_os_error(exc)
            if mapped is None:
                return _unexpected(ctx, exc)
            raise _fail(ctx, mapped.message, mapped.hint, mapped.exit_code) from None
        except Exception as exc:
            return _unexpected(ctx, exc)


def _default_hint(ctx: typer.Context, exc: A3DError) -> str | None:
    """The hint of an option error that brought none: where the accepted values are listed."""
    if not isinstance(exc, OptionError):
        return None
    command = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
    return f"Run `{command} --help` for the accepted values."


def _json_wanted(ctx: typer.Context) -> bool:
    """--json was given: from the global options, or (when the command was not even resolved, so the group's
    callback never ran) from the group's parsed parameters."""
    if isinstance(ctx.obj, GlobalOptions):
        return ctx.obj.json
    return bool(ctx.params.get("json_out"))


def _fail(ctx: typer.Context, message: str, hint: str | None, code: int, label: str = "error") -> typer.Exit:
    """Print a failure: `label:` and `hint:` lines on stderr, and under --json a JSON object on stdout.

    Returns:
        the Exit to raise.
    """
    _print_failure(message, hint, code, _json_wanted(ctx), label)
    return typer.Exit(code)


def _print_failure(message: str, hint: str | None, code: int, wants_json: bool, label: str = "error") -> None:
    """`label:` and `hint:` lines on stderr, and with --json the failure object on stdout."""
    err.print(styled((f"{label}:", "bold red"), " ", message), highlight=False)
    if hint:
        err.print(styled(("hint:", "bold"), " ", hint), highlight=False)
    if wants_json:
        echo_json({"ok": False, "error": message, "hint": hint, "exit_code": code}, indent=None)


def _unexpected(ctx: typer.Context, exc: Exception) -> Any:
    """An exception a3d did not expect: one line and exit 1 (the traceback with --verbose)."""
    opts = ctx.obj if isinstance(ctx.obj, GlobalOptions) else GlobalOptions()
    if opts.verbose:
        raise exc
    raise _fail(
        ctx,
        f"a3d failed unexpectedly: {type(exc).__name__}: {exc}",
        "re-run with --verbose for the full traceback, and report it.",
        EXIT_INTERNAL_ERROR,
    ) from None


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
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of every random draw (same seed + device = same output).")
    ] = 0,
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
app.command("lift", rich_help_panel="Generate")(lift.lift)
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
