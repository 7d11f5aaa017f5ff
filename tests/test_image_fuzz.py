"""Bounded decode fuzzing of sam_onnx.image.load_image.

The oracle is Pillow's own OSS-Fuzz one, tightened for an app: for ANY byte string,
load_image either returns a valid LoadedImage or raises InvalidImageError, never
another exception, and never hangs. Seeds are tiny valid files made here with Pillow;
mutations are byte flips, overwrites, insertions, deletions and truncations.
"""

from __future__ import annotations

import faulthandler
import io
import os
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sam_onnx.errors import InvalidImageError
from sam_onnx.image import ALLOWED_FORMATS, ImageLimits, LoadedImage, load_image

#: Small limits keep every mutated header's claimed size cheap to decode.
FUZZ_LIMITS = ImageLimits(max_pixels=1_000_000, max_side=4096, min_side=1, max_aspect=4096.0)
#: One call on a tiny file taking this much CPU time means something loops (a normal call: milliseconds).
SLOW_CALL_SECONDS = 5.0
#: Whole-test watchdog: dump all tracebacks and exit rather than hang CI.
WATCHDOG_SECONDS = 120
HEADER_BYTES = 64

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # "Corrupt EXIF data", malformed MPO...
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(1234)
    rgb = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (16, 24, 4), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65536, (16, 24), dtype=np.uint16))
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "png-rgb": _encode(rgb, "PNG"),
        "png-rgba": _encode(rgba, "PNG"),
        "png-16bit": _encode(grey16, "PNG"),
        "jpeg-exif": _encode(rgb, "JPEG", quality=80, exif=exif),
        "jpeg-progressive": _encode(rgb, "JPEG", progressive=True),
        "gif-animated": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp-lossy": _encode(rgb, "WEBP", quality=70),
        "webp-lossless-alpha": _encode(rgba, "WEBP", lossless=True),
        "bmp": _encode(rgb, "BMP"),
    }


SEEDS = _seeds()


@pytest.fixture(autouse=True)
def _hang_watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def assert_loads_or_rejects_cleanly(data: bytes) -> None:
    started = time.process_time()  # CPU time: the work done, not how busy the machine is
    try:
        loaded = load_image(data, limits=FUZZ_LIMITS)
    except InvalidImageError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
    else:
        assert isinstance(loaded, LoadedImage)
        assert loaded.format in ALLOWED_FORMATS
        assert loaded.rgb.dtype == np.uint8
        assert loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3
        assert loaded.rgb.shape[0] * loaded.rgb.shape[1] <= FUZZ_LIMITS.max_pixels
        assert loaded.rgb.flags.c_contiguous and loaded.rgb.flags.writeable
        assert all(isinstance(note, str) for note in loaded.notes)
    elapsed = time.process_time() - started
    assert elapsed < SLOW_CALL_SECONDS, f"{elapsed:.1f} s on a {len(data)}-byte file"


@pytest.mark.parametrize("name", SEEDS)
def test_every_seed_is_valid(name: str) -> None:
    loaded = load_image(SEEDS[name], limits=FUZZ_LIMITS)
    assert loaded.rgb.shape == (16, 24, 3) or loaded.rgb.shape == (24, 16, 3)


@pytest.mark.parametrize("name", SEEDS)
def test_every_truncation_loads_or_rejects_cleanly(name: str) -> None:
    seed = SEEDS[name]
    step = max(1, len(seed) // 150)
    for cut in range(0, len(seed), step):
        assert_loads_or_rejects_cleanly(seed[:cut])


@pytest.mark.parametrize("name", SEEDS)
def test_every_header_byte_flip_loads_or_rejects_cleanly(name: str) -> None:
    seed = SEEDS[name]
    for position in range(min(HEADER_BYTES, len(seed))):
        for mask in (0x01, 0x80, 0xFF):
            mutated = bytearray(seed)
            mutated[position] ^= mask
            assert_loads_or_rejects_cleanly(bytes(mutated))


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        # Half the mutations land in the header, where the parsers branch most.
        in_header = st.integers(0, min(HEADER_BYTES, len(data)) - 1)
        position = draw(st.one_of(in_header, st.integers(0, len(data) - 1)))
        operation = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        if operation == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "overwrite":
            special = st.sampled_from([0x00, 0x7F, 0x80, 0xFF])
            data[position] = draw(st.one_of(special, st.integers(0, 255)))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        else:
            del data[position:]
    return bytes(data)


FUZZ_SETTINGS = settings(
    max_examples=300,
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ_SETTINGS
@given(mutated_files())
def test_mutated_files_load_or_reject_cleanly(data: bytes) -> None:
    assert_loads_or_rejects_cleanly(data)
