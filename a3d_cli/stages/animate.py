"""`a3d animate`: the whole chain in one run folder — prepare → mvvideo → reconstruct → sds → mesh-animate → export.

An image input (.png, .jpg, .webp, .tif, … : `IMAGE_SUFFIXES`) is first made into a 3D asset in the same run folder: orbit
(SV3D) → lift (splats + textured mesh) → prepare on `lift/model.glb` → the rest. `orbit` (a folder of
frames + cameras.json) skips SV3D and lifts that folder instead.

Each link is the ordinary stage (`a3d_cli.stages.<name>.run`), so the run folder, the manifest and the
skip rules are exactly those of running the commands one by one. Resuming is therefore free: re-running
the same command skips every stage whose options and input files are unchanged and continues with the first
one that is not done (a killed process leaves its stage "running" in the manifest and no half-written
files). Changing an option re-runs that stage, and — because each stage records the digests of the files
it reads — every later stage whose inputs changed as a result, and nothing before it.

Which links run is decided up front by `plan_chain` (a pure function, so it is tested without running
anything):

* image inputs start with orbit (unless `orbit` gives a folder) and lift; prepare then reads `lift/model.glb`;
* mvvideo runs unless a video folder is given (`video`); it needs the MV-VDM weights;
* sds runs when asked (`sds=True`) or, by default (`sds=None`), when there is a prompt and the MV-VDM
  weights are on this machine; with `--video`, no prompt or no weights it is skipped with a notice;
* mesh-animate runs for mesh inputs unless `output="splats"`; export always runs (frame PLYs + preview).

Examples:
    >>> run(Path("RUN"), AnimateOptions(model="fox.glb", prompt="a fox wags its tail"), Runtime("cuda"))  # doctest: +SKIP
    >>> run(Path("RUN"), AnimateOptions(model="fox.glb", video="gt/video"))  # no weights needed  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from a3d_cli.errors import InputError, OptionError, require_finite_options
from a3d_cli.mesh.texture_limit import check_max_texture_size
from a3d_cli.models.mvvdm.shape import NUM_FRAMES, NUM_VIEWS
from a3d_cli.progress import Progress
from a3d_cli.run_layout import LIFT_MODEL, MOTION_FILES
from a3d_cli.stages.base import (
    Runtime,
    StageResult,
    created_folders_removed_on_failure,
    ensure_run_dir,
    remove_outdated_outputs,
)
from a3d_cli.stages.export import ExportOptions
from a3d_cli.stages.mvvideo import MVVideoOptions
from a3d_cli.stages.orbit import OrbitOptions
from a3d_cli.stages.prepare import PrepareOptions
from a3d_cli.stages.reconstruct_defaults import DEFAULT_PRESET, PresetName
from a3d_cli.stages.sds import SdsOptions

Output = Literal["auto", "mesh", "splats"]
VIDEO_ALTERNATIVE = (
    "Or animate from a multi-view video you already have: `a3d animate MODEL --video DIR` "
    f"(DIR holds v{{view}}_f{{frame:02d}}.png, {NUM_VIEWS} views × {NUM_FRAMES} frames)."
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif")
"""Inputs with these suffixes are images: the chain starts with orbit → lift. The raster formats Pillow reads
that hold a photo or a cut-out; HEIC/HEIF too, which it does not read, so that such a photo is refused as an
image with the hint to convert it (`a3d_cli.io.images.open_image`), not as an unknown 3D format."""


def is_image_input(model: str | Path) -> bool:
    """Whether `animate` treats `model` as a picture of an object (orbit → lift first)."""
    return Path(model).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class AnimateOptions:
    """Options of `a3d animate` (the common knobs of each stage; the stage commands offer every one)."""

    model: str
    """Input asset: .glb, .gltf, .obj, mesh .ply, .stl, .off, 3DGS .ply (also compressed), .splat or .spz, or an object image
    (`IMAGE_SUFFIXES`)."""
    orbit: str | None = None
    """Image inputs: a folder of frames + cameras.json (docs/lift.md) lifted instead of sampling SV3D."""
    sv3d_model: Literal["sv3d_u", "sv3d_p"] = OrbitOptions.model
    """Image inputs: the SV3D variant of the orbit stage."""
    sv3d_checkpoint: str | None = None
    """Image inputs: explicit SV3D checkpoint (default: resolved by `a3d weights`)."""
    orbit_steps: int = OrbitOptions.steps
    """Image inputs: SV3D sampling steps."""
    elevation: float = OrbitOptions.elevation[0]
    """Image inputs: the orbit's camera elevation in degrees."""
    lift_steps: int | None = None
    """Image inputs: splat-fit steps of the lift (None: the device's default)."""
    lift_resolution: int | None = None
    """Image inputs: fit size of the lift (None: the device's default)."""
    prompt: str | None = None
    """The motion ("a fox wags its tail"); needed unless `video` is given."""
    negative_prompt: str = MVVideoOptions.negative_prompt
    """Text of the unconditional branch of MV-VDM (generation and SDS)."""
    video: str | None = None
    """A multi-view video folder (`v{view}_f{frame:02d}.png`, 4 × 16) used instead of generating one."""
    sds: bool | None = None
    """Refine with 4D-SDS: True = always (weights required), False = never, None = when possible."""
    output: Output = "auto"
    """"auto": animated mesh for mesh inputs + splat frames; "mesh": require a mesh result; "splats": splat
    frames and preview only (no animated GLB)."""
    up: str = PrepareOptions.up
    """The asset's up axis (prepare)."""
    front: str = PrepareOptions.front
    """The asset's front axis, or "auto" (prepare)."""
    shade: str = PrepareOptions.shade
    """Baked lighting of mesh colours: auto, on, off (prepare)."""
    splats: int = PrepareOptions.splats
    """Splats aimed for on meshes (prepare)."""
    max_vertices: int = PrepareOptions.max_vertices
    """Meshes with more vertices are simplified (prepare)."""
    max_texture_size: int | None = None
    """Longest side of the animated mesh's texture, a longer one reduced (mesh-animate); None: as prepare wrote it."""
    allow_external_refs: bool = PrepareOptions.allow_external_refs
    """Read files the asset names outside its own folder (prepare; off for untrusted assets)."""
    freeinit_iters: int = MVVideoOptions.freeinit_iters
    """FreeInit passes of the video generation (0/1 = off: one pass instead of three)."""
    freeinit_grid: str = MVVideoOptions.freeinit_grid
    """FreeInit frequency grid of the video generation: reference (Animate3D's) or centred (mvvideo)."""
    reconstruct_preset: PresetName = DEFAULT_PRESET
    """Motion-fit preset: quickstart on CPU, reference on GPU by default."""
    reconstruct_steps: int | None = None
    """Motion-fit steps (None: the preset's)."""
    resolution: int | None = None
    """Motion-fit render size (None: the preset's)."""
    max_splats: int | None = None
    """Fit on at most this many splats (None: the preset's)."""
    sds_steps: int = SdsOptions.steps
    """4D-SDS refinement steps."""
    sds_target_size: int = SdsOptions.target_size
    """Render size of the SDS stage's reconstruction branch (the reference: 1024)."""
    sds_vae_keep: int | None = SdsOptions.vae_keep
    """The sds stage's `vae_keep` (None: as spare GPU memory allows); `a3d batch` sets 0 where workers share a GPU."""
    sds_cuda_graph: bool = SdsOptions.cuda_graph
    """The sds stage's `cuda_graph` (its guided call recorded where spare GPU memory allows); `a3d batch` turns it
    off where workers share a GPU."""
    preview_size: int = ExportOptions.size
    """Width and height of export/preview.mp4."""
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = MVVideoOptions.dtype
    """MV-VDM precision (generation and SDS)."""
    compile: bool = MVVideoOptions.compile
    """On CUDA, compile the diffusion models' repeated blocks: MV-VDM for mvvideo and sds, SV3D for an image
    input's orbit (`a3d_cli.models.speed.acceleration`)."""
    mvdream: str | None = None
    """Explicit folder of yanqinJiang/mvdream-sd1.5-diffusers."""
    ip_adapter: str | None = None
    """Explicit path of h94/IP-Adapter models/ip-adapter_sd15.bin."""
    image_encoder: str | None = None
    """Explicit folder of h94/IP-Adapter models/image_encoder."""
    motion_modules: str | None = None
    """Explicit path of yanqinJiang/animate3d animate3d_motion_modules.ckpt."""
    tiny_model: bool = False
    """Tiny random-weight MV-VDM (tests and plumbing checks only)."""

    def __post_init__(self) -> None:
        require_finite_options(self)
        if self.video is None and not (self.prompt or "").strip():
            raise OptionError(
                "a3d animate needs --prompt (the motion to generate) or --video (a multi-view video to fit).",
                hint='Add --prompt "a fox wags its tail", or --video DIR with v{view}_f{frame:02d}.png frames.',
            )
        if self.sds is True and not (self.prompt or "").strip():
            raise OptionError(
                "--sds needs --prompt: 4D-SDS is guided by the text.", hint="Add --prompt, or drop --sds."
            )
        if self.output not in ("auto", "mesh", "splats"):
            raise OptionError(f"the export choice must be auto, mesh or splats, got {self.output!r}.")
        if self.orbit is not None and not is_image_input(self.model):
            raise OptionError(
                "--orbit lifts frames of an object image; the input is already a 3D model.",
                hint="Drop --orbit, or pass the object image (.png/.jpg/.webp) as the input.",
            )
        if self.sv3d_model not in ("sv3d_u", "sv3d_p"):
            raise OptionError(f"--sv3d-model must be sv3d_u or sv3d_p (got {self.sv3d_model}).")
        check_max_texture_size(self.max_texture_size)
        if self.max_texture_size is not None and self.output == "splats":
            raise OptionError(
                "--max-texture-size sizes the animated mesh's texture, which --splats leaves out.",
                hint="Drop --max-texture-size, or --splats.",
            )
        self._check_options_fit_the_input()
        if self.sds_steps < 0 or (self.reconstruct_steps is not None and self.reconstruct_steps < 0):
            raise OptionError("--sds-steps and --reconstruct-steps must be >= 0.")

    def _check_options_fit_the_input(self) -> None:
        """Refuse options that the input's kind would silently ignore (image-only options on a 3D model, the
        axes of a 3D model on an image, whose lifted model is always +Y up and faces +Z)."""
        defaults = AnimateOptions.__dataclass_fields__
        if is_image_input(self.model):
            given = [f"--{name}" for name in ("up", "front") if getattr(self, name) != defaults[name].default]
            hint = "Drop them: the model lifted from an image is +Y up and faces +Z, the view of the image."
        else:
            names = ("sv3d_model", "sv3d_checkpoint", "orbit_steps", "elevation", "lift_steps", "lift_resolution")
            given = [
                "--" + name.replace("_", "-") for name in names if getattr(self, name) != defaults[name].default
            ]
            hint = "Drop them, or pass the object image (.png/.jpg/.webp) as the input."
        if given:
            kind = "an image input" if is_image_input(self.model) else "a 3D model input"
            verb = "does" if len(given) == 1 else "do"
            raise OptionError(f"{', '.join(given)} {verb} not apply to {kind}.", hint=hint)


