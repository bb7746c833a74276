"""The animated-GLB writer, read back by independent glTF readers (pygltflib, trimesh, Khronos' validator)."""

from __future__ import annotations

import io

import numpy as np
import pygltflib
import pytest
import trimesh
from helpers import khronos_validate, needs_program
from PIL import Image

from a3d_cli.mesh.gltf_animated import MeshMaterial, write_animated_glb
from a3d_cli.mesh.topology import seam_copies, vertex_normals

_NUMPY_TYPES = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def _tiny_mesh(frames: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A bumpy 4×4 grid (32 triangles) bent and twisted over `frames` frames; frame 0 is the rest pose."""
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 4), indexing="ij")
    uvs = np.stack([u.ravel(), v.ravel()], 1)  # [V, 2]
    verts = np.stack([uvs[:, 0] * 2 - 1, uvs[:, 1] * 2 - 1, 0.05 * rng.standard_normal(16)], 1) * 3.0  # [V, 3]
    quads = [(i * 4 + j, (i + 1) * 4 + j, i * 4 + j + 1, (i + 1) * 4 + j + 1) for i in range(3) for j in range(3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (b, d, c))])  # [T, 3]
    out = []
    for k in range(frames):
        ang = 0.3 * k
        rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
        bent = verts @ rot.T + np.array([0.0, 0.0, 0.2 * k]) * verts[:, :1] ** 2
        out.append(bent + 0.01 * k * rng.standard_normal(verts.shape))
    out[0] = verts
    return verts, faces, np.stack(out), uvs


def _png(h: int = 8, w: int = 6) -> bytes:
    img = (np.random.default_rng(1).random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _read(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """Decode one accessor with pygltflib's object model (our own writer's code is not used here)."""
    acc = gltf.accessors[index]
    bv = gltf.bufferViews[acc.bufferView]
    blob = gltf.binary_blob()
    dtype = _NUMPY_TYPES[acc.componentType]
    width = _WIDTH[acc.type]
    start = bv.byteOffset + (acc.byteOffset or 0)
    arr = np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start)
    return arr.reshape(acc.count, width) if width > 1 else arr


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    verts, faces, frames, uvs = _tiny_mesh()
    png = _png()
    path = tmp_path_factory.mktemp("glb") / "animated.glb"
    mat = MeshMaterial(
        base_color_factor=(0.9, 0.8, 0.7, 1.0), roughness_factor=0.6, base_color_texture=png, name="body"
    )
    write_animated_glb(path, verts, faces, frames, uvs=uvs, material=mat, fps=8.0, interpolation="LINEAR", loop=True)
    return path, verts, faces, frames, uvs, png


def test_glb_container_and_accessors(written):
    path, verts, faces, frames, uvs, _ = written
    raw = path.read_bytes()
    assert raw[:4] == b"glTF" and int.from_bytes(raw[8:12], "little") == len(raw)
    gltf = pygltflib.GLTF2().load(str(path))
    prim = gltf.meshes[0].primitives[0]
    pos = prim.attributes.POSITION
    # POSITION and every target POSITION carry min/max equal to the stored data (validators check this).
    for index in [pos] + [t["POSITION"] for t in prim.targets]:
        data = _read(gltf, index)
        acc = gltf.accessors[index]
        assert acc.min == data.min(0).tolist() and acc.max == data.max(0).tolist()
    for bv in gltf.bufferViews:
        assert bv.byteOffset % 4 == 0
    assert gltf.bufferViews[gltf.accessors[pos].bufferView].target == pygltflib.ARRAY_BUFFER
    for t in prim.targets:
        assert gltf.bufferViews[gltf.accessors[t["POSITION"]].bufferView].target == pygltflib.ARRAY_BUFFER
    assert gltf.bufferViews[gltf.accessors[prim.indices].bufferView].target == pygltflib.ELEMENT_ARRAY_BUFFER
    np.testing.assert_array_equal(_read(gltf, prim.indices).reshape(-1, 3), faces)
    np.testing.assert_allclose(_read(gltf, pos), verts, rtol=0, atol=1e-6)
    # base normals are unit length
    np.testing.assert_allclose(np.linalg.norm(_read(gltf, prim.attributes.NORMAL), axis=1), 1.0, atol=1e-5)


def test_every_frame_decodes_to_its_positions(written):
    path, _, faces, frames, _, _ = written
    gltf = pygltflib.GLTF2().load(str(path))
    prim = gltf.meshes[0].primitives[0]
    assert len(prim.targets) == frames.shape[0]
    assert gltf.meshes[0].weights == [1.0] + [0.0] * (frames.shape[0] - 1)
    assert gltf.meshes[0].extras["targetNames"] == [f"frame_{k:04d}" for k in range(frames.shape[0])]
    base = _read(gltf, prim.attributes.POSITION).astype(np.float64)
    base_n = _read(gltf, prim.attributes.NORMAL)
    scale = np.abs(frames).max()
    for k, target in enumerate(prim.targets):
        decoded = base + _read(gltf, target["POSITION"])  # weight 1 on target k, 0 elsewhere
        np.testing.assert_allclose(decoded, frames[k], rtol=0, atol=4e-7 * scale)  # float32 storage
        normals = base_n + _read(gltf, target["NORMAL"])
        np.testing.assert_allclose(normals, vertex_normals(frames[k], faces), atol=1e-5)


def test_animation_plays_one_frame_per_key(written):
    path, _, _, frames, _, _ = written
    f = frames.shape[0]
    gltf = pygltflib.GLTF2().load(str(path))
    (anim,) = gltf.animations
    (channel,) = anim.channels
    assert channel.target.path == "weights" and channel.target.node == 0
    assert gltf.nodes[0].mesh == 0
    sampler = anim.samplers[channel.sampler]
    assert sampler.interpolation == pygltflib.ANIM_LINEAR
    times = _read(gltf, sampler.input)
    np.testing.assert_allclose(times, np.arange(f + 1) / 8.0)  # + the loop key back to frame 0
    acc = gltf.accessors[sampler.input]
    assert acc.min == [0.0] and acc.max == [float(times[-1])]
    weights = _read(gltf, sampler.output).reshape(f + 1, f)
    expected = np.eye(f)[list(range(f)) + [0]]
    np.testing.assert_array_equal(weights, expected)


def test_material_and_texture_are_embedded(written):
    path, _, _, _, _, png = written
    gltf = pygltflib.GLTF2().load(str(path))
    mat = gltf.materials[gltf.meshes[0].primitives[0].material]
    assert mat.name == "body"
    np.testing.assert_allclose(mat.pbrMetallicRoughness.baseColorFactor, [0.9, 0.8, 0.7, 1.0])
    assert mat.pbrMetallicRoughness.roughnessFactor == pytest.approx(0.6)
    tex = gltf.textures[mat.pbrMetallicRoughness.baseColorTexture.index]
    image = gltf.images[tex.source]
    assert image.mimeType == "image/png"
    bv = gltf.bufferViews[image.bufferView]
    assert gltf.binary_blob()[bv.byteOffset : bv.byteOffset + bv.byteLength] == png


def test_trimesh_reads_geometry_uvs_and_texture(written):
    path, verts, faces, _, uvs, png = written
    scene = trimesh.load(path, force="scene", process=False)
    (mesh,) = scene.geometry.values()
    np.testing.assert_allclose(mesh.vertices, verts, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, faces)
    np.testing.assert_allclose(mesh.visual.uv, uvs, atol=1e-6)  # v flipped on write, flipped back by trimesh
    image = mesh.visual.material.baseColorTexture
    assert image is not None and image.size == Image.open(io.BytesIO(png)).size


def test_pygltflib_validator_accepts_it(written):
    from pygltflib.validator import validate

    with pytest.warns(UserWarning):  # pygltflib marks its validator provisional
        validate(pygltflib.GLTF2().load(str(written[0])))


@needs_program("A3D_GLTF_VALIDATOR")
def test_khronos_validator_reports_no_issue(written):
    issues = khronos_validate(written[0])
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_step_without_loop_and_plain_material(tmp_path):
    verts, faces, frames, _ = _tiny_mesh(frames=3)
    path = tmp_path / "a.glb"
    colors = np.random.default_rng(2).random((len(verts), 4)).astype(np.float32)
    write_animated_glb(
        path, verts, faces, frames, colors=colors, fps=4.0, interpolation="STEP", loop=False, morph_normals=False
    )
    gltf = pygltflib.GLTF2().load(str(path))
    prim = gltf.meshes[0].primitives[0]
    np.testing.assert_array_equal(_read(gltf, prim.attributes.COLOR_0), colors)
    assert all(set(t) == {"POSITION"} for t in prim.targets) and prim.attributes.TEXCOORD_0 is None
    assert gltf.textures == [] and gltf.images == []
    sampler = gltf.animations[0].samplers[0]
    assert sampler.interpolation == pygltflib.ANIM_STEP
    np.testing.assert_allclose(_read(gltf, sampler.input), [0.0, 0.25, 0.5])


def test_large_meshes_use_32_bit_indices(tmp_path):
    n = 70_000  # more vertices than a uint16 index can address
    verts = np.random.default_rng(0).random((n, 3))
    faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1)
    path = tmp_path / "big.glb"
    write_animated_glb(path, verts, faces, verts[None], morph_normals=False)
    gltf = pygltflib.GLTF2().load(str(path))
    acc = gltf.accessors[gltf.meshes[0].primitives[0].indices]
    assert acc.componentType == pygltflib.UNSIGNED_INT
    assert int(_read(gltf, gltf.meshes[0].primitives[0].indices).max()) == n - 1


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: {**a, "frames": a["frames"][:, :-1]}, "frames must have shape"),
        (lambda a: {**a, "uvs": a["uvs"][:-1]}, "uvs must have shape"),
        (lambda a: {**a, "uvs": None}, "needs per-vertex uvs"),
        (lambda a: {**a, "faces": a["faces"] + 100}, "outside"),
        (lambda a: {**a, "fps": 0.0}, "fps must be > 0"),
        (lambda a: {**a, "material": MeshMaterial(base_color_texture=b"GIF89a....")}, "PNG or JPEG"),
        (lambda a: {**a, "frames": a["frames"] * np.nan}, "finite"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(tmp_path, change, message):
    verts, faces, frames, uvs = _tiny_mesh(frames=2)
    args = {"vertices": verts, "faces": faces, "frames": frames, "uvs": uvs, "fps": 8.0,
            "material": MeshMaterial(base_color_texture=_png())}  # fmt: skip
    args = change(args)
    path = tmp_path / "x.glb"
    with pytest.raises(ValueError, match=message):
        write_animated_glb(path, args.pop("vertices"), args.pop("faces"), args.pop("frames"), **args)
    assert list(tmp_path.iterdir()) == []


def _split_sphere(scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An icosphere split at every face (UV seams everywhere, as textured assets come), its radial normals."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    corners = sphere.faces.reshape(-1)  # [3T]
    verts = sphere.vertices[corners] * scale  # [3T, 3]
    return verts, np.arange(len(corners)).reshape(-1, 3), sphere.vertices[corners]


@pytest.mark.parametrize("scale", [1.0, 1e-3, 250.0])  # the asset's own units
def test_seam_copies_share_one_smooth_normal_in_every_frame(tmp_path, scale):
    # Viewers (three.js, Blender) shade with NORMAL as written: per-island normals crease at every UV seam.
    verts, faces, radial = _split_sphere(scale)
    frames = np.stack([verts, verts * np.array([1.0, 1.5, 1.0])])  # rest, then stretched along y
    write_animated_glb(tmp_path / "a.glb", verts, faces, frames, fps=4.0)
    gltf = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    prim = gltf.meshes[0].primitives[0]
    base_n = _read(gltf, prim.attributes.NORMAL)
    np.testing.assert_allclose(base_n, radial, atol=0.05)  # smooth: near the sphere's own (faces' are ≥ 0.1 off)
    stretched = base_n + _read(gltf, prim.targets[1]["NORMAL"])
    expected = radial * np.array([1.0, 1 / 1.5, 1.0])  # an ellipsoid's normals
    np.testing.assert_allclose(stretched, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=0.06)


def test_only_true_copies_share_a_normal_in_a_tiny_asset():
    # an asset in metres 1 mm across: two distinct corners 0.1 µm apart (1e-4 of its size) keep their own
    # normals, while the exact copy (a seam) shares one
    mm = 1e-3
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1e-4, 0, 0], [1, 0, 1], [0, 1, 1], [0, 1, 0]]) * mm
    faces = np.array([[0, 1, 2], [3, 4, 5], [1, 4, 6]])
    copies = seam_copies(verts)
    assert copies.tolist() == [0, 1, 2, 3, 4, 5, 2]
    n = vertex_normals(verts, faces, welded=copies)
    assert np.abs(n[0] - n[3]).max() > 0.1  # distinct positions, different faces: different normals
    np.testing.assert_allclose(n[2], n[6], atol=1e-12)  # vertex 6 is a seam copy of vertex 2
    assert np.abs(n[2] - vertex_normals(verts, faces)[2]).max() > 0.1  # ... summed over both copies' faces
