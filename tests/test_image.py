"""Tests for sam_onnx.image: safe loading (docs/reliability.md, rows A1-A15) and
array normalisation (section 4.3).

All fixtures are generated here with Pillow or by hand (PNG/ISO-BMFF headers); no network.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFile, UnidentifiedImageError, features

from sam_onnx.errors import InvalidImageError
from sam_onnx.image import (
    ALLOWED_FORMATS,
    DEFAULT_LIMITS,
    MSG_AVIF,
    MSG_DAMAGED,
    MSG_EMPTY,
    MSG_HEIC,
    MSG_NO_SUCH_FILE,
    MSG_NOT_A_FILE,
    MSG_NOT_AN_IMAGE,
    MSG_SVG,
    ImageLimits,
    LoadedImage,
    Note,
    check_size,
    load_image,
    to_rgb_uint8,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
BOMB_REJECTION_SECONDS = 0.1
"""CPU seconds a header check may take; decoding a 100 MP bomb takes about 3 s (30x more)."""
MID_GREY_16 = 32768  # 0x8000: half of 16-bit full scale
MID_GREY_8 = 128

# --------------------------------------------------------------------------- fixtures


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def hand_png(width: int, height: int, bit_depth: int, colour_type: int, row: bytes) -> bytes:
    """A PNG whose every row is `row` (filter byte 0 is prepended), streamed through zlib."""
    compressor = zlib.compressobj(9)
    line = b"\x00" + row
    idat = b"".join(compressor.compress(line) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def bomb_png(side: int) -> bytes:
    """A grey side x side PNG of zero rows: a tiny file claiming a huge image (95 KiB for 10 000^2)."""
    return hand_png(side, side, 8, 0, bytes(side))


def noise_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def solid(mode: str, size: tuple[int, int], colour: object) -> Image.Image:
    return Image.new(mode, size, colour)


def message_of(source: object, **kwargs: object) -> str:
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(source, **kwargs)  # type: ignore[arg-type]
    return str(excinfo.value)


def assert_rgb_contract(rgb: np.ndarray, height: int, width: int) -> None:
    assert rgb.dtype == np.uint8
    assert rgb.shape == (height, width, 3)
    assert rgb.flags.c_contiguous
    assert rgb.flags.writeable


def heif_header(major: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF `ftyp` box as phones write at the start of HEIC/AVIF files."""
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 4 + len(body)) + body


# ----------------------------------------------------------------- basic contract


def test_png_loads_as_upright_rgb_uint8_with_format_from_magic() -> None:
    pixels = noise_rgb(20, 30)
    loaded = load_image(encode(Image.fromarray(pixels), "PNG"))
    assert isinstance(loaded, LoadedImage)
    assert loaded.format == "PNG"
    assert loaded.notes == ()
    assert_rgb_contract(loaded.rgb, 20, 30)
    np.testing.assert_array_equal(loaded.rgb, pixels)


@pytest.mark.parametrize("fmt", ALLOWED_FORMATS)
def test_every_allowed_format_decodes(fmt: str) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(solid("RGB", (24, 18), RED), fmt, **params)
    loaded = load_image(data)
    assert loaded.format == fmt
    assert_rgb_contract(loaded.rgb, 18, 24)
    assert np.abs(loaded.rgb.astype(int) - RED).max() <= 8  # JPEG is lossy


def test_allowed_formats_exclude_risky_decoders() -> None:
    for risky in ("TIFF", "PSD", "EPS", "PDF", "ICO", "FITS", "FPX", "JPEG2000", "AVIF"):
        assert risky not in ALLOWED_FORMATS


@pytest.mark.parametrize("kind", ["str", "pathlike", "bytes", "bytearray", "memoryview", "stream"])
def test_accepts_every_source_kind(kind: str, tmp_path: Path) -> None:
    data = encode(solid("RGB", (16, 16), BLUE), "PNG")
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    source: object = {
        "str": str(path),
        "pathlike": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "stream": io.BytesIO(data),
    }[kind]
    loaded = load_image(source)  # type: ignore[arg-type]
    assert tuple(loaded.rgb[0, 0]) == BLUE


def test_stream_is_read_from_its_position_and_left_open() -> None:
    data = encode(solid("RGB", (16, 16), GREEN), "PNG")
    stream = io.BytesIO(b"prefix" + data)
    stream.seek(len(b"prefix"))
    loaded = load_image(stream)
    assert tuple(loaded.rgb[0, 0]) == GREEN
    assert not stream.closed


def test_missing_file_and_directory_are_rejected_without_the_path(tmp_path: Path) -> None:
    secret = tmp_path / "secret-folder" / "nope.png"
    message = message_of(secret)
    assert message == MSG_NO_SUCH_FILE == "The file does not exist."
    assert "secret-folder" not in message
    assert message_of(tmp_path) == MSG_NOT_A_FILE


def test_empty_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert message_of(empty) == message_of(b"") == message_of(io.BytesIO()) == MSG_EMPTY


