"""`a3d info RUN`: what each stage of a run folder did (from its manifest); `a3d info --warmup`: build gsplat and
compile the Triton kernels now."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from a3d_cli.commands.common import global_options, human_bytes
from a3d_cli.console import echo_json, out

if TYPE_CHECKING:
    from a3d_cli.stages.outlook import StageOutlook


NEXT_RUN = {"up_to_date": "up to date", "runs_again": "runs again", "may_run_again": "may run again",
            "unknown": "unknown"}  # fmt: skip
"""The table's words for each verdict of `a3d_cli.stages.outlook`."""


def quality(stage: str, metrics: dict[str, Any]) -> str:
    """The figures that say how well a stage did, in a few words (empty when it recorded none)."""
    parts: list[str] = []
    if "psnr" in metrics:
        static = f" (static {metrics['psnr_static']:.2f})" if isinstance(metrics.get("psnr_static"), (int, float)) else ""
        parts.append(f"PSNR {metrics['psnr']:.2f} dB{static}")
    if isinstance(metrics.get("final_loss"), (int, float)):
        parts.append(f"loss {metrics['final_loss']:.4g}")
    if "psnr_vs_coarse" in metrics:
        parts.append(f"PSNR vs coarse {metrics['psnr_vs_coarse']:.2f} dB")
    end = metrics.get("loss_end")
    if isinstance(end, dict) and isinstance(end.get("total"), (int, float)):
        start = metrics.get("loss_start", {}).get("total")
        parts.append(f"loss {start:.4g} → {end['total']:.4g}" if isinstance(start, (int, float)) else f"loss {end['total']:.4g}")
    if stage == "prepare":
        if "splats" in metrics:
            parts.append(f"{metrics['splats']} splats")
        if "front" in metrics:
            parts.append(f"front {metrics['front']}")
        if metrics.get("shaded"):
            parts.append("lit")
        cover = metrics.get("view_coverage")
        if isinstance(cover, list) and cover:
            parts.append(f"coverage {min(cover):.0%}–{max(cover):.0%}")
    return ", ".join(parts)


def info(
    ctx: typer.Context,
    run_dir: Annotated[Path | None, typer.Argument(help="The run folder.", metavar="RUN", show_default=False)] = None,
    check_inputs: Annotated[
        bool,
        typer.Option(
            "--check-inputs",
            help="Hash every run-folder file each stage read, as a run does, to tell whether one changed (also by "
            "hand). Without it only files a3d wrote again after the stage ran are hashed.",
        ),
    ] = False,
    warmup: Annotated[
        bool,
        typer.Option(
            "--warmup",
            help="Build gsplat's CUDA rasterizer and compile a3d's Triton kernels now (once per machine) "
            "instead of in the first run.",
        ),
    ] = False,
) -> None:
    """Show the stages recorded in a run folder: status, time, memory, quality figures, outputs, and whether the
    next run (`a3d animate`, or the stage's own command, with the same options) runs each again and why (or,
    with --warmup, pre-build gsplat and the Triton kernels)."""
    if warmup:
        _warmup()
        return
    if run_dir is None:
        from a3d_cli.errors import OptionError

        raise OptionError("a3d info needs a run folder (or --warmup).", hint="Run `a3d info RUN` or `a3d info --warmup`.")
    from a3d_cli.errors import RunFolderError
    from a3d_cli.io.manifest import MANIFEST_NAME, load_manifest
    from a3d_cli.stages.base import ensure_run_dir

    ensure_run_dir(run_dir, create=False)
    if not (Path(run_dir) / MANIFEST_NAME).is_file():
        raise RunFolderError(
            f"{run_dir} is not an a3d run folder (it has no {MANIFEST_NAME}).",
            hint="Pass the folder given to `a3d prepare MODEL -o RUN` (or `a3d animate`).",
        )
    from a3d_cli.stages.outlook import run_outlook

    data = load_manifest(run_dir)
    outlook = run_outlook(run_dir, data, hash_inputs=check_inputs)
    if global_options(ctx).json:
        next_run = {name: o.to_json() for name, o in outlook.items()}
        echo_json({**data, "next_run": {"inputs_hashed": "all" if check_inputs else "rewritten", "stages": next_run}})
        return
    from rich.table import Table

    table = Table(title=f"{run_dir}  (a3d {data.get('a3d_version', '?')})")
    for col in ("stage", "status", "time", "peak mem", "device", "quality", "outputs", "next run", "note"):
        table.add_column(col)
    for name, entry in data["stages"].items():
        note = entry.get("error", "") if entry.get("status") != "done" else ""
        table.add_row(
            name,
            entry.get("status", "?"),
            f"{entry.get('seconds', 0):.1f} s",
            human_bytes(entry.get("peak_memory_bytes")),
            entry.get("device", "-"),
            quality(name, entry.get("metrics", {})),
            str(len(entry.get("outputs", []))),
            NEXT_RUN[outlook[name].verdict],
            note,
        )
    out.print(table)
    if data["stages"]:
        for line in next_run_lines(outlook, check_inputs):
            out.print(line, highlight=False)


