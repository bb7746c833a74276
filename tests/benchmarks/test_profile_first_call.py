"""benchmarks/profile_first_call.py: its children time the stage's calls; the fresh-cache row needs an empty cache."""

from __future__ import annotations

import sys

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import profile_first_call as bench  # noqa: E402


def test_the_fresh_cache_row_refuses_a_cache_that_holds_kernels(tmp_path, monkeypatch):
    (tmp_path / "HASH").mkdir()
    (tmp_path / "HASH" / "_geglu_kernel.json").write_text("{}")
    monkeypatch.setattr(
        sys, "argv", ["profile_first_call.py", "--triton-cache", str(tmp_path), "--variants", "default"]
    )
    with pytest.raises(SystemExit, match="empty Triton cache"):
        bench.main()


def test_a_child_times_cold_then_warm_calls_and_sets_the_cudnn_switch(monkeypatch):
    """The mvvideo child on the tiny MV-VDM: three calls, the switch the variant names, the surplus of the first."""
    import torch

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # the child sets it; put it back afterwards
    seen = []

    def spy_generate(*args, **kwargs):
        seen.append(torch.backends.cudnn.benchmark)

    monkeypatch.setattr("a3d_cli.models.mvvdm.pipeline.generate_mvvideo", spy_generate)
    row = bench._child("mvvideo", bench.VARIANTS["cudnn autotuning"], 3, "cpu", True)
    assert seen == [True, True, True] and len(row["call_seconds"]) == 3
    surplus = row["call_seconds"][0] - min(row["call_seconds"][1:])
    assert row["first_call_surplus_seconds"] == pytest.approx(surplus, abs=0.011)
