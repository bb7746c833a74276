"""SuperSplat's compressed PLY, the `.splat` file and Niantic's `.spz`: decoded to the Gaussians they encode, within the
quantization each layout has; hand-made words decode to the layout's exact values; gsplat's writers of both
are read; damaged and hostile files are one clear `InputError`."""

from __future__ import annotations

import gzip
import math
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from helpers import (
    compressed_ply_bytes,
    ngsp_bytes,
    splat_file_bytes,
    spz_blocks,
    spz_bytes,
    spz_stream,
    zstd_module,
)

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import SH_C0, Gaussians
from a3d_cli.gaussians.formats import read_gaussians
from a3d_cli.gaussians.ply import is_gaussian_ply, read_ply
from a3d_cli.gaussians.splat_file import read_splat
from a3d_cli.gaussians.spz import read_spz


def known_gaussians(n: int = 600, sh_degree: int = 0, seed: int = 0) -> Gaussians:
    """Splats spread over several chunks, with the sign of each quaternion's largest component random."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen) * torch.tensor([3.0, 1.0, 0.5]) + torch.tensor([2.0, -1.0, 0.0]),
        quats=q,
        scales=torch.exp(torch.rand(n, 3, generator=gen) * 4 - 6),
        opacities=torch.rand(n, generator=gen),
        colors=torch.rand(n, 3, generator=gen) * 1.2 - 0.1,  # SH colour may leave [0, 1]
        sh_rest=None if sh_degree == 0 else torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=gen),
    )


def chunk_span(values: np.ndarray) -> np.ndarray:
    """[N, D] each splat's chunk range (max − min) of `values` [N, D]."""
    spans = np.empty_like(values)
    for start in range(0, len(values), 256):
        rows = slice(start, start + 256)
        spans[rows] = values[rows].max(0) - values[rows].min(0)
    return spans


def assert_same_rotations(decoded: torch.Tensor, truth: torch.Tensor, tol: float) -> None:
    """Each decoded quaternion within `tol` (Euclidean) of the truth or of its negative (the same rotation)."""
    d, t = decoded.double(), truth.double()
    sign = torch.where((d * t).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    assert torch.allclose(d.norm(dim=-1), torch.ones(len(d), dtype=torch.float64), atol=1e-6)
    err = (d - sign * t).norm(dim=-1).max().item()
    assert err <= tol, err


# -- compressed PLY -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sh_degree,chunk_colours,endian,comment",
    [(0, True, "<", False), (1, True, "<", True), (3, False, "<", False), (2, True, ">", False)],
)
def test_compressed_ply_decodes_within_its_quantization(tmp_path, sh_degree, chunk_colours, endian, comment):
    g = known_gaussians(sh_degree=sh_degree)
    path = tmp_path / "scene.compressed.ply"
    path.write_bytes(compressed_ply_bytes(g, chunk_colours=chunk_colours, endian=endian, comment=comment))
    assert is_gaussian_ply(path)
    out = read_ply(path)
    assert len(out) == len(g) and out.means.dtype == torch.float32
    half_step = 0.5 / np.array([2047.0, 1023.0, 2047.0])  # nearest of 2^11 − 1, 2^10 − 1, 2^11 − 1 steps
    means = g.means.double().numpy()
    assert (np.abs(out.means.double().numpy() - means) <= chunk_span(means) * half_step + 1e-5).all()
    logs = np.log(g.scales.double().numpy())
    assert (np.abs(np.log(out.scales.double().numpy()) - logs) <= chunk_span(logs) * half_step + 1e-5).all()
    rgb = g.colors.double().numpy()
    colour_tol = (chunk_span(rgb) if chunk_colours else 1.0) * 0.5 / 255 + 1e-6
    if not chunk_colours:  # without chunk ranges a colour is one byte of [0, 1]
        rgb = np.clip(rgb, 0, 1)
    assert (np.abs(out.colors.double().numpy() - rgb) <= colour_tol).all()
    assert (out.opacities.double() - g.opacities.double()).abs().max() <= 0.5 / 255 + 1e-6
    # each stored component within half a step of (√2 / 1023); the largest, rebuilt from them, within 3 of
    # those (it is ≥ 1/2); √12 half-steps in all, and normalising at most doubles that
    h = math.sqrt(2) * 0.5 / 1023
    assert_same_rotations(out.quats, g.quats, 2 * math.sqrt(12) * h)
    if sh_degree == 0:
        assert out.sh_rest is None
    else:
        inside = g.sh_rest.abs() < 4 - 1 / 32  # outside [−4, 4] a coefficient is clamped to the ends
        err = (out.sh_rest - g.sh_rest).abs()
        assert err[inside].max() <= 1 / 64 + 1e-6  # half of a byte's 8/256 bucket
        assert (out.sh_rest.abs() <= 4).all()


