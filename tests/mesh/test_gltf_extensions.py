"""glTF extensions and accessor features: decoded right, or refused up front with the extension's name.

Every file is built here from a procedural mesh (`helpers.GlbBuilder`, DracoPy's encoder, Pillow's WebP
encoder); expected values come from the glTF 2.0 spec's formulas, never from a3d's reader.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import (
    GL_BYTE,
    GL_FLOAT,
    GL_SHORT,
    GL_UBYTE,
    GL_UINT,
    GL_USHORT,
    GlbBuilder,
    a3d_app,
    png_bytes,
    textured_sphere,
)
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from a3d_cli.commands.prepare import prepare as prepare_command
from a3d_cli.errors import InputError
from a3d_cli.mesh.appearance import linear_to_srgb
from a3d_cli.mesh.load import load_mesh

runner = CliRunner()
FAST = ["--splat-count", "500", "--view-size", "32"]


def gradient(size: int = 32) -> np.ndarray:
    """[size, size, 3] uint8 whose colour changes smoothly with u (red) and v (green): a small UV error
    gives a small colour error, a wrong UV a large one."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 255 // (size - 1), y * 255 // (size - 1), np.full_like(x, 90)], -1).astype(np.uint8)


def sphere(count: int = 8, seed: int = 0):
    """Positions, faces, glTF UVs (top-left origin), normals and RGBA8 colours of a UV sphere with seams."""
    m = textured_sphere(count)
    uv = np.asarray(m.visual.uv, np.float32)
    rng = np.random.default_rng(seed)
    colors = rng.integers(80, 256, (len(m.vertices), 4)).astype(np.uint8)
    colors[:, 3] = 255
    return (np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.uint32), np.c_[uv[:, 0], 1 - uv[:, 1]],
            np.asarray(m.vertex_normals, np.float32), colors)  # fmt: skip


def rows(a: np.ndarray) -> np.ndarray:
    """The rows of [N, 3] points in lexicographic order (the scene's part order is not a3d's promise)."""
    a = np.round(np.asarray(a, np.float64), 5)
    return a[np.lexsort(a.T[::-1])]


def points(a: np.ndarray) -> np.ndarray:
    """The distinct rows of [N, 3] points in lexicographic order: a primitive without NORMAL is read
    flat-shaded, its vertices split where its faces turn, on the same points."""
    return np.unique(np.round(np.asarray(a, np.float64), 5), axis=0)


def textured(b: GlbBuilder, **info) -> int:
    return b.textured_material({"source": b.image(png_bytes(gradient()), "image/png")}, **info)


def plain_sphere(path, v, f, uv, n, c):
    b = GlbBuilder()
    attrs = {
        "POSITION": b.accessor(v, GL_FLOAT, "VEC3", min=v.min(0).tolist(), max=v.max(0).tolist()),
        "NORMAL": b.accessor(n, GL_FLOAT, "VEC3"),
        "TEXCOORD_0": b.accessor(uv, GL_FLOAT, "VEC2"),
        "COLOR_0": b.accessor(c, GL_UBYTE, "VEC4", normalized=True),
    }
    b.mesh(attrs, b.accessor(f.ravel(), GL_UINT, "SCALAR"), material=textured(b))
    return b.save(path)


def draco_sphere(path, v, f, uv, n, c, count=None, index_count=None):
    """The sphere as a KHR_draco_mesh_compression primitive (14-bit positions, 12-bit UVs, 10-bit normals),
    vertex order left to Draco (it reorders); `count` / `index_count` replace the declared vertex / index counts."""
    import DracoPy

    blob = DracoPy.encode(v, f, quantization_bits=14, compression_level=7, tex_coord=uv.astype(np.float64),
                          normals=n.astype(np.float64), colors=c, tex_coord_quantization_bits=12,
                          normal_quantization_bits=10)  # fmt: skip
    decoded = DracoPy.decode(blob)  # as an encoder does: the counts and attribute ids to write
    ids = {int(a["attribute_type"]): int(a["unique_id"]) for a in decoded.attributes}
    T = DracoPy.AttributeType
    nv = count or len(decoded.points)
    b = GlbBuilder()
    attrs = {
        "POSITION": b.accessor(None, GL_FLOAT, "VEC3", count=nv, min=v.min(0).tolist(), max=v.max(0).tolist()),
        "NORMAL": b.accessor(None, GL_FLOAT, "VEC3", count=nv),
        "TEXCOORD_0": b.accessor(None, GL_FLOAT, "VEC2", count=nv),
        "COLOR_0": b.accessor(None, GL_UBYTE, "VEC4", count=nv, normalized=True),
    }
    ext = {"bufferView": b.view(blob), "attributes": {"POSITION": ids[int(T.POSITION)], "NORMAL": ids[int(T.NORMAL)],
           "TEXCOORD_0": ids[int(T.TEX_COORD)], "COLOR_0": ids[int(T.COLOR)]}}  # fmt: skip
    indices = b.accessor(None, GL_UINT, "SCALAR", count=index_count or 3 * len(decoded.faces))
    b.mesh(attrs, indices, material=textured(b), extensions={"KHR_draco_mesh_compression": ext})
    b.use("KHR_draco_mesh_compression", required=True)
    return b.save(path)