@pytest.mark.parametrize("source", [12345, None, io.StringIO("text")])
def test_wrong_source_type_is_rejected(source: object) -> None:
    with pytest.raises(InvalidImageError):
        load_image(source)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_global_settings_are_untouched() -> None:
    max_pixels_before = Image.MAX_IMAGE_PIXELS
    load_image(encode(solid("RGB", (16, 16), RED), "PNG"))
    with pytest.raises(InvalidImageError):
        load_image(bomb_png(10_000))
    assert max_pixels_before == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ----------------------------------------------------------------- A1 file size


MIB = 1024 * 1024


def test_a1_file_too_large_bytes_path_and_stream(tmp_path: Path) -> None:
    big = bytes(25 * MIB)
    expected = "The file is 25 MB; the limit is 20 MB."
    assert message_of(big) == expected
    path = tmp_path / "big.png"
    path.write_bytes(big)
    assert message_of(path) == expected
    assert message_of(io.BytesIO(big)) == expected


def test_a1_non_seekable_stream_too_large() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self._inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    limits = ImageLimits(max_bytes=1000)
    too_large = "The file is too large; the limit is 0.9 KB."
    assert message_of(Pipe(bytes(5000)), limits=limits) == too_large
    assert message_of(bytes(5000), limits=limits) == "The file is 4.9 KB; the limit is 0.9 KB."
    small = encode(solid("RGB", (16, 16), RED), "PNG")
    assert tuple(load_image(Pipe(small), limits=limits).rgb[0, 0]) == RED


def test_a1_size_just_over_limit_is_not_shown_as_equal_to_it() -> None:
    message = message_of(bytes(20 * MIB + 1))
    assert message == "The file is 20.1 MB; the limit is 20 MB."


def test_a1_no_byte_limit_when_max_bytes_is_none() -> None:
    message = message_of(bytes(21 * MIB), limits=ImageLimits(max_bytes=None))
    assert message == MSG_NOT_AN_IMAGE


# ----------------------------------------------------------------- A2/A3 bombs


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("side", "expected"),
    [
        (10_000, "The image is 100 MP; the limit is 40 MP."),  # A2: 1x-2x Pillow's limit
        (14_000, "The image is 196 MP; the limit is 40 MP."),  # A3: > 2x Pillow's limit
    ],
)
def test_a2_a3_pixel_bomb_rejected_from_header_fast(side: int, expected: str) -> None:
    data = bomb_png(side)
    assert len(data) < 200 * 1024  # a tiny file claiming a huge image
    load_image(encode(solid("L", (16, 16), 0), "PNG"))  # warm the PNG plugin import
    started = time.process_time()  # CPU time: what decoding would cost, whatever else runs on the machine
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(data)
    elapsed = time.process_time() - started
    assert str(excinfo.value) == expected
    assert elapsed < BOMB_REJECTION_SECONDS, f"took {elapsed * 1000:.1f} ms: was it decoded?"


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_a2_bomb_warning_escalated_to_error_is_still_a_clean_rejection() -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(bomb_png(10_000))
    assert str(excinfo.value) == "The image is 100 MP; the limit is 40 MP."
    assert isinstance(excinfo.value.__cause__, Image.DecompressionBombWarning)


def test_a3_pillow_bomb_error_is_chained() -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(bomb_png(14_000))
    assert isinstance(excinfo.value.__cause__, Image.DecompressionBombError)


# ----------------------------------------------------------------- A4 truncated


@pytest.mark.parametrize(("fmt", "fraction"), [("JPEG", 0.5), ("PNG", 0.6), ("PNG", 0.5)])
def test_a4_truncated_file_is_damaged(fmt: str, fraction: float) -> None:
    data = encode(Image.fromarray(noise_rgb(128, 128)), fmt)
    truncated = data[: int(len(data) * fraction)]
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(truncated)
    assert str(excinfo.value) == MSG_DAMAGED
    assert isinstance(excinfo.value.__cause__, OSError)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a4_file_cut_inside_its_header_is_damaged(fmt: str) -> None:
    data = encode(solid("RGB", (32, 32), RED), fmt)
    assert message_of(data[:14]) == MSG_DAMAGED


