"""Builders shared by several test files: tiny models and inputs, one-command CLI apps.

Tiny models of whole pipelines come from the library itself (`a3d_cli.models.mvvdm.tiny_components(seed)`,
`a3d_cli.models.sv3d.testing.tiny_models(variant, seed)`); this module holds what only tests need.
Import it as `from helpers import ...` (pytest puts `tests/` on `sys.path`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import typer


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
