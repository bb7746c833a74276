"""Lifting an orbit of views to a 3D asset: static splats, then a textured mesh (`a3d lift`, docs/lift.md)."""