def test_a4_rejection_is_logged_with_the_exception_class(caplog: pytest.LogCaptureFixture) -> None:
    data = encode(Image.fromarray(noise_rgb(64, 64)), "PNG")
    with caplog.at_level(logging.INFO, logger="sam_onnx.image"), pytest.raises(InvalidImageError):
        load_image(data[: len(data) // 2])
    assert "OSError" in caplog.text


# ----------------------------------------------------------------- A5 not an image


@pytest.mark.parametrize(
    "data",
    [
        b"Hello, this is a text file.\n" * 10,
        np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        b"<html><body>not an image</body></html>",
    ],
    ids=["text", "random-bytes", "html"],  # an empty file has its own message (test_empty_file_says_so)
)
def test_a5_not_an_image(data: bytes) -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(data)
    assert str(excinfo.value) == MSG_NOT_AN_IMAGE
    assert isinstance(excinfo.value.__cause__, UnidentifiedImageError)


def test_a5_pdf_is_named() -> None:
    pdf = encode(solid("RGB", (32, 32), RED), "PDF")
    assert message_of(pdf) == "PDF files are not supported; use PNG, JPEG or WebP."


# ----------------------------------------------------------------- A6 SVG


@pytest.mark.parametrize(
    "text",
    [
        '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg">'
        "<script>alert(1)</script></svg>",
        '\ufeff  <svg width="10" height="10"><rect/></svg>',
    ],
)
def test_a6_svg_named(text: str) -> None:
    assert message_of(text.encode()) == MSG_SVG


# ----------------------------------------------------------------- A7 HEIC / AVIF


@pytest.mark.parametrize(
    "header",
    [
        heif_header(b"heic", b"mif1", b"heic"),  # 24-byte iPhone-style header
        heif_header(b"mif1", b"heic", b"miaf"),
        heif_header(b"heix", b"mif1"),
    ],
)
def test_a7_heic_named(header: bytes) -> None:
    assert message_of(header + bytes(64)) == MSG_HEIC


def test_a7_heic_header_is_24_bytes() -> None:
    assert len(heif_header(b"heic", b"mif1", b"heic")) == 24


def test_a7_avif_header_rejected_with_a_name() -> None:
    assert message_of(heif_header(b"avif", b"mif1", b"miaf") + bytes(64)) == MSG_AVIF
    # An AVIF whose major brand is the generic HEIF one is still AVIF, not HEIC.
    assert message_of(heif_header(b"mif1", b"avif", b"miaf") + bytes(64)) == MSG_AVIF


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow build cannot write AVIF")
def test_a7_real_avif_rejected_even_though_pillow_could_decode_it() -> None:
    avif = encode(solid("RGB", (32, 32), RED), "AVIF")
    assert Image.open(io.BytesIO(avif)).format == "AVIF"  # Pillow itself would decode it
    assert message_of(avif) == MSG_AVIF


def test_a7_mp4_video_is_not_called_heic() -> None:
    assert message_of(heif_header(b"isom", b"isom", b"mp41") + bytes(64)) == MSG_NOT_AN_IMAGE


# ----------------------------------------------------------------- A8 disallowed formats


def psd_header() -> bytes:
    """Enough of a Photoshop file for its signature: 8BPS, version 1, 3 channels, 16x16."""
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 16, 16, 8, 3) + bytes(64)


def eps_file() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n"


def pillow_file(fmt: str) -> bytes:
    return encode(solid("RGB", (32, 32), RED), fmt)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: pillow_file("TIFF"), "TIFF"),
        (lambda: pillow_file("ICO"), "ICO"),
        (lambda: pillow_file("DDS"), "DDS"),
        (lambda: pillow_file("QOI"), "QOI"),
        (lambda: pillow_file("EPS"), "EPS"),
        (eps_file, "EPS"),
        (psd_header, "PSD"),
        (lambda: b"SIMPLE  =                    T" + bytes(2850), "FITS"),
    ],
    ids=["TIFF", "ICO", "DDS", "QOI", "EPS-pillow", "EPS-text", "PSD", "FITS"],
)
def test_a8_decodable_but_disallowed_formats_are_named(make: object, name: str) -> None:
    data = make()  # type: ignore[operator]
    assert message_of(data) == f"{name} files are not supported; use PNG, JPEG or WebP."


@pytest.mark.skipif(not features.check("jpg_2000"), reason="no OpenJPEG in this Pillow build")
def test_a8_jpeg2000_named() -> None:
    message = message_of(pillow_file("JPEG2000"))
    assert message == "JPEG 2000 files are not supported; use PNG, JPEG or WebP."


@pytest.mark.parametrize("fmt", ["PPM", "PCX", "TGA", "SGI", "IM"])
def test_a8_other_pillow_formats_are_rejected(fmt: str) -> None:
    assert message_of(pillow_file(fmt)) == MSG_NOT_AN_IMAGE


def test_a8_bmp_and_gif_are_accepted() -> None:
    assert load_image(pillow_file("BMP")).format == "BMP"
    assert load_image(pillow_file("GIF")).format == "GIF"


# ----------------------------------------------------------------- A9 extension lies


def test_a9_png_named_gif_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "photo.gif"
    path.write_bytes(encode(solid("RGBA", (20, 16), (255, 0, 0, 0)), "PNG"))
    loaded = load_image(path)
    assert loaded.format == "PNG"
    assert_rgb_contract(loaded.rgb, 16, 20)
    assert tuple(loaded.rgb[0, 0]) == WHITE


def test_a9_16_bit_png_named_gif_is_still_scaled(tmp_path: Path) -> None:
    path = tmp_path / "photo.gif"
    path.write_bytes(encode(Image.fromarray(np.full((16, 16), MID_GREY_16, np.uint16)), "PNG"))
    loaded = load_image(path)
    assert_rgb_contract(loaded.rgb, 16, 16)
    assert np.all(loaded.rgb == MID_GREY_8)


