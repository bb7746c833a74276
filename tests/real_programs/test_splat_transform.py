"""a3d decodes SuperSplat's compressed PLY, `.splat` and Niantic's `.spz` files as PlayCanvas' splat-transform
does: the standard 3DGS PLY splat-transform converts each into holds the Gaussians a3d reads from the file
itself, in the same frame.

Opt-in: A3D_SPLAT_TRANSFORM (a folder holding node_modules/@playcanvas/splat-transform).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compressed_ply_bytes, needs_program, splat_file_bytes, splat_transform, spz_bytes

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.gaussians.splat_file import read_splat
from a3d_cli.gaussians.spz import read_spz

pytestmark = needs_program("A3D_SPLAT_TRANSFORM")


def _gaussians(n: int, sh_degree: int, seed: int) -> Gaussians:
    """Opacities kept off 0 and 1: splat-transform writes their logits as ±infinity, which a3d refuses."""
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen) * 2,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
        scales=torch.exp(torch.rand(n, 3, generator=gen) * 4 - 6),
        opacities=torch.linspace(0.02, 0.98, n),
        colors=torch.rand(n, 3, generator=gen),
        sh_rest=None if sh_degree == 0 else torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=gen),
    )


def _assert_same(ours: Gaussians, theirs: Gaussians, quat_tol: float = 1e-6) -> None:
    assert len(ours) == len(theirs)
    torch.testing.assert_close(ours.means, theirs.means, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.scales, theirs.scales, rtol=1e-5, atol=0)
    torch.testing.assert_close(ours.colors, theirs.colors, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.opacities, theirs.opacities, rtol=0, atol=1e-6)
    sign = torch.where((ours.quats * theirs.quats).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    assert (ours.quats - sign * theirs.quats).norm(dim=-1).max().item() <= quat_tol
    assert (ours.sh_rest is None) == (theirs.sh_rest is None)
    if ours.sh_rest is not None:
        torch.testing.assert_close(ours.sh_rest, theirs.sh_rest, rtol=0, atol=1e-6)


def test_compressed_ply_written_by_splat_transform(tmp_path: Path):
    write_ply(tmp_path / "in.ply", _gaussians(1000, 3, seed=0))
    splat_transform(tmp_path / "in.ply", tmp_path / "scene.compressed.ply")
    splat_transform(tmp_path / "scene.compressed.ply", tmp_path / "back.ply")
    _assert_same(read_ply(tmp_path / "scene.compressed.ply"), read_ply(tmp_path / "back.ply"))


def test_compressed_ply_encoded_from_the_layout_without_chunk_colours(tmp_path: Path):
    path = tmp_path / "scene.compressed.ply"
    path.write_bytes(compressed_ply_bytes(_gaussians(600, 1, seed=1), chunk_colours=False))
    splat_transform(path, tmp_path / "back.ply")
    _assert_same(read_ply(path), read_ply(tmp_path / "back.ply"))


def test_splat_file(tmp_path: Path):
    path = tmp_path / "scene.splat"
    path.write_bytes(splat_file_bytes(_gaussians(500, 0, seed=2)))
    splat_transform(path, tmp_path / "back.ply")
    # splat-transform reads a rotation byte as u / 127.5 − 1, a3d (as antimatter15's viewer) as (u − 128) / 128:
    # that adds 1/255 to each of the four components, so the normalised quaternions differ by at most 2/255
    # over the stored quaternion's length, itself at least 1 − 2/128 (`a3d_cli.gaussians.splat_file`)
    _assert_same(read_splat(path), read_ply(tmp_path / "back.ply"), quat_tol=(2 / 255) / (1 - 2 / 128))


def test_spz_written_by_splat_transform(tmp_path: Path):
    write_ply(tmp_path / "in.ply", _gaussians(1000, 3, seed=3))
    splat_transform(tmp_path / "in.ply", tmp_path / "scene.spz", "--spz-version", "3")
    splat_transform(tmp_path / "scene.spz", tmp_path / "back.ply")
    _assert_same(read_spz(tmp_path / "scene.spz"), read_ply(tmp_path / "back.ply"))


@pytest.mark.parametrize("version,sh_degree", [(1, 2), (2, 3), (3, 1)])
def test_spz_encoded_from_the_format(tmp_path: Path, version: int, sh_degree: int):
    g = _gaussians(600, sh_degree, seed=4 + version)
    if g.sh_rest is not None:
        g = g.with_(sh_rest=g.sh_rest.clamp(-0.99, 0.99))
    path = tmp_path / "scene.spz"
    path.write_bytes(spz_bytes(g, version))
    splat_transform(path, tmp_path / "back.ply")
    # versions 1–2 rebuild w = √(1 − x² − y² − z²), in float32 there and float64 here: where w is near 0 the two
    # differ by up to about 1e-5
    _assert_same(read_spz(path), read_ply(tmp_path / "back.ply"), quat_tol=1e-6 if version == 3 else 1e-4)


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_spz_version_4_written_by_splat_transform(tmp_path: Path, sh_degree: int):
    """Its version 4 (zstd streams, the default) reads as the PLY it converts the file into, and as the version 3
    file it writes of the same splats (both quantize the same way; only the packing differs)."""
    write_ply(tmp_path / "in.ply", _gaussians(800, sh_degree, seed=5 + sh_degree))
    splat_transform(tmp_path / "in.ply", tmp_path / "scene.spz")
    assert (tmp_path / "scene.spz").read_bytes()[:8] == b"NGSP\x04\x00\x00\x00"
    splat_transform(tmp_path / "in.ply", tmp_path / "v3.spz", "--spz-version", "3")
    splat_transform(tmp_path / "scene.spz", tmp_path / "back.ply")
    ours = read_spz(tmp_path / "scene.spz")
    _assert_same(ours, read_ply(tmp_path / "back.ply"))
    _assert_same(ours, read_spz(tmp_path / "v3.spz"), quat_tol=0)


def test_spz_version_4_encoded_from_the_format(tmp_path: Path):
    g = _gaussians(600, 2, seed=9)
    g = g.with_(sh_rest=g.sh_rest.clamp(-0.99, 0.99))
    path = tmp_path / "scene.spz"
    path.write_bytes(spz_bytes(g, 4))
    splat_transform(path, tmp_path / "back.ply")
    _assert_same(read_spz(path), read_ply(tmp_path / "back.ply"))
