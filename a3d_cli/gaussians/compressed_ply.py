"""SuperSplat's compressed PLY (the PlayCanvas layout, SuperSplat's default export) → `Gaussians`.

Why a3d reads it: it is what SuperSplat saves unless told otherwise, so for many people it is the only copy
of their splats. The layout, as PlayCanvas' own readers decode it (`splat-transform`, the engine) and as
its writers (`splat-transform`, gsplat's `export_splats(format="ply_compressed")`) encode it:

- a binary PLY with a `chunk` element, a `vertex` element and an optional `sh` element;
- splat i belongs to chunk i // 256, and there are exactly ceil(N / 256) chunks;
- each chunk holds float ranges: `min_x min_y min_z max_x max_y max_z` (positions),
  `min_scale_x … max_scale_z` (log-scales) and, optionally (12 or 18 floats per chunk),
  `min_r min_g min_b max_r max_g max_b` (base colours);
- each vertex holds four uint32 words. A field of b bits is an unsigned integer u, read as t = u / (2^b − 1),
  and a ranged value is min · (1 − t) + max · t:
  - `packed_position`: x in bits 21–31 (11 bits), y in bits 11–20 (10 bits), z in bits 0–10 (11 bits);
  - `packed_scale`: the same 11/10/11 split, of the log-scales (so scale = exp(value));
  - `packed_color`: r, g, b, a in bits 24–31, 16–23, 8–15, 0–7; r, g, b are the display colour
    0.5 + SH_C0 · f_dc (ranged through the chunk's colour ranges when it has them, else t itself), and
    a is the opacity after the sigmoid (a3d keeps it as it is; a 3DGS PLY stores logit(a));
  - `packed_rotation`: "smallest three". Bits 30–31 give the index (in the 3DGS PLY's order
    rot_0..rot_3 = w, x, y, z) of the component with the largest magnitude, which the writer made
    positive; the other three follow in that same order in bits 20–29, 10–19 and 0–9, each stored as
    t = value / √2 + 0.5 (so value = (t − 0.5) · √2, in ±1/√2), and the largest is √(1 − a² − b² − c²);
- the `sh` element, when present, holds uchar `f_rest_0 … f_rest_{3(K−1)−1}` in the 3DGS PLY's
  channel-major order. The writers store trunc((v / 8 + 0.5) · 256) clamped to 0–255, so the range is
  [−4, 4]; `splat-transform` reads a byte q back as the middle of its bucket, ((q + 0.5) / 256 − 0.5) · 8,
  except that 0 and 255 are the ends of the range (−4 and 4). a3d reads it the same way. (PlayCanvas'
  engine renders q · 8 / 255 − 4 instead, which differs by at most 1/64.)

The axes are those of a 3DGS PLY (the Inria/COLMAP frame, Y down): SuperSplat converts nothing.

Sizes are checked against the file before anything is allocated: the chunk count must be ceil(N / 256),
an `sh` element must have one row per splat, and the elements must fit in the file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import Gaussians
from a3d_cli.gaussians.ply import PlyElement, PlyHeader, exp_scales, gaussians_from_arrays, read_binary_elements

CHUNK_SPLATS = 256  # splats per chunk
PACKED_PROPERTIES = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
CHUNK_PROPERTIES = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
)  # fmt: skip
CHUNK_COLOUR_PROPERTIES = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
SH_REST_COUNTS = (0, 9, 24, 45)  # f_rest_* bytes per splat for SH degrees 0..3

_REEXPORT = "Export the splats again from SuperSplat (or convert them with splat-transform)."
_TRUNCATED = "The file was cut short (an interrupted download or copy?); get a complete copy."
_DIVERGED = "The splats are broken; export them again from the tool that made them."
_ELEMENTS = ("chunk", "vertex", "sh")


def read_compressed_ply(path: str | os.PathLike[str], header: PlyHeader) -> Gaussians:
    """Decode a compressed splat PLY whose header has been parsed (`read_ply` calls this on `packed_*`).

    Returns:
        Gaussians as `read_ply` returns them for the equivalent 3DGS PLY: linear scales, opacities in
        [0, 1], RGB colours (the decoded display colour, not clamped), `sh_rest` [N, K-1, 3] when the file
        has an `sh` element with coefficients.

    Raises:
        InputError: an ASCII file, a missing or mistyped property, a chunk count that is not ceil(N / 256),
            an `sh` element of the wrong size, a file shorter than its header declares, no splats, or
            non-finite ranges.
    """
    path = Path(path)
    vertex, chunk, sh = _check_header(path, header)
    n = vertex.count
    tables = read_binary_elements(path, header, _ELEMENTS)
    v, c = tables["vertex"], tables["chunk"]

    ranges = {name: np.asarray(c[name], dtype=np.float64) for name in c.dtype.names}  # each [C]
    if not all(np.isfinite(r).all() for r in ranges.values()):
        raise InputError(f"{path} has non-finite (NaN or infinite) chunk ranges.", hint=_DIVERGED)
    chunk_of = np.arange(n) // CHUNK_SPLATS  # [N]

    def ranged(lo: str, hi: str, t: np.ndarray) -> np.ndarray:
        return ranges[lo][chunk_of] * (1.0 - t) + ranges[hi][chunk_of] * t  # [N]

    def vector(packed: str, prefix: str) -> np.ndarray:
        """[N, 3] float32 of an 11-10-11-bit x, y, z word, each mapped into its chunk's [min, max]."""
        words = np.asarray(v[packed], dtype=np.uint32)
        fields = zip("xyz", ((21, 11), (11, 10), (0, 11)), strict=True)
        xyz = [ranged(f"min_{prefix}{a}", f"max_{prefix}{a}", _unorm(words, *field)) for a, field in fields]
        return np.stack(xyz, axis=-1).astype(np.float32)

    means = vector("packed_position", "")  # [N, 3]
    log_scales = vector("packed_scale", "scale_")  # [N, 3]
    color = np.asarray(v["packed_color"], dtype=np.uint32)
    rgb = [_unorm(color, shift, 8) for shift in (24, 16, 8)]
    if "min_r" in ranges:
        rgb = [ranged(f"min_{ch}", f"max_{ch}", t) for ch, t in zip("rgb", rgb, strict=True)]
    colors = np.stack(rgb, axis=-1).astype(np.float32)  # [N, 3]
    opacities = _unorm(color, 0, 8).astype(np.float32)  # [N]
    quats = unpack_smallest_three(np.asarray(v["packed_rotation"], dtype=np.uint32)).astype(np.float32)  # [N, 4]

    sh_rest = None
    if sh is not None and sh.properties:
        k1 = len(sh.properties) // 3  # K - 1 coefficients per channel
        stored = np.stack([np.asarray(tables["sh"][f"f_rest_{i}"]) for i in range(3 * k1)], axis=-1)  # [N, 3(K-1)]
        values = _SH_BYTE_VALUES[stored].reshape(n, 3, k1)  # channel-major on disk
        sh_rest = torch.from_numpy(np.ascontiguousarray(values.transpose(0, 2, 1)))  # [N, K-1, 3]

    return gaussians_from_arrays(
        path,
        means=means,
        quats=quats,
        scales=exp_scales(path, log_scales),
        opacities=opacities,
        colors=colors,
        sh_rest=sh_rest,
    )


