"""One optimisation step of the motion fit, as fixed-shape pieces that CUDA can replay as graphs.

Why: at the reconstruct stage's sizes a step's GPU work is small (a few milliseconds) but made of
hundreds of small kernels: the HexPlane lookups and heads, the quaternion and scale updates, the losses,
the ARAP residuals and all their gradients. Launched one by one from Python, the step takes as long as
the host needs to launch them, so a slower CPU makes the whole stage slower. Here the step is

1. `FieldPiece`: frames [F] → moved splats (means, quats, scales) [F, N, ·];
2. the rasterizer;
3. `LossPiece`: renders, moved means, frames, drawn ARAP points → total loss (and the RGB term);
4. the backward pass through all three.

Pieces 1 and 3 are pure functions of their tensor inputs with no host synchronisation and no random
draws (the draws happen before, eagerly, in the order the loop always used). On CUDA, by default, all
three are recorded together as one `WholeStepPiece`, forward and backward, with
`torch.cuda.make_graphed_callables` and replayed every later step: the render then uses tile lists of a
fixed length (`a3d_cli.kernels.rasterize_fixed`), whose overflow check rides on the log-interval read
(`FitStep.read_back`). With `graph_whole_step` off (or if that recording fails) pieces 1 and 3 are recorded
apart around gsplat's own `rasterization` (`render_splats`), which reads its list size back once per step.
On the CPU, or when recording fails, the same modules run eagerly, so CPU tests exercise the same step.

With the whole step recorded the host never waits in a step; otherwise only inside gsplat. Frame lists arrive as host integers and
are written (from pinned memory, without waiting) into the recording's own input buffers only when they
change, and the ARAP points are drawn straight into its buffers, so a replay copies no inputs; the
renderer's static inputs (colours, opacities, cameras, background) are copied out to F frames once per
frame count instead of at every render. `OptimizerStep` records the optimiser step as a graph too.

A graph has fixed shapes, and the progressive schedule's frame count F grows from 1 to 15. The pieces
are recorded at a few *bucket* sizes B (`FitSettings.graph_frame_counts`; an eager warm-up, capture and
instantiation each), or, with no buckets given, once per F: buckets make fewer recordings for more
work per step. A step with F active frames runs in the smallest bucket
B >= F, its frame list padded with frame 0 and a per-frame weight of 0 on the padding
(`MaskedLossPiece`). The padded frames are evaluated by the field; the piecewise step never rasterizes
them (the renders of the F real frames are padded with zeros instead), the whole step renders them with
no splat listed (their background), and the weights remove
them from every loss term, so they contribute exactly zero loss and zero gradient; the real frames'
loss and gradients equal the unpadded step's up to float rounding (the means are normalised by the
weight sum instead of by the tensor size). The previous bucket's recording is dropped when the bucket
changes (B only grows along the schedule).

Examples:
    >>> step = FitStep(motion, static, viewmats, Ks, 256, targets, masks, settings, arap)  # doctest: +SKIP
    >>> loss, loss_rgb = step([1, 2, 3], generator)  # forward + backward  # doctest: +SKIP
    >>> OptimizerStep(optimizer, graphed=True)()  # then the optimiser step  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from a3d_cli.device import to_device_async

if TYPE_CHECKING:
    from a3d_cli.gaussians.arap import NeighbourPrior
    from a3d_cli.gaussians.container import Gaussians
    from a3d_cli.gaussians.motion_field import MotionField
    from a3d_cli.gaussians.motion_fit import FitSettings
    from a3d_cli.kernels.hexplane import HexplaneWeights
    from a3d_cli.kernels.rasterize_fixed import FixedLooks
    from a3d_cli.render.splats import SplatLooks

WARMUP_FIRST = 3
"""Eager warm-up calls before the first recording (library handles, workspaces, allocator)."""
WARMUP_LATER = 1
"""Eager warm-up calls before recording a new frame count (libraries are initialised by then)."""
PAD_FRAME = 0
"""Frame index the padding of a bucket evaluates (any valid index: its weight is 0)."""
LIST_MARGIN = 1.25
"""Tile-list capacity of a whole-step recording, as a multiple of the intersections counted when recording.
The motion moves splats a little around their static places, so the count stays near its first value."""
LIST_ROUNDING = 1 << 16
"""Capacities are rounded up to a multiple of this (few distinct sizes, aligned buffers)."""


class FieldPiece(nn.Module):
    """Frames → moved splats: the motion field evaluated on the frozen static splats.

    A module (not a closure) so that `make_graphed_callables` records gradients for the field's
    parameters, which are this module's only parameters.
    """

    def __init__(self, motion: MotionField, static: Gaussians, weights: HexplaneWeights | None = None) -> None:
        """weights: `motion.sampling_weights(static)` when the caller has made it already (made here otherwise)."""
        super().__init__()
        self.motion = motion
        self.static = static
        self.weights = weights if weights is not None else motion.sampling_weights(static)
        """The frozen splats' HexPlane weights at every frame, made once (None with the `grid_sample` backend)."""

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frames: [F] long on the splats' device. Returns means [F, N, 3], quats [F, N, 4], scales [F, N, 3]."""
        out = self.motion.move_frames(self.static, frames, weights=self.weights)
        return out.means, out.quats, out.scales


