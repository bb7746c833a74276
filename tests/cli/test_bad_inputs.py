"""Inputs a user can fix exit 2 with one `error:` line and a `hint:` — never 'a3d failed unexpectedly'.

Covers the cases a fault probe found exiting 1 or accepted silently: damaged video frames and cameras,
hostile PLY headers, overflowing log-scales, 16-bit and tiny frames, zero-size models, damaged weights,
refused pickles, foreign manifests, and outputs that ignored the umask.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    REPO,
    compressed_ply_bytes,
    one_error_with_hint,
    png_declaring,
    reconstruct_app,
    splat_file_bytes,
    spz_bytes,
    spz_stream,
)
from helpers import reconstruct_run_folder as _run_folder
from helpers import video_folder as _video
from typer.testing import CliRunner

from a3d_cli.cli import app
from a3d_cli.errors import CheckpointError, InputError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.io.images import load_png, save_png
from a3d_cli.io.preprocess import prepare_object_image
from a3d_cli.render.cameras import MVVDM_BACKGROUND
from a3d_cli.stages import reconstruct as stage

runner = CliRunner()


def reconstruct(run: Path, video: Path):
    return runner.invoke(reconstruct_app(), ["--device", "cpu", "reconstruct", str(run), "--video", str(video)])


# -- video frames and cameras ---------------------------------------------------------------------------


def test_corrupt_first_frame_exits_2(tmp_path):
    run, video = _run_folder(tmp_path), _video(tmp_path / "video")
    (video / "v0_f00.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    one_error_with_hint(reconstruct(run, video))


def test_frame_with_a_good_header_and_damaged_pixels_exits_2(tmp_path):
    run, video = _run_folder(tmp_path), _video(tmp_path / "video")
    data = (video / "v2_f07.png").read_bytes()
    (video / "v2_f07.png").write_bytes(data[: len(data) // 2])
    one_error_with_hint(reconstruct(run, video))


def test_one_rgba_frame_among_rgb_is_composited(tmp_path):
    video = _video(tmp_path / "video")
    rgba = torch.zeros(16, 16, 4)
    rgba[..., 0] = 1.0
    rgba[:8, :, 3] = 1.0  # top half opaque red, bottom half transparent
    save_png(video / "v1_f03.png", rgba)
    frames = stage.read_video_frames(video)
    assert frames.alpha is None  # not every frame has alpha
    torch.testing.assert_close(frames.rgb[1, 3, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(frames.rgb[1, 3, 15, 0], torch.full((3,), MVVDM_BACKGROUND), atol=1 / 255, rtol=0)


@pytest.mark.parametrize("bad", ["NaN", "Infinity"])
def test_non_finite_video_cameras_exit_2(tmp_path, bad):
    run, video = _run_folder(tmp_path), _video(tmp_path / "video")
    cams = (run / "static" / "views" / "cameras.json").read_text()
    data = json.loads(cams)
    data["cameras"][2]["c2w"][0][3] = float(bad.replace("Infinity", "inf"))
    (video / "cameras.json").write_text(json.dumps(data))
    result = reconstruct(run, video)
    one_error_with_hint(result)
    assert "cameras" in result.stderr and "NaN or infinite" in result.stderr


def test_one_pixel_frames_are_refused(tmp_path):
    run, video = _run_folder(tmp_path), _video(tmp_path / "video", size=1)
    result = reconstruct(run, video)
    one_error_with_hint(result)
    assert "1×1" in result.stderr


def test_sixteen_bit_png_frames_are_read_not_clipped(tmp_path):
    from PIL import Image

    grey = (np.arange(16 * 16).reshape(16, 16) * 250).astype(np.uint16)  # up to 63750 of 65535
    Image.fromarray(grey).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")  # really a 16-bit file
    img = load_png(tmp_path / "deep.png")
    assert img.shape == (16, 16, 3)
    torch.testing.assert_close(img[..., 0], torch.from_numpy(grey / 65535.0).float())
    assert float(img.max()) < 0.98  # not clipped to white
    assert load_png(tmp_path / "deep.png", mode="RGBA")[..., 3].min() == 1.0


def test_float_greyscale_images_are_read_as_viewers_show_them(tmp_path):
    """A 32-bit float TIFF stores 0 = black, 1 = white; PIL's conversion reads it as 0-255, so it was all black."""
    from PIL import Image

    grey = np.full((40, 30), 1.0, dtype=np.float32)  # white ...
    grey[8:32, 6:20] = 0.25  # ... with a dark grey object
    Image.fromarray(grey, "F").save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"  # really a float file
    img = load_png(tmp_path / "float.tif")
    assert img.shape == (40, 30, 3)
    assert float(img[20, 10, 0]) == 0.25 and float(img[39, 29, 0]) == 1.0
    obj = prepare_object_image(tmp_path / "float.tif", size=16)  # was "one plain colour: no object was found"
    assert obj.matte == "uniform" and obj.bbox == (6, 8, 20, 32)
    grey[0, :3] = np.nan, 7.0, -3.0  # out of range: black, white, black
    Image.fromarray(grey, "F").save(tmp_path / "odd.tif")
    assert load_png(tmp_path / "odd.tif")[0, :3, 0].tolist() == [0.0, 1.0, 0.0]