@dataclass(frozen=True)
class ChainPlan:
    """Which stages `animate` runs, and why the others are left out.

    Attributes:
        stages: stage names in run order.
        notices: one line per stage left out (shown to the user, kept in the summary).
        mesh_input: the input is a mesh (not a 3DGS PLY).
    """

    stages: tuple[str, ...]
    notices: tuple[str, ...] = ()
    mesh_input: bool = True


def plan_chain(opts: AnimateOptions, mesh_input: bool, weights_missing: list[str], image_input: bool = False) -> ChainPlan:
    """Decide the chain from the options, the input kind and which MV-VDM files are missing.

    Args:
        opts: animate options.
        mesh_input: the input is a mesh (always true for images: the lift makes one).
        weights_missing: registry names of MV-VDM files not found (`[]` when all are there or not needed).
        image_input: the input is an object image (orbit → lift come first).

    Raises:
        WeightsMissing: the chain needs MV-VDM (no `video`, or `sds=True`) and files are missing.
        InputError: `output="mesh"` for a 3DGS input.
    """
    from a3d_cli.models.mvvdm.weights import explicit_weights, resolve_mvvdm_weights
    from a3d_cli.stages.sds import WEIGHTS_ALTERNATIVE

    stages: list[str] = []
    notices: list[str] = []
    if image_input:
        if opts.orbit is None:
            stages.append("orbit")
        else:
            notices.append("orbit: skipped (--orbit: lifting the given frames)")
        stages.append("lift")
    stages.append("prepare")
    have_weights = opts.tiny_model or not weights_missing
    if not have_weights:
        # raises WeightsMissing with the full message, naming the first stage that needs the weights
        if opts.video is None:
            resolve_mvvdm_weights(explicit_weights(opts), needed_by="mvvideo", alternative=VIDEO_ALTERNATIVE)
        elif opts.sds is True:
            resolve_mvvdm_weights(explicit_weights(opts), needed_by="4D-SDS", alternative=WEIGHTS_ALTERNATIVE)
    if opts.video is None:
        stages.append("mvvideo")
    stages.append("reconstruct")
    if opts.sds is False:
        notices.append("sds: skipped (--no-sds); exporting the coarse motion")
    elif not (opts.prompt or "").strip():
        notices.append("sds: skipped (no --prompt to guide it); exporting the coarse motion")
    elif not have_weights:
        notices.append(
            f"sds: skipped (MV-VDM weights not found: {', '.join(weights_missing)}); exporting the coarse motion. "
            "Fetch them with `a3d weights fetch` to refine, or pass --no-sds to silence this."
        )
    else:
        stages.append("sds")
    if opts.output == "mesh" and not mesh_input:
        raise InputError(
            f"--mesh asks for an animated mesh, but {opts.model} is a 3D Gaussian splat file.",
            hint="Drop --mesh (splat inputs export per-frame PLYs and a preview).",
        )
    if not mesh_input and opts.max_texture_size is not None:
        raise InputError(
            f"--max-texture-size sizes an animated mesh's texture, but {opts.model} is a 3D Gaussian splat file.",
            hint="Drop --max-texture-size (splat inputs export per-frame PLYs and a preview).",
        )
    if mesh_input and opts.output != "splats":
        stages.append("mesh-animate")
    elif mesh_input:
        notices.append("mesh-animate: skipped (--splats)")
    stages.append("export")
    return ChainPlan(tuple(stages), tuple(notices), mesh_input)


