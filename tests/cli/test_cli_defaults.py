"""Every command option's default is its stage option's default (each default is written once, in the stage)."""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from a3d_cli.batch.options import BatchOptions
from a3d_cli.cli import app
from a3d_cli.render.random_cameras import RandomCameraConfig
from a3d_cli.stages.animate import AnimateOptions
from a3d_cli.stages.export import ExportOptions
from a3d_cli.stages.lift import _DEVICE_DEFAULTS, LiftOptions
from a3d_cli.stages.mesh_animate import MeshAnimateOptions
from a3d_cli.stages.mvvideo import MVVideoOptions
from a3d_cli.stages.orbit import OrbitOptions
from a3d_cli.stages.prepare import PrepareOptions
from a3d_cli.stages.reconstruct import ReconstructOptions
from a3d_cli.stages.sds import SdsOptions


def _field_default(cls: type, name: str) -> object:
    """The field's default (MISSING for a required field)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if field.default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _cameras(name: str):  # noqa: ANN202
    return lambda: _field_default(RandomCameraConfig, name)


# command → (its stage's options (batch: its own), command parameter → options field (or a function giving the expected default))
COMMANDS = {
    "prepare": (PrepareOptions, {"splat_count": "splats"}),
    "mvvideo": (MVVideoOptions, {"compile_blocks": "compile"}),
    "reconstruct": (ReconstructOptions, {"cuda_graph": "cuda_graphs", "whole_step_graph": "graph_whole_step"}),
    "sds": (
        SdsOptions,
        {
            "guidance": "guidance_scale",
            "compile_blocks": "compile",
            "vae_keep": lambda: "auto" if _field_default(SdsOptions, "vae_keep") is None else "?",
            "elevation": _cameras("elevation_range"),
            "fov": _cameras("fov_range"),
            "distance": _cameras("relative_distance_range"),
        },
    ),
    "mesh-animate": (MeshAnimateOptions, {}),
    "lift": (LiftOptions, {}),
    "export": (ExportOptions, {"elevation": "elevation_deg", "loops": "preview_loops"}),
    "orbit": (
        OrbitOptions,
        {
            "orbit_kind": "orbit",
            "compile_blocks": "compile",
            "elevation": lambda: ",".join(f"{e:g}" for e in OrbitOptions.elevation),
            "keep_generated_input": lambda: not OrbitOptions.replace_input_frame,
        },
    ),
    "batch": (BatchOptions, {"out": "runs", "compile_blocks": "compile"}),
    "animate": (
        AnimateOptions,
        {"splat_count": "splats", "preset": "reconstruct_preset", "compile_blocks": "compile"},
    ),
}
NOT_STAGE_OPTIONS = {"force"}
"""Command options that are not a field of the stage's options (run control)."""


def _commands() -> dict:
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_defaults_are_the_stage_defaults(name: str):
    cls, renamed = COMMANDS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    checked = 0
    for param in _commands()[name].params:
        if param.param_type_name != "option" or param.name in NOT_STAGE_OPTIONS:
            continue
        target = renamed.get(param.name, param.name)
        if callable(target):
            expected = target()
        elif target in fields:
            expected = _field_default(cls, target)
            if expected is dataclasses.MISSING:
                assert param.required, f"{name} --{param.name} must be required: {cls.__name__}.{target} has no default"
                continue
        else:
            assert param.default is None, f"{name} --{param.name} has a default but no {cls.__name__} field"
            continue
        got = param.default
        if isinstance(expected, tuple) and isinstance(got, (list, tuple)):
            got = tuple(got)
        assert got == expected, f"{name} --{param.name}: command default {got!r} != {cls.__name__} {expected!r}"
        checked += 1
    assert checked > 0


def test_animate_defaults_are_the_stage_defaults():
    assert AnimateOptions.sds_steps == _field_default(SdsOptions, "steps")
    assert AnimateOptions.sds_target_size == _field_default(SdsOptions, "target_size")
    assert AnimateOptions.sds_vae_keep == _field_default(SdsOptions, "vae_keep")
    assert AnimateOptions.sds_cuda_graph == _field_default(SdsOptions, "cuda_graph")
    assert AnimateOptions.splats == _field_default(PrepareOptions, "splats")
    assert AnimateOptions.max_vertices == _field_default(PrepareOptions, "max_vertices")
    assert AnimateOptions.freeinit_iters == _field_default(MVVideoOptions, "freeinit_iters")
    assert AnimateOptions.preview_size == _field_default(ExportOptions, "size")
    assert AnimateOptions.freeinit_grid == _field_default(MVVideoOptions, "freeinit_grid")
    assert AnimateOptions.reconstruct_preset == _field_default(ReconstructOptions, "preset")
    for stage_options in (MVVideoOptions, SdsOptions, OrbitOptions):  # the stages --compile reaches
        assert AnimateOptions.compile == _field_default(stage_options, "compile")


def test_commands_cover_every_command_with_options():
    """A new command that builds a stage's options is added to COMMANDS (or it escapes the check above)."""
    without_options = {"info", "weights"}  # no options dataclass behind them (flags that default to off)
    assert set(_commands()) - without_options == set(COMMANDS)


def test_lift_help_shows_the_stage_device_defaults():
    """The device-dependent lift defaults are written in the stage's table only; the help shows them."""
    params = {p.name: p for p in _commands()["lift"].params}
    for name, (cuda, cpu) in _DEVICE_DEFAULTS.items():
        help_text = params[name].help or ""
        cuda_shown = "all" if name == "views_per_step" and cuda == 0 else str(cuda)
        assert f"default: {cuda_shown} on CUDA, {cpu} on CPU" in help_text, (name, help_text)