def test_draco_decodes_to_the_uncompressed_mesh_within_its_quantization(tmp_path):
    from a3d_cli.mesh.gltf_accessors import read_accessor, read_document
    from a3d_cli.mesh.gltf_core import core_glb
    from a3d_cli.mesh.load import _resolver

    v, f, uv, n, c = sphere()
    plain = load_mesh(plain_sphere(tmp_path / "plain.glb", v, f, uv, n, c))
    path = draco_sphere(tmp_path / "draco.glb", v, f, uv, n, c)
    packed = load_mesh(path)
    assert packed.num_faces == plain.num_faces
    # Draco reorders vertices: match each decoded vertex to the original by position and UV
    extent = float((v.max(0) - v.min(0)).max())
    dist, match = cKDTree(np.c_[plain.vertices, plain.uvs]).query(np.c_[packed.vertices, packed.uvs])
    assert np.abs(packed.vertices - plain.vertices[match]).max() <= extent / (2**14 - 1)  # one quantization step
    assert np.abs(packed.uvs - plain.uvs[match]).max() <= 1.0 / (2**12 - 1)
    assert np.abs(packed.vertex_colors - plain.vertex_colors[match]).max() <= 1e-6  # colours are stored exactly
    assert np.abs(packed.vertex_rgba() - plain.vertex_rgba()[match]).max() <= 3 / 255
    same = {tuple(sorted(t)) for t in plain.faces.tolist()}
    assert {tuple(sorted(t)) for t in match[packed.faces].tolist()} == same  # the same triangles
    # normals (which a3d recomputes later) decode to the original directions within Draco's 10 bits
    (tmp_path / "core.glb").write_bytes(core_glb(path, _resolver(path)))
    doc = read_document(tmp_path / "core.glb", None)
    prim = doc.json["meshes"][0]["primitives"][0]["attributes"]
    pos, nrm, tex = (read_accessor(doc, prim[name]) for name in ("POSITION", "NORMAL", "TEXCOORD_0"))
    _, k = cKDTree(np.c_[v, uv]).query(np.c_[pos, tex])  # seam and pole copies differ in UV
    assert np.degrees(np.arccos(np.clip((nrm * n[k]).sum(1), -1, 1))).max() < 1.0
    assert "extensionsRequired" not in doc.json or not doc.json["extensionsRequired"]


def test_draco_asset_goes_through_prepare(tmp_path):
    path = draco_sphere(tmp_path / "draco.glb", *sphere())
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(tmp_path / "RUN"), *FAST])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "RUN" / "static" / "gaussians.ply").is_file()
    assert (tmp_path / "RUN" / "source" / "original" / "draco.glb").read_bytes() == path.read_bytes()