def stage_calls(opts: AnimateOptions, plan: ChainPlan, run_dir: Path) -> dict[str, Callable[[Runtime], StageResult]]:
    """One call per planned stage, with that stage's options built from the animate options."""
    from a3d_cli.stages import export, lift, mesh_animate, mvvideo, orbit, prepare, reconstruct, sds

    motion = "refined" if "sds" in plan.stages else "coarse"  # explicit: a stale refined file must not win
    mvvdm: dict[str, Any] = {  # what mvvideo and sds take alike: the prompt and one MV-VDM, built the same way
        "prompt": opts.prompt or "",
        "negative_prompt": opts.negative_prompt,
        "dtype": opts.dtype,
        "compile": opts.compile,
        "tiny_model": opts.tiny_model,
        "mvdream": opts.mvdream,
        "ip_adapter": opts.ip_adapter,
        "image_encoder": opts.image_encoder,
        "motion_modules": opts.motion_modules,
    }
    image_input = "lift" in plan.stages
    prepared = (Path(run_dir) / LIFT_MODEL).absolute() if image_input else Path(opts.model).expanduser().absolute()
    builders: dict[str, Callable[[], Any]] = {
        "orbit": lambda: orbit.OrbitOptions(
            image=str(Path(opts.model).expanduser().absolute()),
            model=opts.sv3d_model,
            checkpoint=opts.sv3d_checkpoint,
            steps=opts.orbit_steps,
            elevation=(opts.elevation,),
            compile=opts.compile,
        ),
        "lift": lambda: lift.LiftOptions(
            orbit=None if opts.orbit is None else str(Path(opts.orbit).expanduser().absolute()),
            steps=opts.lift_steps,
            resolution=opts.lift_resolution,
        ),
        "prepare": lambda: prepare.PrepareOptions(
            model=str(prepared),
            up="+y" if image_input else opts.up,  # a lifted model is in the orbit's frame: +Y up,
            front="+z" if image_input else opts.front,  # the input view's side facing +Z
            shade=opts.shade,  # type: ignore[arg-type]
            max_vertices=opts.max_vertices,
            splats=opts.splats,  # type: ignore[arg-type]
            allow_external_refs=opts.allow_external_refs,
        ),
        "mvvideo": lambda: mvvideo.MVVideoOptions(
            freeinit_iters=opts.freeinit_iters, freeinit_grid=opts.freeinit_grid, **mvvdm
        ),
        "reconstruct": lambda: reconstruct.ReconstructOptions(
            video=None if opts.video is None else str(Path(opts.video).expanduser().absolute()),
            preset=opts.reconstruct_preset,
            steps=opts.reconstruct_steps,
            resolution=opts.resolution,
            max_splats=opts.max_splats,
        ),
        "sds": lambda: sds.SdsOptions(
            steps=opts.sds_steps,
            target_size=opts.sds_target_size,
            vae_keep=opts.sds_vae_keep,
            cuda_graph=opts.sds_cuda_graph,
            **mvvdm,
        ),
        "mesh-animate": lambda: mesh_animate.MeshAnimateOptions(
            motion=motion,  # type: ignore[arg-type]
            max_texture_size=opts.max_texture_size,
        ),
        "export": lambda: export.ExportOptions(motion=motion, size=opts.preview_size),  # type: ignore[arg-type]
    }
    modules = {
        "orbit": orbit,
        "lift": lift,
        "prepare": prepare,
        "mvvideo": mvvideo,
        "reconstruct": reconstruct,
        "sds": sds,
        "mesh-animate": mesh_animate,
        "export": export,
    }
    calls: dict[str, Callable[[Runtime], StageResult]] = {}
    for name in plan.stages:
        try:
            stage_opts = builders[name]()  # validate every stage's options before anything runs
        except OptionError as exc:  # the stage names its own flag; the user typed animate's
            raise OptionError(_animate_flags(exc.message, name), hint=exc.hint) from None
        calls[name] = lambda rt, m=modules[name], o=stage_opts: m.run(run_dir, o, rt)
    return calls


