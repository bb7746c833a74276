"""EWA projection of 3D Gaussians to image-space ellipses, in plain PyTorch (any device, autograd).

PyTorch implementation of what gsplat's fused projection kernel computes (`fully_fused_projection`,
pinhole camera, "classic" mode), written from its documented numeric rules:

- covariance Σ = R S Sᵀ Rᵀ from a wxyz quaternion (normalised here) and linear scales;
- world → camera with the 4×4 viewmat (OpenCV: x right, y down, z forward);
- Jacobian of the perspective map J = [[fx/z, 0, -fx·tx/z²], [0, fy/z, -fy·ty/z²]], where tx/z and ty/z
  are clamped to the view frustum widened by 30 % of the half field of view (keeps J sane for splats
  far off-screen); the projected mean uses the unclamped position;
- Σ2D = J W Σ Wᵀ Jᵀ + eps2d·I (eps2d is a low-pass blur, at least ~half a pixel wide);
- conic = upper triangle (a, b, c) of Σ2D⁻¹;
- radius per axis = ceil(e·sqrt(Σ2D_ii)) with e = min(3.33, sqrt(2·ln(255·opacity))): beyond that ellipse
  the splat's alpha is below 1/255, which compositing skips anyway, so the box culls exactly;
- culled (radius 0): depth outside [near, far], non-positive determinant, opacity < 1/255, or a box that
  lies entirely outside the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0  # compositing skips splats fainter than this at a pixel
ALPHA_MAX = 0.999  # a single splat never makes a pixel fully opaque
T_MIN = 1e-4  # transmittance at which a pixel stops
MAX_EXTENT = 3.33  # radius cap in standard deviations


@dataclass
class Projection:
    """Image-space splats for every (batch, camera, gaussian).

    Attributes:
        means2d: [B, C, N, 2] projected centres in pixels (pixel centres sit at +0.5).
        conics: [B, C, N, 3] (a, b, c): inverse 2D covariance [[a, b], [b, c]].
        depths: [B, C, N] camera-space z.
        radii: [B, C, N, 2] int32 box half-sizes in pixels; 0 means culled.
    """

    means2d: Tensor  # [B, C, N, 2]
    conics: Tensor  # [B, C, N, 3]
    depths: Tensor  # [B, C, N]
    radii: Tensor  # [B, C, N, 2]

    @property
    def visible(self) -> Tensor:
        """[B, C, N] bool, the splats that survived culling."""
        return (self.radii > 0).all(dim=-1)


def quat_to_rotmat(quats: Tensor) -> Tensor:  # [..., 4] wxyz
    """Rotation matrices from (not necessarily unit) wxyz quaternions.

    Returns:
        [..., 3, 3] rotation matrices.
    """
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)  # [...] each
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*quats.shape[:-1], 3, 3)  # [..., 3, 3]


def covariance_factor(quats: Tensor, scales: Tensor) -> Tensor:  # [..., 4], [..., 3]
    """M = R·diag(s), so that Σ = M Mᵀ is symmetric positive semi-definite by construction.

    Returns:
        [..., 3, 3]
    """
    return quat_to_rotmat(quats) * scales[..., None, :]  # [..., 3, 3]


def project_gaussians_ref(
    means: Tensor,  # [B, N, 3]
    quats: Tensor,  # [B, N, 4]
    scales: Tensor,  # [B, N, 3]
    opacities: Tensor,  # [B, N]
    viewmats: Tensor,  # [B, C, 4, 4]
    Ks: Tensor,  # [B, C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projection:
    """Project every Gaussian into every camera (EWA splatting, pinhole).

    Culled entries keep finite values (divisions use safe denominators), so that autograd never
    multiplies a zero gradient by an infinite local derivative.

    Args:
        means: [B, N, 3] world-space centres.
        quats: [B, N, 4] wxyz rotations.
        scales: [B, N, 3] linear standard deviations.
        opacities: [B, N] in [0, 1]; only used for the radius and the culling.
        viewmats: [B, C, 4, 4] world→camera, OpenCV.
        Ks: [B, C, 3, 3] pinhole intrinsics in pixels.
        width, height: image size in pixels.
        eps2d: added to the diagonal of every 2D covariance.
        near_plane, far_plane: depth range kept.

    Returns:
        Projection with [B, C, N, ...] tensors.
    """
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    assert means.shape == (B, N, 3), means.shape
    assert quats.shape == (B, N, 4), quats.shape
    assert scales.shape == (B, N, 3), scales.shape
    assert opacities.shape == (B, N), opacities.shape
    assert viewmats.shape == (B, C, 4, 4), viewmats.shape
    assert Ks.shape == (B, C, 3, 3), Ks.shape

    # 1. World → camera.
    rot = viewmats[..., :3, :3]  # [B, C, 3, 3]
    trans = viewmats[..., :3, 3]  # [B, C, 3]
    means_c = torch.einsum("bcij,bnj->bcni", rot, means) + trans[:, :, None, :]  # [B, C, N, 3]
    x, y, z = means_c.unbind(-1)  # [B, C, N] each
    in_depth = (z >= near_plane) & (z <= far_plane)  # [B, C, N]
    zs = torch.where(in_depth, z, torch.ones_like(z))  # [B, C, N] safe for division

    # 2. Pinhole projection of the centre.
    fx, fy = Ks[..., 0, 0, None], Ks[..., 1, 1, None]  # [B, C, 1]
    cx, cy = Ks[..., 0, 2, None], Ks[..., 1, 2, None]  # [B, C, 1]
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], dim=-1)  # [B, C, N, 2]

    # 3. Jacobian with the frustum clamp (30 % margin), as rows j0, j1 of J.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)  # [B, C, 1]
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)  # [B, C, 1]
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)  # [B, C, 1]
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)  # [B, C, 1]
    tx = zs * torch.minimum(torch.maximum(x / zs, -lim_x_neg), lim_x_pos)  # [B, C, N]
    ty = zs * torch.minimum(torch.maximum(y / zs, -lim_y_neg), lim_y_pos)  # [B, C, N]
    # T = J·W (2×3 per splat); only J's non-zero entries are used.
    t0 = (fx / zs)[..., None] * rot[:, :, None, 0, :] - (fx * tx / zs**2)[..., None] * rot[
        :, :, None, 2, :
    ]  # [B, C, N, 3]
    t1 = (fy / zs)[..., None] * rot[:, :, None, 1, :] - (fy * ty / zs**2)[..., None] * rot[
        :, :, None, 2, :
    ]  # [B, C, N, 3]

    # 4. Σ2D = (T M)(T M)ᵀ + eps2d·I, with M = R·diag(s).
    m = covariance_factor(quats, scales)  # [B, N, 3, 3]
    u0 = torch.einsum("bcnk,bnkl->bcnl", t0, m)  # [B, C, N, 3]
    u1 = torch.einsum("bcnk,bnkl->bcnl", t1, m)  # [B, C, N, 3]
    s00 = (u0 * u0).sum(-1) + eps2d  # [B, C, N]
    s01 = (u0 * u1).sum(-1)  # [B, C, N]
    s11 = (u1 * u1).sum(-1) + eps2d  # [B, C, N]
    det = s00 * s11 - s01 * s01  # [B, C, N]
    ok_det = det > 0  # [B, C, N]
    dets = torch.where(ok_det, det, torch.ones_like(det))  # [B, C, N]
    conics = torch.stack([s11 / dets, -s01 / dets, s00 / dets], dim=-1)  # [B, C, N, 3]

    # 5. Opacity-aware radius and culling (no gradients: integers).
    with torch.no_grad():
        op = opacities[:, None, :].expand(B, C, N)  # [B, C, N]
        ok_op = op >= ALPHA_MIN  # [B, C, N]
        extent = torch.sqrt(2.0 * torch.log(op.clamp(min=ALPHA_MIN) / ALPHA_MIN)).clamp(max=MAX_EXTENT)  # [B, C, N]
        rx = torch.ceil(extent * torch.sqrt(s00.clamp(min=0)))  # [B, C, N]
        ry = torch.ceil(extent * torch.sqrt(s11.clamp(min=0)))  # [B, C, N]
        mx, my = means2d.unbind(-1)  # [B, C, N]
        on_screen = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)  # [B, C, N]
        keep = in_depth & ok_det & ok_op & on_screen & torch.isfinite(mx) & torch.isfinite(my)  # [B, C, N]
        radii = torch.stack([rx, ry], dim=-1) * keep[..., None]  # [B, C, N, 2]
        radii = radii.clamp(max=float(2**30)).to(torch.int32)  # [B, C, N, 2]

    return Projection(means2d=means2d, conics=conics, depths=z, radii=radii)


def camera_centers(viewmats: Tensor) -> Tensor:  # [..., 4, 4]
    """World-space camera centres: the translation of the inverse viewmat (gsplat's `campos`).

    Returns:
        [..., 3]
    """
    return torch.linalg.inv(viewmats)[..., :3, 3]  # [..., 3]