def next_run_lines(outlook: dict[str, StageOutlook], inputs_hashed: bool) -> list[str]:
    """Why each stage that is not up to date runs (or may run) again, one line each, under the table."""
    stale = [o for o in outlook.values() if o.verdict != "up_to_date"]
    lines = ["Next run, with the options and seed each stage recorded:" if stale else
             "Next run: every stage is up to date (with the options and seed each recorded)."]  # fmt: skip
    lines += [f"  {o.stage} {NEXT_RUN[o.verdict]}: {'; '.join(r.message for r in o.reasons)}" for o in stale]
    if not inputs_hashed:
        lines.append("A file changed by hand, outside a3d, shows with --check-inputs.")
    return lines


def _warmup() -> None:
    """Build (or load) gsplat's CUDA extension into a3d's cache folder, compile the Triton kernels, and say where
    and how long each took."""
    import time

    import torch

    from a3d_cli.console import err
    from a3d_cli.errors import DeviceError
    from a3d_cli.kernels.gsplat_build import EXTENSION_NAME, build_needed, use_extensions_dir

    if not torch.cuda.is_available():
        out.print(
            "Nothing to build: no CUDA GPU is visible here. gsplat's extension and the Triton kernels are built on "
            "a GPU machine; on the CPU a3d renders with its PyTorch rasterizer and runs its reference kernels, "
            "which need no build."
        )
        return
    from a3d_cli.kernels.rasterize_gsplat import gsplat_available

    folder = use_extensions_dir() / EXTENSION_NAME
    needed = build_needed()
    if not needed:
        err.print(f"a3d: loading gsplat's CUDA extension from {folder}", markup=False, highlight=False)
    start = time.perf_counter()
    try:
        if not gsplat_available():
            raise DeviceError(
                "gsplat's CUDA extension could not be built or loaded.",
                hint='See the compiler\'s error with `VERBOSE=1 python -c "from gsplat.cuda._backend import _C"` '
                "(it needs the CUDA toolkit's nvcc and a C++ compiler).",
            )
        seconds = time.perf_counter() - start
        verb = "built" if needed else "already built, loaded"
        out.print(f"gsplat CUDA extension {verb} in {seconds:.1f} s ({folder}).", markup=False, highlight=False)
    finally:  # the kernels do not need gsplat: compile them whether or not its build worked
        _warm_triton_kernels()


def _warm_triton_kernels() -> None:
    """One guided UNet call per diffusion stage, so their Triton kernels are compiled into Triton's disk cache."""
    import time

    import torch

    from a3d_cli.console import err
    from a3d_cli.kernels.triton_cache import quiet_compile_notice, triton_cache_dir
    from a3d_cli.models.warmup import warm_diffusion_kernels
    from a3d_cli.stages import mvvideo, orbit, sds

    precisions = {"orbit": orbit.DEFAULT_CUDA_DTYPE, "mvvideo": mvvideo.DEFAULT_CUDA_DTYPE, "sds": sds.DEFAULT_CUDA_DTYPE}
    quiet_compile_notice()  # the lines below say what compiles
    start = time.perf_counter()
    warmed = []
    for stage, dtype in precisions.items():
        err.print(f"a3d: compiling the Triton kernels of {stage} ({dtype}, random weights)", markup=False, highlight=False)
        why = ""
        try:
            warmed += warm_diffusion_kernels({stage: dtype}, "cuda")
        except torch.cuda.OutOfMemoryError:
            why = "its full-size UNet does not fit this GPU's free memory"
        except Exception as exc:  # noqa: BLE001 - one stage's failure must not keep the others cold
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if why:  # outside the handler, so that the failed call's tensors are gone before the cache is emptied
            torch.cuda.empty_cache()
            err.print(f"a3d: {stage} skipped ({why}); it compiles on its first run instead", markup=False,
                      highlight=False)  # fmt: skip
    if not warmed:
        out.print("No Triton kernels were compiled; each diffusion stage compiles its own on its first run.",
                  markup=False, highlight=False)  # fmt: skip
        return
    parts = ", ".join(f"{w.stage} {w.seconds:.1f} s" for w in warmed)
    out.print(f"Triton kernels compiled in {time.perf_counter() - start:.1f} s ({parts}); cached in {triton_cache_dir()}.",
              markup=False, highlight=False)  # fmt: skip
