"""MP4 previews (H.264 through imageio-ffmpeg), playable in browsers and players."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from a3d_cli.io.atomic import atomic_path
from a3d_cli.io.images import to_uint8


def write_mp4(path: Path, frames: Tensor, fps: float = 8.0) -> dict[str, float | int]:
    """Write frames as an H.264 MP4 (yuv420p, `+faststart`: the index comes first, so it streams) atomically.

    Args:
        path: destination `.mp4`.
        frames: [F, H, W, 3] float in [0, 1]. H and W are padded to even sizes (H.264 needs them).
        fps: frames per second.

    Returns:
        What a player sees, for the manifest: {"frames", "fps", "width", "height"} (the padded size).
    """
    import imageio.v2 as imageio
    import numpy as np

    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"write_mp4 expects [F, H, W, 3], got {list(frames.shape)}")
    arr = to_uint8(frames)  # [F, H, W, 3]
    pad_h, pad_w = arr.shape[1] % 2, arr.shape[2] % 2
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_path(Path(path)) as tmp:
        writer = imageio.get_writer(
            str(tmp), format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1, quality=8,
            output_params=["-movflags", "+faststart"],  # moov before mdat: browsers start playing while loading
        )
        try:
            for frame in arr:
                writer.append_data(frame)
        finally:
            writer.close()
    return {"frames": int(arr.shape[0]), "fps": float(fps), "width": int(arr.shape[2]), "height": int(arr.shape[1])}


def read_mp4(path: Path) -> Tensor:
    """Decode an MP4 to [F, H, W, 3] float in [0, 1] (used by tests and tools)."""
    import imageio.v2 as imageio
    import numpy as np
    import torch

    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        frames = np.stack([f for f in reader])
    finally:
        reader.close()
    return torch.from_numpy(frames).float() / 255.0