def test_a9_tiff_named_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(pillow_file("TIFF"))
    assert message_of(path) == "TIFF files are not supported; use PNG, JPEG or WebP."


def test_a9_jpeg_named_webp_is_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.webp"
    path.write_bytes(pillow_file("JPEG"))
    assert load_image(path).format == "JPEG"


# ----------------------------------------------------------------- A10 deep images


def test_a10_16_bit_grey_png_mid_grey_stays_mid_grey() -> None:
    data = encode(Image.fromarray(np.full((16, 16), MID_GREY_16, np.uint16)), "PNG")
    loaded = load_image(data)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert np.all(loaded.rgb == MID_GREY_8)
    assert loaded.notes == (Note.SIXTEEN_BIT,)


def test_a10_16_bit_ramp_spans_full_range_monotonically() -> None:
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)
    data = encode(Image.fromarray(np.tile(ramp, (16, 1))), "PNG")
    row = load_image(data).rgb[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert abs(row[128] - MID_GREY_8) <= 1


def test_a10_16_bit_rgb_png_mid_grey() -> None:
    # Pillow cannot write 16-bit RGB PNGs; colour type 2, bit depth 16, built by hand.
    row = struct.pack(">HHH", MID_GREY_16, MID_GREY_16, MID_GREY_16) * 16
    loaded = load_image(hand_png(16, 16, 16, 2, row))
    assert np.all(loaded.rgb == MID_GREY_8)


@pytest.mark.parametrize(
    ("values", "expected_mid"),
    [
        (np.array([[0, MID_GREY_16, 65535]], dtype=np.int32), MID_GREY_8),  # 16-bit data
        (np.array([[0, 500_000, 1_000_000]], dtype=np.int32), MID_GREY_8),  # > 16 bits
        (np.array([[-1000, 0, 1000]], dtype=np.int32), MID_GREY_8),  # negative
    ],
)
def test_a10_32_bit_pil_image_mid_grey(values: np.ndarray, expected_mid: int) -> None:
    image = Image.fromarray(np.repeat(values, 16, axis=0))
    assert image.mode == "I"
    rgb = to_rgb_uint8(image)
    assert_rgb_contract(rgb, 16, 3)
    assert tuple(rgb[0, :, 0]) == (0, expected_mid, 255)


def test_a10_float_pil_image_in_unit_range_and_other_ranges() -> None:
    unit = Image.fromarray(np.full((16, 16), 0.5, np.float32))
    assert unit.mode == "F"
    assert np.all(to_rgb_uint8(unit) == MID_GREY_8)
    wide = Image.fromarray(np.array([[0.0, 500.0, 1000.0]] * 16, np.float32))
    assert tuple(to_rgb_uint8(wide)[0, :, 0]) == (0, MID_GREY_8, 255)
    nan = Image.fromarray(np.array([[np.nan, 0.5, 1.0]] * 16, np.float32))
    assert tuple(to_rgb_uint8(nan)[0, :, 0]) == (0, MID_GREY_8, 255)


def test_a10_16_bit_pil_modes_of_both_byte_orders() -> None:
    for mode in ("I;16", "I;16B", "I;16L"):
        image = Image.new(mode, (4, 4), MID_GREY_16)
        assert np.all(to_rgb_uint8(image) == MID_GREY_8), mode


def test_a10_loaded_float_notes_text() -> None:
    """A note is its text wherever the status line is built (``==``, ``str``, f-strings, ``join``)."""
    text = "Floating-point image scaled to 8 bits."
    assert Note.FLOAT == text and str(Note.FLOAT) == f"{Note.FLOAT}" == "".join((Note.FLOAT,)) == text


# ----------------------------------------------------------------- A11 modes


def test_a11_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(solid("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    loaded = load_image(data)
    assert_rgb_contract(loaded.rgb, 32, 32)
    red, green, blue = loaded.rgb[16, 16].astype(int)
    assert red > 230 and green < 30 and blue < 30


def test_a11_palette_with_trns_transparent_on_white_opaque_kept() -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, *RED] + [0] * (256 - 2) * 3)
    image.paste(1, (8, 0, 16, 16))  # right half red, left half index 0 (transparent)
    loaded = load_image(encode(image, "PNG", transparency=0))
    assert tuple(loaded.rgb[0, 0]) == WHITE
    assert tuple(loaded.rgb[0, 15]) == RED
    assert loaded.notes == (Note.TRANSPARENT,)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a11_rgba_transparent_red_is_white_opaque_red_is_red(fmt: str) -> None:
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    image.paste((255, 0, 0, 255), (8, 0, 16, 16))
    params = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    loaded = load_image(encode(image, fmt, **params))
    assert tuple(loaded.rgb[0, 0]) == WHITE
    assert tuple(loaded.rgb[0, 15]) == RED
    assert loaded.notes == (Note.TRANSPARENT,)


def test_a11_half_transparent_red_is_pink() -> None:
    loaded = load_image(encode(solid("RGBA", (16, 16), (255, 0, 0, 128)), "PNG"))
    assert tuple(loaded.rgb[0, 0]) == (255, 127, 127)


def test_a11_opaque_rgba_has_no_transparency_note() -> None:
    loaded = load_image(encode(solid("RGBA", (16, 16), (255, 0, 0, 255)), "PNG"))
    assert loaded.notes == ()
    assert tuple(loaded.rgb[0, 0]) == RED


def test_a11_grey_alpha_png_on_white() -> None:
    image = Image.new("LA", (16, 16), (0, 0))
    image.paste((100, 255), (8, 0, 16, 16))
    loaded = load_image(encode(image, "PNG"))
    assert tuple(loaded.rgb[0, 0]) == WHITE
    assert tuple(loaded.rgb[0, 15]) == (100, 100, 100)


def test_a11_gif_transparency_on_white() -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([*GREEN, *BLUE] + [0] * 254 * 3)
    image.paste(1, (8, 0, 16, 16))
    loaded = load_image(encode(image, "GIF", transparency=0))
    assert tuple(loaded.rgb[0, 0]) == WHITE
    assert tuple(loaded.rgb[0, 15]) == BLUE


def test_a11_one_bit_and_grey() -> None:
    bits = Image.new("1", (16, 16), 0)
    bits.paste(1, (8, 0, 16, 16))
    loaded = load_image(encode(bits, "PNG"))
    assert tuple(loaded.rgb[0, 0]) == (0, 0, 0)
    assert tuple(loaded.rgb[0, 15]) == WHITE
    grey = load_image(encode(solid("L", (16, 16), 77), "PNG"))
    assert np.all(grey.rgb == 77)
    assert load_image(encode(solid("L", (16, 16), 77), "BMP")).rgb[0, 0].tolist() == [77] * 3


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("YCbCr", (76, 85, 255), RED),
        ("HSV", (0, 255, 255), RED),
        ("LAB", (255, 128, 128), WHITE),
        ("RGBX", (255, 0, 0, 0), RED),
        ("PA", (0, 0), None),  # palette index 0 black, alpha 0 -> white
        ("RGBa", (0, 0, 0, 0), WHITE),
        ("La", (0, 0), WHITE),
        ("La", (50, 255), (50, 50, 50)),
    ],
)
def test_a11_other_pil_modes(mode: str, colour: object, expected: object) -> None:
    rgb = to_rgb_uint8(Image.new(mode, (4, 4), colour))
    assert_rgb_contract(rgb, 4, 4)
    expected = WHITE if expected is None else expected
    assert np.abs(rgb[0, 0].astype(int) - np.array(expected)).max() <= 2


