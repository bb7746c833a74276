"""SuperSplat's compressed PLY and the `.splat` file: decoded to the Gaussians they encode, within the
quantization each layout has; hand-made words decode to the layout's exact values; gsplat's writers of both
are read; damaged and hostile files are one clear `InputError`."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch
from helpers import compressed_ply_bytes, splat_file_bytes

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import SH_C0, Gaussians
from a3d_cli.gaussians.formats import read_gaussians
from a3d_cli.gaussians.ply import is_gaussian_ply, read_ply
from a3d_cli.gaussians.splat_file import read_splat


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
