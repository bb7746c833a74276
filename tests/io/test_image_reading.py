"""What a3d reads from a user's image file (`load_png`, and through it `a3d orbit IMAGE`, `a3d animate IMAGE`
and the frames of `lift` and `--video`): colours through an embedded ICC profile, the first of several
frames, and each pixel layout a PNG, JPEG or TIFF can hold.

The ICC profiles are written from published colorimetry (`icc_profiles`: primaries, white point, transfer
curve), and the expected sRGB numbers come from that colorimetry, not from LittleCMS: a profile a3d
ignored, or applied the wrong way round, gives other numbers.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from icc_profiles import (
    ADOBE_ICC,
    ADOBE_RGB,
    CMYK_CORNERS,
    DISPLAY_P3,
    LINEAR_GREY_ICC,
    P3_ICC,
    SRGB,
    SRGB_CURVE,
    cmyk_icc,
    d65_to_d50,
    expected_srgb,
    icc_profile,
    lab_to_srgb,
    rgb_icc,
    rgb_tags,
    rgb_to_xyz,
    srgb_decode,
    srgb_encode,
)
from PIL import Image, ImageCms

import a3d_cli.io.colour_profiles as colour_profiles
from a3d_cli.errors import InputError
from a3d_cli.io.images import load_png
from a3d_cli.io.preprocess import load_object_rgba, prepare_object_image


def test_the_p3_profile_built_here_is_apples(tmp_path: Path) -> None:
    """The test profile is right before it judges a3d: its D50 colorants are those Apple's Display P3
    profile publishes (to the 4 decimals given there)."""
    m = d65_to_d50() @ rgb_to_xyz(DISPLAY_P3)
    apple = np.array([[0.5151, 0.2920, 0.1571], [0.2412, 0.6922, 0.0666], [-0.0011, 0.0419, 0.7841]])
    np.testing.assert_allclose(m, apple, atol=6e-5)


# -- colour profiles ------------------------------------------------------------------------------------

PATCHES = [(200, 100, 50), (30, 180, 90), (120, 120, 220), (128, 128, 128), (250, 250, 250), (60, 200, 230)]


def patches(colours=PATCHES, side: int = 16) -> np.ndarray:
    """One flat square per colour, side by side: [side, side·n, 3] uint8 (flat, so a JPEG keeps them)."""
    return np.concatenate([np.full((side, side, 3), c, np.uint8) for c in colours], axis=1)


def centres(img: torch.Tensor, n: int, side: int = 16) -> np.ndarray:
    """The 8-bit colour at the centre of each of `n` patches: [n, C]."""
    return np.array([(img[side // 2, side * i + side // 2] * 255).numpy() for i in range(n)])


@pytest.mark.parametrize(
    ("icc", "primaries", "decode"),
    [
        (P3_ICC, DISPLAY_P3, srgb_decode),
        (ADOBE_ICC, ADOBE_RGB, lambda v: v ** (563 / 256)),
    ],
    ids=["display-p3", "adobe-rgb"],
)
@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_a_photo_in_a_wide_gamut_profile_is_read_in_srgb(tmp_path: Path, icc, primaries, decode, fmt) -> None:
    """A phone's Display P3 photo (or an Adobe RGB export) reads as every colour-managed viewer shows it;
    read as stored, its colours were duller (P3 (200, 100, 50) is sRGB (215, 93, 31))."""
    path = tmp_path / f"photo.{fmt}"
    Image.fromarray(patches()).save(path, icc_profile=icc, **({"quality": 100, "subsampling": 0} if fmt == "jpg" else {}))
    got = centres(load_png(path), len(PATCHES))
    want = expected_srgb(PATCHES, primaries, decode)
    # 1.5 levels: LittleCMS works in 8 bits through a precalculated table, colorants are 16.16 fixed point
    np.testing.assert_allclose(got, want, atol=1.5)
    assert np.abs(got - np.array(PATCHES)).max() > 10  # the profile mattered


def test_alpha_and_palette_transparency_are_kept_through_the_profile(tmp_path: Path) -> None:
    rgba = np.concatenate([patches(), np.full((16, 16 * len(PATCHES), 1), 255, np.uint8)], axis=-1)
    rgba[:, :16, 3] = 0  # the first patch transparent ...
    rgba[:, 16:32, 3] = 100  # ... the second half so
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png", icc_profile=P3_ICC)
    img = load_png(tmp_path / "rgba.png")
    assert img.shape[-1] == 4 and torch.equal(img[..., 3], torch.from_numpy(rgba[..., 3]).float() / 255)
    want = expected_srgb(PATCHES, DISPLAY_P3, srgb_decode)
    np.testing.assert_allclose(centres(img, len(PATCHES))[:, :3], want, atol=1.5)

    pal = Image.fromarray(patches()).quantize(len(PATCHES))
    pal.save(tmp_path / "pal.png", icc_profile=P3_ICC, transparency=int(np.asarray(pal)[8, 8]))  # patch 0 clear
    img = load_png(tmp_path / "pal.png")
    assert img.shape[-1] == 4 and float(img[8, 8, 3]) == 0.0 and float(img[8, 24:, 3].min()) == 1.0
    np.testing.assert_allclose(centres(img, len(PATCHES))[1:, :3], want[1:], atol=1.5)


def test_a_greyscale_image_with_a_grey_profile_is_converted_and_keeps_its_alpha(tmp_path: Path) -> None:
    """A linear-light grey profile: stored level 128 is half the light, which sRGB writes as 188."""
    la = np.stack([np.full((8, 8), 128, np.uint8), np.full((8, 8), 77, np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "grey.png", icc_profile=LINEAR_GREY_ICC)
    img = load_png(tmp_path / "grey.png")
    want = float(srgb_encode(np.array(128 / 255))) * 255  # 187.5
    assert img.shape[-1] == 4 and abs(float(img[4, 4, 0]) * 255 - want) <= 1.0
    assert round(float(img[4, 4, 3]) * 255) == 77


def test_a_cmyk_jpeg_is_read_through_its_profile(tmp_path: Path) -> None:
    """Pillow's own CMYK → RGB is naive (cyan ink → (0, 255, 255)); a print file's profile says what the
    inks look like. Without a profile the naive reading stays, as browsers show such a file."""
    inks = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (255, 255, 0, 0), (0, 0, 0, 255)]
    arr = np.concatenate([np.full((16, 16, 4), c, np.uint8) for c in inks], axis=1)
    Image.fromarray(arr, "CMYK").save(tmp_path / "print.jpg", icc_profile=cmyk_icc(), quality=100)
    Image.fromarray(arr, "CMYK").save(tmp_path / "plain.jpg", quality=100)
    assert Image.open(tmp_path / "print.jpg").info.get("adobe")  # Adobe's inverted CMYK, as Photoshop writes
    got = centres(load_png(tmp_path / "print.jpg"), len(inks))
    lab = [CMYK_CORNERS[(1, 0, 0)], CMYK_CORNERS[(0, 1, 0)], CMYK_CORNERS[(0, 0, 1)], CMYK_CORNERS[(1, 1, 0)], (15, 0, 0)]
    # 3 levels: the JPEG's DCT and LittleCMS's 8-bit table; the naive reading is 60+ levels away
    np.testing.assert_allclose(got, [lab_to_srgb(c) for c in lab], atol=3)
    naive = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255), (0, 0, 0)]
    np.testing.assert_allclose(centres(load_png(tmp_path / "plain.jpg"), len(inks)), naive, atol=1)


@pytest.mark.parametrize(
    "icc",
    [ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(), rgb_icc(SRGB, SRGB_CURVE, "sRGB (test)")],
    ids=["littlecms-srgb", "hand-made-srgb"],
)
def test_an_srgb_profile_changes_no_pixel(tmp_path: Path, icc: bytes) -> None:
    """sRGB under any name (a phone's or an editor's own copy) reads bit for bit as the file without it."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "tagged.png", icc_profile=icc)
    Image.fromarray(arr).save(tmp_path / "plain.png")
    said: list[str] = []
    assert torch.equal(load_png(tmp_path / "tagged.png", notice=said.append), load_png(tmp_path / "plain.png"))
    assert said == []