def test_large_frames_are_reduced_one_at_a_time_on_read(tmp_path, monkeypatch):
    import a3d_cli.io.images as images

    video = _video(tmp_path / "video", size=64)
    decoded: list[tuple[int, ...]] = []
    real = images.load_png
    monkeypatch.setattr(images, "load_png", lambda p, mode=None: decoded.append(1) or real(p, mode))
    frames = stage.read_video_frames(video, max_size=16)
    assert frames.rgb.shape == (4, 16, 16, 16, 3) and len(decoded) == 64
    full = real(video / "v3_f09.png")  # [64, 64, 3]
    expected = torch.nn.functional.avg_pool2d(full.permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0)
    torch.testing.assert_close(frames.rgb[3, 9], expected)


# -- PLY files ----------------------------------------------------------------------------------------


def _splats(n: int = 50) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    return Gaussians(
        means=torch.rand(n, 3, generator=g),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        scales=torch.full((n, 3), 0.02),
        opacities=torch.full((n,), 0.8),
        colors=torch.rand(n, 3, generator=g),
    )


def _edit_header(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    end = data.index(b"end_header")
    path.write_bytes(data[:end].replace(old, new, 1) + data[end:])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ((b"element vertex 50", b"element vertex 999999999999999"), "truncated"),
        ((b"element vertex 50", b"element vertex -5"), "declares -5"),
        ((b"property float y\n", b"property float y\nproperty float y\n"), "twice"),
    ],
    ids=["huge-count", "negative-count", "duplicate-property"],
)
def test_hostile_ply_headers_exit_2(tmp_path, edit, message):
    path = tmp_path / "splats.ply"
    write_ply(path, _splats())
    _edit_header(path, *edit)
    with pytest.raises(InputError, match=message):
        read_ply(path)
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32"])
    one_error_with_hint(result)
    assert not (tmp_path / "RUN").exists()


