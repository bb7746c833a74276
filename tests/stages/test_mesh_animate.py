"""`a3d mesh-animate`: the GLB and vertex cache equal the motion at the mesh vertices, in the original frame."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import torch
import trimesh
from helpers import HOSTILE_NORMALIZATIONS, damage_normalization, moving_motion_field
from PIL import Image, ImageFile

from a3d_cli.errors import InputError, OptionError, RunFolderError
from a3d_cli.gaussians.motion_io import save_motion
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.mesh.binding import MeshBinding
from a3d_cli.mesh.normalize import fit_normalization
from a3d_cli.mesh.rigidity import arap_project
from a3d_cli.mesh.store import save_processed_mesh
from a3d_cli.mesh.surface import SurfaceMesh
from a3d_cli.mesh.to_gaussians import mesh_to_gaussians
from a3d_cli.stages import mesh_animate
from a3d_cli.stages.base import Runtime
from a3d_cli.stages.mesh_animate import MeshAnimateOptions

FRAMES = 4


def _original_mesh(texture: np.ndarray | None = None) -> SurfaceMesh:
    """A textured icosphere in a Z-up, off-centre, 5x frame, split at every face (UV seams everywhere); its
    texture a random 8² one unless `texture` is given."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    corners = sphere.faces.reshape(-1)  # [3T]
    vertices = sphere.vertices[corners] * np.array([5.0, 4.0, 6.0]) + np.array([10.0, -3.0, 2.0])  # [V, 3]
    faces = np.arange(len(corners)).reshape(-1, 3)
    rng = np.random.default_rng(0)
    if texture is None:
        texture = (rng.random((8, 8, 4)) * 255).astype(np.uint8)
        texture[..., 3] = 255
    return SurfaceMesh(
        vertices=vertices,
        faces=faces,
        vertex_colors=np.ones((len(vertices), 4), np.float32),
        uvs=rng.random((len(vertices), 2)),
        texture=texture,
    )


def make_mesh_run(
    run: Path, texture: np.ndarray | None = None, alpha_mode: str = "OPAQUE", mag_filter: int = 9729
) -> dict:
    """A run folder as `prepare` (mesh input) and `reconstruct` leave it, built from the domain functions
    (`texture`: the processed mesh's atlas, `_original_mesh`'s by default; `alpha_mode`: its materials';
    `mag_filter`: how it is read, glTF's LINEAR by default)."""
    original = _original_mesh(texture)
    norm = fit_normalization(original.vertices, up="+z", front="-y")
    mesh = SurfaceMesh(
        norm.apply(original.vertices), original.faces, original.vertex_colors, original.uvs, original.texture,
        alpha_mode, mag_filter=mag_filter,
    )
    static, binding = mesh_to_gaussians(mesh, target_splats=200, seed=0)
    for sub in ("static", "source", "motion"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    write_ply(run / "static" / "gaussians.ply", static)
    binding.save(run / "static" / "binding.safetensors")
    save_processed_mesh(run / "source" / "mesh.glb", mesh)
    (run / "source" / "normalization.json").write_text(norm.dumps())
    static = read_ply(run / "static" / "gaussians.ply")
    field = moving_motion_field(FRAMES)
    save_motion(run / "motion" / "coarse.safetensors", field, static)
    return {"original": original, "norm": norm, "static": static, "binding": binding, "field": field}


@pytest.fixture
def mesh_run(run_dir):
    return run_dir, make_mesh_run(run_dir)


def _expected_frames(ctx: dict) -> np.ndarray:
    """[F, V, 3] motion at the vertex splats, mapped to the original frame (independently of the stage)."""
    b: MeshBinding = ctx["binding"]
    means = torch.stack([ctx["field"].deform(ctx["static"], k).means for k in range(FRAMES)]).double().numpy()
    return ctx["norm"].invert(means[:, b.vertex_splat])


def _accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    bv = gltf.bufferViews[acc.bufferView]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc.type]
    arr = np.frombuffer(gltf.binary_blob(), np.float32, acc.count * width, bv.byteOffset + (acc.byteOffset or 0))
    return arr.reshape(acc.count, width)


