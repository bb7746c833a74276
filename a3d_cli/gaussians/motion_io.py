"""Motion files: a motion field's weights in safetensors, self-described by its metadata.

Layout of `RUN/motion/coarse.safetensors` (and `refined.safetensors`):

* tensors: the `MotionField` state dict (`grids.{level}.{plane}` planes `[C, R_b, R_a]`, heads
  `delta_xyz.*`, `delta_rot.*`, optional `delta_scale.*`, `global_rot.*`, `global_trans.*`), fp32;
* metadata (all strings, as safetensors requires):
  `format` = "a3d.motion", `format_version` = "1", `config` = the `MotionFieldConfig` as JSON,
  `static_digest` = `static_digest()` of the splats the motion was fitted on, `num_gaussians`,
  `fps` (playback rate of the 16 frames), `a3d_version`, and free-form keys a stage adds (`stage`, ...).

So a motion file loads without the run that made it (`load_motion(path)`), and refuses to drive a static
model other than its own (`load_motion(path, static=g)` checks the digest).

Examples:
    >>> save_motion("coarse.safetensors", field, static)            # doctest: +SKIP
    >>> motion = load_motion("coarse.safetensors", static=static)   # doctest: +SKIP
    >>> frame_5 = motion.field.deform(static, 5)                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from a3d_cli import __version__
from a3d_cli.errors import InputError
from a3d_cli.models.mvvdm.shape import FPS
from a3d_cli.run_layout import COARSE_MOTION, REFINED_MOTION

from .container import Gaussians
from .motion_field import MotionField, MotionFieldConfig

MOTION_FORMAT = "a3d.motion"
MOTION_FORMAT_VERSION = "1"
DEFAULT_FPS = FPS  # MV-VDM's frames play at 8 fps


def static_digest(g: Gaussians) -> str:
    """sha256 of the splat geometry a motion acts on: N, then means, quats, scales as fp32 bytes.

    Why geometry only: the field samples at the static means and composes with the static rotations and
    scales; recolouring the splats does not invalidate a motion, moving or replacing them does.
    """
    h = hashlib.sha256()
    h.update(str(len(g)).encode())
    for t in (g.means, g.quats, g.scales):
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class MotionFile:
    """A loaded motion file.

    Attributes:
        field: the motion field (eval mode, on the requested device).
        static_digest: digest of the static splats it was fitted on.
        num_gaussians: N of those splats.
        fps: playback rate of its frames.
        metadata: every metadata entry as stored.
    """

    field: MotionField
    static_digest: str
    num_gaussians: int
    fps: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.field.config.num_frames


def save_motion(
    path: str | Path,
    motion: MotionField,
    static: Gaussians,
    *,
    fps: float = DEFAULT_FPS,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write a motion field and its description atomically (temp file + rename).

    Args:
        path: destination `.safetensors`.
        motion: the field to save.
        static: the static splats it moves (their digest goes into the metadata).
        fps: playback rate of the frames.
        extra: more metadata (string values), e.g. {"stage": "reconstruct"}.
    """
    path = Path(path)
    meta = {
        "format": MOTION_FORMAT,
        "format_version": MOTION_FORMAT_VERSION,
        "config": motion.config.to_json(),
        "static_digest": static_digest(static),
        "num_gaussians": str(len(static)),
        "fps": repr(float(fps)),
        "a3d_version": __version__,
    }
    for k, v in (extra or {}).items():
        if k in meta:
            raise ValueError(f"metadata key {k!r} is reserved")
        meta[k] = str(v)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in motion.state_dict().items()}
    from a3d_cli.io.atomic import atomic_path
    from a3d_cli.io.safetensors_bytes import sorted_header

    with atomic_path(path) as tmp:
        tmp.write_bytes(sorted_header(save(tensors, metadata=meta)))  # equal motions, equal bytes
    return path


def read_motion_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a motion file, checked to be one (no tensors are read)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"motion file {path} does not exist",
            hint=f"pass the path of a motion file (a run's {COARSE_MOTION} or {REFINED_MOTION})",
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(
            f"{path} is not a readable safetensors file ({e})",
            hint="motion files are written by `a3d reconstruct` / `a3d sds`",
        ) from e
    if meta.get("format") != MOTION_FORMAT:
        raise InputError(
            f"{path} is not an a3d motion file (metadata format={meta.get('format')!r})",
            hint="motion files are written by `a3d reconstruct` / `a3d sds`",
        )
    if meta.get("format_version") != MOTION_FORMAT_VERSION:
        raise InputError(
            f"{path} has motion format version {meta.get('format_version')}, this a3d reads {MOTION_FORMAT_VERSION}",
            hint="re-run the stage that made it with this a3d version",
        )
    return meta


def load_motion(path: str | Path, static: Gaussians | None = None, device: str | torch.device = "cpu") -> MotionFile:
    """Load a motion file; with `static`, refuse one fitted on other splats.

    Args:
        path: a file written by `save_motion`.
        static: the static splats about to be moved; their digest must match the file's.
        device: where the field's weights go.

    Raises:
        InputError: not a motion file, or fitted on a different static model (exit code 2).
    """
    path = Path(path)
    meta = read_motion_metadata(path)
    if static is not None:
        digest = static_digest(static)
        if digest != meta.get("static_digest"):
            raise InputError(
                f"motion file {path} was fitted on a different static model (digest {meta.get('static_digest', '?')[:12]}… "
                f"with {meta.get('num_gaussians', '?')} splats; this one is {digest[:12]}… with {len(static)} splats)",
                hint="re-run `a3d reconstruct RUN --force` after changing static/gaussians.ply, or pass the matching motion file",
            )
    try:
        config = MotionFieldConfig.from_json(meta["config"])
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise InputError(
            f"motion file {path} has an unreadable config ({e})", hint="the file may come from a newer a3d"
        ) from e
    motion = MotionField(config)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    try:
        motion.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(
            f"motion file {path} does not match its own config ({e})",
            hint="the file is damaged; re-run the stage that made it",
        ) from e
    motion.to(device).eval()
    return MotionFile(
        field=motion,
        static_digest=meta.get("static_digest", ""),
        num_gaussians=int(meta.get("num_gaussians", "0")),
        fps=float(meta.get("fps", DEFAULT_FPS)),
        metadata=meta,
    )
