"""Which recorded stages of a run folder the next run would run again, and why, told from the manifest.

`a3d info` shows it. The decision is the runner's own (`base.stale_reasons`), asked with what can be known
without running a stage: this a3d's `RECIPE` of each stage, the recorded options as this a3d's options class
reads them (digested as the runner digests them, so an option this a3d added counts), the files the stage wrote,
and the digests of the run-folder files it read. Those are hashed only where the manifest says an earlier stage
wrote them again after this one ran, or when the caller asks for all (`hash_inputs`): hashing every input of
thousands of run folders costs what a resume costs. Files outside the run folder (the model given on the command
line) are never read because a manifest names them; the next run compares them.

What cannot be known without running is said as "may run again": a stage after one that runs again runs
again only when the files it reads come out different.

Examples:
    >>> outlook = run_outlook(Path("runs/fox"), load_manifest(Path("runs/fox")))  # doctest: +SKIP
    >>> outlook["prepare"].verdict, [r.message for r in outlook["prepare"].reasons]  # doctest: +SKIP
    ('runs_again', ['made by an older a3d (recipe 1, now 2)'])
"""

from __future__ import annotations

import datetime as _dt
import importlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from a3d_cli.io.manifest import digest_path, entry_recipe, from_jsonable, to_jsonable
from a3d_cli.io.paths import check_links_inside, resolve_inside
from a3d_cli.stages.base import StaleReason, params_digest, shortlist, stale_reasons

STAGE_MODULES: dict[str, tuple[str, str]] = {
    "orbit": ("a3d_cli.stages.orbit", "OrbitOptions"),
    "lift": ("a3d_cli.stages.lift", "LiftOptions"),
    "prepare": ("a3d_cli.stages.prepare", "PrepareOptions"),
    "mvvideo": ("a3d_cli.stages.mvvideo", "MVVideoOptions"),
    "reconstruct": ("a3d_cli.stages.reconstruct", "RecordedOptions"),
    "sds": ("a3d_cli.stages.sds", "SdsOptions"),
    "mesh-animate": ("a3d_cli.stages.mesh_animate", "MeshAnimateOptions"),
    "export": ("a3d_cli.stages.export", "ExportOptions"),
}
"""Each stage's manifest name → its module (which declares `RECIPE`) and the options class it hands `run_stage`
(imported only for the stages a manifest records: `reconstruct`'s pulls in torch)."""

Verdict = Literal["up_to_date", "runs_again", "may_run_again", "unknown"]
MAYBE_KINDS = frozenset({"upstream", "options_unread"})
"""Reasons that say a stage may run again (the next run tells), where the others say it will."""


@dataclass(frozen=True)
class StageOutlook:
    """What the next run would do with one recorded stage.

    Attributes:
        stage: its manifest name.
        verdict: "up_to_date" (skipped, given the options and seed it recorded), "runs_again", "may_run_again",
            or "unknown" (a stage this a3d does not have).
        reasons: why, in the runner's words; empty when up to date.
        recipe: the recipe its entry was made with (None while it is not finished).
        current_recipe: this a3d's recipe of the stage (None when unknown).
        follows: the stages it reads files of that run, or may run, again.
        hashed_inputs: the run-folder inputs whose bytes were digested to tell.
    """

    stage: str
    verdict: Verdict
    reasons: tuple[StaleReason, ...] = ()
    recipe: int | None = None
    current_recipe: int | None = None
    follows: tuple[str, ...] = ()
    hashed_inputs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (`a3d --json info`)."""
        return {
            "verdict": self.verdict,
            "reasons": [{"kind": r.kind, "message": r.message, "paths": list(r.paths)} for r in self.reasons],
            "recipe": self.recipe,
            "current_recipe": self.current_recipe,
            "follows": list(self.follows),
            "hashed_inputs": list(self.hashed_inputs),
        }


def run_outlook(run_dir: Path, manifest: dict[str, Any], hash_inputs: bool = False) -> dict[str, StageOutlook]:
    """Every recorded stage's outlook, in the manifest's order.

    Args:
        run_dir: the run folder.
        manifest: its manifest, as `load_manifest` gives it (loaded and checked).
        hash_inputs: digest every run-folder file each stage read, which also notices a file changed by hand.

    Raises:
        RunFolderError: a path in the manifest that leaves the run folder, or a link out of it (exit code 2).
    """
    stages = manifest["stages"]
    producers = {name: _producers(name, stages) for name in stages}
    own = {name: _own_outlook(run_dir, name, stages, producers[name], hash_inputs) for name in stages}
    return _with_upstream(own, producers)


def _done(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The finished entry whose files are in the run folder: the entry itself, or its last success."""
    done = entry if entry.get("status") == "done" else entry.get("last_success")
    return done if isinstance(done, dict) else None


