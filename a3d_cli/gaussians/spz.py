"""Niantic's `.spz` (versions 1–4) → `Gaussians`.

Why a3d reads it: it is how Scaniverse and many web viewers share splats, often the only copy a user has.

The format, as Niantic's reference library (github.com/nianticlabs/spz) reads and writes it. Every version
holds the same header fields and the same six attribute blocks; they differ in how the blocks are packed and
compressed.

    header      magic 0x5053474E ("NGSP")  u32;  version u32;  N u32;  SH degree u8;  fractional bits u8;
                flags u8 (0x1: trained antialiased, 0x2: extension records present)
    positions   N × 3 × 3 bytes: x, y, z as 24-bit two's-complement integers / 2^fractional bits
                (version 1: N × 3 float16 instead)
    alphas      N bytes: the opacity after the sigmoid, u / 255
    colours     N × 3 bytes: the SH DC coefficient (u / 255 − 0.5) / 0.15 (its own scale, not SH_C0, so
                colours a little outside [0, 1] fit)
    scales      N × 3 bytes: log-scales u / 16 − 10
    rotations   versions 3–4: N × 4 bytes, a little-endian u32 "smallest three" of the quaternion (x, y, z, w):
                bits 30–31 index the largest |component|, rebuilt as √(1 − a² − b² − c²); the other three, in
                order, take 10 bits each (the last in bits 0–9): a sign bit 9, then a 9-bit magnitude
                m · √½ / 511. Versions 1–2: N × 3 bytes, x, y, z as u / 127.5 − 1, and w = √(1 − x² − y² − z²)
    SH          N × (K − 1) × 3 bytes for degree d (K − 1 = 0, 3, 8, 15, 24 for d = 0..4), the coefficient
                the outer axis and the colour channel the inner one (a3d's own [K − 1, 3] order); each is
                (u − 128) / 128. (Writers round to fewer bits per band; the reader does not need to know.)
    extensions  records of [u32 type][u32 byte length][payload], when flag 0x2 is set

Versions 1–3 are one gzip stream (the file starts 1f 8b) that inflates to a 16-byte header (the fields
above and a reserved byte), the six blocks in that order, then the extension records.

Version 4 starts with "NGSP" itself: a plain 32-byte header (the fields above, then the number of
compressed streams u8, the byte offset of the table of contents u32 and 12 reserved bytes), the extension
records from byte 32 up to that offset, the table (per stream: compressed size u64, inflated size u64), and
the streams back to back up to the end of the file, each the zstd compression of one block in the order
above. An empty block (SH of degree 0) has no stream, so a file holds 5 or 6; each stream's inflated size
must be its block's size and the streams must end exactly where the file does, as the reference reader
requires.

What a3d makes of it, and why:

- axes: `.spz` stores right-up-back (RUB: +Y up, the camera looks down −Z); a 3DGS PLY stores the
  Inria/COLMAP right-down-front (RDF). a3d reads an `.spz` into the PLY's frame, as the reference library does
  when asked for RDF and as `splat-transform` converts it to a PLY, so every 3DGS input meets `prepare` in
  one frame: y → −y and z → −z (a 180° turn about X, no mirroring), the quaternion's x kept and y, z negated,
  and each SH coefficient multiplied by ±1 by whether its basis polynomial is odd in y and z together.
  The reference library also negates the last degree-4 coefficient (x⁴ − 6x²y² + y⁴, which this turn leaves
  alone); a3d refuses degree 4 (it renders SH up to degree 3), so that never matters here.
- opacity: u / 255, kept as it is (0 and 1 included; a PLY would store logit(u / 255)).
- colour: rgb = 0.5 + SH_C0 · f_dc, a3d's activated colour for the same DC coefficient.
- quaternion: a damaged smallest-three word whose three components square to more than 1 gives a largest
  component of 0 (not NaN), as `a3d_cli.gaussians.compressed_ply` does; the result is normalised.
- the antialiased flag (splats trained with a mip filter) has no counterpart in a 3DGS PLY and is ignored,
  as `splat-transform` does.
- extensions: the only one that changes the data is Adobe's coordinate-system record (type 0xADBE0003, a u32
  naming the frame the data is stored in); a file stored in a frame other than RUB is refused with the
  converter's command, others are skipped, as the reference library skips types it does not know.
- zstd comes from the standard library's `compression.zstd` (Python 3.14+) or its backport `backports.zstd`
  (the same module for 3.10–3.13, a dependency of a3d there), imported only when a version 4 file is read.

Hostile files: the header is checked first (magic, version, N from 1 to 2³¹ − 1, SH degree), then the N
splats' byte count is checked against what the file's compressed size can hold as .spz data
(`MAX_INFLATION` times it: deflate could expand zeros 1032-fold and zstd tens of thousands-fold, so a few
kilobytes could declare gigabytes of splats) before anything is allocated. Inflating is bounded by that count:
a gzip stream is inflated by a streaming decompressor with a maximum output length, plus at most 1 MiB after
the splats for extensions, and refused when cut short, when its checksum fails, or when more than that
follows; a version 4 file's table must agree with its header before any stream is inflated, each stream is
inflated to at most its block's size plus one byte (a stream that would give more is refused without
inflating the rest), and a stream that gives less, or does not decode, is refused; a stream of more zstd
frames than `_max_frames` allows is refused too, since each frame costs a decoder however little it yields.
"""

