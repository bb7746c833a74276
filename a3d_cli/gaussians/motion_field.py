"""The motion field: a HexPlane over (x, y, z, t) plus small heads that move frozen static splats.

Per frame f (time t_f in [-1, 1]) and static Gaussian i at x_i, the field samples a feature h_i(t_f)
from a two-level HexPlane and turns it into:

* local offsets: Δx_i (added to the position), Δq_i (added to the raw quaternion, then normalised),
  optionally Δs_i (added to the log-scale, then exponentiated — only used by SDS refinement);
* a global rigid motion (R_f, T_f) read from the *mean* feature over all Gaussians, applied before
  the local offsets: x_i(t) = R_f x_i + T_f + Δx_i, q_i(t) = normalize(q(R_f) ⊗ q_i + Δq_i).

All heads are bias-free MLPs whose output layer starts at zero, so the field starts as *no motion*:
Δ = 0 and the global head gives Euler angles sigmoid(0)·2π − π = 0 and translation
sigmoid(0)·2 − 1 = 0. Frame 0 is the static model itself (it is never deformed), as in Animate3D
(yanqinJiang/Animate3D `custom/threestudio-animate3d/geometry/gaussian_4d.py`, `Gaussian4DModel`).

One deliberate difference from the reference: the global rotation is composed with each splat's
quaternion by a quaternion product instead of a rotation-matrix round trip. Both give the same
rotation; the product is cheaper and has no branches.

Examples:
    >>> field = MotionField(MotionFieldConfig.tiny())
    >>> g = Gaussians(torch.rand(50, 3) - 0.5, torch.tensor([[1.0, 0, 0, 0]]).repeat(50, 1),
    ...               torch.full((50, 3), 0.02), torch.ones(50), torch.rand(50, 3))
    >>> out = field(g, torch.arange(16))
    >>> out.means.shape, torch.equal(out.means[0], g.means)
    (torch.Size([16, 50, 3]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from a3d_cli.gaussians.motion_field_config import COARSE_GRID, MotionFieldConfig  # torch-free, re-exported
from a3d_cli.geometry import quat_multiply
from a3d_cli.kernels.hexplane import (
    HexplaneWeights,
    hexplane_features,
    hexplane_features_weighted,
    hexplane_weights,
    init_hexplane_level,
    resolve_backend,
)

from .container import Gaussians


@dataclass(frozen=True)
class MotionOutput:
    """The static splats moved to F frames.

    Attributes:
        means: [F, N, 3] positions.
        quats: [F, N, 4] unit quaternions, wxyz.
        scales: [F, N, 3] linear scales.
        global_rotation: [F, 3, 3] rigid rotation of each frame (identity for a static frame).
        global_translation: [F, 3].
    """

    means: Tensor  # [F, N, 3]
    quats: Tensor  # [F, N, 4]
    scales: Tensor  # [F, N, 3]
    global_rotation: Tensor  # [F, 3, 3]
    global_translation: Tensor  # [F, 3]

    def frame(self, static: Gaussians, f: int) -> Gaussians:
        """Frame f (index into this output) as a `Gaussians` with the static colours and opacities."""
        return static.with_(means=self.means[f], quats=self.quats[f], scales=self.scales[f])


def _mlp(in_dim: int, out_dim: int, width: int, hidden_layers: int, generator: torch.Generator | None) -> nn.Sequential:
    """Bias-free ReLU MLP whose last layer is zero (so its output starts at exactly 0)."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(hidden_layers):
        lin = nn.Linear(d, width, bias=False)
        nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=generator)  # nn.Linear's default, seeded
        layers += [lin, nn.ReLU()]
        d = width
    out = nn.Linear(d, out_dim, bias=False)
    nn.init.zeros_(out.weight)
    layers.append(out)
    return nn.Sequential(*layers)


