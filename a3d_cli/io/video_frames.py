"""A multi-view video folder on disk: MV-VDM's 4 views × 16 frames as PNG files, and the cameras beside them.

The folder holds `v{view}_f{frame:02d}.png` (view 0..3, frame 00..15; `v{view}_f{frame}.png` without the
zero is read too), RGB on MV-VDM's grey or RGBA, and optionally `cameras.json` (`CameraSet.to_json`). It is
what `a3d mvvideo` writes (`RUN/mvvideo/`) and what `a3d reconstruct` fits, from the run folder or from any
folder given with `--video`.

Examples:
    >>> video = read_video_frames(Path("RUN/mvvideo"), max_size=256)  # doctest: +SKIP
    >>> video.rgb.shape  # doctest: +SKIP
    torch.Size([4, 16, 256, 256, 3])
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from a3d_cli.errors import InputError
from a3d_cli.io.json_data import parse_json
from a3d_cli.io.regular import read_regular
from a3d_cli.models.mvvdm.shape import MVVDM_BACKGROUND, NUM_FRAMES, NUM_VIEWS
from a3d_cli.run_layout import CAMERAS_JSON, MVVIDEO_FRAME_NAME

if TYPE_CHECKING:
    from torch import Tensor

    from a3d_cli.render.cameras import CameraSet

MIN_FRAME_SIZE = 16  # smallest frame side read (the motion fit's smallest resolution)
FRAME_NAME = re.compile(r"^v(\d+)_f(\d+)\.png$", re.IGNORECASE)
"""A frame file's name: view and frame number (`a3d_cli.run_layout.MVVIDEO_FRAME_NAME` writes it)."""


@dataclass(frozen=True)
class VideoFrames:
    """A multi-view video read from disk.

    Attributes:
        rgb: [V, F, H, W, 3] in [0, 1] (RGBA frames composited on the grey background).
        alpha: [V, F, H, W] alpha when every frame has one, else None.
        files: [V][F] the frame files.
    """

    rgb: Tensor  # [V, F, H, W, 3]
    alpha: Tensor | None  # [V, F, H, W]
    files: list[list[Path]]