def compressed_header(chunks: int, vertices: int, sh: tuple[int, int] | None = None, colours: bool = True) -> bytes:
    names = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z"]
    names += ["min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
    names += ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"] if colours else []
    lines = ["ply", "format binary_little_endian 1.0", f"element chunk {chunks}"]
    lines += [f"property float {n}" for n in names] + [f"element vertex {vertices}"]
    lines += [f"property uint packed_{n}" for n in ("position", "rotation", "scale", "color")]
    if sh is not None:
        lines += [f"element sh {sh[0]}"] + [f"property uchar f_rest_{i}" for i in range(sh[1])]
    return ("\n".join([*lines, "end_header"]) + "\n").encode()


def test_compressed_ply_words_decode_to_the_layouts_exact_values(tmp_path):
    chunk = [-1, 0, 2, 3, 10, 2, -2, -4, 0, 0, 0, 0, 0.2, 0.0, 0.0, 0.6, 1.0, 0.5]  # z range empty: z is min_z
    position = (2047 << 21) | (0 << 11) | 1000  # x at its max, y at its min
    scale = (0 << 21) | (1023 << 11) | 2047  # log-scales min_x, max_y, max_z
    color = (255 << 24) | (0 << 16) | (51 << 8) | 204  # r max, g min, b at 51/255; opacity 204/255
    rotation = (3 << 30) | (1023 << 20) | (0 << 10) | 1023  # z largest; w, x, y = +1/√2, −1/√2, +1/√2
    sh = bytes([0, 255, 128, 64, 1, 254, 127, 10, 200])  # one splat, degree 1
    data = compressed_header(1, 1, sh=(1, 9))
    data += struct.pack("<18f", *chunk) + struct.pack("<4I", position, rotation, scale, color) + sh
    path = tmp_path / "one.ply"
    path.write_bytes(data)
    g = read_ply(path)
    np.testing.assert_allclose(g.means[0].numpy(), [3, 0, 2], atol=1e-6)
    np.testing.assert_allclose(np.log(g.scales[0].numpy()), [-2, 0, 0], atol=1e-6)
    np.testing.assert_allclose(g.colors[0].numpy(), [0.6, 0.0, 0.1], atol=1e-6)
    assert g.opacities[0].item() == pytest.approx(0.8)
    # three components of magnitude 1/√2 leave nothing for the largest (clamped to 0), then normalised
    np.testing.assert_allclose(g.quats[0].numpy(), np.array([1, -1, 1, 0]) / math.sqrt(3), atol=1e-6)
    # bytes are the middles of their buckets, 0 and 255 the ends of [−4, 4]; channel-major on disk
    values = [((b + 0.5) / 256 - 0.5) * 8 for b in sh]
    values[0], values[1] = -4.0, 4.0
    np.testing.assert_allclose(g.sh_rest[0].numpy(), np.array(values).reshape(3, 3).T, atol=1e-6)
    assert g.sh_rest[0, 2, 0].item() == pytest.approx(0.015625)  # byte 128: coefficient 3 of red


@pytest.mark.parametrize("which", range(4))
def test_the_largest_component_goes_where_the_top_bits_say(tmp_path, which):
    rest = [600, 512, 450]  # the three smaller components, in wxyz order without the largest
    word = (which << 30) | (rest[0] << 20) | (rest[1] << 10) | rest[2]
    data = (
        compressed_header(1, 1)
        + struct.pack("<18f", *([0.0] * 3 + [1.0] * 3 + [0.0] * 12))
        + struct.pack("<4I", 0, word, 0, 0xFFFFFFFF)
    )
    (tmp_path / "q.ply").write_bytes(data)
    q = read_ply(tmp_path / "q.ply").quats[0].double().numpy()
    small = [(u / 1023 - 0.5) * math.sqrt(2) for u in rest]
    expected = small[:which] + [math.sqrt(1 - sum(v * v for v in small))] + small[which:]
    np.testing.assert_allclose(q, np.array(expected) / np.linalg.norm(expected), atol=1e-6)
    assert np.argmax(np.abs(q)) == which  # wxyz: 0 is w, as rot_0 of a 3DGS PLY


def test_reads_what_gsplats_compressed_writer_writes(tmp_path):
    gsplat = pytest.importorskip("gsplat")
    from scipy.spatial import cKDTree

    g = known_gaussians(n=700, sh_degree=1, seed=4).with_(opacities=torch.linspace(0.05, 0.95, 700))
    data = gsplat.export_splats(
        means=g.means, scales=torch.log(g.scales), quats=g.quats, opacities=torch.logit(g.opacities),
        sh0=((g.colors - 0.5) / SH_C0).unsqueeze(1), shN=g.sh_rest, format="ply_compressed",
    )  # fmt: skip
    (tmp_path / "gs.ply").write_bytes(data)
    out = read_ply(tmp_path / "gs.ply")
    assert len(out) == len(g)
    dist, match = cKDTree(g.means.numpy()).query(out.means.numpy())  # gsplat sorts the splats
    assert len(set(match.tolist())) == len(g) and dist.max() < 0.01
    truth = g.subset(torch.from_numpy(match))
    torch.testing.assert_close(out.scales, truth.scales, rtol=0.01, atol=0)
    assert (out.colors - truth.colors).abs().max() <= 0.5 / 255 * 1.2 + 1e-6  # one chunk's colour range ≤ 1.2
    assert (out.opacities - truth.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert_same_rotations(out.quats, truth.quats, 2 * math.sqrt(12) * math.sqrt(2) * 0.5 / 1023)
    inside = truth.sh_rest.abs() < 4 - 1 / 32
    assert (out.sh_rest - truth.sh_rest).abs()[inside].max() <= 1 / 64 + 1e-6


def test_an_sh_element_without_coefficients_is_no_sh(tmp_path):
    g = known_gaussians(n=10)
    data = compressed_ply_bytes(g, sh=False).replace(b"end_header", b"element sh 10\nend_header", 1)
    (tmp_path / "g.ply").write_bytes(data)  # gsplat writes this for SH degree 0
    assert read_ply(tmp_path / "g.ply").sh_rest is None


def _compressed(tmp_path, n: int = 300, sh_degree: int = 1) -> tuple[bytes, int]:
    data = compressed_ply_bytes(known_gaussians(n=n, sh_degree=sh_degree))
    return data, data.index(b"end_header\n") + len(b"end_header\n")


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d, h: d[:-7], "truncated"),
        (lambda d, h: d[: h + 40], "truncated"),
        (lambda d, h: d.replace(b"element chunk 2", b"element chunk 1", 1), "1 chunks for 300"),
        (lambda d, h: d.replace(b"element chunk 2", b"element chunk 3", 1), "3 chunks for 300"),
        (lambda d, h: d.replace(b"element chunk 2", b"element chunk 9999999999999999", 1), "chunks for 300"),
        (
            lambda d, h: (
                d.replace(b"element chunk 2", b"element chunk 3906250000", 1)
                .replace(b"element vertex 300", b"element vertex 1000000000000", 1)
                .replace(b"element sh 300", b"element sh 1000000000000", 1)
            ),
            "truncated",
        ),  # a consistent header declaring 16 TB: refused from the file's size, nothing allocated
        (lambda d, h: d.replace(b"element sh 300", b"element sh 299", 1), "299 'sh' rows"),
        (lambda d, h: d.replace(b"property uchar f_rest_8\n", b"", 1), "8 properties"),
        (lambda d, h: d.replace(b"property uint packed_scale", b"property float packed_scale", 1), "packed_scale"),
        (lambda d, h: d.replace(b"property uint packed_color\n", b"", 1), "lack packed_color"),
        (lambda d, h: d.replace(b"property float max_scale_z\n", b"", 1), "lack max_scale_z"),
        (lambda d, h: d.replace(b"property float max_b\n", b"", 1), "lack max_b"),
        (
            lambda d, h: d.replace(b"element vertex 300", b"element vertex 0", 1).replace(b"chunk 2", b"chunk 0"),
            "no Gaussians",
        ),
        (lambda d, h: d.replace(b"binary_little_endian", b"ascii", 1), "ASCII"),
        (lambda d, h: d[:h] + struct.pack("<f", float("nan")) + d[h + 4 :], "non-finite"),
        (lambda d, h: d[:h] + struct.pack("<f", float("inf")) + d[h + 4 :], "non-finite"),
        (lambda d, h: d[: h + 40] + struct.pack("<f", 500.0) + d[h + 44 :], "overflow"),  # chunk 0's max_scale_y
    ],
)
def test_damaged_or_hostile_compressed_plys_are_one_clear_error(tmp_path, edit, message):
    data, header_end = _compressed(tmp_path)
    path = tmp_path / "bad.compressed.ply"
    path.write_bytes(edit(data, header_end))
    with pytest.raises(InputError, match=message) as info:
        read_ply(path)
    assert info.value.hint


