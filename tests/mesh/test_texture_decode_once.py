"""Each texture image's pixels are decoded once while an asset is read (for the bake), while an image that cannot
be opened or decoded is still refused with its name, before trimesh could drop it without a word."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import GL_FLOAT, GL_UINT, GlbBuilder, png_bytes
from PIL import ImageFile

from a3d_cli.errors import InputError
from a3d_cli.mesh.load import load_mesh

QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
QUAD_UV = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
QUAD_FACES = np.array([0, 1, 2, 0, 2, 3], np.uint32)


@pytest.fixture
def decodes(monkeypatch) -> list[tuple[int, int]]:
    """Records the size of every image whose pixels Pillow decodes (an `ImageFile.load` with tiles to read)."""
    seen: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load

    def load(self):  # noqa: ANN001, ANN202
        if getattr(self, "tile", None):
            seen.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return seen


def quads_glb(path, images: list[bytes], material_of_quad: list[int], image_names: list[str] = ()):
    """A GLB of one quad per entry of `material_of_quad`, each using that material; material k's base-colour
    texture is image k, named by `image_names` where given."""
    b = GlbBuilder()
    b.doc["samplers"] = [{}]
    for k, data in enumerate(images):
        b.doc.setdefault("textures", []).append({"sampler": 0, "source": b.image(data, "image/png")})
        b.doc.setdefault("materials", []).append({"pbrMetallicRoughness": {"baseColorTexture": {"index": k}}})
    for k, name in enumerate(image_names):
        b.doc["images"][k]["name"] = name
    for q, material in enumerate(material_of_quad):
        attributes = {"POSITION": b.accessor((QUAD + [2.0 * q, 0, 0]).astype(np.float32), GL_FLOAT, "VEC3"),
                      "TEXCOORD_0": b.accessor(QUAD_UV, GL_FLOAT, "VEC2")}  # fmt: skip
        b.mesh(attributes, b.accessor(QUAD_FACES, GL_UINT, "SCALAR"), material=material)
    return b.save(path)


def noise(size: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_each_gltf_texture_image_is_decoded_once(tmp_path, decodes):
    """Three images of distinct sizes, one of them used by two quads: each image's pixels are decoded exactly
    once while the asset is read, and the texels read are the file's."""
    sizes = [(16, 24), (20, 12), (8, 8)]
    images = [noise(s, k) for k, s in enumerate(sizes)]
    path = quads_glb(tmp_path / "three.glb", [png_bytes(im) for im in images], [0, 1, 2, 0])
    mesh = load_mesh(path)
    assert sorted(decodes) == sorted((w, h) for h, w in sizes)
    assert mesh.texture is not None


def test_each_obj_texture_image_is_decoded_once(tmp_path, decodes):
    """An OBJ whose two materials name one image and a third names another: two decodes in all."""
    from PIL import Image

    Image.fromarray(noise((10, 14), 1)).save(tmp_path / "a.png")
    Image.fromarray(noise((6, 6), 2)).save(tmp_path / "b.png")
    (tmp_path / "m.mtl").write_text("newmtl one\nKd 1 1 1\nmap_Kd a.png\nnewmtl two\nKd 1 1 1\nmap_Kd a.png\n"
                                    "newmtl three\nKd 1 1 1\nmap_Kd b.png\n")  # fmt: skip
    lines = ["mtllib m.mtl"]
    for q, material in enumerate(("one", "two", "three")):
        lines += [f"v {2 * q + x} {y} 0" for x, y in ((0, 0), (1, 0), (1, 1), (0, 1))]
        lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", f"usemtl {material}"]
        first = 4 * q + 1
        lines += [f"f {first}/{first} {first + 1}/{first + 1} {first + 2}/{first + 2} {first + 3}/{first + 3}"]
    (tmp_path / "model.obj").write_text("\n".join(lines) + "\n")
    load_mesh(tmp_path / "model.obj")
    assert sorted(decodes) == [(6, 6), (14, 10)]


def test_a_png_cut_short_after_its_header_is_refused_by_its_name(tmp_path):
    """Pillow opens the header of a PNG that stops half-way through its pixels; its one decoding (the bake) fails,
    and the message names the image as the glTF names it, as the up-front check did."""
    data = png_bytes(noise((64, 64), 3))
    path = quads_glb(tmp_path / "cut.glb", [data[: len(data) // 2]], [0], image_names=["skin"])
    with pytest.raises(InputError, match="texture image 'skin' cannot be decoded") as caught:
        load_mesh(path)
    assert caught.value.hint


def test_a_spec_gloss_diffuse_image_cut_short_is_still_refused(tmp_path):
    """trimesh decodes a KHR_materials_pbrSpecularGlossiness diffuse texture itself (to make a base colour) and
    drops it silently when that fails: such an image is decoded in full by the check, and refused."""
    data = png_bytes(noise((64, 64), 4))
    b = GlbBuilder()
    b.doc["samplers"] = [{}]
    b.doc["textures"] = [{"sampler": 0, "source": b.image(data[: len(data) // 2], "image/png")}]
    b.doc["materials"] = [{"extensions": {"KHR_materials_pbrSpecularGlossiness": {"diffuseTexture": {"index": 0}}}}]
    b.use("KHR_materials_pbrSpecularGlossiness")
    attributes = {"POSITION": b.accessor(QUAD, GL_FLOAT, "VEC3"), "TEXCOORD_0": b.accessor(QUAD_UV, GL_FLOAT, "VEC2")}
    b.mesh(attributes, b.accessor(QUAD_FACES, GL_UINT, "SCALAR"), material=0)
    with pytest.raises(InputError, match="cannot be decoded"):
        load_mesh(b.save(tmp_path / "gloss.glb"))