def test_glb_frames_equal_the_motion_in_the_original_frame(mesh_run):
    run, ctx = mesh_run
    result = mesh_animate.run(run, MeshAnimateOptions(fps=8.0), Runtime())  # the motion's own rate: its frames
    expected = _expected_frames(ctx)
    assert np.abs(expected[2] - expected[0]).max() > 1e-2  # the motion really moves the mesh
    gltf = pygltflib.GLTF2().load(str(run / "export" / "animated.glb"))
    prim = gltf.meshes[0].primitives[0]
    assert len(prim.targets) == FRAMES
    base = _accessor(gltf, prim.attributes.POSITION).astype(np.float64)
    # the base mesh is the user's mesh where the user had it
    np.testing.assert_allclose(base, ctx["original"].vertices, atol=1e-4)
    scale = np.abs(expected).max()
    for k, target in enumerate(prim.targets):
        np.testing.assert_allclose(base + _accessor(gltf, target["POSITION"]), expected[k], atol=2e-6 * scale)
    (anim,) = gltf.animations
    assert anim.channels[0].target.path == "weights" and anim.samplers[0].interpolation == "LINEAR"
    np.testing.assert_allclose(_accessor(gltf, anim.samplers[0].input)[:, 0], np.arange(FRAMES) / 8.0)
    # the texture atlas travels with it
    mat = gltf.materials[prim.material]
    image = gltf.images[gltf.textures[mat.pbrMetallicRoughness.baseColorTexture.index].source]
    bv = gltf.bufferViews[image.bufferView]
    png = Image.open(io.BytesIO(gltf.binary_blob()[bv.byteOffset : bv.byteOffset + bv.byteLength]))
    np.testing.assert_array_equal(np.asarray(png.convert("RGBA")), ctx["original"].texture)
    assert result.metrics["frames"] == FRAMES and result.metrics["max_displacement_pct_radius"] > 0


def _animated_texture(path: Path) -> np.ndarray:
    """[H, W, 4] the base-colour texture of an animated GLB."""
    gltf = pygltflib.GLTF2().load(str(path))
    material = gltf.materials[gltf.meshes[0].primitives[0].material]
    image = gltf.images[gltf.textures[material.pbrMetallicRoughness.baseColorTexture.index].source]
    bv = gltf.bufferViews[image.bufferView]
    png = Image.open(io.BytesIO(gltf.binary_blob()[bv.byteOffset : bv.byteOffset + bv.byteLength]))
    return np.asarray(png.convert("RGBA"))


def test_an_atlas_wider_than_4096_px_reaches_the_animated_glb_at_its_size(run_dir):
    """`prepare` writes an atlas wider than any one texture when it packs several (4103 × 4112 for two 4096 ×
    2048 textures); the animated GLB carries it texel for texel, not scaled to 4096 px a side on the way."""
    atlas = np.random.default_rng(3).integers(0, 256, (6, 6000, 4), dtype=np.uint8)
    atlas[..., 3] = 255
    make_mesh_run(run_dir, atlas)
    mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0), Runtime())
    np.testing.assert_array_equal(_animated_texture(run_dir / "export" / "animated.glb"), atlas)


def _first_image(path: Path) -> bytes:
    """The bytes of a GLB's first image."""
    gltf = pygltflib.GLTF2().load(str(path))
    bv = gltf.bufferViews[gltf.images[0].bufferView]
    return gltf.binary_blob()[bv.byteOffset : bv.byteOffset + bv.byteLength]


