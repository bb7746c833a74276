"""Hostile glTF structure: every file here is refused by `a3d prepare` with one `error:` line and exit 2,
before anything large is allocated, never with a traceback or a hang, and no run folder is left.

The files are built by hand (`helpers.GlbBuilder`) from a small tetrahedron; each case breaks one rule of
the glTF 2.0 spec the way a damaged or malicious file could: node hierarchies that are not trees, scenes
that place a mesh far more often than its own size says, attribute counts that disagree, absurd JSON
nesting, NaN texture coordinates, a buffer that is a named pipe. (Each case was found by mutating the
JSON of valid files at random; the fuzz loop itself is not part of the suite.)
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import threading

import numpy as np
import pytest
from helpers import GL_FLOAT, GL_UINT, GlbBuilder, a3d_app, png_bytes
from typer.testing import CliRunner

from a3d_cli.commands.prepare import prepare as prepare_command
from a3d_cli.errors import InputError
from a3d_cli.mesh import gltf_accessors
from a3d_cli.mesh.load import load_mesh

runner = CliRunner()
FAST = ["--splat-count", "300", "--view-size", "32"]
TETRA = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
TETRA_FACES = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]], np.uint32)


def tetra(uv: np.ndarray | None = None, transform: dict | None = None) -> GlbBuilder:
    """A tetrahedron glTF, textured through TEXCOORD_0 when `uv` is given (with a KHR_texture_transform)."""
    b = GlbBuilder()
    attrs = {"POSITION": b.accessor(TETRA, GL_FLOAT, "VEC3", min=[0, 0, 0], max=[1, 1, 1])}
    extra = {}
    if uv is not None:
        attrs["TEXCOORD_0"] = b.accessor(np.asarray(uv, np.float32), GL_FLOAT, "VEC2")
        info = {"extensions": {"KHR_texture_transform": transform}} if transform else {}
        extra["material"] = b.textured_material({"source": b.image(png_bytes(np.full((4, 4, 3), 200)), "image/png")}, **info)
    b.mesh(attrs, b.accessor(TETRA_FACES.ravel(), GL_UINT, "SCALAR"), **extra)
    return b


def prepare_refuses(path, tmp_path, expected: str) -> None:
    run = tmp_path / "RUN"
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(run), *FAST])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.stderr
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not run.exists()


def cycle(b: GlbBuilder) -> None:
    b.doc["nodes"] += [{"children": [2]}, {"children": [1], "mesh": 0}]


def self_parent(b: GlbBuilder) -> None:
    b.doc["nodes"][0]["children"] = [0]


def shared_child(b: GlbBuilder) -> None:
    """Each node lists the next one twice: 2^30 paths to the mesh if a loader walked them all."""
    start = len(b.doc["nodes"])
    b.doc["nodes"] += [{"children": [start + k + 1, start + k + 1]} for k in range(30)] + [{"mesh": 0}]
    b.doc["scenes"][0]["nodes"] = [start]


def many_placements(b: GlbBuilder) -> None:
    """A mesh declaring 2^20 vertices (data never read), placed by 100 nodes: 100 × 2^20 vertices placed."""
    big = b.accessor(None, GL_FLOAT, "VEC3", count=1 << 20)
    b.doc["meshes"].append({"primitives": [{"attributes": {"POSITION": big}}]})
    b.doc["nodes"] += [{"mesh": 1, "translation": [i, 0, 0]} for i in range(100)]


def instances_of_nothing(b: GlbBuilder) -> None:
    """Millions of GPU instances of a mesh without vertices: no vertex bound applies, only the node bound."""
    b.doc["meshes"].append({"primitives": []})
    t = b.accessor(None, GL_FLOAT, "VEC3", count=gltf_accessors.MAX_SCENE_NODES * 100)
    b.doc["nodes"].append({"mesh": 1, "extensions": {"EXT_mesh_gpu_instancing": {"attributes": {"TRANSLATION": t}}}})
    b.use("EXT_mesh_gpu_instancing", required=True)


def normals_past_positions(b: GlbBuilder) -> None:
    """NORMAL declares 2^24 zeros (no bufferView) beside 4 positions: refused before they are allocated."""
    b.doc["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = b.accessor(None, GL_FLOAT, "VEC3", count=1 << 24)


def bad_mode(b: GlbBuilder) -> None:
    b.doc["meshes"][0]["primitives"][0]["mode"] = 5126


def mesh_not_an_index(b: GlbBuilder) -> None:
    b.doc["nodes"][0]["mesh"] = 0.5


@pytest.mark.parametrize(
    "edit, expected",
    [
        (cycle, "cycle"),
        (self_parent, "cycle"),
        (shared_child, "two parents"),
        (many_placements, "more than a3d decodes"),
        (instances_of_nothing, "more than a3d reads"),
        (normals_past_positions, "the same count"),
        (bad_mode, "mode 5126"),
        (mesh_not_an_index, "names mesh 0.5"),
    ],
)
def test_hostile_scene_structure_is_refused_before_any_work(tmp_path, edit, expected):
    b = tetra()
    edit(b)
    prepare_refuses(b.save(tmp_path / "hostile.glb"), tmp_path, expected)


def test_instance_attributes_of_different_lengths_are_refused_before_any_is_read(tmp_path):
    """Two translations beside 2^24 rotations of zeros (no bufferView): refused from the declared counts,
    without allocating the rotations (256 MB)."""
    import tracemalloc

    b = tetra()
    t = b.accessor(np.zeros((2, 3), np.float32), GL_FLOAT, "VEC3")
    r = b.accessor(None, GL_FLOAT, "VEC4", count=1 << 24)
    b.doc["nodes"][0]["extensions"] = {"EXT_mesh_gpu_instancing": {"attributes": {"TRANSLATION": t, "ROTATION": r}}}
    path = b.save(tmp_path / "instances.glb")
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="different lengths"):
            load_mesh(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_json_nested_past_the_parser_is_refused(tmp_path, suffix):
    b = tetra()
    b.doc["extras"] = "@DEEP@"
    path = b.save(tmp_path / "deep.glb")
    deep = b"[" * 100_000 + b"]" * 100_000
    data = path.read_bytes()
    n = struct.unpack_from("<I", data, 12)[0]
    text, rest = data[20 : 20 + n].replace(b'"@DEEP@"', deep), data[20 + n :]
    if suffix == ".glb":
        text += b" " * (-len(text) % 4)
        path.write_bytes(struct.pack("<4sII", b"glTF", 2, 20 + len(text) + len(rest)) + struct.pack("<II", len(text), 0x4E4F534A) + text + rest)
    else:
        path = tmp_path / "deep.gltf"
        (tmp_path / "deep.bin").write_bytes(rest[8:])
        doc = text.replace(b'"buffers": [{"byteLength"', b'"buffers": [{"uri": "deep.bin", "byteLength"')
        path.write_bytes(doc)
    prepare_refuses(path, tmp_path, "nested too deeply")


def test_json_nested_just_within_the_parser_is_refused_not_crashed(tmp_path):
    """Deep enough for json.loads, too deep for copying the document: still one clear refusal."""
    b = tetra()
    nested: list = []
    for _ in range(sys.getrecursionlimit() - 100):
        nested = [nested]
    b.doc["extras"] = nested
    with pytest.raises(InputError, match="nested too deeply"):
        load_mesh(b.save(tmp_path / "deep.glb"))


@pytest.mark.parametrize(
    "uv, transform",
    [
        (np.full((4, 2), np.nan), None),
        (np.full((4, 2), 0.5), {"offset": [float("nan"), 0.0]}),
        (np.full((4, 2), 0.5), {"scale": [float("inf"), 1.0]}),
    ],
)
def test_non_finite_texture_coordinates_are_refused(tmp_path, uv, transform):
    """NaN UVs (stored, or made by a texture transform) would index the texture at -2^63."""
    prepare_refuses(tetra(uv, transform).save(tmp_path / "nan.glb"), tmp_path, "NaN or infinite")


def test_truncated_texture_image_is_refused(tmp_path):
    """A PNG whose bufferView stops half-way: Pillow reads the header, and fails only when the pixels are
    decoded (after the scene is read)."""
    b = tetra(np.full((4, 2), 0.5))
    rng = np.random.default_rng(0)
    png = png_bytes(rng.integers(0, 256, (64, 64, 3)))
    b.doc["images"][0]["bufferView"] = b.view(png[: len(png) // 2])
    prepare_refuses(b.save(tmp_path / "truncated.glb"), tmp_path, "cannot be decoded")


@contextlib.contextmanager
def pipe_never_opened(fifo):
    """Make `fifo` a named pipe and fail if a3d opens it in a way that can wait on it.

    A non-blocking open followed by a check of what was opened (how `io.regular.open_regular` refuses
    anything but a regular file) is allowed: it cannot hang. Python-level opens of the path are watched:
    `os.open` without `O_NONBLOCK`, and `open`/`io.open` (which always block on a pipe) fail the test. Any
    other reader (C code, a captured `os.open`) is caught by a helper thread: whenever no watched open holds
    the pipe, it tries to open the write end, which succeeds only while someone has the read end open; it
    then closes it at once (EOF for a blocked reader, so the test fails instead of hanging).
    """
    import builtins
    import io

    os.mkfifo(fifo)
    target = os.path.realpath(fifo)
    stop, lock, problems = threading.Event(), threading.Lock(), []
    watched_fds: set[int] = set()
    in_flight = [0]  # watched opens started and not yet closed
    real_os_open, real_os_close, real_open, real_io_open = os.open, os.close, builtins.open, io.open

    def is_fifo(path) -> bool:  # noqa: ANN001 - any path-like or a descriptor
        return isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)) == target

    def watched_os_open(path, flags, *args, **kwargs):  # noqa: ANN001, ANN202
        if not is_fifo(path):
            return real_os_open(path, flags, *args, **kwargs)
        if not flags & os.O_NONBLOCK:  # the helper thread releases it
            problems.append(f"os.open({path!r}, {flags:#o})")
            return real_os_open(path, flags, *args, **kwargs)
        with lock:
            in_flight[0] += 1
        try:
            fd = real_os_open(path, flags, *args, **kwargs)
        except BaseException:
            with lock:
                in_flight[0] -= 1
            raise
        with lock:
            watched_fds.add(fd)
        return fd

    def watched_os_close(fd: int) -> None:
        with lock:
            if fd in watched_fds:
                watched_fds.discard(fd)
                in_flight[0] -= 1
        real_os_close(fd)

    def watched_open(real):  # noqa: ANN001, ANN202
        def opener(file, *args, **kwargs):  # noqa: ANN001, ANN202
            if is_fifo(file):
                problems.append(f"open({file!r})")
            return real(file, *args, **kwargs)

        return opener

    def catch_unwatched_readers() -> None:
        while not stop.wait(0.05):
            with lock:  # no watched open can start while the write end is tried
                if in_flight[0]:
                    continue
                try:
                    real_os_close(real_os_open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # ENXIO: nobody has the read end open
                    continue
                problems.append("an unwatched open of the read end")

    threading.Thread(target=catch_unwatched_readers, daemon=True).start()
    os.open, os.close, builtins.open, io.open = watched_os_open, watched_os_close, watched_open(real_open), watched_open(real_io_open)
    try:
        yield
    finally:
        os.open, os.close, builtins.open, io.open = real_os_open, real_os_close, real_open, real_io_open
        stop.set()
    assert not problems, f"a3d opened the named pipe so that it could wait on it: {problems}"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_buffer_that_is_a_named_pipe_is_refused_not_read_forever(tmp_path):
    b = tetra()
    b.doc["buffers"][0] = {"byteLength": len(b.blob), "uri": "data.bin"}
    (tmp_path / "model.gltf").write_text(json.dumps(b.doc))
    with pipe_never_opened(tmp_path / "data.bin"):
        prepare_refuses(tmp_path / "model.gltf", tmp_path, "not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_obj_material_library_that_is_a_named_pipe_is_never_read(tmp_path):
    """The OBJ reads without its material (as with a missing .mtl) instead of waiting on the pipe forever."""
    faces = "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in TETRA_FACES)
    (tmp_path / "model.obj").write_text("mtllib model.mtl\n" + "".join(f"v {x} {y} {z}\n" for x, y, z in TETRA) + faces)
    with pipe_never_opened(tmp_path / "model.mtl"):
        result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(tmp_path / "model.obj"), "-o", str(tmp_path / "RUN"), *FAST])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "RUN" / "static" / "gaussians.ply").is_file()


def test_decoded_values_are_bounded_across_accessors(tmp_path, monkeypatch):
    """Each index accessor is within its own bound; together they pass the per-file bound (made small here
    so that the test allocates little): refused when the running total passes it, not after."""
    monkeypatch.setattr(gltf_accessors, "MAX_DECODED_VALUES", 10_000)
    b = tetra()
    prim = b.doc["meshes"][0]["primitives"][0]
    for _ in range(5):  # 5 × 3,000 indices of zeros (no bufferView), each far below MAX_ACCESSOR_COUNT
        b.doc["meshes"][0]["primitives"].append({"attributes": prim["attributes"], "indices": b.accessor(None, GL_UINT, "SCALAR", count=3000)})
    prepare_refuses(b.save(tmp_path / "many.glb"), tmp_path, "more than 10,000 values")


def strip_over_five_points(indices: int, normals: bool) -> GlbBuilder:
    """A TRIANGLE_STRIP of `indices` indices cycling over 5 points (a tiny file of many triangles), with NORMAL
    or without (then glTF shades it flat, and a3d splits its vertices once per way their faces face)."""
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0.3]], np.float32)
    b = GlbBuilder()
    attrs = {"POSITION": b.accessor(points, GL_FLOAT, "VEC3", min=[0, 0, 0], max=[1, 1, 1])}
    if normals:
        attrs["NORMAL"] = b.accessor(np.tile(np.float32([0, 0, 1]), (5, 1)), GL_FLOAT, "VEC3")
    b.mesh(attrs, b.accessor((np.arange(indices) % 5).astype(np.uint32), GL_UINT, "SCALAR"), mode=5)
    return b


@pytest.mark.parametrize("normals", [True, False], ids=["with-normal", "flat"])
def test_the_flat_split_is_counted_against_the_decode_budget(tmp_path, monkeypatch, normals):
    """The flat split's working memory grows with the corners, whatever the points: per corner at least its
    vertex's number, its share of its face's float64 normal and its copy's number (4 + 8 + 8 bytes, 5 values
    of the budget's 4 bytes), 15 values a triangle. Under a budget of 12 values per index (made small here),
    the strip's decoded data fits (it reads with NORMAL) and its flat split does not: refused before anything
    of that size is allocated."""
    indices = 3000
    monkeypatch.setattr(gltf_accessors, "MAX_DECODED_VALUES", 12 * indices)
    path = strip_over_five_points(indices, normals).save(tmp_path / "strip.glb")
    if normals:
        result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(tmp_path / "RUN"), *FAST])
        assert result.exit_code == 0, result.stderr
    else:
        prepare_refuses(path, tmp_path, f"more than {12 * indices:,} values")


def noise_png(size: int = 64) -> bytes:
    return png_bytes(np.random.default_rng(0).integers(0, 256, (size, size, 3)))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"not an image at all " * 8, id="garbage"),
        pytest.param(noise_png()[:40], id="png-header-only"),
        pytest.param(png_bytes(np.full((64, 64, 3), 90), "JPEG")[:300], id="jpeg-cut-short"),
    ],
)
def test_texture_image_that_does_not_decode_is_refused_with_its_name(tmp_path, data):
    """trimesh drops an image it cannot decode without a word (the asset would come out grey)."""
    b = tetra(np.full((4, 2), 0.5))
    b.doc["images"][0]["bufferView"] = b.view(data)
    b.doc["images"][0]["name"] = "skin"
    prepare_refuses(b.save(tmp_path / "bad_image.glb"), tmp_path, "texture image 'skin' cannot be decoded")


def test_texture_image_past_the_decompression_bomb_limit_is_refused(tmp_path, monkeypatch):
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; a3d refuses (the limit made small here)."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # a 64×64 image: 4,096 pixels, a warning in Pillow
    b = tetra(np.full((4, 2), 0.5))
    b.doc["images"][0]["bufferView"] = b.view(noise_png())
    prepare_refuses(b.save(tmp_path / "bomb.glb"), tmp_path, "more pixels than a3d decodes")


def gltf_with_image_file(folder, image: str):
    """A textured tetrahedron .gltf (data in model.bin) whose base-colour image is the file `image`."""
    b = tetra(np.full((4, 2), 0.5))
    b.doc["images"][0] = {"uri": image}
    b.doc["buffers"][0] = {"byteLength": len(b.blob), "uri": "model.bin"}
    (folder / "model.bin").write_bytes(bytes(b.blob))
    (folder / "model.gltf").write_text(json.dumps(b.doc))
    return folder / "model.gltf"


def obj_with_map_kd(folder, image: str):
    """A textured tetrahedron .obj whose material's `map_Kd` (after an option) is the file `image`."""
    faces = "".join(f"f {a + 1}/1 {b + 1}/2 {c + 1}/3\n" for a, b, c in TETRA_FACES)
    vertices = "".join(f"v {x} {y} {z}\n" for x, y, z in TETRA)
    (folder / "model.obj").write_text(f"mtllib model.mtl\n{vertices}vt 0 0\nvt 1 0\nvt 0 1\nusemtl skin\n{faces}")
    (folder / "model.mtl").write_text(f"newmtl skin\nKd 1 1 1\nmap_Kd -bm 1 {image}\n")
    return folder / "model.obj"


