"""MV-VDM, Animate3D's multi-view video diffusion model, on diffusers.

Public API:
    MVVDMConfig, MVVDMUNet, MVVDMOutput              the network (config.py, unet.py)
    MVVDMComponents, load_components, tiny_components  everything sampling needs (components.py)
    SamplingConfig, sample_latents                   the model-free DDIM/CFG/FreeInit loop (sampling.py)
    generate_mvvideo, MVVideoOutput                  condition views + prompt → video (pipeline.py)
    mvdream_camera_embedding_input                   a3d cameras → MVDream camera input (cameras.py)
    load_mvvdm_unet, key_group                       official checkpoints (checkpoint.py)
    MVVDM_WEIGHTS, resolve_mvvdm_weights, ...        where the official files are (weights.py)
"""

from a3d_cli.models.mvvdm.cameras import mvdream_c2w, mvdream_camera_embedding_input
from a3d_cli.models.mvvdm.checkpoint import key_group, load_mvvdm_unet
from a3d_cli.models.mvvdm.components import MVVDMComponents, load_components, tiny_components
from a3d_cli.models.mvvdm.config import MVVDMConfig
from a3d_cli.models.mvvdm.pipeline import MVVideoOutput, generate_mvvideo
from a3d_cli.models.mvvdm.sampling import SamplingConfig, sample_latents
from a3d_cli.models.mvvdm.unet import MVVDMOutput, MVVDMUNet

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
