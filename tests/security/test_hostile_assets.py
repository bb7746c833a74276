"""Hostile assets: files a glTF or OBJ names outside its own folder are never read or copied into RUN.

Each test plants a 'secret' file beside (not inside) the asset's folder, points the asset at it in one of
the ways an exporter or an attacker could, and checks that `prepare` refuses with one clear error (exit 2),
that the secret's bytes appear nowhere in the run folder, and that nothing outside the temporary folder
changed. `--allow-external-refs` is the explicit opt-in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import a3d_app, textured_sphere, write_textured_obj
from typer.testing import CliRunner

from a3d_cli.commands.prepare import prepare as prepare_command
from a3d_cli.errors import InputError
from a3d_cli.mesh.load import load_mesh
from a3d_cli.stages.prepare import PrepareOptions, run

runner = CliRunner()
FAST = ["--splats", "500", "--view-size", "32"]


def plant_secret(tmp_path: Path) -> bytes:
    """tmp/private/secret.png: a valid PNG (so a loader would happily read it) with a marker in its text chunk."""
    from PIL import Image, PngImagePlugin

    (tmp_path / "private").mkdir()
    info = PngImagePlugin.PngInfo()
    info.add_text("marker", "SECRET-KEY-MATERIAL")
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(tmp_path / "private" / "secret.png", pnginfo=info)
    return (tmp_path / "private" / "secret.png").read_bytes()


def gltf_with_image_uri(folder: Path, uri: str) -> Path:
    """folder/model.gltf (trimesh export of a textured sphere) whose image URI is replaced by `uri`."""
    import trimesh

    folder.mkdir(parents=True)
    scene = trimesh.Scene()
    scene.add_geometry(textured_sphere(6))
    for name, data in scene.export(file_type="gltf").items():
        (folder / name).write_bytes(data)
    doc = json.loads((folder / "model.gltf").read_text())
    doc["images"] = [{"uri": uri, "mimeType": "image/png"}]
    (folder / "model.gltf").write_text(json.dumps(doc))
    return folder / "model.gltf"


def assert_secret_absent(run_dir: Path, secret: bytes) -> None:
    if not run_dir.exists():
        return
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert b"SECRET-KEY-MATERIAL" not in p.read_bytes(), p
            assert p.read_bytes() != secret, p


def invoke_prepare(model: Path, run_dir: Path, *extra: str):
    return runner.invoke(
        a3d_app("prepare", prepare_command), ["prepare", str(model), "-o", str(run_dir), *FAST, *extra]
    )


def snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not (p == skip or skip in p.parents)
    }


@pytest.mark.parametrize("kind", ["relative", "absolute", "percent-encoded"])
def test_gltf_image_outside_the_asset_folder_is_refused(tmp_path, kind):
    secret = plant_secret(tmp_path)
    uri = {
        "relative": "../private/secret.png",
        "absolute": str(tmp_path / "private" / "secret.png"),
        "percent-encoded": "%2E%2E/private/secret.png",
    }[kind]
    model = gltf_with_image_uri(tmp_path / "asset", uri)
    run_dir = tmp_path / "RUN"
    before = snapshot(tmp_path, run_dir)
    result = invoke_prepare(model, run_dir)
    assert result.exit_code == 2, result.output + result.stderr
    assert "outside the asset's folder" in result.stderr and "--allow-external-refs" in result.stderr
    assert not run_dir.exists()
    assert_secret_absent(run_dir, secret)
    assert snapshot(tmp_path, run_dir) == before


def test_gltf_buffer_outside_the_asset_folder_is_refused(tmp_path):
    secret = plant_secret(tmp_path)
    model = gltf_with_image_uri(tmp_path / "asset", "gltf_buffer_0.bin")  # keep images inside
    doc = json.loads(model.read_text())
    doc["buffers"][0]["uri"] = str(tmp_path / "private" / "secret.png")
    model.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="outside the asset's folder"):
        run(tmp_path / "RUN", PrepareOptions(model=str(model), splats=500, view_size=32))
    assert_secret_absent(tmp_path / "RUN", secret)


@pytest.mark.parametrize("extension", ["EXT_texture_webp", "KHR_texture_webp"])
def test_image_named_through_a_texture_extension_is_checked_like_any_other(tmp_path, extension):
    """The texture's only image is reached through a WebP extension and lies outside the folder: refused,
    and the loader below the pre-check never reads it either."""
    secret = plant_secret(tmp_path)
    model = gltf_with_image_uri(tmp_path / "asset", "../private/secret.png")
    doc = json.loads(model.read_text())
    doc["images"][0]["mimeType"] = "image/webp"
    doc["textures"] = [{"extensions": {extension: {"source": 0}}}]
    doc["extensionsUsed"] = doc["extensionsRequired"] = [extension]
    model.write_text(json.dumps(doc))
    run_dir = tmp_path / "RUN"
    result = invoke_prepare(model, run_dir)
    assert result.exit_code == 2 and "outside the asset's folder" in result.stderr
    assert not run_dir.exists()
    assert_secret_absent(run_dir, secret)
    with pytest.raises(InputError, match="secret.png' cannot be read"):  # the loader alone refuses it too
        load_mesh(model)


def test_glb_with_an_external_image_uri_is_refused(tmp_path):
    import struct

    secret = plant_secret(tmp_path)
    (tmp_path / "asset").mkdir()
    doc = {"asset": {"version": "2.0"}, "images": [{"uri": "../private/secret.png"}]}
    body = json.dumps(doc).encode().ljust(((len(json.dumps(doc)) + 3) // 4) * 4, b" ")
    glb = b"glTF" + struct.pack("<II", 2, 20 + len(body)) + struct.pack("<II", len(body), 0x4E4F534A) + body
    (tmp_path / "asset" / "model.glb").write_bytes(glb)
    result = invoke_prepare(tmp_path / "asset" / "model.glb", tmp_path / "RUN")
    assert result.exit_code == 2 and "outside the asset's folder" in result.stderr
    assert_secret_absent(tmp_path / "RUN", secret)


def test_obj_mtllib_climbing_out_is_refused(tmp_path):
    secret = plant_secret(tmp_path)
    (tmp_path / "private" / "evil.mtl").write_text("newmtl skin\nKd 1 0 0\nmap_Kd secret.png\n")
    obj = write_textured_obj(tmp_path / "asset")
    obj.write_text(obj.read_text().replace("mtllib model.mtl", "mtllib ../private/evil.mtl"))
    result = invoke_prepare(obj, tmp_path / "RUN")
    assert result.exit_code == 2 and "evil.mtl" in result.stderr and "hint:" in result.stderr
    assert_secret_absent(tmp_path / "RUN", secret)
    assert not (tmp_path / "RUN").exists()


def test_obj_texture_with_an_absolute_path_is_refused(tmp_path):
    secret = plant_secret(tmp_path)
    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "model.mtl").write_text(f"newmtl skin\nmap_Kd {tmp_path / 'private' / 'secret.png'}\n")
    result = invoke_prepare(obj, tmp_path / "RUN")
    assert result.exit_code == 2 and "secret.png" in result.stderr
    assert_secret_absent(tmp_path / "RUN", secret)


def _nul_in_mtllib(folder: Path) -> Path:
    obj = write_textured_obj(folder)
    obj.write_text(obj.read_text().replace("mtllib model.mtl", "mtllib mo\0del.mtl"))
    return obj


def _nul_in_map_kd(folder: Path) -> Path:
    obj = write_textured_obj(folder)
    (obj.parent / "model.mtl").write_text("newmtl skin\nmap_Kd tex/albedo\0.png\n")
    return obj


def _nul_in_buffer_uri(uri: str):  # noqa: ANN202 - a builder of folder/model.gltf
    def make(folder: Path) -> Path:
        path = gltf_with_image_uri(folder, "tex.png")
        doc = json.loads(path.read_text())
        doc["buffers"][0]["uri"] = uri
        path.write_text(json.dumps(doc))  # a raw NUL is written as \u0000
        return path

    return make


@pytest.mark.parametrize(
    "make",
    [_nul_in_mtllib, _nul_in_map_kd, _nul_in_buffer_uri("mo%00del.bin"), _nul_in_buffer_uri("mo\0del.bin")],
    ids=["obj-mtllib", "mtl-map_Kd", "gltf-uri-percent-encoded", "gltf-uri-raw"],
)
@pytest.mark.parametrize("opt_in", [False, True], ids=["rooted", "allow-external-refs"])
def test_a_name_with_a_nul_byte_is_refused_before_any_path_operation(tmp_path, make, opt_in):
    """A NUL in a referenced name made every path operation raise ValueError ("embedded null byte"): exit 1."""
    model = make(tmp_path / "asset")
    result = invoke_prepare(model, tmp_path / "RUN", *(["--allow-external-refs"] if opt_in else []))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.stderr
    assert len(errors) == 1 and "a file name with a NUL byte" in errors[0] and "\\x00" in errors[0], result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr and "unexpectedly" not in result.stderr
    assert not (tmp_path / "RUN").exists()


def test_texture_that_is_a_link_out_of_the_folder_is_refused(tmp_path):
    secret = plant_secret(tmp_path)
    obj = write_textured_obj(tmp_path / "asset")
    albedo = obj.parent / "tex" / "albedo.png"
    albedo.unlink()
    albedo.symlink_to(tmp_path / "private" / "secret.png")
    result = invoke_prepare(obj, tmp_path / "RUN")
    assert result.exit_code == 2 and "outside the asset's folder" in result.stderr
    assert_secret_absent(tmp_path / "RUN", secret)


def test_references_inside_the_folder_still_work(tmp_path):
    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "mats").mkdir()
    (obj.parent / "mats" / "m.mtl").write_text("newmtl skin\nmap_Kd ../tex/albedo.png\n")  # ../ that stays inside
    obj.write_text(obj.read_text().replace("mtllib model.mtl", "mtllib mats/m.mtl"))
    result = invoke_prepare(obj, tmp_path / "RUN")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "RUN" / "source" / "original" / "tex" / "albedo.png").is_file()


def test_allow_external_refs_is_the_explicit_opt_in(tmp_path):
    plant_secret(tmp_path)
    model = gltf_with_image_uri(tmp_path / "asset", "../private/secret.png")
    result = invoke_prepare(model, tmp_path / "RUN", "--allow-external-refs")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "RUN" / "source" / "original" / "secret.png").is_file()


def test_loader_alone_never_reads_a_file_outside_the_folder(tmp_path):
    """Backstop below the pre-check: trimesh's resolver is rooted at the asset's folder."""
    plant_secret(tmp_path)
    (tmp_path / "private" / "red.mtl").write_text("newmtl skin\nKd 1 0 0\n")
    obj = write_textured_obj(tmp_path / "asset")
    obj.write_text(obj.read_text().replace("mtllib model.mtl", f"mtllib {tmp_path / 'private' / 'red.mtl'}"))
    mesh = load_mesh(obj)
    assert not np.allclose(mesh.vertex_colors[:, :3], [1, 0, 0])  # the outside material's red never arrived
    trusted = load_mesh(obj, allow_external_refs=True)
    assert np.allclose(trusted.vertex_colors[:, :3], [1, 0, 0])


def test_animate_refuses_outside_references_and_passes_the_opt_in_to_prepare(tmp_path, monkeypatch):
    from a3d_cli.cli import app
    from a3d_cli.stages import prepare

    secret = plant_secret(tmp_path)
    model = gltf_with_image_uri(tmp_path / "asset", "../private/secret.png")
    args = ["animate", str(model), "--prompt", "jumps", "--tiny-model", "-o", str(tmp_path / "RUN")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--allow-external-refs" in result.stderr
    assert not (tmp_path / "RUN").exists()
    assert_secret_absent(tmp_path / "RUN", secret)

    seen = []

    def record(run_dir, opts, rt=None):
        seen.append(opts.allow_external_refs)
        raise InputError("stop here")

    monkeypatch.setattr(prepare, "run", record)
    assert runner.invoke(app, [*args, "--allow-external-refs"]).exit_code == 2
    assert seen == [True]


def opened_paths(monkeypatch) -> list[Path]:
    """Record every file opened from now on (builtins.open, which trimesh uses, and io.open, which Path uses)."""
    import builtins
    import io

    seen: list[Path] = []
    real = builtins.open

    def spy(file, *args, **kwargs):
        if isinstance(file, (str, Path)):
            seen.append(Path(file).absolute())
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    return seen


@pytest.mark.parametrize("how", ["climbing", "link"])
def test_a_material_library_outside_the_folder_is_never_opened(tmp_path, monkeypatch, how):
    """Neither prepare's reference check nor the loader's texture check reads an outside .mtl to look for its
    maps: its name alone is refused (prepare) or left to trimesh's rooted resolver (the loader)."""
    plant_secret(tmp_path)
    evil = tmp_path / "private" / "evil.mtl"
    evil.write_text("newmtl skin\nKd 1 0 0\nmap_Kd ../asset/tex/broken.png\n")
    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "tex" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    if how == "link":
        (obj.parent / "model.mtl").unlink()
        (obj.parent / "model.mtl").symlink_to(evil)
    else:
        obj.write_text(obj.read_text().replace("mtllib model.mtl", "mtllib ../private/evil.mtl"))
    seen = opened_paths(monkeypatch)
    result = invoke_prepare(obj, tmp_path / "RUN")
    assert result.exit_code == 2 and "outside the asset's folder" in result.stderr
    mesh = load_mesh(obj)  # the outside library (and the broken image only it names) never comes into play
    assert not np.allclose(mesh.vertex_colors[:, :3], [1, 0, 0])
    assert evil not in [p.resolve() for p in seen]


