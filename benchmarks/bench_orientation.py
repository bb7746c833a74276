"""Measure `a3d prepare --front auto` on public assets whose fronts are known, and keep their contact sheets.

Usage:
    python benchmarks/public_assets.py                          # once: fetch the samples (git-ignored)
    python benchmarks/bench_orientation.py --out orientation.json --sheets /tmp/sheets

For the bundled fox and every asset in benchmarks/.assets/assets.json it runs `a3d prepare` (CPU, small
sizes) with `--front auto`, and prints one markdown row per asset: the known front, the guess (with its
mirror-symmetry and detail ratios), whether it was confident, the front used, and whether view 0 then
shows the right side. Contact sheets are copied to --sheets for a person to look at.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from a3d_cli.stages.base import Runtime  # noqa: E402
from a3d_cli.stages.prepare import CONTACT_SHEET, PrepareOptions, run  # noqa: E402

FOX = {"file": str(ROOT / "examples/assets/fox.glb"), "front": "+z", "up": "+y"}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=Path, default=ROOT / "benchmarks/.assets", help="folder of public_assets.py")
    ap.add_argument("--sheets", type=Path, default=None, help="copy each contact sheet here")
    ap.add_argument("--splat-count", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    manifest = json.loads((args.assets / "assets.json").read_text()) if (args.assets / "assets.json").is_file() else {}
    assets = {"fox": FOX} | {k: {**v, "file": str(args.assets / v["file"])} for k, v in manifest.items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="a3d_orient_") as tmp:
        for name, a in assets.items():
            opts = PrepareOptions(model=a["file"], up=a.get("up", "+y"), splats=args.splat_count, view_size=128)
            res = run(Path(tmp) / name, opts, Runtime(device="cpu"))
            guess = res.metrics.get("front_guess", {})
            known = a.get("front")
            rows.append({
                "asset": name, "known_front": known, "guess": guess.get("front"), "confident": guess.get("confident"),
                "symmetry_ratio": guess.get("symmetry_ratio"), "detail_ratio": guess.get("detail_ratio"),
                "front_used": res.metrics["front"], "shaded": res.metrics.get("shaded"),
                "view0_is_front": None if known is None else res.metrics["front"] == known,
            })  # fmt: skip
            if args.sheets:
                args.sheets.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / name / CONTACT_SHEET, args.sheets / f"{name}.png")
    print("| asset | known front | guess (confident) | mirror ratio | detail ratio | front used | view 0 = front |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['asset']} | {r['known_front'] or '-'} | {r['guess']} ({'yes' if r['confident'] else 'no'}) "
              f"| {r['symmetry_ratio']} | {r['detail_ratio']} | {r['front_used']} "
              f"| {'-' if r['view0_is_front'] is None else ('yes' if r['view0_is_front'] else 'NO')} |")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
