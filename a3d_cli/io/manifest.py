"""The run manifest `RUN/a3d.json`: what each stage did, with what, and what it wrote.

Format (docs/ARTIFACTS.md):
    {"format": 1, "a3d_version": "...", "stages": {NAME: entry}}
    entry = {"status": "done" | "failed" | "running", "recipe": int, "params": {...}, "params_digest": "sha256:...",
             "inputs": {"rel/or/external/path": "sha256:..."}, "outputs": ["rel/path", ...],
             "seconds": float, "device": str, "peak_memory_bytes": int | null, "seed": int,
             "started": iso8601, "finished": iso8601, "a3d_version": str, "metrics": {...},
             "error": str (failed only), "last_success": entry (failed only, when one existed)}
Plain JSON only: no pickles, no YAML objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from pathlib import Path
from types import UnionType
from typing import Any

from a3d_cli import __version__
from a3d_cli.errors import RunFolderError
from a3d_cli.io.atomic import atomic_write_text
from a3d_cli.io.json_data import parse_json, short_repr
from a3d_cli.io.paths import read_inside, resolve_inside
from a3d_cli.io.regular import open_regular

MANIFEST_NAME = "a3d.json"
FORMAT_VERSION = 1
_NUMBER = (int, float)
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {  # the fields a3d reads back, and the JSON types they must have
    "status": (str,),
    "recipe": (int,),
    "params": (dict,),
    "params_digest": (str,),
    "inputs": (dict,),
    "outputs": (list,),
    "seconds": _NUMBER,
    "device": (str,),
    "peak_memory_bytes": (int, type(None)),
    "seed": (int,),
    "metrics": (dict,),
    "error": (str,),
    "last_success": (dict,),
}
_METRIC_TYPES: dict[str, tuple[type, ...]] = {  # the figures `a3d info` formats as numbers, and their JSON types
    "psnr": _NUMBER,
    "psnr_static": (*_NUMBER, type(None)),
    "final_loss": (*_NUMBER, type(None)),
    "psnr_vs_coarse": _NUMBER,
    "loss_start": (dict,),
    "loss_end": (dict,),
    "view_coverage": (list,),
}
_RESTORE = "Restore a3d.json from a copy, or move this run folder aside and start a new one (-o)."


def to_jsonable(value: Any) -> Any:
    """Options dataclasses (and what they hold) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def from_jsonable(kind: Any, value: Any) -> Any:
    """An options dataclass (or a value of one of its fields) from what `to_jsonable` recorded of it.

    A dataclass is built from its recorded dict: a field the record lacks takes its default (an option this
    a3d added since), a key its class no longer has is dropped, and its `__post_init__` checks the values as
    it checks an option given on the command line. Lists become tuples where the field is a tuple; other
    values stay as recorded, so that `to_jsonable` of the result gives back what was recorded of every field
    the class still has.

    Args:
        kind: the dataclass, or a field's type (as `typing.get_type_hints` gives it).
        value: the recorded JSON value.

    Raises:
        TypeError: a required field is missing; whatever the class's checks raise for a recorded value.

    Examples:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Opts:
        ...     size: tuple[int, ...] = (1,)
        ...     new: bool = False
        >>> from_jsonable(Opts, {"size": [2, 3], "gone": 1})
        Opts(size=(2, 3), new=False)
    """
    if dataclasses.is_dataclass(kind) and isinstance(kind, type) and isinstance(value, dict):
        hints = _field_types(kind)
        fields = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: from_jsonable(hints.get(k), v) for k, v in value.items() if k in fields})
    if isinstance(value, list) and typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(from_jsonable(item, v) for v in value)
    if typing.get_origin(kind) in (typing.Union, UnionType):
        for option in typing.get_args(kind):  # `X | None`: the first type the value fits
            if (dataclasses.is_dataclass(option) and isinstance(value, dict)) or (
                isinstance(value, list) and typing.get_origin(option) is tuple
            ):
                return from_jsonable(option, value)
    return value