def unpack_smallest_three(words: np.ndarray) -> np.ndarray:
    """[N] packed_rotation words → [N, 4] quaternions in the 3DGS PLY's order (w, x, y, z), float64.

    The largest component is rebuilt as √(max(0, 1 − a² − b² − c²)), so a damaged word gives a valid (if
    unnormalised) quaternion rather than NaN.
    """
    words = np.asarray(words, dtype=np.uint32)
    rest = np.stack([(_unorm(words, shift, 10) - 0.5) * math.sqrt(2.0) for shift in (20, 10, 0)], axis=-1)  # [N, 3]
    largest = np.sqrt(np.maximum(0.0, 1.0 - (rest**2).sum(axis=-1)))  # [N]
    which = (words >> 30).astype(np.int64)  # [N] index of the largest component
    q = np.empty((len(words), 4), dtype=np.float64)
    for k in range(4):
        rows = which == k
        others = [i for i in range(4) if i != k]
        q[rows, k] = largest[rows]
        q[np.ix_(rows, others)] = rest[rows]
    return q


def _unorm(words: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """The `bits`-bit field at `shift` of each word, as t in [0, 1] (float64)."""
    top = (1 << bits) - 1
    return ((words >> np.uint32(shift)) & np.uint32(top)).astype(np.float64) / top


def _sh_byte_values() -> np.ndarray:
    """[256] the SH coefficient each stored byte stands for (middle of its bucket; 0 and 255 the ends)."""
    q = np.arange(256, dtype=np.float64)
    t = (q + 0.5) / 256.0
    t[0], t[255] = 0.0, 1.0
    return ((t - 0.5) * 8.0).astype(np.float32)


_SH_BYTE_VALUES = _sh_byte_values()


def _check_header(path: Path, header: PlyHeader) -> tuple[PlyElement, PlyElement, PlyElement | None]:
    """The vertex, chunk and (optional) sh elements, checked against the layout and each other."""
    if header.format == "ascii":
        raise InputError(f"{path} is a compressed splat PLY in ASCII, which no splat tool writes.", hint=_REEXPORT)
    chunk, vertex, sh = (header.element(name) for name in _ELEMENTS)
    types = {p: t for p, t in vertex.properties} if vertex is not None else {}
    missing = [p for p in PACKED_PROPERTIES if p not in types]
    if missing:
        raise InputError(f"{path} is a compressed splat PLY whose vertices lack {', '.join(missing)}.", hint=_REEXPORT)
    assert vertex is not None
    wrong = [p for p in PACKED_PROPERTIES if types[p] != "u4"]
    if wrong:
        raise InputError(
            f"{path} is a compressed splat PLY whose {', '.join(wrong)} are not 32-bit unsigned integers (uint).",
            hint=_REEXPORT,
        )
    if chunk is None:
        raise InputError(f"{path} is a compressed splat PLY without its 'chunk' element.", hint=_REEXPORT)
    chunk_types = dict(chunk.properties)
    colour = [p for p in CHUNK_COLOUR_PROPERTIES if p in chunk_types]
    needed = CHUNK_PROPERTIES + (CHUNK_COLOUR_PROPERTIES if colour else ())
    missing = [p for p in needed if p not in chunk_types]
    if missing:
        raise InputError(f"{path} is a compressed splat PLY whose chunks lack {', '.join(missing)}.", hint=_REEXPORT)
    if any(chunk_types[p] not in ("f4", "f8") for p in needed):
        raise InputError(f"{path} is a compressed splat PLY whose chunk ranges are not floats.", hint=_REEXPORT)
    n = vertex.count
    if n == 0:
        raise InputError(f"{path} holds no Gaussians (0 vertices).", hint=_REEXPORT)
    expected = -(-n // CHUNK_SPLATS)
    if chunk.count != expected:
        raise InputError(
            f"{path} declares {chunk.count} chunks for {n} splats; a compressed splat PLY has one chunk per "
            f"{CHUNK_SPLATS} splats ({expected}).",
            hint=_REEXPORT,
        )
    if sh is not None:
        names = list(sh.property_names)
        if len(names) not in SH_REST_COUNTS or names != [f"f_rest_{i}" for i in range(len(names))]:
            raise InputError(
                f"{path} has {len(names)} properties in its 'sh' element; a compressed splat PLY has "
                "f_rest_0.. numbered from 0, 9, 24 or 45 of them.",
                hint=_REEXPORT,
            )
        if any(t != "u1" for _, t in sh.properties):
            raise InputError(f"{path} has 'sh' coefficients that are not bytes (uchar).", hint=_REEXPORT)
        if sh.count != n:
            raise InputError(
                f"{path} declares {sh.count} 'sh' rows for {n} splats; there is one per splat.", hint=_REEXPORT
            )
    return vertex, chunk, sh


__all__ = [
    "CHUNK_COLOUR_PROPERTIES",
    "CHUNK_PROPERTIES",
    "CHUNK_SPLATS",
    "PACKED_PROPERTIES",
    "read_compressed_ply",
    "unpack_smallest_three",
]
