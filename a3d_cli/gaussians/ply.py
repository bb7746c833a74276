"""The standard 3DGS PLY layout (Inria `gaussian-splatting`) ↔ `Gaussians`.

Why one module: this is the file every splat viewer (SuperSplat, antimatter15/splat, Babylon.js, …) and every
3DGS trainer reads and writes, and the activations stored in it differ from the ones a3d keeps in memory.

On disk, one `vertex` element with float32 properties, in this order:

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  f_rest_0 … f_rest_{3(K-1)-1}  opacity  scale_0 scale_1 scale_2
    rot_0 rot_1 rot_2 rot_3

- `f_dc_c` is the degree-0 SH coefficient: rgb = 0.5 + SH_C0 · f_dc.
- `f_rest` is channel-major: f_rest_{c·(K-1)+k} is coefficient k+1 of channel c.
- `opacity` is a logit (opacity = sigmoid(value)); `scale_i` are natural logs of standard deviations.
- `rot_0..3` is the quaternion w, x, y, z (readers normalise it).
- `nx ny nz` are written as zeros (unused by 3DGS, expected by some tools) and ignored on read.

Axes: the file stores whatever frame the caller's splats are in; a3d's own frame is +Y up (as glTF). The
original 3DGS viewers (SIBR, and web viewers made for COLMAP scenes) expect COLMAP's camera convention,
+Y *down*; `convention_rotation("inria")` is the proper rotation (180° about X: y → −y, z → −z) that turns a
+Y-up set into that convention without mirroring it.

Reading accepts binary (either endianness) and ASCII files, any property order, float or double types and
extra properties (they are ignored). SuperSplat's compressed PLY (`packed_*` properties) is recognised by its
header and decoded by `a3d_cli.gaussians.compressed_ply` into the same `Gaussians`.

Examples:
    >>> write_ply("splats.ply", g)  # doctest: +SKIP
    >>> read_ply("splats.ply").means.shape  # doctest: +SKIP
    torch.Size([N, 3])
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import SH_C0, Gaussians
from a3d_cli.gaussians.ply_convention import PLY_CONVENTIONS, PlyConvention  # torch-free, re-exported
from a3d_cli.io.atomic import atomic_path


def convention_rotation(convention: PlyConvention) -> np.ndarray:
    """[3, 3] rotation from a3d's +Y-up axes to those of a PLY convention ("yup": identity; "inria": Y down)."""
    if convention == "yup":
        return np.eye(3)
    if convention == "inria":
        return np.diag([1.0, -1.0, -1.0])
    raise ValueError(f"convention must be one of {PLY_CONVENTIONS}, got {convention!r}")


