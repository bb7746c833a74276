"""The jobs of a batch: a JSON Lines manifest (or a glob and prompts) → validated `Job`s, before any work.

A manifest line is one job:

    {"input": "assets/fox.glb", "prompt": "a fox wags its tail", "out": "fox", "splat-count": 2000, "no-sds": true}

* `input` (required) and `prompt` (optional when a `video` is given) are `a3d animate`'s argument and --prompt;
* `out` is the job's run folder, relative to the batch's runs folder (default: the input's name there);
* every other key is an `a3d animate` option without its dashes (`splat_count` works as well); a switch takes
  true or false (`"sds": false` is `--no-sds`, `"no-sds": true` too); `null` keeps the default.

Relative paths in a manifest (`input`, `video`, the weight paths) are relative to the manifest's folder, so a
manifest keeps working from any current folder (a cluster job's, a container's).

Each job's values go through `a3d animate`'s own command-line parser and option checks
(`commands.animate.animate_options`, `stages.animate.preflight`), so a line is accepted exactly when the same
`a3d animate` command would be. Every line is checked before the batch starts; each bad line is reported with
its number (`ManifestError`).

Examples:
    >>> jobs = load_manifest(Path("jobs.jsonl"), Path("runs"))  # doctest: +SKIP
    >>> jobs[0].run_dir  # doctest: +SKIP
    '/abs/runs/fox'
"""

from __future__ import annotations

import difflib
import glob as globlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a3d_cli.errors import A3DError, InputError, OptionError
from a3d_cli.io.json_data import parse_json

INPUT_KEY, PROMPT_KEY, OUT_KEY = "input", "prompt", "out"
BATCH_KEYS = (INPUT_KEY, PROMPT_KEY, OUT_KEY)
REFUSED_OPTIONS = ("--out", "--prompt", "--help")
"""Options a manifest may not set as overrides: the run folder and prompt have their own keys."""
MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Job:
    """One asset of a batch, validated.

    Attributes:
        index: position in the manifest (0-based); sharding and result order follow it.
        source: where the job was written ("jobs.jsonl:3", or the asset path for --glob).
        name: short name for displays and the log file (the run folder's name).
        run_dir: absolute run folder.
        options: the job's `AnimateOptions`.
        force: re-run every stage (`--force`).
        log: absolute path of the job's log file.
    """

    index: int
    source: str
    name: str
    run_dir: str
    options: Any  # a3d_cli.stages.animate.AnimateOptions (frozen, picklable)
    force: bool
    log: str


@dataclass(frozen=True)
class LineError:
    """One bad line: where (`source`, e.g. "jobs.jsonl:3"), what, and what to do."""

    source: str
    message: str
    hint: str | None = None


class ManifestError(A3DError):
    """One or more jobs of a batch are invalid; `errors` has one entry per bad line."""

    def __init__(self, errors: Sequence[LineError]) -> None:
        shown = [f"{e.source}: {e.message}" + (f" ({e.hint})" if e.hint else "") for e in errors[:MAX_ERRORS_SHOWN]]
        more = len(errors) - len(shown)
        text = "\n".join(shown) + (f"\n… and {more} more bad line(s)" if more > 0 else "")
        noun = "job is" if len(errors) == 1 else "jobs are"
        super().__init__(
            f"{len(errors)} {noun} invalid; nothing was run:\n{text}",
            hint="Fix those lines and run the same command again.",
        )
        self.errors = list(errors)


# -- the `a3d animate` command, as a parser -------------------------------------------------------------------------


def animate_command() -> Any:
    """The click command of `a3d animate` (its parser is what checks a job's option names and values)."""
    import typer

    from a3d_cli.commands.animate import animate

    app = typer.Typer()
    app.command("animate")(animate)
    return typer.main.get_command(app)


def _option_table(command: Any) -> dict[str, tuple[Any, bool]]:
    """`--flag` → (click parameter, True when the flag is the parameter's "off" form, e.g. --no-sds)."""
    table: dict[str, tuple[Any, bool]] = {}
    for param in command.params:
        if param.param_type_name != "option" or param.name in ("install_completion", "show_completion"):
            continue
        for flag in param.opts:
            if flag.startswith("--") and flag not in REFUSED_OPTIONS:
                table[flag] = (param, False)
        for flag in param.secondary_opts:
            if flag.startswith("--"):
                table[flag] = (param, True)
    return table