def _float_profile(n: int = 4) -> bytes:
    """A P3 profile that also holds floating-point elements (a D2B0 'mpet' of `n` identity matrices), which
    LittleCMS prefers to the matrix and evaluates one by one (thousands take minutes)."""
    elem = b"matf" + bytes(4) + struct.pack(">HH", 3, 3) + struct.pack(">12f", 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)
    mpet = b"mpet" + bytes(4) + struct.pack(">HHI", 3, 3, n)
    mpet += b"".join(struct.pack(">II", 16 + 8 * n + i * len(elem), len(elem)) for i in range(n)) + elem * n
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", [*rgb_tags(DISPLAY_P3, SRGB_CURVE, "float"), (b"D2B0", mpet)])


@pytest.mark.parametrize(
    ("icc", "why"),
    [
        (b"\x00\x00\x02\x00not a colour profile" * 20, "damaged"),
        (P3_ICC[:200], "damaged"),
        (LINEAR_GREY_ICC, "describes GRAY colours, the image holds RGB"),
        (ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(), "describes Lab colours"),
        (_float_profile(), "floating-point elements"),
    ],
    ids=["garbage", "cut-short", "grey-for-rgb", "lab", "float-elements"],
)
def test_a_profile_a3d_cannot_use_is_ignored_with_one_warning(tmp_path: Path, icc: bytes, why: str) -> None:
    """The pixels are sound, so the image is read as sRGB (as browsers do with such a profile) and the user
    is told once; never a traceback, never an image refused for its metadata."""
    arr = patches()
    Image.fromarray(arr).save(tmp_path / "odd.png", icc_profile=icc)
    said: list[str] = []
    img = load_png(tmp_path / "odd.png", notice=said.append)
    assert torch.equal(img, torch.from_numpy(arr).float() / 255)
    assert len(said) == 1 and said[0].startswith("warning: ") and "odd.png" in said[0] and why in said[0], said


