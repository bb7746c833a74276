"""`stages/outlook.py`: every stage is known to it, and a recorded entry reads back into the options it recorded."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import a3d_cli
from a3d_cli.io.manifest import from_jsonable, to_jsonable
from a3d_cli.stages.base import params_digest
from a3d_cli.stages.outlook import STAGE_MODULES

STAGES = Path(a3d_cli.__file__).parent / "stages"


def _recorded_stage_names() -> set[str]:
    """The stage names the stage modules hand `run_stage` (its first argument, a string literal)."""
    names = set()
    for path in STAGES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_stage" and node.args:
                if isinstance(node.args[0], ast.Constant):
                    names.add(node.args[0].value)
    return names


def test_every_stage_the_runner_records_is_known_with_its_recipe():
    assert _recorded_stage_names() == set(STAGE_MODULES)
    for module_name, options in STAGE_MODULES.values():
        module = importlib.import_module(module_name)
        assert isinstance(module.RECIPE, int) and module.RECIPE >= 1
        assert isinstance(getattr(module, options), type)


def _example(name: str):  # noqa: ANN202 - the stage's options
    """The options `name`'s stage records, at their defaults (required fields filled in)."""
    module_name, options = STAGE_MODULES[name]
    cls = getattr(importlib.import_module(module_name), options)
    if name == "reconstruct":
        from a3d_cli.stages.reconstruct import PRESETS, ReconstructOptions

        return cls(ReconstructOptions(video="gt"), "quickstart", PRESETS["quickstart"][1])
    required = {"orbit": {"image": "photo.png"}, "prepare": {"model": "fox.glb"}, "mvvideo": {"prompt": "a fox runs"},
                "sds": {"prompt": "a fox runs"}}  # fmt: skip
    return cls(**required.get(name, {}))


@pytest.mark.parametrize("name", sorted(STAGE_MODULES))
def test_recorded_options_read_back_digest_as_the_runner_digested_them(name):
    """`a3d info` compares a stage's recorded params digest with that of its recorded options read back: a
    folder this a3d made must come out the same, nested options (reconstruct's settings, sds's cameras) too."""
    options = _example(name)
    recorded = to_jsonable(options)
    read_back = from_jsonable(type(options), recorded)
    assert read_back == options
    assert params_digest(read_back, 7) == params_digest(options, 7)


HEAVY = ("torch", "diffusers", "transformers", "gsplat")
"""Libraries whose import costs seconds: `a3d info`, run in shell loops over thousands of folders, needs none."""


def test_a3d_info_reads_every_stage_s_options_without_importing_torch(tmp_path):
    """`a3d info RUN` reads each recorded stage's options back into its options class (reconstruct's hold the
    motion fit's settings and field, export's check the PLY convention) without importing torch or the
    diffusion libraries. Run in a fresh process: this test's own process has imported them already."""
    import json
    import subprocess
    import sys

    from a3d_cli.io.manifest import FORMAT_VERSION

    seed = 3
    stages = {}
    for name, (module_name, _) in STAGE_MODULES.items():
        options = _example(name)
        stages[name] = {
            "status": "done", "recipe": importlib.import_module(module_name).RECIPE, "params": to_jsonable(options),
            "params_digest": params_digest(options, seed), "seed": seed, "inputs": {}, "outputs": [],
        }  # fmt: skip
    run = tmp_path / "RUN"
    run.mkdir()
    (run / "a3d.json").write_text(json.dumps({"format": FORMAT_VERSION, "stages": stages}))
    code = (
        "import json, sys\n"
        "from a3d_cli.cli import app\n"
        "code = None\n"
        "try:\n"
        "    app(['--json', 'info', sys.argv[1]])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"print(json.dumps({{'exit': code, 'loaded': sorted(set({HEAVY!r}) & set(sys.modules))}}), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(run)], cwd=STAGES.parents[1], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stderr.strip().splitlines()[-1])
    assert report["exit"] == 0, res.stderr[-3000:]
    verdicts = {name: o["verdict"] for name, o in json.loads(res.stdout)["next_run"]["stages"].items()}
    assert verdicts == dict.fromkeys(STAGE_MODULES, "up_to_date")  # every stage's options were read and digested
    assert report["loaded"] == []
