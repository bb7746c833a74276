"""Linear-blend skinning fitted to an animated mesh: a few rigid bones and sparse convex vertex weights.

Given rest positions p_i and the positions x_i^f of the same vertices at F frames, find B bones — a rigid
transform (R_b^f, t_b^f) per bone and frame — and per-vertex weights w_ib (at most `influences` of them
non-zero, all ≥ 0, summing to 1) so that the linear-blend-skinned vertices

    s_i^f = Σ_b w_ib (R_b^f p_i + t_b^f)

are as close as possible to x_i^f in the least-squares sense. This is the skinning decomposition of Le &
Deng's "Smooth Skinning Decomposition with Rigid Bones" (SSDR), also what EA's Dem Bones solves, written as
the same alternating solve:

1. initialisation: k-means on the vertex trajectories, then rounds of "fit one rigid transform per cluster,
   move every vertex to the cluster whose transform explains its trajectory best";
2. weights, per vertex: constrained least squares over a few candidate bones (the current ones and the best
   single-bone fits), by projected gradient on the simplex, then an exact solve over every subset of the
   `influences` largest;
3. transforms, per bone and frame: weighted Procrustes (Kabsch) of the rest vertices onto what the other
   bones leave unexplained (block coordinate descent, one bone at a time);

repeating 2 and 3. Every step lowers (or keeps) the same squared error, so the error never rises.

A skin is what game engines and DCC tools animate, retarget and blend; the per-vertex residual that it
cannot express is returned separately (`SkinningFit.residual`) for an optional morph-target correction.

Examples:
    >>> fit = fit_skinning(rest, frames, bones=16)  # doctest: +SKIP
    >>> err = np.linalg.norm(fit.skin(rest) - frames, axis=-1)  # [F, V]  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from a3d_cli.gaussians.arap import best_rotations


@dataclass(frozen=True)
class SkinningFit:
    """A fitted linear-blend skin.

    Attributes:
        joints: [V, K] int64 bone index of each influence (K = influences; unused slots have weight 0).
        weights: [V, K] float64 weights, ≥ 0, each row summing to 1.
        rotations: [F, B, 3, 3] rotation of each bone at each frame (det +1).
        translations: [F, B, 3] translation of each bone at each frame.
        centres: [B, 3] rest centre of each bone (weighted centroid of the rest vertices it moves), where a
            joint of the skeleton goes.
    """

    joints: np.ndarray
    weights: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    centres: np.ndarray

    @property
    def num_bones(self) -> int:
        return int(self.rotations.shape[1])

    def skin(self, rest: np.ndarray) -> np.ndarray:
        """Skinned positions [F, V, 3] of the rest vertices [V, 3]."""
        return skin_vertices(rest, self.joints, self.weights, self.rotations, self.translations)

    def residual(self, rest: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """[F, V, 3] what the skin misses: frames − skinned positions."""
        return np.asarray(frames, dtype=np.float64) - self.skin(rest)


def skin_vertices(
    rest: np.ndarray,  # [V, 3]
    joints: np.ndarray,  # [V, K]
    weights: np.ndarray,  # [V, K]
    rotations: np.ndarray,  # [F, B, 3, 3]
    translations: np.ndarray,  # [F, B, 3]
) -> np.ndarray:
    """Linear-blend skinning: s_i^f = Σ_k w_ik (R_{j_ik}^f p_i + t_{j_ik}^f).

    Returns:
        [F, V, 3] float64.
    """
    p = np.asarray(rest, dtype=np.float64)
    r = np.asarray(rotations, dtype=np.float64)[:, joints]  # [F, V, K, 3, 3]
    t = np.asarray(translations, dtype=np.float64)[:, joints]  # [F, V, K, 3]
    moved = np.einsum("fvkab,vb->fvka", r, p) + t  # [F, V, K, 3]
    return np.einsum("vk,fvka->fva", np.asarray(weights, dtype=np.float64), moved)


def fit_skinning(
    rest: np.ndarray,  # [V, 3]
    frames: np.ndarray,  # [F, V, 3]
    bones: int,
    *,
    influences: int = 4,
    iterations: int = 20,
    candidates: int = 8,
    seed: int = 0,
) -> SkinningFit:
    """Fit a linear-blend skin with `bones` rigid bones to an animated mesh (SSDR's alternating solve).

    Args:
        rest: [V, 3] rest positions (the pose the weights are bound in; usually frame 0).
        frames: [F, V, 3] positions of the same vertices at each frame.
        bones: number of bones B (1 ≤ B ≤ V). Bones that end up moving no vertex are dropped, so the
            result may have fewer.
        influences: most bones per vertex (glTF's JOINTS_0/WEIGHTS_0 hold 4).
        iterations: rounds of (weights, transforms) updates after the initialisation.
        candidates: bones considered per vertex in each weight update (≥ influences).
        seed: seeds the k-means initialisation.

    Returns:
        `SkinningFit` (bones renumbered densely, in order of first use).

    Raises:
        ValueError: shapes disagree, values are not finite, or counts are out of range.
    """
    p = torch.as_tensor(np.asarray(rest), dtype=torch.float64)
    x = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 1:
        raise ValueError(f"rest must have shape [V, 3], got {list(p.shape)}")
    if x.ndim != 3 or x.shape[1:] != p.shape or x.shape[0] < 1:
        raise ValueError(f"frames must have shape [F, V, 3] = [F, {p.shape[0]}, 3], got {list(x.shape)}")
    if not (torch.isfinite(p).all() and torch.isfinite(x).all()):
        raise ValueError("rest and frames must be finite")
    v = p.shape[0]
    if not 1 <= bones <= v:
        raise ValueError(f"bones must be between 1 and the vertex count {v}, got {bones}")
    if not 1 <= influences <= 8:
        raise ValueError(f"influences must be between 1 and 8, got {influences}")
    candidates = max(candidates, influences)
    influences = min(influences, bones)
    gen = torch.Generator().manual_seed(seed)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small batched ops: intra-op threads add overhead on a busy CPU
    try:
        labels = _init_clusters(p, x, bones, gen)
        rot, trans = _cluster_transforms(p, x, labels, bones)  # [F, B, 3, 3], [F, B, 3]
        for _ in range(4):  # rigid re-assignment rounds (k-means with rigid transforms as centres)
            labels = _single_bone_errors(p, x, rot, trans).argmin(dim=1)
            rot, trans = _cluster_transforms(p, x, labels, bones)
        joints = labels[:, None].repeat(1, influences)  # [V, K]
        weights = torch.zeros(v, influences, dtype=torch.float64)
        weights[:, 0] = 1.0
        for _ in range(iterations):
            joints, weights = _update_weights(p, x, rot, trans, joints, weights, influences, candidates)
            rot, trans = _update_transforms(p, x, rot, trans, joints, weights)
    finally:
        torch.set_num_threads(threads)
    return _compact(p, joints, weights, rot, trans)


def solve_bone_transforms(
    rest: np.ndarray,  # [V, 3]
    frames: np.ndarray,  # [F, V, 3]
    joints: np.ndarray,  # [V, K]
    weights: np.ndarray,  # [V, K]
    num_bones: int,
    sweeps: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Best rigid bone transforms for new frames with the weights kept fixed (block coordinate descent).

    Used to key a fitted skin at other times than the ones it was fitted on.

    Returns:
        (rotations [F, B, 3, 3], translations [F, B, 3]) float64.
    """
    p = torch.as_tensor(np.asarray(rest), dtype=torch.float64)
    x = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    j = torch.as_tensor(np.asarray(joints), dtype=torch.long)
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64)
    f = x.shape[0]
    rot = torch.eye(3, dtype=torch.float64).expand(f, num_bones, 3, 3).clone()
    trans = torch.zeros(f, num_bones, 3, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # start from each bone's best rigid fit to the vertices it dominates, then refine
        labels = j.gather(1, w.argmax(dim=1, keepdim=True))[:, 0]  # [V]
        rot, trans = _cluster_transforms(p, x, labels, num_bones, rot, trans)
        for _ in range(sweeps):
            rot, trans = _update_transforms(p, x, rot, trans, j, w)
    finally:
        torch.set_num_threads(threads)
    return rot.numpy(), trans.numpy()


# -- initialisation ---------------------------------------------------------------------------------


def _init_clusters(p: Tensor, x: Tensor, k: int, gen: torch.Generator, rounds: int = 12) -> Tensor:
    """[V] cluster labels of k-means (k-means++ seeding) on the vertex trajectories (rest + every frame)."""
    feats = torch.cat([p[:, None], x.transpose(0, 1)], dim=1).reshape(p.shape[0], -1)  # [V, 3(F+1)]
    v = feats.shape[0]
    first = int(torch.randint(v, (1,), generator=gen))
    centres = [feats[first]]
    d2 = ((feats - centres[0]) ** 2).sum(1)  # [V]
    for _ in range(1, k):
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / v)
        nxt = int(torch.multinomial(probs, 1, generator=gen))
        centres.append(feats[nxt])
        d2 = torch.minimum(d2, ((feats - feats[nxt]) ** 2).sum(1))
    c = torch.stack(centres)  # [k, D]
    labels = torch.cdist(feats, c).argmin(1)
    for _ in range(rounds):
        counts = torch.bincount(labels, minlength=k).to(feats.dtype)  # [k]
        sums = torch.zeros_like(c).index_add_(0, labels, feats)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        labels = torch.cdist(feats, c).argmin(1)
    return labels


def _cluster_transforms(
    p: Tensor, x: Tensor, labels: Tensor, k: int, rot: Tensor | None = None, trans: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per cluster and frame, the rigid transform that best maps the cluster's rest vertices onto its frames.

    Empty clusters keep `rot`/`trans` (identity when not given).
    """
    f = x.shape[0]
    if rot is None or trans is None:
        rot = torch.eye(3, dtype=p.dtype).expand(f, k, 3, 3).clone()
        trans = torch.zeros(f, k, 3, dtype=p.dtype)
    else:
        rot, trans = rot.clone(), trans.clone()
    for b in range(k):
        idx = (labels == b).nonzero()[:, 0]
        if idx.numel() == 0:
            continue
        ones = torch.ones(f, idx.numel(), dtype=p.dtype)
        rot[:, b], trans[:, b] = _procrustes(p[idx], x[:, idx], ones)
    return rot, trans


def _procrustes(p: Tensor, q: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted rigid fit per frame: min Σ_i |w_i (R p_i + t) − q_i|² over rotations R and translations t.

    With a_i = w_i², the optimum has centroids p̄ = Σ a p / Σ a, q̄ = Σ w q / Σ a, the rotation of the
    covariance Σ w_i (p_i − p̄) q_iᵀ (Kabsch), and t = q̄ − R p̄. With w = 1 it is the plain Kabsch fit.

    Args:
        p: [S, 3] rest points.
        q: [F, S, 3] targets.
        w: [F, S] weights (here the same row for every frame).

    Returns:
        (R [F, 3, 3], t [F, 3]).
    """
    a = w * w  # [F, S]
    mass = a.sum(1, keepdim=True).clamp_min(1e-300)  # [F, 1]
    p_bar = (a[..., None] * p[None]).sum(1) / mass  # [F, 3]
    q_bar = (w[..., None] * q).sum(1) / mass  # [F, 3]
    rot = best_rotations(p[None] - p_bar[:, None], q, w)  # [F, 3, 3]
    t = q_bar - torch.einsum("fab,fb->fa", rot, p_bar)
    return rot, t


# -- the alternating solve --------------------------------------------------------------------------


def _single_bone_errors(p: Tensor, x: Tensor, rot: Tensor, trans: Tensor) -> Tensor:
    """[V, B] squared error of moving each vertex rigidly with each bone alone, summed over frames."""
    b = rot.shape[1]
    out = torch.empty(p.shape[0], b, dtype=p.dtype)
    for j in range(b):
        pred = torch.einsum("fab,vb->fva", rot[:, j], p) + trans[:, j, None]  # [F, V, 3]
        out[:, j] = ((pred - x) ** 2).sum((0, 2))
    return out


def _update_weights(
    p: Tensor,
    x: Tensor,
    rot: Tensor,
    trans: Tensor,
    joints: Tensor,
    weights: Tensor,
    influences: int,
    candidates: int,
) -> tuple[Tensor, Tensor]:
    """New (joints [V, K], weights [V, K]): per vertex, min |A w − x|² with w ≥ 0, Σ w = 1, ≤ K non-zeros."""
    v, b = p.shape[0], rot.shape[1]
    c = min(candidates, b)
    err = _single_bone_errors(p, x, rot, trans)  # [V, B]
    # the current influences always stay candidates (so the error cannot rise), then the best single bones
    keep = (torch.nn.functional.one_hot(joints, b).bool() & (weights > 0)[..., None]).any(1)  # [V, B]
    score = torch.where(keep, torch.full_like(err, -1.0), err)
    cand = score.topk(c, dim=1, largest=False).indices  # [V, C]
    gram, lin = _normal_equations(p, x, rot, trans, cand)  # [V, C, C], [V, C]
    # warm start from the current weights on their candidates
    w0 = torch.zeros(v, c, dtype=p.dtype)
    match = cand[:, :, None] == joints[:, None, :]  # [V, C, K]
    w0 = (match * weights[:, None, :]).sum(-1)
    w0 = w0 / w0.sum(1, keepdim=True).clamp_min(1e-300)
    w = _simplex_lsq(gram, lin, w0)  # [V, C]
    top = w.topk(influences, dim=1).indices  # [V, K]
    sub = cand.gather(1, top)  # [V, K] bone ids
    g_k = gram.gather(1, top[:, :, None].expand(-1, -1, c)).gather(2, top[:, None, :].expand(-1, influences, -1))
    l_k = lin.gather(1, top)
    w_k = _exact_simplex_lsq(g_k, l_k)  # [V, K]
    # keep the old weights where the new ones are not better (numerically)
    old_cost = _cost(gram, lin, w0)
    new_cost = _cost(g_k, l_k, w_k)
    better = new_cost <= old_cost + 1e-12 * old_cost.abs().clamp_min(1e-30)
    joints = torch.where(better[:, None], sub, joints)
    weights = torch.where(better[:, None], w_k, weights)
    return joints, weights


def _normal_equations(p: Tensor, x: Tensor, rot: Tensor, trans: Tensor, cand: Tensor) -> tuple[Tensor, Tensor]:
    """Gram matrices G = AᵀA [V, C, C] and Aᵀx [V, C], A's column c = bone cand[v, c] applied to p_v."""
    f = x.shape[0]
    v, c = cand.shape
    r = rot[:, cand]  # [F, V, C, 3, 3]
    t = trans[:, cand]  # [F, V, C, 3]
    cols = torch.einsum("fvcab,vb->fvca", r, p) + t  # [F, V, C, 3]
    cols = cols.permute(1, 0, 3, 2).reshape(v, f * 3, c)  # [V, 3F, C]
    target = x.permute(1, 0, 2).reshape(v, f * 3)  # [V, 3F]
    gram = cols.transpose(1, 2) @ cols  # [V, C, C]
    lin = (cols.transpose(1, 2) @ target[..., None])[..., 0]  # [V, C]
    return gram, lin


def _cost(gram: Tensor, lin: Tensor, w: Tensor) -> Tensor:
    """wᵀGw − 2 hᵀw per row (the squared error up to the constant |x|²)."""
    return torch.einsum("vi,vij,vj->v", w, gram, w) - 2.0 * (lin * w).sum(1)


def _project_simplex(y: Tensor) -> Tensor:
    """Euclidean projection of each row of y [V, C] onto {w ≥ 0, Σ w = 1} (sort-based)."""
    u = y.sort(dim=1, descending=True).values
    css = u.cumsum(1) - 1.0
    k = torch.arange(1, y.shape[1] + 1, dtype=y.dtype)
    cond = u - css / k > 0
    rho = cond.to(y.dtype).cumsum(1).argmax(1, keepdim=True)  # last index where cond holds
    theta = css.gather(1, rho) / (rho + 1).to(y.dtype)
    return (y - theta).clamp_min(0.0)


def _simplex_lsq(gram: Tensor, lin: Tensor, w0: Tensor, steps: int = 40) -> Tensor:
    """min wᵀGw − 2hᵀw on the simplex, per row: accelerated projected gradient (FISTA) from w0."""
    step = 1.0 / (2.0 * torch.linalg.eigvalsh(gram)[:, -1:].clamp_min(1e-300))  # [V, 1] 1 / Lipschitz
    w = w0.clone()
    y = w0.clone()
    tk = 1.0
    for _ in range(steps):
        grad = 2.0 * ((gram @ y[..., None])[..., 0] - lin)
        w_new = _project_simplex(y - step * grad)
        tk_new = (1.0 + (1.0 + 4.0 * tk * tk) ** 0.5) / 2.0
        y = w_new + ((tk - 1.0) / tk_new) * (w_new - w)
        w, tk = w_new, tk_new
    return w


def _exact_simplex_lsq(gram: Tensor, lin: Tensor) -> Tensor:
    """Exact min wᵀGw − 2hᵀw on the simplex for small K, by trying every support (KKT on the affine hull)."""
    v, k = lin.shape
    scale = torch.diagonal(gram, dim1=1, dim2=2).mean(1).clamp_min(1e-300)  # [V]
    best = torch.zeros(v, k, dtype=gram.dtype)
    best[:, 0] = 1.0
    best_cost = _cost(gram, lin, best)
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            idx = torch.tensor(subset)
            g = gram[:, idx][:, :, idx] + 1e-12 * scale[:, None, None] * torch.eye(size, dtype=gram.dtype)
            kkt = torch.zeros(v, size + 1, size + 1, dtype=gram.dtype)
            kkt[:, :size, :size] = 2.0 * g
            kkt[:, :size, size] = 1.0
            kkt[:, size, :size] = 1.0
            rhs = torch.cat([2.0 * lin[:, idx], torch.ones(v, 1, dtype=gram.dtype)], dim=1)
            sol, info = torch.linalg.solve_ex(kkt, rhs)
            w_s = sol[:, :size]
            w = torch.zeros(v, k, dtype=gram.dtype)
            w[:, idx] = w_s
            ok = (info == 0) & (w_s >= 0).all(1) & torch.isfinite(w_s).all(1)
            cost = _cost(gram, lin, torch.where(ok[:, None], w, best))
            improve = ok & (cost < best_cost)
            best = torch.where(improve[:, None], w, best)
            best_cost = torch.where(improve, cost, best_cost)
    return best / best.sum(1, keepdim=True)


def _update_transforms(
    p: Tensor, x: Tensor, rot: Tensor, trans: Tensor, joints: Tensor, weights: Tensor
) -> tuple[Tensor, Tensor]:
    """One sweep of per-bone weighted Procrustes against the residual the other bones leave."""
    rot, trans = rot.clone(), trans.clone()
    b = rot.shape[1]
    moved = torch.einsum("fvkab,vb->fvka", rot[:, joints], p) + trans[:, joints]  # [F, V, K, 3]
    recon = torch.einsum("vk,fvka->fva", weights, moved)  # [F, V, 3]
    for j in range(b):
        mask = (joints == j) & (weights > 0)  # [V, K]
        idx = mask.any(1).nonzero()[:, 0]  # [S]
        if idx.numel() == 0:
            continue
        w = (weights[idx] * mask[idx]).sum(1)  # [S]
        ps = p[idx]
        own = torch.einsum("fab,sb->fsa", rot[:, j], ps) + trans[:, j, None]  # [F, S, 3]
        q = x[:, idx] - recon[:, idx] + w[None, :, None] * own  # [F, S, 3]
        r_new, t_new = _procrustes(ps, q, w[None].expand(x.shape[0], -1))
        new = torch.einsum("fab,sb->fsa", r_new, ps) + t_new[:, None]
        recon[:, idx] += w[None, :, None] * (new - own)
        rot[:, j], trans[:, j] = r_new, t_new
    return rot, trans


def _compact(p: Tensor, joints: Tensor, weights: Tensor, rot: Tensor, trans: Tensor) -> SkinningFit:
    """Drop bones that move no vertex, renumber the rest, sort each vertex's influences by weight."""
    order = weights.argsort(dim=1, descending=True)
    weights = weights.gather(1, order)
    joints = joints.gather(1, order)
    used = torch.unique(joints[weights > 0])
    remap = torch.full((rot.shape[1],), -1, dtype=torch.long)
    remap[used] = torch.arange(used.numel())
    joints = torch.where(weights > 0, remap[joints], torch.zeros_like(joints))
    rot, trans = rot[:, used], trans[:, used]
    b = used.numel()
    mass = torch.zeros(b, dtype=p.dtype).index_add_(0, joints.reshape(-1), weights.reshape(-1))
    centres = (
        torch.zeros(b, 3, dtype=p.dtype).index_add_(
            0, joints.reshape(-1), (weights[..., None] * p[:, None]).reshape(-1, 3)
        )
        / mass.clamp_min(1e-300)[:, None]
    )
    return SkinningFit(
        joints=joints.numpy(),
        weights=weights.numpy(),
        rotations=rot.numpy(),
        translations=trans.numpy(),
        centres=centres.numpy(),
    )


def bind_space_residual(
    joints: np.ndarray,  # [V, K]
    weights: np.ndarray,  # [V, K]
    rotations: np.ndarray,  # [F, B, 3, 3]
    residual: np.ndarray,  # [F, V, 3]
) -> np.ndarray:
    """Morph deltas d (applied before skinning) that add `residual` after skinning.

    A glTF player morphs first and skins after, so a delta d_i moves vertex i at frame f by
    A_i^f d_i with A_i^f = Σ_k w_ik R_{j_ik}^f; d = (A_i^f)⁻¹ r_i^f (pseudo-inverse where A is near-singular,
    which only happens when a vertex blends nearly opposite rotations).

    Returns:
        [F, V, 3] float64.
    """
    a = np.einsum("vk,fvkab->fvab", np.asarray(weights, np.float64), np.asarray(rotations, np.float64)[:, joints])
    r = np.asarray(residual, dtype=np.float64)
    return np.einsum("fvab,fvb->fva", np.linalg.pinv(a, rcond=1e-6), r)


def fit_animation_skin(
    rest: np.ndarray,  # [V, 3]
    frames: np.ndarray,  # [K, V, 3]
    bones: int,
    *,
    welded: np.ndarray | None = None,  # [V]
    max_fit_frames: int = 16,
    iterations: int = 20,
    seed: int = 0,
) -> SkinningFit:
    """A skin for every frame of an exported clip: weights fitted on a subset of frames, bones keyed on all.

    Why the split: the weight solve dominates the cost and grows with the frame count, while a clip sampled
    at 24 fps has several times the motion's own frames with little new information between them. The
    weights are fitted on at most `max_fit_frames` evenly spaced frames; the bone transforms are then solved
    for every frame with the weights fixed.

    Args:
        rest: [V, 3] bind positions.
        frames: [K, V, 3] positions at each exported frame.
        bones: bones to fit.
        welded: [V] index of the welded vertex each vertex is a copy of (UV-seam copies share one), or
            None. Copies get the same weights, so seams never open.
        max_fit_frames: frames the weights are fitted on.
        iterations, seed: as `fit_skinning`.

    Returns:
        `SkinningFit` over all V vertices and K frames.
    """
    rest = np.asarray(rest, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.float64)
    if welded is None:
        rep, inverse = np.arange(rest.shape[0]), np.arange(rest.shape[0])
    else:
        _, rep, inverse = np.unique(np.asarray(welded), return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    k = frames.shape[0]
    pick = np.unique(np.linspace(0, k - 1, min(k, max_fit_frames)).round().astype(np.int64))
    fit = fit_skinning(rest[rep], frames[pick][:, rep], min(bones, len(rep)), iterations=iterations, seed=seed)
    rot, trans = solve_bone_transforms(rest[rep], frames[:, rep], fit.joints, fit.weights, fit.num_bones)
    return SkinningFit(
        joints=fit.joints[inverse], weights=fit.weights[inverse], rotations=rot, translations=trans, centres=fit.centres
    )


__all__ = [
    "SkinningFit",
    "bind_space_residual",
    "fit_animation_skin",
    "fit_skinning",
    "skin_vertices",
    "solve_bone_transforms",
]
