"""Download a model's files from the Hugging Face Hub, only when the user asks (`a3d weights fetch`).

Why a module of its own: this is the one place in a3d that may open a network connection, so the offline
rule, the gated-repo message and the choice of destination live together.

Destination: ``$A3D_WEIGHTS_DIR/<repo_id>/`` when ``A3D_WEIGHTS_DIR`` is set (plain files, the layout the
resolver reads), otherwise the Hugging Face cache (``HF_HUB_CACHE`` / ``$HF_HOME/hub``), where other tools
find them too. Each file is written by huggingface_hub to a temporary ``.incomplete`` name and renamed when
complete, so an interrupted fetch never leaves a file that resolves.
"""

from __future__ import annotations

from pathlib import Path

from a3d_cli.errors import A3DError, StageFailed, WeightsMissing
from a3d_cli.weights.registry import ModelWeights, get
from a3d_cli.weights.resolver import hf_cache_dir, locate, offline_variable, placement, weights_dir


def _placement(model: ModelWeights) -> str:
    """The hint's second half: how to do without the network."""
    return f"Or, without network, {placement(model)}."


def _translate(model: ModelWeights, exc: BaseException) -> A3DError:
    """Turn a huggingface_hub / HTTP failure into one clear a3d error."""
    from huggingface_hub import errors

    page = f"https://huggingface.co/{model.repo_id}"
    if isinstance(exc, errors.GatedRepoError):
        return WeightsMissing(
            f"Downloading {model.name} was refused: {model.repo_id} is a gated repo.",
            hint=f"Accept the license at {page}, log in with `hf auth login` (or set HF_TOKEN), then rerun "
            f"`a3d weights fetch {model.name}`.",
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return WeightsMissing(
            f"Downloading {model.name} failed: repo {model.repo_id} was not found or needs a token.",
            hint=f"Check {page} in a browser; if it is private, log in with `hf auth login`. {_placement(model)}",
        )
    if isinstance(exc, errors.LocalEntryNotFoundError):  # before EntryNotFoundError: it subclasses it
        return WeightsMissing(
            f"Downloading {model.name} failed: huggingface.co could not be reached.",
            hint=f"Check the network or proxy. {_placement(model)}",
        )
    if isinstance(exc, errors.EntryNotFoundError):
        return StageFailed(
            f"Repo {model.repo_id} has no file a3d expects for {model.name}: {exc}",
            hint="a3d's weights registry is out of date with the repo; please report it.",
        )
    return WeightsMissing(
        f"Downloading {model.name} from {model.repo_id} failed: {type(exc).__name__}: {exc}",
        hint=f"Check the network, then rerun `a3d weights fetch {model.name}`. {_placement(model)}",
    )


def plan(model: ModelWeights, listing: list[str]) -> list[str]:
    """The repo paths to download: for each file, the first candidate the repo has; optional ones if present.

    Args:
        model: the registry entry.
        listing: every path in the repo (``HfApi.list_repo_files``).

    Raises:
        StageFailed: the repo lacks a required file (the registry is wrong; an a3d bug, exit code 1).
    """
    have = set(listing)
    chosen: list[str] = []
    for spec in model.files:
        hit = next((c for c in spec.candidates if c in have), None)
        if hit is not None:
            chosen.append(hit)
        elif not spec.optional:
            raise StageFailed(
                f"Repo {model.repo_id} has none of {', '.join(spec.candidates)} for {model.name}.",
                hint="a3d's weights registry is out of date with the repo; please report it.",
            )
    return chosen


def fetch(name: str, *, token: str | None = None, force: bool = False) -> Path:
    """Download model `name` (unless it already resolves) and return its resolved path.

    Args:
        name: a registry name.
        token: a Hugging Face token; None uses the logged-in one or ``HF_TOKEN``.
        force: download again even when the model already resolves.

    Returns:
        The path `resolve(name)` now returns.

    Raises:
        WeightsMissing: offline (``HF_HUB_OFFLINE``), gated without access, or the download failed.
        StageFailed: the repo does not hold the files the registry lists.
    """
    model = get(name)
    if not force:
        already = locate(name)
        if already.path is not None:
            return already.path
    offline = offline_variable()
    if offline is not None:
        raise WeightsMissing(
            f"Cannot fetch {model.name}: {offline} is set, so a3d does not use the network.",
            hint=f"Unset {offline} to download. {_placement(model)}",
        )

    import huggingface_hub
    from huggingface_hub import errors

    root = weights_dir()
    where = {"local_dir": str(root / model.repo_id)} if root is not None else {"cache_dir": str(hf_cache_dir())}
    try:
        listing = huggingface_hub.HfApi().list_repo_files(model.repo_id, token=token)
        for repo_path in plan(model, listing):
            huggingface_hub.hf_hub_download(model.repo_id, repo_path, token=token, force_download=force, **where)
    except (errors.HfHubHTTPError, errors.EntryNotFoundError, errors.HTTPError, OSError) as exc:
        raise _translate(model, exc) from exc

    res = locate(name)
    if res.path is None:
        raise StageFailed(
            f"{model.name} was downloaded but still does not resolve ({res.error}).",
            hint="Run `a3d weights list` to see where a3d looks; please report this.",
        )
    return res.path