def _field_types(kind: type) -> dict[str, Any]:
    """A dataclass's field types (empty where its annotations cannot be evaluated: values then stay as recorded)."""
    try:
        return typing.get_type_hints(kind)
    except (NameError, TypeError):
        return {}


FIRST_RECIPE = 1
"""Every stage's first recipe (`a3d_cli.stages.base.run_stage`'s `recipe`), and the recipe of an entry that
records none: a3d wrote such entries before it recorded recipes."""


def entry_recipe(entry: dict[str, Any]) -> int:
    """The recipe a stage entry was made with (`FIRST_RECIPE` when it records none)."""
    return entry.get("recipe", FIRST_RECIPE)


RESULT_NEUTRAL: dict[str, bool] = {"result_neutral": True}
"""Field metadata (`dataclasses.field(metadata=RESULT_NEUTRAL)`) of an option that changes how a stage runs
(memory, speed) but not what it writes: recorded in the manifest's params, left out of `params_digest`, so
changing it never makes a finished stage run again."""
ADDED_OPTION: dict[str, bool] = {"added_option": True}
"""Field metadata of an option added to a stage whose default writes what the stage wrote before it existed:
left out of `params_digest` while at its default, so run folders made before it stay up to date; any other
value is digested like every option."""


def digested_params(options: Any) -> Any:
    """An options dataclass as `to_jsonable` gives it, less its `RESULT_NEUTRAL` fields and its `ADDED_OPTION`
    fields at their defaults: what decides whether a finished stage is up to date."""
    params = to_jsonable(options)
    if not (dataclasses.is_dataclass(options) and not isinstance(options, type)):
        return params
    left_out = {
        f.name
        for f in dataclasses.fields(options)
        if f.metadata.get("result_neutral", False)
        or (f.metadata.get("added_option", False) and getattr(options, f.name) == f.default)
    }
    return {name: value for name, value in params.items() if name not in left_out}


