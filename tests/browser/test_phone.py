"""End to end in Chromium on a phone-sized page with touch input: all three prompt modes by tapping.

On a 390 px wide page the 704x576 picture is drawn at about half size, so a tap
lands within ``ViewBox.tolerance`` pixels of the aimed one; the test checks
that the app records exactly the pixel under the tap (read back from the saved
prompts), and the picture and masks for those prompts.
"""

from __future__ import annotations

import re

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


_CANDIDATES_JS = """() => {
  const g = document.querySelector('#candidates');
  const rect = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {label: rect(g.querySelector('label[data-testid=block-label]')),
          thumbs: [...g.querySelectorAll('button.thumbnail-item')].map(rect),
          captions: [...g.querySelectorAll('.caption-label')].map((c) => [c.innerText, c.scrollWidth, c.clientWidth,
                                                                          ...rect(c)]),
          others: [...g.querySelectorAll('button:not(.thumbnail-item)')].map((b) => b.getAttribute('aria-label'))};
}"""
# Where each download's file name is drawn (a Range's rectangles are not clipped by overflow: hidden) and its cell.
_NAMES_JS = """() => [...document.querySelectorAll('#downloads tr.file')].map((row) => {
  const cell = row.querySelector('td.filename'), range = document.createRange();
  range.selectNodeContents(cell);
  const c = cell.getBoundingClientRect();
  return [row.querySelector('a[download]').getAttribute('download'), cell.innerText.replace(/\\s+/g, ''),
          [...range.getClientRects()].every((r) => r.left >= c.left - 1 && r.right <= c.right + 1)];
})"""
CAPTION = re.compile(r"^(✓ )?[123]: IoU \d\.\d\d$")


def check_candidates_readable(page) -> None:
    """The candidate gallery on a phone: no gallery buttons, its label above the thumbnails, each score whole
    inside its own thumbnail; a screenshot of it for the artifacts."""
    gallery = page.page.locator("#candidates")
    gallery.scroll_into_view_if_needed()
    gallery.screenshot(path=str(page.shots / f"{page.name}_candidates.png"))
    found = page.page.evaluate(_CANDIDATES_JS)
    assert found["others"] == [], f"gallery buttons over the candidates: {found['others']}"
    assert len(found["thumbs"]) == 3 and found["label"][3] <= min(t[1] for t in found["thumbs"]), found
    for (text, scroll_w, client_w, left, top, right, bottom), thumb in zip(found["captions"], found["thumbs"]):
        assert CAPTION.match(text) and scroll_w <= client_w, f"caption {text!r} cut: {scroll_w} > {client_w} px"
        assert thumb[0] <= left and right <= thumb[2], f"caption {text!r} spills out of its thumbnail"


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
    check_candidates_readable(phone)
    status = phone.page.locator("#status")
    assert "ExecutionProvider" not in status.inner_text(), "engine details stay off the phone's status line"
    height, font = status.evaluate("e => [e.getBoundingClientRect().height, parseFloat(getComputedStyle(e).fontSize)]")
    assert height <= 3.5 * font, f"the status line takes {height / font:.1f} font sizes (at most two lines)"

    first = ObjectPrompt((include, exclude), (INCLUDE, EXCLUDE), color_index=0)
    box = (min(corner_a[0], corner_b[0]), min(corner_a[1], corner_b[1]),
           max(corner_a[0], corner_b[0]), max(corner_a[1], corner_b[1]))
    second = ObjectPrompt(box=box, color_index=1, candidate=0)
    check_overlay(phone.display_pixels(), base, [first, second], FRAME)
    export = phone.export()
    phone.screenshot("exported")
    for name, shown, inside in phone.page.evaluate(_NAMES_JS):
        assert shown == name and inside, f"download {name!r} is shown as {shown!r}, whole in its cell: {inside}"
    saved = [ObjectPrompt.from_session(o) for o in export.session["objects"]]
    assert saved == [first, second], "the app must record exactly the pixels under the taps"
    check_mask_png(export.mask(1), first, WIDE_HW)
    check_mask_png(export.mask(2), second, WIDE_HW)
