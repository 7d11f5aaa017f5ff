"""The upload box shows a small preview, not the uploaded original (issue 22, item 5), in Chromium.

Gradio's upload box loads the uploaded file back from the server to show it; ``sam_demo.previews`` answers
that ``<img>`` load with a JPEG of at most ``PREVIEW_SIDE`` pixels (upright), while a download of the same
address still gets the file itself; no button of the box sits on its label (issue 22, item 11).
"""

from __future__ import annotations

import pytest

from sam_demo.previews import PASS_BELOW_BYTES, PREVIEW_SIDE
from sam_demo.service import DEFAULT_DISPLAY_SIDE
from sam_onnx.geometry import DisplayFrame
from tests.browser.conftest import BIG_HW
from tests.browser.ui import DemoPage

pytestmark = pytest.mark.browser

PREVIEW_MAX_BYTES = 100_000
"""The issue's bound for the upload preview."""


def test_the_upload_box_loads_a_small_preview_not_the_original(desktop: DemoPage, pictures):
    original = pictures["big"].read_bytes()
    assert len(original) > PASS_BELOW_BYTES, "control: the 12 MP test photo is larger than a preview"
    loaded = {}
    desktop.page.on("response", lambda r: loaded.__setitem__(r.url, r)
                    if "/gradio_api/file=" in r.url and r.request.resource_type == "image" else None)
    frame = DisplayFrame.fit(BIG_HW, DEFAULT_DISPLAY_SIDE)
    desktop.upload(pictures["big"], frame.display_hw, BIG_HW)
    desktop.page.wait_for_function("() => { const i = document.querySelector('#input_image img');"
                                   " return !!i && i.complete && i.naturalWidth > 0; }")
    w, h, src = desktop.page.locator("#input_image img").evaluate("i => [i.naturalWidth, i.naturalHeight, i.src]")
    assert (w, h) == (PREVIEW_SIDE, PREVIEW_SIDE * BIG_HW[0] // BIG_HW[1]), "a small upright preview"
    assert len(loaded[src].body()) <= PREVIEW_MAX_BYTES
    desktop.screenshot("preview")
    covered = desktop.page.evaluate("""() => { const box = document.querySelector('#input_image');
      const l = box.querySelector('label[data-testid=block-label]').getBoundingClientRect();
      return [...box.querySelectorAll('button')].filter((b) => b.offsetParent).map((b) => [b.getAttribute('aria-label'),
        b.getBoundingClientRect()]).filter(([, r]) => r.width && r.left < l.right && l.left < r.right
        && r.top < l.bottom && l.top < r.bottom).map(([name]) => name); }""")
    assert covered == [], f"buttons over the upload box's label: {covered}"
    assert desktop.page.request.get(src).body() == original, "a download of the same address gets the file"