def digest_json(value: Any) -> str:
    """Stable digest of a JSON-able value (key order does not matter)."""
    text = json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def digest_path(path: Path) -> str:
    """Digest of a file's bytes, or of a folder's relative names and file bytes (each read only as a regular
    file, `a3d_cli.io.regular`)."""
    h = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open_regular(f) as fh:  # a pipe swapped in since the check is refused, not read forever
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run folder (an empty one when the folder has none yet), checked before use.

    The file is read inside RUN only and only as a regular file (`a3d_cli.io.paths.read_inside`), parsed with
    `parse_json` (bounded nesting and integers), and every field a3d reads back, and every figure
    `a3d info` shows, is checked for its JSON type and range. So code that formats or sums these values
    (`a3d info`, the summary table) never meets a string, a nested object or a number it cannot convert.

    Raises:
        RunFolderError: a link out of RUN, not a regular file (a named pipe is refused, never read), not
            JSON, not an a3d manifest, or an entry of the wrong type or range (exit code 2).
    """
    path = Path(run_dir) / MANIFEST_NAME
    if path.is_symlink():
        resolve_inside(run_dir, MANIFEST_NAME)  # a link out of RUN is refused; one inside it is read
    if not path.exists():
        return {"format": FORMAT_VERSION, "a3d_version": __version__, "stages": {}}
    raw = read_inside(run_dir, MANIFEST_NAME, hint=_RESTORE)
    try:
        data = parse_json(raw)
    except ValueError as exc:
        raise RunFolderError(f"The manifest {path} is not readable JSON ({exc}).", hint=_RESTORE) from exc
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise RunFolderError(f"The manifest {path} is not an a3d manifest.", hint=_RESTORE)
    for name, entry in data["stages"].items():
        _check_entry(path, name, entry)
    return data



def _type_names(types: tuple[type, ...]) -> str:
    """JSON types for an error message: "number or null", "whole number", "dict", "str" (int without float is
    a whole number: saying "number" of a field that refused 1.5 would contradict itself)."""
    whole = int in types and float not in types
    names = (
        "whole number" if t is int and whole else "number" if t in _NUMBER else "null" if t is type(None) else t.__name__
        for t in types
    )
    return " or ".join(dict.fromkeys(names))


def _wrong(value: Any, types: tuple[type, ...]) -> bool:
    """Whether a JSON value is not one of `types` (a JSON true/false is not a number)."""
    return not isinstance(value, types) or (isinstance(value, bool) and bool not in types)


def _check_entry(path: Path, name: str, entry: Any) -> None:
    """Refuse a stage entry whose fields have the wrong JSON types or ranges (a hand-edited or foreign manifest)."""
    hint = f"Fix or delete the {name!r} entry in {path.name}; that stage then runs again."
    if not isinstance(entry, dict):
        raise RunFolderError(
            f"The manifest {path} has a {type(entry).__name__} for stage {name!r}, not an entry.", hint=hint
        )
    for key, types in _ENTRY_TYPES.items():
        value = entry.get(key)
        if key in entry and _wrong(value, types):
            raise RunFolderError(
                f"The manifest {path}: stage {name!r} has {key} = {short_repr(value)} ({type(value).__name__}), "
                f"expected {_type_names(types)}.",
                hint=hint,
            )
    if "outputs" in entry and not all(isinstance(o, str) for o in entry["outputs"]):
        raise RunFolderError(f"The manifest {path}: stage {name!r} has outputs that are not paths.", hint=hint)
    if "recipe" in entry and entry["recipe"] < FIRST_RECIPE:  # a3d's recipes count up from 1
        raise RunFolderError(
            f"The manifest {path}: stage {name!r} has recipe = {short_repr(entry['recipe'])}, not a whole number ≥ "
            f"{FIRST_RECIPE}.",
            hint=hint,
        )
    for key in ("seconds", "peak_memory_bytes"):  # shown as "1.2 s" and "396.8 MiB": finite and not negative
        value = entry.get(key)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise RunFolderError(
                f"The manifest {path}: stage {name!r} has {key} = {short_repr(value)}, not a finite amount ≥ 0.",
                hint=hint,
            )
    if isinstance(entry.get("metrics"), dict):
        _check_metrics(path, name, entry["metrics"], hint)
    if "last_success" in entry:
        _check_entry(path, f"{name}.last_success", entry["last_success"])


def _check_metrics(path: Path, name: str, metrics: dict[str, Any], hint: str) -> None:
    """Refuse figures `a3d info` formats as numbers (PSNR, losses, view coverage) that are not numbers."""
    checks = [(key, metrics[key], types) for key, types in _METRIC_TYPES.items() if key in metrics]
    for key in ("loss_start", "loss_end"):
        if isinstance(metrics.get(key), dict) and "total" in metrics[key]:
            checks.append((f"{key}.total", metrics[key]["total"], _NUMBER))
    if isinstance(metrics.get("view_coverage"), list):
        checks += [("view_coverage", c, _NUMBER) for c in metrics["view_coverage"]]
    for key, value, types in checks:
        if _wrong(value, types):
            raise RunFolderError(
                f"The manifest {path}: stage {name!r} has metrics.{key} = {short_repr(value)}, "
                f"expected {_type_names(types)}.",
                hint=hint,
            )


def save_manifest(run_dir: Path, data: dict[str, Any]) -> None:
    """Write the manifest atomically."""
    data["format"] = FORMAT_VERSION
    data["a3d_version"] = __version__
    atomic_write_text(Path(run_dir) / MANIFEST_NAME, json.dumps(data, indent=2, sort_keys=False) + "\n")


def update_stage(run_dir: Path, stage: str, entry: dict[str, Any]) -> None:
    """Replace one stage's entry (the caller holds the run lock)."""
    data = load_manifest(run_dir)
    data["stages"][stage] = entry
    save_manifest(run_dir, data)
