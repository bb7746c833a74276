"""The tiny MV-VDM behind the SDS denoiser protocol, and the `sds` stage end to end with it on CPU.

The tiny components' VAE downsamples 32× (so 256² renders); here it is swapped for a 3-level (4×) VAE of the
same class, so 32² renders make the 8² latents the tiny UNet needs and the CPU rasterizer stays cheap.
"""

from __future__ import annotations

import pytest
import torch

from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
from a3d_cli.gaussians.motion_io import load_motion
from a3d_cli.gaussians.motion_refine import encode_checkpointed, kept_render_count
from a3d_cli.models.mvvdm.cameras import mvdream_camera_embedding_input
from a3d_cli.models.mvvdm.components import tiny_components
from a3d_cli.models.mvvdm.denoiser import MvvdmDenoiser
from a3d_cli.models.mvvdm.pipeline import encode_images_clip, encode_prompts
from a3d_cli.models.sds import SdsCondition, SdsDenoiser, sds_loss
from a3d_cli.render.cameras import mvvdm_cameras
from a3d_cli.stages import sds as sds_stage
from a3d_cli.stages.base import Runtime

SIZE = 32


@pytest.fixture(scope="module")
def denoiser() -> MvvdmDenoiser:
    from diffusers import AutoencoderKL

    comp = tiny_components(0)
    torch.manual_seed(5)
    comp.vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(4,) * 3,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=SIZE,
    )
    return MvvdmDenoiser(comp)


def _cond(prompt: str = "a dog wags its tail") -> SdsCondition:
    g = torch.Generator().manual_seed(1)
    return SdsCondition(prompt, "", torch.rand(4, 3, SIZE, SIZE, generator=g), mvvdm_cameras())


def test_protocol_shapes_and_branches(denoiser):
    assert isinstance(denoiser, SdsDenoiser)
    assert denoiser.latent_shape(SIZE, SIZE) == (4, 8, 8)
    assert denoiser.alphas_cumprod.shape == (1000,)
    g = torch.Generator().manual_seed(2)
    noisy = torch.randn(4, 2, 4, 8, 8, generator=g)
    cond = _cond()
    eps_c, eps_u = denoiser.predict_noise(noisy, 120, cond)
    assert eps_c.shape == eps_u.shape == noisy.shape and eps_c.dtype == torch.float32
    # the unconditional branch is the negative prompt with zero image embeddings
    comp = denoiser.comp
    text = encode_prompts(comp, [""])
    img = encode_images_clip(comp, torch.floor(cond.first_frames * 255) / 255)
    cams = mvdream_camera_embedding_input(cond.cameras.c2w)
    with torch.no_grad():
        ref_u = comp.unet(noisy[None], torch.tensor([120]), text, torch.zeros_like(img)[None], cams).sample[0]
        ref_c = comp.unet(
            noisy[None], torch.tensor([120]), encode_prompts(comp, [cond.prompt]), img[None], cams
        ).sample[0]
    torch.testing.assert_close(eps_u, ref_u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eps_c, ref_c, rtol=1e-4, atol=1e-5)
    assert (eps_c - eps_u).abs().mean() > 1e-4  # conditioning matters


def test_a_shared_denoiser_answers_each_prompt_and_keeps_one_text_context(denoiser):
    """A batch worker hands one denoiser to job after job: each prompt gets its own guidance, and the text
    contexts of earlier jobs' prompts are not kept on the device."""
    noisy = torch.randn(4, 2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    first = denoiser.predict_noise(noisy, 300, _cond("a dog wags its tail"))[0]
    second = denoiser.predict_noise(noisy, 300, _cond("a cat jumps"))[0]
    assert (first - second).abs().mean() > 1e-5
    assert list(denoiser._text) == [("a cat jumps", "")]
    torch.testing.assert_close(denoiser.predict_noise(noisy, 300, _cond("a dog wags its tail"))[0], first)


def test_gradients_flow_through_the_encoder_only(denoiser):
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 2, 3, SIZE, SIZE, generator=g).requires_grad_(True)  # [V, F, 3, H, W]
    post = torch.randn(8, 4, 8, 8, generator=g)
    z = denoiser.encode(images.flatten(0, 1), post).unflatten(0, (4, 2))
    # same posterior draw, same latents (what checkpointed recomputation relies on)
    torch.testing.assert_close(z, denoiser.encode(images.flatten(0, 1), post).unflatten(0, (4, 2)))
    loss, target = sds_loss(denoiser, z, _cond(), 50, torch.randn(4, 1, 4, 8, 8, generator=g), 5.0, 0.25)
    loss.backward()
    assert images.grad is not None and images.grad[:, 1:].abs().sum() > 0
    assert torch.all(images.grad[:, 0] == 0)  # the condition frame is never pulled
    comp = denoiser.comp
    for module in (comp.unet, comp.vae, comp.text_encoder, comp.image_encoder):
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())


