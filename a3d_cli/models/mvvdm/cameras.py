"""a3d cameras → MVDream's camera embedding input (the 16 numbers MV-VDM adds to its time embedding).

MVDream (and so MV-VDM) was trained with cameras in a z-up world: the camera centre of an orbit camera is
``(cos e·cos a, cos e·sin a, sin e)``, it looks at the origin, its 4×4 camera-to-world matrix is in the
OpenGL convention (x right, y up, z backwards), the translation is scaled to unit length, and the matrix is
flattened row-major into 16 numbers.

a3d's world is y-up with the asset's front on +Z at azimuth 0 (`a3d_cli.render.cameras`), and cameras are
OpenCV (x right, y down, z forward). The two worlds are related by the cyclic axis permutation

    M: (x, y, z)_a3d  →  (z, x, y)_mvdream       (a proper rotation, det M = +1),

which takes a3d's up (+Y) to MVDream's up (+Z) and a3d's azimuth-0 direction (+Z) to MVDream's
azimuth-0 direction (+X). Under M an a3d orbit camera at (elevation e, azimuth a) lands exactly on the
MVDream orbit camera with the same (e, a): a3d's centre (cos e·sin a, sin e, cos e·cos a) maps to
(cos e·cos a, cos e·sin a, sin e). Because M is a rotation (not a reflection), renders keep their
handedness, so a view's image and its embedding agree the way MVDream's training data did.

The camera axes change from OpenCV to OpenGL by negating y and z: ``R_gl = R_cv · diag(1, -1, -1)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Rows: MVDream axes expressed in a3d axes. M @ (x, y, z) = (z, x, y).
A3D_TO_MVDREAM = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
_OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
_EPS = 1e-8  # MVDream's normalize_camera epsilon


def mvdream_c2w(c2w_opencv: Tensor) -> Tensor:
    """MVDream-convention camera-to-world matrices, translation normalised to unit length.

    Args:
        c2w_opencv: [V, 4, 4] a3d camera-to-world matrices (OpenCV axes, y-up world).

    Returns:
        [V, 4, 4] float64 camera-to-world in MVDream's z-up world, OpenGL axes, |t| = 1.
    """
    if c2w_opencv.ndim != 3 or c2w_opencv.shape[-2:] != (4, 4):
        raise ValueError(f"c2w_opencv must be [V, 4, 4], got {list(c2w_opencv.shape)}")
    c2w = c2w_opencv.detach().to(torch.float64).cpu()
    M = A3D_TO_MVDREAM
    rot = M @ c2w[:, :3, :3] @ _OPENCV_TO_OPENGL  # [V, 3, 3]
    t = c2w[:, :3, 3] @ M.T  # [V, 3] (= M @ t per camera)
    t = t / (t.norm(dim=-1, keepdim=True) + _EPS)  # [V, 3] unit length, as MVDream's normalize_camera
    out = torch.zeros(c2w.shape[0], 4, 4, dtype=torch.float64)
    out[:, :3, :3] = rot
    out[:, :3, 3] = t
    out[:, 3, 3] = 1.0
    return out  # [V, 4, 4]


def mvdream_camera_embedding_input(c2w_opencv: Tensor) -> Tensor:
    """The 16-number camera input of MV-VDM's camera MLP, one row per view.

    Args:
        c2w_opencv: [V, 4, 4] a3d camera-to-world matrices.

    Returns:
        [V, 16] float32, row-major flattening of `mvdream_c2w`.

    Examples:
        >>> from a3d_cli.render.cameras import mvvdm_cameras
        >>> mvdream_camera_embedding_input(mvvdm_cameras().c2w).shape
        torch.Size([4, 16])
    """
    return mvdream_c2w(c2w_opencv).reshape(-1, 16).float()
