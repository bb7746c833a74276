"""The registry of every model file a3d uses: one frozen entry per model, no downloads, no I/O.

Why: one table answers "which files does a3d need, from where, under which license, for which stage", so
`a3d weights list`, the resolver, the fetcher and the docs never disagree. Sizes and digests are only
recorded when they are known exactly; a published, rounded size is kept as display text (`approx_size`)
and never used to judge a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from a3d_cli.errors import OptionError


@dataclass(frozen=True)
class RepoFile:
    """One file a model needs, named by its path inside the Hugging Face repo.

    Attributes:
        path: path inside the repo (``"models/ip-adapter_sd15.bin"``); the preferred name.
        alternatives: other names that serve equally (``.bin`` next to ``.safetensors``); the first that
            exists wins, so a repo that ships only one of them still resolves.
        optional: fetched when the repo has it, but not needed for the model to resolve.
        size_bytes: exact size in bytes when known, else None (checked when set).
        sha256: hex SHA-256 of the content when known, else None. Recorded for callers that hash; the
            resolver only checks the size, so resolving never reads gigabytes.
    """

    path: str
    alternatives: tuple[str, ...] = ()
    optional: bool = False
    size_bytes: int | None = None
    sha256: str | None = None

    @property
    def candidates(self) -> tuple[str, ...]:
        """Every acceptable repo path, preferred first."""
        return (self.path, *self.alternatives)


@dataclass(frozen=True)
class ModelWeights:
    """One model a3d loads, and where its files live upstream.

    Attributes:
        name: a3d's name for it (the `NAME` in `a3d weights fetch NAME`).
        repo_id: Hugging Face model repo (``"org/name"``).
        kind: ``"file"``: resolves to one file; ``"folder"``: resolves to a folder holding `files`.
        files: the files needed; for ``"file"`` exactly one. Paths are relative to the repo root.
        folder: for ``"folder"`` models, the repo folder that `resolve` returns (``""`` = repo root).
        stages: the a3d commands that load it (empty: optional, no command needs it, `fetch --all` skips it).
        description: one line saying what it is.
        license: the license as far as our references know it (says so when unverified).
        gated: the repo needs a license click-through and a token before it can be downloaded.
        approx_size: published size as display text (``"9.36 GB"``), or None when unknown.
    """

    name: str
    repo_id: str
    kind: Literal["file", "folder"]
    files: tuple[RepoFile, ...]
    stages: tuple[str, ...]
    description: str
    license: str
    gated: bool = False
    folder: str = ""
    approx_size: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "file" and len(self.files) != 1:
            raise ValueError(f"{self.name}: a 'file' model has exactly one file, got {len(self.files)}")
        if self.kind == "folder" and self.folder:
            prefix = self.folder.rstrip("/") + "/"
            for f in self.files:
                for p in f.candidates:
                    if not p.startswith(prefix):
                        raise ValueError(f"{self.name}: {p!r} is not inside folder {self.folder!r}")

    @property
    def filename(self) -> str:
        """The repo path of a ``"file"`` model (preferred name)."""
        return self.files[0].path

    @property
    def required(self) -> tuple[RepoFile, ...]:
        """The files that must exist for the model to resolve."""
        return tuple(f for f in self.files if not f.optional)

    def relative(self, repo_path: str) -> str:
        """`repo_path` relative to the model's folder (for ``"folder"`` models)."""
        if self.folder:
            return repo_path[len(self.folder.rstrip("/")) + 1 :]
        return repo_path

    @property
    def contents(self) -> str:
        """What the model consists of, briefly: the file name, or the folder's top-level entries."""
        if self.kind == "file":
            return self.filename
        tops: list[str] = []
        for f in self.required:
            parts = self.relative(f.path).split("/")
            top = parts[0] + ("/" if len(parts) > 1 else "")
            if top not in tops:
                tops.append(top)
        return ", ".join(tops)

    @property
    def flat_name(self) -> str:
        """The name accepted directly under ``$A3D_WEIGHTS_DIR``: the file's basename, or the a3d name."""
        return self.filename.rsplit("/", 1)[-1] if self.kind == "file" else self.name

    @property
    def weights_dir_layout(self) -> str:
        """Where the model goes under ``$A3D_WEIGHTS_DIR`` in the repo layout (for messages and docs)."""
        if self.kind == "file":
            return f"$A3D_WEIGHTS_DIR/{self.repo_id}/{self.filename}"
        return f"$A3D_WEIGHTS_DIR/{self.repo_id}/{self.folder}".rstrip("/") + "/"


def _diffusers_component(sub: str, config: str, weights: str, legacy: str) -> tuple[RepoFile, RepoFile]:
    """The config + weights pair of one diffusers/transformers component folder (safetensors or .bin)."""
    return RepoFile(f"{sub}/{config}"), RepoFile(f"{sub}/{weights}", alternatives=(f"{sub}/{legacy}",))