def test_checkpointed_encoding_matches_plain_autograd(denoiser):
    g = torch.Generator().manual_seed(4)
    images = torch.rand(6, 3, SIZE, SIZE, generator=g)
    post = torch.randn(6, 4, 8, 8, generator=g)
    weights = torch.randn(6, 4, 8, 8, generator=g)
    grads = []
    for chunk in (0, 4):
        x = images.clone().requires_grad_(True)
        (encode_checkpointed(denoiser, x, post, chunk) * weights).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


class CountingEncoder:
    """The denoiser's `encode`, counting its calls: a recomputed chunk is encoded twice (forward, backward)."""

    def __init__(self, denoiser: MvvdmDenoiser) -> None:
        self.denoiser, self.calls = denoiser, 0

    def encode(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.denoiser.encode(images, noise)


@pytest.mark.parametrize("keep, kept_chunks", [(0, 0), (3, 0), (4, 1), (7, 1), (10, 3), (99, 3)])
def test_kept_chunks_are_not_recomputed_and_change_nothing(denoiser, keep, kept_chunks):
    """10 renders in chunks of 4 (4 + 4 + 2): the whole chunks inside the first `keep` renders skip the
    backward's recomputation; latents and gradients are the same whichever are kept."""
    g = torch.Generator().manual_seed(6)
    images = torch.rand(10, 3, SIZE, SIZE, generator=g)
    post = torch.randn(10, 4, 8, 8, generator=g)
    weights = torch.randn(10, 4, 8, 8, generator=g)
    results = []
    for k in (0, keep):
        counter = CountingEncoder(denoiser)
        x = images.clone().requires_grad_(True)
        z = encode_checkpointed(counter, x, post, 4, keep=k)
        (z * weights).sum().backward()
        results.append((z.detach(), x.grad, counter.calls))
    assert results[1][2] == 3 + (3 - kept_chunks)  # every chunk once, the recomputed ones again
    assert kept_render_count(10, 4, keep) == [0, 4, 8, 10][kept_chunks]
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-6, atol=1e-9)


def test_kept_render_count_counts_whole_chunks():
    assert kept_render_count(60, 16, 60) == 60
    assert kept_render_count(60, 16, 59) == 48  # the last chunk (48–59) is not whole inside 59
    assert kept_render_count(60, 16, 15) == 0
    assert kept_render_count(60, 0, 0) == 60  # one chunk, plain autograd: everything kept


def test_stage_end_to_end_with_the_tiny_mvvdm(run_dir, denoiser):
    from helpers import sds_run as make_run
    from helpers import sds_static as make_static

    static = make_static(n=30)
    make_run(run_dir, static)
    opts = sds_stage.SdsOptions(
        prompt="jumps", steps=1, render_size=SIZE, target_size=SIZE, arap_sample_points=16, vae_chunk=8
    )
    before = load_motion(run_dir / "motion" / "coarse.safetensors").field
    res = sds_stage.run(run_dir, opts, Runtime(seed=0), denoiser=denoiser)
    assert not res.skipped and res.metrics["loss_end"]["sds"] > 0
    phases = res.metrics["seconds_per_phase"]
    assert list(phases) == ["inputs_and_model", "targets", "steps", "writing"] and min(phases.values()) >= 0
    after = load_motion(run_dir / "motion" / "refined.safetensors", static=static).field
    assert isinstance(after, MotionField) and after.config == MotionFieldConfig.tiny(num_frames=4, use_delta_scale=True)
    # one Adam step moved the trainable output layers (zero-initialised, so their gradient is non-zero)
    changed = [
        k
        for k, v in after.state_dict().items()
        if k in before.state_dict() and not torch.equal(v, before.state_dict()[k])
    ]
    assert any(k.startswith("delta_xyz") for k in changed) and any(k.startswith("global_") for k in changed)