@pytest.mark.parametrize("alpha_mode", ["OPAQUE", "BLEND"])
def test_the_atlas_is_copied_as_prepare_wrote_it_never_encoded_again(run_dir, monkeypatch, alpha_mode):
    """`export/animated.glb` carries `source/mesh.glb`'s atlas PNG byte for byte, and `mesh-animate` encodes no
    texture: an opaque atlas is not decoded at all, a see-through one once (its alpha levels), where decoding it
    and encoding it again held several times its texels in memory at `prepare`'s largest atlas."""
    atlas = np.random.default_rng(6).integers(0, 256, (40, 48, 4), dtype=np.uint8)
    atlas[..., 3] = 255 if alpha_mode == "OPAQUE" else np.arange(48)[None, :] * 5
    make_mesh_run(run_dir, atlas, alpha_mode)
    decoded, encoded = [], []
    load, save = ImageFile.ImageFile.load, Image.Image.save
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: (decoded.append(self.size) if self.tile else None, load(self))[1]
    )
    monkeypatch.setattr(Image.Image, "save", lambda self, *a, **k: (encoded.append(self.size), save(self, *a, **k))[1])
    mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0), Runtime())
    assert _first_image(run_dir / "export" / "animated.glb") == _first_image(run_dir / "source" / "mesh.glb")
    assert (48, 40) not in encoded
    assert decoded.count((48, 40)) == (0 if alpha_mode == "OPAQUE" else 1)
    np.testing.assert_array_equal(_animated_texture(run_dir / "export" / "animated.glb"), atlas)


# -- --max-texture-size ------------------------------------------------------------------------------------


def _sampler(path: Path) -> dict:
    gltf = pygltflib.GLTF2().load(str(path))
    return {"mag": gltf.samplers[0].magFilter, "min": gltf.samplers[0].minFilter}


def test_max_texture_size_reduces_a_longer_texture_keeping_its_aspect(run_dir):
    """A 40 × 96 atlas under `--max-texture-size 48` is written 20 × 48 (its aspect kept), each texel the mean of
    the 2 × 2 texels it covers in linear light (sRGB decoded and encoded by the standard's formulas here)."""
    from helpers import srgb_decode, srgb_encode

    atlas = np.random.default_rng(7).integers(0, 256, (40, 96, 4), dtype=np.uint8)
    atlas[..., 3] = 255
    make_mesh_run(run_dir, atlas)
    mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=48), Runtime())
    written = _animated_texture(run_dir / "export" / "animated.glb")
    assert written.shape == (20, 48, 4)
    blocks = srgb_decode(atlas[..., :3].astype(np.float64)).reshape(20, 2, 48, 2, 3).mean(axis=(1, 3))
    assert np.abs(written[..., :3].astype(int) - srgb_encode(blocks)).max() <= 1
    assert (written[..., 3] == 255).all()


def test_max_texture_size_keeps_a_nearest_texture_on_its_texel_grid(run_dir):
    """Pixel art stored 4× enlarged (a 24 × 16 image as 96 × 64 texels, read NEAREST) under a limit of 32 px: reduced
    by a power of two (¼, the first within 32; a third would blur the art's texels together), so every texel is
    exactly one of the art's, and the animated GLB still names NEAREST filtering."""
    art = np.random.default_rng(8).integers(0, 256, (16, 24, 4), dtype=np.uint8)
    art[..., 3] = 255
    make_mesh_run(run_dir, np.kron(art, np.ones((4, 4, 1), np.uint8)), mag_filter=9728)
    mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=32), Runtime())
    np.testing.assert_array_equal(_animated_texture(run_dir / "export" / "animated.glb"), art)
    assert _sampler(run_dir / "export" / "animated.glb") == {"mag": 9728, "min": 9984}


def test_a_texture_within_the_limit_is_copied_as_stored(run_dir):
    """A limit the atlas is within changes nothing: the animated GLB carries the processed mesh's PNG bytes."""
    atlas = np.random.default_rng(9).integers(0, 256, (40, 48, 4), dtype=np.uint8)
    atlas[..., 3] = 255
    make_mesh_run(run_dir, atlas)
    mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=48), Runtime())
    assert _first_image(run_dir / "export" / "animated.glb") == _first_image(run_dir / "source" / "mesh.glb")


