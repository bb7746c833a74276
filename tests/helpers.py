"""Builders shared by several test files: tiny models and inputs, one-command CLI apps, small meshes, run
folders and videos (no test module imports from another).

Tiny models of whole pipelines come from the library itself (`a3d_cli.models.mvvdm.tiny_components(seed)`,
`a3d_cli.models.sv3d.testing.tiny_models(variant, seed)`); this module holds what only tests need.
Import it as `from helpers import ...` (pytest puts `tests/` on `sys.path`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer

from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig
from a3d_cli.gaussians.motion_io import save_motion
from a3d_cli.gaussians.ply import read_ply, write_ply
from a3d_cli.io.images import save_png, to_uint8
from a3d_cli.mesh.normalize import fit_normalization
from a3d_cli.render.cameras import mvvdm_cameras

REPO = Path(__file__).resolve().parents[1]
"""The repository root (examples/, docs/, benchmarks/ are read from here)."""
KEY_FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
"""The official checkpoint key-layout fixtures (README.md beside them says where each comes from)."""


def key_fixture(name: str) -> Path:
    """Path of one key-layout fixture in `tests/fixtures/`; a missing fixture fails the test, never skips it."""
    path = KEY_FIXTURES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"key fixture {path} is missing: it belongs to the repository (tests/fixtures/)")
    return path


def one_command_app(name: str, command: Callable[..., Any]) -> typer.Typer:
    """The `a3d` app callback and error mapping (`A3DGroup`) around one command, whatever cli.py registers."""
    from a3d_cli.cli import A3DGroup, main_options

    app = typer.Typer(cls=A3DGroup)
    app.callback()(main_options)
    app.command(name)(command)
    return app


def a3d_app(name: str, command: Callable[..., Any]) -> typer.Typer:
    """The real `a3d` app when it registers `name`, else `one_command_app(name, command)`."""
    from a3d_cli import cli

    names = {c.name or c.callback.__name__ for c in cli.app.registered_commands}
    return cli.app if name in names else one_command_app(name, command)


def tiny_mvvdm_unet(seed: int = 0):  # noqa: ANN201 - an MVVDMUNet (imported lazily)
    """The tiny MV-VDM UNet in eval mode, with its zero-initialised I2V adapters made non-zero.

    Zero adapters would hide the I2V path from every comparison, so their outputs and mix factors get
    random values (from `seed + 1`).
    """
    from a3d_cli.models.mvvdm import MVVDMConfig, MVVDMUNet

    torch.manual_seed(seed)
    m = MVVDMUNet(MVVDMConfig.tiny()).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "to_out_i2v" in name or "mix_factor" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m


def tiny_unet_inputs(batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs for `tiny_mvvdm_unet`: 4 views × 3 frames of 4×8×8 latents, 5 text and 4 image tokens.

    Returns:
        (sample [B, V, F, C, H, W], timesteps [B], text [B, 5, D_txt], image [B, 4, D_img], cameras [B, V, 16]).
    """
    from a3d_cli.models.mvvdm import MVVDMConfig

    g = torch.Generator().manual_seed(seed)
    cfg = MVVDMConfig.tiny()
    return (
        torch.randn(batch, 4, 3, 4, 8, 8, generator=g),
        torch.randint(0, 1000, (batch,), generator=g),
        torch.randn(batch, 5, cfg.cross_attention_dim, generator=g),
        torch.randn(batch, 4, cfg.image_embed_dim, generator=g),
        torch.randn(batch, 4, 16, generator=g),
    )


