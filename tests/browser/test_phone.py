"""End to end in Chromium on a phone-sized page with touch input: all three prompt modes by tapping.

On a 390 px wide page the 704x576 picture is drawn at about half size, so a tap
lands within ``ViewBox.tolerance`` pixels of the aimed one; the test checks
that the app records exactly the pixel under the tap (read back from the saved
prompts), and the picture and masks for those prompts.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.conftest import WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_mask_png, check_overlay
from tests.browser.test_prompts import EXCLUDE, FRAME, INCLUDE

pytestmark = pytest.mark.browser


def tap(page, x: int, y: int) -> tuple[float, float]:
    """Tap original pixel (x, y); return the pixel under the tap (what the page must send)."""
    result = page.click_image(x, y)
    assert result.box.s < 1, "the phone page should draw the picture smaller than its natural size"
    off = np.abs(np.subtract(result.reported, (x, y))).max()
    assert off <= result.box.tolerance, f"tap aimed at {(x, y)} was over {result.reported}"
    return float(result.reported[0]), float(result.reported[1])


def test_phone_touch_all_three_modes(phone, pictures):
    phone.upload(pictures["wide"], WIDE_HW)
    base = phone.display_pixels()
    phone.screenshot("uploaded")
    include = tap(phone, 250, 290)
    phone.set_mode("exclude")
    exclude = tap(phone, 280, 290)
    phone.screenshot("include_exclude")
    phone.add_object()
    phone.set_mode("box")
    corner_a = tap(phone, 650, 520)
    assert "opposite corner" in phone.status()
    corner_b = tap(phone, 420, 330)
    phone.screenshot("box")

    first = ObjectPrompt((include, exclude), (INCLUDE, EXCLUDE), color_index=0)
    box = (min(corner_a[0], corner_b[0]), min(corner_a[1], corner_b[1]),
           max(corner_a[0], corner_b[0]), max(corner_a[1], corner_b[1]))
    second = ObjectPrompt(box=box, color_index=1, candidate=0)
    check_overlay(phone.display_pixels(), base, [first, second], FRAME)
    export = phone.export()
    phone.screenshot("exported")
    saved = [ObjectPrompt.from_session(o) for o in export.session["objects"]]
    assert saved == [first, second], "the app must record exactly the pixels under the taps"
    check_mask_png(export.mask(1), first, WIDE_HW)
    check_mask_png(export.mask(2), second, WIDE_HW)