from __future__ import annotations

import importlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from a3d_cli.errors import InputError
from a3d_cli.gaussians.container import SH_C0, Gaussians
from a3d_cli.gaussians.ply import exp_scales, gaussians_from_arrays

SPZ_MAGIC = 0x5053474E  # "NGSP" read as a little-endian u32
SPZ_HEADER = struct.Struct("<IIIBBBB")  # gzip versions: magic, version, N, SH degree, fractional bits, flags, reserved
# version 4: magic, version, N, SH degree, fractional bits, flags, stream count, table offset, 12 reserved bytes
NGSP_HEADER = struct.Struct("<IIIBBBBI12x")
TOC_ENTRY = struct.Struct("<QQ")  # version 4, per stream: compressed size, inflated size
SPZ_VERSIONS = (1, 2, 3, 4)
GZIP_VERSIONS = (1, 2, 3)  # one gzip stream; 4 is the plain header with one zstd stream per attribute
ZSTD_VERSION = 4
COLOR_SCALE = 0.15  # the colour byte's scale of the SH DC coefficient
SH_REST_PER_DEGREE = (0, 3, 8, 15, 24)  # coefficients per channel beyond DC, degrees 0..4
FLAG_EXTENSIONS = 0x2
MAX_INFLATION = 64  # inflated bytes per compressed byte: quantized splat data inflates a few times, zeros 1032
MAX_AFTER_SPLATS = 1 << 20  # inflated bytes read past the splats (extension records)
EXT_COORDINATE_SYSTEM = 0xADBE0003  # Adobe's coordinate-system extension: u32 frame the data is stored in
COORDINATE_SYSTEMS = (
    "UNSPECIFIED", "LDB", "RDB", "LUB", "RUB", "LDF", "RDF", "LUF", "RUF",
    "LFD", "RFD", "LFU", "RFU", "LBD", "RBD", "LBU", "RBU",
)  # fmt: skip  # the extension's values 0..16; 0 (unspecified) means RUB
ATTRIBUTES = ("positions", "alphas", "colours", "scales", "rotations", "SH")  # the blocks, in file order
FEW_FRAMES = 8  # zstd frames any version 4 stream may hold (`_max_frames`)
MIN_FRAME_BYTES = 1 << 16  # ... and one more per this many inflated bytes (writers use one frame a stream)
ZSTD_MODULES = ("compression.zstd", "backports.zstd")  # the standard library's (3.14+), its backport (3.10–3.13)

# RUB → RDF turns the frame 180° about X: (x, y, z) → (x, −y, −z). A real SH basis function is a polynomial
# in x, y, z; it changes sign when its combined degree in y and z is odd. In 3DGS order, degrees 1–3:
#   1: y, z, x                                          → −, −, +
#   2: xy, yz, 3z² − 1, xz, x² − y²                     → −, +, +, −, +
#   3: y(3x² − y²), xyz, y(5z² − 1), z(5z² − 3), x(5z² − 1), z(x² − y²), x(x² − 3y²) → −, +, −, −, +, −, +
SH_SIGNS_RUB_TO_RDF = np.array([-1, -1, 1] + [-1, 1, 1, -1, 1] + [-1, 1, -1, -1, 1, -1, 1], dtype=np.float32)  # [15]