def moving_motion_field(num_frames: int, seed: int = 1):  # noqa: ANN201 - a MotionField (imported lazily)
    """A tiny `MotionField` over `num_frames` whose parameters are perturbed, so it really moves the splats."""
    from a3d_cli.gaussians.motion_field import MotionField, MotionFieldConfig

    field = MotionField(MotionFieldConfig.tiny(num_frames=num_frames), generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in field.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return field


# -- small meshes and asset files ------------------------------------------------------------------


def two_colour_texture(left=(200, 30, 30), right=(30, 30, 200), size: int = 32) -> np.ndarray:
    """[size, size, 3] uint8: left half one colour, right half another (u < 0.5 vs u > 0.5)."""
    img = np.zeros((size, size, 3), dtype=np.uint8)
    img[:, : size // 2] = left
    img[:, size // 2 :] = right
    return img


def grid(nx: int, ny: int, sx: float = 1.0, sy: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat (nx+1)×(ny+1) vertex grid in the XY plane facing +Z, with UVs spanning [0, 1]²."""
    u, v = np.meshgrid(np.linspace(0, 1, nx + 1), np.linspace(0, 1, ny + 1), indexing="xy")
    vertices = np.stack([(u.ravel() - 0.5) * sx, (v.ravel() - 0.5) * sy, np.zeros(u.size)], axis=-1)
    idx = np.arange(u.size).reshape(ny + 1, nx + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices, faces, np.stack([u.ravel(), v.ravel()], -1)


def textured_trimesh(vertices, faces, uv, image, factor=(255, 255, 255, 255)):
    import trimesh
    from PIL import Image
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    mat = PBRMaterial(baseColorTexture=Image.fromarray(np.asarray(image, dtype=np.uint8)), baseColorFactor=list(factor))
    return trimesh.Trimesh(vertices, faces, visual=TextureVisuals(uv=uv, material=mat), process=False)


def textured_sphere(count: int = 24, radius: float = 1.0):
    """A lat-long sphere with UV-seam and pole copies (as exporters write them), the two-colour texture
    wrapped around it: u < 0.5 (x < 0) red, u > 0.5 (x > 0) blue. Its vertex normals are the sphere's own
    (along the radius, equal at the copies), so a GLB written of it holds a smooth NORMAL, as exporters write
    a smooth sphere (a glTF primitive without NORMAL is shaded flat)."""
    nu, nv = 2 * count, count
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="xy")
    s, t = s.ravel(), t.ravel()
    theta, phi = 2 * np.pi * s, np.pi * t  # theta = 0 at -Z, π/2 at -X (u < 0.5), 3π/2 at +X
    v = radius * np.stack([-np.sin(phi) * np.sin(theta), -np.cos(phi), -np.sin(phi) * np.cos(theta)], -1)
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nv + 1, nu + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    tri = v[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    faces = faces[np.linalg.norm(cross, axis=-1) > 1e-12]  # drop collapsed pole triangles
    if np.sum(np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]) * v[faces[:, 0]]) < 0:
        faces = faces[:, ::-1]  # outward
    mesh = textured_trimesh(v, faces, np.stack([s, t], -1), two_colour_texture())
    mesh.vertex_normals = v / radius
    return mesh


def write_glb(path: Path, *meshes_with_transforms) -> Path:
    """A GLB with one node per (mesh, 4×4 transform) pair."""
    import trimesh

    scene = trimesh.Scene()
    for i, (mesh, transform) in enumerate(meshes_with_transforms):
        scene.add_geometry(mesh, node_name=f"node{i}", geom_name=f"mesh{i}", transform=transform)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def write_textured_obj(folder: Path, up_axis: str = "y") -> Path:
    """folder/model.obj + model.mtl + tex/albedo.png: a 1×2 quad (tall along `up_axis`), texture left red / right blue."""
    from PIL import Image

    (folder / "tex").mkdir(parents=True, exist_ok=True)
    Image.fromarray(two_colour_texture()).save(folder / "tex" / "albedo.png")
    (folder / "model.mtl").write_text("newmtl skin\nKd 1 1 1\nmap_Kd -bm 1.0 tex/albedo.png\n")
    tall = {"y": [(0, 0, 0), (1, 0, 0), (1, 2, 0), (0, 2, 0)], "z": [(0, 0, 0), (1, 0, 0), (1, 0, 2), (0, 0, 2)]}[
        up_axis
    ]
    lines = ["mtllib model.mtl"] + [f"v {x} {y} {z}" for x, y, z in tall]
    lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", "usemtl skin", "f 1/1 2/2 3/3", "f 1/1 3/3 4/4"]
    (folder / "model.obj").write_text("\n".join(lines) + "\n")
    return folder / "model.obj"


# -- reconstruct: run folders, videos, the one-command app -----------------------------------------


VIDEO_SIZE = 16


def reconstruct_static(n: int = 40, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.rand(n, 3, generator=g) - 0.5,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        scales=torch.full((n, 3), 0.05),
        opacities=torch.full((n,), 0.9),
        colors=torch.rand(n, 3, generator=g),
    )


def reconstruct_run_folder(root: Path) -> Path:
    run = root / "RUN"
    (run / "static" / "views").mkdir(parents=True)
    write_ply(run / "static" / "gaussians.ply", reconstruct_static())
    (run / "static" / "views" / "cameras.json").write_text(mvvdm_cameras().dumps(VIDEO_SIZE, VIDEO_SIZE))
    return run


def video_folder(folder: Path, views=range(4), frames=range(16), size: int = VIDEO_SIZE, channels: int = 3, skip=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for v in views:
        for f in frames:
            if (v, f) in skip:
                continue
            img = torch.full((size, size, channels), 0.5)
            img[4:10, 4:10, :3] = torch.tensor([0.9, 0.2, 0.1])
            save_png(folder / f"v{v}_f{f:02d}.png", img)
    return folder


def reconstruct_app():
    """A one-command app with a3d's error mapping (the real `a3d` registers the same function)."""
    import typer

    from a3d_cli.cli import A3DGroup, main_options
    from a3d_cli.commands.reconstruct import reconstruct

    app = typer.Typer(cls=A3DGroup)
    app.callback()(main_options)
    app.command("reconstruct")(reconstruct)
    return app


# -- sds: static splats and run folders ------------------------------------------------------------


SDS_FRAMES = 4


def sds_static(n: int = 40, seed: int = 0) -> Gaussians:
    """A small cube of splats coloured by position (so motion is visible in the renders)."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * 0.8
    return Gaussians(
        means=means,
        quats=torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
        scales=torch.full((n, 3), 0.07),
        opacities=torch.full((n,), 0.9),
        colors=(means / 0.8 + 0.5).clamp(0, 1),
    )


def sds_run(run_dir, static: Gaussians | None = None):
    """A run folder holding what `a3d sds` reads: static splats and a coarse (motionless) field."""
    static = static or sds_static()
    (run_dir / "static").mkdir(parents=True)
    write_ply(run_dir / "static" / "gaussians.ply", static)
    field = MotionField(MotionFieldConfig.tiny(num_frames=SDS_FRAMES), generator=torch.Generator().manual_seed(0))
    save_motion(run_dir / "motion" / "coarse.safetensors", field, static, extra={"stage": "reconstruct"})
    return static


# -- export: a 3DGS run folder with a Z-up source frame and a moving field -------------------------


EXPORT_FRAMES = 4  # a short motion keeps every test fast


def export_static(n: int = 48, seed: int = 0, sh: bool = True) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.rand(n, 3, generator=g) * 1.2 - 0.6,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        scales=torch.rand(n, 3, generator=g) * 0.05 + 0.03,
        opacities=torch.rand(n, generator=g) * 0.5 + 0.5,
        colors=torch.rand(n, 3, generator=g),
        sh_rest=torch.randn(n, 3, 3, generator=g) * 0.1 if sh else None,
    )


def make_gaussian_run(run: Path, seed: int = 0) -> tuple[Gaussians, MotionField]:
    """A run folder as `prepare` + `reconstruct` leave it for a 3DGS input with a Z-up source frame."""
    static = export_static(seed=seed)
    (run / "static").mkdir(parents=True)
    (run / "source").mkdir()
    write_ply(run / "static" / "gaussians.ply", static)
    # the "original" asset was Z-up, off-centre and 10x larger: a non-trivial similarity to undo
    original = np.random.default_rng(seed).random((100, 3)) * 10 + 5
    norm = fit_normalization(original, up="+z", front="-y")
    (run / "source" / "normalization.json").write_text(norm.dumps())
    field = moving_motion_field(EXPORT_FRAMES, seed + 1)
    save_motion(run / "motion" / "coarse.safetensors", field, read_ply(run / "static" / "gaussians.ply"))
    return read_ply(run / "static" / "gaussians.ply"), field


# -- animate: fast options, a mesh and a sliding video ---------------------------------------------


ANIMATE_FAST = [
    "--splat-count",
    "150",
    "--max-vertices",
    "100",
    "--reconstruct-steps",
    "3",
    "--resolution",
    "32",
    "--preview-size",
    "24",
]


def animate_app() -> typer.Typer:
    """The `a3d` app callback with the `animate` command (independent of what cli.py registers)."""
    from a3d_cli.commands.animate import animate

    return one_command_app("animate", animate)


def blob_mesh(path: Path) -> Path:
    """A coloured, slightly squashed icosphere (a mesh input with vertex colours)."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    mesh.vertices *= np.array([1.0, 0.7, 0.8])
    colors = (np.clip(mesh.vertices * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8)
    mesh.visual.vertex_colors = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], axis=1)
    mesh.export(path)
    return path


def small_photo(path: Path) -> Path:
    """A 40×40 RGBA photo of a green block with a red patch on transparency (an `a3d animate IMAGE` input)."""
    from PIL import Image

    arr = np.zeros((40, 40, 4), dtype=np.uint8)
    arr[8:32, 12:28] = (30, 160, 90, 255)
    arr[14:20, 16:24] = (200, 60, 40, 255)
    Image.fromarray(arr, "RGBA").save(path)
    return path


def photo_like(path: Path, width: int = 300, height: int = 200) -> Path:
    """A picture with smooth shading, edges, texture and sensor-like noise, no alpha, saved by `path`'s suffix."""
    from PIL import Image

    g = torch.Generator().manual_seed(4)
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    sky = torch.stack([0.4 + 0.3 * y, 0.6 + 0.2 * y, 0.9 - 0.2 * y], dim=-1)  # [H, W, 3] gradient
    ball = ((x - 0.6) ** 2 + ((y - 0.55) * 1.5) ** 2 < 0.05).float()[..., None]
    shade = (0.5 + 0.5 * torch.cos(8 * x + 3 * y))[..., None] * torch.tensor([0.9, 0.4, 0.2])
    img = sky * (1 - ball) + shade * ball + 0.03 * torch.randn(height, width, 3, generator=g)
    Image.fromarray(to_uint8(img)).save(path)
    return path


def sliding_video(mesh: Path, out: Path, size: int = 32) -> Path:
    """4 views × 16 frames of the mesh sliding sideways: the prepared grey views shifted by f/3 pixels."""
    from a3d_cli.io.images import load_png, save_png
    from a3d_cli.stages.base import Runtime
    from a3d_cli.stages.prepare import PrepareOptions
    from a3d_cli.stages.prepare import run as prepare

    scratch = out.parent / "scratch_run"
    prepare(scratch, PrepareOptions(model=str(mesh), splats=150, max_vertices=100, view_size=size), Runtime())
    out.mkdir(parents=True)
    for v in range(4):
        view = load_png(scratch / "static" / "views" / f"view_{v}_grey.png", mode="RGB")  # [H, W, 3]
        for f in range(16):
            shifted = view.roll(f // 3, dims=1)
            shifted[:, : f // 3] = 0.5  # grey enters from the left
            save_png(out / f"v{v}_f{f:02d}.png", shifted)
    shutil.rmtree(scratch)
    return out


def bending_bar(frames: int = 6, sections: int = 12, seed: int = 0):  # noqa: ANN201 - numpy arrays
    """A closed tube along x that bends upwards and twists smoothly over `frames` frames (frame 0 = rest).

    A non-rigid, smooth motion that a few blended bones approximate well but not exactly.

    Returns:
        (rest [V, 3], faces [T, 3], frames [F, V, 3]) float64 / int64.
    """
    import numpy as np

    ring = 8
    ang = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    xs = np.linspace(-1.0, 1.0, sections)
    rest = np.array([[x, 0.15 * np.cos(a), 0.15 * np.sin(a)] for x in xs for a in ang])  # [V, 3]
    faces = []
    for s in range(sections - 1):
        for r in range(ring):
            a, b = s * ring + r, s * ring + (r + 1) % ring
            faces += [(a, b + ring, b), (a, a + ring, b + ring)]
    out = []
    for f in range(frames):
        t = f / max(frames - 1, 1)
        bend = 0.9 * np.sin(np.pi * t) * (rest[:, 0] + 1.0) / 2.0  # [V] angle grows along the bar
        twist = 0.5 * t * rest[:, 0]
        y = rest[:, 1] * np.cos(twist) - rest[:, 2] * np.sin(twist)
        z = rest[:, 1] * np.sin(twist) + rest[:, 2] * np.cos(twist)
        # bend: each cross-section turns about the z axis through (-1, 0, 0) by its own angle
        x = -1.0 + (rest[:, 0] + 1.0) * np.cos(bend) - y * np.sin(bend)
        y2 = (rest[:, 0] + 1.0) * np.sin(bend) + y * np.cos(bend)
        out.append(np.stack([x, y2, z], 1) + np.array([0.0, 0.1 * t, 0.0]))
    out[0] = rest
    return rest, np.array(faces, dtype=np.int64), np.stack(out)


def _gltf_accessor(gltf, index: int):  # noqa: ANN001, ANN202
    """One accessor of a pygltflib GLTF2 as a numpy array ([count] or [count, width])."""
    import numpy as np

    types = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
    acc = gltf.accessors[index]
    bv = gltf.bufferViews[acc.bufferView]
    width = widths[acc.type]
    arr = np.frombuffer(gltf.binary_blob(), types[acc.componentType], acc.count * width,
                        bv.byteOffset + (acc.byteOffset or 0))  # fmt: skip
    return arr.reshape(acc.count, width) if width > 1 else arr


def _quat_xyzw_matrix(xyzw):  # noqa: ANN001, ANN202
    """3×3 rotation of a glTF (x, y, z, w) unit quaternion."""
    import numpy as np

    x, y, z, w = xyzw
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def decode_skinned_frames(path) -> tuple:  # noqa: ANN001
    """[K, V, 3] positions a glTF player shows at each animation key of a skinned GLB, from the file alone.

    Uses pygltflib's object model and the glTF 2.0 skinning rule (joint matrix = world(joint) · inverse bind
    matrix, morph targets applied before skinning) — none of a3d's writer code.

    Returns:
        (positions [K, V, 3] float64, a dict with the parsed gltf, joints, weights, ibm [J, 4, 4], times, skin).
    """
    import numpy as np
    import pygltflib

    gltf = pygltflib.GLTF2().load(str(path))
    (skin,) = gltf.skins
    prim = gltf.meshes[0].primitives[0]
    pos = _gltf_accessor(gltf, prim.attributes.POSITION).astype(np.float64)
    joints = _gltf_accessor(gltf, prim.attributes.JOINTS_0).astype(np.int64)
    weights = _gltf_accessor(gltf, prim.attributes.WEIGHTS_0).astype(np.float64)
    ibm = _gltf_accessor(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major → rows
    (anim,) = gltf.animations
    times = _gltf_accessor(gltf, anim.samplers[0].input)
    keys = {}
    for ch in anim.channels:
        keys[(ch.target.node, ch.target.path)] = _gltf_accessor(gltf, anim.samplers[ch.sampler].output)
    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}

    def local(node: int, k: int):  # noqa: ANN202
        n = gltf.nodes[node]
        m = np.eye(4)
        t = keys.get((node, "translation"), [n.translation or [0, 0, 0]] * len(times))[k]
        q = keys.get((node, "rotation"), [n.rotation or [0, 0, 0, 1]] * len(times))[k]
        m[:3, :3] = _quat_xyzw_matrix(np.asarray(q, np.float64))
        m[:3, 3] = t
        return m

    def world(node: int, k: int):  # noqa: ANN202
        m = local(node, k)
        return world(parent[node], k) @ m if node in parent else m

    morph = keys.get((0, "weights"))
    targets = [_gltf_accessor(gltf, t["POSITION"]).astype(np.float64) for t in (prim.targets or [])]
    out = []
    for k in range(len(times)):
        mats = np.stack([world(j, k) @ ibm[i] for i, j in enumerate(skin.joints)])  # [J, 4, 4]
        p = pos.copy()
        if targets:
            wk = morph.reshape(len(times), len(targets))[k]
            p = p + sum(wk[i] * targets[i] for i in range(len(targets)))
        hom = np.concatenate([p, np.ones((len(p), 1))], 1)
        moved = np.einsum("vkab,vb->vka", mats[joints][..., :3, :], hom)  # [V, 4, 3]
        out.append(np.einsum("vk,vka->va", weights, moved))
    info = {"gltf": gltf, "joints": joints, "weights": weights, "ibm": ibm, "times": times, "skin": skin}
    return np.stack(out), info


# -- run-folder status while another process writes it --------------------------------------------------------------


def manifest_status(run: Path, stage: str) -> str | None:
    """A stage's manifest status, or None while the manifest is missing or being replaced this instant."""
    from a3d_cli.io.manifest import load_manifest

    try:
        return load_manifest(run)["stages"].get(stage, {}).get("status")
    except Exception:  # the manifest is being replaced this instant
        return None


# -- real programs: what users open our files with (opt-in: each runs only when its env var points at it) -------------


REAL_PROGRAM_SCRIPTS = Path(__file__).resolve().parent / "real_programs"
"""The scripts the programs run (a Blender Python script, node scripts for three.js and the splat viewer)."""
REAL_PROGRAMS = {
    "A3D_BLENDER": "the `blender` executable (e.g. Debian's: apt-get install blender python3-numpy)",
    "A3D_THREE": "a folder holding node_modules/three (npm install three)",
    "A3D_SPLAT_VIEWER": "a folder holding node_modules/@mkkellogg/gaussian-splats-3d (npm install @mkkellogg/gaussian-splats-3d)",
    "A3D_SPARK": "a folder holding node_modules/@sparkjsdev/spark and node_modules/three (npm install @sparkjsdev/spark three)",
    "A3D_CHROMIUM": "a chromium or chrome executable (e.g. Debian's: apt-get install chromium)",
    "A3D_FFPROBE": "the `ffprobe` executable (e.g. Debian's: apt-get install ffmpeg)",
    "A3D_GLTF_VALIDATOR": "a folder holding node_modules/gltf-validator (npm install gltf-validator)",
    "A3D_SPLAT_TRANSFORM": "a folder holding node_modules/@playcanvas/splat-transform "
    "(npm install @playcanvas/splat-transform)",
}
"""Env var → what it must point at."""


def _real_program_problem(env: str) -> str | None:
    """Why the program named by `env` cannot run here, or None when it can."""
    import os

    value = os.environ.get(env)
    if not value:
        return f"set {env} to {REAL_PROGRAMS[env]}"
    if env in ("A3D_BLENDER", "A3D_FFPROBE", "A3D_CHROMIUM"):
        return None if shutil.which(value) else f"{env}={value} is not an executable"
    if env != "A3D_SPARK" and shutil.which("node") is None:  # Spark runs in the browser
        return f"{env} needs node (>= 18) on PATH"
    packages = {
        "A3D_THREE": ["three"], "A3D_SPLAT_VIEWER": ["@mkkellogg/gaussian-splats-3d"],
        "A3D_SPARK": ["@sparkjsdev/spark", "three"], "A3D_GLTF_VALIDATOR": ["gltf-validator"],
        "A3D_SPLAT_TRANSFORM": ["@playcanvas/splat-transform"],
    }[env]  # fmt: skip
    for package in packages:
        if not (Path(value) / "node_modules" / package / "package.json").is_file():
            return f"{env}={value} has no node_modules/{package}"
    return None


def needs_program(*envs: str):  # noqa: ANN201 - a pytest mark
    """Skip mark for a test that runs the programs `envs` point at (the reason names the env var)."""
    import pytest

    problems = [p for p in map(_real_program_problem, envs) if p]
    return pytest.mark.skipif(bool(problems), reason="; ".join(problems))


def _tagged_json(stdout: str, tag: str) -> dict:
    """The JSON object a script printed after `tag` (programs print their own chatter around it)."""
    import json

    for line in stdout.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"the program printed no {tag} line; its output ends with:\n{stdout[-3000:]}")


def _run_program(cmd: list[str], cwd: str | None = None, timeout: float = 300) -> str:
    import subprocess

    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd[0]} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def blender_import(path: Path, frames: list[float] = ()) -> dict:
    """What Blender (`A3D_BLENDER`, headless, factory settings) makes of a glTF file when a user imports it.

    Returns:
        `real_programs/blender_import.py`'s JSON: fps, objects, actions and "positions": per frame asked, in
        order, {mesh name: world-space vertex positions (Blender's Z-up)}.
    """
    import os

    cmd = [os.environ["A3D_BLENDER"], "-b", "--factory-startup", "--python", str(REAL_PROGRAM_SCRIPTS / "blender_import.py"),
           "--", str(path), ",".join(repr(float(f)) for f in frames)]  # fmt: skip
    return _tagged_json(_run_program(cmd), "A3D_BLENDER_JSON")


def three_load(path: Path, seconds: list[float] = ()) -> dict:
    """What three.js' GLTFLoader (`A3D_THREE`, in node) makes of a GLB; "positions": per time in `seconds`,
    in order, every mesh's world-space vertices as AnimationMixer poses them."""
    import os

    cmd = ["node", str(REAL_PROGRAM_SCRIPTS / "three_load.mjs"), str(path), ",".join(repr(float(s)) for s in seconds)]
    return _tagged_json(_run_program(cmd, cwd=os.environ["A3D_THREE"]), "A3D_THREE_JSON")


def splat_viewer_parse(path: Path) -> dict:
    """The splats @mkkellogg/gaussian-splats-3d's PLY parser (`A3D_SPLAT_VIEWER`, in node) reads from a PLY."""
    import os

    cmd = ["node", str(REAL_PROGRAM_SCRIPTS / "splat_parse.mjs"), str(path)]
    return _tagged_json(_run_program(cmd, cwd=os.environ["A3D_SPLAT_VIEWER"]), "A3D_SPLATS_JSON")


def splat_transform(source: Path, target: Path, *options: str) -> None:
    """Convert `source` to `target` with PlayCanvas' splat-transform (`A3D_SPLAT_TRANSFORM`, in node); the
    suffixes pick the formats (`.compressed.ply` is SuperSplat's compressed PLY); `options` go before the
    target (`--spz-version 3`)."""
    import os

    tool = Path(os.environ["A3D_SPLAT_TRANSFORM"]) / "node_modules" / ".bin" / "splat-transform"
    _run_program([str(tool), "-w", str(source), *options, str(target)])


def spark_parse(path: Path) -> dict:
    """The splats Spark (`A3D_SPARK`, @sparkjsdev/spark) holds after loading a PLY in a web page, in headless
    chromium (`A3D_CHROMIUM`): Spark decodes in a Web Worker with WebAssembly, which node lacks.

    A local HTTP server (this process, loopback only) serves `real_programs/spark_page.html`, the PLY and the
    npm folder; chromium runs the page, which posts what Spark holds back to the server.

    Returns:
        {"count", "splats": [[x, y, z, sx, sy, sz, qw, qx, qy, qz, r, g, b, opacity], ...]} as Spark packs
        them (float16 positions, 8-bit log scales, colours and opacity, an 8-8-8 bit rotation).
    """
    import http.server
    import os
    import subprocess
    import tempfile
    import threading

    root = Path(os.environ["A3D_SPARK"]).resolve()
    files = {"/page.html": REAL_PROGRAM_SCRIPTS / "spark_page.html", "/splats.ply": Path(path)}
    posted: list[str] = []
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {".js": "text/javascript", ".html": "text/html", ".ply": "application/octet-stream"}

        def translate_path(self, url: str) -> str:
            url = url.split("?")[0]
            if url in files:
                return str(files[url])
            local = (root / url.lstrip("/")).resolve()  # only the npm folder's node_modules
            return str(local) if local.is_relative_to(root / "node_modules") else str(root / "missing")

        def do_POST(self) -> None:  # noqa: N802 - the page's result
            posted.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            url = f"http://127.0.0.1:{server.server_address[1]}/page.html"
            cmd = [os.environ["A3D_CHROMIUM"], "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", url]
            browser = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                finished = done.wait(timeout=180)
            finally:
                browser.terminate()
                _, stderr = browser.communicate(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert finished, f"the Spark page posted no result within 180 s; chromium said:\n{stderr[-3000:]}"
    return _tagged_json(posted[0], "A3D_SPARK_JSON")


def ffprobe_video(path: Path) -> dict:
    """ffprobe's (`A3D_FFPROBE`) view of a video's first stream, every frame decoded and counted.

    Returns:
        {"codec", "profile", "pix_fmt", "width", "height", "fps" (a Fraction), "frames", "format",
        "atoms" (top-level MP4 boxes in file order, from ffprobe's trace)}.
    """
    import json
    import os
    import re
    import subprocess
    from fractions import Fraction

    exe = os.environ["A3D_FFPROBE"]
    entries = "stream=codec_name,profile,pix_fmt,width,height,r_frame_rate,avg_frame_rate,nb_read_frames:format=format_name"
    cmd = [exe, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", entries, "-of", "json", str(path)]
    data = json.loads(_run_program(cmd))
    (stream,) = data["streams"]
    trace = subprocess.run([exe, "-v", "trace", str(path)], capture_output=True, text=True).stderr
    atoms = re.findall(r"type:'(\w{4})' parent:'root'", trace)
    return {
        "codec": stream["codec_name"], "profile": stream.get("profile"), "pix_fmt": stream["pix_fmt"],
        "width": stream["width"], "height": stream["height"], "fps": Fraction(stream["r_frame_rate"]),
        "avg_fps": Fraction(stream["avg_frame_rate"]), "frames": int(stream["nb_read_frames"]),
        "format": data["format"]["format_name"], "atoms": atoms,
    }  # fmt: skip


def khronos_validate(path: Path) -> dict:
    """The Khronos glTF validator's (`A3D_GLTF_VALIDATOR`, in node) issues for a glTF binary."""
    import os

    script = (
        "const v=require('gltf-validator');const fs=require('fs');v.validateBytes(new Uint8Array("
        "fs.readFileSync(process.argv[1]))).then(r=>console.log('A3D_VALIDATOR_JSON '+JSON.stringify(r.issues)));"
    )
    return _tagged_json(_run_program(["node", "-e", script, str(path)], cwd=os.environ["A3D_GLTF_VALIDATOR"]), "A3D_VALIDATOR_JSON")


def gltf_to_blender(points: np.ndarray) -> np.ndarray:
    """[..., 3] glTF (+Y up, front +Z) positions as Blender's importer places them (+Z up, front −Y)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


# -- what a3d's own records say a program should show (key times, poses, manifest figures) -----------------------------


def run_a3d(*args: str) -> None:
    """Run the real `a3d` app on the CPU through CliRunner; any exit code but 0 fails the test with the output."""
    from typer.testing import CliRunner

    from a3d_cli.cli import app

    result = CliRunner().invoke(app, ["--device", "cpu", *args])
    assert result.exit_code == 0, result.output + (result.stderr or "")


def stage_metrics(run: Path, stage: str) -> dict:
    """The manifest metrics of `stage` in `run` (`a3d --json info RUN` shows the same)."""
    from a3d_cli.io.manifest import load_manifest

    return load_manifest(run)["stages"][stage]["metrics"]


def clip_key_seconds(m: dict) -> np.ndarray:
    """[K] when each exported key plays: K keys over the clip's duration, k · D / n with n = K − 1, or n = K
    for a loop (its closing key at D repeats key 0 and is not one of the K)."""
    k = int(m["frames"])
    n = k if m["loop"] != "off" else k - 1
    return np.arange(k) * float(m["duration_s"]) / n


def probe_keys(count: int) -> list[int]:
    """A few key indices worth checking: the first two, one in the middle, the last."""
    return sorted({0, 1, count // 2, count - 1})


def expected_poses(run: Path) -> np.ndarray:
    """[K, V, 3] what the GLB shows at each key: the vertex cache for morph targets; for a skin, the GLB
    decoded with the glTF skinning rule by pygltflib (`decode_skinned_frames`), since a skin
    approximates the cache."""
    if "bones" in stage_metrics(run, "mesh-animate"):
        decoded, _ = decode_skinned_frames(run / "export" / "animated.glb")
        return decoded[: stage_metrics(run, "mesh-animate")["frames"]]
    return np.load(run / "export" / "vertices.npy").astype(np.float64)


def player_tolerance(poses: np.ndarray) -> float:
    """Absolute tolerance for a player's float32 maths on these poses."""
    return 2e-5 * float(np.abs(poses).max())


# -- hand-made glTF files (extension tests) --------------------------------------------------------------------------

GL_FLOAT, GL_UINT, GL_USHORT, GL_SHORT, GL_UBYTE, GL_BYTE = 5126, 5125, 5123, 5122, 5121, 5120


class GlbBuilder:
    """Assemble a glTF document and its binary chunk by hand, for features no exporter here writes
    (compressed, quantized or sparse accessors, texture extensions). Written from the glTF 2.0 spec, with
    none of a3d's reader code.

    Examples:
        >>> b = GlbBuilder()
        >>> pos = b.accessor(vertices.astype(np.float32), GL_FLOAT, "VEC3")
        >>> b.mesh({"POSITION": pos}, b.accessor(faces.astype(np.uint32).ravel(), GL_UINT, "SCALAR"))
        >>> b.save(tmp_path / "model.glb")
    """

    def __init__(self) -> None:
        self.doc: dict = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 0}], "bufferViews": [],
                          "accessors": [], "meshes": [], "nodes": [], "scenes": [{"nodes": []}], "scene": 0}  # fmt: skip
        self.blob = bytearray()

    def view(self, data: bytes) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.doc["bufferViews"].append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob += data
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array: np.ndarray | None, component: int, kind: str, count: int | None = None, **extra) -> int:
        """An accessor over `array` (as stored, little-endian), or with no bufferView when `array` is None."""
        acc = {"componentType": component, "type": kind, **extra}
        if array is not None:
            array = np.ascontiguousarray(array)
            acc["bufferView"] = self.view(array.astype(array.dtype.newbyteorder("<")).tobytes())
            acc["count"] = int(len(array))
        if count is not None:
            acc["count"] = count
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def image(self, data: bytes, mime: str) -> int:
        self.doc.setdefault("images", []).append({"bufferView": self.view(data), "mimeType": mime})
        return len(self.doc["images"]) - 1

    def textured_material(self, texture: dict, **info) -> int:
        """A material whose base-colour texture is `texture` (a glTF texture object); `info` joins its textureInfo."""
        self.doc.setdefault("samplers", [{}])
        self.doc.setdefault("textures", []).append({"sampler": 0, **texture})
        tex_info = {"index": len(self.doc["textures"]) - 1, **info}
        self.doc.setdefault("materials", []).append({"pbrMetallicRoughness": {"baseColorTexture": tex_info}})
        return len(self.doc["materials"]) - 1

    def mesh(self, attributes: dict, indices: int | None, node: dict | None = None, **primitive) -> int:
        """A mesh with one triangle primitive, placed by a new root node (`node` adds fields); returns the node."""
        prim = {"attributes": attributes, **primitive}
        if indices is not None:
            prim["indices"] = indices
        self.doc["meshes"].append({"primitives": [prim]})
        self.doc["nodes"].append({"mesh": len(self.doc["meshes"]) - 1, **(node or {})})
        self.doc["scenes"][0]["nodes"].append(len(self.doc["nodes"]) - 1)
        return len(self.doc["nodes"]) - 1

    def use(self, extension: str, required: bool = False) -> None:
        self.doc.setdefault("extensionsUsed", []).append(extension)
        if required:
            self.doc.setdefault("extensionsRequired", []).append(extension)

    def save(self, path: Path) -> Path:
        import json
        import struct

        blob = bytes(self.blob) + b"\0" * (-len(self.blob) % 4)
        self.doc["buffers"][0]["byteLength"] = len(blob)
        text = json.dumps(self.doc).encode()
        text += b" " * (-len(text) % 4)
        head = struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(blob))
        path.write_bytes(head + struct.pack("<I", len(text)) + b"JSON" + text + struct.pack("<I", len(blob)) + b"BIN\0" + blob)
        return path