# ----------------------------------------------------------------- A12 EXIF orientation


def upright_from_stored(stored: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows for EXIF orientation k, from the spec's row/column wording."""
    if orientation == 1:
        return stored
    if orientation == 2:  # row 0 = top, column 0 = right
        return stored[:, ::-1]
    if orientation == 3:  # row 0 = bottom, column 0 = right
        return stored[::-1, ::-1]
    if orientation == 4:  # row 0 = bottom, column 0 = left
        return stored[::-1]
    if orientation == 5:  # row 0 = left, column 0 = top
        return stored.transpose(1, 0, 2)
    if orientation == 6:  # row 0 = right, column 0 = top: turn 90 degrees clockwise
        return np.rot90(stored, k=-1)
    if orientation == 7:  # row 0 = right, column 0 = bottom
        return stored[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:  # row 0 = left, column 0 = bottom: turn 90 degrees anticlockwise
        return np.rot90(stored, k=1)
    raise AssertionError(orientation)


def with_orientation(image: Image.Image, fmt: str, orientation: int, **params: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif, **params)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a12_exif_orientation_png_exact(orientation: int) -> None:
    stored = noise_rgb(17, 29, seed=orientation)  # asymmetric: every transform differs
    loaded = load_image(with_orientation(Image.fromarray(stored), "PNG", orientation))
    expected = upright_from_stored(stored, orientation)
    np.testing.assert_array_equal(loaded.rgb, expected)
    assert_rgb_contract(loaded.rgb, *expected.shape[:2])
    assert (Note.ROTATED in loaded.notes) == (orientation != 1)


def test_a12_exif_orientation_6_jpeg_swaps_width_and_height() -> None:
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:, :24] = RED  # left half red, right half blue
    stored[:, 24:] = BLUE
    loaded = load_image(with_orientation(Image.fromarray(stored), "JPEG", 6, quality=95))
    assert loaded.rgb.shape == (48, 32, 3)
    assert loaded.notes == (Note.ROTATED,)
    # Turned clockwise: the stored left half (red) is now on top.
    assert np.abs(loaded.rgb[4, 16].astype(int) - RED).max() < 40
    assert np.abs(loaded.rgb[44, 16].astype(int) - BLUE).max() < 40


def jpeg_with_raw_exif(tiff_block: bytes) -> bytes:
    """A JPEG with an APP1 'Exif' segment holding exactly `tiff_block` (possibly broken)."""
    jpeg = encode(Image.fromarray(noise_rgb(16, 24)), "JPEG", quality=95)
    payload = b"Exif\x00\x00" + tiff_block
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def one_entry_ifd(tag: int, field_type: int, count: int, value: bytes) -> bytes:
    entry = struct.pack("<HHI", tag, field_type, count) + value.ljust(4, b"\x00")
    return b"II*\x00" + struct.pack("<IH", 8, 1) + entry + bytes(4)


@pytest.mark.parametrize(
    "tiff_block",
    [
        b"XX\xff\xff" + bytes(8),  # not a TIFF header
        b"II*\x00" + struct.pack("<I", 10**6),  # IFD offset past the end
        one_entry_ifd(0x0112, 3, 1, struct.pack("<H", 9)),  # orientation 9: undefined
        one_entry_ifd(0x0112, 5, 1, struct.pack("<I", 26)) + struct.pack("<II", 6, 0),  # 6/0
    ],
    ids=["garbage", "bad-offset", "orientation-9", "rational-nan"],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
def test_a12_broken_exif_does_not_reject_or_rotate_the_photo(tiff_block: bytes) -> None:
    loaded = load_image(jpeg_with_raw_exif(tiff_block))
    assert_rgb_contract(loaded.rgb, 16, 24)
    assert loaded.notes == ()


def test_a12_valid_raw_exif_block_does_rotate() -> None:
    """Guards the test above: the same hand-made EXIF with orientation 6 is honoured."""
    loaded = load_image(jpeg_with_raw_exif(one_entry_ifd(0x0112, 3, 1, struct.pack("<H", 6))))
    assert loaded.rgb.shape == (24, 16, 3)
    assert loaded.notes == (Note.ROTATED,)


# ----------------------------------------------------------------- A13 animation


def three_colour_frames(mode: str = "RGB") -> list[Image.Image]:
    return [Image.new(mode, (20, 16), colour) for colour in (RED, GREEN, BLUE)]


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
    ids=["GIF", "WEBP", "APNG"],
)
def test_a13_animated_first_frame_used_and_noted(fmt: str, params: dict[str, object]) -> None:
    first, *rest = three_colour_frames()
    data = encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0, **params)
    loaded = load_image(data)
    assert loaded.format == fmt
    assert_rgb_contract(loaded.rgb, 16, 20)
    assert tuple(loaded.rgb[8, 10]) == RED
    assert Note.ANIMATED in loaded.notes