def _is_path_param(param: Any) -> bool:
    """Whether a parameter takes a path (typer records the annotation; plain click has a Path type)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type):
        return issubclass(annotation, Path)
    return "path" in type(getattr(param, "type", None)).__name__.lower()


def _parse(command: Any, argv: list[str]) -> Any:
    """The click context of `a3d animate ARGV` (parsing and value checks only, nothing runs)."""
    import typer

    try:
        return command.make_context("animate", argv)
    except typer.TyperException as exc:  # typer's click: BadParameter, NoSuchOption, UsageError
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise OptionError(message.rstrip(".")) from None


def _override_args(key: str, value: Any, table: dict[str, tuple[Any, bool]], base: Path) -> list[str]:
    """The command-line words of one manifest override (raises OptionError for a bad name or value)."""
    flag = "--" + key.strip().lstrip("-").replace("_", "-")
    if flag not in table:
        names = sorted(f[2:] for f in table)
        close = difflib.get_close_matches(flag[2:], names, n=1)
        raise OptionError(
            f"unknown option {key!r}: `a3d animate` has no {flag}",
            hint=f"did you mean {close[0]!r}?" if close else "see `a3d animate --help` for the option names",
        )
    param, off_form = table[flag]
    if value is None:
        return []
    if param.is_flag:
        if not isinstance(value, bool):
            raise OptionError(f"{key!r} is a switch: give it true or false, not {json.dumps(value)}")
        on = value != off_form  # "no-sds": true and "sds": false both mean --no-sds
        if param.secondary_opts:
            return [param.opts[0] if on else param.secondary_opts[0]]
        return [param.opts[0]] if on else []
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise OptionError(f"{key!r} takes one value (a string or a number), not {json.dumps(value)}")
    text = str(value)
    if _is_path_param(param) and text and not Path(text).expanduser().is_absolute():
        text = str(base / text)
    return [f"{param.opts[0]}={text}"]  # one word: a value starting with "-" stays a value


@dataclass(frozen=True)
class JobSpec:
    """A job as written, before validation: the input, prompt, run folder and option words."""

    source: str
    input: str
    prompt: str | None
    out: str | None
    args: tuple[str, ...]


def parse_line(text: str, source: str, base: Path, table: dict[str, tuple[Any, bool]]) -> JobSpec:
    """One manifest line → `JobSpec` (raises OptionError / InputError with a one-line reason)."""
    try:
        data = parse_json(text)  # the refusals of every JSON a3d did not write: deep nesting, huge integers
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:
        raise InputError(f"not a usable JSON line ({exc})") from None
    if not isinstance(data, dict):
        raise InputError('a job is a JSON object: {"input": ..., "prompt": ...}')
    inp = data.get(INPUT_KEY)
    if not isinstance(inp, str) or not inp.strip():
        raise InputError('"input" is missing or empty: name the mesh or splat file to animate')
    prompt = data.get(PROMPT_KEY)
    if prompt is not None and not isinstance(prompt, str):
        raise OptionError('"prompt" must be a string')
    out = data.get(OUT_KEY)
    if out is not None and (not isinstance(out, str) or not out.strip()):
        raise OptionError('"out" must be a non-empty string (the job\'s run folder)')
    args: list[str] = []
    for key, value in data.items():
        if key not in BATCH_KEYS:
            args.extend(_override_args(key, value, table, base))
    path = Path(inp).expanduser()
    return JobSpec(source, str(path if path.is_absolute() else base / path), prompt, out, tuple(args))


def read_manifest(path: Path) -> tuple[list[JobSpec], list[LineError]]:
    """Every job line of a JSON Lines manifest (blank lines and lines starting with # are skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the manifest {path} ({exc}).", hint="Pass a JSON Lines file.") from exc
    base = path.expanduser().absolute().parent
    table = _option_table(animate_command())
    specs: list[JobSpec] = []
    errors: list[LineError] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        source = f"{path.name}:{number}"
        try:
            specs.append(parse_line(text, source, base, table))
        except A3DError as exc:
            errors.append(LineError(source, exc.message, exc.hint))
    if not specs and not errors:
        errors.append(LineError(path.name, "the manifest has no jobs", 'add one JSON object per line: {"input": ...}'))
    return specs, errors


def read_prompt_file(path: Path) -> tuple[dict[str, tuple[str, str]], list[LineError]]:
    """`name<TAB>prompt` lines (name: an asset's file name or stem) → name → (prompt, source)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the prompt file {path} ({exc}).") from exc
    prompts: dict[str, tuple[str, str]] = {}
    errors: list[LineError] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        source = f"{path.name}:{number}"
        name, sep, prompt = text.partition("\t")
        if not sep or not name.strip() or not prompt.strip():
            errors.append(LineError(source, "expected `asset name<TAB>prompt`", "separate the name and prompt by a tab"))
        elif name.strip() in prompts:
            errors.append(LineError(source, f"{name.strip()!r} has a prompt already ({prompts[name.strip()][1]})"))
        else:
            prompts[name.strip()] = (prompt.strip(), source)
    return prompts, errors


def glob_specs(pattern: str, prompt: str | None, prompt_file: Path | None) -> tuple[list[JobSpec], list[LineError]]:
    """One job per file matching `pattern` (sorted), its prompt from `prompt_file` by name, else `prompt`."""
    files = sorted(p for p in (Path(m) for m in globlib.glob(str(Path(pattern).expanduser()), recursive=True)) if p.is_file())
    if not files:
        raise InputError(f"--glob {pattern!r} matches no file.", hint="Quote the pattern so the shell leaves it to a3d.")
    prompts, errors = read_prompt_file(prompt_file) if prompt_file is not None else ({}, [])
    used: set[str] = set()
    specs: list[JobSpec] = []
    for f in files:
        key = f.name if f.name in prompts else f.stem
        if key in prompts:
            used.add(key)
            text: str | None = prompts[key][0]
        elif prompt is not None:
            text = prompt
        else:
            errors.append(LineError(str(f), "no prompt for this asset", f"add `{f.stem}<TAB>prompt` to the prompt file, or pass --prompt"))
            continue
        specs.append(JobSpec(str(f), str(f.absolute()), text, None, ()))
    for name, (_, source) in prompts.items():
        if name not in used:
            errors.append(LineError(source, f"no file matched by --glob is named {name!r}"))
    return specs, errors


# -- validation -----------------------------------------------------------------------------------------------------


def _log_name(run_dir: Path, runs: Path, taken: set[str], index: int) -> str:
    try:
        name = run_dir.relative_to(runs).as_posix().replace("/", "__")
    except ValueError:
        name = run_dir.name
    if name in taken:
        name = f"{name}-{index}"
    taken.add(name)
    return name + ".log"


def build_jobs(
    specs: Iterable[JobSpec],
    runs: Path,
    logs: Path,
    common_args: Sequence[str] = (),
    compile_models: bool = True,
    force: bool = False,
    reserved: Sequence[Path] = (),
) -> tuple[list[Job], list[LineError]]:
    """Validate every job as `a3d animate` would, and give each its run folder and log file.

    Args:
        specs: the jobs as written.
        runs: the batch's runs folder (default parent of run folders, root of relative `out`s).
        logs: the folder of the per-job log files.
        common_args: `a3d animate` options for every job (a job's own keys win).
        compile_models: the batch's `--compile` default (a job's "compile" key wins).
        force: re-run every stage of every job.
        reserved: paths no run folder may be (the results file, the logs folder).

    Returns:
        the valid jobs, and one `LineError` per invalid one.
    """
    from a3d_cli.commands.animate import animate_options
    from a3d_cli.stages.animate import preflight, stage_calls

    command = animate_command()
    runs = Path(runs).expanduser().absolute()
    blocked = {Path(p).expanduser().absolute().resolve() for p in reserved}
    jobs: list[Job] = []
    errors: list[LineError] = []
    owners: dict[Path, str] = {}
    taken: set[str] = set()
    for spec in specs:
        argv = [spec.input, "--compile" if compile_models else "--no-compile", *common_args, *spec.args]
        if spec.prompt is not None:
            argv.append(f"--prompt={spec.prompt}")
        try:
            ctx = _parse(command, argv)
            opts = animate_options(ctx.params)
            plan = preflight(opts)
            out = Path(spec.out).expanduser() if spec.out is not None else Path(Path(spec.input).stem)
            run_dir = Path(os.path.normpath(out if out.is_absolute() else runs / out))
            stage_calls(opts, plan, run_dir)  # every stage's own option checks
        except A3DError as exc:
            errors.append(LineError(spec.source, exc.message.rstrip("."), exc.hint))
            continue
        same = run_dir.resolve()  # one folder however it is spelled: `sub/../fox`, or through a link
        if same == runs.resolve():  # `"out": ""` or `"."`: the runs folder itself, which holds every job
            errors.append(LineError(spec.source, f"its run folder is the runs folder {runs} itself", 'give it a name in "out"'))
            continue
        if same in owners or same in blocked:
            first = owners.get(same, "a3d batch's own results or logs")
            errors.append(
                LineError(spec.source, f"its run folder {run_dir} is also {first}'s", 'give one of them its own "out"')
            )
            continue
        owners[same] = spec.source
        log = logs.expanduser().absolute() / _log_name(run_dir, runs, taken, len(jobs))
        jobs.append(
            Job(len(jobs), spec.source, run_dir.name, str(run_dir), opts, force or bool(ctx.params.get("force")), str(log))
        )
    return jobs, errors


def check_common_args(common_args: Sequence[str]) -> None:
    """Reject options for every job that `a3d animate` would not parse (one error, before any job)."""
    words = list(common_args)
    for refused in REFUSED_OPTIONS:
        if refused in words or any(w.startswith(refused + "=") for w in words):
            raise OptionError(f"{refused} cannot be given for every job of a batch.", hint="Use the manifest's keys.")
    try:
        _parse(animate_command(), ["INPUT", *words])
    except OptionError as exc:
        raise OptionError(
            f"the `a3d animate` options for every job do not parse: {exc.message}",
            hint="Put a3d batch's own options before `--` and a3d animate's after it.",
        ) from None


__all__ = [
    "Job",
    "JobSpec",
    "LineError",
    "ManifestError",
    "animate_command",
    "build_jobs",
    "check_common_args",
    "glob_specs",
    "parse_line",
    "read_manifest",
    "read_prompt_file",
]