def png_bytes(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """An [H, W, 3|4] uint8 image encoded by Pillow (e.g. fmt="WEBP", lossless=True)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(out, format=fmt, **options)
    return out.getvalue()


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG of 45 bytes whose header declares `width`×`height` RGB pixels and holds none (a decompression bomb's
    header: Pillow reads the size, and refuses or warns, before any pixel)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def srgb_decode(levels: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's sRGB decoding of 8-bit levels, written here from the standard."""
    c = levels / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's sRGB encoding to 8-bit levels."""
    c = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(c * 255.0)


def quads_glb(path, images: list[np.ndarray], sampler: dict | None = None):
    """A GLB of one unit quad per image, side by side along x (quad k from x = 2k), each a primitive with its own
    material whose base-colour texture is that image (texture coordinates = the quad's corners, glTF's top-left
    origin), all read through one `sampler` (glTF sampler object)."""
    b = GlbBuilder()
    b.doc["samplers"] = [sampler or {}]
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    faces = np.array([0, 1, 2, 0, 2, 3], np.uint32)
    for k, image in enumerate(images):
        corners = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32) + [2.0 * k, 0, 0]
        b.doc.setdefault("textures", []).append({"sampler": 0, "source": b.image(png_bytes(image), "image/png")})
        b.doc.setdefault("materials", []).append({"pbrMetallicRoughness": {"baseColorTexture": {"index": k}}})
        attributes = {"POSITION": b.accessor(corners.astype(np.float32), GL_FLOAT, "VEC3"),
                      "TEXCOORD_0": b.accessor(uv, GL_FLOAT, "VEC2")}  # fmt: skip
        b.mesh(attributes, b.accessor(faces, GL_UINT, "SCALAR"), material=k)
    return b.save(path)