# -- .splat -------------------------------------------------------------------------------------------------


def test_splat_file_decodes_within_its_bytes(tmp_path):
    g = known_gaussians(n=300, seed=2).with_(colors=torch.rand(300, 3, generator=torch.Generator().manual_seed(5)))
    path = tmp_path / "scene.splat"
    path.write_bytes(splat_file_bytes(g))
    assert path.stat().st_size == 32 * len(g)
    out = read_gaussians(path)
    assert len(out) == len(g) and out.sh_rest is None
    torch.testing.assert_close(out.means, g.means, rtol=0, atol=0)  # float32 as written
    torch.testing.assert_close(out.scales, g.scales, rtol=0, atol=0)  # linear, as written
    # bytes truncate: the decoded colour is at most one byte below the truth
    for decoded, truth in ((out.colors, g.colors), (out.opacities, g.opacities)):
        diff = (truth - decoded).double()
        assert diff.min() >= -1e-6 and diff.max() < 1 / 255 + 1e-6
    # each stored component within 1/128 (truncated, or clamped at +1); four of them, normalising doubles it
    assert_same_rotations(out.quats, g.quats, 2 * 2 / 128)


def test_splat_record_decodes_to_the_layouts_exact_values(tmp_path):
    record = struct.pack("<3f3f4B4B", 1.5, -2.0, 3.25, 0.01, 0.02, 0.0, 255, 0, 51, 204, 128, 255, 128, 0)
    identity = struct.pack("<3f3f4B4B", 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 128, 128, 128, 128)  # no rotation stored
    (tmp_path / "two.splat").write_bytes(record + identity)
    g = read_splat(tmp_path / "two.splat")
    np.testing.assert_array_equal(g.means[0].numpy(), np.float32([1.5, -2.0, 3.25]))
    np.testing.assert_array_equal(g.scales[0].numpy(), np.float32([0.01, 0.02, 0.0]))  # a flat splat is kept
    np.testing.assert_allclose(g.colors[0].numpy(), [1.0, 0.0, 0.2], atol=1e-7)  # display values, DC = (rgb − ½)/C0
    assert g.opacities[0].item() == pytest.approx(0.8) and g.opacities[1].item() == 0.0
    # wxyz bytes 128, 255, 128, 0 → (0, 127/128, 0, −1) before normalising
    np.testing.assert_allclose(
        g.quats[0].numpy(), np.array([0, 127 / 128, 0, -1]) / math.hypot(127 / 128, 1), atol=1e-6
    )
    np.testing.assert_array_equal(g.quats[1].numpy(), [1, 0, 0, 0])


