"""The shell batch recipe of docs/batch.md, run verbatim against a stand-in `a3d` that fails on purpose.

The stand-in records its arguments and behaves by asset name: "bad" exits 2, "crash" exits 1, anything else
makes its run folder and exits 0. What is checked is the recipe's own logic: one run folder per asset,
skip-if-done, every failure logged with its exit code without stopping the others, a non-zero batch exit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import REPO

DOC = REPO / "docs" / "batch.md"

FAKE_A3D = r"""#!/usr/bin/env bash
# stand-in for a3d: log the call, then succeed or fail by asset name
echo "$*" >> "$CALLS"
asset=""; run=""; prev=""
for a in "$@"; do
  if [ "$prev" = "animate" ]; then asset="$a"; fi
  if [ "$prev" = "-o" ]; then run="$a"; fi
  prev="$a"
done
cat > /dev/null   # must not be able to eat the batch list: stdin is /dev/null
case "$asset" in
  *bad*) echo "error: $asset is not a mesh" >&2; exit 2 ;;
  *crash*) echo "error: a3d failed unexpectedly" >&2; exit 1 ;;
esac
mkdir -p "$run/export" && echo glb > "$run/export/animated.glb"
echo '{"stages": []}'
"""


def batch_script() -> str:
    """The bash block right after the `batch-script` marker in docs/batch.md."""
    text = DOC.read_text()
    match = re.search(r"<!-- batch-script.*?-->\s*```bash\n(.*?)```", text, flags=re.S)
    assert match, "docs/batch.md lost its batch-script block"
    return match.group(1)


@pytest.fixture
def batch(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "a3d").write_text(FAKE_A3D)
    (bin_dir / "a3d").chmod(0o755)
    script = tmp_path / "animate_all.sh"
    script.write_text(batch_script())
    script.chmod(0o755)
    (tmp_path / "assets.tsv").write_text(
        "# asset\tprompt\n"
        "assets/fox.glb\ta fox wags its tail\n"
        "\n"
        "assets/bad.glb\tnothing\n"
        "assets/crash.obj\ta robot waves\n"
        "assets/tree.ply\ta tree sways in the wind\n"
    )
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CALLS=str(tmp_path / "calls.txt"))

    def run(*extra_env: tuple[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(script), "assets.tsv", "runs"],
            cwd=tmp_path,
            env=dict(env, **dict(extra_env)),
            capture_output=True,
            text=True,
            timeout=60,
        )

    return tmp_path, run


def _status(root: Path) -> list[list[str]]:
    return [line.split("\t") for line in (root / "runs" / "status.tsv").read_text().splitlines()]


def test_batch_runs_each_asset_keeps_going_and_fails_at_the_end(batch):
    root, run = batch
    result = run()
    assert result.returncode == 1 and "2 asset(s) failed" in result.stderr
    assert _status(root) == [
        ["fox", "done", "0"],
        ["bad", "failed", "2"],
        ["crash", "failed", "1"],
        ["tree", "done", "0"],
    ]
    calls = (root / "calls.txt").read_text().splitlines()
    assert len(calls) == 4  # comments and blank lines are not assets; a failure did not stop the loop
    assert calls[0].split()[:4] == ["--quiet", "--json", "animate", "assets/fox.glb"]
    assert "--prompt a fox wags its tail -o runs/fox" in calls[0]
    assert (root / "runs" / "fox" / "export" / "animated.glb").is_file()
    assert (root / "runs" / "fox.done").is_file() and not (root / "runs" / "bad.done").exists()
    assert "not a mesh" in (root / "runs" / "bad.log").read_text()
    assert (root / "runs" / "tree.json").read_text().strip() == '{"stages": []}'


def test_second_batch_skips_finished_assets_and_retries_failed_ones(batch):
    root, run = batch
    run()
    (root / "calls.txt").unlink()
    result = run(("A3D_ARGS", "--no-sds"))
    assert result.returncode == 1
    calls = (root / "calls.txt").read_text().splitlines()
    assert [c.split()[3] for c in calls] == ["assets/bad.glb", "assets/crash.obj"]  # only the failed ones again
    assert all(c.endswith("--no-sds") for c in calls)  # A3D_ARGS reaches a3d
    second = _status(root)[4:]
    assert second == [
        ["fox", "skipped", "0"],
        ["bad", "failed", "2"],
        ["crash", "failed", "1"],
        ["tree", "skipped", "0"],
    ]


def test_all_good_is_exit_0(batch):
    root, run = batch
    (root / "assets.tsv").write_text(
        "assets/fox.glb\ta fox wags its tail\nassets/tree.ply\ta tree sways"
    )  # no final newline
    result = run()
    assert result.returncode == 0, result.stderr
    assert [row[:2] for row in _status(root)] == [["fox", "done"], ["tree", "done"]]
