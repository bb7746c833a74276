"""The standard 3DGS PLY layout: round trips, agreement with gsplat's writer, tolerant reading, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import SH_C0, Gaussians
from a3d_cli.gaussians.ply import (
    REQUIRED_PROPERTIES,
    gaussians_to_table,
    is_gaussian_ply,
    read_ply,
    read_ply_header,
    write_ply,
)


def random_gaussians(n: int = 64, sh_degree: int = 0, seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=gen)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen),
        quats=q / q.norm(dim=-1, keepdim=True),
        scales=torch.rand(n, 3, generator=gen) * 0.1 + 1e-3,
        opacities=torch.rand(n, generator=gen) * 0.98 + 0.01,
        colors=torch.rand(n, 3, generator=gen),
        sh_rest=None if sh_degree == 0 else torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=gen) * 0.1,
    )


def write_raw_ply(
    path, columns: dict[str, np.ndarray], fmt: str = "binary_little_endian", dtype: str = "float"
) -> None:
    """A PLY with exactly the given vertex properties, in the given order and encoding."""
    n = len(next(iter(columns.values())))
    header = (
        ["ply", f"format {fmt} 1.0", f"element vertex {n}"]
        + [f"property {dtype} {k}" for k in columns]
        + ["end_header"]
    )
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode())
        table = np.stack([np.asarray(v, dtype=np.float64) for v in columns.values()], axis=1)
        if fmt == "ascii":
            f.write("\n".join(" ".join(f"{x:.9g}" for x in row) for row in table).encode() + b"\n")
        else:
            endian = "<" if fmt == "binary_little_endian" else ">"
            f.write(table.astype(endian + ("f4" if dtype == "float" else "f8")).tobytes())


def assert_same(a: Gaussians, b: Gaussians, atol: float = 1e-5) -> None:
    for name in ("means", "scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=1e-5, msg=name)
    # q and -q are the same rotation; the file keeps the sign, so compare directly
    torch.testing.assert_close(a.quats, b.quats, atol=atol, rtol=1e-5)
    assert (a.sh_rest is None) == (b.sh_rest is None)
    if a.sh_rest is not None:
        torch.testing.assert_close(a.sh_rest, b.sh_rest, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_round_trip(tmp_path, sh_degree):
    g = random_gaussians(sh_degree=sh_degree)
    write_ply(tmp_path / "g.ply", g)
    assert_same(g, read_ply(tmp_path / "g.ply"))


def test_layout_is_the_standard_one(tmp_path):
    g = random_gaussians(n=5, sh_degree=1)
    write_ply(tmp_path / "g.ply", g)
    header = read_ply_header(tmp_path / "g.ply")
    assert header.format == "binary_little_endian"
    (vertex,) = header.elements
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert list(vertex.property_names) == expected
    assert all(t == "f4" for _, t in vertex.properties) and vertex.count == 5
    # stored activations: logit opacity, log scale, SH DC, channel-major f_rest
    table = gaussians_to_table(g)
    np.testing.assert_allclose(table["opacity"], torch.logit(g.opacities).numpy(), rtol=1e-4)
    np.testing.assert_allclose(table["scale_1"], np.log(g.scales[:, 1].numpy()), rtol=1e-5)
    np.testing.assert_allclose(table["f_dc_2"], ((g.colors[:, 2] - 0.5) / SH_C0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(table["f_rest_4"], g.sh_rest[:, 1, 1].numpy(), rtol=1e-6)  # channel 1, coeff 2
    assert (tmp_path / "g.ply").stat().st_size == len(table) * 4 * len(expected) + header.data_offset


def test_header_reads_by_position_as_the_original_viewer_reads_it(tmp_path):
    # SIBR's loader takes the splat count from the third header line ("element vertex N") by position.
    write_ply(tmp_path / "g.ply", random_gaussians(n=7))
    lines = (tmp_path / "g.ply").read_bytes().split(b"\n", 3)[:3]
    assert lines == [b"ply", b"format binary_little_endian 1.0", b"element vertex 7"]


def gsplat_export(g, fmt: str) -> bytes:
    """`g` as gsplat's `export_splats` writes it (its parameters are the logged, SH-encoded ones)."""
    gsplat = pytest.importorskip("gsplat")
    return gsplat.export_splats(
        means=g.means,
        scales=torch.log(g.scales),
        quats=g.quats,
        opacities=torch.logit(g.opacities),
        sh0=((g.colors - 0.5) / SH_C0).unsqueeze(1),
        shN=g.sh_rest if g.sh_rest is not None else torch.zeros(len(g), 0, 3),
        format=fmt,
    )