def test_a_profile_larger_than_a3d_reads_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(colour_profiles, "ICC_MAX_BYTES", len(P3_ICC) - 1)
    Image.fromarray(patches()).save(tmp_path / "big.png", icc_profile=P3_ICC)
    said: list[str] = []
    assert torch.equal(load_png(tmp_path / "big.png", notice=said.append), torch.from_numpy(patches()).float() / 255)
    assert len(said) == 1 and "more than a3d reads" in said[0]


def test_a_large_p3_jpeg_is_converted_on_the_thumbnail_path_too(tmp_path: Path) -> None:
    """Over 4× the matte size a JPEG is thumbnailed from the file (PIL's draft); its colours are converted
    there as well, so the matte and the object's colours agree with a small copy of the same photo."""
    arr = np.full((3200, 3200, 3), 250, np.uint8)
    arr[800:2400, 800:2400] = (200, 100, 50)
    Image.fromarray(arr).save(tmp_path / "big.jpg", icc_profile=P3_ICC, quality=95)
    rgba, matte = load_object_rgba(tmp_path / "big.jpg")
    assert matte == "uniform" and rgba.shape[:2] == (768, 768)
    want = expected_srgb([(200, 100, 50)], DISPLAY_P3, srgb_decode)[0]
    np.testing.assert_allclose(rgba[384, 384, :3].numpy() * 255, want, atol=2.5)  # a JPEG at quality 95


# -- several frames -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "unit"), [("gif", "frames"), ("png", "frames"), ("webp", "frames"), ("tif", "pages")])
def test_the_first_of_several_frames_is_read_and_the_user_told(tmp_path: Path, fmt: str, unit: str) -> None:
    frames = []
    for colour in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]:  # an object on white, a colour a frame
        arr = np.full((16, 16, 3), 255, np.uint8)
        arr[4:12, 4:12] = colour
        frames.append(Image.fromarray(arr))
    path = tmp_path / f"spin.{fmt}"
    frames[0].save(path, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "webp" else {}))
    said: list[str] = []
    img = load_png(path, notice=said.append)
    assert img[8, 8, 0] > 0.95 and img[8, 8, 1] < 0.05  # the first (red) frame
    assert said == [said[0]] and said[0].startswith("warning: ") and f"of 3 {unit}; a3d reads the first" in said[0]
    told: list[str] = []
    load_object_rgba(path, notice=told.append)  # what `a3d orbit` reads says so too, once
    assert told == said


