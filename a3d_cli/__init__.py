"""a3d: animate static 3D models (meshes or Gaussian splats) and turn images into orbit videos."""

__version__ = "0.1.0"