def _compressed_edit(edit: str):  # noqa: ANN202 - bytes → bytes
    """A change to a compressed splat PLY of 300 splats (2 chunks)."""
    return {
        "truncated": lambda d: d[: len(d) - 100],
        "wrong chunk count": lambda d: d.replace(b"element chunk 2", b"element chunk 3", 1),
        "huge chunk count": lambda d: d.replace(b"element chunk 2", b"element chunk 99999999999999999", 1),
        "huge declared count": lambda d: d.replace(b"element chunk 2", b"element chunk 39062500000", 1).replace(
            b"element vertex 300", b"element vertex 10000000000000", 1
        ),
    }[edit]


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("s.compressed.ply", "truncated", "truncated"),
        ("s.compressed.ply", "wrong chunk count", "3 chunks for 300 splats"),
        ("s.compressed.ply", "huge chunk count", "chunks for 300 splats"),
        ("s.compressed.ply", "huge declared count", "truncated"),
        ("s.splat", "truncated", "not a whole number of 32-byte"),
        ("s.splat", "nan", "non-finite"),
        ("s.spz", "truncated", "truncated"),
        ("s.spz", "huge declared count", "more than its"),
        ("s.spz", "zstd truncated", "truncated"),
        ("s.spz", "zstd without a decoder", "no zstd decoder"),
    ],
)
def test_damaged_or_hostile_splat_files_exit_2(tmp_path, monkeypatch, name, edit, message):
    splats = _splats(300)
    path = tmp_path / name
    if name.endswith(".ply"):
        path.write_bytes(_compressed_edit(edit)(compressed_ply_bytes(splats)))
    elif name.endswith(".spz"):
        stream = spz_stream(splats)
        if edit == "huge declared count":  # 2³¹ − 1 splats (43 GB) declared in a file of a few kB
            stream = stream[:8] + struct.pack("<I", 2**31 - 1) + stream[12:]
        data = spz_bytes(splats, 4) if edit.startswith("zstd") else gzip.compress(stream)
        if edit == "zstd without a decoder":
            for module in ("compression.zstd", "backports.zstd"):
                monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
        path.write_bytes(data[: len(data) // 2] if edit.endswith("truncated") else data)
    else:
        data = bytearray(splat_file_bytes(splats))
        if edit == "nan":
            data[32 * 7 + 4 : 32 * 7 + 8] = struct.pack("<f", float("nan"))  # splat 7's y
        path.write_bytes(bytes(data[:-5]) if edit == "truncated" else bytes(data))
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32"])
    one_error_with_hint(result)
    assert message in result.stderr
    assert not (tmp_path / "RUN").exists()


def test_finite_but_huge_log_scales_are_refused_after_activation(tmp_path):
    path = tmp_path / "splats.ply"
    write_ply(path, _splats())
    data = bytearray(path.read_bytes())
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    names = [ln.split()[-1] for ln in data[:header_end].decode().splitlines() if ln.startswith("property")]
    offset = header_end + 4 * names.index("scale_1")  # first splat's scale_1 (all properties float32)
    data[offset : offset + 4] = struct.pack("<f", 1000.0)  # finite, but exp(1000) overflows
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="log-scales up to 1000"):
        read_ply(path)
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32"])
    one_error_with_hint(result)


@pytest.mark.parametrize("kind", ["one-splat", "collapsed-mesh"])
def test_zero_size_models_are_refused(tmp_path, kind):
    if kind == "one-splat":
        path = tmp_path / "one.ply"
        write_ply(path, _splats(1))
    else:
        path = tmp_path / "flat.obj"
        path.write_text("v 1 1 1\nv 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\nf 1 3 4\n")
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32"])
    one_error_with_hint(result)
    assert "zero size" in result.stderr
    assert not (tmp_path / "RUN").exists()


def _gltf_placed_at_scale(path: Path, scale: float) -> Path:
    """A one-triangle .gltf (data URI) whose node scales it by `scale`."""
    import base64

    data = base64.b64encode(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()).decode()
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "scale": [scale] * 3}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "buffers": [{"byteLength": 36, "uri": f"data:application/octet-stream;base64,{data}"}],
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


_TETRA_FACES = "f 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("vertex-at-1e308.obj", lambda p: p.write_text("v 0 0 0\nv 1e308 0 0\nv 0 1 0\nv 0 0 1\n" + _TETRA_FACES)),
        ("diagonal-overflows.obj", lambda p: p.write_text("v 0 0 0\nv 1e300 1e300 1e300\nv 0 1 0\nv 0 0 1\n" + _TETRA_FACES)),
        ("past-float32.obj", lambda p: p.write_text("v 0 0 0\nv 1e39 0 0\nv 0 1 0\nv 0 0 1\n" + _TETRA_FACES)),
        ("node-scale-1e300.gltf", lambda p: _gltf_placed_at_scale(p, 1e300)),
    ],
)
def test_models_too_large_to_normalize_are_refused(tmp_path, name, make):
    """Finite but huge coordinates: the model's size overflowed to infinity, the normalization scale became 0
    and every splat sat at the origin (exit 0, then exit 1 in export). Now refused before normalization."""
    path = tmp_path / name
    make(path)
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32"])
    one_error_with_hint(result)
    assert "too large to normalize" in result.stderr and "sane scale" in result.stderr
    assert "RuntimeWarning" not in result.stderr  # overflows inside the loader are not printed
    assert not (tmp_path / "RUN").exists()