@pytest.mark.parametrize("build", [gltf_with_image_file, obj_with_map_kd], ids=["gltf", "obj"])
def test_texture_image_file_that_does_not_decode_is_refused_with_its_name(tmp_path, build):
    model = build(tmp_path, "skin tex.png")
    (tmp_path / "skin tex.png").write_bytes(noise_png()[:60])
    prepare_refuses(model, tmp_path, "texture image 'skin tex.png' cannot be decoded")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("build", [gltf_with_image_file, obj_with_map_kd], ids=["gltf", "obj"])
def test_texture_image_file_that_is_a_named_pipe_is_refused_never_opened(tmp_path, build):
    model = build(tmp_path, "skin.png")
    with pipe_never_opened(tmp_path / "skin.png"):
        prepare_refuses(model, tmp_path, "not a regular file")


@pytest.mark.parametrize("textured", [False, True], ids=["colours-only", "textured"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_vertex_colours_are_refused(tmp_path, textured, bad):
    """A NaN COLOR_0 would come out black (0 when made 8-bit) or poison the texture's colours."""
    b = tetra(np.full((4, 2), 0.5) if textured else None)
    colors = np.full((4, 4), 0.5, np.float32)
    colors[2, 1] = bad
    b.doc["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"] = b.accessor(colors, GL_FLOAT, "VEC4")
    prepare_refuses(b.save(tmp_path / "nan_colours.glb"), tmp_path, "vertex colours (COLOR_0) that are NaN or infinite")


def gltf_with_data_uris(folder, buffer_uri: str | None = None, image_uri: str | None = None):
    """A textured tetrahedron .gltf whose buffer and base-colour image are `data:` URIs (or the ones given)."""
    import base64

    b = tetra(np.full((4, 2), 0.5))
    png = base64.b64encode(png_bytes(np.full((4, 4, 3), 200))).decode()
    b.doc["images"][0] = {"uri": image_uri or f"data:image/png;base64,{png}"}
    blob = base64.b64encode(bytes(b.blob)).decode()
    b.doc["buffers"][0] = {"byteLength": len(b.blob), "uri": buffer_uri or f"data:application/octet-stream;base64,{blob}"}
    (folder / "model.gltf").write_text(json.dumps(b.doc))
    return folder / "model.gltf"


def test_buffer_and_image_data_uris_are_decoded(tmp_path):
    mesh = load_mesh(gltf_with_data_uris(tmp_path))
    assert len(np.unique(mesh.vertices, axis=0)) == 4 and mesh.texture is not None  # its 4 points (faces read flat)


@pytest.mark.parametrize(
    ("where", "expected"),
    [("buffer", "buffer 0 has a damaged data: URI"), ("image", "texture image 'image 0' has a damaged data: URI")],
)
def test_a_damaged_data_uri_is_refused_by_name(tmp_path, where, expected):
    damaged = "data:application/octet-stream;base64"  # no comma: no payload
    model = gltf_with_data_uris(tmp_path, **{f"{where}_uri": damaged})
    prepare_refuses(model, tmp_path, expected)


def test_a_missing_buffer_file_is_refused_by_name(tmp_path):
    prepare_refuses(gltf_with_data_uris(tmp_path, buffer_uri="model%20data.bin"), tmp_path, "names the buffer file 'model%20data.bin', which does not exist")


def test_a_percent_encoded_buffer_file_name_is_read(tmp_path):
    import base64

    model = gltf_with_data_uris(tmp_path)
    doc = json.loads(model.read_text())
    (tmp_path / "model data.bin").write_bytes(base64.b64decode(doc["buffers"][0]["uri"].split(",", 1)[1]))
    doc["buffers"][0]["uri"] = "model%20data.bin"
    model.write_text(json.dumps(doc))
    assert len(np.unique(load_mesh(model).vertices, axis=0)) == 4  # the tetrahedron's 4 points


@pytest.mark.parametrize("normals", [False, True], ids=["flat", "with-normals"])
def test_a_triangle_list_of_a_partial_triangle_is_refused_in_words(tmp_path, normals):
    """Four indices are no whole number of triangles (glTF 2.0 §3.7.2.1): one `error:` line that says so, not
    numpy's words about reshaping."""
    b = GlbBuilder()
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    attrs = {"POSITION": b.accessor(v, GL_FLOAT, "VEC3", min=v.min(0).tolist(), max=v.max(0).tolist())}
    if normals:
        attrs["NORMAL"] = b.accessor(np.tile(np.float32([0, 0, 1]), (4, 1)), GL_FLOAT, "VEC3")
    indices = b.accessor(np.arange(4, dtype=np.uint32), GL_UINT, "SCALAR")
    b.doc["meshes"].append({"primitives": [{"attributes": attrs, "indices": indices}]})
    b.doc["nodes"].append({"mesh": 0})
    b.doc["scenes"][0]["nodes"].append(0)
    path = b.save(tmp_path / "partial.glb")
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(tmp_path / "RUN"), *FAST])
    assert result.exit_code == 2
    assert "4 indices, not a whole number of triangles" in result.output and "reshape" not in result.output


def test_a_flat_split_past_the_budget_is_named_with_its_remedy(tmp_path, monkeypatch):
    """The strip's accessors declare little (5 points, 3000 indices): what passes the budget is the copies flat
    shading needs, so the error names the primitive without NORMAL, not accessors' declared sizes, and the hint
    points at exporting normals, which the same file with NORMAL shows to be enough
    (`test_the_flat_split_is_counted_against_the_decode_budget`)."""
    indices = 3000
    monkeypatch.setattr(gltf_accessors, "MAX_DECODED_VALUES", 12 * indices)
    path = strip_over_five_points(indices, normals=False).save(tmp_path / "strip.glb")
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(tmp_path / "RUN"), *FAST])
    assert result.exit_code == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    hint = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    assert len(error) == 1 and "without NORMAL" in error[0] and "accessors" not in error[0], result.stderr
    assert len(hint) == 1 and "with normals" in hint[0], result.stderr