def list_video_frames(folder: Path, views: int = NUM_VIEWS, frames: int = NUM_FRAMES) -> list[list[Path]]:
    """The frame files of a video folder, checked for completeness (no pixels read).

    Raises:
        InputError: missing folder, no frames, missing views, wrong frame count, gaps, duplicates.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"The video folder {folder} does not exist.",
            hint=f"Check the path: a video folder holds {MVVIDEO_FRAME_NAME} frames ({views} views × {frames} frames).",
        )
    found: dict[tuple[int, int], Path] = {}
    for path in sorted(folder.iterdir()):
        m = FRAME_NAME.match(path.name)
        if not m:
            continue
        key = (int(m.group(1)), int(m.group(2)))
        if key in found:
            raise InputError(
                f"{folder} has two files for view {key[0]} frame {key[1]}: {found[key].name} and {path.name}.",
                hint="Keep one of them (v2_f07.png and v2_f7.png name the same frame).",
            )
        found[key] = path
    naming = f"frames must be named v{{view}}_f{{frame:02d}}.png, view 0-{views - 1}, frame 00-{frames - 1:02d}"
    if not found:
        raise InputError(f"{folder} has no video frames.", hint=naming)
    present_views = sorted({v for v, _ in found})
    missing_views = [v for v in range(views) if v not in present_views]
    if missing_views or present_views[-1] >= views:
        raise InputError(
            f"{folder} has views {present_views}; reconstruct needs exactly views 0-{views - 1}"
            + (f" (missing {missing_views})." if missing_views else "."),
            hint=naming,
        )
    for v in range(views):
        idx = sorted(f for vv, f in found if vv == v)
        if len(idx) != frames or idx[-1] != frames - 1:
            if len(idx) != frames and len(idx) == idx[-1] + 1:  # 0..last with no gap: only the count is wrong
                raise InputError(
                    f"View {v} in {folder} has {len(idx)} frames; reconstruct needs {frames}.", hint=naming
                )
            # the first missing numbers lie within len(idx) + 8 of zero, whatever number a file claims
            have = set(idx)
            gaps = list(itertools.islice((f for f in range(max(idx[-1] + 1, frames)) if f not in have), 8))
            raise InputError(
                f"View {v} in {folder} is missing frame(s) {gaps} (frames must be 0-{frames - 1} with no gaps).",
                hint=naming,
            )
    return [[found[(v, f)] for f in range(frames)] for v in range(views)]


def read_video_frames(folder: Path, background: float = MVVDM_BACKGROUND, max_size: int | None = None) -> VideoFrames:
    """Read and check a video folder of NUM_VIEWS views × NUM_FRAMES frames, one frame at a time.

    Each frame is decoded, composited (RGBA on `background`) and reduced to `max_size` before the next one is
    read, so memory is bounded by the output size, not by the frames' resolution.

    Args:
        folder: the video folder (`v{view}_f{frame:02d}.png`).
        background: grey level RGBA frames are composited on.
        max_size: frames larger than this are reduced to it on read (None keeps their size).

    Raises:
        InputError: naming problems (see `list_video_frames`), unreadable images or ones declaring more
            pixels than Pillow decodes (`a3d_cli.io.images.open_image`), mixed resolutions, non-square or tiny frames.
    """
    import torch

    from a3d_cli.io.images import composite, load_png, open_image, resize_square

    files = list_video_frames(folder)
    ref = files[0][0]
    size0: tuple[int, int] | None = None
    for row in files:  # cheap header pass first: nothing is decoded before the sizes agree
        for path in row:
            with open_image(path, str(path), hint="Re-export or replace this frame.") as im:  # header only
                size = im.size
            size0 = size0 or size
            if size != size0:
                raise InputError(
                    f"{path.name} is {size[0]}×{size[1]} but {ref.name} is {size0[0]}×{size0[1]}; all frames must have one size.",
                    hint="Resize the frames to one resolution (MV-VDM writes 256×256).",
                )
    assert size0 is not None
    if size0[0] != size0[1]:
        raise InputError(
            f"The frames in {folder} are {size0[0]}×{size0[1]}; reconstruct needs square frames.",
            hint="Crop or pad them to a square around the object.",
        )
    if size0[0] < MIN_FRAME_SIZE:
        raise InputError(
            f"The frames in {folder} are {size0[0]}×{size0[1]} pixels; reconstruct needs at least "
            f"{MIN_FRAME_SIZE}×{MIN_FRAME_SIZE}.",
            hint="Give the full-size frames (MV-VDM writes 256×256).",
        )
    out = size0[0] if max_size is None else min(size0[0], max_size)
    rgb = torch.empty(len(files), len(files[0]), out, out, 3)  # [V, F, S, S, 3]
    alpha = torch.ones(len(files), len(files[0]), out, out)  # [V, F, S, S]
    every_alpha = True
    for v, row in enumerate(files):
        for f, path in enumerate(row):
            img = load_png(path)  # [H, W, 3|4]
            if img.shape[-1] == 4:
                img = torch.cat([composite(img, background), img[..., 3:]], dim=-1)  # [H, W, 4] on the grey
            else:
                every_alpha = False
            small = resize_square(img, out)  # [S, S, 3|4]
            rgb[v, f] = small[..., :3]
            if small.shape[-1] == 4:
                alpha[v, f] = small[..., 3]
    return VideoFrames(rgb=rgb, alpha=alpha if every_alpha else None, files=files)


def read_cameras(video_dir: Path, fallback: Path | None = None) -> CameraSet:
    """Cameras of the video: `cameras.json` beside the frames, else `fallback` (a cameras file such as the
    conditioning views'), else MV-VDM's fixed views.

    Raises:
        InputError: a cameras file that does not parse, or does not hold one camera per view.
    """
    from a3d_cli.render.cameras import CameraSet, mvvdm_cameras

    places = [Path(video_dir) / CAMERAS_JSON, *([Path(fallback)] if fallback is not None else [])]
    for path in places:
        if path.exists():  # read as a regular file only: a named pipe or folder is refused, never read
            try:
                cams = CameraSet.from_json(parse_json(read_regular(path)))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"{path} is not a readable cameras file ({exc}).",
                    hint="Fix it (format in docs/ARTIFACTS.md), or delete it to use MV-VDM's fixed cameras.",
                ) from exc
            if len(cams) != NUM_VIEWS:
                raise InputError(
                    f"{path} describes {len(cams)} cameras; the video has {NUM_VIEWS} views.",
                    hint="Give one camera per view, or delete the file to use MV-VDM's fixed cameras.",
                )
            return cams
    return mvvdm_cameras()


__all__ = ["FRAME_NAME", "MIN_FRAME_SIZE", "VideoFrames", "list_video_frames", "read_cameras", "read_video_frames"]