def test_an_image_many_materials_use_is_checked_once(tmp_path, monkeypatch):
    """The loader's texture check reads and opens each `map_Kd` image once, however many materials name it."""
    from a3d_cli.mesh import texture_check

    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "model.mtl").write_text(
        "".join(f"newmtl m{i}\nKd 1 1 1\nmap_Kd tex/albedo.png\n" for i in range(3))
        + "newmtl m3\nmap_Kd ./tex/albedo.png\n"
    )
    decoded: list[str] = []
    real = texture_check.check_header
    monkeypatch.setattr(
        texture_check,
        "check_header",
        lambda data, image, asset, names=None: (decoded.append(image), real(data, image, asset, names)),
    )
    load_mesh(obj)
    assert decoded == ["tex/albedo.png"]


def test_a_texture_found_as_written_is_read_whatever_lies_at_its_base_name(tmp_path):
    """The resolver judges the file trimesh would open (the first name that exists), not a later fallback:
    `tex/albedo.png` is read although `albedo.png` in the asset's folder is a folder."""
    obj = write_textured_obj(tmp_path / "asset")
    (obj.parent / "albedo.png").mkdir()
    mesh = load_mesh(obj)
    assert mesh.texture is not None


def test_an_obj_vertex_of_two_numbers_is_refused_with_one_error_line(tmp_path):
    """`v 1 2` (no z) made trimesh read every position as two numbers, and a3d then failed unexpectedly (exit 1)
    on a matrix product; it is bad input: one `error:` line, a hint, exit 2, no run folder."""
    obj = tmp_path / "short.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 2\nv 0 1 0\nf 1 2 4\nf 2 3 4\n")
    result = invoke_prepare(obj, tmp_path / "RUN")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("error:") == 1 and "three numbers" in result.stderr and "hint:" in result.stderr
    assert not (tmp_path / "RUN").exists()