def test_a13_single_frame_gif_has_no_animation_note() -> None:
    assert load_image(pillow_file("GIF")).notes == ()


def test_a13_multi_picture_jpeg_is_reported_as_jpeg_first_picture() -> None:
    first, second, _ = three_colour_frames()
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    loaded = load_image(data)
    assert loaded.format == "JPEG"
    assert Note.ANIMATED not in loaded.notes
    assert np.abs(loaded.rgb[8, 10].astype(int) - RED).max() <= 8


# ----------------------------------------------------------------- A14 size and shape


@pytest.mark.parametrize(
    ("width", "height"),
    [(16, 16), (320, 16), (16, 320), (12_000, 1000), (8000, 5000)],
)
def test_a14_check_size_accepts_boundaries(width: int, height: int) -> None:
    check_size(width, height)


TOO_ELONGATED = "the long side must be at most 20 times the short side."
TOO_LONG = "the longest side must be at most 12000 pixels."


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (8, 8, "The image is 8×8 pixels; the smallest side must be at least 16 pixels."),
        (15, 16, "The image is 15×16 pixels; the smallest side must be at least 16 pixels."),
        (1, 1, "The image is 1×1 pixels; the smallest side must be at least 16 pixels."),
        (2, 3, "The image is 2×3 pixels; the smallest side must be at least 16 pixels."),
        (1, 10_000, "The image is 1×10000 pixels; the smallest side must be at least 16 pixels."),
        (0, 100, "The image is 0×100 pixels; the smallest side must be at least 16 pixels."),
        (336, 16, f"The image is 336×16 pixels; {TOO_ELONGATED}"),
        (16, 336, f"The image is 16×336 pixels; {TOO_ELONGATED}"),
        (12_001, 1000, f"The image is 12001×1000 pixels; {TOO_LONG}"),
        (8001, 5000, "The image is 40.1 MP; the limit is 40 MP."),
    ],
)
def test_a14_check_size_rejects(width: int, height: int, expected: str) -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        check_size(width, height)
    assert str(excinfo.value) == expected


@pytest.mark.parametrize(
    ("size", "accepted"),
    [((16, 16), True), ((15, 16), False), ((320, 16), True), ((336, 16), False), ((1, 1), False)],
)
def test_a14_boundaries_through_load_image(size: tuple[int, int], accepted: bool) -> None:
    data = encode(solid("RGB", size, RED), "PNG")
    if accepted:
        assert load_image(data).rgb.shape == (size[1], size[0], 3)
    else:
        with pytest.raises(InvalidImageError):
            load_image(data)


