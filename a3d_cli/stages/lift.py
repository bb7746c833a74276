"""`lift`: an orbit of views with known cameras (what `a3d orbit` writes) → static splats + a textured mesh.

Reads `RUN/orbit/` (or any folder in the same layout, `--orbit DIR`) and writes into RUN (formats in
docs/lift.md and docs/ARTIFACTS.md):

    lift/gaussians.ply     the fitted static splats, standard 3DGS PLY, in the orbit's frame (+Y up, front +Z)
    lift/model.glb         the textured mesh (glTF 2.0 binary, one primitive, baseColorTexture), same frame
    lift/preview.mp4       a turntable: splats (left) | mesh (right)
    lift/masks/mask_XX.png the foreground masks the fit used (after the opacity refinement)

Both outputs feed `a3d prepare` as they are. The domain work is `a3d_cli.lift.pipeline.lift`, and the
turntable `a3d_cli.lift.preview.lift_turntable`.

Examples:
    >>> run(Path("RUN"), LiftOptions())  # doctest: +SKIP
    >>> run(Path("RUN"), LiftOptions(orbit="my_turntable/"), Runtime(device="cuda"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from a3d_cli.errors import OptionError, require_finite_options
from a3d_cli.run_layout import CAMERAS_JSON, LIFT_DIR, LIFT_MODEL, LIFT_PLY, LIFT_PREVIEW, ORBIT_DIR, lift_mask
from a3d_cli.stages import producers
from a3d_cli.stages.base import Runtime, StageContext, StageResult, run_stage

RECIPE = 3
"""The version of what `lift` writes for given inputs and options: bump it with any change that alters
those files, so runs made before re-run `lift` once (docs/ARCHITECTURE.md, "Recipes")."""
# Defaults that depend on the device: (CUDA, CPU). The CPU ones keep a 21-view lift within minutes.
_DEVICE_DEFAULTS = {
    "resolution": (576, 256),
    "steps": (2000, 400),
    "views_per_step": (0, 4),
    "max_splats": (100_000, 20_000),
    "hull_resolution": (160, 96),
    "mesh_resolution": (384, 192),
    "mesh_level": (0.0, 0.2),  # the CPU fit's 400 steps leave the fused surface inside the true one (docs/PERF.md)
    "texture_size": (1024, 512),
    "preview_size": (384, 256),
}


MESH_RESOLUTION_MAX = 512
"""Most TSDF voxels per axis a default grows to (`_floors`): fusion, marching cubes and simplification
grow with the grid."""


def _floors(resolution: int) -> dict[str, int]:
    """Lower bounds of the size-like defaults for a fit size: the TSDF grows with the fit.

    At least two voxels per three fit pixels (rounded up to a multiple of 32, at most
    `MESH_RESOLUTION_MAX`): the grid spans `scene_radius`, 1.1 times the views' half-width at the
    origin, so a voxel is then about 1.65 fit pixels wide. Coarser voxels round off the silhouettes and
    thin parts the fit resolves, and the textured mesh loses what the splats gained (docs/PERF.md).
    """
    return {"mesh_resolution": min(MESH_RESOLUTION_MAX, -(-2 * resolution // 96) * 32)}


def _caps(resolution: int) -> dict[str, int]:
    """Upper bounds of the size-like defaults for a fit size (at the default sizes they do not bind)."""
    return {
        "max_splats": max(100, resolution * resolution // 3),
        "hull_resolution": max(16, resolution // 2),
        "mesh_resolution": max(16, 2 * resolution),  # finer than the fit keeps thin parts and crisp outlines
        "texture_size": max(32, 2 * resolution),
        "preview_size": max(32, resolution),
    }


@dataclass(frozen=True)
class LiftOptions:
    """Options of `a3d lift` (None = the device's default, see `_DEVICE_DEFAULTS`; resolved before running).

    Attributes:
        orbit: a folder of frames + cameras.json to lift instead of RUN/orbit/.
        resolution: fit size in pixels (views are resized).
        steps: optimisation steps of the splat fit.
        views_per_step: views rendered per step (0 = all).
        max_splats: splats the fit starts from.
        hull_resolution: voxels per axis of the visual hull.
        hull_tolerance: views allowed to call a hull voxel background.
        white_threshold: max-channel distance from white above which a pixel is object (frames without alpha);
            None = measured from the frames' background (`lift.masks.measured_threshold`).
        mesh_resolution: TSDF voxels per axis.
        max_faces: face budget of the mesh.
        open_undersides: open the hidden space under overhangs (`lift.meshing.open_undersides`).
        mesh_smoothing: Taubin passes over the marching-cubes surface (`lift.meshing.smooth_surface`); 0 keeps
            it as marching cubes made it; None = the default (`lift.meshing.SMOOTHING_PASSES`, every device).
        mesh_level: voxels outside the TSDF's zero level that the surface is taken at (`MeshSettings.level`).
        unseen_radius: the bake colours the surface no view saw from the seen surface within this fraction of
            the scene's half-width (`lift.unseen`); 0 bakes the fitted splats' colours; None = the default.
        texture_size: texture width and height.
        preview_size: height of the turntable (its width is twice that).
        preview_frames: frames of the turntable.
        fps: its frame rate.
    """

    orbit: str | None = None
    resolution: int | None = None
    steps: int | None = None
    views_per_step: int | None = None
    max_splats: int | None = None
    hull_resolution: int | None = None
    hull_tolerance: int = 1
    white_threshold: float | None = None
    mesh_resolution: int | None = None
    max_faces: int = 40_000
    open_undersides: bool = True
    mesh_smoothing: int | None = None
    mesh_level: float | None = None
    unseen_radius: float | None = None
    texture_size: int | None = None
    preview_size: int | None = None
    preview_frames: int = 48
    fps: float = 12.0

    def __post_init__(self) -> None:
        require_finite_options(self)
        checks = [
            (self.resolution, 32, 2048, "--resolution"),
            (self.steps, 0, 100_000, "--steps"),
            (self.views_per_step, 0, 512, "--views-per-step"),
            (self.max_splats, 100, 5_000_000, "--max-splats"),
            (self.hull_resolution, 16, 512, "--hull-resolution"),
            (self.hull_tolerance, 0, 64, "--hull-tolerance"),
            (self.mesh_resolution, 16, 768, "--mesh-resolution"),
            (self.max_faces, 200, 2_000_000, "--max-faces"),
            (self.mesh_smoothing, 0, 200, "--mesh-smoothing"),
            (self.texture_size, 32, 8192, "--texture-size"),
            (self.preview_size, 32, 2048, "--preview-size"),
            (self.preview_frames, 2, 720, "--preview-frames"),
        ]
        for value, lo, hi, name in checks:
            if value is not None and not lo <= value <= hi:
                raise OptionError(f"{name} must be between {lo} and {hi} (got {value}).")
        if self.unseen_radius is not None and not (self.unseen_radius == 0.0 or 0.05 <= self.unseen_radius <= 2.0):
            raise OptionError(f"--unseen-radius must be 0 or between 0.05 and 2 (got {self.unseen_radius}).")
        if self.mesh_level is not None and not -1.0 <= self.mesh_level <= 1.0:
            raise OptionError(f"--mesh-level must be between -1 and 1 voxel (got {self.mesh_level}).")
        if self.white_threshold is not None and not 0.0 < self.white_threshold < 0.5:
            raise OptionError(f"--white-threshold must be in (0, 0.5) (got {self.white_threshold}).")
        if not 0.0 < self.fps <= 120.0:
            raise OptionError(f"--fps must be in (0, 120] (got {self.fps}).")

    def resolved(self, device: str) -> LiftOptions:
        """A copy with every None replaced by the default for `device`.

        A `resolution` below the device's default scales the size-like defaults down with it (they never
        exceed their cap for that fit size, `_caps`), so a small quick lift is small throughout; one above
        it scales the TSDF up (`_floors`), so its voxels stay near the fit's pixels.
        """
        pick = 0 if device.startswith("cuda") else 1
        res = self.resolution if self.resolution is not None else _DEVICE_DEFAULTS["resolution"][pick]
        caps, floors = _caps(res), _floors(res)
        values = {
            k: min(max(v[pick], floors.get(k, 0)), caps.get(k, v[pick]))
            for k, v in _DEVICE_DEFAULTS.items()
            if getattr(self, k) is None
        }
        return dataclasses.replace(self, **values)

    def settings(self):  # noqa: ANN201 - a LiftSettings (imported lazily)
        """The domain settings of a resolved options object (`white_threshold` None: the fixed default;
        `run` measures it from the frames first)."""
        from a3d_cli.lift.fit import LiftFitSettings
        from a3d_cli.lift.masks import WhiteMaskOptions
        from a3d_cli.lift.meshing import MeshSettings
        from a3d_cli.lift.pipeline import LiftSettings

        assert self.resolution is not None and self.mesh_resolution is not None  # resolved
        return LiftSettings(
            resolution=self.resolution,
            hull_resolution=self.hull_resolution,  # type: ignore[arg-type]
            hull_tolerance=self.hull_tolerance,
            max_splats=self.max_splats,  # type: ignore[arg-type]
            fit=LiftFitSettings(steps=self.steps, views_per_step=self.views_per_step),  # type: ignore[arg-type]
            masks=WhiteMaskOptions() if self.white_threshold is None else WhiteMaskOptions(self.white_threshold),
            mesh=MeshSettings(
                resolution=self.mesh_resolution,
                depth_size=max(self.resolution, 2 * self.mesh_resolution),
                max_faces=self.max_faces,
                open_undersides=self.open_undersides,
                level=self.mesh_level,  # type: ignore[arg-type]
                **({} if self.mesh_smoothing is None else {"smoothing": self.mesh_smoothing}),
            ),
            texture_size=self.texture_size,  # type: ignore[arg-type]
            **({} if self.unseen_radius is None else {"unseen_radius": self.unseen_radius}),
        )


def orbit_source(run_dir: Path, opts: LiftOptions) -> tuple[Path, bool]:
    """The folder to lift and whether it lies outside RUN (then it is digested as an external input)."""
    from a3d_cli.io.paths import resolve_inside

    if opts.orbit is not None:
        return Path(opts.orbit).expanduser(), True
    return resolve_inside(Path(run_dir), ORBIT_DIR), False


def run(run_dir: Path, opts: LiftOptions, rt: Runtime | None = None) -> StageResult:
    """Lift the orbit into splats and a textured mesh under the run-folder contract.

    The views and cameras are read and checked before the run folder is touched, so bad input (missing
    frames, a camera count that differs from the frame count, empty masks) fails with one message and
    leaves nothing behind.

    Raises:
        InputError: bad frames or cameras.
        RunFolderError: no RUN/orbit/ (and no --orbit).
    """
    from a3d_cli.errors import RunFolderError
    from a3d_cli.lift.masks import check_masks, measured_threshold, view_masks
    from a3d_cli.lift.views import load_views

    rt = rt or Runtime()
    opts = opts.resolved(rt.device)
    source, external = orbit_source(Path(run_dir), opts)
    if not external and not source.is_dir():
        raise RunFolderError(
            f"The run folder {run_dir} has no orbit/.",
            hint=f"Run `{producers.ORBIT}` first, or pass --orbit DIR (frames + {CAMERAS_JSON}).",
        )
    views = load_views(source)
    if opts.white_threshold is None and views.alphas is None:
        opts = dataclasses.replace(opts, white_threshold=measured_threshold(views.images))
    masks = view_masks(views.images, views.alphas, opts.settings().masks)
    check_masks(masks, views.names)

    def body(ctx: StageContext) -> None:
        _lift(ctx, views, masks, opts)

    return run_stage(
        "lift",
        Path(run_dir),
        opts,
        body,
        rt,
        requires={} if external else {ORBIT_DIR: producers.ORBIT},
        external_inputs=(source,) if external else (),
        clear=(LIFT_DIR,),
        recipe=RECIPE,
    )


def _lift(ctx: StageContext, views, masks, opts: LiftOptions) -> None:  # noqa: ANN001 - OrbitViews, [V, S, S]
    from a3d_cli.gaussians.ply import write_ply
    from a3d_cli.io.images import save_png
    from a3d_cli.lift.pipeline import lift
    from a3d_cli.lift.preview import lift_turntable
    from a3d_cli.mesh.store import save_processed_mesh

    if not views.camera_input:
        ctx.progress.log("the orbit's cameras are nominal (sv3d_u was not told them); the lift trusts them anyway")
    result = lift(views, opts.settings(), device=ctx.device, seed=ctx.seed, progress=ctx.progress, masks=masks)
    write_ply(ctx.output(LIFT_PLY), result.gaussians)
    save_processed_mesh(ctx.output(LIFT_MODEL), result.mesh)
    for i, m in enumerate(result.masks):
        save_png(ctx.output(lift_mask(i)), m[..., None])
    ctx.progress.start("lift: preview", total=None)
    frames, preview_seconds = lift_turntable(result, opts.preview_size or 0, opts.preview_frames, device=ctx.device)
    ctx.write_video(LIFT_PREVIEW, frames, fps=opts.fps)
    seconds = {k: round(v, 3) for k, v in {**result.seconds, "preview": preview_seconds}.items()}
    ctx.metrics.update(
        views=len(views),
        fit_size=int(result.renders.shape[1]),
        splats=len(result.gaussians),
        hull_splats=len(result.hull_gaussians),
        unseen_splats=result.unseen_splats,
        vertices=result.mesh.num_vertices,
        faces=result.mesh.num_faces,
        texture_size=int(result.mesh.texture.shape[0]),  # type: ignore[union-attr]
        psnr_per_view=[round(float(p), 3) for p in result.view_psnr],
        psnr_mean=round(float(result.view_psnr.mean()), 3),
        mask_iou_per_view=[round(float(p), 4) for p in result.mask_iou],
        mask_iou_mean=round(float(result.mask_iou.mean()), 4),
        seconds_per_phase=seconds,
        camera_input=views.camera_input,
        white_threshold=None if views.alphas is not None else opts.white_threshold,
    )


__all__ = ["LiftOptions", "orbit_source", "run"]
