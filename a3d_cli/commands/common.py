"""What every command shares: global options, the rich progress display, the summary, `--force`.

A command module builds its stage's options, then calls `run_and_report(ctx, lambda rt: stage.run(...))`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from a3d_cli.console import echo_json, err, out, styled

ForceOption = Annotated[bool, typer.Option("--force", help="Re-run even when inputs and options are unchanged.")]
CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile/--no-compile",
        help="On CUDA, torch.compile the model's repeated blocks: faster steps after a one-off compilation "
        "(its kernels are cached on disk for later runs), so it pays off over long or many runs; "
        "gains and compile times in docs/PERF.md.",
        rich_help_panel="Speed and memory",
    ),
]


# The MV-VDM weight locations (mvvideo, sds, animate): each defaults to the weights resolver's lookup.
_WEIGHTS_PANEL = "Weights"
MVDreamOption = Annotated[
    Path | None,
    typer.Option("--mvdream", help="Folder of yanqinJiang/mvdream-sd1.5-diffusers.", rich_help_panel=_WEIGHTS_PANEL),
]
IPAdapterOption = Annotated[
    Path | None,
    typer.Option("--ip-adapter", help="h94/IP-Adapter models/ip-adapter_sd15.bin.", rich_help_panel=_WEIGHTS_PANEL),
]
ImageEncoderOption = Annotated[
    Path | None,
    typer.Option("--image-encoder", help="Folder h94/IP-Adapter models/image_encoder.", rich_help_panel=_WEIGHTS_PANEL),
]
MotionModulesOption = Annotated[
    Path | None,
    typer.Option(
        "--motion-modules", help="yanqinJiang/animate3d animate3d_motion_modules.ckpt.", rich_help_panel=_WEIGHTS_PANEL
    ),
]
DurationOption = Annotated[
    float | None,
    typer.Option(help="Seconds the motion plays over; default: its own (15 frames at 8 fps).", show_default=False),
]
LoopOption = Annotated[
    bool, typer.Option("--loop/--no-loop", help="Make the clip cyclic: the last frame flows into the first.")
]
LoopModeOption = Annotated[
    str, typer.Option(help="How --loop closes the clip: blend (position and velocity) or pingpong.")
]
MotionChoiceOption = Annotated[
    str, typer.Option("--motion", help="Motion file: auto (refined if present, else coarse), coarse or refined.")
]
MaxTextureSizeOption = Annotated[
    int | None,
    typer.Option(
        help="Reduce a texture longer than this many px a side to it, keeping its aspect (e.g. 4096 for phones, "
        "2048 for WebGL); default: the texture as prepare wrote it.",
        show_default=False,
    ),
]
AllowExternalRefsOption = Annotated[
    bool,
    typer.Option(
        "--allow-external-refs",
        help="Let the asset reference files outside its own folder (absolute paths, ../). Only for assets you trust.",
        rich_help_panel="Input",
    ),
]
TinyModelOption = Annotated[bool, typer.Option("--tiny-model", hidden=True, help="Tiny random MV-VDM (tests only).")]


@dataclass(frozen=True)
class GlobalOptions:
    """Options of the `a3d` app callback, shared by every command."""

    device: str = "auto"
    seed: int = 0
    quiet: bool = False
    verbose: bool = False
    json: bool = False


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The app-level options (defaults when a command is invoked on its own, e.g. in tests)."""
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