def random_images(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """`count` distinct [size, size, 3] uint8 images."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def quad_part(texture: np.ndarray, k: int):  # noqa: ANN201 - a SurfaceMesh
    """A `SurfaceMesh`: one unit quad at x = 2k, as `quads_glb` places its quad k (`island_images` finds its image),
    whose texture coordinates cover [0, 1]² of `texture` [H, W, 3|4] (RGB made opaque)."""
    from a3d_cli.mesh.surface import SurfaceMesh

    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float) + [2.0 * k, 0, 0]
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    rgba = texture if texture.shape[2] == 4 else np.dstack([texture, np.full(texture.shape[:2], 255, np.uint8)])
    return SurfaceMesh(vertices, np.array([[0, 1, 2], [0, 2, 3]]), np.ones((4, 4), np.float32), uv, rgba)


def island_images(mesh, count: int) -> list[np.ndarray]:  # noqa: ANN001 - a SurfaceMesh
    """[h, w, 3] the texels of the packed image of each of the `count` quads of `quads_glb`, in the quads' order:
    the island that holds the texture coordinates of the quad's vertices."""
    h, w = mesh.texture.shape[:2]  # type: ignore[union-attr]
    found = []
    for k in range(count):
        mine = np.abs(mesh.vertices[:, 0] - (2.0 * k + 0.5)) <= 0.5  # [V] the quad's vertices
        col, row = mesh.uvs[mine].mean(axis=0) * [w, -h] + [0, h]  # type: ignore[index]
        (island,) = [p for p in mesh.islands if p.x <= col <= p.x + p.width and p.y <= row <= p.y + p.height]
        found.append(mesh.texture[island.y : island.y + island.height, island.x : island.x + island.width, :3])  # type: ignore[index]
    return found


# --- host reads of tensor values (what makes CUDA code wait for the device) --------------------------------

HOST_READS = frozenset({
    "item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__",
    "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount", "repeat_interleave",
})  # fmt: skip
"""Tensor calls that read values into Python, or size their output from the data (a host read on CUDA)."""


class HostReads(torch.overrides.TorchFunctionMode):
    """Records every host read of a tensor value (`HOST_READS`, boolean-mask indexing, a copy to the CPU).

    On the CPU nothing waits, but the same code on CUDA would synchronise at each of these, so counting them
    on the CPU checks a loop's synchronisations without a GPU. A read is recorded with the innermost
    `a3d_cli` function that made it ("module:function") and `step` (the caller's counter). Torch functions
    written in Python are seen at their entry only (the mode is off inside them), so a read hidden inside
    one (or inside a backward pass) is not seen: a proxy, completed on CUDA by `torch.cuda.set_sync_debug_mode`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, str, str]] = []  # (step, call, site)
        self.step = -1
        self._paused = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        if not self._paused and _reads_host(func, args, kwargs):
            self.reads.append((self.step, getattr(func, "__name__", str(func)), _a3d_site()))
        return func(*args, **kwargs)

    def exempt(self, monkeypatch, owner: Any, name: str, on_call: Callable[[], None] | None = None) -> None:  # noqa: ANN001
        """Wrap `owner.name` so that reads inside it are not recorded (`on_call` runs first)."""
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if on_call is not None:
                on_call()
            self._paused += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._paused -= 1

        monkeypatch.setattr(owner, name, wrapped)


def _reads_host(func: Any, args: tuple, kwargs: dict) -> bool:
    """True for a call that reads tensor values into Python (see `HOST_READS`)."""
    name = getattr(func, "__name__", "")
    if name in HOST_READS:
        return True
    if name == "__getitem__" and len(args) > 1:
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
    if name == "to":  # a real transfer to the host (`.cpu()` is recorded wherever it runs)
        target = kwargs.get("device", args[1] if len(args) > 1 else None)
        to_host = isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu"
        return to_host and isinstance(args[0], torch.Tensor) and args[0].device.type != "cpu"
    return False


def _a3d_site() -> str:
    """'module:function' of the innermost a3d_cli frame on the stack ('' when there is none)."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("a3d_cli"):
            return f"{module}:{frame.f_code.co_name}"
        frame = frame.f_back
    return ""


# -- hostile run folders: one clean error, no hang ---------------------------------------------------


def one_error_with_hint(result) -> None:  # noqa: ANN001 - a CliRunner Result
    """Exit 2 with exactly one `error:` line and a `hint:` on stderr, and no traceback."""
    assert result.exit_code == 2, result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unexpectedly" not in result.stderr and "Traceback" not in result.stderr
    assert "hint:" in result.stderr


def prepare_refusal(path: Path, run_dir: Path) -> tuple[list[str], str]:
    """Run `a3d prepare PATH -o RUN_DIR`, which must refuse PATH with one `error:` line followed by its `hint:`
    (`one_error_with_hint`); returns those two lines and the whole of stderr."""
    from typer.testing import CliRunner

    from a3d_cli.commands.prepare import prepare as prepare_command

    result = CliRunner().invoke(a3d_app("prepare", prepare_command), ["prepare", str(path), "-o", str(run_dir)])
    one_error_with_hint(result)
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert [line.split(":")[0] for line in lines] == ["error", "hint"]
    return lines, result.stderr


def in_thread(call: Callable[[], Any]) -> tuple[bool, Any]:
    """Run `call` in a daemon thread; (finished, result or exception). A read that blocks would never finish."""
    import threading

    out: list[object] = []

    def body() -> None:
        try:
            out.append(call())
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out.append(exc)

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(60)
    return (not worker.is_alive()), (out[0] if out else None)


def _normalization_with(**parts: Any) -> bytes:
    """A valid `normalization.json` (Z-up, off-centre) with some parts replaced, as JSON bytes."""
    import json

    data = fit_normalization(np.random.default_rng(0).random((50, 3)) * 10 + 5, up="+z", front="-y").to_json()
    return json.dumps({**data, **parts}).encode()


HOSTILE_NORMALIZATIONS: dict[str, bytes] = {
    "empty": b"",
    "garbage": b"{{{",
    "list": b"[]",
    "null": b"null",
    "no-parts": b"{}",
    "not-utf8": b'{"scale": "\xff"}',
    "nested-past-the-parser": b"[" * 100_000,
    "huge-integer": b'{"scale": ' + b"9" * 5000 + b"}",
    "string-scale": _normalization_with(scale="x"),
    "nan-scale": _normalization_with(scale=float("nan")),
    "zero-scale": _normalization_with(scale=0),
    "short-rotation": _normalization_with(rotation=[1, 2]),
    "not-a-rotation": _normalization_with(rotation=[[2, 0, 0], [0, 1, 0], [0, 0, 1]]),
    "short-center": _normalization_with(center=[1]),
    "unknown-axis": _normalization_with(up=["sideways"]),
}


def damage_normalization(run: Path, content: bytes | str) -> None:
    """Replace RUN/source/normalization.json with `content` (bytes), or with a named pipe for "named-pipe"."""
    norm = run / "source" / "normalization.json"
    norm.unlink()
    if content == "named-pipe":
        os.mkfifo(norm)
    else:
        norm.write_bytes(content)  # type: ignore[arg-type]
"""Ways `RUN/source/normalization.json` can be damaged or tampered with; each must be exit 2, never exit 1,
a hang, or (for a NaN scale) exit 0 with all-NaN outputs."""


# -- splat files in other layouts, encoded from their specification (independently of a3d's readers) ----------


def compressed_ply_bytes(
    g: Gaussians,
    chunk_colours: bool = True,
    sh: bool = True,
    endian: str = "<",
    comment: bool = False,
) -> bytes:
    """`g` as a SuperSplat compressed PLY, encoded from the layout's description (`docs/prepare.md`).

    Per chunk of 256 splats: the min and max of positions, log-scales and (with `chunk_colours`) display
    colours; per splat, each value's place t in its chunk's range rounded to the nearest of 2^b − 1 steps
    (11/10/11 bits for positions and log-scales, 8 bits for colours and the opacity, which is stored as it
    is), and the rotation as "smallest three": the index of the largest |component| (wxyz) in the top 2 bits,
    the sign flipped so that one is positive, the other three, in order, as round((c / √2 + 0.5) · 1023).
    SH coefficients (channel-major) become bytes trunc((v / 8 + 0.5) · 256), clamped to 0–255.
    """
    n = len(g)
    means = g.means.double().numpy()
    logs = np.log(g.scales.double().numpy())
    rgb = g.colors.double().numpy()
    alpha = g.opacities.double().numpy()
    quats = g.quats.double().numpy()
    chunks = []
    words = np.zeros((n, 4), dtype=np.uint64)

    def steps(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
        span = np.where(hi > lo, hi - lo, 1.0)
        top = 2**bits - 1
        return np.clip(np.floor((values - lo) / span * top + 0.5), 0, top).astype(np.uint64)

    for start in range(0, n, 256):
        rows = slice(start, min(start + 256, n))
        p, s, c = means[rows], logs[rows], rgb[rows]
        bounds = [p.min(0), p.max(0), s.min(0), s.max(0)] + ([c.min(0), c.max(0)] if chunk_colours else [])
        chunks.append(np.concatenate(bounds))
        qp = [steps(p[:, i], bounds[0][i], bounds[1][i], b) for i, b in enumerate((11, 10, 11))]
        qs = [steps(s[:, i], bounds[2][i], bounds[3][i], b) for i, b in enumerate((11, 10, 11))]
        if chunk_colours:
            qc = [steps(c[:, i], bounds[4][i], bounds[5][i], 8) for i in range(3)]
        else:
            qc = [steps(c[:, i], np.float64(0), np.float64(1), 8) for i in range(3)]
        qa = steps(alpha[rows], np.float64(0), np.float64(1), 8)
        words[rows, 0] = (qp[0] << 21) | (qp[1] << 11) | qp[2]
        words[rows, 2] = (qs[0] << 21) | (qs[1] << 11) | qs[2]
        words[rows, 3] = (qc[0] << 24) | (qc[1] << 16) | (qc[2] << 8) | qa
    for i, q in enumerate(quats):
        q = q / np.linalg.norm(q)
        big = int(np.argmax(np.abs(q)))
        q = -q if q[big] < 0 else q
        word = big
        for j in range(4):
            if j != big:
                word = (word << 10) | int(min(1023, max(0, np.floor((q[j] / np.sqrt(2) + 0.5) * 1023 + 0.5))))
        words[i, 1] = word
    chunk_names = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z"]
    chunk_names += ["min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
    if chunk_colours:
        chunk_names += ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
    fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
    lines = ["ply", f"format {fmt} 1.0"] + (["comment made by a3d's tests"] if comment else [])
    lines += [f"element chunk {len(chunks)}"] + [f"property float {name}" for name in chunk_names]
    lines += [f"element vertex {n}"]
    lines += [f"property uint packed_{name}" for name in ("position", "rotation", "scale", "color")]
    body = np.asarray(chunks, dtype=endian + "f4").tobytes() + words.astype(endian + "u4").tobytes()
    if sh and g.sh_rest is not None:
        channel_major = g.sh_rest.double().permute(0, 2, 1).reshape(n, -1).numpy()  # [N, 3(K-1)]
        lines += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(channel_major.shape[1])]
        body += np.clip(np.trunc((channel_major / 8 + 0.5) * 256), 0, 255).astype(np.uint8).tobytes()
    return ("\n".join([*lines, "end_header"]) + "\n").encode("ascii") + body


def splat_file_bytes(g: Gaussians) -> bytes:
    """`g` as an antimatter15 `.splat` file: per splat, position and linear scale (float32), then RGBA and the
    unit quaternion (wxyz) as bytes: colour · 255 and q · 128 + 128, clamped to 0–255 and truncated."""
    import struct

    out = bytearray()
    columns = (g.means.tolist(), g.scales.tolist(), g.colors.tolist(), g.opacities.tolist(), g.quats.tolist())
    for p, s, c, a, q in zip(*columns, strict=True):
        norm = sum(v * v for v in q) ** 0.5
        rgba = [int(min(255.0, max(0.0, v * 255.0))) for v in (*c, a)]
        rot = [int(min(255.0, max(0.0, v / norm * 128.0 + 128.0))) for v in q]
        out += struct.pack("<3f3f4B4B", *p, *s, *rgba, *rot)
    return bytes(out)


def _sh_basis_odd_in_yz() -> np.ndarray:
    """[15] −1 where a real SH basis function of degrees 1–3 (3DGS order) changes sign under (x, y, z) →
    (x, −y, −z), else 1: the polynomials evaluated at a generic direction and at its turned copy."""

    def basis(x: float, y: float, z: float) -> list[float]:
        return [
            -y, z, -x,
            x * y, y * z, 2 * z * z - x * x - y * y, x * z, x * x - y * y,
            y * (3 * x * x - y * y), x * y * z, y * (4 * z * z - x * x - y * y),
            z * (2 * z * z - 3 * x * x - 3 * y * y), x * (4 * z * z - x * x - y * y), z * (x * x - y * y),
            x * (x * x - 3 * y * y),
        ]  # fmt: skip

    p = (0.3, 0.5, 0.7)
    return np.sign(np.array(basis(p[0], -p[1], -p[2])) / np.array(basis(*p)))


def spz_blocks(g: Gaussians, version: int = 3, *, fractional_bits: int = 12, sh_bits: int = 8) -> list[bytes]:
    """`g` (in a 3DGS PLY's frame) as the six attribute blocks of a Niantic `.spz` file of `version` 1–4
    (positions, alphas, colours, scales, rotations, SH; SH empty for degree 0), encoded from the format's
    description (`docs/prepare.md`); `spz_stream` and `spz_zstd_bytes` pack them.

    The splats are turned into the format's right-up-back frame ((x, y, z) → (x, −y, −z), the quaternion's
    y, z and each SH coefficient whose basis is odd in y and z negated); positions become round(v · 2^bits) as
    24-bit integers (version 1: float16), opacities round(a · 255), colours round(f_dc · 0.15 · 255 + 127.5),
    log-scales round((log s + 10) · 16), SH round(v · 128) + 128 (rounded to `sh_bits` bits as the reference
    writer does), all clamped to bytes. Rotations (x, y, z, w), normalised: versions 3–4 as "smallest three"
    (largest index in bits 30–31, made positive; each other, in order, sign bit 9 and round(|c| / √½ · 511));
    versions 1–2 with w made positive and x, y, z as round(c · 127.5 + 127.5).
    """
    means = g.means.double().numpy() * np.array([1.0, -1.0, -1.0])
    wxyz = g.quats.double().numpy()
    xyzw = np.stack([wxyz[:, 1], -wxyz[:, 2], -wxyz[:, 3], wxyz[:, 0]], axis=-1)
    xyzw /= np.linalg.norm(xyzw, axis=-1, keepdims=True)

    def byte(v: np.ndarray) -> np.ndarray:
        return np.clip(np.round(v), 0, 255).astype(np.uint8)

    if version == 1:
        positions = means.astype("<f2").tobytes()
    else:
        fixed = np.round(means * 2.0**fractional_bits).astype(np.int64) & 0xFFFFFF
        positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, fixed >> 16], axis=-1).astype(np.uint8).tobytes()
    alphas = byte(g.opacities.double().numpy() * 255)
    f_dc = (g.colors.double().numpy() - 0.5) / 0.28209479177387814
    colours = byte(f_dc * 0.15 * 255 + 127.5)
    scales = byte((np.log(g.scales.double().numpy()) + 10) * 16)
    if version >= 3:
        words = []
        for q in xyzw:
            big = int(np.argmax(np.abs(q)))
            q = -q if q[big] < 0 else q
            word = big
            for i in range(4):
                if i != big:
                    word = (word << 10) | (int(q[i] < 0) << 9) | int(np.floor(abs(q[i]) / np.sqrt(0.5) * 511 + 0.5))
            words.append(word)
        rotations = np.array(words, dtype="<u4").tobytes()
    else:
        xyzw = np.where(xyzw[:, 3:] < 0, -xyzw, xyzw)
        rotations = byte(xyzw[:, :3] * 127.5 + 127.5).tobytes()
    sh = b""
    if g.sh_rest is not None:
        k1 = g.sh_rest.shape[1]
        rub = g.sh_rest.double().numpy() * _sh_basis_odd_in_yz()[:k1, None]  # [N, K-1, 3]
        q = np.round(rub * 128) + 128
        bucket = 2 ** (8 - sh_bits)
        q = (q + bucket // 2) // bucket * bucket
        sh = np.clip(q, 0, 255).astype(np.uint8).tobytes()
    return [positions, alphas.tobytes(), colours.tobytes(), scales.tobytes(), rotations, sh]


def _spz_degree(g: Gaussians) -> int:
    return {0: 0, 3: 1, 8: 2, 15: 3}[0 if g.sh_rest is None else g.sh_rest.shape[1]]


def spz_stream(
    g: Gaussians,
    version: int = 3,
    *,
    fractional_bits: int = 12,
    flags: int = 0,
    extensions: bytes = b"",
    sh_bits: int = 8,
) -> bytes:
    """`g` as the inflated content of a gzip `.spz` file (versions 1–3): the 16-byte header, the blocks of
    `spz_blocks`, then `extensions`; `spz_bytes` gzips it."""
    import struct

    header = struct.pack("<IIIBBBB", 0x5053474E, version, len(g), _spz_degree(g), fractional_bits, flags, 0)
    blocks = spz_blocks(g, version, fractional_bits=fractional_bits, sh_bits=sh_bits)
    return header + b"".join(blocks) + extensions


def zstd_module() -> Any:
    """The zstd module: the standard library's (Python 3.14+) or its backport."""
    import importlib

    try:
        return importlib.import_module("compression.zstd")
    except ImportError:
        return importlib.import_module("backports.zstd")


def ngsp_bytes(
    n: int,
    degree: int,
    streams: list[tuple[bytes, int]],
    *,
    version: int = 4,
    fractional_bits: int = 12,
    flags: int = 0,
    extensions: bytes = b"",
) -> bytes:
    """A version 4 `.spz` container, as the format's description lays it out (`docs/prepare.md`): the 32-byte
    header (magic, version, N, SH degree, fractional bits, flags, stream count, table offset, 12 zero bytes),
    `extensions` from byte 32, the table of contents (per stream: compressed size u64, `streams`' inflated
    size u64), then the compressed `streams` back to back."""
    import struct

    toc = 32 + len(extensions)
    header = struct.pack("<IIIBBBBI12x", 0x5053474E, version, n, degree, fractional_bits, flags, len(streams), toc)
    table = b"".join(struct.pack("<QQ", len(data), size) for data, size in streams)
    return header + extensions + table + b"".join(data for data, _ in streams)


def spz_zstd_bytes(
    g: Gaussians,
    *,
    fractional_bits: int = 12,
    flags: int = 0,
    extensions: bytes = b"",
    sh_bits: int = 8,
) -> bytes:
    """`g` as a version 4 `.spz` file: each non-empty block of `spz_blocks` compressed as one zstd frame."""
    zstd = zstd_module()
    blocks = [b for b in spz_blocks(g, 4, fractional_bits=fractional_bits, sh_bits=sh_bits) if b]
    streams = [(zstd.compress(b), len(b)) for b in blocks]
    options = {"fractional_bits": fractional_bits, "flags": flags, "extensions": extensions}
    return ngsp_bytes(len(g), _spz_degree(g), streams, **options)


def spz_bytes(g: Gaussians, version: int = 3, **options: Any) -> bytes:
    """`g` as an `.spz` file of `version`: gzip (`spz_stream`) for 1–3, zstd streams (`spz_zstd_bytes`) for 4."""
    import gzip

    if version == 4:
        return spz_zstd_bytes(g, **options)
    return gzip.compress(spz_stream(g, version, **options))