@pytest.mark.gpu
def test_refiner_on_cuda_with_the_tiny_mvvdm_in_bf16(run_dir, monkeypatch):
    """The device paths: CUDA generators, gsplat renders, bf16 MV-VDM with checkpointed encoder backward."""
    from helpers import sds_run as make_run
    from helpers import sds_static as make_static

    import a3d_cli.io.video as video
    from a3d_cli.models.mvvdm.denoiser import load_mvvdm_denoiser

    try:
        import imageio_ffmpeg  # noqa: F401  (a dependency of a3d; GPU images may lack it)
    except ImportError:  # what is tested here is the device path, not the preview encoder
        monkeypatch.setattr(video, "write_mp4", lambda path, frames, fps=8.0: path.write_bytes(b""))

    static = make_static(n=500)
    make_run(run_dir, static)
    den = load_mvvdm_denoiser(None, "cuda", torch.bfloat16)
    assert den.latent_shape(256, 256) == (4, 8, 8)  # the tiny VAE downsamples 32×
    opts = sds_stage.SdsOptions(prompt="jumps", steps=3, render_size=256, target_size=256, vae_chunk=4)
    res = sds_stage.run(run_dir, opts, Runtime(device="cuda", seed=0), denoiser=den)
    end = res.metrics["loss_end"]
    assert all(torch.isfinite(torch.tensor(v)) for v in end.values()) and end["sds"] > 0
    assert res.peak_memory_bytes is not None and res.peak_memory_bytes > 0
    # auto kept every moving render's VAE activations (the tiny model fits any GPU), and the first step, which
    # recomputed them, measured what keeping costs
    assert res.metrics["vae_renders_kept"] == 4 * 3 and res.metrics["vae_keep_fell_back"] is False
    # the first step measured the guided call, the second ran it eagerly once more, the third recorded it
    assert res.metrics["cuda_graph_replays"] == 1


@pytest.mark.gpu
def test_kept_vae_activations_on_cuda_are_measured_and_change_nothing():
    """On the device: what one render's encode holds is measured by the allocator (two renders hold twice as
    much), the spare memory affords some renders, and keeping them changes neither latents nor gradients."""
    from a3d_cli.gaussians.motion_refine import affordable_kept_renders
    from a3d_cli.models.activation_memory import held_after_forward
    from a3d_cli.models.mvvdm.denoiser import load_mvvdm_denoiser

    den = load_mvvdm_denoiser(None, "cuda", torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(0)
    images = torch.rand(12, 3, 256, 256, device="cuda", generator=g)
    post = torch.randn(12, 4, 8, 8, device="cuda", generator=g)
    one, two = (held_after_forward(den.encode, images[:n].clone().requires_grad_(True), post[:n]) for n in (1, 2))
    assert one > 256 * 256 * 3 * 2 and abs(two - 2 * one) < 0.1 * two  # activations, growing with the renders
    assert affordable_kept_renders(den, 256, 10**6, 4, "cuda") > 100
    results = []
    for keep in (0, 12):
        x = images.clone().requires_grad_(True)
        z = encode_checkpointed(den, x, post, 4, keep=keep)
        z.square().sum().backward()
        results.append((z.detach(), x.grad))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-2, atol=1e-4)


def test_the_kept_renders_follow_the_spare_memory_and_the_chunks_encode(denoiser, monkeypatch):
    """`affordable_kept_renders` divides the spare memory by what one chunk's encode holds, measured on a chunk
    of the step's own shape, and keeps none when even that measurement runs out of memory. (The device's two
    figures are stood in for, so that the arithmetic runs on the CPU.)"""
    import a3d_cli.models.activation_memory as memory
    from a3d_cli.gaussians.motion_refine import affordable_kept_renders

    shapes = []

    def held(fn, images, noise):  # noqa: ANN001, ANN202
        shapes.append(tuple(images.shape))
        return 1000 * images.shape[0]  # 1000 bytes per render

    monkeypatch.setattr(memory, "spare_bytes", lambda device: 25_500)
    monkeypatch.setattr(memory, "held_after_forward", held)
    assert affordable_kept_renders(denoiser, SIZE, 60, 16, "cpu") == 25
    assert affordable_kept_renders(denoiser, SIZE, 12, 16, "cpu") == 12  # never more than there are
    assert shapes == [(16, 3, SIZE, SIZE), (12, 3, SIZE, SIZE)]

    def out_of_memory(fn, images, noise):  # noqa: ANN001, ANN202
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(memory, "held_after_forward", held)
    assert affordable_kept_renders(denoiser, SIZE, 60, 16, "cpu", set_aside=10_500) == 15  # 15 000 bytes left
    assert affordable_kept_renders(denoiser, SIZE, 60, 16, "cpu", set_aside=25_500) == 0  # nothing left

    monkeypatch.setattr(memory, "held_after_forward", out_of_memory)
    assert affordable_kept_renders(denoiser, SIZE, 60, 16, "cpu") == 0