def test_a_see_through_texture_keeps_its_alpha_when_reduced(run_dir):
    """A BLEND atlas reduced keeps alpha (its mean over each block) and the BLEND material."""
    atlas = np.random.default_rng(10).integers(0, 256, (40, 96, 4), dtype=np.uint8)
    atlas[..., 3] = np.where(np.arange(96)[None, :] < 48, 255, 0)
    make_mesh_run(run_dir, atlas, "BLEND")
    mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=48), Runtime())
    written = _animated_texture(run_dir / "export" / "animated.glb")
    assert written.shape == (20, 48, 4)
    np.testing.assert_array_equal(written[..., 3], np.where(np.arange(48)[None, :] < 24, 255, 0).repeat(20, 0))
    gltf = pygltflib.GLTF2().load(str(run_dir / "export" / "animated.glb"))
    assert gltf.materials[0].alphaMode == "BLEND"


def test_changing_the_texture_limit_runs_mesh_animate_again(run_dir):
    """The limit is one of the stage's options: the same limit again is up to date, another one runs it again."""
    make_mesh_run(run_dir)
    assert not mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0), Runtime()).skipped
    assert mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0), Runtime()).skipped
    assert not mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=64), Runtime()).skipped
    assert mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=64), Runtime()).skipped
    assert not mesh_animate.run(run_dir, MeshAnimateOptions(fps=8.0, max_texture_size=32), Runtime()).skipped


def test_run_folders_made_before_the_texture_limit_existed_stay_up_to_date():
    """The limit's default writes what mesh-animate wrote before the option existed, so at its default it is not
    in the options digest: the digest is the one an a3d without the option recorded (its params less that key),
    and a run folder it made is not run again; a limit set is digested like any option."""
    from a3d_cli.io.manifest import digest_json, to_jsonable
    from a3d_cli.stages.base import params_digest

    before = {k: v for k, v in to_jsonable(MeshAnimateOptions()).items() if k != "max_texture_size"}
    assert params_digest(MeshAnimateOptions(), 7) == digest_json({"params": before, "seed": 7})
    assert params_digest(MeshAnimateOptions(max_texture_size=64), 7) != params_digest(MeshAnimateOptions(), 7)


@pytest.mark.parametrize("value", [0, -4, 31, 16])
def test_a_texture_limit_below_32_is_refused(value):
    with pytest.raises(OptionError, match="--max-texture-size must be a whole number of at least 32"):
        MeshAnimateOptions(max_texture_size=value)


def test_limits_of_32_and_up_are_taken():
    for value in (32, 2048, 4096, 100000):
        assert MeshAnimateOptions(max_texture_size=value).max_texture_size == value


@pytest.mark.parametrize(("value", "says"), [("8", "at least 32"), ("-1", "at least 32"), ("abc", "valid integer"),
                                           ("2048.5", "valid integer")])  # fmt: skip
def test_cli_refuses_a_bad_texture_limit_with_one_error(mesh_run, value, says):
    from helpers import one_command_app
    from typer.testing import CliRunner

    from a3d_cli.commands.mesh_animate import mesh_animate as command

    run, _ = mesh_run
    args = ["mesh-animate", str(run), "--max-texture-size", value]
    result = CliRunner().invoke(one_command_app("mesh-animate", command), args)
    assert result.exit_code == 2, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0] and "--max-texture-size" in errors[0]
    assert "Traceback" not in result.stderr and not (run / "export").exists()


