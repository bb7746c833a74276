"""Whether PNG bytes hold nothing but 8-bit RGB or RGBA pixels, as a3d's own encoder writes them; checked undecoded.

Why: `a3d mesh-animate` copies the texture PNG of `source/mesh.glb` into `export/animated.glb` as it is, rather
than decoding and encoding tens of millions of texels again, only when those bytes are exactly what a3d would
write for those pixels (`a3d_cli.mesh.gltf_animated.texture_png`: the chunks IHDR, IDAT…, IEND). Any other PNG
(a colour profile, text, gamma, a palette, 16 bits, interlacing, data after the end, a damaged stream) is not
copied but decoded and written again, where Pillow's checks and a3d's apply; so a run folder from a stranger
cannot carry into the output anything those checks would have refused or dropped.

The check reads the chunk layout and CRCs, then inflates the pixel data a step at a time (memory holds one step,
never the image) and asks that it come to exactly the rows the header declares, each row starting with a filter
type PNG defines. The filters are not undone: no pixel is decoded.

Examples:
    >>> plain_png(texture_png(np.zeros((4, 8, 4), np.uint8), opaque=True))  # doctest: +SKIP
    PlainPng(width=8, height=4, alpha=False)
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}
"""PNG colour type → channels of the two kinds a3d writes: truecolour (RGB) and truecolour with alpha (RGBA)."""
INFLATE_STEP = 1 << 20
"""Bytes of inflated pixel data checked at a time."""
LAST_FILTER = 4
"""PNG's filter types per row are 0 (None) to 4 (Paeth)."""


@dataclass(frozen=True)
class PlainPng:
    """What the header of a plain PNG declares.

    Attributes:
        width: columns.
        height: rows.
        alpha: True for RGBA, False for RGB.
    """

    width: int
    height: int
    alpha: bool


def plain_png(data: bytes | memoryview) -> PlainPng | None:
    """The header of `data` when it is a plain PNG (the module docstring), else None.

    Plain: the PNG signature; then IHDR (8 bits a channel, RGB or RGBA, deflate, filter method 0, not
    interlaced), one or more IDAT, IEND, each chunk's CRC right, and nothing after IEND; the IDATs' zlib stream
    complete (its checksum right) with nothing after it, inflating to exactly `height` rows of
    1 + `width` × channels bytes, each row's first byte a filter type 0 to 4.
    """
    view = memoryview(data).cast("B")
    chunks = _chunks(view)
    if chunks is None or len(chunks) < 3 or chunks[0][0] != b"IHDR" or chunks[-1] != (b"IEND", b""):
        return None
    if any(kind != b"IDAT" for kind, _ in chunks[1:-1]) or len(chunks[0][1]) != 13:
        return None
    width, height, depth, colour, compression, method, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if not (0 < width < 2**31 and 0 < height < 2**31) or depth != 8 or colour not in CHANNELS:
        return None
    if compression or method or interlace:
        return None
    if not _rows_complete([body for _, body in chunks[1:-1]], 1 + width * CHANNELS[colour], height):
        return None
    return PlainPng(width, height, colour == 6)


def _chunks(view: memoryview) -> list[tuple[bytes, memoryview | bytes]] | None:
    """(type, data) of every chunk after the signature, up to and with IEND; None when the signature is missing, a
    chunk runs past the end or has a wrong CRC, or bytes follow IEND."""
    if bytes(view[:8]) != PNG_SIGNATURE:
        return None
    chunks: list[tuple[bytes, memoryview | bytes]] = []
    at = 8
    while at + 12 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, at)
        end = at + 12 + length
        if end > len(view):
            return None
        body = view[at + 8 : at + 8 + length]
        if zlib.crc32(body, zlib.crc32(kind)) != struct.unpack_from(">I", view, end - 4)[0]:
            return None
        chunks.append((kind, bytes(body) if kind == b"IEND" else body))
        at = end
        if kind == b"IEND":
            return chunks if at == len(view) else None
    return None


def _rows_complete(parts: list[memoryview | bytes], row: int, rows: int) -> bool:
    """Whether the zlib stream split over `parts` inflates, with nothing before or after its end, to exactly
    `rows` rows of `row` bytes whose first bytes are PNG filter types; inflated `INFLATE_STEP` bytes at a time."""
    expected = row * rows
    inflater = zlib.decompressobj()
    done = 0
    try:
        for part in parts:
            pending: memoryview | bytes = part
            while True:
                out = inflater.decompress(pending, INFLATE_STEP)
                if done + len(out) > expected or not _filters_valid(out, done, row):
                    return False
                done += len(out)
                pending = inflater.unconsumed_tail
                if not pending and len(out) < INFLATE_STEP:
                    break
            if inflater.unused_data:
                return False
    except zlib.error:
        return False
    return inflater.eof and done == expected


def _filters_valid(out: bytes, offset: int, row: int) -> bool:
    """Whether the bytes of `out` that start rows (`out` begins `offset` bytes into the pixel data) are filter types."""
    starts = np.frombuffer(out, dtype=np.uint8)[(-offset) % row :: row]
    return bool((starts <= LAST_FILTER).all())


__all__ = ["PNG_SIGNATURE", "PlainPng", "plain_png"]
