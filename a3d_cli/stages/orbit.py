"""`orbit`: one object image → a 21-frame SV3D orbit video, its frames and cameras.

Writes into RUN (formats in docs/orbit.md and docs/ARTIFACTS.md):

    orbit/input.png                    the conditioning image: object recentred on white, model size
    orbit/frame_00.png … frame_20.png  the orbit in SV3D's reference order: the input view is frame_20
                                       (azimuth 0), frame_00 … frame_19 go round in 360°/21 steps
    orbit/orbit.mp4                    the same frames as an H.264 video
    orbit/cameras.json                 a3d cameras of those frames (OpenCV c2w, +Y up; radius 2, fov 33.8°)
    orbit/input_first/frame_00.png …   the same frames re-ordered so frame_00 is the input view
    orbit/input_first/cameras.json     and their cameras in that order

Examples:
    >>> run(Path("RUN"), OrbitOptions(image="chair.png", model="sv3d_p", elevation=(10.0,)))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from a3d_cli.errors import OptionError, require_finite_options
from a3d_cli.run_layout import ORBIT_DIR, ORBIT_INPUT, ORBIT_VIDEO, orbit_cameras_json, orbit_frame
from a3d_cli.stages.base import Runtime, StageContext, StageResult, run_stage

if TYPE_CHECKING:
    from a3d_cli.models.speed.acceleration import AccelerationReport
    from a3d_cli.models.sv3d.loading import LoadedSV3D

Model = Literal["sv3d_u", "sv3d_p"]
DType = Literal["auto", "fp32", "bf16", "fp16"]
RECIPE = 2
"""The version of what `orbit` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `orbit` once (docs/ARCHITECTURE.md, "Recipes")."""
NUM_FRAMES = 21
#: What `--dtype auto` means on CUDA (off CUDA it is fp32): the one place to change this stage's default.
#: fp16, the reference's precision (Stability's simple_video_sample.py samples under fp16 autocast): chosen
#: from docs/PERF.md's precision table (`benchmarks/bench_precision.py`, `benchmarks/bench_orbit.py`).
DEFAULT_CUDA_DTYPE = "fp16"


@dataclass(frozen=True)
class OrbitOptions:
    """Options of `a3d orbit`.

    Attributes:
        image: the input image (a PNG with transparency is best; see docs/orbit.md).
        model: "sv3d_p" (follows the given cameras) or "sv3d_u" (fixed orbit, no camera input).
        checkpoint: explicit checkpoint file; None resolves the model through `a3d_cli.weights`.
        checkpoint_stamp: size and modification time of the resolved checkpoint; filled in by `run` so
            that a replaced file re-runs the stage without hashing 9 GB.
        steps: Euler sampling steps (50 as in the reference).
        cfg: per-frame guidance schedule: "triangular" (SV3D) or "linear" (SVD's ramp, for comparison).
        cfg_min / cfg_max: smallest and largest guidance scale.
        elevation: one elevation for every frame, or 21 (one per frame), degrees, absolute (sv3d_u: the
            assumed elevation of the input view, used for cameras.json only).
        azimuths: 21 azimuths in degrees (any origin; the last one is the input view), or None for the
            reference's even orbit (sv3d_p only).
        orbit: "static" (even azimuths) or "dynamic" (smooth random elevation and azimuth, seeded; sv3d_p).
        frame_ratio: object size / frame size after recentring; None: the reference's framing (square side =
            image height).
        matte: how the object is found: "auto", "alpha", "uniform" or "rembg" (optional extra).
        noise_aug: noise added to the conditioning image, also fed to the model (1e-5 as the reference).
        decode_chunk: frames decoded at once (memory only; results are identical).
        dtype: UNet and CLIP precision: "auto" (`DEFAULT_CUDA_DTYPE` on CUDA, fp32 on CPU), "fp32", "bf16",
            "fp16".
            The VAE always runs in fp32.
        offload: keep networks on the CPU while idle (for GPUs with little memory; slower).
        replace_input_frame: overwrite the generated input view (frame_20) with the input image, as the
            reference script does.
        fps: frame rate of orbit.mp4.
        compile: on CUDA, compile the repeated blocks of the UNet and the VAE decoder, run them
            channels-last, fold each upsampling into its convolution and run each GEGLU as one GEMM
            (`a3d_cli.models.speed.acceleration`):
            faster steps after a one-off compilation on the first run (cached on disk afterwards). Ignored
            on CPU.
    """

    image: str
    model: Model = "sv3d_p"
    checkpoint: str | None = None
    checkpoint_stamp: str = ""
    steps: int = 50
    cfg: Literal["triangular", "linear"] = "triangular"
    cfg_min: float = 1.0
    cfg_max: float = 2.5
    elevation: tuple[float, ...] = (10.0,)
    azimuths: tuple[float, ...] | None = None
    orbit: Literal["static", "dynamic"] = "static"
    frame_ratio: float | None = None
    matte: Literal["auto", "alpha", "uniform", "rembg"] = "auto"
    noise_aug: float = 1e-5
    decode_chunk: int = 3
    dtype: DType = "auto"
    offload: bool = False
    replace_input_frame: bool = True
    fps: float = 10.0
    compile: bool = False

    def __post_init__(self) -> None:
        require_finite_options(self)  # comparisons below cannot see NaN or an infinite bound
        if self.model not in ("sv3d_u", "sv3d_p"):
            raise OptionError(f"--model must be sv3d_u or sv3d_p (got {self.model}).")
        if not 1 <= self.steps <= 1000:
            raise OptionError(f"--steps must be between 1 and 1000 (got {self.steps}).")
        if self.cfg not in ("triangular", "linear"):
            raise OptionError(f"--cfg must be triangular or linear (got {self.cfg}).")
        if not 0.0 <= self.cfg_min <= self.cfg_max:
            raise OptionError(f"Need 0 ≤ --cfg-min ≤ --cfg-max (got {self.cfg_min} and {self.cfg_max}).")
        if len(self.elevation) not in (1, NUM_FRAMES):
            raise OptionError(
                f"--elevation takes 1 value or {NUM_FRAMES} (one per frame), got {len(self.elevation)}.",
                hint='Pass one number (--elevation 10) or 21 comma-separated numbers (--elevation "0,2,4,…").',
            )
        if any(not -90.0 < e < 90.0 for e in self.elevation):
            raise OptionError(
                f"--elevation values must lie strictly between -90 and 90 degrees (got {list(self.elevation)})."
            )
        if self.azimuths is not None and len(self.azimuths) != NUM_FRAMES:
            raise OptionError(
                f"--azimuths takes {NUM_FRAMES} values (one per frame, the last is the input view), got {len(self.azimuths)}."
            )
        if self.orbit not in ("static", "dynamic"):
            raise OptionError(f"--orbit must be static or dynamic (got {self.orbit}).")
        if self.orbit == "dynamic" and (self.azimuths is not None or len(self.elevation) != 1):
            raise OptionError("--orbit dynamic makes its own cameras; it takes one --elevation and no --azimuths.")
        if self.model == "sv3d_u" and (
            self.azimuths is not None or self.orbit == "dynamic" or len(self.elevation) != 1
        ):
            raise OptionError(
                "sv3d_u has no camera input: --azimuths, --orbit dynamic and per-frame elevations need sv3d_p.",
                hint="Pass --model sv3d_p.",
            )
        if self.frame_ratio is not None and not 0.0 < self.frame_ratio <= 1.0:
            raise OptionError(f"--frame-ratio must be in (0, 1] (got {self.frame_ratio}).")
        if self.matte not in ("auto", "alpha", "uniform", "rembg"):
            raise OptionError(f"--matte must be auto, alpha, uniform or rembg (got {self.matte}).")
        if not 0.0 <= self.noise_aug <= 1.0:
            raise OptionError(f"--noise-aug must be in [0, 1] (got {self.noise_aug}).")
        if self.decode_chunk < 1:
            raise OptionError(f"--decode-chunk must be at least 1 (got {self.decode_chunk}).")
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise OptionError(f"--dtype must be auto, fp32, bf16 or fp16 (got {self.dtype}).")
        if not 0.0 < self.fps <= 120.0:
            raise OptionError(f"--fps must be in (0, 120] (got {self.fps}).")


def _make_orbit(opts: OrbitOptions, seed: int):  # noqa: ANN202
    from a3d_cli.models.sv3d import cameras

    if opts.orbit == "dynamic":
        return cameras.dynamic_orbit(seed, opts.elevation[0])
    if opts.azimuths is not None:
        return cameras.custom_orbit(opts.elevation, opts.azimuths)
    return cameras.static_orbit(opts.elevation)


def _cameras_json(orbit, size: int, order: str, input_frame: int, model: str) -> str:  # noqa: ANN001
    from a3d_cli.models.sv3d.cameras import orbit_camera_set

    data = orbit_camera_set(orbit).to_json(size, size)
    data.update(order=order, input_frame=input_frame, model=model, camera_input=model == "sv3d_p")
    return json.dumps(data, indent=2)


@dataclass
class OrbitModel:
    """SV3D ready to sample: the loaded networks with the stage's speed settings applied to them.

    Attributes:
        loaded: the networks and the account of the checkpoint's keys.
        acceleration: what `SV3DModels.accelerate` changed (reported in every run's metrics).
    """

    loaded: LoadedSV3D
    acceleration: AccelerationReport


def load_model(opts: OrbitOptions, checkpoint: Path, device: str) -> OrbitModel:
    """SV3D from `checkpoint` in the requested precision, accelerated for `device`.

    Built through `a3d_cli.models.cache.cached_model`: a batch worker builds it (and, with `compile`, compiles
    it) once for all its jobs. The key holds the checkpoint file (path, size, modification time: the file is
    what makes sv3d_u and sv3d_p different models), the dtype, the device and whether the blocks are compiled.
    `offload` is not part of it: it only says where the networks rest between calls, and `SV3DPipeline` moves
    them there on every run.

    Raises:
        CheckpointError: the checkpoint is of the other variant than `opts.model` (checked on a cached model
            too, so a job that asks for the wrong variant fails as it would alone, and leaves the cached model).
    """
    from a3d_cli.device import torch_dtype
    from a3d_cli.models.cache import cached_model, model_key
    from a3d_cli.models.speed.acceleration import is_cuda
    from a3d_cli.models.sv3d.loading import check_variant, load_sv3d

    dtype = torch_dtype(opts.dtype, device, cuda_auto=DEFAULT_CUDA_DTYPE)
    compile_blocks = opts.compile and is_cuda(device)  # ignored off CUDA: the same model either way

    def build() -> OrbitModel:
        load_device = "cpu" if opts.offload else device
        loaded = load_sv3d(checkpoint, device=load_device, unet_dtype=dtype, expect=opts.model)
        return OrbitModel(loaded, loaded.models.accelerate(device, compile=compile_blocks))

    model = cached_model(model_key("sv3d", {"sv3d": checkpoint}, dtype, device, compile_blocks), build)
    check_variant(checkpoint, model.loaded.models.variant, opts.model)
    return model


def run(run_dir: Path, opts: OrbitOptions, rt: Runtime | None = None) -> StageResult:
    """Sample an SV3D orbit of `opts.image` and write frames, video and cameras into RUN/orbit/.

    The checkpoint is resolved (and the image checked to exist) before the run folder is touched, so a
    missing model fails fast with the `a3d weights fetch` command to run.

    Examples:
        >>> run(Path("RUN"), OrbitOptions(image="chair.png"), Runtime(device="cuda"))  # doctest: +SKIP
    """
    from a3d_cli.io.images import require_image_file
    from a3d_cli.weights import resolve

    rt = rt or Runtime()
    image_path = Path(opts.image)
    require_image_file(image_path)
    explicit = Path(opts.checkpoint).expanduser() if opts.checkpoint else None
    ckpt = resolve(opts.model, explicit, option="--checkpoint")
    stat = ckpt.stat()
    opts = dataclasses.replace(opts, checkpoint=str(ckpt), checkpoint_stamp=f"{stat.st_size}:{int(stat.st_mtime)}")

    def body(ctx: StageContext) -> None:
        import torch

        from a3d_cli.io.images import save_png, save_pngs
        from a3d_cli.io.preprocess import frame_object
        from a3d_cli.models.guidance import cfg_scales
        from a3d_cli.models.speed.acceleration import configure_cuda, is_cuda
        from a3d_cli.models.sv3d.cameras import Orbit, input_first
        from a3d_cli.models.sv3d.pipeline import SV3DPipeline

        # 1. the input image, matted and framed before the model loads (seconds, or minutes with --compile),
        # so that an image a3d refuses is refused at once
        framed = frame_object(image_path, opts.frame_ratio, opts.matte, notice=ctx.progress.log)

        # 2. the model: loaded and accelerated (regional compilation of the UNet and VAE decoder when asked),
        # or the one this batch worker already built (checks the checkpoint's variant against --model)
        ctx.progress.start("loading SV3D", total=None)
        model = load_model(opts, ckpt, ctx.device)
        loaded, accel = model.loaded, model.acceleration
        config = loaded.models.config
        dtype = next(loaded.models.unet.parameters()).dtype
        ctx.progress.log(f"{ckpt.name}: {loaded.report.summary()}")
        if is_cuda(ctx.device):  # process-wide flags: set for every run (run_stage puts them back afterwards)
            configure_cuda()

        # 3. the input image at the model's size, and the cameras
        obj = framed.at(config.image_size)
        del framed
        ctx.progress.log(f"object mask from {obj.matte}; box {obj.bbox}")
        orbit = _make_orbit(opts, ctx.seed)
        scales = cfg_scales(opts.cfg, config.num_frames, opts.cfg_min, opts.cfg_max)

        # 4. sample (the pipeline and its scheduler are this run's own; the model is shared)
        pipe = SV3DPipeline(loaded.models, device=ctx.device, offload=opts.offload)
        ctx.progress.start("sampling", total=opts.steps)
        image = obj.image.permute(2, 0, 1).contiguous()  # [3, S, S]
        out = pipe(
            image,
            orbit if opts.model == "sv3d_p" else None,
            num_steps=opts.steps,
            cfg=scales,
            noise_aug=opts.noise_aug,
            seed=ctx.seed,
            decode_chunk=opts.decode_chunk,
            replace_input_frame=opts.replace_input_frame,
            callback=lambda step, total: ctx.progress.update(1),
        )

        # 5. write frames, video, cameras (reference order, then input view first)
        frames = out.frames.permute(0, 2, 3, 1)  # [F, S, S, 3]
        last = config.num_frames - 1
        save_png(ctx.output(ORBIT_INPUT), obj.image)
        save_pngs([ctx.output(orbit_frame(i)) for i in range(len(frames))], frames)
        ctx.write_video(ORBIT_VIDEO, frames, fps=opts.fps)
        ctx.output(orbit_cameras_json()).write_text(
            _cameras_json(orbit, config.image_size, "reference: input view last", last, opts.model)
        )
        rolled = Orbit(input_first(orbit.elevation_deg), input_first(orbit.azimuth_deg))
        save_pngs([ctx.output(orbit_frame(i, input_first=True)) for i in range(len(frames))], input_first(frames))
        ctx.output(orbit_cameras_json(input_first=True)).write_text(
            _cameras_json(rolled, config.image_size, "input view first", 0, opts.model)
        )
        ctx.metrics.update(
            model=loaded.models.variant,
            dtype=str(dtype).removeprefix("torch."),
            steps=opts.steps,
            frames=config.num_frames,
            size=config.image_size,
            seconds_encode=round(out.seconds["encode"], 4),
            seconds_sample=round(out.seconds["sample"], 4),
            seconds_decode=round(out.seconds["decode"], 4),
            seconds_per_step=round(out.seconds["sample"] / opts.steps, 4),
            **accel.as_metrics(),
        )
        # a batch worker's cache keeps its own reference; alone, nothing may hold the networks here (on CUDA the
        # speed report's undo handle refers to their blocks), or empty_cache would hand back none of them
        del pipe, loaded, model, accel
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    return run_stage("orbit", run_dir, opts, body, rt, external_inputs=(image_path,), clear=(ORBIT_DIR,), recipe=RECIPE)