ANIMATE_FLAGS: dict[str, dict[str, str]] = {
    "orbit": {"--steps": "--orbit-steps", "--model": "--sv3d-model", "--checkpoint": "--sv3d-checkpoint"},
    "lift": {"--steps": "--lift-steps", "--resolution": "--lift-resolution"},
    "reconstruct": {"--steps": "--reconstruct-steps"},
    "sds": {"--steps": "--sds-steps", "--target-size": "--sds-target-size"},
    "export": {"--size": "--preview-size"},
}
"""A stage's flag → the `a3d animate` flag that sets it, where the two differ."""


def _animate_flags(message: str, stage: str) -> str:
    """`message` (a stage's option error) with the stage's flags named as `a3d animate` spells them."""
    names = ANIMATE_FLAGS.get(stage, {})
    return re.sub(r"--[a-z0-9-]+", lambda m: names.get(m.group(0), m.group(0)), message)


def _check_image_input(opts: AnimateOptions) -> None:
    """An image input exists and opens, and the SV3D weights resolve unless `orbit` replaces SV3D (else exit 2 now)."""
    from a3d_cli.io.images import open_image, require_image_file

    image = Path(opts.model).expanduser()
    require_image_file(image)
    with open_image(image, str(image)):  # the header only: an unreadable image is refused before the weights
        pass
    if opts.orbit is not None:
        if not Path(opts.orbit).expanduser().is_dir():
            raise InputError(f"The orbit folder {opts.orbit} does not exist.")
        return
    from a3d_cli.weights import resolve

    explicit = Path(opts.sv3d_checkpoint).expanduser() if opts.sv3d_checkpoint else None
    resolve(opts.sv3d_model, explicit, option="--sv3d-checkpoint")