def euler_to_quat(angles: Tensor) -> Tensor:
    """wxyz quaternion of R = Rz(yaw) · Ry(pitch) · Rx(roll), the reference's Euler convention.

    The readable form of the map; the field evaluates it as `EulerRigid`, which is tested against this.

    Args:
        angles: [..., 3] (roll, pitch, yaw) in radians.

    Returns:
        [..., 4] unit quaternions.
    """
    half = angles * 0.5
    c, s = torch.cos(half), torch.sin(half)
    zeros = torch.zeros_like(c[..., 0])
    qx = torch.stack([c[..., 0], s[..., 0], zeros, zeros], dim=-1)
    qy = torch.stack([c[..., 1], zeros, s[..., 1], zeros], dim=-1)
    qz = torch.stack([c[..., 2], zeros, zeros, s[..., 2]], dim=-1)
    return quat_multiply(qz, quat_multiply(qy, qx))


def _euler_terms() -> Tensor:
    """[8, 4]: wxyz of `euler_to_quat` as ± sums of the eight products (c or s of roll)·(pitch)·(yaw).

    Row b = 4·b_roll + 2·b_pitch + b_yaw, where bit 1 picks the half angle's sine and 0 its cosine.
    """
    terms = torch.zeros(8, 4)
    for row, col, sign in ((0, 0, 1), (7, 0, 1), (4, 1, 1), (3, 1, -1), (2, 2, 1), (5, 2, 1), (1, 3, 1), (6, 3, -1)):
        terms[row, col] = sign
    return terms


def _rotmat_terms() -> Tensor:
    """[16, 10]: the rotation matrix of q (row-major, 9 columns) and |q|² (last column) as sums of q_a·q_b."""
    w, x, y, z = range(4)
    entries = [  # R[i] = Σ sign · q_a q_b, homogeneous in q (divided by |q|² afterwards)
        [(w, w, 1), (x, x, 1), (y, y, -1), (z, z, -1)],
        [(x, y, 2), (w, z, -2)],
        [(x, z, 2), (w, y, 2)],
        [(x, y, 2), (w, z, 2)],
        [(w, w, 1), (x, x, -1), (y, y, 1), (z, z, -1)],
        [(y, z, 2), (w, x, -2)],
        [(x, z, 2), (w, y, -2)],
        [(y, z, 2), (w, x, 2)],
        [(w, w, 1), (x, x, -1), (y, y, -1), (z, z, 1)],
        [(w, w, 1), (x, x, 1), (y, y, 1), (z, z, 1)],
    ]
    terms = torch.zeros(16, 10)
    for col, products in enumerate(entries):
        for a, b, c in products:  # split symmetrically over (a, b) and (b, a)
            terms[4 * a + b, col] += c / 2
            terms[4 * b + a, col] += c / 2
    return terms


def _left_terms() -> Tensor:
    """[4, 16]: `quat_left_matrix(a)` (row-major) = a @ this."""
    w, x, y, z = range(4)
    rows = (
        ((w, 1), (x, -1), (y, -1), (z, -1)),
        ((x, 1), (w, 1), (z, -1), (y, 1)),
        ((y, 1), (z, 1), (w, 1), (x, -1)),
        ((z, 1), (y, -1), (x, 1), (w, 1)),
    )
    terms = torch.zeros(4, 16)
    for i, row in enumerate(rows):
        for j, (component, sign) in enumerate(row):
            terms[component, 4 * i + j] = sign
    return terms


