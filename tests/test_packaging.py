"""Installing a3d never takes an import name another distribution owns.

transformers (5.x) depends on Hugging Face's `kernels` distribution, whose import name is `kernels`; a
top-level package of ours with that name shadows it from a checkout and overwrites it in site-packages.
These tests build the real wheel and import the real packages, so a clash shows up here before users hit it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def top_level_names(wheel: Path) -> set[str]:
    """Import names a wheel installs: its top-level folders and modules, minus the metadata folder."""
    names = set()
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            head = member.split("/", 1)[0]
            if head.endswith(".dist-info") or head.endswith(".data"):
                continue
            names.add(head.removesuffix(".py"))
    return names


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source")  # setuptools builds in the source folder: keep the checkout clean
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "a3d_cli", source / "a3d_cli", ignore=shutil.ignore_patterns("__pycache__"))
    # --no-build-isolation: the test extra installs setuptools, so no index is needed for the build itself.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        cwd=source,
        capture_output=True,
    )
    (wheel,) = out.glob("a3d-*.whl")
    return wheel


def test_wheel_installs_only_our_import_name(built_wheel: Path) -> None:
    assert top_level_names(built_wheel) == {"a3d_cli"}


def test_wheel_ships_the_compute_kernels_inside_our_package(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as archive:
        members = set(archive.namelist())
    assert "a3d_cli/kernels/__init__.py" in members
    assert "a3d_cli/kernels/rasterize.py" in members


def test_the_checkout_has_no_top_level_package_named_like_a_dependency() -> None:
    top_level_packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    assert top_level_packages == {"a3d_cli"}


@pytest.mark.skipif(importlib.util.find_spec("kernels") is None, reason="Hugging Face's kernels is not installed")
def test_hugging_face_kernels_and_diffusers_loaders_import_beside_a3d(tmp_path: Path) -> None:
    """From outside the checkout and from inside it, `kernels` is Hugging Face's and diffusers' loaders import
    in the same process as a3d's stages and compute kernels."""
    code = (
        "import kernels, diffusers.loaders.peft\n"
        "import a3d_cli.stages.mvvideo, a3d_cli.kernels\n"
        "assert hasattr(kernels, 'get_kernel'), kernels.__file__\n"
        "assert 'site-packages' in kernels.__file__, kernels.__file__\n"
        "assert a3d_cli.kernels.available_backends()\n"
    )
    for cwd in (tmp_path, REPO):
        result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
