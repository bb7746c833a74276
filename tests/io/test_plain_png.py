"""`plain_png`: PNG bytes that hold nothing but 8-bit RGB or RGBA rows of the declared size are told apart, undecoded,
from every other PNG (extra chunks, other pixel formats, a damaged or resized stream, data after the end)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from a3d_cli.io import plain_png as plain_png_module
from a3d_cli.io.plain_png import PlainPng, plain_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC over type and data (PNG spec §5.3), written independently."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def hand_png(width: int, height: int, rows: bytes, colour: int = 2, depth: int = 8, interlace: int = 0) -> bytes:
    """A PNG written from its spec: IHDR, one IDAT of zlib(`rows`), IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def pillow_png(image: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG", **options)
    return out.getvalue()


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        out.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def join_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return SIGNATURE + b"".join(chunk(kind, body) for kind, body in chunks)


def with_header(data: bytes, **fields) -> bytes:
    """`data` with IHDR fields replaced (width, height, interlace), its CRC made right again."""
    chunks = split_chunks(data)
    width, height, depth, colour, comp, method, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    values = {"width": width, "height": height, "interlace": interlace} | fields
    header = (values["width"], values["height"], depth, colour, comp, method, values["interlace"])
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", *header))
    return join_chunks(chunks)


RNG = np.random.default_rng(4)
RGB = RNG.integers(0, 256, (23, 31, 3), dtype=np.uint8)
RGBA = RNG.integers(0, 256, (23, 31, 4), dtype=np.uint8)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_pillow_pngs_of_rgb_and_rgba_texels_are_plain_with_their_size(level):
    assert plain_png(pillow_png(RGB, compress_level=level)) == PlainPng(31, 23, False)
    assert plain_png(pillow_png(RGBA, compress_level=level)) == PlainPng(31, 23, True)


def test_a_png_written_from_the_spec_is_plain_whatever_its_filters():
    """Rows with each of the five filter types, as another encoder might choose them."""
    rows = b"".join(bytes([k % 5]) + bytes(range(k, k + 3 * 7)) for k in range(9))
    assert plain_png(hand_png(7, 9, rows)) == PlainPng(7, 9, False)


def test_a_long_stream_is_checked_a_step_at_a_time(monkeypatch):
    """Several IDAT chunks inflated a few bytes at a time: rows straddle the steps and the chunks, and are found."""
    image = RNG.integers(0, 256, (300, 300, 4), dtype=np.uint8)
    data = pillow_png(image, compress_level=1)
    assert [kind for kind, _ in split_chunks(data)].count(b"IDAT") > 1
    monkeypatch.setattr(plain_png_module, "INFLATE_STEP", 997)
    assert plain_png(data) == PlainPng(300, 300, True)


def _bad_filter() -> bytes:
    rows = b"".join(bytes([5 if k == 6 else 0]) + bytes(3 * 7) for k in range(9))
    return hand_png(7, 9, rows)


def _extra_after_stream() -> bytes:
    chunks = split_chunks(pillow_png(RGB))
    chunks[1] = (b"IDAT", chunks[1][1] + b"\x00" * 8)
    return join_chunks(chunks)


def _wrong_crc() -> bytes:
    data = bytearray(pillow_png(RGB))
    data[-13] ^= 1  # the last byte of the IDAT chunk's CRC (IEND is the last 12 bytes)
    return bytes(data)


def _chunk_after_pixels(kind: bytes, body: bytes) -> bytes:
    chunks = split_chunks(pillow_png(RGB))
    return join_chunks([*chunks[:-1], (kind, body), chunks[-1]])


def _text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "anything at all")
    return pillow_png(RGB, pnginfo=info)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(RGB).save(out, format="JPEG")
    return out.getvalue()


NOT_PLAIN = {
    "text chunk": _text,
    "ICC profile": lambda: pillow_png(RGB, icc_profile=b"\0" * 128),
    "chunk after the pixels": lambda: _chunk_after_pixels(b"zzZz", b"payload"),
    "bytes after IEND": lambda: pillow_png(RGB) + b"PK\x03\x04 a zip",
    "wrong CRC": _wrong_crc,
    "grey": lambda: pillow_png(RGB[..., 0]),
    "grey and alpha": lambda: hand_png(7, 9, b"".join(b"\0" + bytes(14) for _ in range(9)), colour=4),
    "palette": lambda: hand_png(7, 9, b"".join(b"\0" + bytes(7) for _ in range(9)), colour=3),
    "16 bits": lambda: hand_png(7, 9, b"".join(b"\0" + bytes(42) for _ in range(9)), depth=16),
    "interlaced": lambda: with_header(pillow_png(RGB), interlace=1),
    "stream shorter than declared": lambda: with_header(pillow_png(RGB), height=24),
    "stream longer than declared": lambda: with_header(pillow_png(RGB), height=22),
    "narrower than the stream": lambda: with_header(pillow_png(RGB), width=30),
    "zero rows": lambda: with_header(pillow_png(RGB), height=0),
    "invalid filter type": _bad_filter,
    "data after the zlib stream": _extra_after_stream,
    "damaged stream": lambda: join_chunks([split_chunks(pillow_png(RGB))[0], (b"IDAT", b"x\x9c\xff"), (b"IEND", b"")]),
    "no IEND": lambda: pillow_png(RGB)[:-12],
    "cut short": lambda: pillow_png(RGB)[:-40],
    "no IDAT": lambda: join_chunks([split_chunks(pillow_png(RGB))[0], (b"IEND", b"")]),
    "JPEG": lambda: _jpeg(),
    "empty": lambda: b"",
}


@pytest.mark.parametrize("case", NOT_PLAIN)
def test_any_other_png_or_bytes_are_not_plain(case):
    assert plain_png(NOT_PLAIN[case]()) is None