_CONVERT = "npx @playcanvas/splat-transform in.spz out.ply"
_TRUNCATED = "The file was cut short or damaged (an interrupted download or copy?); get a complete copy."
_REEXPORT = "Export the splats again from the tool that made them."


@dataclass(frozen=True)
class SpzHeader:
    """The fields every version's header holds (version 4's stream count and table offset stay with its reader)."""

    version: int
    n: int  # splats
    degree: int  # SH degree, 0..3 once checked
    fractional_bits: int
    flags: int

    def block_sizes(self) -> list[int]:
        """Bytes of each attribute block (`ATTRIBUTES` order) for N splats of this version and SH degree."""
        position_bytes = 6 if self.version == 1 else 9
        rotation_bytes = 4 if self.version >= 3 else 3
        k1 = SH_REST_PER_DEGREE[self.degree]
        n = self.n
        return [n * position_bytes, n, n * 3, n * 3, n * rotation_bytes, n * k1 * 3]


def read_spz(path: str | os.PathLike[str]) -> Gaussians:
    """Read a version 1–4 `.spz` file into activated `Gaussians` (float32, CPU), in a 3DGS PLY's frame.

    Returns:
        Gaussians with linear scales, opacities u / 255, colours from the DC coefficient (not clamped), unit
        quaternions (wxyz) and `sh_rest` [N, K-1, 3] for SH degrees 1–3 (None for 0).

    Raises:
        InputError: a missing or unreadable file, neither gzip nor NGSP, an unknown version, no splats or an
            impossible count, SH degree above 3, data cut short, damaged, longer than its header declares or
            (version 4) disagreeing with its table of contents, a stored frame other than RUB, non-finite
            values, or (version 4) no zstd decoder installed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"Cannot read {path} ({exc.strerror or exc}).", hint="Check that the file exists and is readable."
        ) from exc
    if data[:4] == b"NGSP":  # version 4 keeps its header outside the compression
        header, blocks = _zstd_blocks(path, data)
    elif data[:2] == b"\x1f\x8b":
        header, blocks = _gzip_blocks(path, data)
    else:
        raise InputError(
            f"{path} is not an .spz file (it starts with neither a gzip stream nor 'NGSP').", hint=_REEXPORT
        )
    return _decode(path, header, blocks)


def _check_header(path: Path, header: SpzHeader, versions: tuple[int, ...], layout: str) -> None:
    """Refuse a version outside `versions` (those of the container the file uses), no splats or too many,
    and SH degrees a3d does not render."""
    if header.version not in versions:
        raise InputError(
            f"{path} is an .spz file of version {header.version} in the {layout} layout; a3d reads versions "
            "1–3 (gzip) and 4 (zstd).",
            hint=f"Convert it to a 3DGS .ply first: {_CONVERT} (Node.js).",
        )
    if header.n == 0:
        raise InputError(f"{path} holds no Gaussians (0 splats).", hint=_REEXPORT)
    if header.n > 2**31 - 1:
        raise InputError(
            f"{path} declares {header.n} splats, more than an .spz file can hold (2³¹ − 1).", hint=_TRUNCATED
        )
    if header.degree >= len(SH_REST_PER_DEGREE):
        raise InputError(f"{path} declares SH degree {header.degree}; .spz stores degrees 0–4.", hint=_REEXPORT)
    if header.degree == 4:
        raise InputError(
            f"{path} has SH degree 4; a3d renders spherical harmonics up to degree 3.",
            hint="Export the splats again with SH degree 3 or lower from the tool that made them.",
        )


def _check_inflation(path: Path, header: SpzHeader, file_size: int) -> int:
    """The N splats' byte count, refused before anything is allocated when the file is too small to hold
    it as .spz data (`MAX_INFLATION`)."""
    total = sum(header.block_sizes())
    if total > MAX_INFLATION * file_size:
        raise InputError(
            f"{path} declares {header.n} splats ({total} bytes), more than its {file_size} compressed bytes can "
            f"hold as .spz data (which inflates at most {MAX_INFLATION} times).",
            hint=f"The file is damaged or forged; if it is a real scan, convert it first: {_CONVERT} (Node.js).",
        )
    return total


def _gzip_blocks(path: Path, data: bytes) -> tuple[SpzHeader, list[memoryview]]:
    """Versions 1–3: the header and the six attribute blocks of the one gzip stream, extensions checked."""
    stream = _Inflater(path, data)
    raw = stream.read(SPZ_HEADER.size)
    if len(raw) < SPZ_HEADER.size:
        raise InputError(f"{path} ends inside its .spz header.", hint=_TRUNCATED)
    magic, version, n, degree, fractional_bits, flags, _ = SPZ_HEADER.unpack(raw)
    if magic != SPZ_MAGIC:
        raise InputError(f"{path} is a gzip file but not an .spz one (no 'NGSP' header inside).", hint=_REEXPORT)
    header = SpzHeader(version, n, degree, fractional_bits, flags)
    _check_header(path, header, GZIP_VERSIONS, "gzip")
    total = _check_inflation(path, header, len(data))
    body = stream.read(total)
    if len(body) < total:
        raise InputError(
            f"{path} is truncated: its header declares {n} splats ({total} bytes), the data holds {len(body)}.",
            hint=_TRUNCATED,
        )
    after = stream.finish()
    if flags & FLAG_EXTENSIONS:
        _check_extensions(path, after)
    blocks, offset = [], 0
    for size in header.block_sizes():
        blocks.append(memoryview(body)[offset : offset + size])
        offset += size
    return header, blocks


def _zstd_blocks(path: Path, data: bytes) -> tuple[SpzHeader, list[bytes]]:
    """Version 4: the header and the six attribute blocks, each inflated from its own zstd stream after the
    table of contents has been checked against the header; extensions checked."""
    if len(data) < NGSP_HEADER.size:
        raise InputError(f"{path} ends inside its .spz header.", hint=_TRUNCATED)
    _, version, n, degree, fractional_bits, flags, streams, toc = NGSP_HEADER.unpack_from(data)
    header = SpzHeader(version, n, degree, fractional_bits, flags)
    _check_header(path, header, (ZSTD_VERSION,), "zstd")
    _check_inflation(path, header, len(data))
    sizes = header.block_sizes()
    present = [i for i, size in enumerate(sizes) if size]  # an empty block has no stream
    if streams != len(present):
        raise InputError(
            f"{path} declares {streams} compressed streams; its header's SH degree {degree} needs {len(present)}.",
            hint=_REEXPORT,
        )
    toc_end = toc + TOC_ENTRY.size * streams
    if toc < NGSP_HEADER.size or toc_end > len(data):
        raise InputError(
            f"{path} places its table of contents at bytes {toc}–{toc_end}, not between its {NGSP_HEADER.size}-byte "
            f"header and the end of the file ({len(data)} bytes).",
            hint=_TRUNCATED,
        )
    entries = [TOC_ENTRY.unpack_from(data, toc + TOC_ENTRY.size * k) for k in range(streams)]
    for (_, inflated), i in zip(entries, present, strict=True):
        if inflated != sizes[i]:
            raise InputError(
                f"{path} lists {inflated} bytes of {ATTRIBUTES[i]}; its header's {n} splats need {sizes[i]}.",
                hint=_REEXPORT,
            )
    end = toc_end + sum(compressed for compressed, _ in entries)
    if end > len(data):
        raise InputError(
            f"{path} is truncated: its streams end at byte {end}, the file holds {len(data)}.", hint=_TRUNCATED
        )
    if end < len(data):
        raise InputError(f"{path} holds {len(data) - end} bytes after its last stream.", hint=_REEXPORT)
    if flags & FLAG_EXTENSIONS:
        _check_extensions(path, data[NGSP_HEADER.size : toc])
    zstd = _zstd_module(path)
    blocks, offset = [b""] * len(sizes), toc_end
    for (compressed, _), i in zip(entries, present, strict=True):
        blocks[i] = _unzstd(path, zstd, memoryview(data)[offset : offset + compressed], sizes[i], ATTRIBUTES[i])
        offset += compressed
    return header, blocks


def _zstd_module(path: Path) -> ModuleType:
    """The zstd module (imported here, so reading any other file never loads it)."""
    for name in ZSTD_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise InputError(
        f"{path} is an .spz file of version 4, whose data is zstd-compressed, and this Python has no zstd decoder.",
        hint="Install it: pip install backports.zstd (a dependency of a3d on Python 3.10–3.13; reinstall a3d to "
        "get it); on Python 3.14 and later the standard library's compression.zstd is used.",
    )


def _unzstd(path: Path, zstd: ModuleType, stream: memoryview, size: int, what: str) -> bytes:
    """Exactly `size` bytes inflated from a zstd stream of one or more frames, never more than `size` + 1.

    Each frame is measured first (`get_frame_size`) and inflated from its own slice of the file: handing the
    decoder the rest of the stream would have it copy what follows the frame, once per frame, so a stream of
    many tiny frames would cost time growing with the square of its length. At most `_max_frames(size)`
    frames are read, so that the work per frame stays in proportion to the bytes the stream yields.

    Raises:
        InputError: a stream that does not decode, ends inside a frame, gives more or fewer bytes, or holds
            more frames than its size allows.
    """
    pieces, got, offset, frames = [], 0, 0, 0
    limit = _max_frames(size)
    while offset < len(stream):  # frames back to back, as the reference decoder reads them
        frames += 1
        if frames > limit:
            raise InputError(
                f"{path}'s compressed {what} hold more than {limit} zstd frames for {size} bytes.", hint=_REEXPORT
            )
        rest = stream[offset:]
        try:
            frame = zstd.get_frame_size(rest)
        except zstd.ZstdError:
            frame = len(rest)  # damaged or cut short: inflating it says which
        inflater = zstd.ZstdDecompressor()
        try:
            piece = inflater.decompress(rest[:frame], max_length=size - got + 1)
        except zstd.ZstdError as exc:
            raise InputError(f"{path} has damaged compressed {what} ({exc}).", hint=_TRUNCATED) from exc
        pieces.append(piece)
        got += len(piece)
        if got > size:
            raise InputError(
                f"{path}'s compressed {what} inflate to more than the {size} bytes its table lists.", hint=_REEXPORT
            )
        if not inflater.eof:
            raise InputError(f"{path} is truncated: its compressed {what} end inside a zstd frame.", hint=_TRUNCATED)
        offset += frame - len(inflater.unused_data)
    if got < size:
        raise InputError(f"{path}'s compressed {what} inflate to {got} bytes; its table lists {size}.", hint=_TRUNCATED)
    return b"".join(pieces)


def _max_frames(size: int) -> int:
    """The most zstd frames a stream inflating to `size` bytes may hold: a few (writers use one, a skippable
    frame may ride along), plus one per MIN_FRAME_BYTES inflated, which bounds the fixed cost of starting a
    decoder per frame by the work of inflating what the frames yield."""
    return FEW_FRAMES + size // MIN_FRAME_BYTES


def _decode(path: Path, header: SpzHeader, blocks: list) -> Gaussians:
    """The six attribute blocks (`ATTRIBUTES` order, bytes-like) → Gaussians in a 3DGS PLY's frame."""
    n, k1 = header.n, SH_REST_PER_DEGREE[header.degree]
    positions, alphas, colours, scales, rotations, sh = (np.frombuffer(b, dtype=np.uint8) for b in blocks)
    if header.version == 1:
        means = positions.view("<f2").reshape(n, 3).astype(np.float64)
    else:
        b = positions.reshape(n, 3, 3).astype(np.int32)
        fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)  # [N, 3]
        fixed = np.where(fixed >= 1 << 23, fixed - (1 << 24), fixed)  # two's complement
        means = np.ldexp(fixed.astype(np.float64), -header.fractional_bits)
    if header.version >= 3:
        quats = _smallest_three(rotations.view("<u4"))
    else:
        quats = _first_three(rotations.reshape(n, 3))
    f_dc = (colours.reshape(n, 3).astype(np.float64) / 255.0 - 0.5) / COLOR_SCALE
    log_scales = (scales.reshape(n, 3).astype(np.float32) / 16.0 - 10.0).astype(np.float32)
    sh_rest = None
    if k1:
        values = (sh.reshape(n, k1, 3).astype(np.float32) - 128.0) / 128.0  # [N, K-1, 3]
        sh_rest = torch.from_numpy(np.ascontiguousarray(values * SH_SIGNS_RUB_TO_RDF[:k1, None]))

    # RUB → RDF: positions (x, −y, −z); the quaternion's vector part turns the same way
    means = means * np.array([1.0, -1.0, -1.0])
    quats = quats * np.array([1.0, 1.0, -1.0, -1.0])  # wxyz
    return gaussians_from_arrays(
        path,
        means=means.astype(np.float32),
        quats=quats.astype(np.float32),
        scales=exp_scales(path, log_scales),
        opacities=(alphas.astype(np.float32) / 255.0),
        colors=(0.5 + SH_C0 * f_dc).astype(np.float32),
        sh_rest=sh_rest,
    )


