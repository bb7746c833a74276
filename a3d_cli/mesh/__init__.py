"""Meshes in a3d: reading user files, normalization, mesh → static 3DGS, simplification.

Modules (import them directly; this package imports nothing heavy):
    load          user file → kind ("mesh" | "gaussians"), mesh → one `SurfaceMesh`
    surface       `SurfaceMesh` (vertices, faces, vertex colours, optional UV + texture atlas)
    appearance    colour spaces, texture sampling, atlas packing
    normalize     `Normalization` (+Y up, +Z front, centred, radius 0.9) and its JSON
    topology      welding seam copies, normals, edges, rotation ↔ quaternion
    creases       triangle soups (STL): identical corners merged, hard edges kept (`normal_groups`); the
                  copies a flat-shaded glTF primitive (no NORMAL) needs, and a file's normals' hard edges;
                  vertices split where face groups meet (`split_face_groups`)
    obj_smoothing an OBJ's smoothing groups (`s 1`, `s off`) as a label per face, for a file without `vn`
    simplify      pymeshlab quadric decimation to a bounded vertex count (imported lazily)
    first_pass    fast-simplification's collapse of large untextured meshes before MeshLab's (imported lazily)
    orientation   which way an asset faces (`--front auto`), the Y-down hint for 3DGS files
    shading       the fixed lighting baked into untextured meshes' splat colours (`--shade`), and which meshes get it
    references    files an asset names: kept inside its folder, found (`sidecar_files`) and read (`read_referenced`)
    mtl           MTL map statements: options, then a file name that may hold spaces; the files an OBJ/MTL names
    texture_check every texture image a material uses, decoded in full before trimesh reads the asset
    draco_child   Draco streams decoded in a child process with a capped address space
    to_gaussians  mesh → splats + `MeshBinding`
    binding       the vertex ↔ splat binding file (`static/binding.safetensors`)
    rigidity      ARAP projection of a deformed mesh, and the mesh of a motion clip frame by frame (`mesh_frames`)
    store         the processed mesh file (`source/mesh.glb`) whose vertex order the binding uses
    texture_limit the longest texture side `mesh-animate` writes (`--max-texture-size`)
"""
