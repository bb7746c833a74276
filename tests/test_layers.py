"""Imports point down the layers (docs/ARCHITECTURE.md): cli/commands → stages → domain → kernels.

Every `import` of every a3d_cli module is read with `ast` (function-local and TYPE_CHECKING imports too,
since a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import a3d_cli

ROOT = Path(a3d_cli.__file__).parent
UPPER = ("a3d_cli.cli", "a3d_cli.commands", "a3d_cli.console")
"""The command line: nothing below it may import these."""


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


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{mod} imports {imp}"
        for mod, imports in MODULES.items()
        if _under(mod, sources)
        for imp in imports
        if _under(imp, forbidden) and not _under(imp, allowed)
    )


def test_the_import_walk_sees_the_tree():
    assert len(MODULES) > 80 and "a3d_cli.stages.sds" in MODULES
    assert "a3d_cli.gaussians.motion_refine" in MODULES["a3d_cli.stages.sds"]


def test_kernels_import_only_kernels():
    assert _violations(("a3d_cli.kernels",), ("a3d_cli",), allowed=("a3d_cli.kernels",)) == []


@pytest.mark.parametrize(
    "layer", ["models", "gaussians", "render", "mesh", "lift", "io", "weights", "geometry", "run_layout", "progress"]
)
def test_domain_never_imports_stages_or_the_command_line(layer: str):
    assert _violations((f"a3d_cli.{layer}",), ("a3d_cli.stages", *UPPER)) == []


def test_stages_never_import_the_command_line():
    assert _violations(("a3d_cli.stages",), UPPER) == []


def test_the_command_line_imports_without_torch():
    """`a3d --help` stays fast: the commands and the stage options they take defaults from never import torch."""
    import subprocess
    import sys

    code = "import sys, a3d_cli.cli; assert 'torch' not in sys.modules, 'torch imported by the CLI'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
