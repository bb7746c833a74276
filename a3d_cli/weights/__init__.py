"""Model weights: the registry of every model file a3d uses, the local resolver, and the explicit fetcher.

Nothing here downloads at import time; only `fetch` (behind `a3d weights fetch`) opens a connection.

Examples:
    >>> from a3d_cli.weights import resolve
    >>> unet_dir = resolve("mvdream_sd15")   # folder with unet/ vae/ text_encoder/ tokenizer/
"""

from a3d_cli.weights.download import fetch
from a3d_cli.weights.registry import REGISTRY, ModelWeights, RepoFile, get, names
from a3d_cli.weights.resolver import Resolution, hf_cache_dir, is_offline, locate, resolve, weights_dir

__all__ = [
    "REGISTRY",
    "ModelWeights",
    "RepoFile",
    "Resolution",
    "fetch",
    "get",
    "hf_cache_dir",
    "is_offline",
    "locate",
    "names",
    "resolve",
    "weights_dir",
]
