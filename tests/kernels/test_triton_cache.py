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
