"""Tile binning and front-to-back alpha compositing of projected splats: the "torch" backend's compositor.

What gsplat's `isect_tiles` + `rasterize_to_pixels` compute (3DGS, classic mode), in plain PyTorch,
with its per-pixel rules (stated densely, pixel by splat, in `a3d_cli.kernels.rasterize_ref`).

How it stays fast on a CPU without an all-pairs (pixels × splats) tensor:

1. Binning: each visible splat lists the tiles (tile_size² pixels) its box overlaps and its α ≥ 1/255
   ellipse reaches; pairs are sorted by (image, tile, depth), so every tile owns a contiguous,
   depth-ordered run of splat ids.
2. Sweeping: slots are processed in depth blocks of `block_size`; a block evaluates a dense
   [tiles, pixels, block] tensor only for tiles that still have splats left and pixels not yet opaque
   (early termination drops the rest), chunked to `chunk_elems` elements so memory stays bounded and
   written into reused buffers. The quadratic form is separable over a tile's rows and columns, so σ
   costs two passes per element.
3. Backward: a custom autograd Function recomputes the same sweep front to back and derives the
   gradients in closed form (nothing of size pixels × splats is kept between forward and backward).
   `composite_tiles_autograd` is a plain-autograd twin of the sweep, used by the tests to check the
   hand-derived backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from a3d_cli.kernels.projection_ref import ALPHA_MAX, ALPHA_MIN, T_MIN


@dataclass(frozen=True)
class TileBins:
    """Which splats touch which tile, front to back.

    Attributes:
        flat_ids: [M] int64 indices into the I·N projected splats, grouped by tile, each group sorted
            by depth (front first).
        offsets: [I·TH·TW + 1] int64, tile t owns flat_ids[offsets[t]:offsets[t+1]].
        tile_size: tile edge in pixels.
        tiles_x, tiles_y: TW, TH tiles per image row / column.
        num_images: I.
    """

    flat_ids: Tensor  # [M]
    offsets: Tensor  # [I*TH*TW + 1]
    tile_size: int
    tiles_x: int
    tiles_y: int
    num_images: int

    @property
    def counts(self) -> Tensor:
        """[I·TH·TW] splats per tile."""
        return self.offsets[1:] - self.offsets[:-1]


PAIRS_PER_STEP = 1 << 21
"""(splat, tile) pairs `bin_tiles` expands and tests at once. Why a bound: the test's float64 temporaries take a
few hundred bytes a pair, so a scan of millions of splats, each near several tiles, expanded at once would need
many GB; in steps, memory follows the pairs kept (docs/PERF.md, "`prepare` on large assets")."""
SPLATS_PER_STEP = 1 << 20  # visible splats whose tile boxes `bin_tiles` computes at once (~150 bytes each)


@torch.no_grad()
def bin_tiles(
    means2d: Tensor,  # [I, N, 2]
    radii: Tensor,  # [I, N, 2] int
    depths: Tensor,  # [I, N]
    width: int,
    height: int,
    tile_size: int,
    conics: Tensor | None = None,  # [I, N, 3]
    opacities: Tensor | None = None,  # [I, N]
    pairs_per_step: int = PAIRS_PER_STEP,
) -> TileBins:
    """List, per tile, the splats that can reach it, front to back.

    A splat with centre m and radius r covers tiles floor((m - r)/s) .. ceil((m + r)/s) - 1 per axis,
    clipped to the image (gsplat's tile rule); radius 0 means culled. Given conics and opacities, a
    (splat, tile) pair is also dropped when no pixel centre of the tile lies inside the ellipse where
    α ≥ 1/255, i.e. min over the tile of dᵀ·conic·d exceeds 2·ln(255·opacity): those pixels would all
    be skipped, so the image is unchanged and small splats reach fewer tiles.

    The pairs are made and tested in steps of consecutive splats (front to back), at most
    `pairs_per_step` pairs each unless one splat alone covers more, so memory follows the kept pairs rather
    than every candidate pair at once; the result does not depend on the step.

    Returns:
        TileBins for I images of TH×TW tiles.
    """
    I, N = depths.shape
    s = tile_size
    tw, th = math.ceil(width / s), math.ceil(height / s)
    visible = (radii > 0).all(dim=-1).reshape(-1)  # [I*N]
    ids = visible.nonzero().squeeze(1)  # [V]
    ids = ids[torch.argsort(depths.reshape(-1)[ids], stable=True)]  # [V] front to back
    box = _TileBoxes(means2d.reshape(-1, 2), radii.reshape(-1, 2), N, s, tw, th)
    cone = None
    if conics is not None and opacities is not None:
        cone = (conics.reshape(-1, 3), opacities.reshape(-1))
    keys, pids = [], []
    for part in ids.split(SPLATS_PER_STEP):
        for key, pid in box.pairs(part, cone, pairs_per_step):
            keys.append(key)
            pids.append(pid)
    key = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.int32, device=means2d.device)  # [M]
    pid = torch.cat(pids) if pids else torch.zeros(0, dtype=torch.int32, device=means2d.device)  # [M]
    del keys, pids
    order = torch.argsort(key, stable=True)  # [M] stable keeps depth order inside a tile
    counts = torch.bincount(key, minlength=I * th * tw)  # [I*TH*TW]
    offsets = torch.zeros(I * th * tw + 1, dtype=torch.long, device=means2d.device)  # [I*TH*TW + 1]
    offsets[1:] = torch.cumsum(counts, 0)
    flat_ids = pid.index_select(0, order).long()  # [M]
    return TileBins(flat_ids=flat_ids, offsets=offsets, tile_size=s, tiles_x=tw, tiles_y=th, num_images=I)


@dataclass(frozen=True)
class _TileBoxes:
    """The tile boxes of projected splats and the (splat, tile) pairs in them: one step of `bin_tiles`.

    Attributes:
        means2d: [I·N, 2] pixel-space centres; radii: [I·N, 2] int box half-sizes in pixels.
        n: splats per image (N); s: tile edge in pixels; tw, th: tiles per image row / column.
    """

    means2d: Tensor  # [I*N, 2]
    radii: Tensor  # [I*N, 2]
    n: int
    s: int
    tw: int
    th: int

    def pairs(
        self, ids: Tensor, cone: tuple[Tensor, Tensor] | None, pairs_per_step: int
    ) -> list[tuple[Tensor, Tensor]]:
        """(tile key, splat id) pairs of the splats `ids` ([V] flat ids, in order), in `ids` order and, per
        splat, tile-row-major; with `cone` (conics [I·N, 3], opacities [I·N]), only the pairs whose tile the
        splat's α ≥ 1/255 ellipse reaches. Made in steps of at most `pairs_per_step` pairs (a splat is never
        split).

        Returns:
            one (key [m] tile index over all images, pid [m] splat id) per step, int32 where they fit.
        """
        s, tw, th = self.s, self.tw, self.th
        m = self.means2d[ids].to(torch.float64)  # [V, 2]
        r = self.radii[ids].to(torch.float64)  # [V, 2]
        lo = torch.floor((m - r) / s)  # [V, 2]
        hi = torch.ceil((m + r) / s)  # [V, 2]
        x0, y0 = lo[:, 0].clamp(0, tw).long(), lo[:, 1].clamp(0, th).long()  # [V]
        x1, y1 = hi[:, 0].clamp(0, tw).long(), hi[:, 1].clamp(0, th).long()  # [V]
        nx, ny = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)  # [V]
        per = nx * ny  # [V] tiles per splat
        tile0 = (ids // self.n) * (th * tw) + y0 * tw + x0  # [V] the box's first tile over all images
        sp = None
        if cone is not None:
            con = cone[0][ids].to(m.dtype)  # [V, 3]
            limit = 2.0 * torch.log(cone[1][ids].to(m.dtype).clamp(min=ALPHA_MIN) / ALPHA_MIN)  # [V]
            a, b, c = con.T  # [V] each
            sp = torch.stack([m[:, 0], m[:, 1], a, b, c, limit, -b / c, -b / a])  # [8, V]
        ends = torch.cumsum(per, 0)  # [V]
        out = []
        first = 0
        while first < ids.numel():  # splats first..last-1 hold at most pairs_per_step pairs (or one splat)
            done = int(ends[first - 1]) if first else 0
            bound = torch.tensor([done + pairs_per_step], device=ends.device)  # [1]
            last = max(first + 1, int(torch.searchsorted(ends, bound, right=True)))
            sel = slice(first, last)
            out.append(
                self._expand(ids[sel], x0[sel], y0[sel], nx[sel], per[sel], tile0[sel], None if sp is None else sp[:, sel])
            )
            first = last
        return out

    def _expand(
        self, ids: Tensor, x0: Tensor, y0: Tensor, nx: Tensor, per: Tensor, tile0: Tensor, sp: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Expand splats [v] to their (tile key, splat id) pairs, dropping the tiles the ellipse misses.

        Per-pair fields are gathered column-wise in one go: contiguous [fields, M] rows (strided columns make
        every later elementwise op several times slower), int32 where the values fit."""
        s, tw = self.s, self.tw
        dev = ids.device
        start = torch.cumsum(per, 0) - per  # [v]
        n_pairs = int(per.sum())
        n_tiles = self.means2d.shape[0] // self.n * self.th * tw  # I·TH·TW
        idx_t = torch.int32 if max(self.means2d.shape[0], n_tiles, n_pairs) < 2**31 else torch.long
        fields = torch.stack([x0, y0, nx, tile0, start, ids]).to(idx_t)  # [6, v]
        src = torch.repeat_interleave(torch.arange(ids.numel(), device=dev), per, output_size=n_pairs)  # [M]
        px0, py0, pnx, pbase, pstart, pid = fields.index_select(1, src)  # [M] each
        local = torch.arange(n_pairs, device=dev, dtype=idx_t) - pstart  # [M] index inside the box
        ty = local.div(pnx, rounding_mode="floor")  # [M] row offset in the box
        tx = local - ty * pnx  # [M] column offset in the box
        key = pbase + ty * tw + tx  # [M] tile index over all images
        if sp is not None:
            corner_x = (px0 + tx).to(sp.dtype) * s  # [M]
            corner_y = (py0 + ty).to(sp.dtype) * s  # [M]
            reach = _ellipse_meets_tile(sp.index_select(1, src), corner_x, corner_y, s)  # [M]
            key, pid = key[reach], pid[reach]  # [M'] each
        return key, pid


