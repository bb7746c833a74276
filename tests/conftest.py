"""Shared test setup: CPU by default, `gpu` tests skip without CUDA, `slow` tests skip unless RUN_SLOW=1."""

from __future__ import annotations

import os

import pytest
import torch

# Tiny models are dominated by per-op overhead; one thread avoids oversubscription on shared CI cores.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = torch.cuda.is_available()
    run_slow = os.environ.get("RUN_SLOW") == "1"
    for item in items:
        if item.get_closest_marker("gpu") and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if item.get_closest_marker("slow") and not run_slow:
            item.add_marker(pytest.mark.skip(reason="needs real weights or a long run; set RUN_SLOW=1"))


@pytest.fixture(autouse=True)
def _backend_flags_per_test():
    """TF32 switches set by one test (through `accelerate`) must not loosen another's fp32 comparisons."""
    from a3d_cli.models.speed.acceleration import backend_flags_kept

    with backend_flags_kept():
        yield


@pytest.fixture
def run_dir(tmp_path):
    """A fresh, not-yet-existing run folder path."""
    return tmp_path / "RUN"