def test_vertex_cache_matches_and_seams_stay_closed(mesh_run):
    run, ctx = mesh_run
    mesh_animate.run(run, MeshAnimateOptions(interpolation="step", normals=False, fps=8.0), Runtime())
    cache = np.load(run / "export" / "vertices.npy")
    assert cache.dtype == np.float32 and cache.shape == (FRAMES, len(ctx["original"].vertices), 3)
    np.testing.assert_allclose(cache, _expected_frames(ctx), atol=1e-4)
    # copies of one welded vertex (UV-seam splits) move together in every frame
    b = ctx["binding"]
    first = {}
    for v, s in enumerate(b.vertex_splat):
        first.setdefault(int(s), v)
        np.testing.assert_array_equal(cache[:, v], cache[:, first[int(s)]])
    scene = trimesh.load(run / "export" / "animated.glb", force="scene", process=False)
    (tm,) = scene.geometry.values()
    assert len(tm.vertices) == cache.shape[1] and tm.visual.material.baseColorTexture is not None
    gltf = pygltflib.GLTF2().load(str(run / "export" / "animated.glb"))
    assert gltf.animations[0].samplers[0].interpolation == "STEP"
    np.testing.assert_allclose(_accessor(gltf, gltf.animations[0].samplers[0].input)[1, 0], 1 / 8.0)


def test_gaussian_runs_are_sent_to_export(run_dir):
    from helpers import make_gaussian_run

    make_gaussian_run(run_dir)
    with pytest.raises(InputError, match="prepared from 3D Gaussians") as info:
        mesh_animate.run(run_dir, MeshAnimateOptions(), Runtime())
    assert info.value.exit_code == 2 and "a3d export" in info.value.hint
    assert not (run_dir / "export").exists()


def test_missing_motion_names_reconstruct(mesh_run):
    run, _ = mesh_run
    (run / "motion" / "coarse.safetensors").unlink()
    with pytest.raises(RunFolderError) as info:
        mesh_animate.run(run, MeshAnimateOptions(), Runtime())
    assert "a3d reconstruct" in info.value.hint


def test_motion_of_another_static_model_is_refused_and_outputs_kept(mesh_run):
    run, ctx = mesh_run
    mesh_animate.run(run, MeshAnimateOptions(), Runtime())
    before = {p.name: p.read_bytes() for p in (run / "export").iterdir()}
    other = ctx["static"].with_(means=ctx["static"].means + 0.01)
    save_motion(run / "motion" / "refined.safetensors", moving_motion_field(FRAMES, 3), other)  # fitted on other splats
    with pytest.raises(InputError, match="different static model"):
        mesh_animate.run(run, MeshAnimateOptions(), Runtime())
    assert {p.name: p.read_bytes() for p in (run / "export").iterdir()} == before


def test_options_are_validated():
    with pytest.raises(OptionError):
        MeshAnimateOptions(fps=0)
    with pytest.raises(OptionError):
        MeshAnimateOptions(interpolation="cubic")  # type: ignore[arg-type]
    with pytest.raises(OptionError):
        MeshAnimateOptions(rigidity=-1)


# -- the rigidity clean-up ------------------------------------------------------------------------------


def _grid(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    pts = np.stack([u.ravel(), v.ravel(), 0.1 * np.sin(3 * u.ravel())], 1)  # [W, 3]
    idx = np.arange(n * n).reshape(n, n)
    edges = np.concatenate([np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1), np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                            np.stack([idx[:-1, :-1].ravel(), idx[1:, 1:].ravel()], 1)])  # fmt: skip
    return pts, edges


def test_arap_projection_keeps_rigid_motion_and_removes_noise():
    rest, edges = _grid()
    angle = 0.8
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    rigid = rest @ rot.T + np.array([0.3, -0.2, 0.5])
    np.testing.assert_allclose(arap_project(rest, rigid, edges, weight=4.0), rigid, atol=1e-6)
    noisy = rigid + 0.03 * np.random.default_rng(0).standard_normal(rigid.shape)
    cleaned = arap_project(rest, noisy, edges, weight=4.0)
    assert np.linalg.norm(cleaned - rigid) < 0.5 * np.linalg.norm(noisy - rigid)
    np.testing.assert_array_equal(arap_project(rest, noisy, edges, weight=0.0), noisy)