def test_reads_what_gsplats_splat_writer_writes(tmp_path):
    gsplat = pytest.importorskip("gsplat")
    from scipy.spatial import cKDTree

    g = known_gaussians(n=200, seed=6).with_(colors=torch.rand(200, 3, generator=torch.Generator().manual_seed(1)))
    data = gsplat.export_splats(
        means=g.means, scales=torch.log(g.scales), quats=g.quats,
        opacities=torch.logit(g.opacities.clamp(1e-4, 1 - 1e-4)),
        sh0=((g.colors - 0.5) / SH_C0).unsqueeze(1), shN=torch.zeros(200, 0, 3), format="splat",
    )  # fmt: skip
    (tmp_path / "gs.splat").write_bytes(data)
    out = read_splat(tmp_path / "gs.splat")
    dist, match = cKDTree(g.means.numpy()).query(out.means.numpy())
    assert dist.max() == 0 and len(set(match.tolist())) == len(g)
    truth = g.subset(torch.from_numpy(match))
    torch.testing.assert_close(out.scales, truth.scales, rtol=1e-6, atol=0)
    assert (truth.colors - out.colors).abs().max() < 1 / 255 + 1e-6
    assert_same_rotations(out.quats, truth.quats, 2 * 2 / 128)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\0" * 33, "not a whole number of 32-byte"),
        (b"", "no Gaussians"),
        (struct.pack("<3f3f4B4B", float("nan"), 0, 0, 1, 1, 1, 0, 0, 0, 0, 128, 128, 128, 128), "non-finite"),
        (struct.pack("<3f3f4B4B", 0, 0, 0, 1, float("inf"), 1, 0, 0, 0, 0, 128, 128, 128, 128), "non-finite"),
        (struct.pack("<3f3f4B4B", 0, 0, 0, 1, -1, 1, 0, 0, 0, 0, 128, 128, 128, 128), "negative"),
    ],
)
def test_damaged_splat_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.splat"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_splat(path)
    assert info.value.hint


# -- .spz ---------------------------------------------------------------------------------------------------


def spz_gaussians(n: int = 400, sh_degree: int = 3, seed: int = 7, min_w: float = 0.0) -> Gaussians:
    """Splats inside what the format's bytes hold: log-scales in [−10, 5.9], SH within [−1, 1), colours
    within 0.5 ± 0.94; with `min_w`, quaternions whose |w| is at least that (versions 1–2 rebuild w)."""
    g = known_gaussians(n=n, sh_degree=0, seed=seed)
    q = g.quats
    if min_w:
        w = q[:, :1].abs().clamp_min(min_w)
        q = torch.cat([w, torch.nn.functional.normalize(q[:, 1:], dim=-1) * (1 - w * w).sqrt()], dim=-1)
    gen = torch.Generator().manual_seed(seed + 1)
    sh = None if sh_degree == 0 else (torch.rand(n, (sh_degree + 1) ** 2 - 1, 3, generator=gen) * 1.9 - 0.95)
    return g.with_(quats=q, sh_rest=sh)


