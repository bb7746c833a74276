"""Measure what decoding Draco in a capped child process (`a3d_cli.mesh.draco_child`) costs over DracoPy in-process.

Usage:
    python benchmarks/bench_draco_child.py --out draco_child.json

The bundled fox's mesh (positions, UVs, faces) is compressed with DracoPy (14-bit positions, 12-bit UVs), then
decoded --repeats times both ways; the table gives the best and median wall time of each and their
difference, which is what a3d adds per Draco-compressed file (all of a file's streams share one child).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from a3d_cli.mesh.draco_child import decode_streams  # noqa: E402
from a3d_cli.mesh.load import load_mesh  # noqa: E402


def timed(fn, repeats: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    import DracoPy

    mesh = load_mesh(ROOT / "examples/assets/fox.glb")
    uv = np.zeros((mesh.num_vertices, 2)) if mesh.uvs is None else mesh.uvs
    blob = DracoPy.encode(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32), quantization_bits=14,
                          tex_coord=uv.astype(np.float64), tex_coord_quantization_bits=12)  # fmt: skip
    declared = mesh.num_vertices * 5 + mesh.num_faces * 3
    decode_streams([blob], declared, "fox")  # warm-up (file cache, first spawn)
    rows = {
        "in-process DracoPy.decode": timed(lambda: DracoPy.decode(blob), args.repeats),
        "capped child (decode_streams)": timed(lambda: decode_streams([blob], declared, "fox"), args.repeats),
    }
    result = {"vertices": mesh.num_vertices, "faces": mesh.num_faces, "stream_bytes": len(blob), "python": sys.version.split()[0]}
    print(f"fox: {mesh.num_vertices} vertices, {mesh.num_faces} faces, Draco stream {len(blob)} bytes\n")
    print("| decode | best s | median s |\n|---|---|---|")
    for name, times in rows.items():
        result[name] = {"best_s": min(times), "median_s": statistics.median(times)}
        print(f"| {name} | {min(times):.4f} | {statistics.median(times):.4f} |")
    extra = result["capped child (decode_streams)"]["median_s"] - result["in-process DracoPy.decode"]["median_s"]
    result["extra_median_s"] = extra
    print(f"\nextra per Draco file (median): {extra:.3f} s")
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
