"""Big phone photos (issue 22 item 6): a 48 MP JPEG opens, is segmented and exported at the size the status names;
above the open limit the message names the limit; /segment says what to do with a photo only the app opens."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from sam_demo import big_photos
from sam_demo.service import SegmentationService
from sam_onnx.errors import InvalidImageError
from sam_onnx.image import DEFAULT_LIMITS, LoadedImage, load_image, load_upright
from sam_onnx.types import Point, Prompts
from tests.app_support import OUT
from tests.test_app_handlers import _click, _open
from tests.test_image import hand_png

PHONE_WH = (8000, 6000)
"""A 48 MP phone photo (4:3)."""


@pytest.fixture(scope="module")
def phone_jpeg(tmp_path_factory) -> Path:
    ramp = Image.linear_gradient("L")  # 256x256, dark to light from the top; scaled up by repeating pixels (fast)
    red, green = (band.resize(PHONE_WH, Image.Resampling.NEAREST) for band in (ramp.rotate(90), ramp))
    path = tmp_path_factory.mktemp("big") / "phone_48mp.jpg"
    Image.merge("RGB", (red, green, Image.new("L", PHONE_WH, 90))).save(path, quality=85)
    return path


def test_the_working_size_keeps_the_aspect_and_fits_the_limits():
    assert big_photos.working_size((6000, 8000), DEFAULT_LIMITS) == (5477, 7302)
    assert 5477 * 7302 <= DEFAULT_LIMITS.max_pixels < 5478 * 7303
    assert big_photos.working_size((4000, 3000), DEFAULT_LIMITS) == (4000, 3000)  # 12 MP: as it is
    assert big_photos.working_size((1000, 12_001), DEFAULT_LIMITS) == (999, 12_000)  # the longest side too


def test_a_photo_within_the_limits_is_not_touched():
    loaded = LoadedImage(np.zeros((30, 40, 3), np.uint8), "PNG", ("a note",))
    assert big_photos.working_copy(loaded, DEFAULT_LIMITS) is loaded


def test_a_re_read_big_photo_has_the_same_pixels_as_at_intake(tmp_path):
    """The intake (a Pillow image) and a re-read (an array, for crops and exports) make the same working copy, so the
    content hash still matches and nothing says "the image changed"."""
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 500, 3), np.uint8)).save(path)
    small = replace(DEFAULT_LIMITS, max_pixels=40_000, min_side=1)
    as_array = big_photos.working_copy(load_image(path, limits=DEFAULT_LIMITS), small)
    as_pil = big_photos.working_upright(load_upright(path, limits=DEFAULT_LIMITS), small)
    assert as_array.rgb.shape == (154, 258, 3) and as_pil.hw == (154, 258)
    assert np.array_equal(as_array.rgb, np.asarray(as_pil.upright()))
    assert as_array.notes == as_pil.notes and "used at 258×154" in as_pil.notes[-1]


# Decoding, downscaling and exporting a 48 MP photo (40 MP masks and cut-out PNGs) takes ~30 s on a loaded machine.
@pytest.mark.timeout(300)
def test_a_48_megapixel_jpeg_opens_is_segmented_and_exports_at_the_size_the_status_names(predictor, phone_jpeg):
    service = SegmentationService(predictor, image_cache_mb=128)
    out = _open(service, phone_jpeg)
    state = out[OUT["state"]]
    h, w = state.record.original_hw
    assert (h, w) == big_photos.working_size(PHONE_WH[::-1], DEFAULT_LIMITS)
    status = out[OUT["status"]]
    assert f"{w}×{h}" in status and "8000×6000" in status and "exports are at that size" in status, status
    out = _click(service, out, w * 0.25, h * 0.5)
    files = app.export_files(service, out[OUT["state"]])
    mask = Image.open(next(f for f in files if f.endswith("_object1_mask.png")))
    assert mask.size == (w, h), "the export is not at the size the status line names"
    assert (np.asarray(mask) > 0).any(), "the click segmented nothing"


def test_segment_refuses_a_photo_only_the_app_opens_with_a_size_that_works(predictor, phone_jpeg):
    service = SegmentationService(predictor, image_cache_mb=64)
    with pytest.raises(InvalidImageError) as excinfo:
        service.segment(str(phone_jpeg), [Prompts((Point(100, 100),))])
    assert str(excinfo.value) == ("The image is 8000×6000 (48.0 MP); /segment takes at most 40 MP and a longest "
                                  "side of 12000 px (answers are in the image's own pixels): downscale it, for "
                                  "example to 7302×5477.")


def test_above_the_open_limit_the_message_names_it_before_any_decode(predictor, tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(hand_png(8000, 8001, 8, 0, bytes(8000)))  # a 64.0008 MP header, no real pixel data
    service = SegmentationService(predictor, image_cache_mb=64)
    with pytest.raises(InvalidImageError, match=r"^The image is 64.1 MP; the limit is 64 MP\.$"):
        service.receive_image(str(path))