class EulerRigid(nn.Module):
    """Euler angles [F, 3] → the rotation matrix [F, 3, 3] and left-product matrix [F, 4, 4] of their quaternion.

    The same values as `quat_to_rotmat(euler_to_quat(e))` and `quat_left_matrix(euler_to_quat(e))`, written as a
    few batched products with constant matrices (non-persistent buffers, so they move with the field and stay
    out of its files). Why: with a kernel per quaternion component, the global rigid motion of a few frames is
    hundreds of tiny kernels forward and backward per fit step, which a recorded step still runs one by one;
    this form is a handful.
    """

    euler_terms: Tensor
    rotmat_terms: Tensor
    left_terms: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("euler_terms", _euler_terms(), persistent=False)
        self.register_buffer("rotmat_terms", _rotmat_terms(), persistent=False)
        self.register_buffer("left_terms", _left_terms(), persistent=False)

    def forward(self, angles: Tensor) -> tuple[Tensor, Tensor]:
        """angles [F, 3] (roll, pitch, yaw) → (R [F, 3, 3], L [F, 4, 4])."""
        f = angles.shape[0]
        half = angles * 0.5
        cs = torch.stack([torch.cos(half), torch.sin(half)], dim=-1)  # [F, 3, 2]
        products = cs[:, 0, :, None, None] * cs[:, 1, None, :, None] * cs[:, 2, None, None, :]  # [F, 2, 2, 2]
        q = products.reshape(f, 8) @ self.euler_terms  # [F, 4] wxyz
        quadratic = (q[:, :, None] * q[:, None, :]).reshape(f, 16) @ self.rotmat_terms  # [F, 10]
        rotation = (quadratic[:, :9] / quadratic[:, 9:]).reshape(f, 3, 3)
        left = (q @ self.left_terms).reshape(f, 4, 4)
        return rotation, left


