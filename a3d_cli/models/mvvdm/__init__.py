"""MV-VDM, Animate3D's multi-view video diffusion model, on diffusers.

Public API:
    MVVDMConfig, MVVDMUNet, MVVDMOutput              the network (config.py, unet.py)
    MVVDMComponents, load_components, tiny_components  everything sampling needs (components.py)
    SamplingConfig, sample_latents                   the model-free DDIM/CFG/FreeInit loop (sampling.py)
    generate_mvvideo, MVVideoOutput                  condition views + prompt → video (pipeline.py)
    mvdream_camera_embedding_input                   a3d cameras → MVDream camera input (cameras.py)
    load_mvvdm_unet, key_group                       official checkpoints (checkpoint.py)
    MVVDM_WEIGHTS, resolve_mvvdm_weights, ...        where the official files are (weights.py)
    NUM_VIEWS, NUM_FRAMES, RESOLUTION, ...           its shapes, named once (shape.py, no torch)

The names are imported on first use (PEP 562), so importing `a3d_cli.models.mvvdm.shape` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from a3d_cli.models.mvvdm.cameras import mvdream_c2w, mvdream_camera_embedding_input
    from a3d_cli.models.mvvdm.checkpoint import key_group, load_mvvdm_unet
    from a3d_cli.models.mvvdm.components import MVVDMComponents, load_components, tiny_components
    from a3d_cli.models.mvvdm.config import MVVDMConfig
    from a3d_cli.models.mvvdm.pipeline import MVVideoOutput, generate_mvvideo
    from a3d_cli.models.mvvdm.sampling import SamplingConfig, sample_latents
    from a3d_cli.models.mvvdm.unet import MVVDMOutput, MVVDMUNet

_HOMES = {  # public name → the submodule that defines it, imported on first use
    "MVVDMComponents": "components",
    "MVVDMConfig": "config",
    "MVVDMOutput": "unet",
    "MVVDMUNet": "unet",
    "MVVideoOutput": "pipeline",
    "SamplingConfig": "sampling",
    "generate_mvvideo": "pipeline",
    "key_group": "checkpoint",
    "load_components": "components",
    "load_mvvdm_unet": "checkpoint",
    "mvdream_c2w": "cameras",
    "mvdream_camera_embedding_input": "cameras",
    "sample_latents": "sampling",
    "tiny_components": "components",
}


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use, so `mvvdm.shape` (and option defaults) need no torch."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MVVDMComponents",
    "MVVDMConfig",
    "MVVDMOutput",
    "MVVDMUNet",
    "MVVideoOutput",
    "SamplingConfig",
    "generate_mvvideo",
    "key_group",
    "load_components",
    "load_mvvdm_unet",
    "mvdream_c2w",
    "mvdream_camera_embedding_input",
    "sample_latents",
    "tiny_components",
]
