"""Every file name of a run folder, named once: the interface between the stages (docs/ARTIFACTS.md).

Stages read and write a run folder only through these relative paths; library code that takes a run
folder (`a3d_cli.gaussians.motion_run`) uses them too. The bookkeeping files have their names beside the
code that owns them: the manifest (`a3d_cli.io.manifest.MANIFEST_NAME`), the lock
(`a3d_cli.io.runlock.LOCK_NAME`) and the staging folder (`a3d_cli.stages.base.STAGING_DIR`).

Examples:
    >>> mvvideo_frame(2, 7)
    'mvvideo/v2_f07.png'
    >>> MOTION_FILES["coarse"]
    'motion/coarse.safetensors'
"""

from __future__ import annotations

from typing import Literal

CAMERAS_JSON = "cameras.json"
"""The cameras file inside a folder of views or frames (`static/views/`, `mvvideo/`, `orbit/`, a `--video` or
`--orbit` folder): `CameraSet.to_json`, plus what the folder's writer adds (docs/ARTIFACTS.md)."""

# -- source/ (prepare) ------------------------------------------------------------------------------------
SOURCE_ORIGINAL_DIR = "source/original"
"""The input as given (with its side files)."""
NORMALIZATION_JSON = "source/normalization.json"
"""Original → normalized frame (`a3d_cli.mesh.normalize.Normalization`)."""
PROCESSED_MESH = "source/mesh.glb"
"""Mesh inputs: the processed mesh, vertex order = the binding's, normalized frame."""

# -- static/ (prepare) ------------------------------------------------------------------------------------
STATIC_PLY = "static/gaussians.ply"
"""The static 3DGS every later stage moves."""
BINDING = "static/binding.safetensors"
"""Mesh inputs: the splat ↔ vertex binding (`a3d_cli.mesh.binding.MeshBinding`)."""
VIEWS_DIR = "static/views"
"""The 4 conditioning views of MV-VDM."""
VIEWS_CAMERAS = f"{VIEWS_DIR}/{CAMERAS_JSON}"
"""Their cameras (`CameraSet.to_json`)."""
VIEWS_CONTACT_SHEET = f"{VIEWS_DIR}/contact_sheet.png"
"""The 4 grey views side by side with captions, for a person to check the orientation at a glance."""


def view_png(view: int, grey: bool = False) -> str:
    """A conditioning view: RGBA (`grey=False`) or RGB on MV-VDM's grey (`grey=True`)."""
    return f"{VIEWS_DIR}/view_{view}{'_grey' if grey else ''}.png"


# -- mvvideo/ (mvvideo) -----------------------------------------------------------------------------------
MVVIDEO_DIR = "mvvideo"
"""The multi-view video: 4 views × 16 frames."""
MVVIDEO_FRAME_NAME = "v{view}_f{frame:02d}.png"
"""File name pattern of one frame inside a video folder (also for `a3d reconstruct --video DIR`)."""
MVVIDEO_CAMERAS = f"{MVVIDEO_DIR}/{CAMERAS_JSON}"
"""The video's cameras, frame count, fps and naming."""
MVVIDEO_PREVIEW = f"{MVVIDEO_DIR}/preview.mp4"
"""The 4 views side by side."""


def mvvideo_frame_name(view: int, frame: int) -> str:
    """File name of one video frame inside its folder, e.g. ``v0_f00.png``."""
    return MVVIDEO_FRAME_NAME.format(view=view, frame=frame)


def mvvideo_frame(view: int, frame: int) -> str:
    """Run-folder path of one frame of the multi-view video."""
    return f"{MVVIDEO_DIR}/{mvvideo_frame_name(view, frame)}"


# -- motion/ (reconstruct, sds) ---------------------------------------------------------------------------
COARSE_MOTION = "motion/coarse.safetensors"
"""The motion field fitted to the video (`a3d_cli.gaussians.motion_io` format)."""
COARSE_PREVIEW = "motion/coarse_preview.mp4"
"""Targets above renders, per frame."""
REFINED_MOTION = "motion/refined.safetensors"
"""The SDS-refined motion field (same format)."""
REFINED_PREVIEW = "motion/refined_preview.mp4"
"""The refined motion from the 4 fixed views."""
MotionKind = Literal["coarse", "refined"]
MOTION_FILES: dict[str, str] = {"coarse": COARSE_MOTION, "refined": REFINED_MOTION}
"""Motion kind → its file."""