def test_quantized_attributes_are_dequantized_as_the_spec_defines(tmp_path):
    """KHR_mesh_quantization: int16 normalized positions under a node scale, uint16 normalized UVs,
    int8 normalized normals; uint8 (not normalized) positions and uint16 normalized COLOR_0 on a second part."""
    rng = np.random.default_rng(1)
    q_pos = rng.integers(-32768, 32768, (12, 3)).astype(np.int16)
    q_pos[0] = -32768  # the one value that normalizes below -1 and is clamped to -1
    q_uv = rng.integers(0, 65536, (12, 2)).astype(np.uint16)
    q_nrm = np.tile(np.array([[0, 127, 0, 0]], np.int8), (12, 1))  # int8 VEC3 padded to 4 bytes per element
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]], np.uint16)
    b = GlbBuilder()
    attrs = {
        "POSITION": b.accessor(np.c_[q_pos, np.zeros(12, np.int16)], GL_SHORT, "VEC4", normalized=True),
        "TEXCOORD_0": b.accessor(q_uv, GL_USHORT, "VEC2", normalized=True),
    }
    b.doc["accessors"][attrs["POSITION"]]["type"] = "VEC3"  # stored with a 4th padding component (stride 8)
    b.doc["bufferViews"][b.doc["accessors"][attrs["POSITION"]]["bufferView"]]["byteStride"] = 8
    attrs["NORMAL"] = b.accessor(q_nrm, GL_BYTE, "VEC3", normalized=True)
    b.doc["bufferViews"][b.doc["accessors"][attrs["NORMAL"]]["bufferView"]]["byteStride"] = 4
    b.mesh(attrs, b.accessor(faces.ravel(), GL_USHORT, "SCALAR"), node={"scale": [2.0, 2.0, 2.0], "translation": [0, 1, 0]},
           material=textured(b))  # fmt: skip
    b.use("KHR_mesh_quantization", required=True)
    mesh = load_mesh(b.save(tmp_path / "quantized.glb"))
    q_small = rng.integers(0, 256, (3, 3)).astype(np.uint8)
    q_col = rng.integers(0, 65536, (3, 3)).astype(np.uint16)
    b = GlbBuilder()
    pos = b.accessor(np.c_[q_small, np.zeros(3, np.uint8)], GL_UBYTE, "VEC4")
    b.doc["accessors"][pos]["type"] = "VEC3"
    b.doc["bufferViews"][b.doc["accessors"][pos]["bufferView"]]["byteStride"] = 4
    b.mesh({"POSITION": pos, "COLOR_0": b.accessor(q_col, GL_USHORT, "VEC3", normalized=True)},
           b.accessor(np.array([0, 1, 2], np.uint8), GL_UBYTE, "SCALAR"), node={"scale": [0.01, 0.01, 0.01]})  # fmt: skip
    b.use("KHR_mesh_quantization", required=True)
    small = load_mesh(b.save(tmp_path / "bytes.glb"))

    expected = np.maximum(q_pos / 32767.0, -1.0) * 2.0 + [0, 1, 0]  # glTF 2.0: int16 c → max(c / 32767, -1)
    assert mesh.vertices[0, 0] == pytest.approx(-2.0)
    np.testing.assert_allclose(mesh.vertices, expected, atol=1e-6)
    np.testing.assert_allclose(small.vertices, q_small * 0.01, atol=1e-6)
    uv = q_uv / 65535.0
    np.testing.assert_allclose(mesh.uvs, np.c_[uv[:, 0], 1 - uv[:, 1]], atol=1e-6)  # a3d holds v up
    srgb = linear_to_srgb(q_col / 65535.0)
    np.testing.assert_allclose(small.vertex_colors[:, :3], srgb, atol=3 / 255)  # trimesh keeps colours as 8 bits


def test_sparse_accessors_substitute_their_values(tmp_path):
    v, f, uv, _, _ = sphere(6)
    broken = v.copy()
    fix = np.arange(0, len(v), 3, dtype=np.uint32)
    broken[fix] = 0.0
    b = GlbBuilder()
    pos = b.accessor(broken, GL_FLOAT, "VEC3", min=v.min(0).tolist(), max=v.max(0).tolist())
    b.doc["accessors"][pos]["sparse"] = {"count": len(fix), "indices": {"bufferView": b.view(fix.tobytes()), "componentType": GL_UINT},
                                         "values": {"bufferView": b.view(v[fix].tobytes())}}  # fmt: skip
    b.mesh({"POSITION": pos}, b.accessor(f.ravel(), GL_UINT, "SCALAR"))
    # an accessor with no bufferView: zeros, then the sparse values (here: every vertex, shifted)
    every = np.arange(len(v), dtype=np.uint16)
    pos2 = b.accessor(None, GL_FLOAT, "VEC3", count=len(v), min=(v.min(0) + 3).tolist(), max=(v.max(0) + 3).tolist())
    b.doc["accessors"][pos2]["sparse"] = {"count": len(v), "indices": {"bufferView": b.view(every.tobytes()), "componentType": GL_USHORT},
                                          "values": {"bufferView": b.view((v + 3).tobytes())}}  # fmt: skip
    b.mesh({"POSITION": pos2}, b.accessor(f.ravel(), GL_UINT, "SCALAR"))
    mesh = load_mesh(b.save(tmp_path / "sparse.glb"))
    used = np.unique(f)  # a3d drops vertices no face uses
    np.testing.assert_allclose(points(mesh.vertices), points(np.concatenate([v[used], v[used] + 3])), atol=1e-6)