def _run_folder_inputs(entry: dict[str, Any] | None) -> list[str]:
    """The run-folder paths an entry records as read (external inputs, by absolute path, left out)."""
    inputs = (entry or {}).get("inputs")
    return [rel for rel in inputs if not PurePosixPath(rel).is_absolute()] if isinstance(inputs, dict) else []


def _producers(name: str, stages: dict[str, Any]) -> dict[str, list[str]]:
    """Other stage → the inputs of stage `name` it wrote (a file it lists, or a folder holding some), by its
    latest entry or its last success."""
    found: dict[str, list[str]] = {}
    for rel in _run_folder_inputs(_done(stages[name])):
        folder = rel.rstrip("/") + "/"
        for other, entry in stages.items():
            outputs = [*entry.get("outputs", []), *(entry.get("last_success") or {}).get("outputs", [])]
            if other != name and any(out == rel or out.startswith(folder) for out in outputs):
                found.setdefault(other, []).append(rel)
    return found


def _own_outlook(
    run_dir: Path, name: str, stages: dict[str, Any], producers: dict[str, list[str]], hash_inputs: bool
) -> StageOutlook:
    """A stage's outlook from its own entry, before the stages it follows are taken into account."""
    entry = stages[name]
    recorded = entry_recipe(entry) if entry.get("status") == "done" else None
    if name not in STAGE_MODULES:
        return StageOutlook(name, "unknown", (StaleReason("unknown", f"this a3d has no stage {name!r}"),), recorded)
    module_name, options_name = STAGE_MODULES[name]
    module = importlib.import_module(module_name)
    options = getattr(module, options_name)
    if entry.get("status") != "done":  # runs again whatever its options and inputs
        return StageOutlook(name, "runs_again", tuple(stale_reasons(run_dir, entry, module.RECIPE, None, {})),
                            recorded, module.RECIPE)  # fmt: skip
    digest, unread = _options_digest(options, entry)
    missing, hashed, inputs = _inputs_now(run_dir, entry, stages, producers, hash_inputs)
    reasons = [_explained(r, options, entry) for r in stale_reasons(run_dir, entry, module.RECIPE, digest, inputs)]
    if missing:
        reasons.insert(0, StaleReason("inputs", f"its input {shortlist(missing)} is missing", tuple(missing)))
    if unread:
        reasons.append(unread)
    return StageOutlook(name, _verdict(reasons), tuple(reasons), recorded, module.RECIPE, (), tuple(hashed))


def _options_digest(options: type, entry: dict[str, Any]) -> tuple[str | None, StaleReason | None]:
    """The runner's `params_digest` of the recorded options and seed as this a3d reads them, or why there is none.

    Why: a run with the options it ran with before digests them through this a3d's options class, which may
    have gained an option (recorded nowhere, so it takes its default) or lost one.
    """
    params, seed = entry.get("params"), entry.get("seed")
    if not isinstance(params, dict) or not isinstance(seed, int):
        return None, StaleReason("options_unread", "its entry records no options or seed to compare")
    try:
        opts = from_jsonable(options, params)
    except Exception as exc:  # noqa: BLE001 - any refusal of a recorded value means the options cannot be compared
        if isinstance(exc, TypeError) or not str(exc):  # Python's own words about types mean nothing to a user
            why = "a recorded value is not of the type this a3d expects"
        else:
            why = str(exc).splitlines()[0]
        return None, StaleReason("options_unread", f"this a3d cannot read its recorded options ({why})")
    return params_digest(opts, seed), None


def _explained(reason: StaleReason, options: type, entry: dict[str, Any]) -> StaleReason:
    """An "options" reason naming the options this a3d added or dropped (the recorded ones are what it compared)."""
    if reason.kind != "options":
        return reason
    now = to_jsonable(from_jsonable(options, entry["params"]))
    new, gone = _key_changes(now, entry["params"])
    parts = [f"new: {', '.join(new)}"] * bool(new) + [f"gone: {', '.join(gone)}"] * bool(gone)
    detail = f" ({'; '.join(parts)})" if parts else ""
    return StaleReason("options", f"this a3d's options differ from those recorded{detail}")