class MotionField(nn.Module):
    """HexPlane motion field over a frozen static model (only this module's parameters train).

    Args:
        config: the architecture.
        generator: seeds the plane and hidden-layer init (CPU generator; tensors are made on CPU).

    Parameter groups (for separate learning rates): `grid_parameters()`, `head_parameters()`,
    `global_parameters()`.
    """

    def __init__(self, config: MotionFieldConfig | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config = config or MotionFieldConfig()
        self.grids = nn.ModuleList()
        for res in config.grid_sizes:
            planes = init_hexplane_level(
                res,
                config.grid_channels,
                spatial_range=config.spatial_init,
                time_value=config.time_init,
                generator=generator,
            )
            self.grids.append(nn.ParameterList([nn.Parameter(p) for p in planes]))
        d, w, h = config.feature_dim, config.head_width, config.head_hidden_layers
        self.delta_xyz = _mlp(d, 3, w, h, generator)
        self.delta_rot = _mlp(d, 4, w, h, generator)
        self.delta_scale = _mlp(d, 3, w, h, generator) if config.use_delta_scale else None
        self.global_rot = _mlp(d, 3, w, h, generator) if config.use_global_rigid else None
        self.global_trans = _mlp(d, 3, w, h, generator) if config.use_global_rigid else None
        self.rigid = EulerRigid() if config.use_global_rigid else None
        self.hexplane_backend = "auto"  # kernels.hexplane backend: a run-time choice, not part of the config

    # -- parameter groups --------------------------------------------------------------------------
    def grid_parameters(self) -> list[nn.Parameter]:
        return list(self.grids.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        heads = [self.delta_xyz, self.delta_rot] + ([self.delta_scale] if self.delta_scale is not None else [])
        return [p for h in heads for p in h.parameters()]

    def global_parameters(self) -> list[nn.Parameter]:
        heads = [h for h in (self.global_rot, self.global_trans) if h is not None]
        return [p for h in heads for p in h.parameters()]

    # -- evaluation --------------------------------------------------------------------------------
    def frame_times(self, frames: Tensor) -> Tensor:
        """[F] times in [-1, 1] of integer frame indices [F]."""
        return frames.to(torch.float32) * (2.0 / (self.config.num_frames - 1)) - 1.0

    def features(self, xyz: Tensor, frames: Tensor) -> Tensor:
        """[F, N, D] HexPlane features of static positions xyz [N, 3] at integer frames [F]."""
        return self._features_at(xyz, self.frame_times(frames))

    def _features_at(self, xyz: Tensor, t: Tensor) -> Tensor:
        """[F, N, D] HexPlane features of static positions xyz [N, 3] at times t [F] in [-1, 1]."""
        planes = [list(level) for level in self.grids]
        return hexplane_features(planes, xyz / self.config.bounds, t.to(xyz.device), backend=self.hexplane_backend)

    def sampling_weights(self, static: Gaussians) -> HexplaneWeights | None:
        """The HexPlane weights of these splats at every frame, for `move_frames(..., weights=)`, or None where
        the field samples with the `grid_sample` backend (which has none to keep).

        Why: a fit moves the same static splats at the same frame times step after step; with the weights
        computed once, a step evaluates only what depends on the field's parameters.
        """
        if resolve_backend(self.hexplane_backend, static.means) != "matmul":
            return None
        planes = [list(level) for level in self.grids]
        frames = torch.arange(self.config.num_frames, device=static.means.device)
        return hexplane_weights(planes, static.means / self.config.bounds, self.frame_times(frames))

    def forward(
        self, static: Gaussians, frames: Tensor | list[int], *, grad_mask: Tensor | None = None
    ) -> MotionOutput:
        """Move the static splats to the given frames.

        Args:
            static: N frozen Gaussians (means [N, 3], quats [N, 4], scales [N, 3]).
            frames: [F] integer frame indices in [0, num_frames).
            grad_mask: optional [F, N] bool; where False the per-splat outputs are detached (the
                reference's random 10 % gradient sparsification). The global head always gets gradients.

        Returns:
            `MotionOutput` with [F, N, ...] tensors; frames equal to 0 are returned unchanged when
            `static_first_frame` is set.
        """
        cfg = self.config
        frames = torch.as_tensor(frames, dtype=torch.long).reshape(-1)  # [F], host-side: no device sync
        if (
            frames.device.type == "cpu"
            and frames.numel()
            and (int(frames.min()) < 0 or int(frames.max()) >= cfg.num_frames)
        ):
            raise ValueError(f"frame indices must be in [0, {cfg.num_frames}), got {frames.tolist()}")
        return self.move_frames(static, frames.to(static.means.device), grad_mask=grad_mask)

    def move_frames(
        self,
        static: Gaussians,
        frames: Tensor,
        *,
        grad_mask: Tensor | None = None,
        weights: HexplaneWeights | None = None,
    ) -> MotionOutput:
        """`forward` for frames [F] given as a long tensor on the splats' device, unchecked.

        Why unchecked: checking the indices reads them on the host; the motion fit's step calls this with
        indices from its own schedule and must never wait on the device.

        Args:
            weights: `sampling_weights(static)` of these very splats, if the caller keeps them (same result).
        """
        t = self.frame_times(frames)
        h = None
        if weights is not None:
            h = hexplane_features_weighted([list(level) for level in self.grids], weights, frames)
        return self._move(static, t, frames == 0, grad_mask, h)

    def _move(
        self,
        static: Gaussians,
        t: Tensor,
        is_first: Tensor,
        grad_mask: Tensor | None = None,
        h: Tensor | None = None,
    ) -> MotionOutput:
        """Move the static splats to times t [F] in [-1, 1]; `is_first` [F] marks frame 0 (kept static); h, the
        HexPlane features at those times if the caller has them."""
        cfg = self.config
        f, n = t.shape[0], static.means.shape[0]
        x0, q0, s0 = static.means, static.quats, static.scales  # [N, 3], [N, 4], [N, 3]
        if h is None:
            h = self._features_at(x0, t)  # [F, N, D]

        # 1. global rigid motion from the mean feature of all Gaussians.
        if self.global_rot is not None and self.rigid is not None:
            h_mean = h.mean(dim=1)  # [F, D]
            euler = torch.sigmoid(self.global_rot(h_mean)) * (2 * math.pi) - math.pi  # [F, 3]
            trans = torch.sigmoid(self.global_trans(h_mean)) * 2.0 - 1.0  # [F, 3]
            r_g, left_g = self.rigid(euler)  # [F, 3, 3], [F, 4, 4]: R(q_g) and q_g ⊗ ·
        else:
            trans = h.new_zeros(f, 3)
            r_g = torch.eye(3, device=h.device, dtype=h.dtype).expand(f, 3, 3)  # identity (graph-safe)
            left_g = torch.eye(4, device=h.device, dtype=h.dtype).expand(f, 4, 4)

        # 2. local offsets.
        means = torch.einsum("fij,nj->fni", r_g, x0) + trans[:, None, :] + self.delta_xyz(h)  # [F, N, 3]
        quats = torch.einsum("fij,nj->fni", left_g, q0) + self.delta_rot(h)  # [F, N, 4]: q_g ⊗ q0 + Δq
        quats = torch.nn.functional.normalize(quats, dim=-1)
        if self.delta_scale is not None:
            scales = torch.exp(torch.log(s0)[None] + self.delta_scale(h))  # [F, N, 3]
        else:
            scales = s0[None].expand(f, n, 3)

        # 3. gradient sparsification and the static first frame.
        if grad_mask is not None:
            keep = grad_mask[..., None]  # [F, N, 1]
            means = torch.where(keep, means, means.detach())
            quats = torch.where(keep, quats, quats.detach())
            scales = torch.where(keep, scales, scales.detach())
        if cfg.static_first_frame:
            is_static = is_first.to(x0.device)[:, None, None]  # [F, 1, 1]
            means = torch.where(is_static, x0[None], means)
            quats = torch.where(is_static, q0[None], quats)
            scales = torch.where(is_static, s0[None], scales)
            eye = torch.eye(3, device=r_g.device, dtype=r_g.dtype).expand(f, 3, 3)
            r_g = torch.where(is_static, eye, r_g)
            trans = torch.where(is_static[:, :, 0], torch.zeros_like(trans), trans)
        return MotionOutput(means=means, quats=quats, scales=scales, global_rotation=r_g, global_translation=trans)

    @torch.no_grad()
    def deform(self, static: Gaussians, frame: int) -> Gaussians:
        """Frame `frame` of the motion as a `Gaussians` (for export and mesh animation)."""
        return self(static, [frame]).frame(static, 0)

    @torch.no_grad()
    def deform_at(self, static: Gaussians, position: float) -> Gaussians:
        """The splats at a fractional frame position in [0, num_frames - 1]: the field is continuous in time.

        Integer positions give exactly `deform(static, k)`. With `static_first_frame`, frame 0 is the static
        model rather than the field at t = -1 (which training never sees), so between frames 0 and 1 the
        splats go linearly from the static model to frame 1 (positions and log-scales linearly,
        orientations by normalised linear blend); everywhere else the field is evaluated at
        t = -1 + 2 · position / (num_frames - 1).
        """
        last = self.config.num_frames - 1
        if not 0.0 <= position <= last:
            raise ValueError(f"frame position must be in [0, {last}], got {position}")
        if float(position).is_integer():
            return self.deform(static, int(position))
        if self.config.static_first_frame and position < 1.0:
            a = self.deform(static, 1)
            w = float(position)
            q1 = torch.where((a.quats * static.quats).sum(-1, keepdim=True) < 0, -a.quats, a.quats)  # same hemisphere
            quats = torch.nn.functional.normalize((1 - w) * static.quats + w * q1, dim=-1)
            scales = torch.exp((1 - w) * torch.log(static.scales) + w * torch.log(a.scales))
            return static.with_(means=(1 - w) * static.means + w * a.means, quats=quats, scales=scales)
        t = torch.tensor([position * (2.0 / last) - 1.0], dtype=torch.float32)
        out = self._move(static, t, torch.zeros(1, dtype=torch.bool))
        return out.frame(static, 0)


__all__ = ["COARSE_GRID", "EulerRigid", "MotionField", "MotionFieldConfig", "MotionOutput", "euler_to_quat"]
