"""benchmarks/bench_simplify.py scores surfaces by distances that geometry fixes independently."""

from __future__ import annotations

import importlib.util

import numpy as np
import trimesh
from helpers import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_simplify", REPO / "benchmarks" / "bench_simplify.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_distance_to_a_triangle_from_above_beside_an_edge_and_past_a_corner():
    bench = _bench()
    points = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    faces = np.array([[0, 1, 2]])
    queries = np.array([[0.2, 0.2, 0.5], [0.5, -0.3, 0.4], [-0.3, -0.4, 0.0], [1.0, 1.0, 0.0]])
    want = [0.5, 0.5, 0.5, np.sqrt(0.5)]  # the plane; the edge y = 0 (0.3, 0.4 off); the corner; the long edge
    dist, near = bench.surface_distance(queries, points, faces)
    np.testing.assert_allclose(dist, want, atol=1e-12)
    assert (near == 0).all()


def test_scores_of_a_surface_against_itself_and_a_smaller_copy():
    bench = _bench()
    sphere = trimesh.creation.icosphere(subdivisions=4)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    same = bench.score(v, f, v, f, n=5000)
    assert same["hausdorff_pct"] < 1e-9 and same["normal_mean_deg"] < 1e-6
    # a copy 2 % smaller, triangle for triangle: every point of either lies 2 % (of the radius 1) from the other
    # surface, up to the facets' own sag (under 0.2 % at this subdivision)
    inner = bench.score(v, f, 0.98 * v, f, n=5000)
    assert 1.8 < inner["chamfer_pct"] < 2.2 and 1.8 < inner["hausdorff_pct"] < 2.2
    # each face's nearest is its parallel copy, except near edges where a neighbour (~4° apart) can be nearer
    assert inner["normal_mean_deg"] < 0.1