def test_a14_custom_limits_apply() -> None:
    limits = ImageLimits(min_side=4, max_aspect=2.0, max_pixels=10_000, max_side=100)
    check_size(8, 4, limits)
    with pytest.raises(InvalidImageError, match="at most 2 times"):
        check_size(9, 4, limits)
    with pytest.raises(InvalidImageError, match="0.1 MP"):  # 101x100 > 10 000 pixels
        check_size(101, 100, limits)


@pytest.mark.parametrize(
    "bad",
    [
        {"min_side": 0},
        {"max_side": 8, "min_side": 16},
        {"max_aspect": 0.5},
        {"max_aspect": float("nan")},
        {"max_bytes": 0},
        {"max_pixels": 10},
    ],
)
def test_image_limits_validate_themselves(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImageLimits(**bad)  # type: ignore[arg-type]


def test_default_limits_values() -> None:
    assert ImageLimits(40_000_000, 12_000, 16, 20.0, 20 * MIB) == DEFAULT_LIMITS


# ----------------------------------------------------------------- A15 large legal image


def test_a15_large_legal_image_is_decoded_at_full_size() -> None:
    width, height = 6000, 5000  # 30 MP, under the 40 MP limit
    loaded = load_image(hand_png(width, height, 8, 0, bytes(width)))
    assert_rgb_contract(loaded.rgb, height, width)
    assert not loaded.rgb.any()


# ----------------------------------------------------------------- to_rgb_uint8 examples


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0.0, 0.5, 1.0]]), [0, 128, 255]),  # float in [0, 1]: x255
        (np.array([[0.0, 127.5, 255.0]], np.float32), [0, 128, 255]),  # other range: min-max
        (np.array([[np.nan, np.inf, 0.5]], np.float16), [0, 0, 128]),  # non-finite -> 0
        (np.array([[0, MID_GREY_16, 65535]], np.uint16), [0, 128, 255]),  # /257
        (np.array([[0, MID_GREY_16, 65535]], ">u2"), [0, 128, 255]),  # big-endian too
        (np.array([[0, 100, 255]], np.int64), [0, 100, 255]),  # kept
        (np.array([[-128, 0, 127]], np.int8), [0, 128, 255]),  # min-max
        (np.array([[False, True, True]]), [0, 255, 255]),
        (np.array([[7, 7, 7]], np.int32), [7, 7, 7]),
        (np.array([[300, 300, 300]], np.int32), [255, 255, 255]),  # constant, clipped
        (np.array([[np.nan, np.nan, np.nan]]), [0, 0, 0]),
        (np.array([[-1e308, 0.0, 1e308]]), [0, 128, 255]),  # span overflows float64
    ],
)
def test_to_rgb_uint8_value_rules(array: np.ndarray, expected: list[int]) -> None:
    rgb = to_rgb_uint8(array)
    assert_rgb_contract(rgb, 1, 3)
    assert rgb[0, :, 0].tolist() == expected
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_to_rgb_uint8_alpha_composited_on_white() -> None:
    rgba = np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 255, 128]]], np.uint8)
    assert to_rgb_uint8(rgba)[0].tolist() == [[255, 255, 255], [255, 0, 0], [127, 127, 255]]
    grey_alpha = np.array([[[0.0, 0.0], [0.2, 1.0]]], np.float32)
    assert to_rgb_uint8(grey_alpha)[0].tolist() == [[255, 255, 255], [51, 51, 51]]


def test_to_rgb_uint8_composites_every_colour_alpha_pair_exactly() -> None:
    colour, alpha = np.meshgrid(np.arange(256), np.arange(256))
    grey_alpha = np.stack([colour, alpha], axis=-1).astype(np.uint8)
    expected = (colour * alpha + 255 * (255 - alpha) + 127) // 255  # round(c*a + 255*(1-a))
    rgb = to_rgb_uint8(grey_alpha)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    np.testing.assert_array_equal(rgb[..., 2], expected)


def test_tiny_gif_claiming_a_large_transparent_canvas_loads_promptly() -> None:
    """Fuzzing found a 150-byte GIF whose 25 MP canvas took 2.7 s to composite on white
    (now about 0.5-0.9 s on the 2-core box)."""
    width, height = 6000, 4000  # 24 MP: legal, so it must be decoded, and quickly
    image = Image.new("P", (24, 16), 1)
    image.putpalette([0, 0, 0, *RED] + [0] * 254 * 3)
    image.paste(0, (0, 0, 12, 16))  # left half transparent, right half red
    data = bytearray(encode(image, "GIF", transparency=0))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen size
    started = time.process_time()  # CPU time: robust to other load on the box
    loaded = load_image(bytes(data))
    elapsed = time.process_time() - started
    assert_rgb_contract(loaded.rgb, height, width)
    assert loaded.notes == (Note.TRANSPARENT,)  # the slow path: compositing on white
    assert tuple(loaded.rgb[8, 4]) == WHITE
    assert tuple(loaded.rgb[8, 20]) == RED
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_to_rgb_uint8_never_aliases_uint8_input() -> None:
    array = noise_rgb(4, 5)
    rgb = to_rgb_uint8(array)
    assert not np.shares_memory(rgb, array)
    rgb[...] = 0
    assert array.any()


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(5, np.uint8),
        np.zeros((2, 2, 5), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros((4, 0, 3), np.uint8),
        np.zeros((1, 2, 2, 3), np.uint8),
        np.zeros((2, 2), np.complex64),
        np.array([[object()]], dtype=object),
        np.array([["a"]]),
        np.zeros((), np.uint8),
    ],
    ids=["1d", "5ch", "empty", "empty3", "4d", "complex", "object", "str", "0d"],
)
def test_to_rgb_uint8_rejects_unusable_arrays_naming_shape_and_dtype(array: np.ndarray) -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        to_rgb_uint8(array)
    assert str(tuple(array.shape)) in str(excinfo.value)
    assert str(array.dtype) in str(excinfo.value)