class LossPiece(nn.Module):
    """Renders + moved means → `λ_rgb·MSE + λ_mask·MSE + λ_arap·ARAP` (no parameters, no randomness).

    Args:
        targets: [16, V, H, W, 3] video frames on grey (frame-major).
        masks: [16, V, H, W] foreground masks.
        settings: the loss weights.
        arap: the local motion prior (ARAP or the affine one), or None (weight 0).
        arap_weight: 0-d tensor holding λ_arap, read at every call (a recorded graph reads its memory, so
            the caller can change the weight between steps in place); default `settings.lambda_arap`.
    """

    def __init__(
        self,
        targets: Tensor,
        masks: Tensor,
        settings: FitSettings,
        arap: NeighbourPrior | None,
        arap_weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.targets, self.masks = targets, masks
        self.lambda_rgb, self.lambda_mask = settings.lambda_rgb, settings.lambda_mask
        if arap_weight is None:
            arap_weight = torch.tensor(settings.lambda_arap, device=targets.device)
        self.lambda_arap = arap_weight
        self.arap = arap if settings.lambda_arap > 0 else None

    def forward(
        self, rgb: Tensor, alpha: Tensor, means: Tensor, frames: Tensor, *drawn: Tensor
    ) -> tuple[Tensor, Tensor]:
        """rgb [F, V, H, W, 3], alpha [F, V, H, W], means [F, N, 3], frames [F], drawn = ARAP (points, neighbours).

        Returns:
            the total loss (differentiable) and the RGB MSE (detached, for logging).
        """
        loss_rgb = torch.nn.functional.mse_loss(rgb, self.targets.index_select(0, frames))
        loss_mask = torch.nn.functional.mse_loss(alpha, self.masks.index_select(0, frames))
        loss = self.lambda_rgb * loss_rgb + self.lambda_mask * loss_mask
        if self.arap is not None:
            loss = loss + self.lambda_arap * self.arap.energy(means, *drawn)  # un-sparsified, as the reference
        return loss, loss_rgb.detach()


class MaskedLossPiece(LossPiece):
    """`LossPiece` on a bucket of B frames of which only those with weight 1 count (the rest weight 0).

    Each mean is taken over the weighted frames only (sum of the per-frame sums ÷ (weight sum · elements
    per frame)), and the ARAP sum is weighted per frame, so the loss is `LossPiece`'s on the real frames and a
    padded frame adds exactly zero to the loss and to every gradient.
    """

    def forward(
        self, rgb: Tensor, alpha: Tensor, means: Tensor, frames: Tensor, weights: Tensor, *drawn: Tensor
    ) -> tuple[Tensor, Tensor]:
        """rgb [B, V, H, W, 3], alpha [B, V, H, W], means [B, N, 3], frames [B], weights [B] (1 real, 0 padding).

        Returns:
            the total loss (differentiable) and the RGB MSE over the real frames (detached, for logging).
        """
        count = weights.sum()
        loss_rgb = _weighted_mse(rgb, self.targets.index_select(0, frames), weights, count)
        loss_mask = _weighted_mse(alpha, self.masks.index_select(0, frames), weights, count)
        loss = self.lambda_rgb * loss_rgb + self.lambda_mask * loss_mask
        if self.arap is not None:
            loss = loss + self.lambda_arap * self.arap.energy(means, *drawn, frame_weights=weights)
        return loss, loss_rgb.detach()


def _weighted_mse(x: Tensor, y: Tensor, weights: Tensor, count: Tensor) -> Tensor:
    """Mean squared error over the frames (dim 0) with weight 1: x, y [B, ...], weights [B], count = weights.sum()."""
    per_frame = (x - y).square().flatten(1).sum(dim=1)  # [B]
    return (per_frame * weights).sum() / (count * x[0].numel())


class WholeStepPiece(nn.Module):
    """Frames → loss through the field, the fixed-length-list render and the masked loss: a whole step's forward.

    Why one piece: with the rasterizer inside, the recorded step holds every kernel of the forward and the
    backward, so a step costs the host two graph launches whatever its frame count, and nothing in it waits
    for the device. Every frame of the bucket is rendered; the padding's images list no splat (the
    render's `image_mask`), so they cost the rasterizer almost nothing, and their weight is 0 in the loss.

    Args:
        field: the field piece (its parameters are this module's).
        loss: the masked loss piece.
        looks: `a3d_cli.kernels.rasterize_fixed.fixed_looks` for the bucket's B frames.
        size: the square render size; views: V, the cameras per frame.
        capacity: the tile lists' length.
        excess: where a step records by how much its lists overflowed (shared by the recordings).
    """

    def __init__(
        self,
        field: FieldPiece,
        loss: MaskedLossPiece,
        looks: FixedLooks,
        size: int,
        views: int,
        capacity: int,
        excess: Tensor,
    ) -> None:
        super().__init__()
        self.field, self.loss, self.looks = field, loss, looks
        self.size, self.views, self.capacity = size, views, capacity
        self.excess = excess
        """0-d int64, shared: raised to (list total − capacity) when a step's lists overflow (0 = none did)."""

    def forward(self, frames: Tensor, loss_frames: Tensor, weights: Tensor, *drawn: Tensor) -> tuple[Tensor, Tensor]:
        """frames, loss_frames [B] long, weights [B] (1 real, 0 padding), drawn = ARAP draws → (loss, RGB MSE)."""
        from a3d_cli.kernels.rasterize_fixed import rasterize_fixed

        means, quats, scales = self.field(frames)
        image_mask = weights[:, None].expand(-1, self.views).reshape(-1) > 0  # repeat_interleave would read back
        out = rasterize_fixed(means, quats, scales, self.looks, self.size, self.size, self.capacity, image_mask)
        torch.maximum(self.excess, out.total - self.capacity, out=self.excess)
        return self.loss(out.colors, out.alphas[..., 0], means, loss_frames, weights, *drawn)


def bucket_sizes(frame_counts: Sequence[int], max_frames: int) -> tuple[int, ...]:
    """The recorded frame counts of a fit whose steps have at most `max_frames` frames.

    Sizes above `max_frames` are lowered to it (no bucket is larger than any step needs), and the largest
    bucket is always `max_frames`, so every step has one. An empty `frame_counts` means no buckets (one
    recording per frame count).
    """
    if not frame_counts:
        return ()
    return tuple(sorted({min(int(b), max_frames) for b in frame_counts} | {max_frames}))


@contextmanager
def collection_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a CUDA graph is recorded (restored afterwards).

    Why: a dropped recording is freed only by the collector (`make_graphed_callables` leaves its modules
    and graphs in reference cycles), and torch does not collect before a capture unless
    `torch.compiler.config.force_cudagraph_gc` is set. A collection that falls inside a later capture
    destroys the old graphs there, which CUDA forbids while a stream is capturing, and the new recording
    fails. Held off, the collection happens later, outside any capture, where it is harmless.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def graphs_usable(device: torch.device) -> bool:
    """True where the step's pieces can be recorded as CUDA graphs (a CUDA device)."""
    return device.type == "cuda" and torch.cuda.is_available()


@dataclass
class _Recording:
    """One frame count's recorded pieces and the inputs they read at fixed addresses.

    A recorded piece copies each input into its own buffer unless it is handed that very buffer, so the
    step writes its per-step inputs (frames, weights, ARAP draws) straight into these and saves the copies.
    """

    key: tuple[int, bool | str]
    """(frames the pieces see, padded/masked, or "whole" for a `WholeStepPiece`)."""
    field: Callable
    loss: Callable | None
    frames: Tensor
    """[B] long: the field piece's frame input."""
    loss_frames: Tensor
    """[B] long: the loss piece's frame input (the same values)."""
    weights: Tensor | None
    """[B] float: the masked loss piece's frame weights (None = not masked)."""
    drawn: tuple[Tensor, ...]
    """ARAP's drawn points [S] and neighbour rows [S, K] (empty = no ARAP term)."""
    holds: tuple[tuple[int, ...], int]
    """The host values now in the frame and weight inputs: (frame list, real frame count)."""
    whole: WholeStepPiece | None = None
    """The recorded whole-step piece (then `field` is its graphed call and `loss` is unused), or None."""


class FitStep:
    """Forward and backward of one motion-fit step (the optimiser step is the caller's).

    A step reads nothing back from the device: frame lists arrive as host integers, their device copies
    are made without waiting (pinned memory), and everything else stays on the device. With the rasterizer
    outside the recording (`graph_whole_step` off), gsplat waits once per step to size its tile-intersection
    list (docs/reconstruct.md).

    Args:
        motion: the field being fitted (its parameters receive the gradients).
        static: the N frozen splats it moves.
        viewmats: [V, 4, 4] and Ks: [V, 3, 3], the video cameras; size: the square render size.
        targets: [16, V, S, S, 3] and masks: [16, V, S, S], frame-major, on the splats' device.
        settings: loss weights, `grad_fraction`, `frames_per_step` and `graph_frame_counts`.
        arap: the local motion prior (ARAP or the affine one; None = none).
        cuda_graphs: record the pieces as CUDA graphs where `graphs_usable` (ignored elsewhere).
        on_notice: receives one line if recording fails (the step then stays eager).
        pad_frames: run every step in its bucket of `settings.graph_frame_counts` (padded, weighted);
            None = exactly when the pieces are recorded as graphs (padding buys nothing eagerly).
    """

    def __init__(
        self,
        motion: MotionField,
        static: Gaussians,
        viewmats: Tensor,
        Ks: Tensor,
        size: int,
        targets: Tensor,
        masks: Tensor,
        settings: FitSettings,
        arap: NeighbourPrior | None,
        *,
        cuda_graphs: bool = True,
        on_notice: Callable[[str], None] | None = None,
        pad_frames: bool | None = None,
    ) -> None:
        self.static, self.viewmats, self.Ks, self.size = static, viewmats, Ks, size
        self.device = targets.device
        self.grad_fraction = settings.grad_fraction
        self.field = FieldPiece(motion, static)
        self.arap_weight = torch.tensor(settings.lambda_arap, device=targets.device)
        """λ_arap of the next step, shared by every loss piece and recording (`set_arap_weight`)."""
        self._arap_value = float(settings.lambda_arap)  # what `arap_weight` holds (host copy)
        self._loss_inputs = (targets, masks, settings, arap, self.arap_weight)
        self.loss = LossPiece(*self._loss_inputs)
        self.masked_loss = MaskedLossPiece(*self._loss_inputs)
        self.use_graphs = cuda_graphs and graphs_usable(static.means.device)
        self.on_notice = on_notice
        most = targets.shape[0] - 1  # frame 0 is never trained
        if settings.frames_per_step:
            most = min(most, settings.frames_per_step)
        pad = self.use_graphs if pad_frames is None else pad_frames
        self._pad_with_graphs = pad_frames is None
        self.buckets = bucket_sizes(settings.graph_frame_counts, most) if pad else ()
        """Frame counts steps are padded to (empty: every step runs at its own frame count)."""
        self.recordings = 0
        """How many frame counts were recorded as graphs (0 = the step ran eagerly throughout)."""
        self.record_seconds = 0.0
        """Wall seconds spent recording graphs (warm-up calls, capture and instantiation)."""
        self.failure = ""
        """Why a recording failed ("" = none did): the frame count, the piece kind and the error."""
        self._graphed: _Recording | None = None
        self._weights: dict[tuple[int, int], Tensor] = {}  # (real frames, bucket) → [bucket] weights
        self._keep_frames = settings.frames_per_step == 0  # few distinct frame lists: keep their device copies
        self._frames: dict[tuple[int, ...], Tensor] = {}  # frame list → [F] long on the device
        self._looks: tuple[int, SplatLooks] | None = None  # (frames, the renderer's static inputs for them)
        self.whole_step = (
            self.use_graphs and settings.graph_whole_step and settings.grad_fraction >= 1.0 and _gsplat_ready()
        )
        """Record the rasterizer inside the step's graph (`WholeStepPiece`); turned off if a recording fails."""
        self.list_overflows = 0
        """Times a whole-step recording's tile lists were found too short at a `read_back`."""
        self._list_excess = torch.zeros((), dtype=torch.int64, device=self.device)
        self._list_floor = 0  # the least capacity the next whole-step recording gets

    def set_arap_weight(self, weight: float) -> None:
        """Set λ_arap for the following steps (in place: recorded graphs see it; no host synchronisation).

        An unchanged weight launches nothing (Animate3D's constant weight).
        """
        if weight != self._arap_value:
            self.arap_weight.fill_(weight)
            self._arap_value = weight

    def __call__(
        self,
        frames: Sequence[int],
        generator: torch.Generator | None,
        tick: Callable[[str], None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Forward and backward for the given frames; gradients land in the field's `.grad`.

        Args:
            frames: the F frame indices (host integers: the schedule's; never read back from the device).
            generator: device generator for the gradient-sparsification mask and the ARAP draw.
            tick: called with a phase name after each phase ("field", "raster", "loss", "backward";
                for profiling, which synchronises inside it).

        Returns:
            (loss, rgb MSE), 0-d tensors on the device; with graphs, buffers that the next step overwrites.
        """
        from a3d_cli.render.splats import render_splats

        mark = tick or (lambda _name: None)
        real = tuple(int(i) for i in frames)
        f, n = len(real), self.static.means.shape[0]
        bucket = self.bucket(f)
        listed = real + (PAD_FRAME,) * (bucket - f) if bucket else real  # the field sees B frames, the rasterizer F
        if self.whole_step:
            whole = self._whole_recording(listed, f)
            if whole is not None:
                self._fill(whole, listed, f)
                if self.loss.arap is not None:
                    self.loss.arap.draw(generator, out=(whole.drawn[0], whole.drawn[1]))
                loss, loss_rgb = whole.field(whole.frames, whole.loss_frames, whole.weights, *whole.drawn)
                for phase in ("field", "raster", "loss"):
                    mark(phase)
                loss.backward()
                mark("backward")
                return loss, loss_rgb
        rec = self._recording(listed, f, masked=bool(bucket))
        if rec is None:
            field, loss_fn = self.field, (self.masked_loss if bucket else self.loss)
            frames_dev = loss_frames = self._device_frames(listed)
            weights = (self._bucket_weights(f, bucket),) if bucket else ()
            into: tuple[Tensor, Tensor] | None = None
        else:
            self._fill(rec, listed, f)
            field, loss_fn, frames_dev, loss_frames = rec.field, rec.loss, rec.frames, rec.loss_frames
            weights = () if rec.weights is None else (rec.weights,)
            into = (rec.drawn[0], rec.drawn[1]) if rec.drawn else None
        means, quats, scales = field(frames_dev)
        moved = (means[:f], quats[:f], scales[:f])  # views: the padding is never rendered
        if self.grad_fraction < 1.0:
            # the reference's sparsification: image-loss gradients reach a random subset of splats only
            keep = torch.rand(f, n, 1, generator=generator, device=means.device) < self.grad_fraction
            moved = tuple(torch.where(keep, x, x.detach()) for x in moved)
        mark("field")
        rgb, alpha = render_splats(self.static, *moved, self.viewmats, self.Ks, self.size, looks=self._splat_looks(f))
        if bucket > f:  # zero renders for the padding (weight 0 in the loss)
            rgb = torch.nn.functional.pad(rgb, (0, 0) * (rgb.ndim - 1) + (0, bucket - f))
            alpha = torch.nn.functional.pad(alpha, (0, 0) * (alpha.ndim - 1) + (0, bucket - f))
        mark("raster")
        drawn: tuple[Tensor, ...] = ()
        if self.loss.arap is not None:
            drawn = self.loss.arap.draw(generator, out=into)
        loss, loss_rgb = loss_fn(rgb, alpha, means, loss_frames, *weights, *drawn)
        mark("loss")
        loss.backward()
        mark("backward")
        return loss, loss_rgb

    def read_back(self, loss: Tensor, loss_rgb: Tensor) -> tuple[float, float]:
        """The host values of a step's (loss, RGB MSE), in one transfer that also checks the tile lists.

        With whole-step recordings, a list overflow since the last read (a step whose splats covered more
        tiles than its recording's capacity: its lists lost their last entries) is counted, and the current
        recording is dropped so that the next step records again with room for it.
        """
        if not self.whole_step:
            lv, mse = torch.stack((loss, loss_rgb)).tolist()
            return lv, mse
        values = torch.stack((loss.double(), loss_rgb.double(), self._list_excess.double()))
        lv, mse, excess = values.tolist()
        if excess > 0:
            self.list_overflows += 1
            self._list_excess.zero_()
            held = self._graphed.whole.capacity if self._graphed is not None and self._graphed.whole else 0
            self._list_floor = max(self._list_floor, held + int(excess))
            self._graphed = None
        return lv, mse

    def _whole_recording(self, frames: tuple[int, ...], f: int) -> _Recording | None:
        """The whole-step recording for this frame count (recorded on first use), or None if recording failed."""

        def failed(exc: Exception) -> str:  # the step's pieces are recorded without the rasterizer instead
            self.whole_step = False
            self.failure = f"whole step ({len(frames)} frames): {type(exc).__name__}: {exc}"
            return f"reconstruct: the rasterizer runs outside the CUDA graphs ({self.failure})"

        return self._recorded((len(frames), "whole"), lambda: self._record_whole(frames, f), failed)

    def _record_whole(self, frames: tuple[int, ...], f: int) -> _Recording:
        """Record field, render and loss as one piece at this frame count (`WholeStepPiece`).

        The tile lists' capacity is `LIST_MARGIN` times the intersections of all B frames' render (the padding
        is frame 0, so this is about what B real frames list) with the field as it is now (one read back per
        recording), at least what an overflow asked for.
        """
        from a3d_cli.kernels.rasterize_fixed import fixed_looks, intersections_needed
        from a3d_cli.render.splats import splat_looks

        b, v = len(frames), self.viewmats.shape[0]
        warmup = WARMUP_FIRST if self.recordings == 0 else WARMUP_LATER
        field_frames = self._device_frames(frames).clone()
        loss_frames = field_frames.clone()
        weights = self._bucket_weights(f, b).clone()
        drawn = self._sample_draws()
        lk = splat_looks(self.static, self.viewmats, self.Ks, b)
        looks = fixed_looks(lk.opacities, lk.colors, lk.sh_degree, lk.viewmats, lk.Ks, lk.backgrounds)
        field = FieldPiece(self.field.motion, self.static, self.field.weights)
        with torch.no_grad():
            moved = field(field_frames)
        # every frame of the bucket counted as real: the same recording serves the steps up to B real frames
        need, filler_ok = intersections_needed(*moved, looks, self.size, self.size)
        if not filler_ok:
            raise RuntimeError("the filler splat at the origin falls outside a view (cameras not around the origin)")
        capacity = -(-max(int(need * LIST_MARGIN), self._list_floor, 1) // LIST_ROUNDING) * LIST_ROUNDING
        piece = WholeStepPiece(
            field, MaskedLossPiece(*self._loss_inputs), looks, self.size, v, capacity, self._list_excess
        )
        with collection_paused():
            graphed = torch.cuda.make_graphed_callables(
                piece,
                (field_frames, loss_frames, weights, *drawn),
                num_warmup_iters=warmup,
                allow_unused_input=True,
                pool=torch.cuda.graph_pool_handle(),  # a pool of its own: see `_recorded`
            )
        self._list_excess.zero_()  # the warm-up calls ran on sample draws
        return _Recording((b, "whole"), graphed, None, field_frames, loss_frames, weights, drawn, (frames, f), piece)

    def _sample_draws(self) -> tuple[Tensor, ...]:
        """Zero-filled ARAP draw buffers of the shapes a step draws (empty without ARAP), for a recording."""
        if self.loss.arap is None:
            return ()
        arap, n = self.loss.arap, self.static.means.shape[0]
        count = arap.sample_points if arap.sample_points > 0 else n
        k = arap.k if arap.resample else arap.neighbours.idx.shape[1]
        return (
            torch.zeros(count, dtype=torch.long, device=self.device),
            torch.zeros(count, k, dtype=torch.long, device=self.device),
        )

    def bucket(self, frames: int) -> int:
        """The padded frame count of a step with `frames` frames (0 = not padded: no bucket holds it)."""
        return next((b for b in self.buckets if b >= frames), 0)

    def _device_frames(self, frames: tuple[int, ...]) -> Tensor:
        """[F] long on the device, copied from pinned host memory without waiting (kept when there are few)."""
        got = self._frames.get(frames)
        if got is None:
            got = to_device_async(torch.tensor(frames, dtype=torch.long), self.device)
            if self._keep_frames:
                self._frames[frames] = got
        return got

    def _bucket_weights(self, f: int, bucket: int) -> Tensor:
        """[bucket] float: 1 for the first f frames, 0 for the padding (made once per (f, bucket), no host sync)."""
        key = (f, bucket)
        if key not in self._weights:
            self._weights[key] = (torch.arange(bucket, device=self.device) < f).to(torch.float32)
        return self._weights[key]

    def _splat_looks(self, f: int) -> SplatLooks:
        """The renderer's static inputs copied out to f frames, made once per frame count (the latest kept)."""
        from a3d_cli.render.splats import splat_looks

        if self._looks is None or self._looks[0] != f:
            self._looks = None  # frees the previous count's copies first
            self._looks = (f, splat_looks(self.static, self.viewmats, self.Ks, f))
        return self._looks[1]

    def _fill(self, rec: _Recording, frames: tuple[int, ...], f: int) -> None:
        """Write this step's frames (and weights) into a recording's inputs, only where they changed.

        Compared on the host, so nothing is read back; with every active frame per step (the reference)
        the values change only when the schedule adds a frame, i.e. when a new recording is made.
        """
        if rec.holds == (frames, f):
            return
        src = self._device_frames(frames)
        rec.frames.copy_(src)
        rec.loss_frames.copy_(src)
        if rec.weights is not None:
            rec.weights.copy_(self._bucket_weights(f, rec.weights.shape[0]))
        rec.holds = (frames, f)

    def _recording(self, frames: tuple[int, ...], f: int, masked: bool) -> _Recording | None:
        """The recorded pieces for this frame count (recorded on first use), or None where the step runs eagerly."""
        if not self.use_graphs:
            return None

        def failed(exc: Exception) -> str:  # something that cannot be recorded: stay eager
            self.use_graphs = False
            kind = "padded" if masked else "exact"
            self.failure = f"recording {self.recordings + 1} ({kind}, {len(frames)} frames): {type(exc).__name__}: {exc}"
            if self._pad_with_graphs:  # padding buys nothing eagerly: later steps run at their own frame count
                self.buckets = ()
            return f"reconstruct: CUDA graphs unavailable, running the step eagerly ({self.failure})"

        return self._recorded((len(frames), masked), lambda: self._record(frames, f, masked), failed)

    def _recorded(
        self, key: tuple[int, bool | str], record: Callable[[], _Recording], failed: Callable[[Exception], str]
    ) -> _Recording | None:
        """The held recording if it has `key`, else a new one from `record()` (timed and counted), or None if that fails.

        The previous recording is dropped first (its buffers go back to the pool). On failure `failed(exc)` turns
        off what failed and returns the notice to give once.
        """
        if self._graphed is not None and self._graphed.key == key:
            return self._graphed
        # Each recording takes a fresh memory pool. Reopening the dropped recording's pool would fail whenever a
        # tensor of it outlives its graphs (a step's returned loss waiting for the log read): the pool is then
        # kept with no graph using it, and the allocator refuses to reopen such a pool (an internal assert).
        self._graphed = None
        start = time.perf_counter()
        try:
            self._graphed = record()
        except (RuntimeError, AssertionError, ValueError) as exc:
            notice = failed(exc)
            if self.on_notice is not None:
                self.on_notice(notice)
            torch.cuda.synchronize()
            return None
        finally:
            self.record_seconds += time.perf_counter() - start
        self.recordings += 1
        return self._graphed

    def _record(self, frames: tuple[int, ...], f: int, masked: bool = False) -> _Recording:
        """Record both pieces at this frame count, on inputs that become the recording's input buffers.

        Fresh piece modules each time (recording replaces a module's `forward`). The sample inputs
        draw no random numbers, so recording does not shift the run's random draws; their values only
        matter for the warm-up calls (all-zero ARAP points give zero edges, whose fit is the identity).
        With `masked`, the loss piece is a `MaskedLossPiece` and takes the frame weights after the frames.
        The frames are the step's own (`frames`, of which the first `f` are real), so the first replay
        copies nothing in.
        """
        b, dev = len(frames), self.device
        v, s = self.viewmats.shape[0], self.size
        n = self.static.means.shape[0]
        warmup = WARMUP_FIRST if self.recordings == 0 else WARMUP_LATER
        field_frames = self._device_frames(frames).clone()
        loss_frames = field_frames.clone()
        means = torch.zeros(b, n, 3, device=dev, requires_grad=True)
        loss_args: tuple[Tensor, ...] = (
            torch.zeros(b, v, s, s, 3, device=dev, requires_grad=True),
            torch.zeros(b, v, s, s, device=dev, requires_grad=True),
            means,
            loss_frames,
        )
        weights = self._bucket_weights(f, b).clone() if masked else None
        if weights is not None:
            loss_args += (weights,)
        drawn = self._sample_draws()
        loss_args += drawn
        loss_piece = MaskedLossPiece(*self._loss_inputs) if masked else LossPiece(*self._loss_inputs)
        with collection_paused():
            graphed = torch.cuda.make_graphed_callables(
                (FieldPiece(self.field.motion, self.static, self.field.weights), loss_piece),
                ((field_frames,), loss_args),
                num_warmup_iters=warmup,
                allow_unused_input=True,
                pool=torch.cuda.graph_pool_handle(),  # a pool of its own: see `_recorded`
            )
        return _Recording((b, masked), graphed[0], graphed[1], field_frames, loss_frames, weights, drawn, (frames, f))


def _gsplat_ready() -> bool:
    """True where gsplat's CUDA extension loads (the whole-step render is built from its pieces)."""
    from a3d_cli.kernels.rasterize_gsplat import gsplat_available

    return gsplat_available()


class OptimizerStep:
    """`optimizer.step()`, replayed as a CUDA graph from its second call on (CUDA; eager elsewhere).

    Why: the fit's Adam (fused, three parameter groups) costs a few launches and a fair amount of Python per
    step (grouping the tensors, checking each parameter), host time that a slower CPU stretches. Recorded
    once, a step is one copy of the gradients into fixed buffers and one graph launch, and it computes the
    same numbers: the fused kernel reads its step count from the device either way.

    The first call runs eagerly (it creates Adam's state, which a recording would reset at every replay);
    the second records the step with the gradients' buffers in place of `.grad` and replays it. A step where
    a parameter has no gradient runs eagerly (Adam skips that parameter; the recording would not). If
    recording fails, every step runs eagerly and `failure` says why.

    Args:
        optimizer: a fused Adam whose groups are `capturable` when `graphed` (required for recording).
        graphed: record the step (ignored unless the parameters are on a CUDA device).
        on_notice: receives one line if recording fails.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        graphed: bool,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.use_graph = graphed and bool(self.params) and graphs_usable(self.params[0].device)
        self.on_notice = on_notice
        self.failure = ""
        """Why recording failed ("" = it did not, or was not tried)."""
        self.replays = 0
        """Steps replayed from the recording."""
        self.record_seconds = 0.0
        """Wall seconds spent recording (once)."""
        self._graph: torch.cuda.CUDAGraph | None = None
        self._grads: list[Tensor] = []
        self._eager_steps = 0

    def __call__(self) -> None:
        """One optimiser step on the parameters' current `.grad`."""
        grads = [p.grad for p in self.params]
        if not self.use_graph or self._eager_steps == 0 or any(g is None for g in grads):
            self._eager()
            return
        if self._graph is None:
            start = time.perf_counter()
            try:
                self._record(grads)  # type: ignore[arg-type] - no None here
            except (RuntimeError, AssertionError) as exc:
                self.use_graph, self._graph = False, None
                self.failure = f"optimizer step: {type(exc).__name__}: {exc}"
                if self.on_notice is not None:
                    self.on_notice(f"reconstruct: the optimizer step runs eagerly ({self.failure})")
                torch.cuda.synchronize()
                self._eager()
                return
            finally:
                self.record_seconds += time.perf_counter() - start
        torch._foreach_copy_(self._grads, grads)  # type: ignore[arg-type]
        self._graph.replay()
        self.replays += 1

    def _eager(self) -> None:
        import warnings

        with warnings.catch_warnings():  # torch's note that a capturable optimizer runs uncaptured: by design here
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            self.optimizer.step()
        self._eager_steps += 1

    def _record(self, grads: list[Tensor]) -> None:
        """Record one step reading `self._grads` (filled with `grads` first); the recording is not run."""
        self._grads = [torch.empty_like(p) for p in self.params]
        torch._foreach_copy_(self._grads, grads)
        graph = torch.cuda.CUDAGraph()
        for p, g in zip(self.params, self._grads, strict=True):
            p.grad = g
        try:
            with collection_paused(), torch.cuda.graph(graph):
                self.optimizer.step()
        finally:
            for p, g in zip(self.params, grads, strict=True):
                p.grad = g
        self._graph = graph