def _key_changes(now: Any, recorded: Any, prefix: str = "") -> tuple[list[str], list[str]]:
    """Option names (dotted inside nested options) only `now` has, and only `recorded` has."""
    if not (isinstance(now, dict) and isinstance(recorded, dict)):
        return [], []
    new = [prefix + k for k in now if k not in recorded]
    gone = [prefix + k for k in recorded if k not in now]
    for key in now.keys() & recorded.keys():
        more_new, more_gone = _key_changes(now[key], recorded[key], f"{prefix}{key}.")
        new, gone = new + more_new, gone + more_gone
    return sorted(new), sorted(gone)


def _inputs_now(
    run_dir: Path, entry: dict[str, Any], stages: dict[str, Any], producers: dict[str, list[str]], hash_inputs: bool
) -> tuple[list[str], list[str], dict[str, Any]]:
    """The inputs a run would find: (missing run-folder inputs, the ones hashed, digests to compare).

    A run-folder input is hashed when asked, or when a stage that writes it finished after this one started
    (the manifest's own times; files copied elsewhere keep them): it may then hold other bytes than this stage
    read. Every other input keeps its recorded digest: a file changed by hand, outside a3d, shows only with
    `hash_inputs`.
    """
    inputs = dict(entry["inputs"]) if isinstance(entry.get("inputs"), dict) else {}
    rewritten = {rel for other, rels in producers.items() if _ran_after(stages[other], entry) for rel in rels}
    missing, hashed = [], []
    for rel in _run_folder_inputs(entry):
        path = resolve_inside(run_dir, rel)
        if not path.exists():
            missing.append(rel)
        elif hash_inputs or rel in rewritten:
            check_links_inside(run_dir, path)
            inputs[rel] = digest_path(path)
            hashed.append(rel)
    return missing, hashed, inputs


def _ran_after(producer: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether `producer`'s files on disk were written after `entry`'s stage started (True when the times
    cannot tell: the inputs are then hashed)."""
    finished, started = _time((_done(producer) or {}).get("finished")), _time(entry.get("started"))
    if finished is None or started is None:
        return True
    try:
        return finished >= started  # one-second times: a stage that starts in the second its input was written
    except TypeError:  # one time with a zone, one without
        return True


def _time(value: Any) -> _dt.datetime | None:
    """A manifest time, or None when it is not one."""
    try:
        return _dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _verdict(reasons: list[StaleReason]) -> Verdict:
    if any(r.kind not in MAYBE_KINDS for r in reasons):
        return "runs_again"
    return "may_run_again" if reasons else "up_to_date"


def _with_upstream(own: dict[str, StageOutlook], producers: dict[str, dict[str, list[str]]]) -> dict[str, StageOutlook]:
    """Each stage with the stages it follows: one that reads files of a stage that runs (or may run) again may
    run again itself, when those files come out different."""
    again = {name for name, outlook in own.items() if outlook.verdict in ("runs_again", "may_run_again")}
    follows: dict[str, list[str]] = {name: [] for name in own}
    changed = True
    while changed:  # sets only grow, so this ends, cycles in a hand-made manifest too
        changed = False
        for name, outlook in own.items():
            new = [other for other in producers[name] if other in again and other not in follows[name]]
            if new and outlook.verdict != "unknown":
                follows[name] += new
                again.add(name)
                changed = True
    result = {}
    for name, outlook in own.items():
        if not follows[name]:
            result[name] = outlook
            continue
        order = [other for other in own if other in follows[name]]  # the manifest's order
        who = "it writes" if len(order) == 1 else "they write"
        after = order[0] if len(order) == 1 else f"{', '.join(order[:-1])} and {order[-1]}"
        reason = StaleReason("upstream", f"after {after}, if {who} other files than before")
        reasons = (*outlook.reasons, reason)
        result[name] = StageOutlook(
            name, _verdict(list(reasons)), reasons, outlook.recipe, outlook.current_recipe, tuple(order),
            outlook.hashed_inputs,
        )  # fmt: skip
    return result


__all__ = ["MAYBE_KINDS", "STAGE_MODULES", "StageOutlook", "Verdict", "run_outlook"]