@pytest.mark.parametrize("thing", [[[1, 2], [3, 4]], None, "image.png"])
def test_to_rgb_uint8_rejects_non_images(thing: object) -> None:
    with pytest.raises(InvalidImageError, match=type(thing).__name__):
        to_rgb_uint8(thing)  # type: ignore[arg-type]


def test_to_rgb_uint8_truncated_lazy_pil_image_is_damaged() -> None:
    data = encode(Image.fromarray(noise_rgb(64, 64)), "PNG")
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(InvalidImageError, match="damaged"):
        to_rgb_uint8(lazy)


# ----------------------------------------------------------------- to_rgb_uint8 properties

PROPERTY_SETTINGS = (
    settings(derandomize=True, max_examples=200, deadline=None, database=None)
    if os.environ.get("CI")
    else settings(deadline=None, database=None)
)

DTYPES = [
    np.dtype(name)
    for name in (
        "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
        "float16", "float32", "float64", ">u2", ">i4", ">f4",
    )
]  # fmt: skip


@st.composite
def image_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    height = draw(st.integers(1, 64))
    width = draw(st.integers(1, 64))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    shape = (height, width) if channels is None else (height, width, channels)
    elements = st.floats(allow_nan=True, allow_infinity=True, width=8 * dtype.itemsize) if dtype.kind == "f" else None
    base = draw(hnp.arrays(dtype, shape, elements=elements))
    layout = draw(st.sampled_from(["contiguous", "readonly", "strided", "fortran"]))
    if layout == "readonly":
        base.setflags(write=False)
        return base
    if layout == "strided":  # a non-contiguous view into a larger array
        bigger = np.repeat(base, 2, axis=1)
        view = bigger[:, ::2]
        assert not view.flags.c_contiguous or width == 1
        return view
    if layout == "fortran":
        return np.asfortranarray(base)
    return base


@PROPERTY_SETTINGS
@given(image_arrays())
def test_property_output_contract_and_input_unchanged(array: np.ndarray) -> None:
    before = array.copy()
    rgb = to_rgb_uint8(array)
    assert_rgb_contract(rgb, array.shape[0], array.shape[1])
    assert not np.shares_memory(rgb, array)
    np.testing.assert_array_equal(array, before)  # NaNs compare equal here
    if array.ndim == 2 or array.shape[2] in (1, 2):
        np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
        np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


@PROPERTY_SETTINGS
@given(
    dtype=st.sampled_from(DTYPES),
    height=st.integers(1, 64),
    width=st.integers(1, 64),
    channels=st.sampled_from([None, 1, 2, 3, 4]),
    data=st.data(),
)
def test_property_constant_image_stays_constant(
    dtype: np.dtype, height: int, width: int, channels: int | None, data: st.DataObject
) -> None:
    pixel_shape = () if channels is None else (channels,)
    elements = st.floats(allow_nan=True, allow_infinity=True, width=8 * dtype.itemsize) if dtype.kind == "f" else None
    pixel = data.draw(hnp.arrays(dtype, pixel_shape, elements=elements))
    shape = (height, width, *pixel_shape)
    array = np.broadcast_to(pixel, shape)  # read-only, zero strides
    rgb = to_rgb_uint8(array)
    assert_rgb_contract(rgb, height, width)
    assert np.all(rgb == rgb[0, 0])


@PROPERTY_SETTINGS
@given(st.integers(0, 255), st.integers(0, 255))
def test_property_uint8_opaque_rgb_is_identity_and_alpha_zero_is_white(value: int, alpha: int) -> None:
    rgb = np.full((3, 4, 3), value, np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(rgb), rgb)
    rgba = np.concatenate([rgb, np.zeros((3, 4, 1), np.uint8)], axis=2)
    assert np.all(to_rgb_uint8(rgba) == 255)
    rgba[..., 3] = alpha
    out = to_rgb_uint8(rgba).astype(int)
    # Compositing on white never darkens below the colour and never exceeds white.
    assert np.all(out >= value) and np.all(out <= 255)