def _ellipse_meets_tile(sp: Tensor, corner_x: Tensor, corner_y: Tensor, s: int) -> Tensor:
    """Whether some pixel centre of a tile has α ≥ 1/255 (with a small safety margin).

    The minimum of the convex quadratic q(d) = dᵀ·conic·d over the rectangle of pixel centres is 0 when
    the splat centre is inside it, else it lies on an edge, where it is the clamped 1-D minimiser.

    Args:
        sp: [8, M] per pair: centre (mx, my), conic (a, b, c), limit 2·ln(255·o), -b/c, -b/a.
        corner_x, corner_y: [M] tile corner in pixels; pixel centres span corner + 0.5 .. corner + s - 0.5.

    Returns:
        [M] bool.
    """
    mx, my, a, b, c, limit, rx, ry = sp  # [M] each
    x_lo = corner_x - mx + 0.5  # [M] dx of the tile's first pixel column
    y_lo = corner_y - my + 0.5  # [M]
    x_hi, y_hi = x_lo + (s - 1), y_lo + (s - 1)  # [M]
    ex = torch.stack([x_lo, x_hi])  # [2, M] the two vertical edges (dx fixed)
    ey = torch.stack([y_lo, y_hi])  # [2, M] the two horizontal edges (dy fixed)
    dy = torch.maximum(torch.minimum(rx * ex, y_hi), y_lo)  # [2, M] best dy on each vertical edge
    dx = torch.maximum(torch.minimum(ry * ey, x_hi), x_lo)  # [2, M] best dx on each horizontal edge
    qv = ex * (a * ex + 2 * b * dy) + c * dy * dy  # [2, M]
    qh = dx * (a * dx + 2 * b * ey) + c * ey * ey  # [2, M]
    best = torch.minimum(qv.amin(0), qh.amin(0))  # [M]
    inside = (x_lo * x_hi <= 0) & (y_lo * y_hi <= 0)  # [M] the centre lies within the tile's pixel centres
    return inside | (best <= limit * (1 + 1e-5) + 1e-5)