def test_a_tiff_of_many_pages_is_not_walked_to_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow counts a TIFF's pages by loading every page directory and checking it against all before it
    (time growing with the square of their number: about a minute for 100,000 tiny pages); the warning
    counts the first hundred and says "more than" beyond."""
    from PIL import TiffImagePlugin

    pages = [Image.fromarray(np.full((1, 1), k % 200, np.uint8)) for k in range(300)]
    pages[0].save(tmp_path / "many.tif", save_all=True, append_images=pages[1:])
    loads = []
    real_load = TiffImagePlugin.ImageFileDirectory_v2.load
    monkeypatch.setattr(
        TiffImagePlugin.ImageFileDirectory_v2, "load", lambda self, fp: loads.append(1) or real_load(self, fp)
    )
    said: list[str] = []
    img = load_png(tmp_path / "many.tif", notice=said.append)
    assert img.shape == (1, 1, 3) and float(img.max()) == 0.0  # the first page
    assert said and "of more than 100 pages; a3d reads the first" in said[0]
    assert len(loads) < 300  # not each of the 300 directories (Pillow's count loads every one)


def test_a_tiff_whose_next_page_pointer_is_damaged_is_read_by_its_first_page(tmp_path: Path) -> None:
    """A page directory pointing past the end of the file: viewers show the first page, and so did a3d
    before it counted pages; counting made the file "not a readable image"."""
    Image.fromarray(np.full((4, 4), 90, np.uint8)).save(tmp_path / "one.tif")
    data = bytearray((tmp_path / "one.tif").read_bytes())
    first = struct.unpack_from("<I", data, 4)[0]  # little-endian TIFF: the first directory's offset
    entries = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * entries, 0x7FFFFFFF)  # the next directory, past the end
    (tmp_path / "bad.tif").write_bytes(bytes(data))
    said: list[str] = []
    img = load_png(tmp_path / "bad.tif", notice=said.append)
    np.testing.assert_allclose(img.numpy(), 90 / 255, atol=1e-6)
    assert said == []


def test_a_phone_jpeg_with_a_depth_frame_and_a_single_image_say_nothing(tmp_path: Path) -> None:
    """A phone's MPO (a photo plus a depth map or preview) is one picture to its owner."""
    frames = [Image.fromarray(np.full((16, 16, 3), c, np.uint8)) for c in [(250, 0, 0), (90, 90, 90)]]
    frames[0].save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(tmp_path / "phone.jpg").format == "MPO"
    frames[0].save(tmp_path / "one.gif")
    said: list[str] = []
    load_png(tmp_path / "phone.jpg", notice=said.append)
    load_png(tmp_path / "one.gif", notice=said.append)
    assert said == []


# -- pixel layouts --------------------------------------------------------------------------------------


