"""The run manifest `RUN/a3d.json`: what each stage did, with what, and what it wrote.

Format (docs/ARTIFACTS.md):
    {"format": 1, "a3d_version": "...", "stages": {NAME: entry}}
    entry = {"status": "done" | "failed" | "running", "params": {...}, "params_digest": "sha256:...",
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
from pathlib import Path
from typing import Any

from a3d_cli import __version__
from a3d_cli.errors import RunFolderError
from a3d_cli.io.atomic import atomic_write_text
from a3d_cli.io.paths import resolve_inside
from a3d_cli.io.regular import open_regular

MANIFEST_NAME = "a3d.json"
FORMAT_VERSION = 1
_NUMBER = (int, float)
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {  # the fields a3d reads back, and the JSON types they must have
    "status": (str,),
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


RESULT_NEUTRAL: dict[str, bool] = {"result_neutral": True}
"""Field metadata (`dataclasses.field(metadata=RESULT_NEUTRAL)`) of an option that changes how a stage runs
(memory, speed) but not what it writes: recorded in the manifest's params, left out of `params_digest`, so
changing it never makes a finished stage run again."""


def digested_params(options: Any) -> Any:
    """An options dataclass as `to_jsonable` gives it, less its `RESULT_NEUTRAL` fields: what decides whether
    a finished stage is up to date."""
    params = to_jsonable(options)
    if not (dataclasses.is_dataclass(options) and not isinstance(options, type)):
        return params
    neutral = {f.name for f in dataclasses.fields(options) if f.metadata.get("result_neutral", False)}
    return {name: value for name, value in params.items() if name not in neutral}


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
    """The manifest of a run folder (an empty one when the folder has none yet)."""
    path = Path(run_dir) / MANIFEST_NAME
    if path.is_symlink():
        resolve_inside(run_dir, MANIFEST_NAME)  # a link out of RUN is refused; one inside it is read
    if not path.exists():
        return {"format": FORMAT_VERSION, "a3d_version": __version__, "stages": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunFolderError(
            f"The manifest {path} is not readable JSON ({exc}).",
            hint="Restore it, or start a new run folder.",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise RunFolderError(f"The manifest {path} is not an a3d manifest.", hint="Start a new run folder.")
    for name, entry in data["stages"].items():
        _check_entry(path, name, entry)
    return data


def _check_entry(path: Path, name: str, entry: Any) -> None:
    """Refuse a stage entry whose fields have the wrong JSON types (a hand-edited or foreign manifest)."""
    hint = f"Fix or delete the {name!r} entry in {path.name}; that stage then runs again."
    if not isinstance(entry, dict):
        raise RunFolderError(
            f"The manifest {path} has a {type(entry).__name__} for stage {name!r}, not an entry.", hint=hint
        )
    for key, types in _ENTRY_TYPES.items():
        value = entry.get(key)
        if key in entry and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
            raise RunFolderError(
                f"The manifest {path}: stage {name!r} has {key} = {value!r} ({type(value).__name__}), "
                f"expected {' or '.join(t.__name__ for t in types)}.",
                hint=hint,
            )
    if "outputs" in entry and not all(isinstance(o, str) for o in entry["outputs"]):
        raise RunFolderError(f"The manifest {path}: stage {name!r} has outputs that are not paths.", hint=hint)
    if "last_success" in entry:
        _check_entry(path, f"{name}.last_success", entry["last_success"])


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