def spec_uv_matrix(offset, rotation, scale) -> np.ndarray:
    """KHR_texture_transform as Khronos' glTF-Sample-Viewer builds it (gl-matrix, column-major arrays):
    matrix = T · R · S with R's columns (cos, −sin) and (sin, cos). The GLSL listing in the extension's text
    has the opposite sign; its prose and example agree with the viewer (KhronosGroup/glTF issue 1563, and
    `test_texture_transform_reads_the_quadrant_the_extension_example_names`)."""
    c, s = np.cos(rotation), np.sin(rotation)
    translation = np.array([[1, 0, 0], [0, 1, 0], [offset[0], offset[1], 1]]).T
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
    return translation @ rot @ np.diag([scale[0], scale[1], 1.0])


def test_texture_transform_reads_the_quadrant_the_extension_example_names(tmp_path):
    """The extension's own example: offset [0, 1], rotation π/2, scale [0.5, 0.5] "utilizes only the lower
    left quadrant of the source image, rotated clockwise 90°". A texture with four one-colour quadrants:
    every vertex (UVs inside (0, 1)) must read the lower-left one, and (u, v) must land at (v/2, 1 − u/2)."""
    quadrants = np.zeros((64, 64, 3), np.uint8)
    quadrants[:32, :32], quadrants[:32, 32:] = (255, 0, 0), (0, 255, 0)  # top-left red, top-right green
    quadrants[32:, :32], quadrants[32:, 32:] = (0, 0, 255), (255, 255, 0)  # bottom-left blue, bottom-right yellow
    g = np.linspace(0.1, 0.9, 5)
    u, v = (a.ravel() for a in np.meshgrid(g, g))
    uv = np.c_[u, v].astype(np.float32)
    positions = np.c_[u, v, np.zeros_like(u)].astype(np.float32)
    idx = np.arange(25).reshape(5, 5)
    faces = np.concatenate([np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:]], -1).reshape(-1, 3),
                            np.stack([idx[:-1, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 3)]).astype(np.uint32)  # fmt: skip
    b = GlbBuilder()
    example = {"offset": [0, 1], "rotation": np.pi / 2, "scale": [0.5, 0.5]}
    material = b.textured_material({"source": b.image(png_bytes(quadrants), "image/png")}, extensions={"KHR_texture_transform": example})
    b.mesh({"POSITION": b.accessor(positions, GL_FLOAT, "VEC3"), "TEXCOORD_0": b.accessor(uv, GL_FLOAT, "VEC2")},
           b.accessor(faces.ravel(), GL_UINT, "SCALAR"), material=material)  # fmt: skip
    b.use("KHR_texture_transform", required=True)
    mesh = load_mesh(b.save(tmp_path / "example.glb"))
    rgb = np.round(mesh.vertex_rgba()[:, :3] * 255)
    assert (rgb == [0, 0, 255]).all(), np.unique(rgb, axis=0)
    order = cKDTree(positions).query(mesh.vertices)[1]  # a3d's vertex order need not be the file's
    want = np.c_[uv[order, 1] / 2, 1 - uv[order, 0] / 2]  # glTF UVs (top-left origin)
    np.testing.assert_allclose(np.c_[mesh.uvs[:, 0], 1 - mesh.uvs[:, 1]], want, atol=1e-6)


def test_base_colour_uses_its_uv_set_and_texture_transform(tmp_path):
    """The texture reads TEXCOORD_1 through KHR_texture_transform; TEXCOORD_0 holds zeros. Stored UVs are the
    wanted ones under the inverse transform, so a correct reader sees the plain mesh's colours."""
    v, f, uv, _, _ = sphere(6)
    uv = 0.1 + 0.8 * uv  # away from the texture's border, where wrapping would blur the comparison
    plain = GlbBuilder()
    plain.mesh({"POSITION": plain.accessor(v, GL_FLOAT, "VEC3"), "TEXCOORD_0": plain.accessor(uv, GL_FLOAT, "VEC2")},
               plain.accessor(f.ravel(), GL_UINT, "SCALAR"), material=textured(plain))  # fmt: skip
    want = load_mesh(plain.save(tmp_path / "plain.glb")).vertex_rgba()
    m = spec_uv_matrix((0.3, -0.2), 0.7, (0.5, 1.5))
    stored = (np.c_[uv, np.ones(len(uv))] @ np.linalg.inv(m).T)[:, :2].astype(np.float32)
    b = GlbBuilder()
    material = textured(b, texCoord=1, extensions={"KHR_texture_transform": {"offset": [0.3, -0.2], "rotation": 0.7, "scale": [0.5, 1.5]}})
    b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3"), "TEXCOORD_0": b.accessor(np.zeros_like(uv), GL_FLOAT, "VEC2"),
            "TEXCOORD_1": b.accessor(stored, GL_FLOAT, "VEC2")}, b.accessor(f.ravel(), GL_UINT, "SCALAR"), material=material)  # fmt: skip
    b.use("KHR_texture_transform", required=True)
    got = load_mesh(b.save(tmp_path / "transformed.glb")).vertex_rgba()
    assert np.abs(got - want).max() <= 2 / 255