@pytest.mark.parametrize("version,sh_degree", [(4, 3), (4, 0), (4, 1), (3, 3), (3, 0), (2, 1), (2, 2), (1, 3)])
def test_spz_decodes_within_its_quantization(tmp_path, version, sh_degree):
    g = spz_gaussians(sh_degree=sh_degree, min_w=0.0 if version >= 3 else 0.5)
    path = tmp_path / "scene.spz"
    path.write_bytes(spz_bytes(g, version))
    out = read_gaussians(path)
    assert len(out) == len(g) and out.means.dtype == torch.float32
    means = g.means.double()
    if version == 1:  # float16: half a unit in the last place (11 significant bits)
        bound = means.abs() * 2.0**-11 + 1e-7
    else:  # 24-bit integers of 1/4096
        bound = torch.full_like(means, 0.5 / 4096 + 1e-6)
    assert ((out.means.double() - means).abs() <= bound).all()
    log_err = (out.scales.double().log() - g.scales.double().log()).abs().max().item()
    assert log_err <= 0.5 / 16 + 1e-5
    assert (out.opacities.double() - g.opacities.double()).abs().max() <= 0.5 / 255 + 1e-6
    # a colour byte is 1 / (0.15 · 255) of the DC coefficient, SH_C0 of that in colour
    assert (out.colors.double() - g.colors.double()).abs().max() <= SH_C0 * 0.5 / (0.15 * 255) + 1e-6
    if version >= 3:  # each stored component within half a step of √½ / 511, as for the compressed PLY
        assert_same_rotations(out.quats, g.quats, 2 * math.sqrt(12) * math.sqrt(0.5) * 0.5 / 511)
    else:  # x, y, z within δ = 0.5 / 127.5; w ≥ 1/2 rebuilt from them within 7δ (|Δw| ≤ Σ|Δx²| / w)
        assert_same_rotations(out.quats, g.quats, 8 * 0.5 / 127.5)
    if sh_degree == 0:
        assert out.sh_rest is None
    else:
        assert out.sh_degree == sh_degree
        assert (out.sh_rest - g.sh_rest).abs().max() <= 0.5 / 128 + 1e-6


def test_spz_sh_rounded_to_fewer_bits_reads_back_within_their_step(tmp_path):
    g = spz_gaussians(n=50, sh_degree=2)
    (tmp_path / "s.spz").write_bytes(spz_bytes(g, 3, sh_bits=4))  # the reference writer's degree 2–3 default
    out = read_spz(tmp_path / "s.spz")
    # rounded to 1/128, then to the nearest 16/128 bucket: half of each step
    assert (out.sh_rest - g.sh_rest).abs().max() <= 8.5 / 128 + 1e-6


def _raw_spz(version: int, n: int, body: bytes, degree: int = 0, bits: int = 12, flags: int = 0) -> bytes:
    return gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, version, n, degree, bits, flags, 0) + body)


def _raw_zstd_spz(n: int, blocks: list[bytes], degree: int = 0) -> bytes:
    """Version 4 from hand-made blocks (empty ones have no stream)."""
    zstd = zstd_module()
    return ngsp_bytes(n, degree, [(zstd.compress(b), len(b)) for b in blocks if b])


@pytest.mark.parametrize("version", [3, 4])
def test_spz_axes_land_where_a_3dgs_ply_has_them(tmp_path, version):
    """Stored right-up-back: a splat at +x, +y, +z of the file is at +x, −y, −z of a 3DGS PLY (Y down); the
    same hand-made blocks in one gzip stream (version 3) and in zstd streams (version 4)."""
    positions = b"".join(struct.pack("<i", v)[:3] for v in (4096, 0, 0, 0, 8192, 0, 0, 0, -2048))
    alphas, colours, scales = bytes([255, 128, 0]), bytes([255, 0, 128] * 3), bytes([160, 144, 0] * 3)
    # splat 0: x = 0.6, w = 0.8 (largest w, index 3): fields x, y, z; x in bits 20–29
    word0 = (3 << 30) | (round(0.6 / math.sqrt(0.5) * 511) << 20)
    # splat 1: z = −0.6, y = 0.8 largest (index 1): fields x, z, w, z in bits 10–19 with its sign bit
    word1 = (1 << 30) | ((0x200 | round(0.6 / math.sqrt(0.5) * 511)) << 10)
    word2 = (3 << 30) | (511 << 20) | (511 << 10) | 511  # damaged: the three square to 1.5; w is 0, not NaN
    rotations = struct.pack("<3I", word0, word1, word2)
    sh = bytes([192] * 45 * 3)  # every coefficient 0.5 in the file's frame
    blocks = [positions, alphas, colours, scales, rotations, sh]
    data = _raw_spz(3, 3, b"".join(blocks), degree=3) if version == 3 else _raw_zstd_spz(3, blocks, degree=3)
    (tmp_path / "axes.spz").write_bytes(data)
    g = read_spz(tmp_path / "axes.spz")
    np.testing.assert_array_equal(g.means.numpy(), [[1, 0, 0], [0, -2, 0], [0, 0, 0.5]])
    np.testing.assert_allclose(g.opacities.numpy(), [1.0, 128 / 255, 0.0], atol=1e-7)
    f_dc = (np.array([255, 0, 128]) / 255 - 0.5) / 0.15
    np.testing.assert_allclose(g.colors[0].numpy(), 0.5 + SH_C0 * f_dc, atol=1e-6)
    np.testing.assert_allclose(g.scales[0].numpy(), np.exp([0.0, -1.0, -10.0]), rtol=1e-6)
    m = round(0.6 / math.sqrt(0.5) * 511) * math.sqrt(0.5) / 511
    np.testing.assert_allclose(g.quats[0].numpy(), [math.sqrt(1 - m * m), m, 0, 0], atol=1e-6)  # x kept
    np.testing.assert_allclose(g.quats[1].numpy(), [0, 0, -math.sqrt(1 - m * m), m], atol=1e-6)  # y, z negated
    assert torch.isfinite(g.quats[2]).all()
    v = math.sqrt(0.5)
    np.testing.assert_allclose(g.quats[2].numpy(), np.array([0, v, -v, -v]) / math.sqrt(1.5), atol=1e-6)
    # the reference library's sign table for RUB → RDF (x kept, y and z flipped), degrees 1–3
    signs = [-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1]
    np.testing.assert_allclose(g.sh_rest[0].numpy(), 0.5 * np.array(signs)[:, None].repeat(3, 1), atol=1e-7)