def test_rigidity_option_changes_only_moving_frames(mesh_run):
    run, ctx = mesh_run
    mesh_animate.run(run, MeshAnimateOptions(rigidity=4.0), Runtime())
    cache = np.load(run / "export" / "vertices.npy")
    expected = _expected_frames(ctx)
    np.testing.assert_allclose(cache[0], expected[0], atol=1e-4)  # frame 0 is the rest pose
    assert np.isfinite(cache).all() and not np.allclose(cache[2], expected[2], atol=1e-4)


def test_cli_refuses_gaussian_run_with_exit_2(run_dir):
    from helpers import make_gaussian_run, one_command_app
    from typer.testing import CliRunner

    from a3d_cli.commands.mesh_animate import mesh_animate as command

    make_gaussian_run(run_dir)
    result = CliRunner().invoke(one_command_app("mesh-animate", command), ["mesh-animate", str(run_dir)])
    assert result.exit_code == 2 and "a3d export" in result.stderr


# -- frame rate, duration, loops, skin ------------------------------------------------------------------


def test_default_rate_samples_between_the_training_frames(mesh_run):
    run, ctx = mesh_run
    result = mesh_animate.run(run, MeshAnimateOptions(), Runtime())  # 24 fps = 3 keys per motion frame
    cache = np.load(run / "export" / "vertices.npy")
    assert cache.shape[0] == 3 * (FRAMES - 1) + 1 and result.metrics["fps"] == pytest.approx(24.0)
    np.testing.assert_allclose(cache[::3], _expected_frames(ctx), atol=1e-4)  # the training times: the frames
    assert not np.allclose(cache[1], cache[0], atol=1e-5) and not np.allclose(cache[1], cache[3], atol=1e-5)
    gltf = pygltflib.GLTF2().load(str(run / "export" / "animated.glb"))
    times = _accessor(gltf, gltf.animations[0].samplers[0].input)[:, 0]
    np.testing.assert_allclose(times, np.arange(10) / 24.0, rtol=1e-6)


def test_duration_stretches_the_clip(mesh_run):
    run, _ = mesh_run
    result = mesh_animate.run(run, MeshAnimateOptions(duration=0.75, normals=False), Runtime())
    assert np.load(run / "export" / "vertices.npy").shape[0] == 19  # 0.75 s at 24 fps, both ends
    assert result.metrics["duration_s"] == pytest.approx(0.75)


def test_loop_closes_the_seam(mesh_run):
    run, _ = mesh_run
    off = mesh_animate.run(run, MeshAnimateOptions(normals=False), Runtime()).metrics["seam"]
    looped = mesh_animate.run(run, MeshAnimateOptions(normals=False, loop=True), Runtime(force=True))
    seam = looped.metrics["seam"]
    assert off["position_jump_mean_pct"] > 0.5 and seam["position_jump_mean_pct"] == 0.0
    assert seam["velocity_jump_mean_pct_per_s"] < off["velocity_jump_mean_pct_per_s"]
    cache = np.load(run / "export" / "vertices.npy")
    assert cache.shape[0] == 3 * (FRAMES - 1)  # the wrap key is not repeated in the cache
    gltf = pygltflib.GLTF2().load(str(run / "export" / "animated.glb"))
    times = _accessor(gltf, gltf.animations[0].samplers[0].input)[:, 0]
    assert len(times) == cache.shape[0] + 1  # ... but closes the GLB's animation