@pytest.mark.parametrize("extension", ["EXT_texture_webp", "KHR_texture_webp"])
def test_webp_textures_give_the_png_colours(tmp_path, extension):
    v, f, uv, _, _ = sphere(6)
    uv = 0.1 + 0.8 * uv

    def build(path, texture):
        b = GlbBuilder()
        material = b.textured_material(texture(b))
        b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3"), "TEXCOORD_0": b.accessor(uv, GL_FLOAT, "VEC2")},
               b.accessor(f.ravel(), GL_UINT, "SCALAR"), material=material)  # fmt: skip
        if texture is not png:
            b.use(extension, required=True)
        return load_mesh(b.save(path))

    def png(b):
        return {"source": b.image(png_bytes(gradient()), "image/png")}

    def webp(b):
        return {"extensions": {extension: {"source": b.image(png_bytes(gradient(), "WEBP", lossless=True), "image/webp")}}}

    want, got = build(tmp_path / "png.glb", png), build(tmp_path / "webp.glb", webp)
    assert got.texture is not None
    np.testing.assert_array_equal(got.texture, want.texture)
    assert np.abs(got.vertex_rgba() - want.vertex_rgba()).max() <= 1e-6


def test_gpu_instancing_places_one_copy_per_instance(tmp_path):
    v, f, _, _, _ = sphere(4)
    b = GlbBuilder()
    node = b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3")}, b.accessor(f.ravel(), GL_UINT, "SCALAR"),
                  node={"translation": [0.0, 5.0, 0.0]})  # fmt: skip
    t = np.array([[0, 0, 0], [3, 0, 0]], np.float32)
    q = np.array([[0, 0, 0, 1], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]], np.float32)  # 90° about +Z
    s = np.array([[1, 1, 1], [0.5, 0.5, 0.5]], np.float32)
    b.doc["nodes"][node]["extensions"] = {"EXT_mesh_gpu_instancing": {"attributes": {
        "TRANSLATION": b.accessor(t, GL_FLOAT, "VEC3"), "ROTATION": b.accessor(q, GL_FLOAT, "VEC4"),
        "SCALE": b.accessor(s, GL_FLOAT, "VEC3")}}}  # fmt: skip
    b.use("EXT_mesh_gpu_instancing", required=True)
    mesh = load_mesh(b.save(tmp_path / "instanced.glb"))
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    v = v[np.unique(f)]  # a3d drops vertices no face uses
    expected = np.concatenate([v + [0, 5, 0], (0.5 * v) @ rz.T + [3, 5, 0]])
    assert mesh.num_faces == 2 * len(f)
    np.testing.assert_allclose(points(mesh.vertices), points(expected), atol=1e-5)


def test_optional_extensions_that_change_nothing_a3d_reads_are_ignored(tmp_path):
    v, f, uv, _, _ = sphere(4)
    b = GlbBuilder()
    material = textured(b)
    b.doc["materials"][material]["extensions"] = {"KHR_materials_clearcoat": {"clearcoatFactor": 1.0},
                                                  "KHR_materials_emissive_strength": {"emissiveStrength": 5.0}}  # fmt: skip
    b.doc["materials"].append({"pbrMetallicRoughness": {"baseColorFactor": [1, 0, 0, 1]}})
    b.doc["extensions"] = {"KHR_materials_variants": {"variants": [{"name": "red"}]}}
    b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3"), "TEXCOORD_0": b.accessor(uv, GL_FLOAT, "VEC2")},
           b.accessor(f.ravel(), GL_UINT, "SCALAR"), material=material,
           extensions={"KHR_materials_variants": {"mappings": [{"material": 1, "variants": [0]}]}})  # fmt: skip
    for ext in ("KHR_materials_clearcoat", "KHR_materials_emissive_strength", "KHR_materials_variants", "EXT_someone_elses"):
        b.use(ext)
    mesh = load_mesh(b.save(tmp_path / "extras.glb"))
    assert mesh.texture is not None and not np.allclose(mesh.vertex_rgba()[:, :3], [1, 0, 0])  # default material


def simple_glb(path, edit=None):
    v, f, _, _, _ = sphere(4)
    b = GlbBuilder()
    b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3")}, b.accessor(f.ravel(), GL_UINT, "SCALAR"))
    if edit:
        edit(b)
    return b.save(path)


