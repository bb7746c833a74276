"""The motion fit's step (`a3d_cli.gaussians.motion_step`): the loss it computes, its gradients, and its fallbacks."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import replace
from itertools import pairwise

import pytest
import torch
from helpers import HostReads

from a3d_cli.gaussians.arap import ArapRegularizer
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
from a3d_cli.gaussians.motion_fit import FitSettings, arap_weight, fit_motion
from a3d_cli.gaussians.motion_step import (
    FitStep,
    LossPiece,
    MaskedLossPiece,
    OptimizerStep,
    bucket_sizes,
    collection_paused,
    graphs_usable,
)
from a3d_cli.render.cameras import mvvdm_cameras
from a3d_cli.render.splats import render_splats

SIZE = 16


def _scene(device: str = "cpu", n: int = 60, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    static = Gaussians(
        0.6 * (torch.rand(n, 3, generator=g) - 0.5), quats, torch.full((n, 3), 0.06), torch.full((n,), 0.8),
        torch.rand(n, 3, generator=g),
    ).to(device)  # fmt: skip
    cams = mvvdm_cameras()
    targets = torch.rand(len(cams), 16, SIZE, SIZE, 3, generator=g)  # [V, F, S, S, 3]
    masks = (torch.rand(len(cams), 16, SIZE, SIZE, generator=g) > 0.5).float()
    # the rasterizer outside the recorded pieces unless a test asks for the whole step (`graph_whole_step`)
    settings = FitSettings(resolution=SIZE, field=MotionFieldConfig.tiny(), arap_samples=20, graph_whole_step=False)
    return static, cams, targets, masks, settings


def _step(static, cams, targets, masks, settings, field, **kw) -> FitStep:
    dev = static.means.device
    arap = ArapRegularizer.from_points(static.means, k=3, sample_points=settings.arap_samples)
    return FitStep(
        field, static, cams.viewmats.to(dev), cams.Ks(SIZE, SIZE).to(dev), SIZE,
        targets.to(dev).transpose(0, 1).contiguous(), masks.to(dev).transpose(0, 1).contiguous(), settings, arap, **kw,
    )  # fmt: skip


def _sync_checks_off(fn):  # noqa: ANN001, ANN202
    """`fn` with CUDA's sync detector off while it runs (for what may synchronise: recordings, gsplat's call)."""

    def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(mode)

    return call


def _assert_same_gradients(field: MotionField, want: MotionField) -> None:
    """`field`'s gradients equal `want`'s to float rounding (none or zero where `want` has none), some non-zero."""
    grads = 0
    for p, q in zip(field.parameters(), want.parameters(), strict=True):
        if q.grad is None:
            assert p.grad is None or not p.grad.any()
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
        grads += int(q.grad.abs().sum() > 0)
    assert grads > 0


def _moving_field(settings: FitSettings, seed: int = 1) -> MotionField:
    field = MotionField(settings.field, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # non-zero heads, so the frames differ and every term has gradients
        for p in field.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return field


def test_step_loss_is_the_documented_sum_and_gradients_reach_the_field():
    static, cams, targets, masks, settings = _scene()
    field = _moving_field(settings)
    step = _step(static, cams, targets, masks, settings, field)
    frames = [2, 5, 9]  # host integers, as the fit's schedule gives them
    loss, loss_rgb = step(frames, torch.Generator().manual_seed(4))
    assert step.recordings == 0 and not step.use_graphs  # the CPU runs the same pieces eagerly
    grads = [p.grad for p in field.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    # by hand: the same field, render and ARAP draw
    with torch.no_grad():
        out = field(static, torch.tensor(frames))
        rgb, alpha = render_splats(static, out.means, out.quats, out.scales, cams.viewmats, cams.Ks(SIZE, SIZE), SIZE)
        tgt, msk = targets.transpose(0, 1)[frames], masks.transpose(0, 1)[frames]
        arap = ArapRegularizer.from_points(static.means, k=3, sample_points=settings.arap_samples)
        expected_rgb = torch.nn.functional.mse_loss(rgb, tgt)
        expected = 100 * expected_rgb + 100 * torch.nn.functional.mse_loss(alpha, msk)
        expected = expected + 12 * arap(out.means, torch.Generator().manual_seed(4))
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(loss_rgb, expected_rgb)
    # a new ARAP weight, set between steps, is the one the next step uses
    step.set_arap_weight(3.0)
    loss3, _ = step(frames, torch.Generator().manual_seed(4))
    torch.testing.assert_close(loss3.detach(), expected + (3 - 12) * arap(out.means, torch.Generator().manual_seed(4)))


def test_annealed_arap_weight_falls_from_a_times_towards_one_over_a_and_the_fit_follows_it(monkeypatch):
    s = FitSettings(steps=8, arap_anneal=4.0)
    weights = [arap_weight(i, s) for i in range(8)]
    assert weights[0] == pytest.approx(48.0) and weights[4] == pytest.approx(12.0)  # 4× first, λ half-way
    assert weights[-1] == pytest.approx(12.0 / 4 ** (6 / 8)) and all(
        a > b for a, b in zip(weights[:-1], weights[1:], strict=True)
    )
    assert {arap_weight(i, replace(s, arap_anneal=1.0)) for i in range(8)} == {12.0}  # Animate3D: constant
    static, cams, targets, masks, settings = _scene()
    seen: list[float] = []
    monkeypatch.setattr(FitStep, "set_arap_weight", lambda self, w: (seen.append(w), self.arap_weight.fill_(w)))
    fit_motion(static, cams, targets, masks, replace(settings, steps=8, steps_per_frame=1, arap_anneal=4.0))
    assert seen == pytest.approx(weights)


def test_a_failed_recording_falls_back_to_eager_with_one_notice(monkeypatch):
    static, cams, targets, masks, settings = _scene()
    notices: list[str] = []
    field = _moving_field(settings)
    step = _step(static, cams, targets, masks, settings, field, on_notice=notices.append)
    eager = _step(static, cams, targets, masks, settings, _moving_field(settings))
    step.use_graphs = True  # as on a CUDA device, where steps are padded to their recorded bucket
    step.buckets = bucket_sizes((4, 8), targets.shape[0] - 1)

    def refuse(*_args):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(step, "_record", refuse)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    frames = [1, 2]
    for _ in range(2):
        loss, _ = step(frames, torch.Generator().manual_seed(0))
    reference, _ = eager(frames, torch.Generator().manual_seed(0))
    assert not step.use_graphs and step.recordings == 0
    assert step.buckets == ()  # eager from here on: no padding either
    assert len(notices) == 1 and "eagerly" in notices[0] and "capturing" in notices[0]
    assert step.failure.startswith("recording 1 (padded, 3 frames): RuntimeError") and step.failure in notices[0]
    torch.testing.assert_close(loss.detach(), reference.detach())


def test_fit_reports_no_recordings_on_the_cpu_and_the_option_is_inert_there():
    static, cams, targets, masks, settings = _scene()
    settings = replace(settings, steps=6, steps_per_frame=2)
    a = fit_motion(static, cams, targets, masks, replace(settings, cuda_graphs=True), log_every=2)
    b = fit_motion(static, cams, targets, masks, replace(settings, cuda_graphs=False), log_every=2)
    assert a.graph_recordings == 0 and b.graph_recordings == 0
    assert a.optimizer_replays == 0 and b.optimizer_replays == 0
    assert a.losses == b.losses and len(a.losses) == 3
    assert not graphs_usable(torch.device("cpu"))


def test_the_whole_step_option_is_inert_on_the_cpu():
    static, cams, targets, masks, settings = _scene()
    settings = replace(settings, steps=6, steps_per_frame=2)
    step = _step(static, cams, targets, masks, replace(settings, graph_whole_step=True), _moving_field(settings))
    assert not step.whole_step
    a = fit_motion(static, cams, targets, masks, replace(settings, graph_whole_step=True), log_every=2)
    b = fit_motion(static, cams, targets, masks, settings, log_every=2)
    assert a.losses == b.losses and a.tile_list_overflows == 0


@pytest.mark.gpu
@pytest.mark.parametrize(("frames_per_step", "recordings"), [(0, (4, 2)), (2, (2, 1))])
def test_graphed_steps_equal_eager_steps_on_cuda(frames_per_step: int, recordings: tuple[int, int]):
    """Every active frame per step (frame counts 1 … 4), and 2 per step (random earlier frames, so the recorded
    frame input is rewritten between replays of one recording), graphed exactly and in buckets of (2, 4)."""
    static, cams, targets, masks, settings = _scene("cuda")
    settings = replace(settings, steps=12, steps_per_frame=3, arap_anneal=4.0, frames_per_step=frames_per_step)
    eager = fit_motion(static, cams, targets, masks, replace(settings, cuda_graphs=False), log_every=1)
    exact = fit_motion(static, cams, targets, masks, replace(settings, graph_frame_counts=()), log_every=1)
    bucketed = fit_motion(static, cams, targets, masks, replace(settings, graph_frame_counts=(2, 4)), log_every=1)
    assert eager.graph_recordings == 0
    # all frames: counts 1, 2, 3, 4 exactly, or 1-2 in the bucket of 2 and 3-4 in the bucket of 4;
    # 2 per step: counts 1 and 2 exactly, or both in the one bucket (of 2)
    assert (exact.graph_recordings, bucketed.graph_recordings) == recordings
    assert eager.optimizer_replays == 0
    # the optimiser step is recorded at the second step and replayed from then on (the first runs eagerly)
    assert exact.optimizer_replays == bucketed.optimizer_replays == settings.steps - 1
    every_frame = torch.arange(targets.shape[1], device="cuda")
    with torch.no_grad():
        want = eager.field(static, every_frame)
    for graphed in (exact, bucketed):
        for (s1, l1), (s2, l2) in zip(graphed.losses, eager.losses, strict=True):
            assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4)
        with torch.no_grad():
            got = graphed.field(static, every_frame)
        # the fitted motion, not raw parameters: the scene leaves the rotation head's gradients at rounding
        # level, which Adam scales up to step-sized moves, so gsplat's non-deterministic atomic sums alone
        # move those weights by ~1e-4 (a 1e-6 relative gradient perturbation does the same on the CPU)
        torch.testing.assert_close(got.means, want.means, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.scales, want.scales, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.quats, want.quats, atol=2e-3, rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("graphs", "counts", "frames_per_step", "recordings"),
    [(True, (), 0, 4), (True, (2, 4), 0, 2), (True, (), 2, 2), (False, (), 0, 0)],
)
def test_steps_between_log_intervals_never_wait_for_the_device_on_cuda(
    monkeypatch, graphs: bool, counts: tuple[int, ...], frames_per_step: int, recordings: int
):
    """CUDA's own sync detector, set to raise, around every step but the first and the last (the logged one).

    Exempt: the rasterizer (gsplat reads its tile-intersection count back once per render; docs/reconstruct.md)
    and the recordings (each synchronises: once per frame count, and the optimiser step's once).
    """
    from a3d_cli.render import splats

    monkeypatch.setattr(splats, "render_splats", _sync_checks_off(splats.render_splats))
    monkeypatch.setattr(FitStep, "_record", _sync_checks_off(FitStep._record))
    monkeypatch.setattr(OptimizerStep, "_record", _sync_checks_off(OptimizerStep._record))
    static, cams, targets, masks, settings = _scene("cuda")
    settings = replace(settings, steps=12, steps_per_frame=3, arap_anneal=4.0, cuda_graphs=graphs,
                       graph_frame_counts=counts, frames_per_step=frames_per_step)  # fmt: skip
    checked: list[int] = []

    def on_step(step: int, _field: object) -> None:
        if 0 < step < settings.steps - 1:
            checked.append(step)
        torch.cuda.set_sync_debug_mode("error" if step < settings.steps - 2 else 0)  # steps 1 … steps - 2

    try:
        fit = fit_motion(static, cams, targets, masks, settings, log_every=settings.steps, on_step=on_step)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert (fit.graph_recordings, fit.graph_failure) == (recordings, "")
    assert checked == list(range(1, settings.steps - 1)) and len(fit.losses) == 1


@pytest.mark.gpu
@pytest.mark.parametrize("whole_step", [False, True])
@pytest.mark.parametrize(("counts", "recordings"), [((), 15), ((4, 8, 12, 15), 4)])
def test_every_recording_of_the_reference_schedule_succeeds_on_cuda(
    counts: tuple[int, ...], recordings: int, whole_step: bool
):
    """The reference preset's 800 steps record each frame count (or bucket) once and never fall back to eager;
    with the whole step recorded, no tile list overflows either (its capacity covers the bucket's frames)."""
    from a3d_cli.stages.reconstruct import PRESETS

    static, cams, targets, masks, _ = _scene("cuda", n=2000)
    settings = replace(PRESETS["reference"][1], resolution=SIZE, graph_frame_counts=counts, graph_whole_step=whole_step)
    fit = fit_motion(static, cams, targets, masks, settings, log_every=100)
    assert fit.graph_failure == "", fit.graph_failure
    assert (fit.graph_recordings, fit.tile_list_overflows) == (recordings, 0)


def _gsplat_or_skip() -> None:
    from a3d_cli.kernels.rasterize import available_backends

    if "gsplat" not in available_backends():
        pytest.skip("gsplat's CUDA extension is not available")


@pytest.mark.gpu
@pytest.mark.parametrize("counts", [(), (2, 4)])
def test_the_whole_step_graph_fits_what_the_piecewise_graphs_fit_on_cuda(counts: tuple[int, ...]):
    """The rasterizer recorded inside the step (fixed-length tile lists) against the pieces around an eager
    gsplat render: the same losses and the same fitted motion, to the atomic sums' rounding."""
    _gsplat_or_skip()
    static, cams, targets, masks, settings = _scene("cuda", n=400)
    settings = replace(settings, steps=12, steps_per_frame=3, arap_anneal=4.0, graph_frame_counts=counts)
    pieces = fit_motion(static, cams, targets, masks, settings, log_every=1)
    whole = fit_motion(static, cams, targets, masks, replace(settings, graph_whole_step=True), log_every=1)
    assert (whole.graph_failure, whole.tile_list_overflows) == ("", 0)
    assert whole.graph_recordings == pieces.graph_recordings == (4 if not counts else 2)
    for (s1, l1), (s2, l2) in zip(whole.losses, pieces.losses, strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4)
    every_frame = torch.arange(targets.shape[1], device="cuda")
    with torch.no_grad():
        got, want = whole.field(static, every_frame), pieces.field(static, every_frame)
    torch.testing.assert_close(got.means, want.means, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.quats, want.quats, atol=2e-3, rtol=0)


@pytest.mark.gpu
def test_the_whole_step_graph_never_waits_for_the_device_on_cuda(monkeypatch):
    """CUDA's sync detector, set to raise, around every step but the first and the last: with the rasterizer
    inside the graph nothing is exempt but the recordings."""
    _gsplat_or_skip()

    monkeypatch.setattr(FitStep, "_record_whole", _sync_checks_off(FitStep._record_whole))
    monkeypatch.setattr(OptimizerStep, "_record", _sync_checks_off(OptimizerStep._record))
    static, cams, targets, masks, settings = _scene("cuda", n=400)
    settings = replace(settings, steps=12, steps_per_frame=3, graph_frame_counts=(2, 4), graph_whole_step=True)

    def on_step(step: int, _field: object) -> None:
        torch.cuda.set_sync_debug_mode("error" if step < settings.steps - 2 else 0)

    try:
        fit = fit_motion(static, cams, targets, masks, settings, log_every=settings.steps, on_step=on_step)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert (fit.graph_recordings, fit.graph_failure) == (2, "")


@pytest.mark.gpu
def test_tile_lists_that_overflow_are_counted_and_recorded_again_longer_on_cuda(monkeypatch):
    """Capacity far below the need: the first read back finds the overflow, the step records again with room."""
    _gsplat_or_skip()
    from a3d_cli.gaussians import motion_step

    monkeypatch.setattr(motion_step, "LIST_MARGIN", 0.25)
    monkeypatch.setattr(motion_step, "LIST_ROUNDING", 1)
    static, cams, targets, masks, settings = _scene("cuda", n=400)
    settings = replace(settings, steps=8, steps_per_frame=100, graph_frame_counts=(1,), graph_whole_step=True)
    fit = fit_motion(static, cams, targets, masks, settings, log_every=2)
    assert fit.tile_list_overflows >= 1 and fit.graph_failure == ""
    assert fit.graph_recordings == 1 + fit.tile_list_overflows  # each overflow found is recorded again, longer


def test_bucket_sizes_cover_every_step_and_never_exceed_the_largest():
    assert bucket_sizes((4, 8, 12, 15), 15) == (4, 8, 12, 15)
    assert bucket_sizes((8, 4), 15) == (4, 8, 15)  # the largest frame count always has a bucket
    assert bucket_sizes((4, 8, 12, 15), 2) == (2,)  # frames_per_step=2: one bucket, of 2
    assert bucket_sizes((), 15) == ()


@pytest.mark.parametrize("grad_fraction", [1.0, 0.5])
def test_a_padded_step_gives_the_exact_steps_loss_and_gradients(grad_fraction: float):
    """The bucketed step (3 real frames in a bucket of 4, the padding weighted 0) against the step at 3 frames."""
    static, cams, targets, masks, settings = _scene()
    settings = replace(settings, grad_fraction=grad_fraction, graph_frame_counts=(4, 8, 12, 15))
    exact_field, padded_field = _moving_field(settings), _moving_field(settings)
    exact = _step(static, cams, targets, masks, settings, exact_field, pad_frames=False)
    padded = _step(static, cams, targets, masks, settings, padded_field, pad_frames=True)
    assert exact.buckets == () and padded.buckets == (4, 8, 12, 15) and padded.bucket(3) == 4
    frames = [2, 5, 9]
    loss, loss_rgb = exact(frames, torch.Generator().manual_seed(4))
    loss_p, loss_rgb_p = padded(frames, torch.Generator().manual_seed(4))  # the same draws
    # the means are normalised by the weight sum instead of the tensor size: equal up to float rounding
    torch.testing.assert_close(loss_p.detach(), loss.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(loss_rgb_p, loss_rgb, rtol=1e-6, atol=0)
    _assert_same_gradients(padded_field, exact_field)


def test_the_whole_step_piece_computes_the_padded_steps_loss_and_gradients(monkeypatch):
    """`WholeStepPiece` (field → render of every bucket frame → masked loss) against the padded eager step, with
    the fixed-list render replaced by a CPU stand-in drawing the same looks with a3d's PyTorch rasterizer
    (gsplat's kernels need CUDA; their equality with gsplat's own render is the GPU tests' business)."""
    from a3d_cli.gaussians.motion_step import FieldPiece, WholeStepPiece
    from a3d_cli.kernels import rasterize, rasterize_fixed
    from a3d_cli.render.splats import splat_looks

    masks_seen: list[torch.Tensor] = []

    def cpu_render(means, quats, scales, looks, width, height, capacity, image_mask=None):  # noqa: ANN001, ANN202
        masks_seen.append(image_mask)
        means, quats, scales = rasterize_fixed.with_filler(means, quats, scales, looks.filler)
        opac = looks.render_opacities[:, 0]  # [B, N+1], the filler's 0
        out = rasterize(means, quats, scales, opac, looks.colors, looks.viewmats, looks.Ks, width, height,
                        backgrounds=looks.backgrounds)  # fmt: skip
        return rasterize_fixed.FixedRender(out.colors, out.alphas, torch.zeros((), dtype=torch.int64))

    monkeypatch.setattr(rasterize_fixed, "rasterize_fixed", cpu_render)
    static, cams, targets, masks, settings = _scene()
    settings = replace(settings, graph_frame_counts=(4, 8, 12, 15))
    padded_field, whole_field = _moving_field(settings), _moving_field(settings)
    padded = _step(static, cams, targets, masks, settings, padded_field, pad_frames=True)
    frames = [2, 5, 9]
    loss, loss_rgb = padded(frames, torch.Generator().manual_seed(4))  # bucket 4: frame 0 pads
    b, views = 4, len(cams)
    lk = splat_looks(static, cams.viewmats, cams.Ks(SIZE, SIZE), b)
    looks = rasterize_fixed.fixed_looks(lk.opacities, lk.colors, lk.sh_degree, lk.viewmats, lk.Ks, lk.backgrounds)
    excess = torch.zeros((), dtype=torch.int64)
    piece = WholeStepPiece(FieldPiece(whole_field, static), padded.masked_loss, looks, SIZE, views, 1 << 10, excess)
    listed = torch.tensor([*frames, 0])
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0])
    drawn = padded.loss.arap.draw(torch.Generator().manual_seed(4))  # the step's own draw
    loss_w, loss_rgb_w = piece(listed, listed, weights, *drawn)
    loss_w.backward()
    assert torch.equal(masks_seen[0], torch.tensor([True] * 3 * views + [False] * views))  # the padding lists nothing
    torch.testing.assert_close(loss_w.detach(), loss.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(loss_rgb_w, loss_rgb, rtol=1e-6, atol=0)
    assert int(excess) == 0  # total 0 against a capacity of 1024: no overflow recorded
    _assert_same_gradients(whole_field, padded_field)


def test_padding_frames_add_exactly_nothing_to_the_masked_loss():
    """Whatever the padding holds, the loss is bit-for-bit the same and its gradient there is exactly zero."""
    static, cams, targets, masks, settings = _scene()
    piece = MaskedLossPiece(targets.transpose(0, 1).contiguous(), masks.transpose(0, 1).contiguous(), settings,
                            ArapRegularizer.from_points(static.means, k=3, sample_points=settings.arap_samples))  # fmt: skip
    g = torch.Generator().manual_seed(3)
    v, n, f, bucket = len(cams), len(static), 3, 5
    frames = torch.tensor([4, 1, 7, 0, 0])
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    drawn = piece.arap.draw(torch.Generator().manual_seed(0))

    def inputs(padding: float) -> list[torch.Tensor]:
        rgb = torch.rand(bucket, v, SIZE, SIZE, 3, generator=g)
        alpha = torch.rand(bucket, v, SIZE, SIZE, generator=g)
        means = static.means + 0.05 * torch.randn(bucket, n, 3, generator=g)
        for x in (rgb, alpha, means):
            x[f:] = padding
        return [x.requires_grad_() for x in (rgb, alpha, means)]

    a, b = inputs(0.0), inputs(7.5)
    for x, y in zip(a, b, strict=True):  # the real frames alike, the padding not
        with torch.no_grad():
            y[:f] = x[:f]
    loss_a, _ = piece(*a, frames, weights, *drawn)
    loss_b, _ = piece(*b, frames, weights, *drawn)
    assert torch.equal(loss_a, loss_b)
    loss_b.backward()
    for x in b:
        assert torch.equal(x.grad[f:], torch.zeros_like(x.grad[f:])) and x.grad[:f].abs().sum() > 0
    # and on the real frames it is LossPiece's loss
    exact = LossPiece(piece.targets, piece.masks, settings, piece.arap)
    loss_exact, _ = exact(*(x[:f] for x in a), frames[:f], *drawn)
    torch.testing.assert_close(loss_a, loss_exact, rtol=1e-6, atol=0)


@pytest.mark.parametrize("anneal", [0.0, -2.0, float("inf"), float("nan")])
def test_an_arap_schedule_that_is_not_a_finite_positive_factor_is_refused(anneal):
    from a3d_cli.errors import OptionError

    with pytest.raises(OptionError, match="arap-anneal"):
        FitSettings(arap_anneal=anneal)


def _count_steps(reads: HostReads, monkeypatch) -> None:
    """Reads are tagged with the fit step: `active_frames` opens each step (it draws from a CPU generator,
    host-side by design on every device, so reads inside it are not recorded)."""
    from a3d_cli.gaussians import motion_fit

    def next_step() -> None:
        reads.step += 1

    reads.exempt(monkeypatch, motion_fit, "active_frames", on_call=next_step)


@pytest.mark.parametrize("frames_per_step", [0, 2])
def test_the_step_loop_reads_the_device_once_per_log_interval_and_nowhere_else(monkeypatch, frames_per_step: int):
    """Between log intervals the fit reads no tensor value into Python (each would wait for a CUDA device).

    Exempt: the rasterizer (a backend sizes its work from the data: gsplat once per step, docs/reconstruct.md)
    and the CPU's Adam, which keeps its step count as a CPU scalar (the CUDA path's fused Adam keeps it on
    the device). The GPU test below checks the same with CUDA's own sync detector.
    """
    from a3d_cli.render import splats

    static, cams, targets, masks, settings = _scene()
    settings = replace(settings, steps=10, steps_per_frame=2, arap_anneal=4.0, frames_per_step=frames_per_step)
    reads = HostReads()
    _count_steps(reads, monkeypatch)
    reads.exempt(monkeypatch, splats, "render_splats")
    reads.exempt(monkeypatch, torch.optim.Adam, "step")
    with reads:
        fit = fit_motion(static, cams, targets, masks, settings, log_every=4)
    in_loop = [(step, site) for step, _call, site in reads.reads if step >= 0]
    read_back = "a3d_cli.gaussians.motion_step:read_back"
    assert in_loop == [(3, read_back), (7, read_back), (9, read_back)]
    assert [s for s, _ in fit.losses] == [4, 8, 10]  # one read per logged step


def test_the_host_read_detector_sees_the_reads_it_names():
    """The detector behind the test above: each kind of read it claims to see, it sees (and nothing else)."""
    x = torch.rand(4)
    with HostReads() as reads:
        y = x * 2  # no read
        _ = x[0].item(), x.tolist(), float(x[1]), bool(x[2] > 0), x[x > 0.5], torch.nonzero(x), x.cpu()
        _ = y.sum(), x[torch.tensor([0, 2])], x.to("cpu")  # no read: integer indices, a CPU tensor staying put
    seen = [call for _, call, _ in reads.reads]
    assert seen == ["item", "tolist", "__float__", "__bool__", "__getitem__", "nonzero", "cpu"]


def _adam_on(device: str, capturable: bool) -> tuple[list[torch.Tensor], torch.optim.Adam]:
    """The fit's optimiser (three groups, fused on CUDA) over a tiny field's parameters."""
    field = MotionField(MotionFieldConfig.tiny(), generator=torch.Generator().manual_seed(0)).to(device)
    groups = [field.grid_parameters(), field.head_parameters(), field.global_parameters()]
    opt = torch.optim.Adam([{"params": g, "lr": lr} for g, lr in zip(groups, (1e-2, 1e-4, 1e-3), strict=True)],
                           eps=1e-15, fused=device == "cuda", capturable=capturable)  # fmt: skip
    return list(field.parameters()), opt


def _grads(params: list[torch.Tensor], step: int) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(step)
    grads = [torch.randn(p.shape, generator=g).to(p.device) for p in params]
    if step == 3:  # a parameter without a gradient this step: Adam leaves it alone
        grads[0] = None
    return grads


def test_the_optimizer_step_is_the_optimizers_own_on_the_cpu():
    (params, opt), (ref_params, ref) = _adam_on("cpu", False), _adam_on("cpu", False)
    step = OptimizerStep(opt, graphed=True)  # ignored off CUDA
    assert not step.use_graph
    for i in range(4):
        for p, q, g in zip(params, ref_params, _grads(params, i), strict=True):
            p.grad = q.grad = g
        step()
        ref.step()
    assert step.replays == 0 and all(torch.equal(p, q) for p, q in zip(params, ref_params, strict=True))


@pytest.mark.gpu
def test_the_recorded_optimizer_step_equals_the_eager_one_on_cuda():
    """First step eager, then recorded and replayed; a step with a missing gradient runs eagerly."""
    (params, opt), (ref_params, ref) = _adam_on("cuda", True), _adam_on("cuda", False)
    step = OptimizerStep(opt, graphed=True)
    for i in range(6):
        for p, q, g in zip(params, ref_params, _grads(params, i), strict=True):
            p.grad = None if g is None else g.clone()
            q.grad = g
        step()
        ref.step()
        for p, q in zip(params, ref_params, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert (step.replays, step.failure) == (4, "")  # steps 1, 2, 4, 5 (step 3 lacks a gradient: eager)


class _ReplayStandIn:
    """CPU stand-in for `torch.cuda.make_graphed_callables` with a replay's input semantics: an input that needs
    no gradient is read from the recorded sample tensor, copied in first unless it is that very tensor (as the
    recorded graphs do); differentiable inputs pass through. Counts the copies."""

    def __init__(self) -> None:
        self.copies = 0

    def __call__(self, callables, sample_args, **_kwargs):  # noqa: ANN001, ANN204 - torch's signature
        return tuple(self._replayed(piece, recorded) for piece, recorded in zip(callables, sample_args, strict=True))

    def _replayed(self, piece, recorded):  # noqa: ANN001, ANN202
        def call(*args):  # noqa: ANN002, ANN202
            inputs = []
            for fixed, given in zip(recorded, args, strict=True):
                if fixed.requires_grad:
                    inputs.append(given)
                    continue
                if fixed.data_ptr() != given.data_ptr():
                    fixed.copy_(given)
                    self.copies += 1
                inputs.append(fixed)
            return piece(*inputs)

        return call


@pytest.mark.parametrize(("counts", "frames_per_step"), [((), 0), ((2, 4), 0), ((), 2), ((2, 4), 2)])
def test_the_recorded_pieces_read_the_steps_frames_weights_and_draws_from_their_own_buffers(
    monkeypatch, counts: tuple[int, ...], frames_per_step: int
):
    """The graphed step's input plumbing on the CPU: frames written into the recording's buffers when they change
    (a new subset, or a new real count in one bucket), bucket weights refreshed, ARAP drawn in place; the same
    loss and gradients as the eager step, and no replay ever copies an input in."""
    standin = _ReplayStandIn()
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", standin)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    static, cams, targets, masks, settings = _scene()
    settings = replace(settings, graph_frame_counts=counts, frames_per_step=frames_per_step)
    graphed_field, eager_field = _moving_field(settings), _moving_field(settings)
    graphed = _step(static, cams, targets, masks, settings, graphed_field, pad_frames=bool(counts))
    eager = _step(static, cams, targets, masks, settings, eager_field, pad_frames=bool(counts))
    graphed.use_graphs = True  # as on a CUDA device
    schedule = [[1], [1], [1, 2], [1, 2], [1, 2, 3], [2, 3], [1, 3], [1, 3], [1, 2, 3, 4]]
    if frames_per_step:
        schedule = [f[-frames_per_step:] if len(f) > 1 else f for f in schedule]
    for i, frames in enumerate(schedule):
        for field in (graphed_field, eager_field):
            field.zero_grad(set_to_none=True)
        loss, loss_rgb = graphed(frames, torch.Generator().manual_seed(i))
        want, want_rgb = eager(frames, torch.Generator().manual_seed(i))
        torch.testing.assert_close(loss.detach(), want.detach(), rtol=1e-6, atol=0)
        torch.testing.assert_close(loss_rgb, want_rgb, rtol=1e-6, atol=0)
        for p, q in zip(graphed_field.parameters(), eager_field.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
    sizes = [graphed.bucket(len(f)) or len(f) for f in schedule]
    assert graphed.recordings == 1 + sum(a != b for a, b in pairwise(sizes))  # one kept: a new size records
    assert standin.copies == 0  # every input handed over was the recording's own buffer


def test_the_garbage_collector_is_held_off_while_pieces_and_the_optimizer_step_are_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dropped recording is freed by the cyclic collector; a collection inside a later capture would destroy its
    graphs mid-capture (forbidden by CUDA), so every recording runs with the collector off, and on again after."""
    seen: list[tuple[str, bool]] = []
    standin = _ReplayStandIn()

    def record_pieces(callables, sample_args, **kwargs):  # noqa: ANN001, ANN202 - torch's signature
        seen.append(("pieces", gc.isenabled()))
        return standin(callables, sample_args, **kwargs)

    class _Graph:
        def replay(self) -> None:
            seen.append(("replay", gc.isenabled()))

    @contextmanager
    def capture(_graph):  # noqa: ANN001, ANN202
        seen.append(("optimizer", gc.isenabled()))
        yield

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", record_pieces)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    static, cams, targets, masks, settings = _scene()
    field = _moving_field(settings)
    step = _step(static, cams, targets, masks, settings, field)
    step.use_graphs = True  # as on a CUDA device
    opt_step = OptimizerStep(torch.optim.Adam(field.parameters(), lr=1e-3), graphed=False)
    opt_step.use_graph = True
    assert gc.isenabled()
    for i, frames in enumerate([[1], [1, 2], [1, 2, 3]]):
        field.zero_grad(set_to_none=True)
        step(frames, torch.Generator().manual_seed(i))
        opt_step()
    assert step.recordings == 3 and opt_step.replays == 2
    assert seen == [("pieces", False), ("pieces", False), ("optimizer", False), ("replay", True),
                    ("pieces", False), ("replay", True)]  # fmt: skip
    assert gc.isenabled()


def test_a_collector_already_off_stays_off_and_an_error_still_restores_it() -> None:
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("capture failed")
    assert gc.isenabled()