def test_spz_version_2_rotation_rebuilds_w(tmp_path):
    positions, rest = bytes(9), bytes([255]) + bytes([128] * 3) + bytes([160] * 3)
    rotation = bytes([255, 128, 0])  # x = 1, y = 1/255, z = −1: |xyz| > 1, so w = 0
    (tmp_path / "v2.spz").write_bytes(_raw_spz(2, 1, positions + rest + rotation))
    q = read_spz(tmp_path / "v2.spz").quats[0].double().numpy()
    xyz = np.array([1.0, 0.5 / 127.5, -1.0])
    np.testing.assert_allclose(q, np.array([0, xyz[0], -xyz[1], -xyz[2]]) / np.linalg.norm(xyz), atol=1e-6)


def _extension(kind: int, payload: bytes) -> bytes:
    return struct.pack("<II", kind, len(payload)) + payload


@pytest.mark.parametrize(
    "records,accepted",
    [
        (_extension(0xADBE0003, struct.pack("<I", 4)), True),  # RUB, the default
        (_extension(0xADBE0003, struct.pack("<I", 0)), True),  # unspecified: RUB
        (_extension(0x12340001, bytes(24)) + _extension(0xADBE0002, bytes(12)), True),  # unknown and camera: skipped
        (_extension(0x12340001, bytes(3)) + _extension(0xADBE0003, struct.pack("<I", 6)), False),  # RDF
        (_extension(0xADBE0003, struct.pack("<I", 7)), False),  # LUF (glTF's)
    ],
)
@pytest.mark.parametrize("version", [3, 4])  # after the splats in the gzip stream; before the table in version 4
def test_spz_extensions(tmp_path, records, accepted, version):
    g = spz_gaussians(n=20, sh_degree=1)
    path = tmp_path / "ext.spz"
    path.write_bytes(spz_bytes(g, version, flags=0x2, extensions=records))
    if accepted:
        torch.testing.assert_close(read_spz(path).means, read_spz_plain(tmp_path, g).means)
    else:
        with pytest.raises(InputError, match="frame") as info:
            read_spz(path)
        assert "splat-transform" in info.value.hint


def read_spz_plain(tmp_path, g: Gaussians) -> Gaussians:
    (tmp_path / "plain.spz").write_bytes(spz_bytes(g, 3))
    return read_spz(tmp_path / "plain.spz")


def _with_header(stream: bytes, **fields: int) -> bytes:
    names = ("magic", "version", "n", "degree", "bits", "flags", "reserved")
    values = dict(zip(names, struct.unpack_from("<IIIBBBB", stream), strict=True)) | fields
    return struct.pack("<IIIBBBB", *(values[k] for k in names)) + stream[16:]