def _pixel_centres(bins: TileBins, tiles: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """x of each column and y of each row of the given tiles (pixel centres at +0.5).

    Returns:
        px: [t, s], py: [t, s]
    """
    s = bins.tile_size
    local = tiles % (bins.tiles_x * bins.tiles_y)  # [t]
    ox = (local % bins.tiles_x) * s  # [t]
    oy = (local // bins.tiles_x) * s  # [t]
    step = torch.arange(s, device=tiles.device, dtype=dtype) + 0.5  # [s]
    return ox.to(dtype)[:, None] + step, oy.to(dtype)[:, None] + step  # [t, s], [t, s]


class _Workspace:
    """Reusable work buffers of one sweep.

    Why: the sweep runs ~15 elementwise passes per block; allocating fresh multi-megabyte tensors for
    each of them costs more than the arithmetic (page faults on every new allocation), so each pass
    writes into one of a few buffers sized to `chunk_elems` and stays cache-resident.
    """

    def __init__(self, n_float: int, n_bool: int, elems: int, dtype: torch.dtype, device: torch.device) -> None:
        self.f = [torch.empty(elems, dtype=dtype, device=device) for _ in range(n_float)]
        self.b = [torch.empty(elems, dtype=torch.bool, device=device) for _ in range(n_bool)]

    def views(self, shape: tuple[int, ...]) -> tuple[list[Tensor], list[Tensor]]:
        n = math.prod(shape)
        return [t[:n].view(shape) for t in self.f], [t[:n].view(shape) for t in self.b]


def _sweep(
    means2d: Tensor,  # [I*N, 2]
    conics: Tensor,  # [I*N, 3]
    log_opac: Tensor,  # [I*N]
    feats: Tensor,  # [I*N, F]
    bins: TileBins,
    block_size: int,
    chunk_elems: int,
    grad_out: Tensor | None = None,  # [I*TT, F+1, P]
    out: Tensor | None = None,  # [I*TT, F+1, P]
) -> tuple[Tensor, ...]:
    """One front-to-back pass over all tiles: the forward (grad_out None) or the backward.

    Per pixel and depth slot k (front first), with T the transmittance before the block:
    α_k = min(0.999, o·exp(-σ)) or 0 below 1/255; T_k = T·Π_{j≤k}(1-α_j), zeroed from the first slot
    where it is ≤ 1e-4 on (the stop rule; a stopped pixel carries T = 0 into later blocks);
    w_k = α_k·T_{k-1} = T_k·α_k/(1-α_k) for kept slots, 0 otherwise; out = Σ_k w_k·(f_k, 1).

    Backward, with g_k = G·(f_k, 1) and A_k = Σ_{j>k} w_j g_j (the rest of the pixel's sum):
    ∂L/∂f_k = w_k G, ∂L/∂α_k = (T_k g_k - A_k)/(1-α_k) for kept slots, ∂α/∂σ' = -α where α is
    neither clamped nor skipped (σ' = σ - log o), and σ' is a quadratic in the centre and the conic.

    Returns:
        Forward: (out [I·TT, F+1, P],) with alpha last. Backward: gradients of the four inputs.
    """
    s = bins.tile_size
    P = s * s
    nf = feats.shape[-1] + 1  # features and the alpha channel
    dt, dev = feats.dtype, feats.device
    n_tiles = bins.offsets.numel() - 1
    counts = bins.counts  # [I*TT]
    backward = grad_out is not None
    skip_below = float(torch.nextafter(torch.tensor(ALPHA_MIN, dtype=dt), torch.tensor(0.0, dtype=dt)))
    one = torch.ones((), dtype=dt, device=dev)

    trans = torch.ones(n_tiles, P, dtype=dt, device=dev)  # [I*TT, P] T per pixel, 0 once stopped
    if backward:
        grads = torch.zeros(feats.shape[0], 6 + nf, dtype=dt, device=dev)  # [I*N, 2+3+1+F+1] as the table
        # rest = Σ over slots not yet visited of w·g: starts at G·out and drains block by block;
        # float64 keeps the running subtraction from eating small late terms.
        rest = (grad_out.double() * out.double()).sum(1)  # [I*TT, P]
    else:
        acc = torch.zeros(n_tiles, nf, P, dtype=dt, device=dev)  # [I*TT, F+1, P]

    # One gather per block: per-splat parameters packed in one row, with a ones column for alpha.
    table = torch.cat([means2d, conics, log_opac[:, None], feats, torch.ones_like(log_opac)[:, None]], dim=-1)
    kb = block_size
    rows_per_chunk = max(1, chunk_elems // (P * kb))
    ws = _Workspace(5 if backward else 3, 2 if backward else 0, min(rows_per_chunk, max(n_tiles, 1)) * P * kb, dt, dev)
    slot = torch.arange(kb, device=dev)  # [kb]
    step = torch.arange(s, device=dev, dtype=dt) + 0.5  # [s] pixel centres inside a tile
    local_tile = torch.arange(n_tiles, device=dev) % (bins.tiles_x * bins.tiles_y)  # [I*TT]
    tile_x0 = ((local_tile % bins.tiles_x) * s).to(dt)  # [I*TT]
    tile_y0 = ((local_tile // bins.tiles_x) * s).to(dt)  # [I*TT]
    k0 = 0
    while True:
        active = ((counts > k0) & (trans > 0).any(dim=1)).nonzero().squeeze(1)  # [A] tiles with work left
        if active.numel() == 0:
            break
        for rows in active.split(rows_per_chunk):
            ta = rows.numel()
            # 1. This block's slots (padding past a tile's count gets opacity ~0).
            k = k0 + slot  # [kb]
            ok = k[None, :] < counts[rows, None]  # [ta, kb]
            fid = bins.flat_ids.index_select(0, torch.where(ok, bins.offsets[rows, None] + k[None, :], 0).view(-1))
            prm = table.index_select(0, fid).view(ta, kb, -1)  # [ta, kb, 6 + F+1]
            fid = fid.view(ta, kb)  # [ta, kb]
            mx, my, ca, cb, cc, lo = prm[..., :6].unbind(-1)  # [ta, kb] each
            lo = torch.where(ok, lo, -1e4)  # [ta, kb]
            f_t = prm[..., 6:].transpose(1, 2)  # [ta, F+1, kb]
            dx = mx[:, None, :] - (tile_x0[rows, None, None] + step[None, :, None])  # [ta, s(j), kb]
            dy = my[:, None, :] - (tile_y0[rows, None, None] + step[None, :, None])  # [ta, s(i), kb]
            t_prev = trans.index_select(0, rows)  # [ta, P]

            # 2. alpha: -σ' = log o - ½c·dy² - ½a·dx² - b·dx·dy, separable over rows and columns.
            fl, bl = ws.views((ta, P, kb))
            a_buf, om, t_in = fl[:3]  # [ta, P, kb] each
            a4 = a_buf.view(ta, s, s, kb)
            row = (lo[:, None, :] - 0.5 * cc[:, None, :] * dy * dy)[:, :, None, :]  # [ta, s(i), 1, kb]
            col = (-0.5 * ca[:, None, :] * dx * dx)[:, None, :, :]  # [ta, 1, s(j), kb]
            torch.add(row, col, out=a4)
            a4.addcmul_((-cb[:, None, :] * dy)[:, :, None, :], dx[:, None, :, :])
            a_buf.clamp_(min=-30.0).exp_()  # o·exp(-σ); the clamp avoids exp's slow underflow path
            if backward:
                live = torch.le(a_buf, ALPHA_MAX, out=bl[0])  # [ta, P, kb] not clamped (skipped ones have α = 0)
            a_buf.clamp_(max=ALPHA_MAX)
            torch.nn.functional.threshold_(a_buf, skip_below, 0.0)  # α, 0 where skipped
            torch.add(one, a_buf, alpha=-1, out=om)  # 1 - α

            # 3. Transmittance after each slot, zeroed from the stop on; weights w = T_k·α/(1-α).
            torch.cumprod(om, dim=-1, out=t_in)
            t_in.mul_(t_prev[:, :, None])
            torch.nn.functional.threshold_(t_in, T_MIN, 0.0)
            trans.index_copy_(0, rows, t_in[:, :, -1])  # T after the block (0 if the pixel stopped)
            a_buf.div_(om)  # α/(1-α)
            if not backward:
                t_in.mul_(a_buf)  # w
                acc.index_put_((rows,), torch.bmm(f_t, t_in.transpose(1, 2)), accumulate=True)
                continue

            # 4. Backward: closed-form gradients of this block.
            w, g = fl[3:5]  # [ta, P, kb] each
            torch.mul(t_in, a_buf, out=w)
            go = grad_out.index_select(0, rows)  # [ta, F+1, P]
            gf = torch.bmm(go, w)  # [ta, F+1, kb] ∂L/∂(f, 1)
            torch.bmm(go.transpose(1, 2), f_t, out=g)  # [ta, P, kb] G·(f, 1)
            w.mul_(g)  # w·g
            after = om  # reuse: 1 - α is not needed any more (α/(1-α) is in a_buf)
            torch.cumsum(w, dim=-1, out=after)
            r_prev = rest.index_select(0, rows)  # [ta, P] float64
            rest.index_copy_(0, rows, r_prev - after[:, :, -1].double())
            after.neg_().add_(r_prev.to(dt)[:, :, None])  # A_k = Σ_{j>k} w_j g_j
            live.logical_and_(torch.gt(t_in, 0, out=bl[1]))  # kept and not clamped
            g.mul_(t_in).sub_(after).mul_(a_buf).mul_(live)  # -∂L/∂σ' = α/(1-α)·(T_k g_k - A_k)
            d4 = g.view(ta, s, s, kb)  # [ta, s(i), s(j), kb]  (-∂L/∂σ')
            s_col = d4.sum(1)  # [ta, s(j), kb]
            s_row = d4.sum(2)  # [ta, s(i), kb]
            torch.mul(d4, dx[:, None, :, :], out=after.view(ta, s, s, kb))
            s_cross = after.view(ta, s, s, kb).sum(2)  # [ta, s(i), kb] Σ_j S_ij·dx_j
            sdx = (s_col * dx).sum(1)  # [ta, kb]
            sdy = (s_row * dy).sum(1)  # [ta, kb]
            # Per-slot gradients in the table's column order; padded slots are exact zeros (α = 0 there).
            g_slot = torch.cat(
                [
                    torch.stack([ca * sdx + cb * sdy, cc * sdy + cb * sdx], dim=-1).neg_(),  # means2d
                    torch.stack(
                        [0.5 * (s_col * dx * dx).sum(1), (s_cross * dy).sum(1), 0.5 * (s_row * dy * dy).sum(1)], -1
                    ).neg_(),  # conic
                    s_row.sum(1)[..., None],  # log opacity
                    gf.transpose(1, 2),  # features and the ones column
                ],
                dim=-1,
            )  # [ta, kb, 6 + F+1]
            # index_put_ rather than index_add_, which is pathologically slow with CPU threads.
            grads.index_put_((fid.view(-1),), g_slot.view(ta * kb, -1), accumulate=True)
        k0 += kb

    if backward:
        return grads[:, 0:2], grads[:, 2:5], grads[:, 5], grads[:, 6:-1]
    return (acc,)


class _TileComposite(torch.autograd.Function):
    """Autograd glue: forward sweep, backward = recomputing sweep with closed-form gradients."""

    @staticmethod
    def forward(ctx, means2d, conics, log_opac, feats, bins, block_size, chunk_elems):  # noqa: D102
        (out,) = _sweep(means2d, conics, log_opac, feats, bins, block_size, chunk_elems)
        ctx.bins, ctx.block_size, ctx.chunk_elems = bins, block_size, chunk_elems
        ctx.save_for_backward(means2d, conics, log_opac, feats, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        means2d, conics, log_opac, feats, out = ctx.saved_tensors
        grads = _sweep(
            means2d,
            conics,
            log_opac,
            feats,
            ctx.bins,
            ctx.block_size,
            ctx.chunk_elems,
            grad_out=grad_out.contiguous(),
            out=out,
        )
        return (*grads, None, None, None)


def composite_tiles(
    means2d: Tensor,  # [I*N, 2]
    conics: Tensor,  # [I*N, 3]
    log_opacities: Tensor,  # [I*N]
    feats: Tensor,  # [I*N, F]
    bins: TileBins,
    block_size: int = 32,
    chunk_elems: int = 1 << 20,
) -> Tensor:
    """Composite per-splat features front to back into tiles (differentiable).

    Args:
        means2d: [I·N, 2] pixel-space centres.
        conics: [I·N, 3] inverse 2D covariances (a, b, c).
        log_opacities: [I·N] log of the opacities.
        feats: [I·N, F] per-splat features to blend (colours, depth, ...).
        bins: from `bin_tiles`.
        block_size: depth slots evaluated per step; smaller stops sooner behind opaque surfaces,
            larger has less Python overhead.
        chunk_elems: cap on elements of one [tiles, pixels, block] tensor (memory knob).

    Returns:
        [I·TH·TW, F+1, s²] blended features per tile pixel (row-major inside the tile), then alpha.
    """
    return _TileComposite.apply(means2d, conics, log_opacities, feats, bins, block_size, chunk_elems)


def composite_tiles_autograd(
    means2d: Tensor,  # [I*N, 2]
    conics: Tensor,  # [I*N, 3]
    log_opacities: Tensor,  # [I*N]
    feats: Tensor,  # [I*N, F]
    bins: TileBins,
) -> Tensor:
    """Same result as `composite_tiles`, written as plain autograd over a padded [tiles, P, K] tensor.

    Why: a second, simpler derivation the tests compare the closed-form backward with. Memory is
    O(tiles · pixels · max splats per tile); only for small scenes.

    Returns:
        [I·TH·TW, F+1, s²]
    """
    s = bins.tile_size
    counts = bins.counts  # [T]
    n_tiles = counts.numel()
    kmax = max(int(counts.max()) if n_tiles else 0, 1)
    k = torch.arange(kmax, device=feats.device)  # [K]
    ok = k[None, :] < counts[:, None]  # [T, K]
    feats = torch.cat([feats, torch.ones_like(feats[:, :1])], dim=-1)  # [I*N, F+1] alpha channel last
    if bins.flat_ids.numel() == 0:
        return torch.zeros(n_tiles, feats.shape[-1], s * s, dtype=feats.dtype, device=feats.device)
    fid = bins.flat_ids[torch.where(ok, bins.offsets[:-1, None] + k[None, :], 0)]  # [T, K]
    mx, my = means2d[fid].unbind(-1)  # [T, K]
    ca, cb, cc = conics[fid].unbind(-1)  # [T, K]
    opac = torch.exp(log_opacities[fid]) * ok  # [T, K]
    px, py = _pixel_centres(bins, torch.arange(n_tiles, device=feats.device), feats.dtype)  # [T, s]
    dx = (mx[:, None, None, :] - px[:, None, :, None]).expand(n_tiles, s, s, kmax)  # [T, s(i), s(j), K]
    dy = (my[:, None, None, :] - py[:, :, None, None]).expand(n_tiles, s, s, kmax)  # [T, s(i), s(j), K]
    sigma = 0.5 * (ca[:, None, None] * dx**2 + cc[:, None, None] * dy**2) + cb[:, None, None] * dx * dy
    raw = opac[:, None, None] * torch.exp(-sigma)  # [T, s, s, K]
    alpha = torch.where(raw < ALPHA_MIN, torch.zeros_like(raw), raw.clamp(max=ALPHA_MAX))  # [T, s, s, K]
    alpha = alpha.reshape(n_tiles, s * s, kmax)  # [T, P, K]
    t_in = torch.cumprod(1.0 - alpha, dim=-1)  # [T, P, K]
    t_ex = torch.cat([torch.ones_like(t_in[..., :1]), t_in[..., :-1]], dim=-1)  # [T, P, K]
    keep = (t_in > T_MIN).detach()  # [T, P, K] T is non-increasing, so this is the stop rule
    w = alpha * t_ex * keep  # [T, P, K]
    return torch.bmm(w, feats[fid] * ok[..., None]).transpose(1, 2)  # [T, F+1, P]