class LoggingDenoiser:
    """The tiny MV-VDM, logging the order of the calls one SDS loss makes and how often CLIP runs."""

    def __init__(self, denoiser: MvvdmDenoiser) -> None:
        self.denoiser, self.log = denoiser, []
        self.alphas_cumprod = denoiser.alphas_cumprod

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return self.denoiser.latent_shape(height, width)

    def prepare_condition(self, cond: SdsCondition) -> None:
        self.log.append("prepare_condition")
        self.denoiser.prepare_condition(cond)

    def encode(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        self.log.append("encode")
        return self.denoiser.encode(images, noise)

    def predict_noise(self, noisy: torch.Tensor, t: int, cond: SdsCondition) -> tuple[torch.Tensor, torch.Tensor]:
        self.log.append("predict_noise")
        return self.denoiser.predict_noise(noisy, t, cond)


def test_the_condition_is_encoded_before_the_vae_and_once(denoiser, monkeypatch):
    """CLIP's host-side preprocessing reads the frame-0 renders back: `sds_loss_of_renders` has it done before
    any VAE encoding is queued, and `predict_noise` then reuses that encoding; the result is the same as
    encoding the condition inside `predict_noise`."""
    import a3d_cli.models.mvvdm.pipeline as pipeline
    from a3d_cli.gaussians.motion_refine import RefineSettings, sds_loss_of_renders

    clip_calls = []
    real_clip = pipeline.encode_images_clip
    monkeypatch.setattr(
        pipeline, "encode_images_clip", lambda comp, images: clip_calls.append(1) or real_clip(comp, images)
    )
    g = torch.Generator().manual_seed(8)
    rgb = torch.rand(4, 3, 3, SIZE, SIZE, generator=g)  # [V, F, 3, H, W]
    post, noise = torch.randn(4, 3, 4, 8, 8, generator=g), torch.randn(4, 2, 4, 8, 8, generator=g)
    settings = RefineSettings(prompt="jumps", vae_chunk=4)
    logged = LoggingDenoiser(denoiser)
    loss = sds_loss_of_renders(logged, rgb, mvvdm_cameras(), settings, post, 90, noise)
    assert logged.log[0] == "prepare_condition" and logged.log[-1] == "predict_noise" and "encode" in logged.log
    assert len(clip_calls) == 1
    plain = sds_loss_of_renders(denoiser, rgb, mvvdm_cameras(), settings, post, 90, noise)  # no wrapper: no prepare
    torch.testing.assert_close(loss, plain, rtol=0, atol=0)


class GraphingDenoiser(LoggingDenoiser):
    """The tiny MV-VDM offering a CUDA-graph replay whose recording takes 4 000 bytes; it logs what it is asked."""

    guided_call_bytes = 4_000
    graph_replays = 0
    graph_ran_out_of_memory = False

    def __init__(self, denoiser: MvvdmDenoiser) -> None:
        super().__init__(denoiser)
        self.graph_calls: list[bool] = []

    def use_guided_graph(self, on: bool = True) -> None:
        self.graph_calls.append(on)


def test_a_recording_that_runs_out_of_memory_leaves_the_eager_call(denoiser, monkeypatch):
    """If recording the guided call runs out of GPU memory, `predict_noise` still answers, with the eager call,
    from then on, and says so; dropping the graph clears that and asks for a new measurement. (The recording is
    stood in for by one that always runs out of memory, so that this runs on the CPU.)"""
    import a3d_cli.models.mvvdm.denoiser as denoiser_module

    class OutOfMemoryGraph:
        replays = 0

        def __init__(self, fn, eager_calls: int = 1) -> None:  # noqa: ANN001
            pass

        def __call__(self, *args: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(denoiser_module, "GraphedFunction", OutOfMemoryGraph)
    noisy = torch.randn(4, 2, 4, 8, 8, generator=torch.Generator().manual_seed(9))
    cond = _cond()
    eager = denoiser.predict_noise(noisy, 77, cond)
    denoiser.use_guided_graph()
    try:
        fell_back = denoiser.predict_noise(noisy, 77, cond)
        assert denoiser.graph_ran_out_of_memory and denoiser.graph_replays == 0
        for got, want in zip(fell_back, eager, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    finally:
        denoiser.use_guided_graph(False)
    assert not denoiser.graph_ran_out_of_memory and denoiser.guided_call_bytes is None


@pytest.mark.parametrize("spare, recorded, kept", [(10_000, True, 6), (3_999, False, 3), (None, False, 0)])
def test_the_guided_graph_is_planned_before_the_vae_activations(denoiser, monkeypatch, spare, recorded, kept):
    """After the first step the refiner asks for the recording when what the guided call took fits in the spare
    GPU memory, and plans the VAE activations with what is left (12 renders in chunks of 4, 1 000 bytes each);
    otherwise the call stays eager and the activations get it all; with no spare figure (the CPU) neither is
    planned. The log says what was decided, once. (The device's figures are stood in for.)"""
    from helpers import sds_static

    import a3d_cli.models.activation_memory as memory
    from a3d_cli.gaussians.motion_refine import RefineSettings, SdsRefiner, refined_field

    monkeypatch.setattr(memory, "held_after_forward", lambda fn, images, noise: 1000 * images.shape[0])
    monkeypatch.setattr(memory, "spare_bytes", lambda device: spare)
    coarse = MotionField(MotionFieldConfig.tiny(num_frames=4), generator=torch.Generator().manual_seed(0))
    settings = RefineSettings(prompt="jumps", render_size=SIZE, target_size=SIZE, vae_chunk=4, arap_sample_points=16)
    den = GraphingDenoiser(denoiser)
    refiner = SdsRefiner(sds_static(n=30), refined_field(coarse, True, 0), den, settings, seed=0)
    assert den.graph_calls == [False]  # eager until the first step has run
    refiner.step()
    assert den.graph_calls == ([False, True] if recorded else [False])
    assert refiner.guided_graph is recorded and refiner.vae_keep == kept
    notes = refiner.take_memory_notes()
    assert any("recording the guided call" in n for n in notes) is recorded
    assert any("too little spare GPU memory to record" in n for n in notes) is (spare == 3_999)
    assert refiner.take_memory_notes() == []  # each note once


@pytest.mark.gpu
def test_the_guided_graph_replays_the_eager_prediction_on_cuda():
    """The tiny MV-VDM in fp32 on the device: once recorded, the guided call's replay predicts what the eager call
    predicts for every new input (latents, timestep, frame-0 images, cameras), none of them baked in."""
    from a3d_cli.models.mvvdm.denoiser import load_mvvdm_denoiser
    from a3d_cli.render.random_cameras import RandomCameraConfig, sample_orthogonal_cameras

    den = load_mvvdm_denoiser(None, "cuda", torch.float32)
    den.accelerate("cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    inputs = [
        (
            torch.randn(4, 3, 4, 8, 8, device="cuda", generator=g),
            int(t),
            SdsCondition("jumps", "", torch.rand(4, 3, 256, 256, device="cuda", generator=g),
                         sample_orthogonal_cameras(RandomCameraConfig(), torch.Generator().manual_seed(int(t)))),
        )  # fmt: skip
        for t in (30, 120, 199, 64)
    ]
    eager = [tuple(e.clone() for e in den.predict_noise(*args)) for args in inputs]
    den.use_guided_graph()
    graphed = [tuple(e.clone() for e in den.predict_noise(*args)) for args in inputs]  # eager, record, replay ×2
    assert den.graph_replays == 3
    for (ec, eu), (gc, gu) in zip(eager, graphed, strict=True):
        torch.testing.assert_close(gc, ec, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gu, eu, rtol=1e-5, atol=1e-6)
    assert (eager[2][0] - eager[3][0]).abs().mean() > 1e-4  # the inputs differ, and so do the predictions


@pytest.mark.gpu
def test_the_guided_graph_serves_the_refiner_from_its_third_step_on_cuda():
    """With the recording fitting (the tiny model fits any GPU), the refiner switches it on after its first step,
    the third step records it and every later one replays it; the losses follow the eager run's (up to the
    last bits that gsplat's atomic sums change from run to run)."""
    from helpers import sds_static as make_static

    from a3d_cli.gaussians.motion_refine import SdsRefiner, refined_field
    from a3d_cli.models.mvvdm.denoiser import load_mvvdm_denoiser

    static = make_static(n=300).to("cuda")
    coarse = MotionField(MotionFieldConfig.tiny(num_frames=4), generator=torch.Generator().manual_seed(0))
    results = []
    for graph in (False, True):
        den = load_mvvdm_denoiser(None, "cuda", torch.float32)
        den.accelerate("cuda")
        settings = sds_stage.SdsOptions(
            prompt="jumps", render_size=256, target_size=256, vae_chunk=4, cuda_graph=graph
        )
        refiner = SdsRefiner(static, refined_field(coarse, True, 0).to("cuda"), den, settings, seed=0)
        losses = [refiner.step().total.item() for _ in range(5)]
        results.append((losses, den.graph_replays, refiner.guided_graph))
    (eager, eager_replays, eager_recorded), (graphed, replays, recorded) = results
    assert (eager_replays, eager_recorded) == (0, False) and recorded and replays == 3
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-6)