def write_png(path: Path, rows: list[bytes], width: int, depth: int, colour_type: int, trns: bytes = b"") -> Path:
    """A PNG written chunk by chunk, for layouts Pillow does not write (16-bit with a tRNS colour key)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, len(rows), depth, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + (chunk(b"tRNS", trns) if trns else b"")
    body += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


LEVELS16 = [0, 1000, 1001, 1100, 2000, 51200, 51300, 65535]  # 16-bit samples along a row


def test_a_16_bit_grey_png_keeps_its_transparent_grey(tmp_path: Path) -> None:
    """The tRNS key of a 16-bit greyscale PNG marks the background; it was read opaque everywhere."""
    row = np.array(LEVELS16, ">u2").tobytes()
    path = write_png(tmp_path / "grey16.png", [row] * 4, len(LEVELS16), 16, 0, trns=struct.pack(">H", 1000))
    img = load_png(path)
    assert img.shape == (4, 8, 4)
    assert img[0, :, 3].tolist() == [1.0 if v != 1000 else 0.0 for v in LEVELS16]  # the key alone
    np.testing.assert_allclose(img[0, :, 0].numpy(), np.array(LEVELS16) / 65535, rtol=0, atol=1e-6)


def test_a_16_bit_rgb_png_keeps_its_transparent_colour(tmp_path: Path) -> None:
    """Pillow reduces a 16-bit RGB PNG to 8 bits but kept its 16-bit key: a key above 255 made nothing
    transparent, one below made the wrong (bright) pixels transparent."""
    row = np.repeat(np.array(LEVELS16, ">u2"), 3).tobytes()
    img = load_png(write_png(tmp_path / "a.png", [row] * 2, 8, 16, 2, trns=struct.pack(">HHH", 1000, 1000, 1000)))
    alpha = img[0, :, 3].tolist()
    assert alpha[1] == 0.0 and alpha[0] == alpha[4] == alpha[5] == alpha[7] == 1.0
    # the key's high byte: 1000-1023 share 8-bit level 3 (a 16-bit decoder would keep 1001 opaque)
    assert alpha[2] == 0.0 and alpha[3] == 1.0
    img = load_png(write_png(tmp_path / "b.png", [row] * 2, 8, 16, 2, trns=struct.pack(">HHH", 200, 200, 200)))
    assert img[0, :, 3].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # 0-255 in 16 bits; 51200 is not


@pytest.mark.parametrize(
    ("make", "rgba"),
    [
        (lambda p: Image.fromarray(np.array([[[255, 0, 0, 0], [0, 0, 0, 255]]], np.uint8), "CMYK").save(p, "JPEG", quality=100), None),
        (lambda p: Image.fromarray(np.array([[[90, 255], [90, 0]]], np.uint8), "LA").save(p, "PNG"), [(90, 90, 90, 255), (90, 90, 90, 0)]),
        (lambda p: Image.fromarray(np.array([[True, False]])).save(p, "PNG"), [(255, 255, 255), (0, 0, 0)]),
    ],
    ids=["cmyk-jpeg", "la", "one-bit"],
)
def test_each_pixel_layout_arrives_as_rgb_or_rgba(tmp_path: Path, make, rgba) -> None:
    path = tmp_path / "img"
    make(path)
    img = load_png(path)
    if rgba is None:  # Adobe-inverted CMYK: cyan ink → (0, 255, 255), black ink → black
        np.testing.assert_allclose(img[0].numpy() * 255, [(0, 255, 255), (0, 0, 0)], atol=2)
    else:
        assert (img[0] * 255).round().tolist() == [list(map(float, c)) for c in rgba]


def test_grey_with_alpha_reaches_the_framing_by_its_alpha(tmp_path: Path) -> None:
    la = np.zeros((40, 40, 2), np.uint8)
    la[10:30, 5:25] = (80, 255)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    obj = prepare_object_image(tmp_path / "la.png", size=32)
    assert obj.matte == "alpha" and obj.bbox == (5, 10, 25, 30)


def test_a_png_whose_profile_inflates_past_what_pillow_reads_says_so(tmp_path: Path) -> None:
    """Pillow refuses a PNG chunk inflating past 1 MB (a memory bound a3d keeps): one error naming the
    profile or text as the cause, not "damaged"."""
    rng = np.random.default_rng(0)
    icc = P3_ICC + rng.integers(0, 256, 1_200_000, dtype=np.uint8).tobytes()  # incompressible padding
    Image.fromarray(patches()).save(tmp_path / "big.png", icc_profile=icc)
    with pytest.raises(InputError, match="embedded colour profile or text chunk inflates past") as info:
        load_png(tmp_path / "big.png")
    assert info.value.exit_code == 2 and "exiftool -all=" in (info.value.hint or "")


@pytest.mark.parametrize(("colour_type", "channels"), [(4, 2), (6, 4)], ids=["grey-alpha-16", "rgba-16"])
def test_16_bit_pngs_with_an_alpha_channel_keep_it(tmp_path: Path, colour_type: int, channels: int) -> None:
    """Pillow reads these as 8-bit RGBA (the high byte of each sample); alpha must survive as stored."""
    alpha = np.array([0, 4369, 30000, 65535], ">u2")  # high bytes 0, 17, 117, 255
    px = np.zeros((4, channels), ">u2")
    px[:, 0], px[:, -1] = 30000, alpha
    img = load_png(write_png(tmp_path / "deep.png", [px.tobytes()] * 2, 4, 16, colour_type))
    assert img.shape == (2, 4, 4)
    assert (img[0, :, 3] * 255).round().tolist() == [0.0, 17.0, 117.0, 255.0]
    assert round(float(img[0, 3, 0]) * 255) == 30000 >> 8


def test_a_16_bit_key_is_reduced_whatever_form_pillow_gives_the_decoder_tiles(tmp_path: Path) -> None:
    """Pillow 10 lists an image's tiles as plain tuples (later ones as named tuples): reading the decoder's raw
    mode by attribute failed there with AttributeError, a traceback for any 16-bit RGB PNG with a tRNS key."""
    from a3d_cli.io.images import _png_16bit_key

    row = np.repeat(np.array(LEVELS16, ">u2"), 3).tobytes()
    path = write_png(tmp_path / "a.png", [row] * 2, 8, 16, 2, trns=struct.pack(">HHH", 1000, 1000, 1000))
    with Image.open(path) as pil:
        pil.tile = [tuple(tile) for tile in pil.tile]  # the layout Pillow 10 gives
        _png_16bit_key(pil)
        assert pil.info["transparency"] == (3, 3, 3)  # 1000 >> 8


def test_the_declared_pillow_has_the_colour_management_flags_a3d_passes() -> None:
    """`colour_profiles` passes `ImageCms.Flags`, which Pillow has from 10.3 on: with the floor at 10, an
    installation that kept an older Pillow failed with AttributeError on every image with a colour profile."""
    import re

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    floor = re.search(r'"pillow>=([0-9.]+)"', text, re.IGNORECASE)
    assert floor is not None
    assert tuple(int(p) for p in floor.group(1).split(".")) >= (10, 3)