@pytest.mark.parametrize(
    "extension, advice",
    [
        ("EXT_made_up", "without EXT_made_up"),
        ("EXT_meshopt_compression", "gltf-transform/cli copy"),
        ("KHR_meshopt_compression", "gltf-transform/cli copy"),
        ("KHR_texture_basisu", "ktxdecompress"),
    ],
)
def test_required_extensions_a3d_cannot_read_are_refused_before_any_work(tmp_path, extension, advice):
    path = simple_glb(tmp_path / "model.glb", lambda b: b.use(extension, required=True))
    run = tmp_path / "RUN"
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(run), *FAST])
    assert result.exit_code == 2
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert extension in error
    assert advice in result.stderr and "hint:" in result.stderr
    assert not run.exists()


def test_a_base_colour_texture_stored_only_as_ktx2_is_refused(tmp_path):
    """Optional KHR_texture_basisu without a PNG/JPEG fallback: reading on would drop the texture silently."""

    def ktx_only(b):
        material = b.textured_material({"extensions": {"KHR_texture_basisu": {"source": b.image(b"\xabKTX 20\xbb", "image/ktx2")}}})
        b.doc["meshes"][0]["primitives"][0]["material"] = material
        b.use("KHR_texture_basisu")

    with pytest.raises(InputError, match="KHR_texture_basisu") as info:
        load_mesh(simple_glb(tmp_path / "ktx.glb", ktx_only))
    assert "ktxdecompress" in info.value.hint


def test_a_ktx2_texture_with_a_png_fallback_reads_the_png(tmp_path):
    def with_fallback(b):
        png = b.image(png_bytes(gradient()), "image/png")
        ktx = b.image(b"\xabKTX 20\xbb", "image/ktx2")
        material = b.textured_material({"source": png, "extensions": {"KHR_texture_basisu": {"source": ktx}}})
        prim = b.doc["meshes"][0]["primitives"][0]
        prim["material"] = material
        prim["attributes"]["TEXCOORD_0"] = b.accessor(np.full((len(sphere(4)[0]), 2), 0.5, np.float32), GL_FLOAT, "VEC2")
        b.use("KHR_texture_basisu")

    mesh = load_mesh(simple_glb(tmp_path / "fallback.glb", with_fallback))
    np.testing.assert_array_equal(mesh.texture[..., :3], gradient())


def test_draco_without_its_decoder_is_refused_with_the_install_hint(tmp_path, monkeypatch):
    path = draco_sphere(tmp_path / "draco.glb", *sphere(4))
    monkeypatch.setitem(sys.modules, "DracoPy", None)  # import DracoPy now raises ImportError
    run = tmp_path / "RUN"
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(run), *FAST])
    assert result.exit_code == 2
    assert "KHR_draco_mesh_compression" in result.stderr and "pip install DracoPy" in result.stderr
    assert not run.exists()


