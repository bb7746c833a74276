"""The lift's TSDF → mesh step on analytic volumes: the smoothing removes voxel-scale lumps and keeps thin parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from a3d_cli.lift.meshing import MeshSettings, largest_component, marching_cubes, mesh_from_tsdf
from a3d_cli.mesh.topology import vertex_normals

G = 48
"""Grid voxels per axis: small enough for a fast test, fine enough for a sphere of 14 voxels' radius."""
HALF_WIDTH = 1.0
VOXEL = 2 * HALF_WIDTH / G
TRUNCATION = 2 * VOXEL
"""As the lift truncates (`MeshSettings.truncation`: 2 voxels)."""
KEEP_ALL = 1_000_000
"""A face budget above what these surfaces have, so decimation leaves them alone."""


def grid_points() -> torch.Tensor:
    """[G, G, G, 3] voxel centres over [-HALF_WIDTH, HALF_WIDTH]³, in the order marching_cubes reads the grid."""
    c = (torch.arange(G, dtype=torch.float64) + 0.5) * VOXEL - HALF_WIDTH
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1)


def truncated(sdf: torch.Tensor, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """The lift's kind of volume: a signed distance plus seeded noise (`noise` voxels, as the fused depths
    of fitted splats carry), clamped to ±TRUNCATION, float32."""
    gen = torch.Generator().manual_seed(seed)
    noisy = sdf + noise * VOXEL * torch.randn(sdf.shape, generator=gen, dtype=sdf.dtype)
    return noisy.clamp(-TRUNCATION, TRUNCATION).float()


def raw_surface(tsdf: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes' surface as it comes (the largest piece), with nothing smoothed or decimated."""
    return largest_component(*marching_cubes(tsdf, HALF_WIDTH))


def mean_angle_to_radial(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Mean angle (degrees) between the smooth vertex normals a viewer shades with and the sphere's normal
    (the direction from the centre) at each vertex."""
    normals = vertex_normals(vertices, faces)
    radial = vertices / np.linalg.norm(vertices, axis=-1, keepdims=True)
    return float(np.degrees(np.arccos(np.einsum("vc,vc->v", normals, radial).clip(-1, 1))).mean())


def volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume of a closed mesh (divergence theorem over its faces)."""
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6)


def mean_radius(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Radius of the sphere of the mesh's volume."""
    return float((3 * volume(vertices, faces) / (4 * np.pi)) ** (1 / 3))


def test_a_noisy_sphere_meshes_with_normals_closer_to_the_spheres() -> None:
    radius = 0.6
    tsdf = truncated(grid_points().norm(dim=-1) - radius, noise=0.3)
    raw_v, raw_f = raw_surface(tsdf)
    v, f = mesh_from_tsdf(tsdf, HALF_WIDTH, MeshSettings(max_faces=KEEP_ALL))
    raw_angle, angle = mean_angle_to_radial(raw_v, raw_f), mean_angle_to_radial(v, f)
    # the noise is voxel-scale, the band Taubin's filter damps most (a quarter off at least); the sphere's
    # curvature passes it
    assert angle < 0.75 * raw_angle, (raw_angle, angle)


def test_smoothing_keeps_the_volume_and_a_level_moves_the_surface_by_its_voxels() -> None:
    radius = 0.6
    tsdf = truncated(grid_points().norm(dim=-1) - radius, noise=0.3)
    raw_v, raw_f = raw_surface(tsdf)
    assert mean_radius(raw_v, raw_f) == pytest.approx(radius, abs=0.1 * VOXEL)  # zero-mean noise: no bias
    smoothed = mesh_from_tsdf(tsdf, HALF_WIDTH, MeshSettings(max_faces=KEEP_ALL))
    assert mean_radius(*smoothed) == pytest.approx(radius, abs=0.1 * VOXEL)  # Taubin's filter does not shrink it
    for level in (0.3, -0.3):  # a level moves the surface out (in) by that many voxels
        v, f = mesh_from_tsdf(tsdf, HALF_WIDTH, MeshSettings(max_faces=KEEP_ALL, level=level))
        assert mean_radius(v, f) == pytest.approx(radius + level * VOXEL, abs=0.1 * VOXEL)


def test_a_thin_rod_keeps_its_width_through_the_smoothing() -> None:
    """A rod 5 voxels across (an ear, a tail, a leg at the CPU grid): plain Laplacian smoothing would pull
    its rim towards its axis pass by pass; the smoothed rod's radius stays the rod's."""
    radius, half_length = 2.5 * VOXEL, 0.6
    p = grid_points()
    across = p[..., 1:].norm(dim=-1) - radius
    along = p[..., 0].abs() - half_length
    tsdf = truncated(torch.maximum(across, along))  # capped cylinder (exact away from its rims)
    v, f = mesh_from_tsdf(tsdf, HALF_WIDTH, MeshSettings(max_faces=KEEP_ALL))
    raw_v, _ = raw_surface(tsdf)

    def mid_radius(vertices: np.ndarray) -> float:
        mid = np.abs(vertices[:, 0]) < 0.5 * half_length  # away from the caps
        return float(np.linalg.norm(vertices[mid, 1:], axis=-1).mean())

    assert mid_radius(v) == pytest.approx(mid_radius(raw_v), rel=0.05)
    assert mid_radius(v) == pytest.approx(radius, rel=0.1)
    assert np.ptp(v[:, 0]) == pytest.approx(np.ptp(raw_v[:, 0]), abs=VOXEL)  # its length stays too
    widened, _ = mesh_from_tsdf(tsdf, HALF_WIDTH, MeshSettings(max_faces=KEEP_ALL))  # the default level
    assert mid_radius(widened) > mid_radius(raw_v)


def test_no_smoothing_keeps_the_marching_cubes_surface() -> None:
    tsdf = truncated(grid_points().norm(dim=-1) - 0.6, noise=0.3)
    raw_v, raw_f = raw_surface(tsdf)
    v, f = mesh_from_tsdf(tsdf, HALF_WIDTH, MeshSettings(max_faces=KEEP_ALL, smoothing=0))
    assert np.array_equal(f, raw_f) and np.allclose(v, raw_v)
