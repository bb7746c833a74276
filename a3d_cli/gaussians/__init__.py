"""Gaussian splats: the container, file formats, the motion field and its regularisers."""
