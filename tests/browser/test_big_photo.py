"""A 48 MP phone photo in Chromium (issue 22 item 6): it opens, a click segments it, and the export is at the size
the status line names (the server works on photos over 40 MP at the largest size of at most 40 MP)."""

from __future__ import annotations

import numpy as np
import pytest

from sam_demo import big_photos
from sam_demo.service import DEFAULT_DISPLAY_SIDE
from sam_onnx.geometry import DisplayFrame
from sam_onnx.image import DEFAULT_LIMITS
from tests.test_big_photos import PHONE_WH, phone_jpeg  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow tier: README, Tests

WORK_HW = big_photos.working_size(PHONE_WH[::-1], DEFAULT_LIMITS)


# Reading, downscaling and encoding a 48 MP JPEG, then a 40 MP export downloaded (~10 s idle, ~60 s at load 25).
@pytest.mark.timeout(300)
def test_a_48_megapixel_jpeg_opens_is_segmented_and_exports_at_the_size_the_status_names(desktop, phone_jpeg):
    h, w = WORK_HW
    desktop.upload(phone_jpeg, DisplayFrame.fit(WORK_HW, DEFAULT_DISPLAY_SIDE).display_hw, WORK_HW)
    status = desktop.status()
    assert f"8000×6000 photo (48.0 MP) is used at {w}×{h}" in status and "exports are at that size" in status, status
    desktop.click_image(w // 4, h // 2)
    mask = desktop.export().mask(1)
    assert mask.shape == (h, w), f"exported at {mask.shape[1]}x{mask.shape[0]}, the status says {w}x{h}"
    assert (mask > 0).any() and mask[h // 2, w // 4] == 255, "the click's pixel is not in its mask"
    desktop.screenshot("48mp")
