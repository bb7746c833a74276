"""The binding between a mesh and the splats made from it: how to recover every vertex's motion.

File: `RUN/static/binding.safetensors` (written by `a3d prepare` for mesh inputs, absent for 3DGS inputs).

Splat order in `static/gaussians.ply`:
- splats 0 … W-1 are the *vertex splats*, one per welded vertex (distinct position) of the mesh, numbered in
  order of first appearance in the mesh's vertex list — without UV seams, splat i is vertex i;
- splats W … W+S-1 are *surface samples*, sample j lying on face `sample_face[j]` at barycentric weights
  `sample_bary[j]`.

Tensors:
    vertex_splat  [V] int64    splat index driving mesh vertex v (mesh = RUN/source/mesh.glb, same order)
    rest_vertices [V, 3] f32   mesh vertex positions in the normalized frame (= splat centres at rest)
    faces         [T, 3] int64 the mesh's triangles (indices into the V mesh vertices)
    sample_face   [S] int64    face of each surface-sample splat
    sample_bary   [S, 3] f32   barycentric weights of each surface sample in its face
    edges         [E, 2] int64 undirected edges between vertex splats (the mesh's 1-ring graph, for rigidity
                               losses such as ARAP)

Metadata (strings): format "a3d-mesh-binding", version "1", num_vertex_splats W, num_samples S,
mesh "source/mesh.glb", frame "normalized".

Recovering motion: deformed mesh vertices = deformed splat centres[vertex_splat]; a surface sample follows
its face: Σ_k sample_bary[j, k] · vertex[faces[sample_face[j], k]] (`MeshBinding.sample_positions`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from a3d_cli.errors import InputError
from a3d_cli.io.atomic import atomic_path
from a3d_cli.run_layout import PROCESSED_MESH

BINDING_FORMAT = "a3d-mesh-binding"
BINDING_VERSION = "1"


@dataclass(frozen=True)
class MeshBinding:
    """Vertex ↔ splat correspondence (see the module docstring for the file layout)."""

    vertex_splat: np.ndarray  # [V] int64
    rest_vertices: np.ndarray  # [V, 3] float32
    faces: np.ndarray  # [T, 3] int64
    sample_face: np.ndarray  # [S] int64
    sample_bary: np.ndarray  # [S, 3] float32
    edges: np.ndarray  # [E, 2] int64
    num_vertex_splats: int

    @property
    def num_samples(self) -> int:
        return int(self.sample_face.shape[0])

    @property
    def num_splats(self) -> int:
        return self.num_vertex_splats + self.num_samples

    def vertex_positions(self, splat_means: np.ndarray) -> np.ndarray:
        """Mesh vertex positions from (possibly deformed) splat centres.

        Args:
            splat_means: [..., N, 3] splat centres (N ≥ W; only the vertex splats are read).

        Returns:
            [..., V, 3] positions in mesh-vertex order.
        """
        return np.asarray(splat_means)[..., self.vertex_splat, :]

    def sample_positions(self, vertex_positions: np.ndarray) -> np.ndarray:
        """Surface-sample positions that follow the mesh.

        Args:
            vertex_positions: [..., V, 3] mesh vertex positions.

        Returns:
            [..., S, 3] positions of the sample splats.
        """
        corners = np.asarray(vertex_positions)[..., self.faces[self.sample_face], :]  # [..., S, 3, 3]
        return np.einsum("sk,...skc->...sc", self.sample_bary, corners)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the binding as safetensors, atomically."""
        from safetensors.numpy import save

        from a3d_cli.io.safetensors_bytes import sorted_header

        tensors = {
            "vertex_splat": self.vertex_splat.astype(np.int64),
            "rest_vertices": self.rest_vertices.astype(np.float32),
            "faces": self.faces.astype(np.int64),
            "sample_face": self.sample_face.astype(np.int64),
            "sample_bary": self.sample_bary.astype(np.float32),
            "edges": self.edges.astype(np.int64).reshape(-1, 2),
        }
        meta = {
            "format": BINDING_FORMAT,
            "version": BINDING_VERSION,
            "num_vertex_splats": str(self.num_vertex_splats),
            "num_samples": str(self.num_samples),
            "mesh": PROCESSED_MESH,
            "frame": "normalized",
        }
        data = sorted_header(save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta))
        with atomic_path(Path(path)) as tmp:
            tmp.write_bytes(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MeshBinding:
        """Read a binding written by `save`.

        Raises:
            InputError: the file is missing or is not an a3d mesh binding.
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"The mesh binding {path} does not exist.", hint="Run `a3d prepare MESH -o RUN` on a mesh input."
            )
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as exc:
            raise InputError(f"{path} is not a readable safetensors file ({exc}).") from exc
        if meta.get("format") != BINDING_FORMAT:
            raise InputError(f"{path} is not an a3d mesh binding (format {meta.get('format')!r}).")
        return cls(
            vertex_splat=tensors["vertex_splat"],
            rest_vertices=tensors["rest_vertices"],
            faces=tensors["faces"],
            sample_face=tensors["sample_face"],
            sample_bary=tensors["sample_bary"],
            edges=tensors["edges"],
            num_vertex_splats=int(meta["num_vertex_splats"]),
        )