def test_decoded_sizes_are_bounded_before_anything_is_allocated(tmp_path):
    from a3d_cli.mesh.gltf_accessors import MAX_ACCESSOR_COUNT, MAX_SCENE_VERTICES

    # a Draco primitive that declares a billion vertices: refused before DracoPy runs
    v, f, uv, n, c = sphere(4)
    path = draco_sphere(tmp_path / "bomb.glb", v, f, uv, n, c, count=10**9)
    with pytest.raises(InputError, match="more than a3d decodes"):
        load_mesh(path)
    # an accessor without data (zeros a loader would allocate) and a huge count
    def huge(b):
        b.doc["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = b.accessor(None, GL_FLOAT, "VEC3", count=MAX_ACCESSOR_COUNT + 1)

    with pytest.raises(InputError, match="more than a3d decodes"):
        load_mesh(simple_glb(tmp_path / "zeros.glb", huge))
    # many instances of a small mesh
    def instances(b):
        b.doc["nodes"][0]["extensions"] = {"EXT_mesh_gpu_instancing": {"attributes": {
            "TRANSLATION": b.accessor(None, GL_FLOAT, "VEC3", count=MAX_SCENE_VERTICES // 10)}}}  # fmt: skip

    with pytest.raises(InputError, match="vertices, more than a3d decodes"):
        load_mesh(simple_glb(tmp_path / "instances.glb", instances))
    # and through prepare: exit 2, no run folder left
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(tmp_path / "RUN"), *FAST])
    assert result.exit_code == 2 and "more than a3d decodes" in result.stderr
    assert not (tmp_path / "RUN").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_a_draco_stream_holding_more_than_its_accessors_declare_is_stopped_by_the_memory_cap(tmp_path, monkeypatch):
    """Draco decodes in a child process whose address space is capped from the declared counts. With the
    fixed allowance made small, a stream of ~90k vertices decodes when its accessors declare them, and is
    stopped (one error, nothing written) when they declare 3 vertices and 3 indices."""
    from a3d_cli.mesh import draco_child

    monkeypatch.setattr(draco_child, "BASE_BYTES", 4 << 20)
    v, f, uv, n, c = sphere(300)
    honest = load_mesh(draco_sphere(tmp_path / "honest.glb", v, f, uv, n, c))
    assert honest.num_faces == len(f)
    lying = draco_sphere(tmp_path / "lying.glb", v, f, uv, n, c, count=3, index_count=3)
    result = runner.invoke(a3d_app("prepare", prepare_command), ["prepare", str(lying), "-o", str(tmp_path / "RUN"), *FAST])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "MiB its declared sizes allow" in errors[0], result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "RUN").exists()


def test_optional_meshopt_reads_its_fallback_and_refuses_without_one(tmp_path):
    """EXT_meshopt_compression only used: the bufferView's own (fallback) data is the geometry; a fallback
    buffer without data cannot be read without the decoder and is refused by name."""
    v, f, _, _, _ = sphere(4)

    def meshopt(with_data):
        def edit(b):
            view = b.doc["accessors"][0]["bufferView"]
            if not with_data:
                b.doc["buffers"].append({"byteLength": b.doc["bufferViews"][view]["byteLength"], "extensions": {"EXT_meshopt_compression": {"fallback": True}}})
                b.doc["bufferViews"][view]["buffer"] = 1
            b.doc["bufferViews"][view]["extensions"] = {"EXT_meshopt_compression": {"buffer": 0, "byteLength": 4, "count": 1, "byteStride": 12, "mode": "ATTRIBUTES"}}
            b.use("EXT_meshopt_compression")

        return edit

    mesh = load_mesh(simple_glb(tmp_path / "fallback.glb", meshopt(True)))
    np.testing.assert_allclose(points(mesh.vertices), points(v[np.unique(f)]), atol=1e-6)
    with pytest.raises(InputError, match="EXT_meshopt_compression") as info:
        load_mesh(simple_glb(tmp_path / "no_fallback.glb", meshopt(False)))
    assert "gltf-transform/cli copy" in info.value.hint


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["materials"][0]["pbrMetallicRoughness"].update(baseColorTexture=True),
        lambda d: d["meshes"][0]["primitives"][0]["attributes"].update(POSITION=True),  # bool is not an index
        lambda d: d["meshes"][0]["primitives"][0]["extensions"]["KHR_draco_mesh_compression"].update(attributes=[1, 2]),
        lambda d: d["nodes"].append(7),
        lambda d: d["accessors"][2].update(componentType={"a": 1}),
        lambda d: d.update(textures=12),
    ],
)
def test_glTF_json_of_the_wrong_shape_is_one_input_error(tmp_path, edit):
    from a3d_cli.mesh.gltf_accessors import parse_gltf

    path = draco_sphere(tmp_path / "ok.glb", *sphere(3))
    doc, binary = parse_gltf(path.read_bytes(), path.name)
    edit(doc)
    b = GlbBuilder()
    b.doc, b.blob = doc, bytearray(binary)
    with pytest.raises(InputError):
        load_mesh(b.save(tmp_path / "bad.glb"))


def test_gltfpack_style_uvs_on_the_texture_edge_stay_there(tmp_path):
    """gltfpack stores 12-bit UVs as normalized uint16 and scales them back with KHR_texture_transform
    (4095 / 65535 · 16.003664 = 1.0000001): u = 1 must read the right edge, not wrap to the left one."""
    from helpers import two_colour_texture

    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    f = np.array([0, 1, 2, 0, 2, 3], np.uint32)
    edge_uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)

    def build(path, uv_accessor, **info):
        b = GlbBuilder()
        material = b.textured_material({"source": b.image(png_bytes(two_colour_texture()), "image/png")}, **info)
        b.mesh({"POSITION": b.accessor(v, GL_FLOAT, "VEC3"), "TEXCOORD_0": uv_accessor(b)}, b.accessor(f, GL_UINT, "SCALAR"),
               material=material)  # fmt: skip
        b.use("KHR_mesh_quantization")
        return load_mesh(b.save(path))

    want = build(tmp_path / "plain.glb", lambda b: b.accessor(edge_uv, GL_FLOAT, "VEC2"))
    packed = build(tmp_path / "packed.glb", lambda b: b.accessor((edge_uv * 4095).astype(np.uint16), GL_USHORT, "VEC2", normalized=True),
                   extensions={"KHR_texture_transform": {"scale": [16.003664, 16.003664]}})  # fmt: skip
    np.testing.assert_allclose(packed.vertex_rgba(), want.vertex_rgba(), atol=1e-6)
    assert packed.vertex_rgba()[1, 2] > 0.5  # u = 1: the blue right half