class RichProgress:
    """Shows stage progress on stderr with rich: description, bar, step counts, live numbers, ETA."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self._bar = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=quiet,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, description: str, total: int | None = None) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(description, total=total, info="")

    def update(self, advance: int = 1, **fields: float) -> None:
        if self._task is None:
            self.start("working")
        info = "  ".join(f"{k} {v:.4g}" for k, v in fields.items())
        self._bar.update(self._task, advance=advance, info=info)

    def log(self, message: str) -> None:
        if not self.quiet:
            self._bar.console.print(styled(("·", "dim"), " ", message))


PROGRESS_INTERVAL_ENV = "A3D_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL = 30.0  # seconds between plain progress lines


class PlainProgress:
    """Progress as plain lines on stderr, for logs (batch jobs, CI, nohup): each phase when it starts, then a
    line every A3D_PROGRESS_INTERVAL seconds (default 30) and when a phase ends: stage, step, live numbers
    (loss, …), elapsed time and ETA. Used when stderr is not a terminal."""

    def __init__(self, quiet: bool = False, interval: float | None = None, stream: Any = None) -> None:
        import os
        import sys

        self.quiet = quiet
        env = os.environ.get(PROGRESS_INTERVAL_ENV, "")
        try:
            default = float(env) if env else DEFAULT_PROGRESS_INTERVAL
        except ValueError:
            default = DEFAULT_PROGRESS_INTERVAL
        self.interval = default if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self._desc, self._total, self._done = "", None, 0
        self._t0 = self._last = 0.0
        self._fields: dict[str, float] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _emit(self, line: str) -> None:
        if not self.quiet:
            self.stream.write(line + "\n")
            self.stream.flush()

    def start(self, description: str, total: int | None = None) -> None:
        import time

        self._desc, self._total, self._done, self._fields = description, total, 0, {}
        self._t0 = self._last = time.monotonic()
        self._emit(f"{description}" + (f" (0/{total})" if total else ""))

    def update(self, advance: int = 1, **fields: float) -> None:
        import time

        self._done += advance
        self._fields.update(fields)
        now = time.monotonic()
        finished = self._total is not None and self._done >= self._total
        if now - self._last < self.interval and not finished:
            return
        self._last = now
        elapsed = now - self._t0
        parts = [f"{self._desc}: step {self._done}" + (f"/{self._total}" if self._total else "")]
        parts += [f"{k} {v:.4g}" for k, v in self._fields.items()]
        parts.append(f"elapsed {_clock(elapsed)}")
        if self._total and 0 < self._done < self._total:
            parts.append(f"ETA {_clock(elapsed / self._done * (self._total - self._done))}")
        self._emit("  ".join(parts))

    def log(self, message: str) -> None:
        self._emit(f"· {message}")


def _clock(seconds: float) -> str:
    """Seconds as 42s, 3m05s or 1h02m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def make_progress(quiet: bool) -> RichProgress | PlainProgress:
    """A live rich display on a terminal, plain periodic lines otherwise."""
    return RichProgress(quiet=quiet) if err.is_terminal else PlainProgress(quiet=quiet)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def summary_data(results: Sequence[Any]) -> dict[str, Any]:
    """A machine-readable summary of stage results (what `--json` prints)."""
    return {
        "ok": True,
        "run_dir": str(results[0].run_dir) if results else None,
        "stages": [
            {
                "stage": r.stage,
                "skipped": r.skipped,
                "seconds": round(r.seconds, 3),
                "device": r.device,
                "seed": r.seed,
                "peak_memory_bytes": r.peak_memory_bytes,
                "outputs": [str(p) for p in r.outputs],
                "metrics": r.metrics,
            }
            for r in results
        ],
    }


def print_summary(results: Sequence[Any], opts: GlobalOptions) -> None:
    """Print what was written: JSON on stdout with `--json`, else a rich table (nothing with --quiet)."""
    if opts.json:
        echo_json(summary_data(results))
        return
    if opts.quiet:
        return
    from rich.table import Table

    table = Table(title=f"run folder: {results[0].run_dir}" if results else None, show_lines=False)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("peak mem", justify="right")
    table.add_column("outputs")
    for r in results:
        rel = [p.relative_to(r.run_dir.resolve()).as_posix() if p.is_relative_to(r.run_dir.resolve()) else str(p) for p in r.outputs]
        shown = ", ".join(rel[:6]) + (f", … (+{len(rel) - 6})" if len(rel) > 6 else "")
        table.add_row(r.stage, "skipped" if r.skipped else "done", f"{r.seconds:.1f} s", human_bytes(r.peak_memory_bytes), shown)
    out.print(table)


def run_and_report(ctx: typer.Context, call: Callable[[Any], Any], force: bool = False) -> list[Any]:
    """Resolve the device, run one stage (or a chain) with a progress display, print the summary.

    Args:
        call: takes a `Runtime`, returns a StageResult or a list of them.
    """
    from a3d_cli.device import configure_cpu_threads, resolve_device
    from a3d_cli.stages.base import Runtime

    opts = global_options(ctx)
    device = resolve_device(opts.device)
    threads = configure_cpu_threads() if device == "cpu" else None
    with make_progress(quiet=opts.quiet or opts.json) as progress:
        if threads is not None and threads < (os.cpu_count() or 1):
            progress.log(f"cpu: {threads} torch thread(s), as other work keeps the rest busy (OMP_NUM_THREADS sets it)")
        result = call(Runtime(device=device, seed=opts.seed, force=force, progress=progress))
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    print_summary(results, opts)
    return results


def run_folder_argument(help_text: str = "The run folder.") -> Any:
    """A `RUN` positional argument (shared wording)."""
    return typer.Argument(help=help_text, metavar="RUN", show_default=False)


def resolve_path(path: Path) -> Path:
    return Path(path).expanduser()


def optional_path(p: Path | None) -> str | None:
    """An optional user path as the absolute string a stage's options record (None stays None)."""
    return None if p is None else str(resolve_path(p).absolute())


def mvvdm_weight_paths(
    mvdream: Path | None, ip_adapter: Path | None, image_encoder: Path | None, motion_modules: Path | None
) -> dict[str, str | None]:
    """The four MV-VDM weight options as the stages' option fields (absolute paths or None)."""
    return {
        "mvdream": optional_path(mvdream),
        "ip_adapter": optional_path(ip_adapter),
        "image_encoder": optional_path(image_encoder),
        "motion_modules": optional_path(motion_modules),
    }


def check_dtype(dtype: str) -> None:
    """Reject a `--dtype` that is not one of the MV-VDM precisions (exit code 2 at the CLI)."""
    from a3d_cli.errors import OptionError

    if dtype not in ("auto", "fp32", "fp16", "bf16"):
        raise OptionError(f"--dtype {dtype!r} is not one of auto, fp32, fp16, bf16.")