def _bomb() -> bytes:
    """300 splats, then 64 MiB of zeros that deflate to about 64 KiB."""
    stream = spz_stream(spz_gaussians(n=300, sh_degree=1))
    zeros = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return zeros.compress(stream) + b"".join(zeros.compress(bytes(1 << 20)) for _ in range(64)) + zeros.flush()


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s, z: gzip.compress(_with_header(s, version=4)), "version 4 in the gzip layout"),
        (lambda s, z: b"ply\n" + bytes(40), "not an .spz file"),
        (lambda s, z: gzip.compress(b"PK" + s[2:]), "not an .spz one"),
        (lambda s, z: gzip.compress(_with_header(s, version=5)), "version 5"),
        (lambda s, z: gzip.compress(_with_header(s, version=0)), "version 0"),
        (lambda s, z: gzip.compress(_with_header(s, n=0)), "no Gaussians"),
        (lambda s, z: gzip.compress(_with_header(s, n=2**31 - 1)), "more than its"),  # 60 GB from a small file
        (lambda s, z: gzip.compress(_with_header(s, n=2**32 - 1)), "2³¹"),
        (lambda s, z: gzip.compress(_with_header(s, n=301)), "truncated: its header declares 301"),
        (lambda s, z: gzip.compress(_with_header(s, degree=5)), "degrees 0–4"),
        (lambda s, z: gzip.compress(_with_header(s, degree=4)), "degree 4"),
        (lambda s, z: gzip.compress(s[:10]), "ends inside its .spz header"),
        (lambda s, z: z[: len(z) // 2], "truncated"),
        (lambda s, z: z[:-4], "gzip stream does not end"),  # the length field of the trailer cut off
        (lambda s, z: z[:-8] + bytes(8), "damaged compressed data"),  # a wrong checksum
        (lambda s, z: _bomb(), "more than 1048576 bytes after the splats"),
        (lambda s, z: gzip.compress(_with_header(s, n=2_000_000)[:16] + bytes(40_000_000)), "inflates at most"),
        (lambda s, z: b"NGSP" + bytes(2), "ends inside its .spz header"),
    ],
)
def test_damaged_or_hostile_spz_files_are_one_clear_error(tmp_path, edit, message):
    stream = spz_stream(spz_gaussians(n=300, sh_degree=1))
    path = tmp_path / "bad.spz"
    path.write_bytes(edit(stream, gzip.compress(stream)))
    with pytest.raises(InputError, match=re.escape(message)) as info:
        read_spz(path)
    assert info.value.hint


def _v4_with_header(data: bytes, **fields: int) -> bytes:
    names = ("magic", "version", "n", "degree", "bits", "flags", "streams", "toc")
    values = dict(zip(names, struct.unpack_from("<IIIBBBBI", data), strict=True)) | fields
    return struct.pack("<IIIBBBBI", *(values[k] for k in names)) + data[20:]


def _v4_streams(g: Gaussians, edit) -> bytes:
    """A version 4 file of `g` whose positions stream (compressed bytes, listed inflated size) is `edit`ed."""
    zstd = zstd_module()
    blocks = [b for b in spz_blocks(g, 4) if b]
    streams = [(zstd.compress(b), len(b)) for b in blocks]
    streams[0] = edit(blocks[0], *streams[0])
    return ngsp_bytes(len(g), g.sh_degree, streams)


def _zstd_zeros(size: int) -> bytes:
    """One zstd frame of `size` zero bytes, compressed piece by piece (it never holds them all)."""
    zstd = zstd_module()
    compressor = zstd.ZstdCompressor()
    chunk = bytes(1 << 20)
    head = b"".join(compressor.compress(chunk) for _ in range(size // len(chunk)))
    return head + compressor.flush()


V4_SPLATS = spz_gaussians(n=300, sh_degree=1)  # blocks of 2700, 300, 900, 900, 1200 and 2700 bytes


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d[:20], "ends inside its .spz header"),
        (lambda d: _v4_with_header(d, version=5), "version 5 in the zstd layout"),
        (lambda d: _v4_with_header(d, version=3), "version 3 in the zstd layout"),
        (lambda d: _v4_with_header(d, n=0), "no Gaussians"),
        (lambda d: _v4_with_header(d, n=2**31 - 1), "more than its"),  # 60 GB declared in a few kB
        (lambda d: _v4_with_header(d, n=2**32 - 1), "2³¹"),
        (lambda d: _v4_with_header(d, degree=5), "degrees 0–4"),
        (lambda d: _v4_with_header(d, degree=4), "degree 4"),
        (lambda d: _v4_with_header(d, streams=5), "declares 5 compressed streams; its header's SH degree 1 needs 6"),
        (lambda d: _v4_with_header(d, degree=0), "declares 6 compressed streams; its header's SH degree 0 needs 5"),
        (lambda d: _v4_with_header(d, n=301), "lists 2700 bytes of positions; its header's 301 splats need 2709"),
        (lambda d: _v4_with_header(d, toc=16), "table of contents"),
        (lambda d: _v4_with_header(d, toc=len(d) - 50), "table of contents"),
        (lambda d: d[:-10], "truncated: its streams end at byte"),
        (lambda d: d + bytes(7), "holds 7 bytes after its last stream"),
        (lambda d: _v4_streams(V4_SPLATS, lambda b, z, n: (bytes(len(z)), n)), "damaged compressed positions"),
        (lambda d: _v4_streams(V4_SPLATS, lambda b, z, n: (z[:-3], n)), "positions end inside a zstd frame"),
        (lambda d: _v4_streams(V4_SPLATS, lambda b, z, n: (zstd_module().compress(b[:-9]), n)), "inflate to 2691"),
        (lambda d: _v4_streams(V4_SPLATS, lambda b, z, n: (zstd_module().compress(b + b"x"), n)), "more than the 2700"),
        # a bomb: 64 MiB of zeros in about 2 kB where the table lists 2700 bytes
        (lambda d: _v4_streams(V4_SPLATS, lambda b, z, n: (_zstd_zeros(64 << 20), n)), "more than the 2700"),
    ],
)
def test_damaged_or_hostile_zstd_spz_files_are_one_clear_error(tmp_path, edit, message):
    path = tmp_path / "bad.spz"
    path.write_bytes(edit(spz_bytes(V4_SPLATS, 4)))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=re.escape(message)) as info:
            read_spz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.hint
    assert peak < 4 << 20  # nothing inflated or allocated past what the header declares (a few kB here)