_SV3D_LICENSE = "Stability AI Community License (sv3d-nc-community); accept it on the model page first"

REGISTRY: tuple[ModelWeights, ...] = (
    ModelWeights(
        name="sv3d_u",
        repo_id="stabilityai/sv3d",
        kind="file",
        files=(RepoFile("sv3d_u.safetensors"),),
        stages=("orbit",),
        description="SV3D_u: image to a 21-frame orbit at fixed elevation (sgm single file, fp32)",
        license=_SV3D_LICENSE,
        gated=True,
        approx_size="9.36 GB",
    ),
    ModelWeights(
        name="sv3d_p",
        repo_id="stabilityai/sv3d",
        kind="file",
        files=(RepoFile("sv3d_p.safetensors"),),
        stages=("orbit",),
        description="SV3D_p: image to an orbit along given camera poses (sgm single file, fp32)",
        license=_SV3D_LICENSE,
        gated=True,
        approx_size="9.37 GB",
    ),
    ModelWeights(
        name="mvdream_sd15",
        repo_id="yanqinJiang/mvdream-sd1.5-diffusers",
        kind="folder",
        files=(
            *_diffusers_component(
                "unet", "config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"
            ),
            *_diffusers_component(
                "vae", "config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"
            ),
            *_diffusers_component("text_encoder", "config.json", "model.safetensors", "pytorch_model.bin"),
            RepoFile("tokenizer/vocab.json"),
            RepoFile("tokenizer/merges.txt"),
            RepoFile("tokenizer/tokenizer_config.json"),
            RepoFile("tokenizer/special_tokens_map.json", optional=True),
            RepoFile("scheduler/scheduler_config.json", optional=True),
            RepoFile("model_index.json", optional=True),
        ),
        stages=("mvvideo", "sds"),
        description="MVDream SD1.5 4-view base of MV-VDM (diffusers folders unet/vae/text_encoder/tokenizer)",
        license="not stated in our references (MVDream conversion of SD 1.5); read the model card",
    ),
    ModelWeights(
        name="animatediff_v152",
        repo_id="guoyww/animatediff-motion-adapter-v1-5-2",
        kind="folder",
        files=(
            RepoFile("config.json"),
            RepoFile("diffusion_pytorch_model.safetensors", alternatives=("diffusion_pytorch_model.bin",)),
        ),
        stages=(),  # not needed: Animate3D's file replaces every motion-module weight (docs/mvvideo.md)
        description="AnimateDiff v2 motion adapter (optional: no stage needs it; for converting or training)",
        license="not stated in our references (AnimateDiff code is Apache-2.0); read the model card",
        approx_size="1.82 GB",
    ),
    ModelWeights(
        name="ip_adapter_sd15",
        repo_id="h94/IP-Adapter",
        kind="file",
        files=(RepoFile("models/ip-adapter_sd15.bin"),),
        stages=("mvvideo", "sds"),
        description="IP-Adapter SD1.5: image-prompt projections of the MV2V-Adapter (torch pickle, fp16)",
        license="Apache-2.0 per the h94/IP-Adapter model card (not rechecked here)",
        approx_size="44.6 MB",
    ),
    ModelWeights(
        name="ip_adapter_image_encoder",
        repo_id="h94/IP-Adapter",
        kind="folder",
        folder="models/image_encoder",
        files=(
            RepoFile("models/image_encoder/config.json"),
            RepoFile(
                "models/image_encoder/model.safetensors", alternatives=("models/image_encoder/pytorch_model.bin",)
            ),
        ),
        stages=("mvvideo", "sds"),
        description="CLIP vision encoder that feeds IP-Adapter SD1.5 (transformers folder)",
        license="Apache-2.0 per the h94/IP-Adapter model card (not rechecked here)",
    ),
    ModelWeights(
        name="animate3d_motion_modules",
        repo_id="yanqinJiang/animate3d",
        kind="file",
        files=(RepoFile("animate3d_motion_modules.ckpt"),),
        stages=("mvvideo", "sds"),
        description="Animate3D MV-VDM motion modules + I2V projections (torch pickle, 888 keys)",
        license="Apache-2.0 (yanqinJiang/animate3d model card)",
    ),
)


def names() -> tuple[str, ...]:
    """Every registered model name, in registry order."""
    return tuple(m.name for m in REGISTRY)


def get(name: str) -> ModelWeights:
    """The registry entry called `name`.

    Raises:
        OptionError: no model has that name (the hint lists the names).
    """
    for m in REGISTRY:
        if m.name == name:
            return m
    raise OptionError(f"Unknown model {name!r}.", hint=f"Known models: {', '.join(names())} (see `a3d weights list`).")
