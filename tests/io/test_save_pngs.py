"""`save_pngs`: many frames written as `save_png` writes one, each atomically, in the order of their paths."""

from __future__ import annotations

import pytest
import torch

from a3d_cli.io.images import load_png, save_png, save_pngs


def _frames(n: int, channels: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.rand(n, 12, 10, channels, generator=g)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_the_files_are_save_pngs_byte_for_byte(tmp_path, channels):
    frames = _frames(9, channels)
    save_pngs([tmp_path / f"many_{i}.png" for i in range(9)], frames)
    for i in range(9):
        save_png(tmp_path / f"one_{i}.png", frames[i])
        assert (tmp_path / f"many_{i}.png").read_bytes() == (tmp_path / f"one_{i}.png").read_bytes()


def test_each_image_lands_at_its_own_path(tmp_path):
    frames = torch.zeros(3, 4, 4, 3)
    for i in range(3):
        frames[i, ..., i] = 1.0  # frame i is pure red, green or blue
    save_pngs([tmp_path / f"{i}.png" for i in range(3)], frames)
    for i in range(3):
        assert load_png(tmp_path / f"{i}.png")[..., i].min() == 1.0


def test_a_failed_write_leaves_no_partial_file_and_the_others_are_written(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.png").mkdir()  # a folder where a file should go: the rename fails
    paths = [tmp_path / "a.png", tmp_path / "taken" / "x.png", tmp_path / "b.png"]
    with pytest.raises(OSError):
        save_pngs(paths, _frames(3))
    assert (tmp_path / "a.png").is_file() and (tmp_path / "b.png").is_file()
    assert not [p for p in tmp_path.rglob("*.tmp*")]  # no temporary file left behind


@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 4, 4, 2), (3, 4, 4, 3)])
def test_a_mismatch_of_images_and_paths_is_refused(tmp_path, shape):
    with pytest.raises(ValueError, match="save_pngs"):
        save_pngs([tmp_path / "a.png", tmp_path / "b.png"], torch.zeros(shape))
    assert not list(tmp_path.iterdir())