def test_spz_zstd_streams_of_several_frames_read_as_one(tmp_path):
    """A stream may hold zstd frames back to back, a skippable frame among them, as the reference decoder
    (ZSTD_decompress) reads them."""
    zstd = zstd_module()
    skippable = struct.pack("<II", 0x184D2A50, 5) + b"notes"  # magic 0x184D2A5?, length, payload
    g = V4_SPLATS
    split = _v4_streams(g, lambda b, z, n: (zstd.compress(b[:1000]) + skippable + zstd.compress(b[1000:]), n))
    (tmp_path / "one.spz").write_bytes(spz_bytes(g, 4))
    (tmp_path / "split.spz").write_bytes(split)
    torch.testing.assert_close(read_spz(tmp_path / "split.spz").means, read_spz(tmp_path / "one.spz").means)


def test_spz_zstd_stream_of_many_tiny_frames_is_refused(tmp_path):
    """Thousands of empty zstd frames (9 bytes each) inflate to nothing, yet each costs the reader a decoder:
    a file of them was read at length (minutes for tens of MB); a stream may hold a few frames, and more
    only in proportion to what it inflates to."""
    zstd = zstd_module()
    empty = zstd.compress(b"")
    many = _v4_streams(V4_SPLATS, lambda b, z, n: (empty * 2000 + z, n))
    (tmp_path / "many.spz").write_bytes(many)
    with pytest.raises(InputError, match="hold more than 8 zstd frames for 2700 bytes") as info:
        read_spz(tmp_path / "many.spz")
    assert info.value.hint


def test_spz_zstd_hands_each_compressed_byte_to_the_decoder_once(tmp_path, monkeypatch):
    """Frames back to back are inflated one slice each; handing the decoder the rest of the stream made it
    copy what follows every frame (time growing with the square of the number of frames)."""
    import a3d_cli.gaussians.spz as spz_module

    zstd = zstd_module()
    fed: list[int] = []

    class CountingDecompressor:
        """The zstd decoder, noting how many bytes each call is handed."""

        def __init__(self) -> None:
            self.inner = zstd.ZstdDecompressor()

        def decompress(self, data, max_length=-1):  # noqa: ANN001, ANN202
            fed.append(len(data))
            return self.inner.decompress(data, max_length)

        def __getattr__(self, name: str):  # noqa: ANN204 - eof, unused_data
            return getattr(self.inner, name)

    class Zstd:
        ZstdDecompressor = CountingDecompressor
        ZstdError = zstd.ZstdError
        get_frame_size = staticmethod(zstd.get_frame_size)

    g = V4_SPLATS
    frames = [zstd.compress(b"") for _ in range(5)]
    split = _v4_streams(g, lambda b, z, n: (b"".join(frames) + z, n))
    (tmp_path / "split.spz").write_bytes(split)
    monkeypatch.setattr(spz_module, "_zstd_module", lambda path: Zstd)
    read_spz(tmp_path / "split.spz")
    streams = [zstd.compress(b) for b in spz_blocks(g, 4) if b]
    assert sum(fed) == len(b"".join(frames)) + sum(len(z) for z in streams)


def test_spz_zstd_without_a_decoder_names_the_package(tmp_path, monkeypatch):
    (tmp_path / "s.spz").write_bytes(spz_bytes(V4_SPLATS, 4))
    for name in ("compression.zstd", "backports.zstd"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    with pytest.raises(InputError, match="no zstd decoder") as info:
        read_spz(tmp_path / "s.spz")
    assert "pip install backports.zstd" in info.value.hint


def test_gzip_spz_does_not_import_zstd(tmp_path):
    """The zstd module is imported for version 4 only: reading any other file never pays for it."""
    path = tmp_path / "s.spz"
    path.write_bytes(spz_bytes(spz_gaussians(n=10, sh_degree=0), 3))
    code = (
        "import sys; from a3d_cli.gaussians.formats import read_gaussians; read_gaussians(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.endswith('zstd')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_spz_version_1_non_finite_positions_are_refused(tmp_path):
    g = spz_gaussians(n=5, sh_degree=0)
    stream = bytearray(spz_stream(g, 1))
    stream[16:18] = struct.pack("<e", float("inf"))
    (tmp_path / "inf.spz").write_bytes(gzip.compress(bytes(stream)))
    with pytest.raises(InputError, match="non-finite"):
        read_spz(tmp_path / "inf.spz")
