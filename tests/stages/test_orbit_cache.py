"""The orbit stage's SV3D through a batch worker's model cache (tiny checkpoints, CPU).

A worker hands the same SV3D to job after job: it must be built once per settings, sample exactly as a
freshly built one (nothing of one run may stay on it) and be replaced, not joined, when the settings change.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch
from helpers import small_photo

from a3d_cli.errors import CheckpointError
from a3d_cli.models.cache import ModelCache, using_model_cache
from a3d_cli.models.sv3d.testing import write_tiny_checkpoint
from a3d_cli.stages import orbit
from a3d_cli.stages.base import Runtime


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sv3d")
    return {v: write_tiny_checkpoint(root / f"tiny_{v}.safetensors", v, seed=0) for v in ("sv3d_p", "sv3d_u")}


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return small_photo(tmp_path_factory.mktemp("photo") / "photo.png")


def _opts(photo: Path, ckpt: Path, **kw) -> orbit.OrbitOptions:  # noqa: ANN003
    return orbit.OrbitOptions(image=str(photo), checkpoint=str(ckpt), steps=2, **kw)


def _outputs(run: Path) -> dict[str, bytes]:
    """Every file the stage wrote (frames, input-first frames, cameras), by path in the run folder."""
    out = run / "orbit"
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".json"))
    assert len(files) == 2 * 21 + 1 + 2  # the frames twice, input.png, two cameras.json
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def test_a_worker_builds_sv3d_once_and_samples_as_fresh_models_do(tmp_path: Path, photo: Path, ckpts):
    """Two runs in one cache: one build, outputs byte-identical to two runs that each built their own."""
    opts = _opts(photo, ckpts["sv3d_p"])
    fresh = [_outputs(orbit.run(tmp_path / f"fresh{i}", opts, Runtime(seed=3)).run_dir) for i in range(2)]
    cache = ModelCache()
    with using_model_cache(cache):
        cached = [_outputs(orbit.run(tmp_path / f"cached{i}", opts, Runtime(seed=3)).run_dir) for i in range(2)]
    assert cache.builds["sv3d"] == 1 and len(cache) == 1
    assert cached[0] == fresh[0] and cached[1] == fresh[1]  # the second run sees the model as the first did
    assert fresh[0] == fresh[1]


def test_other_settings_build_a_new_sv3d_and_free_the_old(photo: Path, ckpts, tmp_path: Path):
    """sv3d_p → sv3d_u (another file) → bf16: each a new build that replaces the one before."""
    cache = ModelCache()
    with using_model_cache(cache):
        first = orbit.load_model(_opts(photo, ckpts["sv3d_p"]), ckpts["sv3d_p"], "cpu")
        assert orbit.load_model(_opts(photo, ckpts["sv3d_p"]), ckpts["sv3d_p"], "cpu") is first
        old_unet = weakref.ref(first.loaded.models.unet)
        del first
        run = orbit.run(tmp_path / "u", _opts(photo, ckpts["sv3d_u"], model="sv3d_u"), Runtime())
        assert run.metrics["model"] == "sv3d_u" and cache.builds["sv3d"] == 2 and len(cache) == 1
        gc.collect()
        assert old_unet() is None  # one SV3D per worker: the sv3d_p networks are gone
        half = orbit.load_model(_opts(photo, ckpts["sv3d_u"], model="sv3d_u", dtype="bf16"), ckpts["sv3d_u"], "cpu")
        assert next(half.loaded.models.unet.parameters()).dtype == torch.bfloat16
        assert cache.builds["sv3d"] == 3 and len(cache) == 1


def test_a_job_asking_for_the_other_variant_fails_and_leaves_the_cached_model(photo: Path, ckpts):
    """The variant check holds for a cached model too, and the failing job does not evict it."""
    cache = ModelCache()
    with using_model_cache(cache):
        kept = orbit.load_model(_opts(photo, ckpts["sv3d_p"]), ckpts["sv3d_p"], "cpu")
        with pytest.raises(CheckpointError, match="sv3d_p checkpoint, but sv3d_u was asked for"):
            orbit.load_model(_opts(photo, ckpts["sv3d_p"], model="sv3d_u"), ckpts["sv3d_p"], "cpu")
        assert orbit.load_model(_opts(photo, ckpts["sv3d_p"]), ckpts["sv3d_p"], "cpu") is kept
    assert cache.builds["sv3d"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the speed settings apply on CUDA only")
def test_a_cached_compiled_sv3d_gains_nothing_from_a_second_run(tmp_path: Path, photo: Path, ckpts):
    """With every speed setting on, the second run of a worker finds the model as the first left it: the same
    hooks, the same report, the same frames."""
    from a3d_cli.io.images import load_png
    from a3d_cli.models.speed.acceleration import repeated_blocks

    opts = _opts(photo, ckpts["sv3d_p"], compile=True)
    cache = ModelCache()
    with using_model_cache(cache):
        runs = [orbit.run(tmp_path / f"run{i}", opts, Runtime(device="cuda", seed=3)) for i in range(2)]
        model = orbit.load_model(opts, ckpts["sv3d_p"], "cuda")
    assert cache.builds["sv3d"] == 1
    blocks = [b for net in model.loaded.models.hot_networks() for _, b in repeated_blocks(net)]
    assert blocks and all(len(b._forward_hooks) == 1 for b in blocks)  # the channels-last hook, once
    speed = ("compiled_blocks", "channels_last_blocks", "subpixel_upsamplers", "fused_geglus")
    reports = [{k: r.metrics[k] for k in speed} for r in runs]
    assert reports[0] == reports[1] and reports[0]["compiled_blocks"] > 0
    for i in range(21):
        a, b = (load_png(r.run_dir / "orbit" / f"frame_{i:02d}.png") for r in runs)
        assert (a - b).abs().max() <= 1 / 255 + 1e-6


def test_a_single_run_lets_go_of_sv3d_before_handing_back_the_gpu_memory(
    tmp_path: Path, photo: Path, ckpts, monkeypatch
):
    """No cache: when the stage hands the allocator's cache back (`torch.cuda.empty_cache`), nothing holds
    the networks any more, the speed report included (on CUDA its undo handle refers to the blocks)."""
    from a3d_cli.models.speed.acceleration import AccelerationReport
    from a3d_cli.models.speed.handles import SpeedHandle
    from a3d_cli.models.sv3d.loading import SV3DModels

    unets: list[weakref.ref] = []
    alive: list[bool] = []

    def accelerate(self, device, compile=False):  # noqa: ANN001, ANN202, A002 - as on CUDA: the handle keeps the networks
        unets.append(weakref.ref(self.unet))
        unet = self.unet
        return AccelerationReport(handle=SpeedHandle("accelerate", 1, lambda: unet.train(False)))

    def empty_cache() -> None:
        gc.collect()
        alive.append(bool(unets) and unets[-1]() is not None)

    monkeypatch.setattr(SV3DModels, "accelerate", accelerate)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the stage's own empty_cache call runs (device: cpu)
    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    orbit.run(tmp_path / "run", _opts(photo, ckpts["sv3d_p"]), Runtime(device="cpu", seed=3))
    assert unets and alive and alive[-1] is False
