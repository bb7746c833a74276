"""benchmarks/bench_prepare_large.py builds the large assets it describes (checked at a small scale)."""

from __future__ import annotations

import importlib.util

import numpy as np
from helpers import REPO

from a3d_cli.gaussians.formats import read_gaussians
from a3d_cli.mesh.load import load_mesh
from a3d_cli.mesh.simplify import welded_vertex_count


def _bench():
    spec = importlib.util.spec_from_file_location("bench_prepare_large", REPO / "benchmarks" / "bench_prepare_large.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_scan_glb_is_charted_with_one_texture_per_part(tmp_path):
    bench = _bench()
    cells = 32
    bench.write_scan_glb(tmp_path / "scan.glb", cells, 4, 64)
    mesh = load_mesh(tmp_path / "scan.glb", flat_without_normals=False)  # as written (no NORMAL: prepare's reading)
    assert mesh.num_faces == 2 * cells * cells
    # 16 × 16 charts of 2 × 2 quads, each with its own (k + 1)² vertices; positions meet along chart borders
    assert mesh.num_vertices == 16 * 16 * 3 * 3
    assert welded_vertex_count(mesh) == (cells + 1) ** 2  # each grid point once: the charts share their borders
    assert mesh.texture is not None and [(p.height, p.width) for p in mesh.islands].count((64, 64)) == 4  # one atlas


def test_obj_names_one_texture_per_material(tmp_path):
    bench = _bench()
    model = bench.write_obj(tmp_path / "obj", 20, 50, 16)
    assert len(list((tmp_path / "obj/tex").glob("*.jpg"))) == 50
    mesh = load_mesh(model)
    assert mesh.num_faces == 2 * 20 * 20 and mesh.texture is not None


def test_splat_ply_is_inria_layout_of_sh_degree_3(tmp_path):
    bench = _bench()
    bench.write_splat_ply(tmp_path / "s.ply", 1234)
    g = read_gaussians(tmp_path / "s.ply")
    assert len(g) == 1234 and g.sh_degree == 3
    radii = np.linalg.norm(g.means.numpy() / np.array([1.0, 1.6, 0.8]), axis=1)
    assert abs(float(np.median(radii)) - 1.0) < 0.05  # the shell the docstring describes


def test_run_prepare_runs_the_code_of_the_tree_it_is_given(tmp_path, monkeypatch):
    """`--tree` decides which a3d runs, also when the script is started inside another checkout (`python -m`
    puts the working folder first on sys.path)."""
    tree = tmp_path / "tree"
    (tree / "a3d_cli").mkdir(parents=True)
    (tree / "a3d_cli" / "__init__.py").write_text("")
    (tree / "a3d_cli" / "cli.py").write_text(
        "import json, pathlib, sys\n"
        "run = pathlib.Path(sys.argv[sys.argv.index('-o') + 1]); run.mkdir(parents=True)\n"
        "(run / 'a3d.json').write_text(json.dumps({'stages': {'prepare': {'seconds': 12.5}}}))\n"
    )
    monkeypatch.chdir(REPO)  # a checkout with its own a3d_cli in the working folder
    row = _bench().run_prepare(tmp_path / "model.stl", tmp_path / "runs" / "x", tree)
    assert row["exit"] == 0 and row["stage_s"] == 12.5
