"""`a3d batch MANIFEST [-- ANIMATE OPTIONS]`: many assets through `a3d animate`, models loaded once per worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from a3d_cli.batch.options import BatchOptions

_JOBS = "Jobs"
_WORKERS = "Workers"
_CLUSTER = "Job arrays and Ray"

CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
"""Words after `--` are `a3d animate` options for every job."""


def batch(
    ctx: typer.Context,
    manifest: Annotated[
        Path | None,
        typer.Argument(help="JSON Lines: one job per line, {\"input\": ..., \"prompt\": ..., \"out\": ..., options}.",
                       show_default=False),
    ] = None,
    glob: Annotated[
        str | None,
        typer.Option(help="Instead of a manifest: every file matching this pattern (quoted) is a job.",
                     rich_help_panel=_JOBS, show_default=False),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", "-p", help="With --glob: the prompt of every asset the prompt file does not name.",
                     rich_help_panel=_JOBS, show_default=False),
    ] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option(help="With --glob: lines `asset name<TAB>prompt`.", rich_help_panel=_JOBS, show_default=False),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Runs folder: RUNS/<input name>/ per job; results.jsonl and logs/ here.",
                     metavar="RUNS"),
    ] = BatchOptions.runs,
    results: Annotated[
        Path | None,
        typer.Option(help="Results file (default RUNS/results.jsonl; per shard RUNS/results.shard-I-of-N.jsonl).",
                     show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (per GPU with --gpus; Ray actors with --ray). Default 1.",
                     rich_help_panel=_WORKERS, show_default=False),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(help="all or 0,1,…: one worker process per GPU.", rich_help_panel=_WORKERS, show_default=False),
    ] = None,
    compile_blocks: Annotated[
        bool,
        typer.Option("--compile/--no-compile", help="Compile the diffusion models' blocks on CUDA (once per worker).",
                     rich_help_panel=_WORKERS),
    ] = BatchOptions.compile,
    keep_models: Annotated[
        bool,
        typer.Option("--keep-models/--no-keep-models",
                     help="Keep each diffusion model a worker builds for its later jobs (--no-keep-models: free it "
                          "after its stage, as one `a3d animate` does, where the kept models do not fit the GPU together).",
                     rich_help_panel=_WORKERS),
    ] = BatchOptions.keep_models,
    retries: Annotated[
        int, typer.Option(help="Tries again for failures that may pass (a3d's own, a dead worker, a locked run folder).",
                          rich_help_panel=_WORKERS)
    ] = BatchOptions.retries,
    shard: Annotated[
        str | None,
        typer.Option(help="I/N: run only shard I of N (default under Slurm: the array task's).",
                     rich_help_panel=_CLUSTER, show_default=False),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(help="auto or a Ray address: run the workers as Ray actors (pip install 'a3d\\[ray]').",
                     rich_help_panel=_CLUSTER, show_default=False),
    ] = None,
    status_every: Annotated[
        float, typer.Option(help="Seconds between status lines when stderr is not a terminal.")
    ] = BatchOptions.status_every,
    force: Annotated[bool, typer.Option("--force", help="Re-run every stage of every job.")] = BatchOptions.force,
) -> None:
    """Animate many assets: every job is `a3d animate` in its own run folder; re-running does what is missing.

    Options after `--` are `a3d animate` options for every job, e.g. `a3d batch jobs.jsonl -- --no-sds`.

    Exit codes: 0 all done; 1 a failure of a3d itself; 2 nothing ran (a bad manifest line or option); 3 some
    jobs failed for reasons you can fix (see results.jsonl); 130 interrupted, 143 terminated.
    """
    from a3d_cli.batch.display import BatchDisplay
    from a3d_cli.batch.run import run_batch
    from a3d_cli.commands.common import global_options
    from a3d_cli.console import echo_json, err

    g = global_options(ctx)
    opts = BatchOptions(
        manifest=manifest, glob=glob, prompt=prompt, prompt_file=prompt_file, runs=out, results=results,
        workers=workers, gpus=gpus, compile=compile_blocks, keep_models=keep_models, retries=retries, shard=shard, ray=ray, force=force,
        common_args=tuple(ctx.args), status_every=status_every,
    )

    def display(total: int, labels: list[str]) -> BatchDisplay:
        return BatchDisplay(total, labels, err, quiet=g.quiet or g.json, every_s=status_every)

    summary = run_batch(opts, g.device, g.seed, display)
    counts = summary.counts()
    if g.json:
        echo_json(summary.to_json())
    elif not g.quiet:
        where = "" if summary.shard is None else f" (shard {summary.shard[0]}/{summary.shard[1]})"
        err.print(
            f"a3d batch{where}: {counts['jobs']} jobs — {counts['done']} done, {counts['skipped']} already done, "
            f"{counts['failed']} failed; results: {summary.results}",
            highlight=False,
        )
    raise typer.Exit(summary.exit_code)