class _Inflater:
    """A gzip stream inflated on demand, never more than asked for (a decompression bomb stays compressed)."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.pending = data
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip only, as the reference reads it

    def read(self, size: int) -> bytes:
        """Up to `size` more inflated bytes (fewer only where the stream ends or the file does)."""
        chunks = []
        while size > 0 and not self.inflater.eof:
            try:
                chunk = self.inflater.decompress(self.pending, size)
            except zlib.error as exc:
                raise InputError(f"{self.path} has damaged compressed data ({exc}).", hint=_TRUNCATED) from exc
            self.pending = self.inflater.unconsumed_tail
            if not chunk and not self.pending:
                break  # the input is used up: no more output can come
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def finish(self) -> bytes:
        """What follows the splats (at most `MAX_AFTER_SPLATS` bytes), once the stream has ended whole."""
        after = self.read(MAX_AFTER_SPLATS + 1)
        if len(after) > MAX_AFTER_SPLATS:
            raise InputError(
                f"{self.path} holds more than {MAX_AFTER_SPLATS} bytes after the splats its header declares.",
                hint=_REEXPORT,
            )
        if not self.inflater.eof:
            raise InputError(f"{self.path} is truncated: its gzip stream does not end.", hint=_TRUNCATED)
        return after


def _check_extensions(path: Path, records: bytes) -> None:
    """Refuse a coordinate-system extension naming a frame other than RUB; skip every other record."""
    offset = 0
    while offset + 8 <= len(records):
        kind, length = struct.unpack_from("<II", records, offset)
        offset += 8
        if length > len(records) - offset:
            return  # a record longer than what is left ends the list, as in the reference reader
        if kind == EXT_COORDINATE_SYSTEM and length >= 4:
            frame = struct.unpack_from("<I", records, offset)[0]
            if frame < len(COORDINATE_SYSTEMS) and COORDINATE_SYSTEMS[frame] not in ("UNSPECIFIED", "RUB"):
                raise InputError(
                    f"{path} stores its splats in the {COORDINATE_SYSTEMS[frame]} frame (an Adobe extension); "
                    "a3d reads .spz files stored in the standard RUB frame.",
                    hint=f"Convert it to a 3DGS .ply first: {_CONVERT} (Node.js).",
                )
        offset += length


def _first_three(stored: np.ndarray) -> np.ndarray:
    """[N, 3] bytes (x, y, z) → [N, 4] quaternions wxyz (float64), w ≥ 0 rebuilt from the unit length."""
    xyz = stored.astype(np.float64) / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - (xyz**2).sum(axis=-1)))
    return np.concatenate([w[:, None], xyz], axis=-1)


def _smallest_three(words: np.ndarray) -> np.ndarray:
    """[N] u32 smallest-three words → [N, 4] quaternions wxyz (float64)."""
    words = words.astype(np.uint32)
    largest = (words >> np.uint32(30)).astype(np.int64)  # index into (x, y, z, w)
    xyzw = np.zeros((len(words), 4), dtype=np.float64)
    fields = [(words >> np.uint32(shift)) & np.uint32(0x3FF) for shift in (0, 10, 20)]  # last stored first
    for k in range(4):
        rows = largest == k
        others = [i for i in range(4) if i != k][::-1]  # the component in bits 0–9 is the last of the three
        for field, i in zip(fields, others, strict=True):
            f = field[rows]
            value = (f & np.uint32(0x1FF)).astype(np.float64) * (math.sqrt(0.5) / 511.0)
            xyzw[rows, i] = np.where(f & np.uint32(0x200), -value, value)
        xyzw[rows, k] = np.sqrt(np.maximum(0.0, 1.0 - (xyzw[rows] ** 2).sum(axis=-1)))
    return xyzw[:, [3, 0, 1, 2]]


__all__ = ["COLOR_SCALE", "SH_SIGNS_RUB_TO_RDF", "SPZ_MAGIC", "SPZ_VERSIONS", "read_spz"]