# Properties a file must have to be read as 3DGS (f_rest_* and normals are optional).
REQUIRED_PROPERTIES: tuple[str, ...] = (
    "x", "y", "z",
    "f_dc_0", "f_dc_1", "f_dc_2",
    "opacity",
    "scale_0", "scale_1", "scale_2",
    "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip
# Any one of these in the vertex element marks the file as meant to be 3DGS (then all REQUIRED must exist).
_GAUSSIAN_MARKERS = ("f_dc_0", "opacity", "scale_0", "rot_0")
# Compressed layouts (SuperSplat / PlayCanvas) pack properties into integers, with ranges in a `chunk` element.
_COMPRESSED_MARKERS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")

MAX_SH_COEFFS = 16  # (degree + 1)² coefficients per channel up to SH degree 3, the most gsplat evaluates
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class PlyElement:
    """One element of a PLY header: name, count and its (name, numpy type) properties.

    List properties are kept as (name, None) — they make the element variable-sized — and their (name, count
    type, item type) in `lists`.
    """

    name: str
    count: int
    properties: tuple[tuple[str, str | None], ...]
    lists: tuple[tuple[str, str, str], ...] = ()

    @property
    def property_names(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.properties)


@dataclass(frozen=True)
class PlyHeader:
    """A parsed PLY header: format, elements in file order, and the byte offset where data starts."""

    format: str  # "binary_little_endian" | "binary_big_endian" | "ascii"
    elements: tuple[PlyElement, ...]
    data_offset: int
    comments: tuple[str, ...] = ()  # the `comment` and `obj_info` lines as written (a mesh's TextureFile ...)

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


_REEXPORT = "The file's header is malformed; export the splats again from the tool that made them."
_TRUNCATED = "The file was cut short (an interrupted download or copy?); get a complete copy."
_DIVERGED = "The splats are broken (often a training run that diverged); re-export or retrain them."


def read_ply_header(path: str | os.PathLike[str]) -> PlyHeader:
    """Parse a PLY header without reading the data.

    Raises:
        InputError: the file is missing, unreadable or not a PLY file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER_BYTES)
    except OSError as exc:
        raise InputError(f"Cannot read {path} ({exc.strerror or exc}).", hint="Check that the file exists and is readable.") from exc
    if not head.startswith(b"ply"):
        raise InputError(f"{path} is not a PLY file (it does not start with 'ply').", hint=_REEXPORT)
    end = head.find(b"end_header")
    if end < 0:
        raise InputError(f"{path} has a broken PLY header (no 'end_header' line).", hint=_REEXPORT)
    newline = head.find(b"\n", end)
    if newline < 0:
        raise InputError(f"{path} has a broken PLY header (nothing after 'end_header').", hint=_TRUNCATED)
    lines = head[:end].decode("ascii", errors="replace").splitlines()
    fmt: str | None = None
    elements: list[PlyElement] = []
    current: tuple[str, int, list[tuple[str, str | None]], list[tuple[str, str, str]]] | None = None
    comments: list[str] = []
    for raw in lines[1:]:
        words = raw.split()
        if words and words[0] in ("comment", "obj_info"):
            comments.append(raw.strip())
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                if current is not None:
                    elements.append(PlyElement(current[0], current[1], tuple(current[2]), tuple(current[3])))
                current = (words[1], int(words[2]), [], [])
                if current[1] < 0:
                    raise InputError(f"{path} declares {current[1]} {current[0]} entries in its PLY header.", hint=_REEXPORT)
            elif words[0] == "property" and current is not None:
                name = words[4] if words[1] == "list" else words[2]
                if name in (n for n, _ in current[2]):
                    raise InputError(
                        f"{path} declares the property {name!r} twice in its {current[0]!r} element.", hint=_REEXPORT
                    )
                current[2].append((name, None if words[1] == "list" else _PLY_TYPES[words[1]]))
                if words[1] == "list":
                    current[3].append((name, _PLY_TYPES[words[2]], _PLY_TYPES[words[3]]))
            else:
                raise ValueError(raw)
        except (IndexError, KeyError, ValueError) as exc:
            raise InputError(f"{path} has a broken PLY header line: {raw.strip()!r}.", hint=_REEXPORT) from exc
    if current is not None:
        elements.append(PlyElement(current[0], current[1], tuple(current[2]), tuple(current[3])))
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise InputError(f"{path} has an unknown PLY format {fmt!r}.", hint=_REEXPORT)
    return PlyHeader(format=fmt, elements=tuple(elements), data_offset=newline + 1, comments=tuple(comments))


def is_gaussian_ply(path: str | os.PathLike[str]) -> bool:
    """Whether a PLY file is meant to hold 3D Gaussians (has any 3DGS-specific vertex property).

    A file that is meant to be 3DGS but lacks some properties still answers True; `read_ply` then names
    what is missing. Compressed splat PLYs (SuperSplat's `packed_*` layout) answer True too.
    """
    header = read_ply_header(path)
    names = {p for e in header.elements for p in e.property_names}
    return any(m in names for m in _GAUSSIAN_MARKERS + _COMPRESSED_MARKERS)


def _read_vertex_table(path: Path, header: PlyHeader) -> np.ndarray:
    """The `vertex` element as a numpy structured array."""
    vertex = header.element("vertex")
    assert vertex is not None
    if any(t is None for _, t in vertex.properties):
        raise InputError(f"{path} has list properties in its vertex element, which 3DGS files never have.")
    if header.format != "ascii":
        return read_binary_elements(path, header, ("vertex",))["vertex"]
    dtype = np.dtype([(name, "<" + t) for name, t in vertex.properties])  # type: ignore[operator]
    with open(path, "rb") as f:
        f.seek(header.data_offset)
        text = f.read().decode("ascii", errors="replace").splitlines()
    skip_lines = 0
    for e in header.elements:
        if e.name == "vertex":
            break
        skip_lines += e.count
    rows = text[skip_lines : skip_lines + vertex.count]
    if len(rows) < vertex.count:
        raise InputError(
            f"{path} is truncated: {vertex.count} vertices declared, {len(rows)} found.", hint=_TRUNCATED
        )
    try:
        values = np.array([r.split()[: len(dtype.names)] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path} has a malformed ASCII vertex row ({exc}).", hint=_REEXPORT) from exc
    table = np.empty(vertex.count, dtype=dtype)
    for i, name in enumerate(dtype.names):
        table[name] = values[:, i]
    return table


def read_binary_elements(path: Path, header: PlyHeader, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The fixed-size elements `names` of a binary PLY as structured arrays (those present; one without
    properties holds no bytes and is left out).

    Every element up to the last one wanted must have a fixed size (no list properties), and the file must hold
    all the bytes the header declares for them; both are checked before anything is read.

    Raises:
        InputError: a variable-sized element before a wanted one, or a file shorter than its header declares.
    """
    endian = ">" if header.format == "binary_big_endian" else "<"
    wanted = {name for name in names if header.element(name) is not None}
    spans: dict[str, tuple[int, int, np.dtype]] = {}
    offset = header.data_offset
    for element in header.elements:
        if not wanted - spans.keys():
            break
        if any(t is None for _, t in element.properties):
            raise InputError(
                f"{path} has a variable-sized element '{element.name}' before the elements a3d reads, which it "
                "cannot skip.",
                hint=_REEXPORT,
            )
        dtype = np.dtype([(name, endian + t) for name, t in element.properties])  # type: ignore[operator]
        if element.name in wanted and dtype.itemsize:
            spans[element.name] = (offset, element.count, dtype)
        elif element.name in wanted:
            wanted.discard(element.name)
        offset += element.count * dtype.itemsize  # Python integers: a huge count cannot wrap
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if offset > size:  # before allocating anything
            raise InputError(
                f"{path} is truncated: its header declares {offset} bytes of header and data, the file has {size}.",
                hint=_TRUNCATED,
            )
        tables = {}
        for name, (start, count, dtype) in spans.items():
            f.seek(start)
            tables[name] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype, count=count)
    return tables


def read_ply(path: str | os.PathLike[str]) -> Gaussians:
    """Read a 3DGS PLY into activated `Gaussians` (float32, CPU).

    Args:
        path: a PLY file in the standard 3DGS layout (any property order; extra properties ignored), or in
            SuperSplat's compressed layout (`packed_*` properties; `a3d_cli.gaussians.compressed_ply`).

    Returns:
        Gaussians with linear scales, opacities in (0, 1), colours from f_dc (not clamped, so SH colour
        round-trips exactly) and `sh_rest` [N, K-1, 3] when the file has f_rest_* properties.

    Raises:
        InputError: missing/unreadable file, not 3DGS, missing properties (named), a bad f_rest count, no
            splats, or non-finite values; for a compressed layout, whatever `read_compressed_ply` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The file {path} does not exist.", hint="Check the path and its spelling.")
    header = read_ply_header(path)
    names = {p for e in header.elements for p in e.property_names}
    if any(m in names for m in _COMPRESSED_MARKERS):  # SuperSplat's packed layout, decoded on its own
        from a3d_cli.gaussians.compressed_ply import read_compressed_ply

        return read_compressed_ply(path, header)
    vertex = header.element("vertex")
    present = set(vertex.property_names) if vertex is not None else set()
    missing = [p for p in REQUIRED_PROPERTIES if p not in present]
    if missing:
        raise InputError(
            f"{path} is not a complete 3DGS PLY: its vertices lack {', '.join(missing)}.",
            hint="A 3DGS PLY needs x y z f_dc_0..2 opacity scale_0..2 rot_0..3 (f_rest_* optional).",
        )
    assert vertex is not None
    if vertex.count == 0:
        raise InputError(f"{path} holds no Gaussians (0 vertices).", hint=_REEXPORT)
    rest = sorted(
        (p for p in present if p.startswith("f_rest_")),
        key=lambda p: int(p.rsplit("_", 1)[1]) if p.rsplit("_", 1)[1].isdigit() else -1,
    )
    n_rest = len(rest)
    k = n_rest // 3 + 1
    if n_rest % 3 or math.isqrt(k) ** 2 != k or rest != [f"f_rest_{i}" for i in range(n_rest)]:
        raise InputError(
            f"{path} has {n_rest} f_rest_* properties; a 3DGS PLY has 3·(K-1) of them (0, 9, 24 or 45), numbered from 0."
        )
    if k > MAX_SH_COEFFS:  # degree 4 and up: no renderer a3d uses (gsplat, its reference) evaluates them
        raise InputError(
            f"{path} has spherical harmonics of degree {math.isqrt(k) - 1} ({n_rest} f_rest_* properties); a3d reads "
            "degrees 0 to 3 (up to 45).",
            hint="Export the splats again with SH degree 3 or lower.",
        )

    table = _read_vertex_table(path, header)

    def cols(*names: str) -> np.ndarray:
        return float_columns(table, names)

    means = cols("x", "y", "z")  # [N, 3]
    f_dc = cols("f_dc_0", "f_dc_1", "f_dc_2")  # [N, 3]
    logit = np.array(table["opacity"], dtype=np.float32)  # [N] (a writable copy)
    log_scales = cols("scale_0", "scale_1", "scale_2")  # [N, 3]
    quats = cols("rot_0", "rot_1", "rot_2", "rot_3")  # [N, 4] wxyz
    for name, arr in (
        ("positions", means),
        ("colours", f_dc),
        ("opacities", logit),
        ("scales", log_scales),
        ("rotations", quats),
    ):
        if not np.isfinite(arr).all():
            raise InputError(f"{path} has non-finite (NaN or infinite) Gaussian {name}.", hint=_DIVERGED)
    sh_rest = None
    if n_rest:
        # channel-major on disk (f_rest_{c·(K-1) + j}): gathered coefficient-major, [N, K-1, 3], in one pass
        f_rest = cols(*(rest[c * (k - 1) + j] for j in range(k - 1) for c in range(3))).reshape(-1, k - 1, 3)
        if not np.isfinite(f_rest).all():
            raise InputError(
                f"{path} has non-finite (NaN or infinite) spherical-harmonic coefficients.", hint=_DIVERGED
            )
        sh_rest = torch.from_numpy(f_rest)  # [N, K-1, 3]

    return gaussians_from_arrays(
        path,
        means=means,
        quats=quats,
        scales=exp_scales(path, log_scales),
        opacities=torch.sigmoid(torch.from_numpy(logit)),
        colors=torch.from_numpy(0.5 + SH_C0 * f_dc),
        sh_rest=sh_rest,
    )


def float_columns(table: np.ndarray, names: Iterable[str]) -> np.ndarray:
    """[N, len(names)] float32: the fields `names` of a structured table, side by side in that order.

    Why not one field after another: a field of a row-major table is a strided column, so stacking the 62
    fields of a 3DGS PLY one by one walks the whole table once per field. A table of native float32 fields
    only (the usual binary 3DGS PLY) is read instead as one [N, P] matrix and gathered in one pass; any other
    (doubles, the other byte order) field by field, converted to float32.
    """
    names = list(names)
    fields = table.dtype.fields or {}
    plain = (
        table.flags.c_contiguous
        and table.dtype.itemsize == 4 * len(fields)
        and all(dt == np.dtype(np.float32) for dt, *_ in fields.values())
    )
    if plain:
        matrix = table.view(np.float32).reshape(len(table), len(fields))  # [N, P], no copy
        return np.take(matrix, [fields[n][1] // 4 for n in names], axis=1)
    return np.stack([np.asarray(table[n], dtype=np.float32) for n in names], axis=-1)


def exp_scales(path: str | os.PathLike[str], log_scales: np.ndarray) -> np.ndarray:
    """[N, 3] linear scales from float32 log-scales, refusing logs whose exponential overflows float32.

    Raises:
        InputError: a finite log-scale so large that its scale is infinite (a diverged training run).
    """
    with np.errstate(over="ignore"):
        scales = np.exp(log_scales)  # [N, 3] activated; finite logs can still overflow float32
    if not np.isfinite(scales).all():
        worst = float(np.abs(log_scales).max())
        raise InputError(
            f"{path} has Gaussian log-scales up to {worst:.4g}, whose scales overflow (exp > 3.4e38).",
            hint=_DIVERGED,
        )
    return scales


def gaussians_from_arrays(
    path: str | os.PathLike[str],
    *,
    means: np.ndarray,
    quats: np.ndarray,
    scales: np.ndarray,
    opacities: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor,
    sh_rest: torch.Tensor | None = None,
) -> Gaussians:
    """`Gaussians` from decoded float32 arrays, the last step every splat file reader shares.

    Why one function: each format stores its own activations, but once decoded they all meet the same
    checks (nothing NaN or infinite) and the same quaternion rule (normalised; a zero quaternion, which
    has no rotation to normalise, becomes the identity).

    Args:
        path: the file, for messages.
        means: [N, 3] positions.
        quats: [N, 4] rotations, wxyz, any length.
        scales: [N, 3] linear scales.
        opacities: [N] in [0, 1].
        colors: [N, 3] RGB (the SH degree-0 term).
        sh_rest: [N, K-1, 3] higher-order SH coefficients, or None.

    Raises:
        InputError: a NaN or infinite value, naming which attribute holds it.
    """
    arrays = {"positions": means, "colours": colors, "opacities": opacities, "scales": scales, "rotations": quats}
    for name, arr in arrays.items():
        if not np.isfinite(np.asarray(arr)).all():
            raise InputError(f"{path} has non-finite (NaN or infinite) Gaussian {name}.", hint=_DIVERGED)
    q = torch.as_tensor(quats, dtype=torch.float32)
    norm = q.norm(dim=-1, keepdim=True)  # [N, 1]
    q = torch.where(norm > 1e-12, q / norm.clamp_min(1e-12), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    return Gaussians(
        means=torch.as_tensor(means, dtype=torch.float32),
        quats=q,
        scales=torch.as_tensor(scales, dtype=torch.float32),
        opacities=torch.as_tensor(opacities, dtype=torch.float32),
        colors=torch.as_tensor(colors, dtype=torch.float32),
        sh_rest=sh_rest,
    )


def gaussians_to_table(g: Gaussians) -> np.ndarray:
    """The standard 3DGS vertex table (structured float32 array) for `g`, activations inverted."""
    n = len(g)
    k1 = 0 if g.sh_rest is None else g.sh_rest.shape[1]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * k1)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    g = g.to("cpu", torch.float32)
    eps = 1e-7
    opac = g.opacities.double().clamp(eps, 1 - eps)
    columns = [
        g.means.numpy(),  # [N, 3]
        np.zeros((n, 3), dtype=np.float32),  # normals, unused
        ((g.colors - 0.5) / SH_C0).numpy(),  # [N, 3]
    ]
    if k1:
        columns.append(g.sh_rest.permute(0, 2, 1).reshape(n, 3 * k1).numpy())  # type: ignore[union-attr]
    columns += [
        torch.log(opac / (1 - opac)).float().numpy()[:, None],  # [N, 1] logit
        torch.log(g.scales.clamp_min(1e-12)).numpy(),  # [N, 3]
        g.quats.numpy(),  # [N, 4] wxyz
    ]
    flat = np.concatenate(columns, axis=1).astype("<f4")  # [N, P]
    return flat.view(np.dtype([(name, "<f4") for name in names])).reshape(n)


def write_ply(path: str | os.PathLike[str], g: Gaussians) -> None:
    """Write `g` as a binary little-endian 3DGS PLY, atomically.

    The header carries no comment: the original 3DGS viewer (SIBR) reads the splat count from the third
    header line by position, so that line must be `element vertex N`, as the reference trainer writes it.

    Args:
        path: destination `.ply`.
        g: Gaussians (activated: linear scales, opacities in [0, 1], RGB colours).
    """
    table = gaussians_to_table(g)
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {len(table)}"]
    lines += [f"property float {name}" for name in table.dtype.names]
    lines.append("end_header")
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(lines) + "\n").encode("ascii"))
            f.write(table.tobytes())


__all__ = [
    "PLY_CONVENTIONS",
    "REQUIRED_PROPERTIES",
    "PlyConvention",
    "PlyHeader",
    "convention_rotation",
    "exp_scales",
    "gaussians_from_arrays",
    "gaussians_to_table",
    "is_gaussian_ply",
    "read_binary_elements",
    "read_ply",
    "read_ply_header",
    "write_ply",
]