def test_skin_glb_reproduces_the_cache_within_the_measured_error(mesh_run):
    from helpers import decode_skinned_frames

    run, ctx = mesh_run
    result = mesh_animate.run(run, MeshAnimateOptions(skin=True, bones=6, fps=8.0), Runtime())
    cache = np.load(run / "export" / "vertices.npy").astype(np.float64)
    decoded, info = decode_skinned_frames(run / "export" / "animated.glb")
    assert decoded.shape == cache.shape and 1 <= result.metrics["bones"] <= 6
    assert len(info["skin"].joints) == result.metrics["bones"] + 1  # root + bones
    assert info["weights"].min() >= 0 and np.abs(info["weights"].sum(1) - 1).max() < 1e-6
    radius = ctx["norm"].radius / ctx["norm"].scale  # in the original frame
    err_pct = 100.0 * np.linalg.norm(decoded - cache, axis=-1) / radius
    assert err_pct.max() <= result.metrics["skin_error_max_pct_radius"] + 1e-3
    # material and texture travel with the skinned mesh
    gltf = info["gltf"]
    mat = gltf.materials[gltf.meshes[0].primitives[0].material]
    assert mat.pbrMetallicRoughness.baseColorTexture is not None
    # seam copies of one welded vertex carry the same weights, so seams stay closed
    b = ctx["binding"]
    _, first = np.unique(b.vertex_splat, return_index=True)
    inverse = np.unique(b.vertex_splat, return_inverse=True)[1].ravel()
    np.testing.assert_array_equal(info["weights"], info["weights"][first][inverse])


def test_skin_with_residual_is_exact(mesh_run):
    from helpers import decode_skinned_frames

    run, _ = mesh_run
    mesh_animate.run(run, MeshAnimateOptions(skin=True, bones=3, residual=True, fps=8.0, loop=True), Runtime())
    cache = np.load(run / "export" / "vertices.npy").astype(np.float64)
    decoded, _ = decode_skinned_frames(run / "export" / "animated.glb")
    scale = np.abs(cache).max()
    np.testing.assert_allclose(decoded[:-1], cache, atol=2e-6 * scale)
    np.testing.assert_allclose(decoded[-1], cache[0], atol=2e-6 * scale)  # the closing key


def test_new_options_are_validated():
    with pytest.raises(OptionError, match="--residual"):
        MeshAnimateOptions(residual=True)
    with pytest.raises(OptionError):
        MeshAnimateOptions(bones=0)
    with pytest.raises(OptionError):
        MeshAnimateOptions(duration=0)
    with pytest.raises(OptionError):
        MeshAnimateOptions(loop_mode="bounce")  # type: ignore[arg-type]


def test_cli_skin_loop_writes_the_glb(mesh_run):
    from helpers import one_command_app
    from typer.testing import CliRunner

    from a3d_cli.commands.mesh_animate import mesh_animate as command

    run, _ = mesh_run
    app = one_command_app("mesh-animate", command)
    args = ["mesh-animate", str(run), "--skin", "--bones", "4", "--fps", "8", "--loop", "--loop-mode", "pingpong"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    gltf = pygltflib.GLTF2().load(str(run / "export" / "animated.glb"))
    assert len(gltf.skins) == 1 and np.load(run / "export" / "vertices.npy").shape[0] == 2 * (FRAMES - 1)
    bad = CliRunner().invoke(app, ["mesh-animate", str(run), "--residual", "--force"])
    assert bad.exit_code == 2 and "--skin" in bad.stderr


@pytest.mark.parametrize("content", [*HOSTILE_NORMALIZATIONS.values(), "named-pipe"],
                         ids=[*HOSTILE_NORMALIZATIONS, "named-pipe"])  # fmt: skip
def test_a_damaged_normalization_exits_2_and_writes_nothing(mesh_run, content):
    """source/normalization.json maps the animation back to the asset's frame: damaged or tampered (not JSON, a
    NaN or zero scale, a rotation of the wrong shape, a pipe), it is one error (exit 2), never exit 1 or a hang."""
    from helpers import in_thread, one_command_app, one_error_with_hint
    from typer.testing import CliRunner

    from a3d_cli.commands.mesh_animate import mesh_animate as command

    run, _ = mesh_run
    damage_normalization(run, content)
    app = one_command_app("mesh-animate", command)
    finished, result = in_thread(lambda: CliRunner().invoke(app, ["mesh-animate", str(run)]))
    assert finished
    one_error_with_hint(result)
    assert "normalization.json" in result.stderr and "a3d prepare" in result.stderr
    assert not (run / "export").exists()
