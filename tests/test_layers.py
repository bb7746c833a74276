"""Imports point down the layers (docs/ARCHITECTURE.md): cli/commands/batch → stages → domain → kernels.

Every `import` of every a3d_cli module is read with `ast` (function-local and TYPE_CHECKING imports too,
since a lazy import is still a dependency) and judged against the table `LAYERS`: a module may import its
own layer and the layers below it, never one above. A failure lists every offending import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import a3d_cli

ROOT = Path(a3d_cli.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every a3d_cli module `path` imports (absolute names; relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)  # `from pkg import module`
    return {n for n in found if n == "a3d_cli" or n.startswith("a3d_cli.")}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # the command line: Typer commands, the CLI's console, and `a3d batch` (whose manifest lines are
    # `a3d animate` argument lists, checked by that command's own parser)
    ("command line", ("a3d_cli.cli", "a3d_cli.commands", "a3d_cli.console", "a3d_cli.batch")),
    ("stages", ("a3d_cli.stages",)),
    (
        "domain",
        (
            "a3d_cli.models", "a3d_cli.gaussians", "a3d_cli.render", "a3d_cli.mesh", "a3d_cli.lift", "a3d_cli.io",
            "a3d_cli.weights", "a3d_cli.geometry", "a3d_cli.run_layout", "a3d_cli.progress", "a3d_cli.phase_clock",
            "a3d_cli.device", "a3d_cli.errors",
        ),
    ),  # fmt: skip
    ("kernels", ("a3d_cli.kernels",)),
    ("package root", ("a3d_cli",)),  # `a3d_cli/__init__.py`: the version, importable from anywhere
)
"""docs/ARCHITECTURE.md's layers, top to bottom: a module imports only its own layer and the ones below."""


def _layer(name: str) -> int | None:
    """Index in LAYERS of the layer holding module `name` (the longest matching prefix wins)."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


def upward_imports(modules: dict[str, set[str]]) -> list[str]:
    """Every import that runs from a lower layer to a higher one, as "module (layer) imports name (layer)"."""
    found = []
    for mod, imports in sorted(modules.items()):
        own = _layer(mod)
        for imp in sorted(imports):
            target = _layer(imp)
            if own is not None and target is not None and target < own:
                found.append(f"{mod} ({LAYERS[own][0]}) imports {imp} ({LAYERS[target][0]})")
    return found


def test_the_import_walk_sees_the_tree():
    assert len(MODULES) > 80 and "a3d_cli.stages.sds" in MODULES
    assert "a3d_cli.gaussians.motion_refine" in MODULES["a3d_cli.stages.sds"]


def test_every_module_belongs_to_a_layer():
    """A new top-level module or package is placed in LAYERS (and docs/ARCHITECTURE.md) before it is used."""
    assert [m for m in MODULES if _layer(m) is None or (m != "a3d_cli" and _layer(m) == len(LAYERS) - 1)] == []


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    offending = upward_imports(MODULES)
    assert not offending, "imports that run upward (docs/ARCHITECTURE.md, Layers):\n" + "\n".join(offending)


def test_the_check_catches_an_upward_import():
    """The walk and the table together flag a domain module importing a stage, and a kernel importing the domain."""
    planted = {
        "a3d_cli.mesh.fake": {"a3d_cli.stages.base", "a3d_cli.io.atomic"},
        "a3d_cli.kernels.fake": {"a3d_cli.errors"},
        "a3d_cli.stages.fake": {"a3d_cli.kernels.rasterize", "a3d_cli"},
    }
    assert upward_imports(planted) == [
        "a3d_cli.kernels.fake (kernels) imports a3d_cli.errors (domain)",
        "a3d_cli.mesh.fake (domain) imports a3d_cli.stages.base (stages)",
    ]


def test_kernels_import_only_kernels():
    """Stricter than the layer rule: kernels import nothing of a3d_cli, not even its version."""
    assert sorted(f"{m} imports {i}" for m, imports in MODULES.items() if _under(m, ("a3d_cli.kernels",))
                  for i in imports if not _under(i, ("a3d_cli.kernels",))) == []  # fmt: skip


def test_the_command_line_imports_without_torch():
    """`a3d --help` stays fast: the commands and the stage options they take defaults from never import torch."""
    import subprocess
    import sys

    code = "import sys, a3d_cli.cli; assert 'torch' not in sys.modules, 'torch imported by the CLI'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
