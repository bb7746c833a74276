"""gsplat's build cache folder, the notice before a build, and `a3d info --warmup` without a GPU."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from a3d_cli.kernels import gsplat_build
from a3d_cli.kernels.gsplat_build import (
    ENV,
    EXTENSION_NAME,
    announce_build,
    build_needed,
    extensions_dir,
    use_extensions_dir,
)


def test_the_users_folder_wins_else_a_versioned_folder_under_the_xdg_cache(tmp_path):
    assert extensions_dir({ENV: "/opt/ext", "XDG_CACHE_HOME": str(tmp_path)}) == Path("/opt/ext")
    chosen = extensions_dir({"XDG_CACHE_HOME": str(tmp_path)})
    assert chosen.parent == tmp_path / "a3d" / "torch_extensions"
    assert f"torch{torch.__version__.split('+')[0]}" in chosen.name and chosen.name.startswith("py")
    assert extensions_dir({"HOME": str(tmp_path)}).parent == tmp_path / ".cache" / "a3d" / "torch_extensions"


def test_use_sets_the_variable_only_when_unset(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    path = use_extensions_dir(env)
    assert env[ENV] == str(path) and path.is_relative_to(tmp_path)
    mine = {ENV: "/somewhere/else", "XDG_CACHE_HOME": str(tmp_path)}
    assert use_extensions_dir(mine) == Path("/somewhere/else") and mine[ENV] == "/somewhere/else"


def test_notice_only_when_a_build_will_happen(tmp_path, monkeypatch):
    monkeypatch.setattr(gsplat_build, "prebuilt_gsplat", lambda: False)
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    said: list[str] = []
    assert build_needed(env) and announce_build(said.append, env)
    assert len(said) == 1 and "gsplat" in said[0] and "a3d info --warmup" in said[0]
    assert str(extensions_dir(env) / EXTENSION_NAME) in said[0]
    built = extensions_dir(env) / EXTENSION_NAME / f"{EXTENSION_NAME}.so"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    said.clear()
    assert not build_needed(env) and not announce_build(said.append, env) and said == []
    monkeypatch.setattr(gsplat_build, "prebuilt_gsplat", lambda: True)
    built.unlink()
    assert not build_needed(env)  # a wheel with the compiled extension needs no build


def test_info_warmup_without_cuda_exits_cleanly_and_info_needs_a_run_or_warmup(monkeypatch):
    from a3d_cli.cli import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(app, ["info", "--warmup"])
    assert result.exit_code == 0, result.output
    assert "no CUDA GPU" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 2 and "--warmup" in result.output