def test_plain_core_gltf_reads_exactly_as_trimesh_reads_the_original(tmp_path):
    """The rewrite is transparent for core glTF with normals: interleaved float data, uint16 indices,
    normalized uint8 colours, two primitives with two materials, a matrix node, a TRS node with a child.
    trimesh reading the rewritten file sees the same arrays, colours and node transforms as trimesh reading
    the original. (Primitives without NORMAL are given flat normals: `test_flat_normals.py`.)"""
    import io

    import trimesh

    from a3d_cli.mesh.gltf_core import core_glb
    from a3d_cli.mesh.load import _resolver

    rng = np.random.default_rng(0)
    v, uv = rng.random((30, 3)).astype(np.float32), rng.random((30, 2)).astype(np.float32)
    f, c = rng.integers(0, 30, (40, 3)).astype(np.uint16), rng.integers(0, 256, (30, 4)).astype(np.uint8)
    b = GlbBuilder()
    interleaved = np.zeros(30, dtype=[("p", "<f4", 3), ("t", "<f4", 2)])
    interleaved["p"], interleaved["t"] = v, uv
    view = b.view(interleaved.tobytes())
    b.doc["bufferViews"][view]["byteStride"] = 20
    b.doc["accessors"] += [{"bufferView": view, "componentType": GL_FLOAT, "type": "VEC3", "count": 30, "min": v.min(0).tolist(), "max": v.max(0).tolist()},
                           {"bufferView": view, "byteOffset": 12, "componentType": GL_FLOAT, "type": "VEC2", "count": 30}]  # fmt: skip
    pos, tex = len(b.doc["accessors"]) - 2, len(b.doc["accessors"]) - 1
    colour = b.accessor(c, GL_UBYTE, "VEC4", normalized=True)
    normals = rng.normal(size=(30, 3)).astype(np.float32)
    normal = b.accessor(normals / np.linalg.norm(normals, axis=1, keepdims=True), GL_FLOAT, "VEC3")
    textured(b)
    b.doc["materials"].append({"pbrMetallicRoughness": {"baseColorFactor": [0.2, 0.5, 0.9, 1.0]}})
    b.doc["meshes"].append({"primitives": [
        {"attributes": {"POSITION": pos, "NORMAL": normal, "TEXCOORD_0": tex, "COLOR_0": colour}, "indices": b.accessor(f[:20].ravel(), GL_USHORT, "SCALAR"), "material": 0},
        {"attributes": {"POSITION": pos, "NORMAL": normal, "COLOR_0": colour}, "indices": b.accessor(f[20:].ravel(), GL_USHORT, "SCALAR"), "material": 1}]})  # fmt: skip
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag([1.0, 2.0, 3.0]) @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    matrix[:3, 3] = [1, 2, 3]
    b.doc["nodes"] += [{"mesh": 0, "matrix": matrix.T.ravel().tolist()},
                       {"mesh": 0, "translation": [1, 2, 3], "rotation": [0.1, 0.2, 0.3, 0.927], "scale": [2, 1, 0.5], "children": [2]},
                       {"mesh": 0, "translation": [0, 5, 0]}]  # fmt: skip
    b.doc["scenes"][0]["nodes"] = [0, 1]
    path = b.save(tmp_path / "core.glb")

    def parts(scene):
        out = []
        placed = [(node.split("_")[0], scene.graph[node]) for node in scene.graph.nodes_geometry]  # "<glTF node>_<random>"
        for _, (transform, name) in sorted(placed, key=lambda p: (p[0], p[1][1])):
            g = scene.geometry[name]
            uv_ = getattr(g.visual, "uv", None)
            color = np.asarray(g.visual.vertex_attributes["color"])  # uint8 as stored, or float32 as rewritten
            color = color / np.float32(255) if color.dtype == np.uint8 else color  # normalized: c / 255
            out.append((transform, g.vertices, g.faces, uv_, g.visual.material.baseColorFactor, color))
        return out

    original = parts(trimesh.load_scene(str(path), process=False))
    rewritten = parts(trimesh.load_scene(io.BytesIO(core_glb(path, _resolver(path))), file_type="glb", process=False))
    assert len(original) == len(rewritten) == 6
    for a, b_ in zip(original, rewritten, strict=True):
        for x, y in zip(a, b_, strict=True):
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