def test_reads_what_gsplat_writes(tmp_path):
    g = random_gaussians(n=32, sh_degree=2, seed=3)
    (tmp_path / "gs.ply").write_bytes(gsplat_export(g, "ply"))
    assert is_gaussian_ply(tmp_path / "gs.ply")
    assert_same(g, read_ply(tmp_path / "gs.ply"), atol=1e-4)


@pytest.mark.parametrize(
    "fmt,dtype",
    [("binary_big_endian", "float"), ("ascii", "float"), ("binary_little_endian", "double"), ("binary_little_endian", "float")],
)
def test_any_encoding_order_and_extra_properties(tmp_path, fmt, dtype):
    g = random_gaussians(n=7, sh_degree=3, seed=1)  # f_rest_* shuffled too
    table = gaussians_to_table(g)
    names = [n for n in table.dtype.names if n not in ("nx", "ny", "nz")]
    rng = np.random.default_rng(0)
    order = list(rng.permutation(names))
    columns = {n: table[n] for n in order}
    columns["red"] = np.arange(7)  # extra properties are ignored
    write_raw_ply(tmp_path / "g.ply", columns, fmt=fmt, dtype=dtype)
    assert_same(g, read_ply(tmp_path / "g.ply"), atol=1e-5)


def test_missing_properties_are_named(tmp_path):
    table = gaussians_to_table(random_gaussians(n=4))
    columns = {n: table[n] for n in table.dtype.names if n not in ("scale_2", "rot_3")}
    write_raw_ply(tmp_path / "g.ply", columns)
    assert is_gaussian_ply(tmp_path / "g.ply")
    with pytest.raises(InputError) as info:
        read_ply(tmp_path / "g.ply")
    assert "scale_2" in info.value.message and "rot_3" in info.value.message and "x," not in info.value.message
    assert info.value.exit_code == 2 and info.value.hint


def test_point_cloud_is_not_gaussian(tmp_path):
    write_raw_ply(tmp_path / "pc.ply", {"x": [0, 1], "y": [0, 1], "z": [0, 1]})
    assert not is_gaussian_ply(tmp_path / "pc.ply")
    with pytest.raises(InputError, match="lack"):
        read_ply(tmp_path / "pc.ply")


def test_bad_sh_count_nan_truncation_and_garbage(tmp_path):
    table = gaussians_to_table(random_gaussians(n=4, sh_degree=1))
    columns = {n: table[n] for n in table.dtype.names if n != "f_rest_8"}
    write_raw_ply(tmp_path / "sh.ply", columns)
    with pytest.raises(InputError, match="f_rest"):
        read_ply(tmp_path / "sh.ply")

    columns = {n: np.array(table[n]) for n in table.dtype.names}
    columns["y"][2] = np.nan
    write_raw_ply(tmp_path / "nan.ply", columns)
    with pytest.raises(InputError, match="NaN"):
        read_ply(tmp_path / "nan.ply")

    write_ply(tmp_path / "ok.ply", random_gaussians(n=10))
    data = (tmp_path / "ok.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-50])
    with pytest.raises(InputError, match="truncated"):
        read_ply(tmp_path / "cut.ply")

    (tmp_path / "junk.ply").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(InputError, match="not a PLY"):
        read_ply(tmp_path / "junk.ply")
    with pytest.raises(InputError, match="does not exist"):
        read_ply(tmp_path / "missing.ply")


def test_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "g.ply"
    write_ply(path, random_gaussians(n=3))
    before = path.read_bytes()

    bad = random_gaussians(n=3)
    object.__setattr__(bad, "colors", torch.zeros(2, 3))  # shape no longer matches: table building fails
    with pytest.raises(ValueError):
        write_ply(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.ply"]


def test_required_properties_constant_matches_writer():
    names = set(gaussians_to_table(random_gaussians(n=1)).dtype.names)
    assert set(REQUIRED_PROPERTIES) <= names


def test_spherical_harmonics_above_degree_three_are_refused_by_name(tmp_path):
    """Degree 4 (72 f_rest_*) read as Gaussians that no renderer a3d uses evaluates: prepare failed with exit 1."""
    table = gaussians_to_table(random_gaussians(n=4))
    columns = {n: table[n] for n in table.dtype.names}
    columns.update({f"f_rest_{i}": np.zeros(4) for i in range(72)})
    write_raw_ply(tmp_path / "sh4.ply", columns)
    with pytest.raises(InputError, match="degree 4") as info:
        read_ply(tmp_path / "sh4.ply")
    assert "degree 3 or lower" in (info.value.hint or "")