class ChainProgress(Progress):
    """Prefixes each phase with the stage's place in the chain ("[3/6] reconstruct: …") for one display."""

    def __init__(self, inner: Progress, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def start(self, description: str, total: int | None = None) -> None:
        self.inner.start(f"{self.prefix} {description}", total)

    def update(self, advance: int = 1, **fields: float) -> None:
        self.inner.update(advance, **fields)

    def log(self, message: str) -> None:
        self.inner.log(message)


@dataclass
class AnimateResult:
    """What `animate` did: the results of the stages it ran (or skipped as up to date) and its notices."""

    results: list[StageResult] = field(default_factory=list)
    notices: tuple[str, ...] = ()


def preflight(opts: AnimateOptions) -> ChainPlan:
    """The chain plan for `opts` after the checks that need no run folder: the input file and its kind (an
    image input's header and orbit options too), the frame names of a `video` folder (no pixels read), the MV-VDM weights. `a3d batch` runs this for every job
    before any job starts.

    Raises:
        InputError / WeightsMissing: what `plan_chain`, the input check and the video check raise.
    """
    from a3d_cli.io.video_frames import list_video_frames
    from a3d_cli.mesh.load import detect_kind
    from a3d_cli.models.mvvdm.weights import explicit_weights, mvvdm_weights_missing

    image_input = is_image_input(opts.model)
    if image_input:
        _check_image_input(opts)
        mesh_input = True
    else:
        mesh_input = detect_kind(Path(opts.model).expanduser()) == "mesh"
    if opts.video is not None:
        list_video_frames(Path(opts.video).expanduser())
    needs_check = not opts.tiny_model and (opts.video is None or opts.sds is not False)
    missing = mvvdm_weights_missing(explicit_weights(opts)) if needs_check else []
    return plan_chain(opts, mesh_input, missing, image_input)


def run(run_dir: Path, opts: AnimateOptions, rt: Runtime | None = None) -> AnimateResult:
    """Run the chain in `run_dir`, resuming where a previous run of the same command stopped.

    Args:
        run_dir: the run folder (created when missing).
        opts: animate options.
        rt: device, seed, force (re-runs every stage), progress.

    Returns:
        `AnimateResult` with one StageResult per stage in the plan, in order.

    Raises:
        OptionError / InputError / WeightsMissing: before any stage runs (pre-flight).
    """
    from a3d_cli.io.runlock import run_lock

    rt = rt or Runtime()
    plan = preflight(opts)  # 0. the input, the weights — before anything is written
    out = AnimateResult(notices=plan.notices)
    # a folder this call makes is removed again unless a stage finished in it
    with created_folders_removed_on_failure(Path(run_dir), keep=lambda: bool(out.results)):
        calls = stage_calls(opts, plan, Path(run_dir))  # every stage's options are checked here
        run_dir = ensure_run_dir(Path(run_dir))
        with run_lock(run_dir):  # one process drives the whole chain
            inner = rt.progress or Progress()
            for notice in plan.notices:
                inner.log(notice)
            for i, call in enumerate(calls.values()):
                chain_progress = ChainProgress(inner, f"[{i + 1}/{len(calls)}]")
                out.results.append(call(dataclasses.replace(rt, progress=chain_progress)))
            if plan.mesh_input and "mesh-animate" not in plan.stages:  # --splats: no GLB of another motion stays
                exported = MOTION_FILES["refined" if "sds" in plan.stages else "coarse"]
                removed = remove_outdated_outputs(run_dir, "mesh-animate", made_from=[exported])
                if removed:
                    inner.log(f"mesh-animate: removed {', '.join(removed)} of an earlier run (another motion; --splats)")
    return out


__all__ = [
    "IMAGE_SUFFIXES",
    "AnimateOptions",
    "AnimateResult",
    "ChainPlan",
    "ChainProgress",
    "is_image_input",
    "plan_chain",
    "preflight",
    "run",
    "stage_calls",
]
