"""Find a model's files on this machine, never over the network.

Why: every stage needs the same answer to "where is model X?", with the same order of places and the same
message when it is nowhere. The order is:

1. an explicit path (the calling command's option for it, e.g. ``a3d orbit --checkpoint PATH``): a file, or a
   folder holding the model;
2. ``$A3D_WEIGHTS_DIR/<repo_id>/<path in repo>``, then the flat ``$A3D_WEIGHTS_DIR/<file name>`` (single
   files) or ``$A3D_WEIGHTS_DIR/<model name>/`` (folder models);
3. the Hugging Face cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``), read through huggingface_hub's
   ``try_to_load_from_cache``, which touches only the disk, so ``HF_HUB_OFFLINE`` can never be violated.

Downloading is a separate, explicit act (`a3d_cli.weights.fetch`).

Examples:
    >>> from a3d_cli.weights import resolve, locate
    >>> ckpt = resolve("sv3d_u")              # Path to sv3d_u.safetensors, or WeightsMissing
    >>> locate("mvdream_sd15").path           # where it resolved, or None
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from a3d_cli.errors import A3DError, CheckpointError, InputError, WeightsMissing
from a3d_cli.weights.registry import ModelWeights, RepoFile, get

Source = Literal["explicit", "weights_dir", "hf_cache"]
WEIGHTS_DIR_ENV = "A3D_WEIGHTS_DIR"


@dataclass(frozen=True)
class Resolution:
    """Where a model resolves, or why it does not.

    Attributes:
        model: the registry entry.
        path: the file (``"file"`` models) or folder (``"folder"`` models); None when not found.
        source: which place supplied `path`; None when not found.
        tried: each place looked at, in order, as readable text (for messages and `a3d weights list`).
        error: the exception `resolve` raises when `path` is None (missing, bad explicit path, wrong size).
    """

    model: ModelWeights
    path: Path | None
    source: Source | None
    tried: tuple[str, ...]
    error: A3DError | None = None

    @property
    def found(self) -> bool:
        """True when the model resolves."""
        return self.path is not None



def weights_dir() -> Path | None:
    """``$A3D_WEIGHTS_DIR`` as a path (``~`` expanded), or None when unset or empty."""
    value = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time.

    Why not ``huggingface_hub.constants.HF_HUB_CACHE``: that constant is frozen when huggingface_hub is
    first imported, so a later ``HF_HOME`` (set by a wrapper script, or by a test) would be ignored.
    The precedence is huggingface_hub's own: ``HF_HUB_CACHE``, legacy ``HUGGINGFACE_HUB_CACHE``,
    ``$HF_HOME/hub``, ``$XDG_CACHE_HOME/huggingface/hub``, ``~/.cache/huggingface/hub``.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def offline_variable() -> str | None:
    """The variable that asks for no network (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``, now or when
    huggingface_hub was imported), or None; messages name the one the user set."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return var
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a hard dependency
        return None
    return "HF_HUB_OFFLINE" if constants.HF_HUB_OFFLINE else None


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network, now or at import."""
    return offline_variable() is not None


def placement(model: ModelWeights) -> str:
    """How to place `model` by hand under ``$A3D_WEIGHTS_DIR`` (a phrase starting with "put")."""
    if model.kind == "file":
        return f"put {model.flat_name} at {model.weights_dir_layout} (or $A3D_WEIGHTS_DIR/{model.flat_name})"
    return f"put the folder ({model.contents}) at {model.weights_dir_layout} (or $A3D_WEIGHTS_DIR/{model.flat_name}/)"


def fix_hint(model: ModelWeights, option: str | None = None) -> str:
    """The text that tells a user how to make `model` resolve: the fetch command, the file placement and,
    when the calling command has one, the option that gives the path (`option`, e.g. "--checkpoint")."""
    fetch = f"`a3d weights fetch {model.name}`"
    if model.gated:
        fetch += (
            f" (gated: accept the license at https://huggingface.co/{model.repo_id} and log in with "
            "`hf auth login` or set HF_TOKEN first)"
        )
    give = f", or pass the path with {option}" if option else ""
    return f"Run {fetch}, or {placement(model)}{give}."


def _missing(model: ModelWeights, tried: tuple[str, ...], option: str | None) -> WeightsMissing:
    where = f"{model.repo_id}/{model.folder}" if model.folder else model.repo_id
    return WeightsMissing(
        f"Model {model.name} is missing: no {model.contents} from Hugging Face repo {where} was found "
        f"(looked in: {'; '.join(tried)}).",
        hint=fix_hint(model, option),
    )


def _file_problem(model: ModelWeights, spec: RepoFile, path: Path) -> A3DError | None:
    """A CheckpointError when `path` has a known size and does not match it (a truncated download)."""
    if spec.size_bytes is not None:
        actual = path.stat().st_size
        if actual != spec.size_bytes:
            return CheckpointError(
                f"{path} has {actual} bytes but {model.name}'s {spec.path} has {spec.size_bytes}; "
                "the file is truncated or a different file.",
                hint=f"Delete it and run `a3d weights fetch {model.name}`.",
            )
    return None


def _find_file_in(model: ModelWeights, spec: RepoFile, folder: Path, relative_to_model: bool) -> Path | None:
    """The first candidate of `spec` that exists as a file under `folder`."""
    for cand in spec.candidates:
        rel = model.relative(cand) if relative_to_model else cand
        p = folder / rel
        if p.is_file():
            return p
    return None


def _check_folder(model: ModelWeights, folder: Path) -> tuple[bool, A3DError | None]:
    """Whether `folder` holds every required file of a folder model (and sizes agree where known)."""
    if not folder.is_dir():
        return False, None
    for spec in model.required:
        p = _find_file_in(model, spec, folder, relative_to_model=True)
        if p is None:
            return False, None
        problem = _file_problem(model, spec, p)
        if problem is not None:
            return False, problem
    return True, None


def _check_file(model: ModelWeights, path: Path) -> tuple[bool, A3DError | None]:
    if not path.is_file():
        return False, None
    problem = _file_problem(model, model.files[0], path)
    return problem is None, problem


def _from_explicit(model: ModelWeights, explicit: Path, option: str | None) -> Resolution:
    explicit = explicit.expanduser()
    tried = (f"given path {explicit}",)
    given = f"{option} " if option else ""  # how the path was given, for the hints
    if not explicit.exists():
        err = InputError(
            f"The weights path {explicit} given for {model.name} does not exist.",
            hint=f"Check the {given}path, or leave it out to let a3d look in "
            f"{model.weights_dir_layout} and the Hugging Face cache.",
        )
        return Resolution(model, None, None, tried, err)
    if model.kind == "file":
        candidates = (
            [explicit]
            if explicit.is_file()
            else [explicit / model.flat_name, *(explicit / c for c in model.files[0].candidates)]
        )
        for cand in candidates:
            ok, problem = _check_file(model, cand)
            if problem is not None:
                return Resolution(model, None, None, tried, problem)
            if ok:
                return Resolution(model, cand, "explicit", tried)
        err = InputError(
            f"The weights path {explicit} given for {model.name} is a folder without {model.flat_name}.",
            hint=f"Pass the file itself, e.g. {given}{explicit / model.flat_name}.",
        )
        return Resolution(model, None, None, tried, err)
    for cand in (explicit, explicit / model.folder) if model.folder else (explicit,):
        ok, problem = _check_folder(model, cand)
        if problem is not None:
            return Resolution(model, None, None, tried, problem)
        if ok:
            return Resolution(model, cand, "explicit", tried)
    layout = f"{model.repo_id}/{model.folder}" if model.folder else model.repo_id
    err = InputError(
        f"The weights path {explicit} given for {model.name} is not a folder holding {model.contents}.",
        hint=f"Pass the model's folder, e.g. {given}{explicit / model.flat_name} (its repo layout is {layout}).",
    )
    return Resolution(model, None, None, tried, err)


def _weights_dir_candidates(model: ModelWeights, root: Path) -> list[Path]:
    if model.kind == "file":
        return [*(root / model.repo_id / c for c in model.files[0].candidates), root / model.flat_name]
    return [root / model.repo_id / model.folder if model.folder else root / model.repo_id, root / model.flat_name]


def _from_hf_cache(model: ModelWeights, cache: Path) -> tuple[Path | None, A3DError | None]:
    """Look the model up in the HF cache (refs/main -> snapshots/<rev>/...), disk only."""
    from huggingface_hub import try_to_load_from_cache

    first = model.required[0]
    for cand in first.candidates:
        hit = try_to_load_from_cache(model.repo_id, cand, cache_dir=str(cache))
        if not isinstance(hit, str):  # None (not cached) or _CACHED_NO_EXIST (known absent upstream)
            continue
        path = Path(hit)
        if model.kind == "file":
            ok, problem = _check_file(model, path)
            return (path if ok else None), problem
        snapshot = path.parents[len(Path(cand).parts) - 1]  # strip the repo path -> snapshots/<rev>
        folder = snapshot / model.folder if model.folder else snapshot
        ok, problem = _check_folder(model, folder)
        return (folder if ok else None), problem
    return None, None


def locate(name: str, explicit: Path | None = None, option: str | None = None) -> Resolution:
    """Say where model `name` resolves, or why it does not, without raising for a missing model.

    Args:
        name: a registry name (`a3d weights list` shows them).
        explicit: a path given on the command line; when set, it is the only place looked at.
        option: the calling command's option that gives this path ("--checkpoint"), named in the hints;
            None when the command has none (`a3d weights list`).

    Returns:
        A `Resolution`; `.error` holds the exception `resolve` would raise.

    Raises:
        OptionError: `name` is not a registered model.
    """
    model = get(name)
    if explicit is not None:
        return _from_explicit(model, Path(explicit), option)

    tried: list[str] = []
    root = weights_dir()
    if root is None:
        tried.append(f"{WEIGHTS_DIR_ENV} (unset)")
    else:
        for cand in _weights_dir_candidates(model, root):
            ok, problem = _check_file(model, cand) if model.kind == "file" else _check_folder(model, cand)
            if problem is not None:
                return Resolution(model, None, None, (*tried, str(cand)), problem)
            if ok:
                return Resolution(model, cand, "weights_dir", (*tried, str(cand)))
        tried.append(f"{WEIGHTS_DIR_ENV}={root}")

    cache = hf_cache_dir()
    tried.append(f"HF cache {cache}")
    path, problem = _from_hf_cache(model, cache)
    if path is not None:
        return Resolution(model, path, "hf_cache", tuple(tried))
    return Resolution(model, None, None, tuple(tried), problem or _missing(model, tuple(tried), option))


def resolve(name: str, explicit: Path | None = None, option: str | None = None) -> Path:
    """The local path of model `name`: its file, or its folder for diffusers/transformers folders.

    Args:
        name: a registry name (``"sv3d_u"``, ``"mvdream_sd15"``, …).
        explicit: a path given on the command line; when set it must hold the model.
        option: the calling command's option that gives this path ("--checkpoint"), named in the hints.

    Returns:
        An existing file (``"file"`` models) or folder (``"folder"`` models).

    Raises:
        WeightsMissing: nowhere on this machine; the hint gives `a3d weights fetch NAME` and the placement.
        InputError: `explicit` does not exist or does not hold the model.
        CheckpointError: a file was found but its size differs from the known one.
        OptionError: `name` is not a registered model.

    Examples:
        >>> resolve("sv3d_p", explicit=Path("~/ckpt/sv3d_p.safetensors"), option="--checkpoint")
    """
    res = locate(name, explicit, option)
    if res.path is None:
        assert res.error is not None
        raise res.error
    return res.path
