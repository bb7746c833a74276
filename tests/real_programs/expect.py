"""What a3d's own records say a viewer should show: key times, poses, manifest figures (no program runs here).

Shared by the real-program tests (import as `from expect import ...`; pytest puts this folder on sys.path
for the test files beside it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def metrics(run: Path, stage: str) -> dict:
    """The manifest metrics of `stage` in `run` (`a3d --json info RUN` shows the same)."""
    from a3d_cli.io.manifest import load_manifest

    return load_manifest(run)["stages"][stage]["metrics"]


def key_seconds(m: dict) -> np.ndarray:
    """[K] when each exported key plays: K keys over the clip's duration, k · D / n with n = K − 1, or n = K
    for a loop (its closing key at D repeats key 0 and is not one of the K)."""
    k = int(m["frames"])
    n = k if m["loop"] != "off" else k - 1
    return np.arange(k) * float(m["duration_s"]) / n


def probe_keys(count: int) -> list[int]:
    """A few key indices worth checking: the first two, one in the middle, the last."""
    return sorted({0, 1, count // 2, count - 1})


def expected_poses(run: Path) -> np.ndarray:
    """[K, V, 3] what the GLB shows at each key: the vertex cache for morph targets; for a skin, the GLB
    decoded with the glTF skinning rule by pygltflib (`helpers.decode_skinned_frames`), since a skin
    approximates the cache."""
    from helpers import decode_skinned_frames

    if "bones" in metrics(run, "mesh-animate"):
        decoded, _ = decode_skinned_frames(run / "export" / "animated.glb")
        return decoded[: metrics(run, "mesh-animate")["frames"]]
    return np.load(run / "export" / "vertices.npy").astype(np.float64)


def tolerance(poses: np.ndarray) -> float:
    """Absolute tolerance for a player's float32 maths on these poses."""
    return 2e-5 * float(np.abs(poses).max())
