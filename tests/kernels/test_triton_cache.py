"""Triton's cache folder as Triton picks it, whether a3d's kernels are in it, and the one notice before they compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3d_cli.kernels import triton_cache
from a3d_cli.kernels.triton_cache import announce_compile, kernels_cached, triton_cache_dir


def test_the_folder_is_chosen_as_triton_chooses_it(tmp_path):
    assert triton_cache_dir({"TRITON_CACHE_DIR": "/c", "TRITON_HOME": "/h"}) == Path("/c")
    assert triton_cache_dir({"TRITON_HOME": "/h"}) == Path("/h/.triton/cache")
    assert triton_cache_dir({}) == Path.home() / ".triton" / "cache"


def test_a_kernel_counts_as_cached_only_when_one_of_ours_is_there(tmp_path):
    env = {"TRITON_CACHE_DIR": str(tmp_path)}
    assert not kernels_cached(env)
    (tmp_path / "HASH1").mkdir()
    (tmp_path / "HASH1" / "someone_elses_kernel.json").write_text("{}")
    assert not kernels_cached(env)
    (tmp_path / "HASH2").mkdir()
    (tmp_path / "HASH2" / "_short_attention_kernel.json").write_text("{}")
    assert kernels_cached(env)


def test_the_notice_names_the_folder_and_the_warmup_and_is_said_only_when_needed(tmp_path):
    env = {"TRITON_CACHE_DIR": str(tmp_path)}
    said: list[str] = []
    assert announce_compile(said.append, env)
    assert len(said) == 1 and str(tmp_path) in said[0] and "a3d info --warmup" in said[0]
    (tmp_path / "H").mkdir()
    (tmp_path / "H" / "_geglu_kernel.json").write_text("{}")
    assert not announce_compile(said.append, env) and len(said) == 1


def test_once_per_process_and_quiet_after_the_warmup_asks(monkeypatch, tmp_path):
    calls: list[int] = []
    monkeypatch.setattr(triton_cache, "_said", False)
    monkeypatch.setattr(triton_cache, "announce_compile", lambda: calls.append(1) or True)
    assert triton_cache.announce_compile_once() and not triton_cache.announce_compile_once()
    assert calls == [1]
    monkeypatch.setattr(triton_cache, "_said", False)
    triton_cache.quiet_compile_notice()
    assert not triton_cache.announce_compile_once() and calls == [1]


@pytest.mark.parametrize("name", triton_cache.KERNEL_NAMES)
def test_the_names_are_the_kernels_own(name):
    """The cache files are named after the kernel functions: a renamed kernel must rename its entry here."""
    source = Path(triton_cache.__file__).parent / ("geglu_gluon.py" if "geglu" in name else "short_attention_triton.py")
    assert f"def {name}(" in source.read_text()


def test_the_cache_folder_is_pinned_unless_the_user_chose_one(tmp_path):
    """`torch.compile` would otherwise point an unset variable at its own folder, away from the warm-up's."""
    from a3d_cli.kernels.triton_cache import use_triton_cache_dir

    env = {"TRITON_HOME": str(tmp_path)}
    assert use_triton_cache_dir(env) == tmp_path / ".triton" / "cache"
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / ".triton" / "cache")
    mine = {"TRITON_CACHE_DIR": "/mine", "TRITON_HOME": str(tmp_path)}
    assert use_triton_cache_dir(mine) == Path("/mine") and mine["TRITON_CACHE_DIR"] == "/mine"


def test_warmup_compiles_the_kernels_even_when_gsplat_fails_and_reports_each_stage(monkeypatch, tmp_path):
    """A failed stage is skipped with its reason, the others still run, and gsplat's error still exits 2."""
    import torch
    from typer.testing import CliRunner

    from a3d_cli.cli import app
    from a3d_cli.kernels import rasterize_gsplat
    from a3d_cli.models import warmup

    ran: list[str] = []

    def warm(precisions, device):
        (stage,) = precisions
        ran.append(stage)
        if stage == "mvvideo":
            raise RuntimeError("no kernel for this GPU")
        return [warmup.WarmedNetwork(stage, "float16", 1.0)]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(rasterize_gsplat, "gsplat_available", lambda: False)
    monkeypatch.setattr(warmup, "warm_diffusion_kernels", warm)
    monkeypatch.setattr(triton_cache, "_said", False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # the command sets it when unset: keep it to this test
    result = CliRunner().invoke(app, ["info", "--warmup"])
    assert result.exit_code == 2 and "gsplat" in result.output and "Traceback" not in result.output
    assert ran == ["orbit", "mvvideo", "sds"]
    assert "mvvideo skipped (RuntimeError: no kernel for this GPU)" in result.output
    assert "orbit 1.0 s, sds 1.0 s" in result.output


@pytest.mark.gpu
def test_on_a_gpu_the_first_compile_is_announced_once_and_lands_where_the_check_looks(tmp_path):
    """Real Triton: a process with an empty cache says so and compiles into it; the next one finds the kernels."""
    import os
    import subprocess
    import sys

    script = (
        "from a3d_cli.models.warmup import warm_diffusion_kernels\n"
        "warm_diffusion_kernels({'mvvideo': 'fp16'}, 'cuda', tiny=True)\n"
    )
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    marker = "compiling a3d's GPU kernels"
    assert runs[0].stderr.count(marker) == 1 and marker not in runs[1].stderr
    assert kernels_cached({"TRITON_CACHE_DIR": str(tmp_path / "cache")})
