"""End to end in Chromium: an upload shows the photo before its encoder run ends (issue 24, item 2).

The demo here runs the analytic models with the encoder slowed to ENCODE_S per run (a sleep), long enough to
look at the page in between: the photo is on screen, the status says the image is being encoded, and a click
made then is applied to the new photo once the encoder is done.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.browser.conftest import DESKTOP, WIDE_HW, _open, _serve
from tests.browser.pixels import ObjectPrompt, gradient_rgb
from tests.browser.test_images import UPRIGHT_TOLERANCE
from tests.browser.test_prompts import INCLUDE, objects

pytestmark = pytest.mark.browser

ENCODE_S = 3.0
"""The slowed encoder run; the photo must be on screen well before it ends."""
ENCODING = "encoding the image"


class SlowEncoder:
    def __init__(self, inner) -> None:
        self.inner, self.name, self.description = inner, inner.name, inner.description

    def encode(self, pixel_values):
        time.sleep(ENCODE_S)
        return self.inner.encode(pixel_values)


@pytest.fixture(scope="module")
def slow_url(predictor):
    yield from _serve(predictor.with_encoder(SlowEncoder(predictor.encoder), None), image_cache_mb=64)


@pytest.fixture
def slow_desktop(request, browser, slow_url, screenshots):
    yield from _open(request, browser, slow_url, screenshots, DESKTOP, touch=False)


def test_the_photo_is_shown_before_the_encoder_finishes_and_a_click_then_waits_for_it(slow_desktop, pictures):
    page = slow_desktop
    started = time.perf_counter()
    page.upload(pictures["wide"], WIDE_HW)  # returns once the photo is drawn with its size in the status
    shown_s = time.perf_counter() - started
    assert ENCODING in page.status() and shown_s < ENCODE_S, f"shown after {shown_s:.1f} s, status {page.status()!r}"
    page.screenshot("shown_while_encoding")
    base = page.display_pixels()
    assert np.abs(base.astype(int) - gradient_rgb(*WIDE_HW)).mean() < UPRIGHT_TOLERANCE
    box = page.view_box()
    client = box.aim(300, 200)
    page.page.mouse.click(*client)  # on the new photo, while its encoder runs
    assert box.reported(*client) == (300, 200)
    page.page.wait_for_function(_DECODED_JS)  # the click's answer: after the encoder run, on the new photo
    ready_s = time.perf_counter() - started
    assert ready_s >= ENCODE_S and ENCODING not in page.status()
    expected = ObjectPrompt(((300.0, 200.0),), (INCLUDE,))
    assert objects(page.export()) == [expected]


_DECODED_JS = "() => /decode \\d+ ms|masks cached/.test(document.querySelector('#status').innerText)"
