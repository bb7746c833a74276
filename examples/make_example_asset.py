"""Make the bundled example asset: a small textured fox, `examples/assets/fox.glb`.

Usage:
    python examples/make_example_asset.py                 # writes examples/assets/fox.glb
    python examples/make_example_asset.py --out my.glb    # somewhere else

Why procedural: the asset every quickstart and test uses must be small, free of licences and reproducible.
It is built like a real glTF character so it exercises the real input path:
- several nodes with their own transforms (body, head, snout, ears, eyes, tail) and one leg mesh instanced
  four times, all flattened by `a3d prepare`;
- one shared PBR material with a 512² base-colour texture (UV-mapped: orange fur with a white belly, chest and
  tail tip, dark paws, ear tips and nose) and a base-colour factor that is not white, so loaders must apply it;
- glTF conventions: +Y up, the fox faces +Z (it looks at the azimuth-0 camera), metres, ~0.9 m long;
- parts that can move on their own (head, tail, legs, ears) for the animation stages;
- about 3.5k vertices, UV seams included, so welding and the splat binding are exercised.

The output is deterministic (no randomness) and under 1 MB.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

Rect = tuple[float, float, float, float]  # u0, v0, u1, v1 in the texture (origin bottom-left)

# Texture regions, one per part.
BODY: Rect = (0.0, 0.5, 0.5, 1.0)
HEAD: Rect = (0.5, 0.5, 1.0, 1.0)
TAIL: Rect = (0.0, 0.25, 0.5, 0.5)
LEG: Rect = (0.5, 0.25, 1.0, 0.5)
EAR: Rect = (0.0, 0.0, 0.5, 0.25)
EYE: Rect = (0.5, 0.0, 0.75, 0.25)
SNOUT: Rect = (0.75, 0.0, 1.0, 0.25)

ORANGE = np.array([0.93, 0.47, 0.16])
CREAM = np.array([0.97, 0.93, 0.86])
DARK = np.array([0.16, 0.11, 0.09])
BASE_COLOR_FACTOR = (1.0, 0.95, 0.9, 1.0)  # linear; warms the texture slightly (exercises factor handling)


def grid_surface(
    nu: int, nv: int, point: Callable[[np.ndarray, np.ndarray], np.ndarray], rect: Rect
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed-around, open-ended parametric surface on an (nu+1)×(nv+1) grid with a UV seam.

    Args:
        nu: segments around (s ∈ [0, 1], s = 0 and 1 are the same place: the seam).
        nv: segments along (t ∈ [0, 1], pole to pole).
        point: (s [P], t [P]) → [P, 3] positions.
        rect: texture region the (s, t) square maps to.

    Returns:
        vertices [V, 3], faces [T, 3] (outward, counter-clockwise), uv [V, 2].
    """
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="xy")  # [nv+1, nu+1]
    s, t = s.ravel(), t.ravel()
    vertices = point(s, t)
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nv + 1, nu + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    # drop triangles collapsed at the poles (two corners at the same place)
    tri = vertices[faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
    faces = faces[area > 1e-12]
    # orient outward: normals should point away from the centroid on average
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.sum(normal * (tri.mean(1) - vertices.mean(0))) < 0:
        faces = faces[:, ::-1]
    used = np.unique(faces)
    remap = np.full(len(vertices), -1)
    remap[used] = np.arange(len(used))
    u0, v0, u1, v1 = rect
    uv = np.stack([u0 + s * (u1 - u0), v0 + t * (v1 - v0)], axis=-1)
    return vertices[used], remap[faces], uv[used]


def ellipsoid(radii: tuple[float, float, float]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Ellipsoid around the Z axis: s = angle around Z (0 = -Y, the belly), t = from -Z to +Z."""
    rx, ry, rz = radii

    def point(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        theta, phi = 2 * np.pi * s, np.pi * t
        ring = np.sin(phi)
        return np.stack([rx * ring * np.sin(theta), -ry * ring * np.cos(theta), -rz * np.cos(phi)], axis=-1)

    return point


def tube(
    center: Callable[[np.ndarray], np.ndarray], radius: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A tube around a curve (t along it, s around it), frames from a fixed reference direction."""

    def point(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        c = center(t)
        eps = 1e-3
        tangent = center(np.clip(t + eps, 0, 1)) - center(np.clip(t - eps, 0, 1))
        tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
        ref = np.array([1.0, 0.0, 0.0])
        n1 = np.cross(tangent, ref)
        n1 /= np.linalg.norm(n1, axis=-1, keepdims=True)
        n2 = np.cross(tangent, n1)
        theta = 2 * np.pi * s
        r = radius(t)[:, None]
        return c + r * (np.cos(theta)[:, None] * n1 + np.sin(theta)[:, None] * n2)

    return point


def rounded_end(t: np.ndarray, length: float) -> np.ndarray:
    """Radius multiplier closing a tube with a round cap over its last `length` of t."""
    return np.sqrt(np.clip((1 - t) / length, 0, 1) * (2 - np.clip((1 - t) / length, 0, 1)))


def paint_texture(size: int = 512) -> np.ndarray:
    """The 512² sRGB texture: a colour function per region, with soft procedural fur variation."""
    j, i = np.meshgrid(np.arange(size), np.arange(size), indexing="xy")
    u = (j + 0.5) / size
    v = 1.0 - (i + 0.5) / size
    img = np.zeros((size, size, 3))

    def region(rect: Rect) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u0, v0, u1, v1 = rect
        mask = (u >= u0) & (u < u1) & (v >= v0) & (v < v1)
        return mask, (u - u0) / (u1 - u0), (v - v0) / (v1 - v0)

    def blend(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
        w = np.clip(w, 0, 1)[..., None]
        return a * (1 - w) + b * w

    fur = 1.0 + 0.06 * np.sin(40 * u + 7 * np.sin(25 * v)) * np.sin(55 * v)  # gentle streaks
    # body: s = 0 (and 1) is the belly → cream band around s ∈ {0, 1}, darker back stripe at s = 0.5
    m, s, t = region(BODY)
    belly = np.clip(1.0 - np.minimum(s, 1 - s) / 0.14, 0, 1)
    back = np.exp(-(((s - 0.5) / 0.06) ** 2)) * 0.25
    body = blend(ORANGE * (1 - back)[..., None], CREAM, belly)
    img[m] = body[m]
    # head: cream cheeks on the lower front (s near 0 = under, t near 1 = front)
    m, s, t = region(HEAD)
    cheek = np.clip((t - 0.55) / 0.15, 0, 1) * np.clip(1.0 - np.minimum(s, 1 - s) / 0.22, 0, 1)
    img[m] = blend(np.broadcast_to(ORANGE, img.shape), CREAM, cheek)[m]
    # snout: cream with a dark nose at the tip (t near 1)
    m, s, t = region(SNOUT)
    img[m] = blend(np.broadcast_to(CREAM, img.shape), DARK, (t - 0.82) / 0.05)[m]
    # tail: orange, cream tip (t near 1)
    m, s, t = region(TAIL)
    img[m] = blend(np.broadcast_to(ORANGE, img.shape), CREAM, (t - 0.78) / 0.06)[m]
    # legs: t runs from the hip (0) down to the paw (1): dark paws at the bottom
    m, s, t = region(LEG)
    img[m] = blend(np.broadcast_to(ORANGE * 0.85, img.shape), DARK, (t - 0.62) / 0.1)[m]
    # ears: orange, dark tips (t near 1)
    m, s, t = region(EAR)
    img[m] = blend(np.broadcast_to(ORANGE, img.shape), DARK, (t - 0.6) / 0.1)[m]
    # eyes: dark with a small highlight
    m, s, t = region(EYE)
    glint = np.exp(-(((s - 0.3) / 0.06) ** 2 + ((t - 0.7) / 0.06) ** 2))
    img[m] = blend(np.broadcast_to(DARK * 0.6, img.shape), np.ones(3), glint)[m]
    img *= np.where((img.sum(-1, keepdims=True) > 0.6), fur[..., None], 1.0)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def rotation_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    m = np.eye(4)
    m[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return m


def translate(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def build_fox() -> object:
    """The fox as a trimesh Scene (nodes with transforms, one shared textured material)."""
    import trimesh
    from PIL import Image
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    material = PBRMaterial(
        name="fox_fur",
        baseColorTexture=Image.fromarray(paint_texture(512)),
        baseColorFactor=[int(round(c * 255)) for c in BASE_COLOR_FACTOR],
        metallicFactor=0.0,
        roughnessFactor=0.9,
    )

    def part(surface: tuple[np.ndarray, np.ndarray, np.ndarray]) -> object:
        v, f, uv = surface
        return trimesh.Trimesh(v, f, visual=TextureVisuals(uv=uv, material=material), process=False)

    scene = trimesh.Scene()
    # body: long axis Z, centred at hip height
    scene.add_geometry(
        part(grid_surface(40, 24, ellipsoid((0.2, 0.19, 0.36)), BODY)),
        node_name="body",
        geom_name="body",
        transform=translate(0, 0.42, 0),
    )
    # head: sphere-ish, ahead of and above the body, tilted slightly down
    scene.add_geometry(
        part(grid_surface(32, 20, ellipsoid((0.16, 0.15, 0.17)), HEAD)),
        node_name="head",
        geom_name="head",
        transform=translate(0, 0.62, 0.38) @ rotation_x(8),
    )

    def snout_center(t: np.ndarray) -> np.ndarray:
        return np.stack([0 * t, -0.02 * t, 0.08 + 0.17 * t], -1)

    scene.add_geometry(
        part(grid_surface(16, 10, tube(snout_center, lambda t: 0.075 * np.sqrt(np.clip(1 - t, 0, 1))), SNOUT)),
        node_name="snout",
        geom_name="snout",
        parent_node_name="head",
    )
    for side, x in (("left", 0.085), ("right", -0.085)):

        def ear_center(t: np.ndarray, x: float = x) -> np.ndarray:
            return np.stack([x + 0.02 * np.sign(x) * t, 0.1 + 0.16 * t, -0.02 + 0 * t], -1)

        scene.add_geometry(
            part(grid_surface(12, 6, tube(ear_center, lambda t: 0.065 * (1 - t)), EAR)),
            node_name=f"ear_{side}",
            geom_name=f"ear_{side}",
            parent_node_name="head",
        )
        scene.add_geometry(
            part(grid_surface(12, 8, ellipsoid((0.025, 0.028, 0.02)), EYE)),
            node_name=f"eye_{side}",
            geom_name=f"eye_{side}",
            parent_node_name="head",
            transform=translate(x * 0.75, 0.045, 0.145),
        )

    def tail_center(t: np.ndarray) -> np.ndarray:
        return np.stack([0.05 * np.sin(np.pi * t), 0.02 + 0.22 * t - 0.1 * t**2, -0.05 - 0.42 * t], -1)

    def tail_radius(t: np.ndarray) -> np.ndarray:
        return (0.035 + 0.075 * np.sin(np.pi * np.clip(t, 0, 1) ** 0.8) * (1 - 0.3 * t)) * rounded_end(t, 0.12)

    tail = grid_surface(24, 20, tube(tail_center, tail_radius), TAIL)
    scene.add_geometry(part(tail), node_name="tail", geom_name="tail", transform=translate(0, 0.46, -0.28))
    # one leg mesh, instanced four times (glTF nodes sharing a mesh)
    leg = part(
        grid_surface(
            12,
            8,
            tube(
                lambda t: np.stack([0 * t, -0.34 * t, 0.02 * t], -1),
                lambda t: (0.05 - 0.015 * t) * rounded_end(t, 0.12),
            ),
            LEG,
        )
    )
    for name, x, z in (
        ("leg_front_left", 0.1, 0.22),
        ("leg_front_right", -0.1, 0.22),
        ("leg_back_left", 0.11, -0.2),
        ("leg_back_right", -0.11, -0.2),
    ):
        scene.add_geometry(leg, node_name=name, geom_name="leg", transform=translate(x, 0.36, z))
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "assets" / "fox.glb", help="output .glb path"
    )
    args = parser.parse_args()
    scene = build_fox()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = scene.export(file_type="glb")  # type: ignore[attr-defined]
    args.out.write_bytes(data)
    dumped = scene.dump()  # type: ignore[attr-defined]
    vertices = sum(len(m.vertices) for m in dumped)
    print(f"wrote {args.out} ({len(data) / 1024:.0f} KiB, {len(dumped)} mesh instances, {vertices} vertices)")


if __name__ == "__main__":
    main()