def test_a_large_but_representable_model_is_still_prepared(tmp_path):
    path = tmp_path / "kilometres.obj"
    path.write_text("v 0 0 0\nv 1e30 0 0\nv 0 1e30 0\nv 0 0 1e30\n" + _TETRA_FACES)
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32", "--splat-count", "200"])
    assert result.exit_code == 0, result.stderr
    scale = json.loads((tmp_path / "RUN/source/normalization.json").read_text())["scale"]
    assert 0 < scale < 1e-29


def _coloured_obj(path: Path, red0: str) -> Path:
    """A tetrahedron OBJ with `v x y z r g b` lines, the first red written as `red0`."""
    reds = [red0, "0", "0", "0"]
    corners = ["0 0 0", "1 0 0", "0 1 0", "0 0 1"]
    path.write_text("".join(f"v {c} {r} 0.5 0.5\n" for c, r in zip(corners, reds, strict=True)) + _TETRA_FACES)
    return path


def _coloured_ply(path: Path, red0: float, binary: bool, element: str = "vertex") -> Path:
    """A tetrahedron PLY with float colours on its vertices (or faces), the first red being `red0`."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int32)
    colour = np.full((4, 3), 0.5, np.float32)
    colour[0, 0] = red0
    rgb = "property float red\nproperty float green\nproperty float blue\n"
    header = "ply\nformat {} 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n{}".format(
        "binary_little_endian" if binary else "ascii", rgb if element == "vertex" else ""
    ) + "element face 4\nproperty list uchar int vertex_indices\n{}end_header\n".format(rgb if element == "face" else "")
    v_rows = [np.concatenate([v, c]) if element == "vertex" else v for v, c in zip(vertices, colour, strict=True)]
    if binary:
        body = b"".join(r.astype("<f4").tobytes() for r in v_rows) + b"".join(
            b"\x03" + f.astype("<i4").tobytes() + (c.astype("<f4").tobytes() if element == "face" else b"")
            for f, c in zip(faces, colour, strict=True)
        )
        path.write_bytes(header.encode() + body)
    else:
        lines = [" ".join(str(x) for x in r) for r in v_rows]
        lines += [
            " ".join(["3", *map(str, f), *(map(str, c) if element == "face" else ())])
            for f, c in zip(faces, colour, strict=True)
        ]
        path.write_text(header + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "make", "what"),
    [
        ("nan.obj", lambda p: _coloured_obj(p, "nan"), "vertex"),
        ("overflow.obj", lambda p: _coloured_obj(p, "1e999"), "vertex"),
        ("nan-ascii.ply", lambda p: _coloured_ply(p, float("nan"), binary=False), "vertex"),
        ("inf-binary.ply", lambda p: _coloured_ply(p, float("inf"), binary=True), "vertex"),
        ("nan-face.ply", lambda p: _coloured_ply(p, float("nan"), binary=True, element="face"), "face"),
    ],
)
def test_non_finite_obj_and_ply_colours_are_refused(tmp_path, name, make, what):
    """trimesh casts float colours to 8 bits, NaN to 0: the colour came out black without a word (as glTF's
    COLOR_0 is refused, `tests/security/test_hostile_gltf.py::test_non_finite_vertex_colours_are_refused`)."""
    path = tmp_path / name
    make(path)
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32", "--shade", "off"])
    one_error_with_hint(result)
    assert f"{what} colours that are NaN or infinite" in result.stderr
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize("binary", [False, True])
def test_finite_ply_and_obj_colours_still_load(tmp_path, binary):
    from a3d_cli.mesh.load import load_mesh

    mesh = load_mesh(_coloured_ply(tmp_path / "ok.ply", 1.0, binary=binary))
    assert np.allclose(mesh.vertex_colors[0, :3], [1.0, 0.5, 0.5], atol=1 / 255)
    obj = _coloured_obj(tmp_path / "ok.obj", "1")
    assert np.allclose(load_mesh(obj).vertex_colors[0, :3], [1.0, 0.5, 0.5], atol=1 / 255)


# -- images that declare more pixels than a3d decodes ------------------------------------------------


def test_a_video_frame_declaring_ten_billion_pixels_exits_2(tmp_path):
    """Pillow's DecompressionBombError is no OSError: it was exit 1 from reconstruct's header pass."""
    run, video = _run_folder(tmp_path), _video(tmp_path / "video")
    png_declaring(video / "v1_f03.png", 100_000, 100_000)
    result = reconstruct(run, video)
    one_error_with_hint(result)
    assert "v1_f03.png declares 10,000,000,000 pixels" in " ".join(result.stderr.split())


def test_an_object_image_declaring_ten_billion_pixels_is_refused(tmp_path):
    """What `a3d orbit IMAGE` and `a3d animate IMAGE` read (and `lift` reads each frame with `load_png`)."""
    from a3d_cli.io.preprocess import load_object_rgba

    png_declaring(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(InputError, match=r"bomb.png declares 10,000,000,000 pixels, more pixels than a3d decodes") as info:
        load_object_rgba(tmp_path / "bomb.png")
    assert info.value.exit_code == 2 and "Downscale" in (info.value.hint or "")


def test_an_image_past_the_pixel_limit_where_pillow_only_warns_is_refused(tmp_path, monkeypatch):
    """Between MAX_IMAGE_PIXELS and twice that Pillow only warns and decodes; a3d refuses (limit made small)."""
    from PIL import Image

    save_png(tmp_path / "big.png", torch.rand(64, 64, 3))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4,096 pixels: a warning in Pillow
    with pytest.raises(InputError, match="declares 4,096 pixels"):
        load_png(tmp_path / "big.png")


# -- weights ------------------------------------------------------------------------------------------


def test_malformed_safetensors_as_unet_weights_is_a_checkpoint_error(tmp_path):
    from a3d_cli.models.mvvdm.checkpoint import read_state_file

    bad = tmp_path / "diffusion_pytorch_model.safetensors"
    bad.write_bytes(struct.pack("<Q", 16) + b"{not json at all")
    with pytest.raises(CheckpointError, match="SafetensorError") as info:
        read_state_file(bad)
    assert info.value.exit_code == 2 and "a3d weights fetch" in (info.value.hint or "")


def test_refused_pickle_says_a3d_refuses_code_not_weights_only_false(tmp_path):
    from a3d_cli.models.sv3d.loading import CheckpointReader

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Payload()}, evil)
    with pytest.raises(CheckpointError) as info:
        CheckpointReader(evil)
    assert "a3d refuses pickles that run code" in info.value.message
    assert "weights_only=False" not in info.value.message + (info.value.hint or "")


def test_damaged_pickle_is_not_called_code(tmp_path):
    from a3d_cli.models.mvvdm.checkpoint import read_state_file

    (tmp_path / "cut.ckpt").write_bytes(b"garbage that is no pickle")
    with pytest.raises(CheckpointError) as info:
        read_state_file(tmp_path / "cut.ckpt")
    assert "refuses pickles" not in info.value.message


def test_transformers_unpickling_error_is_a_checkpoint_error(tmp_path, monkeypatch):
    """transformers raises pickle.UnpicklingError for a .bin its safe loader refuses (or cannot parse)."""
    import diffusers
    import transformers

    from a3d_cli.models.mvvdm import components

    error = pickle.UnpicklingError("Weights only load failed. Unsupported global: GLOBAL posix.system")

    def text_encoder(*args, **kwargs):
        raise error

    monkeypatch.setattr(components, "load_mvvdm_unet", lambda *a, **k: (None, None))
    monkeypatch.setattr(diffusers.AutoencoderKL, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(transformers.CLIPTextModel, "from_pretrained", text_encoder)
    args = (tmp_path, tmp_path / "ip.bin", tmp_path / "enc", tmp_path / "mm.ckpt")
    with pytest.raises(CheckpointError, match="a3d refuses pickles that run code"):
        components.load_components(*args)
    error = pickle.UnpicklingError("Weights only load failed. invalid load key, 'g'.")
    with pytest.raises(CheckpointError, match="Could not load an MV-VDM component"):
        components.load_components(*args)


def test_legacy_pt_without_mmap_support_loads_through_the_fallback(tmp_path):
    from a3d_cli.weights.safe_load import load_pickled_weights

    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(3.0)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(RuntimeError, match="mmap"):
        torch.load(path, weights_only=True, mmap=True)  # what the first attempt meets
    torch.testing.assert_close(load_pickled_weights(path)["w"], torch.arange(3.0))
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"w": Payload()}, tmp_path / "evil_legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(pickle.UnpicklingError, match="(?i)global"):  # the fallback is weights_only=True too
        load_pickled_weights(tmp_path / "evil_legacy.pt")


# -- manifests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [["not", "a", "dict"], {"status": "done", "seconds": "slow"}, {"status": 3}, {"outputs": [1, 2]}],
    ids=["list-entry", "string-seconds", "int-status", "int-outputs"],
)
def test_manifest_entry_of_the_wrong_type_exits_2_in_info_and_stages(tmp_path, entry):
    run = tmp_path / "RUN"
    run.mkdir()
    (run / "a3d.json").write_text(json.dumps({"format": 1, "stages": {"prepare": entry}}))
    one_error_with_hint(runner.invoke(app, ["info", str(run)]))
    fox = REPO / "examples" / "assets" / "fox.glb"
    one_error_with_hint(runner.invoke(app, ["prepare", str(fox), "-o", str(run), "--view-size", "32"]))


def _manifest(**entry) -> bytes:
    """A manifest with one finished `prepare` entry, some fields replaced, as JSON bytes."""
    done = {"status": "done", "seconds": 1.0, "peak_memory_bytes": 1024, "outputs": [], "metrics": {}}
    return json.dumps({"format": 1, "stages": {"prepare": {**done, **entry}}}).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"stages": {}, "x": ' + b"[" * 500 + b"]" * 500 + b"}",
        b'{"stages": {"\xff": {}}}',
        b'{"stages": {}, "x": ' + b"9" * 5000 + b"}",
        _manifest().replace(b'"seconds": 1.0', b'"seconds": 1' + b"0" * 400),
        _manifest().replace(b'"peak_memory_bytes": 1024', b'"peak_memory_bytes": 1' + b"0" * 400),
        _manifest(seconds=float("nan")),
        _manifest(peak_memory_bytes=-5),
        _manifest(metrics={"view_coverage": [None, "a", {}], "front": 5}),
        _manifest(metrics={"psnr": {"db": 30}}),
        _manifest(metrics={"loss_end": {"total": 1.0}, "loss_start": [2.0]}),
        _manifest(recipe="2"),
        _manifest(recipe=2.0),
        _manifest(recipe=True),
        _manifest(recipe=None),
        _manifest(recipe=0),
        _manifest(recipe=-3),
        _manifest().replace(b'"seconds": 1.0', b'"recipe": 1' + b"0" * 400 + b', "seconds": 1.0'),
    ],
    ids=["nested-past-the-parser", "nested-500-deep", "not-utf8", "5000-digit-integer", "seconds-10^400",
         "peak-memory-10^400", "seconds-nan", "negative-peak-memory", "coverage-not-numbers", "psnr-an-object",
         "loss-start-a-list", "recipe-a-string", "recipe-a-float", "recipe-true", "recipe-null", "recipe-0",
         "recipe-negative", "recipe-10^400"],  # fmt: skip
)
def test_a_tampered_manifest_exits_2_in_info_and_stages_and_is_left_as_it_was(tmp_path, raw):
    """Whatever a3d.json holds, `a3d info` (which formats its figures) and a stage refuse it with one error,
    never a RecursionError, UnicodeDecodeError, ValueError, OverflowError or TypeError, and never rewrite it."""
    run = tmp_path / "RUN"
    run.mkdir()
    (run / "a3d.json").write_bytes(raw)
    one_error_with_hint(runner.invoke(app, ["info", str(run)]))
    fox = REPO / "examples" / "assets" / "fox.glb"
    one_error_with_hint(runner.invoke(app, ["prepare", str(fox), "-o", str(run), "--view-size", "32"]))
    assert (run / "a3d.json").read_bytes() == raw


# -- outputs honour the umask -------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_umask_mode_not_0600(tmp_path, umask):
    from a3d_cli.stages.base import Runtime, run_stage

    old = os.umask(umask)
    try:

        def body(ctx):
            save_png(ctx.output("views/a.png"), torch.zeros(4, 4, 3))
            write_ply(ctx.output("static/g.ply"), _splats(3))

        run_stage("s", tmp_path / "RUN", None, body, Runtime())
    finally:
        os.umask(old)
    for rel in ("views/a.png", "static/g.ply", "a3d.json"):
        assert (tmp_path / "RUN" / rel).stat().st_mode & 0o777 == 0o666 & ~umask, rel


# -- every error a user can act on carries a hint -----------------------------------------------------


def _nan_scales_ply(path: Path) -> None:
    g = _splats()
    g.scales[0, 0] = float("nan")
    write_ply(path, g)


def _truncated_ply(path: Path) -> None:
    write_ply(path, _splats())
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("missing.glb", lambda p: None),
        ("empty.glb", lambda p: p.write_bytes(b"")),
        ("nan.ply", _nan_scales_ply),
        ("cut.ply", _truncated_ply),
        ("flat.obj", lambda p: p.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 1 2\n")),
    ],
)
def test_common_input_errors_carry_a_hint(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    result = runner.invoke(app, ["prepare", str(path), "-o", str(tmp_path / "RUN"), "--view-size", "32"])
    one_error_with_hint(result)


def test_no_code_path_unpickles_or_runs_code_from_a_file():
    """Static check of a3d's own source: every torch.load passes weights_only=True; no pickle.load(s),
    eval, exec or trust_remote_code=True anywhere."""
    import ast

    root = REPO / "a3d_cli"
    problems = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            if owner == "torch" and name == "load":
                value = kw.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            if owner == "pickle" and name in ("load", "loads"):
                problems.append(f"{where}: pickle.{name}")
            if isinstance(func, ast.Name) and name in ("eval", "exec"):
                problems.append(f"{where}: {name}()")
            value = kw.get("trust_remote_code")
            if isinstance(value, ast.Constant) and value.value is True:
                problems.append(f"{where}: trust_remote_code=True")
    assert problems == []


def test_one_pixel_orbit_image_is_refused(tmp_path):
    from a3d_cli.io.preprocess import load_object_rgba

    save_png(tmp_path / "dot.png", torch.full((1, 1, 4), 0.5))
    with pytest.raises(InputError, match="1×1 pixels") as info:
        load_object_rgba(tmp_path / "dot.png")
    assert info.value.hint


@pytest.mark.parametrize("value, message", [("lots", "auto or a number"), ("-1", "auto or >= 0")])
def test_a_bad_vae_keep_exits_2_before_the_run_folder_is_touched(tmp_path, value, message):
    run = tmp_path / "never"
    result = runner.invoke(app, ["--device", "cpu", "sds", str(run), "--prompt", "wags", "--vae-keep", value])
    assert result.exit_code == 2, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--vae-keep" in errors[0] and message in errors[0] and "Traceback" not in result.stderr
    assert not run.exists()


def test_vae_keep_reads_auto_or_a_count():
    from a3d_cli.commands.sds import parse_vae_keep

    assert parse_vae_keep("auto") is None and parse_vae_keep(" AUTO ") is None
    assert parse_vae_keep("0") == 0 and parse_vae_keep("48") == 48


# -- option ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--lambda-sds", "nan"], "--lambda-sds"),
        (["--lambda-rgb", "inf"], "--lambda-rgb"),
        (["--guidance", "nan"], "--guidance"),
        (["--std-rescale", "nan"], "--std-rescale"),
        (["--distance", "0.8", "inf"], "finite numbers"),
    ],
)
def test_non_finite_sds_options_exit_2_before_the_run_folder_is_touched(tmp_path, args, flag):
    """`--lambda-sds nan` passed the `< 0` check and the refinement finished with a NaN loss."""
    run = tmp_path / "never"
    result = runner.invoke(app, ["--device", "cpu", "sds", str(run), "--prompt", "wags", "--tiny-model", *args])
    assert result.exit_code == 2, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and flag in errors[0] and "Traceback" not in result.stderr
    assert not run.exists()


def _float_fields(cls) -> list[tuple[str, bool]]:  # noqa: ANN001
    """(name, is a tuple) of every float option of an options dataclass."""
    import dataclasses

    return [(f.name, "tuple" in str(f.type)) for f in dataclasses.fields(cls) if "float" in str(f.type)]


def _options_classes():  # noqa: ANN202
    from a3d_cli.gaussians.motion_fit import FitSettings
    from a3d_cli.lift.fit import LiftFitSettings
    from a3d_cli.stages.animate import AnimateOptions
    from a3d_cli.stages.export import ExportOptions
    from a3d_cli.stages.lift import LiftOptions
    from a3d_cli.stages.mesh_animate import MeshAnimateOptions
    from a3d_cli.stages.mvvideo import MVVideoOptions
    from a3d_cli.stages.orbit import OrbitOptions
    from a3d_cli.stages.sds import SdsOptions

    return [
        (SdsOptions, {"prompt": "wags"}), (OrbitOptions, {"image": "fox.png"}), (LiftOptions, {}),
        (MVVideoOptions, {"prompt": "wags"}), (AnimateOptions, {"model": "fox.png", "prompt": "wags"}),
        (FitSettings, {}), (LiftFitSettings, {}), (ExportOptions, {}), (MeshAnimateOptions, {}),
    ]  # fmt: skip


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_every_float_option_of_every_stage_refuses_nan_and_infinity(bad):
    """A range check written `x < 0` (or with an open end) let NaN or infinity through; every float option
    of every stage's options (`require_finite_options`, or the stage's own two-sided check) refuses them."""
    from a3d_cli.errors import OptionError

    checked = 0
    for cls, required in _options_classes():
        for name, several in _float_fields(cls):
            with pytest.raises(OptionError) as info:
                cls(**required, **{name: (bad,) if several else bad})
            assert info.value.exit_code == 2, (cls.__name__, name)
            checked += 1
    assert checked > 40  # the loss weights, learning rates, guidance scales, ranges ...


@pytest.mark.parametrize("count", ["0", "20000001", "100000000000"])
def test_a_splat_count_outside_the_limit_exits_2_naming_it(tmp_path, count):
    """A splat count a3d cannot hold is a usage error naming the limit, never a MemoryError."""
    result = runner.invoke(app, ["prepare", str(REPO / "examples/assets/fox.glb"), "-o", str(tmp_path / "RUN"),
                                 "--splat-count", count])  # fmt: skip
    one_error_with_hint(result)
    assert "--splat-count must be between 1 and 20,000,000" in result.stderr
    assert not (tmp_path / "RUN").exists()


def test_a_batch_job_with_a_splat_count_outside_the_limit_is_an_invalid_line(tmp_path):
    """Batch jobs are checked by the same PrepareOptions before anything runs."""
    from a3d_cli.batch.manifest import build_jobs, read_manifest

    manifest = tmp_path / "jobs.jsonl"
    line = {"input": str(REPO / "examples/assets/fox.glb"), "prompt": "wags", "splat-count": 100_000_000_000}
    manifest.write_text(json.dumps(line) + "\n")
    specs, errors = read_manifest(manifest)
    assert errors == []
    jobs, errors = build_jobs(specs, tmp_path / "runs", tmp_path / "runs" / "logs", common_args=["--tiny-model"])
    assert jobs == [] and len(errors) == 1 and "between 1 and 20,000,000" in errors[0].message
