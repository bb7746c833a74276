"""Every option a weights hint names exists on the command that printed it (exit 2, `hint:` line checked).

The resolver's hints are read from real failures of each command that resolves weights: missing weights, a
path that does not exist, a folder without the model. Options inside backticks belong to the command quoted
there (`a3d weights fetch --for mvvideo`), so they are left out of the check.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import typer.main
from PIL import Image
from typer.testing import CliRunner

from a3d_cli.cli import app
from a3d_cli.errors import InputError, WeightsMissing
from a3d_cli.models.mvvdm.weights import MVVDM_OPTIONS, MVVDM_WEIGHTS, resolve_mvvdm_weights

runner = CliRunner()
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _options_of(*path: str) -> set[str]:
    """Every option spelling (e.g. --checkpoint) of the a3d sub-command at `path` ("weights", "path")."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]  # a group of Typer's own click
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _named_options(hint: str) -> set[str]:
    return set(_OPTION.findall(re.sub(r"`[^`]*`", "", hint)))


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("A3D_WEIGHTS_DIR", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    Image.fromarray(np.full((32, 32, 4), 200, np.uint8), "RGBA").save(tmp_path / "object.png")
    (tmp_path / "empty").mkdir()
    return tmp_path


CASES = [  # (sub-command, its arguments, the option the hint must name); {t} is the temporary folder
    (("orbit",), ["{t}/object.png", "-o", "{t}/RUN"], "--checkpoint"),
    (("orbit",), ["{t}/object.png", "-o", "{t}/RUN", "--checkpoint", "{t}/nope.safetensors"], "--checkpoint"),
    (("orbit",), ["{t}/object.png", "-o", "{t}/RUN", "--checkpoint", "{t}/empty"], "--checkpoint"),
    (("animate",), ["{t}/object.png", "-o", "{t}/RUN", "--prompt", "x"], "--sv3d-checkpoint"),
    (("animate",), ["{t}/object.png", "-o", "{t}/RUN", "--prompt", "x", "--sv3d-checkpoint", "{t}/n"], "--sv3d-checkpoint"),
    (("weights", "path"), ["sv3d_u"], "--weights"),
    (("weights", "path"), ["mvdream_sd15", "--weights", "{t}/empty"], "--weights"),
    (("weights", "path"), ["ip_adapter_sd15", "--weights", "{t}/nope.bin"], "--weights"),
]


@pytest.mark.parametrize("command,args,expected", CASES, ids=[f"{' '.join(c[0])}-{i}" for i, c in enumerate(CASES)])
def test_weights_hints_name_options_of_the_command(no_weights, command, args, expected):
    argv = [*command, *(a.format(t=no_weights) for a in args)]
    result = runner.invoke(app, ["--device", "cpu", *argv])
    assert result.exit_code == 2, result.output
    (hint,) = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    named = _named_options(hint)
    assert expected in named
    assert named <= _options_of(*command), f"{named - _options_of(*command)} are not options of a3d {' '.join(command)}"
    assert not (no_weights / "RUN").exists()


@pytest.mark.parametrize("command", ["mvvideo", "sds", "animate"])
def test_mvvdm_weight_hints_name_options_of_each_command_that_loads_it(no_weights, command):
    options = _options_of(command)
    assert set(MVVDM_OPTIONS.values()) <= options
    with pytest.raises(WeightsMissing) as missing:
        resolve_mvvdm_weights()
    assert _named_options(missing.value.hint) == set(MVVDM_OPTIONS.values())
    for name in MVVDM_WEIGHTS:
        with pytest.raises(InputError) as bad:
            resolve_mvvdm_weights({name: no_weights / "nope"})
        assert _named_options(bad.value.hint) == {MVVDM_OPTIONS[name]}
