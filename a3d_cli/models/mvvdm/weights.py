"""Where MV-VDM's four official files are: explicit paths from the options, else the weights resolver.

One place for the lookup that `a3d mvvideo`, `a3d sds` and `a3d animate` all run before heavy work, so
the three commands agree on which files are needed and say the same thing when some are missing.

Examples:
    >>> missing = mvvdm_weights_missing({"mvdream_sd15": None})  # doctest: +SKIP
    >>> paths = resolve_mvvdm_weights(explicit_weights(opts))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

MVVDM_WEIGHTS = ("mvdream_sd15", "ip_adapter_sd15", "ip_adapter_image_encoder", "animate3d_motion_modules")
"""Registry names (`a3d weights list`) of the files MV-VDM is assembled from, in `load_components` order."""
MVVDM_OPTIONS = dict(zip(MVVDM_WEIGHTS, ("--mvdream", "--ip-adapter", "--image-encoder", "--motion-modules"), strict=True))
"""Registry name → the option of `a3d mvvideo`, `a3d sds` and `a3d animate` that gives its path."""


class HasMVVDMPaths(Protocol):
    """Stage options that carry the four explicit MV-VDM paths (`--mvdream` … `--motion-modules`)."""

    @property
    def mvdream(self) -> str | None: ...
    @property
    def ip_adapter(self) -> str | None: ...
    @property
    def image_encoder(self) -> str | None: ...
    @property
    def motion_modules(self) -> str | None: ...


def explicit_weights(opts: HasMVVDMPaths) -> dict[str, Path | None]:
    """Registry name → the path given on the command line (None: look it up).

    Args:
        opts: any options dataclass with `mvdream`, `ip_adapter`, `image_encoder` and `motion_modules` fields.
    """
    paths = (opts.mvdream, opts.ip_adapter, opts.image_encoder, opts.motion_modules)
    return {name: (Path(p).expanduser() if p else None) for name, p in zip(MVVDM_WEIGHTS, paths, strict=True)}


def mvvdm_weights_missing(explicit: dict[str, Path | None] | None = None) -> list[str]:
    """Registry names of MV-VDM files not found on this machine (empty: the model can be loaded).

    Args:
        explicit: registry name → a path given on the command line (None: look it up).
    """
    from a3d_cli.weights.resolver import locate

    explicit = explicit or {}
    return [name for name in MVVDM_WEIGHTS if locate(name, explicit.get(name), MVVDM_OPTIONS[name]).path is None]


def resolve_mvvdm_weights(
    explicit: dict[str, Path | None] | None = None,
    *,
    needed_by: str | None = None,
    alternative: str | None = None,
) -> dict[str, Path]:
    """Find every MV-VDM file (a pre-flight check, before any heavy work).

    Args:
        explicit: registry name → a path given on the command line (None: A3D_WEIGHTS_DIR, then the HF cache).
        needed_by: the feature that needs MV-VDM, named in the error ("4D-SDS"); None: MV-VDM itself.
        alternative: a last sentence for the hint, e.g. how to do without the model.

    Returns:
        registry name → path of every file in `MVVDM_WEIGHTS`.

    Raises:
        WeightsMissing: files are missing; the message names each (repo and file), the hint the fetch commands.
        InputError / CheckpointError: an explicit path that does not hold the model, or a truncated file.
    """
    from a3d_cli.errors import WeightsMissing
    from a3d_cli.weights import get, resolve

    explicit = explicit or {}
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in MVVDM_WEIGHTS:
        try:
            found[name] = resolve(name, explicit.get(name), MVVDM_OPTIONS[name])
        except WeightsMissing:
            missing.append(name)
    if missing:
        described = "; ".join(f"{n} ({get(n).repo_id}: {get(n).contents})" for n in missing)
        fetches = " and ".join(f"`a3d weights fetch {n}`" for n in missing)
        needs = f"{needed_by} uses MV-VDM, which needs" if needed_by else "MV-VDM needs"
        hint = (
            f"Run {fetches} (or `a3d weights fetch --for mvvideo`), set A3D_WEIGHTS_DIR, or pass the paths with "
            f"{'/'.join(MVVDM_OPTIONS[n] for n in missing)}. See `a3d weights list`."
        )
        raise WeightsMissing(
            f"{needs} {len(missing)} model file(s) that are not on this machine: {described}.",
            hint=f"{hint} {alternative}" if alternative else hint,
        )
    return found


__all__ = ["MVVDM_OPTIONS", "MVVDM_WEIGHTS", "HasMVVDMPaths", "explicit_weights", "mvvdm_weights_missing", "resolve_mvvdm_weights"]