# -- export/ (mesh-animate, export) -----------------------------------------------------------------------
EXPORT_GLB = "export/animated.glb"
"""The animated mesh (morph targets), original frame."""
EXPORT_VERTICES = "export/vertices.npy"
"""float32 [F, V, 3] vertex positions per frame, original frame."""
EXPORT_SPLATS_DIR = "export/gaussians"
"""The per-frame 3DGS PLY sequence."""
EXPORT_SEQUENCE = f"{EXPORT_SPLATS_DIR}/sequence.json"
"""fps, frame indices and times, coordinate frame of the PLY sequence."""
EXPORT_PREVIEW = "export/preview.mp4"
"""An orbit around the animated splats."""


def export_splat_frame_name(frame: int) -> str:
    """File name of one PLY of the sequence inside its folder, e.g. ``frame_0007.ply``."""
    return f"frame_{frame:04d}.ply"


def export_splat_frame(frame: int) -> str:
    """Run-folder path of one PLY of the exported sequence."""
    return f"{EXPORT_SPLATS_DIR}/{export_splat_frame_name(frame)}"


# -- orbit/ (orbit; a run folder of its own) --------------------------------------------------------------
ORBIT_DIR = "orbit"
"""SV3D's orbit: input, frames, video, cameras."""
ORBIT_INPUT = f"{ORBIT_DIR}/input.png"
"""The conditioning image: the object recentred on white, at the model's size."""
ORBIT_VIDEO = f"{ORBIT_DIR}/orbit.mp4"
"""The orbit frames as a video, in SV3D's order."""
ORBIT_INPUT_FIRST_DIR = f"{ORBIT_DIR}/input_first"
"""The same frames rolled so frame_00 is the input view."""


def orbit_frame(frame: int, input_first: bool = False) -> str:
    """Run-folder path of one orbit frame, in SV3D's order or rolled to start at the input view."""
    return f"{ORBIT_INPUT_FIRST_DIR if input_first else ORBIT_DIR}/frame_{frame:02d}.png"


def orbit_cameras_json(input_first: bool = False) -> str:
    """Run-folder path of the orbit's cameras, in SV3D's order or rolled to start at the input view."""
    return f"{ORBIT_INPUT_FIRST_DIR if input_first else ORBIT_DIR}/{CAMERAS_JSON}"


# -- lift/ (lift: an orbit → a static 3D asset) -----------------------------------------------------------
LIFT_DIR = "lift"
"""The lifted asset: splats, textured mesh, turntable, masks."""
LIFT_PLY = f"{LIFT_DIR}/gaussians.ply"
"""The fitted static splats, standard 3DGS PLY, in the orbit's frame."""
LIFT_MODEL = f"{LIFT_DIR}/model.glb"
"""The textured mesh; `a3d animate IMAGE` runs prepare on it."""
LIFT_PREVIEW = f"{LIFT_DIR}/preview.mp4"
"""A turntable: splats (left) | mesh (right)."""
LIFT_MASKS_DIR = f"{LIFT_DIR}/masks"
"""The foreground masks the fit used, one PNG per view."""


def lift_mask(view: int) -> str:
    """Run-folder path of the foreground mask of one orbit view, e.g. ``lift/masks/mask_03.png``."""
    return f"{LIFT_MASKS_DIR}/mask_{view:02d}.png"


__all__ = [
    "BINDING",
    "CAMERAS_JSON",
    "COARSE_MOTION",
    "COARSE_PREVIEW",
    "EXPORT_GLB",
    "EXPORT_PREVIEW",
    "EXPORT_SEQUENCE",
    "EXPORT_SPLATS_DIR",
    "EXPORT_VERTICES",
    "LIFT_DIR",
    "LIFT_MASKS_DIR",
    "LIFT_MODEL",
    "LIFT_PLY",
    "LIFT_PREVIEW",
    "MOTION_FILES",
    "MVVIDEO_CAMERAS",
    "MVVIDEO_DIR",
    "MVVIDEO_FRAME_NAME",
    "MVVIDEO_PREVIEW",
    "NORMALIZATION_JSON",
    "ORBIT_DIR",
    "ORBIT_INPUT",
    "ORBIT_INPUT_FIRST_DIR",
    "ORBIT_VIDEO",
    "PROCESSED_MESH",
    "REFINED_MOTION",
    "REFINED_PREVIEW",
    "SOURCE_ORIGINAL_DIR",
    "STATIC_PLY",
    "VIEWS_CAMERAS",
    "VIEWS_CONTACT_SHEET",
    "VIEWS_DIR",
    "MotionKind",
    "export_splat_frame",
    "export_splat_frame_name",
    "lift_mask",
    "mvvideo_frame",
    "mvvideo_frame_name",
    "orbit_cameras_json",
    "orbit_frame",
    "view_png",
]
