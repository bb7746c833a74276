"""ICC profiles written from published colorimetry (primaries, white point, transfer curve), and the sRGB
numbers that colorimetry gives, independent of LittleCMS: for tests of what a3d reads from an image file
with an embedded profile (`tests/io/test_image_reading.py`, `tests/real_programs/test_chromium_colours.py`).
"""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white
D65 = (0.3127, 0.3290)
SRGB = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)]
DISPLAY_P3 = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]  # DCI-P3 primaries, D65, the sRGB curve
ADOBE_RGB = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)]  # Adobe RGB (1998): D65, gamma 563/256
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: list[tuple[float, float]]) -> np.ndarray:
    """[3, 3] linear RGB → XYZ (D65 white, Y = 1)."""
    m = np.stack([_xyz(*p) for p in primaries], axis=1)
    return m * np.linalg.solve(m, _xyz(*D65))


def d65_to_d50() -> np.ndarray:
    a, b = BRADFORD @ _xyz(*D65), BRADFORD @ np.array(D50)
    return np.linalg.inv(BRADFORD) @ np.diag(b / a) @ BRADFORD


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(v) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(c) for c in v)


def _desc_tag(text: str) -> bytes:
    a = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(a)) + a + bytes(8) + bytes(3) + bytes(67)


SRGB_CURVE = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(
    _s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
)


def gamma_curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def icc_profile(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2.1 profile: 128-byte header, tag table, tag data (4-byte aligned)."""
    body, table, start = b"", b"", 132 + 12 * len(tags)
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", start + len(body), len(data))
        body += data
    header = struct.pack(">I4sI", start + len(body), bytes(4), 0x02100000) + device_class + space + pcs
    header += bytes(12) + b"acsp" + bytes(28) + b"".join(_s15(v) for v in D50)
    return header + bytes(128 - len(header)) + struct.pack(">I", len(tags)) + table + body


def rgb_tags(primaries: list[tuple[float, float]], curve: bytes, name: str) -> list[tuple[bytes, bytes]]:
    """A display profile's tags for the given primaries (D65, adapted to D50 with Bradford, as ICC asks)."""
    m = d65_to_d50() @ rgb_to_xyz(primaries)
    columns = [(b"rXYZ", _xyz_tag(m[:, 0])), (b"gXYZ", _xyz_tag(m[:, 1])), (b"bXYZ", _xyz_tag(m[:, 2]))]
    curves = [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return [(b"desc", _desc_tag(name)), (b"wtpt", _xyz_tag(D50)), *columns, *curves]


def rgb_icc(primaries: list[tuple[float, float]], curve: bytes, name: str) -> bytes:
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", rgb_tags(primaries, curve, name))


P3_ICC = rgb_icc(DISPLAY_P3, SRGB_CURVE, "Display P3 (test)")
ADOBE_ICC = rgb_icc(ADOBE_RGB, gamma_curve(563 / 256), "Adobe RGB (test)")
LINEAR_GREY_ICC = icc_profile(b"mntr", b"GRAY", b"XYZ ", [(b"wtpt", _xyz_tag(D50)), (b"kTRC", gamma_curve(1.0))])

CMYK_CORNERS = {  # Lab of each ink overprint at full strength (no black ink); black ink alone is Lab(15, 0, 0)
    (0, 0, 0): (100, 0, 0), (1, 0, 0): (55, -37, -50), (0, 1, 0): (48, 74, -3), (0, 0, 1): (89, -5, 93),
    (1, 1, 0): (23, 17, -46), (1, 0, 1): (50, -65, 27), (0, 1, 1): (47, 68, 48), (1, 1, 1): (20, 0, 0),
}  # fmt: skip


def cmyk_icc() -> bytes:
    """A printer profile whose A2B0 table (lut16, 2 points a channel) gives `CMYK_CORNERS`."""
    grid = []
    for c, m, y, k in np.ndindex(2, 2, 2, 2):
        lab = (15, 0, 0) if k else CMYK_CORNERS[(c, m, y)]
        grid += [round(lab[0] / 100 * 65280), round((lab[1] + 128) * 256), round((lab[2] + 128) * 256)]
    lut = b"mft2\0\0\0\0" + struct.pack(">BBBB", 4, 3, 2, 0) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut += struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)
    lut += struct.pack(f">{len(grid)}H", *grid) + struct.pack(">6H", *[0, 65535] * 3)
    return icc_profile(b"prtr", b"CMYK", b"Lab ", [(b"desc", _desc_tag("CMYK (test)")), (b"wtpt", _xyz_tag(D50)), (b"A2B0", lut)])


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def expected_srgb(rgb8, primaries, decode) -> np.ndarray:
    """8-bit colours of a D65 RGB space → sRGB levels, by colorimetry alone (both whites are D65)."""
    m = np.linalg.inv(rgb_to_xyz(SRGB)) @ rgb_to_xyz(primaries)
    return srgb_encode(decode(np.asarray(rgb8, float) / 255) @ m.T) * 255


def lab_to_srgb(lab) -> np.ndarray:
    """A D50 Lab colour → sRGB levels (relative colorimetric: D50 white → sRGB white, Bradford)."""
    L, a, b = lab
    fy = (L + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    xyz_d65 = np.linalg.inv(d65_to_d50()) @ (t * np.array(D50))
    return srgb_encode(np.linalg.inv(rgb_to_xyz(SRGB)) @ xyz_d65) * 255
